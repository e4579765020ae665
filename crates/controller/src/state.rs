//! The desired and compared state of one Application: the Git sources resolved,
//! rendered, namespaced and annotated ([`desired_state`]), then paired with the
//! destination's live objects ([`compare`]) into a [`Compared`]: per-resource sync status,
//! diffs, health and the aggregate sync and health of the app.
//!
//! Reading the state is its own module so that the reconcile (which decides), the sync
//! operation (which renders its own revision) and the deletion (which looks for
//! PostDelete hooks) share one way to compute it, and none of them imports another.

use crate::{Context, ControllerError};
use mooring_core::app::{Application, HealthStatus, ResourceStatus, Revisions, SyncStatusCode};
use mooring_core::ResourceKey;
use mooring_engine::diff::{self, DiffOptions};
use mooring_k8s::cluster::{ClusterClient, TRACKING_ANNOTATION};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;

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
    let commits = resolve_sources(ctx, app, overrides, &in_source).await?;
    let mut rendered: Vec<(String, mooring_render::Manifests)> = Vec::new();
    // The name Argo CD's repo-server gives the parameter file (`namespace_name` for an
    // Application outside the control-plane namespace).
    let instance = ctx.instance_name(app);
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
        // Argo CD's parameter files: the shared one is covered by the commit, the
        // application's own (`.argocd-source-<app>.yaml`, Image Updater's Git write-back)
        // makes the render this application's.
        let key = if has_app_parameter_file(ctx, source, commit, &instance).await? {
            key.with_app(&instance)
        } else {
            key
        };
        let manifests = match ctx.renders.get(&key) {
            Some(m) => m,
            None => match reuse_render(ctx, app, p.index, source, &key, commit).await {
                Some(m) => m,
                None => {
                    let rendered = render_source(ctx, source, &instance, commit, refs, key).await;
                    ctx.metrics
                        .record_stage(crate::metrics::Stage::Render, rendered.is_ok());
                    rendered.map_err(|e| in_source(p.index, e))?
                }
            },
        };
        rendered.push((p.label.clone(), manifests));
    }
    let out = place(
        ctx,
        app,
        cluster,
        rendered
            .iter()
            .map(|(l, m)| (l.clone(), m.iter().cloned().collect::<Vec<Value>>()))
            .collect(),
    )
    .await?;
    let commits: Vec<String> = commits.iter().map(|c| c.to_string()).collect();
    let revisions = if multi {
        Revisions::multi(commits)
    } else {
        Revisions::single(commits.into_iter().next().unwrap_or_default())
    };
    Ok((revisions, out))
}

/// The desired state of a local sync (`mooring app sync --local`, Argo CD's
/// `operation.sync.manifests`): the manifests the CLI rendered, placed and tracked like a
/// render of Git, recorded at the source's resolved revision (as Argo CD records it).
pub async fn local_state(
    ctx: &Context,
    app: &Application,
    manifests: &[String],
    cluster: &ClusterClient,
) -> Result<(Revisions, Vec<Value>), ControllerError> {
    if app.has_multiple_sources() {
        return Err(ControllerError::Spec(
            "local manifests cannot be synced to an application with several sources (spec.sources)".into(),
        ));
    }
    let commits = resolve_sources(ctx, app, &Revisions::default(), &|_, e| e).await?;
    let mut objects = Vec::new();
    for (i, m) in manifests.iter().enumerate() {
        let docs = mooring_core::yaml::parse_all(m).map_err(|e| {
            ControllerError::Spec(format!(
                "local manifest {i} (operation.sync.manifests) does not parse: {e}"
            ))
        })?;
        for d in docs.into_iter().filter(|d| !d.is_null()) {
            if !d.is_object() {
                return Err(ControllerError::Spec(format!(
                    "local manifest {i} (operation.sync.manifests) is not an object"
                )));
            }
            objects.push(d);
        }
    }
    let out = place(ctx, app, cluster, vec![("local manifests".into(), objects)]).await?;
    Ok((
        Revisions::single(
            commits
                .into_iter()
                .next()
                .map(|c| c.to_string())
                .unwrap_or_default(),
        ),
        out,
    ))
}

