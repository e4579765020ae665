//! `mooring up [REPO]`: the one command that shows everything.
//!
//! It starts an embedded cluster (with Mooring's CRDs), the application controller and
//! the Git webhook endpoint in one process, turns REPO into a local Git repository the
//! controller fetches from, and registers the Applications found at REPO's top level
//! (the app-of-apps of the example). Applications name their real remote (for example
//! `https://git.example.com/ml-platform/platform.git`); `up` maps every such URL to the
//! local repository (git's `insteadOf`), so the manifests work unchanged.
//!
//! When the `prometheus` binary is on PATH (Debian: `apt-get install prometheus`), a real
//! Prometheus is started too, scraping the simulated pod metrics of every embedded
//! cluster; the controller's analysis and RollbackPolicies query it. Without it, `up`
//! says how to install it and carries on.
//!
//! With `--clusters`, the ApplicationSets in `REPO/applicationsets/` are registered too:
//! their clusters generators have a labelled fleet to select (for the example,
//! `--clusters 'prod-us-east:environment=production,workload-type=inference;…'`).

use anyhow::{bail, Context as _};
use mooring_k8s::kube;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How often `up`'s Prometheus scrapes the embedded clusters.
const PROMETHEUS_SCRAPE: Duration = Duration::from_secs(5);

#[derive(clap::Args, Debug)]
pub struct UpArgs {
    /// The platform repository (a directory of manifests; a Git work tree is used as is).
    #[arg(default_value = "examples/ml-platform")]
    pub repo: PathBuf,
    /// Where cluster data, the kubeconfig, Git caches and logs live.
    #[arg(long, default_value = ".mooring")]
    pub data_dir: PathBuf,
    /// API server port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 6443)]
    pub port: u16,
    /// Port on 127.0.0.1 of the HTTP endpoints: REST API (/api/v1), webhook, metrics.
    #[arg(long, default_value_t = 8080)]
    pub webhook_port: u16,
    /// Git poll interval in seconds (Argo CD's default is 180).
    #[arg(long, default_value_t = 15)]
    pub poll: u64,
    /// Simulation speed of the embedded cluster.
    #[arg(long, default_value_t = 4.0)]
    pub speed: f64,
    /// Argo CD-layout directory of custom `health.lua` checks.
    #[arg(long)]
    pub health_dir: Option<PathBuf>,
    /// Extra embedded destination clusters, registered as Argo CD cluster Secrets: a count
    /// (`3`: cluster-1..3) or `NAME[:KEY=VALUE,…]` entries separated by `;` (labels for the
    /// ApplicationSet clusters generator), e.g.
    /// `prod-east:environment=production,workload-type=inference;prod-west:environment=production`.
    /// With a fleet, the ApplicationSets in REPO/applicationsets/ are registered too.
    #[arg(long, value_parser = parse_fleet)]
    pub clusters: Option<Fleet>,
    /// Load-balancer addresses of the embedded clusters (each cluster has its own).
    #[command(flatten)]
    pub load_balancer: crate::embedded::LoadBalancerArgs,
}

/// The extra embedded clusters of `--clusters`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Fleet(pub Vec<FleetMember>);

/// One extra embedded cluster of `--clusters`.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetMember {
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
}

fn parse_fleet(s: &str) -> Result<Fleet, String> {
    if let Ok(n) = s.trim().parse::<usize>() {
        if n > 64 {
            return Err(format!("--clusters {n}: at most 64 embedded clusters"));
        }
        return Ok(Fleet(
            (1..=n)
                .map(|i| FleetMember {
                    name: format!("cluster-{i}"),
                    labels: Default::default(),
                })
                .collect(),
        ));
    }
    let mut out = Vec::new();
    for part in s.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, labels) = part.split_once(':').unwrap_or((part, ""));
        let valid = !name.is_empty()
            && name.len() <= 63
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !valid {
            return Err(format!(
                "cluster name {name:?}: use letters, digits and '-'"
            ));
        }
        let labels = labels
            .split(',')
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(crate::cluster::parse_label)
            .collect::<Result<_, _>>()?;
        out.push(FleetMember {
            name: name.to_string(),
            labels,
        });
    }
    if out.is_empty() {
        return Err("expected a count or NAME[:KEY=VALUE,…];…".into());
    }
    Ok(Fleet(out))
}

