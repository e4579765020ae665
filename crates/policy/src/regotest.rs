//! Rego unit tests: `mooring policy test-rego`, like `opa test` and `conftest verify`.
//!
//! Policies deserve tests as much as code does, and teams already write them as `test_`
//! rules next to their policies. This module runs them with OPA's meaning, so a suite that
//! passes under `opa test` passes here:
//!
//! * Every rule whose name starts with `test_` in any package is a test (functions are not).
//!   `todo_test_` rules are reported as skipped and not run.
//! * A test **passes when it is defined and `true`**. Undefined ("test result is
//!   undefined"), any other value, or an evaluation error (a conflict, the time limit) fails
//!   it, with the reason and the output of its `print` calls.
//! * `with` overrides (`with input as …`, `with data.x as …`) are plain Rego and work as
//!   written.
//! * A filter (`--run REGEX`) selects tests by their full name `data.pkg.test_name`, as
//!   `opa test --run` does.
//! * Coverage (`--coverage`) merges regorus's per-evaluation line coverage over all tests
//!   and reports a percentage per file and overall.
//!
//! Each test is evaluated separately under the policy's [`Limits`], so a runaway test fails
//! with a time-limit error and the others still run.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::report::{Finding, Report, Severity, Subject};
use super::{Limits, Policy, RegoError, RegoSource, RegoVersion};

/// Errors that stop a test run before any test runs.
#[derive(Debug, thiserror::Error)]
pub enum RegoTestError {
    /// The policies or tests do not compile (file and line in the message).
    #[error(transparent)]
    Compile(#[from] RegoError),
    /// The `--run` filter is not a valid regular expression.
    #[error("invalid --run pattern {pattern:?}: {message}")]
    Filter { pattern: String, message: String },
}

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct TestOptions {
    /// Only tests whose full name (`data.pkg.test_x`) matches.
    pub run: Option<String>,
    /// Collect line coverage.
    pub coverage: bool,
    pub limits: Limits,
}

/// How a test ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    /// Evaluation failed (counted as a failure).
    Error,
    /// A `todo_test_` rule.
    Skip,
}

/// One test's result.
#[derive(Debug, Clone, Serialize)]
pub struct TestResult {
    /// `data.pkg`.
    pub package: String,
    /// `test_x`.
    pub name: String,
    pub file: String,
    /// 1-based line of the rule, 0 when unknown.
    pub line: u32,
    pub outcome: Outcome,
    /// Why it failed: `test result is undefined`, the value, or the error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Output of `print` calls.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub output: Vec<String>,
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub duration: Duration,
}

fn millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

impl TestResult {
    /// `data.pkg.test_x`.
    pub fn full_name(&self) -> String {
        format!("{}.{}", self.package, self.name)
    }
}

/// Line coverage of one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileCoverage {
    pub file: String,
    pub covered: BTreeSet<u32>,
    pub not_covered: BTreeSet<u32>,
}

impl FileCoverage {
    /// Percentage of lines covered (100 for a file without executable lines).
    pub fn percent(&self) -> f64 {
        percent(self.covered.len(), self.not_covered.len())
    }
}

fn percent(covered: usize, not_covered: usize) -> f64 {
    let total = covered + not_covered;
    if total == 0 {
        100.0
    } else {
        covered as f64 * 100.0 / total as f64
    }
}

/// Coverage over all tests.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Coverage {
    pub files: Vec<FileCoverage>,
}

impl Coverage {
    /// Percentage of all lines covered.
    pub fn percent(&self) -> f64 {
        let c = self.files.iter().map(|f| f.covered.len()).sum();
        let n = self.files.iter().map(|f| f.not_covered.len()).sum();
        percent(c, n)
    }

