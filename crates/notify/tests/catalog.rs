//! Argo CD's notifications catalog, applied verbatim, over Applications as Argo CD writes
//! them: every standard trigger's condition, `oncePer`, the delivery state, and the
//! rendered webhook and Slack payloads, compared to goldens (`BLESS=1` rewrites them).

#[path = "../../engine/tests/golden/mod.rs"]
mod golden;

use mooring_notify::config::Config;
use mooring_notify::payload::Payload;
use mooring_notify::template::Commits;
use mooring_notify::{plan, Inputs};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const TRIGGERS: [&str; 8] = [
    "on-created",
    "on-deleted",
    "on-deployed",
    "on-health-degraded",
    "on-sync-failed",
    "on-sync-running",
    "on-sync-status-unknown",
    "on-sync-succeeded",
];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The catalog's data, plus what a user adds: a webhook and a Slack service, the
/// context, and a subscription of every app to every catalog trigger.
fn config() -> Config {
    let text = std::fs::read_to_string(fixtures().join("catalog/install.yaml")).expect("catalog");
    let cm = mooring_core::yaml::parse_one(&text).expect("catalog parses");
    let mut data: BTreeMap<String, String> =
        serde_json::from_value(cm["data"].clone()).expect("string data");
    data.insert(
        "service.webhook.hook".into(),
        "url: https://hooks.example.com/argocd\nheaders:\n- name: X-Token\n  value: $hook-token\n"
            .into(),
    );
    data.insert(
        "service.slack".into(),
        "token: $slack-token\nusername: argocd\nicon: \":rocket:\"\n".into(),
    );
    data.insert(
        "context".into(),
        "argocdUrl: https://argocd.example.com\n".into(),
    );
    data.insert(
        "subscriptions".into(),
        format!(
            "- recipients: [slack:ml-ops, hook]\n  triggers: [{}]\n",
            TRIGGERS.join(", ")
        ),
    );
    let secret: BTreeMap<String, String> = [
        ("hook-token".to_string(), "h00k".to_string()),
        ("slack-token".to_string(), "xoxb-test".to_string()),
    ]
    .into();
    let (config, errors) = Config::parse(&data, &secret);
    assert!(errors.is_empty(), "{errors:?}");
    config
}

fn body(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

fn render_plan(app: &Value) -> Value {
    let config = config();
    let now = mooring_core::time::parse("2026-01-02T10:00:00Z").expect("time");
    let p = plan(Inputs {
        config: &config,
        object: app,
        project_annotations: &BTreeMap::new(),
        commits: &Commits::new(),
        now,
    });
    let sends: Vec<Value> = p
        .sends
        .iter()
        .map(|s| {
            let payloads: Vec<Value> = s
                .payloads
                .iter()
                .map(|p| match p {
                    Payload::Http(m) => json!({
                        "method": m.method,
                        "url": m.url,
                        "headers": m.headers,
                        "body": body(&m.body),
                    }),
                    Payload::Email(m) => json!({"email": m.to}),
                })
                .collect();
            json!({
                "trigger": s.trigger,
                "condition": s.condition,
                "service": s.service,
                "serviceType": s.service_type,
                "recipient": s.recipient,
                "templates": s.templates,
                "stateKey": s.state_key,
                "payloads": payloads,
            })
        })
        .collect();
    json!({
        "sends": sends,
        "errors": p.errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "state": p.annotation().map(|a| serde_json::from_str::<Value>(&a).expect("json state")),
    })
}

#[test]
fn catalog_goldens() {
    golden::run_fixtures(&fixtures().join("apps"), 9, |path| {
        let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
        let app = mooring_core::yaml::parse_one(&text).map_err(|e| e.to_string())?;
        let got = render_plan(&app);
        let want_path = path.with_extension("golden.json");
        let pretty = serde_json::to_string_pretty(&got).map_err(|e| e.to_string())? + "\n";
        if std::env::var_os("BLESS").is_some() {
            std::fs::write(&want_path, &pretty).map_err(|e| e.to_string())?;
            return Ok(());
        }
        let want = std::fs::read_to_string(&want_path)
            .map_err(|e| format!("{}: {e} (BLESS=1 writes it)", want_path.display()))?;
        if want != pretty {
            return Err(format!("differs from {}:\n{pretty}", want_path.display()));
        }
        Ok(())
    });
}

/// Each catalog trigger fires on the fixture written for it, and a second evaluation
/// with the new state sends nothing (at most once per `oncePer` value).
#[test]
fn each_trigger_fires_once() {
    let cases = [
        ("created", "on-created"),
        ("deleted", "on-deleted"),
        ("deployed", "on-deployed"),
        ("degraded", "on-health-degraded"),
        ("sync-failed", "on-sync-failed"),
        ("sync-running", "on-sync-running"),
        ("status-unknown", "on-sync-status-unknown"),
        ("deployed", "on-sync-succeeded"),
    ];
    let config = config();
    let now = mooring_core::time::parse("2026-01-02T10:00:00Z").expect("time");
    for (file, trigger) in cases {
        let text =
            std::fs::read_to_string(fixtures().join(format!("apps/{file}.yaml"))).expect("fixture");
        let mut app = mooring_core::yaml::parse_one(&text).expect("yaml");
        let inputs = |app: &Value| {
            plan(Inputs {
                config: &config,
                object: app,
                project_annotations: &BTreeMap::new(),
                commits: &Commits::new(),
                now,
            })
        };
        let first = inputs(&app);
        let fired: Vec<(&str, &str)> = first
            .sends
            .iter()
            .filter(|s| s.trigger == trigger)
            .map(|s| (s.service.as_str(), s.recipient.as_str()))
            .collect();
        assert_eq!(
            fired,
            vec![("hook", ""), ("slack", "ml-ops")],
            "{file}: {trigger}"
        );
        let annotation = first.annotation().expect("state written");
        app["metadata"]["annotations"] = json!({mooring_notify::state::ANNOTATION: annotation});
        let second = inputs(&app);
        assert!(
            second.sends.is_empty(),
            "{file}: sent again: {:?}",
            second.sends
        );
        assert!(!second.state_changed, "{file}");
    }
}
