//! Disaster recovery: the controller side of `DisasterRecoveryPlan`s
//! (`mooring_core::dr`).
//!
//! The pure rules (a plan's validity, the steps of a failover and a failback, detection,
//! RTO/RPO, reports) are `mooring_engine::dr`; this module does the I/O. Every
//! [`TICK`] it reads the plans of the control-plane namespace and, for each (one task per
//! plan, so a slow check of one plan never delays another):
//!
//! 1. checks the plan (`Ready`: the spec is valid, both clusters are registered, every
//!    Application exists);
//! 2. probes the primary and the standby cluster (`PrimaryReachable`,
//!    `StandbyReachable`) and the primary's health (its apps' health and the plan's
//!    endpoint checks), recording since when the primary is down or degraded;
//! 3. advances the operation in progress by as many steps as are ready, or the drill in
//!    progress, or starts what was asked (`status.request`, written by `mooring dr`),
//!    what detection decided (`detection.automatic`), or the scheduled drill.
//!
//! **Exactly once across restarts.** Every step is written `Running` (with its start
//! time) to the plan's status before it acts, and every action is checked against the
//! world before it is repeated: a sync is requested with the initiator
//! `mooring-dr:<incident>` and not requested again when the app already carries that
//! operation; a DNS record already pointing to the target is not updated again; the
//! Events (and with them the notifications) have names derived from the incident, so a
//! second attempt is refused by the API server. Status writes carry the plan's
//! resourceVersion, so two writers never both start the same operation.

pub mod checks;
pub mod dns;
pub mod local_dns;

use crate::conditions::policy_condition as condition;
use crate::events::EventType;
use crate::Context;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use mooring_core::app::{Application, ApplicationDestination};
use mooring_core::dr::{
    DisasterRecoveryPlan, DisasterRecoveryPlanStatus, DrOperation, DrRequest, DrillState,
    OperationSummary, Phase, PolicyCondition, ScaleOverride, StepStatus, SUSPEND_ANNOTATION,
};
use mooring_core::time::{self, Timestamp};
use mooring_engine::dr::{self as engine, Durations, Side};
use mooring_k8s::cluster::ClusterClient;
use mooring_k8s::kube;
use mooring_k8s::resources::disaster_recovery_plan_resource;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How often plans are looked at.
pub const TICK: Duration = Duration::from_millis(500);
/// How long a cluster probe may take before the cluster counts as unreachable.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// The field manager of the scale overrides: standby apps list it in
/// `ignoreDifferences[].managedFieldsManagers` so the overrides are not drift (as Argo CD
/// users do for an HPA's replicas).
pub const MANAGER: &str = "mooring-dr";
/// The field manager of a drill's injected failure (deliberately not ignored: the primary
/// shows the drift while the drill lasts).
pub const DRILL_MANAGER: &str = "mooring-dr-drill";
/// The component Events are recorded by.
const COMPONENT: &str = "mooring-dr";
/// A partition injected by a drill heals by itself after this long, even if the drill
/// never comes back to heal it.
const PARTITION_MAX: &str = "600s";
/// How long a drill waits for detection beyond the detection durations.
const DETECTION_GRACE: Duration = Duration::from_secs(60);

/// Why a plan could not be advanced this tick (it is retried on the next).
#[derive(Debug, thiserror::Error)]
pub enum DrError {
    #[error("writing the status of plan {plan}: {message}")]
    Write { plan: String, message: String },
    #[error("{0}")]
    Cluster(String),
}

/// Start the disaster-recovery loop (detection, failovers, failbacks, drills).
pub fn start(ctx: Arc<Context>) -> Vec<tokio::task::JoinHandle<()>> {
    vec![tokio::spawn(run(ctx))]
}

fn plans_api(ctx: &Context) -> Api<DynamicObject> {
    Api::namespaced_with(
        ctx.management.client().clone(),
        ctx.namespace(),
        &disaster_recovery_plan_resource(),
    )
}

async fn run(ctx: Arc<Context>) {
    let mut running: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        match plans_api(&ctx).list(&Default::default()).await {
            Ok(list) => {
                // What `/metrics` reports of the plans (a plan that does not parse says so
                // in its own status).
                ctx.listed_dr_plans(
                    list.items
                        .iter()
                        .filter_map(|o| serde_json::to_value(o).ok())
                        .filter_map(|v| serde_json::from_value(v).ok())
                        .collect(),
                );
                for o in list.items {
                    let name = o.metadata.name.clone().unwrap_or_default();
                    if running.get(&name).is_some_and(|h| !h.is_finished()) {
                        continue;
                    }
                    let ctx = ctx.clone();
                    let value = serde_json::to_value(&o).unwrap_or(Value::Null);
                    running.insert(
                        name.clone(),
                        tokio::spawn(async move {
                            if let Err(e) = reconcile(&ctx, value).await {
                                tracing::warn!("disaster recovery plan {name}: {e}");
                            }
                        }),
                    );
                }
            }
            Err(e) => tracing::debug!("listing disaster recovery plans: {e}"),
        }
        running.retain(|_, h| !h.is_finished());
        tokio::time::sleep(TICK).await;
    }
}

/// One plan being worked on: its last written status and resourceVersion.
struct Run<'a> {
    ctx: &'a Arc<Context>,
    plan: DisasterRecoveryPlan,
    rv: String,
    written: Value,
    status: DisasterRecoveryPlanStatus,
}

