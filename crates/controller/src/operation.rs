//! The sync operation: a resumable state machine persisted in `status.operationState`.
//!
//! A sync is requested by setting the Application's `operation` field (the CLI's
//! `app sync`, or automation), exactly as in Argo CD. The controller then:
//!
//! 1. renders the operation's revision and validates every manifest (identity,
//!    duplicates, annotations; kinds the cluster does not serve must be defined by a CRD in
//!    the same sync, or carry `SkipDryRunOnMissingResource=true`; server-side dry run of
//!    every object whose kind is served) and reviews it against the Gatekeeper constraints
//!    in force ([`crate::policy`]) — any failure or `deny` violation ends the operation
//!    with nothing applied;
//! 2. plans the steps ([`mooring_engine::sync::plan`]) and stores the plan's skeleton (keys
//!    and task kinds, not the manifests) in `operationState`, so the step indices stay
//!    stable even as prunes change the live state;
//! 3. executes one step at a time — submit, then wait as gitops-engine does
//!    ([`mooring_engine::sync::step_wait`]: health and hook completion between steps,
//!    hooks only after the last step, which otherwise succeeds once applied) — and writes
//!    `operationState` after every transition. A controller killed at any point re-reads
//!    the state and continues at the first unfinished step; hook objects carry the
//!    operation id, so a hook created before the crash is found, not created twice. What
//!    a step submits is prepared against the live state then: `RespectIgnoreDifferences`
//!    keeps ignored fields' live values, the namespace of `CreateNamespace` is only
//!    created when missing (applied with `managedNamespaceMetadata` when that is set),
//!    and a step with `Prune=confirm` prunes waits for the approval annotation.
//!
//! Before planning, `FailOnSharedResource=true` fails the sync if a resource is tracked
//! by another application. While the operation runs, the reconcile keeps refreshing the
//! comparison (`status.sync`, `resources`, `health`); only the operation writes
//! `status.operationState` (both are merge patches of the Application).
//!
//! On failure the SyncFail hooks run, then the sync policy's retry (limit, backoff with
//! factor and maximum) starts the operation again; on success a history entry is added and
//! `operation` cleared.

use crate::conditions::now;
use crate::crash;
use crate::metrics::{response_code, K8sRequest, Stage};
use crate::state::{self, desired_state, Compared};
use crate::{Context, ControllerError};
use mooring_core::app::{
    sync_option, Application, HealthStatusCode, Operation, OperationPhase, OperationState,
    ResourceResult, RevisionHistory, Revisions, SyncOperationResult, SyncStatusCode,
};
use mooring_core::time::parse_go_duration;
use mooring_core::ResourceKey;
use mooring_engine::sync::{
    self, next_action, HookDeletePolicy, NextAction, PlanInput, SyncPlan, SyncState, TaskKind,
};
use mooring_k8s::cluster::ClusterClient;
use serde_json::{json, Value};
use std::collections::BTreeSet;

pub const OPERATION_ANNOTATION: &str = "mooring.dev/operation-id";

pub enum OperationOutcome {
    InProgress,
    Finished,
}

/// Whether the app has an operation requested or running (it is driven before anything
/// else, and nothing else may start one meanwhile).
pub fn in_progress(app: &Application) -> bool {
    app.operation.is_some() || stored_state(app).is_some_and(|s| s.phase.is_running())
}

/// The app's `status.operationState`, typed. An unreadable one (a field of the wrong
/// type, written by someone else) is reported and treated as no state: a new operation
/// then replaces it.
fn stored_state(app: &Application) -> Option<OperationState> {
    readable_state(app).unwrap_or(None)
}

/// `Err(())` when the app's `status.operationState` is unreadable (reported here).
fn readable_state(app: &Application) -> Result<Option<OperationState>, ()> {
    let Some(status) = app.status.as_ref() else {
        return Ok(None);
    };
    status.operation_state().map_err(|e| {
        tracing::warn!(app = app.name(), "{e}; treated as no operation state");
    })
}

/// `status.operationState` as a merge patch of the Application.
fn state_patch(state: &OperationState) -> Value {
    json!({"status": {"operationState": state.to_patch()}})
}

/// The automated sync Argo CD would start now, if any: out of sync, automated, and not
/// already attempted for this revision and these sources (unless self-heal applies after
/// a success).
pub fn automated_operation(app: &Application, c: &Compared) -> Option<Value> {
    let policy = app.spec.sync_policy.as_ref()?;
    let auto = policy.automated.as_ref()?;
    if c.sync != SyncStatusCode::OutOfSync {
        return None;
    }
    let non_hook_desired = c.desired.iter().filter(|d| !sync::is_hook(d)).count();
    if non_hook_desired == 0 && !auto.allow_empty {
        return None;
    }
    if app
        .metadata
        .pointer("/annotations/mooring.dev~1auto-sync-suspended")
        .is_some()
    {
        return None;
    }
    if let Some(last) = stored_state(app) {
        let same_sources = last
            .sync_result
            .as_ref()
            .is_none_or(|r| r.same_sources(app));
        if last.synced_revisions().as_ref() == Some(&c.revision) && same_sources && last.automated()
        {
            // Already attempted this revision from these sources: only self-heal
            // re-syncs, and only after a success (a failed revision is not retried
            // forever). A changed source (a parameter override) is a new attempt, as in
            // Argo CD.
            if !(auto.self_heal && last.phase == OperationPhase::Succeeded) {
                return None;
            }
        }
    }
    let mut sync = json!({"prune": auto.prune, "syncOptions": policy.sync_options});
    c.revision.write_into(&mut sync);
    Some(json!({
        "sync": sync,
        "initiatedBy": {"automated": true},
    }))
}

