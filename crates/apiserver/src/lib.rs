//! The embedded Kubernetes-compatible cluster.
//!
//! Mooring reaches every cluster through the Kubernetes API. For zero-setup development,
//! tests and demos it ships this cluster, the way kind or kwok serve Go controller authors:
//! an API server with SQLite storage ([`store`]), discovery and CRDs ([`registry`]), the
//! object semantics of the real server ([`api`]), custom resources validated against their
//! structural schemas ([`structural`]), OpenAPI v3 documents for `kubectl explain`
//! ([`openapi`]), garbage collection ([`gc`]), server-side printing ([`table`]), version
//! conversion ([`convert`]), the resource metrics API ([`metrics_api`], for `kubectl top`)
//! and kwok-style workload simulation ([`sim`]), served over HTTPS ([`http`]) so that the
//! real `kubectl` and kube-rs work against it. Bodies are JSON, YAML or, for built-in
//! kinds, Kubernetes protobuf ([`protobuf`], over the descriptors of [`proto`]); unknown
//! and duplicate fields follow `fieldValidation` ([`fields`]).
//!
//! Its storage holds every Secret of the management cluster, so it is private: every
//! request needs the cluster's bearer token, names the server in `Host` and sends a body
//! Kubernetes accepts ([`access`]); it binds 127.0.0.1 unless told otherwise and serves
//! HTTPS with a CA generated into its data directory ([`tls`]); its files are its owner's
//! only ([`files`]).
//!
//! Start one in-process with [`Cluster::start`]; several can run in one process on
//! distinct ports — and, since load-balancer addresses answer on the host
//! ([`sim::listeners`]), with distinct load-balancer ranges
//! ([`ClusterOptions::with_load_balancer_range`]). [`Cluster::partition`] makes a cluster
//! stop answering, as a region outage does, until healed ([`partition`]). [`Cluster::kubeconfig_path`] names the kubeconfig it wrote, which
//! carries the token (and the CA), so kubectl and kube-rs work through it unchanged.

pub mod access;
pub mod api;
pub mod authz;
pub mod autoscaling;
pub mod convert;
pub mod defaults;
pub mod error;
pub mod fields;
pub mod files;
pub mod gc;
pub mod http;
pub mod metrics_api;
pub mod openapi;
pub mod partition;
pub mod patch;
pub mod podlog;
pub mod proto;
pub mod protobuf;
pub mod quantity;
pub mod registry;
pub mod schedule;
pub mod sim;
pub mod store;
pub mod structural;
pub mod table;
pub mod tls;
/// Label/field selectors and name/label validation are Kubernetes vocabulary shared with the
/// controller and `mooring check`; their one home is `mooring_core`.
pub use mooring_core::{selector, validation};

use api::Api;
use base64::Engine as _;
use registry::Registry;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
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
    #[error("cannot listen on {address}: {source} (is another cluster using the port? pick another with --port)")]
    Bind {
        address: String,
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
    #[error(transparent)]
    Token(#[from] access::AccessError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// How to start an embedded cluster.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Cluster (and kubeconfig context) name.
    pub name: String,
    /// Port on [`bind_address`](Self::bind_address); 0 picks a free one.
    pub port: u16,
    /// Address to listen on: 127.0.0.1 by default. The serving certificate names it.
    pub bind_address: IpAddr,
    /// Further names (DNS names or addresses) clients use to reach the cluster: accepted
    /// in `Host` and written into the serving certificate. Bound to all interfaces
    /// (`0.0.0.0`), only loopback names and these are accepted: name the host's own.
    pub hostnames: Vec<String>,
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
    /// How long Events live after their last write (kube-apiserver's `--event-ttl`,
    /// default one hour); older ones are deleted ([`sim::events::expire`]).
    pub event_ttl: std::time::Duration,
}

impl ClusterOptions {
    /// The same options with load-balancer addresses from `range` (a CIDR such as
    /// `127.0.101.0/24` or `FIRST-LAST`). The addresses are listened on, so two embedded
    /// clusters on one host — a primary and a standby in a test — need distinct ranges;
    /// otherwise the second cluster's listeners fail (a `ListenFailed` Event).
    pub fn with_load_balancer_range(
        mut self,
        range: &str,
    ) -> Result<Self, sim::LoadBalancerConfigError> {
        self.sim.load_balancer = sim::LoadBalancerAddresses::Range(range.parse()?);
        Ok(self)
    }
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            name: "mooring".into(),
            port: 0,
            bind_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            hostnames: vec![],
            data_dir: None,
            sim: sim::SimOptions::default(),
            event_log: store::DEFAULT_EVENT_LOG,
            crds: vec![],
            namespaces: vec![mooring_core::app::CONTROL_PLANE_NAMESPACE.into()],
            event_ttl: sim::events::DEFAULT_TTL,
        }
    }
}

