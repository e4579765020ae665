//! Building the findings and subjects of the report.

use mooring_policy::report::{Finding, Severity, Subject};
use serde_json::Value;

pub(crate) fn subject(filename: &str, namespace: &str, findings: Vec<Finding>) -> Subject {
    Subject {
        filename: filename.to_string(),
        namespace: namespace.to_string(),
        successes: 0,
        findings,
    }
}

pub(crate) fn finding(
    severity: Severity,
    source: &str,
    rule: &str,
    message: String,
    resource: &str,
) -> Finding {
    Finding {
        severity,
        source: source.into(),
        rule: rule.into(),
        message,
        resource: resource.into(),
        line: None,
        metadata: Value::Null,
    }
}

pub(crate) fn failure(source: &str, rule: &str, message: String, resource: &str) -> Finding {
    finding(Severity::Failure, source, rule, message, resource)
}

pub(crate) fn warning(source: &str, rule: &str, message: String, resource: &str) -> Finding {
    finding(Severity::Warning, source, rule, message, resource)
}