/// Ask for a sync by setting `operation`.
pub async fn request(ctx: &Context, app: &Application, op: Value) -> Result<(), ControllerError> {
    ctx.patch_app(app, json!({"operation": op})).await
}

/// Strip manifests from the plan for storage.
fn skeleton(plan: &SyncPlan) -> Value {
    let strip = |t: &sync::SyncTask| {
        let mut t = t.clone();
        if !t.generated {
            let av = t.object.get("apiVersion").cloned().unwrap_or(Value::Null);
            t.object = json!({"apiVersion": av});
        }
        t
    };
    let mut p = plan.clone();
    for s in &mut p.steps {
        s.tasks = s.tasks.iter().map(strip).collect();
    }
    p.on_fail = p.on_fail.iter().map(strip).collect();
    serde_json::to_value(p).unwrap_or(Value::Null)
}

/// Put the manifests back into a stored skeleton.
fn hydrate(stored: &Value, desired: &[Value], live: &[Value]) -> Result<SyncPlan, ControllerError> {
    let mut plan: SyncPlan = serde_json::from_value(stored.clone())
        .map_err(|e| ControllerError::Internal(format!("stored sync plan is unreadable: {e}")))?;
    let find = |key: &ResourceKey, hook: bool, pool: &[Value]| {
        pool.iter()
            .find(|o| ResourceKey::of(o).as_ref() == Some(key) && sync::is_hook(o) == hook)
            .cloned()
    };
    let fill = |t: &mut sync::SyncTask| {
        if t.generated {
            return;
        }
        let full = match t.kind {
            TaskKind::Apply => find(&t.key, false, desired),
            TaskKind::Hook => find(&t.key, true, desired),
            TaskKind::Prune => find(&t.key, false, live),
        };
        if let Some(o) = full {
            t.object = o;
        }
    };
    for s in &mut plan.steps {
        s.tasks.iter_mut().for_each(fill);
    }
    plan.on_fail.iter_mut().for_each(fill);
    Ok(plan)
}

/// Give `generateName` hooks a name derived from the operation, so a resumed step finds
/// the hook it created instead of creating another.
pub(crate) fn name_hooks(desired: &mut [Value], op: &str) {
    for d in desired.iter_mut() {
        if !sync::is_hook(d) {
            continue;
        }
        let Some(meta) = d.get_mut("metadata").and_then(Value::as_object_mut) else {
            continue;
        };
        if !meta.contains_key("name") {
            if let Some(prefix) = meta
                .get("generateName")
                .and_then(Value::as_str)
                .map(str::to_string)
            {
                let suffix: String = op
                    .chars()
                    .filter(char::is_ascii_alphanumeric)
                    .take(8)
                    .collect();
                meta.insert(
                    "name".into(),
                    json!(format!("{prefix}{}", suffix.to_lowercase())),
                );
                meta.remove("generateName");
            }
        }
        let ann = meta.entry("annotations").or_insert_with(|| json!({}));
        if let Some(a) = ann.as_object_mut() {
            a.insert(OPERATION_ANNOTATION.into(), json!(op));
        }
    }
}

