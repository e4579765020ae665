//! The image watcher: Argo CD Image Updater's annotations, acted on by the controller.
//!
//! Placeholder (issue 16 skeleton): the loop, write-back and registry notifications are
//! filled by the lead; the registry client is [`registry`].

pub mod registry;

use crate::Context;
use std::sync::Arc;

/// Start the image watcher's tasks.
pub fn start(_ctx: Arc<Context>) -> Vec<tokio::task::JoinHandle<()>> {
    Vec::new()
}
