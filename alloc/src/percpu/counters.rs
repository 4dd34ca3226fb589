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
//! Allocations the slow path serves itself (the first block of a refill) never pass a
//! counting sequence; [`SLOW`] counts them. Frees are not counted: `stats` derives them as
//! allocations minus objects in use.

use super::resize::{Header, RESIZE};
use super::{per_cpu, slabs};
use crate::size_class::NUM_CLASSES;
use crate::sync::{AtomicPtr, AtomicU32, AtomicU64, Ordering};
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

/// Allocates the fold records for `n` CPUs (before per-CPU mode is published). False when
/// metadata is exhausted.
pub(super) fn init(n: usize) -> bool {
    super::zeroed_records(&SEEN, n)
}

/// Folds every list's count into the totals. Caller holds [`RESIZE`].
pub(super) fn fold() {
    if !per_cpu() {
        return;
    }
    let s = slabs();
    for cpu in 0..s.n {
        // SAFETY: `init` allocated `n` zeroed records before per-CPU mode was published;
        // `cpu < n`; metadata is never freed.
        let seen = unsafe { &*SEEN.load(Ordering::Relaxed).add(cpu) };
        for (c, total) in TOTAL.iter().enumerate() {
            let now = Header::at(&s, cpu, c).allocs().load(Ordering::Relaxed);
            let was = seen.0[c].swap(now, Ordering::Relaxed);
            total.fetch_add(u64::from(now.wrapping_sub(was)), Ordering::Relaxed);
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
