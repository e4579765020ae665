//! Resource scope: whether a kind is namespaced or cluster-scoped when no API server can
//! say so.
//!
//! The controller asks the destination cluster first (discovery); this module answers when
//! the cluster cannot — a kind whose CRD arrives in the same sync, or `mooring check`,
//! which has no cluster at all. Both must agree, or an object's key (with or without a
//! namespace) would differ between CI, the plan and the apply, so the built-in table and
//! the reading of a CRD's `spec.scope` live here, once.
//!
//! The table follows the Kubernetes API (`kubectl api-resources --namespaced=false` on a
//! current cluster), matched by API group *and* kind: a CRD may reuse a built-in kind's
//! name in its own group (`ClusterRole.example.com` is whatever its CRD says).

use serde_json::Value;
use std::collections::BTreeMap;

/// Built-in cluster-scoped kinds as `(API group, kind)`; the core group is `""`.
pub const CLUSTER_SCOPED_KINDS: &[(&str, &str)] = &[
    ("", "Namespace"),
    ("", "Node"),
    ("", "PersistentVolume"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("storage.k8s.io", "StorageClass"),
    ("storage.k8s.io", "CSIDriver"),
    ("storage.k8s.io", "CSINode"),
    ("storage.k8s.io", "VolumeAttachment"),
    ("storage.k8s.io", "VolumeAttributesClass"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("node.k8s.io", "RuntimeClass"),
    ("networking.k8s.io", "IngressClass"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("apiregistration.k8s.io", "APIService"),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
    ),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicyBinding",
    ),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
    ("resource.k8s.io", "DeviceClass"),
    // Gatekeeper's templates; its constraints are a whole group, see
    // [`GATEKEEPER_CONSTRAINTS_GROUP`].
    ("templates.gatekeeper.sh", "ConstraintTemplate"),
];

/// Gatekeeper creates one cluster-scoped CRD per ConstraintTemplate in this group; the
/// CRD is never among the user's manifests, so the whole group counts as cluster-scoped.
pub const GATEKEEPER_CONSTRAINTS_GROUP: &str = "constraints.gatekeeper.sh";

/// The API group of an `apiVersion` (`apps/v1` → `apps`, `v1` → `""`).
pub fn api_group(api_version: &str) -> &str {
    api_version.rsplit_once('/').map_or("", |(g, _)| g)
}

/// Whether a kind is cluster-scoped by the built-in table (or is a Gatekeeper constraint).
pub fn is_cluster_scoped_kind(group: &str, kind: &str) -> bool {
    group == GATEKEEPER_CONSTRAINTS_GROUP
        || CLUSTER_SCOPED_KINDS
            .iter()
            .any(|(g, k)| *g == group && *k == kind)
}

/// Whether a CustomResourceDefinition defines a namespaced kind: `spec.scope` is anything
/// but `Cluster` (the API server requires `Cluster` or `Namespaced`; Mooring does not
/// guess at a missing or misspelt one, it keeps the namespace).
pub fn crd_namespaced(crd: &Value) -> bool {
    crd.pointer("/spec/scope").and_then(Value::as_str) != Some("Cluster")
}

/// The `(group, kind)` a CustomResourceDefinition defines and whether it is namespaced;
/// `None` for any other object or a CRD without `spec.group`/`spec.names.kind`.
pub fn crd_scope(obj: &Value) -> Option<((String, String), bool)> {
    if obj.get("kind").and_then(Value::as_str) != Some("CustomResourceDefinition") {
        return None;
    }
    let group = obj.pointer("/spec/group")?.as_str()?.to_string();
    let kind = obj.pointer("/spec/names/kind")?.as_str()?.to_string();
    Some(((group, kind), crd_namespaced(obj)))
}

/// The scopes of the kinds the CRDs among `objects` define, by `(group, kind)`.
pub fn crd_scopes<'a>(
    objects: impl IntoIterator<Item = &'a Value>,
) -> BTreeMap<(String, String), bool> {
    objects.into_iter().filter_map(crd_scope).collect()
}