    fn merge(&mut self, report: &regorus::coverage::Report) {
        for file in &report.files {
            let entry = match self.files.iter_mut().position(|f| f.file == file.path) {
                Some(i) => &mut self.files[i],
                None => {
                    self.files.push(FileCoverage {
                        file: file.path.clone(),
                        covered: BTreeSet::new(),
                        not_covered: BTreeSet::new(),
                    });
                    let last = self.files.len() - 1;
                    &mut self.files[last]
                }
            };
            entry.covered.extend(file.covered.iter().copied());
            entry.not_covered.extend(file.not_covered.iter().copied());
        }
        for f in &mut self.files {
            let covered = f.covered.clone();
            f.not_covered.retain(|l| !covered.contains(l));
        }
    }

    /// The JSON form: `{coverage, files: {path: {coverage, covered, not_covered}}}`.
    pub fn to_json(&self) -> serde_json::Value {
        let files: serde_json::Map<String, serde_json::Value> = self
            .files
            .iter()
            .map(|f| {
                (
                    f.file.clone(),
                    serde_json::json!({
                        "coverage": round1(f.percent()),
                        "covered_lines": f.covered.len(),
                        "not_covered_lines": f.not_covered.len(),
                        "not_covered": ranges(&f.not_covered),
                    }),
                )
            })
            .collect();
        serde_json::json!({ "coverage": round1(self.percent()), "files": files })
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// `[3, 4, 5, 9]` → `["3-5", "9"]`.
fn ranges(lines: &BTreeSet<u32>) -> Vec<String> {
    let mut out = Vec::new();
    let mut iter = lines.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end += 1;
            iter.next();
        }
        out.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    out
}

/// The results of a run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TestRun {
    pub results: Vec<TestResult>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage: Option<Coverage>,
}

impl TestRun {
    pub fn passed(&self) -> usize {
        self.count(|o| o == Outcome::Pass)
    }

    /// Failed and errored tests.
    pub fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Fail | Outcome::Error))
    }

    pub fn skipped(&self) -> usize {
        self.count(|o| o == Outcome::Skip)
    }

    fn count(&self, f: impl Fn(Outcome) -> bool) -> usize {
        self.results.iter().filter(|r| f(r.outcome)).count()
    }

    /// Whether every test that ran passed.
    pub fn ok(&self) -> bool {
        self.failed() == 0
    }

    /// `N passed, N failed` (and `, N skipped` when some were).
    pub fn summary(&self) -> String {
        let mut s = format!("{} passed, {} failed", self.passed(), self.failed());
        if self.skipped() > 0 {
            s.push_str(&format!(", {} skipped", self.skipped()));
        }
        s
    }

    /// Text like `opa test`: failures (every test with `verbose`) grouped by file, each
    /// failure explained, then the summary line and, when collected, coverage.
    pub fn render_text(&self, verbose: bool) -> String {
        let mut out = String::new();
        let mut by_file: BTreeMap<&str, Vec<&TestResult>> = BTreeMap::new();
        for r in &self.results {
            if verbose || matches!(r.outcome, Outcome::Fail | Outcome::Error) {
                by_file.entry(&r.file).or_default().push(r);
            }
        }
        for (file, results) in by_file {
            out.push_str(&format!("{file}:\n"));
            for r in results {
                let label = match r.outcome {
                    Outcome::Pass => "PASS",
                    Outcome::Fail => "FAIL",
                    Outcome::Error => "ERROR",
                    Outcome::Skip => "SKIPPED",
                };
                out.push_str(&format!(
                    "{}: {label} ({:.1?})\n",
                    r.full_name(),
                    r.duration
                ));
                if matches!(r.outcome, Outcome::Fail | Outcome::Error) {
                    let line = if r.line > 0 {
                        format!("{}:{}", r.file, r.line)
                    } else {
                        r.file.clone()
                    };
                    out.push_str(&format!(
                        "  {line}: {}\n",
                        r.message.as_deref().unwrap_or("failed")
                    ));
                    for p in &r.output {
                        out.push_str(&format!("  print: {p}\n"));
                    }
                }
            }
            out.push('\n');
        }
        out.push_str(&"-".repeat(80));
        out.push('\n');
        out.push_str(&self.summary());
        out.push('\n');
        if let Some(cov) = &self.coverage {
            out.push_str(&format!("coverage: {:.1}%\n", cov.percent()));
            for f in &cov.files {
                let missing = ranges(&f.not_covered);
                out.push_str(&format!("  {}: {:.1}%", f.file, f.percent()));
                if !missing.is_empty() {
                    out.push_str(&format!(" (not covered: {})", missing.join(", ")));
                }
                out.push('\n');
            }
        }
        out
    }

    /// The JSON form: `{passed, failed, skipped, tests: [...], coverage}`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "passed": self.passed(),
            "failed": self.failed(),
            "skipped": self.skipped(),
            "tests": serde_json::to_value(&self.results).unwrap_or_default(),
        });
        if let Some(cov) = &self.coverage {
            v["coverage"] = cov.to_json();
        }
        v
    }

    /// The results as a [`Report`]: one subject per file, failures as findings.
    pub fn to_report(&self) -> Report {
        let mut subjects: Vec<Subject> = Vec::new();
        for r in &self.results {
            let idx = match subjects.iter().position(|s| s.filename == r.file) {
                Some(i) => i,
                None => {
                    subjects.push(Subject {
                        filename: r.file.clone(),
                        namespace: r.package.trim_start_matches("data.").to_string(),
                        ..Subject::default()
                    });
                    subjects.len() - 1
                }
            };
            let subject = &mut subjects[idx];
            match r.outcome {
                Outcome::Pass => subject.successes += 1,
                Outcome::Skip => {}
                Outcome::Fail | Outcome::Error => subject.findings.push(Finding {
                    severity: Severity::Failure,
                    source: "rego-test".into(),
                    rule: r.full_name(),
                    message: format!(
                        "{}: {}",
                        r.full_name(),
                        r.message.as_deref().unwrap_or("failed")
                    ),
                    resource: String::new(),
                    line: (r.line > 0).then_some(r.line),
                    metadata: if r.output.is_empty() {
                        serde_json::Value::Null
                    } else {
                        serde_json::json!({ "output": r.output })
                    },
                }),
            }
        }
        Report { subjects }
    }
}

