//! Test harness: start an embedded cluster in-process and get a kube-rs client for it.

use mooring_apiserver::{sim::SimOptions, Cluster, ClusterOptions};
use mooring_k8s::kube;
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

/// The answer to a [`raw`] request: status code, headers (lowercase names) and body.
#[derive(Debug)]
pub struct RawResponse {
    pub code: u16,
    pub head: String,
    pub body: String,
    /// The body as sent (binary answers: protobuf).
    pub bytes: Vec<u8>,
}

impl RawResponse {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Send exactly `head` (request line and headers, without the blank line; a
/// `Content-Length` for `body` and `Connection: close` are appended) and `body` over TLS
/// that verifies the cluster's CA, as a tool without a kubeconfig (or an attacker) does.
pub async fn raw(c: &Cluster, head: &str, body: &[u8]) -> RawResponse {
    try_raw(c, head, body)
        .await
        .unwrap_or_else(|e| panic!("{head:?}: {e}"))
}

/// [`raw`], but a connection closed without an answer (a partitioned cluster) is an `Err`
/// describing it rather than a panic.
pub async fn try_raw(c: &Cluster, head: &str, body: &[u8]) -> Result<RawResponse, String> {
    use rustls::pki_types::{pem::PemObject as _, CertificateDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(c.ca_pem().as_bytes()).expect("CA PEM"))
        .expect("CA in the root store");
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(c.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let name = ServerName::IpAddress(c.addr.ip().into());
    let mut s = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake verifying the cluster's CA: {e}"))?;
    let req = format!(
        "{head}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("send head: {e}"))?;
    s.write_all(body)
        .await
        .map_err(|e| format!("send body: {e}"))?;
    let mut out = Vec::new();
    // The server closes after answering (`Connection: close`); a TLS close without
    // close_notify is not an error for this purpose.
    let _ = s.read_to_end(&mut out).await;
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(out.len());
    let bytes = out.get(split + 4..).unwrap_or_default().to_vec();
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line in {text:?}"))?;
    Ok(RawResponse {
        code,
        head: head.to_ascii_lowercase(),
        body: body.to_string(),
        bytes,
    })
}

/// A request through kube-rs: (status code, body or `{reason, message}` of the Status).
pub async fn send(
    client: &kube::Client,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(body.map(|b| b.to_string().into_bytes()).unwrap_or_default())
        .expect("request");
    match client.request_text(req).await {
        Ok(text) => (
            200,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
        ),
        Err(kube::Error::Api(s)) => (
            s.code,
            serde_json::json!({"reason": s.reason, "message": s.message}),
        ),
        Err(e) => panic!("transport error for {method} {path}: {e}"),
    }
}