impl Run<'_> {
    fn name(&self) -> &str {
        self.plan.name()
    }

    /// Write the status if it changed, conditional on the resourceVersion read.
    async fn save(&mut self) -> Result<(), DrError> {
        let now = serde_json::to_value(&self.status).unwrap_or(Value::Null);
        if now == self.written {
            return Ok(());
        }
        let patch = json!({
            "metadata": {"resourceVersion": self.rv},
            "status": mooring_core::merge_patch::diff(&self.written, &now),
        });
        let out = plans_api(self.ctx)
            .patch_status(
                self.plan.name(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
            .map_err(|e| DrError::Write {
                plan: self.plan.name().to_string(),
                message: e.to_string(),
            })?;
        self.rv = out.metadata.resource_version.unwrap_or_default();
        self.written = now;
        Ok(())
    }
}

/// What a plan names, found.
struct Resolved {
    durations: Durations,
    primary: Arc<ClusterClient>,
    standby: Arc<ClusterClient>,
    /// (primary app, standby app), in the plan's order.
    pairs: Vec<(Application, Application)>,
}

impl Resolved {
    fn cluster(&self, side: Side) -> &Arc<ClusterClient> {
        match side {
            Side::Primary => &self.primary,
            Side::Standby => &self.standby,
        }
    }

    fn apps(&self, side: Side) -> Vec<&Application> {
        self.pairs
            .iter()
            .map(|(p, s)| if side == Side::Primary { p } else { s })
            .collect()
    }
}

async fn reconcile(ctx: &Arc<Context>, value: Value) -> Result<(), DrError> {
    let plan: DisasterRecoveryPlan = match serde_json::from_value(value.clone()) {
        Ok(p) => p,
        Err(e) => {
            // A plan the types refuse: say so in its status, nothing else.
            let name = value
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let status = json!({"status": {"conditions": [ready(false, format!("the plan does not parse: {e}"), &[])]}});
            let _ = plans_api(ctx)
                .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
                .await;
            return Ok(());
        }
    };
    let status = plan.status.clone().unwrap_or_default();
    let mut run = Run {
        ctx,
        rv: value
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        written: value.get("status").cloned().unwrap_or(Value::Null),
        status,
        plan,
    };
    run.status.observed_generation = run
        .plan
        .metadata
        .pointer("/generation")
        .and_then(Value::as_i64);
    let resolved = match resolve(ctx, &run.plan).await {
        Ok(r) => {
            let prev = run.status.conditions.clone();
            set_condition(
                &mut run.status,
                ready(true, "the plan is valid".into(), &prev),
            );
            r
        }
        Err(problems) => {
            let prev = run.status.conditions.clone();
            set_condition(&mut run.status, ready(false, problems.join("; "), &prev));
            // A request that cannot be acted on is answered, not kept.
            if let Some(r) = run.status.request.take() {
                record(
                    &run,
                    EventType::Warning,
                    "RequestRefused",
                    &format!(
                        "{} refused: the plan is not valid: {}",
                        r.kind,
                        problems.join("; ")
                    ),
                    None,
                    None,
                )
                .await;
            }
            return run.save().await;
        }
    };
    observe(&mut run, &resolved).await;
    run.save().await?;
    advance(&mut run, &resolved).await
}

/// The plan's clusters and apps, or every problem found.
async fn resolve(ctx: &Context, plan: &DisasterRecoveryPlan) -> Result<Resolved, Vec<String>> {
    let durations = engine::validate(&plan.spec)?;
    let mut problems = Vec::new();
    let cluster = |name: &str| {
        ctx.cluster_for(&ApplicationDestination {
            name: Some(name.to_string()),
            ..Default::default()
        })
        .map_err(|_| {
            format!(
                "cluster {name:?} is not registered (add it with `mooring cluster add` or an Argo CD cluster Secret)"
            )
        })
    };
    let primary = cluster(&plan.spec.primary.cluster)
        .map_err(|e| problems.push(e))
        .ok();
    let standby = cluster(&plan.spec.standby.cluster)
        .map_err(|e| problems.push(e))
        .ok();
    let apps = crate::all_apps(ctx).await;
    let ns = plan.namespace();
    let find = |name: &str| {
        apps.iter()
            .find(|a| a.name() == name && a.namespace() == ns)
            .map(|a| Application::clone(a))
    };
    let mut pairs = Vec::new();
    let named: Vec<(String, String)> = match &plan.spec.applications.application_set {
        Some(_) => generated_pairs(ctx, plan, &apps),
        None => plan
            .spec
            .applications
            .pairs
            .iter()
            .map(|p| (p.primary.clone(), p.standby.clone()))
            .collect(),
    };
    if named.is_empty() {
        problems.push(
            "no application pairs: the ApplicationSet generated no app for both clusters".into(),
        );
    }
    for (p, s) in named {
        match (find(&p), find(&s)) {
            (Some(a), Some(b)) => pairs.push((a, b)),
            (a, b) => {
                for (name, found) in [(p, a.is_some()), (s, b.is_some())] {
                    if !found {
                        problems.push(format!("application {ns}/{name} does not exist"));
                    }
                }
            }
        }
    }
    match (primary, standby) {
        (Some(primary), Some(standby)) if problems.is_empty() => Ok(Resolved {
            durations,
            primary,
            standby,
            pairs,
        }),
        _ => Err(problems),
    }
}

/// The pairs of an ApplicationSet's generated apps (each side's apps by
/// [`checks::side_app_names`], the one rule): a primary app pairs with the app whose name
/// is its own with the primary cluster's name replaced by the standby's.
fn generated_pairs(
    ctx: &Context,
    plan: &DisasterRecoveryPlan,
    apps: &[std::sync::Arc<Application>],
) -> Vec<(String, String)> {
    let cluster_of = |a: &Application| {
        ctx.cluster_for(&a.spec.destination)
            .ok()
            .map(|c| c.name.clone())
    };
    let primary = checks::side_app_names(plan, Side::Primary, apps, cluster_of);
    let standby = checks::side_app_names(plan, Side::Standby, apps, cluster_of);
    let (pc, sc) = (&plan.spec.primary.cluster, &plan.spec.standby.cluster);
    primary
        .into_iter()
        .filter_map(|p| {
            let want = p.replace(pc.as_str(), sc);
            standby.contains(&want).then_some((p, want))
        })
        .collect()
}

fn ready(ok: bool, message: String, prev: &[PolicyCondition]) -> PolicyCondition {
    condition("Ready", ok, message, prev)
}

/// `LastFailover`, `LastFailback`, `LastDrill`: True when it passed, the message its
/// incident with the measured RTO and RPO (`kubectl get drplan -o yaml` shows them).
fn summary_condition(
    type_: &str,
    s: &OperationSummary,
    prev: &[PolicyCondition],
) -> PolicyCondition {
    let secs = |v: Option<f64>| {
        v.map(|x| format!("{x:.1}s"))
            .unwrap_or_else(|| "unknown".into())
    };
    condition(
        type_,
        s.passed,
        format!(
            "{} {}: RTO {}, RPO {}; {}",
            s.incident,
            if s.passed { "passed" } else { "failed" },
            secs(s.rto_seconds),
            secs(s.rpo_seconds),
            s.message
        ),
        prev,
    )
}

fn set_condition(status: &mut DisasterRecoveryPlanStatus, c: PolicyCondition) {
    match status.conditions.iter_mut().find(|x| x.type_ == c.type_) {
        Some(x) => *x = c,
        None => status.conditions.push(c),
    }
}

/// The message of a reachability condition that is False.
fn unreachable(status: &DisasterRecoveryPlanStatus, type_: &str) -> Option<String> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == "False")
        .map(|c| c.message.clone())
}

/// Whether a cluster's API server answers within [`PROBE_TIMEOUT`].
async fn reachable(cluster: &ClusterClient) -> Result<(), String> {
    match tokio::time::timeout(PROBE_TIMEOUT, cluster.server_version()).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {}s", PROBE_TIMEOUT.as_secs())),
    }
}

/// Probe both sides and the primary's health; record since when it is down or degraded.
async fn observe(run: &mut Run<'_>, r: &Resolved) {
    let now = time::now_rfc3339();
    let (p, s) = tokio::join!(reachable(&r.primary), reachable(&r.standby));
    let prev = run.status.conditions.clone();
    let cluster = |side: &str, name: &str, res: &Result<(), String>| match res {
        Ok(()) => format!("the {side} cluster {name} answers"),
        Err(e) => format!("the {side} cluster {name} does not answer: {e}"),
    };
    set_condition(
        &mut run.status,
        condition(
            "PrimaryReachable",
            p.is_ok(),
            cluster("primary", &run.plan.spec.primary.cluster, &p),
            &prev,
        ),
    );
    set_condition(
        &mut run.status,
        condition(
            "StandbyReachable",
            s.is_ok(),
            cluster("standby", &run.plan.spec.standby.cluster, &s),
            &prev,
        ),
    );
    // An outage starts when a primary seen answering (healthy) stops: a primary that has
    // not come up yet (`mooring up` starting, a new plan) is no disaster to fail over from.
    let was = |type_: &str| prev.iter().any(|c| c.type_ == type_ && c.status == "True");
    run.status.primary_unreachable_since = match (&p, run.status.primary_unreachable_since.take()) {
        (Ok(()), _) => None,
        (Err(_), Some(since)) => Some(since),
        (Err(_), None) => was("PrimaryReachable").then(|| now.clone()),
    };
    // Degraded: only while the primary serves (or a drill waits for detection), and only
    // when it answers (unreachable is the other condition).
    let watching = run.status.phase == Phase::PrimaryActive
        || run
            .status
            .drill
            .as_ref()
            .is_some_and(|d| d.stage == "Detecting");
    let degraded = if p.is_ok() && watching {
        primary_problems(run.ctx, &run.plan, r).await
    } else {
        Vec::new()
    };
    // Health is judged while the primary serves; unanswered it is not healthy; otherwise
    // (the standby serves) the last judgement stands.
    let health = match (&p, watching) {
        (Err(_), _) => Some((false, "the primary cluster does not answer".to_string())),
        (Ok(()), true) if degraded.is_empty() => Some((
            true,
            "the primary apps are not Degraded and its endpoint checks pass".to_string(),
        )),
        (Ok(()), true) => Some((false, degraded.join("; "))),
        (Ok(()), false) => None,
    };
    if let Some((ok, message)) = health {
        set_condition(
            &mut run.status,
            condition("PrimaryHealthy", ok, message, &prev),
        );
    }
    run.status.primary_degraded_since = match (
        degraded.is_empty(),
        run.status.primary_degraded_since.take(),
    ) {
        (true, _) => None,
        (false, Some(since)) => Some(since),
        (false, None) => was("PrimaryHealthy").then_some(now),
    };
}

