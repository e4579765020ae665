//! The `alertmanager` service, as Argo CD's: one alert, POSTed as Alertmanager's v2 API
//! takes it (`[{labels, annotations, startsAt, generatorURL}]`) to every target.
//!
//! ```yaml
//! service.alertmanager: |
//!   targets:
//!   - alertmanager.monitoring:9093
//!   scheme: https            # default http
//!   apiPath: /api/v2/alerts  # the default
//!   basicAuth: {username: $user, password: $pass}   # or bearerToken: $token
//!   insecureSkipVerify: false
//! template.app-deployed: |
//!   alertmanager:
//!     labels: {fault_priority: P5, event_bucket: deploy, app: "{{.app.metadata.name}}"}
//!     annotations: {author: "{{(call .repo.GetCommitMetadata .app.status.sync.revision).Author}}"}
//!     generatorURL: "{{.app.spec.source.repoURL}}"
//! ```
//!
//! Argo CD's defaults are kept: targets `127.0.0.1:9093`, `alertname` = the template's
//! name unless a label sets it, `generatorURL` = the app's repository
//! ([`DEFAULT_GENERATOR_URL`], which the renderer fills in before rendering, through
//! [`super::template_defaults`]) with `git@host:org/repo` turned into `https://host/org/repo`,
//! at least one label. `startsAt` is the time of the send ([`super::attach_send`]). Label
//! names are checked as Alertmanager checks them, so a bad one is refused here with its
//! name rather than by the server. Argo's `timeout` (seconds, default 3) is read and
//! checked; the request's deadline is the outbound client's.

use super::{basic_auth, config_object, json_kind, opt_bool, opt_str, send_of};
use crate::payload::{HttpMessage, Payload};
use serde_json::{Map, Value};

const KNOWN: &[&str] = &[
    "targets",
    "scheme",
    "apiPath",
    "basicAuth",
    "bearerToken",
    "insecureSkipVerify",
    "timeout",
];

/// Argo CD's target when none is configured.
pub const DEFAULT_TARGET: &str = "127.0.0.1:9093";
/// Argo CD's `alertmanager.generatorURL` when a template sets none.
pub const DEFAULT_GENERATOR_URL: &str = "{{.app.spec.source.repoURL}}";
/// The label Alertmanager names alerts by.
const ALERT_NAME: &str = "alertname";

