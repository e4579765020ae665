//! `mooring bench gitops`: the GitOps loop's figures, in-process and on loopback: a Git
//! repository (git CLI, file://), the embedded cluster, the controller and the webhook
//! endpoint, driven the way users drive them.
//!
//! - commit → converged: commit, POST a GitHub-style push to the webhook, wait until the
//!   app reports the commit as Synced and Healthy (10-resource app);
//! - drift → healed: change a managed object behind Mooring's back, wait until restored;
//! - a full refresh pass over N applications of 10 resources each: time and peak RSS.
//!
//! With `--split-cluster` the embedded cluster (management and destination: the apps
//! deploy in-cluster) runs in a child process (`mooring cluster start`, this binary) and
//! only the controller and the webhook run in the benchmark's process, so its peak RSS is
//! the controller's alone (plus the benchmark's small driver); the child's is reported
//! too. The child is killed when the benchmark ends, however it ends ([`ChildCluster`]).
//!
//! The setup — repository, cluster, controller ([`Loop`]), the fleet of applications
//! ([`Loop::create_fleet`]) and a commit ([`Loop::commit`], [`push_body`]) — is shared
//! with `mooring bench load` (`load.rs`), which measures the same loop under request load.

use super::{proc_cpu_seconds, proc_status_mib};
use crate::up::git;
use anyhow::bail;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use mooring_k8s::kube;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

/// The 10-resource app in `folder` of the repository: nine ConfigMaps (`cm-0` carries
/// `version`) and a Deployment, labelled so that label selectors have something to select.
pub(crate) fn write_app(dir: &std::path::Path, folder: &str, version: usize) -> anyhow::Result<()> {
    let app = dir.join(folder);
    std::fs::create_dir_all(&app)?;
    for i in 0..9 {
        let v = if i == 0 { version } else { 0 };
        std::fs::write(
            app.join(format!("cm-{i}.yaml")),
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i}, labels: {{tier: config}}}}\ndata: {{version: \"{v}\"}}\n"),
        )?;
    }
    std::fs::write(
        app.join("deployment.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: server, labels: {app: server}}\nspec:\n  replicas: 1\n  selector: {matchLabels: {app: server}}\n  template:\n    metadata: {labels: {app: server}}\n    spec:\n      containers: [{name: s, image: registry.local/server:1}]\n",
    )?;
    Ok(())
}

pub(crate) fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    if v.is_empty() {
        return Duration::ZERO;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// An automated Application of the app in `app/` of [`REMOTE`], deployed to `ns`.
pub(crate) fn app(name: &str, ns: &str, remote: &str) -> anyhow::Result<DynamicObject> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": name, "namespace": "argocd"},
        "spec": {"project": "default", "source": {"repoURL": remote, "targetRevision": "main", "path": "app"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": ns},
            "syncPolicy": {"automated": {"prune": true, "selfHeal": true}, "syncOptions": ["CreateNamespace=true"]}}
    }))?)
}

