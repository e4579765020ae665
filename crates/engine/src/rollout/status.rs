//! What a live Rollout looks like to a person: the summary `kubectl argo rollouts get`
//! prints (status, step, set and actual weight, images of the stable and canary
//! ReplicaSets, replica counts, the ReplicaSets by revision with their pods, the
//! AnalysisRuns), as a typed value computed from the objects' JSON.
//!
//! Why here and not in the CLI: this is interpretation of Argo's fields (which ReplicaSet
//! is "stable" or "canary", what weight the current step asks for, when a rollout is done),
//! the same vocabulary [`super::command`] and the controller use. Kept pure, every rule is
//! tested with plain values; `mooring rollout` only fetches the objects, renders a
//! [`RolloutView`] as a table or serialises it (`-o json|yaml`, whose field names and
//! order are those of this type), and loops for `watch`.
//!
//! Nothing here fails: a hostile or half-written object (a string where a number belongs,
//! a negative index) yields empty or default fields, never a panic. Integer fields are read
//! as Argo reads them, also from strings (`"2"`).

use super::command::{aborted, i, replica_set_revision, s};
use super::{POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION};
use mooring_core::app::HealthStatusCode;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The update strategy the spec names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Strategy {
    Canary,
    BlueGreen,
}

impl Strategy {
    /// `BlueGreen` when `spec.strategy.blueGreen` is set, `Canary` otherwise.
    pub fn of(r: &Value) -> Self {
        if r.pointer("/spec/strategy/blueGreen")
            .is_some_and(|v| !v.is_null())
        {
            Strategy::BlueGreen
        } else {
            Strategy::Canary
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Canary => "Canary",
            Strategy::BlueGreen => "BlueGreen",
        }
    }
}

/// What the plugin calls a ReplicaSet's role in the rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Stable,
    Canary,
    Active,
    Preview,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Stable => "stable",
            Role::Canary => "canary",
            Role::Active => "active",
            Role::Preview => "preview",
        }
    }
}

/// The plugin's summary of a rollout.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutView {
    pub name: String,
    pub namespace: String,
    /// `status.phase` when the controller reports it, else Argo CD's health (see [`phase`]).
    pub status: String,
    pub message: String,
    pub strategy: Strategy,
    /// `INDEX/STEPS` of a canary with steps.
    pub step: Option<String>,
    /// The weight the current step asks for (canary only).
    pub set_weight: Option<i64>,
    /// The weight the canary gets now (canary only).
    pub actual_weight: Option<i64>,
    pub abort: bool,
    pub paused: bool,
    /// The Rollout's revision annotation.
    pub revision: Option<String>,
    #[serde(rename = "stableRS")]
    pub stable_rs: String,
    pub current_pod_hash: String,
    /// Images of the stable, canary, active and preview ReplicaSets (else of the spec),
    /// sorted by image.
    pub images: Vec<ImageView>,
    pub replicas: Replicas,
    /// Newest revision first.
    pub replica_sets: Vec<ReplicaSetView>,
    /// Newest first.
    pub analysis_runs: Vec<AnalysisRunView>,
}

/// An image and the roles of the ReplicaSets running it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageView {
    pub image: String,
    pub tags: Vec<Role>,
}

/// The Rollout's replica counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replicas {
    pub desired: i64,
    pub current: i64,
    pub updated: i64,
    pub ready: i64,
    pub available: i64,
}

/// One ReplicaSet of the rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplicaSetView {
    pub name: String,
    pub revision: Option<i64>,
    pub hash: String,
    pub tags: Vec<Role>,
    pub images: Vec<String>,
    pub desired: i64,
    pub replicas: i64,
    pub ready: i64,
    pub available: i64,
    pub pods: Vec<PodView>,
}

/// How the plugin shows a ReplicaSet's state in its tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaSetState {
    ScaledDown,
    Healthy,
    Progressing,
}

impl ReplicaSetView {
    /// `ScaledDown` with no desired replica, `Healthy` when all are ready.
    pub fn state(&self) -> ReplicaSetState {
        if self.desired == 0 {
            ReplicaSetState::ScaledDown
        } else if self.ready >= self.desired {
            ReplicaSetState::Healthy
        } else {
            ReplicaSetState::Progressing
        }
    }
}

/// A pod of a ReplicaSet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PodView {
    pub name: String,
    pub phase: String,
    /// Its `Ready` condition is `True`.
    pub ready: bool,
}

/// An AnalysisRun of the rollout, with its measurement counts summed over metrics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnalysisRunView {
    pub name: String,
    pub revision: Option<i64>,
    pub hash: String,
    /// `Pending` until the run reports a phase.
    pub phase: String,
    pub message: String,
    pub successful: i64,
    pub failed: i64,
    pub error: i64,
    pub inconclusive: i64,
    pub created: String,
}

/// How following a rollout ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Healthy and fully promoted.
    Promoted,
    /// Degraded or aborted.
    Failed,
}

