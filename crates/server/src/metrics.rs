//! `/metrics`: the controller's figures in OpenMetrics text, under Argo CD's and Argo
//! Rollouts' names and labels where they count the same thing, so their dashboards and
//! alerts work unchanged, plus Mooring's own (`mooring_…`).
//!
//! | series | labels | from |
//! |---|---|---|
//! | `argocd_app_info` | namespace, name, project, autosync_enabled, repo, dest_server, dest_namespace, sync_status, health_status, hydrator_status, operation, phase | Application store |
//! | `argocd_app_sync_total` | namespace, name, project, dest_server, phase, dry_run | sync operations |
//! | `argocd_app_reconcile` (histogram) | namespace, dest_server | reconciles |
//! | `argocd_app_k8s_request_total` | namespace, name, project, server, response_code, verb, resource_kind, resource_namespace, dry_run | sync operations |
//! | `argocd_git_request_total`, `argocd_git_request_duration_seconds` | repo, request_type | repository cache |
//! | `argocd_cluster_info` | server, k8s_version, name | cluster registry |
//! | `argocd_cluster_connection_status` | server, k8s_version | cluster registry |
//! | `rollout_info`, `rollout_info_replicas_*` | namespace, name, strategy, traffic_router, phase | rollout controllers' stores |
//! | `analysis_run_info`, `analysis_run_metric_phase` | namespace, name, (metric, type, dry_run,) phase | rollout controllers' stores |
//! | `workqueue_depth` | name (`app_reconciliation_queue`, `applicationset`) | the work queues |
//! | `mooring_commit_to_converged_seconds` (histogram) | namespace, dest_server | reconciles |
//! | `mooring_app_drift_resources`, `mooring_app_drift_fields` | namespace, name, project | last comparison |
//! | `mooring_stage_outcomes_total` | stage, outcome | the pipeline (see `mooring_controller::metrics`) |
//! | `mooring_dr_plan_info`, `mooring_dr_cluster_reachable`, `mooring_dr_objective_seconds`, `mooring_dr_last_operation_{passed,rto_seconds,rpo_seconds,finished_timestamp_seconds}` | namespace, plan, phase / side, cluster / objective / operation | DisasterRecoveryPlans as the DR loop last listed them |
//! | `mooring_rollback_rule_evaluations_total`, `mooring_rollback_triggers_total` | namespace, policy, rule, state / action | the RollbackPolicy loop |
//!
//! Label values differ from Argo CD's where Mooring's data differ, and are said here:
//! `argocd_app_info`'s `repo` is the first source's URL in the comparable form webhooks
//! match on (`github.com/org/repo`: lower-case, no scheme, credentials, port or `.git`;
//! Argo CD keeps the scheme); `dest_server` is the destination's server URL, resolved from
//! its cluster name when that is what the Application gives, as Argo CD does; the `repo`
//! of Git requests is the URL contacted (an alias's target), without credentials.
//!
//! What Mooring cannot fill honestly is said, not faked: `hydrator_status` is always
//! empty (Mooring has no source hydrator; Argo CD leaves it empty too when none is
//! configured), `argocd_app_k8s_request_total` counts the requests of sync operations
//! (dry runs, applies, prunes, hooks) — comparisons read the watch-fed cache and make none
//! — and `request_type` of a Git request says what one contact turned out to be
//! (`mooring_source::GitRequest`).
//!
//! **Who sees what.** Series that name tenant objects — applications, rollouts, analysis
//! runs, repositories — are served only with `per_app` (the API server's `/metrics` sets
//! it for a bearer token whose RBAC allows `applications, get, */*`; the controller's own
//! `--metrics-address` endpoint, which is not exposed outside the pod, always). The
//! aggregates (reconcile and convergence histograms, stage outcomes, clusters,
//! notifications, image watcher, sharding) are served to everyone. Prometheus scrapes the
//! API server with the token in a file:
//!
//! ```yaml
//! scrape_configs:
//! - job_name: mooring
//!   authorization: {type: Bearer, credentials_file: /etc/prometheus/mooring-token}
//!   static_configs: [{targets: ["mooring-server:8080"]}]
//! ```
//!
//! **States are read, not kept.** Application, rollout, analysis run and cluster series
//! are computed at scrape time from the controller's stores, filtered to the shards this
//! replica owns (as Argo CD's controller reports only its own clusters' apps), so several
//! replicas never report the same object twice.

use axum::http::StatusCode;
use mooring_controller::{Context, Metrics};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::Value;
use std::collections::HashSet;

