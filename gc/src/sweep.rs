//! Sweeping (`lib.rs`, "Collection" step 5; `collect` steps 1, 6 and 7): the span lists'
//! life after marking. Every small span is swept once per cycle, by whoever claims it first
//! (`sweepgen`: a compare-and-swap on the span's generation word): a refill that needs a span
//! of its kind (lazy) or sweeps one more anywhere (proportional), both under the central
//! lock; the collector thread between cycles (background), which sweeps batches outside the
//! lock and files the results under it; or sweep termination at the next cycle's start.
//! Sweeping makes the mark bits the alloc bits (`span::GcSpan::sweep`), clearing the weak
//! handles to the objects it finds dead first (`weak`); a span left with no object goes back
//! to the page heap.
//!
//! Invariants (the lists and records under `Heap::central`):
//! 1. A span is swept in generation `sweepgen` at most once, by the thread that claimed it
//!    (`sweepgen` rules 1 and 2), never while cached or while marking (the flip is at mark
//!    termination; sweep termination finishes before the next marking starts).
//! 2. A freed record is retired, not reused, until the lists that may still name it are
//!    rebuilt (`finish_sweep`, `queue_sweep`); both run on the collector thread, the only
//!    thread that holds claimed spans outside the lock (`sweepgen` rule 4).
//! 3. A swept span is filed (freed, or listed as partial) by its sweeper; until then no list
//!    offers it to a cache: it is off `partial`, and `unswept`'s copy fails the claim.

use crate::central::Central;
use crate::heap::Heap;
use crate::span::{FREE, GcSpan, IN_USE};
use crate::spanmap;
use std::ptr;
use std::sync::atomic::Ordering;

impl Central {
    /// Gives a span's pages back to the page heap; the record is retired.
    pub(crate) fn free_span(&mut self, s: *mut GcSpan) {
        // SAFETY: `s` is an in-use record under the central lock, held by no cache.
        let s = unsafe { &*s };
        s.state.store(FREE, Ordering::Release);
        spanmap::set(s.start, s.pages, ptr::null_mut());
        self.span_bytes -= s.bytes();
        // SAFETY: the pages came from `alloc_pages`; no object in them is reachable.
        unsafe { tricolor_alloc::free(s.start as *mut u8) };
        self.retired.push(s as *const GcSpan as *mut GcSpan);
    }

    /// Sweeps `s` if it is in use and this call claims its sweep; returns its surviving
    /// objects, or `None` if it was not swept here.
    pub(crate) fn sweep_one(&mut self, s: *mut GcSpan, poison: bool) -> Option<u32> {
        sweep_claimed(s, self.sweepgen, poison)
    }

    /// Files a span its sweeper found with `live` objects (invariant 3).
    pub(crate) fn file_swept(&mut self, s: *mut GcSpan, live: u32) {
        // SAFETY: a listed record, in use (just swept; only its sweeper frees it).
        let r = unsafe { &*s };
        if live == 0 {
            self.free_span(s);
        } else if live < r.nelems {
            self.kinds.entry(r.kind).or_default().partial.push(s);
        }
    }

    /// The next `n` spans for the background sweeper to claim, and the generation to claim
    /// them in (`sweepgen` rule 3); empty once every span has been visited.
    pub(crate) fn take_batch(&mut self, n: usize) -> (Vec<*mut GcSpan>, u32) {
        let end = (self.cursor + n).min(self.all.len());
        let batch = self.all[self.cursor..end].to_vec();
        self.cursor = end;
        (batch, self.sweepgen)
    }

