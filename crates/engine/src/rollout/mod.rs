//! The Argo Rollouts controller's decisions, as a pure function of what it observes.
//!
//! A reconcile of one `Rollout` looks at the Rollout (spec and the status the previous
//! reconcile wrote), the ReplicaSets it owns and the AnalysisRuns it owns, and decides
//! everything at once: which ReplicaSet to create, how many replicas each gets, which pod
//! hash each Service selects, the canary traffic weight, which AnalysisRuns to start or
//! stop, and the new status in Argo's layout (`stableRS`, `currentPodHash`,
//! `currentStepIndex`, `pauseConditions`, `abort`, `phase`, `message`, …). The controller
//! (in `mooring-controller`) only performs the [`Plan`]. Keeping the state machine free of
//! I/O is what lets every step of a canary or blue-green update be tested with plain
//! values, and what makes the controller restartable at any moment: all state is in the
//! Rollout's status and the children's labels and annotations, as in Argo Rollouts.
//!
//! The behaviour follows Argo Rollouts' documented semantics: the first deploy skips the
//! steps; a new pod template restarts the steps; `setWeight` completes once the canary's
//! replicas are available (and, with a traffic router, the weight is set); `pause` without
//! a duration waits for `promote` (which clears `status.pauseConditions`); an analysis step
//! waits for its AnalysisRun, whose failure aborts the update; an aborted update sends all
//! traffic back to the stable pods and reports `Degraded`; `status.promoteFull` skips the
//! remaining steps; `spec.paused` freezes the update.
//!
//! A spec Mooring cannot carry out completely is refused, not half-followed: a field or
//! step it does not act on ([`crate::unsupported::rollout`]: `experiment`,
//! `setHeaderRoute`, `setMirrorRoute` steps, traffic routers other than Istio and the
//! Gateway API plugin, `antiAffinity`, `pingPong`, …), a step with no action, or a
//! malformed router reference makes the Rollout `Degraded` with Argo's `InvalidSpec`
//! condition naming it ("step 2: experiment is not supported by Mooring"), and the plan
//! holds nothing but that status: no ReplicaSet is created or scaled, no Service or
//! router touched, so the stable version keeps all traffic until the spec is fixed.

mod bluegreen;
mod canary;
pub mod command;
pub mod events;
pub(crate) mod hash;
pub mod status;
#[cfg(test)]
mod tests;

pub use hash::{pod_template_hash, steps_hash, text_hash};
use mooring_core::time::{self, SignedDuration, Timestamp};

use mooring_core::rollout::{
    RolloutAnalysis, RolloutSpec, POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION,
    SCALE_DOWN_DEADLINE_ANNOTATION,
};
use serde_json::{json, Map, Value};
use std::time::Duration;

/// Argo's default `progressDeadlineSeconds`.
pub const DEFAULT_PROGRESS_DEADLINE: i64 = 600;
/// Argo's default delay before old pods are scaled down behind a traffic router or a
/// blue-green switch (`scaleDownDelaySeconds`), and after an abort
/// (`abortScaleDownDelaySeconds`).
pub const DEFAULT_SCALE_DOWN_DELAY: i64 = 30;
/// Argo's default `revisionHistoryLimit`.
pub const DEFAULT_HISTORY_LIMIT: i64 = 10;

/// What the controller observed for one Rollout.
#[derive(Debug, Clone)]
pub struct Observed<'a> {
    /// The whole Rollout (metadata, spec, status).
    pub rollout: &'a Value,
    /// ReplicaSets the Rollout owns.
    pub replica_sets: &'a [Value],
    /// AnalysisRuns the Rollout owns.
    pub analysis_runs: &'a [Value],
    pub now: Timestamp,
}

/// Which part of an update an AnalysisRun gates (Argo's `rollout-type` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunKind {
    Step,
    Background,
    PrePromotion,
    PostPromotion,
}

impl RunKind {
    pub fn label(self) -> &'static str {
        match self {
            RunKind::Step => "Step",
            RunKind::Background => "Background",
            RunKind::PrePromotion => "PrePromotion",
            RunKind::PostPromotion => "PostPromotion",
        }
    }
}

/// An AnalysisRun to create. `args` are resolved except for `secretKeyRef`, which the
/// analysis controller resolves when it runs (so the secret never enters the run's spec).
#[derive(Debug, Clone, PartialEq)]
pub struct RunRequest {
    pub name: String,
    pub kind: RunKind,
    pub analysis: RolloutAnalysis,
    pub args: Vec<Value>,
    pub labels: Map<String, Value>,
}

/// The canary weight for a traffic router.
#[derive(Debug, Clone, PartialEq)]
pub struct TrafficPlan {
    /// Percent of traffic to the canary (0..=100).
    pub canary_weight: i64,
    pub canary_hash: String,
    pub stable_hash: String,
}

