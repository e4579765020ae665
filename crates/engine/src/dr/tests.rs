use super::*;
use mooring_core::dr::{DisasterRecoveryPlan, DrOperation};

/// The example plan of `examples/ml-platform` (a golden fixture: the plan users copy).
fn example() -> DisasterRecoveryPlanSpec {
    let text = include_str!("../../../../examples/ml-platform/dr/plan.yaml");
    let v = mooring_core::yaml::parse_one(text).expect("yaml");
    serde_json::from_value::<DisasterRecoveryPlan>(v)
        .expect("plan")
        .spec
}

fn ts(s: &str) -> Timestamp {
    time::parse(s).expect("time")
}

#[test]
fn the_example_plan_is_valid_and_its_failover_steps_follow_the_runbook() {
    let spec = example();
    let d = validate(&spec).expect("valid");
    assert_eq!(d.rto, Some(Duration::from_secs(900)));
    let apps: Vec<String> = spec
        .applications
        .pairs
        .iter()
        .map(|p| p.standby.clone())
        .collect();
    let names: Vec<String> = steps(&spec, FAILOVER, &apps)
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names.first().map(String::as_str), Some("freeze"));
    let pos = |n: &str| names.iter().position(|x| x == n).expect(n);
    assert!(pos("scale") < pos("validate") && pos("validate") < pos("dns"));
    assert_eq!(names.last().map(String::as_str), Some("notify"));
    let back: Vec<String> = steps(&spec, FAILBACK, &apps)
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert!(!back.contains(&"freeze".to_string()));
    assert!(back.iter().position(|n| n == "dns") < back.iter().position(|n| n == "unscale"));
}

#[test]
fn hostile_plans_get_every_problem_named() {
    let mut spec = example();
    spec.standby.cluster = spec.primary.cluster.clone();
    spec.detection.primary_unreachable_for = Some("-5s".into());
    spec.activation.scale[0].kind = "Pod".into();
    spec.activation.scale[0].replicas = -1;
    spec.applications.pairs[0].standby = "Not A Name".into();
    spec.validation.checks[0].http = Some(Default::default());
    if let Some(d) = spec.drill.as_mut() {
        d.failure_mode = Some("meteor".into());
        d.schedule = Some("every sunday".into());
    }
    if let Some(dns) = spec.activation.dns.as_mut() {
        dns.provider.webhook = Some(mooring_core::dr::DnsWebhookSpec {
            url: "http://x".into(),
            zone: None,
        });
        dns.records[0].standby = Default::default();
    }
    let problems = validate(&spec).expect_err("invalid");
    let all = problems.join("\n");
    for needle in [
        "same cluster",
        "primaryUnreachableFor \"-5s\"",
        "scale[0].kind \"Pod\"",
        "replicas -1",
        "\"Not A Name\" is not an Application name",
        "several kinds",
        "failureMode \"meteor\"",
        "schedule \"every sunday\"",
        "exactly one of rfc2136, webhook",
        "records[0].standby",
    ] {
        assert!(all.contains(needle), "{needle:?} missing from:\n{all}");
    }
}

#[test]
fn a_check_needs_exactly_one_kind_and_a_proper_url() {
    let mut c = CheckSpec {
        name: "c".into(),
        ..Default::default()
    };
    assert!(check_kind(&c).expect_err("none").contains("no kind"));
    c.http = Some(mooring_core::dr::HttpCheck {
        url: Some("file:///etc/passwd".into()),
        ..Default::default()
    });
    assert!(check_kind(&c)
        .expect_err("scheme")
        .contains("http:// or https://"));
    c.http = Some(mooring_core::dr::HttpCheck {
        url: Some("http://10.0.0.1/health".into()),
        ..Default::default()
    });
    assert_eq!(check_kind(&c), Ok("http"));
}

