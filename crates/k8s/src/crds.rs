//! CustomResourceDefinitions generated from Mooring's Rust types (`mooring crds`).
//!
//! The schema comes from the same `mooring_core` types the controller deserialises, via
//! schemars with kube-rs's structural-schema transforms (the ones `#[derive(CustomResource)]`
//! uses), so the CRD and the code cannot drift apart. Open-ended fields (`helm`, `info`,
//! `operation`, `operationState`) are kept with `x-kubernetes-preserve-unknown-fields`.
//! Like Argo CD's, the Application CRD has no status subresource: the controller writes
//! `status` and `operation` on the main resource.

use kube::core::schema::{OptionalEnum, OptionalIntOrString, StructuralSchemaRewriter};
use mooring_core::app::{ApplicationSpec, ApplicationStatus};
use mooring_core::appset::{ApplicationSetSpec, ApplicationSetStatus};
use mooring_core::project::AppProjectSpec;
use schemars::generate::SchemaSettings;
use serde_json::{json, Map, Value};

fn schema_of<T: schemars::JsonSchema>() -> Value {
    let generator = SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .with_transform(OptionalEnum)
        .with_transform(OptionalIntOrString)
        .with_transform(StructuralSchemaRewriter)
        .into_generator();
    let mut v = serde_json::to_value(generator.into_root_schema_for::<T>()).unwrap_or(Value::Null);
    structural(&mut v);
    if let Some(o) = v.as_object_mut() {
        o.remove("title");
        o.remove("$schema");
    }
    v
}

/// Make every untyped schema node (serde_json::Value fields) preserve unknown fields, and
/// drop keywords Kubernetes' structural schemas reject. Only schema positions are visited
/// (`properties` values, `items`, `additionalProperties`, `anyOf`/`oneOf`/`allOf`), so a
/// keyword's own value (`nullable: true`) or a property map is never taken for a schema.
fn structural(v: &mut Value) {
    if let Value::Bool(true) = v {
        *v = json!({"x-kubernetes-preserve-unknown-fields": true});
        return;
    }
    let Value::Object(o) = v else {
        return;
    };
    for k in ["$schema", "title", "examples", "format"] {
        if k == "format"
            && o.get("format")
                .and_then(Value::as_str)
                .is_some_and(|f| f.starts_with("int") || f == "double")
        {
            continue;
        }
        o.remove(k);
    }
    let untyped = !o.contains_key("type")
        && !o.contains_key("properties")
        && !o.contains_key("items")
        && !o.contains_key("anyOf")
        && !o.contains_key("oneOf")
        && !o.contains_key("allOf")
        && !o.contains_key("x-kubernetes-preserve-unknown-fields")
        && !o.contains_key("enum");
    if untyped {
        o.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
    }
    // A `None` field of a Rust default serialises as null: in a CRD default that is a
    // value of the wrong type (Kubernetes refuses it, and client-side apply drops it, so
    // a later server-side apply of the same CRD conflicts). Absent means the same.
    if o.get("default").is_some_and(Value::is_null) {
        o.remove("default");
    }
    if let Some(d) = o.get_mut("default") {
        drop_nulls(d);
    }
    for (key, child) in o.iter_mut() {
        match (key.as_str(), child) {
            ("properties" | "patternProperties" | "definitions" | "$defs", Value::Object(m)) => {
                m.values_mut().for_each(structural)
            }
            ("items" | "additionalProperties" | "not", c @ (Value::Object(_) | Value::Bool(_))) => {
                structural(c)
            }
            ("items" | "anyOf" | "oneOf" | "allOf", Value::Array(a)) => {
                a.iter_mut().for_each(structural)
            }
            _ => {}
        }
    }
}

/// Remove null members of objects, recursively.
fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

fn crd(
    group: &str,
    kind: &str,
    plural: &str,
    short: &[&str],
    properties: Map<String, Value>,
    columns: Value,
) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.{group}"), "labels": {"app.kubernetes.io/part-of": "mooring"}},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"kind": kind, "listKind": format!("{kind}List"), "plural": plural,
                      "singular": kind.to_lowercase(), "shortNames": short},
            "versions": [{
                "name": "v1alpha1", "served": true, "storage": true,
                "additionalPrinterColumns": columns,
                "schema": {"openAPIV3Schema": {
                    "type": "object",
                    "required": ["metadata", "spec"],
                    "properties": properties,
                }},
            }],
        },
    })
}

