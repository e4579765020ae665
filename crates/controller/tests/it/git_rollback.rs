//! `mooring_controller::git_rollback::run` as the RollbackPolicy calls it (no command
//! line): an app-of-apps manifest pinned to a commit follows the rollback in the same
//! commit; and the GitLab and Gitea pull-request calls against local HTTP endpoints
//! speaking their API shapes.

use crate::support::Repo;
use mooring_controller::forge::{Forge, ForgeKind, PullRequest};
use mooring_controller::git_rollback::{self, Mode, Request};
use mooring_controller::outbound::Outbound;
use mooring_source::{Credentials, Identity, Limits, RepoCache};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

const PLACEHOLDER: &str = "0000000000000000000000000000000000000000";

fn manifest(pin: &str) -> String {
    format!(
        "# model-a, deployed by the root app\napiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: model-a\n  namespace: argocd\nspec:\n  project: default\n  source:\n    repoURL: https://git.example.com/ml/platform.git\n    targetRevision: {pin} # pinned by CI\n    path: apps/model-a\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: model-a\n"
    )
}

fn request(app: Value, url: String, to: &str, dry_run: bool) -> Request {
    let who = Identity {
        name: "RollbackPolicy".into(),
        email: "rollback@mooring.invalid".into(),
    };
    Request {
        app: serde_json::from_value(app).expect("application"),
        repo_url: url,
        credentials: Credentials::none(),
        to: to.to_string(),
        reason: "accuracy drop".into(),
        initiator: "rollbackpolicy/model-a".into(),
        author: who,
        mode: Mode::Branch,
        branch: Some("main".into()),
        all: false,
        app_file: None,
        source_index: None,
        parent: None,
        dry_run,
        push: !dry_run,
        pr: None,
        now: "2026-03-04T05:06:07Z".parse().expect("time"),
        limits: Limits::default(),
    }
}

#[tokio::test]
async fn a_pinned_application_manifest_follows_the_rollback() {
    let repo = Repo::new();
    repo.write(
        "apps/model-a/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {model: v1}\n",
    );
    repo.write("apps/root/model-a.yaml", &manifest(PLACEHOLDER));
    let c0 = repo.commit("initial");
    repo.write(
        "apps/model-a/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {model: v2}\n",
    );
    let c1 = repo.commit("model-a v2");
    repo.write("apps/root/model-a.yaml", &manifest(&c1));
    let c2 = repo.commit("pin model-a to v2");
    // The app as the cluster has it: pinned to c1 by the root app.
    let live = mooring_core::yaml::parse_one(&manifest(&c1)).expect("manifest");
    let cache = Arc::new(RepoCache::new(repo.path().join(".cache")));
    let outbound = Outbound::default();

    let dry = git_rollback::run(
        cache.clone(),
        &outbound,
        request(live.clone(), repo.url(), &c0, true),
    )
    .await
    .expect("dry run");
    assert_eq!(dry.manifest.as_deref(), Some("apps/root/model-a.yaml"));
    let reverted: Vec<&str> = dry.reverted.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(reverted, [c1.as_str()]);
    assert_eq!(
        dry.kept.len(),
        1,
        "the pin commit touches only the root app"
    );
    assert_eq!(dry.kept[0].id.as_str(), c2);
    assert!(
        dry.diff.contains(&format!("-    targetRevision: {c1} # pinned by CI\n+    targetRevision: \"{c0}\" # pinned by CI\n")),
        "{}",
        dry.diff
    );
    assert!(dry.diff.contains("+data: {model: v1}"), "{}", dry.diff);
    assert_eq!(dry.branch, "rollback/model-a/20260304_050607");
    assert!(!dry.pushed);
    assert!(repo.git(&["branch", "--list", "rollback/*"]).is_empty());

    let done = git_rollback::run(cache, &outbound, request(live, repo.url(), &c0, false))
        .await
        .expect("rollback");
    assert!(done.pushed);
    assert_eq!(
        done.commit, dry.commit,
        "the dry run showed exactly this commit"
    );
    let shown = repo.git(&[
        "show",
        "rollback/model-a/20260304_050607:apps/root/model-a.yaml",
    ]);
    assert_eq!(shown, manifest(&format!("\"{c0}\"")).trim_end());
    let msg = repo.git(&[
        "log",
        "-1",
        "--format=%B",
        "rollback/model-a/20260304_050607",
    ]);
    assert!(msg.starts_with(&format!("Rollback model-a to {c0}\n\nReason: accuracy drop\nRollback initiated by: rollbackpolicy/model-a\nTimestamp: 2026-03-04T05:06:07Z\n")), "{msg}");
}

