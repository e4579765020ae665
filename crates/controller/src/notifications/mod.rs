//! Notifications (Argo CD Notifications' format): the controller side.
//!
//! `mooring_notify` decides what to send ([`mooring_notify::plan`]); this module watches
//! the Applications of the control-plane namespace, the AppProjects there (their
//! subscriptions apply to their apps) and `argocd-notifications-cm` /
//! `argocd-notifications-secret`, evaluates every app whenever one of them changes, and
//! for each [`mooring_notify::Send`] (a delivery):
//!
//! 1. writes the delivery state (`notified.notifications.argoproj.io`) on the Application
//!    **first**, with the resourceVersion it evaluated (a concurrent change re-evaluates
//!    instead), so a restart or a second controller never sends the same notification
//!    twice: delivery is at most once per `oncePer` value, as the annotation promises;
//! 2. delivers each payload through [`deliver::deliver`] (the admin's outbound client)
//!    in a task of its own, [`ATTEMPTS`] attempts with exponential backoff from
//!    [`FIRST_BACKOFF`], so a slow receiver never blocks evaluation, a sync or the
//!    reconcile loop;
//! 3. records the outcome: a `NotificationDelivered` (Normal) or `NotificationFailed`
//!    (Warning) Event on the Application naming trigger, service, recipient (and the
//!    error), and `mooring_notifications_deliveries_total{trigger,service,result}`.
//!
//! A configuration problem (a key that does not parse, a `$secret` that does not exist, a
//! subscribed trigger or service that is not configured, a template that does not render)
//! is a Warning Event `NotificationConfigError` on the app concerned and a log line, once
//! per distinct message, never a crash; the rest of the configuration keeps working.
//! Without `argocd-notifications-cm` nothing is evaluated.
//!
//! Mooring's own events are triggers too ([`mooring_notify::event`]): a Kubernetes Event
//! about an Application in the control-plane namespace whose reason is one of
//! [`mooring_notify::event::REASONS`] (`RollbackTriggered`, `SLOBreach`, …; recorded by
//! any Mooring component but this one) is evaluated once, as the trigger
//! `on-<reason>`, delivered once per Event (its uid is the state's `oncePer`).

pub mod deliver;

use crate::events::{self, EventType};
use crate::Context;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use mooring_k8s::k8s_openapi::api::core::v1::{ConfigMap, Secret};
use mooring_k8s::kube;
use mooring_notify::config::{Config, CONFIG_MAP, SECRET};
use mooring_notify::{state, template::Commits, Inputs, PlanError, Send as Delivery};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Delivery attempts per payload.
pub const ATTEMPTS: u32 = 3;
/// Wait after the first failed attempt; doubled after each further one.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The component Events are recorded by.
const COMPONENT: &str = "mooring-notifications";
/// The Event reason of a delivered notification (`mooring notifications status` lists it).
pub const DELIVERED: &str = "NotificationDelivered";
/// The Event reason of a notification that could not be delivered.
pub const FAILED: &str = "NotificationFailed";
/// Distinct problems remembered as already reported (then forgotten, and reported again).
const MAX_REPORTED: usize = 10_000;

/// What to evaluate.
#[derive(Debug)]
enum Wake {
    /// One Application (by name, in the control-plane namespace) changed.
    App(String),
    /// An Application is gone.
    Gone(String),
    /// The configuration or a project changed: every app.
    All,
    /// A Kubernetes Event about an Application whose reason is an event trigger.
    Event(Value),
}

/// Start the notification loop: the watches and the evaluator.
pub fn start(ctx: Arc<Context>) -> Vec<tokio::task::JoinHandle<()>> {
    let (tx, rx) = mpsc::unbounded_channel();
    let ns = ctx.namespace().to_string();
    let client = ctx.management.client().clone();
    let apps: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns,
        &mooring_k8s::resources::application_resource(),
    );
    let projects: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        &ns,
        &mooring_k8s::resources::appproject_resource(),
    );
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns);
    // Every namespace: Events about Applications are in the control plane's, Events about
    // Rollouts (with `related` naming their Application) in the Rollouts' namespaces.
    let events: Api<DynamicObject> = Api::all_with(
        client,
        &kube::core::ApiResource::from_gvk_with_plural(
            &kube::core::GroupVersionKind::gvk("", "v1", "Event"),
            "events",
        ),
    );
    vec![
        tokio::spawn(watch(apps, tx.clone(), |name, deleted| {
            Some(if deleted {
                Wake::Gone(name.to_string())
            } else {
                Wake::App(name.to_string())
            })
        })),
        tokio::spawn(watch(projects, tx.clone(), |_, _| Some(Wake::All))),
        tokio::spawn(watch(cms, tx.clone(), |name, _| {
            (name == CONFIG_MAP).then_some(Wake::All)
        })),
        tokio::spawn(watch(secrets, tx.clone(), |name, _| {
            (name == SECRET).then_some(Wake::All)
        })),
        tokio::spawn(watch_events(events, ns.clone(), tx)),
        tokio::spawn(run(ctx, rx)),
    ]
}

