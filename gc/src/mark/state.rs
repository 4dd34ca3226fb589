//! Marking's shared state (`Heap::mark`): the barrier's switch, the queue through which
//! mutators hand grey values and black ranges to the collector, the work list markers share,
//! and the progress figures assists pace themselves by. A leaf below the heap; the protocol
//! that uses it is `collect`'s (rules 1-11) and `mark`'s.

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Condvar, Mutex};

/// A heap's marking state.
#[derive(Default)]
pub(crate) struct MarkState {
    /// The barrier is on and new objects are black (`collect`, rule 1). Changed only while the
    /// world is stopped.
    pub(crate) marking: AtomicBool,
    /// Set when a mutator hands grey values to the collector (`collect`, rule 9).
    pub(crate) flushed: AtomicBool,
    /// Bytes of shadow-stack roots the mutators scanned themselves this cycle (statistics and
    /// the pacer's root term; reset at each cycle's start). Atomic, relaxed.
    pub(crate) stack_scan_bytes: AtomicUsize,
    /// Batches of grey objects (span, address) shared between markers (`mark`); leaf lock.
    pub(crate) work: Mutex<Vec<Vec<(usize, usize)>>>,
    /// Set by a marker with nothing to do: whoever has work spills some to `work`. Relaxed.
    pub(crate) work_wanted: AtomicBool,
    /// Markers other than the collector thread (assisting mutators, mark workers) that may
    /// hold grey objects (`collect` rules 10 and 11).
    pub(crate) helpers: AtomicUsize,
    /// Bytes marked by assists and mark workers this cycle, added as they stop.
    pub(crate) helper_marked: AtomicUsize,
    /// Bytes marked so far this cycle, published by every marker as it goes (the assist ratio's
    /// progress). Relaxed.
    pub(crate) mark_progress: AtomicUsize,
    /// The bytes this cycle is expected to mark: what the last one marked. Relaxed.
    pub(crate) scan_expected: AtomicUsize,
    pub(crate) queue: Mutex<MarkQueue>,
    /// Signalled when work is queued or a stack scan ends (the collector waits on it), and
    /// when marking starts (mark workers wait on it).
    pub(crate) queue_cv: Condvar,
}

/// Guarded by `MarkState::queue`: work for the collector from the mutators.
#[derive(Default)]
pub(crate) struct MarkQueue {
    /// Values to shade (barrier buffers, stack scans, handles).
    pub(crate) grey: Vec<usize>,
    /// Slots `from..to` of a span handed out while marking: to be marked black (rule 5).
    pub(crate) black: Vec<(usize, u32, u32)>,
}

impl MarkQueue {
    pub(crate) fn is_empty(&self) -> bool {
        self.grey.is_empty() && self.black.is_empty()
    }
    pub(crate) fn clear(&mut self) {
        self.grey.clear();
        self.black.clear();
    }
}