fn api_version(obj: &Value) -> &str {
    obj.get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Validate before the first write: unknown kinds must come from a CRD of this sync, and
/// every served kind passes a server-side dry run.
async fn validate(
    ctx: &Context,
    app: &Application,
    plan: &SyncPlan,
    cluster: &ClusterClient,
) -> Result<(), String> {
    let manager = ctx.options.manager.as_str();
    let crds: BTreeSet<(String, String)> = plan
        .steps
        .iter()
        .flat_map(|s| &s.tasks)
        .filter(|t| t.key.kind == "CustomResourceDefinition")
        .filter_map(|t| {
            let g = t.object.pointer("/spec/group")?.as_str()?.to_string();
            let k = t.object.pointer("/spec/names/kind")?.as_str()?.to_string();
            Some((g, k))
        })
        .collect();
    for t in plan.steps.iter().flat_map(|s| &s.tasks) {
        if t.kind != TaskKind::Apply {
            continue;
        }
        let av = api_version(&t.object);
        if cluster.is_namespaced(av, &t.key.kind).await.is_none() {
            // Argo CD's escape hatch for kinds served by something else once the sync
            // has started (Gatekeeper constraints, served when their template exists).
            if crds.contains(&(t.key.group.clone(), t.key.kind.clone()))
                || t.option("SkipDryRunOnMissingResource") == Some("true")
            {
                continue;
            }
            return Err(format!(
                "{}: the cluster does not serve {av} {} and no CustomResourceDefinition in this sync defines it",
                t.key, t.key.kind
            ));
        }
        if t.option("Validate") == Some("false") || t.option("Replace") == Some("true") {
            continue;
        }
        let dry_run = cluster.apply(&t.object, manager, true).await;
        ctx.metrics.record_k8s_request(
            app,
            &crate::project::destination_of(ctx, app).server,
            K8sRequest::of("Patch", &t.key, true, &dry_run),
        );
        if let Err(e) = dry_run {
            // A namespace created by this same sync does not exist yet for the dry run.
            let missing_ns = matches!(&e, mooring_k8s::cluster::K8sError::Api { code: 404, message, .. } if message.contains("namespaces"));
            if !missing_ns {
                return Err(format!("{}: {e}", t.key));
            }
        }
    }
    Ok(())
}

/// Drive the operation as far as it can go now.
pub async fn drive(
    ctx: &Context,
    app: &Application,
    cluster: &ClusterClient,
) -> Result<OperationOutcome, ControllerError> {
    let (stored, unreadable_state) = match readable_state(app) {
        Ok(stored) => (stored, false),
        Err(()) => (None, true),
    };
    if let Some(OperationPhase::Other(phase)) = stored.as_ref().map(|s| &s.phase) {
        tracing::warn!(
            app = app.name(),
            "operationState.phase {phase:?} is not a phase Mooring knows; treated as not running"
        );
    }
    let running = stored.as_ref().is_some_and(|s| s.phase.is_running());
    let mut state = match stored {
        Some(state) if running => state,
        _ => {
            let Some(op) = app.operation.as_ref() else {
                return Ok(OperationOutcome::Finished);
            };
            let (operation, unreadable) = match Operation::from_value(op) {
                Ok(o) => (Some(o), None),
                Err(e) => (None, Some(e.to_string())),
            };
            let state = OperationState {
                id: Some(format!("{}-{}", app.name(), uuid_like())),
                operation,
                phase: OperationPhase::Running,
                message: Some("starting".into()),
                started_at: Some(now()),
                retry_count: Some(0),
                sync_result: Some(SyncOperationResult {
                    resources: Some(Vec::new()),
                    source: app.spec.source.clone(),
                    sources: app.spec.sources.clone(),
                    ..SyncOperationResult::default()
                }),
                ..OperationState::default()
            };
            if unreadable_state {
                // A merge patch keeps the fields it does not mention: the unreadable
                // state goes first, or its bad field would outlive the new state.
                ctx.patch_app(app, json!({"status": {"operationState": null}}))
                    .await?;
            }
            ctx.patch_app(app, state_patch(&state)).await?;
            if let Some(msg) = unreadable {
                return finish(ctx, app, state, OperationPhase::Error, &msg, None).await;
            }
            state
        }
    };
    if let Some(at) = state.next_retry_at.as_deref() {
        if mooring_core::time::parse(at).is_ok_and(|t| t > mooring_core::time::now()) {
            return Ok(OperationOutcome::InProgress);
        }
    }
    let op = state.operation.clone().unwrap_or_default();
    let id = state.id().to_string();
    // `sync.revision`, or `sync.revisions` (one per source) for a multi-source app.
    let requested = op.requested();
    // Nothing is fetched for a source or destination the project does not permit (the
    // full check, with sync windows and resource lists, follows once rendered).
    if let Err(msg) = crate::project::check_app(ctx, app).await? {
        let msg = format!("nothing was applied: {msg}");
        return finish(ctx, app, state, OperationPhase::Failed, &msg, None).await;
    }
    // `app sync --local`: the manifests in the operation instead of the source's render,
    // refused while automated sync would put Git's back at once (as Argo CD refuses it).
    let local = op
        .sync
        .as_ref()
        .map(|s| s.local_manifests().to_vec())
        .unwrap_or_default();
    let automated = app
        .spec
        .sync_policy
        .as_ref()
        .is_some_and(|p| p.automated.is_some());
    if !local.is_empty() && automated {
        let msg = format!(
            "nothing was applied: {}",
            mooring_engine::delivery::LOCAL_SYNC_WITH_AUTOMATED
        );
        return finish(ctx, app, state, OperationPhase::Failed, &msg, None).await;
    }
    let desired_or_local = if local.is_empty() {
        desired_state(ctx, app, &requested, cluster).await
    } else {
        state::local_state(ctx, app, &local, cluster).await
    };
    let (revision, mut desired) = match desired_or_local {
        Ok(x) => x,
        Err(e) => {
            return finish(ctx, app, state, OperationPhase::Error, &e.to_string(), None).await
        }
    };
    name_hooks(&mut desired, &id);
    let compared = match state::compare(ctx, app, cluster, revision.clone(), desired.clone()).await
    {
        Ok(c) => c,
        Err(e) => {
            return finish(ctx, app, state, OperationPhase::Error, &e.to_string(), None).await
        }
    };
    let plan = match state.plan.as_ref() {
        Some(stored) if !stored.is_null() => hydrate(stored, &desired, &compared.live)?,
        _ => {
            let mut options = app
                .spec
                .sync_policy
                .as_ref()
                .map(|p| p.sync_options.clone())
                .unwrap_or_default();
            options.extend(op.sync_options().iter().cloned());
            // FailOnSharedResource=true: a resource another app tracks fails the sync
            // before anything is applied (Argo CD's "Shared resource found").
            if sync_option(&options, "FailOnSharedResource") == Some("true")
                && !compared.shared.is_empty()
            {
                let msg = format!("Shared resource found: {}", compared.shared.join("; "));
                return finish(
                    ctx,
                    app,
                    state,
                    OperationPhase::Failed,
                    &msg,
                    Some(&revision),
                )
                .await;
            }
            let out_of_sync: BTreeSet<ResourceKey> = compared
                .diffs
                .iter()
                .filter(|d| d.status == SyncStatusCode::OutOfSync)
                .map(|d| d.key.clone())
                .collect();
            let plan = sync::plan(&PlanInput {
                desired: &desired,
                live: &compared.live,
                out_of_sync: &out_of_sync,
                app_options: &options,
                prune: op.prune(),
                namespace: app.spec.destination.namespace.as_deref(),
                namespace_metadata: app
                    .spec
                    .sync_policy
                    .as_ref()
                    .and_then(|p| p.managed_namespace_metadata.as_ref()),
            });
            let plan = match plan {
                Ok(p) => p,
                Err(e) => {
                    return finish(
                        ctx,
                        app,
                        state,
                        OperationPhase::Failed,
                        &e.to_string(),
                        Some(&revision),
                    )
                    .await
                }
            };
            // `sync.resources`: a selective sync of those resources only.
            let selected: Vec<(String, String, String, String)> = op
                .selected_resources()
                .iter()
                .map(|r| {
                    (
                        r.group.clone().unwrap_or_default(),
                        r.kind.clone().unwrap_or_default(),
                        r.namespace.clone().unwrap_or_default(),
                        r.name.clone().unwrap_or_default(),
                    )
                })
                .collect();
            let plan = if selected.is_empty() {
                plan
            } else {
                sync::select(plan, &selected)
            };
            // The project first (sources, destination, sync windows, resource lists),
            // then the policy gate, then the server-side dry run.
            let manual = !op.automated();
            let refused = match crate::project::check_app(ctx, app).await? {
                Err(msg) => Some(msg),
                Ok(proj) => {
                    let dst = crate::project::destination_of(ctx, app);
                    let now = std::time::SystemTime::now();
                    let verdict = crate::project::window_verdict(&proj, app, &dst, now, manual);
                    if !verdict.allowed && !manual && running {
                        // A retry of an automated sync: it waits for the window, as in
                        // Argo CD ("sync operation blocked by sync window").
                        let next = verdict
                            .next_change
                            .unwrap_or(now + std::time::Duration::from_secs(60));
                        let next = mooring_core::time::Timestamp::try_from(next)
                            .unwrap_or_else(|_| mooring_core::time::now());
                        state.message = Some(format!(
                            "sync operation blocked by sync window: {}",
                            verdict.reason
                        ));
                        state.next_retry_at = Some(mooring_core::time::format(next));
                        ctx.patch_app(app, state_patch(&state)).await?;
                        return Ok(OperationOutcome::InProgress);
                    }
                    if !verdict.allowed && !manual {
                        // Argo CD does not start an automated sync a window forbids: the
                        // request is withdrawn and the reconcile asks again when it may.
                        let previous = app
                            .status
                            .as_ref()
                            .and_then(|s| s.operation_state.clone())
                            .unwrap_or(Value::Null);
                        ctx.patch_app(
                            app,
                            json!({"operation": null, "status": {"operationState": previous}}),
                        )
                        .await?;
                        return Ok(OperationOutcome::Finished);
                    }
                    if !verdict.allowed {
                        Some(verdict.reason)
                    } else {
                        crate::project::check_resources(&proj, &dst, cluster, &desired)
                            .await
                            .err()
                    }
                }
            };
            let refused = match refused {
                Some(msg) => Some(msg),
                None => {
                    let gate =
                        crate::policy::gate(ctx, app, cluster, &desired, &compared.live).await;
                    ctx.metrics
                        .record_stage(Stage::Policy, matches!(gate, Ok(Ok(()))));
                    match gate? {
                        Err(msg) => {
                            // A notification trigger (`on-sync-blocked-by-policy`) and what
                            // `kubectl describe application` shows.
                            let object = serde_json::json!({
                                "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                                "metadata": app.metadata,
                            });
                            crate::events::record(
                                ctx,
                                &object,
                                crate::events::EventType::Warning,
                                "SyncBlockedByPolicy",
                                &format!("sync of {revision} blocked: {msg}"),
                                "mooring-policy",
                            )
                            .await;
                            Some(msg)
                        }
                        Ok(()) => validate(ctx, app, &plan, cluster).await.err(),
                    }
                }
            };
            if let Some(msg) = refused {
                return finish(
                    ctx,
                    app,
                    state,
                    OperationPhase::Failed,
                    &format!("nothing was applied: {msg}"),
                    Some(&revision),
                )
                .await;
            }
            // `sync.dryRun`: the project, the policy gate and the API server's dry run of
            // every apply have passed; nothing is changed and no history is recorded.
            if op.dry_run() {
                for t in plan.steps.iter().flat_map(|s| &s.tasks) {
                    let (status, what) = match t.kind {
                        TaskKind::Apply => ("Synced", "would be applied (dry run)"),
                        TaskKind::Prune => ("PruneSkipped", "would be pruned (dry run)"),
                        TaskKind::Hook => ("Synced", "hook would run (dry run)"),
                    };
                    state
                        .sync_result_mut()
                        .resources
                        .get_or_insert_with(Vec::new)
                        .push(result_entry(t, status, what));
                }
                let msg = format!(
                    "dry run: {} tasks validated, nothing was changed",
                    plan.task_count()
                );
                return finish(
                    ctx,
                    app,
                    state,
                    OperationPhase::Succeeded,
                    &msg,
                    Some(&revision),
                )
                .await;
            }
            state.plan = Some(skeleton(&plan));
            state.sync_result_mut().set_revisions(&revision);
            state.sync = Some(serde_json::to_value(SyncState::default()).unwrap_or(Value::Null));
            ctx.patch_app(app, state_patch(&state)).await?;
            plan
        }
    };
    let mut ss: SyncState = state
        .sync
        .as_ref()
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or_default();
    let manager = ctx.options.manager.clone();
    loop {
        match next_action(&plan, &ss) {
            NextAction::Submit(i) => {
                let step = plan.steps[i].clone();
                // Prune=confirm: nothing of the step happens before the approval.
                let to_confirm = sync::prunes_to_confirm(&step);
                if !to_confirm.is_empty() && !prune_confirmed(app, &state) {
                    let msg = sync::prune_confirmation_message(&to_confirm);
                    if state.message() != msg {
                        state.message = Some(msg);
                        persist(ctx, app, &mut state, &ss).await?;
                    }
                    return Ok(OperationOutcome::InProgress);
                }
                if injected_bug(BUG_STATUS_BEFORE_APPLY) {
                    // The deliberate bug (debug builds only): the step is recorded as
                    // submitted before anything is applied.
                    let mut early = ss.clone();
                    early.submitted = true;
                    persist(ctx, app, &mut state, &early).await?;
                    crash::point(crash::Point::SyncPersisted);
                }
                let mut results = Vec::new();
                for t in &step.tasks {
                    let r = match prepare(app, cluster, t).await {
                        Ok(Prepared::Submit(t)) => {
                            let r = submit_task(ctx, app, cluster, &t, &manager, &id).await;
                            crash::point(crash::Point::SyncApplied);
                            r
                        }
                        Ok(Prepared::Skip(msg)) => Ok(Submitted::Done(msg)),
                        Err(msg) => Err(msg),
                    };
                    match r {
                        Ok(Submitted::Done(msg)) => results.push(result_entry(t, "Synced", &msg)),
                        Ok(Submitted::Retry(msg)) => {
                            state.message = Some(msg);
                            ctx.patch_app(app, state_patch(&state)).await?;
                            return Ok(OperationOutcome::InProgress);
                        }
                        Err(msg) => {
                            results.push(result_entry(t, "SyncFailed", &msg));
                            ss.failed = true;
                            ss.message = format!("{}: {msg}", t.key);
                            break;
                        }
                    }
                }
                if !ss.failed {
                    ss.submitted = true;
                }
                state.append_results(results);
                state.message = Some(if ss.failed {
                    ss.message.clone()
                } else {
                    format!(
                        "waiting for {} wave {} ({} tasks)",
                        step.phase.as_str(),
                        step.wave,
                        step.tasks.len()
                    )
                });
                persist(ctx, app, &mut state, &ss).await?;
            }
            NextAction::Wait(i) => {
                let step = plan.steps[i].clone();
                match step_done(ctx, cluster, &step.tasks, sync::step_wait(&plan, i)).await? {
                    StepStatus::Done => {
                        ss.next_step += 1;
                        ss.submitted = false;
                        persist(ctx, app, &mut state, &ss).await?;
                        crash::point(crash::Point::SyncPersisted);
                    }
                    StepStatus::Waiting(msg) => {
                        if state.message() != msg {
                            state.message = Some(msg);
                            persist(ctx, app, &mut state, &ss).await?;
                        }
                        return Ok(OperationOutcome::InProgress);
                    }
                    StepStatus::Failed(msg) => {
                        ss.failed = true;
                        ss.message = msg;
                        persist(ctx, app, &mut state, &ss).await?;
                    }
                }
            }
            NextAction::RunFailHooks => {
                for t in plan.on_fail.clone() {
                    if let Err(msg) = submit_task(ctx, app, cluster, &t, &manager, &id).await {
                        tracing::warn!(app = app.name(), "SyncFail hook {}: {msg}", t.key);
                    }
                }
                ss.fail_hooks_submitted = true;
                persist(ctx, app, &mut state, &ss).await?;
            }
            NextAction::Succeeded => {
                ctx.metrics.record_stage(Stage::Apply, true);
                return finish(
                    ctx,
                    app,
                    state,
                    OperationPhase::Succeeded,
                    "successfully synced (all tasks run)",
                    Some(&revision),
                )
                .await;
            }
            NextAction::Failed(msg) => {
                ctx.metrics.record_stage(Stage::Apply, false);
                return finish(
                    ctx,
                    app,
                    state,
                    OperationPhase::Failed,
                    &msg,
                    Some(&revision),
                )
                .await;
            }
        }
    }
}

async fn persist(
    ctx: &Context,
    app: &Application,
    state: &mut OperationState,
    ss: &SyncState,
) -> Result<(), ControllerError> {
    state.sync = Some(serde_json::to_value(ss).unwrap_or(Value::Null));
    ctx.patch_app(app, state_patch(state)).await
}

fn result_entry(t: &sync::SyncTask, status: &str, message: &str) -> ResourceResult {
    let status = match (t.kind, status) {
        (TaskKind::Prune, "Synced") => "Pruned",
        (_, s) => s,
    };
    ResourceResult {
        group: t.key.group.clone(),
        kind: t.key.kind.clone(),
        namespace: t.key.namespace.clone(),
        name: t.key.name.clone(),
        status: Some(status.to_string()),
        message: Some(message.to_string()),
        sync_phase: Some(t.phase.as_str().to_string()),
        hook_type: (t.kind == TaskKind::Hook).then(|| t.phase.as_str().to_string()),
        ..ResourceResult::default()
    }
}

/// Whether the Application's approval annotation confirms this operation's prunes (it
/// must be no older than the operation, as Argo CD's `IsDeletionConfirmed`).
fn prune_confirmed(app: &Application, state: &OperationState) -> bool {
    let approval = app
        .metadata
        .pointer("/annotations")
        .and_then(|a| a.get(sync::ANNOTATION_DELETION_APPROVED))
        .and_then(Value::as_str);
    let started = state.started_at.as_deref().unwrap_or_default();
    sync::deletion_approved(approval, started)
}

enum Prepared {
    Submit(Box<sync::SyncTask>),
    /// Nothing to do for this task (the message says why).
    Skip(String),
}

/// The task as it is submitted now, given the live state:
/// * the namespace `CreateNamespace=true` made is only created when missing, unless
///   `managedNamespaceMetadata` is set (then it is applied, creating or updating its
///   labels and annotations), as gitops-engine's namespace modifier decides;
/// * with `RespectIgnoreDifferences=true`, the fields `ignoreDifferences` names keep
///   their live values (`mooring_engine::diff::respect_ignored`).
async fn prepare(
    app: &Application,
    cluster: &ClusterClient,
    t: &sync::SyncTask,
) -> Result<Prepared, String> {
    if t.kind != TaskKind::Apply {
        return Ok(Prepared::Submit(Box::new(t.clone())));
    }
    let av = api_version(&t.object).to_string();
    if t.generated {
        let managed_metadata = app
            .spec
            .sync_policy
            .as_ref()
            .is_some_and(|p| p.managed_namespace_metadata.is_some());
        if !managed_metadata
            && cluster
                .get(&av, &t.key)
                .await
                .map_err(|e| e.to_string())?
                .is_some()
        {
            return Ok(Prepared::Skip("namespace already exists".into()));
        }
        return Ok(Prepared::Submit(Box::new(t.clone())));
    }
    if t.option("RespectIgnoreDifferences") == Some("true") {
        let live = cluster.get(&av, &t.key).await.map_err(|e| e.to_string())?;
        let object = mooring_engine::diff::respect_ignored(
            &t.object,
            live.as_ref(),
            &app.spec.ignore_differences,
        )
        .map_err(|e| format!("RespectIgnoreDifferences: {e}"))?;
        return Ok(Prepared::Submit(Box::new(sync::SyncTask {
            object,
            ..t.clone()
        })));
    }
    Ok(Prepared::Submit(Box::new(t.clone())))
}

enum Submitted {
    Done(String),
    /// Not yet possible (an old hook is still terminating): try again later.
    Retry(String),
}

/// Submit one task of a step; every request it makes to the destination is counted in
/// `argocd_app_k8s_request_total`.
async fn submit_task(
    ctx: &Context,
    app: &Application,
    cluster: &ClusterClient,
    t: &sync::SyncTask,
    manager: &str,
    op: &str,
) -> Result<Submitted, String> {
    let av = api_version(&t.object).to_string();
    let server = crate::project::destination_of(ctx, app).server;
    let count = |verb: &'static str, response_code: u16| {
        ctx.metrics.record_k8s_request(
            app,
            &server,
            K8sRequest {
                verb,
                kind: &t.key.kind,
                namespace: &t.key.namespace,
                response_code,
                dry_run: false,
            },
        );
    };
    match t.kind {
        TaskKind::Apply => {
            let r = if t.option("Replace") == Some("true") {
                let r = cluster.replace(&t.object).await;
                count("Update", response_code(&r));
                r
            } else {
                let r = cluster.apply(&t.object, manager, false).await;
                count("Patch", response_code(&r));
                r
            };
            match r {
                Ok(_) => Ok(Submitted::Done("applied".into())),
                Err(mooring_k8s::cluster::K8sError::UnknownKind { .. })
                    if t.option("SkipDryRunOnMissingResource") == Some("true") =>
                {
                    // Not served yet (a constraint whose template was just applied):
                    // look again at the next step of the operation.
                    let _ = cluster.refresh_discovery().await;
                    Ok(Submitted::Retry(format!(
                        "waiting for the cluster to serve {av} {}",
                        t.key.kind
                    )))
                }
                Err(e) => Err(e.to_string()),
            }
        }
        TaskKind::Prune => {
            let policy = t.option("PrunePropagationPolicy").unwrap_or("foreground");
            let r = cluster.delete(&av, &t.key, Some(policy)).await;
            count("Delete", response_code(&r));
            r.map(|_| Submitted::Done("pruned".into()))
                .map_err(|e| e.to_string())
        }
        TaskKind::Hook => {
            let existing = cluster.get(&av, &t.key).await;
            count("Get", response_code(&existing));
            submit_hook(
                existing.map_err(|e| e.to_string())?,
                cluster,
                t,
                op,
                &av,
                count,
            )
            .await
        }
    }
}

