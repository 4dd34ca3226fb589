//! The pair workload of `tricolor bench`'s pair table: one allocation and its free, back to
//! back, at one size: the cache-hit fast paths and nothing else. The criterion benchmark
//! `pair/<size>` (`benches/malloc.rs`) measures the same loop with criterion's statistics;
//! this one runs in `tricolor bench`'s child processes, so one invocation's table holds every
//! rival and the goal's verdict (issue 16: at most 0.9 x the best rival at each size from
//! 16 B to 32 KiB).

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::time::Instant;

/// The sizes of the table: one per range of size classes, 16 B to 32 KiB, doubling.
pub const SIZES: [usize; 12] = [
    16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768,
];

/// Pairs timed at `scale` 1: about 5-20 ms per size on our 2-core machines.
pub const PAIRS: usize = 1_000_000;

/// Nanoseconds per allocate-and-free pair of `size` bytes: the fastest of `chunks` timed
/// chunks of `PAIRS * scale / chunks` pairs, after one untimed chunk that warms the caches.
/// The fastest, not the median: on a shared machine, noise only adds time, and comes in
/// bursts of tens of milliseconds that slow every allocator alike by up to 2x (measured: the
/// same child's 16 B pairs at 4.8 ns or 8-9 ns from one start to the next, for Tricolor,
/// jemalloc and mimalloc alike), so a median of a few chunks reports the burst.
pub fn ns_per_pair<A: GlobalAlloc>(a: &A, size: usize, scale: usize, chunks: usize) -> f64 {
    let l = Layout::from_size_align(size, 8).expect("pair size");
    let chunks = chunks.max(1);
    let n = (PAIRS * scale / chunks).max(1);
    let once = || {
        let t = Instant::now();
        for _ in 0..n {
            // SAFETY: a non-zero layout; the block is freed with it, once.
            // The layout through `black_box` too: an allocator inlined into this loop (as
            // Tricolor's `GlobalAlloc` is) must still find the size class every time, as a
            // program with sizes not known to the compiler does.
            unsafe {
                let p = a.alloc(black_box(l));
                assert!(!p.is_null(), "allocation of {size} B failed");
                a.dealloc(black_box(p), black_box(l));
            }
        }
        t.elapsed().as_nanos() as f64 / n as f64
    };
    once();
    (0..chunks).map(|_| once()).fold(f64::INFINITY, f64::min)
}
