//! A small Prometheus HTTP API client (instant queries) and a local Prometheus process.
//!
//! Canary analysis asks Prometheus one question at a time ("what is the error rate of the
//! canary right now?"), so the client only implements `GET /api/v1/query` and decodes
//! its four result types. Sample values travel as strings in Prometheus' JSON (`"NaN"`,
//! `"+Inf"`, `"-Inf"` included) and are parsed here, so an analysis condition such as
//! `isNaN(result)` sees a real NaN. Errors keep Prometheus' own `errorType` and `error`
//! text, because that is what a user needs to fix a query.
//!
//! [`LocalPrometheus`] runs the real `prometheus` binary (Debian package `prometheus`)
//! with a generated configuration that discovers the simulated Pods of embedded clusters
//! from their `{cluster}/metrics/targets` documents (http_sd format). Tests, demos and
//! `mooring up` use it so that analysis is exercised against the real query engine, never
//! a fake. The configuration is written as JSON, which is valid YAML, so no value can
//! break its structure.
//!
//! Discovery is Prometheus' own `http_sd_configs` on each cluster's targets document,
//! refreshed every scrape interval (Prometheus keeps the last good list while a cluster
//! is briefly unreachable). Embedded clusters authenticate every request, so both the
//! discovery and the scrapes present the cluster's bearer token, read by Prometheus from
//! the cluster's own 0600 token file (`credentials_file`: the secret is never copied into
//! the generated configuration), and verify its CA when it serves TLS. A watchdog process kills Prometheus when the process that
//! started it dies without dropping it (a test killed on timeout, a `kill -9`), so no
//! Prometheus is ever left behind scraping a dead cluster.

use crate::outbound::{error_chain, install_crypto_provider};
use reqwest::Url;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Errors of the Prometheus client and of the local Prometheus process.
#[derive(Debug, thiserror::Error)]
pub enum PromError {
    #[error("invalid Prometheus address `{address}`: {reason}")]
    Address { address: String, reason: String },
    #[error("Prometheus at {address} is unreachable: {reason}")]
    Unreachable { address: String, reason: String },
    #[error("Prometheus query timed out after {0:?}")]
    Timeout(Duration),
    #[error("Prometheus answered HTTP {code}: {error_type}: {message}")]
    Status {
        code: u16,
        error_type: String,
        message: String,
    },
    /// A user-written address the outbound rule refuses (or another outbound error).
    #[error("Prometheus query: {0}")]
    Outbound(crate::outbound::OutboundError),
    #[error("cannot decode Prometheus' answer: {0}")]
    Decode(String),
    #[error(
        "the prometheus binary was not found (looked for {0}); install it (Debian/Ubuntu: `apt-get install prometheus`) or pass its path"
    )]
    BinaryMissing(String),
    #[error("starting {binary}: {reason}")]
    Spawn { binary: String, reason: String },
    #[error("prometheus ({binary}) did not become ready: {reason}; log: {log}")]
    NotReady {
        binary: String,
        reason: String,
        log: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One sample of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// One series of a range vector (matrix).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: BTreeMap<String, String>,
    pub values: Vec<f64>,
}

/// The result of an instant query, by Prometheus `resultType`.
#[derive(Debug, Clone, PartialEq)]
pub enum PromValue {
    Vector(Vec<Sample>),
    Scalar(f64),
    String(String),
    Matrix(Vec<Series>),
}

impl PromValue {
    /// One number: a scalar or a one-sample instant vector (what a check or a lag query
    /// is written to return); anything else says what it was.
    pub fn one_number(&self) -> Result<f64, String> {
        match self {
            PromValue::Scalar(v) => Ok(*v),
            PromValue::Vector(s) if s.len() == 1 => Ok(s[0].value),
            PromValue::Vector(s) if s.is_empty() => Err("the query returned no data".into()),
            PromValue::Vector(s) => Err(format!(
                "the query returned {} series; reduce it to one (sum, max, …)",
                s.len()
            )),
            PromValue::String(s) => {
                Err(format!("the query returned a string ({s:?}), not a number"))
            }
            PromValue::Matrix(_) => Err(
                "the query returned a range vector; use an instant query (e.g. rate(…[5m]))".into(),
            ),
        }
    }
}

/// Largest Prometheus answer read from a user-written address.
pub const MAX_ANSWER: usize = 16 * 1024 * 1024;

