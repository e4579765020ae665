//! The conformance matrix: the everyday kubectl commands and Python client calls a kind or
//! k3s user types, run against one embedded cluster, in the order a new user would.
//! `docs/compatibility.md` records the same matrix; the test checks that every row it runs
//! is listed there, so the document cannot drift from what is tested.

use crate::kubectl::{kubectl, Out};
use crate::support::start_with;
use mooring_apiserver::{Cluster, ClusterOptions};
use std::time::Duration;

/// A row's check of kubectl's outcome (`Err` says what is wrong).
type Check = Box<dyn Fn(&Out) -> Result<(), String> + Send + Sync>;

/// One row: the command as the docs show it, the kubectl arguments, optional stdin, and a
/// check of the outcome (`Err` says what is wrong).
struct Row {
    shown: &'static str,
    args: Vec<String>,
    stdin: Option<String>,
    env: Vec<(&'static str, String)>,
    check: Check,
}

fn row(
    shown: &'static str,
    check: impl Fn(&Out) -> Result<(), String> + Send + Sync + 'static,
) -> Row {
    let args = shown
        .strip_prefix("kubectl ")
        .unwrap_or(shown)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    Row {
        shown,
        args,
        stdin: None,
        env: vec![],
        check: Box::new(check),
    }
}

fn succeeds(o: &Out) -> Result<(), String> {
    if o.ok {
        Ok(())
    } else {
        Err(format!("failed: {}{}", o.stdout, o.stderr))
    }
}

fn prints(needles: &'static [&'static str]) -> impl Fn(&Out) -> Result<(), String> + Send + Sync {
    move |o| {
        succeeds(o)?;
        for n in needles {
            if !o.stdout.contains(n) {
                return Err(format!("output lacks {n:?}:\n{}{}", o.stdout, o.stderr));
            }
        }
        Ok(())
    }
}

