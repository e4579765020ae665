//! `mooring bench soak --duration D --speed S`: hours of ordinary life compressed into
//! minutes, watching the process for what grows. A leak in a long-running controller
//! (a watch never let go after a cluster flap, a task per sync, a map keyed by commit)
//! shows in no latency figure; it shows as a resource that keeps growing while the load
//! stays the same.
//!
//! # What runs
//!
//! In-process on loopback, so the controller's internals can be read: a management
//! cluster and a destination cluster `edge` (both embedded, simulation at `--speed`, the
//! edge registered by cluster Secret), a real Prometheus scraping the management
//! cluster's simulated pods, the controller, and its webhook endpoint. One Git
//! repository served over smart HTTP (`git http-backend`, push enabled, as a forge
//! would) holds [`FLEET`] small apps (a ConfigMap and a one-replica Deployment each;
//! [`EDGE_APPS`] of them deploy to `edge`), a model served by an Argo Rollouts canary
//! gated by an AnalysisTemplate on the canary pods' `ml_model_accuracy`, and the model
//! server of `mooring bench rollback` guarded by a RollbackPolicy (error rate > 5 % for
//! 5 s: roll back and push a `gitRevert`).
//!
//! # Events
//!
//! Random, from `--seed` (printed, so a run can be replayed), one every simulated minute
//! on average (exponential gaps): a commit to a fleet app (pushed, then announced by a
//! GitHub-style webhook), a drift (a managed ConfigMap edited behind Mooring's back,
//! which self-heal restores), a model rollout (good: accuracy 0.95, promoted; bad:
//! accuracy 0.5, the analysis fails and the canary is aborted), a model-server change
//! (good: a new version; bad: 20 % errors, which the RollbackPolicy rolls back and
//! reverts in Git), and a flap of `edge` (partitioned for 30–180 simulated seconds, then
//! healed). A rollout or model-server event waits until the previous one of its kind has
//! settled (another event is drawn meanwhile), so each is judged on its own.
//!
//! `--duration` is **simulated** time: the run takes `duration / speed` of wall time. The
//! simulation (pods starting, becoming ready) runs at `--speed`; the controller,
//! Prometheus and Git run in wall time, so what the speed compresses is the event rate
//! (about 60 events per simulated hour whatever the speed) and the cluster's own clocks.
//!
//! # Samples and the trend rule
//!
//! Every few wall seconds (a sixtieth of the run, between 1 and 5 s): resident memory
//! (`VmRSS`), CPU used since the previous sample (% of one core), open file descriptors,
//! the Application work queue's depth (`workqueue_depth{name="app_reconciliation_queue"}`),
//! watches following each cluster's event stream, live tokio tasks, and the management
//! cluster's object count. At the end, a condensed table of the samples, then per series:
//! the first 20 % of samples are dropped as warm-up (caches filling, the allocator
//! settling), a least-squares line is fitted to the rest against simulated time, and the
//! series is flagged **growing** when all three hold:
//!
//! - the slope is significantly positive: at least 3 standard errors above zero;
//! - the line rises over the judged window by at least 10 % of the series' mean;
//! - and by at least the series' floor (8 MiB of RSS, 5 descriptors, 2 watches, 3
//!   queued keys, 20 tasks, 50 objects, 5 CPU points), so a flat series' noise is never
//!   a leak.
//!
//! A growing series is printed as a `LEAK?` line: the question mark because objects that
//! legitimately accumulate (Events, AnalysisRuns kept for history) grow too until their
//! bounds are reached, which a longer run tells apart. The command exits non-zero for it
//! only with `--fail-on-leak` (a soak is a measurement first; CI can opt in).
//!
//! Kubernetes Events expire after ten simulated minutes (kube-apiserver's `--event-ttl`
//! is an hour of wall time, longer than most soaks), so their count reaches its steady
//! state within the run. The run also prints the management cluster's object count by
//! resource at the start and end of the events, to say what an `objects` trend is made
//! of.
//!
//! After the last event the run settles: a bad model left last is fixed forward by a
//! good commit, an `edge` partition is healed, a model server the RollbackPolicy left
//! suspended is resumed by hand (both said in the output: they are what an operator would
//! have to do), and every app must be Synced and Healthy at Git's head (the revert
//! commits the controller pushed included) within three minutes, or the command fails.
//! A revert that fails during the run is repaired the same way at once. Then one more
//! sample is printed (not judged), and the edge cluster's watch count is compared with
//! its level before the first flap (waiting up to 40 s for the watcher backoff).

use super::dr::until;
use super::gitops::post_webhook;
use super::rollback::{write_model, ERROR_RATE};
use super::{proc_cpu_seconds, proc_status_mib};
use crate::up::git;
use anyhow::{bail, Context as _};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use mooring_k8s::kube;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Fleet apps (a ConfigMap and a Deployment each).
const FLEET: usize = 30;
/// Of which deploy to the `edge` cluster (the last ones).
const EDGE_APPS: usize = 10;
/// Mean gap between events, in simulated seconds.
const MEAN_GAP_SIM_S: f64 = 60.0;
/// Share of samples dropped as warm-up.
const WARM_UP: f64 = 0.2;
/// Standard errors above zero a slope must be to count.
const MIN_T: f64 = 3.0;
/// Rise over the judged window, relative to the series' mean, that counts.
const MIN_RELATIVE_RISE: f64 = 0.10;
/// Namespace of the Rollout-delivered model.
const MODEL_NS: &str = "models";

/// What `mooring bench soak` was asked for.
pub struct Options {
    /// Simulated time to run for.
    pub duration: Duration,
    pub speed: f64,
    pub seed: Option<u64>,
    pub fail_on_leak: bool,
}

/// A duration in Go syntax (`90s`, `30m`, `1h30m`) or bare seconds, for `--duration`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    mooring_core::time::parse_go_duration(s)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{s:?} is not a duration such as 90s, 30m or 1h30m"))
}

