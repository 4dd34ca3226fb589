//! Transfer caches: for each size class, a few whole batches of free blocks parked between the
//! front caches and the central lists (TCMalloc's design).
//!
//! When one CPU (or thread) frees what another allocates, as a producer and a consumer do,
//! the front caches overflow on one side and run dry on the other. Without this layer every
//! batch would go back to its spans (one pagemap lookup and list splice per block) and be
//! carved out again. Here a full batch is parked as it is, an array of block addresses
//! (`block::BatchArray`), and handed over whole: both moves copy the array under a per-class
//! lock, and neither touches a block.
//!
//! Invariants (under `slots`' lock):
//! 1. `parked[..len]` are batches of exactly `SizeClass::batch` free blocks of this class,
//!    each carrying its canary (as on the central lists, so a double free of a parked block is
//!    detected).
//! 2. `len <= MAX_SLOTS`; the callers' `limit` bounds the bytes parked per class (see
//!    [`limit_for`]).
//! 3. The `hint` atomic equals `len` whenever the lock is free. Readers outside the lock use it
//!    only to skip taking the lock when the cache looks empty; a stale hint costs a trip to the
//!    central list, never a lost or duplicated batch (the `loom` model checks it).
//!
//! Memory comes back: a class whose cache saw no traffic between two passes of
//! `Heap::reclaim_transfer` (run by `percpu::reclaim_idle`) is emptied into the central lists,
//! whose spans return to the page heap.

use crate::block::BatchArray;
use crate::sync::{AtomicUsize, Mutex, Ordering};

/// Most batches a class may park.
pub(crate) const MAX_SLOTS: usize = 8;

/// Bytes a class may park, at most (and at least one batch).
const BYTES: usize = 256 * 1024;

/// Batches a class of `size`-byte objects moving `batch` at a time may park.
pub(crate) const fn limit_for(size: usize, batch: usize) -> usize {
    let n = BYTES / (size * batch);
    if n < 1 {
        1
    } else if n > MAX_SLOTS {
        MAX_SLOTS
    } else {
        n
    }
}

/// One class's transfer cache.
pub(crate) struct TransferCache {
    /// `len`, readable without the lock (invariant 3).
    hint: AtomicUsize,
    slots: Mutex<Slots>,
}

struct Slots {
    parked: [BatchArray; MAX_SLOTS],
    len: usize,
    /// Inserts and removes since the last [`TransferCache::take_if_idle`].
    traffic: usize,
}

impl TransferCache {
    /// An empty cache.
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        Self {
            hint: AtomicUsize::new(0),
            slots: Mutex::new(Slots::new()),
        }
    }

    /// An empty cache (loom's atomics are not `const`).
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Self {
            hint: AtomicUsize::new(0),
            slots: Mutex::new(Slots::new()),
        }
    }

    /// Parks a full batch, unless `limit` (at most [`MAX_SLOTS`], from [`limit_for`]) batches
    /// are parked already. True when parked: the blocks moved here and `batch` is left empty;
    /// false leaves it as it was.
    pub(crate) fn insert(&self, batch: &mut BatchArray, limit: usize) -> bool {
        debug_assert!((1..=MAX_SLOTS).contains(&limit));
        let mut s = self.slots.lock();
        if s.len >= limit {
            return false;
        }
        let i = s.len;
        s.parked[i] = core::mem::replace(batch, BatchArray::EMPTY);
        s.len += 1;
        s.traffic += 1;
        self.hint.store(s.len, Ordering::Relaxed);
        true
    }

    /// Takes a parked batch, if any. Does not lock when the cache looks empty.
    pub(crate) fn remove(&self) -> Option<BatchArray> {
        if self.hint.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut s = self.slots.lock();
        if s.len == 0 {
            return None;
        }
        s.len -= 1;
        s.traffic += 1;
        let i = s.len;
        let b = core::mem::replace(&mut s.parked[i], BatchArray::EMPTY);
        self.hint.store(s.len, Ordering::Relaxed);
        Some(b)
    }

    /// Empties the cache through `out` if it saw no traffic since the previous call (or
    /// unconditionally with `force`). Returns the number of batches taken.
    pub(crate) fn take_if_idle(&self, force: bool, mut out: impl FnMut(BatchArray)) -> usize {
        let mut s = self.slots.lock();
        let idle = s.traffic == 0;
        s.traffic = 0;
        if !(idle || force) {
            return 0;
        }
        let n = s.len;
        for i in 0..n {
            out(core::mem::replace(&mut s.parked[i], BatchArray::EMPTY));
        }
        s.len = 0;
        self.hint.store(0, Ordering::Relaxed);
        n
    }

    /// Batches parked here (statistics).
    pub(crate) fn parked_batches(&self) -> usize {
        self.hint.load(Ordering::Relaxed)
    }

    /// Takes the lock without a guard (fork prepare).
    #[cfg(not(loom))]
    pub(crate) fn lock_for_fork(&self) {
        self.slots.lock_for_fork();
    }

    /// Releases what [`TransferCache::lock_for_fork`] took.
    ///
    /// # Safety
    /// As for `Mutex::unlock_after_fork`.
    #[cfg(not(loom))]
    pub(crate) unsafe fn unlock_after_fork(&self) {
        // SAFETY: the caller's contract.
        unsafe { self.slots.unlock_after_fork() };
    }
}

