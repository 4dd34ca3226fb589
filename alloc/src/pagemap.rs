//! The pagemap: the span of any address in two dependent loads.
//!
//! A two-level radix table over the 48-bit address space: the root has one slot per 64 MiB
//! arena (4 Mi slots, 32 MiB of address space mapped lazily with zero pages, so only the slots
//! written cost RSS), each leaf one slot per 8 KiB page of its arena (64 KiB of metadata per
//! arena). Addresses we never mapped find a null root slot or a null leaf slot: that is how a
//! foreign pointer passed to `free` is recognised.
//!
//! Invariants:
//! 1. Every page of every span (in use or free) maps to that span's record; pages of a region
//!    that are reserved but not yet committed map to null.
//! 2. Slots are written only under the page-heap lock; they are read without it (relaxed:
//!    a reader that may legitimately use a block got it through a chain that already
//!    synchronised with the write). A reader always re-checks that the record covers the
//!    address, which makes a stale slot harmless (records are type-stable, see `meta`).
//! 3. Leaves are never freed.

use crate::meta::MetaArena;
use crate::os;
use crate::size_class::PAGE_SHIFT;
use crate::span::Span;
use crate::sync::{AtomicPtr, Ordering};
use core::ptr;

/// log2 of the arena size: the granularity at which address space is reserved and mapped.
pub(crate) const ARENA_SHIFT: u32 = 26;
/// Bytes in an arena (64 MiB, as Go's).
pub(crate) const ARENA_SIZE: usize = 1 << ARENA_SHIFT;
const ADDRESS_BITS: u32 = 48;
const ROOT_SLOTS: usize = 1 << (ADDRESS_BITS - ARENA_SHIFT);
const LEAF_SLOTS: usize = 1 << (ARENA_SHIFT - PAGE_SHIFT);

struct Leaf {
    spans: [AtomicPtr<Span>; LEAF_SLOTS],
}

/// Address → span record.
pub(crate) struct PageMap {
    /// The root table, mapped on first use. Written once under the page-heap lock (Release);
    /// read lock-free (Acquire).
    root: AtomicPtr<AtomicPtr<Leaf>>,
}

impl PageMap {
    pub(crate) const fn new() -> Self {
        Self {
            root: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// The span covering `addr`, or null when `addr` is not in memory we map.
    #[inline]
    pub(crate) fn get(&self, addr: usize) -> *mut Span {
        let root = self.root.load(Ordering::Acquire);
        if root.is_null() || addr >> ADDRESS_BITS != 0 {
            return ptr::null_mut();
        }
        // SAFETY: the root has ROOT_SLOTS slots and `addr >> ARENA_SHIFT < ROOT_SLOTS` because
        // `addr < 2^ADDRESS_BITS` was checked above.
        let leaf = unsafe { &*root.add(addr >> ARENA_SHIFT) }.load(Ordering::Acquire);
        if leaf.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: leaves are never freed (invariant 3); the index is masked to LEAF_SLOTS.
        unsafe { (*leaf).spans[(addr >> PAGE_SHIFT) & (LEAF_SLOTS - 1)].load(Ordering::Relaxed) }
    }

    /// Makes sure root and leaves exist for `[start, start + len)`. Called under the page-heap
    /// lock before the range is published. Returns false if metadata cannot be mapped.
    pub(crate) fn ensure(&self, meta: &MetaArena, start: usize, len: usize) -> bool {
        if (start + len) >> ADDRESS_BITS != 0 {
            return false;
        }
        let mut root = self.root.load(Ordering::Acquire);
        if root.is_null() {
            let Some(r) = os::map_zeroed(ROOT_SLOTS * size_of::<AtomicPtr<Leaf>>()) else {
                return false;
            };
            root = r.as_ptr().cast();
            self.root.store(root, Ordering::Release);
        }
        let mut arena = start >> ARENA_SHIFT;
        while arena <= (start + len - 1) >> ARENA_SHIFT {
            // SAFETY: arena < ROOT_SLOTS since the range is below 2^ADDRESS_BITS.
            let slot = unsafe { &*root.add(arena) };
            if slot.load(Ordering::Acquire).is_null() {
                let Some(leaf) = meta.alloc(size_of::<Leaf>(), 4096) else {
                    return false;
                };
                // Zeroed memory is a valid leaf: every slot null.
                slot.store(leaf.as_ptr().cast(), Ordering::Release);
            }
            arena += 1;
        }
        true
    }

    /// Points every page of `[start, start + pages pages)` at `span`. Caller holds the
    /// page-heap lock and has called [`PageMap::ensure`] for the range.
    pub(crate) fn set_range(&self, start: usize, pages: usize, span: *mut Span) {
        let root = self.root.load(Ordering::Relaxed);
        for i in 0..pages {
            let addr = start + (i << PAGE_SHIFT);
            // SAFETY: `ensure` created the root and this leaf, and they are never freed.
            let leaf = unsafe { &*root.add(addr >> ARENA_SHIFT) }.load(Ordering::Relaxed);
            debug_assert!(!leaf.is_null());
            // SAFETY: as above; index masked to LEAF_SLOTS.
            unsafe {
                (*leaf).spans[(addr >> PAGE_SHIFT) & (LEAF_SLOTS - 1)]
                    .store(span, Ordering::Relaxed)
            };
        }
    }
}
