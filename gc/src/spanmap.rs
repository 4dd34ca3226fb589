//! Address → GC span record, for every heap in the process: a two-level table indexed by
//! 8 KiB page number over the 47-bit user address space.
//!
//! Decision: the collector keeps its own map rather than sharing the allocator's pagemap,
//! because the allocator's record for a GC span's pages describes one Large page run, while
//! the marker and `write` need the GC record (object size, type, bitmaps) in one lookup.
//! Both maps cover the same pages; the allocator's still catches a GC object passed to
//! `free`.
//!
//! Invariants: a leaf, once published, is never freed or moved; an entry is non-null exactly
//! while a GC span covering that page is in use (set before the span's first object is handed
//! out, cleared when its pages go back to the page heap). Entries are written under the owning
//! heap's central lock, and read lock-free (acquire), and records are never freed (they are
//! recycled, `span.rs`), so a racing reader always dereferences a valid record and then checks
//! its state.

use crate::span::{GcSpan, IN_USE};
use std::ptr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicPtr, Ordering};
use tricolor_alloc::size_class::PAGE_SHIFT;

const ADDR_BITS: u32 = tricolor_alloc::size_class::ADDRESS_BITS;
const LEAF_BITS: u32 = 17;
const ROOT_BITS: u32 = ADDR_BITS - PAGE_SHIFT - LEAF_BITS;
const LEAF_LEN: usize = 1 << LEAF_BITS;

type Leaf = [AtomicPtr<GcSpan>; LEAF_LEN];

static ROOT: [AtomicPtr<Leaf>; 1 << ROOT_BITS] =
    [const { AtomicPtr::new(ptr::null_mut()) }; 1 << ROOT_BITS];
/// Serialises leaf creation.
static GROW: Mutex<()> = Mutex::new(());

/// The span covering `addr`, or null.
#[inline]
pub(crate) fn lookup(addr: usize) -> *mut GcSpan {
    let page = addr >> PAGE_SHIFT;
    let Some(slot) = ROOT.get(page >> LEAF_BITS) else {
        return ptr::null_mut();
    };
    let leaf = slot.load(Ordering::Acquire);
    if leaf.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: published leaves are never freed (module invariant).
    unsafe { (*leaf)[page & (LEAF_LEN - 1)].load(Ordering::Acquire) }
}

/// The in-use span of the heap at address `heap` that covers `addr`: the check every
/// pointer taken from a user (`write`, handles) or found by the marker starts with.
#[inline]
pub(crate) fn in_use(addr: usize, heap: usize) -> Option<&'static GcSpan> {
    let s = lookup(addr);
    if s.is_null() {
        return None;
    }
    // SAFETY: records are never freed (module invariant).
    let r = unsafe { &*s };
    (r.heap == heap && r.state.load(Ordering::Relaxed) == IN_USE).then_some(r)
}

/// Points pages `start..start + pages` (page-aligned) at `span` (null to clear). Returns false
/// if a leaf could not be allocated; nothing is then left half set that matters, as the
/// caller gives the pages back.
pub(crate) fn set(start: usize, pages: usize, span: *mut GcSpan) -> bool {
    let first = start >> PAGE_SHIFT;
    for page in first..first + pages {
        let Some(slot) = ROOT.get(page >> LEAF_BITS) else {
            return false;
        };
        let mut leaf = slot.load(Ordering::Acquire);
        if leaf.is_null() {
            leaf = grow(slot);
            if leaf.is_null() {
                return false;
            }
        }
        // SAFETY: as in `lookup`.
        unsafe { (*leaf)[page & (LEAF_LEN - 1)].store(span, Ordering::Release) };
    }
    true
}

#[cold]
fn grow(slot: &AtomicPtr<Leaf>) -> *mut Leaf {
    let _g = GROW.lock().unwrap_or_else(|e| e.into_inner());
    let leaf = slot.load(Ordering::Acquire);
    if !leaf.is_null() {
        return leaf;
    }
    let bytes = size_of::<Leaf>();
    let Some((p, zeroed)) = tricolor_alloc::alloc_pages(bytes >> PAGE_SHIFT) else {
        return ptr::null_mut();
    };
    if !zeroed {
        // SAFETY: the run is ours, committed, `bytes` long.
        unsafe { ptr::write_bytes(p.as_ptr(), 0, bytes) };
    }
    // All-zero bytes are a valid array of null `AtomicPtr`s.
    let leaf = p.as_ptr().cast::<Leaf>();
    slot.store(leaf, Ordering::Release);
    leaf
}
