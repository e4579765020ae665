//! One reconciliation of one Application: resolve the Git revision, render it, compare
//! with the live cluster, assess health, write the status, and drive the sync operation.
//!
//! The steps are the same as Argo CD's: desired = Git at the resolved revision (rendered
//! once per commit and source options, and reused when a new commit does not touch the
//! app's inputs), actual = the destination cluster's watch-fed cache of managed objects,
//! drift = the engine's normalised diff. Every failure becomes an Application condition
//! with the offending input named; nothing is applied when anything before the apply
//! fails, so the last synced state stays running.

use crate::operation::{self, OperationOutcome};
use crate::{Context, ControllerError};
use mooring_core::app::{
    Application, ApplicationCondition, HealthStatus, HealthStatusCode, ResourceStatus, Revisions,
    SyncStatus, SyncStatusCode,
};
use mooring_core::ResourceKey;
use mooring_engine::diff::{self, DiffOptions};
use mooring_k8s::cluster::{ClusterClient, TRACKING_ANNOTATION};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Argo CD's refresh request on an Application (`normal` or `hard`), removed once served.
pub const REFRESH_ANNOTATION: &str = "argocd.argoproj.io/refresh";

pub use mooring_core::app::RESOURCES_FINALIZER;

/// What to do after a reconcile.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Nothing pending; the next trigger (watch, webhook, poll) will come.
    Idle,
    /// An operation is in progress: look again soon.
    RequeueAfter(Duration),
}

/// The rendered, annotated desired state of an app and the live objects it manages.
pub struct Compared {
    /// The commit of every source compared (Argo CD's `revision` or `revisions`).
    pub revision: Revisions,
    pub desired: Vec<Value>,
    pub live: Vec<Value>,
    pub resources: Vec<ResourceStatus>,
    pub diffs: Vec<diff::ResourceDiff>,
    pub sync: SyncStatusCode,
    pub health: HealthStatus,
    /// `SharedResourceWarning` messages: desired resources whose live object another
    /// application tracks (`Kind/name is part of applications A and B`, as Argo CD).
    pub shared: Vec<String>,
}

pub(crate) fn condition(type_: &str, message: impl Into<String>) -> ApplicationCondition {
    ApplicationCondition {
        type_: type_.into(),
        message: message.into(),
        last_transition_time: Some(mooring_core::time::now_rfc3339()),
    }
}

