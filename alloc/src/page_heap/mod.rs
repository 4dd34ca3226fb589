//! The page heap: runs of 8 KiB pages for every span Tricolor hands out.
//!
//! # Structure
//! * Address space comes in *regions*, reserved (`PROT_NONE`) in multiples of 64 MiB and
//!   aligned to 64 MiB, placed right after the previous region when the kernel allows, so the
//!   heap usually grows as one contiguous range. Under an address-space limit that refuses
//!   such a region, smaller page-aligned ones are tried (`reserve_region`). The *frontier*
//!   `[region_cur, region_end)` is the reserved, uncommitted rest of the newest region; growth
//!   commits at least [`GROW_CHUNK`] from it at a time. A frontier replaced by a region
//!   elsewhere, and a new region whose memory the OS refused, are unmapped again.
//! * An alignment above 64 MiB gets a reservation of its own, aligned by over-reserving and
//!   trimming, so only the pages asked for stay reserved and committed.
//! * Free runs are indexed by size: an exact-size list for each run length below
//!   [`SMALL_RUNS`] pages (1 MiB) with a 128-bit "non-empty" mask, so best fit is one
//!   `trailing_zeros`; longer runs sit on one list sorted by (pages, address), searched first-fit
//!   (= best fit, lowest address among equals). Long runs are few because neighbours coalesce.
//! * Span records come from a pool refilled from metadata memory.
//! * Free pages are *dirty* (hold memory) or *clean* (fresh, or released to the OS), one bit
//!   each in their arena's record (`dirty`). The scavenger releases dirty pages from the highest
//!   address down: it takes a run of at most [`RELEASE_CHUNK`] pages out of the index as a
//!   `Releasing` span, drops the lock for the `madvise`, then gives the run back, clean. So the
//!   lock is never held across a system call, except by the synchronous release that a
//!   memory limit forces when the heap must grow.
//!
//! # Invariants (all under `PageHeap::inner`'s lock)
//! 1. No two free runs are adjacent: a freed run merges with free neighbours at once.
//! 2. Every page of every span maps to it in the pagemap (see `pagemap`).
//! 3. `free_pages` is the sum of the pages of all indexed free runs; `committed` counts every
//!    byte made read-write; it is the sum of the pages of spans in use (`large_pages` of them
//!    Large), of indexed free runs and of `Releasing` runs (`releasing_pages`).
//! 4. `dirty_pages` is the number of dirty pages (`dirty` invariant 1: all in indexed runs);
//!    `arenas` lists every arena this heap committed memory in, highest address first.
//!
//! Lock order: `Central[class]` before the page heap; the page heap calls no one above it.

// The index of free runs (`index`), growth (`grow`), dirty pages and their release
// (`release`), and the validator (`validate`) are `impl Inner` blocks of their own.
mod grow;
mod index;
mod release;
mod validate;

use crate::dirty::ArenaPages;
use crate::knobs;
use crate::meta::MetaArena;
use crate::os;
use crate::pagemap::PageMap;
use crate::size_class::PAGE_SHIFT;
use crate::span::{Span, SpanList, SpanState};
use crate::sync::{AtomicBool, Mutex, Ordering};
use core::ptr::{self, NonNull};

/// Runs shorter than this many pages have exact-size free lists.
const SMALL_RUNS: usize = 128;
/// The least the heap commits when it grows (1 MiB): fewer `mprotect` calls.
const GROW_CHUNK: usize = 1 << 20;
/// Span records allocated at once when the pool is empty.
const RECORD_BATCH: usize = 64;
/// Pages released by one `madvise` while the program runs (1 MiB): bounds how long one step
/// of the scavenger takes, and how long a `Releasing` run is out of the index.
pub(crate) const RELEASE_CHUNK: usize = 128;
/// Pages one step releases while the program is idle (64 MiB: `scavenger`).
pub(crate) const IDLE_RELEASE_CHUNK: usize = 8192;

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
    /// Set once any page has been dirty (the scavenger starts its thread then).
    ever_dirty: AtomicBool,
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
    dirty_pages: usize,
    releasing_pages: usize,
    large_pages: usize,
    /// Bytes ever released to the OS, and large allocations ever made and freed.
    released_total: u64,
    large_allocs: u64,
    large_frees: u64,
    large_bytes_allocated: u64,
    /// High-water marks of `large_pages` and of the live large allocations' count.
    large_peak_pages: usize,
    large_peak_count: u64,
    arenas: *mut ArenaPages,
}

// SAFETY: the raw pointers in Inner are only followed under the page-heap lock.
unsafe impl Send for Inner {}

