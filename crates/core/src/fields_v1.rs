//! `FieldsV1`, the encoding of field sets in `metadata.managedFields` (server-side apply).
//!
//! A `FieldsV1` value is a JSON tree whose keys are path elements: `f:<name>` an object
//! field, `k:{"name":"x"}` the item of a keyed list whose key fields have those values,
//! `v:<json>` an item of a set list equal to that value, `i:<n>` a list position, and `.`
//! the node itself (a member that also has children). A node with no children is a leaf.
//!
//! Two parts of Mooring read it: the embedded API server, which writes and merges
//! managers' field sets exactly as Kubernetes does (structured-merge-diff), and the diff,
//! which reads who owns what to respect other managers' fields. They must decode a key
//! the same way, so the path element, its encoding, its order and the tree codec live
//! here, as in structured-merge-diff's `fieldpath` package.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// One step of a field path, as in SMD's `PathElement`.
#[derive(Debug, Clone)]
pub enum PathElement {
    /// Map field: `f:name`.
    Field(String),
    /// Associative-list item by key fields (sorted by name): `k:{"name":"x"}`.
    Key(Vec<(String, Value)>),
    /// Set-list item: `v:"x"`.
    Value(Value),
    /// List item by position: `i:0` (only for items lacking their keys).
    Index(usize),
}

/// A path from the object's root to one field.
pub type FieldPath = Vec<PathElement>;
/// A set of field paths, in [`PathElement`]'s order (SMD's order).
pub type FieldSet = BTreeSet<FieldPath>;

impl PathElement {
    fn rank(&self) -> u8 {
        match self {
            PathElement::Field(_) => 0,
            PathElement::Key(_) => 1,
            PathElement::Value(_) => 2,
            PathElement::Index(_) => 3,
        }
    }

    /// fieldsV1 object key.
    pub fn encode(&self) -> String {
        match self {
            PathElement::Field(name) => format!("f:{name}"),
            PathElement::Key(fields) => {
                let obj: Map<String, Value> = fields.iter().cloned().collect();
                format!("k:{}", Value::Object(obj))
            }
            PathElement::Value(v) => format!("v:{v}"),
            PathElement::Index(i) => format!("i:{i}"),
        }
    }

    /// The path element of a fieldsV1 object key (`f:`, `k:`, `v:`, `i:`); `None` for
    /// `.` (the node itself) and for a malformed key.
    pub fn decode(key: &str) -> Option<Self> {
        let (kind, rest) = key.split_once(':')?;
        match kind {
            "f" => Some(PathElement::Field(rest.to_owned())),
            "k" => match serde_json::from_str::<Value>(rest).ok()? {
                Value::Object(obj) => {
                    let mut fields: Vec<(String, Value)> = obj.into_iter().collect();
                    fields.sort_by(|a, b| a.0.cmp(&b.0));
                    Some(PathElement::Key(fields))
                }
                _ => None,
            },
            "v" => serde_json::from_str(rest).ok().map(PathElement::Value),
            "i" => rest.parse().ok().map(PathElement::Index),
            _ => None,
        }
    }

