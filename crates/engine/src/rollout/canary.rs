//! The canary strategy: steps, replica counts, traffic weights, analysis, abort.

use super::{
    abort_message, duration_of, run_status, steps_hash, Ctx, RunKind, TrafficPlan,
    DEFAULT_SCALE_DOWN_DELAY,
};
use mooring_core::rollout::{CanaryStrategy, IntOrString};
use serde_json::{json, Map, Value};

pub(super) fn reconcile(cx: &mut Ctx) {
    let canary = cx.spec.strategy.canary.clone().unwrap_or_default();
    let steps_json = serde_json::to_value(&canary.steps).unwrap_or(Value::Null);
    cx.status
        .insert("currentStepHash".into(), json!(steps_hash(&steps_json)));
    let stable = match cx.status_str("stableRS") {
        Some(s) if cx.rs(&s).is_some() => s,
        // First deploy (or the stable ReplicaSet is gone): the current template is stable
        // at once, skipping the steps, as in Argo Rollouts.
        _ => {
            cx.status.insert("stableRS".into(), json!(cx.hash));
            cx.hash.clone()
        }
    };
    if stable == cx.hash {
        return promoted(cx, &canary);
    }
    if cx.status_bool("abort") {
        return aborted(cx, &canary, &stable);
    }
    let n = canary.steps.len();
    let mut idx = cx
        .status
        .get("currentStepIndex")
        .and_then(Value::as_i64)
        .and_then(|i| usize::try_from(i).ok())
        .unwrap_or(0)
        .min(n);
    if cx.status_bool("promoteFull") {
        idx = n;
    }
    if !cx.spec.paused {
        while idx < n {
            let step = canary.steps[idx].clone();
            if step.set_weight.is_some() {
                if achieved(cx, &canary, &stable, idx) {
                    idx += 1;
                    continue;
                }
                break;
            }
            if let Some(p) = &step.pause {
                if cx.pause_lifted() {
                    cx.clear_pause();
                    idx += 1;
                    continue;
                }
                let start = cx.pause("CanaryPauseStep");
                if let Some(d) = p.duration.as_ref().and_then(duration_of) {
                    if cx.now >= start + d {
                        cx.clear_pause();
                        idx += 1;
                        continue;
                    }
                    cx.plan.requeue((start + d).duration_since(cx.now));
                }
                break;
            }
            if let Some(a) = &step.analysis {
                let name = format!("{}-{}-{}-{}", cx.name, cx.hash, cx.revision, idx);
                let shown = cx.analysis(name, RunKind::Step, a, Some(idx));
                canary_status(cx).insert("currentStepAnalysisRunStatus".into(), run_status(&shown));
                match shown.phase.as_str() {
                    "Successful" => {
                        idx += 1;
                        continue;
                    }
                    "Failed" | "Error" => {
                        cx.abort(&abort_message(&shown));
                        cx.status.insert("currentStepIndex".into(), json!(idx));
                        return aborted(cx, &canary, &stable);
                    }
                    "Inconclusive" => {
                        if cx.pause_lifted() {
                            cx.clear_pause();
                            idx += 1;
                            continue;
                        }
                        cx.pause("InconclusiveAnalysisRun");
                    }
                    _ => {}
                }
                break;
            }
            // setCanaryScale takes effect through `targets`. Step kinds Mooring does not
            // implement (experiment, setHeaderRoute, setMirrorRoute, plugin) never get
            // here: `plan` refuses such a Rollout as InvalidSpec before anything moves.
            idx += 1;
        }
    }
    cx.status.insert("currentStepIndex".into(), json!(idx));
    if let Some(bg) = &canary.analysis {
        let start = bg
            .starting_step
            .and_then(|s| usize::try_from(s).ok())
            .unwrap_or(0);
        if idx >= start {
            let name = format!("{}-{}-{}", cx.name, cx.hash, cx.revision);
            let shown = cx.analysis(name, RunKind::Background, &bg.analysis, None);
            canary_status(cx).insert(
                "currentBackgroundAnalysisRunStatus".into(),
                run_status(&shown),
            );
            if matches!(shown.phase.as_str(), "Failed" | "Error") {
                cx.abort(&abort_message(&shown));
                return aborted(cx, &canary, &stable);
            }
        }
    }
    let (c, s) = targets(cx, &canary, &stable, idx);
    let canary_name = cx.rs(&cx.hash).map(|r| r.name.clone());
    let stable_name = cx.rs(&stable).map(|r| r.name.clone());
    if let Some(n) = &canary_name {
        cx.set_scale(n, c);
    }
    if let Some(n) = &stable_name {
        cx.set_scale(n, s);
    }
    // Any third ReplicaSet (an update replaced mid-way) goes away.
    let keep = [cx.hash.clone(), stable.clone()];
    let keep: Vec<&str> = keep.iter().map(String::as_str).collect();
    cx.scale_down_old(&keep, None);
    let weight = step_weight(&canary, idx);
    if idx >= n && !cx.spec.paused && weight_reached(cx, &canary, &stable, c) {
        // Every step done and the canary carries all traffic: it becomes stable.
        cx.status.insert("stableRS".into(), json!(cx.hash));
        cx.terminate_runs_except(&[]);
        return promoted(cx, &canary);
    }
    let routed_weight = if canary.traffic_routing.is_some() {
        let available = cx.rs(&cx.hash).map_or(0, |r| r.available);
        if available >= c {
            weight
        } else {
            current_weight(cx)
        }
    } else {
        weight
    };
    services(cx, &canary, &stable);
    set_weights(cx, &canary, &stable, routed_weight);
}

