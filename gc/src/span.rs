//! GC span records: a run of pages holding objects of one *kind* (one type, or pointer-free
//! bytes, in one size class), or one large object; with alloc bits and mark bits.
//!
//! # States
//! ```text
//!   Free ──new span──▶ InUse ──(sweep finds no marked object)──▶ Free
//! ```
//! A `Free` record sits in its heap's record pool and is reused for a later span; records are
//! never deallocated, so a lock-free `spanmap::lookup` that races with a span's end still
//! reads a valid record and then sees `Free` (or a different range) and rejects the address.
//!
//! # Who may touch what
//! * The layout fields (`start`, `pages`, `size`, `nelems`, `ty`, `reps`, `kind`, `heap`) are
//!   written only while the record is `Free` and not yet published in the span map, under the
//!   heap's central lock; read freely afterwards.
//! * `state`: atomic; written under the central lock.
//! * `mark`: atomic bits; set with `fetch_or` by the markers (the collector thread, mark
//!   workers and assisting mutators), cleared by the sweeper (never while marking).
//! * `owned` (alloc bits, `free_index`, `needzero`, `cached`): by the span's *holder*: its
//!   sweeper while it is claimed for sweeping (`sweepgen` rule 1), else the mutator whose
//!   cache holds it, else, once swept, whoever holds the central lock, and with the world
//!   stopped, the collector. A span is in at most one cache, and only swept spans are cached.
//!   While marking, markers also read the alloc bits without holding the span: nothing
//!   changes them until the next sweep.
//! * `sweepgen`: the sweep generation word, atomic (`sweepgen`).
//!
//! # Allocated or free
//! Slot `i` is allocated iff `i < free_index` or alloc bit `i` is set (Go's `freeindex`):
//! caches hand out free slots in index order and only move `free_index`, so allocation never
//! writes a bitmap. Sweeping makes the mark bits the new alloc bits and resets `free_index`
//! to 0: a dead object costs nothing to free.

use crate::object::TypeInfo;
use crate::sweepgen::SweepGen;
use std::cell::UnsafeCell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use tricolor_alloc::size_class::{CLASSES, PAGE_SIZE};

/// Span record states (module docs).
pub(crate) const FREE: u8 = 0;
pub(crate) const IN_USE: u8 = 1;

/// Byte written over dead objects in verification mode, so a use after free shows.
pub(crate) const POISON: u8 = 0xdb;

/// Smallest GC span for a size class: larger than the allocator's, so a cache refill (which
/// takes a lock) is rare for small objects.
const MIN_SPAN_BYTES: usize = 32 * 1024;

/// Pages of a GC span of size class `class`: a multiple of the allocator's span for the
/// class, whose tail-waste bound it keeps.
pub(crate) fn span_pages(class: usize) -> usize {
    let base = CLASSES[class].pages as usize;
    base * (MIN_SPAN_BYTES / PAGE_SIZE).div_ceil(base)
}

/// The record of one GC span.
pub(crate) struct GcSpan {
    pub(crate) state: AtomicU8,
    /// The owning heap's address, so `write` can reject another heap's object.
    pub(crate) heap: usize,
    pub(crate) start: usize,
    pub(crate) pages: usize,
    /// Slot size (large: the object's bytes).
    pub(crate) size: usize,
    pub(crate) nelems: u32,
    /// `ceil(2^32 / size)`: slot index of byte offset `o` is `(o * div_mul) >> 32`, exact for
    /// every offset in a small span (unit test).
    pub(crate) div_mul: u64,
    pub(crate) ty: &'static TypeInfo,
    /// Copies of `ty` scanned per slot: `size / ty.size`; 0 for pointer-free kinds.
    pub(crate) reps: usize,
    /// The central list this span belongs to (`heap::kind`); `LARGE` for a large object.
    pub(crate) kind: u64,
    /// Alloc and mark bits, word by word side by side: the marker reads both for each
    /// object it reaches, and one cache line then serves both.
    pub(crate) bits: Box<[Bits]>,
    /// Unswept, being swept or swept (`sweepgen`).
    pub(crate) sweepgen: SweepGen,
    /// The weak handles to this span's objects (`weak`): cleared by the sweep that finds
    /// their object dead.
    pub(crate) weak: Mutex<Vec<usize>>,
    /// Some weak handle was registered here since the record was laid out: a sweep takes the
    /// `weak` lock only then (`weak` rule 1).
    pub(crate) has_weak: AtomicBool,
    /// Some object here is an ephemeron key (`ephemeron` rule 1).
    pub(crate) has_keys: AtomicBool,
    owned: UnsafeCell<Owned>,
}

