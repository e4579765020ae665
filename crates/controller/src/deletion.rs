//! Deleting an Application: Argo CD's finalizers, worked off one at a time.
//!
//! Argo CD keeps the state of a deletion in the Application's finalizers, so a restarted
//! controller continues where it stopped (`finalizeApplicationDeletion` in Argo CD's
//! `controller/appcontroller.go`, the hooks in `controller/hook.go`). Mooring uses the
//! same names, so Applications written for Argo CD (or ApplicationSets that preserve
//! them) behave the same:
//!
//! 1. [`RESOURCES_FINALIZER`] (`resources-finalizer.argocd.argoproj.io`, set by
//!    `app delete --cascade` or an ApplicationSet): every live resource of the app is
//!    deleted (foreground), except what `mooring_engine::sync::kept_on_app_deletion`
//!    keeps — `Delete=false` (resource annotation or app sync option), Helm's
//!    `helm.sh/resource-policy: keep`, CustomResourceDefinitions — and `PostDelete`
//!    hooks. A resource with `Delete=confirm` holds the whole deletion until the
//!    Application carries `argocd.argoproj.io/deletion-approved: <RFC 3339 time>` at or
//!    after its deletion time (a `DeletionError` condition says so). Once nothing to
//!    delete is left, the finalizer is removed.
//! 2. [`POST_DELETE_FINALIZER`] (`post-delete-finalizer.argocd.argoproj.io`): the
//!    `PostDelete` hooks of the app's target revision (`argocd.argoproj.io/hook:
//!    PostDelete`, Helm `post-delete`) are created (a `generateName` hook gets a name
//!    derived from the Application's uid, so a restart finds it), and the finalizer is
//!    removed once none of them is Progressing any more.
//! 3. [`POST_DELETE_CLEANUP_FINALIZER`] (`…/cleanup`): hooks are deleted per their
//!    `hook-delete-policy` — `HookSucceeded` when every hook ended Healthy, `HookFailed`
//!    when one is Degraded; the default `BeforeHookCreation` keeps them — and the
//!    finalizer is removed when they are gone. Then the API server deletes the
//!    Application.
//!
//! The controller adds both post-delete finalizers to an Application whose manifests
//! contain `PostDelete` hooks, and removes them when the hooks are gone from Git
//! ([`track_post_delete_finalizers`], called by the comparison), as Argo CD does.

use crate::action::Action;
use crate::conditions::condition;
use crate::state::desired_state;

use crate::{Context, ControllerError};
use mooring_core::app::{
    finalizers, Application, HealthStatusCode, Revisions, RESOURCES_FINALIZER,
};
use mooring_core::ResourceKey;
use mooring_engine::sync::{
    self, deletion_approved, is_post_delete_hook, HookDeletePolicy, ANNOTATION_DELETION_APPROVED,
};
use mooring_k8s::cluster::ClusterClient;
use serde_json::{json, Value};
use std::time::Duration;

pub use mooring_core::app::{POST_DELETE_CLEANUP_FINALIZER, POST_DELETE_FINALIZER};

/// How often a deletion in progress is looked at again.
const DELETION_POLL: Duration = Duration::from_millis(500);

