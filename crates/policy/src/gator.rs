//! gator `Suite` files (`mooring policy verify`), with `gator verify`'s pass/fail meaning.
//!
//! Teams that keep Gatekeeper policies in Git usually test them with `gator verify`: a
//! `suite.yaml` (`apiVersion: test.gatekeeper.sh/v1alpha1`, `kind: Suite`) lists tests,
//! each naming a ConstraintTemplate file, a constraint file and cases. Mooring runs the same
//! files unchanged so those suites keep passing (or failing) for the same reasons:
//!
//! * Files are decoded as gator decodes them (go-yaml v3, then `encoding/json`; see
//!   [`mooring_core::yaml`]): a suite's field names match in any case (`Tests`, `inventory`),
//!   YAML 1.2 scalars (`violations: yes` is the word), and a mapping key written twice makes
//!   the file invalid, with an error naming the file and the key. A suite, template or
//!   constraint file is its first YAML document; what follows a `---` is not read.
//! * Object and inventory files are split as gator splits them (`reader.ReadUnstructureds`):
//!   at every `\n---`, dropping blank and comment-only lines, skipping chunks left empty.
//!   So a trailing empty `---` is harmless, while a second non-empty document is a second
//!   object, and a case's `object` file must hold exactly one (an `AdmissionReview` is
//!   reviewed as its request: operation, object, oldObject, userInfo); `inventory` files may
//!   hold many, which become `data.inventory` (and the Namespaces `namespaceSelector`
//!   needs).
//! * Paths are relative to the suite file. The caller resolves them (`run_suite` takes a
//!   reader), so this module stays free of I/O.
//! * Each assertion counts the violations whose message matches its `message` regular
//!   expression (every violation when absent) and compares with `violations`: `yes` (the
//!   default) means at least one, `no` none, a number exactly that many. A case passes when
//!   all its assertions hold; it must have at least one. Violations of every enforcement
//!   action count, as in gator.
//! * A test with `invalid: true` passes when its constraint is rejected, and runs no cases.
//! * `skip: true` on a suite, test or case skips it; skipped entries neither pass nor fail.
//! * A template that does not compile, a constraint of an unknown kind, or an unreadable
//!   file is an error of the test (gator's "error"), never a silent pass. A suite file that
//!   cannot be read fails on its own ([`suite_report`]); gator stops there, Mooring goes on
//!   with the other suites. Fields gator does not read are reported as warnings.

use mooring_core::yaml::{self, GoShape, GoYaml};
use serde::Deserialize;
use serde_json::Value as Json;

use super::gatekeeper::{Gatekeeper, GatekeeperError, Review};
use super::rego::Limits;
use super::report::{Finding, Report, Severity, Subject};

/// Errors of reading a suite file.
#[derive(Debug, thiserror::Error)]
pub enum GatorError {
    #[error(transparent)]
    Yaml(#[from] yaml::YamlError),
    /// The document is not a `test.gatekeeper.sh` Suite.
    #[error("not a gator Suite (apiVersion {api_version:?}, kind {kind:?}); want test.gatekeeper.sh/v1alpha1 Suite")]
    NotASuite { api_version: String, kind: String },
    /// The Suite does not have the expected shape.
    #[error("invalid Suite: {0}")]
    Invalid(String),
}

/// A parsed suite file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Suite {
    pub skip: bool,
    pub tests: Vec<Test>,
    /// Fields gator does not read (it ignores them), one message each.
    pub warnings: Vec<String>,
}

/// One template + constraint pair and its cases.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Test {
    pub name: String,
    pub template: String,
    pub constraint: String,
    /// The constraint is expected to be rejected.
    pub invalid: bool,
    pub skip: bool,
    pub cases: Vec<Case>,
}

/// One object under review and what is expected of it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Case {
    pub name: String,
    pub object: String,
    pub inventory: Vec<String>,
    pub assertions: Vec<Assertion>,
    pub skip: bool,
}

/// How many matching violations an assertion expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expected {
    /// At least one (gator's default).
    #[default]
    Yes,
    /// None.
    No,
    /// Exactly this many.
    Exactly(u64),
}

/// One assertion of a case.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Assertion {
    pub violations: Expected,
    /// A regular expression; only violations whose message matches are counted.
    pub message: Option<String>,
}

/// Raw shapes, as written in YAML.
mod raw {
    use serde::Deserialize;

    #[derive(Deserialize)]
    pub struct Suite {
        #[serde(default)]
        pub skip: bool,
        #[serde(default)]
        pub tests: Vec<Test>,
    }

