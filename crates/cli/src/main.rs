//! The `mooring` binary: argument parsing and glue only. Every behaviour lives in a library
//! crate, so tests exercise the same code in-process.
//!
//! Exit codes: 0 ok, 1 findings/diff, 2 usage or runtime error.

mod account;
mod admin;
mod app;
mod appset;
mod bench;
mod check;
mod cluster;
mod components;
mod connect;
mod deploy;
mod dr;
mod dr_up;
mod embedded;
mod image_up;
mod install;
mod notifications;
mod output;
mod policy;
mod promote;
mod registration;
mod rollback;
mod rollback_verify;
mod rollout;
mod up;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "mooring",
    version,
    about = "GitOps for ML infrastructure in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Embedded clusters, and the destination clusters Mooring deploys to.
    Cluster {
        #[command(subcommand)]
        command: ClusterCommand,
        #[command(flatten)]
        common: cluster::ClusterCommon,
    },
    /// Measure the embedded cluster (figures recorded in docs/benchmarks.md).
    Bench(bench::BenchArgs),
    /// One command: embedded cluster + controller + REST API + webhook endpoint, registering
    /// the AppProjects, ApplicationSets and Applications in REPO's top-level YAML files
    /// (default examples/ml-platform) in the control-plane namespace (`argocd`).
    Up(up::UpArgs),
    /// The application controller alone (Application, ApplicationSet, Rollout, analysis,
    /// rollback, notification, image and DR loops) against a management cluster from a
    /// kubeconfig or the in-cluster service account, as Argo CD's
    /// argocd-application-controller. Stops gracefully on SIGTERM.
    Controller(components::controller::ControllerArgs),
    /// The REST API, webhooks and metrics alone, as Argo CD's argocd-server: webhook pushes
    /// set refresh annotations the controller acts on. HTTPS with --tls-cert/--tls-key.
    Server(components::server::ServerArgs),
    /// Argo CD-compatible application commands.
    App {
        #[command(subcommand)]
        command: app::AppCommand,
        #[command(flatten)]
        common: app::Common,
    },
    /// Argo CD-compatible ApplicationSet commands.
    Appset {
        #[command(subcommand)]
        command: appset::AppSetCommand,
        #[command(flatten)]
        common: app::Common,
    },
    /// Local accounts and API tokens.
    Account {
        #[command(subcommand)]
        command: account::AccountCommand,
        #[command(flatten)]
        common: app::Common,
    },
    /// Projects: `can-i` answers RBAC questions from the same code the API runs.
    Proj {
        #[command(subcommand)]
        command: account::ProjCommand,
        #[command(flatten)]
        common: app::Common,
    },
    /// Argo Rollouts commands, as `kubectl argo rollouts`: list, get, watch, status,
    /// promote, abort, retry, pause, undo, set-image.
    Rollout {
        #[command(subcommand)]
        command: rollout::RolloutCommand,
        #[command(flatten)]
        common: rollout::RolloutCommon,
    },
    /// Notifications in Argo CD's format, as `argocd admin notifications`: templates,
    /// triggers, and what was delivered.
    Notifications {
        #[command(subcommand)]
        command: notifications::NotificationsCommand,
        #[command(flatten)]
        common: app::Common,
    },
    /// Disaster recovery (`DisasterRecoveryPlan`s): status, validate, failover,
    /// failback, drill.
    Dr {
        #[command(subcommand)]
        command: dr::DrCommand,
        #[command(flatten)]
        common: app::Common,
    },
    /// Rollback through Git: `rollback git APP --to REV --reason TEXT` reverts the commits
    /// after REV that touch APP on a branch, pushes it and opens a pull request.
    Rollback {
        #[command(subcommand)]
        command: rollback::RollbackCommand,
        #[command(flatten)]
        common: app::Common,
    },
    /// The hybrid model's CI step: set an Application's targetRevision (--revision) or an
    /// image of its kustomization (--image) in the GitOps repository, commit and push
    /// (--push; never forced, redone on the new head when the branch moved), and with
    /// --wait follow the app until it is Synced and Healthy at the new commit.
    Promote {
        #[command(flatten)]
        args: promote::PromoteArgs,
        #[command(flatten)]
        common: app::Common,
    },
    /// The push model, without a controller: render PATH, run the policy gate of the
    /// target cluster (and --policy DIR), show the diff, server-side apply as
    /// `mooring-deploy`, prune what an earlier deploy applied (kubectl's ApplySet) and
    /// wait for health.
    Deploy(deploy::DeployArgs),
    /// Print Mooring's CustomResourceDefinitions (generated from the Rust types).
    Crds,
    /// Backup and restore of the control plane, as `argocd admin export` / `import`.
    Admin {
        #[command(subcommand)]
        command: admin::AdminCommand,
        #[command(flatten)]
        common: app::Common,
    },
    /// Print the manifests that run Mooring inside Kubernetes (the kustomize base of
    /// `deploy/`): `mooring install | kubectl apply -f -`.
    Install(install::InstallArgs),
    /// Policy as code: conftest-style tests, gator suites and Rego unit tests.
    Policy {
        #[command(subcommand)]
        command: policy::PolicyCommand,
    },
    /// The CI compliance run: render every Application and environment, validate schemas,
    /// run the repository's policies, Rego tests and lints. Exit 0 clean, 1 findings, 2 error.
    Check(check::CheckArgs),
    /// Health checks.
    Health {
        #[command(subcommand)]
        command: HealthCommand,
    },
}

