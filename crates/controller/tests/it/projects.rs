//! AppProject enforcement end to end: destinations and resource lists refuse a sync before
//! anything is applied, a missing project is reported and picked up once created, and a
//! deny sync window holds an automated sync back until it closes.

use crate::support::{env, eventually, field, Repo};
use mooring_k8s::kube::api::{Api, DynamicObject, PostParams};
use mooring_k8s::kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};

fn projects(client: &mooring_k8s::kube::Client) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        "argocd",
        &mooring_k8s::resources::appproject_resource(),
    )
}

fn apps(client: &mooring_k8s::kube::Client) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        "argocd",
        &mooring_k8s::resources::application_resource(),
    )
}

fn configmaps(client: &mooring_k8s::kube::Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("", "v1", "ConfigMap"),
            "configmaps",
        ),
    )
}

async fn create(api: &Api<DynamicObject>, v: Value) {
    let o: DynamicObject = serde_json::from_value(v).expect("object");
    api.create(&PostParams::default(), &o)
        .await
        .expect("create");
}

/// The seed's shape: ml-* namespaces on any cluster, Namespace the only cluster-scoped kind.
fn ml_platform(repo: &str, windows: Value) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
        "metadata": {"name": "ml-platform", "namespace": "argocd"},
        "spec": {
            "sourceRepos": [repo],
            "destinations": [{"server": "*", "namespace": "ml-*"}, {"server": "*", "namespace": "!kube-system"}],
            "clusterResourceWhitelist": [{"group": "", "kind": "Namespace"}],
            "syncWindows": windows,
        }
    })
}

/// The seed's AppProject verbatim, but for the repository URL (a local Git repository).
fn seed_project(repo: &str) -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/ml-platform/projects/ml-platform.yaml"
    );
    let text = std::fs::read_to_string(path)
        .expect("seed project")
        .replace("https://git.example.com/ml-platform/platform.git", repo);
    mooring_core::yaml::parse_one(&text).expect("seed project parses")
}

fn app(name: &str, project: &str, repo: &str, path: &str, namespace: &str) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {"project": project,
            "source": {"repoURL": repo, "targetRevision": "main", "path": path},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": namespace},
            "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]}}
    })
}

fn condition(a: &Value, type_: &str) -> Option<String> {
    a.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .and_then(|c| c["message"].as_str())
        .map(str::to_string)
}