/// Run the git CLI in `dir` with a fixed identity; stdout, trimmed.
pub(crate) fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let o = Command::new("git")
        .args([
            "-c",
            "user.name=mooring",
            "-c",
            "user.email=mooring@localhost",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .context("running git (install it: apt-get install git)")?;
    if !o.status.success() {
        bail!(
            "git {args:?} in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let ty = entry.file_type()?;
        let dest = to.join(entry.file_name());
        if ty.is_dir() {
            std::fs::create_dir_all(&dest)?;
            copy_tree(&entry.path(), &dest)?;
        } else if ty.is_file() {
            std::fs::copy(entry.path(), &dest)?;
        }
    }
    Ok(())
}

/// A local Git repository holding REPO's content: REPO itself when it is a Git work-tree
/// root, else a snapshot under the data dir, committed when REPO changed.
fn local_repo(repo: &Path, data_dir: &Path) -> anyhow::Result<PathBuf> {
    let repo = std::fs::canonicalize(repo).with_context(|| {
        format!(
            "{} does not exist (pass the platform repository directory)",
            repo.display()
        )
    })?;
    if repo.join(".git").exists() {
        return Ok(repo);
    }
    let name = repo
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("platform");
    let snap = std::fs::canonicalize(data_dir)?.join("repos").join(name);
    if !snap.join(".git").exists() {
        std::fs::create_dir_all(&snap)?;
        git(&snap, &["init", "-q", "-b", "main"])?;
    }
    // Mirror REPO into the snapshot (deletions included) and commit if anything changed.
    for entry in std::fs::read_dir(&snap)? {
        let entry = entry?;
        if entry.file_name() != ".git" {
            let p = entry.path();
            if entry.file_type()?.is_dir() {
                std::fs::remove_dir_all(&p)?;
            } else {
                std::fs::remove_file(&p)?;
            }
        }
    }
    copy_tree(&repo, &snap)?;
    git(&snap, &["add", "-A"])?;
    if !git(&snap, &["status", "--porcelain"])?.is_empty() {
        git(
            &snap,
            &[
                "commit",
                "-q",
                "-m",
                &format!("snapshot of {}", repo.display()),
            ],
        )?;
    }
    Ok(snap)
}

/// Applications in the top level of the repository (the app-of-apps).
fn top_level_applications(repo: &Path) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(repo)?.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let is_yaml = p
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| x == "yaml" || x == "yml");
        if !is_yaml || !p.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&p)?;
        let docs = mooring_core::yaml::parse_all(&text)
            .with_context(|| format!("parsing {}", p.display()))?;
        out.extend(docs.into_iter().filter(|d| d["kind"] == "Application"));
    }
    Ok(out)
}

/// The ApplicationSets in `REPO/applicationsets/` (registered when `--clusters` starts a
/// fleet for their clusters generators to select).
fn applicationsets(repo: &Path) -> anyhow::Result<Vec<Value>> {
    let dir = repo.join("applicationsets");
    if !dir.is_dir() {
        return Ok(vec![]);
    }
    let mut out = Vec::new();
    for doc in top_level_documents(&dir)? {
        if doc["kind"] == "ApplicationSet" {
            out.push(doc);
        }
    }
    Ok(out)
}

fn top_level_documents(dir: &Path) -> anyhow::Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let is_yaml = p
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| x == "yaml" || x == "yml");
        if !is_yaml || !p.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&p)?;
        out.extend(
            mooring_core::yaml::parse_all(&text)
                .with_context(|| format!("parsing {}", p.display()))?,
        );
    }
    Ok(out)
}

/// Every repoURL named by Applications anywhere in the repository (to alias them).
fn repo_urls(repo: &Path, out: &mut std::collections::BTreeSet<String>) {
    let Ok(entries) = std::fs::read_dir(repo) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.file_name().is_some_and(|n| n == ".git") {
            continue;
        }
        if p.is_dir() {
            repo_urls(&p, out);
        } else if p
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| x == "yaml" || x == "yml")
        {
            let Ok(text) = std::fs::read_to_string(&p) else {
                continue;
            };
            for d in mooring_core::yaml::parse_all(&text).unwrap_or_default() {
                if let Some(u) = d.pointer("/spec/source/repoURL").and_then(Value::as_str) {
                    out.insert(u.to_string());
                }
                if let Some(u) = d
                    .pointer("/spec/template/spec/source/repoURL")
                    .and_then(Value::as_str)
                {
                    out.insert(u.to_string());
                }
            }
        }
    }
}