fn api_version(obj: &Value) -> &str {
    obj.get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn app_options(app: &Application) -> Vec<String> {
    app.spec
        .sync_policy
        .as_ref()
        .map(|p| p.sync_options.clone())
        .unwrap_or_default()
}

/// Change the app's finalizers (computed from a fresh read, written with its
/// resourceVersion: see [`mooring_k8s::update_finalizers`]).
async fn update_finalizers(
    ctx: &Context,
    app: &Application,
    change: impl Fn(Vec<String>) -> Vec<String>,
) -> Result<(), ControllerError> {
    mooring_k8s::update_finalizers(&ctx.apps_api(app.namespace()), app.name(), change)
        .await
        .map_err(|e| {
            ControllerError::Write(format!(
                "finalizers of {}/{}: {e}",
                app.namespace(),
                app.name()
            ))
        })
}

async fn remove_finalizer(
    ctx: &Context,
    app: &Application,
    finalizer: &str,
) -> Result<(), ControllerError> {
    update_finalizers(ctx, app, |list| {
        list.into_iter().filter(|f| f != finalizer).collect()
    })
    .await
}

/// Add or remove the post-delete finalizers so they match whether the app's manifests
/// have `PostDelete` hooks.
pub async fn track_post_delete_finalizers(
    ctx: &Context,
    app: &Application,
    desired: &[Value],
) -> Result<(), ControllerError> {
    if app.metadata.get("deletionTimestamp").is_some() {
        return Ok(());
    }
    let wanted = desired.iter().any(is_post_delete_hook);
    let current = finalizers(&app.metadata);
    let ours = [POST_DELETE_FINALIZER, POST_DELETE_CLEANUP_FINALIZER];
    let has_all = ours.iter().all(|f| current.iter().any(|c| c == f));
    let has_any = ours.iter().any(|f| current.iter().any(|c| c == f));
    if wanted && !has_all {
        update_finalizers(ctx, app, |mut list| {
            for f in ours {
                if !list.iter().any(|c| c == f) {
                    list.push(f.to_string());
                }
            }
            list
        })
        .await?;
    } else if !wanted && has_any {
        update_finalizers(ctx, app, |list| {
            list.into_iter()
                .filter(|c| !ours.contains(&c.as_str()))
                .collect()
        })
        .await?;
    }
    Ok(())
}

/// Record why the deletion does not go on (a `DeletionError` condition), unless that is
/// already what the status says.
async fn deletion_blocked(
    ctx: &Context,
    app: &Application,
    message: String,
) -> Result<(), ControllerError> {
    let mut conds: Vec<_> = app
        .status
        .iter()
        .flat_map(|s| s.conditions.iter())
        .filter(|c| c.type_ != "DeletionError")
        .cloned()
        .collect();
    let unchanged = app.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "DeletionError" && c.message == message)
    });
    if unchanged {
        return Ok(());
    }
    conds.push(condition("DeletionError", message));
    ctx.patch_app(app, json!({"status": {"conditions": conds}}))
        .await
}

/// Drive the deletion of `app` (it has a deletion timestamp) one finalizer further.
pub async fn finalize(
    ctx: &Context,
    app: &Application,
    cluster: &ClusterClient,
) -> Result<Action, ControllerError> {
    let current = finalizers(&app.metadata);
    let has = |f: &str| current.iter().any(|c| c == f);
    if has(RESOURCES_FINALIZER) {
        return delete_resources(ctx, app, cluster).await;
    }
    if has(POST_DELETE_FINALIZER) {
        return run_post_delete_hooks(ctx, app, cluster).await;
    }
    if has(POST_DELETE_CLEANUP_FINALIZER) {
        return clean_up_post_delete_hooks(ctx, app, cluster).await;
    }
    Ok(Action::Idle)
}

async fn delete_resources(
    ctx: &Context,
    app: &Application,
    cluster: &ClusterClient,
) -> Result<Action, ControllerError> {
    let options = app_options(app);
    let doomed: Vec<Value> = cluster
        .managed(&ctx.instance_name(app))?
        .into_iter()
        .filter(|l| !is_post_delete_hook(l))
        .filter(|l| sync::kept_on_app_deletion(l, &options).is_none())
        .collect();
    let since = app
        .metadata
        .get("deletionTimestamp")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let approval = app
        .metadata
        .pointer("/annotations")
        .and_then(|a| a.get(ANNOTATION_DELETION_APPROVED))
        .and_then(Value::as_str);
    let unconfirmed: Vec<String> = doomed
        .iter()
        .filter(|l| sync::deletion_needs_confirmation(l, &options))
        .filter_map(ResourceKey::of)
        .map(|k| k.to_string())
        .collect();
    if !unconfirmed.is_empty() && !deletion_approved(approval, since) {
        deletion_blocked(
            ctx,
            app,
            format!(
                "waiting for deletion confirmation of {} (Delete=confirm): annotate the Application with {ANNOTATION_DELETION_APPROVED}=<RFC 3339 time>",
                unconfirmed.join(", ")
            ),
        )
        .await?;
        // The annotation is a change of the Application: it queues the app again.
        return Ok(Action::Idle);
    }
    for live in &doomed {
        if live.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        if let Some(key) = ResourceKey::of(live) {
            cluster
                .delete(api_version(live), &key, Some("foreground"))
                .await?;
        }
    }
    if !doomed.is_empty() {
        return Ok(Action::RequeueAfter(DELETION_POLL));
    }
    remove_finalizer(ctx, app, RESOURCES_FINALIZER).await?;
    Ok(Action::RequeueAfter(Duration::from_millis(10)))
}

