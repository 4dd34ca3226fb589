//! The pacer: when the next collection starts. A pure function of its inputs, tested by
//! simulation (Go's pacer tests).
//!
//! * **Proportional goal** (`GOGC`): `marked + (marked + roots) × GOGC / 100`, at least
//!   `4 MiB × GOGC / 100`; `GOGC` negative (`off`) has no proportional goal.
//! * **Memory limit** (`GOMEMLIMIT`): the goal is capped at `limit − non-heap memory −
//!   headroom`, headroom being `max(3% of what remains, 1 MiB)`, and floored at what is
//!   marked (the heap cannot be smaller than what is alive).
//! * **CPU limiter**: a heap that cannot fit under the limit would collect on every span
//!   refill (golang/go#58106). A leaky bucket fills with collection time and drains with the
//!   time between collections; full (more than half the time spent collecting, for about a
//!   second) means *limited*: the limit cap is dropped and the heap grows past the limit at
//!   `GOGC`'s pace (100 if off) instead of spiralling.
//!
//! * **Trigger**: marking runs while the mutators allocate, so a cycle starts at 7/8 of the
//!   way from the marked bytes to the goal (Go's first-cycle trigger, inside its 45/64–61/64
//!   clamp); mutators that reach the goal while marking assist. Go's adaptive trigger (the
//!   runway from the measured cons/mark ratio, the worst of the last four cycles) starts
//!   binary-trees' cycles at the clamp's 45/64; measured (binary-trees 18, 2 CPUs, three
//!   runs each, `cargo run --release -p tricolor-tools -- bench --gc`), that leaves the GC CPU
//!   share where it is (36-40% against 38%), raises peak RSS from about 38 MiB to 42-45 MiB
//!   (Go's: 45) and does not shorten the longest wait at the goal (16 ms against 14), so the
//!   fixed trigger stays; mutators that allocate while marking pay for it with proportional
//!   assists (Go's assist ratio, `mark::assist`), which is what lets a cycle start this late.
//!   The share is the
//!   marking itself (about 10 ms of CPU per cycle, as Go's), over a mutator that runs faster
//!   than Go's and a heap that is smaller, so cycles are more frequent.

use std::sync::atomic::{AtomicI32, AtomicUsize};

/// Go's minimum heap goal at `GOGC=100`.
pub const MIN_HEAP: usize = 4 << 20;
/// The memory limit meaning none.
pub const NO_LIMIT: i64 = i64::MAX;

/// What the goal depends on.
#[derive(Clone, Copy, Debug)]
pub struct Inputs {
    /// Bytes marked by the last cycle.
    pub marked: usize,
    /// Bytes of roots scanned (shadow stacks, handles).
    pub roots: usize,
    /// `GOGC`.
    pub gc_percent: i32,
    /// `GOMEMLIMIT` in bytes, or [`NO_LIMIT`].
    pub limit: i64,
    /// Memory the runtime maps that is not the GC heap (malloc'd memory, metadata, free pages).
    pub non_heap: usize,
    /// The CPU limiter is engaged.
    pub limited: bool,
}

/// The heap size (bytes of GC objects, counting whole cached spans) at which the next
/// collection starts.
pub fn heap_goal(i: Inputs) -> usize {
    let proportional = if i.gc_percent < 0 {
        usize::MAX
    } else {
        let p = i.gc_percent as u128;
        let grow = (i.marked as u128 + i.roots as u128) * p / 100;
        let min = MIN_HEAP as u128 * p / 100;
        (i.marked as u128 + grow).max(min).min(usize::MAX as u128) as usize
    };
    if i.limit == NO_LIMIT {
        return proportional;
    }
    if i.limited {
        // Over the CPU budget: grow at the proportional pace, never slower than GOGC=100.
        let fallback = i.marked.saturating_mul(2).max(MIN_HEAP);
        return if i.gc_percent < 0 {
            fallback
        } else {
            proportional
        };
    }
    let room = (i.limit.max(0) as usize).saturating_sub(i.non_heap);
    let headroom = (room / 100 * 3).max(1 << 20);
    proportional.min(room.saturating_sub(headroom).max(i.marked))
}

/// The heap size at which the next cycle starts: 7/8 of the way from the bytes the last cycle
/// marked to `goal` (Go's first-cycle trigger, and inside its clamp of 0.7–0.95 of the
/// runway), so concurrent marking has the last eighth to finish before the goal. A goal of
/// `usize::MAX` (GOGC off, no limit) never triggers.
pub fn trigger(marked: usize, goal: usize) -> usize {
    if goal == usize::MAX {
        return usize::MAX;
    }
    let runway = goal.saturating_sub(marked);
    marked + runway / 8 * 7
}

/// The CPU limiter's leaky bucket (module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct Limiter {
    bucket_ns: u64,
}

/// The bucket's capacity: one second of collection beyond half the time.
const CAPACITY_NS: u64 = 1_000_000_000;

impl Limiter {
    /// Accounts one cycle that took `gc_ns` after `mutator_ns` since the previous one;
    /// returns whether the limiter is engaged.
    pub fn update(&mut self, gc_ns: u64, mutator_ns: u64) -> bool {
        self.bucket_ns = (self.bucket_ns + gc_ns)
            .saturating_sub(mutator_ns)
            .min(CAPACITY_NS);
        self.engaged()
    }

