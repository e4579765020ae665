//! Automated rollback triggers: the `RollbackPolicy` loop.
//!
//! Every policy (see `mooring_core::rollback` for the YAML and `mooring_engine::rollback`
//! for the rule semantics) is evaluated on its interval against Prometheus
//! (`spec.prometheus.address`, else the controller's `prometheus_address`). The loop is
//! the only writer of the policy's `status`, and everything it must remember lives there:
//! each rule's breach timing and firing, and each guarded Application's recently healthy
//! revisions. A restarted controller therefore continues a breach in progress and never
//! fires twice for the same breach: the firing is written to `status` *before* any action
//! runs (at most once, like an alert notification that is not re-sent).
//!
//! When a rule fires with a rolling-back action, for every guarded Application:
//!
//! 1. if the app has an Argo Rollouts `Rollout` that is mid-update
//!    ([`mooring_engine::rollout::command::mid_update`]: `currentPodHash` differs from a
//!    known `stableRS`), the Rollout is aborted by setting `status.abort` — the rollout
//!    controller returns traffic to the stable version;
//! 2. otherwise the app is synced (an `operation.sync.revision`, or `revisions` — every
//!    source's commit — for an app with `spec.sources`, as `mooring app rollback` does)
//!    to the newest revision it was seen Synced and Healthy at while no rule
//!    breached, other than the one deployed now; with no such revision, nothing is synced
//!    and the policy status says so (condition `RollbackFailed`). A sync operation that is
//!    already running is not interrupted: the rollback sync is recorded as pending in the
//!    policy status and requested by the first evaluation after the operation ends;
//! 3. automated sync is suspended with the annotation `mooring.dev/auto-sync-suspended`
//!    (which the automated-sync decision honours) and an `AutoSyncSuspended` condition on
//!    the Application naming the policy, rule, value and threshold, so Git does not
//!    re-apply the bad version at once. Removing the annotation resumes automated sync
//!    (the loop then removes the condition); so does Git rendering the rolled-back
//!    revision again (a revert commit, by hand or by `spec.gitRevert`, a merged pull
//!    request: no change since that revision touches the app's render inputs, see
//!    [`crate::git_rollback::renders_same`]), which the loop notices and answers with an
//!    `AutoSyncResumed` Event.
//!
//! Every firing records a Kubernetes Event on the Application. `create_incident_and_rollback`
//! and `notify` also POST one JSON incident to `spec.incident.webhook` (retried with
//! backoff on 5xx and connection errors, in the background so the loop never waits on it).
//!
//! The webhook URL and `spec.prometheus.address` are written by whoever may create the
//! policy, so both go through the outbound client ([`crate::outbound`]; the controller's
//! own Prometheus excepted): the webhook URL is checked at every evaluation, and a refused
//! one is reported as the `IncidentWebhookRefused` condition (and nothing is sent when
//! a rule fires); a refused Prometheus address makes the rules' evaluation an error.

mod git;

use crate::outbound::{Outbound, OutboundError, OutboundRequest};
use crate::prometheus::{PromClient, PromValue};
use crate::{Context, ControllerError};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use mooring_core::app::{Application, ApplicationCondition, HealthStatusCode, SyncStatusCode};
use mooring_core::rollback::{
    ApplicationRollbackStatus, PendingRollback, PolicyCondition, RollbackPolicy,
    RollbackPolicyStatus, RollbackRecord, RuleStatus, SecretKeyRef, WebhookSpec,
    SUSPENDED_CONDITION, SUSPEND_ANNOTATION,
};
use mooring_core::time::now_rfc3339 as now;
use mooring_core::ResourceKey;
use mooring_engine::rollback::{
    self as engine, format_time, parse_time, BreachState, Evaluation, Measurement, Outcome, Rule,
};
use mooring_k8s::kube;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How often the loop looks for due policies.
const TICK: Duration = Duration::from_millis(250);
/// Longest a query may take (shorter when the policy's interval is).
const MAX_QUERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Incident webhook attempts (first try included) and the first backoff.
const WEBHOOK_ATTEMPTS: u32 = 6;
const WEBHOOK_BACKOFF: Duration = Duration::from_millis(500);
/// Largest incident webhook answer read (only its status matters).
const WEBHOOK_MAX_ANSWER: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("RollbackPolicy {policy}: {message}")]
    Write { policy: String, message: String },
    #[error("Application {app}: {message}")]
    App { app: String, message: String },
}

/// Start the RollbackPolicy loop.
pub fn start(ctx: Arc<Context>) -> Vec<tokio::task::JoinHandle<()>> {
    vec![tokio::spawn(run(ctx))]
}

