//! `DisasterRecoveryPlan` (`mooring.dev/v1alpha1`): a primary and a standby region, and
//! how to move the platform from one to the other.
//!
//! The seed's runbook was three shell scripts (fail over, validate, a weekly CronJob
//! drill) around a primary Application with automated sync and a DR Application with
//! manual sync. A plan says the same declaratively, next to the Applications, in the
//! control-plane namespace:
//!
//! ```yaml
//! apiVersion: mooring.dev/v1alpha1
//! kind: DisasterRecoveryPlan
//! metadata: {name: ml-platform, namespace: argocd}
//! spec:
//!   primary: {cluster: us-west-2}          # cluster names (Argo CD cluster Secrets' `name`)
//!   standby: {cluster: eu-west-1}
//!   applications:
//!     pairs:                               # primary app → standby app (same namespace)
//!     - {primary: ml-platform-primary, standby: ml-platform-dr, syncTimeout: 5m}
//!     - {primary: inference-primary, standby: inference-dr}
//!   detection:
//!     automatic: true                      # fail over without a human
//!     primaryUnreachableFor: 30s           # the primary's API server does not answer
//!     primaryDegradedFor: 2m               # or a primary app is Degraded/Missing
//!   activation:
//!     syncTimeout: 5m                      # default per-app timeout of the standby syncs
//!     scale:                               # on the standby cluster, after its sync
//!     - {kind: Deployment, namespace: ml-serving, name: inference-server, replicas: 10}
//!     - {kind: StatefulSet, namespace: feature-store, name: redis, replicas: 3}
//!     dns:
//!       provider:
//!         rfc2136: {server: "10.0.0.53:53", zone: ml.example.com,
//!                   tsig: {keyName: mooring, algorithm: hmac-sha256,
//!                          secretRef: {name: dns-tsig, key: secret}}}
//!         # or webhook: {url: "http://external-dns-webhook:8888", zone: ml.example.com}  (ExternalDNS)
//!       ttl: 60
//!       records:
//!       - name: inference                  # relative to the zone, or a FQDN ending in "."
//!         primary: {service: {namespace: ml-serving, name: inference-lb}}
//!         standby: {service: {namespace: ml-serving, name: inference-lb}}
//!   validation:
//!     timeout: 5m
//!     checks:
//!     - {name: apps-healthy, applications: {}}          # the active side's apps Synced+Healthy
//!     - name: inference-health
//!       http: {service: {namespace: ml-serving, name: inference-lb}, path: /health, expectedStatus: 200}
//!     - name: feature-store
//!       tcp: {service: {namespace: feature-store, name: redis}, port: 6379}
//!     - name: prometheus
//!       prometheus: {query: 'up{job="inference"}', condition: "result > 0"}
//!   objectives: {rto: 15m, rpo: 5m}
//!   rpo: {replicationLagQuery: 'max(feature_store_replication_lag_seconds)'}
//!   drill:
//!     schedule: "0 3 * * 0"                # cron, in timeZone
//!     timeZone: Europe/Berlin
//!     failureMode: scale-to-zero           # or partition (embedded clusters)
//!     report: {git: {repoURL: "https://git.example.com/platform/dr-reports.git",
//!                    branch: main, path: reports/}}
//! ```
//!
//! Everything the controller does is recorded in `status` before it is done (the current
//! [`DrOperation`] with its steps, like a sync's `operationState`), so a controller
//! killed in the middle of a failover finishes it exactly once after a restart. The pure
//! rules (validation of a plan, the order of steps, RTO/RPO arithmetic, reports) are
//! `mooring_engine::dr`; the I/O (clusters, DNS, checks) is `mooring_controller::dr`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::rollback::{LabelSelector, PolicyCondition, PrometheusRef, SecretKeyRef};

pub const GROUP: &str = "mooring.dev";
pub const VERSION: &str = "v1alpha1";
pub const KIND: &str = "DisasterRecoveryPlan";
pub const PLURAL: &str = "disasterrecoveryplans";

