//! One reconciliation of one Application: resolve the Git revision, render it, compare
//! with the live cluster, assess health, write the status, and drive the sync operation.
//!
//! The steps are the same as Argo CD's: desired = Git at the resolved revision (rendered
//! once per commit and source options, and reused when a new commit does not touch the
//! app's inputs), actual = the destination cluster's watch-fed cache of managed objects,
//! drift = the engine's normalised diff. Every failure becomes an Application condition
//! with the offending input named; nothing is applied when anything before the apply
//! fails, so the last synced state stays running.

use crate::conditions::{condition, conditions_except, kept_condition, same_conditions};
use crate::operation::{self, OperationOutcome};
use crate::state::{compare, desired_state, Compared};
use crate::{Context, ControllerError};
use mooring_core::app::{
    Application, ApplicationCondition, HealthStatusCode, Revisions, SyncStatus, SyncStatusCode,
};
use mooring_k8s::cluster::ClusterClient;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

pub use crate::action::Action;
/// Argo CD's refresh request on an Application (`normal` or `hard`), removed once served.
pub const REFRESH_ANNOTATION: &str = "argocd.argoproj.io/refresh";

pub use mooring_core::app::RESOURCES_FINALIZER;

/// The comparison's conditions: one `SharedResourceWarning` per shared resource.
pub(crate) fn shared_conditions(app: &Application, c: &Compared) -> Vec<ApplicationCondition> {
    c.shared
        .iter()
        .map(|m| kept_condition(app, SHARED_RESOURCE_WARNING, m.clone()))
        .collect()
}

/// Argo CD's condition for a resource tracked by two applications.
pub const SHARED_RESOURCE_WARNING: &str = "SharedResourceWarning";

