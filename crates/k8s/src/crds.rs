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

/// The Argo CD-compatible `Application` CRD.
pub fn application_crd() -> Value {
    let mut props = Map::new();
    props.insert("apiVersion".into(), json!({"type": "string"}));
    props.insert("kind".into(), json!({"type": "string"}));
    props.insert("metadata".into(), json!({"type": "object"}));
    props.insert("spec".into(), schema_of::<ApplicationSpec>());
    props.insert("status".into(), schema_of::<ApplicationStatus>());
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
/// `spec.template.spec` are open (see `mooring_core::appset`); like Application, no
/// status subresource: the controller merge-patches `status` on the main resource.
pub fn applicationset_crd() -> Value {
    let mut props = Map::new();
    props.insert("apiVersion".into(), json!({"type": "string"}));
    props.insert("kind".into(), json!({"type": "string"}));
    props.insert("metadata".into(), json!({"type": "object"}));
    props.insert("spec".into(), schema_of::<ApplicationSetSpec>());
    props.insert("status".into(), schema_of::<ApplicationSetStatus>());
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
}
