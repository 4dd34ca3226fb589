//! The countdown to the next sample, and the sampled allocation itself (module docs of
//! `profile`).
//!
//! Small allocations from the per-CPU lists are sampled by the lists' counters
//! (`percpu::counters`). The countdowns here serve the rest: large allocations, and every
//! allocation with per-thread caches. The per-CPU ones live in the slabs (`slab::SAMPLER`).
//! Invariant: a countdown is written only by a thread that read its CPU as its own a moment
//! before (or, per thread, by that thread); a lost or repeated update moves one sample, never
//! memory. `QUIET` is set on a thread for as long as it samples or writes a profile, and a
//! quiet thread's allocations are never sampled: no recursion into the unwinder or the bucket
//! lock.

use super::{buckets, stack, writer};
use crate::heap::HEAP;
use crate::size_class::{CLASSES, PAGE_SHIFT, PAGE_SIZE};
use crate::span::{SAMPLED, SpanState};
use crate::sync::{AtomicU64, Mutex, Ordering};
use core::cell::Cell;
use core::ptr;

/// Bytes per sample; 0 while sampling is off.
static RATE: AtomicU64 = AtomicU64::new(0);

/// Bumped by every [`set_rate`]: a countdown kept outside the allocator (a collector's) starts
/// over when it sees a new epoch.
static EPOCH: AtomicU64 = AtomicU64::new(0);

/// Guards the seeding of the per-CPU countdowns ([`init_slots`]); true once they are seeded.
pub(crate) static INIT: Mutex<bool> = Mutex::new(false);

/// The sampling rate: on average one sample per this many bytes allocated; 0 when off.
pub(crate) fn rate() -> u64 {
    RATE.load(Ordering::Relaxed)
}

/// The sampling epoch: changes whenever the rate is set.
pub(crate) fn epoch() -> u64 {
    EPOCH.load(Ordering::Acquire)
}

/// Sets the rate (`profile::set_rate`, with the front end decided) and returns the previous
/// one.
pub(crate) fn set_rate(bytes: u64) -> u64 {
    let old = RATE.swap(bytes, Ordering::Relaxed);
    EPOCH.fetch_add(1, Ordering::AcqRel);
    init_slots();
    crate::percpu::set_sampling(bytes > 0);
    old
}

/// Puts the environment's rate in force while the front end is being built, before
/// [`set_rate`] starts sampling with it (`init::decide`: the per-CPU lists' counters are
/// armed as they are built).
pub(crate) fn preset_rate(bytes: u64) {
    RATE.store(bytes, Ordering::Relaxed);
}

/// `fork`'s prepare handler: the profiler's locks, before every other allocator lock.
pub(crate) fn lock_for_fork() {
    INIT.lock_for_fork();
    buckets::INDEX.lock_for_fork();
}

/// Releases what [`lock_for_fork`] took.
///
/// # Safety
/// The calling thread ran [`lock_for_fork`] (before the fork, parent or child side).
pub(crate) unsafe fn unlock_after_fork() {
    // SAFETY: the caller's contract: this thread holds both.
    unsafe {
        buckets::INDEX.unlock_after_fork();
        INIT.unlock_after_fork();
    }
}