/// Place rendered objects for `app` (one list per source, with its label): namespaced
/// objects without a namespace go to the destination namespace, the parts are merged
/// into one desired state (duplicates refused), and every object gets the app's
/// tracking annotation. Rendered and local (`app sync --local`) manifests both go
/// through here, so a local sync deploys exactly what Git would have with those files.
async fn place(
    ctx: &Context,
    app: &Application,
    cluster: &ClusterClient,
    rendered: Vec<(String, Vec<Value>)>,
) -> Result<Vec<Value>, ControllerError> {
    let dest_ns = app.spec.destination.namespace.clone().unwrap_or_default();
    let instance = ctx.instance_name(app);
    // Scopes of the kinds CRDs in this render define (their kinds are not served yet).
    let crd_scopes = mooring_core::scope::crd_scopes(rendered.iter().flat_map(|(_, m)| m.iter()));
    let mut parts = Vec::with_capacity(rendered.len());
    for (label, manifests) in rendered {
        let mut objects = Vec::with_capacity(manifests.len());
        for mut obj in manifests {
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
            if !obj.get("metadata").is_some_and(Value::is_object) {
                return Err(ControllerError::Spec(format!(
                    "manifest {kind} has no metadata"
                )));
            }
            mooring_engine::state::place_namespace(&mut obj, &dest_ns, namespaced);
            objects.push(obj);
        }
        parts.push((label, objects));
    }
    // One desired state; identities are final now (namespaces filled in).
    let mut out = mooring_render::merge(parts)?;
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
    Ok(out)
}

/// Resolve every source of `app` at its own revision (`overrides`, else its
/// `targetRevision`, else `HEAD`); `in_source` names the source in errors.
async fn resolve_sources(
    ctx: &Context,
    app: &Application,
    overrides: &Revisions,
    in_source: &(dyn Fn(usize, ControllerError) -> ControllerError + Sync),
) -> Result<Vec<mooring_source::CommitId>, ControllerError> {
    let sources = app.sources();
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
    Ok(commits)
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
    app_name: &str,
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
    let app_name = app_name.to_string();
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
            let src = mooring_render::with_parameter_files(dir.path(), &src, &app_name, &opts)?;
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

/// Whether `source`'s path holds the application's own Argo CD parameter file at
/// `commit` (read from the repository cache, no export).
async fn has_app_parameter_file(
    ctx: &Context,
    source: &mooring_core::app::ApplicationSource,
    commit: &mooring_source::CommitId,
    instance: &str,
) -> Result<bool, ControllerError> {
    if source.chart.as_deref().is_some_and(|c| !c.is_empty()) {
        return Ok(false);
    }
    let dir = source
        .path
        .as_deref()
        .unwrap_or("")
        .trim_start_matches("./")
        .trim_end_matches('/');
    let file = mooring_render::app_parameter_file(instance);
    let rel = if dir.is_empty() || dir == "." {
        file
    } else {
        format!("{dir}/{file}")
    };
    let repos = ctx.repos.clone();
    let url = ctx.fetch_url(&source.repo_url);
    let commit = commit.clone();
    let found = tokio::task::spawn_blocking(move || repos.read_file(&url, &commit, &rel))
        .await
        .map_err(|e| ControllerError::Internal(e.to_string()))?;
    // When the cache cannot tell (a path it refuses, `..`: the render reports that), the
    // key is made this application's: never shared by mistake.
    Ok(!matches!(found, Ok(None)))
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

/// Compare desired with live: the live objects are read here (the destination's
/// watch-fed cache, a GET for a desired object it lacks), the pairing, diffs and
/// aggregation are [`mooring_engine::state::compare`].
pub async fn compare(
    ctx: &Context,
    app: &Application,
    cluster: &ClusterClient,
    revision: Revisions,
    desired: Vec<Value>,
) -> Result<Compared, ControllerError> {
    let live_managed = cluster.managed(&ctx.instance_name(app))?;
    let opts = DiffOptions {
        ignore: &app.spec.ignore_differences,
        manager: Some(&ctx.options.manager),
    };
    let mut found = BTreeMap::new();
    let mut shared = Vec::new();
    for (key, d) in mooring_engine::state::compared_desired(&desired) {
        let api_version = d
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let live = match cluster.cached(&key) {
            Some(l) => Some(l),
            None => cluster.get(api_version, &key).await?,
        };
        if let Some(l) = live {
            if let Some(msg) = shared_resource(&key, d, &l) {
                shared.push(msg);
            }
            found.insert(key, l);
        }
    }
    let live = mooring_engine::state::Live {
        found: &found,
        managed: &live_managed,
    };
    let c = mooring_engine::state::compare(&desired, &live, &opts, |l| ctx.assess_health(l))?;
    Ok(Compared {
        revision,
        desired,
        live: live_managed,
        resources: c.resources,
        diffs: c.diffs,
        sync: c.sync,
        health: c.health,
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