/// A Prometheus HTTP API client.
#[derive(Debug, Clone)]
pub struct PromClient {
    base: Url,
    http: reqwest::Client,
    headers: Vec<(String, String)>,
    /// Set for a user-written address: queries go through the outbound client.
    outbound: Option<crate::outbound::Outbound>,
}

impl PromClient {
    /// A client for the Prometheus at `address` (`http://127.0.0.1:9090`, a trailing
    /// slash or a path prefix such as `http://host/prometheus` allowed).
    pub fn new(address: &str) -> Result<PromClient, PromError> {
        let bad = |reason: String| PromError::Address {
            address: address.to_string(),
            reason,
        };
        let mut base = Url::parse(address.trim()).map_err(|e| bad(e.to_string()))?;
        if base.scheme() != "http" && base.scheme() != "https" {
            return Err(bad(format!(
                "scheme `{}` is not http or https",
                base.scheme()
            )));
        }
        if base.host_str().is_none() {
            return Err(bad("no host".into()));
        }
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        base.set_query(None);
        base.set_fragment(None);
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(PromClient {
            base,
            http,
            headers: vec![],
            outbound: None,
        })
    }

    /// Query through the outbound client: the address is a user's (an AnalysisTemplate's
    /// or a RollbackPolicy's), not the controller's own Prometheus.
    pub fn through(mut self, outbound: crate::outbound::Outbound) -> PromClient {
        self.outbound = Some(outbound);
        self
    }

    /// Send these headers with every query (e.g. `X-Scope-Org-ID` for a multi-tenant
    /// Prometheus, `Authorization`).
    pub fn with_headers(mut self, headers: Vec<(String, String)>) -> PromClient {
        self.headers = headers;
        self
    }

    /// The address this client talks to.
    pub fn address(&self) -> &str {
        self.base.as_str()
    }

    /// Run an instant query (`/api/v1/query`) at the current time.
    pub async fn query(&self, query: &str, timeout: Duration) -> Result<PromValue, PromError> {
        let mut url = self
            .base
            .join("api/v1/query")
            .map_err(|e| PromError::Decode(e.to_string()))?;
        url.query_pairs_mut()
            .append_pair("query", query)
            .append_pair("timeout", &format!("{}ms", timeout.as_millis().max(1)));
        if let Some(outbound) = &self.outbound {
            let mut req = crate::outbound::OutboundRequest::new(reqwest::Method::GET, url.as_str());
            req.timeout = timeout;
            req.max_body = MAX_ANSWER;
            req.headers = self.headers.clone();
            use crate::outbound::OutboundError as O;
            return match outbound.send(req).await {
                Ok(r) => decode_response(r.status, &r.body),
                Err(O::Timeout { .. }) => Err(PromError::Timeout(timeout)),
                Err(O::Request { reason, .. }) => Err(PromError::Unreachable {
                    address: self.base.to_string(),
                    reason,
                }),
                Err(e) => Err(PromError::Outbound(e)),
            };
        }
        let mut req = self.http.get(url).timeout(timeout);
        for (k, v) in &self.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req.send();
        let resp = match req.await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => return Err(PromError::Timeout(timeout)),
            Err(e) => {
                return Err(PromError::Unreachable {
                    address: self.base.to_string(),
                    reason: error_chain(&e),
                })
            }
        };
        let code = resp.status().as_u16();
        let body = match resp.bytes().await {
            Ok(b) => b,
            Err(e) if e.is_timeout() => return Err(PromError::Timeout(timeout)),
            Err(e) => return Err(PromError::Decode(error_chain(&e))),
        };
        decode_response(code, &body)
    }
}