async fn watch<K>(
    api: Api<K>,
    tx: mpsc::UnboundedSender<Wake>,
    wake: impl Fn(&str, bool) -> Option<Wake> + Send + 'static,
) where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + mooring_k8s::k8s_openapi::serde::de::DeserializeOwned
        + Send
        + 'static,
{
    use futures::StreamExt;
    let mut stream = kube::runtime::watcher(api, Default::default())
        .default_backoff()
        .boxed();
    while let Some(ev) = stream.next().await {
        let (o, deleted) = match ev {
            Ok(
                kube::runtime::watcher::Event::Apply(o)
                | kube::runtime::watcher::Event::InitApply(o),
            ) => (o, false),
            Ok(kube::runtime::watcher::Event::Delete(o)) => (o, true),
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!("notifications watch: {e}");
                continue;
            }
        };
        let name = o.meta().name.clone().unwrap_or_default();
        if let Some(w) = wake(&name, deleted) {
            if tx.send(w).is_err() {
                return;
            }
        }
    }
}

/// Events about Applications whose reason is an event trigger ([`mooring_notify::event`]),
/// except the ones this module records itself.
async fn watch_events(api: Api<DynamicObject>, ns: String, tx: mpsc::UnboundedSender<Wake>) {
    use futures::StreamExt;
    let mut stream = kube::runtime::watcher(api, Default::default())
        .default_backoff()
        .boxed();
    while let Some(ev) = stream.next().await {
        let o = match ev {
            Ok(
                kube::runtime::watcher::Event::Apply(o)
                | kube::runtime::watcher::Event::InitApply(o),
            ) => o,
            Ok(_) => continue,
            Err(e) => {
                tracing::debug!("notifications: watching Events: {e}");
                continue;
            }
        };
        let Ok(v) = serde_json::to_value(&o) else {
            continue;
        };
        let about_app = event_app(&v, &ns).is_some();
        let ours = v.pointer("/reportingComponent").and_then(Value::as_str) == Some(COMPONENT);
        let reason = v
            .pointer("/reason")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if about_app
            && !ours
            && mooring_notify::event::trigger_for(reason).is_some()
            && tx.send(Wake::Event(v)).is_err()
        {
            return;
        }
    }
}

/// The Application (in the control-plane namespace `ns`) an Event is about: its
/// `involvedObject`, or, for an Event about something an Application deploys (a Rollout),
/// its `related` Application.
fn event_app(e: &Value, ns: &str) -> Option<String> {
    let app_in = |o: &Value, default_ns: Option<&str>| {
        let kind = o.get("kind").and_then(Value::as_str);
        let namespace = o
            .get("namespace")
            .and_then(Value::as_str)
            .or(default_ns)
            .unwrap_or_default();
        let name = o.get("name").and_then(Value::as_str).unwrap_or_default();
        (kind == Some("Application") && namespace == ns && !name.is_empty())
            .then(|| name.to_string())
    };
    e.get("involvedObject")
        .and_then(|o| app_in(o, None))
        .or_else(|| e.get("related").and_then(|o| app_in(o, Some(ns))))
}

async fn run(ctx: Arc<Context>, mut rx: mpsc::UnboundedReceiver<Wake>) {
    let mut known: BTreeSet<String> = BTreeSet::new();
    let mut reported: HashSet<String> = HashSet::new();
    while let Some(first) = rx.recv().await {
        // Everything queued meanwhile is evaluated once.
        let mut dirty: BTreeSet<String> = BTreeSet::new();
        let mut events: Vec<Value> = Vec::new();
        let mut all = false;
        let mut next = Some(first);
        while let Some(w) = next {
            match w {
                Wake::App(name) => {
                    known.insert(name.clone());
                    dirty.insert(name);
                }
                Wake::Gone(name) => {
                    known.remove(&name);
                    dirty.remove(&name);
                }
                Wake::All => all = true,
                Wake::Event(e) => events.push(e),
            }
            next = rx.try_recv().ok();
        }
        if all {
            dirty.extend(known.iter().cloned());
        }
        if dirty.is_empty() && events.is_empty() {
            continue;
        }
        let loaded = load_config(&ctx).await;
        let Some((config, config_errors)) = loaded else {
            continue;
        };
        let work = dirty
            .into_iter()
            .map(|name| (name, None))
            .chain(events.into_iter().map(|e| {
                let name = event_app(&e, ctx.namespace()).unwrap_or_default();
                (name, Some(e))
            }));
        for (name, event) in work {
            let event = event.as_ref();
            match evaluate(&ctx, &name, event, &config, &config_errors, &mut reported).await {
                Ok(()) => {}
                Err(Retry) => {
                    // The app changed under us (or the API failed): evaluate it again.
                    if let Err(e) =
                        requeue(&ctx, &name, event, &config, &config_errors, &mut reported).await
                    {
                        tracing::debug!("notifications for {name}: {e}");
                    }
                }
            }
        }
        if reported.len() > MAX_REPORTED {
            reported.clear();
        }
    }
}

