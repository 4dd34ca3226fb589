//! Operations on other CPUs' lists (draining, shrinking, growing) while threads run
//! restartable sequences on them: workers churn small blocks, re-pinning themselves, while a
//! drainer empties every CPU's lists and runs reclaim passes as fast as it can. Every block is
//! stamped by its owner and checked before it is freed: a block handed out twice, because a
//! drain and a sequence both took it, fails the check. Per-CPU mode only.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tricolor_alloc::{FrontEnd, Tricolor, front_end, testing};

mod common;
use common::{check, stamp};

#[global_allocator]
static GLOBAL: Tricolor = Tricolor;

#[test]
fn drains_never_race_a_sequence() {
    if front_end() != FrontEnd::PerCpu {
        eprintln!("per-thread front end: nothing to test");
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
                let mut live: Vec<(usize, usize, u64)> = Vec::new();
                for op in 0..ops {
                    common::next(&mut x);
                    if op % 1024 == 0 {
                        common::pin(&[(x >> 40) as usize % cpus]);
                    }
                    if live.len() > 200 || (x & 1 == 0 && !live.is_empty()) {
                        let (p, n, v) = live.swap_remove((x >> 8) as usize % live.len());
                        check(p as *mut u8, n, v);
                        // SAFETY: a live block with this layout.
                        unsafe {
                            GLOBAL.dealloc(p as *mut u8, Layout::from_size_align(n, 8).unwrap())
                        };
                    } else {
                        // Four sizes, so lists fill, overflow and grow while being drained.
                        let n = [16, 48, 128, 1024][(x >> 20) as usize % 4];
                        // SAFETY: valid layout.
                        let p = unsafe { GLOBAL.alloc(Layout::from_size_align(n, 8).unwrap()) };
                        assert!(!p.is_null());
                        let v = x ^ ((t as u64) << 56);
                        stamp(p, n, v);
                        live.push((p as usize, n, v));
                    }
                }
                for (p, n, v) in live {
                    check(p as *mut u8, n, v);
                    // SAFETY: a live block with this layout.
                    unsafe { GLOBAL.dealloc(p as *mut u8, Layout::from_size_align(n, 8).unwrap()) };
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