    #[derive(Deserialize)]
    pub struct Test {
        #[serde(default)]
        pub name: String,
        #[serde(default)]
        pub template: String,
        #[serde(default)]
        pub constraint: String,
        #[serde(default)]
        pub invalid: bool,
        #[serde(default)]
        pub skip: bool,
        #[serde(default)]
        pub cases: Vec<Case>,
    }

    #[derive(Deserialize)]
    pub struct Case {
        #[serde(default)]
        pub name: String,
        #[serde(default)]
        pub object: String,
        #[serde(default)]
        pub inventory: Vec<String>,
        #[serde(default)]
        pub assertions: Vec<Assertion>,
        #[serde(default)]
        pub skip: bool,
    }

    #[derive(Deserialize)]
    pub struct Assertion {
        #[serde(default)]
        pub violations: Option<serde_json::Value>,
        #[serde(default)]
        pub message: Option<String>,
    }
}

/// `verify.Assertion`.
const ASSERTION_SHAPE: GoShape =
    GoShape::Struct(&[("violations", GoShape::Any), ("message", GoShape::Any)]);
/// `verify.Case`.
const CASE_SHAPE: GoShape = GoShape::Struct(&[
    ("name", GoShape::Any),
    ("object", GoShape::Any),
    ("inventory", GoShape::Any),
    ("assertions", GoShape::List(&ASSERTION_SHAPE)),
    ("skip", GoShape::Any),
]);
/// `verify.Test`.
const TEST_SHAPE: GoShape = GoShape::Struct(&[
    ("name", GoShape::Any),
    ("template", GoShape::Any),
    ("constraint", GoShape::Any),
    ("cases", GoShape::List(&CASE_SHAPE)),
    ("invalid", GoShape::Any),
    ("skip", GoShape::Any),
]);
/// `verify.Suite`: its own fields, the `ObjectMeta` it embeds, and the type and object
/// metadata every Kubernetes-style file carries (read to recognise a suite, not decoded).
const SUITE_SHAPE: GoShape = GoShape::Struct(&[
    ("tests", GoShape::List(&TEST_SHAPE)),
    ("skip", GoShape::Any),
    ("apiVersion", GoShape::Any),
    ("kind", GoShape::Any),
    ("metadata", GoShape::Any),
    ("name", GoShape::Any),
    ("namespace", GoShape::Any),
    ("labels", GoShape::Any),
    ("annotations", GoShape::Any),
]);

/// Whether a file is a gator suite, by gator's rule: its first document's `apiVersion` group
/// is `test.gatekeeper.sh` and its `kind` is `Suite` (exact keys). A file that is not YAML
/// gator can read counts as a suite when a line says `kind: Suite`, so that it is reported
/// as a broken suite rather than skipped.
pub fn is_suite(text: &str) -> bool {
    match yaml::parse_go_first(text, GoYaml::Sigs) {
        Ok(doc) => suite_type(&doc.value).is_ok(),
        Err(_) => text.lines().any(|l| {
            let l = l.trim();
            l == "kind: Suite" || l == "kind: \"Suite\"" || l == "kind: 'Suite'"
        }),
    }
}

/// gator's test for a suite: the exact `apiVersion` and `kind` keys, group
/// `test.gatekeeper.sh` and kind `Suite`.
fn suite_type(doc: &Json) -> Result<(), GatorError> {
    let field = |k: &str| doc.get(k).and_then(Json::as_str).unwrap_or("").to_string();
    let (api_version, kind) = (field("apiVersion"), field("kind"));
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    if group != "test.gatekeeper.sh" || kind != "Suite" {
        return Err(GatorError::NotASuite { api_version, kind });
    }
    Ok(())
}

