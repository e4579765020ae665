//! The sync-time policy gate with Gatekeeper objects in the management cluster: a `deny`
//! constraint blocks a sync with nothing applied, the same change goes through once the
//! constraint is in `dryrun`, and the audit reports the live violation.

use crate::support::{env, eventually, field, Repo};
use mooring_k8s::kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use mooring_k8s::kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};

const TEMPLATE: &str = r#"
package k8sgpucap

violation[{"msg": msg, "details": {"gpus": n}}] {
  c := input.review.object.spec.template.spec.containers[_]
  n := to_number(c.resources.limits["nvidia.com/gpu"])
  n > input.parameters.maxGPUs
  msg := sprintf("container %v requests %v nvidia.com/gpu, more than the %v allowed", [c.name, n, input.parameters.maxGPUs])
}
"#;

fn api(
    client: &mooring_k8s::kube::Client,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
) -> Api<DynamicObject> {
    Api::all_with(
        client.clone(),
        &ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural),
    )
}

fn training(gpus: u32) -> String {
    serde_json::to_string(&json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "trainer"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "trainer"}},
            "template": {"metadata": {"labels": {"app": "trainer"}},
                "spec": {"containers": [{"name": "train", "image": "registry.local/train:1",
                    "resources": {"limits": {"nvidia.com/gpu": gpus.to_string()}}}]}}}
    }))
    .expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deny_constraint_blocks_the_sync_and_dryrun_lets_it_through() {
    let repo = Repo::new();
    repo.write("app/trainer.yaml", &training(16));
    repo.write(
        "app/cm.yaml",
        r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"k": "v"}}"#,
    );
    let rev = repo.commit("16 GPUs");
    let e = env().await;
    let client = &e.client;

    // The template, then (once its constraint kind is served) a deny constraint.
    let templates = api(
        client,
        "templates.gatekeeper.sh",
        "v1",
        "ConstraintTemplate",
        "constrainttemplates",
    );
    let template: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "templates.gatekeeper.sh/v1", "kind": "ConstraintTemplate",
        "metadata": {"name": "k8sgpucap"},
        "spec": {"crd": {"spec": {"names": {"kind": "K8sGPUCap"}}},
                 "targets": [{"target": "admission.k8s.gatekeeper.sh", "rego": TEMPLATE}]}
    }))
    .expect("template");
    templates
        .create(&PostParams::default(), &template)
        .await
        .expect("create template");
    let constraints = api(
        client,
        "constraints.gatekeeper.sh",
        "v1beta1",
        "K8sGPUCap",
        "k8sgpucap",
    );
    let constraint: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "K8sGPUCap",
        "metadata": {"name": "training-gpu-cap"},
        "spec": {"enforcementAction": "deny",
                 "match": {"kinds": [{"apiGroups": ["apps"], "kinds": ["Deployment"]}], "namespaces": ["ml-*"]},
                 "parameters": {"maxGPUs": 8}}
    }))
    .expect("constraint");
    eventually(
        20,
        "the constraint kind is served and the constraint created",
        || async {
            constraints
                .create(&PostParams::default(), &constraint)
                .await
                .ok()
        },
    )
    .await;
    // A stricter constraint of another project: never applies to this default-project app.
    let other: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "K8sGPUCap",
        "metadata": {"name": "research-gpu-cap", "labels": {"mooring.dev/project": "research"}},
        "spec": {"match": {"kinds": [{"apiGroups": ["apps"], "kinds": ["Deployment"]}]},
                 "parameters": {"maxGPUs": 1}}
    }))
    .expect("constraint");
    constraints
        .create(&PostParams::default(), &other)
        .await
        .expect("create");
    let t = eventually(10, "template status written", || async {
        let t = serde_json::to_value(templates.get("k8sgpucap").await.ok()?).ok()?;
        (t.pointer("/status/created") == Some(&json!(true))).then_some(t)
    })
    .await;
    assert_eq!(t.pointer("/status/byPod/0/errors"), Some(&json!([])));

    let apps: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "argocd",
        &mooring_k8s::resources::application_resource(),
    );
    let app: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "training", "namespace": "argocd"},
        "spec": {"project": "default",
            "source": {"repoURL": repo.url(), "targetRevision": "main", "path": "app"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "ml-training"},
            "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]}}
    }))
    .expect("app");
    apps.create(&PostParams::default(), &app)
        .await
        .expect("create app");

    // Blocked: the operation fails, the condition names resource, constraint and message.
    // Finished: phase written and the request cleared (a new request must not race it).
    let a = eventually(30, "the sync is refused", || async {
        let a = serde_json::to_value(apps.get("training").await.ok()?).ok()?;
        (field(&a, "/status/operationState/phase") == "Failed"
            && a.get("operation").is_none_or(Value::is_null))
        .then_some(a)
    })
    .await;
    let message = field(&a, "/status/operationState/message");
    assert!(message.contains("nothing was applied"), "{message}");
    assert!(
        message.contains("requests 16 nvidia.com/gpu, more than the 8 allowed"),
        "{message}"
    );
    assert_eq!(field(&a, "/status/operationState/syncResult/revision"), rev);
    let conditions = a
        .pointer("/status/conditions")
        .cloned()
        .unwrap_or(Value::Null);
    let violation = conditions
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "PolicyViolation"))
        .unwrap_or_else(|| panic!("no PolicyViolation condition in {conditions}"));
    let text = violation["message"].as_str().unwrap_or_default();
    assert!(
        text.contains("Deployment.apps/ml-training/trainer"),
        "{text}"
    );
    assert!(text.contains("[K8sGPUCap/training-gpu-cap]"), "{text}");
    assert!(text.contains("(deny)"), "{text}");
    assert!(
        !text.contains("research-gpu-cap"),
        "another project's constraint: {text}"
    );
    // Nothing applied: neither the Deployment nor the harmless ConfigMap.
    let deployments = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        "ml-training",
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apps", "v1", "Deployment"),
            "deployments",
        ),
    );
    let configmaps = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        "ml-training",
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("", "v1", "ConfigMap"),
            "configmaps",
        ),
    );
    assert!(deployments.get_opt("trainer").await.expect("get").is_none());
    assert!(configmaps.get_opt("settings").await.expect("get").is_none());
    // The refusal is an Event on the Application too (the `on-sync-blocked-by-policy`
    // notification trigger).
    let events: Api<mooring_k8s::k8s_openapi::api::core::v1::Event> =
        Api::namespaced(client.clone(), "argocd");
    let blocked: Vec<String> = events
        .list(&Default::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("SyncBlockedByPolicy"))
        .filter_map(|e| e.message)
        .collect();
    assert!(!blocked.is_empty(), "no SyncBlockedByPolicy Event");
    assert!(
        blocked[0].contains("more than the 8 allowed"),
        "{blocked:?}"
    );

    // The same change is allowed once the constraint is in dryrun.
    constraints
        .patch(
            "training-gpu-cap",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"enforcementAction": "dryrun"}})),
        )
        .await
        .expect("dryrun");
    apps.patch(
        "training",
        &PatchParams::default(),
        &Patch::Merge(json!({"operation": {"sync": {"revision": rev, "prune": true}, "initiatedBy": {"username": "test"}}})),
    )
    .await
    .expect("sync again");
    let a = eventually(30, "the sync succeeds", || async {
        let a = serde_json::to_value(apps.get("training").await.ok()?).ok()?;
        (field(&a, "/status/operationState/phase") == "Succeeded").then_some(a)
    })
    .await;
    let conditions = a
        .pointer("/status/conditions")
        .cloned()
        .unwrap_or(json!([]));
    let types: Vec<&str> = conditions
        .as_array()
        .map(|cs| cs.iter().filter_map(|c| c["type"].as_str()).collect())
        .unwrap_or_default();
    assert!(!types.contains(&"PolicyViolation"), "{conditions}");
    let warning = conditions
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "PolicyWarning"))
        .unwrap_or_else(|| panic!("no PolicyWarning in {conditions}"));
    assert!(warning["message"]
        .as_str()
        .unwrap_or_default()
        .contains("(dryrun)"));
    assert!(deployments.get_opt("trainer").await.expect("get").is_some());
    assert!(configmaps.get_opt("settings").await.expect("get").is_some());

    // The audit finds the live violation and records it on the Application.
    let app: mooring_core::app::Application = serde_json::from_value(a).expect("app");
    let found = eventually(10, "the audit sees the live Deployment", || async {
        let v = mooring_controller::policy::audit_app(&e.controller.ctx, &app)
            .await
            .ok()?;
        (!v.is_empty()).then_some(v)
    })
    .await;
    assert_eq!(found.len(), 1, "only this project's constraint: {found:?}");
    assert_eq!(found[0].constraint_name, "training-gpu-cap");
    let a = eventually(10, "PolicyAudit condition", || async {
        let a = serde_json::to_value(apps.get("training").await.ok()?).ok()?;
        let cs = a.pointer("/status/conditions")?.as_array()?.clone();
        cs.into_iter().find(|c| c["type"] == "PolicyAudit")
    })
    .await;
    assert!(field(&a, "/message").contains("ml-training/trainer"), "{a}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_template_that_does_not_compile_is_reported_and_fails_closed() {
    let repo = Repo::new();
    repo.write(
        "app/cm.yaml",
        r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"k": "v"}}"#,
    );
    repo.commit("cm");
    let e = env().await;
    let client = &e.client;
    let templates = api(
        client,
        "templates.gatekeeper.sh",
        "v1",
        "ConstraintTemplate",
        "constrainttemplates",
    );
    let template: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "templates.gatekeeper.sh/v1", "kind": "ConstraintTemplate",
        "metadata": {"name": "broken"},
        "spec": {"crd": {"spec": {"names": {"kind": "Broken"}}},
                 "targets": [{"target": "admission.k8s.gatekeeper.sh",
                              "rego": "package broken\n\nviolation[{\"msg\": msg}] {\n  msg := \n}\n"}]}
    }))
    .expect("template");
    templates
        .create(&PostParams::default(), &template)
        .await
        .expect("create");
    let t = eventually(20, "template status with the error", || async {
        let t = serde_json::to_value(templates.get("broken").await.ok()?).ok()?;
        (t.pointer("/status/created") == Some(&json!(false))).then_some(t)
    })
    .await;
    let err = t
        .pointer("/status/byPod/0/errors/0/message")
        .and_then(Value::as_str)
        .unwrap_or_default();
    assert!(err.contains("broken: rego:3:"), "no line in {err}");

    let apps: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "argocd",
        &mooring_k8s::resources::application_resource(),
    );
    let app: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "plain", "namespace": "argocd"},
        "spec": {"project": "default",
            "source": {"repoURL": repo.url(), "targetRevision": "main", "path": "app"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "plain"},
            "syncPolicy": {"automated": {}, "syncOptions": ["CreateNamespace=true"]}}
    }))
    .expect("app");
    apps.create(&PostParams::default(), &app)
        .await
        .expect("create app");
    let a = eventually(30, "the sync fails closed", || async {
        let a = serde_json::to_value(apps.get("plain").await.ok()?).ok()?;
        (field(&a, "/status/operationState/phase") == "Failed").then_some(a)
    })
    .await;
    let message = field(&a, "/status/operationState/message");
    assert!(
        message.contains("does not compile") && message.contains("broken"),
        "{message}"
    );
}

