//! `mooring health test DIR`: Argo CD's `TestLuaHealthScript` harness, as a library call.
//!
//! Argo CD reads `health_test.yaml` and every test object with `sigs.k8s.io/yaml` into Go
//! structs (`TestStructure{Tests []IndividualTest}`, `IndividualTest{InputPath,
//! HealthStatus}` in `util/lua/health_test.go`), so a file means here what it means there
//! ([`mooring_core::yaml::GoYaml::Sigs`]): field names match case-insensitively
//! (`inputpath` is `inputPath`), only a file's first YAML document counts (a trailing `---`
//! document is ignored), and a key written twice keeps its last value; each repeated key is
//! reported as a warning naming the file and the key, and so is a field Argo CD does not
//! read.
//!
//! Where Argo CD stops the whole test at the first unreadable `health_test.yaml`, Mooring
//! fails that file (one failed entry saying why) and runs the other folders' cases.

use super::checks::{file_name, is_real_dir, is_real_file, kind, read_capped, read_dir_sorted};
use super::lua::LuaLimits;
use super::{HealthError, LuaHealthChecks};
use mooring_core::app::{HealthStatus, HealthStatusCode};
use mooring_core::files::{EntryKind, Files};
use mooring_core::yaml::{go_struct, parse_go_first, GoShape, GoYaml};
use serde::Deserialize;
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
    /// `inputPath` as written in `health_test.yaml` (`health_test.yaml` itself for the entry
    /// of a test file that could not be read).
    pub input: String,
    /// `healthStatus` as written (an absent message is the empty string, as in Argo CD);
    /// `None` when there is no valid expectation to compare with.
    pub expected: Option<HealthStatus>,
    /// What the script returned, or why it could not be run.
    pub actual: Result<HealthStatus, String>,
    /// Argo CD's verdict: status and message both equal.
    pub passed: bool,
}

/// All cases of a tree, in folder then file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthTestReport {
    pub cases: Vec<HealthTestCase>,
    /// Things Argo CD passes over silently, said out loud: repeated keys (the last value
    /// is used), fields it does not read, a test file without tests. Each names its file.
    pub warnings: Vec<String>,
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
                    c.expected
                        .as_ref()
                        .map_or_else(|| "-".to_string(), |e| e.status.to_string()),
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
            if let Some(expected) = &c.expected {
                writeln!(
                    f,
                    "  expected: {} {:?}",
                    expected.status,
                    one_line(&expected.message)
                )?;
            }
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
/// expected ones exactly (an omitted message means the empty string). Files are decoded as
/// Argo CD decodes them (see the module docs).
///
/// A missing or unreadable `health_test.yaml` fails that folder (one failed entry) and the
/// run goes on. An input that cannot be read or parsed, an `inputPath` that is missing or
/// leaves the folder, an expectation that is not a health status, an object no script
/// matches, and a script error are failed cases. Only a tree that cannot be walked, or
/// whose scripts cannot be loaded, is an error.
///
/// The tree is read through `files` (the CLI passes `mooring_source::files::StdFiles`).
pub fn run_health_tests(files: &dyn Files, dir: &Path) -> Result<HealthTestReport, HealthError> {
    run_health_tests_with(files, dir, &LuaLimits::default())
}

/// [`run_health_tests`] with explicit limits.
pub fn run_health_tests_with(
    files: &dyn Files,
    dir: &Path,
    limits: &LuaLimits,
) -> Result<HealthTestReport, HealthError> {
    let checks = LuaHealthChecks::load_dir(files, dir)?;
    let mut script_dirs = Vec::new();
    find_script_dirs(files, dir, 0, &mut script_dirs)?;
    let mut report = HealthTestReport::default();
    for script_dir in script_dirs {
        let rel_dir = script_dir
            .strip_prefix(dir)
            .unwrap_or(&script_dir)
            .to_path_buf();
        let test_file = script_dir.join(TEST_FILE);
        let shown = rel_dir.join(TEST_FILE);
        let tests = match read_test_file(files, &test_file, &shown, &mut report.warnings) {
            Ok(tests) => tests,
            Err(message) => {
                report.cases.push(HealthTestCase {
                    script_dir: rel_dir,
                    input: TEST_FILE.to_string(),
                    expected: None,
                    actual: Err(message),
                    passed: false,
                });
                continue;
            }
        };
        if tests.is_empty() {
            report.warnings.push(format!(
                "{}: no tests, so {} is not tested (Argo CD runs none either)",
                shown.display(),
                rel_dir.join("health.lua").display()
            ));
        }
        for (i, test) in tests.into_iter().enumerate() {
            let input = test.input_path.unwrap_or_default();
            let (expected, actual) = match expected_of(test.health_status) {
                _ if input.is_empty() => (
                    None,
                    Err(format!("tests[{i}]: inputPath is missing or empty")),
                ),
                Err(message) => (None, Err(format!("tests[{i}]: {message}"))),
                Ok(expected) => {
                    let actual = run_case(
                        files,
                        &checks,
                        &script_dir,
                        &rel_dir,
                        &input,
                        limits,
                        &mut report.warnings,
                    );
                    (Some(expected), actual)
                }
            };
            let passed = matches!((&expected, &actual), (Some(e), Ok(a)) if e == a);
            report.cases.push(HealthTestCase {
                script_dir: rel_dir.clone(),
                input,
                expected,
                actual,
                passed,
            });
        }
    }
    // An input used by several cases is read each time; say each thing once.
    let mut seen = std::collections::BTreeSet::new();
    report.warnings.retain(|w| seen.insert(w.clone()));
    Ok(report)
}

