//! Randomized model test: random alloc / alloc_zeroed / realloc / free sequences through the
//! global allocator, checked against a model for overlap, alignment, usable size and content.

use std::alloc::{GlobalAlloc, Layout};
use std::collections::BTreeMap;
use tricolor_alloc::Tricolor;

#[global_allocator]
static GLOBAL: Tricolor = Tricolor;

/// xorshift64*: seeded, reproducible, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Live {
    size: usize,
    align: usize,
    stamp: u8,
}

fn size(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=59 => 1 + rng.below(256) as usize,
        60..=89 => 1 + rng.below(32 * 1024) as usize,
        90..=98 => 1 + rng.below(512 * 1024) as usize,
        _ => 1 + rng.below(4 << 20) as usize,
    }
}

fn align(rng: &mut Rng) -> usize {
    match rng.below(20) {
        0 => 1 << rng.below(21), // up to 1 MiB
        1..=3 => 16,
        _ => 8,
    }
}

/// The bytes stamped in a block of `n` bytes: the first and last 64 and every 97th between
/// (cheap, but any overlap of two blocks hits some of them).
fn stamped(n: usize) -> impl Iterator<Item = usize> {
    (0..n)
        .step_by(97)
        .chain(n.saturating_sub(64)..n)
        .chain(0..n.min(64))
}

fn fill(p: *mut u8, n: usize, stamp: u8) {
    for i in stamped(n) {
        // SAFETY: i < n, inside the live block.
        unsafe { *p.add(i) = stamp ^ (i as u8) };
    }
}

/// Checks the stamps of a block stamped at length `n`, up to byte `limit` (a realloc keeps
/// only a prefix).
fn verify_prefix(p: *mut u8, n: usize, limit: usize, stamp: u8) {
    for i in stamped(n).filter(|&i| i < limit) {
        // SAFETY: i < limit <= the live block's size.
        let v = unsafe { *p.add(i) };
        assert_eq!(
            v,
            stamp ^ (i as u8),
            "block {p:p} byte {i} of {n} corrupted"
        );
    }
}

fn verify(p: *mut u8, n: usize, stamp: u8) {
    verify_prefix(p, n, n, stamp);
}

fn insert(model: &mut BTreeMap<usize, Live>, p: *mut u8, live: Live) {
    let a = p as usize;
    assert_eq!(a % live.align, 0, "{p:p} not aligned to {}", live.align);
    // SAFETY: `p` is live, from Tricolor.
    let usable = unsafe { tricolor_alloc::usable_size(p) };
    assert!(
        usable >= live.size,
        "usable {usable} < requested {}",
        live.size
    );
    if let Some((&s, l)) = model.range(..=a).next_back() {
        assert!(s + l.size <= a, "{p:p} overlaps block at {s:#x}");
    }
    if let Some((&s, _)) = model.range(a..).next() {
        assert!(a + live.size <= s, "{p:p} overlaps block at {s:#x}");
    }
    model.insert(a, live);
}

/// Checks a block against the model and frees it.
fn free_block(key: usize, l: &Live) {
    verify(key as *mut u8, l.size, l.stamp);
    // SAFETY: live with this layout (the model's record).
    unsafe {
        GLOBAL.dealloc(
            key as *mut u8,
            Layout::from_size_align(l.size, l.align).unwrap(),
        )
    };
}

