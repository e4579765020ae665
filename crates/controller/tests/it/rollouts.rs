//! Progressive delivery end to end: Rollouts reconciled by the controller on the embedded
//! cluster (simulated pods), traffic routers edited, AnalysisRuns run against a real
//! Prometheus scraping the simulated pods' metrics.

use crate::support::{allow_outbound, env_with_cluster, eventually, field};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use mooring_apiserver::Cluster;
use mooring_k8s::kube;
use mooring_k8s::resources::{analysis_run_resource, analysis_template_resource, rollout_resource};
use serde_json::{json, Value};

use mooring_k8s::api_resource as res;

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
    // Each transition was recorded once as an Event on the Rollout, as Argo Rollouts does
    // (the notification triggers on-rollout-paused, on-rollout-aborted).
    let events: Api<mooring_k8s::k8s_openapi::api::core::v1::Event> =
        Api::namespaced(client.clone(), "default");
    let reasons = || {
        let events = events.clone();
        async move {
            let mut r: Vec<String> = events
                .list(&Default::default())
                .await
                .ok()?
                .items
                .into_iter()
                .filter(|e| e.involved_object.kind.as_deref() == Some("Rollout"))
                .filter_map(|e| e.reason)
                .collect();
            r.sort();
            (r.iter().any(|x| x == "RolloutAborted")).then_some(r)
        }
    };
    let r = mooring_testkit::eventually(30, "the Rollout's Events", reasons).await;
    assert_eq!(
        r,
        ["RolloutAborted", "RolloutPaused", "RolloutPaused"],
        "{r:?}"
    );
}

fn http_route_weights(route: &Value) -> (i64, i64) {
    let refs = &route["spec"]["rules"][0]["backendRefs"];
    let w = |name: &str| {
        refs.as_array()
            .and_then(|a| a.iter().find(|b| b["name"] == json!(name)))
            .and_then(|b| b["weight"].as_i64())
            .unwrap_or(-1)
    };
    (w("web-stable"), w("web-canary"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_api_http_route_weights_follow_the_steps() {
    let (cluster, env) = env_with_cluster().await;
    let client = env.client.clone();
    install_traffic_crds(&cluster, &client).await;
    for s in ["web-stable", "web-canary"] {
        create(&client, &svc_resource(), service(s)).await;
    }
    let route_res = res("gateway.networking.k8s.io", "v1", "HTTPRoute", "httproutes");
    create(
        &client,
        &route_res,
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"parentRefs": [{"name": "gateway"}], "rules": [{"backendRefs": [
                {"name": "web-stable", "port": 80, "weight": 100},
                {"name": "web-canary", "port": 80, "weight": 0}]}]},
        }),
    )
    .await;
    let strategy = json!({"canary": {
        "canaryService": "web-canary", "stableService": "web-stable",
        "trafficRouting": {"plugins": {"argoproj-labs/gatewayAPI": {"httpRoute": "web", "namespace": "default"}}},
        "steps": [{"setWeight": 30}, {"pause": {}}],
    }});
    create(&client, &rollout_resource(), rollout(strategy, "web:1")).await;
    wait_rollout(&client, "first deploy healthy", |s| {
        s["phase"] == json!("Healthy")
    })
    .await;
    patch_spec(&client, "default", "web", json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}})).await;
    wait_rollout(&client, "paused at 30%", |s| s["phase"] == json!("Paused")).await;
    let route = get(&client, &route_res, "default", "web").await;
    assert_eq!(http_route_weights(&route), (70, 30));
    // promote --full: the canary becomes stable and the route goes back to 100/0.
    patch_status(
        &client,
        "default",
        "web",
        json!({"status": {"promoteFull": true}}),
    )
    .await;
    let s = wait_rollout(&client, "promoted", |s| {
        s["phase"] == json!("Healthy")
            && s["stableRS"] == s["currentPodHash"]
            && s["currentStepIndex"] == json!(2)
    })
    .await;
    assert!(s["abort"].is_null());
    let route = get(&client, &route_res, "default", "web").await;
    assert_eq!(http_route_weights(&route), (100, 0));
    let svc = get(&client, &svc_resource(), "default", "web-stable").await;
    assert_eq!(
        svc["spec"]["selector"]["rollouts-pod-template-hash"],
        s["stableRS"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_services_and_templates_are_reported_and_fail_safe() {
    let (_cluster, env) = env_with_cluster().await;
    let client = env.client.clone();
    // A Service the spec names is missing: Degraded with a message, until it exists.
    let strategy = json!({"canary": {
        "canaryService": "web-canary", "stableService": "web-stable",
        "steps": [{"setWeight": 50},
                  {"analysis": {"templates": [{"templateName": "missing"}]}}],
    }});
    create(&client, &rollout_resource(), rollout(strategy, "web:1")).await;
    let s = wait_rollout(&client, "Degraded for the missing Service", |s| {
        s["phase"] == json!("Degraded")
    })
    .await;
    assert!(
        field(&s, "/message").contains("\" not found; create it"),
        "{s}"
    );
    for svc in ["web-stable", "web-canary"] {
        create(&client, &svc_resource(), service(svc)).await;
    }
    let s = wait_rollout(&client, "Healthy once the Services exist", |s| {
        s["phase"] == json!("Healthy")
    })
    .await;
    let stable = field(&s, "/stableRS").to_string();
    // An analysis step naming a template that does not exist aborts the update: traffic
    // stays on the stable pods and the message says what is missing.
    patch_spec(&client, "default", "web", json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}})).await;
    let s = wait_rollout(&client, "aborted for the missing template", |s| {
        s["phase"] == json!("Degraded")
    })
    .await;
    assert!(
        field(&s, "/message").contains("AnalysisTemplate \"missing\" not found"),
        "{s}"
    );
    assert_eq!(field(&s, "/stableRS"), stable);
    assert_eq!(s["abort"], json!(true));
}

