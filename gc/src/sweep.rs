//! Sweeping (`lib.rs`, "Collection" step 5; `collect` steps 1, 6 and 7): the span lists'
//! life after marking. Every small span is swept once per cycle, by whoever gets to it first
//! under the central lock: a refill that needs a span of its kind (lazy), a refill sweeping
//! one more anywhere (proportional), the collector thread between cycles (background), or
//! sweep termination at the next cycle's start. Sweeping makes the mark bits the alloc bits
//! (`span::GcSpan::sweep`); a span left with no object goes back to the page heap.
//!
//! Invariants (all under `Heap::central`):
//! 1. A span is swept in generation `sweepgen` at most once (`swept == sweepgen` after), and
//!    never while cached or while marking (the flip is at mark termination; sweep
//!    termination finishes before the next marking starts).
//! 2. A freed record is retired, not reused, until the lists that may still name it are
//!    rebuilt (`finish_sweep`, `queue_sweep`).

use crate::heap::Central;
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

    /// Sweeps `s` if it is in use, uncached and unswept; returns its surviving objects, or
    /// `None` if it was not swept.
    pub(crate) fn sweep_one(&mut self, s: *mut GcSpan, poison: bool) -> Option<u32> {
        // SAFETY: a listed record is valid; under the central lock we are its holder unless
        // it is cached (checked).
        let r = unsafe { &*s };
        // SAFETY: as above.
        let o = unsafe { r.owned() };
        if r.state.load(Ordering::Relaxed) != IN_USE || o.cached || o.swept == self.sweepgen {
            return None;
        }
        // SAFETY: as above; nothing marks while mutators run.
        Some(unsafe { r.sweep(poison, self.sweepgen) })
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
            // SAFETY: as above; not cached (partial and swept spans are uncached).
            let o = unsafe { r.owned() };
            if r.state.load(Ordering::Relaxed) != IN_USE || o.cached || o.swept != sweepgen {
                continue;
            }
            // SAFETY: as above.
            if unsafe { r.free_slots() } > 0 {
                return Some(s);
            }
        }
    }

    /// Background sweeping (the collector thread between cycles): sweeps up to `n` more
    /// spans; false once every span has been visited.
    pub(crate) fn sweep_batch(&mut self, n: usize, poison: bool) -> bool {
        for _ in 0..n {
            self.sweep_some(poison);
        }
        self.cursor < self.all.len()
    }

    /// Proportional sweeping: sweeps one more unswept span, so every span is swept long
    /// before the next cycle (Go's sweep credit, one span per refill).
    pub(crate) fn sweep_some(&mut self, poison: bool) {
        while self.cursor < self.all.len() {
            let s = self.all[self.cursor];
            self.cursor += 1;
            if let Some(live) = self.sweep_one(s, poison) {
                // SAFETY: listed and in use (just swept).
                let r = unsafe { &*s };
                if live == 0 {
                    self.free_span(s);
                } else if live < r.nelems {
                    self.kinds.entry(r.kind).or_default().partial.push(s);
                }
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
        // without relisting left every free slot unusable until the next flip, so each
        // cycle's marking took fresh spans: the heap grew by the marking runway per cycle.)
        for lists in self.kinds.values_mut() {
            lists.partial.clear();
            lists.unswept.clear();
        }
        for &s in &self.all {
            // SAFETY: listed, in use, swept; under the central lock we are its holder unless
            // it is cached (checked first).
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
        self.sweepgen = self.sweepgen.wrapping_add(1);
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
            } else {
                self.free_span(s);
            }
        }
        self.records.append(&mut self.retired);
    }
}
