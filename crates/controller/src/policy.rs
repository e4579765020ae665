//! The sync-time policy gate and the periodic audit, with Gatekeeper's objects.
//!
//! Constraints in force are the Gatekeeper `ConstraintTemplate`s and constraints stored in
//! the management cluster, exactly as an operator would `kubectl apply` them for
//! Gatekeeper. Like Gatekeeper, the controller serves a CRD for every template's
//! constraint kind (`constraints.gatekeeper.sh`), so constraints can be created as soon as
//! their template exists. A constraint labelled `mooring.dev/project: NAME` applies only to
//! the Applications of that project; an unlabelled one applies to every Application
//! ([`mooring_policy::gate`], the review `mooring check` runs too).
//!
//! **Gate.** Before the first write of a sync, every rendered manifest (hooks included) is
//! reviewed as Gatekeeper's admission webhook would review it (`CREATE`, or `UPDATE` with
//! the live object as `oldObject`), with `data.inventory` built from the destination's
//! live cache plus the manifests being synced. A `deny` violation fails the operation
//! with nothing applied and sets the Application condition `PolicyViolation`, one line per
//! violation (resource, constraint, message). `warn` and `dryrun` violations are reported
//! in the `PolicyWarning` condition and do not block. A template that does not compile
//! fails the gate closed, naming the template and line: a policy is never silently skipped.
//!
//! **Audit.** Every [`crate::ControllerOptions::policy_audit`] interval, the live objects
//! of every Application are reviewed again (constraints change, objects drift) and the
//! result is kept in the `PolicyAudit` condition, like Gatekeeper's audit writes
//! `totalViolations` on each constraint.

use crate::conditions::set_conditions;
use crate::{Context, ControllerError};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use mooring_core::app::Application;
use mooring_core::ResourceKey;
use mooring_k8s::cluster::ClusterClient;
use mooring_k8s::kube;
use mooring_policy::gate::{self, Scope};
use mooring_policy::gatekeeper::{Gatekeeper, Violation};
use mooring_policy::Limits;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub use mooring_policy::gate::{describe, Verdict, PROJECT_LABEL};
/// Application condition types written here.
pub const VIOLATION_CONDITION: &str = "PolicyViolation";
pub const WARNING_CONDITION: &str = "PolicyWarning";
pub const AUDIT_CONDITION: &str = "PolicyAudit";

/// (kind, name, resourceVersion) of every template and constraint.
type Fingerprint = Vec<(String, String, String)>;
/// A compilation of the policy in force, or why it does not compile.
type Compiled = Arc<Result<Gatekeeper, String>>;

/// The constraints in force, compiled once per change of the policy objects.
#[derive(Default)]
pub struct PolicyCache {
    compiled: Mutex<Option<(Fingerprint, Compiled)>>,
}

async fn list(
    cluster: &ClusterClient,
    resource: &ApiResource,
) -> Result<Option<Vec<Value>>, ControllerError> {
    if cluster
        .is_namespaced(&resource.api_version, &resource.kind)
        .await
        .is_none()
    {
        return Ok(None);
    }
    let api: Api<DynamicObject> = Api::all_with(cluster.client().clone(), resource);
    let items = api
        .list(&ListParams::default())
        .await
        .map_err(|e| ControllerError::Internal(format!("listing {}: {e}", resource.kind)))?;
    Ok(Some(
        items
            .items
            .into_iter()
            .filter_map(|o| serde_json::to_value(o).ok())
            .collect(),
    ))
}

