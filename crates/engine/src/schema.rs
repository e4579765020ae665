//! Schema validation of rendered objects, as `kubectl apply --validate=strict` would do it,
//! without a cluster.
//!
//! # Built-in kinds
//!
//! The Kubernetes API types come from k8s-openapi (the same types kube-rs uses), so the
//! schema is exactly the API server's for the release k8s-openapi's `latest` feature
//! names. An object is deserialized into its typed struct with `serde_path_to_error`, so a
//! type error names its JSON path (`spec.replicas: invalid type: string "3", expected
//! i32`). k8s-openapi ignores unknown fields and fills missing required ones with their
//! default, so after a successful decode the input is compared with the typed value's
//! serialization (the round trip):
//!
//! - a key present in the input but absent from the round trip is an **unknown field**
//!   (kubectl's strict field validation: `unknown field
//!   "spec.template.spec.containers[0].imagePullPolcy"`), which is almost always a typo
//!   that the API server would silently drop;
//! - a key absent from the input but present in the round trip is a **missing required
//!   field** (k8s-openapi makes exactly the OpenAPI `required` fields non-optional:
//!   a container's `name`, a Deployment's `selector`, a Service port's `port`, …),
//!   except `apiVersion`, `kind` and `metadata` of embedded objects (k8s-openapi types a
//!   StatefulSet's `volumeClaimTemplates` as whole PersistentVolumeClaims).
//!
//! Keys whose input value is `null` are treated as absent, as the API server does.
//! Dispatch is on `apiVersion` + `kind` over the GA groups (see [`builtin`]); alpha and
//! beta versions are not listed (they would be "skipped: no schema"). Only the GA types
//! are compiled in because every listed type monomorphizes its whole deserializer.
//!
//! # Custom resources
//!
//! When a `CustomResourceDefinition` for the object's group and kind is among the checked
//! objects (see [`Crds::from_objects`]), the object is validated against the served
//! version's `openAPIV3Schema`. That is a Kubernetes *structural schema* (OpenAPI v3 with
//! `nullable` and the `x-kubernetes-*` extensions), not JSON Schema: `nullable`,
//! `x-kubernetes-preserve-unknown-fields`, `x-kubernetes-int-or-string` and
//! `x-kubernetes-embedded-resource` change what a value may be, and unknown fields are
//! errors (pruned by the API server, reported by strict validation) rather than allowed.
//! The `jsonschema` crate would need those semantics bolted on and brings a large
//! dependency tree (and remote `$ref` resolution we must not do), so this module has its
//! own validator of the keywords structural schemas allow: `type`, `properties`,
//! `required`, `additionalProperties` (bool or schema), `items`, `enum`, `nullable`,
//! `format` (`int32`, `int64`), `minimum`/`maximum` (with `exclusive…`),
//! `minLength`/`maxLength`, `minItems`/`maxItems`, `minProperties`/`maxProperties`,
//! `pattern` (RE2 syntax, like the API server's Go regexp), `allOf`/`anyOf`/`oneOf`/`not`,
//! and the extensions above. CEL rules (`x-kubernetes-validations`) are not evaluated.
//! `metadata` of a custom resource is validated as a built-in `ObjectMeta`.
//!
//! Gatekeeper constraints are custom resources whose CRD Gatekeeper generates from a
//! `ConstraintTemplate`; a template among the objects stands for that CRD (see
//! `Crds::add_constraint_template`), so a misspelt constraint parameter is caught in CI
//! instead of being silently pruned at admission.
//!
//! # Everything else
//!
//! A kind with neither a built-in type nor a CRD among the objects is
//! [`Outcome::Skipped`]: reported and counted by the caller, never a failure.
//!
//! # Hostile input
//!
//! Validation is linear in the size of the object; recursion stops at
//! [`MAX_DEPTH`] levels and each object reports at most [`MAX_ISSUES`] issues; `pattern`
//! regexes are compiled once per run with a size limit.

use k8s_openapi::api as k8s;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

