//! What the controller counts while it works, kept in memory and served by `/metrics`
//! (encoded by `mooring_server::metrics`).
//!
//! Two kinds of figures live here. **Events** — a reconcile ran, a sync finished, a
//! Kubernetes or Git request was made, a pipeline stage succeeded or failed — are counted
//! when they happen, in `prometheus-client` families (cheap to update, cloned into the
//! registry of each scrape). **States** — an application's sync and health, a rollout's
//! phase, a cluster's connection — are not kept here at all: the scrape derives them from
//! the controller's own stores (the Application store, the rollout controllers' stores,
//! the cluster registry), so nothing is kept twice and nothing can disagree.
//!
//! The names and labels of the events Argo CD and Argo Rollouts also count are theirs
//! (`argocd_app_reconcile`, `argocd_app_sync_total`, `argocd_app_k8s_request_total`,
//! `argocd_git_request_total`, `argocd_git_request_duration_seconds`), with Argo CD's
//! histogram buckets, so existing dashboards and alerts work unchanged.
//!
//! # Pipeline stages and their outcomes
//!
//! `mooring_stage_outcomes_total{stage, outcome}` counts one outcome (`success` or
//! `failure`) each time a change goes through one of the five stages of the pipeline. The
//! success probability of the whole pipeline is modelled as the product of the stages'
//! (the recording rules next to the example dashboards compute both). One outcome is:
//!
//! * `fetch` — one contact with a Git repository to resolve a revision
//!   (`Context::resolve` when it is not answered from the recent-resolution cache):
//!   success when the revision resolved to a commit, failure otherwise (unreachable,
//!   refused credentials, unknown revision).
//! * `render` — one render of a source at a commit that was not in the render cache
//!   (kustomize, Helm, a directory): success when it produced manifests, failure when it
//!   did not. Renders answered from the cache or reused across commits are not outcomes.
//! * `policy` — one sync attempt reviewed by the sync-time policy gate (Gatekeeper
//!   constraints): success when it was admitted, failure when a `deny` violation (or the
//!   gate itself) stopped it.
//! * `apply` — one sync attempt that got past the gate and ran its steps: success when
//!   every step applied (the operation `Succeeded`), failure when a step failed.
//! * `health` — one successful sync verified afterwards: success when the application is
//!   next seen `Healthy`, failure when it is next seen `Degraded` or `Missing`
//!   (`Progressing` and `Suspended` wait for a verdict; a new sync replaces the pending
//!   verification).
//!
//! # Cardinality
//!
//! No label carries a revision, a commit, an operation id or an error message: labels are
//! application, project, cluster, repository, resource kind and namespace, stage and
//! outcome names, so the number of series is bounded by the number of applications,
//! clusters, repositories and resource kinds, however many commits go by. What is kept
//! per application (drift, a pending health verification) is forgotten at the first
//! scrape after the application is deleted ([`Metrics::forget_apps_except`]). Counters
//! naming a deleted application stay until the process restarts, as in Argo CD (which
//! offers `--metrics-cache-expiration` for that; Mooring has no such flag yet).

use mooring_core::app::ApplicationDestination;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many (app, revision) pairs the convergence clock remembers.
const MAX_TRACKED_REVISIONS: usize = 100_000;

/// Argo CD's `argocd_app_reconcile` buckets (seconds).
pub const RECONCILE_BUCKETS: [f64; 7] = [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0];
/// Argo CD's `argocd_git_request_duration_seconds` buckets.
pub const GIT_REQUEST_BUCKETS: [f64; 8] = [0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 10.0, 20.0];
/// `mooring_commit_to_converged_seconds` buckets: a second to an hour.
pub const CONVERGENCE_BUCKETS: [f64; 11] = [
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

fn reconcile_histogram() -> Histogram {
    Histogram::new(RECONCILE_BUCKETS)
}

fn git_histogram() -> Histogram {
    Histogram::new(GIT_REQUEST_BUCKETS)
}

fn convergence_histogram() -> Histogram {
    Histogram::new(CONVERGENCE_BUCKETS)
}

/// A histogram family with fixed buckets.
pub type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// `argocd_app_reconcile`'s and `mooring_commit_to_converged_seconds`' labels: the
/// Application's namespace and destination server.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AppDestinationLabels {
    pub namespace: String,
    pub dest_server: String,
}

