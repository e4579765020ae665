//! Per-thread allocation meter, so user code that builds values (jq path expressions) can
//! be given a memory budget.
//!
//! Why an allocator: jaq builds values inside its interpreter (`. + .` on strings, arrays
//! and objects, `[f]`, `{k: f}`) with no hook between "the value was computed" and "the
//! value was allocated"; the step counter in the jq module runs between those operations
//! but cannot see how big the values are. Counting the bytes a thread allocates is the one
//! place that sees every value, whichever operation built it. An expression that doubles a
//! string 31 times passes the budget after a few dozen steps, and the next step stops it,
//! long before it reaches gigabytes.
//!
//! How: this crate installs the process's global allocator, [`tracking_allocator`]'s
//! wrapper around mimalloc (it stores a small header per allocation and calls
//! a tracker for each allocation and release). The tracker is only set, and tracking only
//! switched on, the first time a meter is armed, so a process that never evaluates jq pays
//! only the header (one machine word per allocation, more for over-aligned layouts);
//! afterwards each allocation and release also makes one thread-local check, and a
//! reallocation is an allocation, a copy and a release (the wrapper does not forward
//! `realloc`). The tracker adds each allocation made on a thread whose meter is armed
//! to that thread's count and subtracts each release made there; the count is net bytes
//! (allocated minus freed) since [`arm`], read with [`used`]. Allocations on other threads
//! are not counted, whatever they do.
//!
//! Why mimalloc under the wrapper: the controller and the embedded cluster allocate and
//! free JSON values all day (every watch event, list, patch and diff). At 10,000
//! applications, glibc's malloc and free were a fifth of both processes' CPU samples, and
//! its per-thread arenas kept freed memory as fragmented, resident pages.
//!
//! Limits: the meter measures, it does not refuse: the allocator cannot fail or unwind an
//! allocation without aborting the process, so the caller checks [`over_budget`] between
//! interpreter steps. A single operation can therefore overshoot the budget by what that
//! one operation allocates (at most a few times its inputs for jq, whose amplifying
//! natives are bounded separately).

#[cfg(not(feature = "system-allocator"))]
use mimalloc::MiMalloc;
use std::cell::Cell;
use std::sync::Once;
use tracking_allocator::{AllocationGroupId, AllocationRegistry, AllocationTracker, Allocator};

#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: Allocator<MiMalloc> = Allocator::from_allocator(MiMalloc);

/// The system allocator instead, for heap profilers that hook `malloc` (heaptrack,
/// massif): `cargo build --release -p mooring --features system-allocator`.
#[cfg(feature = "system-allocator")]
#[global_allocator]
static GLOBAL: Allocator<std::alloc::System> = Allocator::system();

thread_local! {
    /// `Some(net bytes)` while this thread's meter is armed.
    static METER: Cell<Option<i64>> = const { Cell::new(None) };
    /// Budget of this thread's armed meter.
    static BUDGET: Cell<i64> = const { Cell::new(i64::MAX) };
}

struct ThreadMeter;

fn add(delta: i64) {
    // `try_with`: allocations can happen while the thread's locals are torn down.
    let _ = METER.try_with(|m| {
        if let Some(n) = m.get() {
            m.set(Some(n.saturating_add(delta)));
        }
    });
}

impl AllocationTracker for ThreadMeter {
    fn allocated(&self, _addr: usize, size: usize, _wrapped: usize, _group: AllocationGroupId) {
        add(i64::try_from(size).unwrap_or(i64::MAX));
    }

    fn deallocated(
        &self,
        _addr: usize,
        size: usize,
        _wrapped: usize,
        _source: AllocationGroupId,
        _current: AllocationGroupId,
    ) {
        add(-i64::try_from(size).unwrap_or(i64::MAX));
    }
}

static INSTALL: Once = Once::new();

/// Start counting this thread's allocations from zero, with `budget` bytes allowed.
pub fn arm(budget: usize) {
    INSTALL.call_once(|| {
        // Fails only if a tracker is already set, which only this function does.
        if AllocationRegistry::set_global_tracker(ThreadMeter).is_ok() {
            AllocationRegistry::enable_tracking();
        }
    });
    BUDGET.with(|b| b.set(i64::try_from(budget).unwrap_or(i64::MAX)));
    METER.with(|m| m.set(Some(0)));
}

/// Stop counting this thread's allocations.
pub fn disarm() {
    METER.with(|m| m.set(None));
}

/// Net bytes allocated on this thread since [`arm`] (`None` when not armed).
pub fn used() -> Option<i64> {
    METER.with(Cell::get)
}

/// Whether this thread's armed meter is past its budget.
pub fn over_budget() -> bool {
    used().is_some_and(|n| n > BUDGET.with(Cell::get))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_this_threads_allocations_only() {
        arm(1 << 20);
        let kept: Vec<u8> = vec![1; 4 << 20];
        assert!(used().expect("armed") >= 4 << 20);
        assert!(over_budget());
        // Another thread's allocation is not this thread's.
        let before = used().expect("armed");
        std::thread::spawn(|| vec![0u8; 8 << 20].len())
            .join()
            .expect("thread");
        assert!(used().expect("armed") - before < 1 << 20);
        drop(kept);
        assert!(used().expect("armed") < 1 << 20);
        assert!(!over_budget());
        disarm();
        assert_eq!(used(), None);
        assert!(!over_budget());
    }
}
