//! The delivery state: the `notified.notifications.argoproj.io` annotation.
//!
//! notifications-engine keeps, on the notified object itself, a JSON map from a state key
//! to the Unix time of the delivery, so that a restart (or a second controller) does not
//! notify twice. Mooring reads and writes the same annotation the same way, so an object
//! Argo CD already notified is not notified again after a migration, and the other way
//! round:
//!
//! - the key is `[<oncePer>:]<trigger>:<condition key>:<service>:<recipient>`, the
//!   condition key being `[<index>].<base64url(sha1(when))>` ([`crate::trigger`]);
//! - a key is added when the condition fires for that destination; while it is present the
//!   destination is not notified again;
//! - when the condition stops being true, keys *without* `oncePer` are removed (so the
//!   condition fires again the next time it becomes true); keys with `oncePer` stay (at
//!   most once per value: a new revision is a new key);
//! - at most 100 keys are kept, the oldest dropped first.

use std::collections::BTreeMap;

/// The annotation notifications-engine (and Mooring) keeps the delivery state in.
pub const ANNOTATION: &str = "notified.notifications.argoproj.io";
/// Most keys kept (notifications-engine's `notifiedHistoryMaxSize`).
pub const MAX_KEYS: usize = 100;

/// The annotation's value did not parse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("annotation {ANNOTATION} is not a JSON map of key to Unix time ({message}); starting from an empty state")]
pub struct StateError {
    pub message: String,
}

/// Delivered state keys and when (Unix seconds).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct State(pub BTreeMap<String, i64>);

/// One destination of a trigger.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Destination {
    pub service: String,
    pub recipient: String,
}

/// The state key of a (trigger, condition, destination).
pub fn key(trigger: &str, condition_key: &str, once_per: &str, dest: &Destination) -> String {
    let k = format!(
        "{trigger}:{condition_key}:{}:{}",
        dest.service, dest.recipient
    );
    if once_per.is_empty() {
        k
    } else {
        format!("{once_per}:{k}")
    }
}

impl State {
    /// Read the annotation's value (absent: empty). A value that does not parse gives an
    /// empty state, as in notifications-engine, and the error to report.
    pub fn parse(value: Option<&str>) -> (State, Option<StateError>) {
        match value {
            None => (State::default(), None),
            Some(v) if v.trim().is_empty() => (State::default(), None),
            Some(v) => match serde_json::from_str::<BTreeMap<String, i64>>(v) {
                Ok(m) => (State(m), None),
                Err(e) => (
                    State::default(),
                    Some(StateError {
                        message: e.to_string(),
                    }),
                ),
            },
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    /// Record a delivery at `now` (Unix seconds); false when already recorded.
    pub fn mark(&mut self, key: &str, now: i64) -> bool {
        if self.0.contains_key(key) {
            return false;
        }
        self.0.insert(key.to_string(), now);
        true
    }

    /// The condition is no longer true: forget the key so it can fire again, unless it is
    /// an `oncePer` key. True when something changed.
    pub fn clear(&mut self, key: &str, once_per: &str) -> bool {
        if !once_per.is_empty() {
            return false;
        }
        self.0.remove(key).is_some()
    }

    /// The annotation's new value: `None` removes the annotation (empty state). At most
    /// [`MAX_KEYS`] keys, oldest dropped first.
    pub fn to_annotation(&self) -> Option<String> {
        let mut m = self.0.clone();
        if m.len() > MAX_KEYS {
            let mut by_age: Vec<(i64, String)> = m.iter().map(|(k, t)| (*t, k.clone())).collect();
            by_age.sort();
            for (_, k) in by_age.into_iter().take(m.len() - MAX_KEYS) {
                m.remove(&k);
            }
        }
        if m.is_empty() {
            None
        } else {
            serde_json::to_string(&m).ok()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest() -> Destination {
        Destination {
            service: "slack".into(),
            recipient: "ops".into(),
        }
    }

    #[test]
    fn key_format_is_notifications_engines() {
        assert_eq!(
            key("on-sync-succeeded", "[0].abc", "", &dest()),
            "on-sync-succeeded:[0].abc:slack:ops"
        );
        assert_eq!(
            key("on-sync-succeeded", "[0].abc", "f00d", &dest()),
            "f00d:on-sync-succeeded:[0].abc:slack:ops"
        );
    }

    #[test]
    fn mark_clear_once_per_and_truncate() {
        let mut s = State::default();
        assert!(s.mark("a", 1));
        assert!(!s.mark("a", 2));
        assert!(!s.clear("a", "rev"), "oncePer keys stay");
        assert!(s.clear("a", ""));
        assert_eq!(s.to_annotation(), None);
        for i in 0..(MAX_KEYS as i64 + 5) {
            s.mark(&format!("k{i}"), i);
        }
        let (back, err) = State::parse(s.to_annotation().as_deref());
        assert!(err.is_none());
        assert_eq!(back.0.len(), MAX_KEYS);
        assert!(!back.contains("k0") && back.contains(&format!("k{}", MAX_KEYS + 4)));
    }

    #[test]
    fn reads_argo_cds_annotation_and_reports_garbage() {
        let (s, e) = State::parse(Some(
            r#"{"abc:on-deployed:[0].y7b5sbwa2Q329JYH755peeq-fBs:slack:my-channel":1700000000}"#,
        ));
        assert!(e.is_none());
        assert!(s.contains("abc:on-deployed:[0].y7b5sbwa2Q329JYH755peeq-fBs:slack:my-channel"));
        let (s, e) = State::parse(Some("not json"));
        assert!(s.0.is_empty());
        assert!(e.expect("error").to_string().contains(ANNOTATION));
    }
}
