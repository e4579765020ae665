//! `mooring rollback git` end to end: an Argo CD monorepo served over smart HTTP (`git
//! http-backend`, push enabled, basic authentication from a repository Secret), the
//! embedded cluster holding the Applications, AppProjects and Secrets in `argocd`, and a
//! local HTTP endpoint speaking GitHub's pull-request API whose requests are asserted
//! field by field.

use crate::{apply_eventually, kubectl_ok};
use mooring_testkit::GitHttpServer;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

use mooring_testkit::git;

/// Write `files`, commit them with `msg`, push to the served repository; the commit.
fn commit(work: &Path, msg: &str, files: &[(&str, &str)]) -> String {
    for (path, content) in files {
        let p = work.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
    }
    git(work, &["add", "-A"]);
    git(work, &["commit", "-q", "-m", msg]);
    git(work, &["push", "-q", "origin", "HEAD:main"]);
    git(work, &["rev-parse", "HEAD"])
}

const PLACEHOLDER: &str = "0000000000000000000000000000000000000000";

fn pinned(name: &str) -> String {
    format!("apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: argocd\nspec:\n  project: ml\n  source:\n    repoURL: https://example.invalid/ml/platform.git\n    targetRevision: {PLACEHOLDER}\n    path: apps/model-a\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: model-c\n")
}

fn cm(name: &str, data: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n{data}")
}

/// One recorded request to the fake forge.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Value,
}

/// A GitHub-shaped API on 127.0.0.1: creating a pull request answers number 7.
fn fake_github() -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let method = parts.next().unwrap_or_default().to_string();
            let path = parts.next().unwrap_or_default().to_string();
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':') {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                }
            }
            let len = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .and_then(|(_, v)| v.parse::<usize>().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let answer = if method == "POST" && path.ends_with("/pulls") {
                (
                    "201 Created",
                    format!(
                        r#"{{"number": 7, "html_url": "http://127.0.0.1:{port}/ml/platform/pull/7"}}"#
                    ),
                )
            } else {
                ("200 OK", "{}".to_string())
            };
            record.lock().expect("lock").push(Seen {
                method,
                path,
                headers,
                body,
            });
            let mut out = stream;
            let _ = write!(
                out,
                "HTTP/1.1 {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                answer.0,
                answer.1.len(),
                answer.1
            );
        }
    });
    (port, seen)
}

