//! Multi-threaded stress in the manner of mimalloc's stress test: threads allocate blocks of
//! random sizes, stamp them with their address and a per-block value, hand some to other
//! threads through shared mailboxes, and free blocks they did not allocate. Every block is
//! checked before it is freed: a block handed out twice, or corrupted through a cache or the
//! central lists, fails the check. Seeded and scaled down in debug builds.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::{Arc, Barrier, Mutex};
use tricolor_alloc::Tricolor;

#[global_allocator]
static GLOBAL: Tricolor = Tricolor;

const THREADS: usize = 6;

struct Block {
    ptr: usize,
    size: usize,
    value: u64,
}

fn rng(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn make(state: &mut u64) -> Block {
    let size = match rng(state) % 100 {
        0..=79 => 8 + (rng(state) % 248) as usize,
        80..=97 => 256 + (rng(state) % 16_000) as usize,
        _ => 33_000 + (rng(state) % 200_000) as usize,
    };
    let value = rng(state);
    let l = Layout::from_size_align(size, 8).unwrap();
    // SAFETY: non-zero layout.
    let p = unsafe { GLOBAL.alloc(l) };
    assert!(!p.is_null());
    let words = size / 8;
    for i in 0..words {
        // SAFETY: i < words, inside the block.
        unsafe { p.cast::<u64>().add(i).write(value ^ (p as u64) ^ i as u64) };
    }
    Block {
        ptr: p as usize,
        size,
        value,
    }
}

fn check_and_free(b: Block) {
    let p = b.ptr as *mut u8;
    for i in 0..b.size / 8 {
        // SAFETY: i < size/8, inside the live block.
        let w = unsafe { p.cast::<u64>().add(i).read() };
        assert_eq!(
            w,
            b.value ^ (p as u64) ^ i as u64,
            "block {p:p} word {i} of {} corrupted",
            b.size
        );
    }
    // SAFETY: live block with this layout.
    unsafe { GLOBAL.dealloc(p, Layout::from_size_align(b.size, 8).unwrap()) };
}

#[test]
fn cross_thread_frees_keep_every_block_intact() {
    let rounds = if cfg!(debug_assertions) {
        3_000
    } else {
        40_000
    };
    let mailboxes: Arc<Vec<Mutex<Vec<Block>>>> =
        Arc::new((0..THREADS).map(|_| Mutex::new(Vec::new())).collect());
    let start = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let mailboxes = Arc::clone(&mailboxes);
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ ((t as u64 + 1) * 0x1234_5678);
                let mut mine: Vec<Block> = Vec::new();
                start.wait();
                for _ in 0..rounds {
                    match rng(&mut state) % 10 {
                        0..=4 => mine.push(make(&mut state)),
                        5..=6 if !mine.is_empty() => {
                            let i = (rng(&mut state) as usize) % mine.len();
                            check_and_free(mine.swap_remove(i));
                        }
                        7 if !mine.is_empty() => {
                            // Hand a block to another thread; it frees it.
                            let i = (rng(&mut state) as usize) % mine.len();
                            let to = (t + 1 + (rng(&mut state) as usize) % (THREADS - 1)) % THREADS;
                            let b = mine.swap_remove(i);
                            mailboxes[to].lock().unwrap().push(b);
                        }
                        _ => {
                            let got: Vec<Block> =
                                std::mem::take(&mut *mailboxes[t].lock().unwrap());
                            for b in got {
                                check_and_free(b);
                            }
                        }
                    }
                }
                for b in mine {
                    check_and_free(b);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    for m in mailboxes.iter() {
        for b in std::mem::take(&mut *m.lock().unwrap()) {
            check_and_free(b);
        }
    }
    tricolor_alloc::testing::validate_page_heap();
}
