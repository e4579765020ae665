//! `RollbackPolicy` (`mooring.dev/v1alpha1`): automated rollback triggers on SLO breaches.
//!
//! A team that runs a model in production writes down, next to its Applications, what
//! "this version is bad" means in Prometheus terms and what to do about it. Each rule is a
//! PromQL query reduced to one number, a threshold (absolute, or relative to a baseline
//! query), a duration the breach must hold (Prometheus alerting's `for:`), and an action:
//!
//! ```yaml
//! apiVersion: mooring.dev/v1alpha1
//! kind: RollbackPolicy
//! metadata: {name: model-serving-production, namespace: argocd}
//! spec:
//!   applications:                      # which Applications (same namespace) it guards
//!     names: [model-serving-production]
//!     selector: {matchLabels: {app.kubernetes.io/part-of: model-serving}}
//!   prometheus: {address: http://prometheus.monitoring:9090}   # optional
//!   interval: 15s                      # how often rules are evaluated (default 15s)
//!   incident:
//!     webhook:
//!       url: https://incidents.example.com/hooks/mooring
//!       headers:
//!       - {name: X-Team, value: ml-platform}
//!       - name: Authorization            # from a Secret in the policy's namespace
//!         valueFrom: {secretKeyRef: {name: incident-token, key: authorization}}
//!   gitRevert:                         # optional: also revert Git (see below)
//!     mode: pullRequest                  # or direct: a revert commit on the branch
//!     pullRequest:
//!       provider: github                 # github | gitlab | gitea
//!       tokenSecretRef: {name: forge-token, key: token}
//!       reviewers: [ml-oncall]
//!   rules:
//!   - name: error_rate
//!     query: sum(rate(http_requests_total{namespace="ml-serving",code=~"5.."}[1m]))
//!            / sum(rate(http_requests_total{namespace="ml-serving"}[1m]))
//!     threshold: {operator: ">", value: 0.05}       # error rate > 5 %
//!     for: 5m
//!     action: automatic_rollback
//!   - name: p99_latency
//!     query: histogram_quantile(0.99, sum by (le) (rate(…[5m])))
//!     baseline: {query: histogram_quantile(0.99, sum by (le) (rate(…[5m] offset 1h)))}
//!     threshold: {operator: ">", ratio: 2}          # p99 > 2 × baseline
//!     for: 3m
//!     action: create_incident_and_rollback
//!   - name: model_accuracy
//!     query: avg(ml_model_accuracy{namespace="ml-serving"})
//!     baseline: {query: avg(ml_model_accuracy{namespace="ml-serving"} offset 1h)}
//!     threshold: {operator: "<", offset: -0.05}     # accuracy < baseline − 0.05
//!     for: 10m
//!     action: notify
//! ```
//!
//! `threshold` takes an `operator` (`>`, `>=`, `<`, `<=`) and exactly one of `value`
//! (absolute), `ratio` (`baseline × ratio`) or `offset` (`baseline + offset`); `ratio`
//! and `offset` need a `baseline`. The semantics (no data and NaN never breach, the breach
//! must hold continuously for `for`, one firing per breach) are the engine's
//! (`mooring_engine::rollback`), and the actions are the controller's
//! (`mooring_controller::rollback`).
//!
//! With `gitRevert`, a rollback to a revision also reverts, in the app's source repository,
//! the commits after the good revision that touch the app's inputs (as `mooring rollback
//! git` does), directly on the tracked branch or as a pull request; automated sync,
//! suspended by the rollback, resumes by itself once Git renders the good revision again
//! (the revert merged, or any fix that renders the same objects).
//!
//! The controller keeps every piece of trigger state in `status` (per-rule breach timing,
//! when it fired, each app's recently healthy revisions), so a restarted controller neither
//! forgets a breach in progress nor fires a second time for the same breach.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

pub const GROUP: &str = "mooring.dev";
pub const VERSION: &str = "v1alpha1";
pub const KIND: &str = "RollbackPolicy";
pub const PLURAL: &str = "rollbackpolicies";
/// Set on an Application whose automated sync a rollback suspended (value: the reason).
/// Removing it resumes automated sync; the policy removes it itself once Git renders the
/// rolled-back revision again.
pub const SUSPEND_ANNOTATION: &str = "mooring.dev/auto-sync-suspended";
/// Event reasons on the Application at the end of a rollback (`mooring app rollback`, or
/// a RollbackPolicy's rollback sync): at the revision, applied and Healthy, or not.
pub const COMPLETED_REASON: &str = "RollbackCompleted";
pub const FAILED_REASON: &str = "RollbackFailed";
/// The Application condition that says why automated sync is suspended.
pub const SUSPENDED_CONDITION: &str = "AutoSyncSuspended";

