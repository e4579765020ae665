//! The Argo CD `Application` (`argoproj.io/v1alpha1`) as Rust types, and the health and
//! sync vocabulary shared by the engine, controller, API and UI.
//!
//! Users bring their Argo CD manifests unchanged, so field names follow Argo CD's JSON
//! exactly (camelCase, the same optionality); unknown fields are kept in `extra` maps where
//! Argo CD has open-ended sections, so a round trip through Mooring loses nothing.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

mod operation;
pub use operation::{
    Operation, OperationInitiator, OperationPhase, OperationState, OperationStateError,
    ResourceResult, SyncOperation, SyncOperationResource, SyncOperationResult,
};

pub const GROUP: &str = "argoproj.io";
pub const VERSION: &str = "v1alpha1";
/// The in-cluster destination, as in Argo CD: the management cluster itself.
pub const IN_CLUSTER: &str = "https://kubernetes.default.svc";
/// The in-cluster destination's cluster name, as in Argo CD.
pub const IN_CLUSTER_NAME: &str = "in-cluster";

/// Whether a cluster reference (a server URL or a cluster name, e.g. a `--cluster` flag)
/// names Argo CD's local cluster: [`IN_CLUSTER`] or [`IN_CLUSTER_NAME`].
pub fn names_in_cluster(cluster: &str) -> bool {
    cluster == IN_CLUSTER || cluster == IN_CLUSTER_NAME
}

/// The control-plane namespace by default, as Argo CD installs itself: Applications,
/// AppProjects, ApplicationSets, cluster and repository Secrets and Mooring's own settings
/// live there (`--namespace` / `MOORING_NAMESPACE` choose another).
pub const CONTROL_PLANE_NAMESPACE: &str = "argocd";

/// Mooring's settings ConfigMap in the control-plane namespace (Argo CD's `argocd-cm`):
/// accounts, repository aliases, application namespaces, the outbound allowlist.
pub const SETTINGS_CONFIGMAP: &str = "mooring-cm";

/// An Application's instance name (Argo CD's `Application.InstanceName`): what its
/// tracking ids name. `name` for an Application in the control-plane namespace,
/// `namespace_name` for one elsewhere ("applications in any namespace"), so two apps of
/// the same name in different namespaces never claim each other's resources. (`_` cannot
/// occur in a Kubernetes namespace or object name, so the form is unambiguous.)
pub fn instance_name(namespace: &str, name: &str, control_plane: &str) -> String {
    if namespace.is_empty() || namespace == control_plane {
        name.to_string()
    } else {
        format!("{namespace}_{name}")
    }
}

/// Split an Application reference as Argo CD's CLI does (`ParseFromQualifiedName`):
/// `namespace/name`, or `name` in `default_namespace`.
pub fn qualified_name<'a>(reference: &'a str, default_namespace: &'a str) -> (&'a str, &'a str) {
    match reference.split_once('/') {
        Some((ns, name)) if !ns.is_empty() => (ns, name),
        Some((_, name)) => (default_namespace, name),
        None => (default_namespace, reference),
    }
}

/// Health of a resource or an application, ordered from best to worst so that the health
/// of an application is the maximum of its resources' (Argo CD's rule).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    Default,
)]
pub enum HealthStatusCode {
    #[default]
    Healthy,
    Suspended,
    Progressing,
    Missing,
    Degraded,
    Unknown,
}

impl HealthStatusCode {
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatusCode::Healthy => "Healthy",
            HealthStatusCode::Suspended => "Suspended",
            HealthStatusCode::Progressing => "Progressing",
            HealthStatusCode::Missing => "Missing",
            HealthStatusCode::Degraded => "Degraded",
            HealthStatusCode::Unknown => "Unknown",
        }
    }

    /// Parse Argo CD's status strings (as Lua health scripts return them).
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Healthy" => HealthStatusCode::Healthy,
            "Suspended" => HealthStatusCode::Suspended,
            "Progressing" => HealthStatusCode::Progressing,
            "Missing" => HealthStatusCode::Missing,
            "Degraded" => HealthStatusCode::Degraded,
            "Unknown" => HealthStatusCode::Unknown,
            _ => return None,
        })
    }

    /// Argo CD's ordering for aggregation: Healthy < Suspended < Progressing < Missing <
    /// Degraded < Unknown (`IsWorse`).
    pub fn worst(items: impl IntoIterator<Item = HealthStatusCode>) -> HealthStatusCode {
        items.into_iter().max().unwrap_or(HealthStatusCode::Healthy)
    }
}

