//! The rollout controller: Argo Rollouts' `Rollout` reconciled in every destination cluster.
//!
//! One kube-runtime `Controller` per cluster watches Rollouts and is triggered by changes to
//! the ReplicaSets and AnalysisRuns they own (so a pod turning ready, or an analysis
//! finishing, moves the rollout on at once). Each reconcile reads the Rollout, its
//! ReplicaSets and AnalysisRuns from watch-fed stores, asks the pure planner
//! ([`mooring_engine::rollout::plan`]) what to do, and does it: ReplicaSets created and
//! scaled, Service selectors pointed at pod hashes, traffic router weights set (Istio
//! `VirtualService`/`DestinationRule`, Gateway API `HTTPRoute`), AnalysisRuns started from
//! their templates or terminated, and finally the status written with the Rollout's
//! `resourceVersion`, so a concurrent `promote`/`abort` from the CLI is never overwritten
//! (the write conflicts and the reconcile runs again on the new object).
//!
//! All state lives in the Rollout's status and in its children's labels and annotations, so
//! the controller can be killed at any moment and resumes where it was.

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use mooring_core::rollout::{MANAGED_BY_ANNOTATION, POD_TEMPLATE_HASH_LABEL};
use mooring_engine::rollout::{Observed, Plan, RunRequest};
use mooring_k8s::cluster::ClusterClient;
use mooring_k8s::resources::{
    analysis_run_resource, analysis_template_resource, cluster_analysis_template_resource,
    rollout_resource,
};
use mooring_k8s::{api_resource, kube};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Field manager of the rollout controller's writes.
const MANAGER: &str = "mooring-rollouts";

#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    #[error("{what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

fn kube_err(what: impl Into<String>) -> impl FnOnce(kube::Error) -> RolloutError {
    let what = what.into();
    move |source| RolloutError::Kube { what, source }
}

fn replica_set_resource() -> ApiResource {
    api_resource("apps", "v1", "ReplicaSet", "replicasets")
}

fn service_resource() -> ApiResource {
    api_resource("", "v1", "Service", "services")
}

struct Ctx {
    client: kube::Client,
    replica_sets: Store<DynamicObject>,
    runs: Store<DynamicObject>,
}

/// The rollout controller's watch-fed stores of one cluster: what `/metrics` reads
/// `rollout_info` and `analysis_run_metric_phase` from (nothing is kept twice).
#[derive(Clone)]
pub struct RolloutStores {
    pub rollouts: Store<DynamicObject>,
    pub runs: Store<DynamicObject>,
}

/// Start the rollout controller for one cluster. Clusters without the Rollout CRD are
/// retried with the watcher's backoff, quietly. Returns its task and its stores.
pub fn start(cluster: Arc<ClusterClient>) -> (tokio::task::JoinHandle<()>, RolloutStores) {
    let client = cluster.client().clone();
    let rs_api: Api<DynamicObject> = Api::all_with(client.clone(), &replica_set_resource());
    let run_api: Api<DynamicObject> = Api::all_with(client.clone(), &analysis_run_resource());
    let rs_cfg = watcher::Config::default().labels(POD_TEMPLATE_HASH_LABEL);
    let rs_writer = reflector::store::Writer::new(replica_set_resource());
    let rs_store = rs_writer.as_reader();
    let run_writer = reflector::store::Writer::new(analysis_run_resource());
    let run_store = run_writer.as_reader();
    // The children's watches feed the stores *and then* trigger their owner's reconcile,
    // so a reconcile always sees at least the change that triggered it (two separate
    // watches could deliver the trigger before the store caught up, and the rollout would
    // wait for the next event).
    let rs_stream = reflector::reflector(rs_writer, watcher(rs_api, rs_cfg))
        .default_backoff()
        .touched_objects();
    let run_stream = reflector::reflector(run_writer, watcher(run_api, Default::default()))
        .default_backoff()
        .touched_objects();
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        replica_sets: rs_store,
        runs: run_store.clone(),
    });
    let rollouts: Api<DynamicObject> = Api::all_with(client, &rollout_resource());
    let name = cluster.name.clone();
    let controller = kube::runtime::Controller::new_with(
        rollouts,
        watcher::Config::default(),
        rollout_resource(),
    )
    .with_config(kube::runtime::controller::Config::default().concurrency(16))
    .owns_stream_with(rs_stream, replica_set_resource())
    .owns_stream_with(run_stream, analysis_run_resource());
    let stores = RolloutStores {
        rollouts: controller.store(),
        runs: run_store,
    };
    let controller = controller
        .run(reconcile, error_policy, ctx)
        .for_each(move |r| {
            if let Err(e) = r {
                tracing::debug!(cluster = name, "rollout controller: {e}");
            }
            async {}
        });
    (tokio::spawn(controller), stores)
}