/// Resolve, render and annotate the desired manifests of `app`: every source (Argo CD's
/// `spec.sources`, or the single `spec.source`) from its own repository at its own
/// revision, validated as a whole first and merged after the destination namespace is
/// filled in ([`mooring_render::plan`], [`mooring_render::merge`]: the same resource from
/// two sources is an error naming both). `overrides` are the revisions an operation asks
/// for ([`Revisions::of`] its `sync`): one per source, an empty entry meaning that
/// source's `targetRevision`; empty for none. Returns the commit of every source.
pub async fn desired_state(
    ctx: &Context,
    app: &Application,
    overrides: &Revisions,
    cluster: &ClusterClient,
) -> Result<(Revisions, Vec<Value>), ControllerError> {
    let sources = app.sources();
    let plan = mooring_render::plan(sources)?;
    let multi = app.has_multiple_sources();
    if !overrides.is_empty()
        && (overrides.is_multi_source() != multi || overrides.commits().len() != sources.len())
    {
        return Err(ControllerError::Spec(if multi {
            format!(
                "the operation asks for revision(s) {overrides} but the application has {} sources (spec.sources): give `revisions`, one per source (`mooring app sync --revisions R --source-positions N`)",
                sources.len()
            )
        } else {
            format!("the operation asks for revisions {overrides} of several sources, but the application has a single source: give `revision`")
        }));
    }
    // In a multi-source app, every error names the source it comes from.
    let in_source = |i: usize, e: ControllerError| -> ControllerError {
        if multi {
            ControllerError::InSource {
                label: plan.sources[i].label.clone(),
                error: Box::new(e),
            }
        } else {
            e
        }
    };
    // Every source at its own revision (`ref` sources too: their trees are read by value
    // files, and their commits are reported).
    let mut commits = Vec::with_capacity(sources.len());
    for (i, source) in sources.iter().enumerate() {
        let revision = overrides
            .commits()
            .get(i)
            .filter(|r| !r.is_empty())
            .cloned()
            .or_else(|| source.target_revision.clone().filter(|r| !r.is_empty()))
            .unwrap_or_else(|| "HEAD".into());
        // Credentials are matched against the URL actually contacted (an alias's target).
        let fetch = ctx.fetch_url(&source.repo_url);
        let creds = ctx.credentials_for(&fetch, Some(crate::project::project_name(app)));
        let commit = ctx
            .resolve(&fetch, &revision, creds)
            .await
            .map_err(|e| in_source(i, e))?;
        commits.push(commit);
    }
    let mut rendered: Vec<(String, mooring_render::Manifests)> = Vec::new();
    for p in plan.rendered() {
        let source = &sources[p.index];
        let commit = &commits[p.index];
        let path = source.path.clone().unwrap_or_else(|| ".".into());
        // The `ref` trees this render reads are part of what it depends on.
        let refs: Vec<RefTree> = p
            .refs
            .iter()
            .map(|(name, &at)| RefTree {
                name: name.clone(),
                repo_url: sources[at].repo_url.clone(),
                commit: commits[at].clone(),
            })
            .collect();
        let key =
            mooring_render::RenderCache::key_for(&source.repo_url, commit.as_str(), &path, source)
                .with_refs(
                    refs.iter()
                        .map(|r| (r.name.as_str(), r.repo_url.as_str(), r.commit.as_str())),
                );
        let manifests = match ctx.renders.get(&key) {
            Some(m) => m,
            None => match reuse_render(ctx, app, p.index, source, &key, commit).await {
                Some(m) => m,
                None => render_source(ctx, source, commit, refs, key)
                    .await
                    .map_err(|e| in_source(p.index, e))?,
            },
        };
        rendered.push((p.label.clone(), manifests));
    }
    let dest_ns = app.spec.destination.namespace.clone().unwrap_or_default();
    // Scopes of the kinds CRDs in this render define (their kinds are not served yet).
    let crd_scopes = mooring_core::scope::crd_scopes(rendered.iter().flat_map(|(_, m)| m.iter()));
    let mut parts = Vec::with_capacity(rendered.len());
    for (label, manifests) in &rendered {
        let mut objects = Vec::with_capacity(manifests.len());
        for m in manifests.iter() {
            let mut obj = m.clone();
            let api_version = obj
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let kind = obj
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            // Namespaced objects without a namespace go to the destination namespace. For
            // a kind the cluster does not serve yet, the scope comes from its CRD in this
            // render, then the built-in table `mooring_core::scope` shares with `mooring
            // check` (Gatekeeper's templates and constraints, whose CRDs Gatekeeper or the
            // controller creates, are cluster-scoped); other kinds are assumed namespaced.
            // A wrong guess would change the object's key between the plan and the apply.
            let group = mooring_core::scope::api_group(&api_version);
            let namespaced = match cluster.is_namespaced(&api_version, &kind).await {
                Some(n) => n,
                None => {
                    mooring_core::scope::namespaced_without_discovery(group, &kind, &crd_scopes)
                }
            };
            let meta = obj
                .get_mut("metadata")
                .and_then(Value::as_object_mut)
                .ok_or_else(|| ControllerError::Spec(format!("manifest {kind} has no metadata")))?;
            if namespaced && !meta.contains_key("namespace") && !dest_ns.is_empty() {
                meta.insert("namespace".into(), json!(dest_ns));
            }
            if !namespaced {
                meta.remove("namespace");
            }
            objects.push(obj);
        }
        parts.push((label.clone(), objects));
    }
    // One desired state; identities are final now (namespaces filled in).
    let mut out = mooring_render::merge(parts)?;
    let instance = ctx.instance_name(app);
    for obj in &mut out {
        if let Some(key) = ResourceKey::of(obj) {
            let id = mooring_k8s::cluster::tracking_id(&instance, &key);
            let ann = obj["metadata"]
                .as_object_mut()
                .expect("checked above that metadata is an object")
                .entry("annotations")
                .or_insert_with(|| json!({}));
            if let Some(a) = ann.as_object_mut() {
                a.insert(TRACKING_ANNOTATION.into(), json!(id));
            }
        }
    }
    let commits: Vec<String> = commits.iter().map(|c| c.to_string()).collect();
    let revisions = if multi {
        Revisions::multi(commits)
    } else {
        Revisions::single(commits.into_iter().next().unwrap_or_default())
    };
    Ok((revisions, out))
}

