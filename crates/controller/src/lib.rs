//! The application controller: keeps every destination cluster equal to Git.
//!
//! Applications are custom resources in the management cluster; their status is the
//! controller's only state, so the controller can be killed at any moment and resumes
//! from what it wrote. Work arrives on one queue of application names from four
//! triggers — a change of the Application itself (watch), a change of one of its live
//! objects (the destination's watch-fed cache: this is self-heal, not a timer), a Git
//! webhook, and the periodic poll (default 3 minutes, with jitter) — and a small pool of
//! workers runs [`reconcile::reconcile`] on it, one app at a time per name (the shared
//! `workqueue::WorkQueue`, also used by the ApplicationSet controller).
//!
//! Several replicas share the work by destination cluster ([`sharding`]): each reconciles
//! only the apps whose destination is in a shard whose Lease it holds, one leader runs
//! the management-cluster loops, and every write of a reconcile names the
//! resourceVersion it read, so a stale replica can never sync an app a second time.

pub mod action;
pub mod analysis;
pub mod app_rollback;
mod app_store;
pub mod appset;
pub mod clusters;
pub mod conditions;
pub mod crash;
pub mod deletion;
pub mod dr;
mod error;
pub mod events;
pub mod forge;
pub mod git_rollback;
pub mod image;
pub mod metrics;
pub mod notifications;
pub mod operation;
mod options;
pub mod outbound;
pub mod policy;
pub mod project;
pub mod prometheus;
pub mod push;
mod queue;
pub mod reconcile;
pub mod rollback;
pub mod rollout;
pub mod rollout_traffic;
pub mod rollout_tree;
pub mod sharding;
mod shutdown;
pub mod state;
mod workqueue;

