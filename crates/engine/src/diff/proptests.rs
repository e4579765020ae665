//! Property tests of the diff (issue 20): the rules of the module docs checked on generated
//! objects rather than on the hand-written fixtures of `tests/diff.rs`.
//!
//! What must hold for every object, whatever the normalisation:
//!
//! * an object compared with itself is Synced with an empty unified diff, under any
//!   `ignoreDifferences` (pointers, jq paths, `managedFieldsManagers`) and field manager,
//!   and `respect_ignored` with itself as the live object leaves it as it is;
//! * normalising (and masking) twice is normalising once;
//! * what the API server does to an object (server metadata, `status`, defaults, other
//!   spellings of numbers and quantities, keyed lists in another order, dropped zero and
//!   empty values, `stringData` folded into `data`) is not drift;
//! * a change at a field that an entry names (by pointer, by jq path, or as owned by a
//!   listed manager) is not drift;
//! * an entry whose managers own nothing in the live object changes nothing;
//! * no value of a Secret ever appears in what a diff returns.
//!
//! Generated objects stay small (a few levels, a few keys from a fixed pool) so that the
//! interesting coincidences (a key named `name`, a list of objects with unique names, a
//! quantity under `resources`) happen often.

use super::list_key::list_key;
use super::{diff, mask_secret, normalize, respect_ignored, DiffOptions};
use base64::Engine as _;
use mooring_core::app::{ResourceIgnoreDifferences, SyncStatusCode};
use proptest::prelude::*;
use proptest::sample::{select, subsequence, Index};
use serde_json::{json, Map, Value};

/// Object keys of generated trees: list keys, quantity keys, keys a pointer must escape.
const KEYS: &[&str] = &[
    "a",
    "b",
    "name",
    "port",
    "image",
    "replicas",
    "resources",
    "cpu",
    "enabled",
    "x~y",
    "p/q",
];

/// Quantities in more than one spelling (see `respell`).
const QUANTITIES: &[&str] = &["500m", "0.5", "1Gi", "1073741824", "1", "1000m", "2"];

const POINTERS: &[&str] = &[
    "/spec/replicas",
    "/spec/a",
    "/spec/a/0",
    "/spec/x~0y",
    "/spec/p~1q",
    "/data/a",
    "/metadata/labels",
    "/metadata/labels/team",
    "/kind",
    "/apiVersion",
    "/status",
];

const JQ: &[&str] = &[
    ".spec.replicas",
    ".spec.a",
    ".spec.a[]?",
    ".spec.b[0]",
    ".data",
    ".data.a",
    ".metadata.labels.team",
    ".kind",
    ".spec.a[] | select(.name == \"n0\")",
    ".spec[\"x~y\"]",
];

const MANAGERS: &[&str] = &["hpa", "kube-controller-manager", "mooring", "absent"];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..1000).prop_map(Value::from),
        select(vec![0.5f64, 1.5, 2.25]).prop_map(Value::from),
        "[a-z0-9]{0,6}".prop_map(Value::String),
        select(QUANTITIES).prop_map(|s| Value::String(s.to_string())),
    ]
}

fn object_of(entries: Vec<(&'static str, Value)>) -> Value {
    Value::Object(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

/// A JSON tree: scalars, lists, objects with keys from [`KEYS`], and keyed lists (objects
/// with unique `name`s, as containers or env).
fn tree() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 32, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(
                prop::collection::vec((select(KEYS), inner.clone()), 0..3),
                1..4
            )
            .prop_map(|items| {
                Value::Array(
                    items
                        .into_iter()
                        .enumerate()
                        .map(|(i, fields)| {
                            let mut m: Map<String, Value> = fields
                                .into_iter()
                                .map(|(k, v)| (k.to_string(), v))
                                .collect();
                            m.insert("name".into(), Value::String(format!("n{i}")));
                            Value::Object(m)
                        })
                        .collect(),
                )
            }),
            prop::collection::vec((select(KEYS), inner), 0..4).prop_map(object_of),
        ]
    })
}

fn string_map(values: impl Strategy<Value = String>) -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(select(vec!["a", "b", "token"]), values, 0..3).prop_map(|m| {
        m.into_iter()
            .map(|(k, v)| (k.to_string(), Value::String(v)))
            .collect()
    })
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

/// A Secret value: long and random enough never to occur in a diff by chance.
fn secret_value() -> impl Strategy<Value = String> {
    "[A-Za-z0-9]{12,16}"
}

