//! The resource metrics API (`metrics.k8s.io/v1beta1`): `kubectl top` and raw requests.

use crate::kubectl::{kubectl, ok};
use crate::support::{client, eventually, send, start};
use serde_json::Value;

const WORKLOAD: &str = "apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: demo}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata:
      labels: {app: web}
      annotations: {sim.mooring.dev/cpu-utilization: \"50\"}
    spec:
      containers:
      - name: app
        image: nginx:1.27
        resources: {requests: {cpu: 200m, memory: 100Mi}, limits: {cpu: \"1\"}}
      - name: sidecar
        image: envoy:1.31
";

fn cpu_cores(q: &str) -> f64 {
    q.strip_suffix('n')
        .and_then(|n| n.parse::<f64>().ok())
        .expect("nanocores")
        / 1e9
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_top_and_the_metrics_api() {
    let c = start(None).await;
    let kc = client(&c).await;
    ok(&c, &["apply", "-f", "-"], Some(WORKLOAD)).await;
    ok(
        &c,
        &[
            "wait",
            "--for=condition=Available",
            "deploy/web",
            "-n",
            "demo",
            "--timeout=60s",
        ],
        None,
    )
    .await;

    // Discovery lists the group as metrics-server's APIService does.
    let out = ok(&c, &["api-resources", "--api-group=metrics.k8s.io"], None).await;
    assert!(
        out.contains("PodMetrics") && out.contains("NodeMetrics"),
        "{out}"
    );

    let list = eventually(30, "metrics for both Pods", || async {
        let (code, v) = send(
            &kc,
            "GET",
            "/apis/metrics.k8s.io/v1beta1/namespaces/demo/pods",
            None,
        )
        .await;
        (code == 200 && v["items"].as_array().is_some_and(|i| i.len() == 2)).then_some(v)
    })
    .await;
    assert_eq!(list["kind"], "PodMetricsList");
    let pod = &list["items"][0];
    assert_eq!(pod["metadata"]["namespace"], "demo");
    assert_eq!(pod["metadata"]["labels"]["app"], "web");
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 2);
    // 50 % of the 200m request (±3 % per-Pod spread), memory in Ki.
    let app = cpu_cores(containers[0]["usage"]["cpu"].as_str().expect("cpu"));
    assert!((0.095..=0.105).contains(&app), "{app}");
    assert!(containers[0]["usage"]["memory"]
        .as_str()
        .expect("memory")
        .ends_with("Ki"));

    // kubectl top, pods, containers and nodes.
    let out = ok(&c, &["top", "pods", "-n", "demo"], None).await;
    assert!(out.contains("CPU(cores)") && out.contains("web-"), "{out}");
    let out = ok(&c, &["top", "pods", "-n", "demo", "--containers"], None).await;
    assert!(out.contains("sidecar") && out.contains("app"), "{out}");
    let out = ok(&c, &["top", "pods", "-n", "demo", "-l", "app=web"], None).await;
    assert_eq!(
        out.lines().filter(|l| l.starts_with("web-")).count(),
        2,
        "{out}"
    );
    let out = ok(&c, &["top", "nodes"], None).await;
    assert!(
        out.contains("mooring-node-0") && out.contains("MEMORY(bytes)"),
        "{out}"
    );

    // get by name, selectors, node metrics include the base usage.
    let name = pod["metadata"]["name"].as_str().expect("name");
    let (code, one) = send(
        &kc,
        "GET",
        &format!("/apis/metrics.k8s.io/v1beta1/namespaces/demo/pods/{name}"),
        None,
    )
    .await;
    assert_eq!((code, one["kind"].as_str()), (200, Some("PodMetrics")));
    let (_, none) = send(
        &kc,
        "GET",
        "/apis/metrics.k8s.io/v1beta1/pods?labelSelector=app%3Dother",
        None,
    )
    .await;
    assert_eq!(none["items"], Value::Array(vec![]));
    let (_, by_field) = send(
        &kc,
        "GET",
        &format!("/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=metadata.name%3D{name}"),
        None,
    )
    .await;
    assert_eq!(by_field["items"].as_array().map(Vec::len), Some(1));
    let (code, nodes) = send(&kc, "GET", "/apis/metrics.k8s.io/v1beta1/nodes", None).await;
    assert_eq!(code, 200);
    assert_eq!(nodes["kind"], "NodeMetricsList");
    let total: f64 = nodes["items"]
        .as_array()
        .expect("nodes")
        .iter()
        .map(|n| cpu_cores(n["usage"]["cpu"].as_str().expect("cpu")))
        .sum();
    assert!(total > 0.2 + 3.0 * 0.12 - 0.01, "{total}");

    // Read-only, like the aggregated API: every write is 405; absurd input is a clean error.
    for (method, path, code, reason) in [
        (
            "POST",
            "/apis/metrics.k8s.io/v1beta1/namespaces/demo/pods",
            405,
            "MethodNotAllowed",
        ),
        (
            "DELETE",
            &*format!("/apis/metrics.k8s.io/v1beta1/namespaces/demo/pods/{name}"),
            405,
            "MethodNotAllowed",
        ),
        (
            "PUT",
            "/apis/metrics.k8s.io/v1beta1/nodes/mooring-node-0",
            405,
            "MethodNotAllowed",
        ),
        (
            "GET",
            "/apis/metrics.k8s.io/v1beta1/namespaces/demo/pods?watch=true",
            405,
            "MethodNotAllowed",
        ),
        (
            "GET",
            "/apis/metrics.k8s.io/v1beta1/namespaces/demo/pods/nope",
            404,
            "NotFound",
        ),
        (
            "GET",
            "/apis/metrics.k8s.io/v1beta1/namespaces/demo/widgets",
            404,
            "NotFound",
        ),
        (
            "GET",
            "/apis/metrics.k8s.io/v1beta1/pods?labelSelector=a%20in%20(",
            400,
            "BadRequest",
        ),
        (
            "GET",
            "/apis/metrics.k8s.io/v1beta1/pods?fieldSelector=spec.nodeName%3Dx",
            400,
            "BadRequest",
        ),
    ] {
        let body = (method != "GET" && method != "DELETE")
            .then(|| serde_json::json!({"metadata": {"name": "x"}}));
        let (got, v) = send(&kc, method, path, body).await;
        assert_eq!(
            (got, v["reason"].as_str()),
            (code, Some(reason)),
            "{method} {path}: {v}"
        );
    }
    let o = kubectl(&c, &["top", "pods", "-n", "empty-namespace"], None).await;
    assert!(!o.ok || o.stdout.is_empty(), "{}", o.stdout);
    c.stop();
}
