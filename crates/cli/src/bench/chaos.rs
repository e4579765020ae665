//! `mooring bench chaos --kills N --seed S`: Mooring's reliability as figures (issue 20).
//!
//! Real processes on 127.0.0.1: the management cluster (`mooring cluster start`, SQLite
//! on disk), a destination cluster registered by a cluster Secret, one or more controllers
//! (`mooring controller`, sharded with `--replicas`), Git over smart HTTP (`git
//! http-backend`), and a webhook receiver for notifications. Git, the destination cluster
//! and the receiver sit behind fault proxies this process controls.
//!
//! The workload is what a platform team runs: Applications with a PreSync hook Job, two
//! sync waves, an object pruned on every commit, automated sync with retry, and an
//! `on-sync-succeeded` notification. Each round commits a new version of every app and
//! injects one `kill -9` (of a controller at a random moment, while a hook runs, while a
//! wave is applied, or of the API server), often together with an outage (Git down, slow,
//! answering 500 or truncating packs; the destination cluster partitioned; the receiver
//! answering 500). The controllers also run with crash points armed
//! ([`mooring_controller::crash`]): they abort themselves, as `kill -9` would, inside the
//! windows random kills cannot hit (applied but not recorded, recorded but not finished).
//! Then the round waits until every app is Synced and Healthy at the new commit; that wait
//! is the recovery time of the round's faults.
//!
//! Throughout, a writer makes acknowledged writes to the API server and a poller records
//! every hook Job. At the end it checks the invariants and prints one closing line,
//! `chaos: N faults, M operations, L lost, D duplicated`; any violation is printed with the
//! object concerned and the exit status is 1:
//!
//! - every app ends Synced and Healthy at Git's head, with no operation running;
//! - each sync operation appears once in history (automated sync deploys a revision once;
//!   the same revision twice in an app's history is an operation run twice);
//! - each hook Job is created at most once per operation;
//! - each notification is delivered at most once per `oncePer` value;
//! - no acknowledged API write is lost and resourceVersions never go back;
//! - no component panicked, and no ERROR line lacks a cause.
//!
//! The seed is printed; the same seed replays the same faults at the same points of the
//! workload (timing on a shared machine still varies, and so do the crash points' draws).

use anyhow::{bail, Context as _};
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use mooring_k8s::k8s_openapi::api::batch::v1::Job;
use mooring_k8s::k8s_openapi::api::core::v1::ConfigMap;
use mooring_k8s::kube;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::gitops::percentile;
use crate::up::git;

/// Simulation speed of both clusters (a hook's 20 simulated seconds last one second).
const SPEED: f64 = 20.0;
/// Applications on the management cluster (one more deploys to the destination cluster).
const LOCAL_APPS: usize = 4;
/// The namespace the acknowledged-writes checker writes to.
const ACK_NS: &str = "chaos-acks";
/// The notification service's name in `argocd-notifications-cm`.
const SERVICE: &str = "chaos";

/// What `mooring bench chaos` is asked to do.
pub struct Options {
    /// `kill -9` faults to inject (one per round).
    pub kills: usize,
    /// The seed of every random choice; printed, so a failure replays.
    pub seed: Option<u64>,
    /// Sharded controller replicas (a kill hits one of them).
    pub replicas: u32,
    /// How long a round may take to converge before it is a violation.
    pub timeout: Duration,
    /// Crash points armed in the controllers (`MOORING_CRASH_POINTS`).
    pub crash_points: String,
}

/// A fault class: what was done, for the recovery figures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    /// `kill -9` of a controller at a random moment.
    KillController,
    /// `kill -9` of a controller while a PreSync hook runs.
    KillMidHook,
    /// `kill -9` of a controller while wave 1 is applied or awaited.
    KillMidWave,
    /// `kill -9` of the management cluster's API server.
    KillApiServer,
    /// A controller aborted at a crash point.
    CrashPoint,
    /// Git refuses connections.
    GitDown,
    /// Git answers after seconds.
    GitSlow,
    /// Git answers 500.
    GitErrors,
    /// Git's answers are cut short (truncated packs).
    GitTruncated,
    /// The destination cluster is unreachable (existing connections cut too).
    Partition,
    /// The notification receiver answers 500.
    ReceiverErrors,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::KillController => "kill -9 controller",
            Fault::KillMidHook => "kill -9 controller mid-hook",
            Fault::KillMidWave => "kill -9 controller mid-wave",
            Fault::KillApiServer => "kill -9 API server",
            Fault::CrashPoint => "controller crash point",
            Fault::GitDown => "Git down",
            Fault::GitSlow => "Git slow",
            Fault::GitErrors => "Git 500s",
            Fault::GitTruncated => "Git truncated",
            Fault::Partition => "cluster partition",
            Fault::ReceiverErrors => "receiver 500s",
        }
    }
}

// ---------------------------------------------------------------------------------------
// Fault proxies

