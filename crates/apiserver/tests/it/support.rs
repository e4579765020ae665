//! Test harness: start an embedded cluster in-process and get a kube-rs client for it.

use mooring_apiserver::{sim::SimOptions, Cluster, ClusterOptions};
use std::path::PathBuf;

/// Simulation speed used by tests: fast, but every state still passes through.
pub const TEST_SPEED: f64 = 20.0;

pub async fn start(data_dir: Option<PathBuf>) -> Cluster {
    start_with(ClusterOptions {
        data_dir,
        ..Default::default()
    })
    .await
}

pub async fn start_with(mut opts: ClusterOptions) -> Cluster {
    opts.sim = SimOptions {
        speed: TEST_SPEED,
        ..opts.sim
    };
    Cluster::start(opts).await.expect("embedded cluster starts")
}

pub async fn client(c: &Cluster) -> kube::Client {
    mooring_k8s::client_from_kubeconfig(c.kubeconfig_path())
        .await
        .expect("client from the cluster's kubeconfig")
}

pub use mooring_testkit::eventually;
