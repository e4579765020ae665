//! One destination cluster: discovery, server-side apply, delete, get — and the
//! watch-fed cache of the objects Mooring manages there.
//!
//! Every cluster, the embedded one included, is reached the same way: kube-rs over the
//! Kubernetes API. Objects are handled as JSON (`DynamicObject`) because applications
//! carry arbitrary kinds, CRDs included; discovery maps `apiVersion`/`kind` to the REST
//! resource and is refreshed when a kind is unknown (a CRD applied in an earlier wave).
//!
//! Managed objects are recognised by Argo CD's annotation tracking
//! (`argocd.argoproj.io/tracking-id: APP:GROUP/KIND:NAMESPACE/NAME`), so resources
//! deployed by Argo CD are recognised as the same application's, and the cache only
//! holds those objects: it is the live side of every diff, and its change stream is what
//! triggers self-heal (watch-driven, not timer-driven).

use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams,
    PropagationPolicy,
};
use kube::discovery::{Discovery, Scope};
use kube::runtime::{watcher, WatchStreamExt};
use mooring_core::ResourceKey;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use tokio::sync::mpsc;

pub const TRACKING_ANNOTATION: &str = "argocd.argoproj.io/tracking-id";

#[derive(Debug, thiserror::Error)]
pub enum K8sError {
    #[error("the cluster does not serve {api_version} {kind} (is its CRD installed?)")]
    UnknownKind { api_version: String, kind: String },
    #[error("{key}: {message}")]
    Api {
        key: String,
        code: u16,
        reason: String,
        message: String,
    },
    #[error("{key}: {source}")]
    Client {
        key: String,
        #[source]
        source: kube::Error,
    },
    #[error("discovery failed: {0}")]
    Discovery(#[source] kube::Error),
    #[error("object has no apiVersion/kind/metadata.name: {0}")]
    NoIdentity(String),
    /// The watch-fed cache has not listed every kind yet: a comparison now would miss
    /// live objects (and a sync would skip their prunes).
    #[error(
        "the live state of cluster {0} is still loading (not every kind is listed yet); retried"
    )]
    CacheSyncing(String),
}

impl K8sError {
    fn from_kube(key: &str, e: kube::Error) -> Self {
        match e {
            kube::Error::Api(s) => K8sError::Api {
                key: key.to_string(),
                code: s.code,
                reason: s.reason,
                message: s.message,
            },
            other => K8sError::Client {
                key: key.to_string(),
                source: other,
            },
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, K8sError::Api { code: 404, .. })
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, K8sError::Api { code: 409, .. })
    }
}

/// The tracking id Argo CD writes for a resource of an application.
pub fn tracking_id(app: &str, key: &ResourceKey) -> String {
    format!(
        "{app}:{}/{}:{}/{}",
        key.group, key.kind, key.namespace, key.name
    )
}

/// The application a tracking id names.
pub fn tracking_app(id: &str) -> Option<&str> {
    id.split_once(':').map(|(a, _)| a)
}

#[derive(Clone)]
struct Kind {
    resource: ApiResource,
    namespaced: bool,
    watchable: bool,
}

/// Managed objects, and which keys each application owns (so listing an app's objects
/// does not scan every object of the cluster).
///
/// Each object is kept as its JSON text and parsed when read. Why: a parsed `Value` takes
/// several times the size of its text (a map per object, a `String` per key), and at
/// 10,000 applications the cache holds 100,000 objects, most of them read only when their
/// application is compared; parsing ten small objects per comparison costs less than the
/// memory of keeping them all parsed.
#[derive(Default)]
struct LiveCache {
    objects: BTreeMap<ResourceKey, (String, Arc<[u8]>)>,
    by_app: HashMap<String, std::collections::BTreeSet<ResourceKey>>,
}

impl LiveCache {
    fn remove(&mut self, key: &ResourceKey) -> Option<String> {
        let (app, _) = self.objects.remove(key)?;
        if let Some(set) = self.by_app.get_mut(&app) {
            set.remove(key);
            if set.is_empty() {
                self.by_app.remove(&app);
            }
        }
        Some(app)
    }

    fn insert(&mut self, key: ResourceKey, app: String, v: Arc<[u8]>) {
        self.remove(&key);
        self.by_app
            .entry(app.clone())
            .or_default()
            .insert(key.clone());
        self.objects.insert(key, (app, v));
    }
}

/// A cached object's text, parsed (it was written by `serde_json`, so it parses; a
/// failure would drop the object from the answer rather than fail the reader).
fn parse_cached(text: &[u8]) -> Option<Value> {
    serde_json::from_slice(text).ok()
}

