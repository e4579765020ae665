//! `mooring rollout …` against an embedded cluster with the Argo Rollouts CRDs (installed
//! with `mooring crds | kubectl apply`) and a Rollout written by hand with a plausible
//! status, two ReplicaSets and an AnalysisRun: each command's effect on the object,
//! `-o json`, and the errors for missing objects and bad arguments. No rollout
//! controller runs: the commands only write Argo's public fields.

use crate::{apply_eventually, kubectl_ok, mooring, BinCluster};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

fn ok(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Exit code 2 and the stderr.
fn fails(o: &Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(2),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn live(kc: &str) -> Value {
    serde_json::from_str(&kubectl_ok(
        kc,
        &["get", "rollout", "ml-model-serving", "-o", "json"],
        None,
    ))
    .expect("json")
}

fn set_status(kc: &str, status: Value) {
    // Replace the whole status: null out what is there first.
    let mut patch = json!({"status": status});
    if let Some(old) = live(kc)["status"].as_object() {
        for k in old.keys() {
            if patch["status"].get(k).is_none() {
                patch["status"][k] = Value::Null;
            }
        }
    }
    kubectl_ok(
        kc,
        &[
            "patch",
            "rollout",
            "ml-model-serving",
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch.to_string(),
        ],
        None,
    );
}

const ROLLOUT: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: ml-model-serving
  namespace: default
  annotations: {rollout.argoproj.io/revision: "2"}
spec:
  replicas: 4
  selector: {matchLabels: {app: ml-model-serving}}
  template:
    metadata:
      labels: {app: ml-model-serving}
      annotations: {sim.mooring.dev/accuracy: "0.80"}
    spec:
      containers:
      - {name: server, image: "registry.ml.example.com/models/fraud-detector:1.5.0"}
  strategy:
    canary:
      stableService: ml-model-serving
      canaryService: ml-model-serving-canary
      steps:
      - setWeight: 10
      - pause: {}
      - analysis: {templates: [{templateName: model-performance-analysis}]}
      - setWeight: 50
      - pause: {duration: 2m}
"#;

fn replica_set(uid: &str, revision: u32, hash: &str, image: &str, replicas: u32) -> String {
    format!(
        r#"
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: ml-model-serving-{hash}
  namespace: default
  labels: {{app: ml-model-serving, rollouts-pod-template-hash: {hash}}}
  annotations: {{rollout.argoproj.io/revision: "{revision}"}}
  ownerReferences:
  - {{apiVersion: argoproj.io/v1alpha1, kind: Rollout, name: ml-model-serving, uid: {uid}, controller: true}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: ml-model-serving, rollouts-pod-template-hash: {hash}}}}}
  template:
    metadata:
      labels: {{app: ml-model-serving, rollouts-pod-template-hash: {hash}}}
      annotations: {{sim.mooring.dev/accuracy: "0.95"}}
    spec:
      containers:
      - {{name: server, image: "{image}"}}
"#
    )
}

fn paused_status(generation: i64) -> Value {
    json!({
        "observedGeneration": generation.to_string(),
        "phase": "Paused", "message": "CanaryPauseStep",
        "currentStepIndex": 1, "stableRS": "5a4b3c2d1", "currentPodHash": "6b7c9d4f5",
        "replicas": 4, "updatedReplicas": 1, "readyReplicas": 4, "availableReplicas": 4,
        "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2026-01-01T00:00:00Z"}],
        "selector": "app=ml-model-serving",
    })
}

fn generation(kc: &str) -> i64 {
    live(kc)["metadata"]["generation"]
        .as_i64()
        .expect("generation")
}

