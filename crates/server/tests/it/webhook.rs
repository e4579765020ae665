//! A Git push delivered to the webhook endpoint refreshes the application at once (the
//! poll interval is set to an hour, so only the webhook can explain the convergence), a
//! bad signature is refused, and an oversized body gets 413.
//!
//! Issue 12 finding 10: with a webhook secret (`--webhook-secret`, or the
//! `webhook.github.secret` / `webhook.gitlab.secret` keys of `mooring-secret`) unsigned
//! and wrongly signed pushes are refused and refresh nothing; `/metrics` names
//! applications only to an authenticated caller and, with `--metrics-auth`, answers 401
//! to anonymous ones.

use mooring_apiserver::{sim::SimOptions, Cluster, ClusterOptions};
use mooring_controller::{Controller, ControllerOptions};
use mooring_k8s::kube::api::{Api, DynamicObject, PostParams};
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn cm(value: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: model-config}}\ndata: {{version: \"{value}\"}}\n")
}

fn sign(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    format!(
        "sha256={}",
        bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_webhook_refreshes_the_app() {
    let repo = tempfile::tempdir().expect("tmp");
    git(repo.path(), &["init", "-q", "-b", "main"]);
    std::fs::create_dir_all(repo.path().join("app")).expect("mkdir");
    std::fs::write(repo.path().join("app/cm.yaml"), cm("1")).expect("write");
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-q", "-m", "v1"]);
    let remote = "https://git.example.com/ml/platform.git";

    // The repository is served over smart HTTP on 127.0.0.1 (git http-backend), as a Git
    // host would serve it; the Application names its public URL.
    let projects = repo.path().parent().expect("tmp parent").to_path_buf();
    let git_http = mooring_testkit::GitHttpServer::start(&projects, None).expect("git http server");
    let served = git_http.url(
        repo.path()
            .file_name()
            .and_then(|n| n.to_str())
            .expect("dir name"),
    );
    let cluster = Cluster::start(ClusterOptions {
        sim: SimOptions {
            speed: 20.0,
            ..Default::default()
        },
        crds: mooring_k8s::crds::all(),
        ..Default::default()
    })
    .await
    .expect("cluster");
    let client = mooring_k8s::client_from_kubeconfig(cluster.kubeconfig_path())
        .await
        .expect("client");
    let cache = tempfile::tempdir().expect("tmp");
    let controller = Controller::start(
        client.clone(),
        ControllerOptions {
            cache_dir: cache.path().to_path_buf(),
            poll: Duration::from_secs(3600),
            repo_aliases: vec![(remote.into(), served.clone())],
            ..Default::default()
        },
    )
    .await
    .expect("controller");
    let secret = "s3cret";
    let router = mooring_server::router(
        controller.ctx.clone(),
        mooring_server::WebhookSecrets {
            github: Some(secret.into()),
            gitlab: None,
            registry: None,
        }
        .into(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
    // A second server: no flag secret, `--metrics-auth`; mooring-secret sets GitLab's.
    let strict = mooring_server::router(
        controller.ctx.clone(),
        mooring_server::HttpOptions {
            metrics_auth: true,
            ..Default::default()
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let strict_addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, strict).await.expect("serve") });
    let store = mooring_server::store::Store::new(client.clone(), "argocd");
    let admin = store
        .ensure_admin_token()
        .await
        .expect("admin token")
        .expect("first start issues one");
    let secrets: Api<mooring_k8s::k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), "argocd");
    {
        use base64::Engine as _;
        secrets
            .patch(
                "mooring-secret",
                &Default::default(),
                &mooring_k8s::kube::api::Patch::Merge(json!({"data": {
                    "webhook.gitlab.secret": base64::engine::general_purpose::STANDARD.encode("gl-token")
                }})),
            )
            .await
            .expect("webhook.gitlab.secret");
    }

    let apps: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "argocd",
        &mooring_k8s::resources::application_resource(),
    );
    let app: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "hooked", "namespace": "argocd"},
        "spec": {"project": "default", "source": {"repoURL": remote, "targetRevision": "main", "path": "app"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "default"},
            "syncPolicy": {"automated": {"prune": true}}}
    }))
    .expect("app");
    apps.create(&PostParams::default(), &app)
        .await
        .expect("create");
    let cms: Api<DynamicObject> = Api::default_namespaced_with(
        client.clone(),
        &mooring_k8s::kube::core::ApiResource::erase::<
            mooring_k8s::k8s_openapi::api::core::v1::ConfigMap,
        >(&()),
    );
    let wait_version = |v: &'static str| {
        let cms = cms.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(Some(c)) = cms.get_opt("model-config").await {
                    if c.data["data"]["version"] == v {
                        return;
                    }
                }
                assert!(Instant::now() < deadline, "version {v} never arrived");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    wait_version("1").await;

    std::fs::write(repo.path().join("app/cm.yaml"), cm("2")).expect("write");
    git(repo.path(), &["add", "-A"]);
    git(repo.path(), &["commit", "-q", "-m", "v2"]);
    let after = git(repo.path(), &["rev-parse", "HEAD"]);
    let payload = serde_json::to_vec(&json!({
        "ref": "refs/heads/main", "after": after,
        "repository": {"html_url": "https://git.example.com/ml/platform", "clone_url": remote},
        "commits": [{"added": [], "removed": [], "modified": ["app/cm.yaml"]}],
    }))
    .expect("json");
    let http = Http(addr);
    let strict = Http(strict_addr);
    // Unsigned and wrongly signed pushes: refused, nothing refreshed.
    let (code, body) = http
        .request("POST", "/api/webhook", "X-GitHub-Event: push\r\n", &payload)
        .await;
    assert_eq!(code, 401, "unsigned: {body}");
    assert!(body.contains("X-Hub-Signature-256"), "{body}");
    let (code, _) = http.post(&payload, "sha256=00").await;
    assert_eq!(code, 401);
    let (code, body) = http.post(&payload, &sign("guess", &payload)).await;
    assert_eq!(code, 401, "{body}");
    let gitlab = serde_json::to_vec(&json!({
        "object_kind": "push", "ref": "refs/heads/main", "after": after,
        "project": {"web_url": "https://git.example.com/ml/platform", "git_http_url": remote},
        "commits": [{"added": [], "removed": [], "modified": ["app/cm.yaml"]}],
    }))
    .expect("json");
    for (server, headers, want) in [
        // mooring-secret's webhook.gitlab.secret applies to every server.
        (&http, "X-Gitlab-Event: Push Hook\r\n", 401),
        (
            &http,
            "X-Gitlab-Event: Push Hook\r\nX-Gitlab-Token: guess\r\n",
            401,
        ),
        // A secret is configured (GitLab's) but none for GitHub: refused, not accepted.
        (&strict, "X-GitHub-Event: push\r\n", 403),
    ] {
        let body = if headers.contains("Gitlab") {
            &gitlab
        } else {
            &payload
        };
        let (code, text) = server.request("POST", "/api/webhook", headers, body).await;
        assert_eq!(code, want, "{headers}: {text}");
        assert!(!text.contains("refreshing"), "{text}");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let current = cms
        .get_opt("model-config")
        .await
        .expect("get")
        .expect("exists");
    assert_eq!(
        current.data["data"]["version"], "1",
        "nothing was refreshed"
    );
    let (code, body) = http.post(&payload, &sign(secret, &payload)).await;
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("refreshing 1"), "{body}");
    wait_version("2").await;
    assert!(
        git_http.requests.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "fetched over HTTP"
    );
    // The controller's metrics are served next to the webhook; the push's commit → converged
    // time is recorded once a reconcile sees the app Synced and Healthy at it.
    let bearer = format!("Authorization: Bearer {admin}\r\n");
    let scrape = mooring_testkit::eventually(30, "convergence in /metrics", || async {
        let (_, scrape) = http.request("GET", "/metrics", &bearer, b"").await;
        (scrape.contains("mooring_commit_to_converged_seconds_count{")
            && scrape.contains("argocd_app_info{namespace=\"argocd\",name=\"hooked\""))
        .then_some(scrape)
    })
    .await;
    assert!(!scrape.contains("revision"), "{scrape}");
    assert!(scrape.contains("mooring_reconciles_total"), "{scrape}");
    // Anonymous callers: aggregates only, no application names; 401 with --metrics-auth.
    let anonymous = http.get("/metrics").await;
    assert!(anonymous.starts_with("HTTP/1.1 200"), "{anonymous}");
    assert!(
        anonymous.contains("mooring_reconciles_total"),
        "{anonymous}"
    );
    assert!(!anonymous.contains("hooked"), "{anonymous}");
    let (code, text) = strict.request("GET", "/metrics", "", b"").await;
    assert_eq!(code, 401, "{text}");
    assert!(!text.contains("hooked"), "{text}");
    let (code, text) = strict
        .request("GET", "/metrics", "Authorization: Bearer mrg_nope\r\n", b"")
        .await;
    assert_eq!(code, 401, "{text}");
    let (code, text) = strict.request("GET", "/metrics", &bearer, b"").await;
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("name=\"hooked\""), "{text}");
    // A token that may not get every application (a project role's) sees aggregates only.
    let tenant = store
        .update_tokens(|s| s.issue("proj:team-a:ci", 0, None).0)
        .await
        .expect("tenant token");
    let (code, text) = strict
        .request(
            "GET",
            "/metrics",
            &format!("Authorization: Bearer {tenant}\r\n"),
            b"",
        )
        .await;
    assert_eq!(code, 200, "{text}");
    assert!(
        text.contains("mooring_reconciles_total") && !text.contains("hooked"),
        "{text}"
    );
    // Oversized body.
    let big = vec![b' '; 2 * 1024 * 1024];
    let (code, _) = http.post(&big, &sign(secret, &big)).await;
    assert_eq!(code, 413);
}

