//! Sending one [`Payload`]: HTTP through the admin-controlled [`Outbound`] client (every
//! service URL is written by a tenant or an admin and is checked like any other user URL),
//! email over SMTP.
//!
//! SMTP is lettre's client on a connection this module opens: the mail server's name is
//! resolved and checked once by [`Outbound::admit_smtp`] (the admin's allowlist, as for a
//! URL), and the TCP connection goes to those addresses only, so a tenant's email service
//! cannot reach a loopback or metadata address the allowlist does not open. Port 465 is
//! implicit TLS (SMTPS); any other port upgrades with STARTTLS when the server offers it,
//! as Argo CD's email service (Go's `net/smtp`) does. A password is never sent in clear:
//! without TLS, AUTH is refused unless the server is on a loopback address. Certificates
//! are checked against the system's trust store (as reqwest's), for the configured host
//! name, unless the service sets `insecure_skip_verify`. One deadline
//! ([`SMTP_TIMEOUT`]) covers the whole exchange.

use crate::outbound::{
    error_chain, install_crypto_provider, Outbound, OutboundError, OutboundRequest,
};
use lettre::message::{header::ContentType, Mailbox, Message};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use mooring_notify::payload::{EmailMessage, HttpMessage, Payload};
use std::time::Duration;

/// The deadline of one email: connection, TLS, AUTH and the message.
pub const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a payload was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("{url}: {source}")]
    Http {
        url: String,
        #[source]
        source: OutboundError,
    },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} did not accept it: {error}")]
    NotOk { url: String, error: String },
    #[error("invalid HTTP method `{0}`")]
    Method(String),
    #[error("email to {to}: {message}")]
    Email { to: String, message: String },
    #[error("email to {to}: mail server {server}: {source}")]
    SmtpRefused {
        to: String,
        server: String,
        #[source]
        source: OutboundError,
    },
    #[error("email to {to}: mail server {server}: {message}")]
    Smtp {
        to: String,
        server: String,
        message: String,
    },
}

/// Send one payload.
pub async fn deliver(outbound: &Outbound, payload: &Payload) -> Result<(), DeliverError> {
    match payload {
        Payload::Http(m) => send_http(outbound, m).await,
        Payload::Email(m) => send_email(outbound, m).await,
    }
}

async fn send_http(outbound: &Outbound, m: &HttpMessage) -> Result<(), DeliverError> {
    let method = reqwest::Method::from_bytes(m.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| DeliverError::Method(m.method.clone()))?;
    let mut req = OutboundRequest::new(method, &m.url);
    req.headers = m.headers.clone();
    req.body = Some(m.body.clone());
    req.insecure = m.insecure_skip_verify;
    req.max_body = 64 * 1024;
    let resp = outbound
        .send(req)
        .await
        .map_err(|source| DeliverError::Http {
            url: m.url.clone(),
            source,
        })?;
    if !(200..300).contains(&resp.status) {
        return Err(DeliverError::Status {
            url: m.url.clone(),
            status: resp.status,
        });
    }
    if m.expect_ok_field {
        let answer: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
        if answer.get("ok").and_then(serde_json::Value::as_bool) != Some(true) {
            let error = answer
                .get("error")
                .and_then(serde_json::Value::as_str)
                .map_or_else(
                    || "the answer has no \"ok\": true".to_string(),
                    str::to_string,
                );
            return Err(DeliverError::NotOk {
                url: m.url.clone(),
                error,
            });
        }
    }
    Ok(())
}

async fn send_email(outbound: &Outbound, m: &EmailMessage) -> Result<(), DeliverError> {
    let to = m.to.join(", ");
    let server = format!("{}:{}", m.server.host, m.server.port);
    let message = build_message(m).map_err(|message| DeliverError::Email {
        to: to.clone(),
        message,
    })?;
    let addrs = outbound
        .admit_smtp(&m.server.host, m.server.port)
        .await
        .map_err(|source| DeliverError::SmtpRefused {
            to: to.clone(),
            server: server.clone(),
            source,
        })?;
    let smtp_error = |message: String| DeliverError::Smtp {
        to: to.clone(),
        server: server.clone(),
        message,
    };
    match tokio::time::timeout(SMTP_TIMEOUT, submit(m, &addrs, &message)).await {
        Ok(result) => result.map_err(smtp_error),
        Err(_) => Err(smtp_error(format!("no answer within {SMTP_TIMEOUT:?}"))),
    }
}

/// The message (headers encoded by lettre: a rendered subject cannot add a header).
fn build_message(m: &EmailMessage) -> Result<Message, String> {
    let mailbox = |what: &str, s: &str| {
        s.parse::<Mailbox>()
            .map_err(|e| format!("{what} {s:?} is not a mail address: {e}"))
    };
    let mut builder = Message::builder()
        .from(mailbox("from", &m.from)?)
        .subject(m.subject.clone())
        .header(if m.html {
            ContentType::TEXT_HTML
        } else {
            ContentType::TEXT_PLAIN
        });
    for to in &m.to {
        builder = builder.to(mailbox("recipient", to)?);
    }
    builder
        .body(m.body.clone())
        .map_err(|e| format!("building the message: {e}"))
}

/// The SMTP exchange with the checked addresses.
async fn submit(
    m: &EmailMessage,
    addrs: &[std::net::SocketAddr],
    message: &Message,
) -> Result<(), String> {
    install_crypto_provider();
    let s = &m.server;
    let tls = TlsParameters::builder(s.host.trim_matches(['[', ']']).to_string())
        .dangerous_accept_invalid_certs(s.insecure_skip_verify)
        .dangerous_accept_invalid_hostnames(s.insecure_skip_verify)
        .build_rustls()
        .map_err(|e| format!("TLS setup: {}", error_chain(&e)))?;
    let hello = ClientId::default();
    let implicit_tls = s.port == 465;
    let mut conn = AsyncSmtpConnection::connect_tokio1(
        addrs,
        Some(SMTP_TIMEOUT),
        &hello,
        implicit_tls.then(|| tls.clone()),
        None,
    )
    .await
    .map_err(|e| format!("connecting: {}", error_chain(&e)))?;
    if !implicit_tls && conn.can_starttls() {
        conn.starttls(tls, &hello)
            .await
            .map_err(|e| format!("STARTTLS: {}", error_chain(&e)))?;
    }
    if let Some(username) = &s.username {
        if !conn.is_encrypted() && !addrs.iter().all(|a| a.ip().is_loopback()) {
            conn.abort().await;
            return Err(
                "the server offers no TLS (no STARTTLS on a port other than 465); the password is not sent in clear"
                    .to_string(),
            );
        }
        let credentials =
            Credentials::new(username.clone(), s.password.clone().unwrap_or_default());
        if let Err(e) = conn
            .auth(&[Mechanism::Plain, Mechanism::Login], &credentials)
            .await
        {
            conn.abort().await;
            return Err(format!("AUTH as {username:?}: {}", error_chain(&e)));
        }
    }
    let sent = conn
        .send(message.envelope(), &message.formatted())
        .await
        .map_err(|e| format!("sending: {}", error_chain(&e)));
    if sent.is_err() {
        conn.abort().await;
    } else {
        // The message is accepted; a failed QUIT changes nothing.
        if let Err(e) = conn.quit().await {
            tracing::debug!("SMTP QUIT to {}:{}: {e}", s.host, s.port);
        }
    }
    sent.map(|_| ())
}