#[test]
fn rollout_commands_write_argos_control_fields() {
    let c = BinCluster::start();
    let kc = c.kc.as_str();
    // The CRDs as `mooring crds` prints them.
    let crds = ok(&Command::new(env!("CARGO_BIN_EXE_mooring"))
        .arg("crds")
        .output()
        .expect("mooring crds"));
    assert!(crds.contains("rollouts.argoproj.io"));
    apply_eventually(kc, &crds);
    apply_eventually(kc, ROLLOUT);
    let uid = live(kc)["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_string();
    apply_eventually(
        kc,
        &replica_set(
            &uid,
            1,
            "5a4b3c2d1",
            "registry.ml.example.com/models/fraud-detector:1.4.2",
            3,
        ),
    );
    apply_eventually(
        kc,
        &replica_set(
            &uid,
            2,
            "6b7c9d4f5",
            "registry.ml.example.com/models/fraud-detector:1.5.0",
            1,
        ),
    );
    apply_eventually(
        kc,
        &format!(
            r#"
apiVersion: argoproj.io/v1alpha1
kind: AnalysisRun
metadata:
  name: ml-model-serving-6b7c9d4f5-2-2
  namespace: default
  labels: {{rollouts-pod-template-hash: 6b7c9d4f5}}
  annotations: {{rollout.argoproj.io/revision: "2"}}
  ownerReferences:
  - {{apiVersion: argoproj.io/v1alpha1, kind: Rollout, name: ml-model-serving, uid: {uid}, controller: true}}
spec:
  metrics: [{{name: success-rate, provider: {{prometheus: {{query: up}}}}}}]
"#
        ),
    );
    kubectl_ok(
        kc,
        &[
            "patch",
            "analysisrun",
            "ml-model-serving-6b7c9d4f5-2-2",
            "--subresource=status",
            "--type=merge",
            "-p",
            r#"{"status":{"phase":"Running","metricResults":[{"name":"success-rate","phase":"Running","count":2,"successful":2}]}}"#,
        ],
        None,
    );
    set_status(kc, paused_status(generation(kc)));

    // The CRD's scale subresource, as `kubectl scale` and HPAs use it.
    kubectl_ok(
        kc,
        &["scale", "rollout", "ml-model-serving", "--replicas", "5"],
        None,
    );
    assert_eq!(live(kc)["spec"]["replicas"], 5);
    kubectl_ok(
        kc,
        &["scale", "rollout", "ml-model-serving", "--replicas", "4"],
        None,
    );
    set_status(kc, paused_status(generation(kc)));

    // list and get, as tables and JSON.
    let table = ok(&mooring(kc, &["rollout", "list"]));
    let header = table.lines().next().expect("header");
    for col in [
        "NAME",
        "STRATEGY",
        "STATUS",
        "STEP",
        "SET-WEIGHT",
        "READY",
        "DESIRED",
        "UP-TO-DATE",
        "AVAILABLE",
    ] {
        assert!(header.contains(col), "{table}");
    }
    assert!(
        table.contains("ml-model-serving") && table.contains("Paused") && table.contains("1/5"),
        "{table}"
    );
    let list: Value =
        serde_json::from_str(&ok(&mooring(kc, &["rollout", "list", "-o", "json"]))).expect("json");
    assert_eq!(list[0]["name"], "ml-model-serving");
    assert_eq!(list[0]["setWeight"], 10);
    let all = ok(&mooring(kc, &["rollout", "list", "rollouts", "-A"]));
    assert!(
        all.starts_with("NAMESPACE") && all.contains("default"),
        "{all}"
    );
    let yaml = ok(&mooring(kc, &["rollout", "list", "-o", "yaml"]));
    assert!(yaml.contains("name: ml-model-serving"), "{yaml}");
    let info: Value = serde_json::from_str(&ok(&mooring(
        kc,
        &["rollout", "get", "ml-model-serving", "-o", "json"],
    )))
    .expect("json");
    assert_eq!(info["status"], "Paused");
    assert_eq!(info["message"], "CanaryPauseStep");
    assert_eq!(info["step"], "1/5");
    assert_eq!(info["replicas"]["desired"], 4);
    assert_eq!(
        info["images"],
        json!([
            {"image": "registry.ml.example.com/models/fraud-detector:1.4.2", "tags": ["stable"]},
            {"image": "registry.ml.example.com/models/fraud-detector:1.5.0", "tags": ["canary"]},
        ])
    );
    assert_eq!(info["replicaSets"][0]["revision"], 2);
    assert_eq!(info["analysisRuns"][0]["phase"], "Running");
    assert_eq!(info["analysisRuns"][0]["successful"], 2);
    let same: Value = serde_json::from_str(&ok(&mooring(
        kc,
        &[
            "rollout",
            "get",
            "rollout",
            "ml-model-serving",
            "-o",
            "json",
        ],
    )))
    .expect("json");
    assert_eq!(
        same["name"], info["name"],
        "`get rollout NAME` as in the plugin"
    );
    let tree = ok(&mooring(kc, &["rollout", "get", "ml-model-serving"]));
    for want in [
        "॥ Paused",
        "Step:",
        "SetWeight:",
        "fraud-detector:1.5.0 (canary)",
        "fraud-detector:1.4.2 (stable)",
        "# revision:2",
        "# revision:1",
        "⧉ ml-model-serving-6b7c9d4f5",
        "α ml-model-serving-6b7c9d4f5-2-2",
    ] {
        assert!(tree.contains(want), "{want:?} missing:\n{tree}");
    }

    // promote: first the pause condition goes, then the current step is skipped.
    ok(&mooring(kc, &["rollout", "promote", "ml-model-serving"]));
    let r = live(kc);
    assert!(r["status"].get("pauseConditions").is_none(), "{r}");
    assert_eq!(r["status"]["currentStepIndex"], 1);
    ok(&mooring(kc, &["rollout", "promote", "ml-model-serving"]));
    assert_eq!(live(kc)["status"]["currentStepIndex"], 2);
    // pause / promote through spec.paused.
    ok(&mooring(kc, &["rollout", "pause", "ml-model-serving"]));
    assert_eq!(live(kc)["spec"]["paused"], true);
    ok(&mooring(kc, &["rollout", "promote", "ml-model-serving"]));
    let r = live(kc);
    assert_eq!(r["spec"]["paused"], false);
    assert_eq!(r["status"]["currentStepIndex"], 2, "only unpaused");
    ok(&mooring(
        kc,
        &["rollout", "promote", "ml-model-serving", "--full"],
    ));
    assert_eq!(live(kc)["status"]["promoteFull"], true);

    // abort / retry, and what there is nothing to do for.
    ok(&mooring(kc, &["rollout", "abort", "ml-model-serving"]));
    assert_eq!(live(kc)["status"]["abort"], true);
    assert!(fails(&mooring(kc, &["rollout", "abort", "ml-model-serving"])).contains("retry"));
    assert!(fails(&mooring(kc, &["rollout", "promote", "ml-model-serving"])).contains("retry"));
    ok(&mooring(kc, &["rollout", "retry", "ml-model-serving"]));
    assert_eq!(live(kc)["status"]["abort"], false);
    assert!(
        fails(&mooring(kc, &["rollout", "retry", "ml-model-serving"])).contains("nothing to retry")
    );

    // set-image: one container, or nothing when a name is wrong.
    ok(&mooring(
        kc,
        &[
            "rollout",
            "set-image",
            "ml-model-serving",
            "server=registry.ml.example.com/models/fraud-detector:1.6.0",
        ],
    ));
    let image = |kc: &str| {
        live(kc)["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    assert_eq!(
        image(kc),
        "registry.ml.example.com/models/fraud-detector:1.6.0"
    );
    let e = fails(&mooring(
        kc,
        &[
            "rollout",
            "set-image",
            "ml-model-serving",
            "server=registry.ml.example.com/x:1",
            "sidecar=registry.ml.example.com/y:1",
        ],
    ));
    assert!(
        e.contains("no container \"sidecar\"") && e.contains("containers: server"),
        "{e}"
    );
    assert_eq!(
        image(kc),
        "registry.ml.example.com/models/fraud-detector:1.6.0",
        "nothing half-applied"
    );
    let e = fails(&mooring(
        kc,
        &["rollout", "set-image", "ml-model-serving", "server"],
    ));
    assert!(e.contains("CONTAINER=IMAGE"), "{e}");

    // undo: revision 1's pod template, without the hash label.
    ok(&mooring(kc, &["rollout", "undo", "ml-model-serving"]));
    let r = live(kc);
    assert_eq!(
        image(kc),
        "registry.ml.example.com/models/fraud-detector:1.4.2"
    );
    assert_eq!(
        r["spec"]["template"]["metadata"]["labels"],
        json!({"app": "ml-model-serving"})
    );
    assert_eq!(
        r["spec"]["template"]["metadata"]["annotations"]["sim.mooring.dev/accuracy"],
        "0.95"
    );
    let e = fails(&mooring(
        kc,
        &["rollout", "undo", "ml-model-serving", "--to-revision", "7"],
    ));
    assert!(e.contains("no revision 7") && e.contains("1, 2"), "{e}");
    ok(&mooring(
        kc,
        &["rollout", "undo", "ml-model-serving", "--to-revision", "2"],
    ));
    assert_eq!(
        image(kc),
        "registry.ml.example.com/models/fraud-detector:1.5.0"
    );

    // Fully promoted: nothing to abort; watch ends at once with 0.
    set_status(
        kc,
        json!({
            "observedGeneration": generation(kc).to_string(), "phase": "Healthy",
            "currentStepIndex": 5, "stableRS": "6b7c9d4f5", "currentPodHash": "6b7c9d4f5",
            "replicas": 4, "updatedReplicas": 4, "readyReplicas": 4, "availableReplicas": 4,
        }),
    );
    assert!(
        fails(&mooring(kc, &["rollout", "abort", "ml-model-serving"])).contains("nothing to abort")
    );
    let w = mooring(
        kc,
        &["rollout", "watch", "ml-model-serving", "--timeout", "120"],
    );
    assert!(ok(&w).contains("✔ Healthy"));
    let st = mooring(
        kc,
        &["rollout", "status", "ml-model-serving", "--timeout", "2m"],
    );
    assert_eq!(ok(&st).trim(), "Healthy");
    let e = fails(&mooring(
        kc,
        &["rollout", "status", "ml-model-serving", "--timeout", "soon"],
    ));
    assert!(e.contains("duration"), "{e}");

    // watch reprints on change and exits 1 on a Degraded (aborted) rollout.
    set_status(kc, paused_status(generation(kc)));
    let mut watch = Command::new(env!("CARGO_BIN_EXE_mooring"))
        .args([
            "rollout",
            "watch",
            "ml-model-serving",
            "--timeout",
            "120",
            "-o",
            "json",
            "--kubeconfig",
            kc,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("watch");
    let mut out = BufReader::new(watch.stdout.take().expect("stdout")).lines();
    let first: Value =
        serde_json::from_str(&out.next().expect("a first view").expect("line")).expect("json line");
    assert_eq!(first["status"], "Paused");
    set_status(
        kc,
        json!({
            "observedGeneration": generation(kc).to_string(), "phase": "Degraded", "abort": true,
            "message": "RolloutAborted: Rollout aborted update to revision 2: Metric \"success-rate\" assessed Failed due to failed (1) > failureLimit (0)",
            "currentStepIndex": 0, "stableRS": "5a4b3c2d1", "currentPodHash": "6b7c9d4f5",
        }),
    );
    let rest: Vec<Value> = out
        .map_while(Result::ok)
        .map(|l| serde_json::from_str(&l).expect("json line"))
        .collect();
    let status = watch.wait().expect("watch ends");
    assert_eq!(status.code(), Some(1));
    let last = rest.last().expect("the aborted rollout was printed");
    assert_eq!(last["status"], "Degraded");
    assert_eq!(last["setWeight"], 0);

    // Not found, wrong namespace, unknown cluster.
    let e = fails(&mooring(kc, &["rollout", "get", "nope"]));
    assert!(
        e.contains("\"nope\" not found") && e.contains("rollouts there: ml-model-serving"),
        "{e}"
    );
    let e = fails(&mooring(
        kc,
        &["rollout", "promote", "nope", "-n", "ml-other"],
    ));
    assert!(e.contains("no rollouts there"), "{e}");
    let o = mooring(kc, &["rollout", "list", "-n", "ml-other", "-o", "json"]);
    assert_eq!(ok(&o).trim(), "[]");
    let e = fails(&mooring(
        kc,
        &["rollout", "list", "--cluster", "gpu-nowhere"],
    ));
    assert!(
        e.contains("no registered cluster named \"gpu-nowhere\""),
        "{e}"
    );
    let e = fails(&mooring(kc, &["rollout", "get", "x", "-o", "xml"]));
    assert!(e.contains("xml"), "{e}");
}

/// Without the Argo Rollouts CRDs the commands say how to install them; `--cluster`
/// reaches a registered destination cluster that has them.
#[test]
fn rollout_commands_without_the_crds_and_on_a_destination_cluster() {
    let mgmt = BinCluster::start();
    let e = fails(&mooring(&mgmt.kc, &["rollout", "list"]));
    assert!(e.contains("mooring crds"), "{e}");
    let e = fails(&mooring(&mgmt.kc, &["rollout", "abort", "x"]));
    assert!(e.contains("Argo Rollouts CRDs"), "{e}");

    let gpu = BinCluster::start();
    let crds = ok(&Command::new(env!("CARGO_BIN_EXE_mooring"))
        .arg("crds")
        .output()
        .expect("mooring crds"));
    apply_eventually(&gpu.kc, &crds);
    apply_eventually(&gpu.kc, ROLLOUT);
    ok(&mooring(
        &mgmt.kc,
        &["cluster", "add", "--from", &gpu.kc, "--name", "gpu-a"],
    ));
    let list: Value = serde_json::from_str(&ok(&mooring(
        &mgmt.kc,
        &["rollout", "list", "--cluster", "gpu-a", "-o", "json"],
    )))
    .expect("json");
    assert_eq!(list[0]["name"], "ml-model-serving", "{list}");
    ok(&mooring(
        &mgmt.kc,
        &["rollout", "pause", "ml-model-serving", "--cluster", "gpu-a"],
    ));
    assert_eq!(live(&gpu.kc)["spec"]["paused"], true);

    // The traffic routers' CRDs (what tests and demos install next to the Rollout) are
    // accepted and serve both Istio versions and the Gateway API's HTTPRoute.
    for crd in mooring_k8s::crds::traffic_crds() {
        apply_eventually(&gpu.kc, &crd.to_string());
    }
    apply_eventually(
        &gpu.kc,
        r#"
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: ml-model-serving, namespace: default}
spec:
  hosts: [models.example.com]
  http:
  - name: primary
    route:
    - {destination: {host: ml-model-serving}, weight: 100}
    - {destination: {host: ml-model-serving-canary}, weight: 0}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ml-model-serving, namespace: default}
spec:
  host: ml-model-serving
  subsets: [{name: stable}, {name: canary}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ml-model-serving, namespace: default}
spec:
  parentRefs: [{name: gateway}]
  rules:
  - backendRefs:
    - {name: ml-model-serving, port: 80, weight: 100}
    - {name: ml-model-serving-canary, port: 80, weight: 0}
"#,
    );
    for (kind, path) in [
        ("virtualservices.v1.networking.istio.io", "spec.http"),
        (
            "destinationrules.v1beta1.networking.istio.io",
            "spec.subsets",
        ),
        ("httproutes.gateway.networking.k8s.io", "spec.rules"),
    ] {
        let out = kubectl_ok(
            &gpu.kc,
            &[
                "get",
                kind,
                "ml-model-serving",
                "-o",
                &format!("jsonpath={{.{path}}}"),
            ],
            None,
        );
        assert!(
            out.contains("ml-model-serving") || out.contains("stable"),
            "{kind}: {out}"
        );
    }
}
