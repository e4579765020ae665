//! Field ownership from `metadata.managedFields` (server-side apply, `FieldsV1`).
//!
//! `FieldsV1` is a JSON tree whose keys say what is owned:
//! `f:<name>` an object field, `k:{"name":"x"}` the item of a keyed list whose key fields
//! have those values, `v:<json>` an item of a set list equal to that value, `i:<n>` a
//! list position, and `.` the node itself. A node with no children is owned whole. Keys are
//! decoded by [`mooring_core::fields_v1`], the decoding the embedded API server writes with.

use mooring_core::fields_v1::PathElement;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The fields one or more managers own, as a tree.
#[derive(Debug, Default, Clone)]
pub(crate) struct Fields {
    fields: BTreeMap<String, Fields>,
    keyed: Vec<(Map<String, Value>, Fields)>,
    values: Vec<(Value, Fields)>,
    indexes: BTreeMap<usize, Fields>,
}

impl Fields {
    pub(crate) fn parse(v: &Value) -> Fields {
        let mut out = Fields::default();
        let Some(map) = v.as_object() else {
            return out;
        };
        for (k, child) in map {
            let child_fields = Fields::parse(child);
            // `.` (the node itself) adds nothing beyond the node's presence, and a key that
            // is not a path element names no field of the object: both decode to `None`.
            match PathElement::decode(k) {
                Some(PathElement::Field(name)) => {
                    out.fields.entry(name).or_default().merge(child_fields);
                }
                Some(PathElement::Key(key)) => {
                    out.keyed.push((key.into_iter().collect(), child_fields));
                }
                Some(PathElement::Value(val)) => out.values.push((val, child_fields)),
                Some(PathElement::Index(i)) => {
                    out.indexes.entry(i).or_default().merge(child_fields);
                }
                None => {}
            }
        }
        out
    }

    pub(crate) fn merge(&mut self, other: Fields) {
        for (k, v) in other.fields {
            self.fields.entry(k).or_default().merge(v);
        }
        for (i, v) in other.indexes {
            self.indexes.entry(i).or_default().merge(v);
        }
        self.keyed.extend(other.keyed);
        self.values.extend(other.values);
    }

    /// True when nothing below this node is listed: the node is owned whole.
    pub(crate) fn is_leaf(&self) -> bool {
        self.fields.is_empty()
            && self.keyed.is_empty()
            && self.values.is_empty()
            && self.indexes.is_empty()
    }

    pub(crate) fn field(&self, name: &str) -> Option<&Fields> {
        self.fields.get(name)
    }

    /// The ownership of a list item, found by key fields (`k:`), value (`v:`) or
    /// position (`i:`).
    pub(crate) fn item(&self, index: usize, item: &Value) -> Option<&Fields> {
        if let Some(obj) = item.as_object() {
            if let Some((_, f)) = self.keyed.iter().find(|(key, _)| {
                key.iter()
                    .all(|(k, v)| obj.get(k).is_some_and(|x| same(x, v)))
            }) {
                return Some(f);
            }
        }
        if let Some((_, f)) = self.values.iter().find(|(v, _)| same(v, item)) {
            return Some(f);
        }
        self.indexes.get(&index)
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// The fields of `live` owned by `manager` (only entries with `operation: Apply` when
/// `apply_only`). Several entries of the same manager (one per API version) are merged.
pub(crate) fn owned_by(live: &Value, managers: &[&str], apply_only: bool) -> Fields {
    let mut out = Fields::default();
    let entries = live
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for entry in entries {
        let manager = entry
            .get("manager")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !managers.contains(&manager) {
            continue;
        }
        if apply_only && entry.get("operation").and_then(Value::as_str) != Some("Apply") {
            continue;
        }
        let fields_type = entry.get("fieldsType").and_then(Value::as_str);
        if fields_type.is_some_and(|t| t != "FieldsV1") {
            continue;
        }
        if let Some(f) = entry.get("fieldsV1") {
            out.merge(Fields::parse(f));
        }
    }
    out
}

/// The part of `live` that `fields` covers (the whole value at a leaf).
pub(crate) fn extract(live: &Value, fields: &Fields) -> Value {
    if fields.is_leaf() {
        return live.clone();
    }
    match live {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter_map(|(k, v)| fields.field(k).map(|f| (k.clone(), extract(v, f))))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.iter()
                .enumerate()
                .filter_map(|(i, v)| fields.item(i, v).map(|f| extract(v, f)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Copy into `desired` the values of `live` that `fields` covers (ignoreDifferences
/// `managedFieldsManagers`: those managers' values win over Git's). Keyed list items are
/// matched by the list's key (see `list_key::list_key`).
pub(crate) fn take_owned(desired: &mut Value, live: &Value, fields: &Fields) {
    if fields.is_leaf() {
        *desired = live.clone();
        return;
    }
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => {
            for (k, lv) in l {
                let Some(f) = fields.field(k) else { continue };
                match d.get_mut(k) {
                    Some(dv) => take_owned(dv, lv, f),
                    None => {
                        d.insert(k.clone(), extract(lv, f));
                    }
                }
            }
        }
        (Value::Array(d), Value::Array(l)) => {
            let key = super::list_key::list_key(d, l);
            for (i, lv) in l.iter().enumerate() {
                let Some(f) = fields.item(i, lv) else {
                    continue;
                };
                let pos = match &key {
                    Some(key) => d.iter().position(|dv| dv.get(key) == lv.get(key)),
                    None if fields.indexes.contains_key(&i) => (i < d.len()).then_some(i),
                    None => d.iter().position(|dv| dv == lv),
                };
                match pos {
                    Some(p) => take_owned(&mut d[p], lv, f),
                    None => d.push(extract(lv, f)),
                }
            }
        }
        (d, l) => *d = l.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_fields_v1() {
        let f = Fields::parse(&json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"app\"}": {".": {}, "f:image": {}, "f:name": {}}
            }}}}
        }));
        let labels = f
            .field("metadata")
            .and_then(|m| m.field("labels"))
            .expect("labels");
        assert!(labels.field("app").is_some_and(Fields::is_leaf));
        assert!(labels.field("team").is_none());
        let containers = f
            .field("spec")
            .and_then(|s| s.field("template"))
            .and_then(|t| t.field("spec"))
            .and_then(|s| s.field("containers"))
            .expect("containers");
        assert!(containers
            .item(0, &json!({"name": "app", "image": "x"}))
            .is_some());
        assert!(containers.item(0, &json!({"name": "sidecar"})).is_none());
    }
}
