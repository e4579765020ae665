//! `status.operationState` as a type, following Argo CD's `OperationState`
//! (`pkg/apis/application/v1alpha1/types.go`): the operation being run, its phase and
//! message, the per-resource results, when it started and finished, and how often it was
//! retried.
//!
//! Mooring resumes a sync after a restart from this state, so it also keeps its own
//! fields here (`id`, the stored plan, the executor's position, the next retry time).
//! States written by Argo CD (or by an older Mooring) must still parse, and what Mooring
//! writes back must be what it read plus its changes: every field Mooring does not model
//! lands in a flattened `extra` map, every modelled field is optional as in Argo CD, and a
//! phase Mooring does not know is kept as its text ([`OperationPhase::Other`]).

use super::Revisions;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// An unreadable `operation` or `status.operationState` (a field of the wrong type).
#[derive(Debug, thiserror::Error)]
pub enum OperationStateError {
    #[error("{what} is unreadable: {source} (in {input})")]
    Unreadable {
        what: &'static str,
        input: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Argo CD's `OperationPhase`. A phase Mooring does not know is kept verbatim, so it is
/// written back unchanged and reported rather than dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperationPhase {
    Running,
    Terminating,
    Succeeded,
    Failed,
    Error,
    /// A phase this version of Mooring does not know (the text as read; empty when the
    /// state has no `phase`, which is then not written back).
    Other(String),
}

impl Default for OperationPhase {
    /// No phase (a state without `phase`): not running, not completed.
    fn default() -> Self {
        OperationPhase::Other(String::new())
    }
}

impl OperationPhase {
    pub fn as_str(&self) -> &str {
        match self {
            OperationPhase::Running => "Running",
            OperationPhase::Terminating => "Terminating",
            OperationPhase::Succeeded => "Succeeded",
            OperationPhase::Failed => "Failed",
            OperationPhase::Error => "Error",
            OperationPhase::Other(s) => s,
        }
    }

    pub fn parse(s: &str) -> OperationPhase {
        match s {
            "Running" => OperationPhase::Running,
            "Terminating" => OperationPhase::Terminating,
            "Succeeded" => OperationPhase::Succeeded,
            "Failed" => OperationPhase::Failed,
            "Error" => OperationPhase::Error,
            other => OperationPhase::Other(other.to_string()),
        }
    }

    /// Argo CD's `Completed()`: Succeeded, Failed or Error. An unknown phase is not
    /// completed.
    pub fn completed(&self) -> bool {
        matches!(
            self,
            OperationPhase::Succeeded | OperationPhase::Failed | OperationPhase::Error
        )
    }

    pub fn is_running(&self) -> bool {
        *self == OperationPhase::Running
    }

    /// No phase at all (the field was absent).
    pub fn is_unset(&self) -> bool {
        matches!(self, OperationPhase::Other(s) if s.is_empty())
    }
}

impl std::fmt::Display for OperationPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for OperationPhase {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for OperationPhase {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(OperationPhase::parse(&s))
    }
}

/// Argo CD's `OperationInitiator`: who started the operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct OperationInitiator {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Set by automated sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automated: Option<bool>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Argo CD's `SyncOperationResource`: a resource a partial sync is limited to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SyncOperationResource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Argo CD's `SyncOperation`: what to sync and how. `source(s)`,
/// `autoHealAttemptsCount` and others stay in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SyncOperation {
    /// The commit to sync, for an app with one `source`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// The commit of every source, for an app with `spec.sources`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revisions: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<bool>,
    /// `apply` / `hook` strategy, kept as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_strategy: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<SyncOperationResource>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_options: Option<Vec<String>>,
    /// Local manifests to sync instead of the source's render (`argocd app sync
    /// --local`): one YAML or JSON object per string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifests: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl SyncOperation {
    /// The requested revisions, whichever field holds them.
    pub fn requested(&self) -> Revisions {
        Revisions::from_fields(
            self.revision.as_deref(),
            self.revisions.as_deref().unwrap_or_default(),
        )
    }