/// splitmix64: a small seeded generator (the events must replay from `--seed`).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: usize) -> usize {
        (self.unit() * n as f64) as usize % n.max(1)
    }

    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

/// The working clone the events commit in, pushing to the served repository.
#[derive(Clone)]
struct Repo {
    work: PathBuf,
    url: String,
    hook: std::net::SocketAddr,
}

impl Repo {
    /// Write `files` (path, content) on top of the remote's `main`, commit and push;
    /// pushes that lose a race with the controller's revert are redone on the new head.
    /// The commit.
    async fn commit(&self, files: Vec<(String, String)>, msg: String) -> anyhow::Result<String> {
        let work = self.work.clone();
        tokio::task::spawn_blocking(move || {
            let mut last = None;
            for _ in 0..5 {
                git(&work, &["fetch", "-q", "origin"])?;
                git(&work, &["reset", "-q", "--hard", "origin/main"])?;
                for (path, content) in &files {
                    let p = work.join(path);
                    if let Some(d) = p.parent() {
                        std::fs::create_dir_all(d)?;
                    }
                    std::fs::write(p, content)?;
                }
                git(&work, &["add", "-A"])?;
                git(&work, &["commit", "-q", "--allow-empty", "-m", &msg])?;
                match git(&work, &["push", "-q", "origin", "HEAD:main"]) {
                    Ok(_) => return git(&work, &["rev-parse", "HEAD"]),
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| anyhow::anyhow!("push failed")))
        })
        .await?
    }

    /// The remote's `main`.
    async fn head(&self) -> anyhow::Result<String> {
        let work = self.work.clone();
        tokio::task::spawn_blocking(move || {
            git(&work, &["fetch", "-q", "origin"])?;
            git(&work, &["rev-parse", "origin/main"])
        })
        .await?
    }

    /// A GitHub push webhook announcing `sha` (touching `paths`).
    async fn announce(&self, sha: &str, paths: &[String]) -> anyhow::Result<()> {
        let html = self.url.trim_end_matches(".git");
        let payload = serde_json::to_vec(&json!({"ref": "refs/heads/main", "after": sha,
            "repository": {"clone_url": self.url, "html_url": html},
            "commits": [{"modified": paths, "added": [], "removed": []}]}))?;
        post_webhook(self.hook, &payload).await
    }
}

fn fleet_files(i: usize, version: u64) -> Vec<(String, String)> {
    let dir = format!("fleet/app-{i}");
    vec![
        (
            format!("{dir}/settings.yaml"),
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings}}\ndata: {{version: \"{version}\"}}\n"),
        ),
        (
            format!("{dir}/server.yaml"),
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: server}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: server}}\n  template:\n    metadata: {labels: {app: server}}\n    spec:\n      containers: [{name: s, image: registry.local/server:1}]\n".into(),
        ),
    ]
}