/// Page-heap figures, read together under the lock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PageHeapStats {
    /// Bytes made read-write: the sum of the next four.
    pub(crate) committed: usize,
    /// Bytes in free runs, dirty or clean.
    pub(crate) free_bytes: usize,
    /// Of `free_bytes`, those holding memory.
    pub(crate) dirty_bytes: usize,
    /// Bytes out of the index while being released (they still hold memory).
    pub(crate) releasing_bytes: usize,
    /// Bytes in Large spans (the rest of the spans in use are Small).
    pub(crate) large_bytes: usize,
    pub(crate) released_total: u64,
    pub(crate) large_allocs: u64,
    pub(crate) large_frees: u64,
    pub(crate) large_bytes_allocated: u64,
    /// The most bytes Large spans held at once, and the most Large spans live at once.
    pub(crate) large_peak_bytes: usize,
    pub(crate) large_peak_count: u64,
}

impl PageHeap {
    pub(crate) const fn new() -> Self {
        Self {
            pagemap: PageMap::new(),
            meta: MetaArena::new(),
            ever_dirty: AtomicBool::new(false),
            inner: Mutex::new(Inner {
                small: [const { SpanList::new() }; SMALL_RUNS],
                nonempty: 0,
                large: SpanList::new(),
                pool: ptr::null_mut(),
                region_cur: 0,
                region_end: 0,
                committed: 0,
                free_pages: 0,
                dirty_pages: 0,
                releasing_pages: 0,
                large_pages: 0,
                released_total: 0,
                large_allocs: 0,
                large_frees: 0,
                large_bytes_allocated: 0,
                large_peak_pages: 0,
                large_peak_count: 0,
                arenas: ptr::null_mut(),
            }),
        }
    }

    /// True once any free page has held memory.
    pub(crate) fn ever_dirty(&self) -> bool {
        self.ever_dirty.load(Ordering::Relaxed)
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
            // The free run that now holds the new memory's aligned start (merged, perhaps,
            // with a free neighbour, which `carve` handles: see `grow`).
            run = self.pagemap.get(h.grow(self, pages, align_pages)?);
            debug_assert!(!run.is_null());
        }
        // SAFETY: `run` is an indexed free run, owned by the page heap (lock held); the pool
        // holds at least three records (stock_records).
        let span = unsafe { h.carve(self, run, pages, align_pages) };
        // SAFETY: `span` is owned by the page heap until it is returned.
        let (start, fresh) = unsafe { ((*span).start(), (*span).owned().zeroed) };
        // Clean pages read as zero unless they were released with MADV_FREE.
        let dirty = h.note_taken(self, start, pages);
        let zeroed = fresh || (dirty == 0 && !knobs::get().madv_free);
        if state == SpanState::Large {
            h.large_pages += pages;
            h.large_allocs += 1;
            h.large_bytes_allocated += (pages << PAGE_SHIFT) as u64;
            h.note_large_peak();
        }
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
        unsafe { h.take_back(self, span) };
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
            h.large_pages -= (*span).pages();
            h.large_frees += 1;
            h.take_back(self, span);
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
            if short <= room && (!h.stock_records(self) || h.grow(self, short, 1).is_none()) {
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
        h.note_taken(self, end, extra);
        h.large_pages += extra;
        h.note_large_peak();
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
            self.pagemap
                .set_range((*tail).start(), (*tail).pages(), tail);
            (*span).set_range(start, new_pages);
            h.large_pages -= pages - new_pages;
            h.take_back(self, tail);
        }
        h.check(self);
        true
    }

    /// The heap's figures, consistent with each other (one short lock hold).
    pub(crate) fn stats(&self) -> PageHeapStats {
        let h = self.inner.lock();
        PageHeapStats {
            committed: h.committed,
            free_bytes: h.free_pages << PAGE_SHIFT,
            dirty_bytes: h.dirty_pages << PAGE_SHIFT,
            releasing_bytes: h.releasing_pages << PAGE_SHIFT,
            large_bytes: h.large_pages << PAGE_SHIFT,
            released_total: h.released_total,
            large_allocs: h.large_allocs,
            large_frees: h.large_frees,
            large_bytes_allocated: h.large_bytes_allocated,
            large_peak_bytes: h.large_peak_pages << PAGE_SHIFT,
            large_peak_count: h.large_peak_count,
        }
    }

    /// Returns the highest run of at most `max_pages` dirty pages (at most
    /// [`IDLE_RELEASE_CHUNK`]) to the OS, holding the lock only to take the run out of the
    /// index and to put it back. Returns the pages released: 0 when no page is dirty (or no
    /// span record could be had).
    pub(crate) fn release_step(&self, max_pages: usize) -> usize {
        let (start, pages, span) = {
            let mut h = self.inner.lock();
            if !h.stock_records(self) {
                return 0;
            }
            let Some((start, pages)) = h.highest_dirty(max_pages.min(IDLE_RELEASE_CHUNK)) else {
                return 0;
            };
            // SAFETY: lock held; the run is dirty, so inside an indexed free run; records
            // stocked.
            // No `check` here: the full validator would make each step cost a walk of
            // the whole index, which under `expensive-checks` starves every other thread.
            let span = unsafe { h.take_out(self, start, pages) };
            (start, pages, span)
        };
        // SAFETY: the run was taken out of the index above: committed, ours, and in no one's
        // hands until it is put back.
        unsafe { os::release(start, pages << PAGE_SHIFT, knobs::get().madv_free) };
        let mut h = self.inner.lock();
        h.releasing_pages -= pages;
        h.released_total += (pages << PAGE_SHIFT) as u64;
        // SAFETY: `span` is the Releasing record `take_out` made, which nobody else touches
        // (only its creator returns a Releasing span); its pages are clean now.
        unsafe {
            (*span).owned().zeroed = false;
            h.release(self, span);
        }
        pages
    }

    /// Walks the whole index and checks invariants 1–3. O(free runs + pages); for tests
    /// (`testing::validate_page_heap`). The `expensive-checks` feature runs the same walk after
    /// every operation (`validate`).
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn validate(&self) {
        let h = self.inner.lock();
        h.validate(self);
    }
}