/// The type of a `/metrics` answer.
pub type MetricsResponse = (
    StatusCode,
    [(axum::http::header::HeaderName, &'static str); 1],
    String,
);

/// A family of gauges with labels in a fixed order.
type Gauges = Family<Vec<(String, String)>, Gauge>;

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The controller's event series in OpenMetrics text (reconciles, syncs, requests, stage
/// outcomes, convergence, notifications, image watcher, sharding); with `per_app`, also
/// those naming applications and repositories. `None` (a controller still starting)
/// gives the series at zero. The series derived from the controller's stores need its
/// [`Context`]: [`controller_metrics_response`].
pub fn metrics_response(metrics: Option<&Metrics>, per_app: bool) -> MetricsResponse {
    let empty = Metrics::default();
    let mut registry = Registry::default();
    register_events(&mut registry, metrics.unwrap_or(&empty), per_app);
    respond(&registry)
}

/// Every series of a controller: its events ([`metrics_response`]) and the states read
/// from its stores (applications, clusters, rollouts, analysis runs, drift).
pub fn controller_metrics_response(ctx: Option<&Context>, per_app: bool) -> MetricsResponse {
    let mut registry = Registry::default();
    match ctx {
        Some(ctx) => {
            register_events(&mut registry, &ctx.metrics, per_app);
            register_states(&mut registry, ctx, per_app);
        }
        None => register_events(&mut registry, &Metrics::default(), per_app),
    }
    respond(&registry)
}

fn respond(registry: &Registry) -> MetricsResponse {
    let mut out = String::new();
    if let Err(e) = encode(&mut out, registry) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(axum::http::header::CONTENT_TYPE, "text/plain")],
            format!("{e}\n"),
        );
    }
    (
        StatusCode::OK,
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
}

fn register_events(registry: &mut Registry, m: &Metrics, per_app: bool) {
    let (count, total) = m.reconciles();
    let reconciles: Counter = Counter::default();
    reconciles.inc_by(count);
    registry.register(
        "mooring_reconciles",
        "Application reconciles run",
        reconciles,
    );
    let seconds: Counter<f64, std::sync::atomic::AtomicU64> = Counter::default();
    seconds.inc_by(total.as_secs_f64());
    registry.register(
        "mooring_reconcile_seconds",
        "Time spent reconciling applications",
        seconds,
    );
    registry.register(
        "argocd_app_reconcile",
        "Application reconciliation performance in seconds.",
        m.reconcile.clone(),
    );
    registry.register(
        "workqueue_depth",
        "Current depth of workqueue",
        m.workqueue_depth.clone(),
    );
    registry.register(
        "mooring_commit_to_converged_seconds",
        "Seconds from a new commit first resolved for an application to the application Synced and Healthy at it",
        m.convergence.clone(),
    );
    registry.register(
        "mooring_stage_outcomes",
        "Outcomes of the pipeline's stages (fetch, render, policy, apply, health) by stage and outcome",
        m.stages.clone(),
    );
    if per_app {
        registry.register(
            "mooring_rollback_rule_evaluations",
            "Evaluations of RollbackPolicy rules by policy, rule and resulting state (Ok, NoData, Pending, Firing, Error)",
            m.rollback_evaluations.clone(),
        );
        registry.register(
            "mooring_rollback_triggers",
            "RollbackPolicy rules that fired their action (once per breach), by policy, rule and action",
            m.rollback_triggers.clone(),
        );
        registry.register(
            "argocd_app_sync",
            "Number of application syncs.",
            m.syncs.clone(),
        );
        registry.register(
            "argocd_app_k8s_request",
            "Number of kubernetes requests executed during application reconciliation.",
            m.k8s_requests.clone(),
        );
        registry.register(
            "argocd_git_request",
            "Number of git requests performed by repo server",
            m.git_requests.clone(),
        );
        registry.register(
            "argocd_git_request_duration_seconds",
            "Git requests duration seconds.",
            m.git_durations.clone(),
        );
    }
    let reused: Counter = Counter::default();
    reused.inc_by(m.renders_reused());
    registry.register(
        "mooring_renders_reused",
        "Renders reused for commits outside an app's inputs",
        reused,
    );
    let deliveries = Family::<Vec<(String, String)>, Counter>::default();
    for ((trigger, service, result), n) in m.notification_deliveries() {
        deliveries
            .get_or_create(&labels(&[
                ("trigger", &trigger),
                ("service", &service),
                ("result", &result),
            ]))
            .inc_by(n);
    }
    registry.register(
        "mooring_notifications_deliveries",
        "Notification deliveries (Argo CD Notifications' format) by trigger, service and result",
        deliveries,
    );
    let checks: Counter = Counter::default();
    checks.inc_by(m.image_checks());
    registry.register(
        "mooring_image_checks",
        "Images the image watcher looked up in their registries",
        checks,
    );
    let updates = Family::<Vec<(String, String)>, Counter>::default();
    for (result, n) in m.image_updates() {
        updates
            .get_or_create(&labels(&[("result", result)]))
            .inc_by(n);
    }
    registry.register(
        "mooring_image_updates",
        "Image write-backs by result (written, refused by the policy gate, failed)",
        updates,
    );
    // Sharding: which shards this replica owns, whether it leads, and which destinations
    // it reconciled (Argo CD shows the same per shard in its cluster list).
    let shards = m.sharding();
    let owned = Gauges::default();
    for k in 0..shards.shards {
        owned
            .get_or_create(&labels(&[("shard", &k.to_string())]))
            .set(i64::from(shards.owned.contains(&k)));
    }
    registry.register(
        "mooring_controller_shard_owned",
        "1 for each shard this controller replica owns (holds the Lease of), else 0",
        owned,
    );
    let leader: Gauge = Gauge::default();
    leader.set(i64::from(shards.leader));
    registry.register(
        "mooring_controller_leader",
        "1 when this replica runs the management-cluster loops (ApplicationSets, notifications, DR)",
        leader,
    );
    let by_destination = Family::<Vec<(String, String)>, Counter>::default();
    for ((destination, shard), n) in m.destination_reconciles() {
        by_destination
            .get_or_create(&labels(&[
                ("destination", &destination),
                ("shard", &shard.to_string()),
                ("replica", &shards.replica),
            ]))
            .inc_by(n);
    }
    registry.register(
        "mooring_destination_reconciles",
        "Application reconciles run by this replica, by destination cluster and shard",
        by_destination,
    );
}

