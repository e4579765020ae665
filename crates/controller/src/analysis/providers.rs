//! Measurement providers: Prometheus, web (HTTP + JSONPath) and Kubernetes Jobs.
//!
//! Each provider turns a metric into a value for the conditions, exactly as Argo
//! Rollouts' provider does, so that the same `successCondition` means the same thing:
//! a Prometheus instant vector is always an array (`result[0]`, `len(result) == 0` for
//! an empty answer), a scalar is a number, NaN stays NaN; a web metric is the JSON value
//! at `jsonPath` (the whole body without one); a Job is Successful when it completes
//! and Failed when it fails, with no condition involved. Provider errors (unreachable,
//! timeout, non-2xx, bad JSON) become Error measurements, never Failed ones.
//!
//! The URLs a run names are tenant input: web metrics and Prometheus addresses other than
//! the controller's own go through [`crate::outbound`], so a refused address (loopback,
//! link-local, the API server, …) is an Error measurement saying so and how the admin
//! opens it, and nothing is sent.

use crate::outbound::{Outbound, OutboundRequest};
use crate::prometheus::{PromClient, PromError, PromValue};
use mooring_core::analysis::{JobMetric, PrometheusMetric, WebMetric};
use mooring_engine::analysis::MetricValue;
use serde_json::Value;
use std::time::Duration;

/// A provider's answer: the value for the conditions and its recorded text.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub value: MetricValue,
    pub text: String,
}

/// Default Prometheus query timeout (Argo has none; a hung query must not stall a run).
pub const DEFAULT_PROMETHEUS_TIMEOUT: Duration = Duration::from_secs(30);
/// Argo's default web metric timeout.
pub const DEFAULT_WEB_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest web metric body read.
pub const MAX_WEB_BODY: usize = 4 * 1024 * 1024;

/// Query Prometheus for a metric.
pub async fn prometheus(
    m: &PrometheusMetric,
    default_address: Option<&str>,
    outbound: &Outbound,
) -> Result<Measured, String> {
    let address = m
        .address
        .as_deref()
        .filter(|a| !a.trim().is_empty())
        .or(default_address)
        .ok_or_else(|| {
            "prometheus provider has no address and no default Prometheus is configured".to_string()
        })?;
    if m.query.trim().is_empty() {
        return Err("prometheus provider has an empty query".into());
    }
    let client = PromClient::new(address).map_err(|e| e.to_string())?;
    // The controller's own Prometheus is trusted; any other address is the run's.
    let trusted = default_address
        .and_then(|d| PromClient::new(d).ok())
        .is_some_and(|d| d.address() == client.address());
    let client = if trusted {
        client
    } else {
        client.through(outbound.clone())
    };
    let client = client.with_headers(
        m.headers
            .iter()
            .map(|h| (h.key.clone(), h.value.clone()))
            .collect(),
    );
    let timeout = m
        .timeout
        .filter(|t| *t > 0)
        .map(|t| Duration::from_secs(t.min(3600) as u64))
        .unwrap_or(DEFAULT_PROMETHEUS_TIMEOUT);
    let v = client
        .query(&m.query, timeout)
        .await
        .map_err(|e: PromError| e.to_string())?;
    from_prometheus(v)
}

/// Argo's conversion of a Prometheus answer.
pub fn from_prometheus(v: PromValue) -> Result<Measured, String> {
    match v {
        PromValue::Vector(samples) => {
            let value = MetricValue::Array(
                samples
                    .iter()
                    .map(|s| MetricValue::Number(s.value))
                    .collect(),
            );
            Ok(Measured {
                text: value.to_string(),
                value,
            })
        }
        PromValue::Scalar(f) => {
            let value = MetricValue::Number(f);
            Ok(Measured {
                text: value.to_string(),
                value,
            })
        }
        PromValue::String(s) => Ok(Measured {
            text: s.clone(),
            value: MetricValue::String(s),
        }),
        PromValue::Matrix(_) => Err(
            "Prometheus returned a range vector (matrix); analysis needs an instant vector or a scalar"
                .into(),
        ),
    }
}

