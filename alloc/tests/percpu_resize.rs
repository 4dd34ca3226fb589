//! Per-CPU list capacities adapt to use: a list that overflows grows; a list that goes idle is
//! emptied and shrunk by the reclaim passes, while a busy one keeps its blocks. One test
//! function running the cases in turn on one pinned thread, so no other thread's misses or
//! reclaim passes blur the picture.
//!
//! With the per-thread front end the test checks that front end's counterpart, its lists'
//! slow start (`thread_cache`, "Bounds"): a class used once keeps at most a batch, and a run
//! of frees repeated is soon kept whole. Per-thread lists have no idle reclaim (only their
//! own thread empties them), so that half says it skipped.

use std::alloc::{GlobalAlloc, Layout};
use tricolor_alloc::size_class::{CLASSES, class_of};
use tricolor_alloc::{FrontEnd, Tricolor, front_end, testing};

mod common;

#[global_allocator]
static GLOBAL: Tricolor = Tricolor;

/// Allocates `n` blocks of `size` bytes, then frees them all.
fn burst(size: usize, n: usize) {
    let layout = Layout::from_size_align(size, 8).unwrap();
    // SAFETY: valid layout; every block is freed once with it.
    let v: Vec<*mut u8> = (0..n).map(|_| unsafe { GLOBAL.alloc(layout) }).collect();
    for p in v {
        assert!(!p.is_null());
        // SAFETY: as above.
        unsafe { GLOBAL.dealloc(p, layout) };
    }
}

#[test]
fn capacities_adapt_to_use() {
    if front_end() != FrontEnd::PerCpu {
        per_thread_lists_grow_with_use();
        common::skipped(
            "capacities_adapt_to_use: idle lists emptied and shrunk by the reclaim passes",
            "front end is per-thread",
        );
        return;
    }
    lists_grow_with_use_and_shrink_when_idle();
    the_slow_paths_reclaim_idle_lists_on_their_own();
}

/// `n` (at most 256) blocks of `size` bytes allocated, then freed in reverse, with no other
/// allocation in between (the pointers live on the stack), so the calling thread's cache
/// holds exactly what the run left.
fn run_of(size: usize, n: usize) {
    let layout = Layout::from_size_align(size, 8).unwrap();
    let mut blocks = [std::ptr::null_mut::<u8>(); 256];
    for b in &mut blocks[..n] {
        // SAFETY: a valid layout; every block is freed once with it, below.
        *b = unsafe { GLOBAL.alloc(layout) };
        assert!(!b.is_null());
    }
    for &b in blocks[..n].iter().rev() {
        // SAFETY: as above.
        unsafe { GLOBAL.dealloc(b, layout) };
    }
}

fn per_thread_lists_grow_with_use() {
    let class = class_of(48);
    let (size, batch) = (CLASSES[class].size as usize, CLASSES[class].batch as usize);
    testing::flush_thread_cache();
    assert_eq!(
        testing::thread_cache_bytes(),
        0,
        "a flushed cache holds blocks"
    );
    run_of(48, 1);
    let once = testing::thread_cache_bytes();
    assert!(
        once > 0 && once <= batch * size,
        "a class used once keeps {once} bytes, more than a batch ({batch} x {size})"
    );
    // A run longer than a batch is given back in part at first; its limit grows each time.
    assert!(150 > batch);
    for _ in 0..4 {
        run_of(48, 150);
    }
    let kept = testing::thread_cache_bytes();
    assert!(
        kept >= 150 * size,
        "after four runs of 150 frees the cache keeps only {kept} bytes of 48-byte blocks"
    );
}

fn lists_grow_with_use_and_shrink_when_idle() {
    common::pin(&[0]);
    let (idle, busy) = (class_of(48), class_of(256));
    let batch = CLASSES[idle].batch;
    let (_, start) = testing::percpu_list(0, idle).unwrap();
    assert_eq!(start, batch, "a list starts at one batch of capacity");

    // 150 blocks freed in a row overflow a one-batch list: it grows by batches.
    burst(48, 150);
    let (held, grown) = testing::percpu_list(0, idle).unwrap();
    assert!(
        grown >= 150,
        "capacity {grown} did not grow to hold a run of 150 frees"
    );
    assert!(held >= 150, "only {held} blocks kept after the run");
    burst(256, 150);

    // Pass 1 records the miss counts; between passes only `busy` misses; pass 2 empties `idle`.
    testing::reclaim_idle();
    burst(256, 400); // more than the list can hold: misses
    testing::reclaim_idle();
    assert_eq!(
        testing::percpu_list(0, idle).unwrap(),
        (0, batch),
        "an idle list was not emptied and shrunk"
    );
    let (held, _) = testing::percpu_list(0, busy).unwrap();
    assert!(held > 0, "a busy list was emptied");
    testing::validate_page_heap();
}

fn the_slow_paths_reclaim_idle_lists_on_their_own() {
    let cpu = 1 % std::thread::available_parallelism().map_or(1, |n| n.get());
    common::pin(&[cpu]);
    let idle = class_of(3000);
    burst(3000, 100);
    assert!(testing::percpu_list(cpu, idle).unwrap().0 > 0);
    // Keep another class missing (and so running the slow paths) for 2.5 s: passes run once a
    // second from there, and the second one after the burst empties the idle list.
    let t = std::time::Instant::now();
    while t.elapsed() < std::time::Duration::from_millis(2500) {
        burst(100, 600);
    }
    assert_eq!(
        testing::percpu_list(cpu, idle).unwrap().0,
        0,
        "an idle list survived 2.5 s of reclaim passes"
    );
}