/// Deepest nesting the validators descend into.
pub const MAX_DEPTH: usize = 64;
/// Most issues reported for one object.
pub const MAX_ISSUES: usize = 50;

/// One schema violation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// JSON path in kubectl's notation (`spec.template.spec.containers[0].image`), empty
    /// for the object itself.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// What validating one object found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Checked against a schema; no issues.
    Valid,
    /// Checked; these issues (at most [`MAX_ISSUES`]).
    Invalid(Vec<Issue>),
    /// No schema known for this apiVersion and kind.
    Skipped { reason: String },
}

/// Errors of the module's own inputs (a CRD that cannot be indexed).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SchemaError {
    #[error("CustomResourceDefinition {name}: {what}")]
    BadCrd { name: String, what: String },
}

/// One served version of a CRD.
#[derive(Debug, Clone)]
struct CrdVersion {
    schema: Option<Value>,
}

/// CRDs known to the run, by (group, kind).
#[derive(Debug, Clone, Default)]
pub struct Crds {
    by_kind: HashMap<(String, String), BTreeMap<String, CrdVersion>>,
}

impl Crds {
    /// Index every `apiextensions.k8s.io/v1` `CustomResourceDefinition` among `objects`.
    /// A CRD missing its group, kind or versions is returned as an error beside the index
    /// (it is also reported by its own built-in schema check).
    pub fn from_objects<'a>(
        objects: impl IntoIterator<Item = &'a Value>,
    ) -> (Crds, Vec<SchemaError>) {
        let mut crds = Crds::default();
        let mut errors = Vec::new();
        for o in objects {
            if let Err(e) = crds.add(o) {
                errors.push(e);
            }
        }
        (crds, errors)
    }

    /// Add one object if it is a v1 CRD or a Gatekeeper `ConstraintTemplate` (anything
    /// else is ignored).
    pub fn add(&mut self, obj: &Value) -> Result<(), SchemaError> {
        if obj["kind"] == "ConstraintTemplate"
            && obj["apiVersion"]
                .as_str()
                .is_some_and(|a| a.starts_with("templates.gatekeeper.sh/"))
        {
            return self.add_constraint_template(obj);
        }
        if obj["apiVersion"] != "apiextensions.k8s.io/v1"
            || obj["kind"] != "CustomResourceDefinition"
        {
            return Ok(());
        }
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        let bad = |what: &str| SchemaError::BadCrd {
            name: name.clone(),
            what: what.to_string(),
        };
        let group = obj["spec"]["group"]
            .as_str()
            .ok_or_else(|| bad("spec.group is missing"))?;
        let kind = obj["spec"]["names"]["kind"]
            .as_str()
            .ok_or_else(|| bad("spec.names.kind is missing"))?;
        let versions = obj["spec"]["versions"]
            .as_array()
            .ok_or_else(|| bad("spec.versions is missing"))?;
        let entry = self
            .by_kind
            .entry((group.to_string(), kind.to_string()))
            .or_default();
        for v in versions {
            let Some(vname) = v["name"].as_str() else {
                return Err(bad("a version has no name"));
            };
            if v["served"] == false {
                continue;
            }
            entry.insert(
                vname.to_string(),
                CrdVersion {
                    schema: v["schema"].get("openAPIV3Schema").cloned(),
                },
            );
        }
        Ok(())
    }

    /// The CRD Gatekeeper generates for a template's constraint kind: group
    /// `constraints.gatekeeper.sh`, versions v1, v1beta1 and v1alpha1, `spec.match` and
    /// `spec.enforcementAction` as Gatekeeper defines them, and `spec.parameters` from the
    /// template's `spec.crd.spec.validation.openAPIV3Schema`. Where Gatekeeper keeps
    /// unknown parameters (`legacySchema: true`, the default of v1beta1 and v1alpha1
    /// templates, or no schema at all) every level preserves unknown fields, so only types
    /// are checked; v1 templates get strict parameters, like the API server's pruning.
    fn add_constraint_template(&mut self, obj: &Value) -> Result<(), SchemaError> {
        let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
        let kind = obj["spec"]["crd"]["spec"]["names"]["kind"]
            .as_str()
            .ok_or_else(|| SchemaError::BadCrd {
                name: format!("of ConstraintTemplate {name}"),
                what: "spec.crd.spec.names.kind is missing".into(),
            })?;
        let validation = &obj["spec"]["crd"]["spec"]["validation"];
        let legacy = validation["legacySchema"]
            .as_bool()
            .unwrap_or(obj["apiVersion"] != "templates.gatekeeper.sh/v1");
        let mut params = validation
            .get("openAPIV3Schema")
            .filter(|p| p.is_object())
            .cloned()
            .unwrap_or_else(|| serde_json::json!({"x-kubernetes-preserve-unknown-fields": true}));
        if legacy {
            preserve_everywhere(&mut params, 0);
        }
        let schema = serde_json::json!({
            "type": "object",
            "properties": {
                "spec": {
                    "type": "object",
                    "properties": {
                        "match": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                        "enforcementAction": {"type": "string"},
                        "scopedEnforcementActions": {
                            "type": "array",
                            "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                        },
                        "parameters": params,
                    }
                },
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            }
        });
        let entry = self
            .by_kind
            .entry(("constraints.gatekeeper.sh".to_string(), kind.to_string()))
            .or_default();
        for v in ["v1", "v1beta1", "v1alpha1"] {
            entry.insert(
                v.to_string(),
                CrdVersion {
                    schema: Some(schema.clone()),
                },
            );
        }
        Ok(())
    }

    /// Whether a CRD for `group`/`kind` is known.
    pub fn has(&self, group: &str, kind: &str) -> bool {
        self.by_kind
            .contains_key(&(group.to_string(), kind.to_string()))
    }
}