/// The evaluation must be retried.
struct Retry;

async fn requeue(
    ctx: &Arc<Context>,
    name: &str,
    event: Option<&Value>,
    config: &Config,
    config_errors: &[String],
    reported: &mut HashSet<String>,
) -> Result<(), String> {
    for _ in 0..5 {
        if evaluate(ctx, name, event, config, config_errors, reported)
            .await
            .is_ok()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err("the Application kept changing; the next change evaluates it again".into())
}

/// The configuration, or `None` without `argocd-notifications-cm`.
async fn load_config(ctx: &Context) -> Option<(Config, Vec<String>)> {
    let client = ctx.management.client().clone();
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ctx.namespace());
    let cm = match cms.get_opt(CONFIG_MAP).await {
        Ok(Some(cm)) => cm,
        Ok(None) => return None,
        Err(e) => {
            tracing::warn!("reading {CONFIG_MAP}: {e}");
            return None;
        }
    };
    let secrets: Api<Secret> = Api::namespaced(client, ctx.namespace());
    let secret: BTreeMap<String, String> = match secrets.get_opt(SECRET).await {
        Ok(Some(s)) => s
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
            .chain(s.string_data.unwrap_or_default())
            .collect(),
        Ok(None) => BTreeMap::new(),
        Err(e) => {
            tracing::warn!("reading {SECRET}: {e}");
            BTreeMap::new()
        }
    };
    let (config, errors) = Config::parse(&cm.data.unwrap_or_default(), &secret);
    Some((config, errors.iter().map(ToString::to_string).collect()))
}

/// Evaluate one Application: its state triggers, or with `event` the event trigger of
/// that Event.
async fn evaluate(
    ctx: &Arc<Context>,
    name: &str,
    event: Option<&Value>,
    config: &Config,
    config_errors: &[String],
    reported: &mut HashSet<String>,
) -> Result<(), Retry> {
    let client = ctx.management.client().clone();
    let apps: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        ctx.namespace(),
        &mooring_k8s::resources::application_resource(),
    );
    let app = match apps.get_opt(name).await {
        Ok(Some(a)) => a,
        Ok(None) => return Ok(()),
        Err(e) => {
            tracing::debug!("notifications: reading Application {name}: {e}");
            return Err(Retry);
        }
    };
    let resource_version = app.metadata.resource_version.clone();
    let Ok(object) = serde_json::to_value(&app) else {
        return Ok(());
    };
    // Configuration problems are reported on the apps that subscribe to something.
    let subscribes = app.metadata.annotations.as_ref().is_some_and(|a| {
        a.keys()
            .any(|k| k.starts_with(mooring_notify::subscribe::PREFIX))
    }) || !config.subscriptions.is_empty();
    if subscribes {
        for e in config_errors {
            report(ctx, &object, reported, "NotificationConfigError", e).await;
        }
    }
    let project = object
        .pointer("/spec/project")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .unwrap_or(mooring_core::project::DEFAULT_PROJECT);
    let projects: Api<DynamicObject> = Api::namespaced_with(
        client,
        ctx.namespace(),
        &mooring_k8s::resources::appproject_resource(),
    );
    let project_annotations: BTreeMap<String, String> = match projects.get_opt(project).await {
        Ok(Some(p)) => p.metadata.annotations.unwrap_or_default(),
        Ok(None) => BTreeMap::new(),
        Err(e) => {
            tracing::debug!("notifications: reading AppProject {project}: {e}");
            return Err(Retry);
        }
    };
    let inputs = Inputs {
        config,
        object: &object,
        project_annotations: &project_annotations,
        commits: &Commits::new(),
        now: mooring_core::time::now(),
    };
    let plan = match event {
        Some(e) => mooring_notify::event::plan_event(inputs, e),
        None => mooring_notify::plan(inputs),
    };
    for e in &plan.errors {
        match e {
            // A condition over a field the app does not have yet (a new app without
            // status) is common and not a configuration error: logged, not an Event.
            PlanError::Trigger { .. } => {
                if reported.insert(format!("{name}\0{e}")) {
                    tracing::info!("notifications for Application {name}: {e}");
                }
            }
            _ => {
                report(
                    ctx,
                    &object,
                    reported,
                    "NotificationConfigError",
                    &e.to_string(),
                )
                .await
            }
        }
    }
    if plan.state_changed {
        let patch = json!({"metadata": {
            "resourceVersion": resource_version,
            "annotations": {state::ANNOTATION: plan.annotation()},
        }});
        if let Err(e) = apps
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::debug!("notifications: recording the delivery state of {name}: {e}");
            // Nothing is sent unless the state that says it was sent is written.
            return Err(Retry);
        }
        if !plan.sends.is_empty() {
            crate::crash::point(crate::crash::Point::NotificationRecorded);
        }
    }
    for send in plan.sends {
        tokio::spawn(deliver_send(ctx.clone(), object.clone(), send));
    }
    Ok(())
}