/// With no policy installed, the audit loop skips every Application except one that still
/// carries a `PolicyAudit` from a removed policy, and clears that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_clears_a_stale_finding_once_no_policy_is_installed() {
    let repo = Repo::new();
    repo.write(
        "app/cm.yaml",
        r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"k": "v"}}"#,
    );
    repo.commit("one ConfigMap");
    let cluster = mooring_apiserver::Cluster::start(mooring_apiserver::ClusterOptions {
        crds: mooring_k8s::crds::all(),
        ..Default::default()
    })
    .await
    .expect("cluster");
    let e = crate::support::controller_with(&cluster, |o| {
        o.policy_audit = Some(std::time::Duration::from_millis(200));
    })
    .await;
    let apps: Api<DynamicObject> = Api::namespaced_with(
        e.client.clone(),
        "argocd",
        &mooring_k8s::resources::application_resource(),
    );
    let app: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "settings", "namespace": "argocd"},
        "spec": {"project": "default",
                 "source": {"repoURL": repo.url(), "path": "app", "targetRevision": "HEAD"},
                 "destination": {"server": "https://kubernetes.default.svc", "namespace": "settings"}}
    }))
    .expect("app");
    apps.create(&PostParams::default(), &app)
        .await
        .expect("create app");
    let stale = json!({"type": "PolicyAudit", "message": "1 live object(s) violate the policy in force",
                       "lastTransitionTime": "2026-01-01T00:00:00Z"});
    apps.patch(
        "settings",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"conditions": [stale]}})),
    )
    .await
    .expect("stale finding");
    eventually(20, "the stale PolicyAudit is cleared", || async {
        let a = serde_json::to_value(apps.get("settings").await.ok()?).ok()?;
        let conditions = a
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        (!conditions.iter().any(|c| c["type"] == "PolicyAudit")).then_some(())
    })
    .await;
}
