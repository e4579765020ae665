//! Integration tests of the embedded cluster, through real clients: kube-rs over HTTP and
//! the real `kubectl` binary. One test binary for the crate (see DESIGN.md: fast builds).

mod access;
mod authz;
mod bad_input;
mod conformance;
mod crd_validation;
mod cronjob;
mod endpoints;
mod events;
mod field_validation;
mod hpa;
mod kube_client;
mod kubectl;
mod list_watch;
mod loadbalancer;
mod logs;
mod metrics_api;
mod openapi;
mod persistence;
mod protobuf;
mod sim;
mod support;