/// A hook task: created unless this operation created it already; one of an earlier
/// operation is deleted first with `BeforeHookCreation`.
async fn submit_hook(
    existing: Option<Value>,
    cluster: &ClusterClient,
    t: &sync::SyncTask,
    op: &str,
    av: &str,
    count: impl Fn(&'static str, u16),
) -> Result<Submitted, String> {
    match existing {
        Some(existing) => {
            let same_op = existing
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(OPERATION_ANNOTATION))
                .and_then(Value::as_str)
                == Some(op);
            if same_op {
                return Ok(Submitted::Done(
                    "hook already created by this operation".into(),
                ));
            }
            if t.delete_policies
                .contains(&HookDeletePolicy::BeforeHookCreation)
            {
                let r = cluster.delete(av, &t.key, Some("foreground")).await;
                count("Delete", response_code(&r));
                r.map_err(|e| e.to_string())?;
                return Ok(Submitted::Retry(format!(
                    "waiting for the previous {} to be deleted (BeforeHookCreation)",
                    t.key
                )));
            }
            Ok(Submitted::Done("hook exists".into()))
        }
        None => {
            let created = cluster.create(&t.object).await;
            count("Create", response_code(&created));
            match created {
                Ok(_) => Ok(Submitted::Done("hook created".into())),
                Err(e) if e.is_conflict() => {
                    Ok(Submitted::Retry(format!("{} is still terminating", t.key)))
                }
                Err(e) => Err(e.to_string()),
            }
        }
    }
}

