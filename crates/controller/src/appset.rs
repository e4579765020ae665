//! The ApplicationSet controller: keeps the Applications a set generates equal to what
//! its generators say now.
//!
//! Generation is the pure [`mooring_engine::appset::generate`]; this module feeds it
//! (cluster Secrets, Git trees) and writes its result. A reconcile of one set:
//!
//! 1. reads the cluster Secrets (`argocd.argoproj.io/secret-type: cluster`) in the
//!    control-plane namespace — where Argo CD keeps them — and the trees of
//!    the Git repositories its git generators name (resolved through the shared
//!    [`RepoCache`](mooring_source::RepoCache), URL aliases and credentials included);
//! 2. generates; any error (bad template, unknown generator, duplicate names, unreachable
//!    repository) stops here, before anything is written, and is reported as the
//!    `ErrorOccurred` condition: a half-generated set never deletes Applications;
//! 3. creates missing Applications, updates changed ones and deletes those no longer
//!    generated, as `syncPolicy.applicationsSync` allows (`create-only`, `create-update`,
//!    `create-delete`, `sync` — the default). Each generated Application carries an
//!    `ownerReference` to the set (so deleting the set garbage-collects them, and the
//!    resources finalizer the generator added deletes their resources unless
//!    `preserveResourcesOnDeletion`) and the [`OWNER_LABEL`] label, by which they are
//!    listed. Deleting an Application under `preserveResourcesOnDeletion` first removes
//!    its resources finalizer, so its resources stay. An Application of the same name not
//!    owned by the set is left alone and reported;
//! 4. writes `status.conditions` (`ErrorOccurred`, `ParametersGenerated`,
//!    `ResourcesUpToDate`, and `UnsupportedFieldWarning` naming every field of the set
//!    Mooring does not act on, e.g. a `RollingSync` strategy) and `status.resources`, only
//!    when they change. A set that does not parse gets `ErrorOccurred` saying why.
//!
//! ApplicationSets are read from the control-plane namespace and the namespaces the
//! controller allows for Applications ([`mooring_engine::project::ControlPlane`]); one
//! anywhere else is reported (Warning Event, log line) and never generated.
//!
//! Triggers: the set changes (watch), a cluster Secret changes (watch; a relabelled
//! cluster enters or leaves a selector), an owned Application is deleted (watch), and
//! the controller's poll interval (Git generators see new commits; Argo CD's default
//! `requeueAfterSeconds` is the same 3 minutes) or sooner where a generator sets
//! `requeueAfterSeconds`, and a Git webhook push to a repository a git generator reads.
//! Failed reconciles retry after 10 s.

use crate::workqueue::WorkQueue;
use crate::{Context, ControllerError};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use mooring_core::appset::{
    ApplicationSet, ApplicationSetCondition, ApplicationsSyncPolicy, OWNER_LABEL,
};
use mooring_engine::appset::{ClusterInfo, GeneratorInputs, RESOURCES_FINALIZER};
use mooring_k8s::kube;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Retry delay after a failed reconcile.
const RETRY: Duration = Duration::from_secs(10);

/// What one reconcile did (for logs and tests).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub deleted: Vec<String>,
    /// Applications the policy kept although no longer generated (or not owned by the set).
    pub kept: Vec<String>,
    /// The smallest `requeueAfterSeconds` of the set's generators, if any: when to
    /// regenerate next, sooner than the controller's poll.
    pub requeue_after: Option<Duration>,
}

impl Outcome {
    fn changed(&self) -> bool {
        !(self.created.is_empty() && self.updated.is_empty() && self.deleted.is_empty())
    }
}

