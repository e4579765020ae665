//! OpenAPI v3 documents with full schemas, as `/openapi/v3` serves them.
//!
//! `kubectl explain` reads field descriptions from these documents, kubectl learns from them
//! that the server validates fields itself (the `fieldValidation` parameter of the PATCH
//! operations) and computes client-side strategic merge patches with their
//! `x-kubernetes-patch-*` extensions; generated clients read the schemas too.
//!
//! The built-in schemas are not hand-written: they are derived from the protobuf descriptor
//! set of Kubernetes' own `generated.proto` files ([`crate::proto`]), whose doc comments are
//! the Go doc comments the real server's OpenAPI generator reads, markers included
//! (`+optional`, `+listType=map`, `+listMapKey=name`, `+patchMergeKey=name`,
//! `+patchStrategy=merge`, `+structType=atomic`). So names (`io.k8s.api.apps.v1.Deployment`),
//! descriptions, types and list semantics are those of the real document. Known
//! differences: a field is `required` when its comment has neither `+optional` nor a
//! default (the real generator looks at the Go `omitempty` tag, which protobuf does not
//! keep), non-pointer struct
//! fields carry no `"default": {}`, and enum value lists (`+enum`) are not published.
//! The apimachinery types with a custom JSON form get the real document's schemas
//! (Quantity and IntOrString as `oneOf`, Time and MicroTime as `date-time` strings,
//! RawExtension and FieldsV1 as objects, Duration as a string).
//!
//! Custom resources get their CRD's `openAPIV3Schema` for each served version, named as the
//! real server names them (reversed group, version, kind: `io.argoproj.v1alpha1.Application`),
//! with the standard `apiVersion`, `kind` and `metadata` (a reference to `ObjectMeta`).
//!
//! Documents are built once per group version and kept until a type of that group version
//! changes (a CRD is written or deleted); the root lists each with a `?hash=` of its
//! content, which is what kubectl's disk cache keys on.

use crate::registry::{Registry, ResourceType};
use prost_reflect::{FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

/// Where `$ref`s point in an OpenAPI v3 document.
pub const REF_PREFIX: &str = "#/components/schemas/";

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";

const API_VERSION_DOC: &str = "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources";
const KIND_DOC: &str = "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";
const METADATA_DOC: &str = "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";
const LIST_METADATA_DOC: &str = "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds";

/// The OpenAPI name of a protobuf message: `io.k8s.` + its Go package path
/// (`api.apps.v1.Deployment` → `io.k8s.api.apps.v1.Deployment`;
/// `apiextensions_apiserver…` → `io.k8s.apiextensions-apiserver…`).
pub fn schema_name(m: &MessageDescriptor) -> String {
    format!("io.k8s.{}.{}", m.package_name().replace('_', "-"), m.name())
}

/// The OpenAPI name of a custom resource's schema: reversed group, version, kind, as the
/// real server's CRD OpenAPI builder names it (`io.argoproj.v1alpha1.Application`).
pub fn crd_schema_name(group: &str, version: &str, kind: &str) -> String {
    let reversed: Vec<&str> = group.split('.').rev().collect();
    format!("{}.{version}.{kind}", reversed.join("."))
}

/// Leading comments of every message and field, by (file name, descriptor path).
fn comments() -> &'static HashMap<(String, Vec<i32>), String> {
    static COMMENTS: OnceLock<HashMap<(String, Vec<i32>), String>> = OnceLock::new();
    COMMENTS.get_or_init(|| {
        let mut out = HashMap::new();
        let Some(pool) = crate::proto::pool() else {
            return out;
        };
        for file in pool.files() {
            let fdp = file.file_descriptor_proto();
            let Some(info) = &fdp.source_code_info else {
                continue;
            };
            for loc in &info.location {
                if let Some(c) = &loc.leading_comments {
                    out.insert((fdp.name().to_string(), loc.path.clone()), c.clone());
                }
            }
        }
        out
    })
}

fn comment_of(file: &str, path: &[i32]) -> &'static str {
    comments()
        .get(&(file.to_string(), path.to_vec()))
        .map(String::as_str)
        .unwrap_or("")
}

