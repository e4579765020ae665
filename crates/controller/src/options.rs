//! Controller settings (plain data), with the defaults `mooring up` and the tests use.

use std::time::Duration;

/// Controller settings (plain data).
#[derive(Debug, Clone)]
pub struct ControllerOptions {
    /// Field manager for server-side apply (and the owner of fields removed from Git).
    pub manager: String,
    /// Git poll interval (Argo CD's default: 3 minutes), jittered by up to 10 %.
    pub poll: Duration,
    /// How often a running operation is looked at again.
    pub operation_poll: Duration,
    /// Where Git object stores are cached.
    pub cache_dir: std::path::PathBuf,
    /// Argo CD-layout directory of Lua health checks.
    pub health_dir: Option<std::path::PathBuf>,
    pub workers: usize,
    /// Repository URL rewrites (git's `insteadOf`): an Application naming the first URL
    /// is fetched from the second. `mooring up` uses this to serve a local repository
    /// under the URL the manifests were written for.
    pub repo_aliases: Vec<(String, String)>,
    /// How often live objects are audited against the policy in force (`None`: never).
    pub policy_audit: Option<Duration>,
    /// How often apps whose project sets `orphanedResources` are scanned for unmanaged
    /// objects in their destination namespace (`None`: never).
    pub orphan_scan: Option<Duration>,
    /// The Prometheus that analysis and RollbackPolicies query when they name none
    /// (`mooring up` sets its local one).
    pub prometheus_address: Option<String>,
    /// The control-plane namespace (Applications, AppProjects, ApplicationSets, cluster
    /// and repository Secrets are read from there) and the other namespaces Applications
    /// and ApplicationSets may live in (`--application-namespaces`).
    pub control_plane: mooring_engine::project::ControlPlane,
    /// Endpoints a user-written URL never reaches unless `outbound.allow` names them
    /// exactly (URL, what it is): the management API server, Mooring's REST API
    /// ([`outbound::Outbound::protect`]; destination clusters are added as they register).
    pub outbound_protected: Vec<(String, String)>,
    /// How often the image watcher lists the tags of a watched image whose registry sets
    /// no `interval` (Image Updater's `--interval`, default 2 minutes); a registry's push
    /// notification checks at once.
    pub image_interval: Duration,
    /// How this replica takes part in sharding (one replica, no Leases, by default).
    pub sharding: ShardingOptions,
}

/// How this replica takes part in sharding (Argo CD's `--shards`, `--shard`,
/// `--sharding-method`): see `mooring_engine::shard` and `crate::sharding`.
#[derive(Debug, Clone)]
pub struct ShardingOptions {
    /// Number of shards; 1 means this replica handles every cluster and takes no Lease.
    pub shards: u32,
    /// A pinned shard (`--shard K`, or the ordinal of a StatefulSet pod's name); `None`
    /// claims shards dynamically through Leases.
    pub shard: Option<u32>,
    pub method: mooring_engine::shard::Method,
    /// How long a Lease is held without renewal before another replica may take it.
    pub lease_duration: Duration,
    /// This replica's `holderIdentity` in Leases (host name and process id by default).
    pub replica: String,
}

impl Default for ShardingOptions {
    fn default() -> Self {
        ShardingOptions {
            shards: 1,
            shard: None,
            method: Default::default(),
            lease_duration: Duration::from_secs(15),
            replica: format!(
                "{}-{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "mooring".into()),
                std::process::id()
            ),
        }
    }
}

impl Default for ControllerOptions {
    fn default() -> Self {
        ControllerOptions {
            manager: "mooring".into(),
            poll: Duration::from_secs(180),
            operation_poll: Duration::from_millis(250),
            cache_dir: std::env::temp_dir().join("mooring-repos"),
            health_dir: None,
            workers: 4,
            repo_aliases: vec![],
            policy_audit: Some(Duration::from_secs(60)),
            orphan_scan: Some(Duration::from_secs(60)),
            prometheus_address: None,
            control_plane: Default::default(),
            outbound_protected: vec![],
            image_interval: Duration::from_secs(120),
            sharding: Default::default(),
        }
    }
}
