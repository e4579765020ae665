//! The rollout state machine driven through whole updates against a tiny simulated cluster:
//! ReplicaSets become available as soon as they are scaled, AnalysisRuns take the phase
//! the test gives them.

use super::*;
use serde_json::json;
use std::collections::BTreeMap;

struct World {
    rollout: Value,
    rses: Vec<Value>,
    runs: Vec<Value>,
    now: Timestamp,
    services: BTreeMap<String, String>,
    weight: Option<i64>,
    /// ReplicaSets become available (false: pods never turn ready).
    pods_ready: bool,
}

fn template(image: &str) -> Value {
    json!({"metadata": {"labels": {"app": "m"}}, "spec": {"containers": [{"name": "c", "image": image}]}})
}

fn canary_rollout(steps: Value) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
        "metadata": {"name": "m", "namespace": "ns", "uid": "u1", "generation": 1},
        "spec": {
            "replicas": 10,
            "selector": {"matchLabels": {"app": "m"}},
            "template": template("img:1"),
            "strategy": {"canary": {"canaryService": "m-canary", "stableService": "m", "steps": steps}},
        },
    })
}

impl World {
    fn new(rollout: Value) -> World {
        World {
            rollout,
            rses: vec![],
            runs: vec![],
            now: time::parse("2026-01-01T00:00:00Z").expect("valid"),
            services: BTreeMap::new(),
            weight: None,
            pods_ready: true,
        }
    }

    fn step(&mut self) -> Plan {
        let p = plan(&Observed {
            rollout: &self.rollout,
            replica_sets: &self.rses,
            analysis_runs: &self.runs,
            now: self.now,
        });
        self.rses.extend(p.create.iter().cloned());
        for (name, patch) in &p.patch {
            let rs = self
                .rses
                .iter_mut()
                .find(|r| r["metadata"]["name"] == json!(name))
                .expect("patched ReplicaSet exists");
            mooring_core::merge_patch::apply(rs, patch);
        }
        self.rses
            .retain(|r| !p.delete.iter().any(|d| r["metadata"]["name"] == json!(d)));
        for (svc, hash) in &p.service_selectors {
            self.services.insert(svc.clone(), hash.clone());
        }
        if let Some(t) = &p.traffic {
            self.weight = Some(t.canary_weight);
        }
        for r in &p.start_runs {
            self.runs.push(json!({"metadata": {"name": r.name, "labels": r.labels}, "spec": {"args": r.args}, "status": {"phase": "Running"}}));
        }
        for t in &p.terminate_runs {
            for r in &mut self.runs {
                if r["metadata"]["name"] == json!(t) {
                    r["spec"]["terminate"] = json!(true);
                }
            }
        }
        self.rollout["status"] = p.status.clone();
        for rs in &mut self.rses {
            let n = rs["spec"]["replicas"].as_i64().unwrap_or(0);
            let ready = if self.pods_ready { n } else { 0 };
            rs["status"] =
                json!({"replicas": n, "readyReplicas": ready, "availableReplicas": ready});
        }
        p
    }

    /// Reconcile until nothing changes (or 50 times).
    fn settle(&mut self) {
        for _ in 0..50 {
            let before = (self.rollout.clone(), self.rses.clone(), self.runs.len());
            self.step();
            if before == (self.rollout.clone(), self.rses.clone(), self.runs.len()) {
                return;
            }
        }
    }

    fn status(&self, key: &str) -> Value {
        self.rollout["status"][key].clone()
    }