    /// Human-readable form used in conflict messages, as SMD prints it.
    pub fn display(&self, out: &mut String) {
        match self {
            PathElement::Field(name) => {
                out.push('.');
                out.push_str(name);
            }
            PathElement::Key(fields) => {
                let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
                out.push('[');
                out.push_str(&parts.join(","));
                out.push(']');
            }
            PathElement::Value(v) => out.push_str(&format!("[={v}]")),
            PathElement::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
}

impl Ord for PathElement {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (PathElement::Field(a), PathElement::Field(b)) => a.cmp(b),
            (PathElement::Key(a), PathElement::Key(b)) => {
                for ((ak, av), (bk, bv)) in a.iter().zip(b) {
                    let ord = ak.cmp(bk).then_with(|| cmp_json(av, bv));
                    if ord != Ordering::Equal {
                        return ord;
                    }
                }
                a.len().cmp(&b.len())
            }
            (PathElement::Value(a), PathElement::Value(b)) => cmp_json(a, b),
            (PathElement::Index(a), PathElement::Index(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for PathElement {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for PathElement {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for PathElement {}

/// A total order on JSON values (null < bool < number < string < array < object).
fn cmp_json(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            Value::Array(_) => 4,
            Value::Object(_) => 5,
        }
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => {
            let numeric = match (x.as_i64(), y.as_i64()) {
                (Some(x), Some(y)) => x.cmp(&y),
                _ => x
                    .as_f64()
                    .zip(y.as_f64())
                    .and_then(|(x, y)| x.partial_cmp(&y))
                    .unwrap_or(Ordering::Equal),
            };
            numeric.then_with(|| x.to_string().cmp(&y.to_string()))
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (xi, yi) in x.iter().zip(y) {
                let ord = cmp_json(xi, yi);
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(_), Value::Object(_)) => a.to_string().cmp(&b.to_string()),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// A path as structured-merge-diff prints it in conflict messages (`.spec.replicas`).
pub fn path_string(path: &[PathElement]) -> String {
    let mut out = String::new();
    for pe in path {
        pe.display(&mut out);
    }
    out
}

/// Encodes a field set as a FieldsV1 JSON object (SMD's serialization:
/// sorted path elements, `"."` first for nodes that are members and have children).
pub fn encode(set: &FieldSet) -> Value {
    #[derive(Default)]
    struct Trie {
        member: bool,
        children: BTreeMap<PathElement, Trie>,
    }
    fn to_json(node: &Trie) -> Map<String, Value> {
        let mut out = Map::new();
        if node.member && !node.children.is_empty() {
            out.insert(".".into(), Value::Object(Map::new()));
        }
        for (pe, child) in &node.children {
            out.insert(pe.encode(), Value::Object(to_json(child)));
        }
        out
    }
    let mut root = Trie::default();
    for path in set.iter().filter(|p| !p.is_empty()) {
        let mut node = &mut root;
        for pe in path {
            node = node.children.entry(pe.clone()).or_default();
        }
        node.member = true;
    }
    Value::Object(to_json(&root))
}

/// Decodes a FieldsV1 object into its set of paths; `None` if it is malformed.
pub fn decode(value: &Value) -> Option<FieldSet> {
    fn walk(map: &Map<String, Value>, prefix: &mut FieldPath, out: &mut FieldSet) -> Option<()> {
        for (key, sub) in map {
            if key == "." {
                if !prefix.is_empty() {
                    out.insert(prefix.clone());
                }
                continue;
            }
            let Value::Object(sub) = sub else { return None };
            prefix.push(PathElement::decode(key)?);
            if sub.is_empty() {
                out.insert(prefix.clone());
            } else {
                walk(sub, prefix, out)?;
            }
            prefix.pop();
        }
        Some(())
    }
    let Value::Object(map) = value else {
        return None;
    };
    let mut out = FieldSet::new();
    walk(map, &mut Vec::new(), &mut out)?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_decode_to_path_elements_and_back() {
        let cases = [
            ("f:spec", PathElement::Field("spec".into())),
            ("f:a:b", PathElement::Field("a:b".into())),
            (
                r#"k:{"name":"app","containerPort":80}"#,
                PathElement::Key(vec![
                    ("containerPort".into(), json!(80)),
                    ("name".into(), json!("app")),
                ]),
            ),
            (r#"v:"x""#, PathElement::Value(json!("x"))),
            ("i:3", PathElement::Index(3)),
        ];
        for (key, want) in cases {
            assert_eq!(PathElement::decode(key), Some(want.clone()), "{key}");
            assert_eq!(PathElement::decode(&want.encode()), Some(want), "{key}");
        }
        // Key fields are encoded sorted by name, whatever order they were written in.
        assert_eq!(
            PathElement::decode(r#"k:{"name":"app","containerPort":80}"#)
                .expect("keyed")
                .encode(),
            r#"k:{"containerPort":80,"name":"app"}"#
        );
        for bad in [
            ".",
            "",
            "x:1",
            "k:[1]",
            "k:{",
            "v:not json",
            "i:-1",
            "i:x",
            "spec",
        ] {
            assert_eq!(PathElement::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn trees_decode_to_paths_and_back() {
        let tree = json!({
            "f:metadata": {"f:labels": {"f:app": {}}},
            "f:spec": {"f:containers": {r#"k:{"name":"app"}"#: {".": {}, "f:image": {}}}}
        });
        let set = decode(&tree).expect("well-formed");
        let paths: Vec<String> = set.iter().map(|p| path_string(p)).collect();
        assert_eq!(
            paths,
            [
                ".metadata.labels.app",
                ".spec.containers[name=\"app\"]",
                ".spec.containers[name=\"app\"].image",
            ]
        );
        assert_eq!(encode(&set), tree);
        assert_eq!(decode(&json!({"f:a": 1})), None);
        assert_eq!(decode(&json!({"bogus": {}})), None);
        assert_eq!(decode(&json!([])), None);
    }
}
