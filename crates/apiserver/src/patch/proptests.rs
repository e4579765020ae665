//! Property tests of strategic merge patch and server-side apply against their invariants,
//! over generated ConfigMap- and Deployment-like objects.
//!
//! Keys, container names and values come from small pools so that generated objects,
//! patches and configurations overlap: a patch that never touches what the live object
//! holds would test nothing.

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::{server_side_apply, strategic_merge_patch, track_update, ApplyOptions, PatchError};

const T1: &str = "2024-01-01T00:00:00Z";
const T2: &str = "2024-01-01T00:01:00Z";
const T3: &str = "2024-01-01T00:02:00Z";

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["a", "b", "c", "d"]).prop_map(str::to_string)
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => prop::sample::select(vec!["1", "2", "x", ""]).prop_map(Value::from),
        1 => (0i64..3).prop_map(Value::from),
        1 => any::<bool>().prop_map(Value::from),
    ]
}

/// A string map (`data`, `labels`).
fn string_map() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(key(), scalar(), 0..4).prop_map(|m| m.into_iter().collect())
}

fn container_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["app", "side", "init"]).prop_map(str::to_string)
}

fn env() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(prop::sample::select(vec!["A", "B", "C"]), scalar(), 0..3).prop_map(
        |m| {
            Value::Array(
                m.into_iter()
                    .map(|(name, value)| json!({"name": name, "value": value}))
                    .collect(),
            )
        },
    )
}

fn ports() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(
        prop::sample::select(vec![80, 443, 8080]),
        prop::option::of(prop::sample::select(vec!["TCP", "UDP"])),
        0..3,
    )
    .prop_map(|m| {
        Value::Array(
            m.into_iter()
                .map(|(port, protocol)| match protocol {
                    Some(p) => json!({"containerPort": port, "protocol": p}),
                    None => json!({"containerPort": port}),
                })
                .collect(),
        )
    })
}

/// A container: its name, and any of image, env (keyed), ports (keyed), args (atomic).
fn container(name: String) -> impl Strategy<Value = Value> {
    (
        prop::option::of(scalar()),
        prop::option::of(env()),
        prop::option::of(ports()),
        prop::option::of(prop::collection::vec(scalar(), 0..3)),
    )
        .prop_map(move |(image, env, ports, args)| {
            let mut c = Map::new();
            c.insert("name".into(), Value::from(name.clone()));
            for (field, v) in [("image", image), ("env", env), ("ports", ports)] {
                if let Some(v) = v {
                    c.insert(field.into(), v);
                }
            }
            if let Some(args) = args {
                c.insert("args".into(), Value::Array(args));
            }
            Value::Object(c)
        })
}

/// Containers with distinct names, in a generated order.
fn containers() -> impl Strategy<Value = Value> {
    prop::sample::subsequence(vec!["app", "side", "init"], 0..=3)
        .prop_shuffle()
        .prop_flat_map(|names| {
            names
                .into_iter()
                .map(|n| container(n.to_string()))
                .collect::<Vec<_>>()
        })
        .prop_map(Value::Array)
}

fn finalizers() -> impl Strategy<Value = Value> {
    prop::sample::subsequence(vec!["f1", "f2", "f3"], 0..=3)
        .prop_shuffle()
        .prop_map(|f| Value::Array(f.into_iter().map(Value::from).collect()))
}

