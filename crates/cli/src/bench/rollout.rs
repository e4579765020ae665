//! `mooring bench rollout`: progressive delivery figures, in-process on loopback (the
//! embedded cluster with simulated pods, a real Prometheus, the controller).
//!
//! 1. **Abort latency**: a canary whose analysis fails at once (a Prometheus query that
//!    breaks its success condition). Measured from the moment the AnalysisRun first shows
//!    a failed measurement to the moment stable traffic is fully restored: the Istio
//!    `VirtualService` back at 100/0 (traffic-routed), or the stable ReplicaSet back at
//!    full size and available with no canary pod left (basic canary). Both moments are
//!    seen through watches of the same process, so watch delays affect both ends alike.
//! 2. **1,000 concurrent Rollouts**: time until all are Healthy after creation, time until
//!    an image change has taken every one of them to its first pause, the process's CPU
//!    time for that update and its peak RSS (cluster and controller share the process).

use anyhow::{bail, Context};
use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use mooring_k8s::kube;
use mooring_k8s::resources::{analysis_run_resource, analysis_template_resource, rollout_resource};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

use super::proc_status_mib;
use mooring_k8s::api_resource as res;

/// User + system CPU time of this process.
fn cpu_time() -> Duration {
    let ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let after = s.rsplit_once(')')?.1;
            let f: Vec<&str> = after.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0);
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

async fn create(
    client: &kube::Client,
    ar: &ApiResource,
    ns: &str,
    obj: Value,
) -> anyhow::Result<()> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, ar);
    let o: DynamicObject = serde_json::from_value(obj)?;
    api.create(&PostParams::default(), &o)
        .await
        .with_context(|| format!("creating a {}", ar.kind))?;
    Ok(())
}

/// Polling of the latency figures (cheap: a few objects).
const FAST: Duration = Duration::from_millis(5);
/// Polling of the 1,000-Rollout figures (a list of all of them each time).
const SLOW: Duration = Duration::from_millis(500);

fn rollout(name: &str, replicas: i64, image: &str, strategy: Value) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                         "spec": {"containers": [{"name": "server", "image": image}]}},
            "strategy": strategy,
        },
    })
}

async fn set_image(client: &kube::Client, ns: &str, name: &str, image: &str) -> anyhow::Result<()> {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &rollout_resource());
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "server", "image": image}]}}}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("updating Rollout {name}"))?;
    Ok(())
}

async fn wait_for<F, Fut, T>(secs: u64, poll: Duration, what: &str, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {secs}s waiting for {what}");
        }
        tokio::time::sleep(poll).await;
    }
}

pub async fn run(rollouts: usize, rounds: usize) -> anyhow::Result<()> {
    let cluster = mooring_apiserver::Cluster::start(mooring_apiserver::ClusterOptions {
        crds: [mooring_k8s::crds::all(), mooring_k8s::crds::traffic_crds()].concat(),
        sim: mooring_apiserver::sim::SimOptions {
            speed: 20.0,
            ..Default::default()
        },
        ..Default::default()
    })
    .await?;
    let prom_dir = tempfile::tempdir()?;
    let prom = super::scraping_prometheus(&cluster, prom_dir.path().to_path_buf()).await?;
    let client = mooring_k8s::client_from_kubeconfig(cluster.kubeconfig_path()).await?;
    let cache = tempfile::tempdir()?;
    let _controller = mooring_controller::Controller::start(
        client.clone(),
        mooring_controller::ControllerOptions {
            cache_dir: cache.path().to_path_buf(),
            prometheus_address: Some(prom.url()),
            ..Default::default()
        },
    )
    .await?;
    println!("mooring bench rollout: abort latency ({rounds} rounds per mode), then {rollouts} concurrent Rollouts");
    let interval = 5;
    let (routed, basic) = abort_latency(&client, rounds, interval).await?;
    let (healthy, paused, cpu) = many(&client, rollouts).await?;
    let p = |v: &[Duration], q: f64| {
        let mut v = v.to_vec();
        v.sort();
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        v.get(i).copied().unwrap_or_default()
    };
    println!();
    println!("| figure | value |");
    println!("|---|---|");
    println!(
        "| first failed measurement → VirtualService 100/0 (Istio), p50 / max | {:.0} ms / {:.0} ms |",
        p(&routed, 0.5).as_secs_f64() * 1e3,
        p(&routed, 1.0).as_secs_f64() * 1e3
    );
    println!(
        "| first failed measurement → stable at full size, canary gone (basic), p50 / max | {:.0} ms / {:.0} ms |",
        p(&basic, 0.5).as_secs_f64() * 1e3,
        p(&basic, 1.0).as_secs_f64() * 1e3
    );
    println!(
        "| target: one analysis interval + 1 s | {} ms |",
        interval * 1000 + 1000
    );
    println!(
        "| {rollouts} Rollouts created → all Healthy | {:.1} s |",
        healthy.as_secs_f64()
    );
    println!(
        "| image change on all → all Paused at their first step | {:.1} s |",
        paused.as_secs_f64()
    );
    println!(
        "| process CPU time for that update (cluster + controller) | {:.1} s |",
        cpu.as_secs_f64()
    );
    println!(
        "| peak RSS (cluster + controller + {rollouts} Rollouts, {} pods) | {:.0} MiB |",
        rollouts * 2,
        proc_status_mib("VmHWM:")
    );
    Ok(())
}

