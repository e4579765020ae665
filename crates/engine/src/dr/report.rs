//! The drill report (Markdown, JSON, JUnit) and the validation report. (Slice in
//! progress: placeholder signatures.)

use mooring_core::dr::{DisasterRecoveryPlan, DrillState};

pub const REPORT_JSON_KEY: &str = "report.json";
pub const REPORT_MARKDOWN_KEY: &str = "report.md";
pub const REPORT_JUNIT_KEY: &str = "report.xml";

pub struct DrillReport {
    pub passed: bool,
    pub rto_seconds: Option<f64>,
    pub rpo_seconds: Option<f64>,
}

impl DrillReport {
    pub fn build(_plan: &DisasterRecoveryPlan, d: &DrillState) -> DrillReport {
        DrillReport {
            passed: false,
            rto_seconds: d.failover.as_ref().and_then(|o| o.rto_seconds),
            rpo_seconds: None,
        }
    }

    pub fn to_json(&self) -> String {
        String::new()
    }

    pub fn to_markdown(&self) -> String {
        String::new()
    }

    pub fn to_junit(&self) -> String {
        String::new()
    }
}
