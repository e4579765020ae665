//! Shared vocabulary of every Mooring crate.
//!
//! `ResourceKey` is the one identity of a Kubernetes object used everywhere (diff, sync
//! results, caches, API, UI), and `yaml` is the one place manifests are parsed, with limits
//! against alias bombs and oversized input, so no crate parses YAML its own way.

pub mod analysis;
pub mod app;
pub mod appset;
pub mod cluster;
pub mod dr;
pub mod event;
pub mod fields_v1;
pub mod files;
pub mod merge_patch;
pub mod name;
pub mod project;
pub mod rollback;
pub mod rollout;
pub mod scope;
pub mod selector;
pub mod server_fields;
pub mod time;
pub mod validation;
pub mod yaml;

use serde::{Deserialize, Serialize};

/// Identity of a Kubernetes object: API group, kind, namespace (empty for cluster-scoped)
/// and name. Version is deliberately absent: the same object is served under every version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ResourceKey {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl ResourceKey {
    pub fn new(group: &str, kind: &str, namespace: &str, name: &str) -> Self {
        ResourceKey {
            group: group.into(),
            kind: kind.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl ResourceKey {
    /// The identity of a manifest or live object: group from `apiVersion`, `kind`,
    /// `metadata.namespace` (empty when absent) and `metadata.name` (or, for objects
    /// named by the server, `metadata.generateName`). `None` without kind or name.
    pub fn of(obj: &serde_json::Value) -> Option<ResourceKey> {
        use serde_json::Value;
        let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let kind = obj
            .get("kind")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty())?;
        let meta = obj.get("metadata")?;
        let name = meta
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .or_else(|| meta.get("generateName").and_then(Value::as_str))
            .filter(|n| !n.is_empty())?;
        let namespace = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
        Some(ResourceKey::new(group, kind, namespace, name))
    }
}

impl std::fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let gk = if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        };
        if self.namespace.is_empty() {
            write!(f, "{gk}/{}", self.name)
        } else {
            write!(f, "{gk}/{}/{}", self.namespace, self.name)
        }
    }
}