/// What a [`Proxy`] does to new connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    Pass = 0,
    /// Close every connection at once (and cut the open ones).
    Down = 1,
    /// Wait seconds before forwarding.
    Slow = 2,
    /// Answer `500 Internal Server Error` (HTTP).
    Errors = 3,
    /// Forward the request, cut the answer after a few hundred bytes.
    Truncate = 4,
}

/// A TCP proxy on 127.0.0.1 in front of a server, with a switchable fault.
struct Proxy {
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
    /// Bumped to cut every open connection.
    cut: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    /// Listen on a free port of 127.0.0.1 and forward to `upstream(port)`.
    async fn start(upstream: impl FnOnce(u16) -> SocketAddr) -> anyhow::Result<Proxy> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let upstream = upstream(addr.port());
        let mode = Arc::new(AtomicU8::new(Mode::Pass as u8));
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let (m, c) = (mode.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mode = m.load(Ordering::SeqCst);
                tokio::spawn(relay(client, upstream, mode, c.subscribe()));
            }
        });
        Ok(Proxy { addr, mode, cut })
    }

    fn set(&self, mode: Mode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
        if mode == Mode::Down {
            self.cut.send_modify(|n| *n += 1);
        }
    }
}

async fn relay(
    mut client: tokio::net::TcpStream,
    upstream: SocketAddr,
    mode: u8,
    mut cut: tokio::sync::watch::Receiver<u64>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if mode == Mode::Down as u8 {
        return;
    }
    if mode == Mode::Errors as u8 {
        let mut buf = vec![0u8; 16 * 1024];
        let _ = tokio::time::timeout(Duration::from_secs(2), client.read(&mut buf)).await;
        let _ = client
            .write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 21\r\nConnection: close\r\n\r\ninjected server error")
            .await;
        return;
    }
    if mode == Mode::Slow as u8 {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
        return;
    };
    cut.mark_unchanged();
    let limit = if mode == Mode::Truncate as u8 {
        300
    } else {
        usize::MAX
    };
    let (mut cr, mut cw) = client.split();
    let (mut sr, mut sw) = server.split();
    let up = tokio::io::copy(&mut cr, &mut sw);
    let down = async {
        let mut sent = 0usize;
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = sr.read(&mut buf).await?;
            if n == 0 || sent >= limit {
                break;
            }
            let n = n.min(limit - sent);
            cw.write_all(&buf[..n]).await?;
            sent += n;
        }
        cw.shutdown().await?;
        Ok::<_, std::io::Error>(())
    };
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        _ = cut.changed() => {}
    }
}

// ---------------------------------------------------------------------------------------
// Processes

/// A Mooring process this run starts, kills and restarts; its output goes to one log.
struct Component {
    name: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    /// Where the log stood when the current process started.
    log_start: u64,
    child: Option<tokio::process::Child>,
}

impl Component {
    fn new(name: &str, args: Vec<String>, log: PathBuf) -> Component {
        Component {
            name: name.to_string(),
            args,
            env: Vec::new(),
            log,
            log_start: 0,
            child: None,
        }
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        self.log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let child = tokio::process::Command::new(std::env::current_exe()?)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", self.name))?;
        self.child = Some(child);
        Ok(())
    }

    /// `kill -9`, and reap it.
    async fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.start_kill();
            let _ = c.wait().await;
        }
    }

    /// Whether it exited by itself (a crash point), reaped.
    fn exited(&mut self) -> bool {
        let gone = self
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
        if gone {
            self.child = None;
        }
        gone
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// What the current (or last) process wrote.
    fn last_log(&self) -> String {
        let all = std::fs::read(&self.log).unwrap_or_default();
        let from = (self.log_start as usize).min(all.len());
        String::from_utf8_lossy(&all[from..]).into_owned()
    }
}

