//! Argo Rollouts analysis types: `AnalysisTemplate`, `ClusterAnalysisTemplate` and
//! `AnalysisRun` (`argoproj.io/v1alpha1`), field for field.
//!
//! Teams moving from Argo Rollouts keep their templates unchanged, so every field keeps
//! Argo's camelCase name, unknown fields are ignored rather than rejected (a newer Argo
//! field must not make a template unreadable), durations stay Go-duration strings
//! (`30s`, `5m`, parsed with [`crate::time::parse_go_duration`]) and the limits and counts
//! that Argo types as int-or-string (so `count: "{{args.count}}"` works) are
//! [`IntOrString`]. Providers other than `prometheus`, `web` and `job` are kept in
//! [`MetricProvider::other`] so that the controller can say which one it does not support
//! instead of silently measuring nothing.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

pub const GROUP: &str = "argoproj.io";
pub const API_VERSION: &str = "argoproj.io/v1alpha1";
pub const ANALYSIS_TEMPLATE: &str = "AnalysisTemplate";
pub const CLUSTER_ANALYSIS_TEMPLATE: &str = "ClusterAnalysisTemplate";
pub const ANALYSIS_RUN: &str = "AnalysisRun";

/// Kubernetes `IntOrString`: `3` or `"3"` (or `"{{args.n}}"` before substitution).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i64),
    String(String),
}

impl IntOrString {
    /// The integer value; `None` for a string that is not an integer.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            IntOrString::Int(i) => Some(*i),
            IntOrString::String(s) => s.trim().parse().ok(),
        }
    }
}

impl std::fmt::Display for IntOrString {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IntOrString::Int(i) => write!(f, "{i}"),
            IntOrString::String(s) => f.write_str(s),
        }
    }
}

/// `spec` of an `AnalysisTemplate` or `ClusterAnalysisTemplate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisTemplateSpec {
    #[serde(default)]
    pub metrics: Vec<Metric>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Argument>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<DryRun>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurement_retention: Vec<MeasurementRetention>,
}

/// One metric: how to measure, how often, and how to judge a measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Metric {
    pub name: String,
    /// Time between measurements (Go duration); absent ⇒ a single measurement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Wait before the first measurement (Go duration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_delay: Option<String>,
    /// Number of measurements; absent with an interval ⇒ measure until the run ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_condition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_condition: Option<String>,
    /// Failed measurements tolerated (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_limit: Option<IntOrString>,
    /// Inconclusive measurements tolerated (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inconclusive_limit: Option<IntOrString>,
    /// Consecutive errors tolerated (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_error_limit: Option<IntOrString>,
    /// Consecutive successes after which the metric is Successful (default: not used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_success_limit: Option<IntOrString>,
    #[serde(default)]
    pub provider: MetricProvider,
}

/// Where a measurement comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct MetricProvider {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusMetric>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web: Option<WebMetric>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<JobMetric>,
    /// Providers Mooring does not implement (datadog, newRelic, kayenta, …), kept verbatim.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusMetric {
    /// Absent ⇒ the controller's default Prometheus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default)]
    pub query: String,
    /// Query timeout in seconds (Argo: int64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<WebMetricHeader>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct WebMetric {
    /// GET (default), POST or PUT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default)]
    pub url: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<WebMetricHeader>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// A JSON body given as an object instead of a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_body: Option<Value>,
    /// Default 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i64>,
    /// `{$.data.ok}`; absent ⇒ the whole body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_path: Option<String>,
    #[serde(default)]
    pub insecure: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
pub struct WebMetricHeader {
    /// `key` in Argo's types (`name`, as some of Argo's docs spell it, is accepted too).
    #[serde(alias = "name")]
    pub key: String,
    pub value: String,
}

/// A Kubernetes Job run per measurement: Complete ⇒ Successful, Failed ⇒ Failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
pub struct JobMetric {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub spec: Value,
}

/// A template argument: a literal `value`, or `valueFrom` a Secret key or a field of
/// the Rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Argument {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ValueFrom>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ValueFrom {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<SecretKeyRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<FieldRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct FieldRef {
    pub field_path: String,
}

/// `dryRun: [{metricName: …}]`: the metric is measured but cannot fail the run.
/// `metricName: ".*"` style regular expressions are matched by the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct DryRun {
    pub metric_name: String,
}

/// `measurementRetention: [{metricName, limit}]` (default: keep 10 per metric).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct MeasurementRetention {
    pub metric_name: String,
    pub limit: i64,
}

/// `spec` of an `AnalysisRun`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunSpec {
    #[serde(default)]
    pub metrics: Vec<Metric>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<Argument>,
    /// Stop measuring; the run ends Successful (as Argo does when a rollout moves on).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub terminate: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dry_run: Vec<DryRun>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurement_retention: Vec<MeasurementRetention>,
}

/// Phase of a measurement, a metric or a run.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema, Default,
)]
pub enum AnalysisPhase {
    #[default]
    Pending,
    Running,
    Successful,
    Failed,
    Error,
    Inconclusive,
}

