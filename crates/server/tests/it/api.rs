//! The REST API against the embedded cluster over real HTTP: project-role and account
//! tokens are authorised by Argo CD's RBAC model (an ML engineer can sync, a data
//! scientist can get but not sync), bad tokens answer 401/403 without a crash, and
//! brute force is rate-limited.

use mooring_apiserver::{Cluster, ClusterOptions};
use mooring_k8s::k8s_openapi::api::core::v1::ConfigMap;
use mooring_k8s::kube::api::{Api, DynamicObject, PostParams};
use mooring_k8s::resources::appproject_resource;
use mooring_server::api::ApiOptions;
use mooring_server::store::Store;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;

fn generic_crd(kind: &str, plural: &str) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.argoproj.io")},
        "spec": {"group": "argoproj.io", "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "listKind": format!("{kind}List"), "singular": kind.to_lowercase()},
            "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    })
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

/// A small HTTP/1.1 client over a TcpStream: (status, Retry-After, JSON body).
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> (u16, Option<String>, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let body = body.unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
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
    let (head, payload) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let retry = head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("retry-after:")
            .map(|v| v.trim().to_string())
    });
    let json = serde_json::from_str(payload).unwrap_or(Value::String(payload.to_string()));
    (code, retry, json)
}

/// An embedded cluster with every CRD, a client, the token store in `argocd` and the
/// admin's first token.
pub(crate) async fn cluster_with_admin() -> (Cluster, mooring_k8s::kube::Client, Store, String) {
    let cluster = Cluster::start(ClusterOptions {
        crds: mooring_k8s::crds::all(),
        ..Default::default()
    })
    .await
    .expect("cluster");
    let client = mooring_k8s::client_from_kubeconfig(cluster.kubeconfig_path())
        .await
        .expect("client");
    let store = Store::new(client.clone(), "argocd");
    let admin = store
        .ensure_admin_token()
        .await
        .expect("admin token")
        .expect("first start issues one");
    (cluster, client, store, admin)
}

