//! `mooring bench protobuf --writes N --writers W`: writes/s creating the same objects
//! with Kubernetes protobuf bodies and with JSON bodies.
//!
//! kubectl's generators and client-go with protobuf enabled send
//! `application/vnd.kubernetes.protobuf`; the embedded cluster converts those bodies to
//! the JSON it stores ([`mooring_apiserver::protobuf`]) and answers in protobuf when asked.
//! This measures what that costs against plain JSON: an embedded cluster with SQLite
//! storage in a temporary directory and the simulation off (so Deployments spawn nothing),
//! and a kubectl-like client (kube-rs' HTTPS client with the cluster's kubeconfig, keeping
//! its connections) creating N Deployments (the shape `kubectl create deployment` sends)
//! and N ConfigMaps with W concurrent writers per format, each format in its own
//! namespace, in two rounds that alternate which format goes first. Request bodies are encoded before the clock starts (the server's figure,
//! not the client's encoder); each answer is read whole in the format the request asked
//! for (`Accept`: protobuf with `*/*` as client-go sends it, or JSON).

use anyhow::Context;
use futures::AsyncReadExt as _;
use mooring_apiserver::protobuf;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

fn deployment(name: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": "server", "image": "registry.local/model-server:1.4.2",
                    "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                    "resources": {"requests": {"cpu": "500m", "memory": "1Gi"},
                                  "limits": {"cpu": "2", "memory": "4Gi"}},
                }]},
            },
        },
    })
}

fn configmap(name: &str, i: usize) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "bench", "shard": format!("s{}", i % 10)}},
        "data": {"model": "resnet50", "version": format!("v{i}"), "threshold": "0.95"},
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Json,
    Protobuf,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Json => "JSON",
            Format::Protobuf => "protobuf",
        }
    }

    fn encode(self, v: &Value) -> anyhow::Result<Vec<u8>> {
        Ok(match self {
            Format::Json => serde_json::to_vec(v)?,
            Format::Protobuf => {
                protobuf::encode_object(v).context("a built-in kind has a protobuf form")??
            }
        })
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Protobuf => protobuf::MEDIA_TYPE,
        }
    }

    fn accept(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Protobuf => "application/vnd.kubernetes.protobuf, */*",
        }
    }
}

struct Row {
    kind: &'static str,
    format: Format,
    elapsed: Duration,
    body_bytes: usize,
}

async fn create_all(
    client: &mooring_k8s::kube::Client,
    path: &str,
    bodies: Vec<Vec<u8>>,
    format: Format,
    writers: usize,
) -> anyhow::Result<Duration> {
    let bodies = Arc::new(bodies);
    let client = client.clone();
    let path = path.to_string();
    super::parallel(bodies.len(), writers, move |i| {
        let client = client.clone();
        let bodies = bodies.clone();
        let path = path.clone();
        async move {
            let req = http::Request::post(&path)
                .header(http::header::CONTENT_TYPE, format.content_type())
                .header(http::header::ACCEPT, format.accept())
                .body(bodies[i].clone())
                .context("building the create request")?;
            let mut answer = client
                .request_stream(req)
                .await
                .with_context(|| format!("creating object {i} in {}", format.name()))?;
            let mut buf = Vec::new();
            answer.read_to_end(&mut buf).await?;
            Ok(())
        }
    })
    .await
}

fn namespace(format: Format) -> String {
    format!("bench-{}", format.name().to_ascii_lowercase())
}

pub async fn run(writes: usize, writers: usize) -> anyhow::Result<()> {
    let writes = writes.max(1);
    let dir = tempfile::tempdir()?;
    let cluster = mooring_apiserver::Cluster::start(mooring_apiserver::ClusterOptions {
        data_dir: Some(dir.path().to_path_buf()),
        port: 0,
        sim: mooring_apiserver::sim::SimOptions {
            enabled: false,
            ..Default::default()
        },
        ..Default::default()
    })
    .await?;
    let client = mooring_k8s::client_from_kubeconfig(cluster.kubeconfig_path()).await?;
    for format in [Format::Json, Format::Protobuf] {
        let ns_body = json!({"apiVersion": "v1", "kind": "Namespace",
                             "metadata": {"name": namespace(format)}});
        create_all(
            &client,
            "/api/v1/namespaces",
            vec![format.encode(&ns_body)?],
            format,
            1,
        )
        .await?;
    }
    // Two rounds of half the writes each, the formats in turn first, so that neither
    // always writes into the larger database.
    let mut rows: Vec<Row> = Vec::new();
    let half = writes.div_ceil(2);
    for round in 0..2 {
        let order = if round == 0 {
            [Format::Json, Format::Protobuf]
        } else {
            [Format::Protobuf, Format::Json]
        };
        for format in order {
            let ns = namespace(format);
            for kind in ["Deployment", "ConfigMap"] {
                let names = (round * half..(round + 1) * half).map(|i| (i, format!("o-{i}")));
                let (path, bodies) = if kind == "Deployment" {
                    let bodies: anyhow::Result<Vec<Vec<u8>>> =
                        names.map(|(_, n)| format.encode(&deployment(&n))).collect();
                    (
                        format!("/apis/apps/v1/namespaces/{ns}/deployments"),
                        bodies?,
                    )
                } else {
                    let bodies: anyhow::Result<Vec<Vec<u8>>> = names
                        .map(|(i, n)| format.encode(&configmap(&n, i)))
                        .collect();
                    (format!("/api/v1/namespaces/{ns}/configmaps"), bodies?)
                };
                let body_bytes = bodies.iter().map(Vec::len).sum::<usize>() / half;
                let elapsed = create_all(&client, &path, bodies, format, writers).await?;
                match rows
                    .iter_mut()
                    .find(|r| r.kind == kind && r.format == format)
                {
                    Some(r) => r.elapsed += elapsed,
                    None => rows.push(Row {
                        kind,
                        format,
                        elapsed,
                        body_bytes,
                    }),
                }
            }
        }
    }
    let writes = 2 * half;
    println!("protobuf vs JSON request bodies: {writes} creates per row, {writers} writers");
    println!(
        "{:<11} {:<9} {:>10} {:>10} {:>12}",
        "kind", "format", "seconds", "writes/s", "body bytes"
    );
    for r in &rows {
        println!(
            "{:<11} {:<9} {:>10.2} {:>10.0} {:>12}",
            r.kind,
            r.format.name(),
            r.elapsed.as_secs_f64(),
            writes as f64 / r.elapsed.as_secs_f64(),
            r.body_bytes
        );
    }
    for kind in ["Deployment", "ConfigMap"] {
        let rate = |f: Format| {
            rows.iter()
                .find(|r| r.kind == kind && r.format == f)
                .map(|r| writes as f64 / r.elapsed.as_secs_f64())
                .unwrap_or(f64::NAN)
        };
        println!(
            "{kind}: protobuf at {:.2}x the JSON rate",
            rate(Format::Protobuf) / rate(Format::Json)
        );
    }
    drop(cluster);
    Ok(())
}
