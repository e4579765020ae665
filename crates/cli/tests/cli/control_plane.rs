//! Argo CD repositories as they are: `mooring up` registers what an Argo CD admin would
//! apply (AppProjects, ApplicationSets, Applications, all in `argocd`), the CLI finds them
//! without flags, `kubectl apply -n argocd -f` works the same, and sources are fetched as
//! written — a control repository's Applications deploy from a second repository over
//! file:// and smart HTTP, and commits there are deployed.

use crate::{copy_dir, kubectl, kubectl_ok, mooring};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `mooring up` running in the background, with what it printed up to its hints.
pub(crate) struct Up {
    child: std::process::Child,
    pub(crate) kc: String,
    printed: Vec<String>,
}

impl Up {
    pub(crate) fn start(repo: &Path, data: &Path, extra: &[&str]) -> Up {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mooring"))
            .arg("up")
            .arg(repo)
            .args([
                "--port",
                "0",
                "--webhook-port",
                "0",
                "--speed",
                "20",
                "--poll",
                "1",
            ])
            .args(extra)
            .arg("--data-dir")
            .arg(data)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("mooring up runs");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut printed = Vec::new();
        for line in lines.by_ref() {
            let line = line.expect("line");
            if line.trim() == "try:" {
                break;
            }
            printed.push(line.trim().to_string());
        }
        std::thread::spawn(move || lines.for_each(drop));
        let kc = printed
            .iter()
            .find_map(|l| l.strip_prefix("kubeconfig  ").map(|p| p.trim().to_string()))
            .unwrap_or_else(|| {
                let _ = child.kill();
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                panic!("mooring up printed no kubeconfig: {printed:?}\n{err}")
            });
        Up { child, kc, printed }
    }

    /// What `up` printed after `prefix` (e.g. `log in` → the login link).
    pub(crate) fn printed_value(&self, prefix: &str) -> Option<String> {
        self.printed
            .iter()
            .find_map(|l| l.strip_prefix(prefix).map(|v| v.trim().to_string()))
    }

