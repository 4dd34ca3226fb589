//! Spans and central lists: every GC span of a heap, by kind, with the records they use, under
//! `Heap::central`. A refill takes a span here (`take_span`: a swept one with room, else an
//! unswept one swept now, else a new one from the page heap), and a cache gives it back
//! (`return_span`); large objects get a span each (`new_large`). Sweeping (`sweep`) works on
//! the same lists.
//!
//! Invariants: every small span in use is on `all`; a span is on a kind's `partial` only while
//! swept and not cached; a record is reused only from `records`, never from `retired` (`sweep`
//! invariant 2). Everything here is guarded by `Heap::central`.

use crate::object::TypeInfo;
use crate::span::{self, GcSpan, IN_USE, LARGE};
use crate::spanmap;
use std::collections::HashMap;
use std::ptr;
use std::sync::atomic::Ordering;
use tricolor_alloc::size_class::{CLASSES, PAGE_SIZE};

/// The spans of one kind. Guarded by `Heap::central`.
#[derive(Default)]
pub(crate) struct KindLists {
    /// Swept spans with a free slot, not cached.
    pub(crate) partial: Vec<*mut GcSpan>,
    /// Spans not yet swept in this cycle (entries may have gone stale: check before use).
    pub(crate) unswept: Vec<*mut GcSpan>,
}

/// Guarded by `Heap::central`.
pub(crate) struct Central {
    pub(crate) kinds: HashMap<u64, KindLists>,
    /// Every small span in use, plus stale `FREE` records until the next sweep termination.
    pub(crate) all: Vec<*mut GcSpan>,
    pub(crate) large: Vec<*mut GcSpan>,
    /// Records ready for reuse.
    pub(crate) records: Vec<*mut GcSpan>,
    /// Records freed since the last sweep termination: possibly still listed, so not reused
    /// until the lists are rebuilt.
    pub(crate) retired: Vec<*mut GcSpan>,
    /// The sweep generation (`sweepgen`): grows by 2 at each flip.
    pub(crate) sweepgen: u32,
    /// The proportional sweeper's position in `all`.
    pub(crate) cursor: usize,
    /// Bytes of GC spans in use.
    pub(crate) span_bytes: usize,
}

// SAFETY: as for `World`: records owned by the heap, moved only inside the mutex.
unsafe impl Send for Central {}

impl Central {
    /// A span from the page heap for `nelems` slots of `size` bytes of kind `kind`.
    fn new_span(
        &mut self,
        heap: usize,
        pages: usize,
        size: usize,
        nelems: u32,
        ty: &'static TypeInfo,
        kind: u64,
    ) -> Option<*mut GcSpan> {
        let (mem, zeroed) = tricolor_alloc::alloc_pages(pages)?;
        let rec = self
            .records
            .pop()
            .unwrap_or_else(|| Box::into_raw(Box::new(GcSpan::new(ty))));
        let start = mem.as_ptr() as usize;
        // SAFETY: the record is Free and unpublished: ours alone under the central lock.
        unsafe {
            (*rec).init(
                heap,
                start,
                pages,
                size,
                nelems,
                ty,
                kind,
                zeroed,
                self.sweepgen,
            )
        };
        if !spanmap::set(start, pages, rec) {
            spanmap::set(start, pages, ptr::null_mut());
            // SAFETY: the run came from `alloc_pages` and nothing else has seen it.
            unsafe { tricolor_alloc::free(mem.as_ptr()) };
            self.records.push(rec);
            return None;
        }
        // SAFETY: the record is published and initialised.
        unsafe { (*rec).state.store(IN_USE, Ordering::Release) };
        self.span_bytes += pages * PAGE_SIZE;
        Some(rec)
    }

    /// A swept span with free slots for `kind` (of type `ty` in size class `class`), marked
    /// cached, and the bytes of its free slots (which the caller counts as allocated). `None`
    /// when the page heap cannot grow.
    pub(crate) fn take_span(
        &mut self,
        heap: usize,
        ty: &'static TypeInfo,
        class: usize,
        kind: u64,
        poison: bool,
    ) -> Option<(*mut GcSpan, usize)> {
        let s = match self.find_span(kind, poison) {
            Some(s) => s,
            None => {
                let pages = span::span_pages(class);
                let size = CLASSES[class].size as usize;
                let n = (pages * PAGE_SIZE / size) as u32;
                let s = self.new_span(heap, pages, size, n, ty, kind)?;
                self.all.push(s);
                s
            }
        };
        self.sweep_some(poison);
        // SAFETY: `find_span`/`new_span` give an uncached in-use span; we hold the lock.
        let r = unsafe { &*s };
        // SAFETY: as above.
        unsafe { r.owned().cached = true };
        // SAFETY: we are now its holder.
        let free = unsafe { r.free_slots() } as usize;
        Some((s, free * r.size))
    }

    /// Takes back a cached span with its allocation position; returns the bytes of its free
    /// slots (which stop counting as allocated).
    ///
    /// # Safety
    /// The caller's cache held `s`, and stops holding it.
    pub(crate) unsafe fn return_span(
        &mut self,
        s: *mut GcSpan,
        free_index: u32,
        keep_partial: bool,
    ) -> usize {
        // SAFETY: the caller's contract: we are the holder until `cached` is cleared.
        let r = unsafe { &*s };
        // SAFETY: as above.
        let o = unsafe { r.owned() };
        o.free_index = free_index;
        // SAFETY: as above.
        let free = unsafe { r.free_slots() } as usize;
        o.cached = false;
        if keep_partial && free > 0 {
            self.kinds.entry(r.kind).or_default().partial.push(s);
        }
        free * r.size
    }

    /// A span of `pages` pages for one large object of `bytes` bytes of type `ty`.
    pub(crate) fn new_large(
        &mut self,
        heap: usize,
        pages: usize,
        bytes: usize,
        ty: &'static TypeInfo,
    ) -> Option<*mut GcSpan> {
        let s = self.new_span(heap, pages, bytes, 1, ty, LARGE)?;
        self.large.push(s);
        Some(s)
    }
}