/// Validate one object: built-in type first, then a CRD from `crds`, else skipped.
pub fn validate(obj: &Value, crds: &Crds) -> Outcome {
    let api_version = obj["apiVersion"].as_str().unwrap_or("");
    let kind = obj["kind"].as_str().unwrap_or("");
    if api_version.is_empty() || kind.is_empty() {
        return Outcome::Invalid(vec![Issue {
            path: String::new(),
            message: "apiVersion and kind are required".into(),
        }]);
    }
    if let Some(issues) = builtin(api_version, kind, obj) {
        return outcome(issues);
    }
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let Some(versions) = crds.by_kind.get(&(group.to_string(), kind.to_string())) else {
        return Outcome::Skipped {
            reason: format!("no schema for {api_version} {kind} (neither a built-in kind nor a CRD in the repository)"),
        };
    };
    let Some(v) = versions.get(version) else {
        let served: Vec<&str> = versions.keys().map(String::as_str).collect();
        return Outcome::Invalid(vec![Issue {
            path: "apiVersion".into(),
            message: format!(
                "version {version} of {group}/{kind} is not served by its CustomResourceDefinition (served: {})",
                served.join(", ")
            ),
        }]);
    };
    let Some(schema) = &v.schema else {
        return Outcome::Skipped {
            reason: format!(
                "the CustomResourceDefinition of {api_version} {kind} has no openAPIV3Schema"
            ),
        };
    };
    let mut issues = Vec::new();
    if let Some(meta) = obj.get("metadata").filter(|m| !m.is_null()) {
        issues.extend(
            typed::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>(meta)
                .into_iter()
                .map(|i| Issue {
                    path: join("metadata", &i.path),
                    message: i.message,
                }),
        );
    }
    let v = Structural::default();
    let mut path = String::new();
    v.root(schema, obj, &mut path, &mut issues);
    outcome(issues)
}

