//! The image watcher: Argo CD Image Updater's annotations, acted on by the controller.
//!
//! An Application that carries `argocd-image-updater.argoproj.io/image-list` is watched:
//! every image of the list is checked in its registry — on a timer per registry
//! (`interval` in `registries.conf`, else [`crate::ControllerOptions::image_interval`],
//! two minutes as Image Updater's `--interval`) and at once when the registry announces a
//! push to the image's repository ([`Trigger::notify`], fed by the distribution
//! registry's notifications webhook, `POST /api/webhook/registry`). When the image's
//! strategy picks a version other than the one running, the change is written back:
//!
//! * `write-back-method: git` — a commit on the branch the app tracks (or `git-branch`),
//!   through the app's repository credentials (or `git:secret:NS/NAME`), editing the
//!   overlay's `images:` (`write-back-target: kustomization`) or Argo CD's
//!   `.argocd-source-<app>.yaml` parameter file, which the renderer honours as Argo CD
//!   does. The commit passes the policy gate before it is pushed: the app is rendered at
//!   the unpushed commit and reviewed against the constraints in force exactly as a sync
//!   of it would be; a `deny` violation means nothing is pushed and the attempt is
//!   reported (the `ImageUpdateError` condition and a `ImageUpdateRefused` Event). A
//!   branch that moved meanwhile is handled by re-deriving the edit from the new head
//!   ([`mooring_source::RepoCache::update_branch`]), never by force. The app is then
//!   refreshed, so the normal sync deploys the commit (no waiting for the Git poll).
//! * `write-back-method: argocd` (the default) — a parameter override in the
//!   Application's `spec.source` (kustomize images, or Helm parameters), which the next
//!   reconcile renders; the policy gate is the sync's own.
//!
//! The running version is read from the live objects the app manages (Image Updater
//! reads the app's status summary, which is the same thing). A write-back is idempotent:
//! when Git already says the new version, the edit is empty and nothing is committed, so
//! a check repeated before the sync finished does nothing.
//!
//! Problems are reported on the Application (the `ImageUpdateError` condition, removed
//! when a check succeeds again) and as Events; nothing an annotation asks for is
//! silently skipped.

mod check;
pub mod registry;
mod writeback;

use crate::Context;
use mooring_core::app::Application;
use mooring_engine::image::registries::Settings;
use mooring_engine::image::{self as rules, ImageChange, UpdateConfig};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The Application condition of a failed or refused image update.
pub const CONDITION: &str = "ImageUpdateError";
/// The Event component.
const COMPONENT: &str = "mooring-image-updater";
/// Image Updater's ConfigMap and its key holding `registries.conf`.
pub const CONFIG_MAP: &str = "argocd-image-updater-config";
pub const REGISTRIES_KEY: &str = "registries.conf";
/// How often the list of watched Applications is read again.
const APPS_EVERY: Duration = Duration::from_secs(5);

/// Wakes the watcher for repositories a registry announced a push to. Cheap to clone.
#[derive(Clone, Default)]
pub struct Trigger {
    inner: Arc<TriggerInner>,
}

#[derive(Default)]
struct TriggerInner {
    notify: tokio::sync::Notify,
    /// Repository paths (`models/fraud-detector`) pushed to since the last pass.
    due: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trigger").finish_non_exhaustive()
    }
}

