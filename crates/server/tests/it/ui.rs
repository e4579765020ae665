//! The web UI's server side over real HTTP (the pages themselves are driven in Chromium by
//! the CLI's `web_ui_in_a_real_browser`): the login link and form set an `HttpOnly`,
//! `SameSite=Strict` cookie and redirect so the token leaves the address bar, a bad token
//! is refused on the login page, a cookie-authenticated write without the UI's header is
//! refused as cross-site, the OpenAPI document is served, and the application stream
//! delivers changes filtered by the caller's RBAC.

use mooring_apiserver::Cluster;
use mooring_k8s::kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use mooring_server::api::ApiOptions;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

async fn start() -> (Cluster, mooring_k8s::kube::Client, String, SocketAddr) {
    let (cluster, client, _, admin) = crate::api::cluster_with_admin().await;
    let addr = crate::api::serve(client.clone(), ApiOptions::default()).await;
    (cluster, client, admin, addr)
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string()))
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn app(name: &str, project: &str) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {"project": project,
            "source": {"repoURL": "https://git.example.com/ml/platform.git", "targetRevision": "main", "path": "apps/x"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "ml"}}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_cookie_csrf_and_openapi() {
    let (_cluster, _client, admin, addr) = start().await;
    let base = format!("http://{addr}");
    let c = http();

    // The page and its assets, with a policy that allows only this origin's script.
    let page = c
        .get(format!("{base}/applications"))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(page.text().await.expect("html").contains("/assets/app.js"));
    let js = c
        .get(format!("{base}/assets/app.js"))
        .send()
        .await
        .expect("js");
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );

    // A bad token: the login page again, with why, and no cookie.
    let bad = c
        .get(format!("{base}/login?token=mrg_not-a-real-token"))
        .send()
        .await
        .expect("bad login");
    assert_eq!(bad.status(), 401);
    assert!(bad.headers().get("set-cookie").is_none());
    assert!(bad.text().await.expect("html").contains("login failed"));
    let hostile = c
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=%3Cscript%3Ealert(1)%3C%2Fscript%3E")
        .send()
        .await
        .expect("hostile login");
    let text = hostile.text().await.expect("html");
    assert!(!text.contains("<script>alert"), "{text}");

    // The one-click link: a cookie scripts cannot read, and a redirect to /.
    let link = c
        .get(format!("{base}/login?token={admin}"))
        .send()
        .await
        .expect("login link");
    assert_eq!(link.status(), 303);
    assert_eq!(link.headers()["location"], "/");
    assert_eq!(link.headers()["referrer-policy"], "no-referrer");
    let cookie = link.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    assert!(
        cookie.starts_with(&format!("argocd.token={admin};"))
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    // The form does the same.
    let form = c
        .post(format!("{base}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={admin}"))
        .send()
        .await
        .expect("login form");
    assert_eq!(form.status(), 303);
    let jar = format!("argocd.token={admin}");

    // The cookie authenticates reads …
    let me: Value = c
        .get(format!("{base}/api/v1/session/userinfo"))
        .header("cookie", &jar)
        .send()
        .await
        .expect("userinfo")
        .text()
        .await
        .map(|t| parse(&t))
        .expect("json");
    assert_eq!(me["username"], "admin", "{me}");
    // … and writes only with the UI's header: a cross-site form post is refused.
    let forged = c
        .post(format!("{base}/api/v1/applications"))
        .header("cookie", &jar)
        .header("content-type", "application/json")
        .body(app("model", "default").to_string())
        .send()
        .await
        .expect("forged");
    assert_eq!(forged.status(), 403);
    let why: Value = forged.text().await.map(|t| parse(&t)).expect("json");
    assert!(
        why["message"]
            .as_str()
            .is_some_and(|m| m.contains("cross-site")),
        "{why}"
    );
    let created = c
        .post(format!("{base}/api/v1/applications"))
        .header("cookie", &jar)
        .header("x-requested-with", "mooring-ui")
        .header("content-type", "application/json")
        .body(app("model", "default").to_string())
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    // A bearer token needs no such header (scripts and the CLI).
    let synced = c
        .post(format!("{base}/api/v1/applications/model/sync"))
        .bearer_auth(&admin)
        .header("content-type", "application/json").body(json!({"dryRun": true, "resources": [{"kind": "ConfigMap", "name": "x"}], "syncOptions": {"items": ["ServerSideApply=true"]}}).to_string())
        .send()
        .await
        .expect("sync");
    assert_eq!(synced.status(), 200);
    let op: Value = synced.text().await.map(|t| parse(&t)).expect("json");
    assert_eq!(op["operation"]["sync"]["dryRun"], true, "{op}");
    assert_eq!(op["operation"]["sync"]["resources"][0]["name"], "x", "{op}");
    assert_eq!(
        op["operation"]["sync"]["syncOptions"][0], "ServerSideApply=true",
        "{op}"
    );

    // Logging out forgets the cookie.
    let out = c
        .post(format!("{base}/logout"))
        .send()
        .await
        .expect("logout");
    assert_eq!(out.status(), 303);
    assert!(out.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .contains("Max-Age=0"));

    // The OpenAPI document, without a token.
    let doc: Value = c
        .get(format!("{base}/api/openapi.json"))
        .send()
        .await
        .expect("openapi")
        .text()
        .await
        .map(|t| parse(&t))
        .expect("json");
    assert!(doc["paths"]["/api/v1/applications/{name}/resource-tree"]["get"].is_object());
}