    /// A swept span of `kind` with a free slot, for a cache; `None` if the kind has none.
    pub(crate) fn find_span(&mut self, kind: u64, poison: bool) -> Option<*mut GcSpan> {
        let sweepgen = self.sweepgen;
        loop {
            let lists = self.kinds.entry(kind).or_default();
            let s = if let Some(s) = lists.partial.pop() {
                s
            } else {
                let s = lists.unswept.pop()?;
                match self.sweep_one(s, poison) {
                    None => continue,
                    Some(_) => s,
                }
            };
            // SAFETY: listed records are valid; we hold the central lock.
            let r = unsafe { &*s };
            // A span being swept outside the lock is filed by its sweeper (invariant 3).
            if r.state.load(Ordering::Relaxed) != IN_USE || !r.sweepgen.is_swept(sweepgen) {
                continue;
            }
            // SAFETY: swept and under the central lock: ours to read unless cached (checked
            // first; `sweepgen` rule 2).
            if unsafe { r.owned() }.cached {
                continue;
            }
            // SAFETY: as above, and uncached.
            if unsafe { r.free_slots() } > 0 {
                return Some(s);
            }
        }
    }

    /// Proportional sweeping: sweeps one more unswept span, so every span is swept long
    /// before the next cycle (Go's sweep credit, one span per refill).
    pub(crate) fn sweep_some(&mut self, poison: bool) {
        while self.cursor < self.all.len() {
            let s = self.all[self.cursor];
            self.cursor += 1;
            if let Some(live) = self.sweep_one(s, poison) {
                self.file_swept(s, live);
                return;
            }
        }
    }

    /// Sweep termination: sweeps every span not yet swept this cycle, drops freed records
    /// from the lists and makes them reusable, and lists again every uncached span with a
    /// free slot, so that marking allocates from them before it takes new pages.
    pub(crate) fn finish_sweep(&mut self, poison: bool) {
        for i in 0..self.all.len() {
            let s = self.all[i];
            if self.sweep_one(s, poison) == Some(0) {
                self.free_span(s);
            }
        }
        // SAFETY: listed records are valid.
        self.all
            .retain(|&s| unsafe { (*s).state.load(Ordering::Relaxed) } == IN_USE);
        // The lists may name freed records (invariant 2): rebuilt from `all`. (Clearing them
        // without relisting would leave every free slot unusable until the next flip, so each
        // cycle's marking would take fresh spans: the heap would grow by the marking runway
        // per cycle.)
        for lists in self.kinds.values_mut() {
            lists.partial.clear();
            lists.unswept.clear();
        }
        for &s in &self.all {
            // SAFETY: listed, in use, swept, and no sweeper holds a claim (the background
            // sweeper is this thread); under the central lock we are its holder unless it is
            // cached (checked first).
            let r = unsafe { &*s };
            // SAFETY: as above.
            if !unsafe { r.owned() }.cached && unsafe { r.free_slots() } > 0 {
                self.kinds.entry(r.kind).or_default().partial.push(s);
            }
        }
        self.records.append(&mut self.retired);
        self.cursor = self.all.len();
    }

    /// Mark termination's flip, with the world stopped: every small span becomes unswept in
    /// the new generation. Returns the large objects of the cycle, for [`Central::queue_sweep`]
    /// to free the dead ones after the restart (O(1) here: no pause work per span).
    pub(crate) fn flip(&mut self) -> Vec<*mut GcSpan> {
        self.sweepgen = self.sweepgen.wrapping_add(2);
        self.cursor = self.all.len();
        std::mem::take(&mut self.large)
    }