/// The Rollout-delivered model at `version` with `accuracy`, and its analysis.
fn model_files(version: u64, accuracy: f64) -> Vec<(String, String)> {
    vec![
        (
            "model/rollout.yaml".into(),
            format!(
                "apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {{name: model}}
spec:
  replicas: 2
  revisionHistoryLimit: 3
  selector: {{matchLabels: {{app: model}}}}
  template:
    metadata:
      labels: {{app: model}}
      annotations: {{sim.mooring.dev/accuracy: \"{accuracy}\"}}
    spec:
      containers: [{{name: server, image: \"registry.local/model:{version}\"}}]
  strategy:
    canary:
      steps:
      - setWeight: 50
      - analysis:
          templates: [{{templateName: accuracy}}]
          args: [{{name: canary-hash, valueFrom: {{podTemplateHashValue: Latest}}}}]
"
            ),
        ),
        (
            "model/analysis.yaml".into(),
            format!(
                "apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata: {{name: accuracy}}
spec:
  args: [{{name: canary-hash}}]
  metrics:
  - name: accuracy
    initialDelay: 3s
    interval: 2s
    count: 3
    failureLimit: 0
    consecutiveErrorLimit: 10
    successCondition: result[0] >= 0.9
    provider:
      prometheus:
        query: avg(ml_model_accuracy{{namespace=\"{MODEL_NS}\",rollouts_pod_template_hash=\"{{{{args.canary-hash}}}}\"}})
"
            ),
        ),
    ]
}

/// The model server's files (`mooring bench rollback`'s) at `error_rate`.
fn serving_files(error_rate: &str) -> anyhow::Result<Vec<(String, String)>> {
    let tmp = tempfile::tempdir()?;
    write_model(tmp.path(), error_rate)?;
    let rel = "applications/model-serving/deployment.yaml";
    Ok(vec![(
        rel.to_string(),
        std::fs::read_to_string(tmp.path().join(rel))?,
    )])
}

fn application(name: &str, path: &str, server: &str, ns: &str, repo: &str) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": mooring_core::app::CONTROL_PLANE_NAMESPACE},
        "spec": {"project": "default",
            "source": {"repoURL": repo, "targetRevision": "main", "path": path},
            "destination": {"server": server, "namespace": ns},
            "syncPolicy": {"automated": {"prune": true, "selfHeal": true},
                "syncOptions": ["CreateNamespace=true"],
                "retry": {"limit": 30, "backoff": {"duration": "1s", "factor": 2, "maxDuration": "10s"}}}}
    })
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

/// One reading of the process and of the controller's and clusters' internals.
#[derive(Clone, Debug)]
struct Sample {
    wall: f64,
    sim: f64,
    rss_mib: f64,
    cpu_s: f64,
    fds: f64,
    queue: f64,
    watches_mgmt: f64,
    watches_edge: f64,
    tasks: f64,
    objects: f64,
}

/// How many objects of each resource a cluster's store holds.
fn objects_by_resource(
    store: &mooring_apiserver::store::Store,
) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    for o in store.all() {
        *out.entry(o.key.resource.clone()).or_default() += 1;
    }
    out
}

fn open_fds() -> f64 {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as f64)
        .unwrap_or(f64::NAN)
}

/// A series the trend is judged on: its name, unit, floor and values.
struct Series {
    name: &'static str,
    unit: &'static str,
    floor: f64,
    values: Vec<f64>,
}

/// The least-squares line of `y` against `t`: (slope, its standard error, mean of y).
fn fit(t: &[f64], y: &[f64]) -> (f64, f64, f64) {
    let n = t.len() as f64;
    let (mt, my) = (t.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxx: f64 = t.iter().map(|x| (x - mt).powi(2)).sum();
    let sxy: f64 = t.iter().zip(y).map(|(x, v)| (x - mt) * (v - my)).sum();
    if sxx == 0.0 {
        return (0.0, f64::INFINITY, my);
    }
    let b = sxy / sxx;
    let a = my - b * mt;
    let sse: f64 = t.iter().zip(y).map(|(x, v)| (v - a - b * x).powi(2)).sum();
    let se = if n > 2.0 {
        (sse / (n - 2.0) / sxx).sqrt()
    } else {
        f64::INFINITY
    };
    (b, se, my)
}

/// The verdict on one series (see the module doc): slope per simulated hour, rise over
/// the judged window, relative rise, t, growing.
struct Trend {
    slope_per_hour: f64,
    rise: f64,
    relative: f64,
    t: f64,
    growing: bool,
}

fn trend(sim_hours: &[f64], y: &[f64], floor: f64) -> Trend {
    let (b, se, mean) = fit(sim_hours, y);
    let span = sim_hours.last().copied().unwrap_or(0.0) - sim_hours.first().copied().unwrap_or(0.0);
    let rise = b * span;
    let relative = if mean.abs() > f64::EPSILON {
        rise / mean.abs()
    } else if rise > 0.0 {
        f64::INFINITY
    } else {
        0.0
    };
    let t = if se == 0.0 {
        if b > 0.0 {
            f64::INFINITY
        } else {
            0.0
        }
    } else {
        b / se
    };
    Trend {
        slope_per_hour: b,
        rise,
        relative,
        t,
        growing: t >= MIN_T && relative >= MIN_RELATIVE_RISE && rise >= floor,
    }
}

fn hms(sim_s: f64) -> String {
    let s = sim_s.max(0.0).round() as u64;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// What the event loop keeps between events.
#[derive(Default)]
struct State {
    version: u64,
    /// The last model commit's version and whether it was good.
    model: Option<(u64, bool)>,
    /// When the last model-server change was pushed and whether it was bad.
    serving: Option<(Instant, bool)>,
    /// The policy's rollbacks seen (by `lastRollback.at`): their `gitRevert` phase and
    /// message.
    rollbacks: std::collections::BTreeMap<String, (String, String)>,
    /// Rollbacks whose revert failed and that the driver repaired as an operator would.
    repaired: std::collections::BTreeSet<String>,
    counts: std::collections::BTreeMap<&'static str, usize>,
}

pub async fn run(opts: Options) -> anyhow::Result<()> {
    let speed = if opts.speed.is_finite() && opts.speed > 0.0 {
        opts.speed
    } else {
        bail!("--speed must be a positive number, not {}", opts.speed);
    };
    let seed = opts.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let wall_total = opts.duration.div_f64(speed);
    println!(
        "mooring bench soak: {} simulated at speed {speed} = {:.0} s wall; seed {seed}; {FLEET} fleet apps ({EDGE_APPS} on edge), a canary-analysed model, a RollbackPolicy-guarded model server",
        hms(opts.duration.as_secs_f64()),
        wall_total.as_secs_f64()
    );
    let data = tempfile::tempdir()?;
    let root = data.path();

    // Git: a bare repository served over smart HTTP with push enabled, a working clone.
    let served = root.join("served");
    std::fs::create_dir_all(&served)?;
    git(
        &served,
        &["init", "-q", "--bare", "-b", "main", "platform.git"],
    )?;
    git(
        &served.join("platform.git"),
        &["config", "http.receivepack", "true"],
    )?;
    let server = mooring_testkit::GitHttpServer::start(&served, None)?;
    let url = server.url("platform.git");
    let work = root.join("work");
    std::fs::create_dir_all(&work)?;
    git(&work, &["init", "-q", "-b", "main"])?;
    git(&work, &["remote", "add", "origin", &url])?;
    let mut files = Vec::new();
    for i in 0..FLEET {
        files.extend(fleet_files(i, 0));
    }
    files.extend(model_files(0, 0.95));
    files.extend(serving_files("0.001")?);
    for (path, content) in &files {
        let p = work.join(path);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(p, content)?;
    }
    git(&work, &["add", "-A"])?;
    git(&work, &["commit", "-q", "-m", "initial"])?;
    git(&work, &["push", "-q", "origin", "HEAD:main"])?;

    // Clusters, Prometheus, controller, webhook endpoint.
    let sim = mooring_apiserver::sim::SimOptions {
        speed,
        ..Default::default()
    };
    // Events expire after ten simulated minutes (kube-apiserver's `--event-ttl` is an
    // hour of wall time, longer than most soaks): their count reaches its steady state
    // within the run instead of passing for a leak.
    let event_ttl = Duration::from_secs(600).div_f64(speed);
    let mgmt = mooring_apiserver::Cluster::start(mooring_apiserver::ClusterOptions {
        name: "soak".into(),
        sim: sim.clone(),
        event_ttl,
        crds: mooring_k8s::crds::all(),
        data_dir: Some(root.join("mgmt")),
        ..Default::default()
    })
    .await
    .context("starting the management cluster")?;
    let edge = mooring_apiserver::Cluster::start(mooring_apiserver::ClusterOptions {
        name: "edge".into(),
        sim,
        event_ttl,
        data_dir: Some(root.join("edge")),
        ..Default::default()
    })
    .await
    .context("starting the edge cluster")?;
    let client = mooring_k8s::client_from_kubeconfig(mgmt.kubeconfig_path()).await?;
    let edge_client = mooring_k8s::client_from_kubeconfig(edge.kubeconfig_path()).await?;
    let ns = mooring_core::app::CONTROL_PLANE_NAMESPACE;
    crate::cluster::register(
        &client,
        ns,
        &mooring_k8s::registry::ClusterEntry {
            project: String::new(),
            name: "edge".into(),
            server: edge.url(),
            config: edge.client_config(),
            labels: Default::default(),
            annotations: Default::default(),
        },
    )
    .await?;
    let prom = super::scraping_prometheus(&mgmt, root.join("prometheus")).await?;
    let controller = mooring_controller::Controller::start(
        client.clone(),
        mooring_controller::ControllerOptions {
            cache_dir: root.join("repos"),
            poll: Duration::from_secs(60),
            operation_poll: Duration::from_millis(100),
            prometheus_address: Some(prom.url()),
            ..Default::default()
        },
    )
    .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook = listener.local_addr()?;
    let router = mooring_server::router(controller.ctx.clone(), Default::default());
    let web = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    let repo = Repo {
        work: work.clone(),
        url: url.clone(),
        hook,
    };

    let apps: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns,
        &mooring_k8s::resources::application_resource(),
    );
    let mut names = Vec::new();
    for i in 0..FLEET {
        let server = if i >= FLEET - EDGE_APPS {
            edge.url()
        } else {
            "https://kubernetes.default.svc".to_string()
        };
        let name = format!("fleet-{i}");
        let obj = application(&name, &format!("fleet/app-{i}"), &server, &name, &url);
        apps.create(&PostParams::default(), &serde_json::from_value(obj)?)
            .await?;
        names.push(name);
    }
    let in_cluster = "https://kubernetes.default.svc";
    for (name, path, target) in [
        ("model", "model", MODEL_NS),
        (
            "model-serving-production",
            "applications/model-serving",
            super::rollback::NS,
        ),
    ] {
        let obj = application(name, path, in_cluster, target, &url);
        apps.create(&PostParams::default(), &serde_json::from_value(obj)?)
            .await?;
        names.push(name.to_string());
    }
    let policies: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        ns,
        &mooring_k8s::resources::rollback_policy_resource(),
    );
    let policy: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "mooring.dev/v1alpha1", "kind": "RollbackPolicy",
        "metadata": {"name": "model-serving-production", "namespace": ns},
        "spec": {"applications": {"names": ["model-serving-production"]}, "interval": "1s",
                 "gitRevert": {"mode": "direct"},
                 "rules": [{"name": "error_rate", "query": ERROR_RATE,
                            "threshold": {"operator": ">", "value": 0.05}, "for": "5s",
                            "action": "automatic_rollback"}]}
    }))?;
    policies.create(&PostParams::default(), &policy).await?;
    let t = Instant::now();
    let head = repo.head().await?;
    let converged_all = |head: String| {
        let apps = apps.clone();
        let n = names.len();
        move || {
            let apps = apps.clone();
            let head = head.clone();
            async move {
                let done = count_converged(&apps, &head).await?;
                Ok((done.0 == n).then_some(()))
            }
        }
    };
    until(
        300,
        "every app Synced and Healthy",
        converged_all(head.clone()),
    )
    .await
    .context("the initial convergence")?;
    println!(
        "setup: {} apps Synced+Healthy in {:.1} s",
        names.len(),
        t.elapsed().as_secs_f64()
    );

    // The sampler.
    let objects_before = objects_by_resource(&mgmt.api.store);
    let started = Instant::now();
    let every = wall_total
        .div_f64(60.0)
        .clamp(Duration::from_secs(1), Duration::from_secs(5));
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let sampler = {
        let ctx = controller.ctx.clone();
        let (mgmt_store, edge_store) = (mgmt.api.store.clone(), edge.api.store.clone());
        tokio::spawn(async move {
            let mut out = Vec::new();
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop_rx.changed() => break,
                }
                let wall = started.elapsed().as_secs_f64();
                out.push(Sample {
                    wall,
                    sim: wall * speed,
                    rss_mib: proc_status_mib("VmRSS:"),
                    cpu_s: proc_cpu_seconds("self"),
                    fds: open_fds(),
                    queue: ctx
                        .metrics
                        .workqueue_depth(mooring_controller::metrics::APP_QUEUE)
                        as f64,
                    watches_mgmt: mgmt_store.watchers() as f64,
                    watches_edge: edge_store.watchers() as f64,
                    tasks: tokio::runtime::Handle::current()
                        .metrics()
                        .num_alive_tasks() as f64,
                    objects: mgmt_store.object_count() as f64,
                });
            }
            out
        })
    };

    // The events.
    let mut rng = Rng(seed);
    let mut st = State::default();
    let rollouts: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        MODEL_NS,
        &mooring_k8s::resources::rollout_resource(),
    );
    let cm =
        kube::core::ApiResource::erase::<mooring_k8s::k8s_openapi::api::core::v1::ConfigMap>(&());
    let mut heal_at: Option<Instant> = None;
    let mut last_heal: Option<Instant> = None;
    let end = started + wall_total;
    let mut next = started;
    loop {
        let gap = -MEAN_GAP_SIM_S * (1.0 - rng.unit()).ln();
        next += Duration::from_secs_f64(gap / speed);
        loop {
            let now = Instant::now();
            if heal_at.is_some_and(|h| h <= now) {
                edge.partition(false);
                heal_at = None;
                last_heal = Some(Instant::now());
                eprintln!(
                    "[{}] edge healed",
                    hms(started.elapsed().as_secs_f64() * speed)
                );
            }
            let wake = [Some(next), heal_at, Some(end)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(next);
            if wake > now {
                tokio::time::sleep(wake - now).await;
                continue;
            }
            break;
        }
        if Instant::now() >= end {
            break;
        }
        let at = hms(started.elapsed().as_secs_f64() * speed);
        let roll = rng.unit();
        observe_rollbacks(&policies, &mut st.rollbacks).await;
        if let Err(e) = repair_failed_reverts(&repo, &apps, &mut st).await {
            eprintln!("[{at}] repairing a failed revert failed: {e:#}");
        }
        let model_free = model_settled(&rollouts, st.model).await;
        let serving_free = serving_settled(&apps, &policies, st.serving).await;
        let what: &'static str = if roll < 0.35 {
            "commit"
        } else if roll < 0.60 {
            "drift"
        } else if roll < 0.75 && model_free {
            "model"
        } else if roll < 0.90 && serving_free {
            "serving"
        } else if roll >= 0.90 && heal_at.is_none() {
            "flap"
        } else {
            "commit"
        };
        st.version += 1;
        let v = st.version;
        let result: anyhow::Result<String> = async {
            match what {
                "commit" => {
                    let i = rng.below(FLEET);
                    let files = fleet_files(i, v);
                    let paths: Vec<String> = files.iter().map(|f| f.0.clone()).collect();
                    let sha = repo
                        .commit(files, format!("fleet-{i}: version {v}"))
                        .await?;
                    repo.announce(&sha, &paths).await?;
                    Ok(format!("commit fleet-{i} v{v}"))
                }
                "drift" => {
                    // An edge app only while edge answers.
                    let n = if heal_at.is_some() {
                        FLEET - EDGE_APPS
                    } else {
                        FLEET
                    };
                    let i = rng.below(n);
                    let c = if i >= FLEET - EDGE_APPS {
                        &edge_client
                    } else {
                        &client
                    };
                    let api: Api<DynamicObject> =
                        Api::namespaced_with(c.clone(), &format!("fleet-{i}"), &cm);
                    api.patch(
                        "settings",
                        &PatchParams::default(),
                        &Patch::Merge(json!({"data": {"version": format!("drift-{v}")}})),
                    )
                    .await?;
                    Ok(format!("drift fleet-{i}"))
                }
                "model" => {
                    let good = rng.unit() < 0.6;
                    let files = model_files(v, if good { 0.95 } else { 0.5 });
                    let paths: Vec<String> = files.iter().map(|f| f.0.clone()).collect();
                    let sha = repo
                        .commit(
                            files,
                            format!("model v{v} ({})", if good { "good" } else { "bad" }),
                        )
                        .await?;
                    repo.announce(&sha, &paths).await?;
                    st.model = Some((v, good));
                    Ok(format!(
                        "model rollout v{v} ({})",
                        if good { "good" } else { "bad" }
                    ))
                }
                "serving" => {
                    let bad = rng.unit() < 0.5;
                    let rate = if bad {
                        "0.2".to_string()
                    } else {
                        format!("0.00{}", 1 + rng.below(9))
                    };
                    let files = serving_files(&rate)?;
                    let paths: Vec<String> = files.iter().map(|f| f.0.clone()).collect();
                    let sha = repo
                        .commit(files, format!("model server: error rate {rate}"))
                        .await?;
                    repo.announce(&sha, &paths).await?;
                    st.serving = Some((Instant::now(), bad));
                    Ok(format!(
                        "model server error rate {rate} ({})",
                        if bad { "bad" } else { "good" }
                    ))
                }
                _ => {
                    let sim_s = rng.range(30.0, 180.0);
                    edge.partition(true);
                    heal_at = Some(Instant::now() + Duration::from_secs_f64(sim_s / speed));
                    Ok(format!("edge partitioned for {sim_s:.0} simulated s"))
                }
            }
        }
        .await;
        match result {
            Ok(line) => {
                *st.counts.entry(what).or_default() += 1;
                eprintln!("[{at}] {line}");
            }
            Err(e) => {
                *st.counts.entry("failed").or_default() += 1;
                eprintln!("[{at}] {what} failed: {e:#}");
            }
        }
    }
    let _ = stop_tx.send(true);
    let samples = sampler.await.context("the sampler")?;
    let events_wall = started.elapsed();
    let objects_after = objects_by_resource(&mgmt.api.store);

    // Settle.
    let settle = Instant::now();
    if heal_at.take().is_some() {
        edge.partition(false);
        last_heal = Some(Instant::now());
    }
    let mut repairs = Vec::new();
    if let Some((v, false)) = st.model {
        let files = model_files(v + 1, 0.95);
        let paths: Vec<String> = files.iter().map(|f| f.0.clone()).collect();
        let sha = repo.commit(files, "model: fix forward".into()).await?;
        repo.announce(&sha, &paths).await?;
        repairs.push("the last model rollout was bad: a good version committed".to_string());
    }
    // A bad model-server change left last is rolled back and reverted by the policy.
    let serving = st.serving;
    let _ = until(120, "the model server settled", || {
        let (apps, policies) = (apps.clone(), policies.clone());
        async move {
            Ok(serving_settled(&apps, &policies, serving)
                .await
                .then_some(()))
        }
    })
    .await;
    observe_rollbacks(&policies, &mut st.rollbacks).await;
    repair_failed_reverts(&repo, &apps, &mut st).await?;
    // A model server still suspended after that is reported and resumed by hand.
    if let Ok(a) = apps.get("model-serving-production").await {
        let a = &a.data;
        if !s(a, "/metadata/annotations/mooring.dev~1auto-sync-suspended").is_empty() {
            let why = a
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|c| c.iter().find(|c| s(c, "/type") == "AutoSyncSuspended"))
                .map(|c| s(c, "/message").to_string())
                .unwrap_or_default();
            apps.patch(
                "model-serving-production",
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"metadata": {"annotations": {"mooring.dev/auto-sync-suspended": null}}}),
                ),
            )
            .await?;
            repairs.push(format!(
                "the model server was still suspended after its last change ({why}): automated sync resumed by hand"
            ));
        }
    }
    let head = repo.head().await?;
    repo.announce(&head, &[]).await?;
    for n in &names {
        controller.ctx.refresh(&format!("{ns}/{n}"));
    }
    let converged = until(180, "every app Synced and Healthy at Git's head", || {
        let apps = apps.clone();
        let head = head.clone();
        let n = names.len();
        let ctx = controller.ctx.clone();
        let names = names.clone();
        async move {
            let (done, _) = count_converged(&apps, &head).await?;
            if done < n {
                // The poll would get there too; a refresh now and then is quicker.
                for name in &names {
                    ctx.enqueue(&format!("{ns}/{name}"));
                }
            }
            Ok((done == n).then_some(()))
        }
    })
    .await;
    let settled_in = settle.elapsed();
    // Watches cut by the partitions come back (kube-runtime's watcher retries with a
    // backoff of up to about 30 s): wait for edge's count to return to its level before
    // the first event, for at most 40 s.
    let baseline = samples.first().map(|x| x.watches_edge).unwrap_or(0.0) as usize;
    let edge_store = edge.api.store.clone();
    let rewatched = until(40, "edge's watches back", || {
        let n = edge_store.watchers();
        async move { Ok((n >= baseline).then_some(())) }
    })
    .await
    .is_ok();
    let watch_line = match (last_heal, rewatched) {
        (None, _) => format!(
            "edge watches: {} (edge never partitioned)",
            edge.api.store.watchers()
        ),
        (Some(h), true) => format!(
            "edge watches: back to {} of {baseline} {:.0} s after the last heal",
            edge.api.store.watchers(),
            h.elapsed().as_secs_f64()
        ),
        (Some(h), false) => format!(
            "edge watches: {} of {baseline} {:.0} s after the last heal (not all re-established)",
            edge.api.store.watchers(),
            h.elapsed().as_secs_f64()
        ),
    };
    let (done, stragglers) = count_converged(&apps, &head).await?;

    // Report.
    println!(
        "events: {} in {} simulated ({:.0} s wall): {}",
        st.counts.values().sum::<usize>(),
        hms(events_wall.as_secs_f64() * speed),
        events_wall.as_secs_f64(),
        st.counts
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let phases = |p: &str| st.rollbacks.values().filter(|(ph, _)| ph == p).count();
    println!(
        "rollback policy: {} rollbacks; gitRevert pushed {}, failed {}, other {}",
        st.rollbacks.len(),
        phases("Pushed"),
        phases("Failed"),
        st.rollbacks.len() - phases("Pushed") - phases("Failed")
    );
    for (at, (phase, message)) in &st.rollbacks {
        if phase != "Pushed" {
            println!("  rollback at {at}: gitRevert {phase:?} {message}");
        }
    }
    if !st.repaired.is_empty() {
        println!(
            "  {} failed revert(s) repaired as an operator would: a good model-server version committed, automated sync resumed by hand",
            st.repaired.len()
        );
    }
    for r in &repairs {
        println!("settle: {r}");
    }
    print_samples(&samples);
    let after = Sample {
        wall: started.elapsed().as_secs_f64(),
        sim: started.elapsed().as_secs_f64() * speed,
        rss_mib: proc_status_mib("VmRSS:"),
        cpu_s: proc_cpu_seconds("self"),
        fds: open_fds(),
        queue: controller
            .ctx
            .metrics
            .workqueue_depth(mooring_controller::metrics::APP_QUEUE) as f64,
        watches_mgmt: mgmt.api.store.watchers() as f64,
        watches_edge: edge.api.store.watchers() as f64,
        tasks: tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks() as f64,
        objects: mgmt.api.store.object_count() as f64,
    };
    println!(
        "{:>9} {:>7.0} {:>8.1} {:>6} {:>5.0} {:>6.0} {:>10.0} {:>10.0} {:>6.0} {:>8.0}  (after settling, not judged)",
        hms(after.sim), after.wall, after.rss_mib, "", after.fds, after.queue,
        after.watches_mgmt, after.watches_edge, after.tasks, after.objects
    );
    let changed: Vec<String> = objects_after
        .iter()
        .filter(|(r, n)| objects_before.get(*r) != Some(*n))
        .map(|(r, n)| format!("{r} {}→{n}", objects_before.get(r).copied().unwrap_or(0)))
        .collect();
    println!(
        "management objects by resource, start → end of events (changed only): {}",
        if changed.is_empty() {
            "none".to_string()
        } else {
            changed.join(", ")
        }
    );
    println!("{watch_line}");
    let leaks = print_trends(&samples, speed);
    match converged {
        Ok(()) => println!(
            "converged: all {done} apps Synced+Healthy at {} ({:.1} s after the last event)",
            &head[..head.len().min(12)],
            settled_in.as_secs_f64()
        ),
        Err(_) => {
            println!(
                "NOT converged: {done} of {} apps Synced+Healthy at {}; not: {}",
                names.len(),
                &head[..head.len().min(12)],
                stragglers.join("; ")
            );
        }
    }
    println!(
        "peak RSS {:.0} MiB; CPU {:.1} s in {:.0} s wall",
        proc_status_mib("VmHWM:"),
        proc_cpu_seconds("self"),
        started.elapsed().as_secs_f64()
    );
    web.abort();
    drop(controller);
    drop(prom);
    edge.stop();
    mgmt.stop();
    if done < names.len() {
        bail!("not every app converged after the soak");
    }
    if opts.fail_on_leak && !leaks.is_empty() {
        bail!("growing after warm-up: {}", leaks.join(", "));
    }
    Ok(())
}

