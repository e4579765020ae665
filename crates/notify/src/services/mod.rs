//! Services: from a service's configuration and a rendered notification to payloads.
//!
//! The contract each service module implements:
//!
//! ```text
//! pub fn payloads(config: &serde_json::Value, notification: &serde_json::Value, recipient: &str)
//!     -> Result<Vec<Payload>, ServiceError>
//! ```
//!
//! - `config`: the service's YAML (`service.<type>[.<name>]` in `argocd-notifications-cm`)
//!   parsed to JSON, with `$key` references already replaced by
//!   `argocd-notifications-secret` values;
//! - `notification`: the template after rendering, every string leaf rendered (`message`,
//!   `email.subject`, `slack.attachments`, `webhook.<name>.{method,path,body}`,
//!   `alertmanager.{labels,annotations,generatorURL}`, …), as Argo CD's templates write them;
//! - `recipient`: one recipient of the subscription (a channel, an address, a tag list, or
//!   empty for services that take none).
//!
//! What Argo CD's services take from the moment and the template of a send (Alertmanager's
//! `startsAt`, Grafana's annotation `time`, the `alertname` label defaulting to the
//! template's name) is not in a rendered template, and this crate reads no clock: the
//! caller adds it under [`SEND_KEY`] ([`attach_send`]) and the services read it with
//! [`send_of`].

pub mod alertmanager;
pub mod email;
pub mod grafana;
pub mod slack;
pub mod webhook;

use crate::payload::Payload;
use serde_json::Value;

/// Why a service could not turn a notification into payloads.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum ServiceError {
    #[error("service type `{0}` is not supported (supported: webhook, slack, email, alertmanager, grafana)")]
    UnsupportedType(String),
    #[error("service `{service}`: {message}")]
    Invalid { service: String, message: String },
}

/// The key of the rendered notification under which the caller puts what the send adds
/// (`{"template": NAME, "time": RFC3339}`); no Argo CD template field is named so.
pub const SEND_KEY: &str = "mooringSend";

/// What the caller knows of one send: the template's name and the time of the send.
#[derive(Debug, Clone, PartialEq)]
pub struct Send {
    pub template: String,
    pub time: mooring_core::time::Timestamp,
}

/// Fill in the defaults Argo CD's services give a template's fields before it is rendered
/// (`template.<name>` parsed, not yet rendered): an `alertmanager` section without
/// `generatorURL` gets [`alertmanager::DEFAULT_GENERATOR_URL`]. The renderer calls this so
/// the default is rendered like a field the user wrote.
pub fn template_defaults(template: &mut Value) {
    if let Some(Value::Object(alert)) = template.get_mut("alertmanager") {
        alert
            .entry("generatorURL")
            .or_insert_with(|| Value::String(alertmanager::DEFAULT_GENERATOR_URL.to_string()));
    }
}

/// Add the send's template name and time to a rendered notification (an object).
pub fn attach_send(notification: &mut Value, template: &str, time: mooring_core::time::Timestamp) {
    if let Value::Object(map) = notification {
        map.insert(
            SEND_KEY.to_string(),
            serde_json::json!({
                "template": template,
                "time": mooring_core::time::format_millis(time),
            }),
        );
    }
}

/// The send's template name and time, as [`attach_send`] wrote them.
pub(crate) fn send_of(notification: &Value) -> Result<Send, String> {
    let send = notification.get(SEND_KEY).ok_or_else(|| {
        format!("the rendered notification has no `{SEND_KEY}` (the caller must attach the send's template and time)")
    })?;
    let template = send
        .get("template")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("`{SEND_KEY}.template` is missing or not a string"))?
        .to_string();
    let time = send
        .get("time")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("`{SEND_KEY}.time` is missing or not a string"))?;
    let time = mooring_core::time::parse(time).map_err(|e| format!("`{SEND_KEY}.time`: {e}"))?;
    Ok(Send { template, time })
}

/// `Authorization: Basic …` for a username and password (RFC 7617).
pub(crate) fn basic_auth(username: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
    )
}

