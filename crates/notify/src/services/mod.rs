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