/// The Argo CD-compatible `Application` CRD. Every object of the spec keeps the fields
/// Mooring does not model (`directory.jsonnet`, `sourceHydrator`, fields of newer Argo CD
/// versions): an API server would otherwise prune them before the controller reads them,
/// and the controller names each one in its `UnsupportedFieldWarning` condition instead
/// of never seeing it (see `mooring_engine::unsupported`). The status keeps them too: it
/// is Argo CD's status (`health.lastTransitionTime`, `operationState` details …) when an
/// Application comes from an Argo CD installation or backup, and Argo CD's own CRD
/// declares those fields, so a drop-in must not prune them.
pub fn application_crd() -> Value {
    let mut props = Map::new();
    props.insert("apiVersion".into(), json!({"type": "string"}));
    props.insert("kind".into(), json!({"type": "string"}));
    props.insert("metadata".into(), json!({"type": "object"}));
    let mut spec = schema_of::<ApplicationSpec>();
    preserve_unknown_objects(&mut spec);
    props.insert("spec".into(), spec);
    let mut status = schema_of::<ApplicationStatus>();
    preserve_unknown_objects(&mut status);
    props.insert("status".into(), status);
    props.insert(
        "operation".into(),
        json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
    );
    crd(
        "argoproj.io",
        "Application",
        "applications",
        &["app", "apps"],
        props,
        json!([
            {"name": "Sync Status", "type": "string", "jsonPath": ".status.sync.status"},
            {"name": "Health Status", "type": "string", "jsonPath": ".status.health.status"},
            {"name": "Revision", "type": "string", "jsonPath": ".status.sync.revision", "priority": 10},
        ]),
    )
}

/// The Argo CD-compatible `ApplicationSet` CRD. `spec.generators` and
/// `spec.template.spec` are open (see `mooring_core::appset`), and every object of the
/// spec keeps fields Mooring does not model, as for Application (its status as well); like
/// Application, no status subresource: the controller merge-patches `status` on the main
/// resource.
pub fn applicationset_crd() -> Value {
    let mut props = Map::new();
    props.insert("apiVersion".into(), json!({"type": "string"}));
    props.insert("kind".into(), json!({"type": "string"}));
    props.insert("metadata".into(), json!({"type": "object"}));
    let mut spec = schema_of::<ApplicationSetSpec>();
    preserve_unknown_objects(&mut spec);
    props.insert("spec".into(), spec);
    let mut status = schema_of::<ApplicationSetStatus>();
    preserve_unknown_objects(&mut status);
    props.insert("status".into(), status);
    crd(
        "argoproj.io",
        "ApplicationSet",
        "applicationsets",
        &["appset", "appsets"],
        props,
        json!([
            {"name": "Status", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"ResourcesUpToDate\")].status"},
        ]),
    )
}

fn preserve_unknown_objects(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if o.get("type").and_then(Value::as_str) == Some("object") {
                o.insert("x-kubernetes-preserve-unknown-fields".into(), json!(true));
            }
            o.values_mut().for_each(preserve_unknown_objects);
        }
        Value::Array(a) => a.iter_mut().for_each(preserve_unknown_objects),
        _ => {}
    }
}

/// Every CRD Mooring serves, in install order.
pub fn all() -> Vec<Value> {
    vec![
        application_crd(),
        applicationset_crd(),
        app_project_crd(),
        constraint_template_crd(),
        rollback_policy_crd(),
        disaster_recovery_plan_crd(),
    ]
    .into_iter()
    .chain(argo_rollouts_crds())
    .collect()
}