#[tokio::test]
async fn nothing_to_roll_back_is_an_error_naming_the_inputs() {
    let repo = Repo::new();
    repo.write("apps/model-a/config.yaml", "a: 1\n");
    repo.write("apps/model-b/config.yaml", "b: 1\n");
    let c0 = repo.commit("initial");
    repo.write("apps/model-b/config.yaml", "b: 2\n");
    repo.commit("b only");
    let app = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "model-a", "namespace": "argocd"},
        "spec": {"project": "default", "source": {"repoURL": repo.url(), "targetRevision": "main", "path": "apps/model-a"},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": "a"}}
    });
    let cache = Arc::new(RepoCache::new(repo.path().join(".cache")));
    let mut req = request(app, repo.url(), &c0, true);
    req.branch = None;
    let err = git_rollback::run(cache, &Outbound::default(), req)
        .await
        .expect_err("nothing touches model-a");
    let msg = err.to_string();
    assert!(
        msg.contains("none of the 1 commits")
            && msg.contains("apps/model-a")
            && msg.contains("--all"),
        "{msg}"
    );
}

/// One recorded request: method, path, headers (lower-case names), JSON body.
type Seen = (String, String, Vec<(String, String)>, Value);

/// A forge API on 127.0.0.1 answering by (method, path prefix); records every request.
fn fake_forge(answers: Vec<(&'static str, &'static str, String)>) -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen: Arc<Mutex<Vec<_>>> = Arc::default();
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
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
            let answer = answers
                .iter()
                .find(|(m, p, _)| *m == method && path.starts_with(p))
                .map(|(_, _, a)| a.clone())
                .unwrap_or_else(|| "{}".into());
            record
                .lock()
                .expect("lock")
                .push((method, path, headers, body));
            let mut out = stream;
            let _ = write!(
                out,
                "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (port, seen)
}

fn pr() -> PullRequest {
    PullRequest {
        title: "Rollback model-a to abc1234".into(),
        body: "body".into(),
        head: "rollback/model-a/20260304_050607".into(),
        base: "main".into(),
        labels: vec!["rollback".into(), "urgent".into()],
        reviewers: vec!["alice".into()],
    }
}

#[tokio::test]
async fn gitlab_merge_request_with_labels_and_reviewer_ids() {
    let (port, seen) = fake_forge(vec![
        ("GET", "/api/v4/users", r#"[{"id": 42, "username": "alice"}]"#.into()),
        ("POST", "/api/v4/projects/", r#"{"iid": 3, "web_url": "https://gitlab.example.com/ml/team/platform/-/merge_requests/3"}"#.into()),
    ]);
    let outbound = Outbound::default();
    outbound.set_allowlist(Some(&format!("127.0.0.1:{port}")));
    let forge = Forge {
        kind: ForgeKind::Gitlab,
        api: format!("http://127.0.0.1:{port}/api/v4"),
        repo: "ml/team/platform".into(),
        token: "glpat-x".into(),
    };
    let opened = forge.open(&outbound, &pr()).await.expect("opened");
    assert_eq!(opened.number, 3);
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 2, "{seen:#?}");
    assert_eq!(
        (seen[0].0.as_str(), seen[0].1.as_str()),
        ("GET", "/api/v4/users?username=alice")
    );
    let (method, path, headers, body) = &seen[1];
    assert_eq!(
        (method.as_str(), path.as_str()),
        (
            "POST",
            "/api/v4/projects/ml%2Fteam%2Fplatform/merge_requests"
        )
    );
    assert!(
        headers.contains(&("private-token".into(), "glpat-x".into())),
        "{headers:?}"
    );
    assert_eq!(
        body,
        &json!({"source_branch": "rollback/model-a/20260304_050607", "target_branch": "main",
                "title": "Rollback model-a to abc1234", "description": "body",
                "labels": "rollback,urgent", "reviewer_ids": [42]})
    );
}

#[tokio::test]
async fn gitea_pull_request_with_label_ids_and_a_warning_for_a_missing_label() {
    let (port, seen) = fake_forge(vec![
        (
            "GET",
            "/api/v1/repos/ml/platform/labels",
            r#"[{"id": 11, "name": "rollback"}, {"id": 12, "name": "bug"}]"#.into(),
        ),
        (
            "POST",
            "/api/v1/repos/ml/platform/pulls/5/requested_reviewers",
            "{}".into(),
        ),
        (
            "POST",
            "/api/v1/repos/ml/platform/pulls",
            r#"{"number": 5, "html_url": "https://gitea.local/ml/platform/pulls/5"}"#.into(),
        ),
    ]);
    let outbound = Outbound::default();
    outbound.set_allowlist(Some(&format!("127.0.0.1:{port}")));
    let forge = Forge {
        kind: ForgeKind::Gitea,
        api: format!("http://127.0.0.1:{port}/api/v1"),
        repo: "ml/platform".into(),
        token: "gt".into(),
    };
    let opened = forge.open(&outbound, &pr()).await.expect("opened");
    assert_eq!(
        (opened.number, opened.url.as_str()),
        (5, "https://gitea.local/ml/platform/pulls/5")
    );
    assert_eq!(opened.warnings.len(), 1);
    assert!(
        opened.warnings[0].contains("\"urgent\""),
        "{:?}",
        opened.warnings
    );
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 3, "{seen:#?}");
    let (_, path, headers, body) = &seen[1];
    assert_eq!(path, "/api/v1/repos/ml/platform/pulls");
    assert!(
        headers.contains(&("authorization".into(), "token gt".into())),
        "{headers:?}"
    );
    assert_eq!(body["labels"], json!([11]));
    assert_eq!(body["head"], "rollback/model-a/20260304_050607");
    assert_eq!(seen[2].3, json!({"reviewers": ["alice"]}));

    // Without the admin's allowlist the forge on loopback is refused, with the address.
    let closed = Outbound::default();
    let err = forge.open(&closed, &pr()).await.expect_err("refused");
    assert!(err.to_string().contains("127.0.0.1"), "{err}");
}

