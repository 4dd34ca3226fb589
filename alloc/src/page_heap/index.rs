//! The free-run index: best fit (`find`), splitting a run around what is taken (`carve`),
//! and freeing with coalescing (`release`, `merge`), under invariants 1 and 3 of `page_heap`.

use super::{Inner, PageHeap, SMALL_RUNS};
use crate::size_class::{PAGE_SHIFT, PAGE_SIZE};
use crate::span::{Span, SpanState};
use core::ptr;

impl Inner {
    /// The best-fitting free run of at least `pages` pages, or null.
    pub(super) fn find(&self, pages: usize) -> *mut Span {
        if pages < SMALL_RUNS {
            let mask = self.nonempty & !((1u128 << pages) - 1);
            if mask != 0 {
                return self.small[mask.trailing_zeros() as usize].head();
            }
        }
        let mut s = self.large.head();
        while !s.is_null() {
            // SAFETY: members of `large` are Free records owned by the page heap.
            unsafe {
                if (*s).pages() >= pages {
                    return s;
                }
                s = (*s).owned().next;
            }
        }
        ptr::null_mut()
    }

    /// Adds a free run to the index.
    ///
    /// # Safety
    /// `s` is a Free-to-be record owned by the page heap, on no list, not adjacent to another
    /// free run (invariant 1), with its pagemap already pointing at it.
    pub(super) unsafe fn index(&mut self, s: *mut Span) {
        // SAFETY: lock held; `s` is owned by the page heap.
        unsafe {
            (*s).set_state(SpanState::Free, 0);
            let pages = (*s).pages();
            self.free_pages += pages;
            if pages < SMALL_RUNS {
                self.small[pages].push(s);
                self.nonempty |= 1u128 << pages;
                return;
            }
            let key = (pages, (*s).start());
            let mut at = self.large.head();
            let mut tail = ptr::null_mut();
            while !at.is_null() && ((*at).pages(), (*at).start()) < key {
                tail = at;
                at = (*at).owned().next;
            }
            self.large.insert_before(s, at, tail);
        }
    }

    /// Removes a free run from the index.
    ///
    /// # Safety
    /// `s` is indexed.
    pub(super) unsafe fn unindex(&mut self, s: *mut Span) {
        // SAFETY: lock held; `s` is a member of the list its size selects.
        unsafe {
            let pages = (*s).pages();
            self.free_pages -= pages;
            if pages < SMALL_RUNS {
                self.small[pages].remove(s);
                if self.small[pages].is_empty() {
                    self.nonempty &= !(1u128 << pages);
                }
            } else {
                self.large.remove(s);
            }
        }
    }

    /// Splits `pages` pages aligned to `align_pages` out of free run `run`; the pieces before
    /// and after return to the index. Returns the record now covering exactly the result.
    ///
    /// # Safety
    /// `run` is indexed with at least `pages + align_pages - 1` pages; two pool records.
    pub(super) unsafe fn carve(
        &mut self,
        heap: &PageHeap,
        run: *mut Span,
        pages: usize,
        align_pages: usize,
    ) -> *mut Span {
        // SAFETY: lock held throughout; records come from the stocked pool.
        unsafe {
            self.unindex(run);
            let zeroed = (*run).owned().zeroed;
            let start = (*run).start();
            let align = align_pages << PAGE_SHIFT;
            let aligned = (start + align - 1) & !(align - 1);
            let front = (aligned - start) >> PAGE_SHIFT;
            if front > 0 {
                // The piece before the aligned start keeps no free neighbour on its left
                // (invariant 1 held for `run`), so it is indexed without merging.
                let f = self.take_record();
                (*f).set_range(start, front);
                (*f).owned().zeroed = zeroed;
                heap.pagemap.set_range(start, front, f);
                self.index(f);
                (*run).set_range(aligned, (*run).pages() - front);
            }
            if (*run).pages() == pages {
                return run;
            }
            let s = self.take_record();
            (*s).set_range(aligned, pages);
            (*s).owned().zeroed = zeroed;
            heap.pagemap.set_range(aligned, pages, s);
            (*run).set_range(aligned + (pages << PAGE_SHIFT), (*run).pages() - pages);
            self.index(run);
            s
        }
    }

    /// Takes back pages a span used: they are dirty now, and are indexed, merged with free
    /// neighbours.
    ///
    /// # Safety
    /// As for [`Inner::release`].
    pub(super) unsafe fn take_back(&mut self, heap: &PageHeap, s: *mut Span) {
        // SAFETY: the caller's contract; lock held.
        unsafe {
            (*s).owned().zeroed = false;
            self.note_freed(heap, (*s).start(), (*s).pages());
            self.release(heap, s);
        }
    }

    /// Marks `s` free, merges it with free neighbours (remapping the smaller side) and indexes
    /// the result.
    ///
    /// # Safety
    /// `s` is owned by the page heap, on no list, its pages mapped to it.
    pub(super) unsafe fn release(&mut self, heap: &PageHeap, s: *mut Span) {
        // SAFETY: lock held; neighbours found through the pagemap are exact under the lock.
        unsafe {
            let mut cur = s;
            let start = (*cur).start();
            let left = if start >= PAGE_SIZE {
                heap.pagemap.get(start - PAGE_SIZE)
            } else {
                ptr::null_mut()
            };
            if !left.is_null() && (*left).state() == SpanState::Free {
                debug_assert_eq!((*left).end(), start);
                self.unindex(left);
                cur = self.merge(heap, left, cur);
            }
            let right = heap.pagemap.get((*cur).end());
            if !right.is_null() && (*right).state() == SpanState::Free {
                debug_assert_eq!((*right).start(), (*cur).end());
                self.unindex(right);
                cur = self.merge(heap, cur, right);
            }
            self.index(cur);
        }
    }

    /// Joins two adjacent runs (`a` directly before `b`); the record with more pages survives
    /// so the fewest pagemap slots are rewritten.
    ///
    /// # Safety
    /// Both are owned by the page heap and on no list.
    pub(super) unsafe fn merge(
        &mut self,
        heap: &PageHeap,
        a: *mut Span,
        b: *mut Span,
    ) -> *mut Span {
        // SAFETY: lock held; both records owned by the page heap.
        unsafe {
            let zeroed = (*a).owned().zeroed && (*b).owned().zeroed;
            let (start, pages) = ((*a).start(), (*a).pages() + (*b).pages());
            let (keep, gone) = if (*a).pages() >= (*b).pages() {
                (a, b)
            } else {
                (b, a)
            };
            heap.pagemap
                .set_range((*gone).start(), (*gone).pages(), keep);
            (*keep).set_range(start, pages);
            (*keep).owned().zeroed = zeroed;
            self.drop_record(gone);
            keep
        }
    }
}
