//! DNS servers for the disaster-recovery tests: a real BIND (Debian's `named`) serving one
//! zone on 127.0.0.1 that accepts RFC 2136 updates signed with its TSIG keys, and an
//! ExternalDNS webhook provider (the HTTP protocol of ExternalDNS's `webhook` provider)
//! that keeps its records in memory and records every request.
//!
//! `scripts/test` installs `bind9` and `bind9-dnsutils` (for `dig`, with which tests read
//! the zone as any operator would) and sets `MOORING_REQUIRE_DNS_SERVER`, so CI never
//! skips these tests: [`Bind::available`] skips (with a message) only on a machine without
//! `named` where that variable is unset.

use anyhow::{bail, Context as _, Result};
use base64::Engine as _;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Binary names tried for BIND's server.
const NAMED: &[&str] = &["/usr/sbin/named", "named"];

/// The environment variable that turns a missing `named` into a failure.
pub const REQUIRE_ENV: &str = "MOORING_REQUIRE_DNS_SERVER";

/// One TSIG key the server knows (granted updates anywhere in the zone).
#[derive(Debug, Clone)]
pub struct TsigKey {
    pub name: String,
    /// `hmac-sha256`, `hmac-sha512`, `hmac-sha1`.
    pub algorithm: String,
    /// Base64, as `tsig-keygen` prints it and a Secret holds it.
    pub secret: String,
}

/// A running `named`; killed on drop.
pub struct Bind {
    child: Child,
    port: u16,
    zone: String,
    keys: Vec<TsigKey>,
    dir: tempfile::TempDir,
}

impl Bind {
    /// The `named` binary, if installed.
    pub fn binary() -> Option<PathBuf> {
        NAMED.iter().map(PathBuf::from).find(|b| {
            Command::new(b)
                .arg("-v")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
    }

    /// Whether the BIND tests can run: `true` with `named` installed; without it, a
    /// panic when [`REQUIRE_ENV`] is set (CI), else `false` after saying what is skipped.
    pub fn available(test: &str) -> bool {
        if Self::binary().is_some() && which("dig") {
            return true;
        }
        if std::env::var_os(REQUIRE_ENV).is_some() {
            panic!(
                "{test}: BIND's `named` and `dig` are required ({REQUIRE_ENV} is set): install the Debian packages bind9 and bind9-dnsutils (scripts/test does)"
            );
        }
        eprintln!(
            "SKIPPED {test}: BIND's `named` or `dig` is not installed (Debian packages bind9 and bind9-dnsutils; scripts/test installs them)"
        );
        false
    }

    /// Serve `zone` (e.g. `ml.example.com`) on a free port of 127.0.0.1 with `records`
    /// (`(name relative to the zone, type, value)`), and three TSIG keys allowed to
    /// update it: `mooring` (hmac-sha256), `mooring-sha512`, `mooring-sha1`.
    pub fn start(zone: &str, records: &[(&str, &str, &str)]) -> Result<Bind> {
        let binary = Self::binary()
            .context("BIND is not installed (Debian package bind9; scripts/test installs it)")?;
        let dir = tempfile::tempdir()?;
        let keys = vec![
            key("mooring", "hmac-sha256", 32)?,
            key("mooring-sha512", "hmac-sha512", 64)?,
            key("mooring-sha1", "hmac-sha1", 20)?,
        ];
        let mut zone_file = format!(
            "$TTL 300\n@ IN SOA ns1.{zone}. hostmaster.{zone}. 1 3600 600 86400 60\n@ IN NS ns1.{zone}.\nns1 IN A 127.0.0.1\n"
        );
        for (name, ty, value) in records {
            zone_file.push_str(&format!("{name} IN {ty} {value}\n"));
        }
        std::fs::write(dir.path().join("zone.db"), zone_file)?;
        let port = crate::free_port()?;
        let d = dir.path().display();
        let mut conf = format!(
            "options {{\n  directory \"{d}\";\n  pid-file \"{d}/named.pid\";\n  session-keyfile \"{d}/session.key\";\n  managed-keys-directory \"{d}\";\n  listen-on port {port} {{ 127.0.0.1; }};\n  listen-on-v6 {{ none; }};\n  recursion no;\n  notify no;\n  dnssec-validation no;\n  allow-query {{ any; }};\n}};\ncontrols {{ }};\n"
        );
        for k in &keys {
            conf.push_str(&format!(
                "key \"{}\" {{ algorithm {}; secret \"{}\"; }};\n",
                k.name, k.algorithm, k.secret
            ));
        }
        let grants: String = keys
            .iter()
            .map(|k| format!("grant {} zonesub ANY; ", k.name))
            .collect();
        conf.push_str(&format!(
            "zone \"{zone}\" {{ type primary; file \"{d}/zone.db\"; update-policy {{ {grants}}}; }};\n"
        ));
        let conf_path = dir.path().join("named.conf");
        std::fs::write(&conf_path, conf)?;
        let log = std::fs::File::create(dir.path().join("named.log"))?;
        let child = Command::new(&binary)
            .arg("-g")
            .arg("-4")
            .args(["-n", "1"])
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut bind = Bind {
            child,
            port,
            zone: zone.trim_end_matches('.').to_string(),
            keys,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = bind.child.try_wait()? {
                bail!(
                    "named exited before it was ready: {status}\n{}",
                    bind.log_tail()
                );
            }
            if bind.serial().is_ok() {
                return Ok(bind);
            }
            if Instant::now() > deadline {
                bail!(
                    "named on 127.0.0.1:{port} was not ready within 60s\n{}",
                    bind.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `127.0.0.1:PORT`, as a plan's `rfc2136.server`.
    pub fn server(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn zone(&self) -> &str {
        &self.zone
    }

    /// The key of that algorithm.
    pub fn key(&self, algorithm: &str) -> &TsigKey {
        self.keys
            .iter()
            .find(|k| k.algorithm == algorithm)
            .expect("named was started with a key of each algorithm")
    }

    /// `dig @127.0.0.1 -p PORT NAME TYPE +short`: the answers, one a line.
    pub fn dig(&self, name: &str, record_type: &str) -> Result<Vec<String>> {
        let out = Command::new("dig")
            .arg("@127.0.0.1")
            .args(["-p", &self.port.to_string()])
            .args([name, record_type])
            .args(["+short", "+time=2", "+tries=1"])
            .stdin(Stdio::null())
            .output()
            .context("running dig (Debian package bind9-dnsutils)")?;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        if !out.status.success() || text.starts_with(";;") {
            bail!(
                "dig {name} {record_type} failed: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(text.lines().map(str::to_string).collect())
    }

    /// The zone's SOA serial: BIND increments it once per accepted update message, so
    /// tests count updates with it.
    pub fn serial(&self) -> Result<u32> {
        let soa = self.dig(&format!("{}.", self.zone), "SOA")?;
        let line = soa.first().context("no SOA answer")?;
        line.split_whitespace()
            .nth(2)
            .context("SOA without a serial")?
            .parse()
            .with_context(|| format!("SOA serial in `{line}`"))
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("named.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// The temporary directory holding the configuration, zone and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Bind {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(binary: &str) -> bool {
    Command::new(binary)
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A random key of `len` bytes.
fn key(name: &str, algorithm: &str, len: usize) -> Result<TsigKey> {
    let mut bytes = vec![0u8; len];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(TsigKey {
        name: name.to_string(),
        algorithm: algorithm.to_string(),
        secret: base64::engine::general_purpose::STANDARD.encode(bytes),
    })
}

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
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().context("method")?.to_string();
    let path = parts.next().context("target")?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let len = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| v.parse::<usize>())
        .transpose()?
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
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
