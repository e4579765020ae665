//! `mooring bench TARGET`: the benchmarks whose figures docs/benchmarks.md records, one
//! file each in this folder (`gitops.rs`, `policy.rs`, `appset.rs`, `rollout.rs`,
//! `flood.rs` for api-flood, `protobuf.rs`), kept apart from the commands so that the binary's
//! `src/` holds argument parsing, output and glue; the shared process-memory reader is
//! here.
//!
//! `mooring bench cluster` (this file): the embedded cluster's figures, measured through the real
//! client path (kube-rs over HTTP on 127.0.0.1) against a cluster started in-process with
//! SQLite storage in a temporary directory.
//!
//! Figures: writes/s for create and server-side apply, list latency at 10k and 100k
//! objects, watch fan-out to N watchers, and resident memory at 100k objects. Results
//! are printed as a table; docs/benchmarks.md records them with the machine.

mod appset;
mod chaos;
mod dr;
mod flood;
mod gitops;
mod image;
mod load;
mod logs;
mod policy;
mod protobuf;
mod rollback;
mod rollout;
mod shard;
mod soak;

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use mooring_k8s::k8s_openapi::api::core::v1::ConfigMap;
use mooring_k8s::kube::api::{Api, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// What to measure.
    #[arg(value_enum, default_value = "cluster")]
    pub target: Target,
    /// Objects written for the writes/s figures.
    #[arg(long, default_value_t = 5000)]
    pub writes: usize,
    /// Concurrent writers.
    #[arg(long, default_value_t = 16)]
    pub writers: usize,
    /// Watchers for the fan-out figure.
    #[arg(long, default_value_t = 100)]
    pub watchers: usize,
    /// Largest object count for list latency and memory (10k is always measured too).
    #[arg(long, default_value_t = 100_000)]
    pub objects: usize,
    /// Applications for the refresh-pass figure (gitops).
    #[arg(long, default_value_t = 1000)]
    pub apps: usize,
    /// Destination clusters (appset).
    #[arg(long, default_value_t = 10)]
    pub clusters: usize,
    /// Commits / drifts measured (gitops), aborted canaries per mode (rollout).
    #[arg(long, default_value_t = 20)]
    pub rounds: usize,
    /// Concurrent Rollouts (rollout).
    #[arg(long, default_value_t = 1000)]
    pub rollouts: usize,
    /// Run the embedded cluster in a child process (`mooring cluster start`), so the
    /// benchmark process holds the controller alone (gitops).
    #[arg(long)]
    pub split_cluster: bool,
    /// Seconds of each phase (api-flood: without, then during the flood; at most 60).
    #[arg(long, default_value_t = 3)]
    pub seconds: u64,
    /// `kill -9` faults injected, one per round (chaos).
    #[arg(long, default_value_t = 100)]
    pub kills: usize,
    /// Seed of the random choices (chaos, soak); random and printed when not given.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Sharded controller replicas (chaos; a kill hits one of them).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=8))]
    pub replicas: u32,
    /// Seconds a chaos round may take to converge before it is a violation.
    #[arg(long, default_value_t = 120)]
    pub round_timeout: u64,
    /// Crash points armed in the controllers (chaos), `NAME=PROBABILITY,…`
    /// (`MOORING_CRASH_POINTS`; empty: none).
    #[arg(
        long,
        default_value = "sync.applied=0.02,sync.persisted=0.02,sync.finished=0.05,notification.recorded=0.05"
    )]
    pub crash_points: String,
    /// Simulated time the soak runs for (Go syntax: 30m, 1h, 2h30m); wall time is this
    /// divided by `--speed`.
    #[arg(long, default_value = "1h", value_parser = soak::parse_duration)]
    pub duration: Duration,
    /// Simulation speed of the soak's clusters.
    #[arg(long, default_value_t = 20.0)]
    pub speed: f64,
    /// Exit non-zero when a soak series grows after warm-up.
    #[arg(long)]
    pub fail_on_leak: bool,
}

