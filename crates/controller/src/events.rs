//! Kubernetes Events about Mooring's objects, as `kubectl describe` and `kubectl get
//! events` show them.
//!
//! Events are how a controller tells the owner of an object something it cannot write into
//! the object's status: that an Application is ignored because of where it lives, that a
//! RollbackPolicy fired. They are best effort: a failure to record one is logged, never
//! an error of the reconcile that wanted it.

use crate::Context;
use serde_json::{json, Value};

/// `Normal` or `Warning`, as the Events API knows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

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
    let field = |p: &str| object.pointer(p).cloned().unwrap_or(Value::Null);
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("object");
    let ts = crate::reconcile::now();
    let event = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": format!("{name}."), "namespace": field("/metadata/namespace")},
        "involvedObject": {
            "apiVersion": field("/apiVersion"), "kind": field("/kind"),
            "name": name, "namespace": field("/metadata/namespace"),
            "uid": field("/metadata/uid"),
        },
        "reason": reason,
        "message": message,
        "type": match type_ { EventType::Normal => "Normal", EventType::Warning => "Warning" },
        "source": {"component": component},
        "reportingComponent": component,
        "firstTimestamp": ts, "lastTimestamp": ts, "count": 1,
    });
    if let Err(err) = ctx.management.create(&event).await {
        tracing::warn!("recording event {reason} for {name}: {err}");
    }
}
