//! The malloc fast paths, Tricolor against glibc, jemalloc, mimalloc and TCMalloc in one run:
//! * `pair/<size>`: one allocation and its free, back to back (the cache-hit path), for a size
//!   in each range of size classes;
//! * `batch100/<size>`: 100 allocations, then 100 frees (a cache's worth of pushes and pops).
//!
//! Run: `cargo bench -p tricolor-benches --bench malloc`. Criterion prints each median; the
//! ratio to Tricolor is the figure to quote.

use criterion::{Criterion, criterion_group};
use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::time::Duration;
use tricolor_benches::{AllocFn, Rival};

/// `pair` sizes: one per size-class range (8 B to 32 KiB, doubling), plus one large size.
const PAIR_SIZES: [usize; 14] = [
    8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536,
];
/// `batch100` sizes.
const SIZES: [usize; 5] = [16, 64, 512, 4096, 65536];

struct Pair<'a> {
    c: &'a mut Criterion,
    size: usize,
    rival: Rival,
}

impl AllocFn<()> for Pair<'_> {
    fn call<A: GlobalAlloc + Sync + 'static>(self, a: &'static A) {
        let l = Layout::from_size_align(self.size, 8).unwrap();
        let mut g = self.c.benchmark_group(format!("pair/{}", self.size));
        g.bench_function(self.rival.name(), |b| {
            b.iter(|| {
                // The layout through `black_box`, as in the pair table (`pairs`): else an
                // allocator inlined here finds its size class once, outside the loop.
                // SAFETY: non-zero layout; freed with the same layout.
                unsafe {
                    let p = a.alloc(black_box(l));
                    black_box(p);
                    a.dealloc(p, black_box(l));
                }
            })
        });
        g.finish();
    }
}

struct Batch<'a> {
    c: &'a mut Criterion,
    size: usize,
    rival: Rival,
}

impl AllocFn<()> for Batch<'_> {
    fn call<A: GlobalAlloc + Sync + 'static>(self, a: &'static A) {
        let l = Layout::from_size_align(self.size, 8).unwrap();
        let mut g = self.c.benchmark_group(format!("batch100/{}", self.size));
        let mut ptrs = [core::ptr::null_mut::<u8>(); 100];
        g.bench_function(self.rival.name(), |b| {
            b.iter(|| {
                // SAFETY: non-zero layout; every block is freed with it.
                unsafe {
                    for p in ptrs.iter_mut() {
                        *p = a.alloc(black_box(l));
                    }
                    black_box(&ptrs);
                    for &p in ptrs.iter() {
                        a.dealloc(p, black_box(l));
                    }
                }
            })
        });
        g.finish();
    }
}

fn pairs(c: &mut Criterion) {
    for size in PAIR_SIZES {
        for rival in Rival::ALL.into_iter().filter(|r| r.available()) {
            rival.with(Pair { c, size, rival });
        }
    }
}

fn batches(c: &mut Criterion) {
    for size in SIZES {
        for rival in Rival::ALL.into_iter().filter(|r| r.available()) {
            rival.with(Batch { c, size, rival });
        }
    }
}

criterion_group! {
    name = malloc;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30);
    targets = pairs, batches
}
fn main() {
    // SAFETY: the first statement of `main`: no other thread exists yet (TCMalloc needs the
    // variable before it loads: `tricolor_benches::tcmalloc`).
    unsafe { tricolor_benches::tcmalloc::set_skip_sbrk() };
    malloc();
    Criterion::default().configure_from_args().final_summary();
}
