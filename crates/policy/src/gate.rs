//! The Gatekeeper review of an Application's objects, with project scoping: the one rule
//! the sync gate and audit (`mooring_controller::policy`) and `mooring check` share.
//!
//! A constraint labelled `mooring.dev/project: NAME` ([`PROJECT_LABEL`]) applies only to
//! the Applications of project NAME; an unlabelled one applies to every Application. CI and
//! the cluster must agree on which constraints hold an Application back, so both call
//! [`review`] here rather than looping over [`Gatekeeper::review`] themselves.
//!
//! Pure: the caller compiles the constraints, sets the inventory
//! ([`Gatekeeper::set_inventory`]) and gathers the live objects and Namespace objects
//! (from a cluster, or from the rendered objects at CI time).

use crate::gatekeeper::{
    EnforcementAction, Gatekeeper, GatekeeperError, Operation, Review, Violation,
};
use mooring_core::ResourceKey;
use serde_json::Value;
use std::collections::BTreeMap;

/// The label that scopes a constraint to one project's Applications.
pub const PROJECT_LABEL: &str = "mooring.dev/project";

/// Whom the objects belong to, for project scoping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    /// The objects of an Application of this project (`spec.project` as written).
    Project(&'a str),
    /// Objects no Application deploys (at CI time: an overlay no Application renders),
    /// whose project is unknown: every constraint applies.
    Unknown,
}

/// Whether the constraint that raised `v` applies to objects of `scope`.
pub fn applies_to(gk: &Gatekeeper, v: &Violation, scope: Scope) -> bool {
    let Scope::Project(project) = scope else {
        return true;
    };
    gk.constraints()
        .find(|c| c.kind == v.constraint_kind && c.name == v.constraint_name)
        .and_then(|c| c.labels.get(PROJECT_LABEL))
        .is_none_or(|p| p == project)
}

/// The review of one object: the violations of the constraints that apply to its scope,
/// or why it could not be evaluated.
#[derive(Debug)]
pub struct Reviewed<'a> {
    pub object: &'a Value,
    pub result: Result<Vec<Violation>, GatekeeperError>,
}

/// Review every object of `objects` as Gatekeeper's admission webhook would, keeping
/// only the violations of constraints that apply to `scope`.
///
/// An object with a counterpart in `live` (same [`ResourceKey`]) is reviewed as an
/// `UPDATE` with it as `oldObject`, one without as a `CREATE`. `namespaces` gives the
/// Namespace object of an object's namespace, for `namespaceSelector`.
pub fn review<'a>(
    gk: &Gatekeeper,
    scope: Scope,
    objects: impl IntoIterator<Item = &'a Value>,
    live: &[Value],
    namespaces: &BTreeMap<&str, &Value>,
) -> Vec<Reviewed<'a>> {
    let live_by_key: BTreeMap<ResourceKey, &Value> = live
        .iter()
        .filter_map(|o| Some((ResourceKey::of(o)?, o)))
        .collect();
    objects
        .into_iter()
        .map(|object| {
            let old = ResourceKey::of(object).and_then(|k| live_by_key.get(&k).copied());
            let namespace = object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .and_then(|ns| namespaces.get(ns).copied());
            let review = Review {
                operation: if old.is_some() {
                    Operation::Update
                } else {
                    Operation::Create
                },
                object,
                old_object: old,
                namespace,
                user_info: None,
            };
            let result = gk.review(&review).map(|violations| {
                violations
                    .into_iter()
                    .filter(|v| applies_to(gk, v, scope))
                    .collect()
            });
            Reviewed { object, result }
        })
        .collect()
}

/// The violations of a set of objects, split by what they do to a sync.
#[derive(Debug, Default)]
pub struct Verdict {
    /// `deny` violations: the sync is blocked.
    pub denied: Vec<Violation>,
    /// `warn` and `dryrun` violations: reported, not blocking.
    pub warned: Vec<Violation>,
}

impl Verdict {
    /// The verdict of [`review`]'s results; the first object that could not be evaluated
    /// fails it (a policy is never silently skipped).
    pub fn of(reviews: Vec<Reviewed>) -> Result<Self, GatekeeperError> {
        let mut verdict = Self::default();
        for r in reviews {
            for v in r.result? {
                if v.enforcement_action == EnforcementAction::Deny {
                    verdict.denied.push(v);
                } else {
                    verdict.warned.push(v);
                }
            }
        }
        Ok(verdict)
    }
}