/// A ConfigMap- or Deployment-like object (or apply configuration): every part optional.
fn object() -> impl Strategy<Value = Value> {
    (
        any::<bool>(),
        prop::option::of(string_map()),
        prop::option::of(finalizers()),
        prop::option::of(string_map()),
        prop::option::of(0i64..4),
        prop::option::of(containers()),
    )
        .prop_map(
            |(deployment, labels, finalizers, data, replicas, containers)| {
                let mut meta = Map::new();
                meta.insert("name".into(), json!("o"));
                meta.insert("namespace".into(), json!("default"));
                if let Some(labels) = labels {
                    meta.insert("labels".into(), Value::Object(labels));
                }
                if let Some(f) = finalizers {
                    meta.insert("finalizers".into(), f);
                }
                let mut obj = Map::new();
                if deployment {
                    obj.insert("apiVersion".into(), json!("apps/v1"));
                    obj.insert("kind".into(), json!("Deployment"));
                } else {
                    obj.insert("apiVersion".into(), json!("v1"));
                    obj.insert("kind".into(), json!("ConfigMap"));
                }
                obj.insert("metadata".into(), Value::Object(meta));
                if let Some(data) = data {
                    obj.insert("data".into(), Value::Object(data));
                }
                if deployment {
                    let mut spec = Map::new();
                    if let Some(r) = replicas {
                        spec.insert("replicas".into(), json!(r));
                    }
                    if let Some(c) = containers {
                        spec.insert("template".into(), json!({"spec": {"containers": c}}));
                    }
                    obj.insert("spec".into(), Value::Object(spec));
                }
                Value::Object(obj)
            },
        )
}

/// A value where a patch may also say `null` (delete) instead.
fn or_null<S: Strategy<Value = Value>>(s: S) -> impl Strategy<Value = Value> {
    prop_oneof![5 => s, 1 => Just(Value::Null)]
}

/// A patch map: some keys of `s`, possibly with a `$patch` directive.
fn patch_map(values: impl Strategy<Value = Value>) -> impl Strategy<Value = Value> {
    (
        prop::collection::btree_map(key(), or_null(values), 0..4),
        prop::option::of(prop::sample::select(vec!["replace", "delete", "merge"])),
    )
        .prop_map(|(m, directive)| {
            let mut out: Map<String, Value> = m.into_iter().collect();
            if let Some(d) = directive {
                out.insert("$patch".into(), json!(d));
            }
            Value::Object(out)
        })
}

/// A container in a patch: as generated, or a `$patch: delete` of it.
fn patch_container() -> impl Strategy<Value = Value> {
    container_name().prop_flat_map(|name| {
        prop_oneof![
            4 => container(name.clone()),
            1 => Just(json!({"name": name, "$patch": "delete"})),
        ]
    })
}

/// A strategic merge patch against [`object`]s: the same fields, plus `null`s and the
/// directives (`$patch`, `$setElementOrder`, `$deleteFromPrimitiveList`, `$retainKeys`).
fn smp_patch() -> impl Strategy<Value = Value> {
    (
        prop::option::of(or_null(patch_map(scalar()))),
        prop::option::of(or_null(finalizers())),
        prop::option::of(finalizers()),
        prop::option::of(or_null(patch_map(scalar()))),
        prop::option::of(or_null((0i64..4).prop_map(Value::from))),
        prop::option::of(prop::collection::vec(patch_container(), 0..3)),
        prop::option::of(
            prop::sample::subsequence(vec!["app", "side", "init"], 0..=3).prop_shuffle(),
        ),
        any::<bool>(),
        prop::option::of(prop::sample::subsequence(
            vec!["replicas", "template"],
            0..=2,
        )),
    )
        .prop_map(
            |(
                labels,
                finalizers,
                delete_fin,
                data,
                replicas,
                containers,
                order,
                replace,
                retain,
            )| {
                let mut meta = Map::new();
                if let Some(l) = labels {
                    meta.insert("labels".into(), l);
                }
                if let Some(f) = finalizers {
                    meta.insert("finalizers".into(), f);
                }
                if let Some(d) = delete_fin {
                    meta.insert("$deleteFromPrimitiveList/finalizers".into(), d);
                }
                let mut patch = Map::new();
                if !meta.is_empty() {
                    patch.insert("metadata".into(), Value::Object(meta));
                }
                if let Some(d) = data {
                    patch.insert("data".into(), d);
                }
                let mut spec = Map::new();
                if let Some(r) = replicas {
                    spec.insert("replicas".into(), r);
                }
                if let Some(retain) = retain {
                    spec.insert("$retainKeys".into(), json!(retain));
                }
                let mut pod = Map::new();
                if let Some(mut c) = containers {
                    if replace {
                        c.push(json!({"$patch": "replace"}));
                    }
                    pod.insert("containers".into(), Value::Array(c));
                }
                if let Some(order) = order {
                    let order: Vec<Value> = order.iter().map(|n| json!({"name": n})).collect();
                    pod.insert("$setElementOrder/containers".into(), Value::Array(order));
                }
                if !pod.is_empty() {
                    spec.insert("template".into(), json!({"spec": pod}));
                }
                if !spec.is_empty() {
                    patch.insert("spec".into(), Value::Object(spec));
                }
                Value::Object(patch)
            },
        )
}