pub(crate) async fn serve(client: mooring_k8s::kube::Client, opts: ApiOptions) -> SocketAddr {
    let router = mooring_server::api::router(client, opts);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("serve")
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_roles_accounts_and_bad_tokens() {
    let mut crds = mooring_k8s::crds::all();
    for (kind, plural) in [
        ("AppProject", "appprojects"),
        ("ApplicationSet", "applicationsets"),
    ] {
        let served = crds.iter().any(|c| c["spec"]["names"]["kind"] == kind);
        if !served {
            crds.push(generic_crd(kind, plural));
        }
    }
    let cluster = Cluster::start(ClusterOptions {
        crds,
        ..Default::default()
    })
    .await
    .expect("cluster");
    let client = mooring_k8s::client_from_kubeconfig(cluster.kubeconfig_path())
        .await
        .expect("client");

    // Accounts (mooring-cm), the seed's project roles, applications of two projects.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "argocd");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "mooring-cm"}, "data": {
            "accounts.alice": "apiKey", "accounts.alice.groups": "ml-engineers",
            "accounts.dora": "apiKey", "accounts.dora.groups": "data-scientists",
        }}))
        .expect("cm"),
    )
    .await
    .expect("mooring-cm");
    let projects: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "argocd", &appproject_resource());
    projects
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
                "metadata": {"name": "ml-platform", "namespace": "argocd"},
                "spec": {"roles": [
                    {"name": "ml-engineers", "groups": ["ml-engineers"], "policies": [
                        "p, proj:ml-platform:ml-engineers, applications, get, ml-platform/*, allow",
                        "p, proj:ml-platform:ml-engineers, applications, sync, ml-platform/*, allow"]},
                    {"name": "data-scientists", "groups": ["data-scientists"], "policies": [
                        "p, proj:ml-platform:data-scientists, applications, get, ml-platform/*, allow"]},
                ]}
            }))
            .expect("project"),
        )
        .await
        .expect("create project");
    let apps: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "argocd",
        &mooring_k8s::resources::application_resource(),
    );
    for (name, project) in [
        ("inference-east", "ml-platform"),
        ("inference-west", "ml-platform"),
        ("billing", "finance"),
    ] {
        apps.create(
            &PostParams::default(),
            &serde_json::from_value(app(name, project)).expect("app"),
        )
        .await
        .expect("create app");
    }

    let store = Store::new(client.clone(), "argocd");
    let admin = store
        .ensure_admin_token()
        .await
        .expect("admin token")
        .expect("first start issues one");
    assert!(
        store.ensure_admin_token().await.expect("store").is_none(),
        "shown once: not reissued while valid"
    );
    let addr = serve(client.clone(), ApiOptions::default()).await;

    // The admin sees every application.
    let (code, _, body) = call(addr, "GET", "/api/v1/applications", Some(&admin), None).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["items"].as_array().map(Vec::len), Some(3), "{body}");

    // Project-role tokens, issued over the API by the admin.
    let tok = |role: &'static str| {
        let admin = admin.clone();
        async move {
            let (code, _, body) = call(
                addr,
                "POST",
                &format!("/api/v1/projects/ml-platform/roles/{role}/token"),
                Some(&admin),
                Some(br#"{"expiresIn": "1d"}"#),
            )
            .await;
            assert_eq!(code, 200, "{body}");
            assert!(body["expiresAt"].as_i64().is_some(), "{body}");
            body["token"].as_str().expect("token").to_string()
        }
    };
    let eng = tok("ml-engineers").await;
    let ds = tok("data-scientists").await;
    let (code, _, body) = call(
        addr,
        "POST",
        "/api/v1/projects/ml-platform/roles/nope/token",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(code, 404, "{body}");

    // An ML engineer's token syncs an app of ml-platform …
    let (code, _, body) = call(
        addr,
        "POST",
        "/api/v1/applications/inference-east/sync",
        Some(&eng),
        Some(br#"{"prune": true}"#),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        body["operation"]["initiatedBy"]["username"], "proj:ml-platform:ml-engineers",
        "{body}"
    );
    assert_eq!(body["operation"]["sync"]["prune"], true);
    // … but nothing of another project (wrong project → 403).
    let (code, _, body) = call(
        addr,
        "POST",
        "/api/v1/applications/billing/sync",
        Some(&eng),
        None,
    )
    .await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body["message"],
        "permission denied: applications, sync, finance/billing, sub: proj:ml-platform:ml-engineers"
    );

    // A data scientist can get, not sync: 403 with Argo CD's message.
    let (code, _, body) = call(
        addr,
        "GET",
        "/api/v1/applications/inference-west",
        Some(&ds),
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let (code, _, body) = call(
        addr,
        "POST",
        "/api/v1/applications/inference-west/sync",
        Some(&ds),
        None,
    )
    .await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(
        body["error"],
        "permission denied: applications, sync, ml-platform/inference-west, sub: proj:ml-platform:data-scientists"
    );
    assert_eq!(body["code"], 403);
    // Lists are filtered; unknown or hidden apps answer 403, not 404.
    let (_, _, body) = call(addr, "GET", "/api/v1/applications", Some(&ds), None).await;
    assert_eq!(body["items"].as_array().map(Vec::len), Some(2), "{body}");
    for path in ["/api/v1/applications/billing", "/api/v1/applications/nope"] {
        let (code, _, body) = call(addr, "GET", path, Some(&ds), None).await;
        assert_eq!(code, 403, "{path}: {body}");
    }
    let (code, _, _) = call(addr, "GET", "/api/v1/applications/nope", Some(&admin), None).await;
    assert_eq!(code, 404);

    // Accounts with groups bound by the project's roles.
    let account_token = |name: &'static str| {
        let admin = admin.clone();
        async move {
            let (code, _, body) = call(
                addr,
                "POST",
                &format!("/api/v1/account/{name}/token"),
                Some(&admin),
                Some(b"{}"),
            )
            .await;
            assert_eq!(code, 200, "{body}");
            (
                body["token"].as_str().expect("token").to_string(),
                body["id"].as_str().expect("id").to_string(),
            )
        }
    };
    let (alice, alice_id) = account_token("alice").await;
    let (dora, _) = account_token("dora").await;
    let (code, _, body) = call(
        addr,
        "POST",
        "/api/v1/applications/inference-west/sync",
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["operation"]["initiatedBy"]["username"], "alice");
    let (code, _, body) = call(
        addr,
        "POST",
        "/api/v1/applications/inference-east/sync",
        Some(&dora),
        None,
    )
    .await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.ends_with("sub: dora")),
        "{body}"
    );
    let (code, _, body) = call(addr, "GET", "/api/v1/session/userinfo", Some(&alice), None).await;
    assert_eq!(code, 200);
    assert_eq!(body["username"], "alice");
    assert_eq!(body["groups"], json!(["ml-engineers"]));
    let (_, _, body) = call(
        addr,
        "GET",
        "/api/v1/account/can-i/applications/sync/ml-platform/inference-east",
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(body["value"], "yes");
    // alice may not mint tokens for others.
    let (code, _, _) = call(
        addr,
        "POST",
        "/api/v1/account/dora/token",
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(code, 403);

    // Create / update / delete are authorised too.
    let east = serde_json::to_vec(&app("ml-new", "ml-platform")).expect("json");
    let (code, _, body) = call(
        addr,
        "POST",
        "/api/v1/applications",
        Some(&eng),
        Some(&east),
    )
    .await;
    assert_eq!(code, 403, "{body}");
    let (code, _, body) = call(
        addr,
        "POST",
        "/api/v1/applications",
        Some(&admin),
        Some(&east),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    let (code, _, _) = call(
        addr,
        "POST",
        "/api/v1/applications",
        Some(&admin),
        Some(&east),
    )
    .await;
    assert_eq!(code, 409);
    let moved = serde_json::to_vec(&app("ml-new", "finance")).expect("json");
    let (code, _, body) = call(
        addr,
        "PUT",
        "/api/v1/applications/ml-new",
        Some(&admin),
        Some(&moved),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["spec"]["project"], "finance");
    let (code, _, _) = call(
        addr,
        "DELETE",
        "/api/v1/applications/ml-new?cascade=false",
        Some(&ds),
        None,
    )
    .await;
    assert_eq!(code, 403);
    let (code, _, body) = call(
        addr,
        "DELETE",
        "/api/v1/applications/ml-new?cascade=false",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");

    // Rollback is a sync: authorised as such, refused without history or under auto-sync.
    let (code, _, body) = call(
        addr,
        "POST",
        "/api/v1/applications/inference-west/rollback",
        Some(&ds),
        Some(br#"{"id": 1}"#),
    )
    .await;
    assert_eq!(code, 403, "{body}");
    apps.patch(
        "billing",
        &Default::default(),
        &mooring_k8s::kube::api::Patch::Merge(json!({"status": {"history": [
            {"id": 1, "revision": "abc123", "deployedAt": "2026-01-01T00:00:00Z"}]}})),
    )
    .await
    .expect("history");
    let rollback = |id: i64| {
        let admin = admin.clone();
        async move {
            call(
                addr,
                "POST",
                "/api/v1/applications/billing/rollback",
                Some(&admin),
                Some(format!(r#"{{"id": {id}}}"#).as_bytes()),
            )
            .await
        }
    };
    let (code, _, body) = rollback(7).await;
    assert_eq!(code, 400, "{body}");
    let (code, _, body) = rollback(1).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["operation"]["sync"]["revision"], "abc123");
    let (code, _, body) = rollback(1).await;
    assert_eq!(code, 409, "an operation is pending: {body}");

    // A multi-source app: `revisions` + `sourcePositions` as Argo CD's sync request; a
    // single `revision` is ambiguous and refused; a multi-source history entry rolls
    // back every source.
    let mut multi = app("multi", "finance");
    multi["spec"]["sources"] = json!([
        {"repoURL": "https://git.example.com/ml/platform.git", "targetRevision": "main", "path": "apps/x"},
        {"repoURL": "https://git.example.com/ml/values.git", "targetRevision": "main", "ref": "values"},
    ]);
    apps.create(
        &PostParams::default(),
        &serde_json::from_value(multi).expect("app"),
    )
    .await
    .expect("create multi");
    let sync_multi = |body: &'static str| {
        let admin = admin.clone();
        async move {
            call(
                addr,
                "POST",
                "/api/v1/applications/multi/sync",
                Some(&admin),
                Some(body.as_bytes()),
            )
            .await
        }
    };
    let (code, _, body) = sync_multi(r#"{"revision": "v2"}"#).await;
    assert_eq!(code, 400, "{body}");
    assert!(body.to_string().contains("--source-positions"), "{body}");
    let (code, _, body) = sync_multi(r#"{"revisions": ["v2"], "sourcePositions": [3]}"#).await;
    assert_eq!(code, 400, "{body}");
    assert!(body.to_string().contains("out of range"), "{body}");
    let (code, _, body) = sync_multi(r#"{"revisions": ["v2"], "sourcePositions": [2]}"#).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["operation"]["sync"]["revisions"], json!(["", "v2"]));
    assert!(body["operation"]["sync"]["revision"].is_null(), "{body}");

    // ApplicationSets are authorised on the project of their template.
    let sets: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "argocd",
        &mooring_k8s::resources::applicationset_resource(),
    );
    for (name, project) in [
        ("ml-inference-services", "ml-platform"),
        ("ledgers", "finance"),
    ] {
        sets.create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
                "metadata": {"name": name, "namespace": "argocd"},
                "spec": {"generators": [], "template": {"metadata": {"name": "x"}, "spec": {"project": project}}}
            }))
            .expect("set"),
        )
        .await
        .expect("create set");
    }
    let (code, _, body) = call(addr, "GET", "/api/v1/applicationsets", Some(&admin), None).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["items"].as_array().map(Vec::len), Some(2), "{body}");
    let (code, _, body) = call(
        addr,
        "GET",
        "/api/v1/applicationsets/ledgers",
        Some(&ds),
        None,
    )
    .await;
    assert_eq!(code, 403, "{body}");
    let (code, _, body) = call(
        addr,
        "GET",
        "/api/v1/projects/ml-platform",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["spec"]["roles"][0]["name"], "ml-engineers");
    // A project's roles may read their own project, no other.
    let (code, _, _) = call(addr, "GET", "/api/v1/projects/ml-platform", Some(&ds), None).await;
    assert_eq!(code, 200);
    let (code, _, _) = call(addr, "GET", "/api/v1/projects/finance", Some(&ds), None).await;
    assert_eq!(code, 403);

    // A project token dies with its role.
    let mut p = projects.get("ml-platform").await.expect("project");
    p.data["spec"]["roles"] = json!([p.data["spec"]["roles"][1].clone()]);
    projects
        .replace("ml-platform", &PostParams::default(), &p)
        .await
        .expect("drop the ml-engineers role");
    let (code, _, body) = call(
        addr,
        "GET",
        "/api/v1/applications/inference-east",
        Some(&eng),
        None,
    )
    .await;
    assert_eq!(code, 403, "{body}");

    // Bad credentials: 401, never a crash.
    let expired = store
        .update_tokens(|s| s.issue("admin", 1_000, Some(Duration::from_secs(10))).0)
        .await
        .expect("issue expired");
    let garbage = "mrg_".to_string() + &"A".repeat(43);
    for (token, needle) in [
        (None, "no credentials"),
        (Some("not-a-token"), "malformed"),
        (Some("mrg_!!"), "malformed"),
        (Some(garbage.as_str()), "invalid or revoked"),
        (Some(expired.as_str()), "expired"),
    ] {
        let (code, _, body) = call(addr, "GET", "/api/v1/applications", token, None).await;
        assert_eq!(code, 401, "{token:?}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| m.contains(needle)),
            "{token:?}: {body}"
        );
    }
    // Revoked: alice's token stops working at once.
    let (code, _, _) = call(
        addr,
        "DELETE",
        &format!("/api/v1/account/alice/token/{alice_id}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(code, 200);
    let (code, _, body) = call(addr, "GET", "/api/v1/session/userinfo", Some(&alice), None).await;
    assert_eq!(code, 401, "{body}");
    // A disabled account's tokens stop working too.
    cms.patch(
        "mooring-cm",
        &Default::default(),
        &mooring_k8s::kube::api::Patch::Merge(json!({"data": {"accounts.dora.enabled": "false"}})),
    )
    .await
    .expect("disable dora");
    let (code, _, _) = call(addr, "GET", "/api/v1/session/userinfo", Some(&dora), None).await;
    assert_eq!(code, 401);
    // Oversized body: 413 as JSON.
    let big = vec![b' '; 2 * 1024 * 1024];
    let (code, _, body) = call(
        addr,
        "POST",
        "/api/v1/applications",
        Some(&admin),
        Some(&big),
    )
    .await;
    assert_eq!(code, 413, "{body}");
    let (code, _, body) = call(
        addr,
        "POST",
        "/api/v1/applications",
        Some(&admin),
        Some(b"{nope"),
    )
    .await;
    assert_eq!(code, 400, "{body}");

    // Brute force: after the burst, 429 with Retry-After — but never for a good token.
    let limited = serve(
        client.clone(),
        ApiOptions {
            failure_burst: 3,
            failure_refill_per_second: 0.01,
            ..Default::default()
        },
    )
    .await;
    for i in 0..3 {
        let guess = format!("mrg_{}{i}", "B".repeat(42));
        let (code, _, _) = call(limited, "GET", "/api/v1/applications", Some(&guess), None).await;
        assert_eq!(code, 401);
    }
    let (code, retry, body) =
        call(limited, "GET", "/api/v1/applications", Some(&garbage), None).await;
    assert_eq!(code, 429, "{body}");
    assert!(retry.is_some_and(|r| r.parse::<u64>().is_ok_and(|s| s >= 1)));
    let (code, _, body) = call(limited, "GET", "/api/v1/applications", Some(&admin), None).await;
    assert_eq!(code, 200, "a valid token is never refused: {body}");
    // The other server (its own limiter) serves the admin too.
    let (code, _, _) = call(addr, "GET", "/api/v1/projects", Some(&admin), None).await;
    assert_eq!(code, 200);

    // Broken settings fail closed with a clear error, never a panic.
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "mooring-rbac-cm"},
            "data": {"policy.csv": "p, role:x, applications, get, */*, allow\np, oops"}}))
        .expect("cm"),
    )
    .await
    .expect("rbac cm");
    let (code, _, body) = call(addr, "GET", "/api/v1/applications", Some(&admin), None).await;
    assert_eq!(code, 500, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("mooring-rbac-cm") && m.contains("line 2")),
        "{body}"
    );
    let secrets: Api<mooring_k8s::k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), "argocd");
    secrets
        .patch(
            "mooring-secret",
            &Default::default(),
            &mooring_k8s::kube::api::Patch::Merge(
                json!({"stringData": null, "data": {"tokens.json": "bm90IGpzb24="}}),
            ),
        )
        .await
        .expect("corrupt the token store");
    let (code, _, body) = call(addr, "GET", "/api/v1/applications", Some(&admin), None).await;
    assert_eq!(code, 500, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("tokens.json")),
        "{body}"
    );
}

