//! Test support shared by Mooring's integration tests: real parts only.
//!
//! [`eventually`] polls a condition with a deadline (tests never assert timings, but
//! they must not hang). [`GitHttpServer`] serves Git repositories over smart HTTP on 127.0.0.1 through
//! `git http-backend` (CGI), as a Git hosting service would, optionally demanding basic
//! authentication, and records the `Authorization` headers it receives (so a test can
//! prove credentials were, or were not, sent). It is deliberately small (one thread per
//! request) and only for tests.
//!
//! Real servers the notification services talk to: [`mail::SmtpSink`] (aiosmtpd),
//! [`alertmanager::Alertmanager`], and [`receiver::HttpReceiver`], a recording HTTP
//! endpoint for webhook-style services (Grafana is not packaged in Debian).
//!
//! DNS servers for disaster-recovery switching: [`dns::Bind`] (a real `named` taking
//! TSIG-signed RFC 2136 updates) and [`dns::WebhookProvider`] (ExternalDNS's webhook
//! protocol).
//!
//! An OCI registry for the image watcher: [`registry::Registry`] (Debian's
//! `docker-registry`, optionally with htpasswd auth and notifications), with push helpers
//! for images, indexes and artifacts through its HTTP API.

pub mod alertmanager;
pub mod dns;
pub mod mail;
pub mod receiver;
pub mod registry;

use anyhow::{Context as _, Result};
use base64::Engine as _;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Poll `f` until it returns `Some`, or panic after `secs` seconds naming `what`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {secs}s waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A port of 127.0.0.1 free now (for a server that takes its port as an argument).
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// `GET path` on 127.0.0.1:`port` (HTTP/1.0): the status and the body.
pub fn http_get(port: u16, path: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").context("no end of headers")?;
    let code = head
        .split_whitespace()
        .nth(1)
        .context("no status")?
        .parse()?;
    Ok((code, body.to_string()))
}

/// Run `git ARGS` in `dir` as a test's developer (`dev <dev@example.com>`, branch `main`
/// by default, no signing, no global or system configuration); its trimmed stdout.
/// Panics with git's stderr when it fails.
pub fn git(dir: &std::path::Path, args: &[&str]) -> String {
    let o = std::process::Command::new("git")
        .args(["-c", "user.name=dev", "-c", "user.email=dev@example.com"])
        .args([
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git must be installed");
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A tiny HTTP/1.1 server in front of `git http-backend` (CGI), one connection per
/// request, optionally demanding basic authentication.
pub struct GitHttpServer {
    port: u16,
    /// Requests served so far (tests use it to prove a cache hit fetched nothing).
    pub requests: Arc<AtomicUsize>,
    /// Every `Authorization` header received, in order.
    pub authorizations: Arc<Mutex<Vec<String>>>,
}

impl GitHttpServer {
    /// Serve the repositories under `project_root` (`http://127.0.0.1:PORT/<dir>`).
    pub fn start(project_root: &Path, basic_auth: Option<(&str, &str)>) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let root = project_root.to_path_buf();
        let expected = basic_auth.map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        let authorizations: Arc<Mutex<Vec<String>>> = Arc::default();
        let seen = authorizations.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let root = root.clone();
                let expected = expected.clone();
                let seen = seen.clone();
                counter.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    if let Err(e) = serve_one(stream, &root, expected.as_deref(), &seen) {
                        eprintln!("test http server: {e:#}");
                    }
                });
            }
        });
        Ok(GitHttpServer {
            port,
            requests,
            authorizations,
        })
    }

    /// URL of the repository at `path` under the project root.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `Authorization` headers received so far.
    pub fn authorizations(&self) -> Vec<String> {
        self.authorizations
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default()
    }
}

fn serve_one(
    stream: TcpStream,
    root: &Path,
    expected_auth: Option<&str>,
    seen: &Mutex<Vec<String>>,
) -> Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let method = parts.next().context("method")?.to_string();
    let target = parts.next().context("target")?.to_string();
    let mut headers: Vec<(String, String)> = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if let Some(a) = header("authorization") {
        if let Ok(mut seen) = seen.lock() {
            seen.push(a);
        }
    }
    let mut body = Vec::new();
    if let Some(len) = header("content-length") {
        body.resize(len.parse()?, 0);
        reader.read_exact(&mut body)?;
    } else if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line)?;
            let size =
                usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    if let Some(expected) = expected_auth {
        if header("authorization").as_deref() != Some(expected) {
            out.write_all(
                b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )?;
            return Ok(());
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let mut cmd = Command::new("git");
    cmd.arg("http-backend")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", &method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(ct) = header("content-type") {
        cmd.env("CONTENT_TYPE", ct);
    }
    if let Some(p) = header("git-protocol") {
        cmd.env("GIT_PROTOCOL", p);
    }
    if let Some(enc) = header("content-encoding") {
        cmd.env("HTTP_CONTENT_ENCODING", enc);
    }
    let mut child = cmd.spawn().context("spawning git http-backend")?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let writer = std::thread::spawn(move || stdin.write_all(&body));
    let output = child.wait_with_output()?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("stdin writer panicked"))??;
    let raw = output.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)))
        .context("CGI response has no header end")?;
    let head = String::from_utf8_lossy(&raw[..split.0]).to_string();
    let cgi_body = &raw[split.0 + split.1..];
    let mut status = "200 OK".to_string();
    let mut response = Vec::new();
    let mut extra = String::new();
    for line in head.lines() {
        if let Some(s) = line.strip_prefix("Status:") {
            status = s.trim().to_string();
        } else if !line.trim().is_empty() {
            extra.push_str(line.trim());
            extra.push_str("\r\n");
        }
    }
    write!(
        response,
        "HTTP/1.1 {status}\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        cgi_body.len()
    )?;
    response.extend_from_slice(cgi_body);
    out.write_all(&response)?;
    out.flush()?;
    Ok(())
}
