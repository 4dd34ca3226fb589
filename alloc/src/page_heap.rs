//! The page heap: runs of 8 KiB pages for every span Tricolor hands out.
//!
//! # Structure
//! * Address space comes in *regions*, reserved (`PROT_NONE`) in multiples of 64 MiB and
//!   aligned to 64 MiB, placed right after the previous region when the kernel allows, so the
//!   heap usually grows as one contiguous range. The *frontier* `[region_cur, region_end)` is
//!   the reserved, uncommitted rest of the newest region; growth commits at least
//!   [`GROW_CHUNK`] from it at a time.
//! * Free runs are indexed by size: an exact-size list for each run length below
//!   [`SMALL_RUNS`] pages (1 MiB) with a 128-bit "non-empty" mask, so best fit is one
//!   `trailing_zeros`; longer runs sit on one list sorted by (pages, address), searched first-fit
//!   (= best fit, lowest address among equals). Long runs are few because neighbours coalesce.
//! * Span records come from a pool refilled from metadata memory.
//!
//! # Invariants (all under `PageHeap::inner`'s lock)
//! 1. No two free runs are adjacent: a freed run merges with free neighbours at once.
//! 2. Every page of every span maps to it in the pagemap (see `pagemap`).
//! 3. `free_pages` is the sum of the pages of all indexed free runs; `committed` counts every
//!    byte made read-write (spans in use, free runs).
//!
//! Lock order: `Central[class]` before the page heap; the page heap calls no one above it.

use crate::meta::MetaArena;
use crate::os;
use crate::pagemap::{ARENA_SIZE, PageMap};
use crate::size_class::{PAGE_SHIFT, PAGE_SIZE};
use crate::span::{Span, SpanList, SpanState};
use crate::sync::Mutex;
use core::ptr::{self, NonNull};

/// Runs shorter than this many pages have exact-size free lists.
const SMALL_RUNS: usize = 128;
/// The least the heap commits when it grows (1 MiB): fewer `mprotect` calls.
const GROW_CHUNK: usize = 1 << 20;
/// Span records allocated at once when the pool is empty.
const RECORD_BATCH: usize = 64;

/// A run handed out by [`PageHeap::alloc`].
pub(crate) struct Run {
    pub(crate) span: NonNull<Span>,
    /// Every byte of the run is zero (fresh from the OS).
    pub(crate) zeroed: bool,
}

/// The process's page heap (or a private one in tests).
pub(crate) struct PageHeap {
    pub(crate) pagemap: PageMap,
    pub(crate) meta: MetaArena,
    inner: Mutex<Inner>,
}

struct Inner {
    small: [SpanList; SMALL_RUNS],
    nonempty: u128,
    large: SpanList,
    pool: *mut Span,
    region_cur: usize,
    region_end: usize,
    committed: usize,
    free_pages: usize,
}

// SAFETY: the raw pointers in Inner are only followed under the page-heap lock.
unsafe impl Send for Inner {}

/// Page-heap figures, for tests (the statistics API arrives with the scavenger).
#[cfg(any(test, feature = "testing"))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PageHeapStats {
    pub(crate) committed: usize,
    pub(crate) free_bytes: usize,
}

impl PageHeap {
    pub(crate) const fn new() -> Self {
        Self {
            pagemap: PageMap::new(),
            meta: MetaArena::new(),
            inner: Mutex::new(Inner {
                small: [const { SpanList::new() }; SMALL_RUNS],
                nonempty: 0,
                large: SpanList::new(),
                pool: ptr::null_mut(),
                region_cur: 0,
                region_end: 0,
                committed: 0,
                free_pages: 0,
            }),
        }
    }

    /// Takes the page-heap and metadata locks (fork prepare), in that order.
    pub(crate) fn lock_for_fork(&self) {
        self.inner.lock_for_fork();
        self.meta.lock_for_fork();
    }

    /// Releases what [`PageHeap::lock_for_fork`] took.
    ///
    /// # Safety
    /// As for `Mutex::unlock_after_fork`.
    pub(crate) unsafe fn unlock_after_fork(&self) {
        // SAFETY: the caller's contract.
        unsafe {
            self.meta.unlock_after_fork();
            self.inner.unlock_after_fork();
        }
    }

