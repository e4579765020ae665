//! RFC 7386 JSON merge patch: the one definition of both directions.
//!
//! The API server applies merge patches (`application/merge-patch+json`), the controller
//! writes ApplicationSet-generated Applications as merge patches, the CLI's `rollout`
//! commands send them and the ApplicationSet template patch (`templatePatch`) is one. All
//! of them must agree on the rules, so they live here:
//!
//! - [`apply`]: an object patch is merged key by key, `null` removes a key, anything else
//!   (arrays, scalars, a non-object patch) replaces the target whole. A non-object target
//!   patched with an object becomes an object first. This is `json_patch::merge`, the
//!   well-kept implementation already in the dependency tree (kube uses it).
//! - [`diff`]: the smallest merge patch that turns one document into another. The
//!   `json-patch` crate only diffs to RFC 6902 operations, so this direction is written
//!   here. `apply(from, diff(from, to)) == to` holds whenever `to` holds no `null` values
//!   inside objects (a merge patch cannot set a key to `null`: RFC 7386 §1).

use serde_json::{Map, Value};

/// Applies the merge patch `patch` to `target` in place (RFC 7386 §2).
pub fn apply(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// `target` with the merge patch `patch` applied, leaving `target` untouched.
pub fn applied(target: &Value, patch: &Value) -> Value {
    let mut doc = target.clone();
    apply(&mut doc, patch);
    doc
}

/// The merge patch that turns `from` into `to`: keys gone from `to` become `null`, objects
/// present on both sides are diffed recursively, anything else that changed (arrays,
/// scalars, a change of type) is replaced whole. Equal documents give `{}` when both are
/// objects.
pub fn diff(from: &Value, to: &Value) -> Value {
    match (from, to) {
        (Value::Object(f), Value::Object(t)) => {
            let mut patch = Map::new();
            for (k, tv) in t {
                match f.get(k) {
                    Some(fv) if fv == tv => {}
                    Some(fv) if fv.is_object() && tv.is_object() => {
                        patch.insert(k.clone(), diff(fv, tv));
                    }
                    _ => {
                        patch.insert(k.clone(), tv.clone());
                    }
                }
            }
            for k in f.keys() {
                if !t.contains_key(k) {
                    patch.insert(k.clone(), Value::Null);
                }
            }
            Value::Object(patch)
        }
        _ => to.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The examples of RFC 7386 Appendix A, applied.
    #[test]
    fn apply_follows_rfc_7386_appendix_a() {
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": "b", "b": "c"}),
                json!({"a": null}),
                json!({"b": "c"}),
            ),
            (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
            (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "b"}), json!(["c"]), json!(["c"])),
            (json!({"a": "foo"}), json!(null), json!(null)),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!([1, 2]),
                json!({"a": "b", "c": null}),
                json!({"a": "b"}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (target, patch, want) in cases {
            assert_eq!(applied(&target, &patch), want, "{target} + {patch}");
            let mut in_place = target.clone();
            apply(&mut in_place, &patch);
            assert_eq!(in_place, want, "{target} + {patch} in place");
        }
    }

    #[test]
    fn diff_is_minimal_and_round_trips() {
        for (from, to) in [
            (
                json!({"a": 1, "b": {"c": 2, "d": 3}}),
                json!({"a": 1, "b": {"c": 4}}),
            ),
            (json!({"a": [1, 2]}), json!({"a": [2], "e": "x"})),
            (json!({"spec": {"x": {"y": 1}}}), json!({"spec": {}})),
            (json!({"a": {"b": 1}}), json!({"a": "scalar"})),
            (json!({"a": "scalar"}), json!({"a": {"b": 1}})),
            (json!([1]), json!({"a": 1})),
        ] {
            let patch = diff(&from, &to);
            assert_eq!(applied(&from, &patch), to, "{from} -> {to} via {patch}");
        }
        assert_eq!(
            diff(
                &json!({"a": 1, "b": {"c": 2}}),
                &json!({"a": 1, "b": {"c": 3}})
            ),
            json!({"b": {"c": 3}})
        );
        assert_eq!(
            diff(&json!({"a": 1, "b": [1]}), &json!({"b": [1]})),
            json!({"a": null})
        );
        assert_eq!(
            diff(&json!({"a": {"b": 1}}), &json!({"a": {"b": 1}})),
            json!({})
        );
    }
}
