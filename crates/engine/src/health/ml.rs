//! Mooring's built-in checks for the ML kinds the platform deploys: KServe
//! `InferenceService`, Kubeflow training jobs (`PyTorchJob`, `TFJob` and their siblings that
//! share the training-operator status), and Argo Rollouts `Rollout` and `AnalysisRun`.
//!
//! Argo CD ships the InferenceService, Rollout and AnalysisRun checks as Lua scripts in
//! `resource_customizations/`; these are Rust ports of the same decisions (same messages),
//! so no Lua state is created for the most common kinds of an ML platform.

use super::builtin::{at, condition, conditions, int, opt_int, string};
use mooring_core::app::{HealthStatus, HealthStatusCode as Code};
use serde_json::Value;

fn hs(code: Code, msg: impl Into<String>) -> HealthStatus {
    HealthStatus::new(code, msg)
}

pub(super) fn rule(group: &str, kind: &str) -> Option<fn(&Value) -> HealthStatus> {
    Some(match (group, kind) {
        ("serving.kserve.io", "InferenceService") => inference_service,
        (
            "kubeflow.org",
            "PyTorchJob" | "TFJob" | "MPIJob" | "XGBoostJob" | "PaddleJob" | "JAXJob",
        ) => training_job,
        ("argoproj.io", "Rollout") => rollout,
        ("argoproj.io", "AnalysisRun") => analysis_run,
        _ => return None,
    })
}

/// KServe `InferenceService`, following Argo CD's built-in `health.lua`:
/// - no conditions yet → Progressing "Waiting for status update.";
/// - any condition False → Degraded, any Unknown → Progressing, with one line per
///   not-True condition: `<Type> is <Status>, since <Reason>. <Message>`;
/// - `Ready` (and, when reported, `PredictorReady` and `IngressReady`) True with nothing
///   False or Unknown → Healthy "Inference Service is healthy.".
///
/// Argo CD's script counts exactly five True conditions (three in RawDeployment mode);
/// this port asks for `Ready` plus no False/Unknown condition instead, which gives the same
/// answer for Serverless and RawDeployment objects and also covers ModelMesh, which reports
/// fewer conditions. A `Stopped` condition that is True (KServe ≥ 0.15,
/// `serving.kserve.io/stop: "true"`) is Suspended.
pub(super) fn inference_service(isvc: &Value) -> HealthStatus {
    let conds = conditions(isvc);
    if conds.is_empty() {
        return hs(Code::Progressing, "Waiting for status update.");
    }
    if condition(isvc, "Stopped").is_some_and(|c| string(c, &["status"]) == "True") {
        return hs(Code::Suspended, "Inference Service is stopped.");
    }
    let mut message = String::new();
    let (mut falses, mut unknowns) = (0, 0);
    for c in conds {
        let status = string(c, &["status"]);
        if status != "False" && status != "Unknown" {
            continue;
        }
        if string(c, &["type"]) == "Stopped" {
            continue;
        }
        message.push_str(string(c, &["type"]));
        message.push_str(" is ");
        message.push_str(status);
        let reason = string(c, &["reason"]);
        if !reason.is_empty() {
            message.push_str(", since ");
            message.push_str(reason);
            message.push('.');
        }
        let msg = string(c, &["message"]);
        if !msg.is_empty() {
            message.push(' ');
            message.push_str(msg);
        }
        message.push('\n');
        if status == "False" {
            falses += 1;
        } else {
            unknowns += 1;
        }
    }
    if falses > 0 {
        return hs(Code::Degraded, message);
    }
    let is_true = |ty: &str| condition(isvc, ty).map(|c| string(c, &["status"]) == "True");
    let ready = is_true("Ready") == Some(true);
    let parts_ok = [is_true("PredictorReady"), is_true("IngressReady")]
        .iter()
        .all(|s| *s != Some(false));
    if unknowns == 0 && ready && parts_ok {
        return hs(Code::Healthy, "Inference Service is healthy.");
    }
    hs(Code::Progressing, message)
}