/// `spec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RollbackPolicySpec {
    /// The Applications (in the policy's namespace) the rules guard.
    #[serde(default)]
    pub applications: ApplicationSelector,
    /// Where to query; defaults to the controller's configured Prometheus.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusRef>,
    /// Evaluation interval, a Go duration (`15s`, `1m`); default 15s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<IncidentSpec>,
    /// Also revert the bad commits in Git when rolling back to a revision, so Git holds
    /// the good version again and automated sync resumes by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_revert: Option<GitRevertSpec>,
    pub rules: Vec<RollbackRule>,
}

/// `spec.gitRevert`: how an automated rollback reverts Git (what `mooring rollback git`
/// does by hand), with the repository credentials the controller uses for the app's source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct GitRevertSpec {
    /// `direct`: a revert commit on the tracked branch itself; `pullRequest`: a branch
    /// `rollback/APP/YYYYMMDD_HHMMSS` and a pull request (`pullRequest` settings).
    pub mode: GitRevertMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request: Option<PullRequestSpec>,
    /// Revert every commit after the good revision, not only those touching the app's
    /// inputs (the seed's whole-range revert).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub enum GitRevertMode {
    #[default]
    PullRequest,
    Direct,
}

/// Where and how to open the pull request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct PullRequestSpec {
    /// `github`, `gitlab` or `gitea`.
    pub provider: String,
    /// The forge's API base URL (default: derived from the repository URL's host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// The API token: a Secret in the policy's namespace.
    pub token_secret_ref: SecretKeyRef,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reviewers: Vec<String>,
}

/// Applications by name and/or by labels (either matches).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSelector {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// A Kubernetes label selector (`matchLabels` only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

impl ApplicationSelector {
    /// Whether an Application with this name and these labels is selected.
    pub fn matches(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        if self.names.iter().any(|n| n == name) {
            return true;
        }
        match &self.selector {
            // Evaluated by the one label-selector implementation; an invalid key or value
            // selects nothing.
            Some(s) if !s.match_labels.is_empty() => {
                let json = serde_json::json!({"matchLabels": s.match_labels});
                crate::selector::LabelSelector::from_label_selector_json(&json)
                    .is_ok_and(|sel| sel.matches(labels))
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusRef {
    /// Base URL, e.g. `http://prometheus.monitoring:9090`.
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct IncidentSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSpec {
    pub url: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<WebhookHeader>,
}

/// One header: a literal `value`, or `valueFrom.secretKeyRef` (a Secret in the policy's
/// namespace) for credentials, which then never appear in the policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct WebhookHeader {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<HeaderValueFrom>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct HeaderValueFrom {
    pub secret_key_ref: SecretKeyRef,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
pub struct SecretKeyRef {
    pub name: String,
    pub key: String,
}

/// One trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RollbackRule {
    pub name: String,
    /// PromQL; its result must reduce to one number (a one-sample vector or a scalar).
    pub query: String,
    /// The query whose value relative thresholds (`ratio`, `offset`) are measured against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<BaselineSpec>,
    pub threshold: Threshold,
    /// How long the breach must hold continuously (Go duration); default 0: at once.
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    pub action: RuleAction,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
pub struct BaselineSpec {
    pub query: String,
}

/// `operator` and exactly one of `value`, `ratio`, `offset`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Threshold {
    /// `>`, `>=`, `<` or `<=`: the relation that is a breach.
    pub operator: String,
    /// Absolute threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Threshold = baseline × ratio.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
    /// Threshold = baseline + offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<f64>,
}

/// What a rule does once its breach has held for `for`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum RuleAction {
    /// Roll back (abort the active Rollout, or sync the last healthy revision) and
    /// suspend automated sync.
    #[default]
    AutomaticRollback,
    /// The same, plus an incident: a Kubernetes Event and the incident webhook.
    CreateIncidentAndRollback,
    /// Only the incident (Event and webhook); nothing is rolled back.
    Notify,
}

impl RuleAction {
    pub fn rolls_back(self) -> bool {
        !matches!(self, RuleAction::Notify)
    }

    pub fn creates_incident(self) -> bool {
        !matches!(self, RuleAction::AutomaticRollback)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RuleAction::AutomaticRollback => "automatic_rollback",
            RuleAction::CreateIncidentAndRollback => "create_incident_and_rollback",
            RuleAction::Notify => "notify",
        }
    }
}

/// `status`, written by the controller only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RollbackPolicyStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (the spec is valid and rules are evaluated) or `InvalidSpec`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<PolicyCondition>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RuleStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applications: Vec<ApplicationRollbackStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct PolicyCondition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True` or `False`.
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

/// The last evaluation of one rule, and its breach state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RuleStatus {
    pub name: String,
    /// The query's value (absent: no data, NaN or an error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    /// The threshold in force at the last evaluation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Since when every evaluation breached (RFC 3339); absent when not breaching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breaching_since: Option<String>,
    /// When this breach fired its action; cleared when the breach ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fired_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_evaluated: Option<String>,
    /// `Ok`, `NoData`, `Pending` (breaching, not yet for `for`), `Firing` or `Error`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub state: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// Per-Application memory: the revisions seen Synced and Healthy, and the last rollback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationRollbackStatus {
    pub name: String,
    /// Revisions seen Synced and Healthy while no rule breached, oldest first (bounded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub healthy_revisions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_rollback: Option<RollbackRecord>,
    /// A rollback sync waiting for the app's running sync operation to end (a running
    /// operation is not interrupted; the rollback sync is requested right after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_rollback: Option<PendingRollback>,
    /// The Git revert of the last rollback (`spec.gitRevert`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_revert: Option<GitRevertRecord>,
}

/// What `spec.gitRevert` did for one rollback. Written (`phase: Pending`) before the
/// revert is attempted, so a restarted controller never pushes a second revert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct GitRevertRecord {
    /// The rollback it belongs to (`lastRollback.at`).
    pub rollback_at: String,
    /// `Pending`, `Pushed`, `Failed`.
    pub phase: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_request_url: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct PendingRollback {
    pub rule: String,
    /// Why (the breach, in words), for the suspension condition.
    pub reason: String,
    pub since: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RollbackRecord {
    pub rule: String,
    pub at: String,
    /// `abortRollout`, `syncRevision`, `pendingSync` (after the running operation),
    /// `none` (nothing to roll back to) or `failed`.
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_revision: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// When the rollback sync was seen done (at the revision, applied, Healthy) or failed,
    /// and the `RollbackCompleted` / `RollbackFailed` Event recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
}

/// A whole `RollbackPolicy` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RollbackPolicy {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: Value,
    pub spec: RollbackPolicySpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RollbackPolicyStatus>,
}

impl RollbackPolicy {
    pub fn name(&self) -> &str {
        crate::app::metadata_str(&self.metadata, "name")
    }