#[derive(clap::ValueEnum, Clone, Debug)]
pub enum Target {
    /// The embedded API server: writes/s, list latency, watch fan-out, memory.
    Cluster,
    /// The GitOps loop: commit → converged with a webhook, drift → healed, and a full
    /// refresh pass over many applications.
    Gitops,
    /// Policy evaluation: Gatekeeper reviews per second against bare regorus.
    Policy,
    /// An ApplicationSet of `--apps` Applications across `--clusters` embedded clusters.
    Appset,
    /// Progressive delivery: abort latency (first failed measurement → stable traffic
    /// restored) and `--rollouts` concurrent Rollouts.
    Rollout,
    /// Automated rollback: RollbackPolicy breach → good revision Healthy, and → the
    /// `gitRevert` commit pushed (`--rounds`, a few seconds each).
    Rollback,
    /// Disaster recovery: the RTO of the example plan (`examples/ml-platform/dr`) over
    /// `--rounds` drills, broken down by step (BIND needed; run from the repository root).
    Dr,
    /// Image watcher: new tag pushed → running, with registry notifications and with a
    /// 10 s poll, on the example's model server (`--rounds` pushes per mode;
    /// docker-registry needed; run from the repository root).
    Image,
    /// Writes/s creating Deployments and ConfigMaps with Kubernetes protobuf bodies vs
    /// JSON bodies (`--writes` each, `--writers` concurrent), kubectl-like HTTPS client.
    Protobuf,
    /// Log streaming: `--watchers` followers of one Pod's `pods/log?follow=true` for
    /// `--seconds`, with a load of Pods writing (lines/s delivered, total and per follower).
    Logs,
    /// Sharding: shard takeover after a replica dies holding its Leases (as after
    /// `kill -9`), three replicas, six destination clusters, `--rounds` kills.
    Shard,
    /// Reliability: `--kills` rounds of `kill -9` (controller, API server) with Git,
    /// cluster and receiver outages and controller crash points, then the invariants
    /// (nothing lost, nothing done twice) and the recovery time per fault class; exit 1
    /// on a violation. Replays with `--seed`.
    Chaos,
    /// The REST API and the webhook under a flood of bad requests from 127.0.0.1
    /// (`--writers` loops for `--seconds`): the valid token's p50/p99 without and during it.
    ApiFlood,
    /// The REST API, the webhook and the embedded API server under `--writers` concurrent
    /// clients for `--seconds` while the controller reconciles `--apps` apps: p50/p99 and
    /// errors per class, and commit → converged p50 idle and under load (`--rounds`).
    Load,
    /// Soak: random commits, drifts, good and bad rollouts and cluster flaps for
    /// `--duration` of simulated time at `--speed`, sampling RSS, CPU, file descriptors,
    /// the work queue, watches and tasks; prints each series' trend after warm-up.
    Soak,
}

/// A real Prometheus (Debian's `prometheus`) scraping `cluster`'s simulated pod metrics
/// every second, its data in `data_dir`: what the analysis, rollback and soak benchmarks
/// query.
async fn scraping_prometheus(
    cluster: &mooring_apiserver::Cluster,
    data_dir: std::path::PathBuf,
) -> anyhow::Result<mooring_controller::prometheus::LocalPrometheus> {
    mooring_controller::prometheus::LocalPrometheus::start(
        mooring_controller::prometheus::LocalPrometheusOptions {
            binary: None,
            data_dir,
            listen: None,
            scrape_interval: Duration::from_secs(1),
            clusters: vec![mooring_controller::prometheus::ScrapeCluster {
                url: cluster.url(),
                token_file: cluster.token_path(),
                ca_file: Some(cluster.ca_path()),
            }],
        },
    )
    .await
    .context("starting Prometheus (install the Debian package `prometheus`)")
}

/// A memory figure of this process from `/proc/self/status` (`field` is `VmRSS:`,
/// `VmHWM:`, …), in MiB; NaN where there is no such file (not Linux).
fn proc_status_mib(field: &str) -> f64 {
    proc_status_mib_of("/proc/self/status", field)
}

/// CPU time a process has used so far (all its threads), in seconds: the sum of
/// `/proc/PID/task/*/schedstat` (`self` for this process; threads that already exited
/// are not counted); NaN off Linux. Figures measured on a shared machine are more
/// comparable in CPU seconds than in wall time.
fn proc_cpu_seconds(pid: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return f64::NAN;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .sum::<f64>()
        / 1e9
}

