//! Which free pages still hold memory: one bit per 8 KiB page, per 64 MiB arena (the
//! complement of Go's *scavenged* bitmap, kept this way round because the scavenger searches
//! for the set bits).
//!
//! A free page is either **dirty** (it was used since the OS last gave it to us, so it costs
//! RSS and holds old bytes) or **clean** (fresh from the OS, or returned with `madvise`). Clean
//! pages cost no RSS, and under `MADV_DONTNEED` read as zero when next touched; nothing has to
//! be done to reuse them, because the mapping stays read-write (our "recommit" is a no-op on
//! Linux, as Go's is).
//!
//! Invariants (under the owning page heap's lock, which every method requires):
//! 1. A bit is set only for a page of an indexed free run: set when a span's pages return to
//!    the page heap, cleared when they leave it (allocated, or taken out to be released).
//! 2. `dirty` is the number of set bits.
//!
//! The words are atomics only so that this metadata needs no `unsafe` to share: every access
//! is relaxed and under the lock.

use crate::size_class::PAGE_SHIFT;
use crate::sync::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

/// Pages per arena (64 MiB / 8 KiB).
pub(crate) const ARENA_PAGES: usize = 1 << (crate::size_class::ARENA_SHIFT - PAGE_SHIFT);
const WORDS: usize = ARENA_PAGES / 64;

/// The dirty bits of one arena, and the page heap's list of its arenas.
pub(crate) struct ArenaPages {
    bits: [AtomicU64; WORDS],
    dirty: AtomicUsize,
    /// The arena's address.
    base: AtomicUsize,
    /// The heap's next arena at a lower address (the list runs from the highest).
    lower: AtomicPtr<ArenaPages>,
    /// The page heap the arena belongs to (its address), 0 until one claims it: set once, by
    /// compare-and-swap (`pagemap` says why arenas have owners).
    owner: AtomicUsize,
}

impl ArenaPages {
    /// Claims the arena for `owner`: `Some(true)` if this call claimed it, `Some(false)` if
    /// `owner` already had it, `None` if another heap has it.
    pub(crate) fn claim(&self, owner: usize) -> Option<bool> {
        match self
            .owner
            .compare_exchange(0, owner, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Some(true),
            Err(o) => (o == owner).then_some(false),
        }
    }
    pub(crate) fn base(&self) -> usize {
        self.base.load(Ordering::Relaxed)
    }
    pub(crate) fn set_base(&self, base: usize) {
        self.base.store(base, Ordering::Relaxed);
    }
    pub(crate) fn lower(&self) -> *mut ArenaPages {
        self.lower.load(Ordering::Relaxed)
    }
    pub(crate) fn set_lower(&self, a: *mut ArenaPages) {
        self.lower.store(a, Ordering::Relaxed);
    }
    /// Dirty pages in the arena.
    pub(crate) fn dirty(&self) -> usize {
        self.dirty.load(Ordering::Relaxed)
    }

    /// Marks pages `[first, first + n)` (indices within the arena) dirty; none may be already.
    pub(crate) fn mark(&self, first: usize, n: usize) {
        for_words(first, n, |w, mask| {
            let old = self.bits[w].fetch_or(mask, Ordering::Relaxed);
            debug_assert_eq!(old & mask, 0, "page already dirty");
        });
        self.dirty.fetch_add(n, Ordering::Relaxed);
    }

    /// Clears pages `[first, first + n)`; returns how many were dirty.
    pub(crate) fn clear(&self, first: usize, n: usize) -> usize {
        let mut was = 0;
        for_words(first, n, |w, mask| {
            let old = self.bits[w].fetch_and(!mask, Ordering::Relaxed);
            was += (old & mask).count_ones() as usize;
        });
        self.dirty.fetch_sub(was, Ordering::Relaxed);
        was
    }

    /// Dirty pages among `[first, first + n)`.
    #[cfg(any(test, feature = "expensive-checks", feature = "testing"))]
    pub(crate) fn count(&self, first: usize, n: usize) -> usize {
        let mut c = 0;
        for_words(first, n, |w, mask| {
            c += (self.bits[w].load(Ordering::Relaxed) & mask).count_ones() as usize;
        });
        c
    }

    /// The highest run of dirty pages, at most `max` long, ending at the arena's highest dirty
    /// page: `(first, n)`. `None` when no page is dirty.
    pub(crate) fn highest_run(&self, max: usize) -> Option<(usize, usize)> {
        if self.dirty() == 0 {
            return None;
        }
        let mut w = WORDS;
        let top = loop {
            if w == 0 {
                return None;
            }
            w -= 1;
            let v = self.bits[w].load(Ordering::Relaxed);
            if v != 0 {
                break w * 64 + 63 - v.leading_zeros() as usize;
            }
        };
        // Walk down from `top` while pages stay dirty, a word at a time where possible.
        let mut first = top;
        while top + 1 - first < max && first > 0 {
            let p = first - 1;
            let v = self.bits[p / 64].load(Ordering::Relaxed);
            if v >> (p % 64) & 1 == 0 {
                break;
            }
            first = p;
        }
        Some((first, top + 1 - first))
    }
}

/// Calls `f(word, mask)` for each word that `[first, first + n)` touches.
fn for_words(first: usize, n: usize, mut f: impl FnMut(usize, u64)) {
    debug_assert!(first + n <= ARENA_PAGES);
    let mut p = first;
    let end = first + n;
    while p < end {
        let bit = p % 64;
        let take = (64 - bit).min(end - p);
        let mask = if take == 64 {
            u64::MAX
        } else {
            ((1u64 << take) - 1) << bit
        };
        f(p / 64, mask);
        p += take;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arena() -> Box<ArenaPages> {
        // SAFETY: all-zero bytes are a valid ArenaPages (atomics and a null pointer).
        unsafe { Box::new(core::mem::zeroed()) }
    }

    #[test]
    fn an_arena_belongs_to_the_first_heap_that_claims_it() {
        let a = arena();
        assert_eq!(a.claim(0x1000), Some(true));
        assert_eq!(a.claim(0x1000), Some(false));
        assert_eq!(a.claim(0x2000), None);
    }

    #[test]
    fn mark_clear_and_count_across_words() {
        let a = arena();
        a.mark(60, 10);
        a.mark(200, 1);
        assert_eq!(a.dirty(), 11);
        assert_eq!(a.count(0, ARENA_PAGES), 11);
        assert_eq!(a.count(62, 100), 8);
        assert_eq!(a.clear(55, 10), 5);
        assert_eq!(a.dirty(), 6);
        assert_eq!(a.count(65, 5), 5);
    }

    #[test]
    fn highest_run_is_the_top_of_the_highest_dirty_range() {
        let a = arena();
        assert_eq!(a.highest_run(64), None);
        a.mark(10, 5);
        a.mark(100, 70);
        assert_eq!(a.highest_run(1000), Some((100, 70)));
        assert_eq!(a.highest_run(8), Some((162, 8)));
        a.clear(100, 70);
        assert_eq!(a.highest_run(1000), Some((10, 5)));
        a.mark(ARENA_PAGES - 3, 3);
        assert_eq!(a.highest_run(1000), Some((ARENA_PAGES - 3, 3)));
    }
}
