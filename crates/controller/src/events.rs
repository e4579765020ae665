//! Kubernetes Events about Mooring's objects, as `kubectl describe` and `kubectl get
//! events` show them.
//!
//! Events are how a controller tells the owner of an object something it cannot write into
//! the object's status: that an Application is ignored because of where it lives, that a
//! RollbackPolicy fired. They are best effort: a failure to record one is logged, never
//! an error of the reconcile that wanted it.

use crate::Context;
use serde_json::Value;

pub use mooring_core::event::EventType;

/// One Event about `object` (a whole Kubernetes object, or at least its `apiVersion`,
/// `kind` and `metadata` with name, namespace and uid), recorded in the object's namespace
/// of the management cluster by `component`.
pub async fn record(
    ctx: &Context,
    object: &Value,
    type_: EventType,
    reason: &str,
    message: &str,
    component: &str,
) {
    let event = mooring_core::event::event(
        object,
        type_,
        reason,
        message,
        component,
        &mooring_core::time::now_rfc3339(),
    );
    if let Err(err) = ctx.management.create(&event).await {
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("object");
        tracing::warn!("recording event {reason} for {name}: {err}");
    }
}
