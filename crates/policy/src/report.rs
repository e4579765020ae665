//! The one result model of every policy and compliance run, and its output formats.
//!
//! conftest, Gatekeeper, the lints, schema validation and Terraform checks all produce
//! [`Finding`]s grouped by the [`Subject`] they were found in (a file, or one rendered
//! object of an Application). The shape follows conftest's JSON output (`filename`,
//! `namespace`, `successes`, `failures`, `warnings`, `exceptions`), so scripts written
//! against conftest keep working, and every other format is derived from it.
//!
//! [`render`] turns a report into one of the output formats CI systems read:
//!
//! * `table`: conftest's standard output, `FAIL - file - namespace - message` lines and a
//!   summary `N tests, N passed, N warnings, N failures, N exceptions`.
//! * `json`: conftest's JSON (`[{filename, namespace, successes, failures: [{msg, metadata}],
//!   warnings, exceptions}]`), each result also carrying Mooring's `rule`, `source`,
//!   `resource` and `line`.
//! * `tap`: TAP version 13, one test point per finding and one per success.
//! * `junit`: JUnit XML (written by `quick-junit`, which escapes and drops characters XML
//!   cannot hold), one `testsuite` per subject.
//! * `github`: GitHub Actions workflow commands (`::error file=F,line=L::msg`), escaped as
//!   the runner expects so a message cannot inject a second command.
//! * `sarif`: SARIF 2.1.0 for code-scanning uploads, with one `rules[]` entry per rule id.
//!
//! Rendering is pure and deterministic (no timestamps), so every format has a golden test.

use serde::{Deserialize, Serialize};

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Blocks: a `deny`/`violation` rule, a `deny` constraint, a failed lint or schema check.
    Failure,
    /// Reported only: a `warn` rule, a `warn`/`dryrun` constraint.
    Warning,
    /// A failure excused by an exception rule (conftest `exception`).
    Exception,
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    pub severity: Severity,
    /// What raised it: `conftest`, `gatekeeper`, `lint`, `schema`, `terraform`, `rego-test`.
    pub source: String,
    /// The rule or check id: `main.deny`, `K8sRequiredLabels/must-have-owner`, `lint/latest-tag`.
    pub rule: String,
    pub message: String,
    /// The object it is about, as `group/Kind namespace/name` (empty for whole files).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource: String,
    /// 1-based line in the subject's file, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// Extra structured details (conftest `metadata`, Gatekeeper `details`).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub metadata: serde_json::Value,
}

/// The findings of one subject (a file or a rendered Application object set).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    pub filename: String,
    pub namespace: String,
    /// Checks that ran and passed.
    pub successes: usize,
    pub findings: Vec<Finding>,
}

/// A whole run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub subjects: Vec<Subject>,
}

impl Report {
    /// Whether any finding is a failure (exit code 1 for the CLI).
    pub fn has_failures(&self) -> bool {
        self.findings().any(|f| f.severity == Severity::Failure)
    }

    /// All findings in order.
    pub fn findings(&self) -> impl Iterator<Item = &Finding> {
        self.subjects.iter().flat_map(|s| s.findings.iter())
    }
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Tap,
    Junit,
    Github,
    Sarif,
}

impl Format {
    /// Every format, in the order the CLI lists them.
    pub const ALL: [Format; 6] = [
        Format::Table,
        Format::Json,
        Format::Tap,
        Format::Junit,
        Format::Github,
        Format::Sarif,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Json => "json",
            Format::Tap => "tap",
            Format::Junit => "junit",
            Format::Github => "github",
            Format::Sarif => "sarif",
        }
    }
}

/// An output format name that is not one of [`Format::ALL`].
#[derive(Debug, thiserror::Error)]
#[error("unknown output format {0:?}; expected one of table, json, tap, junit, github, sarif")]
pub struct UnknownFormat(pub String);

impl std::str::FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        // conftest calls the table format `stdout` (its default) and also has `table`.
        let name = match lower.as_str() {
            "stdout" | "standard" | "text" => "table",
            "xml" => "junit",
            other => other,
        };
        Format::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| UnknownFormat(s.to_string()))
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Severity {
    fn label(self) -> &'static str {
        match self {
            Severity::Failure => "FAIL",
            Severity::Warning => "WARN",
            Severity::Exception => "EXCP",
        }
    }
}