    /// Allocates `pages` pages starting on a multiple of `align_pages` pages (a power of two),
    /// as a span in `state` (Small with `class`, or Large). `None` when the OS refuses memory.
    pub(crate) fn alloc(
        &self,
        pages: usize,
        align_pages: usize,
        state: SpanState,
        class: usize,
    ) -> Option<Run> {
        debug_assert!(pages > 0 && align_pages.is_power_of_two());
        let want = pages.checked_add(align_pages - 1)?;
        let mut h = self.inner.lock();
        if !h.stock_records(self) {
            return None;
        }
        let mut run = h.find(want);
        if run.is_null() {
            if !h.grow(self, want) {
                return None;
            }
            run = h.find(want);
            debug_assert!(!run.is_null());
        }
        // SAFETY: `run` is an indexed free run, owned by the page heap (lock held); the pool
        // holds at least three records (stock_records).
        let span = unsafe { h.carve(self, run, pages, align_pages) };
        // SAFETY: `span` is owned by the page heap until it is returned.
        let zeroed = unsafe { (*span).owned().zeroed };
        // SAFETY: as above; the state change publishes the span to its new owner.
        unsafe { (*span).set_state(state, class) };
        h.check(self);
        NonNull::new(span).map(|span| Run { span, zeroed })
    }

    /// Returns a span's pages to the free index, merging with free neighbours.
    ///
    /// # Safety
    /// `span` is a Small or Large span of this heap that nobody uses any more; its owner lock
    /// (if Small) is held by the caller.
    pub(crate) unsafe fn free(&self, span: *mut Span) {
        let mut h = self.inner.lock();
        // SAFETY: the caller hands the span over; the page heap lock is held.
        unsafe {
            (*span).owned().zeroed = false;
            h.release(self, span);
        }
        h.check(self);
    }

    /// Frees the Large span `span` if it is still a live Large span starting at `addr`
    /// (checked under the lock, so of two racing frees of one block only one succeeds).
    /// Returns false, changing nothing, otherwise.
    ///
    /// # Safety
    /// `span` is a record of this heap (any state: records are type-stable).
    pub(crate) unsafe fn free_large(&self, span: *mut Span, addr: usize) -> bool {
        let mut h = self.inner.lock();
        // SAFETY: lock held, so the record's state and range are exact.
        unsafe {
            if (*span).state() != SpanState::Large || (*span).start() != addr {
                return false;
            }
            (*span).owned().zeroed = false;
            h.release(self, span);
        }
        h.check(self);
        true
    }

    /// Grows a Large span in place to `new_pages` when the pages after it are free (or are the
    /// frontier). Returns false, changing nothing, otherwise.
    ///
    /// # Safety
    /// `span` is a Large span of this heap owned by the caller.
    pub(crate) unsafe fn grow_in_place(&self, span: *mut Span, new_pages: usize) -> bool {
        let mut h = self.inner.lock();
        // SAFETY: Large spans belong to the page heap's lock domain; lock held.
        let (start, pages) = unsafe { ((*span).start(), (*span).pages()) };
        debug_assert!(new_pages > pages);
        let extra = new_pages - pages;
        let end = start + (pages << PAGE_SHIFT);
        // What follows the span: a free run (maybe reaching the frontier), or the frontier
        // itself. If that is too short but reaches the frontier, commit the shortfall; the new
        // memory merges into the run (or starts one) right after the span.
        let next = self.pagemap.get(end);
        // SAFETY: records are type-stable; lock held, so the pagemap and states are exact.
        let (have, reach) = match unsafe { next.as_ref() } {
            Some(n) if n.state() == SpanState::Free => (n.pages(), n.end()),
            _ => (0, end),
        };
        if have < extra && reach == h.region_cur {
            let short = extra - have;
            let room = (h.region_end - h.region_cur) >> PAGE_SHIFT;
            if short <= room && (!h.stock_records(self) || !h.grow(self, short)) {
                return false;
            }
        }
        let next = self.pagemap.get(end);
        // SAFETY: records are type-stable; lock held, so the pagemap and states are exact.
        let fits = !next.is_null()
            && unsafe { (*next).state() == SpanState::Free && (*next).pages() >= extra };
        if !fits {
            return false;
        }
        // SAFETY: `next` is an indexed free run adjacent to `span`; lock held.
        unsafe {
            h.unindex(next);
            let rest = (*next).pages() - extra;
            if rest == 0 {
                h.drop_record(next);
            } else {
                (*next).set_range(end + (extra << PAGE_SHIFT), rest);
                h.index(next);
            }
            self.pagemap.set_range(end, extra, span);
            (*span).set_range(start, new_pages);
        }
        h.check(self);
        true
    }

