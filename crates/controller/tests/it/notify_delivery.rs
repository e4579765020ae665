//! Notification services delivered to real servers: an email received by aiosmtpd (over
//! STARTTLS), an alert visible in a real Alertmanager's API, a Grafana annotation request
//! (Grafana is not packaged in Debian: a recording endpoint asserts the request field by
//! field). The service configurations are written as Argo CD users write them in
//! `argocd-notifications-cm`; every server is on 127.0.0.1, which the admin's outbound
//! allowlist opens, as it must for any loopback address.

use mooring_controller::notifications::deliver::{deliver, DeliverError};
use mooring_controller::outbound::Outbound;
use mooring_notify::payload::Payload;
use mooring_notify::services::{attach_send, payloads};
use mooring_testkit::alertmanager::Alertmanager;
use mooring_testkit::mail::SmtpSink;
use mooring_testkit::receiver::HttpReceiver;
use serde_json::{json, Value};

fn yaml(s: &str) -> Value {
    mooring_core::yaml::parse_one(s).expect("service YAML")
}

fn send_time() -> mooring_core::time::Timestamp {
    mooring_core::time::parse("2026-12-06T08:00:00Z").expect("time")
}

/// The outbound client of the control plane `argocd`, opened to 127.0.0.1 by the admin.
fn outbound() -> Outbound {
    let o = Outbound::new("argocd");
    o.set_allowlist(Some("127.0.0.1"));
    o
}

fn email_payloads(port: u16, extra: &str, rcpt: &str) -> Vec<Payload> {
    let config = yaml(&format!(
        "host: 127.0.0.1\nport: {port}\nfrom: argocd-notifications@example.com\n{extra}"
    ));
    // Argo CD's catalog template `app-sync-succeeded`, rendered for app `guestbook`.
    let notification = json!({
        "message": "Application guestbook has been successfully synced at 2026-12-06T08:00:00Z.\nSync operation details are available at: https://argocd.example.com/applications/guestbook?operation=true .\n",
        "email": {"subject": "Application guestbook has been successfully synced."},
    });
    payloads("email", "email", &config, &notification, rcpt).expect("email payloads")
}

