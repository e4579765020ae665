//! `mooring up [REPO]`: the one command that shows everything.
//!
//! It starts an embedded cluster (with Mooring's CRDs and the control-plane namespace,
//! `argocd` by default) and, in the same process, the two components `mooring
//! controller` and `mooring server` run on their own (the same functions:
//! [`crate::components`]) — the application controller, the REST API and the Git webhook
//! endpoint — turns REPO into a local Git repository the controller fetches
//! from, and registers what an Argo CD admin would `kubectl apply` from REPO: every
//! AppProject, then every ApplicationSet, then every Application in REPO's top-level YAML
//! files (and in `applicationsets/`). It prints what it registered and what it skipped
//! and why; restarting it on the same data directory updates them.
//!
//! Sources are fetched as written. A repoURL is served from REPO (git's `insteadOf`)
//! only when REPO *is* that repository ([`aliases`]): one of REPO's Git remotes, a URL
//! given with `--alias`, or — for a plain directory that is not a Git work tree, such as
//! `examples/ml-platform`, whose manifests name a placeholder remote — a URL its manifests
//! name that cannot be reached. Every other repoURL (a second repository over file://,
//! http(s) or ssh) is fetched from where it points, with the repository credentials in
//! the control-plane namespace.
//!
//! When the `prometheus` binary is on PATH (Debian: `apt-get install prometheus`), a real
//! Prometheus is started too, scraping the simulated pod metrics of every embedded
//! cluster; the controller's analysis and RollbackPolicies query it. Without it, `up`
//! says how to install it and carries on.
//!
//! `--clusters` starts a labelled fleet of embedded destination clusters for the
//! ApplicationSets' clusters generators to select (for the example,
//! `--clusters 'prod-us-east:environment=production,workload-type=inference;…'`).
//!
//! The first admin token is issued once everything else has started, and printed then; a
//! start that fails earlier issues none, so the next start shows one.
//!
//! The data directory (`.mooring/`) is its owner's only (0700, tightened when it exists),
//! as is the kubeconfig copy written there (0600): they hold the embedded cluster's
//! database, token and CA key, which open every Secret Mooring keeps.

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
    #[arg(long, value_parser = parse_fleet)]
    pub clusters: Option<Fleet>,
    /// The control-plane namespace: Applications, AppProjects, ApplicationSets, cluster and
    /// repository Secrets and Mooring's settings live (and are read only) there.
    #[arg(long, env = "MOORING_NAMESPACE", default_value = mooring_core::app::CONTROL_PLANE_NAMESPACE)]
    pub namespace: String,
    /// Other namespaces Applications and ApplicationSets may live in ("applications in any
    /// namespace"): comma-separated globs (`team-*`) or `/regex/`; an app there must also
    /// use a project whose `sourceNamespaces` lists its namespace.
    #[arg(long, value_delimiter = ',')]
    pub application_namespaces: Vec<String>,
    /// A repository URL that REPO is (repeatable): Applications naming it are served from
    /// REPO. Without it, REPO stands for its own Git remotes and, when REPO is a plain
    /// directory rather than a Git work tree, for the URLs its manifests name that cannot
    /// be reached; every other repoURL is fetched from where it points.
    #[arg(long = "alias", value_name = "URL")]
    pub aliases: Vec<String>,
    /// Secret of the Git webhooks (GitHub's HMAC secret and GitLab's token): unsigned or
    /// wrongly signed pushes are refused. The `webhook.github.secret` and
    /// `webhook.gitlab.secret` keys of `mooring-secret` in the control-plane namespace
    /// (as in Argo CD's `argocd-secret`) win over it.
    #[arg(long, env = "MOORING_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// `/metrics` requires an API token (401 without one). Without it, anonymous callers
    /// get the aggregate series only, never application names.
    #[arg(long)]
    pub metrics_auth: bool,
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

