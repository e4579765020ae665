//! Sending one [`Payload`]: HTTP through the admin-controlled [`Outbound`] client (every
//! service URL is written by a tenant or an admin and is checked like any other user URL),
//! email over SMTP.

use crate::outbound::{Outbound, OutboundError, OutboundRequest};
use mooring_notify::payload::{EmailMessage, HttpMessage, Payload};

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
    #[error("invalid HTTP method `{0}`")]
    Method(String),
    #[error("email to {to}: {message}")]
    Email { to: String, message: String },
}

/// Send one payload.
pub async fn deliver(outbound: &Outbound, payload: &Payload) -> Result<(), DeliverError> {
    match payload {
        Payload::Http(m) => send_http(outbound, m).await,
        Payload::Email(m) => send_email(m).await,
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
    if (200..300).contains(&resp.status) {
        Ok(())
    } else {
        Err(DeliverError::Status {
            url: m.url.clone(),
            status: resp.status,
        })
    }
}

async fn send_email(m: &EmailMessage) -> Result<(), DeliverError> {
    Err(DeliverError::Email {
        to: m.to.join(", "),
        message: "SMTP delivery is not built yet".to_string(),
    })
}