    /// Shrinks a Large span to `new_pages`, returning the tail to the free index.
    ///
    /// # Safety
    /// `span` is a Large span of this heap owned by the caller; `0 < new_pages < pages`.
    pub(crate) unsafe fn shrink_in_place(&self, span: *mut Span, new_pages: usize) -> bool {
        let mut h = self.inner.lock();
        if !h.stock_records(self) {
            return false;
        }
        // SAFETY: lock held; the pool has a record for the tail.
        unsafe {
            let (start, pages) = ((*span).start(), (*span).pages());
            debug_assert!(new_pages > 0 && new_pages < pages);
            let tail = h.take_record();
            (*tail).set_range(start + (new_pages << PAGE_SHIFT), pages - new_pages);
            (*tail).owned().zeroed = false;
            self.pagemap
                .set_range((*tail).start(), (*tail).pages(), tail);
            (*span).set_range(start, new_pages);
            h.release(self, tail);
        }
        h.check(self);
        true
    }

    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn stats(&self) -> PageHeapStats {
        let h = self.inner.lock();
        PageHeapStats {
            committed: h.committed,
            free_bytes: h.free_pages << PAGE_SHIFT,
        }
    }

    /// Walks the whole index and checks invariants 1–3. O(free runs + pages); tests and the
    /// `expensive-checks` feature only.
    #[cfg(any(test, feature = "expensive-checks", feature = "testing"))]
    pub(crate) fn validate(&self) {
        let h = self.inner.lock();
        h.validate(self);
    }
}

impl Inner {
    #[inline]
    fn check(&self, _heap: &PageHeap) {
        #[cfg(feature = "expensive-checks")]
        self.validate(_heap);
    }

    /// Makes sure the record pool holds at least three records: a grow may take one and a
    /// carve two more.
    fn stock_records(&mut self, heap: &PageHeap) -> bool {
        let mut have = 0;
        let mut s = self.pool;
        while have < 3 && !s.is_null() {
            // SAFETY: pool records are Unused and owned by the page heap; lock held.
            s = unsafe { (*s).owned().next };
            have += 1;
        }
        if have == 3 {
            return true;
        }
        let Some(mem) = heap
            .meta
            .alloc(RECORD_BATCH * size_of::<Span>(), align_of::<Span>())
        else {
            return false;
        };
        let base = mem.as_ptr().cast::<Span>();
        for i in 0..RECORD_BATCH {
            // SAFETY: `mem` is fresh metadata with room for RECORD_BATCH records, aligned.
            unsafe {
                let s = base.add(i);
                s.write(Span::new());
                self.drop_record(s);
            }
        }
        true
    }

    /// # Safety
    /// The pool is non-empty (after `stock_records`).
    unsafe fn take_record(&mut self) -> *mut Span {
        let s = self.pool;
        debug_assert!(!s.is_null());
        // SAFETY: pool records are Unused, owned by the page heap.
        self.pool = unsafe { (*s).owned().next };
        s
    }

    /// # Safety
    /// `s` is a record no list and no pagemap slot refers to as live (its pages now map to
    /// another record, or it was never used).
    unsafe fn drop_record(&mut self, s: *mut Span) {
        // SAFETY: the page heap owns `s` now (caller's contract); lock held.
        unsafe {
            (*s).set_state(SpanState::Unused, 0);
            (*s).set_range(0, 0);
            (*s).owned().next = self.pool;
        }
        self.pool = s;
    }

