//! RollbackPolicy end to end: a Git repository, the embedded cluster with simulated pod
//! metrics, a real Prometheus scraping them, the controller, and a test HTTP server that
//! receives incident webhooks.

use crate::support::{
    allow_outbound, env_with_cluster, eventually, field, Env, HttpReceiver, Repo,
};
use mooring_apiserver::Cluster;
use mooring_controller::prometheus::{LocalPrometheus, LocalPrometheusOptions};
use mooring_k8s::kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use mooring_k8s::kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};
use std::time::Duration;

fn deployment(error_rate: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: model-server
  labels: {{app: model-server}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: model-server}}}}
  template:
    metadata:
      labels: {{app: model-server}}
      annotations:
        sim.mooring.dev/request-rate: \"50\"
        sim.mooring.dev/error-rate: \"{error_rate}\"
    spec:
      containers:
      - name: server
        image: registry.local/model:{error_rate}
"
    )
}

const ERROR_RATE: &str = "sum(rate(http_requests_total{namespace=\"ml-serving\",code=~\"5..\"}[10s])) / sum(rate(http_requests_total{namespace=\"ml-serving\"}[10s]))";

fn application(repo: &str) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "model", "namespace": "argocd", "labels": {"tier": "serving"}},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo, "targetRevision": "main", "path": "apps/model"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "ml-serving"},
            "syncPolicy": {"automated": {"prune": true, "selfHeal": true}, "syncOptions": ["CreateNamespace=true"]},
        }
    })
}

fn apps(client: &mooring_k8s::kube::Client) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        "argocd",
        &mooring_k8s::resources::application_resource(),
    )
}

fn policies(client: &mooring_k8s::kube::Client) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        "argocd",
        &mooring_k8s::resources::rollback_policy_resource(),
    )
}

async fn get(api: &Api<DynamicObject>, name: &str) -> Value {
    serde_json::to_value(api.get(name).await.expect("get")).expect("json")
}

async fn create(api: &Api<DynamicObject>, v: Value) {
    let o: DynamicObject = serde_json::from_value(v).expect("object");
    api.create(&PostParams::default(), &o)
        .await
        .expect("create");
}

async fn start_prometheus(cluster: &Cluster, dir: &std::path::Path) -> LocalPrometheus {
    LocalPrometheus::start(LocalPrometheusOptions {
        binary: None,
        data_dir: dir.to_path_buf(),
        listen: None,
        scrape_interval: Duration::from_secs(1),
        clusters: vec![mooring_controller::prometheus::ScrapeCluster {
            url: cluster.url(),
            token_file: cluster.token_path(),
            ca_file: Some(cluster.ca_path()),
        }],
    })
    .await
    .expect("prometheus starts (Debian: apt-get install prometheus)")
}

