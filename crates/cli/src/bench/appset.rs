//! `mooring bench appset`: an ApplicationSet generating N Applications across C embedded
//! clusters (a matrix of a clusters generator and a list), in-process on loopback: the
//! management cluster, C destination clusters registered by Argo CD cluster Secrets (and
//! with the controller), a Git repository on file://, the controller.
//!
//! Figures: time from creating the set until all Applications exist, until all are
//! Synced, and the process's peak RSS (clusters and controller together).

use super::proc_status_mib;
use crate::up::git;
use anyhow::bail;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use mooring_k8s::k8s_openapi::api::core::v1::Secret;
use mooring_k8s::kube;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

pub async fn run(n_apps: usize, n_clusters: usize) -> anyhow::Result<()> {
    if n_clusters == 0 || n_apps < n_clusters {
        bail!("need at least one cluster and one app per cluster");
    }
    let per_cluster = n_apps / n_clusters;
    let repo = tempfile::tempdir()?;
    git(repo.path(), &["init", "-q", "-b", "main"])?;
    std::fs::create_dir_all(repo.path().join("app"))?;
    std::fs::write(
        repo.path().join("app/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {model: resnet50}\n",
    )?;
    git(repo.path(), &["add", "-A"])?;
    git(repo.path(), &["commit", "-q", "-m", "app"])?;
    let remote = "https://git.example.com/bench/fleet.git";

    let mgmt = mooring_apiserver::Cluster::start(mooring_apiserver::ClusterOptions {
        crds: mooring_k8s::crds::all(),
        ..Default::default()
    })
    .await?;
    let client = mooring_k8s::client_from_kubeconfig(mgmt.kubeconfig_path()).await?;
    let cache = tempfile::tempdir()?;
    let mut controller = mooring_controller::Controller::start(
        client.clone(),
        mooring_controller::ControllerOptions {
            cache_dir: cache.path().to_path_buf(),
            poll: Duration::from_secs(3600),
            operation_poll: Duration::from_millis(50),
            repo_aliases: vec![(remote.into(), format!("file://{}", repo.path().display()))],
            ..Default::default()
        },
    )
    .await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "argocd");
    let mut clusters = Vec::new();
    for i in 0..n_clusters {
        let c = mooring_apiserver::Cluster::start(Default::default()).await?;
        let name = format!("fleet-{i}");
        let cc = mooring_k8s::client_from_kubeconfig(c.kubeconfig_path()).await?;
        controller.add_cluster(&name, &c.url(), cc).await?;
        let secret: Secret = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": format!("cluster-{name}"), "namespace": "argocd",
                "labels": {"argocd.argoproj.io/secret-type": "cluster", "bench": "true"}},
            "stringData": {"name": name, "server": c.url(), "config": serde_json::to_string(&c.client_config())?}
        }))?;
        secrets.create(&PostParams::default(), &secret).await?;
        clusters.push(c);
    }
    let elements: Vec<Value> = (0..per_cluster)
        .map(|i| json!({"i": i.to_string()}))
        .collect();
    let set: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet",
        "metadata": {"name": "fleet", "namespace": "argocd"},
        "spec": {
            "syncPolicy": {"preserveResourcesOnDeletion": true},
            "generators": [{"matrix": {"generators": [
                {"clusters": {"selector": {"matchLabels": {"bench": "true"}}}},
                {"list": {"elements": elements}}]}}],
            "template": {
                "metadata": {"name": "{{name}}-app-{{i}}"},
                "spec": {"project": "default",
                    "source": {"repoURL": remote, "targetRevision": "main", "path": "app"},
                    "destination": {"server": "{{server}}", "namespace": "app-{{i}}"},
                    "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]}}
            }
        }
    }))?;
    let sets: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        mooring_core::app::CONTROL_PLANE_NAMESPACE,
        &mooring_k8s::resources::applicationset_resource(),
    );
    let apps: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        mooring_core::app::CONTROL_PLANE_NAMESPACE,
        &mooring_k8s::resources::application_resource(),
    );
    let want = per_cluster * n_clusters;
    let t = Instant::now();
    sets.create(&PostParams::default(), &set).await?;
    let mut all_exist = None;
    let all_synced = loop {
        let list = apps
            .list(&ListParams::default().labels("mooring.dev/applicationset=fleet"))
            .await?;
        if all_exist.is_none() && list.items.len() >= want {
            all_exist = Some(t.elapsed());
        }
        let synced = list
            .items
            .iter()
            .filter(|o| {
                serde_json::to_value(o)
                    .ok()
                    .and_then(|v| v.pointer("/status/sync/status").cloned())
                    == Some(json!("Synced"))
            })
            .count();
        if synced >= want {
            break t.elapsed();
        }
        if t.elapsed() > Duration::from_secs(1800) {
            bail!("only {synced} of {want} Applications Synced after 30 minutes");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let rows = [
        ("applications", want.to_string()),
        ("destination clusters", n_clusters.to_string()),
        (
            "set created → all Applications exist",
            format!("{:.2} s", all_exist.unwrap_or(all_synced).as_secs_f64()),
        ),
        (
            "set created → all Applications Synced",
            format!("{:.2} s", all_synced.as_secs_f64()),
        ),
        (
            "peak RSS (clusters + controller)",
            format!("{:.0} MiB", proc_status_mib("VmHWM:")),
        ),
    ];
    println!("| figure | value |\n|---|---|");
    for (k, v) in rows {
        println!("| {k} | {v} |");
    }
    drop(controller);
    drop(clusters);
    Ok(())
}
