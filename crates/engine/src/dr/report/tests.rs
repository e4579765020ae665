//! The drill report from a recorded drill, against golden files
//! (`BLESS=1 cargo nextest run --workspace -E 'test(dr::report)'` rewrites them), and the
//! renderers against hostile text.

use super::*;
use mooring_core::dr::{DrillState, StepStatus};
use serde_json::json;

fn plan() -> DisasterRecoveryPlan {
    serde_json::from_value(json!({
        "apiVersion": "mooring.dev/v1alpha1", "kind": "DisasterRecoveryPlan",
        "metadata": {"name": "ml-platform", "namespace": "argocd"},
        "spec": {
            "primary": {"cluster": "us-west-2"},
            "standby": {"cluster": "eu-west-1", "region": "eu-west-1 (Ireland)"},
            "applications": {"pairs": [{"primary": "ml-platform-primary", "standby": "ml-platform-dr"}]},
            "objectives": {"rto": "15m", "rpo": "5m"},
        }
    }))
    .expect("plan")
}

fn step(name: &str, phase: &str, from: &str, to: &str, message: &str) -> StepStatus {
    StepStatus {
        name: name.into(),
        phase: phase.into(),
        started_at: Some(format!("2026-12-06T03:00:{from}Z")),
        finished_at: (!to.is_empty()).then(|| format!("2026-12-06T03:00:{to}Z")),
        message: message.into(),
    }
}

fn op(
    kind: &str,
    phase: &str,
    steps: Vec<StepStatus>,
    validation: Vec<CheckResult>,
) -> DrOperation {
    DrOperation {
        kind: kind.into(),
        incident: "drill-20261206-0300".into(),
        trigger: "drill".into(),
        started_at: steps[0].started_at.clone().unwrap_or_default(),
        failure_at: Some("2026-12-06T03:00:01Z".into()),
        phase: phase.into(),
        finished_at: steps.last().and_then(|s| s.finished_at.clone()),
        message: String::new(),
        steps,
        validation,
        rto_seconds: None,
        rpo_seconds: Some(2.5),
        replication_lag_seconds: Some(2.5),
    }
}

fn check(name: &str, passed: bool, message: &str) -> CheckResult {
    CheckResult {
        name: name.into(),
        passed,
        message: message.into(),
        checked_at: Some("2026-12-06T03:00:20Z".into()),
    }
}

fn drill() -> DrillState {
    DrillState {
        incident: "drill-20261206-0300".into(),
        failure_mode: "scale-to-zero".into(),
        trigger: "scheduled".into(),
        started_at: "2026-12-06T03:00:00Z".into(),
        stage: "Reporting".into(),
        injected_at: Some("2026-12-06T03:00:01Z".into()),
        detected_at: Some("2026-12-06T03:00:05Z".into()),
        injected: vec![],
        steps: vec![
            step("report", "Running", "40", "", ""),
            step("inject", "Succeeded", "00", "01", "scaled 2 workloads to 0"),
            step("detect", "Succeeded", "01", "05", "primary app Degraded"),
            step("restore", "Succeeded", "21", "25", ""),
        ],
        failover: Some(op(
            "Failover",
            "Succeeded",
            vec![
                step("freeze", "Succeeded", "05", "06", ""),
                step("sync/ml-platform-dr", "Succeeded", "06", "15", ""),
                step("validate", "Succeeded", "15", "20", "4/4 checks passed"),
                step(
                    "dns",
                    "Succeeded",
                    "20",
                    "21",
                    "inference.ml.example.com → 127.0.77.12",
                ),
            ],
            vec![
                check("apps-healthy", true, "ml-platform-dr Synced and Healthy"),
                check("inference-health", true, "HTTP 200"),
            ],
        )),
        failback: Some(op(
            "Failback",
            "Succeeded",
            vec![
                step("sync/ml-platform-primary", "Succeeded", "26", "30", ""),
                step("dns", "Succeeded", "30", "31", ""),
            ],
            vec![],
        )),
    }
}