impl Finding {
    /// The message with the resource it is about in front, when there is one.
    pub fn display_message(&self) -> String {
        if self.resource.is_empty() {
            self.message.clone()
        } else {
            format!("{}: {}", self.resource, self.message)
        }
    }
}

/// Counts of a report, as in conftest's summary line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub tests: usize,
    pub passed: usize,
    pub warnings: usize,
    pub failures: usize,
    pub exceptions: usize,
}

impl Report {
    /// The totals of the summary line.
    pub fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for subject in &self.subjects {
            t.passed += subject.successes;
            for f in &subject.findings {
                match f.severity {
                    Severity::Failure => t.failures += 1,
                    Severity::Warning => t.warnings += 1,
                    Severity::Exception => t.exceptions += 1,
                }
            }
        }
        t.tests = t.passed + t.failures + t.warnings + t.exceptions;
        t
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

impl std::fmt::Display for Totals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}, {} passed, {}, {}, {}",
            plural(self.tests, "test"),
            self.passed,
            plural(self.warnings, "warning"),
            plural(self.failures, "failure"),
            plural(self.exceptions, "exception"),
        )
    }
}

/// Renders `report` in `format`. The result ends with a newline.
pub fn render(report: &Report, format: Format) -> String {
    match format {
        Format::Table => render_table(report),
        Format::Json => render_json(report),
        Format::Tap => render_tap(report),
        Format::Junit => render_junit(report),
        Format::Github => render_github(report),
        Format::Sarif => render_sarif(report),
    }
}

/// Findings of a subject in conftest's order: failures, warnings, exceptions.
fn ordered(subject: &Subject) -> impl Iterator<Item = &Finding> {
    [Severity::Failure, Severity::Warning, Severity::Exception]
        .into_iter()
        .flat_map(move |sev| subject.findings.iter().filter(move |f| f.severity == sev))
}

/// conftest's standard output: warnings, failures, then exceptions of each subject, a `?`
/// line for a subject no rule ran on, a blank line and the summary.
fn render_table(report: &Report) -> String {
    let mut out = String::new();
    for subject in &report.subjects {
        // conftest prints standard input as `-` and the namespace between dashes.
        let file = if subject.filename == "-" {
            "-".to_string()
        } else {
            format!("- {}", subject.filename)
        };
        let prefix = format!("{file} - {} -", subject.namespace);
        if subject.successes == 0 && subject.findings.is_empty() {
            out.push_str(&format!("? {prefix} no policies found\n"));
            continue;
        }
        for sev in [Severity::Warning, Severity::Failure, Severity::Exception] {
            for f in subject.findings.iter().filter(|f| f.severity == sev) {
                // conftest's own lines carry no rule id; every other check names its
                // rule, which is what `--disable-lint` and constraint lookups need.
                let rule = if f.source == "conftest" || f.rule.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", f.rule)
                };
                out.push_str(&format!(
                    "{} {prefix} {}{rule}\n",
                    f.severity.label(),
                    one_line(&f.display_message())
                ));
            }
        }
    }
    out.push('\n');
    out.push_str(&report.totals().to_string());
    out.push('\n');
    out
}

fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

fn result_json(f: &Finding) -> serde_json::Value {
    let mut obj = serde_json::Map::new();
    obj.insert("msg".into(), f.message.clone().into());
    if !f.metadata.is_null() {
        obj.insert("metadata".into(), f.metadata.clone());
    }
    obj.insert("rule".into(), f.rule.clone().into());
    obj.insert("source".into(), f.source.clone().into());
    if !f.resource.is_empty() {
        obj.insert("resource".into(), f.resource.clone().into());
    }
    if let Some(line) = f.line {
        obj.insert("line".into(), line.into());
    }
    serde_json::Value::Object(obj)
}

/// conftest's JSON shape (see the module docs).
pub fn to_conftest_json(report: &Report) -> serde_json::Value {
    let subjects = report.subjects.iter().map(|s| {
        let of = |sev: Severity| -> Vec<serde_json::Value> {
            s.findings
                .iter()
                .filter(|f| f.severity == sev)
                .map(result_json)
                .collect()
        };
        serde_json::json!({
            "filename": s.filename,
            "namespace": s.namespace,
            "successes": s.successes,
            "warnings": of(Severity::Warning),
            "failures": of(Severity::Failure),
            "exceptions": of(Severity::Exception),
        })
    });
    serde_json::Value::Array(subjects.collect())
}

