//! The pagemap: the span of any address in two dependent loads.
//!
//! A two-level radix table over the 47-bit user address space of x86-64 and aarch64 Linux: the
//! root has one slot per 64 MiB arena (2 Mi slots: a 16 MiB static in `.bss`, zero pages until
//! written, so only slots in use cost RSS), each leaf one slot per 8 KiB page of its arena
//! (64 KiB of metadata per arena with committed memory). Addresses we never mapped find a null
//! root slot or a null leaf slot: that is how a foreign pointer passed to `free` is recognised.
//!
//! There is one pagemap per process, shared by every `PageHeap` (the process heap and the
//! private heaps of unit tests): regions are whole, aligned arenas, so every root slot and leaf
//! belongs to exactly one heap and is written only under that heap's lock.
//! The root being a static saves the free path one dependent load.
//!
//! Invariants:
//! 1. Every page of every span (in use or free) maps to that span's record; pages of a region
//!    that are reserved but not yet committed map to null.
//! 2. Slots are written only under the page-heap lock; they are read without it (relaxed:
//!    a reader that may legitimately use a block got it through a chain that already
//!    synchronised with the write). A reader always re-checks that the record covers the
//!    address, which makes a stale slot harmless (records are type-stable, see `meta`).
//! 3. Leaves are never freed.

use crate::dirty::ArenaPages;
use crate::meta::MetaArena;
use crate::size_class::PAGE_SHIFT;
use crate::span::Span;
use crate::sync::{AtomicPtr, Ordering};
use core::ptr;

/// log2 of the arena size: the granularity at which address space is reserved and mapped.
pub(crate) const ARENA_SHIFT: u32 = 26;
/// Bytes in an arena (64 MiB, as Go's).
pub(crate) const ARENA_SIZE: usize = 1 << ARENA_SHIFT;
const ADDRESS_BITS: u32 = 47;
const ROOT_SLOTS: usize = 1 << (ADDRESS_BITS - ARENA_SHIFT);
const LEAF_SLOTS: usize = 1 << (ARENA_SHIFT - PAGE_SHIFT);

struct Leaf {
    spans: [AtomicPtr<Span>; LEAF_SLOTS],
    /// The arena's dirty-page bits, owned by the page heap the arena belongs to (`dirty`).
    pages: ArenaPages,
}

/// The root table. Slots are written once each, under a page-heap lock (Release); read
/// lock-free (Acquire).
static ROOT: [AtomicPtr<Leaf>; ROOT_SLOTS] =
    [const { AtomicPtr::new(ptr::null_mut()) }; ROOT_SLOTS];

/// Address → span record (a view of the process-wide table).
pub(crate) struct PageMap;

impl PageMap {
    pub(crate) const fn new() -> Self {
        Self
    }

    /// The span covering `addr`, or null when `addr` is not in memory we map.
    #[inline]
    pub(crate) fn get(&self, addr: usize) -> *mut Span {
        let Some(slot) = ROOT.get(addr >> ARENA_SHIFT) else {
            return ptr::null_mut();
        };
        let leaf = slot.load(Ordering::Acquire);
        if leaf.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: leaves are never freed (invariant 3); the index is masked to LEAF_SLOTS.
        unsafe { (*leaf).spans[(addr >> PAGE_SHIFT) & (LEAF_SLOTS - 1)].load(Ordering::Relaxed) }
    }

    /// Makes sure root and leaves exist for `[start, start + len)`, calling `new_arena` with the
    /// dirty-page record of each arena whose leaf it creates (its base already set). Called
    /// under the page-heap lock before the range is published. Returns false if metadata cannot
    /// be mapped.
    pub(crate) fn ensure(
        &self,
        meta: &MetaArena,
        start: usize,
        len: usize,
        mut new_arena: impl FnMut(&'static ArenaPages),
    ) -> bool {
        if (start + len) >> ADDRESS_BITS != 0 {
            return false;
        }
        let first = start >> ARENA_SHIFT;
        for (i, slot) in ROOT[first..=(start + len - 1) >> ARENA_SHIFT]
            .iter()
            .enumerate()
        {
            if slot.load(Ordering::Acquire).is_null() {
                let Some(leaf) = meta.alloc(size_of::<Leaf>(), 4096) else {
                    return false;
                };
                let leaf = leaf.as_ptr().cast::<Leaf>();
                // SAFETY: zeroed metadata is a valid leaf (every slot null, no page dirty),
                // never freed (invariant 3).
                let pages = unsafe { &(*leaf).pages };
                pages.set_base((first + i) << ARENA_SHIFT);
                slot.store(leaf, Ordering::Release);
                new_arena(pages);
            }
        }
        true
    }

    /// The dirty-page record of the arena holding `addr`, which [`PageMap::ensure`] covered.
    pub(crate) fn arena_pages(&self, addr: usize) -> &'static ArenaPages {
        let leaf = ROOT[addr >> ARENA_SHIFT].load(Ordering::Relaxed);
        debug_assert!(!leaf.is_null(), "arena_pages before ensure");
        // SAFETY: `ensure` created this leaf; leaves are never freed.
        unsafe { &(*leaf).pages }
    }

    /// Points every page of `[start, start + pages pages)` at `span`. Caller holds the
    /// page-heap lock and has called [`PageMap::ensure`] for the range.
    pub(crate) fn set_range(&self, start: usize, pages: usize, span: *mut Span) {
        for i in 0..pages {
            let addr = start + (i << PAGE_SHIFT);
            let leaf = ROOT[addr >> ARENA_SHIFT].load(Ordering::Relaxed);
            debug_assert!(!leaf.is_null(), "set_range before ensure");
            // SAFETY: `ensure` created this leaf and leaves are never freed; index masked.
            unsafe {
                (*leaf).spans[(addr >> PAGE_SHIFT) & (LEAF_SLOTS - 1)]
                    .store(span, Ordering::Relaxed)
            };
        }
    }
}