async fn run(ctx: Arc<Context>) {
    let api: Api<DynamicObject> = Api::all_with(
        ctx.management.client().clone(),
        &mooring_k8s::resources::rollback_policy_resource(),
    );
    // When each policy (namespace/name) was last evaluated.
    let mut last: HashMap<String, Instant> = HashMap::new();
    loop {
        tokio::time::sleep(TICK).await;
        // Policies guard the Applications of their own namespace: only namespaces the
        // control plane reads Applications from count.
        let list = match api.list(&Default::default()).await {
            Ok(l) => l
                .items
                .into_iter()
                .filter(|o| ctx.reads(o))
                .collect::<Vec<_>>(),
            Err(e) => {
                tracing::debug!("listing RollbackPolicies: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // Deleted policies are forgotten.
        last.retain(|k, _| {
            list.iter().any(|o| {
                o.metadata
                    .namespace
                    .as_deref()
                    .zip(o.metadata.name.as_deref())
                    == k.split_once('/')
            })
        });
        let mut due = Vec::new();
        for o in list {
            let key = format!(
                "{}/{}",
                o.metadata.namespace.as_deref().unwrap_or_default(),
                o.metadata.name.as_deref().unwrap_or_default()
            );
            let policy = serde_json::to_value(&o)
                .and_then(serde_json::from_value::<RollbackPolicy>)
                .map_err(|e| e.to_string());
            let interval = match &policy {
                Ok(p) => engine::compile(&p.spec)
                    .map(|c| c.interval)
                    .unwrap_or(engine::DEFAULT_INTERVAL),
                Err(_) => engine::DEFAULT_INTERVAL,
            };
            if last.get(&key).is_some_and(|t| t.elapsed() < interval) {
                continue;
            }
            last.insert(key.clone(), Instant::now());
            due.push((key, o, policy));
        }
        let runs = due.into_iter().map(|(key, obj, policy)| {
            let ctx = ctx.clone();
            async move {
                let result = match policy {
                    Ok(p) => evaluate_policy(&ctx, &p).await,
                    Err(e) => write_invalid(&ctx, &obj, &format!("spec does not parse: {e}")).await,
                };
                if let Err(e) = result {
                    tracing::warn!("rollback policy {key}: {e}");
                }
            }
        });
        futures::future::join_all(runs).await;
    }
}

fn policy_api(ctx: &Context, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        ctx.management.client().clone(),
        ns,
        &mooring_k8s::resources::rollback_policy_resource(),
    )
}

async fn write_status(
    ctx: &Context,
    ns: &str,
    name: &str,
    status: &RollbackPolicyStatus,
) -> Result<(), RollbackError> {
    policy_api(ctx, ns)
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await
        .map(|_| ())
        .map_err(|e| RollbackError::Write {
            policy: format!("{ns}/{name}"),
            message: e.to_string(),
        })
}

fn ready(ok: bool, message: String, prev: &RollbackPolicyStatus) -> PolicyCondition {
    crate::conditions::policy_condition("Ready", ok, message, &prev.conditions)
}

/// A policy whose object does not even parse: say so in its status.
async fn write_invalid(
    ctx: &Context,
    obj: &DynamicObject,
    message: &str,
) -> Result<(), RollbackError> {
    let prev: RollbackPolicyStatus = obj
        .data
        .get("status")
        .cloned()
        .and_then(|s| serde_json::from_value(s).ok())
        .unwrap_or_default();
    if prev.conditions.iter().any(|c| c.message == message) {
        return Ok(());
    }
    let status = RollbackPolicyStatus {
        conditions: vec![ready(false, message.to_string(), &prev)],
        ..prev
    };
    write_status(
        ctx,
        obj.metadata.namespace.as_deref().unwrap_or_default(),
        obj.metadata.name.as_deref().unwrap_or_default(),
        &status,
    )
    .await
}

/// Turn a Prometheus answer into one measurement (also a DR plan's PromQL check's).
pub(crate) fn measurement(r: Result<PromValue, crate::prometheus::PromError>) -> Measurement {
    match r {
        Ok(PromValue::Vector(samples)) => {
            engine::reduce(&samples.iter().map(|s| s.value).collect::<Vec<_>>())
        }
        Ok(PromValue::Scalar(v)) => engine::reduce(&[v]),
        Ok(PromValue::String(s)) => {
            Measurement::Error(format!("the query returned a string ({s:?}), not a number"))
        }
        Ok(PromValue::Matrix(_)) => Measurement::Error(
            "the query returned a range vector; use an instant query (e.g. rate(…[5m]))".into(),
        ),
        Err(e) => Measurement::Error(e.to_string()),
    }
}

/// The applications a policy guards (same namespace).
async fn guarded_apps(ctx: &Context, p: &RollbackPolicy) -> Vec<Application> {
    crate::all_apps(ctx)
        .await
        .into_iter()
        .filter(|a| a.namespace() == p.namespace())
        .filter(|a| {
            let labels: BTreeMap<String, String> = a
                .metadata
                .get("labels")
                .cloned()
                .and_then(|l| serde_json::from_value(l).ok())
                .unwrap_or_default();
            p.spec.applications.matches(a.name(), &labels)
        })
        .map(|a| Application::clone(&a))
        .collect()
}

/// The revision deployed now: the last successful sync's, else the compared one. For an
/// app with `spec.sources` it is every source's commit, comma-separated (the form
/// [`Revisions`](mooring_core::app::Revisions) displays and [`sync_back`] reads back).
fn deployed_revision(app: &Application) -> Option<String> {
    let st = app.status.as_ref()?;
    let revisions = st
        .history
        .last()
        .map(|h| h.revisions())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| st.sync.revisions());
    (!revisions.is_empty()).then(|| revisions.to_string())
}

/// A recorded revision (as [`deployed_revision`] wrote it) as the operation's revisions:
/// one commit, or one per source of an app with `spec.sources`.
fn target_revisions(app: &Application, recorded: &str) -> mooring_core::app::Revisions {
    if app.has_multiple_sources() {
        mooring_core::app::Revisions::multi(recorded.split(',').map(str::to_string).collect())
    } else {
        mooring_core::app::Revisions::single(recorded)
    }
}

async fn evaluate_policy(ctx: &Context, p: &RollbackPolicy) -> Result<(), RollbackError> {
    let (ns, name) = (p.namespace().to_string(), p.name().to_string());
    let prev = p.status.clone().unwrap_or_default();
    let generation = p.metadata.get("generation").and_then(Value::as_i64);
    let policy = match engine::compile(&p.spec) {
        Ok(c) => c,
        Err(e) => {
            let msg = e.to_string();
            if prev.conditions.iter().any(|c| c.message == msg) {
                return Ok(());
            }
            let status = RollbackPolicyStatus {
                observed_generation: generation,
                conditions: vec![ready(false, msg, &prev)],
                ..prev
            };
            return write_status(ctx, &ns, &name, &status).await;
        }
    };
    let address = p
        .spec
        .prometheus
        .as_ref()
        .map(|x| x.address.clone())
        .or_else(|| ctx.options.prometheus_address.clone());
    let trusted = ctx
        .options
        .prometheus_address
        .as_deref()
        .and_then(|a| PromClient::new(a).ok());
    let client = match address.as_deref().map(PromClient::new) {
        Some(Ok(c)) if trusted.as_ref().is_some_and(|t| t.address() == c.address()) => Ok(c),
        Some(Ok(c)) => Ok(c.through(ctx.outbound.clone())),
        Some(Err(e)) => Err(e.to_string()),
        None => Err(
            "no Prometheus address: set spec.prometheus.address (or start the controller with one)"
                .to_string(),
        ),
    };
    let timeout = policy.interval.min(MAX_QUERY_TIMEOUT);
    let now_t = SystemTime::now();
    let mut rules = Vec::with_capacity(policy.rules.len());
    let mut evaluations = Vec::with_capacity(policy.rules.len());
    for rule in &policy.rules {
        let old = prev.rules.iter().find(|r| r.name == rule.name);
        let state = BreachState {
            breaching_since: parse_time(old.and_then(|r| r.breaching_since.as_deref())),
            fired_at: parse_time(old.and_then(|r| r.fired_at.as_deref())),
        };
        let (value, baseline) = match &client {
            Ok(c) => {
                let v = measurement(c.query(&rule.query, timeout).await);
                let b = match &rule.baseline_query {
                    Some(q) => Some(measurement(c.query(q, timeout).await)),
                    None => None,
                };
                (v, b)
            }
            Err(e) => (Measurement::Error(e.clone()), None),
        };
        let e = engine::evaluate(rule, state, &value, baseline.as_ref(), now_t);
        ctx.metrics.record_rollback_evaluation(
            &ns,
            &name,
            &rule.name,
            e.outcome.state(),
            (e.outcome == Outcome::Fire).then_some(rule.action.as_str()),
            rule.action.as_str(),
        );
        rules.push(RuleStatus {
            name: rule.name.clone(),
            value: e.value,
            baseline: e.baseline,
            threshold: e.threshold,
            breaching_since: e.state.breaching_since.map(format_time),
            fired_at: e.state.fired_at.map(format_time),
            last_evaluated: Some(format_time(now_t)),
            state: e.outcome.state().into(),
            message: e.message.clone(),
        });
        evaluations.push(e);
    }
    let breaching = evaluations.iter().any(|e| {
        matches!(
            e.outcome,
            Outcome::Pending { .. } | Outcome::Fire | Outcome::Firing
        )
    });
    let errors: Vec<String> = policy
        .rules
        .iter()
        .zip(&evaluations)
        .filter(|(_, e)| e.outcome == Outcome::Error)
        .map(|(r, e)| format!("{}: {}", r.name, e.message))
        .collect();
    let apps = guarded_apps(ctx, p).await;
    // Per-app memory: healthy revisions seen while nothing breached.
    let mut app_status: Vec<ApplicationRollbackStatus> = apps
        .iter()
        .map(|a| {
            let mut s = prev
                .applications
                .iter()
                .find(|x| x.name == a.name())
                .cloned()
                .unwrap_or_else(|| ApplicationRollbackStatus {
                    name: a.name().to_string(),
                    ..Default::default()
                });
            let st = a.status.as_ref();
            let healthy = st.is_some_and(|s| {
                s.sync.status == SyncStatusCode::Synced
                    && s.health.status == HealthStatusCode::Healthy
            });
            if healthy && !breaching && !crate::operation::in_progress(a) {
                let rev = st.map(|s| s.sync.revisions()).unwrap_or_default();
                if !rev.is_empty() {
                    engine::record_healthy(&mut s.healthy_revisions, &rev.to_string());
                }
            }
            s
        })
        .collect();
    let fired: Vec<(&Rule, &Evaluation)> = policy
        .rules
        .iter()
        .zip(&evaluations)
        .filter(|(_, e)| e.outcome == Outcome::Fire)
        .collect();
    let mut conditions = vec![match (&client, errors.is_empty()) {
        (Err(e), _) => ready(false, e.clone(), &prev),
        (Ok(_), false) => ready(false, errors.join("; "), &prev),
        (Ok(c), true) => ready(
            true,
            format!(
                "{} rule(s) evaluated against {} for {} application(s)",
                policy.rules.len(),
                c.address(),
                apps.len()
            ),
            &prev,
        ),
    }];
    conditions.extend(
        prev.conditions
            .iter()
            .filter(|c| c.type_ != "Ready" && c.type_ != WEBHOOK_REFUSED)
            .cloned(),
    );
    let webhook_refused = webhook_refusal(ctx, p).await;
    if let Some(message) = &webhook_refused {
        let kept = prev
            .conditions
            .iter()
            .find(|c| c.type_ == WEBHOOK_REFUSED && &c.message == message);
        conditions.push(PolicyCondition {
            type_: WEBHOOK_REFUSED.into(),
            status: "True".into(),
            message: message.clone(),
            last_transition_time: kept
                .and_then(|c| c.last_transition_time.clone())
                .or_else(|| Some(now())),
        });
    }
    let mut status = RollbackPolicyStatus {
        observed_generation: generation,
        conditions,
        rules,
        applications: app_status.clone(),
    };
    // Deferred rollback syncs whose app's operation has ended are taken out now.
    let mut due: Vec<(usize, PendingRollback)> = Vec::new();
    for (i, (app, s)) in apps.iter().zip(status.applications.iter_mut()).enumerate() {
        if s.pending_rollback.is_some() && !crate::operation::in_progress(app) {
            if let Some(pending) = s.pending_rollback.take() {
                due.push((i, pending));
            }
        }
    }
    app_status.clone_from(&status.applications);
    // The firing (and the taking of a deferred rollback) is recorded before anything is
    // done: a crash after this point loses the action, but an action never runs twice.
    write_status(ctx, &ns, &name, &status).await?;
    for (i, pending) in &due {
        let (app, s) = (&apps[*i], &mut app_status[*i]);
        let record = match sync_back(ctx, p, app, &pending.rule, s).await {
            Ok(r) => r,
            Err(err) => failed_record(&pending.rule, app, err),
        };
        if record.mode == "syncRevision" {
            if let Err(err) = suspend(ctx, p, app, &pending.rule, &pending.reason, &record).await {
                tracing::warn!("suspending auto-sync of {}: {err}", app.name());
            }
        }
        s.last_rollback = Some(record);
    }
    for (i, pending) in &due {
        git::git_revert_once(
            ctx,
            p,
            &apps[*i],
            &pending.reason,
            &mut app_status,
            *i,
            &status,
        )
        .await;
    }
    if fired.is_empty() {
        if due.is_empty() {
            sync_suspension_conditions(ctx, &apps, &app_status, p).await;
            if report_completions(ctx, &apps, &mut app_status).await {
                status.applications = app_status;
                return write_status(ctx, &ns, &name, &status).await;
            }
            return Ok(());
        }
        status.applications = app_status;
        return write_status(ctx, &ns, &name, &status).await;
    }
    // One rollback per app per evaluation, even when several rules fire at once (or a
    // deferred rollback sync was just requested).
    let mut rolled_back: std::collections::BTreeSet<String> = due
        .iter()
        .map(|(i, _)| apps[*i].name().to_string())
        .collect();
    let mut reverts: Vec<(String, String)> = Vec::new();
    for (rule, e) in fired {
        for (app, s) in apps.iter().zip(app_status.iter_mut()) {
            let rolls_back_now =
                rule.action.rolls_back() && rolled_back.insert(app.name().to_string());
            let record = if rolls_back_now {
                match roll_back(ctx, p, app, rule, e, s).await {
                    Ok(r) => r,
                    Err(err) => failed_record(&rule.name, app, err),
                }
            } else {
                RollbackRecord {
                    rule: rule.name.clone(),
                    at: now(),
                    mode: "none".into(),
                    from_revision: deployed_revision(app),
                    to_revision: None,
                    message: if rule.action.rolls_back() {
                        "rolled back by another rule of this evaluation".into()
                    } else {
                        "notify only".into()
                    },
                    ..Default::default()
                }
            };
            if rolls_back_now && matches!(record.mode.as_str(), "none" | "failed") {
                status.conditions.retain(|c| c.type_ != "RollbackFailed");
                status.conditions.push(PolicyCondition {
                    type_: "RollbackFailed".into(),
                    status: "True".into(),
                    message: format!("{}: {}", app.name(), record.message),
                    last_transition_time: Some(now()),
                });
            }
            emit_event(ctx, p, app, rule, e, &record).await;
            if rule.action.creates_incident() {
                if let Some(w) = p.spec.incident.as_ref().and_then(|i| i.webhook.clone()) {
                    let body = incident(p, app, rule, e, &record);
                    match resolve_headers(ctx, p.namespace(), w).await {
                        Ok(_) if webhook_refused.is_some() => tracing::warn!(
                            "incident webhook of RollbackPolicy {}/{} not sent: {}",
                            p.namespace(),
                            p.name(),
                            webhook_refused.as_deref().unwrap_or_default()
                        ),
                        Ok(w) => {
                            tokio::spawn(post_incident(ctx.outbound.clone(), w, body));
                        }
                        Err(m) => tracing::warn!(
                            "incident webhook of RollbackPolicy {}/{}: {m}",
                            p.namespace(),
                            p.name()
                        ),
                    }
                }
            }
            if rolls_back_now {
                if matches!(record.mode.as_str(), "syncRevision" | "abortRollout") {
                    status.conditions.retain(|c| c.type_ != "RollbackFailed");
                }
                s.last_rollback = Some(record);
                reverts.push((app.name().to_string(), breach_text(rule, e)));
            }
        }
    }
    for (app_name, reason) in &reverts {
        if let Some(i) = apps.iter().position(|a| a.name() == app_name) {
            git::git_revert_once(ctx, p, &apps[i], reason, &mut app_status, i, &status).await;
        }
    }
    status.applications = app_status;
    write_status(ctx, &ns, &name, &status).await
}

/// Why a rule fired, in one sentence.
fn breach_text(rule: &Rule, e: &Evaluation) -> String {
    let value = e.value.map(|v| v.to_string()).unwrap_or_default();
    let threshold = e.threshold.map(|v| v.to_string()).unwrap_or_default();
    let baseline = e
        .baseline
        .map(|b| format!(", baseline {b}"))
        .unwrap_or_default();
    format!(
        "rule {} ({}): value {value} against threshold {threshold}{baseline}",
        rule.name,
        rule.describe()
    )
}

fn failed_record(rule: &str, app: &Application, err: RollbackError) -> RollbackRecord {
    RollbackRecord {
        rule: rule.to_string(),
        at: now(),
        mode: "failed".into(),
        from_revision: deployed_revision(app),
        to_revision: None,
        message: err.to_string(),
        ..Default::default()
    }
}

fn app_err(app: &Application, message: String) -> RollbackError {
    RollbackError::App {
        app: format!("{}/{}", app.namespace(), app.name()),
        message,
    }
}

/// Roll one Application back and suspend its automated sync.
async fn roll_back(
    ctx: &Context,
    p: &RollbackPolicy,
    app: &Application,
    rule: &Rule,
    e: &Evaluation,
    s: &mut ApplicationRollbackStatus,
) -> Result<RollbackRecord, RollbackError> {
    let reason = breach_text(rule, e);
    let record = if let Some(rollout) = active_rollout(ctx, app).await {
        abort_rollout(ctx, app, &rollout)
            .await
            .map_err(|m| app_err(app, m))?;
        RollbackRecord {
            rule: rule.name.clone(),
            at: now(),
            mode: "abortRollout".into(),
            from_revision: deployed_revision(app),
            // The stable version the Rollout returns to: the last revision seen healthy.
            to_revision: engine::rollback_target(
                &s.healthy_revisions,
                deployed_revision(app).as_deref(),
            ),
            message: format!("aborted Rollout {rollout}"),
            ..Default::default()
        }
    } else if crate::operation::in_progress(app) {
        // A running sync is not interrupted (its end would clear a new request): the
        // rollback sync is requested by the first evaluation after it ends.
        s.pending_rollback = Some(PendingRollback {
            rule: rule.name.clone(),
            reason: reason.clone(),
            since: now(),
        });
        RollbackRecord {
            rule: rule.name.clone(),
            at: now(),
            mode: "pendingSync".into(),
            from_revision: deployed_revision(app),
            to_revision: None,
            message: "a sync operation is running; the rollback sync is requested when it ends"
                .into(),
            ..Default::default()
        }
    } else {
        sync_back(ctx, p, app, &rule.name, s).await?
    };
    if record.mode == "none" {
        return Ok(record);
    }
    suspend(ctx, p, app, &rule.name, &reason, &record)
        .await
        .map_err(|e| app_err(app, e.to_string()))?;
    Ok(record)
}

/// Sync the app to its newest healthy revision other than the deployed one (as
/// `mooring app rollback` does), forgetting the deployed one as a target.
async fn sync_back(
    ctx: &Context,
    p: &RollbackPolicy,
    app: &Application,
    rule: &str,
    s: &mut ApplicationRollbackStatus,
) -> Result<RollbackRecord, RollbackError> {
    let from = deployed_revision(app);
    let mut record = RollbackRecord {
        rule: rule.to_string(),
        at: now(),
        mode: "none".into(),
        from_revision: from.clone(),
        to_revision: None,
        message: String::new(),
        ..Default::default()
    };
    let Some(to) = engine::rollback_target(&s.healthy_revisions, from.as_deref()) else {
        record.message = format!(
            "no earlier revision was seen Synced and Healthy (known: {:?}); nothing to roll back to",
            s.healthy_revisions
        );
        return Ok(record);
    };
    let sp = app.spec.sync_policy.as_ref();
    let prune = sp
        .and_then(|sp| sp.automated.as_ref())
        .is_some_and(|a| a.prune);
    let options = sp.map(|sp| sp.sync_options.clone()).unwrap_or_default();
    let mut sync = json!({"prune": prune, "syncOptions": options});
    target_revisions(app, &to).write_into(&mut sync);
    let op = json!({
        "sync": sync,
        "initiatedBy": {"username": format!("rollback-policy:{}/{}", p.namespace(), p.name())},
    });
    crate::operation::request(ctx, app, op)
        .await
        .map_err(|e| app_err(app, e.to_string()))?;
    record.mode = "syncRevision".into();
    record.message = format!("syncing revision {to}");
    record.to_revision = Some(to);
    // The bad revision is not a rollback target any more.
    if let Some(f) = &from {
        s.healthy_revisions.retain(|r| r != f);
    }
    Ok(record)
}

fn suspension_message(
    p: &RollbackPolicy,
    app: &Application,
    reason: &str,
    r: &RollbackRecord,
) -> String {
    let what = match r.mode.as_str() {
        "syncRevision" => format!(
            "rolled back from {} to {}",
            r.from_revision.as_deref().unwrap_or("?"),
            r.to_revision.as_deref().unwrap_or("?")
        ),
        _ => r.message.clone(),
    };
    format!(
        "automated sync suspended by RollbackPolicy {}/{}: {reason}; {what}. Resume with `kubectl annotate application {} -n {} {SUSPEND_ANNOTATION}-`",
        p.namespace(),
        p.name(),
        app.name(),
        app.namespace(),
    )
}

async fn suspend(
    ctx: &Context,
    p: &RollbackPolicy,
    app: &Application,
    rule: &str,
    reason: &str,
    r: &RollbackRecord,
) -> Result<(), ControllerError> {
    let message = suspension_message(p, app, reason, r);
    let mut conds: Vec<ApplicationCondition> = app
        .status
        .iter()
        .flat_map(|s| s.conditions.iter())
        .filter(|c| c.type_ != SUSPENDED_CONDITION)
        .cloned()
        .collect();
    conds.push(ApplicationCondition {
        type_: SUSPENDED_CONDITION.into(),
        message: message.clone(),
        last_transition_time: Some(now()),
    });
    let reason = format!(
        "RollbackPolicy {}/{} rule {} at {}",
        p.namespace(),
        p.name(),
        rule,
        r.at
    );
    ctx.patch_app(
        app,
        json!({
            "metadata": {"annotations": {SUSPEND_ANNOTATION: reason}},
            "status": {"conditions": conds},
        }),
    )
    .await
}

/// Keep the `AutoSyncSuspended` condition in line with the annotation: a reconcile that
/// raced the suspension may have dropped the condition, and a user who removed the
/// annotation has resumed automated sync. A suspension this policy made after rolling
/// back (to a revision, or by aborting a Rollout) ends by itself once Git renders the
/// good revision again ([`git::git_renders`]: a revert by hand or by `spec.gitRevert`, a
/// merged pull request), with an `AutoSyncResumed` Event.
async fn sync_suspension_conditions(
    ctx: &Context,
    apps: &[Application],
    statuses: &[ApplicationRollbackStatus],
    p: &RollbackPolicy,
) {
    for (app, s) in apps.iter().zip(statuses) {
        let annotated = app
            .metadata
            .pointer("/annotations")
            .and_then(|a| a.get(SUSPEND_ANNOTATION))
            .and_then(Value::as_str);
        let ours = |reason: &str| {
            reason.starts_with(&format!("RollbackPolicy {}/{} ", p.namespace(), p.name()))
        };
        if let (Some(reason), Some(r)) = (annotated, &s.last_rollback) {
            if let (true, "syncRevision" | "abortRollout", Some(from), Some(to)) = (
                ours(reason),
                r.mode.as_str(),
                r.from_revision.as_deref(),
                r.to_revision.as_deref(),
            ) {
                if git::git_renders(ctx, app, from, to).await {
                    resume(ctx, app, from, to).await;
                    continue;
                }
            }
        }
        let conds: Vec<ApplicationCondition> = app
            .status
            .iter()
            .flat_map(|s| s.conditions.iter())
            .cloned()
            .collect();
        let has = conds.iter().any(|c| c.type_ == SUSPENDED_CONDITION);
        let patch = match annotated {
            None if has => {
                let rest: Vec<_> = conds
                    .into_iter()
                    .filter(|c| c.type_ != SUSPENDED_CONDITION)
                    .collect();
                json!({"status": {"conditions": rest}})
            }
            Some(reason) if !has && ours(reason) => {
                let mut all = conds;
                all.push(ApplicationCondition {
                    type_: SUSPENDED_CONDITION.into(),
                    message: format!(
                        "automated sync suspended: {reason}. Resume with `kubectl annotate application {} -n {} {SUSPEND_ANNOTATION}-`",
                        app.name(),
                        app.namespace()
                    ),
                    last_transition_time: Some(now()),
                });
                json!({"status": {"conditions": all}})
            }
            _ => continue,
        };
        if let Err(e) = ctx.patch_app(app, patch).await {
            tracing::warn!("updating {SUSPENDED_CONDITION} of {}: {e}", app.name());
        }
    }
}

/// The app's Rollout that is mid-update, if any.
async fn active_rollout(ctx: &Context, app: &Application) -> Option<ResourceKey> {
    let cluster = ctx.cluster_for(&app.spec.destination).ok()?;
    let rollouts = app
        .status
        .iter()
        .flat_map(|s| s.resources.iter())
        .filter(|r| r.group == "argoproj.io" && r.kind == "Rollout");
    for r in rollouts {
        let key = ResourceKey::new(&r.group, &r.kind, &r.namespace, &r.name);
        let live = match cluster.get("argoproj.io/v1alpha1", &key).await {
            Ok(Some(l)) => l,
            _ => continue,
        };
        if mooring_engine::rollout::command::mid_update(&live) {
            return Some(key);
        }
    }
    None
}

async fn abort_rollout(ctx: &Context, app: &Application, key: &ResourceKey) -> Result<(), String> {
    let cluster = ctx
        .cluster_for(&app.spec.destination)
        .map_err(|e| e.to_string())?;
    let api: Api<DynamicObject> = Api::namespaced_with(
        cluster.client().clone(),
        &key.namespace,
        &mooring_k8s::resources::rollout_resource(),
    );
    let patch = Patch::Merge(mooring_engine::rollout::command::abort_status());
    match api
        .patch_status(&key.name, &PatchParams::default(), &patch)
        .await
    {
        Ok(_) => Ok(()),
        // A Rollout CRD without the status subresource: the status is on the object.
        Err(kube::Error::Api(s)) if s.code == 404 => api
            .patch(&key.name, &PatchParams::default(), &patch)
            .await
            .map(|_| ())
            .map_err(|e| format!("aborting {key}: {e}")),
        Err(e) => Err(format!("aborting {key}: {e}")),
    }
}

/// Tell the end of each rollback sync once: `RollbackCompleted` when the app is at the
/// target revision, applied and Healthy, `RollbackFailed` when that sync failed or
/// deployed something else (as `mooring app rollback` judges:
/// [`mooring_engine::rollback::verify::progress`]). Returns whether a record changed.
async fn report_completions(
    ctx: &Context,
    apps: &[Application],
    statuses: &mut [ApplicationRollbackStatus],
) -> bool {
    use mooring_engine::rollback::verify::{progress, RollbackProgress};
    let mut changed = false;
    for (app, s) in apps.iter().zip(statuses.iter_mut()) {
        let Some(r) = s.last_rollback.as_mut() else {
            continue;
        };
        let (Some(to), "syncRevision", None) = (
            r.to_revision.clone(),
            r.mode.as_str(),
            r.completed_at.as_ref(),
        ) else {
            continue;
        };
        let from = r.from_revision.clone().unwrap_or_default();
        let (type_, reason, message) =
            match progress(app, "", &mooring_core::app::Revisions::single(&to)) {
                RollbackProgress::Pending(_) => continue,
                RollbackProgress::Done => (
                    crate::events::EventType::Normal,
                    mooring_core::rollback::COMPLETED_REASON,
                    format!("rolled back from {from} to {to}: Synced and Healthy"),
                ),
                RollbackProgress::Failed(why) => (
                    crate::events::EventType::Warning,
                    mooring_core::rollback::FAILED_REASON,
                    format!("rollback from {from} to {to} failed: {why}"),
                ),
            };
        r.completed_at = Some(now());
        changed = true;
        let object = json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": app.metadata,
        });
        crate::events::record(ctx, &object, type_, reason, &message, "mooring-rollback").await;
    }
    changed
}