fn golden(name: &str, got: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/dr/report/golden")
        .join(name);
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, got).expect("bless");
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with BLESS=1 to create it)", path.display()));
    assert_eq!(
        got,
        want,
        "{} differs (BLESS=1 rewrites it)",
        path.display()
    );
}

#[test]
fn a_passed_drill_measures_rto_from_the_injection_to_the_validated_standby() {
    let r = DrillReport::build(&plan(), &drill());
    // 03:00:01 injected → 03:00:21 end of the failover's dns step (after validate).
    assert_eq!(r.rto_seconds, Some(20.0));
    assert_eq!(r.rpo_seconds, Some(2.5));
    assert_eq!(r.rto_met, Some(true));
    assert_eq!(r.rpo_met, Some(true));
    assert!(r.passed, "{:?}", r.failures);
    assert_eq!(r.objectives.rto_seconds, Some(900.0));
    assert_eq!(r.standby.region, "eu-west-1 (Ireland)");
    assert_eq!(r.primary.region, "us-west-2");
    let names: Vec<&str> = r.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "inject",
            "detect",
            "failover/freeze",
            "failover/sync/ml-platform-dr",
            "failover/validate",
            "failover/dns",
            "restore",
            "failback/sync/ml-platform-primary",
            "failback/dns",
            "report"
        ]
    );
    assert_eq!(r.steps[3].seconds, Some(9.0));
    let v: serde_json::Value = serde_json::from_str(&r.to_json()).expect("json");
    for key in ["rtoSeconds", "rpoSeconds", "passed", "steps", "validation"] {
        assert!(v.get(key).is_some(), "{key} in {v}");
    }
    assert_eq!(v["steps"][0]["startedAt"], "2026-12-06T03:00:00Z");
    golden("passed.json", &r.to_json());
    golden("passed.md", &r.to_markdown());
    golden("passed.xml", &r.to_junit());
}

#[test]
fn a_drill_fails_on_a_failed_check_a_missed_rto_or_a_failed_failback() {
    let mut p = plan();
    p.spec.objectives = Some(mooring_core::dr::Objectives {
        rto: Some("10s".into()),
        rpo: Some("1s".into()),
    });
    let mut d = drill();
    if let Some(f) = d.failover.as_mut() {
        f.validation[1] = check("inference-health", false, "HTTP 503: no ready endpoints");
    }
    if let Some(b) = d.failback.as_mut() {
        b.phase = "Failed".into();
        b.message = "sync/ml-platform-primary timed out after 5m".into();
    }
    let r = DrillReport::build(&p, &d);
    assert!(!r.passed);
    assert_eq!(r.rto_met, Some(false));
    assert_eq!(r.rpo_met, Some(false));
    let all = r.failures.join("\n");
    for want in [
        "the failback Failed: sync/ml-platform-primary timed out after 5m",
        "validation check inference-health failed: HTTP 503: no ready endpoints",
        "RTO 20.0s exceeds the objective 10s",
        "RPO 2.5s exceeds the objective 1s",
    ] {
        assert!(all.contains(want), "{want} in {all}");
    }
    golden("failed.md", &r.to_markdown());
    golden("failed.xml", &r.to_junit());
}

#[test]
fn a_standby_that_never_validated_has_no_rto_and_misses_the_objective() {
    let mut d = drill();
    if let Some(f) = d.failover.as_mut() {
        f.phase = "Failed".into();
        f.steps[2].phase = "Failed".into();
        // DNS never moves to an unvalidated standby.
        f.steps[3].phase = "Pending".into();
        f.rpo_seconds = None;
        f.replication_lag_seconds = None;
    }
    d.failback = None;
    let r = DrillReport::build(&plan(), &d);
    assert_eq!(r.rto_seconds, None);
    assert_eq!(r.rto_met, Some(false));
    assert_eq!(
        r.rpo_met, None,
        "no measured lag: the RPO objective is not judged"
    );
    assert!(r
        .failures
        .iter()
        .any(|f| f == "RTO not measured: the failover never got a validated standby serving (validate or dns did not succeed)"));
    assert!(r.failures.iter().any(|f| f == "the failback did not run"));
    let v: serde_json::Value = serde_json::from_str(&r.to_json()).expect("json");
    assert_eq!(v["rtoSeconds"], serde_json::Value::Null);
}