impl Trigger {
    /// Check every watched image whose repository path is one of `repositories` now.
    /// Matching is by repository path only (the registry's host in a notification is the
    /// one the pusher used, which may differ from the prefix images are named by): an
    /// extra check of a same-named repository elsewhere costs one tag listing.
    pub fn notify<I, S>(&self, repositories: I) -> usize
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut due = self
            .inner
            .due
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = due.len();
        due.extend(repositories.into_iter().map(Into::into));
        let added = due.len() - before;
        drop(due);
        self.inner.notify.notify_one();
        added
    }

    fn take(&self) -> HashSet<String> {
        std::mem::take(
            &mut *self
                .inner
                .due
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

/// Start the image watcher's task.
pub fn start(ctx: Arc<Context>) -> Vec<tokio::task::JoinHandle<()>> {
    vec![tokio::spawn(watch(ctx))]
}

/// A watched Application and what its annotations ask.
struct Watched {
    app: std::sync::Arc<Application>,
    config: Result<UpdateConfig, String>,
}

/// The watcher's memory: when each (app, image) was last checked, and each app's
/// configuration then (a changed annotation is checked at once, not at the next interval).
#[derive(Default)]
struct Memory {
    checked: HashMap<(String, String), Instant>,
    configs: HashMap<String, UpdateConfig>,
}

async fn watch(ctx: Arc<Context>) {
    let client = registry::RegistryClient::new(ctx.outbound.clone());
    let mut memory = Memory::default();
    let mut apps: Vec<Watched> = Vec::new();
    let mut apps_read: Option<Instant> = None;
    let mut last_conf: Option<Result<Settings, String>> = None;
    loop {
        let notified = ctx.images.take();
        if apps_read.is_none_or(|t| t.elapsed() >= APPS_EVERY) || !notified.is_empty() {
            apps = watched_apps(&ctx).await;
            apps_read = Some(Instant::now());
            // Forget apps no longer watched (deleted, or their annotations removed).
            let keys: HashSet<String> = apps.iter().map(|w| app_key(&w.app)).collect();
            memory.checked.retain(|(app, _), _| keys.contains(app));
            memory.configs.retain(|app, _| keys.contains(app));
        }
        if !apps.is_empty() {
            let settings = settings(&ctx).await;
            // A changed configuration (a registry added, moved or its credentials
            // changed) is looked at again at once, not at the next interval.
            if last_conf.as_ref().is_some_and(|c| *c != settings) {
                memory.checked.clear();
            }
            last_conf = Some(settings.clone());
            for w in &apps {
                check_app(&ctx, &client, &settings, w, &notified, &mut memory).await;
            }
        }
        tokio::select! {
            _ = ctx.images.inner.notify.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// `namespace/name` of an Application.
fn app_key(app: &Application) -> String {
    format!("{}/{}", app.namespace(), app.name())
}

/// The Applications with an `image-list` annotation, parsed. Registry pushes a
/// standalone server recorded on them ([`crate::push::REGISTRY_PUSH_ANNOTATION`]) are
/// taken as [`Trigger::notify`] and the annotation removed.
async fn watched_apps(ctx: &Context) -> Vec<Watched> {
    let apps = crate::all_apps(ctx).await;
    for app in &apps {
        let pushed = app
            .metadata
            .pointer(&format!(
                "/annotations/{}",
                crate::push::REGISTRY_PUSH_ANNOTATION.replace('/', "~1")
            ))
            .and_then(Value::as_str)
            .map(crate::push::registry_push_paths);
        if let Some(paths) = pushed {
            ctx.images.notify(paths);
            let clear = serde_json::json!({"metadata": {"annotations": {
                crate::push::REGISTRY_PUSH_ANNOTATION: null}}});
            if let Err(e) = ctx.patch_app(app, clear).await {
                tracing::warn!("clearing the registry push of {}: {e}", app_key(app));
            }
        }
    }
    apps.into_iter()
        .filter_map(|app| {
            let annotations: BTreeMap<String, String> = app
                .metadata
                .get("annotations")
                .and_then(|a| serde_json::from_value(a.clone()).ok())
                .unwrap_or_default();
            let config = match rules::annotations::parse(app.name(), &annotations) {
                Ok(Some(c)) => Ok(c),
                Ok(None) => return None,
                Err(errors) => Err(errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")),
            };
            Some(Watched { app, config })
        })
        .collect()
}

/// The admin's Image Updater ConfigMap (defaults when there is none; an invalid one is
/// reported on every watched Application and stops their updates until it is fixed).
async fn settings(ctx: &Context) -> Result<Settings, String> {
    let key = mooring_core::ResourceKey::new("", "ConfigMap", ctx.namespace(), CONFIG_MAP);
    let cm = ctx
        .management
        .get("v1", &key)
        .await
        .map_err(|e| format!("reading ConfigMap {}/{CONFIG_MAP}: {e}", ctx.namespace()))?;
    let data: BTreeMap<String, String> = cm
        .as_ref()
        .and_then(|c| c.get("data"))
        .and_then(|d| serde_json::from_value(d.clone()).ok())
        .unwrap_or_default();
    rules::registries::settings(&data)
        .map_err(|e| format!("ConfigMap {}/{CONFIG_MAP}: {e}", ctx.namespace()))
}

/// Check the due images of one app and write back what changed; report the outcome.
async fn check_app(
    ctx: &Arc<Context>,
    client: &registry::RegistryClient,
    settings: &Result<Settings, String>,
    w: &Watched,
    notified: &HashSet<String>,
    memory: &mut Memory,
) {
    let key = app_key(&w.app);
    let config = match &w.config {
        Ok(c) => c,
        Err(e) => {
            report(
                ctx,
                &w.app,
                Some(format!("the image-updater annotations are invalid: {e}")),
            )
            .await;
            return;
        }
    };
    let (registries, settings) = match settings {
        Ok(s) => (s.registries.as_slice(), s),
        Err(e) => {
            report(ctx, &w.app, Some(e.clone())).await;
            return;
        }
    };
    if memory.configs.get(&key) != Some(config) {
        memory.checked.retain(|(app, _), _| *app != key);
        memory.configs.insert(key.clone(), config.clone());
    }
    let default_interval = ctx.options.image_interval;
    // The images due now: notified, or their registry's interval passed.
    let mut due = Vec::new();
    for image in &config.images {
        let reg = check::for_image(registries, &image.image);
        let interval = reg
            .config
            .interval_seconds
            .map(Duration::from_secs)
            .unwrap_or(default_interval);
        let repo = reg.repository.clone();
        let mkey = (key.clone(), image.image.to_string());
        let timer = memory
            .checked
            .get(&mkey)
            .is_none_or(|t| t.elapsed() >= interval);
        if timer || notified.contains(&repo) {
            memory.checked.insert(mkey, Instant::now());
            due.push((image, reg));
        }
    }
    if due.is_empty() {
        return;
    }
    let live = match ctx.cluster_for(&w.app.spec.destination) {
        Ok(cluster) => match cluster.managed(&ctx.instance_name(&w.app)) {
            Ok(live) => live,
            // Loading: the next pass reads it.
            Err(_) => return,
        },
        Err(e) => {
            report(ctx, &w.app, Some(format!("the destination: {e}"))).await;
            return;
        }
    };
    // What runs now (a container image that does not parse is reported, not skipped).
    let (deployed, bad) = rules::select::current_images(&live);
    let mut changes: Vec<ImageChange> = Vec::new();
    let mut problems: Vec<String> = bad.iter().map(ToString::to_string).collect();
    ctx.metrics.record_image_checks(due.len() as u64);
    for (image, reg) in due {
        let auth = match check::credentials(ctx, image, &reg).await {
            Ok(a) => a,
            Err(e) => {
                problems.push(format!("{}: {e}", image.image));
                continue;
            }
        };
        match check::newer(client, &reg, auth.as_ref(), image, &deployed).await {
            Ok(Some(change)) => changes.push(change),
            Ok(None) => {}
            Err(e) => problems.push(format!("{}: {e}", image.image)),
        }
    }
    if !changes.is_empty() {
        match writeback::write_back(ctx, &w.app, config, settings, &changes).await {
            Ok(Some(done)) => {
                ctx.metrics.record_image_update("written");
                tracing::info!(app = %key, %done, "image update written back");
                crate::events::record(
                    ctx,
                    &app_object(&w.app),
                    crate::events::EventType::Normal,
                    "ImageUpdated",
                    &done,
                    COMPONENT,
                )
                .await;
                ctx.refresh(&key);
            }
            Ok(None) => {}
            Err(e) => {
                ctx.metrics
                    .record_image_update(if e.refused { "refused" } else { "failed" });
                if e.refused {
                    crate::events::record(
                        ctx,
                        &app_object(&w.app),
                        crate::events::EventType::Warning,
                        "ImageUpdateRefused",
                        &e.message,
                        COMPONENT,
                    )
                    .await;
                }
                problems.push(e.message);
            }
        }
    }
    let message = (!problems.is_empty()).then(|| problems.join("; "));
    report(ctx, &w.app, message).await;
}

/// The Application as an object Events can name.
fn app_object(app: &Application) -> Value {
    serde_json::json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": app.metadata,
    })
}

/// Set (or clear, with `None`) the `ImageUpdateError` condition.
async fn report(ctx: &Context, app: &Application, message: Option<String>) {
    let current = app
        .status
        .iter()
        .flat_map(|s| s.conditions.iter())
        .find(|c| c.type_ == CONDITION)
        .map(|c| c.message.clone());
    if current == message {
        return;
    }
    if let Some(m) = &message {
        tracing::warn!(app = %app_key(app), "image update: {m}");
    }
    if let Err(e) = crate::conditions::set_conditions(ctx, app, &[(CONDITION, message)]).await {
        tracing::warn!(app = %app_key(app), "writing the {CONDITION} condition: {e}");
    }
}

/// Whether merging `patch` (a JSON merge patch) into `current` leaves it as it is: an
/// `argocd` write-back that sets what the Application already says writes nothing.
fn merge_patch_changes_nothing(current: &Value, patch: &Value) -> bool {
    let mut merged = current.clone();
    mooring_core::merge_patch::apply(&mut merged, patch);
    merged == *current
}
