//! `mooring bench logs --watchers N --seconds S`: log streaming throughput of the
//! embedded cluster's `pods/log?follow=true`.
//!
//! An embedded cluster (simulation at speed 20) runs a load of [`LOAD_PODS`] Pods serving
//! [`LOAD_RATE`] simulated requests per second each, and one followed Pod serving
//! [`FOLLOWED_RATE`] (one access-log line per request). `N` followers (kube-rs
//! `log_stream`, as `kubectl logs -f` reads it, over HTTPS on 127.0.0.1) follow that Pod
//! for `S` seconds; the figures are the lines delivered per second in total and per
//! follower (min / median / max against the Pod's rate), and the process's resident
//! memory before and while following. Request lines are computed when read (see
//! `mooring_apiserver::sim::logs`), so the load Pods cost nothing until someone reads
//! them: the figure measures the read and stream path.

use super::gitops::percentile;
use futures::{AsyncBufReadExt, StreamExt};
use mooring_k8s::k8s_openapi::api::core::v1::Pod;
use mooring_k8s::kube::api::{Api, ListParams, LogParams, PostParams};
use serde_json::json;
use std::time::{Duration, Instant};

/// Pods of the background load.
const LOAD_PODS: usize = 50;
/// Requests (log lines) per second of each load Pod.
const LOAD_RATE: u32 = 100;
/// Requests (log lines) per second of the followed Pod.
const FOLLOWED_RATE: u32 = 1000;

fn deployment(name: &str, replicas: usize, rate: u32) -> anyhow::Result<serde_json::Value> {
    Ok(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name},
                             "annotations": {"sim.mooring.dev/request-rate": rate.to_string()}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
    }))
}

pub async fn run(followers: usize, secs: u64) -> anyhow::Result<()> {
    let followers = followers.clamp(1, 1000);
    let secs = secs.clamp(1, 60);
    let cluster = mooring_apiserver::Cluster::start(
        mooring_apiserver::ClusterOptions {
            sim: mooring_apiserver::sim::SimOptions {
                speed: 20.0,
                ..Default::default()
            },
            ..Default::default()
        }
        .with_load_balancer_range("127.0.121.0/24")?,
    )
    .await?;
    let client = mooring_k8s::client_from_kubeconfig(cluster.kubeconfig_path()).await?;
    let deployments: Api<mooring_k8s::k8s_openapi::api::apps::v1::Deployment> =
        Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for (name, n, rate) in [
        ("load", LOAD_PODS, LOAD_RATE),
        ("followed", 1, FOLLOWED_RATE),
    ] {
        deployments
            .create(
                &PostParams::default(),
                &serde_json::from_value(deployment(name, n, rate)?)?,
            )
            .await?;
    }
    let target = super::dr::until(60, "all Pods running", || async {
        let l = pods.list(&ListParams::default()).await?;
        let running = l
            .items
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count();
        let followed = l
            .items
            .iter()
            .find(|p| {
                p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("app"))
                    .map(String::as_str)
                    == Some("followed")
            })
            .and_then(|p| p.metadata.name.clone());
        Ok((running == LOAD_PODS + 1).then_some(followed).flatten())
    })
    .await?;
    // Let the request lines start (they begin once the container is Ready).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = super::proc_status_mib("VmRSS:");

    let lp = LogParams {
        follow: true,
        tail_lines: Some(0),
        ..Default::default()
    };
    let mut streams = Vec::with_capacity(followers);
    for _ in 0..followers {
        streams.push(pods.log_stream(&target, &lp).await?);
    }
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut tasks = futures::stream::FuturesUnordered::new();
    for s in streams {
        tasks.push(tokio::spawn(async move {
            let mut lines = s.lines();
            let mut n = 0u64;
            while let Ok(Some(Ok(_))) = tokio::time::timeout_at(deadline, lines.next()).await {
                n += 1;
            }
            n
        }));
    }
    let mut rss_during = 0.0f64;
    let sampler = async {
        while tokio::time::Instant::now() < deadline {
            rss_during = rss_during.max(super::proc_status_mib("VmRSS:"));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let mut counts = Vec::with_capacity(followers);
    let collect = async {
        while let Some(r) = tasks.next().await {
            counts.push(r.unwrap_or(0));
        }
    };
    tokio::join!(sampler, collect);
    let elapsed = start.elapsed().as_secs_f64();
    let total: u64 = counts.iter().sum();
    let mut per: Vec<Duration> = counts
        .iter()
        .map(|c| Duration::from_secs_f64(*c as f64 / elapsed))
        .collect();
    per.sort();
    let rate = |d: Duration| d.as_secs_f64();
    println!("log streaming: {followers} followers of one Pod writing {FOLLOWED_RATE} lines/s, {LOAD_PODS} more Pods writing {LOAD_RATE} lines/s each, {secs} s");
    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| lines delivered, total | {:.0} lines/s |",
        total as f64 / elapsed
    );
    println!(
        "| per follower: min / median / max | {:.0} / {:.0} / {:.0} lines/s |",
        rate(per.first().copied().unwrap_or_default()),
        rate(percentile(&mut per, 0.5)),
        rate(per.last().copied().unwrap_or_default()),
    );
    println!(
        "| resident memory before / while following | {rss_before:.0} / {rss_during:.0} MiB |"
    );
    Ok(())
}
