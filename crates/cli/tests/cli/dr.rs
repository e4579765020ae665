//! `mooring dr …` against an embedded cluster with Mooring's CRDs, a plan written by
//! hand and no controller: `validate` runs the checks from the CLI process (the standby
//! cluster reached through its Argo CD cluster Secret, loopback opened by the admin in
//! `mooring-cm`) and exits 1 on a stopped feature store; `failover`, `failback` and
//! `drill` write `status.request` or refuse; `--wait` follows a status the test writes
//! as the controller would, and `drill -o json` prints the report from its ConfigMap.

use crate::{apply_eventually, kubectl_ok, mooring, start_cluster_with, BinCluster};
use mooring_core::dr::{DisasterRecoveryPlan, DrOperation, DrillState, StepStatus};
use mooring_engine::dr::report::{DrillReport, REPORT_JSON_KEY};
use mooring_testkit::receiver::HttpReceiver;
use serde_json::{json, Value};
use std::io::Read;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn code(o: &Output) -> (Option<i32>, String, String) {
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A loopback /24 for this process's load balancers, leased by holding
/// 127.0.0.1:(47400 + k) (the controller's DR tests lease 127.0.130-229 the same way).
fn lease_range() -> (std::net::TcpListener, String) {
    for k in 0..20u16 {
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", 47_400 + k)) {
            return (l, format!("127.0.{}.0/24", 230 + k));
        }
    }
    panic!("no free load-balancer range (20 CLI DR test processes at once?)");
}

fn plan_yaml(receiver: &str) -> String {
    format!(
        r#"apiVersion: mooring.dev/v1alpha1
kind: DisasterRecoveryPlan
metadata: {{name: ml-platform, namespace: argocd}}
spec:
  primary: {{cluster: in-cluster, region: us-west-2}}
  standby: {{cluster: eu-west-1, region: eu-west-1}}
  applications:
    pairs:
    - {{primary: ml-platform-primary, standby: ml-platform-dr}}
  validation:
    checks:
    - name: inference-health
      http: {{url: "{receiver}"}}
    - name: feature-store
      tcp: {{service: {{namespace: feature-store, name: redis}}, port: 6379}}
  objectives: {{rto: 15m, rpo: 5m}}
---
apiVersion: mooring.dev/v1alpha1
kind: DisasterRecoveryPlan
metadata: {{name: serving, namespace: argocd}}
spec:
  primary: {{cluster: in-cluster}}
  standby: {{cluster: eu-west-1}}
  applications:
    pairs:
    - {{primary: inference-primary, standby: inference-dr}}
  validation:
    checks:
    - name: inference-health
      http: {{url: "{receiver}"}}
"#
    )
}

const FEATURE_STORE: &str = "apiVersion: v1
kind: Namespace
metadata: {name: feature-store}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: redis, namespace: feature-store}
spec:
  replicas: 0
  serviceName: redis
  selector: {matchLabels: {app: redis}}
  template:
    metadata: {labels: {app: redis}}
    spec:
      containers:
      - {name: redis, image: redis:7, ports: [{containerPort: 6379}]}
---
apiVersion: v1
kind: Service
metadata: {name: redis, namespace: feature-store}
spec:
  type: LoadBalancer
  selector: {app: redis}
  ports: [{port: 6379}]
";

fn plan(kc: &str, name: &str) -> Value {
    serde_json::from_str(&kubectl_ok(
        kc,
        &[
            "get",
            "disasterrecoveryplan",
            name,
            "-n",
            "argocd",
            "-o",
            "json",
        ],
        None,
    ))
    .expect("json")
}

fn set_status(kc: &str, name: &str, status: Value) {
    let mut patch = json!({ "status": status });
    if let Some(old) = plan(kc, name)["status"].as_object() {
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
            "disasterrecoveryplan",
            name,
            "-n",
            "argocd",
            "--subresource=status",
            "--type=merge",
            "-p",
            &patch.to_string(),
        ],
        None,
    );
}