/// The tree of a `ref` source one render reads (Helm `$NAME/path` value files).
struct RefTree {
    name: String,
    repo_url: String,
    commit: mooring_source::CommitId,
}

/// Export `source`'s repository at `commit` (and every `ref` tree it reads) into private
/// temporary directories, render it, cache the result under `key` with what it read.
async fn render_source(
    ctx: &Context,
    source: &mooring_core::app::ApplicationSource,
    commit: &mooring_source::CommitId,
    refs: Vec<RefTree>,
    key: mooring_render::CacheKey,
) -> Result<mooring_render::Manifests, ControllerError> {
    let repos = ctx.repos.clone();
    let url = ctx.fetch_url(&source.repo_url);
    let refs: Vec<(String, String, mooring_source::CommitId)> = refs
        .into_iter()
        .map(|r| (r.name, ctx.fetch_url(&r.repo_url), r.commit))
        .collect();
    let c = commit.clone();
    let opts = ctx.render_options.clone();
    let src = source.clone();
    let (rendered, inputs) = tokio::task::spawn_blocking(
        move || -> Result<(Vec<Value>, Vec<String>), ControllerError> {
            let tmp = || {
                tempfile::Builder::new()
                    .prefix("mooring-render-")
                    .tempdir()
                    .map_err(|e| ControllerError::Internal(format!("temporary directory: {e}")))
            };
            let limits = mooring_source::Limits::default();
            let dir = tmp()?;
            repos.export(&url, &c, dir.path(), &limits)?;
            // Each ref tree once; a ref to this very repository and commit is this tree.
            let mut dirs = Vec::new();
            let mut roots = mooring_render::RefRoots::new();
            for (name, ref_url, ref_commit) in &refs {
                if *ref_url == url && *ref_commit == c {
                    roots.insert(name.clone(), dir.path().to_path_buf());
                    continue;
                }
                let d = tmp()?;
                repos.export(ref_url, ref_commit, d.path(), &limits)?;
                roots.insert(name.clone(), d.path().to_path_buf());
                dirs.push(d);
            }
            let rendered = mooring_render::render_with_refs(dir.path(), &src, &roots, &opts)?;
            // What the render read in its own repository, to reuse it for commits that
            // touch none of it (the ref trees are in the key).
            let inputs = mooring_render::source_inputs(dir.path(), &src)?;
            Ok((rendered, inputs))
        },
    )
    .await
    .map_err(|e| ControllerError::Internal(e.to_string()))??;
    let m = Arc::new(rendered);
    ctx.renders.insert(key.clone(), m.clone());
    ctx.remember_inputs(key, inputs);
    Ok(m)
}

