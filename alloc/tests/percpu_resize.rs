//! Per-CPU list capacities adapt to use: a list that overflows grows; a list that goes idle is
//! emptied and shrunk by the reclaim passes, while a busy one keeps its blocks. One test
//! function running the cases in turn on one pinned thread, so no other thread's misses or
//! reclaim passes blur the picture.
//! Per-CPU mode only (the test returns early, saying so, in the per-thread mode).

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
        eprintln!("per-thread front end: nothing to test");
        return;
    }
    lists_grow_with_use_and_shrink_when_idle();
    the_slow_paths_reclaim_idle_lists_on_their_own();
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
