//! How every CLI command reaches the management cluster and finds its control plane.
//!
//! The kubeconfig comes from `--kubeconfig`, then `$KUBECONFIG`, then the one `mooring up`
//! wrote (`.mooring/kubeconfig`). The control-plane namespace — where Applications,
//! AppProjects, ApplicationSets, cluster Secrets and Mooring's settings live — comes from
//! `--namespace` (`$MOORING_NAMESPACE`), then the kubeconfig context's namespace (as the
//! `argocd` CLI does with `--core`), then `argocd`. The namespaces Applications may also
//! live in are read from the `application.namespaces` key of the `mooring-cm` ConfigMap
//! there (`mooring up --application-namespaces` records them), so `app list` shows what
//! the controller reconciles.

use anyhow::{bail, Context as _};
use mooring_engine::project::ControlPlane;
use mooring_k8s::k8s_openapi::api::core::v1::Secret;
use mooring_k8s::kube;
use std::path::PathBuf;

/// ConfigMap holding settings shared by the controller, the API and the CLI (Argo CD's
/// `argocd-cm` / `argocd-cmd-params-cm`), in the control-plane namespace.
pub use mooring_server::store::SETTINGS_CONFIGMAP;

/// `mooring-cm` key: repository URL rewrites (`[from, to]` pairs as JSON) that `mooring
/// up` records and the controller and server read.
pub use mooring_server::refresh::REPOSITORY_ALIASES_KEY;

/// `mooring-cm` key: the namespaces besides the control plane's Applications may live in
/// (comma-separated globs or `/regex/`, Argo CD's `application.namespaces`).
pub const APPLICATION_NAMESPACES_KEY: &str = "application.namespaces";

/// `mooring-cm` key: the controller's own Prometheus (`mooring up` records the one it
/// starts), for the CLI's one-off PromQL checks (`mooring dr validate`).
pub const PROMETHEUS_ADDRESS_KEY: &str = "prometheus.address";

/// Where the management cluster and its control plane are.
#[derive(clap::Args, Debug, Clone)]
pub struct ManagementArgs {
    /// Kubeconfig of the management cluster (default: $KUBECONFIG, then the one `mooring up` wrote).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The control-plane namespace (default: the kubeconfig context's namespace, then argocd).
    #[arg(
        long = "namespace",
        alias = "control-plane-namespace",
        global = true,
        env = "MOORING_NAMESPACE"
    )]
    pub namespace: Option<String>,
}

/// The management cluster, connected.
pub struct Management {
    pub client: kube::Client,
    /// Where Mooring's own objects live, and which other namespaces hold Applications.
    pub control_plane: ControlPlane,
}

impl Management {
    /// The control-plane namespace.
    pub fn namespace(&self) -> &str {
        &self.control_plane.namespace
    }
}

/// The kubeconfig rule: flag, then $KUBECONFIG, then `.mooring/kubeconfig`.
pub fn kubeconfig_path(flag: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p);
    }
    if let Some(p) = std::env::var_os("KUBECONFIG").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let local = PathBuf::from(".mooring/kubeconfig");
    if local.is_file() {
        return Ok(local);
    }
    bail!("no kubeconfig: pass --kubeconfig, set KUBECONFIG, or run `mooring up` in this directory first")
}

/// Connect to the management cluster and find its control plane.
pub async fn connect(args: &ManagementArgs) -> anyhow::Result<Management> {
    let path = kubeconfig_path(args.kubeconfig.clone())?;
    let client = mooring_k8s::client_from_kubeconfig(&path).await?;
    let namespace = args
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .or_else(|| mooring_k8s::kubeconfig_namespace(&path))
        .unwrap_or_else(|| mooring_core::app::CONTROL_PLANE_NAMESPACE.to_string());
    let mut control_plane = ControlPlane::new(namespace);
    control_plane.application_namespaces = settings(&client, &control_plane.namespace)
        .await
        .and_then(|d| d.get(APPLICATION_NAMESPACES_KEY).cloned())
        .map(|v| split_list(&v))
        .unwrap_or_default();
    Ok(Management {
        client,
        control_plane,
    })
}

/// The Argo CD cluster Secrets (label `argocd.argoproj.io/secret-type: cluster`) of the
/// control plane, as read; each command decides what an unreadable one means.
pub async fn cluster_secrets(m: &Management) -> anyhow::Result<Vec<Secret>> {
    let api: kube::Api<Secret> = kube::Api::namespaced(m.client.clone(), m.namespace());
    let params = kube::api::ListParams::default().labels(&format!(
        "{}=cluster",
        mooring_k8s::registry::SECRET_TYPE_LABEL
    ));
    Ok(api
        .list(&params)
        .await
        .context("listing cluster Secrets")?
        .items)
}

/// The client of a destination cluster named by `--cluster` (its name or server URL, as
/// `mooring cluster list` shows them): the management cluster itself without one, or for
/// `in-cluster`; else the cluster of the matching registered Secret.
pub async fn destination(m: &Management, cluster: Option<&str>) -> anyhow::Result<kube::Client> {
    let Some(name) = cluster else {
        return Ok(m.client.clone());
    };
    if mooring_core::app::names_in_cluster(name) {
        return Ok(m.client.clone());
    }
    let mut known = Vec::new();
    for s in cluster_secrets(m).await? {
        let v = serde_json::to_value(&s)?;
        if let Ok(e) = mooring_k8s::registry::parse_secret(&v) {
            if e.name == name || e.server == name {
                return Ok(mooring_k8s::registry::client(&e).await?);
            }
            known.push(e.name);
        }
    }
    bail!(
        "no registered cluster named {name:?} (registered: {}; see `mooring cluster list`)",
        if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        }
    )
}

/// Controller options for reading without a controller (`mooring app diff`, a standalone
/// server's views): the control plane and the repository aliases the running controller
/// was started with (`mooring up` records them in `mooring-cm`), repositories cached under
/// the temporary directory's `cache`.
pub async fn offline_options(
    client: &kube::Client,
    control_plane: &mooring_engine::project::ControlPlane,
    cache: &str,
) -> mooring_controller::ControllerOptions {
    let repo_aliases = settings(client, &control_plane.namespace)
        .await
        .and_then(|d| d.get(REPOSITORY_ALIASES_KEY).cloned())
        .and_then(|j| serde_json::from_str::<Vec<(String, String)>>(&j).ok())
        .unwrap_or_default();
    mooring_controller::ControllerOptions {
        cache_dir: std::env::temp_dir().join(cache),
        repo_aliases,
        control_plane: control_plane.clone(),
        ..Default::default()
    }
}

/// The `mooring-cm` ConfigMap's data (`None` when it does not exist or cannot be read).
pub async fn settings(
    client: &kube::Client,
    namespace: &str,
) -> Option<std::collections::BTreeMap<String, String>> {
    let cms: kube::Api<mooring_k8s::k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(client.clone(), namespace);
    cms.get_opt(SETTINGS_CONFIGMAP).await.ok().flatten()?.data
}

/// A comma- or newline-separated list, trimmed, empty entries dropped.
pub fn split_list(s: &str) -> Vec<String> {
    s.split([',', '\n'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect()
}
