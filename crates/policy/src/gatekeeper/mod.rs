//! Gatekeeper `ConstraintTemplate`s and constraints, evaluated the way Gatekeeper does.
//!
//! A platform team's existing Gatekeeper policies must work unchanged at CI time
//! (`mooring check`, `mooring policy verify`) and before every sync, and give the answers
//! the in-cluster Gatekeeper would give. So this module copies Gatekeeper's contract
//! rather than inventing one:
//!
//! * **Templates** (`templates.gatekeeper.sh` v1, v1beta1, v1alpha1) define a constraint
//!   kind (`spec.crd.spec.names.kind`) and its Rego (`spec.targets[0].rego` and `libs`, or
//!   the `Rego` engine entry of `spec.targets[0].code`). Each template is compiled once, as
//!   Rego v0 (Gatekeeper's syntax; `code[].source.version: v1` selects v1), into its own
//!   [`Policy`], so two templates may use the same package name. A template that does not
//!   compile is an error naming the template and the line; it is never skipped.
//! * **Constraints** (`constraints.gatekeeper.sh/*`) instantiate a kind with `spec.match`,
//!   `spec.parameters` and `spec.enforcementAction` (`deny` by default, `dryrun`, `warn`;
//!   `scoped` takes the strictest action of the admission, audit and gator enforcement
//!   points). Parameters are checked against the template's `openAPIV3Schema` (types, enums,
//!   properties, items), as the constraint CRD Gatekeeper generates would check them.
//! * **Reviews.** `input.review` is the admission request Gatekeeper builds:
//!   `{uid, kind: {group, version, kind}, name, namespace, operation, userInfo, object,
//!   oldObject, dryRun}`, and `input.parameters` is the constraint's `spec.parameters` (or
//!   `{}`). For `DELETE` the object under review is the old object, as Gatekeeper's webhook
//!   does. The template's `violation` set is collected as `{"msg", "details"}`.
//!   [`Gatekeeper::review_request`] takes an admission request as it is (gator's
//!   `AdmissionReview` cases) and passes it through unchanged. The Namespace given with a
//!   review names the namespace of an object that has none, like the request's namespace.
//! * **`spec.match`** follows Gatekeeper's matcher: `kinds` (apiGroups × kinds, `*`), `scope`
//!   (`*`, `Cluster`, `Namespaced`), `namespaces` and `excludedNamespaces` (exact, `prefix*`
//!   or `*suffix`), `labelSelector`, `namespaceSelector` (against the Namespace object; a
//!   Namespace is matched by its own labels; a namespaced object whose Namespace is unknown
//!   is an error, as in Gatekeeper), `name` (with the same globs) and `source`. An update
//!   matches when either the new or the old object matches.
//! * **`data.inventory`** has Gatekeeper's sync layout:
//!   `data.inventory.cluster[groupVersion][kind][name]` and
//!   `data.inventory.namespace[namespace][groupVersion][kind][name]`. It is converted and
//!   loaded into each template's engine once per [`Gatekeeper::set_inventory`], not per
//!   review; Namespace objects in it also serve `namespaceSelector` when a review does not
//!   carry its Namespace.
//!
//! Performance: the object under review is converted to a Rego value once per review and
//! shared by every matching constraint; templates are compiled once; only constraints whose
//! `spec.match` selects the object are evaluated.
//!
//! # Layout
//!
//! This module is the registry: [`Gatekeeper`] holds the compiled templates, the constraints
//! (enforcement action, parameters checked against the template's schema) and the
//! inventory, and [`GatekeeperError`] is the error of every step. `review` builds
//! `input.review` and evaluates a review into [`Violation`]s; `matching` is `spec.match`.

mod matching;
mod review;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use regorus::Value;
use serde_json::Value as Json;

use super::rego::{Limits, Policy, RegoError, RegoSource, RegoVersion};
use matching::{labels_of, Matcher};

pub use review::{Operation, Review, Violation};

/// Errors of loading templates and constraints and of reviewing objects.
#[derive(Debug, thiserror::Error)]
pub enum GatekeeperError {
    /// A ConstraintTemplate is malformed (no kind, no Rego, wrong apiVersion…).
    #[error("ConstraintTemplate {template}: {message}")]
    InvalidTemplate { template: String, message: String },
    /// A ConstraintTemplate's Rego does not compile.
    #[error("ConstraintTemplate {template}: {source}")]
    TemplateCompile {
        template: String,
        #[source]
        source: RegoError,
    },
    /// A constraint is malformed (bad selector, unknown enforcement action…).
    #[error("constraint {constraint}: {message}")]
    InvalidConstraint { constraint: String, message: String },
    /// A constraint's kind is defined by no loaded template.
    #[error("constraint {constraint}: no ConstraintTemplate defines the kind {kind}")]
    UnknownKind { constraint: String, kind: String },
    /// `spec.match` could not be decided (e.g. a namespaceSelector without the Namespace).
    #[error("matching {constraint} against {resource}: {message}")]
    Match {
        constraint: String,
        resource: String,
        message: String,
    },
    /// Evaluating a constraint's template failed (including the time limit).
    #[error("evaluating {constraint} on {resource}: {source}")]
    Eval {
        constraint: String,
        resource: String,
        #[source]
        source: RegoError,
    },
    /// A `violation` entry is not `{"msg": string, …}`.
    #[error("{constraint}: violation {value} has no string msg")]
    BadViolation { constraint: String, value: String },
}

