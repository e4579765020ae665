//! The golden-fixture loop the engine's integration tests share: every `*.yaml` case in a
//! folder, in name order, each checked by the test's own `run_case`; all failures are
//! reported together.

use std::path::{Path, PathBuf};

/// Runs `run_case` on every `*.yaml` in `dir` and fails listing every case that failed;
/// fewer than `at_least` cases is a failure too (a moved or emptied fixture folder).
pub fn run_fixtures(dir: &Path, at_least: usize, run_case: impl Fn(&Path) -> Result<(), String>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("fixtures directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    entries.sort();
    assert!(entries.len() >= at_least, "only {} fixtures", entries.len());
    let failures: Vec<String> = entries
        .iter()
        .filter_map(|path| {
            run_case(path)
                .err()
                .map(|e| format!("{}: {e}", path.display()))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