/// Copy a directory tree (the example repository) into `to`.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let ft = e.file_type().expect("type");
        if ft.is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else if ft.is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
        }
    }
}

/// Issue 5's acceptance with the seed manifests verbatim: the `ml-platform` AppProject and
/// the `ml-inference-services` ApplicationSet over three production inference clusters
/// give three inference apps, each on its cluster; an ML engineer's project token syncs
/// one over the API, a data scientist's gets it but is refused the sync with 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_project_roles_on_the_seed_fleet() {
    use mooring_k8s::registry::{secret_for, ClusterEntry};
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ml-platform");
    let repo = tempfile::tempdir().expect("tmp");
    copy_tree(&example, repo.path());
    for args in [
        &["init", "-q", "-b", "main"][..],
        &["add", "-A"],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "commit",
            "-q",
            "-m",
            "seed",
        ],
    ] {
        let o = std::process::Command::new("git")
            .args(args)
            .current_dir(repo.path())
            .output()
            .expect("git");
        assert!(o.status.success(), "git {args:?}");
    }
    let mgmt = Cluster::start(ClusterOptions {
        crds: mooring_k8s::crds::all(),
        sim: mooring_apiserver::sim::SimOptions {
            speed: 20.0,
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .expect("management cluster");
    let client = mooring_k8s::client_from_kubeconfig(mgmt.kubeconfig_path())
        .await
        .expect("client");
    let cache = tempfile::tempdir().expect("tmp");
    let _controller = mooring_controller::Controller::start(
        client.clone(),
        mooring_controller::ControllerOptions {
            cache_dir: cache.path().to_path_buf(),
            operation_poll: Duration::from_millis(100),
            repo_aliases: vec![(
                "https://git.example.com/ml-platform/platform.git".into(),
                format!("file://{}", repo.path().display()),
            )],
            ..Default::default()
        },
    )
    .await
    .expect("controller");
    // Three production inference clusters, registered as Argo CD cluster Secrets.
    let secrets: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "argocd",
        &mooring_k8s::kube::core::ApiResource::from_gvk_with_plural(
            &mooring_k8s::kube::core::GroupVersionKind::gvk("", "v1", "Secret"),
            "secrets",
        ),
    );
    let mut fleet = Vec::new();
    for name in ["prod-us-east", "prod-eu-west", "prod-ap-south"] {
        let cl = Cluster::start(ClusterOptions::default())
            .await
            .expect("destination cluster");
        let entry = ClusterEntry {
            project: String::new(),
            name: name.into(),
            server: cl.url(),
            config: cl.client_config(),
            labels: [
                ("environment".to_string(), "production".to_string()),
                ("workload-type".to_string(), "inference".to_string()),
            ]
            .into(),
            annotations: Default::default(),
        };
        let secret: DynamicObject =
            serde_json::from_value(secret_for(&entry, "argocd")).expect("secret");
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("cluster secret");
        fleet.push(cl);
    }
    // The seed project and ApplicationSet, verbatim.
    for (file, resource) in [
        ("projects/ml-platform.yaml", appproject_resource()),
        (
            "applicationsets/ml-inference-services.yaml",
            mooring_k8s::resources::applicationset_resource(),
        ),
    ] {
        let text = std::fs::read_to_string(example.join(file)).expect("seed file");
        let v = mooring_core::yaml::parse_one(&text).expect("yaml");
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "argocd", &resource);
        api.create(
            &PostParams::default(),
            &serde_json::from_value(v).expect("object"),
        )
        .await
        .expect("create seed object");
    }

    let store = Store::new(client.clone(), "argocd");
    let eng = store
        .issue("proj:ml-platform:ml-engineers", None)
        .await
        .expect("engineer token")
        .0;
    let ds = store
        .issue("proj:ml-platform:data-scientists", None)
        .await
        .expect("data scientist token")
        .0;
    let addr = serve(client.clone(), ApiOptions::default()).await;
    let names = [
        "inference-prod-us-east",
        "inference-prod-eu-west",
        "inference-prod-ap-south",
    ];
    mooring_testkit::eventually(120, "three inference apps, Synced", || async {
        let (code, _, body) = call(addr, "GET", "/api/v1/applications", Some(&eng), None).await;
        let items = body["items"].as_array()?.clone();
        let synced = names.iter().all(|n| {
            items
                .iter()
                .any(|a| a["metadata"]["name"] == *n && a["status"]["sync"]["status"] == "Synced")
        });
        (code == 200 && synced).then_some(())
    })
    .await;
    // Each app on its own cluster.
    for (cl, name) in fleet.iter().zip(names) {
        let path = format!("/api/v1/applications/{name}");
        let (_, _, app) = call(addr, "GET", &path, Some(&eng), None).await;
        assert_eq!(
            app["spec"]["destination"]["server"],
            cl.url().as_str(),
            "{app}"
        );
    }
    // The data scientist can look, not sync; the ML engineer can sync.
    let app = "/api/v1/applications/inference-prod-us-east";
    let (code, _, body) = call(addr, "GET", app, Some(&ds), None).await;
    assert_eq!(code, 200, "{body}");
    let sync = format!("{app}/sync");
    let (code, _, body) = call(addr, "POST", &sync, Some(&ds), Some(b"{}")).await;
    assert_eq!(code, 403, "{body}");
    assert!(
        body.to_string()
            .contains("permission denied: applications, sync, ml-platform/inference-prod-us-east"),
        "{body}"
    );
    let (code, _, body) = call(addr, "POST", &sync, Some(&eng), Some(b"{}")).await;
    assert!((200..300).contains(&code), "{code} {body}");
}

