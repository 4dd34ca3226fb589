//! Heap profiles: sampled allocations with their call stacks, written in pprof's format.
//!
//! # Sampling (TCMalloc's and Go's way)
//! On average one allocation per `rate` bytes allocated is sampled (Go's `MemProfileRate`,
//! default 512 KiB), each block of `s` bytes with probability `1 - e^(-s/rate)` whatever came
//! before it, and the profile divides by that probability to estimate the totals without bias
//! (Go's `scaleHeapSample`). Two ways, with the same law:
//! * Small allocations from the per-CPU lists: each list (a class on a CPU) lets `k`
//!   allocations through before the next sample, `k` being an exponential gap of mean `rate`
//!   bytes divided by the class's size (`percpu::counter_for`), so `k` is geometric and each
//!   allocation is sampled independently with the probability above. The gap is kept in the
//!   list's allocation counter, which the allocating sequence already increments: the counter
//!   is set `k` below the value at which the increment carries, and the carry makes the
//!   sequence fail into the sampling path (`percpu::counters`).
//! * Everything else (large allocations, and all allocations with per-thread caches) counts
//!   its bytes down out of line, per CPU (in its slab) or per thread (`sampler::take`), to a
//!   gap drawn the same way.
//!
//! # What it costs
//! While off: one branch on the carry in the allocating sequence, never taken (a counter left
//! alone carries once per 2^32 allocations of its list and is set far off again). While on,
//! the per-CPU fast path is the same instructions; only the sampled allocations cost more
//! (their stack, a page run, the bucket). Frees are unchanged. The figures are in the README.
//! Arming the counters of other CPUs needs `membarrier`'s rseq command (Linux 5.10); where it
//! is refused, a rate in force when the first allocation builds the slabs (the environment's)
//! arms them as they are built, and a rate set later makes small allocations take the
//! out-of-line countdown (`slab::SAMPLING`), much slower ([`sampled_by_counters`] says which).
//!
//! # A sampled allocation is a page run of its own
//! As TCMalloc does, the sampled request is served from the page heap as a Large span marked
//! `span::SAMPLED`, whose record carries the sample's bucket. Freeing it takes the large-block
//! path, which already reads the span: the profile learns of the free at no cost to other
//! frees. A sampled small block costs a page (8 KiB) while it lives: at the default rate, at
//! most 8 KiB per 512 KiB allocated (1.6%), and only while sampling. `malloc_usable_size`
//! reports the page run's size for it, and the statistics count it as a large allocation.
//!
//! # Stacks
//! Unwound by the eh_frame tables every x86-64 object carries, so programs built without
//! frame pointers (Debian's, Rust's release builds) give whole stacks: by a caching unwinder
//! that keeps each call site's rule once libgcc has found its FDE (`cfi`), or by libgcc's
//! `_Unwind_Backtrace` for a stack with a frame it does not follow; by frame pointers with
//! `TRICOLOR_PROFILE_FP=1` (`stack`). Up to `buckets::MAX_FRAMES` return addresses; measured
//! cost in the README. Symbolizing waits for
//! the profile to be written (`pprof`). While a thread samples or writes a profile, its own
//! allocations are not sampled (the unwinder may allocate; the writer does).
//!
//! # Buckets
//! Samples with the same stack and size share a bucket (Go's `bucket`) counting allocations
//! and frees; buckets are never freed, and at most `buckets::MAX_BUCKETS` exist (a sample with
//! a new stack beyond that is not taken).
//!
//! # Writing
//! [`dump`] (C `tc_profile_dump`), `TRICOLOR_PROFILE=path` at exit (`%p` in it becomes the
//! process id; a `.fini_array` entry, so nothing is registered from inside the first
//! `malloc`), and with `TRICOLOR_PROFILE_SIGNAL=1` on each `SIGUSR2` to `path.N` (written by
//! a thread of the profiler's own, woken through a pipe: a signal handler cannot allocate;
//! handler and thread are installed at the first sample, outside every lock; a child after
//! `fork` gets a pipe of its own, and its own thread at its next sample). Files are
//! written under a temporary name and renamed. The file is
//! pprof's `profile.proto` with Go's heap-profile sample types.

pub(crate) mod buckets;
mod cfi;
mod pprof;
pub mod proto;
pub(crate) mod sampler;
mod stack;
pub(crate) mod writer;

pub(crate) use sampler::{alloc_sampled, take};
pub use writer::{dump, encode};

/// The sampling rate: on average one sample per this many bytes allocated; 0 when off.
pub fn rate() -> u64 {
    sampler::rate()
}

/// Sets the sampling rate (Go's `runtime.MemProfileRate = n`) and returns the previous one:
/// `0` stops sampling (blocks already sampled stay in the profile until freed), `1` samples
/// every allocation. A profile written later scales every sample by the rate then in force,
/// as Go's does.
pub fn set_rate(bytes: u64) -> u64 {
    // Decide the front end first: the countdown slots depend on it.
    crate::init::front_end();
    sampler::set_rate(bytes)
}

/// True while small allocations are sampled by the per-CPU lists' counters, at no cost to
/// the fast path; false while sampling is off, with per-thread caches, or where the counters
/// cannot be armed (a kernel without `membarrier`'s rseq command, Linux before 5.10, when the
/// rate is set after the first allocation: small allocations then count down out of line).
/// For diagnostics and tests.
#[doc(hidden)]
pub fn sampled_by_counters() -> bool {
    crate::percpu::sampling_by_counters()
}

/// The sampling epoch: changes whenever the rate is set. A countdown kept outside the
/// allocator (a collector's) starts over when it sees a new epoch.
pub fn epoch() -> u64 {
    sampler::epoch()
}

/// The bytes to allocate before the next sample, drawn as the allocator draws its own
/// (exponential, mean [`rate`]); `None` while sampling is off. For a layer above that
/// allocates from memory of its own (Tricolor's collector, from its spans) and keeps its
/// own countdown, per thread.
pub fn next_sample_gap() -> Option<u64> {
    sampler::next_gap()
}

/// Records a sampled object of `bytes` that a layer above allocated, with the calling
/// thread's stack and `label` (the collector passes the object's type name, which the
/// profile shows as the sample's `type` label). Returns the sample's bucket for
/// [`object_freed`], or `None` when it was not recorded. Labels are told apart by address,
/// so pass each name from one place: equal names at different addresses make separate
/// buckets (pprof readers add them together, so the profile reads the same; it only holds
/// more buckets).
pub fn record_object(bytes: usize, label: &'static str) -> Option<u32> {
    sampler::record_object(bytes, label)
}

/// A sampled object [`record_object`] returned `bucket` for is dead (the allocator's own
/// sampled blocks report their frees here too).
pub fn object_freed(bucket: u32) {
    buckets::free(bucket);
}