    fn printed(&self, prefix: &str, text: &str) -> bool {
        self.printed
            .iter()
            .any(|l| l.starts_with(prefix) && l.contains(text))
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Poll `mooring app get NAME -o json` until `ok` holds.
pub(crate) fn app_until(
    kc: &str,
    name: &str,
    secs: u64,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let o = mooring(kc, &["app", "get", name, "-o", "json"]);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        if o.status.success() && ok(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {name}: {what}\n{}\n{}",
            serde_json::to_string_pretty(&v["status"]).unwrap_or_default(),
            String::from_utf8_lossy(&o.stderr)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

pub(crate) fn synced_healthy(v: &Value) -> bool {
    v["status"]["sync"]["status"] == "Synced" && v["status"]["health"]["status"] == "Healthy"
}

fn example() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ml-platform")
}

/// The seed's training-platform Application as Argo CD users write it: control-plane
/// namespace `argocd`, the resources finalizer, automated prune and self-heal.
const SEED_TRAINING_APP: &str = r#"apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: ml-training-platform
  namespace: argocd
  finalizers:
    - resources-finalizer.argocd.argoproj.io
spec:
  project: ml-platform
  source:
    repoURL: https://git.example.com/ml-platform/platform.git
    targetRevision: HEAD
    path: applications/training-platform/overlays/development
  destination:
    server: https://kubernetes.default.svc
    namespace: ml-training
  syncPolicy:
    automated:
      prune: true
      selfHeal: true
      allowEmpty: false
    syncOptions:
      - CreateNamespace=true
      - PrunePropagationPolicy=foreground
      - PruneLast=true
    retry:
      limit: 5
      backoff:
        duration: 5s
        factor: 2
        maxDuration: 3m
  revisionHistoryLimit: 10
"#;

/// The seed's AppProject, Application and ApplicationSet, in `argocd` and otherwise
/// verbatim, are registered by `mooring up` and reconcile; `app list/get/wait` find them
/// without flags; deleting the Application and applying the same file with `kubectl
/// apply -n argocd -f` brings it back; unreadable files and objects the control plane
/// would ignore are reported as skipped; a restart updates what changed.
#[test]
fn up_registers_the_seed_manifests_in_argocd() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("platform");
    copy_dir(&example().join("applications"), &repo.join("applications"));
    std::fs::copy(
        example().join("projects/ml-platform.yaml"),
        repo.join("ml-platform-project.yaml"),
    )
    .expect("seed project");
    std::fs::copy(
        example().join("applicationsets/ml-inference-services.yaml"),
        repo.join("ml-inference-services.yaml"),
    )
    .expect("seed appset");
    std::fs::write(repo.join("ml-training-platform.yaml"), SEED_TRAINING_APP).expect("write");
    std::fs::write(
        repo.join("broken.yaml"),
        "kind: Application\nmetadata: [unclosed\n",
    )
    .expect("write");
    std::fs::write(
        repo.join("tenant.yaml"),
        SEED_TRAINING_APP
            .replace("name: ml-training-platform", "name: tenant-app")
            .replace("namespace: argocd", "namespace: team-a"),
    )
    .expect("write");
    let data = tmp.path().join("data");
    // A `.mooring` left open by an older version (0755, a 0644 kubeconfig copy) is
    // closed at start (security finding 4).
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::create_dir_all(&data).expect("mkdir");
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::write(data.join("kubeconfig"), "old").expect("write");
        std::fs::set_permissions(
            data.join("kubeconfig"),
            std::fs::Permissions::from_mode(0o644),
        )
        .expect("chmod");
    }
    let up = Up::start(
        &repo,
        &data,
        &[
            "--clusters",
            "prod-us-east:environment=production,workload-type=inference",
        ],
    );
    let kc = up.kc.clone();
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| {
            std::fs::metadata(p)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
                .permissions()
                .mode()
                & 0o777
        };
        for d in ["", "cluster", "clusters/prod-us-east"] {
            assert_eq!(mode(&data.join(d)), 0o700, "{d:?}");
        }
        for f in [
            "kubeconfig",
            "cluster/kubeconfig",
            "cluster/token",
            "cluster/cluster.db",
            "cluster/ca.key",
            "clusters/prod-us-east/token",
            "clusters/prod-us-east/cluster.db",
        ] {
            assert_eq!(mode(&data.join(f)), 0o600, "{f}");
        }
    }
    for (kind, id) in [
        ("AppProject", "argocd/ml-platform"),
        ("ApplicationSet", "argocd/ml-inference-services"),
        ("Application", "argocd/ml-training-platform"),
    ] {
        assert!(
            up.printed("registered", &format!("{kind} {id}")),
            "{kind} {id} registered: {:?}",
            up.printed
        );
    }
    assert!(up.printed("skipped", "broken.yaml"), "{:?}", up.printed);
    // It says how an admin opens outbound requests (refused to loopback by default).
    assert!(
        up.printed("outbound", "loopback")
            && up.printed("configmap mooring-cm", "\"outbound.allow\""),
        "{:?}",
        up.printed
    );
    assert!(
        up.printed("skipped", "tenant-app") && up.printed("skipped", "--application-namespaces"),
        "{:?}",
        up.printed
    );
    assert!(
        up.printed(
            "serving",
            "https://git.example.com/ml-platform/platform.git"
        ),
        "the placeholder remote is served from the directory: {:?}",
        up.printed
    );
    // No flags: the CLI looks in `argocd`.
    app_until(
        &kc,
        "ml-training-platform",
        180,
        "Synced and Healthy",
        synced_healthy,
    );
    let list = mooring(&kc, &["app", "list", "-o", "json"]);
    let apps: Value = serde_json::from_slice(&list.stdout).expect("json");
    let names: Vec<&str> = apps
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|a| a["metadata"]["name"].as_str())
        .collect();
    assert!(
        names.contains(&"ml-training-platform") && names.contains(&"inference-prod-us-east"),
        "{names:?}"
    );
    let table = String::from_utf8_lossy(&mooring(&kc, &["app", "list"]).stdout).into_owned();
    assert!(
        table.contains("ml-training-platform") && table.contains("ml-platform"),
        "{table}"
    );
    let wait = mooring(
        &kc,
        &[
            "app",
            "wait",
            "inference-prod-us-east",
            "--health",
            "--timeout",
            "180",
        ],
    );
    assert_eq!(
        wait.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&wait.stderr)
    );
    let get =
        String::from_utf8_lossy(&mooring(&kc, &["app", "get", "ml-training-platform"]).stdout)
            .into_owned();
    assert!(get.contains("Synced") && get.contains("Healthy"), "{get}");

    // `kubectl apply -n argocd -f`, as an Argo CD admin would.
    kubectl_ok(
        &kc,
        &[
            "delete",
            "application",
            "ml-training-platform",
            "-n",
            "argocd",
            "--wait=true",
        ],
        None,
    );
    let file = repo.join("ml-training-platform.yaml");
    kubectl_ok(
        &kc,
        &["apply", "-n", "argocd", "-f", file.to_str().expect("path")],
        None,
    );
    app_until(
        &kc,
        "ml-training-platform",
        120,
        "Synced and Healthy again",
        synced_healthy,
    );
    drop(up);

    // Restarting on the same data directory updates what changed in the files.
    std::fs::write(
        &file,
        SEED_TRAINING_APP.replace(
            "  namespace: argocd\n",
            "  namespace: argocd\n  labels: {team: training}\n",
        ),
    )
    .expect("write");
    let up = Up::start(&repo, &data, &[]);
    assert!(
        up.printed("registered", "Application argocd/ml-training-platform"),
        "{:?}",
        up.printed
    );
    assert!(
        up.printed("admin token", "first start"),
        "the admin token is not issued twice: {:?}",
        up.printed
    );
    let a = app_until(&up.kc, "ml-training-platform", 60, "labelled", |v| {
        v["metadata"]["labels"]["team"] == "training"
    });
    assert!(synced_healthy(&a) || a["status"].is_object());
}