/// What a constraint does with a violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EnforcementAction {
    /// Blocks (Gatekeeper's default).
    #[default]
    Deny,
    /// Reported only, by audit.
    Dryrun,
    /// Admitted with a warning.
    Warn,
}

impl EnforcementAction {
    /// Parses Gatekeeper's spelling (`deny`, `dryrun`, `warn`; case-insensitive).
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "deny" => Some(Self::Deny),
            "dryrun" => Some(Self::Dryrun),
            "warn" => Some(Self::Warn),
            _ => None,
        }
    }
}

impl fmt::Display for EnforcementAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Deny => "deny",
            Self::Dryrun => "dryrun",
            Self::Warn => "warn",
        })
    }
}

/// One constraint: an instance of a template's kind.
#[derive(Debug, Clone)]
pub struct Constraint {
    pub kind: String,
    pub name: String,
    pub enforcement_action: EnforcementAction,
    pub labels: BTreeMap<String, String>,
    /// `spec.match` as written.
    pub match_spec: Json,
    /// `spec.parameters` as written (`{}` when absent).
    pub parameters: Json,
    matcher: Matcher,
    parameters_value: Value,
}

impl Constraint {
    /// `Kind/name`, the constraint's identity in messages and reports.
    pub fn id(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }
}

#[derive(Debug, Clone)]
struct Template {
    name: String,
    /// `spec.crd.spec.validation.openAPIV3Schema`: constraint parameters are checked
    /// against it, as the constraint CRD Gatekeeper generates would.
    schema: Option<Json>,
    /// `data.<package>.violation`.
    violation_path: String,
    /// The compiled template without inventory.
    base: Policy,
    /// `base` plus the current inventory.
    policy: Policy,
}

/// Compiled templates, their constraints and the inventory. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Gatekeeper {
    limits: Limits,
    templates: BTreeMap<String, Arc<Template>>,
    constraints: Vec<Arc<Constraint>>,
    inventory: Option<Value>,
    /// Labels of the Namespace objects in the inventory, by name.
    namespaces: Arc<HashMap<String, BTreeMap<String, String>>>,
}

const TEMPLATES_GROUP: &str = "templates.gatekeeper.sh";
const CONSTRAINTS_GROUP: &str = "constraints.gatekeeper.sh";

fn group_of(obj: &Json) -> &str {
    let api_version = obj.get("apiVersion").and_then(Json::as_str).unwrap_or("");
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

fn str_at<'a>(obj: &'a Json, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(obj, |v, key| v.get(key))
        .and_then(Json::as_str)
}

fn is_template(obj: &Json) -> bool {
    group_of(obj) == TEMPLATES_GROUP
        && obj.get("kind").and_then(Json::as_str) == Some("ConstraintTemplate")
}

fn is_constraint(obj: &Json) -> bool {
    group_of(obj) == CONSTRAINTS_GROUP
}

/// Whether `obj` is a ConstraintTemplate or a constraint (`constraints.gatekeeper.sh/*`).
pub fn is_policy_object(obj: &Json) -> bool {
    is_template(obj) || is_constraint(obj)
}

