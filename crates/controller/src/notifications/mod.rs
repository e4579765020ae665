//! Notifications (Argo CD Notifications' format): the controller side.
//!
//! `mooring_notify` decides what to send; this module watches the subscribed objects,
//! sends the payloads ([`deliver`]) and keeps the delivery state.

pub mod deliver;