/// An HPA scales a Rollout through its `scale` subresource (`status.selector` finds its
/// Pods), as with Argo Rollouts: the simulated load is high from the start, so the HPA
/// raises `spec.replicas` to its maximum and the controller scales the stable ReplicaSet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hpa_scales_a_rollout_through_its_scale_subresource() {
    let (_cluster, env) = env_with_cluster().await;
    let client = env.client.clone();
    for svc in ["web-stable", "web-canary"] {
        create(&client, &svc_resource(), service(svc)).await;
    }
    let mut r = rollout(
        json!({"canary": {"canaryService": "web-canary", "stableService": "web-stable",
                          "steps": [{"setWeight": 50}]}}),
        "web:1",
    );
    r["spec"]["replicas"] = json!(2);
    r["spec"]["template"]["metadata"]["annotations"] =
        json!({"sim.mooring.dev/cpu-utilization": "90"});
    r["spec"]["template"]["spec"]["containers"][0]["resources"] =
        json!({"requests": {"cpu": "100m"}});
    create(&client, &rollout_resource(), r).await;
    wait_rollout(&client, "Healthy with 2 replicas", |s| {
        s["phase"] == json!("Healthy") && s["availableReplicas"] == json!(2)
    })
    .await;
    let hpa = res(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
    );
    create(
        &client,
        &hpa,
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
               "metadata": {"name": "web", "namespace": "default"},
               "spec": {"scaleTargetRef": {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": "web"},
                        "minReplicas": 2, "maxReplicas": 4,
                        "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                                     "target": {"type": "Utilization", "averageUtilization": 50}}}]}}),
    )
    .await;
    let s = wait_rollout(&client, "scaled to 4 by the HPA", |s| {
        s["availableReplicas"] == json!(4) && s["phase"] == json!("Healthy")
    })
    .await;
    assert_eq!(s["replicas"], json!(4), "{s}");
    let h = get(&client, &hpa, "default", "web").await;
    assert_eq!(h["status"]["desiredReplicas"], json!(4), "{h}");
    assert!(
        h["status"]["conditions"].as_array().is_some_and(|c| c
            .iter()
            .any(|c| c["type"] == "ScalingActive" && c["status"] == "True")),
        "{h}"
    );
}

/// The ReplicaSets the Rollout `web` owns: (pod template hash, spec.replicas).
async fn owned_replica_sets(client: &kube::Client) -> Vec<(String, i64)> {
    let api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "default",
        &res("apps", "v1", "ReplicaSet", "replicasets"),
    );
    let mut out: Vec<(String, i64)> = api
        .list(&Default::default())
        .await
        .expect("list ReplicaSets")
        .items
        .into_iter()
        .map(|o| serde_json::to_value(o).expect("json"))
        .filter(|o| o["metadata"]["ownerReferences"][0]["name"] == json!("web"))
        .map(|o| {
            (
                field(&o, "/metadata/labels/rollouts-pod-template-hash").to_string(),
                o["spec"]["replicas"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    out.sort();
    out
}

/// Issue 11: a canary step Mooring does not implement is never skipped. The update that
/// adds an `experiment` step makes the Rollout Degraded (InvalidSpec naming the step)
/// before anything moves: the stable ReplicaSet keeps every pod, no canary ReplicaSet or
/// pod appears, the router and the Services keep sending everything to stable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_experiment_step_is_invalid_spec_and_no_traffic_moves() {
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
        "trafficRouting": {"istio": {"virtualService": {"name": "web", "routes": ["primary"]}}},
        "steps": [{"setWeight": 20}, {"pause": {}}],
    }});
    create(&client, &rollout_resource(), rollout(strategy, "web:1")).await;
    let s = wait_rollout(&client, "first deploy healthy", |s| {
        s["phase"] == json!("Healthy")
    })
    .await;
    let stable = field(&s, "/stableRS").to_string();
    assert_eq!(owned_replica_sets(&client).await, vec![(stable.clone(), 4)]);

    // One commit: a new model version, and an experiment before the canary gets traffic.
    patch_spec(
        &client,
        "default",
        "web",
        json!({"spec": {
            "template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}},
            "strategy": {"canary": {"steps": [
                {"setWeight": 20},
                {"experiment": {"duration": "30m", "templates": [
                    {"name": "baseline", "specRef": "stable"},
                    {"name": "canary", "specRef": "canary"}]}},
                {"pause": {}}]}},
        }}),
    )
    .await;
    let s = wait_rollout(&client, "Degraded for the experiment step", |s| {
        s["phase"] == json!("Degraded")
    })
    .await;
    assert_eq!(
        field(&s, "/message"),
        "InvalidSpec: step 1: experiment is not supported by Mooring (spec.strategy.canary.steps[1].experiment)",
        "{s}"
    );
    let invalid = s["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == json!("InvalidSpec")))
        .cloned()
        .unwrap_or(Value::Null);
    assert_eq!(invalid["status"], json!("True"), "{s}");
    assert!(field(&invalid, "/message").starts_with("step 1: experiment"));
    // Nothing moved: same stable version, no canary ReplicaSet, no canary pod, the router
    // and both Services on the stable pods.
    assert_eq!(field(&s, "/stableRS"), stable);
    assert_eq!(owned_replica_sets(&client).await, vec![(stable.clone(), 4)]);
    let pods: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &res("", "v1", "Pod", "pods"));
    for p in pods
        .list(&kube::api::ListParams::default().labels("app=web"))
        .await
        .expect("pods")
        .items
    {
        let p = serde_json::to_value(p).expect("json");
        assert_eq!(
            field(&p, "/metadata/labels/rollouts-pod-template-hash"),
            stable,
            "a pod of another version: {p}"
        );
    }
    let vs = get(&client, &vs_resource(), "default", "web").await;
    assert_eq!(vs_weights(&vs), (100, 0));
    for svc in ["web-stable", "web-canary"] {
        let svc = get(&client, &svc_resource(), "default", svc).await;
        assert_eq!(
            svc["spec"]["selector"]["rollouts-pod-template-hash"],
            json!(stable)
        );
    }

    // Without the experiment step the update proceeds as usual.
    patch_spec(
        &client,
        "default",
        "web",
        json!({"spec": {"strategy": {"canary": {"steps": [{"setWeight": 20}, {"pause": {}}]}}}}),
    )
    .await;
    wait_rollout(&client, "paused at 20% once the step is gone", |s| {
        s["phase"] == json!("Paused") && s["currentStepIndex"] == json!(1)
    })
    .await;
    let vs = get(&client, &vs_resource(), "default", "web").await;
    assert_eq!(vs_weights(&vs), (80, 20));
}

