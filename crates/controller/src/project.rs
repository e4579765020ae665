//! AppProject enforcement: the controller's side of [`mooring_engine::project`].
//!
//! Projects are `AppProject` custom resources in the management cluster's control-plane
//! namespace (`argocd` by default), looked up by the Application's `spec.project` (default
//! `default`); an AppProject anywhere else is never read, so a tenant cannot bring its
//! own. An Application outside the control-plane namespace may use a project only when
//! the controller reads its namespace and the project lists it in `sourceNamespaces`
//! ([`mooring_engine::project::ControlPlane`]). A project that does not exist is an
//! error, `default` included: there is no synthetic permissive project. As Argo CD's
//! server does at start, the controller creates the `default` AppProject (any source, any
//! destination, any kind) when it is missing ([`ensure_default_project`]); it is an
//! ordinary object the admin may restrict or delete, and the controller honours that.
//!
//! Enforcement happens at three points, always before anything is written to a cluster:
//!
//! - **every reconcile** ([`check_app`]): the project must exist, admit Applications from
//!   the app's namespace, and permit its source repositories and destination; otherwise the
//!   app gets an `InvalidSpecError` condition naming the rule, and is neither compared nor
//!   synced. An ApplicationSet's generated apps go through the same path.
//! - **the start of a sync** ([`check_resources`], called next to the policy gate): every
//!   rendered object's kind against the cluster/namespace resource white- and blacklists
//!   (scope from the destination's discovery, or from a CRD in the same sync), and every
//!   namespaced object's namespace against the destinations. A refusal ends the operation
//!   `Failed` with "nothing was applied: …" listing each refused object and rule.
//! - **sync windows** ([`window_verdict`]): an automated sync is not started while the
//!   windows forbid it (condition `SyncWindowBlocked`; the app is re-queued for the
//!   moment a window opens or closes); a manual sync requested then fails with the reason
//!   unless the blocking windows permit `manualSync`.
//!
//! A change to an AppProject re-queues the Applications that use it ([`watch_projects`]),
//! and a role whose `policies` are refused ([`mooring_engine::project::roles`]: the REST
//! API grants that role nothing) is reported on the AppProject as a Warning Event
//! `InvalidRolePolicy`, once per generation.
//! Projects with `orphanedResources` get their apps' destination namespaces scanned
//! periodically ([`orphan_loop`]): unmanaged objects without an owner raise an
//! `OrphanedResourceWarning` condition with their count (Argo CD's message) and names.

use crate::{Context, ControllerError};
use kube::api::{Api, DynamicObject};
use kube::runtime::WatchStreamExt;
use mooring_core::app::Application;
use mooring_core::project::{AppProject, DEFAULT_PROJECT};
use mooring_core::ResourceKey;
use mooring_engine::project::{self as rules, Destination, WindowVerdict};
use mooring_k8s::cluster::ClusterClient;
use mooring_k8s::kube;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Condition set while sync windows keep an automated sync from starting.
pub const WINDOW_CONDITION: &str = "SyncWindowBlocked";
/// Condition listing unmanaged objects in the destination namespace.
pub const ORPHAN_CONDITION: &str = "OrphanedResourceWarning";

/// The project name an app uses.
pub fn project_name(app: &Application) -> &str {
    if app.spec.project.is_empty() {
        DEFAULT_PROJECT
    } else {
        &app.spec.project
    }
}

fn parse(o: DynamicObject) -> Result<AppProject, ControllerError> {
    let name = o.metadata.name.clone().unwrap_or_default();
    serde_json::to_value(o)
        .and_then(serde_json::from_value)
        .map_err(|e| ControllerError::Spec(format!("AppProject {name} is not valid: {e}")))
}

/// The app's project (`None`: it does not exist).
pub async fn project_of(
    ctx: &Context,
    app: &Application,
) -> Result<Option<AppProject>, ControllerError> {
    let name = project_name(app);
    let projects: Api<DynamicObject> = Api::namespaced_with(
        ctx.management.client().clone(),
        ctx.namespace(),
        &mooring_k8s::resources::appproject_resource(),
    );
    let found = projects.get_opt(name).await.map_err(|e| {
        ControllerError::Internal(format!(
            "reading AppProject {}/{name}: {e}",
            ctx.namespace()
        ))
    })?;
    found.map(parse).transpose()
}