impl Slots {
    const fn new() -> Self {
        Self {
            parked: [BatchArray::EMPTY; MAX_SLOTS],
            len: 0,
            traffic: 0,
        }
    }
}

/// A batch of `n` made-up, distinct addresses from `base`, for the tests and the loom model
/// (the cache never touches a block, so nothing dereferences them).
#[cfg(test)]
fn batch_of(base: usize, n: usize) -> BatchArray {
    let mut b = BatchArray::EMPTY;
    for i in 0..n {
        assert!(b.push((base + 16 * i) as *mut _));
    }
    b
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn limits_bound_bytes_and_keep_one_batch() {
        assert_eq!(limit_for(16, 32), MAX_SLOTS);
        assert_eq!(limit_for(32768, 2), 4);
        assert_eq!(limit_for(1 << 20, 2), 1);
    }

    #[test]
    fn parks_whole_batches_up_to_the_limit_and_returns_them_lifo() {
        let t = TransferCache::new();
        let (mut ha, mut hb) = (batch_of(0x1000, 3), batch_of(0x2000, 3));
        assert!(t.insert(&mut ha, 2) && ha.count == 0);
        assert!(t.insert(&mut hb, 2));
        let mut back = batch_of(0x3000, 3);
        assert!(!t.insert(&mut back, 2), "a full cache refuses");
        assert_eq!(back.count, 3);
        assert_eq!(t.parked_batches(), 2);
        assert_eq!(t.remove().map(|x| x.blocks[0] as usize), Some(0x2000));
        let a = t.remove().expect("the first batch");
        assert_eq!((a.blocks[2] as usize, a.count), (0x1020, 3));
        assert!(t.remove().is_none());
    }

    #[test]
    fn only_idle_caches_are_emptied() {
        let t = TransferCache::new();
        assert!(t.insert(&mut batch_of(0x1000, 2), 4));
        // Traffic since the last pass: kept.
        assert_eq!(t.take_if_idle(false, |_| panic!("busy cache emptied")), 0);
        // No traffic since: emptied.
        let mut got = 0;
        assert_eq!(t.take_if_idle(false, |b| got += b.count), 1);
        assert_eq!(got, 2);
        assert_eq!(t.parked_batches(), 0);
    }
}

/// A `loom` model of the hand-off between front caches, this cache and the central list: run
/// with `RUSTFLAGS="--cfg loom" cargo test -p tricolor-alloc --lib --release transfer`.
#[cfg(all(test, loom))]
mod loom_model {
    use super::*;
    use crate::sync::Mutex;
    use loom::sync::Arc;

    /// The central list, reduced to what the hand-off needs: a locked pile of batches.
    struct Central(Mutex<Vec<BatchArray>>);

    /// What a front cache does on overflow: park the batch, or give it to the central list.
    fn give(t: &TransferCache, c: &Central, mut b: BatchArray) {
        if !t.insert(&mut b, 1) {
            c.0.lock().push(b);
        }
    }

    /// What a front cache does on underflow: a parked batch, or one from the central list.
    fn take(t: &TransferCache, c: &Central) -> Option<BatchArray> {
        t.remove().or_else(|| c.0.lock().pop())
    }

    fn blocks_of(b: &BatchArray) -> Vec<usize> {
        b.as_slice().iter().map(|&p| p as usize).collect()
    }

    /// Two front caches trade batches through a one-slot transfer cache (so both the parking
    /// and the overflow to the central list happen) while one of them also reclaims it: every
    /// block ends up in exactly one place, and batches stay whole. Preemptions are bounded at
    /// 3 (loom's advice for models with spinning locks), which covers every interleaving of
    /// these few lock acquisitions.
    #[test]
    fn batches_are_neither_lost_nor_duplicated() {
        let mut model = loom::model::Builder::new();
        model.preemption_bound = Some(3);
        model.check(|| {
            let t = Arc::new(TransferCache::new());
            let c = Arc::new(Central(Mutex::new(Vec::new())));
            let (a, b) = (batch_of(0x1000, 2), batch_of(0x2000, 2));
            let mut all: Vec<usize> = blocks_of(&a).into_iter().chain(blocks_of(&b)).collect();
            let consumer = {
                let (t, c) = (Arc::clone(&t), Arc::clone(&c));
                loom::thread::spawn(move || {
                    give(&t, &c, a);
                    let got = take(&t, &c);
                    if let Some(x) = &got {
                        assert_eq!(x.count, 2, "a batch was split");
                    }
                    got
                })
            };
            let producer = {
                let (t, c) = (Arc::clone(&t), Arc::clone(&c));
                loom::thread::spawn(move || {
                    give(&t, &c, b);
                    t.take_if_idle(true, |x| c.0.lock().push(x));
                })
            };
            producer.join().unwrap();
            let mut seen: Vec<usize> = Vec::new();
            if let Some(x) = consumer.join().unwrap() {
                seen.extend(blocks_of(&x));
            }
            t.take_if_idle(true, |x| seen.extend(blocks_of(&x)));
            for x in c.0.lock().drain(..) {
                seen.extend(blocks_of(&x));
            }
            seen.sort_unstable();
            all.sort_unstable();
            assert_eq!(seen, all, "a block was lost or handed out twice");
        });
    }
}
