//! Prometheus metrics of the simulated Pods, served under `/metrics/` by the HTTP layer.
//!
//! Canary analysis needs a canary and a stable version that *measurably* differ. Each
//! Running simulated Pod therefore exports request counters, a latency histogram and a
//! model-accuracy gauge whose values come from annotations on the Pod (copied from the
//! Pod template, so a manifest change alone changes them):
//!
//! | annotation | meaning | default |
//! |---|---|---|
//! | `sim.mooring.dev/request-rate` | requests per second | 10 |
//! | `sim.mooring.dev/error-rate` | fraction of requests answered with 500 | 0 |
//! | `sim.mooring.dev/latency-ms` | mean request duration (exponentially distributed) | 50 |
//! | `sim.mooring.dev/accuracy` | value of `ml_model_accuracy` | 0.95 |
//!
//! Values are a deterministic function of the real time since the container started
//! (`status.containerStatuses[0].state.running.startedAt`): `http_requests_total` is
//! `floor(rate × share × elapsed)` per code, so counters are monotonic without any stored
//! state, a crash-looping container resets them like a real restart does, and a real
//! Prometheus scraping every second sees the configured rates.
//!
//! Paths (after `/metrics/`): `pods` (every Running simulated Pod), `pods/{namespace}`,
//! `pods/{namespace}/{name}`, and `targets`: a Prometheus `http_sd_configs` document
//! listing one target per Running Pod (only when the handler knows the server address,
//! see [`metrics_handler_at`]).
//!
//! Requests really answered through a Service's load-balancer address
//! ([`super::listeners`], counted in [`super::traffic`]) are added to the Pod's
//! `http_requests_total{code="200"}` and to every bucket of its latency histogram (they
//! are answered at once), when the handler was built with [`metrics_handler_with`].
//!
//! Series: `http_requests_total{namespace,pod,app?,version?,rollouts_pod_template_hash?,code}`,
//! `http_request_duration_seconds` (buckets .005 … 10) and `ml_model_accuracy`, labelled
//! like the counter without `code`.
//!
//! The exposition is formatted by hand rather than with prometheus-client: its text
//! encoder writes the OpenMetrics format (with `# EOF`, served as
//! `application/openmetrics-text`) while this endpoint is served as the classic
//! `text/plain; version=0.0.4`, and its `Histogram` can only `observe()` samples,
//! whereas these values are computed in closed form on each scrape.

use super::res;
use super::traffic::Traffic;
use super::util::{annotation, str_at};
use crate::api::Api;
use mooring_core::time;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::sync::Arc;

pub const REQUEST_RATE: &str = "sim.mooring.dev/request-rate";
pub const ERROR_RATE: &str = "sim.mooring.dev/error-rate";
pub const LATENCY_MS: &str = "sim.mooring.dev/latency-ms";
pub const ACCURACY: &str = "sim.mooring.dev/accuracy";

/// Histogram bucket bounds, in seconds.
pub const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Serves `/metrics/{path}`: `None` means 404.
pub type MetricsHandler = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The metrics handler, without `targets` (the server address is not known).
pub fn metrics_handler(api: Api) -> MetricsHandler {
    metrics_handler_at(api, None)
}

/// The metrics handler; with `address` (`127.0.0.1:PORT`) it also serves `targets`.
pub fn metrics_handler_at(api: Api, address: Option<String>) -> MetricsHandler {
    metrics_handler_with(api, address, Traffic::default())
}

/// The metrics handler of a cluster whose load-balancer listeners record into `traffic`.
pub fn metrics_handler_with(api: Api, address: Option<String>, traffic: Traffic) -> MetricsHandler {
    Arc::new(move |path: &str| {
        let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let render = |pods: &[Value]| render(pods, &traffic);
        match segs.as_slice() {
            ["pods"] => Some(render(&running_pods(&api, None, None))),
            ["pods", ns] => Some(render(&running_pods(&api, Some(ns), None))),
            ["pods", ns, name] => {
                let pods = running_pods(&api, Some(ns), Some(name));
                (!pods.is_empty()).then(|| render(&pods))
            }
            ["targets"] => address
                .as_ref()
                .map(|a| targets(&running_pods(&api, None, None), a)),
            _ => None,
        }
    })
}

/// Running simulated Pods with a running container.
fn running_pods(api: &Api, ns: Option<&str>, name: Option<&str>) -> Vec<Value> {
    let (items, _) = api.store.list(res::PODS, ns);
    items
        .iter()
        .filter(|s| name.is_none_or(|n| s.key.name == n))
        .filter_map(|s| s.value().ok())
        .filter(|p| str_at(p, "/status/phase") == Some("Running") && started_at(p).is_some())
        .collect()
}

fn started_at(p: &Value) -> Option<time::Timestamp> {
    p.pointer("/status/containerStatuses")?
        .as_array()?
        .iter()
        .find_map(|c| {
            c.pointer("/state/running/startedAt")
                .and_then(Value::as_str)
        })
        .and_then(|s| time::parse(s).ok())
}

