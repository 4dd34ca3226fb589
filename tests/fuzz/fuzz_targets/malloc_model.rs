//! Differential fuzzing of the C malloc family (`tc_malloc`, `tc_calloc`, `tc_realloc`,
//! `tc_free`, `tc_aligned_alloc`, `tc_posix_memalign`, `tc_malloc_usable_size`) against a
//! model, on two threads that hand blocks to each other.
//!
//! The model knows every live block's size, alignment and contents (a pattern drawn from a
//! seed). After every operation it checks what a C program relies on: a non-null result for
//! a reasonable request, the requested alignment (and 16 bytes for plain `malloc`), a usable
//! size of at least the request, zeroed memory from `calloc`, contents preserved by `realloc`
//! up to the smaller size, a block's contents untouched while it is live (checked before every
//! free), and no two live blocks overlapping. Requests that must fail (overflowing `calloc`,
//! a non-power-of-two alignment) must return NULL.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use std::ffi::c_void;
use std::sync::Mutex;
use tricolor::{
    tc_aligned_alloc, tc_calloc, tc_free, tc_malloc, tc_malloc_usable_size, tc_posix_memalign,
    tc_realloc,
};

/// Sizes biased to the interesting ranges: tiny, small classes, large page runs.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum Size {
    Tiny(u8),
    Small(u16),
    Large(u16),
}

