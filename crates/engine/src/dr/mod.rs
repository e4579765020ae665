//! Disaster recovery, the pure part: a plan's validity, the steps of a failover and a
//! failback, RTO/RPO arithmetic, and the drill report ([`report`]).

pub mod report;

/// One side of a plan (the primary or the standby region): which cluster a check, a DNS
/// target or a step is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Primary,
    Standby,
}

impl Side {
    /// The side that is not this one.
    pub fn other(self) -> Side {
        match self {
            Side::Primary => Side::Standby,
            Side::Standby => Side::Primary,
        }
    }

    /// `primary` or `standby`, as `mooring dr validate --side` and messages spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Primary => "primary",
            Side::Standby => "standby",
        }
    }
}
