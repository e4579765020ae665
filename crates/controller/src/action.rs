//! What the work queue does with an Application after one reconcile. Its own module so
//! that every step of the Application path (reconcile, deletion) can return it without
//! importing the module that decides (imports run one way: reconcile -> operation,
//! deletion, state, conditions -> action).

use std::time::Duration;

/// What to do after a reconcile.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Nothing pending; the next trigger (watch, webhook, poll) will come.
    Idle,
    /// An operation is in progress: look again soon.
    RequeueAfter(Duration),
}
