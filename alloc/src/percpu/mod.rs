//! Per-CPU front caches on restartable sequences: the allocation fast path when glibc has
//! registered rseq (see `os::rseq`). Memory held in front caches is then bounded by the number
//! of CPUs, however many threads run, and threads have nothing to flush when they exit.
//!
//! # Slabs
//! The layout of a CPU's slab (headers, the sampler's line, the item arrays) is `slab`'s.
//!
//! Rule 1: `current`, `allocs` and the items are written only by restartable sequences
//! running on the slab's CPU, with `current` (and for an allocation `allocs` with it, one
//! 8-byte store) as the single committing store, or by the holder of a *locked* header
//! (`resize`; `allocs` only under `counters`' rules). Rule 2: `end` and `begin` are written
//! only by `resize`, under its lock (and once by `build_slabs`, before the slabs are published). So
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
//! Decided once, by `init` at the first allocation: per-CPU when rseq is registered and
//! `TRICOLOR_PERCPU` is not `0`; otherwise the per-thread caches of `thread_cache`.

mod counters;
mod resize;

pub(crate) use counters::{ARM, allocs_by_class};
pub(crate) use resize::{RESIZE, drain_all, reclaim_idle};

use crate::block::{self, BatchArray, FreeBlock};
use crate::heap::HEAP;
use crate::os::{self, rseq};
use crate::size_class::{CLASSES, NUM_CLASSES, class_info};
use crate::slab::{HEADER, ITEMS, Layout, PER_CPU, SAMPLER, SAMPLING, SLAB_SHIFT, max_capacity};
use crate::sync::{AtomicBool, AtomicI64, AtomicPtr, AtomicU64, Ordering};
use core::ptr;

/// The layout, in `fast::FAST`.
#[inline(always)]
fn layout() -> &'static Layout {
    &crate::fast::FAST.layout
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

/// True when the per-CPU caches serve allocations: false also before the first allocation
/// decides the front end (`init::per_cpu` decides it first). Tests one bit, so a set
/// `SAMPLING` bit costs nothing here.
#[inline(always)]
pub(crate) fn per_cpu() -> bool {
    mode() & PER_CPU != 0
}

/// The raw mode: `PER_CPU` or `PER_THREAD`, plus `SAMPLING`; 0 before the first allocation.
/// Acquire, as [`per_cpu`]: a decided mode publishes the slabs.
#[inline(always)]
pub(crate) fn mode() -> u8 {
    layout().mode.load(Ordering::Acquire)
}

/// Starts or stops sampling small allocations (the caller, `profile::set_rate`, has decided
/// the front end), at the rate
/// `profile` now holds. Per-CPU lists sample by their counters: starting arms every list's
/// counter at a gap drawn at that rate (also when the rate merely changes), and stopping
/// leaves them to trip and be set far off (`counters`). Where the counters cannot be armed,
/// and with per-thread caches, the `SAMPLING` bit is set instead.
pub(crate) fn set_sampling(on: bool) {
    // The first call after the slabs were built armed (the environment's rate, which this
    // call sets) finds them armed already; any call consumes that.
    let armed = ARMED_AT_START.swap(false, Ordering::AcqRel);
    let by_counters = per_cpu() && on && (armed || counters::arm_all(counter_for));
    if on && !by_counters {
        layout().mode.fetch_or(SAMPLING, Ordering::AcqRel);
    } else {
        layout().mode.fetch_and(!SAMPLING, Ordering::AcqRel);
    }
}

/// Set when `build_slabs` armed every counter at the environment's rate; taken by the first
/// [`set_sampling`].
static ARMED_AT_START: AtomicBool = AtomicBool::new(false);

/// True while small allocations from the per-CPU lists are sampled by their counters (the
/// fast way); false while sampling is off, or done by the out-of-line countdown.
pub(crate) fn sampling_by_counters() -> bool {
    let m = mode();
    m & PER_CPU != 0 && m & SAMPLING == 0 && crate::profile::sampler::rate() != 0
}