impl Size {
    fn bytes(self) -> usize {
        match self {
            Size::Tiny(n) => n as usize % 64,
            Size::Small(n) => n as usize % 40_000,
            // Up to 4 MiB in 64-byte steps.
            Size::Large(n) => 32 * 1024 + (n as usize % 65_536) * 64,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Malloc(Size),
    Calloc {
        n: u8,
        size: Size,
    },
    Realloc {
        slot: u8,
        size: Size,
    },
    Free {
        slot: u8,
    },
    AlignedAlloc {
        align_log: u8,
        size: Size,
    },
    PosixMemalign {
        align_log: u8,
        size: Size,
    },
    UsableSize {
        slot: u8,
    },
    /// Hands the block in `slot` to the shared list, for the other thread to free or resize.
    Give {
        slot: u8,
    },
    /// Takes a block from the shared list.
    Take,
    /// Requests that must fail.
    Impossible(u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    first: Vec<Op>,
    second: Vec<Op>,
}

/// A live block as the model knows it.
struct Block {
    ptr: usize,
    size: usize,
    seed: u8,
}

const SLOTS: usize = 32;

/// Address ranges of all live blocks, to catch two blocks overlapping.
static LIVE: Mutex<BTreeMap<usize, usize>> = Mutex::new(BTreeMap::new());
/// Blocks in transit between the threads.
static SHARED: Mutex<Vec<Block>> = Mutex::new(Vec::new());

fn pattern(seed: u8, i: usize) -> u8 {
    seed ^ (i.wrapping_mul(0x9e37) >> 3) as u8
}

/// The byte offsets the model writes and checks: all of a small block; the ends and a stride
/// of a large one (filling megabytes per operation would starve the fuzzer).
fn positions(size: usize) -> impl Iterator<Item = usize> {
    let dense = size.min(4096);
    let tail_start = size.saturating_sub(2048).max(dense);
    (0..dense)
        .chain((dense..tail_start).step_by(4093))
        .chain(tail_start..size)
}

fn fill(b: &Block) {
    let p = b.ptr as *mut u8;
    for i in positions(b.size) {
        // SAFETY: `i < size` and the block is live with at least `size` usable bytes.
        unsafe { p.add(i).write(pattern(b.seed, i)) };
    }
}

/// Checks the pattern `fill` wrote at the block's positions below `upto`.
fn check(b: &Block, upto: usize, what: &str) {
    let p = b.ptr as *const u8;
    for i in positions(b.size).take_while(|&i| i < upto) {
        // SAFETY: as in `fill`.
        let got = unsafe { p.add(i).read() };
        assert_eq!(
            got,
            pattern(b.seed, i),
            "{what}: byte {i} of block {:#x} ({} bytes) changed",
            b.ptr,
            b.size
        );
    }
}

fn enter(ptr: usize, size: usize) {
    let len = size.max(1);
    let mut live = LIVE.lock().unwrap();
    if let Some((&s, &e)) = live.range(..ptr + len).next_back() {
        assert!(
            e <= ptr,
            "block {ptr:#x}+{len} overlaps live block {s:#x}..{e:#x}"
        );
    }
    live.insert(ptr, ptr + len);
}

fn leave(ptr: usize) {
    assert!(
        LIVE.lock().unwrap().remove(&ptr).is_some(),
        "{ptr:#x} not live"
    );
}

/// Checks a fresh block and enters it into the model.
fn fresh(p: *mut c_void, size: usize, align: usize, seed: u8, zeroed: bool) -> Block {
    assert!(!p.is_null(), "{size} bytes aligned to {align}: NULL");
    let ptr = p as usize;
    assert_eq!(ptr % align, 0, "{ptr:#x}: not aligned to {align}");
    // SAFETY: a live block from the allocator.
    let usable = unsafe { tc_malloc_usable_size(p) };
    assert!(usable >= size, "usable size {usable} < {size}");
    if zeroed {
        for i in positions(size) {
            // SAFETY: `i < size`, a live block.
            assert_eq!(
                unsafe { (p as *const u8).add(i).read() },
                0,
                "calloc byte {i}"
            );
        }
    }
    enter(ptr, size);
    let b = Block { ptr, size, seed };
    fill(&b);
    b
}

fn release(b: Block) {
    check(&b, usize::MAX, "before free");
    leave(b.ptr);
    // SAFETY: a live block of ours, freed once.
    unsafe { tc_free(b.ptr as *mut c_void) };
}

fn put(slots: &mut [Option<Block>], slot: u8, b: Block) {
    if let Some(old) = slots[slot as usize % SLOTS].replace(b) {
        release(old);
    }
}

fn run(ops: &[Op], thread: u8) {
    let mut slots: Vec<Option<Block>> = (0..SLOTS).map(|_| None).collect();
    let mut seed = thread.wrapping_mul(101);
    for (k, op) in ops.iter().enumerate() {
        seed = seed.wrapping_add(1);
        let at = (k % SLOTS) as u8;
        match *op {
            Op::Malloc(size) => {
                let n = size.bytes();
                put(&mut slots, at, fresh(tc_malloc(n), n, 16, seed, false));
            }
            Op::Calloc { n, size } => {
                let (n, s) = (n as usize % 16, size.bytes().min(1 << 18));
                put(
                    &mut slots,
                    at,
                    fresh(tc_calloc(n, s), n * s, 16, seed, true),
                );
            }
            Op::Realloc { slot, size } => {
                let Some(b) = slots[slot as usize % SLOTS].take() else {
                    continue;
                };
                let n = size.bytes().max(1);
                check(&b, usize::MAX, "before realloc");
                leave(b.ptr);
                // SAFETY: a live block; the old pointer is not used after success.
                let q = unsafe { tc_realloc(b.ptr as *mut c_void, n) };
                assert!(!q.is_null(), "realloc to {n}: NULL");
                let moved = Block {
                    ptr: q as usize,
                    size: b.size,
                    seed: b.seed,
                };
                check(&moved, n, "after realloc");
                enter(moved.ptr, n);
                let nb = Block {
                    ptr: moved.ptr,
                    size: n,
                    seed,
                };
                fill(&nb);
                slots[slot as usize % SLOTS] = Some(nb);
            }
            Op::Free { slot } => {
                if let Some(b) = slots[slot as usize % SLOTS].take() {
                    release(b);
                }
            }
            Op::AlignedAlloc { align_log, size } => {
                let align = 1usize << (align_log % 24);
                let n = size.bytes();
                put(
                    &mut slots,
                    at,
                    fresh(tc_aligned_alloc(align, n), n, align, seed, false),
                );
            }
            Op::PosixMemalign { align_log, size } => {
                let align = 8usize << (align_log % 21);
                let n = size.bytes();
                let mut p = std::ptr::null_mut();
                // SAFETY: `p` is a valid out-pointer.
                assert_eq!(unsafe { tc_posix_memalign(&mut p, align, n) }, 0);
                put(&mut slots, at, fresh(p, n, align, seed, false));
            }
            Op::UsableSize { slot } => {
                if let Some(b) = &slots[slot as usize % SLOTS] {
                    // SAFETY: a live block.
                    let u = unsafe { tc_malloc_usable_size(b.ptr as *mut c_void) };
                    assert!(u >= b.size);
                    check(b, usize::MAX, "usable size");
                }
            }
            Op::Give { slot } => {
                if let Some(b) = slots[slot as usize % SLOTS].take() {
                    SHARED.lock().unwrap().push(b);
                }
            }
            Op::Take => {
                let b = SHARED.lock().unwrap().pop();
                if let Some(b) = b {
                    put(&mut slots, at, b);
                }
            }
            Op::Impossible(which) => {
                let p = match which % 4 {
                    0 => tc_calloc(usize::MAX / 2, 3),
                    1 => tc_aligned_alloc(48, 64),
                    2 => tc_malloc(usize::MAX - 100),
                    _ => tc_aligned_alloc(0, 8),
                };
                assert!(p.is_null(), "impossible request {which} succeeded");
            }
        }
    }
    for b in slots.into_iter().flatten() {
        release(b);
    }
}

fuzz_target!(|input: Input| {
    std::thread::scope(|s| {
        s.spawn(|| run(&input.second, 1));
        run(&input.first, 0);
    });
    let rest: Vec<Block> = std::mem::take(&mut *SHARED.lock().unwrap());
    for b in rest {
        release(b);
    }
    assert!(LIVE.lock().unwrap().is_empty(), "the model lost a block");
});
