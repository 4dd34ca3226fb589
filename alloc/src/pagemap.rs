//! The pagemap: the span of any address in two dependent loads.
//!
//! A two-level radix table over the 47-bit user address space of x86-64 and aarch64 Linux: the
//! root has one slot per GiB (128 Ki slots: a 1 MiB static in `.bss`, zero pages until
//! written), each leaf one slot per 8 KiB page of its GiB (1 MiB of metadata, mapped with
//! `MAP_NORESERVE`, so only the parts covering committed pages cost RSS: 64 KiB per 64 MiB
//! arena in use) plus the dirty-page records of its 16 arenas. Addresses we never mapped find a
//! null root slot or a null leaf slot: that is how a foreign pointer passed to `free` is
//! recognised.
//!
//! Why a GiB per root slot: the root is in `.bss` so the free path saves one dependent load,
//! and `.bss` counts against an address-space limit (`ulimit -v`) from the first instruction.
//! With a slot per 64 MiB arena the root would be 16 MiB, a quarter of a 64 MiB limit before
//! any allocation; with a slot per GiB it is 1 MiB and a leaf is 1 MiB of address space, so a
//! program under such a limit keeps it for its own use, at the same two loads per lookup.
//!
//! There is one pagemap per process, shared by every `PageHeap` (the process heap and the
//! private heaps of unit tests). Each 64 MiB arena belongs to the first heap that commits
//! memory in it (its dirty record's owner); a heap never publishes memory in another heap's
//! arena ([`PageMap::ensure`] refuses), so every arena record and span slot is written only
//! under its heap's lock. A leaf may hold arenas of several heaps: leaves are installed with a
//! compare-and-swap.
//!
//! Invariants:
//! 1. Every page of every span (in use or free) maps to that span's record; pages of a region
//!    that are reserved but not yet committed map to null.
//! 2. Slots are written only under the owning page heap's lock; they are read without it
//!    (relaxed: a reader that may legitimately use a block got it through a chain that
//!    already synchronised with the write). A reader always re-checks that the record covers
//!    the address, which makes a stale slot harmless (records are type-stable, see `meta`).
//! 3. Leaves are never freed.

use crate::dirty::ArenaPages;
use crate::meta::MetaArena;
use crate::size_class::{ADDRESS_BITS, ARENA_SHIFT, PAGE_SHIFT};
use crate::span::Span;
use crate::sync::{AtomicPtr, Ordering};
use core::ptr;

/// Bytes in an arena (64 MiB, as Go's).
pub(crate) const ARENA_SIZE: usize = 1 << ARENA_SHIFT;
/// log2 of the address range one leaf covers (1 GiB).
const LEAF_SHIFT: u32 = 30;
const ROOT_SLOTS: usize = 1 << (ADDRESS_BITS - LEAF_SHIFT);
const LEAF_SLOTS: usize = 1 << (LEAF_SHIFT - PAGE_SHIFT);
const LEAF_ARENAS: usize = 1 << (LEAF_SHIFT - ARENA_SHIFT);

struct Leaf {
    spans: [AtomicPtr<Span>; LEAF_SLOTS],
    /// The dirty-page bits of each arena, owned by the page heap the arena belongs to
    /// (`dirty`).
    arenas: [ArenaPages; LEAF_ARENAS],
}

/// The root table. A slot goes from null to a leaf once (compare-and-swap, Release); read
/// lock-free (Acquire).
static ROOT: [AtomicPtr<Leaf>; ROOT_SLOTS] =
    [const { AtomicPtr::new(ptr::null_mut()) }; ROOT_SLOTS];

/// The leaf covering `addr`, which `PageMap::ensure` made; aborts naming `op` if there is
/// none (or `addr` is beyond the address space), instead of letting a safe caller reach a
/// null leaf. One predictable branch: these run when spans are made or released, not per
/// allocation.
#[inline]
fn leaf_of(addr: usize, op: &str) -> *mut Leaf {
    let leaf = ROOT
        .get(addr >> LEAF_SHIFT)
        .map_or(ptr::null_mut(), |s| s.load(Ordering::Relaxed));
    if leaf.is_null() {
        crate::os::write_stderr(b"tricolor: internal error: pagemap::");
        crate::os::write_stderr(op.as_bytes());
        crate::os::write_stderr(b" on an address no leaf covers\n");
        crate::os::abort();
    }
    leaf
}

/// Address → span record (a view of the process-wide table).
pub(crate) struct PageMap;