fn op_with(steps: &[(&str, &str, Option<&str>)]) -> DrOperation {
    DrOperation {
        kind: FAILOVER.into(),
        phase: RUNNING.into(),
        started_at: "2026-12-06T10:00:05Z".into(),
        failure_at: Some("2026-12-06T10:00:00Z".into()),
        steps: steps
            .iter()
            .map(|(n, p, end)| StepStatus {
                name: n.to_string(),
                phase: p.to_string(),
                finished_at: end.map(str::to_string),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

#[test]
fn the_next_step_is_the_first_not_done_and_a_failed_step_ends_the_operation() {
    let op = op_with(&[
        ("freeze", SUCCEEDED, None),
        ("sync/a", RUNNING, None),
        ("dns", PENDING, None),
    ]);
    assert_eq!(current(&op), Some(1));
    assert_eq!(finished(&op), None);
    let failed = op_with(&[
        ("freeze", SUCCEEDED, None),
        ("validate", FAILED, None),
        ("dns", PENDING, None),
    ]);
    assert_eq!(current(&failed), None);
    assert_eq!(finished(&failed).map(|f| f.0), Some(FAILED));
}

#[test]
fn rto_runs_from_the_failure_to_the_switched_dns() {
    let op = op_with(&[
        ("validate", SUCCEEDED, Some("2026-12-06T10:00:07Z")),
        ("dns", SUCCEEDED, Some("2026-12-06T10:00:08.250Z")),
        ("notify", SUCCEEDED, Some("2026-12-06T10:00:09Z")),
    ]);
    assert_eq!(rto_seconds(&op), Some(8.25));
    let unvalidated = op_with(&[("validate", FAILED, None), ("dns", PENDING, None)]);
    assert_eq!(rto_seconds(&unvalidated), None);
}

#[test]
fn detection_fires_only_after_the_condition_held_long_enough() {
    let d = validate(&example()).expect("valid");
    let now = ts("2026-12-06T10:01:00Z");
    let since = |s: u64| {
        time::format(ts("2026-12-06T10:01:00Z") - time::SignedDuration::from_secs(s as i64))
    };
    let short = since(d.unreachable_for.as_secs() - 1);
    assert_eq!(detection_fires(&d, Some(&short), None, now), None);
    let long = since(d.unreachable_for.as_secs());
    let (why, at) = detection_fires(&d, Some(&long), None, now).expect("fires");
    assert!(why.contains("not answered"));
    assert_eq!(time::format(at), long);
    assert_eq!(detection_fires(&d, None, None, now), None);
}

#[test]
fn config_rpo_is_zero_when_the_standby_runs_the_newest_revision() {
    let hist = vec![
        ("aaa".to_string(), "2026-12-06T09:00:00Z".to_string()),
        ("bbb".to_string(), "2026-12-06T09:50:00Z".to_string()),
        ("ccc".to_string(), "2026-12-06T09:58:00Z".to_string()),
    ];
    assert_eq!(
        config_rpo_seconds(&hist, "ccc", "2026-12-06T10:00:00Z"),
        Some(0.0)
    );
    // The standby lacks bbb and ccc: the oldest lacking change is 10 minutes old.
    assert_eq!(
        config_rpo_seconds(&hist, "aaa", "2026-12-06T10:00:00Z"),
        Some(600.0)
    );
}

#[test]
fn incident_ids_are_readable_and_name_safe() {
    let id = incident_id("drill", "ml-platform", ts("2026-12-06T10:01:02Z"));
    assert_eq!(id, "drill-ml-platform-20261206t100102");
    assert!(mooring_core::name::matches_dns1123_subdomain(&id));
}

#[test]
fn object_names_from_hostile_incident_ids_are_valid_and_distinct() {
    let a = object_name("ml-platform", "INC-1", "failovercompleted");
    let b = object_name("ml-platform", "inc-1", "failovercompleted");
    assert_ne!(a, b);
    assert_eq!(b, "ml-platform-inc-1-failovercompleted");
    for id in ["PD#12 / sev1", "../../etc", &"x".repeat(400), "ünïcode", ""] {
        let n = object_name("p", id, "report");
        assert!(mooring_core::name::matches_dns1123_subdomain(&n), "{n:?}");
        assert_eq!(n, object_name("p", id, "report"));
    }
}
