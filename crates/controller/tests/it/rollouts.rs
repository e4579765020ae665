//! Progressive delivery end to end: Rollouts reconciled by the controller on the embedded
//! cluster (simulated pods), traffic routers edited, AnalysisRuns run against a real
//! Prometheus scraping the simulated pods' metrics.

use crate::support::{env_with_cluster, eventually, field};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use mooring_apiserver::Cluster;
use mooring_controller::rollout::{
    analysis_run_resource, analysis_template_resource, rollout_resource,
};
use mooring_k8s::kube;
use serde_json::{json, Value};

fn res(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.into()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.into(),
        plural: plural.into(),
    }
}

pub async fn create(client: &kube::Client, ar: &ApiResource, obj: Value) {
    let ns = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_string();
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, ar);
    let o: DynamicObject = serde_json::from_value(obj).expect("object");
    api.create(&PostParams::default(), &o)
        .await
        .expect("create");
}

pub async fn get(client: &kube::Client, ar: &ApiResource, ns: &str, name: &str) -> Value {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, ar);
    api.get_opt(name)
        .await
        .expect("get")
        .map(|o| serde_json::to_value(o).expect("json"))
        .unwrap_or(Value::Null)
}

pub async fn patch_status(client: &kube::Client, ns: &str, name: &str, patch: Value) {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &rollout_resource());
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("status patch");
}

pub async fn patch_spec(client: &kube::Client, ns: &str, name: &str, patch: Value) {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &rollout_resource());
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
}

pub async fn install_traffic_crds(cluster: &Cluster, client: &kube::Client) {
    let _ = cluster;
    let api: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &res(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
        ),
    );
    for crd in mooring_k8s::crds::traffic_crds() {
        let o: DynamicObject = serde_json::from_value(crd).expect("crd");
        api.create(&PostParams::default(), &o)
            .await
            .expect("crd create");
    }
    eventually(20, "traffic CRDs served", || async {
        let vs: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), "default", &vs_resource());
        vs.list(&Default::default()).await.ok()
    })
    .await;
}

fn vs_resource() -> ApiResource {
    res(
        "networking.istio.io",
        "v1beta1",
        "VirtualService",
        "virtualservices",
    )
}

fn service(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
}

fn svc_resource() -> ApiResource {
    res("", "v1", "Service", "services")
}

fn rollout(strategy: Value, image: &str) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 4,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [{"name": "web", "image": image}]}},
            "strategy": strategy,
        },
    })
}

async fn rollout_status(client: &kube::Client) -> Value {
    get(client, &rollout_resource(), "default", "web").await["status"].clone()
}

/// Wait until the Rollout's status satisfies `f`.
async fn wait_rollout(client: &kube::Client, what: &str, f: impl Fn(&Value) -> bool) -> Value {
    eventually(60, what, || async {
        let s = rollout_status(client).await;
        f(&s).then_some(s)
    })
    .await
}

fn vs_weights(vs: &Value) -> (i64, i64) {
    let route = &vs["spec"]["http"][0]["route"];
    let w = |host: &str| {
        route
            .as_array()
            .and_then(|a| a.iter().find(|d| d["destination"]["host"] == json!(host)))
            .and_then(|d| d["weight"].as_i64())
            .unwrap_or(-1)
    };
    (w("web-stable"), w("web-canary"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn istio_virtual_service_weights_follow_the_steps_and_return_to_stable_on_abort() {
    let (cluster, env) = env_with_cluster().await;
    let client = env.client.clone();
    install_traffic_crds(&cluster, &client).await;
    for s in ["web-stable", "web-canary"] {
        create(&client, &svc_resource(), service(s)).await;
    }
    create(
        &client,
        &vs_resource(),
        json!({
            "apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"hosts": ["web.example.com"], "http": [{"name": "primary", "route": [
                {"destination": {"host": "web-stable"}, "weight": 100},
                {"destination": {"host": "web-canary"}, "weight": 0}]}]},
        }),
    )
    .await;
    let strategy = json!({"canary": {
        "canaryService": "web-canary", "stableService": "web-stable",
        "abortScaleDownDelaySeconds": 1,
        "trafficRouting": {"istio": {"virtualService": {"name": "web", "routes": ["primary"]}}},
        "steps": [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}, {"pause": {}}],
    }});
    create(&client, &rollout_resource(), rollout(strategy, "web:1")).await;
    let s = wait_rollout(&client, "first deploy healthy", |s| {
        s["phase"] == json!("Healthy")
    })
    .await;
    let stable = field(&s, "/stableRS").to_string();
    let svc = get(&client, &svc_resource(), "default", "web-stable").await;
    assert_eq!(
        svc["spec"]["selector"]["rollouts-pod-template-hash"],
        json!(stable)
    );

    patch_spec(&client, "default", "web", json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}})).await;
    let s = wait_rollout(&client, "paused at 20%", |s| {
        s["phase"] == json!("Paused") && s["currentStepIndex"] == json!(1)
    })
    .await;
    let canary = field(&s, "/currentPodHash").to_string();
    assert_ne!(canary, stable);
    let vs = get(&client, &vs_resource(), "default", "web").await;
    assert_eq!(vs_weights(&vs), (80, 20));
    let svc = get(&client, &svc_resource(), "default", "web-canary").await;
    assert_eq!(
        svc["spec"]["selector"]["rollouts-pod-template-hash"],
        json!(canary)
    );

    // promote: clear the pause (what `mooring rollout promote` does).
    patch_status(
        &client,
        "default",
        "web",
        json!({"status": {"pauseConditions": null}}),
    )
    .await;
    wait_rollout(&client, "paused at 60%", |s| {
        s["phase"] == json!("Paused") && s["currentStepIndex"] == json!(3)
    })
    .await;
    let vs = get(&client, &vs_resource(), "default", "web").await;
    assert_eq!(vs_weights(&vs), (40, 60));

    patch_status(
        &client,
        "default",
        "web",
        json!({"status": {"abort": true}}),
    )
    .await;
    let s = wait_rollout(&client, "aborted", |s| s["phase"] == json!("Degraded")).await;
    assert!(field(&s, "/message").starts_with("RolloutAborted"), "{s}");
    let vs = get(&client, &vs_resource(), "default", "web").await;
    assert_eq!(vs_weights(&vs), (100, 0));
    assert_eq!(field(&s, "/stableRS"), stable);
}
