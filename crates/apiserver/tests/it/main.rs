//! Integration tests of the embedded cluster, through real clients: kube-rs over HTTP and
//! the real `kubectl` binary. One test binary for the crate (see DESIGN.md: fast builds).

mod access;
mod authz;
mod bad_input;
mod crd_validation;
mod endpoints;
mod field_validation;
mod kube_client;
mod kubectl;
mod loadbalancer;
mod openapi;
mod persistence;
mod sim;
mod support;
