//! `argocd-notifications-cm` and `argocd-notifications-secret`, read as Argo CD reads them.
//!
//! The ConfigMap's keys:
//!
//! - `service.<type>` (the service is named after its type) and `service.<type>.<name>`
//!   (named `<name>`, as `service.webhook.github` is subscribed as `…subscribe.on-x.github`):
//!   YAML, whose string values may reference `argocd-notifications-secret` keys as `$key`;
//! - `template.<name>`: YAML (`message` plus per-service fields such as `email.subject`,
//!   `slack.attachments`, `webhook.<service>.{method,path,body}`);
//! - `trigger.<name>`: a YAML list of conditions `{when, send, oncePer, description}`;
//! - `defaultTriggers` (a YAML list) and `defaultTriggers.<service>`: the triggers of a
//!   subscription that names no trigger;
//! - `subscriptions`: a YAML list of `{recipients: [service:recipient], triggers, selector}`
//!   that applies to every object whose labels match `selector`;
//! - `context`: a YAML map of strings templates read as `.context` (`argocdUrl` defaults to
//!   `https://localhost:4000`, as in Argo CD).
//!
//! A key that does not parse is reported with its name and left out; every other key still
//! works, so one typo does not silence every notification. A key Mooring does not know is
//! reported too (nothing is silently ignored). A `$key` naming no Secret key is an error
//! naming both, never an empty credential.

use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

pub use crate::trigger::Condition;

/// The name of the ConfigMap, in the control-plane namespace.
pub const CONFIG_MAP: &str = "argocd-notifications-cm";
/// The name of the Secret, in the control-plane namespace.
pub const SECRET: &str = "argocd-notifications-secret";
/// Argo CD's default `.context.argocdUrl`.
pub const DEFAULT_ARGOCD_URL: &str = "https://localhost:4000";

/// A problem with one key of the configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("{CONFIG_MAP} key `{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error("{CONFIG_MAP} key `{key}` references `${secret_key}`, which {SECRET} does not have")]
    MissingSecret { key: String, secret_key: String },
    #[error("{CONFIG_MAP} key `{key}` is not a notifications setting Mooring knows (service.*, template.*, trigger.*, defaultTriggers, subscriptions, context)")]
    Unknown { key: String },
    /// The key works, but some of its settings are not acted on (said, never skipped
    /// silently).
    #[error("{CONFIG_MAP} key `{key}`: {fields} not acted on: {why}")]
    NotActedOn {
        key: String,
        fields: String,
        why: &'static str,
    },
}

/// notifications-engine's webhook client knobs: retries (Mooring's controller retries
/// every delivery itself) and Go HTTP transport tuning (no equivalent).
const WEBHOOK_KNOBS: &[&str] = &[
    "retryMax",
    "retryWaitMin",
    "retryWaitMax",
    "maxIdleConns",
    "maxIdleConnsPerHost",
    "maxConnsPerHost",
    "idleConnTimeout",
];

/// One configured service.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// `webhook`, `slack`, `email`, …
    pub service_type: String,
    /// The service's YAML as JSON, `$key` references replaced by the Secret's values.
    pub config: Value,
}

/// One entry of the ConfigMap's `subscriptions`.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct GlobalSubscription {
    /// `service:recipient` (or `service` alone).
    #[serde(default)]
    pub recipients: Vec<String>,
    /// Empty: the default triggers.
    #[serde(default)]
    pub triggers: Vec<String>,
    /// A label selector (`key=value,key2 in (a,b)`); empty matches every object.
    #[serde(default)]
    pub selector: String,
}