/// 64 slots' alloc bits (the holder's, like `Owned`) and mark bits (atomic).
#[repr(C)]
pub(crate) struct Bits {
    alloc: UnsafeCell<u64>,
    pub(crate) mark: AtomicU64,
}

/// Fields for the span's holder (module docs).
pub(crate) struct Owned {
    pub(crate) free_index: u32,
    /// Freed slots hold old data; fresh pages from the page heap may be known zero.
    pub(crate) needzero: bool,
    /// Held by a mutator's cache.
    pub(crate) cached: bool,
}

/// The `kind` of large-object spans.
pub(crate) const LARGE: u64 = u64::MAX;

impl GcSpan {
    /// A `Free` record.
    pub(crate) fn new(ty: &'static TypeInfo) -> Self {
        Self {
            state: AtomicU8::new(FREE),
            heap: 0,
            start: 0,
            pages: 0,
            size: 0,
            nelems: 0,
            div_mul: 0,
            ty,
            reps: 0,
            kind: 0,
            bits: Box::new([]),
            sweepgen: SweepGen::new(0),
            weak: Mutex::new(Vec::new()),
            has_weak: AtomicBool::new(false),
            has_keys: AtomicBool::new(false),
            owned: UnsafeCell::new(Owned {
                free_index: 0,
                needzero: false,
                cached: false,
            }),
        }
    }