/// After a rollback whose revert failed, the model server stays suspended (on whatever
/// the rollback synced): do what its operator would, once per rollback — commit a good
/// version and remove the suspension annotation.
async fn repair_failed_reverts(
    repo: &Repo,
    apps: &Api<DynamicObject>,
    st: &mut State,
) -> anyhow::Result<()> {
    let failed: Vec<String> = st
        .rollbacks
        .iter()
        .filter(|(at, (phase, _))| phase == "Failed" && !st.repaired.contains(*at))
        .map(|(at, _)| at.clone())
        .collect();
    if failed.is_empty() {
        return Ok(());
    }
    st.version += 1;
    let files = serving_files(&format!("0.00{}", 1 + st.version % 9))?;
    let paths: Vec<String> = files.iter().map(|f| f.0.clone()).collect();
    let sha = repo
        .commit(
            files,
            "model server: fix forward after a failed revert".into(),
        )
        .await?;
    repo.announce(&sha, &paths).await?;
    apps.patch(
        "model-serving-production",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"metadata": {"annotations": {"mooring.dev/auto-sync-suspended": null}}}),
        ),
    )
    .await?;
    st.serving = Some((Instant::now(), false));
    st.repaired.extend(failed);
    Ok(())
}

/// Record the policy's latest rollback and its revert's outcome.
async fn observe_rollbacks(
    policies: &Api<DynamicObject>,
    seen: &mut std::collections::BTreeMap<String, (String, String)>,
) {
    let Ok(p) = policies.get("model-serving-production").await else {
        return;
    };
    let at = s(&p.data, "/status/applications/0/lastRollback/at");
    if at.is_empty() {
        return;
    }
    let revert = p
        .data
        .pointer("/status/applications/0/gitRevert")
        .filter(|r| s(r, "/rollbackAt") == at);
    seen.insert(
        at.to_string(),
        (
            revert.map(|r| s(r, "/phase")).unwrap_or("none").to_string(),
            revert
                .map(|r| s(r, "/message"))
                .unwrap_or_default()
                .to_string(),
        ),
    );
}

