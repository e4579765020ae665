//! The `email` service, as Argo CD's: an SMTP server and a sender in the configuration,
//! one address per recipient, the subject from the template's `email.subject` and the
//! body from `email.body` or, as Argo CD's templates write it, `message`.
//!
//! ```yaml
//! service.email.gmail: |
//!   host: smtp.gmail.com
//!   port: 465
//!   from: $email-username
//!   username: $email-username
//!   password: $email-password
//! ```
//!
//! Port 465 is implicit TLS; any other port upgrades with STARTTLS when the server offers
//! it (the controller's SMTP client, `mooring_controller::notifications::deliver`).
//! Whatever would end up in a mail header (addresses, subject) is checked here for line
//! breaks, so a rendered value cannot add headers.

use super::{config_object, opt_bool, opt_str, req_str};
use crate::payload::{EmailMessage, Payload, SmtpServer};
use serde_json::Value;

const KNOWN: &[&str] = &[
    "host",
    "port",
    "username",
    "password",
    "from",
    "html",
    "insecure_skip_verify",
];

pub fn payloads(
    config: &Value,
    notification: &Value,
    recipient: &str,
) -> Result<Vec<Payload>, String> {
    let map = config_object(config, KNOWN)?;
    let host = req_str(map, "host")?.trim().to_string();
    if host
        .chars()
        .any(|c| c.is_whitespace() || c == '/' || c == '@')
        || host.contains("://")
    {
        return Err(format!(
            "`host` must be a host name or address, not {host:?}"
        ));
    }
    let port = port(map.get("port"))?;
    let from = address("from", req_str(map, "from")?)?;
    let to = address("recipient", recipient)?;
    let username = opt_str(map, "username")?
        .filter(|u| !u.is_empty())
        .map(str::to_string);
    let password = opt_str(map, "password")?
        .filter(|p| !p.is_empty())
        .map(str::to_string);
    if password.is_some() && username.is_none() {
        return Err("`password` is set but `username` is not".to_string());
    }
    let email = notification.get("email");
    let field = |name: &str| -> Result<Option<String>, String> {
        match email.and_then(|e| e.get(name)) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!(
                "template field `email.{name}` must be a string, not {}",
                super::json_kind(other)
            )),
        }
    };
    let subject = field("subject")?.unwrap_or_default();
    let subject = subject.trim();
    if subject.contains(['\r', '\n']) {
        return Err(format!(
            "template field `email.subject` renders to several lines: {subject:?}"
        ));
    }
    let body = match field("body")?.filter(|b| !b.is_empty()) {
        Some(b) => b,
        None => match notification.get("message") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(format!(
                    "template field `message` must be a string, not {}",
                    super::json_kind(other)
                ))
            }
        },
    };
    Ok(vec![Payload::Email(EmailMessage {
        server: SmtpServer {
            host,
            port,
            username,
            password,
            insecure_skip_verify: opt_bool(map, "insecure_skip_verify")?,
        },
        from,
        to: vec![to],
        subject: subject.to_string(),
        body,
        html: opt_bool(map, "html")?,
    })])
}

/// `port`: a number 1..=65535 (a quoted number is read too).
fn port(v: Option<&Value>) -> Result<u16, String> {
    let bad = |shown: String| format!("`port` must be a port number (1-65535), not {shown}");
    match v {
        None | Some(Value::Null) => Err("`port` is required".to_string()),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
            .ok_or_else(|| bad(n.to_string())),
        Some(Value::String(s)) => s
            .trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad(format!("{s:?}"))),
        Some(other) => Err(bad(super::json_kind(other))),
    }
}