/// Event reasons on the plan (with `related` naming the Application of the side that
/// becomes active, so notification subscriptions on that app or its project see them:
/// `on-failover-started`, `on-failover-completed`, `on-drill-report`).
pub const FAILOVER_STARTED: &str = "FailoverStarted";
pub const FAILOVER_COMPLETED: &str = "FailoverCompleted";
pub const FAILOVER_FAILED: &str = "FailoverFailed";
pub const FAILBACK_COMPLETED: &str = "FailbackCompleted";
pub const DRILL_REPORT: &str = "DrillReport";

/// The annotation a plan sets on an Application whose automated sync it froze (the same
/// one a rollback uses: one concept, "automated sync suspended, and why").
pub use crate::rollback::SUSPEND_ANNOTATION;

/// `spec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct DisasterRecoveryPlanSpec {
    pub primary: RegionSpec,
    pub standby: RegionSpec,
    pub applications: PlanApplications,
    #[serde(default)]
    pub detection: DetectionSpec,
    #[serde(default)]
    pub activation: ActivationSpec,
    #[serde(default)]
    pub validation: ValidationSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objectives: Option<Objectives>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo: Option<RpoSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<DrillSpec>,
    /// Where PromQL checks and the replication-lag query go (default: the controller's
    /// configured Prometheus).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusRef>,
}

/// One side of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RegionSpec {
    /// A registered destination cluster, by name (an Argo CD cluster Secret's `name`).
    pub cluster: String,
    /// The region, for reports and notifications (default: the cluster's `region` label,
    /// else the cluster name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// Which Applications move: explicit pairs, or the apps an ApplicationSet generated for
/// each side's cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct PlanApplications {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pairs: Vec<AppPair>,
    /// The Applications this ApplicationSet generated (its owner reference) whose
    /// destination is the primary or the standby cluster; a primary app pairs with the
    /// standby app whose name is its own with the primary cluster's name replaced by the
    /// standby's (`inference-us-west-2` ↔ `inference-eu-west-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_set: Option<AppSetRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct AppPair {
    pub primary: String,
    pub standby: String,
    /// How long the standby app's sync may take (Go duration; default
    /// `activation.syncTimeout`, else 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_timeout: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct AppSetRef {
    pub name: String,
    /// Only generated apps with these labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct DetectionSpec {
    /// Fail over without a human once a detection condition held long enough. Without it
    /// the plan only reports `PrimaryDown` and waits for `mooring dr failover`.
    #[serde(default)]
    pub automatic: bool,
    /// The primary cluster's API server has not answered for this long (Go duration;
    /// default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_unreachable_for: Option<String>,
    /// A primary app has been Degraded or Missing for this long (absent: not a trigger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_degraded_for: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ActivationSpec {
    /// Default per-app sync timeout (Go duration; default 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_timeout: Option<String>,
    /// Replica counts set on the standby cluster once its apps are synced (the seed's
    /// "scale up inference to 10 and the feature store to 3"); undone at failback.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scale: Vec<ScaleOverride>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<DnsSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ScaleOverride {
    /// `Deployment`, `StatefulSet`, `ReplicaSet` or an Argo `Rollout`.
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub replicas: i64,
}

/// DNS records switched from the primary's address to the standby's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct DnsSpec {
    pub provider: DnsProvider,
    /// TTL of the records written (seconds; default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
    pub records: Vec<DnsRecord>,
}

/// Exactly one provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct DnsProvider {
    /// RFC 2136 dynamic update (BIND, Knot, PowerDNS, … as ExternalDNS's rfc2136 provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rfc2136: Option<Rfc2136Spec>,
    /// An ExternalDNS webhook provider (Route 53, Cloud DNS, … through their adapters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<DnsWebhookSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Rfc2136Spec {
    /// `HOST:PORT` of the primary name server (port default 53).
    pub server: String,
    /// The zone updated (`ml.example.com`).
    pub zone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsig: Option<TsigSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct TsigSpec {
    pub key_name: String,
    /// `hmac-sha256` (default), `hmac-sha512`, `hmac-sha1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<String>,
    /// The base64 secret, from a Secret in the plan's namespace.
    pub secret_ref: SecretKeyRef,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct DnsWebhookSpec {
    /// Base URL of the webhook provider (`GET /records`, `POST /records`).
    pub url: String,
    /// The zone relative record names are in (a webhook has no zone of its own); without
    /// it, record names must be absolute (`inference.ml.example.com.`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct DnsRecord {
    /// Relative to the zone (`inference`), or absolute with a trailing dot.
    pub name: String,
    /// `A` (default) or `CNAME` (for load balancers that report a hostname).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    pub primary: Target,
    pub standby: Target,
}

/// An address: literal, or the load-balancer address of a Service on that side's cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ValidationSpec {
    /// How long the checks may take to pass, retried meanwhile (Go duration; default 5m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<CheckSpec>,
}