/// A control repository (a Git work tree whose remote is the URL its own app-of-apps
/// names) whose Applications deploy from a second repository, once over file:// and once
/// over smart HTTP: the control repository's URL is served from it, the second
/// repository is fetched from where it points (not redirected), and a commit there is
/// deployed.
#[test]
fn up_fetches_a_second_repository_from_where_it_points() {
    let tmp = tempfile::tempdir().expect("tmp");
    let git = |dir: &Path, args: &[&str]| {
        let o = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
            .args(args)
            .current_dir(dir)
            .output()
            .expect("git");
        assert!(
            o.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    // The apps repository, served over file:// and smart HTTP (git http-backend).
    let served = tmp.path().join("served");
    let apps_repo = served.join("apps.git");
    std::fs::create_dir_all(&apps_repo).expect("mkdir");
    git(&apps_repo, &["init", "-q", "-b", "main"]);
    git(&apps_repo, &["config", "http.receivepack", "true"]);
    let cm = |name: &str, value: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{model: \"{value}\"}}\n")
    };
    std::fs::create_dir_all(apps_repo.join("serving")).expect("mkdir");
    std::fs::write(apps_repo.join("serving/model.yaml"), cm("model", "v1")).expect("write");
    git(&apps_repo, &["add", "-A"]);
    git(&apps_repo, &["commit", "-q", "-m", "model v1"]);
    let http = mooring_testkit::GitHttpServer::start(&served, None).expect("git http server");
    let http_url = http.url("apps.git");
    let file_url = format!("file://{}", apps_repo.display());

    // The control repository: a Git work tree whose `origin` is the URL it names.
    let control = tmp.path().join("control");
    std::fs::create_dir_all(&control).expect("mkdir");
    git(&control, &["init", "-q", "-b", "main"]);
    git(
        &control,
        &[
            "remote",
            "add",
            "origin",
            "https://git.example.com/platform/control.git",
        ],
    );
    let app = |name: &str, url: &str, ns: &str| {
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {{name: {name}, namespace: argocd}}\nspec:\n  project: default\n  source: {{repoURL: \"{url}\", targetRevision: main, path: serving}}\n  destination: {{server: \"https://kubernetes.default.svc\", namespace: {ns}}}\n  syncPolicy: {{automated: {{prune: true, selfHeal: true}}, syncOptions: [CreateNamespace=true]}}\n---\n"
        )
    };
    std::fs::write(
        control.join("apps.yaml"),
        app("serving-file", &file_url, "ml-serving-file")
            + &app("serving-http", &http_url, "ml-serving-http"),
    )
    .expect("write");
    // The control repository's own app (a config the control repo holds), under its remote URL.
    std::fs::create_dir_all(control.join("serving")).expect("mkdir");
    std::fs::write(
        control.join("serving/model.yaml"),
        cm("control-model", "control"),
    )
    .expect("write");
    std::fs::write(
        control.join("control.yaml"),
        app(
            "control",
            "https://git.example.com/platform/control.git",
            "ml-control",
        ),
    )
    .expect("write");
    git(&control, &["add", "-A"]);
    git(&control, &["commit", "-q", "-m", "control"]);

    let up = Up::start(&control, &tmp.path().join("data"), &[]);
    let kc = up.kc.clone();
    assert!(
        up.printed("serving", "https://git.example.com/platform/control.git"),
        "{:?}",
        up.printed
    );
    assert!(
        !up.printed("serving", &http_url) && !up.printed("serving", &file_url),
        "the second repository is not redirected: {:?}",
        up.printed
    );
    let model = |ns: &str| -> String {
        let o = kubectl(&kc, &["get", "configmap", "-n", ns, "-o", "json"], None);
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                format!(
                    "{}={}",
                    c["metadata"]["name"].as_str().unwrap_or(""),
                    c["data"]["model"].as_str().unwrap_or("")
                )
            })
            .filter(|s| !s.starts_with("kube-root-ca"))
            .collect::<Vec<_>>()
            .join(",")
    };
    for name in ["serving-file", "serving-http", "control"] {
        app_until(&kc, name, 120, "Synced and Healthy", synced_healthy);
    }
    assert_eq!(model("ml-serving-file"), "model=v1");
    assert_eq!(model("ml-serving-http"), "model=v1");
    assert_eq!(model("ml-control"), "control-model=control");

    // A commit to the second repository is deployed by both apps (poll: 1 s).
    std::fs::write(apps_repo.join("serving/model.yaml"), cm("model", "v2")).expect("write");
    git(&apps_repo, &["commit", "-q", "-am", "model v2"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while model("ml-serving-file") != "model=v2" || model("ml-serving-http") != "model=v2" {
        assert!(
            Instant::now() < deadline,
            "the commit to the second repository was not deployed: {} / {}",
            model("ml-serving-file"),
            model("ml-serving-http")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// One HTTP/1.1 request to `mooring up`'s HTTP port: (status, whole response).
fn http(addr: &str, method: &str, path: &str, headers: &str, body: &[u8]) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("write");
    s.write_all(body).expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, out)
}

/// Issue 12 finding 10 through the binary: `mooring up --webhook-secret S --metrics-auth`
/// refuses an unsigned push (401, nothing refreshed) and answers 401 to an anonymous
/// `/metrics`, which names no application.
#[test]
fn up_with_a_webhook_secret_and_metrics_auth_refuses_anonymous_callers() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(&repo).expect("mkdir");
    copy_dir(&example(), &repo);
    let up = Up::start(
        &repo,
        &tmp.path().join("data"),
        &["--webhook-secret", "s3cret", "--metrics-auth"],
    );
    let addr = up
        .printed
        .iter()
        .find_map(|l| l.strip_prefix("webhook"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|l| l.strip_prefix("http://"))
        .and_then(|l| l.strip_suffix("/api/webhook"))
        .unwrap_or_else(|| panic!("no webhook address printed: {:?}", up.printed))
        .to_string();
    let push = br#"{"ref": "refs/heads/main", "after": "0123456789012345678901234567890123456789",
        "repository": {"html_url": "https://github.com/example/ml-platform", "clone_url": "https://github.com/example/ml-platform.git"},
        "commits": []}"#;
    let (code, text) = http(
        &addr,
        "POST",
        "/api/webhook",
        "X-GitHub-Event: push\r\n",
        push,
    );
    assert_eq!(code, 401, "{text}");
    assert!(!text.contains("refreshing"), "{text}");
    let (code, text) = http(
        &addr,
        "POST",
        "/api/webhook",
        "X-GitHub-Event: push\r\nX-Hub-Signature-256: sha256=0000000000000000000000000000000000000000000000000000000000000000\r\n",
        push,
    );
    assert_eq!(code, 401, "{text}");
    let (code, text) = http(&addr, "GET", "/metrics", "", b"");
    assert_eq!(code, 401, "{text}");
    assert!(!text.contains("application="), "{text}");
    assert!(
        up.printed("webhook", "signed pushes only"),
        "{:?}",
        up.printed
    );
}
