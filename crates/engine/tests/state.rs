//! Golden-fixture tests of `mooring_engine::state` (pairing desired with live objects
//! and the app's aggregate sync and health).
//!
//! Each `tests/fixtures/state/<case>.yaml` holds the inputs: `desired` objects, `live`
//! objects (every one is managed by the app; those whose key a desired object names are
//! its live counterpart), `ignoreDifferences`, and `error` (substrings of the expected
//! error, for a case that must fail). `<case>.json` is the golden result (`sync`,
//! `health`, `resources`, and each diff's key and status); `BLESS=1 cargo nextest run
//! --workspace -E 'test(state_golden)'` rewrites the golden files.

mod golden;

use mooring_core::app::ResourceIgnoreDifferences;
use mooring_core::ResourceKey;
use mooring_engine::diff::DiffOptions;
use mooring_engine::state::{compare, compared_desired, Live};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Case {
    #[serde(default)]
    desired: Vec<Value>,
    #[serde(default)]
    live: Vec<Value>,
    #[serde(default)]
    ignore_differences: Vec<ResourceIgnoreDifferences>,
    #[serde(default)]
    error: Vec<String>,
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state")
}

fn run_case(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("read: {e}"))?;
    let raw = mooring_core::yaml::parse_one(&text).map_err(|e| format!("yaml: {e}"))?;
    let case: Case = serde_json::from_value(raw).map_err(|e| format!("fixture: {e}"))?;
    let wanted: Vec<ResourceKey> = compared_desired(&case.desired)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let found: BTreeMap<ResourceKey, Value> = case
        .live
        .iter()
        .filter_map(|l| ResourceKey::of(l).map(|k| (k, l.clone())))
        .filter(|(k, _)| wanted.contains(k))
        .collect();
    let live = Live {
        found: &found,
        managed: &case.live,
    };
    let opts = DiffOptions {
        ignore: &case.ignore_differences,
        manager: Some("mooring"),
    };
    let result = compare(&case.desired, &live, &opts, |l| {
        mooring_engine::health::assess(l, None)
    });
    let got = match result {
        Err(e) => {
            let msg = e.to_string();
            if case.error.is_empty() {
                return Err(format!("unexpected error: {msg}"));
            }
            for want in &case.error {
                if !msg.contains(want.as_str()) {
                    return Err(format!("error {msg:?} lacks {want:?}"));
                }
            }
            return Ok(());
        }
        Ok(c) => {
            if !case.error.is_empty() {
                return Err(format!("expected an error, got {:?}", c.sync));
            }
            json!({
                "sync": c.sync,
                "health": c.health,
                "resources": c.resources,
                "diffs": c.diffs.iter().map(|d| json!({
                    "key": d.key.to_string(),
                    "status": d.status,
                })).collect::<Vec<_>>(),
            })
        }
    };
    let got = serde_json::to_string_pretty(&got).map_err(|e| format!("json: {e}"))? + "\n";
    let golden = path.with_extension("json");
    if std::env::var_os("BLESS").is_some() {
        return std::fs::write(&golden, &got).map_err(|e| format!("bless: {e}"));
    }
    let want = std::fs::read_to_string(&golden)
        .map_err(|e| format!("{}: {e} (run with BLESS=1 to create it)", golden.display()))?;
    if want != got {
        return Err(format!(
            "result differs from {}:\n--- got\n{got}\n--- want\n{want}",
            golden.display()
        ));
    }
    Ok(())
}

#[test]
fn state_golden_fixtures() {
    golden::run_fixtures(&fixtures(), 6, run_case);
}