    pub fn namespace(&self) -> &str {
        crate::app::metadata_str(&self.metadata, "namespace")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_shape() {
        let yaml = r#"
apiVersion: mooring.dev/v1alpha1
kind: RollbackPolicy
metadata: {name: p, namespace: argocd}
spec:
  applications: {names: [a], selector: {matchLabels: {tier: serving}}}
  interval: 15s
  incident: {webhook: {url: "http://127.0.0.1:9/x", headers: [{name: X, value: token}]}}
  rules:
  - name: p99
    query: q
    baseline: {query: b}
    threshold: {operator: ">", ratio: 2}
    for: 3m
    action: create_incident_and_rollback
"#;
        let v = crate::yaml::parse_one(yaml).expect("yaml");
        let p: RollbackPolicy = serde_json::from_value(v).expect("policy");
        assert_eq!(p.name(), "p");
        let r = &p.spec.rules[0];
        assert_eq!(r.for_.as_deref(), Some("3m"));
        assert_eq!(r.threshold.ratio, Some(2.0));
        assert_eq!(r.action, RuleAction::CreateIncidentAndRollback);
        assert!(r.action.rolls_back() && r.action.creates_incident());
        let labels = BTreeMap::from([("tier".to_string(), "serving".to_string())]);
        assert!(p.spec.applications.matches("other", &labels));
        assert!(p.spec.applications.matches("a", &BTreeMap::new()));
        assert!(!p.spec.applications.matches("b", &BTreeMap::new()));
        let back = serde_json::to_value(&p).expect("serialise");
        assert_eq!(back["spec"]["rules"][0]["for"], "3m");
    }

    #[test]
    fn an_unknown_action_is_rejected() {
        let v = serde_json::json!({"name": "r", "query": "q", "threshold": {"operator": ">", "value": 1},
                                   "action": "rollback_everything"});
        assert!(serde_json::from_value::<RollbackRule>(v).is_err());
    }
}
