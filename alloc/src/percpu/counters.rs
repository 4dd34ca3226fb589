//! Cumulative allocation counts of the per-CPU front end, per size class, at no cost to the
//! fast path: each list's header carries a 32-bit count that the allocating sequence commits
//! together with `current`, in the same 8-byte store (`os::rseq`).
//!
//! # Folding
//! A 32-bit count wraps after 4 billion allocations, so the counts are folded into 64-bit
//! totals: [`fold`] adds what each list's count moved since the previous fold (modulo 2^32)
//! and remembers where it was. The scavenger folds once a second (through `reclaim_idle`), and
//! every read folds first, so the totals are exact unless one CPU allocates more than 4
//! billion blocks of one class between two folds. Folds run under `RESIZE` (the lock the fork
//! handlers hold, so a child never inherits a fold half done), and read the counts racily:
//! a 4-byte read of the count sees the sequence's 8-byte commit whole (x86-64).
//!
//! Allocations served without a counting sequence (a refill that found the list full, a
//! tripped counter's allocation that was not sampled) are counted in [`SLOW`]. Frees are not
//! counted: `stats` derives them as allocations minus objects in use.
//!
//! # The counters trip the heap profiler's samples
//! A counting `pop` that would carry the counter out of `2^32 - 1` fails instead, before its
//! commit, with `rseq::TRIPPED` (`os::rseq`). To sample a list's allocation `k + 1` from now,
//! the profiler sets its counter to `2^32 - 1 - k` (`percpu::counter_for` draws `k`), so
//! while it samples, the fast path runs exactly as while it does not. Those jumps must not
//! show in the counts. The rules:
//! 1. A counter is written only by counting pops (one up each), by [`rearm`] (a restartable
//!    sequence on the counter's own CPU, which moves a tripped counter and nothing else), by
//!    [`arm_all`] (on locked, fenced headers: `resize`'s protocol), and by `build_slabs`
//!    before the slabs are published (sampling from the start, [`record_start`]).
//! 2. `rearm` and `arm_all` run under [`ARM`] and, in the same critical section, add the jump
//!    they made (`old - new`, modulo 2^32) to the list's record in [`JUMPS`].
//! 3. [`fold`] runs under [`ARM`] and takes each list's jumps (swapping in zero) with its
//!    count, so `now - seen + jumps` is exactly the counting pops between two folds, modulo
//!    2^32: no jump is ever half recorded when a fold looks.
//! 4. Nothing allocates under [`ARM`], and it is taken after `RESIZE` when both are held
//!    (`arm_all`, and the fold, which runs under `RESIZE`), so a tripped allocation may wait
//!    for it whatever locks its thread holds.
//!
//! `rearm` waits for the lock rather than trying it: an allocation served without moving its
//! tripped counter would not be eligible for sampling, and with the counts read often (each
//! read folds) the profile would lose four samples in five. The stress test
//! `sampling_keeps_counts_exact` (alloc/tests) reads the counts continuously while three
//! threads sample; it fails when rule 2's record is dropped, and its sample count shows that
//! loss when `rearm` only tries the lock.

use super::resize::{Header, RESIZE};
use super::{per_cpu, slabs};
use crate::os::rseq;
use crate::size_class::NUM_CLASSES;
use crate::slab::SLAB_SHIFT;
use crate::sync::{AtomicPtr, AtomicU32, AtomicU64, Mutex, Ordering};
use core::ptr;

/// Allocations served by the per-CPU slow path itself, per class.
pub(super) static SLOW: [AtomicU64; NUM_CLASSES] = [const { AtomicU64::new(0) }; NUM_CLASSES];

/// The folded totals, per class (written under `RESIZE`).
static TOTAL: [AtomicU64; NUM_CLASSES] = [const { AtomicU64::new(0) }; NUM_CLASSES];

/// Per CPU, each list's count as the previous fold saw it (written under `RESIZE`).
struct Seen([AtomicU32; NUM_CLASSES]);

/// `n` records of [`Seen`], in zeroed metadata (zero is a valid `AtomicU32`, and every count
/// starts at zero).
static SEEN: AtomicPtr<Seen> = AtomicPtr::new(ptr::null_mut());

/// Per CPU, each list's counter jumps since the previous fold, modulo 2^32 (rule 2; written
/// under [`ARM`]).
struct Jumps([AtomicU32; NUM_CLASSES]);

/// `n` records of [`Jumps`], in zeroed metadata.
static JUMPS: AtomicPtr<Jumps> = AtomicPtr::new(ptr::null_mut());

