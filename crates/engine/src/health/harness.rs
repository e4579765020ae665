//! `mooring health test DIR`: Argo CD's `TestLuaHealthScript` harness, as a library call.

use super::checks::{file_name, is_real_dir, is_real_file, read_capped, read_dir_sorted};
use super::lua::LuaLimits;
use super::{HealthError, LuaHealthChecks};
use mooring_core::app::{HealthStatus, HealthStatusCode};
use serde_json::Value;
use std::fmt;
use std::path::{Component, Path, PathBuf};

/// Deepest folder nesting searched for `health.lua` below the tree root.
const MAX_WALK_DEPTH: usize = 8;

/// One `tests:` entry of a `health_test.yaml`, judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthTestCase {
    /// The folder holding `health.lua` and `health_test.yaml`.
    pub script_dir: PathBuf,
    /// `inputPath` as written in `health_test.yaml`.
    pub input: String,
    /// `healthStatus` as written (an absent message is the empty string, as in Argo CD).
    pub expected: HealthStatus,
    /// What the script returned, or why it could not be run.
    pub actual: Result<HealthStatus, String>,
    /// Argo CD's verdict: status and message both equal.
    pub passed: bool,
}

/// All cases of a tree, in folder then file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthTestReport {
    pub cases: Vec<HealthTestCase>,
}

impl HealthTestReport {
    pub fn passed(&self) -> usize {
        self.cases.iter().filter(|c| c.passed).count()
    }

    pub fn failed(&self) -> usize {
        self.cases.len() - self.passed()
    }

    /// True when every case passed (and there was at least one).
    pub fn all_passed(&self) -> bool {
        !self.cases.is_empty() && self.failed() == 0
    }
}

fn one_line(s: &str) -> String {
    s.replace('\n', "\\n")
}

impl fmt::Display for HealthTestReport {
    /// A table, one row per case, then `N passed, N failed`; failed rows are followed by
    /// the expected and actual values in full.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: Vec<[String; 5]> = self
            .cases
            .iter()
            .map(|c| {
                let actual = match &c.actual {
                    Ok(h) => h.status.to_string(),
                    Err(_) => "error".to_string(),
                };
                [
                    if c.passed { "PASS" } else { "FAIL" }.to_string(),
                    c.script_dir.display().to_string(),
                    c.input.clone(),
                    c.expected.status.to_string(),
                    actual,
                ]
            })
            .collect();
        let header = ["RESULT", "SCRIPT", "INPUT", "EXPECTED", "ACTUAL"];
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: [&str; 5]| -> fmt::Result {
            let mut out = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                if i + 1 == cells.len() {
                    out.push_str(cell);
                } else {
                    out.push_str(&format!("{cell:<w$}  "));
                }
            }
            writeln!(f, "{}", out.trim_end())
        };
        line(f, header)?;
        for row in &rows {
            line(f, [&row[0], &row[1], &row[2], &row[3], &row[4]])?;
        }
        for c in self.cases.iter().filter(|c| !c.passed) {
            writeln!(f)?;
            writeln!(f, "FAIL {}/{}", c.script_dir.display(), c.input)?;
            writeln!(
                f,
                "  expected: {} {:?}",
                c.expected.status,
                one_line(&c.expected.message)
            )?;
            match &c.actual {
                Ok(h) => writeln!(f, "  actual:   {} {:?}", h.status, one_line(&h.message))?,
                Err(e) => writeln!(f, "  error:    {e}")?,
            }
        }
        writeln!(f)?;
        writeln!(f, "{} passed, {} failed", self.passed(), self.failed())
    }
}

/// Run every `health_test.yaml` under `dir` (an Argo CD `resource_customizations` tree).
///
/// As Argo CD's harness: every folder with a `health.lua` must have a `health_test.yaml`;
/// each case loads `inputPath` (relative to that folder), picks the script **by the
/// object's own group and kind** through the whole tree (so wildcard folders and
/// precedence are exercised too), runs it and requires status and message to equal the
/// expected ones exactly (an omitted message means the empty string).
///
/// A missing or malformed `health_test.yaml` is an error for the whole run. An input that
/// cannot be read or parsed, an `inputPath` that leaves the folder, an object no script
/// matches, and a script error are failed cases.
pub fn run_health_tests(dir: &Path) -> Result<HealthTestReport, HealthError> {
    run_health_tests_with(dir, &LuaLimits::default())
}

