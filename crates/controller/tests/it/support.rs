//! Test harness: a Git repository built with the git CLI, an embedded cluster with
//! Mooring's CRDs, and a running controller.

use mooring_apiserver::{sim::SimOptions, Cluster, ClusterOptions};
use mooring_controller::{Controller, ControllerOptions};
use mooring_k8s::kube;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub struct Repo {
    pub dir: tempfile::TempDir,
}

impl Repo {
    pub fn new() -> Repo {
        let dir = tempfile::tempdir().expect("tmp");
        let r = Repo { dir };
        r.git(&["init", "-q", "-b", "main"]);
        r
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.path().display())
    }

    pub fn git(&self, args: &[&str]) -> String {
        let o = Command::new("git")
            .args(["-c", "user.name=test", "-c", "user.email=test@example.com"])
            .args(args)
            .current_dir(self.path())
            .output()
            .expect("git must be installed");
        assert!(
            o.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    pub fn write(&self, rel: &str, content: &str) {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
    }

    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.path().join(rel)).expect("remove");
    }

    /// Commit everything; returns the commit id.
    pub fn commit(&self, msg: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", msg]);
        self.git(&["rev-parse", "HEAD"])
    }
}

pub struct Env {
    /// Kept alive for the test's duration (dropping it stops the cluster).
    _cluster: Option<Cluster>,
    pub client: kube::Client,
    pub controller: Controller,
    _cache: tempfile::TempDir,
}

pub async fn env() -> Env {
    let (cluster, mut e) = env_with_cluster().await;
    e._cluster = Some(cluster);
    e
}

/// The cluster separately, so a test can kill the controller and start another.
pub async fn env_with_cluster() -> (Cluster, Env) {
    let cluster = Cluster::start(ClusterOptions {
        sim: SimOptions {
            speed: 20.0,
            ..Default::default()
        },
        crds: mooring_k8s::crds::all(),
        ..Default::default()
    })
    .await
    .expect("cluster");
    let e = controller_for(&cluster).await;
    (cluster, e)
}

/// A fresh controller (own Git cache) against `cluster`.
pub async fn controller_for(cluster: &Cluster) -> Env {
    controller_with(cluster, |_| {}).await
}

/// A fresh controller against `cluster`, with the test defaults changed by `options`.
pub async fn controller_with(
    cluster: &Cluster,
    options: impl FnOnce(&mut ControllerOptions),
) -> Env {
    let client = mooring_k8s::client_from_kubeconfig(cluster.kubeconfig_path())
        .await
        .expect("client");
    let cache = tempfile::tempdir().expect("tmp");
    let mut opts = ControllerOptions {
        cache_dir: PathBuf::from(cache.path()),
        operation_poll: Duration::from_millis(100),
        orphan_scan: Some(Duration::from_millis(300)),
        ..Default::default()
    };
    options(&mut opts);
    let controller = Controller::start(client.clone(), opts)
        .await
        .expect("controller");
    Env {
        _cluster: None,
        client,
        controller,
        _cache: cache,
    }
}

pub use mooring_testkit::eventually;

/// Open the controller's outbound client to `allow` as an admin does: the
/// `outbound.allow` key of the `mooring-cm` ConfigMap in `argocd`; returns once the
/// client follows it (no restart). Tests whose analysis or webhooks talk to servers on
/// 127.0.0.1 need it: loopback is refused by default.
pub async fn allow_outbound(
    client: &kube::Client,
    outbound: &mooring_controller::outbound::Outbound,
    allow: &str,
) {
    use mooring_k8s::k8s_openapi::api::core::v1::ConfigMap;
    let api: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), "argocd");
    api.patch(
        "mooring-cm",
        &kube::api::PatchParams::apply("test-admin").force(),
        &kube::api::Patch::Apply(serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "mooring-cm", "namespace": "argocd"},
            "data": {"outbound.allow": allow},
        })),
    )
    .await
    .expect("mooring-cm");
    eventually(30, "the outbound allowlist in force", || async {
        (outbound.allow_text().as_deref() == Some(allow)).then_some(())
    })
    .await;
}

pub fn field<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

pub use mooring_testkit::receiver::HttpReceiver;