/// Everything one reconcile decided.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// ReplicaSets to create (whole objects).
    pub create: Vec<Value>,
    /// Merge patches to existing ReplicaSets, by name.
    pub patch: Vec<(String, Value)>,
    /// ReplicaSets to delete (beyond `revisionHistoryLimit`).
    pub delete: Vec<String>,
    /// Service name → pod hash its selector must include.
    pub service_selectors: Vec<(String, String)>,
    pub traffic: Option<TrafficPlan>,
    pub start_runs: Vec<RunRequest>,
    /// Running AnalysisRuns to terminate (`spec.terminate: true`), by name.
    pub terminate_runs: Vec<String>,
    /// The Rollout's new status (whole).
    pub status: Value,
    /// Look again after this long even if nothing changes (pauses, delays, deadlines).
    pub requeue_after: Option<Duration>,
}

impl Plan {
    fn requeue(&mut self, after: SignedDuration) {
        let after = Duration::try_from(after).unwrap_or(Duration::from_millis(100));
        let after = after.max(Duration::from_millis(100));
        self.requeue_after = Some(self.requeue_after.map_or(after, |d| d.min(after)));
    }
}

/// A ReplicaSet the Rollout owns, reduced to what decisions need.
#[derive(Debug, Clone)]
pub(crate) struct Rs {
    pub name: String,
    pub hash: String,
    pub revision: i64,
    /// `spec.replicas`.
    pub replicas: i64,
    pub available: i64,
    pub ready: i64,
    /// Pods that exist (`status.replicas`).
    pub current: i64,
    pub scale_down_deadline: Option<Timestamp>,
}

impl Rs {
    fn of(v: &Value) -> Rs {
        let int = |p: &str| v.pointer(p).and_then(Value::as_i64).unwrap_or(0);
        let meta = |p: &str| v.pointer(p).and_then(Value::as_str).unwrap_or_default();
        Rs {
            name: meta("/metadata/name").to_string(),
            hash: label(v, POD_TEMPLATE_HASH_LABEL).to_string(),
            revision: annotation(v, REVISION_ANNOTATION).parse().unwrap_or(0),
            replicas: v
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(1),
            available: int("/status/availableReplicas"),
            ready: int("/status/readyReplicas"),
            current: int("/status/replicas"),
            scale_down_deadline: time::parse(annotation(v, SCALE_DOWN_DEADLINE_ANNOTATION)).ok(),
        }
    }
}

fn label<'a>(v: &'a Value, key: &str) -> &'a str {
    v.pointer("/metadata/labels")
        .and_then(|l| l.get(key))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn annotation<'a>(v: &'a Value, key: &str) -> &'a str {
    v.pointer("/metadata/annotations")
        .and_then(|l| l.get(key))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// An AnalysisRun's phase and message, as the rollout status reports it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunState {
    pub name: String,
    pub phase: String,
    pub message: String,
}

/// Shared state of one reconcile: the observation digested, the plan being built.
pub(crate) struct Ctx<'a> {
    pub name: String,
    pub namespace: String,
    pub uid: String,
    pub spec: RolloutSpec,
    pub rollout: &'a Value,
    pub old_status: Value,
    pub status: Map<String, Value>,
    pub now: Timestamp,
    pub replicas: i64,
    pub hash: String,
    pub rses: Vec<Rs>,
    pub runs: Vec<&'a Value>,
    pub plan: Plan,
    /// Revision of the ReplicaSet of the current template.
    pub revision: i64,
    /// Desired `spec.replicas` per ReplicaSet name (applied at the end).
    pub scale: Vec<(String, i64)>,
}