/// Copy `from` into `to`, leaving out `skip` (the data directory, which holds the copy
/// itself when it lies inside REPO, as with `mooring up .`: copying it would recurse
/// without end).
pub(crate) fn copy_tree(from: &Path, to: &Path, skip: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let ty = entry.file_type()?;
        let dest = to.join(entry.file_name());
        if entry.path() == skip {
            continue;
        }
        if ty.is_dir() {
            std::fs::create_dir_all(&dest)?;
            copy_tree(&entry.path(), &dest, skip)?;
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
    let data_dir = std::fs::canonicalize(data_dir)?;
    let snap = data_dir.join("repos").join(name);
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
    copy_tree(&repo, &snap, &data_dir)?;
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

/// One object `up` registers, with where it came from.
struct Manifest {
    file: String,
    object: Value,
}

/// What REPO holds for `up` to register, and the files it could not read.
#[derive(Default)]
struct Registrations {
    manifests: Vec<Manifest>,
    /// `(file, why)`.
    skipped: Vec<(String, String)>,
}

/// The kinds `up` registers, in the order an Argo CD admin applies them: projects first
/// (an Application whose project is missing is refused until it appears), then the
/// ApplicationSets, then the Applications.
const REGISTERED_KINDS: [&str; 3] = ["AppProject", "ApplicationSet", "Application"];

/// The YAML files `up` reads: REPO's top level, and `applicationsets/` (a common layout).
fn registration_files(repo: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in [repo.to_path_buf(), repo.join("applicationsets")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        entries.sort();
        files.extend(entries.into_iter().filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|x| x.to_str())
                    .is_some_and(|x| x == "yaml" || x == "yml")
        }));
    }
    files
}

/// The AppProjects, ApplicationSets and Applications in REPO's registration files. A file
/// that does not parse is skipped (and reported), the others still count.
fn registrations(repo: &Path) -> Registrations {
    let mut out = Registrations::default();
    for path in registration_files(repo) {
        let file = path
            .strip_prefix(repo)
            .unwrap_or(&path)
            .display()
            .to_string();
        let docs = std::fs::read_to_string(&path)
            .map_err(|e| e.to_string())
            .and_then(|t| mooring_core::yaml::parse_all(&t).map_err(|e| e.to_string()));
        match docs {
            Ok(docs) => out.manifests.extend(
                docs.into_iter()
                    .filter(|d| {
                        d["apiVersion"]
                            .as_str()
                            .is_some_and(|v| v.starts_with("argoproj.io/"))
                            && REGISTERED_KINDS.iter().any(|k| d["kind"] == *k)
                    })
                    .map(|object| Manifest {
                        file: file.clone(),
                        object,
                    }),
            ),
            Err(e) => out.skipped.push((file, format!("does not parse: {e}"))),
        }
    }
    out.manifests.sort_by_key(|m| {
        REGISTERED_KINDS
            .iter()
            .position(|k| m.object["kind"] == *k)
            .unwrap_or(REGISTERED_KINDS.len())
    });
    out
}

/// Every repoURL named anywhere in REPO's Applications and ApplicationSets (`source`,
/// `sources[]`, templates, git generators).
fn repo_urls(repo: &Path, out: &mut std::collections::BTreeSet<String>) {
    fn collect(v: &Value, out: &mut std::collections::BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("repoURL", Value::String(u)) if !u.is_empty() => {
                            out.insert(u.clone());
                        }
                        _ => collect(v, out),
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|v| collect(v, out)),
            _ => {}
        }
    }
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
                if matches!(d["kind"].as_str(), Some("Application" | "ApplicationSet")) {
                    collect(&d["spec"], out);
                }
            }
        }
    }
}

/// Whether a Git URL answers `git ls-remote` within a few seconds (no prompts).
async fn reachable(url: &str) -> bool {
    let probe = tokio::process::Command::new("git")
        .args(["ls-remote", "--exit-code", "--", url, "HEAD"])
        .env("GIT_TERMINAL_PROMPT", "0")
        .env(
            "GIT_SSH_COMMAND",
            "ssh -o BatchMode=yes -o ConnectTimeout=5 -o StrictHostKeyChecking=yes",
        )
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .status();
    matches!(
        tokio::time::timeout(Duration::from_secs(10), probe).await,
        Ok(Ok(status)) if status.success()
    )
}