/// The whole notifications configuration.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    /// By service name.
    pub services: BTreeMap<String, Service>,
    /// By template name: the template's YAML as JSON, not rendered yet.
    pub templates: BTreeMap<String, Value>,
    /// By trigger name.
    pub triggers: BTreeMap<String, Vec<Condition>>,
    pub default_triggers: Vec<String>,
    /// `defaultTriggers.<service>`.
    pub service_default_triggers: BTreeMap<String, Vec<String>>,
    pub subscriptions: Vec<GlobalSubscription>,
    /// `.context` of templates.
    pub context: BTreeMap<String, String>,
    /// The Secret's data (`.secrets` of templates, as Argo CD exposes them).
    pub secrets: BTreeMap<String, String>,
}

impl Config {
    /// Parse the ConfigMap's and the Secret's data (Secret values already decoded). Every
    /// key that could be read is in the result; the others are in the errors.
    pub fn parse(
        cm: &BTreeMap<String, String>,
        secret: &BTreeMap<String, String>,
    ) -> (Config, Vec<ConfigError>) {
        let mut config = Config {
            secrets: secret.clone(),
            ..Config::default()
        };
        config
            .context
            .insert("argocdUrl".into(), DEFAULT_ARGOCD_URL.into());
        let mut errors = Vec::new();
        for (key, raw) in cm {
            match config.parse_key(key, raw, secret) {
                Err(e) => errors.push(e),
                Ok(()) => errors.extend(config.not_acted_on(key)),
            }
        }
        (config, errors)
    }

    /// The settings of a parsed key that Mooring accepts (Argo CD's configuration must
    /// load unchanged) but does not act on.
    fn not_acted_on(&self, key: &str) -> Option<ConfigError> {
        let rest = key.strip_prefix("service.webhook")?;
        let name = rest.strip_prefix('.').unwrap_or("webhook");
        let config = &self.services.get(name)?.config;
        let fields: Vec<&str> = WEBHOOK_KNOBS
            .iter()
            .copied()
            .filter(|k| config.get(*k).is_some())
            .collect();
        (!fields.is_empty()).then(|| ConfigError::NotActedOn {
            key: key.to_string(),
            fields: fields.join(", "),
            why: "Mooring retries every delivery 3 times (after 1 s and 2 s) and has no Go HTTP transport to tune",
        })
    }

    fn parse_key(
        &mut self,
        key: &str,
        raw: &str,
        secret: &BTreeMap<String, String>,
    ) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            key: key.to_string(),
            message,
        };
        if let Some(rest) = key.strip_prefix("service.") {
            let (service_type, name) = match rest.split_once('.') {
                Some((t, n)) => (t, n),
                None => (rest, rest),
            };
            if service_type.is_empty() || name.is_empty() {
                return Err(invalid(
                    "expected service.<type> or service.<type>.<name>".into(),
                ));
            }
            let value = yaml(raw).map_err(invalid)?;
            let value = if value.is_null() {
                Value::Object(Map::new())
            } else {
                value
            };
            if !value.is_object() {
                return Err(invalid("a service is a YAML map".into()));
            }
            let config = substitute_secrets(key, &value, secret)?;
            self.services.insert(
                name.to_string(),
                Service {
                    service_type: service_type.to_string(),
                    config,
                },
            );
        } else if let Some(name) = key.strip_prefix("template.") {
            let value = yaml(raw).map_err(invalid)?;
            if !value.is_object() {
                return Err(invalid(
                    "a template is a YAML map (message, email, slack, webhook, …)".into(),
                ));
            }
            self.templates.insert(name.to_string(), value);
        } else if let Some(name) = key.strip_prefix("trigger.") {
            let conditions: Vec<Condition> = typed(raw).map_err(invalid)?;
            if conditions.is_empty() {
                return Err(invalid(
                    "a trigger is a non-empty list of conditions".into(),
                ));
            }
            for (i, c) in conditions.iter().enumerate() {
                if c.send.is_empty() {
                    return Err(invalid(format!(
                        "condition [{i}] sends no template (`send`)"
                    )));
                }
                // An empty `when` is `false` (an event trigger: once per event).
                Some(c.when.as_str())
                    .filter(|w| !w.trim().is_empty())
                    .map_or(Ok(()), crate::trigger::check)
                    .and_then(|()| {
                        if c.once_per.is_empty() {
                            Ok(())
                        } else {
                            crate::trigger::check(&c.once_per)
                        }
                    })
                    .map_err(|e| invalid(format!("condition [{i}]: {e}")))?;
            }
            self.triggers.insert(name.to_string(), conditions);
        } else if key == "defaultTriggers" {
            self.default_triggers = typed(raw).map_err(invalid)?;
        } else if let Some(service) = key.strip_prefix("defaultTriggers.") {
            let triggers: Vec<String> = typed(raw).map_err(invalid)?;
            self.service_default_triggers
                .insert(service.to_string(), triggers);
        } else if key == "subscriptions" {
            let subs: Vec<GlobalSubscription> = typed(raw).map_err(invalid)?;
            for s in &subs {
                mooring_core::selector::LabelSelector::parse(&s.selector)
                    .map_err(|e| invalid(format!("selector `{}`: {e}", s.selector)))?;
            }
            self.subscriptions = subs;
        } else if key == "context" {
            let ctx: BTreeMap<String, String> = typed(raw).map_err(invalid)?;
            self.context.extend(ctx);
        } else {
            return Err(ConfigError::Unknown {
                key: key.to_string(),
            });
        }
        Ok(())
    }
}

