//! The drill report (JSON, Markdown, JUnit) and the validation report of `mooring dr
//! validate`.
//!
//! A drill is worth only what it proves, so its report is built from what the controller
//! recorded in the plan's status (the drill's own steps, its failover's and failback's,
//! each with its start and end) and nothing else: the RTO is the failover's, by
//! [`super::rto_seconds`] (from the injected failure to the validated standby serving the
//! name: a standby that answers, not one that was merely synced), the RPO is what the
//! failover measured, and `passed` says
//! whether the platform really moved and came back within the objectives. The same
//! report is rendered three ways because three audiences read it: JSON for tools
//! (`mooring dr drill -o json`), Markdown for people (the ConfigMap, the Git commit, the
//! notification), JUnit for CI dashboards that already chart test suites. Every text in
//! them (step messages, check messages, app names) comes from clusters and users, so the
//! renderers escape it for their format (JUnit through `quick-junit`, which also drops
//! the characters XML 1.0 cannot carry; Markdown table cells have `|` and newlines
//! escaped).
//!
//! Pure: time is read from the recorded RFC 3339 stamps, never from a clock.

use mooring_core::dr::{CheckResult, DisasterRecoveryPlan, DrOperation, DrillState, StepStatus};
use mooring_core::time::{self, Timestamp};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// ConfigMap keys of a drill report (`status.lastDrill.report` names the ConfigMap).
pub const REPORT_JSON_KEY: &str = "report.json";
pub const REPORT_MARKDOWN_KEY: &str = "report.md";
pub const REPORT_JUNIT_KEY: &str = "report.xml";

/// A region in a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ReportRegion {
    pub cluster: String,
    pub region: String,
}

/// The plan's objectives, in seconds (absent: no objective).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ReportObjectives {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_seconds: Option<f64>,
}

/// One step of a drill in the report (the failover's and failback's prefixed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ReportStep {
    pub name: String,
    pub phase: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

/// A drill's report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct DrillReport {
    pub plan: String,
    pub namespace: String,
    pub incident: String,
    pub failure_mode: String,
    pub trigger: String,
    pub started_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    pub primary: ReportRegion,
    pub standby: ReportRegion,
    pub objectives: ReportObjectives,
    /// The failover's and failback's phase (`Succeeded`, `Failed`; absent: did not run)
    /// and message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover_phase: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub failover_message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failback_phase: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub failback_message: String,
    /// Injected failure → validated standby serving (`None`: never reached).
    pub rto_seconds: Option<f64>,
    pub rpo_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto_met: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_met: Option<bool>,
    pub passed: bool,
    /// Why the drill did not pass (empty when it passed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    pub steps: Vec<ReportStep>,
    pub validation: Vec<CheckResult>,
}

fn ts(s: Option<&str>) -> Option<Timestamp> {
    s.and_then(|s| time::parse(s).ok())
}

fn seconds_between(from: Option<&str>, to: Option<&str>) -> Option<f64> {
    super::seconds_between(from?, to?)
}

fn objective_seconds(
    what: &str,
    value: Option<&String>,
    failures: &mut Vec<String>,
) -> Option<f64> {
    let v = value?;
    match time::parse_go_duration(v) {
        Some(d) => Some(d.as_secs_f64()),
        None => {
            failures.push(format!("objective {what} {v:?} is not a duration"));
            None
        }
    }
}

fn region(r: &mooring_core::dr::RegionSpec) -> ReportRegion {
    ReportRegion {
        cluster: r.cluster.clone(),
        region: r
            .region
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| r.cluster.clone()),
    }
}

fn report_step(prefix: &str, s: &StepStatus) -> ReportStep {
    ReportStep {
        name: format!("{prefix}{}", s.name),
        phase: s.phase.clone(),
        started_at: s.started_at.clone(),
        finished_at: s.finished_at.clone(),
        seconds: seconds_between(s.started_at.as_deref(), s.finished_at.as_deref()),
        message: s.message.clone(),
    }
}