/// The smallest `requeueAfterSeconds` anywhere in the generators (Argo CD's per-generator
/// polling interval), at least one second.
pub fn requeue_after(generators: &Value) -> Option<Duration> {
    fn walk(v: &Value, min: &mut Option<u64>) {
        match v {
            Value::Object(o) => {
                for (k, x) in o {
                    if k == "requeueAfterSeconds" {
                        if let Some(n) = x.as_u64() {
                            *min = Some(min.map_or(n, |m| m.min(n)));
                        }
                    } else {
                        walk(x, min);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, min)),
            _ => {}
        }
    }
    let mut min = None;
    walk(generators, &mut min);
    min.map(|s| Duration::from_secs(s.max(1)))
}

/// Spawn the ApplicationSet watches and worker.
pub fn start(ctx: Arc<Context>) -> Vec<tokio::task::JoinHandle<()>> {
    let (tx, rx) = mpsc::unbounded_channel::<String>();
    // Replaced when the loops restart (leadership moved away and back).
    *ctx.appset_queue
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tx.clone());
    vec![
        tokio::spawn(watch_sets(ctx.clone(), tx.clone())),
        tokio::spawn(watch_owned_apps(ctx.clone(), tx.clone())),
        tokio::spawn(resync(ctx.clone(), tx.clone())),
        tokio::spawn(work(ctx, rx)),
    ]
}

fn sets_api(ctx: &Context, ns: Option<&str>) -> Api<DynamicObject> {
    let c = ctx.management.client().clone();
    match ns {
        Some(ns) => Api::namespaced_with(c, ns, &mooring_k8s::resources::applicationset_resource()),
        None => Api::all_with(c, &mooring_k8s::resources::applicationset_resource()),
    }
}

fn apps_api(ctx: &Context, ns: Option<&str>) -> Api<DynamicObject> {
    let c = ctx.management.client().clone();
    match ns {
        Some(ns) => Api::namespaced_with(c, ns, &mooring_k8s::resources::application_resource()),
        None => Api::all_with(c, &mooring_k8s::resources::application_resource()),
    }
}

async fn all_set_keys(ctx: &Context) -> Vec<String> {
    match sets_api(ctx, None).list(&ListParams::default()).await {
        Ok(l) => l
            .items
            .iter()
            .filter(|o| ctx.reads(o))
            .map(|o| {
                format!(
                    "{}/{}",
                    o.metadata.namespace.as_deref().unwrap_or_default(),
                    o.metadata.name.as_deref().unwrap_or_default()
                )
            })
            .collect(),
        Err(e) => {
            tracing::debug!("listing ApplicationSets: {e}");
            vec![]
        }
    }
}

