//! Strategic merge patch (`application/strategic-merge-patch+json`).
//!
//! This is what `kubectl patch`, `kubectl edit`, client-side `kubectl apply`
//! and many controllers send for built-in types. Plain JSON merge patch would
//! replace whole lists (e.g. all containers) when a client only meant to
//! change one element, so Kubernetes merges lists that have a merge key
//! element-by-element and understands a few `$`-prefixed directives. We
//! follow apimachinery's `strategicpatch` semantics:
//!
//! - maps merge recursively and `null` deletes a key;
//! - lists with a merge key ([`super::schema`]) merge by that key, new
//!   elements are appended; primitive "set" lists (finalizers) are unioned;
//!   every other list is replaced;
//! - `$patch: replace|delete|merge` in maps and list elements, `$retainKeys`,
//!   `$setElementOrder/<field>` and `$deleteFromPrimitiveList/<field>`.
//!
//! Directive keys never survive into the result. Deviations from upstream
//! are deliberately lenient: `$patch: merge` is accepted as a no-op in maps,
//! and `$setElementOrder` never fails (items it cannot identify keep their
//! position relative to the live list).

use std::collections::HashSet;

use serde_json::{Map, Value};

use super::schema::{list_merge_keys, ListType};
use super::PatchError;

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ELEMENT_ORDER: &str = "$setElementOrder/";
const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList/";

/// Apply a strategic merge patch to `original`, returning the patched object.
///
/// Fails with [`PatchError::Invalid`] if the patch is not an object, uses an
/// unknown directive, or an element of a keyed list lacks its merge key.
pub fn strategic_merge_patch(original: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Object(patch) = patch else {
        return Err(PatchError::Invalid(
            "strategic merge patch must be a JSON object".into(),
        ));
    };
    let empty = Map::new();
    let original = match original {
        Value::Object(map) => map,
        Value::Null => &empty,
        _ => {
            return Err(PatchError::Invalid(
                "patch target must be a JSON object".into(),
            ))
        }
    };
    merge_map(original, patch, &[]).map(Value::Object)
}

fn is_directive_key(key: &str) -> bool {
    key == DIRECTIVE
        || key == RETAIN_KEYS
        || key.starts_with(SET_ELEMENT_ORDER)
        || key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
}

fn child_path(path: &[String], key: &str) -> Vec<String> {
    let mut child = path.to_vec();
    child.push(key.to_owned());
    child
}

fn list_type(path: &[String], field: &str) -> ListType {
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    list_merge_keys(&path, field)
}