impl Inner {
    /// Raises the Large high-water marks to the current figures (after they grew).
    fn note_large_peak(&mut self) {
        self.large_peak_pages = self.large_peak_pages.max(self.large_pages);
        let live = self.large_allocs - self.large_frees;
        self.large_peak_count = self.large_peak_count.max(live);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pagemap::ARENA_SIZE;
    use crate::size_class::PAGE_SIZE;

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

    #[test]
    fn released_runs_go_highest_first_and_come_back_zeroed() {
        let h = heap();
        let spans: Vec<_> = (0..3).map(|_| alloc(h, 4, 1)).collect();
        let starts: Vec<usize> = spans
            .iter()
            // SAFETY: records valid.
            .map(|&s| unsafe { (*s).start() })
            .collect();
        assert!(starts[0] < starts[1] && starts[1] < starts[2]);
        for &s in &spans {
            // SAFETY: our span, committed; then handed back, unused.
            unsafe {
                core::ptr::write_bytes((*s).start() as *mut u8, 0xAB, (*s).bytes());
                h.free(s);
            }
            h.validate();
        }
        assert_eq!(h.stats().dirty_bytes, 12 * PAGE_SIZE);
        // The highest dirty pages go first: the third span's.
        assert_eq!(h.release_step(4), 4);
        h.validate();
        let st = h.stats();
        assert_eq!(st.dirty_bytes, 8 * PAGE_SIZE);
        assert_eq!(st.released_total, 4 * PAGE_SIZE as u64);
        assert_eq!(st.releasing_bytes, 0);
        // SAFETY: the pages are free but committed and read-write; released pages read zero.
        unsafe {
            assert_eq!(*(starts[2] as *const u8), 0, "released page not zero");
            assert_eq!(
                *(starts[1] as *const u8),
                0xAB,
                "dirty page released too soon"
            );
        }
        while h.release_step(RELEASE_CHUNK) > 0 {
            h.validate();
        }
        assert_eq!(h.stats().dirty_bytes, 0);
        // Reuse: a run made only of released pages is known to be zero.
        let r = h.alloc(12, 1, SpanState::Large, 0).unwrap();
        // SAFETY: record valid.
        let (start, bytes) = unsafe { (r.span.as_ref().start(), r.span.as_ref().bytes()) };
        assert_eq!(start, starts[0]);
        assert_eq!(r.zeroed, !knobs::get().madv_free);
        // SAFETY: our run, committed.
        let mem = unsafe { core::slice::from_raw_parts_mut(start as *mut u8, bytes) };
        if r.zeroed {
            assert!(mem.iter().all(|&b| b == 0), "reused released run not zero");
        }
        mem.fill(0x5A);
        // A run that mixes dirty and released pages is not.
        // SAFETY: ours, unused.
        unsafe { h.free(r.span.as_ptr()) };
        assert_eq!(h.release_step(6), 6);
        let r = h.alloc(12, 1, SpanState::Large, 0).unwrap();
        assert!(!r.zeroed, "half-dirty run reported zeroed");
        h.validate();
    }
}