/// `argocd_app_sync_total`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SyncLabels {
    pub namespace: String,
    pub name: String,
    pub project: String,
    pub dest_server: String,
    /// The operation's final phase: `Succeeded`, `Failed` or `Error`.
    pub phase: String,
    /// Always `false`: Mooring has no dry-run sync operation (`app sync --dry-run` is
    /// answered by the CLI without an operation).
    pub dry_run: String,
}

/// `argocd_app_k8s_request_total`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct K8sRequestLabels {
    pub namespace: String,
    pub name: String,
    pub project: String,
    /// The destination cluster's server URL.
    pub server: String,
    /// The HTTP status of the answer; `0` when no answer came (connection failed).
    pub response_code: String,
    /// Argo CD's verbs: `Get`, `Create`, `Delete`, `Patch`, `Update`.
    pub verb: String,
    pub resource_kind: String,
    pub resource_namespace: String,
    /// `true` for the server-side dry run that validates a sync before anything is
    /// applied.
    pub dry_run: String,
}

/// `argocd_git_request_total`'s and `argocd_git_request_duration_seconds`' labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GitRequestLabels {
    /// The repository URL contacted, without credentials.
    pub repo: String,
    /// `ls-remote` or `fetch` (see [`mooring_source::GitRequest`]).
    pub request_type: String,
}

/// The Application work queue's name in `workqueue_depth` (Argo CD's).
pub const APP_QUEUE: &str = "app_reconciliation_queue";
/// The ApplicationSet work queue's name in `workqueue_depth` (the ApplicationSet
/// controller's: a controller-runtime queue named after its kind).
pub const APPSET_QUEUE: &str = "applicationset";

/// `workqueue_depth`'s labels: the queue's name, as Argo CD's controllers name theirs
/// (`app_reconciliation_queue`, `applicationset`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WorkqueueLabels {
    pub name: String,
}

/// `mooring_rollback_rule_evaluations_total`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RollbackEvaluationLabels {
    /// The RollbackPolicy's namespace and name.
    pub namespace: String,
    pub policy: String,
    pub rule: String,
    /// `Ok`, `NoData`, `Pending`, `Firing` or `Error` (the rule status' `state`).
    pub state: String,
}

/// `mooring_rollback_triggers_total`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RollbackTriggerLabels {
    pub namespace: String,
    pub policy: String,
    pub rule: String,
    /// `automatic_rollback`, `create_incident_and_rollback` or `notify`.
    pub action: String,
}

/// The states a rollback rule's evaluation can end in.
pub const ROLLBACK_RULE_STATES: [&str; 5] = ["Ok", "NoData", "Pending", "Firing", "Error"];

/// `mooring_stage_outcomes_total`'s labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    pub stage: String,
    pub outcome: String,
}

/// A stage of the pipeline a change goes through (see the module doc for what one
/// outcome of each is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    Fetch,
    Render,
    Policy,
    Apply,
    Health,
}

impl Stage {
    pub const ALL: [Stage; 5] = [
        Stage::Fetch,
        Stage::Render,
        Stage::Policy,
        Stage::Apply,
        Stage::Health,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Fetch => "fetch",
            Stage::Render => "render",
            Stage::Policy => "policy",
            Stage::Apply => "apply",
            Stage::Health => "health",
        }
    }
}

/// How far an application's live state is from Git, as its last comparison found it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drift {
    /// Resources out of sync (missing, to prune, or different).
    pub resources: u64,
    /// Leaf fields that differ between the desired and the live objects of the resources
    /// that exist on both sides ([`changed_fields`]).
    pub fields: u64,
}

