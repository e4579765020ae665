//! The HorizontalPodAutoscaler controller: `kubectl autoscale`, scaling on simulated load,
//! the v1 and v2 views of one object, and the failure conditions.

use crate::kubectl::ok;
use crate::support::{client, eventually, send, start};
use serde_json::{json, Value};

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
      annotations: {sim.mooring.dev/cpu-utilization: \"20\"}
    spec:
      containers:
      - name: app
        image: nginx:1.27
        resources: {requests: {cpu: 100m}}
";

const HPA_V2: &str = "/apis/autoscaling/v2/namespaces/demo/horizontalpodautoscalers";
const HPA_V1: &str = "/apis/autoscaling/v1/namespaces/demo/horizontalpodautoscalers";

fn condition<'a>(hpa: &'a Value, t: &str) -> Option<&'a Value> {
    hpa["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == t)
}

async fn replicas(kc: &mooring_k8s::kube::Client, path: &str) -> i64 {
    send(kc, "GET", path, None).await.1["spec"]["replicas"]
        .as_i64()
        .unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hpa_scales_a_deployment_up_under_load_and_back_down() {
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
    ok(
        &c,
        &[
            "autoscale",
            "deploy",
            "web",
            "--min=2",
            "--max=5",
            "--cpu-percent=50",
            "-n",
            "demo",
        ],
        None,
    )
    .await;

    // One object, two views: v1 has targetCPUUtilizationPercentage, v2 metrics.
    let (code, v1) = send(&kc, "GET", &format!("{HPA_V1}/web"), None).await;
    assert_eq!(code, 200, "{v1}");
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);
    let (_, v2) = send(&kc, "GET", &format!("{HPA_V2}/web"), None).await;
    assert_eq!(
        v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        50
    );
    assert!(v2["spec"].get("targetCPUUtilizationPercentage").is_none());

    // Shorter scale-down window through v2 (behavior, which v1 cannot express).
    let req = http::Request::patch(format!("{HPA_V2}/web"))
        .header("content-type", "application/merge-patch+json")
        .body(
            serde_json::to_vec(
                &json!({"spec": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 40}}}}),
            )
            .expect("json"),
        )
        .expect("request");
    kc.request_text(req).await.expect("patch behavior");
    let (_, v1) = send(&kc, "GET", &format!("{HPA_V1}/web"), None).await;
    assert!(
        v1["metadata"]["annotations"]["autoscaling.alpha.kubernetes.io/behavior"].is_string(),
        "{v1}"
    );

    // Idle at 20 % against 50 %: stays at the minimum, the metric is reported.
    let hpa = eventually(30, "the HPA computes a metric", || async {
        let (_, h) = send(&kc, "GET", &format!("{HPA_V2}/web"), None).await;
        condition(&h, "ScalingActive")
            .is_some_and(|c| c["status"] == "True" && c["reason"] == "ValidMetricFound")
            .then_some(h)
    })
    .await;
    let util = hpa["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"]
        .as_i64()
        .expect("utilization");
    assert!((18..=22).contains(&util), "{hpa}");
    assert_eq!(
        condition(&hpa, "ScalingLimited").expect("ScalingLimited")["reason"],
        "TooFewReplicas"
    );
    let out = ok(&c, &["get", "hpa", "web", "-n", "demo"], None).await;
    assert!(
        out.contains("Deployment/web") && out.contains("cpu: ") && out.contains("/50%"),
        "{out}"
    );

    // Load rises (a release using 90 % of its request): up to the maximum.
    ok(&c, &["patch", "deploy", "web", "-n", "demo", "--type=merge", "-p",
        r#"{"spec":{"template":{"metadata":{"annotations":{"sim.mooring.dev/cpu-utilization":"90"}}}}}"#], None).await;
    let deploy = "/apis/apps/v1/namespaces/demo/deployments/web";
    eventually(60, "the HPA scales web to 5", || async {
        (replicas(&kc, deploy).await == 5).then_some(())
    })
    .await;
    let hpa = eventually(30, "status shows the rescale", || async {
        let (_, h) = send(&kc, "GET", &format!("{HPA_V2}/web"), None).await;
        (h["status"]["desiredReplicas"] == 5 && h["status"]["lastScaleTime"].is_string())
            .then_some(h)
    })
    .await;
    assert_eq!(
        condition(&hpa, "AbleToScale").expect("AbleToScale")["status"],
        "True"
    );
    let (_, events) = send(
        &kc,
        "GET",
        "/api/v1/namespaces/demo/events?fieldSelector=involvedObject.name%3Dweb",
        None,
    )
    .await;
    let messages: Vec<&str> = events["items"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["reason"] == "SuccessfulRescale")
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        messages.iter().any(|m| m.starts_with("New size: ")
            && m.ends_with(
                "; reason: cpu resource utilization (percentage of request) above target"
            )),
        "{messages:?}"
    );

    // Load falls: held for the stabilisation window, then back to the minimum.
    ok(&c, &["patch", "deploy", "web", "-n", "demo", "--type=merge", "-p",
        r#"{"spec":{"template":{"metadata":{"annotations":{"sim.mooring.dev/cpu-utilization":"5"}}}}}"#], None).await;
    eventually(30, "scale-down is stabilized first", || async {
        let (_, h) = send(&kc, "GET", &format!("{HPA_V2}/web"), None).await;
        condition(&h, "AbleToScale")
            .is_some_and(|c| c["reason"] == "ScaleDownStabilized")
            .then_some(())
    })
    .await;
    assert_eq!(replicas(&kc, deploy).await, 5);
    eventually(60, "the HPA scales web back to 2", || async {
        (replicas(&kc, deploy).await == 2).then_some(())
    })
    .await;
    let (_, v1) = send(&kc, "GET", &format!("{HPA_V1}/web"), None).await;
    assert!(
        v1["status"]["currentCPUUtilizationPercentage"]
            .as_i64()
            .is_some_and(|u| u < 10),
        "{v1}"
    );
    c.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hpa_targets_statefulsets_on_request_rate_and_reports_failures() {
    let c = start(None).await;
    let kc = client(&c).await;
    ok(
        &c,
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: Namespace\nmetadata: {name: demo}\n"),
    )
    .await;
    let sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "demo"},
        "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
            "podManagementPolicy": "Parallel",
            "template": {"metadata": {"labels": {"app": "db"}, "annotations": {"sim.mooring.dev/request-rate": "12"}},
                "spec": {"containers": [{"name": "db", "image": "postgres:16"}]}}}});
    let (code, v) = send(
        &kc,
        "POST",
        "/apis/apps/v1/namespaces/demo/statefulsets",
        Some(sts),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    let hpa =
        |name: &str, kind: &str, api: &str, target: &str, metrics: Value, min: i64, max: i64| {
            json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name, "namespace": "demo"},
            "spec": {"scaleTargetRef": {"apiVersion": api, "kind": kind, "name": target},
                "minReplicas": min, "maxReplicas": max, "metrics": metrics}})
        };
    let rps = json!([{"type": "Pods", "pods": {"metric": {"name": "http_requests_per_second"},
        "target": {"type": "AverageValue", "averageValue": "5"}}}]);
    // 12 req/s per Pod against 5: more Pods, up to the maximum.
    let (code, v) = send(
        &kc,
        "POST",
        HPA_V2,
        Some(hpa("db", "StatefulSet", "apps/v1", "db", rps.clone(), 1, 3)),
    )
    .await;
    assert_eq!(code, 200, "{v}");
    let path = "/apis/apps/v1/namespaces/demo/statefulsets/db";
    eventually(60, "the StatefulSet is scaled to 3", || async {
        (replicas(&kc, path).await == 3).then_some(())
    })
    .await;
    let h = eventually(30, "ScalingLimited TooManyReplicas", || async {
        let (_, h) = send(&kc, "GET", &format!("{HPA_V2}/db"), None).await;
        condition(&h, "ScalingLimited")
            .is_some_and(|c| c["reason"] == "TooManyReplicas")
            .then_some(h)
    })
    .await;
    assert_eq!(
        h["status"]["currentMetrics"][0]["pods"]["metric"]["name"],
        "http_requests_per_second"
    );

    // A target without a scale subresource, and a missing target: AbleToScale False.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "demo"}});
    send(&kc, "POST", "/api/v1/namespaces/demo/configmaps", Some(cm)).await;
    for (name, kind, api, target) in [
        ("cm", "ConfigMap", "v1", "cfg"),
        ("gone", "Deployment", "apps/v1", "nope"),
        ("alien", "Widget", "example.com/v1", "w"),
    ] {
        let (code, v) = send(
            &kc,
            "POST",
            HPA_V2,
            Some(hpa(name, kind, api, target, rps.clone(), 1, 3)),
        )
        .await;
        assert_eq!(code, 200, "{v}");
        eventually(30, &format!("{name}: FailedGetScale"), || async {
            let (_, h) = send(&kc, "GET", &format!("{HPA_V2}/{name}"), None).await;
            condition(&h, "AbleToScale")
                .is_some_and(|c| c["status"] == "False" && c["reason"] == "FailedGetScale")
                .then_some(())
        })
        .await;
    }
    // A metric the simulation has no source for: ScalingActive False, nothing scaled.
    let unknown = json!([{"type": "Pods", "pods": {"metric": {"name": "queue_depth"},
        "target": {"type": "AverageValue", "averageValue": "5"}}}]);
    let (code, _) = send(
        &kc,
        "POST",
        HPA_V2,
        Some(hpa("q", "StatefulSet", "apps/v1", "db", unknown, 1, 3)),
    )
    .await;
    assert_eq!(code, 200);
    eventually(30, "q: FailedGetPodsMetric", || async {
        let (_, h) = send(&kc, "GET", &format!("{HPA_V2}/q"), None).await;
        condition(&h, "ScalingActive")
            .is_some_and(|c| c["status"] == "False" && c["reason"] == "FailedGetPodsMetric")
            .then_some(())
    })
    .await;

    // Invalid HPAs are 422 and nothing is stored.
    let before = c.api.store.count("autoscaling/horizontalpodautoscalers");
    let cpu = json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}]);
    let bad_util = json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 0}}}]);
    let bad_type = json!([{"type": "Sideways"}]);
    for (what, body, path) in [
        (
            "min > max",
            hpa("x1", "Deployment", "apps/v1", "web", cpu.clone(), 5, 2),
            HPA_V2,
        ),
        (
            "max 0",
            hpa("x2", "Deployment", "apps/v1", "web", cpu.clone(), 1, 0),
            HPA_V2,
        ),
        (
            "min 0",
            hpa("x3", "Deployment", "apps/v1", "web", cpu.clone(), 0, 3),
            HPA_V2,
        ),
        (
            "no target name",
            hpa("x4", "Deployment", "apps/v1", "", cpu.clone(), 1, 3),
            HPA_V2,
        ),
        (
            "zero utilization",
            hpa("x5", "Deployment", "apps/v1", "web", bad_util, 1, 3),
            HPA_V2,
        ),
        (
            "unknown metric type",
            hpa("x6", "Deployment", "apps/v1", "web", bad_type, 1, 3),
            HPA_V2,
        ),
        (
            "absurd behavior",
            {
                let mut h = hpa("x8", "Deployment", "apps/v1", "web", cpu.clone(), 1, 3);
                h["spec"]["behavior"] = json!({"scaleUp": {"stabilizationWindowSeconds": -1,
                    "policies": [{"type": "Pods", "value": 1_000_000_000, "periodSeconds": 0}]}});
                h
            },
            HPA_V2,
        ),
        (
            "v1 min > max",
            json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "x7"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"},
            "minReplicas": 4, "maxReplicas": 3, "targetCPUUtilizationPercentage": 50}}),
            HPA_V1,
        ),
    ] {
        let (code, v) = send(&kc, "POST", path, Some(body)).await;
        assert_eq!(
            (code, v["reason"].as_str()),
            (422, Some("Invalid")),
            "{what}: {v}"
        );
    }
    let (_, v) = send(
        &kc,
        "POST",
        HPA_V2,
        Some(hpa("x1", "Deployment", "apps/v1", "web", cpu, 5, 2)),
    )
    .await;
    assert!(
        v["message"]
            .as_str()
            .unwrap_or_default()
            .contains("must be greater than or equal to `minReplicas`"),
        "{v}"
    );
    assert_eq!(
        c.api.store.count("autoscaling/horizontalpodautoscalers"),
        before
    );
    c.stop();
}