fn error_policy(ro: Arc<DynamicObject>, e: &RolloutError, _ctx: Arc<Ctx>) -> Action {
    let name = ro.metadata.name.as_deref().unwrap_or_default();
    match e {
        RolloutError::Kube {
            source: kube::Error::Api(s),
            ..
        } if s.code == 409 => Action::requeue(Duration::from_millis(50)),
        _ => {
            tracing::warn!(rollout = name, "reconcile failed: {e}");
            Action::requeue(Duration::from_secs(2))
        }
    }
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    }
}

fn owned_by(o: &DynamicObject, uid: &str) -> bool {
    o.metadata
        .owner_references
        .as_ref()
        .is_some_and(|refs| refs.iter().any(|r| r.uid == uid))
}

fn to_value(o: &DynamicObject) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
}

async fn reconcile(ro: Arc<DynamicObject>, ctx: Arc<Ctx>) -> Result<Action, RolloutError> {
    let uid = ro.metadata.uid.clone().unwrap_or_default();
    let ns = ro
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = ro.metadata.name.clone().unwrap_or_default();
    if ro.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    // Decisions need every child: an empty store before the first list would look like a
    // first deploy.
    let ready = async {
        ctx.replica_sets.wait_until_ready().await?;
        ctx.runs.wait_until_ready().await
    };
    if ready.await.is_err() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let rollout = to_value(&ro);
    let rses: Vec<Value> = ctx
        .replica_sets
        .state()
        .iter()
        .filter(|o| owned_by(o, &uid))
        .map(|o| to_value(o))
        .collect();
    let runs: Vec<Value> = ctx
        .runs
        .state()
        .iter()
        .filter(|o| owned_by(o, &uid))
        .map(|o| to_value(o))
        .collect();
    let mut plan = mooring_engine::rollout::plan(&Observed {
        rollout: &rollout,
        replica_sets: &rses,
        analysis_runs: &runs,
        now: mooring_core::time::now(),
    });
    let owner = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "name": name, "uid": uid,
        "controller": true, "blockOwnerDeletion": true,
    });
    execute(&ctx, &ns, &name, &rollout, &owner, &mut plan).await?;
    write_status(&ctx, &ns, &name, &rollout, &plan.status).await?;
    let before = rollout.get("status").cloned().unwrap_or(Value::Null);
    for t in mooring_engine::rollout::events::transitions(&before, &plan.status) {
        record_event(&ctx, &rollout, &t).await;
    }
    Ok(match plan.requeue_after {
        Some(d) => Action::requeue(d),
        None => Action::await_change(),
    })
}

