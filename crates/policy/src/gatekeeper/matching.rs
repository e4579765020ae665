//! Gatekeeper's `spec.match`: which objects a constraint applies to (`kinds`, `scope`,
//! `namespaces` and `excludedNamespaces`, `labelSelector`, `namespaceSelector`, `name`,
//! `source`), with Gatekeeper's `prefix*`/`*suffix` wildcards.
//!
//! A constraint's `spec.match` is parsed once, when the constraint is added, into a
//! [`Matcher`]; each review extracts a [`Target`] once and asks every matcher. Label
//! selectors are `mooring_core::selector` (apimachinery semantics), shared with the API
//! server and ApplicationSets.

use std::collections::BTreeMap;

use mooring_core::selector::LabelSelector as Selector;
use serde_json::Value as Json;

use super::str_at;

pub(super) fn labels_of(obj: &Json) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Json::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// What `spec.match` looks at, extracted once per review.
#[derive(Debug)]
pub(super) struct Target {
    pub(super) group: String,
    pub(super) version: String,
    pub(super) kind: String,
    pub(super) namespace: String,
    pub(super) name: String,
    pub(super) labels: BTreeMap<String, String>,
}

impl Target {
    pub(super) fn of(obj: &Json) -> Self {
        let api_version = obj.get("apiVersion").and_then(Json::as_str).unwrap_or("");
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        Self {
            group: group.to_string(),
            version: version.to_string(),
            kind: obj
                .get("kind")
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_string(),
            namespace: str_at(obj, &["metadata", "namespace"])
                .unwrap_or("")
                .to_string(),
            name: str_at(obj, &["metadata", "name"]).unwrap_or("").to_string(),
            labels: labels_of(obj),
        }
    }

    pub(super) fn is_namespace(&self) -> bool {
        self.kind == "Namespace" && self.group.is_empty()
    }
}

/// A parsed `spec.match`.
#[derive(Debug, Clone, Default)]
pub(super) struct Matcher {
    /// `(apiGroups, kinds)` pairs; empty = every kind.
    kinds: Vec<(Vec<String>, Vec<String>)>,
    scope: Scope,
    namespaces: Vec<String>,
    excluded_namespaces: Vec<String>,
    label_selector: Option<Selector>,
    namespace_selector: Option<Selector>,
    name: String,
    /// `source: Generated` never matches an object Mooring reviews (those are originals).
    generated_only: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Scope {
    #[default]
    All,
    Cluster,
    Namespaced,
}

fn string_list(v: Option<&Json>, what: &str) -> Result<Vec<String>, String> {
    match v {
        None | Some(Json::Null) => Ok(Vec::new()),
        Some(Json::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("{what}: {i} is not a string"))
            })
            .collect(),
        Some(other) => Err(format!("{what}: {other} is not a list")),
    }
}