/// Validate a value against an OpenAPI v3 (structural) schema, reporting paths under
/// `path`. With `unknown_fields: false`, fields the schema does not name are accepted (the
/// API server prunes them), so only types, enums, required fields and formats are checked.
pub fn validate_value(
    value: &Value,
    schema: &Value,
    path: &str,
    unknown_fields: bool,
) -> Vec<Issue> {
    let mut schema = schema.clone();
    if !unknown_fields {
        preserve_everywhere(&mut schema, 0);
    }
    let mut issues = Vec::new();
    let mut path = path.to_string();
    Structural::default().check(&schema, value, &mut path, 0, &mut issues);
    issues
}

/// Mark every object level of `schema` `x-kubernetes-preserve-unknown-fields`.
fn preserve_everywhere(schema: &mut Value, depth: usize) {
    if depth > MAX_DEPTH {
        return;
    }
    let Some(o) = schema.as_object_mut() else {
        return;
    };
    o.insert(
        "x-kubernetes-preserve-unknown-fields".into(),
        Value::Bool(true),
    );
    for key in ["properties", "patternProperties"] {
        if let Some(props) = o.get_mut(key).and_then(Value::as_object_mut) {
            for p in props.values_mut() {
                preserve_everywhere(p, depth + 1);
            }
        }
    }
    for key in ["items", "additionalProperties"] {
        if let Some(sub) = o.get_mut(key) {
            preserve_everywhere(sub, depth + 1);
        }
    }
}

fn join(prefix: &str, path: &str) -> String {
    if path.is_empty() {
        prefix.to_string()
    } else if path.starts_with('[') {
        format!("{prefix}{path}")
    } else {
        format!("{prefix}.{path}")
    }
}

fn outcome(mut issues: Vec<Issue>) -> Outcome {
    if issues.is_empty() {
        Outcome::Valid
    } else {
        issues.truncate(MAX_ISSUES);
        Outcome::Invalid(issues)
    }
}

macro_rules! builtin_kinds {
    ($av:expr, $kind:expr, $obj:expr; $($api:literal $k:literal => $ty:ty,)*) => {
        match ($av, $kind) {
            $( ($api, $k) => Some(typed::<$ty>($obj)), )*
            _ => None,
        }
    };
}

