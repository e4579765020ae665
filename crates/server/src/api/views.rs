//! What the web UI shows beyond the Application objects, for scripts too: the resource
//! tree, managed resources with their desired and live manifests and diff, events, pod
//! logs, the rollouts of an application with their actions, clusters, policy findings,
//! RollbackPolicies and DR plans. Routes and their RBAC are listed in [`super`]'s table.
//!
//! Everything is read with the control plane's credentials after the caller's RBAC on the
//! application allowed it, and only objects of that application's tree are served: a pod
//! log or a rollout action names an object, and one outside the tree answers 404 whatever
//! the caller may do elsewhere. Secret values are masked in every manifest and diff.

use super::{
    app_object, body_json, load_app, str_at, ApiError, ApiResult, ApiState, AppNamespaceQuery,
    Authz, Principal,
};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use mooring_core::app::Application;
use mooring_engine::diff::mask_secret;
use mooring_engine::rollout::command;
use mooring_k8s::api_resource as resource;
use mooring_k8s::kube::api::{Api, DynamicObject, ListParams, LogParams, Patch, PatchParams};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Largest log answer (bytes), as `kubectl logs --limit-bytes`.
const MAX_LOG_BYTES: i64 = 1024 * 1024;
/// Lines of a pod's log served when the request does not say.
const DEFAULT_TAIL_LINES: i64 = 500;
/// Events served at most per application, newest first.
const MAX_EVENTS: usize = 200;

/// The application named by the route, after the caller's `applications, get`.
async fn visible_app(
    st: &ApiState,
    p: &Principal,
    name: &str,
    q: &AppNamespaceQuery,
) -> ApiResult<(Authz, Value, Application)> {
    let az = Authz::load(st).await?;
    let a = load_app(st, &az, p, q.namespace(st)?, name).await?;
    az.check(p, "applications", "get", &app_object(st, &a))?;
    let typed: Application = serde_json::from_value(a.clone())
        .map_err(|e| ApiError::BadRequest(format!("application {name} is not valid: {e}")))?;
    Ok((az, a, typed))
}

/// One resource `status.resources` lists.
struct Managed {
    api_version: String,
    key: mooring_core::ResourceKey,
    /// Its sync status as the controller last compared it.
    sync: String,
}

/// The resources `status.resources` lists.
fn managed(a: &Value) -> Vec<Managed> {
    a.pointer("/status/resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| {
            let (group, version) = (str_at(r, "/group"), str_at(r, "/version"));
            let api_version = if group.is_empty() {
                version.to_string()
            } else {
                format!("{group}/{version}")
            };
            Managed {
                api_version,
                key: mooring_core::ResourceKey::new(
                    group,
                    str_at(r, "/kind"),
                    str_at(r, "/namespace"),
                    str_at(r, "/name"),
                ),
                sync: str_at(r, "/status").to_string(),
            }
        })
        .collect()
}

/// Kinds whose objects are children of managed resources (through ownerReferences) and
/// are shown in the tree: what Argo CD's tree shows for workloads and rollouts.
fn child_kinds() -> Vec<mooring_k8s::kube::core::ApiResource> {
    vec![
        resource("apps", "v1", "ReplicaSet", "replicasets"),
        resource("", "v1", "Pod", "pods"),
        resource("batch", "v1", "Job", "jobs"),
        resource("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices"),
        mooring_k8s::resources::analysis_run_resource(),
    ]
}

