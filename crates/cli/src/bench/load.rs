//! `mooring bench load --apps N --writers C --seconds S --rounds R`: the three servers of
//! one `mooring up` — the REST API, the Git webhook and the embedded API server — under
//! bounded concurrent load from 127.0.0.1, while the controller keeps N applications
//! reconciled; and what that load costs the GitOps loop itself.
//!
//! The other benchmarks measure one server alone on a quiet process. In production they
//! share one process and its cores: a UI polling the API, CI pushing webhooks and kubectl
//! users all compete with the controller. This benchmark puts them together:
//!
//! 1. setup as `bench gitops` ([`super::gitops::Loop`]): a Git repository, the embedded
//!    cluster, a controller, N 10-resource apps (`fleet-*`, folder `app/`) converged, plus
//!    the measured app `bench` (folder `bench/`, so its commits concern it alone); the
//!    REST API and the webhook served exactly as `mooring up` composes them, with a
//!    webhook secret and the admin token;
//! 2. commit → webhook → converged of `bench`, R commits, idle;
//! 3. C concurrent clients for S seconds, each a keep-alive client of its own (the REST
//!    API and webhook through one connection pool, the API server through a kube-rs
//!    client, as separate processes would), each cycling through a fixed mix:
//!    - REST reads: `GET /api/v1/applications` (the full list, one cycle in four),
//!      one app, its resource tree;
//!    - REST writes: `GET /api/v1/applications/NAME?refresh=normal` (a patch of the app,
//!      which the controller then reconciles: the fleet's apps are refreshed throughout);
//!    - webhook: a GitHub push signed with the secret, of a commit that changed a file
//!      no application deploys (`docs/`): verified, matched against every app, none
//!      refreshed (a push storm concerning the whole fleet would measure the controller's
//!      queue, not the server: see docs/reliability.md ("Load"));
//!    - kube reads: ConfigMaps and Deployments listed by label selector (in a namespace,
//!      and a first page of 100 across all), one ConfigMap;
//!    - kube writes: ConfigMaps created, then merge-patched, in a scratch namespace;
//!    - watches: a ConfigMap watch from resourceVersion 0 (an informer's start) opened,
//!      read until its initial events arrive, held 100 ms and closed;
//!
//!    and, during them, up to R commits → converged of `bench` (the load lasts until the
//!    commit in flight at S seconds has converged, so each is measured under load).
//!
//! Every request is timed whole (its body read). Any non-2xx answer or connection error
//! is an error: under a bounded load there must be none, so the command fails when there
//! is one, printing the first few. It prints per class requests, requests/s, p50, p99
//! and errors, and commit → converged p50 idle and under load. Figures are recorded in
//! docs/reliability.md ("Load").

use super::gitops::{converged, percentile, push_body, Loop};
use anyhow::{bail, Context as _};
use futures::StreamExt;
use mooring_k8s::k8s_openapi::api::apps::v1::Deployment;
use mooring_k8s::k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use mooring_k8s::kube;
use mooring_k8s::kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchParams};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The namespace the kube writes create their ConfigMaps in.
const SCRATCH: &str = "load-scratch";

/// How long a load request may take before it counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The request classes of the table, in its order.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Class {
    RestRead,
    RestWrite,
    Webhook,
    KubeRead,
    KubeWrite,
    Watch,
}

const CLASSES: [Class; 6] = [
    Class::RestRead,
    Class::RestWrite,
    Class::Webhook,
    Class::KubeRead,
    Class::KubeWrite,
    Class::Watch,
];

impl Class {
    fn label(self) -> &'static str {
        match self {
            Class::RestRead => "REST read",
            Class::RestWrite => "REST write",
            Class::Webhook => "webhook",
            Class::KubeRead => "kube read",
            Class::KubeWrite => "kube write",
            Class::Watch => "watch",
        }
    }
}

/// One request of the mix.
#[derive(Clone, Copy, Debug)]
enum Op {
    ListApps,
    GetApp,
    ResourceTree,
    Refresh,
    Push,
    ListConfigMaps,
    GetConfigMap,
    ListDeployments,
    CreateConfigMap,
    PatchConfigMap,
    Watch,
}

