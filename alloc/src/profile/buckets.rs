//! Profile buckets: one per (stack, size), counting the samples taken and freed (Go's
//! `bucket` with its `memRecord`).
//!
//! Invariants:
//! 1. A bucket's stack, size and label never change after it is published in `TABLE`
//!    (`publish`'s rules, checked by its loom model); its counters only grow. Buckets live in
//!    metadata and are never freed, so a reader may read any published bucket without a lock.
//! 2. `INDEX` (stack hash → bucket, open addressing, at most half full) is read and
//!    written only under its lock, which is taken by sampling threads holding no other
//!    allocator lock; inside it only the metadata arena's lock is taken (for a new bucket or a
//!    bigger index). `fork` takes it first.
//! 3. `frees <= allocs` for every bucket reader that reads `frees` first: a free is counted
//!    after the allocation it frees.
//!
//! # What a sample costs here
//! A sample comes after many allocations have pushed the profile's data out of the cache, so
//! the lookup is priced in cache lines, not instructions. The index is sized to the buckets
//! (doubling from [`FIRST_SLOTS`], so a program with a few hundred sampled stacks keeps it in
//! a few KiB, where a fixed index for every possible bucket takes half a MiB); its slots point
//! at the buckets themselves (not at their numbers in `TABLE`, one more line to read); and a
//! bucket keeps its hash, size and counters before its frames. A hit reads one index line and
//! the bucket's first lines, and counts in the line it compared first.

use crate::heap::HEAP;
use crate::publish::Published;
use crate::sync::{AtomicU64, Mutex, Ordering};
use core::ptr::NonNull;

/// Return addresses kept per sample (Go keeps 32; deeper stacks lose their outermost frames).
pub(crate) const MAX_FRAMES: usize = 64;
/// Distinct (stack, size) pairs the profile can hold.
pub(crate) const MAX_BUCKETS: usize = 1 << 16;
/// The index's first size, in slots; it doubles when half full, up to `2 * MAX_BUCKETS`.
const FIRST_SLOTS: usize = 1 << 10;

/// One (stack, size) pair's counts. `repr(C)`: the fields a lookup reads first share the
/// bucket's first cache line (module docs).
#[repr(C)]
pub(crate) struct Bucket {
    hash: u64,
    /// Its number in `TABLE` (what a sampled span records).
    id: u32,
    depth: u32,
    /// The bytes each sample in this bucket held.
    pub(crate) bytes: u64,
    /// Samples taken (cumulative).
    pub(crate) allocs: AtomicU64,
    /// Of those, samples freed.
    pub(crate) frees: AtomicU64,
    /// What the samples are, when a layer above says (a collector's type name); "" for
    /// `malloc`'s blocks. Told apart by address: a layer above passes each name from its one
    /// registration.
    pub(crate) label: &'static str,
    frames: [usize; MAX_FRAMES],
}

impl Bucket {
    /// The stack, innermost return address first.
    pub(crate) fn frames(&self) -> &[usize] {
        &self.frames[..self.depth as usize]
    }
}

/// The buckets, in the order they were made (`publish`'s rules).
static TABLE: Published<Bucket, MAX_BUCKETS> = Published::new();

/// The index: `len` slots (a power of two, or 0 before the first sample) in metadata, each
/// null for empty or a published bucket.
pub(crate) struct Index {
    slots: Option<NonNull<*const Bucket>>,
    len: usize,
}

// SAFETY: the slots are metadata (never freed), read and written only under `INDEX`'s lock
// (invariant 2).
unsafe impl Send for Index {}

pub(crate) static INDEX: Mutex<Index> = Mutex::new(Index {
    slots: None,
    len: 0,
});

impl Index {
    fn slots(&mut self) -> &mut [*const Bucket] {
        match self.slots {
            // SAFETY: `len` zeroed (null) or written pointers in metadata that only this index
            // holds, borrowed through the lock's `&mut` (invariant 2).
            Some(p) => unsafe { core::slice::from_raw_parts_mut(p.as_ptr(), self.len) },
            None => &mut [],
        }
    }

    /// Makes room for one more bucket: a fresh index of twice the size (the first of
    /// `FIRST_SLOTS`) when the table would be more than half full, every bucket rehashed into
    /// it. False when there is no metadata for it.
    fn reserve(&mut self, buckets: usize) -> bool {
        if (buckets + 1) * 2 <= self.len {
            return true;
        }
        let len = (self.len * 2).max(FIRST_SLOTS);
        let slot = size_of::<*const Bucket>();
        let Some(mem) = HEAP.pages.meta.alloc(len * slot, slot) else {
            return false;
        };
        // The old slots stay in metadata, unused: at most as many bytes as the last index.
        self.slots = Some(mem.cast());
        self.len = len;
        for n in 0..buckets {
            self.place(get(n as u32));
        }
        true
    }

    /// Puts `b` in the first free slot from its hash's (the index has room: `reserve`).
    fn place(&mut self, b: &'static Bucket) {
        let mask = self.len - 1;
        let slots = self.slots();
        let mut i = b.hash as usize & mask;
        while !slots[i].is_null() {
            i = (i + 1) & mask;
        }
        slots[i] = b;
    }
}

