//! The `webhook` service, as Argo CD's.
//!
//! Service configuration (`service.webhook.<name>`): `url`, `headers` (a list of
//! `{name, value}`), `basicAuth` (`{username, password}`), `insecureSkipVerify`.
//! Template (`webhook.<name>`, `<name>` being the service's name): `method` (default
//! `GET`, as Argo CD), `path` (appended to `url` with one `/`), `body`. Without a
//! `webhook.<name>` section the request is a `GET` of `url` whose body is the message, as
//! notifications-engine sends it. The recipient is not used (webhook subscriptions usually
//! have an empty one).
//!
//! Argo CD's webhook client retries by itself (`retryMax`, `retryWaitMin`/`Max`); in
//! Mooring the controller retries every payload the same way, so those keys are accepted
//! and the controller's policy applies.

use crate::payload::{HttpMessage, Payload};
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Options {
    url: String,
    #[serde(default)]
    headers: Vec<Header>,
    #[serde(default)]
    basic_auth: Option<BasicAuth>,
    #[serde(default)]
    insecure_skip_verify: bool,
    // notifications-engine's retry and transport knobs: the controller's retry applies.
    #[serde(default, rename = "retryWaitMin")]
    _retry_wait_min: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "retryWaitMax")]
    _retry_wait_max: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "retryMax")]
    _retry_max: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "maxIdleConns")]
    _max_idle_conns: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "maxIdleConnsPerHost")]
    _max_idle_conns_per_host: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "maxConnsPerHost")]
    _max_conns_per_host: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "idleConnTimeout")]
    _idle_conn_timeout: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    name: String,
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BasicAuth {
    username: String,
    password: String,
}

/// The request of one notification. `service` is the service's name (the key of the
/// template's `webhook.<name>` section).
pub fn payloads(
    service: &str,
    config: &Value,
    notification: &Value,
    _recipient: &str,
) -> Result<Vec<Payload>, String> {
    let opts: Options = serde_json::from_value(config.clone())
        .map_err(|e| format!("invalid webhook configuration: {e}"))?;
    if opts.url.trim().is_empty() {
        return Err("`url` is empty".into());
    }
    let mut method = "GET".to_string();
    let mut url = opts.url.clone();
    let mut body = notification
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if let Some(section) = notification.get("webhook").and_then(|w| w.get(service)) {
        let field = |k: &str| section.get(k).and_then(Value::as_str).unwrap_or_default();
        body = field("body").to_string();
        if !field("method").trim().is_empty() {
            method = field("method").trim().to_ascii_uppercase();
        }
        let path = field("path");
        if !path.is_empty() {
            url = format!(
                "{}/{}",
                url.trim_end_matches('/'),
                path.trim_start_matches('/')
            );
        }
    }
    let mut headers: Vec<(String, String)> = opts
        .headers
        .into_iter()
        .map(|h| (h.name, h.value))
        .collect();
    if let Some(auth) = opts.basic_auth {
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", auth.username, auth.password));
        headers.push(("Authorization".into(), format!("Basic {token}")));
    }
    Ok(vec![Payload::Http(HttpMessage {
        method,
        url,
        headers,
        body: body.into_bytes(),
        insecure_skip_verify: opts.insecure_skip_verify,
        expect_ok_field: false,
    })])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn http(p: Vec<Payload>) -> HttpMessage {
        match p.into_iter().next() {
            Some(Payload::Http(m)) => m,
            other => panic!("not http: {other:?}"),
        }
    }

    #[test]
    fn method_path_body_headers_auth() {
        let config = json!({
            "url": "https://hooks.example.com/base/",
            "headers": [{"name": "Content-Type", "value": "application/json"}],
            "basicAuth": {"username": "u", "password": "p"},
            "retryMax": 5
        });
        let n = json!({"message": "m", "webhook": {"github": {"method": "post", "path": "/repos/x", "body": "{\"a\":1}"}}});
        let m = http(payloads("github", &config, &n, "").expect("ok"));
        assert_eq!(m.method, "POST");
        assert_eq!(m.url, "https://hooks.example.com/base/repos/x");
        assert_eq!(m.body, b"{\"a\":1}");
        assert_eq!(
            m.headers,
            vec![
                ("Content-Type".to_string(), "application/json".to_string()),
                ("Authorization".to_string(), "Basic dTpw".to_string())
            ]
        );
        // No section for this service: GET url with the message as body.
        let m = http(payloads("other", &config, &n, "").expect("ok"));
        assert_eq!(
            (m.method.as_str(), m.url.as_str()),
            ("GET", "https://hooks.example.com/base/")
        );
        assert_eq!(m.body, b"m");
    }

    #[test]
    fn bad_configuration_is_an_error() {
        for config in [
            json!({}),
            json!({"url": ""}),
            json!({"url": "x", "headerz": []}),
        ] {
            assert!(payloads("w", &config, &json!({}), "").is_err(), "{config}");
        }
    }
}