/// End a suspension because Git caught up: the annotation and the condition go, and an
/// Event says why.
async fn resume(ctx: &Context, app: &Application, from: &str, to: &str) {
    let rest: Vec<ApplicationCondition> = app
        .status
        .iter()
        .flat_map(|s| s.conditions.iter())
        .filter(|c| c.type_ != SUSPENDED_CONDITION)
        .cloned()
        .collect();
    let patch = json!({
        "metadata": {"annotations": {SUSPEND_ANNOTATION: null}},
        "status": {"conditions": rest},
    });
    if let Err(e) = ctx.patch_app(app, patch).await {
        tracing::warn!("resuming automated sync of {}: {e}", app.name());
        return;
    }
    let head = app
        .status
        .as_ref()
        .map(|s| s.sync.revisions().to_string())
        .unwrap_or_default();
    let object = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": app.metadata,
    });
    crate::events::record(
        ctx,
        &object,
        crate::events::EventType::Normal,
        "AutoSyncResumed",
        &format!(
            "automated sync resumed: Git's head {head} renders what the rolled-back revision {to} rendered (the bad revision was {from})"
        ),
        "mooring-rollback",
    )
    .await;
}

/// A Warning Event on the Application (the management cluster), as kubectl describes it.
async fn emit_event(
    ctx: &Context,
    p: &RollbackPolicy,
    app: &Application,
    rule: &Rule,
    e: &Evaluation,
    r: &RollbackRecord,
) {
    let reason = if rule.action.rolls_back() {
        "RollbackTriggered"
    } else {
        "SLOBreach"
    };
    let message = format!(
        "RollbackPolicy {}/{} {}: {}; {}",
        p.namespace(),
        p.name(),
        rule.action.as_str(),
        breach_text(rule, e),
        if r.message.is_empty() {
            r.mode.clone()
        } else {
            r.message.clone()
        }
    );
    let object = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "metadata": app.metadata,
    });
    crate::events::record(
        ctx,
        &object,
        crate::events::EventType::Warning,
        reason,
        &message,
        "mooring-rollback",
    )
    .await;
}