enum StepStatus {
    Done,
    Waiting(String),
    Failed(String),
}

/// Whether a submitted step is done, as gitops-engine decides it ([`sync::step_wait`]):
/// hooks must have completed (Degraded or Unknown fails); when the step's resources are
/// awaited, each must be Healthy or have no health (Degraded fails; Progressing,
/// Suspended, Missing and Unknown wait) and each prune must be gone. The last step of a
/// sync is not awaited for health: it is done once applied.
async fn step_done(
    ctx: &Context,
    cluster: &ClusterClient,
    tasks: &[sync::SyncTask],
    wait: sync::StepWait,
) -> Result<StepStatus, ControllerError> {
    for t in tasks {
        let awaited = match t.kind {
            TaskKind::Hook => wait.hooks,
            TaskKind::Apply | TaskKind::Prune => wait.resources,
        };
        if !awaited {
            continue;
        }
        let av = api_version(&t.object).to_string();
        let live = cluster.get(&av, &t.key).await?;
        match t.kind {
            TaskKind::Prune => {
                if live.is_some() {
                    return Ok(StepStatus::Waiting(format!(
                        "waiting for deletion of {}",
                        t.key
                    )));
                }
            }
            TaskKind::Apply => {
                let Some(l) = live else {
                    return Ok(StepStatus::Waiting(format!(
                        "waiting for {} to appear",
                        t.key
                    )));
                };
                let Some(h) = ctx.assess_health(&l) else {
                    continue;
                };
                let detail = if h.message.is_empty() {
                    String::new()
                } else {
                    format!(": {}", h.message)
                };
                match h.status {
                    HealthStatusCode::Healthy => {}
                    HealthStatusCode::Degraded => {
                        return Ok(StepStatus::Failed(format!(
                            "one or more synchronization tasks completed unsuccessfully: {} is Degraded{detail}",
                            t.key
                        )))
                    }
                    other => {
                        return Ok(StepStatus::Waiting(format!(
                            "waiting for healthy state of {} ({other}{detail})",
                            t.key
                        )))
                    }
                }
            }
            TaskKind::Hook => {
                let Some(l) = live else {
                    return Ok(StepStatus::Waiting(format!(
                        "waiting for completion of hook {}",
                        t.key
                    )));
                };
                let h = ctx.assess_health(&l);
                match h.as_ref().map(|h| h.status) {
                    Some(HealthStatusCode::Healthy) | None => {
                        if t.delete_policies.contains(&HookDeletePolicy::HookSucceeded) {
                            cluster.delete(&av, &t.key, Some("background")).await?;
                        }
                    }
                    Some(HealthStatusCode::Degraded | HealthStatusCode::Unknown) => {
                        if t.delete_policies.contains(&HookDeletePolicy::HookFailed) {
                            cluster.delete(&av, &t.key, Some("background")).await?;
                        }
                        return Ok(StepStatus::Failed(format!(
                            "{} hook {} failed: {}",
                            t.phase.as_str(),
                            t.key,
                            h.map(|h| h.message).unwrap_or_default()
                        )));
                    }
                    Some(s) => {
                        return Ok(StepStatus::Waiting(format!(
                            "waiting for completion of hook {} ({s})",
                            t.key
                        )))
                    }
                }
            }
        }
    }
    Ok(StepStatus::Done)
}