/// Whether app `name` is Synced and Healthy (at `revision`, when given).
pub(crate) async fn converged(
    apps: &Api<DynamicObject>,
    name: &str,
    revision: Option<&str>,
) -> anyhow::Result<bool> {
    let a = serde_json::to_value(apps.get(name).await?)?;
    let s = |p: &str| {
        a.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    Ok(s("/status/sync/status") == "Synced"
        && s("/status/health/status") == "Healthy"
        && revision.is_none_or(|r| s("/status/sync/revision") == r))
}

/// Where the embedded cluster runs: in this process, or in a child process.
enum Env {
    InProcess(mooring_apiserver::Cluster),
    Child(ChildCluster),
}

/// `mooring cluster start` as a child process, killed on drop (also when the benchmark
/// fails half-way), with its data in a temporary directory.
struct ChildCluster {
    child: tokio::process::Child,
    kubeconfig: std::path::PathBuf,
    _data: tempfile::TempDir,
}

impl ChildCluster {
    async fn start(speed: f64) -> anyhow::Result<Self> {
        let data = tempfile::tempdir()?;
        let exe = std::env::current_exe()?;
        let mut child = tokio::process::Command::new(exe)
            .args(["cluster", "start", "--name", "bench", "--port", "0"])
            .arg("--data-dir")
            .arg(data.path())
            .args(["--speed", &speed.to_string()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let Some(stdout) = child.stdout.take() else {
            bail!("the child cluster has no stdout");
        };
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let wait = async {
            while let Some(line) = lines.next_line().await? {
                if let Some(path) = line.strip_prefix("kubeconfig: ") {
                    return Ok(std::path::PathBuf::from(path));
                }
            }
            bail!("the child cluster exited before printing its kubeconfig")
        };
        let kubeconfig = tokio::time::timeout(Duration::from_secs(60), wait)
            .await
            .map_err(|_| anyhow::anyhow!("the child cluster did not start within 60 s"))??;
        // Keep reading its stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(ChildCluster {
            child,
            kubeconfig,
            _data: data,
        })
    }

    /// CPU seconds the child has used (NaN once it is gone or off Linux).
    fn cpu_seconds(&self) -> f64 {
        self.child
            .id()
            .map(|pid| proc_cpu_seconds(&pid.to_string()))
            .unwrap_or(f64::NAN)
    }

    /// The child's peak RSS in MiB (NaN once it is gone or off Linux).
    fn peak_rss_mib(&self) -> f64 {
        self.child
            .id()
            .map(|pid| super::proc_status_mib_of(&format!("/proc/{pid}/status"), "VmHWM:"))
            .unwrap_or(f64::NAN)
    }
}

/// Install Mooring's CRDs into a cluster through its API (server-side apply), as
/// `mooring crds | kubectl apply --server-side -f -` would.
pub(crate) async fn install_crds(client: &kube::Client) -> anyhow::Result<()> {
    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &kube::core::ApiResource::erase::<
            mooring_k8s::k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
        >(&()),
    );
    for crd in mooring_k8s::crds::all() {
        let name = crd
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        crds.patch(
            &name,
            &PatchParams::apply("mooring-bench").force(),
            &Patch::Apply(&crd),
        )
        .await?;
    }
    Ok(())
}

/// How many Applications in the control-plane namespace are Synced and Healthy, and how
/// many there are, read page by page (500 a page) so the benchmark's own memory stays
/// small next to the controller's.
async fn count_converged(apps: &Api<DynamicObject>) -> anyhow::Result<(usize, usize)> {
    let (mut done, mut all) = (0, 0);
    let mut params = kube::api::ListParams::default().limit(500);
    loop {
        let page = apps.list(&params).await?;
        all += page.items.len();
        done += page
            .items
            .iter()
            .filter(|o| {
                let s = |k: &str| {
                    o.data
                        .pointer(&format!("/status/{k}/status"))
                        .and_then(Value::as_str)
                };
                s("sync") == Some("Synced") && s("health") == Some("Healthy")
            })
            .count();
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => params = params.continue_token(&c),
            None => return Ok((done, all)),
        }
    }
}

/// The repository URL the benchmark's applications name; the controller reads it from
/// the local repository (`file://`, a repository alias).
pub(crate) const REMOTE: &str = "https://git.example.com/bench/platform.git";

/// The GitOps loop under measurement: a Git repository (git CLI, `app/` committed at
/// version 0) behind [`REMOTE`], the embedded cluster (in this process or a child, at
/// simulation speed 20, SQLite on disk as `mooring up` keeps it) and a controller
/// (Git polled hourly: only webhooks and refreshes trigger it). Stop it with
/// [`Loop::stop`]: the controller first, then the cluster.
pub(crate) struct Loop {
    pub(crate) repo: tempfile::TempDir,
    pub(crate) kubeconfig: std::path::PathBuf,
    pub(crate) client: kube::Client,
    /// Applications in the control-plane namespace.
    pub(crate) apps: Api<DynamicObject>,
    pub(crate) controller: mooring_controller::Controller,
    env: Env,
    _cache: tempfile::TempDir,
    _cluster_dir: tempfile::TempDir,
}