std::thread_local! {
    /// The countdown of a thread that has no per-CPU slab (per-thread caches).
    static THREAD: Cell<(i64, u64)> = const { Cell::new((0, 0)) };
    /// Set while this thread samples or writes a profile (module invariant).
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Seeds every CPU's countdown in the slabs (once; per-CPU mode only), each at its own draw.
pub(crate) fn init_slots() {
    let Some(n) = crate::percpu::cpu_slots() else {
        return;
    };
    let mut done = INIT.lock();
    if *done {
        return;
    }
    let rate = RATE
        .load(Ordering::Relaxed)
        .max(crate::knobs::DEFAULT_PROFILE_RATE);
    for cpu in 0..n {
        if let Some((left, rng)) = crate::percpu::sampler_record(cpu) {
            rng.store(seed(cpu as u64), Ordering::Relaxed);
            left.store(draw_shared(rng, rate), Ordering::Relaxed);
        }
    }
    *done = true;
}

/// A nonzero seed: the kernel's randomness, else the clock, mixed with `salt`.
fn seed(salt: u64) -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: getrandom into a local buffer of 8 bytes.
    let got = unsafe { libc::getrandom(b.as_mut_ptr().cast(), 8, libc::GRND_NONBLOCK) };
    let r = if got == 8 {
        u64::from_ne_bytes(b)
    } else {
        crate::os::now_ns()
    };
    (r ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1
}

/// The next gap in bytes: exponential with mean `rate` (Go's `fastexprand`), at least 1;
/// advances the xorshift64* `state`.
fn draw(state: &mut u64, rate: u64) -> i64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    gap(x.wrapping_mul(0x2545_f491_4f6c_dd1d), rate)
}

/// [`draw`] from a CPU's random state in its slab (racy by design, module docs).
fn draw_shared(rng: &AtomicU64, rate: u64) -> i64 {
    let mut state = rng.load(Ordering::Relaxed);
    let g = draw(&mut state, rate);
    rng.store(state, Ordering::Relaxed);
    g
}

/// [`draw`] from the calling thread's random state (seeded on first use).
fn draw_thread(t: &Cell<(i64, u64)>, rate: u64) -> i64 {
    let (left, mut state) = t.get();
    if state == 0 {
        state = seed(t as *const _ as u64);
    }
    let g = draw(&mut state, rate);
    t.set((left, state));
    g
}

/// The gap for the random word `r`: `-ln(u) * rate` with `u` uniform in (0, 1].
fn gap(r: u64, rate: u64) -> i64 {
    if rate <= 1 {
        return 1;
    }
    let u = ((r >> 11) + 1) as f64 / (1u64 << 53) as f64;
    ((-u.ln() * rate as f64) as i64).clamp(1, i64::MAX / 2)
}

/// Counts `bytes` (an allocation's size as the heap will hold it) down; true when this
/// allocation is to be sampled. For the allocations the per-CPU lists' counters do not see
/// (large ones, per-thread caches, and small ones while the counters cannot be armed). Called
/// only while sampling is on.
pub(crate) fn take(bytes: usize) -> bool {
    let rate = RATE.load(Ordering::Relaxed);
    if rate == 0 {
        return false;
    }
    if let Some((left, rng)) = crate::percpu::current_cpu().and_then(crate::percpu::sampler_record)
    {
        let l = left.load(Ordering::Relaxed) - bytes as i64;
        if l > 0 {
            left.store(l, Ordering::Relaxed);
            return false;
        }
        left.store(draw_shared(rng, rate), Ordering::Relaxed);
        return !quiet();
    }
    THREAD.with(|t| {
        let (left, state) = t.get();
        let left = left - bytes as i64;
        if left > 0 {
            t.set((left, state));
            return false;
        }
        let next = draw_thread(t, rate);
        t.set((next, t.get().1));
        !quiet()
    })
}

/// A per-CPU list's counter tripped and was set at its next gap (`percpu::counters`): this
/// allocation of `class` is the sample, served as a page run of its own, unless sampling is
/// off or the thread is quiet. `None` when not sampled (the caller allocates as usual).
pub(crate) fn sample_small(class: usize) -> Option<*mut u8> {
    if RATE.load(Ordering::Relaxed) == 0 || quiet() {
        return None;
    }
    // The class alone sizes it: the page run is page-aligned (every alignment a size class
    // serves), and `alloc_zeroed` clears the requested bytes itself.
    alloc_sampled(CLASSES[class].size as usize, 1, Some(class), false)
}

fn quiet() -> bool {
    QUIET.with(Cell::get)
}

