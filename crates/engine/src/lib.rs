//! Mooring's pure core, in the shape of Argo CD's gitops-engine: diff (with
//! normalisation), health, sync planning, AppProject rules and rollout planning are functions
//! of values, tested with golden YAML fixtures. No I/O happens here; the controller feeds these
//! functions with rendered manifests and live objects and acts on their results, and a rule
//! about a file tree (a Lua health customisation folder) reads it through the
//! `mooring_core::files::Files` the caller hands in.
//!
//! Policy as code (Rego, Gatekeeper, conftest, lints) lives in its own crate,
//! `mooring-policy`, which depends on this one (never the other way round), so the Rego
//! engine and the conftest parsers are not built into everything that needs a diff.

pub mod analysis;
pub mod appset;
pub mod backup;
pub mod delivery;
pub mod diff;
pub mod dr;
pub mod git_rollback;
pub mod health;
pub mod image;
pub mod meter;
pub mod outbound;
pub mod project;
pub mod rollback;
pub mod rollout;
pub mod schema;
pub mod shard;
pub mod state;
pub mod sync;
pub mod traffic;
pub mod unsupported;
