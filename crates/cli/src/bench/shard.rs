//! `mooring bench shard`: shard takeover after a replica dies without releasing its
//! Leases (as `kill -9` leaves them), over `--rounds` kills.
//!
//! In-process on loopback: a management cluster and six embedded destination clusters
//! registered by cluster Secrets (round-robin: two per shard), five apps per destination
//! (a ConfigMap each, from a local Git repository), and three controllers with
//! `--shards 3` and a 4 s lease duration. Each round waits for one shard per replica,
//! drops one replica's controller (its tasks stop at once; its Leases stay held until
//! they expire), and measures the time until a survivor reconciles an app of the
//! orphaned shard (from the survivors' per-destination reconcile counts), then starts
//! the replica again and waits for the shards to rebalance. Goal (issue 18): ≤ lease
//! duration + 5 s.

use super::dr::until;
use super::gitops::percentile;
use crate::up::git;
use mooring_controller::{Controller, ControllerOptions, ShardingOptions};
use mooring_k8s::kube;
use std::path::Path;
use std::time::{Duration, Instant};

const DESTINATIONS: usize = 6;
const APPS_PER_DESTINATION: usize = 5;
const REPLICAS: u32 = 3;
const LEASE: Duration = Duration::from_secs(4);

async fn replica(client: &kube::Client, cache: &Path, k: u32) -> anyhow::Result<Controller> {
    Ok(Controller::start(
        client.clone(),
        ControllerOptions {
            cache_dir: cache.join(format!("replica-{k}")),
            operation_poll: Duration::from_millis(100),
            sharding: ShardingOptions {
                shards: REPLICAS,
                shard: None,
                method: mooring_engine::shard::Method::RoundRobin,
                lease_duration: LEASE,
                replica: format!("mooring-controller-{k}"),
            },
            ..Default::default()
        },
    )
    .await?)
}

fn one_shard_each(replicas: &[Option<Controller>]) -> bool {
    replicas.iter().all(|r| {
        r.as_ref()
            .is_some_and(|c| c.ctx.sharding.owned().len() == 1)
    })
}

pub async fn run(rounds: usize) -> anyhow::Result<()> {
    let data = tempfile::tempdir()?;
    let repo = data.path().join("repo");
    std::fs::create_dir_all(repo.join("app"))?;
    std::fs::write(
        repo.join("app/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  v: \"1\"\n",
    )?;
    git(&repo, &["init", "-q", "-b", "main"])?;
    git(&repo, &["add", "-A"])?;
    git(&repo, &["commit", "-q", "-m", "settings"])?;
    let mgmt = mooring_apiserver::Cluster::start(mooring_apiserver::ClusterOptions {
        crds: mooring_k8s::crds::all(),
        ..Default::default()
    })
    .await?;
    let client = mooring_k8s::client_from_kubeconfig(mgmt.kubeconfig_path()).await?;
    let ns = mooring_core::app::CONTROL_PLANE_NAMESPACE;
    let mut destinations = Vec::new();
    for d in 0..DESTINATIONS {
        let c =
            mooring_apiserver::Cluster::start(mooring_apiserver::ClusterOptions::default()).await?;
        crate::cluster::register(
            &client,
            ns,
            &mooring_k8s::registry::ClusterEntry {
                project: String::new(),
                name: format!("dst-{d}"),
                server: c.url(),
                config: c.client_config(),
                labels: Default::default(),
                annotations: Default::default(),
            },
        )
        .await?;
        destinations.push(c);
    }
    let mut replicas: Vec<Option<Controller>> = Vec::new();
    for k in 0..REPLICAS {
        replicas.push(Some(replica(&client, data.path(), k).await?));
    }
    until(60, "one shard per replica", || {
        let ok = one_shard_each(&replicas);
        async move { Ok(ok.then_some(())) }
    })
    .await?;
    let apps: kube::Api<kube::api::DynamicObject> = kube::Api::namespaced_with(
        client.clone(),
        ns,
        &mooring_k8s::resources::application_resource(),
    );
    for (d, c) in destinations.iter().enumerate() {
        for i in 0..APPS_PER_DESTINATION {
            let name = format!("app-{d}-{i}");
            let app: kube::api::DynamicObject = serde_json::from_value(serde_json::json!({
                "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                "metadata": {"name": name, "namespace": ns},
                "spec": {"project": "default",
                    "source": {"repoURL": format!("file://{}", repo.display()), "targetRevision": "main", "path": "app"},
                    "destination": {"server": c.url(), "namespace": name},
                    "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]}},
            }))?;
            apps.create(&Default::default(), &app).await?;
        }
    }
    let total = DESTINATIONS * APPS_PER_DESTINATION;
    until(300, "every app synced", || {
        let apps = apps.clone();
        async move {
            let l = apps.list(&Default::default()).await?;
            let synced = l
                .items
                .iter()
                .filter(|a| {
                    a.data
                        .pointer("/status/sync/status")
                        .and_then(serde_json::Value::as_str)
                        == Some("Synced")
                })
                .count();
            Ok((synced == total).then_some(()))
        }
    })
    .await?;
    println!(
        "mooring bench shard: {DESTINATIONS} destinations × {APPS_PER_DESTINATION} apps, {REPLICAS} replicas, --shards {REPLICAS}, lease {}s, {rounds} kills",
        LEASE.as_secs()
    );
    let mut takeovers = Vec::new();
    for round in 0..rounds {
        until(60, "one shard per replica", || {
            let ok = one_shard_each(&replicas);
            async move { Ok(ok.then_some(())) }
        })
        .await?;
        let victim = round % REPLICAS as usize;
        let Some(dead) = replicas[victim].take() else {
            continue;
        };
        let orphaned: Vec<u32> = dead.ctx.sharding.owned().into_iter().collect();
        // Reconcile counts of the orphaned shard's destinations by the survivors, before.
        let counts = |replicas: &[Option<Controller>]| -> u64 {
            replicas
                .iter()
                .flatten()
                .flat_map(|c| c.ctx.metrics.destination_reconciles())
                .filter(|((_, s), _)| orphaned.contains(s))
                .map(|(_, n)| n)
                .sum()
        };
        let before = counts(&replicas);
        // The takeover queues every app of a shard it gains, so the orphaned apps are
        // reconciled as soon as a survivor holds the shard's Lease.
        let killed = Instant::now();
        drop(dead);
        until(60, "the orphaned shard reconciled by a survivor", || {
            let now = counts(&replicas);
            async move { Ok((now > before).then_some(())) }
        })
        .await?;
        let took = killed.elapsed();
        println!(
            "  round {round}: shard {orphaned:?} taken over in {:.2}s",
            took.as_secs_f64()
        );
        takeovers.push(took);
        replicas[victim] = Some(replica(&client, data.path(), victim as u32).await?);
    }
    if takeovers.is_empty() {
        return Ok(());
    }
    let p50 = percentile(&mut takeovers, 0.5);
    let max = takeovers.iter().max().copied().unwrap_or_default();
    println!(
        "shard takeover after kill -9 (lease {}s, goal ≤ {}s): p50 {:.2}s, max {:.2}s",
        LEASE.as_secs(),
        LEASE.as_secs() + 5,
        p50.as_secs_f64(),
        max.as_secs_f64()
    );
    Ok(())
}