    fn phase(&self) -> String {
        self.status("phase")
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn replicas(&self, hash: &str) -> i64 {
        self.rses
            .iter()
            .find(|r| r["metadata"]["labels"][POD_TEMPLATE_HASH_LABEL] == json!(hash))
            .map_or(0, |r| r["spec"]["replicas"].as_i64().unwrap_or(0))
    }

    fn set_image(&mut self, image: &str) {
        self.rollout["spec"]["template"] = template(image);
        let g = self.rollout["metadata"]["generation"].as_i64().unwrap_or(0);
        self.rollout["metadata"]["generation"] = json!(g + 1);
    }

    fn set_run_phase(&mut self, name_suffix: &str, phase: &str, message: &str) {
        let run = self
            .runs
            .iter_mut()
            .find(|r| {
                r["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.ends_with(name_suffix))
            })
            .expect("run exists");
        run["status"] = json!({"phase": phase, "message": message});
    }

    fn advance(&mut self, secs: i64) {
        self.now += SignedDuration::from_secs(secs);
    }

    fn hashes(&self) -> (String, String) {
        (
            self.status("stableRS")
                .as_str()
                .unwrap_or_default()
                .to_string(),
            self.status("currentPodHash")
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    }
}

fn three_step_canary() -> Value {
    let analysis = json!({"analysis": {"templates": [{"templateName": "model-performance-analysis"}],
        "args": [{"name": "canary-hash", "valueFrom": {"podTemplateHashValue": "Latest"}},
                 {"name": "stable-hash", "valueFrom": {"podTemplateHashValue": "Stable"}},
                 {"name": "namespace", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}}]}});
    json!([
        {"setWeight": 10}, {"pause": {"duration": "30s"}}, analysis,
        {"setWeight": 25}, {"pause": {"duration": 30}}, analysis,
        {"setWeight": 50}, {"pause": {"duration": "30s"}}, analysis,
    ])
}

#[test]
fn first_deploy_skips_steps_and_is_healthy() {
    let mut w = World::new(canary_rollout(three_step_canary()));
    w.settle();
    let (stable, current) = w.hashes();
    assert_eq!(stable, current);
    assert_eq!(w.replicas(&stable), 10);
    assert_eq!(w.status("currentStepIndex"), json!(9));
    assert_eq!(w.phase(), "Healthy");
    assert!(w.runs.is_empty());
    assert_eq!(w.services["m"], stable);
    assert_eq!(w.services["m-canary"], stable);
    let rs = &w.rses[0];
    assert_eq!(rs["metadata"]["name"], json!(format!("m-{stable}")));
    assert_eq!(
        rs["metadata"]["annotations"][REVISION_ANNOTATION],
        json!("1")
    );
    assert_eq!(
        rs["spec"]["selector"]["matchLabels"][POD_TEMPLATE_HASH_LABEL],
        json!(stable)
    );
    assert_eq!(
        rs["metadata"]["ownerReferences"][0]["kind"],
        json!("Rollout")
    );
}

#[test]
fn good_version_goes_10_25_50_100_through_pauses_and_analyses() {
    let mut w = World::new(canary_rollout(three_step_canary()));
    w.settle();
    let (old, _) = w.hashes();
    w.set_image("img:2");
    let mut seen = vec![];
    for (i, weight) in [(2usize, 10i64), (5, 25), (8, 50)] {
        w.settle();
        let (_, new) = w.hashes();
        assert_eq!(w.phase(), "Paused", "pause after setWeight {weight}");
        assert_eq!(w.replicas(&new), (weight * 10 + 99) / 100);
        assert_eq!(w.replicas(&old), 10 - (weight * 10 + 99) / 100);
        assert_eq!(
            w.status("canary")["weights"]["canary"]["weight"],
            json!((weight * 10 + 99) / 100 * 10)
        );
        seen.push(weight);
        w.advance(31);
        w.settle();
        // The analysis step started its run with the hashes and the namespace resolved.
        let run = w.runs.last().expect("analysis run").clone();
        let name = run["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(name.ends_with(&format!("-{i}")), "{name}");
        assert_eq!(run["metadata"]["labels"]["rollout-type"], json!("Step"));
        assert_eq!(
            run["spec"]["args"][0],
            json!({"name": "canary-hash", "value": new})
        );
        assert_eq!(
            run["spec"]["args"][1],
            json!({"name": "stable-hash", "value": old})
        );
        assert_eq!(
            run["spec"]["args"][2],
            json!({"name": "namespace", "value": "ns"})
        );
        assert_eq!(w.phase(), "Progressing");
        w.set_run_phase(&format!("-{i}"), "Successful", "");
    }
    w.settle();
    let (stable, current) = w.hashes();
    assert_eq!(stable, current, "the new version became stable");
    assert_eq!(w.replicas(&stable), 10);
    assert_eq!(w.replicas(&old), 0);
    assert_eq!(w.phase(), "Healthy");
    assert_eq!(w.services["m"], stable);
    assert_eq!(seen, vec![10, 25, 50]);
}

#[test]
fn failed_analysis_aborts_and_returns_everything_to_stable() {
    let mut w = World::new(canary_rollout(three_step_canary()));
    w.settle();
    let (old, _) = w.hashes();
    w.set_image("img:bad");
    w.settle();
    w.advance(31);
    w.settle();
    w.set_run_phase(
        "-2",
        "Failed",
        "Metric \"success-rate\" assessed Failed due to failed (1) > failureLimit (0)",
    );
    w.settle();
    let (stable, new) = w.hashes();
    assert_eq!(stable, old);
    assert_ne!(new, old);
    assert_eq!(w.status("abort"), json!(true));
    assert_eq!(w.phase(), "Degraded");
    let msg = w.status("message");
    let msg = msg.as_str().unwrap_or_default();
    assert!(
        msg.starts_with("RolloutAborted: Rollout aborted update to revision 2"),
        "{msg}"
    );
    assert!(msg.contains("success-rate"), "{msg}");
    assert_eq!(w.replicas(&new), 0);
    assert_eq!(w.replicas(&old), 10);
    assert_eq!(w.status("canary")["weights"]["canary"]["weight"], json!(0));
    assert_eq!(w.services["m"], old);
    // Retry (abort: false) starts the steps again.
    w.rollout["status"]["abort"] = json!(false);
    w.settle();
    assert_eq!(w.phase(), "Paused");
    assert_eq!(w.replicas(&new), 1);
    // A fix in Git (new template) starts a new update with a clean slate.
    w.set_image("img:3");
    w.settle();
    assert_eq!(w.status("abort"), Value::Null);
    assert_eq!(w.status("currentStepIndex"), json!(1));
}

#[test]
fn pause_without_duration_waits_for_promote_and_promote_full_skips_steps() {
    let mut w = World::new(canary_rollout(
        json!([{"setWeight": 20}, {"pause": {}}, {"setWeight": 40}, {"pause": {}}]),
    ));
    w.settle();
    w.set_image("img:2");
    w.settle();
    w.advance(3600);
    w.settle();
    assert_eq!(w.phase(), "Paused");
    assert_eq!(w.status("currentStepIndex"), json!(1));
    assert_eq!(
        w.status("pauseConditions")[0]["reason"],
        json!("CanaryPauseStep")
    );
    assert_eq!(w.status("message"), json!("CanaryPauseStep"));
    // promote: clear the pause conditions (what `mooring rollout promote` does).
    w.rollout["status"]["pauseConditions"] = Value::Null;
    w.settle();
    assert_eq!(w.status("currentStepIndex"), json!(3));
    let (old, new) = w.hashes();
    assert_eq!(w.replicas(&new), 4);
    w.rollout["status"]["promoteFull"] = json!(true);
    w.settle();
    let (stable, _) = w.hashes();
    assert_eq!(stable, new);
    assert_eq!(w.replicas(&old), 0);
    assert_eq!(w.phase(), "Healthy");
}

#[test]
fn a_single_replica_keeps_one_stable_pod_beside_the_canary() {
    let mut r = canary_rollout(json!([{"setWeight": 10}, {"pause": {}}]));
    r["spec"]["replicas"] = json!(1);
    let mut w = World::new(r);
    w.settle();
    let (old, _) = w.hashes();
    w.set_image("img:2");
    w.settle();
    let (_, new) = w.hashes();
    assert_eq!((w.replicas(&new), w.replicas(&old)), (1, 1));
    assert_eq!(w.phase(), "Paused");
    w.rollout["status"]["pauseConditions"] = Value::Null;
    w.settle();
    assert_eq!((w.replicas(&new), w.replicas(&old)), (1, 0));
    assert_eq!(w.phase(), "Healthy");
}

#[test]
fn spec_paused_freezes_the_update() {
    let mut w = World::new(canary_rollout(
        json!([{"setWeight": 20}, {"setWeight": 60}]),
    ));
    w.settle();
    w.rollout["spec"]["paused"] = json!(true);
    w.set_image("img:2");
    w.settle();
    assert_eq!(w.phase(), "Paused");
    assert_eq!(w.status("message"), json!("manually paused"));
    assert_eq!(w.status("currentStepIndex"), json!(0));
    w.rollout["spec"]["paused"] = json!(false);
    w.settle();
    assert_eq!(w.phase(), "Healthy");
}

#[test]
fn basic_canary_respects_max_surge_and_max_unavailable() {
    let mut r = canary_rollout(json!([{"setWeight": 50}, {"pause": {}}]));
    r["spec"]["replicas"] = json!(4);
    r["spec"]["strategy"]["canary"]["maxSurge"] = json!(1);
    r["spec"]["strategy"]["canary"]["maxUnavailable"] = json!(0);
    let mut w = World::new(r);
    w.settle();
    let (old, _) = w.hashes();
    w.set_image("img:2");
    let mut max_total = 0;
    let mut min_available = i64::MAX;
    for _ in 0..20 {
        w.step();
        let total: i64 = w
            .rses
            .iter()
            .map(|r| r["spec"]["replicas"].as_i64().unwrap_or(0))
            .sum();
        max_total = max_total.max(total);
        let avail: i64 = w
            .rses
            .iter()
            .map(|r| r["status"]["availableReplicas"].as_i64().unwrap_or(0))
            .sum();
        min_available = min_available.min(avail);
    }
    let (_, new) = w.hashes();
    assert_eq!((w.replicas(&new), w.replicas(&old)), (2, 2));
    assert!(max_total <= 5, "surge bounded: {max_total}");
    assert!(min_available >= 4, "no unavailability: {min_available}");
}

#[test]
fn istio_weights_follow_steps_and_return_to_zero_on_abort() {
    let mut r =
        canary_rollout(json!([{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}, {"pause": {}}]));
    r["spec"]["strategy"]["canary"]["trafficRouting"] =
        json!({"istio": {"virtualService": {"name": "vs", "routes": ["primary"]}}});
    let mut w = World::new(r);
    w.settle();
    assert_eq!(w.weight, Some(0));
    let (old, _) = w.hashes();
    w.set_image("img:2");
    w.settle();
    let (_, new) = w.hashes();
    assert_eq!(w.weight, Some(10));
    assert_eq!(w.replicas(&new), 1);
    assert_eq!(
        w.replicas(&old),
        10,
        "stable keeps full size behind a router"
    );
    w.rollout["status"]["pauseConditions"] = Value::Null;
    w.settle();
    assert_eq!(w.weight, Some(50));
    w.rollout["status"]["abort"] = json!(true);
    w.settle();
    assert_eq!(w.weight, Some(0));
    assert_eq!(w.phase(), "Degraded");
    // The canary pods linger for abortScaleDownDelaySeconds, then go.
    assert_eq!(w.replicas(&new), 5);
    w.advance(31);
    w.settle();
    assert_eq!(w.replicas(&new), 0);
}

#[test]
fn background_analysis_failure_aborts() {
    let mut r = canary_rollout(json!([{"setWeight": 10}, {"pause": {}}, {"setWeight": 50}]));
    r["spec"]["strategy"]["canary"]["analysis"] =
        json!({"templates": [{"templateName": "t"}], "startingStep": 1});
    let mut w = World::new(r);
    w.settle();
    w.set_image("img:2");
    w.settle();
    assert_eq!(w.runs.len(), 1);
    assert_eq!(
        w.runs[0]["metadata"]["labels"]["rollout-type"],
        json!("Background")
    );
    let name = w.runs[0]["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    w.set_run_phase(&name, "Failed", "Metric \"error-rate\" assessed Failed");
    w.settle();
    assert_eq!(w.phase(), "Degraded");
    assert!(w
        .status("message")
        .as_str()
        .unwrap_or_default()
        .contains("error-rate"));
}

#[test]
fn progress_deadline_degrades_and_can_abort() {
    let mut r = canary_rollout(json!([{"setWeight": 50}]));
    r["spec"]["progressDeadlineSeconds"] = json!(60);
    r["spec"]["progressDeadlineAbort"] = json!(true);
    let mut w = World::new(r);
    w.settle();
    w.pods_ready = false;
    w.set_image("img:never-ready");
    w.settle();
    assert_eq!(w.phase(), "Progressing");
    w.advance(61);
    w.settle();
    assert_eq!(w.phase(), "Degraded");
    assert_eq!(w.status("abort"), json!(true));
}

#[test]
fn invalid_specs_are_degraded_with_a_clear_message_and_change_nothing() {
    for (spec_patch, needle) in [
        (json!({"strategy": {"canary": null}}), "canary or blueGreen"),
        (
            json!({"selector": {"matchLabels": {"app": "other"}}}),
            "does not match",
        ),
        (
            json!({"strategy": {"canary": {"steps": [{"setWeight": 150}]}}}),
            "0..100",
        ),
        (
            json!({"strategy": {"canary": {"steps": [{"pause": {"duration": "soon"}}]}}}),
            "not a duration",
        ),
        (json!({"replicas": "many"}), "does not parse"),
    ] {
        let mut r = canary_rollout(json!([]));
        mooring_core::merge_patch::apply(&mut r["spec"], &spec_patch);
        let mut w = World::new(r);
        let p = w.step();
        assert!(p.create.is_empty() && p.patch.is_empty() && p.start_runs.is_empty());
        assert_eq!(w.phase(), "Degraded");
        let msg = w.status("message");
        assert!(
            msg.as_str().unwrap_or_default().contains(needle),
            "{msg} / {needle}"
        );
    }
}

fn blue_green(pre: bool) -> Value {
    let mut bg = json!({"activeService": "m-active", "previewService": "m-preview", "scaleDownDelaySeconds": 30});
    if pre {
        bg["prePromotionAnalysis"] = json!({"templates": [{"templateName": "smoke"}]});
    }
    json!({
        "metadata": {"name": "m", "namespace": "ns", "uid": "u1", "generation": 1},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "m"}}, "template": template("img:1"),
                 "strategy": {"blueGreen": bg}},
    })
}

