//! Verified rollback: `mooring app rollback`, and the report an operator's runbook wants.
//!
//! `argocd app rollback` returns when the sync operation ends; teams then check by hand
//! that the app is at the revision asked for, Synced and Healthy, look at the pods, and
//! tell their monitoring (`rollback_completed`). [`run`] does all of it: it requests the
//! sync to a history entry's revision(s) or to a given commit, follows it until
//! [`mooring_engine::rollback::verify::progress`] says done or failed, or the timeout
//! passes (then the report names every resource that is not healthy), and returns a
//! [`RollbackReport`]. The caller prints it, records it as a Kubernetes Event on the
//! Application ([`record_event`]: `RollbackCompleted` / `RollbackFailed`, which
//! notifications subscribe to) and, when asked, POSTs [`event_body`] (the runbook's
//! `event`, `application`, `from_revision`, `to_revision`, `timestamp`) to a monitoring
//! webhook through the outbound client.
//!
//! As in Argo CD, a rollback is refused while automated sync is on (it would re-apply the
//! head of the branch at once).

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use mooring_core::app::{Application, Revisions};
use mooring_engine::rollback::verify::{progress, RollbackProgress};
use mooring_k8s::k8s_openapi::api::core::v1::Event;
use mooring_k8s::kube;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// The component Events and operations are attributed to.
pub const COMPONENT: &str = "mooring-rollback";
/// Event reasons (the runbook's event names are their snake_case, in [`event_body`]).
pub use mooring_core::rollback::{COMPLETED_REASON as COMPLETED, FAILED_REASON as FAILED};

#[derive(Debug, thiserror::Error)]
pub enum AppRollbackError {
    #[error("application {0}: {1}")]
    Read(String, String),
    #[error("application {app} has no history entry {id} (see `mooring app history {app}`)")]
    NoHistory { app: String, id: i64 },
    #[error("rollback cannot be initiated when auto-sync is enabled: disable spec.syncPolicy.automated of {0} first (as in Argo CD)")]
    Automated(String),
    #[error("application {0} has {1} sources: roll back to a history entry (`mooring app history {0}`) instead of --revision")]
    MultiSource(String, usize),
    #[error("requesting the rollback sync of {app}: {message}")]
    Request { app: String, message: String },
}

/// Where to roll back to.
#[derive(Debug, Clone, PartialEq)]
pub enum RollbackTo {
    /// An entry of `status.history` (its id).
    History(i64),
    /// A commit of the app's (single) source.
    Revision(String),
}

#[derive(Debug, Clone)]
pub struct RollbackRequest {
    /// The Application's namespace (the control plane's) and name.
    pub namespace: String,
    pub name: String,
    pub to: RollbackTo,
    pub prune: bool,
    pub timeout: Duration,
    /// Recorded as the operation's `initiatedBy.username`.
    pub initiator: String,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub struct RollbackReport {
    pub application: String,
    pub namespace: String,
    /// The app's destination (where the pods are).
    pub destination: mooring_core::app::ApplicationDestination,
    pub from_revision: String,
    pub to_revision: String,
    pub succeeded: bool,
    /// Empty on success; otherwise what is wrong (each unhealthy resource named).
    pub problems: Vec<String>,
    pub at: String,
}

impl RollbackReport {
    /// The destination namespace (where the pods are).
    pub fn destination_namespace(&self) -> &str {
        self.destination.namespace.as_deref().unwrap_or_default()
    }

    /// `rollback_completed` or `rollback_failed`.
    pub fn event_name(&self) -> &'static str {
        if self.succeeded {
            "rollback_completed"
        } else {
            "rollback_failed"
        }
    }
}

fn apps(client: &kube::Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        ns,
        &mooring_k8s::resources::application_resource(),
    )
}

async fn read(
    api: &Api<DynamicObject>,
    name: &str,
) -> Result<(Value, Application), AppRollbackError> {
    let err = |e: String| AppRollbackError::Read(name.to_string(), e);
    let v = serde_json::to_value(api.get(name).await.map_err(|e| err(e.to_string()))?)
        .map_err(|e| err(e.to_string()))?;
    let app = serde_json::from_value(v.clone()).map_err(|e| err(e.to_string()))?;
    Ok((v, app))
}

