//! `mooring controller`: every reconciliation loop of Mooring against a management
//! cluster reached through a kubeconfig or the in-cluster service account, without the
//! embedded cluster.
//!
//! Flags follow Argo CD's application controller where it has one. The mapping onto
//! [`mooring_controller::ControllerOptions`]:
//!
//! - `--app-resync SECONDS` → `poll` (Argo CD's `timeout.reconciliation`, default 180 s);
//! - `--status-processors N` and `--operation-processors M` → `workers = N + M`: Mooring
//!   compares and operates in the same reconcile (an operation step is one reconcile, and
//!   its state is written after each step), so there is one pool of workers, sized by
//!   both flags together. Defaults (3 + 1) are sized for two cores, not Argo CD's 20 + 10;
//! - `--shards`, `--shard`, `--sharding-method`, `--lease-duration`, `--replica` →
//!   `sharding` (see `mooring_controller::ShardingOptions`); `--shard` must be below
//!   `--shards`.
//!
//! Settings that `mooring up` passes in-process are read from the `mooring-cm` ConfigMap
//! of the control-plane namespace, where `up` records them: `repository.aliases`,
//! `application.namespaces` (the flag wins) and `prometheus.address`. Destination
//! clusters come from the Argo CD cluster Secrets there, which the controller watches.
//!
//! `--metrics-address` serves `/healthz` (the process serves), `/readyz` (the management
//! cluster answers, serves the CRDs, and the controller's Application watch has listed
//! every Application once) and `/metrics` (the
//! controller's series, per application too, as Argo CD's controller metrics port:
//! keep it inside the cluster, as `mooring install`'s NetworkPolicy does).

use super::{ClusterArgs, Connected};
use anyhow::Context as _;
use mooring_controller::{Context, Controller, ControllerOptions, ShardingOptions};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// How long SIGTERM waits for the reconciles in flight (Kubernetes' default grace period
/// is 30 s; what is cut short resumes from the Application's status).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

use crate::connect::REPOSITORY_ALIASES_KEY;

#[derive(clap::Args, Debug, Clone)]
pub struct ControllerArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Seconds between two comparisons of an application with Git when nothing triggered
    /// one (Argo CD's --app-resync; jittered by up to 10 %).
    #[arg(long, value_name = "SECONDS", default_value_t = 180, value_parser = clap::value_parser!(u64).range(1..))]
    pub app_resync: u64,
    /// Workers comparing applications with Git and the clusters. Mooring has one pool for
    /// comparisons and operations: its size is --status-processors + --operation-processors.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub status_processors: u64,
    /// Workers driving sync operations (added to the one pool; see --status-processors).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(0..=1024))]
    pub operation_processors: u64,
    /// Number of shards destination clusters are spread over; with more than one and no
    /// --shard, replicas claim shards through Leases.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub shards: u32,
    /// Pin this replica to shard K (0-based, below --shards).
    #[arg(long, value_name = "K")]
    pub shard: Option<u32>,
    /// How clusters are assigned to shards: legacy, round-robin or consistent-hashing.
    #[arg(long, value_name = "METHOD", default_value = "legacy", value_parser = parse_method)]
    pub sharding_method: mooring_engine::shard::Method,
    /// Seconds a shard's Lease is held without renewal before another replica takes it.
    #[arg(long, value_name = "SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub lease_duration: u64,
    /// This replica's identity in Leases (default: host name and process id).
    #[arg(long, value_name = "NAME")]
    pub replica: Option<String>,
    /// Where /healthz, /readyz and /metrics are served.
    #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:8082")]
    pub metrics_address: std::net::SocketAddr,
    /// Where Git object stores are cached (default: a directory per replica under the
    /// system's temporary directory).
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Argo CD-layout directory of custom health.lua checks.
    #[arg(long, value_name = "DIR")]
    pub health_dir: Option<PathBuf>,
}

fn parse_method(s: &str) -> Result<mooring_engine::shard::Method, String> {
    s.parse()
}

impl ControllerArgs {
    /// The sharding options, or why the flags contradict each other.
    pub fn sharding(&self) -> Result<ShardingOptions, String> {
        if let Some(k) = self.shard {
            if k >= self.shards {
                return Err(format!(
                    "--shard {k} is not below --shards {} (shards are numbered from 0)",
                    self.shards
                ));
            }
        }
        let mut out = ShardingOptions {
            shards: self.shards,
            shard: self.shard,
            method: self.sharding_method,
            lease_duration: Duration::from_secs(self.lease_duration),
            ..Default::default()
        };
        if let Some(r) = &self.replica {
            let r = r.trim();
            if r.is_empty() || r.len() > 253 {
                return Err("--replica must be a non-empty name of at most 253 bytes".into());
            }
            out.replica = r.to_string();
        }
        Ok(out)
    }

