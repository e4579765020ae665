//! The application controller: keeps every destination cluster equal to Git.
//!
//! Applications are custom resources in the management cluster; their status is the
//! controller's only state, so the controller can be killed at any moment and resumes
//! from what it wrote. Work arrives on one queue of application names from four
//! triggers — a change of the Application itself (watch), a change of one of its live
//! objects (the destination's watch-fed cache: this is self-heal, not a timer), a Git
//! webhook, and the periodic poll (default 3 minutes, with jitter) — and a small pool of
//! workers runs [`reconcile::reconcile`] on it, one app at a time per name.

pub mod action;
pub mod analysis;
pub mod appset;
pub mod clusters;
pub mod conditions;
pub mod deletion;
pub mod events;
pub mod operation;
pub mod outbound;
pub mod policy;
pub mod project;
pub mod prometheus;
pub mod reconcile;
pub mod rollback;
pub mod rollout;
pub mod rollout_traffic;
pub mod state;

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use mooring_core::app::{Application, ApplicationDestination};
use mooring_k8s::cluster::ClusterClient;
use mooring_k8s::kube;
use mooring_k8s::resources::application_resource;
use mooring_source::{CredentialIndex, Credentials, RepoCache};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("invalid application spec: {0}")]
    Spec(String),
    #[error(transparent)]
    Source(#[from] mooring_source::SourceError),
    #[error(transparent)]
    Render(#[from] mooring_render::RenderError),
    #[error(transparent)]
    Diff(#[from] mooring_engine::diff::DiffError),
    #[error(transparent)]
    Kube(#[from] mooring_k8s::cluster::K8sError),
    #[error("writing the Application: {0}")]
    Write(String),
    #[error("{0}")]
    Internal(String),
    /// An error of one source of a multi-source application (`label` names it).
    #[error("{label}: {error}")]
    InSource {
        label: String,
        #[source]
        error: Box<ControllerError>,
    },
}

/// Controller settings (plain data).
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// Field manager for server-side apply (and the owner of fields removed from Git).
    pub manager: String,
    /// Git poll interval (Argo CD's default: 3 minutes), jittered by up to 10 %.
    pub poll: Duration,
    /// How often a running operation is looked at again.
    pub operation_poll: Duration,
    /// Where Git object stores are cached.
    pub cache_dir: std::path::PathBuf,
    /// Argo CD-layout directory of Lua health checks.
    pub health_dir: Option<std::path::PathBuf>,
    pub workers: usize,
    /// Repository URL rewrites (git's `insteadOf`): an Application naming the first URL
    /// is fetched from the second. `mooring up` uses this to serve a local repository
    /// under the URL the manifests were written for.
    pub repo_aliases: Vec<(String, String)>,
    /// How often live objects are audited against the policy in force (`None`: never).
    pub policy_audit: Option<Duration>,
    /// How often apps whose project sets `orphanedResources` are scanned for unmanaged
    /// objects in their destination namespace (`None`: never).
    pub orphan_scan: Option<Duration>,
    /// The Prometheus that analysis and RollbackPolicies query when they name none
    /// (`mooring up` sets its local one).
    pub prometheus_address: Option<String>,
    /// The control-plane namespace (Applications, AppProjects, ApplicationSets, cluster
    /// and repository Secrets are read from there) and the other namespaces Applications
    /// and ApplicationSets may live in (`--application-namespaces`).
    pub control_plane: mooring_engine::project::ControlPlane,
    /// Endpoints a user-written URL never reaches unless `outbound.allow` names them
    /// exactly (URL, what it is): the management API server, Mooring's REST API
    /// ([`outbound::Outbound::protect`]; destination clusters are added as they register).
    pub outbound_protected: Vec<(String, String)>,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        ControllerOptions {
            manager: "mooring".into(),
            poll: Duration::from_secs(180),
            operation_poll: Duration::from_millis(250),
            cache_dir: std::env::temp_dir().join("mooring-repos"),
            health_dir: None,
            workers: 4,
            repo_aliases: vec![],
            policy_audit: Some(Duration::from_secs(60)),
            orphan_scan: Some(Duration::from_secs(60)),
            prometheus_address: None,
            control_plane: Default::default(),
            outbound_protected: vec![],
        }
    }
}

/// How many (app, revision) pairs the convergence figures remember.
const MAX_TRACKED_REVISIONS: usize = 100_000;

/// Reconcile timing and convergence figures.
#[derive(Default)]
pub struct Metrics {
    reconciles: Mutex<(u64, Duration)>,
    renders_reused: std::sync::atomic::AtomicU64,
    /// First time each (app, revision) was seen, to measure commit → converged.
    seen: Mutex<HashMap<(String, String), Instant>>,
    converged: Mutex<HashMap<(String, String), Duration>>,
}

impl Metrics {
    pub fn record_reconcile(&self, took: Duration) {
        let mut r = self
            .reconciles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        r.0 += 1;
        r.1 += took;
    }

    pub fn saw_revision(&self, app: &str, revision: &str) {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Bounded: a long-running controller sees revisions forever.
        if seen.len() > MAX_TRACKED_REVISIONS {
            seen.clear();
        }
        seen.entry((app.into(), revision.into()))
            .or_insert_with(Instant::now);
    }

    pub fn converged(&self, app: &str, revision: &str) {
        let seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&(app.to_string(), revision.to_string()))
            .copied();
        if let Some(t) = seen {
            let mut converged = self
                .converged
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if converged.len() > MAX_TRACKED_REVISIONS {
                converged.clear();
            }
            converged
                .entry((app.into(), revision.into()))
                .or_insert_with(|| t.elapsed());
        }
    }

    /// Commit seen → Synced and Healthy, per (app, revision).
    pub fn convergence(&self) -> HashMap<(String, String), Duration> {
        self.converged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn render_reused(&self) {
        self.renders_reused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Renders reused across commits that did not touch the app's inputs.
    pub fn renders_reused(&self) -> u64 {
        self.renders_reused
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// (reconciles, total time).
    pub fn reconciles(&self) -> (u64, Duration) {
        *self
            .reconciles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

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
    appset_queue: std::sync::OnceLock<mpsc::UnboundedSender<String>>,
}

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
    pub async fn patch_app(&self, app: &Application, patch: Value) -> Result<(), ControllerError> {
        self.apps_api(app.namespace())
            .patch(app.name(), &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map(|_| ())
            .map_err(|e| ControllerError::Write(format!("{}/{}: {e}", app.namespace(), app.name())))
    }

    /// The URL to fetch for a repository URL named in an Application.
    pub fn fetch_url(&self, url: &str) -> String {
        let norm = mooring_source::webhook::normalize_repo_url(url);
        self.options
            .repo_aliases
            .iter()
            .find(|(from, _)| mooring_source::webhook::normalize_repo_url(from) == norm)
            .map(|(_, to)| to.clone())
            .unwrap_or_else(|| url.to_string())
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
        let commit = tokio::task::spawn_blocking(move || repos.resolve(&u, &r, &creds))
            .await
            .map_err(|e| ControllerError::Internal(e.to_string()))??;
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

    /// Refresh the applications a Git push concerns; returns their keys.
    pub async fn refresh_for_push(
        &self,
        event: &mooring_source::webhook::PushEvent,
    ) -> Vec<String> {
        use mooring_source::webhook::{normalize_repo_url, touches};
        let pushed: Vec<String> = event
            .repo_urls
            .iter()
            .map(|u| normalize_repo_url(u))
            .collect();
        let mut out = Vec::new();
        for app in all_apps(self).await {
            // Any of the app's sources (`ref` sources too: their files are value files).
            let mut concerned = false;
            for src in app.sources() {
                let names = [src.repo_url.clone(), self.fetch_url(&src.repo_url)];
                if !names
                    .iter()
                    .any(|u| pushed.contains(&normalize_repo_url(u)))
                {
                    continue;
                }
                self.forget_resolutions(&[normalize_repo_url(&names[1])]);
                let target = src.target_revision.as_deref().unwrap_or("HEAD");
                let same_ref = matches!(target, "" | "HEAD")
                    || event.branch() == Some(target)
                    || event.tag() == Some(target)
                    || event.git_ref == target;
                if !same_ref {
                    continue;
                }
                // A path-less `ref` source lends files anywhere in its repository.
                let path = src.path.as_deref().unwrap_or(".");
                if let Some(files) = &event.changed_files {
                    if src.ref_.is_none() && !touches(files, path) {
                        continue;
                    }
                }
                concerned = true;
            }
            if !concerned {
                continue;
            }
            let key = format!("{}/{}", app.namespace(), app.name());
            self.enqueue(&key);
            out.push(key);
        }
        appset::enqueue_for_push(self, &pushed).await;
        out
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
    /// A context for one-off use (the CLI's `app diff` / `app manifests`): same rendering
    /// and comparison as the controller, without watches or workers.
    pub async fn offline(
        management: kube::Client,
        options: ControllerOptions,
    ) -> Result<Arc<Context>, ControllerError> {
        let mgmt = ClusterClient::new("in-cluster", management);
        mgmt.refresh_discovery().await?;
        std::fs::create_dir_all(&options.cache_dir).map_err(|e| {
            ControllerError::Internal(format!("cache dir {}: {e}", options.cache_dir.display()))
        })?;
        let (tx, _rx) = mpsc::unbounded_channel();
        let outbound_client = outbound::Outbound::new(&options.control_plane.namespace);
        Ok(Arc::new(Context {
            repos: Arc::new(RepoCache::new(options.cache_dir.clone())),
            options,
            management: mgmt,
            clusters: RwLock::new(HashMap::new()),
            renders: mooring_render::RenderCache::new(64),
            render_options: mooring_render::RenderOptions::default(),
            lua: None,
            credentials: RwLock::new(CredentialIndex::default()),
            metrics: Metrics::default(),
            resolved: Mutex::new(HashMap::new()),
            app_index: RwLock::new(HashMap::new()),
            render_inputs: Mutex::new(HashMap::new()),
            unsupported: RwLock::new(HashMap::new()),
            policy: policy::PolicyCache::default(),
            outbound: outbound_client,
            cluster_tasks: Mutex::new(HashMap::new()),
            queue: tx,
            appset_queue: Default::default(),
        }))
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
        let mgmt = ClusterClient::new("in-cluster", management);
        project::ensure_default_project(mgmt.client(), &options.control_plane.namespace).await;
        let mut tasks = mgmt.start_cache().await?;
        let lua = match &options.health_dir {
            Some(d) => Some(
                mooring_engine::health::LuaHealthChecks::load_dir(d).map_err(|e| {
                    ControllerError::Spec(format!("health checks in {}: {e}", d.display()))
                })?,
            ),
            None => None,
        };
        std::fs::create_dir_all(&options.cache_dir).map_err(|e| {
            ControllerError::Internal(format!("cache dir {}: {e}", options.cache_dir.display()))
        })?;
        let (tx, rx) = mpsc::unbounded_channel();
        let outbound_client = outbound::Outbound::new(&options.control_plane.namespace);
        let ctx = Arc::new(Context {
            repos: Arc::new(RepoCache::new(options.cache_dir.clone())),
            options,
            management: mgmt.clone(),
            clusters: RwLock::new(HashMap::new()),
            renders: mooring_render::RenderCache::new(4096),
            render_options: mooring_render::RenderOptions::default(),
            lua,
            credentials: RwLock::new(CredentialIndex::default()),
            metrics: Metrics::default(),
            resolved: Mutex::new(HashMap::new()),
            app_index: RwLock::new(HashMap::new()),
            render_inputs: Mutex::new(HashMap::new()),
            unsupported: RwLock::new(HashMap::new()),
            policy: policy::PolicyCache::default(),
            outbound: outbound_client,
            cluster_tasks: Mutex::new(HashMap::new()),
            queue: tx,
            appset_queue: Default::default(),
        });
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
        tasks.push(tokio::spawn(project::orphan_loop(ctx.clone())));
        tasks.push(tokio::spawn(policy::audit_loop(ctx.clone())));
        tasks.push(tokio::spawn(work(ctx.clone(), rx)));
        tasks.extend(appset::start(ctx.clone()));
        tasks.extend(rollback::start(ctx.clone()));
        tasks.extend(rollout::start(mgmt.clone()));
        tasks.extend(analysis::start(mgmt.clone(), ctx.analysis_options()));
        Ok(Controller { ctx, tasks })
    }
}

/// Application changes → queue. Applications outside the namespaces the control plane
/// reads ([`mooring_engine::project::ControlPlane`]) are never queued: each is reported
/// once (a Warning Event on it and a log line naming the reason) and ignored.
async fn watch_apps(ctx: Arc<Context>) {
    use futures::StreamExt;
    let api: Api<DynamicObject> =
        Api::all_with(ctx.management.client().clone(), &application_resource());
    let mut stream = kube::runtime::watcher(api, Default::default())
        .default_backoff()
        .boxed();
    let mut ignored = Ignored::new(application_resource());
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(
                kube::runtime::watcher::Event::Apply(o)
                | kube::runtime::watcher::Event::InitApply(o),
            ) => {
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
            }
            Ok(_) => {}
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

/// Live changes of managed objects → queue (self-heal, health updates).
pub(crate) async fn watch_live(ctx: Arc<Context>, cluster: Arc<ClusterClient>) {
    let mut rx = cluster.subscribe();
    loop {
        match rx.recv().await {
            Ok(change) => {
                if let Some(key) = app_key_of_instance(&ctx, &change.app) {
                    ctx.enqueue(&key);
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                for key in all_app_keys(&ctx).await {
                    ctx.enqueue(&key);
                }
            }
            Err(_) => return,
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
/// allows; those that do not parse are skipped, their reconcile reports them).
pub(crate) async fn all_apps(ctx: &Context) -> Vec<Application> {
    let api: Api<DynamicObject> =
        Api::all_with(ctx.management.client().clone(), &application_resource());
    match api.list(&Default::default()).await {
        Ok(l) => l
            .items
            .into_iter()
            .filter(|o| ctx.reads(o))
            .filter_map(|o| serde_json::to_value(o).ok())
            .filter_map(|v| serde_json::from_value(v).ok())
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
async fn watch_repository_secrets(ctx: Arc<Context>) {
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
async fn poll(ctx: Arc<Context>) {
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

/// The work loop: dedups queued names, runs at most one reconcile per app at a time.
async fn work(ctx: Arc<Context>, mut rx: mpsc::UnboundedReceiver<String>) {
    let busy: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let dirty: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let permits = Arc::new(tokio::sync::Semaphore::new(ctx.options.workers.max(1)));
    // Reconciles run in a set owned by this loop: stopping the controller aborts them
    // too, like a killed process (the operation state in the API is all that remains).
    let mut running = tokio::task::JoinSet::new();
    while let Some(key) = rx.recv().await {
        while running.try_join_next().is_some() {}
        {
            let mut b = busy
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if b.contains(&key) {
                dirty
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(key);
                continue;
            }
            b.insert(key.clone());
        }
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let (ctx, busy, dirty) = (ctx.clone(), busy.clone(), dirty.clone());
        running.spawn(async move {
            let action = run_one(&ctx, &key).await;
            drop(permit);
            busy.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&key);
            let again = dirty
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&key);
            match action {
                Some(reconcile::Action::RequeueAfter(d)) => {
                    tokio::time::sleep(d).await;
                    ctx.enqueue(&key);
                }
                _ if again => ctx.enqueue(&key),
                _ => {}
            }
        });
    }
}

async fn run_one(ctx: &Arc<Context>, key: &str) -> Option<reconcile::Action> {
    let (ns, name) = key.split_once('/')?;
    if !ctx.options.control_plane.namespace_enabled(ns) {
        return None;
    }
    let obj = match ctx.apps_api(ns).get_opt(name).await {
        Ok(Some(o)) => o,
        Ok(None) => {
            ctx.set_unsupported(key, vec![]);
            return None;
        }
        Err(e) => {
            tracing::warn!("reading application {key}: {e}");
            return Some(reconcile::Action::RequeueAfter(Duration::from_secs(2)));
        }
    };
    let value = serde_json::to_value(&obj).ok()?;
    ctx.set_unsupported(key, mooring_engine::unsupported::application(&value));
    let app: Application = match serde_path_to_error::deserialize(&value) {
        Ok(a) => a,
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
            return None;
        }
    };
    if let Some(rev) = app.status.as_ref().map(|s| s.sync.revisions()) {
        if !rev.is_empty() {
            ctx.metrics
                .saw_revision(&ctx.instance_name(&app), &rev.to_string());
        }
    }
    match reconcile::reconcile(Arc::new(app), ctx.clone()).await {
        Ok(a) => Some(a),
        Err(e) => {
            // Error policy: log and retry with a short backoff.
            tracing::warn!("reconcile {key}: {e}");
            Some(reconcile::Action::RequeueAfter(Duration::from_secs(2)))
        }
    }
}
