//! Split mode (issue 18): `mooring controller` and `mooring server` started separately
//! against an embedded management cluster started by `mooring cluster start`, with the
//! fleet registered by `mooring cluster add` and the manifests applied with kubectl, as
//! an Argo CD admin installs and uses Argo CD. The end-to-end assertions of `mooring up`
//! run on it unchanged; then the components' own contract: usage errors, probes, JSON
//! logs, SIGTERM leaving an operation resumable, HTTPS, and a webhook through the
//! standalone server refreshing an app the standalone controller syncs.

use crate::{apply_eventually, copy_dir, kubectl, kubectl_ok, mooring, start_cluster_with, Proc};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A started component: the process, the address it printed, and its stderr lines.
struct Component {
    proc: Proc,
    addr: String,
    stderr: Arc<Mutex<Vec<String>>>,
}

/// Start `mooring ARGS` and wait for its stdout line starting with `prefix`; the URL in it.
fn start_component(args: &[&str], prefix: &str) -> Component {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mooring"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mooring runs");
    let stderr = Arc::new(Mutex::new(Vec::new()));
    let err = child.stderr.take().expect("stderr");
    let sink = stderr.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            sink.lock().expect("lock").push(line);
        }
    });
    let out = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(out).lines();
    let proc = Proc(child);
    for line in lines.by_ref() {
        let line = line.expect("line");
        if line.starts_with(prefix) {
            let addr = line
                .split_whitespace()
                .find_map(|w| {
                    w.strip_prefix("http://")
                        .or_else(|| w.strip_prefix("https://"))
                })
                .expect("an address")
                .to_string();
            std::thread::spawn(move || lines.for_each(drop));
            return Component { proc, addr, stderr };
        }
    }
    panic!(
        "mooring {args:?} printed no {prefix:?} line: {:?}",
        stderr.lock().expect("lock")
    );
}

fn start_controller(kc: &str, extra: &[&str]) -> Component {
    let mut args = vec![
        "controller",
        "--kubeconfig",
        kc,
        "--metrics-address",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    start_component(&args, "mooring controller: /healthz")
}

fn start_server(kc: &str, extra: &[&str]) -> Component {
    let mut args = vec![
        "server",
        "--kubeconfig",
        kc,
        "--address",
        "127.0.0.1",
        "--port",
        "0",
    ];
    args.extend_from_slice(extra);
    start_component(&args, "mooring server: ")
}

/// `METHOD path` over plain HTTP with a body; the whole answer.
fn http(hostport: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> String {
    let mut s = std::net::TcpStream::connect(hostport).expect("connect");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    )
    .expect("write");
    for (k, v) in headers {
        write!(s, "{k}: {v}\r\n").expect("write");
    }
    write!(s, "\r\n{body}").expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// Poll `f` until it returns `Some`, for at most `secs` seconds.
fn eventually<T>(secs: u64, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Send SIGTERM and wait for the exit status.
fn terminate(c: &mut Component) -> std::process::ExitStatus {
    let pid = c.proc.0.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = c.proc.0.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

use super::git;

/// Mooring's CRDs, applied as an admin would (`mooring crds | kubectl apply -f -`).
fn install_crds(kc: &str) {
    let crds = Command::new(env!("CARGO_BIN_EXE_mooring"))
        .arg("crds")
        .output()
        .expect("mooring crds");
    assert!(crds.status.success());
    apply_eventually(kc, &String::from_utf8_lossy(&crds.stdout));
}

/// `mooring-cm` naming `url` as served from `to` (what `mooring up` records).
fn settings(kc: &str, aliases: &[(&str, &str)]) {
    let aliases: Vec<[&str; 2]> = aliases.iter().map(|(a, b)| [*a, *b]).collect();
    let cm = serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "mooring-cm", "namespace": "argocd"},
        "data": {"repository.aliases": serde_json::to_string(&aliases).expect("json")},
    });
    kubectl_ok(kc, &["apply", "-f", "-"], Some(&cm.to_string()));
}

/// `mooring up`'s end-to-end suite, in split mode.
#[test]
fn split_mode_converges_the_example_platform() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mgmt, kc) = start_cluster_with("mgmt", &dir.path().join("mgmt"), &["--speed", "20"]);
    let _mgmt = Proc(mgmt);
    let mut fleet = Vec::new();
    for (name, range, labels) in [
        (
            "prod-east",
            "127.0.101.0/24",
            &["environment=production", "workload-type=inference"][..],
        ),
        (
            "prod-west",
            "127.0.102.0/24",
            &["environment=production"][..],
        ),
    ] {
        let (c, ckc) = start_cluster_with(
            name,
            &dir.path().join(name),
            &["--speed", "20", "--load-balancer-range", range],
        );
        fleet.push(Proc(c));
        let mut args = vec!["cluster", "add", name, "--from", &ckc, "--name", name];
        for l in labels {
            args.extend(["--label", l]);
        }
        let o = mooring(&kc, &args);
        assert!(
            o.status.success(),
            "cluster add {name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    install_crds(&kc);
    // The platform repository, as a Git repository the manifests' URL is aliased to.
    let repo = dir.path().join("platform");
    copy_dir(
        Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/ml-platform"
        )),
        &repo,
    );
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "platform"]);
    let repo_url = format!("file://{}", repo.display());
    settings(
        &kc,
        &[(
            "https://git.example.com/ml-platform/platform.git",
            &repo_url,
        )],
    );
    let _controller = start_controller(&kc, &["--app-resync", "15"]);
    let server = start_server(&kc, &[]);
    // Registered as an Argo CD admin does: kubectl apply of the top-level manifests.
    let mut apply = vec!["apply", "-n", "argocd"];
    let top = repo.join("app-of-apps.yaml");
    let top = top.to_string_lossy().into_owned();
    apply.extend(["-f", &top]);
    let sets = repo.join("applicationsets");
    let sets = sets.to_string_lossy().into_owned();
    if Path::new(&sets).is_dir() {
        apply.extend(["-f", &sets]);
    }
    kubectl_ok(&kc, &apply, None);
    let token = mooring(&kc, &["account", "generate-token"]);
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    let token = String::from_utf8_lossy(&token.stdout).trim().to_string();
    crate::assert_example_platform(&kc, &server.addr, &token);
}