/// A template whose only metric fails at its first measurement.
fn failing_template(interval: u64) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisTemplate",
        "metadata": {"name": "always-fails"},
        "spec": {"metrics": [{
            "name": "success-rate", "interval": format!("{interval}s"), "count": 3, "failureLimit": 0,
            "successCondition": "result[0] >= 0.95",
            "provider": {"prometheus": {"query": "vector(0.5)"}},
        }]},
    })
}

/// When the first measurement of any run of `rollout` failed (as seen now).
async fn first_failure_seen(client: &kube::Client, ns: &str, run_prefix: &str) -> bool {
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &analysis_run_resource());
    let Ok(list) = api.list(&ListParams::default()).await else {
        return false;
    };
    list.items.iter().any(|r| {
        r.metadata
            .name
            .as_deref()
            .is_some_and(|n| n.starts_with(run_prefix))
            && r.data
                .pointer("/status/metricResults")
                .and_then(Value::as_array)
                .is_some_and(|m| {
                    m.iter().any(|m| {
                        m.get("measurements")
                            .and_then(Value::as_array)
                            .is_some_and(|ms| {
                                ms.iter().any(|x| x.get("phase") == Some(&json!("Failed")))
                            })
                    })
                })
    })
}

async fn abort_latency(
    client: &kube::Client,
    rounds: usize,
    interval: u64,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let ns = "default";
    create(
        client,
        &analysis_template_resource(),
        ns,
        failing_template(interval),
    )
    .await?;
    for s in [
        "routed-stable",
        "routed-canary",
        "basic-stable",
        "basic-canary",
    ] {
        let app = s.split('-').next().unwrap_or(s);
        create(
            client,
            &res("", "v1", "Service", "services"),
            ns,
            json!({
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": s},
            "spec": {"selector": {"app": app}, "ports": [{"port": 80}]}}),
        )
        .await?;
    }
    let vs = res(
        "networking.istio.io",
        "v1beta1",
        "VirtualService",
        "virtualservices",
    );
    create(
        client,
        &vs,
        ns,
        json!({
        "apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService",
        "metadata": {"name": "routed"},
        "spec": {"hosts": ["routed"], "http": [{"name": "primary", "route": [
            {"destination": {"host": "routed-stable"}, "weight": 100},
            {"destination": {"host": "routed-canary"}, "weight": 0}]}]}}),
    )
    .await?;
    let steps = json!([{"setWeight": 20},
        {"analysis": {"templates": [{"templateName": "always-fails"}]}}, {"pause": {}}]);
    create(
        client,
        &rollout_resource(),
        ns,
        rollout(
            "routed",
            5,
            "server:0",
            json!({"canary": {
        "canaryService": "routed-canary", "stableService": "routed-stable",
        "trafficRouting": {"istio": {"virtualService": {"name": "routed", "routes": ["primary"]}}},
        "steps": steps}}),
        ),
    )
    .await?;
    create(
        client,
        &rollout_resource(),
        ns,
        rollout(
            "basic",
            5,
            "server:0",
            json!({"canary": {
        "canaryService": "basic-canary", "stableService": "basic-stable", "steps": steps}}),
        ),
    )
    .await?;
    let ro: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &rollout_resource());
    for name in ["routed", "basic"] {
        let healthy = wait_for(120, FAST, &format!("{name} Healthy"), || async {
            let r = ro.get(name).await.ok()?;
            (r.data.pointer("/status/phase") == Some(&json!("Healthy"))).then_some(())
        })
        .await;
        if let Err(e) = healthy {
            let r = ro
                .get(name)
                .await
                .map(|r| r.data["status"].clone())
                .unwrap_or_default();
            bail!("{e}; Rollout status: {r}");
        }
    }
    let vs_api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &vs);
    let rs_api: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns,
        &res("apps", "v1", "ReplicaSet", "replicasets"),
    );
    let mut routed = vec![];
    let mut basic = vec![];
    for round in 1..=rounds {
        for name in ["routed", "basic"] {
            let before = ro.get(name).await?.data["status"]["currentPodHash"].clone();
            set_image(client, ns, name, &format!("server:{round}")).await?;
            let r = wait_for(60, FAST, "the update started", || async {
                let r = ro.get(name).await.ok()?;
                let s = &r.data["status"];
                (s["currentPodHash"] != before && s["currentPodHash"] != s["stableRS"])
                    .then(|| s.clone())
            })
            .await?;
            let hash = r["currentPodHash"].as_str().unwrap_or_default().to_string();
            let stable = r["stableRS"].as_str().unwrap_or_default().to_string();
            let prefix = format!("{name}-{hash}-");
            let seen = wait_for(60, FAST, "a failed measurement", || async {
                first_failure_seen(client, ns, &prefix).await.then_some(())
            })
            .await;
            if let Err(e) = seen {
                let r = ro
                    .get(name)
                    .await
                    .map(|r| r.data["status"].clone())
                    .unwrap_or_default();
                bail!("{e}; Rollout {name} status: {r}");
            }
            let t0 = Instant::now();
            if name == "routed" {
                let restored = wait_for(60, FAST, "VirtualService back at 100/0", || async {
                    let v = vs_api.get("routed").await.ok()?;
                    let route = v.data.pointer("/spec/http/0/route")?.as_array()?.clone();
                    let w = |h: &str| {
                        route
                            .iter()
                            .find(|d| d["destination"]["host"] == json!(h))
                            .and_then(|d| d["weight"].as_i64())
                    };
                    (w("routed-stable") == Some(100) && w("routed-canary") == Some(0)).then_some(())
                })
                .await;
                if let Err(e) = restored {
                    let r = ro
                        .get(name)
                        .await
                        .map(|r| r.data["status"].clone())
                        .unwrap_or_default();
                    let v = vs_api
                        .get("routed")
                        .await
                        .map(|r| r.data["spec"].clone())
                        .unwrap_or_default();
                    bail!("{e}; VirtualService: {v}; Rollout status: {r}");
                }
                routed.push(t0.elapsed());
            } else {
                wait_for(60, FAST, "stable at full size, canary gone", || async {
                    let c = rs_api.get(&format!("basic-{hash}")).await.ok()?;
                    let s = rs_api.get(&format!("basic-{stable}")).await.ok()?;
                    let avail = |o: &DynamicObject| {
                        o.data
                            .pointer("/status/availableReplicas")
                            .and_then(Value::as_i64)
                            .unwrap_or(0)
                    };
                    let pods = |o: &DynamicObject| {
                        o.data
                            .pointer("/status/replicas")
                            .and_then(Value::as_i64)
                            .unwrap_or(0)
                    };
                    (pods(&c) == 0 && avail(&s) == 5).then_some(())
                })
                .await?;
                basic.push(t0.elapsed());
            }
        }
        eprint!(".");
    }
    eprintln!();
    Ok((routed, basic))
}