pub async fn start_prometheus(
    cluster: &Cluster,
    dir: &std::path::Path,
) -> mooring_controller::prometheus::LocalPrometheus {
    mooring_controller::prometheus::LocalPrometheus::start(
        mooring_controller::prometheus::LocalPrometheusOptions {
            binary: None,
            data_dir: dir.to_path_buf(),
            listen: None,
            scrape_interval: std::time::Duration::from_secs(1),
            clusters: vec![mooring_controller::prometheus::ScrapeCluster {
                url: cluster.url(),
                token_file: cluster.token_path(),
                ca_file: Some(cluster.ca_path()),
            }],
        },
    )
    .await
    .expect("prometheus (install the Debian package `prometheus`)")
}

/// A one-metric template on a constant Prometheus query.
fn constant_template(name: &str, prometheus: &str, value: f64) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"metrics": [{
            "name": "smoke", "interval": "1s", "count": 2, "failureLimit": 0,
            "successCondition": "result[0] >= 0.99",
            "provider": {"prometheus": {"address": prometheus, "query": format!("vector({value})")}},
        }]},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_failing_pre_promotion_analysis_never_switches_the_active_service() {
    let (cluster, env) = env_with_cluster().await;
    let client = env.client.clone();
    // The templates name a Prometheus on 127.0.0.1 (not the controller's): the admin
    // allows it.
    allow_outbound(&client, &env.controller.ctx.outbound, "127.0.0.1").await;
    let dir = tempfile::tempdir().expect("tmp");
    let prom = start_prometheus(&cluster, dir.path()).await;
    create(
        &client,
        &analysis_template_resource(),
        constant_template("passes", &prom.url(), 1.0),
    )
    .await;
    create(
        &client,
        &analysis_template_resource(),
        constant_template("fails", &prom.url(), 0.5),
    )
    .await;
    for s in ["web-active", "web-preview"] {
        create(&client, &svc_resource(), service(s)).await;
    }
    let strategy = |template: &str| {
        json!({"blueGreen": {
            "activeService": "web-active", "previewService": "web-preview",
            "scaleDownDelaySeconds": 1, "abortScaleDownDelaySeconds": 1,
            "prePromotionAnalysis": {"templates": [{"templateName": template}]},
        }})
    };
    create(
        &client,
        &rollout_resource(),
        rollout(strategy("fails"), "web:1"),
    )
    .await;
    let s = wait_rollout(&client, "first deploy healthy", |s| {
        s["phase"] == json!("Healthy")
    })
    .await;
    let blue = field(&s, "/stableRS").to_string();
    let active = |c: kube::Client| async move {
        get(&c, &svc_resource(), "default", "web-active").await["spec"]["selector"]
            ["rollouts-pod-template-hash"]
            .clone()
    };
    assert_eq!(active(client.clone()).await, json!(blue));

    // Green fails its pre-promotion analysis: the active Service never leaves blue.
    patch_spec(&client, "default", "web", json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}})).await;
    let seen_active = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let s = eventually(60, "green aborted", || async {
        let a = active(client.clone()).await.to_string();
        seen_active.lock().expect("lock").insert(a);
        let s = rollout_status(&client).await;
        (s["phase"] == json!("Degraded")).then_some(s)
    })
    .await;
    let green = field(&s, "/currentPodHash").to_string();
    assert_ne!(green, blue);
    let seen_active = seen_active.into_inner().expect("lock");
    assert_eq!(
        seen_active,
        [json!(blue).to_string()].into_iter().collect(),
        "active never switched"
    );
    assert!(field(&s, "/message").contains("smoke"), "{s}");
    let preview = get(&client, &svc_resource(), "default", "web-preview").await;
    assert_eq!(
        preview["spec"]["selector"]["rollouts-pod-template-hash"],
        json!(blue)
    );
    let run = get(
        &client,
        &analysis_run_resource(),
        "default",
        field(&s, "/blueGreen/prePromotionAnalysisRunStatus/name"),
    )
    .await;
    assert_eq!(field(&run, "/status/phase"), "Failed");

    // With a passing analysis, the next version is switched to.
    patch_spec(
        &client,
        "default",
        "web",
        json!({"spec": {"strategy": strategy("passes"),
        "template": {"spec": {"containers": [{"name": "web", "image": "web:3"}]}}}}),
    )
    .await;
    let s = wait_rollout(&client, "promoted", |s| {
        s["phase"] == json!("Healthy") && s["stableRS"] != json!(blue)
    })
    .await;
    assert_eq!(active(client.clone()).await, json!(field(&s, "/stableRS")));
}
/// The controller with a Prometheus address (for analyses without one).
async fn controller_with_prometheus(
    cluster: &Cluster,
    prometheus: &str,
) -> (
    mooring_controller::Controller,
    kube::Client,
    tempfile::TempDir,
) {
    let client = mooring_k8s::client_from_kubeconfig(cluster.kubeconfig_path())
        .await
        .expect("client");
    let cache = tempfile::tempdir().expect("tmp");
    let controller = mooring_controller::Controller::start(
        client.clone(),
        mooring_controller::ControllerOptions {
            cache_dir: cache.path().to_path_buf(),
            operation_poll: std::time::Duration::from_millis(100),
            poll: std::time::Duration::from_secs(1),
            prometheus_address: Some(prometheus.to_string()),
            ..Default::default()
        },
    )
    .await
    .expect("controller");
    (controller, client, cache)
}

