//! Integration tests of the embedded cluster, through real clients: kube-rs over HTTP and
//! the real `kubectl` binary. One test binary for the crate (see DESIGN.md: fast builds).

mod access;
mod authz;
mod bad_input;
mod endpoints;
mod field_validation;
mod events;
mod kube_client;
mod kubectl;
mod loadbalancer;
mod logs;
mod persistence;
mod protobuf;
mod sim;
mod support;
