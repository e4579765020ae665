//! Notifications end to end: Argo CD's catalog applied verbatim as
//! `argocd-notifications-cm`, a webhook service and a Slack service pointing at HTTP
//! receivers on 127.0.0.1, an Application subscribed to `on-sync-succeeded` and
//! `on-health-degraded` by annotation, a real Git repository and the embedded cluster.
//! Exactly one message per event, also across a controller restart.

use crate::support::{
    allow_outbound, controller_for, env_with_cluster, eventually, field, HttpReceiver, Repo,
};
use mooring_k8s::kube::api::{Api, DynamicObject, PostParams};
use mooring_k8s::kube::core::{ApiResource, GroupVersionKind};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const APP: &str = "fraud-model";

fn deployment(image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: fraud-model
  labels: {{app: fraud-model}}
spec:
  replicas: 1
  progressDeadlineSeconds: 30
  selector: {{matchLabels: {{app: fraud-model}}}}
  template:
    metadata:
      labels: {{app: fraud-model}}
    spec:
      containers:
      - name: server
        image: {image}
"
    )
}

fn api(client: &mooring_k8s::kube::Client, kind: &str, plural: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        "argocd",
        &ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", kind), plural),
    )
}

async fn create(api: &Api<DynamicObject>, v: Value) {
    let o: DynamicObject = serde_json::from_value(v).expect("object");
    api.create(&PostParams::default(), &o)
        .await
        .expect("create");
}

/// Argo CD's catalog (the fixture of `mooring-notify`, verbatim) plus the services and
/// context an admin adds.
fn notifications_cm(hook: &HttpReceiver, slack: &HttpReceiver) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../notify/tests/fixtures/catalog/install.yaml");
    let text = std::fs::read_to_string(path).expect("catalog");
    let mut cm = mooring_core::yaml::parse_one(&text).expect("catalog yaml");
    let data = cm["data"].as_object_mut().expect("data");
    data.insert(
        "service.webhook.ml-hook".into(),
        json!(format!(
            "url: {}/hooks/argocd\nheaders:\n- name: X-Team\n  value: ml-platform\n",
            hook.url("")
        )),
    );
    data.insert(
        "service.slack".into(),
        json!(format!(
            "token: $slack-token\napiURL: {}/api\nusername: argocd\n",
            slack.url("")
        )),
    );
    data.insert(
        "context".into(),
        json!("argocdUrl: https://argocd.example.com\n"),
    );
    cm["metadata"] = json!({"name": "argocd-notifications-cm", "namespace": "argocd"});
    cm
}

fn application(repo: &str) -> Value {
    json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": APP, "namespace": "argocd", "annotations": {
            "notifications.argoproj.io/subscribe.on-sync-succeeded.ml-hook": "",
            "notifications.argoproj.io/subscribe.on-sync-succeeded.slack": "ml-ops",
            "notifications.argoproj.io/subscribe.on-health-degraded.ml-hook": "",
            "notifications.argoproj.io/subscribe.on-health-degraded.slack": "ml-ops",
        }},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo, "targetRevision": "main", "path": "apps/fraud-model"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "fraud"},
            "syncPolicy": {"automated": {"prune": true, "selfHeal": true}, "syncOptions": ["CreateNamespace=true"]},
        }
    })
}

const SYNCED: &str = "has been successfully synced";
const DEGRADED: &str = "has degraded";