pub async fn start_cluster() -> Cluster {
    Cluster::start(mooring_apiserver::ClusterOptions {
        sim: mooring_apiserver::sim::SimOptions {
            speed: 20.0,
            ..Default::default()
        },
        crds: mooring_k8s::crds::all(),
        ..Default::default()
    })
    .await
    .expect("cluster")
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).expect("copy");
        }
    }
}

/// The test overlay: the seed's app with 10 replicas, 1 s pauses, and analyses that
/// measure twice, 2 s apart, over 10 s windows, after a 4 s warm-up.
const TEST_OVERLAY: &str = r#"apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [../../base]
patches:
- target: {kind: Rollout, name: ml-model-serving}
  patch: |-
    - {op: replace, path: /spec/replicas, value: 10}
    - {op: replace, path: /spec/strategy/canary/steps/1/pause/duration, value: 1s}
    - {op: replace, path: /spec/strategy/canary/steps/4/pause/duration, value: 1s}
    - {op: replace, path: /spec/strategy/canary/steps/7/pause/duration, value: 1s}
- target: {kind: AnalysisTemplate, name: model-performance-analysis}
  patch: |-
    - {op: replace, path: /spec/args/3/value, value: 10s}
    - {op: replace, path: /spec/metrics/0/interval, value: 2s}
    - {op: replace, path: /spec/metrics/0/count, value: 2}
    - {op: add, path: /spec/metrics/0/initialDelay, value: 4s}
    - {op: replace, path: /spec/metrics/1/interval, value: 2s}
    - {op: replace, path: /spec/metrics/1/count, value: 2}
    - {op: add, path: /spec/metrics/1/initialDelay, value: 4s}
    - {op: replace, path: /spec/metrics/2/interval, value: 2s}
    - {op: replace, path: /spec/metrics/2/count, value: 2}
    - {op: add, path: /spec/metrics/2/initialDelay, value: 4s}
