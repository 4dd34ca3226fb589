//! The page heap's validator: every invariant of `page_heap` checked by walking the index
//! and the pagemap, after every operation under the `expensive-checks` feature (`check`) and
//! on demand (`PageHeap::validate`).

use super::{Inner, PageHeap};
#[cfg(any(test, feature = "expensive-checks", feature = "testing"))]
use {
    super::SMALL_RUNS,
    crate::size_class::PAGE_SIZE,
    crate::span::{Span, SpanState},
};

impl Inner {
    #[inline]
    pub(super) fn check(&self, _heap: &PageHeap) {
        #[cfg(feature = "expensive-checks")]
        self.validate(_heap);
    }

    #[cfg(any(test, feature = "expensive-checks", feature = "testing"))]
    pub(super) fn validate(&self, heap: &PageHeap) {
        let mut dirty_runs = 0;
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
                Self::for_arena_pieces(heap, start, pages, |a, first, n| {
                    dirty_runs += a.count(first, n)
                });
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
        assert_eq!(
            dirty_runs, self.dirty_pages,
            "dirty pages outside free runs"
        );
        let (mut dirty_arenas, mut a, mut above) = (0, self.arenas, usize::MAX);
        while !a.is_null() {
            // SAFETY: arena records are never freed.
            let arena = unsafe { &*a };
            assert!(arena.base() < above, "arena list order");
            above = arena.base();
            assert_eq!(arena.count(0, crate::dirty::ARENA_PAGES), arena.dirty());
            dirty_arenas += arena.dirty();
            a = arena.lower();
        }
        assert_eq!(dirty_arenas, self.dirty_pages, "dirty count");
    }
}