/// Kubeflow training-operator jobs. Conditions are Created, Running, Restarting,
/// Succeeded, Failed (and Suspended from training-operator 1.7); the terminal ones win:
/// Failed → Degraded, Succeeded → Healthy, Suspended → Suspended, Restarting → Progressing
/// (the operator restarts failed replicas per `restartPolicy`), Running/Created → Progressing.
pub(super) fn training_job(job: &Value) -> HealthStatus {
    let kind = string(job, &["kind"]);
    let is_true = |ty: &str| condition(job, ty).filter(|c| string(c, &["status"]) == "True");
    let msg = |c: &Value, fallback: String| {
        let m = string(c, &["message"]);
        if m.is_empty() {
            fallback
        } else {
            m.to_string()
        }
    };
    if let Some(c) = is_true("Failed") {
        return hs(Code::Degraded, msg(c, format!("{kind} has failed")));
    }
    if let Some(c) = is_true("Succeeded") {
        return hs(Code::Healthy, msg(c, format!("{kind} has succeeded")));
    }
    if let Some(c) = is_true("Suspended") {
        return hs(Code::Suspended, msg(c, format!("{kind} is suspended")));
    }
    if let Some(c) = is_true("Restarting") {
        return hs(Code::Progressing, msg(c, format!("{kind} is restarting")));
    }
    if let Some(c) = is_true("Running") {
        return hs(Code::Progressing, msg(c, format!("{kind} is running")));
    }
    if let Some(c) = is_true("Created") {
        return hs(Code::Progressing, msg(c, format!("{kind} is created")));
    }
    if at(job, &["spec", "runPolicy", "suspend"]).and_then(Value::as_bool) == Some(true) {
        return hs(Code::Suspended, format!("{kind} is suspended"));
    }
    hs(Code::Progressing, "Waiting for job status")
}