/// End the operation: record the phase, history on success, clear `operation`; on
/// failure, retry per the sync policy.
async fn finish(
    ctx: &Context,
    app: &Application,
    mut state: OperationState,
    phase: OperationPhase,
    message: &str,
    revision: Option<&Revisions>,
) -> Result<OperationOutcome, ControllerError> {
    let retry = app.spec.sync_policy.as_ref().and_then(|p| p.retry.clone());
    let count = state.retry_count();
    // An operation that could not be read is not retried: there is nothing to retry.
    if phase != OperationPhase::Succeeded && state.operation.is_some() {
        if let Some(r) = retry {
            let limit = r.limit.unwrap_or(0);
            if limit < 0 || count < limit {
                let b = r.backoff.unwrap_or_default();
                let base = b
                    .duration
                    .as_deref()
                    .and_then(parse_go_duration)
                    .unwrap_or(std::time::Duration::from_secs(5));
                let factor = b.factor.unwrap_or(2).max(1) as u32;
                let max = b
                    .max_duration
                    .as_deref()
                    .and_then(parse_go_duration)
                    .unwrap_or(std::time::Duration::from_secs(180));
                let wait = base
                    .saturating_mul(factor.saturating_pow(count as u32))
                    .min(max);
                state.retry_count = Some(count + 1);
                state.message = Some(format!(
                    "{message} (retrying in {}s, attempt {} of {limit})",
                    wait.as_secs_f64(),
                    count + 1
                ));
                state.plan = None;
                state.sync = None;
                state.next_retry_at =
                    Some(mooring_core::time::format(mooring_core::time::now() + wait));
                ctx.patch_app(app, state_patch(&state)).await?;
                return Ok(OperationOutcome::InProgress);
            }
        }
    }
    let succeeded = phase == OperationPhase::Succeeded;
    let dry_run = state.operation.as_ref().is_some_and(|o| o.dry_run());
    ctx.metrics.record_sync(
        app,
        &crate::project::destination_of(ctx, app).server,
        phase.as_str(),
        dry_run,
    );
    if succeeded {
        ctx.metrics
            .verify_health(&format!("{}/{}", app.namespace(), app.name()));
    }
    state.phase = phase;
    state.message = Some(message.to_string());
    state.finished_at = Some(now());
    state.plan = None;
    if let Some(r) = revision {
        state.sync_result_mut().set_revisions(r);
    }
    let mut status = json!({"operationState": state.to_patch()});
    // A dry run deployed nothing: no history entry.
    if succeeded && !dry_run {
        let mut history = app
            .status
            .as_ref()
            .map(|s| s.history.clone())
            .unwrap_or_default();
        let id = history.iter().map(|h| h.id).max().unwrap_or(-1) + 1;
        // Argo CD's shapes: `revision` + `source`, or `revisions` + `sources`.
        let multi = app.has_multiple_sources();
        history.push(RevisionHistory {
            id,
            revision: revision
                .and_then(Revisions::revision)
                .unwrap_or_default()
                .to_string(),
            revisions: revision.map(|r| r.revisions().to_vec()).unwrap_or_default(),
            deployed_at: Some(now()),
            deploy_started_at: state.started_at.clone(),
            source: if multi { None } else { app.source().cloned() },
            sources: if multi {
                app.spec.sources.clone()
            } else {
                Vec::new()
            },
        });
        let limit = app.spec.revision_history_limit.unwrap_or(10).max(1) as usize;
        if history.len() > limit {
            history.drain(..history.len() - limit);
        }
        status["history"] = serde_json::to_value(history).unwrap_or(Value::Null);
    } else {
        // Other conditions stay (the policy gate's, the audit's): read them fresh, as the
        // gate may have written some since `app` was read.
        let mut conds = match ctx.apps_api(app.namespace()).get_opt(app.name()).await {
            Ok(Some(fresh)) => serde_json::to_value(fresh)
                .ok()
                .and_then(|v| v.pointer("/status/conditions").cloned())
                .and_then(|c| c.as_array().cloned())
                .unwrap_or_default(),
            _ => vec![],
        };
        conds.retain(|c| c.get("type").and_then(Value::as_str) != Some("SyncError"));
        conds.push(json!({"type": "SyncError", "message": message, "lastTransitionTime": now()}));
        status["conditions"] = json!(conds);
    }
    crash::point(crash::Point::SyncFinished);
    // One write: the final state and the cleared request together, as Argo CD writes
    // them. Two writes left a window (found by `mooring bench chaos`'s crash points) in
    // which a restarted controller saw a finished state beside a pending request and
    // ran the same operation again.
    ctx.patch_app(app, json!({"status": status, "operation": null}))
        .await?;
    Ok(OperationOutcome::Finished)
}