fn register_states(registry: &mut Registry, ctx: &Context, per_app: bool) {
    let clusters_info = Gauges::default();
    let connection = Gauges::default();
    for (server, name, conn) in ctx.cluster_connections() {
        if !ctx.sharding.owns_server(&server) {
            continue;
        }
        let (version, up) = match &conn {
            mooring_k8s::cluster::Connection::Connected { version } => (version.as_str(), 1),
            _ => ("", 0),
        };
        clusters_info
            .get_or_create(&labels(&[
                ("server", &server),
                ("k8s_version", version),
                ("name", &name),
            ]))
            .set(1);
        connection
            .get_or_create(&labels(&[("server", &server), ("k8s_version", version)]))
            .set(up);
    }
    registry.register(
        "argocd_cluster_info",
        "Information about cluster.",
        clusters_info,
    );
    registry.register(
        "argocd_cluster_connection_status",
        "The k8s cluster current connection status.",
        connection,
    );
    register_dr(registry, &ctx.dr_plans());
    if !per_app {
        return;
    }
    let info = Gauges::default();
    let drift_resources = Gauges::default();
    let drift_fields = Gauges::default();
    // Before the Application watch's first listing nothing is reported (and nothing
    // forgotten).
    let listed = ctx.listed_apps();
    if let Some(apps) = &listed {
        let keys: HashSet<String> = apps
            .iter()
            .map(|a| format!("{}/{}", a.namespace(), a.name()))
            .collect();
        ctx.metrics.forget_apps_except(&keys);
    }
    let apps = listed.unwrap_or_default();
    let drift = ctx.metrics.drift();
    for app in apps
        .iter()
        .filter(|a| ctx.sharding.owns(&a.spec.destination))
    {
        let project = mooring_controller::project::project_name(app);
        let status = app.status.as_ref();
        let sync = status
            .map(|s| code(&s.sync.status))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "Unknown".into());
        let health = status
            .map(|s| code(&s.health.status))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "Unknown".into());
        let operation = if app.metadata.get("deletionTimestamp").is_some() {
            "delete"
        } else if app
            .operation
            .as_ref()
            .is_some_and(|o| o.get("sync").is_some())
        {
            "sync"
        } else {
            ""
        };
        let phase = status
            .and_then(|s| s.operation_state.as_ref())
            .and_then(|s| s.get("phase"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let repo = app
            .sources()
            .first()
            .map(|s| mooring_source::webhook::normalize_repo_url(&s.repo_url))
            .unwrap_or_default();
        let destination = mooring_controller::project::destination_of(ctx, app);
        let autosync = app
            .spec
            .sync_policy
            .as_ref()
            .is_some_and(|p| p.automated.is_some());
        info.get_or_create(&labels(&[
            ("namespace", app.namespace()),
            ("name", app.name()),
            ("project", project),
            ("autosync_enabled", if autosync { "true" } else { "false" }),
            ("repo", &repo),
            ("dest_server", &destination.server),
            ("dest_namespace", &destination.namespace),
            ("sync_status", &sync),
            ("health_status", &health),
            ("hydrator_status", ""),
            ("operation", operation),
            ("phase", phase),
        ]))
        .set(1);
        let key = labels(&[
            ("namespace", app.namespace()),
            ("name", app.name()),
            ("project", project),
        ]);
        let out_of_sync = status
            .map(|s| {
                s.resources
                    .iter()
                    .filter(|r| r.status == mooring_core::app::SyncStatusCode::OutOfSync)
                    .count()
            })
            .unwrap_or(0);
        drift_resources
            .get_or_create(&key)
            .set(i64::try_from(out_of_sync).unwrap_or(i64::MAX));
        let fields = drift
            .get(&format!("{}/{}", app.namespace(), app.name()))
            .map(|d| d.fields)
            .unwrap_or(0);
        drift_fields
            .get_or_create(&key)
            .set(i64::try_from(fields).unwrap_or(i64::MAX));
    }
    registry.register("argocd_app_info", "Information about application.", info);
    registry.register(
        "mooring_app_drift_resources",
        "Resources of the application out of sync with Git (missing, to prune, or different), as its last comparison found them",
        drift_resources,
    );
    registry.register(
        "mooring_app_drift_fields",
        "Fields that differ between Git and the live objects of the application's resources, as its last comparison found them",
        drift_fields,
    );
    register_rollouts(registry, ctx);
}

