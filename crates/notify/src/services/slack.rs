//! The `slack` service.
//!
//! Argo CD's slack service posts with a bot token through Slack's Web API; Mooring builds
//! the same message:
//!
//! - configuration (`service.slack[.<name>]`): `token`, `apiURL` (default
//!   `https://slack.com/api`), `username`, `icon` (an `:emoji:` or an http(s) URL),
//!   `insecureSkipVerify`; `signingSecret`, `channels` and `disableUnfurl` are accepted
//!   (`disableUnfurl` sets `unfurl_links`/`unfurl_media` to false);
//! - one `POST <apiURL>/chat.postMessage` per recipient, `Authorization: Bearer <token>`,
//!   a JSON body: `channel` = the recipient, `text` = the message, `username`,
//!   `icon_emoji`/`icon_url`, and the template's `slack.attachments` / `slack.blocks`
//!   (JSON strings, parsed: invalid JSON is an error naming the field);
//! - Mooring's addition for Slack's *incoming webhooks* (the "incoming webhook";
//!   notifications-engine has no such form and points users at the generic webhook
//!   service): with `webhookURL` instead of `token`, the same body (without `channel`
//!   unless a recipient is given) is posted to that URL.
//!
//! `slack.username`/`slack.icon` in the template override the service's. Slack's
//! `groupingKey`/`deliveryPolicy` threading (which needs Slack's answer) is not done:
//! every notification is a new message.

use crate::payload::{HttpMessage, Payload};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// Slack's Web API, notifications-engine's default.
pub const DEFAULT_API_URL: &str = "https://slack.com/api";

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Options {
    #[serde(default)]
    token: String,
    #[serde(default, rename = "apiURL")]
    api_url: String,
    #[serde(default, rename = "webhookURL")]
    webhook_url: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    icon: String,
    #[serde(default)]
    insecure_skip_verify: bool,
    #[serde(default)]
    disable_unfurl: bool,
    #[serde(default, rename = "signingSecret")]
    _signing_secret: Option<serde::de::IgnoredAny>,
    #[serde(default, rename = "channels")]
    _channels: Option<serde::de::IgnoredAny>,
}