#[derive(Subcommand)]
enum HealthCommand {
    /// Run every health_test.yaml in an Argo CD-layout tree of health.lua checks.
    ///
    /// Files are read as Argo CD reads them (field names in any case, a file's first YAML
    /// document only, a repeated key keeps its last value and is warned about). A test
    /// file that cannot be read fails its folder and the others still run. Exit 0 when
    /// every case passes, 1 when one fails, 2 when the tree cannot be read.
    Test {
        /// The directory (`<group>/<Kind>/health.lua` with `health_test.yaml` beside it).
        dir: PathBuf,
    },
}

#[derive(Subcommand)]
enum ClusterCommand {
    #[command(flatten)]
    Registry(cluster::RegistryCommand),
    /// Run an embedded cluster in the foreground until Ctrl-C.
    Start {
        /// Cluster name (also the kubeconfig context).
        #[arg(long, default_value = "mooring")]
        name: String,
        /// Port on the bind address (0 picks a free port).
        #[arg(long, default_value_t = 6443)]
        port: u16,
        /// Address to listen on. Anywhere but 127.0.0.1 (or ::1) the cluster serves HTTPS
        /// with a CA generated into the data directory and written into the kubeconfig.
        #[arg(long, default_value = "127.0.0.1")]
        bind_address: std::net::IpAddr,
        /// Another name (DNS name or address) clients reach the cluster by: accepted in
        /// `Host` and put into the serving certificate. Repeatable.
        #[arg(long = "hostname", value_name = "NAME")]
        hostnames: Vec<String>,
        /// Where the cluster keeps its SQLite data, token and kubeconfig (0700).
        #[arg(long, default_value = ".mooring/cluster")]
        data_dir: PathBuf,
        /// Simulated nodes (for DaemonSets and scheduling).
        #[arg(long, default_value_t = 3)]
        nodes: usize,
        /// Simulation speed: 1.0 is real time, 10 makes pods start ten times faster.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        #[command(flatten)]
        load_balancer: embedded::LoadBalancerArgs,
    },
}

