//! End-to-end: a real Git repository, the embedded cluster, the controller.

mod appset;
mod gitops;
mod operations;
mod policy;
mod projects;
mod support;