pub fn payloads(
    config: &Value,
    notification: &Value,
    _recipient: &str,
) -> Result<Vec<Payload>, String> {
    let map = config_object(config, KNOWN)?;
    let targets = targets(map.get("targets"))?;
    let scheme = opt_str(map, "scheme")?.unwrap_or("http");
    if scheme != "http" && scheme != "https" {
        return Err(format!("`scheme` must be http or https, not {scheme:?}"));
    }
    let api_path = opt_str(map, "apiPath")?
        .filter(|p| !p.is_empty())
        .unwrap_or("/api/v2/alerts");
    if !api_path.starts_with('/') || api_path.chars().any(|c| c.is_whitespace() || c == '#') {
        return Err(format!(
            "`apiPath` must be a path starting with `/`, not {api_path:?}"
        ));
    }
    let mut headers = vec![("Content-Type".to_string(), "application/json".to_string())];
    match map.get("basicAuth") {
        None | Some(Value::Null) => {
            if let Some(token) = opt_str(map, "bearerToken")?.filter(|t| !t.is_empty()) {
                headers.push(("Authorization".to_string(), format!("Bearer {token}")));
            }
        }
        Some(Value::Object(auth)) => {
            if let Some(k) = auth.keys().find(|k| *k != "username" && *k != "password") {
                return Err(format!(
                    "unknown key `basicAuth.{k}` (known: username, password)"
                ));
            }
            let field = |f: &str| match auth.get(f) {
                None | Some(Value::Null) => Ok(""),
                Some(Value::String(s)) => Ok(s.as_str()),
                Some(other) => Err(format!(
                    "`basicAuth.{f}` must be a string, not {}",
                    json_kind(other)
                )),
            };
            headers.push((
                "Authorization".to_string(),
                basic_auth(field("username")?, field("password")?),
            ));
        }
        Some(other) => {
            return Err(format!(
                "`basicAuth` must be a mapping with username and password, not {}",
                json_kind(other)
            ))
        }
    }
    match map.get("timeout") {
        None | Some(Value::Null) => {}
        Some(Value::Number(n)) if n.as_u64().is_some() => {}
        Some(other) => {
            return Err(format!(
                "`timeout` must be a whole number of seconds, not {}",
                json_kind(other)
            ))
        }
    }
    let insecure = opt_bool(map, "insecureSkipVerify")?;

    let send = send_of(notification)?;
    let alert = notification.get("alertmanager");
    let template = match alert {
        None | Some(Value::Null) => &Map::new(),
        Some(Value::Object(m)) => m,
        Some(other) => {
            return Err(format!(
                "template field `alertmanager` must be a mapping, not {}",
                json_kind(other)
            ))
        }
    };
    if let Some(k) = template
        .keys()
        .find(|k| !matches!(k.as_str(), "labels" | "annotations" | "generatorURL"))
    {
        return Err(format!(
            "unknown template field `alertmanager.{k}` (known: labels, annotations, generatorURL)"
        ));
    }
    let mut labels = string_map(template.get("labels"), "labels")?;
    if labels.is_empty() {
        return Err(format!(
            "template `{}` sets no `alertmanager.labels` (at least one label is required)",
            send.template
        ));
    }
    for name in labels.keys() {
        if !is_label_name(name) {
            return Err(format!(
                "template field `alertmanager.labels`: {name:?} is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)"
            ));
        }
    }
    if !labels.contains_key(ALERT_NAME) {
        labels.insert(ALERT_NAME.to_string(), Value::String(send.template.clone()));
    }
    let annotations = string_map(template.get("annotations"), "annotations")?;
    let generator_url = match template.get("generatorURL") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => git_url_to_https(s.trim()),
        Some(other) => {
            return Err(format!(
                "template field `alertmanager.generatorURL` must be a string, not {}",
                json_kind(other)
            ))
        }
    };
    if generator_url.chars().any(char::is_whitespace) {
        return Err(format!(
            "template field `alertmanager.generatorURL` is not a URL: {generator_url:?}"
        ));
    }
    let mut alert = Map::new();
    alert.insert("labels".into(), Value::Object(labels));
    alert.insert("annotations".into(), Value::Object(annotations));
    alert.insert(
        "startsAt".into(),
        Value::String(mooring_core::time::format_millis(send.time)),
    );
    if !generator_url.is_empty() {
        alert.insert("generatorURL".into(), Value::String(generator_url));
    }
    let body = serde_json::to_vec(&Value::Array(vec![Value::Object(alert)]))
        .map_err(|e| format!("encoding the alert: {e}"))?;
    Ok(targets
        .iter()
        .map(|target| {
            Payload::Http(HttpMessage {
                method: "POST".to_string(),
                url: format!("{scheme}://{target}{api_path}"),
                headers: headers.clone(),
                body: body.clone(),
                insecure_skip_verify: insecure,
                expect_ok_field: false,
            })
        })
        .collect())
}

