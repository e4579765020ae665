//! Application conditions: building one, keeping an unchanged one (and its transition
//! time) so an unchanged status is not written again, and replacing conditions of some
//! types while leaving the others to the writers that own them.
//!
//! Every writer of `status.conditions` (reconcile, operation, deletion, policy gate and
//! audit, project orphans, rollback) uses these helpers; they live apart from all of
//! them so that none of them imports another for a condition.

use crate::{Context, ControllerError};
use mooring_core::app::{Application, ApplicationCondition};
use serde_json::json;

/// The time conditions and operation states are stamped with (RFC 3339, UTC).
pub(crate) use mooring_core::time::now_rfc3339 as now;

pub(crate) fn condition(type_: &str, message: impl Into<String>) -> ApplicationCondition {
    ApplicationCondition {
        type_: type_.into(),
        message: message.into(),
        last_transition_time: Some(now()),
    }
}

/// A condition of `type_` with `message`, keeping the existing one (and its transition
/// time) when nothing changed, so an unchanged status is not written again.
pub(crate) fn kept_condition(
    app: &Application,
    type_: &str,
    message: String,
) -> ApplicationCondition {
    app.status
        .iter()
        .flat_map(|s| s.conditions.iter())
        .find(|c| c.type_ == type_ && c.message == message)
        .cloned()
        .unwrap_or_else(|| condition(type_, message))
}

/// The app's current conditions without those of the given types (about to be replaced).
pub(crate) fn conditions_except(app: &Application, types: &[&str]) -> Vec<ApplicationCondition> {
    app.status
        .iter()
        .flat_map(|s| s.conditions.iter())
        .filter(|c| !types.contains(&c.type_.as_str()))
        .cloned()
        .collect()
}

/// The same conditions, in any order.
pub(crate) fn same_conditions(a: &[ApplicationCondition], b: &[ApplicationCondition]) -> bool {
    fn sorted(c: &[ApplicationCondition]) -> Vec<&ApplicationCondition> {
        let mut v: Vec<&ApplicationCondition> = c.iter().collect();
        v.sort_by(|x, y| (&x.type_, &x.message).cmp(&(&y.type_, &y.message)));
        v
    }
    a.len() == b.len() && sorted(a) == sorted(b)
}

/// Replace the conditions of the given types on the Application (a message of `None`
/// removes that type) (write only on change). When `app` (which a loop may have listed
/// seconds ago) says a write is needed, the write is computed against the Application as
/// it is now, so a condition another loop wrote meanwhile is kept; when nothing changes,
/// nothing is read or written.
pub async fn set_conditions(
    ctx: &Context,
    app: &Application,
    updates: &[(&str, Option<String>)],
) -> Result<(), ControllerError> {
    if updated_conditions(app, updates).is_none() {
        return Ok(());
    }
    let fresh = ctx.fresh_app(app).await;
    let app = fresh.as_ref().unwrap_or(app);
    match updated_conditions(app, updates) {
        Some(conds) => {
            ctx.patch_app(app, json!({"status": {"conditions": conds}}))
                .await
        }
        None => Ok(()),
    }
}

/// `app`'s conditions with `updates` applied (an unchanged message keeps its condition and
/// transition time), or `None` when that changes nothing.
fn updated_conditions(
    app: &Application,
    updates: &[(&str, Option<String>)],
) -> Option<Vec<ApplicationCondition>> {
    let current = app
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut conds: Vec<_> = current
        .iter()
        .filter(|c| !updates.iter().any(|(t, _)| *t == c.type_))
        .cloned()
        .collect();
    for (type_, message) in updates {
        if let Some(message) = message {
            let kept = current
                .iter()
                .find(|c| c.type_ == *type_ && c.message == *message)
                .cloned();
            conds.push(kept.unwrap_or_else(|| condition(type_, message.clone())));
        }
    }
    (conds != current).then_some(conds)
}

/// A condition of a Mooring policy object (RollbackPolicy, DisasterRecoveryPlan): `True`
/// or `False`, keeping the transition time of the same type and status in `prev`.
pub(crate) fn policy_condition(
    type_: &str,
    ok: bool,
    message: String,
    prev: &[mooring_core::rollback::PolicyCondition],
) -> mooring_core::rollback::PolicyCondition {
    let status = if ok { "True" } else { "False" };
    let since = prev
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .and_then(|c| c.last_transition_time.clone())
        .unwrap_or_else(now);
    mooring_core::rollback::PolicyCondition {
        type_: type_.into(),
        status: status.into(),
        message,
        last_transition_time: Some(since),
    }
}
