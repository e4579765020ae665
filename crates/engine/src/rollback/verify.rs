//! Is a rollback done? The verdict `mooring app rollback` (and an automated rollback's
//! `rollback_completed` event) is based on.
//!
//! Argo CD's own `argocd app rollback` returns when the sync operation ends; the runbooks
//! teams wrap around it then check three more things by hand: the app is *at* the
//! revision asked for, the resources of that revision were applied, and they became
//! healthy. This module is that check, on one reading of the Application:
//!
//! - the sync operation requested for the rollback (the first operation state whose id
//!   differs from the one seen before the request) must have ended `Succeeded`, with the
//!   synced revision(s) equal to the target — a failed sync or another revision fails at
//!   once;
//! - every resource the sync applied must be healthy in a health assessment made *after*
//!   the operation finished (`status.reconciledAt` not older than `finishedAt`); until
//!   then the rollback is pending, and a caller that runs out of time reports the pending
//!   reasons, which name each unhealthy resource.
//!
//! Why not `status.sync.status == Synced`: Argo CD compares an app with the head of its
//! `targetRevision`, so after a rollback to an older commit the app is `OutOfSync` by
//! design (automated sync is off, or Git would re-apply the bad version). "Synced" for a
//! rollback is therefore the operation's result: each resource of the target revision
//! applied (`Synced`, or `Pruned` when pruning was asked for). Only the resources the
//! rollback applied are judged; a resource that exists only in the newer revision is not
//! the rollback's business.

use mooring_core::app::{
    Application, HealthStatusCode, OperationPhase, OperationState, ResourceResult, Revisions,
};

/// Where a rollback stands.
#[derive(Debug, Clone, PartialEq)]
pub enum RollbackProgress {
    /// At the target revision, applied, healthy.
    Done,
    /// Not yet: why (each unhealthy resource named).
    Pending(Vec<String>),
    /// It cannot succeed any more (the sync failed, or synced something else).
    Failed(String),
}

/// Judge `app` for a rollback to `target` whose sync was requested after the operation
/// state with id `previous_operation` (empty when there was none).
pub fn progress(
    app: &Application,
    previous_operation: &str,
    target: &Revisions,
) -> RollbackProgress {
    let status = app.status.clone().unwrap_or_default();
    let state = match status.operation_state() {
        Ok(s) => s.unwrap_or_default(),
        Err(e) => return RollbackProgress::Failed(e.to_string()),
    };
    if app.operation.as_ref().is_some_and(|o| !o.is_null())
        || state.id() == previous_operation
        || state.phase.is_unset()
    {
        return RollbackProgress::Pending(vec!["the rollback sync has not started yet".into()]);
    }
    if state.phase.is_running() {
        return RollbackProgress::Pending(vec![format!(
            "the rollback sync is {}: {}",
            state.phase,
            state.message()
        )]);
    }
    if state.phase != OperationPhase::Succeeded {
        return RollbackProgress::Failed(format!(
            "the rollback sync ended {}: {}",
            state.phase,
            state.message()
        ));
    }
    let synced = state.synced_revisions().unwrap_or_default();
    if !same_revisions(&synced, target) {
        return RollbackProgress::Failed(format!(
            "the sync deployed {synced}, not the rollback target {target}"
        ));
    }
    let mut pending = not_applied(&state);
    if !pending.is_empty() {
        return RollbackProgress::Failed(pending.join("; "));
    }
    if !assessed_after(
        status.reconciled_at.as_deref(),
        state.finished_at.as_deref(),
    ) {
        return RollbackProgress::Pending(vec![
            "waiting for the health assessment after the sync".into()
        ]);
    }
    for r in applied(&state) {
        let Some(res) = status.resources.iter().find(|s| {
            s.kind == r.kind && s.name == r.name && s.namespace == r.namespace && s.group == r.group
        }) else {
            continue;
        };
        let Some(h) = &res.health else { continue };
        if h.status != HealthStatusCode::Healthy {
            let ns = if res.namespace.is_empty() {
                String::new()
            } else {
                format!("{}/", res.namespace)
            };
            pending.push(format!(
                "{} {ns}{} is {}{}",
                res.kind,
                res.name,
                h.status.as_str(),
                if h.message.is_empty() {
                    String::new()
                } else {
                    format!(": {}", h.message)
                }
            ));
        }
    }
    if pending.is_empty() {
        RollbackProgress::Done
    } else {
        RollbackProgress::Pending(pending)
    }
}

