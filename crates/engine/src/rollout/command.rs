//! What a user (or Mooring's automatic rollback) may ask of a live Argo Rollout, as
//! pure functions of the Rollout's JSON: whether it is mid-update, and the merge patches
//! of `abort`, `retry`, `pause`, `promote`, `undo` and `set-image`.
//!
//! Why one home: the automatic rollback (`mooring-controller`) and `mooring rollout …`
//! (`mooring-cli`) both decide "is this Rollout mid-update, so that aborting it returns
//! traffic to the stable version?" and both send the abort patch. Written twice, the two
//! answers drifted apart; here they are one rule with one test.
//!
//! The rule follows Argo Rollouts: a Rollout is fully promoted when `status.stableRS`
//! equals `status.currentPodHash` (`rolloututil.IsFullyPromoted`), and `status.abort:
//! true` makes the rollout controller send all traffic back to the `stableRS` pods. So a
//! Rollout is mid-update exactly when both hashes are known and differ: only then is there
//! a stable version, other than the one being rolled out, for an abort to return to. A
//! Rollout whose stable and current hash agree (or that has no stable version yet) is not
//! mid-update whatever its phase says: aborting it would change nothing, and the caller
//! must roll back another way (the rollback syncs the previous Git revision; the CLI says
//! there is nothing to abort).
//!
//! Status patches go through the `status` subresource, spec patches through the object;
//! the I/O is the callers'. `undo` and `set-image` patches name the `resourceVersion` they
//! were computed from, so a concurrent edit makes the API server refuse them (409).

use super::{POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// A command that has nothing to act on, or input it cannot act on. The message names the
/// Rollout and says what to do instead.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CommandError {
    #[error(
        "rollout {0:?} is already aborted; `mooring rollout retry {0}` starts the update again"
    )]
    AlreadyAborted(String),
    #[error("rollout {0:?} runs its stable version with no update in progress: nothing to abort")]
    NothingToAbort(String),
    #[error("rollout {0:?} is not aborted: nothing to retry")]
    NotAborted(String),
    #[error("rollout {0:?} is aborted: `mooring rollout retry {0}` first")]
    PromoteAborted(String),
    #[error("rollout {0:?} is already fully promoted: nothing to promote")]
    AlreadyPromoted(String),
    #[error("rollout {0:?} has no step left to skip: nothing to promote")]
    NoStepLeft(String),
    #[error("rollout {0:?} is not paused: nothing to promote (`--full` skips its analysis)")]
    NotPaused(String),
    #[error("--to-revision must be a positive revision, got {0}")]
    BadRevision(i64),
    #[error("rollout {name:?} has no revision {revision} (revisions kept: {kept})")]
    NoSuchRevision {
        name: String,
        revision: i64,
        kept: String,
    },
    #[error(
        "rollout {name:?} has no revision before {current} to go back to (revisions kept: {kept})"
    )]
    NoPreviousRevision {
        name: String,
        current: String,
        kept: String,
    },
    #[error("ReplicaSet {0} has no pod template")]
    NoTemplate(String),
    #[error(
        "rollout {name:?} already runs the pod template of revision {revision}: nothing to undo"
    )]
    AlreadyAtRevision { name: String, revision: i64 },
    #[error("rollout {name:?} has no container {container:?} (containers: {containers}); nothing changed")]
    NoContainer {
        name: String,
        container: String,
        containers: String,
    },
}

