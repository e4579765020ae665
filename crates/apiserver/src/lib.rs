//! The embedded Kubernetes-compatible cluster.
//!
//! Mooring reaches every cluster through the Kubernetes API. For zero-setup development,
//! tests and demos it ships this cluster, the way kind or kwok serve Go controller authors:
//! an API server with SQLite storage ([`store`]), discovery and CRDs ([`registry`]), the
//! object semantics of the real server ([`api`]), garbage collection ([`gc`]), server-side
//! printing ([`table`]) and kwok-style workload simulation ([`sim`]), served over plain
//! HTTP on 127.0.0.1 ([`http`]) so that the real `kubectl` and kube-rs work against it.
//!
//! Start one in-process with [`Cluster::start`]; several can run in one process on
//! distinct ports. [`Cluster::kubeconfig_path`] names the kubeconfig it wrote.

pub mod api;
pub mod defaults;
pub mod error;
pub mod gc;
pub mod http;
pub mod patch;
pub mod registry;
pub mod selector;
pub mod sim;
pub mod store;
pub mod table;
pub mod validation;

use api::Api;
use registry::Registry;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use store::Store;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("cannot listen on 127.0.0.1:{port}: {source} (is another cluster using the port? pick another with --port)")]
    Bind {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create default object: {0}")]
    Bootstrap(#[from] error::ApiError),
}

/// How to start an embedded cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Cluster (and kubeconfig context) name.
    pub name: String,
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Where SQLite data and the kubeconfig live; `None` keeps everything in memory and
    /// writes the kubeconfig to a temporary directory.
    pub data_dir: Option<PathBuf>,
    pub sim: sim::SimOptions,
    /// Past events kept for watch resumption.
    pub event_log: usize,
    /// CustomResourceDefinitions to install at start (created when missing, replaced
    /// when they differ), e.g. Mooring's own.
    pub crds: Vec<serde_json::Value>,
    /// Namespaces created at start beside Kubernetes' own (`default`, `kube-system`, …):
    /// by default Mooring's control-plane namespace, `argocd`, so Argo CD manifests apply
    /// unchanged, as on a cluster where Argo CD is installed.
    pub namespaces: Vec<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            name: "mooring".into(),
            port: 0,
            data_dir: None,
            sim: sim::SimOptions::default(),
            event_log: store::DEFAULT_EVENT_LOG,
            crds: vec![],
            namespaces: vec![mooring_core::app::CONTROL_PLANE_NAMESPACE.into()],
        }
    }
}

/// A running embedded cluster. Dropping it stops the server and its controllers.
pub struct Cluster {
    pub name: String,
    pub addr: SocketAddr,
    pub api: Api,
    kubeconfig: PathBuf,
    _tmp: Option<tempdir::TempDir>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

mod tempdir {
    //! A minimal self-deleting directory for in-memory clusters' kubeconfigs.
    use std::path::{Path, PathBuf};

    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new(prefix: &str) -> std::io::Result<Self> {
            let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir)?;
            Ok(TempDir(dir))
        }
        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

const DEFAULT_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];

impl Cluster {
    /// Start a cluster: open (or create) its storage, serve the API, start garbage
    /// collection and workload simulation, and write a kubeconfig.
    pub async fn start(opts: ClusterOptions) -> Result<Cluster, ClusterError> {
        if let Some(d) = &opts.data_dir {
            std::fs::create_dir_all(d).map_err(|source| ClusterError::DataDir {
                path: d.clone(),
                source,
            })?;
        }
        let store = Arc::new(Store::open(opts.data_dir.as_deref(), opts.event_log)?);
        let api = Api::new(store, Registry::with_builtins());
        api.load_crds();
        bootstrap(&api, &opts)?;

        let listener = tokio::net::TcpListener::bind(("127.0.0.1", opts.port))
            .await
            .map_err(|source| ClusterError::Bind {
                port: opts.port,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ClusterError::Bind {
            port: opts.port,
            source,
        })?;
        let (tmp, dir) = match &opts.data_dir {
            Some(d) => (None, d.clone()),
            None => {
                let t = tempdir::TempDir::new("mooring-cluster").map_err(|source| {
                    ClusterError::DataDir {
                        path: std::env::temp_dir(),
                        source,
                    }
                })?;
                let p = t.path().to_path_buf();
                (Some(t), p)
            }
        };
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(&kubeconfig, kubeconfig_yaml(&opts.name, addr)).map_err(|source| {
            ClusterError::Kubeconfig {
                path: kubeconfig.clone(),
                source,
            }
        })?;

        let metrics = sim::metrics_handler_at(api.clone(), Some(addr.to_string()));
        let state = http::HttpState {
            api: api.clone(),
            address: addr.to_string(),
            metrics: Some(metrics),
        };
        let app = http::router(state);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let mut tasks = vec![tokio::spawn(async move {
            let r = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = r {
                tracing::error!("embedded cluster server stopped: {e}");
            }
        })];
        tasks.push(tokio::spawn(gc::run(api.clone())));
        tasks.extend(sim::start(api.clone(), opts.sim.clone()));
        tracing::info!(cluster = %opts.name, %addr, "embedded cluster serving");
        Ok(Cluster {
            name: opts.name,
            addr,
            api,
            kubeconfig,
            _tmp: tmp,
            tasks,
            shutdown: Some(tx),
        })
    }

    /// The kubeconfig file this cluster wrote (context = cluster name).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stop serving and end the controllers.
    pub fn stop(mut self) {
        self.shutdown_now();
    }

    fn shutdown_now(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown_now();
    }
}

/// The kubeconfig YAML for a cluster at `addr`. Its context names no namespace, as kind's
/// does: kubectl then uses `default`, and Mooring's CLI its control-plane namespace.
pub fn kubeconfig_yaml(name: &str, addr: SocketAddr) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {name}
  cluster:
    server: http://{addr}
contexts:
- name: {name}
  context:
    cluster: {name}
    user: {name}-admin
current-context: {name}
users:
- name: {name}-admin
  user:
    token: mooring-embedded
preferences: {{}}
"
    )
}

/// Default namespaces and simulated nodes, created when missing.
fn bootstrap(api: &Api, opts: &ClusterOptions) -> Result<(), error::ApiError> {
    let ns_rt = api
        .registry
        .get("", "v1", "namespaces")
        .ok_or_else(|| error::ApiError::Internal("namespaces are not registered".into()))?;
    let wo = api::WriteOptions {
        field_manager: Some("mooring-apiserver".into()),
        ..Default::default()
    };
    let namespaces = DEFAULT_NAMESPACES
        .iter()
        .copied()
        .chain(opts.namespaces.iter().map(String::as_str));
    for ns in namespaces {
        if api.get(&ns_rt, None, ns).is_err() {
            api.create(
                &ns_rt,
                None,
                serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                &wo,
            )?;
        }
    }
    let crd_rt = api
        .registry
        .get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .ok_or_else(|| error::ApiError::Internal("CRDs are not registered".into()))?;
    for crd in &opts.crds {
        let name = crd
            .pointer("/metadata/name")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default();
        let apply = api::WriteOptions {
            field_manager: Some("mooring-apiserver".into()),
            force: true,
            ..Default::default()
        };
        api.patch(
            &crd_rt,
            None,
            name,
            api::PatchType::Apply,
            crd,
            api::Subresource::Main,
            &apply,
        )?;
    }
    sim::bootstrap_nodes(api, &opts.sim)
}