/// A manifest: identity, metadata and a body that depends on the kind.
fn manifest() -> impl Strategy<Value = Value> {
    let kinds = select(vec![
        ("v1", "ConfigMap"),
        ("apps/v1", "Deployment"),
        ("v1", "Secret"),
        ("example.com/v1", "Widget"),
    ]);
    (
        kinds,
        prop::option::of(Just("ml")),
        string_map("[a-z]{0,4}"),
        tree(),
        string_map(secret_value()),
        string_map(secret_value()),
        prop::option::of(Just(
            json!([{"apiVersion": "v1", "kind": "Pod", "name": "o"}]),
        )),
    )
        .prop_map(
            |((api, kind), ns, labels, spec, data, string_data, owners)| {
                let mut meta = Map::new();
                meta.insert("name".into(), json!("x"));
                if let Some(ns) = ns {
                    meta.insert("namespace".into(), json!(ns));
                }
                if !labels.is_empty() {
                    meta.insert("labels".into(), Value::Object(labels));
                }
                if let Some(o) = owners {
                    meta.insert("ownerReferences".into(), o);
                }
                let mut obj = Map::new();
                obj.insert("apiVersion".into(), json!(api));
                obj.insert("kind".into(), json!(kind));
                obj.insert("metadata".into(), Value::Object(meta));
                match kind {
                    "Secret" => {
                        let data: Map<String, Value> = data
                            .into_iter()
                            .map(|(k, v)| (k, json!(b64(v.as_str().unwrap_or_default()))))
                            .collect();
                        obj.insert("data".into(), Value::Object(data));
                        if !string_data.is_empty() {
                            obj.insert("stringData".into(), Value::Object(string_data));
                        }
                    }
                    "ConfigMap" => {
                        obj.insert("data".into(), Value::Object(data));
                    }
                    _ => {
                        obj.insert("spec".into(), spec);
                    }
                }
                Value::Object(obj)
            },
        )
}

fn rule() -> impl Strategy<Value = ResourceIgnoreDifferences> {
    (
        select(vec!["", "*", "apps", "example.com"]),
        select(vec!["*", "Secret", "Deployment", "ConfigMap", "Widget"]),
        subsequence(POINTERS, 0..3),
        subsequence(JQ, 0..3),
        subsequence(MANAGERS, 0..2),
    )
        .prop_map(|(group, kind, ptrs, jq, managers)| {
            let own = |v: Vec<&str>| v.into_iter().map(str::to_string).collect();
            ResourceIgnoreDifferences {
                group: group.into(),
                kind: kind.into(),
                json_pointers: own(ptrs),
                jq_path_expressions: own(jq),
                managed_fields_managers: own(managers),
                ..Default::default()
            }
        })
}

/// A `FieldsV1` tree owning part of `v`: each object field is kept when the next bit
/// says so; keyed list items are named by their key (`k:`), other lists are owned whole.
fn fields_v1(v: &Value, bits: &mut impl Iterator<Item = bool>) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, child) in m {
                if bits.next().unwrap_or(false) {
                    out.insert(format!("f:{k}"), fields_v1(child, bits));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => match list_key(items, items) {
            Some(key) => {
                let mut out = Map::new();
                for item in items {
                    if bits.next().unwrap_or(false) {
                        let k = json!({ key.as_str(): item.get(&key) }).to_string();
                        out.insert(format!("k:{k}"), fields_v1(item, bits));
                    }
                }
                Value::Object(out)
            }
            None => json!({}),
        },
        _ => json!({}),
    }
}

fn managed_entry(manager: &str, operation: &str, fields: Value) -> Value {
    json!({"manager": manager, "operation": operation, "apiVersion": "v1",
        "fieldsType": "FieldsV1", "fieldsV1": fields})
}

/// The body of an object (what `fields_v1` may own): not the identity fields.
fn body(obj: &Value) -> Value {
    let mut b = obj.clone();
    if let Some(m) = b.as_object_mut() {
        m.shift_remove("apiVersion");
        m.shift_remove("kind");
    }
    if let Some(Value::Object(meta)) = b.get_mut("metadata") {
        meta.shift_remove("name");
        meta.shift_remove("namespace");
        meta.shift_remove("managedFields");
    }
    b
}

