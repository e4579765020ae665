//! Reviewing objects: building `input.review` the way Gatekeeper's admission webhook does,
//! evaluating every constraint whose `spec.match` selects the object, and collecting the
//! template's `violation` set as [`Violation`]s.
//!
//! Apart from the registry ([`super::Gatekeeper`]) so the one place that decides what a
//! template sees as `input` can be read on its own.

use std::collections::BTreeMap;

use mooring_core::ResourceKey;
use regorus::Value;
use serde_json::Value as Json;

use super::matching::{labels_of, Target};
use super::{str_at, EnforcementAction, Gatekeeper, GatekeeperError};
use crate::rego::from_value;

/// The admission operation under review.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Operation {
    #[default]
    Create,
    Update,
    Delete,
}

impl Operation {
    /// The admission spelling (`CREATE`, `UPDATE`, `DELETE`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
        }
    }

    /// Parses the admission spelling (`CONNECT` and others are `None`).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "CREATE" => Some(Self::Create),
            "UPDATE" => Some(Self::Update),
            "DELETE" => Some(Self::Delete),
            _ => None,
        }
    }
}

/// One object to review, like an admission request.
#[derive(Debug, Clone, Copy)]
pub struct Review<'a> {
    pub operation: Operation,
    /// The object (for `Delete`, the object being deleted; `old_object` wins if both given).
    pub object: &'a Json,
    pub old_object: Option<&'a Json>,
    /// The Namespace object of the object's namespace, for `namespaceSelector`. When absent,
    /// a Namespace from the inventory is used.
    pub namespace: Option<&'a Json>,
    pub user_info: Option<&'a Json>,
}

impl<'a> Review<'a> {
    /// A `CREATE` review of `object`, with no Namespace or user.
    pub fn create(object: &'a Json) -> Self {
        Self {
            operation: Operation::Create,
            object,
            old_object: None,
            namespace: None,
            user_info: None,
        }
    }
}

/// One violation of one constraint by one object.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub constraint_kind: String,
    pub constraint_name: String,
    pub enforcement_action: EnforcementAction,
    pub message: String,
    /// The violation's `details` (`{}` when the template gives none).
    pub details: Json,
    pub resource: ResourceKey,
}

impl Gatekeeper {
    /// Reviews one object against every constraint whose `spec.match` selects it.
    pub fn review(&self, review: &Review) -> Result<Vec<Violation>, GatekeeperError> {
        let (object, old_object) = match review.operation {
            Operation::Delete => {
                let deleted = review.old_object.unwrap_or(review.object);
                (deleted, Some(deleted))
            }
            _ => (review.object, review.old_object),
        };
        self.run(object, old_object, review.namespace, &|target| {
            review_input(review, object, old_object, target)
        })
    }

    /// Reviews an admission request exactly as given (the `request` of an
    /// `AdmissionReview`): `input.review` is the request itself, except that for `DELETE`
    /// its `object` is the `oldObject`, as Gatekeeper's webhook does. An update matches when
    /// either object matches.
    pub fn review_request(
        &self,
        request: &Json,
        namespace: Option<&Json>,
    ) -> Result<Vec<Violation>, GatekeeperError> {
        let present = |key: &str| request.get(key).filter(|v| v.is_object());
        let is_delete = request.get("operation").and_then(Json::as_str) == Some("DELETE");
        let old_object = present("oldObject");
        let object = if is_delete {
            old_object.or(present("object"))
        } else {
            present("object").or(old_object)
        };
        let Some(object) = object else {
            return Err(GatekeeperError::Match {
                constraint: "(any)".to_string(),
                resource: "(admission request)".to_string(),
                message: "the request has neither object nor oldObject".to_string(),
            });
        };
        let mut request = request.clone();
        if is_delete {
            if let Some(map) = request.as_object_mut() {
                map.insert("object".to_string(), object.clone());
            }
        }
        self.run(object, old_object, namespace, &|_| json_value(&request))
    }

