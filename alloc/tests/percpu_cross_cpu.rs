//! Operations on other CPUs' lists (draining, shrinking, growing) while threads run
//! restartable sequences on them: workers churn small blocks, re-pinning themselves, while a
//! drainer empties every CPU's lists and runs reclaim passes as fast as it can. Every block is
//! stamped by its owner and checked before it is freed: a block handed out twice, because a
//! drain and a sequence both took it, fails the check. Per-CPU mode only: a per-thread cache
//! is touched by its own thread alone (`thread_cache`'s rule 1), so the per-thread front end
//! has no such race, and the test says it skipped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tricolor_alloc::{FrontEnd, Tricolor, front_end, testing};

mod common;

#[global_allocator]
static GLOBAL: Tricolor = Tricolor;

#[test]
fn drains_never_race_a_sequence() {
    if front_end() != FrontEnd::PerCpu {
        common::skipped(
            "drains_never_race_a_sequence: no other thread drains a per-thread cache",
            "front end is per-thread",
        );
        return;
    }
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let ops = if cfg!(debug_assertions) {
        100_000
    } else {
        1_000_000
    };
    let stop = Arc::new(AtomicBool::new(false));
    let drainer = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let (mut passes, mut moved) = (0usize, 0usize);
            while !stop.load(Ordering::Relaxed) {
                moved += testing::drain_front_caches();
                moved += testing::reclaim_idle();
                passes += 1;
            }
            (passes, moved)
        })
    };
    let workers: Vec<_> = (0..6)
        .map(|t| {
            std::thread::spawn(move || {
                let mut x = 0x2545_f491_4f6c_dd1du64 ^ ((t as u64 + 1) << 24);
                let mut live = common::Live::default();
                for op in 0..ops {
                    common::next(&mut x);
                    if op % 1024 == 0 {
                        common::pin(&[(x >> 40) as usize % cpus]);
                    }
                    if live.len() > 200 || (x & 1 == 0 && live.len() > 0) {
                        live.free_one((x >> 8) as usize);
                    } else {
                        // Four sizes, so lists fill, overflow and grow while being drained.
                        let n = [16, 48, 128, 1024][(x >> 20) as usize % 4];
                        live.alloc(n, x ^ ((t as u64) << 56));
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let (passes, moved) = drainer.join().unwrap();
    assert!(
        passes > 100,
        "only {passes} drain passes: the race was barely exercised"
    );
    assert!(moved > 0, "the drains never took a block");
    testing::validate_page_heap();
}
