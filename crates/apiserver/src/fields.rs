//! Field validation: unknown and duplicate fields in a written object
//! (`fieldValidation=Strict|Warn|Ignore`).
//!
//! A Kubernetes API server decodes a JSON or YAML body into the kind's typed struct; keys
//! that name no field have nowhere to go and are dropped, and a key written twice keeps
//! its last value. Since v1.27 (GA) the client chooses what it hears about that with the
//! `fieldValidation` query parameter of create, update and patch (apply included):
//!
//! * `Strict` (kubectl's default): the write fails with `400 BadRequest`
//!   `Deployment in version "v1" cannot be handled as a Deployment: strict decoding error:
//!   unknown field "spec.replicaz", duplicate field "metadata.name"`;
//! * `Warn` (the server's default): one `Warning: 299 - "unknown field \"spec.replicaz\""`
//!   response header per finding, and the write proceeds without the unknown fields;
//! * `Ignore`: the fields are dropped without a word (the client asked for that).
//!
//! Here objects are stored as JSON rather than as typed structs, so "nowhere to go" is
//! decided against the kind's schema: for built-in kinds, Kubernetes' own protobuf
//! descriptors ([`crate::proto`]), walked recursively with the JSON forms of the special
//! apimachinery types ([`crate::proto::JsonShape`]). Custom resources are pruned against
//! their CRD's structural schema; [`prune_unknown`] is the single place both checks plug
//! into, and the write paths in [`crate::api`] call it with the [`FieldValidation`] of the
//! request's [`crate::api::WriteOptions`]. Duplicate keys are only visible while decoding
//! the body, so the HTTP layer finds them ([`json_with_duplicates`]) and passes them on.

use crate::error::ApiError;
use crate::proto::{self, JsonShape};
use crate::registry::ResourceType;
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;
use std::sync::{Arc, Mutex};

/// What a write does about unknown and duplicate fields (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FieldValidation {
    Ignore,
    /// The server's default when the parameter is absent.
    #[default]
    Warn,
    Strict,
}

impl FieldValidation {
    /// The `fieldValidation` query parameter of a write whose options are `options_kind`
    /// (`CreateOptions`, `UpdateOptions`, `PatchOptions`). Values are case-sensitive, as in
    /// Kubernetes; anything else is a 422 naming the supported values.
    pub fn parse(value: Option<&str>, options_kind: &str) -> Result<Self, ApiError> {
        match value {
            None | Some("") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some(other) => Err(ApiError::invalid(
                (options_kind, "meta.k8s.io"),
                "",
                vec![format!(
                    "fieldValidation: Unsupported value: {other:?}: supported values: \"Ignore\", \"Strict\", \"Warn\""
                )],
            )),
        }
    }
}

/// Warnings collected during one request, sent back as `Warning: 299` headers. Cloning
/// shares the collection, so the HTTP layer keeps a clone of what it hands the API.
#[derive(Debug, Clone, Default)]
pub struct Warnings(Arc<Mutex<Vec<String>>>);

/// Most warnings kept for one request (an object with thousands of unknown fields must
/// not make thousands of headers); past it, one warning says how the list ends.
pub const MAX_WARNINGS: usize = 100;

impl Warnings {
    /// Add a warning (once: a write retried after a conflict does not repeat it).
    pub fn push(&self, text: String) {
        let mut w = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if w.len() > MAX_WARNINGS || w.contains(&text) {
            return;
        }
        if w.len() == MAX_WARNINGS {
            w.push(format!(
                "more than {MAX_WARNINGS} warnings: the rest are not listed"
            ));
            return;
        }
        w.push(text);
    }

