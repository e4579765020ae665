//! Crash points: named places where the controller aborts on purpose, for
//! `mooring bench chaos` (issue 20).
//!
//! A `kill -9` sent from outside lands wherever the process happens to be, and the
//! windows that matter most — between applying an object and writing the status that
//! says so, between creating a hook and recording it — last microseconds, so random
//! kills almost never hit them. A crash point makes the process die exactly there, as
//! abruptly as `kill -9` would (`std::process::abort`: no destructors, no flush, no
//! graceful shutdown), so the chaos run can check that the next controller resumes
//! without losing or repeating anything.
//!
//! They are off unless the environment variable [`ENV`] names them:
//! `MOORING_CRASH_POINTS=sync.applied=0.05,sync.finished=0.2` aborts at each named point
//! with that probability per pass. Setting it requires what `kill -9` requires (control
//! of the process's environment), so it opens nothing; unset, a point costs one
//! initialised-once lookup. The names are the [`Point`]s below, one per window.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// The environment variable that arms crash points.
pub const ENV: &str = "MOORING_CRASH_POINTS";

/// The windows a crash point can be armed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Point {
    /// A sync task was submitted (applied, pruned or a hook created) and the operation
    /// state does not say so yet.
    SyncApplied,
    /// A step's operation state was written and the next step has not started.
    SyncPersisted,
    /// The operation's final state is about to be written (history entry, `operation`
    /// cleared).
    SyncFinished,
    /// A notification's delivery state was written and the payload not yet delivered.
    NotificationRecorded,
}

impl Point {
    /// The name used in [`ENV`].
    pub fn name(self) -> &'static str {
        match self {
            Point::SyncApplied => "sync.applied",
            Point::SyncPersisted => "sync.persisted",
            Point::SyncFinished => "sync.finished",
            Point::NotificationRecorded => "notification.recorded",
        }
    }

    /// Every point, for the chaos command's help and validation.
    pub const ALL: [Point; 4] = [
        Point::SyncApplied,
        Point::SyncPersisted,
        Point::SyncFinished,
        Point::NotificationRecorded,
    ];
}

/// The armed points and their probabilities, read from [`ENV`] once.
fn armed() -> &'static [(Point, f64)] {
    static ARMED: OnceLock<Vec<(Point, f64)>> = OnceLock::new();
    ARMED.get_or_init(|| match std::env::var(ENV) {
        Ok(spec) => match parse(&spec) {
            Ok(points) => points,
            Err(e) => {
                tracing::error!("{ENV}: {e}; no crash point is armed");
                Vec::new()
            }
        },
        Err(_) => Vec::new(),
    })
}

/// Parse `name=probability,…` (probability in 0..=1).
pub fn parse(spec: &str) -> Result<Vec<(Point, f64)>, String> {
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (name, p) = item
                .split_once('=')
                .ok_or_else(|| format!("{item:?} is not NAME=PROBABILITY"))?;
            let point = Point::ALL
                .into_iter()
                .find(|pt| pt.name() == name.trim())
                .ok_or_else(|| {
                    let known: Vec<&str> = Point::ALL.iter().map(|p| p.name()).collect();
                    format!("unknown crash point {name:?} (known: {})", known.join(", "))
                })?;
            let p: f64 = p
                .trim()
                .parse()
                .ok()
                .filter(|p: &f64| (0.0..=1.0).contains(p))
                .ok_or_else(|| format!("{item:?}: the probability must be in 0..=1"))?;
            Ok((point, p))
        })
        .collect()
}

/// Abort here when `point` is armed and the draw says so.
pub fn point(point: Point) {
    let Some(&(_, p)) = armed().iter().find(|(pt, _)| *pt == point) else {
        return;
    };
    if draw() < p {
        // stderr is unbuffered: the chaos run reads this line to name the fault.
        eprintln!("mooring: crash point {} reached: aborting", point.name());
        std::process::abort();
    }
}

/// A uniform draw in [0, 1): a per-process random hash of a counter (no seed to
/// share: which pass aborts need not replay, the chaos run's own faults do).
fn draw() -> f64 {
    static STATE: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = STATE.get_or_init(Default::default).build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_name_the_problem() {
        assert_eq!(
            parse("sync.applied=0.5, sync.finished=1").expect("parse"),
            vec![(Point::SyncApplied, 0.5), (Point::SyncFinished, 1.0)]
        );
        assert!(parse("sync.nowhere=1")
            .expect_err("refused")
            .contains("known: sync.applied"));
        assert!(parse("sync.applied=2")
            .expect_err("refused")
            .contains("0..=1"));
        assert!(parse("sync.applied")
            .expect_err("refused")
            .contains("NAME=PROBABILITY"));
        assert_eq!(parse("").expect("empty"), vec![]);
    }

    #[test]
    fn draws_are_uniform_enough() {
        let n = 10_000;
        let below: usize = (0..n).filter(|_| draw() < 0.25).count();
        assert!((2_000..3_000).contains(&below), "{below}");
    }
}