#[test]
fn blue_green_failing_pre_promotion_analysis_never_switches_active() {
    let mut w = World::new(blue_green(true));
    w.settle();
    let (old, _) = w.hashes();
    assert_eq!(w.services["m-active"], old);
    assert_eq!(w.phase(), "Healthy");
    w.set_image("img:2");
    w.settle();
    let (_, new) = w.hashes();
    assert_eq!(w.services["m-preview"], new);
    assert_eq!(w.services["m-active"], old);
    assert_eq!(w.replicas(&new), 3);
    w.set_run_phase("-pre", "Failed", "Metric \"smoke\" assessed Failed");
    w.settle();
    assert_eq!(w.services["m-active"], old);
    assert_eq!(w.phase(), "Degraded");
    w.advance(31);
    w.settle();
    assert_eq!(w.replicas(&new), 0);
    assert_eq!(w.replicas(&old), 3);
}

#[test]
fn blue_green_passing_analysis_switches_then_scales_old_down_after_delay() {
    let mut w = World::new(blue_green(true));
    w.settle();
    let (old, _) = w.hashes();
    w.set_image("img:2");
    w.settle();
    w.set_run_phase("-pre", "Successful", "");
    w.settle();
    let (stable, new) = w.hashes();
    assert_eq!(stable, new);
    assert_eq!(w.services["m-active"], new);
    assert_eq!(
        w.replicas(&old),
        3,
        "old stack kept for scaleDownDelaySeconds"
    );
    w.advance(31);
    w.settle();
    assert_eq!(w.replicas(&old), 0);
    assert_eq!(w.phase(), "Healthy");
}

