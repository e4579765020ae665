//! Reconcile timing and convergence figures, kept in memory and served by the API
//! server's metrics endpoint.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many (app, revision) pairs the convergence figures remember.
const MAX_TRACKED_REVISIONS: usize = 100_000;

/// Reconcile timing and convergence figures.
#[derive(Default)]
pub struct Metrics {
    reconciles: Mutex<(u64, Duration)>,
    renders_reused: std::sync::atomic::AtomicU64,
    /// First time each (app, revision) was seen, to measure commit → converged.
    seen: Mutex<HashMap<(String, String), Instant>>,
    converged: Mutex<HashMap<(String, String), Duration>>,
    /// Notification deliveries by (trigger, service, result).
    notifications: Mutex<std::collections::BTreeMap<(String, String, String), u64>>,
    /// Image watcher: images checked in their registries.
    image_checks: std::sync::atomic::AtomicU64,
    /// Image watcher: write-backs by result (`written`, `refused` by the policy gate,
    /// `failed`).
    image_updates: Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// Application reconciles by (destination, shard): which replica works on which
    /// destination (bounded by the number of destination clusters).
    by_destination: Mutex<std::collections::BTreeMap<(String, u32), u64>>,
    sharding: Mutex<ShardingState>,
}

/// This replica's part in sharding, for the metrics endpoint.
#[derive(Debug, Clone, Default)]
pub struct ShardingState {
    pub replica: String,
    pub shards: u32,
    pub owned: std::collections::BTreeSet<u32>,
    pub leader: bool,
}

impl Metrics {
    pub fn record_reconcile(&self, took: Duration) {
        let mut r = self
            .reconciles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        r.0 += 1;
        r.1 += took;
    }

    pub fn saw_revision(&self, app: &str, revision: &str) {
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Bounded: a long-running controller sees revisions forever.
        if seen.len() > MAX_TRACKED_REVISIONS {
            seen.clear();
        }
        seen.entry((app.into(), revision.into()))
            .or_insert_with(Instant::now);
    }

    pub fn converged(&self, app: &str, revision: &str) {
        let seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&(app.to_string(), revision.to_string()))
            .copied();
        if let Some(t) = seen {
            let mut converged = self
                .converged
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if converged.len() > MAX_TRACKED_REVISIONS {
                converged.clear();
            }
            converged
                .entry((app.into(), revision.into()))
                .or_insert_with(|| t.elapsed());
        }
    }

    /// Commit seen → Synced and Healthy, per (app, revision).
    pub fn convergence(&self) -> HashMap<(String, String), Duration> {
        self.converged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// One notification delivery finished (`result`: `success` or `failure`).
    pub fn record_notification(&self, trigger: &str, service: &str, result: &str) {
        *self
            .notifications
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry((trigger.into(), service.into(), result.into()))
            .or_default() += 1;
    }

    /// Notification deliveries by (trigger, service, result), for
    /// `mooring_notifications_deliveries_total`.
    pub fn notification_deliveries(
        &self,
    ) -> std::collections::BTreeMap<(String, String, String), u64> {
        self.notifications
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The image watcher checked `n` images in their registries.
    pub fn record_image_checks(&self, n: u64) {
        self.image_checks
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Images checked so far, for `mooring_image_checks_total`.
    pub fn image_checks(&self) -> u64 {
        self.image_checks.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// One write-back ended (`written`, `refused`, `failed`).
    pub fn record_image_update(&self, result: &'static str) {
        *self
            .image_updates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(result)
            .or_default() += 1;
    }

    /// Write-backs by result, for `mooring_image_updates_total`.
    pub fn image_updates(&self) -> std::collections::BTreeMap<&'static str, u64> {
        self.image_updates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// An Application deploying to `d` (in shard `shard`) is reconciled here.
    pub fn record_destination_reconcile(
        &self,
        d: &mooring_core::app::ApplicationDestination,
        shard: u32,
    ) {
        let dest = d
            .server
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| d.name.clone())
            .unwrap_or_default();
        *self
            .by_destination
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry((dest, shard))
            .or_default() += 1;
    }

    /// Record this replica's sharding state (at start and after every Lease round).
    pub fn set_sharding(&self, state: ShardingState) {
        *self
            .sharding
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = state;
    }

    /// This replica's sharding state.
    pub fn sharding(&self) -> ShardingState {
        self.sharding
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Reconciles by (destination, shard), for `mooring_destination_reconciles_total`.
    pub fn destination_reconciles(&self) -> std::collections::BTreeMap<(String, u32), u64> {
        self.by_destination
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn render_reused(&self) {
        self.renders_reused
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Renders reused across commits that did not touch the app's inputs.
    pub fn renders_reused(&self) -> u64 {
        self.renders_reused
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// (reconciles, total time).
    pub fn reconciles(&self) -> (u64, Duration) {
        *self
            .reconciles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
