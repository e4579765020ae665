//! Kubernetes `Event`s (`v1`) as Mooring's controllers and the embedded cluster's simulation
//! record them, so `kubectl describe` and `kubectl get events` show what happened to an
//! object. One builder for every writer: the object a caller records against, the same
//! fields, the same shape.

use serde_json::{json, Value};

/// `Normal` or `Warning`, as the Events API knows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// A new Event about `object` (a Kubernetes object, or at least its `apiVersion`, `kind`
/// and `metadata` with name, namespace and uid), in the object's namespace, recorded by
/// `component` at `timestamp` (RFC 3339).
pub fn event(
    object: &Value,
    type_: EventType,
    reason: &str,
    message: &str,
    component: &str,
    timestamp: &str,
) -> Value {
    let field = |p: &str| object.pointer(p).cloned().unwrap_or(Value::Null);
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("object");
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": format!("{name}."), "namespace": field("/metadata/namespace")},
        "involvedObject": {
            "apiVersion": field("/apiVersion"), "kind": field("/kind"),
            "name": name, "namespace": field("/metadata/namespace"),
            "uid": field("/metadata/uid"),
            "resourceVersion": field("/metadata/resourceVersion"),
        },
        "reason": reason,
        "message": message,
        "type": type_.as_str(),
        "source": {"component": component},
        "reportingComponent": component,
        "firstTimestamp": timestamp, "lastTimestamp": timestamp, "count": 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_name_the_object_they_are_about() {
        let svc = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "ml", "uid": "u-1", "resourceVersion": "7"}});
        let e = event(
            &svc,
            EventType::Warning,
            "AllocationFailed",
            "no address",
            "sim",
            "2026-01-01T00:00:00Z",
        );
        assert_eq!(e["involvedObject"]["kind"], "Service");
        assert_eq!(e["involvedObject"]["uid"], "u-1");
        assert_eq!(e["metadata"]["namespace"], "ml");
        assert_eq!(e["metadata"]["generateName"], "web.");
        assert_eq!(e["type"], "Warning");
        assert_eq!(e["count"], 1);
        // An object without metadata still makes a well-formed Event.
        let e = event(&json!({}), EventType::Normal, "R", "m", "c", "t");
        assert_eq!(e["metadata"]["generateName"], "object.");
    }
}
