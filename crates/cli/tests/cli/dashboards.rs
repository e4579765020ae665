//! The example Grafana dashboards (`examples/dashboards/*.json`) and recording rules
//! (`examples/dashboards/mooring.rules.yaml`) against a running Mooring: `mooring up` on
//! the example platform, a real Prometheus scraping its `/metrics` with an admin token
//! (the series naming applications are served only to such a token) and evaluating the
//! rules. Every panel's every query is run through Prometheus' HTTP API and must answer
//! without error and with data, once the example has done what the panels show: converged,
//! synced, taken a new commit (a canary with analysis), evaluated its rollback rules, and
//! drilled its disaster-recovery plan (the fleet has the plan's two regions).

use crate::{assert_example_platform_in_fleet, start_up_example};
use mooring_controller::prometheus::{
    LocalPrometheus, LocalPrometheusOptions, PromClient, PromValue, ScrapeExtras, ScrapeTarget,
};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn dashboards_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/dashboards"
    ))
}

/// A dashboard's panel targets as (panel title, expr), after checking the parts of
/// Grafana's schema the dashboards rely on: a `datasource` variable of type `datasource`
/// for Prometheus, and every panel and target reading from it.
fn panel_targets(file: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(file).expect("dashboard readable");
    let d: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", file.display()));
    let name = file.display();
    assert!(d["uid"].is_string() && d["title"].is_string(), "{name}");
    assert!(
        d["schemaVersion"].as_u64().is_some(),
        "{name}: schemaVersion"
    );
    let vars = d["templating"]["list"].as_array().expect("templating.list");
    assert!(
        vars.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "{name}: a `datasource` variable for Prometheus"
    );
    let source = serde_json::json!({"type": "prometheus", "uid": "${datasource}"});
    let panels = d["panels"].as_array().expect("panels");
    assert!(!panels.is_empty(), "{name}");
    let mut out = Vec::new();
    for p in panels {
        let title = p["title"].as_str().expect("panel title").to_string();
        assert!(
            p["id"].is_u64() && p["gridPos"]["w"].is_u64(),
            "{name}: {title}"
        );
        assert_eq!(p["datasource"], source, "{name}: {title}");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{name}: {title}");
        for t in targets {
            assert_eq!(t["datasource"], source, "{name}: {title}");
            assert!(t["refId"].is_string(), "{name}: {title}");
            let expr = t["expr"].as_str().expect("targets[].expr");
            out.push((format!("{name}: {title}"), expr.to_string()));
        }
    }
    out
}

/// `expr` with the dashboards' variables replaced by real values; no variable may remain.
fn substitute(expr: &str, vars: &[(&str, &str)]) -> String {
    let mut e = expr.to_string();
    for (name, value) in vars {
        e = e.replace(&format!("${{{name}}}"), value);
        e = e.replace(&format!("${name}"), value);
    }
    assert!(!e.contains('$'), "a variable the test does not know: {e}");
    e
}

fn has_data(v: &PromValue) -> bool {
    match v {
        PromValue::Vector(s) => !s.is_empty(),
        PromValue::Matrix(s) => !s.is_empty(),
        PromValue::Scalar(_) | PromValue::String(_) => true,
    }
}