async fn wait_synced_healthy(e: &Env, revision: &str) -> Value {
    let apps = apps(&e.client);
    eventually(90, &format!("model Synced+Healthy at {revision}"), || {
        let apps = apps.clone();
        async move {
            let a = get(&apps, "model").await;
            (field(&a, "/status/sync/status") == "Synced"
                && field(&a, "/status/health/status") == "Healthy"
                && field(&a, "/status/sync/revision") == revision)
                .then_some(a)
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sustained_breach_rolls_back_to_the_last_healthy_revision_once() {
    let repo = Repo::new();
    repo.write("apps/model/deployment.yaml", &deployment("0"));
    let good = repo.commit("model v1: healthy");
    let (cluster, e) = env_with_cluster().await;
    // Prometheus and the incident hook listen on 127.0.0.1: the admin allows it.
    allow_outbound(&e.client, &e.controller.ctx.outbound, "127.0.0.1").await;
    let dir = tempfile::tempdir().expect("tmp");
    let prom = start_prometheus(&cluster, dir.path()).await;
    let hook = HttpReceiver::start_failing_first(1).expect("receiver");
    let apps = apps(&e.client);
    create(&apps, application(&repo.url())).await;
    wait_synced_healthy(&e, &good).await;

    let secrets: Api<DynamicObject> = Api::namespaced_with(
        e.client.clone(),
        "argocd",
        &ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Secret"), "secrets"),
    );
    create(
        &secrets,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "incident-token"},
               "stringData": {"authorization": "Bearer s3cr3t-t0ken"}}),
    )
    .await;
    let policies = policies(&e.client);
    create(
        &policies,
        json!({
            "apiVersion": "mooring.dev/v1alpha1", "kind": "RollbackPolicy",
            "metadata": {"name": "serving-slo", "namespace": "argocd"},
            "spec": {
                "applications": {"selector": {"matchLabels": {"tier": "serving"}}},
                "prometheus": {"address": prom.url()},
                "interval": "1s",
                "incident": {"webhook": {"url": hook.url("/incidents"), "headers": [
                    {"name": "X-Team", "value": "ml-platform"},
                    {"name": "Authorization", "valueFrom": {"secretKeyRef": {"name": "incident-token", "key": "authorization"}}},
                ]}},
                "rules": [{
                    "name": "error_rate", "query": ERROR_RATE,
                    "threshold": {"operator": ">", "value": 0.05},
                    "for": "3s", "action": "create_incident_and_rollback",
                }],
            }
        }),
    )
    .await;
    // The healthy revision is remembered while the rule is Ok.
    eventually(60, "v1 recorded as healthy and the rule Ok", || {
        let policies = policies.clone();
        let good = good.clone();
        async move {
            let p = get(&policies, "serving-slo").await;
            let healthy = p
                .pointer("/status/applications/0/healthyRevisions")
                .and_then(Value::as_array)
                .is_some_and(|h| h.iter().any(|r| r == good.as_str()));
            (healthy && field(&p, "/status/rules/0/state") == "Ok").then_some(())
        }
    })
    .await;

    // A bad version: 20 % errors.
    repo.write("apps/model/deployment.yaml", &deployment("0.2"));
    let bad = repo.commit("model v2: 20% errors");
    apps.patch(
        "model",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}}),
        ),
    )
    .await
    .expect("refresh");
    // The policy fires once the breach has held for 3s, and rolls back to v1.
    let p = eventually(120, "the rollback to v1", || {
        let policies = policies.clone();
        async move {
            let p = get(&policies, "serving-slo").await;
            (field(&p, "/status/applications/0/lastRollback/mode") == "syncRevision").then_some(p)
        }
    })
    .await;
    assert_eq!(
        field(&p, "/status/applications/0/lastRollback/toRevision"),
        good,
        "{p}"
    );
    assert_eq!(
        field(&p, "/status/applications/0/lastRollback/fromRevision"),
        bad,
        "{p}"
    );
    let a = eventually(90, "v1 deployed again", || {
        let apps = apps.clone();
        let good = good.clone();
        async move {
            let a = get(&apps, "model").await;
            let last = a
                .pointer("/status/history")
                .and_then(Value::as_array)
                .and_then(|h| h.last())
                .map(|h| field(h, "/revision").to_string());
            (last.as_deref() == Some(good.as_str())
                && a.pointer("/operation").is_none_or(Value::is_null))
            .then_some(a)
        }
    })
    .await;
    // Automated sync is suspended, and the app says why and how to resume.
    assert!(
        field(&a, "/metadata/annotations/mooring.dev~1auto-sync-suspended").contains("serving-slo"),
        "{a}"
    );
    let cond = a
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c["type"] == "AutoSyncSuspended"))
        .cloned()
        .unwrap_or_else(|| panic!("AutoSyncSuspended condition: {a}"));
    let msg = field(&cond, "/message");
    for want in [
        "argocd/serving-slo",
        "error_rate",
        "0.05",
        &good,
        "auto-sync-suspended-",
    ] {
        assert!(msg.contains(want), "{msg} should mention {want}");
    }
    let deploy: Api<DynamicObject> = Api::namespaced_with(
        e.client.clone(),
        "ml-serving",
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apps", "v1", "Deployment"),
            "deployments",
        ),
    );
    let d = get(&deploy, "model-server").await;
    assert_eq!(
        field(
            &d,
            "/spec/template/metadata/annotations/sim.mooring.dev~1error-rate"
        ),
        "0"
    );

    // A new commit is not synced while suspended.
    repo.write("apps/model/deployment.yaml", &deployment("0.3"));
    let newer = repo.commit("model v3");
    apps.patch(
        "model",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}}),
        ),
    )
    .await
    .expect("refresh");
    let a = eventually(60, "v3 seen but not synced", || {
        let apps = apps.clone();
        let newer = newer.clone();
        async move {
            let a = get(&apps, "model").await;
            (field(&a, "/status/sync/revision") == newer
                && field(&a, "/status/sync/status") == "OutOfSync")
                .then_some(a)
        }
    })
    .await;
    assert!(a.pointer("/operation").is_none_or(Value::is_null), "{a}");
    // Several more evaluations: still one incident (the first POST got a 503 and was
    // retried), one Event, one rollback.
    let delivered = eventually(60, "the incident webhook", || {
        let d = hook.delivered_json();
        async move { (!d.is_empty()).then_some(d) }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let delivered_later = hook.delivered_json();
    assert_eq!(delivered_later.len(), 1, "{delivered_later:?}");
    let i = &delivered[0];
    assert_eq!(i["rule"], "error_rate");
    assert_eq!(i["application"]["name"], "model");
    assert_eq!(i["action"], "create_incident_and_rollback");
    assert_eq!(i["threshold"], 0.05);
    assert!(i["value"].as_f64().is_some_and(|v| v > 0.05), "{i}");
    // The incident is sent when the rule fires: with the target, or (when the bad
    // version's sync was still running then) saying the rollback sync is pending.
    match i["rollback"]["mode"].as_str() {
        Some("syncRevision") => {
            assert_eq!(i["rollback"]["toRevision"], good.as_str(), "{i}");
            assert_eq!(i["rollback"]["fromRevision"], bad.as_str(), "{i}");
        }
        other => assert_eq!(other, Some("pendingSync"), "{i}"),
    }
    {
        let seen = hook.requests();
        assert_eq!(seen[0].status, 503);
        let last = &seen[seen.len() - 1];
        assert_eq!(last.header("authorization"), Some("Bearer s3cr3t-t0ken"));
        assert_eq!(last.header("x-team"), Some("ml-platform"));
    }
    let p = get(&policies, "serving-slo").await;
    assert!(!p.to_string().contains("s3cr3t"), "{p}");
    let a = get(&apps, "model").await;
    let history = a["status"]["history"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        history
            .iter()
            .filter(|h| h["revision"] == newer.as_str())
            .count(),
        0,
        "{a}"
    );
    let events: Api<DynamicObject> = Api::namespaced_with(
        e.client.clone(),
        "argocd",
        &ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Event"), "events"),
    );
    let evs = events.list(&ListParams::default()).await.expect("events");
    let fired: Vec<_> = evs
        .items
        .iter()
        .filter(|e| e.data["reason"] == "RollbackTriggered")
        .collect();
    assert_eq!(fired.len(), 1, "{fired:?}");

    // Resuming: removing the annotation clears the condition and auto-sync takes v3.
    apps.patch(
        "model",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"metadata": {"annotations": {"mooring.dev/auto-sync-suspended": null}}}),
        ),
    )
    .await
    .expect("resume");
    let a = wait_synced_healthy(&e, &newer).await;
    let _ = a;
    eventually(30, "the AutoSyncSuspended condition removed", || {
        let apps = apps.clone();
        async move {
            let a = get(&apps, "model").await;
            let has = a
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|c| c.iter().any(|c| c["type"] == "AutoSyncSuspended"));
            (!has).then_some(())
        }
    })
    .await;
    drop(prom);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_breaches_no_data_and_bad_input_never_roll_back() {
    let repo = Repo::new();
    repo.write("apps/model/deployment.yaml", &deployment("0"));
    let good = repo.commit("v1");
    repo.write("apps/model/deployment.yaml", &deployment("0.2"));
    let bad = repo.commit("v2: bad from the start");
    let _ = good;
    let (cluster, e) = env_with_cluster().await;
    // Prometheus and the incident hook listen on 127.0.0.1: the admin allows it.
    allow_outbound(&e.client, &e.controller.ctx.outbound, "127.0.0.1").await;
    let dir = tempfile::tempdir().expect("tmp");
    let prom = start_prometheus(&cluster, dir.path()).await;
    let hook = HttpReceiver::start(200).expect("receiver");
    let apps = apps(&e.client);
    create(&apps, application(&repo.url())).await;
    wait_synced_healthy(&e, &bad).await;
    let policies = policies(&e.client);
    let policy = |name: &str, address: &str, rules: Value| {
        json!({
            "apiVersion": "mooring.dev/v1alpha1", "kind": "RollbackPolicy",
            "metadata": {"name": name, "namespace": "argocd"},
            "spec": {
                "applications": {"names": ["model"]},
                "prometheus": {"address": address},
                "interval": "1s",
                "incident": {"webhook": {"url": hook.url("/incidents")}},
                "rules": rules,
            }
        })
    };
    let rule = |name: &str, query: &str, op: &str, for_: &str| {
        json!({"name": name, "query": query, "threshold": {"operator": op, "value": 0.05},
               "for": for_, "action": "create_incident_and_rollback"})
    };
    create(
        &policies,
        policy(
            "real",
            &prom.url(),
            json!([
                rule("short", ERROR_RATE, ">", "1h"),
                rule("nodata", "sum(rate(no_such_metric_total[10s]))", "<", "0s"),
                rule("badquery", "sum(rate(http_requests_total[10s]", ">", "0s"),
            ]),
        ),
    )
    .await;
    create(
        &policies,
        policy(
            "unreachable",
            "http://127.0.0.1:1",
            json!([rule("any", "vector(1)", ">", "0s")]),
        ),
    )
    .await;
    // Fires at once, but no revision was ever seen healthy: nothing to roll back to.
    let mut nowhere = policy(
        "nowhere",
        &prom.url(),
        json!([rule("error_rate", ERROR_RATE, ">", "0s")]),
    );
    nowhere["spec"]["rules"][0]["action"] = json!("automatic_rollback");
    create(&policies, nowhere).await;
    create(
        &policies,
        policy(
            "invalid",
            &prom.url(),
            json!([rule("relation", "vector(1)", "=>", "0s")]),
        ),
    )
    .await;
    // An unknown action: a cluster validating the CRD's enum rejects it; one that does
    // not (the embedded one) stores it, and the controller reports it without acting.
    let mut hostile = policy(
        "hostile",
        &prom.url(),
        json!([rule("x", "vector(1)", ">", "0s")]),
    );
    hostile["spec"]["rules"][0]["action"] = json!("delete_everything");
    let o: DynamicObject = serde_json::from_value(hostile).expect("object");
    if policies.create(&PostParams::default(), &o).await.is_ok() {
        let p = eventually(60, "the unknown action reported", || {
            let policies = policies.clone();
            async move {
                let p = get(&policies, "hostile").await;
                (field(&p, "/status/conditions/0/status") == "False").then_some(p)
            }
        })
        .await;
        assert!(
            field(&p, "/status/conditions/0/message").contains("delete_everything"),
            "{p}"
        );
    }

    let p = eventually(90, "the breach pending, no data, a query error", || {
        let policies = policies.clone();
        async move {
            let p = get(&policies, "real").await;
            let state = |i: usize| field(&p, &format!("/status/rules/{i}/state")).to_string();
            (state(0) == "Pending" && state(1) == "NoData" && state(2) == "Error").then_some(p)
        }
    })
    .await;
    assert!(
        field(&p, "/status/rules/2/message").contains("parse error")
            || field(&p, "/status/rules/2/message").contains("bad_data"),
        "{p}"
    );
    assert_eq!(field(&p, "/status/conditions/0/status"), "False", "{p}");
    let p = eventually(60, "Prometheus unreachable reported", || {
        let policies = policies.clone();
        async move {
            let p = get(&policies, "unreachable").await;
            (field(&p, "/status/rules/0/state") == "Error").then_some(p)
        }
    })
    .await;
    assert!(
        field(&p, "/status/rules/0/message").contains("127.0.0.1:1"),
        "{p}"
    );
    let p = eventually(60, "the invalid relation rejected", || {
        let policies = policies.clone();
        async move {
            let p = get(&policies, "invalid").await;
            (field(&p, "/status/conditions/0/status") == "False").then_some(p)
        }
    })
    .await;
    assert!(
        field(&p, "/status/conditions/0/message").contains("operator \"=>\""),
        "{p}"
    );
    assert!(p.pointer("/status/rules").is_none(), "{p}");

    // The example's seed rules are valid PromQL for a real Prometheus.
    let client = mooring_controller::prometheus::PromClient::new(&prom.url()).expect("client");
    let seed =
        include_str!("../../../../examples/ml-platform/rollback/production/model-serving.yaml");
    let seed = mooring_core::yaml::parse_one(seed).expect("yaml");
    for r in seed["spec"]["rules"].as_array().expect("rules") {
        for q in [r.pointer("/query"), r.pointer("/baseline/query")]
            .into_iter()
            .flatten()
        {
            let q = q.as_str().expect("query");
            let got = client.query(q, Duration::from_secs(10)).await;
            assert!(got.is_ok(), "{q}: {got:?}");
        }
    }

    let p = eventually(90, "no rollback target reported", || {
        let policies = policies.clone();
        async move {
            let p = get(&policies, "nowhere").await;
            (field(&p, "/status/applications/0/lastRollback/mode") == "none").then_some(p)
        }
    })
    .await;
    let failed = p
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|c| c.iter().find(|c| c["type"] == "RollbackFailed"))
        .cloned()
        .unwrap_or_else(|| panic!("RollbackFailed condition: {p}"));
    assert!(
        field(&failed, "/message").contains("nothing to roll back to"),
        "{failed}"
    );

    // More evaluations: still nothing fired.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let p = get(&policies, "real").await;
    assert_eq!(field(&p, "/status/rules/0/state"), "Pending", "{p}");
    assert!(p.pointer("/status/rules/0/firedAt").is_none(), "{p}");
    let a = get(&apps, "model").await;
    assert!(
        a.pointer("/metadata/annotations/mooring.dev~1auto-sync-suspended")
            .is_none(),
        "{a}"
    );
    assert_eq!(
        a["status"]["history"].as_array().map(Vec::len),
        Some(1),
        "{a}"
    );
    assert!(hook.requests().is_empty());
    drop(prom);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_fires_once_per_breach_across_a_controller_restart() {
    let repo = Repo::new();
    repo.write("apps/model/deployment.yaml", &deployment("0.2"));
    let bad = repo.commit("bad from the start");
    let (cluster, e) = env_with_cluster().await;
    // Prometheus and the incident hook listen on 127.0.0.1: the admin allows it.
    allow_outbound(&e.client, &e.controller.ctx.outbound, "127.0.0.1").await;
    let dir = tempfile::tempdir().expect("tmp");
    let prom = start_prometheus(&cluster, dir.path()).await;
    let hook = HttpReceiver::start(200).expect("receiver");
    let apps = apps(&e.client);
    create(&apps, application(&repo.url())).await;
    wait_synced_healthy(&e, &bad).await;
    let policies = policies(&e.client);
    create(
        &policies,
        json!({
            "apiVersion": "mooring.dev/v1alpha1", "kind": "RollbackPolicy",
            "metadata": {"name": "notify", "namespace": "argocd"},
            "spec": {
                "applications": {"names": ["model"]},
                "prometheus": {"address": prom.url()},
                "interval": "1s",
                "incident": {"webhook": {"url": hook.url("/incidents")}},
                "rules": [{"name": "error_rate", "query": ERROR_RATE,
                           "threshold": {"operator": ">", "value": 0.05},
                           "for": "1s", "action": "notify"}],
            }
        }),
    )
    .await;
    eventually(90, "the notification", || {
        let d = hook.delivered_json();
        async move { (!d.is_empty()).then_some(()) }
    })
    .await;
    let fired = field(&get(&policies, "notify").await, "/status/rules/0/firedAt").to_string();
    assert!(!fired.is_empty());
    // A new controller reads the breach back from the status: it does not fire again.
    drop(e);
    let e = crate::support::controller_for(&cluster).await;
    let api = self::policies(&e.client);
    let before = field(&get(&api, "notify").await, "/status/rules/0/lastEvaluated").to_string();
    eventually(60, "evaluations by the new controller", || {
        let api = api.clone();
        let before = before.clone();
        async move {
            let p = get(&api, "notify").await;
            let last = field(&p, "/status/rules/0/lastEvaluated").to_string();
            (last != before && field(&p, "/status/rules/0/state") == "Firing").then_some(())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let p = get(&api, "notify").await;
    assert_eq!(field(&p, "/status/rules/0/firedAt"), fired, "{p}");
    assert_eq!(hook.delivered_json().len(), 1);
    // Notify does not roll back or suspend.
    let a = get(&apps, "model").await;
    assert!(
        a.pointer("/metadata/annotations/mooring.dev~1auto-sync-suspended")
            .is_none(),
        "{a}"
    );
    drop(prom);
}

fn rollout(error_rate: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: model-rollout}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: model-canary}}}}
  template:
    metadata:
      labels: {{app: model-canary}}
      annotations:
        sim.mooring.dev/request-rate: \"50\"
        sim.mooring.dev/error-rate: \"{error_rate}\"
    spec: {{containers: [{{name: server, image: registry.local/model:{error_rate}}}]}}
  strategy: {{canary: {{steps: [{{setWeight: 50}}, {{pause: {{}}}}]}}}}
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breach_during_a_rollout_aborts_it() {
    let repo = Repo::new();
    // A Deployment serving errors: metrics exist whether or not a rollout controller
    // runs the Rollout's pods.
    repo.write("apps/model/deployment.yaml", &deployment("0.2"));
    repo.write("apps/model/rollout.yaml", &rollout("0"));
    repo.commit("v1");
    let (cluster, e) = env_with_cluster().await;
    // Prometheus and the incident hook listen on 127.0.0.1: the admin allows it.
    allow_outbound(&e.client, &e.controller.ctx.outbound, "127.0.0.1").await;
    // Argo Rollouts' CRD (kept open: only the fields this test touches matter).
    let crds: Api<DynamicObject> = Api::all_with(
        e.client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition"),
            "customresourcedefinitions",
        ),
    );
    let crd: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "rollouts.argoproj.io"},
        "spec": {"group": "argoproj.io", "scope": "Namespaced",
                 "names": {"kind": "Rollout", "plural": "rollouts", "singular": "rollout", "listKind": "RolloutList"},
                 "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                               "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}
    }))
    .expect("crd");
    // Already served when the build includes Argo Rollouts' CRDs: that one is fine too.
    let _ = crds.create(&PostParams::default(), &crd).await;
    let dir = tempfile::tempdir().expect("tmp");
    let prom = start_prometheus(&cluster, dir.path()).await;
    let apps = apps(&e.client);
    create(&apps, application(&repo.url())).await;
    let rollouts: Api<DynamicObject> = Api::namespaced_with(
        e.client.clone(),
        "ml-serving",
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Rollout"),
            "rollouts",
        ),
    );
    eventually(90, "the Rollout applied", || {
        let rollouts = rollouts.clone();
        async move { rollouts.get_opt("model-rollout").await.ok().flatten() }
    })
    .await;
    // With a rollout controller in this build, the first version becomes stable and a
    // second one stops at the canary's pause; without one, the status is written as a
    // rollout controller would report a paused canary.
    let mut controller = false;
    for _ in 0..100 {
        let r = get(&rollouts, "model-rollout").await;
        if !field(&r, "/status/stableRS").is_empty() {
            controller = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if controller {
        repo.write("apps/model/rollout.yaml", &rollout("0.5"));
        repo.commit("v2: a bad canary");
        apps.patch(
            "model",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}}),
            ),
        )
        .await
        .expect("refresh");
    } else {
        rollouts
            .patch_status(
                "model-rollout",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"currentPodHash": "new", "stableRS": "old", "phase": "Paused"}})),
            )
            .await
            .expect("rollout status");
    }
    eventually(90, "the Rollout mid-update", || {
        let rollouts = rollouts.clone();
        async move {
            let r = get(&rollouts, "model-rollout").await;
            let (cur, stable) = (
                field(&r, "/status/currentPodHash"),
                field(&r, "/status/stableRS"),
            );
            (!cur.is_empty() && !stable.is_empty() && cur != stable).then_some(())
        }
    })
    .await;
    let policies = policies(&e.client);
    create(
        &policies,
        json!({
            "apiVersion": "mooring.dev/v1alpha1", "kind": "RollbackPolicy",
            "metadata": {"name": "canary-slo", "namespace": "argocd"},
            "spec": {
                "applications": {"names": ["model"]},
                "prometheus": {"address": prom.url()},
                "interval": "1s",
                "rules": [{"name": "error_rate", "query": ERROR_RATE,
                           "threshold": {"operator": ">", "value": 0.05},
                           "for": "1s", "action": "automatic_rollback"}],
            }
        }),
    )
    .await;
    let p = eventually(90, "the Rollout aborted", || {
        let policies = policies.clone();
        async move {
            let p = get(&policies, "canary-slo").await;
            (field(&p, "/status/applications/0/lastRollback/mode") == "abortRollout").then_some(p)
        }
    })
    .await;
    assert!(
        field(&p, "/status/applications/0/lastRollback/message").contains("model-rollout"),
        "{p}"
    );
    eventually(30, "status.abort set on the Rollout", || {
        let rollouts = rollouts.clone();
        async move {
            let r = get(&rollouts, "model-rollout").await;
            (r.pointer("/status/abort") == Some(&json!(true))).then_some(())
        }
    })
    .await;
    let a = get(&apps, "model").await;
    assert!(
        field(&a, "/metadata/annotations/mooring.dev~1auto-sync-suspended").contains("canary-slo"),
        "{a}"
    );
    // Aborting is the rollback: no sync to another revision was requested (the app's own
    // sync may still be waiting for the Rollout's health).
    assert!(
        !field(&a, "/operation/initiatedBy/username").starts_with("rollback-policy"),
        "{a}"
    );
    drop(prom);
}