/// One mail address (`user@domain` or `Name <user@domain>`), one line.
fn address(what: &str, s: &str) -> Result<String, String> {
    let s = s.trim();
    let addr = match (s.find('<'), s.rfind('>')) {
        (Some(open), Some(close)) if open < close && close == s.len() - 1 => &s[open + 1..close],
        _ => s,
    };
    let valid = match addr.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !addr.chars().any(|c| {
                    c.is_whitespace() || c.is_control() || matches!(c, ',' | ';' | '<' | '>')
                })
        }
        None => false,
    };
    if !valid || s.contains(['\r', '\n']) {
        return Err(format!(
            "{what} {s:?} is not one mail address (one address per recipient; a subscription separates recipients with `;`)"
        ));
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> Value {
        json!({
            "host": "smtp.example.com",
            "port": 587,
            "from": "mooring@example.com",
            "username": "mooring@example.com",
            "password": "s3cret",
        })
    }

    fn one(config: &Value, notification: &Value, rcpt: &str) -> Result<EmailMessage, String> {
        let mut p = payloads(config, notification, rcpt)?;
        assert_eq!(p.len(), 1);
        match p.remove(0) {
            Payload::Email(m) => Ok(m),
            other => panic!("not an email: {other:?}"),
        }
    }

    #[test]
    fn argo_email_service_and_template() {
        let n = json!({
            "message": "Application guestbook has been successfully synced.\n",
            "email": {"subject": "Application guestbook has been successfully synced."},
        });
        let m = one(&config(), &n, "ml-team@example.com").expect("payload");
        assert_eq!(
            m,
            EmailMessage {
                server: SmtpServer {
                    host: "smtp.example.com".into(),
                    port: 587,
                    username: Some("mooring@example.com".into()),
                    password: Some("s3cret".into()),
                    insecure_skip_verify: false,
                },
                from: "mooring@example.com".into(),
                to: vec!["ml-team@example.com".into()],
                subject: "Application guestbook has been successfully synced.".into(),
                body: "Application guestbook has been successfully synced.\n".into(),
                html: false,
            }
        );
    }

    #[test]
    fn email_body_wins_over_message_and_html_and_quoted_port() {
        let mut c = config();
        c["html"] = json!(true);
        c["port"] = json!("465");
        c["insecure_skip_verify"] = json!(true);
        c["username"] = json!("");
        c["password"] = json!("");
        let n = json!({"message": "plain", "email": {"subject": "s", "body": "<b>html</b>"}});
        let m = one(&c, &n, "Team <team@example.com>").expect("payload");
        assert_eq!(m.body, "<b>html</b>");
        assert!(m.html);
        assert_eq!(m.server.port, 465);
        assert!(m.server.insecure_skip_verify);
        assert_eq!(m.server.username, None);
        assert_eq!(m.server.password, None);
        assert_eq!(m.to, vec!["Team <team@example.com>".to_string()]);
    }

    #[test]
    fn no_template_fields_means_empty_subject_and_body() {
        let m = one(&config(), &json!({}), "a@example.com").expect("payload");
        assert_eq!((m.subject.as_str(), m.body.as_str()), ("", ""));
    }

    #[test]
    fn malformed_configuration_is_named() {
        let cases: Vec<(Value, &str)> = vec![
            (json!(null), "the configuration is empty"),
            (json!("smtp.example.com"), "must be a mapping"),
            (json!({"port": 587, "from": "a@b.c"}), "`host` is required"),
            (
                json!({"host": " ", "port": 587, "from": "a@b.c"}),
                "`host` is required",
            ),
            (
                json!({"host": "smtp://x", "port": 587, "from": "a@b.c"}),
                "`host` must be a host name",
            ),
            (json!({"host": "x", "from": "a@b.c"}), "`port` is required"),
            (
                json!({"host": "x", "port": 0, "from": "a@b.c"}),
                "`port` must be a port number (1-65535), not 0",
            ),
            (
                json!({"host": "x", "port": 70000, "from": "a@b.c"}),
                "not 70000",
            ),
            (
                json!({"host": "x", "port": "smtp", "from": "a@b.c"}),
                "not \"smtp\"",
            ),
            (json!({"host": "x", "port": -1, "from": "a@b.c"}), "not -1"),
            (json!({"host": "x", "port": 25}), "`from` is required"),
            (
                json!({"host": "x", "port": 25, "from": "nobody"}),
                "from \"nobody\" is not one mail address",
            ),
            (
                json!({"host": "x", "port": 25, "from": "a@b.c", "html": "yes"}),
                "`html` must be true or false",
            ),
            (
                json!({"host": "x", "port": 25, "from": "a@b.c", "password": "p"}),
                "`password` is set but `username` is not",
            ),
            (
                json!({"host": "x", "port": 25, "from": "a@b.c", "tls": true}),
                "unknown configuration key `tls`",
            ),
        ];
        for (c, want) in cases {
            let err = payloads(&c, &json!({}), "a@example.com").expect_err(&c.to_string());
            assert!(err.contains(want), "{c}: {err}");
        }
    }

    #[test]
    fn hostile_recipients_and_subjects_are_refused() {
        for rcpt in [
            "",
            "a@example.com, b@example.com",
            "a@example.com\r\nBcc: victim@example.com",
            "a@@example.com",
            "@example.com",
        ] {
            let err = payloads(&config(), &json!({}), rcpt).expect_err(rcpt);
            assert!(err.contains("is not one mail address"), "{rcpt:?}: {err}");
        }
        let n = json!({"email": {"subject": "hi\r\nBcc: victim@example.com"}});
        let err = payloads(&config(), &n, "a@example.com").expect_err("subject");
        assert!(
            err.contains("`email.subject` renders to several lines"),
            "{err}"
        );
        let n = json!({"email": {"subject": ["x"]}});
        let err = payloads(&config(), &n, "a@example.com").expect_err("subject");
        assert!(err.contains("`email.subject` must be a string"), "{err}");
    }
}