/// The `+key=value` markers of a Go doc comment (`+optional` has an empty value; a key may
/// repeat, as `+listMapKey` does).
pub fn markers(comment: &str) -> Vec<(&str, &str)> {
    comment
        .lines()
        .filter_map(|l| l.trim().strip_prefix('+'))
        .map(|m| m.split_once('=').unwrap_or((m, "")))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect()
}

/// A Go doc comment as the OpenAPI generator renders it: markers dropped, the lines of a
/// paragraph joined with spaces, paragraphs separated by a blank line, everything after a
/// `---` line left out.
pub fn description(comment: &str) -> String {
    let mut paragraphs: Vec<String> = Vec::new();
    let mut cur = String::new();
    for line in comment.lines() {
        let t = line.trim();
        if t == "---" {
            break;
        }
        if t.starts_with('+') {
            continue;
        }
        if t.is_empty() {
            if !cur.is_empty() {
                paragraphs.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(t);
    }
    if !cur.is_empty() {
        paragraphs.push(cur);
    }
    paragraphs.join("\n\n")
}

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("{REF_PREFIX}{name}") })
}

/// The schema of one value of a field's type (an element, for lists and maps).
fn value_schema(kind: &Kind) -> Value {
    match kind {
        Kind::Message(m) => reference(&schema_name(m)),
        Kind::String | Kind::Enum(_) => json!({"type": "string"}),
        Kind::Bytes => json!({"type": "string", "format": "byte"}),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 | Kind::Uint32 | Kind::Fixed32 => {
            json!({"type": "integer", "format": "int32"})
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64 => {
            json!({"type": "integer", "format": "int64"})
        }
        Kind::Bool => json!({"type": "boolean"}),
        Kind::Double => json!({"type": "number", "format": "double"}),
        Kind::Float => json!({"type": "number", "format": "float"}),
    }
}

fn field_schema(f: &FieldDescriptor) -> Value {
    let comment = comment_of(f.parent_file().file_descriptor_proto().name(), f.path());
    let marks = markers(comment);
    let mut s = if f.is_map() {
        let value = match f.kind() {
            Kind::Message(entry) => value_schema(&entry.map_entry_value_field().kind()),
            other => value_schema(&other),
        };
        json!({"type": "object", "additionalProperties": value})
    } else if f.is_list() {
        let mut s = json!({"type": "array", "items": value_schema(&f.kind())});
        for (k, v) in &marks {
            match *k {
                "listType" => s["x-kubernetes-list-type"] = json!(v),
                "listMapKey" => {
                    let keys = s
                        .as_object_mut()
                        .map(|o| o.entry("x-kubernetes-list-map-keys").or_insert(json!([])));
                    if let Some(Value::Array(a)) = keys {
                        a.push(json!(v));
                    }
                }
                _ => {}
            }
        }
        s
    } else {
        value_schema(&f.kind())
    };
    for (k, v) in &marks {
        match *k {
            "patchMergeKey" => s["x-kubernetes-patch-merge-key"] = json!(v),
            "patchStrategy" => s["x-kubernetes-patch-strategy"] = json!(v),
            "mapType" if f.is_map() => s["x-kubernetes-map-type"] = json!(v),
            _ => {}
        }
    }
    let desc = description(comment);
    if !desc.is_empty() {
        if let Some(r) = s.as_object_mut().and_then(|o| o.remove("$ref")) {
            // OpenAPI 3.0 ignores the siblings of a `$ref`; the real document wraps it.
            s["allOf"] = json!([{ "$ref": r }]);
        }
        s["description"] = json!(desc);
    }
    s
}

/// Messages whose JSON form is not an object of their protobuf fields.
fn special(full_name: &str, desc: String) -> Option<Value> {
    let d = |mut v: Value| {
        if !desc.is_empty() {
            v["description"] = json!(desc);
        }
        v
    };
    Some(match full_name {
        "apimachinery.pkg.apis.meta.v1.Time" | "apimachinery.pkg.apis.meta.v1.MicroTime" => {
            d(json!({"type": "string", "format": "date-time"}))
        }
        "apimachinery.pkg.apis.meta.v1.Duration" => d(json!({"type": "string"})),
        "apimachinery.pkg.api.resource.Quantity" => {
            d(json!({"oneOf": [{"type": "string"}, {"type": "number"}]}))
        }
        "apimachinery.pkg.util.intstr.IntOrString" => d(json!({
            "oneOf": [{"type": "integer"}, {"type": "string"}],
            "format": "int-or-string",
        })),
        "apimachinery.pkg.runtime.RawExtension" | "apimachinery.pkg.apis.meta.v1.FieldsV1" => {
            d(json!({"type": "object"}))
        }
        "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSON"
        | "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrArray"
        | "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrBool"
        | "apiextensions_apiserver.pkg.apis.apiextensions.v1.JSONSchemaPropsOrStringArray" => {
            d(json!({}))
        }
        _ => return None,
    })
}

/// Add the properties of `m`'s fields to `props`; fields embedded inline in Go
/// (`json:",inline"`, [`crate::proto::is_inline`]) contribute their own fields instead, as
/// in the real document (a ConfigMapKeySelector has `name`, not `localObjectReference`).
fn add_fields(
    m: &MessageDescriptor,
    is_object: bool,
    props: &mut Map<String, Value>,
    required: &mut Vec<Value>,
    depth: usize,
) {
    for f in m.fields() {
        if crate::proto::is_inline(&f) {
            if let (Kind::Message(inner), true) = (f.kind(), depth < 4) {
                add_fields(&inner, is_object, props, required, depth + 1);
            }
            continue;
        }
        let comment = comment_of(f.parent_file().file_descriptor_proto().name(), f.path());
        let name = crate::proto::json_key(&f).into_owned();
        // A defaulted field is not required either, whatever its markers say.
        let optional = markers(comment).iter().any(|(k, _)| *k == "optional")
            || comment.contains("Defaults to")
            || comment.contains("defaults to");
        if !optional && !is_object {
            required.push(json!(name));
        }
        props.insert(name, field_schema(&f));
    }
}

/// The schema of one built-in message.
fn definition(m: &MessageDescriptor) -> Value {
    let comment = comment_of(m.parent_file().file_descriptor_proto().name(), m.path());
    let desc = description(comment);
    if let Some(s) = special(m.full_name(), desc.clone()) {
        return s;
    }
    let fields: Vec<FieldDescriptor> = m.fields().collect();
    // Go slice types given a message of their own for protobuf (`ExtraValue`, `Verbs`).
    if let [only] = fields.as_slice() {
        if only.name() == "items" && only.is_list() && !m.name().ends_with("List") {
            let mut s = json!({"type": "array", "items": value_schema(&only.kind())});
            if !desc.is_empty() {
                s["description"] = json!(desc);
            }
            return s;
        }
    }
    let mut props = Map::new();
    let mut required = Vec::new();
    let is_object = fields.iter().any(|f| {
        f.name() == "metadata"
            && matches!(f.kind(), Kind::Message(k) if k.name() == "ObjectMeta" || k.name() == "ListMeta")
    });
    if is_object {
        props.insert(
            "apiVersion".into(),
            json!({"type": "string", "description": API_VERSION_DOC}),
        );
        props.insert(
            "kind".into(),
            json!({"type": "string", "description": KIND_DOC}),
        );
    }
    add_fields(m, is_object, &mut props, &mut required, 0);
    if is_object {
        // Of a kind, only `items` of a list is required (spec and status are optional).
        if fields.iter().any(|f| f.name() == "items") {
            required.push(json!("items"));
        }
    }
    let mut s = json!({"type": "object", "properties": props});
    if !desc.is_empty() {
        s["description"] = json!(desc);
    }
    if !required.is_empty() {
        s["required"] = Value::Array(required);
    }
    for (k, v) in markers(comment) {
        if matches!(k, "structType" | "mapType") && v == "atomic" {
            s["x-kubernetes-map-type"] = json!("atomic");
        }
    }
    s
}

/// Every built-in schema, by OpenAPI name (built once; about a thousand messages).
pub fn builtin_schemas() -> &'static BTreeMap<String, Value> {
    static SCHEMAS: OnceLock<BTreeMap<String, Value>> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let Some(pool) = crate::proto::pool() else {
            return BTreeMap::new();
        };
        pool.all_messages()
            .filter(|m| !m.is_map_entry())
            .map(|m| (schema_name(&m), definition(&m)))
            .collect()
    })
}

