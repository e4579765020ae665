//! End-to-end: a real Git repository, the embedded cluster, the controller.

mod analysis;
mod app_rollback;
mod appset;
mod dr;
mod dr_checks;
mod dr_dns;
mod git_rollback;
mod gitops;
mod image;
mod image_registry;
mod multisource;
mod namespaces;
mod notifications;
mod notify_delivery;
mod operations;
mod policy;
mod projects;
mod rollback;
mod rollouts;
mod sandbox;
mod secrets;
mod sharding;
mod support;
mod sync_semantics;