#[test]
fn controller_and_server_usage_errors_exit_2() {
    for (args, says) in [
        (
            &["controller", "--shards", "2", "--shard", "2"][..],
            "--shard 2 is not below --shards 2",
        ),
        (
            &["controller", "--sharding-method", "random"][..],
            "unknown sharding method",
        ),
        (&["controller", "--app-resync", "0"][..], "--app-resync"),
        (&["controller", "--log-format", "xml"][..], "--log-format"),
        (
            &["controller", "--metrics-address", "nowhere"][..],
            "--metrics-address",
        ),
        (&["server", "--tls-cert", "cert.pem"][..], "--tls-key"),
        (&["server", "--port", "70000"][..], "--port"),
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_mooring"))
            .args(args)
            .output()
            .expect("mooring runs");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
    // A certificate that is not one: an error naming the file, exit 2.
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("bad.pem");
    std::fs::write(&bad, "not a certificate").expect("write");
    let bad = bad.to_string_lossy().into_owned();
    let o = Command::new(env!("CARGO_BIN_EXE_mooring"))
        .args(["server", "--tls-cert", &bad, "--tls-key", &bad])
        .output()
        .expect("mooring runs");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bad.pem"), "{stderr}");
}

/// An app whose sync runs a PreSync hook Job for a few seconds before its ConfigMap.
fn hook_repo(dir: &Path) -> String {
    let repo = dir.join("repo");
    std::fs::create_dir_all(repo.join("app")).expect("mkdir");
    std::fs::write(
        repo.join("app/hook.yaml"),
        r#"apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations:
    argocd.argoproj.io/hook: PreSync
    argocd.argoproj.io/hook-delete-policy: BeforeHookCreation
spec:
  template:
    metadata:
      annotations: {sim.mooring.dev/run-seconds: "8"}
    spec:
      restartPolicy: Never
      containers: [{name: migrate, image: busybox}]
"#,
    )
    .expect("write");
    std::fs::write(
        repo.join("app/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: model-config}\ndata: {version: v1}\n",
    )
    .expect("write");
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-q", "-m", "v1"]);
    format!("file://{}", repo.display())
}

fn app_json(kc: &str) -> Value {
    let o = kubectl(
        kc,
        &[
            "get",
            "applications.argoproj.io",
            "-n",
            "argocd",
            "hooked",
            "-o",
            "json",
        ],
        None,
    );
    serde_json::from_slice(&o.stdout).unwrap_or_default()
}

/// The components' contract against one management cluster: probes, JSON logs, a
/// SIGTERM in the middle of a sync (exit 0, the operation left Running and finished by
/// the next start), HTTPS with the given certificate, and a Git webhook through the
/// standalone server refreshing the app the standalone controller then syncs.
#[test]
fn standalone_components_probe_log_stop_and_refresh() {
    let dir = tempfile::tempdir().expect("tmp");
    let (mgmt, kc) = start_cluster_with("mgmt", &dir.path().join("mgmt"), &[]);
    let _mgmt = Proc(mgmt);
    let url = hook_repo(dir.path());
    // Only webhooks and the operation trigger work: no resync during the test.
    let mut controller = start_controller(&kc, &["--log-format", "json", "--app-resync", "3600"]);
    let r = http(&controller.addr, "GET", "/healthz", &[], "");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    // Alive but not ready until the CRDs are installed; then it starts on its own.
    let r = http(&controller.addr, "GET", "/readyz", &[], "");
    assert!(r.starts_with("HTTP/1.1 503") && r.contains("CRD"), "{r}");
    install_crds(&kc);
    eventually(30, "/readyz 200", || {
        http(&controller.addr, "GET", "/readyz", &[], "")
            .starts_with("HTTP/1.1 200")
            .then_some(())
    });
    let app = serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "hooked", "namespace": "argocd"},
        "spec": {"project": "default",
                 "source": {"repoURL": url, "targetRevision": "main", "path": "app"},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": "demo"},
                 "syncPolicy": {"automated": {}, "syncOptions": ["CreateNamespace=true"]}}
    });
    kubectl_ok(&kc, &["apply", "-f", "-"], Some(&app.to_string()));
    // SIGTERM while the hook runs: exit 0, the operation stays Running (resumable).
    eventually(60, "the sync running its hook", || {
        let v = app_json(&kc);
        (v["status"]["operationState"]["phase"] == "Running").then_some(())
    });
    let status = terminate(&mut controller);
    assert!(status.success(), "SIGTERM exit: {status:?}");
    let logs = controller.stderr.lock().expect("lock").clone();
    assert!(!logs.is_empty());
    for line in &logs {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a log line that is not JSON ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
    }
    let v = app_json(&kc);
    assert_eq!(v["status"]["operationState"]["phase"], "Running", "{v}");
    assert!(
        kubectl(
            &kc,
            &["get", "configmap", "model-config", "-n", "demo"],
            None
        )
        .status
        .code()
            != Some(0),
        "the ConfigMap waits for the hook"
    );
    // The next start finishes the operation.
    let _controller = start_controller(&kc, &["--app-resync", "3600"]);
    let revision = eventually(90, "the resumed sync to succeed", || {
        let v = app_json(&kc);
        let st = &v["status"]["operationState"];
        (st["phase"] == "Succeeded").then(|| {
            st["syncResult"]["revision"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
    });
    assert!(!revision.is_empty());
    let cm = kubectl_ok(
        &kc,
        &[
            "get",
            "configmap",
            "model-config",
            "-n",
            "demo",
            "-o",
            "json",
        ],
        None,
    );
    assert!(cm.contains("\"v1\""), "{cm}");

    // HTTPS with the given certificate (openssl, as an operator would make one).
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    let o = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl must be installed (scripts/test installs it)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cert_s = cert.to_string_lossy().into_owned();
    let key_s = key.to_string_lossy().into_owned();
    let tls = start_server(&kc, &["--tls-cert", &cert_s, "--tls-key", &key_s]);
    let o = Command::new("curl")
        .args([
            "-sS",
            "--cacert",
            &cert_s,
            &format!("https://{}/healthz", tls.addr),
        ])
        .output()
        .expect("curl");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "ok\n",
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = Command::new("curl")
        .args(["-sS", &format!("https://{}/healthz", tls.addr)])
        .output()
        .expect("curl");
    assert!(!o.status.success(), "an unknown CA is refused");

    // A push through the standalone server's webhook: the controller (resync 1 h) syncs it.
    let server = start_server(&kc, &[]);
    let repo = dir.path().join("repo");
    std::fs::write(
        repo.join("app/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: model-config}\ndata: {version: v2}\n",
    )
    .expect("write");
    git(&repo, &["commit", "-q", "-am", "v2"]);
    let payload = serde_json::json!({
        "ref": "refs/heads/main",
        "after": "0000000000000000000000000000000000000001",
        "repository": {"html_url": url, "clone_url": url},
        "commits": [{"added": [], "removed": [], "modified": ["app/cm.yaml"]}],
    })
    .to_string();
    let r = http(
        &server.addr,
        "POST",
        "/api/webhook",
        &[
            ("X-GitHub-Event", "push"),
            ("Content-Type", "application/json"),
        ],
        &payload,
    );
    assert!(
        r.starts_with("HTTP/1.1 200") && r.contains("refreshing 1 application"),
        "{r}"
    );
    eventually(90, "the pushed commit deployed", || {
        let cm = kubectl(
            &kc,
            &[
                "get",
                "configmap",
                "model-config",
                "-n",
                "demo",
                "-o",
                "json",
            ],
            None,
        );
        String::from_utf8_lossy(&cm.stdout)
            .contains("\"v2\"")
            .then_some(())
    });
    let m = http(&server.addr, "GET", "/metrics", &[], "");
    assert!(
        m.contains("mooring_server_webhook_requests_total{kind=\"git\",result=\"ok\"} 1"),
        "{m}"
    );
    // The standalone server is stopped by SIGTERM too, with exit 0.
    let mut server = server;
    assert!(terminate(&mut server).success());
}
