//! `mooring bench api-flood --seconds N --writers W`: the REST API and the webhook under a
//! flood of bad requests from 127.0.0.1, and what it costs a valid client.
//!
//! Every client of a loopback server is 127.0.0.1, so the failed-authentication limiter
//! must not count per address (issue 12, finding 7). This benchmark starts the embedded
//! cluster, a controller and the HTTP endpoints exactly as `mooring up` composes them
//! (REST API + webhook with a webhook secret), then:
//!
//! 1. measures the admin's valid token alone (`GET /api/v1/session/userinfo`, one request
//!    at a time, for N seconds);
//! 2. starts W flooders from 127.0.0.1 for N seconds — half send malformed and
//!    well-formed unknown tokens to the REST API, half unsigned pushes to the webhook —
//!    and measures the admin's token again while they run.
//!
//! It prints p50/p99 of the valid token without and during the flood, the admin's
//! refusals (which must be 0), and the flood's request rate and status codes. The loops
//! are bounded by time; figures are recorded in docs/benchmarks.md.

use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::gitops::percentile;

/// One HTTP/1.1 request on a fresh connection (as a curl loop would send it): the status.
async fn request(addr: SocketAddr, method: &str, path: &str, headers: &str, body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return 0;
    };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if s.write_all(head.as_bytes()).await.is_err() || s.write_all(body).await.is_err() {
        return 0;
    }
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// The admin's latencies for `secs`, one request at a time, and how many were refused.
async fn measure(addr: SocketAddr, token: &str, secs: u64) -> (Vec<Duration>, usize) {
    let auth = format!("Authorization: Bearer {token}\r\n");
    let end = Instant::now() + Duration::from_secs(secs);
    let (mut lat, mut refused) = (Vec::new(), 0);
    while Instant::now() < end {
        let t = Instant::now();
        let code = request(addr, "GET", "/api/v1/session/userinfo", &auth, b"").await;
        lat.push(t.elapsed());
        if code != 200 {
            refused += 1;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (lat, refused)
}

pub async fn run(secs: u64, flooders: usize) -> anyhow::Result<()> {
    let secs = secs.clamp(1, 60);
    let cluster = mooring_apiserver::Cluster::start(mooring_apiserver::ClusterOptions {
        crds: mooring_k8s::crds::all(),
        ..Default::default()
    })
    .await?;
    let client = mooring_k8s::client_from_kubeconfig(cluster.kubeconfig_path()).await?;
    let namespace = mooring_core::app::CONTROL_PLANE_NAMESPACE;
    let admin = mooring_server::store::Store::new(client.clone(), namespace)
        .ensure_admin_token()
        .await?
        .context("a fresh cluster issues the first admin token")?;
    let cache = tempfile::tempdir()?;
    let controller = mooring_controller::Controller::start(
        client.clone(),
        mooring_controller::ControllerOptions {
            cache_dir: cache.path().to_path_buf(),
            ..Default::default()
        },
    )
    .await?;
    let secret = mooring_server::auth::generate_token();
    let router = mooring_server::router(
        controller.ctx.clone(),
        mooring_server::HttpOptions {
            webhook: mooring_server::WebhookSecrets {
                github: Some(secret.clone()),
                gitlab: Some(secret),
                registry: None,
            },
            metrics_auth: true,
        },
    )
    .merge(mooring_server::api::router(
        client.clone(),
        mooring_server::api::ApiOptions::default(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await;
    });

    let (mut quiet, quiet_refused) = measure(addr, &admin, secs).await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for n in 0..flooders.max(1) {
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut codes: BTreeMap<(&'static str, u16), u64> = BTreeMap::new();
            let push = br#"{"ref":"refs/heads/main","repository":{"clone_url":"https://git.example.com/x.git"}}"#;
            let mut i = n as u64;
            while !stop.load(Ordering::Relaxed) {
                // Even loops flood the API (held back by its limiter), odd ones the webhook.
                let kind = if n % 2 == 0 { i % 2 } else { 2 };
                let (what, code) = match kind {
                    0 => (
                        "api: unknown token",
                        request(
                            addr,
                            "GET",
                            "/api/v1/applications",
                            &format!("Authorization: Bearer mrg_{i:0>43}\r\n"),
                            b"",
                        )
                        .await,
                    ),
                    1 => (
                        "api: malformed token",
                        request(
                            addr,
                            "GET",
                            "/api/v1/applications",
                            "Authorization: Bearer guess\r\n",
                            b"",
                        )
                        .await,
                    ),
                    _ => (
                        "webhook: unsigned push",
                        request(addr, "POST", "/api/webhook", "X-GitHub-Event: push\r\n", push)
                            .await,
                    ),
                };
                *codes.entry((what, code)).or_default() += 1;
                i += 1;
            }
            codes
        }));
    }
    let flood_start = Instant::now();
    let (mut flooded, flood_refused) = measure(addr, &admin, secs).await;
    stop.store(true, Ordering::Relaxed);
    let mut codes: BTreeMap<(&'static str, u16), u64> = BTreeMap::new();
    for t in tasks {
        for (k, v) in t.await? {
            *codes.entry(k).or_default() += v;
        }
    }
    let flood_secs = flood_start.elapsed().as_secs_f64();
    let total: u64 = codes.values().sum();

    let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1000.0);
    let rows = vec![
        (
            "valid token p50, no flood".to_string(),
            ms(percentile(&mut quiet, 0.5)),
        ),
        (
            "valid token p99, no flood".to_string(),
            ms(percentile(&mut quiet, 0.99)),
        ),
        (
            "valid token p50, during flood".to_string(),
            ms(percentile(&mut flooded, 0.5)),
        ),
        (
            "valid token p99, during flood".to_string(),
            ms(percentile(&mut flooded, 0.99)),
        ),
        (
            "valid token requests refused (no flood / flood)".to_string(),
            format!(
                "{quiet_refused} / {flood_refused} of {} / {}",
                quiet.len(),
                flooded.len()
            ),
        ),
        (
            format!("flood ({} loops from 127.0.0.1)", flooders.max(1)),
            format!(
                "{total} requests, {:.0}/s",
                total as f64 / flood_secs.max(1e-9)
            ),
        ),
    ];
    let mut rows = rows;
    for ((what, code), n) in &codes {
        rows.push((format!("  {what} → {code}"), n.to_string()));
    }
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(10);
    println!("{:width$}  RESULT", "FIGURE");
    for (k, v) in &rows {
        println!("{k:width$}  {v}");
    }
    drop(controller);
    drop(cluster);
    if quiet_refused + flood_refused > 0 {
        bail!(
            "the valid token was refused {} time(s)",
            quiet_refused + flood_refused
        );
    }
    Ok(())
}
