//! The REST resources of the custom kinds Mooring reads and writes: Argo CD's
//! `Application`, `AppProject` and `ApplicationSet`, Argo Rollouts' `Rollout`,
//! `AnalysisRun`, `AnalysisTemplate` and `ClusterAnalysisTemplate`, Gatekeeper's
//! `ConstraintTemplate` and constraints, and Mooring's own `RollbackPolicy`.
//!
//! The controller, the REST API, the CLI, the benchmarks and the tests all address these
//! kinds; a wrong plural or version would make one of them talk to a resource nobody
//! serves. This module is the one place their group, version, kind and plural are written
//! (the group and version constants themselves are vocabulary in `mooring_core`), and
//! [`crate::crds`] installs the CRDs that serve exactly these resources (pinned by a test
//! below).

use kube::api::ApiResource;
use mooring_core::{analysis, app, dr, rollback};

/// A kind of Argo's API group (`argoproj.io/v1alpha1`), Argo CD's and Argo Rollouts'.
fn argo(kind: &str, plural: &str) -> ApiResource {
    crate::api_resource(app::GROUP, app::VERSION, kind, plural)
}

/// Argo CD's `Application`.
pub fn application_resource() -> ApiResource {
    argo("Application", "applications")
}

/// Argo CD's `AppProject`.
pub fn appproject_resource() -> ApiResource {
    argo("AppProject", "appprojects")
}

/// Argo CD's `ApplicationSet`.
pub fn applicationset_resource() -> ApiResource {
    argo("ApplicationSet", "applicationsets")
}

/// Argo Rollouts' `Rollout`.
pub fn rollout_resource() -> ApiResource {
    argo("Rollout", "rollouts")
}

/// Argo Rollouts' `AnalysisRun`.
pub fn analysis_run_resource() -> ApiResource {
    argo(analysis::ANALYSIS_RUN, "analysisruns")
}

/// Argo Rollouts' `AnalysisTemplate`.
pub fn analysis_template_resource() -> ApiResource {
    argo(analysis::ANALYSIS_TEMPLATE, "analysistemplates")
}

/// Argo Rollouts' `ClusterAnalysisTemplate`.
pub fn cluster_analysis_template_resource() -> ApiResource {
    argo(
        analysis::CLUSTER_ANALYSIS_TEMPLATE,
        "clusteranalysistemplates",
    )
}

/// Mooring's `mooring.dev/v1alpha1` `RollbackPolicy`.
pub fn rollback_policy_resource() -> ApiResource {
    crate::api_resource(
        rollback::GROUP,
        rollback::VERSION,
        rollback::KIND,
        rollback::PLURAL,
    )
}

/// Mooring's `mooring.dev/v1alpha1` `DisasterRecoveryPlan`.
pub fn disaster_recovery_plan_resource() -> ApiResource {
    crate::api_resource(dr::GROUP, dr::VERSION, dr::KIND, dr::PLURAL)
}

/// Gatekeeper's `templates.gatekeeper.sh/v1` `ConstraintTemplate`.
pub fn constraint_template_resource() -> ApiResource {
    crate::api_resource(
        "templates.gatekeeper.sh",
        "v1",
        "ConstraintTemplate",
        "constrainttemplates",
    )
}

/// The constraints of one Gatekeeper template (`constraints.gatekeeper.sh/v1beta1`); their
/// plural is the lower-cased kind, as Gatekeeper names the CRD it generates.
pub fn constraint_resource(kind: &str) -> ApiResource {
    crate::api_resource(
        "constraints.gatekeeper.sh",
        "v1beta1",
        kind,
        &kind.to_lowercase(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// The CRD [`crate::crds`] installs for `r`'s kind, and whether it serves `r`.
    fn served(crds: &[Value], r: &ApiResource) -> bool {
        crds.iter().any(|c| {
            c.pointer("/spec/group").and_then(Value::as_str) == Some(r.group.as_str())
                && c.pointer("/spec/names/kind").and_then(Value::as_str) == Some(r.kind.as_str())
                && c.pointer("/spec/names/plural").and_then(Value::as_str)
                    == Some(r.plural.as_str())
                && c.pointer("/spec/versions")
                    .and_then(Value::as_array)
                    .is_some_and(|vs| {
                        vs.iter().any(|v| {
                            v["name"] == r.version.as_str() && v["served"] == Value::Bool(true)
                        })
                    })
        })
    }

    #[test]
    fn every_resource_is_served_by_the_crds_mooring_installs() {
        let mut crds = crate::crds::all();
        crds.push(crate::crds::constraint_crd("K8sRequiredLabels"));
        for r in [
            application_resource(),
            appproject_resource(),
            applicationset_resource(),
            rollout_resource(),
            analysis_run_resource(),
            analysis_template_resource(),
            cluster_analysis_template_resource(),
            rollback_policy_resource(),
            disaster_recovery_plan_resource(),
            constraint_template_resource(),
            constraint_resource("K8sRequiredLabels"),
        ] {
            assert!(served(&crds, &r), "no installed CRD serves {r:?}");
            assert_eq!(r.api_version, format!("{}/{}", r.group, r.version));
        }
    }
}