    pub fn prune(&self) -> bool {
        self.prune == Some(true)
    }

    /// The local manifests of `--local` (empty: sync the source's render).
    pub fn local_manifests(&self) -> &[String] {
        self.manifests.as_deref().unwrap_or_default()
    }
}

/// Argo CD's `Operation`: the requested operation (`operation`, and a copy in
/// `operationState.operation`). `info` and `retry` are kept as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<SyncOperation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initiated_by: Option<OperationInitiator>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Value>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Operation {
    /// Read an `operation` field (JSON, as stored on the Application).
    pub fn from_value(v: &Value) -> Result<Operation, OperationStateError> {
        serde_json::from_value(v.clone()).map_err(|source| OperationStateError::Unreadable {
            what: "operation",
            input: v.to_string(),
            source,
        })
    }

    /// Whether automation started it (`initiatedBy.automated`).
    pub fn automated(&self) -> bool {
        self.initiated_by.as_ref().and_then(|i| i.automated) == Some(true)
    }

    /// The revisions `sync` asks for (empty: the source's target revision).
    pub fn requested(&self) -> Revisions {
        self.sync
            .as_ref()
            .map(SyncOperation::requested)
            .unwrap_or_default()
    }

    /// `sync.syncOptions`.
    pub fn sync_options(&self) -> &[String] {
        self.sync
            .as_ref()
            .and_then(|s| s.sync_options.as_deref())
            .unwrap_or_default()
    }

    /// `sync.prune`.
    pub fn prune(&self) -> bool {
        self.sync.as_ref().is_some_and(SyncOperation::prune)
    }

    /// `sync.dryRun`: validate everything, change nothing.
    pub fn dry_run(&self) -> bool {
        self.sync.as_ref().and_then(|s| s.dry_run) == Some(true)
    }

    /// `sync.resources`: a selective sync of these resources only (empty: all).
    pub fn selected_resources(&self) -> &[SyncOperationResource] {
        self.sync
            .as_ref()
            .and_then(|s| s.resources.as_deref())
            .unwrap_or_default()
    }
}

/// Argo CD's `ResourceResult`: what the operation did to one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResourceResult {
    #[serde(default)]
    pub group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub name: String,
    /// `Synced`, `SyncFailed`, `Pruned`, `PruneSkipped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_phase: Option<OperationPhase>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_phase: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Argo CD's `SyncOperationResult`: the results and the revisions synced.
/// `source(s)` and `managedNamespaceMetadata` stay in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct SyncOperationResult {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<ResourceResult>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revisions: Option<Vec<String>>,
    /// The application's `spec.source` when the sync started (Argo CD records it: an
    /// automated sync is attempted again for the same revision when the source changed,
    /// e.g. a parameter override).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<crate::app::ApplicationSource>,
    /// The same for `spec.sources`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<crate::app::ApplicationSource>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl SyncOperationResult {
    /// Whether this result was synced from `app`'s current sources. A result that
    /// recorded none (written before sources were recorded) counts as the same.
    pub fn same_sources(&self, app: &crate::app::Application) -> bool {
        (self.source.is_none() && self.sources.is_empty())
            || (self.source == app.spec.source && self.sources == app.spec.sources)
    }

    /// The revisions synced, whichever field holds them.
    pub fn revisions(&self) -> Revisions {
        Revisions::from_fields(
            self.revision.as_deref(),
            self.revisions.as_deref().unwrap_or_default(),
        )
    }

    /// Record the revisions synced in Argo CD's shape: `revision` for a single-source
    /// app, `revisions` for one with `spec.sources` (the other field is cleared).
    pub fn set_revisions(&mut self, revisions: &Revisions) {
        self.revision = revisions.revision().map(str::to_string);
        self.revisions = revisions
            .is_multi_source()
            .then(|| revisions.revisions().to_vec());
    }
}

