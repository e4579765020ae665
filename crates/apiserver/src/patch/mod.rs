//! PATCH and server-side apply for the API server.
//!
//! Kubernetes clients mutate objects in four ways, selected by the request
//! content type, and each has different semantics that kubectl, client-go
//! and controllers depend on:
//!
//! - `application/merge-patch+json` — RFC 7386, [`mooring_core::merge_patch`] (the one
//!   definition the controller and CLI use too).
//! - `application/json-patch+json` — RFC 6902, [`json_patch`].
//! - `application/strategic-merge-patch+json` — Kubernetes' schema-aware
//!   merge where lists of containers, env vars, ports, ... merge by key
//!   instead of being replaced, [`strategic_merge_patch`].
//! - `application/apply-patch+yaml` — server-side apply, which merges an
//!   applied configuration and records per-field ownership in
//!   `metadata.managedFields`, [`server_side_apply`]. Ordinary writes must
//!   also update that bookkeeping, which is what [`track_update`] is for.
//!
//! Everything operates on `serde_json::Value` so it works the same for
//! built-in types and custom resources; the little schema knowledge needed
//! (which lists are keyed by what) lives in [`schema`].

mod apply;
#[cfg(test)]
mod proptests;
pub mod schema;
mod strategic;

use std::fmt;

use serde_json::Value;

pub use apply::{server_side_apply, track_update, ApplyOptions};
pub use strategic::strategic_merge_patch;

/// Why a patch could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The patch document is malformed or cannot be applied to the target.
    #[error("invalid patch: {0}")]
    Invalid(String),
    /// Server-side apply would change fields owned by other managers.
    #[error("apply conflict: {}", .0.iter().map(|c| c.to_string()).collect::<Vec<_>>().join("; "))]
    Conflict(Vec<ApplyConflict>),
}

/// One field that an apply would take away from another field manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyConflict {
    /// Name of the manager that currently owns the field.
    pub manager: String,
    /// API version that manager used (empty if unknown).
    pub api_version: String,
    /// Field path in Kubernetes' notation, e.g. `.spec.replicas` or
    /// `.spec.template.spec.containers[name="app"].image`.
    pub field: String,
}

impl ApplyConflict {
    /// The `message` of the matching `FieldManagerConflict` status cause
    /// (its `field` is [`ApplyConflict::field`]), e.g.
    /// `conflict with "kubectl" using apps/v1`.
    pub fn cause_message(&self) -> String {
        if self.api_version.is_empty() {
            format!("conflict with {:?}", self.manager)
        } else {
            format!(
                "conflict with {:?} using {}",
                self.manager, self.api_version
            )
        }
    }
}

impl fmt::Display for ApplyConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.cause_message(), self.field)
    }
}

/// RFC 6902 JSON patch. The patch is applied atomically: on error the
/// target is untouched and the failing operation is named in the message.
pub fn json_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops: json_patch::Patch = serde_json::from_value(patch.clone())
        .map_err(|e| PatchError::Invalid(format!("malformed JSON patch: {e}")))?;
    let mut doc = target.clone();
    json_patch::patch(&mut doc, &ops).map_err(|e| {
        let op = patch
            .get(e.operation)
            .map(Value::to_string)
            .unwrap_or_default();
        PatchError::Invalid(format!("{e}: {op}"))
    })?;
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_deletes_with_null() {
        let out = mooring_core::merge_patch::applied(
            &json!({"a": 1, "b": {"c": 2, "d": 3}}),
            &json!({"b": {"c": null}}),
        );
        assert_eq!(out, json!({"a": 1, "b": {"d": 3}}));
    }

    #[test]
    fn json_patch_applies_and_reports_failing_op() {
        let target = json!({"spec": {"replicas": 1}});
        let out = json_patch(
            &target,
            &json!([{"op": "replace", "path": "/spec/replicas", "value": 3}]),
        )
        .expect("valid patch");
        assert_eq!(out, json!({"spec": {"replicas": 3}}));

        let err = json_patch(
            &target,
            &json!([
                {"op": "add", "path": "/spec/x", "value": 1},
                {"op": "test", "path": "/spec/replicas", "value": 2}
            ]),
        )
        .expect_err("test op fails");
        let msg = err.to_string();
        assert!(msg.contains("operation '/1'"), "{msg}");
        assert!(msg.contains("\"op\":\"test\""), "{msg}");

        let err = json_patch(&target, &json!({"op": "add"})).expect_err("not an array");
        assert!(matches!(err, PatchError::Invalid(_)));
    }

    #[test]
    fn conflict_display() {
        let c = ApplyConflict {
            manager: "kubectl-client-side-apply".into(),
            api_version: "apps/v1".into(),
            field: ".spec.replicas".into(),
        };
        assert_eq!(
            c.to_string(),
            r#"conflict with "kubectl-client-side-apply" using apps/v1: .spec.replicas"#
        );
        let e = PatchError::Conflict(vec![c.clone(), c]);
        assert!(e.to_string().starts_with("apply conflict: conflict with"));
    }
}