/// The policy condition naming an incident webhook URL the outbound rule refuses.
pub const WEBHOOK_REFUSED: &str = "IncidentWebhookRefused";

/// Why the policy's incident webhook URL would be refused now (checked at every
/// evaluation, so the admin sees it before a rule fires), if it would.
async fn webhook_refusal(ctx: &Context, p: &RollbackPolicy) -> Option<String> {
    let w = p.spec.incident.as_ref()?.webhook.as_ref()?;
    let url = match reqwest::Url::parse(w.url.trim()) {
        Ok(u) => u,
        Err(e) => return Some(format!("incident webhook url `{}`: {e}", w.url)),
    };
    match ctx.outbound.admit(&url, "").await {
        Ok(_) => None,
        Err(e @ (OutboundError::Refused { .. } | OutboundError::Url { .. })) => {
            Some(format!("incident webhook: {e}"))
        }
        // Resolution failures may be transient: the POST reports them.
        Err(_) => None,
    }
}

/// The incident webhook's JSON body.
pub fn incident(
    p: &RollbackPolicy,
    app: &Application,
    rule: &Rule,
    e: &Evaluation,
    r: &RollbackRecord,
) -> Value {
    json!({
        "kind": "MooringIncident",
        "policy": {"namespace": p.namespace(), "name": p.name()},
        "application": {"namespace": app.namespace(), "name": app.name()},
        "rule": rule.name,
        "query": rule.query,
        "relation": rule.relation.describe(rule.operator),
        "for": format!("{:?}", rule.for_),
        "value": e.value,
        "threshold": e.threshold,
        "baseline": e.baseline,
        "action": rule.action.as_str(),
        "rollback": {
            "mode": r.mode,
            "fromRevision": r.from_revision,
            "toRevision": r.to_revision,
            "message": r.message,
        },
        "firedAt": e.state.fired_at.map(format_time),
        "message": breach_text(rule, e),
    })
}