impl Ctx<'_> {
    pub fn rs(&self, hash: &str) -> Option<&Rs> {
        self.rses.iter().find(|r| r.hash == hash)
    }

    pub fn status_str(&self, key: &str) -> Option<String> {
        self.status
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }

    pub fn status_bool(&self, key: &str) -> bool {
        self.status
            .get(key)
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    pub fn set_scale(&mut self, name: &str, replicas: i64) {
        self.scale.retain(|(n, _)| n != name);
        self.scale.push((name.to_string(), replicas.max(0)));
    }

    pub fn desired(&self, hash: &str) -> i64 {
        let Some(rs) = self.rs(hash) else { return 0 };
        self.scale
            .iter()
            .find(|(n, _)| *n == rs.name)
            .map_or(rs.replicas, |(_, r)| *r)
    }

    /// The state of the AnalysisRun named `name`, if it exists.
    pub fn run(&self, name: &str) -> Option<RunState> {
        self.runs
            .iter()
            .find(|r| r.pointer("/metadata/name").and_then(Value::as_str) == Some(name))
            .map(|r| RunState {
                name: name.to_string(),
                phase: r
                    .pointer("/status/phase")
                    .and_then(Value::as_str)
                    .unwrap_or("Pending")
                    .to_string(),
                message: r
                    .pointer("/status/message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
            })
    }

    /// Start (or follow) the AnalysisRun `name` for `analysis`: its state, `Pending` when
    /// it is being created.
    pub fn analysis(
        &mut self,
        name: String,
        kind: RunKind,
        analysis: &RolloutAnalysis,
        step: Option<usize>,
    ) -> RunState {
        let name = match self.status.get("retryAttempt").and_then(Value::as_i64) {
            Some(a) if a > 0 => format!("{name}.{a}"),
            _ => name,
        };
        if let Some(s) = self.run(&name) {
            return s;
        }
        let pending = RunState {
            name: name.clone(),
            phase: "Pending".into(),
            message: String::new(),
        };
        if self.plan.start_runs.iter().any(|r| r.name == name) {
            return pending;
        }
        let mut labels = Map::new();
        labels.insert(POD_TEMPLATE_HASH_LABEL.into(), json!(self.hash));
        labels.insert("rollout-type".into(), json!(kind.label()));
        labels.insert(
            "rollouts.argoproj.io/revision".into(),
            json!(self.revision.to_string()),
        );
        if let Some(i) = step {
            labels.insert("step-index".into(), json!(i.to_string()));
        }
        let args = self.resolve_args(&analysis.args);
        self.plan.start_runs.push(RunRequest {
            name,
            kind,
            analysis: analysis.clone(),
            args,
            labels,
        });
        pending
    }

    /// Resolve `podTemplateHashValue` and `fieldRef` (on the Rollout) argument values;
    /// `secretKeyRef` is left for the analysis controller.
    fn resolve_args(&self, args: &[Value]) -> Vec<Value> {
        args.iter()
            .map(|a| {
                let name = a.get("name").cloned().unwrap_or(Value::Null);
                let from = a.get("valueFrom");
                if let Some(which) = from
                    .and_then(|f| f.get("podTemplateHashValue"))
                    .and_then(Value::as_str)
                {
                    let hash = if which == "Stable" {
                        self.status_str("stableRS")
                            .unwrap_or_else(|| self.hash.clone())
                    } else {
                        self.hash.clone()
                    };
                    return json!({"name": name, "value": hash});
                }
                if let Some(path) = from
                    .and_then(|f| f.pointer("/fieldRef/fieldPath"))
                    .and_then(Value::as_str)
                {
                    let value = field_path(self.rollout, path).unwrap_or_default();
                    return json!({"name": name, "value": value});
                }
                a.clone()
            })
            .collect()
    }

    /// Terminate every running AnalysisRun of this Rollout except those named in `keep`.
    pub fn terminate_runs_except(&mut self, keep: &[String]) {
        for r in &self.runs {
            let name = r
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let phase = r
                .pointer("/status/phase")
                .and_then(Value::as_str)
                .unwrap_or("Pending");
            let terminated = r
                .pointer("/spec/terminate")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            if matches!(phase, "Pending" | "Running" | "")
                && !terminated
                && !keep.iter().any(|k| k == name)
            {
                self.plan.terminate_runs.push(name.to_string());
            }
        }
    }

    /// Old ReplicaSets (neither `keep_a` nor `keep_b`): scaled down at once, or after
    /// `delay` seconds (recorded in an annotation, so a restart keeps the deadline).
    pub fn scale_down_old(&mut self, keep: &[&str], delay: Option<i64>) {
        let now = self.now;
        let old: Vec<Rs> = self
            .rses
            .iter()
            .filter(|r| !keep.contains(&r.hash.as_str()) && r.replicas > 0)
            .cloned()
            .collect();
        for rs in old {
            match delay.filter(|d| *d > 0) {
                None => self.set_scale(&rs.name, 0),
                Some(d) => match rs.scale_down_deadline {
                    Some(t) if t <= now => self.set_scale(&rs.name, 0),
                    Some(t) => self.plan.requeue(t.duration_since(now)),
                    None => {
                        let t = now + SignedDuration::from_secs(d);
                        self.plan.patch.push((
                            rs.name.clone(),
                            json!({"metadata": {"annotations": {SCALE_DOWN_DEADLINE_ANNOTATION: time::format(t)}}}),
                        ));
                        self.plan.requeue(t.duration_since(now));
                    }
                },
            }
        }
    }

    /// Set (or keep) the pause condition `reason`; returns when it started.
    pub fn pause(&mut self, reason: &str) -> Timestamp {
        let conds = self
            .status
            .entry("pauseConditions")
            .or_insert_with(|| json!([]));
        if !conds.is_array() {
            *conds = json!([]);
        }
        let arr = conds.as_array_mut().expect("just made an array");
        if let Some(c) = arr
            .iter()
            .find(|c| c.get("reason").and_then(Value::as_str) == Some(reason))
        {
            return c
                .get("startTime")
                .and_then(Value::as_str)
                .and_then(|s| time::parse(s).ok())
                .unwrap_or(self.now);
        }
        arr.push(json!({"reason": reason, "startTime": time::format(self.now)}));
        self.status.insert("controllerPause".into(), json!(true));
        self.now
    }

    /// Whether a pause the controller set was lifted by a user (`promote`).
    pub fn pause_lifted(&self) -> bool {
        self.status_bool("controllerPause")
            && self
                .status
                .get("pauseConditions")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
    }

    pub fn clear_pause(&mut self) {
        self.status.remove("pauseConditions");
        self.status.remove("controllerPause");
    }

    pub fn paused(&self) -> bool {
        self.spec.paused
            || self
                .status
                .get("pauseConditions")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty())
    }

    pub fn abort(&mut self, message: &str) {
        if !self.status_bool("abort") {
            self.status.insert("abort".into(), json!(true));
        }
        if !self.status.contains_key("abortedAt") {
            self.status
                .insert("abortedAt".into(), json!(time::format(self.now)));
        }
        if !message.is_empty() {
            self.status.insert("abortMessage".into(), json!(message));
        }
    }
}

