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
//! * [`report`]: the one result model and its output formats (table, json, tap, junit,
//!   github, sarif), shared by the policy commands and `mooring check`.
//!
//! Everything here is a pure function of values: files are read by the caller.

pub mod compat;
pub mod conftest;
pub mod gate;
pub mod gatekeeper;
pub mod gator;
pub mod rego;
pub mod regotest;
pub mod report;

pub use rego::{Limits, Policy, RegoError, RegoSource, RegoVersion};
