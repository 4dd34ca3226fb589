//! The format of a free block, and the canary that detects double frees.
//!
//! A free small block holds, in its first word, the link to the next free block of the same
//! list (front cache or span). Every block holds in its second word a *canary* (malloc's
//! smallest class is 16 B; the 8-byte class serves only GC objects, see
//! `size_class::class_of`): the block's address XOR a per-process random key. Invariants:
//! 1. A block is handed to a user with its canary word cleared (the cache pop clears it), so
//!    live blocks never carry their canary unless the user wrote that exact random value.
//! 2. Every path that takes a block back (cache push, central insert) writes the canary.
//! 3. Memory outside free lists and caches holds no canary: a span's blocks have theirs cleared
//!    when the span returns to the page heap (`central`, invariant 4). So user-visible memory
//!    never shows a canary value (which would also reveal the key), and none can be carried by
//!    user data to the address it names.
//!
//! So `free(p)` finding `p`'s canary in place means `p` is already free: a double free,
//! detected whichever cache or span list holds the block, at the cost of one load and compare.

use crate::os;
use crate::size_class::MAX_BATCH;
// The key is written once, before any block exists, and is part of no concurrent protocol: a
// plain core atomic (not `sync`'s, which become loom's in the transfer-cache model).
use core::sync::atomic::{AtomicUsize, Ordering};

/// A free block (only the link is typed; the canary is written through [`set_canary`]).
#[repr(C)]
pub(crate) struct FreeBlock {
    pub(crate) next: *mut FreeBlock,
}

/// A list of free blocks linked through [`FreeBlock::next`], with its length: how blocks move
/// to and from the central lists and the per-thread caches (whole batches to and from the
/// transfer caches travel as a [`BatchArray`]).
pub(crate) struct Batch {
    pub(crate) head: *mut FreeBlock,
    pub(crate) count: usize,
}

impl Batch {
    pub(crate) const EMPTY: Batch = Batch {
        head: core::ptr::null_mut(),
        count: 0,
    };
}

// SAFETY: a batch's blocks belong to whoever holds the batch (it is moved, never shared), so
// handing it to another thread hands over the blocks with it.
unsafe impl Send for Batch {}

/// A whole batch as an array of block addresses: how batches are parked in the transfer
/// caches and handed to and from the per-CPU caches. Taking one in or out touches no block,
/// where a linked [`Batch`] is walked a block at a time, each load waiting for the one before:
/// for a batch another CPU freed, a chain of cache misses (measured with `perf record`: in
/// `mstress`, `larson` and `prodcons2`, 91% of a linked refill's time is on that one load;
/// `perf record cargo run --release -p tricolor-tools -- bench --workload mstress`).
pub(crate) struct BatchArray {
    pub(crate) blocks: [*mut FreeBlock; MAX_BATCH],
    pub(crate) count: usize,
}

// SAFETY: as for `Batch`: the blocks go with the array.
unsafe impl Send for BatchArray {}

impl BatchArray {
    pub(crate) const EMPTY: BatchArray = BatchArray {
        blocks: [core::ptr::null_mut(); MAX_BATCH],
        count: 0,
    };

    /// Adds a block; false (and nothing added) when the array is full.
    #[inline]
    pub(crate) fn push(&mut self, block: *mut FreeBlock) -> bool {
        match self.blocks.get_mut(self.count) {
            Some(slot) => {
                *slot = block;
                self.count += 1;
                true
            }
            None => false,
        }
    }

    /// The blocks held.
    pub(crate) fn as_slice(&self) -> &[*mut FreeBlock] {
        &self.blocks[..self.count]
    }

    /// The same blocks as a linked batch (writing each block's link).
    ///
    /// # Safety
    /// Every block is a free block the caller owns.
    pub(crate) unsafe fn into_list(self) -> Batch {
        // SAFETY: the caller's contract.
        unsafe { link(self.as_slice()) }
    }

    /// The blocks of `batch`, a whole batch (at most [`MAX_BATCH`] blocks), as an array.
    ///
    /// # Safety
    /// `batch` links `count` free blocks the caller owns. Their links are left as they were.
    pub(crate) unsafe fn from_list(batch: &Batch) -> BatchArray {
        assert!(batch.count <= MAX_BATCH, "a batch longer than MAX_BATCH");
        let mut out = BatchArray::EMPTY;
        let mut b = batch.head;
        for _ in 0..batch.count {
            out.push(b);
            // SAFETY: the caller's contract: `b` is a linked free block.
            b = unsafe { (*b).next };
        }
        out
    }
}