/// A status code as the API writes it (`Synced`, `Healthy`).
fn code<T: serde::Serialize>(t: &T) -> String {
    serde_json::to_value(t)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn register_rollouts(registry: &mut Registry, ctx: &Context) {
    let info = Gauges::default();
    let desired = Gauges::default();
    let available = Gauges::default();
    let runs = Gauges::default();
    let metric_phase = Gauges::default();
    for (_server, stores) in ctx.rollout_stores() {
        for ro in stores.rollouts.state() {
            let ns = ro.metadata.namespace.as_deref().unwrap_or_default();
            let name = ro.metadata.name.as_deref().unwrap_or_default();
            let (strategy, router) = strategy_and_traffic_router(&ro.data);
            let status = ro.data.get("status").unwrap_or(&Value::Null);
            info.get_or_create(&labels(&[
                ("namespace", ns),
                ("name", name),
                ("strategy", strategy),
                ("traffic_router", &router),
                ("phase", rollout_phase(status)),
            ]))
            .set(1);
            let key = labels(&[("namespace", ns), ("name", name)]);
            let int = |v: Option<&Value>| v.and_then(Value::as_i64).unwrap_or(0);
            // Argo Rollouts' default: one replica when `spec.replicas` is unset.
            desired.get_or_create(&key).set(
                ro.data
                    .pointer("/spec/replicas")
                    .and_then(Value::as_i64)
                    .unwrap_or(1),
            );
            available
                .get_or_create(&key)
                .set(int(status.get("availableReplicas")));
        }
        for run in stores.runs.state() {
            let ns = run.metadata.namespace.as_deref().unwrap_or_default();
            let name = run.metadata.name.as_deref().unwrap_or_default();
            let status = run.data.get("status").unwrap_or(&Value::Null);
            let phase = status
                .get("phase")
                .and_then(Value::as_str)
                .unwrap_or_default();
            runs.get_or_create(&labels(&[
                ("namespace", ns),
                ("name", name),
                ("phase", phase),
            ]))
            .set(1);
            for m in analysis_metric_phases(&run.data) {
                for candidate in ANALYSIS_PHASES {
                    // Argo Rollouts reports a metric without a result yet as Pending.
                    let current = if m.phase.is_empty() {
                        "Pending"
                    } else {
                        m.phase
                    };
                    metric_phase
                        .get_or_create(&labels(&[
                            ("namespace", ns),
                            ("name", name),
                            ("metric", m.metric),
                            ("type", &m.kind),
                            ("dry_run", if m.dry_run { "true" } else { "false" }),
                            ("phase", candidate),
                        ]))
                        .set(i64::from(current == candidate));
                }
            }
        }
    }
    registry.register("rollout_info", "Information about rollout.", info);
    registry.register(
        "rollout_info_replicas_desired",
        "The number of desired replicas per rollout.",
        desired,
    );
    registry.register(
        "rollout_info_replicas_available",
        "The number of available replicas per rollout.",
        available,
    );
    registry.register("analysis_run_info", "Information about analysis run.", runs);
    registry.register(
        "analysis_run_metric_phase",
        "Information on the duration of a specific metric in the Analysis Run",
        metric_phase,
    );
}

/// The series of DisasterRecoveryPlans (admin objects of the control-plane namespace, so
/// served to every caller, like clusters): read from the plans as the DR loop last listed
/// them.
fn register_dr(registry: &mut Registry, plans: &[mooring_core::dr::DisasterRecoveryPlan]) {
    type FloatGauges = Family<Vec<(String, String)>, Gauge<f64, std::sync::atomic::AtomicU64>>;
    let info = Gauges::default();
    let reachable = Gauges::default();
    let objective = Gauges::default();
    let passed = Gauges::default();
    let rto = FloatGauges::default();
    let rpo = FloatGauges::default();
    let finished = FloatGauges::default();
    for s in plans.iter().flat_map(dr_series) {
        match s {
            DrSeries::Info {
                plan,
                phase,
                primary,
                standby,
            } => {
                info.get_or_create(&labels(&[
                    ("namespace", &plan.0),
                    ("plan", &plan.1),
                    ("phase", phase),
                    ("primary", &primary),
                    ("standby", &standby),
                ]))
                .set(1);
            }
            DrSeries::Reachable {
                plan,
                side,
                cluster,
                up,
            } => {
                reachable
                    .get_or_create(&labels(&[
                        ("namespace", &plan.0),
                        ("plan", &plan.1),
                        ("side", side),
                        ("cluster", &cluster),
                    ]))
                    .set(i64::from(up));
            }
            DrSeries::Objective {
                plan,
                objective: o,
                seconds,
            } => {
                objective
                    .get_or_create(&labels(&[
                        ("namespace", &plan.0),
                        ("plan", &plan.1),
                        ("objective", o),
                    ]))
                    .set(i64::try_from(seconds).unwrap_or(i64::MAX));
            }
            DrSeries::Last {
                plan,
                operation,
                summary,
            } => {
                let key = labels(&[
                    ("namespace", &plan.0),
                    ("plan", &plan.1),
                    ("operation", operation),
                ]);
                passed.get_or_create(&key).set(i64::from(summary.passed));
                if let Some(v) = summary.rto_seconds {
                    rto.get_or_create(&key).set(v);
                }
                if let Some(v) = summary.rpo_seconds {
                    rpo.get_or_create(&key).set(v);
                }
                if let Some(t) = summary
                    .finished_at
                    .as_deref()
                    .and_then(|t| mooring_core::time::parse(t).ok())
                {
                    finished
                        .get_or_create(&key)
                        .set(t.as_millisecond() as f64 / 1000.0);
                }
            }
        }
    }
    registry.register(
        "mooring_dr_plan_info",
        "DisasterRecoveryPlans by phase (PrimaryActive, FailingOver, StandbyActive, FailingBack, Drilling) and clusters",
        info,
    );
    registry.register(
        "mooring_dr_cluster_reachable",
        "1 when the plan's last probe of its primary or standby cluster was answered, else 0",
        reachable,
    );
    registry.register(
        "mooring_dr_objective_seconds",
        "The plan's recovery objectives (rto, rpo) in seconds",
        objective,
    );
    registry.register(
        "mooring_dr_last_operation_passed",
        "1 when the plan's last failover, failback or drill passed, 0 when it failed",
        passed,
    );
    registry.register(
        "mooring_dr_last_operation_rto_seconds",
        "The recovery time measured by the plan's last failover, failback or drill",
        rto,
    );
    registry.register(
        "mooring_dr_last_operation_rpo_seconds",
        "The recovery point (data or configuration lag) measured by the plan's last failover, failback or drill",
        rpo,
    );
    registry.register(
        "mooring_dr_last_operation_finished_timestamp_seconds",
        "When the plan's last failover, failback or drill finished (Unix time)",
        finished,
    );
}

/// One series of a DisasterRecoveryPlan; `plan` is (namespace, name).
#[derive(Debug, PartialEq)]
pub enum DrSeries<'a> {
    Info {
        plan: (String, String),
        phase: &'static str,
        primary: String,
        standby: String,
    },
    /// From the `PrimaryReachable` / `StandbyReachable` conditions (absent before the
    /// first probe).
    Reachable {
        plan: (String, String),
        side: &'static str,
        cluster: String,
        up: bool,
    },
    Objective {
        plan: (String, String),
        objective: &'static str,
        seconds: u64,
    },
    /// The last failover, failback or drill (absent until one has finished).
    Last {
        plan: (String, String),
        operation: &'static str,
        summary: &'a mooring_core::dr::OperationSummary,
    },
}

