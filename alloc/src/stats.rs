//! Statistics: where every byte Tricolor has mapped is (Go's `/memory/classes/...`).
//!
//! # The partition
//! `mapped` = heap pages made read-write + metadata, and it splits into:
//! ```text
//! mapped ─┬─ small spans ─┬─ in_use_small     objects the program holds (at their class size)
//!         │               ├─ cached_front     free blocks in per-CPU slabs or thread caches
//!         │               ├─ cached_transfer  free blocks parked in transfer caches
//!         │               ├─ cached_central   free object slots in spans (the central lists)
//!         │               └─ span_waste       span tails too short for one more object
//!         ├─ in_use_large                     Large spans: big or sampled blocks, GC spans
//!         ├─ free_dirty                       free pages that still hold memory
//!         ├─ released                         free pages returned to the OS or never touched
//!         └─ metadata                         span records, pagemap leaves, slabs, caches
//! ```
//! RSS ≈ everything but `released`, minus pages never touched (a fresh span or metadata
//! mapping costs RSS only where written), plus the program's own image, stacks and libraries.
//!
//! # Consistency and cost
//! The parts come from one short lock hold per structure (page heap, each central list, each
//! transfer cache) and racy reads of the front caches' lengths, so reading them never stops
//! allocation for more than a lock hold of about a microsecond. When no other thread allocates
//! during the call the parts add up to `mapped` exactly (a test checks it); otherwise they may
//! differ by what moved meanwhile. `in_use_small` is what is left of the small spans once the
//! free blocks are counted (TCMalloc's method), so it never counts a block twice.
//!
//! # Counters
//! Small allocations are counted per class at no cost to the per-CPU fast path (the count
//! rides in the list's committing store: `percpu::counters`; the per-thread fallback pays one
//! add). Small frees are derived: allocations minus objects in use, so they are exact when
//! nothing allocates during the call and never count a block twice. The large-object
//! counters are exact.

use crate::heap::HEAP;
use crate::init::{self, FrontEnd};
use crate::knobs;
use crate::percpu;
use crate::scavenger::SCAVENGER;
use crate::size_class::{CLASSES, NUM_CLASSES, PAGE_SIZE};
use crate::sync::Ordering;
use crate::thread_cache;

/// Tricolor's memory, partitioned (module docs), plus counters. `#[repr(C)]`: the C API
/// returns the same struct (`tc_alloc_stats_t`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AllocStats {
    /// Every byte mapped read-write: the sum of the nine parts below (exactly, when nothing
    /// allocates concurrently).
    pub mapped: u64,
    /// Small objects the program holds, at their size class's size.
    pub in_use_small: u64,
    /// Bytes of every Large span in use (whole pages): blocks over `MAX_SMALL_SIZE` (32 KiB) or
    /// aligned beyond a page, blocks the heap profiler sampled (each on a span of its own), and
    /// the collector's GC spans (`alloc_pages`). The `large_*` counters count the same spans.
    pub in_use_large: u64,
    /// Free blocks in the front caches (per-CPU slabs, or per-thread caches).
    pub cached_front: u64,
    /// Free blocks parked in the transfer caches.
    pub cached_transfer: u64,
    /// Free object slots in small spans, which the central lists hand out.
    pub cached_central: u64,
    /// The tails of small spans too short to hold one more object.
    pub span_waste: u64,
    /// Free pages still holding memory (the scavenger's work, including pages being released).
    pub free_dirty: u64,
    /// Free pages holding no memory: returned to the OS, or never touched.
    pub released: u64,
    /// Metadata: span records, pagemap leaves, per-CPU slabs, thread caches.
    pub metadata: u64,
    /// Bytes ever returned to the OS (scavenger, memory limit and `release_memory`).
    pub released_total: u64,
    /// Bytes the background scavenger returned (thread or inline checks).
    pub scavenger_released: u64,
    /// CPU time the scavenger thread has used, in nanoseconds.
    pub scavenger_cpu_ns: u64,
    /// Small allocations ever made (all classes).
    pub small_allocs: u64,
    /// Small allocations ever freed: `small_allocs` minus the small objects in use.
    pub small_frees: u64,
    /// Large allocations ever made.
    pub large_allocs: u64,
    /// Large allocations ever freed.
    pub large_frees: u64,
    /// Bytes the large allocations took (whole pages).
    pub large_bytes_allocated: u64,
    /// The memory limit in bytes (`i64::MAX` when off).
    pub memory_limit: i64,
    /// The front end: 0 per-CPU caches, 1 per-thread caches.
    pub front_end: u32,
    /// 1 when pages are released with `MADV_FREE`, 0 with `MADV_DONTNEED`.
    pub madv_free: u32,
    /// The most bytes live large allocations held at once (whole pages; glibc's `max mmap
    /// bytes`).
    pub large_peak_bytes: u64,
    /// The most large allocations live at once (glibc's `max mmap regions`).
    pub large_peak_count: u64,
}

/// One size class's figures (`tc_class_stats_t` in C).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// The class's object size.
    pub size: u64,
    /// Spans of the class.
    pub spans: u64,
    /// Bytes in those spans.
    pub span_bytes: u64,
    /// Objects the program holds.
    pub in_use: u64,
    /// Free blocks in front caches.
    pub cached_front: u64,
    /// Free blocks in the transfer cache.
    pub cached_transfer: u64,
    /// Free object slots in the spans (the central list's).
    pub free_slots: u64,
    /// Allocations of the class ever made.
    pub allocs: u64,
    /// Allocations of the class ever freed: `allocs` minus `in_use`.
    pub frees: u64,
}