/// The weight in force at step `idx`: the last `setWeight` up to it (100 after the steps).
fn step_weight(canary: &CanaryStrategy, idx: usize) -> i64 {
    if idx >= canary.steps.len() {
        return 100;
    }
    canary.steps[..=idx]
        .iter()
        .rev()
        .find_map(|s| s.set_weight)
        .unwrap_or(0)
}

/// `setCanaryScale` in force at step `idx` (none once the steps are done).
fn scale_override(canary: &CanaryStrategy, replicas: i64, idx: usize) -> Option<i64> {
    if idx >= canary.steps.len() {
        return None;
    }
    let s = canary.steps[..=idx]
        .iter()
        .rev()
        .find_map(|s| s.set_canary_scale.as_ref())?;
    if s.match_traffic_weight {
        return None;
    }
    if let Some(r) = s.replicas {
        return Some(r);
    }
    s.weight.map(|w| ceil_percent(replicas, w))
}

/// Stable replicas beside `canary` canary pods without a traffic router: the rest, but at
/// least one while the weight is below 100 (so a small rollout keeps a stable baseline to
/// compare the canary with, one pod over `replicas` if need be, as Argo Rollouts does).
fn basic_stable(replicas: i64, weight: i64, canary: i64) -> i64 {
    let rest = (replicas - canary).max(0);
    if weight < 100 && replicas > 0 {
        rest.max(1)
    } else {
        rest
    }
}

fn ceil_percent(total: i64, percent: i64) -> i64 {
    (total * percent + 99) / 100
}

fn surge_and_unavailable(canary: &CanaryStrategy, replicas: i64) -> (i64, i64) {
    let surge = canary
        .max_surge
        .as_ref()
        .and_then(|v| v.scaled(replicas, true))
        .unwrap_or_else(|| {
            IntOrString::String("25%".into())
                .scaled(replicas, true)
                .unwrap_or(1)
        });
    let unavailable = canary
        .max_unavailable
        .as_ref()
        .and_then(|v| v.scaled(replicas, false))
        .unwrap_or_else(|| {
            IntOrString::String("25%".into())
                .scaled(replicas, false)
                .unwrap_or(0)
        });
    if surge <= 0 && unavailable <= 0 {
        (1, 0)
    } else {
        (surge.max(0), unavailable.max(0))
    }
}

/// Desired (canary, stable) replicas at step `idx`.
///
/// With a traffic router the stable pods stay at full size (unless `dynamicStableScale`),
/// and the canary gets its share of the replicas. Without one the weight *is* the replica
/// ratio, and the move is bounded by `maxSurge` (extra pods) and `maxUnavailable` (pods
/// missing), like a Deployment's rolling update.
fn targets(cx: &Ctx, canary: &CanaryStrategy, stable: &str, idx: usize) -> (i64, i64) {
    let replicas = cx.replicas;
    let weight = step_weight(canary, idx);
    let desired_canary = match scale_override(canary, replicas, idx) {
        Some(o) => o.min(replicas),
        None if weight >= 100 => replicas,
        None => ceil_percent(replicas, weight),
    };
    if canary.traffic_routing.is_some() {
        let stable_target = if canary.dynamic_stable_scale {
            replicas - ceil_percent(replicas, current_weight(cx).max(0))
        } else {
            replicas
        };
        return (desired_canary, stable_target.max(0));
    }
    let desired_stable = basic_stable(replicas, weight, desired_canary);
    let (surge, unavailable) = surge_and_unavailable(canary, replicas);
    let cur_canary = cx.desired(&cx.hash);
    let cur_stable = cx.desired(stable);
    let canary_available = cx.rs(&cx.hash).map_or(0, |r| r.available);
    let canary_target = if desired_canary > cur_canary {
        desired_canary.min(cur_canary.max(replicas + surge - cur_stable))
    } else {
        desired_canary
    };
    let stable_target = if desired_stable < cur_stable {
        desired_stable.max(replicas - unavailable - canary_available)
    } else {
        desired_stable
    }
    .min(replicas);
    (canary_target.max(0), stable_target.max(0))
}

