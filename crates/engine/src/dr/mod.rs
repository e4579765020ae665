//! Disaster recovery, the pure part: a plan's validity, the steps of a failover and a
//! failback, RTO/RPO arithmetic, and the drill report ([`report`]).

pub mod report;
