//! Golden-fixture tests of `mooring_engine::diff`.
//!
//! Each `tests/fixtures/diff/<case>.yaml` holds the inputs (`desired`, `live`,
//! `ignoreDifferences`, `manager`) and the expectations (`status`, `error`, lines the
//! unified diff must or must not contain, `secrets` that must appear in no output).
//! When the expected status is OutOfSync, `<case>.diff` is the golden unified diff;
//! `BLESS=1 cargo test -p mooring-engine --test diff` rewrites the golden files.

mod golden;

use mooring_core::app::{ResourceIgnoreDifferences, SyncStatusCode};
use mooring_core::ResourceKey;
use mooring_engine::diff::{diff, mask_secret, DiffError, DiffOptions};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Case {
    #[serde(default)]
    desired: Option<Value>,
    #[serde(default)]
    live: Option<Value>,
    #[serde(default)]
    ignore_differences: Vec<ResourceIgnoreDifferences>,
    #[serde(default)]
    manager: Option<String>,
    expect: Expect,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Expect {
    #[serde(default)]
    status: Option<String>,
    /// Substrings of the error message (the case must fail).
    #[serde(default)]
    error: Vec<String>,
    #[serde(default)]
    unified_contains: Vec<String>,
    #[serde(default)]
    unified_lacks: Vec<String>,
    /// Values that must appear in no output (desired, live, unified, error).
    #[serde(default)]
    secrets: Vec<String>,
    #[serde(default)]
    requires_pruning: Option<bool>,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/diff")
}

fn run_case(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("read: {e}"))?;
    let raw = mooring_core::yaml::parse_one(&text).map_err(|e| format!("yaml: {e}"))?;
    let case: Case = serde_json::from_value(raw).map_err(|e| format!("fixture: {e}"))?;
    let opts = DiffOptions {
        ignore: &case.ignore_differences,
        manager: case.manager.as_deref(),
    };
    let started = Instant::now();
    let result = diff(case.desired.as_ref(), case.live.as_ref(), &opts);
    // A hang guard, not a performance figure: runaway jq must be stopped, not waited for.
    if started.elapsed() > Duration::from_secs(20) {
        return Err(format!("diff took {:?}", started.elapsed()));
    }
    let exp = &case.expect;
    let leaks = |what: &str, text: &str| -> Result<(), String> {
        for s in &exp.secrets {
            if text.contains(s.as_str()) {
                return Err(format!("secret value {s:?} leaked into {what}:\n{text}"));
            }
        }
        Ok(())
    };
    match result {
        Err(e) => {
            let msg = e.to_string();
            leaks("the error", &msg)?;
            if exp.error.is_empty() {
                return Err(format!("unexpected error: {msg}"));
            }
            for want in &exp.error {
                if !msg.contains(want.as_str()) {
                    return Err(format!("error {msg:?} lacks {want:?}"));
                }
            }
            Ok(())
        }
        Ok(d) => {
            if !exp.error.is_empty() {
                return Err(format!("expected an error, got {:?}", d.status));
            }
            let status = match d.status {
                SyncStatusCode::Synced => "Synced",
                SyncStatusCode::OutOfSync => "OutOfSync",
                SyncStatusCode::Unknown => "Unknown",
            };
            if let Some(want) = &exp.status {
                if want != status {
                    return Err(format!(
                        "status {status}, want {want}; unified:\n{}\nlive: {}\ndesired: {}",
                        d.unified,
                        d.live.as_ref().map(Value::to_string).unwrap_or_default(),
                        d.desired.as_ref().map(Value::to_string).unwrap_or_default()
                    ));
                }
            }
            if let Some(want) = exp.requires_pruning {
                if d.requires_pruning() != want {
                    return Err(format!("requires_pruning {}", d.requires_pruning()));
                }
            }
            for side in [&d.desired, &d.live].into_iter().flatten() {
                leaks("an output object", &side.to_string())?;
            }
            leaks("the unified diff", &d.unified)?;
            for want in &exp.unified_contains {
                if !d.unified.lines().any(|l| l == want.as_str()) {
                    return Err(format!("unified diff lacks line {want:?}:\n{}", d.unified));
                }
            }
            for bad in &exp.unified_lacks {
                if d.unified.contains(bad.as_str()) {
                    return Err(format!("unified diff contains {bad:?}:\n{}", d.unified));
                }
            }
            if status == "Synced" && !d.unified.is_empty() {
                return Err(format!("Synced but unified is not empty:\n{}", d.unified));
            }
            let golden = path.with_extension("diff");
            if status == "OutOfSync" {
                if std::env::var_os("BLESS").is_some() {
                    std::fs::write(&golden, &d.unified).map_err(|e| format!("bless: {e}"))?;
                } else {
                    let want = std::fs::read_to_string(&golden).map_err(|e| {
                        format!("{}: {e} (run with BLESS=1 to create it)", golden.display())
                    })?;
                    if want != d.unified {
                        return Err(format!(
                            "unified diff differs from {}:\n--- got\n{}\n--- want\n{}",
                            golden.display(),
                            d.unified,
                            want
                        ));
                    }
                }
            }
            Ok(())
        }
    }
}

