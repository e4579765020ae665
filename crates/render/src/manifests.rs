//! Turning parsed documents into validated Kubernetes objects: skip empty documents,
//! flatten `List`s, require apiVersion/kind/metadata.name, refuse duplicates, and bound
//! the total size.

use crate::RenderError;
use mooring_core::ResourceKey;
use serde_json::Value;
use std::collections::HashMap;

/// Lists nested deeper than this are refused (a `List` of `List`s of ... is hostile).
const MAX_LIST_DEPTH: usize = 4;

/// Accumulates the objects of one render.
pub(crate) struct Collector {
    objects: Vec<Value>,
    seen: HashMap<ResourceKey, String>,
}

impl Collector {
    pub fn new() -> Self {
        Collector {
            objects: Vec::new(),
            seen: HashMap::new(),
        }
    }

    pub fn finish(self) -> Vec<Value> {
        self.objects
    }

    /// Add document `index` of `file` (null documents are skipped).
    pub fn add(&mut self, file: &str, index: usize, doc: Value) -> Result<(), RenderError> {
        self.add_at(file, index, doc, 0)
    }

    fn add_at(
        &mut self,
        file: &str,
        index: usize,
        doc: Value,
        depth: usize,
    ) -> Result<(), RenderError> {
        let invalid = |reason: String| RenderError::InvalidManifest {
            file: file.into(),
            index,
            reason,
        };
        let obj = match doc {
            Value::Null => return Ok(()),
            Value::Object(ref m) if m.is_empty() => return Ok(()),
            Value::Object(m) => m,
            other => {
                return Err(invalid(format!(
                    "expected a mapping, found {}",
                    json_type(&other)
                )))
            }
        };
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
        if is_list(kind, &obj) {
            if depth >= MAX_LIST_DEPTH {
                return Err(invalid(format!(
                    "lists nested more than {MAX_LIST_DEPTH} deep"
                )));
            }
            let items = match obj.get("items") {
                Some(Value::Array(items)) => items.clone(),
                _ => Vec::new(),
            };
            for item in items {
                self.add_at(file, index, item, depth + 1)?;
            }
            return Ok(());
        }
        let api_version = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if api_version.is_empty() {
            return Err(invalid("missing apiVersion".into()));
        }
        if kind.is_empty() {
            return Err(invalid("missing kind".into()));
        }
        let meta = obj.get("metadata").and_then(Value::as_object);
        let name = meta
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let generate_name = meta
            .and_then(|m| m.get("generateName"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if name.is_empty() && generate_name.is_empty() {
            return Err(invalid(format!("{kind} has no metadata.name")));
        }
        if !name.is_empty() {
            let namespace = meta
                .and_then(|m| m.get("namespace"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            let group = api_version
                .rsplit_once('/')
                .map(|(g, _)| g)
                .unwrap_or_default();
            let key = ResourceKey::new(group, kind, namespace, name);
            let here = format!("{file} (document {index})");
            if let Some(first) = self.seen.get(&key) {
                return Err(RenderError::DuplicateResource {
                    key: key.to_string(),
                    first: first.clone(),
                    second: here,
                });
            }
            self.seen.insert(key, here);
        }
        self.objects.push(Value::Object(obj));
        Ok(())
    }
}

/// `kind: List`, and any `…List` kind carrying an `items` array (kubectl's rule).
fn is_list(kind: &str, obj: &serde_json::Map<String, Value>) -> bool {
    kind == "List" || (kind.ends_with("List") && obj.get("items").is_some_and(Value::is_array))
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}

/// Whether a YAML document is only whitespace, comments and document markers.
pub(crate) fn is_blank_yaml(doc: &str) -> bool {
    doc.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---" || t == "..."
    })
}

/// Split the YAML stream printed by kustomize or helm into documents. Both print
/// `---` alone on a line between documents and indent every block scalar, so a line that
/// is exactly `---` is always a separator; splitting first keeps each document under the
/// core parser's per-input limit even when the whole output is larger.
pub(crate) fn split_tool_output(out: &str) -> Vec<&str> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut pos = 0;
    for line in out.split_inclusive('\n') {
        if line.trim_end_matches(['\n', '\r']) == "---" {
            docs.push(&out[start..pos]);
            start = pos + line.len();
        }
        pos += line.len();
    }
    docs.push(&out[start..]);
    docs.into_iter().filter(|d| !is_blank_yaml(d)).collect()
}

/// Parse and collect the YAML stream printed by a tool.
pub(crate) fn collect_tool_output(what: &str, out: &str) -> Result<Vec<Value>, RenderError> {
    let mut c = Collector::new();
    for (i, doc) in split_tool_output(out).into_iter().enumerate() {
        let v = mooring_core::yaml::parse_one(doc).map_err(|source| RenderError::Yaml {
            file: format!("{what} output, document {i}"),
            source,
        })?;
        c.add(what, i, v)?;
    }
    Ok(c.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn splits_tool_output() {
        let out = "---\n# Source: a\nkind: A\n---\nkind: B\ntext: |\n  ---x\n";
        let docs = split_tool_output(out);
        assert_eq!(docs.len(), 2, "{docs:?}");
        assert!(docs[1].contains("---x"));
    }

    #[test]
    fn flattens_lists_and_refuses_duplicates() {
        let mut c = Collector::new();
        let cm =
            |n: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n}});
        c.add(
            "a.yaml",
            0,
            json!({"apiVersion": "v1", "kind": "List", "items": [cm("x"), cm("y")]}),
        )
        .expect("list");
        assert_eq!(c.objects.len(), 2);
        let err = c.add("b.yaml", 3, cm("x")).expect_err("duplicate");
        let msg = err.to_string();
        assert!(msg.contains("a.yaml") && msg.contains("b.yaml"), "{msg}");
    }

    #[test]
    fn requires_identity() {
        let mut c = Collector::new();
        let err = c
            .add(
                "a.yaml",
                1,
                json!({"apiVersion": "v1", "kind": "ConfigMap"}),
            )
            .expect_err("no name");
        assert!(err.to_string().contains("document 1"), "{err}");
        assert!(c.add("a.yaml", 2, json!("text")).is_err());
    }
}