fn render_json(report: &Report) -> String {
    let mut out = serde_json::to_string_pretty(&to_conftest_json(report))
        .unwrap_or_else(|err| format!("{{\"error\": \"{err}\"}}"));
    out.push('\n');
    out
}

/// TAP 13 in conftest's layout (failures, `# warnings`, `# exceptions`, `# successes`), but
/// with one plan for the whole run so the stream stays valid with several files, and with
/// TODO/SKIP directives so TAP consumers do not fail a run on a warning or an exception.
fn render_tap(report: &Report) -> String {
    let total = report.totals().tests;
    let mut out = format!("TAP version 13\n1..{total}\n");
    let mut n = 0;
    for subject in &report.subjects {
        let file = if subject.filename == "-" {
            "-".to_string()
        } else {
            format!("- {}", subject.filename)
        };
        let prefix = format!("{file} - {} -", subject.namespace);
        for (sev, header, status, directive) in [
            (Severity::Failure, "", "not ok", ""),
            (
                Severity::Warning,
                "# warnings\n",
                "not ok",
                " # TODO warning",
            ),
            (
                Severity::Exception,
                "# exceptions\n",
                "ok",
                " # SKIP exception",
            ),
        ] {
            let mut findings = subject
                .findings
                .iter()
                .filter(|f| f.severity == sev)
                .peekable();
            if findings.peek().is_some() {
                out.push_str(header);
            }
            for f in findings {
                n += 1;
                out.push_str(&format!(
                    "{status} {n} {prefix} {}{directive}\n",
                    one_line(&f.display_message()).replace('#', "\\#"),
                ));
            }
        }
        if subject.successes > 0 {
            out.push_str("# successes\n");
        }
        for _ in 0..subject.successes {
            n += 1;
            out.push_str(&format!("ok {n} {prefix} SUCCESS\n"));
        }
    }
    out
}

/// JUnit XML in conftest's layout: one `testsuite` per namespace, one `testcase` per finding
/// named `file - first line of the message`, one passing `testcase` named after the file per
/// success. Unlike conftest a warning is a passing case (with the warning in `system-out`)
/// and an exception a skipped one, so the XML agrees with the exit code.
fn render_junit(report: &Report) -> String {
    use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
    let mut suites: Vec<TestSuite> = Vec::new();
    for subject in &report.subjects {
        let suite_name = if subject.namespace.is_empty() {
            "mooring".to_string()
        } else {
            subject.namespace.clone()
        };
        let idx = match suites.iter().position(|s| s.name.as_str() == suite_name) {
            Some(i) => i,
            None => {
                suites.push(TestSuite::new(suite_name.clone()));
                suites.len() - 1
            }
        };
        let suite = &mut suites[idx];
        for f in ordered(subject) {
            let message = f.display_message();
            let first_line = message.lines().next().unwrap_or("");
            let status = match f.severity {
                Severity::Failure => {
                    let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    st.set_message(message.clone()).set_type(f.rule.clone());
                    st
                }
                Severity::Warning => TestCaseStatus::success(),
                Severity::Exception => {
                    let mut st = TestCaseStatus::skipped();
                    st.set_message(format!("exception: {message}"));
                    st
                }
            };
            let mut case = TestCase::new(format!("{} - {first_line}", subject.filename), status);
            case.set_classname(f.rule.clone());
            if f.severity == Severity::Warning {
                case.set_system_out(format!("warning: {message}"));
            }
            suite.add_test_case(case);
        }
        for _ in 0..subject.successes {
            let mut case = TestCase::new(subject.filename.clone(), TestCaseStatus::success());
            case.set_classname(suite_name.clone());
            suite.add_test_case(case);
        }
    }
    let mut junit = quick_junit::Report::new("mooring");
    junit.add_test_suites(suites);
    match junit.to_string() {
        Ok(mut xml) => {
            if !xml.ends_with('\n') {
                xml.push('\n');
            }
            xml
        }
        Err(err) => format!("<!-- could not write JUnit XML: {err} -->\n"),
    }
}

