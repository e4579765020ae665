//! API errors as Kubernetes reports them: every failure becomes a `Status` object with the
//! `reason` and `code` clients switch on (kube-rs, kubectl and client-go all branch on
//! `reason`, not on the message), so the variants mirror `metav1.StatusReason`.

use serde_json::{json, Value};

/// Which object an error is about, for `Status.details`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Details {
    pub name: String,
    pub group: String,
    /// The resource plural, as Kubernetes puts it in `details.kind`.
    pub kind: String,
}

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum ApiError {
    #[error("{message}")]
    NotFound { message: String, details: Details },
    #[error("{message}")]
    AlreadyExists { message: String, details: Details },
    #[error("{message}")]
    Conflict { message: String, details: Details },
    #[error("{message}")]
    Invalid {
        message: String,
        details: Details,
        causes: Vec<String>,
    },
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Gone(String),
    /// 410 `Expired` for a continue token whose snapshot is gone, carrying the fresh
    /// (inconsistent) token in the Status' `metadata.continue`, as Kubernetes does.
    #[error("{message}")]
    ContinueExpired {
        message: String,
        continue_token: String,
    },
    /// 504 `Timeout` (e.g. a resourceVersion newer than the store's).
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    NotAcceptable(String),
    #[error("{0}")]
    RequestEntityTooLarge(String),
    #[error("{0}")]
    Internal(String),
}

/// `name.group`, or just `name` for the core group, as Kubernetes names types in messages.
fn qualified(name: &str, group: &str) -> String {
    if group.is_empty() {
        name.to_string()
    } else {
        format!("{name}.{group}")
    }
}

/// The `details.causes[].reason` of a field error, from its message as
/// `k8s.io/apimachinery/pkg/util/validation/field` words each error type.
fn cause_reason(msg: &str) -> &'static str {
    if msg.starts_with("Required value") {
        "FieldValueRequired"
    } else if msg.starts_with("Unsupported value") {
        "FieldValueNotSupported"
    } else if msg.starts_with("Duplicate value") {
        "FieldValueDuplicate"
    } else if msg.starts_with("Too long") {
        "FieldValueTooLong"
    } else if msg.starts_with("Too many") {
        "FieldValueTooMany"
    } else if msg.starts_with("Forbidden") {
        "FieldValueForbidden"
    } else if msg.starts_with("Invalid value") && msg.contains(" in body must be of type ") {
        "FieldValueTypeInvalid"
    } else {
        "FieldValueInvalid"
    }
}

impl ApiError {
    pub fn not_found(plural_group: (&str, &str), name: &str) -> Self {
        let (plural, group) = plural_group;
        let what = qualified(plural, group);
        ApiError::NotFound {
            message: format!("{what} \"{name}\" not found"),
            details: Details {
                name: name.into(),
                group: group.into(),
                kind: plural.into(),
            },
        }
    }

    pub fn already_exists(plural_group: (&str, &str), name: &str) -> Self {
        let (plural, group) = plural_group;
        let what = qualified(plural, group);
        ApiError::AlreadyExists {
            message: format!("{what} \"{name}\" already exists"),
            details: Details {
                name: name.into(),
                group: group.into(),
                kind: plural.into(),
            },
        }
    }

    pub fn conflict(plural_group: (&str, &str), name: &str, why: &str) -> Self {
        let (plural, group) = plural_group;
        let what = qualified(plural, group);
        ApiError::Conflict {
            message: format!("Operation cannot be fulfilled on {what} \"{name}\": {why}"),
            details: Details {
                name: name.into(),
                group: group.into(),
                kind: plural.into(),
            },
        }
    }

    /// A 422 with one message per offending field, worded like Kubernetes'
    /// `Kind.group "name" is invalid: [field: reason, ...]`.
    pub fn invalid(kind_group: (&str, &str), name: &str, causes: Vec<String>) -> Self {
        let (kind, group) = kind_group;
        let what = qualified(kind, group);
        let joined = if causes.len() == 1 {
            causes[0].clone()
        } else {
            format!("[{}]", causes.join(", "))
        };
        ApiError::Invalid {
            message: format!("{what} \"{name}\" is invalid: {joined}"),
            details: Details {
                name: name.into(),
                group: group.into(),
                kind: kind.into(),
            },
            causes,
        }
    }

    pub fn code(&self) -> u16 {
        match self {
            ApiError::NotFound { .. } => 404,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } => 409,
            ApiError::Invalid { .. } => 422,
            ApiError::BadRequest(_) => 400,
            ApiError::MethodNotAllowed(_) => 405,
            ApiError::Unauthorized(_) => 401,
            ApiError::Forbidden(_) => 403,
            ApiError::Gone(_) | ApiError::ContinueExpired { .. } => 410,
            ApiError::Timeout(_) => 504,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::NotAcceptable(_) => 406,
            ApiError::RequestEntityTooLarge(_) => 413,
            ApiError::Internal(_) => 500,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::MethodNotAllowed(_) => "MethodNotAllowed",
            ApiError::Unauthorized(_) => "Unauthorized",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::Gone(_) | ApiError::ContinueExpired { .. } => "Expired",
            ApiError::Timeout(_) => "Timeout",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::NotAcceptable(_) => "NotAcceptable",
            ApiError::RequestEntityTooLarge(_) => "RequestEntityTooLarge",
            ApiError::Internal(_) => "InternalError",
        }
    }

    /// The `Status` object sent to clients.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code(),
        });
        if let ApiError::ContinueExpired { continue_token, .. } = self {
            status["metadata"]["continue"] = json!(continue_token);
        }
        let details = match self {
            ApiError::NotFound { details, .. }
            | ApiError::AlreadyExists { details, .. }
            | ApiError::Conflict { details, .. } => Some((details, vec![])),
            ApiError::Invalid {
                details, causes, ..
            } => Some((details, causes.clone())),
            _ => None,
        };
        if let Some((d, causes)) = details {
            let mut det = json!({"name": d.name, "kind": d.kind});
            if !d.group.is_empty() {
                det["group"] = json!(d.group);
            }
            if !causes.is_empty() {
                det["causes"] = Value::Array(
                    causes
                        .iter()
                        .map(|c| {
                            let (field, msg) = c.split_once(": ").unwrap_or(("", c));
                            json!({"reason": cause_reason(msg), "message": msg, "field": field})
                        })
                        .collect(),
                );
            }
            status["details"] = det;
        }
        status
    }
}
