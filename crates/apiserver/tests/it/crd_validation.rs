//! Custom resources validated, defaulted and pruned against their CRD's structural schema
//! on every write path (create, update, patch, apply, status), `fieldValidation` for their
//! unknown fields, and CRDs whose schemas are not structural or are hostile.

use crate::kubectl::{kubectl, ok};
use crate::support::{raw, start, RawResponse};
use mooring_apiserver::Cluster;
use serde_json::{json, Value};

const CRD: &str = r#"{"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
 "metadata": {"name": "widgets.example.com"},
 "spec": {"group": "example.com", "scope": "Namespaced",
  "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
  "versions": [{"name": "v1", "served": true, "storage": true, "subresources": {"status": {}},
   "schema": {"openAPIV3Schema": {"type": "object", "properties": {
     "spec": {"type": "object", "required": ["image"], "properties": {
       "replicas": {"type": "integer", "minimum": 0, "maximum": 10, "default": 1},
       "image": {"type": "string", "maxLength": 64, "pattern": "^[a-z0-9./:-]+$"},
       "mode": {"type": "string", "enum": ["fast", "slow"], "default": "fast"},
       "port": {"x-kubernetes-int-or-string": true},
       "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
     "status": {"type": "object", "properties": {"phase": {"type": "string"}, "ready": {"type": "integer"}}}}}}}]}}"#;

const BASE: &str = "/apis/example.com/v1/namespaces/default/widgets";

async fn send(c: &Cluster, method: &str, path: &str, ct: &str, body: &str) -> RawResponse {
    raw(
        c,
        &format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nContent-Type: {ct}",
            c.addr,
            c.token()
        ),
        body.as_bytes(),
    )
    .await
}

fn warnings(r: &RawResponse) -> Vec<String> {
    r.head
        .lines()
        .filter_map(|l| l.strip_prefix("warning: "))
        .map(str::to_string)
        .collect()
}

fn widget(name: &str, spec: Value) -> String {
    json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec})
        .to_string()
}

