//! The Argo CD `AppProject` (`argoproj.io/v1alpha1`) as Rust types.
//!
//! A project is the unit of multi-tenancy: which repositories an Application may render,
//! which clusters and namespaces it may deploy to, which kinds of objects it may create,
//! who may act on its apps (roles) and when it may sync (sync windows). Users bring their
//! Argo CD manifests unchanged, so field names follow Argo CD's JSON exactly. The rules
//! themselves are evaluated by `mooring_engine::project` (pure), and enforced by the
//! controller before anything is applied.
//!
//! One distinction matters and is kept with `Option`: a `namespaceResourceWhitelist` that
//! is absent permits every namespaced kind, while an empty one permits none (Argo CD's
//! `nil` vs `[]`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The project every Application without `spec.project` belongs to. When no `AppProject`
/// of that name exists, it permits everything (Argo CD creates it so).
pub const DEFAULT_PROJECT: &str = "default";

/// A `{group, kind}` pair of a resource white/blacklist; both accept `*` globs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, Default)]
pub struct GroupKind {
    #[serde(default)]
    pub group: String,
    pub kind: String,
}

/// One `spec.destinations[]` entry: a cluster (by server URL or name) and a namespace,
/// each a glob, optionally negated with a leading `!`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, Default)]
pub struct ProjectDestination {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub server: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

/// A JWT token issued for a project role (`argocd proj role create-token`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, Default)]
pub struct JwtToken {
    /// Issued at (Unix seconds).
    #[serde(default)]
    pub iat: i64,
    /// Expires at (Unix seconds; 0 = never).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub exp: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// A project role: casbin policy lines (`p, proj:NAME:ROLE, applications, ACTION,
/// NAME/APP, allow|deny`) bound to SSO groups and to the role's tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProjectRole {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jwt_tokens: Vec<JwtToken>,
}

/// `allow` or `deny`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum SyncWindowKind {
    #[default]
    Allow,
    Deny,
}

impl SyncWindowKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncWindowKind::Allow => "allow",
            SyncWindowKind::Deny => "deny",
        }
    }
}

/// A sync window: from every start of the cron `schedule`, for `duration` (Go syntax),
/// syncs of the matching applications are allowed (`allow`) or refused (`deny`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct SyncWindow {
    pub kind: SyncWindowKind,
    pub schedule: String,
    pub duration: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applications: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clusters: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub manual_sync: bool,
    /// IANA time zone of `schedule` (default UTC).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub time_zone: String,
    /// Match only apps that every given selector (applications, namespaces, clusters)
    /// matches, instead of any one of them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub and_operator: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// A resource `orphanedResources.ignore` leaves out of the warning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, Default)]
pub struct OrphanedResourceKey {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// `spec.orphanedResources`: monitor objects in the destination namespaces that no
/// Application manages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, Default)]
pub struct OrphanedResourcesMonitorSettings {
    /// Raise an `OrphanedResourceWarning` condition on the apps (Argo CD's default: true
    /// once the section exists).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn: Option<bool>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore: Vec<OrphanedResourceKey>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct AppProjectSpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_repos: Vec<String>,
    /// Namespaces (globs) outside the project's own whose Applications may use it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source_namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<ProjectDestination>,
    /// Cluster-scoped kinds the project may create; empty or absent = none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_resource_whitelist: Vec<GroupKind>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cluster_resource_blacklist: Vec<GroupKind>,
    /// Namespaced kinds the project may create; absent = all, empty = none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_resource_whitelist: Option<Vec<GroupKind>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_resource_blacklist: Vec<GroupKind>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<ProjectRole>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sync_windows: Vec<SyncWindow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orphaned_resources: Option<OrphanedResourcesMonitorSettings>,
    /// Open-ended Argo CD fields Mooring does not interpret (signatureKeys,
    /// permitOnlyProjectScopedClusters, destinationServiceAccounts, …), kept verbatim.
    #[serde(flatten, default, skip_serializing_if = "serde_json::Map::is_empty")]
    #[schemars(skip)]
    pub extra: serde_json::Map<String, Value>,
}

/// An Argo CD `AppProject` object (metadata kept as JSON: it is Kubernetes' own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppProject {
    #[serde(default = "api_version")]
    pub api_version: String,
    #[serde(default = "kind")]
    pub kind: String,
    #[serde(default)]
    pub metadata: Value,
    #[serde(default)]
    pub spec: AppProjectSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
}

fn api_version() -> String {
    format!("{}/{}", crate::app::GROUP, crate::app::VERSION)
}

fn kind() -> String {
    "AppProject".into()
}

impl AppProject {
    pub fn name(&self) -> &str {
        crate::app::metadata_str(&self.metadata, "name")
    }

    pub fn namespace(&self) -> &str {
        crate::app::metadata_str(&self.metadata, "namespace")
    }

    /// The `default` project as Argo CD creates it when none exists: any source, any
    /// destination, any kind.
    pub fn default_project(namespace: &str) -> AppProject {
        let any = GroupKind {
            group: "*".into(),
            kind: "*".into(),
        };
        AppProject {
            api_version: api_version(),
            kind: kind(),
            metadata: serde_json::json!({"name": DEFAULT_PROJECT, "namespace": namespace}),
            spec: AppProjectSpec {
                source_repos: vec!["*".into()],
                destinations: vec![ProjectDestination {
                    server: "*".into(),
                    name: "*".into(),
                    namespace: "*".into(),
                }],
                cluster_resource_whitelist: vec![any],
                ..Default::default()
            },
            status: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_argo_cd_app_project_unchanged() {
        let yaml = r#"
apiVersion: argoproj.io/v1alpha1
kind: AppProject
metadata: {name: ml-platform, namespace: argocd}
spec:
  description: ML platform
  sourceRepos: ["https://github.com/acme/*", "!https://github.com/acme/secret"]
  destinations:
  - {server: "*", namespace: "ml-*"}
  - {name: gpu-1, namespace: "!kube-system"}
  clusterResourceWhitelist: [{group: "", kind: Namespace}]
  namespaceResourceWhitelist: []
  namespaceResourceBlacklist: [{group: "", kind: ResourceQuota}]
  roles:
  - name: ml-engineers
    policies: ["p, proj:ml-platform:ml-engineers, applications, sync, ml-platform/*, allow"]
    groups: [ml-eng]
    jwtTokens: [{iat: 1700000000, id: abc}]
  syncWindows:
  - {kind: deny, schedule: "0 22 * * *", duration: 1h, clusters: ["*"], manualSync: true, timeZone: Europe/Paris}
  orphanedResources: {warn: true, ignore: [{kind: ConfigMap, name: kube-root-ca.crt}]}
  signatureKeys: [{keyID: ABCDEF}]
"#;
        let v = crate::yaml::parse_one(yaml).expect("yaml");
        let p: AppProject = serde_json::from_value(v.clone()).expect("project");
        assert_eq!(p.name(), "ml-platform");
        assert_eq!(p.spec.destinations[1].name, "gpu-1");
        assert_eq!(p.spec.namespace_resource_whitelist, Some(vec![]));
        assert_eq!(p.spec.sync_windows[0].kind, SyncWindowKind::Deny);
        assert!(p.spec.sync_windows[0].manual_sync);
        assert_eq!(p.spec.roles[0].jwt_tokens[0].id, "abc");
        let back = serde_json::to_value(&p).expect("serialise");
        assert_eq!(back["spec"], v["spec"], "round trip keeps every field");
    }
}
