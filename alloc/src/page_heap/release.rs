//! Dirty and clean pages (invariant 4 of `page_heap`): the bookkeeping as runs leave and
//! rejoin the index (`note_freed`, `note_taken`), and the releases the scavenger and the
//! memory limit make, highest address first (`highest_dirty`, `take_out`, `release_locked`).

use super::{Inner, PageHeap, RELEASE_CHUNK};
use crate::dirty::ArenaPages;
use crate::knobs;
use crate::os;
use crate::pagemap::ARENA_SIZE;
use crate::size_class::PAGE_SHIFT;
use crate::span::{Span, SpanState};
use crate::sync::Ordering;

impl Inner {
    /// Calls `f(arena, first, n)` for each arena piece of the pages `[start, start + pages)`.
    pub(super) fn for_arena_pieces(
        heap: &PageHeap,
        start: usize,
        pages: usize,
        mut f: impl FnMut(&ArenaPages, usize, usize),
    ) {
        let end = start + (pages << PAGE_SHIFT);
        let mut at = start;
        while at < end {
            let arena_end = (at | (ARENA_SIZE - 1)) + 1;
            let stop = arena_end.min(end);
            f(
                heap.pagemap.arena_pages(at),
                (at & (ARENA_SIZE - 1)) >> PAGE_SHIFT,
                (stop - at) >> PAGE_SHIFT,
            );
            at = stop;
        }
    }

    /// Pages `[start, start + pages)`, which held a span, are free again: they are dirty.
    pub(super) fn note_freed(&mut self, heap: &PageHeap, start: usize, pages: usize) {
        Self::for_arena_pieces(heap, start, pages, |a, first, n| a.mark(first, n));
        self.dirty_pages += pages;
        if !heap.ever_dirty.load(Ordering::Relaxed) {
            heap.ever_dirty.store(true, Ordering::Relaxed);
        }
    }

    /// Pages `[start, start + pages)` leave the free index; returns how many were dirty.
    pub(super) fn note_taken(&mut self, heap: &PageHeap, start: usize, pages: usize) -> usize {
        let mut dirty = 0;
        Self::for_arena_pieces(heap, start, pages, |a, first, n| dirty += a.clear(first, n));
        self.dirty_pages -= dirty;
        dirty
    }

    /// The highest run of dirty pages (at most `max` long), as `(address, pages)`.
    pub(super) fn highest_dirty(&self, max: usize) -> Option<(usize, usize)> {
        let mut a = self.arenas;
        while !a.is_null() {
            // SAFETY: arena records live in never-freed leaves; lock held.
            let arena = unsafe { &*a };
            if let Some((first, n)) = arena.highest_run(max) {
                return Some((arena.base() + (first << PAGE_SHIFT), n));
            }
            a = arena.lower();
        }
        None
    }

    /// Takes the dirty pages `[start, start + pages)` out of their free run as a `Releasing`
    /// span; what is left of the run stays indexed.
    ///
    /// # Safety
    /// Lock held; the pages are dirty (so inside one indexed run); two pool records.
    pub(super) unsafe fn take_out(
        &mut self,
        heap: &PageHeap,
        start: usize,
        pages: usize,
    ) -> *mut Span {
        let run = heap.pagemap.get(start);
        // SAFETY: a dirty page belongs to an indexed free run (dirty invariant 1); lock held.
        unsafe {
            debug_assert_eq!((*run).state(), SpanState::Free);
            self.unindex(run);
            let (rs, re) = ((*run).start(), (*run).end());
            let end = start + (pages << PAGE_SHIFT);
            let zeroed = (*run).owned().zeroed;
            let mid = if rs == start {
                run
            } else {
                (*run).set_range(rs, (start - rs) >> PAGE_SHIFT);
                self.index(run);
                let m = self.take_record();
                heap.pagemap.set_range(start, pages, m);
                m
            };
            (*mid).set_range(start, pages);
            if end < re {
                let t = self.take_record();
                (*t).set_range(end, (re - end) >> PAGE_SHIFT);
                (*t).owned().zeroed = zeroed;
                heap.pagemap.set_range(end, (re - end) >> PAGE_SHIFT, t);
                self.index(t);
            }
            self.note_taken(heap, start, pages);
            (*mid).set_state(SpanState::Releasing, 0);
            self.releasing_pages += pages;
            mid
        }
    }

    /// Releases dirty pages in place, lock held, until `pages` are released or none is dirty
    /// (the memory limit's synchronous path). Returns the pages released.
    pub(super) fn release_locked(&mut self, heap: &PageHeap, pages: usize) -> usize {
        let mut done = 0;
        while done < pages {
            let Some((start, n)) = self.highest_dirty((pages - done).min(RELEASE_CHUNK)) else {
                break;
            };
            // SAFETY: a dirty free run of the index (`highest_dirty`), with the lock held:
            // committed, ours, and handed to no one.
            unsafe { os::release(start, n << PAGE_SHIFT, knobs::get().madv_free) };
            self.note_taken(heap, start, n);
            self.released_total += (n << PAGE_SHIFT) as u64;
            done += n;
        }
        done
    }
}
