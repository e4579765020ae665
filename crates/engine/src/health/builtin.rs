//! Built-in health rules for core Kubernetes kinds, with the semantics of Argo CD's
//! gitops-engine (`pkg/health`). Messages are Argo CD's, word for word where Argo CD has
//! one, so that UIs, alerts and `health_test.yaml` expectations carry over.
//!
//! Field access follows Go's typed conversion: an absent integer counts as 0, an absent
//! string as "", and only `spec.replicas` distinguishes "absent" from 0 (it is a pointer in
//! the Kubernetes types).

use mooring_core::app::{HealthStatus, HealthStatusCode as Code};
use serde_json::Value;

pub(super) fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |cur, key| cur.get(key))
}

pub(super) fn int(v: &Value, path: &[&str]) -> i64 {
    opt_int(v, path).unwrap_or(0)
}

pub(super) fn opt_int(v: &Value, path: &[&str]) -> Option<i64> {
    at(v, path).and_then(|x| match x {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.parse().ok(),
        _ => None,
    })
}

pub(super) fn string<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).and_then(Value::as_str).unwrap_or("")
}

pub(super) fn conditions(v: &Value) -> &[Value] {
    at(v, &["status", "conditions"])
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// First condition of the given type (Go's `getXCondition`).
pub(super) fn condition<'a>(v: &'a Value, ty: &str) -> Option<&'a Value> {
    conditions(v).iter().find(|c| string(c, &["type"]) == ty)
}

fn hs(code: Code, msg: impl Into<String>) -> HealthStatus {
    HealthStatus::new(code, msg)
}

/// The built-in rule for `group`/`kind`, if Argo CD has one.
pub(super) fn rule(group: &str, kind: &str) -> Option<fn(&Value) -> HealthStatus> {
    Some(match (group, kind) {
        ("apps" | "extensions", "Deployment") => deployment,
        ("apps", "StatefulSet") => statefulset,
        ("apps" | "extensions", "ReplicaSet") => replicaset,
        ("apps" | "extensions", "DaemonSet") => daemonset,
        ("networking.k8s.io" | "extensions", "Ingress") => ingress,
        ("apiregistration.k8s.io", "APIService") => apiservice,
        ("", "Service") => service,
        ("", "PersistentVolumeClaim") => pvc,
        ("", "Pod") => pod,
        ("batch", "Job") => job,
        ("autoscaling", "HorizontalPodAutoscaler") => hpa,
        _ => return None,
    })
}

pub(super) fn deployment(d: &Value) -> HealthStatus {
    if at(d, &["spec", "paused"]).and_then(Value::as_bool) == Some(true) {
        return hs(Code::Suspended, "Deployment is paused");
    }
    if int(d, &["metadata", "generation"]) > int(d, &["status", "observedGeneration"]) {
        return hs(
            Code::Progressing,
            "Waiting for rollout to finish: observed deployment generation less then desired generation",
        );
    }
    let updated = int(d, &["status", "updatedReplicas"]);
    let replicas = int(d, &["status", "replicas"]);
    let available = int(d, &["status", "availableReplicas"]);
    let progressing = condition(d, "Progressing");
    if progressing.is_some_and(|c| string(c, &["reason"]) == "ProgressDeadlineExceeded") {
        let name = string(d, &["metadata", "name"]);
        return hs(
            Code::Degraded,
            format!("Deployment \"{name}\" exceeded its progress deadline"),
        );
    }
    if let Some(desired) = opt_int(d, &["spec", "replicas"]) {
        if updated < desired {
            return hs(
                Code::Progressing,
                format!("Waiting for rollout to finish: {updated} out of {desired} new replicas have been updated..."),
            );
        }
    }
    if replicas > updated {
        return hs(
            Code::Progressing,
            format!(
                "Waiting for rollout to finish: {} old replicas are pending termination...",
                replicas - updated
            ),
        );
    }
    if available < updated {
        return hs(
            Code::Progressing,
            format!("Waiting for rollout to finish: {available} of {updated} updated replicas are available..."),
        );
    }
    hs(Code::Healthy, "")
}