impl Op {
    fn class(self) -> Class {
        match self {
            Op::ListApps | Op::GetApp | Op::ResourceTree => Class::RestRead,
            Op::Refresh => Class::RestWrite,
            Op::Push => Class::Webhook,
            Op::ListConfigMaps | Op::GetConfigMap | Op::ListDeployments => Class::KubeRead,
            Op::CreateConfigMap | Op::PatchConfigMap => Class::KubeWrite,
            Op::Watch => Class::Watch,
        }
    }
}

/// A client's cycle: 6 REST reads, 1 REST write, 2 pushes, 6 kube reads, 3 kube writes,
/// 2 watches in 20 requests. Each client starts at another place in it.
const MIX: [Op; 20] = [
    Op::ListApps,
    Op::ListConfigMaps,
    Op::GetApp,
    Op::CreateConfigMap,
    Op::ResourceTree,
    Op::Push,
    Op::GetConfigMap,
    Op::Watch,
    Op::GetApp,
    Op::ListDeployments,
    Op::CreateConfigMap,
    Op::Refresh,
    Op::ListConfigMaps,
    Op::GetApp,
    Op::PatchConfigMap,
    Op::GetConfigMap,
    Op::ResourceTree,
    Op::Push,
    Op::ListConfigMaps,
    Op::Watch,
];

/// Latencies and errors of one class.
#[derive(Default)]
struct Tally {
    lat: Vec<Duration>,
    errors: usize,
}

/// What a client (or all of them) measured.
#[derive(Default)]
struct Stats {
    by_class: [Tally; 6],
    /// The first errors, for the report.
    samples: Vec<String>,
}

impl Stats {
    fn record(&mut self, class: Class, took: Duration, result: Result<(), String>) {
        let i = CLASSES.iter().position(|c| *c == class).unwrap_or(0);
        self.by_class[i].lat.push(took);
        if let Err(e) = result {
            self.by_class[i].errors += 1;
            if self.samples.len() < 5 {
                self.samples.push(format!("{}: {e}", class.label()));
            }
        }
    }

    fn merge(&mut self, other: Stats) {
        for (a, b) in self.by_class.iter_mut().zip(other.by_class) {
            a.lat.extend(b.lat);
            a.errors += b.errors;
        }
        for s in other.samples {
            if self.samples.len() < 5 {
                self.samples.push(s);
            }
        }
    }
}

/// A keep-alive HTTP/1.1 client of the REST API and the webhook: kube-rs's client (the
/// binary has it; hyper with a connection pool underneath) pointed at the server's
/// plain-HTTP address, used for raw requests.
#[derive(Clone)]
struct Http {
    client: kube::Client,
}

impl Http {
    fn new(addr: SocketAddr) -> anyhow::Result<Self> {
        let url: http::Uri = format!("http://{addr}")
            .parse()
            .context("the server's address as a URL")?;
        let client = kube::Client::try_from(kube::Config::new(url))
            .context("building the REST API client")?;
        Ok(Http { client })
    }

    /// Send a request and read the whole answer: `Err` for a non-2xx status or a
    /// connection error.
    async fn call(&self, req: http::Request<Vec<u8>>) -> Result<(), String> {
        let what = format!("{} {}", req.method(), req.uri());
        let res = self
            .client
            .send(req.map(kube::client::Body::from))
            .await
            .map_err(|e| format!("{what}: {e}"))?;
        let status = res.status();
        let body = res
            .into_body()
            .collect_bytes()
            .await
            .map_err(|e| format!("{what}: reading the answer: {e}"))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            return Err(format!(
                "{what}: {status}: {}",
                text.chars().take(200).collect::<String>()
            ));
        }
        Ok(())
    }

    async fn get(&self, path: &str, token: &str) -> Result<(), String> {
        let req = http::Request::get(path)
            .header("Authorization", format!("Bearer {token}"))
            .body(Vec::new())
            .map_err(|e| format!("GET {path}: {e}"))?;
        self.call(req).await
    }

    /// A GitHub push, signed with `secret`.
    async fn push(&self, body: Vec<u8>, secret: &str) -> Result<(), String> {
        let req = http::Request::post("/api/webhook")
            .header("Content-Type", "application/json")
            .header("X-GitHub-Event", "push")
            .header(
                "X-Hub-Signature-256",
                mooring_source::webhook::github_signature(secret, &body),
            )
            .body(body)
            .map_err(|e| format!("POST /api/webhook: {e}"))?;
        self.call(req).await
    }
}