/// The controller's event counters (see the module doc).
pub struct Metrics {
    reconciles: Mutex<(u64, Duration)>,
    renders_reused: std::sync::atomic::AtomicU64,
    /// First time each (app, revision) was seen, to measure commit → converged.
    seen: Mutex<HashMap<(String, String), Instant>>,
    /// Notification deliveries by (trigger, service, result).
    notifications: Mutex<std::collections::BTreeMap<(String, String, String), u64>>,
    /// Image watcher: images checked in their registries.
    image_checks: std::sync::atomic::AtomicU64,
    /// Image watcher: write-backs by result (`written`, `refused` by the policy gate,
    /// `failed`).
    image_updates: Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// Application reconciles by (destination, shard): which replica works on which
    /// destination (bounded by the number of destination clusters).
    by_destination: Mutex<std::collections::BTreeMap<(String, u32), u64>>,
    sharding: Mutex<ShardingState>,
    /// `argocd_app_reconcile`.
    pub reconcile: HistogramFamily<AppDestinationLabels>,
    /// `mooring_commit_to_converged_seconds`.
    pub convergence: HistogramFamily<AppDestinationLabels>,
    /// `argocd_app_sync_total`.
    pub syncs: Family<SyncLabels, Counter>,
    /// `argocd_app_k8s_request_total`.
    pub k8s_requests: Family<K8sRequestLabels, Counter>,
    /// `argocd_git_request_total`.
    pub git_requests: Family<GitRequestLabels, Counter>,
    /// `argocd_git_request_duration_seconds`.
    pub git_durations: HistogramFamily<GitRequestLabels>,
    /// `mooring_stage_outcomes_total`.
    pub stages: Family<StageLabels, Counter>,
    /// `mooring_rollback_rule_evaluations_total`.
    pub rollback_evaluations: Family<RollbackEvaluationLabels, Counter>,
    /// `mooring_rollback_triggers_total`: a rule's breach fired its action (once per
    /// breach).
    pub rollback_triggers: Family<RollbackTriggerLabels, Counter>,
    /// `workqueue_depth`: keys waiting in each work queue (not counting those running),
    /// set by the queue itself after every change (client-go's gauge of the same name).
    pub workqueue_depth: Family<WorkqueueLabels, Gauge>,
    /// `namespace/name` → its last comparison's drift.
    drift: Mutex<HashMap<String, Drift>>,
    /// `namespace/name` of the apps whose last sync succeeded and whose health verdict
    /// is pending.
    verifying: Mutex<HashSet<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let stages = Family::default();
        // Every stage and outcome is present from the start (at zero), so a rate over
        // them is defined before the first failure.
        for stage in Stage::ALL {
            for outcome in ["success", "failure"] {
                let _ = stages.get_or_create(&StageLabels {
                    stage: stage.as_str().into(),
                    outcome: outcome.into(),
                });
            }
        }
        Metrics {
            reconciles: Default::default(),
            renders_reused: Default::default(),
            seen: Default::default(),
            notifications: Default::default(),
            image_checks: Default::default(),
            image_updates: Default::default(),
            by_destination: Default::default(),
            sharding: Default::default(),
            reconcile: Family::new_with_constructor(reconcile_histogram as fn() -> Histogram),
            convergence: Family::new_with_constructor(convergence_histogram as fn() -> Histogram),
            syncs: Family::default(),
            k8s_requests: Family::default(),
            git_requests: Family::default(),
            git_durations: Family::new_with_constructor(git_histogram as fn() -> Histogram),
            stages,
            rollback_evaluations: Family::default(),
            rollback_triggers: Family::default(),
            workqueue_depth: Family::default(),
            drift: Default::default(),
            verifying: Default::default(),
        }
    }
}

/// This replica's part in sharding, for the metrics endpoint.
#[derive(Debug, Clone, Default)]
pub struct ShardingState {
    pub replica: String,
    pub shards: u32,
    pub owned: std::collections::BTreeSet<u32>,
    pub leader: bool,
}