/// Applications in any namespace over the API, as Argo CD: `?appNamespace=`, the payload's
/// `metadata.namespace`, RBAC objects `PROJECT/NAMESPACE/NAME`; a namespace the control
/// plane does not read, or one the project does not list, is refused whatever the RBAC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn applications_in_other_namespaces_over_the_api() {
    let cluster = Cluster::start(ClusterOptions {
        crds: mooring_k8s::crds::all(),
        namespaces: vec!["argocd".into(), "team-a".into(), "team-b".into()],
        ..Default::default()
    })
    .await
    .expect("cluster");
    let client = mooring_k8s::client_from_kubeconfig(cluster.kubeconfig_path())
        .await
        .expect("client");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "argocd");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "mooring-rbac-cm"}, "data": {
            "policy.csv": "p, role:team-a, applications, *, team/team-a/*, allow\ng, alice, role:team-a\n",
        }}))
        .expect("cm"),
    )
    .await
    .expect("rbac");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(
            json!({"metadata": {"name": "mooring-cm"}, "data": {"accounts.alice": "apiKey"}}),
        )
        .expect("cm"),
    )
    .await
    .expect("accounts");
    let projects: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "argocd", &appproject_resource());
    projects
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
                "metadata": {"name": "team", "namespace": "argocd"},
                "spec": {"sourceNamespaces": ["team-a"], "sourceRepos": ["*"],
                         "destinations": [{"server": "*", "namespace": "*"}]}
            }))
            .expect("project"),
        )
        .await
        .expect("create project");
    let store = Store::new(client.clone(), "argocd");
    let admin = store
        .ensure_admin_token()
        .await
        .expect("admin token")
        .expect("issued");
    let (alice, _) = store.issue("alice", None).await.expect("alice token");
    let addr = serve(
        client.clone(),
        ApiOptions {
            control_plane: mooring_engine::project::ControlPlane {
                namespace: "argocd".into(),
                application_namespaces: vec!["team-*".into()],
            },
            ..Default::default()
        },
    )
    .await;
    let tenant_app = |ns: &str| {
        let mut a = app("web", "team");
        a["metadata"]["namespace"] = json!(ns);
        serde_json::to_vec(&a).expect("json")
    };
    // Created in team-a from the payload's namespace, by the team's RBAC object.
    let (code, _, body) = call(
        addr,
        "POST",
        "/api/v1/applications",
        Some(&alice),
        Some(&tenant_app("team-a")),
    )
    .await;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["metadata"]["namespace"], "team-a");
    // Read and synced with ?appNamespace=; without it, the control plane's is meant.
    let (code, _, body) = call(
        addr,
        "GET",
        "/api/v1/applications/web?appNamespace=team-a",
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let (code, _, _) = call(addr, "GET", "/api/v1/applications/web", Some(&admin), None).await;
    assert_eq!(code, 404);
    let (code, _, body) = call(
        addr,
        "POST",
        "/api/v1/applications/web/sync?appNamespace=team-a",
        Some(&alice),
        Some(b"{}"),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["operation"]["initiatedBy"]["username"], "alice");
    // Listed with its namespace; alice sees only hers.
    let (_, _, body) = call(addr, "GET", "/api/v1/applications", Some(&admin), None).await;
    assert!(
        body["items"]
            .as_array()
            .expect("items")
            .iter()
            .any(|a| a["metadata"]["namespace"] == "team-a"),
        "{body}"
    );
    // team-b: allowed by the controller flag but not by the project, even for the admin.
    let (code, _, body) = call(
        addr,
        "POST",
        "/api/v1/applications",
        Some(&admin),
        Some(&tenant_app("team-b")),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("sourceNamespaces"),
        "{body}"
    );
    // kube-system: not read by the control plane at all.
    let (code, _, body) = call(
        addr,
        "POST",
        "/api/v1/applications",
        Some(&admin),
        Some(&tenant_app("kube-system")),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not permitted"),
        "{body}"
    );
    let (code, _, _) = call(
        addr,
        "GET",
        "/api/v1/applications/web?appNamespace=kube-system",
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(code, 400);
    // alice's RBAC names team-a only: an app of the same project in argocd is not hers.
    let (code, _, body) = call(
        addr,
        "POST",
        "/api/v1/applications",
        Some(&alice),
        Some(&serde_json::to_vec(&app("web", "team")).expect("json")),
    )
    .await;
    assert_eq!(code, 403, "{body}");
    drop(cluster);
}

/// Issue 12 finding 7: every client of a loopback server is 127.0.0.1. A flood of bad
/// tokens from 127.0.0.1 — garbage, well-formed unknown tokens, and an expired token of
/// the admin itself — gets 401 then 429 with `Retry-After`, while the admin's valid token
/// keeps getting 200 throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_tokens_from_loopback_never_locks_out_the_admin() {
    let (cluster, client, store, admin) = cluster_with_admin().await;
    let expired = store
        .update_tokens(|s| s.issue("admin", 1_000, Some(Duration::from_secs(10))).0)
        .await
        .expect("issue expired");
    let addr = serve(client.clone(), ApiOptions::default()).await;

    // The flood: 4 loops of bad requests for a bounded time.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut flooders = Vec::new();
    for n in 0..4 {
        let stop = stop.clone();
        let expired = expired.clone();
        flooders.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 2_000 {
                let token = match (n + i) % 3 {
                    0 => format!("mrg_{:0>43}", i),
                    1 => "not-a-token".to_string(),
                    _ => expired.clone(),
                };
                let (code, retry, _) =
                    call(addr, "GET", "/api/v1/applications", Some(&token), None).await;
                seen.push((code, retry));
                i += 1;
            }
            seen
        }));
    }
    // The admin, during the flood.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..30 {
        let (code, _, body) =
            call(addr, "GET", "/api/v1/session/userinfo", Some(&admin), None).await;
        assert_eq!(code, 200, "the admin is served during the flood: {body}");
        assert_eq!(body["username"], "admin", "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut seen = Vec::new();
    for f in flooders {
        seen.extend(f.await.expect("flooder"));
    }
    assert!(
        seen.iter().all(|(code, _)| *code == 401 || *code == 429),
        "the flood only ever gets 401 or 429: {:?}",
        seen.iter()
            .map(|(c, _)| *c)
            .collect::<std::collections::BTreeSet<_>>()
    );
    let limited: Vec<_> = seen.iter().filter(|(code, _)| *code == 429).collect();
    assert!(
        !limited.is_empty(),
        "the flood is limited ({} requests)",
        seen.len()
    );
    assert!(
        limited.iter().all(|(_, retry)| retry
            .as_deref()
            .is_some_and(|r| r.parse::<u64>().is_ok_and(|s| s >= 1))),
        "every 429 says when to retry"
    );
    // And after it.
    let (code, _, _) = call(addr, "GET", "/api/v1/applications", Some(&admin), None).await;
    assert_eq!(code, 200);
    drop(cluster);
}