/// Replace `valueFrom.secretKeyRef` header values with the Secret's (read now, so a
/// rotated token is used by the next incident). The values are never logged.
///
/// Trust (deliberate): the Secret is read from the RollbackPolicy's own namespace only —
/// a `secretKeyRef` has no namespace field — so a policy can use only Secrets its author
/// could already read there (the control plane's for the admin's policies, a tenant's own
/// namespace for a policy in an allowed application namespace), as a Pod's `secretKeyRef`
/// does in Kubernetes. Where the value may be sent is the outbound client's concern.
async fn resolve_headers(
    ctx: &Context,
    ns: &str,
    mut w: WebhookSpec,
) -> Result<WebhookSpec, String> {
    for h in &mut w.headers {
        let Some(from) = h.value_from.take() else {
            continue;
        };
        let value = secret_value(ctx, ns, &from.secret_key_ref)
            .await
            .map_err(|e| format!("header {}: {e}", h.name))?;
        if value.contains(['\r', '\n']) {
            return Err(format!("header {}: the Secret's value spans lines", h.name));
        }
        h.value = value;
    }
    Ok(w)
}

/// One key of a Secret in `ns`, as trimmed text.
async fn secret_value(ctx: &Context, ns: &str, r: &SecretKeyRef) -> Result<String, String> {
    use mooring_k8s::k8s_openapi::api::core::v1::Secret;
    let secrets: Api<Secret> = Api::namespaced(ctx.management.client().clone(), ns);
    let secret = secrets
        .get_opt(&r.name)
        .await
        .map_err(|e| format!("Secret {ns}/{}: {e}", r.name))?
        .ok_or_else(|| format!("Secret {ns}/{} not found", r.name))?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&r.key))
        .map(|b| b.0.clone())
        .ok_or_else(|| format!("Secret {ns}/{} has no key {}", r.name, r.key))?;
    let value = String::from_utf8(bytes)
        .map_err(|_| format!("Secret {ns}/{} key {} is not text", r.name, r.key))?;
    Ok(value.trim().to_string())
}

