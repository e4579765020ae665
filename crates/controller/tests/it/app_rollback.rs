//! The verified rollback (`mooring app rollback`): the embedded cluster, a Git repository,
//! the controller, and a monitoring webhook on 127.0.0.1. A rollback to a good revision
//! succeeds only once the app is there and Healthy; one to a revision whose Deployment
//! never becomes ready fails after the timeout naming the Deployment, and the webhook gets
//! `rollback_completed` then `rollback_failed`.

use crate::support::{allow_outbound, env, eventually, field, HttpReceiver, Repo};
use mooring_controller::app_rollback::{self, AppRollbackError, RollbackRequest, RollbackTo};
use mooring_k8s::kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use std::time::Duration;

fn deployment(image_tag: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: model-server, labels: {{app: model-server}}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: model-server}}}}
  template:
    metadata: {{labels: {{app: model-server}}}}
    spec:
      containers:
      - name: server
        image: registry.local/model:{image_tag}
"
    )
}

fn request(to: RollbackTo, timeout_secs: u64) -> RollbackRequest {
    RollbackRequest {
        namespace: "argocd".into(),
        name: "model".into(),
        to,
        prune: false,
        timeout: Duration::from_secs(timeout_secs),
        initiator: "test".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_is_verified_and_reported() {
    let repo = Repo::new();
    repo.write("apps/model/deployment.yaml", &deployment("v1"));
    let v1 = repo.commit("model v1");
    repo.write("apps/model/deployment.yaml", &deployment("never-ready"));
    let broken = repo.commit("model v2: never ready");
    repo.write("apps/model/deployment.yaml", &deployment("v3"));
    let v3 = repo.commit("model v3");
    let e = env().await;
    allow_outbound(&e.client, &e.controller.ctx.outbound, "127.0.0.1").await;
    let hook = HttpReceiver::start(200).expect("receiver");
    let apps: Api<DynamicObject> = Api::namespaced_with(
        e.client.clone(),
        "argocd",
        &mooring_k8s::resources::application_resource(),
    );
    let app: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "model", "namespace": "argocd"},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo.url(), "targetRevision": "main", "path": "apps/model"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "ml-serving"},
            "syncPolicy": {"syncOptions": ["CreateNamespace=true"]},
        }
    }))
    .expect("app");
    apps.create(&PostParams::default(), &app)
        .await
        .expect("create");
    // Deploy the head (v3) by hand, as a manually synced app is.
    apps.patch(
        "model",
        &PatchParams::default(),
        &Patch::Merge(json!({"operation": {"sync": {"revision": v3}}})),
    )
    .await
    .expect("sync");
    eventually(90, "v3 Synced and Healthy", || {
        let apps = apps.clone();
        let v3 = v3.clone();
        async move {
            let a = serde_json::to_value(apps.get("model").await.ok()?).ok()?;
            (field(&a, "/status/sync/status") == "Synced"
                && field(&a, "/status/health/status") == "Healthy"
                && field(&a, "/status/operationState/syncResult/revision") == v3)
                .then_some(())
        }
    })
    .await;

    // To v1 by commit: done only when there and Healthy.
    let mut lines = Vec::new();
    let ok = app_rollback::run(
        &e.client,
        &request(RollbackTo::Revision(v1[..10].to_string()), 90),
        &mut |l: &str| lines.push(l.to_string()),
    )
    .await
    .expect("rollback runs");
    assert!(ok.succeeded, "{ok:?} {lines:?}");
    assert_eq!(
        (ok.from_revision.as_str(), ok.to_revision.as_str()),
        (v3.as_str(), &v1[..10])
    );
    let a = serde_json::to_value(apps.get("model").await.expect("get")).expect("json");
    assert_eq!(field(&a, "/status/operationState/syncResult/revision"), v1);
    assert_eq!(field(&a, "/status/health/status"), "Healthy", "{a}");
    // Argo CD semantics: the app is OutOfSync with the head of main after a rollback.
    assert_eq!(field(&a, "/status/sync/status"), "OutOfSync", "{a}");
    let pods = app_rollback::pod_table(&e.client, "ml-serving")
        .await
        .expect("pods");
    assert_eq!(pods[0][..3], ["NAME", "READY", "STATUS"], "{pods:?}");
    assert!(
        pods[1..]
            .iter()
            .filter(|r| r[0].starts_with("model-server-") && r[1] == "1/1" && r[2] == "Running")
            .count()
            == 2,
        "{pods:?}"
    );
    app_rollback::record_event(&e.client, &ok)
        .await
        .expect("event");
    let status = app_rollback::post_event(
        e.controller.ctx.outbound.clone(),
        &hook.url("/monitoring"),
        &ok,
    )
    .await
    .expect("webhook");
    assert_eq!(status, 200);

    // To the never-ready revision, with a short timeout: a failure naming the Deployment.
    let failed = app_rollback::run(
        &e.client,
        &request(RollbackTo::Revision(broken.clone()), 6),
        &mut |_: &str| {},
    )
    .await
    .expect("rollback runs");
    assert!(!failed.succeeded, "{failed:?}");
    let text = failed.problems.join("\n");
    assert!(
        text.contains("not Healthy") && text.contains("after 6s"),
        "{text}"
    );
    assert!(
        text.contains("Deployment ml-serving/model-server is Progressing"),
        "{text}"
    );
    app_rollback::record_event(&e.client, &failed)
        .await
        .expect("event");
    app_rollback::post_event(
        e.controller.ctx.outbound.clone(),
        &hook.url("/monitoring"),
        &failed,
    )
    .await
    .expect("webhook");
    let got = hook.delivered_json();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0]["event"], "rollback_completed");
    assert_eq!(got[1]["event"], "rollback_failed");
    assert_eq!(got[1]["application"], "model");
    assert_eq!(got[1]["from_revision"], v1.as_str());
    assert_eq!(got[1]["to_revision"], broken.as_str());
    assert!(
        got[1]["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{got:?}"
    );
    let events: Api<mooring_k8s::k8s_openapi::api::core::v1::Event> =
        Api::namespaced(e.client.clone(), "argocd");
    let mut reasons: Vec<String> = events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|ev| ev.involved_object.name.as_deref() == Some("model"))
        .filter_map(|ev| ev.reason)
        .filter(|r| r.starts_with("Rollback"))
        .collect();
    reasons.sort();
    assert_eq!(reasons, ["RollbackCompleted", "RollbackFailed"]);

    // Bad input: a history id that does not exist; an automated app is refused.
    let err = app_rollback::run(
        &e.client,
        &request(RollbackTo::History(99), 5),
        &mut |_: &str| {},
    )
    .await
    .expect_err("no entry 99");
    assert!(
        matches!(err, AppRollbackError::NoHistory { id: 99, .. }),
        "{err}"
    );
    apps.patch(
        "model",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"syncPolicy": {"automated": {}}}})),
    )
    .await
    .expect("automate");
    let err = app_rollback::run(
        &e.client,
        &request(RollbackTo::History(0), 5),
        &mut |_: &str| {},
    )
    .await
    .expect_err("automated");
    assert!(err.to_string().contains("auto-sync is enabled"), "{err}");
}