impl Matcher {
    pub(super) fn parse(spec: &Json) -> Result<Self, String> {
        if spec.is_null() {
            return Ok(Self::default());
        }
        if !spec.is_object() {
            return Err(format!("spec.match: {spec} is not an object"));
        }
        let mut kinds = Vec::new();
        for entry in spec
            .get("kinds")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            kinds.push((
                string_list(entry.get("apiGroups"), "spec.match.kinds[].apiGroups")?,
                string_list(entry.get("kinds"), "spec.match.kinds[].kinds")?,
            ));
        }
        let scope = match spec.get("scope").and_then(Json::as_str) {
            Some("Cluster") => Scope::Cluster,
            Some("Namespaced") => Scope::Namespaced,
            // `*`, absent, and (as in Gatekeeper) anything else.
            _ => Scope::All,
        };
        let selector = |key: &str| -> Result<Option<Selector>, String> {
            match spec.get(key) {
                None | Some(Json::Null) => Ok(None),
                // One label-selector implementation (apimachinery's
                // `LabelSelectorAsSelector`), shared with the API server and ApplicationSets.
                Some(s) => Selector::from_label_selector_json(s)
                    .map(Some)
                    .map_err(|m| format!("spec.match.{key}: {m}")),
            }
        };
        Ok(Self {
            kinds,
            scope,
            namespaces: string_list(spec.get("namespaces"), "spec.match.namespaces")?,
            excluded_namespaces: string_list(
                spec.get("excludedNamespaces"),
                "spec.match.excludedNamespaces",
            )?,
            label_selector: selector("labelSelector")?,
            namespace_selector: selector("namespaceSelector")?,
            name: spec
                .get("name")
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_string(),
            generated_only: spec.get("source").and_then(Json::as_str) == Some("Generated"),
        })
    }

    /// Gatekeeper's `match.Matches`: every criterion must hold.
    pub(super) fn matches(
        &self,
        t: &Target,
        ns_labels: Option<&BTreeMap<String, String>>,
    ) -> Result<bool, String> {
        if self.generated_only {
            return Ok(false);
        }
        // kinds
        if !self.kinds.is_empty()
            && !self.kinds.iter().any(|(groups, kinds)| {
                let kind_ok = kinds.is_empty() || kinds.iter().any(|k| k == "*" || *k == t.kind);
                let group_ok =
                    groups.is_empty() || groups.iter().any(|g| g == "*" || *g == t.group);
                kind_ok && group_ok
            })
        {
            return Ok(false);
        }
        // scope
        let has_namespace = !t.namespace.is_empty() || ns_labels.is_some();
        let ok = match self.scope {
            Scope::All => true,
            Scope::Cluster => t.is_namespace() || !has_namespace,
            Scope::Namespaced => !t.is_namespace() && has_namespace,
        };
        if !ok {
            return Ok(false);
        }
        // namespaces / excludedNamespaces: a Namespace is in itself.
        let namespace = if t.is_namespace() {
            &t.name
        } else {
            &t.namespace
        };
        if !self.namespaces.is_empty()
            && !namespace.is_empty()
            && !self.namespaces.iter().any(|p| wildcard(p, namespace))
        {
            return Ok(false);
        }
        if !namespace.is_empty()
            && self
                .excluded_namespaces
                .iter()
                .any(|p| wildcard(p, namespace))
        {
            return Ok(false);
        }
        if let Some(selector) = &self.label_selector {
            if !selector.matches(&t.labels) {
                return Ok(false);
            }
        }
        if let Some(selector) = &self.namespace_selector {
            if t.is_namespace() {
                if !selector.matches(&t.labels) {
                    return Ok(false);
                }
            } else if !t.namespace.is_empty() || ns_labels.is_some() {
                let Some(labels) = ns_labels else {
                    return Err(format!(
                        "namespaceSelector needs the Namespace {:?}, which is not known (add it to the inventory or the review)",
                        t.namespace
                    ));
                };
                if !selector.matches(labels) {
                    return Ok(false);
                }
            }
        }
        if !self.name.is_empty() && !wildcard(&self.name, &t.name) {
            return Ok(false);
        }
        Ok(true)
    }
}