    /// The controller's options from the flags and the control plane's settings (flags
    /// win). Returns warnings about settings that could not be used.
    pub fn options(
        &self,
        connected: &Connected,
    ) -> Result<(ControllerOptions, Vec<String>), String> {
        self.options_from(
            &connected.url,
            &connected.control_plane,
            &connected.settings,
        )
    }

    /// [`ControllerArgs::options`] from the management cluster's URL, control plane and
    /// `mooring-cm` data.
    pub fn options_from(
        &self,
        management_url: &str,
        control_plane: &mooring_engine::project::ControlPlane,
        settings: &std::collections::BTreeMap<String, String>,
    ) -> Result<(ControllerOptions, Vec<String>), String> {
        let sharding = self.sharding()?;
        let mut warnings = Vec::new();
        let repo_aliases = match settings.get(REPOSITORY_ALIASES_KEY) {
            None => vec![],
            Some(j) if j.trim().is_empty() => vec![],
            Some(j) => match serde_json::from_str::<Vec<(String, String)>>(j) {
                Ok(a) => a,
                Err(e) => {
                    warnings.push(format!(
                        "{REPOSITORY_ALIASES_KEY} of {} is not a JSON list of [from, to] URL pairs ({e}); no repository aliases are used",
                        crate::connect::SETTINGS_CONFIGMAP
                    ));
                    vec![]
                }
            },
        };
        let prometheus_address = settings
            .get(crate::connect::PROMETHEUS_ADDRESS_KEY)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let cache_dir = self.cache_dir.clone().unwrap_or_else(|| {
            let safe: String = sharding
                .replica
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            std::env::temp_dir().join(format!("mooring-repos-{safe}"))
        });
        let workers = usize::try_from(self.status_processors + self.operation_processors)
            .unwrap_or(usize::MAX);
        Ok((
            ControllerOptions {
                poll: Duration::from_secs(self.app_resync),
                workers,
                cache_dir,
                health_dir: self.health_dir.clone(),
                repo_aliases,
                prometheus_address,
                control_plane: control_plane.clone(),
                outbound_protected: vec![(
                    management_url.to_string(),
                    mooring_controller::outbound::MANAGEMENT_API.to_string(),
                )],
                sharding,
                ..Default::default()
            },
            warnings,
        ))
    }
}

/// Start the controller: what `mooring controller` and `mooring up` both run.
pub async fn start(
    client: mooring_k8s::kube::Client,
    options: ControllerOptions,
) -> anyhow::Result<Controller> {
    Controller::start(client, options)
        .await
        .context("starting the controller")
}

/// The controller's HTTP endpoints: probes and metrics. `ctx` is set once the controller
/// has started; until then `/readyz` answers 503.
pub fn router(client: mooring_k8s::kube::Client, ctx: Arc<OnceLock<Arc<Context>>>) -> axum::Router {
    let ready_ctx = ctx.clone();
    let probes = super::probes(move || {
        let client = client.clone();
        let ctx = ready_ctx.clone();
        async move {
            super::management_ready(&client).await?;
            match ctx.get() {
                None => Err("the controller is starting".into()),
                Some(c) if !c.synced() => {
                    Err("the controller has not listed the Applications yet".into())
                }
                Some(_) => Ok(()),
            }
        }
    });
    probes.route(
        "/metrics",
        axum::routing::get(move || {
            let ctx = ctx.clone();
            async move {
                mooring_server::controller_metrics_response(ctx.get().map(|c| c.as_ref()), true)
            }
        }),
    )
}