pub use error::ControllerError;
pub use metrics::{Metrics, ShardingState};
pub use options::{ControllerOptions, ShardingOptions};
pub use queue::ignored_reason;
pub(crate) use queue::{all_apps, watch_live, Ignored};
use queue::{poll, watch_apps, watch_repository_secrets, work};

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use mooring_core::app::{Application, ApplicationDestination};
use mooring_k8s::cluster::ClusterClient;
use mooring_k8s::kube;
use mooring_k8s::resources::application_resource;
use mooring_source::{CredentialIndex, Credentials, RepoCache};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Everything a reconcile needs (kube-rs's `Context`).
pub struct Context {
    pub options: ControllerOptions,
    /// The management cluster, where Applications live; also `https://kubernetes.default.svc`.
    pub management: Arc<ClusterClient>,
    /// Other destinations by server URL and by name.
    pub clusters: RwLock<HashMap<String, Arc<ClusterClient>>>,
    pub repos: Arc<RepoCache>,
    pub renders: mooring_render::RenderCache,
    pub render_options: mooring_render::RenderOptions,
    pub lua: Option<mooring_engine::health::LuaHealthChecks>,
    /// Repository Secrets and credential templates of the control-plane namespace.
    pub credentials: RwLock<CredentialIndex>,
    pub metrics: Metrics,
    /// Recently resolved revisions: (fetch URL, revision) → (commit, when). Reconciles
    /// triggered by live changes reuse them instead of fetching; a webhook for the URL
    /// and the poll (which runs after the TTL) see fresh ones.
    resolved: Mutex<HashMap<(String, String), (mooring_source::CommitId, Instant)>>,
    /// Application instance name (what tracking ids name) → `namespace/name` key, kept by
    /// the Application watch, so a live change is queued without listing Applications.
    app_index: RwLock<HashMap<String, String>>,
    /// Every Application the control plane reads, as the Application watch last saw it
    /// (see [`app_store`]): what [`all_apps`] serves.
    app_store: RwLock<app_store::AppStore>,
    /// Repository paths each cached render read (for reuse across commits).
    render_inputs: Mutex<HashMap<mooring_render::CacheKey, Vec<String>>>,
    /// `namespace/name` → the fields of that Application Mooring does not act on, read
    /// from its raw object before parsing (the typed [`Application`] drops unknown
    /// fields); reported as the `UnsupportedFieldWarning` condition.
    unsupported: RwLock<HashMap<String, Vec<mooring_engine::unsupported::Unsupported>>>,
    /// The compiled Gatekeeper policy in force (see [`policy`]).
    pub policy: policy::PolicyCache,
    /// The one client for user-written URLs (analysis, RollbackPolicies), following the
    /// admin's `outbound.allow` ([`outbound`]).
    pub outbound: outbound::Outbound,
    /// Watch and connect tasks of each destination cluster, by server URL (see [`clusters`]).
    cluster_tasks: Mutex<HashMap<String, Vec<tokio::task::JoinHandle<()>>>>,
    queue: mpsc::UnboundedSender<String>,
    /// The ApplicationSet controller's queue (`namespace/name`), set when it starts.
    appset_queue: RwLock<Option<mpsc::UnboundedSender<String>>>,
    /// Which shards (destination clusters) this replica owns and whether it leads
    /// ([`sharding`]).
    pub sharding: sharding::Sharding,
    /// Wakes the image watcher for repositories a registry announced pushes to.
    pub images: image::Trigger,
    /// `namespace/name` → the resourceVersion a running reconcile of it read or last
    /// wrote: its writes are conditional on it ([`Context::patch_app`]).
    write_guards: Mutex<HashMap<String, String>>,
    /// Stopping, and the reconciles in flight ([`Controller::shutdown`]).
    lifecycle: shutdown::Lifecycle,
    /// The rollout controllers running here, by cluster server URL: their stores, read
    /// by `/metrics` while the controller's task runs ([`Context::rollout_stores`]).
    rollout_stores: Mutex<HashMap<String, (rollout::RolloutStores, tokio::task::AbortHandle)>>,
    /// The DisasterRecoveryPlans as the DR loop last listed them, and when
    /// ([`Context::dr_plans`]).
    dr_plans: Mutex<Option<(Instant, Vec<mooring_core::dr::DisasterRecoveryPlan>)>>,
}

/// How old the DR loop's last listing of plans may be and still be served to `/metrics`:
/// an older one means the loop stopped here (leadership went to another replica).
const DR_LISTING_MAX_AGE: Duration = Duration::from_secs(30);

impl Context {
    /// Health of a live object, with the configured custom Lua checks. A custom check runs
    /// on its own thread and may take up to its time limit (a second) before it is
    /// abandoned; on a multi-threaded runtime that wait happens in `block_in_place`, so
    /// the other tasks of this worker (other apps' reconciles) move to another thread
    /// meanwhile. Kinds without a custom check are assessed directly.
    pub fn assess_health(&self, live: &Value) -> Option<mooring_engine::health::HealthStatus> {
        use mooring_engine::health;
        let custom = self.lua.as_ref().filter(|c| {
            let (group, kind) = health::group_kind(live);
            c.lookup(group, kind).is_some()
        });
        let Some(custom) = custom else {
            return health::assess(live, None);
        };
        let multi_threaded = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if multi_threaded {
            tokio::task::block_in_place(|| health::assess(live, Some(custom)))
        } else {
            health::assess(live, Some(custom))
        }
    }

    /// Settings of the analysis controllers (one per cluster).
    pub fn analysis_options(&self) -> analysis::AnalysisOptions {
        analysis::AnalysisOptions {
            default_prometheus: self.options.prometheus_address.clone(),
            outbound: self.outbound.clone(),
        }
    }
}

/// The stale-writer guard of one reconcile ([`Context::guard_writes`]); dropping it ends
/// the guarded writes.
pub(crate) struct WriteGuard<'a> {
    ctx: &'a Context,
    key: String,
}

impl Drop for WriteGuard<'_> {
    fn drop(&mut self) {
        self.ctx
            .write_guards
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&self.key);
    }
}

/// How long a resolved revision is reused without fetching.
pub const RESOLVE_TTL: Duration = Duration::from_secs(10);

