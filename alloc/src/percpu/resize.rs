//! Changing a CPU's lists from outside its restartable sequences: growing a list's capacity,
//! and emptying the lists of a CPU that no longer uses them. Both may act on another CPU's
//! slab, on which a thread may be inside a sequence at that very moment.
//!
//! # The protocol (TCMalloc's, on the documented rseq and membarrier ABIs)
//! Under [`RESIZE`] (one lock for all such operations; they are rare):
//! 1. **Lock** the headers to change: store `end = 0` (every push fails: `current >= 0`)
//!    and `begin = u32::MAX` (every pop fails: `current <= begin`).
//! 2. **Fence** the CPU: `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ, FLAG_CPU, cpu)`
//!    restarts any sequence of ours running there, and orders our stores before whatever runs
//!    there next. A sequence that committed before the fence has its store visible to us after
//!    it; one that was running is restarted and reads the locked header; one that starts later
//!    reads the locked header. So after the fence no sequence can commit to these lists: we own
//!    `current` and `items` (percpu rule 1).
//! 3. Do the work: read the items below `current`, store a new `current`, pick the new
//!    capacity.
//! 4. **Unlock**: store `end` (the array's offset plus the capacity), then `begin` (the array's
//!    offset), *after* every other store. Sequences read their gate (`end` for push, `begin`
//!    for pop) before `current` (`os::rseq`), and
//!    x86-64 keeps stores in order and loads in order, so a sequence that sees an open gate
//!    also sees our `current` and items. (aarch64 would need acquire loads in the sequences;
//!    there is no aarch64 build yet.)
//!
//! Only the holder of [`RESIZE`] writes `end` and `begin` (percpu rule 2), so a
//! sequence can never reopen a gate behind our back: that is why growth goes through this
//! protocol too instead of a sequence of its own. If the fence fails (a kernel without the
//! command, or `membarrier` forbidden), the headers are restored untouched and nothing is done;
//! capacities then start and stay at their maximum (`initial_capacity`).

use super::{initial_capacity, layout, per_cpu, slabs};
use crate::block::Batch;
use crate::heap::HEAP;
use crate::os::{self, rseq};
use crate::size_class::{CLASSES, NUM_CLASSES};
use crate::slab::{HEADER, ITEMS, SLAB_SHIFT, max_capacity};
use crate::sync::{AtomicPtr, AtomicU32, Mutex, Ordering};
use core::ptr;

/// Serialises every operation here; the fork handlers hold it so that no header stays locked
/// in a child.
pub(crate) static RESIZE: Mutex<()> = Mutex::new(());

/// Per-CPU miss counts, for telling idle lists from busy ones.
struct CpuCounts {
    /// Slow-path visits (empty or full list) per class; relaxed, lossy (a hint).
    misses: [AtomicU32; NUM_CLASSES],
    /// `misses` as the previous reclaim pass saw it (written under [`RESIZE`]).
    seen: [AtomicU32; NUM_CLASSES],
}

/// `n` `CpuCounts`, in zeroed metadata (zero is a valid `AtomicU32`).
static COUNTS: AtomicPtr<CpuCounts> = AtomicPtr::new(ptr::null_mut());

/// Allocates the counters for `n` CPUs. False when metadata is exhausted.
pub(super) fn init(n: usize) -> bool {
    super::zeroed_records(&COUNTS, n)
}

fn counts(cpu: usize) -> &'static CpuCounts {
    // SAFETY: `resize::init` allocated `n` zeroed records before per-CPU mode was published,
    // and
    // callers pass `cpu < n`; metadata is never freed.
    unsafe { &*COUNTS.load(Ordering::Relaxed).add(cpu) }
}

/// A class's header in a CPU's slab, seen as atomics: the sequences access the same words
/// with plain loads and stores of the same size, which these accesses neither tear nor are
/// torn by, except the allocating sequence's commit, one aligned 8-byte store of `current`
/// and `allocs`, which x86-64 makes single-copy atomic: a 4-byte read of either half sees it
/// whole. This side writes `current` only while the header is locked and fenced (no sequence
/// runs on it then), and `allocs` only so, to arm the profiler's samples (`counters`). Its
/// accessors speak in list positions and capacities; the header's absolute word offsets
/// (`percpu`) stay inside this type.
pub(super) struct Header {
    at: *mut u32,
    /// The class's item array's offset (`ITEMS[class]`).
    items: u32,
}