/// Blocks of each class in the front caches (racy).
fn front_blocks() -> [usize; NUM_CLASSES] {
    let mut front = [0; NUM_CLASSES];
    if init::per_cpu() {
        percpu::cached_by_class(&mut front);
    } else {
        thread_cache::cached_by_class(&mut front);
    }
    front
}

/// Allocations of each class ever made, both front ends together (their counts are zero in
/// the mode not in use).
fn alloc_counts() -> [u64; NUM_CLASSES] {
    let mut n = [0; NUM_CLASSES];
    percpu::allocs_by_class(&mut n);
    thread_cache::allocs_by_class(&mut n);
    n
}

fn class_figures(class: usize, front: usize, allocs: u64) -> ClassStats {
    let sc = &CLASSES[class];
    let c = HEAP.central.stats(class);
    let transfer = HEAP.transfer[class].parked_batches() * sc.batch as usize;
    // Racy reads can see a block in a cache and also out of its span; never count more
    // cached blocks than the spans have handed out.
    let front = front.min(c.allocated);
    let transfer = transfer.min(c.allocated - front);
    let slots = c.spans * sc.objects as usize;
    let in_use = (c.allocated - front - transfer) as u64;
    ClassStats {
        size: sc.size as u64,
        spans: c.spans as u64,
        span_bytes: (c.spans * sc.pages as usize * PAGE_SIZE) as u64,
        in_use,
        cached_front: front as u64,
        cached_transfer: transfer as u64,
        free_slots: (slots - c.allocated) as u64,
        allocs,
        frees: allocs.saturating_sub(in_use),
    }
}

/// Every size class's figures, from one pass over the front caches and the counters (reading
/// them class by class with [`class_stats`] repeats both for each).
pub fn all_class_stats() -> [ClassStats; NUM_CLASSES] {
    let front = front_blocks();
    let allocs = alloc_counts();
    core::array::from_fn(|class| class_figures(class, front[class], allocs[class]))
}

/// Reads the statistics (module docs for their consistency and cost).
pub fn stats() -> AllocStats {
    let mut s = AllocStats::default();
    for (class, c) in all_class_stats().into_iter().enumerate() {
        s.small_allocs += c.allocs;
        s.small_frees += c.frees;
        s.in_use_small += c.in_use * c.size;
        s.cached_front += c.cached_front * c.size;
        s.cached_transfer += c.cached_transfer * c.size;
        s.cached_central += c.free_slots * c.size;
        // Every slot is in use, cached or free: what the slots leave over is the tail.
        s.span_waste += c.span_bytes - c.spans * u64::from(CLASSES[class].objects) * c.size;
    }
    let p = HEAP.pages.stats();
    let meta = HEAP.pages.meta.mapped();
    s.mapped = (p.committed + meta) as u64;
    s.in_use_large = p.large_bytes as u64;
    s.free_dirty = (p.dirty_bytes + p.releasing_bytes) as u64;
    s.released = (p.free_bytes - p.dirty_bytes) as u64;
    s.metadata = meta as u64;
    s.released_total = p.released_total;
    s.scavenger_released = SCAVENGER.released.load(Ordering::Relaxed);
    s.scavenger_cpu_ns = SCAVENGER.cpu_ns.load(Ordering::Relaxed);
    s.large_allocs = p.large_allocs;
    s.large_frees = p.large_frees;
    s.large_bytes_allocated = p.large_bytes_allocated;
    s.large_peak_bytes = p.large_peak_bytes as u64;
    s.large_peak_count = p.large_peak_count;
    s.memory_limit = knobs::memory_limit();
    s.front_end = match init::front_end() {
        FrontEnd::PerCpu => 0,
        FrontEnd::PerThread => 1,
    };
    s.madv_free = u32::from(knobs::get().madv_free);
    s
}

/// The figures of size class `class` (0 ≤ class < `size_class::NUM_CLASSES`), or `None`.
pub fn class_stats(class: usize) -> Option<ClassStats> {
    (class < NUM_CLASSES)
        .then(|| class_figures(class, front_blocks()[class], alloc_counts()[class]))
}

impl AllocStats {
    /// The sum of the parts of `mapped`.
    pub fn parts(&self) -> u64 {
        self.in_use_small
            + self.in_use_large
            + self.cached_front
            + self.cached_transfer
            + self.cached_central
            + self.span_waste
            + self.free_dirty
            + self.released
            + self.metadata
    }
}

/// The memory limit in bytes (`i64::MAX`: none). Set from `GOMEMLIMIT` at start.
pub fn memory_limit() -> i64 {
    knobs::memory_limit()
}

/// Sets the memory limit, returning the previous one; a negative value only reads it (Go's
/// `debug.SetMemoryLimit`). The scavenger keeps what Tricolor holds within 95% of it, and the
/// page heap releases memory synchronously before it would grow past it; the limit is soft:
/// allocations beyond it still succeed.
pub fn set_memory_limit(limit: i64) -> i64 {
    knobs::set_memory_limit(limit)
}