/// Server-side apply one of the repository's objects (namespace `default` unless it says);
/// returns its name.
async fn apply(
    client: &kube::Client,
    resource: &kube::api::ApiResource,
    obj: &Value,
) -> anyhow::Result<String> {
    let field = |p: &str| obj.pointer(p).and_then(Value::as_str);
    let name = field("/metadata/name").unwrap_or_default().to_string();
    let ns = field("/metadata/namespace").unwrap_or("default");
    kube::api::Api::<kube::api::DynamicObject>::namespaced_with(client.clone(), ns, resource)
        .patch(
            &name,
            &kube::api::PatchParams::apply("mooring-up").force(),
            &kube::api::Patch::Apply(obj),
        )
        .await
        .with_context(|| format!("registering {} {name}", resource.kind))?;
    Ok(name)
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let repo = local_repo(&args.repo, &args.data_dir)?;
    let repo_url = format!("file://{}", repo.display());
    let cluster = mooring_apiserver::Cluster::start(mooring_apiserver::ClusterOptions {
        name: "mooring".into(),
        port: args.port,
        data_dir: Some(args.data_dir.join("cluster")),
        sim: mooring_apiserver::sim::SimOptions {
            speed: args.speed,
            load_balancer: args.load_balancer.addresses(),
            ..Default::default()
        },
        crds: mooring_k8s::crds::all(),
        ..Default::default()
    })
    .await
    .context("starting the embedded cluster")?;
    let kubeconfig = args.data_dir.join("kubeconfig");
    std::fs::copy(cluster.kubeconfig_path(), &kubeconfig).context("writing .mooring/kubeconfig")?;
    let kubeconfig = std::fs::canonicalize(&kubeconfig)?;
    let client = mooring_k8s::client_from_kubeconfig(&kubeconfig).await?;

    let mut urls = std::collections::BTreeSet::new();
    repo_urls(&repo, &mut urls);
    let aliases: Vec<(String, String)> = urls.into_iter().map(|u| (u, repo_url.clone())).collect();
    let settings: kube::api::Api<mooring_k8s::k8s_openapi::api::core::v1::ConfigMap> =
        kube::api::Api::namespaced(client.clone(), "default");
    settings
        .patch(
            crate::app::SETTINGS_CONFIGMAP,
            &kube::api::PatchParams::apply("mooring-up").force(),
            &kube::api::Patch::Apply(serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": crate::app::SETTINGS_CONFIGMAP},
                "data": {"repository.aliases": serde_json::to_string(&aliases)?},
            })),
        )
        .await
        .context("recording settings in the mooring-cm ConfigMap")?;
    // Real Prometheus, when installed, scraping every embedded cluster's simulated pods:
    // the controller (analysis, RollbackPolicies) queries it. Its port is chosen now so
    // the controller knows the address; it starts once every cluster is up.
    let prometheus_binary = mooring_controller::prometheus::LocalPrometheus::find_binary();
    let prometheus_listen = match &prometheus_binary {
        Some(_) => Some(
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .context("choosing a port for Prometheus")?,
        ),
        None => None,
    };
    let controller = mooring_controller::Controller::start(
        client.clone(),
        mooring_controller::ControllerOptions {
            cache_dir: args.data_dir.join("repos-cache"),
            poll: Duration::from_secs(args.poll.max(1)),
            repo_aliases: aliases,
            health_dir: args.health_dir.clone(),
            prometheus_address: prometheus_listen.map(|a| format!("http://{a}")),
            ..Default::default()
        },
    )
    .await
    .context("starting the controller")?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.webhook_port))
        .await
        .with_context(|| {
            format!(
                "listening on 127.0.0.1:{} for webhooks (pick another with --webhook-port)",
                args.webhook_port
            )
        })?;
    let webhook_addr = listener.local_addr()?;
    // No default password: the first admin token is generated now and shown once.
    let admin_token = mooring_server::store::Store::new(client.clone(), "default")
        .ensure_admin_token()
        .await
        .context("issuing the first admin token (Secret mooring-secret)")?;
    let router = mooring_server::router(controller.ctx.clone(), Default::default()).merge(
        mooring_server::api::router(client.clone(), mooring_server::api::ApiOptions::default()),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        {
            tracing::error!("webhook server: {e}");
        }
    });

    // The fleet: extra embedded clusters, registered like any destination.
    let mut fleet = Vec::new();
    for member in args.clusters.iter().flat_map(|f| f.0.iter()) {
        let c = mooring_apiserver::Cluster::start(mooring_apiserver::ClusterOptions {
            name: member.name.clone(),
            port: 0,
            data_dir: Some(args.data_dir.join("clusters").join(&member.name)),
            sim: mooring_apiserver::sim::SimOptions {
                speed: args.speed,
                load_balancer: args.load_balancer.addresses(),
                ..Default::default()
            },
            ..Default::default()
        })
        .await
        .with_context(|| format!("starting embedded cluster {}", member.name))?;
        crate::cluster::register(
            &client,
            "default",
            &mooring_k8s::registry::ClusterEntry {
                project: String::new(),
                name: member.name.clone(),
                server: c.url(),
                config: Default::default(),
                labels: member.labels.clone(),
                annotations: Default::default(),
            },
        )
        .await?;
        fleet.push(c);
    }

    let prometheus = match (prometheus_binary, prometheus_listen) {
        (Some(binary), Some(listen)) => {
            let urls = std::iter::once(cluster.url())
                .chain(fleet.iter().map(|c| c.url()))
                .collect();
            let started = mooring_controller::prometheus::LocalPrometheus::start(
                mooring_controller::prometheus::LocalPrometheusOptions {
                    binary: Some(binary),
                    data_dir: args.data_dir.join("prometheus"),
                    listen: Some(listen),
                    scrape_interval: PROMETHEUS_SCRAPE,
                    cluster_urls: urls,
                },
            )
            .await;
            match started {
                Ok(p) => Ok(p),
                Err(e) => Err(format!("not started: {e}")),
            }
        }
        _ => Err("not found on PATH: install it (`apt-get install prometheus`) for metric analysis and rollback triggers".to_string()),
    };

    let mut names = Vec::new();
    for app in top_level_applications(&repo)? {
        names.push(apply(&client, &mooring_controller::application_resource(), &app).await?);
    }
    let mut set_names = Vec::new();
    if args.clusters.is_some() {
        for set in applicationsets(&repo)? {
            let resource = mooring_controller::applicationset_resource();
            set_names.push(apply(&client, &resource, &set).await?);
        }
    }
    println!("mooring is up");
    println!(
        "  cluster     {} (data in {})",
        cluster.url(),
        args.data_dir.join("cluster").display()
    );
    println!("  kubeconfig  {}", kubeconfig.display());
    println!("  git repo    {repo_url}");
    println!("  webhook     http://{webhook_addr}/api/webhook");
    for (c, member) in fleet
        .iter()
        .zip(args.clusters.iter().flat_map(|f| f.0.iter()))
    {
        let labels: Vec<String> = member
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!(
            "  cluster     {} {} {}",
            member.name,
            c.url(),
            labels.join(",")
        );
    }
    match &prometheus {
        Ok(p) => println!(
            "  prometheus  {} (scraping simulated pod metrics every {}s)",
            p.url(),
            PROMETHEUS_SCRAPE.as_secs()
        ),
        Err(e) => println!("  prometheus  {e}"),
    }
    println!("  api         http://{webhook_addr}/api/v1 (Authorization: Bearer <token>)");
    match &admin_token {
        Some(t) => {
            println!("  admin token {t}");
            println!("              (shown once; stored only as a hash; more with `mooring account generate-token`)");
        }
        None => println!(
            "  admin token issued at first start (new ones: `mooring account generate-token`)"
        ),
    }
    println!(
        "  registered  {}",
        if names.is_empty() {
            "no top-level Application found".into()
        } else {
            names.join(", ")
        }
    );
    if !set_names.is_empty() {
        println!("  appsets     {}", set_names.join(", "));
    }
    println!();
    println!("try:");
    println!("  export KUBECONFIG={}", kubeconfig.display());
    println!("  mooring app list");
    println!(
        "  curl -H \"Authorization: Bearer $TOKEN\" http://{webhook_addr}/api/v1/applications"
    );
    println!("  mooring proj can-i admin sync applications default/<name>");
    println!("  mooring app wait <name> --health --timeout 120");
    println!("  kubectl get deployments -A");
    println!("  (edit and commit in {}; changes are picked up within {}s, or at once with `mooring app get <name> --refresh`)", repo.display(), args.poll);
    println!();
    // Progress: one line per application state change until Ctrl-C.
    let mut last: std::collections::BTreeMap<String, String> = Default::default();
    let list_all = kube::api::Api::<kube::api::DynamicObject>::all_with(
        client.clone(),
        &mooring_controller::application_resource(),
    );
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {
                if let Ok(l) = list_all.list(&Default::default()).await {
                    for o in l.items {
                        let v = serde_json::to_value(&o).unwrap_or(Value::Null);
                        let name = v.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_string();
                        let state = format!(
                            "{} {}",
                            v.pointer("/status/sync/status").and_then(Value::as_str).unwrap_or("Unknown"),
                            v.pointer("/status/health/status").and_then(Value::as_str).unwrap_or("Unknown"),
                        );
                        if last.get(&name) != Some(&state) {
                            println!("  app {name:32} {state}");
                            last.insert(name, state);
                        }
                    }
                }
            }
        }
    }
    drop(controller);
    drop(prometheus);
    for c in fleet {
        c.stop();
    }
    cluster.stop();
    Ok(())
}