#[test]
fn dashboards_query_a_running_mooring() {
    let data = tempfile::tempdir().expect("tmp");
    let up = start_up_example(
        data.path(),
        "prod-east:environment=production,workload-type=inference;prod-west:environment=production;us-west-2:region=us-west-2;eu-west-1:region=eu-west-1",
    );
    // The rules parse (Prometheus refuses to start on a broken rule file, too).
    let rules = dashboards_dir().join("mooring.rules.yaml");
    let check = std::process::Command::new("promtool")
        .args(["check", "rules"])
        .arg(&rules)
        .output()
        .expect("promtool must be installed (Debian: apt-get install prometheus)");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    // Prometheus scrapes Mooring's /metrics with the admin token, from a file.
    let token_file = data.path().join("prometheus-token");
    std::fs::write(&token_file, &up.token).expect("token file");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let prom = rt
        .block_on(LocalPrometheus::start_with(
            LocalPrometheusOptions {
                binary: None,
                data_dir: data.path().join("prometheus"),
                listen: None,
                scrape_interval: Duration::from_secs(1),
                clusters: vec![],
            },
            ScrapeExtras {
                targets: vec![ScrapeTarget {
                    job: "mooring".into(),
                    address: up.hostport.clone(),
                    token_file: Some(token_file),
                }],
                rule_files: vec![rules],
            },
        ))
        .expect("prometheus starts (Debian: apt-get install prometheus)");
    let client = PromClient::new(&prom.url()).expect("prometheus address");
    let query = |q: &str| rt.block_on(client.query(q, Duration::from_secs(10)));

    // What the panels show: the example converges, is synced over the API and the CLI…
    assert_example_platform_in_fleet(&up.kubeconfig, &up.hostport, &up.token, 5);
    // … drills its disaster-recovery plan (fail the primary, detect, fail over, validate,
    // restore, fail back, report) …
    // (refused until the plan is Ready: its regions' Applications registered)
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let drill = std::process::Command::new(env!("CARGO_BIN_EXE_mooring"))
            .args([
                "dr",
                "drill",
                "ml-platform",
                "--no-wait",
                "--kubeconfig",
                &up.kubeconfig,
            ])
            .output()
            .expect("mooring dr drill");
        if drill.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}{}",
            String::from_utf8_lossy(&drill.stdout),
            String::from_utf8_lossy(&drill.stderr)
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    // … and takes a new commit: a new model version, rolled out as a canary with analysis.
    let repo = data.path().join("repos").join("ml-platform");
    let rollout = repo.join("applications/model-serving/base/rollout.yaml");
    let text = std::fs::read_to_string(&rollout).expect("rollout in the snapshot");
    assert!(
        text.contains("fraud-detector:1.4.2"),
        "the example's model image"
    );
    std::fs::write(
        &rollout,
        text.replace("fraud-detector:1.4.2", "fraud-detector:1.4.3"),
    )
    .expect("write");
    mooring_testkit::git(&repo, &["commit", "-qam", "fraud-detector 1.4.3"]);
    let refresh = std::process::Command::new(env!("CARGO_BIN_EXE_mooring"))
        .args([
            "app",
            "get",
            "model-serving-development",
            "--refresh",
            "--kubeconfig",
            &up.kubeconfig,
        ])
        .output()
        .expect("mooring app get --refresh");
    assert!(
        refresh.status.success(),
        "{}",
        String::from_utf8_lossy(&refresh.stderr)
    );

    // The token opens the scrape (a 401 would leave `up` at 0).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !has_data(&query("up{job=\"mooring\"} == 1").expect("query")) {
        assert!(
            Instant::now() < deadline,
            "Prometheus does not scrape Mooring: see {}",
            prom.log_path().display()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let vars = [
        ("namespace", "argocd"),
        ("app", "model-serving-development"),
    ];
    let mut files: Vec<PathBuf> = std::fs::read_dir(dashboards_dir())
        .expect("examples/dashboards")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    let targets: Vec<(String, String)> = files
        .iter()
        .flat_map(|f| panel_targets(f))
        .map(|(panel, expr)| (panel, substitute(&expr, &vars)))
        .collect();
    // Every query answers without error at once; data may take until the canary's
    // analysis has run and rates have two samples.
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        let mut empty = Vec::new();
        for (panel, expr) in &targets {
            match query(expr) {
                Ok(v) if has_data(&v) => {}
                Ok(_) => empty.push(format!("{panel}: {expr}")),
                Err(e) => panic!("{panel}: {expr}: {e}"),
            }
        }
        if empty.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            // What the DR plan says (a drill that failed before failing over measured no
            // RTO), for whoever reads the failure.
            let plan = std::process::Command::new("kubectl")
                .args(["-n", "argocd", "get", "disasterrecoveryplans", "-o", "yaml"])
                .env("KUBECONFIG", &up.kubeconfig)
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            panic!("panels without data:\n{}\n{plan}", empty.join("\n"));
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}