const SETTINGS: &str = r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"k": "v"}}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_or_project_the_project_refuses_is_never_synced() {
    let repo = Repo::new();
    repo.write("app/cm.yaml", SETTINGS);
    repo.commit("settings");
    let e = env().await;
    let client = &e.client;
    create(&projects(client), ml_platform(&repo.url(), json!([]))).await;
    create(
        &apps(client),
        app("sneaky", "ml-platform", &repo.url(), "app", "kube-system"),
    )
    .await;
    create(
        &apps(client),
        app("early", "later", &repo.url(), "app", "ml-early"),
    )
    .await;

    let a = eventually(30, "kube-system refused", || async {
        let a = serde_json::to_value(apps(client).get("sneaky").await.ok()?).ok()?;
        condition(&a, "InvalidSpecError")
    })
    .await;
    assert!(
        a.contains("project ml-platform does not permit destination https://kubernetes.default.svc namespace kube-system")
            && a.contains("destinations[1]")
            && a.contains("excludes the namespace"),
        "{a}"
    );
    let early = eventually(30, "missing project reported", || async {
        let a = serde_json::to_value(apps(client).get("early").await.ok()?).ok()?;
        condition(&a, "InvalidSpecError")
    })
    .await;
    assert!(
        early.contains("project later which does not exist"),
        "{early}"
    );

    // A manual sync of the refused app fails with nothing applied.
    apps(client)
        .patch(
            "sneaky",
            &Default::default(),
            &mooring_k8s::kube::api::Patch::Merge(
                json!({"operation": {"sync": {}, "initiatedBy": {"username": "test"}}}),
            ),
        )
        .await
        .expect("sync");
    let a = eventually(30, "manual sync refused", || async {
        let a = serde_json::to_value(apps(client).get("sneaky").await.ok()?).ok()?;
        (field(&a, "/status/operationState/phase") == "Failed").then_some(a)
    })
    .await;
    let msg = field(&a, "/status/operationState/message");
    assert!(
        msg.starts_with("nothing was applied: project ml-platform does not permit destination"),
        "{msg}"
    );
    assert!(configmaps(client, "kube-system")
        .get_opt("settings")
        .await
        .expect("get")
        .is_none());

    // Creating the missing project (a watch event) lets its app sync.
    create(
        &projects(client),
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
               "metadata": {"name": "later", "namespace": "argocd"},
               "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "ml-*"}]}}),
    )
    .await;
    eventually(30, "the app of the new project syncs", || async {
        configmaps(client, "ml-early")
            .get_opt("settings")
            .await
            .ok()?
    })
    .await;
    let a = serde_json::to_value(apps(client).get("early").await.expect("get")).expect("json");
    assert_eq!(condition(&a, "InvalidSpecError"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_role_outside_the_whitelist_refuses_the_whole_sync() {
    let repo = Repo::new();
    repo.write("app/cm.yaml", SETTINGS);
    repo.write(
        "app/role.yaml",
        r#"{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "model-reader"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}"#,
    );
    repo.commit("role");
    let e = env().await;
    let client = &e.client;
    // The seed's project, as users apply it.
    create(&projects(client), seed_project(&repo.url())).await;
    create(
        &apps(client),
        app("serving", "ml-platform", &repo.url(), "app", "ml-serving"),
    )
    .await;
    create(
        &apps(client),
        app("system", "ml-platform", &repo.url(), "app", "kube-system"),
    )
    .await;
    let refused = eventually(30, "kube-system refused", || async {
        let a = serde_json::to_value(apps(client).get("system").await.ok()?).ok()?;
        condition(&a, "InvalidSpecError")
    })
    .await;
    assert_eq!(
        refused,
        "project ml-platform does not permit destination https://kubernetes.default.svc namespace kube-system (no destinations entry matches)"
    );
    let a = eventually(30, "the sync is refused", || async {
        let a = serde_json::to_value(apps(client).get("serving").await.ok()?).ok()?;
        (field(&a, "/status/operationState/phase") == "Failed").then_some(a)
    })
    .await;
    let msg = field(&a, "/status/operationState/message");
    assert!(
        msg.starts_with("nothing was applied: 1 resource(s) refused by project ml-platform"),
        "{msg}"
    );
    assert!(
        msg.contains("project ml-platform does not permit ClusterRole.rbac.authorization.k8s.io/model-reader (cluster-scoped and not in clusterResourceWhitelist)"),
        "{msg}"
    );
    assert!(configmaps(client, "ml-serving")
        .get_opt("settings")
        .await
        .expect("get")
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deny_window_holds_an_automated_sync_until_it_closes() {
    let repo = Repo::new();
    repo.write("app/cm.yaml", SETTINGS);
    repo.commit("settings");
    let e = env().await;
    let client = &e.client;
    // A deny window that started at the top of the current minute (UTC) and closes about
    // 12 seconds from now.
    let now = jiff::Timestamp::now();
    let utc = now.to_zoned(jiff::tz::TimeZone::UTC);
    let into_minute = u64::from(utc.second().unsigned_abs());
    let window = json!([{"kind": "deny", "schedule": format!("{} {} * * *", utc.minute(), utc.hour()),
        "duration": format!("{}s", into_minute + 12), "applications": ["inference-*"]}]);
    create(&projects(client), ml_platform(&repo.url(), window)).await;
    create(
        &apps(client),
        app(
            "inference-eu",
            "ml-platform",
            &repo.url(),
            "app",
            "ml-serving",
        ),
    )
    .await;
    let blocked = eventually(10, "the automated sync is held back", || async {
        let a = serde_json::to_value(apps(client).get("inference-eu").await.ok()?).ok()?;
        condition(&a, "SyncWindowBlocked")
    })
    .await;
    assert!(
        blocked
            .contains("auto-sync is not started: automated sync is blocked by active deny window"),
        "{blocked}"
    );
    let a =
        serde_json::to_value(apps(client).get("inference-eu").await.expect("get")).expect("json");
    assert_eq!(field(&a, "/status/sync/status"), "OutOfSync");
    assert!(
        a.pointer("/status/operationState").is_none(),
        "no operation started: {a}"
    );
    assert!(configmaps(client, "ml-serving")
        .get_opt("settings")
        .await
        .expect("get")
        .is_none());
    // A manual sync is refused too: the window does not enable manualSync.
    apps(client)
        .patch(
            "inference-eu",
            &Default::default(),
            &mooring_k8s::kube::api::Patch::Merge(
                json!({"operation": {"sync": {}, "initiatedBy": {"username": "oncall"}}}),
            ),
        )
        .await
        .expect("sync");
    let a = eventually(10, "the manual sync is refused", || async {
        let a = serde_json::to_value(apps(client).get("inference-eu").await.ok()?).ok()?;
        (field(&a, "/status/operationState/phase") == "Failed").then_some(a)
    })
    .await;
    let msg = field(&a, "/status/operationState/message");
    assert!(
        msg.starts_with("nothing was applied: manual sync is blocked by active deny window")
            && msg.ends_with("(manualSync is not enabled)"),
        "{msg}"
    );
    assert!(configmaps(client, "ml-serving")
        .get_opt("settings")
        .await
        .expect("get")
        .is_none());
    // Once the window closes the controller (re-queued for that moment) syncs.
    eventually(40, "the sync proceeds after the window", || async {
        configmaps(client, "ml-serving")
            .get_opt("settings")
            .await
            .ok()?
    })
    .await;
    let a = eventually(10, "condition cleared", || async {
        let a = serde_json::to_value(apps(client).get("inference-eu").await.ok()?).ok()?;
        condition(&a, "SyncWindowBlocked").is_none().then_some(a)
    })
    .await;
    assert!(
        jiff::Timestamp::now() >= now + jiff::SignedDuration::from_secs(10),
        "{a}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmanaged_objects_in_the_destination_namespace_raise_an_orphan_warning() {
    let repo = Repo::new();
    repo.write("app/cm.yaml", SETTINGS);
    repo.commit("settings");
    let e = env().await;
    let client = &e.client;
    let mut proj = ml_platform(&repo.url(), json!([]));
    proj["spec"]["orphanedResources"] =
        json!({"warn": true, "ignore": [{"kind": "ConfigMap", "name": "ignored-*"}]});
    create(&projects(client), proj).await;
    create(
        &apps(client),
        app("features", "ml-platform", &repo.url(), "app", "ml-features"),
    )
    .await;
    eventually(30, "synced", || async {
        configmaps(client, "ml-features")
            .get_opt("settings")
            .await
            .ok()?
    })
    .await;
    for name in ["leftover", "ignored-1"] {
        create(
            &configmaps(client, "ml-features"),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "ml-features"}}),
        )
        .await;
    }
    let warning = eventually(20, "orphan warning", || async {
        let a = serde_json::to_value(apps(client).get("features").await.ok()?).ok()?;
        condition(&a, "OrphanedResourceWarning")
    })
    .await;
    assert_eq!(
        warning,
        "Application has 1 orphaned resources: ConfigMap/ml-features/leftover"
    );
    // Deleting the orphan clears the warning.
    configmaps(client, "ml-features")
        .delete("leftover", &Default::default())
        .await
        .expect("delete");
    eventually(20, "warning cleared", || async {
        let a = serde_json::to_value(apps(client).get("features").await.ok()?).ok()?;
        condition(&a, "OrphanedResourceWarning")
            .is_none()
            .then_some(())
    })
    .await;
}

/// A tenant's Application naming a repository its project does not permit: neither the
/// comparison nor a requested sync (`mooring app sync`, `app rollback`) contacts it — the
/// sync fails with nothing applied and the "Git server" never sees a request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_the_project_refuses_is_never_contacted() {
    let repo = Repo::new();
    repo.write("app/cm.yaml", SETTINGS);
    repo.commit("settings");
    let e = env().await;
    let client = &e.client;
    let server = crate::support::HttpReceiver::start(200).expect("receiver");
    create(&projects(client), ml_platform(&repo.url(), json!([]))).await;
    let elsewhere = server.url("/attacker/other.git");
    create(
        &apps(client),
        app("escape", "ml-platform", &elsewhere, "app", "ml-escape"),
    )
    .await;
    let a = eventually(30, "the repository refused", || async {
        let a = serde_json::to_value(apps(client).get("escape").await.ok()?).ok()?;
        condition(&a, "InvalidSpecError")
    })
    .await;
    assert!(a.contains("does not permit source repository"), "{a}");
    apps(client)
        .patch(
            "escape",
            &Default::default(),
            &mooring_k8s::kube::api::Patch::Merge(
                json!({"operation": {"sync": {"revision": "abc1234"}, "initiatedBy": {"username": "tenant"}}}),
            ),
        )
        .await
        .expect("sync");
    let a = eventually(30, "the sync refused", || async {
        let a = serde_json::to_value(apps(client).get("escape").await.ok()?).ok()?;
        (field(&a, "/status/operationState/phase") == "Failed").then_some(a)
    })
    .await;
    let msg = field(&a, "/status/operationState/message");
    assert!(
        msg.starts_with(
            "nothing was applied: project ml-platform does not permit source repository"
        ),
        "{msg}"
    );
    assert!(server.requests().is_empty(), "{:?}", server.requests());
}