/// Argo CD's `OperationState`, plus the fields Mooring needs to resume a sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct OperationState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<Operation>,
    #[serde(default, skip_serializing_if = "OperationPhase::is_unset")]
    pub phase: OperationPhase,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_result: Option<SyncOperationResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_count: Option<i64>,
    /// Mooring: the operation's id (hooks carry it; the CLI waits for a new one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Mooring: the stored skeleton of the sync plan (`mooring_engine::sync::SyncPlan`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<Value>,
    /// Mooring: where the executor stands (`mooring_engine::sync::SyncState`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<Value>,
    /// Mooring: not before this time (a retry's backoff, a sync window).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_retry_at: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl OperationState {
    /// Read a stored `status.operationState`.
    pub fn from_value(v: &Value) -> Result<OperationState, OperationStateError> {
        serde_json::from_value(v.clone()).map_err(|source| OperationStateError::Unreadable {
            what: "status.operationState",
            input: v.to_string(),
            source,
        })
    }

    pub fn id(&self) -> &str {
        self.id.as_deref().unwrap_or_default()
    }

    pub fn message(&self) -> &str {
        self.message.as_deref().unwrap_or_default()
    }

    pub fn retry_count(&self) -> i64 {
        self.retry_count.unwrap_or(0)
    }

    /// Whether automation started it.
    pub fn automated(&self) -> bool {
        self.operation.as_ref().is_some_and(Operation::automated)
    }

    /// The revisions recorded in `syncResult`, if there is one.
    pub fn synced_revisions(&self) -> Option<Revisions> {
        self.sync_result
            .as_ref()
            .map(SyncOperationResult::revisions)
    }

    /// The `syncResult`, created (with no results) when missing.
    pub fn sync_result_mut(&mut self) -> &mut SyncOperationResult {
        self.sync_result.get_or_insert_with(|| SyncOperationResult {
            resources: Some(Vec::new()),
            ..SyncOperationResult::default()
        })
    }

    /// Append per-resource results to `syncResult.resources`.
    pub fn append_results(&mut self, results: Vec<ResourceResult>) {
        self.sync_result_mut()
            .resources
            .get_or_insert_with(Vec::new)
            .extend(results);
    }

    /// The JSON to store as a merge patch of `status.operationState`: the state, with
    /// explicit `null`s for the fields Mooring clears (the stored plan and executor
    /// position, the revision field of the other shape), since a merge patch keeps
    /// whatever it does not mention.
    pub fn to_patch(&self) -> Value {
        let mut v = serde_json::to_value(self).unwrap_or(Value::Null);
        if let Some(o) = v.as_object_mut() {
            for key in ["plan", "sync"] {
                o.entry(key).or_insert(Value::Null);
            }
            // Whichever of `revision`/`revisions` is recorded, the other is cleared (as
            // [`SyncOperationResult::set_revisions`] leaves it).
            if let Some(r) = o.get_mut("syncResult").and_then(Value::as_object_mut) {
                match (r.contains_key("revision"), r.contains_key("revisions")) {
                    (true, false) => {
                        r.insert("revisions".into(), Value::Null);
                    }
                    (false, true) => {
                        r.insert("revision".into(), Value::Null);
                    }
                    _ => {}
                }
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// An operation state as Argo CD writes it (the guestbook example, synced by
    /// automation with a PreSync hook): the fields of Argo CD's `OperationState`,
    /// `SyncOperation` and `ResourceResult`, including ones Mooring does not model.
    fn argo_written() -> Value {
        json!({
            "operation": {
                "initiatedBy": {"automated": true},
                "retry": {"limit": 5, "backoff": {"duration": "5s", "factor": 2, "maxDuration": "3m"}},
                "sync": {
                    "revision": "53e28ff20cc530b9ada2173fbbd64d48338583ba",
                    "prune": true,
                    "syncOptions": ["CreateNamespace=true"],
                    "syncStrategy": {"hook": {}},
                    "resources": [{"group": "apps", "kind": "Deployment", "name": "guestbook-ui"}],
                    "autoHealAttemptsCount": 1
                },
                "info": [{"name": "reason", "value": "webhook"}]
            },
            "phase": "Succeeded",
            "message": "successfully synced (all tasks run)",
            "startedAt": "2024-05-14T09:31:12Z",
            "finishedAt": "2024-05-14T09:31:20Z",
            "retryCount": 0,
            "syncResult": {
                "revision": "53e28ff20cc530b9ada2173fbbd64d48338583ba",
                "source": {
                    "repoURL": "https://github.com/argoproj/argocd-example-apps",
                    "path": "guestbook",
                    "targetRevision": "HEAD"
                },
                "resources": [
                    {
                        "group": "", "version": "v1", "kind": "Service",
                        "namespace": "guestbook", "name": "guestbook-ui",
                        "status": "Synced", "message": "service/guestbook-ui created",
                        "hookPhase": "Running", "syncPhase": "Sync"
                    },
                    {
                        "group": "batch", "version": "v1", "kind": "Job",
                        "namespace": "guestbook", "name": "db-migrate-7f9c",
                        "status": "Synced", "message": "job.batch/db-migrate-7f9c created",
                        "hookType": "PreSync", "hookPhase": "Succeeded", "syncPhase": "PreSync",
                        "images": ["migrate:1.2"]
                    }
                ]
            }
        })
    }

    #[test]
    fn parses_an_operation_state_written_by_argo_cd() {
        let state = OperationState::from_value(&argo_written()).expect("Argo CD's shape parses");
        assert_eq!(state.phase, OperationPhase::Succeeded);
        assert!(state.phase.completed());
        assert!(state.automated());
        assert_eq!(state.retry_count(), 0);
        assert_eq!(state.finished_at.as_deref(), Some("2024-05-14T09:31:20Z"));
        let op = state.operation.as_ref().expect("operation");
        assert!(op.prune());
        assert_eq!(op.sync_options(), ["CreateNamespace=true"]);
        assert_eq!(
            op.requested(),
            Revisions::single("53e28ff20cc530b9ada2173fbbd64d48338583ba")
        );
        let sync = op.sync.as_ref().expect("sync");
        assert_eq!(sync.extra["autoHealAttemptsCount"], json!(1));
        assert_eq!(
            sync.resources.as_ref().expect("resources")[0]
                .kind
                .as_deref(),
            Some("Deployment")
        );
        assert_eq!(
            state.synced_revisions(),
            Some(Revisions::single(
                "53e28ff20cc530b9ada2173fbbd64d48338583ba"
            ))
        );
        let results = state
            .sync_result
            .as_ref()
            .and_then(|r| r.resources.as_ref())
            .expect("results");
        assert_eq!(results.len(), 2);
        assert_eq!(results[1].hook_type.as_deref(), Some("PreSync"));
        assert_eq!(results[1].hook_phase, Some(OperationPhase::Succeeded));
        assert_eq!(results[1].extra["images"], json!(["migrate:1.2"]));
        // Mooring's own fields are absent from Argo CD's state.
        assert_eq!(state.id(), "");
        assert!(state.plan.is_none() && state.sync.is_none());
    }

    #[test]
    fn round_trip_is_lossless() {
        let mut written = argo_written();
        // Mooring's own fields and an unknown one survive too.
        written["id"] = json!("guestbook-17c0");
        written["plan"] = json!({"steps": [], "onFail": []});
        written["sync"] = json!({"nextStep": 1, "submitted": true});
        written["nextRetryAt"] = json!("2024-05-14T09:32:00Z");
        written["futureField"] = json!({"x": [1, 2]});
        let state = OperationState::from_value(&written).expect("parses");
        assert_eq!(serde_json::to_value(&state).expect("serializes"), written);
        let argo = argo_written();
        let state = OperationState::from_value(&argo).expect("parses");
        assert_eq!(serde_json::to_value(&state).expect("serializes"), argo);
    }

    #[test]
    fn an_unknown_phase_is_kept_and_not_finished() {
        let state = OperationState::from_value(&json!({"phase": "Paused", "message": "m"}))
            .expect("an unknown phase parses");
        assert_eq!(state.phase, OperationPhase::Other("Paused".into()));
        assert!(!state.phase.completed());
        assert!(!state.phase.is_running());
        assert_eq!(state.phase.to_string(), "Paused");
        assert_eq!(
            serde_json::to_value(&state).expect("serializes")["phase"],
            json!("Paused")
        );
    }

    #[test]
    fn a_state_without_phase_is_neither_running_nor_completed() {
        let state = OperationState::from_value(&json!({"message": "m"})).expect("parses");
        assert!(state.phase.is_unset());
        assert!(!state.phase.is_running() && !state.phase.completed());
        assert_eq!(
            serde_json::to_value(&state).expect("serializes"),
            json!({"message": "m"})
        );
    }

    #[test]
    fn every_known_phase_reads_and_writes_as_argo_cd_spells_it() {
        for p in ["Running", "Terminating", "Succeeded", "Failed", "Error"] {
            let phase = OperationPhase::parse(p);
            assert!(!matches!(phase, OperationPhase::Other(_)), "{p}");
            assert_eq!(phase.as_str(), p);
        }
    }

    #[test]
    fn a_malformed_state_is_a_clear_error_naming_the_input() {
        let err = OperationState::from_value(&json!({"phase": "Running", "retryCount": "three"}))
            .expect_err("retryCount must be a number");
        let msg = err.to_string();
        assert!(msg.contains("status.operationState is unreadable"), "{msg}");
        assert!(msg.contains("\"three\""), "{msg}");
        let err = Operation::from_value(&json!({"sync": "HEAD"})).expect_err("sync is an object");
        assert!(err.to_string().contains("operation is unreadable"), "{err}");
    }

    #[test]
    fn the_patch_clears_what_mooring_cleared() {
        let mut state = OperationState {
            phase: OperationPhase::Running,
            plan: Some(json!({"steps": []})),
            sync: Some(json!({"nextStep": 0})),
            ..OperationState::default()
        };
        state
            .sync_result_mut()
            .set_revisions(&Revisions::multi(vec!["a".into(), "b".into()]));
        let patch = state.to_patch();
        assert_eq!(patch["syncResult"]["revisions"], json!(["a", "b"]));
        assert!(patch["syncResult"]["revision"].is_null());
        assert!(patch["syncResult"]
            .as_object()
            .is_some_and(|r| r.contains_key("revision")));
        state.plan = None;
        state.sync = None;
        state
            .sync_result_mut()
            .set_revisions(&Revisions::single("c"));
        let patch = state.to_patch();
        let o = patch.as_object().expect("object");
        assert!(o["plan"].is_null() && o["sync"].is_null());
        assert_eq!(patch["syncResult"]["revision"], json!("c"));
        assert!(patch["syncResult"]["revisions"].is_null());
        // Argo CD's own fields that are absent are left alone (not nulled).
        assert!(!o.contains_key("finishedAt"));
    }

    #[test]
    fn results_are_appended_to_a_missing_sync_result() {
        let mut state = OperationState::default();
        state.append_results(vec![ResourceResult {
            kind: "ConfigMap".into(),
            name: "c".into(),
            status: Some("Synced".into()),
            ..ResourceResult::default()
        }]);
        state.append_results(vec![ResourceResult::default()]);
        let v = serde_json::to_value(&state).expect("serializes");
        assert_eq!(v["syncResult"]["resources"][0]["kind"], json!("ConfigMap"));
        assert_eq!(
            v["syncResult"]["resources"].as_array().map(Vec::len),
            Some(2)
        );
    }
}