/// Merge `patch` into `original`; `path` is the chain of map keys leading here.
fn merge_map(
    original: &Map<String, Value>,
    patch: &Map<String, Value>,
    path: &[String],
) -> Result<Map<String, Value>, PatchError> {
    match patch.get(DIRECTIVE) {
        None => {}
        Some(Value::String(d)) if d == "merge" => {}
        Some(Value::String(d)) if d == "replace" => {
            // Use the patch itself, minus directives, as the new map.
            let mut stripped = patch.clone();
            stripped.shift_remove(DIRECTIVE);
            return merge_map(&Map::new(), &stripped, path);
        }
        Some(Value::String(d)) if d == "delete" => return Ok(Map::new()),
        Some(other) => {
            return Err(PatchError::Invalid(format!(
                "unknown $patch directive {other} in map"
            )))
        }
    }

    let mut result = original.clone();

    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let Value::Array(keys) = retain else {
            return Err(PatchError::Invalid(
                "$retainKeys must be a list of strings".into(),
            ));
        };
        let mut keep = HashSet::new();
        for key in keys {
            let Value::String(key) = key else {
                return Err(PatchError::Invalid(
                    "$retainKeys must be a list of strings".into(),
                ));
            };
            keep.insert(key.as_str());
        }
        result.retain(|k, _| keep.contains(k.as_str()));
    }

    // Deletions apply to the live list before the patch's own items merge in.
    for (key, value) in patch {
        let Some(field) = key.strip_prefix(DELETE_FROM_PRIMITIVE_LIST) else {
            continue;
        };
        let Value::Array(to_delete) = value else {
            return Err(PatchError::Invalid(format!("{key} must be a list")));
        };
        if let Some(Value::Array(items)) = result.get_mut(field) {
            items.retain(|item| !to_delete.contains(item));
        }
    }

    for (key, value) in patch {
        if is_directive_key(key) {
            continue;
        }
        if value.is_null() {
            result.shift_remove(key);
            continue;
        }
        let merged = match (result.get(key), value) {
            (Some(Value::Object(o)), Value::Object(p)) => {
                Value::Object(merge_map(o, p, &child_path(path, key))?)
            }
            (Some(Value::Array(o)), Value::Array(p)) => Value::Array(merge_list(o, p, path, key)?),
            (_, Value::Object(p)) => {
                Value::Object(merge_map(&Map::new(), p, &child_path(path, key))?)
            }
            (_, Value::Array(p)) => Value::Array(merge_list(&[], p, path, key)?),
            (_, v) => v.clone(),
        };
        result.insert(key.clone(), merged);
    }

    for (key, value) in patch {
        let Some(field) = key.strip_prefix(SET_ELEMENT_ORDER) else {
            continue;
        };
        let (Value::Array(order), Some(Value::Array(items))) = (value, result.get_mut(field))
        else {
            continue;
        };
        let live = original
            .get(field)
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let key = list_type(path, field).strategic_key();
        reorder(items, order, live, key);
    }

    Ok(result)
}

/// Merge the patch list for `field` (held by the map at `path`) into `original`.
fn merge_list(
    original: &[Value],
    patch: &[Value],
    path: &[String],
    field: &str,
) -> Result<Vec<Value>, PatchError> {
    let list_type = list_type(path, field);
    let merge_key = list_type.strategic_key();
    let item_path = child_path(path, field);

    // Separate `$patch` directive elements from ordinary ones.
    let mut replace = false;
    let mut deletes: Vec<&Map<String, Value>> = Vec::new();
    let mut items: Vec<&Value> = Vec::new();
    for item in patch {
        let directive = item
            .as_object()
            .and_then(|m| m.get(DIRECTIVE).map(|d| (m, d)));
        let Some((map, directive)) = directive else {
            items.push(item);
            continue;
        };
        match directive.as_str() {
            Some("replace") => replace = true,
            Some("delete") => deletes.push(map),
            // A bare `{"$patch": "merge"}` marker is the default behaviour.
            Some("merge") if map.len() == 1 => {}
            Some("merge") => items.push(item),
            _ => {
                return Err(PatchError::Invalid(format!(
                    "unknown $patch directive {directive} in list {field}"
                )))
            }
        }
    }

    if replace {
        return items
            .into_iter()
            .map(|item| clean(item, &item_path))
            .collect();
    }

    let keyed = merge_key.is_some()
        && items.iter().all(|i| i.is_object())
        && original.iter().all(|i| i.is_object());
    match (list_type, merge_key) {
        (ListType::Map(_), Some(key)) if keyed => {
            let mut result = original.to_vec();
            for del in deletes {
                let Some(wanted) = del.get(key) else {
                    return Err(PatchError::Invalid(format!(
                        "$patch: delete element in list {field} lacks merge key {key:?}"
                    )));
                };
                result.retain(|item| item.get(key) != Some(wanted));
            }
            for item in items {
                let Some(patch_map) = item.as_object() else {
                    continue;
                };
                let wanted = match patch_map.get(key) {
                    Some(v) if !v.is_null() => v,
                    _ => {
                        return Err(PatchError::Invalid(format!(
                            "element of list {field} does not contain merge key {key:?}"
                        )))
                    }
                };
                match result
                    .iter()
                    .position(|existing| existing.get(key) == Some(wanted))
                {
                    Some(idx) => {
                        let merged = match &result[idx] {
                            Value::Object(existing) => merge_map(existing, patch_map, &item_path)?,
                            _ => merge_map(&Map::new(), patch_map, &item_path)?,
                        };
                        result[idx] = Value::Object(merged);
                    }
                    None => result.push(Value::Object(merge_map(
                        &Map::new(),
                        patch_map,
                        &item_path,
                    )?)),
                }
            }
            Ok(result)
        }
        (ListType::Set, _) => {
            let mut result: Vec<Value> = original
                .iter()
                .filter(|item| !deletes.iter().any(|d| matches_without_directive(item, d)))
                .cloned()
                .collect();
            let live = result.clone();
            let mut order = Vec::with_capacity(items.len());
            for item in items {
                let item = clean(item, &item_path)?;
                if !result.contains(&item) {
                    result.push(item.clone());
                }
                order.push(item);
            }
            // As apimachinery's mergeSlice: the patch's items in the patch's order, the
            // others where they were. (Appending alone is not idempotent: an item deleted
            // with `$deleteFromPrimitiveList` and listed again would move to the end at
            // each application.)
            reorder(&mut result, &order, &live, None);
            Ok(result)
        }
        _ => items
            .into_iter()
            .map(|item| clean(item, &item_path))
            .collect(),
    }
}

