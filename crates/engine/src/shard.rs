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

pub use crate::rollout::hash::fnv32a;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

/// A destination cluster as sharding sees it: Argo CD's cluster id is the cluster
/// Secret's `metadata.uid`, and the Secret's `shard` key pins it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// The cluster Secret's uid (empty for the in-cluster destination without a Secret).
    pub id: String,
    /// The server URL (what Applications name as `destination.server`).
    pub server: String,
    /// The cluster name (what Applications name as `destination.name`).
    pub name: String,
    /// The Secret's explicit `shard` (data or stringData), if any.
    pub shard: Option<u32>,
}

/// Clusters → shards, with the warnings the computation raised (an explicit shard out of
/// range is reassigned by the method, and said so, as Argo CD does).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    /// Shard count the assignment was computed for.
    pub shards: u32,
    by_server: BTreeMap<String, u32>,
    by_name: BTreeMap<String, u32>,
    pub warnings: Vec<String>,
}

impl Assignment {
    /// The shard of a destination (by server URL, else by name). A destination not in
    /// the cluster list — the in-cluster one without a Secret, or one not registered —
    /// belongs to shard 0, as Argo CD's distribution functions give a nil cluster shard 0:
    /// exactly one replica reports its state.
    pub fn shard_of(&self, server: Option<&str>, name: Option<&str>) -> u32 {
        server
            .filter(|s| !s.is_empty())
            .and_then(|s| self.by_server.get(s))
            .or_else(|| {
                name.filter(|n| !n.is_empty())
                    .and_then(|n| self.by_name.get(n))
            })
            .copied()
            .unwrap_or(0)
    }

    /// Server URLs of the clusters in `shard`.
    pub fn servers_of(&self, shard: u32) -> Vec<&str> {
        self.by_server
            .iter()
            .filter(|(_, s)| **s == shard)
            .map(|(k, _)| k.as_str())
            .collect()
    }
}

/// Argo CD's legacy distribution: FNV-1a (32 bit) of the cluster id, modulo the shard
/// count; an empty id (no Secret) is shard 0.
pub fn legacy_shard(id: &str, shards: u32) -> u32 {
    if id.is_empty() || shards == 0 {
        return 0;
    }
    fnv32a(id.as_bytes()) % shards
}

/// Assign every cluster to a shard. An explicit `shard` below `shards` wins; one at or
/// above it is reassigned by `method` with a warning naming the cluster.
pub fn assign(method: Method, shards: u32, clusters: &[Cluster]) -> Assignment {
    let shards = shards.max(1);
    let mut warnings = Vec::new();
    // Argo CD sorts by id (round-robin ranks, consistent hashing's insertion order).
    let mut sorted: Vec<&Cluster> = clusters.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id).then(a.server.cmp(&b.server)));
    let mut out: BTreeMap<&str, u32> = BTreeMap::new();
    let mut ring = Ring::new(shards);
    // Pinned clusters first, so consistent hashing counts their load.
    for c in &sorted {
        match c.shard {
            Some(s) if s < shards => {
                out.insert(c.server.as_str(), s);
                ring.load[s as usize] += 1;
            }
            Some(s) => warnings.push(format!(
                "cluster {} ({}) asks for shard {s} but there are {shards} shards (0..{}): assigned by the {} method instead",
                c.name,
                c.server,
                shards - 1,
                method.as_str()
            )),
            None => {}
        }
    }
    for (rank, c) in sorted.iter().enumerate() {
        if out.contains_key(c.server.as_str()) {
            continue;
        }
        let s = match method {
            Method::Legacy => legacy_shard(&c.id, shards),
            // Argo CD ranks every cluster with an id, pinned ones included.
            Method::RoundRobin => (rank as u64 % u64::from(shards)) as u32,
            Method::ConsistentHashing => ring.least(&c.id),
        };
        out.insert(c.server.as_str(), s);
    }
    let mut by_name = BTreeMap::new();
    for c in clusters {
        if let Some(s) = out.get(c.server.as_str()) {
            by_name.insert(c.name.clone(), *s);
        }
    }
    Assignment {
        shards,
        by_server: out.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        by_name,
        warnings,
    }
}