pub(super) fn statefulset(s: &Value) -> HealthStatus {
    let observed = int(s, &["status", "observedGeneration"]);
    if observed == 0 || int(s, &["metadata", "generation"]) > observed {
        return hs(
            Code::Progressing,
            "Waiting for statefulset spec update to be observed...",
        );
    }
    let ready = int(s, &["status", "readyReplicas"]);
    let updated = int(s, &["status", "updatedReplicas"]);
    let desired = opt_int(s, &["spec", "replicas"]);
    if let Some(desired) = desired {
        if ready < desired {
            return hs(
                Code::Progressing,
                format!("Waiting for {} pods to be ready...", desired - ready),
            );
        }
    }
    let strategy = string(s, &["spec", "updateStrategy", "type"]);
    let rolling = at(s, &["spec", "updateStrategy", "rollingUpdate"]);
    // An absent strategy type defaults to RollingUpdate in the API server.
    if (strategy == "RollingUpdate" || strategy.is_empty()) && rolling.is_some_and(|r| !r.is_null())
    {
        if let (Some(desired), Some(partition)) = (
            desired,
            opt_int(s, &["spec", "updateStrategy", "rollingUpdate", "partition"]),
        ) {
            if updated < desired - partition {
                return hs(
                    Code::Progressing,
                    format!(
                        "Waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated...",
                        desired - partition
                    ),
                );
            }
        }
        return hs(
            Code::Healthy,
            format!("partitioned roll out complete: {updated} new pods have been updated..."),
        );
    }
    if strategy == "OnDelete" {
        return hs(Code::Healthy, format!("statefulset has {ready} ready pods"));
    }
    let update_rev = string(s, &["status", "updateRevision"]);
    let current_rev = string(s, &["status", "currentRevision"]);
    if update_rev != current_rev {
        return hs(
            Code::Progressing,
            format!("waiting for statefulset rolling update to complete {updated} pods at revision {update_rev}..."),
        );
    }
    let current = int(s, &["status", "currentReplicas"]);
    hs(
        Code::Healthy,
        format!("statefulset rolling update complete {current} pods at revision {current_rev}..."),
    )
}

pub(super) fn daemonset(d: &Value) -> HealthStatus {
    if int(d, &["metadata", "generation"]) > int(d, &["status", "observedGeneration"]) {
        return hs(
            Code::Progressing,
            "Waiting for rollout to finish: observed daemon set generation less then desired generation",
        );
    }
    let updated = int(d, &["status", "updatedNumberScheduled"]);
    let desired = int(d, &["status", "desiredNumberScheduled"]);
    let available = int(d, &["status", "numberAvailable"]);
    let name = string(d, &["metadata", "name"]);
    if string(d, &["spec", "updateStrategy", "type"]) == "OnDelete" {
        return hs(
            Code::Healthy,
            format!("daemon set {updated} out of {desired} new pods have been updated"),
        );
    }
    if updated < desired {
        return hs(
            Code::Progressing,
            format!("Waiting for daemon set \"{name}\" rollout to finish: {updated} out of {desired} new pods have been updated..."),
        );
    }
    if available < desired {
        return hs(
            Code::Progressing,
            format!("Waiting for daemon set \"{name}\" rollout to finish: {available} of {desired} updated pods are available..."),
        );
    }
    hs(Code::Healthy, "")
}

pub(super) fn replicaset(r: &Value) -> HealthStatus {
    if int(r, &["metadata", "generation"]) > int(r, &["status", "observedGeneration"]) {
        return hs(
            Code::Progressing,
            "Waiting for rollout to finish: observed replica set generation less then desired generation",
        );
    }
    if let Some(c) = condition(r, "ReplicaFailure") {
        if string(c, &["status"]) == "True" {
            return hs(Code::Degraded, string(c, &["message"]));
        }
    }
    let available = int(r, &["status", "availableReplicas"]);
    if let Some(desired) = opt_int(r, &["spec", "replicas"]) {
        if available < desired {
            return hs(
                Code::Progressing,
                format!("Waiting for rollout to finish: {available} out of {desired} new replicas are available..."),
            );
        }
    }
    hs(Code::Healthy, "")
}