/// Create the `default` AppProject in the control-plane namespace when it does not exist,
/// as Argo CD's server does at start (its spec: [`AppProject::default_project`]). A
/// cluster without the AppProject CRD, or a controller without the right to create one,
/// only logs: apps using `default` then report that it does not exist.
pub async fn ensure_default_project(management: &kube::Client, namespace: &str) {
    let projects: Api<DynamicObject> = Api::namespaced_with(
        management.clone(),
        namespace,
        &mooring_k8s::resources::appproject_resource(),
    );
    match projects.get_opt(DEFAULT_PROJECT).await {
        Ok(Some(_)) => return,
        Ok(None) => {}
        Err(e) => {
            tracing::warn!("reading AppProject {namespace}/{DEFAULT_PROJECT}: {e}");
            return;
        }
    }
    let created = serde_json::to_value(AppProject::default_project(namespace))
        .map_err(|e| e.to_string())
        .and_then(|v| serde_json::from_value::<DynamicObject>(v).map_err(|e| e.to_string()));
    let result = match created {
        Ok(o) => projects
            .create(&Default::default(), &o)
            .await
            .map(|_| ())
            .or_else(|e| match e {
                kube::Error::Api(ref a) if a.code == 409 => Ok(()),
                e => Err(e.to_string()),
            }),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => tracing::info!("created the default AppProject in {namespace}"),
        Err(e) => tracing::warn!("creating the default AppProject in {namespace}: {e}"),
    }
}

/// The app's destination with both server URL and cluster name filled where known (Argo
/// CD infers one from the other before checking a project).
pub fn destination_of(ctx: &Context, app: &Application) -> Destination {
    let mut dst = Destination::of(&app.spec.destination);
    if !app.spec.destination.is_in_cluster() {
        let Destination { server, name, .. } = &mut dst;
        let clusters = ctx
            .clusters
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if name.is_empty() {
            if let Some(c) = clusters.get(server.as_str()) {
                *name = c.name.clone();
            }
        } else if server.is_empty() {
            if let Some(c) = clusters.get(name.as_str()) {
                if let Some((url, _)) = clusters
                    .iter()
                    .find(|(k, v)| Arc::ptr_eq(v, c) && k.contains("://"))
                {
                    *server = url.clone();
                }
            }
        }
    }
    dst
}

/// The pure part of [`check_app`]: the app's namespace, sources and destination.
pub fn check_app_against(
    control_plane: &rules::ControlPlane,
    proj: &AppProject,
    app: &Application,
    dst: &Destination,
) -> Result<(), rules::Refusal> {
    control_plane.check_app_namespace(proj, app.namespace())?;
    for s in app.sources() {
        rules::check_source(proj, &s.repo_url)?;
    }
    rules::check_destination(proj, dst)
}

/// The project of `app` if it permits the app; `Err(message)` otherwise.
pub async fn check_app(
    ctx: &Context,
    app: &Application,
) -> Result<Result<AppProject, String>, ControllerError> {
    let proj = match project_of(ctx, app).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return Ok(Err(format!(
                "application references project {} which does not exist",
                project_name(app)
            )))
        }
        Err(ControllerError::Spec(msg)) => return Ok(Err(msg)),
        Err(e) => return Err(e),
    };
    let dst = destination_of(ctx, app);
    Ok(
        check_app_against(&ctx.options.control_plane, &proj, app, &dst)
            .map(|()| proj)
            .map_err(|r| r.to_string()),
    )
}

/// Check every rendered object against the project's resource lists and destinations;
/// `Err(message)` lists each refused object with its rule.
pub async fn check_resources(
    proj: &AppProject,
    dst: &Destination,
    cluster: &ClusterClient,
    desired: &[Value],
) -> Result<(), String> {
    // Scopes of kinds defined by CRDs in this same sync.
    let crd_scopes = mooring_core::scope::crd_scopes(desired);
    let mut refusals = Vec::new();
    for d in desired {
        let Some(key) = ResourceKey::of(d) else {
            continue;
        };
        let av = d
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let namespaced = match cluster.is_namespaced(av, &key.kind).await {
            Some(n) => n,
            None => crd_scopes
                .get(&(key.group.clone(), key.kind.clone()))
                .copied()
                .unwrap_or(!key.namespace.is_empty()),
        };
        if let Err(r) = rules::check_resource(proj, &key, namespaced, dst) {
            refusals.push(r.to_string());
        }
    }
    if refusals.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} resource(s) refused by project {}:\n{}",
            refusals.len(),
            proj.name(),
            refusals.join("\n")
        ))
    }
}