const TEST_FILE: &str = "health_test.yaml";

/// `health.HealthStatus` (gitops-engine): `json:"status"`, `json:"message"`.
const STATUS_SHAPE: GoShape =
    GoShape::Struct(&[("status", GoShape::Str), ("message", GoShape::Str)]);
/// `IndividualTest`: no json tags, so the Go field names.
const CASE_SHAPE: GoShape =
    GoShape::Struct(&[("InputPath", GoShape::Str), ("HealthStatus", STATUS_SHAPE)]);
/// `TestStructure`.
const FILE_SHAPE: GoShape = GoShape::Struct(&[("Tests", GoShape::List(&CASE_SHAPE))]);

#[derive(Deserialize)]
struct RawFile {
    #[serde(rename = "Tests", default)]
    tests: Vec<RawCase>,
}

#[derive(Deserialize)]
struct RawCase {
    #[serde(rename = "InputPath", default)]
    input_path: Option<String>,
    #[serde(rename = "HealthStatus", default)]
    health_status: Option<RawStatus>,
}

#[derive(Deserialize, Default)]
struct RawStatus {
    #[serde(default)]
    status: String,
    #[serde(default)]
    message: String,
}

/// Decodes the file a YAML object or test file is read from as Argo CD does, adding its
/// repeated keys to `warnings` (named as `shown`).
fn decode(text: &str, shown: &Path, warnings: &mut Vec<String>) -> Result<Value, String> {
    let doc =
        parse_go_first(text, GoYaml::Sigs).map_err(|e| format!("{}: {e}", shown.display()))?;
    warnings.extend(
        doc.duplicate_keys
            .iter()
            .map(|d| format!("{}: {d}, as Argo CD does", shown.display())),
    );
    Ok(doc.value)
}

/// The cases of one `health_test.yaml`, or why the file cannot be used.
fn read_test_file(
    files: &dyn Files,
    path: &Path,
    shown: &Path,
    warnings: &mut Vec<String>,
) -> Result<Vec<RawCase>, String> {
    let text = read_capped(files, path, mooring_core::yaml::MAX_YAML_BYTES as u64).map_err(
        |e| match e {
            HealthError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                format!(
                    "{}: missing; every folder with a health.lua needs one, as in Argo CD",
                    shown.display()
                )
            }
            e => e.to_string(),
        },
    )?;
    let doc = decode(&text, shown, warnings)?;
    let (doc, unknown) = go_struct(&doc, FILE_SHAPE, GoYaml::Sigs);
    warnings.extend(unknown.iter().map(|field| {
        format!(
            "{}: {field} is not a field Argo CD reads (tests[].inputPath, tests[].healthStatus.status, tests[].healthStatus.message); ignored",
            shown.display()
        )
    }));
    let file = RawFile::deserialize(&doc).map_err(|e| format!("{}: {e}", shown.display()))?;
    Ok(file.tests)
}

fn find_script_dirs(
    files: &dyn Files,
    dir: &Path,
    depth: usize,
    out: &mut Vec<PathBuf>,
) -> Result<(), HealthError> {
    if is_real_file(files, &dir.join("health.lua"))? {
        out.push(dir.to_path_buf());
    }
    if depth >= MAX_WALK_DEPTH {
        return Ok(());
    }
    for entry in read_dir_sorted(files, dir)? {
        if is_real_dir(files, &entry)? && file_name(&entry) != "testdata" {
            find_script_dirs(files, &entry, depth + 1, out)?;
        }
    }
    Ok(())
}

fn expected_of(status: Option<RawStatus>) -> Result<HealthStatus, String> {
    let RawStatus { status, message } = status.unwrap_or_default();
    let code = HealthStatusCode::parse(&status)
        .ok_or_else(|| format!("healthStatus.status {status:?} is not a health status"))?;
    Ok(HealthStatus::new(code, message))
}

fn run_case(
    files: &dyn Files,
    checks: &LuaHealthChecks,
    script_dir: &Path,
    rel_dir: &Path,
    input: &str,
    limits: &LuaLimits,
    warnings: &mut Vec<String>,
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
        if kind(files, &cur).is_ok_and(|k| k == Some(EntryKind::Symlink)) {
            return Err(format!("inputPath {input:?} goes through a symlink"));
        }
    }
    let text = read_capped(files, &path, mooring_core::yaml::MAX_YAML_BYTES as u64)
        .map_err(|e| e.to_string())?;
    let shown = rel_dir.join(rel);
    // Argo CD unmarshals into a map: an empty document is an empty object.
    let obj = match decode(&text, &shown, warnings)? {
        Value::Null => Value::Object(Default::default()),
        obj @ Value::Object(_) => obj,
        other => {
            return Err(format!(
                "{}: the document is {}, not an object",
                shown.display(),
                kind_of(&other)
            ))
        }
    };
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

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
