//! The GitOps loop: commit → converged; prune; self-heal; ignoreDifferences; hostile
//! sources leave the cluster untouched.

use crate::support::{env, eventually, field, Repo};
use mooring_k8s::kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use mooring_k8s::kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};

fn deployment(replicas: u32, image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: model-server
  labels: {{app: model-server}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: model-server}}}}
  template:
    metadata: {{labels: {{app: model-server}}}}
    spec:
      containers:
      - name: server
        image: {image}
        ports: [{{containerPort: 8080}}]
"
    )
}

const CONFIG: &str = "apiVersion: v1
kind: ConfigMap
metadata: {name: model-config}
data: {threshold: \"0.9\"}
";

fn application(name: &str, repo: &str, path: &str, extra_spec: Value) -> Value {
    let mut app = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo, "targetRevision": "main", "path": path},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "ml-serving"},
            "syncPolicy": {"automated": {"prune": true, "selfHeal": true}, "syncOptions": ["CreateNamespace=true"]},
        }
    });
    if let (Some(spec), Some(extra)) = (app["spec"].as_object_mut(), extra_spec.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    app
}

fn apps(client: &mooring_k8s::kube::Client) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        "argocd",
        &mooring_k8s::resources::application_resource(),
    )
}

fn api(
    client: &mooring_k8s::kube::Client,
    g: &str,
    v: &str,
    k: &str,
    plural: &str,
) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        "ml-serving",
        &ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(g, v, k), plural),
    )
}

async fn app_status(apps: &Api<DynamicObject>, name: &str) -> Value {
    let a = apps.get(name).await.expect("app");
    serde_json::to_value(a).expect("json")
}

