//! Graceful stop: a controller told to stop (SIGTERM, a pod being replaced) takes no new
//! application out of its queue, lets the reconciles in flight finish within a grace
//! period, then stops everything else as a killed process would.
//!
//! Why this is enough: a reconcile is one step of at most one operation, and the
//! operation's state (phase, wave, resources synced) is written to the Application after
//! every step, so whatever is cut short — a reconcile past the grace period, an
//! ApplicationSet or rollout loop — is picked up from the API server by the next start.

use crate::Controller;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Whether the controller is stopping, how many reconciles run, and whether the
/// Application watch has listed every Application once (readiness).
#[derive(Debug, Default)]
pub(crate) struct Lifecycle {
    stopping: AtomicBool,
    in_flight: AtomicUsize,
    apps_listed: AtomicBool,
}

/// One reconcile in flight; counted until dropped.
pub(crate) struct InFlight<'a>(&'a Lifecycle);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Lifecycle {
    /// Start a reconcile, unless the controller is stopping.
    pub(crate) fn begin(&self) -> Option<InFlight<'_>> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let guard = InFlight(self);
        if self.stopping.load(Ordering::SeqCst) {
            return None;
        }
        Some(guard)
    }

    fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// The Application watch finished its initial listing.
    pub(crate) fn listed_apps(&self) {
        self.apps_listed.store(true, Ordering::SeqCst);
    }
}

impl crate::Context {
    /// Whether the controller's Application cache is synced (the watch has listed every
    /// Application once) and it is not stopping: what a readiness probe asks.
    pub fn synced(&self) -> bool {
        self.lifecycle.apps_listed.load(Ordering::SeqCst)
            && !self.lifecycle.stopping.load(Ordering::SeqCst)
    }
}

impl Controller {
    /// Stop taking work, wait up to `grace` for the reconciles in flight, then stop every
    /// loop. Returns how many reconciles were still running when the grace ran out (they
    /// resume from the Application's status at the next start).
    pub async fn shutdown(self, grace: Duration) -> usize {
        self.ctx.lifecycle.stopping.store(true, Ordering::SeqCst);
        let started = Instant::now();
        while self.ctx.lifecycle.in_flight() > 0 && started.elapsed() < grace {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = self.ctx.lifecycle.in_flight();
        let ctx = self.ctx.clone();
        drop(self);
        // The Lease loop is stopped: give this replica's Leases up, so the others take
        // its shards at once instead of after the lease duration.
        crate::sharding::release_all(&ctx).await;
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stopping_lifecycle_starts_nothing_and_counts_what_runs() {
        let l = Lifecycle::default();
        let a = l.begin().expect("running");
        assert_eq!(l.in_flight(), 1);
        l.stopping.store(true, Ordering::SeqCst);
        assert!(l.begin().is_none());
        assert_eq!(l.in_flight(), 1, "a refused start is not counted");
        drop(a);
        assert_eq!(l.in_flight(), 0);
    }
}