#[test]
fn blue_green_manual_promotion_waits_for_promote() {
    let mut r = blue_green(false);
    r["spec"]["strategy"]["blueGreen"]["autoPromotionEnabled"] = json!(false);
    let mut w = World::new(r);
    w.settle();
    let (old, _) = w.hashes();
    w.set_image("img:2");
    w.settle();
    assert_eq!(w.phase(), "Paused");
    assert_eq!(w.services["m-active"], old);
    w.rollout["status"]["pauseConditions"] = Value::Null;
    w.settle();
    let (_, new) = w.hashes();
    assert_eq!(w.services["m-active"], new);
}

#[test]
fn field_paths() {
    let o = json!({"metadata": {"namespace": "n", "labels": {"app.kubernetes.io/name": "x"}}, "spec": {"a": [{"b": 3}]}});
    assert_eq!(field_path(&o, "metadata.namespace").as_deref(), Some("n"));
    assert_eq!(
        field_path(&o, "metadata.labels['app.kubernetes.io/name']").as_deref(),
        Some("x")
    );
    assert_eq!(field_path(&o, "spec.a[0].b").as_deref(), Some("3"));
    assert_eq!(field_path(&o, "spec.missing"), None);
}

/// A plan that writes nothing but the status: no ReplicaSet created, scaled or deleted,
/// no Service or traffic router touched, no AnalysisRun started or stopped.
fn status_only(p: &Plan) -> bool {
    p.create.is_empty()
        && p.patch.is_empty()
        && p.delete.is_empty()
        && p.service_selectors.is_empty()
        && p.traffic.is_none()
        && p.start_runs.is_empty()
        && p.terminate_runs.is_empty()
}