async fn wait_synced_healthy(apps: &Api<DynamicObject>, name: &str, revision: &str) -> Value {
    eventually(
        60,
        &format!("{name} Synced+Healthy at {revision}"),
        || async {
            let a = app_status(apps, name).await;
            (field(&a, "/status/sync/status") == "Synced"
                && field(&a, "/status/health/status") == "Healthy"
                && field(&a, "/status/sync/revision") == revision)
                .then_some(a)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_converges_prunes_and_self_heals() {
    let repo = Repo::new();
    repo.write(
        "apps/model/deployment.yaml",
        &deployment(2, "registry.local/model:1.0"),
    );
    repo.write("apps/model/config.yaml", CONFIG);
    repo.write("README.md", "not a manifest\n");
    let c1 = repo.commit("model v1");
    let e = env().await;
    let apps = apps(&e.client);
    let app: DynamicObject =
        serde_json::from_value(application("model", &repo.url(), "apps/model", json!({})))
            .expect("app");
    apps.create(&PostParams::default(), &app)
        .await
        .expect("create app");

    let a = wait_synced_healthy(&apps, "model", &c1).await;
    assert_eq!(
        a["status"]["resources"].as_array().map(Vec::len),
        Some(2),
        "{a}"
    );
    assert_eq!(field(&a, "/status/operationState/phase"), "Succeeded");
    assert_eq!(a["status"]["history"].as_array().map(Vec::len), Some(1));
    let deploys = api(&e.client, "apps", "v1", "Deployment", "deployments");
    let d = deploys.get("model-server").await.expect("deployed");
    assert_eq!(d.data["spec"]["replicas"], 2);
    assert!(field(
        &serde_json::to_value(&d).expect("json"),
        "/metadata/annotations/argocd.argoproj.io~1tracking-id"
    )
    .starts_with("model:apps/Deployment:ml-serving/model-server"));

    // A new commit: scale up and drop the ConfigMap → applied and pruned.
    repo.write(
        "apps/model/deployment.yaml",
        &deployment(3, "registry.local/model:1.1"),
    );
    repo.remove("apps/model/config.yaml");
    let c2 = repo.commit("model v1.1");
    e.controller.ctx.refresh("argocd/model");
    let a = wait_synced_healthy(&apps, "model", &c2).await;
    assert_eq!(
        a["status"]["resources"].as_array().map(Vec::len),
        Some(1),
        "{a}"
    );
    let d = deploys.get("model-server").await.expect("deployed");
    assert_eq!(d.data["spec"]["replicas"], 3);
    let cms = api(&e.client, "", "v1", "ConfigMap", "configmaps");
    assert!(
        cms.get_opt("model-config").await.expect("get").is_none(),
        "pruned"
    );

    // Drift on a managed field is healed by the watch, without a refresh.
    deploys
        .patch(
            "model-server",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {"containers": [{"name": "server", "image": "evil:latest"}]}}}})),
        )
        .await
        .expect("drift");
    eventually(30, "self-heal restores the image", || async {
        let d = deploys.get("model-server").await.ok()?;
        (d.data["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/model:1.1")
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignore_differences_and_prune_false() {
    let repo = Repo::new();
    repo.write(
        "apps/model/deployment.yaml",
        &deployment(2, "registry.local/model:1.0"),
    );
    repo.write(
        "apps/model/keep.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: keep-me\n  annotations: {argocd.argoproj.io/sync-options: Prune=false}\ndata: {a: b}\n",
    );
    let c1 = repo.commit("v1");
    let e = env().await;
    let apps = apps(&e.client);
    let app: DynamicObject = serde_json::from_value(application(
        "hpa-app",
        &repo.url(),
        "apps/model",
        json!({"ignoreDifferences": [{"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]}]}),
    ))
    .expect("app");
    apps.create(&PostParams::default(), &app)
        .await
        .expect("create");
    wait_synced_healthy(&apps, "hpa-app", &c1).await;

    // An HPA-style change of replicas is ignored: still Synced, not reverted.
    let deploys = api(&e.client, "apps", "v1", "Deployment", "deployments");
    deploys
        .patch("model-server", &PatchParams::apply("hpa").force(), &Patch::Apply(json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "model-server"}, "spec": {"replicas": 5}})))
        .await
        .expect("scale");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let a = wait_synced_healthy(&apps, "hpa-app", &c1).await;
    assert_eq!(field(&a, "/status/sync/status"), "Synced");
    assert_eq!(
        deploys.get("model-server").await.expect("d").data["spec"]["replicas"],
        5
    );

    // Removing a Prune=false resource from Git keeps it in the cluster.
    repo.remove("apps/model/keep.yaml");
    let c2 = repo.commit("drop keep");
    e.controller.ctx.refresh("argocd/hpa-app");
    eventually(30, "revision 2 compared", || async {
        let a = app_status(&apps, "hpa-app").await;
        (field(&a, "/status/sync/revision") == c2).then_some(())
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let cms = api(&e.client, "", "v1", "ConfigMap", "configmaps");
    assert!(
        cms.get_opt("keep-me").await.expect("get").is_some(),
        "Prune=false keeps it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_sources_apply_nothing() {
    let repo = Repo::new();
    repo.write(
        "apps/model/deployment.yaml",
        &deployment(1, "registry.local/model:1.0"),
    );
    let mut bomb = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\na: &a [x,x,x,x,x,x,x,x,x,x]\n",
    );
    let mut prev = 'a';
    for ch in 'b'..='p' {
        bomb.push_str(&format!("{ch}: &{ch} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
        prev = ch;
    }
    repo.write("apps/bomb/bomb.yaml", &bomb);
    repo.write("apps/bomb/ok.yaml", CONFIG);
    repo.write("apps/dup/a.yaml", CONFIG);
    repo.write("apps/dup/b.yaml", CONFIG);
    repo.commit("hostile");
    // Like Argo CD, a repository with a link leaving it is refused as a whole.
    let linked = Repo::new();
    linked.write(
        "apps/model/deployment.yaml",
        &deployment(1, "registry.local/model:1.0"),
    );
    std::os::unix::fs::symlink("/etc/passwd", linked.path().join("apps/model/passwd.yaml"))
        .expect("symlink");
    linked.commit("link out");
    let e = env().await;
    let apps = apps(&e.client);
    let cases = [
        ("escape", repo.url(), "../../etc", "path"),
        ("symlink", linked.url(), "apps/model", "passwd"),
        ("bomb", repo.url(), "apps/bomb", "bomb.yaml"),
        ("dup", repo.url(), "apps/dup", "model-config"),
        ("no-commit", repo.url(), "apps/model", "does-not-exist"),
        (
            "unreachable",
            "http://127.0.0.1:9/nothing.git".to_string(),
            "apps/model",
            "127.0.0.1",
        ),
        (
            "injection",
            "--upload-pack=touch /tmp/pwned".to_string(),
            "apps/model",
            "upload-pack",
        ),
    ];
    for (name, url, path, _) in &cases {
        let mut a = application(name, url, path, json!({}));
        if *name == "no-commit" {
            a["spec"]["source"]["targetRevision"] = json!("does-not-exist");
        }
        let obj: DynamicObject = serde_json::from_value(a).expect("app");
        apps.create(&PostParams::default(), &obj)
            .await
            .expect("create");
    }
    for (name, _, _, needle) in &cases {
        let a = eventually(60, &format!("{name}: error condition"), || async {
            let a = app_status(&apps, name).await;
            a["status"]["conditions"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["type"] == "ComparisonError"))
                .then_some(a)
        })
        .await;
        let msg = a["status"]["conditions"].to_string();
        assert!(
            msg.contains(needle),
            "{name}: condition should mention {needle:?}: {msg}"
        );
        assert!(
            !msg.contains("root:x:0:0"),
            "{name}: never read outside the repo"
        );
    }
    assert!(!std::path::Path::new("/tmp/pwned").exists());
    let deploys = api(&e.client, "apps", "v1", "Deployment", "deployments");
    let cms = api(&e.client, "", "v1", "ConfigMap", "configmaps");
    assert!(
        deploys
            .list(&Default::default())
            .await
            .map(|l| l.items.is_empty())
            .unwrap_or(true),
        "nothing applied"
    );
    assert!(
        cms.list(&Default::default())
            .await
            .map(|l| l.items.is_empty())
            .unwrap_or(true),
        "nothing applied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_commit_keeps_the_last_synced_state_and_unknown_kinds_apply_nothing() {
    let repo = Repo::new();
    repo.write(
        "apps/model/deployment.yaml",
        &deployment(2, "registry.local/model:1.0"),
    );
    repo.write("apps/model/config.yaml", CONFIG);
    let c1 = repo.commit("good");
    let e = env().await;
    let apps = apps(&e.client);
    let app: DynamicObject =
        serde_json::from_value(application("steady", &repo.url(), "apps/model", json!({})))
            .expect("app");
    apps.create(&PostParams::default(), &app)
        .await
        .expect("create");
    wait_synced_healthy(&apps, "steady", &c1).await;

    // A broken manifest lands in Git: the app reports it, the cluster keeps running v1.
    repo.write(
        "apps/model/broken.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [not, a, name}\n",
    );
    repo.write(
        "apps/model/deployment.yaml",
        &deployment(5, "registry.local/model:2.0"),
    );
    repo.commit("broken");
    e.controller.ctx.refresh("argocd/steady");
    let a = eventually(30, "comparison error reported", || async {
        let a = app_status(&apps, "steady").await;
        a["status"]["conditions"]
            .as_array()?
            .iter()
            .any(|c| c["type"] == "ComparisonError")
            .then_some(a)
    })
    .await;
    assert!(
        a["status"]["conditions"]
            .to_string()
            .contains("broken.yaml"),
        "{a}"
    );
    let deploys = api(&e.client, "apps", "v1", "Deployment", "deployments");
    let d = deploys.get("model-server").await.expect("still running");
    assert_eq!(d.data["spec"]["replicas"], 2, "v1 stays");

    // A kind the cluster does not serve (and no CRD in the sync) fails the sync before
    // anything — including the valid ConfigMap next to it — is applied.
    let repo2 = Repo::new();
    repo2.write(
        "app/cm.yaml",
        &CONFIG.replace("model-config", "next-to-widget"),
    );
    repo2.write(
        "app/widget.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 3}\n",
    );
    repo2.commit("unknown kind");
    let app: DynamicObject =
        serde_json::from_value(application("widgets", &repo2.url(), "app", json!({})))
            .expect("app");
    apps.create(&PostParams::default(), &app)
        .await
        .expect("create");
    let a = eventually(30, "sync failed", || async {
        let a = app_status(&apps, "widgets").await;
        (field(&a, "/status/operationState/phase") == "Failed").then_some(a)
    })
    .await;
    let msg = field(&a, "/status/operationState/message");
    assert!(
        msg.contains("Widget") && msg.contains("nothing was applied"),
        "{msg}"
    );
    let cms = api(&e.client, "", "v1", "ConfigMap", "configmaps");
    assert!(
        cms.get_opt("next-to-widget").await.expect("get").is_none(),
        "nothing applied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_outside_an_apps_inputs_reuse_its_render() {
    let repo = Repo::new();
    repo.write("base/kustomization.yaml", "resources: [config.yaml]\n");
    repo.write("base/config.yaml", CONFIG);
    repo.write(
        "overlay/kustomization.yaml",
        "resources: [../base]\nnamePrefix: prod-\n",
    );
    repo.write("docs/README.md", "v1\n");
    let c1 = repo.commit("v1");
    let e = env().await;
    let apps = apps(&e.client);
    let app: DynamicObject =
        serde_json::from_value(application("kusto", &repo.url(), "overlay", json!({})))
            .expect("app");
    apps.create(&PostParams::default(), &app)
        .await
        .expect("create");
    wait_synced_healthy(&apps, "kusto", &c1).await;
    let metrics = &e.controller.ctx.metrics;
    assert_eq!(metrics.renders_reused(), 0);

    // Docs only: the render is reused.
    repo.write("docs/README.md", "v2\n");
    let c2 = repo.commit("docs");
    e.controller.ctx.refresh("argocd/kusto");
    wait_synced_healthy(&apps, "kusto", &c2).await;
    assert_eq!(
        metrics.renders_reused(),
        1,
        "a docs-only commit reuses the render"
    );

    // The kustomize base (outside the app path) changed: rendered again, and applied.
    repo.write("base/config.yaml", &CONFIG.replace("0.9", "0.8"));
    let c3 = repo.commit("base");
    e.controller.ctx.refresh("argocd/kusto");
    wait_synced_healthy(&apps, "kusto", &c3).await;
    assert_eq!(metrics.renders_reused(), 1, "a base change is not reused");
    let cms = api(&e.client, "", "v1", "ConfigMap", "configmaps");
    let cm = cms
        .get("prod-model-config")
        .await
        .expect("rendered with the prefix");
    assert_eq!(cm.data["data"]["threshold"], "0.8");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_destination_cluster_has_its_own_cache_and_self_heal() {
    let repo = Repo::new();
    repo.write("apps/model/config.yaml", CONFIG);
    let c1 = repo.commit("v1");
    let mut e = env().await;
    let remote = mooring_apiserver::Cluster::start(mooring_apiserver::ClusterOptions {
        name: "gpu-east".into(),
        ..Default::default()
    })
    .await
    .expect("second cluster");
    let remote_client = mooring_k8s::client_from_kubeconfig(remote.kubeconfig_path())
        .await
        .expect("client");
    let server = remote.url();
    e.controller
        .add_cluster("gpu-east", &server, remote_client.clone())
        .await
        .expect("register cluster");
    let apps = apps(&e.client);
    let mut spec = application("east", &repo.url(), "apps/model", json!({}));
    spec["spec"]["destination"]["server"] = json!(server);
    let app: DynamicObject = serde_json::from_value(spec).expect("app");
    apps.create(&PostParams::default(), &app)
        .await
        .expect("create");
    wait_synced_healthy(&apps, "east", &c1).await;
    // On the destination, not on the management cluster.
    let remote_cms = api(&remote_client, "", "v1", "ConfigMap", "configmaps");
    assert!(remote_cms
        .get_opt("model-config")
        .await
        .expect("get")
        .is_some());
    let local_cms = api(&e.client, "", "v1", "ConfigMap", "configmaps");
    assert!(local_cms
        .get_opt("model-config")
        .await
        .expect("get")
        .is_none());
    // Drift on the destination is healed through its own watch.
    remote_cms
        .patch(
            "model-config",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"threshold": "0.1"}})),
        )
        .await
        .expect("drift");
    eventually(30, "remote drift healed", || async {
        let c = remote_cms.get("model-config").await.ok()?;
        (c.data["data"]["threshold"] == "0.9").then_some(())
    })
    .await;
}

/// Clusters registered the Argo CD way (cluster Secrets): an app on a registered cluster
/// converges while another cluster is unreachable, the unreachable one's app says so with
/// status Unknown, and deleting a Secret unregisters its cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_secrets_register_destinations_and_an_unreachable_one_stalls_nothing() {
    use mooring_k8s::registry::{secret_for, ClusterConfig, ClusterEntry};
    let repo = Repo::new();
    repo.write("apps/model/config.yaml", CONFIG);
    let c1 = repo.commit("v1");
    let e = env().await;
    let remote = mooring_apiserver::Cluster::start(mooring_apiserver::ClusterOptions {
        name: "gpu-west".into(),
        ..Default::default()
    })
    .await
    .expect("second cluster");
    let remote_client = mooring_k8s::client_from_kubeconfig(remote.kubeconfig_path())
        .await
        .expect("client");
    // A port nothing listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let secrets: Api<DynamicObject> = Api::namespaced_with(
        e.client.clone(),
        "argocd",
        &mooring_k8s::kube::core::ApiResource::from_gvk_with_plural(
            &mooring_k8s::kube::core::GroupVersionKind::gvk("", "v1", "Secret"),
            "secrets",
        ),
    );
    for (name, server, config) in [
        ("gpu-west", remote.url(), remote.client_config()),
        ("gone", dead.clone(), ClusterConfig::default()),
    ] {
        let entry = ClusterEntry {
            project: String::new(),
            name: name.into(),
            server,
            config,
            labels: [("environment".to_string(), "production".to_string())].into(),
            annotations: Default::default(),
        };
        let secret: DynamicObject =
            serde_json::from_value(secret_for(&entry, "argocd")).expect("secret");
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("create cluster secret");
    }
    let apps = apps(&e.client);
    for (name, server) in [("west", remote.url()), ("lost", dead.clone())] {
        let mut spec = application(name, &repo.url(), "apps/model", json!({}));
        spec["spec"]["destination"]["server"] = json!(server);
        let app: DynamicObject = serde_json::from_value(spec).expect("app");
        apps.create(&PostParams::default(), &app)
            .await
            .expect("create");
    }
    wait_synced_healthy(&apps, "west", &c1).await;
    let remote_cms = api(&remote_client, "", "v1", "ConfigMap", "configmaps");
    assert!(remote_cms
        .get_opt("model-config")
        .await
        .expect("get")
        .is_some());
    let lost = eventually(30, "the unreachable cluster's app says so", || async {
        let a = app_status(&apps, "lost").await;
        let unreachable = a["status"]["conditions"].as_array()?.iter().any(|c| {
            c["type"] == "ComparisonError"
                && c["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("unreachable"))
        });
        unreachable.then_some(a)
    })
    .await;
    assert_eq!(lost["status"]["sync"]["status"], "Unknown", "{lost}");
    assert_eq!(lost["status"]["health"]["status"], "Unknown", "{lost}");
    // Deleting the Secret unregisters the cluster.
    let secret_name = secret_for(
        &ClusterEntry {
            project: String::new(),
            name: "gone".into(),
            server: dead.clone(),
            config: ClusterConfig::default(),
            labels: Default::default(),
            annotations: Default::default(),
        },
        "argocd",
    )["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    secrets
        .delete(&secret_name, &Default::default())
        .await
        .expect("delete secret");
    eventually(
        30,
        "the app reports the cluster as not registered",
        || async {
            let a = app_status(&apps, "lost").await;
            a["status"]["conditions"]
                .as_array()?
                .iter()
                .any(|c| {
                    c["message"]
                        .as_str()
                        .is_some_and(|m| m.contains("not registered"))
                })
                .then_some(())
        },
    )
    .await;
}

/// Issue 11: fields of an Application Mooring does not act on are named in an
/// `UnsupportedFieldWarning` condition (the app is still synced with what Mooring
/// understands); the condition is written once, not on every reconcile, and goes away
/// with the fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_application_fields_get_a_warning_condition() {
    let repo = Repo::new();
    repo.write(
        "apps/model/deployment.yaml",
        &deployment(1, "registry.local/model:1.0"),
    );
    // A hook type Mooring does not run (Argo CD 3's PreDelete): never applied, so said.
    repo.write(
        "apps/model/cleanup.yaml",
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: cleanup\n  annotations: {argocd.argoproj.io/hook: PreDelete}\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: busybox}]\n",
    );
    let c1 = repo.commit("model");
    let e = env().await;
    let apps = apps(&e.client);
    let app = application(
        "legacy",
        &repo.url(),
        "apps/model",
        json!({
            "source": {"repoURL": repo.url(), "targetRevision": "main", "path": "apps/model",
                       "directory": {"recurse": false, "jsonnet": {"tlas": [{"name": "env", "value": "prod"}]}}},
            "syncPolicy": {"automated": {"prune": true, "selfHeal": true},
                           "syncOptions": ["CreateNamespace=true", "Force=true"]},
        }),
    );
    let app: DynamicObject = serde_json::from_value(app).expect("app");
    apps.create(&PostParams::default(), &app)
        .await
        .expect("create app");
    wait_synced_healthy(&apps, "legacy", &c1).await;
    let warning = |a: &Value| {
        a["status"]["conditions"]
            .as_array()
            .and_then(|c| {
                c.iter()
                    .find(|c| c["type"] == json!("UnsupportedFieldWarning"))
            })
            .cloned()
    };
    let a = eventually(30, "UnsupportedFieldWarning", || async {
        warning(&app_status(&apps, "legacy").await)
    })
    .await;
    let message = field(&a, "/message").to_string();
    assert!(
        message.contains(
            "spec.source.directory.jsonnet is not supported by Mooring: jsonnet is not rendered"
        ),
        "{message}"
    );
    assert!(
        message
            .contains("spec.syncPolicy.syncOptions[1] \"Force=true\" is not supported by Mooring"),
        "{message}"
    );
    assert!(
        message.contains("Job.batch/ml-serving/cleanup: metadata.annotations[\"argocd.argoproj.io/hook\"] \"PreDelete\" is not supported by Mooring"),
        "{message}"
    );

    // No write loop: once settled, a reconcile finds the status unchanged and leaves it
    // alone (a condition rewritten on every reconcile would never settle).
    eventually(30, "the status settles", || async {
        let before = app_status(&apps, "legacy").await;
        e.controller.ctx.refresh("argocd/legacy");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let after = app_status(&apps, "legacy").await;
        (field(&before, "/metadata/resourceVersion") == field(&after, "/metadata/resourceVersion")
            && warning(&after).is_some_and(|w| w == a))
        .then_some(())
    })
    .await;

    // Dropping the fields (and the hook) drops the warning.
    repo.remove("apps/model/cleanup.yaml");
    repo.commit("no PreDelete hook");
    apps.patch(
        "legacy",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {
            "source": {"directory": {"jsonnet": null}},
            "syncPolicy": {"syncOptions": ["CreateNamespace=true"]},
        }})),
    )
    .await
    .expect("patch");
    e.controller.ctx.refresh("argocd/legacy");
    eventually(30, "UnsupportedFieldWarning gone", || async {
        warning(&app_status(&apps, "legacy").await)
            .is_none()
            .then_some(())
    })
    .await;
}

