//! `fieldValidation=Strict|Warn|Ignore` on create, update, patch and apply of built-in
//! kinds: with the real kubectl (which sends `Strict` unless told otherwise) and with raw
//! requests for what kubectl cannot send (duplicate keys, bad parameter values).

use crate::kubectl::{kubectl, ok};
use crate::support::{raw, start, RawResponse};
use mooring_apiserver::Cluster;

const BOGUS: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: typo
  labels: {app: typo}
spec:
  replicaz: 3
  selector: {matchLabels: {app: typo}}
  template:
    metadata: {labels: {app: typo}}
    spec:
      containers:
      - name: web
        image: registry.local/web:1.0
        ports: [{containerPort: 8080, hostPortz: 1}]
";

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_duplicate_fields_follow_field_validation() {
    let c = start(None).await;

    // kubectl's default is Strict: refused, with every unknown field named, nothing stored.
    let o = kubectl(&c, &["apply", "-f", "-"], Some(BOGUS)).await;
    assert!(!o.ok, "{}", o.stdout);
    assert!(
        o.stderr.contains(
            "Deployment in version \"v1\" cannot be handled as a Deployment: strict decoding error: unknown field \"spec.replicaz\", unknown field \"spec.template.spec.containers[0].ports[0].hostPortz\""
        ),
        "{}",
        o.stderr
    );
    let gone = kubectl(&c, &["get", "deployment", "typo"], None).await;
    assert!(!gone.ok, "stored despite Strict: {}", gone.stdout);
    let o = kubectl(&c, &["create", "-f", "-"], Some(BOGUS)).await;
    assert!(
        !o.ok && o.stderr.contains("unknown field \"spec.replicaz\""),
        "{}",
        o.stderr
    );
    let o = kubectl(&c, &["apply", "--server-side", "-f", "-"], Some(BOGUS)).await;
    assert!(
        !o.ok && o.stderr.contains("unknown field \"spec.replicaz\""),
        "server-side apply: {}",
        o.stderr
    );

    // Warn: stored without the unknown fields, one warning each.
    let o = kubectl(&c, &["apply", "--validate=warn", "-f", "-"], Some(BOGUS)).await;
    assert!(o.ok, "{}", o.stderr);
    assert!(
        o.stderr
            .contains("Warning: unknown field \"spec.replicaz\"")
            && o.stderr.contains(
                "Warning: unknown field \"spec.template.spec.containers[0].ports[0].hostPortz\""
            ),
        "{}",
        o.stderr
    );
    let stored = ok(&c, &["get", "deployment", "typo", "-o", "json"], None).await;
    let stored: serde_json::Value = serde_json::from_str(&stored).expect("json");
    assert!(stored.pointer("/spec/replicaz").is_none(), "{stored}");
    assert_eq!(
        stored.pointer("/spec/template/spec/containers/0/ports/0"),
        Some(&serde_json::json!({"containerPort": 8080, "protocol": "TCP"}))
    );

    // Ignore (`--validate=false`): accepted without a word.
    let o = kubectl(
        &c,
        &["apply", "--validate=false", "-f", "-"],
        Some(&BOGUS.replace("replicaz: 3", "replicaz: 4")),
    )
    .await;
    assert!(o.ok && !o.stderr.contains("Warning"), "{}", o.stderr);

    // Patches are checked on the object they produce. `kubectl patch` sends no
    // fieldValidation, so the server's default (Warn) applies.
    let o = kubectl(
        &c,
        &[
            "patch",
            "deployment",
            "typo",
            "--type=merge",
            "-p",
            r#"{"spec":{"paused":true,"pausedz":true}}"#,
        ],
        None,
    )
    .await;
    assert!(
        o.ok && o.stderr.contains("Warning: unknown field \"spec.pausedz\""),
        "{}",
        o.stderr
    );
    let deploy = "/apis/apps/v1/namespaces/default/deployments/typo";
    let r = send(
        &c,
        "PATCH",
        &format!("{deploy}?fieldValidation=Strict"),
        "application/strategic-merge-patch+json",
        r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","imagez":"x"}]}}}}"#,
    )
    .await;
    assert_eq!(r.code, 400, "{}", r.body);
    assert!(
        r.json()["message"].as_str().is_some_and(
            |m| m.ends_with("unknown field \"spec.template.spec.containers[0].imagez\"")
        ),
        "{}",
        r.body
    );
    let after = ok(&c, &["get", "deployment", "typo", "-o", "json"], None).await;
    assert!(
        after.contains("\"paused\": true") && !after.contains("pausedz"),
        "{after}"
    );

    // Duplicate keys, which kubectl cannot send: the last value is kept.
    let cms = "/api/v1/namespaces/default/configmaps";
    let dup = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","name":"dup"},"data":{"k":"v"},"dataz":{}}"#;
    let r = send(
        &c,
        "POST",
        &format!("{cms}?fieldValidation=Strict"),
        "application/json",
        dup,
    )
    .await;
    assert_eq!(r.code, 400, "{}", r.body);
    assert_eq!(r.json()["reason"], "BadRequest");
    assert_eq!(
        r.json()["message"],
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"dataz\", duplicate field \"metadata.name\""
    );
    let r = send(&c, "POST", cms, "application/json", dup).await;
    assert_eq!(r.code, 201, "{}", r.body);
    assert_eq!(
        warnings(&r),
        vec![
            r#"299 - "unknown field \"dataz\"""#,
            r#"299 - "duplicate field \"metadata.name\"""#
        ]
    );
    assert_eq!(r.json()["metadata"]["name"], "dup");
    assert!(r.json().get("dataz").is_none());
    let yaml =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\n  name: ydup\ndata: {k: v}\n";
    let r = send(
        &c,
        "POST",
        &format!("{cms}?fieldValidation=Strict"),
        "application/yaml",
        yaml,
    )
    .await;
    assert_eq!(r.code, 400, "{}", r.body);
    assert!(
        r.json()["message"]
            .as_str()
            .is_some_and(|m| m.ends_with("duplicate field \"metadata.name\"")),
        "{}",
        r.body
    );
    let r = send(
        &c,
        "PUT",
        &format!("{cms}/dup?fieldValidation=Ignore"),
        "application/json",
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"dup"},"data":{"k":"w"},"dataz":1}"#,
    )
    .await;
    assert_eq!(r.code, 200, "{}", r.body);
    assert!(warnings(&r).is_empty(), "{}", r.head);
    assert_eq!(r.json()["data"]["k"], "w");

    // An unsupported value is refused before anything happens.
    let r = send(
        &c,
        "POST",
        &format!("{cms}?fieldValidation=strict"),
        "application/json",
        dup,
    )
    .await;
    assert_eq!(r.code, 422, "{}", r.body);
    assert!(
        r.json()["message"]
            .as_str()
            .is_some_and(|m| m.contains("fieldValidation: Unsupported value: \"strict\"")),
        "{}",
        r.body
    );
}