/// Reuse the render of source `index`'s previous revision when the commits between it
/// and `commit` touch none of the render's inputs (the app path, its kustomize bases,
/// components, patches, value files). The key carries the `ref` trees' commits, so a
/// render made with other values is never reused.
async fn reuse_render(
    ctx: &Context,
    app: &Application,
    index: usize,
    source: &mooring_core::app::ApplicationSource,
    key: &mooring_render::CacheKey,
    commit: &mooring_source::CommitId,
) -> Option<mooring_render::Manifests> {
    let previous = app.status.as_ref()?.sync.revisions();
    let prev_commit: mooring_source::CommitId = previous.commits().get(index)?.parse().ok()?;
    if &prev_commit == commit {
        return None;
    }
    let prev_key = key.at_commit(prev_commit.as_str());
    let inputs = ctx.inputs_of(&prev_key)?;
    ctx.renders.get(&prev_key)?;
    let repos = ctx.repos.clone();
    let url = ctx.fetch_url(&source.repo_url);
    let to = commit.clone();
    let changed = tokio::task::spawn_blocking(move || repos.changed_paths(&url, &prev_commit, &to))
        .await
        .ok()?
        .ok()?;
    if mooring_render::inputs_touched(&inputs, &changed) {
        return None;
    }
    let m = ctx.renders.reuse(&prev_key, commit.as_str())?;
    ctx.remember_inputs(key.clone(), inputs);
    ctx.metrics.render_reused();
    Some(m)
}

/// Compare desired with live: per-resource sync status, diffs and health.
pub async fn compare(
    ctx: &Context,
    app: &Application,
    cluster: &ClusterClient,
    revision: Revisions,
    desired: Vec<Value>,
) -> Result<Compared, ControllerError> {
    let live_managed = cluster.managed(&ctx.instance_name(app));
    let opts = DiffOptions {
        ignore: &app.spec.ignore_differences,
        manager: Some(&ctx.options.manager),
    };
    let mut resources = Vec::new();
    let mut diffs = Vec::new();
    let mut healths = Vec::new();
    let mut desired_keys = std::collections::BTreeSet::new();
    let mut shared = Vec::new();
    for d in &desired {
        let Some(key) = ResourceKey::of(d) else {
            continue;
        };
        let hook = mooring_engine::sync::is_hook(d);
        if hook {
            continue;
        }
        desired_keys.insert(key.clone());
        let api_version = d
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let live = match cluster.cached(&key) {
            Some(l) => Some(l),
            None => cluster.get(api_version, &key).await?,
        };
        if let Some(msg) = live.as_ref().and_then(|l| shared_resource(&key, d, l)) {
            shared.push(msg);
        }
        let rd = diff::diff(Some(d), live.as_ref(), &opts)?;
        let h = match &live {
            None => Some(HealthStatus::new(
                HealthStatusCode::Missing,
                "resource does not exist",
            )),
            Some(l) => ctx.assess_health(l),
        };
        if let Some(h) = &h {
            healths.push(h.status);
        }
        resources.push(resource_status(&key, api_version, rd.status, h, false));
        diffs.push(rd);
    }
    for l in &live_managed {
        let Some(key) = ResourceKey::of(l) else {
            continue;
        };
        if desired_keys.contains(&key) || mooring_engine::sync::is_hook(l) {
            continue;
        }
        let api_version = l
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let rd = diff::diff(None, Some(l), &opts)?;
        resources.push(resource_status(&key, api_version, rd.status, None, true));
        diffs.push(rd);
    }
    let sync = if resources.iter().all(|r| r.status == SyncStatusCode::Synced) {
        SyncStatusCode::Synced
    } else {
        SyncStatusCode::OutOfSync
    };
    let worst = HealthStatusCode::worst(healths);
    let message = resources
        .iter()
        .filter(|r| {
            r.health
                .as_ref()
                .is_some_and(|h| h.status == worst && worst != HealthStatusCode::Healthy)
        })
        .map(|r| {
            format!(
                "{}/{}: {}",
                r.kind,
                r.name,
                r.health
                    .as_ref()
                    .map(|h| h.message.as_str())
                    .unwrap_or_default()
            )
        })
        .next()
        .unwrap_or_default();
    Ok(Compared {
        revision,
        desired,
        live: live_managed,
        resources,
        diffs,
        sync,
        health: HealthStatus::new(worst, message),
        shared,
    })
}