/// A short SHA given on the command line matches the full one recorded.
fn same_revisions(synced: &Revisions, target: &Revisions) -> bool {
    synced.commits().len() == target.commits().len()
        && synced
            .commits()
            .iter()
            .zip(target.commits())
            .all(|(s, t)| !t.is_empty() && (s == t || (t.len() >= 7 && s.starts_with(t.as_str()))))
}

/// The resources (not hooks) the sync applied.
fn applied(state: &OperationState) -> impl Iterator<Item = &ResourceResult> {
    state
        .sync_result
        .iter()
        .flat_map(|r| r.resources.iter().flatten())
        .filter(|r| r.hook_type.is_none())
}

/// Resources of the sync that did not end applied.
fn not_applied(state: &OperationState) -> Vec<String> {
    applied(state)
        .filter(|r| !matches!(r.status.as_deref(), Some("Synced" | "Pruned")))
        .map(|r| {
            format!(
                "{} {} was not applied ({}{})",
                r.kind,
                r.name,
                r.status.as_deref().unwrap_or("no result"),
                r.message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            )
        })
        .collect()
}

/// Whether health was assessed at or after the operation's end (RFC 3339 strings; both
/// are written by the controller in UTC, so the order of the strings is the time's only
/// when parsed).
fn assessed_after(reconciled_at: Option<&str>, finished_at: Option<&str>) -> bool {
    let (Some(r), Some(f)) = (reconciled_at, finished_at) else {
        return false;
    };
    match (mooring_core::time::parse(r), mooring_core::time::parse(f)) {
        (Ok(r), Ok(f)) => r >= f,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const GOOD: &str = "1111111111111111111111111111111111111111";
    const BAD: &str = "2222222222222222222222222222222222222222";

    fn app(state: serde_json::Value, reconciled: &str, health: &str) -> Application {
        serde_json::from_value(json!({
            "metadata": {"name": "model", "namespace": "argocd"},
            "spec": {"project": "default",
                     "source": {"repoURL": "https://git.example.com/ml.git", "path": "apps/model", "targetRevision": "main"},
                     "destination": {"server": "https://kubernetes.default.svc", "namespace": "ml-serving"}},
            "status": {
                "sync": {"status": "OutOfSync", "revision": BAD},
                "reconciledAt": reconciled,
                "resources": [
                    {"group": "apps", "version": "v1", "kind": "Deployment", "namespace": "ml-serving", "name": "model-server",
                     "status": "OutOfSync", "health": {"status": health, "message": "Waiting for rollout to finish: 0 of 2 updated replicas are available..."}},
                    {"version": "v1", "kind": "Service", "namespace": "ml-serving", "name": "model-server", "status": "Synced", "health": {"status": "Healthy"}},
                    {"version": "v1", "kind": "ConfigMap", "namespace": "ml-serving", "name": "only-in-head", "status": "OutOfSync", "health": {"status": "Missing"}}
                ],
                "operationState": state,
            }
        }))
        .expect("application")
    }

    fn state(id: &str, phase: &str, revision: &str, deployment: &str) -> serde_json::Value {
        json!({"id": id, "phase": phase, "message": "successfully synced (all tasks run)",
        "finishedAt": "2026-12-06T08:00:00Z",
        "syncResult": {"revision": revision, "resources": [
            {"group": "apps", "kind": "Deployment", "namespace": "ml-serving", "name": "model-server", "status": deployment},
            {"group": "", "kind": "Service", "namespace": "ml-serving", "name": "model-server", "status": "Synced"},
            {"group": "batch", "kind": "Job", "namespace": "ml-serving", "name": "smoke", "status": "Synced", "hookType": "PostSync"}
        ]}})
    }

    #[test]
    fn done_only_at_the_target_applied_and_healthy_after_the_sync() {
        let target = Revisions::single(GOOD);
        let a = app(
            state("op-2", "Succeeded", GOOD, "Synced"),
            "2026-12-06T08:00:01Z",
            "Healthy",
        );
        // The ConfigMap only in the branch head (Missing) is not the rollback's business,
        // and the app being OutOfSync with the head is expected.
        assert_eq!(progress(&a, "op-1", &target), RollbackProgress::Done);
        // A short SHA names the same commit.
        assert_eq!(
            progress(&a, "op-1", &Revisions::single(&GOOD[..7])),
            RollbackProgress::Done
        );
        // Still the operation seen before the request: not started.
        assert!(matches!(
            progress(&a, "op-2", &target),
            RollbackProgress::Pending(_)
        ));
        // Health assessed before the sync ended: not yet.
        let a = app(
            state("op-2", "Succeeded", GOOD, "Synced"),
            "2026-12-06T07:59:59Z",
            "Healthy",
        );
        assert!(matches!(
            progress(&a, "op-1", &target),
            RollbackProgress::Pending(_)
        ));
    }

    #[test]
    fn an_unhealthy_resource_is_named() {
        let a = app(
            state("op-2", "Succeeded", GOOD, "Synced"),
            "2026-12-06T08:00:05Z",
            "Progressing",
        );
        let RollbackProgress::Pending(why) = progress(&a, "op-1", &Revisions::single(GOOD)) else {
            panic!("pending expected");
        };
        assert_eq!(why.len(), 1, "{why:?}");
        assert!(
            why[0].starts_with(
                "Deployment ml-serving/model-server is Progressing: Waiting for rollout"
            ),
            "{why:?}"
        );
    }

    #[test]
    fn a_failed_sync_or_another_revision_fails_at_once() {
        let target = Revisions::single(GOOD);
        let a = app(
            state("op-2", "Failed", GOOD, "SyncFailed"),
            "2026-12-06T08:00:05Z",
            "Healthy",
        );
        assert!(
            matches!(progress(&a, "op-1", &target), RollbackProgress::Failed(m) if m.contains("Failed"))
        );
        let a = app(
            state("op-2", "Succeeded", BAD, "Synced"),
            "2026-12-06T08:00:05Z",
            "Healthy",
        );
        assert!(
            matches!(progress(&a, "op-1", &target), RollbackProgress::Failed(m) if m.contains("not the rollback target"))
        );
        let a = app(
            state("op-2", "Succeeded", GOOD, "SyncFailed"),
            "2026-12-06T08:00:05Z",
            "Healthy",
        );
        assert!(
            matches!(progress(&a, "op-1", &target), RollbackProgress::Failed(m) if m.contains("Deployment model-server was not applied"))
        );
        // An empty target never matches.
        let a = app(
            state("op-2", "Succeeded", GOOD, "Synced"),
            "2026-12-06T08:00:05Z",
            "Healthy",
        );
        assert!(matches!(
            progress(&a, "op-1", &Revisions::single("")),
            RollbackProgress::Failed(_)
        ));
        let a = app(json!({"phase": 7}), "2026-12-06T08:00:05Z", "Healthy");
        assert!(matches!(
            progress(&a, "op-1", &target),
            RollbackProgress::Failed(_)
        ));
    }

    #[test]
    fn a_running_sync_is_pending() {
        let a = app(
            state("op-2", "Running", GOOD, "Synced"),
            "2026-12-06T08:00:05Z",
            "Healthy",
        );
        assert!(matches!(
            progress(&a, "op-1", &Revisions::single(GOOD)),
            RollbackProgress::Pending(_)
        ));
    }
}