/// Mooring's `DisasterRecoveryPlan` (`mooring.dev/v1alpha1`, see `mooring_core::dr`),
/// with a status subresource like `RollbackPolicy`'s.
pub fn disaster_recovery_plan_crd() -> Value {
    use mooring_core::dr::{
        DisasterRecoveryPlanSpec, DisasterRecoveryPlanStatus, GROUP, KIND, PLURAL,
    };
    let mut props = Map::new();
    props.insert("apiVersion".into(), json!({"type": "string"}));
    props.insert("kind".into(), json!({"type": "string"}));
    props.insert("metadata".into(), json!({"type": "object"}));
    props.insert("spec".into(), schema_of::<DisasterRecoveryPlanSpec>());
    props.insert("status".into(), schema_of::<DisasterRecoveryPlanStatus>());
    let mut c = crd(
        GROUP,
        KIND,
        PLURAL,
        &["drplan"],
        props,
        json!([
            {"name": "Primary", "type": "string", "jsonPath": ".spec.primary.cluster"},
            {"name": "Standby", "type": "string", "jsonPath": ".spec.standby.cluster"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Last-RTO", "type": "number", "jsonPath": ".status.lastFailover.rtoSeconds"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ]),
    );
    if let Some(v) = c.pointer_mut("/spec/versions/0") {
        v["subresources"] = json!({"status": {}});
    }
    c
}

/// One open (`x-kubernetes-preserve-unknown-fields`) CRD of a third-party API: Mooring
/// accepts those objects as their owners write them and lets the code that acts on them
/// validate what it reads.
struct OpenCrd<'a> {
    group: &'a str,
    versions: &'a [&'a str],
    kind: &'a str,
    plural: &'a str,
    short: &'a [&'a str],
    namespaced: bool,
    subresources: Value,
    columns: Value,
}

fn open_crd(c: OpenCrd<'_>) -> Value {
    let versions: Vec<Value> = c
        .versions
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mut version = json!({
                "name": v, "served": true, "storage": i == 0,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            });
            if c.subresources.as_object().is_some_and(|s| !s.is_empty()) {
                version["subresources"] = c.subresources.clone();
            }
            if c.columns.as_array().is_some_and(|a| !a.is_empty()) {
                version["additionalPrinterColumns"] = c.columns.clone();
            }
            version
        })
        .collect();
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{}.{}", c.plural, c.group)},
        "spec": {
            "group": c.group,
            "scope": if c.namespaced { "Namespaced" } else { "Cluster" },
            "names": {"kind": c.kind, "listKind": format!("{}List", c.kind), "plural": c.plural,
                      "singular": c.kind.to_lowercase(), "shortNames": c.short},
            "versions": versions,
        },
    })
}

/// Argo Rollouts' CRDs (`argoproj.io/v1alpha1` `Rollout`, `AnalysisTemplate`,
/// `ClusterAnalysisTemplate`, `AnalysisRun`), so Argo Rollouts manifests apply unchanged.
/// Argo's own schemas run to thousands of lines; these accept any object (the rollout and
/// analysis controllers validate what they read) but keep Argo's names, scopes, the
/// `status` subresource the controllers and `mooring rollout promote|abort` write through,
/// the Rollout `scale` subresource (`kubectl scale rollout`, HPAs) and Argo's printer
/// columns.
pub fn argo_rollouts_crds() -> Vec<Value> {
    let status = json!({"status": {}});
    vec![
        open_crd(OpenCrd {
            group: "argoproj.io",
            versions: &["v1alpha1"],
            kind: "Rollout",
            plural: "rollouts",
            short: &["ro"],
            namespaced: true,
            subresources: json!({
                "status": {},
                "scale": {"specReplicasPath": ".spec.replicas",
                          "statusReplicasPath": ".status.replicas",
                          "labelSelectorPath": ".status.selector"},
            }),
            columns: json!([
                {"name": "Desired", "type": "integer", "jsonPath": ".spec.replicas", "description": "Number of desired pods"},
                {"name": "Current", "type": "integer", "jsonPath": ".status.replicas", "description": "Total number of non-terminated pods targeted by this rollout"},
                {"name": "Up-to-date", "type": "integer", "jsonPath": ".status.updatedReplicas", "description": "Total number of non-terminated pods targeted by this rollout that have the desired template spec"},
                {"name": "Available", "type": "integer", "jsonPath": ".status.availableReplicas", "description": "Total number of available pods (ready for at least minReadySeconds) targeted by this rollout"},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            ]),
        }),
        open_crd(OpenCrd {
            group: "argoproj.io",
            versions: &["v1alpha1"],
            kind: "AnalysisTemplate",
            plural: "analysistemplates",
            short: &["at"],
            namespaced: true,
            subresources: json!({}),
            columns: json!([
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            ]),
        }),
        open_crd(OpenCrd {
            group: "argoproj.io",
            versions: &["v1alpha1"],
            kind: "ClusterAnalysisTemplate",
            plural: "clusteranalysistemplates",
            short: &["cat"],
            namespaced: false,
            subresources: json!({}),
            columns: json!([
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            ]),
        }),
        open_crd(OpenCrd {
            group: "argoproj.io",
            versions: &["v1alpha1"],
            kind: "AnalysisRun",
            plural: "analysisruns",
            short: &["ar"],
            namespaced: true,
            subresources: status,
            columns: json!([
                {"name": "Status", "type": "string", "jsonPath": ".status.phase", "description": "AnalysisRun status"},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            ]),
        }),
    ]
}