/// Argo CD's `SharedResourceWarning`: the live object of a desired resource is tracked by
/// another application than the one the desired object names (instance names use `_` for
/// `/`, as Argo CD's `namespace_name`).
fn shared_resource(key: &ResourceKey, desired: &Value, live: &Value) -> Option<String> {
    let app_of = |o: &Value| {
        o.pointer("/metadata/annotations")
            .and_then(|a| a.get(TRACKING_ANNOTATION))
            .and_then(Value::as_str)
            .and_then(mooring_k8s::cluster::tracking_app)
            .filter(|a| !a.is_empty())
            .map(|a| a.replace('_', "/"))
    };
    let (this, other) = (app_of(desired)?, app_of(live)?);
    (this != other).then(|| {
        format!(
            "{}/{} is part of applications {this} and {other}",
            key.kind, key.name
        )
    })
}

/// The comparison's conditions: one `SharedResourceWarning` per shared resource.
pub(crate) fn shared_conditions(app: &Application, c: &Compared) -> Vec<ApplicationCondition> {
    c.shared
        .iter()
        .map(|m| kept_condition(app, SHARED_RESOURCE_WARNING, m.clone()))
        .collect()
}

/// Argo CD's condition for a resource tracked by two applications.
pub const SHARED_RESOURCE_WARNING: &str = "SharedResourceWarning";

fn resource_status(
    key: &ResourceKey,
    api_version: &str,
    status: SyncStatusCode,
    health: Option<HealthStatus>,
    requires_pruning: bool,
) -> ResourceStatus {
    ResourceStatus {
        group: key.group.clone(),
        version: api_version
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string(),
        kind: key.kind.clone(),
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        status,
        health,
        hook: false,
        requires_pruning,
    }
}

/// Reconcile one Application (the `reconcile(Arc<T>, Arc<Ctx>) -> Result<Action>` shape).
pub async fn reconcile(
    app: Arc<Application>,
    ctx: Arc<Context>,
) -> Result<Action, ControllerError> {
    let started = std::time::Instant::now();
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
    if operation::in_progress(&app) {
        refresh_during_operation(&ctx, &app, &cluster).await?;
        return match operation::drive(&ctx, &app, &cluster).await? {
            OperationOutcome::InProgress => Ok(Action::RequeueAfter(ctx.options.operation_poll)),
            OperationOutcome::Finished => Ok(Action::RequeueAfter(Duration::from_millis(10))),
        };
    }
    // The project must permit the app's sources and destination before anything else.
    let proj = match crate::project::check_app(&ctx, &app).await? {
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
    ctx.metrics
        .saw_revision(&ctx.instance_name(&app), &revision.to_string());
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
    ctx.metrics.record_reconcile(started.elapsed());
    if compared.sync == SyncStatusCode::Synced
        && compared.health.status == HealthStatusCode::Healthy
    {
        ctx.metrics
            .converged(&ctx.instance_name(&app), &compared.revision.to_string());
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
fn conditions_except(app: &Application, types: &[&str]) -> Vec<ApplicationCondition> {
    app.status
        .iter()
        .flat_map(|s| s.conditions.iter())
        .filter(|c| !types.contains(&c.type_.as_str()))
        .cloned()
        .collect()
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
    let mut status = json!({
        "sync": sync,
        "health": c.health,
        "resources": c.resources,
        "reconciledAt": mooring_core::time::now_rfc3339(),
    });
    if conditions_changed {
        status["conditions"] = json!(conds);
    }
    ctx.patch_app(app, json!({"status": status})).await
}

/// The same conditions, in any order.
fn same_conditions(a: &[ApplicationCondition], b: &[ApplicationCondition]) -> bool {
    fn sorted(c: &[ApplicationCondition]) -> Vec<&ApplicationCondition> {
        let mut v: Vec<&ApplicationCondition> = c.iter().collect();
        v.sort_by(|x, y| (&x.type_, &x.message).cmp(&(&y.type_, &y.message)));
        v
    }
    a.len() == b.len() && sorted(a) == sorted(b)
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