impl DrillReport {
    /// The report of a finished drill of `plan`.
    pub fn build(plan: &DisasterRecoveryPlan, drill: &DrillState) -> DrillReport {
        let mut failures = Vec::new();
        let objectives = plan.spec.objectives.clone().unwrap_or_default();
        let rto_objective = objective_seconds("rto", objectives.rto.as_ref(), &mut failures);
        let rpo_objective = objective_seconds("rpo", objectives.rpo.as_ref(), &mut failures);
        let mut steps: Vec<ReportStep> = drill.steps.iter().map(|s| report_step("", s)).collect();
        for (prefix, op) in [
            ("failover/", &drill.failover),
            ("failback/", &drill.failback),
        ] {
            if let Some(op) = op {
                steps.extend(op.steps.iter().map(|s| report_step(prefix, s)));
            }
        }
        // Chronological; steps that never started keep their order, last.
        steps.sort_by_key(|s| match ts(s.started_at.as_deref()) {
            Some(t) => (0, Some(t)),
            None => (1, None),
        });
        let mut check_op = |what: &str, op: &Option<DrOperation>| match op {
            None => failures.push(format!("the {what} did not run")),
            Some(op) if op.phase != "Succeeded" => failures.push(format!(
                "the {what} {}{}",
                op.phase,
                if op.message.is_empty() {
                    String::new()
                } else {
                    format!(": {}", op.message)
                }
            )),
            Some(_) => {}
        };
        check_op("failover", &drill.failover);
        check_op("failback", &drill.failback);
        let validation = drill
            .failover
            .as_ref()
            .map(|o| o.validation.clone())
            .unwrap_or_default();
        for c in validation.iter().filter(|c| !c.passed) {
            failures.push(format!("validation check {} failed: {}", c.name, c.message));
        }
        let rto = drill
            .failover
            .as_ref()
            .and_then(|op| op.rto_seconds.or_else(|| super::rto_seconds(op)));
        let rpo = drill
            .failover
            .as_ref()
            .and_then(|op| op.rpo_seconds.or(op.replication_lag_seconds));
        let rto_met = rto_objective.map(|o| rto.is_some_and(|r| r <= o));
        if rto_met == Some(false) {
            failures.push(match rto {
                Some(r) => format!(
                    "RTO {} exceeds the objective {}",
                    human_seconds(r),
                    objectives.rto.clone().unwrap_or_default()
                ),
                None => "RTO not measured: the failover never got a validated standby serving (validate or dns did not succeed)".into(),
            });
        }
        // RPO: only a measured lag can miss the objective.
        let rpo_met = rpo_objective.and_then(|o| rpo.map(|r| r <= o));
        if rpo_met == Some(false) {
            failures.push(format!(
                "RPO {} exceeds the objective {}",
                human_seconds(rpo.unwrap_or_default()),
                objectives.rpo.clone().unwrap_or_default()
            ));
        }
        let finished_at = steps
            .iter()
            .filter_map(|s| s.finished_at.clone())
            .max_by_key(|s| ts(Some(s)));
        DrillReport {
            plan: plan.name().to_string(),
            namespace: plan.namespace().to_string(),
            incident: drill.incident.clone(),
            failure_mode: drill.failure_mode.clone(),
            trigger: drill.trigger.clone(),
            started_at: drill.started_at.clone(),
            finished_at,
            primary: region(&plan.spec.primary),
            standby: region(&plan.spec.standby),
            objectives: ReportObjectives {
                rto: objectives.rto.clone(),
                rto_seconds: rto_objective,
                rpo: objectives.rpo.clone(),
                rpo_seconds: rpo_objective,
            },
            failover_phase: drill.failover.as_ref().map(|o| o.phase.clone()),
            failover_message: drill
                .failover
                .as_ref()
                .map(|o| o.message.clone())
                .unwrap_or_default(),
            failback_phase: drill.failback.as_ref().map(|o| o.phase.clone()),
            failback_message: drill
                .failback
                .as_ref()
                .map(|o| o.message.clone())
                .unwrap_or_default(),
            rto_seconds: rto,
            rpo_seconds: rpo,
            rto_met,
            rpo_met,
            passed: failures.is_empty(),
            failures,
            steps,
            validation,
        }
    }

