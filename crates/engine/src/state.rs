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

use crate::diff::{self, DiffError, DiffOptions, ResourceDiff};
use crate::sync::is_hook;
use mooring_core::app::{HealthStatus, HealthStatusCode, ResourceStatus, SyncStatusCode};
use mooring_core::ResourceKey;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

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
