//! `mooring notifications …` against an embedded cluster holding an Argo CD notifications
//! configuration (a trigger and a template of Argo CD's catalog, verbatim), an
//! Application subscribed by annotation with a delivery state, and the controller's
//! delivery Events.

use crate::{apply_eventually, kubectl_ok, mooring};
use serde_json::Value;
use std::process::Command;

const CONFIG: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: argocd-notifications-cm, namespace: argocd}
data:
  service.webhook.hook: |
    url: http://127.0.0.1:9/hook
  template.app-sync-succeeded: |
    email:
      subject: Application {{.app.metadata.name}} has been successfully synced.
    message: |
      {{if eq .serviceType "slack"}}:white_check_mark:{{end}} Application {{.app.metadata.name}} has been successfully synced at {{.app.status.operationState.finishedAt}}.
      Sync operation details are available at: {{.context.argocdUrl}}/applications/{{.app.metadata.name}}?operation=true .
  trigger.on-sync-succeeded: |
    - description: Application syncing has succeeded
      oncePer: app.status.operationState?.syncResult?.revision
      send:
      - app-sync-succeeded
      when: app.status.operationState != nil and app.status.operationState.phase in ['Succeeded']
  trigger.on-broken: |
    - when: [unclosed
"#;

const APP: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: guestbook
  namespace: argocd
  annotations:
    notifications.argoproj.io/subscribe.on-sync-succeeded.hook: ""
    notifications.argoproj.io/subscribe.on-sync-succeeded.email: ml-team@example.com;ops@example.com
    notified.notifications.argoproj.io: '{"4f0c:on-sync-succeeded:0:a1b2c3:hook:": 1796544000}'
spec:
  project: default
  source: {repoURL: "https://github.com/argoproj/argocd-example-apps.git", path: guestbook, targetRevision: HEAD}
  destination: {server: "https://kubernetes.default.svc", namespace: guestbook}
"#;

const EVENTS: &str = r#"
apiVersion: v1
kind: Event
metadata: {name: guestbook.delivered, namespace: argocd}
involvedObject: {apiVersion: argoproj.io/v1alpha1, kind: Application, name: guestbook, namespace: argocd}
reason: NotificationDelivered
message: "trigger on-sync-succeeded: delivered to hook"
type: Normal
firstTimestamp: "2026-12-06T08:00:00Z"
lastTimestamp: "2026-12-06T08:00:00Z"
---
apiVersion: v1
kind: Event
metadata: {name: guestbook.failed, namespace: argocd}
involvedObject: {apiVersion: argoproj.io/v1alpha1, kind: Application, name: guestbook, namespace: argocd}
reason: NotificationFailed
message: "trigger on-sync-succeeded: email:ml-team@example.com: mail server smtp.example.com:587: connecting: connection refused"
type: Warning
firstTimestamp: "2026-12-06T08:00:01Z"
lastTimestamp: "2026-12-06T08:00:01Z"
---
apiVersion: v1
kind: Event
metadata: {name: guestbook.synced, namespace: argocd}
involvedObject: {apiVersion: argoproj.io/v1alpha1, kind: Application, name: guestbook, namespace: argocd}
reason: OperationCompleted
message: "not a notification"
type: Normal
"#;

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn templates_triggers_and_delivery_status() {
    let cluster = crate::BinCluster::start();
    let kc = cluster.kc.clone();
    let crds = Command::new(env!("CARGO_BIN_EXE_mooring"))
        .arg("crds")
        .output()
        .expect("mooring crds");
    kubectl_ok(&kc, &["apply", "-f", "-"], Some(&stdout(&crds)));
    kubectl_ok(&kc, &["apply", "-f", "-"], Some(CONFIG));
    apply_eventually(&kc, APP);
    kubectl_ok(&kc, &["apply", "-f", "-"], Some(EVENTS));

    // template get: every template, its fields and its message's first line.
    let o = mooring(&kc, &["notifications", "template", "get"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("NAME") && lines[0].contains("FIELDS"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("app-sync-succeeded")
            && lines[1].contains("email,message")
            && lines[1]
                .contains("Application {{.app.metadata.name}} has been successfully synced at"),
        "{out}"
    );
    let o = mooring(
        &kc,
        &[
            "notifications",
            "template",
            "get",
            "app-sync-succeeded",
            "-o",
            "json",
        ],
    );
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v[0]["name"], "app-sync-succeeded");
    assert_eq!(
        v[0]["spec"]["email"]["subject"],
        "Application {{.app.metadata.name}} has been successfully synced."
    );
    let o = mooring(&kc, &["notifications", "template", "get", "app-deployed"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("template \"app-deployed\" is not configured")
            && err.contains("configured: app-sync-succeeded"),
        "{err}"
    );

    // trigger get: a broken key is shown with its error and the command exits 1.
    let o = mooring(&kc, &["notifications", "trigger", "get"]);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let out = stdout(&o);
    assert!(
        out.lines().any(|l| l.starts_with("on-broken")
            && l.contains("error: argocd-notifications-cm key `trigger.on-broken`")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("on-sync-succeeded")
            && l.contains("app-sync-succeeded")
            && l.contains("app.status.operationState?.syncResult?.revision")
            && l.contains("app.status.operationState.phase in ['Succeeded']")),
        "{out}"
    );
    let o = mooring(
        &kc,
        &[
            "notifications",
            "trigger",
            "get",
            "on-sync-succeeded",
            "-o",
            "yaml",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert!(
        stdout(&o).contains("- app-sync-succeeded"),
        "{}",
        stdout(&o)
    );

    // status: subscriptions, delivery state (readable time), the delivery Events only.
    let o = mooring(&kc, &["notifications", "status", "guestbook"]);
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let out = stdout(&o);
    assert!(out.contains("Application: guestbook"), "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("on-sync-succeeded.email")
            && l.contains("ml-team@example.com;ops@example.com")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("4f0c:on-sync-succeeded:0:a1b2c3:hook:")
                && l.contains("2026-12-06T08:00:00Z")),
        "{out}"
    );
    assert!(
        out.contains("NotificationFailed") && out.contains("connection refused"),
        "{out}"
    );
    assert!(!out.contains("OperationCompleted"), "{out}");
    let o = mooring(&kc, &["notifications", "status", "-o", "json"]);
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v[0]["application"], "guestbook");
    let reasons: Vec<&str> = v[0]["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["reason"].as_str())
        .collect();
    assert_eq!(reasons, ["NotificationDelivered", "NotificationFailed"]);
    assert_eq!(v[0]["subscriptions"]["on-sync-succeeded.hook"], "");

    // A missing ConfigMap is named.
    kubectl_ok(
        &kc,
        &[
            "delete",
            "configmap",
            "-n",
            "argocd",
            "argocd-notifications-cm",
        ],
        None,
    );
    let o = mooring(&kc, &["notifications", "trigger", "get"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("ConfigMap argocd/argocd-notifications-cm does not exist"),
        "{o:?}"
    );
}

/// Argo CD's catalog, verbatim (the fixture of mooring-notify's goldens).
const CATALOG: &str = include_str!("../../../notify/tests/fixtures/catalog/install.yaml");

const SYNCED_APP: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {name: guestbook, namespace: argocd}
spec:
  project: default
  source: {repoURL: "https://github.com/argoproj/argocd-example-apps.git", path: guestbook, targetRevision: HEAD}
  destination: {server: "https://kubernetes.default.svc", namespace: guestbook}
status:
  sync: {status: Synced, revision: a1b2c3d4e5f60718293a4b5c6d7e8f9012345678}
  health: {status: Progressing, lastTransitionTime: "2026-12-06T07:59:00Z"}
  operationState:
    phase: Succeeded
    startedAt: "2026-12-06T07:59:30Z"
    finishedAt: "2026-12-06T08:00:00Z"
    operation: {sync: {revision: a1b2c3d4e5f60718293a4b5c6d7e8f9012345678}}
    syncResult: {revision: a1b2c3d4e5f60718293a4b5c6d7e8f9012345678}
"#;

/// `trigger run` and `template notify` with Argo CD's catalog applied verbatim: the
/// conditions' results over a synced app, a template rendered, and sent by email to a
/// real SMTP server through the configured service.
#[test]
fn trigger_run_and_template_notify_with_argo_cds_catalog() {
    let cluster = crate::BinCluster::start();
    let kc = cluster.kc.clone();
    let crds = Command::new(env!("CARGO_BIN_EXE_mooring"))
        .arg("crds")
        .output()
        .expect("mooring crds");
    kubectl_ok(&kc, &["apply", "-f", "-"], Some(&stdout(&crds)));
    kubectl_ok(&kc, &["apply", "-n", "argocd", "-f", "-"], Some(CATALOG));
    apply_eventually(&kc, SYNCED_APP);
    let o = mooring(
        &kc,
        &[
            "notifications",
            "trigger",
            "run",
            "on-sync-succeeded",
            "guestbook",
            "-o",
            "json",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let v: Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v[0]["triggered"], true, "{v}");
    assert_eq!(v[0]["oncePer"], "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678");
    assert_eq!(v[0]["send"], serde_json::json!(["app-sync-succeeded"]));
    // Progressing, not Healthy: on-deployed does not fire.
    let o = mooring(
        &kc,
        &[
            "notifications",
            "trigger",
            "run",
            "on-deployed",
            "guestbook",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let out = stdout(&o);
    assert!(
        out.lines().nth(1).is_some_and(|l| l.starts_with("0")
            && l.contains("false")
            && l.contains("app-deployed")),
        "{out}"
    );
    let o = mooring(
        &kc,
        &["notifications", "trigger", "run", "on-nothing", "guestbook"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("trigger \"on-nothing\" is not configured"),
        "{o:?}"
    );

    // Without a recipient: the rendered template.
    let o = mooring(
        &kc,
        &[
            "notifications",
            "template",
            "notify",
            "app-sync-succeeded",
            "guestbook",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    let out = stdout(&o);
    assert!(
        out.contains("Application guestbook has been successfully synced at 2026-12-06T08:00:00Z."),
        "{out}"
    );

    // An unknown service is named; nothing is sent.
    let o = mooring(
        &kc,
        &[
            "notifications",
            "template",
            "notify",
            "app-sync-succeeded",
            "guestbook",
            "--recipient",
            "pager:oncall",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        stdout(&o).contains("pager:oncall: failed:") && stdout(&o).contains("not configured"),
        "{o:?}"
    );

    let Some(_) = mooring_testkit::mail::SmtpSink::available() else {
        eprintln!(
            "SKIPPED: python3-aiosmtpd is not installed here (scripts/test installs it; CI has it)"
        );
        return;
    };
    let smtp = mooring_testkit::mail::SmtpSink::start(false).expect("aiosmtpd");
    kubectl_ok(
        &kc,
        &["patch", "configmap", "argocd-notifications-cm", "-n", "argocd", "--type", "merge", "-p",
          &serde_json::json!({"data": {"service.email": format!("host: 127.0.0.1\nport: {}\nfrom: argocd@example.com\n", smtp.port())}}).to_string()],
        None,
    );
    // Loopback is closed until the admin opens it in mooring-cm.
    let o = mooring(
        &kc,
        &[
            "notifications",
            "template",
            "notify",
            "app-sync-succeeded",
            "guestbook",
            "--recipient",
            "email:ml-team@example.com",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stdout(&o).contains("outbound.allow"), "{o:?}");
    kubectl_ok(
        &kc,
        &["apply", "-f", "-"],
        Some("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: mooring-cm, namespace: argocd}\ndata: {outbound.allow: 127.0.0.1}\n"),
    );
    let o = mooring(
        &kc,
        &[
            "notifications",
            "template",
            "notify",
            "app-sync-succeeded",
            "guestbook",
            "--recipient",
            "email:ml-team@example.com",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{o:?}");
    assert_eq!(stdout(&o).trim(), "email:ml-team@example.com: delivered");
    let mail = smtp.received().expect("maildir");
    assert_eq!(mail.len(), 1);
    // A failure names the service's scheme, host and port, never the URL's path (it can
    // carry a secret), as the controller's Events do.
    kubectl_ok(
        &kc,
        &[
            "patch",
            "configmap",
            "argocd-notifications-cm",
            "-n",
            "argocd",
            "--type",
            "merge",
            "-p",
            r#"{"data": {"service.grafana": "apiUrl: http://127.0.0.1:9/s3cret-token/api\napiKey: k\n"}}"#,
        ],
        None,
    );
    let o = mooring(
        &kc,
        &[
            "notifications",
            "template",
            "notify",
            "app-sync-succeeded",
            "guestbook",
            "--recipient",
            "grafana:ml",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    let out = stdout(&o);
    assert!(
        out.starts_with("grafana:ml: failed: http://127.0.0.1:9/…") && !out.contains("s3cret"),
        "{out}"
    );
    assert_eq!(mail[0].header("X-RcptTo"), Some("ml-team@example.com"));
    assert_eq!(
        mail[0].header("Subject"),
        Some("Application guestbook has been successfully synced.")
    );
    assert!(
        mail[0].text().expect("body").contains(
            "Application guestbook has been successfully synced at 2026-12-06T08:00:00Z."
        ),
        "{mail:?}"
    );
}