"#;

fn set_in_base(repo: &crate::support::Repo, from: &str, to: &str) {
    let p = repo.path().join("model-serving/base/rollout.yaml");
    let s = std::fs::read_to_string(&p).expect("rollout.yaml");
    assert!(s.contains(from), "rollout.yaml has {from}");
    std::fs::write(&p, s.replacen(from, to, 1)).expect("write");
}

/// Wait until the seed Rollout's status satisfies `f`; on timeout, fail with what the
/// Rollout, its AnalysisRuns and the Application said last.
async fn wait_seed(
    client: &kube::Client,
    secs: u64,
    what: &str,
    f: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        let s =
            get(client, &rollout_resource(), "serving", "ml-model-serving").await["status"].clone();
        if f(&s) {
            return s;
        }
        if std::time::Instant::now() > deadline {
            let runs: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), "serving", &analysis_run_resource());
            let runs: Vec<Value> = runs
                .list(&Default::default())
                .await
                .map(|l| {
                    l.items
                        .iter()
                        .map(|r| json!({"name": r.metadata.name, "status": r.data["status"]}))
                        .collect()
                })
                .unwrap_or_default();
            let app = get(
                client,
                &mooring_k8s::resources::application_resource(),
                "argocd",
                "model-serving",
            )
            .await;
            panic!("timed out after {secs}s waiting for: {what}\nrollout status: {s}\nruns: {runs:?}\napp status: {}", app["status"]);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_canary_promotes_a_good_model_and_aborts_a_bad_one() {
    let cluster = start_cluster().await;
    let prom_dir = tempfile::tempdir().expect("tmp");
    let prom = start_prometheus(&cluster, prom_dir.path()).await;
    let (_controller, client, _cache) = controller_with_prometheus(&cluster, &prom.url()).await;
    let repo = crate::support::Repo::new();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/ml-platform/applications/model-serving");
    copy_dir(
        &example.join("base"),
        &repo.path().join("model-serving/base"),
    );
    repo.write(
        "model-serving/overlays/test/kustomization.yaml",
        TEST_OVERLAY,
    );
    repo.commit("seed model serving");
    let apps: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "argocd",
        &mooring_k8s::resources::application_resource(),
    );
    let app: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "model-serving", "namespace": "argocd"},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo.url(), "targetRevision": "main", "path": "model-serving/overlays/test"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "serving"},
            "syncPolicy": {"automated": {"prune": true, "selfHeal": true}, "syncOptions": ["CreateNamespace=true"]},
        }
    }))
    .expect("app");
    apps.create(&PostParams::default(), &app)
        .await
        .expect("create app");
    let s = wait_seed(&client, 90, "first deploy Healthy", |s| {
        s["phase"] == json!("Healthy")
    })
    .await;
    let v1 = field(&s, "/stableRS").to_string();

    // A good model version goes 10 → 25 → 50 → 100 through three passing analyses.
    set_in_base(&repo, "fraud-detector:1.4.2", "fraud-detector:1.5.0");
    repo.commit("fraud-detector 1.5.0");
    // Sample the canary ReplicaSet's size while the update runs.
    let canary_sizes =
        std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let sampler = {
        let (client, sizes, v1) = (client.clone(), canary_sizes.clone(), v1.clone());
        tokio::spawn(async move {
            let rs: Api<DynamicObject> = Api::namespaced_with(
                client.clone(),
                "serving",
                &res("apps", "v1", "ReplicaSet", "replicasets"),
            );
            loop {
                let s = get(&client, &rollout_resource(), "serving", "ml-model-serving").await
                    ["status"]
                    .clone();
                if let Some(h) = s["currentPodHash"].as_str().filter(|h| *h != v1) {
                    if let Ok(Some(r)) = rs.get_opt(&format!("ml-model-serving-{h}")).await {
                        if let Some(n) = r.data.pointer("/spec/replicas").and_then(Value::as_i64) {
                            sizes.lock().expect("lock").insert(n);
                        }
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
    };
    let s = wait_seed(&client, 150, "good version promoted", |s| {
        s["phase"] == json!("Healthy") && s["stableRS"] != json!(v1)
    })
    .await;
    sampler.abort();
    let v2 = field(&s, "/stableRS").to_string();
    let canary_sizes = canary_sizes.lock().expect("lock").clone();
    assert!(
        canary_sizes.contains(&1) && canary_sizes.contains(&3) && canary_sizes.contains(&5),
        "canary sizes seen: {canary_sizes:?}"
    );
    let runs: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "serving", &analysis_run_resource());
    let list = runs.list(&Default::default()).await.expect("runs");
    let passed: Vec<String> = list
        .items
        .iter()
        .filter(|r| r.metadata.name.as_deref().is_some_and(|n| n.contains(&v2)))
        .map(|r| {
            r.data
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(passed, vec!["Successful"; 3], "three step analyses passed");

    // A bad one (20 % errors) is aborted at the first analysis; traffic returns to stable.
    set_in_base(&repo, "fraud-detector:1.5.0", "fraud-detector:1.6.0");
    set_in_base(
        &repo,
        "sim.mooring.dev/error-rate: \"0.001\"",
        "sim.mooring.dev/error-rate: \"0.2\"",
    );
    repo.commit("fraud-detector 1.6.0 (bad)");
    let s = wait_seed(&client, 120, "bad version aborted", |s| {
        s["phase"] == json!("Degraded")
    })
    .await;
    let msg = field(&s, "/message");
    assert!(msg.starts_with("RolloutAborted"), "{msg}");
    assert!(
        msg.contains("success-rate"),
        "the failing metric is named: {msg}"
    );
    assert_eq!(
        s["currentStepIndex"],
        json!(2),
        "aborted at the first analysis"
    );
    assert_eq!(field(&s, "/stableRS"), v2);
    let bad = field(&s, "/currentPodHash").to_string();
    eventually(30, "canary scaled down, stable at full size", || async {
        let rs: Api<DynamicObject> = Api::namespaced_with(
            client.clone(),
            "serving",
            &res("apps", "v1", "ReplicaSet", "replicasets"),
        );
        let n = |name: String| {
            let rs = rs.clone();
            async move {
                rs.get(&name)
                    .await
                    .ok()
                    .and_then(|r| {
                        r.data
                            .pointer("/status/availableReplicas")
                            .and_then(Value::as_i64)
                    })
                    .unwrap_or(0)
            }
        };
        let canary = n(format!("ml-model-serving-{bad}")).await;
        let stable = n(format!("ml-model-serving-{v2}")).await;
        (canary == 0 && stable == 10).then_some(())
    })
    .await;
    let svc = get(&client, &svc_resource(), "serving", "ml-model-serving").await;
    assert_eq!(
        svc["spec"]["selector"]["rollouts-pod-template-hash"],
        json!(v2)
    );
    // The app's health shows it.
    eventually(30, "app Degraded", || async {
        let a = serde_json::to_value(apps.get("model-serving").await.ok()?).ok()?;
        (field(&a, "/status/health/status") == "Degraded").then_some(())
    })
    .await;

    // An inaccurate one (0.80 against the stable 0.95) is aborted on model accuracy.
    set_in_base(
        &repo,
        "sim.mooring.dev/error-rate: \"0.2\"",
        "sim.mooring.dev/error-rate: \"0.001\"",
    );
    set_in_base(
        &repo,
        "sim.mooring.dev/accuracy: \"0.95\"",
        "sim.mooring.dev/accuracy: \"0.80\"",
    );
    repo.commit("fraud-detector 1.6.0 retrained (inaccurate)");
    let s = wait_seed(&client, 120, "inaccurate version aborted", |s| {
        s["phase"] == json!("Degraded") && s["currentPodHash"] != json!(bad)
    })
    .await;
    let msg = field(&s, "/message");
    assert!(
        msg.contains("model-accuracy"),
        "the failing metric is named: {msg}"
    );
    assert_eq!(field(&s, "/stableRS"), v2);
}