fn skip(what: &str) {
    eprintln!("SKIPPED: {what} is not installed here (scripts/test installs it; CI has it)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_is_received_by_aiosmtpd_over_starttls() {
    if SmtpSink::available().is_none() {
        return skip("python3-aiosmtpd");
    }
    let smtp = SmtpSink::start(true).expect("aiosmtpd with STARTTLS");
    // The server's certificate is self-signed: Argo's `insecure_skip_verify` accepts it.
    let p = email_payloads(
        smtp.port(),
        "insecure_skip_verify: true\n",
        "ml-team@example.com",
    );
    deliver(&outbound(), &p[0]).await.expect("delivered");
    let mail = mooring_testkit::eventually(30, "aiosmtpd stores the message", || async {
        smtp.received().ok().filter(|m| !m.is_empty())
    })
    .await;
    assert_eq!(mail.len(), 1, "{mail:?}");
    let m = &mail[0];
    assert_eq!(m.header("From"), Some("argocd-notifications@example.com"));
    assert_eq!(m.header("To"), Some("ml-team@example.com"));
    assert_eq!(
        m.header("X-MailFrom"),
        Some("argocd-notifications@example.com")
    );
    assert_eq!(m.header("X-RcptTo"), Some("ml-team@example.com"));
    assert_eq!(
        m.header("Subject"),
        Some("Application guestbook has been successfully synced.")
    );
    assert!(
        m.header("Content-Type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "{m:?}"
    );
    // The Maildir adds a line end after the message.
    assert_eq!(
        m.text().expect("body").trim_end(),
        "Application guestbook has been successfully synced at 2026-12-06T08:00:00Z.\nSync operation details are available at: https://argocd.example.com/applications/guestbook?operation=true ."
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_or_a_closed_allowlist_sends_nothing() {
    if SmtpSink::available().is_none() {
        return skip("python3-aiosmtpd");
    }
    let smtp = SmtpSink::start(true).expect("aiosmtpd with STARTTLS");
    // Without insecure_skip_verify, a self-signed certificate is refused (and aiosmtpd
    // accepts no mail before STARTTLS).
    let p = email_payloads(smtp.port(), "", "ml-team@example.com");
    let err = deliver(&outbound(), &p[0]).await.expect_err("untrusted");
    let text = err.to_string();
    assert!(
        matches!(err, DeliverError::Smtp { .. }) && text.contains("STARTTLS"),
        "{text}"
    );
    assert!(
        text.contains(&format!("127.0.0.1:{}", smtp.port())),
        "{text}"
    );

    // Loopback is closed until the admin opens it.
    let err = deliver(&Outbound::new("argocd"), &p[0])
        .await
        .expect_err("refused");
    let text = err.to_string();
    assert!(
        matches!(err, DeliverError::SmtpRefused { .. })
            && text.contains(&format!("smtp://127.0.0.1:{}", smtp.port()))
            && text.contains("outbound.allow"),
        "{text}"
    );
    assert!(smtp.received().expect("maildir").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_server_gets_no_password_in_clear_unless_it_is_loopback() {
    if SmtpSink::available().is_none() {
        return skip("python3-aiosmtpd");
    }
    // aiosmtpd without TLS and without AUTH: on loopback Mooring tries AUTH (the password
    // does not leave the machine), and the server's refusal is named.
    let smtp = SmtpSink::start(false).expect("aiosmtpd");
    let p = email_payloads(
        smtp.port(),
        "username: mooring\npassword: s3cret\n",
        "ml-team@example.com",
    );
    let err = deliver(&outbound(), &p[0]).await.expect_err("no AUTH");
    assert!(err.to_string().contains("AUTH as \"mooring\""), "{err}");
    // Without credentials the plain server takes the message.
    let p = email_payloads(smtp.port(), "html: true\n", "ops@example.com");
    deliver(&outbound(), &p[0]).await.expect("delivered");
    let mail = mooring_testkit::eventually(30, "aiosmtpd stores the message", || async {
        smtp.received().ok().filter(|m| !m.is_empty())
    })
    .await;
    assert_eq!(mail[0].header("X-RcptTo"), Some("ops@example.com"));
    assert!(
        mail[0]
            .header("Content-Type")
            .is_some_and(|c| c.starts_with("text/html")),
        "{mail:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_is_visible_in_a_real_alertmanager() {
    if Alertmanager::binary().is_none() {
        return skip("prometheus-alertmanager");
    }
    let am = Alertmanager::start().expect("alertmanager");
    let config = yaml(&format!("targets:\n- {}\n", am.target()));
    // The template of Argo CD's alertmanager documentation, rendered for `guestbook`.
    let mut notification = json!({
        "message": "Application guestbook has been successfully synced.",
        "alertmanager": {
            "labels": {"fault_priority": "P5", "event_bucket": "deploy", "event_status": "succeed", "recipient": "ml-team", "app": "guestbook"},
            "annotations": {"author": "Jane Doe"},
            "generatorURL": "git@github.com:argoproj/argocd-example-apps.git",
        },
    });
    let now = mooring_core::time::now();
    attach_send(&mut notification, "app-deployed", now);
    let p = payloads("alertmanager", "alertmanager", &config, &notification, "")
        .expect("alertmanager payloads");
    assert_eq!(p.len(), 1);
    deliver(&outbound(), &p[0]).await.expect("delivered");
    let alerts = mooring_testkit::eventually(30, "the alert in /api/v2/alerts", || async {
        am.alerts()
            .ok()
            .filter(|a| a.as_array().is_some_and(|a| !a.is_empty()))
    })
    .await;
    let alert = &alerts[0];
    assert_eq!(
        alert["labels"],
        json!({
            "alertname": "app-deployed", "fault_priority": "P5", "event_bucket": "deploy",
            "event_status": "succeed", "recipient": "ml-team", "app": "guestbook",
        })
    );
    assert_eq!(alert["annotations"], json!({"author": "Jane Doe"}));
    assert_eq!(
        alert["generatorURL"],
        "https://github.com/argoproj/argocd-example-apps.git"
    );
    assert_eq!(alert["status"]["state"], "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grafana_annotation_request_is_argo_cds() {
    let grafana = HttpReceiver::start(200).expect("receiver");
    let config = yaml(&format!(
        "apiUrl: {}\napiKey: glsa_secret\n",
        grafana.url("/api")
    ));
    let mut notification =
        json!({"message": "Application guestbook has been successfully synced."});
    attach_send(&mut notification, "app-sync-succeeded", send_time());
    let p = payloads(
        "grafana",
        "grafana",
        &config,
        &notification,
        "argocd|guestbook",
    )
    .expect("grafana payloads");
    deliver(&outbound(), &p[0]).await.expect("delivered");
    let reqs = grafana.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.target, "/api/annotations");
    assert_eq!(r.header("authorization"), Some("Bearer glsa_secret"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        json!({
            "time": 1_796_544_000_000_i64,
            "isRegion": false,
            "tags": ["argocd", "guestbook"],
            "text": "Application guestbook has been successfully synced.",
        })
    );

    // A Grafana that refuses is a failure naming the URL and the status.
    let refusing = HttpReceiver::start(401).expect("receiver");
    let config = yaml(&format!("apiUrl: {}\napiKey: bad\n", refusing.url("/api")));
    let p = payloads("grafana", "grafana", &config, &notification, "t").expect("payloads");
    let err = deliver(&outbound(), &p[0]).await.expect_err("401");
    assert!(
        err.to_string()
            .contains("/api/annotations answered HTTP 401"),
        "{err}"
    );
}

/// Argo CD's catalog, verbatim (the fixture of mooring-notify's goldens).
const CATALOG: &str = include_str!("../../../notify/tests/fixtures/catalog/install.yaml");

/// The acceptance's last point, end to end: Argo CD's catalog applied verbatim plus an
/// email and an Alertmanager service (and a template with Argo's `alertmanager` fields),
/// an app subscribed by annotation; its sync sends one email that aiosmtpd receives over
/// STARTTLS and one alert that Alertmanager shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synced_app_notifies_by_email_and_alertmanager() {
    use crate::support::{allow_outbound, env, field, Repo};
    use mooring_k8s::k8s_openapi::api::core::v1::ConfigMap;
    use mooring_k8s::kube::api::{Api, DynamicObject, PostParams};
    if SmtpSink::available().is_none() {
        return skip("python3-aiosmtpd");
    }
    if Alertmanager::binary().is_none() {
        return skip("prometheus-alertmanager");
    }
    let smtp = SmtpSink::start(true).expect("aiosmtpd");
    let am = Alertmanager::start().expect("alertmanager");
    let repo = Repo::new();
    repo.write(
        "apps/model/config.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: model-config}\ndata: {threshold: \"0.9\"}\n",
    );
    let revision = repo.commit("model config");
    let e = env().await;
    allow_outbound(&e.client, &e.controller.ctx.outbound, "127.0.0.1").await;

    let mut cm = yaml(CATALOG);
    cm["metadata"] = json!({"name": "argocd-notifications-cm", "namespace": "argocd"});
    let data = cm["data"].as_object_mut().expect("catalog data");
    data.insert(
        "service.email".into(),
        json!(format!(
            "host: 127.0.0.1\nport: {}\nfrom: argocd-notifications@example.com\ninsecure_skip_verify: true\n",
            smtp.port()
        )),
    );
    data.insert(
        "service.alertmanager".into(),
        json!(format!("targets:\n- {}\n", am.target())),
    );
    data.insert(
        "template.app-synced-alert".into(),
        json!("alertmanager:\n  labels:\n    fault_priority: \"P5\"\n    event_bucket: \"deploy\"\n    event_status: \"succeed\"\n    app: \"{{.app.metadata.name}}\"\n  annotations:\n    revision: \"{{.app.status.sync.revision}}\"\n"),
    );
    data.insert(
        "trigger.on-synced-alert".into(),
        json!("- when: app.status.operationState != nil and app.status.operationState.phase in ['Succeeded']\n  oncePer: app.status.operationState?.syncResult?.revision\n  send: [app-synced-alert]\n"),
    );
    let cm: ConfigMap = serde_json::from_value(cm).expect("configmap");
    Api::<ConfigMap>::namespaced(e.client.clone(), "argocd")
        .create(&PostParams::default(), &cm)
        .await
        .expect("argocd-notifications-cm");

    let apps: Api<DynamicObject> = Api::namespaced_with(
        e.client.clone(),
        "argocd",
        &mooring_k8s::resources::application_resource(),
    );
    let app: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
        "metadata": {"name": "model", "namespace": "argocd", "annotations": {
            "notifications.argoproj.io/subscribe.on-sync-succeeded.email": "ml-team@example.com",
            "notifications.argoproj.io/subscribe.on-synced-alert.alertmanager": "",
        }},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo.url(), "targetRevision": "main", "path": "apps/model"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "ml-serving"},
            "syncPolicy": {"automated": {"prune": true}, "syncOptions": ["CreateNamespace=true"]},
        }
    }))
    .expect("app");
    apps.create(&PostParams::default(), &app)
        .await
        .expect("create app");

    let alerts = mooring_testkit::eventually(120, "the alert in Alertmanager", || async {
        am.alerts()
            .ok()
            .filter(|a| a.as_array().is_some_and(|a| !a.is_empty()))
    })
    .await;
    assert_eq!(
        alerts[0]["labels"],
        json!({"alertname": "app-synced-alert", "fault_priority": "P5", "event_bucket": "deploy", "event_status": "succeed", "app": "model"})
    );
    assert_eq!(alerts[0]["annotations"]["revision"], revision);
    assert_eq!(alerts[0]["generatorURL"], repo.url());
    let mail = mooring_testkit::eventually(60, "the email in aiosmtpd", || async {
        smtp.received().ok().filter(|m| !m.is_empty())
    })
    .await;
    let a = apps.get("model").await.expect("app");
    let a = serde_json::to_value(a).expect("json");
    assert_eq!(field(&a, "/status/operationState/phase"), "Succeeded");
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert_eq!(mail[0].header("X-RcptTo"), Some("ml-team@example.com"));
    assert_eq!(
        mail[0].header("Subject"),
        Some("Application model has been successfully synced.")
    );
    assert!(
        mail[0]
            .text()
            .expect("body")
            .contains("Application model has been successfully synced at"),
        "{mail:?}"
    );
}

/// A mail server name resolving to a loopback address: resolved once and checked like a
/// URL's host (refused until the admin opens the address), and the connection goes to that
/// checked address (the name is never looked up again: the system cannot resolve it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mail_server_name_is_resolved_once_and_checked() {
    use mooring_controller::outbound::Resolver;
    use std::net::IpAddr;
    struct Fixed;
    impl Resolver for Fixed {
        fn lookup(
            &self,
            host: &str,
            _port: u16,
        ) -> futures::future::BoxFuture<'static, std::io::Result<Vec<IpAddr>>> {
            let known = host == "smtp.mooring.test";
            Box::pin(async move {
                if known {
                    Ok(vec![IpAddr::from([127, 0, 0, 1])])
                } else {
                    Err(std::io::Error::other("unknown name"))
                }
            })
        }
    }
    if SmtpSink::available().is_none() {
        return skip("python3-aiosmtpd");
    }
    let smtp = SmtpSink::start(false).expect("aiosmtpd");
    let config = yaml(&format!(
        "host: smtp.mooring.test\nport: {}\nfrom: argocd@example.com\n",
        smtp.port()
    ));
    let p = payloads(
        "email",
        "email",
        &config,
        &json!({"message": "hello", "email": {"subject": "hi"}}),
        "ml-team@example.com",
    )
    .expect("payloads");
    let outbound = Outbound::with_resolver("argocd", std::sync::Arc::new(Fixed));
    let err = deliver(&outbound, &p[0])
        .await
        .expect_err("loopback refused");
    let text = err.to_string();
    assert!(
        text.contains(&format!("smtp://smtp.mooring.test:{}", smtp.port()))
            && text.contains("127.0.0.1")
            && text.contains("outbound.allow"),
        "{text}"
    );
    assert!(smtp.received().expect("maildir").is_empty());
    outbound.set_allowlist(Some("127.0.0.1"));
    deliver(&outbound, &p[0]).await.expect("delivered");
    let mail = smtp.received().expect("maildir");
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].header("Subject"), Some("hi"));
}

/// Slack's Web API answers HTTP 200 with `{"ok": false, "error": …}` when it did not post:
/// that is a failed delivery, not a delivered one. An incoming webhook answers with its
/// status only.
#[tokio::test]
async fn a_slack_web_api_answer_without_ok_is_a_failure() {
    let slack = HttpReceiver::start(200).expect("receiver");
    let notification = json!({"message": "Application guestbook is Degraded."});
    let config = yaml(&format!(
        "token: xoxb-secret\napiURL: {}\n",
        slack.url("/api")
    ));
    let p = payloads("slack", "slack", &config, &notification, "ml-ops").expect("payloads");
    let err = deliver(&outbound(), &p[0]).await.expect_err("no ok");
    assert!(err.to_string().contains("did not accept it"), "{err}");
    assert_eq!(slack.requests().len(), 1, "it was sent once");
    let config = yaml(&format!("webhookURL: {}\n", slack.url("/hooks/T0/B0/x")));
    let p = payloads("slack", "slack", &config, &notification, "").expect("payloads");
    deliver(&outbound(), &p[0])
        .await
        .expect("an incoming webhook answering 200 delivered");
}
