//! Sharding and HA: which destination clusters this replica reconciles, and whether it
//! runs the management-cluster loops, settled through `coordination.k8s.io/v1` Leases in
//! the control-plane namespace — the way Argo CD shards its application controller by
//! destination cluster, with Kubernetes' own lock object instead of Argo CD's heartbeat
//! ConfigMap.
//!
//! **Why Leases.** A Lease has a holder, a duration and a renew time, and every write
//! carries the `resourceVersion` it was computed from, so two replicas reaching for one
//! shard cannot both win (the second gets 409 Conflict). A replica killed with `kill -9`
//! stops renewing; its Leases expire after `leaseDurationSeconds` and the others take its
//! shards over. Three kinds of Lease, all labelled `mooring.io/lease`:
//!
//! - `mooring-controller-shard-<k>`: who owns shard k (`--shards N` makes N of them);
//! - `mooring-controller-leader`: who runs the management-cluster loops below;
//! - `mooring-controller-replica-<id>`: a presence Lease per live replica, so that a
//!   replica holding no shard (one just restarted) counts when the others compute their
//!   fair share (`ceil(shards / live replicas)`) and give shards back.
//!
//! The claiming decision is pure ([`mooring_engine::shard::plan`]); this module reads the
//! Leases, writes what the plan says every `lease_duration / 3`, and keeps the local view
//! ([`Sharding`]) the rest of the controller asks. A shard whose renewal has failed for
//! longer than `lease_duration - lease_duration / 4` is dropped locally *before* another
//! replica could take it (it takes it only after the full duration), so two replicas
//! never believe they own one shard at the same time, clocks permitting; the operation
//! state's resourceVersion guard ([`crate::operation`]) is the backstop if they ever do.
//!
//! **What follows a shard** (a destination cluster's shard, from
//! [`mooring_engine::shard::assign`] over the cluster Secrets; in-cluster without a Secret
//! and unregistered destinations are shard 0, as in Argo CD):
//! - Application reconciles and operations (the work queue skips apps of other shards;
//!   on gaining a shard every app is queued at once — the takeover);
//! - the Rollout and AnalysisRun controllers of a destination cluster (they write to
//!   that cluster, so its owner runs them).
//!
//! **What the leader runs** (they read and write management-cluster objects, not one
//! destination's, and running them twice would double their effects):
//! - ApplicationSets (two replicas would create/delete the same Applications);
//! - notifications (each would be sent twice);
//! - DR plans (a failover must happen once);
//! - the image watcher (one write-back commit per new tag);
//! - RollbackPolicies (one rollback per breach);
//! - the orphaned-resources scan and the policy audit (they write Events and status on
//!   many apps at once; once per interval is enough).
//!
//! **What every replica runs**: the Application, cluster Secret, repository Secret,
//! AppProject and policy-template watches (they only fill local caches), and the
//! destination clusters' live-object caches (a known gap for memory at scale: a replica
//! keeps caches of clusters it does not own).
//!
//! With `--shards 1` (the default, and `mooring up`) no Lease is taken: the one replica
//! owns shard 0 and leads.

use crate::Context;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};
use mooring_core::app::ApplicationDestination;
use mooring_engine::shard::{self, Assignment, Cluster, LeaseView};
use mooring_k8s::kube;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

/// The label every Mooring Lease carries (its value: `shard`, `leader` or `replica`).
pub const LEASE_LABEL: &str = "mooring.io/lease";
/// Name of shard k's Lease.
pub fn shard_lease_name(k: u32) -> String {
    format!("mooring-controller-shard-{k}")
}
/// Name of the leader Lease.
pub const LEADER_LEASE: &str = "mooring-controller-leader";

#[derive(Debug, thiserror::Error)]
pub enum ShardingError {
    #[error("--shard {shard} is out of range: there are {shards} shards (0..{})", shards - 1)]
    ShardOutOfRange { shard: u32, shards: u32 },
    #[error("--shards must be at least 1")]
    NoShards,
    #[error("--lease-duration must be at least 1 second (got {0:?})")]
    LeaseTooShort(Duration),
    #[error("lease {name}: {message}")]
    Lease { name: String, message: String },
}