impl Context {
    /// The cluster an app deploys to.
    pub fn cluster_for(
        &self,
        d: &ApplicationDestination,
    ) -> Result<Arc<ClusterClient>, ControllerError> {
        if d.is_in_cluster() {
            return Ok(self.management.clone());
        }
        let server = d.server.as_deref().unwrap_or_default();
        let name = d.name.as_deref().unwrap_or_default();
        let clusters = self
            .clusters
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        clusters
            .get(server)
            .or_else(|| clusters.get(name))
            .cloned()
            .ok_or_else(|| {
                ControllerError::Spec(format!(
                    "destination cluster {:?} is not registered (use `mooring cluster add`)",
                    if server.is_empty() { name } else { server }
                ))
            })
    }

    /// The control-plane namespace.
    pub fn namespace(&self) -> &str {
        &self.options.control_plane.namespace
    }

    /// Whether the control plane reads Applications (ApplicationSets, RollbackPolicies) in
    /// the namespace of `o` ([`mooring_engine::project::ControlPlane::namespace_enabled`]).
    pub fn reads(&self, o: &DynamicObject) -> bool {
        self.options
            .control_plane
            .namespace_enabled(o.metadata.namespace.as_deref().unwrap_or_default())
    }

    /// The instance name `app`'s tracking ids carry (`name`, or `namespace_name` outside
    /// the control-plane namespace).
    pub fn instance_name(&self, app: &Application) -> String {
        self.options
            .control_plane
            .instance_name(app.namespace(), app.name())
    }

    /// The credentials for repository `url`, matched as Argo CD does (exact URL for a
    /// repository Secret, URL prefix for a credential template; scheme, host and port
    /// always equal: see [`CredentialIndex`]). Pass the URL that will be contacted (after
    /// [`Context::fetch_url`]), so credentials only ever go where they were written for,
    /// and the project of the Application (project-scoped repository Secrets serve only
    /// their project).
    pub fn credentials_for(&self, url: &str, project: Option<&str>) -> Credentials {
        self.credentials
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .lookup(url, project)
    }

    /// The Application as the API server has it now (`None` when it cannot be read):
    /// what a loop working from an older listing writes its status against.
    pub async fn fresh_app(&self, app: &Application) -> Option<Application> {
        let o = self.apps_api(app.namespace()).get(app.name()).await.ok()?;
        serde_json::from_value(serde_json::to_value(o).ok()?).ok()
    }