impl std::fmt::Display for HealthStatusCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, Default)]
pub struct HealthStatus {
    pub status: HealthStatusCode,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl HealthStatus {
    pub fn new(status: HealthStatusCode, message: impl Into<String>) -> Self {
        HealthStatus {
            status,
            message: message.into(),
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema, Default,
)]
pub enum SyncStatusCode {
    Synced,
    OutOfSync,
    #[default]
    Unknown,
}

/// `spec.source`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSource {
    #[serde(rename = "repoURL")]
    pub repo_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub directory: Option<DirectorySource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kustomize: Option<KustomizeSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub helm: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugin: Option<Value>,
    /// `ref`: in `spec.sources`, names this source so that Helm value files of another
    /// source can read from its repository as `$NAME/path`. A `ref` source without
    /// `path` is not rendered itself.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub ref_: Option<String>,
    /// `name`: a label for the source (Argo CD's `--source-names`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct DirectorySource {
    #[serde(default)]
    pub recurse: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct KustomizeSource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_suffix: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub common_annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Replica count overrides (`[{name, count}]`), as kustomize's `replicas` field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<KustomizeReplica>,
}

/// One `source.kustomize.replicas[]` entry. `count` is an int-or-string as in Argo CD
/// (an ApplicationSet template writes `count: '{{replicas}}'`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
pub struct KustomizeReplica {
    pub name: String,
    pub count: Value,
}

impl KustomizeReplica {
    /// The count as a number: an integer, or a string holding one.
    pub fn count(&self) -> Option<i64> {
        match &self.count {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationDestination {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl ApplicationDestination {
    /// Whether this destination is the management cluster itself: the server
    /// [`IN_CLUSTER`], the name [`IN_CLUSTER_NAME`], or neither server nor name given.
    /// The one definition the controller, `mooring check` and the CLI share.
    pub fn is_in_cluster(&self) -> bool {
        let server = self.server.as_deref().unwrap_or_default();
        let name = self.name.as_deref().unwrap_or_default();
        server == IN_CLUSTER || name == IN_CLUSTER_NAME || (server.is_empty() && name.is_empty())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct SyncPolicyAutomated {
    #[serde(default)]
    pub prune: bool,
    #[serde(default)]
    pub self_heal: bool,
    #[serde(default)]
    pub allow_empty: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct Backoff {
    /// Go duration string, e.g. `5s`, `3m` (Argo CD's format).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub factor: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RetryStrategy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct SyncPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automated: Option<SyncPolicyAutomated>,
    /// `Key=Value` options such as `CreateNamespace=true`, `PruneLast=true`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sync_options: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryStrategy>,
    /// Labels and annotations of the destination namespace that `CreateNamespace=true`
    /// creates (and keeps applied with server-side apply while this is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_namespace_metadata: Option<ManagedNamespaceMetadata>,
}

/// `spec.syncPolicy.managedNamespaceMetadata`, as in Argo CD.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ManagedNamespaceMetadata {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl SyncPolicy {
    /// The value of a `Key=Value` sync option, if set.
    pub fn option(&self, key: &str) -> Option<&str> {
        sync_option(&self.sync_options, key)
    }
}

/// Look up `Key=Value` in a list of sync options (also used for the per-resource
/// `argocd.argoproj.io/sync-options` annotation, comma-separated).
pub fn sync_option<'a>(options: &'a [String], key: &str) -> Option<&'a str> {
    options.iter().rev().find_map(|o| {
        let (k, v) = o.split_once('=')?;
        (k.trim() == key).then_some(v.trim())
    })
}

/// One `spec.ignoreDifferences` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResourceIgnoreDifferences {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub json_pointers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jq_path_expressions: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_fields_managers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ApplicationSource>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<ApplicationSource>,
    pub destination: ApplicationDestination,
    #[serde(default)]
    pub project: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_policy: Option<SyncPolicy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_differences: Vec<ResourceIgnoreDifferences>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history_limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub info: Vec<Value>,
}

/// Status of one managed resource (`status.resources[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    #[serde(default)]
    pub group: String,
    #[serde(default)]
    pub version: String,
    pub kind: String,
    #[serde(default)]
    pub namespace: String,
    pub name: String,
    pub status: SyncStatusCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthStatus>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub hook: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub requires_pruning: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationCondition {
    #[serde(rename = "type")]
    pub type_: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    pub status: SyncStatusCode,
    /// The commit compared with, for an app with one `source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The commit of every source, in order, for an app with `spec.sources`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revisions: Vec<String>,
}

impl SyncStatus {
    /// The revisions compared with, whichever field holds them.
    pub fn revisions(&self) -> Revisions {
        Revisions::from_fields(self.revision.as_deref(), &self.revisions)
    }
}

/// One `status.history[]` entry: a successful sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct RevisionHistory {
    pub id: i64,
    /// The commit synced, for an app with one `source` (empty for `spec.sources`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub revision: String,
    /// The commit of every source, in order, for an app with `spec.sources`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revisions: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<ApplicationSource>,
    /// The sources synced, for an app with `spec.sources`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<ApplicationSource>,
}

impl RevisionHistory {
    /// The revisions of this entry, whichever field holds them.
    pub fn revisions(&self) -> Revisions {
        Revisions::from_fields(Some(&self.revision), &self.revisions)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceStatus>,
    #[serde(default)]
    pub sync: SyncStatus,
    #[serde(default)]
    pub health: HealthStatus,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<RevisionHistory>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<ApplicationCondition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciled_at: Option<String>,
    /// The resumable sync operation's state (phase, per-step results), written after
    /// every step so a restarted controller resumes where it stopped. Stored as JSON and
    /// read through [`ApplicationStatus::operation_state`] ([`OperationState`]): a
    /// malformed state (another writer's) must not make the whole Application, and so
    /// every list of Applications, unreadable; the operation reports it instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_state: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_type: Option<String>,
}

impl ApplicationStatus {
    /// `operationState`, typed (`None` when there is none).
    pub fn operation_state(&self) -> Result<Option<OperationState>, OperationStateError> {
        self.operation_state
            .as_ref()
            .filter(|v| !v.is_null())
            .map(OperationState::from_value)
            .transpose()
    }
}

/// An Argo CD `Application` object (metadata kept as JSON: it is Kubernetes' own).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    #[serde(default = "app_api_version")]
    pub api_version: String,
    #[serde(default = "app_kind")]
    pub kind: String,
    #[serde(default)]
    pub metadata: Value,
    pub spec: ApplicationSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ApplicationStatus>,
    /// `operation`: a requested sync (set by `app sync` or automation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Value>,
}

fn app_api_version() -> String {
    format!("{GROUP}/{VERSION}")
}

/// A string field of an object's `metadata` (kept as JSON), empty when absent.
pub(crate) fn metadata_str<'a>(metadata: &'a Value, key: &str) -> &'a str {
    metadata
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `metadata.finalizers` of an object whose metadata is kept as JSON.
pub fn finalizers(metadata: &Value) -> Vec<String> {
    metadata
        .get("finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Argo CD's finalizer for cascading deletion of an application's resources.
pub const RESOURCES_FINALIZER: &str = "resources-finalizer.argocd.argoproj.io";
/// Argo CD's finalizer that runs the app's `PostDelete` hooks after its deletion.
pub const POST_DELETE_FINALIZER: &str = "post-delete-finalizer.argocd.argoproj.io";
/// Argo CD's finalizer that deletes the `PostDelete` hooks per their delete policy.
pub const POST_DELETE_CLEANUP_FINALIZER: &str = "post-delete-finalizer.argocd.argoproj.io/cleanup";

/// `finalizers` with `finalizer` added (once), keeping the others (Argo CD's resources
/// finalizer beside the post-delete ones and others').
pub fn finalizers_with(mut finalizers: Vec<String>, finalizer: &str) -> Vec<String> {
    if !finalizers.iter().any(|f| f == finalizer) {
        finalizers.push(finalizer.to_string());
    }
    finalizers
}

fn app_kind() -> String {
    "Application".into()
}

impl Application {
    pub fn name(&self) -> &str {
        crate::app::metadata_str(&self.metadata, "name")
    }

    pub fn namespace(&self) -> &str {
        crate::app::metadata_str(&self.metadata, "namespace")
    }

    /// The primary source, as Argo CD's `GetSource()`: the first of `spec.sources` when
    /// that list is set (then `spec.source` is ignored), else `spec.source`.
    pub fn source(&self) -> Option<&ApplicationSource> {
        self.sources().first()
    }

    /// The sources Mooring renders, as Argo CD's `GetSources()`: `spec.sources` when set
    /// (`spec.source` is then ignored), else `spec.source` alone.
    pub fn sources(&self) -> &[ApplicationSource] {
        if self.has_multiple_sources() {
            &self.spec.sources
        } else {
            self.spec.source.as_slice()
        }
    }

    /// Argo CD's `HasMultipleSources()`: the app uses `spec.sources` (even with one
    /// entry), so its status carries `revisions` rather than `revision`.
    pub fn has_multiple_sources(&self) -> bool {
        !self.spec.sources.is_empty()
    }
}

/// The commits an app was compared with or synced to: one per source, in source order.
///
/// Argo CD writes them as `revision` for an app with one `source` and as `revisions` for
/// an app with `spec.sources` (status.sync, operationState.syncResult, history entries,
/// operation.sync); this type reads and writes both shapes, so the rest of Mooring never
/// has to ask which one it is looking at.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Revisions {
    commits: Vec<String>,
    multi_source: bool,
}

impl Revisions {
    /// The commit of a single-source app.
    pub fn single(commit: impl Into<String>) -> Revisions {
        Revisions {
            commits: vec![commit.into()],
            multi_source: false,
        }
    }

    /// The commits of every source of an app with `spec.sources`.
    pub fn multi(commits: Vec<String>) -> Revisions {
        Revisions {
            commits,
            multi_source: true,
        }
    }

    /// From Argo CD's two fields: `revisions` when non-empty, else `revision`.
    pub fn from_fields(revision: Option<&str>, revisions: &[String]) -> Revisions {
        if !revisions.is_empty() {
            return Revisions::multi(revisions.to_vec());
        }
        match revision.filter(|r| !r.is_empty()) {
            Some(r) => Revisions::single(r),
            None => Revisions::default(),
        }
    }

    /// From a JSON object with Argo CD's `revision`/`revisions` fields
    /// (`operation.sync`, `operationState.syncResult`).
    pub fn of(v: &Value) -> Revisions {
        let revisions: Vec<String> = v
            .get("revisions")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|r| r.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default();
        Revisions::from_fields(v.get("revision").and_then(Value::as_str), &revisions)
    }

    /// Nothing known (no comparison yet, or no revision requested).
    pub fn is_empty(&self) -> bool {
        self.commits.is_empty()
    }

    pub fn is_multi_source(&self) -> bool {
        self.multi_source
    }

    /// One entry per source (an empty entry: that source's `targetRevision`).
    pub fn commits(&self) -> &[String] {
        &self.commits
    }

    /// Argo CD's `revision`: the commit of a single-source app.
    pub fn revision(&self) -> Option<&str> {
        (!self.multi_source)
            .then(|| self.commits.first().map(String::as_str))
            .flatten()
    }

    /// Argo CD's `revisions`: the commits of a multi-source app (empty otherwise).
    pub fn revisions(&self) -> &[String] {
        if self.multi_source {
            &self.commits
        } else {
            &[]
        }
    }

    /// `{"revision": …, "revisions": …}` with the unused one `null`, to merge into a
    /// status or operation object (a JSON merge patch then also clears a stale field).
    pub fn fields(&self) -> serde_json::Map<String, Value> {
        let mut m = serde_json::Map::new();
        m.insert(
            "revision".into(),
            self.revision()
                .map_or(Value::Null, |r| Value::String(r.into())),
        );
        m.insert(
            "revisions".into(),
            if self.multi_source {
                Value::from(self.commits.clone())
            } else {
                Value::Null
            },
        );
        m
    }

    /// Write Argo CD's fields into a JSON object (`syncResult`, `operation.sync`).
    pub fn write_into(&self, obj: &mut Value) {
        if let Some(o) = obj.as_object_mut() {
            o.extend(self.fields());
        }
    }
}

impl std::fmt::Display for Revisions {
    /// The commits, comma-separated (for messages and metrics).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.commits.join(","))
    }
}

/// A refused `--revisions`/`--source-positions` request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceRevisionError {
    #[error("{revisions} revision(s) but {positions} source position(s): give one --source-positions N for every --revisions R")]
    Mismatch { revisions: usize, positions: usize },
    #[error("source position {position} is out of range: the application has {sources} source(s), numbered from 1")]
    OutOfRange { position: i64, sources: usize },
    #[error("source position {position} is given twice")]
    Repeated { position: i64 },
    #[error("the application has {sources} sources (spec.sources): a single revision is ambiguous; use --revisions R --source-positions N for each source to change, as `argocd app sync` does")]
    SingleRevisionForMultiSource { sources: usize },
    #[error("--revisions/--source-positions apply to applications with spec.sources; this one has a single source: use --revision")]
    PositionsForSingleSource,
}

/// The revisions a sync (or a render) of `app` asks for, as Argo CD's API builds them:
/// `revision` for a single-source app; for an app with `spec.sources`, one entry per
/// source where `revisions[i]` goes to the 1-based `positions[i]` and every other entry
/// is empty (that source's own `targetRevision`).
pub fn requested_revisions(
    app: &Application,
    revision: Option<&str>,
    revisions: &[String],
    positions: &[i64],
) -> Result<Revisions, SourceRevisionError> {
    let revision = revision.filter(|r| !r.is_empty());
    if !app.has_multiple_sources() {
        if !revisions.is_empty() || !positions.is_empty() {
            return Err(SourceRevisionError::PositionsForSingleSource);
        }
        return Ok(revision.map(Revisions::single).unwrap_or_default());
    }
    let n = app.spec.sources.len();
    if revision.is_some() {
        return Err(SourceRevisionError::SingleRevisionForMultiSource { sources: n });
    }
    if revisions.len() != positions.len() {
        return Err(SourceRevisionError::Mismatch {
            revisions: revisions.len(),
            positions: positions.len(),
        });
    }
    if revisions.is_empty() {
        return Ok(Revisions::default());
    }
    let mut out = vec![String::new(); n];
    let mut seen = std::collections::BTreeSet::new();
    for (r, &p) in revisions.iter().zip(positions) {
        if p < 1 || p as u64 > n as u64 {
            return Err(SourceRevisionError::OutOfRange {
                position: p,
                sources: n,
            });
        }
        if !seen.insert(p) {
            return Err(SourceRevisionError::Repeated { position: p });
        }
        out[(p - 1) as usize] = r.clone();
    }
    Ok(Revisions::multi(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_cluster_destination() {
        let d = |server: Option<&str>, name: Option<&str>| ApplicationDestination {
            server: server.map(str::to_string),
            name: name.map(str::to_string),
            namespace: Some("ml".into()),
        };
        assert!(d(Some(IN_CLUSTER), None).is_in_cluster());
        assert!(d(None, Some("in-cluster")).is_in_cluster());
        assert!(d(None, None).is_in_cluster());
        assert!(d(Some(""), Some("")).is_in_cluster());
        assert!(!d(Some("https://gpu.example.com"), None).is_in_cluster());
        assert!(!d(None, Some("gpu")).is_in_cluster());
        // Argo CD compares exactly: a trailing slash or another port is another cluster.
        assert!(!d(Some("https://kubernetes.default.svc/"), None).is_in_cluster());
        assert!(names_in_cluster("in-cluster"));
        assert!(names_in_cluster(IN_CLUSTER));
        assert!(!names_in_cluster(""));
        assert!(!names_in_cluster("gpu"));
    }

    #[test]
    fn parses_an_argo_cd_application_unchanged() {
        let yaml = r#"
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: model-serving, namespace: argocd}
spec:
  project: ml-platform
  source:
    repoURL: https://git.example.com/ml/platform.git
    targetRevision: main
    path: applications/model-serving/overlays/production
    kustomize: {namePrefix: prod-, images: ["model=registry/model:2.1"], commonLabels: {team: ml}}
  destination: {server: https://kubernetes.default.svc, namespace: ml-serving}
  syncPolicy:
    automated: {prune: true, selfHeal: true}
    syncOptions: [CreateNamespace=true, PruneLast=true]
    managedNamespaceMetadata: {labels: {team: ml}, annotations: {owner: platform}}
    retry: {limit: 5, backoff: {duration: 5s, factor: 2, maxDuration: 3m}}
  ignoreDifferences:
  - group: apps
    kind: Deployment
    jsonPointers: [/spec/replicas]
  revisionHistoryLimit: 10
"#;
        let v = crate::yaml::parse_one(yaml).expect("yaml");
        let app: Application = serde_json::from_value(v.clone()).expect("application");
        assert_eq!(app.name(), "model-serving");
        let src = app.source().expect("source");
        assert_eq!(src.kustomize.as_ref().map(|k| k.images.len()), Some(1));
        let sp = app.spec.sync_policy.as_ref().expect("sync policy");
        assert_eq!(sp.option("CreateNamespace"), Some("true"));
        assert!(sp.automated.as_ref().is_some_and(|a| a.self_heal));
        let ns_meta = sp
            .managed_namespace_metadata
            .as_ref()
            .expect("managedNamespaceMetadata");
        assert_eq!(ns_meta.labels["team"], "ml");
        assert_eq!(ns_meta.annotations["owner"], "platform");
        assert_eq!(
            app.spec.ignore_differences[0].json_pointers,
            vec!["/spec/replicas"]
        );
        // Round trip keeps the Argo CD field names.
        let back = serde_json::to_value(&app).expect("serialise");
        assert_eq!(
            back["spec"]["source"]["repoURL"],
            v["spec"]["source"]["repoURL"]
        );
        assert_eq!(
            back["spec"]["syncPolicy"]["retry"]["backoff"]["maxDuration"],
            "3m"
        );
    }

    fn multi_source_app() -> Application {
        let yaml = r#"
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: billing, namespace: argocd}
spec:
  project: default
  source: {repoURL: https://ignored.example/x.git, path: ignored}
  sources:
  - repoURL: https://git.example.com/billing.git
    path: manifests
    targetRevision: v1
  - repoURL: https://git.example.com/values.git
    targetRevision: main
    ref: values
    name: env-values
  destination: {server: https://kubernetes.default.svc, namespace: billing}
"#;
        let v = crate::yaml::parse_one(yaml).expect("yaml");
        serde_json::from_value(v).expect("application")
    }

    #[test]
    fn sources_replace_source_as_in_argo_cd() {
        let app = multi_source_app();
        assert!(app.has_multiple_sources());
        assert_eq!(app.sources().len(), 2);
        assert_eq!(
            app.source().map(|s| s.repo_url.as_str()),
            Some("https://git.example.com/billing.git"),
            "spec.source is ignored once spec.sources is set"
        );
        assert_eq!(app.sources()[1].ref_.as_deref(), Some("values"));
        assert_eq!(app.sources()[1].name.as_deref(), Some("env-values"));
        let back = serde_json::to_value(&app).expect("serialise");
        assert_eq!(back["spec"]["sources"][1]["ref"], "values");

        let mut single = app.clone();
        single.spec.sources.clear();
        assert!(!single.has_multiple_sources());
        assert_eq!(single.sources().len(), 1);
        assert_eq!(
            single.source().and_then(|s| s.path.as_deref()),
            Some("ignored")
        );
        single.spec.source = None;
        assert!(single.sources().is_empty() && single.source().is_none());
    }

    #[test]
    fn revisions_read_and_write_both_argo_cd_shapes() {
        let one = Revisions::single("abc");
        assert_eq!(one.revision(), Some("abc"));
        assert!(one.revisions().is_empty());
        assert_eq!(
            serde_json::Value::Object(one.fields()),
            serde_json::json!({"revision": "abc", "revisions": null})
        );
        let many = Revisions::multi(vec!["a".into(), "b".into()]);
        assert_eq!(many.revision(), None);
        assert_eq!(many.revisions(), ["a", "b"]);
        assert_eq!(many.to_string(), "a,b");
        let mut obj = serde_json::json!({"revision": "old", "prune": true});
        many.write_into(&mut obj);
        assert_eq!(
            obj,
            serde_json::json!({"revision": null, "revisions": ["a", "b"], "prune": true})
        );
        assert_eq!(Revisions::of(&obj), many);
        assert_eq!(Revisions::of(&serde_json::json!({"revision": "abc"})), one);
        assert!(Revisions::of(&serde_json::json!({"revision": ""})).is_empty());
        let status = SyncStatus {
            status: SyncStatusCode::Synced,
            revision: None,
            revisions: vec!["a".into(), "b".into()],
        };
        assert_eq!(status.revisions(), many);
        let h = RevisionHistory {
            revision: "abc".into(),
            ..Default::default()
        };
        assert_eq!(h.revisions(), one);
    }

    #[test]
    fn requested_revisions_follow_argocd_source_positions() {
        let app = multi_source_app();
        let r = requested_revisions(&app, None, &["v2".into()], &[1]).expect("ok");
        assert_eq!(r.revisions(), ["v2", ""]);
        assert!(requested_revisions(&app, None, &[], &[])
            .expect("none")
            .is_empty());
        assert_eq!(
            requested_revisions(&app, Some("v2"), &[], &[]),
            Err(SourceRevisionError::SingleRevisionForMultiSource { sources: 2 })
        );
        assert_eq!(
            requested_revisions(&app, None, &["a".into()], &[3]),
            Err(SourceRevisionError::OutOfRange {
                position: 3,
                sources: 2
            })
        );
        assert!(matches!(
            requested_revisions(&app, None, &["a".into()], &[0]),
            Err(SourceRevisionError::OutOfRange { .. })
        ));
        assert!(matches!(
            requested_revisions(&app, None, &["a".into(), "b".into()], &[1, 1]),
            Err(SourceRevisionError::Repeated { position: 1 })
        ));
        assert!(matches!(
            requested_revisions(&app, None, &["a".into()], &[]),
            Err(SourceRevisionError::Mismatch { .. })
        ));
        let mut single = app.clone();
        single.spec.sources.clear();
        assert_eq!(
            requested_revisions(&single, Some("v3"), &[], &[]).expect("ok"),
            Revisions::single("v3")
        );
        assert_eq!(
            requested_revisions(&single, None, &["x".into()], &[1]),
            Err(SourceRevisionError::PositionsForSingleSource)
        );
    }

    #[test]
    fn instance_names_and_qualified_names_follow_argo_cd() {
        assert_eq!(instance_name("argocd", "web", "argocd"), "web");
        assert_eq!(instance_name("", "web", "argocd"), "web");
        assert_eq!(instance_name("team-a", "web", "argocd"), "team-a_web");
        assert_eq!(qualified_name("team-a/web", "argocd"), ("team-a", "web"));
        assert_eq!(qualified_name("web", "argocd"), ("argocd", "web"));
        assert_eq!(qualified_name("/web", "argocd"), ("argocd", "web"));
    }

    #[test]
    fn health_aggregates_to_the_worst() {
        use HealthStatusCode::*;
        assert_eq!(
            HealthStatusCode::worst([Healthy, Progressing, Suspended]),
            Progressing
        );
        assert_eq!(
            HealthStatusCode::worst([Healthy, Degraded, Missing]),
            Degraded
        );
        assert_eq!(HealthStatusCode::worst([]), Healthy);
    }

    #[test]
    fn adding_a_finalizer_keeps_the_others() {
        let meta = serde_json::json!({"finalizers": ["post-delete-finalizer.argocd.argoproj.io"]});
        assert_eq!(
            finalizers_with(finalizers(&meta), "resources-finalizer.argocd.argoproj.io"),
            vec![
                "post-delete-finalizer.argocd.argoproj.io",
                "resources-finalizer.argocd.argoproj.io"
            ]
        );
        assert_eq!(
            finalizers_with(
                finalizers(&meta),
                "post-delete-finalizer.argocd.argoproj.io"
            )
            .len(),
            1
        );
        assert!(finalizers(&serde_json::json!({})).is_empty());
    }
}