/// Reconcile one Application (the `reconcile(Arc<T>, Arc<Ctx>) -> Result<Action>` shape).
pub async fn reconcile(
    app: Arc<Application>,
    ctx: Arc<Context>,
) -> Result<Action, ControllerError> {
    let started = std::time::Instant::now();
    // Every write of this reconcile names the resourceVersion it read (stale writers fail).
    let _guard = ctx.guard_writes(&app);
    let cluster = match ctx.cluster_for(&app.spec.destination) {
        Ok(c) => c,
        Err(e) => {
            write_error(&ctx, &app, "InvalidSpecError", &e.to_string()).await?;
            return Ok(Action::Idle);
        }
    };
    if let mooring_k8s::cluster::Connection::Unreachable { error } = cluster.connection() {
        // Nothing can be compared: say so (sync and health Unknown) and look again soon;
        // the connection task re-queues the app as soon as the cluster answers.
        let message = format!(
            "destination cluster {} is unreachable ({error}); retrying with backoff",
            cluster.name
        );
        write_unknown(&ctx, &app, &message).await?;
        return Ok(Action::RequeueAfter(Duration::from_secs(30)));
    }
    // Nothing is compared, planned, pruned or deleted against a cache that has not
    // listed every kind yet (a controller just started): missing objects would read as
    // absent, and a sync planned then would skip their prunes. Found by `mooring bench
    // chaos` (a prune skipped after a restart); Argo CD waits for its cluster cache too.
    if !cluster.cache_synced() {
        return Ok(Action::RequeueAfter(Duration::from_millis(200)));
    }
    // Deletion (Argo CD's finalizers: resources, then PostDelete hooks, then their
    // cleanup; see `deletion`).
    if app.metadata.get("deletionTimestamp").is_some() {
        return crate::deletion::finalize(&ctx, &app, &cluster).await;
    }
    // `app get --refresh` / `--hard-refresh` (Argo CD's refresh annotation, `normal` or
    // `hard`): compare with Git now — after a hard one, with every source rendered anew —
    // then clear the request.
    if let Some(level) = app.metadata.pointer(&format!(
        "/annotations/{}",
        REFRESH_ANNOTATION.replace('/', "~1")
    )) {
        if level.as_str() == Some("hard") {
            for source in app.sources() {
                ctx.renders.forget_repo(&source.repo_url);
            }
        }
        ctx.forget_all_resolutions();
        ctx.patch_app(
            &app,
            json!({"metadata": {"annotations": {REFRESH_ANNOTATION: null}}}),
        )
        .await?;
    }
    // A running (or requested) operation is driven first; it renders its own revision.
    // The comparison goes on meanwhile (Argo CD refreshes and operates on separate
    // queues), so the status shows live objects as they are while waves progress.
    // The project must permit the app's sources and destination before anything else:
    // no repository a tenant names is contacted unless the project allows it.
    let permitted = crate::project::check_app(&ctx, &app).await?;
    if operation::in_progress(&app) {
        match &permitted {
            Ok(_) => refresh_during_operation(&ctx, &app, &cluster).await?,
            Err(msg) => write_error(&ctx, &app, "InvalidSpecError", msg).await?,
        }
        return match operation::drive(&ctx, &app, &cluster).await? {
            OperationOutcome::InProgress => Ok(Action::RequeueAfter(ctx.options.operation_poll)),
            OperationOutcome::Finished => Ok(Action::RequeueAfter(Duration::from_millis(10))),
        };
    }
    let proj = match permitted {
        Ok(p) => p,
        Err(msg) => {
            write_error(&ctx, &app, "InvalidSpecError", &msg).await?;
            return Ok(Action::Idle);
        }
    };
    let (revision, desired) = match desired_state(&ctx, &app, &Revisions::default(), &cluster).await
    {
        Ok(x) => x,
        Err(e) => {
            write_error(&ctx, &app, "ComparisonError", &e.to_string()).await?;
            return Ok(Action::Idle);
        }
    };
    // Commit → converged: the clock of a revision starts when a reconcile first resolves
    // the app to a revision its status was not compared at (a new commit, or a new app);
    // not for an app found at its revision already (after a controller restart), nor for
    // drift at the same revision (self-heal is not a commit).
    let key = format!("{}/{}", app.namespace(), app.name());
    if app.status.as_ref().map(|s| s.sync.revisions()) != Some(revision.clone()) {
        ctx.metrics.saw_revision(&key, &revision.to_string());
    }
    crate::deletion::track_post_delete_finalizers(&ctx, &app, &desired).await?;
    let compared = match compare(&ctx, &app, &cluster, revision, desired).await {
        Ok(c) => c,
        Err(e) => {
            write_error(&ctx, &app, "ComparisonError", &e.to_string()).await?;
            return Ok(Action::Idle);
        }
    };
    // Sync windows: an automated sync the windows forbid is not started; the app is
    // looked at again when a window opens or closes.
    let mut auto = operation::automated_operation(&app, &compared);
    let mut conditions = shared_conditions(&app, &compared);
    let mut action = Action::Idle;
    if auto.is_some() {
        let now = std::time::SystemTime::now();
        let dst = crate::project::destination_of(&ctx, &app);
        let verdict = crate::project::window_verdict(&proj, &app, &dst, now, false);
        if !verdict.allowed {
            conditions.push(kept_condition(
                &app,
                crate::project::WINDOW_CONDITION,
                format!("auto-sync is not started: {}", verdict.reason),
            ));
            action = Action::RequeueAfter(crate::project::recheck_after(&verdict, now));
            auto = None;
        }
    }
    conditions.extend(ctx.unsupported_condition(&app, &compared.desired));
    write_status(&ctx, &app, &compared, conditions).await?;
    let dest_server = crate::project::destination_of(&ctx, &app).server;
    ctx.metrics
        .record_reconcile(app.namespace(), &dest_server, started.elapsed());
    ctx.metrics
        .set_drift(&key, crate::metrics::drift_of(&compared.diffs));
    ctx.metrics.health_seen(&key, &compared.health.status);
    if compared.sync == SyncStatusCode::Synced
        && compared.health.status == HealthStatusCode::Healthy
    {
        ctx.metrics.converged(
            &key,
            app.namespace(),
            &dest_server,
            &compared.revision.to_string(),
        );
    }
    if let Some(op) = auto {
        operation::request(&ctx, &app, op).await?;
        return Ok(Action::RequeueAfter(Duration::from_millis(10)));
    }
    Ok(action)
}

/// The comparison of an app whose operation is running: sync status, resources, health
/// and the comparison's own conditions (`ComparisonError`, `SharedResourceWarning`, the
/// unsupported-field warning) are
/// refreshed against the app's target revision and written when they changed. Only
/// `status` fields other than `operationState` are written (the operation owns that one;
/// both are merge patches), no automated sync is requested, and the conditions the
/// operation and the normal path own stay as they are.
async fn refresh_during_operation(
    ctx: &Context,
    app: &Application,
    cluster: &ClusterClient,
) -> Result<(), ControllerError> {
    let (revision, desired) = match desired_state(ctx, app, &Revisions::default(), cluster).await {
        Ok(x) => x,
        Err(e) => return write_error(ctx, app, "ComparisonError", &e.to_string()).await,
    };
    crate::deletion::track_post_delete_finalizers(ctx, app, &desired).await?;
    let compared = match compare(ctx, app, cluster, revision, desired).await {
        Ok(c) => c,
        Err(e) => return write_error(ctx, app, "ComparisonError", &e.to_string()).await,
    };
    // The comparison's own conditions are recomputed; the rest of what `write_status`
    // replaces belongs to the operation and the normal path, and stays.
    let own = [
        "ComparisonError",
        SHARED_RESOURCE_WARNING,
        mooring_engine::unsupported::CONDITION,
    ];
    let mut conditions: Vec<ApplicationCondition> = app
        .status
        .iter()
        .flat_map(|s| s.conditions.iter())
        .filter(|c| {
            STATUS_CONDITIONS.contains(&c.type_.as_str()) && !own.contains(&c.type_.as_str())
        })
        .cloned()
        .collect();
    conditions.extend(shared_conditions(app, &compared));
    conditions.extend(ctx.unsupported_condition(app, &compared.desired));
    write_status(ctx, app, &compared, conditions).await
}