/// A running embedded cluster. Dropping it stops the server and its controllers.
pub struct Cluster {
    pub name: String,
    pub addr: SocketAddr,
    pub api: Api,
    kubeconfig: PathBuf,
    url: String,
    dir: PathBuf,
    token: access::Token,
    ca_pem: String,
    _tmp: Option<tempdir::TempDir>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    partition: partition::Partition,
}

mod tempdir {
    //! A minimal self-deleting private (0700) directory for in-memory clusters'
    //! kubeconfigs and TLS files.
    use std::path::{Path, PathBuf};

    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new(prefix: &str) -> std::io::Result<Self> {
            let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4()));
            crate::files::private_dir(&dir)?;
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

/// Serve `app` on `listener` until `stop` fires.
async fn serve<L>(listener: L, app: axum::Router, stop: tokio::sync::oneshot::Receiver<()>)
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
{
    let r = axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = stop.await;
        })
        .await;
    if let Err(e) = r {
        tracing::error!("embedded cluster server stopped: {e}");
    }
}

impl Cluster {
    /// Start a cluster: open (or create) its private data directory and storage, serve
    /// the API, start garbage collection and workload simulation, and write a kubeconfig
    /// with the cluster's token.
    pub async fn start(opts: ClusterOptions) -> Result<Cluster, ClusterError> {
        if let Some(d) = &opts.data_dir {
            files::private_dir(d).map_err(|source| ClusterError::DataDir {
                path: d.clone(),
                source,
            })?;
        }
        let store = Arc::new(Store::open(opts.data_dir.as_deref(), opts.event_log)?);
        let api = Api::new(store, Registry::with_builtins());
        api.load_crds();
        bootstrap(&api, &opts)?;

        let wanted = SocketAddr::new(opts.bind_address, opts.port);
        let bind_error = |source| ClusterError::Bind {
            address: wanted.to_string(),
            source,
        };
        let listener = tokio::net::TcpListener::bind(wanted)
            .await
            .map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
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
        // Per data directory; an in-memory cluster's lives in its temporary directory, so
        // a new one is generated at every start.
        let token = access::Token::load_or_create(&dir)?;
        let pki = tls::load_or_create(&dir, opts.bind_address, &opts.hostnames)?;
        // Clients reach an unspecified (all-interfaces) address through loopback.
        let host = if opts.bind_address.is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            access::host_literal(opts.bind_address)
        };
        let address = format!("{host}:{}", addr.port());
        let url = format!("https://{address}");
        let ca_pem = pki.ca_pem.clone();
        let kubeconfig = dir.join("kubeconfig");
        files::write_private(
            &kubeconfig,
            kubeconfig_yaml(&opts.name, &url, &token, &ca_pem).as_bytes(),
        )
        .map_err(|source| ClusterError::Kubeconfig {
            path: kubeconfig.clone(),
            source,
        })?;

