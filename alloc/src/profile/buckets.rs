//! Profile buckets: one per (stack, size), counting the samples taken and freed (Go's
//! `bucket` with its `memRecord`).
//!
//! Invariants:
//! 1. A bucket's stack, size and label never change after it is published in `TABLE`
//!    (`publish`'s rules, checked by its loom model); its counters only grow. Buckets live in
//!    metadata and are never freed, so a reader may read any published bucket without a lock.
//! 2. `INDEX` (stack hash → bucket index + 1, open addressing) is read and written only under
//!    its lock, which is taken by sampling threads holding no other allocator lock; inside it
//!    only the metadata arena's lock is taken (for a new bucket). `fork` takes it first.
//! 3. `frees <= allocs` for every bucket reader that reads `frees` first: a free is counted
//!    after the allocation it frees.

use crate::heap::HEAP;
use crate::publish::Published;
use crate::sync::{AtomicU64, Mutex, Ordering};

/// Return addresses kept per sample (Go keeps 32; deeper stacks lose their outermost frames).
pub(crate) const MAX_FRAMES: usize = 64;
/// Distinct (stack, size) pairs the profile can hold.
pub(crate) const MAX_BUCKETS: usize = 1 << 16;
const INDEX_SLOTS: usize = 2 * MAX_BUCKETS;

/// One (stack, size) pair's counts.
pub(crate) struct Bucket {
    hash: u64,
    /// The bytes each sample in this bucket held.
    pub(crate) bytes: u64,
    /// What the samples are, when a layer above says (a collector's type name); "" for
    /// `malloc`'s blocks.
    pub(crate) label: &'static str,
    depth: u32,
    frames: [usize; MAX_FRAMES],
    /// Samples taken (cumulative).
    pub(crate) allocs: AtomicU64,
    /// Of those, samples freed.
    pub(crate) frees: AtomicU64,
}

impl Bucket {
    /// The stack, innermost return address first.
    pub(crate) fn frames(&self) -> &[usize] {
        &self.frames[..self.depth as usize]
    }
}

/// The buckets, in the order they were made (`publish`'s rules).
static TABLE: Published<Bucket, MAX_BUCKETS> = Published::new();

/// Index slots: 0 empty, else bucket index + 1.
pub(crate) struct Index {
    slots: [u32; INDEX_SLOTS],
}

pub(crate) static INDEX: Mutex<Index> = Mutex::new(Index {
    slots: [0; INDEX_SLOTS],
});

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
    let mask = INDEX_SLOTS - 1;
    let mut i = h as usize & mask;
    loop {
        match index.slots[i] {
            0 => break,
            v => {
                let b = get(v - 1);
                if b.hash == h && b.bytes == bytes && b.label == label && b.frames() == frames {
                    b.allocs.fetch_add(1, Ordering::Relaxed);
                    return Some(v - 1);
                }
            }
        }
        i = (i + 1) & mask;
    }
    if TABLE.len() == MAX_BUCKETS {
        return None;
    }
    let mem = HEAP
        .pages
        .meta
        .alloc(size_of::<Bucket>(), align_of::<Bucket>())?;
    let b = mem.as_ptr().cast::<Bucket>();
    let mut stack = [0usize; MAX_FRAMES];
    stack[..frames.len()].copy_from_slice(frames);
    // SAFETY: fresh metadata for one bucket, published below (invariant 1).
    unsafe {
        b.write(Bucket {
            hash: h,
            bytes,
            label,
            depth: frames.len() as u32,
            frames: stack,
            allocs: AtomicU64::new(1),
            frees: AtomicU64::new(0),
        })
    };
    // SAFETY: the index lock serialises appends; the bucket is written and lives in
    // metadata forever (`publish` rules 1 and 3).
    let n = unsafe { TABLE.push(b) }?;
    index.slots[i] = n as u32 + 1;
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
