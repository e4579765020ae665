//! What one notification to one recipient of one service becomes on the wire.
//!
//! Every service renders to a list of [`Payload`]s (Alertmanager, with several targets,
//! to one per target); the controller sends them and knows nothing about services. Secrets
//! are already substituted here, so a `Payload`'s `Debug` output must never be logged.

/// One thing to send.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Http(HttpMessage),
    Email(EmailMessage),
}

/// An HTTP request (webhook, Slack, Alertmanager, Grafana).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpMessage {
    /// `GET`, `POST`, `PUT`, `PATCH`, `DELETE`.
    pub method: String,
    pub url: String,
    /// Authorization included (basic auth already encoded, bearer tokens, API keys).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Accept any TLS certificate (the service's `insecureSkipVerify`).
    pub insecure_skip_verify: bool,
    /// The answer is JSON whose `ok` must be `true`: Slack's Web API answers HTTP 200 with
    /// `{"ok": false, "error": "channel_not_found"}` when it did not post.
    pub expect_ok_field: bool,
}

/// An email, sent over SMTP.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailMessage {
    pub server: SmtpServer,
    pub from: String,
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
    /// Send the body as `text/html` (the service's `html: true`).
    pub html: bool,
}

/// Where and how to submit an email (Argo CD's email service: `host`, `port`, `username`,
/// `password`, `insecure_skip_verify`). Port 465 is implicit TLS; any other port upgrades
/// with STARTTLS when the server offers it.
#[derive(Debug, Clone, PartialEq)]
pub struct SmtpServer {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
    pub insecure_skip_verify: bool,
}