        let logs = sim::logs::PodLogs::default();
        let traffic = sim::Traffic::with_logs(logs.clone());
        let partition = partition::Partition::new();
        let metrics =
            sim::metrics_handler_with(api.clone(), Some(address.clone()), traffic.clone());
        let state = http::HttpState {
            api: api.clone(),
            address: address.clone(),
            metrics: Some(metrics),
            access: Arc::new(access::Access::new(
                token.clone(),
                opts.bind_address,
                addr.port(),
                &opts.hostnames,
            )),
            partition: partition.clone(),
            logs: logs.clone(),
            openapi: openapi::Cache::shared(),
        };
        let app = http::router(state);
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let mut tasks = vec![tokio::spawn(serve(
            tls::TlsListener::new(listener, addr, pki.server),
            app,
            rx,
        ))];
        tasks.push(tokio::spawn(gc::run(api.clone())));
        tasks.push(tokio::spawn(sim::events::expire(
            api.clone(),
            opts.event_ttl,
        )));
        tasks.extend(sim::start_with(api.clone(), opts.sim.clone(), logs));
        if opts.sim.enabled {
            tasks.push(sim::listeners::start(
                api.clone(),
                partition.clone(),
                traffic,
            ));
        }
        tasks.push(tokio::spawn(partition.clone().heal_when_due()));
        tracing::info!(cluster = %opts.name, %addr, "embedded cluster serving");
        Ok(Cluster {
            name: opts.name,
            addr,
            api,
            kubeconfig,
            url,
            dir,
            token,
            ca_pem,
            _tmp: tmp,
            tasks,
            shutdown: Some(tx),
            partition,
        })
    }

    /// Partition the cluster (`true`: stop answering, as in a region outage) or heal it
    /// (`false`), as `PUT /sim.mooring.dev/v1/partition` does; see [`partition`]. A
    /// partition set here lasts until healed.
    pub fn partition(&self, on: bool) {
        self.partition.set(on, None);
    }

    /// Partition the cluster for at most `max`; it heals by itself afterwards.
    pub fn partition_for(&self, max: std::time::Duration) {
        self.partition.set(true, Some(max));
    }

    /// Whether the cluster is partitioned now.
    pub fn is_partitioned(&self) -> bool {
        self.partition.is_partitioned()
    }

    /// The kubeconfig file this cluster wrote (context = cluster name).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// `https://127.0.0.1:PORT` (the bind address instead of 127.0.0.1 when bound
    /// elsewhere).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The bearer token every request needs (also in the kubeconfig).
    pub fn token(&self) -> &str {
        self.token.expose()
    }

    /// The file (0600) holding [`token`](Self::token), for tools that read a credentials
    /// file (Prometheus' `authorization.credentials_file`).
    pub fn token_path(&self) -> PathBuf {
        self.dir.join(access::TOKEN_FILE)
    }

    /// PEM of the CA that issued the serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The file holding [`ca_pem`](Self::ca_pem).
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join(tls::CA_CERT_FILE)
    }

    /// How to reach this cluster as a registered destination (an Argo CD cluster
    /// Secret's `config`): its bearer token and its CA.
    pub fn client_config(&self) -> mooring_core::cluster::ClusterConfig {
        mooring_core::cluster::ClusterConfig {
            bearer_token: Some(self.token.expose().to_string()),
            tls_client_config: mooring_core::cluster::TlsClientConfig {
                ca_data: Some(base64::engine::general_purpose::STANDARD.encode(&self.ca_pem)),
                ..Default::default()
            },
            ..Default::default()
        }
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

/// The kubeconfig YAML for a cluster at `url` with bearer `token` and the CA that issued
/// its certificate. Its context names no namespace, as kind's does: kubectl then uses
/// `default`, and Mooring's CLI its control-plane namespace.
pub fn kubeconfig_yaml(name: &str, url: &str, token: &access::Token, ca_pem: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let token = token.expose();
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: {name}
  cluster:
    server: {url}
    certificate-authority-data: {ca}
contexts:
- name: {name}
  context:
    cluster: {name}
    user: {name}-admin
current-context: {name}
users:
- name: {name}-admin
  user:
    token: {token}
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
    // The default RBAC roles of a real cluster (crate::authz), created once: an
    // administrator may change or delete them, as in Kubernetes.
    for obj in authz::bootstrap_objects() {
        let kind = obj["kind"].as_str().unwrap_or_default();
        let rt = api
            .registry
            .get(
                "rbac.authorization.k8s.io",
                "v1",
                authz::bootstrap_plural(kind),
            )
            .ok_or_else(|| error::ApiError::Internal(format!("{kind} is not registered")))?;
        let name = obj
            .pointer("/metadata/name")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string();
        if api.get(&rt, None, &name).is_err() {
            api.create(&rt, None, obj, &wo)?;
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
