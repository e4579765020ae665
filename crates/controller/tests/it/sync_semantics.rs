//! Argo CD's sync semantics end to end: the last wave is not awaited for health; the
//! comparison keeps running during an operation; RespectIgnoreDifferences (the HPA
//! case); SharedResourceWarning / FailOnSharedResource; managedNamespaceMetadata;
//! Delete=false and PostDelete hooks on app deletion; Prune=confirm.

use crate::support::{env, eventually, field, Repo};
use mooring_k8s::kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use mooring_k8s::kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};

const NS: &str = "ml-sync";

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
        NS,
        &ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(g, v, k), plural),
    )
}

fn cms(client: &mooring_k8s::kube::Client) -> Api<DynamicObject> {
    api(client, "", "v1", "ConfigMap", "configmaps")
}

fn application(name: &str, url: &str, automated: bool, extra_spec: Value) -> DynamicObject {
    let mut a = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {"project": "default",
            "source": {"repoURL": url, "targetRevision": "main", "path": "app"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": NS},
            "syncPolicy": {"syncOptions": ["CreateNamespace=true"]}}
    });
    if automated {
        a["spec"]["syncPolicy"]["automated"] = json!({"prune": true, "selfHeal": true});
    }
    if let (Some(spec), Some(extra)) = (a["spec"].as_object_mut(), extra_spec.as_object()) {
        for (k, v) in extra {
            spec.insert(k.clone(), v.clone());
        }
    }
    serde_json::from_value(a).expect("app")
}

fn deployment(name: &str, replicas: u32, image: &str, ann: Value, ready_after: u32) -> String {
    serde_json::to_string(&json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}, "annotations": ann},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "server", "image": image,
                    "ports": [{"containerPort": 8080}],
                    "readinessProbe": {"initialDelaySeconds": ready_after,
                        "httpGet": {"path": "/ready", "port": 8080}}}]}}}
    }))
    .expect("json")
}

fn cm(name: &str, ann: Value) -> String {
    serde_json::to_string(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "annotations": ann}, "data": {"k": "v"}}))
    .expect("json")
}

fn job(name: &str, ann: Value) -> String {
    serde_json::to_string(&json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "annotations": ann},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "c", "image": "registry.local/tool:1"}]}}}
    }))
    .expect("json")
}

async fn app_value(apps: &Api<DynamicObject>, name: &str) -> Option<Value> {
    serde_json::to_value(apps.get_opt(name).await.ok()??).ok()
}

async fn sync(apps: &Api<DynamicObject>, name: &str) {
    apps.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(
            json!({"operation": {"sync": {"prune": true}, "initiatedBy": {"username": "test"}}}),
        ),
    )
    .await
    .expect("request sync");
}

async fn finished(apps: &Api<DynamicObject>, name: &str, secs: u64) -> Value {
    eventually(secs, &format!("{name} operation finished"), || async {
        let a = app_value(apps, name).await?;
        let phase = field(&a, "/status/operationState/phase");
        (a.get("operation").is_none_or(Value::is_null) && !phase.is_empty() && phase != "Running")
            .then_some(a)
    })
    .await
}

fn resource<'a>(a: &'a Value, kind: &str, name: &str) -> Option<&'a Value> {
    a["status"]["resources"]
        .as_array()?
        .iter()
        .find(|r| r["kind"] == kind && r["name"] == name)
}