/// One node of the tree, in Argo CD's `ResourceNode` shape.
fn node(obj: &Value, parents: Vec<Value>, health: Option<Value>, sync: Option<&str>) -> Value {
    let (group, version) = match str_at(obj, "/apiVersion").split_once('/') {
        Some((g, v)) => (g.to_string(), v.to_string()),
        None => (String::new(), str_at(obj, "/apiVersion").to_string()),
    };
    let images: BTreeSet<&str> = obj
        .pointer("/spec/containers")
        .or_else(|| obj.pointer("/spec/template/spec/containers"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("image").and_then(Value::as_str))
        .collect();
    let mut info = Vec::new();
    if let Some(why) = obj.pointer("/status/unreadable").and_then(Value::as_str) {
        info.push(json!({"name": "Not readable", "value": why}));
    }
    if let Some(phase) = obj.pointer("/status/phase").and_then(Value::as_str) {
        info.push(json!({"name": "Status", "value": phase}));
    }
    if let Some(r) = obj.pointer("/status/readyReplicas").and_then(Value::as_i64) {
        let want = obj
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(r);
        info.push(json!({"name": "Ready", "value": format!("{r}/{want}")}));
    }
    let mut n = json!({
        "group": group, "version": version, "kind": str_at(obj, "/kind"),
        "namespace": str_at(obj, "/metadata/namespace"), "name": str_at(obj, "/metadata/name"),
        "uid": str_at(obj, "/metadata/uid"),
        "resourceVersion": str_at(obj, "/metadata/resourceVersion"),
        "createdAt": str_at(obj, "/metadata/creationTimestamp"),
        "parentRefs": parents, "images": images, "info": info,
    });
    if let Some(h) = health {
        n["health"] = h;
    }
    if let Some(s) = sync {
        n["status"] = json!(s);
    }
    n
}

fn parent_ref(obj: &Value) -> Value {
    let group = str_at(obj, "/apiVersion")
        .split_once('/')
        .map(|(g, _)| g)
        .unwrap_or_default();
    json!({
        "group": group, "kind": str_at(obj, "/kind"),
        "namespace": str_at(obj, "/metadata/namespace"), "name": str_at(obj, "/metadata/name"),
        "uid": str_at(obj, "/metadata/uid"),
    })
}

/// The live objects of an application's tree: its managed resources (as `status.resources`
/// lists them, with their sync status) and, transitively, what they own.
struct Tree {
    /// (object, parents, sync status for managed resources)
    objects: Vec<(Value, Vec<Value>, Option<String>)>,
}

impl Tree {
    async fn read(st: &ApiState, a: &Value, app: &Application) -> ApiResult<Tree> {
        let cluster = st.live.cluster(&app.spec.destination).await?;
        let mut objects = Vec::new();
        let mut namespaces = BTreeSet::new();
        let mut uids: BTreeMap<String, Value> = BTreeMap::new();
        for Managed {
            api_version,
            key,
            sync,
        } in managed(a)
        {
            let sync = Some(sync).filter(|s| !s.is_empty());
            let stub = || {
                json!({"apiVersion": api_version, "kind": key.kind,
                       "metadata": {"namespace": key.namespace, "name": key.name}})
            };
            let live = match cluster.cached(&key) {
                Some(l) => Ok(Some(l)),
                None => cluster.get(&api_version, &key).await,
            };
            let mut live = match live {
                Ok(Some(l)) => l,
                // Missing from the cluster: shown from its key, as Argo CD does.
                Ok(None) => {
                    objects.push((stub(), vec![], sync));
                    continue;
                }
                // Not readable with the server's credentials (a Secret, a kind its role
                // does not cover): shown from its key, with why.
                Err(e) => {
                    let mut o = stub();
                    o["status"] = json!({"unreadable": e.to_string()});
                    objects.push((o, vec![], sync));
                    continue;
                }
            };
            mask_secret_in_place(&mut live);
            if !key.namespace.is_empty() {
                namespaces.insert(key.namespace.clone());
            }
            uids.insert(
                str_at(&live, "/metadata/uid").to_string(),
                parent_ref(&live),
            );
            objects.push((live, vec![], sync));
        }
        // Children, level by level (Deployment → ReplicaSet → Pod), within the managed
        // resources' namespaces.
        let mut candidates = Vec::new();
        for ns in &namespaces {
            for res in child_kinds() {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(cluster.client().clone(), ns, &res);
                match api.list(&ListParams::default()).await {
                    Ok(l) => candidates.extend(
                        l.items
                            .into_iter()
                            .filter_map(|o| serde_json::to_value(o).ok()),
                    ),
                    Err(mooring_k8s::kube::Error::Api(e)) if e.code == 404 => {}
                    Err(e) => {
                        return Err(ApiError::Unavailable(format!(
                            "listing {} in {ns}: {e}",
                            res.plural
                        )))
                    }
                }
            }
        }
        loop {
            let mut added = false;
            let mut rest = Vec::new();
            for c in candidates {
                let parents: Vec<Value> = c
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|o| uids.get(str_at(o, "/uid")).cloned())
                    .collect();
                if parents.is_empty() {
                    rest.push(c);
                    continue;
                }
                uids.insert(str_at(&c, "/metadata/uid").to_string(), parent_ref(&c));
                objects.push((c, parents, None));
                added = true;
            }
            candidates = rest;
            if !added {
                break;
            }
        }
        Ok(Tree { objects })
    }

    /// Whether `kind`/`namespace`/`name` is in the tree.
    fn find(&self, kind: &str, namespace: &str, name: &str) -> Option<&Value> {
        self.objects.iter().map(|(o, _, _)| o).find(|o| {
            str_at(o, "/kind") == kind
                && str_at(o, "/metadata/namespace") == namespace
                && str_at(o, "/metadata/name") == name
        })
    }

    fn uids(&self) -> BTreeSet<&str> {
        self.objects
            .iter()
            .map(|(o, _, _)| str_at(o, "/metadata/uid"))
            .filter(|u| !u.is_empty())
            .collect()
    }
}