/// Whether `o` lists `uid` among its owner references (never for an empty uid).
pub fn owned_by(o: &Value, uid: &str) -> bool {
    !uid.is_empty()
        && o.pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
}

/// Status of a rollout as the plugin shows it: `status.phase` and `status.message` when
/// the controller reports them, otherwise Argo CD's health of the object.
pub fn phase(r: &Value) -> (String, String) {
    let phase = s(r, "/status/phase");
    if !phase.is_empty() {
        return (phase.to_string(), s(r, "/status/message").to_string());
    }
    match crate::health::assess(r, None) {
        Some(h) => {
            let p = match h.status {
                HealthStatusCode::Healthy => "Healthy",
                HealthStatusCode::Suspended => "Paused",
                HealthStatusCode::Degraded => "Degraded",
                _ => "Progressing",
            };
            (p.to_string(), h.message)
        }
        None => ("Progressing".into(), String::new()),
    }
}

/// Whether following the rollout is over: [`Outcome::Promoted`] once the controller has
/// observed the current generation and reports Healthy with the stable hash the current
/// one; [`Outcome::Failed`] when aborted or (observed) Degraded; `None` still going.
pub fn finished(r: &Value) -> Option<Outcome> {
    let observed = match i(r, "/status/observedGeneration") {
        Some(o) => o >= i(r, "/metadata/generation").unwrap_or(0),
        None => r.pointer("/status/observedGeneration").is_some(),
    };
    if aborted(r) {
        return Some(Outcome::Failed);
    }
    if !observed {
        return None;
    }
    let (phase, _) = phase(r);
    match phase.as_str() {
        "Degraded" => Some(Outcome::Failed),
        "Healthy" => {
            let stable = s(r, "/status/stableRS");
            let current = s(r, "/status/currentPodHash");
            (stable.is_empty() || stable == current).then_some(Outcome::Promoted)
        }
        _ => None,
    }
}