    /// Lays the `Free` record out for `nelems` slots of `size` bytes at `start`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn init(
        &mut self,
        heap: usize,
        start: usize,
        pages: usize,
        size: usize,
        nelems: u32,
        ty: &'static TypeInfo,
        kind: u64,
        zeroed: bool,
        swept: u32,
    ) {
        debug_assert_eq!(self.state.load(Ordering::Relaxed), FREE);
        let words = (nelems as usize).div_ceil(64);
        self.heap = heap;
        self.start = start;
        self.pages = pages;
        self.size = size;
        self.nelems = nelems;
        self.div_mul = (1u64 << 32).div_ceil(size as u64);
        self.ty = ty;
        self.reps = if ty.noscan() { 0 } else { size / ty.size };
        self.kind = kind;
        if self.bits.len() != words {
            self.bits = (0..words)
                .map(|_| Bits {
                    alloc: UnsafeCell::new(0),
                    mark: AtomicU64::new(0),
                })
                .collect();
        } else {
            for b in self.bits.iter_mut() {
                *b.alloc.get_mut() = 0;
                *b.mark.get_mut() = 0;
            }
        }
        let o = self.owned.get_mut();
        o.free_index = 0;
        o.needzero = !zeroed;
        o.cached = false;
        self.sweepgen.reset(swept);
        *self.has_keys.get_mut() = false;
        *self.has_weak.get_mut() = false;
    }

    /// The holder's fields.
    ///
    /// # Safety
    /// The caller is the span's holder (module docs) and holds no other reference from this
    /// call.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn owned(&self) -> &mut Owned {
        // SAFETY: the caller's contract: exclusive access by the holder.
        unsafe { &mut *self.owned.get() }
    }

    /// Bytes the span covers.
    pub(crate) fn bytes(&self) -> usize {
        self.pages * PAGE_SIZE
    }

    /// The slot index holding address `addr`, if `addr` is inside a slot of this in-use span
    /// (not in the tail).
    #[inline]
    pub(crate) fn index_of(&self, addr: usize) -> Option<u32> {
        let off = addr.wrapping_sub(self.start);
        if off >= self.bytes() {
            return None;
        }
        let i = if self.nelems == 1 {
            (off >= self.size) as u64
        } else {
            (off as u64 * self.div_mul) >> 32
        };
        (i < self.nelems as u64).then_some(i as u32)
    }

    /// True when `addr` lies inside one of the span's slots (not in its tail).
    #[inline]
    pub(crate) fn covers(&self, addr: usize) -> bool {
        addr.wrapping_sub(self.start) < self.nelems as usize * self.size
    }

    /// The address of slot `i`.
    #[inline]
    pub(crate) fn slot(&self, i: u32) -> usize {
        self.start + i as usize * self.size
    }

    /// True when slot `i` holds an object (module docs).
    ///
    /// # Safety
    /// As for [`GcSpan::owned`], or a racy read whose answer is only a hint.
    pub(crate) unsafe fn is_allocated(&self, i: u32) -> bool {
        // SAFETY: the caller's contract.
        let o = unsafe { &*self.owned.get() };
        // SAFETY: as above.
        i < o.free_index || unsafe { self.alloc_word(i as usize / 64) } & (1 << (i % 64)) != 0
    }

    /// Alloc bits of slots `64 w ..`.
    ///
    /// # Safety
    /// As for [`GcSpan::owned`] (or a racy hint); `w` is below `bits.len()`.
    #[inline]
    pub(crate) unsafe fn alloc_word(&self, w: usize) -> u64 {
        // SAFETY: the caller's contract.
        unsafe { *self.bits[w].alloc.get() }
    }

    /// Sets alloc bits (tests).
    #[cfg(test)]
    pub(crate) unsafe fn set_alloc_bits(&self, w: usize, bits: u64) {
        // SAFETY: the caller is the holder.
        unsafe { *self.bits[w].alloc.get() |= bits };
    }

    /// Sets mark bit `i`; true if it was clear (the object was white) and this call set it.
    ///
    /// Several markers may run at once (the collector thread and assisting mutators), so the
    /// bit is set with a locked `fetch_or`; a plain load first skips it for objects already
    /// marked, the common case when many pointers lead to one object.
    #[inline]
    pub(crate) fn set_mark(&self, i: u32) -> bool {
        let word = &self.bits[i as usize / 64].mark;
        let bit = 1u64 << (i % 64);
        if word.load(Ordering::Relaxed) & bit != 0 {
            return false;
        }
        word.fetch_or(bit, Ordering::Relaxed) & bit == 0
    }

    /// True when slot `i` is marked.
    pub(crate) fn is_marked(&self, i: u32) -> bool {
        self.bits[i as usize / 64].mark.load(Ordering::Relaxed) & (1 << (i % 64)) != 0
    }

    /// Sweeps the span claimed in generation `sweepgen`: the mark bits become the alloc bits
    /// (Go's swap), the marks clear, and the claim ends (`sweepgen` rule 1). With `poison`,
    /// dead objects are overwritten with [`POISON`]. Returns the objects that survived.
    ///
    /// # Safety
    /// The caller claimed the sweep (`SweepGen::claim` with `sweepgen`), so it is the holder
    /// and the span is not cached; nothing is marking.
    pub(crate) unsafe fn sweep(&self, poison: bool, sweepgen: u32) -> u32 {
        // SAFETY: the caller's contract.
        let o = unsafe { self.owned() };
        let mut live = 0;
        for (w, b) in self.bits.iter().enumerate() {
            let marks = b.mark.swap(0, Ordering::Relaxed);
            // SAFETY: the caller is the holder.
            let a = unsafe { &mut *b.alloc.get() };
            if poison {
                let first = (w * 64) as u32;
                let below = o.free_index.saturating_sub(first).min(64);
                let was = *a | if below == 64 { !0 } else { (1u64 << below) - 1 };
                let mut dead = was & !marks;
                while dead != 0 {
                    let i = first + dead.trailing_zeros();
                    dead &= dead - 1;
                    if i < self.nelems {
                        // SAFETY: slot `i` is in the span, and dead: nothing reaches it.
                        unsafe {
                            std::ptr::write_bytes(self.slot(i) as *mut u8, POISON, self.size)
                        };
                    }
                }
            }
            *a = marks;
            live += marks.count_ones();
        }
        o.free_index = 0;
        o.needzero = true;
        self.sweepgen.finish(sweepgen);
        live
    }

    /// Marked objects in the span.
    #[cfg(test)]
    pub(crate) fn marked(&self) -> u32 {
        self.bits
            .iter()
            .map(|b| b.mark.load(Ordering::Relaxed).count_ones())
            .sum()
    }

    /// Free slots from `free_index` on.
    ///
    /// # Safety
    /// As for [`GcSpan::owned`].
    pub(crate) unsafe fn free_slots(&self) -> u32 {
        // SAFETY: the caller's contract.
        let o = unsafe { &*self.owned.get() };
        let fi = o.free_index;
        if fi >= self.nelems {
            return 0;
        }
        let first = fi as usize / 64;
        let below = if fi % 64 == 0 {
            0
        } else {
            (1u64 << (fi % 64)) - 1
        };
        // Alloc bits past `nelems` are never set (marks are only set on slots).
        // SAFETY: as above.
        let word = |w: usize| unsafe { self.alloc_word(w) };
        let allocated = (word(first) & !below).count_ones()
            + (first + 1..self.bits.len())
                .map(|w| word(w).count_ones())
                .sum::<u32>();
        self.nelems - fi - allocated
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::Registry;
    use tricolor_alloc::size_class::NUM_CLASSES;

    fn span(class: usize) -> GcSpan {
        let r = Registry::new();
        let ty = r.get(0).unwrap();
        let pages = span_pages(class);
        let size = CLASSES[class].size as usize;
        let mut s = GcSpan::new(ty);
        let n = (pages * PAGE_SIZE / size) as u32;
        s.init(1, 1 << 40, pages, size, n, ty, 0, true, 0);
        s
    }

    #[test]
    fn slot_index_is_exact_for_every_offset_of_every_class() {
        for class in 0..NUM_CLASSES {
            let s = span(class);
            // Every offset natively; a stride under Miri, which interprets each iteration.
            for off in (0..s.bytes()).step_by(if cfg!(miri) { 97 } else { 1 }) {
                let want = off / s.size;
                let got = s.index_of(s.start + off);
                if want < s.nelems as usize {
                    assert_eq!(got, Some(want as u32), "class {class} offset {off}");
                } else {
                    assert_eq!(got, None, "class {class} tail offset {off}");
                }
            }
            assert_eq!(s.index_of(s.start - 1), None);
            assert_eq!(s.index_of(s.start + s.bytes()), None);
            let waste = s.bytes() - s.nelems as usize * s.size;
            assert!(waste * 8 <= s.bytes(), "class {class}: tail waste {waste}");
        }
    }

    #[test]
    fn mark_bits_become_alloc_bits() {
        let s = span(1);
        // SAFETY: the test owns the span.
        let o = unsafe { s.owned() };
        o.free_index = 70;
        assert!(s.set_mark(3));
        assert!(!s.set_mark(3));
        assert!(s.set_mark(65));
        assert!(s.is_marked(65) && !s.is_marked(64));
        assert_eq!(s.marked(), 2);
        // SAFETY: as above.
        unsafe {
            assert!(s.is_allocated(69) && !s.is_allocated(70));
            assert!(s.sweepgen.claim(2) && !s.sweepgen.claim(2));
            assert_eq!(s.sweep(false, 2), 2);
            assert!(s.is_allocated(3) && s.is_allocated(65));
            assert!(!s.is_allocated(0) && !s.is_allocated(69));
            assert_eq!(s.free_slots(), s.nelems - 2);
            assert!(!s.is_marked(3));
            assert!(s.sweepgen.is_swept(2) && !s.sweepgen.claim(2));
        }
    }

    #[test]
    fn sweeping_poisons_only_dead_objects() {
        let layout = std::alloc::Layout::from_size_align(32 * 1024, 8192).unwrap();
        // SAFETY: a plain allocation for the test to play span.
        let mem = unsafe { std::alloc::alloc_zeroed(layout) };
        let mut s = span(tricolor_alloc::size_class::class_of(16));
        assert_eq!(s.size, 16);
        s.start = mem as usize;
        // SAFETY: the test owns the span and its memory.
        unsafe {
            s.owned().free_index = 3;
            s.set_alloc_bits(0, 1 << 10);
            s.set_mark(1);
            assert!(s.sweepgen.claim(2));
            s.sweep(true, 2);
            let byte = |i: usize| *mem.add(i * 16);
            assert_eq!(byte(0), POISON);
            assert_eq!(byte(1), 0);
            assert_eq!(byte(2), POISON);
            assert_eq!(byte(3), 0, "never allocated: left alone");
            assert_eq!(byte(10), POISON);
            std::alloc::dealloc(mem, layout);
        }
    }
}