fn conditions(a: &Value, type_: &str) -> Vec<String> {
    a["status"]["conditions"]
        .as_array()
        .map(|c| {
            c.iter()
                .filter(|c| c["type"] == type_)
                .map(|c| c["message"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_wave_is_not_awaited_and_the_status_follows_a_slow_wave() {
    // An app of a Deployment, a Service and an Ingress: Succeeded, Synced and Healthy
    // once the embedded cluster gives the Ingress an address. With the address withheld
    // (`sim.mooring.dev/load-balancer: pending`) the Ingress stays Progressing: the
    // operation still Succeeds (the last wave is applied, not awaited), the app is Synced
    // and its health is Progressing.
    let e = env().await;
    let apps = apps(&e.client);
    let ingresses = api(&e.client, "networking.k8s.io", "v1", "Ingress", "ingresses");
    for (name, ingress_annotations, health) in [
        ("web", json!({}), "Healthy"),
        (
            "edge",
            json!({"sim.mooring.dev/load-balancer": "pending"}),
            "Progressing",
        ),
    ] {
        let repo = Repo::new();
        repo.write(
            "app/deploy.yaml",
            &deployment(name, 1, "registry.local/web:1", json!({}), 0),
        );
        repo.write(
            "app/svc.yaml",
            &serde_json::to_string(&json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name},
                "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}}))
            .expect("json"),
        );
        repo.write(
            "app/ingress.yaml",
            &serde_json::to_string(
                &json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                "metadata": {"name": name, "annotations": ingress_annotations},
                "spec": {"rules": [{"host": format!("{name}.example"), "http": {"paths": [{
                    "path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": name, "port": {"number": 80}}}}]}}]}}),
            )
            .expect("json"),
        );
        let rev = repo.commit(name);
        apps.create(
            &PostParams::default(),
            &application(name, &repo.url(), false, json!({})),
        )
        .await
        .expect("create");
        sync(&apps, name).await;
        let a = finished(&apps, name, 60).await;
        assert_eq!(
            field(&a, "/status/operationState/phase"),
            "Succeeded",
            "{a}"
        );
        assert_eq!(field(&a, "/status/operationState/syncResult/revision"), rev);
        let a = eventually(30, &format!("{name} Synced and {health}"), || async {
            let a = app_value(&apps, name).await?;
            let deploy_healthy = resource(&a, "Deployment", name)
                .is_some_and(|r| r["health"]["status"] == "Healthy");
            (field(&a, "/status/sync/status") == "Synced"
                && deploy_healthy
                && field(&a, "/status/health/status") == health)
                .then_some(a)
        })
        .await;
        assert_eq!(
            resource(&a, "Ingress", name).map(|r| r["health"]["status"].clone()),
            Some(json!(health)),
            "{a}"
        );
        let addressed = ingresses
            .get(name)
            .await
            .expect("ingress")
            .data
            .pointer("/status/loadBalancer/ingress/0")
            .is_some();
        assert_eq!(addressed, health == "Healthy", "{name}");
    }

    // A slow first wave (pods Ready after 200 simulated seconds = 10 s) before a
    // ConfigMap: while the operation waits for the Deployment, the status shows it as
    // it is (Synced, Progressing) — not Missing — and the ConfigMap as Missing.
    let repo2 = Repo::new();
    repo2.write(
        "app/slow.yaml",
        &deployment(
            "slow",
            1,
            "registry.local/slow:1",
            json!({"argocd.argoproj.io/sync-wave": "0"}),
            200,
        ),
    );
    repo2.write(
        "app/after.yaml",
        &cm("after-slow", json!({"argocd.argoproj.io/sync-wave": "1"})),
    );
    repo2.commit("slow");
    apps.create(
        &PostParams::default(),
        &application("slow", &repo2.url(), false, json!({})),
    )
    .await
    .expect("create");
    sync(&apps, "slow").await;
    let during = eventually(
        30,
        "slow wave compared while the operation waits",
        || async {
            let a = app_value(&apps, "slow").await?;
            let running = field(&a, "/status/operationState/phase") == "Running";
            let d = resource(&a, "Deployment", "slow")?;
            (running && d["status"] == "Synced" && d["health"]["status"] == "Progressing")
                .then_some(a)
        },
    )
    .await;
    assert!(
        field(&during, "/status/operationState/message").contains("slow"),
        "{during}"
    );
    let after = resource(&during, "ConfigMap", "after-slow").expect("listed");
    assert_eq!(after["health"]["status"], "Missing", "{during}");
    assert_eq!(field(&during, "/status/health/status"), "Missing");
    assert!(
        cms(&e.client)
            .get_opt("after-slow")
            .await
            .expect("get")
            .is_none(),
        "wave 1 waits for wave 0"
    );
    let a = finished(&apps, "slow", 90).await;
    assert_eq!(
        field(&a, "/status/operationState/phase"),
        "Succeeded",
        "{a}"
    );
    let a = eventually(30, "slow Synced and Healthy", || async {
        let a = app_value(&apps, "slow").await?;
        (field(&a, "/status/sync/status") == "Synced"
            && field(&a, "/status/health/status") == "Healthy")
            .then_some(a)
    })
    .await;
    assert_eq!(a["status"]["resources"].as_array().map(Vec::len), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn respect_ignore_differences_keeps_the_hpa_replicas() {
    let repo = Repo::new();
    repo.write(
        "app/deploy.yaml",
        &deployment("model", 2, "registry.local/model:1", json!({}), 0),
    );
    // The embedded cluster's HPA controller scales the Deployment to its minimum of 5
    // (the simulated request rate, 10/s per Pod, is far below the target).
    repo.write(
        "app/hpa.yaml",
        &serde_json::to_string(&json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "model"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "model"},
                "minReplicas": 5, "maxReplicas": 6,
                "metrics": [{"type": "Pods", "pods": {"metric": {"name": "http_requests_per_second"},
                    "target": {"type": "AverageValue", "averageValue": "1000"}}}]}}))
        .expect("json"),
    );
    let c1 = repo.commit("v1");
    let e = env().await;
    let apps = apps(&e.client);
    let mut app = application(
        "hpa",
        &repo.url(),
        true,
        json!({"ignoreDifferences": [{"group": "apps", "kind": "Deployment", "jsonPointers": ["/spec/replicas"]}]}),
    );
    app.data["spec"]["syncPolicy"]["syncOptions"] =
        json!(["CreateNamespace=true", "RespectIgnoreDifferences=true"]);
    apps.create(&PostParams::default(), &app)
        .await
        .expect("create");
    let synced_at = |rev: String| {
        let apps = apps.clone();
        async move {
            eventually(60, &format!("hpa synced at {rev}"), || async {
                let a = app_value(&apps, "hpa").await?;
                (field(&a, "/status/operationState/phase") == "Succeeded"
                    && field(&a, "/status/operationState/syncResult/revision") == rev
                    && field(&a, "/status/sync/status") == "Synced")
                    .then_some(a)
            })
            .await
        }
    };
    synced_at(c1).await;
    let deploys = api(&e.client, "apps", "v1", "Deployment", "deployments");
    eventually(60, "the HPA scales the Deployment to 5", || async {
        let d = deploys.get("model").await.ok()?;
        (d.data["spec"]["replicas"] == 5).then_some(())
    })
    .await;
    // A Git commit changes something else in the Deployment: the sync applies it and
    // keeps the HPA's replicas.
    repo.write(
        "app/deploy.yaml",
        &deployment("model", 2, "registry.local/model:2", json!({}), 0),
    );
    let c2 = repo.commit("v2");
    e.controller.ctx.refresh("argocd/hpa");
    synced_at(c2).await;
    let d = deploys.get("model").await.expect("d");
    assert_eq!(
        d.data["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.local/model:2"
    );
    assert_eq!(d.data["spec"]["replicas"], 5, "the HPA's value survives");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_resources_are_reported_and_fail_on_shared_resource_applies_nothing() {
    let first = Repo::new();
    first.write("app/shared.yaml", &cm("shared-config", json!({})));
    first.commit("first");
    let second = Repo::new();
    second.write("app/shared.yaml", &cm("shared-config", json!({})));
    second.write("app/own.yaml", &cm("second-only", json!({})));
    second.commit("second");
    let e = env().await;
    let apps = apps(&e.client);
    apps.create(
        &PostParams::default(),
        &application("first", &first.url(), false, json!({})),
    )
    .await
    .expect("create");
    sync(&apps, "first").await;
    finished(&apps, "first", 60).await;

    let mut app = application("second", &second.url(), false, json!({}));
    app.data["spec"]["syncPolicy"]["syncOptions"] =
        json!(["CreateNamespace=true", "FailOnSharedResource=true"]);
    apps.create(&PostParams::default(), &app)
        .await
        .expect("create");
    let a = eventually(30, "SharedResourceWarning on second", || async {
        let a = app_value(&apps, "second").await?;
        (!conditions(&a, "SharedResourceWarning").is_empty()).then_some(a)
    })
    .await;
    assert_eq!(
        conditions(&a, "SharedResourceWarning"),
        vec!["ConfigMap/shared-config is part of applications second and first"]
    );
    sync(&apps, "second").await;
    let a = finished(&apps, "second", 60).await;
    assert_eq!(field(&a, "/status/operationState/phase"), "Failed", "{a}");
    assert_eq!(
        field(&a, "/status/operationState/message"),
        "Shared resource found: ConfigMap/shared-config is part of applications second and first"
    );
    assert!(
        cms(&e.client)
            .get_opt("second-only")
            .await
            .expect("get")
            .is_none(),
        "nothing was applied"
    );
    let shared = cms(&e.client).get("shared-config").await.expect("cm");
    assert!(
        serde_json::to_value(&shared)
            .expect("json")
            .pointer("/metadata/annotations/argocd.argoproj.io~1tracking-id")
            .and_then(Value::as_str)
            .is_some_and(|id| id.starts_with("first:")),
        "still the first app's"
    );
    let first_app = app_value(&apps, "first").await.expect("first");
    assert!(conditions(&first_app, "SharedResourceWarning").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_namespace_metadata_labels_the_created_namespace() {
    let repo = Repo::new();
    repo.write("app/cm.yaml", &cm("in-team-ns", json!({})));
    repo.commit("v1");
    let e = env().await;
    let apps = apps(&e.client);
    apps.create(
        &PostParams::default(),
        &application(
            "team",
            &repo.url(),
            false,
            json!({"syncPolicy": {"syncOptions": ["CreateNamespace=true"],
                "managedNamespaceMetadata": {"labels": {"team": "ml", "tier": "gold"},
                    "annotations": {"owner": "platform"}}}}),
        ),
    )
    .await
    .expect("create");
    sync(&apps, "team").await;
    let a = finished(&apps, "team", 60).await;
    assert_eq!(
        field(&a, "/status/operationState/phase"),
        "Succeeded",
        "{a}"
    );
    let namespaces: Api<DynamicObject> = Api::all_with(
        e.client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("", "v1", "Namespace"),
            "namespaces",
        ),
    );
    let ns = serde_json::to_value(namespaces.get(NS).await.expect("ns")).expect("json");
    assert_eq!(field(&ns, "/metadata/labels/team"), "ml");
    assert_eq!(field(&ns, "/metadata/labels/tier"), "gold");
    assert_eq!(field(&ns, "/metadata/annotations/owner"), "platform");
    assert!(
        ns.pointer("/metadata/annotations/argocd.argoproj.io~1tracking-id")
            .is_none(),
        "the created namespace is not tracked (never pruned)"
    );
    // A label changed and one removed in managedNamespaceMetadata: the next sync
    // applies it to the existing namespace (server-side apply drops what it owned).
    apps.patch(
        "team",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"syncPolicy": {"managedNamespaceMetadata": {
            "labels": {"team": "ml-platform", "tier": null}}}}})),
    )
    .await
    .expect("patch");
    sync(&apps, "team").await;
    eventually(60, "namespace metadata updated", || async {
        let ns = serde_json::to_value(namespaces.get(NS).await.ok()?).ok()?;
        (field(&ns, "/metadata/labels/team") == "ml-platform"
            && ns.pointer("/metadata/labels/tier").is_none())
        .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_app_keeps_delete_false_and_runs_post_delete_hooks() {
    let repo = Repo::new();
    repo.write("app/gone.yaml", &cm("gone", json!({})));
    repo.write(
        "app/keep.yaml",
        &cm(
            "keep",
            json!({"argocd.argoproj.io/sync-options": "Delete=false"}),
        ),
    );
    repo.write(
        "app/post-delete.yaml",
        &job(
            "notify-deleted",
            json!({"argocd.argoproj.io/hook": "PostDelete"}),
        ),
    );
    repo.write(
        "app/post-delete-tmp.yaml",
        &job(
            "scratch-cleanup",
            json!({"argocd.argoproj.io/hook": "PostDelete",
                "argocd.argoproj.io/hook-delete-policy": "HookSucceeded"}),
        ),
    );
    let c1 = repo.commit("v1");
    let e = env().await;
    let apps = apps(&e.client);
    apps.create(
        &PostParams::default(),
        &application("doomed", &repo.url(), true, json!({})),
    )
    .await
    .expect("create");
    // The controller adds Argo CD's post-delete finalizers (the manifests have
    // PostDelete hooks); the hooks do not run during a sync.
    let a = eventually(60, "doomed synced with post-delete finalizers", || async {
        let a = app_value(&apps, "doomed").await?;
        let fins = a["metadata"]["finalizers"].to_string();
        (field(&a, "/status/operationState/phase") == "Succeeded"
            && field(&a, "/status/sync/revision") == c1
            && fins.contains("\"post-delete-finalizer.argocd.argoproj.io\"")
            && fins.contains("\"post-delete-finalizer.argocd.argoproj.io/cleanup\""))
        .then_some(a)
    })
    .await;
    assert_eq!(
        a["status"]["resources"].as_array().map(Vec::len),
        Some(2),
        "{a}"
    );
    let jobs = api(&e.client, "batch", "v1", "Job", "jobs");
    assert!(jobs.get_opt("notify-deleted").await.expect("get").is_none());

    // Cascading delete, as `mooring app delete` does it (the finalizer is added to the
    // ones already there).
    let mut fins: Vec<Value> = a["metadata"]["finalizers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    fins.push(json!("resources-finalizer.argocd.argoproj.io"));
    apps.patch(
        "doomed",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": fins}})),
    )
    .await
    .expect("cascade");
    apps.delete("doomed", &Default::default())
        .await
        .expect("delete");
    eventually(90, "doomed is gone", || async {
        apps.get_opt("doomed")
            .await
            .ok()
            .and_then(|a| a.is_none().then_some(()))
    })
    .await;
    let cms = cms(&e.client);
    assert!(cms.get_opt("gone").await.expect("get").is_none(), "deleted");
    assert!(
        cms.get_opt("keep").await.expect("get").is_some(),
        "Delete=false keeps it"
    );
    let hook = jobs
        .get("notify-deleted")
        .await
        .expect("the PostDelete hook ran");
    let done = hook.data["status"]["conditions"]
        .as_array()
        .is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Complete" && c["status"] == "True")
        });
    assert!(
        done,
        "it completed before the app went away: {:?}",
        hook.data
    );
    assert!(
        jobs.get_opt("scratch-cleanup")
            .await
            .expect("get")
            .is_none(),
        "HookSucceeded hooks are deleted at cleanup"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_confirm_waits_for_the_approval_annotation() {
    let repo = Repo::new();
    repo.write(
        "app/precious.yaml",
        &cm(
            "precious",
            json!({"argocd.argoproj.io/sync-options": "Prune=confirm"}),
        ),
    );
    repo.write("app/plain.yaml", &cm("plain", json!({})));
    repo.commit("v1");
    let e = env().await;
    let apps = apps(&e.client);
    apps.create(
        &PostParams::default(),
        &application("confirm", &repo.url(), false, json!({})),
    )
    .await
    .expect("create");
    sync(&apps, "confirm").await;
    finished(&apps, "confirm", 60).await;

    repo.remove("app/precious.yaml");
    repo.commit("drop precious");
    e.controller.ctx.refresh("argocd/confirm");
    eventually(30, "confirm sees the new commit", || async {
        let a = app_value(&apps, "confirm").await?;
        resource(&a, "ConfigMap", "precious")
            .is_some_and(|r| r["requiresPruning"] == true)
            .then_some(())
    })
    .await;
    sync(&apps, "confirm").await;
    let a = eventually(30, "the operation waits for confirmation", || async {
        let a = app_value(&apps, "confirm").await?;
        (field(&a, "/status/operationState/message")
            == "Waiting for pruning confirmation of v1/ConfigMap/precious")
            .then_some(a)
    })
    .await;
    assert_eq!(field(&a, "/status/operationState/phase"), "Running");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert!(
        cms(&e.client)
            .get_opt("precious")
            .await
            .expect("get")
            .is_some(),
        "not pruned before the approval"
    );
    // An approval older than the operation does not count; a current one does.
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    apps.patch(
        "confirm",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": {"argocd.argoproj.io/deletion-approved": "2000-01-01T00:00:00Z"}}})),
    )
    .await
    .expect("stale approval");
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert!(cms(&e.client)
        .get_opt("precious")
        .await
        .expect("get")
        .is_some());
    apps.patch(
        "confirm",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"metadata": {"annotations": {"argocd.argoproj.io/deletion-approved": now}}}),
        ),
    )
    .await
    .expect("approve");
    let a = finished(&apps, "confirm", 60).await;
    assert_eq!(
        field(&a, "/status/operationState/phase"),
        "Succeeded",
        "{a}"
    );
    assert!(cms(&e.client)
        .get_opt("precious")
        .await
        .expect("get")
        .is_none());
}
