//! The pair workload of `tricolor bench`'s pair table: one allocation and its free, back to
//! back, at one size: the cache-hit fast paths and nothing else. The criterion benchmark
//! `pair/<size>` (`benches/malloc.rs`) measures the same loop with criterion's statistics;
//! this one gives `tricolor bench` one table with every rival and the speed goal's verdict (at
//! most 0.90 x the best of jemalloc, mimalloc and TCMalloc at each size from 16 B to 32 KiB).
//!
//! # How it is timed, and why
//! Every allocator runs in one process, taking turns chunk by chunk: `rounds` rounds, each of one
//! chunk per size and allocator, and each allocator's figure at a size is its fastest chunk there.
//! Noise on our shared 2-CPU machines only adds time and comes in phases, from tens of milliseconds
//! to minutes, that slow whatever runs by up to 2x: timed one allocator after another (a child
//! process each), a phase can own one allocator's cells and not another's (measured that way,
//! Tricolor's 16 B pair reads 7.6 ns in one table and 5.6 in the next, while jemalloc's reads 4.45
//! in both). Taking turns, a phase hits every allocator alike, and the fastest chunk of each comes
//! from the same quiet moments. The allocators share the process but not their heaps: each pair
//! loop touches only its own allocator's block, warm after the first chunk.

use crate::{AllocFn, Rival};
use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::time::Instant;

/// The sizes of the table: one per range of size classes, 16 B to 32 KiB, doubling.
pub const SIZES: [usize; 12] = [
    16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768,
];

/// Pairs in one timed chunk at `scale` 1: 0.2-1.3 ms.
pub const CHUNK: usize = 50_000;

/// One chunk of `n` allocate-and-free pairs of `size` bytes on one allocator.
struct Chunk {
    size: usize,
    n: usize,
}

impl AllocFn<f64> for Chunk {
    /// Nanoseconds per pair.
    fn call<A: GlobalAlloc + Sync + 'static>(self, a: &'static A) -> f64 {
        let l = Layout::from_size_align(self.size, 8).expect("pair size");
        let t = Instant::now();
        for _ in 0..self.n {
            // The layout through `black_box` too: an allocator inlined into this loop (as
            // Tricolor's `GlobalAlloc` is) must still find the size class every time, as a
            // program with sizes not known to the compiler does.
            // SAFETY: a non-zero layout; the block is freed with it, once.
            unsafe {
                let p = a.alloc(black_box(l));
                assert!(!p.is_null(), "allocation of {} B failed", self.size);
                a.dealloc(black_box(p), black_box(l));
            }
        }
        t.elapsed().as_nanos() as f64 / self.n as f64
    }
}

/// Nanoseconds per pair for each of `rivals` (available ones only) at each of [`SIZES`]: the
/// fastest of `rounds` chunks of `CHUNK * scale` pairs each, sizes and allocators taking turns
/// (module docs), after one untimed round that warms every allocator's blocks. `out[r][s]` is rival
/// `r`'s figure at size `s`.
pub fn table(rivals: &[Rival], scale: usize, rounds: usize) -> Vec<Vec<f64>> {
    let n = (CHUNK * scale).max(1);
    let mut out = vec![vec![f64::INFINITY; SIZES.len()]; rivals.len()];
    for round in 0..=rounds.max(1) {
        for (s, &size) in SIZES.iter().enumerate() {
            for (r, &rival) in rivals.iter().enumerate() {
                let ns = rival.with(Chunk { size, n });
                if round > 0 {
                    out[r][s] = out[r][s].min(ns);
                }
            }
        }
    }
    out
}
