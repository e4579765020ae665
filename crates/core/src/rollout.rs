//! Argo Rollouts' `Rollout` (`argoproj.io/v1alpha1`) spec as Rust types.
//!
//! Users bring their Argo Rollouts manifests unchanged, so field names follow Argo's JSON
//! exactly. Only the fields Mooring's rollout controller acts on are typed; everything
//! else (the pod template above all) stays a `serde_json::Value`, so nothing a user wrote
//! is lost when the controller copies it into a ReplicaSet. The status is written by the
//! controller as JSON in Argo's layout (see `mooring_engine::rollout`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Label on ReplicaSets, Pods and Service selectors naming the pod template hash.
pub const POD_TEMPLATE_HASH_LABEL: &str = "rollouts-pod-template-hash";
/// Annotation on a Rollout's ReplicaSets: the rollout revision the ReplicaSet belongs to.
pub const REVISION_ANNOTATION: &str = "rollout.argoproj.io/revision";
/// Annotation on an old ReplicaSet: when it may be scaled down (RFC 3339).
pub const SCALE_DOWN_DEADLINE_ANNOTATION: &str = "scale-down-deadline";
/// Annotation on a Service whose selector the rollout controller manages.
pub const MANAGED_BY_ANNOTATION: &str = "argo-rollouts.argoproj.io/managed-by-rollouts";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSpec {
    /// Desired pods (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i64>,
    #[serde(default)]
    pub selector: Value,
    #[serde(default)]
    pub template: Value,
    /// Argo's `workloadRef` (a Deployment whose template is used) is not supported;
    /// kept so it can be reported instead of ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload_ref: Option<Value>,
    #[serde(default)]
    pub min_ready_seconds: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i64>,
    #[serde(default)]
    pub paused: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress_deadline_seconds: Option<i64>,
    #[serde(default)]
    pub progress_deadline_abort: bool,
    #[serde(default)]
    pub strategy: Strategy,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Strategy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blue_green: Option<BlueGreenStrategy>,
}

/// `maxSurge` / `maxUnavailable`: a count or a percentage string.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i64),
    String(String),
}

impl IntOrString {
    /// The value against `total` (percentages rounded up for surge, down for unavailable,
    /// as Kubernetes does). `None` for a malformed value.
    pub fn scaled(&self, total: i64, round_up: bool) -> Option<i64> {
        match self {
            IntOrString::Int(i) => Some(*i),
            IntOrString::String(s) => match s.strip_suffix('%') {
                Some(p) => {
                    let p: i64 = p.trim().parse().ok()?;
                    let v = total * p;
                    Some(if round_up { (v + 99) / 100 } else { v / 100 })
                }
                None => s.trim().parse().ok(),
            },
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStrategy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stable_service: Option<String>,
    #[serde(default)]
    pub steps: Vec<CanaryStep>,
    /// Istio or the Gateway API plugin; parsed by `mooring_engine::traffic`, which edits
    /// the router objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_routing: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_surge: Option<IntOrString>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrString>,
    /// Background analysis over the whole update.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<RolloutAnalysisBackground>,
    #[serde(default)]
    pub dynamic_stable_scale: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_scale_down_delay_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_seconds: Option<i64>,
}

/// One canary step: exactly one field is set.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CanaryStep {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_weight: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<PauseStep>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<RolloutAnalysis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_canary_scale: Option<SetCanaryScale>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_header_route: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_mirror_route: Option<Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PauseStep {
    /// Go duration or plain seconds (`30`, `"30s"`, `"1h"`); absent: until promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SetCanaryScale {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    #[serde(default)]
    pub match_traffic_weight: bool,
}

/// An inline analysis step, or blue-green pre/post-promotion analysis.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutAnalysis {
    #[serde(default)]
    pub templates: Vec<AnalysisTemplateRef>,
    /// Argo `AnalysisRunArgument`s: `{name, value}` or `{name, valueFrom: {podTemplateHashValue
    /// | fieldRef | secretKeyRef}}`.
    #[serde(default)]
    pub args: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measurement_retention: Option<Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutAnalysisBackground {
    #[serde(flatten)]
    pub analysis: RolloutAnalysis,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starting_step: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisTemplateRef {
    #[serde(default)]
    pub template_name: String,
    #[serde(default)]
    pub cluster_scope: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BlueGreenStrategy {
    pub active_service: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_replica_count: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promotion_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_promotion_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_delay_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort_scale_down_delay_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_promotion_analysis: Option<RolloutAnalysis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_promotion_analysis: Option<RolloutAnalysis>,
}