impl Gatekeeper {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            templates: BTreeMap::new(),
            constraints: Vec::new(),
            inventory: None,
            namespaces: Arc::new(HashMap::new()),
        }
    }

    /// Loads the ConstraintTemplates among `objects`, then their constraints; other objects
    /// are ignored.
    pub fn from_objects<'a>(
        objects: impl IntoIterator<Item = &'a Json>,
        limits: Limits,
    ) -> Result<Self, GatekeeperError> {
        let objects: Vec<&Json> = objects.into_iter().collect();
        let mut gk = Self::new(limits);
        for obj in objects.iter().filter(|o| is_template(o)) {
            gk.add_template(obj)?;
        }
        for obj in objects.iter().filter(|o| is_constraint(o)) {
            gk.add_constraint(obj)?;
        }
        Ok(gk)
    }

    /// Compiles a ConstraintTemplate (replacing one that defines the same kind).
    pub fn add_template(&mut self, template: &Json) -> Result<(), GatekeeperError> {
        let name = str_at(template, &["metadata", "name"])
            .unwrap_or("")
            .to_string();
        let invalid = |message: String| GatekeeperError::InvalidTemplate {
            template: if name.is_empty() {
                "(unnamed)".to_string()
            } else {
                name.clone()
            },
            message,
        };
        if !is_template(template) {
            return Err(invalid(format!(
                "not a {TEMPLATES_GROUP} ConstraintTemplate (apiVersion {:?}, kind {:?})",
                template
                    .get("apiVersion")
                    .and_then(Json::as_str)
                    .unwrap_or(""),
                template.get("kind").and_then(Json::as_str).unwrap_or("")
            )));
        }
        let version = template
            .get("apiVersion")
            .and_then(Json::as_str)
            .and_then(|v| v.rsplit_once('/'))
            .map_or("", |(_, v)| v);
        if !matches!(version, "v1" | "v1beta1" | "v1alpha1") {
            return Err(invalid(format!(
                "unsupported apiVersion {TEMPLATES_GROUP}/{version}"
            )));
        }
        if name.is_empty() {
            return Err(invalid("metadata.name is missing".to_string()));
        }
        let kind = str_at(template, &["spec", "crd", "spec", "names", "kind"])
            .filter(|k| !k.is_empty())
            .ok_or_else(|| invalid("spec.crd.spec.names.kind is missing".to_string()))?;
        if kind.to_ascii_lowercase() != name {
            return Err(invalid(format!(
                "metadata.name must be the lowercase of the kind {kind:?} ({:?})",
                kind.to_ascii_lowercase()
            )));
        }
        let targets = template
            .pointer("/spec/targets")
            .and_then(Json::as_array)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| invalid("spec.targets is missing".to_string()))?;
        if targets.len() > 1 {
            return Err(invalid(format!(
                "{} targets; Gatekeeper supports exactly one",
                targets.len()
            )));
        }
        let target = &targets[0];
        let (rego, libs, rego_version) = target_rego(target).ok_or_else(|| {
            invalid("spec.targets[0] has no Rego (rego, or code[] with engine Rego)".to_string())
        })?;
        let mut sources = vec![RegoSource::new("rego", rego)];
        for (i, lib) in libs.iter().enumerate() {
            sources.push(RegoSource::new(format!("libs[{i}]"), lib.as_str()));
        }
        let base = Policy::compile(&sources, rego_version, self.limits).map_err(|source| {
            GatekeeperError::TemplateCompile {
                template: name.clone(),
                source,
            }
        })?;
        let package = base
            .packages()
            .first()
            .cloned()
            .ok_or_else(|| invalid("the rego has no package".to_string()))?;
        if !base.rule_names(&package).iter().any(|r| r == "violation") {
            return Err(invalid(format!(
                "the rego (package {}) defines no violation rule",
                package.trim_start_matches("data.")
            )));
        }
        let mut policy = base.clone();
        if let Some(inventory) = &self.inventory {
            policy.add_data_value(inventory.clone()).map_err(|source| {
                GatekeeperError::TemplateCompile {
                    template: name.clone(),
                    source,
                }
            })?;
        }
        self.templates.insert(
            kind.to_string(),
            Arc::new(Template {
                name,
                schema: template
                    .pointer("/spec/crd/spec/validation/openAPIV3Schema")
                    .filter(|s| s.is_object())
                    .cloned(),
                violation_path: format!("{package}.violation"),
                base,
                policy,
            }),
        );
        Ok(())
    }

    /// Adds a constraint (replacing one of the same kind and name). Its kind must be defined
    /// by a template added before.
    pub fn add_constraint(&mut self, constraint: &Json) -> Result<(), GatekeeperError> {
        let kind = constraint
            .get("kind")
            .and_then(Json::as_str)
            .unwrap_or("")
            .to_string();
        let name = str_at(constraint, &["metadata", "name"])
            .unwrap_or("")
            .to_string();
        let id = format!("{kind}/{name}");
        let invalid = |message: String| GatekeeperError::InvalidConstraint {
            constraint: id.clone(),
            message,
        };
        if !is_constraint(constraint) {
            return Err(invalid(format!(
                "apiVersion {:?} is not {CONSTRAINTS_GROUP}/*",
                constraint
                    .get("apiVersion")
                    .and_then(Json::as_str)
                    .unwrap_or("")
            )));
        }
        if kind.is_empty() || name.is_empty() {
            return Err(invalid("kind and metadata.name are required".to_string()));
        }
        let Some(template) = self.templates.get(&kind) else {
            return Err(GatekeeperError::UnknownKind {
                constraint: id,
                kind,
            });
        };
        let spec = constraint.get("spec").cloned().unwrap_or(Json::Null);
        let enforcement_action = enforcement_action(&spec).map_err(invalid)?;
        let match_spec = spec.get("match").cloned().unwrap_or(Json::Null);
        let matcher = Matcher::parse(&match_spec).map_err(invalid)?;
        let parameters = match spec.get("parameters") {
            None | Some(Json::Null) => Json::Object(Default::default()),
            Some(p) => p.clone(),
        };
        if let Some(schema) = &template.schema {
            let issues = mooring_engine::schema::validate_value(
                &parameters,
                schema,
                "spec.parameters",
                false,
            );
            if !issues.is_empty() {
                let text: Vec<String> = issues.iter().map(ToString::to_string).collect();
                return Err(invalid(text.join("; ")));
            }
        }
        let labels = constraint
            .pointer("/metadata/labels")
            .and_then(Json::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let parameters_value = Value::from(parameters.clone());
        let new = Arc::new(Constraint {
            kind,
            name,
            enforcement_action,
            labels,
            match_spec,
            parameters,
            matcher,
            parameters_value,
        });
        match self
            .constraints
            .iter_mut()
            .find(|c| c.kind == new.kind && c.name == new.name)
        {
            Some(slot) => *slot = new,
            None => self.constraints.push(new),
        }
        Ok(())
    }

    /// Replaces `data.inventory` with `objects` (Gatekeeper's sync layout). Objects without
    /// apiVersion, kind or name are left out, as Gatekeeper's sync does.
    pub fn set_inventory<'a>(&mut self, objects: impl IntoIterator<Item = &'a Json>) {
        let mut cluster = serde_json::Map::new();
        let mut namespaced = serde_json::Map::new();
        let mut namespaces = HashMap::new();
        for obj in objects {
            let (Some(api_version), Some(kind), Some(name)) = (
                obj.get("apiVersion").and_then(Json::as_str),
                obj.get("kind").and_then(Json::as_str),
                str_at(obj, &["metadata", "name"]),
            ) else {
                continue;
            };
            if api_version.is_empty() || kind.is_empty() || name.is_empty() {
                continue;
            }
            let namespace = str_at(obj, &["metadata", "namespace"]).unwrap_or("");
            let root = if namespace.is_empty() {
                if kind == "Namespace" && api_version == "v1" {
                    namespaces.insert(name.to_string(), labels_of(obj));
                }
                &mut cluster
            } else {
                namespaced
                    .entry(namespace.to_string())
                    .or_insert_with(|| Json::Object(Default::default()))
                    .as_object_mut()
                    .expect("namespace entries are objects")
            };
            let by_kind = root
                .entry(api_version.to_string())
                .or_insert_with(|| Json::Object(Default::default()))
                .as_object_mut()
                .expect("groupVersion entries are objects")
                .entry(kind.to_string())
                .or_insert_with(|| Json::Object(Default::default()))
                .as_object_mut()
                .expect("kind entries are objects");
            by_kind.insert(name.to_string(), obj.clone());
        }
        let inventory = Value::from(serde_json::json!({
            "inventory": {"cluster": cluster, "namespace": namespaced}
        }));
        for template in self.templates.values_mut() {
            let mut policy = template.base.clone();
            // Data is an object whose only key is `inventory`, merged into an empty data
            // document: it cannot conflict.
            if policy.add_data_value(inventory.clone()).is_ok() {
                Arc::make_mut(template).policy = policy;
            }
        }
        self.inventory = Some(inventory);
        self.namespaces = Arc::new(namespaces);
    }

    /// The loaded constraints, in the order they were added.
    pub fn constraints(&self) -> impl Iterator<Item = &Constraint> {
        self.constraints.iter().map(|c| c.as_ref())
    }

    /// Whether no constraint is loaded (templates alone review nothing).
    pub fn is_empty(&self) -> bool {
        self.constraints.is_empty()
    }

    /// The kinds defined by the loaded templates.
    pub fn template_kinds(&self) -> impl Iterator<Item = &str> {
        self.templates.keys().map(String::as_str)
    }

    /// The name of the template defining `kind`.
    pub fn template_name(&self, kind: &str) -> Option<&str> {
        self.templates.get(kind).map(|t| t.name.as_str())
    }
}

