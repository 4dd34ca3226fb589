//! # Tricolor's allocator
//!
//! A size-class allocator in the design of Go's runtime and TCMalloc: front caches over
//! central free lists over one page heap, with every pointer given back checked before it
//! touches a list.
//!
//! ## Layers
//! Bottom to top, one layer a line: a module imports only modules of its own layer or below
//! (`tests/tests/layers.rs` reads this list and checks every `use crate::`/`super::` path of
//! the crate against it; `cargo test -p tricolor-tests --test layers -- --nocapture` prints
//! the import circles). Within a layer modules may call each other. The front end's layer holds
//! the largest circle, seven files: the per-CPU lists and their resizing and counters, the
//! per-thread caches, the scavenger that their slow paths tick and that empties their idle
//! caches, and the profiler's sampler and writer, which the lists' counters trip. The unwinder's
//! call-frame reader, its program interpreter and the stack walk are a circle of three.
//!
//! ```text
//! os: os os::linux
//! sync: sync
//! table: size_class::table
//! slab: slab
//! fast: fast
//! classes: size_class
//! rseq: os::rseq
//! leaves: block misuse knobs meta publish write_once
//! pages: dirty span pagemap page_heap
//! central: central transfer
//! heap: heap
//! unwind: profile::proto profile::stack profile::cfi profile::buckets profile::pprof
//! front: percpu percpu::counters percpu::resize thread_cache scavenger profile::sampler profile::writer
//! fork: fork
//! init: init
//! profile: profile
//! stats: stats stat
//! api: api global
//! ```
//!
//! `size_class::table` is the rule and the constants every layer sizes itself by; `slab` the
//! per-CPU slab layout the sequences (`os::rseq`) shift by; `fast` the one static the fast
//! paths read (the class table, the slab layout, the canary key); `size_class` the lookups
//! through it. `init` decides the front end at the first allocation and registers the
//! thread-exit and `fork` hooks; `profile` is the heap profile's public face over the sampler.
//!
//! ## Data structures
//! * **Pages and spans.** Memory is handled in 8 KiB pages. A *span* is a run of pages that is
//!   either free, holds objects of one size class (a *small* span), or is one page-run
//!   allocation (a *large* span: a request over 32 KiB or aligned beyond a page, a block the
//!   heap profiler sampled, or the pages of a GC span). Each span has a record (`span::Span`)
//!   in metadata memory.
//! * **Pagemap.** Any address → its span record in two dependent loads (`pagemap`). `free`,
//!   `realloc`, `malloc_usable_size` and the misuse checks all start here.
//! * **Size classes.** 67 classes from 8 B to 32 KiB (malloc uses them from 16 B; the 8-byte
//!   class serves GC objects), computed by a rule that keeps rounding
//!   and tail waste within 12.5% (`size_class`).
//! * **Page heap.** Free runs indexed by length for best fit, coalesced on free; memory comes
//!   from 64 MiB-aligned reservations committed on use (`page_heap`).
//! * **Central lists.** Per class, the spans with free objects, under a per-class lock;
//!   objects move to and from front caches in batches (`central`).
//! * **Transfer caches.** Per class, a few whole batches parked between the front caches and
//!   the central lists, so blocks freed on one CPU reach another without touching their spans
//!   (`transfer`).
//! * **Front caches.** Per CPU, per class, a stack of free blocks pushed and popped by
//!   restartable sequences (`percpu`, over `os::rseq`) where glibc has registered rseq;
//!   otherwise per thread, per class, a list of free blocks (`thread_cache`). Decided once per
//!   process; `front_end()` reports which. Per-CPU capacities grow with use and idle lists are
//!   emptied, safely from any CPU (`percpu::resize`).
//!
//! ## Allocation (`api::alloc`)
//! 1. Pick the class from the request size and alignment (one table load); requests that fit
//!    no class become page runs (step 4).
//! 2. Pop a block from this CPU's stack (or this thread's list) for the class: the fast path,
//!    no lock, no atomic.
//! 3. On a miss, take a batch from the central list (lock per class); the central list carves
//!    it from a partially free span, or asks the page heap for a new span.
//! 4. Large: the page heap finds the best-fitting free run (aligned if asked), splitting off
//!    the rest, or commits more of the reservation. Fresh runs are known to be zero, so
//!    `alloc_zeroed` skips clearing them.
//!
//! ## Freeing (`api::free`, `api::dealloc`)
//! 1. Check the pointer (pagemap, span state, object boundary, bump mark, free canary) and
//!    abort with a message on misuse; invariant: no list ever receives a block that is not a
//!    live block of ours.
//! 2. Small: push onto this CPU's stack or this thread's list. A full stack (or a list past
//!    its slow-start limit, or past 4 MiB cached in the thread) sends a batch back to the
//!    central list, which returns a span to the page heap when its last object returns.
//! 3. Large: the page heap marks the run free and merges it with free neighbours.
//!
//! ## Returning memory (`scavenger`, `dirty`)
//! Free pages are dirty (they hold memory) or clean (released, or never touched): one bit per
//! page. A background thread, started once pages have been freed, keeps what the heap holds
//! within 110% of what its spans in use need (and within 95% of `GOMEMLIMIT`), releasing dirty
//! runs with `madvise` from the highest address down at about 1% of one CPU (at once, in
//! 64 MiB steps, when no thread has taken a slow path for a second), and empties idle
//! front and transfer caches once a second. `release_memory()` releases everything now. Reuse
//! needs no system call: under `MADV_DONTNEED` a clean page reads as zero, which `alloc_zeroed`
//! exploits.
//!
//! ## Statistics (`stats`, `stat`)
//! Every mapped byte is in exactly one part: objects in use, free blocks in front, transfer
//! and central caches, span tails, dirty free pages, released pages, metadata. Small
//! allocations are counted per class in the per-CPU lists' committing stores
//! (`percpu::counters`). `stat(name)` reads one figure by a stable name (jemalloc's `mallctl`
//! in spirit).
//!
//! ## Heap profiles (`profile`)
//! While sampling is on (`TRICOLOR_PROFILE`, `profile::set_rate`), one allocation per `rate`
//! bytes on average is served as a page run of its own, its stack recorded in a bucket; its
//! free is seen on the large-block path. While sampling is off the fast path pays one branch,
//! never taken, on the per-CPU list's counter (`profile`'s "What it costs"); the per-thread
//! path compares the mode exactly, which a sampling bit changes. `profile::dump` writes
//! pprof's format.
//!
//! ## Threads and processes
//! A thread's cache is flushed by a `pthread_key_create` destructor when the thread exits;
//! no `thread_local!` with `Drop` is used (registering one allocates). `fork` is safe: the
//! `pthread_atfork` handlers hold every lock across it, and the child abandons the caches of
//! the threads it did not inherit, whose lists it cannot trust (`fork`).