/// The string at `ptr`, or "" when it is absent or not a string.
pub(super) fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// The integer at `ptr`, also when written as a string (`"2"`), as Argo reads it.
pub(super) fn i(v: &Value, ptr: &str) -> Option<i64> {
    match v.pointer(ptr)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn name(r: &Value) -> String {
    s(r, "/metadata/name").to_string()
}

/// Whether `status.abort` is set.
pub fn aborted(r: &Value) -> bool {
    r.pointer("/status/abort").and_then(Value::as_bool) == Some(true)
}

fn paused(r: &Value) -> bool {
    r.pointer("/spec/paused").and_then(Value::as_bool) == Some(true)
}

fn has_pause_conditions(r: &Value) -> bool {
    r.pointer("/status/pauseConditions")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

/// Whether the Rollout is mid-update (see the module docs): `status.stableRS` and
/// `status.currentPodHash` are both set and differ, so an abort returns traffic to a
/// stable version other than the one being rolled out.
pub fn mid_update(r: &Value) -> bool {
    let (current, stable) = (s(r, "/status/currentPodHash"), s(r, "/status/stableRS"));
    !current.is_empty() && !stable.is_empty() && current != stable
}

/// Whether the Rollout runs its stable version with no step or pause left: the stable
/// hash is the current one and nothing is paused at a step.
pub fn fully_promoted(r: &Value) -> bool {
    let stable = s(r, "/status/stableRS");
    !stable.is_empty() && stable == s(r, "/status/currentPodHash") && !has_pause_conditions(r)
}

/// The status patch that aborts an update: the rollout controller sends all traffic back
/// to the stable pods. The automatic rollback sends it whenever [`mid_update`] holds.
pub fn abort_status() -> Value {
    json!({"status": {"abort": true}})
}

/// The status patch of `mooring rollout abort`: refused when already aborted or when
/// there is no update in progress.
pub fn abort_patch(r: &Value) -> Result<Value, CommandError> {
    if aborted(r) {
        return Err(CommandError::AlreadyAborted(name(r)));
    }
    if !mid_update(r) {
        return Err(CommandError::NothingToAbort(name(r)));
    }
    Ok(abort_status())
}

/// The status patch of `retry`: clears `status.abort`; refused when not aborted.
pub fn retry_patch(r: &Value) -> Result<Value, CommandError> {
    if !aborted(r) {
        return Err(CommandError::NotAborted(name(r)));
    }
    Ok(json!({"status": {"abort": false}}))
}

/// The spec patch of `pause`.
pub fn pause_patch() -> Value {
    json!({"spec": {"paused": true}})
}

/// The spec and status merge patches of `promote`: `spec.paused: false` when paused by a
/// user; else clears `status.pauseConditions`; else, on a canary, skips the current step.
/// `full` sets `status.promoteFull` (and unpauses).
pub fn promote_patches(
    r: &Value,
    full: bool,
) -> Result<(Option<Value>, Option<Value>), CommandError> {
    let paused = paused(r);
    let unpause = paused.then(|| json!({"spec": {"paused": false}}));
    if aborted(r) {
        return Err(CommandError::PromoteAborted(name(r)));
    }
    if full {
        if fully_promoted(r) && !paused {
            return Err(CommandError::AlreadyPromoted(name(r)));
        }
        return Ok((unpause, Some(json!({"status": {"promoteFull": true}}))));
    }
    if paused {
        return Ok((unpause, None));
    }
    if has_pause_conditions(r) {
        return Ok((None, Some(json!({"status": {"pauseConditions": null}}))));
    }
    let blue_green = r
        .pointer("/spec/strategy/blueGreen")
        .is_some_and(|v| !v.is_null());
    if !blue_green {
        let steps = r
            .pointer("/spec/strategy/canary/steps")
            .and_then(Value::as_array)
            .map_or(0, Vec::len) as i64;
        let index = i(r, "/status/currentStepIndex").unwrap_or(0);
        if steps == 0 || index >= steps {
            return Err(CommandError::NoStepLeft(name(r)));
        }
        return Ok((
            None,
            Some(json!({"status": {"pauseConditions": null, "currentStepIndex": index + 1}})),
        ));
    }
    Err(CommandError::NotPaused(name(r)))
}

/// A ReplicaSet's rollout revision (its `rollout.argoproj.io/revision` annotation).
pub fn replica_set_revision(rs: &Value) -> Option<i64> {
    rs.pointer("/metadata/annotations")
        .and_then(|a| a.get(REVISION_ANNOTATION))
        .and_then(Value::as_str)
        .and_then(|v| v.parse().ok())
}

/// Optimistic concurrency: the patch names the resourceVersion it was computed from.
fn guard(patch: &mut Value, r: &Value) {
    let rv = s(r, "/metadata/resourceVersion");
    if !rv.is_empty() {
        patch["metadata"] = json!({"resourceVersion": rv});
    }
}

/// The merge patch of `undo`: the revision chosen (`to`, default the one before the
/// Rollout's) and the patch that makes `spec.template` that revision's pod template,
/// without its pod-template-hash label.
pub fn undo_patch(
    r: &Value,
    replica_sets: &[Value],
    to: Option<i64>,
) -> Result<(i64, Value), CommandError> {
    let mut by_revision: Vec<(i64, &Value)> = replica_sets
        .iter()
        .filter_map(|rs| Some((replica_set_revision(rs)?, rs)))
        .collect();
    by_revision.sort_by_key(|(rev, _)| *rev);
    let kept = if by_revision.is_empty() {
        "none".to_string()
    } else {
        by_revision
            .iter()
            .map(|(r, _)| r.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let current = r
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(REVISION_ANNOTATION))
        .and_then(Value::as_str)
        .and_then(|v| v.parse::<i64>().ok())
        .or_else(|| by_revision.last().map(|(r, _)| *r));
    let &(revision, rs) =
        match to {
            Some(n) if n <= 0 => return Err(CommandError::BadRevision(n)),
            Some(n) => by_revision.iter().find(|(rev, _)| *rev == n).ok_or(
                CommandError::NoSuchRevision {
                    name: name(r),
                    revision: n,
                    kept,
                },
            )?,
            None => by_revision
                .iter()
                .rev()
                .find(|(rev, _)| Some(*rev) < current)
                .ok_or_else(|| CommandError::NoPreviousRevision {
                    name: name(r),
                    current: current.map_or("?".into(), |c| c.to_string()),
                    kept,
                })?,
        };
    let mut template = rs
        .pointer("/spec/template")
        .cloned()
        .filter(Value::is_object)
        .ok_or_else(|| CommandError::NoTemplate(s(rs, "/metadata/name").to_string()))?;
    if let Some(labels) = template
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
    }
    let live_raw = r.pointer("/spec/template").cloned().unwrap_or(Value::Null);
    let mut live = live_raw.clone();
    if let Some(labels) = live
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
    }
    if live == template {
        return Err(CommandError::AlreadyAtRevision {
            name: name(r),
            revision,
        });
    }
    let mut patch =
        json!({"spec": {"template": mooring_core::merge_patch::diff(&live_raw, &template)}});
    guard(&mut patch, r);
    Ok((revision, patch))
}

/// The merge patch of `set-image`: every named container (`*`: every container, init
/// container and ephemeral container) gets its image. Container lists are replaced whole
/// (merge patches replace arrays), guarded by the resourceVersion they were read at; an
/// unknown name changes nothing and lists the containers there are.
pub fn set_image_patch(r: &Value, images: &[(String, String)]) -> Result<Value, CommandError> {
    let lists = ["initContainers", "containers", "ephemeralContainers"];
    let mut edited: BTreeMap<&str, Vec<Value>> = BTreeMap::new();
    let mut all_names = Vec::new();
    for list in lists {
        if let Some(cs) = r
            .pointer(&format!("/spec/template/spec/{list}"))
            .and_then(Value::as_array)
        {
            all_names.extend(
                cs.iter()
                    .map(|c| c["name"].as_str().unwrap_or("").to_string()),
            );
            edited.insert(list, cs.clone());
        }
    }
    let mut changed = BTreeSet::new();
    for (container, image) in images {
        let mut matched = false;
        for (list, cs) in edited.iter_mut() {
            for c in cs.iter_mut() {
                if container == "*" || c["name"].as_str() == Some(container.as_str()) {
                    matched = true;
                    c["image"] = json!(image);
                    changed.insert(*list);
                }
            }
        }
        if !matched {
            return Err(CommandError::NoContainer {
                name: name(r),
                container: container.clone(),
                containers: if all_names.is_empty() {
                    "none".into()
                } else {
                    all_names.join(", ")
                },
            });
        }
    }
    let mut spec = serde_json::Map::new();
    for (list, cs) in edited {
        if changed.contains(list) {
            spec.insert(list.to_string(), Value::Array(cs));
        }
    }
    let mut patch = json!({"spec": {"template": {"spec": spec}}});
    guard(&mut patch, r);
    Ok(patch)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    fn rollout(status: Value) -> Value {
        json!({"metadata": {"name": "m"}, "spec": {"strategy": {"canary": {"steps": [
            {"setWeight": 20}, {"pause": {}}, {"setWeight": 50}, {"pause": {"duration": "1m"}}, {"setWeight": 80}
        ]}}}, "status": status})
    }

    /// The one rule both the automatic rollback and `mooring rollout abort` follow.
    #[test]
    fn mid_update_is_a_known_stable_other_than_the_current_hash() {
        let cases = [
            (json!({"stableRS": "a", "currentPodHash": "b"}), true),
            (
                json!({"stableRS": "a", "currentPodHash": "b", "phase": "Healthy"}),
                true,
            ),
            (json!({"stableRS": "a", "currentPodHash": "a"}), false),
            // The phase does not make an update: with stable == current an abort has
            // nothing to return to.
            (
                json!({"stableRS": "a", "currentPodHash": "a", "phase": "Progressing"}),
                false,
            ),
            (
                json!({"stableRS": "a", "currentPodHash": "a", "phase": "Paused",
                    "pauseConditions": [{"reason": "CanaryPauseStep"}]}),
                false,
            ),
            // No stable version yet (first deploy, or never reconciled).
            (
                json!({"currentPodHash": "b", "phase": "Progressing"}),
                false,
            ),
            (json!({"stableRS": "a", "phase": "Paused"}), false),
            (json!({}), false),
            (json!({"stableRS": 1, "currentPodHash": 2}), false),
        ];
        for (status, want) in cases {
            assert_eq!(mid_update(&rollout(status.clone())), want, "{status}");
        }
        assert!(!mid_update(&json!(null)));
        assert!(!mid_update(&json!("rollout")));
    }

    #[test]
    fn abort_and_retry_patches() {
        let updating = rollout(json!({"stableRS": "a", "currentPodHash": "b"}));
        assert_eq!(
            abort_patch(&updating),
            Ok(json!({"status": {"abort": true}}))
        );
        assert_eq!(abort_status(), json!({"status": {"abort": true}}));
        assert_eq!(
            retry_patch(&updating),
            Err(CommandError::NotAborted("m".into()))
        );
        let done = rollout(json!({"stableRS": "a", "currentPodHash": "a"}));
        let e = abort_patch(&done).expect_err("fully promoted").to_string();
        assert!(e.contains("nothing to abort") && e.contains("\"m\""), "{e}");
        let mut aborted = updating;
        aborted["status"]["abort"] = json!(true);
        assert!(abort_patch(&aborted)
            .expect_err("already")
            .to_string()
            .contains("mooring rollout retry m"));
        assert_eq!(
            retry_patch(&aborted),
            Ok(json!({"status": {"abort": false}}))
        );
        assert_eq!(pause_patch(), json!({"spec": {"paused": true}}));
    }

    #[test]
    fn fully_promoted_needs_a_stable_current_hash_and_no_pause() {
        assert!(fully_promoted(&rollout(
            json!({"stableRS": "a", "currentPodHash": "a"})
        )));
        assert!(!fully_promoted(&rollout(
            json!({"stableRS": "a", "currentPodHash": "a",
            "pauseConditions": [{"reason": "x"}]})
        )));
        assert!(!fully_promoted(&rollout(
            json!({"stableRS": "a", "currentPodHash": "b"})
        )));
        assert!(!fully_promoted(&rollout(json!({}))));
    }

    /// The Rollout the `mooring rollout` commands (and the status summary) are tested on.
    pub(in crate::rollout) fn plugin_rollout(status: Value) -> Value {
        json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
            "metadata": {"name": "ml-model-serving", "namespace": "ml", "generation": 2,
                         "annotations": {REVISION_ANNOTATION: "2"}},
            "spec": {
                "replicas": 4,
                "template": {"metadata": {"labels": {"app": "m"}},
                             "spec": {"containers": [{"name": "server", "image": "m:2"}],
                                      "initContainers": [{"name": "fetch", "image": "f:1"}]}},
                "strategy": {"canary": {"steps": [
                    {"setWeight": 10}, {"pause": {}}, {"analysis": {}}, {"setWeight": 50}, {"pause": {"duration": "1m"}}
                ]}},
            },
            "status": status,
        })
    }

    /// The images of a pod template, init containers first.
    fn images_of(template: &Value) -> Vec<String> {
        ["initContainers", "containers"]
            .iter()
            .filter_map(|l| {
                template
                    .pointer(&format!("/spec/{l}"))
                    .and_then(Value::as_array)
            })
            .flatten()
            .filter_map(|c| c["image"].as_str().map(str::to_string))
            .collect()
    }

    #[test]
    fn promote_patches_follow_the_plugin() {
        let paused = {
            let mut r = rollout(
                json!({"currentStepIndex": 1, "pauseConditions": [{"reason": "CanaryPauseStep"}]}),
            );
            r["spec"]["paused"] = json!(true);
            r
        };
        assert_eq!(
            promote_patches(&paused, false).expect("ok"),
            (Some(json!({"spec": {"paused": false}})), None)
        );
        let step_pause = rollout(
            json!({"currentStepIndex": 1, "pauseConditions": [{"reason": "CanaryPauseStep"}]}),
        );
        assert_eq!(
            promote_patches(&step_pause, false).expect("ok"),
            (None, Some(json!({"status": {"pauseConditions": null}})))
        );
        let analysing = plugin_rollout(json!({"currentStepIndex": 2}));
        assert_eq!(
            promote_patches(&analysing, false).expect("ok"),
            (
                None,
                Some(json!({"status": {"pauseConditions": null, "currentStepIndex": 3}}))
            )
        );
        assert_eq!(
            promote_patches(&analysing, true).expect("ok"),
            (None, Some(json!({"status": {"promoteFull": true}})))
        );
        let done =
            plugin_rollout(json!({"currentStepIndex": 5, "stableRS": "a", "currentPodHash": "a"}));
        assert!(promote_patches(&done, false).is_err());
        assert!(promote_patches(&done, true)
            .expect_err("nothing to do")
            .to_string()
            .contains("already fully promoted"));
        let aborted = plugin_rollout(json!({"currentStepIndex": 0, "abort": true}));
        assert!(promote_patches(&aborted, false)
            .expect_err("aborted")
            .to_string()
            .contains("retry"));
    }

    #[test]
    fn set_image_patches_named_and_all_containers_or_nothing() {
        let r = plugin_rollout(json!({}));
        let p = set_image_patch(&r, &[("server".into(), "m:3".into())]).expect("patch");
        assert_eq!(
            p,
            json!({"spec": {"template": {"spec": {"containers": [{"name": "server", "image": "m:3"}]}}}})
        );
        let mut with_rv = r.clone();
        with_rv["metadata"]["resourceVersion"] = json!("17");
        let p = set_image_patch(&with_rv, &[("fetch".into(), "f:2".into())]).expect("patch");
        assert_eq!(p["metadata"]["resourceVersion"], "17");
        let all = set_image_patch(&r, &[("*".into(), "x:1".into())]).expect("patch");
        let mut applied = r.clone();
        mooring_core::merge_patch::apply(&mut applied, &all);
        assert_eq!(images_of(&applied["spec"]["template"]), ["x:1", "x:1"]);
        let e = set_image_patch(
            &r,
            &[("server".into(), "m:3".into()), ("nope".into(), "y".into())],
        )
        .expect_err("unknown container");
        assert!(e.to_string().contains("containers: fetch, server"), "{e}");
    }

    #[test]
    fn undo_picks_the_previous_revision_and_drops_the_hash_label() {
        let rs = |rev: &str, hash: &str, image: &str| {
            json!({"metadata": {"name": format!("m-{hash}"), "annotations": {REVISION_ANNOTATION: rev},
                                "labels": {POD_TEMPLATE_HASH_LABEL: hash}},
                   "spec": {"template": {"metadata": {"labels": {"app": "m", POD_TEMPLATE_HASH_LABEL: hash}},
                                         "spec": {"containers": [{"name": "server", "image": image}]}}}})
        };
        let rollout = plugin_rollout(json!({}));
        let replica_sets = [
            rs("1", "a", "m:1"),
            rs("2", "b", "m:2"),
            rs("3", "c", "m:3"),
        ];
        let (rev, patch) = undo_patch(&rollout, &replica_sets, None).expect("previous");
        assert_eq!(
            rev, 1,
            "revision 2 is current; 3 is newer than the rollout's"
        );
        let mut r = rollout.clone();
        mooring_core::merge_patch::apply(&mut r, &patch);
        assert_eq!(
            r["spec"]["template"]["metadata"]["labels"],
            json!({"app": "m"})
        );
        assert_eq!(images_of(&r["spec"]["template"]), ["m:1"]);
        assert_eq!(
            undo_patch(&rollout, &replica_sets, Some(3)).expect("3").0,
            3
        );
        assert!(undo_patch(&rollout, &replica_sets, Some(9))
            .expect_err("missing")
            .to_string()
            .contains("revisions kept: 1, 2, 3"));
        assert!(undo_patch(&rollout, &replica_sets, Some(0)).is_err());
    }
}
