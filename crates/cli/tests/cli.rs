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
