//! `mooring notifications …`: look at and try the notifications configuration, as
//! `argocd admin notifications` does, without waiting for an event.
//!
//! The configuration is Argo CD's, read unchanged from the control-plane namespace:
//! `argocd-notifications-cm` (`template.<name>`, `trigger.<name>`, `service.*`, …) and
//! `argocd-notifications-secret`. `template get` and `trigger get` show what is configured
//! (a key that does not parse is shown with its error, and the command exits 1);
//! `template notify` renders a template for an Application and, given `--recipient
//! SERVICE:RECIPIENT`, sends it through the configured service exactly as the controller
//! would (the same payloads, the same admin-controlled outbound client); `trigger run`
//! evaluates a trigger's conditions over an Application and shows each one's result.
//! `status` shows, per Application, its subscriptions, the delivery state the controller
//! keeps in the annotation Argo CD uses, and the recent `NotificationDelivered` /
//! `NotificationFailed` Events, so a failed delivery is visible without reading logs.

use crate::output::{emit, print_table, Output};
use anyhow::Context as _;
use clap::Subcommand;
use mooring_k8s::k8s_openapi::api::core::v1::{ConfigMap, Event, Secret};
use mooring_k8s::kube;
use mooring_k8s::kube::api::{Api, ListParams};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::ExitCode;

use mooring_notify::config::{Config, CONFIG_MAP, SECRET};
use mooring_notify::state::ANNOTATION as STATE_ANNOTATION;
use mooring_notify::subscribe::PREFIX as SUBSCRIBE_PREFIX;
/// The Event reasons the controller records for a delivery.
const EVENT_REASONS: &[&str] = &[
    mooring_controller::notifications::DELIVERED,
    mooring_controller::notifications::FAILED,
];