// Under loom only the modelled modules are built; the rest of the crate is what uses them.
#![cfg_attr(loom, allow(dead_code, unused_imports))]

#[cfg(not(loom))]
pub(crate) mod api;
pub(crate) mod block;
#[cfg(not(loom))]
pub(crate) mod central;
#[cfg(not(loom))]
pub(crate) mod dirty;
#[cfg(not(loom))]
pub(crate) mod fast;
#[cfg(not(loom))]
pub(crate) mod fork;
#[cfg(not(loom))]
mod global;
#[cfg(not(loom))]
pub(crate) mod heap;
#[cfg(not(loom))]
pub(crate) mod init;
#[cfg(not(loom))]
pub(crate) mod knobs;
#[cfg(not(loom))]
pub(crate) mod meta;
#[cfg(not(loom))]
pub(crate) mod misuse;
pub(crate) mod os;
#[cfg(not(loom))]
pub(crate) mod page_heap;
#[cfg(not(loom))]
pub(crate) mod pagemap;
#[cfg(not(loom))]
pub(crate) mod percpu;
#[cfg(not(loom))]
pub mod profile;
pub(crate) mod publish;
#[cfg(not(loom))]
pub(crate) mod scavenger;
pub mod size_class;
#[cfg(not(loom))]
pub(crate) mod slab;
#[cfg(not(loom))]
pub(crate) mod span;
#[cfg(not(loom))]
pub mod stat;
#[cfg(not(loom))]
pub(crate) mod stats;
pub(crate) mod sync;
#[cfg(not(loom))]
pub(crate) mod thread_cache;
pub(crate) mod transfer;
pub(crate) mod write_once;

