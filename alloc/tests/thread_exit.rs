//! Thread exit loses nothing: with per-thread caches, a thread's cached blocks go back to the
//! central lists when it exits (pthread-key destructor); with per-CPU caches, what the threads
//! left cached is bounded by the CPUs and returns when the slabs are drained. Either way memory
//! held by exited threads returns to the page heap. One test in its own binary, so no other
//! test's allocations blur the accounting.

use std::alloc::{GlobalAlloc, Layout};
use tricolor_alloc::{Tricolor, testing};

#[global_allocator]
static GLOBAL: Tricolor = Tricolor;

fn in_use() -> usize {
    let (committed, free) = testing::page_heap_bytes();
    committed - free
}

#[test]
fn exited_threads_give_their_cached_memory_back() {
    // Warm up the harness's own allocations, then measure.
    testing::drain_front_caches();
    let before = in_use();
    let threads = 64;
    for wave in 0..4 {
        let handles: Vec<_> = (0..threads / 4)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut v = Vec::new();
                    for i in 0..2000 {
                        let size = 16 + ((i * 37 + t * 11 + wave) % 2000);
                        let l = Layout::from_size_align(size, 8).unwrap();
                        // SAFETY: valid layout; freed below with the same layout.
                        let p = unsafe { GLOBAL.alloc(l) };
                        assert!(!p.is_null());
                        v.push((p, l));
                    }
                    for (p, l) in v {
                        // SAFETY: live blocks with their layouts.
                        unsafe { GLOBAL.dealloc(p, l) };
                    }
                    assert!(
                        testing::front_cache_bytes() > 0,
                        "the test needs cached blocks"
                    );
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    }
    testing::drain_front_caches();
    let after = in_use();
    // Each thread cached hundreds of KiB; had they leaked, `after` would be many MiB higher.
    assert!(
        after <= before + (512 << 10),
        "memory in use grew from {before} to {after} bytes across {threads} exited threads"
    );
    testing::validate_page_heap();
}