/// A tiny HTTP/1.1 client over a TcpStream (enough for one POST).
struct Http(std::net::SocketAddr);

impl Http {
    async fn get(&self, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(self.0)
            .await
            .expect("connect");
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.expect("write");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).to_string()
    }

    /// Any request: `headers` are complete `Name: value\r\n` lines.
    async fn request(&self, method: &str, path: &str, headers: &str, body: &[u8]) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(self.0)
            .await
            .expect("connect");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.expect("write head");
        let _ = s.write_all(body).await;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        let text = String::from_utf8_lossy(&out).to_string();
        let code = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (code, text)
    }

    async fn post(&self, body: &[u8], signature: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(self.0)
            .await
            .expect("connect");
        let head = format!(
            "POST /api/webhook HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\nX-Hub-Signature-256: {signature}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.expect("write head");
        let _ = s.write_all(body).await;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        let text = String::from_utf8_lossy(&out).to_string();
        let code = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        (code, text)
    }
}

/// A standalone server (no controller in its process) marks what a push concerns with
/// Argo CD's refresh annotations — the Application whose source it touches (through the
/// repository alias of `mooring-cm`), the ApplicationSet whose git generator reads the
/// repository — and nothing else; a controller started afterwards serves and clears them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_server_marks_what_a_push_concerns_and_the_controller_clears_it() {
    let cluster = Cluster::start(ClusterOptions {
        crds: mooring_k8s::crds::all(),
        ..Default::default()
    })
    .await
    .expect("cluster");
    let client = mooring_k8s::client_from_kubeconfig(cluster.kubeconfig_path())
        .await
        .expect("client");
    let public = "https://git.example.com/ml/platform.git";
    let cms: Api<mooring_k8s::k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), "argocd");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "mooring-cm"}, "data": {
            "repository.aliases": json!([[public, "file:///srv/platform"]]).to_string()}}))
        .expect("cm"),
    )
    .await
    .expect("create cm");
    let apps: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "argocd",
        &mooring_k8s::resources::application_resource(),
    );
    for (name, repo, path) in [
        ("touched", public, "models"),
        ("elsewhere", public, "training"),
        (
            "other-repo",
            "https://git.example.com/ml/other.git",
            "models",
        ),
    ] {
        let app = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": name, "namespace": "argocd"},
            "spec": {"project": "default",
                "source": {"repoURL": repo, "targetRevision": "main", "path": path},
                "destination": {"server": "https://kubernetes.default.svc", "namespace": "x"}}});
        apps.create(
            &PostParams::default(),
            &serde_json::from_value(app).expect("app"),
        )
        .await
        .expect("create app");
    }
    let sets: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "argocd",
        &mooring_k8s::resources::applicationset_resource(),
    );
    let set = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "per-dir", "namespace": "argocd"},
        "spec": {"generators": [{"git": {"repoURL": public, "revision": "main",
                                         "directories": [{"path": "envs/*"}]}}],
                 "template": {"metadata": {"name": "{{path.basename}}"},
                    "spec": {"project": "default",
                        "source": {"repoURL": public, "targetRevision": "main", "path": "{{path}}"},
                        "destination": {"server": "https://kubernetes.default.svc", "namespace": "x"}}}}});
    sets.create(
        &PostParams::default(),
        &serde_json::from_value(set).expect("set"),
    )
    .await
    .expect("create set");

    let router = mooring_server::standalone_router(
        client.clone(),
        Default::default(),
        mooring_server::HttpOptions::default(),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
    // The push names the URL the repository is fetched from (the alias target).
    let body = json!({"ref": "refs/heads/main", "after": "1111111111111111111111111111111111111111",
        "repository": {"html_url": "file:///srv/platform", "clone_url": "file:///srv/platform"},
        "commits": [{"added": ["models/v2.yaml"], "modified": [], "removed": []}]});
    let r = reqwest::Client::new()
        .post(format!("http://{addr}/api/webhook"))
        .header("X-GitHub-Event", "push")
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        r.text().await.expect("text"),
        "refreshing 1 application(s)\n"
    );
    let annotation = |o: &DynamicObject, key: &str| {
        o.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(key).cloned())
    };
    let refresh = mooring_controller::reconcile::REFRESH_ANNOTATION;
    for (name, marked) in [
        ("touched", true),
        ("elsewhere", false),
        ("other-repo", false),
    ] {
        let o = apps.get(name).await.expect("app");
        assert_eq!(
            annotation(&o, refresh).is_some(),
            marked,
            "{name}: {:?}",
            o.metadata.annotations
        );
    }
    let set_refresh = mooring_controller::push::APPSET_REFRESH_ANNOTATION;
    assert_eq!(
        annotation(&sets.get("per-dir").await.expect("set"), set_refresh).as_deref(),
        Some("true")
    );

    // The controller serves both requests and clears them.
    let cache = tempfile::tempdir().expect("tmp");
    let _controller = Controller::start(
        client.clone(),
        ControllerOptions {
            cache_dir: cache.path().to_path_buf(),
            ..Default::default()
        },
    )
    .await
    .expect("controller");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let app = apps.get("touched").await.expect("app");
        let set = sets.get("per-dir").await.expect("set");
        if annotation(&app, refresh).is_none() && annotation(&set, set_refresh).is_none() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "refresh requests never cleared: {:?} {:?}",
            app.metadata.annotations,
            set.metadata.annotations
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