/// `targets`: `host:port` entries (default [`DEFAULT_TARGET`]).
fn targets(v: Option<&Value>) -> Result<Vec<String>, String> {
    let list = match v {
        None | Some(Value::Null) => return Ok(vec![DEFAULT_TARGET.to_string()]),
        Some(Value::Array(list)) => list,
        Some(other) => {
            return Err(format!(
                "`targets` must be a list of host:port, not {}",
                json_kind(other)
            ))
        }
    };
    if list.is_empty() {
        return Ok(vec![DEFAULT_TARGET.to_string()]);
    }
    list.iter()
        .enumerate()
        .map(|(i, t)| {
            let Value::String(t) = t else {
                return Err(format!(
                    "`targets[{i}]` must be a host:port string, not {}",
                    json_kind(t)
                ));
            };
            let t = t.trim();
            let bad = |why: &str| format!("`targets[{i}]` {t:?} is not host:port: {why}");
            let (host, port) = t.rsplit_once(':').ok_or_else(|| bad("no port"))?;
            match port.parse::<u16>() {
                Ok(p) if p != 0 => {}
                _ => return Err(bad(&format!("bad port {port:?}"))),
            }
            let host_ok = if let Some(inner) = host.strip_prefix('[') {
                inner
                    .strip_suffix(']')
                    .is_some_and(|a| a.parse::<std::net::Ipv6Addr>().is_ok())
            } else {
                !host.is_empty()
                    && host
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
            };
            if !host_ok {
                return Err(bad(&format!("bad host {host:?}")));
            }
            Ok(t.to_string())
        })
        .collect()
}

/// `alertmanager.labels`/`annotations`: a mapping of strings.
fn string_map(v: Option<&Value>, field: &str) -> Result<Map<String, Value>, String> {
    match v {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => {
            for (k, v) in m {
                if !v.is_string() {
                    return Err(format!(
                        "template field `alertmanager.{field}.{k}` must be a string, not {}",
                        json_kind(v)
                    ));
                }
            }
            Ok(m.clone())
        }
        Some(other) => Err(format!(
            "template field `alertmanager.{field}` must be a mapping, not {}",
            json_kind(other)
        )),
    }
}

