//! Validation checks of a plan's active side (apps, HTTP, TCP, PromQL). (Slice in
//! progress: placeholder signatures the DR loop compiles against.)

use crate::Context;
use mooring_core::dr::{CheckResult, DisasterRecoveryPlan, ServiceRef};
use mooring_engine::dr::Side;
use mooring_k8s::cluster::ClusterClient;

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{0}")]
    Other(String),
}

pub async fn run(_ctx: &Context, _plan: &DisasterRecoveryPlan, _side: Side) -> Vec<CheckResult> {
    Vec::new()
}

pub async fn service_address(
    _cluster: &ClusterClient,
    svc: &ServiceRef,
) -> Result<(String, Vec<u16>), CheckError> {
    Err(CheckError::Other(format!(
        "{}/{}: not yet",
        svc.namespace, svc.name
    )))
}