/// Perform a plan's writes (everything but the status).
async fn execute(
    ctx: &Ctx,
    ns: &str,
    name: &str,
    rollout: &Value,
    owner: &Value,
    plan: &mut Plan,
) -> Result<(), RolloutError> {
    let rs_api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), ns, &replica_set_resource());
    for rs in &plan.create {
        let obj: DynamicObject = serde_json::from_value(rs.clone())
            .map_err(|e| RolloutError::Invalid(format!("ReplicaSet for {name}: {e}")))?;
        let pp = PostParams {
            field_manager: Some(MANAGER.into()),
            ..Default::default()
        };
        match rs_api.create(&pp, &obj).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(kube_err(format!("creating ReplicaSet for {name}"))(e)),
        }
    }
    for (rs, patch) in &plan.patch {
        rs_api
            .patch(rs, &patch_params(), &Patch::Merge(patch))
            .await
            .map_err(kube_err(format!("patching ReplicaSet {ns}/{rs}")))?;
    }
    for rs in &plan.delete {
        match rs_api.delete(rs, &Default::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(kube_err(format!("deleting ReplicaSet {ns}/{rs}"))(e)),
        }
    }
    let svc_api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), ns, &service_resource());
    for (svc, hash) in plan.service_selectors.clone() {
        let cur = svc_api
            .get_opt(&svc)
            .await
            .map_err(kube_err(format!("reading Service {ns}/{svc}")))?;
        let Some(cur) = cur else {
            // As Argo Rollouts: the spec names a Service that is not there. The Rollout is
            // Degraded and says so (nothing is aborted: the state machine goes on once the
            // Service exists), and it is looked at again shortly.
            let msg = format!(
                "InvalidSpec: Service \"{svc}\" not found; create it or fix the Rollout's service names"
            );
            plan.status["phase"] = json!("Degraded");
            plan.status["message"] = json!(msg);
            plan.requeue_after = Some(Duration::from_secs(5));
            continue;
        };
        let sel = cur
            .data
            .pointer(&format!("/spec/selector/{POD_TEMPLATE_HASH_LABEL}"))
            .and_then(Value::as_str);
        if sel != Some(hash.as_str()) {
            let svc = svc.as_str();
            let patch = json!({
                "metadata": {"annotations": {MANAGED_BY_ANNOTATION: name}},
                "spec": {"selector": {POD_TEMPLATE_HASH_LABEL: hash}},
            });
            svc_api
                .patch(svc, &patch_params(), &Patch::Merge(&patch))
                .await
                .map_err(kube_err(format!("pointing Service {ns}/{svc} at {hash}")))?;
        }
    }
    if let Some(t) = plan.traffic.clone() {
        if let Err(e) = crate::rollout_traffic::apply(&ctx.client, rollout, &t).await {
            // The router could not be told: the weight did not move, so the status must
            // not say it did; keep the previous weights and look again shortly.
            tracing::warn!(rollout = name, "traffic routing: {e}");
            if let Some(w) = plan.status.pointer_mut("/canary/weights") {
                *w = rollout
                    .pointer("/status/canary/weights")
                    .cloned()
                    .unwrap_or(Value::Null);
            }
            let msg = format!("traffic routing: {e}");
            plan.status["message"] = json!(msg);
            plan.requeue_after = Some(Duration::from_secs(2));
        }
    }
    let run_api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), ns, &analysis_run_resource());
    let start = std::mem::take(&mut plan.start_runs);
    for req in &start {
        match analysis_run(ctx, ns, req, owner).await {
            Ok(obj) => match run_api.create(&PostParams::default(), &obj).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => {
                    return Err(kube_err(format!("creating AnalysisRun {ns}/{}", req.name))(
                        e,
                    ))
                }
            },
            // A run that cannot be made (template missing, bad arguments) fails safe: the
            // update is aborted, traffic stays on the stable version, and the message says
            // what to fix.
            Err(msg) => abort_with(plan, &msg),
        }
    }
    for run in &plan.terminate_runs {
        match run_api
            .patch(
                run,
                &patch_params(),
                &Patch::Merge(&json!({"spec": {"terminate": true}})),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(kube_err(format!("terminating AnalysisRun {ns}/{run}"))(e)),
        }
    }
    Ok(())
}

/// Abort the update in the status about to be written (the next reconcile acts on it).
fn abort_with(plan: &mut Plan, msg: &str) {
    plan.status["abort"] = json!(true);
    plan.status["abortMessage"] = json!(msg);
    plan.status["phase"] = json!("Degraded");
    plan.status["message"] = json!(format!("RolloutAborted: {msg}"));
    plan.requeue_after = Some(Duration::from_millis(100));
}

