//! The per-CPU slab layout: where each size class's list header and item array sit in a CPU's
//! slab, how far apart the slabs are, and the record through which the fast path finds them.
//! Fixed at compile time from the size-class table, so the restartable sequences (`os::rseq`)
//! shift by a constant and the front end (`percpu`) indexes without loads. A leaf above
//! `size_class::table` and `sync`: the sequences below the front end and the statics of
//! `fast` import it, which is why it is not part of `percpu`.
//!
//! One slab per CPU, all with the same layout, fixed at compile time: `NUM_CLASSES` headers of
//! 16 bytes `{ current: u32, allocs: u32, end: u32, begin: u32 }`, the heap profiler's
//! countdown for large allocations on a cache line of its own ([`SAMPLER`]), then each
//! class's array of
//! [`max_capacity`] block pointers (at word [`ITEMS`]`[class]` of every slab). `current`,
//! `end` and `begin` are word offsets from the slab's start (TCMalloc's layout), so a sequence
//! addresses an item as `slab + i * 8` without loading where the class's array is:
//! `slab[begin..current]` are free blocks (with their canary set, see `block`), and the list's
//! capacity is `end - begin`. `begin` is `ITEMS[class]` except while the header is locked.
//! `allocs` counts the allocations the list served, modulo 2^32, and trips the heap
//! profiler's samples (`percpu::counters`). Slabs are [`SLAB_SHIFT`] bits apart, a constant
//! the sequences shift by.
//!

use crate::size_class::table::{CLASS_TABLE, NUM_CLASSES};
use crate::sync::{AtomicBool, AtomicIsize, AtomicPtr, AtomicU8, AtomicUsize};
use core::ptr;

/// Bytes of a list's header.
pub(crate) const HEADER: usize = 16;
/// Each class's item array: its offset in every slab, in 8-byte words (after the headers and
/// the sampler's line), with room for [`max_capacity`] items.
pub(crate) const ITEMS: [u32; NUM_CLASSES] = {
    let mut out = [0u32; NUM_CLASSES];
    let mut at = ITEMS_OFFSET / 8;
    let mut c = 0;
    while c < NUM_CLASSES {
        out[c] = at as u32;
        at += max_capacity(c) as usize;
        c += 1;
    }
    out
};

/// log2 of a slab's size: the smallest power of two holding every class's items.
pub(crate) const SLAB_SHIFT: u32 = {
    let last = NUM_CLASSES - 1;
    let words = ITEMS[last] as usize + max_capacity(last) as usize;
    (words * 8).next_power_of_two().trailing_zeros()
};

/// Where each slab keeps the heap profiler's countdown for the allocations the lists'
/// counters do not see (an `i64`: bytes of large blocks to allocate on this CPU before the
/// next sample) and its random state (a `u64`), on a cache line of their own after the
/// headers (`profile`).
pub(crate) const SAMPLER: usize = (NUM_CLASSES * HEADER).next_multiple_of(64);

/// Where the item arrays start in every slab, in bytes: after the headers and the sampler's
/// line. `fast` places its fields at this page offset, which no header uses.
pub(crate) const ITEMS_OFFSET: usize = SAMPLER + 64;

/// `mode` before the first allocation decides the front end.
pub(crate) const UNDECIDED: u8 = 0;
/// `mode` when the per-CPU caches serve allocations and nothing is sampled.
pub(crate) const PER_CPU: u8 = 1;
/// `mode` when the per-thread caches serve allocations and nothing is sampled.
pub(crate) const PER_THREAD: u8 = 2;
/// Added to `mode` while heap profiling samples allocations through the out-of-line
/// countdown (`profile::take`): with the per-thread caches, and with the per-CPU ones only
/// where their counters cannot be armed (no `membarrier` to fence other CPUs'
/// headers; elsewhere they trip the samples themselves, `counters`). The allocation fast
/// path compares `mode` with `PER_CPU` (or `PER_THREAD`) exactly, so the bit sends every
/// allocation down that path. Frees test the front-end bit alone.
pub(crate) const SAMPLING: u8 = 4;

/// The slabs, in one record so the fast path finds them with one address computation (it
/// lives in `fast::FAST`, beside the other statics the fast paths read). Written once before
/// `mode` becomes PER_CPU (relaxed; published by its Release).
pub(crate) struct Layout {
    /// The mode; Release/Acquire publishes the fields below. Here, so the fast path reads the
    /// mode and the slabs from one place.
    pub(crate) mode: AtomicU8,
    /// The first slab; slab `cpu` is `SLAB_SHIFT` bits further per CPU.
    pub(crate) base: AtomicPtr<u8>,
    /// The number of slabs (CPU ids are below it).
    pub(crate) count: AtomicUsize,
    /// glibc's `__rseq_offset`: where the thread's `struct rseq` is from the thread pointer.
    pub(crate) rseq_offset: AtomicIsize,
    /// True when `membarrier` can fence another CPU's sequences, so capacities may change.
    pub(crate) resizable: AtomicBool,
}
impl Layout {
    pub(crate) const fn new() -> Self {
        Layout {
            mode: AtomicU8::new(UNDECIDED),
            base: AtomicPtr::new(ptr::null_mut()),
            count: AtomicUsize::new(0),
            rseq_offset: AtomicIsize::new(0),
            resizable: AtomicBool::new(false),
        }
    }
}

/// Most slots a class's list may have: two batches, and for small classes up to 64 KiB of
/// blocks (at most 256), so alloc/free runs of a few hundred small blocks stay on the CPU.
/// Each slab reserves this many.
pub(crate) const fn max_capacity(class: usize) -> u32 {
    let sc = &CLASS_TABLE[class];
    let fill = (64 * 1024) / sc.size;
    let small = if fill < 256 { fill } else { 256 };
    if 2 * sc.batch > small {
        2 * sc.batch
    } else {
        small
    }
}