impl Loop {
    pub(crate) async fn start(split: bool) -> anyhow::Result<Self> {
        let repo = tempfile::tempdir()?;
        git(repo.path(), &["init", "-q", "-b", "main"])?;
        write_app(repo.path(), "app", 0)?;
        git(repo.path(), &["add", "-A"])?;
        git(repo.path(), &["commit", "-q", "-m", "v0"])?;
        let speed = 20.0;
        // SQLite on disk, as `mooring up` keeps it (in memory it would be a second copy of
        // every object in the process whose memory is measured).
        let cluster_dir = tempfile::tempdir()?;
        let env = if split {
            Env::Child(ChildCluster::start(speed).await?)
        } else {
            Env::InProcess(
                mooring_apiserver::Cluster::start(mooring_apiserver::ClusterOptions {
                    sim: mooring_apiserver::sim::SimOptions {
                        speed,
                        ..Default::default()
                    },
                    crds: mooring_k8s::crds::all(),
                    data_dir: Some(cluster_dir.path().to_path_buf()),
                    ..Default::default()
                })
                .await?,
            )
        };
        let kubeconfig = match &env {
            Env::InProcess(c) => c.kubeconfig_path().to_path_buf(),
            Env::Child(c) => c.kubeconfig.clone(),
        };
        let client = mooring_k8s::client_from_kubeconfig(&kubeconfig).await?;
        if split {
            install_crds(&client).await?;
        }
        let cache = tempfile::tempdir()?;
        let controller = mooring_controller::Controller::start(
            client.clone(),
            mooring_controller::ControllerOptions {
                cache_dir: cache.path().to_path_buf(),
                poll: Duration::from_secs(3600),
                operation_poll: Duration::from_millis(50),
                repo_aliases: vec![(REMOTE.into(), format!("file://{}", repo.path().display()))],
                ..Default::default()
            },
        )
        .await?;
        let apps = Api::namespaced_with(
            client.clone(),
            mooring_core::app::CONTROL_PLANE_NAMESPACE,
            &mooring_k8s::resources::application_resource(),
        );
        Ok(Loop {
            repo,
            kubeconfig,
            client,
            apps,
            controller,
            env,
            _cache: cache,
            _cluster_dir: cluster_dir,
        })
    }

    /// Write version `version` of the app in `folder` and commit it: the new commit.
    pub(crate) fn commit(&self, folder: &str, version: usize) -> anyhow::Result<String> {
        write_app(self.repo.path(), folder, version)?;
        git(self.repo.path(), &["add", "-A"])?;
        git(
            self.repo.path(),
            &["commit", "-q", "-m", &format!("{folder} v{version}")],
        )?;
        git(self.repo.path(), &["rev-parse", "HEAD"])
    }

    /// Create `n` applications of `app/` (`fleet-0` … in namespaces of the same names)
    /// and wait until every application of the namespace is Synced and Healthy.
    pub(crate) async fn create_fleet(&self, n: usize) -> anyhow::Result<()> {
        let t = Instant::now();
        for i in 0..n {
            self.apps
                .create(
                    &PostParams::default(),
                    &app(&format!("fleet-{i}"), &format!("fleet-{i}"), REMOTE)?,
                )
                .await?;
        }
        loop {
            let (done, all) = count_converged(&self.apps).await?;
            if done == all {
                return Ok(());
            }
            if t.elapsed() > Duration::from_secs(3600) {
                bail!("only {done} of {all} apps converged");
            }
            // Each look reads every Application: not so often that the benchmark's own
            // reading weighs on the figure it measures (500 ms at 1,000 apps, 5 s at
            // 10,000).
            tokio::time::sleep(Duration::from_millis((n as u64 / 2).clamp(500, 5000))).await;
        }
    }