    fn apps_api(&self, ns: &str) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.management.client().clone(),
            ns,
            &application_resource(),
        )
    }

    /// Remember what `mooring_engine::unsupported::application` found in the Application
    /// `namespace/name` (an empty list forgets it).
    fn set_unsupported(&self, key: &str, found: Vec<mooring_engine::unsupported::Unsupported>) {
        let mut all = self
            .unsupported
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if found.is_empty() {
            all.remove(key);
        } else {
            all.insert(key.to_string(), found);
        }
    }

    /// The `UnsupportedFieldWarning` condition of `app` (the existing one when its message
    /// is unchanged, so an unchanged status is not written again), if it sets any field
    /// Mooring does not act on.
    pub(crate) fn unsupported_condition(
        &self,
        app: &Application,
        desired: &[Value],
    ) -> Option<mooring_core::app::ApplicationCondition> {
        let key = format!("{}/{}", app.namespace(), app.name());
        let mut found = self
            .unsupported
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
            .cloned()
            .unwrap_or_default();
        // The rendered manifests' own annotations (sync options, hook types).
        found.extend(
            desired
                .iter()
                .flat_map(mooring_engine::unsupported::manifest),
        );
        if found.is_empty() {
            return None;
        }
        let message = mooring_engine::unsupported::summary(&found);
        Some(conditions::kept_condition(
            app,
            mooring_engine::unsupported::CONDITION,
            message,
        ))
    }

    /// Merge-patch the Application (the CRD has no status subresource, as in Argo CD).
    ///
    /// During a reconcile ([`Context::guard_writes`]) the patch names the
    /// `resourceVersion` the reconcile read (then the one its own last write returned):
    /// the stale-writer guard. A replica working from a stale read — another replica took
    /// the shard over and synced meanwhile — gets 409 ([`ControllerError::Conflict`]) on
    /// its first write, before it could start an operation or apply anything, so no
    /// Application is ever synced by two replicas at once.
    pub async fn patch_app(&self, app: &Application, patch: Value) -> Result<(), ControllerError> {
        let key = format!("{}/{}", app.namespace(), app.name());
        let guarded = self
            .write_guards
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
            .cloned();
        let mut patch = patch;
        if let (Some(rv), Some(obj)) = (&guarded, patch.as_object_mut()) {
            let meta = obj
                .entry("metadata")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(meta) = meta.as_object_mut() {
                meta.insert("resourceVersion".into(), Value::String(rv.clone()));
            }
        }
        match self
            .apps_api(app.namespace())
            .patch(app.name(), &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(written) => {
                if guarded.is_some() {
                    if let Some(rv) = &written.metadata.resource_version {
                        self.write_guards
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .insert(key.clone(), rv.clone());
                    }
                }
                // The next reconcile starts from this version (see `app_store`).
                if let Some(app) = serde_json::to_value(&written)
                    .ok()
                    .and_then(app_store::parse)
                {
                    self.app_store
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .wrote(key, app);
                }
                Ok(())
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Err(ControllerError::Conflict(key)),
            Err(e) => Err(ControllerError::Write(format!("{key}: {e}"))),
        }
    }

    /// Make every [`Context::patch_app`] of `app` until the guard drops conditional on
    /// the `resourceVersion` `app` was read at (nothing is guarded when it has none).
    pub(crate) fn guard_writes(&self, app: &Application) -> WriteGuard<'_> {
        let key = format!("{}/{}", app.namespace(), app.name());
        if let Some(rv) = app
            .metadata
            .get("resourceVersion")
            .and_then(Value::as_str)
            .filter(|rv| !rv.is_empty())
        {
            self.write_guards
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(key.clone(), rv.to_string());
        }
        WriteGuard { ctx: self, key }
    }

    /// The URL to fetch for a repository URL named in an Application.
    pub fn fetch_url(&self, url: &str) -> String {
        push::fetch_url(&self.options.repo_aliases, url)
    }

    /// Resolve a revision, reusing a resolution younger than [`RESOLVE_TTL`].
    pub async fn resolve(
        &self,
        url: &str,
        revision: &str,
        creds: Credentials,
    ) -> Result<mooring_source::CommitId, ControllerError> {
        let key = (url.to_string(), revision.to_string());
        let cached = self
            .resolved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
            .cloned();
        if let Some((c, at)) = cached {
            if at.elapsed() < RESOLVE_TTL.min(self.options.poll) {
                return Ok(c);
            }
        }
        let repos = self.repos.clone();
        let (u, r) = key.clone();
        let resolved = tokio::task::spawn_blocking(move || repos.resolve(&u, &r, &creds))
            .await
            .map_err(|e| ControllerError::Internal(e.to_string()))?;
        self.metrics
            .record_stage(metrics::Stage::Fetch, resolved.is_ok());
        let commit = resolved?;
        self.resolved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, (commit.clone(), Instant::now()));
        Ok(commit)
    }

    /// Forget cached resolutions of repositories (a push changed them).
    fn forget_resolutions(&self, normalized_urls: &[String]) {
        self.resolved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|(u, _), _| {
                !normalized_urls.contains(&mooring_source::webhook::normalize_repo_url(u))
            });
    }

    /// Refresh the applications a Git push concerns ([`push::apps_for_push`]) and the
    /// ApplicationSets whose git generators read the pushed repository; returns the
    /// applications' keys.
    pub async fn refresh_for_push(
        &self,
        event: &mooring_source::webhook::PushEvent,
    ) -> Vec<String> {
        let apps = all_apps(self).await;
        let concerned = push::apps_for_push(&apps, event, &self.options.repo_aliases);
        self.forget_resolutions(&concerned.stale);
        for key in &concerned.apps {
            self.enqueue(key);
        }
        appset::enqueue_for_push(self, &push::pushed_urls(event)).await;
        concerned.apps
    }

    pub(crate) fn remember_inputs(&self, key: mooring_render::CacheKey, inputs: Vec<String>) {
        let mut m = self
            .render_inputs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Bounded like the render cache it describes.
        if m.len() > 8192 {
            m.clear();
        }
        m.insert(key, inputs);
    }

    pub(crate) fn inputs_of(&self, key: &mooring_render::CacheKey) -> Option<Vec<String>> {
        self.render_inputs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// Refresh an application now: forget cached revision resolutions and queue it (what
    /// `app get --refresh` and a webhook amount to).
    pub fn refresh(&self, key: &str) {
        self.forget_all_resolutions();
        self.enqueue(key);
    }

    pub(crate) fn forget_all_resolutions(&self) {
        self.resolved
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// Queue an application (`namespace/name`) for reconciliation.
    pub fn enqueue(&self, key: &str) {
        let _ = self.queue.send(key.to_string());
    }

    /// Start the rollout and analysis controllers of `cluster` (server URL `server`):
    /// their tasks, with the rollout controller's stores kept for `/metrics`.
    pub(crate) fn start_rollouts(
        &self,
        server: &str,
        cluster: Arc<ClusterClient>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let (task, stores) = rollout::start(cluster.clone());
        self.rollout_stores
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(server.to_string(), (stores, task.abort_handle()));
        let mut tasks = vec![task];
        tasks.extend(analysis::start(cluster, self.analysis_options()));
        tasks
    }

    /// The stores of the rollout controllers running here, by cluster server URL (a
    /// controller stopped — its shard went to another replica, its cluster was removed —
    /// is forgotten: its stores would go stale).
    pub fn rollout_stores(&self) -> Vec<(String, rollout::RolloutStores)> {
        let mut all = self
            .rollout_stores
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        all.retain(|_, (_, task)| !task.is_finished());
        let mut out: Vec<(String, rollout::RolloutStores)> = all
            .iter()
            .map(|(server, (stores, _))| (server.clone(), stores.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The DR loop listed these plans just now.
    pub(crate) fn listed_dr_plans(&self, plans: Vec<mooring_core::dr::DisasterRecoveryPlan>) {
        *self
            .dr_plans
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((Instant::now(), plans));
    }

    /// The DisasterRecoveryPlans as this replica's DR loop last listed them (every
    /// [`dr::TICK`]); empty where the loop does not run (not the leader) or stopped.
    pub fn dr_plans(&self) -> Vec<mooring_core::dr::DisasterRecoveryPlan> {
        match &*self
            .dr_plans
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
        {
            Some((at, plans)) if at.elapsed() < DR_LISTING_MAX_AGE => plans.clone(),
            _ => Vec::new(),
        }
    }

    /// Every Application the control plane reads (the Application watch's store); `None`
    /// before its first listing is complete.
    pub fn listed_apps(&self) -> Option<Vec<Arc<Application>>> {
        self.app_store
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .list()
    }

    /// Every registered destination cluster (by server URL) with its name and
    /// connection, the management cluster first (as `in-cluster`, unless a cluster Secret
    /// registers its URL).
    pub fn cluster_connections(&self) -> Vec<(String, String, mooring_k8s::cluster::Connection)> {
        let clusters = self
            .clusters
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out: Vec<(String, String, mooring_k8s::cluster::Connection)> = clusters
            .iter()
            // Each cluster is in the map under its server URL and its name.
            .filter(|(key, c)| **key != c.name || key.contains("://"))
            .map(|(server, c)| (server.clone(), c.name.clone(), c.connection()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        if !clusters.contains_key(mooring_core::app::IN_CLUSTER) {
            out.insert(
                0,
                (
                    mooring_core::app::IN_CLUSTER.to_string(),
                    mooring_core::app::IN_CLUSTER_NAME.to_string(),
                    self.management.connection(),
                ),
            );
        }
        out
    }
}

/// A running controller.
pub struct Controller {
    pub ctx: Arc<Context>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Controller {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        let clusters = std::mem::take(
            &mut *self
                .ctx
                .cluster_tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for t in clusters.into_values().flatten() {
            t.abort();
        }
    }
}

impl Context {
    /// The one place a [`Context`] is built, for the controller ([`Controller::start`])
    /// and the CLI's one-off use ([`Context::offline`]): they differ only in the render
    /// cache's capacity and the custom health checks. Creates the cache directory, and
    /// returns the receiving end of the work queue (the workers' input).
    fn new(
        management: Arc<ClusterClient>,
        options: ControllerOptions,
        render_cache: usize,
        lua: Option<mooring_engine::health::LuaHealthChecks>,
    ) -> Result<(Arc<Context>, mpsc::UnboundedReceiver<String>), ControllerError> {
        std::fs::create_dir_all(&options.cache_dir).map_err(|e| {
            ControllerError::Internal(format!("cache dir {}: {e}", options.cache_dir.display()))
        })?;
        let (tx, rx) = mpsc::unbounded_channel();
        let options_sharding = options.sharding.clone();
        let outbound_client = outbound::Outbound::new(&options.control_plane.namespace);
        let metrics = Metrics::default();
        let repos =
            RepoCache::new(options.cache_dir.clone()).with_request_observer(metrics.git_observer());
        let ctx = Arc::new(Context {
            repos: Arc::new(repos),
            options,
            management,
            clusters: RwLock::new(HashMap::new()),
            renders: mooring_render::RenderCache::new(render_cache),
            render_options: mooring_render::RenderOptions::default(),
            lua,
            credentials: RwLock::new(CredentialIndex::default()),
            metrics,
            resolved: Mutex::new(HashMap::new()),
            app_index: RwLock::new(HashMap::new()),
            app_store: RwLock::new(app_store::AppStore::default()),
            render_inputs: Mutex::new(HashMap::new()),
            unsupported: RwLock::new(HashMap::new()),
            policy: policy::PolicyCache::default(),
            outbound: outbound_client,
            cluster_tasks: Mutex::new(HashMap::new()),
            queue: tx,
            appset_queue: Default::default(),
            images: Default::default(),
            sharding: sharding::Sharding::new(&options_sharding),
            write_guards: Mutex::new(HashMap::new()),
            lifecycle: Default::default(),
            rollout_stores: Mutex::new(HashMap::new()),
            dr_plans: Mutex::new(None),
        });
        Ok((ctx, rx))
    }

    /// A context for one-off use (the CLI's `app diff` / `app manifests`): same rendering
    /// and comparison as the controller, without watches or workers.
    pub async fn offline(
        management: kube::Client,
        options: ControllerOptions,
    ) -> Result<Arc<Context>, ControllerError> {
        let mgmt = ClusterClient::without_cache("in-cluster", management);
        mgmt.refresh_discovery().await?;
        let (ctx, _queue) = Context::new(mgmt, options, 64, None)?;
        Ok(ctx)
    }
}

impl Controller {
    /// Register a destination cluster under its server URL (and name): its managed
    /// objects get their own watch-fed cache, whose changes trigger self-heal like the
    /// management cluster's. Waits for the first connection attempt (up to the connect
    /// timeout); an unreachable cluster stays registered and is retried with backoff.
    pub async fn add_cluster(
        &mut self,
        name: &str,
        server: &str,
        client: kube::Client,
    ) -> Result<(), ControllerError> {
        clusters::register(&self.ctx, name, server, client).await;
        let started = Instant::now();
        while started.elapsed() < mooring_k8s::registry::CONNECT_TIMEOUT * 2 {
            let c = self.ctx.cluster_for(&ApplicationDestination {
                server: Some(server.to_string()),
                ..Default::default()
            })?;
            match c.connection() {
                mooring_k8s::cluster::Connection::Connecting => {
                    tokio::time::sleep(Duration::from_millis(20)).await
                }
                mooring_k8s::cluster::Connection::Connected { .. } => return Ok(()),
                mooring_k8s::cluster::Connection::Unreachable { error } => {
                    return Err(ControllerError::Internal(format!(
                        "cluster {name} ({server}) is unreachable: {error}; retrying in the background"
                    )))
                }
            }
        }
        Ok(())
    }

    /// Start the controller against the management cluster.
    pub async fn start(
        management: kube::Client,
        options: ControllerOptions,
    ) -> Result<Controller, ControllerError> {
        options
            .control_plane
            .validate()
            .map_err(ControllerError::Spec)?;
        sharding::Sharding::validate(&options.sharding)
            .map_err(|e| ControllerError::Spec(e.to_string()))?;
        let mgmt = ClusterClient::new("in-cluster", management);
        // The management cluster answers (the controller works through it): its version
        // for `argocd_cluster_info`. A failure leaves it `Connecting` (reported as not
        // connected) and is not fatal: everything else retries on its own.
        if let Ok(version) = mgmt.server_version().await {
            mgmt.set_connection(mooring_k8s::cluster::Connection::Connected { version });
        }
        project::ensure_default_project(mgmt.client(), &options.control_plane.namespace).await;
        let mut tasks = mgmt.start_cache().await?;
        let lua = match &options.health_dir {
            Some(d) => Some(
                mooring_engine::health::LuaHealthChecks::load_dir(
                    &mooring_source::files::StdFiles,
                    d,
                )
                .map_err(|e| {
                    ControllerError::Spec(format!("health checks in {}: {e}", d.display()))
                })?,
            ),
            None => None,
        };
        let (ctx, rx) = Context::new(mgmt.clone(), options, 4096, lua)?;
        for (url, what) in ctx.options.outbound_protected.clone() {
            ctx.outbound.protect(&url, &what);
        }
        ctx.outbound.protect_in_cluster_api();
        ctx.outbound.load_config(mgmt.client().clone()).await;
        tasks.push(ctx.outbound.watch_config(mgmt.client().clone()));
        tasks.push(tokio::spawn(watch_apps(ctx.clone())));
        tasks.push(tokio::spawn(watch_live(ctx.clone(), mgmt.clone())));
        tasks.push(tokio::spawn(poll(ctx.clone())));
        tasks.push(tokio::spawn(watch_repository_secrets(ctx.clone())));
        tasks.push(tokio::spawn(clusters::watch_cluster_secrets(ctx.clone())));
        tasks.push(tokio::spawn(policy::watch_templates(ctx.clone())));
        tasks.push(tokio::spawn(project::watch_projects(ctx.clone())));
        tasks.push(tokio::spawn(work(ctx.clone(), rx)));
        tasks.extend(sharding::start(ctx.clone()));
        // The management-cluster loops run in the leader only (see `sharding`).
        let c = ctx.clone();
        tasks.push(sharding::gated(
            ctx.clone(),
            |ctx| ctx.sharding.is_leader(),
            move || {
                let mut t = vec![
                    tokio::spawn(project::orphan_loop(c.clone())),
                    tokio::spawn(policy::audit_loop(c.clone())),
                ];
                t.extend(appset::start(c.clone()));
                t.extend(rollback::start(c.clone()));
                t.extend(notifications::start(c.clone()));
                t.extend(dr::start(c.clone()));
                t.extend(image::start(c.clone()));
                t
            },
        ));
        // Rollouts of the management cluster follow the in-cluster destination's shard.
        let (c, m) = (ctx.clone(), mgmt.clone());
        tasks.push(sharding::gated(
            ctx.clone(),
            |ctx| ctx.sharding.owns_server(mooring_core::app::IN_CLUSTER),
            move || c.start_rollouts(mooring_core::app::IN_CLUSTER, m.clone()),
        ));
        Ok(Controller { ctx, tasks })
    }
}