/// Value at a Kubernetes field path on an object: `metadata.namespace`,
/// `metadata.labels['app']`, `spec.template.metadata.labels.app`.
pub fn field_path(obj: &Value, path: &str) -> Option<String> {
    let mut cur = obj;
    let mut rest = path.trim();
    while !rest.is_empty() {
        rest = rest.trim_start_matches('.');
        let (seg, tail) = if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']')?;
            let key = after[..end].trim_matches(|c| c == '\'' || c == '"');
            (key.to_string(), &after[end + 1..])
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            (rest[..end].to_string(), &rest[end..])
        };
        cur = match cur {
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => cur.get(&seg)?,
        };
        rest = tail;
    }
    match cur {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        v => Some(v.to_string()),
    }
}

/// Decide everything for one reconcile of a Rollout.
pub fn plan(obs: &Observed) -> Plan {
    let r = obs.rollout;
    let name = r
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let old_status = r.get("status").cloned().unwrap_or(json!({}));
    let mut status = old_status.as_object().cloned().unwrap_or_default();
    let spec: Result<RolloutSpec, _> =
        serde_json::from_value(r.get("spec").cloned().unwrap_or(json!({})));
    let generation = r
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    status.insert("observedGeneration".into(), json!(generation.to_string()));
    let invalid = |status: &mut Map<String, Value>, msg: String| {
        status.insert("phase".into(), json!("Degraded"));
        status.insert("message".into(), json!(format!("InvalidSpec: {msg}")));
        set_condition(status, "InvalidSpec", "True", "InvalidSpec", &msg, obs.now);
        Plan {
            status: Value::Object(status.clone()),
            ..Default::default()
        }
    };
    let spec = match spec {
        Ok(s) => s,
        Err(e) => return invalid(&mut status, format!("spec does not parse: {e}")),
    };
    // Nothing Mooring does not act on may pass: a skipped step or an ignored router would
    // move traffic nobody asked to move. Checked before anything is created or scaled.
    let unsupported = crate::unsupported::rollout(r);
    if !unsupported.is_empty() {
        return invalid(&mut status, unsupported_message(&unsupported));
    }
    if let Err(msg) = validate(&spec).and_then(|()| validate_routing(&spec, r)) {
        return invalid(&mut status, msg);
    }
    remove_condition(&mut status, "InvalidSpec");
    let collision = status
        .get("collisionCount")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let hash = pod_template_hash(&spec.template, collision);
    let rses: Vec<Rs> = obs.replica_sets.iter().map(Rs::of).collect();
    let mut cx = Ctx {
        namespace: r
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("default")
            .to_string(),
        uid: r
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        replicas: spec.replicas.unwrap_or(1).max(0),
        spec,
        rollout: r,
        old_status,
        status,
        now: obs.now,
        hash: hash.clone(),
        rses,
        runs: obs.analysis_runs.iter().collect(),
        plan: Plan::default(),
        revision: 0,
        scale: vec![],
        name,
    };
    ensure_new_rs(&mut cx);
    // Retry of an aborted update (`status.abort` set back to false): the steps start over,
    // and its AnalysisRuns are new ones (named with the attempt), as in Argo Rollouts.
    if !cx.status_bool("abort") && cx.status.contains_key("abortedAt") {
        for k in [
            "abortedAt",
            "abortMessage",
            "currentStepIndex",
            "pauseConditions",
            "controllerPause",
        ] {
            cx.status.remove(k);
        }
        let attempt = cx
            .status
            .get("retryAttempt")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        cx.status.insert("retryAttempt".into(), json!(attempt + 1));
    }
    // A new pod template starts a new update: steps from the beginning, no abort, no
    // pause, no full promotion, and the previous update's analyses stop.
    if cx.status_str("currentPodHash").as_deref() != Some(hash.as_str()) {
        for k in [
            "abort",
            "abortedAt",
            "promoteFull",
            "pauseConditions",
            "controllerPause",
            "currentStepIndex",
            "abortMessage",
            "retryAttempt",
        ] {
            cx.status.remove(k);
        }
        cx.status.insert("currentPodHash".into(), json!(hash));
        if let Some(c) = cx.status.get_mut("canary").and_then(Value::as_object_mut) {
            c.remove("currentStepAnalysisRunStatus");
            c.remove("currentBackgroundAnalysisRunStatus");
        }
        if let Some(b) = cx
            .status
            .get_mut("blueGreen")
            .and_then(Value::as_object_mut)
        {
            b.remove("prePromotionAnalysisRunStatus");
            b.remove("postPromotionAnalysisRunStatus");
        }
        remove_condition(&mut cx.status, "Progressing");
    }
    if cx.spec.strategy.blue_green.is_some() {
        bluegreen::reconcile(&mut cx);
    } else {
        canary::reconcile(&mut cx);
    }
    finish(cx)
}