/// The local view of ownership: what the work queue and the loops ask.
pub struct Sharding {
    shards: u32,
    replica: String,

    method: shard::Method,
    state: RwLock<State>,
    changed: tokio::sync::watch::Sender<u64>,
}

#[derive(Default)]
struct State {
    /// Whether the cluster Secrets have been listed once: until then no destination's
    /// shard is known, and nothing is owned (shard 0 would take every app).
    loaded: bool,
    owned: BTreeSet<u32>,
    leader: bool,
    /// Cluster Secret (`namespace/name`) → the cluster it registers.
    clusters: BTreeMap<String, Cluster>,
    assignment: Assignment,
}

impl Sharding {
    pub(crate) fn new(options: &crate::ShardingOptions) -> Sharding {
        let single = options.shards <= 1;
        Sharding {
            shards: options.shards.max(1),
            replica: options.replica.clone(),
            method: options.method,
            state: RwLock::new(State {
                owned: if single {
                    BTreeSet::from([0])
                } else {
                    BTreeSet::new()
                },
                leader: single,
                loaded: single,
                ..Default::default()
            }),
            changed: tokio::sync::watch::channel(0).0,
        }
    }

    /// Check the options before anything starts.
    pub fn validate(options: &crate::ShardingOptions) -> Result<(), ShardingError> {
        if options.shards == 0 {
            return Err(ShardingError::NoShards);
        }
        if let Some(k) = options.shard {
            if k >= options.shards {
                return Err(ShardingError::ShardOutOfRange {
                    shard: k,
                    shards: options.shards,
                });
            }
        }
        if options.shards > 1 && options.lease_duration < Duration::from_secs(1) {
            return Err(ShardingError::LeaseTooShort(options.lease_duration));
        }
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The shard count.
    pub fn shards(&self) -> u32 {
        self.shards
    }

    /// The shard of a destination.
    pub fn shard_of(&self, d: &ApplicationDestination) -> u32 {
        if self.shards <= 1 {
            return 0;
        }
        let st = self.read();
        st.assignment
            .shard_of(d.server.as_deref(), d.name.as_deref())
    }

    /// Whether this replica reconciles apps deploying to `d`.
    pub fn owns(&self, d: &ApplicationDestination) -> bool {
        let s = self.shard_of(d);
        let st = self.read();
        st.loaded && st.owned.contains(&s)
    }

    /// The cluster Secrets have been listed: shards of destinations are known.
    pub(crate) fn set_loaded(&self) {
        let mut st = self.write();
        if st.loaded {
            return;
        }
        st.loaded = true;
        drop(st);
        self.bump();
    }

    /// Whether this replica owns the cluster at `server`.
    pub fn owns_server(&self, server: &str) -> bool {
        self.owns(&ApplicationDestination {
            server: Some(server.to_string()),
            ..Default::default()
        })
    }

    /// Shards this replica owns now.
    pub fn owned(&self) -> BTreeSet<u32> {
        self.read().owned.clone()
    }

    /// Whether this replica runs the management-cluster loops.
    pub fn is_leader(&self) -> bool {
        self.read().leader
    }

    /// A receiver that changes whenever ownership, leadership or the assignment does.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }

    /// A cluster Secret was added or changed: recompute the assignment.
    pub(crate) fn cluster_secret(&self, id: &str, secret: &Value, entry_server: &str, name: &str) {
        let explicit = match shard::secret_shard(secret) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(
                    "cluster Secret {id}: {e}; the cluster is assigned by the sharding method"
                );
                None
            }
        };
        let cluster = Cluster {
            id: secret
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            server: entry_server.to_string(),
            name: name.to_string(),
            shard: explicit,
        };
        let mut st = self.write();
        if st.clusters.get(id) == Some(&cluster) {
            return;
        }
        st.clusters.insert(id.to_string(), cluster);
        drop(st);
        self.reassign();
    }

    /// A cluster Secret was deleted.
    pub(crate) fn forget_cluster(&self, id: &str) {
        if self.write().clusters.remove(id).is_some() {
            self.reassign();
        }
    }

    fn reassign(&self) {
        if self.shards <= 1 {
            return;
        }
        let mut st = self.write();
        let clusters: Vec<Cluster> = st.clusters.values().cloned().collect();
        let next = shard::assign(self.method, self.shards, &clusters);
        for w in &next.warnings {
            if !st.assignment.warnings.contains(w) {
                tracing::warn!("{w}");
            }
        }
        if next == st.assignment {
            return;
        }
        st.assignment = next;
        drop(st);
        self.bump();
    }

    /// Apply the outcome of a Lease round; true when something changed.
    fn set(&self, owned: BTreeSet<u32>, leader: bool) -> bool {
        let mut st = self.write();

        if st.owned == owned && st.leader == leader {
            return false;
        }
        st.owned = owned;
        st.leader = leader;
        drop(st);
        self.bump();
        true
    }
}