/// The deliberate bug `mooring bench chaos` must catch (issue 20): named by
/// `MOORING_INJECT_BUG`, and only in debug builds, so no release binary can carry it.
const BUG_STATUS_BEFORE_APPLY: &str = "status-before-apply";

fn injected_bug(name: &str) -> bool {
    cfg!(debug_assertions) && std::env::var("MOORING_INJECT_BUG").is_ok_and(|b| b == name)
}

fn uuid_like() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{nanos:x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app_with(operation_state: Value) -> Application {
        serde_json::from_value(json!({
            "metadata": {"name": "a", "namespace": "argocd"},
            "spec": {
                "project": "default",
                "source": {"repoURL": "https://git.example.com/r.git", "path": "."},
                "destination": {"server": "https://kubernetes.default.svc", "namespace": "d"}
            },
            "status": {"operationState": operation_state}
        }))
        .expect("application")
    }

    #[test]
    fn a_running_state_is_in_progress() {
        assert!(in_progress(&app_with(json!({"phase": "Running"}))));
        assert!(!in_progress(&app_with(json!({"phase": "Succeeded"}))));
    }

    #[test]
    fn an_unknown_phase_is_kept_and_not_driven_as_running() {
        let app = app_with(json!({"phase": "Paused", "message": "m"}));
        assert!(!in_progress(&app));
        let state = stored_state(&app).expect("an unknown phase still parses");
        assert_eq!(state.phase, OperationPhase::Other("Paused".into()));
    }

    #[test]
    fn an_unreadable_state_is_reported_not_running() {
        let app = app_with(json!({"phase": "Running", "retryCount": "three"}));
        assert!(readable_state(&app).is_err());
        assert!(!in_progress(&app));
    }

    #[test]
    fn results_follow_argo_cd_result_codes() {
        let t = sync::SyncTask {
            key: ResourceKey::new("", "ConfigMap", "d", "c"),
            kind: TaskKind::Prune,
            phase: sync::SyncPhase::Sync,
            wave: 0,
            object: json!({}),
            options: Vec::new(),
            delete_policies: Vec::new(),
            generated: false,
        };
        let r = result_entry(&t, "Synced", "pruned");
        assert_eq!(r.status.as_deref(), Some("Pruned"));
        assert_eq!(r.sync_phase.as_deref(), Some("Sync"));
        assert_eq!(r.hook_type, None);
    }
}