/// `mooring controller`: run until SIGTERM or SIGINT, then stop gracefully (exit 0).
pub async fn run(args: ControllerArgs) -> anyhow::Result<ExitCode> {
    let connected = super::connect(&args.cluster).await?;
    let (options, warnings) = args.options(&connected).map_err(anyhow::Error::msg)?;
    for w in &warnings {
        tracing::warn!("{w}");
        eprintln!("warning: {w}");
    }
    let listener = tokio::net::TcpListener::bind(args.metrics_address)
        .await
        .with_context(|| format!("listening on {} (--metrics-address)", args.metrics_address))?;
    let local = listener.local_addr()?;
    let ctx_cell: Arc<OnceLock<Arc<Context>>> = Arc::new(OnceLock::new());
    let app = router(connected.client.clone(), ctx_cell.clone());
    let http = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("controller endpoints: {e}");
        }
    });
    println!("mooring controller: /healthz /readyz /metrics on http://{local}");
    println!(
        "mooring controller: control plane {} (replica {}, {} shard(s))",
        options.control_plane.namespace, options.sharding.replica, options.sharding.shards
    );
    // The controller starts once the CRDs are served (installed with the same manifests,
    // they may come a moment later); meanwhile it is alive and not ready.
    let wait = async {
        let mut warned = false;
        while let Err(why) = super::management_ready(&connected.client).await {
            if !warned {
                tracing::warn!("{why}; waiting");
                warned = true;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    };
    tokio::select! {
        () = wait => {}
        () = super::shutdown_signal() => {
            http.abort();
            println!("mooring controller: stopped");
            return Ok(ExitCode::SUCCESS);
        }
    }
    let controller = start(connected.client.clone(), options).await?;
    let _ = ctx_cell.set(controller.ctx.clone());
    tracing::info!("controller started");
    super::shutdown_signal().await;
    tracing::info!("stopping: no new work; waiting for the reconciles in flight");
    let unfinished = controller.shutdown(SHUTDOWN_GRACE).await;
    if unfinished > 0 {
        tracing::warn!(
            "{unfinished} reconcile(s) cut short after {}s; their operations resume at the next start",
            SHUTDOWN_GRACE.as_secs()
        );
    }
    http.abort();
    println!("mooring controller: stopped");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ControllerArgs,
    }

    fn parse(args: &[&str]) -> Result<ControllerArgs, String> {
        Cli::try_parse_from(std::iter::once("controller").chain(args.iter().copied()))
            .map(|c| c.args)
            .map_err(|e| e.to_string())
    }

    fn options(
        a: &ControllerArgs,
        settings: &[(&str, &str)],
    ) -> Result<(ControllerOptions, Vec<String>), String> {
        let settings: std::collections::BTreeMap<String, String> = settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let cp = super::super::control_plane("argocd".into(), &[], &settings);
        a.options_from("https://127.0.0.1:1", &cp, &settings)
    }

    #[test]
    fn flags_map_onto_the_controller_options() {
        let a = parse(&[
            "--app-resync",
            "30",
            "--status-processors",
            "5",
            "--operation-processors",
            "2",
            "--shards",
            "3",
            "--shard",
            "2",
            "--sharding-method",
            "round-robin",
            "--lease-duration",
            "9",
            "--replica",
            "mooring-controller-2",
        ])
        .expect("parses");
        let (o, warnings) = options(
            &a,
            &[
                (
                    REPOSITORY_ALIASES_KEY,
                    r#"[["https://git.example/a.git","file:///repo"]]"#,
                ),
                (
                    crate::connect::PROMETHEUS_ADDRESS_KEY,
                    "http://127.0.0.1:9090",
                ),
            ],
        )
        .expect("options");
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(o.poll, Duration::from_secs(30));
        assert_eq!(o.workers, 7);
        assert_eq!(o.sharding.shards, 3);
        assert_eq!(o.sharding.shard, Some(2));
        assert_eq!(o.sharding.method, mooring_engine::shard::Method::RoundRobin);
        assert_eq!(o.sharding.lease_duration, Duration::from_secs(9));
        assert_eq!(o.sharding.replica, "mooring-controller-2");
        assert_eq!(
            o.repo_aliases,
            [(
                "https://git.example/a.git".to_string(),
                "file:///repo".to_string()
            )]
        );
        assert_eq!(
            o.prometheus_address.as_deref(),
            Some("http://127.0.0.1:9090")
        );
        assert!(o.cache_dir.ends_with("mooring-repos-mooring-controller-2"));
    }

    #[test]
    fn defaults_are_argo_cds_where_it_has_them() {
        let a = parse(&[]).expect("parses");
        let (o, _) = options(&a, &[]).expect("options");
        assert_eq!(o.poll, Duration::from_secs(180));
        assert_eq!(o.sharding.shards, 1);
        assert_eq!(o.sharding.shard, None);
        assert_eq!(o.sharding.method, mooring_engine::shard::Method::Legacy);
        assert_eq!(a.metrics_address.to_string(), "0.0.0.0:8082");
    }

    #[test]
    fn contradicting_or_bad_flags_are_errors() {
        let a = parse(&["--shards", "3", "--shard", "3"]).expect("parses");
        let e = a.sharding().expect_err("shard out of range");
        assert!(e.contains("--shard 3") && e.contains("--shards 3"), "{e}");
        let e = parse(&["--sharding-method", "random"]).expect_err("bad method");
        assert!(e.contains("unknown sharding method"), "{e}");
        assert!(parse(&["--shards", "0"]).is_err());
        assert!(parse(&["--app-resync", "0"]).is_err());
        assert!(parse(&["--status-processors", "0"]).is_err());
        assert!(parse(&["--metrics-address", "nowhere"]).is_err());
        let a = parse(&["--replica", " "]).expect("parses");
        assert!(a.sharding().is_err());
    }

    #[test]
    fn unreadable_aliases_are_a_warning_not_silence() {
        let a = parse(&[]).expect("parses");
        let (o, warnings) = options(&a, &[(REPOSITORY_ALIASES_KEY, "not json")]).expect("options");
        assert!(o.repo_aliases.is_empty());
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains(REPOSITORY_ALIASES_KEY), "{warnings:?}");
    }
}