fn lease_resource() -> ApiResource {
    mooring_k8s::api_resource("coordination.k8s.io", "v1", "Lease", "leases")
}

/// The presence Lease name of a replica identity: a DNS label (lowercase alphanumerics
/// and dashes) with a hash suffix, so distinct identities never share one.
pub fn replica_lease_name(identity: &str) -> String {
    let clean: String = identity
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(20)
        .collect();
    let h = shard::fnv32a(identity.as_bytes());
    format!(
        "mooring-controller-replica-{}-{h:08x}",
        clean.trim_matches('-')
    )
}

/// A Lease as read: its view for the plan and the resourceVersion to write against.
struct Read {
    view: LeaseView,
    rv: String,
    transitions: i64,
    raw: DynamicObject,
}

fn read_lease(o: DynamicObject) -> Read {
    let spec = o.data.get("spec").cloned().unwrap_or(Value::Null);
    let time = |k: &str| {
        spec.get(k)
            .and_then(Value::as_str)
            .and_then(|s| mooring_core::time::parse(s).ok())
            .map(SystemTime::from)
    };
    let duration = spec
        .get("leaseDurationSeconds")
        .and_then(Value::as_i64)
        .filter(|d| *d > 0)
        .unwrap_or(0);
    Read {
        view: LeaseView {
            holder: spec
                .get("holderIdentity")
                .and_then(Value::as_str)
                .map(str::to_string),
            renewed: time("renewTime").or_else(|| time("acquireTime")),
            duration: Duration::from_secs(duration as u64),
        },
        rv: o.metadata.resource_version.clone().unwrap_or_default(),
        transitions: spec
            .get("leaseTransitions")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        raw: o,
    }
}

/// `metav1.MicroTime` of `t`.
fn micro_time(t: SystemTime) -> String {
    let t =
        mooring_core::time::Timestamp::try_from(t).unwrap_or_else(|_| mooring_core::time::now());
    mooring_core::time::format_micros(t)
}

/// What to write to one Lease.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Write {
    /// Take it (create, or update a free/expired one): a new holder.
    Acquire,
    /// Renew it (already ours).
    Renew,
    /// Give it up: holder cleared.
    Release,
}

/// One replica's Lease round trip.
struct Leases {
    api: Api<DynamicObject>,
    me: String,
    duration: Duration,
}

impl Leases {
    /// This replica's view of the Leases in the control-plane namespace.
    fn new(ctx: &Context) -> Leases {
        Leases {
            api: Api::namespaced_with(
                ctx.management.client().clone(),
                ctx.namespace(),
                &lease_resource(),
            ),
            me: ctx.options.sharding.replica.clone(),
            duration: ctx.options.sharding.lease_duration,
        }
    }