/// Issue 12 finding 10: a tenant's project-role token against an AppProject whose role
/// `policies` entry smuggles a second line (`\ng, proj:team-a:ci, role:admin`) and an
/// object outside the project. The injected lines are never merged: the token cannot
/// touch another team's application (403 naming the project, the role and the line,
/// the application still there), its role is disabled until the project is fixed, a new
/// token for it is refused (400), and names that RBAC would split (`a/b`) are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_project_role_policy_grants_nothing() {
    let (cluster, client, _store, admin) = cluster_with_admin().await;
    let projects: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "argocd", &appproject_resource());
    let project = |policies: Vec<&str>| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
            "metadata": {"name": "team-a", "namespace": "argocd"},
            "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "team-a"}],
                     "roles": [{"name": "ci", "policies": policies}]}
        }))
        .expect("project")
    };
    projects
        .create(
            &PostParams::default(),
            &project(vec![
                "p, proj:team-a:ci, applications, get, team-a/*, allow",
            ]),
        )
        .await
        .expect("team-a");
    projects
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
                "metadata": {"name": "team-b", "namespace": "argocd"},
                "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}]}
            }))
            .expect("project"),
        )
        .await
        .expect("team-b");
    let apps: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "argocd",
        &mooring_k8s::resources::application_resource(),
    );
    for (name, proj) in [("web", "team-a"), ("db", "team-b")] {
        apps.create(
            &PostParams::default(),
            &serde_json::from_value(app(name, proj)).expect("app"),
        )
        .await
        .expect("app");
    }
    let addr = serve(client.clone(), ApiOptions::default()).await;
    let (code, _, body) = call(
        addr,
        "POST",
        "/api/v1/projects/team-a/roles/ci/token",
        Some(&admin),
        Some(b"{}"),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let ci = body["token"].as_str().expect("token").to_string();
    let (code, _, body) = call(addr, "GET", "/api/v1/applications/web", Some(&ci), None).await;
    assert_eq!(code, 200, "the valid role works: {body}");
    let (code, _, _) = call(addr, "GET", "/api/v1/applications/db", Some(&ci), None).await;
    assert_eq!(code, 403);

    // The project is changed: one entry smuggles a `g` line, one names team-b's apps.
    let mut injected = project(vec![
        "p, proj:team-a:ci, applications, get, team-a/*, allow\ng, proj:team-a:ci, role:admin",
        "p, proj:team-a:ci, applications, delete, team-b/*, allow",
    ]);
    let current = projects.get("team-a").await.expect("get");
    injected.metadata.resource_version = current.metadata.resource_version;
    projects
        .replace("team-a", &PostParams::default(), &injected)
        .await
        .expect("replace");
    for (method, path) in [
        ("GET", "/api/v1/applications/db"),
        ("DELETE", "/api/v1/applications/db"),
        ("POST", "/api/v1/applications/db/sync"),
        ("GET", "/api/v1/applications/web"),
    ] {
        let (code, _, body) = call(addr, method, path, Some(&ci), Some(b"{}")).await;
        assert_eq!(code, 403, "{method} {path}: {body}");
        let msg = body["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains("AppProject \"team-a\" role \"ci\" policy line 1")
                && msg.contains("line break"),
            "{method} {path}: {msg}"
        );
    }
    let (code, _, body) = call(
        addr,
        "POST",
        "/api/v1/applications",
        Some(&ci),
        Some(&serde_json::to_vec(&app("planted", "team-b")).expect("json")),
    )
    .await;
    assert_eq!(code, 403, "{body}");
    assert!(
        apps.get_opt("db").await.expect("get").is_some(),
        "db is still there"
    );
    assert!(apps.get_opt("planted").await.expect("get").is_none());
    let (code, _, body) = call(
        addr,
        "GET",
        "/api/v1/account/can-i/applications/delete/team-b/db",
        Some(&ci),
        None,
    )
    .await;
    assert_eq!((code, body["value"].as_str()), (200, Some("no")), "{body}");
    // No new token for the disabled role.
    let (code, _, body) = call(
        addr,
        "POST",
        "/api/v1/projects/team-a/roles/ci/token",
        Some(&admin),
        Some(b"{}"),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("policy line 1")),
        "{body}"
    );
    // Names RBAC would split are refused before they are parsed.
    for path in [
        "/api/v1/projects/team-a%2Fci",
        "/api/v1/applications/web%2Fstatus",
        "/api/v1/projects/team-a/roles/c%3Ai/token",
    ] {
        let method = if path.ends_with("token") {
            "POST"
        } else {
            "GET"
        };
        let (code, _, body) = call(addr, method, path, Some(&admin), Some(b"{}")).await;
        assert_eq!(code, 400, "{path}: {body}");
        assert!(
            body["message"].as_str().is_some_and(|m| m.contains("name")),
            "{path}: {body}"
        );
    }
    drop(cluster);
}
