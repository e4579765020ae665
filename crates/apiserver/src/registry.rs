//! The resource registry: which kinds this cluster serves, under which group, version and
//! plural, with which scope and subresources.
//!
//! Kubernetes clients find everything through discovery, so the registry is the single
//! answer to "what does `/apis/apps/v1/namespaces/x/deployments` mean". Built-in kinds are
//! declared once in [`builtin_types`]; custom resources join (and leave) the registry when a
//! `CustomResourceDefinition` is written, which is how a real API server behaves: a CRD is
//! served the moment it is created, and its objects are removed when it is deleted.

use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// Where a CRD's scale subresource finds its replica counts.
#[derive(Debug, Clone, PartialEq)]
pub struct ScaleSpec {
    pub spec_replicas_path: String,
    pub status_replicas_path: String,
    pub label_selector_path: Option<String>,
}

/// A printer column for `kubectl get` tables (`additionalPrinterColumns` for CRDs).
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterColumn {
    pub name: String,
    pub type_: String,
    pub json_path: String,
}

/// One servable resource: a (group, version, plural) with its kind and behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Serves `/status`; the main endpoint then ignores status and the status endpoint
    /// ignores everything but status, as the real strategies do.
    pub status_subresource: bool,
    pub scale: Option<ScaleSpec>,
    /// Whether writes to the object's spec bump `metadata.generation`.
    pub has_generation: bool,
    pub printer_columns: Vec<PrinterColumn>,
    /// Present when the type comes from a CustomResourceDefinition (its name).
    pub crd: Option<String>,
    /// A custom resource version's `openAPIV3Schema` (`None` for built-in kinds, whose
    /// schemas come from [`crate::openapi`], and for CRDs without one).
    pub schema: Option<Arc<Value>>,
    /// The verbs discovery lists and the server serves ([`ALL_VERBS`] for stored kinds;
    /// [`CREATE_ONLY`] for reviews, which answer a question and store nothing).
    pub verbs: &'static [&'static str],
}

/// Every verb of a stored resource, in discovery order.
pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// The verbs of a review (`SubjectAccessReview`, `TokenReview` …): POST only, nothing stored.
pub const CREATE_ONLY: &[&str] = &["create"];

/// Whether a group's kinds are reviews (create-only, never stored; [`crate::authz`]).
pub fn is_review(group: &str) -> bool {
    group == "authorization.k8s.io" || group == "authentication.k8s.io"
}

impl ResourceType {
    /// `group/version`, or just `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The storage key shared by every version of the resource: `group/plural`.
    pub fn storage_key(&self) -> String {
        // events.k8s.io/v1 Events are the core Events seen through another schema: one
        // storage, as in Kubernetes ([`crate::convert::to_events_v1`]).
        if self.is_events_v1() {
            return "/events".into();
        }
        format!("{}/{}", self.group, self.plural)
    }

    /// Whether this is `events.k8s.io` Events (stored as core `v1` Events).
    pub fn is_events_v1(&self) -> bool {
        self.group == "events.k8s.io" && self.plural == "events"
    }

    /// `plural.group` (or `plural` for core), as Kubernetes names resources in errors.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }
}

