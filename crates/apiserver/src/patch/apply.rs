//! Server-side apply and `metadata.managedFields` bookkeeping.
//!
//! Server-side apply lets several actors (kubectl, controllers, GitOps tools)
//! declare the fields they care about without clobbering each other. The API
//! server remembers, per *field manager*, which fields it set, and uses that
//! to (a) remove fields an applier stops declaring, and (b) refuse an apply
//! that would silently overwrite a value another manager set (a conflict,
//! HTTP 409, unless `force`). Clients inspect the result in
//! `metadata.managedFields`, so its encoding must match Kubernetes'.
//!
//! This is a port of the parts of sigs.k8s.io/structured-merge-diff (SMD)
//! that matter, working on untyped JSON plus the list/map knowledge in
//! [`super::schema`]:
//!
//! - A field set is a set of paths (`f:` field, `k:` keyed list item, `v:`
//!   set element, `i:` index). The set of an *applied configuration* contains
//!   its leaves, atomic lists/maps and list items (SMD `ToFieldSet`). The set
//!   an *update* earns is whatever it added or modified, including newly
//!   created maps and lists (SMD `Compare`), which is where the `".": {}`
//!   markers in real managedFields come from.
//! - Apply = merge config into live, record the config's set as the
//!   manager's `Apply` set, prune fields it applied last time but not now
//!   (unless someone else owns them), then diff live against the result:
//!   anything added/modified that another manager owns is a conflict.
//! - Update = diff old against new; the writer gains what changed, everyone
//!   else loses it.
//!
//! Known approximations: no typed defaulting or zero-value objects (on
//! create only the top-level `metadata`/`spec`/`status` maps are treated as
//! pre-existing, like typed built-ins; nested maps and lists newly created by
//! an update carry a `"."` marker even where a typed Kubernetes object would
//! have had an empty/nil value); no update-manager capping ("ancient
//! changes"); no `last-applied-configuration` annotation upkeep; no
//! `subresource` attribution for new entries (existing ones are preserved);
//! ordering of values inside `k:`/`v:` elements is a reasonable total order
//! rather than SMD's exact one.

use std::collections::BTreeSet;
use std::ops::Bound;

use mooring_core::fields_v1::{
    decode as decode_fields, encode as encode_fields, path_string, FieldPath, FieldSet, PathElement,
};
use serde_json::{Map, Value};

use super::schema::{is_atomic_map, key_default, list_merge_keys, ListType};
use super::{ApplyConflict, PatchError};

const APPLY: &str = "Apply";
const UPDATE: &str = "Update";
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

/// Metadata fields never part of any manager's field set: the object's identity (`name`,
/// `namespace`, as structured-merge-diff ignores them) and the server-set fields.
fn ignored_metadata(field: &str) -> bool {
    matches!(field, "name" | "namespace") || mooring_core::server_fields::is_server_metadata(field)
}

/// Parameters of one server-side apply request.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions<'a> {
    /// `fieldManager` query parameter.
    pub manager: &'a str,
    /// `force` query parameter: take ownership instead of reporting conflicts.
    pub force: bool,
    /// API version of the request (`apps/v1`), recorded in managedFields.
    pub api_version: &'a str,
    /// RFC 3339 timestamp recorded as `managedFields[].time`.
    pub now: &'a str,
}

/// Apply `applied` on top of `live` (`None` creates) as `opts.manager`.
///
/// Returns the full new object with `metadata.managedFields` updated, or
/// [`PatchError::Conflict`] listing every field another manager owns and the
/// apply would change (only when `!opts.force`).
pub fn server_side_apply(
    live: Option<&Value>,
    applied: &Value,
    opts: &ApplyOptions,
) -> Result<Value, PatchError> {
    let Value::Object(applied) = applied else {
        return Err(PatchError::Invalid(
            "apply configuration must be a JSON object".into(),
        ));
    };
    let mut applied = applied.clone();
    match applied.get_mut("metadata") {
        None => {}
        Some(Value::Object(meta)) => {
            meta.shift_remove("managedFields");
        }
        // `metadata` is a struct: `null` is its zero value, which declares nothing (and
        // must not clear the object's name, namespace and server-set fields).
        Some(Value::Null) => {
            applied.shift_remove("metadata");
        }
        Some(other) => {
            return Err(PatchError::Invalid(format!(
                "apply configuration: metadata must be an object, not {other}"
            )))
        }
    }
    let empty = Map::new();
    let live_map = match live {
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(PatchError::Invalid(
                "live object is not a JSON object".into(),
            ))
        }
        None => &empty,
    };
    let live_view = view(live_map);

    let mut entries = parse_entries(managed_fields_of(live_map));
    if live.is_some() && entries.is_empty() {
        // Like Kubernetes: everything already in an untracked object belongs
        // to a synthetic manager, so a first applier conflicts with existing
        // values instead of silently claiming them.
        let zero = zero_object(&live_view);
        entries = update_entries(
            entries,
            &zero,
            &live_view,
            BEFORE_FIRST_APPLY,
            opts.api_version,
            opts.now,
        );
        // Bare structure (empty maps and lists, and maps and lists of nothing else) is no
        // one's value: a typed object would not even hold it. Claiming it would also make
        // an object created by an apply that owns nothing (`data: {}`) change at its
        // next, identical apply.
        for entry in &mut entries {
            entry
                .set
                .retain(|path| !value_at(&live_view, path).is_some_and(is_hollow));
        }
        entries.retain(|e| !e.set.is_empty());
    }

    let mut new_set = FieldSet::new();
    applied_map_set(&view(&applied), &[], &[], &mut new_set)?;
    strip(&mut new_set);

    let mut merged = merge_map(live_map, &applied, &[])?;

    let self_idx = find_entry(&entries, opts.manager, APPLY, opts.api_version);
    let last_set = self_idx.map(|i| entries[i].set.clone()).unwrap_or_default();
    let owned_by_others: FieldSet = entries
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != self_idx)
        .flat_map(|(_, e)| e.set.iter().cloned())
        .collect();
    for path in last_set.difference(&new_set) {
        if owned_by_others.contains(path) || has_descendant(&new_set, path) {
            continue;
        }
        remove_path_in_map(&mut merged, path);
    }

    let merged_view = view(&merged);
    let cmp = compare(&live_view, &merged_view);
    let changed: FieldSet = cmp.added.union(&cmp.modified).cloned().collect();

    let mut conflicts = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        if Some(i) == self_idx {
            continue;
        }
        for path in entry.set.intersection(&changed) {
            conflicts.push(ApplyConflict {
                manager: entry.manager.clone(),
                api_version: entry.api_version.clone(),
                field: path_string(path),
            });
        }
    }
    if !conflicts.is_empty() && !opts.force {
        return Err(PatchError::Conflict(conflicts));
    }

    for (i, entry) in entries.iter_mut().enumerate() {
        if Some(i) != self_idx {
            entry
                .set
                .retain(|p| !changed.contains(p) && !cmp.removed.contains(p));
        }
    }
    let object_changed = live_view != merged_view;
    match self_idx {
        Some(i) => {
            let entry = &mut entries[i];
            if object_changed || entry.set != new_set || entry.api_version != opts.api_version {
                entry.time = Some(Value::String(opts.now.to_owned()));
            }
            entry.set = new_set;
            entry.api_version = opts.api_version.to_owned();
        }
        None => entries.push(Entry::new(
            opts.manager,
            APPLY,
            opts.api_version,
            opts.now,
            new_set,
        )),
    }
    entries.retain(|e| !e.set.is_empty());
    sort_entries(&mut entries);
    write_managed_fields(&mut merged, &entries);
    Ok(Value::Object(merged))
}