/// Log levels of the long-running components when `MOORING_LOG` sets none: what they
/// do at info, their dependencies' warnings.
const COMPONENT_LOG: &str = "warn,mooring=info,mooring_controller=info,mooring_server=info";

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Flags whose validity depends on each other: a usage error (exit 2), as clap's own.
    if let Command::Controller(args) = &cli.command {
        if let Err(e) = args.sharding() {
            Cli::command()
                .error(clap::error::ErrorKind::ArgumentConflict, e)
                .exit();
        }
    }
    let (format, default_filter) = match &cli.command {
        Command::Controller(a) => (a.cluster.log_format, COMPONENT_LOG),
        Command::Server(a) => (a.cluster.log_format, COMPONENT_LOG),
        // The benchmarks' own clients see the outages they cause (chaos): kube-rs logs
        // each refused connection as an ERROR; the benchmark reports what matters.
        Command::Bench(_) => (
            components::LogFormat::Text,
            "warn,kube_client::client::builder=off",
        ),
        _ => (components::LogFormat::Text, "warn"),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MOORING_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        components::LogFormat::Text => logs.init(),
        components::LogFormat::Json => logs.json().init(),
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Cluster {
            command: ClusterCommand::Registry(command),
            common,
        } => cluster::run(command, common).await,
        Command::Cluster {
            command:
                ClusterCommand::Start {
                    name,
                    port,
                    bind_address,
                    hostnames,
                    data_dir,
                    nodes,
                    speed,
                    load_balancer,
                },
            common,
        } => {
            if !(speed > 0.0 && speed.is_finite()) {
                anyhow::bail!("--speed must be a positive number, got {speed}");
            }
            let opts = mooring_apiserver::ClusterOptions {
                name: name.clone(),
                port,
                bind_address,
                hostnames,
                data_dir: Some(data_dir.clone()),
                sim: mooring_apiserver::sim::SimOptions {
                    nodes,
                    speed,
                    load_balancer: load_balancer.addresses(),
                    ..Default::default()
                },
                // The control-plane namespace exists from the start, as where Argo CD is
                // installed: `kubectl apply -n argocd -f app.yaml` works at once.
                namespaces: vec![common
                    .management
                    .namespace
                    .clone()
                    .unwrap_or_else(|| mooring_core::app::CONTROL_PLANE_NAMESPACE.into())],
                ..Default::default()
            };
            let cluster = mooring_apiserver::Cluster::start(opts)
                .await
                .with_context(|| format!("starting embedded cluster {name:?}"))?;
            let kc = std::fs::canonicalize(cluster.kubeconfig_path())
                .unwrap_or_else(|_| cluster.kubeconfig_path().to_path_buf());
            println!("embedded cluster {name:?} serving at {}", cluster.url());
            println!("kubeconfig: {}", kc.display());
            println!();
            println!("try:");
            println!("  export KUBECONFIG={}", kc.display());
            println!("  kubectl get namespaces");
            println!("  kubectl create deployment web --image=nginx:1.27 --replicas=3");
            println!("  kubectl rollout status deployment/web");
            println!();
            println!(
                "data in {} (kept across restarts); Ctrl-C stops",
                data_dir.display()
            );
            tokio::signal::ctrl_c()
                .await
                .context("waiting for Ctrl-C")?;
            cluster.stop();
            Ok(ExitCode::SUCCESS)
        }
        Command::Up(args) => {
            up::run(args).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Controller(args) => components::controller::run(args).await,
        Command::Server(args) => components::server::run(args).await,
        Command::App { command, common } => app::run(command, common).await,
        Command::Appset { command, common } => appset::run(command, common).await,
        Command::Account { command, common } => account::run(command, common).await,
        Command::Proj { command, common } => account::run_proj(command, common).await,
        Command::Rollout { command, common } => rollout::run(command, common).await,
        Command::Notifications { command, common } => notifications::run(command, common).await,
        Command::Rollback { command, common } => rollback::run(command, common).await,
        Command::Dr { command, common } => dr::run(command, common).await,
        Command::Promote { args, common } => promote::run(args, common).await,
        Command::Deploy(args) => deploy::run(args).await,
        Command::Crds => {
            for crd in mooring_k8s::crds::all() {
                println!("---");
                print!("{}", serde_saphyr::to_string(&crd)?);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Install(args) => install::run(args),
        Command::Admin { command, common } => admin::run(command, common).await,
        Command::Health {
            command: HealthCommand::Test { dir },
        } => {
            let report =
                mooring_engine::health::run_health_tests(&mooring_source::files::StdFiles, &dir)
                    .with_context(|| format!("running the health tests in {}", dir.display()))?;
            for warning in &report.warnings {
                eprintln!("warning: {warning}");
            }
            print!("{report}");
            Ok(if report.all_passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Policy { command } => policy::run(command).await,
        Command::Check(args) => check::run(args).await,
        Command::Bench(args) => bench::run(args).await,
    }
}