/// What every client shares.
struct Shared {
    token: String,
    secret: String,
    /// A push concerning no application, signed per request.
    push: Vec<u8>,
    n_apps: usize,
    stop: AtomicBool,
}

/// One client: its own connection pools, cycling through [`MIX`] until told to stop.
async fn client(n: usize, http: Http, kube_client: kube::Client, shared: Arc<Shared>) -> Stats {
    let mut stats = Stats::default();
    let scratch: Api<ConfigMap> = Api::namespaced(kube_client.clone(), SCRATCH);
    let mut created = 0usize;
    let mut i = 0usize;
    while !shared.stop.load(Ordering::Relaxed) {
        let mut op = MIX[(n + i) % MIX.len()];
        // The full list is the heaviest request: one cycle in four.
        if matches!(op, Op::ListApps) && !(i / MIX.len()).is_multiple_of(4) {
            op = Op::GetApp;
        }
        // A patch needs a ConfigMap of this client's.
        if matches!(op, Op::PatchConfigMap) && created == 0 {
            op = Op::CreateConfigMap;
        }
        // Spread the reads over the fleet.
        let k = (n.wrapping_mul(7919) + i.wrapping_mul(104_729)) % shared.n_apps.max(1);
        let app = format!("fleet-{k}");
        let ns: Api<ConfigMap> = Api::namespaced(kube_client.clone(), &app);
        let t = Instant::now();
        let mut opened = None;
        let work = async {
            match op {
                Op::ListApps => http.get("/api/v1/applications", &shared.token).await,
                Op::GetApp => {
                    http.get(&format!("/api/v1/applications/{app}"), &shared.token)
                        .await
                }
                Op::ResourceTree => {
                    http.get(
                        &format!("/api/v1/applications/{app}/resource-tree"),
                        &shared.token,
                    )
                    .await
                }
                Op::Refresh => {
                    http.get(
                        &format!("/api/v1/applications/{app}?refresh=normal"),
                        &shared.token,
                    )
                    .await
                }
                Op::Push => http.push(shared.push.clone(), &shared.secret).await,
                Op::ListConfigMaps => ns
                    .list(&ListParams::default().labels("tier=config"))
                    .await
                    .map_err(|e| format!("list ConfigMaps in {app}: {e}"))
                    .and_then(|l| expect_items(l.items.len(), 9, "ConfigMaps")),
                Op::GetConfigMap => ns
                    .get("cm-3")
                    .await
                    .map(drop)
                    .map_err(|e| format!("get {app}/cm-3: {e}")),
                Op::ListDeployments => {
                    let all: Api<Deployment> = Api::all(kube_client.clone());
                    let here: Api<Deployment> = Api::namespaced(kube_client.clone(), &app);
                    let params = ListParams::default().labels("app=server");
                    // One in two: a first page across all namespaces.
                    let list = if i.is_multiple_of(2) {
                        all.list(&params.limit(100)).await
                    } else {
                        here.list(&params).await
                    };
                    list.map_err(|e| format!("list Deployments: {e}"))
                        .and_then(|l| expect_items(l.items.len(), 1, "Deployments"))
                }
                Op::CreateConfigMap => {
                    created += 1;
                    scratch
                        .create(
                            &PostParams::default(),
                            &super::cm(&format!("c{n}-{created}"), created),
                        )
                        .await
                        .map(drop)
                        .map_err(|e| format!("create {SCRATCH}/c{n}-{created}: {e}"))
                }
                Op::PatchConfigMap => {
                    let name = format!("c{n}-{}", 1 + i % created);
                    scratch
                        .patch(
                            &name,
                            &PatchParams::default(),
                            &Patch::Merge(json!({"data": {"patched": i.to_string()}})),
                        )
                        .await
                        .map(drop)
                        .map_err(|e| format!("patch {SCRATCH}/{name}: {e}"))
                }
                Op::Watch => watch(&ns, &app, t, &mut opened).await,
            }
        };
        let result = match tokio::time::timeout(REQUEST_TIMEOUT, work).await {
            Ok(r) => r,
            Err(_) => Err(format!("{op:?}: no answer within {REQUEST_TIMEOUT:?}")),
        };
        // A watch is timed until its initial events arrived (then it is held open).
        let took = opened.unwrap_or_else(|| t.elapsed());
        stats.record(op.class(), took, result);
        i += 1;
    }
    stats
}

