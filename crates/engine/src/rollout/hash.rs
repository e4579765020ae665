//! Pod template hashes, as names of ReplicaSets and values of the
//! `rollouts-pod-template-hash` label.
//!
//! Kubernetes and Argo Rollouts hash the pod template with FNV-32a and spell the number
//! in a consonant-and-digit alphabet so the result can never form a word. Mooring hashes
//! the template's canonical JSON (keys sorted), so the same template always gives the same
//! hash across restarts and machines, and a changed template a different one. The values
//! differ from Argo's (which hashes Go's `spew` rendering); nothing depends on matching
//! them, only on stability.

use serde_json::Value;

const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-1a, 32 bits (Go's `hash/fnv` New32a).
pub fn fnv32a(bytes: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

fn safe_encode(s: &str) -> String {
    s.bytes()
        .map(|b| char::from(ALPHABET[usize::from(b) % ALPHABET.len()]))
        .collect()
}

/// Canonical JSON: object keys sorted at every level.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", Value::String((*k).clone()), canonical(&m[*k])))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        v => v.to_string(),
    }
}

/// The hash of a pod template (and the Rollout's `status.collisionCount`).
pub fn pod_template_hash(template: &Value, collision_count: i64) -> String {
    let mut text = canonical(template);
    if collision_count > 0 {
        text.push_str(&collision_count.to_string());
    }
    safe_encode(&fnv32a(text.as_bytes()).to_string())
}

/// The same stable hash of any text (for object names derived from user-written ids).
pub fn text_hash(text: &str) -> String {
    safe_encode(&fnv32a(text.as_bytes()).to_string())
}

/// The hash of the canary steps (`status.currentStepHash`).
pub fn steps_hash(steps: &Value) -> String {
    safe_encode(&fnv32a(canonical(steps).as_bytes()).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hash_is_stable_and_key_order_free() {
        let a = json!({"metadata": {"labels": {"app": "x", "v": "1"}}, "spec": {"containers": [{"name": "c", "image": "i:1"}]}});
        let b = json!({"spec": {"containers": [{"image": "i:1", "name": "c"}]}, "metadata": {"labels": {"v": "1", "app": "x"}}});
        assert_eq!(pod_template_hash(&a, 0), pod_template_hash(&b, 0));
        let c = json!({"metadata": {"labels": {"app": "x", "v": "1"}}, "spec": {"containers": [{"name": "c", "image": "i:2"}]}});
        assert_ne!(pod_template_hash(&a, 0), pod_template_hash(&c, 0));
        assert_ne!(pod_template_hash(&a, 0), pod_template_hash(&a, 1));
        let h = pod_template_hash(&a, 0);
        assert!(
            h.len() <= 10 && h.bytes().all(|b| ALPHABET.contains(&b)),
            "{h}"
        );
    }
}
