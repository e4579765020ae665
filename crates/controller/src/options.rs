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
        }
    }
}