/// Parses a suite file (its first YAML document, as gator reads it).
pub fn parse_suite(text: &str) -> Result<Suite, GatorError> {
    let doc = yaml::parse_go_first(text, GoYaml::V3)?.value;
    suite_type(&doc)?;
    let (doc, unknown) = yaml::go_struct(&doc, SUITE_SHAPE, GoYaml::V3);
    let warnings = unknown
        .into_iter()
        .map(|field| format!("{field} is not a field gator reads; ignored"))
        .collect();
    let raw: raw::Suite =
        raw::Suite::deserialize(&doc).map_err(|e| GatorError::Invalid(e.to_string()))?;
    let mut tests = Vec::new();
    for t in raw.tests {
        let mut cases = Vec::new();
        for c in t.cases {
            let mut assertions = Vec::new();
            for a in c.assertions {
                let violations = match a.violations {
                    // An `IntOrString`: go-yaml v3 reads unquoted `yes`/`no` as the words;
                    // a boolean (`true`) cannot be one, and gator refuses the suite.
                    None | Some(Json::Null) => Expected::Yes,
                    Some(Json::String(s)) if s == "yes" => Expected::Yes,
                    Some(Json::String(s)) if s == "no" => Expected::No,
                    Some(Json::Number(n)) if n.as_u64().is_some() => {
                        Expected::Exactly(n.as_u64().unwrap_or_default())
                    }
                    Some(other) => {
                        return Err(GatorError::Invalid(format!(
                            "test {:?} case {:?}: assertion violations {other} must be a nonnegative integer, \"yes\" or \"no\"",
                            t.name, c.name
                        )))
                    }
                };
                assertions.push(Assertion {
                    violations,
                    message: a.message,
                });
            }
            cases.push(Case {
                name: c.name,
                object: c.object,
                inventory: c.inventory,
                assertions,
                skip: c.skip,
            });
        }
        tests.push(Test {
            name: t.name,
            template: t.template,
            constraint: t.constraint,
            invalid: t.invalid,
            skip: t.skip,
            cases,
        });
    }
    Ok(Suite {
        skip: raw.skip,
        tests,
        warnings,
    })
}

/// Reads the objects of an object or inventory file as gator's `ReadUnstructureds` does:
/// split at every `\n---`, blank and comment-only lines dropped, chunks left empty skipped,
/// each chunk's first document an object (an empty one is an empty object).
pub fn read_objects(text: &str) -> Result<Vec<Json>, GatorError> {
    let mut objects = Vec::new();
    for chunk in text.split("\n---") {
        let kept: String = chunk
            .split('\n')
            .filter(|line| {
                let t = line.trim();
                !t.is_empty() && !t.starts_with('#')
            })
            .flat_map(|line| [line, "\n"])
            .collect();
        if kept.is_empty() {
            continue;
        }
        objects.push(read_object(&kept)?);
    }
    Ok(objects)
}

/// A file's first document as one object, as gator's `readUnstructured` reads templates and
/// constraints.
pub fn read_object(text: &str) -> Result<Json, GatorError> {
    match yaml::parse_go_first(text, GoYaml::V3)?.value {
        Json::Null => Ok(Json::Object(Default::default())),
        obj @ Json::Object(_) => Ok(obj),
        other => Err(GatorError::Invalid(format!(
            "the document is {}, not an object",
            match other {
                Json::Array(_) => "a list",
                Json::String(_) => "a string",
                _ => "a scalar",
            }
        ))),
    }
}

/// The result of a whole suite.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SuiteResult {
    pub skipped: bool,
    pub tests: Vec<TestResult>,
    /// The suite's [`Suite::warnings`].
    pub warnings: Vec<String>,
}

/// The result of one test.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TestResult {
    pub name: String,
    /// Why the test could not run (or, for `invalid` tests, why it failed).
    pub error: Option<String>,
    pub skipped: bool,
    pub cases: Vec<CaseResult>,
}

/// The result of one case.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CaseResult {
    pub name: String,
    pub passed: bool,
    pub skipped: bool,
    /// Why it failed.
    pub message: Option<String>,
}

impl TestResult {
    /// No error and no failed case.
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.cases.iter().all(|c| c.passed || c.skipped)
    }
}

impl SuiteResult {
    /// Whether every test and case that ran passed.
    pub fn passed(&self) -> bool {
        self.tests.iter().all(TestResult::passed)
    }

    /// `(passed, failed)` counted over cases, plus one failure per test error.
    pub fn counts(&self) -> (usize, usize) {
        let mut passed = 0;
        let mut failed = 0;
        for t in &self.tests {
            if t.error.is_some() {
                failed += 1;
            } else if t.cases.is_empty() && !t.skipped {
                // An `invalid` test that held counts as one success.
                passed += 1;
            }
            for c in &t.cases {
                match (c.skipped, c.passed) {
                    (true, _) => {}
                    (false, true) => passed += 1,
                    (false, false) => failed += 1,
                }
            }
        }
        (passed, failed)
    }