/// The AnalysisRun for a request: templates fetched, merged with the arguments.
async fn analysis_run(
    ctx: &Ctx,
    ns: &str,
    req: &RunRequest,
    owner: &Value,
) -> Result<DynamicObject, String> {
    let mut templates = vec![];
    for t in &req.analysis.templates {
        let api: Api<DynamicObject> = if t.cluster_scope {
            Api::all_with(ctx.client.clone(), &cluster_analysis_template_resource())
        } else {
            Api::namespaced_with(ctx.client.clone(), ns, &analysis_template_resource())
        };
        let kind = if t.cluster_scope {
            "ClusterAnalysisTemplate"
        } else {
            "AnalysisTemplate"
        };
        match api.get_opt(&t.template_name).await {
            Ok(Some(o)) => templates.push(to_value(&o)),
            Ok(None) => {
                return Err(format!(
                    "{kind} \"{}\" not found in namespace {ns}",
                    t.template_name
                ))
            }
            Err(e) => return Err(format!("reading {kind} \"{}\": {e}", t.template_name)),
        }
    }
    let mut spec = mooring_engine::analysis::build_run_spec(&templates, &req.args)
        .map_err(|e| format!("AnalysisRun {}: {e}", req.name))?;
    if let Some(d) = &req.analysis.dry_run {
        spec["dryRun"] = d.clone();
    }
    if let Some(m) = &req.analysis.measurement_retention {
        spec["measurementRetention"] = m.clone();
    }
    let obj = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "AnalysisRun",
        "metadata": {"name": req.name, "namespace": ns, "labels": req.labels, "ownerReferences": [owner]},
        "spec": spec,
    });
    serde_json::from_value(obj).map_err(|e| format!("AnalysisRun {}: {e}", req.name))
}

/// Record a transition as a Kubernetes Event on the Rollout (as Argo Rollouts does), with
/// `related` naming the Application that deploys it (from the Rollout's tracking id), so
/// the notifications of that Application see it (`on-rollout-paused`, …). Best effort.
async fn record_event(ctx: &Ctx, rollout: &Value, t: &mooring_engine::rollout::events::Transition) {
    use mooring_k8s::k8s_openapi::api::core::v1::Event;
    let type_ = if matches!(t.reason, "RolloutAborted" | "AnalysisRunFailed") {
        mooring_core::event::EventType::Warning
    } else {
        mooring_core::event::EventType::Normal
    };
    let mut event = mooring_core::event::event(
        rollout,
        type_,
        t.reason,
        &t.message,
        MANAGER,
        &mooring_core::time::now_rfc3339(),
    );
    // `INSTANCE:group/kind:namespace/name`; the instance is `name`, or `namespace_name`
    // for an Application outside the control-plane namespace.
    let instance = rollout
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(mooring_k8s::cluster::TRACKING_ANNOTATION))
        .and_then(Value::as_str)
        .and_then(|id| id.split_once(':'))
        .map(|(instance, _)| instance.to_string());
    if let Some(instance) = instance {
        let (namespace, name) = match instance.split_once('_') {
            Some((ns, name)) => (Value::from(ns), name.to_string()),
            None => (Value::Null, instance),
        };
        event["related"] = json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "name": name, "namespace": namespace,
        });
    }
    let ns = rollout
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let api: Api<Event> = Api::namespaced(ctx.client.clone(), ns);
    let created = match serde_json::from_value::<Event>(event) {
        Ok(e) => api
            .create(&PostParams::default(), &e)
            .await
            .map(drop)
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    if let Err(e) = created {
        tracing::warn!("recording event {} for Rollout {ns}: {e}", t.reason);
    }
}

/// Write the status when it changed, with the Rollout's resourceVersion (a conflict means a
/// user or another writer changed it: the reconcile runs again on the new object).
async fn write_status(
    ctx: &Ctx,
    ns: &str,
    name: &str,
    rollout: &Value,
    status: &Value,
) -> Result<(), RolloutError> {
    if rollout.get("status") == Some(status) {
        return Ok(());
    }
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &rollout_resource());
    let mut obj = rollout.clone();
    obj["status"] = status.clone();
    let obj: DynamicObject =
        serde_json::from_value(obj).map_err(|e| RolloutError::Invalid(e.to_string()))?;
    let pp = PostParams {
        field_manager: Some(MANAGER.into()),
        ..Default::default()
    };
    api.replace_status(name, &pp, &obj)
        .await
        .map_err(kube_err(format!(
            "writing the status of Rollout {ns}/{name}"
        )))?;
    Ok(())
}