/// A live object changed (for self-heal and refresh triggers).
#[derive(Debug, Clone)]
pub struct LiveChange {
    pub app: String,
    pub key: ResourceKey,
}

/// Whether a cluster can be reached (set by whoever connects it: the controller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    /// Not tried yet.
    Connecting,
    /// Discovery succeeded; the server's version (`v1.31.0`).
    Connected { version: String },
    /// The last attempt failed with this error; retried with backoff.
    Unreachable { error: String },
}

/// A connection to one cluster.
pub struct ClusterClient {
    pub name: String,
    client: kube::Client,
    kinds: RwLock<HashMap<(String, String), Kind>>,
    live: Arc<RwLock<LiveCache>>,
    /// One channel per subscriber ([`ClusterClient::subscribe`]). Unbounded on purpose:
    /// a bounded broadcast that overflows loses *which* apps changed, and the only safe
    /// answer is to requeue every application — an O(apps) storm exactly when the
    /// cluster is busiest (a fleet converging). The subscriber only maps a change to an
    /// app key and queues it (the work queue dedupes), so the backlog drains quickly.
    changes: std::sync::Mutex<Vec<mpsc::UnboundedSender<LiveChange>>>,
    connection: RwLock<Connection>,
    /// Kinds whose first list has not completed; [`CACHE_NOT_STARTED`] before
    /// [`ClusterClient::start_cache`].
    cache_pending: std::sync::atomic::AtomicUsize,
}

const CACHE_NOT_STARTED: usize = usize::MAX;

impl ClusterClient {
    pub fn new(name: &str, client: kube::Client) -> Arc<Self> {
        Arc::new(ClusterClient {
            name: name.to_string(),
            client,
            kinds: RwLock::new(HashMap::new()),
            live: Arc::new(RwLock::new(LiveCache::default())),
            changes: std::sync::Mutex::new(Vec::new()),
            connection: RwLock::new(Connection::Connecting),
            cache_pending: std::sync::atomic::AtomicUsize::new(CACHE_NOT_STARTED),
        })
    }

    /// A client that will never start a cache (one-off commands: `app diff`, the
    /// standalone API server's views, `deploy`): [`ClusterClient::managed`] answers
    /// empty, and comparisons GET each desired object.
    pub fn without_cache(name: &str, client: kube::Client) -> Arc<Self> {
        let c = Self::new(name, client);
        c.cache_pending
            .store(0, std::sync::atomic::Ordering::SeqCst);
        c
    }

    /// Whether the cache has listed every kind it watches at least once (a freshly
    /// started controller must not compare, plan or prune against a partial cache).
    pub fn cache_synced(&self) -> bool {
        self.cache_pending.load(std::sync::atomic::Ordering::SeqCst) == 0
    }

