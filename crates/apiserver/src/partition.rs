//! Partition: the embedded cluster can be told to stop answering, as a region outage
//! looks from outside, and healed again.
//!
//! Disaster-recovery drills need a failure they can inject into the primary cluster and
//! take back, without the cluster losing anything: the drill's failure mode `partition`.
//! While a cluster is partitioned:
//!
//! - every API request except the partition endpoint itself is **dropped**: the
//!   connection is closed without an answer (clients see "empty reply" / "connection
//!   closed before message completed" at once, so detection in tests is fast rather than
//!   waiting for timeouts), and open watch streams are cut;
//! - every load-balancer listener is closed ([`crate::sim::listeners`]), so connections
//!   to Service and Ingress addresses are refused, and open ones are cut;
//! - the simulation's controllers keep running and keep their state: on heal the same
//!   objects answer, and resourceVersions continue.
//!
//! # The out-of-band console
//!
//! The DR controller runs in another process and holds only the cluster's credentials,
//! so the partition is also reachable over HTTP at [`PATH`] (`/sim.mooring.dev/v1/partition`,
//! outside Kubernetes' `/api` and `/apis`, so a real cluster answers 404 there, which the
//! controller turns into "failure mode partition needs an embedded cluster"):
//!
//! - `GET` returns the [`State`];
//! - `PUT` with `{"partitioned": true, "maxDuration": "300s"}` partitions, `{"partitioned":
//!   false}` heals. `maxDuration` (Go duration syntax, default [`DEFAULT_MAX_DURATION`], at
//!   most [`MAX_MAX_DURATION`]) heals the cluster by itself when it expires, so a drill
//!   that crashed never leaves a cluster down forever.
//!
//! The endpoint needs the cluster's bearer token like every other request (the admin
//! credentials `mooring cluster start` prints), and keeps answering while the cluster is
//! partitioned. A bad body is a 400 naming the field.
//!
//! The in-process API is [`crate::Cluster::partition`] / [`crate::Cluster::partition_for`].

use mooring_core::dr::PartitionRequest as WireRequest;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// Where the partition endpoint is served (the contract lives in `mooring_core::dr`).
pub const PATH: &str = mooring_core::dr::PARTITION_PATH;

/// How long a partition requested over HTTP lasts when `maxDuration` is not given.
pub const DEFAULT_MAX_DURATION: Duration = Duration::from_secs(600);

/// The longest `maxDuration` accepted.
pub const MAX_MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// A bad partition request body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionRequestError {
    #[error("partition request: the body is not a JSON object {{\"partitioned\": true|false, \"maxDuration\": \"300s\"}}: {reason}")]
    Body { reason: String },
    #[error("partition request: maxDuration {input:?} is not a duration (Go syntax such as 300s, 5m or 1h30m)")]
    MaxDurationSyntax { input: String },
    #[error("partition request: maxDuration {input:?} must be longer than zero")]
    MaxDurationZero { input: String },
    #[error("partition request: maxDuration {input:?} is longer than the limit of 24h")]
    MaxDurationTooLong { input: String },
}

/// A validated `PUT` body ([`mooring_core::dr::PartitionRequest`], checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionRequest {
    pub partitioned: bool,
    /// When partitioning: heal after this long.
    pub max_duration: Duration,
}

impl PartitionRequest {
    /// Parse and check a `PUT` body.
    pub fn parse(body: &[u8]) -> Result<PartitionRequest, PartitionRequestError> {
        let raw: WireRequest =
            serde_json::from_slice(body).map_err(|e| PartitionRequestError::Body {
                reason: e.to_string(),
            })?;
        let max_duration = match raw.max_duration {
            None => DEFAULT_MAX_DURATION,
            Some(input) => {
                let d = mooring_core::time::parse_go_duration(&input).ok_or_else(|| {
                    PartitionRequestError::MaxDurationSyntax {
                        input: input.clone(),
                    }
                })?;
                if d.is_zero() {
                    return Err(PartitionRequestError::MaxDurationZero { input });
                }
                if d > MAX_MAX_DURATION {
                    return Err(PartitionRequestError::MaxDurationTooLong { input });
                }
                d
            }
        };
        Ok(PartitionRequest {
            partitioned: raw.partitioned,
            max_duration,
        })
    }
}

/// Whether (and until when) the cluster is partitioned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub partitioned: bool,
    /// RFC 3339 time the partition began.
    pub since: Option<String>,
    /// RFC 3339 time it heals by itself (`None`: only when told).
    pub heals_at: Option<String>,
    deadline: Option<Instant>,
}