/// Guards the counters' moves and their records against the fold (rules 2 to 4); the fork
/// handlers hold it, after `RESIZE`.
pub(crate) static ARM: Mutex<()> = Mutex::new(());

/// Allocates the fold records for `n` CPUs (before per-CPU mode is published). False when
/// metadata is exhausted.
pub(super) fn init(n: usize) -> bool {
    super::zeroed_records(&SEEN, n) && super::zeroed_records(&JUMPS, n)
}

fn jumps(cpu: usize) -> &'static Jumps {
    // SAFETY: `counters::init` allocated `n` zeroed records before per-CPU mode was published;
    // callers
    // pass `cpu < n`; metadata is never freed.
    unsafe { &*JUMPS.load(Ordering::Relaxed).add(cpu) }
}

/// Records that `build_slabs` started `class`'s counter on `cpu` at `counter` instead of 0,
/// before the slabs were published (rule 2's record, for a jump no fold can see half done).
pub(super) fn record_start(cpu: usize, class: usize, counter: u32) {
    jumps(cpu).0[class].store(0u32.wrapping_sub(counter), Ordering::Relaxed);
}

/// Sets `class`'s tripped counter on the calling thread's CPU to `counter` and records the
/// jump (rules 1 and 2). False, with nothing changed, when the counter there is not tripped
/// (the thread moved, or another thread of the CPU set it first).
pub(super) fn rearm(class: usize, counter: u32) -> bool {
    let _g = ARM.lock();
    let s = slabs();
    // SAFETY: per-CPU mode is on (a counter tripped), so the slabs are built; `class` is a
    // class of the tripped list.
    let slab = unsafe { rseq::rearm(s, super::list(class), counter) };
    if slab.is_null() {
        return false;
    }
    let cpu = (slab as usize - s.base as usize) >> SLAB_SHIFT;
    // The counter went from 2^32 - 1 to `counter`.
    jumps(cpu).0[class].fetch_add(u32::MAX.wrapping_sub(counter), Ordering::Relaxed);
    true
}

/// Sets every list's counter on every CPU to `counter(class)` (a fresh draw each) through
/// `resize`'s protocol, recording the jumps (rules 1 and 2). False when the headers cannot be
/// fenced (then some lists may be armed and others not).
pub(super) fn arm_all(counter: impl Fn(usize) -> u32) -> bool {
    if !super::layout().resizable.load(Ordering::Relaxed) {
        return false;
    }
    let _resize = RESIZE.lock();
    let _arm = ARM.lock();
    let s = slabs();
    let all = (1u128 << NUM_CLASSES) - 1;
    let mut ok = true;
    for cpu in 0..s.n {
        ok &= super::resize::with_locked(&s, cpu, all, |_| {
            for (c, jump) in jumps(cpu).0.iter().enumerate() {
                let new = counter(c);
                let old = Header::at(&s, cpu, c).allocs().swap(new, Ordering::Relaxed);
                jump.fetch_add(old.wrapping_sub(new), Ordering::Relaxed);
            }
        });
    }
    ok
}

/// Folds every list's count into the totals. Caller holds [`RESIZE`].
pub(super) fn fold() {
    if !per_cpu() {
        return;
    }
    let _arm = ARM.lock();
    let s = slabs();
    for cpu in 0..s.n {
        // SAFETY: `counters::init` allocated `n` zeroed records before per-CPU mode was
        // published;
        // `cpu < n`; metadata is never freed.
        let seen = unsafe { &*SEEN.load(Ordering::Relaxed).add(cpu) };
        for (c, total) in TOTAL.iter().enumerate() {
            let now = Header::at(&s, cpu, c).allocs().load(Ordering::Relaxed);
            let was = seen.0[c].swap(now, Ordering::Relaxed);
            let jumped = jumps(cpu).0[c].swap(0, Ordering::Relaxed);
            let counted = now.wrapping_sub(was).wrapping_add(jumped);
            total.fetch_add(u64::from(counted), Ordering::Relaxed);
        }
    }
}

/// Adds the per-CPU front end's allocations of each class to `out` (folding first).
pub(crate) fn allocs_by_class(out: &mut [u64; NUM_CLASSES]) {
    {
        let _g = RESIZE.lock();
        fold();
    }
    for (c, o) in out.iter_mut().enumerate() {
        *o += TOTAL[c].load(Ordering::Relaxed) + SLOW[c].load(Ordering::Relaxed);
    }
}