/// `obj` with `entries` as its `metadata.managedFields`.
fn with_managed_fields(obj: &Value, entries: Vec<Value>) -> Value {
    let mut out = obj.clone();
    if let Some(Value::Object(meta)) = out.get_mut("metadata") {
        meta.insert("managedFields".into(), Value::Array(entries));
    }
    out
}

fn bits(v: &[bool]) -> impl Iterator<Item = bool> + '_ {
    v.iter().copied().cycle()
}

/// An object as read back from the API server after applying `desired` (see the module
/// docs of `diff`): server metadata and `status` added, `stringData` folded into `data`,
/// fields defaulted, numbers and quantities spelled the server's way, keyed lists in
/// another order, zero and empty values dropped.
fn server_view(desired: &Value, choices: &[bool]) -> Value {
    let mut bits = bits(choices);
    let mut live = normalize::normalize(desired, true);
    if let Some(Value::Object(spec)) = live.get_mut("spec") {
        let spec_value = std::mem::take(spec);
        *spec = match server_defaults(Value::Object(spec_value), false, &mut bits) {
            Value::Object(m) => m,
            _ => Map::new(),
        };
    }
    let other = managed_entry(
        "kube-controller-manager",
        "Update",
        fields_v1(&body(&live), &mut bits),
    );
    let applied = managed_entry("mooring", "Apply", fields_v1(&body(desired), &mut bits));
    if let Some(Value::Object(meta)) = live.get_mut("metadata") {
        meta.insert("uid".into(), json!("0b5c6d1e"));
        meta.insert("resourceVersion".into(), json!("42"));
        meta.insert("generation".into(), json!(3));
        meta.insert("creationTimestamp".into(), json!("2025-01-01T00:00:00Z"));
        meta.insert("managedFields".into(), json!([other, applied]));
        if desired.pointer("/metadata/ownerReferences").is_none() {
            meta.insert(
                "ownerReferences".into(),
                json!([{"apiVersion": "v1", "kind": "Pod", "name": "server-set"}]),
            );
        }
        let ann = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(ann) = ann {
            ann.insert(
                "kubectl.kubernetes.io/last-applied-configuration".into(),
                json!(desired.to_string()),
            );
            ann.insert("deployment.kubernetes.io/revision".into(), json!("7"));
        }
    }
    if let Value::Object(m) = &mut live {
        m.insert("status".into(), json!({"observedGeneration": 3}));
    }
    live
}

const LIST_KEYS: &[&str] = &[
    "name",
    "containerPort",
    "port",
    "mountPath",
    "devicePath",
    "ip",
];

fn server_defaults(v: Value, quantities: bool, bits: &mut impl Iterator<Item = bool>) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, child) in m {
                let keyish = LIST_KEYS.contains(&k.as_str());
                let dropped = (super::compare::is_zero(&child) || super::compare::is_empty(&child))
                    && !keyish
                    && bits.next().unwrap_or(false);
                if dropped {
                    continue;
                }
                let q = quantities || super::compare::QUANTITY_KEYS.contains(&k.as_str());
                let child = if keyish {
                    child
                } else {
                    server_defaults(child, q, bits)
                };
                out.insert(k, child);
            }
            if bits.next().unwrap_or(false) {
                out.insert("defaulted".into(), json!("by-the-server"));
            }
            Value::Object(out)
        }
        Value::Array(items) => {
            let keyed = list_key(&items, &items).is_some();
            let mut items: Vec<Value> = items
                .into_iter()
                .map(|i| server_defaults(i, quantities, bits))
                .collect();
            if keyed && bits.next().unwrap_or(false) {
                items.reverse();
            }
            Value::Array(items)
        }
        Value::Number(n) if bits.next().unwrap_or(false) => match n.as_i64() {
            // `1` comes back as `1.0` (what a float-typed field stores).
            Some(i) if i.abs() < 1 << 20 => json!(i as f64),
            _ => Value::Number(n),
        },
        Value::String(s) if quantities && bits.next().unwrap_or(false) => {
            Value::String(respell(&s).unwrap_or(&s).to_string())
        }
        other => other,
    }
}

/// The API server's canonical spelling of a quantity of [`QUANTITIES`].
fn respell(q: &str) -> Option<&'static str> {
    Some(match q {
        "0.5" => "500m",
        "500m" => "0.5",
        "1073741824" => "1Gi",
        "1Gi" => "1073741824",
        "1" => "1000m",
        "1000m" => "1",
        "2" => "2000m",
        _ => return None,
    })
}