/// What is wrong with the primary: Degraded or Missing apps, failing endpoint checks
/// (`applications` checks are left out: a routine OutOfSync is no disaster).
async fn primary_problems(
    ctx: &Arc<Context>,
    plan: &DisasterRecoveryPlan,
    r: &Resolved,
) -> Vec<String> {
    let mut out: Vec<String> = r
        .apps(Side::Primary)
        .iter()
        .filter_map(|a| {
            let h = a
                .status
                .as_ref()
                .map(|s| s.health.status.as_str())
                .unwrap_or("Unknown");
            engine::degraded(h).then(|| format!("{} is {h}", a.name()))
        })
        .collect();
    let mut endpoint_plan = plan.clone();
    endpoint_plan
        .spec
        .validation
        .checks
        .retain(|c| c.applications.is_none());
    if !endpoint_plan.spec.validation.checks.is_empty() {
        for c in checks::run(ctx, &endpoint_plan, Side::Primary).await {
            if !c.passed {
                out.push(format!("check {} fails: {}", c.name, c.message));
            }
        }
    }
    out
}

/// Start what is due, or advance what runs.
async fn advance(run: &mut Run<'_>, r: &Resolved) -> Result<(), DrError> {
    if run
        .status
        .operation
        .as_ref()
        .is_some_and(|o| o.phase == engine::RUNNING)
    {
        return advance_operation(run, r).await;
    }
    if run.status.drill.is_some() {
        return advance_drill(run, r).await;
    }
    if let Some(req) = run.status.request.take() {
        return start_requested(run, r, req).await;
    }
    let now = time::now();
    if run.plan.spec.detection.automatic && run.status.phase == Phase::PrimaryActive {
        if let Some((why, at)) = engine::detection_fires(
            &r.durations,
            run.status.primary_unreachable_since.as_deref(),
            run.status.primary_degraded_since.as_deref(),
            now,
        ) {
            // One automatic failover per outage: a failed one is not retried for the
            // same outage (a human decides with `mooring dr failover`).
            let retried =
                run.status.last_failover.as_ref().is_some_and(|l| {
                    !l.passed && time::parse(&l.started_at).is_ok_and(|s| s >= at)
                });
            if let Some(m) = unreachable(&run.status, "StandbyReachable") {
                // Failing over to a region that does not answer would only half-switch.
                let since = time::format(at);
                record(
                    run,
                    EventType::Warning,
                    "FailoverBlocked",
                    &format!("{why}, but {m}: no failover; DNS stays on the primary"),
                    Some(&since),
                    None,
                )
                .await;
            } else if !retried {
                let incident = engine::incident_id("auto", run.name(), now);
                tracing::info!("plan {}: {why}: failing over ({incident})", run.name());
                return start_operation(
                    run,
                    r,
                    engine::FAILOVER,
                    &incident,
                    "automatic",
                    Some(at),
                    &why,
                )
                .await;
            }
        }
    }
    scheduled_drill(run, r, now).await
}

async fn scheduled_drill(run: &mut Run<'_>, r: &Resolved, now: Timestamp) -> Result<(), DrError> {
    let Some(drill) = run.plan.spec.drill.clone() else {
        run.status.next_drill = None;
        return run.save().await;
    };
    let Some(schedule) = drill.schedule.as_deref() else {
        run.status.next_drill = None;
        return run.save().await;
    };
    let Ok(s) = mooring_engine::project::Schedule::parse_with_seconds(
        schedule,
        drill.time_zone.as_deref().unwrap_or(""),
    ) else {
        return Ok(()); // validate() reported it
    };
    let now_sys = std::time::SystemTime::from(now);
    let next = |after: std::time::SystemTime| {
        s.next_after(after)
            .and_then(|t| Timestamp::try_from(t).ok())
            .map(time::format)
    };
    let due = run
        .status
        .next_drill
        .as_deref()
        .and_then(|t| time::parse(t).ok());
    match due {
        Some(at) if at <= now => {
            run.status.next_drill = next(now_sys);
            if run.status.phase == Phase::PrimaryActive {
                let incident = engine::incident_id("drill", run.name(), now);
                return start_drill(run, r, &incident, "scheduled").await;
            }
            record(
                run,
                EventType::Warning,
                "DrillSkipped",
                &format!(
                    "the scheduled drill was skipped: the plan is {} (drills start from PrimaryActive)",
                    run.status.phase.as_str()
                ),
                None,
                None,
            )
            .await;
            run.save().await
        }
        Some(_) => Ok(()),
        None => {
            run.status.next_drill = next(now_sys);
            run.save().await
        }
    }
}

/// Act on `mooring dr failover|failback|drill`.
async fn start_requested(run: &mut Run<'_>, r: &Resolved, req: DrRequest) -> Result<(), DrError> {
    let incident = req.incident.clone().unwrap_or_else(|| {
        let prefix = if req.kind == engine::DRILL {
            "drill"
        } else {
            "manual"
        };
        engine::incident_id(prefix, run.name(), time::now())
    });
    let problem = match req.kind.as_str() {
        engine::FAILOVER | engine::FAILBACK | engine::DRILL => {
            engine::request::request_refusal(&req.kind, &run.status)
                .map(|m| format!("{} refused: {m}", req.kind.to_lowercase()))
                .or_else(|| {
                    let (condition, then) = if req.kind == engine::FAILBACK {
                        ("PrimaryReachable", "the standby keeps serving")
                    } else {
                        ("StandbyReachable", "nothing was changed")
                    };
                    unreachable(&run.status, condition)
                        .map(|m| format!("{} refused: {m}; {then}", req.kind.to_lowercase()))
                })
        }
        other => Some(format!(
            "unknown request kind {other:?}: expected Failover, Failback or Drill"
        )),
    };
    if let Some(why) = problem {
        record(run, EventType::Warning, "RequestRefused", &why, None, None).await;
        return run.save().await;
    }
    let by = req.requested_by.clone().unwrap_or_else(|| "a user".into());
    let why = format!("requested by {by}");
    match req.kind.as_str() {
        engine::DRILL => start_drill(run, r, &incident, "manual").await,
        kind => {
            // A manual failover during an outage measures the RTO from the outage.
            let failure_at = if kind == engine::FAILOVER {
                run.status
                    .primary_unreachable_since
                    .as_deref()
                    .or(run.status.primary_degraded_since.as_deref())
                    .and_then(|t| time::parse(t).ok())
                    .or_else(|| time::parse(&req.requested_at).ok())
            } else {
                time::parse(&req.requested_at).ok()
            };
            start_operation(run, r, kind, &incident, "manual", failure_at, &why).await
        }
    }
}

