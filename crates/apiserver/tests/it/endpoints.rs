//! Load-balancer addresses that answer, and the partition failure mode, through real
//! clients on 127.0.0.0/8: `curl`, raw TCP, kube-rs and raw HTTPS. Each test uses its own
//! load-balancer range (never the default one, which other test binaries' clusters use).

use crate::support::{client, eventually, raw, start_with, try_raw};
use mooring_apiserver::api::{
    Api, DeleteOptions, ListOptions, PatchType, Subresource, WriteOptions,
};
use mooring_apiserver::registry::ResourceType;
use mooring_apiserver::{Cluster, ClusterOptions};
use mooring_k8s::{k8s_openapi, kube};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn cluster(range: &str) -> Cluster {
    start_with(
        ClusterOptions::default()
            .with_load_balancer_range(range)
            .expect("range"),
    )
    .await
}

fn rt(api: &Api, group: &str, plural: &str) -> Arc<ResourceType> {
    let version = if group.is_empty() || group == "apps" || group == "networking.k8s.io" {
        "v1"
    } else {
        panic!("unexpected group {group}")
    };
    api.registry
        .get(group, version, plural)
        .unwrap_or_else(|| panic!("{group}/{plural} registered"))
}

fn wo() -> WriteOptions {
    WriteOptions {
        field_manager: Some("endpoints-test".into()),
        ..Default::default()
    }
}

fn create(api: &Api, group: &str, plural: &str, obj: Value) {
    api.create(&rt(api, group, plural), Some("default"), obj, &wo())
        .unwrap_or_else(|e| panic!("create {plural}: {e}"));
}

fn scale(api: &Api, group: &str, plural: &str, name: &str, replicas: i64) {
    api.patch(
        &rt(api, group, plural),
        Some("default"),
        name,
        PatchType::Merge,
        &json!({"spec": {"replicas": replicas}}),
        Subresource::Main,
        &wo(),
    )
    .unwrap_or_else(|e| panic!("scale {name}: {e}"));
}

/// A model server as users write it: a readiness probe on `/health`, no simulated
/// background traffic (so the metrics count exactly the requests the test sends).
fn model_deployment(name: &str, replicas: i64) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": {"sim.mooring.dev/request-rate": "0"}},
                "spec": {"containers": [{"name": "server", "image": "ghcr.io/example/model-server:1.4.2",
                    "ports": [{"name": "http", "containerPort": 8080}],
                    "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}}}]},
            },
        },
    })
}

fn lb_service(name: &str, ports: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name},
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": ports},
    })
}

/// The Service's load-balancer address, once given.
async fn lb_ip(api: &Api, name: &str) -> String {
    eventually(20, &format!("an address for Service {name}"), || async {
        api.get(&rt(api, "", "services"), Some("default"), name)
            .ok()?
            .pointer("/status/loadBalancer/ingress/0/ip")?
            .as_str()
            .map(str::to_string)
    })
    .await
}

/// `GET path` over plain TCP with `Host: host`: (status code, body).
async fn http_get(addr: SocketAddr, host: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .map_err(|_| std::io::Error::other("connect timed out"))??;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: test\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .map_err(|_| std::io::Error::other("read timed out"))??;
    let text = String::from_utf8_lossy(&out).to_string();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {text:?}")))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    Ok((code, body.to_string()))
}