/// One check, run against the active side; exactly one kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct CheckSpec {
    pub name: String,
    /// The active side's apps of the plan are Synced and Healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applications: Option<AppsCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PromCheck>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct AppsCheck {
    /// Only these apps (names of either side's pairs); default all of the active side.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
}

/// `GET http://<address>:<port><path>`: a literal `url`, or a Service's load-balancer
/// address on the active cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct HttpCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceRef>,
    /// Default: the Service's first port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Default `/health`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Default 200.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_status: Option<u16>,
}

/// A TCP connect to a literal `address` (`HOST:PORT`) or a Service's load-balancer
/// address (its port `port`, default its first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct TcpCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// A PromQL query reduced to one number, and a condition over `result` (the expression
/// language of analysis `successCondition`s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct PromCheck {
    pub query: String,
    /// Default `result > 0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Objectives {
    /// Recovery time objective (Go duration, `15m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto: Option<String>,
    /// Recovery point objective (Go duration, `5m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RpoSpec {
    /// PromQL returning the data replication lag in seconds (one number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_lag_query: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct DrillSpec {
    /// Cron (five fields, as a CronJob's `schedule`, or six with leading seconds);
    /// absent: drills only on demand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// IANA time zone of the schedule (default UTC), as a CronJob's `timeZone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// `scale-to-zero` (default) or `partition`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<ReportSpec>,
}

/// Where a drill's report goes besides its ConfigMap (always written) and the
/// `DrillReport` Event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ReportSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitReportSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct GitReportSpec {
    #[serde(rename = "repoURL")]
    pub repo_url: String,
    /// Default `main`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// A directory in the repository (default `dr-reports/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Which side serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, Default)]
pub enum Phase {
    #[default]
    PrimaryActive,
    FailingOver,
    StandbyActive,
    FailingBack,
    Drilling,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::PrimaryActive => "PrimaryActive",
            Phase::FailingOver => "FailingOver",
            Phase::StandbyActive => "StandbyActive",
            Phase::FailingBack => "FailingBack",
            Phase::Drilling => "Drilling",
        }
    }
}

/// `status`, written by the controller only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct DisasterRecoveryPlanStatus {
    #[serde(default)]
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready` (the plan is valid: clusters and apps exist), `PrimaryReachable`,
    /// `PrimaryHealthy`, `StandbyReachable`, and `LastFailover`, `LastFailback`,
    /// `LastDrill` (passed or not, with the measured RTO and RPO).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<PolicyCondition>,
    /// When the primary was first seen unreachable / degraded (cleared when it recovers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_unreachable_since: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_degraded_since: Option<String>,
    /// The failover or failback in progress (kept, finished, until the next one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<DrOperation>,
    /// A requested operation not yet started (`mooring dr failover|failback|drill` write
    /// it; the controller starts it and clears it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<DrRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failover: Option<OperationSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failback: Option<OperationSummary>,
    /// The drill in progress.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill: Option<DrillState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_drill: Option<OperationSummary>,
    /// The next scheduled drill (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_drill: Option<String>,
    /// Replicas of the standby workloads before the scale overrides (restored at failback).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scaled: Vec<ScaleOverride>,
}

/// `mooring dr failover|failback|drill`: what a human asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct DrRequest {
    /// `Failover`, `Failback` or `Drill`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident: Option<String>,
    pub requested_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// A failover or failback: its steps, each recorded before it is done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct DrOperation {
    /// `Failover` or `Failback`.
    pub kind: String,
    pub incident: String,
    /// `manual`, `automatic` (detection) or `drill`.
    pub trigger: String,
    pub started_at: String,
    /// When the failure began (detection's first sighting, or the drill's injection):
    /// the RTO is measured from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_at: Option<String>,
    /// `Running`, `Succeeded`, `Failed`.
    pub phase: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    pub steps: Vec<StepStatus>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validation: Vec<CheckResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_seconds: Option<f64>,
    /// The data replication lag measured by `rpo.replicationLagQuery`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_lag_seconds: Option<f64>,
}

/// One step: `freeze`, `sync/<app>`, `scale`, `validate`, `dns`, `notify`, ….
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct StepStatus {
    pub name: String,
    /// `Pending`, `Running`, `Succeeded`, `Failed`, `Skipped`.
    pub phase: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// One validation check's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    pub name: String,
    pub passed: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<String>,
}

/// The end of a failover, failback or drill, kept for `mooring dr status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct OperationSummary {
    pub incident: String,
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    pub passed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The ConfigMap holding the report (drills).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<String>,
}

