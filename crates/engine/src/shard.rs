//! Sharding of destination clusters across controller replicas, as Argo CD's application
//! controller does it: every destination cluster belongs to one shard, and a replica
//! reconciles only the Applications whose destination is in a shard it owns. The
//! assignment is a pure function of the cluster list, so every replica computes the same
//! answer without talking to the others; who owns which shard is settled through Leases
//! in the controller (`mooring_controller::sharding`).

use std::str::FromStr;

/// How clusters are assigned to shards (Argo CD's `--sharding-method`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Method {
    /// Argo CD's default: a hash of the cluster's id, modulo the shard count.
    #[default]
    Legacy,
    /// Clusters sorted by id, dealt out to shards in turn.
    RoundRobin,
    /// Consistent hashing with bounded loads: few clusters move when the shard count changes.
    ConsistentHashing,
}

impl Method {
    /// The name Argo CD's flag and `ARGOCD_CONTROLLER_SHARDING_ALGORITHM` use.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Legacy => "legacy",
            Method::RoundRobin => "round-robin",
            Method::ConsistentHashing => "consistent-hashing",
        }
    }
}

impl FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "legacy" => Ok(Method::Legacy),
            "round-robin" => Ok(Method::RoundRobin),
            "consistent-hashing" => Ok(Method::ConsistentHashing),
            other => Err(format!(
                "unknown sharding method {other:?}: use legacy, round-robin or consistent-hashing"
            )),
        }
    }
}