/// Whether the project's sync windows let the app sync at `now`; an invalid window
/// blocks (fail closed) and says why.
pub fn window_verdict(
    proj: &AppProject,
    app: &Application,
    dst: &Destination,
    now: SystemTime,
    manual: bool,
) -> WindowVerdict {
    let windows = rules::matching_windows(proj, app.name(), dst);
    rules::can_sync(&windows, now, manual).unwrap_or_else(|e| WindowVerdict {
        allowed: false,
        reason: format!("project {}: {e}", proj.name()),
        next_change: None,
    })
}

/// When to look at a blocked app again: just after the next window boundary, or in five
/// minutes when that is further away (each reconcile of a blocked app schedules one
/// re-check, so a short horizon keeps their number small over a weekend-long window).
pub fn recheck_after(v: &WindowVerdict, now: SystemTime) -> Duration {
    v.next_change
        .map(|t| rules::until(t, now) + Duration::from_millis(500))
        .unwrap_or(Duration::from_secs(60))
        .min(Duration::from_secs(300))
}

/// AppProject changes → the Applications using them are queued.
pub async fn watch_projects(ctx: Arc<Context>) {
    use futures::StreamExt;
    let api: Api<DynamicObject> = Api::namespaced_with(
        ctx.management.client().clone(),
        ctx.namespace(),
        &mooring_k8s::resources::appproject_resource(),
    );
    let mut stream = kube::runtime::watcher(api, Default::default())
        .default_backoff()
        .boxed();
    // Project name → the generation whose role errors were last reported.
    let mut reported: HashMap<String, i64> = HashMap::new();
    while let Some(ev) = stream.next().await {
        let name = match ev {
            Ok(
                kube::runtime::watcher::Event::Apply(ref o)
                | kube::runtime::watcher::Event::InitApply(ref o),
            ) => {
                let name = o.metadata.name.clone().unwrap_or_default();
                let generation = o.metadata.generation.unwrap_or_default();
                if reported.insert(name.clone(), generation) != Some(generation) {
                    report_role_errors(&ctx, o).await;
                }
                // At start every app is queued anyway.
                if matches!(ev, Ok(kube::runtime::watcher::Event::InitApply(_))) {
                    continue;
                }
                name
            }
            Ok(kube::runtime::watcher::Event::Delete(o)) => {
                let name = o.metadata.name.unwrap_or_default();
                reported.remove(&name);
                name
            }
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!("appproject watch: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        for app in crate::all_apps(&ctx).await {
            if project_name(&app) == name {
                ctx.enqueue(&format!("{}/{}", app.namespace(), app.name()));
            }
        }
    }
}

/// Say on the AppProject (Warning Event `InvalidRolePolicy`, and the log) which of its
/// roles the REST API refuses, and why; nothing when every role is valid.
async fn report_role_errors(ctx: &Context, o: &DynamicObject) {
    // An AppProject that does not parse is reported on every app that uses it.
    let Ok(project) = parse(o.clone()) else {
        return;
    };
    let name = o.metadata.name.clone().unwrap_or_default();
    let errors = mooring_engine::project::roles::check_project(
        &name,
        project
            .spec
            .roles
            .iter()
            .map(|r| (r.name.as_str(), r.policies.as_slice())),
    );
    if errors.is_empty() {
        return;
    }
    let message = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    tracing::warn!("{message}");
    let Ok(object) = serde_json::to_value(&project) else {
        return;
    };
    crate::events::record(
        ctx,
        &object,
        crate::events::EventType::Warning,
        "InvalidRolePolicy",
        &message,
        "mooring-controller",
    )
    .await;
}

/// How many orphaned objects the condition names (the count is always complete).
const ORPHANS_NAMED: usize = 10;

/// Unmanaged objects per (cluster, namespace), listed once per scan round however many
/// apps share the namespace.
pub type NamespaceListings = BTreeMap<(String, String), Arc<Vec<Value>>>;

/// Scan one app's destination namespace for orphaned resources and set (or clear) its
/// `OrphanedResourceWarning` condition. `listings` reuses what another app of the same
/// namespace already listed in this round.
pub async fn scan_orphans(
    ctx: &Context,
    app: &Application,
    listings: &mut NamespaceListings,
) -> Result<(), ControllerError> {
    let warning = match check_app(ctx, app).await? {
        Ok(proj) => match rules::warns_of_orphans(&proj) {
            Some(settings) => {
                let ns = app.spec.destination.namespace.clone().unwrap_or_default();
                if ns.is_empty() {
                    None
                } else {
                    let cluster = ctx.cluster_for(&app.spec.destination)?;
                    let key = (cluster.name.clone(), ns.clone());
                    let unmanaged = match listings.get(&key) {
                        Some(l) => l.clone(),
                        None => {
                            let l: Vec<Value> = cluster
                                .list_namespace(&ns)
                                .await
                                .into_iter()
                                .filter(|o| {
                                    o.pointer("/metadata/annotations")
                                        .and_then(|a| {
                                            a.get(mooring_k8s::cluster::TRACKING_ANNOTATION)
                                        })
                                        .is_none()
                                })
                                .collect();
                            let l = Arc::new(l);
                            listings.insert(key, l.clone());
                            l
                        }
                    };
                    let orphans = rules::orphaned_resources(&unmanaged, settings);
                    (!orphans.is_empty()).then(|| {
                        let named: Vec<String> = orphans
                            .iter()
                            .take(ORPHANS_NAMED)
                            .map(ToString::to_string)
                            .collect();
                        format!(
                            "Application has {} orphaned resources: {}{}",
                            orphans.len(),
                            named.join(", "),
                            if orphans.len() > ORPHANS_NAMED {
                                ", …"
                            } else {
                                ""
                            }
                        )
                    })
                }
            }
            None => None,
        },
        Err(_) => None,
    };
    crate::conditions::set_conditions(ctx, app, &[(ORPHAN_CONDITION, warning)]).await
}

/// Periodic orphaned-resource scan of every app (see [`scan_orphans`]); each destination
/// namespace is listed once per round.
pub(crate) async fn orphan_loop(ctx: Arc<Context>) {
    let Some(every) = ctx.options.orphan_scan else {
        return;
    };
    loop {
        tokio::time::sleep(every).await;
        let mut listings = NamespaceListings::new();
        for app in crate::all_apps(&ctx).await {
            if let Err(e) = scan_orphans(&ctx, &app, &mut listings).await {
                tracing::debug!(app = app.name(), "orphaned resources: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mooring_core::app::IN_CLUSTER;

    #[test]
    fn recheck_is_just_after_the_boundary_and_bounded() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let v = |next: Option<u64>| WindowVerdict {
            allowed: false,
            reason: String::new(),
            next_change: next.map(|s| now + Duration::from_secs(s)),
        };
        assert_eq!(
            recheck_after(&v(Some(10)), now),
            Duration::from_millis(10_500)
        );
        assert_eq!(
            recheck_after(&v(Some(86_400)), now),
            Duration::from_secs(300)
        );
        assert_eq!(recheck_after(&v(None), now), Duration::from_secs(60));
    }

    #[test]
    fn every_source_of_a_multi_source_app_is_checked() {
        let proj: AppProject = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "ml", "namespace": "argocd"},
            "spec": {"sourceRepos": ["https://git.example.com/ml/*"],
                     "destinations": [{"server": "*", "namespace": "ml-*"}]}
        }))
        .expect("project");
        let app = |sources: serde_json::Value| -> Application {
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": "a", "namespace": "argocd"},
                "spec": {"project": "ml", "sources": sources,
                         "destination": {"server": IN_CLUSTER, "namespace": "ml-a"}}
            }))
            .expect("app")
        };
        let dst = Destination {
            server: IN_CLUSTER.into(),
            name: "in-cluster".into(),
            namespace: "ml-a".into(),
        };
        let cp = rules::ControlPlane::default();
        let ok = app(serde_json::json!([
            {"repoURL": "https://git.example.com/ml/a.git", "path": "a"},
            {"repoURL": "https://git.example.com/ml/values.git", "ref": "values"}
        ]));
        assert!(check_app_against(&cp, &proj, &ok, &dst).is_ok());
        let bad = app(serde_json::json!([
            {"repoURL": "https://git.example.com/ml/a.git", "path": "a"},
            {"repoURL": "https://elsewhere.example.com/values.git", "ref": "values"}
        ]));
        let e = check_app_against(&cp, &proj, &bad, &dst).expect_err("second source");
        assert!(
            e.to_string()
                .contains("https://elsewhere.example.com/values.git"),
            "{e}"
        );
        let mut other_ns = ok.clone();
        other_ns.metadata["namespace"] = serde_json::json!("team-a");
        let e = check_app_against(&cp, &proj, &other_ns, &dst).expect_err("app namespace");
        assert!(
            e.to_string().contains("applications in namespace team-a"),
            "{e}"
        );
    }
}