impl Header {
    pub(super) fn at(s: &rseq::Slabs, cpu: usize, class: usize) -> Self {
        assert!(cpu < s.n && class < NUM_CLASSES);
        Header {
            // SAFETY: inside the slabs (`cpu < n`, `class < NUM_CLASSES`).
            at: unsafe { s.base.add((cpu << SLAB_SHIFT) + class * HEADER) }.cast(),
            items: ITEMS[class],
        }
    }
    fn field(&self, i: usize) -> &AtomicU32 {
        // SAFETY: a live, aligned u32 of the slab metadata (never freed); concurrent accesses
        // are the sequences' same-size plain accesses (see the type's comment).
        unsafe { AtomicU32::from_ptr(self.at.add(i)) }
    }
    /// Blocks in the list (racy unless the header is locked and fenced).
    fn len(&self) -> u32 {
        self.field(0)
            .load(Ordering::Relaxed)
            .saturating_sub(self.items)
    }
    /// Sets the list's length. The header is locked and fenced.
    fn set_len(&self, len: u32) {
        self.field(0).store(self.items + len, Ordering::Relaxed);
    }
    /// The list's allocation count, modulo 2^32 (`counters`).
    pub(super) fn allocs(&self) -> &AtomicU32 {
        self.field(1)
    }
    /// The list's capacity (0 while the header is locked).
    fn capacity(&self) -> u32 {
        self.field(2)
            .load(Ordering::Relaxed)
            .saturating_sub(self.items)
    }
    /// Protocol step 1: every push and pop on this list fails from now on.
    fn lock(&self) {
        self.field(2).store(0, Ordering::Relaxed);
        self.field(3).store(u32::MAX, Ordering::Relaxed);
    }
    /// Protocol step 4: reopens the list with `capacity`, the gates stored last.
    fn unlock(&self, capacity: u32) {
        self.field(2)
            .store(self.items + capacity, Ordering::Release);
        self.field(3).store(self.items, Ordering::Release);
    }
    /// Class `class`'s item array in `cpu`'s slab.
    fn items(s: &rseq::Slabs, cpu: usize, class: usize) -> *mut usize {
        let at = ITEMS[class] as usize * 8;
        // SAFETY: `ITEMS` offsets are inside a slab; `cpu < n` (asserted by callers' `at`).
        unsafe { s.base.add((cpu << SLAB_SHIFT) + at) }.cast()
    }
}

/// Fences `cpu` (protocol step 2), registering again if the kernel forgot us (a child after
/// `fork` may need it).
fn fence(cpu: usize) -> bool {
    os::rseq_fence(cpu) || (os::register_rseq_fence() && os::rseq_fence(cpu))
}

/// Runs `work` with the lists of the classes in `mask` on `cpu` locked and fenced (protocol
/// steps 1 to 4). `work` gets the capacities to store when unlocking, initialised to the
/// current ones. False, with nothing changed, when the fence fails. Caller holds [`RESIZE`].
pub(super) fn with_locked(
    s: &rseq::Slabs,
    cpu: usize,
    mask: u128,
    work: impl FnOnce(&mut [u32]),
) -> bool {
    let classes = || (0..NUM_CLASSES).filter(move |c| mask >> c & 1 == 1);
    let mut caps = [0u32; NUM_CLASSES];
    for c in classes() {
        let h = Header::at(s, cpu, c);
        caps[c] = h.capacity();
        h.lock();
    }
    let fenced = fence(cpu);
    if fenced {
        work(&mut caps);
    }
    for c in classes() {
        Header::at(s, cpu, c).unlock(caps[c]);
    }
    fenced
}