/// Error from turning a CustomResourceDefinition into resource types.
#[derive(Debug, thiserror::Error)]
pub enum CrdError {
    #[error("spec.{0}: Required value")]
    Missing(&'static str),
    #[error("metadata.name: Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group ({expected:?})")]
    NameMismatch { name: String, expected: String },
}

/// Build the resource types a CRD object serves (one per served version).
pub fn types_from_crd(crd: &Value) -> Result<Vec<ResourceType>, CrdError> {
    let spec = crd.get("spec").ok_or(CrdError::Missing("spec"))?;
    let group = str_at(spec, &["group"]).ok_or(CrdError::Missing("group"))?;
    let names = spec.get("names").ok_or(CrdError::Missing("names"))?;
    let plural = str_at(names, &["plural"]).ok_or(CrdError::Missing("names.plural"))?;
    let kind = str_at(names, &["kind"]).ok_or(CrdError::Missing("names.kind"))?;
    let singular = str_at(names, &["singular"])
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let namespaced = mooring_core::scope::crd_namespaced(crd);
    let crd_name = str_at(crd, &["metadata", "name"]).unwrap_or_default();
    let expected = format!("{plural}.{group}");
    if crd_name != expected {
        return Err(CrdError::NameMismatch {
            name: crd_name.to_string(),
            expected,
        });
    }
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    };
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .ok_or(CrdError::Missing("versions"))?;
    let mut out = Vec::new();
    for v in versions {
        if v.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let Some(version) = str_at(v, &["name"]) else {
            return Err(CrdError::Missing("versions[].name"));
        };
        let sub = v.get("subresources").or_else(|| spec.get("subresources"));
        let scale = sub.and_then(|s| s.get("scale")).map(|s| ScaleSpec {
            spec_replicas_path: str_at(s, &["specReplicasPath"])
                .unwrap_or(".spec.replicas")
                .to_string(),
            status_replicas_path: str_at(s, &["statusReplicasPath"])
                .unwrap_or(".status.replicas")
                .to_string(),
            label_selector_path: str_at(s, &["labelSelectorPath"]).map(str::to_string),
        });
        let printer_columns = v
            .get("additionalPrinterColumns")
            .and_then(Value::as_array)
            .map(|cols| {
                cols.iter()
                    .filter_map(|c| {
                        Some(PrinterColumn {
                            name: str_at(c, &["name"])?.to_string(),
                            type_: str_at(c, &["type"]).unwrap_or("string").to_string(),
                            json_path: str_at(c, &["jsonPath"])?.to_string(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(ResourceType {
            group: group.to_string(),
            version: version.to_string(),
            kind: kind.to_string(),
            plural: plural.to_string(),
            singular: singular.clone(),
            namespaced,
            short_names: strings(names.get("shortNames")),
            categories: strings(names.get("categories")),
            status_subresource: sub.and_then(|s| s.get("status")).is_some(),
            scale,
            has_generation: true,
            printer_columns,
            crd: Some(crd_name.to_string()),
            schema: v
                .pointer("/schema/openAPIV3Schema")
                .or_else(|| spec.pointer("/validation/openAPIV3Schema"))
                .cloned()
                .map(Arc::new),
            verbs: ALL_VERBS,
        });
    }
    Ok(out)
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    cur.as_str()
}

/// Declarative table of the built-in kinds: (group, version, kind, plural, namespaced,
/// short names, status subresource, scale subresource, generation).
#[allow(clippy::type_complexity)]
const BUILTINS: &[(&str, &str, &str, &str, bool, &[&str], bool, bool, bool)] = &[
    (
        "",
        "v1",
        "Namespace",
        "namespaces",
        false,
        &["ns"],
        true,
        false,
        false,
    ),
    (
        "",
        "v1",
        "Node",
        "nodes",
        false,
        &["no"],
        true,
        false,
        false,
    ),
    (
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        true,
        &["cm"],
        false,
        false,
        false,
    ),
    (
        "",
        "v1",
        "Secret",
        "secrets",
        true,
        &[],
        false,
        false,
        false,
    ),
    (
        "",
        "v1",
        "Service",
        "services",
        true,
        &["svc"],
        true,
        false,
        false,
    ),
    (
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        true,
        &["sa"],
        false,
        false,
        false,
    ),
    ("", "v1", "Pod", "pods", true, &["po"], true, false, false),
    (
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
        &["pvc"],
        true,
        false,
        false,
    ),
    (
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        false,
        &["pv"],
        true,
        false,
        false,
    ),
    (
        "",
        "v1",
        "Endpoints",
        "endpoints",
        true,
        &["ep"],
        false,
        false,
        false,
    ),
    (
        "",
        "v1",
        "Event",
        "events",
        true,
        &["ev"],
        false,
        false,
        false,
    ),
    (
        "events.k8s.io",
        "v1",
        "Event",
        "events",
        true,
        &["ev"],
        false,
        false,
        false,
    ),
    (
        "",
        "v1",
        "LimitRange",
        "limitranges",
        true,
        &["limits"],
        false,
        false,
        false,
    ),
    (
        "",
        "v1",
        "ResourceQuota",
        "resourcequotas",
        true,
        &["quota"],
        true,
        false,
        false,
    ),
    (
        "apps",
        "v1",
        "Deployment",
        "deployments",
        true,
        &["deploy"],
        true,
        true,
        true,
    ),
    (
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        true,
        &["rs"],
        true,
        true,
        true,
    ),
    (
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        true,
        &["sts"],
        true,
        true,
        true,
    ),
    (
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        true,
        &["ds"],
        true,
        false,
        true,
    ),
    (
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        true,
        &[],
        false,
        false,
        false,
    ),
    ("batch", "v1", "Job", "jobs", true, &[], true, false, true),
    (
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        true,
        &["cj"],
        true,
        false,
        true,
    ),
    (
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        true,
        &["ing"],
        true,
        false,
        true,
    ),
    (
        "networking.k8s.io",
        "v1",
        "IngressClass",
        "ingressclasses",
        false,
        &[],
        false,
        false,
        true,
    ),
    (
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
        &["netpol"],
        false,
        false,
        true,
    ),
    (
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        true,
        &[],
        false,
        false,
        true,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        true,
        &[],
        false,
        false,
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
        &[],
        false,
        false,
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
        &[],
        false,
        false,
        false,
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
        &[],
        false,
        false,
        false,
    ),
    (
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        &["crd", "crds"],
        true,
        false,
        true,
    ),
    (
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
        &["pdb"],
        true,
        false,
        true,
    ),
    (
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
        &["hpa"],
        true,
        false,
        false,
    ),
    (
        "autoscaling",
        "v1",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
        &["hpa"],
        true,
        false,
        false,
    ),
    (
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        true,
        &[],
        false,
        false,
        false,
    ),
    (
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        false,
        &["sc"],
        false,
        false,
        false,
    ),
    (
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        false,
        &["pc"],
        false,
        false,
        false,
    ),
    (
        "apiregistration.k8s.io",
        "v1",
        "APIService",
        "apiservices",
        false,
        &[],
        true,
        false,
        false,
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        false,
        &[],
        false,
        false,
        true,
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        false,
        &[],
        false,
        false,
        true,
    ),
    // Reviews (crate::authz): create-only questions, never stored.
    (
        "authorization.k8s.io",
        "v1",
        "SelfSubjectAccessReview",
        "selfsubjectaccessreviews",
        false,
        &[],
        false,
        false,
        false,
    ),
    (
        "authorization.k8s.io",
        "v1",
        "SelfSubjectRulesReview",
        "selfsubjectrulesreviews",
        false,
        &[],
        false,
        false,
        false,
    ),
    (
        "authorization.k8s.io",
        "v1",
        "SubjectAccessReview",
        "subjectaccessreviews",
        false,
        &[],
        false,
        false,
        false,
    ),
    (
        "authorization.k8s.io",
        "v1",
        "LocalSubjectAccessReview",
        "localsubjectaccessreviews",
        true,
        &[],
        false,
        false,
        false,
    ),
    (
        "authentication.k8s.io",
        "v1",
        "SelfSubjectReview",
        "selfsubjectreviews",
        false,
        &[],
        false,
        false,
        false,
    ),
    (
        "authentication.k8s.io",
        "v1",
        "TokenReview",
        "tokenreviews",
        false,
        &[],
        false,
        false,
        false,
    ),
];

/// The built-in resource types, in discovery order.
pub fn builtin_types() -> Vec<ResourceType> {
    BUILTINS
        .iter()
        .map(
            |&(group, version, kind, plural, namespaced, short, status, scale, generation)| {
                ResourceType {
                    group: group.to_string(),
                    version: version.to_string(),
                    kind: kind.to_string(),
                    plural: plural.to_string(),
                    singular: kind.to_lowercase(),
                    namespaced,
                    short_names: short.iter().map(|s| s.to_string()).collect(),
                    categories: if matches!(
                        kind,
                        "Pod"
                            | "Service"
                            | "Deployment"
                            | "ReplicaSet"
                            | "StatefulSet"
                            | "DaemonSet"
                            | "Job"
                            | "CronJob"
                    ) {
                        vec!["all".to_string()]
                    } else {
                        vec![]
                    },
                    status_subresource: status,
                    scale: scale.then(|| ScaleSpec {
                        spec_replicas_path: ".spec.replicas".into(),
                        status_replicas_path: ".status.replicas".into(),
                        label_selector_path: Some(".status.selector".into()),
                    }),
                    has_generation: generation,
                    printer_columns: vec![],
                    crd: None,
                    schema: None,
                    verbs: if is_review(group) {
                        CREATE_ONLY
                    } else {
                        ALL_VERBS
                    },
                }
            },
        )
        .collect()
}

/// The live set of served resource types. Cheap to clone (shared).
type TypeMap = BTreeMap<(String, String, String), Arc<ResourceType>>;

#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<RwLock<TypeMap>>,
}

impl Registry {
    pub fn with_builtins() -> Self {
        let r = Registry::default();
        for t in builtin_types() {
            r.insert(t);
        }
        r
    }

    fn insert(&self, t: ResourceType) {
        let key = (t.group.clone(), t.version.clone(), t.plural.clone());
        self.write().insert(key, Arc::new(t));
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, TypeMap> {
        self.inner
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, TypeMap> {
        self.inner
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Look up a resource by group, version and plural.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.read()
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
            .cloned()
    }

    /// Look up by apiVersion and kind, as found in a manifest.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        let (group, version) = split_api_version(api_version);
        self.read()
            .values()
            .find(|t| t.group == group && t.version == version && t.kind == kind)
            .cloned()
    }

    /// Any served version of a group/kind (the storage is version-independent).
    pub fn by_group_kind(&self, group: &str, kind: &str) -> Option<Arc<ResourceType>> {
        self.read()
            .values()
            .find(|t| t.group == group && t.kind == kind)
            .cloned()
    }

    pub fn all(&self) -> Vec<Arc<ResourceType>> {
        self.read().values().cloned().collect()
    }

    /// Replace the types served for one CRD (empty `types` removes them).
    pub fn set_crd_types(&self, crd_name: &str, types: Vec<ResourceType>) {
        let mut map = self.write();
        map.retain(|_, t| t.crd.as_deref() != Some(crd_name));
        for t in types {
            map.insert(
                (t.group.clone(), t.version.clone(), t.plural.clone()),
                Arc::new(t),
            );
        }
    }

    /// Groups with their versions, in the order discovery lists them (preferred first).
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for t in self.read().values() {
            if t.group.is_empty() {
                continue;
            }
            match out.iter_mut().find(|(g, _)| *g == t.group) {
                Some((_, vs)) => {
                    if !vs.contains(&t.version) {
                        vs.push(t.version.clone());
                    }
                }
                None => out.push((t.group.clone(), vec![t.version.clone()])),
            }
        }
        for (_, vs) in &mut out {
            vs.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        }
        out
    }
}

/// Split `apps/v1` into (`apps`, `v1`) and `v1` into (``, `v1`).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// Kubernetes version priority: GA > beta > alpha, then by number.
fn version_priority(v: &str) -> (u8, u32, u32) {
    let rest = v.strip_prefix('v').unwrap_or(v);
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let major = digits.parse().unwrap_or(0);
    let tail = &rest[digits.len()..];
    if tail.is_empty() {
        (3, major, 0)
    } else if let Some(n) = tail.strip_prefix("beta") {
        (2, major, n.parse().unwrap_or(0))
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (1, major, n.parse().unwrap_or(0))
    } else {
        (0, major, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn builtins_have_right_scope() {
        let r = Registry::with_builtins();
        assert!(!r.get("", "v1", "namespaces").expect("ns").namespaced);
        assert!(
            r.get("apps", "v1", "deployments")
                .expect("deploy")
                .namespaced
        );
        assert!(
            !r.get("rbac.authorization.k8s.io", "v1", "clusterroles")
                .expect("cr")
                .namespaced
        );
        assert_eq!(
            r.by_kind("batch/v1", "Job").expect("job").plural,
            "jobs".to_string()
        );
    }

    #[test]
    fn crd_types_and_removal() {
        let crd = json!({
            "metadata": {"name": "rollouts.argoproj.io"},
            "spec": {"group": "argoproj.io", "scope": "Namespaced",
                "names": {"plural": "rollouts", "kind": "Rollout", "shortNames": ["ro"]},
                "versions": [{"name": "v1alpha1", "served": true, "storage": true,
                    "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}}}]}
        });
        let types = types_from_crd(&crd).expect("valid crd");
        assert_eq!(types.len(), 1);
        assert!(types[0].status_subresource);
        assert!(types[0].scale.is_some());
        let r = Registry::with_builtins();
        r.set_crd_types("rollouts.argoproj.io", types);
        assert!(r.get("argoproj.io", "v1alpha1", "rollouts").is_some());
        r.set_crd_types("rollouts.argoproj.io", vec![]);
        assert!(r.get("argoproj.io", "v1alpha1", "rollouts").is_none());
    }

    #[test]
    fn crd_name_must_match() {
        let crd = json!({"metadata": {"name": "wrong"}, "spec": {"group": "a.io",
            "names": {"plural": "bs", "kind": "B"}, "versions": [{"name": "v1", "served": true}]}});
        assert!(matches!(
            types_from_crd(&crd),
            Err(CrdError::NameMismatch { .. })
        ));
    }

    #[test]
    fn version_order() {
        let mut v = vec!["v1beta1", "v2", "v1alpha1", "v1"];
        v.sort_by_key(|v| std::cmp::Reverse(version_priority(v)));
        assert_eq!(v, vec!["v2", "v1", "v1beta1", "v1alpha1"]);
    }
}