/// [`proc_status_mib`] of another process's status file (`/proc/PID/status`).
fn proc_status_mib_of(path: &str, field: &str) -> f64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn cm(name: &str, i: usize) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "bench", "shard": format!("s{}", i % 10)}},
        "data": {"model": "resnet50", "version": format!("v{i}"), "threshold": "0.95"}
    }))
    .expect("static ConfigMap is valid")
}

async fn parallel<F, Fut>(n: usize, writers: usize, f: F) -> anyhow::Result<Duration>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let f = Arc::new(f);
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let f = f.clone();
            async move { f(i).await }
        })
        .buffer_unordered(writers.max(1))
        .try_for_each(|()| futures::future::ready(Ok(())))
        .await?;
    Ok(start.elapsed())
}

async fn list_latency(
    client: &mooring_k8s::kube::Client,
    ns: &str,
) -> anyhow::Result<(Duration, usize)> {
    let mut times = Vec::new();
    let mut count = 0;
    for _ in 0..5 {
        let req = http::Request::get(format!("/api/v1/namespaces/{ns}/configmaps"))
            .body(Vec::new())
            .context("building list request")?;
        let t = Instant::now();
        let text = client.request_text(req).await.context("listing")?;
        times.push(t.elapsed());
        count = text.matches("\"kind\":\"ConfigMap\"").count();
    }
    times.sort();
    Ok((times[times.len() / 2], count))
}

pub async fn run(args: BenchArgs) -> anyhow::Result<std::process::ExitCode> {
    if let Target::Chaos = args.target {
        return chaos::run(chaos::Options {
            kills: args.kills,
            seed: args.seed,
            replicas: args.replicas,
            timeout: Duration::from_secs(args.round_timeout),
            crash_points: args.crash_points,
        })
        .await;
    }
    match args.target {
        Target::Cluster => cluster_bench(args).await,
        Target::Gitops => gitops::run(args.apps, args.rounds, args.split_cluster).await,
        Target::Policy => policy::run(args.objects),
        Target::Appset => appset::run(args.apps, args.clusters).await,
        Target::Rollout => rollout::run(args.rollouts, args.rounds).await,
        Target::ApiFlood => flood::run(args.seconds, args.writers).await,
        Target::Rollback => rollback::run(args.rounds).await,
        Target::Dr => dr::run(args.rounds).await,
        Target::Image => image::run(args.rounds).await,
        Target::Protobuf => protobuf::run(args.writes, args.writers).await,
        Target::Logs => logs::run(args.watchers, args.seconds).await,
        Target::Shard => shard::run(args.rounds).await,
        Target::Chaos => Ok(()),
        Target::Load => {
            load::run(
                args.apps,
                args.writers,
                args.seconds,
                args.rounds,
                args.split_cluster,
            )
            .await
        }
        Target::Soak => {
            soak::run(soak::Options {
                duration: args.duration,
                speed: args.speed,
                seed: args.seed,
                fail_on_leak: args.fail_on_leak,
            })
            .await
        }
    }
    .map(|()| std::process::ExitCode::SUCCESS)
}