/// Validate against a built-in type; `None` when `api_version`/`kind` is not built in.
pub fn builtin(api_version: &str, kind: &str, obj: &Value) -> Option<Vec<Issue>> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
    use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1 as apireg;
    builtin_kinds!(api_version, kind, obj;
        "v1" "ConfigMap" => k8s::core::v1::ConfigMap,
        "v1" "Endpoints" => k8s::core::v1::Endpoints,
        "v1" "LimitRange" => k8s::core::v1::LimitRange,
        "v1" "Namespace" => k8s::core::v1::Namespace,
        "v1" "PersistentVolume" => k8s::core::v1::PersistentVolume,
        "v1" "PersistentVolumeClaim" => k8s::core::v1::PersistentVolumeClaim,
        "v1" "Pod" => k8s::core::v1::Pod,
        "v1" "PodTemplate" => k8s::core::v1::PodTemplate,
        "v1" "ReplicationController" => k8s::core::v1::ReplicationController,
        "v1" "ResourceQuota" => k8s::core::v1::ResourceQuota,
        "v1" "Secret" => k8s::core::v1::Secret,
        "v1" "Service" => k8s::core::v1::Service,
        "v1" "ServiceAccount" => k8s::core::v1::ServiceAccount,
        "apps/v1" "ControllerRevision" => k8s::apps::v1::ControllerRevision,
        "apps/v1" "DaemonSet" => k8s::apps::v1::DaemonSet,
        "apps/v1" "Deployment" => k8s::apps::v1::Deployment,
        "apps/v1" "ReplicaSet" => k8s::apps::v1::ReplicaSet,
        "apps/v1" "StatefulSet" => k8s::apps::v1::StatefulSet,
        "batch/v1" "CronJob" => k8s::batch::v1::CronJob,
        "batch/v1" "Job" => k8s::batch::v1::Job,
        "autoscaling/v1" "HorizontalPodAutoscaler" => k8s::autoscaling::v1::HorizontalPodAutoscaler,
        "autoscaling/v2" "HorizontalPodAutoscaler" => k8s::autoscaling::v2::HorizontalPodAutoscaler,
        "networking.k8s.io/v1" "Ingress" => k8s::networking::v1::Ingress,
        "networking.k8s.io/v1" "IngressClass" => k8s::networking::v1::IngressClass,
        "networking.k8s.io/v1" "NetworkPolicy" => k8s::networking::v1::NetworkPolicy,
        "policy/v1" "PodDisruptionBudget" => k8s::policy::v1::PodDisruptionBudget,
        "rbac.authorization.k8s.io/v1" "ClusterRole" => k8s::rbac::v1::ClusterRole,
        "rbac.authorization.k8s.io/v1" "ClusterRoleBinding" => k8s::rbac::v1::ClusterRoleBinding,
        "rbac.authorization.k8s.io/v1" "Role" => k8s::rbac::v1::Role,
        "rbac.authorization.k8s.io/v1" "RoleBinding" => k8s::rbac::v1::RoleBinding,
        "storage.k8s.io/v1" "CSIDriver" => k8s::storage::v1::CSIDriver,
        "storage.k8s.io/v1" "StorageClass" => k8s::storage::v1::StorageClass,
        "storage.k8s.io/v1" "VolumeAttachment" => k8s::storage::v1::VolumeAttachment,
        "storage.k8s.io/v1" "VolumeAttributesClass" => k8s::storage::v1::VolumeAttributesClass,
        "scheduling.k8s.io/v1" "PriorityClass" => k8s::scheduling::v1::PriorityClass,
        "coordination.k8s.io/v1" "Lease" => k8s::coordination::v1::Lease,
        "discovery.k8s.io/v1" "EndpointSlice" => k8s::discovery::v1::EndpointSlice,
        "node.k8s.io/v1" "RuntimeClass" => k8s::node::v1::RuntimeClass,
        "certificates.k8s.io/v1" "CertificateSigningRequest" => k8s::certificates::v1::CertificateSigningRequest,
        "flowcontrol.apiserver.k8s.io/v1" "FlowSchema" => k8s::flowcontrol::v1::FlowSchema,
        "flowcontrol.apiserver.k8s.io/v1" "PriorityLevelConfiguration" => k8s::flowcontrol::v1::PriorityLevelConfiguration,
        "admissionregistration.k8s.io/v1" "MutatingWebhookConfiguration" => k8s::admissionregistration::v1::MutatingWebhookConfiguration,
        "admissionregistration.k8s.io/v1" "ValidatingWebhookConfiguration" => k8s::admissionregistration::v1::ValidatingWebhookConfiguration,
        "admissionregistration.k8s.io/v1" "ValidatingAdmissionPolicy" => k8s::admissionregistration::v1::ValidatingAdmissionPolicy,
        "admissionregistration.k8s.io/v1" "ValidatingAdmissionPolicyBinding" => k8s::admissionregistration::v1::ValidatingAdmissionPolicyBinding,
        "resource.k8s.io/v1" "DeviceClass" => k8s::resource::v1::DeviceClass,
        "resource.k8s.io/v1" "ResourceClaim" => k8s::resource::v1::ResourceClaim,
        "resource.k8s.io/v1" "ResourceClaimTemplate" => k8s::resource::v1::ResourceClaimTemplate,
        "apiextensions.k8s.io/v1" "CustomResourceDefinition" => apiext::CustomResourceDefinition,
        "apiregistration.k8s.io/v1" "APIService" => apireg::APIService,
    )
}

/// Decode `obj` as `T` and compare the round trip (see the module docs).
fn typed<T: DeserializeOwned + Serialize>(obj: &Value) -> Vec<Issue> {
    match serde_path_to_error::deserialize::<_, T>(obj.clone()) {
        Err(e) => {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            vec![Issue {
                path,
                message: e.into_inner().to_string(),
            }]
        }
        Ok(t) => match serde_json::to_value(&t) {
            Ok(back) => {
                let mut issues = Vec::new();
                let mut path = String::new();
                compare(obj, &back, &mut path, 0, &mut issues);
                issues
            }
            Err(e) => vec![Issue {
                path: String::new(),
                message: format!("cannot re-encode the object: {e}"),
            }],
        },
    }
}