/// POST the incident through the outbound client, retrying 5xx answers and connection
/// errors with exponential backoff (a refused address is not retried). Returns the final
/// HTTP status (or the last error).
pub async fn post_incident(outbound: Outbound, w: WebhookSpec, body: Value) -> Result<u16, String> {
    let mut backoff = WEBHOOK_BACKOFF;
    let mut last = String::new();
    for attempt in 1..=WEBHOOK_ATTEMPTS {
        let mut req = OutboundRequest::new(reqwest::Method::POST, w.url.trim());
        req.timeout = Duration::from_secs(10);
        req.max_body = WEBHOOK_MAX_ANSWER;
        req.body = Some(body.to_string().into_bytes());
        req.headers = std::iter::once(("content-type".to_string(), "application/json".to_string()))
            .chain(w.headers.iter().map(|h| (h.name.clone(), h.value.clone())))
            .collect();
        match outbound.send(req).await {
            Ok(resp) if resp.status >= 500 => {
                last = format!("HTTP {}", resp.status);
            }
            Ok(resp) => {
                if !(200..300).contains(&resp.status) {
                    tracing::warn!("incident webhook {} answered HTTP {}", w.url, resp.status);
                }
                return Ok(resp.status);
            }
            Err(e @ (OutboundError::Refused { .. } | OutboundError::Url { .. })) => {
                tracing::warn!("incident webhook not sent: {e}");
                return Err(e.to_string());
            }
            // The POST was answered (with more than an incident answer needs): not resent.
            Err(e @ OutboundError::TooLarge { .. }) => {
                tracing::warn!("incident webhook: {e}");
                return Err(e.to_string());
            }
            Err(e) => last = e.to_string(),
        }
        tracing::debug!(
            "incident webhook {} attempt {attempt}: {last}; retrying",
            w.url
        );
        if attempt < WEBHOOK_ATTEMPTS {
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }
    tracing::warn!(
        "incident webhook {} failed after {WEBHOOK_ATTEMPTS} attempts: {last}",
        w.url
    );
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prometheus::{PromError, Sample};

    #[test]
    fn multi_source_apps_roll_back_every_source() {
        let app = |spec: Value, status: Value| -> Application {
            serde_json::from_value(json!({"metadata": {"name": "a", "namespace": "argocd"},
                "spec": spec, "status": status}))
            .expect("app")
        };
        let dest = json!({"server": "https://kubernetes.default.svc", "namespace": "ml"});
        let multi = app(
            json!({"destination": dest, "sources": [
                {"repoURL": "https://g/a.git", "path": "a"}, {"repoURL": "https://g/b.git", "path": "b"}]}),
            json!({"sync": {"status": "Synced", "revisions": ["a1", "b1"]},
                   "history": [{"id": 0, "revisions": ["a0", "b0"]}]}),
        );
        assert_eq!(deployed_revision(&multi).as_deref(), Some("a0,b0"));
        let mut sync = json!({});
        target_revisions(&multi, "a0,b0").write_into(&mut sync);
        assert_eq!(sync, json!({"revision": null, "revisions": ["a0", "b0"]}));
        let single = app(
            json!({"destination": dest, "source": {"repoURL": "https://g/a.git", "path": "a"}}),
            json!({"sync": {"status": "Synced", "revision": "c1"}}),
        );
        assert_eq!(deployed_revision(&single).as_deref(), Some("c1"));
        let mut sync = json!({});
        target_revisions(&single, "c0").write_into(&mut sync);
        assert_eq!(sync, json!({"revision": "c0", "revisions": null}));
        let fresh = app(
            json!({"destination": dest, "source": {"repoURL": "https://g/a.git"}}),
            json!({}),
        );
        assert_eq!(deployed_revision(&fresh), None);
    }

    #[test]
    fn prometheus_answers_reduce_to_one_measurement() {
        let sample = |v| Sample {
            labels: Default::default(),
            value: v,
        };
        assert_eq!(
            measurement(Ok(PromValue::Vector(vec![sample(0.2)]))),
            Measurement::Value(0.2)
        );
        assert!(matches!(
            measurement(Ok(PromValue::Vector(vec![]))),
            Measurement::NoData(_)
        ));
        assert!(matches!(
            measurement(Ok(PromValue::Scalar(f64::NAN))),
            Measurement::NoData(_)
        ));
        assert!(matches!(
            measurement(Ok(PromValue::Vector(vec![sample(1.0), sample(2.0)]))),
            Measurement::Error(_)
        ));
        assert!(matches!(
            measurement(Ok(PromValue::String("x".into()))),
            Measurement::Error(_)
        ));
        assert!(matches!(
            measurement(Err(PromError::Timeout(Duration::from_secs(1)))),
            Measurement::Error(m) if m.contains("timed out")
        ));
    }
}