/// A drill in progress: inject → detect → fail over → restore → fail back → report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct DrillState {
    pub incident: String,
    /// `scale-to-zero` or `partition`.
    pub failure_mode: String,
    /// `manual` or `scheduled`.
    pub trigger: String,
    pub started_at: String,
    /// `Injecting`, `Detecting`, `FailingOver`, `Restoring`, `FailingBack`, `Reporting`.
    pub stage: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injected_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detected_at: Option<String>,
    /// What the injection changed (scale-to-zero: the replicas to restore).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub injected: Vec<ScaleOverride>,
    /// Steps of the drill itself (inject, detect, restore, report), beside the
    /// failover's and failback's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<StepStatus>,
    /// The finished failover and failback of this drill.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<DrOperation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failback: Option<DrOperation>,
}

/// A whole `DisasterRecoveryPlan` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DisasterRecoveryPlan {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: Value,
    pub spec: DisasterRecoveryPlanSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<DisasterRecoveryPlanStatus>,
}

impl DisasterRecoveryPlan {
    pub fn name(&self) -> &str {
        crate::app::metadata_str(&self.metadata, "name")
    }

    pub fn namespace(&self) -> &str {
        crate::app::metadata_str(&self.metadata, "namespace")
    }
}

/// The embedded cluster's partition switch (failure mode `partition`): served at this
/// path, outside Kubernetes' URL space, so a real cluster answers 404 there. The server
/// side is `mooring_apiserver::partition`; the DR controller `PUT`s a [`PartitionRequest`].
pub const PARTITION_PATH: &str = "/sim.mooring.dev/v1/partition";

/// The body of `PUT` [`PARTITION_PATH`]: `{"partitioned": true, "maxDuration": "300s"}`
/// (heals by itself after `maxDuration`, Go duration syntax), `{"partitioned": false}` heals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PartitionRequest {
    pub partitioned: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("dr.rs");
        let yaml: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```yaml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| {
                l.strip_prefix("//! ")
                    .unwrap_or(l.trim_start_matches("//!"))
            })
            .collect::<Vec<_>>()
            .join("\n");
        let v = crate::yaml::parse_one(&yaml).expect("yaml");
        let p: DisasterRecoveryPlan = serde_json::from_value(v).expect("plan");
        assert_eq!(p.name(), "ml-platform");
        assert_eq!(p.spec.applications.pairs.len(), 2);
        assert_eq!(p.spec.activation.scale[0].replicas, 10);
        let dns = p.spec.activation.dns.as_ref().expect("dns");
        assert_eq!(
            dns.provider.rfc2136.as_ref().map(|r| r.zone.as_str()),
            Some("ml.example.com")
        );
        assert_eq!(p.spec.validation.checks.len(), 4);
        assert_eq!(
            p.spec
                .drill
                .as_ref()
                .and_then(|d| d.failure_mode.as_deref()),
            Some("scale-to-zero")
        );
        let back = serde_json::to_value(&p).expect("serialise");
        assert_eq!(
            back["spec"]["drill"]["report"]["git"]["repoURL"],
            p.spec
                .drill
                .as_ref()
                .and_then(|d| d.report.as_ref())
                .and_then(|r| r.git.as_ref())
                .map(|g| g.repo_url.clone())
                .unwrap_or_default()
        );
    }
}
