//! Merge-key knowledge for the list (and a few map) fields of built-in types.
//!
//! Both strategic merge patch and server-side apply need to know, for every
//! list in an object, whether it is *associative* (items identified by one or
//! more key fields), a *set* of primitives, or *atomic* (replaced as a whole).
//! Kubernetes derives this from Go struct tags (`patchMergeKey`,
//! `listType`, `listMapKeys`) compiled into its OpenAPI schema. We do not ship
//! that schema, so this module hard-codes the handful of lists that matter in
//! practice, keyed on the field name plus its parent path. Keeping it in one
//! place guarantees the two patch engines never disagree about identity.
//!
//! Anything not listed is atomic, which is also exactly the Kubernetes rule
//! for custom resources without list-type markers.
//!
//! Paths are the chain of map keys from the object root to the map that holds
//! the field; list items add nothing, so a container's `ports` list has path
//! `["spec", "template", "spec", "containers"]` and field `"ports"`.

/// How a list-valued field is merged and how its items are identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListType {
    /// Associative list: items are maps identified by these key fields
    /// (server-side apply's `listMapKeys`). Strategic merge patch uses the
    /// first key only, which is the Go `patchMergeKey`.
    Map(&'static [&'static str]),
    /// Set of primitives (e.g. `metadata.finalizers`): merged by union.
    Set,
    /// Replaced as a whole and, for apply, owned as a single leaf.
    Atomic,
}

impl ListType {
    /// The single merge key strategic merge patch uses for this list, if any.
    pub fn strategic_key(self) -> Option<&'static str> {
        match self {
            ListType::Map(keys) => keys.first().copied(),
            ListType::Set | ListType::Atomic => None,
        }
    }
}

const CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];

/// Classify the list `field` found in the map reached by `path`.
///
/// Pod-spec lists are recognised wherever a `spec` map holds them (Pod,
/// `spec.template.spec` of workloads, `spec.jobTemplate.spec.template.spec`
/// of CronJobs); container-level lists only directly under a container list.
pub fn list_merge_keys(path: &[&str], field: &str) -> ListType {
    let parent = path.last().copied();
    let in_container = parent.is_some_and(|p| CONTAINER_LISTS.contains(&p));
    let in_spec = parent == Some("spec");
    match field {
        "containers" | "initContainers" | "ephemeralContainers" if in_spec => {
            ListType::Map(&["name"])
        }
        "volumes" | "imagePullSecrets" | "resourceClaims" | "schedulingGates" if in_spec => {
            ListType::Map(&["name"])
        }
        "hostAliases" if in_spec => ListType::Map(&["ip"]),
        "topologySpreadConstraints" if in_spec => {
            ListType::Map(&["topologyKey", "whenUnsatisfiable"])
        }
        // Service ports: the Service spec is the object's top-level `spec`.
        "ports" if path == ["spec"] => ListType::Map(&["port", "protocol"]),
        "ports" if in_container => ListType::Map(&["containerPort", "protocol"]),
        "env" if in_container => ListType::Map(&["name"]),
        "volumeMounts" if in_container => ListType::Map(&["mountPath"]),
        "volumeDevices" if in_container => ListType::Map(&["devicePath"]),
        "conditions" if parent == Some("status") => ListType::Map(&["type"]),
        "ownerReferences" if path == ["metadata"] => ListType::Map(&["uid"]),
        "finalizers" if path == ["metadata"] => ListType::Set,
        // envFrom, tolerations, args, command, Endpoints subsets, RBAC rules,
        // and everything we do not know about.
        _ => ListType::Atomic,
    }
}

/// Default for an associative-list key field that may be omitted.
///
/// Mirrors the OpenAPI defaults Kubernetes uses when building list keys, so
/// `{"containerPort": 80}` is identified as `{"containerPort":80,"protocol":"TCP"}`.
pub fn key_default(key: &str) -> Option<&'static str> {
    match key {
        "protocol" => Some("TCP"),
        _ => None,
    }
}

/// Whether the map-valued `field` is atomic for server-side apply
/// (`+structType=atomic` / `+mapType=atomic` in Kubernetes).
///
/// Atomic maps are replaced whole by an apply and owned as one leaf, which is
/// why real managedFields show `f:selector: {}` for a Deployment. Strategic
/// merge patch ignores this and always merges maps, as Kubernetes does.
pub fn is_atomic_map(path: &[&str], field: &str) -> bool {
    match field {
        "selector" => path.last() == Some(&"spec"),
        "nodeSelector" | "labelSelector" | "namespaceSelector" | "podSelector" => true,
        "configMapKeyRef" | "secretKeyRef" | "fieldRef" | "resourceFieldRef" => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_lists_are_keyed_by_name_only_under_a_pod_spec() {
        assert_eq!(
            list_merge_keys(&["spec", "template", "spec"], "containers"),
            ListType::Map(&["name"])
        );
        assert_eq!(
            list_merge_keys(&["spec"], "initContainers"),
            ListType::Map(&["name"])
        );
        assert_eq!(list_merge_keys(&["data"], "containers"), ListType::Atomic);
    }

    #[test]
    fn ports_depend_on_parent() {
        let c = ["spec", "template", "spec", "containers"];
        assert_eq!(
            list_merge_keys(&c, "ports"),
            ListType::Map(&["containerPort", "protocol"])
        );
        assert_eq!(
            list_merge_keys(&c, "ports").strategic_key(),
            Some("containerPort")
        );
        assert_eq!(
            list_merge_keys(&["spec"], "ports"),
            ListType::Map(&["port", "protocol"])
        );
        assert_eq!(
            list_merge_keys(&["spec"], "ports").strategic_key(),
            Some("port")
        );
        assert_eq!(
            list_merge_keys(&["spec", "ingress"], "ports"),
            ListType::Atomic
        );
    }

    #[test]
    fn misc_lists() {
        let c = ["spec", "containers"];
        assert_eq!(list_merge_keys(&c, "env"), ListType::Map(&["name"]));
        assert_eq!(list_merge_keys(&c, "envFrom"), ListType::Atomic);
        assert_eq!(list_merge_keys(&c, "args"), ListType::Atomic);
        assert_eq!(
            list_merge_keys(&c, "volumeMounts"),
            ListType::Map(&["mountPath"])
        );
        assert_eq!(list_merge_keys(&["spec"], "tolerations"), ListType::Atomic);
        assert_eq!(list_merge_keys(&["metadata"], "finalizers"), ListType::Set);
        assert_eq!(
            list_merge_keys(&["metadata"], "ownerReferences"),
            ListType::Map(&["uid"])
        );
        assert_eq!(
            list_merge_keys(&["status"], "conditions"),
            ListType::Map(&["type"])
        );
        assert_eq!(list_merge_keys(&[], "subsets"), ListType::Atomic);
        assert_eq!(list_merge_keys(&[], "rules"), ListType::Atomic);
        assert_eq!(
            list_merge_keys(&["spec"], "somethingCustom"),
            ListType::Atomic
        );
        assert_eq!(key_default("protocol"), Some("TCP"));
        assert!(is_atomic_map(&["spec"], "selector"));
        assert!(!is_atomic_map(&["metadata"], "labels"));
    }
}