async fn cluster_bench(args: BenchArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("creating a temporary data directory")?;
    let cluster = mooring_apiserver::Cluster::start(mooring_apiserver::ClusterOptions {
        name: "bench".into(),
        data_dir: Some(dir.path().to_path_buf()),
        ..Default::default()
    })
    .await
    .context("starting the embedded cluster")?;
    let client = mooring_k8s::client_from_kubeconfig(cluster.kubeconfig_path()).await?;
    let mut rows: Vec<(String, String)> = Vec::new();
    let ns_api: Api<mooring_k8s::k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    for ns in ["bench-writes", "bench-10k", "bench-big", "bench-watch"] {
        ns_api
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
            )
            .await
            .with_context(|| format!("creating namespace {ns}"))?;
    }

    // Writes/s: create.
    let writes: Api<ConfigMap> = Api::namespaced(client.clone(), "bench-writes");
    let w = writes.clone();
    let took = parallel(args.writes, args.writers, move |i| {
        let w = w.clone();
        async move {
            w.create(&PostParams::default(), &cm(&format!("cm-{i}"), i))
                .await?;
            Ok(())
        }
    })
    .await?;
    rows.push((
        format!("create, {} writers", args.writers),
        format!(
            "{:.0} writes/s ({} objects in {:.2} s)",
            args.writes as f64 / took.as_secs_f64(),
            args.writes,
            took.as_secs_f64()
        ),
    ));

    // Writes/s: server-side apply (updates of the same objects).
    let w = writes.clone();
    let took = parallel(args.writes, args.writers, move |i| {
        let w = w.clone();
        async move {
            let mut obj = cm(&format!("cm-{i}"), i + 1);
            obj.metadata
                .labels
                .get_or_insert_default()
                .insert("applied".into(), "yes".into());
            w.patch(
                &format!("cm-{i}"),
                &PatchParams::apply("bench").force(),
                &Patch::Apply(&obj),
            )
            .await?;
            Ok(())
        }
    })
    .await?;
    rows.push((
        format!("server-side apply, {} writers", args.writers),
        format!("{:.0} writes/s", args.writes as f64 / took.as_secs_f64()),
    ));

    // Watch fan-out.
    let watch_api: Api<ConfigMap> = Api::namespaced(client.clone(), "bench-watch");
    let events = 100usize;
    let mut handles = Vec::new();
    for _ in 0..args.watchers {
        let stream = watch_api.watch(&WatchParams::default(), "0").await?.boxed();
        handles.push(tokio::spawn(async move {
            let mut stream = stream;
            let mut seen = 0usize;
            while let Some(ev) = stream.next().await {
                if let Ok(WatchEvent::Added(_)) = ev {
                    seen += 1;
                    if seen == events {
                        return Instant::now();
                    }
                }
            }
            Instant::now()
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    for i in 0..events {
        watch_api
            .create(&PostParams::default(), &cm(&format!("w-{i}"), i))
            .await?;
    }
    let written = start.elapsed();
    let mut last = start;
    for h in handles {
        last = last.max(h.await.context("watcher task")?);
    }
    let all = last.duration_since(start);
    rows.push((
        format!("watch fan-out, {} watchers x {events} events", args.watchers),
        format!(
            "all delivered {:.0} ms after the first write ({:.0} ms to write); {:.0} events/s delivered",
            all.as_secs_f64() * 1000.0,
            written.as_secs_f64() * 1000.0,
            (args.watchers * events) as f64 / all.as_secs_f64()
        ),
    ));

    // List latency at 10k and at `objects`, and memory.
    let api = cluster.api.clone();
    let rt = api
        .registry
        .get("", "v1", "configmaps")
        .context("configmaps registered")?;
    let populate = |ns: &str, from: usize, to: usize| -> anyhow::Result<()> {
        let opts = mooring_apiserver::api::WriteOptions {
            field_manager: Some("bench".into()),
            ..Default::default()
        };
        for i in from..to {
            let obj = serde_json::to_value(cm(&format!("cm-{i}"), i))?;
            api.create(&rt, Some(ns), obj, &opts)?;
        }
        Ok(())
    };
    populate("bench-10k", 0, 10_000)?;
    let (lat, n) = list_latency(&client, "bench-10k").await?;
    rows.push((
        "list 10k objects (median of 5)".into(),
        format!("{:.1} ms ({n} items)", lat.as_secs_f64() * 1000.0),
    ));
    let rss_before = proc_status_mib("VmRSS:");
    let t = Instant::now();
    populate("bench-big", 0, args.objects)?;
    let populate_took = t.elapsed();
    let (lat, n) = list_latency(&client, "bench-big").await?;
    rows.push((
        format!("list {}k objects (median of 5)", args.objects / 1000),
        format!("{:.1} ms ({n} items)", lat.as_secs_f64() * 1000.0),
    ));
    let rss_after = proc_status_mib("VmRSS:");
    rows.push((
        format!("in-process create of {}k objects", args.objects / 1000),
        format!(
            "{:.0} writes/s",
            args.objects as f64 / populate_took.as_secs_f64()
        ),
    ));
    rows.push((
        format!(
            "resident memory at {}k objects",
            (args.objects + 10_000 + 2 * args.writes) / 1000
        ),
        format!(
            "{rss_after:.0} MiB (+{:.0} MiB for {}k objects)",
            rss_after - rss_before,
            args.objects / 1000
        ),
    ));

    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(10);
    println!("{:width$}  RESULT", "FIGURE");
    for (k, v) in rows {
        println!("{k:width$}  {v}");
    }
    cluster.stop();
    Ok(())
}
