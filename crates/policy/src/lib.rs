//! Policy as code: Gatekeeper templates and constraints, conftest policies, Rego unit tests
//! and gator suites, all evaluated by one Rego engine (regorus) with OPA's semantics.
//!
//! Platform teams usually write the same Rego twice, once for Gatekeeper in the cluster and
//! once for conftest in CI. Mooring reads both formats unchanged and evaluates them in both
//! places: `mooring check` and `mooring policy …` at CI time, and the sync gate before every
//! apply, so a change that violates a `deny` constraint never reaches a cluster.
//!
//! * [`rego`]: compiling and evaluating Rego (v0 and v1), limits, errors with file and line.
//! * [`compat`]: source rewrites where regorus's parser differs from OPA's.
//! * [`gatekeeper`]: ConstraintTemplates, constraints, `spec.match`, reviews, inventory.
//! * [`gate`]: reviewing an Application's objects with project scoping (sync gate, audit,
//!   `mooring check`).
//! * [`gator`]: gator `Suite` files (`mooring policy verify`).
//! * [`conftest`]: conftest policies, input parsers and exceptions (`mooring policy test`).
//! * [`regotest`]: `test_` rules, like `opa test` (`mooring policy test-rego`).
//! * [`lint`]: built-in best-practice lints (no Rego), reported in the same model.
//! * [`report`]: the one result model and its output formats (table, json, tap, junit,
//!   github, sarif), shared by the policy commands and `mooring check`.
//!
//! Everything here is a pure function of values: files are read by the caller.
//!
//! # Why a crate of its own
//!
//! The Rego engine, the conftest input parsers (HCL, TOML) and the JUnit writer are
//! dependencies nothing else needs; keeping them out of `mooring-engine` keeps the rules
//! every crate uses (diff, health, sync) quick to rebuild. This crate depends on
//! `mooring-engine` (schema validation of constraint parameters, resource quantities in
//! lints); `mooring-engine` never depends on it. The lints live here, not in the engine,
//! because their findings are this crate's [`report::Finding`]s.

pub mod compat;
pub mod conftest;
pub mod gate;
pub mod gatekeeper;
pub mod gator;
pub mod lint;
pub mod rego;
pub mod regotest;
pub mod report;

pub use rego::{Limits, Policy, RegoError, RegoSource, RegoVersion};
