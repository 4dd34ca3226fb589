//! Per-CPU front caches on restartable sequences: the allocation fast path when glibc has
//! registered rseq (see `os::rseq`). Memory held in front caches is then bounded by the number
//! of CPUs, however many threads run, and threads have nothing to flush when they exit.
//!
//! # Slabs
//! One slab per CPU, all with the same layout, fixed at compile time: `NUM_CLASSES` headers of
//! 16 bytes `{ current: u32, allocs: u32, end: u32, begin: u32 }`, the heap profiler's
//! countdown on a cache line of its own ([`SAMPLER`]), then each class's array of
//! [`max_capacity`] block pointers (at word [`ITEMS`]`[class]` of every slab). `current`,
//! `end` and `begin` are word offsets from the slab's start (TCMalloc's layout), so a sequence
//! addresses an item as `slab + i * 8` without loading where the class's array is:
//! `slab[begin..current]` are free blocks (with their canary set, see `block`), and the list's
//! capacity is `end - begin`. `begin` is `ITEMS[class]` except while the header is locked.
//! `allocs` counts the allocations the list served, modulo 2^32 (`counters`). Slabs are
//! [`SLAB_SHIFT`] bits apart, a constant the sequences shift by.
//!
//! Rule 1: `current`, `allocs` and the items are written only by restartable sequences
//! running on the slab's CPU, with `current` (and for an allocation `allocs` with it, one
//! 8-byte store) as the single committing store, or (`current` and the items only) by the
//! holder of a *locked* header (`resize`). Rule 2: `end` and `begin` are written only by
//! `resize`, under its lock (and once by `build_slabs`, before the slabs are published). So
//! no lock and no atomic instruction guards the fast path.
//!
//! # Capacity adapts to use
//! A list starts at one batch of capacity ([`initial_capacity`]). When a free finds it full,
//! the list grows by a batch, up to [`max_capacity`]; when a pass of [`reclaim_idle`] finds
//! that a CPU's list of some class had no miss since the previous pass, it is emptied and
//! shrunk back to one batch. A CPU that stops using a class thereby gives its blocks back
//! within two passes (one second apart, run by the scavenger thread, or from the slow paths
//! when it is off: see `scavenger`). Both resizes work on another CPU's
//! slab safely: `resize` explains the protocol (locked headers plus `membarrier`). Where the
//! kernel lacks `membarrier`'s rseq command, capacities stay at their maximum instead.
//!
//! # Slow paths
//! * Allocation from an empty list takes a batch (from the transfer cache or the central
//!   list), returns one block and pushes the rest, one restartable push each (a thread migrated
//!   half-way simply fills the other CPU's list; blocks that fit nowhere go back).
//! * A free onto a full list grows the list if it may, else pops a batch (one sequence each,
//!   on whatever CPU the thread is on) and returns it, with the freed block, to the transfer
//!   cache or the central list.
//!
//! `fork` needs no flush: the child inherits the slabs with the rest of memory, and its
//! threads use them as any other thread would. The fork handlers hold the resize lock, so no
//! header is left locked in the child.
//!
//! # Mode
//! Decided once, at the first allocation: per-CPU when rseq is registered and
//! `TRICOLOR_PERCPU` is not `0`; otherwise the per-thread caches of `thread_cache`.

mod counters;
mod resize;

pub(crate) use counters::allocs_by_class;
pub(crate) use resize::{RESIZE, drain_all, reclaim_idle};

use crate::block::{self, BatchArray, FreeBlock};
use crate::heap::HEAP;
use crate::os::{self, rseq};
use crate::size_class::{CLASS_TABLE, CLASSES, NUM_CLASSES, class_info};
use crate::sync::{
    AtomicBool, AtomicI64, AtomicIsize, AtomicPtr, AtomicU8, AtomicU64, AtomicUsize, Mutex,
    Ordering,
};
use crate::thread_cache;
use core::ptr;