    /// The warnings so far, in order.
    pub fn list(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Unknown-field findings of one write, as JSON paths (`spec.template.spec.containers[0].foo`).
pub type UnknownFields = Vec<String>;

/// Remove the fields of `obj` the schema of `rt` does not declare, returning their paths in
/// document order. Built-in kinds are checked against their protobuf message; custom
/// resources (Mooring's own kinds included) against their CRD's structural schema
/// ([`crate::structural::prune`]), their `metadata` against `ObjectMeta`.
pub fn prune_unknown(rt: &ResourceType, obj: &mut Value) -> UnknownFields {
    if rt.crd.is_some() {
        // Custom resources: their structural schema, and ObjectMeta for `metadata`.
        let mut found = match &rt.schema {
            Some(schema) => crate::structural::prune(schema, obj, true),
            None => Vec::new(),
        };
        if let (Some(meta), Some(m)) = (
            proto::meta_message("ObjectMeta"),
            obj.get_mut("metadata").filter(|m| m.is_object()),
        ) {
            prune_value(&meta, m, "metadata", &mut found);
        }
        return found;
    }
    match proto::message_for(&rt.api_version(), &rt.kind) {
        Some(message) => prune_object(&message, obj),
        None => Vec::new(),
    }
}

/// [`prune_unknown`] for a top-level object of message `message` (`apiVersion` and `kind`
/// are allowed at the top level: they are the type, not fields of the message).
pub fn prune_object(message: &MessageDescriptor, obj: &mut Value) -> UnknownFields {
    let mut found = Vec::new();
    if let Some(o) = obj.as_object_mut() {
        prune_fields(message, o, "", &mut found, &["apiVersion", "kind"]);
    }
    found
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn prune_fields(
    message: &MessageDescriptor,
    obj: &mut Map<String, Value>,
    path: &str,
    found: &mut Vec<String>,
    allowed: &[&str],
) {
    let mut unknown = Vec::new();
    for (key, value) in obj.iter_mut() {
        if allowed.contains(&key.as_str()) {
            continue;
        }
        match proto::field_for_key(message, key) {
            Some(field) => prune_field(&field, value, &join(path, key), found),
            None => {
                found.push(join(path, key));
                unknown.push(key.clone());
            }
        }
    }
    for key in unknown {
        obj.remove(&key);
    }
}

fn prune_field(field: &FieldDescriptor, value: &mut Value, path: &str, found: &mut Vec<String>) {
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else {
            return;
        };
        let Kind::Message(vm) = entry.map_entry_value_field().kind() else {
            return;
        };
        if let Some(o) = value.as_object_mut() {
            for (k, v) in o.iter_mut() {
                prune_value(&vm, v, &join(path, k), found);
            }
        }
        return;
    }
    let Kind::Message(m) = field.kind() else {
        return;
    };
    if field.is_list() {
        if let Some(items) = value.as_array_mut() {
            for (i, v) in items.iter_mut().enumerate() {
                prune_value(&m, v, &format!("{path}[{i}]"), found);
            }
        }
    } else {
        prune_value(&m, value, path, found);
    }
}

/// Prune one value of message type `m`, by the message's JSON form.
fn prune_value(m: &MessageDescriptor, value: &mut Value, path: &str, found: &mut Vec<String>) {
    let schema = |name: &str| m.get_field_by_name(name).and_then(|f| message_of(&f));
    match proto::json_shape(m) {
        JsonShape::Object => {
            if let Some(o) = value.as_object_mut() {
                prune_fields(m, o, path, found, &[]);
            }
        }
        JsonShape::SchemaOrArray => match (value, schema("schema")) {
            (Value::Array(items), Some(s)) => {
                for (i, v) in items.iter_mut().enumerate() {
                    prune_value(&s, v, &format!("{path}[{i}]"), found);
                }
            }
            (v @ Value::Object(_), Some(s)) => prune_value(&s, v, path, found),
            _ => {}
        },
        JsonShape::SchemaOrBool | JsonShape::SchemaOrStringArray => {
            if let (v @ Value::Object(_), Some(s)) = (value, schema("schema")) {
                prune_value(&s, v, path, found);
            }
        }
        // Scalars and embedded JSON have no fields of their own.
        JsonShape::Time
        | JsonShape::MicroTime
        | JsonShape::Duration
        | JsonShape::IntOrString
        | JsonShape::Quantity
        | JsonShape::Embedded
        | JsonShape::StringList => {}
    }
}

fn message_of(field: &FieldDescriptor) -> Option<MessageDescriptor> {
    match field.kind() {
        Kind::Message(m) => Some(m),
        _ => None,
    }
}

/// Apply the request's [`FieldValidation`] to the findings of a write of `kind` in `version`:
/// `Strict` fails with the Kubernetes message when there are any, `Warn` adds one warning
/// each, `Ignore` does nothing. Unknown fields come first, then duplicates, as Kubernetes
/// lists them.
pub fn enforce(
    mode: FieldValidation,
    (kind, version): (&str, &str),
    unknown: &[String],
    duplicate: &[String],
    warnings: &Warnings,
) -> Result<(), ApiError> {
    let findings: Vec<String> = unknown
        .iter()
        .map(|p| format!("unknown field {p:?}"))
        .chain(duplicate.iter().map(|p| format!("duplicate field {p:?}")))
        .collect();
    if findings.is_empty() {
        return Ok(());
    }
    match mode {
        FieldValidation::Ignore => Ok(()),
        FieldValidation::Warn => {
            for f in findings {
                warnings.push(f);
            }
            Ok(())
        }
        FieldValidation::Strict => Err(ApiError::BadRequest(format!(
            "{kind} in version {version:?} cannot be handled as a {kind}: strict decoding error: {}",
            findings.join(", "),
        ))),
    }
}

/// Largest nesting accepted in a JSON body (serde_json's own limit is 128 as well; this
/// keeps the duplicate-tracking decoder's recursion bounded by the same figure).
const MAX_DEPTH: usize = 128;

/// Decode a JSON body, also returning the paths of keys written twice in one object
/// (`metadata.name`; the last value is kept, as Go's decoder keeps it).
pub fn json_with_duplicates(bytes: &[u8]) -> Result<(Value, Vec<String>), serde_json::Error> {
    let mut dups = Vec::new();
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = Seed {
        dups: &mut dups,
        path: String::new(),
        depth: 0,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok((v, dups))
}

/// Decode a YAML body as the Kubernetes API server does (`sigs.k8s.io/yaml`: the first
/// document, YAML 1.1 scalars, a repeated key keeps its last value), also returning the
/// paths of the repeated keys.
pub fn yaml_with_duplicates(
    text: &str,
) -> Result<(Value, Vec<String>), mooring_core::yaml::YamlError> {
    let doc = mooring_core::yaml::parse_go_first(text, mooring_core::yaml::GoYaml::Sigs)?;
    let dups = doc
        .duplicate_keys
        .into_iter()
        .map(|d| join(&d.path, &d.key))
        .collect();
    Ok((doc.value, dups))
}

struct Seed<'a> {
    dups: &'a mut Vec<String>,
    path: String,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom(format!("{v} has no JSON form")))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(de::Error::custom("the body is nested too deeply"));
        }
        let mut items = Vec::new();
        loop {
            let path = format!("{}[{}]", self.path, items.len());
            match seq.next_element_seed(Seed {
                dups: &mut *self.dups,
                path,
                depth: self.depth + 1,
            })? {
                Some(item) => items.push(item),
                None => break,
            }
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(de::Error::custom("the body is nested too deeply"));
        }
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = join(&self.path, &key);
            let value = map.next_value_seed(Seed {
                dups: &mut *self.dups,
                path: path.clone(),
                depth: self.depth + 1,
            })?;
            if out.insert(key, value).is_some() {
                self.dups.push(path);
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment_type() -> ResourceType {
        crate::registry::Registry::with_builtins()
            .get("apps", "v1", "deployments")
            .map(|t| (*t).clone())
            .expect("deployments are built in")
    }

    #[test]
    fn unknown_fields_are_found_recursively_and_pruned() {
        let rt = deployment_type();
        let mut obj = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}, "bogus": 1,
                         "creationTimestamp": null},
            "spec": {
                "replicaz": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [
                        {"name": "a", "image": "nginx",
                         "resources": {"limits": {"cpu": "1"}},
                         "ports": [{"containerPort": 80, "containerPortZ": 1}]},
                    ]}
                }
            },
            "status": {"replicas": 1, "weird": true}
        });
        let found = prune_unknown(&rt, &mut obj);
        assert_eq!(
            found,
            vec![
                "metadata.bogus",
                "spec.replicaz",
                "spec.template.spec.containers[0].ports[0].containerPortZ",
                "status.weird",
            ]
        );
        assert!(obj.pointer("/spec/replicaz").is_none());
        assert!(obj.pointer("/metadata/bogus").is_none());
        assert_eq!(
            obj["spec"]["template"]["spec"]["containers"][0]["ports"][0],
            json!({"containerPort": 80})
        );
        assert_eq!(obj["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        // Nothing else is touched.
        let mut clean = obj.clone();
        assert!(prune_unknown(&rt, &mut clean).is_empty());
        assert_eq!(clean, obj);
    }

    #[test]
    fn crd_schemas_are_checked_with_their_json_names() {
        let rt = crate::registry::Registry::with_builtins()
            .get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
            .map(|t| (*t).clone())
            .expect("CRDs are built in");
        let mut crd = json!({
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": true,
                        "properties": {
                            "spec": {"type": "object", "typo": 1,
                                     "items": [{"type": "string", "x-kubernetes-bogus": 2}],
                                     "additionalProperties": {"type": "string", "$ref": "#/x"}},
                        },
                        "default": {"anything": {"goes": "here"}},
                    }}}]}
        });
        let found = prune_unknown(&rt, &mut crd);
        assert_eq!(
            found,
            vec![
                "spec.versions[0].schema.openAPIV3Schema.properties.spec.typo",
                "spec.versions[0].schema.openAPIV3Schema.properties.spec.items[0].x-kubernetes-bogus",
            ]
        );
    }

    #[test]
    fn custom_resources_are_left_to_their_schema() {
        let mut rt = deployment_type();
        rt.crd = Some("widgets.example.com".into());
        let mut obj = json!({"spec": {"anything": 1}});
        assert!(prune_unknown(&rt, &mut obj).is_empty());
        assert_eq!(obj, json!({"spec": {"anything": 1}}));
    }

    #[test]
    fn duplicates_are_reported_with_their_paths() {
        let (v, dups) = json_with_duplicates(
            br#"{"metadata":{"name":"a","name":"b"},"spec":{"x":[{"k":1,"k":2}]}}"#,
        )
        .expect("valid JSON");
        assert_eq!(dups, vec!["metadata.name", "spec.x[0].k"]);
        assert_eq!(v["metadata"]["name"], "b");
        assert!(json_with_duplicates(b"{\"a\":1} x").is_err());
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(json_with_duplicates(deep.as_bytes()).is_err());
        let (v, dups) = yaml_with_duplicates("metadata:\n  name: a\n  name: b\n").expect("yaml");
        assert_eq!(dups, vec!["metadata.name"]);
        assert_eq!(v["metadata"]["name"], "b");
    }

    #[test]
    fn the_mode_decides() {
        let w = Warnings::default();
        let unknown = vec!["spec.replicaz".to_string()];
        let dup = vec!["metadata.name".to_string()];
        let e = enforce(
            FieldValidation::Strict,
            ("Deployment", "v1"),
            &unknown,
            &dup,
            &w,
        )
        .expect_err("strict");
        assert_eq!(e.code(), 400);
        assert_eq!(
            e.to_string(),
            "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.replicaz\", duplicate field \"metadata.name\""
        );
        enforce(
            FieldValidation::Ignore,
            ("Deployment", "v1"),
            &unknown,
            &dup,
            &w,
        )
        .expect("ignore");
        assert!(w.list().is_empty());
        enforce(
            FieldValidation::Warn,
            ("Deployment", "v1"),
            &unknown,
            &dup,
            &w,
        )
        .expect("warn");
        enforce(
            FieldValidation::Warn,
            ("Deployment", "v1"),
            &unknown,
            &dup,
            &w,
        )
        .expect("warn again");
        assert_eq!(
            w.list(),
            vec![
                "unknown field \"spec.replicaz\"",
                "duplicate field \"metadata.name\""
            ]
        );
        let many: Vec<String> = (0..1000).map(|i| format!("spec.f{i}")).collect();
        let w = Warnings::default();
        enforce(FieldValidation::Warn, ("Deployment", "v1"), &many, &[], &w).expect("warn");
        let list = w.list();
        assert_eq!(list.len(), MAX_WARNINGS + 1);
        assert!(list[MAX_WARNINGS].contains("not listed"), "{list:?}");
        assert_eq!(
            FieldValidation::parse(None, "CreateOptions").expect("default"),
            FieldValidation::Warn
        );
        assert_eq!(
            FieldValidation::parse(Some("Strict"), "CreateOptions").expect("strict"),
            FieldValidation::Strict
        );
        let e = FieldValidation::parse(Some("strict"), "CreateOptions").expect_err("case");
        assert_eq!(e.code(), 422);
        assert!(e.to_string().contains("supported values"), "{e}");
    }
}