    /// Write `what` to Lease `name` (read as `current`, if it exists), labelled `kind`.
    /// A 409 (someone else wrote it since) or 404 is `Ok(false)`: not ours this round.
    async fn write(
        &self,
        name: &str,
        kind: &str,
        current: Option<&Read>,
        what: Write,
    ) -> Result<bool, ShardingError> {
        let now = micro_time(SystemTime::now());
        let secs = self.duration.as_secs().max(1);
        let fail = |e: kube::Error| ShardingError::Lease {
            name: name.to_string(),
            message: e.to_string(),
        };
        let Some(current) = current else {
            if what == Write::Release {
                return Ok(true);
            }
            let obj: DynamicObject = serde_json::from_value(json!({
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "labels": {LEASE_LABEL: kind}},
                "spec": {
                    "holderIdentity": self.me, "leaseDurationSeconds": secs,
                    "acquireTime": now, "renewTime": now, "leaseTransitions": 0,
                },
            }))
            .map_err(|e| ShardingError::Lease {
                name: name.to_string(),
                message: e.to_string(),
            })?;
            return match self.api.create(&PostParams::default(), &obj).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(fail(e)),
            };
        };
        let mut obj = current.raw.clone();
        obj.metadata.resource_version = Some(current.rv.clone());
        let previous = current.view.holder.clone().unwrap_or_default();
        let spec = match what {
            Write::Acquire => json!({
                "holderIdentity": self.me, "leaseDurationSeconds": secs,
                "acquireTime": now, "renewTime": now,
                "leaseTransitions": if previous == self.me || previous.is_empty() && current.transitions == 0 {
                    current.transitions
                } else {
                    current.transitions + 1
                },
            }),
            Write::Renew => {
                let mut s = obj.data.get("spec").cloned().unwrap_or_else(|| json!({}));
                s["renewTime"] = json!(now);
                s["leaseDurationSeconds"] = json!(secs);
                s
            }
            // As client-go's leader election releases: no holder, kept transitions.
            Write::Release => json!({
                "leaseDurationSeconds": 1, "renewTime": now,
                "leaseTransitions": current.transitions,
            }),
        };
        obj.data["spec"] = spec;
        match self.api.replace(name, &PostParams::default(), &obj).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => Ok(false),
            Err(e) => Err(fail(e)),
        }
    }
}

/// Publish this replica's sharding state for `/metrics`.
fn publish(ctx: &Context) {
    let st = ctx.sharding.read();
    ctx.metrics.set_sharding(crate::metrics::ShardingState {
        replica: ctx.sharding.replica.clone(),
        shards: ctx.sharding.shards,
        owned: st.owned.clone(),
        leader: st.leader,
    });
}

/// Start the Lease loop and the takeover task (nothing with one shard).
pub(crate) fn start(ctx: Arc<Context>) -> Vec<tokio::task::JoinHandle<()>> {
    publish(&ctx);
    if ctx.options.sharding.shards <= 1 {
        return vec![];
    }
    vec![tokio::spawn(run(ctx.clone())), tokio::spawn(takeover(ctx))]
}

/// Whenever ownership or the assignment changes, queue every app this replica owns now:
/// the apps of a shard just taken over are reconciled at once, not at the next poll
/// (those it no longer owns are skipped by the work queue).
async fn takeover(ctx: Arc<Context>) {
    let mut rx = ctx.sharding.subscribe();
    while rx.changed().await.is_ok() {
        if ctx.sharding.owned().is_empty() {
            continue;
        }
        for app in crate::all_apps(&ctx).await {
            if ctx.sharding.owns(&app.spec.destination) {
                ctx.enqueue(&format!("{}/{}", app.namespace(), app.name()));
            }
        }
    }
}

/// The Lease loop: one round every `lease_duration / 3`.
async fn run(ctx: Arc<Context>) {
    let opts = ctx.options.sharding.clone();
    let leases = Leases::new(&ctx);
    let preferred = opts
        .shard
        .is_none()
        .then(|| {
            shard::ordinal(&opts.replica).or_else(|| {
                std::env::var("HOSTNAME")
                    .ok()
                    .as_deref()
                    .and_then(shard::ordinal)
            })
        })
        .flatten()
        .filter(|k| *k < opts.shards);
    tracing::info!(
        replica = opts.replica,
        shards = opts.shards,
        pinned = ?opts.shard,
        preferred = ?preferred,
        method = opts.method.as_str(),
        "sharding with Leases in namespace {}",
        ctx.namespace()
    );
    // When each owned shard (and the leader Lease: key `None`) was last renewed.
    let mut renewed: HashMap<Option<u32>, Instant> = HashMap::new();
    let period = (opts.lease_duration / 3).max(Duration::from_millis(200));
    loop {
        if let Err(e) = round(&leases, &opts, preferred, &mut renewed).await {
            tracing::warn!("sharding: {e}");
        }
        // Ownership not renewed in time is dropped before anyone else may take it.
        let margin = opts.lease_duration / 4;
        let deadline = opts.lease_duration.saturating_sub(margin);
        renewed.retain(|_, at| at.elapsed() < deadline);
        let owned: BTreeSet<u32> = renewed.keys().flatten().copied().collect();
        let leader = renewed.contains_key(&None);
        let before = ctx.sharding.owned();
        let was_leader = ctx.sharding.is_leader();
        if ctx.sharding.set(owned.clone(), leader) {
            publish(&ctx);
            for k in owned.difference(&before) {
                tracing::info!(replica = opts.replica, shard = k, "acquired shard");
            }
            for k in before.difference(&owned) {
                tracing::info!(replica = opts.replica, shard = k, "lost shard");
            }
            if leader != was_leader {
                tracing::info!(replica = opts.replica, leader, "leadership changed");
            }
        }
        tokio::time::sleep(period).await;
    }
}