/// The InvalidSpec message for fields Mooring does not act on; a canary step it does not
/// implement reads "step 2: experiment is not supported by Mooring (…)", one it does not
/// know "step 2: setWieght is not a canary step Argo Rollouts or Mooring knows (…)".
fn unsupported_message(found: &[crate::unsupported::Unsupported]) -> String {
    use crate::unsupported::{tables::STEP_NOT_SUPPORTED, Reason};
    found
        .iter()
        .map(
            |u| match (u.list_item("spec.strategy.canary.steps"), &u.reason) {
                (Some((i, kind)), Reason::NotImplemented(note)) => {
                    if *note == STEP_NOT_SUPPORTED {
                        format!("step {i}: {kind} is not supported by Mooring ({})", u.path)
                    } else {
                        format!("step {i}: {kind} is {note} ({})", u.path)
                    }
                }
                _ => u.to_string(),
            },
        )
        .collect::<Vec<_>>()
        .join("; ")
}

/// A traffic router, if configured, is one Mooring drives and is well formed (so a
/// malformed reference is reported before the first ReplicaSet is scaled).
fn validate_routing(spec: &RolloutSpec, rollout: &Value) -> Result<(), String> {
    if spec
        .strategy
        .canary
        .as_ref()
        .is_none_or(|c| c.traffic_routing.is_none())
    {
        return Ok(());
    }
    let bad = |e: crate::traffic::TrafficError| format!("spec.strategy.canary.trafficRouting: {e}");
    let istio = crate::traffic::istio_routing(rollout).map_err(bad)?;
    let gateway = crate::traffic::gateway_api_routing(rollout).map_err(bad)?;
    if istio.is_none() && gateway.is_none() {
        return Err(format!(
            "spec.strategy.canary.trafficRouting configures no router Mooring drives (istio, or the {} plugin)",
            crate::traffic::GATEWAY_API_PLUGIN
        ));
    }
    Ok(())
}

fn validate(spec: &RolloutSpec) -> Result<(), String> {
    match (&spec.strategy.canary, &spec.strategy.blue_green) {
        (Some(_), Some(_)) => {
            return Err("spec.strategy sets both canary and blueGreen; choose one".into())
        }
        (None, None) => {
            return Err("spec.strategy needs canary or blueGreen".into());
        }
        _ => {}
    }
    let selector = spec
        .selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .filter(|m| !m.is_empty())
        .ok_or("spec.selector.matchLabels is required")?;
    let labels = spec.template.pointer("/metadata/labels");
    for (k, v) in selector {
        if labels.and_then(|l| l.get(k)) != Some(v) {
            return Err(format!(
                "spec.selector does not match spec.template.metadata.labels ({k}={})",
                v.as_str().unwrap_or_default()
            ));
        }
    }
    if let Some(c) = &spec.strategy.canary {
        for (i, s) in c.steps.iter().enumerate() {
            // Exactly one action per step, as Argo Rollouts requires (the kinds Mooring
            // does not implement are refused before this, by the field check).
            let actions = [
                s.set_weight.is_some(),
                s.pause.is_some(),
                s.analysis.is_some(),
                s.set_canary_scale.is_some(),
                s.experiment.is_some(),
                s.set_header_route.is_some(),
                s.set_mirror_route.is_some(),
            ]
            .into_iter()
            .filter(|set| *set)
            .count();
            if actions != 1 {
                return Err(format!(
                    "spec.strategy.canary.steps[{i}] must set exactly one of setWeight, pause, analysis, setCanaryScale (it sets {actions})"
                ));
            }
            if let Some(w) = s.set_weight {
                if !(0..=100).contains(&w) {
                    return Err(format!(
                        "spec.strategy.canary.steps[{i}].setWeight must be 0..100, not {w}"
                    ));
                }
            }
            if let Some(p) = &s.pause {
                if let Some(d) = &p.duration {
                    if duration_of(d).is_none() {
                        return Err(format!(
                            "spec.strategy.canary.steps[{i}].pause.duration {d} is not a duration"
                        ));
                    }
                }
            }
            if s.analysis.as_ref().is_some_and(|a| a.templates.is_empty()) {
                return Err(format!(
                    "spec.strategy.canary.steps[{i}].analysis names no templates"
                ));
            }
        }
        let routing = c.traffic_routing.as_ref();
        if routing.is_some() && (c.canary_service.is_none() || c.stable_service.is_none()) {
            return Err("trafficRouting needs canaryService and stableService".into());
        }
    }
    Ok(())
}