impl PageMap {
    pub(crate) const fn new() -> Self {
        Self
    }

    /// The span covering `addr`, or null when `addr` is not in memory we map.
    #[inline]
    pub(crate) fn get(&self, addr: usize) -> *mut Span {
        if addr >> ADDRESS_BITS != 0 {
            return ptr::null_mut();
        }
        self.get_wrapping(addr)
    }

    /// As [`PageMap::get`] for `addr` modulo 2^47: an address beyond the address space finds
    /// whatever covers its low 47 bits, one compare and branch cheaper. Only for a caller that
    /// then proves the record covers `addr` by arithmetic no such address passes (the free
    /// path's `index * size == addr - start`, whose left side stays below 2^47).
    #[inline]
    pub(crate) fn get_wrapping(&self, addr: usize) -> *mut Span {
        let leaf = ROOT[(addr >> LEAF_SHIFT) & (ROOT_SLOTS - 1)].load(Ordering::Acquire);
        if leaf.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: leaves are never freed (invariant 3); the index is masked to LEAF_SLOTS.
        unsafe { (*leaf).spans[(addr >> PAGE_SHIFT) & (LEAF_SLOTS - 1)].load(Ordering::Relaxed) }
    }

    /// Makes sure leaves exist for `[start, start + len)` and that every arena it touches
    /// belongs to `owner` (a page heap's address), calling `new_arena` with the dirty-page
    /// record of each arena it claims for `owner` (its base already set). Called under the
    /// page-heap lock before the range is published. Returns false if metadata cannot be
    /// mapped, or if an arena of the range belongs to another heap.
    pub(crate) fn ensure(
        &self,
        meta: &MetaArena,
        owner: usize,
        start: usize,
        len: usize,
        mut new_arena: impl FnMut(&'static ArenaPages),
    ) -> bool {
        debug_assert!(owner != 0 && len > 0);
        if (start + len) >> ADDRESS_BITS != 0 {
            return false;
        }
        for arena in start >> ARENA_SHIFT..=(start + len - 1) >> ARENA_SHIFT {
            let slot = &ROOT[arena >> (LEAF_SHIFT - ARENA_SHIFT)];
            let mut leaf = slot.load(Ordering::Acquire);
            if leaf.is_null() {
                let Some(new) = meta.alloc(size_of::<Leaf>(), 4096) else {
                    return false;
                };
                // Zeroed metadata is a valid leaf (every slot null, no arena claimed). If
                // another heap installed one first, ours stays unused (leaves are never freed).
                leaf = match slot.compare_exchange(
                    ptr::null_mut(),
                    new.as_ptr().cast(),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => new.as_ptr().cast(),
                    Err(theirs) => theirs,
                };
            }
            // SAFETY: leaves are never freed (invariant 3); the index is below LEAF_ARENAS.
            let pages: &'static ArenaPages = unsafe { &(*leaf).arenas[arena % LEAF_ARENAS] };
            match pages.claim(owner) {
                Some(true) => {
                    pages.set_base(arena << ARENA_SHIFT);
                    new_arena(pages);
                }
                Some(false) => {}
                None => return false,
            }
        }
        true
    }

    /// The dirty-page record of the arena holding `addr`, which [`PageMap::ensure`] covered.
    /// Aborts if no leaf covers `addr` (a page-heap bug: a safe function must not dereference
    /// the null leaf).
    pub(crate) fn arena_pages(&self, addr: usize) -> &'static ArenaPages {
        let leaf = leaf_of(addr, "arena_pages");
        // SAFETY: a non-null leaf; leaves are never freed; index below LEAF_ARENAS.
        unsafe { &(*leaf).arenas[(addr >> ARENA_SHIFT) % LEAF_ARENAS] }
    }

    /// Points every page of `[start, start + pages pages)` at `span`. Caller holds the
    /// page-heap lock and has called [`PageMap::ensure`] for the range (else this aborts).
    pub(crate) fn set_range(&self, start: usize, pages: usize, span: *mut Span) {
        for i in 0..pages {
            let addr = start + (i << PAGE_SHIFT);
            let leaf = leaf_of(addr, "set_range");
            // SAFETY: a non-null leaf, and leaves are never freed; index masked.
            unsafe {
                (*leaf).spans[(addr >> PAGE_SHIFT) & (LEAF_SLOTS - 1)]
                    .store(span, Ordering::Relaxed)
            };
        }
    }
}