pub(crate) fn ann_f64(p: &Value, key: &str, default: f64, min: f64, max: f64) -> f64 {
    annotation(p, key)
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .map(|v| v.clamp(min, max))
        .unwrap_or(default)
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The identifying labels of a Pod's series, rendered `k="v",…`.
fn pod_labels(p: &Value) -> String {
    let labels = p.pointer("/metadata/labels").cloned().unwrap_or(json!({}));
    let l = |k: &str| labels.get(k).and_then(Value::as_str);
    let mut out = format!(
        "namespace=\"{}\",pod=\"{}\"",
        escape(str_at(p, "/metadata/namespace").unwrap_or_default()),
        escape(str_at(p, "/metadata/name").unwrap_or_default())
    );
    let extra = [
        ("app", l("app").or(l("app.kubernetes.io/name"))),
        ("version", l("version").or(l("app.kubernetes.io/version"))),
        (
            "rollouts_pod_template_hash",
            l("rollouts-pod-template-hash"),
        ),
    ];
    for (k, v) in extra {
        if let Some(v) = v {
            let _ = write!(out, ",{k}=\"{}\"", escape(v));
        }
    }
    out
}

/// The sample values of one Pod after `elapsed` seconds of running.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub ok: u64,
    pub errors: u64,
    /// Cumulative counts per bucket of [`BUCKETS`].
    pub buckets: [u64; 11],
    pub sum: f64,
    pub accuracy: f64,
}

/// Closed-form values for a Pod with these annotations after `elapsed` seconds.
pub fn sample(rate: f64, error_rate: f64, latency_ms: f64, accuracy: f64, elapsed: f64) -> Sample {
    let t = elapsed.max(0.0);
    let ok = (rate * (1.0 - error_rate) * t).floor() as u64;
    let errors = (rate * error_rate * t).floor() as u64;
    let count = ok + errors;
    let mean = (latency_ms / 1000.0).max(1e-6);
    let mut buckets = [0u64; 11];
    for (b, le) in buckets.iter_mut().zip(BUCKETS) {
        let cdf = 1.0 - (-le / mean).exp();
        *b = ((count as f64) * cdf).floor() as u64;
    }
    Sample {
        ok,
        errors,
        buckets,
        sum: count as f64 * mean,
        accuracy,
    }
}

fn render(pods: &[Value], traffic: &Traffic) -> String {
    let now = time::now();
    let samples: Vec<(String, Sample)> = pods
        .iter()
        .filter_map(|p| {
            let started = started_at(p)?;
            let elapsed = now.duration_since(started).as_secs_f64();
            let mut s = sample(
                ann_f64(p, REQUEST_RATE, 10.0, 0.0, 1.0e6),
                ann_f64(p, ERROR_RATE, 0.0, 0.0, 1.0),
                ann_f64(p, LATENCY_MS, 50.0, 0.001, 1.0e6),
                ann_f64(p, ACCURACY, 0.95, f64::MIN, f64::MAX),
                elapsed,
            );
            let served = traffic.served(
                str_at(p, "/metadata/namespace").unwrap_or_default(),
                str_at(p, "/metadata/name").unwrap_or_default(),
            );
            s.ok += served;
            for b in &mut s.buckets {
                *b += served;
            }
            Some((pod_labels(p), s))
        })
        .collect();
    let mut out = String::new();
    out.push_str("# HELP http_requests_total Total HTTP requests served by the simulated pod, by status code.\n");
    out.push_str("# TYPE http_requests_total counter\n");
    for (l, s) in &samples {
        let _ = writeln!(out, "http_requests_total{{{l},code=\"200\"}} {}", s.ok);
        let _ = writeln!(out, "http_requests_total{{{l},code=\"500\"}} {}", s.errors);
    }
    out.push_str("# HELP http_request_duration_seconds Duration of HTTP requests served by the simulated pod.\n");
    out.push_str("# TYPE http_request_duration_seconds histogram\n");
    for (l, s) in &samples {
        for (le, n) in BUCKETS.iter().zip(s.buckets) {
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{{l},le=\"{le}\"}} {n}"
            );
        }
        let count = s.ok + s.errors;
        let _ = writeln!(
            out,
            "http_request_duration_seconds_bucket{{{l},le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(out, "http_request_duration_seconds_sum{{{l}}} {}", s.sum);
        let _ = writeln!(out, "http_request_duration_seconds_count{{{l}}} {count}");
    }
    out.push_str("# HELP ml_model_accuracy Accuracy of the model served by the simulated pod.\n");
    out.push_str("# TYPE ml_model_accuracy gauge\n");
    for (l, s) in &samples {
        let _ = writeln!(out, "ml_model_accuracy{{{l}}} {}", s.accuracy);
    }
    out
}

fn targets(pods: &[Value], address: &str) -> String {
    let list: Vec<Value> = pods
        .iter()
        .map(|p| {
            let ns = str_at(p, "/metadata/namespace").unwrap_or_default();
            let name = str_at(p, "/metadata/name").unwrap_or_default();
            json!({"targets": [address], "labels": {"__metrics_path__": format!("/metrics/pods/{ns}/{name}")}})
        })
        .collect();
    Value::Array(list).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_monotonic_and_follow_rates() {
        let mut prev = sample(10.0, 0.1, 50.0, 0.9, 0.0);
        for i in 1..500 {
            let s = sample(10.0, 0.1, 50.0, 0.9, f64::from(i) * 0.37);
            assert!(s.ok >= prev.ok && s.errors >= prev.errors);
            assert!(s.buckets.iter().zip(prev.buckets).all(|(a, b)| *a >= b));
            assert!(s.buckets.windows(2).all(|w| w[0] <= w[1]));
            assert!(s.buckets[10] <= s.ok + s.errors);
            prev = s;
        }
        let s = sample(10.0, 0.1, 50.0, 0.9, 100.0);
        assert_eq!(s.ok, 900);
        assert_eq!(s.errors, 100);
        assert!((s.sum - 50.0).abs() < 1e-9);
    }

    #[test]
    fn labels_are_escaped() {
        let p = json!({"metadata": {"namespace": "n", "name": "p", "labels": {"app": "a\"b", "version": "v1"}}});
        assert_eq!(
            pod_labels(&p),
            "namespace=\"n\",pod=\"p\",app=\"a\\\"b\",version=\"v1\""
        );
    }
}