/// Record a new operation (all steps Pending) and announce it.
async fn start_operation(
    run: &mut Run<'_>,
    r: &Resolved,
    kind: &str,
    incident: &str,
    trigger: &str,
    failure_at: Option<Timestamp>,
    why: &str,
) -> Result<(), DrError> {
    let side = Side::activated_by(kind);
    let apps: Vec<String> = r.apps(side).iter().map(|a| a.name().to_string()).collect();
    let op = engine::operation(
        &run.plan.spec,
        kind,
        incident,
        trigger,
        &apps,
        time::now(),
        failure_at,
    );
    run.status.operation = Some(op);
    if run.status.drill.is_none() {
        run.status.phase = if kind == engine::FAILOVER {
            Phase::FailingOver
        } else {
            Phase::FailingBack
        };
    }
    run.save().await?;
    let (from, to) = regions(&run.plan, side);
    let reason = if kind == engine::FAILOVER {
        mooring_core::dr::FAILOVER_STARTED
    } else {
        "FailbackStarted"
    };
    record(
        run,
        EventType::Normal,
        reason,
        &format!(
            "{} {incident} of plan {} started ({why}): {from} → {to}",
            kind.to_lowercase(),
            run.name()
        ),
        Some(incident),
        first_app(r, side),
    )
    .await;
    advance_operation(run, r).await
}

/// The regions an operation activating `side` moves from and to.
fn regions(plan: &DisasterRecoveryPlan, side: Side) -> (String, String) {
    let region =
        |s: &mooring_core::dr::RegionSpec| s.region.clone().unwrap_or_else(|| s.cluster.clone());
    let (p, s) = (region(&plan.spec.primary), region(&plan.spec.standby));
    match side {
        Side::Standby => (p, s),
        Side::Primary => (s, p),
    }
}

fn first_app(r: &Resolved, side: Side) -> Option<&Application> {
    r.apps(side).into_iter().next()
}

/// What one attempt at a step came to.
enum Outcome {
    Done(String),
    Wait(String),
    Failed(String),
}

/// Run the current step(s) of the operation until one has to wait.
async fn advance_operation(run: &mut Run<'_>, r: &Resolved) -> Result<(), DrError> {
    loop {
        let Some(op) = run.status.operation.as_ref() else {
            return Ok(());
        };
        let Some(i) = engine::current(op) else {
            return finish_operation(run, r).await;
        };
        if op.steps[i].phase == engine::PENDING {
            let step = &mut run.status.operation.as_mut().expect("operation").steps[i];
            step.phase = engine::RUNNING.into();
            step.started_at = Some(time::format_millis(time::now()));
            run.save().await?;
        }
        let outcome = execute(run, r, i).await;
        let step = &mut run.status.operation.as_mut().expect("operation").steps[i];
        match outcome {
            Outcome::Done(msg) => {
                step.phase = engine::SUCCEEDED.into();
                step.finished_at = Some(time::format_millis(time::now()));
                step.message = msg;
            }
            Outcome::Failed(msg) => {
                step.phase = engine::FAILED.into();
                step.finished_at = Some(time::format_millis(time::now()));
                step.message = msg;
            }
            Outcome::Wait(msg) => {
                step.message = msg;
                return run.save().await;
            }
        }
        run.save().await?;
    }
}

/// Elapsed time of a running step.
fn step_elapsed(step: &StepStatus) -> Duration {
    time::since(step.started_at.as_deref(), time::now())
}

async fn execute(run: &mut Run<'_>, r: &Resolved, i: usize) -> Outcome {
    let op = run.status.operation.clone().expect("operation");
    let step = op.steps[i].clone();
    let side = Side::activated_by(&op.kind);
    let name = step.name.as_str();
    if name == "freeze" {
        return freeze(run, r, &op).await;
    }
    if let Some(app) = name.strip_prefix("sync/") {
        return sync_app(run, r, &op, &step, app).await;
    }
    match name {
        "scale" => scale(run, r).await,
        "unscale" => unscale(run, r).await,
        "validate" => validate_step(run, r, side, &step).await,
        "dns" => switch_dns(run, r, side).await,
        "notify" => notify(run, r, &op).await,
        other => Outcome::Failed(format!("unknown step {other:?}")),
    }
}

/// The annotation value a plan writes when it freezes an app.
fn freeze_reason(plan: &str, incident: &str) -> String {
    format!("disaster recovery plan {plan}: incident {incident}")
}

async fn set_frozen(ctx: &Context, app: &Application, reason: Option<&str>) -> Result<(), String> {
    ctx.patch_app(
        app,
        json!({"metadata": {"annotations": {SUSPEND_ANNOTATION: reason}}}),
    )
    .await
    .map_err(|e| e.to_string())
}