fn opts<'a>(manager: &'a str, force: bool, now: &'a str) -> ApplyOptions<'a> {
    ApplyOptions {
        manager,
        force,
        api_version: "v1",
        now,
    }
}

/// One write that shapes the live object before the property's own applies.
#[derive(Debug, Clone)]
enum Write {
    /// Server-side apply by this manager (forced, so the history always applies).
    Apply(&'static str, Value),
    /// An update (PUT) by this manager to this object.
    Update(&'static str, Value),
}

fn history() -> impl Strategy<Value = Vec<Write>> {
    let manager = prop::sample::select(vec!["m1", "m2", "ctl"]);
    prop::collection::vec(
        prop_oneof![
            (manager.clone(), object()).prop_map(|(m, o)| Write::Apply(m, o)),
            (manager, object()).prop_map(|(m, o)| Write::Update(m, o)),
        ],
        0..3,
    )
}

/// The live object after `history` (`None` when it is empty: the object does not exist).
fn run(history: &[Write]) -> Option<Value> {
    let mut live: Option<Value> = None;
    for write in history {
        live = Some(match write {
            Write::Apply(manager, config) => {
                match server_side_apply(live.as_ref(), config, &opts(manager, true, T1)) {
                    Ok(v) => v,
                    Err(_) => continue,
                }
            }
            Write::Update(manager, obj) => {
                let mut obj = obj.clone();
                // An update sends the object back with the managedFields it read.
                if let (Some(old), Some(meta)) = (
                    live.as_ref()
                        .and_then(|l| l.pointer("/metadata/managedFields")),
                    obj.get_mut("metadata").and_then(Value::as_object_mut),
                ) {
                    meta.insert("managedFields".into(), old.clone());
                }
                track_update(live.as_ref(), &obj, manager, "v1", T1)
            }
        });
    }
    live
}

/// The suffix naming an item of list `field` (by key for keyed lists, by value for sets)
/// and its key fields; `None` for atomic lists.
fn item_id(field: &str, item: &Value) -> Option<(String, &'static [&'static str])> {
    let text = |k: &str| item.get(k).map(Value::to_string).unwrap_or_default();
    match field {
        "containers" | "env" => Some((format!("[name={}]", text("name")), &["name"])),
        "ports" => Some((
            format!(
                "[{}/{}]",
                text("containerPort"),
                item.get("protocol")
                    .and_then(Value::as_str)
                    .unwrap_or("TCP")
            ),
            &["containerPort", "protocol"],
        )),
        "finalizers" => Some((format!("[={item}]"), &[])),
        _ => None,
    }
}

/// The object's leaves with their values, as paths of JSON pointer steps where items of
/// keyed lists are named by key and set items by value (the identities apply uses). A
/// keyed item's key fields are part of its name, not leaves; an item with nothing else is
/// a leaf itself. `apiVersion`, `kind`, the name, namespace and `managedFields` are not
/// leaves (apply tracks none of them).
fn leaves(v: &Value) -> Vec<(String, Value)> {
    fn walk(v: &Value, at: String, field: &str, keys: &[&str], out: &mut Vec<(String, Value)>) {
        match v {
            Value::Object(map) if !map.is_empty() && field != "selector" => {
                let before = out.len();
                for (k, child) in map {
                    let skip = keys.contains(&k.as_str())
                        || (at.is_empty() && matches!(k.as_str(), "apiVersion" | "kind"))
                        || (at == "/metadata"
                            && matches!(k.as_str(), "name" | "namespace" | "managedFields"));
                    if !skip {
                        walk(child, format!("{at}/{k}"), k, &[], out);
                    }
                }
                if out.len() == before && !keys.is_empty() {
                    out.push((at, v.clone()));
                }
            }
            Value::Array(items) if !items.is_empty() && item_id(field, &items[0]).is_some() => {
                for item in items {
                    let Some((id, keys)) = item_id(field, item) else {
                        continue;
                    };
                    if keys.is_empty() {
                        out.push((format!("{at}{id}"), item.clone()));
                    } else {
                        walk(item, format!("{at}{id}"), "", keys, out);
                    }
                }
            }
            _ => out.push((at, v.clone())),
        }
    }
    let mut out = Vec::new();
    walk(v, String::new(), "", &[], &mut out);
    out
}

/// `config` with the leaves `drop` (indexes into its leaves) taken out, as an applier
/// that stops declaring them sends it; also the paths taken out.
fn without(config: &Value, drop: &[prop::sample::Index]) -> (Value, Vec<String>) {
    let all = leaves(config);
    if all.is_empty() {
        return (config.clone(), Vec::new());
    }
    let dropped: Vec<String> = drop
        .iter()
        .map(|i| all[i.index(all.len())].0.clone())
        .collect();
    (remove_leaves(config, &dropped, "", ""), dropped)
}

fn remove_leaves(v: &Value, dropped: &[String], at: &str, field: &str) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter_map(|(k, child)| {
                    let path = format!("{at}/{k}");
                    if dropped.contains(&path) {
                        return None;
                    }
                    Some((k.clone(), remove_leaves(child, dropped, &path, k)))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .filter_map(|item| match item_id(field, item) {
                    Some((id, _)) => {
                        let path = format!("{at}{id}");
                        (!dropped.contains(&path)).then(|| remove_leaves(item, dropped, &path, ""))
                    }
                    None => Some(item.clone()),
                })
                .collect(),
        ),
        _ => v.clone(),
    }
}