/// Decode an `/api/v1/query` answer (any HTTP status: Prometheus reports errors as JSON).
pub fn decode_response(code: u16, body: &[u8]) -> Result<PromValue, PromError> {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            if !(200..300).contains(&code) {
                let text = String::from_utf8_lossy(&body[..body.len().min(500)]).to_string();
                return Err(PromError::Status {
                    code,
                    error_type: "http".into(),
                    message: text.trim().to_string(),
                });
            }
            return Err(PromError::Decode(format!("not JSON: {e}")));
        }
    };
    if v.get("status").and_then(Value::as_str) != Some("success") {
        return Err(PromError::Status {
            code,
            error_type: v
                .get("errorType")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_string(),
            message: v
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("no error message")
                .to_string(),
        });
    }
    let data = v
        .get("data")
        .ok_or_else(|| PromError::Decode("no `data`".into()))?;
    let result = data
        .get("result")
        .ok_or_else(|| PromError::Decode("no `data.result`".into()))?;
    match data.get("resultType").and_then(Value::as_str) {
        Some("vector") => {
            let items = result
                .as_array()
                .ok_or_else(|| PromError::Decode("vector result is not an array".into()))?;
            let mut out = Vec::with_capacity(items.len());
            for it in items {
                let value = it
                    .get("value")
                    .ok_or_else(|| PromError::Decode("vector sample without `value`".into()))?;
                out.push(Sample {
                    labels: labels(it.get("metric"))?,
                    value: sample_value(value)?,
                });
            }
            Ok(PromValue::Vector(out))
        }
        Some("scalar") => Ok(PromValue::Scalar(sample_value(result)?)),
        Some("string") => {
            let s = result
                .as_array()
                .and_then(|a| a.get(1))
                .and_then(Value::as_str)
                .ok_or_else(|| PromError::Decode("string result is not [time, \"text\"]".into()))?;
            Ok(PromValue::String(s.to_string()))
        }
        Some("matrix") => {
            let items = result
                .as_array()
                .ok_or_else(|| PromError::Decode("matrix result is not an array".into()))?;
            let mut out = Vec::with_capacity(items.len());
            for it in items {
                let values = it
                    .get("values")
                    .and_then(Value::as_array)
                    .ok_or_else(|| PromError::Decode("matrix series without `values`".into()))?
                    .iter()
                    .map(sample_value)
                    .collect::<Result<Vec<f64>, PromError>>()?;
                out.push(Series {
                    labels: labels(it.get("metric"))?,
                    values,
                });
            }
            Ok(PromValue::Matrix(out))
        }
        other => Err(PromError::Decode(format!(
            "unknown resultType {}",
            other.unwrap_or("(missing)")
        ))),
    }
}

fn labels(v: Option<&Value>) -> Result<BTreeMap<String, String>, PromError> {
    let Some(v) = v else {
        return Ok(BTreeMap::new());
    };
    let o = v
        .as_object()
        .ok_or_else(|| PromError::Decode("`metric` is not an object".into()))?;
    o.iter()
        .map(|(k, v)| {
            v.as_str()
                .map(|s| (k.clone(), s.to_string()))
                .ok_or_else(|| PromError::Decode(format!("label {k} is not a string")))
        })
        .collect()
}

/// `[1700000000.123, "0.5"]` → 0.5 (`NaN`, `+Inf`, `-Inf` included).
fn sample_value(v: &Value) -> Result<f64, PromError> {
    let s = v
        .as_array()
        .and_then(|a| a.get(1))
        .and_then(Value::as_str)
        .ok_or_else(|| PromError::Decode(format!("sample {v} is not [time, \"value\"]")))?;
    parse_float(s).ok_or_else(|| PromError::Decode(format!("sample value `{s}` is not a number")))
}

fn parse_float(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse::<f64>().ok(),
    }
}

/// Options of [`LocalPrometheus::start`].
#[derive(Debug, Clone)]
pub struct LocalPrometheusOptions {
    /// The `prometheus` binary; `None` looks it up on `PATH` (then `/usr/bin`).
    pub binary: Option<PathBuf>,
    /// TSDB, generated configuration and `prometheus.log` go here.
    pub data_dir: PathBuf,
    /// `None` picks a free port on 127.0.0.1.
    pub listen: Option<SocketAddr>,
    /// Scrape, evaluation and service-discovery refresh interval (1s in tests).
    pub scrape_interval: Duration,
    /// Embedded clusters to scrape.
    pub clusters: Vec<ScrapeCluster>,
}

/// An embedded cluster Prometheus scrapes: where, and the files that open it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeCluster {
    /// `http://127.0.0.1:PORT` (or `https://…` when it serves TLS).
    pub url: String,
    /// The file holding the cluster's bearer token.
    pub token_file: PathBuf,
    /// The CA certificate to verify it with, when it serves TLS.
    pub ca_file: Option<PathBuf>,
}

/// What a local Prometheus scrapes and evaluates besides the embedded clusters' Pods
/// ([`LocalPrometheus::start_with`]).
#[derive(Debug, Clone, Default)]
pub struct ScrapeExtras {
    /// Further `/metrics` endpoints (Mooring's own), one job each.
    pub targets: Vec<ScrapeTarget>,
    /// Recording and alerting rule files, loaded as `rule_files` (a file that does not
    /// parse makes Prometheus refuse to start, so [`LocalPrometheus::start_with`] fails).
    pub rule_files: Vec<PathBuf>,
}