/// How many apps are Synced and Healthy at `head` with no operation running, and a
/// line for each of the others.
async fn count_converged(
    apps: &Api<DynamicObject>,
    head: &str,
) -> anyhow::Result<(usize, Vec<String>)> {
    let list = apps.list(&Default::default()).await?;
    let mut done = 0;
    let mut not = Vec::new();
    for a in &list.items {
        let v = &a.data;
        let ok = s(v, "/status/sync/status") == "Synced"
            && s(v, "/status/health/status") == "Healthy"
            && s(v, "/status/sync/revision") == head;
        if ok {
            done += 1;
        } else {
            not.push(format!(
                "{} {}/{} at {}",
                a.metadata.name.as_deref().unwrap_or_default(),
                s(v, "/status/sync/status"),
                s(v, "/status/health/status"),
                &s(v, "/status/sync/revision")[..s(v, "/status/sync/revision").len().min(12)]
            ));
        }
    }
    Ok((done, not))
}

/// Whether the model's last rollout is over: the Rollout runs the committed version and
/// is Healthy (promoted) or Degraded (aborted).
async fn model_settled(rollouts: &Api<DynamicObject>, last: Option<(u64, bool)>) -> bool {
    let Some((v, _)) = last else {
        return true;
    };
    let Ok(r) = rollouts.get("model").await else {
        return false;
    };
    let r = &r.data;
    let image = r
        .pointer("/spec/template/spec/containers/0/image")
        .and_then(Value::as_str)
        .unwrap_or_default();
    image.ends_with(&format!(":{v}"))
        && matches!(s(r, "/status/phase"), "Healthy" | "Degraded")
        && (s(r, "/status/phase") == "Degraded"
            || s(r, "/status/currentPodHash") == s(r, "/status/stableRS"))
}