/// Whether `path` (as [`leaves`] spells it) or a leaf under it is in `v`.
fn has_path(v: &Value, path: &str) -> bool {
    leaves(v).iter().any(|(p, _)| {
        p == path || p.starts_with(&format!("{path}/")) || p.starts_with(&format!("{path}["))
    })
}

/// Every leaf `config` declares is in `obj` with its value; where it declares an empty map
/// or list, or a keyed item with nothing but its keys, `obj` may hold more there (unowned
/// structure is not pruned).
fn assert_declared(config: &Value, obj: &Value) -> Result<(), TestCaseError> {
    let have = leaves(obj);
    for (path, value) in leaves(config) {
        let bare = match &value {
            Value::Object(_) => true,
            Value::Array(_) => !path.ends_with("/args"),
            _ => false,
        };
        if bare {
            prop_assert!(has_path(obj, &path), "{} missing from {}", path, obj);
        } else {
            prop_assert!(
                have.contains(&(path.clone(), value.clone())),
                "{} = {} missing from {}",
                path,
                value,
                obj
            );
        }
    }
    Ok(())
}

/// Whether a dropped leaf is one no applier owns: an empty map or an empty keyed or set
/// list (structured-merge-diff records no path for those; typed decoding in Kubernetes
/// then drops them, here they stay).
fn is_unowned_empty(config: &Value, path: &str) -> bool {
    leaves(config).iter().any(|(p, v)| {
        p == path
            && match v {
                Value::Object(m) => m.is_empty(),
                Value::Array(a) => a.is_empty() && !path.ends_with("/args"),
                _ => false,
            }
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// `{}` patches nothing.
    #[test]
    fn smp_empty_patch_is_identity(original in object()) {
        let out = strategic_merge_patch(&original, &json!({}));
        prop_assert_eq!(out.ok(), Some(original));
    }

    /// Applying a strategic merge patch a second time changes nothing.
    #[test]
    fn smp_is_idempotent(original in object(), patch in smp_patch()) {
        let Ok(once) = strategic_merge_patch(&original, &patch) else {
            return Ok(());
        };
        let twice = strategic_merge_patch(&once, &patch);
        prop_assert!(twice.is_ok(), "{:?}", twice);
        prop_assert_eq!(twice.expect("checked"), once);
    }

    /// No directive survives into the patched object.
    #[test]
    fn smp_leaves_no_directives(original in object(), patch in smp_patch()) {
        if let Ok(out) = strategic_merge_patch(&original, &patch) {
            let text = out.to_string();
            prop_assert!(!text.contains("\"$"), "{}", text);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Applying the same configuration twice as the same manager changes nothing, not
    /// even `managedFields` (the entry's `time` moves only when something changed),
    /// whatever other appliers and updaters did before.
    #[test]
    fn ssa_same_apply_twice_is_idempotent(
        history in history(),
        config in object(),
        force in any::<bool>(),
    ) {
        let live = run(&history);
        let Ok(once) = server_side_apply(live.as_ref(), &config, &opts("m1", force, T2)) else {
            return Ok(());
        };
        let twice = server_side_apply(Some(&once), &config, &opts("m1", false, T3));
        prop_assert!(twice.is_ok(), "second apply: {:?}", twice);
        prop_assert_eq!(twice.expect("checked"), once);
    }

    /// A field the manager stops declaring, and that no one else owns, disappears; the
    /// fields it still declares keep the declared values.
    #[test]
    fn ssa_removed_field_of_sole_owner_disappears(
        config in object(),
        drop in prop::collection::vec(any::<prop::sample::Index>(), 1..4),
    ) {
        let Ok(created) = server_side_apply(None, &config, &opts("m1", false, T1)) else {
            return Ok(());
        };
        let (smaller, dropped) = without(&config, &drop);
        let applied = server_side_apply(Some(&created), &smaller, &opts("m1", false, T2));
        prop_assert!(applied.is_ok(), "{:?}", applied);
        let applied = applied.expect("checked");
        for path in &dropped {
            if !is_unowned_empty(&config, path) {
                prop_assert!(!has_path(&applied, path), "{} survived: {}", path, applied);
            }
        }
        assert_declared(&smaller, &applied)?;
    }

    /// A field another applier also declared survives when this applier stops declaring
    /// it; the others it dropped disappear.
    #[test]
    fn ssa_field_owned_by_another_applier_survives(
        config in object(),
        other_drops in prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        drop in prop::collection::vec(any::<prop::sample::Index>(), 1..4),
    ) {
        let Ok(created) = server_side_apply(None, &config, &opts("m1", false, T1)) else {
            return Ok(());
        };
        // m2 declares part of m1's configuration, with the same values: both own it.
        let (shared, _) = without(&config, &other_drops);
        let both = server_side_apply(Some(&created), &shared, &opts("m2", false, T2));
        prop_assert!(both.is_ok(), "same values do not conflict: {:?}", both);
        let (smaller, dropped) = without(&config, &drop);
        let applied =
            server_side_apply(Some(&both.expect("checked")), &smaller, &opts("m1", false, T3));
        prop_assert!(applied.is_ok(), "{:?}", applied);
        let applied = applied.expect("checked");
        assert_declared(&shared, &applied)?;
        for path in &dropped {
            if !has_path(&shared, path) && !is_unowned_empty(&config, path) {
                prop_assert!(!has_path(&applied, path), "{} survived: {}", path, applied);
            }
        }
    }

    /// A field an updater changed (and so took over) survives when the applier stops
    /// declaring it.
    #[test]
    fn ssa_field_taken_by_an_updater_survives(
        config in object(),
        drop in prop::collection::vec(any::<prop::sample::Index>(), 1..4),
    ) {
        let Ok(created) = server_side_apply(None, &config, &opts("m1", false, T1)) else {
            return Ok(());
        };
        // A controller rewrites some of the applied values.
        let all = leaves(&config);
        if all.is_empty() {
            return Ok(());
        }
        let mut edited = created.clone();
        let mut taken = Vec::new();
        for i in &drop {
            let (path, _) = &all[i.index(all.len())];
            if let Some(pointer) = plain_pointer(path) {
                if let Some(slot) = edited.pointer_mut(&pointer) {
                    *slot = json!("edited");
                    taken.push(path.clone());
                }
            }
        }
        let updated = track_update(Some(&created), &edited, "ctl", "v1", T2);
        let (smaller, _) = without(&config, &drop);
        let applied = server_side_apply(Some(&updated), &smaller, &opts("m1", false, T3));
        prop_assert!(applied.is_ok(), "{:?}", applied);
        let applied = applied.expect("checked");
        for path in &taken {
            let pointer = plain_pointer(path).expect("taken paths are plain");
            prop_assert_eq!(applied.pointer(&pointer), Some(&json!("edited")), "{} in {}", path, applied);
        }
    }
}

/// A [`leaves`] path that is a plain JSON pointer (no list item in it).
fn plain_pointer(path: &str) -> Option<String> {
    (!path.contains('[')).then(|| path.to_string())
}

/// SMP errors are [`PatchError::Invalid`], never a conflict.
#[test]
fn smp_errors_are_invalid() {
    let err = strategic_merge_patch(&json!({}), &json!({"spec": {"$patch": "bogus"}}));
    assert!(matches!(err, Err(PatchError::Invalid(_))));
}

/// Arbitrary JSON over the keys objects and patches use, directives included: what a
/// hostile or broken client may send.
fn hostile() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (0i64..3).prop_map(Value::from),
        prop::sample::select(vec!["replace", "delete", "merge", "a", "f1", "app", "TCP"])
            .prop_map(Value::from),
    ];
    let keys = prop::sample::select(vec![
        "metadata",
        "spec",
        "template",
        "containers",
        "finalizers",
        "name",
        "image",
        "env",
        "ports",
        "containerPort",
        "protocol",
        "data",
        "labels",
        "a",
        "$patch",
        "$retainKeys",
        "$setElementOrder/containers",
        "$setElementOrder/finalizers",
        "$deleteFromPrimitiveList/finalizers",
    ]);
    leaf.prop_recursive(5, 40, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((keys.clone(), inner), 0..4).prop_map(|kv| {
                Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Any patch either is refused or applies, and then applies again to the same result.
    #[test]
    fn smp_hostile_patch_is_refused_or_idempotent(
        original in prop_oneof![object(), hostile()],
        patch in hostile(),
    ) {
        let Ok(once) = strategic_merge_patch(&original, &patch) else {
            return Ok(());
        };
        let twice = strategic_merge_patch(&once, &patch);
        prop_assert!(twice.is_ok(), "{:?}", twice);
        prop_assert_eq!(twice.expect("checked"), once);
    }

    /// Any apply configuration either is refused or applies, and then applies again to
    /// the same result.
    #[test]
    fn ssa_hostile_config_is_refused_or_idempotent(live in object(), config in hostile()) {
        let Ok(once) = server_side_apply(Some(&live), &config, &opts("m1", true, T1)) else {
            return Ok(());
        };
        let twice = server_side_apply(Some(&once), &config, &opts("m1", false, T2));
        prop_assert!(twice.is_ok(), "{:?}", twice);
        prop_assert_eq!(twice.expect("checked"), once);
    }
}
