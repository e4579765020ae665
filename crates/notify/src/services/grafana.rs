//! The `grafana` service, as Argo CD's: an annotation on Grafana's dashboards through its
//! annotations API (`POST {apiUrl}/annotations`), the seed's "update monitoring
//! dashboards".
//!
//! ```yaml
//! service.grafana: |
//!   apiUrl: https://grafana.example.com/api
//!   apiKey: $grafana-api-key
//! # subscription: notifications.argoproj.io/subscribe.on-sync-succeeded.grafana: tag1|tag2
//! ```
//!
//! The recipient is a `|`-separated list of tags; the template's `grafana.tags` and the
//! service's `tags` (both `|`-separated, as Argo CD) are added. The text is the template's
//! `message`, the time the send's ([`super::attach_send`]), in Unix milliseconds.

use super::{config_object, json_kind, opt_bool, opt_str, req_str, send_of};
use crate::payload::{HttpMessage, Payload};
use serde_json::{json, Value};

const KNOWN: &[&str] = &["apiUrl", "apiKey", "insecureSkipVerify", "tags"];

pub fn payloads(
    config: &Value,
    notification: &Value,
    recipient: &str,
) -> Result<Vec<Payload>, String> {
    let map = config_object(config, KNOWN)?;
    let api_url = req_str(map, "apiUrl")?.trim();
    let (base, query) = match api_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (api_url, None),
    };
    let rest = base
        .strip_prefix("https://")
        .or_else(|| base.strip_prefix("http://"))
        .ok_or_else(|| format!("`apiUrl` must be an http(s) URL, not {api_url:?}"))?;
    if rest.is_empty()
        || rest.starts_with('/')
        || api_url.chars().any(|c| c.is_whitespace() || c == '#')
    {
        return Err(format!(
            "`apiUrl` must be an http(s) URL with a host, not {api_url:?}"
        ));
    }
    let mut url = format!("{}/annotations", base.trim_end_matches('/'));
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    let api_key = req_str(map, "apiKey")?;
    let mut tags = split_tags(recipient);
    match notification.get("grafana").map(|g| g.get("tags")) {
        None | Some(None) | Some(Some(Value::Null)) => {}
        Some(Some(Value::String(t))) => tags.extend(split_tags(t)),
        Some(Some(other)) => {
            return Err(format!(
                "template field `grafana.tags` must be a `|`-separated string, not {}",
                json_kind(other)
            ))
        }
    }
    tags.extend(split_tags(opt_str(map, "tags")?.unwrap_or("")));
    let text = match notification.get("message") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            return Err(format!(
                "template field `message` must be a string, not {}",
                json_kind(other)
            ))
        }
    };
    let send = send_of(notification)?;
    let body = json!({
        "time": send.time.as_millisecond(),
        "isRegion": false,
        "tags": tags,
        "text": text,
    });
    Ok(vec![Payload::Http(HttpMessage {
        method: "POST".to_string(),
        url,
        headers: vec![
            ("Content-Type".to_string(), "application/json".to_string()),
            ("Authorization".to_string(), format!("Bearer {api_key}")),
        ],
        body: serde_json::to_vec(&body).map_err(|e| format!("encoding the annotation: {e}"))?,
        insecure_skip_verify: opt_bool(map, "insecureSkipVerify")?,
        expect_ok_field: false,
    })])
}

/// `a|b|c` → tags, empty ones dropped.
fn split_tags(s: &str) -> Vec<String> {
    s.split('|')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::attach_send;

    fn notification(n: Value) -> Value {
        let mut n = n;
        attach_send(
            &mut n,
            "app-sync-succeeded",
            mooring_core::time::parse("2026-12-06T08:00:00.250Z").expect("time"),
        );
        n
    }

    #[test]
    fn annotation_as_argo_sends_it() {
        let config = json!({"apiUrl": "https://grafana.example.com/api/", "apiKey": "glsa_key", "tags": "argocd"});
        let n = notification(json!({
            "message": "Application guestbook has been successfully synced.",
            "grafana": {"tags": "guestbook|prod"},
        }));
        let p = payloads(&config, &n, "ml|deploys").expect("payload");
        let [Payload::Http(m)] = p.as_slice() else {
            panic!("one HTTP payload: {p:?}")
        };
        assert_eq!(m.method, "POST");
        assert_eq!(m.url, "https://grafana.example.com/api/annotations");
        assert_eq!(
            m.headers,
            vec![
                ("Content-Type".to_string(), "application/json".to_string()),
                ("Authorization".to_string(), "Bearer glsa_key".to_string()),
            ]
        );
        assert!(!m.insecure_skip_verify);
        let body: Value = serde_json::from_slice(&m.body).expect("json");
        assert_eq!(
            body,
            json!({
                "time": 1_796_544_000_250_i64,
                "isRegion": false,
                "tags": ["ml", "deploys", "guestbook", "prod", "argocd"],
                "text": "Application guestbook has been successfully synced.",
            })
        );
    }

    #[test]
    fn empty_recipient_and_no_message() {
        let config = json!({"apiUrl": "http://127.0.0.1:3000/api?orgId=2", "apiKey": "k", "insecureSkipVerify": true});
        let p = payloads(&config, &notification(json!({})), "").expect("payload");
        let [Payload::Http(m)] = p.as_slice() else {
            panic!("one HTTP payload: {p:?}")
        };
        assert_eq!(m.url, "http://127.0.0.1:3000/api/annotations?orgId=2");
        assert!(m.insecure_skip_verify);
        let body: Value = serde_json::from_slice(&m.body).expect("json");
        assert_eq!(body["tags"], json!([]));
        assert_eq!(body["text"], "");
    }

    #[test]
    fn malformed_configuration_is_named() {
        let n = notification(json!({"message": "m"}));
        let cases: Vec<(Value, &str)> = vec![
            (json!({"apiKey": "k"}), "`apiUrl` is required"),
            (
                json!({"apiUrl": "grafana:3000", "apiKey": "k"}),
                "`apiUrl` must be an http(s) URL",
            ),
            (json!({"apiUrl": "https://", "apiKey": "k"}), "with a host"),
            (
                json!({"apiUrl": "https://g/api x", "apiKey": "k"}),
                "with a host",
            ),
            (json!({"apiUrl": "https://g/api"}), "`apiKey` is required"),
            (
                json!({"apiUrl": "https://g/api", "apiKey": "k", "insecureSkipVerify": "true"}),
                "`insecureSkipVerify` must be true or false",
            ),
            (
                json!({"apiUrl": "https://g/api", "apiKey": "k", "tags": ["a"]}),
                "`tags` must be a string",
            ),
            (
                json!({"apiUrl": "https://g/api", "apiKey": "k", "apikey": "k"}),
                "unknown configuration key `apikey`",
            ),
        ];
        for (c, want) in cases {
            let err = payloads(&c, &n, "t").expect_err(&c.to_string());
            assert!(err.contains(want), "{c}: {err}");
        }
        let config = json!({"apiUrl": "https://g/api", "apiKey": "k"});
        let err = payloads(
            &config,
            &notification(json!({"grafana": {"tags": ["a"]}})),
            "t",
        )
        .expect_err("tags list");
        assert!(
            err.contains("`grafana.tags` must be a `|`-separated string"),
            "{err}"
        );
        let err = payloads(&config, &json!({"message": "m"}), "t").expect_err("no send");
        assert!(err.contains("has no `mooringSend`"), "{err}");
    }
}