    /// JSON, camelCase (pretty, newline-terminated).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"error\": {:?}}}", e.to_string()));
        s.push('\n');
        s
    }

    /// Markdown: title, summary table, RTO/RPO against the objectives, steps, validation.
    pub fn to_markdown(&self) -> String {
        let mut md = String::new();
        let mark = |ok: bool| if ok { "✅" } else { "❌" };
        let _ = writeln!(
            md,
            "# DR drill {} — {}\n",
            cell(&self.incident),
            cell(&self.plan)
        );
        let _ = writeln!(
            md,
            "**Result: {} {}**\n",
            mark(self.passed),
            if self.passed { "passed" } else { "failed" }
        );
        let _ = writeln!(md, "| | |\n|---|---|");
        let rows = [
            ("Plan", format!("{}/{}", self.namespace, self.plan)),
            ("Incident", self.incident.clone()),
            ("Failure mode", self.failure_mode.clone()),
            ("Trigger", self.trigger.clone()),
            (
                "Primary",
                format!("{} ({})", self.primary.region, self.primary.cluster),
            ),
            (
                "Standby",
                format!("{} ({})", self.standby.region, self.standby.cluster),
            ),
            ("Started", self.started_at.clone()),
            ("Finished", self.finished_at.clone().unwrap_or_default()),
        ];
        for (k, v) in rows {
            let _ = writeln!(md, "| {k} | {} |", cell(&v));
        }
        let objective_row =
            |what: &str, measured: Option<f64>, objective: &Option<String>, met: Option<bool>| {
                let measured = measured.map(human_seconds).unwrap_or_else(|| "—".into());
                let objective = objective.clone().unwrap_or_else(|| "—".into());
                let verdict = met.map(mark).unwrap_or("");
                format!(
                    "| {what} | {} | {} | {verdict} |",
                    cell(&measured),
                    cell(&objective)
                )
            };
        let _ = writeln!(md, "\n| | measured | objective | |\n|---|---|---|---|");
        let _ = writeln!(
            md,
            "{}",
            objective_row("RTO", self.rto_seconds, &self.objectives.rto, self.rto_met)
        );
        let _ = writeln!(
            md,
            "{}",
            objective_row("RPO", self.rpo_seconds, &self.objectives.rpo, self.rpo_met)
        );
        if !self.failures.is_empty() {
            let _ = writeln!(md, "\n## Why it failed\n");
            for f in &self.failures {
                let _ = writeln!(md, "- {}", self::md(f));
            }
        }
        let _ = writeln!(
            md,
            "\n## Steps\n\n| step | phase | started | finished | seconds | message |\n|---|---|---|---|---|---|"
        );
        for s in &self.steps {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} |",
                cell(&s.name),
                cell(&s.phase),
                cell(s.started_at.as_deref().unwrap_or("")),
                cell(s.finished_at.as_deref().unwrap_or("")),
                s.seconds.map(|x| format!("{x:.1}")).unwrap_or_default(),
                cell(&s.message)
            );
        }
        let _ = writeln!(md, "\n## Validation\n");
        if self.validation.is_empty() {
            let _ = writeln!(md, "No validation result was recorded.");
        }
        for c in &self.validation {
            let _ = writeln!(md, "- {}", self::md(&check_line(c)));
        }
        md
    }

    /// JUnit XML: one testsuite, a testcase per step and per check; failures carry their
    /// message. Hostile text is escaped, and characters XML cannot hold are dropped.
    pub fn to_junit(&self) -> String {
        use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
        let mut suite = TestSuite::new(format!("dr-drill/{}/{}", self.plan, self.incident));
        let failed = |message: &str| {
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
            st.set_message(message.to_string());
            st
        };
        for s in &self.steps {
            let status = match s.phase.as_str() {
                "Succeeded" => TestCaseStatus::success(),
                "Skipped" => {
                    let mut st = TestCaseStatus::skipped();
                    st.set_message(s.message.clone());
                    st
                }
                // The report is written while its own step runs.
                "Running" | "Pending" => {
                    let mut st = TestCaseStatus::skipped();
                    st.set_message(format!("{} when the report was written", s.phase));
                    st
                }
                phase => failed(&if s.message.is_empty() {
                    format!("step {phase}")
                } else {
                    format!("step {phase}: {}", s.message)
                }),
            };
            let mut case = TestCase::new(s.name.clone(), status);
            case.set_classname("step");
            if let Some(secs) = s.seconds {
                case.set_time(std::time::Duration::from_secs_f64(secs.max(0.0)));
            }
            suite.add_test_case(case);
        }
        for c in &self.validation {
            let status = if c.passed {
                TestCaseStatus::success()
            } else {
                failed(&c.message)
            };
            let mut case = TestCase::new(c.name.clone(), status);
            case.set_classname("validation");
            suite.add_test_case(case);
        }
        for (what, phase, message) in [
            ("failover", &self.failover_phase, &self.failover_message),
            ("failback", &self.failback_phase, &self.failback_message),
        ] {
            let status = match phase.as_deref() {
                Some("Succeeded") => TestCaseStatus::success(),
                Some(p) => failed(&format!("{what} {p}: {message}")),
                None => failed(&format!("the {what} did not run")),
            };
            let mut case = TestCase::new(what, status);
            case.set_classname("operation");
            suite.add_test_case(case);
        }
        if let Some(met) = self.rto_met {
            let status = if met {
                TestCaseStatus::success()
            } else {
                failed(
                    self.failures
                        .iter()
                        .find(|f| f.starts_with("RTO"))
                        .map(String::as_str)
                        .unwrap_or("RTO objective missed"),
                )
            };
            let mut case = TestCase::new("rto-objective", status);
            case.set_classname("objective");
            suite.add_test_case(case);
        }
        let mut junit = Report::new("mooring-dr");
        junit.add_test_suite(suite);
        match junit.to_string() {
            Ok(mut xml) => {
                if !xml.ends_with('\n') {
                    xml.push('\n');
                }
                xml
            }
            Err(e) => format!("<!-- could not write JUnit XML: {e} -->\n"),
        }
    }
}