    /// After the restart: queues every small span for sweeping and frees the dead ones of
    /// `large` (the large objects that existed at the flip).
    pub(crate) fn queue_sweep(&mut self, large: Vec<*mut GcSpan>) {
        for lists in self.kinds.values_mut() {
            lists.partial.clear();
            lists.unswept.clear();
        }
        for &s in &self.all {
            // SAFETY: after `finish_sweep` every listed record is in use.
            let kind = unsafe { (*s).kind };
            self.kinds.entry(kind).or_default().unswept.push(s);
        }
        self.cursor = 0;
        for s in large {
            // SAFETY: listed large records are in use.
            let r = unsafe { &*s };
            if r.bits[0].mark.swap(0, Ordering::Relaxed) & 1 != 0 {
                self.large.push(s);
                continue;
            }
            // `weak` rule 1: its mark is clear now, so every handle to it is cleared; then
            // `finalize` rule 3: a finalizer keeps it for one more cycle.
            r.clear_dead_weak();
            // SAFETY: as in `sweep_claimed`.
            let heap = unsafe { &*(r.heap as *const Heap) };
            heap.sweep_ephemerons(r);
            if heap.sweep_large_specials(r) {
                self.large.push(s);
            } else {
                self.free_span(s);
            }
        }
        self.records.append(&mut self.retired);
    }
}

/// Sweeps `s` in generation `h` if it is in use and this call claims it (`sweepgen` rule 1);
/// its surviving objects, or `None`. With or without the central lock.
pub(crate) fn sweep_claimed(s: *mut GcSpan, h: u32, poison: bool) -> Option<u32> {
    // SAFETY: a record named by a list is valid: records are never deallocated, and one
    // taken from `all` stays a span's record while its sweeper may use it (invariant 2).
    let r = unsafe { &*s };
    if r.state.load(Ordering::Relaxed) != IN_USE || !r.sweepgen.claim(h) {
        return None;
    }
    // With the mark bits still this cycle's: weak handles to dead objects are cleared and dead
    // keys' ephemeron entries removed first, then finalizers and cleanups are queued (`weak`
    // rule 1, `ephemeron` rule 4, `finalize` rule 3).
    r.clear_dead_weak();
    // SAFETY: a span's `heap` is its heap's address, and heaps are never freed.
    let heap = unsafe { &*(r.heap as *const Heap) };
    heap.sweep_ephemerons(r);
    heap.sweep_specials(r);
    // SAFETY: the claim makes us the holder; only swept spans are cached; nothing marks
    // between the flip and the next cycle's sweep termination.
    Some(unsafe { r.sweep(poison, h) })
}

impl Heap {
    /// Sweeps every span left unswept by the last cycle, as a mutator does (a batch at a time
    /// under the central lock), and waits out the spans the background sweeper holds: then
    /// the cycle's finalizers and cleanups are queued and its weak handles cleared (Go's
    /// `runtime.GC` returns with the sweep done; `Heap::wait_finalizers` does this first).
    pub(crate) fn sweep_to_end(&self) {
        let poison = self.config.verify;
        loop {
            let mut c = self.central_lock();
            for _ in 0..64 {
                if c.cursor >= c.all.len() {
                    break;
                }
                c.sweep_some(poison);
            }
            if c.cursor < c.all.len() {
                continue;
            }
            let h = c.sweepgen;
            // SAFETY: listed records are valid.
            let held = c.all.iter().any(|&s| unsafe {
                (*s).state.load(Ordering::Relaxed) == IN_USE && !(*s).sweepgen.is_swept(h)
            });
            if !held && !self.large_pending.load(Ordering::Acquire) {
                return;
            }
            drop(c);
            std::thread::yield_now();
        }
    }

    /// Background sweeping: claims and sweeps up to `n` more spans outside the central lock,
    /// then files them under it; false once every span has been visited. A refill waits for
    /// the lock only while a batch is taken or filed, not swept. Called only on the collector
    /// thread (invariant 2).
    pub(crate) fn sweep_batch(&self, n: usize) -> bool {
        let poison = self.config.verify;
        let (batch, h) = self.central_lock().take_batch(n);
        if batch.is_empty() {
            return false;
        }
        let swept: Vec<(*mut GcSpan, u32)> = batch
            .into_iter()
            .filter_map(|s| sweep_claimed(s, h, poison).map(|live| (s, live)))
            .collect();
        let mut c = self.central_lock();
        for (s, live) in swept {
            c.file_swept(s, live);
        }
        true
    }
}