/// Escapes the message of a GitHub workflow command.
fn gh_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a property value of a GitHub workflow command.
fn gh_property(s: &str) -> String {
    gh_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// conftest's GitHub output: a group per subject, one annotation per finding (at the
/// policy's line, or line 1 of the file), the number of successful checks, the summary.
fn render_github(report: &Report) -> String {
    let mut out = String::new();
    for subject in &report.subjects {
        let policies = subject.successes + subject.findings.len();
        out.push_str(&format!(
            "::group::Testing {:?} against {policies} policies in namespace {:?}\n",
            gh_data(&subject.filename),
            gh_data(&subject.namespace)
        ));
        let file = gh_property(&subject.filename);
        for f in ordered(subject) {
            let command = match f.severity {
                Severity::Failure => "error",
                Severity::Warning => "warning",
                Severity::Exception => "notice",
            };
            out.push_str(&format!(
                "::{command} file={file},line={},title={}::{}\n",
                f.line.unwrap_or(1),
                gh_property(&f.rule),
                gh_data(&f.display_message())
            ));
        }
        out.push_str(&format!(
            "::notice file={file},line=1::Number of successful checks: {}\n",
            subject.successes
        ));
        out.push_str("::endgroup::\n");
    }
    out.push_str(&report.totals().to_string());
    out.push('\n');
    out
}

/// The SARIF 2.1.0 document of a report.
pub fn to_sarif(report: &Report) -> serde_json::Value {
    let mut rules: Vec<&str> = Vec::new();
    for f in report.findings() {
        if !rules.contains(&f.rule.as_str()) {
            rules.push(&f.rule);
        }
    }
    let rule_objects: Vec<serde_json::Value> = rules
        .iter()
        .map(|id| {
            let severity = report
                .findings()
                .find(|f| f.rule == *id)
                .map(|f| f.severity)
                .unwrap_or(Severity::Failure);
            let description = match severity {
                Severity::Failure => "Policy violation",
                Severity::Warning => "Policy warning",
                Severity::Exception => "Policy exception",
            };
            serde_json::json!({
                "id": id,
                "name": id,
                "shortDescription": { "text": format!("{description}: {id}") },
            })
        })
        .collect();
    let mut results = Vec::new();
    for subject in &report.subjects {
        for f in ordered(subject) {
            let level = match f.severity {
                Severity::Failure => "error",
                Severity::Warning => "warning",
                Severity::Exception => "note",
            };
            let mut physical = serde_json::json!({
                "artifactLocation": { "uri": sarif_uri(&subject.filename) },
            });
            if let Some(line) = f.line {
                physical["region"] = serde_json::json!({ "startLine": line.max(1) });
            }
            let mut result = serde_json::json!({
                "ruleId": f.rule,
                "ruleIndex": rules.iter().position(|r| *r == f.rule).unwrap_or(0),
                "level": level,
                "message": { "text": f.display_message() },
                "locations": [ { "physicalLocation": physical } ],
            });
            if f.severity == Severity::Exception {
                result["suppressions"] = serde_json::json!([{ "kind": "inSource" }]);
            }
            if !f.metadata.is_null() || !subject.namespace.is_empty() {
                result["properties"] = serde_json::json!({
                    "namespace": subject.namespace,
                    "source": f.source,
                    "metadata": f.metadata,
                });
            }
            results.push(result);
        }
    }
    serde_json::json!({
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{
            "tool": { "driver": {
                "name": "mooring",
                "rules": rule_objects,
            }},
            "results": results,
            "invocations": [{
                "executionSuccessful": true,
                "exitCode": i32::from(report.has_failures()),
            }],
        }],
    })
}

