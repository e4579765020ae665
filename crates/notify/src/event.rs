//! Mooring's own events as triggers, as Argo Rollouts' notifications do.
//!
//! Argo CD's triggers are conditions over an Application's state; Argo Rollouts adds
//! triggers that fire once per thing that *happened* (`on-rollout-paused`,
//! `on-rollout-aborted`, …). Mooring records what happens to an Application as a
//! Kubernetes Event with a reason (a RollbackPolicy firing, a rollout paused or aborted,
//! a sync blocked by policy, a failover); each reason in [`REASONS`] is the trigger
//! `on-<reason in kebab case>` (`RollbackTriggered` → `on-rollback-triggered`).
//!
//! Such a trigger is subscribed like any other
//! (`notifications.argoproj.io/subscribe.on-rollback-triggered.slack: ml-ops`, the
//! project's annotations, `subscriptions`) and configured like any other
//! (`trigger.on-rollback-triggered: [{send: [rollback-triggered]}]`); an empty `when` is
//! true (the trigger fires once per Event), a `when` sees `app` and `event`, and templates
//! see `.event` (`{{.event.message}}`, `{{.event.reason}}`). Delivery is once per Event:
//! the state key's `oncePer` is the Event's uid.

use crate::state::{self, State};
use crate::{subscribe, trigger, Inputs, Plan, PlanError};
use serde_json::Value;

/// The Event reasons that are triggers.
pub const REASONS: &[&str] = &[
    "RolloutPaused",
    "RolloutAborted",
    "RolloutPromoted",
    "AnalysisRunFailed",
    "RollbackTriggered",
    "RollbackCompleted",
    "RollbackFailed",
    "AutoSyncResumed",
    "GitRevertPushed",
    "GitRevertFailed",
    "SLOBreach",
    "SyncBlockedByPolicy",
    "FailoverStarted",
    "FailoverCompleted",
    "FailoverFailed",
    "FailoverBlocked",
    "FailbackCompleted",
    "DrillReport",
];