/// The condition types [`write_status`] replaces with the ones it is given (the others —
/// the policy gate's and audit's, rollback policies' — stay as they are).
const STATUS_CONDITIONS: &[&str] = &[
    "ComparisonError",
    "InvalidSpecError",
    "SyncError",
    crate::project::WINDOW_CONDITION,
    SHARED_RESOURCE_WARNING,
    mooring_engine::unsupported::CONDITION,
];

/// Write the comparison result into `status` (conditions of [`STATUS_CONDITIONS`] types
/// replaced by `conditions`).
pub async fn write_status(
    ctx: &Context,
    app: &Application,
    c: &Compared,
    conditions: Vec<ApplicationCondition>,
) -> Result<(), ControllerError> {
    let mut conds = conditions_except(app, STATUS_CONDITIONS);
    conds.extend(conditions);
    // Write only real changes: the status write is itself an Application change that
    // triggers a reconcile, and `reconciledAt` alone must not loop. Conditions are a list
    // other writers patch too (the policy gate and audit, rollback policies, the
    // operation): they are written only when this comparison changes them, so a write
    // from a snapshot read before another writer's change does not drop that change
    // (which matters most while an operation runs and both write).
    let conditions_changed = !app
        .status
        .as_ref()
        .is_some_and(|s| same_conditions(&s.conditions, &conds));
    if let Some(cur) = &app.status {
        if cur.sync.status == c.sync
            && cur.sync.revisions() == c.revision
            && cur.health == c.health
            && cur.resources == c.resources
            && !conditions_changed
        {
            return Ok(());
        }
    }
    // `revision` or `revisions` (the other cleared), as Argo CD writes them.
    let mut sync = json!({"status": c.sync});
    c.revision.write_into(&mut sync);
    // A merge patch keeps what it does not name: an empty message (not serialised) must
    // be removed explicitly, or the last Progressing message stays, the next comparison
    // differs again, and every reconcile writes.
    let mut health = json!(c.health);
    if c.health.message.is_empty() {
        health["message"] = Value::Null;
    }
    let mut status = json!({
        "sync": sync,
        "health": health,
        "resources": c.resources,
        "reconciledAt": mooring_core::time::now_rfc3339(),
    });
    if conditions_changed {
        status["conditions"] = json!(conds);
    }
    ctx.patch_app(app, json!({"status": status})).await
}

/// The destination cannot be reached: sync and health `Unknown`, a `ComparisonError`.
async fn write_unknown(
    ctx: &Context,
    app: &Application,
    message: &str,
) -> Result<(), ControllerError> {
    let mut conds = conditions_except(app, &["ComparisonError"]);
    let unchanged = app.status.as_ref().is_some_and(|s| {
        s.health.status == HealthStatusCode::Unknown
            && s.conditions
                .iter()
                .any(|c| c.type_ == "ComparisonError" && c.message == message)
    });
    if unchanged {
        return Ok(());
    }
    conds.push(condition("ComparisonError", message));
    let sync = app
        .status
        .as_ref()
        .map(|s| s.sync.clone())
        .unwrap_or_default();
    let patch = json!({"status": {
        "conditions": conds,
        "sync": SyncStatus { status: SyncStatusCode::Unknown, ..sync },
        "health": {"status": "Unknown", "message": message},
        "reconciledAt": mooring_core::time::now_rfc3339(),
    }});
    ctx.patch_app(app, patch).await
}

/// Record an error condition without touching the last known resources.
pub async fn write_error(
    ctx: &Context,
    app: &Application,
    type_: &str,
    message: &str,
) -> Result<(), ControllerError> {
    let mut conds = conditions_except(app, &[type_, mooring_engine::unsupported::CONDITION]);
    // Without a desired state, only the Application's own fields.
    let unsupported = ctx.unsupported_condition(app, &[]);
    // The same error again: nothing to write (a write would trigger another reconcile).
    let unchanged = app.status.as_ref().is_some_and(|s| {
        s.sync.status == SyncStatusCode::Unknown
            && s.conditions
                .iter()
                .any(|c| c.type_ == type_ && c.message == message)
            && s.conditions
                .iter()
                .find(|c| c.type_ == mooring_engine::unsupported::CONDITION)
                == unsupported.as_ref()
    });
    if unchanged {
        return Ok(());
    }
    conds.extend(unsupported);
    conds.push(condition(type_, message));
    let sync = app
        .status
        .as_ref()
        .map(|s| s.sync.clone())
        .unwrap_or_default();
    let patch = json!({"status": {
        "conditions": conds,
        "sync": SyncStatus { status: SyncStatusCode::Unknown, ..sync },
        "reconciledAt": mooring_core::time::now_rfc3339(),
    }});
    ctx.patch_app(app, patch).await
}
