//! The one result model of every policy and compliance run, and its output formats.
//!
//! conftest, Gatekeeper, the lints, schema validation and Terraform checks all produce
//! [`Finding`]s grouped by the [`Subject`] they were found in (a file, or one rendered
//! object of an Application). The shape follows conftest's JSON output (`filename`,
//! `namespace`, `successes`, `failures`, `warnings`, `exceptions`), so scripts written
//! against conftest keep working, and every other format is derived from it.

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