/// `RollbackTriggered` → `on-rollback-triggered`; an acronym stays one word
/// (`SLOBreach` → `on-slo-breach`).
pub fn trigger_name(reason: &str) -> String {
    let chars: Vec<char> = reason.chars().collect();
    let mut out = String::from("on");
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            let prev = i.checked_sub(1).map(|j| chars[j]);
            let next_lower = chars.get(i + 1).is_some_and(char::is_ascii_lowercase);
            let word_start = match prev {
                None => true,
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                Some(p) => p.is_ascii_uppercase() && next_lower,
            };
            if word_start {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The trigger of an Event's reason, if the reason is one.
pub fn trigger_for(reason: &str) -> Option<String> {
    REASONS.contains(&reason).then(|| trigger_name(reason))
}

/// Whether a trigger name is one of the event triggers.
pub fn is_event_trigger(name: &str) -> bool {
    REASONS.iter().any(|r| trigger_name(r) == name)
}

/// What to send for one Event about the object of `inputs` (the Application the Event's
/// `involvedObject` names). Nothing when the reason is not a trigger or nobody
/// subscribed to it.
pub fn plan_event(inputs: Inputs<'_>, event: &Value) -> Plan {
    let meta = inputs.object.get("metadata");
    let string_map = |k: &str| -> std::collections::BTreeMap<String, String> {
        meta.and_then(|m| m.get(k))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                    .collect()
            })
            .unwrap_or_default()
    };
    let labels = string_map("labels");
    let annotations = string_map("annotations");
    let mut out = Plan::default();
    let (mut st, err) = State::parse(annotations.get(state::ANNOTATION).map(String::as_str));
    if let Some(e) = err {
        out.errors.push(e.into());
    }
    let before = st.clone();
    let reason = event
        .get("reason")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let Some(trigger_name) = trigger_for(reason) else {
        out.state = st;
        return out;
    };
    let event_id = event
        .pointer("/metadata/uid")
        .or_else(|| event.pointer("/metadata/name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let dests = subscribe::destinations(
        inputs.config,
        &labels,
        &annotations,
        inputs.project_annotations,
    );
    let Some(destinations) = dests.get(&trigger_name) else {
        out.state = st;
        return out;
    };
    let Some(conditions) = inputs.config.triggers.get(&trigger_name) else {
        out.errors.push(PlanError::UnknownTrigger {
            trigger: trigger_name,
        });
        out.state = st;
        return out;
    };
    let (results, errors) = trigger::evaluate_with(
        conditions,
        &[("app", inputs.object), ("event", event)],
        "true",
        inputs.now,
    );
    out.errors
        .extend(errors.into_iter().map(|source| PlanError::Trigger {
            trigger: trigger_name.clone(),
            source,
        }));
    for (index, r) in results.iter().enumerate() {
        if !r.triggered {
            continue;
        }
        for dest in destinations {
            let key = state::key(&trigger_name, &r.key, &event_id, dest);
            if st.contains(&key) {
                continue;
            }
            crate::send_once(
                inputs,
                &mut st,
                &mut out,
                &trigger_name,
                index,
                &r.templates,
                dest,
                key,
                Some(event),
            );
        }
    }
    out.state_changed = st != before;
    out.state = st;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::template::Commits;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[test]
    fn names() {
        assert_eq!(trigger_name("RollbackTriggered"), "on-rollback-triggered");
        assert_eq!(trigger_name("SLOBreach"), "on-slo-breach");
        assert_eq!(trigger_name("AnalysisRunFailed"), "on-analysis-run-failed");
        assert_eq!(trigger_for("Synced"), None);
        assert!(is_event_trigger("on-rollout-paused"));
        assert!(!is_event_trigger("on-sync-succeeded"));
    }

    #[test]
    fn once_per_event_with_the_event_in_templates() {
        let cm: BTreeMap<String, String> = [
            ("service.webhook.hook", "url: https://hooks.example.com/x\n"),
            (
                "template.rollback",
                "webhook:\n  hook:\n    method: POST\n    body: '{\"app\": \"{{.app.metadata.name}}\", \"reason\": \"{{.event.reason}}\", \"message\": \"{{.event.message}}\"}'\n",
            ),
            ("trigger.on-rollback-triggered", "- send: [rollback]\n"),
            ("trigger.on-sync-succeeded", "- when: 'true'\n  send: [rollback]\n"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let (config, errors) = Config::parse(&cm, &BTreeMap::new());
        assert!(errors.is_empty(), "{errors:?}");
        let app = json!({"metadata": {"name": "model", "namespace": "argocd", "annotations": {
            "notifications.argoproj.io/subscribe.on-rollback-triggered.hook": "",
        }}});
        let event = json!({"metadata": {"name": "model.1", "uid": "u-1"}, "reason": "RollbackTriggered",
                           "message": "error_rate > 0.05"});
        let now = mooring_core::time::parse("2026-01-02T10:00:00Z").expect("time");
        let inputs = |app: &Value| {
            plan_event(
                Inputs {
                    config: &config,
                    object: app,
                    project_annotations: &BTreeMap::new(),
                    commits: &Commits::new(),
                    now,
                },
                &event,
            )
        };
        let p = inputs(&app);
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(p.sends.len(), 1);
        assert!(p.sends[0]
            .state_key
            .starts_with("u-1:on-rollback-triggered:[0]."));
        match &p.sends[0].payloads[0] {
            crate::payload::Payload::Http(m) => assert_eq!(
                String::from_utf8_lossy(&m.body),
                r#"{"app": "model", "reason": "RollbackTriggered", "message": "error_rate > 0.05"}"#
            ),
            other => panic!("{other:?}"),
        }
        // The same Event again: nothing; the state trigger plan skips event triggers.
        let mut again = app.clone();
        again["metadata"]["annotations"][state::ANNOTATION] = json!(p.annotation().expect("state"));
        assert!(inputs(&again).sends.is_empty());
        let state_plan = crate::plan(Inputs {
            config: &config,
            object: &app,
            project_annotations: &BTreeMap::new(),
            commits: &Commits::new(),
            now,
        });
        assert!(state_plan.sends.is_empty() && state_plan.errors.is_empty());
    }
}