#[test]
fn diff_golden_fixtures() {
    golden::run_fixtures(&fixtures(), 12, run_case);
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "model", "namespace": "serving"},
        "spec": {"template": {"spec": {"containers": [{"name": "model", "image": "m:1"}]}}}
    })
}

fn jq_rule(expr: &str) -> Vec<ResourceIgnoreDifferences> {
    vec![ResourceIgnoreDifferences {
        group: "apps".into(),
        kind: "Deployment".into(),
        jq_path_expressions: vec![expr.into()],
        ..Default::default()
    }]
}

#[test]
fn diff_runaway_jq_is_stopped() {
    let d = deployment();
    for expr in [
        "repeat(.)",
        "last(range(1e12)) as $x | .spec",
        "[range(1e12)] as $x | .spec",
        "until(false; .)",
        "def f: f | .a; f",
        "def f: (.a | f), .b; f",
        "reduce range(1e15) as $i (.; .) | .spec",
        "[limit(100000000; repeat(1))] as $x | .",
    ] {
        let rules = jq_rule(expr);
        let opts = DiffOptions {
            ignore: &rules,
            manager: None,
        };
        let started = Instant::now();
        let r = diff(Some(&d), Some(&d), &opts);
        let took = started.elapsed();
        match r {
            Err(DiffError::JqLimit { expr: e, reason }) => {
                assert_eq!(e, expr);
                assert!(!reason.is_empty());
            }
            other => panic!("{expr}: expected a limit error, got {other:?}"),
        }
        assert!(took < Duration::from_secs(10), "{expr} took {took:?}");
    }
}

#[test]
fn diff_dangerous_jq_builtins_are_harmless() {
    let mut d = deployment();
    d["spec"]["replicas"] = json!(1);
    let mut live = deployment();
    live["spec"]["replicas"] = json!(3);
    // `halt` would exit the process, `env` would read the controller's environment (and,
    // were it readable, these expressions would remove /spec/replicas and hide the
    // drift); the logging filters would write to stderr. All run (bound with `as`, so
    // they are evaluated, not rejected as non-path expressions) and remove nothing.
    for expr in [
        "halt as $x | .spec.replicas",
        "halt_error as $x | .spec.replicas",
        "(env | .PATH) as $p | .spec.replicas",
        "(stderr | debug) as $x | empty",
    ] {
        let rules = jq_rule(expr);
        let opts = DiffOptions {
            ignore: &rules,
            manager: None,
        };
        let r = diff(Some(&d), Some(&live), &opts).expect(expr);
        assert_eq!(r.status, SyncStatusCode::OutOfSync, "{expr}");
    }
    // `$ENV` is not defined at all.
    let rules = jq_rule("$ENV.PATH as $p | .spec.replicas");
    let opts = DiffOptions {
        ignore: &rules,
        manager: None,
    };
    assert!(matches!(
        diff(Some(&d), Some(&live), &opts),
        Err(DiffError::JqParse { .. })
    ));
    // `*` can allocate without bound in one step and is refused outright; a stray `)`
    // cannot escape the `path(...)` wrapper.
    let rules = jq_rule(r#""x" * 1e12"#);
    let opts = DiffOptions {
        ignore: &rules,
        manager: None,
    };
    assert!(matches!(
        diff(Some(&d), Some(&d), &opts),
        Err(DiffError::JqParse { .. })
    ));
    let rules = jq_rule(".spec) | halt | (.");
    let opts = DiffOptions {
        ignore: &rules,
        manager: None,
    };
    assert!(matches!(
        diff(Some(&d), Some(&d), &opts),
        Err(DiffError::JqParse { .. })
    ));
}

#[test]
fn diff_key_of_and_mask() {
    let k = ResourceKey::of(&deployment()).expect("key");
    assert_eq!(
        (
            k.group.as_str(),
            k.kind.as_str(),
            k.namespace.as_str(),
            k.name.as_str()
        ),
        ("apps", "Deployment", "serving", "model")
    );
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}});
    assert_eq!(ResourceKey::of(&cm).expect("key").group, "");
    assert!(ResourceKey::of(&json!({"kind": "ConfigMap"})).is_none());
    let s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s",
        "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"data\":{\"p\":\"aHVudGVyMg==\"}}"}},
        "data": {"p": "aHVudGVyMg=="}});
    let masked = mask_secret(&s).to_string();
    assert!(!masked.contains("aHVudGVyMg=="), "{masked}");
}
