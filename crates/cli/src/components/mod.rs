//! Mooring's long-running components, as Argo CD splits them: `mooring controller`
//! ([`controller`]: the application, ApplicationSet, rollout, analysis, rollback,
//! notification, image and DR loops) and `mooring server` ([`server`]: REST API, webhooks,
//! metrics). Each runs against any Kubernetes API — a kubeconfig, or the in-cluster
//! service account — and `mooring up` is the same two components started in one process
//! next to an embedded cluster, through the same functions.
//!
//! Why the split: in production each runs as its own workload (the controller as a
//! sharded StatefulSet, the server as a Deployment behind a Service), restarts on its own,
//! and is probed on its own `/healthz` (alive) and `/readyz` (able to work) endpoints.
//! Both stop on SIGTERM or SIGINT and exit 0: the controller stops taking work and lets
//! the reconciles in flight finish (bounded), and since an operation's state is written
//! to its Application after every step, one cut short resumes where it was at the next
//! start.

pub mod controller;
pub mod server;

use anyhow::Context as _;
use mooring_k8s::kube;
use std::path::PathBuf;

/// `--log-format`: human-readable lines or one JSON object per line (for log shippers).
#[derive(clap::ValueEnum, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Where a component finds the management cluster: `--kubeconfig`, then `$KUBECONFIG`,
/// then `~/.kube/config`, then the in-cluster service account (kube-rs's
/// `Config::infer`, as client-go's rules for Argo CD's components).
#[derive(clap::Args, Debug, Clone)]
pub struct ClusterArgs {
    /// Kubeconfig of the management cluster (default: $KUBECONFIG, ~/.kube/config, then
    /// the in-cluster service account).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The control-plane namespace (default: the kubeconfig context's namespace, the
    /// pod's namespace in-cluster, then argocd).
    #[arg(long, env = "MOORING_NAMESPACE")]
    pub namespace: Option<String>,
    /// Other namespaces Applications and ApplicationSets may live in (comma-separated
    /// globs or /regex/); wins over `application.namespaces` of `mooring-cm`.
    #[arg(long, value_delimiter = ',')]
    pub application_namespaces: Vec<String>,
    /// Log lines as text or JSON.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// The namespace file of the in-cluster service account.
const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The management cluster as a component sees it.
pub struct Connected {
    pub client: kube::Client,
    /// The API server's URL (protected from user-written URLs).
    pub url: String,
    pub control_plane: mooring_engine::project::ControlPlane,
    /// The `mooring-cm` ConfigMap's data (empty when it does not exist).
    pub settings: std::collections::BTreeMap<String, String>,
}

/// Connect to the management cluster and read the control plane's settings; flags win
/// over `mooring-cm`.
pub async fn connect(args: &ClusterArgs) -> anyhow::Result<Connected> {
    let (config, context_namespace) = match &args.kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .with_context(|| format!("kubeconfig {}", path.display()))?;
            (config, mooring_k8s::kubeconfig_namespace(path))
        }
        None => {
            let config = kube::Config::infer().await.context(
                "no management cluster: pass --kubeconfig, set KUBECONFIG, or run in a pod with a service account",
            )?;
            let ns = std::env::var_os("KUBECONFIG")
                .filter(|p| !p.is_empty())
                .and_then(|p| mooring_k8s::kubeconfig_namespace(std::path::Path::new(&p)))
                .or_else(|| {
                    std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE)
                        .ok()
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                });
            (config, ns)
        }
    };
    let url = config.cluster_url.to_string();
    let client = kube::Client::try_from(config).context("building the Kubernetes client")?;
    let namespace = args
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .or(context_namespace)
        .unwrap_or_else(|| mooring_core::app::CONTROL_PLANE_NAMESPACE.to_string());
    let settings = crate::connect::settings(&client, &namespace)
        .await
        .unwrap_or_default();
    let control_plane = control_plane(namespace, &args.application_namespaces, &settings);
    control_plane
        .validate()
        .map_err(|e| anyhow::anyhow!("--application-namespaces: {e}"))?;
    Ok(Connected {
        client,
        url: url.trim_end_matches('/').to_string(),
        control_plane,
        settings,
    })
}

/// The control plane: the flag's application namespaces, else `mooring-cm`'s.
pub fn control_plane(
    namespace: String,
    flag: &[String],
    settings: &std::collections::BTreeMap<String, String>,
) -> mooring_engine::project::ControlPlane {
    let mut cp = mooring_engine::project::ControlPlane::new(namespace);
    cp.application_namespaces = if flag.is_empty() {
        settings
            .get(crate::connect::APPLICATION_NAMESPACES_KEY)
            .map(|v| crate::connect::split_list(v))
            .unwrap_or_default()
    } else {
        flag.iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    cp
}

/// Resolves on SIGTERM (what Kubernetes sends a pod) or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM ({e}); Ctrl-C still stops");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `/healthz` and `/readyz` of a component. `/healthz` answers 200 while the process
/// serves at all (a liveness probe restarts a wedged process, nothing more); `/readyz`
/// answers 200 only when `ready` says the component can do its work, else 503 with why.
pub fn probes<F, Fut>(ready: F) -> axum::Router
where
    F: Fn() -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    use axum::http::StatusCode;
    axum::Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .route(
            "/readyz",
            axum::routing::get(move || {
                let ready = ready.clone();
                async move {
                    match ready().await {
                        Ok(()) => (StatusCode::OK, "ok\n".to_string()),
                        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
                    }
                }
            }),
        )
}

/// Whether the management cluster answers and serves Mooring's CRDs (Applications can
/// be listed); else why not, with what to do.
pub async fn management_ready(client: &kube::Client) -> Result<(), String> {
    let api = kube::Api::<kube::api::DynamicObject>::all_with(
        client.clone(),
        &mooring_k8s::resources::application_resource(),
    );
    let params = kube::api::ListParams::default().limit(1);
    let list = api.list(&params);
    match tokio::time::timeout(std::time::Duration::from_secs(3), list).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(kube::Error::Api(e))) if e.code == 404 => Err(
            "the Application CRD is not installed in the management cluster (`mooring crds | kubectl apply -f -`, or `mooring install`)".into(),
        ),
        Ok(Err(e)) => Err(format!("the management cluster does not answer: {e}")),
        Err(_) => Err("the management cluster does not answer within 3s".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_namespaces_flag_wins_over_the_configmap() {
        let settings: std::collections::BTreeMap<String, String> = [(
            crate::connect::APPLICATION_NAMESPACES_KEY.to_string(),
            "team-*, other".to_string(),
        )]
        .into();
        let cp = control_plane("argocd".into(), &[], &settings);
        assert_eq!(cp.application_namespaces, ["team-*", "other"]);
        let cp = control_plane("argocd".into(), &["mine".into()], &settings);
        assert_eq!(cp.application_namespaces, ["mine"]);
        assert_eq!(cp.namespace, "argocd");
    }
}
