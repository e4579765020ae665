//! The Application work queue and what feeds it: the Application watch (apps outside the
//! control plane's namespaces are reported once and ignored), the live-object watches
//! (self-heal), repository Secret changes, the periodic poll with jitter, and the workers
//! that run [`crate::reconcile::reconcile`] one app at a time per name (the shared
//! [`crate::workqueue::WorkQueue`]).

use crate::workqueue::WorkQueue;
use crate::{events, reconcile, Context};
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use mooring_core::app::Application;
use mooring_k8s::cluster::ClusterClient;
use mooring_k8s::kube;
use mooring_k8s::resources::application_resource;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Application changes → queue. Applications outside the namespaces the control plane
/// reads ([`mooring_engine::project::ControlPlane`]) are never queued: each is reported
/// once (a Warning Event on it and a log line naming the reason) and ignored.
pub(crate) async fn watch_apps(ctx: Arc<Context>) {
    use futures::StreamExt;
    let api: Api<DynamicObject> =
        Api::all_with(ctx.management.client().clone(), &application_resource());
    let mut stream = kube::runtime::watcher(api, Default::default())
        .default_backoff()
        .boxed();
    let mut ignored = Ignored::new(application_resource());
    let store = |f: &dyn Fn(&mut crate::app_store::AppStore)| {
        f(&mut ctx
            .app_store
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    };
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(kube::runtime::watcher::Event::Init) => store(&|s| s.begin_relist()),
            Ok(kube::runtime::watcher::Event::InitDone) => {
                store(&|s| s.end_relist());
                ctx.lifecycle.listed_apps();
            }
            Ok(
                ev @ (kube::runtime::watcher::Event::Apply(_)
                | kube::runtime::watcher::Event::InitApply(_)),
            ) => {
                let (relisted, o) = match ev {
                    kube::runtime::watcher::Event::InitApply(o) => (true, o),
                    kube::runtime::watcher::Event::Apply(o) => (false, o),
                    _ => continue,
                };
                if ignored.check(&ctx, &o).await {
                    continue;
                }
                let ns = o.metadata.namespace.clone().unwrap_or_default();
                let name = o.metadata.name.clone().unwrap_or_default();
                let key = format!("{ns}/{name}");
                ctx.app_index
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(
                        ctx.options.control_plane.instance_name(&ns, &name),
                        key.clone(),
                    );
                // Fields Argo CD has and Mooring does not act on are reported per change
                // of the app, not per reconcile (reconciles read the parsed app).
                let parsed = serde_json::to_value(&o).ok().and_then(|v| {
                    ctx.set_unsupported(&key, mooring_engine::unsupported::application(&v));
                    crate::app_store::parse(v)
                });
                store(&|s| {
                    if relisted {
                        s.relisted(key.clone(), parsed.clone());
                    } else {
                        s.put(key.clone(), parsed.clone());
                    }
                });
                ctx.enqueue(&key);
            }
            Ok(kube::runtime::watcher::Event::Delete(o)) => {
                let ns = o.metadata.namespace.clone().unwrap_or_default();
                let name = o.metadata.name.clone().unwrap_or_default();
                ignored.forget(&o);
                ctx.app_index
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .remove(&ctx.options.control_plane.instance_name(&ns, &name));
                store(&|s| s.remove(&format!("{ns}/{name}")));
            }
            Err(e) => {
                tracing::debug!("application watch: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Objects (Applications, ApplicationSets) outside the namespaces the control plane reads,
/// each reported once per generation ([`report_ignored`]) while a watch sees it.
pub(crate) struct Ignored {
    resource: ApiResource,
    /// `namespace/name` → the generation last reported.
    reported: HashMap<String, i64>,
}

impl Ignored {
    pub(crate) fn new(resource: ApiResource) -> Self {
        Ignored {
            resource,
            reported: HashMap::new(),
        }
    }

    fn id(o: &DynamicObject) -> String {
        format!(
            "{}/{}",
            o.metadata.namespace.as_deref().unwrap_or_default(),
            o.metadata.name.as_deref().unwrap_or_default()
        )
    }

    /// Whether `o` is ignored; the first time it is seen at a generation, it is reported.
    pub(crate) async fn check(&mut self, ctx: &Context, o: &DynamicObject) -> bool {
        if ctx.reads(o) {
            return false;
        }
        let generation = o.metadata.generation.unwrap_or_default();
        if self.reported.insert(Self::id(o), generation) != Some(generation) {
            report_ignored(ctx, &self.resource, o).await;
        }
        true
    }

    /// `o` was deleted.
    pub(crate) fn forget(&mut self, o: &DynamicObject) {
        self.reported.remove(&Self::id(o));
    }
}

/// Why an Application in a namespace the control plane does not read is ignored.
pub fn ignored_reason(control_plane: &mooring_engine::project::ControlPlane, ns: &str) -> String {
    format!(
        "namespace {ns} is neither the control-plane namespace {:?} nor allowed by the controller's --application-namespaces {:?}",
        control_plane.namespace, control_plane.application_namespaces
    )
}

/// The Event and log line for an Application (or ApplicationSet) that is never reconciled
/// because of the namespace it lives in.
async fn report_ignored(ctx: &Context, resource: &ApiResource, o: &DynamicObject) {
    let ns = o.metadata.namespace.clone().unwrap_or_default();
    let name = o.metadata.name.clone().unwrap_or_default();
    let message = format!(
        "{} {ns}/{name} is ignored: {}",
        resource.kind,
        ignored_reason(&ctx.options.control_plane, &ns)
    );
    tracing::warn!("{message}");
    let Ok(mut object) = serde_json::to_value(o) else {
        return;
    };
    object["apiVersion"] = resource.api_version.clone().into();
    object["kind"] = resource.kind.clone().into();
    events::record(
        ctx,
        &object,
        events::EventType::Warning,
        "NamespaceNotAllowed",
        &message,
        "mooring-controller",
    )
    .await;
}

/// An Application whose spec does not parse cannot be reconciled: say so on it, as the
/// `InvalidSpecError` condition (written only when it changes), not only in a log line.
async fn report_unparsable(ctx: &Context, ns: &str, name: &str, raw: &Value, message: &str) {
    const TYPE: &str = "InvalidSpecError";
    let mut conditions: Vec<Value> = raw
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if conditions
        .iter()
        .any(|c| c["type"] == TYPE && c["message"] == message)
    {
        return;
    }
    conditions.retain(|c| c["type"] != TYPE);
    conditions.push(serde_json::json!({
        "type": TYPE, "message": message, "lastTransitionTime": mooring_core::time::now_rfc3339(),
    }));
    let patch = serde_json::json!({"status": {"conditions": conditions}});
    if let Err(e) = ctx
        .apps_api(ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        tracing::warn!("reporting that application {ns}/{name} does not parse: {e}");
    }
}

/// Live changes of managed objects → queue (self-heal, health updates). The change
/// stream never drops a change, so there is no "lagged: requeue everything" case.
pub(crate) async fn watch_live(ctx: Arc<Context>, cluster: Arc<ClusterClient>) {
    let mut rx = cluster.subscribe();
    while let Some(change) = rx.recv().await {
        if let Some(key) = app_key_of_instance(&ctx, &change.app) {
            ctx.enqueue(&key);
        }
    }
}

async fn all_app_keys(ctx: &Context) -> Vec<String> {
    all_apps(ctx)
        .await
        .iter()
        .map(|a| format!("{}/{}", a.namespace(), a.name()))
        .collect()
}

/// Every Application the control plane reads (in its namespace or one the controller
/// allows; those that do not parse are skipped, their reconcile reports them): from the
/// Application watch's store ([`crate::app_store`]), or — before its first listing is
/// complete — from the API server.
pub(crate) async fn all_apps(ctx: &Context) -> Vec<Arc<Application>> {
    let stored = ctx
        .app_store
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .list();
    if let Some(apps) = stored {
        return apps;
    }
    let api: Api<DynamicObject> =
        Api::all_with(ctx.management.client().clone(), &application_resource());
    match api.list(&Default::default()).await {
        Ok(l) => l
            .items
            .into_iter()
            .filter(|o| ctx.reads(o))
            .filter_map(|o| serde_json::to_value(o).ok())
            .filter_map(|v| serde_json::from_value(v).ok())
            .map(Arc::new)
            .collect(),
        Err(e) => {
            tracing::warn!("listing applications: {e}");
            vec![]
        }
    }
}

/// The `namespace/name` key of the app whose tracking ids carry `instance`.
fn app_key_of_instance(ctx: &Context, instance: &str) -> Option<String> {
    ctx.app_index
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(instance)
        .cloned()
}

/// Argo CD repository Secrets (`argocd.argoproj.io/secret-type: repository`) and
/// credential templates (`repo-creds`) in the control-plane namespace provide Git
/// credentials, matched by repository URL ([`CredentialIndex`]).
pub(crate) async fn watch_repository_secrets(ctx: Arc<Context>) {
    use futures::StreamExt;
    use mooring_k8s::k8s_openapi::api::core::v1::Secret;
    // Only the control-plane namespace's: a tenant's Secret elsewhere never supplies or
    // replaces credentials, nor turns a check off.
    let api: Api<Secret> = Api::namespaced(ctx.management.client().clone(), ctx.namespace());
    let cfg = kube::runtime::watcher::Config::default()
        .labels("argocd.argoproj.io/secret-type in (repository,repo-creds)");
    let mut stream = kube::runtime::watcher(api, cfg).default_backoff().boxed();
    while let Some(ev) = stream.next().await {
        let (secret, deleted) = match ev {
            Ok(
                kube::runtime::watcher::Event::Apply(s)
                | kube::runtime::watcher::Event::InitApply(s),
            ) => (s, false),
            Ok(kube::runtime::watcher::Event::Delete(s)) => (s, true),
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!("repository secret watch: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let name = secret.metadata.name.clone().unwrap_or_default();
        let parsed = match serde_json::to_value(&secret) {
            Ok(v) => mooring_source::RepoSecret::parse(&v),
            Err(e) => Err(mooring_source::SourceError::InvalidSecret {
                name: name.clone(),
                reason: e.to_string(),
            }),
        };
        let mut all = ctx
            .credentials
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // A Secret edited into an invalid one no longer provides its old credentials.
        all.remove(&name);
        match parsed {
            Ok(s) if !deleted => all.insert(s),
            Ok(_) => {}
            Err(e) if !deleted => tracing::warn!("repository secret ignored: {e}"),
            Err(_) => {}
        }
    }
}

/// Periodic refresh of every app, jittered so a fleet does not hit Git at once.
pub(crate) async fn poll(ctx: Arc<Context>) {
    loop {
        let jitter = rand_fraction() * 0.1;
        tokio::time::sleep(ctx.options.poll.mul_f64(1.0 + jitter)).await;
        for key in all_app_keys(&ctx).await {
            ctx.enqueue(&key);
        }
    }
}

fn rand_fraction() -> f64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    f64::from(n % 1000) / 1000.0
}

/// The Application workers: the shared [`WorkQueue`] runs [`run_one`] for each key, at
/// most `options.workers` apps at a time and never one app twice at once.
pub(crate) async fn work(ctx: Arc<Context>, rx: mpsc::UnboundedReceiver<String>) {
    WorkQueue::new(ctx.options.workers)
        .with_depth(ctx.metrics.workqueue_gauge(crate::metrics::APP_QUEUE))
        .run(rx, move |key: String| {
            let ctx = ctx.clone();
            async move {
                match run_one(&ctx, &key).await {
                    Some(reconcile::Action::RequeueAfter(d)) => Some(d),
                    Some(reconcile::Action::Idle) | None => None,
                }
            }
        })
        .await;
}

/// Read an app the store does not hold from the API server. `Err` carries what
/// [`run_one`] returns when there is nothing to reconcile: the app is gone, cannot be
/// read now (retried), or does not parse (reported on the app).
async fn read_app(
    ctx: &Arc<Context>,
    key: &str,
    ns: &str,
    name: &str,
) -> Result<Application, Option<reconcile::Action>> {
    let obj = match ctx.apps_api(ns).get_opt(name).await {
        Ok(Some(o)) => o,
        Ok(None) => {
            ctx.set_unsupported(key, vec![]);
            return Err(None);
        }
        Err(e) => {
            tracing::warn!("reading application {key}: {e}");
            return Err(Some(reconcile::Action::RequeueAfter(Duration::from_secs(
                2,
            ))));
        }
    };
    let value = serde_json::to_value(&obj).map_err(|_| None)?;
    ctx.set_unsupported(key, mooring_engine::unsupported::application(&value));
    match serde_path_to_error::deserialize(&value) {
        Ok(a) => Ok(a),
        Err(e) => {
            tracing::warn!("application {key} is not valid: {e}");
            report_unparsable(
                ctx,
                ns,
                name,
                &value,
                &format!("the Application does not parse: {e}"),
            )
            .await;
            Err(None)
        }
    }
}

async fn run_one(ctx: &Arc<Context>, key: &str) -> Option<reconcile::Action> {
    // A stopping controller takes no new work (see `crate::shutdown`).
    let _in_flight = ctx.lifecycle.begin()?;
    let (ns, name) = key.split_once('/')?;
    if !ctx.options.control_plane.namespace_enabled(ns) {
        return None;
    }
    // The app as the watch (or this controller's last write) left it; the API server
    // only for one the store does not hold (not listed yet, or it does not parse: that
    // path reports why).
    let stored = ctx
        .app_store
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(key);
    let app = match stored {
        Some(app) => app,
        None => match read_app(ctx, key, ns, name).await {
            Ok(app) => Arc::new(app),
            Err(action) => return action,
        },
    };
    // Sharding: apps of destinations in shards this replica does not own are another
    // replica's (nothing is read or written for them here).
    if !ctx.sharding.owns(&app.spec.destination) {
        return None;
    }
    ctx.metrics.record_destination_reconcile(
        &app.spec.destination,
        ctx.sharding.shard_of(&app.spec.destination),
    );
    match reconcile::reconcile(app, ctx.clone()).await {
        Ok(a) => Some(a),
        Err(e @ crate::ControllerError::Conflict(_)) => {
            // Someone wrote the app since it was read: read it again soon.
            tracing::debug!("reconcile {key}: {e}");
            Some(reconcile::Action::RequeueAfter(Duration::from_millis(100)))
        }
        Err(e) => {
            // Error policy: log and retry with a short backoff.
            tracing::warn!("reconcile {key}: {e}");
            Some(reconcile::Action::RequeueAfter(Duration::from_secs(2)))
        }
    }
}