/// The series of one plan.
pub fn dr_series(p: &mooring_core::dr::DisasterRecoveryPlan) -> Vec<DrSeries<'_>> {
    let id = || (p.namespace().to_string(), p.name().to_string());
    let status = p.status.as_ref();
    let mut out = vec![DrSeries::Info {
        plan: id(),
        phase: status.map(|s| s.phase).unwrap_or_default().as_str(),
        primary: p.spec.primary.cluster.clone(),
        standby: p.spec.standby.cluster.clone(),
    }];
    for (side, type_, cluster) in [
        ("primary", "PrimaryReachable", &p.spec.primary.cluster),
        ("standby", "StandbyReachable", &p.spec.standby.cluster),
    ] {
        if let Some(c) = status
            .into_iter()
            .flat_map(|s| s.conditions.iter())
            .find(|c| c.type_ == type_)
        {
            out.push(DrSeries::Reachable {
                plan: id(),
                side,
                cluster: cluster.clone(),
                up: c.status == "True",
            });
        }
    }
    let objectives = p.spec.objectives.as_ref();
    for (objective, value) in [
        ("rto", objectives.and_then(|o| o.rto.as_deref())),
        ("rpo", objectives.and_then(|o| o.rpo.as_deref())),
    ] {
        if let Some(d) = value.and_then(mooring_core::time::parse_go_duration) {
            out.push(DrSeries::Objective {
                plan: id(),
                objective,
                seconds: d.as_secs(),
            });
        }
    }
    if let Some(s) = status {
        for (operation, summary) in [
            ("failover", &s.last_failover),
            ("failback", &s.last_failback),
            ("drill", &s.last_drill),
        ] {
            if let Some(summary) = summary {
                out.push(DrSeries::Last {
                    plan: id(),
                    operation,
                    summary,
                });
            }
        }
    }
    out
}

/// The phases `analysis_run_metric_phase` reports for every metric (1 for the current
/// one, 0 for the others), as Argo Rollouts.
const ANALYSIS_PHASES: [&str; 6] = [
    "Pending",
    "Error",
    "Failed",
    "Successful",
    "Running",
    "Inconclusive",
];