/// Which repoURLs are served from REPO (see the module docs): its remotes, `--alias`
/// URLs, and — when REPO was a plain directory — the unreachable URLs its manifests name.
async fn aliases(
    repo: &Path,
    source_is_work_tree: bool,
    explicit: &[String],
) -> anyhow::Result<Vec<String>> {
    let mut urls: std::collections::BTreeSet<String> = explicit.iter().cloned().collect();
    if source_is_work_tree {
        for line in git(repo, &["remote", "-v"])?.lines() {
            if let Some(u) = line.split_whitespace().nth(1) {
                urls.insert(u.to_string());
            }
        }
    } else {
        let mut named = std::collections::BTreeSet::new();
        repo_urls(repo, &mut named);
        let probes = named.into_iter().map(|u| async move {
            let reached = reachable(&u).await;
            (u, reached)
        });
        for (u, reached) in futures::future::join_all(probes).await {
            if !reached {
                urls.insert(u);
            }
        }
    }
    Ok(urls.into_iter().collect())
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    // Private: it holds the cluster's database, token and kubeconfig (an existing one is
    // tightened to 0700).
    mooring_apiserver::files::private_dir(&args.data_dir)
        .with_context(|| format!("creating {} (0700)", args.data_dir.display()))?;
    let work_tree = args.repo.join(".git").exists();
    let repo = local_repo(&args.repo, &args.data_dir)?;
    let repo_url = format!("file://{}", repo.display());
    let control_plane = mooring_engine::project::ControlPlane {
        namespace: args.namespace.clone(),
        application_namespaces: args.application_namespaces.clone(),
    };
    control_plane.validate().map_err(anyhow::Error::msg)?;
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
        namespaces: vec![control_plane.namespace.clone()],
        ..Default::default()
    })
    .await
    .context("starting the embedded cluster")?;
    let kubeconfig = args.data_dir.join("kubeconfig");
    let kubeconfig_text = std::fs::read(cluster.kubeconfig_path())
        .with_context(|| format!("reading {}", cluster.kubeconfig_path().display()))?;
    mooring_apiserver::files::write_private(&kubeconfig, &kubeconfig_text)
        .context("writing .mooring/kubeconfig (0600)")?;
    let kubeconfig = std::fs::canonicalize(&kubeconfig)?;
    let client = mooring_k8s::client_from_kubeconfig(&kubeconfig).await?;

    let aliased = aliases(&repo, work_tree, &args.aliases).await?;
    let aliases: Vec<(String, String)> = aliased
        .iter()
        .map(|u| (u.clone(), repo_url.clone()))
        .collect();
    // Real Prometheus, when installed, scraping every embedded cluster's simulated pods:
    // the controller (analysis, RollbackPolicies, DR checks) queries it, and `mooring dr
    // validate` finds it in `mooring-cm`. Its port is chosen now so
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
    let settings: kube::api::Api<mooring_k8s::k8s_openapi::api::core::v1::ConfigMap> =
        kube::api::Api::namespaced(client.clone(), &control_plane.namespace);
    settings
        .patch(
            crate::connect::SETTINGS_CONFIGMAP,
            &kube::api::PatchParams::apply("mooring-up").force(),
            &kube::api::Patch::Apply(serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": crate::connect::SETTINGS_CONFIGMAP},
                "data": {
                    crate::connect::REPOSITORY_ALIASES_KEY: serde_json::to_string(&aliases)?,
                    crate::connect::APPLICATION_NAMESPACES_KEY: control_plane.application_namespaces.join(","),
                    crate::connect::PROMETHEUS_ADDRESS_KEY: prometheus_listen
                        .map(|a| format!("http://{a}"))
                        .unwrap_or_default(),
                },
            })),
        )
        .await
        .context("recording settings in the mooring-cm ConfigMap")?;
    let controller = crate::components::controller::start(
        client.clone(),
        mooring_controller::ControllerOptions {
            cache_dir: args.data_dir.join("repos-cache"),
            poll: Duration::from_secs(args.poll.max(1)),
            repo_aliases: aliases,
            health_dir: args.health_dir.clone(),
            prometheus_address: prometheus_listen.map(|a| format!("http://{a}")),
            control_plane: control_plane.clone(),
            // User-written URLs (web metrics, incident webhooks) never reach the
            // embedded API server, whatever `outbound.allow` says short of naming it.
            outbound_protected: vec![(
                cluster.url(),
                mooring_controller::outbound::MANAGEMENT_API.to_string(),
            )],
            ..Default::default()
        },
    )
    .await?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.webhook_port))
        .await
        .with_context(|| {
            format!(
                "listening on 127.0.0.1:{} for webhooks (pick another with --webhook-port)",
                args.webhook_port
            )
        })?;
    let webhook_addr = listener.local_addr()?;
    controller.ctx.outbound.protect(
        &format!("http://{webhook_addr}"),
        mooring_controller::outbound::REST_API,
    );
    // The server component, with this process's controller behind its webhooks.
    let router = crate::components::server::router(
        mooring_server::Backend::InProcess(controller.ctx.clone()),
        client.clone(),
        control_plane.clone(),
        args.webhook_secret.clone(),
        args.metrics_auth,
        false,
        None,
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
    for (index, member) in args.clusters.iter().flat_map(|f| f.0.iter()).enumerate() {
        let c = mooring_apiserver::Cluster::start(mooring_apiserver::ClusterOptions {
            name: member.name.clone(),
            port: 0,
            data_dir: Some(args.data_dir.join("clusters").join(&member.name)),
            sim: mooring_apiserver::sim::SimOptions {
                speed: args.speed,
                load_balancer: args.load_balancer.fleet_addresses(index),
                ..Default::default()
            },
            ..Default::default()
        })
        .await
        .with_context(|| format!("starting embedded cluster {}", member.name))?;
        crate::cluster::register(
            &client,
            &control_plane.namespace,
            &mooring_k8s::registry::ClusterEntry {
                project: String::new(),
                name: member.name.clone(),
                server: c.url(),
                config: c.client_config(),
                labels: member.labels.clone(),
                annotations: Default::default(),
            },
        )
        .await?;
        fleet.push(c);
    }

    let prometheus = match (prometheus_binary, prometheus_listen) {
        (Some(binary), Some(listen)) => {
            let clusters = std::iter::once(&cluster)
                .chain(fleet.iter())
                .map(|c| mooring_controller::prometheus::ScrapeCluster {
                    url: c.url(),
                    token_file: c.token_path(),
                    ca_file: Some(c.ca_path()),
                })
                .collect();
            let started = mooring_controller::prometheus::LocalPrometheus::start(
                mooring_controller::prometheus::LocalPrometheusOptions {
                    binary: Some(binary),
                    data_dir: args.data_dir.join("prometheus"),
                    listen: Some(listen),
                    scrape_interval: PROMETHEUS_SCRAPE,
                    clusters,
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

    let found = registrations(&repo);
    let mut registered: Vec<(String, String)> = Vec::new();
    let mut skipped = found.skipped;
    for m in &found.manifests {
        let kind = m.object["kind"].as_str().unwrap_or_default().to_string();
        match crate::registration::register(&client, &control_plane, &m.object).await {
            Ok(id) => registered.push((kind, id)),
            Err(why) => skipped.push((
                format!(
                    "{kind} {} ({})",
                    m.object["metadata"]["name"].as_str().unwrap_or("?"),
                    m.file
                ),
                why,
            )),
        }
    }
    // Disaster recovery (`dr/`): registered when the fleet has the plan's regions.
    let fleet_names: Vec<String> = args
        .clusters
        .iter()
        .flat_map(|f| f.0.iter())
        .map(|m| m.name.clone())
        .collect();
    let dr = crate::dr_up::register(&client, &control_plane, &repo, &fleet_names).await;
    registered.extend(dr.registered.iter().cloned());
    skipped.extend(dr.skipped);
    let mut dr_notes = dr.notes;
    let local_dns = dr.dns;
    let mut open: Vec<String> = Vec::new();
    let mut open_for: Vec<&str> = Vec::new();
    if !dr.registered.is_empty() {
        open.extend((0..fleet_names.len()).filter_map(|i| {
            match args.load_balancer.fleet_addresses(i) {
                mooring_apiserver::sim::LoadBalancerAddresses::Range(r) => Some(r.to_string()),
                mooring_apiserver::sim::LoadBalancerAddresses::Hostname(_) => None,
            }
        }));
        open.extend(local_dns.as_ref().map(|b| b.server()));
        open_for.push("the DR plan's checks and DNS");
    }
    // The image watcher: a local registry for images on unreachable registries.
    let images =
        crate::image_up::start(&repo, !work_tree, webhook_addr, args.webhook_secret.clone()).await;
    let mut image_notes = images.notes;
    let local_registry = images.registry;
    if let Some(r) = &local_registry {
        open.push(r.host());
        open_for.push("the image watcher's registry");
    }
    if !open.is_empty() {
        let why = open_for.join(" and ");
        let note =
            crate::dr_up::open_outbound(&client, &control_plane.namespace, &open, &why).await;
        if local_registry.is_some() {
            image_notes.push(note);
        } else {
            dr_notes.insert(0, note);
        }
    }
    // registries.conf last, so the watcher's first look at the local registry is allowed.
    if let Some(conf) = &images.registries_conf {
        image_notes
            .extend(crate::image_up::configure(&client, &control_plane.namespace, conf).await);
    }
    // No default password: the first admin token is issued once everything has started,
    // and shown once (a start that failed before here issued none).
    let admin_token = mooring_server::store::Store::new(client.clone(), &control_plane.namespace)
        .ensure_admin_token()
        .await
        .context("issuing the first admin token (Secret mooring-secret)")?;
    println!("mooring is up");
    println!(
        "  cluster     {} (data in {})",
        cluster.url(),
        args.data_dir.join("cluster").display()
    );
    println!("  kubeconfig  {}", kubeconfig.display());
    println!("  git repo    {repo_url}");
    println!("  namespace   {} (control plane)", control_plane.namespace);
    if !control_plane.application_namespaces.is_empty() {
        println!(
            "              applications also from {}",
            control_plane.application_namespaces.join(", ")
        );
    }
    for u in &aliased {
        println!("  serving     {u} from the git repo above");
    }
    println!(
        "  webhook     http://{webhook_addr}/api/webhook ({})",
        if args.webhook_secret.is_some() {
            "signed pushes only"
        } else {
            "unsigned pushes accepted unless mooring-secret sets webhook.github.secret / webhook.gitlab.secret; see --webhook-secret"
        }
    );
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
    println!("  web UI      http://{webhook_addr}/ (log in with an API token)");
    println!("  api         http://{webhook_addr}/api/v1 (Authorization: Bearer <token>)");
    println!(
        "  outbound    web metrics, Prometheus addresses and incident webhooks may not reach loopback,"
    );
    println!(
        "              link-local (169.254.169.254), these APIs, …; open an address with: kubectl -n {} patch",
        control_plane.namespace
    );
    println!(
        "              configmap {} --type merge -p '{{\"data\":{{\"{}\":\"127.0.0.1:8080\"}}}}'",
        crate::connect::SETTINGS_CONFIGMAP,
        mooring_engine::outbound::CONFIG_KEY
    );
    match &admin_token {
        Some(t) => {
            println!("  admin token {t}");
            println!("  log in      http://{webhook_addr}/login?token={t}");
            println!("              (shown once; stored only as a hash; more with `mooring account generate-token`)");
        }
        None => println!(
            "  admin token issued at first start (new ones: `mooring account generate-token`)"
        ),
    }
    if registered.is_empty() {
        println!("  registered  nothing: no AppProject, ApplicationSet or Application in the top-level YAML files of {}", args.repo.display());
    }
    for (kind, id) in &registered {
        println!("  registered  {kind} {id}");
    }
    for (what, why) in &skipped {
        println!("  skipped     {what}: {why}");
    }
    for note in &image_notes {
        println!("  images      {note}");
    }
    for note in &dr_notes {
        println!("  dr          {note}");
    }
    println!();
    println!("try:");
    println!("  export KUBECONFIG={}", kubeconfig.display());
    println!("  mooring app list");
    println!(
        "  curl -H \"Authorization: Bearer $TOKEN\" http://{webhook_addr}/api/v1/applications"
    );
    println!("  mooring proj can-i admin sync applications <project>/<name>");
    println!("  mooring app wait <name> --health --timeout 120");
    println!("  kubectl get deployments -A");
    println!("  (edit and commit in {}; changes are picked up within {}s, or at once with `mooring app get <name> --refresh`)", repo.display(), args.poll);
    println!();
    // Progress: one line per application state change until Ctrl-C.
    let mut last: std::collections::BTreeMap<String, String> = Default::default();
    let list_all = kube::api::Api::<kube::api::DynamicObject>::all_with(
        client.clone(),
        &mooring_k8s::resources::application_resource(),
    );
    // Ctrl-C or SIGTERM (one listener for the whole loop, so no signal falls between two).
    let stop = crate::components::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
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
    controller
        .shutdown(crate::components::controller::SHUTDOWN_GRACE)
        .await;
    drop(prometheus);
    for c in fleet {
        c.stop();
    }
    cluster.stop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `mooring up .` in a plain directory: the data directory lies inside REPO and is not
    /// copied into its own snapshot (it used to recurse until the path was too long).
    #[test]
    fn the_snapshot_leaves_out_a_data_dir_inside_the_repository() {
        let repo = tempfile::tempdir().expect("tmp");
        std::fs::write(repo.path().join("app.yaml"), "kind: ConfigMap\n").expect("write");
        let data = repo.path().join(".mooring");
        std::fs::create_dir_all(&data).expect("data dir");
        let snap = local_repo(repo.path(), &data).expect("snapshot");
        assert!(snap.join("app.yaml").exists());
        assert!(
            !snap.join(".mooring").exists(),
            "the data dir is not copied"
        );
        // A second start mirrors again without growing.
        let again = local_repo(repo.path(), &data).expect("snapshot again");
        assert_eq!(again, snap);
        assert!(!snap.join(".mooring").exists());
    }
}