    /// The suite as a report: each test error and failed case is a failure finding, each
    /// passed case a success.
    pub fn to_report(&self, filename: &str) -> Report {
        let mut subject = Subject {
            filename: filename.to_string(),
            namespace: String::new(),
            successes: self.counts().0,
            findings: Vec::new(),
        };
        let finding = |rule: String, message: String| Finding {
            severity: Severity::Failure,
            source: "gator".to_string(),
            rule,
            message,
            resource: String::new(),
            line: None,
            metadata: Json::Null,
        };
        for w in &self.warnings {
            subject.findings.push(Finding {
                severity: Severity::Warning,
                ..finding("gator/unknown-field".to_string(), w.clone())
            });
        }
        for t in &self.tests {
            if let Some(error) = &t.error {
                subject
                    .findings
                    .push(finding(t.name.clone(), error.clone()));
            }
            for c in t.cases.iter().filter(|c| !c.passed && !c.skipped) {
                subject.findings.push(finding(
                    format!("{}/{}", t.name, c.name),
                    c.message.clone().unwrap_or_else(|| "failed".to_string()),
                ));
            }
        }
        Report {
            subjects: vec![subject],
        }
    }
}

/// Runs every test of `suite`. `read` returns the text of a file named relative to the
/// suite's directory.
pub fn run_suite(
    suite: &Suite,
    read: &mut dyn FnMut(&str) -> std::io::Result<String>,
    limits: Limits,
) -> SuiteResult {
    if suite.skip {
        return SuiteResult {
            skipped: true,
            tests: Vec::new(),
            warnings: suite.warnings.clone(),
        };
    }
    let tests = suite
        .tests
        .iter()
        .map(|t| {
            if t.skip {
                TestResult {
                    name: t.name.clone(),
                    skipped: true,
                    ..TestResult::default()
                }
            } else {
                run_test(t, read, limits)
            }
        })
        .collect();
    SuiteResult {
        skipped: false,
        tests,
        warnings: suite.warnings.clone(),
    }
}

/// Runs one suite file and reports it under `filename`: its results, or one failure saying
/// why the file cannot be used as a suite (unreadable, not YAML gator can read, not the
/// shape of a Suite). Every caller (`policy verify`, `mooring check`) goes through here, so
/// one broken suite fails alone and the others still run.
pub fn suite_report(
    filename: &str,
    text: Result<String, String>,
    read: &mut dyn FnMut(&str) -> std::io::Result<String>,
    limits: Limits,
) -> Report {
    match text.and_then(|t| parse_suite(&t).map_err(|e| e.to_string())) {
        Ok(suite) => run_suite(&suite, read, limits).to_report(filename),
        Err(message) => Report {
            subjects: vec![Subject {
                filename: filename.to_string(),
                namespace: String::new(),
                successes: 0,
                findings: vec![Finding {
                    severity: Severity::Failure,
                    source: "gator".to_string(),
                    rule: "gator/invalid".to_string(),
                    message,
                    resource: String::new(),
                    line: None,
                    metadata: Json::Null,
                }],
            }],
        },
    }
}

fn read_file(
    read: &mut dyn FnMut(&str) -> std::io::Result<String>,
    path: &str,
) -> Result<Vec<Json>, String> {
    let text = read(path).map_err(|e| format!("reading {path}: {e}"))?;
    let objects = read_objects(&text).map_err(|e| format!("{path}: {e}"))?;
    if objects.is_empty() {
        return Err(format!("{path} defines no objects"));
    }
    Ok(objects)
}

/// A template or constraint file: its first document.
fn read_first(
    read: &mut dyn FnMut(&str) -> std::io::Result<String>,
    path: &str,
) -> Result<Json, String> {
    let text = read(path).map_err(|e| format!("reading {path}: {e}"))?;
    read_object(&text).map_err(|e| format!("{path}: {e}"))
}

/// A case's object file: exactly one object.
fn read_one(
    read: &mut dyn FnMut(&str) -> std::io::Result<String>,
    path: &str,
) -> Result<Json, String> {
    let mut objects = read_file(read, path)?;
    if objects.len() != 1 {
        return Err(format!(
            "{path} defines {} objects; want exactly one",
            objects.len()
        ));
    }
    Ok(objects.remove(0))
}

