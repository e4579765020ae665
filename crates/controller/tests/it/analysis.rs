//! Analysis against real parts: the embedded cluster's simulated pod metrics scraped by a
//! real Prometheus (the Debian `prometheus` binary), AnalysisRuns measured by the
//! analysis controller.

use crate::support::eventually;
use mooring_apiserver::{sim::SimOptions, Cluster, ClusterOptions};
use mooring_controller::prometheus::{
    LocalPrometheus, LocalPrometheusOptions, PromClient, PromValue,
};
use mooring_k8s::kube;
use mooring_k8s::kube::api::{Api, DynamicObject, PostParams};
use mooring_k8s::kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};
use std::time::Duration;

pub fn dynamic_api(
    client: &kube::Client,
    ns: &str,
    group: &str,
    version: &str,
    kind: &str,
    plural: &str,
) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        ns,
        &ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural),
    )
}

pub async fn create(api: &Api<DynamicObject>, obj: Value) {
    let o: DynamicObject = serde_json::from_value(obj).expect("object");
    api.create(&PostParams::default(), &o)
        .await
        .expect("create");
}

pub fn deployment(name: &str, error_rate: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name},
                "annotations": {"sim.mooring.dev/error-rate": error_rate, "sim.mooring.dev/request-rate": "50"}},
                "spec": {"containers": [{"name": "serve", "image": "registry.local/serve:1"}]}}}
    })
}

pub async fn start_prometheus(cluster: &Cluster, dir: &std::path::Path) -> LocalPrometheus {
    LocalPrometheus::start(LocalPrometheusOptions {
        binary: None,
        data_dir: dir.to_path_buf(),
        listen: None,
        scrape_interval: Duration::from_secs(1),
        cluster_urls: vec![cluster.url()],
    })
    .await
    .expect("prometheus starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_prometheus_scrapes_the_simulated_error_rate() {
    let cluster = Cluster::start(ClusterOptions {
        sim: SimOptions {
            speed: 20.0,
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .expect("cluster");
    let client = mooring_k8s::client_from_kubeconfig(cluster.kubeconfig_path())
        .await
        .expect("client");
    let deploys = dynamic_api(
        &client,
        "default",
        "apps",
        "v1",
        "Deployment",
        "deployments",
    );
    create(&deploys, deployment("model", "0.2")).await;
    let dir = tempfile::tempdir().expect("tmp");
    let prom = start_prometheus(&cluster, dir.path()).await;
    let pc = PromClient::new(&format!("{}/", prom.url())).expect("client");
    let q =
        r#"sum(rate(http_requests_total{code=~"5.."}[10s])) / sum(rate(http_requests_total[10s]))"#;
    let rate = eventually(90, "an error rate near 0.2", || async {
        match pc.query(q, Duration::from_secs(5)).await {
            Ok(PromValue::Vector(v)) if v.len() == 1 && (v[0].value - 0.2).abs() < 0.05 => {
                Some(v[0].value)
            }
            _ => None,
        }
    })
    .await;
    assert!((rate - 0.2).abs() < 0.05);

    // A bad query keeps Prometheus' own error text.
    let e = pc
        .query("sum(rate(", Duration::from_secs(5))
        .await
        .expect_err("parse error");
    assert!(e.to_string().contains("bad_data"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_prometheus_binary_says_how_to_install_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let e = LocalPrometheus::start(LocalPrometheusOptions {
        binary: Some(dir.path().join("no-such-prometheus")),
        data_dir: dir.path().join("data"),
        listen: None,
        scrape_interval: Duration::from_secs(1),
        cluster_urls: vec![],
    })
    .await
    .expect_err("missing binary");
    assert!(e.to_string().contains("apt-get install prometheus"), "{e}");

    // Nobody listens on a port we just freed: the client reports the address.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let pc = PromClient::new(&format!("http://127.0.0.1:{port}")).expect("client");
    let e = pc
        .query("up", Duration::from_secs(2))
        .await
        .expect_err("unreachable");
    assert!(e.to_string().contains("unreachable"), "{e}");
}
