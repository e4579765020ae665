//! Sharding and HA: the embedded cluster's Leases behave as Kubernetes', replicas split
//! destination clusters through them and take a dead replica's over, and a replica
//! working from a stale read of an Application never syncs it a second time.

use crate::support::{controller_with, eventually, field, Repo};
use mooring_apiserver::{Cluster, ClusterOptions};
use mooring_controller::{reconcile, ControllerError, ControllerOptions, ShardingOptions};
use mooring_core::app::Application;
use mooring_k8s::kube;
use mooring_k8s::kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

fn apps(client: &kube::Client) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        "argocd",
        &mooring_k8s::resources::application_resource(),
    )
}

fn leases(client: &kube::Client) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        "argocd",
        &mooring_k8s::api_resource("coordination.k8s.io", "v1", "Lease", "leases"),
    )
}

async fn management() -> (Cluster, kube::Client) {
    let cluster = Cluster::start(ClusterOptions {
        crds: mooring_k8s::crds::all(),
        ..Default::default()
    })
    .await
    .expect("cluster");
    let client = mooring_k8s::client_from_kubeconfig(cluster.kubeconfig_path())
        .await
        .expect("client");
    (cluster, client)
}

fn app_object(name: &str, url: &str, server: &str, ns: &str, automated: bool) -> DynamicObject {
    let mut a = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {"project": "default",
            "source": {"repoURL": url, "targetRevision": "main", "path": "app"},
            "destination": {"server": server, "namespace": ns},
            "syncPolicy": {"syncOptions": ["CreateNamespace=true"]}}
    });
    if automated {
        a["spec"]["syncPolicy"]["automated"] = json!({"prune": true});
    }
    serde_json::from_value(a).expect("app")
}

fn repo_with_config_map(value: &str) -> Repo {
    let repo = Repo::new();
    repo.write(
        "app/cm.yaml",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  v: {value:?}\n"
        ),
    );
    repo.commit("config");
    repo
}

/// The embedded cluster serves `coordination.k8s.io/v1` Leases with Kubernetes'
/// semantics: an update naming an old resourceVersion is a 409, `renewTime` keeps its
/// microseconds, a Lease that is not one (wrong field types) is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_cluster_serves_leases_with_optimistic_concurrency() {
    let (_cluster, client) = management().await;
    let api = leases(&client);
    let lease: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "l"},
        "spec": {"holderIdentity": "a", "leaseDurationSeconds": 4,
            "acquireTime": "2026-01-01T00:00:00.123456Z",
            "renewTime": "2026-01-01T00:00:00.123456Z", "leaseTransitions": 0},
    }))
    .expect("lease");
    let created = api
        .create(&PostParams::default(), &lease)
        .await
        .expect("create");
    assert_eq!(
        created.data["spec"]["renewTime"], "2026-01-01T00:00:00.123456Z",
        "MicroTime keeps microseconds"
    );
    // Two replicas read the same version; the first update wins, the second is a 409.
    let mut first = created.clone();
    first.data["spec"]["holderIdentity"] = json!("b");
    first.data["spec"]["leaseTransitions"] = json!(1);
    api.replace("l", &PostParams::default(), &first)
        .await
        .expect("first writer");
    let mut second = created.clone();
    second.data["spec"]["holderIdentity"] = json!("c");
    match api.replace("l", &PostParams::default(), &second).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 409, "{s:?}"),
        other => panic!("a stale Lease update must be a 409: {other:?}"),
    }
    // A merge patch naming the old version is refused too.
    let stale_rv = created.metadata.resource_version.clone().expect("rv");
    let r = api
        .patch(
            "l",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"metadata": {"resourceVersion": stale_rv}, "spec": {"holderIdentity": "d"}}),
            ),
        )
        .await;
    assert!(
        matches!(r, Err(kube::Error::Api(ref s)) if s.code == 409),
        "{r:?}"
    );
    let now = api.get("l").await.expect("get");
    assert_eq!(now.data["spec"]["holderIdentity"], "b");
    assert_eq!(now.data["spec"]["leaseTransitions"], 1);
    // Hostile input: not a Lease.
    let bad: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "bad"},
        "spec": {"leaseDurationSeconds": "forever", "renewTime": 7},
    }))
    .expect("bad lease");
    assert!(api.create(&PostParams::default(), &bad).await.is_err());
}