/// At least `min` items (the fleet's objects are there: fewer means a wrong answer).
fn expect_items(got: usize, min: usize, what: &str) -> Result<(), String> {
    if got < min {
        return Err(format!("{got} {what} listed, expected at least {min}"));
    }
    Ok(())
}

/// Open a watch of the app's ConfigMaps from resourceVersion 0, read its initial events
/// (the 9 ConfigMaps: `opened` is then set to the time since `t`), hold it 100 ms and
/// close it.
async fn watch(
    ns: &Api<ConfigMap>,
    app: &str,
    t: Instant,
    opened: &mut Option<Duration>,
) -> Result<(), String> {
    let params = WatchParams::default().labels("tier=config").timeout(60);
    let mut stream = ns
        .watch(&params, "0")
        .await
        .map_err(|e| format!("watch ConfigMaps in {app}: {e}"))?
        .boxed();
    let mut seen = 0;
    while seen < 9 {
        match stream.next().await {
            Some(Ok(kube::api::WatchEvent::Added(_))) => seen += 1,
            Some(Ok(kube::api::WatchEvent::Error(e))) => {
                return Err(format!("watch ConfigMaps in {app}: {e:?}"))
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(format!("watch ConfigMaps in {app}: {e}")),
            None => return Err(format!("watch of {app} ended after {seen} events")),
        }
    }
    *opened = Some(t.elapsed());
    let _ = tokio::time::timeout(Duration::from_millis(100), async {
        while stream.next().await.is_some() {}
    })
    .await;
    Ok(())
}

/// How long a commit may take to converge before the benchmark gives up on it (idle: an
/// error; under load: reported as such, the load ends).
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(60);

/// Commit version `version` of `bench/`, push it to the webhook (signed), and wait until
/// `bench` is Synced and Healthy at that commit: the time from the push, `None` when it
/// did not converge within [`CONVERGE_TIMEOUT`].
async fn commit_to_converged(
    lp: &Loop,
    http: &Http,
    secret: &str,
    version: usize,
) -> anyhow::Result<Option<Duration>> {
    let sha = lp.commit("bench", version)?;
    let body = push_body(&sha, "bench/cm-0.yaml")?;
    let t = Instant::now();
    http.push(body, secret)
        .await
        .map_err(|e| anyhow::anyhow!("pushing commit {version}: {e}"))?;
    while !converged(&lp.apps, "bench", Some(&sha)).await? {
        if t.elapsed() > CONVERGE_TIMEOUT {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(Some(t.elapsed()))
}

pub async fn run(
    n_apps: usize,
    clients: usize,
    secs: u64,
    rounds: usize,
    split: bool,
) -> anyhow::Result<()> {
    let (secs, clients, rounds) = (secs.clamp(1, 60), clients.max(1), rounds.max(1));
    let started = Instant::now();
    let lp = Loop::start(split).await?;
    let namespace = mooring_core::app::CONTROL_PLANE_NAMESPACE;
    let token = mooring_server::store::Store::new(lp.client.clone(), namespace)
        .ensure_admin_token()
        .await?
        .context("a fresh cluster issues the first admin token")?;
    let secret = mooring_server::auth::generate_token();
    let router = crate::components::server::router(
        mooring_server::Backend::InProcess(lp.controller.ctx.clone()),
        lp.client.clone(),
        Default::default(),
        Some(secret.clone()),
        false,
        false,
        None,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        {
            tracing::error!("load benchmark's server: {e}");
        }
    });
    Api::<Namespace>::all(lp.client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": SCRATCH}}))?,
        )
        .await
        .with_context(|| format!("creating namespace {SCRATCH}"))?;

    // The measured app, in a folder of its own, then the fleet.
    lp.commit("bench", 0)?;
    let mut bench = super::gitops::app("bench", "bench", super::gitops::REMOTE)?;
    bench.data["spec"]["source"]["path"] = json!("bench");
    lp.apps.create(&PostParams::default(), &bench).await?;
    lp.create_fleet(n_apps).await?;
    eprintln!(
        "setup: {} apps Synced and Healthy after {:.1} s",
        n_apps + 1,
        started.elapsed().as_secs_f64()
    );
    let head = crate::up::git(lp.repo.path(), &["rev-parse", "HEAD"])?;
    let shared = Arc::new(Shared {
        token,
        secret: secret.clone(),
        push: push_body(&head, "docs/README.md")?,
        n_apps,
        stop: AtomicBool::new(false),
    });

    // Commit → converged, idle.
    let hook = Http::new(addr)?;
    let mut idle = Vec::new();
    for v in 1..=rounds {
        match commit_to_converged(&lp, &hook, &secret, v).await? {
            Some(d) => idle.push(d),
            None => {
                bail!("commit {v} of bench/ did not converge within {CONVERGE_TIMEOUT:?} (idle)")
            }
        }
    }

    // The load, and commits during it.
    let mut tasks = Vec::new();
    for n in 0..clients {
        let kube_client = mooring_k8s::client_from_kubeconfig(&lp.kubeconfig).await?;
        tasks.push(tokio::spawn(client(
            n,
            Http::new(addr)?,
            kube_client,
            shared.clone(),
        )));
    }
    let (reconciles_before, _) = lp.controller.ctx.metrics.reconciles();
    let load_start = Instant::now();
    let (mut loaded, mut stuck) = (Vec::new(), 0);
    let mut v = rounds;
    while load_start.elapsed() < Duration::from_secs(secs) && loaded.len() < rounds {
        v += 1;
        match commit_to_converged(&lp, &hook, &secret, v).await? {
            Some(d) => loaded.push(d),
            None => {
                stuck += 1;
                break;
            }
        }
    }
    let remaining = Duration::from_secs(secs).saturating_sub(load_start.elapsed());
    tokio::time::sleep(remaining).await;
    shared.stop.store(true, Ordering::Relaxed);
    let mut stats = Stats::default();
    for t in tasks {
        stats.merge(t.await.context("a load client")?);
    }
    let load_secs = load_start.elapsed().as_secs_f64();
    let reconciles = lp.controller.ctx.metrics.reconciles().0 - reconciles_before;

    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
    println!(
        "{clients} clients from 127.0.0.1 for {load_secs:.1} s, {n_apps} apps (+ the measured one)"
    );
    println!(
        "{:<11} {:>9} {:>8} {:>10} {:>10} {:>14}",
        "CLASS", "REQUESTS", "RPS", "P50", "P99", "ERRORS"
    );
    let (mut total, mut errors) = (0, 0);
    for (class, t) in CLASSES.iter().zip(stats.by_class.iter_mut()) {
        let n = t.lat.len();
        total += n;
        errors += t.errors;
        println!(
            "{:<11} {:>9} {:>8.0} {:>10} {:>10} {:>14}",
            class.label(),
            n,
            n as f64 / load_secs,
            ms(percentile(&mut t.lat, 0.5)),
            ms(percentile(&mut t.lat, 0.99)),
            format!(
                "{} ({:.2}%)",
                t.errors,
                100.0 * t.errors as f64 / n.max(1) as f64
            )
        );
    }
    println!(
        "{:<11} {:>9} {:>8.0} {:>10} {:>10} {:>14}",
        "total",
        total,
        total as f64 / load_secs,
        "",
        "",
        format!(
            "{errors} ({:.2}%)",
            100.0 * errors as f64 / total.max(1) as f64
        )
    );
    let under_load = match (loaded.len(), stuck) {
        (0, _) => format!("none within {} s", CONVERGE_TIMEOUT.as_secs()),
        (n, 0) => format!("{} ({n} commits)", ms(percentile(&mut loaded, 0.5))),
        (n, _) => format!(
            "{} ({n} commits; the next not within {} s)",
            ms(percentile(&mut loaded, 0.5)),
            CONVERGE_TIMEOUT.as_secs()
        ),
    };
    println!(
        "commit → webhook → Synced+Healthy p50: idle {} ({} commits), under load {under_load}",
        ms(percentile(&mut idle, 0.5)),
        idle.len(),
    );
    println!(
        "controller reconciles during the load: {reconciles} ({:.0}/s)",
        reconciles as f64 / load_secs
    );
    lp.stop();
    if errors > 0 {
        for s in &stats.samples {
            eprintln!("error: {s}");
        }
        bail!("{errors} of {total} requests failed under a bounded load");
    }
    Ok(())
}