async fn round(
    leases: &Leases,
    opts: &crate::ShardingOptions,
    preferred: Option<u32>,
    renewed: &mut HashMap<Option<u32>, Instant>,
) -> Result<(), ShardingError> {
    let list = leases
        .api
        .list(&ListParams::default().labels(LEASE_LABEL))
        .await
        .map_err(|e| ShardingError::Lease {
            name: "(list)".into(),
            message: e.to_string(),
        })?;
    let mut by_name: HashMap<String, Read> = list
        .items
        .into_iter()
        .filter_map(|o| Some((o.metadata.name.clone()?, read_lease(o))))
        .collect();
    let now = SystemTime::now();
    // Presence first: this replica counts in everyone's fair share.
    let presence = replica_lease_name(&opts.replica);
    let mine = by_name.get(&presence);
    let what = if mine.is_some_and(|r| r.view.holder.as_deref() == Some(&leases.me)) {
        Write::Renew
    } else {
        Write::Acquire
    };
    leases.write(&presence, "replica", mine, what).await?;
    let replicas = 1 + by_name
        .iter()
        .filter(|(n, r)| {
            **n != presence
                && r.raw
                    .metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(LEASE_LABEL))
                    .map(String::as_str)
                    == Some("replica")
                && r.view.live_holder(now).is_some()
        })
        .count();
    let shard_leases: BTreeMap<u32, LeaseView> = (0..opts.shards)
        .filter_map(|k| Some((k, by_name.get(&shard_lease_name(k))?.view.clone())))
        .collect();
    let plan = shard::plan(&shard::ClaimInput {
        shards: opts.shards,
        me: &leases.me,
        pinned: opts.shard,
        preferred,
        leases: &shard_leases,
        replicas,
        now,
    });
    let steps = plan
        .keep
        .iter()
        .map(|k| (*k, Write::Renew))
        .chain(plan.acquire.iter().map(|k| (*k, Write::Acquire)))
        .chain(plan.release.iter().map(|k| (*k, Write::Release)));
    for (k, what) in steps {
        let name = shard_lease_name(k);
        let ok = leases.write(&name, "shard", by_name.get(&name), what).await;
        match (what, ok) {
            (Write::Release, Ok(_)) => {
                renewed.remove(&Some(k));
                tracing::info!(replica = leases.me, shard = k, "released shard (rebalance)");
            }
            (_, Ok(true)) => {
                renewed.insert(Some(k), Instant::now());
            }
            (_, Ok(false)) => {
                // Someone else wrote it first: not ours (a renewal that conflicts means
                // the Lease was taken: drop it now).
                renewed.remove(&Some(k));
            }
            (_, Err(e)) => tracing::warn!("sharding: {e}"),
        }
    }
    // Shards the plan does not mention are not ours.
    renewed.retain(|k, _| k.is_none_or(|k| plan.keep.contains(&k) || plan.acquire.contains(&k)));
    // The leader Lease.
    let leader = by_name.remove(LEADER_LEASE);
    let claimable = leader
        .as_ref()
        .is_none_or(|r| r.view.claimable_by(&leases.me, now));
    if claimable {
        let what = if leader
            .as_ref()
            .is_some_and(|r| r.view.live_holder(now) == Some(leases.me.as_str()))
        {
            Write::Renew
        } else {
            Write::Acquire
        };
        match leases
            .write(LEADER_LEASE, "leader", leader.as_ref(), what)
            .await
        {
            Ok(true) => {
                renewed.insert(None, Instant::now());
            }
            Ok(false) => {
                renewed.remove(&None);
            }
            Err(e) => tracing::warn!("sharding: {e}"),
        }
    } else {
        renewed.remove(&None);
    }
    Ok(())
}