/// Whether the model server's last change is over: a good one once the app is Synced
/// and Healthy; a bad one once the policy fired after it and its revert failed, or was
/// pushed and automated sync has resumed — or after two minutes whatever happened.
async fn serving_settled(
    apps: &Api<DynamicObject>,
    policies: &Api<DynamicObject>,
    last: Option<(Instant, bool)>,
) -> bool {
    let Some((at, bad)) = last else {
        return true;
    };
    if at.elapsed() > Duration::from_secs(120) {
        return true;
    }
    let Ok(a) = apps.get("model-serving-production").await else {
        return false;
    };
    let a = &a.data;
    let app_ok = s(a, "/status/sync/status") == "Synced"
        && s(a, "/status/health/status") == "Healthy"
        && s(a, "/metadata/annotations/mooring.dev~1auto-sync-suspended").is_empty();
    if !bad {
        return app_ok;
    }
    let Ok(p) = policies.get("model-serving-production").await else {
        return false;
    };
    let p = &p.data;
    let fired = mooring_core::time::parse(s(p, "/status/applications/0/lastRollback/at"))
        .ok()
        .and_then(|t| Duration::try_from(mooring_core::time::now().duration_since(t)).ok())
        .is_some_and(|ago| ago < at.elapsed());
    // A failed revert is repaired by the event loop ([`repair_failed_reverts`]).
    let phase = s(p, "/status/applications/0/gitRevert/phase");
    fired && (phase == "Failed" || (phase == "Pushed" && app_ok))
}

