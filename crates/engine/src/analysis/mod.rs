//! Argo Rollouts analysis, as pure functions: conditions ([`expr`]), templates and
//! arguments ([`template`]), and the AnalysisRun state machine ([`run`]).
//!
//! The controller (`mooring-controller::analysis`) does the I/O — queries Prometheus,
//! calls web endpoints, creates Jobs, reads Secrets, writes the run's status — and asks
//! this module what to do next and what a measurement means. Keeping that logic here
//! means it is tested with plain tables of inputs and outputs, and the rollout controller
//! builds runs with exactly the same rules ([`build_run_spec`]).

pub mod expr;
pub mod run;
pub mod template;

pub use expr::{evaluate_condition, ConditionError, MetricValue};
pub use template::{build_run_spec, AnalysisError};