/// Wait until the plan's `status.request` is written; it.
fn wait_request(kc: &str, name: &str) -> Value {
    let start = Instant::now();
    loop {
        let r = plan(kc, name)["status"]["request"].clone();
        if !r.is_null() {
            return r;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no request written"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn spawn(kc: &str, args: &[&str]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_mooring"))
        .args(args)
        .args(["--kubeconfig", kc])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mooring runs")
}

fn finish(mut child: std::process::Child) -> (Option<i32>, String, String) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let (mut out, mut err) = (String::new(), String::new());
            if let Some(mut s) = child.stdout.take() {
                let _ = s.read_to_string(&mut out);
            }
            if let Some(mut s) = child.stderr.take() {
                let _ = s.read_to_string(&mut err);
            }
            return (status.code(), out, err);
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("mooring dr did not finish");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn step(name: &str, phase: &str, started: &str, finished: Option<&str>) -> StepStatus {
    StepStatus {
        name: name.into(),
        phase: phase.into(),
        started_at: Some(started.into()),
        finished_at: finished.map(str::to_string),
        message: String::new(),
    }
}

#[test]
fn dr_commands_validate_request_and_follow() {
    let dir = tempfile::tempdir().expect("tmp");
    // The standby region is this same cluster, registered as `eu-west-1` by its Secret.
    // Load-balancer addresses are real sockets: a range no other test process uses.
    let (_lease, range) = lease_range();
    let (child, kc) =
        start_cluster_with("eu-west-1", dir.path(), &["--load-balancer-range", &range]);
    let c = BinCluster {
        child,
        kc,
        _dir: dir,
    };
    let kc = c.kc.as_str();
    let crds = String::from_utf8_lossy(
        &Command::new(env!("CARGO_BIN_EXE_mooring"))
            .arg("crds")
            .output()
            .expect("mooring crds")
            .stdout,
    )
    .into_owned();
    apply_eventually(kc, &crds);
    let (rc, out, err) = code(&mooring(kc, &["cluster", "add", "eu-west-1", "--from", kc]));
    assert_eq!(rc, Some(0), "{out}{err}");
    let receiver = HttpReceiver::start_answering(200, "ok").expect("receiver");
    apply_eventually(kc, &plan_yaml(&receiver.url("/health")));

    // Loopback is refused until the admin opens it.
    let (rc, out, _) = code(&mooring(
        kc,
        &["dr", "validate", "serving", "--side", "standby"],
    ));
    assert_eq!(rc, Some(1), "{out}");
    assert!(
        out.contains("❌ inference-health") && out.contains("refused"),
        "{out}"
    );
    apply_eventually(
        kc,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: mooring-cm, namespace: argocd}\ndata: {outbound.allow: 127.0.0.1}\n",
    );
    let (rc, out, err) = code(&mooring(
        kc,
        &["dr", "validate", "serving", "--side", "standby"],
    ));
    assert_eq!(rc, Some(0), "{out}{err}");
    assert!(
        out.contains("✅ inference-health: GET http://127.0.0.1:"),
        "{out}"
    );
    assert!(out.contains("1/1 checks passed"), "{out}");

    // A stopped feature store: ❌ and exit 1, in the report and in JSON.
    let (rc, out, _) = code(&mooring(
        kc,
        &["dr", "validate", "ml-platform", "--side", "standby"],
    ));
    assert_eq!(rc, Some(1), "{out}");
    assert!(
        out.contains("Validating the standby side of ml-platform (eu-west-1 (eu-west-1))"),
        "{out}"
    );
    assert!(out.contains("✅ inference-health"), "{out}");
    assert!(
        out.contains(
            "❌ feature-store: Service feature-store/redis does not exist on cluster eu-west-1"
        ),
        "{out}"
    );
    assert!(
        out.contains("1/2 checks passed: validation FAILED"),
        "{out}"
    );
    let (rc, out, _) = code(&mooring(
        kc,
        &["dr", "validate", "ml-platform", "-o", "json"],
    ));
    assert_eq!(rc, Some(1));
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["side"], "primary", "the active side by default");
    assert_eq!(v["passed"], false);
    assert_eq!(v["checks"][1]["name"], "feature-store");
    assert_eq!(v["checks"][1]["passed"], false);
    assert!(v["checks"][1]["checkedAt"].is_string());
    // The primary side is in-cluster: no Secret needed; the Service is missing there too.
    assert!(v["checks"][1]["message"]
        .as_str()
        .is_some_and(|m| m.contains("on cluster in-cluster")));

    // The feature store exists but is stopped (StatefulSet scaled to 0): its load
    // balancer does not answer.
    apply_eventually(kc, FEATURE_STORE);
    apply_eventually(
        kc,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: mooring-cm, namespace: argocd}\ndata: {outbound.allow: 127.0.0.0/8}\n",
    );
    let start = Instant::now();
    loop {
        let (rc, out, _) = code(&mooring(
            kc,
            &["dr", "validate", "ml-platform", "--side", "standby"],
        ));
        if !out.contains("does not exist") && !out.contains("has no load-balancer address") {
            assert_eq!(rc, Some(1), "{out}");
            assert!(out.contains("✅ inference-health"), "{out}");
            assert!(out.contains("❌ feature-store: connecting to "), "{out}");
            assert!(out.contains(":6379"), "{out}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{out}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // PromQL checks go to the controller's Prometheus, found in mooring-cm as `mooring
    // up` records it (`prometheus.address`).
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let prom_dir = tempfile::tempdir().expect("tmp");
    let prom = rt
        .block_on(mooring_controller::prometheus::LocalPrometheus::start(
            mooring_controller::prometheus::LocalPrometheusOptions {
                binary: None,
                data_dir: prom_dir.path().to_path_buf(),
                listen: None,
                scrape_interval: Duration::from_secs(1),
                clusters: vec![],
            },
        ))
        .expect("prometheus starts (Debian: apt-get install prometheus)");
    apply_eventually(
        kc,
        "apiVersion: mooring.dev/v1alpha1\nkind: DisasterRecoveryPlan\nmetadata: {name: metrics, namespace: argocd}\nspec:\n  primary: {cluster: in-cluster}\n  standby: {cluster: eu-west-1}\n  applications: {pairs: [{primary: a, standby: b}]}\n  validation:\n    checks:\n    - {name: up, prometheus: {query: vector(1)}}\n",
    );
    let (rc, out, _) = code(&mooring(kc, &["dr", "validate", "metrics"]));
    assert_eq!(rc, Some(1), "{out}");
    assert!(out.contains("❌ up: no Prometheus address"), "{out}");
    apply_eventually(
        kc,
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: mooring-cm, namespace: argocd}}\ndata: {{outbound.allow: 127.0.0.0/8, prometheus.address: \"{}\"}}\n",
            prom.url()
        ),
    );
    let (rc, out, err) = code(&mooring(kc, &["dr", "validate", "metrics"]));
    assert_eq!(rc, Some(0), "{out}{err}");
    assert!(out.contains("✅ up: vector(1) = 1"), "{out}");
    drop(prom);

    // Requests: usage errors and refusals exit 2 and say why.
    let (rc, _, err) = code(&mooring(kc, &["dr", "validate", "nope"]));
    assert_eq!(rc, Some(2));
    assert!(
        err.contains("no DisasterRecoveryPlan named \"nope\""),
        "{err}"
    );
    let (rc, _, err) = code(&mooring(kc, &["dr", "failback", "ml-platform"]));
    assert_eq!(rc, Some(2));
    assert!(
        err.contains("the plan is PrimaryActive; a failback needs it StandbyActive"),
        "{err}"
    );
    let (rc, _, err) = code(&mooring(kc, &["dr", "failover", "ml-platform"]));
    assert_eq!(rc, Some(2), "--incident is required: {err}");
    let (rc, out, err) = code(&mooring(
        kc,
        &["dr", "failover", "ml-platform", "--incident", "INC-7"],
    ));
    assert_eq!(rc, Some(0), "{out}{err}");
    let req = plan(kc, "ml-platform")["status"]["request"].clone();
    assert_eq!(req["kind"], "Failover");
    assert_eq!(req["incident"], "INC-7");
    assert!(
        req["requestedAt"].is_string() && req["requestedBy"].is_string(),
        "{req}"
    );
    let (rc, _, err) = code(&mooring(kc, &["dr", "drill", "ml-platform", "--no-wait"]));
    assert_eq!(rc, Some(2));
    assert!(
        err.contains("a Failover request (INC-7) is already pending"),
        "{err}"
    );

    // --wait follows the steps the controller records, to the end.
    set_status(kc, "ml-platform", json!({"phase": "PrimaryActive"}));
    let waiting = spawn(
        kc,
        &[
            "dr",
            "failover",
            "ml-platform",
            "--incident",
            "INC-8",
            "--wait",
            "--timeout",
            "60",
        ],
    );
    let req = wait_request(kc, "ml-platform");
    let t0 = req["requestedAt"]
        .as_str()
        .expect("requestedAt")
        .to_string();
    let mut op = DrOperation {
        kind: "Failover".into(),
        incident: "INC-8".into(),
        trigger: "manual".into(),
        started_at: t0.clone(),
        phase: "Running".into(),
        steps: vec![
            step("freeze", "Succeeded", &t0, Some(&t0)),
            step("sync/ml-platform-dr", "Running", &t0, None),
        ],
        ..Default::default()
    };
    set_status(
        kc,
        "ml-platform",
        json!({"phase": "FailingOver", "operation": op}),
    );
    // Another request while it runs is refused.
    let (rc, _, err) = code(&mooring(kc, &["dr", "drill", "ml-platform", "--no-wait"]));
    assert_eq!(rc, Some(2));
    assert!(err.contains("a Failover (INC-8) is running"), "{err}");
    std::thread::sleep(Duration::from_millis(800));
    op.steps[1] = step("sync/ml-platform-dr", "Succeeded", &t0, Some(&t0));
    op.steps.push(step("validate", "Succeeded", &t0, Some(&t0)));
    op.phase = "Succeeded".into();
    op.finished_at = Some(t0.clone());
    op.rto_seconds = Some(12.5);
    set_status(
        kc,
        "ml-platform",
        json!({"phase": "StandbyActive", "operation": op,
               "lastFailover": {"incident": "INC-8", "startedAt": t0, "finishedAt": t0,
                                "passed": true, "rtoSeconds": 12.5, "rpoSeconds": 0.0}}),
    );
    let (rc, out, err) = finish(waiting);
    assert_eq!(rc, Some(0), "{out}{err}");
    assert!(err.contains("▶ sync/ml-platform-dr"), "{err}");
    assert!(err.contains("✔ freeze Succeeded"), "{err}");
    assert!(err.contains("✔ validate Succeeded"), "{err}");
    assert!(out.contains("Failover INC-8: Succeeded"), "{out}");
    assert!(out.contains("RTO: 12.5s"), "{out}");

    // Status: the phase and the last failover against the objectives.
    let (rc, out, _) = code(&mooring(kc, &["dr", "status", "ml-platform"]));
    assert_eq!(rc, Some(0));
    assert!(
        out.contains("Phase:        StandbyActive (serving: standby)"),
        "{out}"
    );
    assert!(out.contains("Standby:      eu-west-1 (eu-west-1)"), "{out}");
    assert!(out.contains("sync/ml-platform-dr"), "{out}");
    assert!(
        out.contains("Last failover: INC-8: passed, RTO 12.5s (objective 15m ✅)"),
        "{out}"
    );
    let (_, out, _) = code(&mooring(kc, &["dr", "status", "ml-platform", "-o", "json"]));
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["status"]["phase"], "StandbyActive");
    assert_eq!(v["status"]["lastFailover"]["rtoSeconds"], 12.5);

    // Failback is allowed now; a drill is not (the plan is StandbyActive).
    let (rc, _, err) = code(&mooring(kc, &["dr", "drill", "ml-platform", "--no-wait"]));
    assert_eq!(rc, Some(2));
    assert!(err.contains("a drill needs it PrimaryActive"), "{err}");
    let waiting = spawn(
        kc,
        &["dr", "failback", "ml-platform", "--wait", "--timeout", "60"],
    );
    let req = wait_request(kc, "ml-platform");
    assert_eq!(req["kind"], "Failback");
    assert_eq!(req["incident"], "INC-8", "the last failover's incident");
    // The controller takes the request without starting it, and says why in an Event.
    let event = json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "ml-platform.refused", "namespace": "argocd"},
        "involvedObject": {"apiVersion": "mooring.dev/v1alpha1", "kind": "DisasterRecoveryPlan",
                           "name": "ml-platform", "namespace": "argocd"},
        "reason": "RequestRefused", "type": "Warning",
        "message": "Failback refused: the plan is not valid: standby cluster \"eu-west-1\" is unreachable"});
    kubectl_ok(kc, &["apply", "-f", "-"], Some(&event.to_string()));
    let mut st = plan(kc, "ml-platform")["status"].clone();
    st["request"] = Value::Null;
    set_status(kc, "ml-platform", st);
    let (rc, out, err) = finish(waiting);
    assert_eq!(rc, Some(1), "{out}{err}");
    assert!(
        err.contains("the controller refused the request: Failback refused: the plan is not valid"),
        "{err}"
    );

    // A drill, followed to its report (JSON from the report ConfigMap).
    set_status(kc, "ml-platform", json!({"phase": "PrimaryActive"}));
    let drilling = spawn(
        kc,
        &[
            "dr",
            "drill",
            "ml-platform",
            "--incident",
            "drill-1",
            "-o",
            "json",
            "--timeout",
            "60",
        ],
    );
    let req = wait_request(kc, "ml-platform");
    assert_eq!(req["kind"], "Drill");
    let t0 = req["requestedAt"]
        .as_str()
        .expect("requestedAt")
        .to_string();
    let mut drill = DrillState {
        incident: "drill-1".into(),
        failure_mode: "scale-to-zero".into(),
        trigger: "manual".into(),
        started_at: t0.clone(),
        stage: "Injecting".into(),
        injected_at: Some(t0.clone()),
        steps: vec![step("inject", "Running", &t0, None)],
        ..Default::default()
    };
    set_status(
        kc,
        "ml-platform",
        json!({"phase": "Drilling", "drill": drill}),
    );
    std::thread::sleep(Duration::from_millis(800));
    drill.steps[0] = step("inject", "Succeeded", &t0, Some(&t0));
    let mut failover = op.clone();
    failover.incident = "drill-1".into();
    failover.trigger = "drill".into();
    drill.failover = Some(failover.clone());
    let mut failback = failover;
    failback.kind = "Failback".into();
    drill.failback = Some(failback);
    drill.stage = "Reporting".into();
    set_status(
        kc,
        "ml-platform",
        json!({"phase": "Drilling", "drill": drill}),
    );
    std::thread::sleep(Duration::from_millis(800));
    let p: DisasterRecoveryPlan = serde_json::from_value(plan(kc, "ml-platform")).expect("plan");
    let report = DrillReport::build(&p, &drill);
    assert!(report.passed, "{:?}", report.failures);
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "ml-platform-drill-1", "namespace": "argocd"},
        "data": {REPORT_JSON_KEY: report.to_json()}});
    kubectl_ok(kc, &["apply", "-f", "-"], Some(&cm.to_string()));
    set_status(
        kc,
        "ml-platform",
        json!({"phase": "PrimaryActive",
               "lastDrill": {"incident": "drill-1", "startedAt": t0, "finishedAt": t0,
                             "passed": true, "rtoSeconds": report.rto_seconds,
                             "report": "ml-platform-drill-1"}}),
    );
    let (rc, out, err) = finish(drilling);
    assert_eq!(rc, Some(0), "{out}{err}");
    assert!(err.contains("✔ inject Succeeded"), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    for key in ["rtoSeconds", "rpoSeconds", "passed", "steps", "validation"] {
        assert!(v.get(key).is_some(), "{key} in {v}");
    }
    assert_eq!(v["passed"], true);
    assert_eq!(v["incident"], "drill-1");
}