fn print_samples(samples: &[Sample]) {
    println!();
    println!("samples ({} taken; condensed):", samples.len());
    println!(
        "{:>9} {:>7} {:>8} {:>6} {:>5} {:>6} {:>10} {:>10} {:>6} {:>8}",
        "SIM",
        "WALL s",
        "RSS MiB",
        "CPU %",
        "FDS",
        "QUEUE",
        "WATCH mgmt",
        "WATCH edge",
        "TASKS",
        "OBJECTS"
    );
    let rows = 12usize;
    let n = samples.len();
    let mut shown: Vec<usize> = if n <= rows {
        (0..n).collect()
    } else {
        (0..rows).map(|k| k * (n - 1) / (rows - 1)).collect()
    };
    shown.dedup();
    for i in shown {
        let x = &samples[i];
        let cpu = cpu_percent(samples, i);
        println!(
            "{:>9} {:>7.0} {:>8.1} {:>6.0} {:>5.0} {:>6.0} {:>10.0} {:>10.0} {:>6.0} {:>8.0}",
            hms(x.sim),
            x.wall,
            x.rss_mib,
            cpu,
            x.fds,
            x.queue,
            x.watches_mgmt,
            x.watches_edge,
            x.tasks,
            x.objects
        );
    }
}

/// CPU used between sample `i - 1` and `i`, in % of one core (NaN for the first).
fn cpu_percent(samples: &[Sample], i: usize) -> f64 {
    if i == 0 {
        return f64::NAN;
    }
    let (a, b) = (&samples[i - 1], &samples[i]);
    (b.cpu_s - a.cpu_s) / (b.wall - a.wall).max(1e-9) * 100.0
}