/// Minimal CRDs for the traffic routers the rollout controller edits: Istio
/// `VirtualService` and `DestinationRule` (`networking.istio.io` v1 and v1beta1) and
/// Gateway API `HTTPRoute` (`gateway.networking.k8s.io/v1`). Not in [`all`]: a cluster
/// gets them from Istio or the Gateway API install; tests and demos install these.
pub fn traffic_crds() -> Vec<Value> {
    let istio = |kind: &'static str, plural: &'static str, short: &'static [&'static str]| {
        open_crd(OpenCrd {
            group: "networking.istio.io",
            versions: &["v1", "v1beta1"],
            kind,
            plural,
            short,
            namespaced: true,
            subresources: json!({"status": {}}),
            columns: json!([]),
        })
    };
    vec![
        istio("VirtualService", "virtualservices", &["vs"]),
        istio("DestinationRule", "destinationrules", &["dr"]),
        open_crd(OpenCrd {
            group: "gateway.networking.k8s.io",
            versions: &["v1", "v1beta1"],
            kind: "HTTPRoute",
            plural: "httproutes",
            short: &[],
            namespaced: true,
            subresources: json!({"status": {}}),
            columns: json!([
                {"name": "Hostnames", "type": "string", "jsonPath": ".spec.hostnames"},
            ]),
        }),
    ]
}

/// The Argo CD-compatible `AppProject` CRD (spec from [`AppProjectSpec`]; fields Mooring
/// does not interpret are preserved).
pub fn app_project_crd() -> Value {
    let mut props = Map::new();
    props.insert("apiVersion".into(), json!({"type": "string"}));
    props.insert("kind".into(), json!({"type": "string"}));
    props.insert("metadata".into(), json!({"type": "object"}));
    // Argo CD adds project fields over time (signatureKeys, destinationServiceAccounts,
    // …): every object of the spec keeps what Mooring does not model, so a project applied
    // to a real cluster loses nothing.
    let mut spec = schema_of::<AppProjectSpec>();
    preserve_unknown_objects(&mut spec);
    props.insert("spec".into(), spec);
    props.insert(
        "status".into(),
        json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
    );
    let mut crd = crd(
        "argoproj.io",
        "AppProject",
        "appprojects",
        &["appproj", "appprojs"],
        props,
        json!([
            {"name": "Description", "type": "string", "jsonPath": ".spec.description"},
        ]),
    );
    // A project without a spec is valid (Argo CD's `default` may be created so).
    if let Some(req) = crd.pointer_mut("/spec/versions/0/schema/openAPIV3Schema/required") {
        *req = json!(["metadata"]);
    }
    crd
}

/// Gatekeeper's `ConstraintTemplate`, so the management cluster stores templates as
/// Gatekeeper users write them (v1, v1beta1 and v1alpha1 served; the spec is kept whole:
/// the policy engine validates it).
pub fn constraint_template_crd() -> Value {
    let version = |name: &str, storage: bool| {
        json!({
            "name": name, "served": true, "storage": storage,
            "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
        })
    };
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "constrainttemplates.templates.gatekeeper.sh"},
        "spec": {
            "group": "templates.gatekeeper.sh",
            "scope": "Cluster",
            "names": {"kind": "ConstraintTemplate", "plural": "constrainttemplates",
                      "singular": "constrainttemplate", "listKind": "ConstraintTemplateList",
                      "categories": ["all-graph"]},
            "versions": [version("v1", true), version("v1beta1", false), version("v1alpha1", false)],
        }
    })
}

