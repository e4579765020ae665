//! Notifications in Argo CD Notifications' format, the pure part.
//!
//! Platform teams already configure Argo CD Notifications: `argocd-notifications-cm`
//! (`service.<type>[.<name>]`, `template.<name>`, `trigger.<name>`, `defaultTriggers`,
//! `subscriptions`) and `argocd-notifications-secret` in the control-plane namespace, and
//! they subscribe Applications and AppProjects with the annotation
//! `notifications.argoproj.io/subscribe.<trigger>.<service>: <recipients>`. Mooring reads
//! that configuration unchanged.
//!
//! This crate decides, without I/O, *what* to send: it parses the configuration, finds an
//! object's subscriptions, evaluates triggers (expr-lang `when`, `oncePer`) against the
//! delivery state kept in the object's annotation, renders templates (Go templates) and
//! turns each (service, recipient, rendered notification) into [`payload::Payload`]s. The
//! controller (`mooring_controller::notifications`) watches objects, sends the payloads
//! through the admin-controlled outbound client and records the delivery state.

pub mod payload;
pub mod services;
