//! The `mooring` binary as a user runs it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn cluster_start_prints_a_working_kubeconfig_and_keeps_data() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_mooring"))
            .args([
                "cluster",
                "start",
                "--name",
                "laptop",
                "--port",
                "0",
                "--data-dir",
            ])
            .arg(&data)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mooring runs")
    };
    let kubeconfig_of = |child: &mut std::process::Child| -> String {
        let out = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(out).lines();
        for line in lines.by_ref() {
            let line = line.expect("line");
            if let Some(p) = line.strip_prefix("kubeconfig: ") {
                // Keep draining so the server never writes to a closed pipe.
                std::thread::spawn(move || lines.for_each(drop));
                return p.to_string();
            }
        }
        panic!("mooring cluster start printed no kubeconfig line");
    };
    let kubectl = |kc: &str, args: &[&str]| {
        let o = Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", kc)
            .output()
            .expect("kubectl must be installed (scripts/test installs it)");
        assert!(
            o.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    };

    let mut child = start();
    let kc = kubeconfig_of(&mut child);
    assert!(kubectl(&kc, &["config", "current-context"]).contains("laptop"));
    kubectl(
        &kc,
        &[
            "create",
            "configmap",
            "kept",
            "--from-literal=a=b",
            "--dry-run=client",
            "-o",
            "yaml",
        ],
    );
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kept}\ndata: {a: b}\n";
    let mut apply = Command::new("kubectl")
        .args(["apply", "-f", "-"])
        .env("KUBECONFIG", &kc)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("kubectl");
    std::io::Write::write_all(&mut apply.stdin.take().expect("stdin"), cm.as_bytes())
        .expect("write");
    assert!(apply.wait().expect("apply").success());
    child.kill().expect("stop");
    let _ = child.wait();

    // A restart on the same data dir serves the same objects.
    let mut child = start();
    let kc = kubeconfig_of(&mut child);
    assert!(kubectl(&kc, &["get", "configmap", "kept", "-o", "name"]).contains("configmap/kept"));
    child.kill().expect("stop");
    let _ = child.wait();
}

#[test]
fn bad_arguments_exit_2_with_a_message() {
    let o = Command::new(env!("CARGO_BIN_EXE_mooring"))
        .args(["cluster", "start", "--speed=0", "--port", "0", "--data-dir"])
        .arg(tempfile::tempdir().expect("tmp").path())
        .output()
        .expect("mooring runs");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--speed"));
}

/// `mooring up` from a clean checkout brings every example application to Synced and
/// Healthy, and the `app` commands report it.
#[test]
fn up_converges_the_example_platform() {
    let data = tempfile::tempdir().expect("tmp");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/ml-platform");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mooring"))
        .args([
            "up",
            example,
            "--port",
            "0",
            "--webhook-port",
            "0",
            "--speed",
            "20",
            "--data-dir",
        ])
        .arg(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mooring up runs");
    let out = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(out).lines();
    let mut kubeconfig = None;
    for line in lines.by_ref() {
        let line = line.expect("line");
        if let Some(p) = line.trim().strip_prefix("kubeconfig  ") {
            kubeconfig = Some(p.trim().to_string());
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    let kc = kubeconfig.expect("mooring up prints its kubeconfig");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    let expected = [
        "ml-platform",
        "model-serving-development",
        "feature-store-development",
        "training-platform-development",
        "inference-service-development",
        "infrastructure-development",
    ];
    let apps = loop {
        let o = Command::new(env!("CARGO_BIN_EXE_mooring"))
            .args(["app", "list", "-o", "json", "--kubeconfig", &kc])
            .output()
            .expect("mooring app list");
        if o.status.success() {
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
            let items = v.as_array().cloned().unwrap_or_default();
            let done = expected.iter().all(|name| {
                items.iter().any(|a| {
                    a["metadata"]["name"] == *name
                        && a["status"]["sync"]["status"] == "Synced"
                        && a["status"]["health"]["status"] == "Healthy"
                })
            });
            if done {
                break items;
            }
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "example apps did not converge: {}",
                String::from_utf8_lossy(&o.stdout)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    assert!(apps.len() >= expected.len());
    let get = Command::new(env!("CARGO_BIN_EXE_mooring"))
        .args([
            "app",
            "get",
            "model-serving-development",
            "--kubeconfig",
            &kc,
        ])
        .output()
        .expect("mooring app get");
    let text = String::from_utf8_lossy(&get.stdout);
    assert!(
        text.contains("Synced") && text.contains("Deployment") && text.contains("model-server"),
        "{text}"
    );
    // As in Argo CD, rollback is refused while automated sync would undo it.
    let rb = Command::new(env!("CARGO_BIN_EXE_mooring"))
        .args([
            "app",
            "rollback",
            "model-serving-development",
            "0",
            "--kubeconfig",
            &kc,
        ])
        .output()
        .expect("mooring app rollback");
    assert_eq!(rb.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&rb.stderr).contains("auto-sync is enabled"));
    let hist = Command::new(env!("CARGO_BIN_EXE_mooring"))
        .args([
            "app",
            "history",
            "model-serving-development",
            "--kubeconfig",
            &kc,
        ])
        .output()
        .expect("mooring app history");
    assert!(String::from_utf8_lossy(&hist.stdout).contains("REVISION"));
    let sync = Command::new(env!("CARGO_BIN_EXE_mooring"))
        .args([
            "app",
            "sync",
            "inference-service-development",
            "--prune",
            "--timeout",
            "60",
            "--kubeconfig",
            &kc,
        ])
        .output()
        .expect("mooring app sync");
    let out = String::from_utf8_lossy(&sync.stdout);
    assert_eq!(
        sync.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&sync.stderr)
    );
    assert!(out.contains("Succeeded"), "{out}");
    let diff = Command::new(env!("CARGO_BIN_EXE_mooring"))
        .args([
            "app",
            "diff",
            "model-serving-development",
            "--kubeconfig",
            &kc,
        ])
        .output()
        .expect("mooring app diff");
    assert_eq!(
        diff.status.code(),
        Some(0),
        "converged: no diff: {}",
        String::from_utf8_lossy(&diff.stdout)
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn health_test_and_crds_commands() {
    let tree = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../engine/tests/fixtures/health/customizations"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_mooring"))
        .args(["health", "test", tree])
        .output()
        .expect("mooring health test");
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "a failing case exits 1: {out}");
    assert!(
        out.contains("9 passed, 1 failed") && out.contains("deliberately_wrong_expectation"),
        "{out}"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_mooring"))
        .args(["health", "test", "/nonexistent/health/tree"])
        .output()
        .expect("mooring health test");
    assert_eq!(o.status.code(), Some(2));

    let o = Command::new(env!("CARGO_BIN_EXE_mooring"))
        .arg("crds")
        .output()
        .expect("mooring crds");
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("kind: CustomResourceDefinition")
            && text.contains("applications.argoproj.io"),
        "{text}"
    );
    assert!(text.contains("repoURL"), "schema generated from the types");
}

#[path = "cli/policy.rs"]
mod policy_cmd;