/// An Application whose spec does not parse is reported on the Application (not only in
/// the controller's log), naming the field. Mooring's CRD schema refuses such a spec at the
/// API server, so this happens under a looser Application CRD (another installation's, or
/// an older one): the test installs one whose spec is open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_application_that_does_not_parse_is_reported_on_it() {
    let e = env().await;
    let crds: Api<DynamicObject> = Api::all_with(
        e.client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    crds.patch(
        "applications.argoproj.io",
        &PatchParams::default(),
        &Patch::<Value>::Json(
            serde_json::from_value(json!([{
                "op": "replace",
                "path": "/spec/versions/0/schema/openAPIV3Schema/properties/spec",
                "value": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            }]))
            .expect("json patch"),
        ),
    )
    .await
    .expect("loosen the Application CRD");
    let apps = apps(&e.client);
    let mut app = application("broken", "file:///nowhere", "apps/model", json!({}));
    app["spec"]["syncPolicy"]["automated"] = json!("yes");
    let app: DynamicObject = serde_json::from_value(app).expect("app");
    apps.create(&PostParams::default(), &app)
        .await
        .expect("create app");
    let c = eventually(30, "InvalidSpecError", || async {
        app_status(&apps, "broken").await["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == json!("InvalidSpecError")))
            .cloned()
    })
    .await;
    let message = field(&c, "/message");
    assert!(
        message
            .starts_with("the Application does not parse: spec.syncPolicy.automated: invalid type"),
        "{message}"
    );
}

/// Argo CD's `.argocd-source-<app>.yaml` (what Image Updater's Git write-back commits) is
/// merged over the app's source before rendering, and only for that app: another app
/// rendering the same path at the same commit gets its own render, not a cached one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argocd_source_parameter_file_is_read_for_its_own_app_only() {
    let repo = Repo::new();
    repo.write(
        "apps/model/kustomization.yaml",
        "resources: [deployment.yaml]\n",
    );
    repo.write(
        "apps/model/deployment.yaml",
        &deployment(1, "registry.local/model:1.0"),
    );
    repo.write(
        "apps/model/.argocd-source-model-prod.yaml",
        "kustomize:\n  images:\n  - registry.local/model:2.0\n",
    );
    let c1 = repo.commit("model with prod parameters");
    let e = env().await;
    let apps = apps(&e.client);
    for (name, ns) in [("model-dev", "ml-dev"), ("model-prod", "ml-prod")] {
        let mut spec = application(name, &repo.url(), "apps/model", json!({}));
        spec["spec"]["destination"]["namespace"] = json!(ns);
        let app: DynamicObject = serde_json::from_value(spec).expect("app");
        apps.create(&PostParams::default(), &app)
            .await
            .expect("create");
    }
    wait_synced_healthy(&apps, "model-dev", &c1).await;
    wait_synced_healthy(&apps, "model-prod", &c1).await;
    let image = |ns: &'static str| {
        let client = e.client.clone();
        async move {
            let deployments: Api<DynamicObject> = Api::namespaced_with(
                client,
                ns,
                &ApiResource::from_gvk_with_plural(
                    &GroupVersionKind::gvk("apps", "v1", "Deployment"),
                    "deployments",
                ),
            );
            let d = deployments.get("model-server").await.expect("deployment");
            d.data["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .expect("image")
                .to_string()
        }
    };
    assert_eq!(image("ml-prod").await, "registry.local/model:2.0");
    assert_eq!(image("ml-dev").await, "registry.local/model:1.0");

    // The write-back's next commit moves prod only.
    repo.write(
        "apps/model/.argocd-source-model-prod.yaml",
        "kustomize:\n  images:\n  - registry.local/model:2.1\n",
    );
    let c2 = repo.commit("build: automatic update of model-prod");
    e.controller.ctx.refresh("argocd/model-prod");
    e.controller.ctx.refresh("argocd/model-dev");
    wait_synced_healthy(&apps, "model-prod", &c2).await;
    wait_synced_healthy(&apps, "model-dev", &c2).await;
    assert_eq!(image("ml-prod").await, "registry.local/model:2.1");
    assert_eq!(image("ml-dev").await, "registry.local/model:1.0");
}