fn lb_ingress_present(v: &Value) -> bool {
    at(v, &["status", "loadBalancer", "ingress"])
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

pub(super) fn service(s: &Value) -> HealthStatus {
    if string(s, &["spec", "type"]) == "LoadBalancer" && !lb_ingress_present(s) {
        return hs(Code::Progressing, "");
    }
    hs(Code::Healthy, "")
}

pub(super) fn ingress(i: &Value) -> HealthStatus {
    if lb_ingress_present(i) {
        hs(Code::Healthy, "")
    } else {
        hs(Code::Progressing, "")
    }
}

pub(super) fn pvc(p: &Value) -> HealthStatus {
    let code = match string(p, &["status", "phase"]) {
        "Lost" => Code::Degraded,
        "Pending" => Code::Progressing,
        "Bound" => Code::Healthy,
        _ => Code::Unknown,
    };
    hs(code, "")
}

pub(super) fn apiservice(a: &Value) -> HealthStatus {
    if let Some(c) = condition(a, "Available") {
        let msg = format!("{}: {}", string(c, &["reason"]), string(c, &["message"]));
        let code = if string(c, &["status"]) == "True" {
            Code::Healthy
        } else {
            Code::Progressing
        };
        return hs(code, msg);
    }
    hs(Code::Progressing, "Waiting to be processed")
}

pub(super) fn job(j: &Value) -> HealthStatus {
    let mut failed = false;
    let mut complete = false;
    let mut suspended = false;
    let mut fail_msg = "";
    let mut message = "";
    for c in conditions(j) {
        match string(c, &["type"]) {
            "Failed" => {
                failed = true;
                complete = true;
                fail_msg = string(c, &["message"]);
            }
            "Complete" => {
                complete = true;
                message = string(c, &["message"]);
            }
            "Suspended" => {
                complete = true;
                message = string(c, &["message"]);
                if string(c, &["status"]) == "True" {
                    suspended = true;
                }
            }
            _ => {}
        }
    }
    if !complete {
        hs(Code::Progressing, message)
    } else if failed {
        hs(Code::Degraded, fail_msg)
    } else if suspended {
        hs(Code::Suspended, message)
    } else {
        hs(Code::Healthy, message)
    }
}

/// Argo CD's annotation that makes a Never/OnFailure pod judged like a long-running one.
pub const ANNOTATION_IGNORE_RESTART_POLICY: &str = "argocd.argoproj.io/ignore-restart-policy";

pub(super) fn pod(p: &Value) -> HealthStatus {
    let restart_policy = match string(p, &["spec", "restartPolicy"]) {
        "" => "Always",
        other => other,
    };
    let status_msg = string(p, &["status", "message"]);
    let statuses = |key: &str| -> Vec<&Value> {
        at(p, &["status", key])
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .unwrap_or_default()
    };
    let containers = statuses("containerStatuses");

    // Waiting containers in Err*/…Error/…BackOff (CrashLoopBackOff, ImagePullBackOff,
    // ErrImagePull, CreateContainerConfigError) are Degraded, but only for Always pods: a
    // hook pod must not fail the sync while its image is still being pulled.
    if restart_policy == "Always" {
        let messages: Vec<&str> = containers
            .iter()
            .filter_map(|c| at(c, &["state", "waiting"]))
            .filter(|w| {
                let reason = string(w, &["reason"]);
                reason.starts_with("Err")
                    || reason.ends_with("Error")
                    || reason.ends_with("BackOff")
            })
            .map(|w| string(w, &["message"]))
            .collect();
        if !messages.is_empty() {
            return hs(Code::Degraded, messages.join(", "));
        }
    }

    match string(p, &["status", "phase"]) {
        "Pending" => hs(Code::Progressing, status_msg),
        "Succeeded" => hs(Code::Healthy, status_msg),
        "Failed" => {
            if !status_msg.is_empty() {
                return hs(Code::Degraded, status_msg);
            }
            let mut all = statuses("initContainerStatuses");
            all.extend(containers.iter().copied());
            for c in all {
                if let Some(t) = at(c, &["state", "terminated"]) {
                    let msg = string(t, &["message"]);
                    if !msg.is_empty() {
                        return hs(Code::Degraded, msg);
                    }
                    if string(t, &["reason"]) == "OOMKilled" {
                        return hs(Code::Degraded, "OOMKilled");
                    }
                    let code = int(t, &["exitCode"]);
                    if code != 0 {
                        let name = string(c, &["name"]);
                        return hs(
                            Code::Degraded,
                            format!("container \"{name}\" failed with exit code {code}"),
                        );
                    }
                }
            }
            hs(Code::Degraded, "")
        }
        "Running" => {
            let ignore_policy = at(p, &["metadata", "annotations"])
                .and_then(|a| a.get(ANNOTATION_IGNORE_RESTART_POLICY))
                .is_some();
            if ignore_policy || restart_policy == "Always" {
                let ready = condition(p, "Ready").is_some_and(|c| string(c, &["status"]) == "True");
                if ready {
                    return hs(Code::Healthy, status_msg);
                }
                if containers
                    .iter()
                    .any(|c| at(c, &["lastState", "terminated"]).is_some_and(|t| !t.is_null()))
                {
                    return hs(Code::Degraded, status_msg);
                }
                return hs(Code::Progressing, status_msg);
            }
            // Never/OnFailure pods are finite (typically hooks): Progressing until done.
            hs(Code::Progressing, status_msg)
        }
        _ => hs(Code::Unknown, status_msg),
    }
}

pub(super) fn hpa(h: &Value) -> HealthStatus {
    const WAITING: &str = "Waiting to Autoscale";
    let version = string(h, &["apiVersion"]);
    let parsed: Vec<Value>;
    let conds: &[Value] = if version == "autoscaling/v1" {
        // v1 keeps conditions in an annotation, as a JSON string.
        let Some(raw) = at(
            h,
            &[
                "metadata",
                "annotations",
                "autoscaling.alpha.kubernetes.io/conditions",
            ],
        )
        .and_then(Value::as_str) else {
            return hs(Code::Progressing, WAITING);
        };
        match serde_json::from_str::<Vec<Value>>(raw) {
            Ok(v) => parsed = v,
            Err(e) => {
                return hs(
                    Code::Unknown,
                    format!("failed to convert conditions annotation to typed: {e}"),
                )
            }
        }
        if parsed.is_empty() {
            return hs(Code::Progressing, WAITING);
        }
        &parsed
    } else {
        conditions(h)
    };
    let field = |c: &Value, k: &str| {
        c.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut healthy_messages = Vec::new();
    for c in conds {
        let (ty, reason, status) = (field(c, "type"), field(c, "reason"), field(c, "status"));
        let degraded = matches!(
            (ty.as_str(), reason.as_str()),
            ("AbleToScale", "FailedGetScale")
                | ("AbleToScale", "FailedUpdateScale")
                | ("ScalingActive", "FailedGetResourceMetric")
                | ("ScalingActive", "InvalidSelector")
        );
        if degraded {
            return hs(Code::Degraded, field(c, "message"));
        }
        if (ty == "AbleToScale" || ty == "ScalingLimited") && status == "True" {
            healthy_messages.push(field(c, "message"));
        }
    }
    if healthy_messages.len() == conds.len() {
        return hs(Code::Healthy, healthy_messages.join(","));
    }
    hs(Code::Progressing, WAITING)
}