/// Records a slow-path visit for `class` on the calling thread's CPU.
pub(super) fn note_miss(class: usize) {
    let s = slabs();
    // SAFETY: the layout carries `detect`'s offset.
    let cpu = unsafe { rseq::current_cpu(s.rseq_offset) };
    if cpu < s.n {
        let m = &counts(cpu).misses[class];
        // Not an atomic add: a lost count only delays a shrink (lossy by design).
        m.store(m.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }
}

/// Grows `class`'s list on the calling thread's CPU by a batch, up to [`max_capacity`]. False
/// when it is already there, capacities are fixed, or another resize is running (we do not
/// wait: the caller falls back to the central list).
pub(super) fn grow(class: usize) -> bool {
    if !layout().resizable.load(Ordering::Relaxed) {
        return false;
    }
    let s = slabs();
    // SAFETY: the layout carries `detect`'s offset.
    let cpu = unsafe { rseq::current_cpu(s.rseq_offset) };
    if cpu >= s.n {
        return false;
    }
    let max = max_capacity(class);
    // A list at its maximum (the usual case once a workload has run a while) is seen without
    // the lock: `RESIZE` is one word for every CPU, and a compare-and-swap on it at every
    // overflow would move its cache line between the CPUs of producer/consumer workloads
    // (measured: `prodcons` takes 7-10% longer with it;
    // `cargo run --release -p tricolor-tools -- bench --workload prodcons`). The capacity is
    // read again under the lock.
    if Header::at(&s, cpu, class).capacity() >= max {
        return false;
    }
    let Some(_g) = RESIZE.try_lock() else {
        return false;
    };
    let cap = Header::at(&s, cpu, class).capacity();
    if cap >= max {
        return false;
    }
    with_locked(&s, cpu, 1 << class, |caps| {
        caps[class] = (cap + CLASSES[class].batch).min(max);
    })
}

/// Empties the lists of the classes in `mask` on `cpu` into the central lists and shrinks
/// them to their initial capacity. Returns the bytes moved. Caller holds [`RESIZE`].
fn drain(s: &rseq::Slabs, cpu: usize, mask: u128) -> usize {
    let mut lists = [const { Batch::EMPTY }; NUM_CLASSES];
    with_locked(s, cpu, mask, |caps| {
        for (c, list) in lists.iter_mut().enumerate() {
            if mask >> c & 1 == 0 {
                continue;
            }
            let h = Header::at(s, cpu, c);
            let items = Header::items(s, cpu, c);
            for i in 0..h.len() as usize {
                // SAFETY: the list's `len` items are free blocks of class `c` (percpu slab
                // layout), ours now that the list is locked and fenced.
                unsafe {
                    let b = *items.add(i) as *mut crate::block::FreeBlock;
                    (*b).next = list.head;
                    list.head = b;
                }
                list.count += 1;
            }
            h.set_len(0);
            caps[c] = initial_capacity(c);
        }
    });
    let mut bytes = 0;
    for (c, list) in lists.into_iter().enumerate() {
        if list.count > 0 {
            bytes += list.count * CLASSES[c].size as usize;
            // SAFETY: blocks taken from a slab: free blocks of class `c` with their canaries.
            unsafe { HEAP.central.insert_batch(&HEAP.pages, c, list) };
        }
    }
    bytes
}

/// One reclaim pass: on every CPU, empties and shrinks each list that had no miss since the
/// previous pass (and is not already empty at its initial capacity), then empties the
/// transfer caches that saw no traffic. Returns the bytes moved to the central lists, from
/// which whole spans go back to the page heap. A list in steady use without misses is emptied
/// too; it costs that CPU one refill.
pub(crate) fn reclaim_idle() -> usize {
    let _g = RESIZE.lock();
    // Once a second (the scavenger's pace): keeps the 32-bit allocation counts from wrapping
    // unseen (`counters`).
    super::counters::fold();
    let mut bytes = 0;
    if per_cpu() && layout().resizable.load(Ordering::Relaxed) {
        let s = slabs();
        for cpu in 0..s.n {
            let k = counts(cpu);
            let mut mask = 0u128;
            for c in 0..NUM_CLASSES {
                let m = k.misses[c].load(Ordering::Relaxed);
                let idle = m == k.seen[c].swap(m, Ordering::Relaxed);
                let h = Header::at(&s, cpu, c);
                let holds = h.len() > 0 || h.capacity() > initial_capacity(c);
                if idle && holds {
                    mask |= 1 << c;
                }
            }
            if mask != 0 {
                bytes += drain(&s, cpu, mask);
            }
        }
    }
    bytes + HEAP.reclaim_transfer(false)
}

/// Empties every CPU's lists and every transfer cache into the central lists (for releasing
/// memory now, and for tests). Returns the bytes moved.
pub(crate) fn drain_all() -> usize {
    let _g = RESIZE.lock();
    let mut bytes = 0;
    if per_cpu() && layout().resizable.load(Ordering::Relaxed) {
        let s = slabs();
        let all = (1u128 << NUM_CLASSES) - 1;
        for cpu in 0..s.n {
            bytes += drain(&s, cpu, all);
        }
    }
    bytes + HEAP.reclaim_transfer(true)
}

/// Blocks in a list and its capacity, read racily (statistics and tests).
pub(crate) fn racy_list(s: &rseq::Slabs, cpu: usize, class: usize) -> (u32, u32) {
    let h = Header::at(s, cpu, class);
    (h.len(), h.capacity())
}