    /// The best-fitting free run of at least `pages` pages, or null.
    fn find(&self, pages: usize) -> *mut Span {
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
    unsafe fn index(&mut self, s: *mut Span) {
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
    unsafe fn unindex(&mut self, s: *mut Span) {
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
    unsafe fn carve(
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

    /// Marks `s` free, merges it with free neighbours (remapping the smaller side) and indexes
    /// the result.
    ///
    /// # Safety
    /// `s` is owned by the page heap, on no list, its pages mapped to it.
    unsafe fn release(&mut self, heap: &PageHeap, s: *mut Span) {
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
    unsafe fn merge(&mut self, heap: &PageHeap, a: *mut Span, b: *mut Span) -> *mut Span {
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

    /// Adds at least `pages` pages of fresh committed memory to the index.
    fn grow(&mut self, heap: &PageHeap, pages: usize) -> bool {
        let Some(need) = pages.checked_mul(PAGE_SIZE) else {
            return false;
        };
        if self.region_end - self.region_cur < need {
            let Some(len) = need.checked_next_multiple_of(ARENA_SIZE) else {
                return false;
            };
            let Some(region) = os::reserve(len, ARENA_SIZE, self.region_end) else {
                return false;
            };
            let base = region.as_ptr() as usize;
            if base == self.region_end && self.region_end != 0 {
                self.region_end += len;
            } else {
                // The old frontier is abandoned as reserved address space: it costs no memory,
                // and committing it would charge memory nobody asked for.
                self.region_cur = base;
                self.region_end = base + len;
            }
            if self.region_end - self.region_cur < need {
                return false;
            }
        }
        let len = need.max(GROW_CHUNK).min(self.region_end - self.region_cur);
        let base = self.region_cur;
        // Leaves exist only for committed memory: a huge reservation costs no metadata.
        if !heap.pagemap.ensure(&heap.meta, base, len) {
            return false;
        }
        // SAFETY: base is inside our reservation (frontier), non-null.
        if !os::commit(unsafe { NonNull::new_unchecked(base as *mut u8) }, len) {
            return false;
        }
        self.region_cur += len;
        self.committed += len;
        // SAFETY: stock_records ran before every grow; the new run is ours and unlisted.
        unsafe {
            let s = self.take_record();
            (*s).set_range(base, len >> PAGE_SHIFT);
            (*s).owned().zeroed = true;
            heap.pagemap.set_range(base, len >> PAGE_SHIFT, s);
            self.release(heap, s);
        }
        true
    }

    #[cfg(any(test, feature = "expensive-checks", feature = "testing"))]
    fn validate(&self, heap: &PageHeap) {
        let mut total = 0;
        let mut check_run = |s: *mut Span| {
            // SAFETY: indexed records are owned by the page heap; lock held by the caller.
            unsafe {
                assert_eq!((*s).state(), SpanState::Free, "indexed run not Free");
                let (start, pages) = ((*s).start(), (*s).pages());
                for p in 0..pages {
                    assert_eq!(
                        heap.pagemap.get(start + p * PAGE_SIZE),
                        s,
                        "pagemap mismatch"
                    );
                }
                if start >= PAGE_SIZE {
                    let l = heap.pagemap.get(start - PAGE_SIZE);
                    assert!(
                        l.is_null() || (*l).state() != SpanState::Free,
                        "adjacent free runs"
                    );
                }
                let r = heap.pagemap.get((*s).end());
                assert!(
                    r.is_null() || (*r).state() != SpanState::Free,
                    "adjacent free runs"
                );
                total += pages;
            }
        };
        for (n, list) in self.small.iter().enumerate() {
            assert_eq!(
                self.nonempty & (1u128 << n) != 0,
                !list.is_empty(),
                "mask for {n}"
            );
            let mut s = list.head();
            while !s.is_null() {
                // SAFETY: as above.
                unsafe {
                    assert_eq!((*s).pages(), n);
                    check_run(s);
                    s = (*s).owned().next;
                }
            }
        }
        let mut s = self.large.head();
        let mut last = (0, 0);
        while !s.is_null() {
            // SAFETY: as above.
            unsafe {
                let key = ((*s).pages(), (*s).start());
                assert!(key > last && key.0 >= SMALL_RUNS, "large list order");
                last = key;
                check_run(s);
                s = (*s).owned().next;
            }
        }
        assert_eq!(total, self.free_pages, "free page count");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heap() -> &'static PageHeap {
        Box::leak(Box::new(PageHeap::new()))
    }

    fn alloc(h: &PageHeap, pages: usize, align: usize) -> *mut Span {
        h.alloc(pages, align, SpanState::Large, 0)
            .expect("alloc")
            .span
            .as_ptr()
    }

    #[test]
    fn fresh_runs_are_zeroed_and_mapped() {
        let h = heap();
        let r = h.alloc(3, 1, SpanState::Large, 0).unwrap();
        assert!(r.zeroed);
        // SAFETY: the run is ours, three committed pages.
        let s = unsafe { r.span.as_ref() };
        assert_eq!(s.pages(), 3);
        for p in 0..3 {
            assert_eq!(
                h.pagemap.get(s.start() + p * PAGE_SIZE + 17),
                r.span.as_ptr()
            );
        }
        // SAFETY: committed memory.
        unsafe { core::ptr::write_bytes(s.start() as *mut u8, 0xAB, s.bytes()) };
        assert!(h.pagemap.get(0x1000).is_null());
        h.validate();
    }

    #[test]
    fn split_and_coalesce_restore_one_run() {
        let h = heap();
        let spans: Vec<_> = (1..=20).map(|n| alloc(h, n, 1)).collect();
        h.validate();
        // Free every other span, then the rest: all runs must merge back into one.
        for s in spans.iter().step_by(2) {
            // SAFETY: each span is ours and unused.
            unsafe { h.free(*s) };
            h.validate();
        }
        for s in spans.iter().skip(1).step_by(2) {
            // SAFETY: as above.
            unsafe { h.free(*s) };
            h.validate();
        }
        let st = h.stats();
        assert_eq!(st.free_bytes, st.committed, "everything free again");
        let inner = h.inner.lock();
        let runs = inner.small.iter().filter(|l| !l.is_empty()).count()
            + usize::from(!inner.large.is_empty());
        assert_eq!(runs, 1, "free runs did not coalesce into one");
    }

    #[test]
    fn best_fit_reuses_the_exact_hole() {
        let h = heap();
        let a = alloc(h, 5, 1);
        let b = alloc(h, 2, 1);
        let _c = alloc(h, 9, 1);
        // SAFETY: `b` is ours and unused.
        let b_start = unsafe { (*b).start() };
        // SAFETY: as above.
        unsafe { h.free(b) };
        let d = alloc(h, 2, 1);
        // SAFETY: records are valid.
        assert_eq!(unsafe { (*d).start() }, b_start, "2-page hole not reused");
        // SAFETY: as above.
        unsafe { h.free(a) };
        h.validate();
    }

    #[test]
    fn aligned_runs_are_aligned_and_trimmed() {
        let h = heap();
        let _pad = alloc(h, 1, 1);
        for align_pages in [2usize, 8, 128, 1024] {
            let s = alloc(h, 3, align_pages);
            // SAFETY: record valid.
            let (start, pages) = unsafe { ((*s).start(), (*s).pages()) };
            assert_eq!(start % (align_pages * PAGE_SIZE), 0);
            assert_eq!(pages, 3, "aligned run not trimmed");
            h.validate();
        }
    }

    #[test]
    fn large_runs_span_several_arenas() {
        let h = heap();
        let pages = (3 * ARENA_SIZE) / PAGE_SIZE + 5;
        let s = alloc(h, pages, 1);
        // SAFETY: record valid.
        let (start, n) = unsafe { ((*s).start(), (*s).pages()) };
        assert_eq!(n, pages);
        assert_eq!(h.pagemap.get(start + (pages - 1) * PAGE_SIZE), s);
        // SAFETY: ours.
        unsafe { h.free(s) };
        h.validate();
    }

    #[test]
    fn grow_and_shrink_in_place() {
        let h = heap();
        let a = alloc(h, 4, 1);
        // SAFETY: `a` is a Large span we own.
        unsafe {
            assert!(h.grow_in_place(a, 10));
            assert_eq!((*a).pages(), 10);
            h.validate();
            assert!(h.shrink_in_place(a, 2));
            assert_eq!((*a).pages(), 2);
            h.validate();
            let b = alloc(h, 1, 1);
            assert_eq!((*b).start(), (*a).end(), "freed tail not reused first");
            assert!(!h.grow_in_place(a, 3), "grew over a live span");
            assert_eq!((*a).pages(), 2);
        }
        h.validate();
    }
}