    fn run(
        &self,
        object: &Json,
        old_object: Option<&Json>,
        namespace: Option<&Json>,
        make_review: &dyn Fn(&Target) -> Value,
    ) -> Result<Vec<Violation>, GatekeeperError> {
        // The Namespace given with the review names the namespace of an object that does
        // not carry one, as the admission request's namespace does in Gatekeeper.
        let ns_name = namespace.and_then(|ns| str_at(ns, &["metadata", "name"]));
        let with_ns = |mut t: Target| {
            if t.namespace.is_empty() && !t.is_namespace() {
                if let Some(name) = ns_name {
                    t.namespace = name.to_string();
                }
            }
            t
        };
        let target = with_ns(Target::of(object));
        let old_target = old_object.map(|o| with_ns(Target::of(o)));
        let ns_labels = self.namespace_labels(namespace, &target);
        let mut resource = ResourceKey::of(object).unwrap_or_else(|| {
            ResourceKey::new(&target.group, &target.kind, &target.namespace, &target.name)
        });
        if resource.namespace.is_empty() {
            resource.namespace = target.namespace.clone();
        }

        let mut review_value: Option<Value> = None;
        let mut violations = Vec::new();
        for constraint in &self.constraints {
            let matched = constraint
                .matcher
                .matches(&target, ns_labels.as_ref())
                .and_then(|m| match (&old_target, m) {
                    (Some(old), false) => constraint.matcher.matches(old, ns_labels.as_ref()),
                    _ => Ok(m),
                })
                .map_err(|message| GatekeeperError::Match {
                    constraint: constraint.id(),
                    resource: resource.to_string(),
                    message,
                })?;
            if !matched {
                continue;
            }
            let Some(template) = self.templates.get(&constraint.kind) else {
                continue;
            };
            let review_value = review_value
                .get_or_insert_with(|| make_review(&target))
                .clone();
            let mut input = BTreeMap::new();
            input.insert(Value::from("review"), review_value);
            input.insert(
                Value::from("parameters"),
                constraint.parameters_value.clone(),
            );
            let result = template
                .policy
                .eval_rule(&template.violation_path, Value::from(input))
                .map_err(|source| GatekeeperError::Eval {
                    constraint: constraint.id(),
                    resource: resource.to_string(),
                    source,
                })?;
            let Some(result) = result else { continue };
            let Json::Array(entries) = from_value(&result) else {
                continue;
            };
            for entry in entries {
                let Some(message) = entry.get("msg").and_then(Json::as_str) else {
                    return Err(GatekeeperError::BadViolation {
                        constraint: constraint.id(),
                        value: entry.to_string(),
                    });
                };
                violations.push(Violation {
                    constraint_kind: constraint.kind.clone(),
                    constraint_name: constraint.name.clone(),
                    enforcement_action: constraint.enforcement_action,
                    message: message.to_string(),
                    details: entry
                        .get("details")
                        .cloned()
                        .unwrap_or_else(|| Json::Object(Default::default())),
                    resource: resource.clone(),
                });
            }
        }
        Ok(violations)
    }

    fn namespace_labels(
        &self,
        namespace: Option<&Json>,
        target: &Target,
    ) -> Option<BTreeMap<String, String>> {
        if let Some(ns) = namespace {
            return Some(labels_of(ns));
        }
        if target.namespace.is_empty() {
            return None;
        }
        self.namespaces.get(&target.namespace).cloned()
    }
}

/// Builds `input.review` as Gatekeeper's webhook does (an admission request).
fn review_input(
    review: &Review,
    object: &Json,
    old_object: Option<&Json>,
    target: &Target,
) -> Value {
    let mut r = BTreeMap::new();
    let s = |text: &str| Value::from(text);
    let mut kind = BTreeMap::new();
    kind.insert(s("group"), s(&target.group));
    kind.insert(s("version"), s(&target.version));
    kind.insert(s("kind"), s(&target.kind));
    r.insert(s("uid"), s(""));
    r.insert(s("kind"), Value::from(kind));
    if !target.name.is_empty() {
        r.insert(s("name"), s(&target.name));
    }
    if !target.namespace.is_empty() {
        r.insert(s("namespace"), s(&target.namespace));
    }
    r.insert(s("operation"), s(review.operation.as_str()));
    r.insert(
        s("userInfo"),
        review
            .user_info
            .map(json_value)
            .unwrap_or_else(Value::new_object),
    );
    r.insert(s("object"), json_value(object));
    r.insert(
        s("oldObject"),
        old_object.map(json_value).unwrap_or(Value::Null),
    );
    r.insert(s("dryRun"), Value::from(false));
    Value::from(r)
}