fn run_test(
    t: &Test,
    read: &mut dyn FnMut(&str) -> std::io::Result<String>,
    limits: Limits,
) -> TestResult {
    let mut result = TestResult {
        name: t.name.clone(),
        ..TestResult::default()
    };
    let gk = match load(t, read, limits) {
        Ok(gk) => gk,
        Err(Load::Test(error)) => {
            result.error = Some(error);
            return result;
        }
        Err(Load::Constraint(error)) => {
            if !t.invalid {
                result.error = Some(format!("adding constraint: {error}"));
            }
            return result;
        }
    };
    if t.invalid {
        result.error = Some(format!(
            "constraint {} was accepted, but the test expects it to be invalid",
            t.constraint
        ));
        return result;
    }
    for c in &t.cases {
        if c.skip {
            result.cases.push(CaseResult {
                name: c.name.clone(),
                skipped: true,
                ..CaseResult::default()
            });
            continue;
        }
        let outcome = run_case(&gk, c, read);
        result.cases.push(CaseResult {
            name: c.name.clone(),
            passed: outcome.is_ok(),
            skipped: false,
            message: outcome.err(),
        });
    }
    result
}

enum Load {
    /// The test cannot run.
    Test(String),
    /// The constraint was rejected (what `invalid: true` tests expect).
    Constraint(String),
}

fn load(
    t: &Test,
    read: &mut dyn FnMut(&str) -> std::io::Result<String>,
    limits: Limits,
) -> Result<Gatekeeper, Load> {
    if t.template.is_empty() {
        return Err(Load::Test("missing template".to_string()));
    }
    if t.constraint.is_empty() {
        return Err(Load::Test("missing constraint".to_string()));
    }
    let template = read_first(read, &t.template).map_err(Load::Test)?;
    let mut gk = Gatekeeper::new(limits);
    gk.add_template(&template)
        .map_err(|e| Load::Test(format!("adding template: {e}")))?;
    let constraint = read_first(read, &t.constraint).map_err(Load::Test)?;
    match gk.add_constraint(&constraint) {
        Ok(()) => Ok(gk),
        Err(e @ GatekeeperError::InvalidConstraint { .. }) => Err(Load::Constraint(e.to_string())),
        Err(e) => Err(Load::Test(format!("adding constraint: {e}"))),
    }
}

fn run_case(
    gk: &Gatekeeper,
    c: &Case,
    read: &mut dyn FnMut(&str) -> std::io::Result<String>,
) -> Result<(), String> {
    if c.object.is_empty() {
        return Err("the case must define object".to_string());
    }
    if c.assertions.is_empty() {
        return Err("the case must define at least one assertion".to_string());
    }
    let object = read_one(read, &c.object)?;
    let mut inventory = Vec::new();
    for path in &c.inventory {
        inventory.extend(read_file(read, path)?);
    }
    let mut gk = gk.clone();
    if !inventory.is_empty() {
        gk.set_inventory(&inventory);
    }
    let violations = if is_admission_review(&object) {
        let request = object
            .get("request")
            .filter(|r| r.is_object())
            .ok_or("the AdmissionReview has no request")?;
        gk.review_request(request, None)
    } else {
        gk.review(&Review::create(&object))
    }
    .map_err(|e| e.to_string())?;
    let messages: Vec<&str> = violations.iter().map(|v| v.message.as_str()).collect();
    for a in &c.assertions {
        let matching = match &a.message {
            None => messages.len(),
            Some(pattern) => {
                let re = regex::Regex::new(pattern)
                    .map_err(|e| format!("invalid message regex {pattern:?}: {e}"))?;
                messages.iter().filter(|m| re.is_match(m)).count()
            }
        };
        let containing = a
            .message
            .as_ref()
            .map(|m| format!(" containing {m:?}"))
            .unwrap_or_default();
        let failure = match a.violations {
            Expected::Yes if matching == 0 => Some("at least 1".to_string()),
            Expected::No if matching > 0 => Some("none".to_string()),
            Expected::Exactly(n) if matching as u64 != n => Some(format!("exactly {n}")),
            _ => None,
        };
        if let Some(want) = failure {
            return Err(format!(
                "got {matching} violations{containing} but want {want}: got messages {messages:?}"
            ));
        }
    }
    Ok(())
}