/// A segment of a path into a document.
#[derive(Debug, Clone)]
enum Seg {
    Key(String),
    Index(usize),
}

/// Every path to a value below `spec`, `data` and `metadata.labels` that a change can be
/// made at and that names no list key (changing a list item's key makes another item).
fn paths(obj: &Value) -> Vec<Vec<Seg>> {
    fn walk(v: &Value, at: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
        match v {
            Value::Object(m) => {
                for (k, c) in m {
                    if LIST_KEYS.contains(&k.as_str()) {
                        continue;
                    }
                    at.push(Seg::Key(k.clone()));
                    out.push(at.clone());
                    walk(c, at, out);
                    at.pop();
                }
            }
            Value::Array(items) => {
                for (i, c) in items.iter().enumerate() {
                    at.push(Seg::Index(i));
                    out.push(at.clone());
                    walk(c, at, out);
                    at.pop();
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for root in [&["spec"][..], &["data"], &["metadata", "labels"]] {
        let mut at: Vec<Seg> = root.iter().map(|k| Seg::Key(k.to_string())).collect();
        if let Some(v) = at.iter().try_fold(obj, |v, s| match s {
            Seg::Key(k) => v.get(k),
            Seg::Index(i) => v.get(i),
        }) {
            walk(v, &mut at, &mut out);
        }
    }
    out
}

fn get_mut<'a>(v: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    path.iter().try_fold(v, |v, s| match s {
        Seg::Key(k) => v.get_mut(k),
        Seg::Index(i) => v.get_mut(*i),
    })
}

fn pointer(path: &[Seg]) -> String {
    path.iter()
        .map(|s| match s {
            Seg::Key(k) => format!("/{}", k.replace('~', "~0").replace('/', "~1")),
            Seg::Index(i) => format!("/{i}"),
        })
        .collect()
}

fn jq_path(path: &[Seg]) -> String {
    path.iter()
        .map(|s| match s {
            Seg::Key(k) => format!(".[{}]", Value::String(k.clone())),
            Seg::Index(i) => format!(".[{i}]"),
        })
        .collect()
}

/// `FieldsV1` owning exactly the value at `path` in `live`.
fn fields_at(live: &Value, path: &[Seg]) -> Value {
    let Some((first, rest)) = path.split_first() else {
        return json!({});
    };
    match (first, live) {
        (Seg::Key(k), Value::Object(m)) => {
            let child = m.get(k).map_or(json!({}), |c| fields_at(c, rest));
            json!({ format!("f:{k}"): child })
        }
        (Seg::Index(i), Value::Array(items)) => match list_key(items, items) {
            Some(key) => {
                let item = &items[*i];
                let k = json!({ key.as_str(): item.get(&key) }).to_string();
                json!({ format!("k:{k}"): fields_at(item, rest) })
            }
            // Lists without a key are atomic: owned whole.
            None => json!({}),
        },
        _ => json!({}),
    }
}

fn ignore(
    pointers: Vec<String>,
    jq: Vec<String>,
    managers: Vec<String>,
) -> Vec<ResourceIgnoreDifferences> {
    vec![ResourceIgnoreDifferences {
        group: "*".into(),
        kind: "*".into(),
        json_pointers: pointers,
        jq_path_expressions: jq,
        managed_fields_managers: managers,
        ..Default::default()
    }]
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn prop_diff_of_an_object_with_itself_is_empty(
        obj in manifest(),
        owned in prop::collection::vec(any::<bool>(), 1..40),
        rules in prop::collection::vec(rule(), 0..3),
        manager in prop::option::of(select(MANAGERS)),
    ) {
        let entries = vec![
            managed_entry("hpa", "Update", fields_v1(&body(&obj), &mut bits(&owned))),
            managed_entry("mooring", "Apply", fields_v1(&body(&obj), &mut bits(&owned[1..]))),
        ];
        for x in [obj.clone(), with_managed_fields(&obj, entries)] {
            let opts = DiffOptions { ignore: &rules, manager };
            let d = diff(Some(&x), Some(&x), &opts).expect("the rules are valid");
            prop_assert_eq!(d.status, SyncStatusCode::Synced, "{}", x);
            prop_assert_eq!(&d.unified, "");
            prop_assert_eq!(&d.desired, &d.live);
            // RespectIgnoreDifferences: the live values of the ignored fields are the
            // desired ones already.
            prop_assert_eq!(&respect_ignored(&x, Some(&x), &rules).expect("respect"), &x);
        }
    }

    #[test]
    fn prop_normalising_and_masking_twice_is_once(obj in manifest(), keep in any::<bool>(), live in any::<bool>()) {
        let obj = if live { server_view(&obj, &[true, false, true]) } else { obj };
        let once = normalize::normalize(&obj, keep);
        prop_assert_eq!(&normalize::normalize(&once, keep), &once);
        let masked = mask_secret(&obj);
        prop_assert_eq!(mask_secret(&masked), masked);
    }

    #[test]
    fn prop_what_the_api_server_adds_or_respells_is_not_drift(
        desired in manifest(),
        choices in prop::collection::vec(any::<bool>(), 1..64),
        manager in prop::option::of(Just("mooring")),
    ) {
        let live = server_view(&desired, &choices);
        let d = diff(Some(&desired), Some(&live), &DiffOptions { ignore: &[], manager })
            .expect("diff");
        prop_assert_eq!(d.status, SyncStatusCode::Synced, "live: {}\n{}", live, d.unified);
    }

    #[test]
    fn prop_a_change_at_an_ignored_field_is_not_drift(
        desired in manifest(),
        at in any::<Index>(),
        remove in any::<bool>(),
        how in 0..3u8,
    ) {
        let desired = normalize::normalize(&desired, false);
        let all = paths(&desired);
        prop_assume!(!all.is_empty());
        let path = at.get(&all).clone();
        // The manager variant changes a value (a manager owns only what is there).
        let remove = remove && how != 2;
        let mut live = desired.clone();
        let (last, parent) = path.split_last().expect("paths are not empty");
        // An array element is changed, never removed: removing index i from both sides
        // would pair different elements.
        let remove = remove && matches!(last, Seg::Key(_));
        let target = get_mut(&mut live, parent).expect("the path exists");
        match (last, target, remove) {
            (Seg::Key(k), Value::Object(m), true) => { m.shift_remove(k); }
            (Seg::Index(i), Value::Array(a), true) => { a.remove(*i); }
            (_, target, _) => {
                let t = get_mut(target, std::slice::from_ref(last)).expect("the path exists");
                *t = json!({"changed": "by someone else"});
            }
        }
        let rules = match how {
            0 => ignore(vec![pointer(&path)], vec![], vec![]),
            1 => ignore(vec![], vec![jq_path(&path)], vec![]),
            _ => {
                let entry = managed_entry("hpa", "Update", fields_at(&live, &path));
                live = with_managed_fields(&live, vec![entry]);
                ignore(vec![], vec![], vec!["hpa".into()])
            }
        };
        let d = diff(Some(&desired), Some(&live), &DiffOptions { ignore: &rules, manager: None })
            .expect("diff");
        prop_assert_eq!(
            d.status, SyncStatusCode::Synced,
            "rules: {:?}\nlive: {}\n{}", rules, live, d.unified
        );
    }

    #[test]
    fn prop_managers_that_own_nothing_change_nothing(
        desired in manifest(),
        other in manifest(),
        owned in prop::collection::vec(any::<bool>(), 1..40),
    ) {
        // The live object: same identity, another body, managed by other managers.
        let mut live = other;
        for f in ["apiVersion", "kind"] {
            live[f] = desired[f].clone();
        }
        live["metadata"] = desired["metadata"].clone();
        let entry = managed_entry("kube-controller-manager", "Update", fields_v1(&body(&live), &mut bits(&owned)));
        let live = with_managed_fields(&live, vec![entry]);
        let absent = ignore(vec![], vec![], vec!["absent".into()]);
        let with = diff(Some(&desired), Some(&live), &DiffOptions { ignore: &absent, manager: None })
            .expect("diff");
        let without = diff(Some(&desired), Some(&live), &DiffOptions::default()).expect("diff");
        prop_assert_eq!(with, without);
        let respected = respect_ignored(&desired, Some(&live), &absent).expect("respect");
        prop_assert_eq!(respected, desired);
    }

    #[test]
    fn prop_no_secret_value_leaves_the_diff(
        desired in manifest(),
        live_data in prop::collection::btree_map(select(vec!["a", "b", "token"]), secret_value(), 0..3),
        rules in prop::collection::vec(rule(), 0..3),
        has_desired in any::<bool>(),
    ) {
        let mut desired = desired;
        desired["apiVersion"] = json!("v1");
        desired["kind"] = json!("Secret");
        let mut live = desired.clone();
        live["data"] = Value::Object(
            live_data.iter().map(|(k, v)| (k.to_string(), json!(b64(v)))).collect(),
        );
        if let Some(m) = live.as_object_mut() {
            m.shift_remove("stringData");
        }
        if let Some(Value::Object(meta)) = live.get_mut("metadata") {
            meta.insert("annotations".into(), json!({
                "kubectl.kubernetes.io/last-applied-configuration": desired.to_string(),
            }));
        }
        // Every plain value and its base64 form.
        let mut secrets: Vec<String> = live_data.values().cloned().collect();
        for field in ["data", "stringData"] {
            if let Some(Value::Object(m)) = desired.get(field) {
                secrets.extend(m.values().filter_map(Value::as_str).map(str::to_string));
            }
        }
        let decoded: Vec<String> = secrets
            .iter()
            .filter_map(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
            .filter_map(|b| String::from_utf8(b).ok())
            .collect();
        let encoded: Vec<String> = secrets.iter().map(|s| b64(s)).collect();
        secrets.extend(decoded);
        secrets.extend(encoded);
        secrets.retain(|s| s.len() >= 12);
        let opts = DiffOptions { ignore: &rules, manager: Some("mooring") };
        let want = has_desired.then_some(&desired);
        let text = match diff(want, Some(&live), &opts) {
            Ok(d) => format!("{:?} {:?} {}", d.desired, d.live, d.unified),
            Err(e) => e.to_string(),
        };
        for s in &secrets {
            prop_assert!(!text.contains(s.as_str()), "{} leaked: {}", s, text);
        }
        let masked = mask_secret(&live).to_string();
        for s in &secrets {
            prop_assert!(!masked.contains(s.as_str()), "{} leaked: {}", s, masked);
        }
    }
}

// Regressions: the minimised inputs of the failures the properties above found.

/// `managedFieldsManagers` naming a manager without a `managedFields` entry took the whole
/// live object (an empty ownership tree read as "owned whole"): every change was hidden
/// from the diff and `RespectIgnoreDifferences` applied the live object instead of Git.
#[test]
fn regression_managers_without_entries_own_nothing() {
    let desired = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"},
        "data": {"a": "from-git"}});
    let live = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x",
        "managedFields": [managed_entry("kube-controller-manager", "Update", json!({}))]},
        "data": {"a": "changed-by-hand"}});
    let absent = ignore(vec![], vec![], vec!["absent".into()]);
    let opts = DiffOptions {
        ignore: &absent,
        manager: None,
    };
    let d = diff(Some(&desired), Some(&live), &opts).expect("diff");
    assert_eq!(d.status, SyncStatusCode::OutOfSync, "{}", d.unified);
    let respected = respect_ignored(&desired, Some(&live), &absent).expect("respect");
    assert_eq!(respected, desired);
}