/// A file name as a relative URI reference (SARIF wants URIs; paths with spaces or `#` must be
/// percent-encoded, and Windows separators become `/`).
fn sarif_uri(path: &str) -> String {
    let path = path.replace('\\', "/");
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' | b':' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn render_sarif(report: &Report) -> String {
    let mut out = serde_json::to_string_pretty(&to_sarif(report))
        .unwrap_or_else(|err| format!("{{\"error\": \"{err}\"}}"));
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(severity: Severity, rule: &str, message: &str) -> Finding {
        Finding {
            severity,
            source: "conftest".into(),
            rule: rule.into(),
            message: message.into(),
            resource: String::new(),
            line: None,
            metadata: serde_json::Value::Null,
        }
    }

    /// A report with every kind of finding and characters each format must escape.
    fn sample() -> Report {
        let mut with_line = finding(
            Severity::Failure,
            "main.deny",
            "container \"app\" has no memory limit, 100% <bad> & worse",
        );
        with_line.line = Some(7);
        with_line.metadata = serde_json::json!({"query": "data.main.deny"});
        let mut resource = finding(Severity::Warning, "main.warn", "image uses latest\ntag");
        resource.resource = "apps/Deployment ml/train".into();
        Report {
            subjects: vec![
                Subject {
                    filename: "deploy/train job.yaml".into(),
                    namespace: "main".into(),
                    successes: 2,
                    findings: vec![
                        resource,
                        with_line,
                        finding(
                            Severity::Exception,
                            "main.deny_root",
                            "data.main.exception[_][_] == \"root\"",
                        ),
                    ],
                },
                Subject {
                    filename: "ok.yaml".into(),
                    namespace: "main".into(),
                    successes: 1,
                    findings: vec![],
                },
            ],
        }
    }

    fn golden(format: Format) {
        let path = format!(
            "{}/tests/fixtures/policy/conftest/report/sample.{}",
            env!("CARGO_MANIFEST_DIR"),
            format.name()
        );
        let got = render(&sample(), format);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &got).expect("write golden");
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{path}: {e} (run with UPDATE_GOLDEN=1)"));
        assert_eq!(got, want, "{format} output differs from {path}");
    }

    #[test]
    fn golden_table() {
        golden(Format::Table);
        let text = render(&sample(), Format::Table);
        assert!(text.ends_with("6 tests, 3 passed, 1 warning, 1 failure, 1 exception\n"));
    }

    #[test]
    fn golden_json() {
        golden(Format::Json);
        let v: serde_json::Value =
            serde_json::from_str(&render(&sample(), Format::Json)).expect("json");
        assert_eq!(v[0]["filename"], "deploy/train job.yaml");
        assert_eq!(v[0]["failures"][0]["metadata"]["query"], "data.main.deny");
        assert_eq!(v[1]["failures"], serde_json::json!([]));
    }

    #[test]
    fn golden_tap() {
        golden(Format::Tap);
        let text = render(&sample(), Format::Tap);
        assert!(text.contains("1..6\n"));
        assert_eq!(text.lines().filter(|l| l.starts_with("not ok")).count(), 2);
    }

    #[test]
    fn golden_junit() {
        golden(Format::Junit);
        let text = render(&sample(), Format::Junit);
        assert!(text.starts_with("<?xml"));
        assert!(text.contains("&lt;bad&gt; &amp; worse"), "{text}");
        assert!(text.contains("failures=\"1\""), "{text}");
    }

    #[test]
    fn golden_github() {
        golden(Format::Github);
        let text = render(&sample(), Format::Github);
        assert!(
            text.contains("::error file=deploy/train job.yaml,line=7,title=main.deny::container")
        );
        assert!(text.contains("100%25"), "percent escaped: {text}");
        assert!(
            !text.contains("latest\ntag"),
            "a newline in a message cannot start a new command"
        );
    }

    #[test]
    fn golden_sarif() {
        golden(Format::Sarif);
        let v = to_sarif(&sample());
        assert_eq!(v["version"], "2.1.0");
        assert_eq!(v["runs"][0]["tool"]["driver"]["name"], "mooring");
        let results = v["runs"][0]["results"].as_array().expect("results");
        assert_eq!(results.len(), 3);
        for r in results {
            let idx = r["ruleIndex"].as_u64().expect("index") as usize;
            assert_eq!(
                v["runs"][0]["tool"]["driver"]["rules"][idx]["id"],
                r["ruleId"]
            );
            assert!(["error", "warning", "note"].contains(&r["level"].as_str().expect("level")));
        }
        assert_eq!(
            results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            "deploy/train%20job.yaml"
        );
        assert_eq!(
            results[0]["locations"][0]["physicalLocation"]["region"]["startLine"],
            7
        );
    }

    #[test]
    fn formats_parse_from_their_names() {
        for f in Format::ALL {
            assert_eq!(f.name().parse::<Format>().expect("parses"), f);
        }
        assert_eq!("stdout".parse::<Format>().expect("alias"), Format::Table);
        assert!("yaml".parse::<Format>().is_err());
    }

    #[test]
    fn empty_report_renders_in_every_format() {
        for f in Format::ALL {
            let text = render(&Report::default(), f);
            assert!(text.ends_with('\n'), "{f}");
        }
        assert_eq!(
            render(&Report::default(), Format::Table),
            "\n0 tests, 0 passed, 0 warnings, 0 failures, 0 exceptions\n"
        );
    }
}
