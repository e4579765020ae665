//! Pairing an Application's desired objects with its live ones, and the aggregate sync
//! and health that follow (gitops-engine's `sync.Reconcile` plus the aggregation Argo
//! CD's controller does on top of it).
//!
//! The controller reads the live state (the destination's watch-fed cache, a GET for a
//! desired object the cache lacks) and assesses health (custom Lua checks run there);
//! everything between those reads is this pure function, so it is tested with golden
//! fixtures instead of an embedded cluster:
//!
//! - every desired object with an identity that is not a hook is paired with the live
//!   object of the same [`ResourceKey`] (missing: `OutOfSync`, health `Missing`);
//! - every managed live object no desired object names, and that is not a hook, is to
//!   prune (`requiresPruning`, no health);
//! - the app is `Synced` only when every resource is, and its health is the worst of the
//!   resources' ([`HealthStatusCode::worst`]), with the first worst resource's message.
//!
//! Objects without an identity are skipped here (the render already refused them).
//!
//! Before pairing, every rendered object is placed ([`place_namespace`]) the way Argo CD's
//! `DeduplicateTargetObjects` places it, by the controller and by `mooring check` alike.

use crate::diff::{self, DiffError, DiffOptions, ResourceDiff};
use crate::sync::is_hook;
use mooring_core::app::{HealthStatus, HealthStatusCode, ResourceStatus, SyncStatusCode};
use mooring_core::ResourceKey;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Where a rendered object lands, as Argo CD places it before comparing: a cluster-scoped
/// object has no namespace (one written in Git is dropped); a namespaced object (or one of
/// unknown scope, which the caller reports as namespaced) without a namespace, or with an
/// empty one, goes to the destination namespace when the Application names one. The scope
/// comes from the caller (discovery in the controller, CRDs and `mooring_core::scope`'s
/// table in `mooring check`). An object without `metadata` is left as it is; the render
/// refuses it.
pub fn place_namespace(obj: &mut Value, destination_namespace: &str, namespaced: bool) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if !namespaced {
        meta.remove("namespace");
    } else if !destination_namespace.is_empty()
        && meta
            .get("namespace")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        meta.insert(
            "namespace".into(),
            Value::String(destination_namespace.to_string()),
        );
    }
}

/// The desired objects that take part in the comparison (not hooks, with an identity),
/// with their keys, in desired order: the ones whose live object the caller must find.
pub fn compared_desired(desired: &[Value]) -> Vec<(ResourceKey, &Value)> {
    desired
        .iter()
        .filter(|d| !is_hook(d))
        .filter_map(|d| ResourceKey::of(d).map(|k| (k, d)))
        .collect()
}

/// The live state one comparison reads.
pub struct Live<'a> {
    /// The live object of each desired key that exists (from [`compared_desired`]).
    pub found: &'a BTreeMap<ResourceKey, Value>,
    /// Every live object the application manages (tracked by its instance name).
    pub managed: &'a [Value],
}

/// What the comparison finds: per-resource status and diffs, and the app's aggregate.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Desired resources first (desired order), then the ones to prune (managed order).
    pub resources: Vec<ResourceStatus>,
    /// One diff per resource, in the order of `resources`.
    pub diffs: Vec<ResourceDiff>,
    pub sync: SyncStatusCode,
    pub health: HealthStatus,
}

/// Pair `desired` with `live`, diff each pair with `opts`, assess each live object with
/// `health` and aggregate. A diff error (an invalid `ignoreDifferences`) is returned.
pub fn compare(
    desired: &[Value],
    live: &Live<'_>,
    opts: &DiffOptions<'_>,
    health: impl Fn(&Value) -> Option<HealthStatus>,
) -> Result<Comparison, DiffError> {
    let mut resources = Vec::new();
    let mut diffs = Vec::new();
    let mut healths = Vec::new();
    let mut desired_keys = BTreeSet::new();
    for (key, d) in compared_desired(desired) {
        let api_version = d
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let l = live.found.get(&key);
        let rd = diff::diff(Some(d), l, opts)?;
        let h = match l {
            None => Some(HealthStatus::new(
                HealthStatusCode::Missing,
                "resource does not exist",
            )),
            Some(l) => health(l),
        };
        if let Some(h) = &h {
            healths.push(h.status);
        }
        resources.push(resource_status(&key, api_version, rd.status, h, false));
        diffs.push(rd);
        desired_keys.insert(key);
    }
    for l in live.managed {
        let Some(key) = ResourceKey::of(l) else {
            continue;
        };
        if desired_keys.contains(&key) || is_hook(l) {
            continue;
        }
        let api_version = l
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let rd = diff::diff(None, Some(l), opts)?;
        resources.push(resource_status(&key, api_version, rd.status, None, true));
        diffs.push(rd);
    }
    let sync = if resources.iter().all(|r| r.status == SyncStatusCode::Synced) {
        SyncStatusCode::Synced
    } else {
        SyncStatusCode::OutOfSync
    };
    let worst = HealthStatusCode::worst(healths);
    let message = resources
        .iter()
        .filter(|r| {
            r.health
                .as_ref()
                .is_some_and(|h| h.status == worst && worst != HealthStatusCode::Healthy)
        })
        .map(|r| {
            format!(
                "{}/{}: {}",
                r.kind,
                r.name,
                r.health
                    .as_ref()
                    .map(|h| h.message.as_str())
                    .unwrap_or_default()
            )
        })
        .next()
        .unwrap_or_default();
    Ok(Comparison {
        resources,
        diffs,
        sync,
        health: HealthStatus::new(worst, message),
    })
}

fn resource_status(
    key: &ResourceKey,
    api_version: &str,
    status: SyncStatusCode,
    health: Option<HealthStatus>,
    requires_pruning: bool,
) -> ResourceStatus {
    ResourceStatus {
        group: key.group.clone(),
        version: api_version
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string(),
        kind: key.kind.clone(),
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        status,
        health,
        hook: false,
        requires_pruning,
    }
}

#[cfg(test)]
mod tests {
    use super::place_namespace;
    use serde_json::json;

    #[test]
    fn objects_are_placed_as_argo_cd_places_them() {
        let place = |obj: serde_json::Value, dest: &str, namespaced: bool| {
            let mut obj = obj;
            place_namespace(&mut obj, dest, namespaced);
            obj["metadata"].get("namespace").cloned()
        };
        let none = json!({"metadata": {"name": "a"}});
        let empty = json!({"metadata": {"name": "a", "namespace": ""}});
        let own = json!({"metadata": {"name": "a", "namespace": "mine"}});
        // Namespaced: missing or empty goes to the destination; a written one stays.
        assert_eq!(place(none.clone(), "dest", true), Some(json!("dest")));
        assert_eq!(place(empty.clone(), "dest", true), Some(json!("dest")));
        assert_eq!(place(own.clone(), "dest", true), Some(json!("mine")));
        // No destination namespace: nothing is invented.
        assert_eq!(place(none.clone(), "", true), None);
        // Cluster-scoped: a namespace written in Git is dropped.
        assert_eq!(place(own, "dest", false), None);
        assert_eq!(place(none, "dest", false), None);
        // No metadata: left alone (the render refuses it).
        let mut bare = json!({"kind": "ConfigMap"});
        place_namespace(&mut bare, "dest", true);
        assert_eq!(bare, json!({"kind": "ConfigMap"}));
    }
}