/// Read the next server-sent events until `done` returns true for those read by this call.
async fn events_until(
    resp: &mut reqwest::Response,
    secs: u64,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let (mut buf, mut seen) = (String::new(), Vec::new());
    while !done(&seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "stream events so far: {seen:?}");
        let Ok(chunk) = tokio::time::timeout(left, resp.chunk()).await else {
            continue;
        };
        let Some(chunk) = chunk.expect("stream") else {
            panic!("the stream ended: {seen:?}")
        };
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(i) = buf.find("\n\n") {
            let event: String = buf.drain(..i + 2).collect();
            for line in event.lines() {
                if let Some(data) = line.strip_prefix("data: ") {
                    let v: Value = serde_json::from_str(data).expect("event JSON");
                    seen.push(json!([
                        v["result"]["type"],
                        v["result"]["application"]["metadata"]["name"]
                    ]));
                }
            }
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_application_stream_follows_changes_the_caller_may_see() {
    let (_cluster, client, admin, addr) = start().await;
    let base = format!("http://{addr}");
    let projects: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "argocd",
        &mooring_k8s::resources::appproject_resource(),
    );
    for (name, policies) in [
        (
            "ml",
            vec!["p, proj:ml:viewer, applications, get, ml/*, allow"],
        ),
        ("other", vec![]),
    ] {
        let p: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
            "metadata": {"name": name, "namespace": "argocd"},
            "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}],
                     "roles": [{"name": "viewer", "policies": policies}]}
        }))
        .expect("project");
        projects
            .create(&PostParams::default(), &p)
            .await
            .expect("create project");
    }
    let apps: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "argocd",
        &mooring_k8s::resources::application_resource(),
    );
    for (name, project) in [("model", "ml"), ("secret-model", "other")] {
        let a: DynamicObject = serde_json::from_value(app(name, project)).expect("app");
        apps.create(&PostParams::default(), &a)
            .await
            .expect("create");
    }
    let c = http();
    let issued: Value = c
        .post(format!("{base}/api/v1/projects/ml/roles/viewer/token"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body(json!({}).to_string())
        .send()
        .await
        .expect("token")
        .text()
        .await
        .map(|t| parse(&t))
        .expect("json");
    let viewer = issued["token"].as_str().expect("token").to_string();

    let mut stream = c
        .get(format!("{base}/api/v1/stream/applications"))
        .bearer_auth(&viewer)
        .send()
        .await
        .expect("stream");
    assert_eq!(stream.status(), 200);
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    // First what exists, then changes: only the project's app.
    let seen = events_until(&mut stream, 30, |s| !s.is_empty()).await;
    assert_eq!(seen, vec![json!(["ADDED", "model"])]);
    let started = Instant::now();
    for name in ["secret-model", "model"] {
        apps.patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"changed": "yes"}}})),
        )
        .await
        .expect("patch");
    }
    // Only the project's app: the other project's change is not announced.
    let seen = events_until(&mut stream, 30, |s| !s.is_empty()).await;
    assert_eq!(seen, vec![json!(["MODIFIED", "model"])]);
    eprintln!("change → event: {} ms", started.elapsed().as_millis());
    apps.delete("model", &Default::default())
        .await
        .expect("delete");
    let seen = events_until(&mut stream, 30, |s| !s.is_empty()).await;
    assert_eq!(seen, vec![json!(["DELETED", "model"])]);

    // A filter by name; an unknown namespace is refused.
    let mut admin_stream = c
        .get(format!(
            "{base}/api/v1/stream/applications?name=secret-model"
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("stream");
    let seen = events_until(&mut admin_stream, 30, |s| !s.is_empty()).await;
    assert_eq!(seen, vec![json!(["ADDED", "secret-model"])]);
    let refused = c
        .get(format!(
            "{base}/api/v1/stream/applications?appNamespace=kube-system"
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .expect("refused");
    assert_eq!(refused.status(), 400);
    // Without a token: 401, as every route.
    let anonymous = c
        .get(format!("{base}/api/v1/stream/applications"))
        .send()
        .await
        .expect("anonymous");
    assert_eq!(anonymous.status(), 401);
}

/// The views read with the control plane's credentials, so they serve only the app's own
/// tree: a pod or a rollout outside it answers 404 whatever the caller may do elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_serve_only_the_applications_own_tree() {
    let (cluster, client, admin, addr) = start().await;
    let base = format!("http://{addr}");
    let kc = cluster.kubeconfig_path().to_path_buf();
    let apply = |yaml: &str| {
        let mut child = std::process::Command::new("kubectl")
            .args(["apply", "-f", "-"])
            .env("KUBECONFIG", &kc)
            .stdin(std::process::Stdio::piped())
            .output_with_stdin(yaml);
        assert!(
            child.status.success(),
            "{}",
            String::from_utf8_lossy(&child.stderr)
        );
        child.stdout.clear();
    };
    apply(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: ml}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: model, namespace: ml}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: model}}\n  template:\n    metadata: {labels: {app: model}}\n    spec: {containers: [{name: server, image: registry.local/model:1}]}\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: stranger, namespace: ml}\nspec: {containers: [{name: c, image: registry.local/other:1}]}\n",
    );
    let apps: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "argocd",
        &mooring_k8s::resources::application_resource(),
    );
    let a: DynamicObject = serde_json::from_value(app("model", "default")).expect("app");
    apps.create(&PostParams::default(), &a)
        .await
        .expect("create");
    // What the controller would have written: the app manages the Deployment.
    apps.patch(
        "model",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"resources": [
            {"group": "apps", "version": "v1", "kind": "Deployment", "namespace": "ml", "name": "model", "status": "Synced"}
        ]}})),
    )
    .await
    .expect("status");
    let c = http();
    let get = |path: String, token: String| {
        let c = c.clone();
        async move {
            let r = c.get(path).bearer_auth(token).send().await.expect("get");
            let code = r.status().as_u16();
            (code, r.text().await.unwrap_or_default())
        }
    };
    // The tree: Deployment → ReplicaSet → Pod, each with its parent.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (pod, tree) = loop {
        let (code, text) = get(
            format!("{base}/api/v1/applications/model/resource-tree"),
            admin.clone(),
        )
        .await;
        assert_eq!(code, 200, "{text}");
        let tree = parse(&text);
        let nodes = tree["nodes"].as_array().cloned().unwrap_or_default();
        let pod = nodes.iter().find(|n| n["kind"] == "Pod").cloned();
        if let Some(pod) = pod {
            break (pod, nodes);
        }
        assert!(Instant::now() < deadline, "no pod in the tree: {tree}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let rs = tree
        .iter()
        .find(|n| n["kind"] == "ReplicaSet")
        .expect("a ReplicaSet");
    assert_eq!(pod["parentRefs"][0]["kind"], "ReplicaSet", "{pod}");
    assert_eq!(rs["parentRefs"][0]["kind"], "Deployment", "{rs}");
    assert!(
        !tree.iter().any(|n| n["name"] == "stranger"),
        "a pod the app does not own is in its tree"
    );
    let pod_name = pod["name"].as_str().expect("name").to_string();
    // The log, once the simulated container runs (400 from the API server before).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, text) = get(
            format!("{base}/api/v1/applications/model/pods/{pod_name}/logs?namespace=ml"),
            admin.clone(),
        )
        .await;
        if code == 200 {
            break;
        }
        assert!(
            code == 400 && text.contains("waiting to start") && Instant::now() < deadline,
            "{code} {text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, text) = get(
        format!("{base}/api/v1/applications/model/pods/stranger/logs?namespace=ml"),
        admin.clone(),
    )
    .await;
    assert_eq!(code, 404, "{text}");
    assert!(text.contains("not part of application model"), "{text}");
    // Rollout actions: only on a Rollout the app manages, only the known ones.
    let post = |path: String| {
        let c = c.clone();
        let admin = admin.clone();
        async move {
            let r = c
                .post(path)
                .bearer_auth(admin)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .expect("post");
            let code = r.status().as_u16();
            (code, r.text().await.unwrap_or_default())
        }
    };
    let (code, text) = post(format!(
        "{base}/api/v1/applications/model/rollouts/ml/model/abort"
    ))
    .await;
    assert_eq!(code, 404, "{text}");
    let (code, text) = post(format!(
        "{base}/api/v1/applications/model/rollouts/ml/model/delete-everything"
    ))
    .await;
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("unknown rollout action"), "{text}");
    // Events of the tree; a name that is no Kubernetes name is refused before RBAC.
    let (code, text) = get(
        format!("{base}/api/v1/applications/model/events"),
        admin.clone(),
    )
    .await;
    assert_eq!(code, 200, "{text}");
    let (code, _) = get(
        format!("{base}/api/v1/applications/a%2Fb/resource-tree"),
        admin.clone(),
    )
    .await;
    assert_eq!(code, 400);
}

/// `Command::output` with a stdin.
trait OutputWithStdin {
    fn output_with_stdin(&mut self, input: &str) -> std::process::Output;
}

impl OutputWithStdin for std::process::Command {
    fn output_with_stdin(&mut self, input: &str) -> std::process::Output {
        use std::io::Write;
        let mut child = self
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
        child.wait_with_output().expect("wait")
    }
}