fn run(seed: u64, steps: usize) {
    let mut rng = Rng(seed | 1);
    let mut model: BTreeMap<usize, Live> = BTreeMap::new();
    let mut keys: Vec<usize> = Vec::new();
    for step in 0..steps {
        let op = rng.below(10);
        if keys.is_empty() || op < 4 {
            let (n, a) = (size(&mut rng), align(&mut rng));
            let layout = Layout::from_size_align(n, a).unwrap();
            let zeroed = rng.below(4) == 0;
            // SAFETY: non-zero size layout.
            let p = unsafe {
                if zeroed {
                    GLOBAL.alloc_zeroed(layout)
                } else {
                    GLOBAL.alloc(layout)
                }
            };
            assert!(!p.is_null(), "out of memory at step {step}");
            if zeroed {
                // SAFETY: n bytes live.
                let s = unsafe { std::slice::from_raw_parts(p, n) };
                assert!(s.iter().all(|&b| b == 0), "alloc_zeroed({n}, {a}) not zero");
            }
            let stamp = rng.next() as u8;
            fill(p, n, stamp);
            insert(
                &mut model,
                p,
                Live {
                    size: n,
                    align: a,
                    stamp,
                },
            );
            keys.push(p as usize);
        } else if op < 7 {
            let i = rng.below(keys.len() as u64) as usize;
            let key = keys.swap_remove(i);
            let l = model.remove(&key).unwrap();
            let p = key as *mut u8;
            verify(p, l.size, l.stamp);
            let new = if rng.below(2) == 0 {
                l.size + rng.below(l.size as u64 * 2 + 64) as usize
            } else {
                1 + rng.below(l.size as u64) as usize
            };
            let layout = Layout::from_size_align(l.size, l.align).unwrap();
            // SAFETY: `p` is live with `layout`.
            let q = unsafe { GLOBAL.realloc(p, layout, new) };
            assert!(!q.is_null());
            verify_prefix(q, l.size, l.size.min(new), l.stamp);
            // Re-stamp the whole new block.
            let stamp = rng.next() as u8;
            fill(q, new, stamp);
            insert(
                &mut model,
                q,
                Live {
                    size: new,
                    align: l.align,
                    stamp,
                },
            );
            keys.push(q as usize);
        } else {
            let i = rng.below(keys.len() as u64) as usize;
            let key = keys.swap_remove(i);
            let l = model.remove(&key).unwrap();
            free_block(key, &l);
        }
    }
    for (key, l) in model {
        free_block(key, &l);
    }
}

fn steps() -> usize {
    if cfg!(debug_assertions) {
        20_000
    } else {
        200_000
    }
}

#[test]
fn random_sequences_keep_blocks_disjoint_aligned_and_intact() {
    for seed in [1, 0xdead_beef, 42_4242] {
        run(seed, steps());
    }
    tricolor_alloc::testing::validate_page_heap();
}

#[test]
fn zeroed_large_blocks_are_zero_after_reuse() {
    for round in 0..8 {
        let n = (64 << 10) + round * 8192 + 13;
        let l = Layout::from_size_align(n, 8).unwrap();
        // SAFETY: valid layout; the block is written, freed, and a zeroed one checked.
        unsafe {
            let p = GLOBAL.alloc(l);
            std::ptr::write_bytes(p, 0xff, n);
            GLOBAL.dealloc(p, l);
            let q = GLOBAL.alloc_zeroed(l);
            assert!(std::slice::from_raw_parts(q, n).iter().all(|&b| b == 0));
            GLOBAL.dealloc(q, l);
        }
    }
}

#[test]
fn huge_alignments_are_honoured() {
    for shift in [13, 14, 16, 20, 22, 26] {
        let align = 1usize << shift;
        let l = Layout::from_size_align(100, align).unwrap();
        // SAFETY: valid layout; freed with the same layout.
        unsafe {
            let p = GLOBAL.alloc(l);
            assert!(!p.is_null());
            assert_eq!(p as usize % align, 0, "align {align}");
            p.write_bytes(7, 100);
            GLOBAL.dealloc(p, l);
        }
    }
}

#[test]
fn impossible_requests_fail_with_null() {
    // SAFETY: valid layouts; nothing is returned to free.
    unsafe {
        let l = Layout::from_size_align(isize::MAX as usize - 4096, 8).unwrap();
        assert!(GLOBAL.alloc(l).is_null());
        let before = tricolor_alloc::stats().metadata;
        let l = Layout::from_size_align(1 << 46, 4096).unwrap();
        assert!(GLOBAL.alloc(l).is_null(), "64 TiB should not be reservable");
        // A refused request costs no metadata: pagemap leaves for all 64 TiB, made before the
        // commit fails, would map 68 GB, 4 GB of it resident.
        let grown = tricolor_alloc::stats().metadata - before;
        assert!(
            grown < 16 << 20,
            "a refused request mapped {grown} bytes of metadata"
        );
    }
}