/// Start `mooring cluster start` and wait for its kubeconfig line.
async fn start_cluster(c: &mut Component) -> anyhow::Result<PathBuf> {
    c.spawn()?;
    let t = Instant::now();
    loop {
        if let Some(path) = c
            .log_text()
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("kubeconfig: "))
        {
            return Ok(PathBuf::from(path));
        }
        if c.exited() {
            bail!("{} exited at start:\n{}", c.name, c.log_text());
        }
        if t.elapsed() > Duration::from_secs(60) {
            bail!("{} did not start within 60 s", c.name);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The API server address a kubeconfig names (`https://127.0.0.1:PORT`).
fn server_of(kubeconfig: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(kubeconfig)?;
    let v = mooring_core::yaml::parse_one(&text)?;
    v.pointer("/clusters/0/cluster/server")
        .and_then(Value::as_str)
        .map(str::to_string)
        .context("the kubeconfig names no server")
}

fn port_of(server: &str) -> anyhow::Result<u16> {
    server
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .with_context(|| format!("no port in {server}"))
}

async fn wait_ready(client: &kube::Client, what: &str) -> anyhow::Result<()> {
    let t = Instant::now();
    while client.apiserver_version().await.is_err() {
        if t.elapsed() > Duration::from_secs(60) {
            bail!("{what} did not answer within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The workload

fn write_apps(repo: &Path, version: usize) -> anyhow::Result<()> {
    for name in app_names() {
        let dir = repo.join("apps").join(&name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("hook.yaml"),
            format!(
                "apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  annotations:
    argocd.argoproj.io/hook: PreSync
spec:
  backoffLimit: 0
  template:
    metadata:
      annotations:
        sim.mooring.dev/run-seconds: \"20\"
    spec:
      restartPolicy: Never
      containers:
      - name: migrate
        image: registry.example.com/ml/migrate:v{version}
"
            ),
        )?;
        std::fs::write(
            dir.join("config.yaml"),
            format!(
                "apiVersion: v1
kind: ConfigMap
metadata:
  name: model-config
  annotations:
    argocd.argoproj.io/sync-wave: \"0\"
data:
  version: \"v{version}\"
"
            ),
        )?;
        let parity = if version.is_multiple_of(2) {
            "even"
        } else {
            "odd"
        };
        std::fs::write(
            dir.join("extra.yaml"),
            format!(
                "apiVersion: v1
kind: ConfigMap
metadata:
  name: features-{parity}
data:
  version: \"v{version}\"
"
            ),
        )?;
        std::fs::write(
            dir.join("deployment.yaml"),
            format!(
                "apiVersion: apps/v1
kind: Deployment
metadata:
  name: model-server
  annotations:
    argocd.argoproj.io/sync-wave: \"1\"
spec:
  replicas: 2
  selector:
    matchLabels: {{app: model-server}}
  template:
    metadata:
      labels: {{app: model-server}}
    spec:
      containers:
      - name: server
        image: registry.example.com/ml/model-server:v{version}
        ports: [{{containerPort: 8080}}]
"
            ),
        )?;
    }
    Ok(())
}

fn app_names() -> Vec<String> {
    let mut names: Vec<String> = (0..LOCAL_APPS).map(|k| format!("model-{k}")).collect();
    names.push("model-remote".into());
    names
}

fn application(name: &str, repo_url: &str) -> Value {
    let destination = if name == "model-remote" {
        json!({"name": "dest", "namespace": name})
    } else {
        json!({"server": "https://kubernetes.default.svc", "namespace": name})
    };
    json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": name,
            "namespace": "argocd",
            "annotations": {
                format!("notifications.argoproj.io/subscribe.on-sync-succeeded.{SERVICE}"): "",
            },
        },
        "spec": {
            "project": "default",
            "revisionHistoryLimit": 100_000,
            "source": {"repoURL": repo_url, "path": format!("apps/{name}"), "targetRevision": "main"},
            "destination": destination,
            "syncPolicy": {
                "automated": {"prune": true},
                "syncOptions": ["CreateNamespace=true"],
                "retry": {"limit": 50, "backoff": {"duration": "1s", "factor": 2, "maxDuration": "8s"}},
            },
        },
    })
}

fn notifications_cm(receiver: SocketAddr) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "argocd-notifications-cm", "namespace": "argocd"},
        "data": {
            format!("service.webhook.{SERVICE}"): format!("url: http://{receiver}/\n"),
            "template.chaos-synced": format!(
                "webhook:\n  {SERVICE}:\n    method: POST\n    body: |\n      {{\"app\": \"{{{{.app.metadata.name}}}}\", \"revision\": \"{{{{.app.status.operationState.syncResult.revision}}}}\"}}\n"
            ),
            "trigger.on-sync-succeeded": "- oncePer: app.status.operationState?.syncResult?.revision\n  send: [chaos-synced]\n  when: app.status.operationState != nil and app.status.operationState.phase in ['Succeeded']\n",
        },
    })
}

/// The notification receiver: answers 500 while failing, else records each delivery.
#[derive(Default)]
struct Receiver {
    failing: std::sync::atomic::AtomicBool,
    delivered: Mutex<Vec<Value>>,
}