fn mask_secret_in_place(obj: &mut Value) {
    if str_at(obj, "/kind") == "Secret" {
        *obj = mask_secret(obj);
    }
}

/// `GET /api/v1/applications/{name}/resource-tree`: Argo CD's `ApplicationTree` (`nodes`
/// with `parentRefs` and `health`).
pub(super) async fn resource_tree(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    Query(q): Query<AppNamespaceQuery>,
) -> ApiResult {
    let (_, a, app) = visible_app(&st, &p, &name, &q).await?;
    let tree = Tree::read(&st, &a, &app).await?;
    let ctx = st.live.context().await?;
    let nodes: Vec<Value> = tree
        .objects
        .iter()
        .map(|(o, parents, sync)| {
            let health = ctx
                .assess_health(o)
                .map(|h| serde_json::to_value(h).unwrap_or(Value::Null));
            node(o, parents.clone(), health, sync.as_deref())
        })
        .collect();
    Ok(Json(json!({"nodes": nodes})))
}

/// `GET /api/v1/applications/{name}/managed-resources`: every resource the app manages,
/// with its normalised desired (`targetState`) and live (`liveState`) manifests and their
/// unified diff, as the controller compares them (Secret values masked).
pub(super) async fn managed_resources(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    Query(q): Query<AppNamespaceQuery>,
) -> ApiResult {
    let (_, _, app) = visible_app(&st, &p, &name, &q).await?;
    let cluster = st.live.cluster(&app.spec.destination).await?;
    let ctx = st.live.context().await?;
    let unavailable = |e: mooring_controller::ControllerError| {
        ApiError::Unavailable(format!("comparing {name}: {e}"))
    };
    let (rev, desired) =
        mooring_controller::state::desired_state(&ctx, &app, &Default::default(), &cluster)
            .await
            .map_err(unavailable)?;
    let compared = mooring_controller::state::compare(&ctx, &app, &cluster, rev, desired)
        .await
        .map_err(unavailable)?;
    let items: Vec<Value> = compared
        .diffs
        .iter()
        .map(|d| {
            json!({
                "group": d.key.group, "kind": d.key.kind,
                "namespace": d.key.namespace, "name": d.key.name,
                "status": d.status, "requiresPruning": d.requires_pruning(),
                "targetState": d.desired, "liveState": d.live, "diff": d.unified,
            })
        })
        .collect();
    // `revision`, or `revisions` for an app with several sources.
    let mut out = json!({"items": items});
    compared.revision.write_into(&mut out);
    Ok(Json(out))
}