async fn freeze(run: &Run<'_>, r: &Resolved, op: &DrOperation) -> Outcome {
    let reason = freeze_reason(run.name(), &op.incident);
    for app in r.apps(Side::Primary) {
        if let Err(e) = set_frozen(run.ctx, app, Some(&reason)).await {
            return Outcome::Wait(format!("suspending automated sync of {}: {e}", app.name()));
        }
    }
    Outcome::Done(format!(
        "automated sync of {} suspended",
        r.apps(Side::Primary)
            .iter()
            .map(|a| a.name())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// The initiator of an operation's syncs (how a resumed step finds its own sync).
fn initiator(incident: &str) -> String {
    format!("{COMPONENT}:{incident}")
}

async fn sync_app(
    run: &Run<'_>,
    r: &Resolved,
    op: &DrOperation,
    step: &StepStatus,
    name: &str,
) -> Outcome {
    let side = Side::activated_by(&op.kind);
    let Some(app) = r.apps(side).into_iter().find(|a| a.name() == name) else {
        return Outcome::Failed(format!("application {name} is no longer in the plan"));
    };
    // Read it fresh (the resolved copy is from the start of the tick).
    let raw = match run.ctx.apps_api(app.namespace()).get_opt(name).await {
        Ok(Some(o)) => serde_json::to_value(o).unwrap_or(Value::Null),
        Ok(None) => return Outcome::Failed(format!("application {name} was deleted")),
        Err(e) => return Outcome::Wait(format!("reading {name}: {e}")),
    };
    let who = initiator(&op.incident);
    let pending_ours = raw
        .pointer("/operation/initiatedBy/username")
        .and_then(Value::as_str)
        == Some(&who);
    let state_ours = raw
        .pointer("/status/operationState/operation/initiatedBy/username")
        .and_then(Value::as_str)
        == Some(&who);
    let str_at = |p: &str| raw.pointer(p).and_then(Value::as_str).unwrap_or_default();
    if !pending_ours && !state_ours {
        if raw.get("operation").is_some_and(|o| !o.is_null()) {
            return Outcome::Wait(format!(
                "{name} has another operation running; waiting for it"
            ));
        }
        if side == Side::Primary {
            // Failback: automated sync resumes with the sync.
            if let Err(e) = set_frozen(run.ctx, app, None).await {
                return Outcome::Wait(format!("resuming automated sync of {name}: {e}"));
            }
        }
        let options = app
            .spec
            .sync_policy
            .as_ref()
            .map(|p| p.sync_options.clone())
            .unwrap_or_default();
        let req = json!({"sync": {"syncOptions": options}, "initiatedBy": {"username": who}});
        if let Err(e) = crate::operation::request(run.ctx, app, req).await {
            return Outcome::Wait(format!("requesting the sync of {name}: {e}"));
        }
        return Outcome::Wait(format!("sync of {name} requested"));
    }
    let timeout = engine::sync_timeout(&run.plan.spec, &r.durations, name);
    let phase = str_at("/status/operationState/phase");
    let sync = str_at("/status/sync/status");
    let health = str_at("/status/health/status");
    if state_ours && !pending_ours {
        match phase {
            "Succeeded" if sync == "Synced" && health == "Healthy" => {
                return Outcome::Done(format!("{name} Synced and Healthy"))
            }
            "Failed" | "Error" => {
                return Outcome::Failed(format!(
                    "the sync of {name} failed: {}",
                    str_at("/status/operationState/message")
                ))
            }
            _ => {}
        }
    }
    if step_elapsed(step) > timeout {
        return Outcome::Failed(format!(
            "{name} was not Synced and Healthy within {}s (sync {sync}, health {health}, operation {phase})",
            timeout.as_secs()
        ));
    }
    Outcome::Wait(format!(
        "waiting for {name}: sync {sync}, health {health}, operation {}",
        if phase.is_empty() { "pending" } else { phase }
    ))
}

fn workload_object(s: &ScaleOverride, replicas: i64) -> Value {
    let api_version = if s.kind == "Rollout" {
        "argoproj.io/v1alpha1"
    } else {
        "apps/v1"
    };
    json!({
        "apiVersion": api_version, "kind": s.kind,
        "metadata": {"name": s.name, "namespace": s.namespace},
        "spec": {"replicas": replicas},
    })
}

async fn replicas_of(cluster: &ClusterClient, s: &ScaleOverride) -> Result<Option<i64>, String> {
    let obj = workload_object(s, 0);
    let key = mooring_core::ResourceKey::of(&obj).ok_or("the workload has no identity")?;
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let live = cluster
        .get(api_version, &key)
        .await
        .map_err(|e| e.to_string())?;
    Ok(live.map(|l| {
        l.pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1)
    }))
}

async fn set_replicas(
    cluster: &ClusterClient,
    s: &ScaleOverride,
    replicas: i64,
    manager: &str,
) -> Result<(), String> {
    cluster
        .apply(&workload_object(s, replicas), manager, false)
        .await
        .map(|_| ())
        .map_err(|e| format!("{} {}/{}: {e}", s.kind, s.namespace, s.name))
}

async fn scale(run: &mut Run<'_>, r: &Resolved) -> Outcome {
    // The old values are recorded before anything is changed (once: a resumed step must
    // not record the overridden values as the old ones).
    if run.status.scaled.is_empty() {
        let mut old = Vec::new();
        for s in &run.plan.spec.activation.scale {
            match replicas_of(&r.standby, s).await {
                Ok(Some(n)) => old.push(ScaleOverride {
                    replicas: n,
                    ..s.clone()
                }),
                Ok(None) => {
                    return Outcome::Failed(format!(
                        "{} {}/{} does not exist on the standby cluster {}",
                        s.kind, s.namespace, s.name, run.plan.spec.standby.cluster
                    ))
                }
                Err(e) => return Outcome::Wait(format!("reading replicas: {e}")),
            }
        }
        run.status.scaled = old;
        if let Err(e) = run.save().await {
            return Outcome::Wait(e.to_string());
        }
    }
    let mut done = Vec::new();
    for s in run.plan.spec.activation.scale.clone() {
        if let Err(e) = set_replicas(&r.standby, &s, s.replicas, MANAGER).await {
            return Outcome::Wait(format!("scaling: {e}"));
        }
        done.push(format!(
            "{} {}/{} → {}",
            s.kind, s.namespace, s.name, s.replicas
        ));
    }
    Outcome::Done(done.join(", "))
}

async fn unscale(run: &mut Run<'_>, r: &Resolved) -> Outcome {
    let mut done = Vec::new();
    for s in run.status.scaled.clone() {
        if let Err(e) = set_replicas(&r.standby, &s, s.replicas, MANAGER).await {
            return Outcome::Wait(format!("restoring replicas: {e}"));
        }
        done.push(format!(
            "{} {}/{} → {}",
            s.kind, s.namespace, s.name, s.replicas
        ));
    }
    run.status.scaled.clear();
    Outcome::Done(if done.is_empty() {
        "nothing to restore".into()
    } else {
        done.join(", ")
    })
}

async fn validate_step(run: &mut Run<'_>, r: &Resolved, side: Side, step: &StepStatus) -> Outcome {
    let results = checks::run(run.ctx, &run.plan, side).await;
    let failed: Vec<String> = results
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("{}: {}", c.name, c.message))
        .collect();
    if let Some(op) = run.status.operation.as_mut() {
        op.validation = results;
    }
    if failed.is_empty() {
        return Outcome::Done(format!("all checks pass on the {}", side.as_str()));
    }
    if step_elapsed(step) > r.durations.validation_timeout {
        return Outcome::Failed(format!(
            "checks still failing after {}s: {}",
            r.durations.validation_timeout.as_secs(),
            failed.join("; ")
        ));
    }
    Outcome::Wait(format!("checks failing (retrying): {}", failed.join("; ")))
}

/// The address a DNS target names on a side's cluster.
async fn target_address(
    cluster: &ClusterClient,
    t: &mooring_core::dr::Target,
) -> Result<String, String> {
    if let Some(a) = &t.address {
        return Ok(a.clone());
    }
    let svc = t
        .service
        .as_ref()
        .ok_or("a DNS target needs an address or a service")?;
    checks::service_address(cluster, svc)
        .await
        .map(|(addr, _)| addr)
        .map_err(|e| e.to_string())
}

async fn tsig_secret(
    run: &Run<'_>,
    spec: &mooring_core::dr::DnsProvider,
) -> Result<Option<Vec<u8>>, String> {
    let Some(tsig) = spec.rfc2136.as_ref().and_then(|r| r.tsig.as_ref()) else {
        return Ok(None);
    };
    let secrets: Api<mooring_k8s::k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(run.ctx.management.client().clone(), run.plan.namespace());
    let s = secrets
        .get_opt(&tsig.secret_ref.name)
        .await
        .map_err(|e| format!("reading Secret {}: {e}", tsig.secret_ref.name))?
        .ok_or_else(|| {
            format!(
                "the TSIG Secret {}/{} does not exist",
                run.plan.namespace(),
                tsig.secret_ref.name
            )
        })?;
    s.data
        .and_then(|d| d.get(&tsig.secret_ref.key).map(|v| v.0.clone()))
        .map(Some)
        .ok_or_else(|| {
            format!(
                "the TSIG Secret {} has no key {:?}",
                tsig.secret_ref.name, tsig.secret_ref.key
            )
        })
}

async fn switch_dns(run: &mut Run<'_>, r: &Resolved, side: Side) -> Outcome {
    let Some(spec) = run.plan.spec.activation.dns.clone() else {
        return Outcome::Done("no DNS records".into());
    };
    let secret = match tsig_secret(run, &spec.provider).await {
        Ok(s) => s,
        Err(e) => return Outcome::Failed(e),
    };
    let provider = match dns::Provider::from_spec(&spec.provider, secret) {
        Ok(p) => p,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let mut changes = Vec::new();
    for rec in &spec.records {
        let target = if side == Side::Standby {
            &rec.standby
        } else {
            &rec.primary
        };
        let address = match target_address(r.cluster(side), target).await {
            Ok(a) => a,
            Err(e) => return Outcome::Wait(format!("record {}: {e}", rec.name)),
        };
        let prepared = dns::RecordType::parse(rec.type_.as_deref().unwrap_or("A"))
            .and_then(|t| Ok((t, provider.record_name(&rec.name)?)));
        let (record_type, fqdn) = match prepared {
            Ok(x) => x,
            Err(e) => return Outcome::Failed(e.to_string()),
        };
        changes.push(dns::Change {
            fqdn,
            record_type,
            ttl: spec.ttl.unwrap_or(engine::DEFAULT_TTL),
            target: address,
        });
    }
    let switch = dns::Switch { records: changes };
    if let Err(e) = provider.check(&switch) {
        return Outcome::Failed(e.to_string());
    }
    let outbound = &run.ctx.outbound;
    // Already switched (a resumed step): not updated again.
    let pending = match provider.pending(outbound, &switch).await {
        Ok(p) => p,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    let summary = |sw: &dns::Switch| {
        sw.records
            .iter()
            .map(|c| format!("{} → {}", c.fqdn, c.target))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if pending.records.is_empty() {
        return Outcome::Done(format!(
            "already pointing to the {}: {}",
            side.as_str(),
            summary(&switch)
        ));
    }
    match provider.apply(outbound, &pending).await {
        Ok(()) => Outcome::Done(summary(&switch)),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

async fn notify(run: &mut Run<'_>, r: &Resolved, op: &DrOperation) -> Outcome {
    let side = Side::activated_by(&op.kind);
    let (from, to) = regions(&run.plan, side);
    let rto = engine::rto_seconds(op);
    let objective = r
        .durations
        .rto
        .map(|d| format!(" (objective {}s)", d.as_secs()))
        .unwrap_or_default();
    let (reason, what) = if op.kind == engine::FAILOVER {
        (mooring_core::dr::FAILOVER_COMPLETED, "failover")
    } else {
        (mooring_core::dr::FAILBACK_COMPLETED, "failback")
    };
    let rpo = rpo(run, r, op).await;
    if let Some(o) = run.status.operation.as_mut() {
        o.rto_seconds = rto;
        o.rpo_seconds = rpo.0;
        o.replication_lag_seconds = rpo.1;
    }
    let message = format!(
        "{what} of plan {} completed: incident {}, {from} → {to}, RTO {}{objective}, RPO {}",
        run.name(),
        op.incident,
        rto.map(|s| format!("{s:.1}s"))
            .unwrap_or_else(|| "unknown".into()),
        rpo.0
            .map(|s| format!("{s:.1}s"))
            .unwrap_or_else(|| "unknown".into()),
    );
    record(
        run,
        EventType::Normal,
        reason,
        &message,
        Some(&op.incident),
        first_app(r, side),
    )
    .await;
    Outcome::Done(message)
}

/// (RPO, replication lag): the configuration RPO (Git revisions, primary vs standby) and
/// the data lag of `rpo.replicationLagQuery`; the RPO is the larger.
async fn rpo(run: &Run<'_>, r: &Resolved, op: &DrOperation) -> (Option<f64>, Option<f64>) {
    let failure = op
        .failure_at
        .clone()
        .unwrap_or_else(|| op.started_at.clone());
    let mut config: Option<f64> = None;
    for (p, s) in &r.pairs {
        let hist: Vec<(String, String)> = p
            .status
            .iter()
            .flat_map(|st| st.history.iter())
            .filter_map(|h| Some((h.revision.clone(), h.deployed_at.clone()?)))
            .collect();
        // The standby's revision now (read fresh: it just synced).
        let standby_rev = match run.ctx.apps_api(s.namespace()).get_opt(s.name()).await {
            Ok(Some(o)) => serde_json::to_value(o)
                .ok()
                .and_then(|v| {
                    v.pointer("/status/sync/revision")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .unwrap_or_default(),
            _ => String::new(),
        };
        let v = if hist.is_empty() {
            Some(0.0)
        } else {
            engine::config_rpo_seconds(&hist, &standby_rev, &failure)
        };
        config = match (config, v) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
    let lag = match run
        .plan
        .spec
        .rpo
        .as_ref()
        .and_then(|r| r.replication_lag_query.as_deref())
    {
        Some(q) => query_number(run.ctx, &run.plan, q).await.ok(),
        None => None,
    };
    let total = match (config, lag) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    (total, lag)
}

/// One number from PromQL (the plan's Prometheus, else the controller's).
async fn query_number(
    ctx: &Context,
    plan: &DisasterRecoveryPlan,
    query: &str,
) -> Result<f64, String> {
    let address = plan
        .spec
        .prometheus
        .as_ref()
        .map(|p| p.address.clone())
        .or_else(|| ctx.options.prometheus_address.clone())
        .ok_or("no Prometheus: set spec.prometheus.address or the controller's --prometheus")?;
    let client = crate::prometheus::PromClient::new(&address)
        .map_err(|e| e.to_string())?
        .through(ctx.outbound.clone());
    let value = client
        .query(query, Duration::from_secs(5))
        .await
        .map_err(|e| e.to_string())?;
    value.one_number().map_err(|e| format!("{query:?}: {e}"))
}

/// Commit a drill report to the plan's Git path (`drill.report.git`): `<path>/<incident>.md`
/// and `.json`, one commit on the branch, pushed (never forced), with the repository
/// credentials of the control-plane namespace. Returns `repo@branch:path`.
async fn commit_report(
    ctx: &Context,
    plan: &DisasterRecoveryPlan,
    git: &mooring_core::dr::GitReportSpec,
    incident: &str,
    report: &engine::report::DrillReport,
) -> Result<String, String> {
    let branch = git.branch.clone().unwrap_or_else(|| "main".into());
    mooring_source::validate_branch(&branch).map_err(|e| e.to_string())?;
    let dir = git
        .path
        .clone()
        .unwrap_or_else(|| "dr-reports".into())
        .trim_matches('/')
        .to_string();
    let file = engine::object_name(plan.name(), incident, "drill");
    let url = ctx.fetch_url(&git.repo_url);
    let creds = ctx.credentials_for(&url, None);
    let repos = ctx.repos.clone();
    let files = vec![
        (
            format!("{dir}/{file}.md"),
            report.to_markdown().into_bytes(),
        ),
        (format!("{dir}/{file}.json"), report.to_json().into_bytes()),
    ];
    let message = format!(
        "DR drill {incident} of {}: {}\n\nRTO {}, RPO {}.\nCommitted by mooring-dr.",
        plan.name(),
        if report.passed { "passed" } else { "failed" },
        report
            .rto_seconds
            .map(|s| format!("{s:.1}s"))
            .unwrap_or_else(|| "unknown".into()),
        report
            .rpo_seconds
            .map(|s| format!("{s:.1}s"))
            .unwrap_or_else(|| "unknown".into()),
    );
    let at = format!(
        "{}@{branch}:{dir}/",
        mooring_source::redact_url(&git.repo_url)
    );
    tokio::task::spawn_blocking(move || {
        let head = repos.resolve(&url, &format!("refs/heads/{branch}"), &creds)?;
        let author = mooring_source::Identity {
            name: "mooring-dr".into(),
            email: "mooring-dr@localhost".into(),
        };
        let commit = repos.commit_files(
            &url,
            &mooring_source::NewFiles {
                head,
                files,
                message: &message,
                author: &author,
                time: time::now().as_second(),
            },
        )?;
        repos.push(&url, &commit, &branch, &creds)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| e.to_string())?;
    Ok(at)
}

/// End a finished operation: the phase, the summary, the drill's copy.
async fn finish_operation(run: &mut Run<'_>, r: &Resolved) -> Result<(), DrError> {
    let Some(mut op) = run.status.operation.clone() else {
        return Ok(());
    };
    let Some((phase, message)) = engine::finished(&op) else {
        return Ok(());
    };
    op.phase = phase.into();
    op.message = message.clone();
    op.finished_at = Some(time::format_millis(time::now()));
    if op.rto_seconds.is_none() {
        op.rto_seconds = engine::rto_seconds(&op);
    }
    let passed = phase == engine::SUCCEEDED;
    let summary = OperationSummary {
        incident: op.incident.clone(),
        started_at: op.started_at.clone(),
        finished_at: op.finished_at.clone(),
        passed,
        rto_seconds: op.rto_seconds,
        rpo_seconds: op.rpo_seconds,
        message: message.clone(),
        report: None,
    };
    let prev = run.status.conditions.clone();
    let type_ = if op.kind == engine::FAILOVER {
        "LastFailover"
    } else {
        "LastFailback"
    };
    set_condition(&mut run.status, summary_condition(type_, &summary, &prev));
    if op.kind == engine::FAILOVER {
        run.status.last_failover = Some(summary);
        if !passed {
            // Nothing half-switched: DNS never moved (it moves after validation), and the
            // primary's automated sync resumes.
            for app in r.apps(Side::Primary) {
                let _ = set_frozen(run.ctx, app, None).await;
            }
        }
    } else {
        run.status.last_failback = Some(summary);
    }
    let drilling = run.status.drill.is_some();
    run.status.phase = match (op.kind.as_str(), passed, drilling) {
        (_, _, true) => Phase::Drilling,
        (engine::FAILOVER, true, _) => Phase::StandbyActive,
        (engine::FAILOVER, false, _) => Phase::PrimaryActive,
        (_, true, _) => Phase::PrimaryActive,
        (_, false, _) => Phase::StandbyActive,
    };
    if let Some(d) = run.status.drill.as_mut() {
        if op.kind == engine::FAILOVER {
            d.failover = Some(op.clone());
        } else {
            d.failback = Some(op.clone());
        }
    }
    if !passed {
        let side = Side::activated_by(&op.kind);
        record(
            run,
            EventType::Warning,
            mooring_core::dr::FAILOVER_FAILED,
            &format!(
                "{} {} of plan {} failed: {message}",
                op.kind.to_lowercase(),
                op.incident,
                run.name()
            ),
            Some(&op.incident),
            first_app(r, side),
        )
        .await;
    }
    run.status.operation = Some(op);
    // A drill goes on at the next tick.
    run.save().await
}

// ---- drills ----------------------------------------------------------------------

async fn start_drill(
    run: &mut Run<'_>,
    r: &Resolved,
    incident: &str,
    trigger: &str,
) -> Result<(), DrError> {
    let mode = run
        .plan
        .spec
        .drill
        .as_ref()
        .and_then(|d| d.failure_mode.clone())
        .unwrap_or_else(|| engine::SCALE_TO_ZERO.into());
    run.status.drill = Some(DrillState {
        incident: incident.into(),
        failure_mode: mode.clone(),
        trigger: trigger.into(),
        started_at: time::format_millis(time::now()),
        stage: "Injecting".into(),
        ..Default::default()
    });
    run.status.phase = Phase::Drilling;
    run.status.operation = None;
    run.save().await?;
    record(
        run,
        EventType::Normal,
        "DrillStarted",
        &format!(
            "drill {incident} of plan {} started ({trigger}): failure mode {mode}",
            run.name()
        ),
        Some(incident),
        None,
    )
    .await;
    advance_drill(run, r).await
}

fn drill_step(d: &mut DrillState, name: &str, phase: &str, message: String) {
    let now = time::format_millis(time::now());
    match d.steps.iter_mut().find(|s| s.name == name) {
        Some(s) => {
            s.phase = phase.into();
            s.message = message;
            if phase != engine::RUNNING {
                s.finished_at = Some(now);
            }
        }
        None => d.steps.push(StepStatus {
            name: name.into(),
            phase: phase.into(),
            started_at: Some(now.clone()),
            finished_at: (phase != engine::RUNNING).then_some(now),
            message,
        }),
    }
}

/// The workloads of the primary apps (what scale-to-zero stops).
fn primary_workloads(r: &Resolved) -> Vec<ScaleOverride> {
    r.apps(Side::Primary)
        .iter()
        .flat_map(|a| a.status.iter().flat_map(|s| s.resources.iter()))
        .filter(|res| {
            engine::SCALABLE_KINDS.contains(&res.kind.as_str()) && res.kind != "ReplicaSet"
        })
        .map(|res| ScaleOverride {
            kind: res.kind.clone(),
            namespace: res.namespace.clone(),
            name: res.name.clone(),
            replicas: 0,
        })
        .collect()
}

async fn partition(cluster: &ClusterClient, on: bool) -> Result<(), String> {
    use mooring_core::dr::{PartitionRequest, PARTITION_PATH};
    let body = PartitionRequest {
        partitioned: on,
        max_duration: on.then(|| PARTITION_MAX.to_string()),
    };
    let req = http::Request::put(PARTITION_PATH)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&body).unwrap_or_default())
        .map_err(|e| e.to_string())?;
    match cluster.client().request_text(req).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Err(format!(
            "failure mode partition needs an embedded cluster (this cluster has no {PARTITION_PATH}): use scale-to-zero"
        )),
        Err(e) => Err(e.to_string()),
    }
}

async fn inject(run: &mut Run<'_>, r: &Resolved) -> Result<String, String> {
    let d = run.status.drill.clone().unwrap_or_default();
    if d.failure_mode == engine::PARTITION {
        partition(&r.primary, true).await?;
        return Ok(format!(
            "the primary cluster {} is partitioned",
            run.plan.spec.primary.cluster
        ));
    }
    // scale-to-zero: self-heal would undo it, so the primary apps are frozen first (the
    // failover freezes them anyway).
    let reason = freeze_reason(run.name(), &d.incident);
    for app in r.apps(Side::Primary) {
        set_frozen(run.ctx, app, Some(&reason)).await?;
    }
    if d.injected.is_empty() {
        let mut old = Vec::new();
        for w in primary_workloads(r) {
            if let Some(n) = replicas_of(&r.primary, &w).await? {
                old.push(ScaleOverride { replicas: n, ..w });
            }
        }
        if old.is_empty() {
            return Err(
                "the primary apps have no Deployment, StatefulSet or Rollout to scale to zero"
                    .into(),
            );
        }
        if let Some(dr) = run.status.drill.as_mut() {
            dr.injected = old;
        }
        run.save().await.map_err(|e| e.to_string())?;
    }
    let injected = run
        .status
        .drill
        .as_ref()
        .map(|d| d.injected.clone())
        .unwrap_or_default();
    for w in &injected {
        set_replicas(&r.primary, w, 0, DRILL_MANAGER).await?;
    }
    Ok(format!(
        "scaled to zero: {}",
        injected
            .iter()
            .map(|w| format!("{} {}/{}", w.kind, w.namespace, w.name))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

async fn restore(run: &mut Run<'_>, r: &Resolved) -> Result<String, String> {
    let d = run.status.drill.clone().unwrap_or_default();
    if d.failure_mode == engine::PARTITION {
        partition(&r.primary, false).await?;
        reachable(&r.primary)
            .await
            .map_err(|e| format!("the primary does not answer yet: {e}"))?;
        return Ok(format!(
            "the primary cluster {} answers again",
            run.plan.spec.primary.cluster
        ));
    }
    for w in &d.injected {
        set_replicas(&r.primary, w, w.replicas, DRILL_MANAGER).await?;
    }
    Ok(format!(
        "replicas restored: {}",
        d.injected
            .iter()
            .map(|w| format!("{} {}/{} → {}", w.kind, w.namespace, w.name, w.replicas))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

async fn advance_drill(run: &mut Run<'_>, r: &Resolved) -> Result<(), DrError> {
    let Some(d) = run.status.drill.clone() else {
        return Ok(());
    };
    match d.stage.as_str() {
        "Injecting" => match inject(run, r).await {
            Ok(msg) => {
                let dr = run.status.drill.as_mut().expect("drill");
                drill_step(dr, "inject", engine::SUCCEEDED, msg);
                dr.injected_at = dr.steps.last().and_then(|s| s.started_at.clone());
                dr.stage = "Detecting".into();
                drill_step(dr, "detect", engine::RUNNING, String::new());
                run.save().await
            }
            Err(e) => {
                let dr = run.status.drill.as_mut().expect("drill");
                drill_step(dr, "inject", engine::FAILED, e);
                dr.stage = "Restoring".into();
                run.save().await
            }
        },
        "Detecting" => {
            let now = time::now();
            let injected = d
                .injected_at
                .as_deref()
                .and_then(|t| time::parse(t).ok())
                .unwrap_or(now);
            // Only what happened since the injection counts.
            let since = |s: Option<&str>| {
                s.and_then(|t| time::parse(t).ok())
                    .map(|t| time::format_millis(t.max(injected)))
            };
            let unreachable = since(run.status.primary_unreachable_since.as_deref());
            let degraded = since(run.status.primary_degraded_since.as_deref());
            match engine::detection_fires(
                &r.durations,
                unreachable.as_deref(),
                degraded.as_deref(),
                now,
            ) {
                Some((why, _)) => {
                    let dr = run.status.drill.as_mut().expect("drill");
                    drill_step(dr, "detect", engine::SUCCEEDED, why.clone());
                    dr.detected_at = Some(time::format_millis(now));
                    dr.stage = "FailingOver".into();
                    let incident = dr.incident.clone();
                    start_operation(
                        run,
                        r,
                        engine::FAILOVER,
                        &incident,
                        "drill",
                        Some(injected),
                        &why,
                    )
                    .await
                }
                None => {
                    let limit = r
                        .durations
                        .unreachable_for
                        .max(r.durations.degraded_for.unwrap_or_default())
                        + DETECTION_GRACE;
                    if time::since(d.injected_at.as_deref(), now) > limit {
                        let dr = run.status.drill.as_mut().expect("drill");
                        drill_step(
                            dr,
                            "detect",
                            engine::FAILED,
                            format!(
                                "the injected failure was not detected within {}s",
                                limit.as_secs()
                            ),
                        );
                        dr.stage = "Restoring".into();
                    }
                    run.save().await
                }
            }
        }
        "FailingOver" => {
            // The failover ran (finish_operation copied it); restore the primary.
            if d.failover.is_some() {
                run.status.drill.as_mut().expect("drill").stage = "Restoring".into();
                run.status.operation = None;
                return run.save().await;
            }
            Ok(())
        }
        "Restoring" => match restore(run, r).await {
            Ok(msg) => {
                let dr = run.status.drill.as_mut().expect("drill");
                drill_step(dr, "restore", engine::SUCCEEDED, msg);
                dr.stage = "FailingBack".into();
                let incident = dr.incident.clone();
                start_operation(
                    run,
                    r,
                    engine::FAILBACK,
                    &incident,
                    "drill",
                    None,
                    "the drill restores the primary",
                )
                .await
            }
            Err(e) => {
                let dr = run.status.drill.as_mut().expect("drill");
                drill_step(dr, "restore", engine::RUNNING, e);
                run.save().await
            }
        },
        "FailingBack" => {
            if d.failback.is_some() {
                run.status.drill.as_mut().expect("drill").stage = "Reporting".into();
                run.status.operation = None;
                return run.save().await;
            }
            Ok(())
        }
        "Reporting" => report(run, r).await,
        other => {
            tracing::warn!(
                "plan {}: unknown drill stage {other:?}; ending the drill",
                run.name()
            );
            run.status.drill = None;
            run.status.phase = Phase::PrimaryActive;
            run.save().await
        }
    }
}

async fn report(run: &mut Run<'_>, r: &Resolved) -> Result<(), DrError> {
    let Some(d) = run.status.drill.clone() else {
        return Ok(());
    };
    let report = engine::report::DrillReport::build(&run.plan, &d);
    let cm_name = engine::object_name(run.name(), &d.incident, "report");
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": cm_name, "namespace": run.plan.namespace(),
            "labels": {"mooring.dev/dr-plan": run.name(), "mooring.dev/dr-report": "drill"},
        },
        "data": {
            engine::report::REPORT_JSON_KEY: report.to_json(),
            engine::report::REPORT_MARKDOWN_KEY: report.to_markdown(),
            engine::report::REPORT_JUNIT_KEY: report.to_junit(),
        },
    });
    if let Err(e) = run.ctx.management.apply(&cm, COMPONENT, false).await {
        return Err(DrError::Cluster(format!(
            "writing the drill report {cm_name}: {e}"
        )));
    }
    let mut message = format!(
        "drill {} of plan {} {}: RTO {}, RPO {}; report in ConfigMap {cm_name}",
        d.incident,
        run.name(),
        if report.passed { "passed" } else { "failed" },
        report
            .rto_seconds
            .map(|s| format!("{s:.1}s"))
            .unwrap_or_else(|| "unknown".into()),
        report
            .rpo_seconds
            .map(|s| format!("{s:.1}s"))
            .unwrap_or_else(|| "unknown".into()),
    );
    if let Some(git) = run
        .plan
        .spec
        .drill
        .as_ref()
        .and_then(|d| d.report.as_ref())
        .and_then(|r| r.git.as_ref())
    {
        match commit_report(run.ctx, &run.plan, git, &d.incident, &report).await {
            Ok(at) => message.push_str(&format!("; committed to {at}")),
            Err(e) => message.push_str(&format!("; committing it to Git failed: {e}")),
        }
    }
    let summary = OperationSummary {
        incident: d.incident.clone(),
        started_at: d.started_at.clone(),
        finished_at: Some(time::format_millis(time::now())),
        passed: report.passed,
        rto_seconds: report.rto_seconds,
        rpo_seconds: report.rpo_seconds,
        message: message.clone(),
        report: Some(cm_name),
    };
    let prev = run.status.conditions.clone();
    set_condition(
        &mut run.status,
        summary_condition("LastDrill", &summary, &prev),
    );
    run.status.last_drill = Some(summary);
    run.status.drill = None;
    run.status.phase = Phase::PrimaryActive;
    run.save().await?;
    record(
        run,
        if report.passed {
            EventType::Normal
        } else {
            EventType::Warning
        },
        mooring_core::dr::DRILL_REPORT,
        &message,
        Some(&d.incident),
        first_app(r, Side::Standby),
    )
    .await;
    Ok(())
}

/// An Event about the plan, `related` to an Application (so notification subscriptions on
/// that app or its project receive it). With an incident, its name is derived from the
/// incident and the reason, so it is recorded once however often it is attempted.
async fn record(
    run: &Run<'_>,
    type_: EventType,
    reason: &str,
    message: &str,
    incident: Option<&str>,
    related: Option<&Application>,
) {
    let object = json!({
        "apiVersion": format!("{}/{}", mooring_core::dr::GROUP, mooring_core::dr::VERSION),
        "kind": mooring_core::dr::KIND,
        "metadata": run.plan.metadata,
    });
    let mut event = mooring_core::event::event(
        &object,
        type_,
        reason,
        message,
        COMPONENT,
        &time::now_rfc3339(),
    );
    if let Some(incident) = incident {
        let name = engine::object_name(run.name(), incident, &reason.to_lowercase());
        event["metadata"] = json!({"name": name, "namespace": run.plan.namespace()});
    }
    if let Some(app) = related {
        event["related"] = json!({
            "apiVersion": app.api_version, "kind": "Application",
            "name": app.name(), "namespace": app.namespace(),
        });
    }
    match run.ctx.management.create(&event).await {
        Ok(_) => {}
        Err(e) if e.to_string().contains("already exists") => {}
        Err(e) => tracing::warn!("recording event {reason} for plan {}: {e}", run.name()),
    }
}
