//! Mooring's pure core, in the shape of Argo CD's gitops-engine: diff (with
//! normalisation), health, sync planning and policy evaluation are functions of values, tested with golden
//! YAML fixtures. No I/O happens here; the controller feeds these functions with rendered
//! manifests and live objects and acts on their results.

pub mod analysis;
pub mod appset;
pub mod diff;
pub mod health;
pub mod lint;
pub mod meter;
pub mod outbound;
pub mod policy;
pub mod project;
pub mod rollback;
pub mod rollout;
pub mod schema;
pub mod state;
pub mod sync;
pub mod traffic;
pub mod unsupported;
