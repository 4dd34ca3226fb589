//! Memory handed to the user never shows a free canary: spans returning to the page heap have
//! their blocks' canaries cleared, so a large block carved from their pages starts clean.
//! (A stale canary would travel through `realloc` copies to the address it names and make a
//! live block look already freed.) One test in its own binary: it relies on page reuse.

use std::alloc::{GlobalAlloc, Layout};
use tricolor_alloc::{Tricolor, testing};

#[global_allocator]
static GLOBAL: Tricolor = Tricolor;

#[test]
fn freed_spans_leave_no_canaries_behind() {
    // A size the test harness does not allocate meanwhile: a block of the harness's in one of
    // these spans keeps the span in use, splits the freed pages, and sends the large block
    // elsewhere (with 48-byte blocks, about one run in 12 fails so).
    const SIZE: usize = 3000;
    let small = Layout::from_size_align(SIZE, 8).unwrap();
    // SAFETY: valid layouts; every block is freed with its layout.
    unsafe {
        let blocks: Vec<usize> = (0..400).map(|_| GLOBAL.alloc(small) as usize).collect();
        let lo = *blocks.iter().min().unwrap();
        let hi = *blocks.iter().max().unwrap() + SIZE;
        for &b in &blocks {
            GLOBAL.dealloc(b as *mut u8, small);
        }
        drop(blocks);
        testing::drain_front_caches();
        // Best fit puts a block of the freed size on the freed pages.
        let big_layout = Layout::from_size_align(hi - lo - 64 * 1024, 8).unwrap();
        let big = GLOBAL.alloc(big_layout) as usize;
        let overlap = big.max(lo)..(big + big_layout.size()).min(hi);
        assert!(
            overlap.len() > 256 * 1024,
            "the large block did not reuse the freed pages"
        );
        let mut a = overlap.start.next_multiple_of(16);
        while a + 16 <= overlap.end {
            assert!(
                !testing::carries_free_canary(a as *const u8),
                "stale canary at {a:#x}"
            );
            a += 16;
        }
        GLOBAL.dealloc(big as *mut u8, big_layout);
    }
}