/// Report a problem once (Event and log).
async fn report(
    ctx: &Context,
    object: &Value,
    reported: &mut HashSet<String>,
    reason: &str,
    message: &str,
) {
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !reported.insert(format!("{name}\0{message}")) {
        return;
    }
    tracing::warn!("notifications for Application {name}: {message}");
    events::record(ctx, object, EventType::Warning, reason, message, COMPONENT).await;
}

/// An error message without the payload's full URL: a service URL can carry a secret in
/// its path (Slack's incoming webhooks, tokens in query strings), and Events and logs are
/// read by people who must not see it. Scheme, host and port stay.
pub fn redact(message: &str, payload: &mooring_notify::payload::Payload) -> String {
    let mooring_notify::payload::Payload::Http(m) = payload else {
        return message.to_string();
    };
    let shown = match reqwest::Url::parse(&m.url) {
        Ok(u) => format!(
            "{}://{}{}/…",
            u.scheme(),
            u.host_str().unwrap_or_default(),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "the service URL".to_string(),
    };
    message.replace(&m.url, &shown)
}

/// Deliver every payload of one send, with retries, then record the outcome.
async fn deliver_send(ctx: Arc<Context>, object: Value, send: Delivery) {
    let destination = format!("{}:{}", send.service, send.recipient);
    // Every payload is tried (each with retries): one failing message does not hold back
    // the others.
    let mut failures = Vec::new();
    for payload in &send.payloads {
        let mut wait = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            match deliver::deliver(&ctx.outbound, payload).await {
                Ok(()) => break,
                Err(e) if attempt == ATTEMPTS => failures.push(redact(&e.to_string(), payload)),
                Err(_) => {
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
            }
        }
    }
    // Alertmanager: one POST per target of an HA cluster, which gossips the alert; as in
    // Argo CD, the alert is delivered when one target accepted it.
    let delivered = if send.service_type == "alertmanager" {
        failures.len() < send.payloads.len()
    } else {
        failures.is_empty()
    };
    let failure = (!delivered).then(|| failures.join("; "));
    let (type_, reason, result, message) = match &failure {
        None => (
            EventType::Normal,
            DELIVERED,
            "success",
            format!(
                "trigger {}: notified {destination} (template {}){}",
                send.trigger,
                send.templates.join(", "),
                if failures.is_empty() {
                    String::new()
                } else {
                    format!("; not every target accepted it: {}", failures.join("; "))
                }
            ),
        ),
        Some(e) => (
            EventType::Warning,
            FAILED,
            "failure",
            format!(
                "trigger {}: notifying {destination} failed after {ATTEMPTS} attempts: {e}",
                send.trigger
            ),
        ),
    };
    if failure.is_some() {
        tracing::warn!("{message}");
    }
    ctx.metrics
        .record_notification(&send.trigger, &send.service, result);
    events::record(&ctx, &object, type_, reason, &message, COMPONENT).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use mooring_notify::payload::{HttpMessage, Payload};

    #[test]
    fn delivery_errors_do_not_show_secret_urls() {
        let url = "https://hooks.slack.com/services/T000/B000/s3cr3t?token=x";
        let p = Payload::Http(HttpMessage {
            method: "POST".into(),
            url: url.into(),
            headers: vec![],
            body: vec![],
            insecure_skip_verify: false,
            expect_ok_field: false,
        });
        let m = redact(&format!("{url} answered HTTP 404"), &p);
        assert_eq!(m, "https://hooks.slack.com/… answered HTTP 404");
        assert!(!m.contains("s3cr3t"));
    }
}