/// One `/metrics` endpoint a local Prometheus scrapes.
#[derive(Debug, Clone, PartialEq)]
pub struct ScrapeTarget {
    /// The job name (the `job` label of its series).
    pub job: String,
    /// `HOST:PORT`, scraped over http at `/metrics`.
    pub address: String,
    /// A file holding the bearer token to present (Mooring's API server shows the series
    /// naming applications only to a token allowed `applications, get, */*`).
    pub token_file: Option<PathBuf>,
}

/// A running local Prometheus; the process is killed when this is dropped.
pub struct LocalPrometheus {
    child: std::process::Child,
    watchdog: Option<std::process::Child>,
    addr: SocketAddr,
    binary: PathBuf,
    log: PathBuf,
}

impl std::fmt::Debug for LocalPrometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalPrometheus")
            .field("addr", &self.addr)
            .field("binary", &self.binary)
            .finish_non_exhaustive()
    }
}

impl Drop for LocalPrometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(w) = &mut self.watchdog {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

/// Prometheus' duration syntax (`1s`, `1500ms`).
fn prom_duration(d: Duration) -> String {
    let ms = d.as_millis().max(1);
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// The generated configuration (JSON, which Prometheus reads as YAML): one job per
/// cluster, discovering its simulated Pods through http_sd; discovery and scrapes carry
/// the cluster's token (and trust its CA).
pub fn local_config(scrape_interval: Duration, clusters: &[ScrapeCluster]) -> Value {
    local_config_with(scrape_interval, clusters, &ScrapeExtras::default())
}

/// [`local_config`] with further scrape targets and rule files.
pub fn local_config_with(
    scrape_interval: Duration,
    clusters: &[ScrapeCluster],
    extras: &ScrapeExtras,
) -> Value {
    let interval = prom_duration(scrape_interval);
    let mut jobs: Vec<Value> = clusters
        .iter()
        .enumerate()
        .map(|(i, cluster)| {
            let auth = json!({"type": "Bearer", "credentials_file": cluster.token_file});
            let mut sd = json!({
                "url": targets_url(&cluster.url),
                "refresh_interval": interval,
                "authorization": auth,
            });
            let mut job = json!({
                "job_name": format!("mooring-cluster-{i}"),
                "scrape_interval": interval,
                "scrape_timeout": interval,
                "authorization": auth,
            });
            if cluster.url.starts_with("https://") {
                job["scheme"] = json!("https");
            }
            if let Some(ca) = &cluster.ca_file {
                let tls = json!({"ca_file": ca});
                sd["tls_config"] = tls.clone();
                job["tls_config"] = tls;
            }
            job["http_sd_configs"] = json!([sd]);
            job
        })
        .collect();
    for t in &extras.targets {
        let mut job = json!({
            "job_name": t.job,
            "scrape_interval": interval,
            "scrape_timeout": interval,
            "static_configs": [{"targets": [t.address]}],
        });
        if let Some(token) = &t.token_file {
            job["authorization"] = json!({"type": "Bearer", "credentials_file": token});
        }
        jobs.push(job);
    }
    json!({
        "global": {"scrape_interval": interval, "evaluation_interval": interval, "scrape_timeout": interval},
        "scrape_configs": jobs,
        "rule_files": extras.rule_files,
    })
}

/// The http_sd document of an embedded cluster.
fn targets_url(cluster: &str) -> String {
    format!("{}/metrics/targets", cluster.trim_end_matches('/'))
}

/// A shell that kills `pid` once this process is gone (checked every second): the local
/// servers started for the user (Prometheus, BIND) never outlive a process killed without
/// dropping them.
pub(crate) fn watchdog(pid: u32) -> Option<std::process::Child> {
    let script = "while kill -0 \"$1\" 2>/dev/null; do sleep 1; done; kill \"$2\" 2>/dev/null";
    std::process::Command::new("sh")
        .args(["-c", script, "mooring-prometheus-watchdog"])
        .arg(std::process::id().to_string())
        .arg(pid.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()
}

impl LocalPrometheus {
    /// The `prometheus` binary on `PATH` (or `/usr/bin/prometheus`).
    pub fn find_binary() -> Option<PathBuf> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|d| d.join("prometheus"))
            .chain(std::iter::once(PathBuf::from("/usr/bin/prometheus")))
            .find(|p| p.is_file())
    }

    /// Write the configuration, start Prometheus and wait until `/-/ready` answers.
    pub async fn start(o: LocalPrometheusOptions) -> Result<LocalPrometheus, PromError> {
        Self::start_with(o, ScrapeExtras::default()).await
    }

    /// [`LocalPrometheus::start`], also scraping `extras.targets` and evaluating
    /// `extras.rule_files`.
    pub async fn start_with(
        o: LocalPrometheusOptions,
        extras: ScrapeExtras,
    ) -> Result<LocalPrometheus, PromError> {
        let binary = match o.binary.clone() {
            Some(b) if b.is_file() => b,
            Some(b) => return Err(PromError::BinaryMissing(b.display().to_string())),
            None => Self::find_binary()
                .ok_or_else(|| PromError::BinaryMissing("`prometheus` on PATH".into()))?,
        };
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PromError::Io { path, source }
        };
        std::fs::create_dir_all(&o.data_dir).map_err(io(&o.data_dir))?;
        let config_path = o.data_dir.join("prometheus.yml");
        install_crypto_provider();
        let config = local_config_with(o.scrape_interval, &o.clusters, &extras);
        let text =
            serde_json::to_string_pretty(&config).map_err(|e| PromError::Decode(e.to_string()))?;
        std::fs::write(&config_path, text).map_err(io(&config_path))?;
        let tsdb = o.data_dir.join("tsdb");
        std::fs::create_dir_all(&tsdb).map_err(io(&tsdb))?;
        let addr = match o.listen {
            Some(a) => a,
            None => {
                let l = TcpListener::bind("127.0.0.1:0").map_err(io(Path::new("127.0.0.1:0")))?;
                l.local_addr().map_err(io(Path::new("127.0.0.1:0")))?
            }
        };
        let log = o.data_dir.join("prometheus.log");
        let log_file = std::fs::File::create(&log).map_err(io(&log))?;
        let log_err = log_file.try_clone().map_err(io(&log))?;
        let arg = |flag: &str, p: &Path| {
            let mut s = std::ffi::OsString::from(flag);
            s.push(p.as_os_str());
            s
        };
        let child = std::process::Command::new(&binary)
            .arg(arg("--config.file=", &config_path))
            .arg(arg("--storage.tsdb.path=", &tsdb))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--storage.tsdb.retention.time=1h")
            .arg("--web.enable-lifecycle")
            .stdin(std::process::Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .spawn()
            .map_err(|e| PromError::Spawn {
                binary: binary.display().to_string(),
                reason: e.to_string(),
            })?;
        let watchdog = watchdog(child.id());
        let mut me = LocalPrometheus {
            child,
            watchdog,
            addr,
            binary,
            log,
        };
        me.wait_ready(Duration::from_secs(60)).await?;
        Ok(me)
    }

    async fn wait_ready(&mut self, limit: Duration) -> Result<(), PromError> {
        install_crypto_provider();
        let http = reqwest::Client::new();
        let url = format!("{}/-/ready", self.url());
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(self.not_ready(format!("it exited with {status}")));
            }
            if let Ok(r) = http.get(&url).timeout(Duration::from_secs(2)).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(self.not_ready(format!("no ready answer within {limit:?}")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn not_ready(&self, reason: String) -> PromError {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        PromError::NotReady {
            binary: self.binary.display().to_string(),
            reason,
            log: format!(
                "{} (last lines: {})",
                self.log.display(),
                tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
            ),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where Prometheus writes its log.
    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_vector_with_special_values() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"pod":"a"},"value":[1.5,"0.25"]},
            {"metric":{},"value":[1.5,"NaN"]},
            {"metric":{},"value":[1.5,"+Inf"]},
            {"metric":{},"value":[1.5,"-Inf"]}]}}"#;
        let PromValue::Vector(v) = decode_response(200, body).expect("decodes") else {
            panic!("not a vector")
        };
        assert_eq!(v[0].value, 0.25);
        assert_eq!(v[0].labels["pod"], "a");
        assert!(v[1].value.is_nan());
        assert_eq!(v[2].value, f64::INFINITY);
        assert_eq!(v[3].value, f64::NEG_INFINITY);
    }

    #[test]
    fn decodes_scalar_string_matrix() {
        let s = decode_response(
            200,
            br#"{"status":"success","data":{"resultType":"scalar","result":[1,"3"]}}"#,
        )
        .expect("scalar");
        assert_eq!(s, PromValue::Scalar(3.0));
        let s = decode_response(
            200,
            br#"{"status":"success","data":{"resultType":"string","result":[1,"hi"]}}"#,
        )
        .expect("string");
        assert_eq!(s, PromValue::String("hi".into()));
        let m = decode_response(
            200,
            br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"b"},"values":[[1,"1"],[2,"2"]]}]}}"#,
        )
        .expect("matrix");
        let PromValue::Matrix(m) = m else {
            panic!("not a matrix")
        };
        assert_eq!(m[0].values, vec![1.0, 2.0]);
    }

    #[test]
    fn keeps_prometheus_error_text() {
        let e = decode_response(
            400,
            br#"{"status":"error","errorType":"bad_data","error":"parse error at char 5"}"#,
        )
        .expect_err("error");
        let s = e.to_string();
        assert!(
            s.contains("bad_data") && s.contains("parse error at char 5"),
            "{s}"
        );
    }

    #[test]
    fn rejects_malformed_answers() {
        for body in [
            &b"<html>oops</html>"[..],
            br#"{"status":"success"}"#,
            br#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"x"]}]}}"#,
            br#"{"status":"success","data":{"resultType":"vector","result":{}}}"#,
            br#"{"status":"success","data":{"resultType":"weird","result":[]}}"#,
        ] {
            assert!(decode_response(200, body).is_err());
        }
        let e = decode_response(502, b"Bad Gateway").expect_err("502");
        assert!(e.to_string().contains("502"), "{e}");
    }

    #[test]
    fn validates_addresses() {
        assert!(PromClient::new("http://127.0.0.1:9090/").is_ok());
        let c = PromClient::new("http://127.0.0.1:9090/prom").expect("prefix");
        assert_eq!(c.address(), "http://127.0.0.1:9090/prom/");
        for bad in ["", "127.0.0.1:9090", "ftp://x", "not a url"] {
            assert!(PromClient::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_has_one_job_per_cluster() {
        let cluster = |url: &str, ca: Option<&str>| ScrapeCluster {
            url: url.into(),
            token_file: PathBuf::from("/data/token"),
            ca_file: ca.map(PathBuf::from),
        };
        let c = local_config(
            Duration::from_secs(1),
            &[
                cluster("http://127.0.0.1:1", None),
                cluster("https://127.0.0.2:2/", Some("/data/ca.crt")),
            ],
        );
        assert_eq!(c["global"]["scrape_interval"], "1s");
        assert_eq!(
            c["scrape_configs"][1]["http_sd_configs"][0]["url"],
            "https://127.0.0.2:2/metrics/targets"
        );
        assert_eq!(c["scrape_configs"][1]["job_name"], "mooring-cluster-1");
        // Discovery and scrapes authenticate with the token file, never a copy of it.
        for job in [&c["scrape_configs"][0], &c["scrape_configs"][1]] {
            let auth = json!({"type": "Bearer", "credentials_file": "/data/token"});
            assert_eq!(job["authorization"], auth, "{job}");
            assert_eq!(job["http_sd_configs"][0]["authorization"], auth, "{job}");
        }
        assert!(c["scrape_configs"][0].get("scheme").is_none());
        assert!(c["scrape_configs"][0].get("tls_config").is_none());
        assert_eq!(c["scrape_configs"][1]["scheme"], "https");
        assert_eq!(
            c["scrape_configs"][1]["tls_config"]["ca_file"],
            "/data/ca.crt"
        );
        assert_eq!(
            c["scrape_configs"][1]["http_sd_configs"][0]["tls_config"]["ca_file"],
            "/data/ca.crt"
        );
        assert_eq!(
            targets_url("http://127.0.0.1:2/"),
            "http://127.0.0.1:2/metrics/targets"
        );
        assert_eq!(prom_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(c["rule_files"], json!([]));
    }

    #[test]
    fn extra_targets_scrape_with_their_token_and_rules_are_loaded() {
        let extras = ScrapeExtras {
            targets: vec![ScrapeTarget {
                job: "mooring".into(),
                address: "127.0.0.1:8080".into(),
                token_file: Some(PathBuf::from("/data/mooring-token")),
            }],
            rule_files: vec![PathBuf::from("/repo/examples/dashboards/rules.yaml")],
        };
        let c = local_config_with(Duration::from_secs(1), &[], &extras);
        let job = &c["scrape_configs"][0];
        assert_eq!(job["job_name"], "mooring");
        assert_eq!(job["static_configs"][0]["targets"][0], "127.0.0.1:8080");
        assert_eq!(
            job["authorization"],
            json!({"type": "Bearer", "credentials_file": "/data/mooring-token"})
        );
        assert_eq!(
            c["rule_files"],
            json!(["/repo/examples/dashboards/rules.yaml"])
        );
    }
}
