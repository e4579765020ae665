//! Normalisation applied to both sides before anything is compared: what the API server
//! sets or records about an object, as opposed to what a user declares.

use base64::Engine as _;
use serde_json::{Map, Value};

/// Annotations written by tools and controllers, never declared in Git.
const SERVER_ANNOTATIONS: [&str; 2] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
];

/// True for a core `v1` Secret.
pub(crate) fn is_secret(obj: &Value) -> bool {
    obj.get("kind").and_then(Value::as_str) == Some("Secret")
        && obj.get("apiVersion").and_then(Value::as_str) == Some("v1")
}

/// Normalise one side. `keep_owner_refs` keeps `metadata.ownerReferences` (when the
/// desired object declares them).
pub(crate) fn normalize(obj: &Value, keep_owner_refs: bool) -> Value {
    let mut obj = obj.clone();
    let Some(map) = obj.as_object_mut() else {
        return obj;
    };
    map.shift_remove("status");
    if let Some(Value::Object(meta)) = map.get_mut("metadata") {
        for f in mooring_core::server_fields::SERVER_METADATA {
            meta.shift_remove(f);
        }
        if !keep_owner_refs {
            meta.shift_remove("ownerReferences");
        }
        if let Some(Value::Object(ann)) = meta.get_mut("annotations") {
            for a in SERVER_ANNOTATIONS {
                ann.shift_remove(a);
            }
        }
    }
    if is_secret(&obj) {
        fold_string_data(&mut obj);
    }
    obj
}

/// The API server turns a Secret's `stringData` into base64 `data` (stringData wins on
/// conflicts) and never returns `stringData`; do the same to the desired object so both
/// sides compare in one form.
fn fold_string_data(obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let Some(Value::Object(string_data)) = map.shift_remove("stringData") else {
        return;
    };
    let data = map
        .entry("data")
        .or_insert_with(|| Value::Object(Map::new()));
    if !data.is_object() {
        *data = Value::Object(Map::new());
    }
    if let Value::Object(data) = data {
        for (k, v) in string_data {
            let plain = match v {
                Value::String(s) => s,
                Value::Null => String::new(),
                other => other.to_string(),
            };
            let encoded = base64::engine::general_purpose::STANDARD.encode(plain.as_bytes());
            data.insert(k, Value::String(encoded));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strips_server_fields_and_folds_string_data() {
        let obj = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s", "uid": "1", "resourceVersion": "2",
                "ownerReferences": [{"name": "o"}],
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "a": "b"}},
            "stringData": {"k": "v"},
            "status": {}
        });
        let n = normalize(&obj, false);
        assert_eq!(
            n,
            json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "s", "annotations": {"a": "b"}},
                "data": {"k": "dg=="}
            })
        );
    }
}
