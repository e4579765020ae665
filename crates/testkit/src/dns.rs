//! An ExternalDNS webhook provider for the disaster-recovery tests (the HTTP protocol of
//! ExternalDNS's `webhook` provider) that keeps its records in memory and records every
//! request. (The real BIND the tests use is `mooring_controller::dr::local_dns`, which
//! `mooring up` starts too.)

use anyhow::Result;
use std::io::{BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The media type of ExternalDNS's webhook protocol.
pub const WEBHOOK_MEDIA_TYPE: &str = "application/external.dns.webhook+json;version=1";

/// One request the webhook provider received.
#[derive(Debug, Clone)]
pub struct WebhookRequest {
    pub method: String,
    pub path: String,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: serde_json::Value,
}

impl WebhookRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct WebhookState {
    records: Vec<serde_json::Value>,
    requests: Vec<WebhookRequest>,
    /// Answer every `POST /records` with this status and body.
    fail: Option<(u16, String)>,
}

/// An ExternalDNS webhook provider on 127.0.0.1 (`GET /` negotiation with its domain
/// filter, `GET /records`, `POST /records` applying `Create`/`UpdateOld`/`UpdateNew`/
/// `Delete` to its records); it stops with the test process.
pub struct WebhookProvider {
    port: u16,
    state: Arc<Mutex<WebhookState>>,
}

impl WebhookProvider {
    /// Serve `records` (ExternalDNS endpoints) for the domain `filter`.
    pub fn start(filter: &str, records: Vec<serde_json::Value>) -> Result<WebhookProvider> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(Mutex::new(WebhookState {
            records,
            ..WebhookState::default()
        }));
        let s = state.clone();
        let filter = filter.to_string();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                if let Err(e) = serve_webhook(stream, &filter, &s) {
                    eprintln!("test ExternalDNS webhook: {e:#}");
                }
            }
        });
        Ok(WebhookProvider { port, state })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn records(&self) -> Vec<serde_json::Value> {
        self.state
            .lock()
            .map(|s| s.records.clone())
            .unwrap_or_default()
    }

    pub fn requests(&self) -> Vec<WebhookRequest> {
        self.state
            .lock()
            .map(|s| s.requests.clone())
            .unwrap_or_default()
    }

    /// Answer the next `POST /records` with `status` and `body` (and change nothing).
    pub fn fail_updates(&self, status: u16, body: &str) {
        if let Ok(mut s) = self.state.lock() {
            s.fail = Some((status, body.to_string()));
        }
    }
}

fn serve_webhook(stream: TcpStream, filter: &str, state: &Mutex<WebhookState>) -> Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    let crate::receiver::RawRequest {
        method,
        target: path,
        headers,
        body,
    } = crate::receiver::read_request(&mut reader)?;
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let mut s = state
        .lock()
        .map_err(|_| anyhow::anyhow!("webhook lock poisoned"))?;
    s.requests.push(WebhookRequest {
        method: method.clone(),
        path: path.clone(),
        headers,
        body: body.clone(),
    });
    let (status, reply) = match (method.as_str(), path.as_str()) {
        ("GET", "/") => (200, serde_json::json!({"filters": [filter]}).to_string()),
        ("GET", "/records") => (200, serde_json::Value::from(s.records.clone()).to_string()),
        ("POST", "/records") => match s.fail.take() {
            Some((status, body)) => (status, body),
            None => {
                let list = |k: &str| body[k].as_array().cloned().unwrap_or_default();
                let key = |e: &serde_json::Value| (e["dnsName"].clone(), e["recordType"].clone());
                let gone: Vec<_> = list("UpdateOld")
                    .iter()
                    .chain(list("Delete").iter())
                    .map(key)
                    .collect();
                s.records.retain(|r| !gone.contains(&key(r)));
                s.records.extend(list("UpdateNew"));
                s.records.extend(list("Create"));
                (204, String::new())
            }
        },
        _ => (404, "not found".to_string()),
    };
    drop(s);
    write!(
        out,
        "HTTP/1.1 {status} X\r\nContent-Type: {WEBHOOK_MEDIA_TYPE}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    )?;
    out.flush()?;
    Ok(())
}