/// `✅ name: message` / `❌ name: message`.
fn check_line(c: &CheckResult) -> String {
    let mark = if c.passed { "✅" } else { "❌" };
    if c.message.is_empty() {
        format!("{mark} {}", c.name)
    } else {
        format!("{mark} {}: {}", c.name, c.message)
    }
}

/// The seed's report of `mooring dr validate`: one ✅/❌ line per check, then the count.
/// Messages are kept on their line (newlines and control characters shown escaped).
pub fn validation_report(results: &[CheckResult]) -> String {
    let mut out = String::new();
    for c in results {
        let _ = writeln!(out, "{}", line(&check_line(c)));
    }
    let passed = results.iter().filter(|c| c.passed).count();
    let _ = writeln!(
        out,
        "{passed}/{} checks passed{}",
        results.len(),
        if passed == results.len() {
            ""
        } else {
            ": validation FAILED"
        }
    );
    out
}

/// Seconds as people read them: `42.5s`, `3m12s`.
pub fn human_seconds(s: f64) -> String {
    if !s.is_finite() {
        return format!("{s}s");
    }
    if s < 60.0 {
        return format!("{s:.1}s");
    }
    let total = s.round() as u64;
    let (h, m, sec) = (total / 3600, (total % 3600) / 60, total % 60);
    if h > 0 {
        format!("{h}h{m}m{sec}s")
    } else {
        format!("{m}m{sec}s")
    }
}

/// One line: control characters (newlines included) shown as escapes.
fn line(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// Markdown text: one line, `<` escaped (no HTML from a message reaches a renderer).
fn md(s: &str) -> String {
    line(s).replace('&', "&amp;").replace('<', "&lt;")
}

/// A Markdown table cell: [`md`] with `|` escaped.
fn cell(s: &str) -> String {
    md(s).replace('|', "\\|")
}

#[cfg(test)]
mod tests;