    /// The controller first, then the cluster (a child cluster is killed on drop).
    pub(crate) fn stop(self) {
        let Loop {
            controller, env, ..
        } = self;
        drop(controller);
        if let Env::InProcess(cluster) = env {
            cluster.stop();
        }
    }
}

/// A GitHub push of commit `sha` of [`REMOTE`] that modified `file` (only the apps
/// whose path holds it are refreshed).
pub(crate) fn push_body(sha: &str, file: &str) -> anyhow::Result<Vec<u8>> {
    Ok(serde_json::to_vec(
        &json!({"ref": "refs/heads/main", "after": sha,
        "repository": {"clone_url": REMOTE, "html_url": REMOTE.trim_end_matches(".git")},
        "commits": [{"modified": [file], "added": [], "removed": []}]}),
    )?)
}

pub async fn run(n_apps: usize, rounds: usize, split: bool) -> anyhow::Result<()> {
    let lp = Loop::start(split).await?;
    let (client, apps, controller, env) = (&lp.client, &lp.apps, &lp.controller, &lp.env);
    let remote = REMOTE;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let hook_addr = listener.local_addr()?;
    let router = mooring_server::router(controller.ctx.clone(), Default::default());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    // Right after the CRDs are applied (split mode), the kind may take a moment to be
    // served.
    let t = Instant::now();
    while let Err(e) = apps
        .create(&PostParams::default(), &app("bench", "bench", remote)?)
        .await
    {
        if t.elapsed() > Duration::from_secs(30) {
            bail!("creating the benchmark app: {e}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let t = Instant::now();
    while !converged(apps, "bench", None).await? {
        if t.elapsed() > Duration::from_secs(120) {
            bail!("the benchmark app did not converge");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = t.elapsed();

    // Commit → webhook → converged.
    let mut commit_lat = Vec::new();
    for i in 1..=rounds {
        let sha = lp.commit("app", i)?;
        let payload = push_body(&sha, "app/cm-0.yaml")?;
        let t = Instant::now();
        post_webhook(hook_addr, &payload).await?;
        while !converged(apps, "bench", Some(&sha)).await? {
            if t.elapsed() > Duration::from_secs(60) {
                bail!("commit {i} did not converge");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        commit_lat.push(t.elapsed());
    }

    // Drift → healed.
    let cms: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "bench",
        &kube::core::ApiResource::erase::<mooring_k8s::k8s_openapi::api::core::v1::ConfigMap>(&()),
    );
    let mut heal_lat = Vec::new();
    for i in 0..rounds {
        let t = Instant::now();
        cms.patch(
            "cm-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"version": format!("drift-{i}")}})),
        )
        .await?;
        loop {
            let c = cms.get("cm-1").await?;
            if c.data["data"]["version"] == "0" {
                break;
            }
            if t.elapsed() > Duration::from_secs(30) {
                bail!("drift {i} was not healed");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        heal_lat.push(t.elapsed());
    }

    // Many applications: initial convergence, then one full refresh pass.
    let cluster_cpu = || match env {
        Env::Child(c) => c.cpu_seconds(),
        Env::InProcess(_) => 0.0,
    };
    let cpu = || (proc_cpu_seconds("self"), cluster_cpu());
    let cpu_start = cpu();
    let t = Instant::now();
    lp.create_fleet(n_apps).await?;
    let fleet_converge = t.elapsed();
    let cpu_fleet = cpu();
    // The pass starts from a quiet controller (Pods becoming Ready, the last status
    // writes): reconciles of anything else would be counted as the pass's.
    let mut last = controller.ctx.metrics.reconciles().0;
    let t = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = controller.ctx.metrics.reconciles().0;
        if now == last || t.elapsed() > Duration::from_secs(120) {
            break;
        }
        last = now;
    }
    let cpu_converged = cpu();
    let (before, _) = controller.ctx.metrics.reconciles();
    let t = Instant::now();
    for i in 0..n_apps {
        controller.ctx.refresh(&format!(
            "{}/fleet-{i}",
            mooring_core::app::CONTROL_PLANE_NAMESPACE
        ));
    }
    while controller.ctx.metrics.reconciles().0 < before + n_apps as u64 {
        if t.elapsed() > Duration::from_secs(1800) {
            bail!("refresh pass did not finish");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pass = t.elapsed();
    let cpu_pass = cpu();
    // CPU seconds spent in (this process, the cluster's process) between two readings.
    let spent = |a: (f64, f64), b: (f64, f64)| match env {
        Env::InProcess(_) => format!("{:.0} CPU s", b.0 - a.0),
        Env::Child(_) => format!(
            "{:.0} CPU s controller, {:.0} CPU s cluster",
            b.0 - a.0,
            b.1 - a.1
        ),
    };
    let mut rows = vec![
        (
            "first sync of a 10-resource app (sim speed 20)".to_string(),
            format!("{:.0} ms", first.as_secs_f64() * 1e3),
        ),
        (
            format!("commit → webhook → Synced+Healthy ({rounds} commits)"),
            format!(
                "p50 {:.0} ms, p90 {:.0} ms, max {:.0} ms",
                percentile(&mut commit_lat, 0.5).as_secs_f64() * 1e3,
                percentile(&mut commit_lat, 0.9).as_secs_f64() * 1e3,
                percentile(&mut commit_lat, 1.0).as_secs_f64() * 1e3
            ),
        ),
        (
            format!("drift → healed ({rounds} drifts)"),
            format!(
                "p50 {:.0} ms, p90 {:.0} ms, max {:.0} ms",
                percentile(&mut heal_lat, 0.5).as_secs_f64() * 1e3,
                percentile(&mut heal_lat, 0.9).as_secs_f64() * 1e3,
                percentile(&mut heal_lat, 1.0).as_secs_f64() * 1e3
            ),
        ),
        (
            format!("{n_apps} apps × 10 resources: created → all Synced+Healthy"),
            format!(
                "{:.1} s ({})",
                fleet_converge.as_secs_f64(),
                spent(cpu_start, cpu_fleet)
            ),
        ),
        (
            format!("full refresh pass over {n_apps} apps"),
            format!(
                "{:.2} s ({:.1} ms/app; {})",
                pass.as_secs_f64(),
                pass.as_secs_f64() * 1e3 / n_apps as f64,
                spent(cpu_converged, cpu_pass)
            ),
        ),
    ];
    match env {
        Env::InProcess(_) => rows.push((
            "peak RSS (cluster + controller in one process)".to_string(),
            format!("{:.0} MiB", proc_status_mib("VmHWM:")),
        )),
        Env::Child(c) => {
            rows.push((
                "peak RSS, controller alone (cluster in another process)".to_string(),
                format!("{:.0} MiB", proc_status_mib("VmHWM:")),
            ));
            rows.push((
                "peak RSS of the cluster process".to_string(),
                format!("{:.0} MiB", c.peak_rss_mib()),
            ));
        }
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(10);
    println!("{:width$}  RESULT", "FIGURE");
    for (k, v) in rows {
        println!("{k:width$}  {v}");
    }
    lp.stop();
    Ok(())
}

/// POST a GitHub push event to the webhook endpoint at `addr`.
pub(super) async fn post_webhook(addr: std::net::SocketAddr, body: &[u8]) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let head = format!(
        "POST /api/webhook HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nX-GitHub-Event: push\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body).await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    if !out.starts_with(b"HTTP/1.1 200") {
        bail!("webhook answered: {}", String::from_utf8_lossy(&out));
    }
    Ok(())
}