/// A converged app is not written again: the Progressing message of its rollout is
/// cleared with the Healthy status (a merge patch keeps a key it does not name), so
/// refreshes find nothing to write and its resourceVersion stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_converged_app_is_not_written_again() {
    let repo = Repo::new();
    repo.write(
        "serving/deployment.yaml",
        &deployment(2, "registry.local/model:1"),
    );
    repo.write("serving/config.yaml", CONFIG);
    let rev = repo.commit("model v1");
    let e = env().await;
    let apps = apps(&e.client);
    apps.create(
        &PostParams::default(),
        &serde_json::from_value(application("quiet", &repo.url(), "serving", json!({})))
            .expect("app"),
    )
    .await
    .expect("create");
    let a = wait_synced_healthy(&apps, "quiet", &rev).await;
    assert_eq!(
        a.pointer("/status/health/message"),
        None,
        "the rollout's Progressing message is gone: {}",
        a["status"]["health"]
    );
    // Let the last writes of the sync settle, then refresh a few times.
    let settled = eventually(20, "no write for 2 s", || async {
        let before = field(
            &app_status(&apps, "quiet").await,
            "/metadata/resourceVersion",
        )
        .to_string();
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let after = field(
            &app_status(&apps, "quiet").await,
            "/metadata/resourceVersion",
        )
        .to_string();
        (before == after).then_some(after)
    })
    .await;
    let (before, _) = e.controller.ctx.metrics.reconciles();
    for _ in 0..3 {
        e.controller.ctx.refresh("argocd/quiet");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    eventually(10, "the refreshes reconciled", || async {
        (e.controller.ctx.metrics.reconciles().0 >= before + 3).then_some(())
    })
    .await;
    let a = app_status(&apps, "quiet").await;
    assert_eq!(
        field(&a, "/metadata/resourceVersion"),
        settled,
        "{}",
        a["status"]
    );
}
