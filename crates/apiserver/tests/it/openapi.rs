//! OpenAPI v3 documents through the real `kubectl explain`, and the documents' caching.

use crate::kubectl::{kubectl, ok};
use crate::support::{raw, start};
use mooring_apiserver::Cluster;

const WIDGET_CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        description: A Widget is a thing to explain.
        properties:
          spec:
            type: object
            description: What the widget should be.
            properties:
              size:
                type: integer
                description: How many sprockets the widget turns.
              colour: {type: string, enum: [red, blue]}
";

fn get(c: &Cluster, path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}",
        c.addr,
        c.token()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_explain_prints_the_real_descriptions() {
    let c = start(None).await;
    let out = ok(&c, &["explain", "deployment.spec.replicas"], None).await;
    assert!(
        out.contains("replicas") && out.contains("<integer>"),
        "{out}"
    );
    assert!(out.contains("Number of desired pods"), "{out}");

    let out = ok(
        &c,
        &["explain", "pods.spec.containers", "--recursive"],
        None,
    )
    .await;
    assert!(out.contains("<[]Container>"), "{out}");
    assert!(
        out.contains("livenessProbe") && out.contains("containerPort"),
        "{out}"
    );
    assert!(out.contains("-required-"), "{out}");

    let out = ok(&c, &["explain", "pod.metadata.creationTimestamp"], None).await;
    assert!(
        out.contains("<string>") && out.contains("CreationTimestamp"),
        "{out}"
    );

    // Mooring's own Argo CD-compatible CRD.
    for crd in mooring_k8s::crds::all() {
        let yaml = serde_json::to_string(&crd).expect("json");
        ok(&c, &["apply", "--server-side", "-f", "-"], Some(&yaml)).await;
    }
    let out = ok(&c, &["explain", "applications.spec.source"], None).await;
    assert!(out.contains("repoURL"), "{out}");

    // A user CRD; the root's hash for its group version changes when it changes.
    ok(&c, &["apply", "-f", "-"], Some(WIDGET_CRD)).await;
    let out = ok(&c, &["explain", "widgets.spec.size"], None).await;
    assert!(
        out.contains("How many sprockets the widget turns."),
        "{out}"
    );
    assert!(out.contains("<integer>"), "{out}");
    let out = ok(&c, &["explain", "widgets"], None).await;
    assert!(out.contains("A Widget is a thing to explain."), "{out}");
    let root = raw(&c, &get(&c, "/openapi/v3"), b"").await.json();
    let url = root["paths"]["apis/example.com/v1"]["serverRelativeURL"]
        .as_str()
        .expect("example.com/v1 is listed")
        .to_string();
    let changed = WIDGET_CRD.replace("How many sprockets", "How many cogs");
    ok(&c, &["apply", "-f", "-"], Some(&changed)).await;
    let out = ok(&c, &["explain", "widgets.spec.size"], None).await;
    assert!(out.contains("How many cogs the widget turns."), "{out}");
    let root = raw(&c, &get(&c, "/openapi/v3"), b"").await.json();
    let new_url = root["paths"]["apis/example.com/v1"]["serverRelativeURL"]
        .as_str()
        .expect("listed")
        .to_string();
    assert_ne!(url, new_url);

    // The current hash may be cached for good, with an ETag; a stale one is redirected.
    let r = raw(&c, &get(&c, &new_url), b"").await;
    assert_eq!(r.code, 200);
    assert!(r.head.contains("immutable"), "{}", r.head);
    assert!(r.head.contains("etag:"), "{}", r.head);
    let doc = r.json();
    assert_eq!(
        doc["components"]["schemas"]["com.example.v1.Widget"]["properties"]["spec"]["properties"]
            ["size"]["description"],
        "How many cogs the widget turns."
    );
    let r = raw(&c, &get(&c, &url), b"").await;
    assert_eq!(r.code, 301);
    assert!(r.head.contains(&new_url.to_ascii_lowercase()), "{}", r.head);
    let hash = new_url.rsplit_once("hash=").expect("hash").1;
    let etag = format!("\"{hash}\"");
    assert_eq!(
        doc_etag(&raw(&c, &get(&c, &new_url), b"").await.head),
        etag.to_ascii_lowercase()
    );
    let r = raw(
        &c,
        &format!(
            "{}\r\nIf-None-Match: {etag}",
            get(&c, "/openapi/v3/apis/example.com/v1")
        ),
        b"",
    )
    .await;
    assert_eq!(r.code, 304);

    // A group version nobody serves.
    let r = raw(&c, &get(&c, "/openapi/v3/apis/nothing.example.com/v9"), b"").await;
    assert_eq!(r.code, 404);
    let o = kubectl(&c, &["explain", "widgets.spec.nosuchfield"], None).await;
    assert!(!o.ok);
    c.stop();
}

fn doc_etag(head: &str) -> String {
    head.lines()
        .find_map(|l| l.strip_prefix("etag: "))
        .expect("etag header")
        .trim()
        .to_string()
}
