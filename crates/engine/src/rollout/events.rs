//! What happened to a Rollout between two statuses, as Argo Rollouts' Events name it.
//!
//! Argo Rollouts records Kubernetes Events for the moments operators care about (and its
//! notifications fire on them): the rollout paused, aborted, promoted to stable, an
//! analysis failed. Mooring's rollout controller writes a new status after each plan; this
//! compares the status it read with the one it wrote and names the transitions, so each
//! is told exactly once (a status written again unchanged tells nothing).

use serde_json::Value;

/// One transition: the Event reason and its message.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub reason: &'static str,
    pub message: String,
}

fn str_of<'a>(s: &'a Value, key: &str) -> &'a str {
    s.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn paused(s: &Value) -> bool {
    s.get("pauseConditions")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
}

/// Aborted as the controller reports it (phase `Degraded`, message `RolloutAborted: …`),
/// whoever asked for the abort (an analysis, `mooring rollout abort`, a RollbackPolicy).
fn aborted(s: &Value) -> bool {
    str_of(s, "phase") == "Degraded" && str_of(s, "message").starts_with("RolloutAborted")
}

/// The transitions from status `before` to status `after` (either may be `null`).
pub fn transitions(before: &Value, after: &Value) -> Vec<Transition> {
    let mut out = Vec::new();
    if aborted(after) && !aborted(before) {
        let message = str_of(after, "abortMessage");
        // An abort caused by an analysis names the run (see `abort_message`).
        if message.starts_with("AnalysisRun ") {
            out.push(Transition {
                reason: "AnalysisRunFailed",
                message: message.to_string(),
            });
        }
        out.push(Transition {
            reason: "RolloutAborted",
            message: if message.is_empty() {
                "Rollout aborted: traffic and replicas back to the stable version".into()
            } else {
                format!("Rollout aborted: {message}")
            },
        });
    } else if paused(after) && !paused(before) {
        let why = after
            .pointer("/pauseConditions/0/reason")
            .and_then(Value::as_str)
            .unwrap_or("CanaryPauseStep");
        out.push(Transition {
            reason: "RolloutPaused",
            message: format!("Rollout paused ({why})"),
        });
    }
    let (old, new) = (str_of(before, "stableRS"), str_of(after, "stableRS"));
    if !old.is_empty() && !new.is_empty() && old != new {
        out.push(Transition {
            reason: "RolloutPromoted",
            message: format!(
                "Rollout promoted: the stable ReplicaSet hash is now {new} (was {old})"
            ),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reasons(before: Value, after: Value) -> Vec<&'static str> {
        transitions(&before, &after)
            .iter()
            .map(|t| t.reason)
            .collect()
    }

    #[test]
    fn each_transition_is_named_once() {
        let stable = json!({"stableRS": "aaa", "currentPodHash": "bbb"});
        let paused = json!({"stableRS": "aaa", "currentPodHash": "bbb",
                            "pauseConditions": [{"reason": "CanaryPauseStep", "startTime": "2026-12-06T08:00:00Z"}]});
        assert_eq!(reasons(stable.clone(), paused.clone()), ["RolloutPaused"]);
        // Written again unchanged: nothing.
        assert!(reasons(paused.clone(), paused.clone()).is_empty());
        let analysis_abort = json!({"stableRS": "aaa", "abort": true, "phase": "Degraded",
                                    "message": "RolloutAborted: Rollout aborted update to revision 2",
                                    "abortMessage": "AnalysisRun \"model-abc-2\" failed: metric error-rate assessed Failed"});
        assert_eq!(
            reasons(paused.clone(), analysis_abort.clone()),
            ["AnalysisRunFailed", "RolloutAborted"]
        );
        assert!(reasons(analysis_abort.clone(), analysis_abort).is_empty());
        let user_abort = json!({"stableRS": "aaa", "abort": true, "phase": "Degraded",
                                "message": "RolloutAborted: Rollout aborted update to revision 2"});
        assert_eq!(
            reasons(paused.clone(), user_abort.clone()),
            ["RolloutAborted"]
        );
        // The abort requested (status.abort) but not yet carried out: not yet.
        assert!(reasons(paused.clone(), json!({"stableRS": "aaa", "abort": true})).is_empty());
        assert_eq!(
            reasons(paused, json!({"stableRS": "bbb", "currentPodHash": "bbb"})),
            ["RolloutPromoted"]
        );
        // The first version becoming stable is no promotion.
        assert!(reasons(Value::Null, json!({"stableRS": "aaa"})).is_empty());
    }
}