/// Argo Rollouts' `strategy` (`blueGreen`, `canary`, `none`) and `traffic_router` (the
/// router of a canary's `trafficRouting`: `Istio`, `Nginx`, `ALB`, `SMI`, `Ambassador`,
/// `AppMesh`; a traffic router plugin is named by its plugin name, e.g.
/// `argoproj-labs/gatewayAPI`, since the Argo Rollouts code read for these labels names
/// no plugin; empty without traffic routing).
pub fn strategy_and_traffic_router(rollout: &Value) -> (&'static str, String) {
    let strategy = rollout.pointer("/spec/strategy").unwrap_or(&Value::Null);
    if strategy.get("blueGreen").is_some() {
        return ("blueGreen", String::new());
    }
    let Some(canary) = strategy.get("canary") else {
        return ("none", String::new());
    };
    let Some(routing) = canary.get("trafficRouting").and_then(Value::as_object) else {
        return ("canary", String::new());
    };
    let known = [
        ("alb", "ALB"),
        ("ambassador", "Ambassador"),
        ("istio", "Istio"),
        ("nginx", "Nginx"),
        ("smi", "SMI"),
        ("appMesh", "AppMesh"),
    ];
    // As Argo Rollouts: the last one of its list that is set wins.
    let mut router = known
        .iter()
        .filter(|(k, _)| routing.contains_key(*k))
        .map(|(_, v)| v.to_string())
        .next_back()
        .unwrap_or_default();
    if router.is_empty() {
        if let Some(plugins) = routing.get("plugins").and_then(Value::as_object) {
            router = plugins.keys().cloned().collect::<Vec<_>>().join(",");
        }
    }
    ("canary", router)
}

/// Argo Rollouts' `rollout_info` phase, from the `Progressing` condition's reason (and
/// `InvalidSpec`): `Completed`, `Paused`, `Error`, `Timeout`, `Abort`, `InvalidSpec`, else
/// `Progressing`.
pub fn rollout_phase(status: &Value) -> &'static str {
    let conditions = status
        .get("conditions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let find = |t: &str| {
        conditions
            .iter()
            .find(|c| c.get("type").and_then(Value::as_str) == Some(t))
    };
    if find("InvalidSpec").is_some() {
        return "InvalidSpec";
    }
    match find("Progressing")
        .and_then(|c| c.get("reason"))
        .and_then(Value::as_str)
    {
        Some("NewReplicaSetAvailable") => "Completed",
        Some("RolloutPaused") => "Paused",
        Some("ReplicaSetCreateError") => "Error",
        Some("ProgressDeadlineExceeded") => "Timeout",
        Some("RolloutAborted") => "Abort",
        _ => "Progressing",
    }
}

/// One metric of an AnalysisRun, for `analysis_run_metric_phase`.
#[derive(Debug, PartialEq)]
pub struct MetricPhase<'a> {
    pub metric: &'a str,
    /// The provider, as Argo Rollouts names it (`Prometheus`, `Web`, `Job`, …).
    pub kind: String,
    pub dry_run: bool,
    /// The metric result's phase (empty before the first measurement).
    pub phase: &'a str,
}

/// The metrics of an AnalysisRun with their provider, dry-run flag and phase.
pub fn analysis_metric_phases(run: &Value) -> Vec<MetricPhase<'_>> {
    let metrics = run
        .pointer("/spec/metrics")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let dry = run
        .pointer("/spec/dryRun")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let results = run
        .pointer("/status/metricResults")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    metrics
        .iter()
        .filter_map(|m| {
            let name = m.get("name").and_then(Value::as_str)?;
            let kind = m
                .get("provider")
                .and_then(Value::as_object)
                .and_then(|p| p.keys().next())
                .map(|k| provider_type(k))
                .unwrap_or_default();
            let dry_run = dry.iter().any(|d| {
                matches!(d.get("metricName").and_then(Value::as_str), Some(n) if n == name || n == "*")
            });
            let phase = results
                .iter()
                .find(|r| r.get("name").and_then(Value::as_str) == Some(name))
                .and_then(|r| r.get("phase"))
                .and_then(Value::as_str)
                .unwrap_or_default();
            Some(MetricPhase {
                metric: name,
                kind,
                dry_run,
                phase,
            })
        })
        .collect()
}