/// A counter value for `class`'s list that lets the list serve a gap of allocations before
/// it trips: `2^32 - 1 - k` for `k` allocations (`counters`). While sampling is on, `k` is
/// the profiler's next gap in bytes divided by the class's size, so
/// `P(k >= j) = e^(-j * size / rate)`: each allocation of the class is sampled with
/// probability `1 - e^(-size / rate)`, whatever came before it, as the profile's scaling
/// assumes. While off, `k` is 2^31.
fn counter_for(class: usize) -> u32 {
    const FAR: u64 = 1 << 31;
    let k = crate::profile::sampler::next_gap()
        .map_or(FAR, |gap| (gap / u64::from(CLASSES[class].size)).min(FAR));
    u32::MAX - k as u32
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

/// Builds the slabs for the CPUs `rseq` reports and records them in the layout; false when
/// metadata is exhausted (the process then runs on the per-thread caches). Called once, by
/// `init::decide`, before the mode is published.
pub(crate) fn build_slabs(rseq_offset: isize) -> bool {
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
    // Sampling from the start (`TRICOLOR_PROFILE_RATE`): every counter is armed as its header
    // is written, before any sequence can run on the slabs, so no fence is needed. Where
    // `membarrier` is refused, this is the only way the counters can be armed
    // (`set_sampling`). Otherwise a counter starts at 0 (zeroed metadata).
    let armed = crate::profile::sampler::rate() != 0;
    for cpu in 0..n {
        for (c, &items) in ITEMS.iter().enumerate() {
            // SAFETY: fresh metadata of `stride * n` bytes; no sequence can run on it before
            // `mode` is published. An empty list: current = begin = its array's offset; word
            // 1 is the list's counter.
            unsafe {
                let h = base.add(cpu * stride + c * HEADER).cast::<u32>();
                h.write(items);
                h.add(2).write(items + initial_capacity(c));
                h.add(3).write(items);
                if armed {
                    let k = counter_for(c);
                    h.add(1).write(k);
                    counters::record_start(cpu, c, k);
                }
            }
        }
    }
    ARMED_AT_START.store(armed, Ordering::Relaxed);
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
/// Budget, read with `objdump -d` on the release `tricolor` binary (x86-64;
/// `cargo build --release -p tricolor-tools`, then `objdump -d target/release/tricolor`):
/// `Tricolor::alloc` for a small request that hits the slab runs 36 instructions from entry to
/// `ret`: 1 copies the size, 6 pick the size class (a bound check and one table load), 3 check
/// the mode (the table and the mode come through one GOT entry, `fast`), 6 read
/// the slab layout (base, count, `__rseq_offset`) and set up the header offset and the
/// counter's constant, 2 register the descriptor, 14 are the sequence (CPU id read as
/// `fs:[offset + 4]`, bound, shift by the constant [`SLAB_SHIFT`], `begin` gate, `current`
/// with the allocation count and its carry test, item, one committing 8-byte store, falling
/// through), 2 test the result (empty or tripped in one compare), 1 clears the canary, 1
/// returns; no register is saved. The hit path saves none wherever it is compiled (inlined
/// into the pair table's loop it is 37 instructions) because `api::alloc` sends every request
/// but the common one out through a single tail call: a slow case that is a call returning
/// into the function (such as the class lookup for an alignment above 8) makes it save three
/// registers and push and pop them on every call. Measured with the free's matching rule
/// (below): a pair takes 5.51 ns against 6.67 ns with the saves
/// (`cargo run --release -p tricolor-tools -- bench --pairs`). What keeps the sequence short:
/// it addresses `struct rseq` through `fs` (4 instructions fewer than through the thread
/// pointer's load), and the slab's indices are absolute (no item-array offset to load and
/// add), the shift a constant and the failure exits out of line (together 7 fewer). Counting
/// allocations (`counters`) costs none: one add of `2^32 - 1` decrements `current` and counts.
/// Heap profiling adds the carry test, on or off (the counter trips the samples, `counters`).
/// No atomic instruction, no lock; the only stores are `rseq_cs`, the commit and the canary.
/// (mimalloc's whole malloc is about 20.)
///
/// # Safety
/// Per-CPU mode is on ([`per_cpu`] returned true), and `class < NUM_CLASSES` (its header
/// offset is inside every slab).
#[inline]
pub(crate) unsafe fn alloc(class: usize) -> *mut u8 {
    // SAFETY: the caller's contract: per-CPU mode is on, so rseq is available and the slabs
    // are built, and `class`'s header is inside them.
    let b = unsafe { rseq::pop(slabs(), list(class)) };
    if b <= rseq::TRIPPED {
        // SAFETY: the caller's contract.
        return unsafe {
            if b == 0 {
                alloc_slow(class)
            } else {
                alloc_tripped(class)
            }
        };
    }
    let b = b as *mut u8;
    // SAFETY: a block of at least 16 bytes, now ours.
    unsafe { block::clear_canary(b) };
    b
}

/// The profiler's countdown and random state in `cpu`'s slab (per-CPU mode, `cpu` below the
/// slab count), for the allocations the lists' counters do not see (`profile::take`). Racy by
/// design: a lost or repeated update moves one sample.
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

/// Refills `class`'s empty list with a batch. Every block goes into the list and the
/// allocation then pops one, counted (and possibly tripping a sample) like any other, so the
/// profiler's sampling sees every allocation. A block that finds the list full (the thread
/// moved to a CPU whose list is not empty) serves the allocation itself, counted in
/// `counters::SLOW`, and the rest go back to the heap.
///
/// # Safety
/// As for [`alloc`].
#[cold]
#[inline(never)]
unsafe fn alloc_slow(class: usize) -> *mut u8 {
    resize::note_miss(class);
    crate::scavenger::tick();
    // SAFETY: the caller's contract.
    match unsafe { refill(class) } {
        // SAFETY: the caller's contract; the list was just filled.
        None => unsafe { alloc(class) },
        Some(p) => p,
    }
}

/// Takes a batch of `class` and pushes it onto the calling CPU's list. `None` when every
/// block went in; else the block to return (null when memory is exhausted), uncounted by the
/// list and counted in `counters::SLOW`.
///
/// # Safety
/// As for [`alloc`].
unsafe fn refill(class: usize) -> Option<*mut u8> {
    let batch = HEAP.remove_array(class);
    let blocks = batch.as_slice();
    if blocks.is_empty() {
        return Some(ptr::null_mut());
    }
    // SAFETY: the batch's blocks are ours, each with its canary set (central invariant 5,
    // transfer invariant 1); they go into the slab as they are, and what does not fit back to
    // the heap, but for the first of those, which is cleared and returned.
    unsafe {
        let pushed = blocks
            .iter()
            .take_while(|&&b| rseq::push(slabs(), list(class), b as usize))
            .count();
        let (&first, rest) = blocks[pushed..].split_first()?;
        if !rest.is_empty() {
            HEAP.insert_batch(class, block::link(rest));
        }
        block::clear_canary(first.cast());
        // An allocation no counting sequence saw (`counters`).
        counters::SLOW[class].fetch_add(1, Ordering::Relaxed);
        Some(first.cast())
    }
}

/// The list's counter tripped: sets it at the next gap (`counter_for`) and, when that worked
/// and the profiler samples through the counters, serves this allocation as a sample. Any
/// other way it is served from the list uncounted (counted in `counters::SLOW`), so a counter
/// still tripped (the thread moved to another CPU) cannot send it round again; that list's
/// next allocation trips and tries again.
///
/// # Safety
/// As for [`alloc`].
#[cold]
#[inline(never)]
unsafe fn alloc_tripped(class: usize) -> *mut u8 {
    if counters::rearm(class, counter_for(class)) && mode() == PER_CPU {
        if let Some(p) = crate::profile::sampler::sample_small(class) {
            return p;
        }
    }
    // SAFETY: the caller's contract.
    unsafe {
        loop {
            let b = rseq::pop_uncounted(slabs(), list(class)) as *mut u8;
            if !b.is_null() {
                counters::SLOW[class].fetch_add(1, Ordering::Relaxed);
                block::clear_canary(b);
                return b;
            }
            // Empty: refill, and pop again (from the list just filled, unless the thread
            // moved on to another empty one).
            if let Some(p) = refill(class) {
                return p;
            }
        }
    }
}

/// Frees a block of `class` that the API layer has checked. Per-CPU mode only.
///
/// Budget, read with `objdump -d` as for [`alloc`]: `Tricolor::dealloc` of a
/// live small block whose list has room runs 67 instructions from entry to `ret`, with no
/// register saved: 1 copies the pointer, 8 test the layout (alignment at most 16, a small
/// size) and pick its size class, 14 look the pagemap up (two levels, the root indexed modulo 2^47), 3
/// compare the span's class byte with the layout's, 10 prove the pointer an object boundary
/// (multiply-shift, multiply back, compare), 3 test the bump mark, 4 compute and test the
/// canary, 4 read the mode and write the canary, 20 are this sequence with its layout reads
/// (as in `alloc`, with the capacity gate), 1 returns. What keeps it there: the alignment's
/// class lookup and the double-free report leave through tail calls (`api`; as calls that
/// return into the function they cost a register pushed and popped and one instruction
/// more); the API layer's check is an inlined fast check with a cold full one behind it
/// (`api`); the span's class byte alone says "Small, of this class" (`span`); the slab's
/// indices are absolute; and the class table, the canary key and the layout share one GOT
/// entry (`fast`). Without these the free is about 88 instructions with 5 registers saved
/// and restored. The check, with the layout's class, is 40 of the 67:
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