/// Argo Rollouts `Rollout`, after Argo CD's built-in `health.lua`:
/// 1. spec change not observed yet → Progressing "Waiting for rollout spec update to be
///    observed": no `status`, or a numeric `status.observedGeneration` (number or numeric
///    string) below `metadata.generation`. A non-numeric or larger one is a pre-v0.10
///    hash and counts as observed, as in Argo CD. With `spec.workloadRef`, the
///    `rollout.argoproj.io/workload-generation` annotation must equal
///    `status.workloadObservedGeneration` too;
/// 2. from Argo Rollouts v1.0 the controller reports `status.phase` (Healthy,
///    Progressing, Paused, Degraded) with `status.message`, surfaced as is (Paused →
///    Suspended). An aborted rollout is `Degraded` with Argo's message, e.g.
///    "RolloutAborted: Rollout aborted update to revision 2: Metric \"success-rate\"
///    assessed Failed …";
/// 3. without a phase (older controllers): condition `InvalidSpec`, or `Progressing` with
///    reason `RolloutAborted` / `ProgressDeadlineExceeded` → Degraded with the condition's
///    message; paused (`status.pauseConditions` non-empty or `spec.paused`) → Suspended;
///    then the replica and strategy checks of the pre-1.0 script.
///
/// A phase Argo Rollouts never reports is not trusted (Argo CD would reject it as a
/// health status): the pre-1.0 checks decide instead.
pub(super) fn rollout(r: &Value) -> HealthStatus {
    let waiting = || {
        hs(
            Code::Progressing,
            "Waiting for rollout spec update to be observed",
        )
    };
    if at(r, &["status"]).is_none_or(Value::is_null) {
        return waiting();
    }
    if let Some(observed) = opt_int(r, &["status", "observedGeneration"]) {
        if observed < int(r, &["metadata", "generation"]) {
            return waiting();
        }
    }
    if at(r, &["spec", "workloadRef"]).is_some_and(|w| !w.is_null())
        && at(r, &["metadata", "annotations"]).is_some_and(Value::is_object)
        && opt_int(
            r,
            &[
                "metadata",
                "annotations",
                "rollout.argoproj.io/workload-generation",
            ],
        ) != opt_int(r, &["status", "workloadObservedGeneration"])
    {
        return waiting();
    }
    let message = string(r, &["status", "message"]);
    match string(r, &["status", "phase"]) {
        "Healthy" => return hs(Code::Healthy, message),
        "Progressing" => return hs(Code::Progressing, message),
        "Degraded" => return hs(Code::Degraded, message),
        "Paused" => return hs(Code::Suspended, message),
        _ => {}
    }
    for c in conditions(r) {
        let (ty, reason) = (string(c, &["type"]), string(c, &["reason"]));
        if ty == "InvalidSpec"
            || (ty == "Progressing"
                && (reason == "RolloutAborted" || reason == "ProgressDeadlineExceeded"))
        {
            return hs(Code::Degraded, string(c, &["message"]));
        }
    }
    let pause_conditions = at(r, &["status", "pauseConditions"])
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if pause_conditions || at(r, &["spec", "paused"]).and_then(Value::as_bool) == Some(true) {
        return hs(Code::Suspended, "Rollout is paused");
    }

    let current_hash = at(r, &["status", "currentPodHash"]).and_then(Value::as_str);
    let Some(current_hash) = current_hash else {
        return hs(
            Code::Progressing,
            "Waiting for rollout to finish: status has not been reconciled.",
        );
    };
    let desired = opt_int(r, &["spec", "replicas"]).unwrap_or(1);
    let replicas = int(r, &["status", "replicas"]);
    let updated = int(r, &["status", "updatedReplicas"]);
    let available = int(r, &["status", "availableReplicas"]);
    if updated < desired {
        return hs(
            Code::Progressing,
            "Waiting for roll out to finish: More replicas need to be updated",
        );
    }
    if available < updated {
        return hs(
            Code::Progressing,
            "Waiting for roll out to finish: updated replicas are still becoming available",
        );
    }
    let stable_rs = at(r, &["status", "stableRS"])
        .or_else(|| at(r, &["status", "canary", "stableRS"]))
        .and_then(Value::as_str)
        .unwrap_or("");
    if at(r, &["spec", "strategy", "blueGreen"]).is_some_and(|v| !v.is_null()) {
        if at(r, &["status", "blueGreen", "activeSelector"]).and_then(Value::as_str)
            != Some(current_hash)
        {
            return hs(Code::Progressing, "active service cutover pending");
        }
        if !stable_rs.is_empty() && stable_rs != current_hash {
            return hs(Code::Progressing, "waiting for analysis to complete");
        }
    } else if at(r, &["spec", "strategy", "canary"]).is_some_and(|v| !v.is_null()) {
        if replicas > updated {
            return hs(
                Code::Progressing,
                "Waiting for roll out to finish: old replicas are pending termination",
            );
        }
        if stable_rs.is_empty() || stable_rs != current_hash {
            return hs(Code::Progressing, "Waiting for rollout to finish steps");
        }
    }
    hs(Code::Healthy, "")
}

/// Argo Rollouts `AnalysisRun`, after Argo CD's built-in `health.lua`:
/// - `Pending` / `Running` → Progressing "Analysis run is running";
/// - `Successful` → Healthy, `status.message` or "Analysis run completed successfully";
/// - `Failed` → Degraded, `status.message` or "Analysis run failed";
/// - `Error` → Degraded, `status.message` or "Analysis run had an error";
/// - `Inconclusive` → Unknown, `status.message` or "Analysis run was inconclusive" (Argo CD
///   reports Unknown, not Suspended: the run is over, and only a person can say what its
///   result means; the Rollout that owns it is the one that pauses);
/// - no status, or a phase not reported yet → Progressing "Waiting for analysis run to
///   finish: status has not been reconciled.".
pub(super) fn analysis_run(run: &Value) -> HealthStatus {
    let message = |default: &str| match at(run, &["status", "message"]).and_then(Value::as_str) {
        Some(m) => m.to_string(),
        None => default.to_string(),
    };
    match string(run, &["status", "phase"]) {
        "Pending" | "Running" => hs(Code::Progressing, "Analysis run is running"),
        "Successful" => hs(
            Code::Healthy,
            message("Analysis run completed successfully"),
        ),
        "Failed" => hs(Code::Degraded, message("Analysis run failed")),
        "Error" => hs(Code::Degraded, message("Analysis run had an error")),
        "Inconclusive" => hs(Code::Unknown, message("Analysis run was inconclusive")),
        _ => hs(
            Code::Progressing,
            "Waiting for analysis run to finish: status has not been reconciled.",
        ),
    }
}
