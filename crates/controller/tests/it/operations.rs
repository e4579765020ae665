//! Sync operations: waves and hooks in order, failing hooks, resuming after a controller
//! crash without duplicating hooks, history and rollback.

use crate::support::{env, env_with_cluster, eventually, field, Repo};
use mooring_k8s::kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use mooring_k8s::kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};

fn apps(client: &mooring_k8s::kube::Client) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        "argocd",
        &mooring_k8s::resources::application_resource(),
    )
}

fn ns_api(
    client: &mooring_k8s::kube::Client,
    g: &str,
    k: &str,
    plural: &str,
) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        "ml",
        &ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(g, "v1", k), plural),
    )
}

fn app(name: &str, url: &str, automated: bool) -> DynamicObject {
    let mut a = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {"project": "default",
            "source": {"repoURL": url, "targetRevision": "main", "path": "app"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "ml"},
            "syncPolicy": {"syncOptions": ["CreateNamespace=true"]}}
    });
    if automated {
        a["spec"]["syncPolicy"]["automated"] = json!({"prune": true});
    }
    serde_json::from_value(a).expect("app")
}

fn job(name: &str, hook: &str, extra_ann: Value, fail: bool) -> String {
    let mut ann = json!({"argocd.argoproj.io/hook": hook});
    if let (Some(a), Some(e)) = (ann.as_object_mut(), extra_ann.as_object()) {
        a.extend(e.clone());
    }
    let tmpl_ann = if fail {
        json!({"sim.mooring.dev/fail": "job"})
    } else {
        json!({})
    };
    serde_json::to_string(&json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "annotations": ann},
        "spec": {"backoffLimit": 0, "template": {"metadata": {"annotations": tmpl_ann},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "registry.local/tool:1"}]}}}
    }))
    .expect("json")
}

fn cm(name: &str, wave: i64) -> String {
    serde_json::to_string(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "annotations": {"argocd.argoproj.io/sync-wave": wave.to_string()}},
        "data": {"k": "v"}}))
    .expect("json")
}

async fn sync(apps: &Api<DynamicObject>, name: &str, revision: Option<&str>) {
    apps.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"operation": {"sync": {"revision": revision, "prune": true}, "initiatedBy": {"username": "test"}}})),
    )
    .await
    .expect("request sync");
}