/// The trend table (see the module doc); the names of the growing series.
fn print_trends(samples: &[Sample], speed: f64) -> Vec<&'static str> {
    let skip = ((samples.len() as f64) * WARM_UP).ceil() as usize;
    // CPU % needs a previous sample.
    let judged: Vec<usize> = (skip.max(1)..samples.len()).collect();
    println!();
    if judged.len() < 5 {
        println!(
            "trend: too few samples after warm-up ({} of {}) to judge; run longer",
            judged.len(),
            samples.len()
        );
        return Vec::new();
    }
    let hours: Vec<f64> = judged.iter().map(|&i| samples[i].sim / 3600.0).collect();
    let col = |f: fn(&Sample) -> f64| judged.iter().map(|&i| f(&samples[i])).collect::<Vec<_>>();
    let series = [
        Series {
            name: "rss",
            unit: "MiB",
            floor: 8.0,
            values: col(|x| x.rss_mib),
        },
        Series {
            name: "cpu",
            unit: "% core",
            floor: 5.0,
            values: judged.iter().map(|&i| cpu_percent(samples, i)).collect(),
        },
        Series {
            name: "fds",
            unit: "fds",
            floor: 5.0,
            values: col(|x| x.fds),
        },
        Series {
            name: "queue",
            unit: "keys",
            floor: 3.0,
            values: col(|x| x.queue),
        },
        Series {
            name: "watches mgmt",
            unit: "watches",
            floor: 2.0,
            values: col(|x| x.watches_mgmt),
        },
        Series {
            name: "watches edge",
            unit: "watches",
            floor: 2.0,
            values: col(|x| x.watches_edge),
        },
        Series {
            name: "tasks",
            unit: "tasks",
            floor: 20.0,
            values: col(|x| x.tasks),
        },
        Series {
            name: "objects",
            unit: "objects",
            floor: 50.0,
            values: col(|x| x.objects),
        },
    ];
    println!(
        "trend after warm-up ({} of {} samples dropped; {} judged over {} simulated at speed {speed}); growing = slope ≥ {MIN_T} standard errors above 0, and a fitted rise ≥ {:.0} % of the mean and ≥ the series' floor:",
        skip.max(1),
        samples.len(),
        judged.len(),
        hms((hours.last().copied().unwrap_or(0.0) - hours[0]) * 3600.0),
        MIN_RELATIVE_RISE * 100.0
    );
    println!(
        "{:<13} {:>10} {:>10} {:>14} {:>10} {:>8} {:>7}  VERDICT",
        "SERIES", "FIRST", "LAST", "SLOPE/SIM h", "RISE", "RISE %", "t"
    );
    let mut leaks = Vec::new();
    for s in &series {
        let tr = trend(&hours, &s.values, s.floor);
        let verdict = if tr.growing { "growing" } else { "flat" };
        println!(
            "{:<13} {:>10.1} {:>10.1} {:>14} {:>10.1} {:>7.1}% {:>7.1}  {verdict}",
            s.name,
            s.values[0],
            s.values[s.values.len() - 1],
            format!("{:+.1} {}", tr.slope_per_hour, s.unit),
            tr.rise,
            tr.relative * 100.0,
            tr.t
        );
        if tr.growing {
            leaks.push(s.name);
        }
    }
    for l in &leaks {
        println!("LEAK? {l} grows after warm-up (see the trend table)");
    }
    if leaks.is_empty() {
        println!("no series grows after warm-up");
    }
    leaks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_noisy_series_is_not_growing() {
        let t: Vec<f64> = (0..50).map(|i| i as f64 / 50.0).collect();
        let y: Vec<f64> = (0..50)
            .map(|i| 100.0 + if i % 2 == 0 { 3.0 } else { -3.0 })
            .collect();
        assert!(!trend(&t, &y, 8.0).growing);
    }

    #[test]
    fn a_steady_rise_is_growing_and_a_small_one_is_not() {
        let t: Vec<f64> = (0..50).map(|i| i as f64 / 50.0).collect();
        let y: Vec<f64> = (0..50).map(|i| 100.0 + i as f64).collect();
        let tr = trend(&t, &y, 8.0);
        assert!(tr.growing);
        assert!((tr.slope_per_hour - 50.0).abs() < 1e-6);
        let tiny: Vec<f64> = (0..50).map(|i| 100.0 + i as f64 * 0.01).collect();
        assert!(!trend(&t, &tiny, 8.0).growing, "under the floor");
    }

    #[test]
    fn durations_parse_in_go_syntax() {
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("0s").is_err());
    }
}
