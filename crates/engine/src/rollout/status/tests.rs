//! The rules of the rollout summary, each on a plain Rollout; one golden view pins every
//! field (and the field names and order `mooring rollout get -o json` prints).

use super::*;
use serde_json::json;

use crate::rollout::command::tests::plugin_rollout as rollout;

#[test]
fn set_weight_follows_the_steps() {
    let at = |idx: i64| {
        set_weight(&rollout(
            json!({"currentStepIndex": idx, "stableRS": "a", "currentPodHash": "b"}),
        ))
    };
    assert_eq!(at(0), Some(10));
    assert_eq!(at(2), Some(10));
    assert_eq!(at(4), Some(50));
    assert_eq!(at(5), Some(100));
    let aborted = rollout(json!({"currentStepIndex": 3, "abort": true}));
    assert_eq!(set_weight(&aborted), Some(0));
    let routed =
        rollout(json!({"currentStepIndex": 3, "canary": {"weights": {"canary": {"weight": 42}}}}));
    assert_eq!(set_weight(&routed), Some(42));
}

#[test]
fn view_and_watch_outcomes() {
    let r = rollout(json!({
        "observedGeneration": "2", "phase": "Paused", "message": "CanaryPauseStep",
        "currentStepIndex": 1, "stableRS": "a", "currentPodHash": "b",
        "replicas": 5, "updatedReplicas": 1, "readyReplicas": 5, "availableReplicas": 5,
        "pauseConditions": [{"reason": "CanaryPauseStep"}],
    }));
    let rs = |hash: &str, rev: &str, image: &str, avail: i64| {
        json!({"metadata": {"name": format!("m-{hash}"), "annotations": {REVISION_ANNOTATION: rev},
                            "labels": {POD_TEMPLATE_HASH_LABEL: hash}},
               "spec": {"replicas": avail, "template": {"spec": {"containers": [{"name": "server", "image": image}]}}},
               "status": {"replicas": avail, "readyReplicas": avail, "availableReplicas": avail}})
    };
    let runs = [
        json!({"metadata": {"name": "m-b-2-2", "annotations": {REVISION_ANNOTATION: "2"}},
        "status": {"phase": "Failed", "metricResults": [{"name": "success-rate", "successful": 2, "failed": 1}]}}),
    ];
    let v = RolloutView::new(
        &r,
        &[rs("a", "1", "m:1", 4), rs("b", "2", "m:2", 1)],
        &[],
        &runs,
    );
    assert_eq!(v.status, "Paused");
    assert_eq!(v.step.as_deref(), Some("1/5"));
    assert_eq!(v.set_weight, Some(10));
    assert_eq!(v.actual_weight, Some(20));
    assert_eq!(
        serde_json::to_value(&v.images).expect("serialisable"),
        json!([{"image": "m:1", "tags": ["stable"]}, {"image": "m:2", "tags": ["canary"]}])
    );
    assert_eq!(v.analysis_runs[0].failed, 1);
    assert_eq!(v.analysis_runs[0].revision, Some(2));
    assert_eq!(finished(&r), None);
    let mut healthy = r.clone();
    healthy["status"] = json!({"observedGeneration": "2", "phase": "Healthy", "stableRS": "b", "currentPodHash": "b"});
    assert_eq!(finished(&healthy), Some(Outcome::Promoted));
    healthy["metadata"]["generation"] = json!(3);
    assert_eq!(finished(&healthy), None, "a spec change not observed yet");
    let mut degraded = r.clone();
    degraded["status"]["phase"] = json!("Degraded");
    assert_eq!(finished(&degraded), Some(Outcome::Failed));
    let mut aborted = r;
    aborted["status"]["abort"] = json!(true);
    assert_eq!(finished(&aborted), Some(Outcome::Failed));
}

#[test]
fn blue_green_roles_and_no_weights() {
    let r = json!({
        "metadata": {"name": "bg"},
        "spec": {"strategy": {"blueGreen": {"activeService": "a", "previewService": "p"}}},
        "status": {"stableRS": "a", "currentPodHash": "b",
                   "blueGreen": {"activeSelector": "a", "previewSelector": "b"}},
    });
    assert_eq!(Strategy::of(&r), Strategy::BlueGreen);
    assert_eq!(roles(&r, "a"), [Role::Stable, Role::Active]);
    assert_eq!(roles(&r, "b"), [Role::Preview]);
    assert_eq!(roles(&r, ""), []);
    let v = RolloutView::of(&r);
    assert_eq!((v.step, v.set_weight, v.actual_weight), (None, None, None));
}