    /// The last known reachability.
    pub fn connection(&self) -> Connection {
        self.connection
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn set_connection(&self, c: Connection) {
        *self
            .connection
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = c;
    }

    /// Ask the server for its version (`GET /version`).
    pub async fn server_version(&self) -> Result<String, K8sError> {
        self.client
            .apiserver_version()
            .await
            .map(|v| v.git_version)
            .map_err(|e| K8sError::from_kube("/version", e))
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// Re-read discovery.
    pub async fn refresh_discovery(&self) -> Result<(), K8sError> {
        let d = Discovery::new(self.client.clone())
            .run()
            .await
            .map_err(K8sError::Discovery)?;
        let mut map = HashMap::new();
        for g in d.groups() {
            for (ar, caps) in g.recommended_resources() {
                let watchable = caps.supports_operation("watch");
                map.insert(
                    (ar.api_version.clone(), ar.kind.clone()),
                    Kind {
                        resource: ar.clone(),
                        namespaced: caps.scope == Scope::Namespaced,
                        watchable,
                    },
                );
                // Also answer for the group's other served versions.
                for v in g.versions() {
                    let av = if g.name().is_empty() {
                        v.to_string()
                    } else {
                        format!("{}/{v}", g.name())
                    };
                    map.entry((av.clone(), ar.kind.clone()))
                        .or_insert_with(|| Kind {
                            resource: ApiResource {
                                api_version: av,
                                version: v.to_string(),
                                ..ar.clone()
                            },
                            namespaced: caps.scope == Scope::Namespaced,
                            watchable: false,
                        });
                }
            }
        }
        *self
            .kinds
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = map;
        Ok(())
    }

    fn lookup(&self, api_version: &str, kind: &str) -> Option<Kind> {
        self.kinds
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&(api_version.to_string(), kind.to_string()))
            .cloned()
    }

    /// Resolve a kind, refreshing discovery once when it is unknown.
    async fn resolve(&self, api_version: &str, kind: &str) -> Result<Kind, K8sError> {
        if let Some(k) = self.lookup(api_version, kind) {
            return Ok(k);
        }
        self.refresh_discovery().await?;
        self.lookup(api_version, kind)
            .ok_or_else(|| K8sError::UnknownKind {
                api_version: api_version.into(),
                kind: kind.into(),
            })
    }

    /// Whether the kind is namespaced (`None` when the cluster does not serve it).
    pub async fn is_namespaced(&self, api_version: &str, kind: &str) -> Option<bool> {
        self.resolve(api_version, kind)
            .await
            .ok()
            .map(|k| k.namespaced)
    }

    /// Identity and REST resource of a manifest.
    async fn target(&self, obj: &Value) -> Result<(ResourceKey, Api<DynamicObject>), K8sError> {
        let key = ResourceKey::of(obj).ok_or_else(|| K8sError::NoIdentity(obj.to_string()))?;
        let av = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let k = self.resolve(av, &key.kind).await?;
        let api = self.api(&k, &key.namespace);
        Ok((key, api))
    }

    fn api(&self, k: &Kind, ns: &str) -> Api<DynamicObject> {
        if k.namespaced {
            Api::namespaced_with(self.client.clone(), ns, &k.resource)
        } else {
            Api::all_with(self.client.clone(), &k.resource)
        }
    }

    /// Server-side apply `obj` as `manager` (force: Mooring is the source of truth).
    pub async fn apply(
        &self,
        obj: &Value,
        manager: &str,
        dry_run: bool,
    ) -> Result<Value, K8sError> {
        let (key, api) = self.target(obj).await?;
        let mut pp = PatchParams::apply(manager).force();
        pp.dry_run = dry_run;
        let out = api
            .patch(&key.name, &pp, &Patch::Apply(obj))
            .await
            .map_err(|e| K8sError::from_kube(&key.to_string(), e))?;
        serde_json::to_value(out).map_err(|e| K8sError::NoIdentity(e.to_string()))
    }

    /// Replace (PUT) an object, creating it when missing (`Replace=true`).
    pub async fn replace(&self, obj: &Value) -> Result<Value, K8sError> {
        let (key, api) = self.target(obj).await?;
        let mut dynamic: DynamicObject =
            serde_json::from_value(obj.clone()).map_err(|e| K8sError::NoIdentity(e.to_string()))?;
        let res = match api.get_opt(&key.name).await {
            Ok(Some(cur)) => {
                dynamic.metadata.resource_version = cur.metadata.resource_version;
                api.replace(&key.name, &PostParams::default(), &dynamic)
                    .await
            }
            Ok(None) => api.create(&PostParams::default(), &dynamic).await,
            Err(e) => Err(e),
        };
        let out = res.map_err(|e| K8sError::from_kube(&key.to_string(), e))?;
        serde_json::to_value(out).map_err(|e| K8sError::NoIdentity(e.to_string()))
    }

    /// Create an object (hooks); `AlreadyExists` is an error the caller may accept.
    pub async fn create(&self, obj: &Value) -> Result<Value, K8sError> {
        let (key, api) = self.target(obj).await?;
        let dynamic: DynamicObject =
            serde_json::from_value(obj.clone()).map_err(|e| K8sError::NoIdentity(e.to_string()))?;
        let out = api
            .create(&PostParams::default(), &dynamic)
            .await
            .map_err(|e| K8sError::from_kube(&key.to_string(), e))?;
        serde_json::to_value(out).map_err(|e| K8sError::NoIdentity(e.to_string()))
    }

    pub async fn get(
        &self,
        api_version: &str,
        key: &ResourceKey,
    ) -> Result<Option<Value>, K8sError> {
        let k = match self.resolve(api_version, &key.kind).await {
            Ok(k) => k,
            Err(K8sError::UnknownKind { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let got = self
            .api(&k, &key.namespace)
            .get_opt(&key.name)
            .await
            .map_err(|e| K8sError::from_kube(&key.to_string(), e))?;
        got.map(|o| serde_json::to_value(o).map_err(|e| K8sError::NoIdentity(e.to_string())))
            .transpose()
    }

    /// Delete an object; a missing object is not an error.
    pub async fn delete(
        &self,
        api_version: &str,
        key: &ResourceKey,
        propagation: Option<&str>,
    ) -> Result<(), K8sError> {
        let k = self.resolve(api_version, &key.kind).await?;
        let dp = DeleteParams {
            propagation_policy: match propagation {
                Some("orphan") | Some("Orphan") => Some(PropagationPolicy::Orphan),
                Some("background") | Some("Background") => Some(PropagationPolicy::Background),
                _ => Some(PropagationPolicy::Foreground),
            },
            ..Default::default()
        };
        match self.api(&k, &key.namespace).delete(&key.name, &dp).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(K8sError::from_kube(&key.to_string(), e)),
        }
    }

    /// Live objects tracked as belonging to `app`; [`K8sError::CacheSyncing`] until the
    /// cache has listed every kind.
    pub fn managed(&self, app: &str) -> Result<Vec<Value>, K8sError> {
        if !self.cache_synced() {
            return Err(K8sError::CacheSyncing(self.name.clone()));
        }
        let texts: Vec<Arc<[u8]>> = {
            let live = self
                .live
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            live.by_app
                .get(app)
                .map(|keys| {
                    keys.iter()
                        .filter_map(|k| live.objects.get(k).map(|(_, v)| v.clone()))
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(texts.iter().filter_map(|t| parse_cached(t)).collect())
    }

    /// Every object of the listable namespaced kinds in `namespace` (preferred versions;
    /// kinds that churn or are always owned — Events, Pods, ReplicaSets, Endpoints, … —
    /// left out), managed or not: what orphaned-resource monitoring looks at. A kind that
    /// cannot be listed is skipped.
    pub async fn list_namespace(&self, namespace: &str) -> Vec<Value> {
        let kinds: Vec<Kind> = self
            .kinds
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .filter(|k| k.watchable && k.namespaced)
            .filter(|k| {
                !matches!(
                    k.resource.kind.as_str(),
                    "Event"
                        | "Lease"
                        | "Pod"
                        | "Endpoints"
                        | "EndpointSlice"
                        | "ReplicaSet"
                        | "ControllerRevision"
                )
            })
            .cloned()
            .collect();
        let mut out = Vec::new();
        for k in kinds {
            let api = self.api(&k, namespace);
            match api.list(&Default::default()).await {
                Ok(list) => {
                    for o in list.items {
                        if let Ok(mut v) = serde_json::to_value(&o) {
                            v["apiVersion"] = Value::String(k.resource.api_version.clone());
                            v["kind"] = Value::String(k.resource.kind.clone());
                            out.push(v);
                        }
                    }
                }
                // Forbidden or gone since discovery: not this kind, then.
                Err(_) => continue,
            }
        }
        out
    }

    /// Every cached live object (all applications'), e.g. for a policy inventory.
    pub fn cached_all(&self) -> Vec<Value> {
        let texts: Vec<Arc<[u8]>> = self
            .live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .objects
            .values()
            .map(|(_, v)| v.clone())
            .collect();
        texts.iter().filter_map(|t| parse_cached(t)).collect()
    }

    /// The cached live object, if managed.
    pub fn cached(&self, key: &ResourceKey) -> Option<Value> {
        let text = self
            .live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .objects
            .get(key)
            .map(|(_, v)| v.clone())?;
        parse_cached(&text)
    }

    /// Every change of a managed object from now on (none is ever dropped; see
    /// `changes`). Dropping the receiver unsubscribes.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<LiveChange> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.changes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(tx);
        rx
    }

    fn publish(&self, change: LiveChange) {
        self.changes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|tx| tx.send(change.clone()).is_ok());
    }

    /// Start watching every listable kind; managed objects enter the cache and changes
    /// are broadcast. Returns the watch tasks.
    pub async fn start_cache(
        self: &Arc<Self>,
    ) -> Result<Vec<tokio::task::JoinHandle<()>>, K8sError> {
        self.refresh_discovery().await?;
        let kinds: Vec<Kind> = self
            .kinds
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .filter(|k| k.watchable)
            .cloned()
            .collect();
        // Pods, events and leases churn and are never applied from Git.
        let kinds: Vec<Kind> = kinds
            .into_iter()
            .filter(|k| {
                !matches!(
                    k.resource.kind.as_str(),
                    "Event" | "Lease" | "Pod" | "Endpoints" | "ReplicaSet" | "ControllerRevision"
                )
            })
            .collect();
        self.cache_pending
            .store(kinds.len(), std::sync::atomic::Ordering::SeqCst);
        let mut tasks = Vec::new();
        for k in kinds {
            let me = self.clone();
            tasks.push(tokio::spawn(async move { me.watch_kind(k).await }));
        }
        Ok(tasks)
    }

    async fn watch_kind(self: Arc<Self>, k: Kind) {
        use futures::StreamExt;
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &k.resource);
        // Backoff between failed attempts (an unreachable cluster must not spin).
        let mut stream = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        // Keys listed by the current (re-)list: after a re-list (the watch expired or the
        // server restarted), cached objects of this kind it did not list were deleted
        // meanwhile and are dropped, as a store replaces its contents.
        let mut listed: Option<std::collections::HashSet<ResourceKey>> = None;
        let mut first_list_done = false;
        let mark_listed = |done: &mut bool| {
            if !*done {
                *done = true;
                let _ = self.cache_pending.fetch_update(
                    std::sync::atomic::Ordering::SeqCst,
                    std::sync::atomic::Ordering::SeqCst,
                    |n| (n != CACHE_NOT_STARTED && n > 0).then(|| n - 1),
                );
            }
        };
        while let Some(ev) = stream.next().await {
            let ev = match ev {
                Ok(ev) => ev,
                Err(e) => {
                    // A kind this identity may not list (RBAC) or that went away holds
                    // nothing it could manage: it must not keep the cache from being
                    // read. Other errors are retried by the watcher, with backoff.
                    if let watcher::Error::InitialListFailed(kube::Error::Api(s)) = &e {
                        if (403..=405).contains(&s.code) && !first_list_done {
                            tracing::warn!(
                                cluster = %self.name,
                                kind = %k.resource.kind,
                                "cannot list {}: {} (its objects are not watched)",
                                k.resource.kind,
                                s.message
                            );
                            mark_listed(&mut first_list_done);
                        }
                    }
                    continue;
                }
            };
            match ev {
                watcher::Event::Apply(o) => {
                    self.observe(o, false);
                }
                watcher::Event::InitApply(o) => {
                    if let (Some(key), Some(seen)) = (self.observe(o, false), listed.as_mut()) {
                        seen.insert(key);
                    }
                }
                watcher::Event::Delete(o) => {
                    self.observe(o, true);
                }
                watcher::Event::Init => listed = Some(Default::default()),
                watcher::Event::InitDone => {
                    if let Some(seen) = listed.take() {
                        self.forget_unlisted(&k, &seen);
                    }
                    mark_listed(&mut first_list_done);
                }
            }
        }
    }

    /// Drop the cached objects of kind `k` that a completed list did not return.
    fn forget_unlisted(&self, k: &Kind, listed: &std::collections::HashSet<ResourceKey>) {
        let (group, kind) = (k.resource.group.as_str(), k.resource.kind.as_str());
        let gone: Vec<(ResourceKey, String)> = {
            let mut live = self
                .live
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let stale: Vec<ResourceKey> = live
                .objects
                .keys()
                .filter(|key| key.group == group && key.kind == kind && !listed.contains(*key))
                .cloned()
                .collect();
            stale
                .into_iter()
                .filter_map(|key| live.remove(&key).map(|app| (key, app)))
                .collect()
        };
        for (key, app) in gone {
            self.publish(LiveChange { app, key });
        }
    }

    /// Record a watched object (or its deletion); its key.
    fn observe(&self, o: DynamicObject, deleted: bool) -> Option<ResourceKey> {
        let Ok(mut v) = serde_json::to_value(&o) else {
            return None;
        };
        if let Some(tm) = &o.types {
            v["apiVersion"] = Value::String(tm.api_version.clone());
            v["kind"] = Value::String(tm.kind.clone());
        }
        let key = ResourceKey::of(&v)?;
        let app = v
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(TRACKING_ANNOTATION))
            .and_then(Value::as_str)
            .and_then(tracking_app)
            .map(str::to_string);
        // Serialised before the lock is taken (only managed objects are kept).
        let text: Option<Arc<[u8]>> = match (deleted, &app) {
            (false, Some(_)) => serde_json::to_vec(&v).ok().map(Arc::from),
            _ => None,
        };
        let mut live = self
            .live
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let previous_app = live.remove(&key);
        if let (Some(text), Some(a)) = (text, &app) {
            live.insert(key.clone(), a.clone(), text);
        }
        drop(live);
        let moved = previous_app.filter(|p| Some(p) != app.as_ref());
        for a in [app, moved].into_iter().flatten() {
            self.publish(LiveChange {
                app: a,
                key: key.clone(),
            });
        }
        Some(key)
    }
}
