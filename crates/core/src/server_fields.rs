//! The metadata fields the API server owns: set or recorded by the server, never declared
//! by a user and never part of what a manager applies.
//!
//! Three places must agree on this list: the diff (an object read back from the cluster
//! differs from Git by exactly these fields, so they are removed from both sides), the
//! embedded API server's server-side apply (these fields are never in any manager's
//! field set, as in structured-merge-diff's `managedFields` ignore list) and the REST API
//! that creates an Application from a client's body (a client cannot choose them). They
//! are the fields `ObjectMeta` documents as "Populated by the system. Read-only."
//! (plus `managedFields`, which only the server writes).

use serde_json::Value;

/// Metadata fields that the API server sets.
pub const SERVER_METADATA: [&str; 8] = [
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// True for a metadata field the API server sets.
pub fn is_server_metadata(field: &str) -> bool {
    SERVER_METADATA.contains(&field)
}

/// Removes every server-set field from `obj.metadata` (nothing when there is no metadata
/// object).
pub fn strip_server_metadata(obj: &mut Value) {
    if let Some(Value::Object(meta)) = obj.get_mut("metadata") {
        meta.retain(|k, _| !is_server_metadata(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strips_exactly_the_server_set_fields() {
        let mut obj = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {
                "name": "c", "namespace": "n", "labels": {"a": "1"},
                "annotations": {"k": "v"}, "ownerReferences": [], "finalizers": ["f"],
                "uid": "u", "resourceVersion": "7", "generation": 2,
                "creationTimestamp": "2024-01-01T00:00:00Z", "managedFields": [],
                "selfLink": "/api/v1/x", "deletionTimestamp": "2024-01-02T00:00:00Z",
                "deletionGracePeriodSeconds": 30
            },
            "data": {"uid": "kept"}
        });
        strip_server_metadata(&mut obj);
        assert_eq!(
            obj,
            json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "c", "namespace": "n", "labels": {"a": "1"},
                             "annotations": {"k": "v"}, "ownerReferences": [],
                             "finalizers": ["f"]},
                "data": {"uid": "kept"}
            })
        );
        let mut scalar = json!("x");
        strip_server_metadata(&mut scalar);
        assert_eq!(scalar, json!("x"));
    }
}