/// The CRD Gatekeeper serves for a template's constraint kind (created by the controller
/// when the template appears, as Gatekeeper does).
pub fn constraint_crd(kind: &str) -> Value {
    let plural = kind.to_lowercase();
    let version = |name: &str, storage: bool| {
        json!({
            "name": name, "served": true, "storage": storage,
            "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            "additionalPrinterColumns": [
                {"name": "Enforcement-Action", "type": "string", "jsonPath": ".spec.enforcementAction"},
                {"name": "Total-Violations", "type": "integer", "jsonPath": ".status.totalViolations"},
            ],
        })
    };
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.constraints.gatekeeper.sh"),
                     "labels": {"gatekeeper.sh/constraint": "yes"}},
        "spec": {
            "group": "constraints.gatekeeper.sh",
            "scope": "Cluster",
            "names": {"kind": kind, "plural": plural, "listKind": format!("{kind}List"),
                      "singular": plural, "categories": ["constraint", "constraints"]},
            "versions": [version("v1beta1", true), version("v1alpha1", false), version("v1", false)],
        }
    })
}

/// Mooring's `RollbackPolicy` (`mooring.dev/v1alpha1`): automated rollback triggers
/// (see `mooring_core::rollback`). Unlike Argo CD's kinds it has a status subresource:
/// users own the spec, the controller owns the status.
pub fn rollback_policy_crd() -> Value {
    use mooring_core::rollback::{RollbackPolicySpec, RollbackPolicyStatus, GROUP, KIND, PLURAL};
    let mut props = Map::new();
    props.insert("apiVersion".into(), json!({"type": "string"}));
    props.insert("kind".into(), json!({"type": "string"}));
    props.insert("metadata".into(), json!({"type": "object"}));
    props.insert("spec".into(), schema_of::<RollbackPolicySpec>());
    props.insert("status".into(), schema_of::<RollbackPolicyStatus>());
    let mut c = crd(
        GROUP,
        KIND,
        PLURAL,
        &["rbp"],
        props,
        json!([
            {"name": "Rules", "type": "string", "jsonPath": ".status.rules[*].name"},
            {"name": "State", "type": "string", "jsonPath": ".status.rules[*].state"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ]),
    );
    if let Some(v) = c.pointer_mut("/spec/versions/0") {
        v["subresources"] = json!({"status": {}});
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(v: &Value, f: &mut dyn FnMut(&Map<String, Value>)) {
        match v {
            Value::Object(o) => {
                f(o);
                o.values().for_each(|c| walk(c, f));
            }
            Value::Array(a) => a.iter().for_each(|c| walk(c, f)),
            _ => {}
        }
    }

    #[test]
    fn argo_rollouts_crds_are_installed_with_their_subresources() {
        let all = all();
        let by_name = |n: &str| {
            all.iter()
                .find(|c| c["metadata"]["name"] == n)
                .unwrap_or_else(|| panic!("{n} in all()"))
        };
        let ro = by_name("rollouts.argoproj.io");
        assert_eq!(ro["spec"]["names"]["shortNames"], json!(["ro"]));
        let v = &ro["spec"]["versions"][0];
        assert_eq!(v["name"], "v1alpha1");
        assert_eq!(
            v["subresources"]["scale"]["specReplicasPath"],
            ".spec.replicas"
        );
        assert!(v["subresources"]["status"].is_object());
        let cat = by_name("clusteranalysistemplates.argoproj.io");
        assert_eq!(cat["spec"]["scope"], "Cluster");
        let ar = by_name("analysisruns.argoproj.io");
        assert!(ar["spec"]["versions"][0]["subresources"]["status"].is_object());
        assert!(
            by_name("analysistemplates.argoproj.io")["spec"]["versions"][0]
                .get("subresources")
                .is_none()
        );
        // Traffic routers are not Mooring's to install on a real cluster.
        assert!(!all
            .iter()
            .any(|c| c["metadata"]["name"] == "virtualservices.networking.istio.io"));
        let traffic = traffic_crds();
        let names: Vec<&str> = traffic
            .iter()
            .filter_map(|c| c["metadata"]["name"].as_str())
            .collect();
        assert_eq!(
            names,
            [
                "virtualservices.networking.istio.io",
                "destinationrules.networking.istio.io",
                "httproutes.gateway.networking.k8s.io"
            ]
        );
        // Exactly one storage version each.
        for c in all.iter().chain(&traffic) {
            let versions = c["spec"]["versions"].as_array().expect("versions");
            assert_eq!(
                versions.iter().filter(|v| v["storage"] == true).count(),
                1,
                "{c}"
            );
        }
    }

    #[test]
    fn application_schema_follows_the_types_and_is_structural() {
        let c = application_crd();
        let spec = &c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        let source = &spec["properties"]["source"]["properties"];
        assert_eq!(source["repoURL"]["type"], "string");
        assert_eq!(source["targetRevision"]["type"], "string");
        assert_eq!(
            spec["properties"]["syncPolicy"]["properties"]["automated"]["properties"]["selfHeal"]
                ["type"],
            "boolean"
        );
        // Fields Mooring does not model survive an API server (to be reported, not pruned).
        assert_eq!(spec["x-kubernetes-preserve-unknown-fields"], true);
        assert_eq!(
            spec["properties"]["source"]["properties"]["directory"]
                ["x-kubernetes-preserve-unknown-fields"],
            true
        );
        // Structural: no references or untyped nodes left; keyword values stay values.
        walk(&c, &mut |o| {
            assert!(o.get("nullable").is_none_or(Value::is_boolean), "{o:?}");
            if let Some(props) = o.get("properties").and_then(Value::as_object) {
                assert!(
                    !props.contains_key("x-kubernetes-preserve-unknown-fields"),
                    "{o:?}"
                );
            }
            assert!(!o.contains_key("$ref"), "{o:?}");
            assert!(
                !o.contains_key("definitions") && !o.contains_key("$defs"),
                "{o:?}"
            );
        });
    }

    #[test]
    fn app_project_schema_follows_the_types_and_keeps_unknown_fields() {
        let c = app_project_crd();
        assert_eq!(c["metadata"]["name"], "appprojects.argoproj.io");
        let spec = &c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        let p = &spec["properties"];
        assert_eq!(p["sourceRepos"]["items"]["type"], "string");
        assert_eq!(
            p["clusterResourceWhitelist"]["items"]["properties"]["kind"]["type"],
            "string"
        );
        let window = &p["syncWindows"]["items"];
        assert_eq!(window["properties"]["manualSync"]["type"], "boolean");
        assert_eq!(window["x-kubernetes-preserve-unknown-fields"], true);
        assert_eq!(
            p["roles"]["items"]["properties"]["jwtTokens"]["items"]["properties"]["iat"]["type"],
            "integer"
        );
        walk(spec, &mut |o| {
            assert!(!o.contains_key("$ref"), "{o:?}");
            assert!(o.get("nullable").is_none_or(Value::is_boolean), "{o:?}");
            if let Some(props) = o.get("properties").and_then(Value::as_object) {
                assert!(
                    !props.contains_key("x-kubernetes-preserve-unknown-fields"),
                    "{o:?}"
                );
            }
            if o.get("type").and_then(Value::as_str) == Some("object")
                && o.contains_key("properties")
            {
                assert_eq!(
                    o.get("x-kubernetes-preserve-unknown-fields"),
                    Some(&json!(true)),
                    "{o:?}"
                );
            }
        });
    }

    #[test]
    fn rollback_policy_crd_has_a_status_subresource_and_typed_rules() {
        let c = rollback_policy_crd();
        assert_eq!(c["metadata"]["name"], "rollbackpolicies.mooring.dev");
        assert_eq!(
            c["spec"]["versions"][0]["subresources"],
            json!({"status": {}})
        );
        let spec = &c["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        let rule = &spec["properties"]["rules"]["items"]["properties"];
        assert_eq!(rule["for"]["type"], "string");
        assert_eq!(rule["threshold"]["properties"]["ratio"]["type"], "number");
        assert!(rule["action"]["enum"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("create_incident_and_rollback"))));
        walk(&c, &mut |o| assert!(!o.contains_key("$ref"), "{o:?}"));
    }

    /// No CRD default holds a null (a wrong-typed value Kubernetes refuses, and that made
    /// a server-side apply after a client-side one conflict on `.spec.versions`).
    #[test]
    fn defaults_hold_no_nulls() {
        fn has_null(v: &Value) -> bool {
            match v {
                Value::Null => true,
                Value::Object(m) => m.values().any(has_null),
                Value::Array(a) => a.iter().any(has_null),
                _ => false,
            }
        }
        fn check(v: &Value, crd: &str) {
            match v {
                Value::Object(m) => {
                    if let Some(d) = m.get("default") {
                        assert!(!has_null(d), "{crd}: default {d}");
                    }
                    m.values().for_each(|x| check(x, crd));
                }
                Value::Array(a) => a.iter().for_each(|x| check(x, crd)),
                _ => {}
            }
        }
        for c in all() {
            check(&c, c["metadata"]["name"].as_str().unwrap_or_default());
        }
    }
}