async fn many(client: &kube::Client, n: usize) -> anyhow::Result<(Duration, Duration, Duration)> {
    let ns = "many";
    let namespaces: Api<DynamicObject> =
        Api::all_with(client.clone(), &res("", "v1", "Namespace", "namespaces"));
    let namespace: DynamicObject = serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    )?;
    namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .context("creating the namespace of the Rollouts")?;
    let strategy = json!({"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}});
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let c = client.clone();
            let s = strategy.clone();
            async move {
                create(
                    &c,
                    &rollout_resource(),
                    ns,
                    rollout(&format!("r{i}"), 1, "server:1", s),
                )
                .await
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<()>>>()?;
    let ro: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &rollout_resource());
    let count = |phase: &'static str, step: Option<i64>| {
        let ro = ro.clone();
        async move {
            let list = ro.list(&ListParams::default()).await.ok()?;
            let k = list
                .items
                .iter()
                .filter(|r| {
                    r.data.pointer("/status/phase") == Some(&json!(phase))
                        && step.is_none_or(|s| {
                            r.data.pointer("/status/currentStepIndex") == Some(&json!(s))
                        })
                })
                .count();
            Some(k)
        }
    };
    wait_for(600, SLOW, "all Rollouts Healthy", || async {
        (count("Healthy", None).await? == n).then_some(())
    })
    .await?;
    let healthy = start.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu0 = cpu_time();
    let start = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let c = client.clone();
            async move { set_image(&c, ns, &format!("r{i}"), "server:2").await }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<Vec<()>>>()?;
    wait_for(600, SLOW, "all Rollouts Paused at step 1", || async {
        (count("Paused", Some(1)).await? == n).then_some(())
    })
    .await?;
    let paused = start.elapsed();
    Ok((healthy, paused, cpu_time() - cpu0))
}