/// The `package` of a Rego source, as `data.a.b`.
fn package_of(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let l = l.trim();
        l.strip_prefix("package ")
            .map(|p| format!("data.{}", p.split('#').next().unwrap_or(p).trim()))
    })
}

/// Where `name` is defined among the sources of `package`: (file, 1-based line).
fn locate(sources: &[RegoSource], package: &str, name: &str) -> (String, u32) {
    let mut first_file = None;
    for s in sources {
        if package_of(&s.text).as_deref() != Some(package) {
            continue;
        }
        first_file.get_or_insert_with(|| s.path.clone());
        for (i, line) in s.text.lines().enumerate() {
            if let Some(rest) = line.trim_start().strip_prefix(name) {
                let next = rest.chars().next();
                if !next.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    return (s.path.clone(), u32::try_from(i + 1).unwrap_or(0));
                }
            }
        }
    }
    (first_file.unwrap_or_default(), 0)
}

/// Compiles `sources` (policies and tests together) with `data`, and runs every test.
pub fn run_tests(
    sources: &[RegoSource],
    data: &[serde_json::Value],
    options: &TestOptions,
) -> Result<TestRun, RegoTestError> {
    let filter = match &options.run {
        Some(p) => Some(regex::Regex::new(p).map_err(|e| RegoTestError::Filter {
            pattern: p.clone(),
            message: e.to_string(),
        })?),
        None => None,
    };
    let mut policy = Policy::compile(sources, RegoVersion::Auto, options.limits)?;
    for d in data {
        policy.add_data(d)?;
    }
    let mut run = TestRun::default();
    let mut coverage = options.coverage.then(Coverage::default);
    for package in policy.packages() {
        for name in policy.rule_names(package) {
            let skip = name.starts_with("todo_test_");
            if !skip && !name.starts_with("test_") {
                continue;
            }
            let full = format!("{package}.{name}");
            if filter.as_ref().is_some_and(|f| !f.is_match(&full)) {
                continue;
            }
            let (file, line) = locate(sources, package, &name);
            let mut result = TestResult {
                package: package.clone(),
                name: name.clone(),
                file,
                line,
                outcome: Outcome::Skip,
                message: None,
                output: Vec::new(),
                duration: Duration::ZERO,
            };
            if !skip {
                let start = Instant::now();
                let traced = policy.eval_query_traced(&full, None, options.coverage);
                result.duration = start.elapsed();
                match traced {
                    Ok(t) => {
                        let value = t.value.and_then(|v| v.into_iter().next());
                        let (outcome, message) = match value {
                            Some(regorus::Value::Bool(true)) => (Outcome::Pass, None),
                            None | Some(regorus::Value::Undefined) => {
                                (Outcome::Fail, Some("test result is undefined".to_string()))
                            }
                            Some(other) => (
                                Outcome::Fail,
                                Some(format!(
                                    "test result is {}",
                                    super::rego::from_value(&other)
                                )),
                            ),
                        };
                        result.outcome = outcome;
                        result.message = message;
                        result.output = t.prints;
                        if let (Some(cov), Some(report)) = (coverage.as_mut(), &t.coverage) {
                            cov.merge(report);
                        }
                    }
                    Err(err) => {
                        result.outcome = Outcome::Error;
                        result.message = Some(err.to_string());
                    }
                }
            }
            run.results.push(result);
        }
    }
    run.results
        .sort_by(|a, b| (&a.file, a.line, &a.name).cmp(&(&b.file, b.line, &b.name)));
    if let Some(cov) = &mut coverage {
        cov.files.sort_by(|a, b| a.file.cmp(&b.file));
    }
    run.coverage = coverage;
    Ok(run)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"package k8s.limits

deny[msg] {
  c := input.spec.containers[_]
  not c.resources.limits.memory
  msg := sprintf("%s has no memory limit", [c.name])
}

gpu_cap := 8

unused(x) = y {
  y := x * 2
}
"#;

    const TESTS: &str = r#"package k8s.limits

test_missing_limit_denied {
  count(deny) == 1 with input as {"spec": {"containers": [{"name": "a"}]}}
}

test_limit_allowed {
  count(deny) == 0 with input as {"spec": {"containers": [{"name": "a", "resources": {"limits": {"memory": "1Gi"}}}]}}
}

test_data_override {
  gpu_cap == 16 with data.k8s.limits.gpu_cap as 16
}

test_wrong_expectation {
  print("deny was", deny)
  count(deny) == 5 with input as {"spec": {"containers": [{"name": "a"}]}}
}

test_not_boolean := 7

todo_test_later {
  false
}
"#;

    fn sources() -> Vec<RegoSource> {
        vec![
            RegoSource::new("policy/limits.rego", POLICY),
            RegoSource::new("policy/limits_test.rego", TESTS),
        ]
    }

    fn run(options: TestOptions) -> TestRun {
        run_tests(&sources(), &[], &options).expect("runs")
    }

    #[test]
    fn runs_every_test_with_opa_meaning() {
        let r = run(TestOptions::default());
        let outcome = |n: &str| {
            r.results
                .iter()
                .find(|t| t.name == n)
                .unwrap_or_else(|| panic!("{n} missing"))
                .clone()
        };
        assert_eq!(outcome("test_missing_limit_denied").outcome, Outcome::Pass);
        assert_eq!(outcome("test_limit_allowed").outcome, Outcome::Pass);
        assert_eq!(outcome("test_data_override").outcome, Outcome::Pass);
        let wrong = outcome("test_wrong_expectation");
        assert_eq!(wrong.outcome, Outcome::Fail);
        assert_eq!(wrong.message.as_deref(), Some("test result is undefined"));
        assert_eq!(wrong.file, "policy/limits_test.rego");
        assert_eq!(wrong.line, 15);
        assert!(
            wrong.output.iter().any(|p| p.contains("deny was")),
            "{:?}",
            wrong.output
        );
        assert_eq!(outcome("test_not_boolean").outcome, Outcome::Fail);
        assert_eq!(outcome("todo_test_later").outcome, Outcome::Skip);
        assert_eq!(r.summary(), "3 passed, 2 failed, 1 skipped");
        assert!(!r.ok());
    }

    #[test]
    fn text_output_explains_failures() {
        let r = run(TestOptions::default());
        let text = r.render_text(false);
        assert!(text.contains("policy/limits_test.rego:\n"), "{text}");
        assert!(
            text.contains("data.k8s.limits.test_wrong_expectation: FAIL"),
            "{text}"
        );
        assert!(
            text.contains("policy/limits_test.rego:15: test result is undefined"),
            "{text}"
        );
        assert!(text.contains("print: "), "{text}");
        assert!(
            !text.contains("test_limit_allowed"),
            "passing tests only with -v"
        );
        assert!(text.contains("\n3 passed, 2 failed, 1 skipped\n"), "{text}");
        let verbose = r.render_text(true);
        assert!(verbose.contains("data.k8s.limits.test_limit_allowed: PASS"));
        assert!(verbose.contains("data.k8s.limits.todo_test_later: SKIPPED"));
    }

    #[test]
    fn run_filter_selects_tests() {
        let r = run(TestOptions {
            run: Some("limit_".into()),
            ..TestOptions::default()
        });
        assert_eq!(r.results.len(), 2, "{:?}", r.results);
        assert!(r.ok());
        let err = run_tests(
            &sources(),
            &[],
            &TestOptions {
                run: Some("(".into()),
                ..TestOptions::default()
            },
        )
        .expect_err("bad regex");
        assert!(err.to_string().contains("--run"));
    }

    #[test]
    fn coverage_reports_per_file_and_overall() {
        let r = run(TestOptions {
            coverage: true,
            ..TestOptions::default()
        });
        let cov = r.coverage.as_ref().expect("coverage");
        let policy = cov
            .files
            .iter()
            .find(|f| f.file == "policy/limits.rego")
            .expect("policy file covered");
        assert!(policy.covered.contains(&4), "{policy:?}");
        assert!(policy.percent() > 0.0 && policy.percent() <= 100.0);
        let json = r.to_json();
        assert!(json["coverage"]["coverage"].as_f64().is_some(), "{json}");
        assert!(r.render_text(false).contains("coverage: "));
    }

    #[test]
    fn erroring_and_runaway_tests_fail_with_the_error() {
        let src = vec![RegoSource::new(
            "t_test.rego",
            "package t\n\ntest_conflict {\n  x := {\"a\": 1}\n  y := object.union(x, {})\n  y.a == 1\n}\n\ntest_slow {\n  count([x | some i, j, k; numbers.range(1, 300)[i]; numbers.range(1, 300)[j]; numbers.range(1, 300)[k]; x := i]) > 0\n}\n",
        )];
        let r = run_tests(
            &src,
            &[],
            &TestOptions {
                limits: Limits {
                    eval_timeout: Duration::from_millis(100),
                    ..Limits::default()
                },
                ..TestOptions::default()
            },
        )
        .expect("runs");
        let slow = r
            .results
            .iter()
            .find(|t| t.name == "test_slow")
            .expect("slow");
        assert_eq!(slow.outcome, Outcome::Error);
        assert!(
            slow.message.as_deref().unwrap_or("").contains("time limit"),
            "{slow:?}"
        );
        assert_eq!(r.failed(), 1);
    }

    #[test]
    fn compile_errors_stop_the_run_with_file_and_line() {
        let err = run_tests(
            &[RegoSource::new(
                "bad_test.rego",
                "package t\n\ntest_x {\n  1 ==\n}\n",
            )],
            &[],
            &TestOptions::default(),
        )
        .expect_err("does not compile");
        assert!(err.to_string().starts_with("bad_test.rego:"), "{err}");
    }

    #[test]
    fn report_form_has_one_subject_per_file() {
        let r = run(TestOptions::default());
        let report = r.to_report();
        let file = report
            .subjects
            .iter()
            .find(|s| s.filename == "policy/limits_test.rego")
            .expect("subject");
        assert_eq!(file.successes, 3);
        assert_eq!(file.findings.len(), 2);
        assert!(report.has_failures());
    }
}