/// Links `blocks` into a batch, in order (writing each block's link).
///
/// # Safety
/// Every block is a free block the caller owns.
pub(crate) unsafe fn link(blocks: &[*mut FreeBlock]) -> Batch {
    let mut out = Batch::EMPTY;
    for &b in blocks.iter().rev() {
        // SAFETY: the caller's contract.
        unsafe { (*b).next = out.head };
        out.head = b;
        out.count += 1;
    }
    out
}

/// The canary key, drawn from the kernel at heap initialisation. Atomic, relaxed: written once
/// before any block exists. A field of `fast::FAST` (with the other statics the free path
/// reads), or a static of its own in the loom build, which has no `fast`.
#[cfg(not(loom))]
#[inline(always)]
fn key() -> &'static AtomicUsize {
    &crate::fast::FAST.key
}
#[cfg(loom)]
fn key() -> &'static AtomicUsize {
    static KEY: AtomicUsize = AtomicUsize::new(0);
    &KEY
}

/// Draws the key. Called once, before the first block is handed out.
pub(crate) fn init_key() {
    // The low bit is set so a zero-filled block never matches its canary.
    key().store(os::random_u64() as usize | 1, Ordering::Relaxed);
}

#[inline]
fn canary(block: usize) -> usize {
    block ^ key().load(Ordering::Relaxed)
}

/// Debug builds poison a freed block past its link and canary words, so a use after free
/// reads 0xdf bytes instead of plausible data. Nothing in release builds, not even the
/// class's size lookup (it takes the class, not the size, for that reason).
///
/// # Safety
/// `_block` is a block of size class `_class` that the allocator owns (being freed).
#[inline]
pub(crate) unsafe fn debug_fill_freed(_block: *mut u8, _class: usize) {
    #[cfg(debug_assertions)]
    {
        let size = crate::size_class::class_info(_class).size as usize;
        if size > 16 {
            // SAFETY: the caller's contract: the block is ours and `size` bytes long.
            unsafe { core::ptr::write_bytes(_block.add(16), 0xdf, size - 16) };
        }
    }
}

/// A block's canary value, computed once per free: the API layer's check compares it with the
/// block's second word, and the front end writes it there.
#[derive(Clone, Copy)]
pub(crate) struct Canary(usize);

impl Canary {
    #[inline]
    pub(crate) fn of(block: *const u8) -> Self {
        Canary(canary(block as usize))
    }

    /// True when `block` carries this canary (computed for it): it is already free.
    ///
    /// # Safety
    /// `block` points at a readable block of at least 16 bytes inside a span of ours.
    #[inline]
    pub(crate) unsafe fn is_on(self, block: *const u8) -> bool {
        // SAFETY: the block has a readable, aligned second word.
        unsafe { block.cast::<usize>().add(1).read() == self.0 }
    }

    /// Marks `block` (the block it was computed for) as free.
    ///
    /// # Safety
    /// As for [`set_canary`].
    #[inline]
    pub(crate) unsafe fn set(self, block: *mut u8) {
        // SAFETY: the block has a second word (size >= 16), aligned to 8.
        unsafe { block.cast::<usize>().add(1).write(self.0) }
    }
}

/// Marks a block of `size >= 16` bytes as free.
///
/// # Safety
/// `block` points at a block of at least 16 bytes that the allocator owns (being freed).
#[inline]
pub(crate) unsafe fn set_canary(block: *mut u8) {
    // SAFETY: the caller's contract.
    unsafe { Canary::of(block).set(block) }
}

/// Clears the canary of a block about to be handed out (invariant 1).
///
/// # Safety
/// As for [`set_canary`].
#[inline]
pub(crate) unsafe fn clear_canary(block: *mut u8) {
    // SAFETY: as for `set_canary`.
    unsafe { block.cast::<usize>().add(1).write(0) }
}

/// True when the block of `size >= 16` bytes carries its canary: it is already free.
///
/// # Safety
/// `block` points at a readable block of at least 16 bytes inside a span of ours.
#[inline]
pub(crate) unsafe fn has_canary(block: *const u8) -> bool {
    // SAFETY: the caller's contract.
    unsafe { Canary::of(block).is_on(block) }
}