/// One line per violation: `resource: [Kind/name] message (action)`.
pub fn describe(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| {
            format!(
                "{}: [{}/{}] {} ({})",
                v.resource, v.constraint_kind, v.constraint_name, v.message, v.enforcement_action
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Limits;
    use serde_json::json;

    const ALWAYS: &str = r#"
package k8salways

violation[{"msg": msg}] {
  msg := sprintf("%v %v", [input.review.operation, input.review.object.metadata.name])
}
"#;

    fn template(kind: &str, rego: &str) -> Value {
        json!({
            "apiVersion": "templates.gatekeeper.sh/v1",
            "kind": "ConstraintTemplate",
            "metadata": {"name": kind.to_ascii_lowercase()},
            "spec": {
                "crd": {"spec": {"names": {"kind": kind}}},
                "targets": [{"target": "admission.k8s.gatekeeper.sh", "rego": rego}]
            }
        })
    }

    fn constraint(kind: &str, name: &str, labels: Value, action: &str) -> Value {
        json!({
            "apiVersion": "constraints.gatekeeper.sh/v1beta1",
            "kind": kind,
            "metadata": {"name": name, "labels": labels},
            "spec": {"enforcementAction": action}
        })
    }

    fn pod(name: &str) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "ml"},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}
        })
    }

    fn gk(objects: &[Value]) -> Gatekeeper {
        Gatekeeper::from_objects(objects.iter(), Limits::default()).expect("policy compiles")
    }

    fn names(reviews: &[Reviewed]) -> Vec<String> {
        reviews
            .iter()
            .flat_map(|r| r.result.as_ref().expect("evaluates"))
            .map(|v| v.constraint_name.clone())
            .collect()
    }

    #[test]
    fn a_project_label_scopes_a_constraint_to_that_projects_applications() {
        let gk = gk(&[
            template("K8sAlways", ALWAYS),
            constraint("K8sAlways", "everyone", json!({}), "deny"),
            constraint(
                "K8sAlways",
                "team-a-only",
                json!({PROJECT_LABEL: "team-a"}),
                "deny",
            ),
        ]);
        let objects = [pod("p")];
        let none = BTreeMap::new();
        let a = review(&gk, Scope::Project("team-a"), &objects, &[], &none);
        assert_eq!(names(&a), vec!["everyone", "team-a-only"]);
        let b = review(&gk, Scope::Project("team-b"), &objects, &[], &none);
        assert_eq!(names(&b), vec!["everyone"]);
        // An empty `spec.project` is compared as written, as the controller always has.
        let empty = review(&gk, Scope::Project(""), &objects, &[], &none);
        assert_eq!(names(&empty), vec!["everyone"]);
        let unknown = review(&gk, Scope::Unknown, &objects, &[], &none);
        assert_eq!(names(&unknown), vec!["everyone", "team-a-only"]);
    }

    #[test]
    fn a_live_counterpart_makes_an_update_review() {
        let gk = gk(&[
            template("K8sAlways", ALWAYS),
            constraint("K8sAlways", "c", json!({}), "deny"),
        ]);
        let objects = [pod("new"), pod("old")];
        let live = [pod("old")];
        let reviews = review(&gk, Scope::Project("p"), &objects, &live, &BTreeMap::new());
        let messages: Vec<&str> = reviews
            .iter()
            .flat_map(|r| r.result.as_ref().expect("evaluates"))
            .map(|v| v.message.as_str())
            .collect();
        assert_eq!(messages, vec!["CREATE new", "UPDATE old"]);
    }

    #[test]
    fn the_namespace_object_is_given_to_the_review() {
        let mut selected = constraint("K8sAlways", "team", json!({}), "deny");
        selected["spec"]["match"] = json!({"namespaceSelector": {"matchLabels": {"team": "x"}}});
        let gk = gk(&[template("K8sAlways", ALWAYS), selected]);
        let objects = [pod("p")];
        let labelled = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "ml", "labels": {"team": "x"}}});
        let bare = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml"}});
        let with = |ns: &Value| {
            let map = BTreeMap::from([("ml", ns)]);
            names(&review(&gk, Scope::Project("p"), &objects, &[], &map))
        };
        assert_eq!(with(&labelled), vec!["team"]);
        assert!(with(&bare).is_empty());
    }

    #[test]
    fn the_verdict_splits_deny_from_warn_and_dryrun() {
        let gk = gk(&[
            template("K8sAlways", ALWAYS),
            constraint("K8sAlways", "d", json!({}), "deny"),
            constraint("K8sAlways", "w", json!({}), "warn"),
            constraint("K8sAlways", "r", json!({}), "dryrun"),
        ]);
        let objects = [pod("p")];
        let verdict = Verdict::of(review(
            &gk,
            Scope::Project("p"),
            &objects,
            &[],
            &BTreeMap::new(),
        ))
        .expect("evaluates");
        let names = |v: &[Violation]| -> Vec<String> {
            v.iter().map(|v| v.constraint_name.clone()).collect()
        };
        assert_eq!(names(&verdict.denied), vec!["d"]);
        assert_eq!(names(&verdict.warned), vec!["w", "r"]);
        assert_eq!(
            describe(&verdict.denied),
            "Pod/ml/p: [K8sAlways/d] CREATE p (deny)"
        );
    }
}