async fn get(c: &Cluster, name: &str) -> RawResponse {
    send(c, "GET", &format!("{BASE}/{name}"), "application/json", "").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_are_validated_defaulted_and_pruned() {
    let c = start(None).await;
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let r = send(&c, "POST", crds, "application/json", CRD).await;
    assert_eq!(r.code, 201, "{}", r.body);

    // Defaults applied, unknown fields pruned with a warning (the server default is Warn),
    // preserved fields kept.
    let r = send(
        &c,
        "POST",
        BASE,
        "application/json",
        &widget(
            "w1",
            json!({"image": "nginx:1.27", "bogus": 1, "extra": {"free": {"form": true}}}),
        ),
    )
    .await;
    assert_eq!(r.code, 201, "{}", r.body);
    assert_eq!(warnings(&r), [r#"299 - "unknown field \"spec.bogus\"""#]);
    let w = get(&c, "w1").await.json();
    assert_eq!(w["spec"]["replicas"], 1);
    assert_eq!(w["spec"]["mode"], "fast");
    assert!(w["spec"].get("bogus").is_none(), "{w}");
    assert_eq!(w["spec"]["extra"]["free"]["form"], true);

    // Strict: 400, nothing stored.
    let r = send(
        &c,
        "POST",
        &format!("{BASE}?fieldValidation=Strict"),
        "application/json",
        &widget("w2", json!({"image": "nginx", "bogus": 1})),
    )
    .await;
    assert_eq!(r.code, 400, "{}", r.body);
    assert_eq!(
        r.json()["message"],
        "Widget in version \"v1\" cannot be handled as a Widget: strict decoding error: unknown field \"spec.bogus\""
    );
    assert_eq!(get(&c, "w2").await.code, 404);

    // A type error: 422 Invalid worded as the real server words it, nothing stored.
    let r = send(
        &c,
        "POST",
        BASE,
        "application/json",
        &widget("w2", json!({"image": "nginx", "replicas": "three"})),
    )
    .await;
    assert_eq!(r.code, 422, "{}", r.body);
    let st = r.json();
    assert_eq!(st["reason"], "Invalid");
    assert_eq!(
        st["message"],
        "Widget.example.com \"w2\" is invalid: spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""
    );
    assert_eq!(
        st["details"]["causes"][0],
        json!({"reason": "FieldValueTypeInvalid", "field": "spec.replicas",
               "message": "Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""})
    );
    assert_eq!(st["details"]["kind"], "Widget");
    assert_eq!(get(&c, "w2").await.code, 404);

    // Several errors at once: required, enum, maximum, pattern, int-or-string.
    let r = send(
        &c,
        "POST",
        BASE,
        "application/json",
        &widget(
            "w3",
            json!({"replicas": 11, "mode": "medium", "port": true}),
        ),
    )
    .await;
    assert_eq!(r.code, 422, "{}", r.body);
    let reasons: Vec<(String, String)> = r.json()["details"]["causes"]
        .as_array()
        .expect("causes")
        .iter()
        .map(|c| {
            (
                c["field"].as_str().unwrap_or("").to_string(),
                c["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    for want in [
        ("spec.image", "FieldValueRequired"),
        ("spec.replicas", "FieldValueInvalid"),
        ("spec.mode", "FieldValueNotSupported"),
        ("spec.port", "FieldValueTypeInvalid"),
    ] {
        assert!(
            reasons.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} in {reasons:?}"
        );
    }

    // Update, merge patch, JSON patch and apply are validated too; the object is unchanged.
    let mut bad = get(&c, "w1").await.json();
    bad["spec"]["replicas"] = json!(-1);
    let r = send(
        &c,
        "PUT",
        &format!("{BASE}/w1"),
        "application/json",
        &bad.to_string(),
    )
    .await;
    assert_eq!(r.code, 422, "{}", r.body);
    assert!(
        r.json()["message"].as_str().is_some_and(|m| m.ends_with(
            "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0"
        )),
        "{}",
        r.body
    );
    let r = send(
        &c,
        "PATCH",
        &format!("{BASE}/w1"),
        "application/merge-patch+json",
        r#"{"spec":{"image":"Not Valid!"}}"#,
    )
    .await;
    assert_eq!(r.code, 422, "{}", r.body);
    let r = send(
        &c,
        "PATCH",
        &format!("{BASE}/w1"),
        "application/json-patch+json",
        r#"[{"op":"remove","path":"/spec/image"}]"#,
    )
    .await;
    assert_eq!(r.code, 422, "{}", r.body);
    assert!(r.body.contains("spec.image: Required value"), "{}", r.body);
    let r = send(
        &c,
        "PATCH",
        &format!("{BASE}/w1?fieldManager=test&force=true"),
        "application/apply-patch+yaml",
        &widget("w1", json!({"image": "nginx", "replicas": 100})),
    )
    .await;
    assert_eq!(r.code, 422, "{}", r.body);
    let w = get(&c, "w1").await.json();
    assert_eq!(
        (w["spec"]["replicas"].clone(), w["spec"]["image"].clone()),
        (json!(1), json!("nginx:1.27"))
    );

    // Apply creating an object gets defaults and validation too.
    let r = send(
        &c,
        "PATCH",
        &format!("{BASE}/w4?fieldManager=test"),
        "application/apply-patch+yaml",
        &widget("w4", json!({"image": "nginx", "port": "http"})),
    )
    .await;
    assert_eq!(r.code, 201, "{}", r.body);
    assert_eq!(r.json()["spec"]["replicas"], 1);

    // The status subresource validates status.
    let mut st = get(&c, "w1").await.json();
    st["status"] = json!({"phase": "Ready", "ready": "yes"});
    let r = send(
        &c,
        "PUT",
        &format!("{BASE}/w1/status"),
        "application/json",
        &st.to_string(),
    )
    .await;
    assert_eq!(r.code, 422, "{}", r.body);
    assert!(
        r.body
            .contains("status.ready in body must be of type integer"),
        "{}",
        r.body
    );
    st["status"]["ready"] = json!(1);
    let r = send(
        &c,
        "PUT",
        &format!("{BASE}/w1/status"),
        "application/json",
        &st.to_string(),
    )
    .await;
    assert_eq!(r.code, 200, "{}", r.body);

    // Hostile: a megabyte string against maxLength is a short error, not an echo.
    let huge = "a".repeat(1 << 20);
    let r = send(
        &c,
        "POST",
        BASE,
        "application/json",
        &widget("w5", json!({"image": huge})),
    )
    .await;
    assert_eq!(r.code, 422);
    assert!(
        r.body.len() < 4096,
        "error echoes the value: {} bytes",
        r.body.len()
    );
    assert!(
        r.body
            .contains("spec.image: Too long: may not be more than 64 bytes"),
        "{}",
        r.body
    );
    // Deep nesting below a pruned field is dropped, not walked without bound.
    let mut deep = json!(1);
    for _ in 0..100 {
        deep = json!({ "x": deep });
    }
    let r = send(
        &c,
        "POST",
        BASE,
        "application/json",
        &widget("w6", json!({"image": "a", "deep": deep})),
    )
    .await;
    assert_eq!(r.code, 201, "{}", r.body);
    assert!(r.json()["spec"].get("deep").is_none());
    assert_eq!(get(&c, "w5").await.code, 404);

    // kubectl: Strict by default, and the validation message as users see it.
    let o = kubectl(
        &c,
        &["apply", "-f", "-"],
        Some(&widget("k1", json!({"image": "nginx", "colour": "red"}))),
    )
    .await;
    assert!(
        !o.ok
            && o.stderr
                .contains("strict decoding error: unknown field \"spec.colour\""),
        "{}",
        o.stderr
    );
    let o = kubectl(
        &c,
        &["apply", "-f", "-"],
        Some(&widget("k1", json!({"image": "nginx", "replicas": "3"}))),
    )
    .await;
    assert!(
        !o.ok && o.stderr.contains("spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""),
        "{}",
        o.stderr
    );
    ok(
        &c,
        &["apply", "-f", "-"],
        Some(&widget("k1", json!({"image": "nginx", "replicas": 3}))),
    )
    .await;

    // A default added to the schema later shows on reads of objects stored before it.
    let r = send(
        &c,
        "PATCH",
        &format!("{crds}/widgets.example.com"),
        "application/json-patch+json",
        r#"[{"op": "add", "path": "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/colour",
             "value": {"type": "string", "default": "blue"}}]"#,
    )
    .await;
    assert_eq!(r.code, 200, "{}", r.body);
    assert_eq!(get(&c, "w1").await.json()["spec"]["colour"], "blue");
    c.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crds_must_have_structural_schemas() {
    let c = start(None).await;
    let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
    let with_schema = |s: Value| {
        let mut crd: Value = serde_json::from_str(CRD).expect("crd");
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"] = s;
        crd.to_string()
    };
    let cases = [
        (
            json!({"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}}),
            "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified object fields",
        ),
        (
            json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}}),
            "spec.versions[0].schema.openAPIV3Schema.additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive",
        ),
        (
            json!({"type": "object", "properties": {"a": {"type": "string", "pattern": "(unclosed"}}}),
            "spec.versions[0].schema.openAPIV3Schema.properties[a].pattern: Invalid value: \"(unclosed\": must be a valid regular expression",
        ),
        (
            json!({"type": "object", "properties": {"a": {"type": "integer", "default": "x"}}}),
            "spec.versions[0].schema.openAPIV3Schema.properties[a].default: Invalid value: \"x\"",
        ),
    ];
    for (schema, want) in cases {
        let r = send(&c, "POST", crds, "application/json", &with_schema(schema)).await;
        assert_eq!(r.code, 422, "{}", r.body);
        let message = r.json()["message"].as_str().unwrap_or("").to_string();
        assert!(message.contains(want), "want {want}\n got {message}");
        let r = send(
            &c,
            "GET",
            &format!("{crds}/widgets.example.com"),
            "application/json",
            "",
        )
        .await;
        assert_eq!(r.code, 404, "stored despite the error");
    }

    // Hostile: a huge enum and a deeply nested schema are bounded.
    let values: Vec<Value> = (0..50_000).map(|i| json!(format!("v{i}"))).collect();
    let r = send(
        &c,
        "POST",
        crds,
        "application/json",
        &with_schema(json!({"type": "object", "properties": {"spec": {"type": "object", "properties": {"v": {"type": "string", "enum": values}}}}})),
    )
    .await;
    assert_eq!(r.code, 201, "{}", r.body);
    let r = send(
        &c,
        "POST",
        BASE,
        "application/json",
        &widget("e", json!({"v": "nope"})),
    )
    .await;
    assert_eq!(r.code, 422);
    assert!(r.body.len() < 8192, "{} bytes", r.body.len());
    let r = send(
        &c,
        "POST",
        BASE,
        "application/json",
        &widget("e", json!({"v": "v49999"})),
    )
    .await;
    assert_eq!(r.code, 201, "{}", r.body);
    let r = send(
        &c,
        "DELETE",
        &format!("{crds}/widgets.example.com"),
        "application/json",
        "",
    )
    .await;
    assert_eq!(r.code, 200, "{}", r.body);

    // CEL rules are accepted but named in a warning: they are not enforced here.
    let mut cel: Value = serde_json::from_str(CRD).expect("crd");
    cel["metadata"]["name"] = json!("gadgets.example.com");
    cel["spec"]["names"] = json!({"plural": "gadgets", "singular": "gadget", "kind": "Gadget"});
    cel["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        ["x-kubernetes-validations"] =
        json!([{"rule": "self.replicas <= 5", "message": "at most five"}]);
    let r = send(&c, "POST", crds, "application/json", &cel.to_string()).await;
    assert_eq!(r.code, 201, "{}", r.body);
    let w = warnings(&r);
    assert_eq!(w.len(), 1, "{}", r.head);
    assert!(
        w[0].contains("not enforced") && w[0].contains("self.replicas <= 5"),
        "{w:?}"
    );
    c.stop();
}