/// Consistent hashing with bounded loads (Mirrokni et al.): each shard has
/// [`Ring::POINTS`] points on a 64-bit ring; a cluster goes to the first shard clockwise
/// from its hash whose load stays within `ceil(average × 1.25)`. Adding or removing a
/// shard moves only the clusters near its points.
struct Ring {
    points: Vec<(u64, u32)>,
    load: Vec<u64>,
}

impl Ring {
    const POINTS: u32 = 100;
    const BOUND: f64 = 1.25;

    fn new(shards: u32) -> Ring {
        let mut points: Vec<(u64, u32)> = (0..shards)
            .flat_map(|s| {
                (0..Self::POINTS).map(move |p| (ring_hash(format!("{s}-{p}").as_bytes()), s))
            })
            .collect();
        points.sort_unstable();
        Ring {
            points,
            load: vec![0; shards as usize],
        }
    }

    fn least(&mut self, id: &str) -> u32 {
        let shards = self.load.len() as u64;
        let total: u64 = self.load.iter().sum::<u64>() + 1;
        let bound = ((total as f64 / shards as f64) * Self::BOUND).ceil() as u64;
        let h = ring_hash(id.as_bytes());
        let start = self.points.partition_point(|(p, _)| *p < h);
        let n = self.points.len();
        let chosen = (0..n)
            .map(|i| self.points[(start + i) % n].1)
            .find(|s| self.load[*s as usize] < bound)
            // Unreachable with a bound ≥ the average; the least loaded shard otherwise.
            .unwrap_or_else(|| {
                (0..self.load.len() as u32)
                    .min_by_key(|s| self.load[*s as usize])
                    .unwrap_or(0)
            });
        self.load[chosen as usize] += 1;
        chosen
    }
}

/// A ring position: FNV-1a (64 bits) with MurmurHash3's finaliser, since FNV alone
/// leaves the high bits of short, similar keys (`0-1`, `0-2`) close together.
fn ring_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The explicit shard of a cluster Secret (`data.shard`, base64, or `stringData.shard`):
/// `Ok(None)` when absent, an error naming the value when it is not a shard number.
pub fn secret_shard(secret: &Value) -> Result<Option<u32>, String> {
    let raw = if let Some(s) = secret.pointer("/stringData/shard").and_then(Value::as_str) {
        s.to_string()
    } else if let Some(b64) = secret.pointer("/data/shard").and_then(Value::as_str) {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| format!("data.shard is not base64: {e}"))?;
        String::from_utf8(bytes).map_err(|_| "data.shard is not UTF-8".to_string())?
    } else {
        return Ok(None);
    };
    let t = raw.trim();
    if t.is_empty() {
        return Ok(None);
    }
    t.parse::<u32>()
        .map(Some)
        .map_err(|_| format!("shard {t:?} is not a non-negative shard number"))
}

/// The ordinal a StatefulSet pod's host name ends with (`mooring-controller-2` → 2), as
/// Argo CD infers a replica's shard from its host name.
pub fn ordinal(hostname: &str) -> Option<u32> {
    let (_, last) = hostname.rsplit_once('-')?;
    if last.is_empty() || !last.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    last.parse().ok()
}

/// What a replica read of one Lease (`coordination.k8s.io/v1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseView {
    /// `spec.holderIdentity`; `None` or empty: released.
    pub holder: Option<String>,
    /// `spec.renewTime` (else `acquireTime`).
    pub renewed: Option<SystemTime>,
    /// `spec.leaseDurationSeconds`.
    pub duration: Duration,
}

impl LeaseView {
    /// The holder, if the Lease is held and not expired at `now` (Kubernetes' rule: held
    /// until `renewTime + leaseDurationSeconds`). A held Lease without a renew time is
    /// treated as expired: nobody can prove it is alive.
    pub fn live_holder(&self, now: SystemTime) -> Option<&str> {
        let holder = self.holder.as_deref().filter(|h| !h.is_empty())?;
        let renewed = self.renewed?;
        (renewed + self.duration > now).then_some(holder)
    }