/// Whether a kind is namespaced when the cluster cannot say: a CRD among the same
/// manifests (`crds`, from [`crd_scopes`]) decides, then the built-in table; any other
/// kind is taken as namespaced.
pub fn namespaced_without_discovery(
    group: &str,
    kind: &str,
    crds: &BTreeMap<(String, String), bool>,
) -> bool {
    match crds.get(&(group.to_string(), kind.to_string())) {
        Some(namespaced) => *namespaced,
        None => !is_cluster_scoped_kind(group, kind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn built_in_table_matches_group_and_kind() {
        for (group, kind) in [
            ("", "Namespace"),
            ("", "PersistentVolume"),
            ("", "Node"),
            ("rbac.authorization.k8s.io", "ClusterRole"),
            ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
            ("storage.k8s.io", "StorageClass"),
            ("scheduling.k8s.io", "PriorityClass"),
            ("apiextensions.k8s.io", "CustomResourceDefinition"),
            (
                "admissionregistration.k8s.io",
                "ValidatingWebhookConfiguration",
            ),
            ("templates.gatekeeper.sh", "ConstraintTemplate"),
            ("constraints.gatekeeper.sh", "K8sRequiredLabels"),
        ] {
            assert!(is_cluster_scoped_kind(group, kind), "{group}/{kind}");
        }
        for (group, kind) in [
            ("", "ConfigMap"),
            ("apps", "Deployment"),
            ("rbac.authorization.k8s.io", "Role"),
            ("rbac.authorization.k8s.io", "RoleBinding"),
            ("", "PersistentVolumeClaim"),
            ("argoproj.io", "Rollout"),
            // The same kind name in another group is another kind.
            ("example.com", "ClusterRole"),
            ("example.com", "Namespace"),
            ("example.com", "ConstraintTemplate"),
        ] {
            assert!(!is_cluster_scoped_kind(group, kind), "{group}/{kind}");
        }
    }

    #[test]
    fn api_groups() {
        assert_eq!(api_group("v1"), "");
        assert_eq!(api_group("apps/v1"), "apps");
        assert_eq!(
            api_group("rbac.authorization.k8s.io/v1"),
            "rbac.authorization.k8s.io"
        );
        assert_eq!(api_group(""), "");
    }

    #[test]
    fn crd_scope_reads_spec_scope() {
        let crd = |scope: Value| {
            json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                   "metadata": {"name": "gpus.example.com"},
                   "spec": {"group": "example.com", "names": {"kind": "GPU", "plural": "gpus"}, "scope": scope}})
        };
        let key = ("example.com".to_string(), "GPU".to_string());
        assert_eq!(
            crd_scope(&crd(json!("Cluster"))),
            Some((key.clone(), false))
        );
        assert_eq!(
            crd_scope(&crd(json!("Namespaced"))),
            Some((key.clone(), true))
        );
        // Only the exact `Cluster` makes a kind cluster-scoped.
        assert_eq!(crd_scope(&crd(json!("cluster"))), Some((key.clone(), true)));
        assert_eq!(crd_scope(&crd(Value::Null)), Some((key, true)));
        assert_eq!(
            crd_scope(&json!({"kind": "ConfigMap", "spec": {"scope": "Cluster"}})),
            None
        );
        assert_eq!(
            crd_scope(&json!({"kind": "CustomResourceDefinition", "spec": {"scope": "Cluster"}})),
            None
        );
        assert!(!crd_namespaced(&crd(json!("Cluster"))));
    }

    #[test]
    fn without_discovery_a_crd_decides_then_the_table() {
        let objects = [
            json!({"kind": "CustomResourceDefinition",
                   "spec": {"group": "example.com", "names": {"kind": "GPU"}, "scope": "Cluster"}}),
            json!({"kind": "CustomResourceDefinition",
                   "spec": {"group": "example.com", "names": {"kind": "Job"}, "scope": "Namespaced"}}),
            json!({"kind": "ConfigMap", "metadata": {"name": "x"}}),
        ];
        let crds = crd_scopes(&objects);
        assert_eq!(crds.len(), 2);
        assert!(!namespaced_without_discovery("example.com", "GPU", &crds));
        assert!(namespaced_without_discovery("example.com", "Job", &crds));
        assert!(!namespaced_without_discovery("", "PersistentVolume", &crds));
        assert!(!namespaced_without_discovery(
            "storage.k8s.io",
            "StorageClass",
            &crds
        ));
        assert!(namespaced_without_discovery("", "ConfigMap", &crds));
        assert!(namespaced_without_discovery(
            "example.com",
            "Unknown",
            &crds
        ));
        assert!(!namespaced_without_discovery(
            "constraints.gatekeeper.sh",
            "K8sAllowedRepos",
            &crds
        ));
    }
}