/// Call a web endpoint (through the outbound client) and read the JSON value at `jsonPath`.
pub async fn web(m: &WebMetric, outbound: &Outbound) -> Result<Measured, String> {
    let timeout = m
        .timeout_seconds
        .filter(|t| *t > 0)
        .map(|t| Duration::from_secs(t.min(3600) as u64))
        .unwrap_or(DEFAULT_WEB_TIMEOUT);
    let method = m.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
    let method = match method.as_str() {
        "GET" => reqwest::Method::GET,
        "POST" => reqwest::Method::POST,
        "PUT" => reqwest::Method::PUT,
        other => return Err(format!("web method {other} is not GET, POST or PUT")),
    };
    let mut req = OutboundRequest::new(method, m.url.trim());
    req.timeout = timeout;
    req.max_body = MAX_WEB_BODY;
    req.insecure = m.insecure;
    req.headers = m
        .headers
        .iter()
        .map(|h| (h.key.clone(), h.value.clone()))
        .collect();
    if let Some(b) = &m.json_body {
        req.headers
            .push(("Content-Type".into(), "application/json".into()));
        req.body = Some(b.to_string().into_bytes());
    } else if let Some(b) = &m.body {
        req.body = Some(b.clone().into_bytes());
    }
    let resp = outbound
        .send(req)
        .await
        .map_err(|e| format!("web metric: {e}"))?;
    let body = resp.body;
    if !(200..300).contains(&resp.status) {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).to_string();
        return Err(format!(
            "received non 2xx response code: {} {}",
            resp.status,
            text.trim()
        ));
    }
    let json: Value =
        serde_json::from_slice(&body).map_err(|e| format!("could not parse JSON body: {e}"))?;
    select_json(&json, m.json_path.as_deref())
}

/// The value at a Kubernetes-style JSONPath (`{$.data.ok}`, braces optional).
pub fn select_json(json: &Value, path: Option<&str>) -> Result<Measured, String> {
    use jsonpath_rust::JsonPath as _;
    let selected = match path.map(str::trim).filter(|p| !p.is_empty()) {
        None => json.clone(),
        Some(p) => {
            let p = p
                .strip_prefix('{')
                .and_then(|p| p.strip_suffix('}'))
                .unwrap_or(p)
                .trim();
            let p = if p.starts_with('$') {
                p.to_string()
            } else {
                format!("${p}")
            };
            let found = json
                .query(&p)
                .map_err(|e| format!("invalid jsonPath `{p}`: {e}"))?;
            match found.as_slice() {
                [] => return Err(format!("jsonPath `{p}` matched nothing in the body")),
                [one] => (*one).clone(),
                many => Value::Array(many.iter().map(|v| (*v).clone()).collect()),
            }
        }
    };
    let text = match &selected {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Ok(Measured {
        value: MetricValue::from(&selected),
        text,
    })
}

/// Label on Jobs naming their AnalysisRun (as Argo Rollouts).
pub const RUN_LABEL: &str = "analysisrun.argoproj.io/name";
/// Label on Jobs naming their metric.
pub const METRIC_LABEL: &str = "analysisrun.argoproj.io/metric-name";

/// A DNS-1123 subdomain of at most 63 characters (Job names become Pod labels):
/// `{run}.{metric}.{n}`, shortened with a hash when too long.
pub fn job_name(run: &str, metric: &str, n: i64) -> String {
    let clean = |s: &str| -> String {
        let s: String = s
            .to_ascii_lowercase()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        s.trim_matches('-').to_string()
    };
    let full = format!("{}.{}.{n}", clean(run), clean(metric));
    if full.len() <= 63 {
        return full;
    }
    // FNV-1a: stable across releases, unlike std's hasher.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in full.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    let suffix = format!("-{:08x}.{n}", h as u32);
    let keep = 63 - suffix.len();
    let head: String = full.chars().take(keep).collect();
    format!("{}{suffix}", head.trim_end_matches(['-', '.']))
}

/// The Job for one measurement, owned by the run (garbage-collected with it).
pub fn job_object(
    m: &JobMetric,
    name: &str,
    namespace: &str,
    run: &str,
    run_uid: &str,
    metric: &str,
) -> Result<Value, String> {
    if !m.spec.is_object() {
        return Err("job provider has no spec".into());
    }
    let mut metadata = m
        .metadata
        .clone()
        .unwrap_or(Value::Object(Default::default()));
    let meta = metadata
        .as_object_mut()
        .ok_or_else(|| "job provider metadata is not an object".to_string())?;
    meta.insert("name".into(), Value::String(name.into()));
    meta.insert("namespace".into(), Value::String(namespace.into()));
    let labels = meta
        .entry("labels")
        .or_insert_with(|| Value::Object(Default::default()));
    let labels = labels
        .as_object_mut()
        .ok_or_else(|| "job provider metadata.labels is not an object".to_string())?;
    labels.insert(RUN_LABEL.into(), Value::String(label_value(run)));
    labels.insert(METRIC_LABEL.into(), Value::String(label_value(metric)));
    meta.insert(
        "ownerReferences".into(),
        serde_json::json!([{
            "apiVersion": mooring_core::analysis::API_VERSION,
            "kind": mooring_core::analysis::ANALYSIS_RUN,
            "name": run, "uid": run_uid, "controller": true, "blockOwnerDeletion": true
        }]),
    );
    Ok(serde_json::json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": metadata,
        "spec": m.spec,
    }))
}