fn fingerprint(objects: &[Value]) -> Fingerprint {
    let mut f: Vec<_> = objects
        .iter()
        .map(|o| {
            let s = |p: &str| {
                o.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            (
                s("/kind"),
                s("/metadata/name"),
                s("/metadata/resourceVersion"),
            )
        })
        .collect();
    f.sort();
    f
}

/// The templates and their constraints (kinds served by [`watch_templates`]). `Ok(None)`
/// when Gatekeeper's ConstraintTemplate kind is not installed at all.
async fn policy_objects(ctx: &Context) -> Result<Option<Vec<Value>>, ControllerError> {
    let mgmt = &ctx.management;
    let Some(templates) = list(
        mgmt,
        &mooring_k8s::resources::constraint_template_resource(),
    )
    .await?
    else {
        return Ok(None);
    };
    let mut objects = templates.clone();
    for t in &templates {
        let Some(kind) = t
            .pointer("/spec/crd/spec/names/kind")
            .and_then(Value::as_str)
        else {
            continue;
        };
        if let Some(constraints) =
            list(mgmt, &mooring_k8s::resources::constraint_resource(kind)).await?
        {
            objects.extend(constraints);
        }
    }
    Ok(Some(objects))
}

/// The compiled constraints in force (`None`: no policy installed).
pub async fn in_force(ctx: &Context) -> Result<Option<Compiled>, ControllerError> {
    let Some(objects) = policy_objects(ctx).await? else {
        return Ok(None);
    };
    if objects.is_empty() {
        return Ok(None);
    }
    let print = fingerprint(&objects);
    let mut cache = ctx
        .policy
        .compiled
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((fp, compiled)) = cache.as_ref() {
        if *fp == print {
            return Ok(Some(compiled.clone()));
        }
    }
    let compiled = Arc::new(
        Gatekeeper::from_objects(objects.iter(), Limits::default()).map_err(|e| e.to_string()),
    );
    *cache = Some((print, compiled.clone()));
    Ok(Some(compiled))
}

/// Review `objects` of `app` against the constraints in force. `live` gives each object's
/// current state: an object with a live counterpart is reviewed as an `UPDATE` (with
/// `oldObject`), one without as a `CREATE`.
pub async fn review(
    ctx: &Context,
    app: &Application,
    cluster: &ClusterClient,
    objects: &[Value],
    live: &[Value],
) -> Result<Verdict, ControllerError> {
    let Some(compiled) = in_force(ctx).await? else {
        return Ok(Verdict::default());
    };
    let gk = match compiled.as_ref() {
        Ok(gk) => gk,
        Err(e) => {
            return Err(ControllerError::Spec(format!(
                "the policy in force does not compile, so nothing can be checked: {e}"
            )))
        }
    };
    let mut gk = gk.clone();
    let mut inventory: Vec<Value> = cluster.cached_all();
    inventory.extend(objects.iter().cloned());
    gk.set_inventory(inventory.iter());
    // Namespace objects for namespaceSelector: the synced ones, else the live ones.
    let mut namespaces: BTreeMap<String, Option<Value>> = BTreeMap::new();
    for o in objects {
        if o.get("kind").and_then(Value::as_str) == Some("Namespace") {
            if let Some(name) = o.pointer("/metadata/name").and_then(Value::as_str) {
                namespaces.insert(name.to_string(), Some(o.clone()));
            }
        }
    }
    for o in objects {
        if let Some(ns) = o.pointer("/metadata/namespace").and_then(Value::as_str) {
            if !namespaces.contains_key(ns) {
                let key = ResourceKey::new("", "Namespace", "", ns);
                let got = cluster.get("v1", &key).await.ok().flatten();
                namespaces.insert(ns.to_string(), got);
            }
        }
    }
    let namespaces: BTreeMap<&str, &Value> = namespaces
        .iter()
        .filter_map(|(name, o)| Some((name.as_str(), o.as_ref()?)))
        .collect();
    let reviews = gate::review(
        &gk,
        Scope::Project(&app.spec.project),
        objects,
        live,
        &namespaces,
    );
    Verdict::of(reviews)
        .map_err(|e| ControllerError::Spec(format!("policy evaluation failed: {e}")))
}

/// The gate of one sync: `Err(message)` when a `deny` violation blocks it.
pub async fn gate(
    ctx: &Context,
    app: &Application,
    cluster: &ClusterClient,
    desired: &[Value],
    live: &[Value],
) -> Result<Result<(), String>, ControllerError> {
    let verdict = match review(ctx, app, cluster, desired, live).await {
        Ok(v) => v,
        Err(ControllerError::Spec(msg)) => {
            set_conditions(ctx, app, &[(VIOLATION_CONDITION, Some(msg.clone()))]).await?;
            return Ok(Err(msg));
        }
        Err(e) => return Err(e),
    };
    let some = |v: &[Violation]| (!v.is_empty()).then(|| describe(v));
    set_conditions(
        ctx,
        app,
        &[
            (VIOLATION_CONDITION, some(&verdict.denied)),
            (WARNING_CONDITION, some(&verdict.warned)),
        ],
    )
    .await?;
    if verdict.denied.is_empty() {
        Ok(Ok(()))
    } else {
        Ok(Err(format!(
            "{} policy violation(s):\n{}",
            verdict.denied.len(),
            describe(&verdict.denied)
        )))
    }
}

/// Audit one Application's live objects; returns every violation found (any action).
pub async fn audit_app(
    ctx: &Context,
    app: &Application,
) -> Result<Vec<Violation>, ControllerError> {
    let cluster = ctx.cluster_for(&app.spec.destination)?;
    let live = cluster.managed(&ctx.instance_name(app))?;
    let verdict = review(ctx, app, &cluster, &live, &live).await?;
    let mut all = verdict.denied;
    all.extend(verdict.warned);
    let message = (!all.is_empty()).then(|| {
        format!(
            "{} live object(s) violate the policy in force:\n{}",
            all.len(),
            describe(&all)
        )
    });
    set_conditions(ctx, app, &[(AUDIT_CONDITION, message)]).await?;
    Ok(all)
}

/// Serve each template's constraint kind as soon as the template appears, and report
/// whether it compiles in the template's `status` (Gatekeeper's `created` and
/// `byPod[].errors`), so `kubectl get constrainttemplate -o yaml` shows a broken template.
pub(crate) async fn watch_templates(ctx: Arc<Context>) {
    use futures::StreamExt;
    use kube::runtime::{watcher, WatchStreamExt};
    let api: Api<DynamicObject> = Api::all_with(
        ctx.management.client().clone(),
        &mooring_k8s::resources::constraint_template_resource(),
    );
    let mut stream = watcher(api.clone(), watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(ev) = stream.next().await {
        let (Ok(watcher::Event::Apply(t)) | Ok(watcher::Event::InitApply(t))) = ev else {
            continue;
        };
        let Ok(t) = serde_json::to_value(t) else {
            continue;
        };
        if let Err(e) = template_added(&ctx, &api, &t).await {
            tracing::warn!("constraint template: {e}");
        }
    }
}

async fn template_added(
    ctx: &Context,
    api: &Api<DynamicObject>,
    template: &Value,
) -> Result<(), ControllerError> {
    let name = template
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let errors: Vec<Value> = match Gatekeeper::new(Limits::default()).add_template(template) {
        Ok(()) => vec![],
        Err(e) => vec![json!({"code": "ingest_error", "message": e.to_string()})],
    };
    if let Some(kind) = template
        .pointer("/spec/crd/spec/names/kind")
        .and_then(Value::as_str)
    {
        let mgmt = &ctx.management;
        if mgmt
            .is_namespaced("constraints.gatekeeper.sh/v1beta1", kind)
            .await
            .is_none()
        {
            match mgmt.create(&mooring_k8s::crds::constraint_crd(kind)).await {
                Ok(_) => {}
                Err(e) if e.is_conflict() => {}
                Err(e) => return Err(e.into()),
            }
            mgmt.refresh_discovery().await?;
        }
    }
    let status =
        json!({"created": errors.is_empty(), "byPod": [{"id": "mooring", "errors": errors}]});
    if template.get("status") != Some(&status) {
        api.patch_status(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"status": status})),
        )
        .await
        .map_err(|e| ControllerError::Write(format!("ConstraintTemplate {name}: {e}")))?;
    }
    Ok(())
}

/// The audit loop.
pub(crate) async fn audit_loop(ctx: Arc<Context>) {
    let Some(every) = ctx.options.policy_audit else {
        return;
    };
    loop {
        tokio::time::sleep(every).await;
        // With no policy installed there is nothing to find: only a `PolicyAudit` left
        // from a removed policy needs clearing (at 10,000 applications, auditing them all
        // against nothing cost a tenth of the controller's CPU).
        let none_in_force = matches!(in_force(&ctx).await, Ok(None));
        for app in crate::all_apps(&ctx).await {
            let has_audit = app
                .status
                .as_ref()
                .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == AUDIT_CONDITION));
            if none_in_force && !has_audit {
                continue;
            }
            if let Err(e) = audit_app(&ctx, &app).await {
                tracing::warn!(app = app.name(), "policy audit: {e}");
            }
        }
    }
}