fn invalid_spec_message(w: &World) -> String {
    let c = condition(&w.rollout["status"], "InvalidSpec").expect("InvalidSpec condition");
    assert_eq!(c["status"], json!("True"));
    c["message"].as_str().unwrap_or_default().to_string()
}

#[test]
fn an_experiment_step_is_invalid_spec_and_nothing_moves() {
    // First deploy: Degraded at once, not a single ReplicaSet.
    let steps = json!([{"setWeight": 20},
        {"experiment": {"duration": "1h", "templates": [{"name": "baseline", "specRef": "stable"}]}},
        {"pause": {}}]);
    let mut w = World::new(canary_rollout(steps));
    let p = w.step();
    assert!(status_only(&p), "{p:?}");
    assert_eq!(w.phase(), "Degraded");
    assert_eq!(
        w.status("message"),
        json!("InvalidSpec: step 1: experiment is not supported by Mooring (spec.strategy.canary.steps[1].experiment)")
    );
    assert!(invalid_spec_message(&w).starts_with("step 1: experiment"));
    assert!(w.rses.is_empty());
}

#[test]
fn an_update_adding_unsupported_steps_leaves_the_stable_version_alone() {
    let mut w = World::new(canary_rollout(json!([{"setWeight": 20}, {"pause": {}}])));
    w.settle();
    let (stable, _) = w.hashes();
    assert_eq!(w.phase(), "Healthy");
    let before = w.rses.clone();
    // A new version and a header-route and mirror step in the same commit.
    w.set_image("img:2");
    w.rollout["spec"]["strategy"]["canary"]["steps"] = json!([
        {"setWeight": 20},
        {"setHeaderRoute": {"name": "canary", "match": [{"headerName": "X-Canary", "headerValue": {"exact": "1"}}]}},
        {"setMirrorRoute": {"name": "mirror", "percentage": 50}},
        {"pause": {}}]);
    for _ in 0..3 {
        let p = w.step();
        assert!(status_only(&p), "{p:?}");
    }
    assert_eq!(w.phase(), "Degraded");
    let msg = invalid_spec_message(&w);
    assert!(
        msg.contains("step 1: setHeaderRoute is not supported by Mooring")
            && msg.contains("step 2: setMirrorRoute is not supported by Mooring"),
        "{msg}"
    );
    assert_eq!(w.rses, before, "no ReplicaSet created or scaled");
    assert_eq!(w.replicas(&stable), 10);
    assert_eq!(w.hashes().0, stable);
    // Removing the steps resumes a normal update (and clears InvalidSpec).
    w.rollout["spec"]["strategy"]["canary"]["steps"] = json!([{"setWeight": 20}, {"pause": {}}]);
    w.settle();
    assert_eq!(w.phase(), "Paused");
    assert!(condition(&w.rollout["status"], "InvalidSpec").is_none());
    assert_eq!(w.replicas(&w.hashes().1), 2);
}