/// The OpenAPI name of a built-in kind's schema, if it has one.
pub fn builtin_schema_name(api_version: &str, kind: &str) -> Option<String> {
    crate::proto::message_for(api_version, kind).map(|m| schema_name(&m))
}

/// The schema of a custom resource version, from its CRD's `openAPIV3Schema` (or an
/// object preserving unknown fields when the CRD has none).
fn crd_schema(t: &ResourceType) -> Value {
    let mut s = match t.schema.as_deref() {
        Some(Value::Object(o)) => Value::Object(o.clone()),
        _ => json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
    };
    let props = s
        .as_object_mut()
        .map(|o| o.entry("properties").or_insert_with(|| json!({})));
    if let Some(Value::Object(props)) = props {
        props.insert(
            "apiVersion".into(),
            json!({"type": "string", "description": API_VERSION_DOC}),
        );
        props.insert(
            "kind".into(),
            json!({"type": "string", "description": KIND_DOC}),
        );
        props.insert(
            "metadata".into(),
            json!({"allOf": [reference(OBJECT_META)], "description": METADATA_DOC}),
        );
    }
    s["type"] = json!("object");
    s
}

fn gvk(group: &str, version: &str, kind: &str) -> Value {
    json!([{"group": group, "version": version, "kind": kind}])
}