    /// Whether `me` may take this Lease now (free, expired, or already mine).
    pub fn claimable_by(&self, me: &str, now: SystemTime) -> bool {
        self.live_holder(now).is_none_or(|h| h == me)
    }
}

/// What a replica does with the shard Leases in one round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Shards this replica holds and renews.
    pub keep: BTreeSet<u32>,
    /// Free or expired shards to take (an update with the read resourceVersion).
    pub acquire: BTreeSet<u32>,
    /// Shards held beyond the fair share, given up (holder cleared) for a returning
    /// replica.
    pub release: BTreeSet<u32>,
}

/// Input of [`plan`]: one replica's view of the shard Leases.
#[derive(Debug, Clone)]
pub struct ClaimInput<'a> {
    pub shards: u32,
    pub me: &'a str,
    /// `--shard K`: only K, ever.
    pub pinned: Option<u32>,
    /// The StatefulSet ordinal of this replica's host name, taken first when free.
    pub preferred: Option<u32>,
    /// Shard → its Lease (a missing Lease is free: it is created).
    pub leases: &'a BTreeMap<u32, LeaseView>,
    /// Live replicas, this one included (from their presence Leases).
    pub replicas: usize,
    pub now: SystemTime,
}

/// Which shards to keep, acquire and release. A replica aims at its fair share,
/// `ceil(shards / live replicas)`: it keeps what it holds up to that share (its preferred
/// shard first), releases the rest (highest first, never the preferred one), and takes
/// free or expired shards (preferred first, then lowest) while under it. A pinned replica
/// only ever holds its shard. Every replica runs this on its own view; the Leases'
/// optimistic concurrency settles two replicas reaching for one shard.
pub fn plan(input: &ClaimInput<'_>) -> Plan {
    let mut out = Plan::default();
    let shards = input.shards.max(1);
    let mine: BTreeSet<u32> = (0..shards)
        .filter(|s| input.leases.get(s).and_then(|l| l.live_holder(input.now)) == Some(input.me))
        .collect();
    let free = |s: &u32| {
        input
            .leases
            .get(s)
            .is_none_or(|l| l.live_holder(input.now).is_none())
    };
    if let Some(k) = input.pinned {
        for s in &mine {
            if *s == k {
                out.keep.insert(*s);
            } else {
                out.release.insert(*s);
            }
        }
        if k < shards && !mine.contains(&k) && free(&k) {
            out.acquire.insert(k);
        }
        return out;
    }
    let fair = (shards as usize).div_ceil(input.replicas.max(1));
    let preferred = input.preferred.filter(|p| *p < shards);
    // Keep: preferred first, then lowest.
    let mut order: Vec<u32> = mine.iter().copied().collect();
    order.sort_by_key(|s| (Some(*s) != preferred, *s));
    for (i, s) in order.iter().enumerate() {
        if i < fair {
            out.keep.insert(*s);
        } else {
            out.release.insert(*s);
        }
    }
    let mut want = fair.saturating_sub(out.keep.len());
    let mut candidates: Vec<u32> = (0..shards)
        .filter(|s| !mine.contains(s) && free(s))
        .collect();
    candidates.sort_by_key(|s| (Some(*s) != preferred, *s));
    for s in candidates {
        if want == 0 {
            break;
        }
        out.acquire.insert(s);
        want -= 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(id: &str, shard: Option<u32>) -> Cluster {
        Cluster {
            id: id.into(),
            server: format!("https://{id}.example"),
            name: id.into(),
            shard,
        }
    }

    #[test]
    fn legacy_is_fnv32a_of_the_id_modulo_shards() {
        // FNV-1a 32 of "a" is 0xe40c292c (the reference vector).
        assert_eq!(legacy_shard("a", 1000), 0xe40c_292c % 1000);
        assert_eq!(legacy_shard("", 3), 0);
        assert_eq!(legacy_shard("anything", 1), 0);
        let a = assign(Method::Legacy, 3, &[cluster("a", None)]);
        assert_eq!(a.shard_of(Some("https://a.example"), None), 0xe40c_292c % 3);
    }

    #[test]
    fn explicit_shard_wins_and_out_of_range_is_reassigned_with_a_warning() {
        let cs = [cluster("a", Some(2)), cluster("b", Some(7))];
        for m in [
            Method::Legacy,
            Method::RoundRobin,
            Method::ConsistentHashing,
        ] {
            let a = assign(m, 3, &cs);
            assert_eq!(a.shard_of(Some("https://a.example"), None), 2);
            assert!(a.shard_of(Some("https://b.example"), None) < 3);
            assert_eq!(a.warnings.len(), 1, "{:?}", a.warnings);
            assert!(a.warnings[0].contains("cluster b") && a.warnings[0].contains("shard 7"));
        }
    }

    #[test]
    fn unknown_and_in_cluster_destinations_are_shard_zero() {
        let a = assign(Method::RoundRobin, 3, &[cluster("x", Some(2))]);
        assert_eq!(a.shard_of(Some("https://kubernetes.default.svc"), None), 0);
        assert_eq!(a.shard_of(None, Some("nope")), 0);
        assert_eq!(a.shard_of(None, Some("x")), 2);
    }

    #[test]
    fn round_robin_deals_clusters_sorted_by_id() {
        let cs: Vec<Cluster> = ["f", "b", "d", "a", "c", "e"]
            .iter()
            .map(|i| cluster(i, None))
            .collect();
        let a = assign(Method::RoundRobin, 3, &cs);
        for (i, id) in ["a", "b", "c", "d", "e", "f"].iter().enumerate() {
            assert_eq!(
                a.shard_of(Some(&format!("https://{id}.example")), None),
                i as u32 % 3
            );
        }
        assert_eq!(
            a.servers_of(1),
            vec!["https://b.example", "https://e.example"]
        );
    }

    #[test]
    fn consistent_hashing_is_bounded_and_moves_few_clusters() {
        let cs: Vec<Cluster> = (0..60)
            .map(|i| cluster(&format!("uid-{i}"), None))
            .collect();
        let a = assign(Method::ConsistentHashing, 4, &cs);
        let mut load = [0u32; 4];
        for c in &cs {
            load[a.shard_of(Some(&c.server), None) as usize] += 1;
        }
        // ceil(60 / 4 × 1.25) = 19
        assert!(load.iter().all(|l| *l <= 19), "{load:?}");
        let b = assign(Method::ConsistentHashing, 5, &cs);
        let moved = cs
            .iter()
            .filter(|c| a.shard_of(Some(&c.server), None) != b.shard_of(Some(&c.server), None))
            .count();
        // Round-robin would move most; consistent hashing about a fifth (plus bounding).
        assert!(moved < 30, "{moved} of 60 moved");
        // Deterministic: every replica computes the same answer.
        assert_eq!(a, assign(Method::ConsistentHashing, 4, &cs));
    }

    #[test]
    fn secret_shard_reads_data_and_string_data_and_rejects_garbage() {
        use serde_json::json;
        assert_eq!(
            secret_shard(&json!({"data": {"shard": "Mg=="}})),
            Ok(Some(2))
        );
        assert_eq!(
            secret_shard(&json!({"stringData": {"shard": " 1 "}})),
            Ok(Some(1))
        );
        assert_eq!(secret_shard(&json!({"data": {}})), Ok(None));
        assert!(secret_shard(&json!({"stringData": {"shard": "-1"}})).is_err());
        assert!(secret_shard(&json!({"stringData": {"shard": "two"}})).is_err());
        assert!(secret_shard(&json!({"data": {"shard": "%%%"}})).is_err());
    }

    #[test]
    fn ordinal_of_statefulset_host_names() {
        assert_eq!(ordinal("mooring-controller-2"), Some(2));
        assert_eq!(ordinal("mooring-controller-x"), None);
        assert_eq!(ordinal("mooring"), None);
        assert_eq!(ordinal("a-"), None);
    }

    fn at(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(s)
    }

    fn held(by: &str, renewed: u64) -> LeaseView {
        LeaseView {
            holder: Some(by.into()),
            renewed: Some(at(renewed)),
            duration: Duration::from_secs(10),
        }
    }

    #[test]
    fn lease_expiry_follows_renew_time_plus_duration() {
        let l = held("a", 100);
        assert_eq!(l.live_holder(at(109)), Some("a"));
        assert_eq!(l.live_holder(at(110)), None);
        assert!(l.claimable_by("a", at(105)) && !l.claimable_by("b", at(105)));
        assert!(l.claimable_by("b", at(111)));
        let released = LeaseView {
            holder: Some(String::new()),
            ..l.clone()
        };
        assert!(released.claimable_by("b", at(101)));
        let no_time = LeaseView { renewed: None, ..l };
        assert!(no_time.claimable_by("b", at(0)));
    }

    fn run(
        me: &str,
        pinned: Option<u32>,
        preferred: Option<u32>,
        leases: &BTreeMap<u32, LeaseView>,
        replicas: usize,
        now: u64,
    ) -> Plan {
        plan(&ClaimInput {
            shards: 3,
            me,
            pinned,
            preferred,
            leases,
            replicas,
            now: at(now),
        })
    }

    fn set(v: &[u32]) -> BTreeSet<u32> {
        v.iter().copied().collect()
    }

    #[test]
    fn first_replica_takes_its_fair_share_preferred_first() {
        let none = BTreeMap::new();
        let p = run("c-2", None, Some(2), &none, 1, 0);
        assert_eq!(p.acquire, set(&[2, 0, 1]));
        let p = run("c-2", None, Some(2), &none, 3, 0);
        assert_eq!(p.acquire, set(&[2]));
        let p = run("x", None, None, &none, 2, 0);
        assert_eq!(p.acquire, set(&[0, 1]));
    }

    #[test]
    fn expired_shards_are_taken_over_and_live_ones_left_alone() {
        let leases = BTreeMap::from([(0, held("a", 100)), (1, held("b", 100)), (2, held("c", 90))]);
        // c died at 90; at 105 its shard 2 is expired, a and b are live.
        let p = run("a", None, Some(0), &leases, 2, 105);
        assert_eq!(p.keep, set(&[0]));
        assert_eq!(p.acquire, set(&[2]));
        assert!(p.release.is_empty());
        // b also wants it: both try, the Lease update's resourceVersion picks one.
        assert_eq!(run("b", None, Some(1), &leases, 2, 105).acquire, set(&[2]));
    }

    #[test]
    fn a_returning_replica_gets_a_shard_back() {
        // a holds 0 and 2 after c's death; c comes back (3 live replicas).
        let leases = BTreeMap::from([
            (0, held("a", 100)),
            (1, held("b", 100)),
            (2, held("a", 100)),
        ]);
        let p = run("a", None, Some(0), &leases, 3, 105);
        assert_eq!((p.keep, p.release), (set(&[0]), set(&[2])));
        // c sees nothing free yet: waits.
        assert!(run("c", None, Some(2), &leases, 3, 105).acquire.is_empty());
        let mut after = leases.clone();
        after.insert(
            2,
            LeaseView {
                holder: None,
                ..held("a", 106)
            },
        );
        assert_eq!(run("c", None, Some(2), &after, 3, 107).acquire, set(&[2]));
        // a keeps its preferred shard even when it holds too many.
        let leases = BTreeMap::from([
            (0, held("a", 100)),
            (1, held("a", 100)),
            (2, held("b", 100)),
        ]);
        let p = run("a", None, Some(1), &leases, 3, 105);
        assert_eq!((p.keep, p.release), (set(&[1]), set(&[0])));
    }

    #[test]
    fn a_pinned_replica_only_ever_holds_its_shard() {
        let leases = BTreeMap::from([(1, held("other", 100))]);
        let p = run("me", Some(1), None, &leases, 1, 105);
        assert_eq!(p, Plan::default());
        let p = run("me", Some(1), None, &leases, 1, 200);
        assert_eq!(p.acquire, set(&[1]));
        let mine = BTreeMap::from([(1, held("me", 100)), (0, held("me", 100))]);
        let p = run("me", Some(1), None, &mine, 1, 105);
        assert_eq!((p.keep, p.release), (set(&[1]), set(&[0])));
        // Out of range: nothing (the controller refuses such a flag at start).
        assert_eq!(
            run("me", Some(5), None, &BTreeMap::new(), 1, 0),
            Plan::default()
        );
    }
}