#[test]
fn unsupported_routers_fields_and_empty_steps_are_invalid_spec() {
    let cases = [
        (
            json!({"nginx": {"stableIngress": "m"}}),
            json!([{"setWeight": 20}]),
            "spec.strategy.canary.trafficRouting.nginx is not supported by Mooring: this traffic router is not supported",
        ),
        (
            json!({"plugins": {"argoproj-labs/openshift": {"routes": ["m"]}}}),
            json!([{"setWeight": 20}]),
            "trafficRouting.plugins[\"argoproj-labs/openshift\"] is not supported by Mooring",
        ),
        (
            json!({}),
            json!([{"setWeight": 20}]),
            "trafficRouting configures no router Mooring drives",
        ),
        (
            json!({"istio": {"destinationRule": {"name": "m"}}}),
            json!([{"setWeight": 20}]),
            "spec.strategy.canary.trafficRouting: istio.destinationRule.canarySubsetName of",
        ),
        (
            Value::Null,
            json!([{"setWeight": 20}, {}]),
            "spec.strategy.canary.steps[1] must set exactly one of setWeight, pause, analysis, setCanaryScale (it sets 0)",
        ),
        (
            Value::Null,
            json!([{"setWeight": 20, "pause": {}}]),
            "(it sets 2)",
        ),
        (
            Value::Null,
            json!([{"setWieght": 20}]),
            "step 0: setWieght is not a canary step Argo Rollouts or Mooring knows (spec.strategy.canary.steps[0].setWieght)",
        ),
    ];
    for (routing, steps, want) in cases {
        let mut r = canary_rollout(steps);
        if !routing.is_null() {
            r["spec"]["strategy"]["canary"]["trafficRouting"] = routing;
        }
        let mut w = World::new(r);
        let p = w.step();
        assert!(status_only(&p), "{want}: {p:?}");
        assert_eq!(w.phase(), "Degraded", "{want}");
        let msg = invalid_spec_message(&w);
        assert!(msg.contains(want), "want {want:?} in {msg:?}");
    }
    let mut r = canary_rollout(json!([{"setWeight": 20}]));
    r["spec"]["strategy"]["canary"]["antiAffinity"] =
        json!({"requiredDuringSchedulingIgnoredDuringExecution": {}});
    r["spec"]["workloadRef"] = json!({"kind": "Deployment", "name": "m"});
    let mut w = World::new(r);
    w.step();
    let msg = invalid_spec_message(&w);
    assert!(
        msg.contains("spec.strategy.canary.antiAffinity is not supported by Mooring")
            && msg.contains("spec.workloadRef is not supported by Mooring: the pod template of a referenced Deployment is not used"),
        "{msg}"
    );
}