/// Marks the calling thread quiet until dropped (module invariant).
pub(crate) struct Quiet(bool);

impl Quiet {
    pub(crate) fn enter() -> Quiet {
        Quiet(QUIET.with(|q| q.replace(true)))
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        QUIET.with(|q| q.set(self.0));
    }
}

/// Serves a sampled request of `size` bytes aligned to `align` (`class` when it is small) as
/// a page run of its own, recording its stack. `None` when the sample cannot be taken (no
/// room for a new bucket, or no memory): the caller then allocates as usual.
pub(crate) fn alloc_sampled(
    size: usize,
    align: usize,
    class: Option<usize>,
    zero: bool,
) -> Option<*mut u8> {
    let _quiet = Quiet::enter();
    let pages = size.div_ceil(PAGE_SIZE).max(1);
    let align_pages = (align >> PAGE_SHIFT).max(1);
    // The bytes the heap would hold for the request: its class's size, or whole pages.
    let bytes = class.map_or(pages * PAGE_SIZE, |c| CLASSES[c].size as usize);
    let bucket = record_here(bytes, "")?;
    let Some(run) = HEAP
        .pages
        .alloc(pages, align_pages, SpanState::Large, SAMPLED)
    else {
        buckets::unrecord(bucket);
        return None;
    };
    // SAFETY: a fresh Large span, ours until we return its start.
    let span = unsafe { run.span.as_ref() };
    span.set_sample(bucket);
    let start = span.start() as *mut u8;
    if zero && !run.zeroed {
        // SAFETY: the run is committed and at least `size` bytes.
        unsafe { ptr::write_bytes(start, 0, size) };
    }
    writer::after_sample();
    Some(start)
}

/// Draws the next gap for a countdown kept elsewhere (a collector's mutator), from the
/// calling thread's random state; `None` while sampling is off.
pub(crate) fn next_gap() -> Option<u64> {
    let rate = RATE.load(Ordering::Relaxed);
    if rate == 0 {
        return None;
    }
    Some(THREAD.with(|t| draw_thread(t, rate)) as u64)
}

/// Records a sample of an object a layer above allocated (`bytes`, labelled `label`) with
/// the calling thread's stack; its bucket, or `None` (quiet thread, or no room).
pub(crate) fn record_object(bytes: usize, label: &'static str) -> Option<u32> {
    if quiet() {
        return None;
    }
    let _quiet = Quiet::enter();
    let bucket = record_here(bytes, label);
    writer::after_sample();
    bucket
}

/// Counts a sample of `bytes` labelled `label` with the calling thread's stack; its bucket.
/// The caller is quiet.
fn record_here(bytes: usize, label: &'static str) -> Option<u32> {
    let mut frames = [0usize; buckets::MAX_FRAMES];
    let depth = stack::capture(&mut frames);
    buckets::record(&frames[..depth], bytes as u64, label)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_exponential_with_the_rate_as_mean() {
        let mut state = seed(7);
        let rate = 512 * 1024;
        let n = 200_000;
        let gaps: Vec<i64> = (0..n).map(|_| draw(&mut state, rate)).collect();
        let mean = gaps.iter().map(|&g| g as f64).sum::<f64>() / n as f64;
        // The standard error of the mean is rate / sqrt(n): 0.22% here; 2% is 9 of them.
        assert!((mean / rate as f64 - 1.0).abs() < 0.02, "mean {mean}");
        // Exponential: P(gap > rate) = 1/e.
        let over = gaps.iter().filter(|&&g| g > rate as i64).count() as f64 / n as f64;
        assert!(
            (over - (-1f64).exp()).abs() < 0.01,
            "P(gap > mean) = {over}"
        );
        assert!(gaps.iter().all(|&g| g >= 1));
    }

    #[test]
    fn rate_one_samples_every_allocation() {
        assert_eq!(gap(12345, 1), 1);
        assert_eq!(gap(u64::MAX, 0), 1);
    }
}
