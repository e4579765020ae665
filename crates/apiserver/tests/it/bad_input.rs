//! Hostile and malformed requests get the right Kubernetes error and change nothing.

use crate::support::{client, start};
use mooring_k8s::kube;
use serde_json::json;

async fn send(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(body)
        .expect("request");
    match client.request_text(req).await {
        Ok(text) => (200, serde_json::from_str(&text).unwrap_or(json!(text))),
        Err(kube::Error::Api(s)) => (s.code, json!({"reason": s.reason, "message": s.message})),
        Err(e) => panic!("transport error for {method} {path}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_kubernetes_errors_and_store_is_unchanged() {
    let c = start(None).await;
    let client = client(&c).await;
    // Let bootstrap writes (namespaces, nodes, simulation) settle.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let cms = "/api/v1/namespaces/default/configmaps";
    let before = c.api.store.count("/configmaps");
    let json_ct = "application/json";
    let cm =
        |name: &str| json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}});

    let mut alias_bomb = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\na: &a [x,x,x,x,x,x,x,x,x,x]\n",
    );
    let mut prev = 'a';
    for ch in 'b'..='p' {
        alias_bomb.push_str(&format!("{ch}: &{ch} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
        prev = ch;
    }
    // (what, path, content type, body, expected code, expected reason)
    type Case<'a> = (&'a str, &'a str, &'a str, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        ("malformed JSON", cms, json_ct, b"{\"apiVersion\": \"v1\", \"kind\":".to_vec(), 400, "BadRequest"),
        ("not an object", cms, json_ct, b"[1,2,3]".to_vec(), 400, "BadRequest"),
        ("malformed YAML", cms, "application/yaml", b"metadata: {name: [unclosed".to_vec(), 400, "BadRequest"),
        ("YAML alias bomb", cms, "application/yaml", alias_bomb.into_bytes(), 400, "BadRequest"),
        ("unknown kind", "/apis/example.com/v1/namespaces/default/widgets", json_ct, b"{}".to_vec(), 404, "NotFound"),
        ("kind does not match the URL", cms, json_ct,
            serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}})).expect("json"), 400, "BadRequest"),
        ("wrong apiVersion", cms, json_ct,
            serde_json::to_vec(&json!({"apiVersion": "apps/v1", "kind": "ConfigMap", "metadata": {"name": "x"}})).expect("json"), 400, "BadRequest"),
        ("invalid name", cms, json_ct, serde_json::to_vec(&cm("Bad_Name")).expect("json"), 422, "Invalid"),
        ("name too long", cms, json_ct, serde_json::to_vec(&cm(&"a".repeat(254))).expect("json"), 422, "Invalid"),
        ("invalid label", cms, json_ct,
            serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ok", "labels": {"bad key!": "v"}}})).expect("json"), 422, "Invalid"),
        ("no name", cms, json_ct, serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}})).expect("json"), 422, "Invalid"),
        ("namespace does not exist", "/api/v1/namespaces/nope/configmaps", json_ct, serde_json::to_vec(&cm("x")).expect("json"), 404, "NotFound"),
        ("oversized body", cms, json_ct, {
            let mut v = serde_json::to_vec(&json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"}, "data": {"k": "x".repeat(4 * 1024 * 1024)}})).expect("json");
            v.shrink_to_fit();
            v
        }, 413, "RequestEntityTooLarge"),
        ("malformed protobuf body", cms, "application/vnd.kubernetes.protobuf", b"k8s\0garbage".to_vec(), 400, "BadRequest"),
        ("deployment without selector", "/apis/apps/v1/namespaces/default/deployments", json_ct,
            serde_json::to_vec(&json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}})).expect("json"), 422, "Invalid"),
    ];
    let rev_before = c.api.store.revision();
    for (what, path, ct, body, code, reason) in cases {
        let (got, status) = send(&client, "POST", path, ct, body).await;
        assert_eq!(got, code, "{what}: {status}");
        assert_eq!(status["reason"], reason, "{what}: {status}");
        assert!(
            !status["message"].as_str().unwrap_or_default().is_empty(),
            "{what}: message"
        );
    }
    let (code, _) = send(
        &client,
        "PUT",
        "/api/v1/namespaces",
        json_ct,
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(code, 405, "PUT on a collection");
    let (code, s) = send(
        &client,
        "PATCH",
        "/api/v1/namespaces/default",
        "text/plain",
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(code, 415, "unknown patch type: {s}");
    let (code, s) = send(
        &client,
        "PATCH",
        "/api/v1/namespaces/default",
        "application/json-patch+json",
        br#"[{"op": "test", "path": "/metadata/name", "value": "other"}]"#.to_vec(),
    )
    .await;
    assert_eq!(code, 422, "failed JSON patch test op: {s}");
    assert_eq!(c.api.store.count("/configmaps"), before);
    assert_eq!(
        c.api.store.revision(),
        rev_before,
        "no bad request wrote anything"
    );
}