impl State {
    /// The body of `GET` and `PUT` answers.
    pub fn to_json(&self) -> Value {
        json!({
            "apiVersion": "sim.mooring.dev/v1",
            "kind": "Partition",
            "partitioned": self.partitioned,
            "since": self.since,
            "healsAt": self.heals_at,
        })
    }
}

/// The partition switch of one cluster, shared by the HTTP layer, the load-balancer
/// listeners and the heal timer.
#[derive(Clone)]
pub struct Partition {
    tx: Arc<watch::Sender<State>>,
}

impl Default for Partition {
    fn default() -> Self {
        Partition {
            tx: Arc::new(watch::Sender::new(State::default())),
        }
    }
}

impl Partition {
    pub fn new() -> Self {
        Self::default()
    }

    /// Partition (`max`: heal after that long; `None`: until healed) or heal.
    pub fn set(&self, partitioned: bool, max: Option<Duration>) {
        let now = jiff::Timestamp::now();
        self.tx.send_modify(|s| {
            if !partitioned {
                *s = State::default();
                return;
            }
            if !s.partitioned {
                s.since = Some(now.to_string());
            }
            s.partitioned = true;
            s.deadline = max.map(|d| Instant::now() + d);
            s.heals_at = max
                .and_then(|d| jiff::SignedDuration::try_from(d).ok())
                .and_then(|d| now.checked_add(d).ok())
                .map(|t| t.to_string());
        });
    }

    pub fn state(&self) -> State {
        self.tx.borrow().clone()
    }

    pub fn is_partitioned(&self) -> bool {
        self.tx.borrow().partitioned
    }

    /// Follow changes.
    pub fn subscribe(&self) -> watch::Receiver<State> {
        self.tx.subscribe()
    }

    /// Heal when the current partition's deadline passes; runs until the cluster stops.
    pub async fn heal_when_due(self) {
        let mut rx = self.subscribe();
        loop {
            let deadline = rx.borrow_and_update().deadline;
            let expired = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return },
                () = expired => {
                    // Only the partition whose deadline this was.
                    if self.tx.borrow().deadline == deadline {
                        tracing::info!("partition: maxDuration expired, healing");
                        self.set(false, None);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_with_defaults_and_limits() {
        let ok = |s: &str| PartitionRequest::parse(s.as_bytes()).expect(s);
        assert_eq!(
            ok(r#"{"partitioned": true, "maxDuration": "300s"}"#),
            PartitionRequest {
                partitioned: true,
                max_duration: Duration::from_secs(300)
            }
        );
        assert_eq!(
            ok(r#"{"partitioned": true}"#).max_duration,
            DEFAULT_MAX_DURATION
        );
        assert!(!ok(r#"{"partitioned": false}"#).partitioned);
        assert_eq!(
            ok(r#"{"partitioned": true, "maxDuration": "1h30m"}"#).max_duration,
            Duration::from_secs(5400)
        );
    }

    #[test]
    fn hostile_requests_name_the_field() {
        let err = |s: &str| {
            PartitionRequest::parse(s.as_bytes())
                .expect_err(s)
                .to_string()
        };
        for bad in ["forever", "-5s", "5 parsecs", ""] {
            let e = err(&format!(
                r#"{{"partitioned": true, "maxDuration": "{bad}"}}"#
            ));
            assert!(e.contains("maxDuration") && e.contains(bad), "{e}");
        }
        assert!(err(r#"{"partitioned": true, "maxDuration": "0s"}"#).contains("longer than zero"));
        assert!(err(r#"{"partitioned": true, "maxDuration": "25h"}"#).contains("limit of 24h"));
        assert!(err("not json").contains("not a JSON object"));
        assert!(err(r#"{"partitioned": "yes"}"#).contains("partitioned"));
        assert!(err(r#"{}"#).contains("partitioned"));
        assert!(err(r#"{"partitioned": true, "extra": 1}"#).contains("extra"));
        assert!(err(r#"{"partitioned": true, "maxDuration": 300}"#).contains("maxDuration"));
    }

    #[test]
    fn state_follows_set() {
        let p = Partition::new();
        assert!(!p.is_partitioned());
        p.set(true, Some(Duration::from_secs(60)));
        let s = p.state();
        assert!(s.partitioned && s.since.is_some() && s.heals_at.is_some());
        assert_eq!(s.to_json()["partitioned"], true);
        p.set(false, None);
        assert_eq!(p.state(), State::default());
    }
}