/// The race the resourceVersion guard exists for: two replicas read the same
/// Application with a sync requested; one syncs it; the other, working from its stale
/// read, must fail with a conflict before applying anything — one sync, one history
/// entry, the live object written once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_writer_fails_and_nothing_is_synced_twice() {
    let (_cluster, client) = management().await;
    mooring_controller::project::ensure_default_project(&client, "argocd").await;
    let repo = repo_with_config_map("one");
    let api = apps(&client);
    api.create(
        &PostParams::default(),
        &app_object(
            "race",
            &repo.url(),
            "https://kubernetes.default.svc",
            "ml",
            false,
        ),
    )
    .await
    .expect("app");
    api.patch(
        "race",
        &PatchParams::default(),
        &Patch::Merge(json!({"operation": {"sync": {"revision": "main"}, "initiatedBy": {"username": "test"}}})),
    )
    .await
    .expect("request sync");
    let read = |o: DynamicObject| -> Application {
        serde_json::from_value(serde_json::to_value(o).expect("json")).expect("app parses")
    };
    // Both replicas read the app now, before either writes.
    let stale = read(api.get("race").await.expect("get"));
    let caches = [
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    ];
    let context = |dir: &tempfile::TempDir| {
        Context::offline(
            client.clone(),
            ControllerOptions {
                cache_dir: dir.path().to_path_buf(),
                ..Default::default()
            },
        )
    };
    use mooring_controller::Context;
    let a = context(&caches[0]).await.expect("replica a");
    let b = context(&caches[1]).await.expect("replica b");
    // Replica a syncs it to the end (each reconcile from a fresh read, as its queue does).
    for _ in 0..50 {
        let fresh = read(api.get("race").await.expect("get"));
        let done = fresh.operation.is_none()
            && field(
                &serde_json::to_value(&fresh).expect("json"),
                "/status/operationState/phase",
            ) == "Succeeded";
        if done {
            break;
        }
        reconcile::reconcile(Arc::new(fresh), a.clone())
            .await
            .expect("replica a reconciles");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let synced: Value = serde_json::to_value(api.get("race").await.expect("get")).expect("json");
    assert_eq!(
        field(&synced, "/status/operationState/phase"),
        "Succeeded",
        "{synced:#}"
    );
    let cms: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "ml",
        &mooring_k8s::api_resource("", "v1", "ConfigMap", "configmaps"),
    );
    let live_before = cms.get("settings").await.expect("synced ConfigMap");
    // Replica b wakes up with the stale read (sync requested, not started).
    let r = reconcile::reconcile(Arc::new(stale), b.clone()).await;
    assert!(
        matches!(r, Err(ControllerError::Conflict(_))),
        "the stale writer must fail with a conflict: {r:?}"
    );
    let after: Value = serde_json::to_value(api.get("race").await.expect("get")).expect("json");
    assert_eq!(
        after
            .pointer("/status/history")
            .and_then(Value::as_array)
            .map(Vec::len),
        Some(1),
        "synced once: {after:#}"
    );
    assert_eq!(
        after.pointer("/status/operationState/id"),
        synced.pointer("/status/operationState/id"),
        "no second operation started"
    );
    assert!(after.get("operation").is_none_or(Value::is_null));
    let live_after = cms.get("settings").await.expect("ConfigMap");
    assert_eq!(
        live_after.metadata.resource_version, live_before.metadata.resource_version,
        "nothing applied by the stale writer"
    );
    // From a fresh read, b reconciles normally (the guard only refuses stale reads).
    let fresh = read(api.get("race").await.expect("get"));
    reconcile::reconcile(Arc::new(fresh), b.clone())
        .await
        .expect("a fresh read reconciles");
}

/// A cluster Secret for the embedded cluster `c`.
fn cluster_secret(name: &str, c: &Cluster, shard: Option<u32>) -> DynamicObject {
    let mut string_data = json!({"name": name, "server": c.url(),
        "config": serde_json::to_string(&c.client_config()).expect("config")});
    if let Some(s) = shard {
        string_data["shard"] = json!(s.to_string());
    }
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("cluster-{name}"), "namespace": "argocd",
            "labels": {"argocd.argoproj.io/secret-type": "cluster"}},
        "stringData": string_data,
    }))
    .expect("secret")
}

fn sharded(replica: &str) -> impl FnOnce(&mut ControllerOptions) {
    let replica = replica.to_string();
    move |o: &mut ControllerOptions| {
        o.sharding = ShardingOptions {
            shards: 2,
            shard: None,
            method: mooring_engine::shard::Method::RoundRobin,
            lease_duration: Duration::from_secs(2),
            replica,
        };
        o.poll = Duration::from_secs(2);
    }
}