/// A pause duration: seconds as a number or string, or a Go duration (`30s`, `1m`).
pub fn duration_of(v: &Value) -> Option<SignedDuration> {
    let d = match v {
        Value::Number(n) => Duration::from_secs(n.as_u64()?),
        Value::String(s) => mooring_core::time::parse_go_duration(s)?,
        _ => return None,
    };
    SignedDuration::try_from(d).ok()
}

/// Find or create the ReplicaSet of the current template; give it the newest revision.
fn ensure_new_rs(cx: &mut Ctx) {
    let max = cx.rses.iter().map(|r| r.revision).max().unwrap_or(0);
    let stable = cx.status_str("stableRS");
    if let Some(rs) = cx.rses.iter().find(|r| r.hash == cx.hash).cloned() {
        // Going back to an older template (undo) makes its ReplicaSet the newest revision,
        // unless it is the stable one.
        if rs.revision < max && stable.as_deref() != Some(rs.hash.as_str()) {
            cx.revision = max + 1;
            cx.plan.patch.push((
                rs.name.clone(),
                json!({"metadata": {"annotations": {REVISION_ANNOTATION: cx.revision.to_string()}}}),
            ));
        } else {
            cx.revision = rs.revision.max(1);
        }
        return;
    }
    cx.revision = max + 1;
    let mut template = cx.spec.template.clone();
    if let Some(m) = template.as_object_mut() {
        let meta = m.entry("metadata").or_insert_with(|| json!({}));
        if let Some(meta) = meta.as_object_mut() {
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                l.insert(POD_TEMPLATE_HASH_LABEL.into(), json!(cx.hash));
            }
        }
    }
    let mut selector = cx.spec.selector.clone();
    if let Some(ml) = selector
        .get_mut("matchLabels")
        .and_then(Value::as_object_mut)
    {
        ml.insert(POD_TEMPLATE_HASH_LABEL.into(), json!(cx.hash));
    }
    let labels = template
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or(json!({}));
    let rs_name = format!("{}-{}", cx.name, cx.hash);
    let rs = json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": rs_name,
            "namespace": cx.namespace,
            "labels": labels,
            "annotations": {REVISION_ANNOTATION: cx.revision.to_string()},
            "ownerReferences": [{
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "Rollout",
                "name": cx.name,
                "uid": cx.uid,
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "replicas": 0,
            "minReadySeconds": cx.spec.min_ready_seconds,
            "selector": selector,
            "template": template,
        },
    });
    cx.plan.create.push(rs.clone());
    let mut new = Rs::of(&rs);
    new.replicas = 0;
    cx.rses.push(new);
}

/// Fill in replica counts, conditions, phase and message; history cleanup.
fn finish(mut cx: Ctx) -> Plan {
    let scale = std::mem::take(&mut cx.scale);
    for (name, replicas) in scale {
        if cx
            .rses
            .iter()
            .any(|r| r.name == name && r.replicas != replicas)
        {
            if let Some(c) = cx
                .plan
                .create
                .iter_mut()
                .find(|c| c.pointer("/metadata/name").and_then(Value::as_str) == Some(&name))
            {
                c["spec"]["replicas"] = json!(replicas);
            } else {
                cx.plan
                    .patch
                    .push((name.clone(), json!({"spec": {"replicas": replicas}})));
            }
            if let Some(r) = cx.rses.iter_mut().find(|r| r.name == name) {
                r.replicas = replicas;
            }
        }
    }
    // History: keep `revisionHistoryLimit` scaled-down old ReplicaSets.
    let limit = cx
        .spec
        .revision_history_limit
        .unwrap_or(DEFAULT_HISTORY_LIMIT)
        .max(0);
    let stable = cx.status_str("stableRS").unwrap_or_default();
    let mut old: Vec<&Rs> = cx
        .rses
        .iter()
        .filter(|r| r.hash != cx.hash && r.hash != stable && r.replicas == 0 && r.current == 0)
        .collect();
    old.sort_by_key(|r| std::cmp::Reverse(r.revision));
    for r in old.iter().skip(usize::try_from(limit).unwrap_or(0)) {
        cx.plan.delete.push(r.name.clone());
    }
    let sum = |f: fn(&Rs) -> i64| cx.rses.iter().map(f).sum::<i64>();
    let new = cx.rs(&cx.hash).cloned();
    cx.status
        .insert("replicas".into(), json!(sum(|r| r.current)));
    cx.status.insert(
        "updatedReplicas".into(),
        json!(new.as_ref().map_or(0, |r| r.current)),
    );
    cx.status
        .insert("readyReplicas".into(), json!(sum(|r| r.ready)));
    cx.status
        .insert("availableReplicas".into(), json!(sum(|r| r.available)));
    let selector = cx
        .spec
        .selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    cx.status.insert("selector".into(), json!(selector));
    let available = sum(|r| r.available) >= cx.replicas.min(sum(|r| r.replicas).max(1));
    let now = cx.now;
    set_condition(
        &mut cx.status,
        "Available",
        if available { "True" } else { "False" },
        "AvailableReason",
        if available {
            "Rollout has minimum availability"
        } else {
            "Rollout does not have minimum availability"
        },
        now,
    );
    phase(&mut cx, new.as_ref());
    cx.plan.status = Value::Object(cx.status);
    cx.plan
}