/// The Rego text, libs and syntax of a template target.
fn target_rego(target: &Json) -> Option<(String, Vec<String>, RegoVersion)> {
    let strings = |v: Option<&Json>| -> Vec<String> {
        v.and_then(Json::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    if let Some(rego) = target.get("rego").and_then(Json::as_str) {
        if !rego.trim().is_empty() {
            return Some((
                rego.to_string(),
                strings(target.get("libs")),
                RegoVersion::V0,
            ));
        }
    }
    let code = target.get("code").and_then(Json::as_array)?;
    let entry = code
        .iter()
        .find(|c| c.get("engine").and_then(Json::as_str) == Some("Rego"))?;
    let source = entry.get("source")?;
    let rego = source.get("rego").and_then(Json::as_str)?;
    let version = match source.get("version").and_then(Json::as_str) {
        Some("v1") => RegoVersion::V1,
        _ => RegoVersion::V0,
    };
    Some((rego.to_string(), strings(source.get("libs")), version))
}

fn enforcement_action(spec: &Json) -> Result<EnforcementAction, String> {
    let Some(text) = spec.get("enforcementAction").and_then(Json::as_str) else {
        return Ok(EnforcementAction::Deny);
    };
    if text.is_empty() {
        return Ok(EnforcementAction::Deny);
    }
    if text.eq_ignore_ascii_case("scoped") {
        // Gatekeeper 3.16+: per enforcement point. Mooring is both an admission-time and an
        // audit-time enforcement point; take the strictest action that applies to either.
        let mut best: Option<EnforcementAction> = None;
        for scoped in spec
            .get("scopedEnforcementActions")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            let points = scoped.get("enforcementPoints").and_then(Json::as_array);
            let applies = points.is_none_or(|points| {
                points.iter().any(|p| {
                    matches!(
                        p.get("name").and_then(Json::as_str),
                        Some(
                            "*" | "validation.gatekeeper.sh"
                                | "audit.gatekeeper.sh"
                                | "gator.gatekeeper.sh"
                        )
                    )
                })
            });
            let action = scoped
                .get("action")
                .and_then(Json::as_str)
                .and_then(EnforcementAction::parse)
                .ok_or_else(|| {
                    format!("scopedEnforcementActions entry {scoped} has no valid action")
                })?;
            if applies {
                best = Some(match (best, action) {
                    (Some(EnforcementAction::Deny), _) | (_, EnforcementAction::Deny) => {
                        EnforcementAction::Deny
                    }
                    (Some(EnforcementAction::Warn), _) | (_, EnforcementAction::Warn) => {
                        EnforcementAction::Warn
                    }
                    _ => EnforcementAction::Dryrun,
                });
            }
        }
        return Ok(best.unwrap_or(EnforcementAction::Dryrun));
    }
    EnforcementAction::parse(text).ok_or_else(|| {
        format!("enforcementAction {text:?} is not one of deny, dryrun, warn, scoped")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    pub(super) fn template(kind: &str, rego: &str) -> Json {
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

    pub(super) fn constraint(kind: &str, name: &str, spec: Json) -> Json {
        json!({
            "apiVersion": "constraints.gatekeeper.sh/v1beta1",
            "kind": kind,
            "metadata": {"name": name},
            "spec": spec
        })
    }

    pub(super) fn pod(ns: &str, name: &str, labels: Json) -> Json {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}
        })
    }

    pub(super) const ALWAYS: &str = r#"
package k8salways

violation[{"msg": msg}] {
  msg := sprintf("hit %v", [input.review.object.metadata.name])
}
"#;

    pub(super) const REQUIRED_LABELS: &str = r#"
package k8srequiredlabels

violation[{"msg": msg, "details": {"missing_labels": missing}}] {
  provided := {label | input.review.object.metadata.labels[label]}
  required := {label | label := input.parameters.labels[_]}
  missing := required - provided
  count(missing) > 0
  msg := sprintf("you must provide labels: %v", [missing])
}
"#;

    pub(super) fn gk_with(kind: &str, rego: &str, constraints: &[Json]) -> Gatekeeper {
        let mut gk = Gatekeeper::new(Limits::default());
        gk.add_template(&template(kind, rego))
            .expect("template compiles");
        for c in constraints {
            gk.add_constraint(c).expect("constraint loads");
        }
        gk
    }

    #[test]
    fn enforcement_actions_default_to_deny_and_are_validated() {
        let mut gk = gk_with("K8sAlways", ALWAYS, &[]);
        for (action, want) in [
            (json!(null), EnforcementAction::Deny),
            (json!("deny"), EnforcementAction::Deny),
            (json!("dryrun"), EnforcementAction::Dryrun),
            (json!("warn"), EnforcementAction::Warn),
        ] {
            gk.add_constraint(&constraint(
                "K8sAlways",
                "a",
                json!({"enforcementAction": action}),
            ))
            .expect("valid");
            let v = gk
                .review(&Review::create(&pod("n", "p", json!({}))))
                .expect("reviews");
            assert_eq!(v.len(), 1, "one constraint (replaced, not added)");
            assert_eq!(v[0].enforcement_action, want);
        }
        assert_eq!(EnforcementAction::Dryrun.to_string(), "dryrun");
        let err = gk
            .add_constraint(&constraint(
                "K8sAlways",
                "b",
                json!({"enforcementAction": "block"}),
            ))
            .expect_err("invalid action");
        assert!(err.to_string().contains("block"), "{err}");
        let scoped = constraint(
            "K8sAlways",
            "s",
            json!({"enforcementAction": "scoped", "scopedEnforcementActions": [
                {"action": "warn", "enforcementPoints": [{"name": "validation.gatekeeper.sh"}]},
                {"action": "deny", "enforcementPoints": [{"name": "vap.k8s.io"}]}
            ]}),
        );
        gk.add_constraint(&scoped).expect("valid");
        assert_eq!(
            gk.constraints()
                .find(|c| c.name == "s")
                .map(|c| c.enforcement_action),
            Some(EnforcementAction::Warn)
        );
    }

    #[test]
    fn constraint_of_unknown_kind_is_an_error_naming_the_kind() {
        let mut gk = Gatekeeper::new(Limits::default());
        let err = gk
            .add_constraint(&constraint("K8sNope", "x", json!({})))
            .expect_err("unknown");
        assert!(err.to_string().contains("K8sNope"), "{err}");
        assert!(gk.is_empty());
    }

    #[test]
    fn templates_that_do_not_compile_name_the_template_and_line() {
        let mut gk = Gatekeeper::new(Limits::default());
        let rego = "package k8sbroken\n\nviolation[{\"msg\": msg}] {\n  msg := \n}\n";
        let err = gk
            .add_template(&template("K8sBroken", rego))
            .expect_err("broken");
        let text = err.to_string();
        assert!(text.contains("k8sbroken"), "{text}");
        match err {
            GatekeeperError::TemplateCompile {
                source: RegoError::Compile { file, line, .. },
                ..
            } => {
                assert_eq!(file, "rego");
                assert!((3..=5).contains(&line), "line {line}");
            }
            other => panic!("unexpected {other:?}"),
        }
        // An unsafe variable is a compile error too, not a skipped template.
        let err = gk
            .add_template(&template(
                "K8sUnsafe",
                "package k8sunsafe\nviolation[{\"msg\": m}] { m == x }\n",
            ))
            .expect_err("unsafe");
        assert!(err.to_string().contains("k8sunsafe"), "{err}");
        // So is a call to a function nothing defines (OPA rejects it at compile time).
        let err = gk
            .add_template(&template(
                "K8sTypo",
                "package k8stypo\n\nviolation[{\"msg\": m}] {\n  re_mach(\"a\", \"a\")\n  m := \"x\"\n}\n",
            ))
            .expect_err("undefined function");
        assert!(err.to_string().contains("k8stypo"), "{err}");
        assert!(err.to_string().contains("rego:4"), "{err}");
        assert!(err.to_string().contains("re_mach"), "{err}");
        // A library that does not compile is reported under its own name.
        let mut t = template(
            "K8sLib",
            "package k8slib\nviolation[{\"msg\": \"x\"}] { data.lib.f }\n",
        );
        t["spec"]["targets"][0]["libs"] = json!(["package lib\n\nf {\n  1 +\n}\n"]);
        let err = gk.add_template(&t).expect_err("bad lib");
        assert!(err.to_string().contains("libs[0]"), "{err}");
    }

    #[test]
    fn malformed_templates_are_errors() {
        let mut gk = Gatekeeper::new(Limits::default());
        let no_violation = template(
            "K8sNoViolation",
            "package k8snoviolation\ndeny[m] { m := 1 }\n",
        );
        assert!(gk
            .add_template(&no_violation)
            .expect_err("no violation")
            .to_string()
            .contains("violation"));
        let mut wrong_name = template("K8sX", ALWAYS);
        wrong_name["metadata"]["name"] = json!("other");
        assert!(gk.add_template(&wrong_name).is_err());
        let mut no_kind = template("K8sX", ALWAYS);
        no_kind["spec"]["crd"] = json!({});
        assert!(gk.add_template(&no_kind).is_err());
        let mut alpha = template("K8sAlways", ALWAYS);
        alpha["apiVersion"] = json!("templates.gatekeeper.sh/v1alpha1");
        gk.add_template(&alpha).expect("v1alpha1 is accepted");
        let mut beta = template("K8sAlways", ALWAYS);
        beta["apiVersion"] = json!("templates.gatekeeper.sh/v1beta1");
        gk.add_template(&beta).expect("v1beta1 is accepted");
    }

    #[test]
    fn code_entries_with_the_rego_engine_are_used() {
        let t = json!({
            "apiVersion": "templates.gatekeeper.sh/v1",
            "kind": "ConstraintTemplate",
            "metadata": {"name": "k8scode"},
            "spec": {
                "crd": {"spec": {"names": {"kind": "K8sCode"}}},
                "targets": [{"target": "admission.k8s.gatekeeper.sh", "code": [
                    {"engine": "K8sNativeValidation", "source": {"validations": []}},
                    {"engine": "Rego", "source": {
                        "rego": "package k8scode\nimport data.lib.names\nviolation[{\"msg\": names.msg}] { true }\n",
                        "libs": ["package lib.names\nmsg := \"from lib\"\n"]
                    }}
                ]}]
            }
        });
        let mut gk = Gatekeeper::new(Limits::default());
        gk.add_template(&t).expect("compiles");
        gk.add_constraint(&constraint("K8sCode", "c", json!({})))
            .expect("loads");
        let v = gk
            .review(&Review::create(&pod("n", "p", json!({}))))
            .expect("reviews");
        assert_eq!(v[0].message, "from lib");
    }

    #[test]
    fn from_objects_loads_templates_before_constraints_and_ignores_the_rest() {
        let objects = [
            constraint("K8sAlways", "later", json!({})),
            pod("n", "p", json!({})),
            template("K8sAlways", ALWAYS),
        ];
        assert!(is_policy_object(&objects[0]));
        assert!(!is_policy_object(&objects[1]));
        assert!(is_policy_object(&objects[2]));
        let gk = Gatekeeper::from_objects(&objects, Limits::default()).expect("loads");
        assert_eq!(gk.constraints().count(), 1);
        assert_eq!(gk.template_name("K8sAlways"), Some("k8salways"));
        fn assert_traits<T: Clone + Send + Sync>(_: &T) {}
        assert_traits(&gk);
    }

    const UNIQUE_HOST: &str = r#"
package k8suniqueingresshost

identical(obj, review) {
  obj.metadata.namespace == review.object.metadata.namespace
  obj.metadata.name == review.object.metadata.name
}

violation[{"msg": msg}] {
  input.review.kind.kind == "Ingress"
  re_match("^(extensions|networking.k8s.io)$", input.review.kind.group)
  host := input.review.object.spec.rules[_].host
  other := data.inventory.namespace[ns][otherapiversion]["Ingress"][name]
  re_match("^(extensions|networking.k8s.io)/.+$", otherapiversion)
  other.spec.rules[_].host == host
  not identical(other, input.review)
  msg := sprintf("ingress host conflicts with an existing ingress <%v> in <%v>", [host, ns])
}
"#;

    fn ingress(ns: &str, name: &str, host: &str) -> Json {
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
               "metadata": {"name": name, "namespace": ns},
               "spec": {"rules": [{"host": host}]}})
    }

    #[test]
    fn inventory_has_gatekeepers_sync_layout() {
        let mut gk = gk_with(
            "K8sUniqueIngressHost",
            UNIQUE_HOST,
            &[constraint("K8sUniqueIngressHost", "unique", json!({}))],
        );
        let existing = ingress("serving", "model-a", "models.example.com");
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "serving"}});
        let new = ingress("other", "model-b", "models.example.com");
        assert!(gk
            .review(&Review::create(&new))
            .expect("reviews")
            .is_empty());
        gk.set_inventory([&existing, &ns]);
        let v = gk.review(&Review::create(&new)).expect("reviews");
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].message.contains("<serving>"), "{}", v[0].message);
        // The same object already in the inventory does not conflict with itself.
        assert!(gk
            .review(&Review::create(&existing))
            .expect("reviews")
            .is_empty());
        // A template added after the inventory sees it too.
        gk.add_template(&template("K8sCountNs", r#"
package k8scountns
violation[{"msg": msg}] {
  n := count(data.inventory.cluster["v1"]["Namespace"])
  msg := sprintf("%v namespaces, ingress %v", [n, count(data.inventory.namespace.serving["networking.k8s.io/v1"].Ingress)])
}
"#)).expect("compiles");
        gk.add_constraint(&constraint("K8sCountNs", "c", json!({})))
            .expect("loads");
        let v = gk.review(&Review::create(&new)).expect("reviews");
        assert!(
            v.iter().any(|v| v.message == "1 namespaces, ingress 1"),
            "{v:?}"
        );
        // Replacing the inventory drops what was there.
        gk.set_inventory(std::iter::empty());
        let v = gk.review(&Review::create(&new)).expect("reviews");
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn v0_syntax_and_builtin_errors_are_undefined_like_opa() {
        let rego = r#"
package k8sv0
import future.keywords.in

violation[{"msg": msg}] {
  c := input.review.object.spec.containers[_]
  not startswith(c.image, "registry.example.com/")
  msg := sprintf("image %v", [c.image])
}

# to_number fails on "lots": OPA makes the expression undefined, so no violation here.
violation[{"msg": "too many"}] {
  to_number(input.review.object.metadata.annotations.replicas) > 3
}

violation[{"msg": "in works"}] {
  "x" in input.parameters.flags
}
"#;
        let gk = gk_with(
            "K8sV0",
            rego,
            &[constraint(
                "K8sV0",
                "c",
                json!({"parameters": {"flags": ["x"]}}),
            )],
        );
        let mut p = pod("n", "p", json!({}));
        p["metadata"]["annotations"] = json!({"replicas": "lots"});
        let mut msgs: Vec<String> = gk
            .review(&Review::create(&p))
            .expect("reviews")
            .into_iter()
            .map(|v| v.message)
            .collect();
        msgs.sort();
        assert_eq!(msgs, vec!["image nginx", "in works"]);
    }

    /// The three places regorus and OPA disagree, in a Gatekeeper template.
    #[test]
    fn regorus_opa_differences_give_opas_answer_in_templates() {
        let rego = r#"
package k8scompat

# 1. A reference followed by a newline and "(": two expressions in OPA.
violation[{"msg": msg}] {
  name := input.review.object.metadata.name
  (count(name) > 3)
  msg := "newline paren"
}

# 2. Chained bodies: two rules with one head (an "or").
violation[{"msg": "chained"}] {
  input.review.object.metadata.labels.a == "1"
} {
  input.review.object.metadata.labels.b == "1"
}

# 3. `not f(x)`: OPA binds the argument before the `not` (`__local0__ = x; not f(__local0__)`,
#    open-policy-agent/opa#1877), so an undefined argument makes the body undefined, while a
#    defined argument whose call is undefined makes `not` succeed.
has_gpu(c) { c.resources.limits["nvidia.com/gpu"] }

violation[{"msg": "not undefined"}] {
  not has_gpu(input.review.object.spec.missing)
}

violation[{"msg": "no gpu"}] {
  not has_gpu(input.review.object.spec)
}
"#;
        let gk = gk_with(
            "K8sCompat",
            rego,
            &[constraint("K8sCompat", "c", json!({}))],
        );
        let msgs = |labels: Json| -> Vec<String> {
            let mut m: Vec<String> = gk
                .review(&Review::create(&pod("n", "long-name", labels)))
                .expect("reviews")
                .into_iter()
                .map(|v| v.message)
                .collect();
            m.sort();
            m
        };
        assert_eq!(
            msgs(json!({"b": "1"})),
            vec!["chained", "newline paren", "no gpu"]
        );
        assert_eq!(
            msgs(json!({"a": "1"})),
            vec!["chained", "newline paren", "no gpu"]
        );
        assert_eq!(msgs(json!({})), vec!["newline paren", "no gpu"]);
    }

    #[test]
    fn runaway_templates_hit_the_time_limit() {
        let rego = r#"
package k8sslow
violation[{"msg": msg}] {
  some i, j, k
  numbers.range(1, 400)[i]
  numbers.range(1, 400)[j]
  numbers.range(1, 400)[k]
  msg := sprintf("%v", [i + j + k])
}
"#;
        let mut gk = Gatekeeper::new(Limits {
            eval_timeout: Duration::from_millis(50),
            ..Limits::default()
        });
        gk.add_template(&template("K8sSlow", rego))
            .expect("compiles");
        gk.add_constraint(&constraint("K8sSlow", "c", json!({})))
            .expect("loads");
        let err = gk
            .review(&Review::create(&pod("n", "p", json!({}))))
            .expect_err("times out");
        assert!(
            matches!(
                err,
                GatekeeperError::Eval {
                    source: RegoError::TimeLimit { .. },
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("K8sSlow/c"), "{err}");
        assert!(err.to_string().contains("time limit"), "{err}");
    }

    #[test]
    fn constraint_parameters_are_checked_against_the_template_schema() {
        let mut t = template("K8sAlways", ALWAYS);
        t["spec"]["crd"]["spec"]["validation"] = json!({"openAPIV3Schema": {
            "type": "object",
            "properties": {
                "repos": {"type": "array", "items": {"type": "string"}},
                "max": {"x-kubernetes-int-or-string": true},
                "mode": {"type": "string", "enum": ["strict", "lax"]},
                "limits": {"type": "object", "additionalProperties": {"type": "integer"}}
            }
        }});
        let mut gk = Gatekeeper::new(Limits::default());
        gk.add_template(&t).expect("compiles");
        let good = json!({"repos": ["a/"], "max": "2", "mode": "lax", "limits": {"gpu": 8}, "other": true});
        gk.add_constraint(&constraint("K8sAlways", "ok", json!({"parameters": good})))
            .expect("valid parameters");
        for bad in [
            json!({"repos": "a/"}),
            json!({"repos": [1]}),
            json!({"mode": "loose"}),
            json!({"limits": {"gpu": "eight"}}),
            json!({"max": true}),
        ] {
            let err = gk
                .add_constraint(&constraint(
                    "K8sAlways",
                    "bad",
                    json!({"parameters": bad.clone()}),
                ))
                .expect_err("invalid parameters");
            assert!(
                matches!(err, GatekeeperError::InvalidConstraint { .. }),
                "{bad}: {err:?}"
            );
            assert!(err.to_string().contains("spec.parameters"), "{err}");
        }
    }

    #[test]
    fn rego_v1_templates_compile_by_import_or_declared_version() {
        let mut gk = Gatekeeper::new(Limits::default());
        let with_import = "package k8sv1import\nimport rego.v1\nviolation contains {\"msg\": \"v1\"} if { input.review.object.kind == \"Pod\" }\n";
        gk.add_template(&template("K8sV1Import", with_import))
            .expect("import rego.v1 compiles");
        let declared = json!({
            "apiVersion": "templates.gatekeeper.sh/v1",
            "kind": "ConstraintTemplate",
            "metadata": {"name": "k8sv1declared"},
            "spec": {
                "crd": {"spec": {"names": {"kind": "K8sV1Declared"}}},
                "targets": [{"target": "admission.k8s.gatekeeper.sh", "code": [{"engine": "Rego", "source": {
                    "version": "v1",
                    "rego": "package k8sv1declared\nviolation contains {\"msg\": \"declared\"} if { input.review.object.kind == \"Pod\" }\n"
                }}]}]
            }
        });
        gk.add_template(&declared).expect("declared v1 compiles");
        gk.add_constraint(&constraint("K8sV1Import", "a", json!({})))
            .expect("loads");
        gk.add_constraint(&constraint("K8sV1Declared", "b", json!({})))
            .expect("loads");
        let mut msgs: Vec<String> = gk
            .review(&Review::create(&pod("n", "p", json!({}))))
            .expect("reviews")
            .into_iter()
            .map(|v| v.message)
            .collect();
        msgs.sort();
        assert_eq!(msgs, vec!["declared", "v1"]);
    }

    #[test]
    fn oversized_template_rego_is_refused_with_the_template_name() {
        let mut gk = Gatekeeper::new(Limits {
            max_policy_bytes: 1024,
            ..Limits::default()
        });
        let big = format!(
            "package k8sbig\n{}violation[{{\"msg\": \"x\"}}] {{ true }}\n",
            "# pad\n".repeat(400)
        );
        let err = gk
            .add_template(&template("K8sBig", &big))
            .expect_err("too big");
        assert!(err.to_string().contains("k8sbig"), "{err}");
        assert!(err.to_string().contains("limit"), "{err}");
    }
}