/// Destinations reconciled by a replica (from its metrics).
fn destinations(c: &mooring_controller::Controller) -> std::collections::BTreeSet<String> {
    c.ctx
        .metrics
        .destination_reconciles()
        .into_keys()
        .map(|(d, _)| d)
        .collect()
}

/// Two replicas with `--shards 2` split two destination clusters (explicit `shard` on the
/// Secrets), each reconciling only its own; when one dies without releasing its Leases
/// the other takes its shard over after the lease duration and deploys a commit made
/// meanwhile once; a replica started again gets a shard back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_split_destinations_and_take_over_a_dead_ones_shard() {
    let (mgmt, client) = management().await;
    let east = Cluster::start(ClusterOptions::default())
        .await
        .expect("east");
    let west = Cluster::start(ClusterOptions::default())
        .await
        .expect("west");
    let secrets: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "argocd",
        &mooring_k8s::api_resource("", "v1", "Secret", "secrets"),
    );
    for (name, c, shard) in [("east", &east, 0), ("west", &west, 1)] {
        secrets
            .create(
                &PostParams::default(),
                &cluster_secret(name, c, Some(shard)),
            )
            .await
            .expect("cluster secret");
    }
    let r0 = controller_with(&mgmt, sharded("replica-0")).await;
    let r1 = controller_with(&mgmt, sharded("replica-1")).await;
    // The first replica up takes both shards, then gives one back to the second.
    eventually(30, "one shard each", || async {
        (r0.controller.ctx.sharding.owned().len() == 1
            && r1.controller.ctx.sharding.owned().len() == 1)
            .then_some(())
    })
    .await;
    let repo = repo_with_config_map("one");
    let api = apps(&client);
    for (name, c) in [
        ("a-east", &east),
        ("b-east", &east),
        ("a-west", &west),
        ("b-west", &west),
    ] {
        api.create(
            &PostParams::default(),
            &app_object(name, &repo.url(), &c.url(), name, true),
        )
        .await
        .expect("app");
    }
    let synced_at = |name: &'static str, commit: String| {
        let api = api.clone();
        async move {
            let o: Value = serde_json::to_value(api.get(name).await.ok()?).ok()?;
            (field(&o, "/status/sync/status") == "Synced"
                && field(&o, "/status/sync/revision") == commit)
                .then_some(o)
        }
    };
    let first = repo.git(&["rev-parse", "HEAD"]);
    for name in ["a-east", "b-east", "a-west", "b-west"] {
        eventually(60, &format!("{name} synced"), || {
            synced_at(name, first.clone())
        })
        .await;
    }
    // Each replica owns one shard (its StatefulSet-style ordinal), and reconciled only
    // that shard's destination.
    assert_eq!(r0.controller.ctx.sharding.owned(), [0].into());
    assert_eq!(r1.controller.ctx.sharding.owned(), [1].into());
    assert_eq!(destinations(&r0.controller), [east.url()].into());
    assert_eq!(destinations(&r1.controller), [west.url()].into());
    let leaders = [&r0, &r1]
        .iter()
        .filter(|r| r.controller.ctx.sharding.is_leader())
        .count();
    assert_eq!(leaders, 1, "exactly one leader");
    let lease = leases(&client)
        .get("mooring-controller-shard-1")
        .await
        .expect("lease");
    assert_eq!(lease.data["spec"]["holderIdentity"], "replica-1");
    // replica-1 dies (its tasks stop; its Leases stay, unreleased, as after kill -9).
    drop(r1);
    repo.write(
        "app/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  v: \"two\"\n",
    );
    let second = repo.commit("two");
    for name in ["a-east", "b-east", "a-west", "b-west"] {
        eventually(60, &format!("{name} at the new commit"), || {
            synced_at(name, second.clone())
        })
        .await;
    }
    assert_eq!(r0.controller.ctx.sharding.owned(), [0, 1].into());
    assert!(destinations(&r0.controller).contains(&west.url()));
    // Deployed once: one more history entry per app.
    for name in ["a-west", "b-west"] {
        let o: Value = serde_json::to_value(api.get(name).await.expect("app")).expect("json");
        let history = o["status"]["history"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let at_second = history
            .iter()
            .filter(|h| h["revision"] == second.as_str())
            .count();
        assert_eq!(
            at_second, 1,
            "{name} synced the new commit once: {history:#?}"
        );
    }
    // replica-1 comes back: the shards rebalance, one each.
    let r1 = controller_with(&mgmt, sharded("replica-1")).await;
    eventually(30, "one shard each again", || async {
        (r0.controller.ctx.sharding.owned().len() == 1
            && r1.controller.ctx.sharding.owned().len() == 1)
            .then_some(())
    })
    .await;
}
