//! The blue-green strategy: a preview stack beside the active one, analysis before and
//! after the switch, and the active Service switched only when everything passed.

use super::{abort_message, run_status, Ctx, RunKind, DEFAULT_SCALE_DOWN_DELAY};
use mooring_core::rollout::{BlueGreenStrategy, RolloutAnalysis};
use mooring_core::time::SignedDuration;
use serde_json::{json, Map, Value};

pub(super) fn reconcile(cx: &mut Ctx) {
    let bg = cx.spec.strategy.blue_green.clone().unwrap_or_default();
    cx.status.remove("currentStepIndex");
    let stable = cx.status_str("stableRS").filter(|s| cx.rs(s).is_some());
    let Some(stable) = stable else {
        // First deploy: no analysis, no pause; the active Service selects the pods once
        // they are available.
        let name = cx.rs(&cx.hash).map(|r| r.name.clone());
        if let Some(n) = name {
            cx.set_scale(&n, cx.replicas);
        }
        if new_available(cx) >= cx.replicas {
            cx.status.insert("stableRS".into(), json!(cx.hash));
            return promoted(cx, &bg);
        }
        services(cx, &bg, None, &cx.hash.clone());
        return;
    };
    if stable == cx.hash {
        return promoted(cx, &bg);
    }
    if cx.status_bool("abort") {
        return aborted(cx, &bg, &stable);
    }
    let target = bg
        .preview_replica_count
        .unwrap_or(cx.replicas)
        .min(cx.replicas);
    let active = bg_status_str(cx, "activeSelector").unwrap_or_else(|| stable.clone());
    let switched = active == cx.hash;
    let name = cx.rs(&cx.hash).map(|r| r.name.clone());
    let full = cx.status_bool("promoteFull");
    if !switched {
        if let Some(n) = &name {
            cx.set_scale(n, if full { cx.replicas } else { target });
        }
        let stable_name = cx.rs(&stable).map(|r| r.name.clone());
        if let Some(n) = stable_name {
            cx.set_scale(&n, cx.replicas);
        }
        services(cx, &bg, Some(&stable), &cx.hash.clone());
        if cx.spec.paused || new_available(cx) < if full { cx.replicas } else { target } {
            return;
        }
        if !full {
            if let Some(a) = &bg.pre_promotion_analysis {
                match analysis(cx, a, RunKind::PrePromotion, "pre") {
                    Gate::Passed => {}
                    Gate::Wait => return,
                    Gate::Failed(msg) => {
                        cx.abort(&msg);
                        return aborted(cx, &bg, &stable);
                    }
                }
            }
            if bg.auto_promotion_enabled == Some(false) || bg.auto_promotion_seconds.is_some() {
                if cx.pause_lifted() {
                    cx.clear_pause();
                    cx.status.insert("blueGreenPromoted".into(), json!(cx.hash));
                } else if cx.status_str("blueGreenPromoted").as_deref() != Some(cx.hash.as_str()) {
                    let start = cx.pause("BlueGreenPause");
                    match bg
                        .auto_promotion_seconds
                        .filter(|_| bg.auto_promotion_enabled != Some(false))
                    {
                        Some(secs) => {
                            let at = start + SignedDuration::from_secs(secs);
                            if cx.now < at {
                                cx.plan.requeue(at.duration_since(cx.now));
                                return;
                            }
                            cx.clear_pause();
                        }
                        None => return,
                    }
                }
            }
        }
        // Promote: full size first, then switch the active Service.
        if let Some(n) = &name {
            cx.set_scale(n, cx.replicas);
        }
        if new_available(cx) < cx.replicas {
            return;
        }
        let hash = json!(cx.hash);
        bg_status(cx).insert("activeSelector".into(), hash);
    }
    services(cx, &bg, Some(&cx.hash.clone()), &cx.hash.clone());
    if let (Some(a), false) = (&bg.post_promotion_analysis, full) {
        match analysis(cx, a, RunKind::PostPromotion, "post") {
            Gate::Passed => {}
            Gate::Wait => return,
            Gate::Failed(msg) => {
                cx.abort(&msg);
                return aborted(cx, &bg, &stable);
            }
        }
    }
    cx.status.insert("stableRS".into(), json!(cx.hash));
    promoted(cx, &bg);
}