/// Record a non-apply write (create, update, patch) made by `manager`.
///
/// Every field that differs between `old` (`None` for create) and `new` is
/// attributed to `manager` with operation `Update` and removed from all other
/// managers. If `new` carries its own non-empty `managedFields` they are used
/// as the starting point (a client may rewrite them; `[{}]` resets them),
/// otherwise `old`'s are. Returns `new` with `metadata.managedFields` set.
pub fn track_update(
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    api_version: &str,
    now: &str,
) -> Value {
    let Value::Object(new_map) = new else {
        return new.clone();
    };
    let old_map = old.and_then(Value::as_object);
    let new_view = view(new_map);
    let old_view = match old_map {
        Some(old) => view(old),
        None => zero_object(&new_view),
    };
    let base = base_entries(old_map, new_map);
    let entries = update_entries(base, &old_view, &new_view, manager, api_version, now);
    let mut out = new_map.clone();
    write_managed_fields(&mut out, &entries);
    Value::Object(out)
}

// ---------------------------------------------------------------------------
// Field paths and sets

fn child(path: &[PathElement], pe: PathElement) -> FieldPath {
    let mut out = path.to_vec();
    out.push(pe);
    out
}

fn child_spath(spath: &[String], field: &str) -> Vec<String> {
    let mut out = spath.to_vec();
    out.push(field.to_owned());
    out
}

/// Whether `set` holds a strict descendant of `path`.
fn has_descendant(set: &FieldSet, path: &FieldPath) -> bool {
    set.range::<FieldPath, _>((Bound::Excluded(path), Bound::Unbounded))
        .next()
        .is_some_and(|p| p.starts_with(path))
}

/// Drop paths that are never tracked (the `metadata` node itself).
fn strip(set: &mut FieldSet) {
    set.remove(&vec![PathElement::Field("metadata".into())]);
}

// ---------------------------------------------------------------------------
// Schema helpers

fn schema_list_type(spath: &[String], field: &str) -> ListType {
    let path: Vec<&str> = spath.iter().map(String::as_str).collect();
    list_merge_keys(&path, field)
}

fn schema_atomic_map(spath: &[String], field: &str) -> bool {
    let path: Vec<&str> = spath.iter().map(String::as_str).collect();
    is_atomic_map(&path, field)
}

/// Key of an associative-list item (fields sorted by name), applying key
/// defaults; `None` if a key without default is missing.
fn item_key(item: &Value, keys: &[&str]) -> Option<Vec<(String, Value)>> {
    let item = item.as_object()?;
    let mut fields = Vec::with_capacity(keys.len());
    for key in keys {
        let value = match item.get(*key) {
            Some(v) if !v.is_null() => v.clone(),
            _ => Value::String(key_default(key)?.to_owned()),
        };
        fields.push(((*key).to_owned(), value));
    }
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    Some(fields)
}

fn key_matches(item: &Value, key: &[(String, Value)]) -> bool {
    let Some(map) = item.as_object() else {
        return false;
    };
    key.iter().all(|(k, v)| match map.get(k) {
        Some(actual) if !actual.is_null() => actual == v,
        _ => key_default(k).is_some_and(|d| v.as_str() == Some(d)),
    })
}

/// The value at `path` in `map`, if there is one.
fn value_at<'a>(map: &'a Map<String, Value>, path: &[PathElement]) -> Option<&'a Value> {
    let (PathElement::Field(name), rest) = path.split_first()? else {
        return None;
    };
    let mut value = map.get(name)?;
    for pe in rest {
        value = match (value, pe) {
            (Value::Object(map), PathElement::Field(name)) => map.get(name)?,
            (Value::Array(items), PathElement::Key(key)) => {
                items.iter().find(|i| key_matches(i, key))?
            }
            (Value::Array(items), PathElement::Value(v)) => items.iter().find(|i| *i == v)?,
            (Value::Array(items), PathElement::Index(i)) => items.get(*i)?,
            _ => return None,
        };
    }
    Some(value)
}