/// How the bad commit leaves Git after the automated rollback.
#[derive(Clone, Copy, Debug)]
enum Revert {
    /// Someone runs `git revert` and pushes.
    ByHand,
    /// The policy's `gitRevert: {mode: direct}` pushes the revert commit itself.
    ByPolicy,
}

async fn refresh(apps: &Api<DynamicObject>) {
    apps.patch(
        "model",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}}),
        ),
    )
    .await
    .expect("refresh");
}

/// After an automated rollback, automated sync resumes by itself once Git renders the good
/// revision again, and a later good commit deploys.
async fn automated_sync_resumes_when_git_catches_up(revert: Revert) {
    let repo = Repo::new();
    repo.write("apps/model/deployment.yaml", &deployment("0"));
    let good = repo.commit("model v1: healthy");
    let (cluster, e) = env_with_cluster().await;
    allow_outbound(&e.client, &e.controller.ctx.outbound, "127.0.0.1").await;
    let dir = tempfile::tempdir().expect("tmp");
    let prom = start_prometheus(&cluster, dir.path()).await;
    let apps = apps(&e.client);
    create(&apps, application(&repo.url())).await;
    wait_synced_healthy(&e, &good).await;
    let policies = policies(&e.client);
    let git_revert = match revert {
        Revert::ByHand => Value::Null,
        Revert::ByPolicy => json!({"mode": "direct"}),
    };
    // The controller pushes to the repository's checked-out branch, as to a server's.
    repo.git(&["config", "receive.denyCurrentBranch", "updateInstead"]);
    create(
        &policies,
        json!({
            "apiVersion": "mooring.dev/v1alpha1", "kind": "RollbackPolicy",
            "metadata": {"name": "serving-slo", "namespace": "argocd"},
            "spec": {
                "applications": {"names": ["model"]},
                "prometheus": {"address": prom.url()},
                "interval": "1s",
                "gitRevert": git_revert,
                "rules": [{
                    "name": "error_rate", "query": ERROR_RATE,
                    "threshold": {"operator": ">", "value": 0.05},
                    "for": "2s", "action": "automatic_rollback",
                }],
            }
        }),
    )
    .await;
    eventually(60, "v1 recorded as healthy", || {
        let policies = policies.clone();
        let good = good.clone();
        async move {
            let p = get(&policies, "serving-slo").await;
            p.pointer("/status/applications/0/healthyRevisions")
                .and_then(Value::as_array)
                .is_some_and(|h| h.iter().any(|r| r == good.as_str()))
                .then_some(())
        }
    })
    .await;
    repo.write("apps/model/deployment.yaml", &deployment("0.2"));
    let bad = repo.commit("model v2: 20% errors");
    refresh(&apps).await;
    eventually(120, "rolled back to v1 and suspended", || {
        let apps = apps.clone();
        let good = good.clone();
        async move {
            let a = get(&apps, "model").await;
            (field(&a, "/status/operationState/syncResult/revision") == good
                && field(&a, "/status/operationState/phase") == "Succeeded"
                && !field(&a, "/metadata/annotations/mooring.dev~1auto-sync-suspended").is_empty())
            .then_some(())
        }
    })
    .await;
    match revert {
        Revert::ByHand => {
            // Another app's change in the same repository first (a monorepo): Git still
            // renders the bad version for this app, so it stays suspended…
            repo.write(
                "apps/feature-store/configmap.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: features}\ndata: {v: \"2\"}\n",
            );
            let other = repo.commit("feature store v2");
            refresh(&apps).await;
            eventually(60, "the other app's commit compared", || {
                let apps = apps.clone();
                let other = other.clone();
                async move {
                    let a = get(&apps, "model").await;
                    (field(&a, "/status/sync/revision") == other).then_some(())
                }
            })
            .await;
            tokio::time::sleep(Duration::from_secs(2)).await;
            let a = get(&apps, "model").await;
            assert!(
                !field(&a, "/metadata/annotations/mooring.dev~1auto-sync-suspended").is_empty(),
                "{a}"
            );
            // …until the bad commit is reverted (the other app's change stays: the head's
            // tree is not v1's, but it renders what v1 rendered for this app).
            repo.git(&["revert", "--no-edit", &bad]);
        }
        Revert::ByPolicy => {
            let p = eventually(60, "the revert commit pushed", || {
                let policies = policies.clone();
                async move {
                    let p = get(&policies, "serving-slo").await;
                    (field(&p, "/status/applications/0/gitRevert/phase") == "Pushed").then_some(p)
                }
            })
            .await;
            let commit = field(&p, "/status/applications/0/gitRevert/commit").to_string();
            assert_eq!(repo.git(&["rev-parse", "main"]), commit, "{p}");
            assert_eq!(field(&p, "/status/applications/0/gitRevert/branch"), "main");
            assert_eq!(
                repo.git(&["rev-parse", "main^"]),
                bad,
                "one commit on top of the bad one"
            );
            let message = repo.git(&["log", "-1", "--format=%B", "main"]);
            for want in [
                format!("Rollback model to {good}"),
                "Reason:".to_string(),
                "error_rate".to_string(),
                "Rollback initiated by: RollbackPolicy argocd/serving-slo".to_string(),
                "Timestamp:".to_string(),
            ] {
                assert!(message.contains(&want), "{message} should contain {want}");
            }
            // The tree is v1's again.
            assert_eq!(repo.git(&["diff", &good, "main", "--stat"]), "");
        }
    }
    let reverted = repo.git(&["rev-parse", "HEAD"]);
    assert_ne!(reverted, bad);
    refresh(&apps).await;
    // Git renders v1 again: suspension lifted by the policy, with an Event saying why.
    eventually(60, "automated sync resumed", || {
        let apps = apps.clone();
        async move {
            let a = get(&apps, "model").await;
            let suspended =
                !field(&a, "/metadata/annotations/mooring.dev~1auto-sync-suspended").is_empty();
            let cond = a
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|c| c.iter().any(|c| c["type"] == "AutoSyncSuspended"));
            (!suspended && !cond).then_some(())
        }
    })
    .await;
    let events: Api<DynamicObject> = Api::namespaced_with(
        e.client.clone(),
        "argocd",
        &ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Event"), "events"),
    );
    let resumed: Vec<String> = events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .iter()
        .filter(|e| e.data["reason"] == "AutoSyncResumed")
        .map(|e| e.data["message"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(resumed.len(), 1, "{resumed:?}");
    assert!(
        resumed[0].contains(&reverted) && resumed[0].contains(&good),
        "{resumed:?}"
    );
    let pushed = events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .iter()
        .filter(|e| e.data["reason"] == "GitRevertPushed")
        .count();
    assert_eq!(pushed, usize::from(matches!(revert, Revert::ByPolicy)));
    // The automated rollback's end was told once, as `mooring app rollback` tells it.
    let completed: Vec<String> = events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .iter()
        .filter(|e| e.data["reason"] == "RollbackCompleted")
        .map(|e| e.data["message"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(completed.len(), 1, "{completed:?}");
    assert!(
        completed[0].contains(&format!("from {bad} to {good}")),
        "{completed:?}"
    );
    // A later good commit is deployed by automated sync.
    repo.write("apps/model/deployment.yaml", &deployment("0.01"));
    let fixed = repo.commit("model v3: fixed");
    refresh(&apps).await;
    wait_synced_healthy(&e, &fixed).await;
    drop(prom);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn automated_sync_resumes_after_a_revert_by_hand() {
    automated_sync_resumes_when_git_catches_up(Revert::ByHand).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_revert_direct_closes_the_loop() {
    automated_sync_resumes_when_git_catches_up(Revert::ByPolicy).await;
}