fn steps(r: &Value) -> &[Value] {
    r.pointer("/spec/strategy/canary/steps")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The weight the current step asks for (the plugin's "SetWeight"): 0 when aborted, the
/// routed weight when a traffic router reports one, else the last `setWeight` up to the
/// current step, 100 past the last step.
pub fn set_weight(r: &Value) -> Option<i64> {
    if Strategy::of(r) != Strategy::Canary {
        return None;
    }
    if aborted(r) {
        return Some(0);
    }
    if let Some(w) = i(r, "/status/canary/weights/canary/weight") {
        return Some(w);
    }
    let steps = steps(r);
    let index = i(r, "/status/currentStepIndex").unwrap_or(steps.len() as i64);
    if steps.is_empty() || index < 0 || index as usize >= steps.len() {
        return Some(100);
    }
    Some(
        steps[..=index as usize]
            .iter()
            .rev()
            .find_map(|st| i(st, "/setWeight"))
            .unwrap_or(0),
    )
}

fn hash_label(o: &Value) -> &str {
    o.pointer("/metadata/labels")
        .and_then(|l| l.get(POD_TEMPLATE_HASH_LABEL))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The roles of the ReplicaSet with pod template hash `hash`.
fn roles(r: &Value, hash: &str) -> Vec<Role> {
    let mut tags = Vec::new();
    if hash.is_empty() {
        return tags;
    }
    let stable = s(r, "/status/stableRS");
    let current = s(r, "/status/currentPodHash");
    if stable == hash {
        tags.push(Role::Stable);
    }
    match Strategy::of(r) {
        Strategy::BlueGreen => {
            if s(r, "/status/blueGreen/activeSelector") == hash {
                tags.push(Role::Active);
            }
            if s(r, "/status/blueGreen/previewSelector") == hash && stable != hash {
                tags.push(Role::Preview);
            }
        }
        Strategy::Canary => {
            if current == hash && stable != hash {
                tags.push(Role::Canary);
            }
        }
    }
    tags
}

/// The images of a pod template, init containers first.
fn images_of(template: &Value) -> Vec<String> {
    ["initContainers", "containers"]
        .iter()
        .flat_map(|k| {
            template
                .pointer(&format!("/spec/{k}"))
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or(&[])
        })
        .filter_map(|c| c["image"].as_str().map(str::to_string))
        .collect()
}

fn pod(p: &Value) -> PodView {
    let ready = p
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
    PodView {
        name: s(p, "/metadata/name").to_string(),
        phase: s(p, "/status/phase").to_string(),
        ready,
    }
}

fn analysis_run(ar: &Value) -> AnalysisRunView {
    let count = |field: &str| {
        ar.pointer("/status/metricResults")
            .and_then(Value::as_array)
            .map_or(0, |m| {
                m.iter()
                    .filter_map(|m| i(m, field))
                    .fold(0i64, i64::saturating_add)
            })
    };
    let phase = s(ar, "/status/phase");
    AnalysisRunView {
        name: s(ar, "/metadata/name").to_string(),
        revision: replica_set_revision(ar),
        hash: hash_label(ar).to_string(),
        phase: if phase.is_empty() { "Pending" } else { phase }.to_string(),
        message: s(ar, "/status/message").to_string(),
        successful: count("/successful"),
        failed: count("/failed"),
        error: count("/error"),
        inconclusive: count("/inconclusive"),
        created: s(ar, "/metadata/creationTimestamp").to_string(),
    }
}

impl RolloutView {
    /// The summary of the Rollout alone (what `list` and `status` show: no ReplicaSets,
    /// pods or AnalysisRuns).
    pub fn of(rollout: &Value) -> Self {
        Self::new(rollout, &[], &[], &[])
    }

    /// The summary of `rollout` with the ReplicaSets and AnalysisRuns it owns; each pod
    /// of `pods` is shown under the ReplicaSet that owns it (the others are ignored).
    pub fn new(
        rollout: &Value,
        replica_sets: &[Value],
        pods: &[Value],
        analysis_runs: &[Value],
    ) -> Self {
        let r = rollout;
        let (status, message) = phase(r);
        let strategy = Strategy::of(r);
        let canary = strategy == Strategy::Canary;
        let steps = steps(r);
        let step = (canary && !steps.is_empty()).then(|| {
            let idx = i(r, "/status/currentStepIndex").unwrap_or(steps.len() as i64);
            format!("{idx}/{}", steps.len())
        });
        let stable = s(r, "/status/stableRS");
        let current = s(r, "/status/currentPodHash");
        let available = i(r, "/status/availableReplicas").unwrap_or(0);
        let canary_available = replica_sets
            .iter()
            .find(|rs| hash_label(rs) == current)
            .and_then(|rs| i(rs, "/status/availableReplicas"))
            .unwrap_or(0);
        let actual_weight = canary.then(|| {
            if let Some(w) = i(r, "/status/canary/weights/canary/weight") {
                w
            } else if !current.is_empty() && current == stable {
                100
            } else if available > 0 {
                canary_available.saturating_mul(100) / available
            } else {
                0
            }
        });
        let mut sets: Vec<ReplicaSetView> = replica_sets
            .iter()
            .map(|rs| {
                let hash = hash_label(rs);
                let uid = s(rs, "/metadata/uid");
                ReplicaSetView {
                    name: s(rs, "/metadata/name").to_string(),
                    revision: replica_set_revision(rs),
                    hash: hash.to_string(),
                    tags: roles(r, hash),
                    images: images_of(rs.pointer("/spec/template").unwrap_or(&Value::Null)),
                    desired: i(rs, "/spec/replicas").unwrap_or(0),
                    replicas: i(rs, "/status/replicas").unwrap_or(0),
                    ready: i(rs, "/status/readyReplicas").unwrap_or(0),
                    available: i(rs, "/status/availableReplicas").unwrap_or(0),
                    pods: pods.iter().filter(|p| owned_by(p, uid)).map(pod).collect(),
                }
            })
            .collect();
        sets.sort_by_key(|rs| std::cmp::Reverse(rs.revision.unwrap_or(-1)));
        let mut images: BTreeMap<String, Vec<Role>> = BTreeMap::new();
        for rs in &sets {
            if rs.tags.is_empty() || rs.replicas == 0 && rs.tags != [Role::Stable] {
                continue;
            }
            for img in &rs.images {
                let e = images.entry(img.clone()).or_default();
                for t in &rs.tags {
                    if !e.contains(t) {
                        e.push(*t);
                    }
                }
            }
        }
        if images.is_empty() {
            for img in images_of(r.pointer("/spec/template").unwrap_or(&Value::Null)) {
                images.insert(img, vec![]);
            }
        }
        let mut runs: Vec<AnalysisRunView> = analysis_runs.iter().map(analysis_run).collect();
        runs.sort_by(|a, b| (&b.created, &b.name).cmp(&(&a.created, &a.name)));
        RolloutView {
            name: s(r, "/metadata/name").to_string(),
            namespace: s(r, "/metadata/namespace").to_string(),
            status,
            message,
            strategy,
            step,
            set_weight: set_weight(r),
            actual_weight,
            abort: aborted(r),
            paused: r
                .pointer("/spec/paused")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            revision: r
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(REVISION_ANNOTATION))
                .and_then(Value::as_str)
                .map(str::to_string),
            stable_rs: stable.to_string(),
            current_pod_hash: current.to_string(),
            images: images
                .into_iter()
                .map(|(image, tags)| ImageView { image, tags })
                .collect(),
            replicas: Replicas {
                desired: i(r, "/spec/replicas").unwrap_or(1),
                current: i(r, "/status/replicas").unwrap_or(0),
                updated: i(r, "/status/updatedReplicas").unwrap_or(0),
                ready: i(r, "/status/readyReplicas").unwrap_or(0),
                available,
            },
            replica_sets: sets,
            analysis_runs: runs,
        }
    }
}

#[cfg(test)]
mod tests;