/// A Prometheus label name.
fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `git@host:org/repo` as `https://host/org/repo` (Argo CD's rule); any other URL as is.
fn git_url_to_https(url: &str) -> String {
    match url.strip_prefix("git@") {
        Some(rest) => format!("https://{}", rest.replacen(':', "/", 1)),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::attach_send;
    use serde_json::json;

    fn notification(alert: Value) -> Value {
        let mut n = json!({"message": "ignored", "alertmanager": alert});
        attach_send(
            &mut n,
            "app-deployed",
            mooring_core::time::parse("2026-12-06T08:00:00.250Z").expect("time"),
        );
        n
    }

    fn http(p: &Payload) -> &HttpMessage {
        match p {
            Payload::Http(m) => m,
            other => panic!("not HTTP: {other:?}"),
        }
    }

    #[test]
    fn one_v2_alert_per_target() {
        let config = json!({
            "targets": ["alertmanager.monitoring:9093", "[::1]:9094"],
            "bearerToken": "tok",
        });
        let n = notification(json!({
            "labels": {"fault_priority": "P5", "app": "guestbook"},
            "annotations": {"author": "Jane"},
            "generatorURL": "git@github.com:argoproj/argocd-example-apps.git",
        }));
        let p = payloads(&config, &n, "").expect("payloads");
        assert_eq!(p.len(), 2);
        let (a, b) = (http(&p[0]), http(&p[1]));
        assert_eq!(a.method, "POST");
        assert_eq!(a.url, "http://alertmanager.monitoring:9093/api/v2/alerts");
        assert_eq!(b.url, "http://[::1]:9094/api/v2/alerts");
        assert_eq!(a.body, b.body);
        assert_eq!(
            a.headers,
            vec![
                ("Content-Type".to_string(), "application/json".to_string()),
                ("Authorization".to_string(), "Bearer tok".to_string()),
            ]
        );
        let body: Value = serde_json::from_slice(&a.body).expect("json");
        assert_eq!(
            body,
            json!([{
                "labels": {"fault_priority": "P5", "app": "guestbook", "alertname": "app-deployed"},
                "annotations": {"author": "Jane"},
                "startsAt": "2026-12-06T08:00:00.250Z",
                "generatorURL": "https://github.com/argoproj/argocd-example-apps.git",
            }])
        );
    }

    #[test]
    fn argo_defaults_basic_auth_scheme_and_path() {
        let n = notification(json!({"labels": {"alertname": "Deployed"}}));
        let p = payloads(&json!({}), &n, "").expect("defaults");
        let m = http(&p[0]);
        assert_eq!(m.url, "http://127.0.0.1:9093/api/v2/alerts");
        let body: Value = serde_json::from_slice(&m.body).expect("json");
        assert_eq!(body[0]["labels"], json!({"alertname": "Deployed"}));
        assert_eq!(body[0]["annotations"], json!({}));
        assert!(body[0].get("generatorURL").is_none());

        let config = json!({
            "targets": ["am:9093"], "scheme": "https", "apiPath": "/am/api/v2/alerts",
            "basicAuth": {"username": "admin", "password": "pw"},
            "bearerToken": "ignored-when-basic-auth", "insecureSkipVerify": true, "timeout": 5,
        });
        let p = payloads(&config, &n, "").expect("payloads");
        let m = http(&p[0]);
        assert_eq!(m.url, "https://am:9093/am/api/v2/alerts");
        assert!(m.insecure_skip_verify);
        assert_eq!(m.headers[1].1, "Basic YWRtaW46cHc=");
    }

    #[test]
    fn malformed_configuration_is_named() {
        let n = notification(json!({"labels": {"a": "b"}}));
        let cases: Vec<(Value, &str)> = vec![
            (json!({"targets": "am:9093"}), "`targets` must be a list"),
            (
                json!({"targets": ["am"]}),
                "`targets[0]` \"am\" is not host:port: no port",
            ),
            (json!({"targets": ["am:x"]}), "bad port \"x\""),
            (json!({"targets": ["am:99999"]}), "bad port \"99999\""),
            (json!({"targets": [":9093"]}), "bad host \"\""),
            (
                json!({"targets": ["http://am:9093"]}),
                "bad host \"http://am\"",
            ),
            (
                json!({"targets": ["am:9093", 5]}),
                "`targets[1]` must be a host:port string",
            ),
            (json!({"targets": ["[zz]:9093"]}), "bad host \"[zz]\""),
            (json!({"scheme": "ftp"}), "`scheme` must be http or https"),
            (
                json!({"apiPath": "api/v2/alerts"}),
                "`apiPath` must be a path",
            ),
            (
                json!({"basicAuth": "admin:pw"}),
                "`basicAuth` must be a mapping",
            ),
            (
                json!({"basicAuth": {"user": "a"}}),
                "unknown key `basicAuth.user`",
            ),
            (json!({"timeout": "3s"}), "`timeout` must be a whole number"),
            (
                json!({"target": ["am:9093"]}),
                "unknown configuration key `target`",
            ),
        ];
        for (c, want) in cases {
            let err = payloads(&c, &n, "").expect_err(&c.to_string());
            assert!(err.contains(want), "{c}: {err}");
        }
    }

    #[test]
    fn malformed_templates_are_named() {
        let cases: Vec<(Value, &str)> = vec![
            (json!(null), "sets no `alertmanager.labels`"),
            (json!({"labels": {}}), "sets no `alertmanager.labels`"),
            (json!("x"), "`alertmanager` must be a mapping"),
            (
                json!({"labels": {"bad-name": "x"}}),
                "\"bad-name\" is not a valid label name",
            ),
            (
                json!({"labels": {"a": 1}}),
                "`alertmanager.labels.a` must be a string",
            ),
            (
                json!({"labels": {"a": "b"}, "annotations": ["x"]}),
                "`alertmanager.annotations` must be a mapping",
            ),
            (
                json!({"labels": {"a": "b"}, "startsAt": "x"}),
                "unknown template field `alertmanager.startsAt`",
            ),
            (
                json!({"labels": {"a": "b"}, "generatorURL": "not a url"}),
                "is not a URL",
            ),
        ];
        for (t, want) in cases {
            let err = payloads(&json!({}), &notification(t.clone()), "").expect_err(&t.to_string());
            assert!(err.contains(want), "{t}: {err}");
        }
        let err = payloads(
            &json!({}),
            &json!({"alertmanager": {"labels": {"a": "b"}}}),
            "",
        )
        .expect_err("no send");
        assert!(err.contains("has no `mooringSend`"), "{err}");
    }
}