/// The message of one notification to one channel.
pub fn payloads(
    config: &Value,
    notification: &Value,
    recipient: &str,
) -> Result<Vec<Payload>, String> {
    let opts: Options = serde_json::from_value(config.clone())
        .map_err(|e| format!("invalid slack configuration: {e}"))?;
    let slack = notification.get("slack");
    let field = |k: &str| {
        slack
            .and_then(|s| s.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let mut body = Map::new();
    if !recipient.is_empty() {
        body.insert("channel".into(), json!(recipient));
    }
    body.insert(
        "text".into(),
        json!(notification
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()),
    );
    let username = Some(field("username"))
        .filter(|u| !u.is_empty())
        .unwrap_or(opts.username.clone());
    if !username.is_empty() {
        body.insert("username".into(), json!(username));
    }
    let icon = Some(field("icon"))
        .filter(|u| !u.is_empty())
        .unwrap_or(opts.icon.clone());
    if icon.len() > 2 && icon.starts_with(':') && icon.ends_with(':') {
        body.insert("icon_emoji".into(), json!(icon));
    } else if icon.starts_with("https://") || icon.starts_with("http://") {
        body.insert("icon_url".into(), json!(icon));
    } else if !icon.is_empty() {
        return Err(format!(
            "icon `{icon}` is neither an :emoji: nor an http(s) URL"
        ));
    }
    for key in ["attachments", "blocks"] {
        let raw = field(key);
        if raw.is_empty() {
            continue;
        }
        let parsed: Value = serde_json::from_str(&raw)
            .map_err(|e| format!("template field slack.{key} is not valid JSON ({e}): {raw}"))?;
        if !parsed.is_array() {
            return Err(format!(
                "template field slack.{key} is not a JSON list: {raw}"
            ));
        }
        body.insert(key.into(), parsed);
    }
    if opts.disable_unfurl {
        body.insert("unfurl_links".into(), json!(false));
        body.insert("unfurl_media".into(), json!(false));
    }
    let mut headers = vec![(
        "Content-Type".to_string(),
        "application/json; charset=utf-8".to_string(),
    )];
    let url = if !opts.token.is_empty() {
        if recipient.is_empty() {
            return Err(
                "a Slack bot token needs a channel: the subscription's recipient is empty".into(),
            );
        }
        headers.push(("Authorization".into(), format!("Bearer {}", opts.token)));
        let api = if opts.api_url.trim().is_empty() {
            DEFAULT_API_URL
        } else {
            opts.api_url.trim()
        };
        format!("{}/chat.postMessage", api.trim_end_matches('/'))
    } else if !opts.webhook_url.trim().is_empty() {
        opts.webhook_url.trim().to_string()
    } else {
        return Err("neither `token` nor `webhookURL` is set".into());
    };
    Ok(vec![Payload::Http(HttpMessage {
        method: "POST".into(),
        url,
        headers,
        body: Value::Object(body).to_string().into_bytes(),
        insecure_skip_verify: opts.insecure_skip_verify,
        // The Web API (a token) says in its answer whether it posted; an incoming webhook
        // answers with its HTTP status.
        expect_ok_field: !opts.token.trim().is_empty(),
    })])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(p: Vec<Payload>) -> (HttpMessage, Value) {
        match p.into_iter().next() {
            Some(Payload::Http(m)) => {
                let body = serde_json::from_slice(&m.body).expect("json body");
                (m, body)
            }
            other => panic!("not http: {other:?}"),
        }
    }

    #[test]
    fn bot_token_message() {
        let config = json!({"token": "xoxb-1", "username": "argocd", "icon": ":rocket:", "apiURL": "http://127.0.0.1:9/api/"});
        let n = json!({"message": "hi", "slack": {"attachments": "[{\"title\": \"a\"}]", "blocks": "", "deliveryPolicy": "Post"}});
        let (m, body) = http(payloads(&config, &n, "ops").expect("ok"));
        assert_eq!(m.url, "http://127.0.0.1:9/api/chat.postMessage");
        assert!(m
            .headers
            .contains(&("Authorization".into(), "Bearer xoxb-1".into())));
        assert_eq!(
            body,
            json!({"channel": "ops", "text": "hi", "username": "argocd", "icon_emoji": ":rocket:", "attachments": [{"title": "a"}]})
        );
        let (m, _) = http(payloads(&json!({"token": "t"}), &n, "ops").expect("ok"));
        assert_eq!(m.url, "https://slack.com/api/chat.postMessage");
    }

    #[test]
    fn incoming_webhook_and_errors() {
        let n = json!({"message": "hi", "slack": {"username": "bot", "icon": "https://x/i.png"}});
        let (m, body) = http(
            payloads(
                &json!({"webhookURL": "https://hooks.slack.com/services/T/B/X"}),
                &n,
                "",
            )
            .expect("ok"),
        );
        assert_eq!(m.url, "https://hooks.slack.com/services/T/B/X");
        assert!(!m.headers.iter().any(|(k, _)| k == "Authorization"));
        assert_eq!(
            body,
            json!({"text": "hi", "username": "bot", "icon_url": "https://x/i.png"})
        );
        let bad = json!({"message": "x", "slack": {"attachments": "[{\"title\": }]"}});
        let e = payloads(&json!({"token": "t"}), &bad, "c").expect_err("bad json");
        assert!(e.contains("slack.attachments"), "{e}");
        assert!(payloads(&json!({}), &n, "c").is_err());
        assert!(payloads(&json!({"token": "t"}), &n, "").is_err());
        assert!(payloads(&json!({"tokn": "t"}), &n, "c").is_err());
    }
}