/// A word-at-a-time multiplicative hash of the frames, the size and the label (each word
/// mixed in with one multiply and a rotate; the index only needs the low bits spread).
fn hash(frames: &[usize], bytes: u64, label: &str) -> u64 {
    let mut h = bytes ^ 0x9e37_79b9_7f4a_7c15 ^ (label.as_ptr() as u64).rotate_left(17);
    for &f in frames {
        h = (h ^ f as u64)
            .wrapping_mul(0xff51_afd7_ed55_8ccd)
            .rotate_left(29);
    }
    h ^ (h >> 32)
}

/// Counts one sample of `bytes` labelled `label` with stack `frames` (at most `MAX_FRAMES`)
/// and returns its bucket; `None` when a new bucket is needed and there is no room (or no
/// metadata).
pub(crate) fn record(frames: &[usize], bytes: u64, label: &'static str) -> Option<u32> {
    let h = hash(frames, bytes, label);
    let mut index = INDEX.lock();
    let mask = index.len.wrapping_sub(1);
    let slots = index.slots();
    let mut i = h as usize & mask;
    while let Some(&b) = slots.get(i).filter(|b| !b.is_null()) {
        // SAFETY: a non-null slot holds a published bucket, never freed (invariant 1).
        let b = unsafe { &*b };
        // The label by address, as the hash takes it (a layer above passes each type's name
        // from its one registration).
        if b.hash == h && b.bytes == bytes && core::ptr::eq(b.label, label) && b.frames() == frames
        {
            b.allocs.fetch_add(1, Ordering::Relaxed);
            return Some(b.id);
        }
        i = (i + 1) & mask;
    }
    let n = TABLE.len();
    if n == MAX_BUCKETS || !index.reserve(n) {
        return None;
    }
    // Line-aligned: the fields before the frames share one cache line (module docs).
    let mem = HEAP.pages.meta.alloc(size_of::<Bucket>(), 64)?;
    let b = mem.as_ptr().cast::<Bucket>();
    let mut stack = [0usize; MAX_FRAMES];
    stack[..frames.len()].copy_from_slice(frames);
    // SAFETY: fresh metadata for one bucket, published below (invariant 1).
    unsafe {
        b.write(Bucket {
            hash: h,
            id: n as u32,
            depth: frames.len() as u32,
            bytes,
            allocs: AtomicU64::new(1),
            frees: AtomicU64::new(0),
            label,
            frames: stack,
        })
    };
    // SAFETY: the index lock serialises appends; the bucket is written and lives in
    // metadata forever (`publish` rules 1 and 3).
    let pushed = unsafe { TABLE.push(b) }?;
    debug_assert_eq!(pushed, n, "appends are serialised by the index lock");
    // The index may have grown since the probe above: place it afresh.
    index.place(get(n as u32));
    Some(n as u32)
}

/// Takes back a sample [`record`] counted whose allocation then failed.
pub(crate) fn unrecord(bucket: u32) {
    get(bucket).allocs.fetch_sub(1, Ordering::Relaxed);
}

/// Counts the free of a sample from `bucket`.
pub(crate) fn free(bucket: u32) {
    if (bucket as usize) < TABLE.len() {
        get(bucket).frees.fetch_add(1, Ordering::Relaxed);
    }
}

/// Bucket `i` (published: below a count read).
fn get(i: u32) -> &'static Bucket {
    TABLE.get(i as usize)
}

/// Every bucket so far (invariant 1: readable without the lock).
pub(crate) fn all() -> impl Iterator<Item = &'static Bucket> {
    (0..TABLE.len() as u32).map(get)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stacks no real sample has (other tests in this process sample real ones).
    fn fake(k: usize) -> [usize; 3] {
        [0x7e57_0000_0000 + k, 0x7e57_1000_0000, k]
    }

    #[test]
    fn the_index_grows_and_finds_every_bucket_again() {
        // Enough new buckets to double the index several times from its first size.
        let n = 4 * FIRST_SLOTS + 7;
        let ids: Vec<u32> = (0..n)
            .map(|k| record(&fake(k), 48, "").expect("room for a bucket"))
            .collect();
        let mut distinct = ids.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), n, "each stack its own bucket");
        // After the growth, the same stack (and size and label) finds the same bucket; another
        // size or label is another bucket.
        for (k, &id) in ids.iter().enumerate() {
            assert_eq!(record(&fake(k), 48, ""), Some(id), "stack {k}");
            let b = get(id);
            assert_eq!((b.frames(), b.bytes, b.id), (&fake(k)[..], 48, id));
            assert_eq!(b.allocs.load(Ordering::Relaxed), 2);
        }
        let other = record(&fake(0), 64, "").unwrap();
        let labelled = record(&fake(0), 48, "Node").unwrap();
        assert!(other != ids[0] && labelled != ids[0] && other != labelled);
        let index = INDEX.lock();
        assert!(index.len >= 2 * TABLE.len(), "at most half full");
    }
}