fn mooring(kc: &str, args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_mooring"))
        .args(args)
        .args(["--kubeconfig", kc])
        .env_remove("MOORING_FORGE_TOKEN")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("mooring runs");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn rollback_branches(bare: &Path) -> Vec<String> {
    git(
        bare,
        &[
            "for-each-ref",
            "--format=%(refname:short)",
            "refs/heads/rollback/",
        ],
    )
    .lines()
    .map(str::to_string)
    .collect()
}

#[test]
fn rollback_git_reverts_one_apps_commits_pushes_and_opens_the_pull_request() {
    // The monorepo: two kustomize apps sharing a base, Argo CD layout.
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("srv");
    let bare = root.join("ml/platform.git");
    std::fs::create_dir_all(&bare).expect("mkdir");
    git(&bare, &["init", "-q", "--bare"]);
    git(&bare, &["config", "http.receivepack", "true"]);
    let server = GitHttpServer::start(&root, Some(("ci", "s3cret"))).expect("git server");
    let url = server.url("ml/platform.git");
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    git(&work, &["init", "-q"]);
    let authed = url.replacen("http://", "http://ci:s3cret@", 1);
    git(&work, &["remote", "add", "origin", &authed]);
    let kust = |name: &str| {
        format!("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: {name}\nresources:\n- ../../bases/common\n- config.yaml\n")
    };
    let c0 = commit(
        &work,
        "initial platform",
        &[
            (
                "bases/common/kustomization.yaml",
                "resources:\n- labels.yaml\n",
            ),
            (
                "bases/common/labels.yaml",
                &cm("platform-labels", "  team: ml\n"),
            ),
            ("apps/model-a/kustomization.yaml", &kust("model-a")),
            (
                "apps/model-a/config.yaml",
                &cm("model-a", "  model: v1\n  threshold: \"0.90\"\n"),
            ),
            ("apps/model-b/kustomization.yaml", &kust("model-b")),
            ("apps/model-b/config.yaml", &cm("model-b", "  model: v1\n")),
            ("README.md", "platform\n"),
            // app-of-apps: the root app's manifest of model-c (pinned), and a stale copy
            // elsewhere that only the parent's path tells apart.
            ("apps/root/model-c.yaml", &pinned("model-c")),
            ("legacy/model-c.yaml", &pinned("model-c")),
        ],
    );
    let c1 = commit(
        &work,
        "model-a: v2",
        &[(
            "apps/model-a/config.yaml",
            &cm("model-a", "  model: v2\n  threshold: \"0.90\"\n"),
        )],
    );
    let c2 = commit(
        &work,
        "model-b: v2",
        &[("apps/model-b/config.yaml", &cm("model-b", "  model: v2\n"))],
    );
    let c3 = commit(
        &work,
        "model-a: threshold",
        &[(
            "apps/model-a/config.yaml",
            &cm("model-a", "  model: v2\n  threshold: \"0.80\"\n"),
        )],
    );
    let c4 = commit(
        &work,
        "model-a: v3",
        &[(
            "apps/model-a/config.yaml",
            &cm("model-a", "  model: v3\n  threshold: \"0.80\"\n"),
        )],
    );

    let cluster = crate::BinCluster::start();
    let kc = cluster.kc.clone();
    let crds = Command::new(env!("CARGO_BIN_EXE_mooring"))
        .arg("crds")
        .output()
        .expect("crds");
    kubectl_ok(
        &kc,
        &["apply", "-f", "-"],
        Some(&String::from_utf8_lossy(&crds.stdout)),
    );
    let (api_port, seen) = fake_github();
    apply_eventually(
        &kc,
        &format!(
            r#"
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata: {{name: ml, namespace: argocd}}
spec:
  sourceRepos: ["{url}"]
  destinations: [{{server: "https://kubernetes.default.svc", namespace: "*"}}]
---
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata: {{name: restricted, namespace: argocd}}
spec:
  sourceRepos: ["https://github.com/other/*"]
  destinations: [{{server: "https://kubernetes.default.svc", namespace: "*"}}]
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {{name: model-a, namespace: argocd}}
spec:
  project: ml
  source: {{repoURL: "{url}", targetRevision: main, path: apps/model-a}}
  destination: {{server: "https://kubernetes.default.svc", namespace: model-a}}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {{name: model-b, namespace: argocd}}
spec:
  project: ml
  source: {{repoURL: "{url}", targetRevision: main, path: apps/model-b}}
  destination: {{server: "https://kubernetes.default.svc", namespace: model-b}}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {{name: sneaky, namespace: argocd}}
spec:
  project: restricted
  source: {{repoURL: "{url}", targetRevision: main, path: apps/model-a}}
  destination: {{server: "https://kubernetes.default.svc", namespace: model-a}}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {{name: root, namespace: argocd}}
spec:
  project: ml
  source: {{repoURL: "{url}", targetRevision: main, path: apps/root}}
  destination: {{server: "https://kubernetes.default.svc", namespace: argocd}}
---
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: model-c
  namespace: argocd
  annotations: {{argocd.argoproj.io/tracking-id: "root:argoproj.io/Application:argocd/model-c"}}
spec:
  project: ml
  source: {{repoURL: "{url}", targetRevision: "{c1}", path: apps/model-a}}
  destination: {{server: "https://kubernetes.default.svc", namespace: model-c}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: mooring-cm, namespace: argocd}}
data:
  outbound.allow: "127.0.0.1:{api_port}"
"#
        ),
    );
    // The repository Secret Argo CD users write, and the forge token's Secret.
    apply_eventually(
        &kc,
        &format!(
            r#"
apiVersion: v1
kind: Secret
metadata:
  name: repo-platform
  namespace: argocd
  labels: {{argocd.argoproj.io/secret-type: repository}}
stringData: {{type: git, url: "{url}", username: ci, password: s3cret}}
---
apiVersion: v1
kind: Secret
metadata: {{name: github-token, namespace: argocd}}
stringData: {{token: ghp_test}}
"#
        ),
    );
    let forge_url = format!("http://127.0.0.1:{api_port}");
    let base_args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "rollback",
            "git",
            "model-a",
            "--to",
            &c0,
            "--reason",
            "accuracy drop",
            "--initiator",
            "oncall-alice",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |args: Vec<String>| {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        mooring(&kc, &refs)
    };

    // --dry-run: the diff and the pull request's text, nothing written or requested.
    let (code, out, err) = run(base_args(&["--dry-run", "--pr", "github"]));
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("-  model: v3\n") && out.contains("+  model: v1\n"),
        "{out}"
    );
    assert!(out.contains("--- a/apps/model-a/config.yaml"), "{out}");
    assert!(!out.contains("apps/model-b/config.yaml"), "{out}");
    assert!(
        out.contains("Pre-rollback checklist") && out.contains("Dry run"),
        "{out}"
    );
    assert!(rollback_branches(&bare).is_empty());
    assert!(seen.lock().expect("lock").is_empty());

    // app-of-apps: model-c pins c1 and is defined by the root app: its manifest under the
    // root app's path follows the rollback in the same commit; a pinned app needs --branch.
    let (code, _, err) = mooring(
        &kc,
        &[
            "rollback",
            "git",
            "model-c",
            "--to",
            &c0,
            "--reason",
            "x",
            "--dry-run",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--branch"), "{err}");
    let (code, out, err) = mooring(
        &kc,
        &[
            "rollback",
            "git",
            "model-c",
            "--to",
            &c0,
            "--reason",
            "x",
            "--branch",
            "main",
            "--dry-run",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Application manifest updated: apps/root/model-c.yaml"),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "-    targetRevision: {PLACEHOLDER}\n+    targetRevision: \"{c0}\"\n"
        )),
        "{out}"
    );
    assert!(!out.contains("legacy/model-c.yaml"), "{out}");

    // A missing token is refused before anything is pushed.
    let (code, _, err) = run(base_args(&[
        "--push",
        "--pr",
        "github",
        "--forge-url",
        &forge_url,
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no forge token") && err.contains("--token-secret"),
        "{err}"
    );
    assert!(rollback_branches(&bare).is_empty());

    // The rollback: A's three commits reverted, B's kept, pushed, pull request opened.
    let (code, out, err) = run(base_args(&[
        "--push",
        "--pr",
        "github",
        "--forge-url",
        &forge_url,
        "--token-secret",
        "github-token",
        "--reviewer",
        "alice",
        "--reviewer",
        "bob",
        "-o",
        "json",
    ]));
    assert_eq!(code, 0, "{out}{err}");
    let outcome: Value = serde_json::from_str(&out).expect("json outcome");
    let branch = outcome["branch"].as_str().expect("branch").to_string();
    assert!(branch.starts_with("rollback/model-a/"), "{branch}");
    assert_eq!(branch.len(), "rollback/model-a/".len() + 15, "{branch}");
    assert_eq!(outcome["pushed"], true);
    let reverted: Vec<&str> = outcome["reverted"]
        .as_array()
        .expect("reverted")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(reverted, [c4.as_str(), c3.as_str(), c1.as_str()]);
    assert_eq!(outcome["kept"][0]["id"], c2.as_str());
    assert_eq!(rollback_branches(&bare), vec![branch.clone()]);
    let show = |what: &str| git(&bare, &["show", &format!("{branch}:{what}")]);
    assert_eq!(
        show("apps/model-a/config.yaml"),
        cm("model-a", "  model: v1\n  threshold: \"0.90\"\n").trim()
    );
    assert_eq!(
        show("apps/model-b/config.yaml"),
        cm("model-b", "  model: v2\n").trim()
    );
    assert_eq!(git(&bare, &["rev-parse", &format!("{branch}^")]), c4);
    assert_eq!(git(&bare, &["rev-parse", "main"]), c4, "main is untouched");
    let message = git(&bare, &["log", "-1", "--format=%an%n%B", &branch]);
    let mut lines = message.lines();
    assert_eq!(lines.next(), Some("oncall-alice"));
    assert_eq!(
        lines.next(),
        Some(format!("Rollback model-a to {c0}").as_str())
    );
    assert!(message.contains("\nReason: accuracy drop\n"), "{message}");
    assert!(
        message.contains("\nRollback initiated by: oncall-alice\n"),
        "{message}"
    );
    let stamp = message
        .lines()
        .find_map(|l| l.strip_prefix("Timestamp: "))
        .expect("timestamp line");
    assert!(
        stamp.len() == 20 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
        "{stamp}"
    );
    // The credentials came from the repository Secret.
    assert!(server
        .authorizations()
        .iter()
        .any(|a| a.starts_with("Basic ")));

    // The pull request, field by field.
    let requests = seen.lock().expect("lock").clone();
    assert_eq!(requests.len(), 3, "{requests:#?}");
    let header = |s: &Seen, k: &str| {
        s.headers
            .iter()
            .find(|(h, _)| h == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let pr = &requests[0];
    assert_eq!(
        (pr.method.as_str(), pr.path.as_str()),
        ("POST", "/repos/ml/platform/pulls")
    );
    assert_eq!(header(pr, "authorization"), "Bearer ghp_test");
    assert_eq!(header(pr, "accept"), "application/vnd.github+json");
    assert_eq!(pr.body["title"], format!("Rollback model-a to {c0}"));
    assert_eq!(pr.body["head"], branch.as_str());
    assert_eq!(pr.body["base"], "main");
    let body = pr.body["body"].as_str().expect("body");
    assert!(body.contains("**Reason:** accuracy drop"), "{body}");
    assert!(
        body.contains("**Rollback initiated by:** oncall-alice"),
        "{body}"
    );
    assert!(
        body.contains("### Pre-rollback checklist\n\n- [ ] "),
        "{body}"
    );
    assert!(
        body.contains("### Post-rollback checklist\n\n- [ ] "),
        "{body}"
    );
    assert!(
        body.contains(&c4[..7]) && !body.contains(&c2[..7]),
        "{body}"
    );
    let labels = &requests[1];
    assert_eq!(
        (labels.method.as_str(), labels.path.as_str()),
        ("POST", "/repos/ml/platform/issues/7/labels")
    );
    assert_eq!(
        labels.body,
        serde_json::json!({"labels": ["rollback", "urgent"]})
    );
    let reviewers = &requests[2];
    assert_eq!(
        (reviewers.method.as_str(), reviewers.path.as_str()),
        ("POST", "/repos/ml/platform/pulls/7/requested_reviewers")
    );
    assert_eq!(
        reviewers.body,
        serde_json::json!({"reviewers": ["alice", "bob"]})
    );
    assert_eq!(
        outcome["pullRequest"]["url"],
        format!("http://127.0.0.1:{api_port}/ml/platform/pull/7")
    );

    // A conflicting revert: a commit touching both apps, then B alone on the same line.
    // Reverting the first (it touches A) conflicts in B's file: nothing is pushed.
    let c5 = commit(
        &work,
        "both apps: v4",
        &[
            (
                "apps/model-a/config.yaml",
                &cm("model-a", "  model: v4\n  threshold: \"0.80\"\n"),
            ),
            ("apps/model-b/config.yaml", &cm("model-b", "  model: v4\n")),
        ],
    );
    commit(
        &work,
        "model-b: v5",
        &[("apps/model-b/config.yaml", &cm("model-b", "  model: v5\n"))],
    );
    let (code, out, err) = run([
        "rollback", "git", "model-a", "--to", &c4, "--reason", "bad v4", "--push",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect());
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains(&c5) && err.contains("conflicts") && err.contains("apps/model-b/config.yaml"),
        "{err}"
    );
    assert_eq!(
        rollback_branches(&bare),
        vec![branch.clone()],
        "nothing pushed"
    );

    // Hostile input: a target off the branch, an unknown app, a repository the project
    // does not allow.
    git(&work, &["checkout", "-q", "-b", "side", &c1]);
    std::fs::write(work.join("README.md"), "side\n").expect("write");
    git(&work, &["commit", "-q", "-am", "side"]);
    git(&work, &["push", "-q", "origin", "side"]);
    let side = git(&work, &["rev-parse", "HEAD"]);
    let (code, _, err) = run([
        "rollback",
        "git",
        "model-a",
        "--to",
        &side,
        "--reason",
        "x",
        "--dry-run",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect());
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("not an ancestor") && err.contains(&side),
        "{err}"
    );
    let (code, _, err) = mooring(
        &kc,
        &[
            "rollback",
            "git",
            "nope",
            "--to",
            &c0,
            "--reason",
            "x",
            "--dry-run",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("\"nope\" not found"), "{err}");
    let (code, _, err) = mooring(
        &kc,
        &[
            "rollback",
            "git",
            "sneaky",
            "--to",
            &c0,
            "--reason",
            "x",
            "--dry-run",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("sneaky") && err.contains(&url) && err.contains("restricted"),
        "{err}"
    );
    let (code, _, err) = mooring(
        &kc,
        &[
            "rollback", "git", "model-a", "--to", &c0, "--reason", "x", "--direct", "--pr",
            "github",
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--direct"), "{err}");
}