/// Wait until each receiver holds exactly `n` messages containing `needle`, then make
/// sure no further one arrives.
async fn exactly(hook: &HttpReceiver, slack: &HttpReceiver, needle: &str, n: usize) {
    eventually(
        120,
        &format!("{n} `{needle}` message(s) on each receiver"),
        || async {
            (hook.containing(needle).len() >= n && slack.containing(needle).len() >= n)
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        hook.containing(needle).len(),
        n,
        "webhook: {:?}",
        hook.requests()
    );
    assert_eq!(
        slack.containing(needle).len(),
        n,
        "slack: {:?}",
        slack.requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn argo_cd_catalog_notifies_once_per_event_across_restarts() {
    let repo = Repo::new();
    repo.write(
        "apps/fraud-model/deployment.yaml",
        &deployment("registry.local/fraud:1"),
    );
    let v1 = repo.commit("fraud model v1");
    let (cluster, e) = env_with_cluster().await;
    allow_outbound(&e.client, &e.controller.ctx.outbound, "127.0.0.1").await;
    let hook = HttpReceiver::start_answering(200, r#"{"ok":true}"#).expect("receiver");
    let slack = HttpReceiver::start_answering(200, r#"{"ok":true}"#).expect("receiver");
    create(
        &api(&e.client, "Secret", "secrets"),
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "argocd-notifications-secret", "namespace": "argocd"},
               "stringData": {"slack-token": "xoxb-mooring-test"}}),
    )
    .await;
    create(
        &api(&e.client, "ConfigMap", "configmaps"),
        notifications_cm(&hook, &slack),
    )
    .await;
    let apps: Api<DynamicObject> = Api::namespaced_with(
        e.client.clone(),
        "argocd",
        &mooring_k8s::resources::application_resource(),
    );
    create(&apps, application(&repo.url())).await;

    // The first sync: one message on each service.
    exactly(&hook, &slack, SYNCED, 1).await;
    let app = serde_json::to_value(apps.get(APP).await.expect("app")).expect("json");
    let state = field(
        &app,
        "/metadata/annotations/notified.notifications.argoproj.io",
    );
    let state: BTreeMap<String, i64> = serde_json::from_str(state).expect("state annotation");
    assert!(
        state
            .keys()
            .any(|k| k.starts_with(&format!("{v1}:on-sync-succeeded:[0]."))
                && k.ends_with(":slack:ml-ops")),
        "{state:?}"
    );

    // The webhook: Argo CD's default method and the message as body (the catalog's
    // templates have no `webhook.ml-hook` section), the service's headers.
    let h = &hook.containing(SYNCED)[0];
    assert_eq!(
        (h.method.as_str(), h.target.as_str()),
        ("GET", "/hooks/argocd")
    );
    assert_eq!(h.header("x-team"), Some("ml-platform"), "{h:?}");
    let text = String::from_utf8_lossy(&h.body);
    assert!(
        text.starts_with(&format!(" Application {APP} {SYNCED} at ")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "Sync operation details are available at: https://argocd.example.com/applications/{APP}?operation=true ."
        )),
        "{text}"
    );

    // Slack: chat.postMessage with the bot token, the catalog's message and attachment.
    let s = &slack.containing(SYNCED)[0];
    assert_eq!(
        (s.method.as_str(), s.target.as_str()),
        ("POST", "/api/chat.postMessage")
    );
    assert_eq!(
        s.header("authorization"),
        Some("Bearer xoxb-mooring-test"),
        "{s:?}"
    );
    assert!(
        s.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{s:?}"
    );
    let body: Value = serde_json::from_slice(&s.body).expect("slack json");
    assert_eq!(body["channel"], "ml-ops");
    assert_eq!(body["username"], "argocd");
    let text = body["text"].as_str().expect("text");
    assert!(
        text.starts_with(&format!(
            ":white_check_mark: Application {APP} {SYNCED} at "
        )),
        "{text}"
    );
    let attachment = &body["attachments"][0];
    assert_eq!(attachment["title"], APP);
    assert_eq!(
        attachment["title_link"],
        format!("https://argocd.example.com/applications/{APP}")
    );
    assert_eq!(attachment["color"], "#18be52");
    assert_eq!(attachment["fields"][0]["title"], "Sync Status");
    assert!(
        ["Synced", "OutOfSync"].contains(&attachment["fields"][0]["value"].as_str().unwrap_or("")),
        "{attachment}"
    );
    assert_eq!(attachment["fields"][0]["short"], true);
    assert_eq!(attachment["fields"][1]["title"], "Repository");
    assert_eq!(
        attachment["fields"][1]["value"],
        format!(":arrow_heading_up: {}", repo.url())
    );

    // A restart (a new controller on the same API server) sends nothing again.
    drop(e);
    let e = controller_for(&cluster).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(hook.containing(SYNCED).len(), 1, "{:?}", hook.requests());
    assert_eq!(slack.containing(SYNCED).len(), 1, "{:?}", slack.requests());

    // A new revision: one new sync message each.
    repo.write(
        "apps/fraud-model/deployment.yaml",
        &deployment("registry.local/fraud:2"),
    );
    repo.commit("fraud model v2");
    e.controller.ctx.refresh(&format!("argocd/{APP}"));
    exactly(&hook, &slack, SYNCED, 2).await;
    assert!(hook.containing(DEGRADED).is_empty());

    // A release that never becomes ready: the Deployment degrades, one message each.
    repo.write(
        "apps/fraud-model/deployment.yaml",
        &deployment("registry.local/fraud:never-ready"),
    );
    repo.commit("fraud model v3 (broken)");
    e.controller.ctx.refresh(&format!("argocd/{APP}"));
    exactly(&hook, &slack, DEGRADED, 1).await;
    let s = &slack.containing(DEGRADED)[0];
    let body: Value = serde_json::from_slice(&s.body).expect("slack json");
    assert_eq!(body["attachments"][0]["color"], "#f4c030");
    assert_eq!(
        body["attachments"][0]["fields"][0]["title"],
        "Health Status"
    );
    assert_eq!(body["attachments"][0]["fields"][0]["value"], "Degraded");

    // Each delivery is an Event on the Application.
    let events = api(&e.client, "Event", "events")
        .list(&Default::default())
        .await
        .expect("events");
    let delivered = events
        .items
        .iter()
        .filter(|ev| {
            let v = serde_json::to_value(ev).unwrap_or_default();
            field(&v, "/reason") == "NotificationDelivered"
                && field(&v, "/involvedObject/name") == APP
        })
        .count();
    assert!(delivered >= 6, "{delivered} NotificationDelivered events");
    let metrics = e.controller.ctx.metrics.notification_deliveries();
    assert!(
        metrics
            .get(&(
                "on-health-degraded".to_string(),
                "slack".to_string(),
                "success".to_string()
            ))
            .is_some_and(|n| *n == 1),
        "{metrics:?}"
    );
}

/// Mooring's own events as triggers: a RollbackPolicy's `RollbackTriggered` Event on the
/// Application is the trigger `on-rollback-triggered`, sent once per Event, also after a
/// restart (the new controller sees the Event again and skips it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mooring_events_are_triggers_once_per_event() {
    let repo = Repo::new();
    repo.write(
        "apps/fraud-model/deployment.yaml",
        &deployment("registry.local/fraud:1"),
    );
    repo.commit("fraud model v1");
    let (cluster, e) = env_with_cluster().await;
    allow_outbound(&e.client, &e.controller.ctx.outbound, "127.0.0.1").await;
    let hook = HttpReceiver::start_answering(200, r#"{"ok":true}"#).expect("receiver");
    create(
        &api(&e.client, "ConfigMap", "configmaps"),
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "argocd-notifications-cm", "namespace": "argocd"},
               "data": {
                   "service.webhook.incidents": format!("url: {}/incidents\n", hook.url("")),
                   "template.rollback-triggered": "webhook:\n  incidents:\n    method: POST\n    body: |\n      {\"application\": \"{{.app.metadata.name}}\", \"event\": \"{{.event.reason}}\", \"message\": \"{{.event.message}}\"}\n",
                   "trigger.on-rollback-triggered": "- send: [rollback-triggered]\n",
                   "trigger.on-rollout-paused": "- send: [rollback-triggered]\n",
                   // A broken key is reported and the rest still works.
                   "trigger.broken": "- when: app.status ==\n  send: [rollback-triggered]\n",
               }}),
    )
    .await;
    let apps: Api<DynamicObject> = Api::namespaced_with(
        e.client.clone(),
        "argocd",
        &mooring_k8s::resources::application_resource(),
    );
    let mut app = application(&repo.url());
    app["metadata"]["annotations"] = json!({"notifications.argoproj.io/subscribe.on-rollback-triggered.incidents": "",
               "notifications.argoproj.io/subscribe.on-rollout-paused.incidents": ""});
    create(&apps, app).await;
    let app = serde_json::to_value(apps.get(APP).await.expect("app")).expect("json");
    mooring_controller::events::record(
        &e.controller.ctx,
        &app,
        mooring_controller::events::EventType::Warning,
        "RollbackTriggered",
        "RollbackPolicy argocd/serving-slo rollback: error_rate 0.2 > 0.05",
        "mooring-rollback",
    )
    .await;
    let needle = "\"event\": \"RollbackTriggered\"";
    eventually(60, "the rollback notification", || async {
        (!hook.containing(needle).is_empty()).then_some(())
    })
    .await;
    let r = &hook.containing(needle)[0];
    assert_eq!(
        (r.method.as_str(), r.target.as_str()),
        ("POST", "/incidents")
    );
    let body: Value = serde_json::from_slice(&r.body).expect("json body");
    assert_eq!(
        body,
        json!({"application": APP, "event": "RollbackTriggered",
               "message": "RollbackPolicy argocd/serving-slo rollback: error_rate 0.2 > 0.05"})
    );
    // An Event about a Rollout the app deploys, in the Rollout's namespace, names the app
    // as `related` (as the rollout controller records it): the app's trigger fires.
    let rollout = json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout",
                         "metadata": {"name": "fraud-rollout", "namespace": "ml-serving", "uid": "r-1"}});
    let mut paused = mooring_core::event::event(
        &rollout,
        mooring_core::event::EventType::Normal,
        "RolloutPaused",
        "Rollout paused (CanaryPauseStep)",
        "mooring-rollouts",
        &mooring_core::time::now_rfc3339(),
    );
    paused["related"] =
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application", "name": APP});
    let ns_events: Api<DynamicObject> = Api::namespaced_with(
        e.client.clone(),
        "ml-serving",
        &ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("", "v1", "Event"), "events"),
    );
    let namespaces: Api<DynamicObject> = Api::all_with(
        e.client.clone(),
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("", "v1", "Namespace"),
            "namespaces",
        ),
    );
    let _ = namespaces
        .create(
            &Default::default(),
            &serde_json::from_value(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml-serving"}}))
                .expect("namespace"),
        )
        .await;
    ns_events
        .create(
            &Default::default(),
            &serde_json::from_value(paused).expect("event"),
        )
        .await
        .expect("rollout event");
    let paused_needle = "\"event\": \"RolloutPaused\"";
    eventually(60, "the rollout-paused notification", || async {
        (!hook.containing(paused_needle).is_empty()).then_some(())
    })
    .await;
    let events = api(&e.client, "Event", "events");
    eventually(
        30,
        "a NotificationConfigError Event naming trigger.broken",
        || {
            let events = events.clone();
            async move {
                let list = events.list(&Default::default()).await.ok()?;
                list.items.iter().find_map(|ev| {
                    let v = serde_json::to_value(ev).ok()?;
                    (field(&v, "/reason") == "NotificationConfigError"
                        && field(&v, "/involvedObject/name") == APP
                        && field(&v, "/message").contains("`trigger.broken`"))
                    .then_some(())
                })
            }
        },
    )
    .await;
    drop(e);
    let _e = controller_for(&cluster).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(hook.containing(needle).len(), 1, "{:?}", hook.requests());
    assert_eq!(
        hook.containing(paused_needle).len(),
        1,
        "{:?}",
        hook.requests()
    );
}
