//! Notifications in Argo CD Notifications' format, the pure part.
//!
//! Platform teams already configure Argo CD Notifications: `argocd-notifications-cm`
//! (`service.<type>[.<name>]`, `template.<name>`, `trigger.<name>`, `defaultTriggers`,
//! `subscriptions`) and `argocd-notifications-secret` in the control-plane namespace, and
//! they subscribe Applications and AppProjects with the annotation
//! `notifications.argoproj.io/subscribe.<trigger>.<service>: <recipients>`. Mooring reads
//! that configuration unchanged.
//!
//! This crate decides, without I/O, *what* to send: it parses the configuration
//! ([`config`]), finds an object's subscriptions ([`subscribe`]), evaluates triggers
//! ([`trigger`]: expr-lang `when`, `oncePer`) against the delivery state kept in the
//! object's annotation ([`state`]), renders templates ([`template`]: Go templates) and
//! turns each (service, recipient, rendered notification) into [`payload::Payload`]s
//! ([`services`]). [`plan`] puts these together. The controller
//! (`mooring_controller::notifications`) watches objects, writes the new state, sends the
//! payloads through the admin-controlled outbound client and reports the outcome.

pub mod config;
pub mod event;
pub mod payload;
pub mod services;
pub mod state;
pub mod subscribe;
pub mod template;
pub mod trigger;

use config::Config;
use payload::Payload;
use serde_json::Value;
use state::{Destination, State};
use std::collections::BTreeMap;
use template::Commits;

/// Everything [`plan`] reads.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub config: &'a Config,
    /// The notified object (an Application) as JSON, annotations included (the delivery
    /// state is read from them).
    pub object: &'a Value,
    /// The annotations of the object's AppProject (subscriptions for every app of it).
    pub project_annotations: &'a BTreeMap<String, String>,
    /// Commit metadata for `call .repo.GetCommitMetadata`.
    pub commits: &'a Commits,
    /// When the evaluation happens (`time.Now()`, delivery times in the state).
    pub now: mooring_core::time::Timestamp,
}

/// One notification to send: a condition of a trigger fired for one destination.
#[derive(Debug, Clone, PartialEq)]
pub struct Send {
    pub trigger: String,
    /// Index of the condition in the trigger's list.
    pub condition: usize,
    /// The service's name (as subscribed) and its type.
    pub service: String,
    pub service_type: String,
    pub recipient: String,
    /// The templates rendered (the condition's `send`).
    pub templates: Vec<String>,
    /// The delivery-state key recorded for it.
    pub state_key: String,
    pub payloads: Vec<Payload>,
}

/// Why part of an evaluation could not be done; the rest still is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error(
        "trigger `{trigger}` is subscribed to but not configured ({} has no `trigger.{trigger}`)",
        config::CONFIG_MAP
    )]
    UnknownTrigger { trigger: String },
    #[error("trigger `{trigger}`: {source}")]
    Trigger {
        trigger: String,
        #[source]
        source: trigger::TriggerError,
    },
    #[error("trigger `{trigger}` to service `{service}`: the service is not configured ({} has no `service.<type>.{service}` or `service.{service}`)", config::CONFIG_MAP)]
    UnknownService { trigger: String, service: String },
    #[error("trigger `{trigger}` to {service}:{recipient}: {source}")]
    Template {
        trigger: String,
        service: String,
        recipient: String,
        #[source]
        source: Box<template::TemplateError>,
    },
    #[error("trigger `{trigger}` to {service}:{recipient}: {source}")]
    Service {
        trigger: String,
        service: String,
        recipient: String,
        #[source]
        source: Box<services::ServiceError>,
    },
}

/// The outcome of one evaluation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    pub sends: Vec<Send>,
    /// The delivery state after this evaluation (with every send marked delivered).
    pub state: State,
    /// Whether the state differs from the object's annotation.
    pub state_changed: bool,
    pub errors: Vec<PlanError>,
}

impl Plan {
    /// The annotation value to write (`None`: remove it).
    pub fn annotation(&self) -> Option<String> {
        self.state.to_annotation()
    }
}