/// The `dest_server` label of a destination: its server URL, else its cluster name.
pub fn dest_server(d: &ApplicationDestination) -> String {
    d.server
        .clone()
        .filter(|s| !s.is_empty())
        .or_else(|| d.name.clone())
        .unwrap_or_default()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Metrics {
    /// One reconcile of an app in `namespace` deploying to the cluster `dest_server` (its
    /// server URL, resolved from the destination's name when that is what it gives: see
    /// `project::destination_of`) took `took`.
    pub fn record_reconcile(&self, namespace: &str, dest_server: &str, took: Duration) {
        let mut r = lock(&self.reconciles);
        r.0 += 1;
        r.1 += took;
        drop(r);
        self.reconcile
            .get_or_create(&AppDestinationLabels {
                namespace: namespace.into(),
                dest_server: dest_server.into(),
            })
            .observe(took.as_secs_f64());
    }

    /// The app `key` (`namespace/name`) is to be at `revision`: the convergence clock of
    /// (app, revision) starts now unless it runs already.
    pub fn saw_revision(&self, key: &str, revision: &str) {
        let mut seen = lock(&self.seen);
        // Bounded: a long-running controller sees revisions forever.
        if seen.len() > MAX_TRACKED_REVISIONS {
            seen.clear();
        }
        seen.entry((key.into(), revision.into()))
            .or_insert_with(Instant::now);
    }

    /// The app `key` is Synced and Healthy at `revision`: a running clock of (app,
    /// revision) stops and its time goes into `mooring_commit_to_converged_seconds`
    /// (once: the clock is forgotten).
    pub fn converged(&self, key: &str, namespace: &str, dest_server: &str, revision: &str) {
        let started = lock(&self.seen).remove(&(key.to_string(), revision.to_string()));
        if let Some(t) = started {
            self.convergence
                .get_or_create(&AppDestinationLabels {
                    namespace: namespace.into(),
                    dest_server: dest_server.into(),
                })
                .observe(t.elapsed().as_secs_f64());
        }
    }

    /// One outcome of a pipeline stage.
    pub fn record_stage(&self, stage: Stage, success: bool) {
        self.stages
            .get_or_create(&StageLabels {
                stage: stage.as_str().into(),
                outcome: if success { "success" } else { "failure" }.into(),
            })
            .inc();
    }

    /// A rule of the RollbackPolicy `namespace/policy` was evaluated to `state`; `fired`
    /// names the action when this evaluation fired it. A rule's every state and its
    /// trigger are present from its first evaluation on (at zero until they happen), so
    /// "no trigger fired" is a zero, not an absent series.
    pub fn record_rollback_evaluation(
        &self,
        namespace: &str,
        policy: &str,
        rule: &str,
        state: &str,
        fired: Option<&str>,
        action: &str,
    ) {
        let evaluation = |state: &str| RollbackEvaluationLabels {
            namespace: namespace.into(),
            policy: policy.into(),
            rule: rule.into(),
            state: state.into(),
        };
        for s in ROLLBACK_RULE_STATES {
            let _ = self.rollback_evaluations.get_or_create(&evaluation(s));
        }
        self.rollback_evaluations
            .get_or_create(&evaluation(state))
            .inc();
        let trigger = self
            .rollback_triggers
            .get_or_create(&RollbackTriggerLabels {
                namespace: namespace.into(),
                policy: policy.into(),
                rule: rule.into(),
                action: fired.unwrap_or(action).into(),
            });
        if fired.is_some() {
            trigger.inc();
        }
    }

    /// A sync operation of an app ended with `phase` (not counted for a retry).
    pub fn record_sync(
        &self,
        app: &mooring_core::app::Application,
        dest_server: &str,
        phase: &str,
        dry_run: bool,
    ) {
        self.syncs
            .get_or_create(&SyncLabels {
                namespace: app.namespace().into(),
                name: app.name().into(),
                project: project_of(app),
                dest_server: dest_server.into(),
                phase: phase.into(),
                dry_run: dry_run.to_string(),
            })
            .inc();
    }

    /// One request to the destination cluster (server URL `server`) made for `app`'s sync.
    pub fn record_k8s_request(
        &self,
        app: &mooring_core::app::Application,
        server: &str,
        r: K8sRequest<'_>,
    ) {
        self.k8s_requests
            .get_or_create(&K8sRequestLabels {
                namespace: app.namespace().into(),
                name: app.name().into(),
                project: project_of(app),
                server: server.into(),
                response_code: r.response_code.to_string(),
                verb: r.verb.into(),
                resource_kind: r.kind.into(),
                resource_namespace: r.namespace.into(),
                dry_run: r.dry_run.to_string(),
            })
            .inc();
    }

    /// The observer the repository cache reports its contacts with remotes to.
    pub fn git_observer(&self) -> mooring_source::RequestObserver {
        let (count, durations) = (self.git_requests.clone(), self.git_durations.clone());
        std::sync::Arc::new(move |repo: &str, kind: mooring_source::GitRequest, took| {
            let labels = GitRequestLabels {
                repo: repo.into(),
                request_type: kind.as_str().into(),
            };
            count.get_or_create(&labels).inc();
            durations.get_or_create(&labels).observe(took.as_secs_f64());
        })
    }

    /// The last comparison of app `key` found `drift`.
    pub fn set_drift(&self, key: &str, drift: Drift) {
        lock(&self.drift).insert(key.into(), drift);
    }

    /// Forget what is kept per application (drift, a pending health verification) for
    /// every app not in `keep` (`namespace/name` of the apps that exist).
    pub fn forget_apps_except(&self, keep: &HashSet<String>) {
        lock(&self.drift).retain(|k, _| keep.contains(k));
        lock(&self.verifying).retain(|k| keep.contains(k));
    }

    /// Drift by `namespace/name`, as each app's last comparison found it.
    pub fn drift(&self) -> HashMap<String, Drift> {
        lock(&self.drift).clone()
    }

    /// A sync of app `key` succeeded: its health verdict is pending.
    pub fn verify_health(&self, key: &str) {
        let mut v = lock(&self.verifying);
        if v.len() > MAX_TRACKED_REVISIONS {
            v.clear();
        }
        v.insert(key.into());
    }

    /// App `key` was compared with `health`: a pending verification ends with the
    /// `health` stage's outcome when the health is a verdict.
    pub fn health_seen(&self, key: &str, health: &mooring_core::app::HealthStatusCode) {
        use mooring_core::app::HealthStatusCode as H;
        let verdict = match health {
            H::Healthy => Some(true),
            H::Degraded | H::Missing => Some(false),
            _ => None,
        };
        if let Some(success) = verdict {
            if lock(&self.verifying).remove(key) {
                self.record_stage(Stage::Health, success);
            }
        }
    }

    /// One notification delivery finished (`result`: `success` or `failure`).
    pub fn record_notification(&self, trigger: &str, service: &str, result: &str) {
        *lock(&self.notifications)
            .entry((trigger.into(), service.into(), result.into()))
            .or_default() += 1;
    }

    /// Notification deliveries by (trigger, service, result), for
    /// `mooring_notifications_deliveries_total`.
    pub fn notification_deliveries(
        &self,
    ) -> std::collections::BTreeMap<(String, String, String), u64> {
        lock(&self.notifications).clone()
    }

    /// The image watcher checked `n` images in their registries.
    pub fn record_image_checks(&self, n: u64) {
        self.image_checks
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Images checked so far, for `mooring_image_checks_total`.
    pub fn image_checks(&self) -> u64 {
        self.image_checks.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// One write-back ended (`written`, `refused`, `failed`).
    pub fn record_image_update(&self, result: &'static str) {
        *lock(&self.image_updates).entry(result).or_default() += 1;
    }

    /// Write-backs by result, for `mooring_image_updates_total`.
    pub fn image_updates(&self) -> std::collections::BTreeMap<&'static str, u64> {
        lock(&self.image_updates).clone()
    }

    /// An Application deploying to `d` (in shard `shard`) is reconciled here.
    pub fn record_destination_reconcile(&self, d: &ApplicationDestination, shard: u32) {
        *lock(&self.by_destination)
            .entry((dest_server(d), shard))
            .or_default() += 1;
    }

    /// Record this replica's sharding state (at start and after every Lease round).
    pub fn set_sharding(&self, state: ShardingState) {
        *lock(&self.sharding) = state;
    }

    /// This replica's sharding state.
    pub fn sharding(&self) -> ShardingState {
        lock(&self.sharding).clone()
    }

    /// Reconciles by (destination, shard), for `mooring_destination_reconciles_total`.
    pub fn destination_reconciles(&self) -> std::collections::BTreeMap<(String, u32), u64> {
        lock(&self.by_destination).clone()
    }

    pub fn render_reused(&self) {
        self.renders_reused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Renders reused across commits that did not touch the app's inputs.
    pub fn renders_reused(&self) -> u64 {
        self.renders_reused
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// (reconciles, total time).
    pub fn reconciles(&self) -> (u64, Duration) {
        *lock(&self.reconciles)
    }

    /// The depth gauge of the work queue `name`, for the queue to set.
    pub fn workqueue_gauge(&self, name: &str) -> Gauge {
        self.workqueue_depth
            .get_or_create(&WorkqueueLabels { name: name.into() })
            .clone()
    }

    /// Keys waiting in the work queue `name` now (0 for a queue not started).
    pub fn workqueue_depth(&self, name: &str) -> i64 {
        self.workqueue_gauge(name).get()
    }
}

/// One Kubernetes request, for [`Metrics::record_k8s_request`].
#[derive(Debug, Clone, Copy)]
pub struct K8sRequest<'a> {
    pub verb: &'static str,
    pub kind: &'a str,
    pub namespace: &'a str,
    pub response_code: u16,
    pub dry_run: bool,
}

impl<'a> K8sRequest<'a> {
    /// The request `verb` on `key`, answered `result`.
    pub fn of<T>(
        verb: &'static str,
        key: &'a mooring_core::ResourceKey,
        dry_run: bool,
        result: &Result<T, mooring_k8s::cluster::K8sError>,
    ) -> Self {
        K8sRequest {
            verb,
            kind: &key.kind,
            namespace: &key.namespace,
            response_code: response_code(result),
            dry_run,
        }
    }
}

/// The HTTP status of a request's answer: 200 for a success, the API status of an API
/// error, `0` when no answer came.
pub fn response_code<T>(result: &Result<T, mooring_k8s::cluster::K8sError>) -> u16 {
    use mooring_k8s::cluster::K8sError;
    match result {
        Ok(_) => 200,
        Err(K8sError::Api { code, .. }) => *code,
        Err(_) => 0,
    }
}

/// The project label of an app (`default` when unset, as Argo CD's `GetProject`).
fn project_of(app: &mooring_core::app::Application) -> String {
    crate::project::project_name(app).to_string()
}

/// The drift a comparison found: OutOfSync resources, and the leaf fields that differ in
/// those that exist on both sides.
pub fn drift_of(diffs: &[mooring_engine::diff::ResourceDiff]) -> Drift {
    use mooring_core::app::SyncStatusCode;
    let mut d = Drift::default();
    for r in diffs
        .iter()
        .filter(|r| r.status == SyncStatusCode::OutOfSync)
    {
        d.resources += 1;
        if let (Some(desired), Some(live)) = (&r.desired, &r.live) {
            d.fields += changed_fields(desired, live);
        }
    }
    d
}

/// How many leaf fields differ between two objects: a scalar (or an empty object or
/// array) that is absent on one side or different counts once; objects are compared key
/// by key and arrays element by element (an element only one side has counts its leaves).
pub fn changed_fields(a: &Value, b: &Value) -> u64 {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) if !(x.is_empty() && y.is_empty()) => {
            let mut n = 0;
            for (k, va) in x {
                n += match y.get(k) {
                    Some(vb) => changed_fields(va, vb),
                    None => leaves(va),
                };
            }
            for (k, vb) in y {
                if !x.contains_key(k) {
                    n += leaves(vb);
                }
            }
            n
        }
        (Value::Array(x), Value::Array(y)) if !(x.is_empty() && y.is_empty()) => {
            let mut n = 0;
            for i in 0..x.len().max(y.len()) {
                n += match (x.get(i), y.get(i)) {
                    (Some(va), Some(vb)) => changed_fields(va, vb),
                    (Some(v), None) | (None, Some(v)) => leaves(v),
                    (None, None) => 0,
                };
            }
            n
        }
        _ => u64::from(a != b),
    }
}

/// The leaves of a value (a scalar, an empty object or array: one).
fn leaves(v: &Value) -> u64 {
    match v {
        Value::Object(m) if !m.is_empty() => m.values().map(leaves).sum(),
        Value::Array(a) if !a.is_empty() => a.iter().map(leaves).sum(),
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changed_fields_counts_differing_leaves() {
        let desired = json!({"spec": {"replicas": 3, "template": {"image": "a:2", "env": [{"name": "X", "value": "1"}]}}});
        let live = json!({"spec": {"replicas": 2, "template": {"image": "a:2", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}}, "extra": {}});
        // replicas; the second env entry's two leaves; the empty `extra` object.
        assert_eq!(changed_fields(&desired, &live), 4);
        assert_eq!(changed_fields(&desired, &desired), 0);
        assert_eq!(changed_fields(&json!(1), &json!("1")), 1);
    }

    #[test]
    fn a_convergence_is_measured_once_per_revision() {
        let m = Metrics::default();
        let d = "https://kubernetes.default.svc";
        m.saw_revision("argocd/a", "r1");
        m.converged("argocd/a", "argocd", d, "r1");
        m.converged("argocd/a", "argocd", d, "r1");
        // Converged at a revision whose clock never started: nothing measured.
        m.converged("argocd/a", "argocd", d, "r2");
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("c", "", m.convergence.clone());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        let counts: Vec<&str> = text.lines().filter(|l| l.starts_with("c_count")).collect();
        assert_eq!(
            counts,
            ["c_count{namespace=\"argocd\",dest_server=\"https://kubernetes.default.svc\"} 1"]
        );
    }

    #[test]
    fn health_is_verified_once_after_a_successful_sync() {
        use mooring_core::app::HealthStatusCode as H;
        let m = Metrics::default();
        let count = |outcome: &str| {
            m.stages
                .get_or_create(&StageLabels {
                    stage: "health".into(),
                    outcome: outcome.into(),
                })
                .get()
        };
        // Healthy without a sync before: no outcome.
        m.health_seen("argocd/a", &H::Healthy);
        assert_eq!(count("success"), 0);
        m.verify_health("argocd/a");
        m.health_seen("argocd/a", &H::Progressing);
        assert_eq!((count("success"), count("failure")), (0, 0));
        m.health_seen("argocd/a", &H::Degraded);
        m.health_seen("argocd/a", &H::Healthy);
        assert_eq!((count("success"), count("failure")), (0, 1));
        m.verify_health("argocd/a");
        m.health_seen("argocd/a", &H::Healthy);
        assert_eq!((count("success"), count("failure")), (1, 1));
    }

    #[test]
    fn drift_is_forgotten_for_deleted_apps() {
        let m = Metrics::default();
        m.set_drift(
            "argocd/a",
            Drift {
                resources: 1,
                fields: 2,
            },
        );
        m.set_drift(
            "argocd/b",
            Drift {
                resources: 0,
                fields: 0,
            },
        );
        m.verify_health("argocd/a");
        let keep: HashSet<String> = ["argocd/b".to_string()].into();
        m.forget_apps_except(&keep);
        let d = m.drift();
        assert_eq!(d.len(), 1);
        assert!(d.contains_key("argocd/b"));
        assert!(lock(&m.verifying).is_empty());
    }
}