impl AnalysisPhase {
    /// Whether nothing will change any more.
    pub fn completed(self) -> bool {
        matches!(
            self,
            AnalysisPhase::Successful
                | AnalysisPhase::Failed
                | AnalysisPhase::Error
                | AnalysisPhase::Inconclusive
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AnalysisPhase::Pending => "Pending",
            AnalysisPhase::Running => "Running",
            AnalysisPhase::Successful => "Successful",
            AnalysisPhase::Failed => "Failed",
            AnalysisPhase::Error => "Error",
            AnalysisPhase::Inconclusive => "Inconclusive",
        }
    }
}

impl std::fmt::Display for AnalysisPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `status` of an `AnalysisRun`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisRunStatus {
    #[serde(default)]
    pub phase: AnalysisPhase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metric_results: Vec<MetricResult>,
    /// RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_summary: Option<RunSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run_summary: Option<RunSummary>,
}

/// Counts of metrics by phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    #[serde(default)]
    pub count: i64,
    #[serde(default)]
    pub successful: i64,
    #[serde(default)]
    pub failed: i64,
    #[serde(default)]
    pub inconclusive: i64,
    #[serde(default)]
    pub error: i64,
}

/// The measurements and counters of one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct MetricResult {
    pub name: String,
    #[serde(default)]
    pub phase: AnalysisPhase,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measurements: Vec<Measurement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default)]
    pub count: i64,
    #[serde(default)]
    pub successful: i64,
    #[serde(default)]
    pub failed: i64,
    #[serde(default)]
    pub inconclusive: i64,
    #[serde(default)]
    pub error: i64,
    #[serde(default)]
    pub consecutive_error: i64,
    #[serde(default)]
    pub consecutive_success: i64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
}

/// One measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    #[serde(default)]
    pub phase: AnalysisPhase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Provider data (the Job name of a job measurement).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<BTreeMap<String, String>>,
    /// When a Running (asynchronous) measurement is looked at again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_at: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_argo_rollouts_template_unchanged() {
        let yaml = r#"
metrics:
- name: success-rate
  interval: 1m
  count: "{{args.count}}"
  successCondition: result[0] >= 0.95
  failureLimit: 3
  someFutureField: true
  provider:
    prometheus:
      address: http://prometheus.example.com:9090
      query: sum(rate(x[5m]))
      timeout: 20
- name: external
  provider:
    datadog:
      query: avg:x
- name: job
  provider:
    job:
      metadata: {labels: {a: b}}
      spec: {backoffLimit: 1}
args:
- name: service-name
- name: api-token
  valueFrom:
    secretKeyRef: {name: token-secret, key: apiToken}
dryRun:
- metricName: external
measurementRetention:
- metricName: success-rate
  limit: 20
"#;
        let spec: AnalysisTemplateSpec =
            serde_json::from_value(crate::yaml::parse_one(yaml).expect("yaml")).expect("parses");
        let m = &spec.metrics[0];
        assert_eq!(m.count, Some(IntOrString::String("{{args.count}}".into())));
        assert_eq!(
            m.failure_limit.as_ref().and_then(IntOrString::as_int),
            Some(3)
        );
        assert_eq!(
            m.provider.prometheus.as_ref().map(|p| p.timeout),
            Some(Some(20))
        );
        assert!(spec.metrics[1].provider.other.contains_key("datadog"));
        assert_eq!(
            spec.metrics[2]
                .provider
                .job
                .as_ref()
                .map(|j| j.spec["backoffLimit"].clone()),
            Some(serde_json::json!(1))
        );
        assert_eq!(
            spec.args[1]
                .value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
                .map(|s| s.key.as_str()),
            Some("apiToken")
        );
        assert_eq!(spec.measurement_retention[0].limit, 20);
        // Round trip keeps Argo's field names.
        let v = serde_json::to_value(&spec).expect("json");
        assert_eq!(v["metrics"][0]["successCondition"], "result[0] >= 0.95");
        assert_eq!(v["metrics"][1]["provider"]["datadog"]["query"], "avg:x");
    }

    #[test]
    fn reads_a_run_status() {
        let v = serde_json::json!({
            "phase": "Failed", "message": "m", "startedAt": "2024-01-01T00:00:00Z",
            "runSummary": {"count": 1, "failed": 1},
            "metricResults": [{"name": "a", "phase": "Failed", "count": 2, "failed": 2,
                "measurements": [{"phase": "Failed", "value": "[0.5]", "startedAt": "2024-01-01T00:00:00Z"}]}]
        });
        let s: AnalysisRunStatus = serde_json::from_value(v).expect("status");
        assert_eq!(s.phase, AnalysisPhase::Failed);
        assert!(s.phase.completed());
        assert_eq!(
            s.metric_results[0].measurements[0].value.as_deref(),
            Some("[0.5]")
        );
        assert_eq!(s.run_summary.map(|r| r.failed), Some(1));
    }

    #[test]
    fn rejects_an_unknown_phase() {
        let r: Result<AnalysisRunStatus, _> =
            serde_json::from_value(serde_json::json!({"phase": "Exploded"}));
        assert!(r.is_err());
    }
}