/// Gatekeeper's `util.Wildcard`: `prefix*`, `*suffix` or an exact name.
fn wildcard(pattern: &str, text: &str) -> bool {
    if let Some(prefix) = pattern.strip_suffix('*') {
        text.starts_with(prefix)
    } else if let Some(suffix) = pattern.strip_prefix('*') {
        text.ends_with(suffix)
    } else {
        pattern == text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gatekeeper::tests::*;
    use crate::gatekeeper::Review;
    use serde_json::json;

    /// Every `spec.match` field, table-driven: (match, object, namespace object, matches?).
    #[test]
    fn match_semantics() {
        let ns_prod = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod", "labels": {"env": "prod"}}});
        let namespace_obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system", "labels": {"env": "sys"}}});
        let deploy = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "train-gpu", "namespace": "prod", "labels": {"app": "train", "tier": "gpu"}}});
        let crb = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "admin"}});
        let p = pod("ml-dev", "p", json!({"app": "serve"}));
        let cases: Vec<(&str, Json, &Json, Option<&Json>, bool)> = vec![
            ("no match", json!({}), &deploy, None, true),
            (
                "kinds hit",
                json!({"kinds": [{"apiGroups": ["apps"], "kinds": ["Deployment"]}]}),
                &deploy,
                None,
                true,
            ),
            (
                "kinds wrong group",
                json!({"kinds": [{"apiGroups": [""], "kinds": ["Deployment"]}]}),
                &deploy,
                None,
                false,
            ),
            (
                "kinds wrong kind",
                json!({"kinds": [{"apiGroups": ["apps"], "kinds": ["StatefulSet"]}]}),
                &deploy,
                None,
                false,
            ),
            (
                "kinds star group",
                json!({"kinds": [{"apiGroups": ["*"], "kinds": ["Deployment"]}]}),
                &deploy,
                None,
                true,
            ),
            (
                "kinds star kind",
                json!({"kinds": [{"apiGroups": ["apps"], "kinds": ["*"]}]}),
                &deploy,
                None,
                true,
            ),
            (
                "kinds empty lists",
                json!({"kinds": [{}]}),
                &deploy,
                None,
                true,
            ),
            (
                "kinds any entry",
                json!({"kinds": [{"apiGroups": [""], "kinds": ["Pod"]}, {"apiGroups": ["apps"], "kinds": ["Deployment"]}]}),
                &deploy,
                None,
                true,
            ),
            (
                "core group",
                json!({"kinds": [{"apiGroups": [""], "kinds": ["Pod"]}]}),
                &p,
                None,
                true,
            ),
            ("scope * ", json!({"scope": "*"}), &crb, None, true),
            (
                "scope Cluster on cluster obj",
                json!({"scope": "Cluster"}),
                &crb,
                None,
                true,
            ),
            (
                "scope Cluster on namespaced",
                json!({"scope": "Cluster"}),
                &deploy,
                None,
                false,
            ),
            (
                "scope Cluster on Namespace",
                json!({"scope": "Cluster"}),
                &namespace_obj,
                None,
                true,
            ),
            (
                "scope Namespaced on namespaced",
                json!({"scope": "Namespaced"}),
                &deploy,
                None,
                true,
            ),
            (
                "scope Namespaced on cluster obj",
                json!({"scope": "Namespaced"}),
                &crb,
                None,
                false,
            ),
            (
                "scope Namespaced on Namespace",
                json!({"scope": "Namespaced"}),
                &namespace_obj,
                None,
                false,
            ),
            (
                "scope typo is *",
                json!({"scope": "cluster"}),
                &deploy,
                None,
                true,
            ),
            (
                "namespaces exact",
                json!({"namespaces": ["prod"]}),
                &deploy,
                None,
                true,
            ),
            (
                "namespaces miss",
                json!({"namespaces": ["dev"]}),
                &deploy,
                None,
                false,
            ),
            (
                "namespaces prefix glob",
                json!({"namespaces": ["ml-*"]}),
                &p,
                None,
                true,
            ),
            (
                "namespaces suffix glob",
                json!({"namespaces": ["*-dev"]}),
                &p,
                None,
                true,
            ),
            (
                "namespaces glob miss",
                json!({"namespaces": ["ml-*"]}),
                &deploy,
                None,
                false,
            ),
            (
                "namespaces on cluster obj",
                json!({"namespaces": ["prod"]}),
                &crb,
                None,
                true,
            ),
            (
                "namespaces on Namespace uses its name",
                json!({"namespaces": ["kube-*"]}),
                &namespace_obj,
                None,
                true,
            ),
            (
                "excluded exact",
                json!({"excludedNamespaces": ["prod"]}),
                &deploy,
                None,
                false,
            ),
            (
                "excluded suffix glob",
                json!({"excludedNamespaces": ["*-dev"]}),
                &p,
                None,
                false,
            ),
            (
                "excluded miss",
                json!({"excludedNamespaces": ["kube-*"]}),
                &deploy,
                None,
                true,
            ),
            (
                "excluded Namespace itself",
                json!({"excludedNamespaces": ["kube-*"]}),
                &namespace_obj,
                None,
                false,
            ),
            (
                "excluded cluster obj",
                json!({"excludedNamespaces": ["*"]}),
                &crb,
                None,
                true,
            ),
            (
                "labelSelector matchLabels",
                json!({"labelSelector": {"matchLabels": {"tier": "gpu"}}}),
                &deploy,
                None,
                true,
            ),
            (
                "labelSelector matchLabels miss",
                json!({"labelSelector": {"matchLabels": {"tier": "cpu"}}}),
                &deploy,
                None,
                false,
            ),
            (
                "labelSelector In",
                json!({"labelSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gpu", "tpu"]}]}}),
                &deploy,
                None,
                true,
            ),
            (
                "labelSelector In absent key",
                json!({"labelSelector": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}}),
                &deploy,
                None,
                false,
            ),
            (
                "labelSelector NotIn",
                json!({"labelSelector": {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["gpu"]}]}}),
                &deploy,
                None,
                false,
            ),
            (
                "labelSelector NotIn absent key",
                json!({"labelSelector": {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}}),
                &deploy,
                None,
                true,
            ),
            (
                "labelSelector Exists",
                json!({"labelSelector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]}}),
                &deploy,
                None,
                true,
            ),
            (
                "labelSelector DoesNotExist",
                json!({"labelSelector": {"matchExpressions": [{"key": "app", "operator": "DoesNotExist"}]}}),
                &deploy,
                None,
                false,
            ),
            (
                "labelSelector AND",
                json!({"labelSelector": {"matchLabels": {"app": "train"}, "matchExpressions": [{"key": "tier", "operator": "In", "values": ["cpu"]}]}}),
                &deploy,
                None,
                false,
            ),
            (
                "labelSelector empty matches all",
                json!({"labelSelector": {}}),
                &deploy,
                None,
                true,
            ),
            (
                "namespaceSelector hit",
                json!({"namespaceSelector": {"matchLabels": {"env": "prod"}}}),
                &deploy,
                Some(&ns_prod),
                true,
            ),
            (
                "namespaceSelector miss",
                json!({"namespaceSelector": {"matchLabels": {"env": "dev"}}}),
                &deploy,
                Some(&ns_prod),
                false,
            ),
            (
                "namespaceSelector on Namespace uses own labels",
                json!({"namespaceSelector": {"matchLabels": {"env": "sys"}}}),
                &namespace_obj,
                Some(&ns_prod),
                true,
            ),
            (
                "namespaceSelector on cluster obj",
                json!({"namespaceSelector": {"matchLabels": {"env": "prod"}}}),
                &crb,
                None,
                true,
            ),
            (
                "namespaceSelector Exists",
                json!({"namespaceSelector": {"matchExpressions": [{"key": "env", "operator": "Exists"}]}}),
                &deploy,
                Some(&ns_prod),
                true,
            ),
            (
                "name exact",
                json!({"name": "train-gpu"}),
                &deploy,
                None,
                true,
            ),
            (
                "name prefix",
                json!({"name": "train-*"}),
                &deploy,
                None,
                true,
            ),
            ("name suffix", json!({"name": "*-gpu"}), &deploy, None, true),
            (
                "name miss",
                json!({"name": "serve-*"}),
                &deploy,
                None,
                false,
            ),
            (
                "source Generated",
                json!({"source": "Generated"}),
                &deploy,
                None,
                false,
            ),
            ("source All", json!({"source": "All"}), &deploy, None, true),
            (
                "all together",
                json!({"kinds": [{"apiGroups": ["apps"], "kinds": ["Deployment"]}], "scope": "Namespaced", "namespaces": ["prod"], "excludedNamespaces": ["kube-*"], "labelSelector": {"matchLabels": {"app": "train"}}, "namespaceSelector": {"matchLabels": {"env": "prod"}}, "name": "train-*"}),
                &deploy,
                Some(&ns_prod),
                true,
            ),
        ];
        for (what, spec, obj, ns, want) in cases {
            let gk = gk_with(
                "K8sAlways",
                ALWAYS,
                &[constraint("K8sAlways", "c", json!({"match": spec}))],
            );
            let review = Review {
                namespace: ns,
                ..Review::create(obj)
            };
            let got = gk.review(&review).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(!got.is_empty(), want, "{what}");
        }
    }

    #[test]
    fn namespace_selector_needs_the_namespace_from_review_or_inventory() {
        let mut gk = gk_with(
            "K8sAlways",
            ALWAYS,
            &[constraint(
                "K8sAlways",
                "c",
                json!({"match": {"namespaceSelector": {"matchLabels": {"env": "prod"}}}}),
            )],
        );
        let p = pod("prod", "p", json!({}));
        let err = gk
            .review(&Review::create(&p))
            .expect_err("no namespace known");
        assert!(err.to_string().contains("prod"), "{err}");
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "prod", "labels": {"env": "prod"}}});
        gk.set_inventory([&ns]);
        assert_eq!(gk.review(&Review::create(&p)).expect("reviews").len(), 1);
    }

    #[test]
    fn invalid_selectors_are_constraint_errors() {
        let mut gk = gk_with("K8sAlways", ALWAYS, &[]);
        for spec in [
            json!({"labelSelector": {"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]}}),
            json!({"labelSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}),
            json!({"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}}),
            json!({"namespaces": "prod"}),
        ] {
            let err = gk
                .add_constraint(&constraint(
                    "K8sAlways",
                    "c",
                    json!({"match": spec.clone()}),
                ))
                .expect_err("invalid");
            assert!(err.to_string().contains("K8sAlways/c"), "{err}");
        }
    }

    #[test]
    fn wildcards() {
        for (pattern, text, want) in [
            ("kube-*", "kube-system", true),
            ("kube-*", "kube", false),
            ("*-system", "gatekeeper-system", true),
            ("*", "anything", true),
            ("prod", "prod", true),
            ("prod", "production", false),
        ] {
            assert_eq!(wildcard(pattern, text), want, "{pattern} {text}");
        }
    }
}
