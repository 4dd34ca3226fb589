//! Process initialisation: deciding the front end at the first allocation, initialising the
//! process heap with the hooks it registers (the per-thread caches' exit flush, the `fork`
//! handlers), and starting the heap profile the environment asks for.
//!
//! Above the front ends, `fork` and the profiler's sampler: initialisation names all of them,
//! and none of them names it. The API layer's cold path (`api::front_alloc_other`) and the
//! calls that need a decided front end (statistics, `profile::set_rate`) come here; the fast
//! paths read the decided mode in `fast::FAST` and never do.
//!
//! Invariant: the mode in `slab::Layout` goes from `UNDECIDED` to `PER_CPU` or `PER_THREAD`
//! once, under `DECIDE`, after the process heap is initialised and (per-CPU) the slabs are
//! built; its Release store publishes both, so a thread that reads a decided mode with
//! Acquire finds them ready.

use crate::fast::FAST;
use crate::heap;
use crate::os::rseq;
use crate::percpu;
use crate::profile::{sampler, writer};
use crate::slab::{PER_CPU, PER_THREAD};
use crate::sync::{Mutex, Ordering};
use crate::{fork, knobs, thread_cache};

/// Which front end serves allocations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrontEnd {
    /// Per-CPU caches on restartable sequences.
    PerCpu,
    /// Per-thread caches (rseq unavailable, or `TRICOLOR_PERCPU=0`).
    PerThread,
}

/// The front end in use, deciding it on first call.
pub fn front_end() -> FrontEnd {
    if per_cpu() {
        FrontEnd::PerCpu
    } else {
        FrontEnd::PerThread
    }
}

/// True when the per-CPU caches serve allocations, deciding the front end first. Tests one
/// bit each way, so a set `SAMPLING` bit costs nothing here.
#[inline(always)]
pub(crate) fn per_cpu() -> bool {
    let m = percpu::mode();
    if m & PER_CPU != 0 {
        true
    } else if m & PER_THREAD != 0 {
        false
    } else {
        decide()
    }
}

/// Decides the front end if nothing has yet. The paths that do not go through the front end
/// call it (page runs for large blocks and for the collector's spans, `release_memory`, the
/// test hooks), so a process that never allocates a small block still initialises the heap
/// (its `fork` handlers and thread-exit key) and starts the profile the environment asks for,
/// before the scavenger ever runs in it.
#[inline]
pub(crate) fn ensure() {
    per_cpu();
}

/// Serialises the decision.
static DECIDE: Mutex<()> = Mutex::new(());

#[cold]
#[inline(never)]
fn decide() -> bool {
    let _g = DECIDE.lock();
    match FAST.layout.mode.load(Ordering::Acquire) {
        PER_CPU => return true,
        PER_THREAD => return false,
        _ => {}
    }
    heap::ensure_init(&HOOKS);
    // The environment's sampling rate is in force before the slabs are built, so that they
    // are built with their counters armed (`percpu::build_slabs`).
    sampler::preset_rate(knobs::profile().rate);
    let ok = knobs::get().percpu && rseq::detect().is_some_and(percpu::build_slabs);
    FAST.layout
        .mode
        .store(if ok { PER_CPU } else { PER_THREAD }, Ordering::Release);
    drop(_g);
    // Outside the lock: starting the profiler allocates (a copy of its path).
    start_profile_from_environment();
    ok
}

/// What process-heap initialisation registers: the thread-exit flush and the fork handlers.
static HOOKS: heap::Hooks = heap::Hooks {
    on_thread_exit: thread_cache::on_thread_exit,
    fork_prepare: fork::prepare,
    fork_parent: fork::parent,
    fork_child: fork::child,
};

/// Called once, when the front end is decided (the first allocation): starts sampling and
/// registers the writes `TRICOLOR_PROFILE` asks for.
fn start_profile_from_environment() {
    let k = knobs::profile();
    if k.rate > 0 {
        sampler::set_rate(k.rate);
    }
    if let Some(path) = k.path {
        writer::arm(path, k.signal);
    }
}
