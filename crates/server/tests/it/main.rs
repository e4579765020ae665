//! The server's integration tests, in one binary (one link, one process per test under
//! nextest): the REST API and RBAC, the webhook and `/metrics`, and the outbound client's
//! refusals end to end.

mod api;
mod registry_webhook;
mod ssrf;
mod ui;
mod webhook;