fn string_map(v: Option<&Value>) -> BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Evaluate every subscribed trigger of the object and decide what to send.
///
/// As notifications-engine: a condition that is not true clears its (non-`oncePer`) state
/// keys so it can fire again; a true condition sends to each destination whose state key
/// is absent and records the key. A destination whose notification cannot be built (a
/// missing template or service, a template error) is reported and not recorded, so a
/// fixed configuration sends it at the next evaluation.
pub fn plan(inputs: Inputs<'_>) -> Plan {
    let meta = inputs.object.get("metadata");
    let labels = string_map(meta.and_then(|m| m.get("labels")));
    let annotations = string_map(meta.and_then(|m| m.get("annotations")));
    let mut out = Plan::default();
    let (mut st, err) = State::parse(annotations.get(state::ANNOTATION).map(String::as_str));
    if let Some(e) = err {
        out.errors.push(e.into());
    }
    let before = st.clone();
    let dests = subscribe::destinations(
        inputs.config,
        &labels,
        &annotations,
        inputs.project_annotations,
    );
    for (trigger_name, destinations) in &dests {
        // Event triggers fire per Event ([`event::plan_event`]), not on the app's state.
        if event::is_event_trigger(trigger_name) {
            continue;
        }
        let Some(conditions) = inputs.config.triggers.get(trigger_name) else {
            out.errors.push(PlanError::UnknownTrigger {
                trigger: trigger_name.clone(),
            });
            continue;
        };
        let (results, errors) = trigger::evaluate(conditions, inputs.object, inputs.now);
        out.errors
            .extend(errors.into_iter().map(|source| PlanError::Trigger {
                trigger: trigger_name.clone(),
                source,
            }));
        for (index, r) in results.iter().enumerate() {
            for dest in destinations {
                let key = state::key(trigger_name, &r.key, &r.once_per, dest);
                if !r.triggered {
                    st.clear(&key, &r.once_per);
                    continue;
                }
                if st.contains(&key) {
                    continue;
                }
                send_once(
                    inputs,
                    &mut st,
                    &mut out,
                    trigger_name,
                    index,
                    &r.templates,
                    dest,
                    key,
                    None,
                );
            }
        }
    }
    out.state_changed = st != before;
    out.state = st;
    out
}

/// Build the send of one condition to one destination and mark it delivered in the state
/// (the state is written before delivery: at most once), or record why it cannot be built.
#[allow(clippy::too_many_arguments)]
pub(crate) fn send_once(
    inputs: Inputs<'_>,
    st: &mut State,
    out: &mut Plan,
    trigger_name: &str,
    condition: usize,
    templates: &[String],
    dest: &Destination,
    key: String,
    event: Option<&Value>,
) {
    match build(inputs, trigger_name, templates, dest, event) {
        Ok((service_type, payloads)) => {
            st.mark(&key, inputs.now.as_second());
            out.sends.push(Send {
                trigger: trigger_name.to_string(),
                condition,
                service: dest.service.clone(),
                service_type,
                recipient: dest.recipient.clone(),
                templates: templates.to_vec(),
                state_key: key,
                payloads,
            });
        }
        Err(e) => out.errors.push(e),
    }
}

/// Render a condition's templates for one destination and build its payloads.
pub fn build(
    inputs: Inputs<'_>,
    trigger_name: &str,
    templates: &[String],
    dest: &Destination,
    event: Option<&Value>,
) -> Result<(String, Vec<Payload>), PlanError> {
    let Some(service) = inputs.config.services.get(&dest.service) else {
        return Err(PlanError::UnknownService {
            trigger: trigger_name.to_string(),
            service: dest.service.clone(),
        });
    };
    let mut notification = template::render(
        &inputs.config.templates,
        templates,
        template::Vars {
            object: inputs.object,
            context: &inputs.config.context,
            secrets: &inputs.config.secrets,
            service_type: &service.service_type,
            commits: inputs.commits,
            event,
        },
    )
    .map_err(|source| PlanError::Template {
        trigger: trigger_name.to_string(),
        service: dest.service.clone(),
        recipient: dest.recipient.clone(),
        source: Box::new(source),
    })?;
    // What the send adds (Alertmanager's `startsAt` and `alertname`, Grafana's `time`):
    // the template whose alertmanager section is used (the last that has one), else the
    // last template.
    let template_name = templates
        .iter()
        .rev()
        .find(|n| {
            inputs
                .config
                .templates
                .get(*n)
                .is_some_and(|t| t.get("alertmanager").is_some())
        })
        .or(templates.last())
        .map(String::as_str)
        .unwrap_or_default();
    services::attach_send(&mut notification, template_name, inputs.now);
    let payloads = services::payloads(
        &service.service_type,
        &dest.service,
        &service.config,
        &notification,
        &dest.recipient,
    )
    .map_err(|source| PlanError::Service {
        trigger: trigger_name.to_string(),
        service: dest.service.clone(),
        recipient: dest.recipient.clone(),
        source: Box::new(source),
    })?;
    Ok((service.service_type.clone(), payloads))
}