const HEADER: usize = 16;
/// Each class's item array: its offset in every slab, in 8-byte words (after the headers and
/// the sampler's line), with room for [`max_capacity`] items.
pub(crate) const ITEMS: [u32; NUM_CLASSES] = {
    let mut out = [0u32; NUM_CLASSES];
    let mut at = (SAMPLER + 64) / 8;
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

/// Where each slab keeps the heap profiler's countdown (an `i64`: bytes to allocate on this
/// CPU before the next sample) and its random state (a `u64`), on a cache line of their own
/// after the headers (`profile`).
pub(crate) const SAMPLER: usize = (NUM_CLASSES * HEADER).next_multiple_of(64);

/// Which front end serves allocations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrontEnd {
    /// Per-CPU caches on restartable sequences.
    PerCpu,
    /// Per-thread caches (rseq unavailable, or `TRICOLOR_PERCPU=0`).
    PerThread,
}

const UNDECIDED: u8 = 0;
/// `mode` when the per-CPU caches serve allocations and nothing is sampled.
pub(crate) const PER_CPU: u8 = 1;
/// `mode` when the per-thread caches serve allocations and nothing is sampled.
pub(crate) const PER_THREAD: u8 = 2;
/// Added to `mode` while heap profiling samples allocations (`profile`): the allocation fast
/// path compares `mode` with `PER_CPU` (or `PER_THREAD`) exactly, so sampling costs it nothing
/// while off, and every allocation takes the path that counts down to the next sample while
/// on. Frees test the front-end bit alone.
pub(crate) const SAMPLING: u8 = 4;
/// `mode` when the per-CPU caches serve allocations and the heap profiler samples.
pub(crate) const PER_CPU_SAMPLING: u8 = PER_CPU | SAMPLING;
static DECIDE: Mutex<()> = Mutex::new(());
/// The slabs, in one record so the fast path finds them with one address computation (it
/// lives in `fast::FAST`, beside the other statics the fast paths read). Written once before
/// `mode` becomes PER_CPU (relaxed; published by its Release).
pub(crate) struct Layout {
    /// The mode; Release/Acquire publishes the fields below. Here, so the fast path reads the
    /// mode and the slabs from one place.
    mode: AtomicU8,
    base: AtomicPtr<u8>,
    count: AtomicUsize,
    rseq_offset: AtomicIsize,
    /// True when `membarrier` can fence another CPU's sequences, so capacities may change.
    resizable: AtomicBool,
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

/// The layout, in `fast::FAST`.
#[inline(always)]
fn layout() -> &'static Layout {
    &crate::fast::FAST.layout
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

/// The capacity a list starts with, and shrinks back to when idle: one batch (the maximum when
/// capacities cannot change).
pub(crate) fn initial_capacity(class: usize) -> u32 {
    if layout().resizable.load(Ordering::Relaxed) {
        CLASSES[class].batch
    } else {
        max_capacity(class)
    }
}

/// The front end in use, deciding it on first call.
pub fn front_end() -> FrontEnd {
    if per_cpu() {
        FrontEnd::PerCpu
    } else {
        FrontEnd::PerThread
    }
}

/// True when the per-CPU caches serve allocations. Tests one bit each way, so a set
/// `SAMPLING` bit costs nothing here.
#[inline(always)]
pub(crate) fn per_cpu() -> bool {
    let m = layout().mode.load(Ordering::Acquire);
    if m & PER_CPU != 0 {
        true
    } else if m & PER_THREAD != 0 {
        false
    } else {
        decide()
    }
}

/// The raw mode: `PER_CPU` or `PER_THREAD`, plus `SAMPLING`; 0 before the first allocation.
/// Acquire, as [`per_cpu`]: a decided mode publishes the slabs.
#[inline(always)]
pub(crate) fn mode() -> u8 {
    layout().mode.load(Ordering::Acquire)
}

/// Turns the `SAMPLING` bit on or off (deciding the front end first).
pub(crate) fn set_sampling(on: bool) {
    per_cpu();
    if on {
        layout().mode.fetch_or(SAMPLING, Ordering::AcqRel);
    } else {
        layout().mode.fetch_and(!SAMPLING, Ordering::AcqRel);
    }
}

/// The CPU the calling thread runs on (a hint: it may move at once), in per-CPU mode.
#[inline]
pub(crate) fn current_cpu() -> Option<usize> {
    if mode() & PER_CPU == 0 {
        return None;
    }
    let s = slabs();
    // SAFETY: per-CPU mode is on, so `rseq_offset` is `rseq::detect`'s answer.
    let cpu = unsafe { rseq::current_cpu(s.rseq_offset) };
    (cpu < s.n).then_some(cpu)
}

/// The number of per-CPU slabs (CPU ids are below it), in per-CPU mode.
pub(crate) fn cpu_slots() -> Option<usize> {
    (mode() & PER_CPU != 0).then(|| slabs().n)
}

#[cold]
#[inline(never)]
fn decide() -> bool {
    let _g = DECIDE.lock();
    match layout().mode.load(Ordering::Acquire) {
        PER_CPU => return true,
        PER_THREAD => return false,
        _ => {}
    }
    thread_cache::init_heap();
    let ok = crate::knobs::get().percpu && rseq::detect().is_some_and(build_slabs);
    layout()
        .mode
        .store(if ok { PER_CPU } else { PER_THREAD }, Ordering::Release);
    drop(_g);
    // Outside the lock: starting the profiler allocates (a copy of its path).
    crate::profile::start_from_environment();
    ok
}

fn build_slabs(rseq_offset: isize) -> bool {
    let n = rseq::cpu_count();
    if !resize::init(n) || !counters::init(n) {
        return false;
    }
    layout()
        .resizable
        .store(os::register_rseq_fence(), Ordering::Relaxed);
    let stride = 1usize << SLAB_SHIFT;
    let Some(mem) = HEAP.pages.meta.alloc(stride * n, 4096) else {
        return false;
    };
    let base = mem.as_ptr();
    for cpu in 0..n {
        for (c, &items) in ITEMS.iter().enumerate() {
            // SAFETY: fresh metadata of `stride * n` bytes; no sequence can run on it before
            // `mode` is published. An empty list: current = begin = its array's offset.
            unsafe {
                let h = base.add(cpu * stride + c * HEADER).cast::<u32>();
                h.write(items);
                h.add(2).write(items + initial_capacity(c));
                h.add(3).write(items);
            }
        }
    }
    layout().base.store(base, Ordering::Relaxed);
    layout().count.store(n, Ordering::Relaxed);
    layout().rseq_offset.store(rseq_offset, Ordering::Relaxed);
    true
}

/// Points `at` at `n` zeroed records of `T` in metadata (never freed): per-CPU state that
/// zero initialises. False when metadata is exhausted.
fn zeroed_records<T>(at: &AtomicPtr<T>, n: usize) -> bool {
    match HEAP.pages.meta.alloc(n * size_of::<T>(), align_of::<T>()) {
        Some(p) => {
            at.store(p.as_ptr().cast(), Ordering::Relaxed);
            true
        }
        None => false,
    }
}

/// Where `class`'s list is in every slab (a header inside the slab when `class < NUM_CLASSES`,
/// which the sequences' callers guarantee).
#[inline(always)]
fn list(class: usize) -> rseq::List {
    rseq::List {
        header: class * HEADER,
    }
}

#[inline(always)]
fn slabs() -> rseq::Slabs {
    rseq::Slabs {
        base: layout().base.load(Ordering::Relaxed),
        n: layout().count.load(Ordering::Relaxed),
        rseq_offset: layout().rseq_offset.load(Ordering::Relaxed),
    }
}

/// Allocates one block of `class` (null when memory is exhausted). Per-CPU mode only.
///
/// Budget, read with `objdump -d` on the release `tricolor` binary (x86-64, 2026-11-30):
/// `Tricolor::alloc` for a small request that hits the slab runs 35 instructions from entry to
/// `ret`: 1 copies the size, 6 pick the size class (a bound check and one table load), 3 check
/// the mode (the table and the mode come through one GOT entry, `fast`), 6 read
/// the slab layout (base, count, `__rseq_offset`) and set up the header offset and the
/// counter's constant, 2 register the descriptor, 13 are the sequence (CPU id read as
/// `fs:[offset + 4]`, bound, shift by the constant [`SLAB_SHIFT`], `begin` gate, `current`
/// with the allocation count, item, one committing 8-byte store, falling through), 2 test the
/// result, 1 clears the canary, 1 returns; no register is saved. It was 47 before the
/// sequences addressed `struct rseq` through `fs`, and 43 before the slab's indices became
/// absolute (no item-array offset to load and add), the shift a constant, and the failure
/// exits moved out of line. Counting allocations (`counters`) added none: the add of
/// `2^32 - 1` replaced the decrement. Heap profiling adds none while off (`profile`: its arm
/// is out of line). No atomic instruction, no lock; the only stores are `rseq_cs`, the commit
/// and the canary. (mimalloc's whole malloc is about 20.)
///
/// # Safety
/// Per-CPU mode is on ([`per_cpu`] returned true), and `class < NUM_CLASSES` (its header
/// offset is inside every slab).
#[inline]
pub(crate) unsafe fn alloc(class: usize) -> *mut u8 {
    // SAFETY: the caller's contract: per-CPU mode is on, so rseq is available and the slabs
    // are built, and `class`'s header is inside them.
    let b = unsafe { rseq::pop(slabs(), list(class)) } as *mut u8;
    if b.is_null() {
        // SAFETY: the caller's contract.
        return unsafe { alloc_slow(class) };
    }
    // SAFETY: a block of at least 16 bytes, now ours.
    unsafe { block::clear_canary(b) };
    b
}

/// [`alloc`] while the heap profiler samples: the same sequence after a countdown of the
/// class's bytes (`rseq::pop_counting_down`); `None` when the countdown ran out and this
/// allocation is to be sampled (the caller re-arms the countdown).
///
/// # Safety
/// As for [`alloc`].
#[inline(always)]
pub(crate) unsafe fn alloc_counting(class: usize) -> Option<*mut u8> {
    // SAFETY: the caller's contract: `class < NUM_CLASSES`.
    let bytes = unsafe { CLASSES.get_unchecked(class) }.size as usize;
    // SAFETY: the caller's contract; SAMPLER is a field of every slab no list uses.
    let b = unsafe { rseq::pop_counting_down::<SAMPLER>(slabs(), list(class), bytes) };
    match b {
        rseq::SAMPLE_DUE => None,
        // SAFETY: the caller's contract.
        0 => Some(unsafe { alloc_slow(class) }),
        b => {
            // SAFETY: a block of at least 16 bytes, now ours.
            unsafe { block::clear_canary(b as *mut u8) };
            Some(b as *mut u8)
        }
    }
}

/// The profiler's countdown and random state in `cpu`'s slab (per-CPU mode, `cpu` below the
/// slab count). Racy by design (`rseq::pop_counting_down`): atomics here, plain
/// read-modify-writes in the sequences, both on a field that is only statistics.
pub(crate) fn sampler_record(cpu: usize) -> Option<(&'static AtomicI64, &'static AtomicU64)> {
    let s = slabs();
    if mode() & PER_CPU == 0 || cpu >= s.n {
        return None;
    }
    // SAFETY: slabs live forever; SAMPLER and SAMPLER + 8 are 8-byte aligned fields of
    // `cpu`'s slab that no list uses.
    unsafe {
        let at = s.base.add((cpu << SLAB_SHIFT) + SAMPLER);
        Some((&*at.cast::<AtomicI64>(), &*at.add(8).cast::<AtomicU64>()))
    }
}

/// # Safety
/// As for [`alloc`].
#[cold]
#[inline(never)]
unsafe fn alloc_slow(class: usize) -> *mut u8 {
    resize::note_miss(class);
    let batch = HEAP.remove_array(class);
    let Some((&first, rest)) = batch.as_slice().split_first() else {
        return ptr::null_mut();
    };
    // SAFETY: the batch's blocks are ours, each with its canary set (central invariant 5,
    // transfer invariant 1); the rest go into the slab as they are, and what does not fit
    // back to the heap.
    unsafe {
        let pushed = rest
            .iter()
            .take_while(|&&b| rseq::push(slabs(), list(class), b as usize))
            .count();
        if pushed < rest.len() {
            HEAP.insert_batch(class, block::link(&rest[pushed..]));
        }
        block::clear_canary(first.cast());
    }
    // An allocation no counting sequence saw (`counters`).
    counters::SLOW[class].fetch_add(1, Ordering::Relaxed);
    crate::scavenger::tick();
    first.cast()
}

/// Frees a block of `class` that the API layer has checked. Per-CPU mode only.
///
/// Budget, read with `objdump -d` as for [`alloc`] (2026-11-30): `Tricolor::dealloc` of a
/// live small block whose list has room runs 68 instructions from entry to `ret`: 2 keep the
/// stack aligned for the tail calls (one push, one pop), 1 copies the pointer, 6 pick the
/// layout's size class, 14 look the pagemap up (two levels, the root indexed modulo 2^47), 3
/// compare the span's class byte with the layout's, 10 prove the pointer an object boundary
/// (multiply-shift, multiply back, compare), 3 test the bump mark, 4 compute and test the
/// canary, 4 read the mode and write the canary, 20 are this sequence with its layout reads
/// (as in `alloc`, with the capacity gate), 1 returns. It was about 88, with 5 registers saved
/// and restored, before the API layer's check was split into an inlined fast check and a cold
/// full one (`api`), the span's class byte alone came to say "Small, of this class" (`span`),
/// the slab's indices became absolute, and the class table, the canary key and the layout
/// came to share one GOT entry (`fast`). The check, with the layout's class, is 40 of the 68:
/// the price of catching every invalid and double free (jemalloc's sized free checks nothing
/// on this path).
///
/// # Safety
/// `p` is a live block of `class` that nobody uses any more; `canary` is `Canary::of(p)`.
#[inline]
pub(crate) unsafe fn free(p: *mut u8, class: usize, canary: block::Canary) {
    // SAFETY: the caller's contract: `p` is a block of `class`, being freed.
    unsafe { block::debug_fill_freed(p, class) };
    // SAFETY: a block of at least 16 bytes, ours; the caller computed `canary` for it.
    unsafe { canary.set(p) };
    // SAFETY: per-CPU mode is on.
    if !unsafe { rseq::push(slabs(), list(class), p as usize) } {
        // SAFETY: the caller's contract: `p` is a free block of `class`, ours.
        unsafe { overflow(p, class) };
    }
}

/// # Safety
/// Per-CPU mode is on; `p` is a free block of `class` (below NUM_CLASSES), with its canary
/// set, that nobody uses.
#[cold]
#[inline(never)]
unsafe fn overflow(p: *mut u8, class: usize) {
    resize::note_miss(class);
    // SAFETY: per-CPU mode is on.
    if resize::grow(class) && unsafe { rseq::push(slabs(), list(class), p as usize) } {
        return;
    }
    let mut batch = BatchArray::EMPTY;
    batch.push(p.cast());
    // SAFETY: `p` and every popped block are free blocks of `class` with canaries, ours; the
    // array is filled without touching them.
    unsafe {
        while batch.count < class_info(class).batch as usize {
            let q = rseq::pop_uncounted(slabs(), list(class)) as *mut FreeBlock;
            if q.is_null() {
                break;
            }
            batch.push(q);
        }
        HEAP.insert_array(class, batch);
    }
    crate::scavenger::tick();
}

/// Blocks and capacity of `class`'s list on `cpu` (racy; `None` outside per-CPU mode).
#[cfg(any(test, feature = "testing"))]
pub(crate) fn list_state(cpu: usize, class: usize) -> Option<(u32, u32)> {
    let s = slabs();
    (per_cpu() && cpu < s.n && class < NUM_CLASSES).then(|| resize::racy_list(&s, cpu, class))
}

/// Blocks of each class held in every CPU's slab, added to `out` (reads other CPUs' headers
/// racily: statistics only).
pub(crate) fn cached_by_class(out: &mut [usize; NUM_CLASSES]) {
    if !per_cpu() {
        return;
    }
    let s = slabs();
    for cpu in 0..s.n {
        for (c, o) in out.iter_mut().enumerate() {
            *o += resize::racy_list(&s, cpu, c).0 as usize;
        }
    }
}

/// Bytes held in every CPU's slab (racy, as [`cached_by_class`]).
#[cfg(any(test, feature = "testing"))]
pub(crate) fn cached_bytes() -> usize {
    let mut n = [0; NUM_CLASSES];
    cached_by_class(&mut n);
    n.iter()
        .zip(CLASSES.iter())
        .map(|(&k, sc)| k * sc.size as usize)
        .sum()
}