/// Whether the `setWeight` at `idx` is in place: replicas scaled and available (and, with
/// a traffic router, the weight set).
fn achieved(cx: &Ctx, canary: &CanaryStrategy, stable: &str, idx: usize) -> bool {
    let replicas = cx.replicas;
    let weight = step_weight(canary, idx);
    let want_canary = match scale_override(canary, replicas, idx) {
        Some(o) => o.min(replicas),
        None => ceil_percent(replicas, weight),
    };
    let Some(c) = cx.rs(&cx.hash) else {
        return false;
    };
    if c.replicas != want_canary || c.available < want_canary || c.current != want_canary {
        return false;
    }
    if canary.traffic_routing.is_some() {
        return current_weight(cx) == weight;
    }
    let want_stable = basic_stable(replicas, weight, want_canary);
    cx.rs(stable)
        .is_none_or(|s| s.replicas == want_stable && s.current <= want_stable)
}

/// Whether the canary (at `target` replicas) carries all traffic and everything else has
/// drained, so it can become stable.
fn weight_reached(cx: &Ctx, canary: &CanaryStrategy, stable: &str, target: i64) -> bool {
    let Some(c) = cx.rs(&cx.hash) else {
        return false;
    };
    if target < cx.replicas || c.replicas < cx.replicas || c.available < cx.replicas {
        return false;
    }
    if canary.traffic_routing.is_some() {
        return true;
    }
    cx.rs(stable)
        .is_none_or(|s| s.current == 0 && s.replicas == 0)
}

/// The canary weight last set (from the status).
fn current_weight(cx: &Ctx) -> i64 {
    cx.status
        .get("canary")
        .and_then(|c| c.pointer("/weights/canary/weight"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

fn canary_status<'a>(cx: &'a mut Ctx) -> &'a mut Map<String, Value> {
    let c = cx.status.entry("canary").or_insert_with(|| json!({}));
    if !c.is_object() {
        *c = json!({});
    }
    c.as_object_mut().expect("just made an object")
}

fn services(cx: &mut Ctx, canary: &CanaryStrategy, stable: &str) {
    if let Some(s) = &canary.canary_service {
        cx.plan.service_selectors.push((s.clone(), cx.hash.clone()));
    }
    if let Some(s) = &canary.stable_service {
        cx.plan
            .service_selectors
            .push((s.clone(), stable.to_string()));
    }
}

/// Record the weights: for a traffic router, the weight it is told; without one, the
/// share of available pods (the weight a Service spanning both versions gives).
fn set_weights(cx: &mut Ctx, canary: &CanaryStrategy, stable: &str, routed_weight: i64) {
    let weight = if canary.traffic_routing.is_some() {
        cx.plan.traffic = Some(TrafficPlan {
            canary_weight: routed_weight,
            canary_hash: cx.hash.clone(),
            stable_hash: stable.to_string(),
        });
        routed_weight
    } else {
        let c = cx.rs(&cx.hash).map_or(0, |r| r.available);
        let s = cx.rs(stable).map_or(0, |r| r.available);
        if stable == cx.hash || c + s == 0 {
            0
        } else {
            (c * 100 + (c + s) / 2) / (c + s)
        }
    };
    let weights = json!({
        "canary": {"weight": weight, "podTemplateHash": cx.hash, "serviceName": canary.canary_service},
        "stable": {"weight": 100 - weight, "podTemplateHash": stable, "serviceName": canary.stable_service},
    });
    canary_status(cx).insert("weights".into(), weights);
}

fn promoted(cx: &mut Ctx, canary: &CanaryStrategy) {
    let n = canary.steps.len();
    if n > 0 {
        cx.status.insert("currentStepIndex".into(), json!(n));
    } else {
        cx.status.remove("currentStepIndex");
    }
    for k in ["abort", "abortedAt", "promoteFull", "abortMessage"] {
        cx.status.remove(k);
    }
    cx.clear_pause();
    let name = cx.rs(&cx.hash).map(|r| r.name.clone());
    if let Some(n) = name {
        cx.set_scale(&n, cx.replicas);
    }
    let delay = canary.traffic_routing.as_ref().map(|_| {
        canary
            .scale_down_delay_seconds
            .unwrap_or(DEFAULT_SCALE_DOWN_DELAY)
    });
    let hash = cx.hash.clone();
    cx.scale_down_old(&[hash.as_str()], delay);
    cx.terminate_runs_except(&[]);
    services(cx, canary, &hash);
    set_weights(cx, canary, &hash, 0);
}

fn aborted(cx: &mut Ctx, canary: &CanaryStrategy, stable: &str) {
    cx.clear_pause();
    cx.terminate_runs_except(&[]);
    let name = cx.rs(stable).map(|r| r.name.clone());
    if let Some(n) = name {
        cx.set_scale(&n, cx.replicas);
    }
    // Traffic goes back to stable at once; without a router the canary pods *are* the
    // traffic share, so they go at once too. Behind a router they linger for
    // `abortScaleDownDelaySeconds` (default 30 s), as in Argo Rollouts.
    let delay = canary.traffic_routing.as_ref().map(|_| {
        canary
            .abort_scale_down_delay_seconds
            .unwrap_or(DEFAULT_SCALE_DOWN_DELAY)
    });
    cx.scale_down_old(&[stable], delay);
    services(cx, canary, stable);
    set_weights(cx, canary, stable, 0);
}