#[test]
fn an_unreadable_objective_fails_the_drill_naming_it() {
    let mut p = plan();
    p.spec.objectives = Some(mooring_core::dr::Objectives {
        rto: Some("fifteen minutes".into()),
        rpo: None,
    });
    let r = DrillReport::build(&p, &drill());
    assert!(!r.passed);
    assert_eq!(
        r.failures,
        ["objective rto \"fifteen minutes\" is not a duration"]
    );
}

const HOSTILE: &str = "<script>alert(\"x\")</script> & ]]> | row\nnext\u{1b}[31m\u{0}\u{7}end";

#[test]
fn hostile_text_is_escaped_in_every_format() {
    let mut d = drill();
    d.incident = "INC-<1>&\"2\"".into();
    if let Some(f) = d.failover.as_mut() {
        f.steps[1].message = HOSTILE.into();
        f.steps[1].phase = "Failed".into();
        f.validation[1] = check("inference-<health>", false, HOSTILE);
    }
    let r = DrillReport::build(&plan(), &d);

    let xml = r.to_junit();
    let parsed = quick_junit::Report::deserialize_from_str(&xml)
        .unwrap_or_else(|e| panic!("valid JUnit XML: {e}\n{xml}"));
    let suite = &parsed.test_suites[0];
    assert_eq!(suite.name.as_str(), "dr-drill/ml-platform/INC-<1>&\"2\"");
    let failed: Vec<&str> = suite
        .test_cases
        .iter()
        .filter(|c| !matches!(c.status, quick_junit::TestCaseStatus::Success { .. }))
        // `report` is skipped (running while the report is written), the others failed.
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        failed,
        [
            "failover/sync/ml-platform-dr",
            "report",
            "inference-<health>"
        ]
    );
    assert!(!xml.contains('\u{0}') && !xml.contains('\u{7}') && !xml.contains('\u{1b}'));
    assert!(!xml.contains("<script>"));

    let md = r.to_markdown();
    assert!(!md.contains("<script>"), "{md}");
    assert!(md.contains("&lt;script>"), "{md}");
    assert!(md.contains("\\| row\\nnext"), "{md}");
    assert!(!md.contains('\u{0}') && !md.contains('\u{1b}'));
    // Every table row is still one line with its columns.
    for l in md.lines().filter(|l| l.starts_with("| failover/")) {
        assert_eq!(l.matches(" | ").count(), 5, "{l}");
    }

    let v: serde_json::Value = serde_json::from_str(&r.to_json()).expect("json");
    assert_eq!(
        v["validation"][1]["message"], HOSTILE,
        "JSON keeps the text as is"
    );
}

#[test]
fn the_validation_report_has_one_line_per_check_and_the_count() {
    let out = validation_report(&[
        check("apps-healthy", true, "ml-platform-dr Synced and Healthy"),
        check(
            "feature-store",
            false,
            "tcp redis.feature-store:6379: connection refused\nretry",
        ),
    ]);
    assert_eq!(
        out,
        "✅ apps-healthy: ml-platform-dr Synced and Healthy\n\
         ❌ feature-store: tcp redis.feature-store:6379: connection refused\\nretry\n\
         1/2 checks passed: validation FAILED\n"
    );
    assert_eq!(
        validation_report(&[check("a", true, "")]),
        "✅ a\n1/1 checks passed\n"
    );
}