/// The revisions a rollback to `to` syncs.
fn target(app: &Application, to: &RollbackTo) -> Result<Revisions, AppRollbackError> {
    let name = app.name().to_string();
    match to {
        RollbackTo::History(id) => app
            .status
            .iter()
            .flat_map(|s| s.history.iter())
            .find(|h| h.id == *id)
            .map(|h| h.revisions())
            .ok_or(AppRollbackError::NoHistory { app: name, id: *id }),
        RollbackTo::Revision(r) if app.spec.sources.is_empty() => Ok(Revisions::single(r.clone())),
        RollbackTo::Revision(_) => Err(AppRollbackError::MultiSource(name, app.spec.sources.len())),
    }
}

/// Request the rollback sync and follow it; `progress_line` gets every change of state.
pub async fn run(
    client: &kube::Client,
    req: &RollbackRequest,
    progress_line: &mut (dyn FnMut(&str) + Send),
) -> Result<RollbackReport, AppRollbackError> {
    let api = apps(client, &req.namespace);
    let (_, app) = read(&api, &req.name).await?;
    if app
        .spec
        .sync_policy
        .as_ref()
        .is_some_and(|p| p.automated.is_some())
    {
        return Err(AppRollbackError::Automated(req.name.clone()));
    }
    let to = target(&app, &req.to)?;
    let status = app.status.clone().unwrap_or_default();
    let previous = status
        .operation_state()
        .ok()
        .flatten()
        .map(|s| s.id().to_string())
        .unwrap_or_default();
    let from = status
        .operation_state()
        .ok()
        .flatten()
        .and_then(|s| s.synced_revisions())
        .or_else(|| status.history.last().map(|h| h.revisions()))
        .map(|r| r.to_string())
        .unwrap_or_default();
    let mut sync = json!({"prune": req.prune});
    to.write_into(&mut sync);
    api.patch(
        &req.name,
        &PatchParams::default(),
        &Patch::Merge(
            json!({"operation": {"sync": sync, "initiatedBy": {"username": req.initiator}}}),
        ),
    )
    .await
    .map_err(|e| AppRollbackError::Request {
        app: req.name.clone(),
        message: e.to_string(),
    })?;
    let started = Instant::now();
    let mut last = String::new();
    let (succeeded, problems) = loop {
        let (_, app) = read(&api, &req.name).await?;
        let p = progress(&app, &previous, &to);
        let line = match &p {
            RollbackProgress::Done => format!("{}: at {to}, applied and Healthy", req.name),
            RollbackProgress::Pending(why) => format!("{}: {}", req.name, why.join("; ")),
            RollbackProgress::Failed(why) => format!("{}: {why}", req.name),
        };
        if line != last {
            progress_line(&line);
            last = line;
        }
        match p {
            RollbackProgress::Done => break (true, vec![]),
            RollbackProgress::Failed(why) => break (false, vec![why]),
            RollbackProgress::Pending(why) if started.elapsed() >= req.timeout => {
                let mut problems = vec![format!(
                    "not Healthy at {to} after {}s",
                    req.timeout.as_secs()
                )];
                problems.extend(why);
                break (false, problems);
            }
            RollbackProgress::Pending(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    };
    Ok(RollbackReport {
        application: req.name.clone(),
        namespace: req.namespace.clone(),
        destination: app.spec.destination.clone(),
        from_revision: from,
        to_revision: to.to_string(),
        succeeded,
        problems,
        at: mooring_core::time::now_rfc3339(),
    })
}

/// The runbook's monitoring event.
pub fn event_body(r: &RollbackReport) -> Value {
    let mut v = json!({
        "event": r.event_name(),
        "application": r.application,
        "from_revision": r.from_revision,
        "to_revision": r.to_revision,
        "timestamp": r.at,
    });
    if !r.succeeded {
        v["problems"] = json!(r.problems);
    }
    v
}

/// POST [`event_body`] to a monitoring webhook through the outbound client (the admin's
/// allowlist applies), retried with backoff like the RollbackPolicy's incident webhook.
/// Returns the final HTTP status.
pub async fn post_event(
    outbound: crate::outbound::Outbound,
    url: &str,
    r: &RollbackReport,
) -> Result<u16, String> {
    let w = mooring_core::rollback::WebhookSpec {
        url: url.to_string(),
        headers: vec![],
    };
    crate::rollback::post_incident(outbound, w, event_body(r)).await
}

/// Record the outcome as a Kubernetes Event on the Application (best effort: the error is
/// returned for the caller to show, never hidden).
pub async fn record_event(client: &kube::Client, r: &RollbackReport) -> Result<(), String> {
    let api = apps(client, &r.namespace);
    let (object, _) = read(&api, &r.application)
        .await
        .map_err(|e| e.to_string())?;
    let (type_, reason, message) = if r.succeeded {
        (
            mooring_core::event::EventType::Normal,
            COMPLETED,
            format!(
                "rolled back from {} to {}: Synced and Healthy",
                r.from_revision, r.to_revision
            ),
        )
    } else {
        (
            mooring_core::event::EventType::Warning,
            FAILED,
            format!(
                "rollback from {} to {} failed: {}",
                r.from_revision,
                r.to_revision,
                r.problems.join("; ")
            ),
        )
    };
    let event = mooring_core::event::event(&object, type_, reason, &message, COMPONENT, &r.at);
    let events: Api<Event> = Api::namespaced(client.clone(), &r.namespace);
    let event: Event = serde_json::from_value(event).map_err(|e| e.to_string())?;
    events
        .create(&PostParams::default(), &event)
        .await
        .map(drop)
        .map_err(|e| format!("recording event {reason} on {}: {e}", r.application))
}

/// The pods of `namespace` as `kubectl get pods` shows them (the API server's Table):
/// a header row, then one row per pod.
pub async fn pod_table(client: &kube::Client, namespace: &str) -> Result<Vec<Vec<String>>, String> {
    let req = http::Request::get(format!("/api/v1/namespaces/{namespace}/pods"))
        .header(
            "Accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .body(Vec::new())
        .map_err(|e| e.to_string())?;
    let text = client
        .request_text(req)
        .await
        .map_err(|e| format!("listing pods of {namespace}: {e}"))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("pods of {namespace}: {e}"))?;
    Ok(table_rows(&v))
}

/// Rows of a `meta.k8s.io/v1` Table (header first); a plain list gives names only.
fn table_rows(v: &Value) -> Vec<Vec<String>> {
    let cell = |c: &Value| match c {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    if let Some(cols) = v.get("columnDefinitions").and_then(Value::as_array) {
        let mut rows = vec![cols
            .iter()
            .map(|c| c.get("name").map(cell).unwrap_or_default().to_uppercase())
            .collect::<Vec<_>>()];
        for r in v
            .get("rows")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            rows.push(
                r.get("cells")
                    .and_then(Value::as_array)
                    .map(|c| c.iter().map(cell).collect())
                    .unwrap_or_default(),
            );
        }
        return rows;
    }
    let mut rows = vec![vec!["NAME".to_string()]];
    for i in v
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        rows.push(vec![i
            .pointer("/metadata/name")
            .map(cell)
            .unwrap_or_default()]);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rows_read_the_api_servers_table_and_a_plain_list() {
        let t = json!({"kind": "Table", "columnDefinitions": [{"name": "Name"}, {"name": "Ready"}, {"name": "Status"}, {"name": "Restarts"}, {"name": "Age"}],
                       "rows": [{"cells": ["model-server-abc", "0/1", "Running", 0, "12s"]}]});
        assert_eq!(
            table_rows(&t),
            vec![
                vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
                vec!["model-server-abc", "0/1", "Running", "0", "12s"]
            ]
        );
        let l = json!({"kind": "PodList", "items": [{"metadata": {"name": "p"}}]});
        assert_eq!(table_rows(&l), vec![vec!["NAME"], vec!["p"]]);
    }

    #[test]
    fn the_monitoring_event_has_the_runbooks_fields() {
        let mut r = RollbackReport {
            application: "model".into(),
            namespace: "argocd".into(),
            destination: Default::default(),
            from_revision: "b".into(),
            to_revision: "a".into(),
            succeeded: true,
            problems: vec![],
            at: "2026-12-06T08:00:00Z".into(),
        };
        assert_eq!(
            event_body(&r),
            json!({"event": "rollback_completed", "application": "model", "from_revision": "b",
                   "to_revision": "a", "timestamp": "2026-12-06T08:00:00Z"})
        );
        r.succeeded = false;
        r.problems = vec!["Deployment ml-serving/model-server is Progressing".into()];
        assert_eq!(event_body(&r)["event"], "rollback_failed");
        assert_eq!(
            event_body(&r)["problems"][0],
            "Deployment ml-serving/model-server is Progressing"
        );
    }
}
