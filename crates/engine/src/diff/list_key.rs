//! The merge key of a keyed list, shared by comparison (`compare`: items are paired by
//! key, not position) and field ownership (`managed`: an owned list item is found by the
//! same key). It lives on its own so that both read it from one place and neither file
//! imports the other for it.

use serde_json::Value;

/// Candidate merge keys of keyed lists, in order of preference (the keys Kubernetes
/// declares with `x-kubernetes-list-map-keys` / `patchMergeKey` for the common lists:
/// containers, env, volumes, volumeMounts, ports, hostAliases, topology spread, …).
const LIST_KEYS: [&str; 7] = [
    "name",
    "containerPort",
    "port",
    "mountPath",
    "devicePath",
    "ip",
    "topologyKey",
];

/// The merge key of a list, if every item on both sides is an object that has it and its
/// values are unique on each side.
pub(crate) fn list_key(a: &[Value], b: &[Value]) -> Option<String> {
    if a.is_empty() && b.is_empty() {
        return None;
    }
    LIST_KEYS
        .iter()
        .find(|k| unique_key(a, k) && unique_key(b, k))
        .map(|k| (*k).to_string())
}

fn unique_key(items: &[Value], key: &str) -> bool {
    let mut seen: Vec<&Value> = Vec::with_capacity(items.len());
    for item in items {
        match item.get(key) {
            Some(v) if v.is_string() || v.is_number() => {
                if seen.contains(&v) {
                    return false;
                }
                seen.push(v);
            }
            _ => return false,
        }
    }
    true
}