fn push_key(path: &mut String, key: &str) -> usize {
    let len = path.len();
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(key);
    len
}

fn push_index(path: &mut String, i: usize) -> usize {
    let len = path.len();
    path.push('[');
    path.push_str(&i.to_string());
    path.push(']');
    len
}

fn compare(input: &Value, back: &Value, path: &mut String, depth: usize, out: &mut Vec<Issue>) {
    if depth > MAX_DEPTH || out.len() >= MAX_ISSUES {
        return;
    }
    match (input, back) {
        (Value::Object(i), Value::Object(b)) => {
            for (k, v) in i {
                if v.is_null() {
                    continue;
                }
                let len = push_key(path, k);
                match b.get(k) {
                    None => out.push(Issue {
                        path: path.clone(),
                        message: "unknown field".into(),
                    }),
                    Some(bv) => compare(v, bv, path, depth + 1, out),
                }
                path.truncate(len);
            }
            for (k, bv) in b {
                if bv.is_null() || i.get(k).is_some_and(|v| !v.is_null()) {
                    continue;
                }
                // Embedded objects (a StatefulSet's volumeClaimTemplates) are typed as
                // whole resources, whose apiVersion, kind and metadata the API server
                // does not require there.
                if depth > 0 && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let len = push_key(path, k);
                out.push(Issue {
                    path: path.clone(),
                    message: "missing required field".into(),
                });
                path.truncate(len);
            }
        }
        (Value::Array(i), Value::Array(b)) => {
            for (n, (iv, bv)) in i.iter().zip(b).enumerate() {
                let len = push_index(path, n);
                compare(iv, bv, path, depth + 1, out);
                path.truncate(len);
                if out.len() >= MAX_ISSUES {
                    return;
                }
            }
        }
        _ => {}
    }
}

/// The structural-schema validator (see the module docs), with a per-run regex cache.
#[derive(Default)]
struct Structural {
    patterns: RefCell<HashMap<String, Option<regex::Regex>>>,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl Structural {
    /// The root of a custom resource: `apiVersion`, `kind` and `metadata` are implicit.
    fn root(&self, schema: &Value, obj: &Value, path: &mut String, out: &mut Vec<Issue>) {
        let mut schema = schema.clone();
        if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
            for k in ["apiVersion", "kind"] {
                props
                    .entry(k)
                    .or_insert_with(|| serde_json::json!({"type": "string"}));
            }
            props.insert(
                "metadata".into(),
                serde_json::json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
            );
        } else if schema.is_object() {
            // A root schema without properties: anything goes (preserve-unknown or not).
            return;
        }
        self.check(&schema, obj, path, 0, out);
    }

    fn fail(&self, path: &str, message: String, out: &mut Vec<Issue>) {
        if out.len() < MAX_ISSUES {
            out.push(Issue {
                path: path.to_string(),
                message,
            });
        }
    }