/// An entry removing `/apiVersion` (or `/kind`, or the jq path `.kind`) from a Secret
/// turned masking off: its `data` went out in the clear.
#[test]
fn regression_secret_stays_masked_when_ignore_rules_remove_its_kind() {
    let desired = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"},
        "data": {}, "stringData": {"a": "aa0aaa0a0A0a"}});
    let live = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"},
        "data": {}});
    for (pointers, jq) in [
        (vec!["/apiVersion".to_string()], vec![]),
        (vec!["/kind".to_string()], vec![]),
        (vec![], vec![".kind".to_string()]),
    ] {
        let rules = vec![ResourceIgnoreDifferences {
            kind: "*".into(),
            json_pointers: pointers,
            jq_path_expressions: jq,
            ..Default::default()
        }];
        let opts = DiffOptions {
            ignore: &rules,
            manager: None,
        };
        let d = diff(Some(&desired), Some(&live), &opts).expect("diff");
        let text = format!("{:?} {:?} {}", d.desired, d.live, d.unified);
        assert_eq!(d.status, SyncStatusCode::OutOfSync);
        for secret in ["aa0aaa0a0A0a", "YWEwYWFhMGEwQTBh"] {
            assert!(!text.contains(secret), "{rules:?} leaked {secret}: {text}");
        }
    }
}