async fn watch_sets(ctx: Arc<Context>, tx: mpsc::UnboundedSender<String>) {
    use futures::StreamExt;
    let mut stream = kube::runtime::watcher(sets_api(&ctx, None), Default::default())
        .default_backoff()
        .boxed();
    let mut ignored = crate::Ignored::new(mooring_k8s::resources::applicationset_resource());
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(
                kube::runtime::watcher::Event::Apply(o)
                | kube::runtime::watcher::Event::InitApply(o),
            ) => {
                if ignored.check(&ctx, &o).await {
                    continue;
                }
                let key = format!(
                    "{}/{}",
                    o.metadata.namespace.as_deref().unwrap_or_default(),
                    o.metadata.name.as_deref().unwrap_or_default()
                );
                let _ = tx.send(key);
            }
            Ok(kube::runtime::watcher::Event::Delete(o)) => ignored.forget(&o),
            Ok(_) => {}
            Err(e) => {
                tracing::debug!("ApplicationSet watch: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// The running ApplicationSet controller's queue (`None` while it does not run here).
fn queue(ctx: &Context) -> Option<mpsc::UnboundedSender<String>> {
    ctx.appset_queue
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
}

/// Queue every set (a cluster Secret changed: any set may select differently now).
pub(crate) async fn requeue_all(ctx: &Context) {
    let Some(tx) = queue(ctx) else {
        return;
    };
    for key in all_set_keys(ctx).await {
        let _ = tx.send(key);
    }
}

/// An owned Application was deleted by someone else: regenerate it.
async fn watch_owned_apps(ctx: Arc<Context>, tx: mpsc::UnboundedSender<String>) {
    use futures::StreamExt;
    let cfg = kube::runtime::watcher::Config::default().labels(OWNER_LABEL);
    let mut stream = kube::runtime::watcher(apps_api(&ctx, None), cfg)
        .default_backoff()
        .boxed();
    while let Some(ev) = stream.next().await {
        match ev {
            Ok(kube::runtime::watcher::Event::Delete(o)) => {
                for r in o.metadata.owner_references.iter().flatten() {
                    if r.kind == "ApplicationSet" {
                        let ns = o.metadata.namespace.as_deref().unwrap_or_default();
                        let _ = tx.send(format!("{ns}/{}", r.name));
                    }
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!("owned Application watch: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn resync(ctx: Arc<Context>, tx: mpsc::UnboundedSender<String>) {
    loop {
        tokio::time::sleep(ctx.options.poll).await;
        for key in all_set_keys(&ctx).await {
            let _ = tx.send(key);
        }
    }
}

/// One set at a time through the shared [`WorkQueue`]: a set sent while waiting or
/// running runs once more; a generator's `requeueAfterSeconds` is its one timer; a failed
/// reconcile retries after [`RETRY`].
async fn work(ctx: Arc<Context>, rx: mpsc::UnboundedReceiver<String>) {
    WorkQueue::new(1)
        .with_depth(ctx.metrics.workqueue_gauge(crate::metrics::APPSET_QUEUE))
        .run(rx, move |key: String| {
            let ctx = ctx.clone();
            async move {
                let (ns, name) = key.split_once('/')?;
                if !ctx.options.control_plane.namespace_enabled(ns) {
                    return None;
                }
                match reconcile(&ctx, ns, name).await {
                    Ok(o) => {
                        if o.changed() {
                            tracing::info!(appset = %key, created = ?o.created, updated = ?o.updated, deleted = ?o.deleted, "ApplicationSet reconciled");
                        }
                        o.requeue_after
                    }
                    Err(e) => {
                        tracing::warn!(appset = %key, "ApplicationSet reconcile failed: {e}");
                        Some(RETRY)
                    }
                }
            }
        })
        .await;
}

/// A Git push (normalised repository URLs): queue the sets whose git generators read
/// that repository, after forgetting cached resolutions so they see the new commit.
pub(crate) async fn enqueue_for_push(ctx: &Context, pushed: &[String]) {
    let Some(tx) = queue(ctx) else {
        return;
    };
    let Ok(list) = sets_api(ctx, None).list(&ListParams::default()).await else {
        return;
    };
    let sets: Vec<Value> = list
        .items
        .iter()
        .filter_map(|o| serde_json::to_value(o).ok())
        .collect();
    let keys = crate::push::appsets_for_push(&sets, pushed, &ctx.options.repo_aliases);
    if keys.is_empty() {
        return;
    }
    ctx.forget_all_resolutions();
    for key in keys {
        let _ = tx.send(key);
    }
}

/// A repository tree (path → content), or why it could not be read.
type Tree = Result<BTreeMap<String, Vec<u8>>, String>;

/// Inputs read before generation: cluster Secrets and whole Git trees.
#[derive(Default)]
struct Prefetched {
    clusters: Vec<ClusterInfo>,
    trees: HashMap<(String, String), Tree>,
}

impl GeneratorInputs for Prefetched {
    fn clusters(&self) -> Result<Vec<ClusterInfo>, String> {
        Ok(self.clusters.clone())
    }
    fn git_files(&self, repo_url: &str, revision: &str) -> Result<Vec<String>, String> {
        match self.trees.get(&(repo_url.to_string(), revision.to_string())) {
            Some(Ok(t)) => Ok(t.keys().cloned().collect()),
            Some(Err(e)) => Err(e.clone()),
            None => Err(format!("repository {repo_url} at {revision:?} was not fetched (a templated repoURL is not supported)")),
        }
    }
    fn git_read(&self, repo_url: &str, revision: &str, path: &str) -> Result<Vec<u8>, String> {
        match self
            .trees
            .get(&(repo_url.to_string(), revision.to_string()))
        {
            Some(Ok(t)) => t
                .get(path)
                .cloned()
                .ok_or_else(|| format!("{path} not found")),
            Some(Err(e)) => Err(e.clone()),
            None => Err(format!("repository {repo_url} was not fetched")),
        }
    }
}

async fn prefetch(ctx: &Context, set: &ApplicationSet) -> Result<Prefetched, ControllerError> {
    use mooring_k8s::k8s_openapi::api::core::v1::Secret;
    let mut p = Prefetched::default();
    let secrets: Api<Secret> = Api::namespaced(ctx.management.client().clone(), ctx.namespace());
    let list = secrets
        .list(&ListParams::default().labels(&format!(
            "{}=cluster",
            mooring_core::cluster::SECRET_TYPE_LABEL
        )))
        .await
        .map_err(|e| {
            ControllerError::Internal(format!(
                "listing cluster Secrets in {}: {e}",
                ctx.namespace()
            ))
        })?;
    for s in list.items {
        let v = serde_json::to_value(&s).map_err(|e| ControllerError::Internal(e.to_string()))?;
        match mooring_engine::appset::cluster_from_secret(&v) {
            Ok(c) => p.clusters.push(c),
            Err(e) => tracing::warn!("cluster Secret ignored: {e}"),
        }
    }
    let mut sources = BTreeSet::new();
    crate::push::git_generator_sources(&Value::Array(set.spec.generators.clone()), &mut sources);
    for (url, rev) in sources {
        if url.contains("{{") {
            continue;
        }
        let fetch = ctx.fetch_url(&url);
        // As Argo CD: the template's project, when it is not templated itself.
        let project = set
            .spec
            .template
            .spec
            .get("project")
            .and_then(Value::as_str)
            .filter(|p| !p.contains("{{"));
        let creds = ctx.credentials_for(&fetch, project);
        let tree = match ctx.resolve(&fetch, &rev, creds).await {
            Ok(commit) => {
                let repos = ctx.repos.clone();
                tokio::task::spawn_blocking(move || {
                    repos
                        .read_tree(&fetch, &commit, "", &mooring_source::Limits::default())
                        .map(|files| files.into_iter().map(|f| (f.path, f.data)).collect())
                        .map_err(|e| e.to_string())
                })
                .await
                .map_err(|e| ControllerError::Internal(e.to_string()))?
            }
            Err(e) => Err(e.to_string()),
        };
        p.trees.insert((url, rev), tree);
    }
    Ok(p)
}

fn condition(type_: &str, status: bool, reason: &str, message: &str) -> ApplicationSetCondition {
    ApplicationSetCondition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        message: message.into(),
        reason: reason.into(),
        last_transition_time: None,
    }
}

/// The conditions of a set whose generation failed (nothing was changed).
fn generation_failed(
    message: &str,
    unsupported: Option<ApplicationSetCondition>,
) -> Vec<ApplicationSetCondition> {
    let mut c = vec![
        condition(
            "ErrorOccurred",
            true,
            "ApplicationGenerationFromParamsError",
            message,
        ),
        condition("ParametersGenerated", false, "ErrorOccurred", message),
        condition("ResourcesUpToDate", false, "ErrorOccurred", message),
    ];
    c.extend(unsupported);
    c
}

/// The `UnsupportedFieldWarning` condition naming every field of the set (its generators
/// and Application template included) Mooring does not act on, if any
/// ([`mooring_engine::unsupported::applicationset`]).
fn unsupported_condition(raw: &Value) -> Option<ApplicationSetCondition> {
    let found = mooring_engine::unsupported::applicationset(raw);
    (!found.is_empty()).then(|| {
        condition(
            mooring_engine::unsupported::CONDITION,
            true,
            "UnsupportedField",
            &mooring_engine::unsupported::summary(&found),
        )
    })
}

/// Write conditions (keeping transition times of unchanged ones) and resources, if changed.
async fn write_status(
    ctx: &Context,
    set: &ApplicationSet,
    mut conditions: Vec<ApplicationSetCondition>,
    resources: Option<Vec<Value>>,
) -> Result<(), ControllerError> {
    let old = set.status.clone().unwrap_or_default();
    let now = mooring_core::time::now_rfc3339();
    for c in conditions.iter_mut() {
        let prev = old.conditions.iter().find(|o| o.type_ == c.type_);
        c.last_transition_time = match prev {
            Some(p) if p.status == c.status => p.last_transition_time.clone(),
            _ => Some(now.clone()),
        };
    }
    let same_conditions = old.conditions.len() == conditions.len()
        && conditions.iter().all(|c| {
            old.conditions
                .iter()
                .any(|o| o.type_ == c.type_ && o.status == c.status && o.message == c.message)
        });
    let old_resources = serde_json::to_value(&old.resources).unwrap_or(Value::Null);
    let resources_changed = resources
        .as_ref()
        .is_some_and(|r| Value::Array(r.clone()) != old_resources);
    if same_conditions && !resources_changed {
        return Ok(());
    }
    let mut status = json!({"conditions": conditions});
    if let Some(r) = resources {
        status["resources"] = Value::Array(r);
    }
    sets_api(ctx, Some(set.namespace()))
        .patch(
            set.name(),
            &PatchParams::default(),
            &Patch::Merge(&json!({"status": status})),
        )
        .await
        .map(|_| ())
        .map_err(|e| {
            ControllerError::Write(format!(
                "ApplicationSet {}/{} status: {e}",
                set.namespace(),
                set.name()
            ))
        })
}

/// Reconcile one ApplicationSet now against fresh Git resolutions (a refresh).
pub async fn refresh(ctx: &Context, ns: &str, name: &str) -> Result<Outcome, ControllerError> {
    ctx.forget_all_resolutions();
    reconcile(ctx, ns, name).await
}

/// Reconcile one ApplicationSet (see the module docs).
pub async fn reconcile(ctx: &Context, ns: &str, name: &str) -> Result<Outcome, ControllerError> {
    let obj = match sets_api(ctx, Some(ns)).get_opt(name).await {
        Ok(Some(o)) => o,
        Ok(None) => return Ok(Outcome::default()),
        Err(e) => {
            return Err(ControllerError::Internal(format!(
                "reading ApplicationSet {ns}/{name}: {e}"
            )))
        }
    };
    if obj.metadata.deletion_timestamp.is_some() {
        return Ok(Outcome::default());
    }
    // Argo CD's refresh request (a webhook through a standalone `mooring server`):
    // generate from fresh Git resolutions, then clear the request.
    let refresh_requested = obj
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(crate::push::APPSET_REFRESH_ANNOTATION));
    if refresh_requested {
        ctx.forget_all_resolutions();
        sets_api(ctx, Some(ns))
            .patch(
                name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(serde_json::json!({"metadata": {"annotations": {
                    crate::push::APPSET_REFRESH_ANNOTATION: null}}})),
            )
            .await
            .map_err(|e| ControllerError::Write(format!("ApplicationSet {ns}/{name}: {e}")))?;
    }
    let uid = obj.metadata.uid.clone().unwrap_or_default();
    let raw = serde_json::to_value(&obj).map_err(|e| ControllerError::Internal(e.to_string()))?;
    // Fields the typed set below drops or ignores are named in a warning condition.
    let unsupported = unsupported_condition(&raw);
    let set: ApplicationSet = match serde_json::from_value(raw.clone()) {
        Ok(s) => s,
        Err(e) => {
            // Reported on the set, not only in a log line; nothing is generated or changed.
            let message = format!("the ApplicationSet does not parse: {e}");
            tracing::warn!("ApplicationSet {ns}/{name}: {message}");
            let shell = ApplicationSet {
                api_version: String::new(),
                kind: String::new(),
                metadata: raw["metadata"].clone(),
                spec: Default::default(),
                status: serde_json::from_value(raw["status"].clone()).ok(),
            };
            write_status(ctx, &shell, generation_failed(&message, unsupported), None).await?;
            return Ok(Outcome::default());
        }
    };
    let generated = match prefetch(ctx, &set).await {
        Ok(inputs) => mooring_engine::appset::generate(&set, &inputs).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let desired = match generated {
        Ok(d) => d,
        Err(message) => {
            write_status(ctx, &set, generation_failed(&message, unsupported), None).await?;
            return Err(ControllerError::Spec(format!(
                "ApplicationSet {ns}/{name}: {message}"
            )));
        }
    };
    let policy = set
        .spec
        .sync_policy
        .as_ref()
        .and_then(|p| p.applications_sync)
        .unwrap_or(ApplicationsSyncPolicy::Sync);
    let preserve = set
        .spec
        .sync_policy
        .as_ref()
        .is_some_and(|p| p.preserve_resources_on_deletion);
    let owner = json!([{
        "apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationSet", "name": name, "uid": uid,
        "controller": true, "blockOwnerDeletion": true,
    }]);
    // Applications this set owns now, by namespace/name.
    let owned_list = apps_api(ctx, None)
        .list(&ListParams::default().labels(&format!("{OWNER_LABEL}={name}")))
        .await
        .map_err(|e| {
            ControllerError::Internal(format!("listing Applications of {ns}/{name}: {e}"))
        })?;
    let mut owned: BTreeMap<String, DynamicObject> = owned_list
        .items
        .into_iter()
        .filter(|o| {
            o.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|r| r.uid == uid)
        })
        .map(|o| {
            (
                format!(
                    "{}/{}",
                    o.metadata.namespace.as_deref().unwrap_or_default(),
                    o.metadata.name.as_deref().unwrap_or_default()
                ),
                o,
            )
        })
        .collect();
    let mut outcome = Outcome {
        requeue_after: requeue_after(&Value::Array(set.spec.generators.clone())),
        ..Outcome::default()
    };
    let mut errors = Vec::new();
    let mut resources = Vec::new();
    for mut app in desired {
        let app_ns = app["metadata"]["namespace"]
            .as_str()
            .unwrap_or(ns)
            .to_string();
        let app_name = app["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let key = format!("{app_ns}/{app_name}");
        app["metadata"]["namespace"] = json!(app_ns);
        app["metadata"]["ownerReferences"] = owner.clone();
        app["metadata"]["labels"][OWNER_LABEL] = json!(name);
        resources.push(json!({"group": "argoproj.io", "version": "v1alpha1", "kind": "Application", "name": app_name, "namespace": app_ns}));
        let api = apps_api(ctx, Some(&app_ns));
        match owned.remove(&key) {
            None => {
                let obj: DynamicObject = serde_json::from_value(app)
                    .map_err(|e| ControllerError::Internal(e.to_string()))?;
                match api.create(&PostParams::default(), &obj).await {
                    Ok(_) => outcome.created.push(key),
                    Err(kube::Error::Api(e)) if e.code == 409 => {
                        outcome.kept.push(key.clone());
                        errors.push(format!("Application {key} exists and is not owned by this ApplicationSet; left unchanged"));
                    }
                    Err(e) => errors.push(format!("creating Application {key}: {e}")),
                }
            }
            Some(existing) if policy.allows_update() => {
                let mut current = serde_json::to_value(&existing)
                    .map_err(|e| ControllerError::Internal(e.to_string()))?;
                let mut next = current.clone();
                next["spec"] = app["spec"].clone();
                next["metadata"]["labels"] = app["metadata"]["labels"].clone();
                // Annotations and finalizers: the template's, plus what others added
                // (notification state, refresh requests, a deletion in progress).
                let mut annotations = current["metadata"]["annotations"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                for (k, v) in app["metadata"]["annotations"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default()
                {
                    annotations.insert(k, v);
                }
                next["metadata"]["annotations"] = Value::Object(annotations);
                let mut finalizers: Vec<Value> = current["metadata"]["finalizers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                for f in app["metadata"]["finalizers"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                {
                    if !finalizers.contains(&f) {
                        finalizers.push(f);
                    }
                }
                next["metadata"]["finalizers"] = Value::Array(finalizers);
                for v in [&mut current, &mut next] {
                    if v["metadata"]["annotations"]
                        .as_object()
                        .is_some_and(|o| o.is_empty())
                    {
                        v["metadata"]
                            .as_object_mut()
                            .map(|m| m.remove("annotations"));
                    }
                    if v["metadata"]["finalizers"]
                        .as_array()
                        .is_some_and(|a| a.is_empty())
                    {
                        v["metadata"]
                            .as_object_mut()
                            .map(|m| m.remove("finalizers"));
                    }
                }
                if next != current {
                    // A merge patch of just what differs: no conflict with the
                    // application controller writing `status` meanwhile.
                    let patch = mooring_core::merge_patch::diff(&current, &next);
                    match api
                        .patch(&app_name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                    {
                        Ok(_) => outcome.updated.push(key),
                        Err(e) => errors.push(format!("updating Application {key}: {e}")),
                    }
                }
            }
            Some(_) => {}
        }
    }
    // Owned but no longer generated.
    for key in owned.into_keys() {
        if !policy.allows_delete() {
            outcome.kept.push(key);
            continue;
        }
        let (app_ns, app_name) = key.split_once('/').unwrap_or_default();
        let api = apps_api(ctx, Some(app_ns));
        if preserve {
            if let Err(e) = mooring_k8s::update_finalizers(&api, app_name, |list| {
                list.into_iter()
                    .filter(|f| f != RESOURCES_FINALIZER)
                    .collect()
            })
            .await
            {
                errors.push(format!("removing the resources finalizer of {key}: {e}"));
                continue;
            }
        }
        match api.delete(app_name, &DeleteParams::default()).await {
            Ok(_) => outcome.deleted.push(key),
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => errors.push(format!("deleting Application {key}: {e}")),
        }
    }
    let conditions = if errors.is_empty() {
        vec![
            condition(
                "ErrorOccurred",
                false,
                "ApplicationSetUpToDate",
                "Successfully generated parameters for all Applications",
            ),
            condition(
                "ParametersGenerated",
                true,
                "ParametersGenerated",
                "Successfully generated parameters for all Applications",
            ),
            condition(
                "ResourcesUpToDate",
                true,
                "ApplicationSetUpToDate",
                "ApplicationSet up to date",
            ),
        ]
    } else {
        let message = errors.join("; ");
        vec![
            condition("ErrorOccurred", true, "UpdateApplicationError", &message),
            condition(
                "ParametersGenerated",
                true,
                "ParametersGenerated",
                "Successfully generated parameters for all Applications",
            ),
            condition(
                "ResourcesUpToDate",
                false,
                "UpdateApplicationError",
                &message,
            ),
        ]
    };
    let mut conditions = conditions;
    conditions.extend(unsupported);
    write_status(ctx, &set, conditions, Some(resources)).await?;
    if errors.is_empty() {
        Ok(outcome)
    } else {
        Err(ControllerError::Write(errors.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requeue_after_is_the_smallest() {
        let g = json!([{"git": {"repoURL": "r", "requeueAfterSeconds": 30}},
                       {"matrix": {"generators": [{"clusters": {"requeueAfterSeconds": 0}}]}}]);
        assert_eq!(requeue_after(&g), Some(Duration::from_secs(1)));
        assert_eq!(requeue_after(&json!([{"list": {"elements": []}}])), None);
    }

    #[test]
    fn merge_patch_diffs() {
        for (old, new) in [
            (
                json!({"a": 1, "b": {"c": 2, "d": 3}}),
                json!({"a": 1, "b": {"c": 4}}),
            ),
            (json!({"a": [1, 2]}), json!({"a": [2], "e": "x"})),
            (json!({"spec": {"x": {"y": 1}}}), json!({"spec": {}})),
        ] {
            let patch = mooring_core::merge_patch::diff(&old, &new);
            let mut applied = old.clone();
            mooring_core::merge_patch::apply(&mut applied, &patch);
            assert_eq!(applied, new, "{patch}");
        }
        assert_eq!(
            mooring_core::merge_patch::diff(
                &json!({"a": 1, "b": {"c": 2}}),
                &json!({"a": 1, "b": {"c": 3}})
            ),
            json!({"b": {"c": 3}})
        );
    }

    #[test]
    fn git_sources_are_found_at_any_depth() {
        let gens = json!([
            {"matrix": {"generators": [
                {"git": {"repoURL": "https://a", "revision": "main", "files": [{"path": "x"}]}},
                {"list": {"elements": []}}]}},
            {"git": {"repoURL": "https://b", "directories": [{"path": "*"}]}}
        ]);
        let mut out = BTreeSet::new();
        crate::push::git_generator_sources(&gens, &mut out);
        assert_eq!(
            out.into_iter().collect::<Vec<_>>(),
            vec![
                ("https://a".to_string(), "main".to_string()),
                ("https://b".to_string(), String::new())
            ]
        );
    }
}