async fn run(c: &Cluster, r: &Row) -> Out {
    let args: Vec<&str> = r.args.iter().map(String::as_str).collect();
    if r.env.is_empty() {
        return kubectl(c, &args, r.stdin.as_deref()).await;
    }
    let mut cmd = tokio::process::Command::new("kubectl");
    cmd.args(&args)
        .env("KUBECONFIG", c.kubeconfig_path())
        .stdin(std::process::Stdio::null());
    for (k, v) in &r.env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.expect("kubectl runs");
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn compatibility_doc() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/compatibility.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everyday_kubectl_commands_work_against_the_embedded_cluster() {
    let c = start_with(ClusterOptions::default()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let editor = dir.path().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/team: ml/team: platform/' \"$1\"\n",
    )
    .expect("editor script");
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let cronjob_manifest = "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: drill, namespace: demo}\nspec:\n  schedule: '*/5 * * * *'\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          restartPolicy: Never\n          containers: [{name: drill, image: busybox}]\n";

    let mut rows = vec![
        row("kubectl version", prints(&["Server Version"])),
        row("kubectl cluster-info", prints(&["is running at"])),
        row("kubectl api-resources", prints(&["deployments", "cronjobs", "horizontalpodautoscalers", "endpointslices", "selfsubjectaccessreviews"])),
        row("kubectl api-versions", prints(&["apps/v1", "autoscaling/v2", "metrics.k8s.io/v1beta1", "events.k8s.io/v1"])),
        row("kubectl create namespace demo", prints(&["namespace/demo created"])),
        row(
            "kubectl create deployment web --image=nginx --replicas=2 -n demo",
            prints(&["deployment.apps/web created"]),
        ),
        row(
            "kubectl wait --for=condition=Available deploy/web -n demo --timeout=60s",
            prints(&["condition met"]),
        ),
        row("kubectl get deploy,rs,pods -n demo -o wide", prints(&["web", "Running"])),
        row("kubectl describe deploy web -n demo", prints(&["Events:", "ScalingReplicaSet"])),
        row("kubectl logs deploy/web -n demo", |o| {
            succeeds(o)?;
            if o.stdout.trim().is_empty() {
                return Err("empty log".into());
            }
            Ok(())
        }),
        row("kubectl logs deploy/web -n demo --tail=2 --timestamps", |o| {
            succeeds(o)?;
            let lines: Vec<&str> = o.stdout.lines().collect();
            if lines.len() != 2 || !lines.iter().all(|l| l.contains('T') && l.contains('Z')) {
                return Err(format!("want 2 timestamped lines: {:?}", o.stdout));
            }
            Ok(())
        }),
        row("kubectl top pods -n demo", prints(&["CPU(cores)", "MEMORY(bytes)", "web-"])),
        row("kubectl top nodes", prints(&["CPU(cores)", "MEMORY(bytes)"])),
        row(
            "kubectl autoscale deploy web --min=2 --max=5 --cpu-percent=50 -n demo",
            prints(&["horizontalpodautoscaler.autoscaling/web autoscaled"]),
        ),
        row(
            "kubectl expose deploy web --port=80 --target-port=8080 -n demo",
            prints(&["service/web exposed"]),
        ),
        row("kubectl get endpointslices -n demo", prints(&["web-"])),
        row(
            "kubectl create configmap settings --from-literal=team=ml -n demo",
            prints(&["configmap/settings created"]),
        ),
        row(
            "kubectl create secret generic creds --from-literal=token=s3cr3t -n demo",
            prints(&["secret/creds created"]),
        ),
        row(
            "kubectl create secret docker-registry regcred --docker-server=registry.local --docker-username=u --docker-password=p -n demo",
            prints(&["secret/regcred created"]),
        ),
        row(
            "kubectl create cronjob nightly --image=busybox --schedule=0_3_*_*_* -n demo",
            prints(&["cronjob.batch/nightly created"]),
        ),
        row(
            "kubectl create job manual --from=cronjob/nightly -n demo",
            prints(&["job.batch/manual created"]),
        ),
        row("kubectl scale deploy web --replicas=3 -n demo", prints(&["scaled"])),
        row(
            "kubectl set image deploy/web nginx=nginx:1.27 -n demo",
            prints(&["image updated"]),
        ),
        row(
            "kubectl rollout status deploy/web -n demo --timeout=60s",
            prints(&["successfully rolled out"]),
        ),
        row("kubectl rollout history deploy/web -n demo", prints(&["REVISION"])),
        row("kubectl rollout undo deploy/web -n demo", prints(&["rolled back"])),
        row("kubectl rollout restart deploy/web -n demo", prints(&["restarted"])),
        row("kubectl label deploy web tier=serving -n demo", prints(&["labeled"])),
        row("kubectl annotate deploy web owner=ml-platform -n demo", prints(&["annotated"])),
        row(
            "kubectl patch configmap settings -n demo --type=json -p=[{\"op\":\"add\",\"path\":\"/data/region\",\"value\":\"eu\"}]",
            prints(&["patched"]),
        ),
        row(
            "kubectl patch deploy web -n demo --type=merge -p={\"spec\":{\"revisionHistoryLimit\":5}}",
            prints(&["patched"]),
        ),
        row("kubectl edit configmap settings -n demo", prints(&["edited"])),
        row("kubectl get configmap settings -n demo -o jsonpath={.data.team}", prints(&["platform"])),
        row("kubectl apply -f - -n demo", prints(&["cronjob.batch/drill created"])),
        row("kubectl diff -f - -n demo", |o| {
            // Exit 1 with a diff is kubectl's "differences found".
            if o.stdout.contains("*/10") {
                Ok(())
            } else {
                Err(format!("no diff shown: {}{}", o.stdout, o.stderr))
            }
        }),
        row("kubectl apply --server-side --force-conflicts -f - -n demo", prints(&["serverside-applied"])),
        row("kubectl replace --force -f - -n demo", prints(&["deleted", "replaced"])),
        row("kubectl get events -n demo", prints(&["ScalingReplicaSet", "Scheduled"])),
        row("kubectl events --for deploy/web -n demo", prints(&["ScalingReplicaSet"])),
        row("kubectl explain deployment.spec.replicas", prints(&["FIELD: replicas", "Number of desired pods"])),
        row("kubectl auth can-i create deployments -n demo", prints(&["yes"])),
        row("kubectl auth whoami", prints(&["kubernetes-admin"])),
        row("kubectl get pods -n demo --chunk-size=1", prints(&["web-"])),
        row("kubectl delete configmap settings -n demo --wait=false", prints(&["deleted"])),
        row(
            "kubectl wait --for=delete configmap/settings -n demo --timeout=30s",
            |o| if o.ok || o.stderr.contains("not found") { Ok(()) } else { Err(o.stderr.clone()) },
        ),
    ];
    // Rows that need a file, an editor or stdin.
    for r in rows.iter_mut() {
        match r.shown {
            "kubectl edit configmap settings -n demo" => {
                r.env = vec![("KUBE_EDITOR", editor.display().to_string())];
            }
            "kubectl apply -f - -n demo" | "kubectl replace --force -f - -n demo" => {
                r.stdin = Some(cronjob_manifest.to_string());
            }
            "kubectl diff -f - -n demo"
            | "kubectl apply --server-side --force-conflicts -f - -n demo" => {
                r.stdin = Some(cronjob_manifest.replace("*/5", "*/10"));
            }
            s if s.contains("--schedule=") => {
                // `0 3 * * *` has spaces; the table shows it with underscores.
                r.args = r
                    .args
                    .iter()
                    .map(|a| a.replace("--schedule=0_3_*_*_*", "--schedule=0 3 * * *"))
                    .collect();
            }
            _ => {}
        }
    }

    let mut failures = Vec::new();
    for r in &rows {
        let o = run(&c, r).await;
        if let Err(why) = (r.check)(&o) {
            failures.push(format!("{}: {why}", r.shown));
        }
    }

    // `kubectl get -w` and `kubectl logs -f` stream: a change made after they start arrives.
    let watch = streaming_line(
        &c,
        &[
            "get",
            "configmaps",
            "-n",
            "demo",
            "-w",
            "--output-watch-events",
        ],
        &[
            "create",
            "configmap",
            "late",
            "-n",
            "demo",
            "--from-literal=a=b",
        ],
        "late",
    )
    .await;
    if let Err(e) = watch {
        failures.push(format!("kubectl get -w: {e}"));
    }
    if let Err(e) = follows(&c, &["logs", "-f", "deploy/web", "-n", "demo", "--tail=1"]).await {
        failures.push(format!("kubectl logs -f deploy/web: {e}"));
    }

    let doc = compatibility_doc();
    for r in &rows {
        if !doc.contains(r.shown) {
            failures.push(format!("docs/compatibility.md does not list `{}`", r.shown));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

/// Start `stream` (a kubectl that keeps running), then run `trigger`; the stream must print
/// a line containing `want` within 20 s.
async fn streaming_line(
    c: &Cluster,
    stream: &[&str],
    trigger: &[&str],
    want: &str,
) -> Result<(), String> {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = tokio::process::Command::new("kubectl")
        .args(stream)
        .env("KUBECONFIG", c.kubeconfig_path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    // Let the stream start (its first lines are the current state).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = kubectl(c, trigger, None).await;
    if !t.ok {
        return Err(format!("trigger failed: {}", t.stderr));
    }
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(l)) = lines.next_line().await {
            if l.contains(want) {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    let _ = child.kill().await;
    if found {
        Ok(())
    } else {
        Err(format!("no line with {want:?}"))
    }
}

/// `kubectl logs -f`: prints the tail, then keeps following (still running after 2 s) until
/// stopped.
async fn follows(c: &Cluster, args: &[&str]) -> Result<(), String> {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let mut child = tokio::process::Command::new("kubectl")
        .args(args)
        .env("KUBECONFIG", c.kubeconfig_path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .map_err(|_| "no line within 20 s".to_string())?
        .map_err(|e| e.to_string())?;
    if first.is_none() {
        return Err("the stream ended without a line".into());
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let running = child.try_wait().map_err(|e| e.to_string())?.is_none();
    let _ = child.kill().await;
    if running {
        Ok(())
    } else {
        Err("kubectl stopped instead of following".into())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everyday_python_client_calls_work_against_the_embedded_cluster() {
    let c = start_with(ClusterOptions::default()).await;
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/python/everyday.py");
    // python3 with the current kubernetes client (scripts/test installs it from PyPI).
    let python = "python3";
    let has_client = std::process::Command::new(python)
        .args([
            "-c",
            "import kubernetes.client; kubernetes.client.AutoscalingV2Api",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        has_client,
        "python3 lacks the kubernetes client: python3 -m pip install 'kubernetes>=31' (scripts/test does)"
    );
    let out = tokio::process::Command::new(python)
        .arg(&script)
        .arg("py")
        .env("KUBECONFIG", c.kubeconfig_path())
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let results: Vec<serde_json::Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(results.len() >= 15, "{stdout}");
    let failed: Vec<String> = results
        .iter()
        .filter(|r| r["ok"] != true)
        .map(|r| {
            format!(
                "{}: {}\n{}",
                r["call"],
                r["detail"],
                r["trace"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} calls failed:\n{}",
        failed.len(),
        results.len(),
        failed.join("\n")
    );
    let doc = compatibility_doc();
    let undocumented: Vec<&str> = results
        .iter()
        .filter_map(|r| r["call"].as_str())
        .filter(|call| !doc.contains(call))
        .collect();
    assert!(
        undocumented.is_empty(),
        "docs/compatibility.md does not list {undocumented:?}"
    );
}

/// The issue's acceptance chain, command for command: a namespace, a Deployment, wait,
/// logs, top, autoscale — then the simulated load rises and the HPA scales the Deployment up.
/// As on a real cluster, a CPU-utilization HPA needs CPU requests, which `kubectl create
/// deployment` does not set: the HPA says so (`FailedGetResourceMetric`) until `kubectl set
/// resources` adds them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_wait_logs_top_autoscale_and_the_hpa_scales_up_under_load() {
    use crate::kubectl::ok;
    use crate::support::eventually;
    let c = start_with(ClusterOptions::default()).await;
    ok(&c, &["create", "namespace", "demo"], None).await;
    ok(
        &c,
        &[
            "create",
            "deployment",
            "web",
            "--image=nginx",
            "--replicas=2",
            "-n",
            "demo",
        ],
        None,
    )
    .await;
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
    let logs = ok(&c, &["logs", "deploy/web", "-n", "demo"], None).await;
    assert!(!logs.trim().is_empty(), "no logs");
    let top = eventually(30, "kubectl top shows both Pods", || async {
        let o = kubectl(&c, &["top", "pods", "-n", "demo"], None).await;
        (o.ok && o.stdout.matches("web-").count() == 2).then_some(o.stdout)
    })
    .await;
    assert!(top.contains("CPU(cores)"), "{top}");
    let o = ok(
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
    assert!(o.contains("autoscaled"), "{o}");

    // No CPU requests: the HPA cannot compute utilization and says why.
    let events = eventually(30, "the HPA reports the missing request", || async {
        let o = kubectl(
            &c,
            &[
                "get",
                "events",
                "-n",
                "demo",
                "--field-selector=involvedObject.kind=HorizontalPodAutoscaler",
            ],
            None,
        )
        .await;
        o.stdout
            .contains("missing request for cpu")
            .then_some(o.stdout)
    })
    .await;
    assert!(events.contains("FailedGetResourceMetric"), "{events}");
    ok(
        &c,
        &[
            "set",
            "resources",
            "deploy/web",
            "-n",
            "demo",
            "--requests=cpu=100m",
        ],
        None,
    )
    .await;
    ok(
        &c,
        &[
            "rollout",
            "status",
            "deploy/web",
            "-n",
            "demo",
            "--timeout=60s",
        ],
        None,
    )
    .await;

    // The load rises (the simulation's usage annotation on the Pod template): scale up.
    ok(
        &c,
        &["patch", "deploy", "web", "-n", "demo", "--type=merge", "-p",
          r#"{"spec":{"template":{"metadata":{"annotations":{"sim.mooring.dev/cpu-utilization":"90"}}}}}"#],
        None,
    )
    .await;
    eventually(90, "the HPA scales web up to 5", || async {
        let o = kubectl(
            &c,
            &[
                "get",
                "deploy",
                "web",
                "-n",
                "demo",
                "-o",
                "jsonpath={.spec.replicas}",
            ],
            None,
        )
        .await;
        (o.stdout.trim() == "5").then_some(())
    })
    .await;
    let hpa = ok(&c, &["get", "hpa", "web", "-n", "demo"], None).await;
    assert!(
        hpa.contains("Deployment/web") && hpa.contains("/50%"),
        "{hpa}"
    );
    let described = ok(&c, &["describe", "hpa", "web", "-n", "demo"], None).await;
    assert!(described.contains("SuccessfulRescale"), "{described}");
}