fn yaml(raw: &str) -> Result<Value, String> {
    if raw.trim().is_empty() {
        return Ok(Value::Null);
    }
    mooring_core::yaml::parse_one(raw).map_err(|e| e.to_string())
}

fn typed<T: serde::de::DeserializeOwned + Default>(raw: &str) -> Result<T, String> {
    let v = yaml(raw)?;
    if v.is_null() {
        return Ok(T::default());
    }
    serde_json::from_value(v).map_err(|e| e.to_string())
}

/// Replace every `$name` in the string leaves of a service's configuration by the
/// Secret's value (Argo CD's syntax; `$` followed by letters, digits, `-`, `_`, `.`). A `$`
/// followed by no such character is kept as written.
pub fn substitute_secrets(
    key: &str,
    v: &Value,
    secret: &BTreeMap<String, String>,
) -> Result<Value, ConfigError> {
    Ok(match v {
        Value::String(s) => Value::String(substitute_str(key, s, secret)?),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| substitute_secrets(key, x, secret))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => {
            let mut out = Map::new();
            for (k, x) in o {
                out.insert(k.clone(), substitute_secrets(key, x, secret)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

fn substitute_str(
    key: &str,
    s: &str,
    secret: &BTreeMap<String, String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
            .unwrap_or(after.len());
        // A trailing `.` ends a sentence, not a key name.
        let name = after[..len].trim_end_matches('.');
        if name.is_empty() {
            out.push('$');
            rest = after;
            continue;
        }
        match secret.get(name) {
            Some(value) => out.push_str(value),
            None => {
                return Err(ConfigError::MissingSecret {
                    key: key.to_string(),
                    secret_key: name.to_string(),
                })
            }
        }
        rest = &after[name.len()..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn services_templates_triggers_and_secrets() {
        let cm = map(&[
            ("service.slack", "token: $slack-token\n"),
            (
                "service.webhook.github",
                "url: https://api.github.com\nheaders:\n- name: Authorization\n  value: token $github.token\n",
            ),
            ("template.t", "message: hi {{.app.metadata.name}}\n"),
            (
                "trigger.on-x",
                "- when: app.status.sync.status == 'Synced'\n  send: [t]\n  oncePer: app.metadata.name\n",
            ),
            ("defaultTriggers", "- on-x\n"),
            ("defaultTriggers.slack", "[on-y]"),
            ("subscriptions", "- recipients: [slack:ops]\n  selector: team=ml\n"),
            ("context", "argocdUrl: https://cd.example.com\n"),
        ]);
        let secret = map(&[("slack-token", "xoxb-1"), ("github.token", "ghp")]);
        let (c, errors) = Config::parse(&cm, &secret);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(c.services["slack"].service_type, "slack");
        assert_eq!(c.services["slack"].config, json!({"token": "xoxb-1"}));
        assert_eq!(c.services["github"].service_type, "webhook");
        assert_eq!(
            c.services["github"].config["headers"][0]["value"],
            json!("token ghp")
        );
        assert_eq!(c.triggers["on-x"][0].once_per, "app.metadata.name");
        assert_eq!(c.default_triggers, vec!["on-x"]);
        assert_eq!(c.service_default_triggers["slack"], vec!["on-y"]);
        assert_eq!(c.subscriptions[0].selector, "team=ml");
        assert_eq!(c.context["argocdUrl"], "https://cd.example.com");
        assert_eq!(c.secrets["slack-token"], "xoxb-1");
    }

    #[test]
    fn a_broken_key_is_named_and_the_rest_still_works() {
        let cm = map(&[
            ("service.slack", "token: $nope\n"),
            ("service.webhook.ok", "url: http://127.0.0.1:1/x\n"),
            ("trigger.bad", "- when: app.status ==\n  send: [t]\n"),
            ("trigger.nosend", "- when: 'true'\n"),
            ("trigger.typo", "- wehn: 'true'\n  send: [t]\n"),
            ("template.broken", "message: [unclosed\n"),
            (
                "subscriptions",
                "- recipients: [slack:x]\n  selector: 'a in ('\n",
            ),
            ("resource.customizations", "x"),
            ("service.", "url: x"),
        ]);
        let (c, errors) = Config::parse(&cm, &BTreeMap::new());
        assert!(c.services.contains_key("ok"));
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        let all = text.join("\n");
        for key in [
            "`service.slack`",
            "$nope",
            "`trigger.bad`",
            "`trigger.nosend`",
            "`trigger.typo`",
            "`template.broken`",
            "`subscriptions`",
            "`resource.customizations`",
            "`service.`",
        ] {
            assert!(all.contains(key), "{key} missing from:\n{all}");
        }
        assert_eq!(errors.len(), 8, "{all}");
    }

    #[test]
    fn a_yaml_bomb_is_an_error_naming_the_key() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 0..9u8 {
            let (prev, next) = ((b'a' + i) as char, (b'b' + i) as char);
            bomb.push_str(&format!(
                "{next}: &{next} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
        }
        bomb.push_str("message: '*j'\n");
        let cm = map(&[
            ("template.bomb", bomb.as_str()),
            ("template.ok", "message: hi\n"),
        ]);
        let (c, errors) = Config::parse(&cm, &BTreeMap::new());
        assert!(c.templates.contains_key("ok"));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].to_string().contains("`template.bomb`"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn dollar_without_a_name_is_kept() {
        let s = substitute_str("k", "cost: 5$ or $$ ok", &BTreeMap::new()).expect("ok");
        assert_eq!(s, "cost: 5$ or $$ ok");
        let secret = map(&[("pw", "p")]);
        assert_eq!(
            substitute_str("k", "pass $pw.", &secret).expect("ok"),
            "pass p."
        );
    }

    #[test]
    fn webhook_knobs_mooring_does_not_act_on_are_said() {
        let cm: BTreeMap<String, String> = [(
            "service.webhook.github".to_string(),
            "url: https://api.github.com\nretryMax: 5\nmaxIdleConns: 10\n".to_string(),
        )]
        .into();
        let (config, errors) = Config::parse(&cm, &BTreeMap::new());
        // The service works…
        assert!(config.services.contains_key("github"));
        // …and what it does not act on is named.
        assert_eq!(errors.len(), 1, "{errors:?}");
        let e = errors[0].to_string();
        assert!(
            e.contains("`service.webhook.github`") && e.contains("retryMax, maxIdleConns"),
            "{e}"
        );
    }
}