/// Whether `value` is structure only: maps and lists holding nothing but such.
fn is_hollow(value: &Value) -> bool {
    match value {
        Value::Object(map) => map.values().all(is_hollow),
        Value::Array(items) => items.iter().all(is_hollow),
        _ => false,
    }
}

// ---------------------------------------------------------------------------
// Views of objects without server-owned fields

fn view(obj: &Map<String, Value>) -> Map<String, Value> {
    let mut out = obj.clone();
    out.shift_remove("apiVersion");
    out.shift_remove("kind");
    if let Some(Value::Object(meta)) = out.get_mut("metadata") {
        meta.retain(|k, _| !ignored_metadata(k));
    }
    out
}

/// What a create is diffed against: typed built-ins always have their
/// top-level `metadata`/`spec`/`status` structs, so those are not "added".
fn zero_object(new_view: &Map<String, Value>) -> Map<String, Value> {
    ["metadata", "spec", "status"]
        .into_iter()
        .filter(|k| new_view.get(*k).is_some_and(Value::is_object))
        .map(|k| (k.to_owned(), Value::Object(Map::new())))
        .collect()
}

// ---------------------------------------------------------------------------
// Field set of an applied configuration (SMD ToFieldSet)

fn applied_map_set(
    map: &Map<String, Value>,
    path: &[PathElement],
    spath: &[String],
    out: &mut FieldSet,
) -> Result<(), PatchError> {
    for (field, value) in map {
        let fpath = child(path, PathElement::Field(field.clone()));
        match value {
            Value::Object(sub) if !schema_atomic_map(spath, field) => {
                applied_map_set(sub, &fpath, &child_spath(spath, field), out)?;
            }
            Value::Array(items) => match schema_list_type(spath, field) {
                ListType::Atomic => {
                    out.insert(fpath);
                }
                ListType::Set => {
                    for item in items {
                        out.insert(child(&fpath, PathElement::Value(item.clone())));
                    }
                }
                ListType::Map(keys) => {
                    let item_spath = child_spath(spath, field);
                    let mut seen = BTreeSet::new();
                    for item in items {
                        let (Value::Object(sub), Some(key)) = (item, item_key(item, keys)) else {
                            return Err(PatchError::Invalid(format!(
                                "{}: associative list item must be an object with key fields {keys:?}",
                                path_string(&fpath)
                            )));
                        };
                        let ipath = child(&fpath, PathElement::Key(key));
                        if !seen.insert(ipath.clone()) {
                            return Err(PatchError::Invalid(format!(
                                "{}: duplicate entries for key",
                                path_string(&ipath)
                            )));
                        }
                        applied_map_set(sub, &ipath, &item_spath, out)?;
                        out.insert(ipath);
                    }
                }
            },
            _ => {
                out.insert(fpath);
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Merging an applied configuration into the live object (SMD Merge)

fn merge_map(
    live: &Map<String, Value>,
    applied: &Map<String, Value>,
    spath: &[String],
) -> Result<Map<String, Value>, PatchError> {
    let mut result = live.clone();
    for (field, value) in applied {
        if value.is_null() {
            // Owned-as-null: the field is cleared but stays in the set.
            result.shift_remove(field);
            continue;
        }
        let merged = merge_field(result.get(field), value, spath, field)?;
        result.insert(field.clone(), merged);
    }
    Ok(result)
}

fn merge_field(
    live: Option<&Value>,
    applied: &Value,
    spath: &[String],
    field: &str,
) -> Result<Value, PatchError> {
    let empty = Map::new();
    match applied {
        Value::Object(sub) if !schema_atomic_map(spath, field) => {
            let live = live.and_then(Value::as_object).unwrap_or(&empty);
            Ok(Value::Object(merge_map(
                live,
                sub,
                &child_spath(spath, field),
            )?))
        }
        Value::Array(items) => {
            let live_items = live
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            match schema_list_type(spath, field) {
                ListType::Atomic => Ok(applied.clone()),
                ListType::Set => {
                    let mut result = live_items.to_vec();
                    for item in items {
                        if !result.contains(item) {
                            result.push(item.clone());
                        }
                    }
                    Ok(Value::Array(result))
                }
                ListType::Map(keys) => {
                    let item_spath = child_spath(spath, field);
                    let mut result = live_items.to_vec();
                    for item in items {
                        let (Value::Object(sub), Some(key)) = (item, item_key(item, keys)) else {
                            return Err(PatchError::Invalid(format!(
                                "list {field}: item must be an object with key fields {keys:?}"
                            )));
                        };
                        match result.iter().position(|l| key_matches(l, &key)) {
                            Some(idx) => {
                                let live_item = result[idx].as_object().unwrap_or(&empty);
                                result[idx] =
                                    Value::Object(merge_map(live_item, sub, &item_spath)?);
                            }
                            None => {
                                result.push(Value::Object(merge_map(&empty, sub, &item_spath)?))
                            }
                        }
                    }
                    Ok(Value::Array(result))
                }
            }
        }
        other => Ok(other.clone()),
    }
}

/// Remove the node at `path` (a map field, or a list item with its subtree).
fn remove_path_in_map(map: &mut Map<String, Value>, path: &[PathElement]) {
    let Some((PathElement::Field(name), rest)) = path.split_first() else {
        return;
    };
    if rest.is_empty() {
        map.shift_remove(name);
    } else if let Some(value) = map.get_mut(name) {
        remove_path(value, rest);
    }
}

fn remove_path(value: &mut Value, path: &[PathElement]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    match (value, first) {
        (Value::Object(map), PathElement::Field(_)) => remove_path_in_map(map, path),
        (Value::Array(items), pe) => {
            let idx = match pe {
                PathElement::Key(key) => items.iter().position(|i| key_matches(i, key)),
                PathElement::Value(v) => items.iter().position(|i| i == v),
                PathElement::Index(i) => Some(*i).filter(|i| *i < items.len()),
                PathElement::Field(_) => None,
            };
            let Some(idx) = idx else { return };
            if rest.is_empty() {
                items.remove(idx);
            } else {
                remove_path(&mut items[idx], rest);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// Comparing two objects (SMD Compare)

#[derive(Debug, Default)]
struct Comparison {
    added: FieldSet,
    modified: FieldSet,
    removed: FieldSet,
}

fn compare(old: &Map<String, Value>, new: &Map<String, Value>) -> Comparison {
    let mut out = Comparison::default();
    compare_map(old, new, &[], &[], &mut out);
    strip(&mut out.added);
    strip(&mut out.modified);
    strip(&mut out.removed);
    out
}

fn compare_map(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    path: &[PathElement],
    spath: &[String],
    out: &mut Comparison,
) {
    let fields = old
        .keys()
        .chain(new.keys().filter(|k| !old.contains_key(*k)));
    for field in fields {
        let node = Node {
            spath: child_spath(spath, field),
            list: schema_list_type(spath, field),
            atomic_map: schema_atomic_map(spath, field),
        };
        let fpath = child(path, PathElement::Field(field.clone()));
        compare_value(old.get(field), new.get(field), &fpath, &node, out);
    }
}

/// How to treat one value while comparing.
struct Node {
    /// Schema path for the value's children (map fields or list items' fields).
    spath: Vec<String>,
    list: ListType,
    atomic_map: bool,
}

fn compare_value(
    old: Option<&Value>,
    new: Option<&Value>,
    path: &FieldPath,
    node: &Node,
    out: &mut Comparison,
) {
    let shape = |v: Option<&Value>, want_map: bool| match v {
        None => true,
        Some(Value::Object(_)) => want_map,
        Some(Value::Array(_)) => !want_map,
        Some(_) => false,
    };
    let as_map = !node.atomic_map && shape(old, true) && shape(new, true);
    let as_list = node.list != ListType::Atomic && shape(old, false) && shape(new, false);

    let empty_map = Map::new();
    let is_empty = |v: Option<&Value>| match v {
        None => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        Some(_) => false,
    };
    if (as_map || as_list) && !(is_empty(old) && is_empty(new)) {
        if as_map {
            let o = old.and_then(Value::as_object).unwrap_or(&empty_map);
            let n = new.and_then(Value::as_object).unwrap_or(&empty_map);
            compare_map(o, n, path, &node.spath, out);
        } else {
            let o = old
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let n = new
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            compare_list(o, n, path, node, out);
        }
        if old.is_none() {
            out.added.insert(path.clone());
        } else if new.is_none() {
            out.removed.insert(path.clone());
        }
        return;
    }
    // Leaf (scalars, atomic values, empty containers, type changes).
    match (old, new) {
        (None, Some(_)) => {
            out.added.insert(path.clone());
        }
        (Some(_), None) => {
            out.removed.insert(path.clone());
        }
        (Some(a), Some(b)) if a != b => {
            out.modified.insert(path.clone());
        }
        _ => {}
    }
}

fn compare_list(old: &[Value], new: &[Value], path: &FieldPath, node: &Node, out: &mut Comparison) {
    let identify = |items: &[Value]| -> Vec<PathElement> {
        items
            .iter()
            .enumerate()
            .map(|(i, item)| match node.list {
                ListType::Set => PathElement::Value(item.clone()),
                ListType::Map(keys) => {
                    item_key(item, keys).map_or(PathElement::Index(i), PathElement::Key)
                }
                ListType::Atomic => PathElement::Index(i),
            })
            .collect()
    };
    let old_ids = identify(old);
    let new_ids = identify(new);
    let item_node = Node {
        spath: node.spath.clone(),
        list: ListType::Atomic,
        atomic_map: false,
    };
    for (id, item) in new_ids.iter().zip(new) {
        let before = old_ids.iter().position(|o| o == id).map(|i| &old[i]);
        compare_value(
            before,
            Some(item),
            &child(path, id.clone()),
            &item_node,
            out,
        );
    }
    for (id, item) in old_ids.iter().zip(old) {
        if !new_ids.contains(id) {
            compare_value(Some(item), None, &child(path, id.clone()), &item_node, out);
        }
    }
}

// ---------------------------------------------------------------------------
// managedFields entries

#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: Option<Value>,
    subresource: Option<String>,
    set: FieldSet,
}

impl Entry {
    fn new(manager: &str, operation: &str, api_version: &str, now: &str, set: FieldSet) -> Self {
        Entry {
            manager: manager.to_owned(),
            operation: operation.to_owned(),
            api_version: api_version.to_owned(),
            time: Some(Value::String(now.to_owned())),
            subresource: None,
            set,
        }
    }

    fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("manager".into(), Value::String(self.manager.clone()));
        out.insert("operation".into(), Value::String(self.operation.clone()));
        out.insert("apiVersion".into(), Value::String(self.api_version.clone()));
        if let Some(time) = &self.time {
            out.insert("time".into(), time.clone());
        }
        out.insert("fieldsType".into(), Value::String("FieldsV1".into()));
        out.insert("fieldsV1".into(), encode_fields(&self.set));
        if let Some(sub) = &self.subresource {
            out.insert("subresource".into(), Value::String(sub.clone()));
        }
        Value::Object(out)
    }
}

fn managed_fields_of(obj: &Map<String, Value>) -> Option<&Value> {
    obj.get("metadata")?.get("managedFields")
}

/// Parse managedFields; entries we cannot understand are dropped.
fn parse_entries(value: Option<&Value>) -> Vec<Entry> {
    let Some(Value::Array(items)) = value else {
        return Vec::new();
    };
    let text = |item: &Value, key: &str| item.get(key).and_then(Value::as_str).map(str::to_owned);
    items
        .iter()
        .filter(|item| item.get("fieldsType").and_then(Value::as_str) == Some("FieldsV1"))
        .filter_map(|item| {
            Some(Entry {
                manager: text(item, "manager").unwrap_or_default(),
                operation: text(item, "operation")?,
                api_version: text(item, "apiVersion").unwrap_or_default(),
                time: item.get("time").filter(|t| !t.is_null()).cloned(),
                subresource: text(item, "subresource").filter(|s| !s.is_empty()),
                set: decode_fields(item.get("fieldsV1")?)?,
            })
        })
        .collect()
}

/// Manager identity as Kubernetes builds it: appliers are one entry across
/// API versions, updaters are per API version.
fn find_entry(
    entries: &[Entry],
    manager: &str,
    operation: &str,
    api_version: &str,
) -> Option<usize> {
    entries.iter().position(|e| {
        e.manager == manager
            && e.operation == operation
            && e.subresource.is_none()
            && (operation == APPLY || e.api_version == api_version)
    })
}

/// Kubernetes' managedFields order: operation, time, manager, apiVersion, subresource.
fn sort_entries(entries: &mut [Entry]) {
    fn seconds(e: &Entry) -> i64 {
        e.time
            .as_ref()
            .and_then(Value::as_str)
            .and_then(|t| mooring_core::time::parse(t).ok())
            .map_or(0, |t| t.as_second())
    }
    entries.sort_by(|a, b| {
        a.operation
            .cmp(&b.operation)
            .then_with(|| seconds(a).cmp(&seconds(b)))
            .then_with(|| a.manager.cmp(&b.manager))
            .then_with(|| a.api_version.cmp(&b.api_version))
            .then_with(|| a.subresource.cmp(&b.subresource))
    });
}

fn write_managed_fields(obj: &mut Map<String, Value>, entries: &[Entry]) {
    let meta = obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Value::Object(meta) = meta else { return };
    if entries.is_empty() {
        meta.shift_remove("managedFields");
    } else {
        meta.insert(
            "managedFields".into(),
            Value::Array(entries.iter().map(Entry::to_json).collect()),
        );
    }
}

/// Starting managedFields for an update: the request's own if it set any
/// (`[{}]` means reset), otherwise the stored object's.
fn base_entries(old: Option<&Map<String, Value>>, new: &Map<String, Value>) -> Vec<Entry> {
    if let Some(Value::Array(items)) = managed_fields_of(new) {
        if items.len() == 1 && items[0].as_object().is_some_and(Map::is_empty) {
            return Vec::new();
        }
        let parsed = parse_entries(managed_fields_of(new));
        if !parsed.is_empty() {
            return parsed;
        }
    }
    old.map(|o| parse_entries(managed_fields_of(o)))
        .unwrap_or_default()
}

/// SMD `Updater.Update`: `manager` gains what changed, others lose it.
fn update_entries(
    mut entries: Vec<Entry>,
    old_view: &Map<String, Value>,
    new_view: &Map<String, Value>,
    manager: &str,
    api_version: &str,
    now: &str,
) -> Vec<Entry> {
    let cmp = compare(old_view, new_view);
    let changed: FieldSet = cmp.added.union(&cmp.modified).cloned().collect();
    let self_idx = find_entry(&entries, manager, UPDATE, api_version);
    for (i, entry) in entries.iter_mut().enumerate() {
        if Some(i) != self_idx {
            entry
                .set
                .retain(|p| !changed.contains(p) && !cmp.removed.contains(p));
        }
    }
    match self_idx {
        Some(i) => {
            let entry = &mut entries[i];
            let mut next: FieldSet = entry.set.difference(&cmp.removed).cloned().collect();
            next.extend(changed);
            if next != entry.set {
                entry.time = Some(Value::String(now.to_owned()));
                entry.set = next;
            }
        }
        None if !changed.is_empty() => {
            entries.push(Entry::new(manager, UPDATE, api_version, now, changed));
        }
        None => {}
    }
    entries.retain(|e| !e.set.is_empty());
    sort_entries(&mut entries);
    entries
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T1: &str = "2024-01-01T00:00:00Z";
    const T2: &str = "2024-01-01T00:01:00Z";
    const T3: &str = "2024-01-01T00:02:00Z";

    fn opts<'a>(manager: &'a str, force: bool, now: &'a str) -> ApplyOptions<'a> {
        ApplyOptions {
            manager,
            force,
            api_version: "apps/v1",
            now,
        }
    }

    fn apply(live: Option<&Value>, applied: Value, manager: &str, now: &str) -> Value {
        server_side_apply(live, &applied, &opts(manager, false, now)).expect("apply succeeds")
    }

    fn deployment(replicas: i64, image: &str) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 80}]}]}
                }
            }
        })
    }

    fn managed(obj: &Value) -> &Vec<Value> {
        obj["metadata"]["managedFields"]
            .as_array()
            .expect("managedFields present")
    }

    fn entry<'a>(obj: &'a Value, manager: &str, operation: &str) -> Option<&'a Value> {
        managed(obj)
            .iter()
            .find(|e| e["manager"] == manager && e["operation"] == operation)
    }

    fn fields(obj: &Value, manager: &str, operation: &str) -> Value {
        entry(obj, manager, operation).expect("entry exists")["fieldsV1"].clone()
    }

    #[test]
    fn create_records_golden_fields_v1() {
        let obj = apply(None, deployment(2, "nginx:1.25"), "kubectl", T1);
        assert_eq!(obj["spec"]["replicas"], json!(2));
        let mf = managed(&obj);
        assert_eq!(mf.len(), 1);
        assert_eq!(
            mf[0],
            json!({
                "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1", "time": T1,
                "fieldsType": "FieldsV1",
                "fieldsV1": {
                    "f:metadata": {"f:labels": {"f:app": {}}},
                    "f:spec": {
                        "f:replicas": {},
                        "f:selector": {},
                        "f:template": {
                            "f:metadata": {"f:labels": {"f:app": {}}},
                            "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {
                                ".": {},
                                "f:image": {},
                                "f:name": {},
                                "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}
                            }}}
                        }
                    }
                }
            })
        );
        // Byte-level ordering matches Kubernetes' serialization.
        assert_eq!(
            mf[0]["fieldsV1"]["f:spec"]["f:template"]["f:spec"].to_string(),
            r#"{"f:containers":{"k:{\"name\":\"app\"}":{".":{},"f:image":{},"f:name":{},"f:ports":{"k:{\"containerPort\":80,\"protocol\":\"TCP\"}":{".":{},"f:containerPort":{}}}}}}"#
        );
    }

    #[test]
    fn fields_v1_round_trips() {
        let obj = apply(None, deployment(2, "nginx"), "kubectl", T1);
        let encoded = fields(&obj, "kubectl", "Apply");
        let decoded = decode_fields(&encoded).expect("decodes");
        assert_eq!(encode_fields(&decoded), encoded);
        assert!(decoded.contains(&vec![
            PathElement::Field("spec".into()),
            PathElement::Field("replicas".into())
        ]));
    }

    #[test]
    fn reapply_without_field_removes_it() {
        let obj = apply(None, deployment(2, "nginx"), "kubectl", T1);
        let mut config = deployment(2, "nginx");
        config["spec"]
            .as_object_mut()
            .expect("spec")
            .shift_remove("replicas");
        config["metadata"]["labels"] = json!({"tier": "fe"});
        let obj = apply(Some(&obj), config, "kubectl", T2);
        assert!(obj["spec"].get("replicas").is_none());
        assert_eq!(obj["metadata"]["labels"], json!({"tier": "fe"}));
        let f = fields(&obj, "kubectl", "Apply");
        assert!(f["f:spec"].get("f:replicas").is_none());
        assert_eq!(f["f:metadata"], json!({"f:labels": {"f:tier": {}}}));
        assert_eq!(
            entry(&obj, "kubectl", "Apply").expect("entry")["time"],
            json!(T2)
        );
    }

    #[test]
    fn reapply_without_container_removes_it_and_keeps_others() {
        let mut two = deployment(1, "nginx");
        two["spec"]["template"]["spec"]["containers"]
            .as_array_mut()
            .expect("containers")
            .push(json!({"name": "sidecar", "image": "envoy"}));
        let obj = apply(None, two, "kubectl", T1);
        let obj = apply(Some(&obj), deployment(1, "nginx"), "kubectl", T2);
        let containers = &obj["spec"]["template"]["spec"]["containers"];
        assert_eq!(containers.as_array().expect("list").len(), 1);
        assert_eq!(containers[0]["name"], json!("app"));
    }

    #[test]
    fn removal_keeps_field_co_owned_by_another_applier() {
        let obj = apply(None, deployment(3, "nginx"), "alice", T1);
        // bob applies the same replicas value: shared ownership, no conflict.
        let bob_cfg = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 3}});
        let obj = apply(Some(&obj), bob_cfg, "bob", T2);
        assert!(fields(&obj, "alice", "Apply")["f:spec"]
            .get("f:replicas")
            .is_some());
        assert_eq!(
            fields(&obj, "bob", "Apply"),
            json!({"f:spec": {"f:replicas": {}}})
        );

        let mut cfg = deployment(3, "nginx");
        cfg["spec"]
            .as_object_mut()
            .expect("spec")
            .shift_remove("replicas");
        let obj = apply(Some(&obj), cfg, "alice", T3);
        assert_eq!(obj["spec"]["replicas"], json!(3), "bob still owns replicas");
        assert!(fields(&obj, "alice", "Apply")["f:spec"]
            .get("f:replicas")
            .is_none());
        assert_eq!(
            fields(&obj, "bob", "Apply"),
            json!({"f:spec": {"f:replicas": {}}})
        );
    }

    #[test]
    fn conflict_between_appliers_and_force() {
        let obj = apply(None, deployment(3, "nginx"), "alice", T1);
        let bob_cfg = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 5}});
        let err =
            server_side_apply(Some(&obj), &bob_cfg, &opts("bob", false, T2)).expect_err("conflict");
        let PatchError::Conflict(conflicts) = &err else {
            panic!("expected conflict, got {err}")
        };
        assert_eq!(
            conflicts,
            &vec![ApplyConflict {
                manager: "alice".into(),
                api_version: "apps/v1".into(),
                field: ".spec.replicas".into()
            }]
        );
        assert_eq!(
            err.to_string(),
            r#"apply conflict: conflict with "alice" using apps/v1: .spec.replicas"#
        );

        let obj = server_side_apply(Some(&obj), &bob_cfg, &opts("bob", true, T2)).expect("forced");
        assert_eq!(obj["spec"]["replicas"], json!(5));
        assert!(fields(&obj, "alice", "Apply")["f:spec"]
            .get("f:replicas")
            .is_none());
        assert_eq!(
            fields(&obj, "bob", "Apply"),
            json!({"f:spec": {"f:replicas": {}}})
        );

        // alice re-applying her old value now conflicts with bob.
        let err = server_side_apply(
            Some(&obj),
            &deployment(3, "nginx"),
            &opts("alice", false, T3),
        )
        .expect_err("conflict with bob");
        assert!(
            err.to_string()
                .contains(r#"conflict with "bob" using apps/v1: .spec.replicas"#),
            "{err}"
        );
    }

    #[test]
    fn conflicts_name_list_item_fields() {
        let obj = apply(None, deployment(1, "nginx:1"), "alice", T1);
        let cfg = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "nginx:2"}]}}}});
        let err =
            server_side_apply(Some(&obj), &cfg, &opts("bob", false, T2)).expect_err("conflict");
        let PatchError::Conflict(conflicts) = err else {
            panic!("expected conflict")
        };
        assert_eq!(conflicts.len(), 1);
        assert_eq!(
            conflicts[0].field,
            r#".spec.template.spec.containers[name="app"].image"#
        );
    }

    #[test]
    fn update_manager_then_apply_conflict() {
        let obj = apply(None, deployment(1, "nginx"), "kubectl", T1);
        // `kubectl scale`: an ordinary update of replicas.
        let mut scaled = obj.clone();
        scaled["spec"]["replicas"] = json!(5);
        let scaled = track_update(Some(&obj), &scaled, "kubectl-scale", "apps/v1", T2);
        assert_eq!(
            fields(&scaled, "kubectl-scale", "Update"),
            json!({"f:spec": {"f:replicas": {}}})
        );
        assert!(fields(&scaled, "kubectl", "Apply")["f:spec"]
            .get("f:replicas")
            .is_none());
        assert_eq!(
            managed(&scaled)[0]["operation"],
            json!("Apply"),
            "Apply entries sort first"
        );

        let err = server_side_apply(
            Some(&scaled),
            &deployment(1, "nginx"),
            &opts("kubectl", false, T3),
        )
        .expect_err("replicas conflict");
        assert_eq!(
            err.to_string(),
            r#"apply conflict: conflict with "kubectl-scale" using apps/v1: .spec.replicas"#
        );

        // Re-applying while agreeing with the live value is fine.
        let ok = apply(Some(&scaled), deployment(5, "nginx"), "kubectl", T3);
        assert_eq!(ok["spec"]["replicas"], json!(5));
        assert!(entry(&ok, "kubectl-scale", "Update").is_some());
    }

    #[test]
    fn same_manager_name_apply_and_update_are_separate_entries() {
        let obj = apply(None, deployment(1, "nginx"), "kubectl", T1);
        let mut edited = obj.clone();
        edited["metadata"]["annotations"] = json!({"note": "x"});
        let edited = track_update(Some(&obj), &edited, "kubectl", "apps/v1", T2);
        assert!(entry(&edited, "kubectl", "Apply").is_some());
        assert_eq!(
            fields(&edited, "kubectl", "Update"),
            json!({"f:metadata": {"f:annotations": {".": {}, "f:note": {}}}})
        );
    }

    #[test]
    fn track_update_on_create_and_unchanged_update() {
        let created = track_update(
            None,
            &deployment(1, "nginx"),
            "kubectl-create",
            "apps/v1",
            T1,
        );
        let f = fields(&created, "kubectl-create", "Update");
        assert_eq!(f["f:metadata"], json!({"f:labels": {".": {}, "f:app": {}}}));
        assert_eq!(f["f:spec"]["f:replicas"], json!({}));
        assert_eq!(f["f:spec"]["f:selector"], json!({}));
        assert!(
            f["f:spec"].get(".").is_none(),
            "top-level spec is not marked as added"
        );
        assert_eq!(
            f["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"]["f:image"],
            json!({})
        );

        // A no-op write keeps the entry (and its time) as is.
        let again = track_update(Some(&created), &created, "kubectl-create", "apps/v1", T2);
        assert_eq!(
            again["metadata"]["managedFields"],
            created["metadata"]["managedFields"]
        );

        // `[{}]` from the client resets managedFields.
        let mut reset = created.clone();
        reset["metadata"]["managedFields"] = json!([{}]);
        let reset = track_update(Some(&created), &reset, "kubectl-edit", "apps/v1", T2);
        assert!(reset["metadata"].get("managedFields").is_none());
    }

    #[test]
    fn track_update_moves_ownership_and_drops_removed_fields() {
        let obj = apply(None, deployment(1, "nginx"), "kubectl", T1);
        let mut new = obj.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
        new["metadata"]["labels"]
            .as_object_mut()
            .expect("labels")
            .shift_remove("app");
        let new = track_update(Some(&obj), &new, "kubectl-set", "apps/v1", T2);
        let kubectl = fields(&new, "kubectl", "Apply");
        assert!(
            kubectl.get("f:metadata").is_none(),
            "removed label no longer owned"
        );
        let container =
            &kubectl["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"];
        assert!(container.get("f:image").is_none());
        assert!(container.get("f:name").is_some());
        let setter = fields(&new, "kubectl-set", "Update");
        assert_eq!(
            setter,
            json!({"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {"f:image": {}}}}}}})
        );
    }

    #[test]
    fn first_apply_over_untracked_object_conflicts_with_before_first_apply() {
        let live = deployment(1, "nginx");
        let err = server_side_apply(
            Some(&live),
            &deployment(4, "nginx"),
            &opts("kubectl", false, T1),
        )
        .expect_err("conflict");
        assert!(
            err.to_string()
                .contains(r#""before-first-apply" using apps/v1: .spec.replicas"#),
            "{err}"
        );
        let ok = apply(Some(&live), deployment(1, "nginx"), "kubectl", T1);
        assert!(entry(&ok, "before-first-apply", "Update").is_some());
        assert!(entry(&ok, "kubectl", "Apply").is_some());
    }

    #[test]
    fn associative_lists_merge_by_key_and_sets_union() {
        let base = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "finalizers": ["a"]},
            "spec": {"containers": [{"name": "app", "image": "x", "env": [{"name": "A", "value": "1"}], "args": ["--a"]}]}
        });
        let obj = server_side_apply(
            None,
            &base,
            &ApplyOptions {
                manager: "one",
                force: false,
                api_version: "v1",
                now: T1,
            },
        )
        .expect("create");
        let other = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "finalizers": ["b"]},
            "spec": {"containers": [{"name": "app", "env": [{"name": "B", "value": "2"}]}, {"name": "side", "image": "y"}]}
        });
        let obj = server_side_apply(
            Some(&obj),
            &other,
            &ApplyOptions {
                manager: "two",
                force: false,
                api_version: "v1",
                now: T2,
            },
        )
        .expect("no conflict");
        assert_eq!(obj["metadata"]["finalizers"], json!(["a", "b"]));
        let containers = &obj["spec"]["containers"];
        assert_eq!(
            containers[0]["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])
        );
        assert_eq!(containers[0]["args"], json!(["--a"]));
        assert_eq!(containers[1], json!({"name": "side", "image": "y"}));
        assert_eq!(
            fields(&obj, "two", "Apply")["f:metadata"],
            json!({"f:finalizers": {"v:\"b\"": {}}})
        );
        assert_eq!(
            fields(&obj, "one", "Apply")["f:spec"]["f:containers"]["k:{\"name\":\"app\"}"]
                ["f:args"],
            json!({})
        );

        // Dropping a finalizer from one's config removes only that element.
        let mut again = base.clone();
        again["metadata"]["finalizers"] = json!([]);
        let obj = server_side_apply(
            Some(&obj),
            &again,
            &ApplyOptions {
                manager: "one",
                force: false,
                api_version: "v1",
                now: T3,
            },
        )
        .expect("reapply");
        assert_eq!(obj["metadata"]["finalizers"], json!(["b"]));
    }

    #[test]
    fn atomic_list_change_conflicts() {
        let pod = |args: Value| {
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "app", "args": args}]}})
        };
        let o = |m| ApplyOptions {
            manager: m,
            force: false,
            api_version: "v1",
            now: T1,
        };
        let obj = server_side_apply(None, &pod(json!(["--a"])), &o("one")).expect("create");
        let err =
            server_side_apply(Some(&obj), &pod(json!(["--b"])), &o("two")).expect_err("conflict");
        assert!(
            err.to_string()
                .ends_with(r#".spec.containers[name="app"].args"#),
            "{err}"
        );
        assert!(server_side_apply(Some(&obj), &pod(json!(["--a"])), &o("two")).is_ok());
    }

    #[test]
    fn empty_apply_sets_are_dropped_and_invalid_input_rejected() {
        let obj = apply(None, deployment(1, "nginx"), "kubectl", T1);
        let bare =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}});
        let obj2 = apply(Some(&obj), bare, "nobody", T2);
        assert!(entry(&obj2, "nobody", "Apply").is_none());

        assert!(matches!(
            server_side_apply(None, &json!([1]), &opts("x", false, T1)),
            Err(PatchError::Invalid(_))
        ));
        let missing_key = json!({"spec": {"template": {"spec": {"containers": [{"image": "x"}]}}}});
        assert!(matches!(
            server_side_apply(None, &missing_key, &opts("x", false, T1)),
            Err(PatchError::Invalid(_))
        ));
    }

    #[test]
    fn ignored_metadata_is_not_tracked() {
        let mut cfg = deployment(1, "nginx");
        cfg["metadata"]["uid"] = json!("123");
        cfg["metadata"]["resourceVersion"] = json!("9");
        let obj = apply(None, cfg, "kubectl", T1);
        let meta = &fields(&obj, "kubectl", "Apply")["f:metadata"];
        assert_eq!(meta, &json!({"f:labels": {"f:app": {}}}));
    }

    /// Found by `ssa_same_apply_twice_is_idempotent`: an apply that owns nothing (`data:
    /// {}`) leaves no managedFields, so at the identical next apply the object looked
    /// untracked and `before-first-apply` claimed `data`.
    #[test]
    fn apply_owning_nothing_is_idempotent() {
        for config in [
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "o"}, "data": {}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "o"},
                   "spec": {"template": {"spec": {"containers": []}}}}),
        ] {
            let once = apply(None, config.clone(), "m1", T1);
            assert!(once["metadata"].get("managedFields").is_none(), "{once}");
            let twice = apply(Some(&once), config, "m1", T2);
            assert_eq!(twice, once);
        }
        // What an untracked object holds besides bare structure is still claimed.
        let live = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "o"},
                          "data": {"a": "1"}, "binaryData": {}});
        let applied = apply(
            Some(&live),
            json!({"metadata": {"name": "o"}, "data": {"b": "2"}}),
            "m1",
            T2,
        );
        assert_eq!(
            fields(&applied, "before-first-apply", "Update"),
            json!({"f:data": {".": {}, "f:a": {}}})
        );
    }

    /// Found by `ssa_hostile_config_is_refused_or_idempotent`: `metadata: null` removed the
    /// whole metadata (name and namespace included), and each identical apply "changed"
    /// the object again.
    #[test]
    fn null_metadata_declares_nothing() {
        let live = json!({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": "o", "namespace": "default"}});
        let config = json!({"metadata": null, "spec": null});
        let once = apply(Some(&live), config.clone(), "m1", T1);
        assert_eq!(once["metadata"]["name"], "o");
        assert_eq!(once["metadata"]["namespace"], "default");
        assert_eq!(apply(Some(&once), config, "m1", T2), once);
        assert!(matches!(
            server_side_apply(Some(&live), &json!({"metadata": 1}), &opts("m1", false, T1)),
            Err(PatchError::Invalid(_))
        ));
    }
}