#[tokio::test]
async fn direct_mode_commits_on_the_tracked_branch_and_never_forces() {
    // The served repository (pushes to its checked-out branch allowed) and a clone.
    let bare = Repo::new();
    bare.git(&["config", "receive.denyCurrentBranch", "ignore"]);
    let work = Repo::new();
    work.git(&["remote", "add", "origin", &bare.path().to_string_lossy()]);
    work.write("apps/model-a/config.yaml", "a: 1\n");
    let c0 = work.commit("initial");
    work.write("apps/model-a/config.yaml", "a: 2\n");
    work.commit("a two");
    work.git(&["push", "-q", "origin", "HEAD:main"]);
    let url = format!("file://{}", bare.path().display());
    let app = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "model-a", "namespace": "argocd"},
        "spec": {"project": "default", "source": {"repoURL": url, "targetRevision": "main", "path": "apps/model-a"},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": "a"}}
    });
    let cache = Arc::new(RepoCache::new(work.path().join(".cache")));
    let mut req = request(app, url, &c0, false);
    req.mode = Mode::Direct;
    req.branch = None;
    let done = git_rollback::run(cache, &Outbound::default(), req)
        .await
        .expect("direct rollback");
    assert_eq!(done.branch, "main");
    assert!(done.pushed);
    assert_eq!(bare.git(&["rev-parse", "main"]), done.commit.as_str());
    assert_eq!(bare.git(&["show", "main:apps/model-a/config.yaml"]), "a: 1");
    assert!(bare.git(&["branch", "--list", "rollback/*"]).is_empty());
}

#[tokio::test]
async fn a_parent_in_another_repository_gets_its_own_commit_on_the_same_branch() {
    let platform = Repo::new();
    platform.write("apps/model-a/config.yaml", "model: v1\n");
    let c0 = platform.commit("initial");
    platform.write("apps/model-a/config.yaml", "model: v2\n");
    let c1 = platform.commit("model-a v2");
    let root = Repo::new();
    root.write("apps/model-a.yaml", &manifest(&c1));
    root.write(
        "apps/model-b.yaml",
        &manifest(&c1).replace("model-a", "model-b"),
    );
    root.commit("root apps");
    let live = mooring_core::yaml::parse_one(&manifest(&c1)).expect("manifest");
    let cache = Arc::new(RepoCache::new(platform.path().join(".cache")));
    let mut req = request(live, platform.url(), &c0, false);
    req.parent = Some(git_rollback::Parent {
        name: "root".into(),
        repo_url: root.url(),
        credentials: Credentials::none(),
        branch: Some("main".into()),
        path: "apps".into(),
    });
    let done = git_rollback::run(cache, &Outbound::default(), req)
        .await
        .expect("rollback");
    assert_eq!(done.manifest, None);
    let change = done
        .parent_change
        .expect("a commit in the parent's repository");
    assert_eq!(change.manifest, "apps/model-a.yaml");
    assert!(change.pushed);
    let branch = "rollback/model-a/20260304_050607";
    assert_eq!(change.branch, branch);
    assert_eq!(
        root.git(&["show", &format!("{branch}:apps/model-a.yaml")]),
        manifest(&format!("\"{c0}\"")).trim_end()
    );
    assert_eq!(
        root.git(&["show", &format!("{branch}:apps/model-b.yaml")]),
        manifest(&c1).replace("model-a", "model-b").trim_end()
    );
    assert_eq!(
        platform.git(&["show", &format!("{branch}:apps/model-a/config.yaml")]),
        "model: v1"
    );
}