fn matches_without_directive(item: &Value, directive_elem: &Map<String, Value>) -> bool {
    let Value::Object(item) = item else {
        return false;
    };
    let mut wanted = directive_elem.clone();
    wanted.shift_remove(DIRECTIVE);
    item == &wanted
}

/// A patch value inserted where nothing existed: strip directives and nulls.
fn clean(value: &Value, path: &[String]) -> Result<Value, PatchError> {
    match value {
        Value::Object(map) => merge_map(&Map::new(), map, path).map(Value::Object),
        other => Ok(other.clone()),
    }
}

/// Identity of a list item for ordering purposes.
fn identity(item: &Value, key: Option<&str>) -> Option<Value> {
    match key {
        Some(key) => item.get(key).cloned(),
        None => Some(item.clone()),
    }
}

/// Implement `$setElementOrder/<field>`, following apimachinery's
/// `normalizeElementOrder`: items named in `order` are sorted by it, the
/// remaining (server-only) items keep their live order, and the two runs are
/// interleaved using their positions in the live list.
fn reorder(items: &mut Vec<Value>, order: &[Value], live: &[Value], key: Option<&str>) {
    let order_ids: Vec<Value> = order.iter().filter_map(|o| identity(o, key)).collect();
    let live_ids: Vec<Option<Value>> = live.iter().map(|l| identity(l, key)).collect();
    let position = |ids: &[Value], item: &Value| -> Option<usize> {
        let id = identity(item, key)?;
        ids.iter().position(|candidate| *candidate == id)
    };
    let live_position = |item: &Value| -> Option<usize> {
        let id = identity(item, key)?;
        live_ids
            .iter()
            .position(|candidate| candidate.as_ref() == Some(&id))
    };

    let (mut ordered, mut server_only): (Vec<Value>, Vec<Value>) = std::mem::take(items)
        .into_iter()
        .partition(|item| position(&order_ids, item).is_some());
    ordered.sort_by_key(|item| position(&order_ids, item));
    server_only.sort_by_key(|item| live_position(item).unwrap_or(usize::MAX));

    // Insert server-only items (left) into the ordered items (right).
    let mut left = server_only.into_iter().peekable();
    let mut right = ordered.into_iter().peekable();
    while let (Some(l), Some(r)) = (left.peek(), right.peek()) {
        let take_left =
            matches!((live_position(l), live_position(r)), (Some(li), Some(ri)) if li < ri);
        let next = if take_left { left.next() } else { right.next() };
        items.extend(next);
    }
    items.extend(left);
    items.extend(right);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn smp(original: Value, patch: Value) -> Value {
        strategic_merge_patch(&original, &patch).expect("patch applies")
    }

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web", "tier": "fe"}, "finalizers": ["a", "b"]},
            "spec": {
                "replicas": 1,
                "template": {
                    "spec": {
                        "containers": [
                            {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                             "ports": [{"containerPort": 80}], "args": ["--x"]},
                            {"name": "sidecar", "image": "side:1"}
                        ],
                        "tolerations": [{"key": "k1"}]
                    }
                }
            }
        })
    }

    #[test]
    fn containers_merge_by_name() {
        let out = smp(
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "sidecar", "image": "side:2"},
                {"name": "new", "image": "new:1"}
            ]}}}}),
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([
                {"name": "app", "image": "app:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                 "ports": [{"containerPort": 80}], "args": ["--x"]},
                {"name": "sidecar", "image": "side:2"},
                {"name": "new", "image": "new:1"}
            ])
        );
    }

    #[test]
    fn env_merges_by_name_and_args_replace() {
        let out = smp(
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}], "args": ["--y"]}
            ]}}}}),
        );
        let app = &out["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            app["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "20"}, {"name": "C", "value": "3"}])
        );
        assert_eq!(app["args"], json!(["--y"]));
        assert_eq!(app["image"], json!("app:1"));
    }

    #[test]
    fn patch_delete_removes_container() {
        let out = smp(
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "$patch": "delete"}]}}}}),
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "sidecar", "image": "side:1"}])
        );
    }

    #[test]
    fn patch_replace_in_list_and_map() {
        let out = smp(
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": [{"name": "only", "image": "o:1"}, {"$patch": "replace"}]}}}}),
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "only", "image": "o:1"}])
        );

        let out = smp(
            deployment(),
            json!({"metadata": {"labels": {"$patch": "replace", "x": "y"}}}),
        );
        assert_eq!(out["metadata"]["labels"], json!({"x": "y"}));

        let out = smp(
            deployment(),
            json!({"metadata": {"labels": {"$patch": "delete"}}}),
        );
        assert_eq!(out["metadata"]["labels"], json!({}));

        let out = smp(
            deployment(),
            json!({"metadata": {"labels": {"$patch": "merge", "x": "y"}}}),
        );
        assert_eq!(
            out["metadata"]["labels"],
            json!({"app": "web", "tier": "fe", "x": "y"})
        );
    }

    #[test]
    fn null_deletes_keys() {
        let out = smp(
            deployment(),
            json!({"metadata": {"labels": {"tier": null}}, "spec": {"replicas": null}}),
        );
        assert_eq!(out["metadata"]["labels"], json!({"app": "web"}));
        assert!(out["spec"].get("replicas").is_none());
    }

    #[test]
    fn set_element_order_reorders_and_never_leaks() {
        // What kubectl client-side apply sends when only the sidecar changed.
        let out = smp(
            deployment(),
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "app"}],
                "containers": [{"name": "sidecar", "image": "side:3"}]
            }}}}),
        );
        let spec = &out["spec"]["template"]["spec"];
        let names: Vec<&str> = spec["containers"]
            .as_array()
            .expect("list")
            .iter()
            .map(|c| c["name"].as_str().expect("name"))
            .collect();
        assert_eq!(names, ["sidecar", "app"]);
        assert_eq!(spec["containers"][0]["image"], json!("side:3"));
        assert!(spec.get("$setElementOrder/containers").is_none());

        // Unknown names and a missing list do not error.
        let out = smp(
            deployment(),
            json!({"spec": {"template": {"spec": {
                "$setElementOrder/containers": [{"name": "ghost"}, {"name": "app"}],
                "$setElementOrder/volumes": [{"name": "v"}]
            }}}}),
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][1]["name"],
            json!("sidecar")
        );
        assert!(out["spec"]["template"]["spec"].get("volumes").is_none());
    }

    #[test]
    fn set_element_order_interleaves_server_only_items() {
        let original =
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}});
        let out = smp(
            original,
            json!({"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "d"}, {"name": "a"}],
                            "containers": [{"name": "d"}]}}),
        );
        // Server-only `b` is inserted before `c` because it preceded `c` in the
        // live list (apimachinery's mergeSortedSlice).
        assert_eq!(
            out["spec"]["containers"],
            json!([{"name": "b"}, {"name": "c"}, {"name": "d"}, {"name": "a"}])
        );
    }

    #[test]
    fn finalizers_union_and_delete_from_primitive_list() {
        let out = smp(
            deployment(),
            json!({"metadata": {"finalizers": ["b", "c"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["a", "b", "c"]));

        let out = smp(
            deployment(),
            json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "$setElementOrder/finalizers": ["c", "b"], "finalizers": ["c"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["c", "b"]));
        assert!(out["metadata"]
            .get("$deleteFromPrimitiveList/finalizers")
            .is_none());
    }

    #[test]
    fn retain_keys_drops_unlisted_fields() {
        let original = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let out = smp(
            original,
            json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
        );
        assert_eq!(out, json!({"spec": {"strategy": {"type": "Recreate"}}}));
    }

    #[test]
    fn unknown_lists_are_replaced_and_new_values_cleaned() {
        let out = smp(
            deployment(),
            json!({"spec": {"template": {"spec": {
                "tolerations": [{"key": "k2"}],
                "volumes": [{"name": "v", "emptyDir": {"medium": null}}, {"name": "gone", "$patch": "delete"}]
            }}}}),
        );
        let spec = &out["spec"]["template"]["spec"];
        assert_eq!(spec["tolerations"], json!([{"key": "k2"}]));
        assert_eq!(spec["volumes"], json!([{"name": "v", "emptyDir": {}}]));
    }

    #[test]
    fn ports_merge_by_container_port() {
        let out = smp(
            deployment(),
            json!({"spec": {"template": {"spec": {"containers": [
                {"name": "app", "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 443}]}
            ]}}}}),
        );
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["ports"],
            json!([{"containerPort": 80, "name": "http"}, {"containerPort": 443}])
        );
    }

    #[test]
    fn errors() {
        assert!(strategic_merge_patch(&deployment(), &json!([1])).is_err());
        assert!(
            strategic_merge_patch(&deployment(), &json!({"spec": {"$patch": "bogus"}})).is_err()
        );
        let missing_key = json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}});
        assert!(matches!(
            strategic_merge_patch(&deployment(), &missing_key),
            Err(PatchError::Invalid(_))
        ));
    }

    /// Found by `smp_is_idempotent`: an item both deleted with `$deleteFromPrimitiveList`
    /// and listed again moved to the end at each application.
    #[test]
    fn set_list_delete_and_re_add_is_idempotent() {
        let patch = json!({"metadata": {
            "finalizers": ["f1", "f3"],
            "$deleteFromPrimitiveList/finalizers": ["f1"],
        }});
        let once = smp(json!({"metadata": {"name": "o"}}), patch.clone());
        assert_eq!(once["metadata"]["finalizers"], json!(["f1", "f3"]));
        let twice = smp(once.clone(), patch);
        assert_eq!(twice, once);
        // Items only the server has keep their place between the patch's items.
        let out = smp(
            json!({"metadata": {"finalizers": ["a", "x", "b"]}}),
            json!({"metadata": {"finalizers": ["b", "a"]}}),
        );
        assert_eq!(out["metadata"]["finalizers"], json!(["x", "b", "a"]));
    }

    /// An object item of a set list with a `null` in it is stored cleaned, and a second
    /// application does not add it again.
    #[test]
    fn set_list_object_items_are_compared_cleaned() {
        let patch = json!({"metadata": {"finalizers": [{"a": 1, "b": null}]}});
        let once = smp(json!({}), patch.clone());
        assert_eq!(once["metadata"]["finalizers"], json!([{"a": 1}]));
        assert_eq!(smp(once.clone(), patch), once);
    }
}