/// Wait until connecting to `addr` is refused (a reset is a listener still closing).
async fn refused(addr: SocketAddr, what: &str) {
    eventually(20, what, || async {
        TcpStream::connect(addr)
            .await
            .err()
            .filter(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
    })
    .await;
}

/// The real `curl`: Ok(status code, body) or Err(curl's exit code).
async fn curl(url: &str, host: Option<&str>) -> Result<(u16, String), i32> {
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args(["-sS", "--max-time", "5", "-w", "\n%{http_code}", url]);
    if let Some(h) = host {
        cmd.args(["-H", &format!("Host: {h}")]);
    }
    let out = cmd.output().await.expect("curl runs (install curl)");
    if !out.status.success() {
        return Err(out.status.code().unwrap_or(-1));
    }
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').expect("curl -w output");
    Ok((code.trim().parse().expect("status code"), body.to_string()))
}

/// Sum of `http_requests_total{code="200"}` over the Pods of app `app`, as Prometheus
/// would scrape it from the cluster.
async fn served_200(c: &Cluster, app: &str) -> u64 {
    let r = raw(
        c,
        &format!(
            "GET /metrics/pods/default HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}",
            c.addr,
            c.token()
        ),
        b"",
    )
    .await;
    assert_eq!(r.code, 200, "{}", r.body);
    r.body
        .lines()
        .filter(|l| {
            l.starts_with("http_requests_total{")
                && l.contains(&format!("app=\"{app}\""))
                && l.contains("code=\"200\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_and_ingress_answer_200_while_ready_and_503_after_scale_to_zero() {
    let c = cluster("127.0.110.0/24").await;
    let api = &c.api;
    create(api, "apps", "deployments", model_deployment("model", 2));
    create(
        api,
        "",
        "services",
        lb_service(
            "model",
            json!([{"name": "http", "port": 80, "targetPort": "http"}]),
        ),
    );
    create(
        api,
        "networking.k8s.io",
        "ingresses",
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "model"},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": "model.example.test", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "model", "port": {"name": "http"}}}}]}}]},
        }),
    );
    let ip = lb_ip(api, "model").await;
    assert_eq!(ip, "127.0.110.2");
    let ok = AtomicU64::new(0);
    let count = |r: Result<(u16, String), i32>| {
        if matches!(r, Ok((200, _))) {
            ok.fetch_add(1, Ordering::SeqCst);
        }
        r
    };
    // The real curl, as the seed's validation script runs it.
    let url = format!("http://{ip}/health");
    let body = eventually(30, "200 from the Service address with 2 ready", || async {
        match count(curl(&url, None).await) {
            Ok((200, b)) if b.contains("\"ready\":2") => Some(b),
            _ => None,
        }
    })
    .await;
    let v: Value = serde_json::from_str(&body).expect("JSON body");
    assert_eq!(v["service"], "default/model");
    // The Ingress address routes by Host.
    let ingress = "http://127.0.110.1/health";
    eventually(30, "200 through the Ingress", || async {
        matches!(
            count(curl(ingress, Some("model.example.test")).await),
            Ok((200, _))
        )
        .then_some(())
    })
    .await;
    let ingress_addr: SocketAddr = "127.0.110.1:80".parse().expect("addr");
    let (code, body) = http_get(ingress_addr, "other.example.test", "/health")
        .await
        .expect("an answer");
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("other.example.test"), "{body}");
    // Raw TCP speaking HTTP, as any client does.
    let svc_addr: SocketAddr = format!("{ip}:80").parse().expect("addr");
    for _ in 0..3 {
        let r = count(http_get(svc_addr, &ip, "/predict").await.map_err(|_| -1));
        assert!(matches!(r, Ok((200, _))), "{r:?}");
    }
    // Every 200 counted on the Pods' metrics (no simulated background traffic here).
    let want = ok.load(Ordering::SeqCst);
    assert!(want >= 5);
    assert_eq!(served_200(&c, "model").await, want);

    scale(api, "apps", "deployments", "model", 0);
    let body = eventually(
        30,
        "503 from the Service address after scale to 0",
        || async {
            match curl(&url, None).await {
                Ok((503, b)) => Some(b),
                _ => None,
            }
        },
    )
    .await;
    assert!(
        body.contains("no ready endpoints") && body.contains("default/model"),
        "{body}"
    );
    let (code, _) = http_get(ingress_addr, "model.example.test", "/health")
        .await
        .expect("an answer");
    assert_eq!(code, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_tcp_port_accepts_while_ready_and_refuses_after_scale_to_zero() {
    let c = cluster("127.0.111.0/24").await;
    let api = &c.api;
    create(
        api,
        "apps",
        "statefulsets",
        json!({
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "feature-store"},
            "spec": {
                "replicas": 1, "serviceName": "feature-store",
                "selector": {"matchLabels": {"app": "feature-store"}},
                "template": {"metadata": {"labels": {"app": "feature-store"}},
                    "spec": {"containers": [{"name": "redis", "image": "redis:7.2",
                        "ports": [{"name": "redis", "containerPort": 6379}]}]}},
            },
        }),
    );
    create(
        api,
        "",
        "services",
        lb_service(
            "feature-store",
            json!([{"name": "redis", "port": 6379, "targetPort": "redis"}]),
        ),
    );
    let ip = lb_ip(api, "feature-store").await;
    let addr: SocketAddr = format!("{ip}:6379").parse().expect("addr");
    let mut s = eventually(30, "the feature store's TCP port accepts", || async {
        TcpStream::connect(addr).await.ok()
    })
    .await;
    // A Redis client's PING: the connection is held open (no answer, no close).
    s.write_all(b"*1\r\n$4\r\nPING\r\n").await.expect("send");
    let mut buf = [0u8; 16];
    assert!(
        tokio::time::timeout(Duration::from_millis(800), s.read(&mut buf))
            .await
            .is_err(),
        "the connection stays open"
    );
    drop(s);
    scale(api, "apps", "statefulsets", "feature-store", 0);
    refused(addr, "connection refused after scale to 0").await;
    // Back up: accepted again.
    scale(api, "apps", "statefulsets", "feature-store", 1);
    eventually(30, "the TCP port accepts again", || async {
        TcpStream::connect(addr).await.ok()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_close_with_the_service_and_the_cluster_without_leaking() {
    let addr: SocketAddr = "127.0.112.2:8080".parse().expect("addr");
    for round in 0..4 {
        let c = cluster("127.0.112.0/24").await;
        create(
            &c.api,
            "",
            "services",
            lb_service("web", json!([{"name": "http", "port": 8080}])),
        );
        assert_eq!(lb_ip(&c.api, "web").await, "127.0.112.2");
        // No Pods: an HTTP port answers 503 (and would fail with ListenFailed if the
        // previous round's cluster had leaked its listener).
        eventually(
            20,
            &format!("round {round}: 503 from the address"),
            || async {
                matches!(http_get(addr, "web", "/health").await, Ok((503, _))).then_some(())
            },
        )
        .await;
        if round == 1 {
            // Withheld (the opt-out annotation releases the address): the port closes.
            c.api
                .patch(
                    &rt(&c.api, "", "services"),
                    Some("default"),
                    "web",
                    PatchType::Merge,
                    &json!({"metadata": {"annotations": {"sim.mooring.dev/load-balancer": "pending"}}}),
                    Subresource::Main,
                    &wo(),
                )
                .expect("withhold");
            refused(addr, "refused once withheld").await;
            c.api
                .patch(
                    &rt(&c.api, "", "services"),
                    Some("default"),
                    "web",
                    PatchType::Merge,
                    &json!({"metadata": {"annotations": {"sim.mooring.dev/load-balancer": null}}}),
                    Subresource::Main,
                    &wo(),
                )
                .expect("un-withhold");
            eventually(20, "answers again once re-allocated", || async {
                matches!(http_get(addr, "web", "/health").await, Ok((503, _))).then_some(())
            })
            .await;
        }
        if round == 0 {
            c.api
                .delete(
                    &rt(&c.api, "", "services"),
                    Some("default"),
                    "web",
                    &DeleteOptions::default(),
                )
                .expect("delete service");
        } else {
            drop(c);
        }
        refused(addr, &format!("round {round}: refused once gone")).await;
    }
}

fn partition_put(c: &Cluster, auth: &str) -> String {
    format!(
        "PUT /sim.mooring.dev/v1/partition HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json{auth}",
        c.addr
    )
}

fn bearer(c: &Cluster) -> String {
    format!("\r\nAuthorization: Bearer {}", c.token())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_cuts_api_and_listeners_and_heal_restores_both() {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::ConfigMap;
    let c = cluster("127.0.113.0/24").await;
    let api = &c.api;
    create(api, "apps", "deployments", model_deployment("web", 1));
    create(
        api,
        "",
        "services",
        lb_service(
            "web",
            json!([{"name": "http", "port": 80, "targetPort": "http"}]),
        ),
    );
    let ip = lb_ip(api, "web").await;
    let lb: SocketAddr = format!("{ip}:80").parse().expect("addr");
    eventually(30, "200 before the partition", || async {
        matches!(http_get(lb, &ip, "/health").await, Ok((200, _))).then_some(())
    })
    .await;
    let cms: kube::Api<ConfigMap> = kube::Api::namespaced(client(&c).await, "default");
    let before = cms
        .create(
            &Default::default(),
            &serde_json::from_value(json!({"metadata": {"name": "before"}, "data": {"k": "v"}}))
                .expect("configmap"),
        )
        .await
        .expect("create before the partition");
    let rv_before: u64 = before
        .metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .expect("resourceVersion");
    let mut watch = cms
        .watch(&kube::api::WatchParams::default(), "0")
        .await
        .expect("watch")
        .boxed();
    let watch_ended = tokio::spawn(async move { while let Some(Ok(_)) = watch.next().await {} });

    // The DR controller's way in: PUT over the API with the admin token.
    let r = raw(
        &c,
        &partition_put(&c, &bearer(&c)),
        br#"{"partitioned": true, "maxDuration": "300s"}"#,
    )
    .await;
    assert_eq!(r.code, 200, "{}", r.body);
    let state = r.json();
    assert_eq!(state["partitioned"], true);
    assert!(
        state["healsAt"].is_string() && state["since"].is_string(),
        "{state}"
    );
    assert!(c.is_partitioned());

    tokio::time::timeout(Duration::from_secs(10), watch_ended)
        .await
        .expect("the open watch is cut")
        .expect("watch task");
    let e = try_raw(
        &c,
        &format!(
            "GET /api/v1/namespaces HTTP/1.1\r\nHost: {}{}",
            c.addr,
            bearer(&c)
        ),
        b"",
    )
    .await
    .expect_err("no answer while partitioned");
    assert!(e.contains("no status line"), "{e}");
    assert!(cms.get("before").await.is_err(), "kube-rs gets no answer");
    refused(lb, "the load balancer refuses").await;
    assert_eq!(curl(&format!("http://{ip}/health"), None).await, Err(7));

    // The console keeps answering: state, authentication, hostile bodies.
    let r = raw(
        &c,
        &format!(
            "GET /sim.mooring.dev/v1/partition HTTP/1.1\r\nHost: {}{}",
            c.addr,
            bearer(&c)
        ),
        b"",
    )
    .await;
    assert_eq!(
        (r.code, r.json()["partitioned"].clone()),
        (200, json!(true))
    );
    for auth in ["", "\r\nAuthorization: Bearer 0000000000000000"] {
        let r = raw(&c, &partition_put(&c, auth), br#"{"partitioned": false}"#).await;
        assert_eq!(r.code, 401, "{}", r.body);
    }
    assert!(
        c.is_partitioned(),
        "an unauthenticated heal changes nothing"
    );
    for (body, field) in [
        (
            r#"{"partitioned": true, "maxDuration": "forever"}"#,
            "maxDuration",
        ),
        (
            r#"{"partitioned": true, "maxDuration": "-5s"}"#,
            "maxDuration",
        ),
        (
            r#"{"partitioned": true, "maxDuration": "0s"}"#,
            "maxDuration",
        ),
        (r#"{"partitioned": "no"}"#, "partitioned"),
        (r#"{"partitioned": false, "until": "later"}"#, "until"),
        ("{not json", "JSON"),
    ] {
        let r = raw(&c, &partition_put(&c, &bearer(&c)), body.as_bytes()).await;
        assert_eq!(r.code, 400, "{body}: {}", r.body);
        assert!(
            r.json()["message"]
                .as_str()
                .unwrap_or_default()
                .contains(field),
            "{body}: {}",
            r.body
        );
    }
    let r = raw(
        &c,
        &format!(
            "DELETE /sim.mooring.dev/v1/partition HTTP/1.1\r\nHost: {}{}",
            c.addr,
            bearer(&c)
        ),
        b"",
    )
    .await;
    assert_eq!(r.code, 405);
    assert!(c.is_partitioned(), "rejected requests change nothing");

    // Heal: the same objects, resourceVersions continue, the address answers again.
    let r = raw(
        &c,
        &partition_put(&c, &bearer(&c)),
        br#"{"partitioned": false}"#,
    )
    .await;
    assert_eq!(
        (r.code, r.json()["partitioned"].clone()),
        (200, json!(false))
    );
    let again = cms.get("before").await.expect("the API answers after heal");
    assert_eq!(
        again.metadata.resource_version,
        before.metadata.resource_version
    );
    let after = cms
        .create(
            &Default::default(),
            &serde_json::from_value(json!({"metadata": {"name": "after"}})).expect("configmap"),
        )
        .await
        .expect("create after heal");
    let rv_after: u64 = after
        .metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .expect("resourceVersion");
    assert!(rv_after > rv_before);
    eventually(20, "200 after heal", || async {
        matches!(http_get(lb, &ip, "/health").await, Ok((200, _))).then_some(())
    })
    .await;

    // The in-process switch does the same.
    c.partition(true);
    refused(lb, "refused after Cluster::partition(true)").await;
    c.partition(false);
    eventually(20, "200 after Cluster::partition(false)", || async {
        matches!(http_get(lb, &ip, "/health").await, Ok((200, _))).then_some(())
    })
    .await;
    assert!(api
        .list(
            &rt(api, "", "configmaps"),
            Some("default"),
            &ListOptions::default()
        )
        .is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_heals_by_itself_after_max_duration() {
    let c = cluster("127.0.114.0/24").await;
    let version = format!("GET /version HTTP/1.1\r\nHost: {}", c.addr);
    let r = raw(
        &c,
        &partition_put(&c, &bearer(&c)),
        br#"{"partitioned": true, "maxDuration": "2s"}"#,
    )
    .await;
    assert_eq!(r.code, 200, "{}", r.body);
    assert!(try_raw(&c, &version, b"").await.is_err());
    eventually(15, "the partition heals after maxDuration", || async {
        try_raw(&c, &version, b"")
            .await
            .ok()
            .filter(|r| r.code == 200)
    })
    .await;
    assert!(!c.is_partitioned());
    // The same through the Rust API.
    c.partition_for(Duration::from_secs(2));
    assert!(try_raw(&c, &version, b"").await.is_err());
    eventually(15, "Cluster::partition_for heals", || async {
        try_raw(&c, &version, b"")
            .await
            .ok()
            .filter(|r| r.code == 200)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_held_by_another_cluster_is_a_listen_failed_event() {
    // Two clusters given the same range, as two `mooring cluster start` without
    // --load-balancer-range would: the second cannot listen.
    let a = cluster("127.0.115.0/24").await;
    let b = cluster("127.0.115.0/24").await;
    let svc = lb_service("model", json!([{"name": "http", "port": 8080}]));
    create(&a.api, "", "services", svc.clone());
    assert_eq!(lb_ip(&a.api, "model").await, "127.0.115.2");
    let addr: SocketAddr = "127.0.115.2:8080".parse().expect("addr");
    eventually(20, "the first cluster listens", || async {
        matches!(http_get(addr, "x", "/").await, Ok((503, _))).then_some(())
    })
    .await;
    create(&b.api, "", "services", svc);
    assert_eq!(lb_ip(&b.api, "model").await, "127.0.115.2");
    let message = eventually(
        20,
        "a ListenFailed Event on the second cluster's Service",
        || async {
            b.api
                .list(
                    &rt(&b.api, "", "events"),
                    Some("default"),
                    &ListOptions::default(),
                )
                .ok()?
                .items
                .iter()
                .filter_map(|s| s.value().ok())
                .find(|e| e["reason"] == "ListenFailed" && e["involvedObject"]["name"] == "model")
                .map(|e| {
                    assert_eq!(e["type"], "Warning");
                    e["message"].as_str().unwrap_or_default().to_string()
                })
        },
    )
    .await;
    assert!(message.contains("127.0.115.2:8080"), "{message}");
    assert!(message.to_lowercase().contains("in use"), "{message}");
    // The first cluster still answers for its own Service.
    let (code, body) = http_get(addr, "x", "/").await.expect("answer");
    assert_eq!(code, 503, "{body}");
    // A bad range is refused up front.
    assert!(ClusterOptions::default()
        .with_load_balancer_range("127.0.115.0/33")
        .is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_of_a_load_balancer_address() {
    let c = cluster("127.0.116.0/24").await;
    create(
        &c.api,
        "",
        "services",
        lb_service("web", json!([{"name": "http", "port": 8080}])),
    );
    create(
        &c.api,
        "networking.k8s.io",
        "ingresses",
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
            "spec": {"defaultBackend": {"service": {"name": "web", "port": {"number": 8080}}}},
        }),
    );
    let ip = lb_ip(&c.api, "web").await;
    let addr: SocketAddr = format!("{ip}:8080").parse().expect("addr");
    eventually(20, "the address answers", || async {
        matches!(http_get(addr, "web", "/").await, Ok((503, _))).then_some(())
    })
    .await;
    // A giant request head: 431, not an unbounded read.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "GET / HTTP/1.1\r\nHost: web\r\nX-Pad: {}\r\n",
        "a".repeat(64 * 1024)
    );
    let _ = s.write_all(head.as_bytes()).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    // Not HTTP, on an HTTP port without ready endpoints: reset, nothing answered.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"\x16\x03\x01 not http\r\n")
        .await
        .expect("send");
    let mut buf = [0u8; 64];
    let r = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("closed at once");
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    // The Ingress address speaks HTTP only; its default backend routes the rest.
    let ingress: SocketAddr = "127.0.116.1:80".parse().expect("addr");
    let (code, body) = eventually(20, "the Ingress address answers", || async {
        http_get(ingress, "anything.test", "/x").await.ok()
    })
    .await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("default/web"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_not_on_this_host_is_a_listen_failed_event_not_a_crash() {
    // TEST-NET-2 (RFC 5737) is on no local interface: the range is accepted (as on a LAN
    // with MetalLB), binding fails, the cluster says so and keeps serving.
    assert!(
        std::net::TcpListener::bind("198.51.100.2:0").is_err(),
        "this test needs 198.51.100.2 not to be an address of this host"
    );
    let c = cluster("198.51.100.0/24").await;
    create(
        &c.api,
        "",
        "services",
        lb_service("model", json!([{"name": "http", "port": 8080}])),
    );
    assert_eq!(lb_ip(&c.api, "model").await, "198.51.100.2");
    let message = eventually(20, "a ListenFailed Event", || async {
        c.api
            .list(
                &rt(&c.api, "", "events"),
                Some("default"),
                &ListOptions::default(),
            )
            .ok()?
            .items
            .iter()
            .filter_map(|s| s.value().ok())
            .find(|e| e["reason"] == "ListenFailed")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
    })
    .await;
    assert!(message.contains("198.51.100.2:8080"), "{message}");
    let r = raw(
        &c,
        &format!("GET /version HTTP/1.1\r\nHost: {}", c.addr),
        b"",
    )
    .await;
    assert_eq!(r.code, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_with_the_kubeconfig_drives_the_partition_as_the_dr_controller_does() {
    use mooring_core::dr::{PartitionRequest, PARTITION_PATH};
    let c = cluster("127.0.117.0/24").await;
    let kc = client(&c).await;
    let put = |body: &PartitionRequest| {
        http::Request::put(PARTITION_PATH)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).expect("json"))
            .expect("request")
    };
    let on = PartitionRequest {
        partitioned: true,
        max_duration: Some("120s".into()),
    };
    let text = kc.request_text(put(&on)).await.expect("partition");
    let state: Value = serde_json::from_str(&text).expect("state");
    assert_eq!(state["partitioned"], true);
    assert!(c.is_partitioned());
    let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(kc.clone());
    assert!(namespaces.list(&Default::default()).await.is_err());
    let text = kc
        .request_text(put(&PartitionRequest::default()))
        .await
        .expect("heal over a new connection");
    assert!(text.contains("\"partitioned\":false"), "{text}");
    assert!(namespaces.list(&Default::default()).await.is_ok());
}