#[cfg(not(loom))]
pub use api::{
    alloc, alloc_pages, alloc_zeroed, dealloc, free, realloc, release_memory, usable_size,
};
#[cfg(not(loom))]
pub use global::Tricolor;
#[cfg(not(loom))]
pub use init::{FrontEnd, front_end};
#[cfg(not(loom))]
pub use knobs::{NO_LIMIT, parse_memory_limit, report_malformed};
#[cfg(not(loom))]
#[cfg(not(loom))]
pub use stat::stat;
#[cfg(not(loom))]
pub use stats::{
    AllocStats, ClassStats, all_class_stats, class_stats, memory_limit, set_memory_limit, stats,
};

/// Internals for integration tests (Go's `export_test.go`); not a stable API.
#[cfg(all(feature = "testing", not(loom)))]
pub mod testing {
    /// Committed bytes and free bytes in the process page heap.
    pub fn page_heap_bytes() -> (usize, usize) {
        let s = crate::heap::HEAP.pages.stats();
        (s.committed, s.free_bytes)
    }
    /// Checks the page heap's invariants (panics on a violation).
    pub fn validate_page_heap() {
        crate::heap::HEAP.pages.validate();
    }
    /// Empties the calling thread's cache into the central lists.
    pub fn flush_thread_cache() {
        crate::thread_cache::flush_current();
    }
    /// Empties every front cache this thread can reach (its own per-thread cache, or every
    /// CPU's slab) and every transfer cache. Returns the bytes moved from slabs and transfer
    /// caches.
    pub fn drain_front_caches() -> usize {
        crate::init::ensure();
        crate::scavenger::empty_caches()
    }
    /// One pass of the idle reclaimer (normally run from the slow paths once a second).
    /// Returns the bytes moved to the central lists.
    pub fn reclaim_idle() -> usize {
        crate::init::ensure();
        crate::percpu::reclaim_idle()
    }
    /// Blocks held and capacity of the per-CPU list of size class `class` on `cpu`; `None`
    /// outside per-CPU mode.
    pub fn percpu_list(cpu: usize, class: usize) -> Option<(u32, u32)> {
        crate::init::ensure();
        crate::percpu::list_state(cpu, class)
    }
    /// Batches parked in the transfer cache of `class`.
    pub fn transfer_batches(class: usize) -> usize {
        crate::heap::HEAP.transfer[class].parked_batches()
    }
    /// Bytes held in front caches: the calling thread's cache, plus every CPU's slab.
    pub fn front_cache_bytes() -> usize {
        crate::init::ensure();
        crate::thread_cache::current_bytes() + crate::percpu::cached_bytes()
    }
    /// Bytes held in the calling thread's cache.
    pub fn thread_cache_bytes() -> usize {
        crate::thread_cache::current_bytes()
    }
    /// Moves the calling thread to `cpu` (false if refused); `None` lets it run anywhere.
    pub fn pin(cpu: Option<usize>) -> bool {
        match cpu {
            Some(c) => crate::os::rseq::pin_to(c),
            None => {
                crate::os::rseq::unpin();
                true
            }
        }
    }
    /// True when block `p` (of 16 bytes or more, ours) carries its free canary: a block handed
    /// to the user must not.
    ///
    /// # Safety
    /// `p` is a readable block of at least 16 bytes.
    pub unsafe fn carries_free_canary(p: *const u8) -> bool {
        // SAFETY: the caller's contract.
        unsafe { crate::block::has_canary(p) }
    }
    /// Caches owned by running threads (the registry's live list).
    pub fn live_thread_caches() -> usize {
        crate::thread_cache::live_caches()
    }
}