/// Every `$ref` target named in a schema.
fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                if k == "$ref" {
                    if let Some(name) = x.as_str().and_then(|s| s.strip_prefix(REF_PREFIX)) {
                        out.push(name.to_string());
                    }
                } else {
                    refs(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

/// The OpenAPI v3 document of one group version: the kinds it serves with every schema
/// they reference, and a PATCH operation per resource naming the query parameters the
/// server honours (kubectl looks for `fieldValidation` there before relying on the server
/// to validate fields).
pub fn group_version_document(types: &[Arc<ResourceType>], group: &str, version: &str) -> Value {
    let builtins = builtin_schemas();
    let mut schemas: BTreeMap<String, Value> = BTreeMap::new();
    let mut pending: Vec<String> = Vec::new();
    let params: Vec<Value> = ["dryRun", "fieldManager", "fieldValidation", "force"]
        .iter()
        .map(|n| json!({"name": n, "in": "query", "schema": {"type": "string", "uniqueItems": true}}))
        .collect();
    let mut paths = Map::new();
    let base = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    for t in types
        .iter()
        .filter(|t| t.group == group && t.version == version)
    {
        let av = t.api_version();
        let names = if t.crd.is_some() {
            let name = crd_schema_name(group, version, &t.kind);
            let mut s = crd_schema(t);
            s["x-kubernetes-group-version-kind"] = gvk(group, version, &t.kind);
            refs(&s, &mut pending);
            schemas.insert(name.clone(), s);
            let list_name = format!("{name}List");
            let list = json!({
                "description": format!("{}List is a list of {}", t.kind, t.kind),
                "type": "object",
                "required": ["items"],
                "properties": {
                    "apiVersion": {"type": "string", "description": API_VERSION_DOC},
                    "kind": {"type": "string", "description": KIND_DOC},
                    "metadata": {"allOf": [reference(LIST_META)], "description": LIST_METADATA_DOC},
                    "items": {"type": "array", "items": reference(&name),
                        "description": format!("List of {}. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md", t.plural)},
                },
                "x-kubernetes-group-version-kind": gvk(group, version, &t.list_kind()),
            });
            pending.push(LIST_META.to_string());
            schemas.insert(list_name, list);
            Some(name)
        } else {
            let mut main = None;
            for kind in [t.kind.clone(), t.list_kind()] {
                let Some(name) = builtin_schema_name(&av, &kind) else {
                    continue;
                };
                if let Some(s) = builtins.get(&name) {
                    let mut s = s.clone();
                    s["x-kubernetes-group-version-kind"] = gvk(group, version, &kind);
                    refs(&s, &mut pending);
                    schemas.insert(name.clone(), s);
                }
                if main.is_none() {
                    main = Some(name);
                }
            }
            main
        };
        let path = if t.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", t.plural)
        } else {
            format!("{base}/{}/{{name}}", t.plural)
        };
        let ok = match &names {
            Some(n) => {
                json!({"description": "OK", "content": {"application/json": {"schema": reference(n)}}})
            }
            None => json!({"description": "OK"}),
        };
        let gvk1 = json!({"group": t.group, "version": t.version, "kind": t.kind});
        paths.insert(
            path,
            json!({
                "get": {
                    "operationId": format!("read{}", t.kind),
                    "responses": {"200": ok},
                    "x-kubernetes-action": "get",
                    "x-kubernetes-group-version-kind": gvk1,
                },
                "patch": {
                    "operationId": format!("patch{}", t.kind),
                    "parameters": params,
                    "responses": {"200": ok},
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": gvk1,
                },
            }),
        );
    }
    // Close over the references (bounded: every name is visited once).
    let mut seen: BTreeSet<String> = schemas.keys().cloned().collect();
    while let Some(name) = pending.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(s) = builtins.get(&name) {
            refs(s, &mut pending);
            schemas.insert(name, s.clone());
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0-mooring"},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

/// A built document: its JSON bytes and the content hash the root advertises.
#[derive(Clone)]
pub struct Document {
    pub body: Arc<Vec<u8>>,
    pub hash: String,
}

/// A built document with the resource types it was built from.
type Built = (Vec<Arc<ResourceType>>, Document);

/// Group versions whose documents are kept at most (past that the cache starts over).
const MAX_CACHED: usize = 256;

/// Built documents, by group version, with the resource types each was built from: a
/// document is rebuilt only when a type of its group version changed (a CRD written or
/// deleted), so a CRD write does not rebuild the built-in groups' documents. Cheap to
/// clone (shared).
#[derive(Default, Clone)]
pub struct Cache {
    docs: Arc<Mutex<HashMap<(String, String), Built>>>,
}

impl Cache {
    /// The document of a group version, built once per version of its types.
    pub fn document(&self, registry: &Registry, group: &str, version: &str) -> Document {
        let types: Vec<Arc<ResourceType>> = registry
            .all()
            .into_iter()
            .filter(|t| t.group == group && t.version == version)
            .collect();
        let key = (group.to_string(), version.to_string());
        if let Some((built_from, d)) = self.lock().get(&key) {
            if built_from.len() == types.len()
                && built_from
                    .iter()
                    .zip(&types)
                    .all(|(a, b)| Arc::ptr_eq(a, b) || a == b)
            {
                return d.clone();
            }
        }
        let doc = group_version_document(&types, group, version);
        let body = serde_json::to_vec(&doc).unwrap_or_default();
        let hash = content_hash(&body);
        let d = Document {
            body: Arc::new(body),
            hash,
        };
        let mut docs = self.lock();
        if docs.len() >= MAX_CACHED {
            docs.clear();
        }
        docs.insert(key, (types, d.clone()));
        d
    }

    /// The cache every cluster of this process shares: the built-in groups' documents are
    /// the same for all of them.
    pub fn shared() -> Cache {
        static SHARED: OnceLock<Cache> = OnceLock::new();
        SHARED.get_or_init(Cache::default).clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Built>> {
        self.docs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A stable hash of a document's bytes (FNV-1a, 64 bits, upper-case hex as the real
/// server's are): identical documents hash alike across restarts, so kubectl's cache
/// survives them.
pub fn content_hash(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016X}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(name: &str) -> &'static Value {
        builtin_schemas()
            .get(name)
            .unwrap_or_else(|| panic!("no schema {name}"))
    }

    #[test]
    fn deployment_spec_has_real_shapes_and_descriptions() {
        let s = schema("io.k8s.api.apps.v1.DeploymentSpec");
        assert_eq!(s["type"], "object");
        let replicas = &s["properties"]["replicas"];
        assert_eq!(replicas["type"], "integer");
        assert_eq!(replicas["format"], "int32");
        assert!(replicas["description"]
            .as_str()
            .is_some_and(|d| d.starts_with("Number of desired pods. This is a pointer")));
        assert!(!replicas["description"]
            .as_str()
            .unwrap_or("")
            .contains("+optional"));
        assert_eq!(
            s["properties"]["template"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.api.core.v1.PodTemplateSpec"
        );
        let req: Vec<&str> = s["required"]
            .as_array()
            .expect("required")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(req, ["selector", "template"]);
    }

    #[test]
    fn list_and_patch_extensions_come_from_the_markers() {
        let s = schema("io.k8s.api.core.v1.PodSpec");
        let containers = &s["properties"]["containers"];
        assert_eq!(containers["type"], "array");
        assert_eq!(
            containers["items"]["$ref"],
            "#/components/schemas/io.k8s.api.core.v1.Container"
        );
        assert_eq!(containers["x-kubernetes-list-type"], "map");
        assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert!(s["required"]
            .as_array()
            .is_some_and(|r| r.contains(&json!("containers"))));
        let ports = &schema("io.k8s.api.core.v1.Container")["properties"]["ports"];
        assert_eq!(
            ports["x-kubernetes-list-map-keys"],
            json!(["containerPort", "protocol"])
        );
        // Inline-embedded Go structs are flattened, as in the real document.
        let key = &schema("io.k8s.api.core.v1.ConfigMapKeySelector")["properties"];
        assert!(
            key.get("name").is_some() && key.get("localObjectReference").is_none(),
            "{key}"
        );
        let volume = &schema("io.k8s.api.core.v1.Volume")["properties"];
        assert!(volume.get("configMap").is_some() && volume.get("volumeSource").is_none());
        let probe = &schema("io.k8s.api.core.v1.Probe")["properties"];
        assert!(probe.get("httpGet").is_some() && probe.get("handler").is_none());
        let sel = schema("io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector");
        assert_eq!(sel["x-kubernetes-map-type"], "atomic");
        assert_eq!(
            sel["properties"]["matchLabels"]["additionalProperties"]["type"],
            "string"
        );
    }

    #[test]
    fn special_types_have_the_real_documents_schemas() {
        let q = schema("io.k8s.apimachinery.pkg.api.resource.Quantity");
        assert_eq!(q["oneOf"], json!([{"type": "string"}, {"type": "number"}]));
        let i = schema("io.k8s.apimachinery.pkg.util.intstr.IntOrString");
        assert_eq!(i["format"], "int-or-string");
        let t = schema("io.k8s.apimachinery.pkg.apis.meta.v1.Time");
        assert_eq!(
            (&t["type"], &t["format"]),
            (&json!("string"), &json!("date-time"))
        );
        assert_eq!(
            schema("io.k8s.apimachinery.pkg.runtime.RawExtension")["type"],
            "object"
        );
        assert_eq!(
            schema("io.k8s.apimachinery.pkg.apis.meta.v1.FieldsV1")["type"],
            "object"
        );
        let meta = schema(OBJECT_META);
        assert_eq!(
            meta["properties"]["creationTimestamp"]["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.Time"
        );
        assert!(meta.get("required").is_none());
        let secret = schema("io.k8s.api.core.v1.Secret");
        assert_eq!(
            secret["properties"]["data"]["additionalProperties"]["format"],
            "byte"
        );
        assert_eq!(secret["properties"]["kind"]["type"], "string");
        let props =
            schema("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.JSONSchemaProps");
        assert!(props["properties"]
            .get("x-kubernetes-preserve-unknown-fields")
            .is_some());
        assert!(props["properties"].get("$ref").is_some());
    }

    #[test]
    fn group_version_document_closes_over_references() {
        let types = crate::registry::Registry::with_builtins().all();
        let doc = group_version_document(&types, "apps", "v1");
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        assert_eq!(
            schemas["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "version": "v1", "kind": "Deployment"}])
        );
        let mut all = Vec::new();
        refs(&doc["components"], &mut all);
        for r in all {
            assert!(schemas.contains_key(&r), "dangling $ref {r}");
        }
        assert!(schemas.contains_key(OBJECT_META));
        assert!(
            doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
                ["parameters"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p["name"] == "fieldValidation"))
        );
    }

    #[test]
    fn description_joins_lines_and_drops_markers() {
        let c = " Number of desired pods.\n Defaults to 1.\n\n Second paragraph.\n +optional\n";
        assert_eq!(
            description(c),
            "Number of desired pods. Defaults to 1.\n\nSecond paragraph."
        );
        assert_eq!(
            markers(" +listType=map\n +listMapKey=a\n +listMapKey=b\n +optional\n"),
            vec![
                ("listType", "map"),
                ("listMapKey", "a"),
                ("listMapKey", "b"),
                ("optional", "")
            ]
        );
        assert_eq!(
            crd_schema_name("argoproj.io", "v1alpha1", "Application"),
            "io.argoproj.v1alpha1.Application"
        );
        assert_eq!(content_hash(b"a"), content_hash(b"a"));
        assert_ne!(content_hash(b"a"), content_hash(b"b"));
    }
}