    fn check(&self, s: &Value, v: &Value, path: &mut String, depth: usize, out: &mut Vec<Issue>) {
        if out.len() >= MAX_ISSUES {
            return;
        }
        if depth > MAX_DEPTH {
            self.fail(path, format!("nested deeper than {MAX_DEPTH} levels"), out);
            return;
        }
        let Some(s) = s.as_object() else { return };
        if v.is_null() {
            // The API server drops nulls of non-nullable fields; a required one is then
            // reported missing by the parent.
            return;
        }
        let flag = |k: &str| s.get(k).and_then(Value::as_bool).unwrap_or(false);
        let int_or_string = flag("x-kubernetes-int-or-string");
        if int_or_string {
            if !matches!(type_name(v), "integer" | "string") {
                self.fail(
                    path,
                    format!("must be an integer or a string, got {}", type_name(v)),
                    out,
                );
                return;
            }
        } else if let Some(t) = s.get("type").and_then(Value::as_str) {
            let actual = type_name(v);
            let ok = actual == t || (t == "number" && actual == "integer");
            if !ok {
                self.fail(path, format!("must be of type {t}, got {actual}"), out);
                return;
            }
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array) {
            if !e.contains(v) {
                let allowed: Vec<String> = e.iter().take(20).map(Value::to_string).collect();
                self.fail(
                    path,
                    format!(
                        "unsupported value {v}: must be one of {}",
                        allowed.join(", ")
                    ),
                    out,
                );
            }
        }
        match v {
            Value::Number(n) => self.number(s, n, path, out),
            Value::String(st) => self.string(s, st, path, out),
            Value::Array(items) => {
                let n = items.len() as u64;
                if let Some(min) = s.get("minItems").and_then(Value::as_u64).filter(|m| n < *m) {
                    self.fail(
                        path,
                        format!("must have at least {min} items, has {n}"),
                        out,
                    );
                }
                if let Some(max) = s.get("maxItems").and_then(Value::as_u64).filter(|m| n > *m) {
                    self.fail(path, format!("must have at most {max} items, has {n}"), out);
                }
                if let Some(item) = s.get("items") {
                    for (i, iv) in items.iter().enumerate() {
                        let len = push_index(path, i);
                        self.check(item, iv, path, depth + 1, out);
                        path.truncate(len);
                        if out.len() >= MAX_ISSUES {
                            break;
                        }
                    }
                }
            }
            Value::Object(map) => self.object(s, map, path, depth, out),
            Value::Bool(_) | Value::Null => {}
        }
        for sub in s
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            self.check_value_only(sub, v, path, depth, out);
        }
        if let Some(any) = s.get("anyOf").and_then(Value::as_array) {
            if !any.is_empty() && !any.iter().any(|sub| self.passes(sub, v, depth)) {
                self.fail(path, "must match at least one schema in anyOf".into(), out);
            }
        }
        if let Some(one) = s.get("oneOf").and_then(Value::as_array) {
            let n = one.iter().filter(|sub| self.passes(sub, v, depth)).count();
            if !one.is_empty() && n != 1 {
                self.fail(
                    path,
                    format!("must match exactly one schema in oneOf, matches {n}"),
                    out,
                );
            }
        }
        if let Some(not) = s.get("not") {
            if self.passes(not, v, depth) {
                self.fail(path, "must not match the schema in not".into(), out);
            }
        }
    }

    /// allOf/anyOf/oneOf/not branches of a structural schema only constrain values; they
    /// never declare fields, so unknown-field checks are not repeated there.
    fn check_value_only(
        &self,
        s: &Value,
        v: &Value,
        path: &mut String,
        depth: usize,
        out: &mut Vec<Issue>,
    ) {
        let mut s = s.clone();
        if let Some(o) = s.as_object_mut() {
            o.insert(
                "x-kubernetes-preserve-unknown-fields".into(),
                Value::Bool(true),
            );
        }
        self.check(&s, v, path, depth + 1, out);
    }

    fn passes(&self, s: &Value, v: &Value, depth: usize) -> bool {
        let mut scratch = Vec::new();
        let mut p = String::new();
        self.check_value_only(s, v, &mut p, depth, &mut scratch);
        scratch.is_empty()
    }

    fn number(
        &self,
        s: &serde_json::Map<String, Value>,
        n: &serde_json::Number,
        path: &str,
        out: &mut Vec<Issue>,
    ) {
        let Some(x) = n.as_f64() else { return };
        match s.get("format").and_then(Value::as_str) {
            Some("int32") if n.as_i64().is_none_or(|i| i32::try_from(i).is_err()) => {
                self.fail(path, format!("{n} is out of range for int32"), out);
            }
            Some("int64") if n.as_i64().is_none() && n.as_u64().is_none() => {
                self.fail(path, format!("{n} is not an int64"), out);
            }
            _ => {}
        }
        if let Some(min) = s.get("minimum").and_then(Value::as_f64) {
            let excl = s
                .get("exclusiveMinimum")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if x < min || (excl && x == min) {
                let op = if excl { ">" } else { ">=" };
                self.fail(path, format!("must be {op} {min}, got {n}"), out);
            }
        }
        if let Some(max) = s.get("maximum").and_then(Value::as_f64) {
            let excl = s
                .get("exclusiveMaximum")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if x > max || (excl && x == max) {
                let op = if excl { "<" } else { "<=" };
                self.fail(path, format!("must be {op} {max}, got {n}"), out);
            }
        }
    }

    fn string(
        &self,
        s: &serde_json::Map<String, Value>,
        st: &str,
        path: &str,
        out: &mut Vec<Issue>,
    ) {
        let len = st.chars().count() as u64;
        if let Some(min) = s
            .get("minLength")
            .and_then(Value::as_u64)
            .filter(|m| len < *m)
        {
            self.fail(path, format!("must be at least {min} characters long"), out);
        }
        if let Some(max) = s
            .get("maxLength")
            .and_then(Value::as_u64)
            .filter(|m| len > *m)
        {
            self.fail(
                path,
                format!("must be at most {max} characters long, is {len}"),
                out,
            );
        }
        if let Some(p) = s.get("pattern").and_then(Value::as_str) {
            let mut cache = self.patterns.borrow_mut();
            let re = cache
                .entry(p.to_string())
                .or_insert_with(|| regex::RegexBuilder::new(p).size_limit(1 << 20).build().ok());
            if let Some(re) = re {
                if !re.is_match(st) {
                    self.fail(path, format!("must match the pattern {p:?}"), out);
                }
            }
        }
    }

    fn object(
        &self,
        s: &serde_json::Map<String, Value>,
        map: &serde_json::Map<String, Value>,
        path: &mut String,
        depth: usize,
        out: &mut Vec<Issue>,
    ) {
        let flag = |k: &str| s.get(k).and_then(Value::as_bool).unwrap_or(false);
        if flag("x-kubernetes-embedded-resource") {
            for k in ["apiVersion", "kind"] {
                if map.get(k).and_then(Value::as_str).is_none_or(str::is_empty) {
                    let len = push_key(path, k);
                    self.fail(
                        path,
                        "missing required field (embedded resource)".into(),
                        out,
                    );
                    path.truncate(len);
                }
            }
        }
        let n = map.len() as u64;
        if let Some(min) = s
            .get("minProperties")
            .and_then(Value::as_u64)
            .filter(|m| n < *m)
        {
            self.fail(path, format!("must have at least {min} properties"), out);
        }
        if let Some(max) = s
            .get("maxProperties")
            .and_then(Value::as_u64)
            .filter(|m| n > *m)
        {
            self.fail(path, format!("must have at most {max} properties"), out);
        }
        for r in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(r) = r.as_str() {
                if map.get(r).is_none_or(Value::is_null) {
                    let len = push_key(path, r);
                    self.fail(path, "missing required field".into(), out);
                    path.truncate(len);
                }
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        let additional = s.get("additionalProperties");
        let embedded = flag("x-kubernetes-embedded-resource");
        let preserve = flag("x-kubernetes-preserve-unknown-fields");
        for (k, v) in map {
            let len = push_key(path, k);
            if let Some(ps) = props.and_then(|p| p.get(k)) {
                self.check(ps, v, path, depth + 1, out);
            } else if let Some(a) = additional.filter(|a| a.is_object()) {
                self.check(a, v, path, depth + 1, out);
            } else if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                // Implicit fields of an embedded resource.
            } else {
                let allowed = v.is_null()
                    || preserve
                    || additional == Some(&Value::Bool(true))
                    || (props.is_none() && additional.is_none() && !s.contains_key("type"));
                if !allowed {
                    self.fail(path, "unknown field".into(), out);
                }
            }
            path.truncate(len);
            if out.len() >= MAX_ISSUES {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests;