/// The app's `PostDelete` hooks at its target revision, named and placed for creation.
async fn post_delete_hooks(
    ctx: &Context,
    app: &Application,
    cluster: &ClusterClient,
) -> Result<Vec<Value>, ControllerError> {
    let (_, desired) = desired_state(ctx, app, &Revisions::default(), cluster).await?;
    let mut hooks: Vec<Value> = desired.into_iter().filter(is_post_delete_hook).collect();
    let uid = app
        .metadata
        .get("uid")
        .and_then(Value::as_str)
        .unwrap_or(app.name())
        .to_string();
    crate::operation::name_hooks(&mut hooks, &uid);
    Ok(hooks)
}

async fn run_post_delete_hooks(
    ctx: &Context,
    app: &Application,
    cluster: &ClusterClient,
) -> Result<Action, ControllerError> {
    let hooks = match post_delete_hooks(ctx, app, cluster).await {
        Ok(h) => h,
        Err(e) => {
            deletion_blocked(
                ctx,
                app,
                format!("PostDelete hooks cannot be rendered: {e}"),
            )
            .await?;
            return Ok(Action::RequeueAfter(Duration::from_secs(5)));
        }
    };
    let mut created = 0;
    let mut running = Vec::new();
    for hook in &hooks {
        let Some(key) = ResourceKey::of(hook) else {
            continue;
        };
        match cluster.get(api_version(hook), &key).await? {
            Some(live) => running.push((key, live)),
            None => match cluster.create(hook).await {
                Ok(_) => created += 1,
                Err(e) if e.is_conflict() => {}
                Err(e) => {
                    deletion_blocked(ctx, app, format!("PostDelete hook {key}: {e}")).await?;
                    return Ok(Action::RequeueAfter(Duration::from_secs(5)));
                }
            },
        }
    }
    if created > 0 {
        tracing::info!(app = app.name(), "created {created} PostDelete hooks");
        return Ok(Action::RequeueAfter(DELETION_POLL));
    }
    let progressing = running.iter().any(|(_, live)| {
        ctx.assess_health(live).map(|h| h.status) == Some(HealthStatusCode::Progressing)
    });
    if progressing {
        return Ok(Action::RequeueAfter(DELETION_POLL));
    }
    remove_finalizer(ctx, app, POST_DELETE_FINALIZER).await?;
    Ok(Action::RequeueAfter(Duration::from_millis(10)))
}

async fn clean_up_post_delete_hooks(
    ctx: &Context,
    app: &Application,
    cluster: &ClusterClient,
) -> Result<Action, ControllerError> {
    let hooks: Vec<Value> = cluster
        .managed(&ctx.instance_name(app))?
        .into_iter()
        .filter(is_post_delete_hook)
        .collect();
    let aggregated = HealthStatusCode::worst(hooks.iter().map(|h| {
        ctx.assess_health(h)
            .map(|s| s.status)
            .unwrap_or(HealthStatusCode::Healthy)
    }));
    let mut pending = 0;
    for hook in &hooks {
        let policies = sync::delete_policies(hook);
        let delete = (policies.contains(&HookDeletePolicy::HookSucceeded)
            && aggregated == HealthStatusCode::Healthy)
            || (policies.contains(&HookDeletePolicy::HookFailed)
                && aggregated == HealthStatusCode::Degraded);
        if !delete {
            continue;
        }
        pending += 1;
        if hook.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        if let Some(key) = ResourceKey::of(hook) {
            cluster
                .delete(api_version(hook), &key, Some("background"))
                .await?;
        }
    }
    if pending > 0 {
        return Ok(Action::RequeueAfter(DELETION_POLL));
    }
    remove_finalizer(ctx, app, POST_DELETE_CLEANUP_FINALIZER).await?;
    Ok(Action::Idle)
}