/// A service's configuration as an object whose keys are all among `known` (a key Argo CD
/// does not define for the service is a typo that would otherwise be ignored).
pub(crate) fn config_object<'a>(
    config: &'a Value,
    known: &[&str],
) -> Result<&'a serde_json::Map<String, Value>, String> {
    let map = match config {
        Value::Object(map) => map,
        Value::Null => return Err("the configuration is empty".to_string()),
        other => {
            return Err(format!(
                "the configuration must be a mapping, not {}",
                json_kind(other)
            ))
        }
    };
    if let Some(unknown) = map.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(format!(
            "unknown configuration key `{unknown}` (known: {})",
            known.join(", ")
        ));
    }
    Ok(map)
}

/// An optional string field (`null` counts as absent).
pub(crate) fn opt_str<'a>(
    map: &'a serde_json::Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, String> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(other) => Err(format!(
            "`{field}` must be a string, not {}",
            json_kind(other)
        )),
    }
}

/// A required, non-empty string field.
pub(crate) fn req_str<'a>(
    map: &'a serde_json::Map<String, Value>,
    field: &str,
) -> Result<&'a str, String> {
    match opt_str(map, field)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(format!("`{field}` is required")),
    }
}

/// An optional boolean field (false when absent).
pub(crate) fn opt_bool(map: &serde_json::Map<String, Value>, field: &str) -> Result<bool, String> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(format!(
            "`{field}` must be true or false, not {}",
            json_kind(other)
        )),
    }
}

/// How a JSON value is named in messages.
pub(crate) fn json_kind(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) => format!("the string {s:?}"),
        Value::Array(_) => "a list".to_string(),
        Value::Object(_) => "a mapping".to_string(),
    }
}

/// The payloads of one notification for `recipient` of a service of type `service_type`
/// named `service` (the name is for messages).
pub fn payloads(
    service_type: &str,
    service: &str,
    config: &Value,
    notification: &Value,
    recipient: &str,
) -> Result<Vec<Payload>, ServiceError> {
    let result = match service_type {
        "webhook" => webhook::payloads(service, config, notification, recipient),
        "slack" => slack::payloads(config, notification, recipient),
        "email" => email::payloads(config, notification, recipient),
        "alertmanager" => alertmanager::payloads(config, notification, recipient),
        "grafana" => grafana::payloads(config, notification, recipient),
        other => return Err(ServiceError::UnsupportedType(other.to_string())),
    };
    result.map_err(|message| ServiceError::Invalid {
        service: service.to_string(),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn alertmanager_generator_url_defaults_to_the_apps_repository_before_rendering() {
        let mut t = json!({"message": "m", "alertmanager": {"labels": {"a": "b"}}});
        template_defaults(&mut t);
        assert_eq!(
            t["alertmanager"]["generatorURL"],
            "{{.app.spec.source.repoURL}}"
        );
        let mut t = json!({"alertmanager": {"generatorURL": "https://x"}});
        template_defaults(&mut t);
        assert_eq!(t["alertmanager"]["generatorURL"], "https://x");
        let mut t = json!({"message": "no alertmanager section"});
        template_defaults(&mut t);
        assert_eq!(t, json!({"message": "no alertmanager section"}));
    }

    #[test]
    fn the_send_round_trips() {
        let time = mooring_core::time::parse("2026-12-06T08:00:00.25Z").expect("time");
        let mut n = json!({"message": "m"});
        attach_send(&mut n, "app-deployed", time);
        assert_eq!(
            send_of(&n),
            Ok(Send {
                template: "app-deployed".to_string(),
                time
            })
        );
        let bad = json!({SEND_KEY: {"template": "t", "time": "yesterday"}});
        let err = send_of(&bad).expect_err("bad time");
        assert!(
            err.contains("`mooringSend.time`") && err.contains("yesterday"),
            "{err}"
        );
    }

    #[test]
    fn unsupported_types_and_invalid_services_are_named() {
        let err = payloads("teams", "teams", &json!({}), &json!({}), "").expect_err("teams");
        assert_eq!(err, ServiceError::UnsupportedType("teams".to_string()));
        let err = payloads(
            "email",
            "email.corp",
            &json!({"port": 25}),
            &json!({}),
            "a@b.c",
        )
        .expect_err("no host");
        assert_eq!(err.to_string(), "service `email.corp`: `host` is required");
    }
}