fn label_value(s: &str) -> String {
    let v: String = s.chars().take(63).collect();
    v.trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// The outcome of a Job from its conditions: `Some(Ok(()))` complete, `Some(Err(msg))`
/// failed, `None` still running.
pub fn job_outcome(job: &Value) -> Option<Result<(), String>> {
    let conds = job.pointer("/status/conditions")?.as_array()?;
    let is = |t: &str| {
        conds.iter().find(|c| {
            c.get("type").and_then(Value::as_str) == Some(t)
                && c.get("status").and_then(Value::as_str) == Some("True")
        })
    };
    if is("Complete").is_some() {
        return Some(Ok(()));
    }
    if let Some(c) = is("Failed") {
        let reason = c.get("reason").and_then(Value::as_str).unwrap_or("Failed");
        let msg = c.get("message").and_then(Value::as_str).unwrap_or_default();
        return Some(Err(format!("job failed: {reason}: {msg}")
            .trim_end_matches(": ")
            .to_string()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prometheus::Sample;
    use serde_json::json;

    #[test]
    fn prometheus_values_convert_like_argo() {
        let s = |v: f64| Sample {
            labels: Default::default(),
            value: v,
        };
        let m = from_prometheus(PromValue::Vector(vec![s(0.99)])).expect("vector");
        assert_eq!(m.text, "[0.99]");
        assert_eq!(m.value, MetricValue::Array(vec![MetricValue::Number(0.99)]));
        let m = from_prometheus(PromValue::Vector(vec![])).expect("empty");
        assert_eq!(m.text, "[]");
        let m = from_prometheus(PromValue::Scalar(f64::NAN)).expect("scalar");
        assert_eq!(m.text, "NaN");
        assert!(from_prometheus(PromValue::Matrix(vec![])).is_err());
    }

    #[test]
    fn json_paths() {
        let body = json!({"data": {"ok": true, "score": 0.97, "items": [1, 2]}, "s": "x"});
        assert_eq!(
            select_json(&body, Some("{$.data.ok}")).expect("ok").value,
            MetricValue::Bool(true)
        );
        assert_eq!(
            select_json(&body, Some("$.data.score"))
                .expect("score")
                .text,
            "0.97"
        );
        assert_eq!(select_json(&body, Some("{.s}")).expect("s").text, "x");
        assert_eq!(
            select_json(&body, Some("$.data.items[*]"))
                .expect("items")
                .text,
            "[1,2]"
        );
        assert!(select_json(&body, Some("$.nope")).is_err());
        assert!(select_json(&body, Some("$[")).is_err());
        assert_eq!(select_json(&json!(3), None).expect("whole").text, "3");
    }

    #[test]
    fn job_names_are_valid() {
        assert_eq!(job_name("run-1", "smoke", 1), "run-1.smoke.1");
        assert_eq!(job_name("Run_1", "smoke test", 2), "run-1.smoke-test.2");
        let long = job_name(&"r".repeat(80), &"m".repeat(80), 12);
        assert!(long.len() <= 63, "{long}");
        assert!(long.ends_with(".12"));
        assert_ne!(long, job_name(&"r".repeat(81), &"m".repeat(80), 12));
    }

    #[test]
    fn jobs_are_owned_and_labelled() {
        let m = JobMetric {
            metadata: Some(json!({"labels": {"team": "ml"}})),
            spec: json!({"template": {"spec": {"containers": []}}}),
        };
        let j = job_object(&m, "r.m.1", "ns", "r", "uid-1", "m").expect("job");
        assert_eq!(j["metadata"]["labels"]["team"], "ml");
        assert_eq!(j["metadata"]["labels"][RUN_LABEL], "r");
        assert_eq!(j["metadata"]["ownerReferences"][0]["uid"], "uid-1");
        assert!(job_object(&JobMetric::default(), "x", "ns", "r", "u", "m").is_err());
        let done = json!({"status": {"conditions": [{"type": "Complete", "status": "True"}]}});
        assert_eq!(job_outcome(&done), Some(Ok(())));
        let failed = json!({"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "too many"}]}});
        assert!(job_outcome(&failed)
            .expect("done")
            .expect_err("failed")
            .contains("BackoffLimitExceeded"));
        assert_eq!(job_outcome(&json!({"status": {}})), None);
    }
}