/// `GET /api/v1/applications/{name}/events`: the Events of the application (management
/// cluster) and of every object in its tree (destination), newest first.
pub(super) async fn events(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    Query(q): Query<AppNamespaceQuery>,
) -> ApiResult {
    let (_, a, app) = visible_app(&st, &p, &name, &q).await?;
    let tree = Tree::read(&st, &a, &app).await?;
    let uids = tree.uids();
    let cluster = st.live.cluster(&app.spec.destination).await?;
    let ev = resource("", "v1", "Event", "events");
    let mut out: Vec<Value> = Vec::new();
    let namespaces: BTreeSet<&str> = tree
        .objects
        .iter()
        .map(|(o, _, _)| str_at(o, "/metadata/namespace"))
        .filter(|n| !n.is_empty())
        .collect();
    for ns in namespaces {
        let api: Api<DynamicObject> = Api::namespaced_with(cluster.client().clone(), ns, &ev);
        if let Ok(l) = api.list(&ListParams::default()).await {
            out.extend(
                l.items
                    .into_iter()
                    .filter_map(|o| serde_json::to_value(o).ok())
                    .filter(|e| uids.contains(str_at(e, "/involvedObject/uid"))),
            );
        }
    }
    let app_ns = str_at(&a, "/metadata/namespace");
    let api: Api<DynamicObject> = Api::namespaced_with(st.store.client.clone(), app_ns, &ev);
    if let Ok(l) = api.list(&ListParams::default()).await {
        out.extend(
            l.items
                .into_iter()
                .filter_map(|o| serde_json::to_value(o).ok())
                .filter(|e| {
                    str_at(e, "/involvedObject/kind") == "Application"
                        && str_at(e, "/involvedObject/name") == name
                }),
        );
    }
    let when = |e: &Value| {
        [
            "/lastTimestamp",
            "/eventTime",
            "/firstTimestamp",
            "/metadata/creationTimestamp",
        ]
        .iter()
        .map(|p| str_at(e, p))
        .find(|t| !t.is_empty())
        .unwrap_or_default()
        .to_string()
    };
    out.sort_by_key(|e| std::cmp::Reverse(when(e)));
    out.truncate(MAX_EVENTS);
    for e in &mut out {
        if let Some(m) = e.pointer_mut("/metadata/managedFields") {
            *m = Value::Null;
        }
    }
    Ok(Json(json!({"items": out})))
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub(super) struct LogQuery {
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    container: Option<String>,
    #[serde(default)]
    tail_lines: Option<i64>,
}

/// `GET /api/v1/applications/{name}/pods/{pod}/logs?namespace=&container=&tailLines=`:
/// the log of a pod of the application's tree (RBAC `logs, get`, as Argo CD), at most
/// [`MAX_LOG_BYTES`]; plain text.
pub(super) async fn pod_logs(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
    Path((name, pod)): Path<(String, String)>,
    Query(q): Query<AppNamespaceQuery>,
    Query(lq): Query<LogQuery>,
) -> ApiResult<String> {
    let (az, a, app) = visible_app(&st, &p, &name, &q).await?;
    az.check(&p, "logs", "get", &app_object(&st, &a))?;
    let tree = Tree::read(&st, &a, &app).await?;
    let ns = lq
        .namespace
        .clone()
        .or_else(|| app.spec.destination.namespace.clone())
        .unwrap_or_default();
    if tree.find("Pod", &ns, &pod).is_none() {
        return Err(ApiError::NotFound(format!(
            "pod {ns}/{pod} is not part of application {name}"
        )));
    }
    let cluster = st.live.cluster(&app.spec.destination).await?;
    let pods: Api<mooring_k8s::k8s_openapi::api::core::v1::Pod> =
        Api::namespaced(cluster.client().clone(), &ns);
    let params = LogParams {
        container: lq.container.clone(),
        tail_lines: Some(
            lq.tail_lines
                .unwrap_or(DEFAULT_TAIL_LINES)
                .clamp(1, 100_000),
        ),
        limit_bytes: Some(MAX_LOG_BYTES),
        ..Default::default()
    };
    // The API server's answer as it is (400 while the container starts, 404, …).
    Ok(pods.logs(&pod, &params).await?)
}

/// `GET /api/v1/applications/{name}/rollouts`: every Rollout the application manages, with
/// the plugin's view (steps, weights, ReplicaSets, AnalysisRuns), its steps and its
/// AnalysisRuns as read (each metric's measurements and success condition).
pub(super) async fn rollouts(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
    Path(name): Path<String>,
    Query(q): Query<AppNamespaceQuery>,
) -> ApiResult {
    let (_, a, app) = visible_app(&st, &p, &name, &q).await?;
    let cluster = st.live.cluster(&app.spec.destination).await?;
    let mut items = Vec::new();
    for Managed { key, .. } in managed(&a) {
        if key.group != "argoproj.io" || key.kind != "Rollout" {
            continue;
        }
        let api: Api<DynamicObject> = Api::namespaced_with(
            cluster.client().clone(),
            &key.namespace,
            &mooring_k8s::resources::rollout_resource(),
        );
        let Some(r) = api.get_opt(&key.name).await? else {
            continue;
        };
        let r = serde_json::to_value(r).unwrap_or(Value::Null);
        let tree = mooring_controller::rollout_tree::RolloutTree::read(cluster.client(), r)
            .await
            .map_err(|e| ApiError::Unavailable(format!("reading rollout {}: {e}", key.name)))?;
        items.push(json!({
            "view": tree.view(),
            "steps": tree.rollout.pointer("/spec/strategy/canary/steps").cloned().unwrap_or(json!([])),
            "currentStepIndex": tree.rollout.pointer("/status/currentStepIndex").cloned(),
            "analysisRuns": tree.analysis_runs.iter().map(|r| json!({
                "name": str_at(r, "/metadata/name"),
                "phase": str_at(r, "/status/phase"),
                "metrics": r.pointer("/spec/metrics").cloned().unwrap_or(json!([])),
                "args": r.pointer("/spec/args").cloned().unwrap_or(json!([])),
                "metricResults": r.pointer("/status/metricResults").cloned().unwrap_or(json!([])),
            })).collect::<Vec<_>>(),
        }));
    }
    Ok(Json(json!({"items": items})))
}

/// The rollout actions, by Argo CD's resource action names (RBAC
/// `applications, action/argoproj.io/Rollout/NAME, PROJECT/APP`).
const ROLLOUT_ACTIONS: &[&str] = &["resume", "promote-full", "abort", "retry", "pause"];

/// `POST /api/v1/applications/{name}/rollouts/{namespace}/{rollout}/{action}`: `resume`
/// (promote one step), `promote-full`, `abort`, `retry` or `pause`, as `mooring rollout`
/// (and `kubectl argo rollouts`) does them, on a Rollout the application manages.
pub(super) async fn rollout_action(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
    Path((name, ns, rollout, action)): Path<(String, String, String, String)>,
    Query(q): Query<AppNamespaceQuery>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let _: Value = body_json(body)?;
    if !ROLLOUT_ACTIONS.contains(&action.as_str()) {
        return Err(ApiError::BadRequest(format!(
            "unknown rollout action {action:?}: use one of {}",
            ROLLOUT_ACTIONS.join(", ")
        )));
    }
    let (az, a, app) = visible_app(&st, &p, &name, &q).await?;
    az.check(
        &p,
        "applications",
        &format!("action/argoproj.io/Rollout/{action}"),
        &app_object(&st, &a),
    )?;
    let is_managed = managed(&a).into_iter().any(|Managed { key: k, .. }| {
        k.group == "argoproj.io" && k.kind == "Rollout" && k.namespace == ns && k.name == rollout
    });
    if !is_managed {
        return Err(ApiError::NotFound(format!(
            "rollout {ns}/{rollout} is not managed by application {name}"
        )));
    }
    let cluster = st.live.cluster(&app.spec.destination).await?;
    let api: Api<DynamicObject> = Api::namespaced_with(
        cluster.client().clone(),
        &ns,
        &mooring_k8s::resources::rollout_resource(),
    );
    let r = serde_json::to_value(api.get(&rollout).await?).unwrap_or(Value::Null);
    let bad = |e: command::CommandError| ApiError::BadRequest(format!("{action}: {e}"));
    let (spec, status) = match action.as_str() {
        "resume" => command::promote_patches(&r, false).map_err(bad)?,
        "promote-full" => command::promote_patches(&r, true).map_err(bad)?,
        "abort" => (None, Some(command::abort_patch(&r).map_err(bad)?)),
        "retry" => (None, Some(command::retry_patch(&r).map_err(bad)?)),
        _ => (Some(command::pause_patch()), None),
    };
    if let Some(patch) = status {
        api.patch_status(&rollout, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    if let Some(patch) = spec {
        api.patch(&rollout, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    tracing::info!(app = %name, rollout = %rollout, %action, sub = %p.subject.name, "rollout action over the API");
    Ok(Json(json!({"action": action, "rollout": rollout})))
}

/// `GET /api/v1/clusters`: the registered destination clusters the caller may get
/// (`clusters, get, SERVER`), with the in-cluster one; connection state when this
/// process runs the controller.
pub(super) async fn clusters(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
) -> ApiResult {
    use mooring_k8s::k8s_openapi::api::core::v1::Secret;
    let az = Authz::load(&st).await?;
    let api: Api<Secret> = Api::namespaced(st.store.client.clone(), &st.control_plane.namespace);
    let params = ListParams::default().labels(&format!(
        "{}=cluster",
        mooring_k8s::registry::SECRET_TYPE_LABEL
    ));
    let ctx = st.live.context().await.ok();
    let state = |server: &str| -> Value {
        let Some(ctx) = &ctx else { return Value::Null };
        let dest = mooring_core::app::ApplicationDestination {
            server: Some(server.to_string()),
            ..Default::default()
        };
        match ctx.cluster_for(&dest).map(|c| c.connection()) {
            Ok(mooring_k8s::cluster::Connection::Connected { .. }) => json!("Successful"),
            Ok(mooring_k8s::cluster::Connection::Unreachable { error }) => {
                json!({"status": "Failed", "message": error})
            }
            Ok(mooring_k8s::cluster::Connection::Connecting) => json!("Connecting"),
            Err(_) => Value::Null,
        }
    };
    let mut items = vec![json!({
        "name": mooring_core::app::IN_CLUSTER_NAME, "server": mooring_core::app::IN_CLUSTER,
        "connectionState": json!("Successful"),
    })];
    for s in api.list(&params).await?.items {
        let v = serde_json::to_value(&s).unwrap_or(Value::Null);
        match mooring_core::cluster::parse_secret(&v) {
            Ok(e) => items.push(json!({
                "name": e.name, "server": e.server, "project": e.project,
                "labels": e.labels, "connectionState": state(&e.server),
            })),
            Err(err) => items.push(json!({
                "name": str_at(&v, "/metadata/name"), "server": "",
                "connectionState": {"status": "Failed", "message": err.to_string()},
            })),
        }
    }
    items.retain(|c| az.allowed(&p, "clusters", "get", str_at(c, "/server")));
    Ok(Json(json!({"items": items})))
}

/// `GET /api/v1/policy`: the Gatekeeper ConstraintTemplates and constraints in force and,
/// per application the caller may see, its policy findings (sync-time blocks and audit
/// findings, from its conditions).
pub(super) async fn policy(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
) -> ApiResult {
    let az = Authz::load(&st).await?;
    let templates: Api<DynamicObject> = Api::all_with(
        st.store.client.clone(),
        &mooring_k8s::resources::constraint_template_resource(),
    );
    let templates: Vec<Value> = match templates.list(&ListParams::default()).await {
        Ok(l) => l
            .items
            .into_iter()
            .filter_map(|o| serde_json::to_value(o).ok())
            .collect(),
        Err(mooring_k8s::kube::Error::Api(e)) if e.code == 404 => vec![],
        Err(e) => return Err(e.into()),
    };
    let mut constraints = Vec::new();
    for t in &templates {
        let kind = t
            .pointer("/spec/crd/spec/names/kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if kind.is_empty() {
            continue;
        }
        let res = resource(
            "constraints.gatekeeper.sh",
            "v1beta1",
            kind,
            &kind.to_lowercase(),
        );
        let api: Api<DynamicObject> = Api::all_with(st.store.client.clone(), &res);
        if let Ok(l) = api.list(&ListParams::default()).await {
            constraints.extend(l.items.into_iter().filter_map(|o| {
                let v = serde_json::to_value(o).ok()?;
                Some(json!({
                    "kind": kind, "name": str_at(&v, "/metadata/name"),
                    "enforcementAction": v.pointer("/spec/enforcementAction").cloned().unwrap_or(json!("deny")),
                    "match": v.pointer("/spec/match").cloned(),
                }))
            }));
        }
    }
    let apps: Api<DynamicObject> = Api::all_with(
        st.store.client.clone(),
        &mooring_k8s::resources::application_resource(),
    );
    let mut findings = Vec::new();
    for o in apps.list(&ListParams::default()).await?.items {
        let a = super::to_value(&o);
        if !st
            .control_plane
            .namespace_enabled(str_at(&a, "/metadata/namespace"))
            || !az.allowed(&p, "applications", "get", &app_object(&st, &a))
        {
            continue;
        }
        for c in a
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|c| str_at(c, "/type").starts_with("Policy"))
        {
            findings.push(json!({
                "application": str_at(&a, "/metadata/name"),
                "namespace": str_at(&a, "/metadata/namespace"),
                "type": str_at(c, "/type"), "message": str_at(c, "/message"),
            }));
        }
    }
    Ok(Json(json!({
        "templates": templates.iter().map(|t| json!({
            "name": str_at(t, "/metadata/name"),
            "kind": t.pointer("/spec/crd/spec/names/kind").cloned(),
        })).collect::<Vec<_>>(),
        "constraints": constraints,
        "findings": findings,
    })))
}

/// `GET /api/v1/rollbackpolicies` and `GET /api/v1/drplans`: the objects of the
/// control-plane namespace (RBAC `applications, get, */*`: they act on applications).
async fn control_plane_objects(
    st: &ApiState,
    p: &Principal,
    res: mooring_k8s::kube::core::ApiResource,
) -> ApiResult {
    let az = Authz::load(st).await?;
    az.check(p, "applications", "get", "*/*")?;
    let api: Api<DynamicObject> =
        Api::namespaced_with(st.store.client.clone(), &st.control_plane.namespace, &res);
    let items: Vec<Value> = match api.list(&ListParams::default()).await {
        Ok(l) => l.items.iter().map(super::to_value).collect(),
        Err(mooring_k8s::kube::Error::Api(e)) if e.code == 404 => vec![],
        Err(e) => return Err(e.into()),
    };
    Ok(Json(json!({"items": items})))
}

pub(super) async fn rollback_policies(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
) -> ApiResult {
    control_plane_objects(&st, &p, mooring_k8s::resources::rollback_policy_resource()).await
}

pub(super) async fn dr_plans(
    State(st): State<ApiState>,
    Extension(p): Extension<Principal>,
) -> ApiResult {
    control_plane_objects(
        &st,
        &p,
        mooring_k8s::resources::disaster_recovery_plan_resource(),
    )
    .await
}