#[test]
fn phase_falls_back_to_health_without_a_reported_phase() {
    let (p, _) = phase(&json!({"status": {"phase": "Paused", "message": "CanaryPauseStep"}}));
    assert_eq!(p, "Paused");
    let (p, m) = phase(&json!("not an object"));
    assert_eq!((p.as_str(), m.as_str()), ("Progressing", ""));
}

#[test]
fn replica_set_states() {
    let rs = |desired, ready| ReplicaSetView {
        name: String::new(),
        revision: None,
        hash: String::new(),
        tags: vec![],
        images: vec![],
        desired,
        replicas: desired,
        ready,
        available: ready,
        pods: vec![],
    };
    assert_eq!(rs(0, 0).state(), ReplicaSetState::ScaledDown);
    assert_eq!(rs(2, 2).state(), ReplicaSetState::Healthy);
    assert_eq!(rs(2, 1).state(), ReplicaSetState::Progressing);
}

/// Every field of a canary mid-update with its ReplicaSets (one without a readable
/// revision, one scaled down), pods (one owned by no ReplicaSet of the rollout) and
/// AnalysisRuns, exactly as `mooring rollout get -o json` printed it before the summary
/// moved here.
#[test]
fn golden_view() {
    let (r, rss, pods, ars) = golden_objects();
    let v = RolloutView::new(&r, &rss, &pods, &ars);
    let golden: Value =
        serde_json::from_str(include_str!("golden_view.json")).expect("golden file is JSON");
    let got = serde_json::to_value(&v).expect("serialisable");
    assert_eq!(got, golden);
    // Same field order too (what -o json prints).
    assert_eq!(
        serde_json::to_string_pretty(&got).expect("serialisable"),
        include_str!("golden_view.json")
    );
}

/// Whatever a hostile or half-written object holds, the summary is computed without
/// panicking and the commands that need a field say so.
#[test]
fn malformed_rollouts_are_summarised_not_panicked_on() {
    for r in [
        json!(null),
        json!("rollout"),
        json!({"spec": "x", "status": 7}),
        json!({"metadata": {"name": 5}, "spec": {"strategy": {"canary": {"steps": 5}}},
               "status": {"currentStepIndex": -3, "phase": ["Healthy"], "canary": {"weights": "x"}}}),
        json!({"spec": {"replicas": "many", "strategy": {"canary": {"steps": [{"setWeight": "ten"}, 3, null]}},
               "template": {"spec": {"containers": "server"}}},
               "status": {"currentStepIndex": "99999999999999999999", "availableReplicas": -5}}),
        json!({"spec": {"strategy": {"blueGreen": {}}}, "status": {"blueGreen": 1, "pauseConditions": "yes"}}),
        json!({"status": {"availableReplicas": 1, "currentPodHash": "h"}}),
    ] {
        let replica_sets = vec![
            json!(1),
            json!({"metadata": {"uid": "u", "labels": "x", "annotations": {REVISION_ANNOTATION: "x"}}}),
            json!({"metadata": {"labels": {POD_TEMPLATE_HASH_LABEL: "h"}},
                   "status": {"availableReplicas": i64::MAX}}),
        ];
        let pods = vec![
            json!(7),
            json!({"metadata": {"ownerReferences": [{"uid": "u"}]}, "status": {"conditions": "x"}}),
        ];
        let analysis_runs = vec![
            json!({"status": {"metricResults": "x"}}),
            json!({"status": {"metricResults": [{"failed": i64::MAX}, {"failed": i64::MAX}]}}),
        ];
        let v = RolloutView::new(&r, &replica_sets, &pods, &analysis_runs);
        let _ = serde_json::to_value(&v).expect("serialisable");
        let _ = finished(&r);
        let _ = super::super::command::promote_patches(&r, false);
        let _ = super::super::command::promote_patches(&r, true);
        let _ = super::super::command::undo_patch(&r, &replica_sets, None);
        assert!(
            super::super::command::set_image_patch(&r, &[("*".into(), "x:1".into())]).is_err(),
            "{r}"
        );
    }
}

/// A canary at step 3/5 with three ReplicaSets, four pods and two AnalysisRuns
/// (`golden_objects.json`, shared with the CLI's rendering test).
fn golden_objects() -> (Value, Vec<Value>, Vec<Value>, Vec<Value>) {
    let v: Value =
        serde_json::from_str(include_str!("golden_objects.json")).expect("golden file is JSON");
    let list = |k: &str| v[k].as_array().cloned().expect("a list in the golden file");
    (
        v["rollout"].clone(),
        list("replicaSets"),
        list("pods"),
        list("analysisRuns"),
    )
}