/// Give up every Lease this replica holds (graceful shutdown): the others take its shards
/// at once instead of after the lease duration.
pub async fn release_all(ctx: &Context) {
    let opts = &ctx.options.sharding;
    if opts.shards <= 1 {
        return;
    }
    let leases = Leases::new(ctx);
    ctx.sharding.set(BTreeSet::new(), false);
    let Ok(list) = leases
        .api
        .list(&ListParams::default().labels(LEASE_LABEL))
        .await
    else {
        return;
    };
    for o in list.items {
        let Some(name) = o.metadata.name.clone() else {
            continue;
        };
        let r = read_lease(o);
        if r.view.holder.as_deref() != Some(opts.replica.as_str()) {
            continue;
        }
        if name == replica_lease_name(&opts.replica) {
            let _ = leases.api.delete(&name, &Default::default()).await;
            continue;
        }
        if let Err(e) = leases.write(&name, "", Some(&r), Write::Release).await {
            tracing::warn!("releasing: {e}");
        } else {
            tracing::info!(replica = opts.replica, lease = name, "released");
        }
    }
}

/// Run the loops `start` makes only while `active` holds: started when it becomes true,
/// aborted when it becomes false (leadership lost, shard moved).
pub(crate) fn gated<A, S>(ctx: Arc<Context>, active: A, start: S) -> tokio::task::JoinHandle<()>
where
    A: Fn(&Context) -> bool + Send + 'static,
    S: Fn() -> Vec<tokio::task::JoinHandle<()>> + Send + 'static,
{
    tokio::spawn(async move {
        let mut rx = ctx.sharding.subscribe();
        let mut running: Vec<tokio::task::JoinHandle<()>> = vec![];
        // Aborts the loops when this supervisor is aborted.
        struct Guard<'a>(&'a mut Vec<tokio::task::JoinHandle<()>>);
        impl Drop for Guard<'_> {
            fn drop(&mut self) {
                for t in self.0.drain(..) {
                    t.abort();
                }
            }
        }
        let guard = Guard(&mut running);
        loop {
            let want = active(&ctx);
            if want && guard.0.is_empty() {
                guard.0.extend(start());
            } else if !want {
                for t in guard.0.drain(..) {
                    t.abort();
                }
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn micro_time_has_six_fractional_digits() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        assert_eq!(micro_time(t), "2023-11-14T22:13:20.123456Z");
    }

    #[test]
    fn replica_lease_names_are_dns_labels_and_distinct() {
        let a = replica_lease_name("Host_A:1234");
        assert!(
            a.starts_with("mooring-controller-replica-host-a-1234-"),
            "{a}"
        );
        let long = replica_lease_name(&"x".repeat(300));
        assert!(long.len() <= 63, "{long}");
        assert!(a.len() <= 63);
        assert_ne!(a, replica_lease_name("host-a-1234"));
        assert!(a
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'));
    }

    #[test]
    fn bad_options_are_refused() {
        let o = crate::ShardingOptions {
            shards: 3,
            shard: Some(3),
            ..Default::default()
        };
        assert!(Sharding::validate(&o)
            .is_err_and(|e| e.to_string().contains("--shard 3 is out of range")));
        let o = crate::ShardingOptions {
            shards: 0,
            ..Default::default()
        };
        assert!(Sharding::validate(&o).is_err());
        let o = crate::ShardingOptions {
            shards: 2,
            lease_duration: Duration::from_millis(10),
            ..Default::default()
        };
        assert!(Sharding::validate(&o).is_err());
    }
}