#[derive(Subcommand, Debug)]
pub enum NotificationsCommand {
    /// Notification templates (`template.<name>` of argocd-notifications-cm).
    Template {
        #[command(subcommand)]
        command: TemplateCommand,
    },
    /// Notification triggers (`trigger.<name>` of argocd-notifications-cm).
    Trigger {
        #[command(subcommand)]
        command: TriggerCommand,
    },
    /// Per Application: subscriptions, delivery state and the recent delivery Events.
    Status {
        /// One Application (`NAME` or `NAMESPACE/NAME`); all of the namespace without.
        app: Option<String>,
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
}

#[derive(Subcommand, Debug)]
pub enum TemplateCommand {
    /// Show the templates (all, or NAME).
    Get {
        name: Option<String>,
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Render TEMPLATE for the Application APP and print it, or send it to each
    /// `--recipient SERVICE:RECIPIENT` (a service of argocd-notifications-cm).
    Notify {
        template: String,
        /// The Application (`NAME` or `NAMESPACE/NAME`).
        app: String,
        /// `SERVICE:RECIPIENT` (e.g. `email:ml-team@example.com`, `hook:`); repeatable.
        #[arg(long = "recipient", value_name = "SERVICE:RECIPIENT")]
        recipients: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum TriggerCommand {
    /// Show the triggers (all, or NAME).
    Get {
        name: Option<String>,
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// Evaluate TRIGGER's conditions over the Application APP, now.
    Run {
        trigger: String,
        /// The Application (`NAME` or `NAMESPACE/NAME`).
        app: String,
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
}

pub async fn run(
    cmd: NotificationsCommand,
    common: crate::app::Common,
) -> anyhow::Result<ExitCode> {
    let m = crate::connect::connect(&common.management).await?;
    match cmd {
        NotificationsCommand::Template {
            command: TemplateCommand::Get { name, output },
        } => {
            let cm = config_map(&m.client, m.namespace()).await?;
            show_entries(&cm, "template", name.as_deref(), output, template_summary)
        }
        NotificationsCommand::Trigger {
            command: TriggerCommand::Get { name, output },
        } => {
            let cm = config_map(&m.client, m.namespace()).await?;
            show_entries(&cm, "trigger", name.as_deref(), output, trigger_summary)
        }
        NotificationsCommand::Template {
            command:
                TemplateCommand::Notify {
                    template,
                    app,
                    recipients,
                },
        } => {
            let config = config(&m.client, m.namespace()).await?;
            let object = app_object(&m.client, common.app_namespace(&m), &app).await?;
            notify(&m, &config, &template, &object, &recipients).await
        }
        NotificationsCommand::Trigger {
            command:
                TriggerCommand::Run {
                    trigger,
                    app,
                    output,
                },
        } => {
            let config = config(&m.client, m.namespace()).await?;
            let object = app_object(&m.client, common.app_namespace(&m), &app).await?;
            run_trigger(&config, &trigger, &object, output)
        }
        NotificationsCommand::Status { app, output } => {
            let default_ns = common.app_namespace(&m).to_string();
            status(&m.client, &default_ns, app.as_deref(), output).await
        }
    }
}

/// The data of argocd-notifications-cm (an error naming it when it is absent).
async fn config_map(client: &kube::Client, ns: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let cm = cms
        .get_opt(CONFIG_MAP)
        .await
        .with_context(|| format!("reading ConfigMap {ns}/{CONFIG_MAP}"))?
        .with_context(|| {
            format!("ConfigMap {ns}/{CONFIG_MAP} does not exist (no notifications are configured)")
        })?;
    Ok(cm.data.unwrap_or_default())
}

/// The parsed configuration (ConfigMap and Secret); keys that do not parse are warned
/// about on stderr, and an error only when the command needs them.
async fn config(client: &kube::Client, ns: &str) -> anyhow::Result<Config> {
    let cm = config_map(client, ns).await?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let secret: BTreeMap<String, String> = match secrets
        .get_opt(SECRET)
        .await
        .with_context(|| format!("reading Secret {ns}/{SECRET}"))?
    {
        Some(s) => s
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
            .chain(s.string_data.unwrap_or_default())
            .collect(),
        None => BTreeMap::new(),
    };
    let (config, errors) = Config::parse(&cm, &secret);
    for e in errors {
        eprintln!("warning: {e}");
    }
    Ok(config)
}

/// The Application named by `reference`, as JSON.
async fn app_object(
    client: &kube::Client,
    default_ns: &str,
    reference: &str,
) -> anyhow::Result<Value> {
    let (api, name) = crate::app::app_ref(client, default_ns, reference);
    crate::app::get_app(&api, name).await
}

/// `template notify`: print the rendered template, or send it to each recipient.
async fn notify(
    m: &crate::connect::Management,
    config: &Config,
    template: &str,
    object: &Value,
    recipients: &[String],
) -> anyhow::Result<ExitCode> {
    if !config.templates.contains_key(template) {
        anyhow::bail!(
            "template {template:?} is not configured ({CONFIG_MAP} has no `template.{template}`; configured: {})",
            join_or_none(config.templates.keys())
        );
    }
    let templates = vec![template.to_string()];
    let no_project = BTreeMap::new();
    let commits = mooring_notify::template::Commits::new();
    let inputs = mooring_notify::Inputs {
        config,
        object,
        project_annotations: &no_project,
        commits: &commits,
        now: mooring_core::time::now(),
    };
    if recipients.is_empty() {
        let rendered = mooring_notify::template::render(
            &config.templates,
            &templates,
            mooring_notify::template::Vars {
                object,
                context: &config.context,
                secrets: &config.secrets,
                service_type: "console",
                commits: &commits,
                event: None,
            },
        )
        .with_context(|| format!("rendering template {template:?}"))?;
        print!("{}", serde_saphyr::to_string(&rendered)?);
        return Ok(ExitCode::SUCCESS);
    }
    // The admin's outbound rule, as the controller applies it.
    let outbound = mooring_controller::outbound::Outbound::new(m.namespace());
    let settings = crate::connect::settings(&m.client, m.namespace()).await;
    outbound.set_allowlist(
        settings
            .as_ref()
            .and_then(|s| s.get(mooring_engine::outbound::CONFIG_KEY))
            .map(String::as_str),
    );
    let mut failed = false;
    for r in recipients {
        let (service, recipient) = r.split_once(':').with_context(|| {
            format!("--recipient {r:?} is not SERVICE:RECIPIENT (e.g. email:ml-team@example.com)")
        })?;
        let dest = mooring_notify::state::Destination {
            service: service.to_string(),
            recipient: recipient.to_string(),
        };
        let result = match mooring_notify::build(inputs, "cli", &templates, &dest, None) {
            Err(e) => Err(e.to_string()),
            Ok((_, payloads)) => {
                let mut result = Ok(());
                for p in &payloads {
                    if let Err(e) =
                        mooring_controller::notifications::deliver::deliver(&outbound, p).await
                    {
                        // As in the controller's Events: a service URL can carry a secret.
                        result = Err(mooring_controller::notifications::redact(&e.to_string(), p));
                        break;
                    }
                }
                result
            }
        };
        match result {
            Ok(()) => println!("{r}: delivered"),
            Err(e) => {
                failed = true;
                println!("{r}: failed: {e}");
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// One condition's result, as `trigger run` prints it.
#[derive(Serialize)]
struct ConditionRow {
    condition: usize,
    when: String,
    triggered: bool,
    #[serde(rename = "oncePer")]
    once_per: String,
    send: Vec<String>,
}

/// `trigger run`: every condition of the trigger over the app, now.
fn run_trigger(
    config: &Config,
    trigger: &str,
    object: &Value,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let conditions = config.triggers.get(trigger).with_context(|| {
        format!(
            "trigger {trigger:?} is not configured ({CONFIG_MAP} has no `trigger.{trigger}`; configured: {})",
            join_or_none(config.triggers.keys())
        )
    })?;
    let (results, errors) =
        mooring_notify::trigger::evaluate(conditions, object, mooring_core::time::now());
    let rows: Vec<ConditionRow> = results
        .iter()
        .zip(conditions)
        .enumerate()
        .map(|(i, (r, c))| ConditionRow {
            condition: i,
            when: c.when.split_whitespace().collect::<Vec<_>>().join(" "),
            triggered: r.triggered,
            once_per: r.once_per.clone(),
            send: r.templates.clone(),
        })
        .collect();
    if output == Output::Table {
        let mut table = vec![vec![
            "CONDITION".to_string(),
            "TRIGGERED".to_string(),
            "ONCEPER".to_string(),
            "SEND".to_string(),
            "WHEN".to_string(),
        ]];
        table.extend(rows.iter().map(|r| {
            vec![
                r.condition.to_string(),
                r.triggered.to_string(),
                r.once_per.clone(),
                r.send.join(","),
                r.when.clone(),
            ]
        }));
        print_table(&table);
    } else {
        emit(&rows, output)?;
    }
    for e in &errors {
        eprintln!("error: trigger {trigger}: {e}");
    }
    Ok(if errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn join_or_none<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = names.map(String::as_str).collect();
    if v.is_empty() {
        "none".to_string()
    } else {
        v.join(", ")
    }
}

/// One configured entry, as `-o json|yaml` prints it.
#[derive(Serialize)]
struct Entry {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    spec: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `template get` / `trigger get`: the `<kind>.<name>` keys, parsed, in name order.
fn show_entries(
    cm: &BTreeMap<String, String>,
    kind: &str,
    only: Option<&str>,
    output: Output,
    summary: fn(&Value) -> Vec<String>,
) -> anyhow::Result<ExitCode> {
    let prefix = format!("{kind}.");
    let entries: Vec<Entry> = cm
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(&prefix)?, v)))
        .filter(|(name, _)| only.is_none_or(|o| o == *name))
        .map(|(name, raw)| match mooring_core::yaml::parse_one(raw) {
            Ok(spec) => Entry {
                name: name.to_string(),
                spec: Some(spec),
                error: None,
            },
            Err(e) => Entry {
                name: name.to_string(),
                spec: None,
                error: Some(format!("{CONFIG_MAP} key `{kind}.{name}`: {e}")),
            },
        })
        .collect();
    if let (Some(name), true) = (only, entries.is_empty()) {
        anyhow::bail!(
            "{kind} {name:?} is not configured ({CONFIG_MAP} has no `{kind}.{name}`; configured: {})",
            names(cm, &prefix)
        );
    }
    let failed = entries.iter().any(|e| e.error.is_some());
    if output == Output::Table {
        let mut rows = vec![match kind {
            "template" => vec!["NAME".into(), "FIELDS".into(), "PREVIEW".into()],
            _ => vec![
                "NAME".into(),
                "CONDITIONS".into(),
                "SEND".into(),
                "ONCEPER".into(),
                "WHEN".into(),
            ],
        }];
        for e in &entries {
            let mut row = vec![e.name.clone()];
            match (&e.spec, &e.error) {
                (Some(spec), _) => row.extend(summary(spec)),
                (None, Some(err)) => row.push(format!("error: {err}")),
                (None, None) => {}
            }
            rows.push(row);
        }
        print_table(&rows);
    } else {
        emit(&entries, output)?;
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn names(cm: &BTreeMap<String, String>, prefix: &str) -> String {
    let names: Vec<&str> = cm.keys().filter_map(|k| k.strip_prefix(prefix)).collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

/// A template's fields (`message`, `email`, `slack`, …) and its message's first line.
fn template_summary(spec: &Value) -> Vec<String> {
    let fields = spec
        .as_object()
        .map(|m| m.keys().cloned().collect::<Vec<_>>().join(","))
        .unwrap_or_default();
    let preview = spec
        .get("message")
        .and_then(Value::as_str)
        .and_then(|m| m.lines().find(|l| !l.trim().is_empty()))
        .unwrap_or("")
        .trim()
        .to_string();
    vec![fields, preview]
}

/// A trigger's conditions: how many, the templates they send, `oncePer`, the first `when`.
fn trigger_summary(spec: &Value) -> Vec<String> {
    let conditions = spec.as_array().cloned().unwrap_or_default();
    let join = |field: &str| {
        let mut v: Vec<String> = conditions
            .iter()
            .flat_map(|c| match c.get(field) {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
                Some(Value::String(s)) => vec![s.clone()],
                _ => vec![],
            })
            .collect();
        v.dedup();
        v.join(",")
    };
    let when = conditions
        .first()
        .and_then(|c| c.get("when"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    vec![
        conditions.len().to_string(),
        join("send"),
        join("oncePer"),
        when,
    ]
}

/// `status`: one Application's notifications.
#[derive(Serialize)]
struct AppStatus {
    application: String,
    /// `<trigger>.<service>` (or `<service>` for the default triggers) → recipients.
    subscriptions: BTreeMap<String, String>,
    /// The delivery state annotation: key → time delivered (RFC 3339).
    delivered: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state_error: Option<String>,
    events: Vec<EventRow>,
}

#[derive(Serialize)]
struct EventRow {
    time: String,
    reason: String,
    message: String,
}

async fn status(
    client: &kube::Client,
    default_ns: &str,
    app: Option<&str>,
    output: Output,
) -> anyhow::Result<ExitCode> {
    let (objects, ns) = match app {
        Some(reference) => {
            let (api, name) = crate::app::app_ref(client, default_ns, reference);
            let ns = mooring_core::app::qualified_name(reference, default_ns)
                .0
                .to_string();
            (vec![crate::app::get_app(&api, name).await?], ns)
        }
        None => {
            let list = crate::app::apps(client, default_ns)
                .list(&ListParams::default())
                .await
                .with_context(|| format!("listing applications in {default_ns}"))?;
            (
                list.items
                    .into_iter()
                    .map(serde_json::to_value)
                    .collect::<Result<Vec<_>, _>>()?,
                default_ns.to_string(),
            )
        }
    };
    let events: Api<Event> = Api::namespaced(client.clone(), &ns);
    let events = events
        .list(&ListParams::default())
        .await
        .with_context(|| format!("listing events in {ns}"))?
        .items;
    let mut out = Vec::new();
    for a in &objects {
        let name = a
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let annotations = a
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let subscriptions = annotations
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    k.strip_prefix(SUBSCRIBE_PREFIX)?.to_string(),
                    v.as_str()?.to_string(),
                ))
            })
            .collect();
        let (delivered, state_error) =
            match annotations.get(STATE_ANNOTATION).and_then(Value::as_str) {
                None => (BTreeMap::new(), None),
                Some(raw) => match delivery_state(raw) {
                    Ok(d) => (d, None),
                    Err(e) => (
                        BTreeMap::new(),
                        Some(format!("annotation {STATE_ANNOTATION}: {e}")),
                    ),
                },
            };
        let mut rows: Vec<EventRow> = events
            .iter()
            .filter(|e| {
                e.involved_object.kind.as_deref() == Some("Application")
                    && e.involved_object.name.as_deref() == Some(name)
                    && e.reason
                        .as_deref()
                        .is_some_and(|r| EVENT_REASONS.contains(&r))
            })
            .map(|e| EventRow {
                time: e
                    .last_timestamp
                    .as_ref()
                    .or(e.first_timestamp.as_ref())
                    .map(|t| mooring_core::time::format(t.0))
                    .unwrap_or_default(),
                reason: e.reason.clone().unwrap_or_default(),
                message: e.message.clone().unwrap_or_default(),
            })
            .collect();
        rows.sort_by(|a, b| a.time.cmp(&b.time));
        out.push(AppStatus {
            application: name.to_string(),
            subscriptions,
            delivered,
            state_error,
            events: rows,
        });
    }
    let failed = out.iter().any(|s| s.state_error.is_some());
    if output != Output::Table {
        emit(&out, output)?;
    } else {
        for (i, s) in out.iter().enumerate() {
            if i > 0 {
                println!();
            }
            println!("Application: {}", s.application);
            let mut rows = vec![vec!["SUBSCRIPTION".to_string(), "RECIPIENTS".to_string()]];
            rows.extend(
                s.subscriptions
                    .iter()
                    .map(|(k, v)| vec![k.clone(), v.clone()]),
            );
            if rows.len() == 1 {
                println!("no subscriptions (annotations {SUBSCRIBE_PREFIX}<trigger>.<service>)");
            } else {
                print_table(&rows);
            }
            if let Some(e) = &s.state_error {
                println!("delivery state: error: {e}");
            }
            if !s.delivered.is_empty() {
                // The state records what was sent (at most once per key), not whether the
                // service accepted it: the Events below say that.
                let mut rows = vec![vec![
                    "SENT (never again for this key)".to_string(),
                    "AT".to_string(),
                ]];
                rows.extend(s.delivered.iter().map(|(k, v)| vec![k.clone(), v.clone()]));
                print_table(&rows);
            }
            if s.events.is_empty() {
                println!("no delivery events");
            } else {
                let mut rows = vec![vec![
                    "TIME".to_string(),
                    "REASON".to_string(),
                    "MESSAGE".to_string(),
                ]];
                rows.extend(
                    s.events
                        .iter()
                        .map(|e| vec![e.time.clone(), e.reason.clone(), e.message.clone()]),
                );
                print_table(&rows);
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The delivery state annotation (`{"<key>": <unix seconds>, …}`) with readable times.
fn delivery_state(raw: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let map: BTreeMap<String, i64> = serde_json::from_str(raw)
        .with_context(|| format!("not a JSON map of keys to Unix times: {raw:?}"))?;
    map.into_iter()
        .map(|(k, t)| {
            let at = mooring_core::time::from_unix(t)?;
            Ok((k, mooring_core::time::format(at)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn trigger_summary_of_argo_cds_on_sync_succeeded() {
        let spec = mooring_core::yaml::parse_one(
            "- description: Application syncing has succeeded\n  send:\n  - app-sync-succeeded\n  when: app.status.operationState != nil and app.status.operationState.phase in ['Succeeded']\n",
        )
        .expect("yaml");
        assert_eq!(
            trigger_summary(&spec),
            vec![
                "1".to_string(),
                "app-sync-succeeded".to_string(),
                String::new(),
                "app.status.operationState != nil and app.status.operationState.phase in ['Succeeded']".to_string(),
            ]
        );
    }

    #[test]
    fn template_summary_lists_fields_and_the_first_line() {
        let spec = json!({"message": "\n{{if eq .serviceType \"slack\"}}:white_check_mark:{{end}} Application synced.\n", "email": {"subject": "s"}});
        assert_eq!(
            template_summary(&spec),
            vec![
                "message,email".to_string(),
                "{{if eq .serviceType \"slack\"}}:white_check_mark:{{end}} Application synced."
                    .to_string()
            ]
        );
    }

    #[test]
    fn delivery_state_is_read_and_a_broken_one_named() {
        let d =
            delivery_state(r#"{"abc:on-sync-succeeded:webhook:hook": 1796544000}"#).expect("state");
        assert_eq!(
            d["abc:on-sync-succeeded:webhook:hook"],
            "2026-12-06T08:00:00Z"
        );
        let err = delivery_state("nope").expect_err("broken");
        assert!(err.to_string().contains("\"nope\""), "{err}");
    }
}