fn is_admission_review(obj: &Json) -> bool {
    obj.get("kind").and_then(Json::as_str) == Some("AdmissionReview")
        && obj
            .get("apiVersion")
            .and_then(Json::as_str)
            .is_some_and(|v| v.starts_with("admission.k8s.io/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn fixtures() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/policy/gatekeeper/gator")
    }

    fn run(dir: &Path, suite_file: &str) -> SuiteResult {
        let text = std::fs::read_to_string(dir.join(suite_file)).expect("suite readable");
        let suite = parse_suite(&text).expect("suite parses");
        let mut read = |p: &str| std::fs::read_to_string(dir.join(p));
        run_suite(&suite, &mut read, Limits::default())
    }

    #[test]
    fn passing_suite_passes_with_gators_meaning() {
        let result = run(&fixtures(), "suite.yaml");
        for t in &result.tests {
            assert!(t.error.is_none(), "{}: {:?}", t.name, t.error);
            for c in &t.cases {
                assert!(
                    c.passed || c.skipped,
                    "{}/{}: {:?}",
                    t.name,
                    c.name,
                    c.message
                );
            }
        }
        assert!(result.passed());
        assert!(result.tests[0].cases[4].skipped);
        assert!(result.tests[2].skipped);
        // 4 + 3 passed cases, and the invalid-constraint test.
        assert_eq!(result.counts(), (8, 0));
        let report = result.to_report("suite.yaml");
        assert!(!report.has_failures());
        assert_eq!(report.subjects[0].successes, 8);
    }

    #[test]
    fn failing_suite_fails_each_case_for_its_reason() {
        let result = run(&fixtures(), "failing-suite.yaml");
        assert!(!result.passed());
        let cases = &result.tests[0].cases;
        let why = |i: usize| cases[i].message.clone().unwrap_or_default();
        assert!(cases.iter().all(|c| !c.passed), "{cases:?}");
        assert!(
            why(0).contains("got 2 violations but want none"),
            "{}",
            why(0)
        );
        assert!(why(1).contains("want exactly 3"), "{}", why(1));
        assert!(why(2).contains("containing \"owner\""), "{}", why(2));
        assert!(why(3).contains("2 objects"), "{}", why(3));
        assert!(why(4).contains("missing.yaml"), "{}", why(4));
        assert!(why(5).contains("assertion"), "{}", why(5));
        assert!(result.tests[1]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("expects it to be invalid")));
        assert!(result.tests[2]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("template")));
        let report = result.to_report("failing-suite.yaml");
        assert!(report.has_failures());
        assert_eq!(report.findings().count(), 8);
        assert_eq!(
            report.findings().next().map(|f| f.rule.as_str()),
            Some("wrong-expectations/expects-none-but-gets-two")
        );
    }

    #[test]
    fn files_are_decoded_as_gator_decodes_them() {
        let dir = fixtures().with_file_name("gator-go-decoding");
        let result = run(&dir, "suite.yaml");
        let test = &result.tests[0];
        // `Tests`, `Template`, `Cases`, `Violations`: the suite's fields in any case; the
        // template file's trailing (broken) document is never read.
        assert!(test.error.is_none(), "{:?}", test.error);
        let case = |name: &str| {
            test.cases
                .iter()
                .find(|c| c.name == name)
                .unwrap_or_else(|| panic!("case {name}: {:?}", test.cases))
        };
        assert!(case("trailing-empty-document").passed);
        let two = case("trailing-document-is-a-second-object");
        assert!(!two.passed);
        assert!(
            two.message
                .as_deref()
                .is_some_and(|m| m.contains("trailing-document.yaml defines 2 objects")),
            "{two:?}"
        );
        let dup = case("duplicate-key");
        assert!(!dup.passed);
        assert!(
            dup.message
                .as_deref()
                .is_some_and(|m| m.contains("duplicate-key.yaml")
                    && m.contains("mapping key \"team\" at line 9 is already defined")),
            "{dup:?}"
        );
        assert_eq!(result.counts(), (1, 2));
    }

    #[test]
    fn object_files_are_split_as_gator_splits_them() {
        let objects = |t: &str| read_objects(t).map(|o| o.len()).map_err(|e| e.to_string());
        assert_eq!(objects("a: 1\n---\n"), Ok(1));
        assert_eq!(objects("---\na: 1\n---\n# only a comment\n---\n\n"), Ok(1));
        assert_eq!(objects("a: 1\n---\nb: 2\n"), Ok(2));
        // A chunk gator reads as an empty map is still an object.
        assert_eq!(objects("a: 1\n---\n~\n"), Ok(2));
        assert!(objects("- a\n- b\n").is_err());
        let dup = objects("a: 1\na: 2\n").expect_err("go-yaml v3 refuses it");
        assert!(dup.contains("mapping key \"a\" at line 2"), "{dup}");
        // Blank and comment-only lines go before parsing, as in gator.
        let obj =
            read_objects("data:\n  script: |\n    one\n\n    # two\n    three\n").expect("reads");
        assert_eq!(obj[0]["data"]["script"], "one\nthree\n");
        // A template or constraint is its first document.
        let first = read_object("kind: A\n---\nkind: [\n").expect("first document only");
        assert_eq!(first["kind"], "A");
        assert_eq!(
            read_object("---\n---\nkind: A\n").expect("empty"),
            serde_json::json!({})
        );
    }

    #[test]
    fn suites_are_recognised_by_gators_rule() {
        assert!(is_suite(
            "apiVersion: test.gatekeeper.sh/v1alpha1\nkind: Suite\n"
        ));
        assert!(is_suite(
            "apiVersion: test.gatekeeper.sh/v1\nkind: 'Suite'\nx: 1\nx: 2\n"
        ));
        assert!(
            is_suite("kind: Suite\ntests: [\n"),
            "a broken suite is reported, not skipped"
        );
        assert!(!is_suite(
            "apiVersion: v1\nkind: ConfigMap\n---\nkind: Suite\n"
        ));
        assert!(!is_suite(
            "apiVersion: test.gatekeeper.sh/v1alpha1\nKind: Suite\n"
        ));
    }

    #[test]
    fn a_suite_file_that_cannot_be_used_fails_alone() {
        let dir = fixtures().with_file_name("gator-go-decoding");
        for (file, why) in [
            ("broken-suite.yaml", "invalid YAML"),
            (
                "duplicate-key-suite.yaml",
                "mapping key \"tests\" at line 4 is already defined",
            ),
        ] {
            let text = std::fs::read_to_string(dir.join(file)).expect("readable");
            let mut read = |p: &str| std::fs::read_to_string(dir.join(p));
            let report = suite_report(file, Ok(text), &mut read, Limits::default());
            let findings: Vec<_> = report.findings().collect();
            assert_eq!(findings.len(), 1, "{findings:?}");
            assert_eq!(findings[0].rule, "gator/invalid");
            assert!(
                findings[0].message.contains(why),
                "{file}: {}",
                findings[0].message
            );
            assert!(report.has_failures());
        }
        let mut read = |_: &str| -> std::io::Result<String> { panic!("nothing is read") };
        let report = suite_report(
            "gone.yaml",
            Err("gone.yaml: no such file".into()),
            &mut read,
            Limits::default(),
        );
        assert!(report.has_failures());
        // A field gator does not read is a warning, not a silent pass.
        let suite = parse_suite(
            "apiVersion: test.gatekeeper.sh/v1alpha1\nkind: Suite\ntests:\n- name: t\n  templates: a.yaml\n",
        )
        .expect("parses");
        assert_eq!(
            suite.warnings,
            vec!["tests[0].templates is not a field gator reads; ignored"]
        );
        assert!(parse_suite(
            "apiVersion: test.gatekeeper.sh/v1alpha1\nkind: Suite\ntests:\n- cases:\n  - assertions:\n    - violations: true\n"
        )
        .is_err(), "an IntOrString cannot hold a boolean");
    }

    #[test]
    fn suite_parsing() {
        let suite = parse_suite(
            "apiVersion: test.gatekeeper.sh/v1alpha1\nkind: Suite\ntests:\n- name: t\n  template: a.yaml\n  constraint: b.yaml\n  cases:\n  - name: c\n    object: o.yaml\n    inventory: [i.yaml]\n    assertions:\n    - violations: yes\n    - violations: no\n      message: x\n    - violations: 3\n    - message: why\n",
        )
        .expect("parses");
        let a = &suite.tests[0].cases[0].assertions;
        assert_eq!(a[0].violations, Expected::Yes);
        assert_eq!(a[1].violations, Expected::No);
        assert_eq!(a[1].message.as_deref(), Some("x"));
        assert_eq!(a[2].violations, Expected::Exactly(3));
        assert_eq!(a[3].violations, Expected::Yes);
        assert_eq!(suite.tests[0].cases[0].inventory, vec!["i.yaml"]);
        assert!(matches!(
            parse_suite("apiVersion: v1\nkind: ConfigMap\n"),
            Err(GatorError::NotASuite { .. })
        ));
        assert!(parse_suite(
            "apiVersion: test.gatekeeper.sh/v1alpha1\nkind: Suite\ntests:\n- cases:\n  - assertions:\n    - violations: maybe\n"
        )
        .is_err());
        assert!(parse_suite(
            "apiVersion: test.gatekeeper.sh/v1alpha1\nkind: Suite\ntests:\n- cases:\n  - assertions:\n    - violations: -1\n"
        )
        .is_err());
        let skipped =
            parse_suite("apiVersion: test.gatekeeper.sh/v1alpha1\nkind: Suite\nskip: true\n")
                .expect("parses");
        let mut read = |_: &str| -> std::io::Result<String> { panic!("nothing is read") };
        assert!(run_suite(&skipped, &mut read, Limits::default()).skipped);
    }

    /// Runs every `suite.yaml` under `$MOORING_GKLIB` (a copy of open-policy-agent/
    /// gatekeeper-library) and prints the results:
    /// `MOORING_GKLIB=/tmp/gklib cargo test -p mooring-engine --lib gator -- --ignored --nocapture`
    #[test]
    #[ignore = "needs a gatekeeper-library checkout in MOORING_GKLIB"]
    fn gatekeeper_library_suites() {
        let root = PathBuf::from(std::env::var("MOORING_GKLIB").expect("set MOORING_GKLIB"));
        let mut suites = Vec::new();
        // Every template is compiled on its own too: a partial copy holds templates whose
        // suite or samples are missing, and "does it compile" is still worth knowing.
        let mut template_files = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).expect("readable dir").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.file_name().is_some_and(|n| n == "suite.yaml") {
                    suites.push(path);
                } else if path.file_name().is_some_and(|n| n == "template.yaml") {
                    template_files.push(path);
                }
            }
        }
        suites.sort();
        template_files.sort();
        let mut compiled = 0;
        for path in &template_files {
            let text = std::fs::read_to_string(path).expect("readable");
            // gator reads a template file's first document.
            let outcome = read_object(&text)
                .map(|o| vec![o])
                .map_err(|e| e.to_string())
                .and_then(|objects| {
                    let mut gk = Gatekeeper::new(Limits::default());
                    objects
                        .iter()
                        .try_for_each(|o| gk.add_template(o))
                        .map_err(|e| e.to_string())
                });
            match outcome {
                Ok(()) => compiled += 1,
                Err(e) => println!("TEMPLATE {}: {e}", path.display()),
            }
        }
        println!(
            "gatekeeper-library: {compiled}/{} templates compile",
            template_files.len()
        );
        let (mut templates, mut templates_ok) = (0, 0);
        // [library, Mooring's] (tried, passed). Mooring's own cases for library templates
        // (in `m/` directories, or tests named `m-…`/`mooring-…`) are counted apart from the
        // library's, and cases whose files are absent from the copy (a partial checkout,
        // at the case or the test level) are counted apart from both.
        let mut counts = [(0, 0), (0, 0)];
        let mut absent = 0;
        for path in &suites {
            let dir = path.parent().expect("has a parent").to_path_buf();
            let text = std::fs::read_to_string(path).expect("readable");
            let suite = match parse_suite(&text) {
                Ok(s) => s,
                Err(e) => {
                    println!("SUITE {}: {e}", path.display());
                    continue;
                }
            };
            let mut read = |p: &str| std::fs::read_to_string(dir.join(p));
            let result = run_suite(&suite, &mut read, Limits::default());
            templates += 1;
            if result.passed() {
                templates_ok += 1;
            }
            let ours_dir = path.components().any(|c| c.as_os_str() == "m");
            for (t, spec) in result.tests.iter().zip(&suite.tests) {
                let ours = ours_dir || t.name.starts_with("m-") || t.name.starts_with("mooring-");
                if let Some(e) = &t.error {
                    if e.contains("No such file") {
                        absent += spec.cases.iter().filter(|c| !c.skip).count();
                        continue;
                    }
                    println!("ERROR {} {}: {e}", path.display(), t.name);
                }
                for c in &t.cases {
                    if c.skipped {
                        continue;
                    }
                    if c.message
                        .as_deref()
                        .is_some_and(|m| m.contains("No such file"))
                    {
                        absent += 1;
                        continue;
                    }
                    let count = &mut counts[usize::from(ours)];
                    count.0 += 1;
                    if c.passed {
                        count.1 += 1;
                    } else {
                        println!(
                            "FAIL {} {}/{}: {}",
                            path.display(),
                            t.name,
                            c.name,
                            c.message.as_deref().unwrap_or("")
                        );
                    }
                }
            }
        }
        let [(lib, lib_ok), (ours, ours_ok)] = counts;
        println!(
            "gatekeeper-library: {templates_ok}/{templates} suites passed; library cases {lib_ok}/{lib} passed; Mooring's cases {ours_ok}/{ours} passed; {absent} library cases without their files"
        );
    }
}