async fn finished(apps: &Api<DynamicObject>, name: &str, secs: u64) -> Value {
    eventually(secs, &format!("{name} operation finished"), || async {
        let a = serde_json::to_value(apps.get(name).await.ok()?).ok()?;
        let phase = field(&a, "/status/operationState/phase");
        (a.get("operation").is_none_or(Value::is_null) && !phase.is_empty() && phase != "Running")
            .then_some(a)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waves_and_hooks_run_in_order_and_a_failing_presync_runs_syncfail() {
    let repo = Repo::new();
    repo.write("app/pre.yaml", &job("pre", "PreSync", json!({}), false));
    repo.write("app/w0.yaml", &cm("wave-0", 0));
    repo.write("app/w1.yaml", &cm("wave-1", 1));
    repo.write("app/wm1.yaml", &cm("wave-minus-1", -1));
    repo.write("app/post.yaml", &job("post", "PostSync", json!({}), false));
    let c1 = repo.commit("v1");
    let e = env().await;
    let apps = apps(&e.client);
    apps.create(&PostParams::default(), &app("ordered", &repo.url(), false))
        .await
        .expect("create");
    sync(&apps, "ordered", None).await;
    let a = finished(&apps, "ordered", 60).await;
    assert_eq!(
        field(&a, "/status/operationState/phase"),
        "Succeeded",
        "{a}"
    );
    assert_eq!(field(&a, "/status/operationState/syncResult/revision"), c1);
    // The order tasks were run in, as recorded by the operation.
    let order: Vec<String> = a["status"]["operationState"]["syncResult"]["resources"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["name"].as_str().unwrap_or_default().to_string())
        .collect();
    let pos = |n: &str| {
        order
            .iter()
            .position(|x| x == n)
            .unwrap_or_else(|| panic!("{n} missing from {order:?}"))
    };
    assert!(pos("pre") < pos("wave-minus-1"));
    assert!(pos("wave-minus-1") < pos("wave-0"));
    assert!(pos("wave-0") < pos("wave-1"));
    assert!(pos("wave-1") < pos("post"));

    // A failing PreSync hook stops the sync before any resource and runs SyncFail hooks.
    let repo2 = Repo::new();
    repo2.write(
        "app/pre.yaml",
        &job("pre-fails", "PreSync", json!({}), true),
    );
    repo2.write("app/cm.yaml", &cm("never-applied", 0));
    repo2.write(
        "app/onfail.yaml",
        &job("on-fail", "SyncFail", json!({}), false),
    );
    repo2.commit("failing");
    apps.create(&PostParams::default(), &app("failing", &repo2.url(), false))
        .await
        .expect("create");
    sync(&apps, "failing", None).await;
    let a = finished(&apps, "failing", 60).await;
    assert_eq!(field(&a, "/status/operationState/phase"), "Failed", "{a}");
    assert!(
        field(&a, "/status/operationState/message").contains("pre-fails"),
        "{a}"
    );
    let cms = ns_api(&e.client, "", "ConfigMap", "configmaps");
    assert!(cms.get_opt("never-applied").await.expect("get").is_none());
    let jobs = ns_api(&e.client, "batch", "Job", "jobs");
    assert!(
        jobs.get_opt("on-fail").await.expect("get").is_some(),
        "SyncFail hook ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_controller_resumes_without_duplicating_hooks() {
    let repo = Repo::new();
    // A slow PreSync hook (60 simulated seconds = 3 s at speed 20) keeps the operation
    // in its first step long enough to kill the controller there.
    let slow = job("migrate", "PreSync", json!({}), false).replace(
        "\"template\":{\"metadata\":{\"annotations\":{}}",
        "\"template\":{\"metadata\":{\"annotations\":{\"sim.mooring.dev/run-seconds\":\"60\"}}",
    );
    assert!(slow.contains("run-seconds"), "{slow}");
    repo.write("app/migrate.yaml", &slow);
    repo.write("app/w0.yaml", &cm("first", 0));
    repo.write("app/w1.yaml", &cm("second", 1));
    repo.commit("v1");
    let (cluster, e) = env_with_cluster().await;
    let apps = apps(&e.client);
    apps.create(
        &PostParams::default(),
        &app("resumable", &repo.url(), false),
    )
    .await
    .expect("create");
    sync(&apps, "resumable", None).await;
    let jobs = ns_api(&e.client, "batch", "Job", "jobs");
    eventually(30, "hook job created", || async {
        jobs.get_opt("migrate").await.ok()?.map(|_| ())
    })
    .await;
    // Kill the controller mid-operation, then start a new one on the same cluster.
    drop(e.controller);
    let e2 = crate::support::controller_for(&cluster).await;
    let a = finished(&apps, "resumable", 60).await;
    assert_eq!(
        field(&a, "/status/operationState/phase"),
        "Succeeded",
        "{a}"
    );
    let all_jobs = jobs.list(&ListParams::default()).await.expect("jobs");
    assert_eq!(all_jobs.items.len(), 1, "exactly one hook Job");
    let uid_before = all_jobs.items[0].metadata.uid.clone();
    assert!(uid_before.is_some());
    assert_eq!(
        a["status"]["history"].as_array().map(Vec::len),
        Some(1),
        "the operation finished once"
    );
    let cms = ns_api(&e2.client, "", "ConfigMap", "configmaps");
    assert!(cms.get_opt("second").await.expect("get").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_rollback_restore_an_earlier_revision() {
    let repo = Repo::new();
    repo.write(
        "app/cm.yaml",
        &cm("model-config", 0).replace("\"k\":\"v\"", "\"model\":\"v1\""),
    );
    let c1 = repo.commit("v1");
    repo.write(
        "app/cm.yaml",
        &cm("model-config", 0).replace("\"k\":\"v\"", "\"model\":\"v2\""),
    );
    repo.write("app/extra.yaml", &cm("only-in-v2", 0));
    let c2 = repo.commit("v2");
    let e = env().await;
    let apps = apps(&e.client);
    apps.create(&PostParams::default(), &app("versions", &repo.url(), false))
        .await
        .expect("create");
    sync(&apps, "versions", Some(&c1)).await;
    finished(&apps, "versions", 60).await;
    sync(&apps, "versions", None).await;
    let a = finished(&apps, "versions", 60).await;
    let history: Vec<String> = a["status"]["history"]
        .as_array()
        .expect("history")
        .iter()
        .map(|h| h["revision"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(history, vec![c1.clone(), c2.clone()]);
    let cms = ns_api(&e.client, "", "ConfigMap", "configmaps");
    assert_eq!(
        cms.get("model-config").await.expect("cm").data["data"]["model"],
        "v2"
    );

    // Rollback = sync to history entry 0's revision (with prune).
    sync(&apps, "versions", Some(&c1)).await;
    let a = finished(&apps, "versions", 60).await;
    assert_eq!(field(&a, "/status/operationState/phase"), "Succeeded");
    assert_eq!(
        cms.get("model-config").await.expect("cm").data["data"]["model"],
        "v1"
    );
    assert!(
        cms.get_opt("only-in-v2").await.expect("get").is_none(),
        "v2-only object pruned"
    );
    assert_eq!(a["status"]["history"].as_array().map(Vec::len), Some(3));
}

/// A cache that has not listed every kind is never read as the live state (a controller
/// just started would otherwise compare, plan and prune against part of it: `mooring
/// bench chaos` saw a prune skipped that way), and objects deleted while a watch was
/// down leave the cache at its next list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_cache_is_read_only_once_every_kind_is_listed() {
    let (cluster, e) = env_with_cluster().await;
    let cms: Api<DynamicObject> = Api::namespaced_with(
        e.client.clone(),
        "default",
        &ApiResource::from_gvk(&GroupVersionKind::gvk("", "v1", "ConfigMap")),
    );
    let tracked = |name: &str| {
        serde_json::from_value::<DynamicObject>(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default", "annotations": {
                "argocd.argoproj.io/tracking-id": format!("cached:/ConfigMap:default/{name}"),
            }},
        }))
        .expect("object")
    };
    for name in ["kept", "deleted-later"] {
        cms.create(&PostParams::default(), &tracked(name))
            .await
            .expect("create");
    }
    let client = mooring_k8s::cluster::ClusterClient::new("in-cluster", e.client.clone());
    let err = client.managed("cached").expect_err("not started");
    assert!(err.to_string().contains("still loading"), "{err}");
    let tasks = client.start_cache().await.expect("cache");
    let names = |live: Vec<Value>| {
        let mut n: Vec<String> = live
            .iter()
            .map(|o| field(o, "/metadata/name").to_string())
            .collect();
        n.sort();
        n
    };
    let listed = eventually(30, "every kind listed", || async {
        client.managed("cached").ok()
    })
    .await;
    assert_eq!(names(listed), vec!["deleted-later", "kept"]);
    cms.delete("deleted-later", &Default::default())
        .await
        .expect("delete");
    eventually(30, "the deletion seen", || async {
        (names(client.managed("cached").ok()?) == vec!["kept"]).then_some(())
    })
    .await;
    for t in tasks {
        t.abort();
    }
    drop(cluster);
}