enum Gate {
    Passed,
    Wait,
    Failed(String),
}

fn analysis(cx: &mut Ctx, a: &RolloutAnalysis, kind: RunKind, suffix: &str) -> Gate {
    let name = format!("{}-{}-{}-{suffix}", cx.name, cx.hash, cx.revision);
    let key = if kind == RunKind::PrePromotion {
        "prePromotionAnalysisRunStatus"
    } else {
        "postPromotionAnalysisRunStatus"
    };
    let shown = cx.analysis(name, kind, a, None);
    bg_status(cx).insert(key.into(), run_status(&shown));
    match shown.phase.as_str() {
        "Successful" => Gate::Passed,
        "Failed" | "Error" | "Inconclusive" => Gate::Failed(abort_message(&shown)),
        _ => Gate::Wait,
    }
}

fn new_available(cx: &Ctx) -> i64 {
    cx.rs(&cx.hash).map_or(0, |r| r.available)
}

fn bg_status<'a>(cx: &'a mut Ctx) -> &'a mut Map<String, Value> {
    let c = cx.status.entry("blueGreen").or_insert_with(|| json!({}));
    if !c.is_object() {
        *c = json!({});
    }
    c.as_object_mut().expect("just made an object")
}

fn bg_status_str(cx: &Ctx, key: &str) -> Option<String> {
    cx.status
        .get("blueGreen")
        .and_then(|b| b.get(key))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Point the active Service at `active` (when known) and the preview Service at `preview`.
fn services(cx: &mut Ctx, bg: &BlueGreenStrategy, active: Option<&String>, preview: &str) {
    if let Some(a) = active {
        cx.plan
            .service_selectors
            .push((bg.active_service.clone(), a.clone()));
        bg_status(cx).insert("activeSelector".into(), json!(a));
    }
    if let Some(p) = &bg.preview_service {
        cx.plan
            .service_selectors
            .push((p.clone(), preview.to_string()));
        bg_status(cx).insert("previewSelector".into(), json!(preview));
    }
}

fn promoted(cx: &mut Ctx, bg: &BlueGreenStrategy) {
    for k in [
        "abort",
        "abortedAt",
        "promoteFull",
        "abortMessage",
        "blueGreenPromoted",
    ] {
        cx.status.remove(k);
    }
    cx.clear_pause();
    let name = cx.rs(&cx.hash).map(|r| r.name.clone());
    if let Some(n) = name {
        cx.set_scale(&n, cx.replicas);
    }
    let hash = cx.hash.clone();
    services(cx, bg, Some(&hash), &hash);
    cx.terminate_runs_except(&[]);
    let delay = bg
        .scale_down_delay_seconds
        .unwrap_or(DEFAULT_SCALE_DOWN_DELAY);
    cx.scale_down_old(&[hash.as_str()], Some(delay));
}

fn aborted(cx: &mut Ctx, bg: &BlueGreenStrategy, stable: &str) {
    cx.clear_pause();
    cx.terminate_runs_except(&[]);
    let name = cx.rs(stable).map(|r| r.name.clone());
    if let Some(n) = name {
        cx.set_scale(&n, cx.replicas);
    }
    let stable = stable.to_string();
    // The active Service stays on (or returns to) the stable pods; so does the preview.
    services(cx, bg, Some(&stable), &stable);
    let delay = bg
        .abort_scale_down_delay_seconds
        .unwrap_or(DEFAULT_SCALE_DOWN_DELAY);
    cx.scale_down_old(&[stable.as_str()], Some(delay));
}