/// Argo Rollouts' provider type names, from the provider's key in the metric.
fn provider_type(key: &str) -> String {
    match key {
        "prometheus" => "Prometheus".into(),
        "web" => "Web".into(),
        "job" => "Job".into(),
        "datadog" => "Datadog".into(),
        "newRelic" => "NewRelic".into(),
        "wavefront" => "Wavefront".into(),
        "kayenta" => "Kayenta".into(),
        "cloudWatch" => "CloudWatch".into(),
        "graphite" => "Graphite".into(),
        "influxdb" => "Influxdb".into(),
        "skywalking" => "SkyWalking".into(),
        other => {
            let mut c = other.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(r: MetricsResponse) -> String {
        assert_eq!(r.0, StatusCode::OK, "{}", r.2);
        r.2
    }

    /// The sample lines of one metric family (`name{…} value`).
    fn samples<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| {
                l.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .collect()
    }

    fn app() -> mooring_core::app::Application {
        serde_json::from_value(json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": "serving", "namespace": "argocd"},
            "spec": {"project": "ml", "source": {"repoURL": "https://git.example.com/ml.git", "path": "p"},
                "destination": {"server": "https://kubernetes.default.svc", "namespace": "serving"}}
        }))
        .expect("an application")
    }

    #[test]
    fn event_series_carry_argo_cd_names_and_labels() {
        let m = Metrics::default();
        let a = app();
        let server = "https://kubernetes.default.svc";
        m.record_reconcile("argocd", server, std::time::Duration::from_millis(300));
        m.record_sync(&a, server, "Succeeded", false);
        let key = mooring_core::ResourceKey {
            group: "apps".into(),
            kind: "Deployment".into(),
            namespace: "serving".into(),
            name: "api".into(),
        };
        let answered: Result<(), mooring_k8s::cluster::K8sError> = Ok(());
        m.record_k8s_request(
            &a,
            server,
            mooring_controller::metrics::K8sRequest::of("Patch", &key, false, &answered),
        );
        (m.git_observer())(
            "https://git.example.com/ml.git",
            mooring_source::GitRequest::Fetch,
            std::time::Duration::from_millis(150),
        );
        m.record_stage(mooring_controller::metrics::Stage::Render, false);
        let text = body(metrics_response(Some(&m), true));
        assert_eq!(
            samples(&text, "argocd_app_sync_total"),
            ["argocd_app_sync_total{namespace=\"argocd\",name=\"serving\",project=\"ml\",dest_server=\"https://kubernetes.default.svc\",phase=\"Succeeded\",dry_run=\"false\"} 1"]
        );
        assert_eq!(
            samples(&text, "argocd_app_k8s_request_total"),
            ["argocd_app_k8s_request_total{namespace=\"argocd\",name=\"serving\",project=\"ml\",server=\"https://kubernetes.default.svc\",response_code=\"200\",verb=\"Patch\",resource_kind=\"Deployment\",resource_namespace=\"serving\",dry_run=\"false\"} 1"]
        );
        assert!(text.contains("argocd_app_reconcile_bucket{le=\"0.5\",namespace=\"argocd\",dest_server=\"https://kubernetes.default.svc\"} 1")
            || text.contains("argocd_app_reconcile_bucket{namespace=\"argocd\",dest_server=\"https://kubernetes.default.svc\",le=\"0.5\"} 1"), "{text}");
        // Argo CD's buckets.
        for le in ["0.25", "0.5", "1.0", "2.0", "4.0", "8.0", "16.0", "+Inf"] {
            assert!(
                text.contains(&format!("le=\"{le}\"")),
                "bucket {le}: {text}"
            );
        }
        assert_eq!(
            samples(&text, "argocd_git_request_total"),
            ["argocd_git_request_total{repo=\"https://git.example.com/ml.git\",request_type=\"fetch\"} 1"]
        );
        assert!(text.contains("argocd_git_request_duration_seconds_count{repo=\"https://git.example.com/ml.git\",request_type=\"fetch\"} 1"), "{text}");
        assert!(
            text.contains("mooring_stage_outcomes_total{stage=\"render\",outcome=\"failure\"} 1"),
            "{text}"
        );
        // Every stage and outcome is there from the start.
        assert_eq!(samples(&text, "mooring_stage_outcomes_total").len(), 10);
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn series_naming_applications_need_per_app() {
        let m = Metrics::default();
        let a = app();
        m.record_sync(&a, "https://kubernetes.default.svc", "Failed", false);
        (m.git_observer())(
            "https://git.example.com/ml.git",
            mooring_source::GitRequest::LsRemote,
            std::time::Duration::ZERO,
        );
        let text = body(metrics_response(Some(&m), false));
        assert!(!text.contains("serving"), "{text}");
        assert!(!text.contains("git.example.com"), "{text}");
        assert!(text.contains("mooring_stage_outcomes_total"), "{text}");
    }

    #[test]
    fn a_thousand_revisions_make_no_new_series() {
        let m = Metrics::default();
        let a = app();
        let count = |m: &Metrics| {
            body(metrics_response(Some(m), true))
                .lines()
                .filter(|l| !l.starts_with('#'))
                .count()
        };
        let converge = |rev: &str| {
            m.saw_revision("argocd/serving", rev);
            let server = "https://kubernetes.default.svc";
            m.converged("argocd/serving", "argocd", server, rev);
            m.record_reconcile("argocd", server, std::time::Duration::from_millis(10));
            m.record_sync(&a, server, "Succeeded", false);
            m.record_stage(mooring_controller::metrics::Stage::Apply, true);
        };
        converge("0000000000000000000000000000000000000000");
        let before = count(&m);
        for i in 1..=1000u32 {
            converge(&format!("{i:040x}"));
        }
        assert_eq!(count(&m), before);
        let text = body(metrics_response(Some(&m), true));
        assert!(
            text.contains("mooring_commit_to_converged_seconds_count{namespace=\"argocd\",dest_server=\"https://kubernetes.default.svc\"} 1001"),
            "{text}"
        );
        assert!(!text.contains("revision"), "{text}");
    }

    #[test]
    fn rollout_labels_follow_argo_rollouts() {
        let canary = json!({"spec": {"strategy": {"canary": {"trafficRouting": {"istio": {}}}}}});
        assert_eq!(
            strategy_and_traffic_router(&canary),
            ("canary", "Istio".to_string())
        );
        let plugin = json!({"spec": {"strategy": {"canary": {"trafficRouting": {"plugins": {"argoproj-labs/gatewayAPI": {}}}}}}});
        assert_eq!(
            strategy_and_traffic_router(&plugin),
            ("canary", "argoproj-labs/gatewayAPI".to_string())
        );
        let bg = json!({"spec": {"strategy": {"blueGreen": {}}}});
        assert_eq!(
            strategy_and_traffic_router(&bg),
            ("blueGreen", String::new())
        );
        let phase = |reason: &str| {
            rollout_phase(&json!({"conditions": [{"type": "Progressing", "reason": reason}]}))
        };
        assert_eq!(phase("NewReplicaSetAvailable"), "Completed");
        assert_eq!(phase("RolloutAborted"), "Abort");
        assert_eq!(phase("ReplicaSetUpdated"), "Progressing");
        assert_eq!(rollout_phase(&json!({})), "Progressing");
    }

    #[test]
    fn a_dr_plan_reports_phase_probes_objectives_and_its_last_drill() {
        let plan: mooring_core::dr::DisasterRecoveryPlan = serde_json::from_value(json!({
            "apiVersion": "mooring.dev/v1alpha1", "kind": "DisasterRecoveryPlan",
            "metadata": {"name": "ml-platform", "namespace": "argocd"},
            "spec": {"primary": {"cluster": "us-west-2"}, "standby": {"cluster": "eu-west-1"},
                "applications": {"pairs": [{"primary": "a", "standby": "b"}]},
                "objectives": {"rto": "15m", "rpo": "5m"}},
            "status": {"phase": "PrimaryActive",
                "conditions": [{"type": "PrimaryReachable", "status": "True", "message": "m"},
                               {"type": "StandbyReachable", "status": "False", "message": "m"}],
                "lastDrill": {"incident": "drill-1", "startedAt": "2026-01-01T00:00:00Z",
                    "finishedAt": "2026-01-01T00:00:20Z", "passed": true, "rtoSeconds": 12.5}}
        }))
        .expect("a plan");
        let s = dr_series(&plan);
        let id = ("argocd".to_string(), "ml-platform".to_string());
        assert!(s.contains(&DrSeries::Info {
            plan: id.clone(),
            phase: "PrimaryActive",
            primary: "us-west-2".into(),
            standby: "eu-west-1".into()
        }));
        assert!(s.contains(&DrSeries::Reachable {
            plan: id.clone(),
            side: "standby",
            cluster: "eu-west-1".into(),
            up: false
        }));
        assert!(s.contains(&DrSeries::Objective {
            plan: id.clone(),
            objective: "rto",
            seconds: 900
        }));
        assert!(s.iter().any(|x| matches!(x,
            DrSeries::Last { operation: "drill", summary, .. } if summary.rto_seconds == Some(12.5))));
        let mut registry = Registry::default();
        register_dr(&mut registry, std::slice::from_ref(&plan));
        let text = body(respond(&registry));
        assert!(
            text.contains("mooring_dr_last_operation_rto_seconds{namespace=\"argocd\",plan=\"ml-platform\",operation=\"drill\"} 12.5"),
            "{text}"
        );
        assert!(
            text.contains("mooring_dr_last_operation_finished_timestamp_seconds{namespace=\"argocd\",plan=\"ml-platform\",operation=\"drill\"} 1767225620"),
            "{text}"
        );
    }

    #[test]
    fn analysis_metrics_name_their_provider_and_phase() {
        let run = json!({
            "spec": {"metrics": [
                {"name": "success-rate", "provider": {"prometheus": {"query": "q"}}},
                {"name": "smoke", "provider": {"web": {"url": "u"}}}],
                "dryRun": [{"metricName": "smoke"}]},
            "status": {"metricResults": [{"name": "success-rate", "phase": "Successful"}]}
        });
        assert_eq!(
            analysis_metric_phases(&run),
            [
                MetricPhase {
                    metric: "success-rate",
                    kind: "Prometheus".into(),
                    dry_run: false,
                    phase: "Successful"
                },
                MetricPhase {
                    metric: "smoke",
                    kind: "Web".into(),
                    dry_run: true,
                    phase: ""
                },
            ]
        );
    }
}