/// Argo's phase and message: Degraded (aborted, deadline exceeded), Paused, Progressing
/// or Healthy; plus the `Progressing`, `Paused`, `Healthy` and `Completed` conditions.
fn phase(cx: &mut Ctx, new: Option<&Rs>) {
    let now = cx.now;
    let stable = cx.status_str("stableRS").unwrap_or_default();
    let promoted = stable == cx.hash;
    let new_ready = new.is_some_and(|r| {
        r.available >= cx.replicas && r.current == cx.replicas && r.replicas == cx.replicas
    });
    // Old pods kept for `scaleDownDelaySeconds` (a deadline is set) do not make the
    // Rollout less healthy: traffic has left them, as Argo Rollouts reports.
    let others_gone = cx.rses.iter().filter(|r| r.hash != cx.hash).all(|r| {
        r.current == 0 || r.scale_down_deadline.is_some() || cx.spec.strategy.blue_green.is_some()
    });
    let aborted = cx.status_bool("abort");
    let old_progress = condition(&cx.old_status, "Progressing");
    let (phase, message, reason) = if aborted {
        let why = cx
            .status_str("abortMessage")
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        (
            "Degraded",
            format!(
                "RolloutAborted: Rollout aborted update to revision {}{why}",
                cx.revision
            ),
            "RolloutAborted",
        )
    } else if let Some(msg) = deadline_exceeded(cx, old_progress.as_ref()) {
        (
            "Degraded",
            format!("ProgressDeadlineExceeded: {msg}"),
            "ProgressDeadlineExceeded",
        )
    } else if cx.paused() {
        let reason = cx
            .status
            .get("pauseConditions")
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(|c| c.get("reason"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let msg = reason.unwrap_or_else(|| "manually paused".into());
        ("Paused", msg, "RolloutPaused")
    } else if promoted && new_ready && others_gone {
        ("Healthy", String::new(), "NewReplicaSetAvailable")
    } else {
        let msg = if !promoted {
            "more replicas need to be updated".to_string()
        } else if !new_ready {
            "updated replicas are still becoming available".to_string()
        } else {
            "old replicas are pending termination".to_string()
        };
        ("Progressing", msg, "ReplicaSetUpdated")
    };
    let progressing_status = if reason == "RolloutAborted" || reason == "ProgressDeadlineExceeded" {
        "False"
    } else {
        "True"
    };
    // The Progressing condition's lastUpdateTime moves only when something progressed, so
    // the progress deadline measures time without progress.
    let progressed = progress_marker(cx, new);
    let old_marker = cx
        .old_status
        .get("progressMarker")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let keep_time = old_marker == progressed
        && old_progress
            .as_ref()
            .is_some_and(|c| c.get("reason").and_then(Value::as_str) == Some(reason));
    cx.status.insert("progressMarker".into(), json!(progressed));
    if !keep_time {
        set_condition(
            &mut cx.status,
            "Progressing",
            progressing_status,
            reason,
            &message,
            now,
        );
    } else if let Some(c) = find_condition_mut(&mut cx.status, "Progressing") {
        c["message"] = json!(message);
        c["status"] = json!(progressing_status);
    }
    let paused = phase == "Paused";
    set_condition(
        &mut cx.status,
        "Paused",
        if paused { "True" } else { "False" },
        if paused {
            "RolloutPaused"
        } else {
            "RolloutResumed"
        },
        if paused {
            "Rollout is paused"
        } else {
            "Rollout is resumed"
        },
        now,
    );
    let healthy = phase == "Healthy";
    set_condition(
        &mut cx.status,
        "Healthy",
        if healthy { "True" } else { "False" },
        if healthy {
            "RolloutHealthy"
        } else {
            "RolloutHealthyNot"
        },
        if healthy {
            "Rollout is healthy"
        } else {
            "Rollout is not healthy"
        },
        now,
    );
    cx.status.insert("phase".into(), json!(phase));
    cx.status.insert("message".into(), json!(message));
    if phase == "Progressing" || phase == "Paused" {
        // Look again at the deadline.
        let deadline = cx
            .spec
            .progress_deadline_seconds
            .unwrap_or(DEFAULT_PROGRESS_DEADLINE);
        if phase == "Progressing" {
            cx.plan.requeue(SignedDuration::from_secs(deadline.max(1)));
        }
    }
}

/// What counts as progress: step, replica counts, stable hash, pause state.
fn progress_marker(cx: &Ctx, new: Option<&Rs>) -> String {
    format!(
        "{}/{}/{}/{}/{}",
        cx.status_str("stableRS").unwrap_or_default(),
        cx.status
            .get("currentStepIndex")
            .and_then(Value::as_i64)
            .unwrap_or(-1),
        new.map_or(0, |r| r.available),
        new.map_or(0, |r| r.replicas),
        cx.status_str("currentPodHash").unwrap_or_default(),
    )
}

fn deadline_exceeded(cx: &mut Ctx, old: Option<&Value>) -> Option<String> {
    if cx.paused() {
        return None;
    }
    let stable = cx.status_str("stableRS").unwrap_or_default();
    let new = cx.rs(&cx.hash);
    let complete = stable == cx.hash && new.is_some_and(|r| r.available >= cx.replicas);
    if complete {
        return None;
    }
    let old = old?;
    // Anything that moved since the last reconcile is progress.
    let marker = cx
        .old_status
        .get("progressMarker")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if marker != progress_marker(cx, new) {
        return None;
    }
    if old.get("reason").and_then(Value::as_str) == Some("ProgressDeadlineExceeded") {
        return old.get("message").and_then(Value::as_str).map(|m| {
            m.trim_start_matches("ProgressDeadlineExceeded: ")
                .to_string()
        });
    }
    let since = old
        .get("lastUpdateTime")
        .and_then(Value::as_str)
        .and_then(|s| time::parse(s).ok())?;
    let deadline = cx
        .spec
        .progress_deadline_seconds
        .unwrap_or(DEFAULT_PROGRESS_DEADLINE);
    if cx.now.duration_since(since) < SignedDuration::from_secs(deadline) {
        return None;
    }
    let msg = format!(
        "ReplicaSet \"{}-{}\" has timed out progressing.",
        cx.name, cx.hash
    );
    if cx.spec.progress_deadline_abort {
        cx.abort(&msg);
    }
    Some(msg)
}

pub(crate) fn condition(status: &Value, kind: &str) -> Option<Value> {
    status
        .get("conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
        .cloned()
}

fn find_condition_mut<'a>(status: &'a mut Map<String, Value>, kind: &str) -> Option<&'a mut Value> {
    status
        .get_mut("conditions")
        .and_then(Value::as_array_mut)?
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
}

pub(crate) fn set_condition(
    status: &mut Map<String, Value>,
    kind: &str,
    value: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    let t = time::format(now);
    if let Some(c) = find_condition_mut(status, kind) {
        let changed = c.get("status").and_then(Value::as_str) != Some(value)
            || c.get("reason").and_then(Value::as_str) != Some(reason);
        c["message"] = json!(message);
        if changed {
            c["status"] = json!(value);
            c["reason"] = json!(reason);
            c["lastTransitionTime"] = json!(t);
            c["lastUpdateTime"] = json!(t);
        }
        return;
    }
    let conds = status.entry("conditions").or_insert_with(|| json!([]));
    if !conds.is_array() {
        *conds = json!([]);
    }
    if let Some(a) = conds.as_array_mut() {
        a.push(json!({
            "type": kind, "status": value, "reason": reason, "message": message,
            "lastTransitionTime": t, "lastUpdateTime": t,
        }));
    }
}

fn remove_condition(status: &mut Map<String, Value>, kind: &str) {
    if let Some(a) = status.get_mut("conditions").and_then(Value::as_array_mut) {
        a.retain(|c| c.get("type").and_then(Value::as_str) != Some(kind));
    }
}

/// An AnalysisRun's state in the rollout status (`{name, status, message}`).
pub(crate) fn run_status(s: &RunState) -> Value {
    let mut v = json!({"name": s.name, "status": s.phase});
    if !s.message.is_empty() {
        v["message"] = json!(s.message);
    }
    v
}

/// The message an aborting analysis leaves on the Rollout: the run and its message (which
/// names the failing metric).
pub(crate) fn abort_message(s: &RunState) -> String {
    if s.message.is_empty() {
        format!("AnalysisRun \"{}\" {}", s.name, s.phase.to_lowercase())
    } else {
        format!(
            "AnalysisRun \"{}\" {}: {}",
            s.name,
            s.phase.to_lowercase(),
            s.message
        )
    }
}