    /// True when collection has taken more than half the time for about a second.
    pub fn engaged(&self) -> bool {
        self.bucket_ns >= CAPACITY_NS
    }
}

/// A heap's live pacing figures (`Heap::pacing`), which `Heap::update_goal` sets from the
/// functions above after each cycle and the allocation paths compare against.
pub(crate) struct Pacing {
    /// Bytes of objects allocated or cached since the last mark, plus what it marked
    /// (Go's `heapLive`). Atomic, relaxed: a trigger check only.
    pub(crate) live: AtomicUsize,
    /// The heap goal: marking should end before `live` reaches it; an allocation that finds
    /// it reached while marking waits for the cycle to end. Atomic, relaxed.
    pub(crate) goal: AtomicUsize,
    /// A cycle is requested when `live` reaches this (7/8 of the way from the last marked
    /// bytes to the goal). Atomic, relaxed.
    pub(crate) trigger: AtomicUsize,
    pub(crate) gc_percent: AtomicI32,
}

impl Pacing {
    /// No cycle yet: no goal, no trigger; GOGC `gc_percent`.
    pub(crate) fn new(gc_percent: i32) -> Self {
        Pacing {
            live: AtomicUsize::new(0),
            goal: AtomicUsize::new(usize::MAX),
            trigger: AtomicUsize::new(usize::MAX),
            gc_percent: AtomicI32::new(gc_percent),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    fn inputs(marked: usize) -> Inputs {
        Inputs {
            marked,
            roots: 0,
            gc_percent: 100,
            limit: NO_LIMIT,
            non_heap: 0,
            limited: false,
        }
    }

    #[test]
    fn trigger_leaves_an_eighth_of_the_runway_for_marking() {
        assert_eq!(trigger(8 << 20, 16 << 20), 15 << 20);
        assert_eq!(trigger(0, MIN_HEAP), MIN_HEAP / 8 * 7);
        assert_eq!(trigger(10, usize::MAX), usize::MAX);
        assert_eq!(
            trigger(100, 50),
            100,
            "a goal below the marked bytes triggers at once"
        );
    }

    #[test]
    fn proportional_goal_is_gos() {
        assert_eq!(heap_goal(inputs(100 * MIB)), 200 * MIB);
        assert_eq!(heap_goal(inputs(MIB)), 4 * MIB, "the minimum heap");
        let i = Inputs {
            gc_percent: 50,
            roots: 10 * MIB,
            ..inputs(100 * MIB)
        };
        assert_eq!(heap_goal(i), 155 * MIB);
        let i = Inputs {
            gc_percent: 200,
            ..inputs(0)
        };
        assert_eq!(heap_goal(i), 8 * MIB);
        let off = Inputs {
            gc_percent: -1,
            ..inputs(100 * MIB)
        };
        assert_eq!(heap_goal(off), usize::MAX);
        let huge = Inputs {
            gc_percent: i32::MAX,
            ..inputs(usize::MAX / 2)
        };
        assert_eq!(heap_goal(huge), usize::MAX, "saturates");
    }

    #[test]
    fn memory_limit_caps_the_goal_with_headroom() {
        let i = Inputs {
            limit: 200 * MIB as i64,
            non_heap: 20 * MIB,
            ..inputs(100 * MIB)
        };
        // room 180 MiB, headroom 3% = 5.4 MiB.
        let g = heap_goal(i);
        assert!(g < 175 * MIB && g > 174 * MIB, "{g}");
        let off = Inputs {
            gc_percent: -1,
            ..i
        };
        assert_eq!(heap_goal(off), g, "GOGC=off with a limit: the limit alone");
        let small = Inputs {
            limit: 5 * MIB as i64,
            ..inputs(50 * MIB)
        };
        assert_eq!(heap_goal(small), 50 * MIB, "never below what is marked");
        let loose = Inputs {
            limit: 10 << 30,
            ..inputs(100 * MIB)
        };
        assert_eq!(heap_goal(loose), 200 * MIB, "a loose limit changes nothing");
    }

    /// Scenario "limit too small": a live heap larger than the limit. Each cycle costs 10 ms
    /// and, with the goal pinned at the live heap, the mutator gets 1 ms between cycles. The
    /// limiter must engage within about a second of such cycles and then let the heap grow.
    #[test]
    fn limiter_engages_when_the_heap_cannot_fit_and_lets_it_grow() {
        let mut l = Limiter::default();
        let mut i = Inputs {
            limit: 64 * MIB as i64,
            ..inputs(80 * MIB)
        };
        let mut cycles = 0;
        while !l.update(10_000_000, 1_000_000) {
            assert_eq!(heap_goal(i), 80 * MIB);
            cycles += 1;
            assert!(cycles < 200, "limiter never engaged");
        }
        assert!((100..=120).contains(&cycles), "{cycles} cycles");
        i.limited = true;
        assert_eq!(heap_goal(i), 160 * MIB);
        // Scenario "steady": cheap cycles far apart drain the bucket again.
        let mut steady = 0;
        while l.update(1_000_000, 100_000_000) {
            steady += 1;
        }
        assert_eq!(steady, 0, "one long mutator stretch drains the bucket");
        assert!(!l.engaged());
    }

    /// Scenario "steady": 10% of time in collection never engages the limiter.
    #[test]
    fn limiter_stays_off_at_moderate_cost() {
        let mut l = Limiter::default();
        for _ in 0..10_000 {
            assert!(!l.update(1_000_000, 9_000_000));
        }
    }
}
