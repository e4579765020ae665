//! Secret masking: values of a Secret's `data` and `stringData` never leave the engine.
//!
//! As in Argo CD, every value becomes a run of `+` characters. Within one masking pass
//! (one object, or the two sides of one diff) equal values of a key get the same mask and
//! different values get masks of different lengths (`++++++++`, `+++++++++`, …), so a
//! changed value still shows as a changed line without revealing either value. The
//! length of a mask says nothing about the length of the value. The
//! `last-applied-configuration` annotation, which holds a copy of the whole object, is
//! masked too.

use super::normalize::is_secret;
use serde_json::Value;
use std::collections::BTreeMap;

const MASK_BASE: usize = 8;
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A copy of `obj` with Secret values masked; other objects are returned unchanged.
pub fn mask_secret(obj: &Value) -> Value {
    let mut out = obj.clone();
    mask_sides(&mut [Some(&mut out)]);
    out
}

/// Mask the Secret values of several versions of one object (desired and live) with a
/// shared table, so equal values get equal masks across sides.
pub(crate) fn mask_sides(sides: &mut [Option<&mut Value>]) {
    let secrets: Vec<bool> = sides
        .iter()
        .map(|s| s.as_deref().is_some_and(is_secret))
        .collect();
    mask_where(sides, &secrets);
}

/// [`mask_sides`] for the sides of a diff of a Secret, whatever they still say about their
/// kind: an ignoreDifferences entry may have removed `kind` or `apiVersion` from them.
pub(crate) fn mask_secret_sides(sides: &mut [Option<&mut Value>]) {
    let secrets = vec![true; sides.len()];
    mask_where(sides, &secrets);
}

fn mask_where(sides: &mut [Option<&mut Value>], secrets: &[bool]) {
    // key -> (value -> mask length index)
    let mut table: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (side, secret) in sides.iter().zip(secrets) {
        if !secret {
            continue;
        }
        let Some(obj) = side.as_deref() else { continue };
        for field in ["data", "stringData"] {
            if let Some(Value::Object(m)) = obj.get(field) {
                for (k, v) in m {
                    let seen = table.entry(format!("{field}/{k}")).or_default();
                    if !seen.contains(v) {
                        seen.push(v.clone());
                    }
                }
            }
        }
    }
    for (side, secret) in sides.iter_mut().zip(secrets) {
        if !secret {
            continue;
        }
        let Some(obj) = side.as_deref_mut() else {
            continue;
        };
        for field in ["data", "stringData"] {
            match obj.get_mut(field) {
                Some(Value::Object(m)) => {
                    for (k, v) in m.iter_mut() {
                        let n = table
                            .get(&format!("{field}/{k}"))
                            .and_then(|seen| seen.iter().position(|s| s == v))
                            .unwrap_or(0);
                        *v = Value::String(mask(n));
                    }
                }
                Some(other) if !other.is_null() => *other = Value::String(mask(0)),
                _ => {}
            }
        }
        if let Some(Value::Object(ann)) = obj.pointer_mut("/metadata/annotations") {
            if let Some(v) = ann.get_mut(LAST_APPLIED) {
                *v = Value::String(mask(0));
            }
        }
    }
}

fn mask(n: usize) -> String {
    "+".repeat(MASK_BASE + n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masks_values_with_distinct_masks() {
        let s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "data": {"a": "c2VjcmV0", "b": "c2VjcmV0"}, "stringData": {"c": "plain"}});
        let m = mask_secret(&s);
        let text = m.to_string();
        assert!(
            !text.contains("c2VjcmV0") && !text.contains("plain"),
            "{text}"
        );
        assert_eq!(m["data"]["a"], "++++++++");

        let mut d = json!({"apiVersion": "v1", "kind": "Secret", "data": {"a": "bmV3"}});
        let mut l = json!({"apiVersion": "v1", "kind": "Secret", "data": {"a": "b2xk"}});
        mask_sides(&mut [Some(&mut d), Some(&mut l)]);
        assert_ne!(d["data"]["a"], l["data"]["a"]);
    }

    #[test]
    fn other_kinds_untouched() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}});
        assert_eq!(mask_secret(&cm), cm);
    }
}
