//! The AppProject rules at CI time. The rules themselves are `mooring_engine::project`'s
//! (the ones the controller enforces before a sync) and the scope table is
//! `mooring_core::scope`; this module only finds each render's project among those of the
//! repository and turns refusals into findings.

use crate::render::{is_cluster_scoped, Rendered};
use crate::report::{failure, warning};
use mooring_core::project::AppProject;
use mooring_engine::project::ControlPlane;
use mooring_policy::lint;
use mooring_policy::report::{Finding, Subject};
use std::collections::BTreeMap;

/// The AppProject rules the controller enforces before a sync, at CI time: the app's
/// source repositories and destination, and every rendered object's kind (cluster vs
/// namespace white/blacklists) and namespace. Projects come from the repository (files
/// and renders); a missing `default` project permits everything, another missing project
/// is a warning (it may exist only in the cluster).
pub(crate) fn project_rules(
    r: &Rendered,
    projects: &[AppProject],
    cluster_crds: &BTreeMap<(String, String), bool>,
    control_plane: &ControlPlane,
    s: &mut Subject,
) {
    use mooring_engine::project as rules;
    let Some(name) = r.unit.project.as_deref() else {
        return;
    };
    let name = if name.is_empty() {
        mooring_core::project::DEFAULT_PROJECT
    } else {
        name
    };
    let proj = match projects.iter().find(|p| p.name() == name) {
        Some(p) => p.clone(),
        None if name == mooring_core::project::DEFAULT_PROJECT => AppProject::default_project(""),
        None => {
            s.findings.push(warning(
                "project",
                "project/unknown",
                format!(
                    "project {name} is not defined in the repository; its rules were not checked"
                ),
                "",
            ));
            return;
        }
    };
    let dst = rules::Destination::of(&r.unit.destination);
    let mut refusals = Vec::new();
    let app_namespace = r
        .unit
        .app_namespace
        .as_deref()
        .unwrap_or(&control_plane.namespace);
    refusals.push((
        "project/app-namespace",
        control_plane
            .check_app_namespace(&proj, app_namespace)
            .err(),
        String::new(),
    ));
    if !r.unit.source.repo_url.is_empty() {
        refusals.push((
            "project/source",
            rules::check_source(&proj, &r.unit.source.repo_url).err(),
            String::new(),
        ));
    }
    refusals.push((
        "project/destination",
        rules::check_destination(&proj, &dst).err(),
        String::new(),
    ));
    for o in &r.objects {
        let Some(key) = mooring_core::ResourceKey::of(o) else {
            continue;
        };
        let namespaced = !is_cluster_scoped(o, cluster_crds);
        refusals.push((
            "project/resource",
            rules::check_resource(&proj, &key, namespaced, &dst).err(),
            lint::resource_label(o),
        ));
    }
    for (rule, refusal, resource) in refusals {
        match refusal {
            None => s.successes += 1,
            Some(e) => s
                .findings
                .push(failure("project", rule, e.to_string(), &resource)),
        }
    }
}

/// An AppProject that will never be read, being outside the control-plane namespace (one
/// without a namespace is applied there).
pub(crate) fn project_outside_control_plane(
    p: &AppProject,
    control_plane: &ControlPlane,
) -> Option<Finding> {
    let ns = p.namespace();
    (!ns.is_empty() && ns != control_plane.namespace).then(|| {
        warning(
            "project",
            "project/namespace",
            format!(
                "AppProject {} is in namespace {ns}: projects are read only from the control-plane namespace {}, so no Application can use it",
                p.name(),
                control_plane.namespace
            ),
            "",
        )
    })
}