fn json_value(json: &Json) -> Value {
    Value::from(json.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gatekeeper::tests::*;
    use serde_json::json;

    #[test]
    fn required_labels_violation_has_message_details_and_resource() {
        let gk = gk_with(
            "K8sRequiredLabels",
            REQUIRED_LABELS,
            &[constraint(
                "K8sRequiredLabels",
                "must-have-owner",
                json!({"parameters": {"labels": ["owner"]}}),
            )],
        );
        let bad = pod("ml", "trainer", json!({"app": "x"}));
        let v = gk.review(&Review::create(&bad)).expect("reviews");
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].constraint_kind, "K8sRequiredLabels");
        assert_eq!(v[0].constraint_name, "must-have-owner");
        assert_eq!(v[0].enforcement_action, EnforcementAction::Deny);
        assert_eq!(v[0].message, r#"you must provide labels: {"owner"}"#);
        assert_eq!(v[0].details, json!({"missing_labels": ["owner"]}));
        assert_eq!(v[0].resource, ResourceKey::new("", "Pod", "ml", "trainer"));
        let good = pod("ml", "trainer", json!({"owner": "me"}));
        assert!(gk
            .review(&Review::create(&good))
            .expect("reviews")
            .is_empty());
    }

    #[test]
    fn input_review_is_built_like_gatekeepers_admission_request() {
        let rego = r#"
package k8sshape
violation[{"msg": msg}] {
  r := input.review
  msg := json.marshal([r.kind, r.name, r.namespace, r.operation, r.userInfo, r.uid, r.dryRun, r.oldObject, input.parameters])
}
"#;
        let gk = gk_with("K8sShape", rego, &[constraint("K8sShape", "s", json!({}))]);
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "n"}});
        let user = json!({"username": "alice"});
        let review = Review {
            user_info: Some(&user),
            ..Review::create(&deploy)
        };
        let v = gk.review(&review).expect("reviews");
        let got: Json = serde_json::from_str(&v[0].message).expect("json");
        assert_eq!(
            got,
            json!([{"group": "apps", "version": "v1", "kind": "Deployment"}, "d", "n", "CREATE", {"username": "alice"}, "", false, null, {}])
        );
    }

    #[test]
    fn delete_reviews_the_old_object_and_update_matches_either_object() {
        let rego = r#"
package k8sop
violation[{"msg": msg}] {
  msg := sprintf("%v %v", [input.review.operation, input.review.object.metadata.name])
}
"#;
        let gk = gk_with(
            "K8sOp",
            rego,
            &[constraint(
                "K8sOp",
                "c",
                json!({"match": {"labelSelector": {"matchLabels": {"tier": "gpu"}}}}),
            )],
        );
        let old = pod("ns", "old", json!({"tier": "gpu"}));
        let new = pod("ns", "new", json!({"tier": "cpu"}));
        let delete = Review {
            operation: Operation::Delete,
            object: &new,
            old_object: Some(&old),
            namespace: None,
            user_info: None,
        };
        let v = gk.review(&delete).expect("reviews");
        assert_eq!(v[0].message, "DELETE old");
        assert_eq!(v[0].resource.name, "old");
        // An update matches when the old object matches, even if the new one does not.
        let update = Review {
            operation: Operation::Update,
            ..delete
        };
        assert_eq!(
            gk.review(&update).expect("reviews")[0].message,
            "UPDATE new"
        );
        // A create of the new object alone does not match.
        assert!(gk
            .review(&Review::create(&new))
            .expect("reviews")
            .is_empty());
    }

    #[test]
    fn the_reviews_namespace_names_an_object_without_one() {
        let gk = gk_with(
            "K8sAlways",
            ALWAYS,
            &[constraint(
                "K8sAlways",
                "c",
                json!({"match": {"namespaces": ["ml-*"], "scope": "Namespaced"}}),
            )],
        );
        let mut p = pod("", "p", json!({}));
        p["metadata"]
            .as_object_mut()
            .expect("object")
            .remove("namespace");
        assert!(gk.review(&Review::create(&p)).expect("reviews").is_empty());
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml-train"}});
        let review = Review {
            namespace: Some(&ns),
            ..Review::create(&p)
        };
        let v = gk.review(&review).expect("reviews");
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].resource.namespace, "ml-train");
    }

    #[test]
    fn violations_without_a_string_msg_are_errors() {
        let gk = gk_with(
            "K8sNoMsg",
            "package k8snomsg\nviolation[{\"message\": \"x\"}] { true }\n",
            &[constraint("K8sNoMsg", "c", json!({}))],
        );
        assert!(gk
            .review(&Review::create(&pod("n", "p", json!({}))))
            .is_err());
    }

    #[test]
    fn admission_requests_are_reviewed_verbatim() {
        let rego = r#"
package k8sreq
violation[{"msg": msg}] {
  msg := sprintf("%v %v %v %v", [input.review.uid, input.review.operation, input.review.requestKind.version, input.review.object.metadata.name])
}
"#;
        let gk = gk_with("K8sReq", rego, &[constraint("K8sReq", "c", json!({}))]);
        let request = json!({
            "uid": "abc", "operation": "DELETE", "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "object": null, "oldObject": pod("n", "gone", json!({}))
        });
        let v = gk.review_request(&request, None).expect("reviews");
        assert_eq!(v[0].message, "abc DELETE v1 gone");
        assert!(gk
            .review_request(&json!({"operation": "CREATE"}), None)
            .is_err());
    }
}