/// [`run_health_tests`] with explicit limits.
pub fn run_health_tests_with(
    dir: &Path,
    limits: &LuaLimits,
) -> Result<HealthTestReport, HealthError> {
    let checks = LuaHealthChecks::load_dir(dir)?;
    let mut script_dirs = Vec::new();
    find_script_dirs(dir, 0, &mut script_dirs)?;
    let mut report = HealthTestReport::default();
    for script_dir in script_dirs {
        let test_file = script_dir.join("health_test.yaml");
        let text = read_capped(&test_file, mooring_core::yaml::MAX_YAML_BYTES as u64)?;
        let doc = mooring_core::yaml::parse_one(&text).map_err(|e| HealthError::TestFile {
            path: test_file.clone(),
            message: e.to_string(),
        })?;
        let rel_dir = script_dir
            .strip_prefix(dir)
            .unwrap_or(&script_dir)
            .to_path_buf();
        for (i, test) in tests_of(&doc, &test_file)?.iter().enumerate() {
            let bad = |message: String| HealthError::TestFile {
                path: test_file.clone(),
                message: format!("tests[{i}]: {message}"),
            };
            let input = test
                .get("inputPath")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("inputPath is missing".into()))?
                .to_string();
            let expected = expected_of(test).map_err(bad)?;
            let actual = run_case(&checks, &script_dir, &input, limits);
            let passed = actual.as_ref().is_ok_and(|a| *a == expected);
            report.cases.push(HealthTestCase {
                script_dir: rel_dir.clone(),
                input,
                expected,
                actual,
                passed,
            });
        }
    }
    Ok(report)
}

fn find_script_dirs(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) -> Result<(), HealthError> {
    if is_real_file(&dir.join("health.lua"))? {
        out.push(dir.to_path_buf());
    }
    if depth >= MAX_WALK_DEPTH {
        return Ok(());
    }
    for entry in read_dir_sorted(dir)? {
        if is_real_dir(&entry)? && file_name(&entry) != "testdata" {
            find_script_dirs(&entry, depth + 1, out)?;
        }
    }
    Ok(())
}

fn tests_of<'a>(doc: &'a Value, path: &Path) -> Result<&'a Vec<Value>, HealthError> {
    doc.get("tests")
        .and_then(Value::as_array)
        .ok_or_else(|| HealthError::TestFile {
            path: path.to_path_buf(),
            message: "expected a `tests:` list".into(),
        })
}

fn expected_of(test: &Value) -> Result<HealthStatus, String> {
    let hs = test.get("healthStatus").unwrap_or(&Value::Null);
    let status = hs.get("status").and_then(Value::as_str).unwrap_or("");
    let code = HealthStatusCode::parse(status)
        .ok_or_else(|| format!("healthStatus.status {status:?} is not a health status"))?;
    let message = match hs.get("message") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    Ok(HealthStatus::new(code, message))
}

fn run_case(
    checks: &LuaHealthChecks,
    script_dir: &Path,
    input: &str,
    limits: &LuaLimits,
) -> Result<HealthStatus, String> {
    let rel = Path::new(input);
    if rel.is_absolute()
        || rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(format!(
            "inputPath {input:?} leaves the script folder; use a path below it"
        ));
    }
    let path = script_dir.join(rel);
    // Refuse symlinks anywhere below the script folder, so the input stays in the tree.
    let mut cur = script_dir.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        if std::fs::symlink_metadata(&cur).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(format!("inputPath {input:?} goes through a symlink"));
        }
    }
    let text =
        read_capped(&path, mooring_core::yaml::MAX_YAML_BYTES as u64).map_err(|e| e.to_string())?;
    let obj =
        mooring_core::yaml::parse_one(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let (group, kind) = super::group_kind(&obj);
    let script = checks.lookup(group, kind).ok_or_else(|| {
        format!(
            "no health.lua in the tree matches {}",
            if group.is_empty() {
                kind.to_string()
            } else {
                format!("{group}/{kind}")
            }
        )
    })?;
    script.run(&obj, limits).map_err(|e| e.to_string())
}