async fn start_receiver(r: Arc<Receiver>) -> anyhow::Result<SocketAddr> {
    use axum::http::StatusCode;
    let router = axum::Router::new().route(
        "/",
        axum::routing::post(
            |axum::extract::State(r): axum::extract::State<Arc<Receiver>>, body: String| async move {
                if r.failing.load(Ordering::SeqCst) {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                let v = serde_json::from_str(&body).unwrap_or(Value::String(body));
                r.delivered
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(v);
                StatusCode::OK
            },
        ),
    );
    let router = router.with_state(r);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(addr)
}

// ---------------------------------------------------------------------------------------
// Observers

/// What the background observers saw.
#[derive(Default)]
struct Seen {
    /// Acknowledged writes: name → resourceVersion.
    acked: Vec<(String, String)>,
    /// Every hook Job: operation id → Job uids.
    hooks: BTreeMap<String, BTreeSet<String>>,
    /// Every operation seen in an Application's status: id → (app, last phase seen).
    operations: BTreeMap<String, (String, String)>,
    violations: Vec<String>,
}

/// Writes a ConfigMap every 50 ms; records each acknowledged one, and checks that
/// resourceVersions only grow.
async fn ack_writer(client: kube::Client, seen: Arc<Mutex<Seen>>) {
    let cms: Api<ConfigMap> = Api::namespaced(client, ACK_NS);
    let mut max_rv = 0u64;
    for i in 0u64.. {
        let cm: ConfigMap = match serde_json::from_value(json!({
            "metadata": {"name": format!("ack-{i}")}, "data": {"i": i.to_string()}
        })) {
            Ok(cm) => cm,
            Err(_) => return,
        };
        let written = tokio::time::timeout(
            Duration::from_secs(3),
            cms.create(&PostParams::default(), &cm),
        )
        .await;
        if let Ok(Ok(w)) = written {
            let rv = w.metadata.resource_version.unwrap_or_default();
            let mut s = seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Ok(n) = rv.parse::<u64>() {
                if n <= max_rv {
                    s.violations.push(format!(
                        "resourceVersion went back: ConfigMap {ACK_NS}/ack-{i} written at {n} after {max_rv} was acknowledged"
                    ));
                }
                max_rv = max_rv.max(n);
            }
            s.acked.push((format!("ack-{i}"), rv));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Lists Jobs every 200 ms on both clusters, recording hook Jobs by operation id, and
/// the Applications' operations with the last phase seen.
async fn hook_poller(clients: Vec<kube::Client>, apps: Api<DynamicObject>, seen: Arc<Mutex<Seen>>) {
    loop {
        if let Ok(Ok(list)) =
            tokio::time::timeout(Duration::from_secs(3), apps.list(&ListParams::default())).await
        {
            let mut s = seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for a in list.items {
                let Ok(v) = serde_json::to_value(&a) else {
                    continue;
                };
                let field = |p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
                if let (Some(id), Some(phase)) = (
                    field("/status/operationState/id"),
                    field("/status/operationState/phase"),
                ) {
                    let name = a.metadata.name.clone().unwrap_or_default();
                    s.operations.insert(id, (name, phase));
                }
            }
        }
        for c in &clients {
            let jobs: Api<Job> = Api::all(c.clone());
            let Ok(Ok(list)) =
                tokio::time::timeout(Duration::from_secs(3), jobs.list(&ListParams::default()))
                    .await
            else {
                continue;
            };
            let mut s = seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for j in list.items {
                let op = j
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(mooring_controller::operation::OPERATION_ANNOTATION))
                    .cloned();
                if let (Some(op), Some(uid)) = (op, j.metadata.uid) {
                    s.hooks.entry(op).or_default().insert(uid);
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// ---------------------------------------------------------------------------------------
// The run

/// The state of one app as the convergence check reads it.
fn app_state(app: &Value) -> (String, String, String, bool) {
    let s = |p: &str| {
        app.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    (
        s("/status/sync/status"),
        s("/status/health/status"),
        s("/status/sync/revision"),
        app.get("operation").is_some_and(|o| !o.is_null())
            || s("/status/operationState/phase") == "Running",
    )
}

/// Apps not yet Synced+Healthy at `head` with no operation running: name → state.
async fn unconverged(apps: &Api<DynamicObject>, head: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let list = match tokio::time::timeout(Duration::from_secs(3), apps.list(&ListParams::default()))
        .await
    {
        Ok(Ok(l)) => l,
        Ok(Err(e)) => {
            out.insert("*".into(), format!("listing Applications: {e}"));
            return out;
        }
        Err(_) => {
            out.insert("*".into(), "listing Applications timed out".into());
            return out;
        }
    };
    let mut found = BTreeSet::new();
    for a in list.items {
        let name = a.metadata.name.clone().unwrap_or_default();
        let v = serde_json::to_value(&a).unwrap_or(Value::Null);
        let (sync, health, rev, running) = app_state(&v);
        found.insert(name.clone());
        if sync != "Synced" || health != "Healthy" || rev != head || running {
            let msg = v
                .pointer("/status/operationState/message")
                .and_then(Value::as_str)
                .unwrap_or("");
            out.insert(
                name,
                format!(
                    "{sync}/{health} at {}{} ({msg})",
                    rev.get(..7).unwrap_or(&rev),
                    if running { ", operation running" } else { "" }
                ),
            );
        }
    }
    for n in app_names() {
        if !found.contains(&n) {
            out.insert(n, "missing".into());
        }
    }
    out
}

struct Run {
    rng: StdRng,
    api: Component,
    controllers: Vec<Component>,
    git_proxy: Proxy,
    dest_proxy: Proxy,
    receiver: Arc<Receiver>,
    apps: Api<DynamicObject>,
    faults: BTreeMap<Fault, usize>,
    recovery: BTreeMap<Fault, Vec<Duration>>,
    timeout: Duration,
}

impl Run {
    /// Restart any controller that aborted at a crash point; count the faults.
    fn supervise(&mut self) -> anyhow::Result<()> {
        for c in &mut self.controllers {
            if c.exited() {
                let log = c.last_log();
                if !log.contains("mooring: crash point") {
                    bail!("{} exited by itself:\n{log}", c.name);
                }
                *self.faults.entry(Fault::CrashPoint).or_default() += 1;
                c.spawn()?;
            }
        }
        Ok(())
    }

    /// Wait until every app is converged at `head`; `Err` names the ones that are not.
    async fn converge(&mut self, head: &str) -> anyhow::Result<Result<(), String>> {
        let t = Instant::now();
        loop {
            self.supervise()?;
            let left = unconverged(&self.apps, head).await;
            if left.is_empty() {
                return Ok(Ok(()));
            }
            if t.elapsed() > self.timeout {
                let list: Vec<String> = left.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                return Ok(Err(list.join("; ")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Wait (at most `limit`) for any app's operation message to contain `needle`.
    async fn wait_for_message(&mut self, needle: &str, limit: Duration) -> anyhow::Result<()> {
        let t = Instant::now();
        while t.elapsed() < limit {
            self.supervise()?;
            if let Ok(list) = self.apps.list(&ListParams::default()).await {
                let hit = list.items.iter().any(|a| {
                    serde_json::to_value(a).ok().is_some_and(|v| {
                        v.pointer("/status/operationState/message")
                            .and_then(Value::as_str)
                            .is_some_and(|m| m.contains(needle))
                            && app_state(&v).3
                    })
                });
                if hit {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// One outage beside the kill: which, and for how long.
    fn pick_outage(&mut self) -> Option<(Fault, Duration)> {
        if !self.rng.random_bool(0.6) {
            return None;
        }
        let f = match self.rng.random_range(0..6) {
            0 => Fault::GitDown,
            1 => Fault::GitSlow,
            2 => Fault::GitErrors,
            3 => Fault::GitTruncated,
            4 => Fault::Partition,
            _ => Fault::ReceiverErrors,
        };
        Some((f, Duration::from_millis(self.rng.random_range(1000..5000))))
    }

    fn set_outage(&self, f: Fault, on: bool) {
        let mode = |m| if on { m } else { Mode::Pass };
        match f {
            Fault::GitDown => self.git_proxy.set(mode(Mode::Down)),
            Fault::GitSlow => self.git_proxy.set(mode(Mode::Slow)),
            Fault::GitErrors => self.git_proxy.set(mode(Mode::Errors)),
            Fault::GitTruncated => self.git_proxy.set(mode(Mode::Truncate)),
            Fault::Partition => self.dest_proxy.set(mode(Mode::Down)),
            Fault::ReceiverErrors => self.receiver.failing.store(on, Ordering::SeqCst),
            _ => {}
        }
    }

    /// One round: commit, inject, heal, converge. The faults and the recovery time.
    async fn round(&mut self, repo: &Path, version: usize) -> anyhow::Result<(String, String)> {
        write_apps(repo, version)?;
        git(repo, &["add", "-A"])?;
        git(repo, &["commit", "-q", "-m", &format!("model v{version}")])?;
        let head = git(repo, &["rev-parse", "HEAD"])?;
        let kill = match self.rng.random_range(0..10) {
            0..=2 => Fault::KillController,
            3..=4 => Fault::KillMidHook,
            5..=6 => Fault::KillMidWave,
            _ => Fault::KillApiServer,
        };
        let outage = self.pick_outage();
        let delay = Duration::from_millis(self.rng.random_range(0..2500));
        let down = Duration::from_millis(self.rng.random_range(0..1000));
        let victim = self.rng.random_range(0..self.controllers.len());
        let outage_start = Instant::now();
        if let Some((f, _)) = outage {
            self.set_outage(f, true);
        }
        match kill {
            Fault::KillMidHook => {
                self.wait_for_message("PreSync", Duration::from_secs(8))
                    .await?
            }
            Fault::KillMidWave => {
                self.wait_for_message("wave 1", Duration::from_secs(8))
                    .await?
            }
            _ => tokio::time::sleep(delay).await,
        }
        if kill == Fault::KillApiServer {
            self.api.kill9().await;
            tokio::time::sleep(down).await;
            self.api.spawn()?;
        } else {
            self.controllers[victim].kill9().await;
            tokio::time::sleep(down).await;
            self.controllers[victim].spawn()?;
        }
        let kill_healed = Instant::now();
        *self.faults.entry(kill).or_default() += 1;
        let mut described = kill.name().to_string();
        let mut healed = vec![(kill, kill_healed)];
        if let Some((f, d)) = outage {
            let left = d.saturating_sub(outage_start.elapsed());
            tokio::time::sleep(left).await;
            self.set_outage(f, false);
            healed.push((f, Instant::now()));
            *self.faults.entry(f).or_default() += 1;
            described.push_str(&format!(" + {} {:.1}s", f.name(), d.as_secs_f64()));
        }
        let t = Instant::now();
        if let Err(left) = self.converge(&head).await? {
            bail!(
                "round {version} ({described}): not converged at {head} after {:.0} s: {left}",
                self.timeout.as_secs_f64()
            );
        }
        let done = Instant::now();
        for (f, at) in healed {
            self.recovery
                .entry(f)
                .or_default()
                .push(done.saturating_duration_since(at));
        }
        Ok((
            described,
            format!(
                "converged {:.1}s after the last fault",
                t.elapsed().as_secs_f64()
            ),
        ))
    }
}

pub async fn run(o: Options) -> anyhow::Result<ExitCode> {
    mooring_controller::crash::parse(&o.crash_points)
        .map_err(|e| anyhow::anyhow!("--crash-points: {e}"))?;
    let seed = o.seed.unwrap_or_else(rand::random);
    println!(
        "chaos: seed {seed} (replay: mooring bench chaos --kills {} --seed {seed}{})",
        o.kills,
        if o.replicas > 1 {
            format!(" --replicas {}", o.replicas)
        } else {
            String::new()
        }
    );
    let work = tempfile::Builder::new()
        .prefix("mooring-chaos-")
        .tempdir()?;
    let root = work.path().to_path_buf();

    // Git over smart HTTP, behind a fault proxy.
    let served = root.join("git");
    let repo = served.join("platform.git");
    std::fs::create_dir_all(&repo)?;
    git(&repo, &["init", "-q", "-b", "main"])?;
    write_apps(&repo, 0)?;
    git(&repo, &["add", "-A"])?;
    git(&repo, &["commit", "-q", "-m", "model v0"])?;
    let git_server = mooring_testkit::GitHttpServer::start(&served, None)?;
    let git_port = git_server.port();
    let git_proxy = Proxy::start(|_| SocketAddr::from(([127, 0, 0, 1], git_port))).await?;
    let repo_url = format!("http://{}/platform.git", git_proxy.addr);

    // The management cluster (killed and restarted on its port and data directory).
    let cluster_args = |name: &str, port: u16| -> Vec<String> {
        let mut a: Vec<String> = ["cluster", "start", "--name", name, "--speed"]
            .map(String::from)
            .to_vec();
        a.push(SPEED.to_string());
        a.push("--port".into());
        a.push(port.to_string());
        a.push("--data-dir".into());
        a.push(root.join(name).display().to_string());
        a
    };
    let mut api = Component::new(
        "the API server",
        cluster_args("mgmt", 0),
        root.join("mgmt.log"),
    );
    let kubeconfig = start_cluster(&mut api).await?;
    let port = port_of(&server_of(&kubeconfig)?)?;
    api.args = cluster_args("mgmt", port);
    let client = mooring_k8s::client_from_kubeconfig(&kubeconfig).await?;
    wait_ready(&client, "the API server").await?;
    super::gitops::install_crds(&client).await?;

    // The destination cluster, registered through a proxy that can partition it: the
    // cluster listens on 127.0.0.2 at the proxy's port, so the `Host` its clients send
    // (127.0.0.1:PORT) names it and its certificate covers 127.0.0.1.
    let dest_proxy = Proxy::start(|port| SocketAddr::from(([127, 0, 0, 2], port))).await?;
    let mut dest_args = cluster_args("dest", dest_proxy.addr.port());
    dest_args.extend(["--bind-address".into(), "127.0.0.2".into()]);
    let mut dest = Component::new("the destination cluster", dest_args, root.join("dest.log"));
    let dest_kc = start_cluster(&mut dest).await?;
    let dest_server = server_of(&dest_kc)?;
    let proxied_kc = root.join("dest-proxied.kubeconfig");
    std::fs::write(
        &proxied_kc,
        std::fs::read_to_string(&dest_kc)?
            .replace(&dest_server, &format!("https://{}", dest_proxy.addr)),
    )?;
    let dest_client = mooring_k8s::client_from_kubeconfig(&dest_kc).await?;
    wait_ready(&dest_client, "the destination cluster").await?;
    let added = tokio::process::Command::new(std::env::current_exe()?)
        .args(["cluster", "add", "dest", "--name", "dest", "--from"])
        .arg(&proxied_kc)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .output()
        .await?;
    if !added.status.success() {
        bail!(
            "registering the destination cluster: {}",
            String::from_utf8_lossy(&added.stderr)
        );
    }

    // Notifications to a receiver that can fail; loopback opened by the admin.
    let receiver = Arc::new(Receiver::default());
    let receiver_addr = start_receiver(receiver.clone()).await?;
    let cms: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "argocd",
        &kube::core::ApiResource::erase::<ConfigMap>(&()),
    );
    let admin = PatchParams::apply("mooring-chaos").force();
    let settings = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "mooring-cm", "namespace": "argocd"},
        "data": {"outbound.allow": receiver_addr.to_string()},
    });
    cms.patch("mooring-cm", &admin, &Patch::Apply(&settings))
        .await?;
    cms.patch(
        "argocd-notifications-cm",
        &admin,
        &Patch::Apply(&notifications_cm(receiver_addr)),
    )
    .await?;
    let namespaces: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &kube::core::ApiResource::erase::<mooring_k8s::k8s_openapi::api::core::v1::Namespace>(&()),
    );
    namespaces
        .patch(
            ACK_NS,
            &admin,
            &Patch::Apply(
                &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ACK_NS}}),
            ),
        )
        .await?;

    // The controllers, sharded when there are several.
    let mut controllers = Vec::new();
    for k in 0..o.replicas {
        let mut args: Vec<String> = [
            "controller",
            "--metrics-address",
            "127.0.0.1:0",
            "--app-resync",
            "2",
        ]
        .map(String::from)
        .to_vec();
        args.extend(["--kubeconfig".into(), kubeconfig.display().to_string()]);
        args.extend([
            "--cache-dir".into(),
            root.join(format!("cache-{k}")).display().to_string(),
        ]);
        if o.replicas > 1 {
            args.extend([
                "--shards".into(),
                o.replicas.to_string(),
                "--sharding-method".into(),
                "round-robin".into(),
                "--lease-duration".into(),
                "4".into(),
                "--replica".into(),
                format!("mooring-controller-{k}"),
            ]);
        }
        let mut c = Component::new(
            &format!("controller {k}"),
            args,
            root.join(format!("controller-{k}.log")),
        );
        c.env.push((
            mooring_controller::crash::ENV.into(),
            o.crash_points.clone(),
        ));
        c.spawn()?;
        controllers.push(c);
    }

    let apps: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "argocd",
        &mooring_k8s::resources::application_resource(),
    );
    for name in app_names() {
        apps.patch(&name, &admin, &Patch::Apply(&application(&name, &repo_url)))
            .await?;
    }
    let mut run = Run {
        rng: StdRng::seed_from_u64(seed),
        api,
        controllers,
        git_proxy,
        dest_proxy,
        receiver: receiver.clone(),
        apps,
        faults: BTreeMap::new(),
        recovery: BTreeMap::new(),
        timeout: o.timeout,
    };
    let seen = Arc::new(Mutex::new(Seen::default()));
    let writer = tokio::spawn(ack_writer(client.clone(), seen.clone()));
    let poller = tokio::spawn(hook_poller(
        vec![client.clone(), dest_client.clone()],
        run.apps.clone(),
        seen.clone(),
    ));

    let head = git(&repo, &["rev-parse", "HEAD"])?;
    let t = Instant::now();
    let mut failure = match run.converge(&head).await? {
        Ok(()) => {
            println!(
                "chaos: {} apps converged in {:.1}s; {} kills follow",
                app_names().len(),
                t.elapsed().as_secs_f64(),
                o.kills
            );
            None
        }
        Err(left) => Some(format!(
            "the workload did not converge before any fault: {left}"
        )),
    };
    let rounds = if failure.is_none() { o.kills } else { 0 };
    for version in 1..=rounds {
        match run.round(&repo, version).await {
            Ok((faults, outcome)) => {
                println!("round {version}/{}: {faults}: {outcome}", o.kills);
            }
            Err(e) => {
                failure = Some(format!("{e:#}"));
                break;
            }
        }
    }
    writer.abort();
    poller.abort();
    // Let the last deliveries and Job lists land.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let report = check(&run, &seen, &client, failure).await?;

    println!();
    println!(
        "{:<30} {:>6} {:>10} {:>10}",
        "recovery after", "faults", "p50", "p99"
    );
    for (f, n) in &run.faults {
        let mut v = run.recovery.get(f).cloned().unwrap_or_default();
        let (p50, p99) = if v.is_empty() {
            ("-".to_string(), "-".to_string())
        } else {
            (
                format!("{:.2}s", percentile(&mut v, 0.5).as_secs_f64()),
                format!("{:.2}s", percentile(&mut v, 0.99).as_secs_f64()),
            )
        };
        println!("{:<30} {:>6} {:>10} {:>10}", f.name(), n, p50, p99);
    }
    let faults: usize = run.faults.values().sum();
    println!(
        "chaos: {faults} faults, {} operations, {} lost, {} duplicated",
        report.operations, report.lost, report.duplicated
    );
    for c in &mut run.controllers {
        c.kill9().await;
    }
    run.api.kill9().await;
    dest.kill9().await;
    if report.violations.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    for v in &report.violations {
        println!("violation: {v}");
    }
    println!("logs and data kept in {}", keep(work));
    Ok(ExitCode::from(1))
}

/// Keep the run's directory for inspection; its path.
fn keep(work: tempfile::TempDir) -> String {
    work.keep().display().to_string()
}

#[derive(Default)]
struct Report {
    operations: usize,
    lost: usize,
    duplicated: usize,
    violations: Vec<String>,
}

async fn check(
    run: &Run,
    seen: &Mutex<Seen>,
    client: &kube::Client,
    failure: Option<String>,
) -> anyhow::Result<Report> {
    let mut r = Report::default();
    if let Some(f) = failure {
        r.violations.push(f);
    }
    // The observers are stopped: their findings are moved out whole.
    let seen: Seen = std::mem::take(
        &mut *seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    r.violations.extend(seen.violations.iter().cloned());

    // History: each automated operation deploys its revision once.
    let apps = run.apps.list(&ListParams::default()).await?;
    for a in &apps.items {
        let name = a.metadata.name.clone().unwrap_or_default();
        let v = serde_json::to_value(a)?;
        let history = v
            .pointer("/status/history")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        r.operations += history.len();
        let mut by_rev: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for h in &history {
            by_rev
                .entry(h["revision"].as_str().unwrap_or_default().to_string())
                .or_default()
                .push(h["id"].as_i64().unwrap_or(-1));
        }
        for (rev, ids) in by_rev.iter().filter(|(_, ids)| ids.len() > 1) {
            r.duplicated += ids.len() - 1;
            r.violations.push(format!(
                "Application argocd/{name} deployed {rev} {} times (history ids {ids:?})",
                ids.len()
            ));
        }
    }

    // Hooks: one Job per operation.
    for (op, uids) in seen.hooks.iter().filter(|(_, u)| u.len() > 1) {
        r.duplicated += uids.len() - 1;
        r.violations.push(format!(
            "operation {op} created its hook Job {} times (uids {uids:?})",
            uids.len()
        ));
    }

    // ... and every operation that succeeded ran its PreSync hook.
    for (op, (app, phase)) in &seen.operations {
        if phase == "Succeeded" && !seen.hooks.contains_key(op) {
            r.lost += 1;
            r.violations.push(format!(
                "operation {op} of Application argocd/{app} succeeded without running its PreSync hook"
            ));
        }
    }

    // Notifications: at most once per (app, revision).
    let delivered = run
        .receiver
        .delivered
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    let mut per: BTreeMap<(String, String), usize> = BTreeMap::new();
    for d in &delivered {
        let key = (
            d["app"].as_str().unwrap_or_default().to_string(),
            d["revision"].as_str().unwrap_or_default().to_string(),
        );
        *per.entry(key).or_default() += 1;
    }
    for ((app, rev), n) in per.iter().filter(|(_, n)| **n > 1) {
        r.duplicated += n - 1;
        r.violations.push(format!(
            "notification on-sync-succeeded for {app} at {rev} delivered {n} times"
        ));
    }
    // At most once: a delivery whose state was recorded and whose receiver kept failing
    // (or whose controller died before sending) is not retried; counted, not a violation.
    println!(
        "chaos: {} notifications delivered for {} operations ({} not delivered: receiver failing through every attempt, or a crash after the state was recorded); {} hook Jobs seen",
        delivered.len(),
        r.operations,
        r.operations.saturating_sub(per.len()),
        seen.hooks.values().map(BTreeSet::len).sum::<usize>()
    );

    // Acknowledged writes survive every API server kill.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ACK_NS);
    let live: BTreeMap<String, String> = cms
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|c| {
            (
                c.metadata.name.unwrap_or_default(),
                c.metadata.resource_version.unwrap_or_default(),
            )
        })
        .collect();
    for (name, rv) in &seen.acked {
        match live.get(name) {
            None => {
                r.lost += 1;
                r.violations.push(format!(
                    "acknowledged write lost: ConfigMap {ACK_NS}/{name} (resourceVersion {rv})"
                ));
            }
            Some(now) if now != rv => {
                r.lost += 1;
                r.violations.push(format!(
                    "ConfigMap {ACK_NS}/{name} acknowledged at resourceVersion {rv} is now at {now}"
                ));
            }
            Some(_) => {}
        }
    }
    println!(
        "chaos: {} acknowledged API writes checked",
        seen.acked.len()
    );

    // Logs: no panic; every ERROR names a cause.
    let logs = std::iter::once(&run.api).chain(run.controllers.iter());
    for c in logs {
        for line in c.log_text().lines() {
            if line.contains("panicked at") {
                r.violations.push(format!("{} panicked: {line}", c.name));
            } else if let Some((_, rest)) = line.split_once(" ERROR ") {
                // `target: message`; the message must say why (`what: cause`).
                let message = rest.split_once(": ").map_or(rest, |(_, m)| m);
                if !message.contains(": ") {
                    r.violations
                        .push(format!("{}: ERROR without a cause: {line}", c.name));
                }
            }
        }
    }
    Ok(r)
}
