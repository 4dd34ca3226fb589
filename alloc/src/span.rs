//! Span records: one per run of pages, in use or free.
//!
//! # States
//! ```text
//!   Unused ──grow/split──▶ Free ──alloc──▶ Small(class) ──last object back──▶ Free
//!     ▲                     │  ├──alloc──▶ Large ──────────free────────────▶ Free
//!     │                     │  └──scavenger──▶ Releasing ──madvise done──▶ Free
//!     └──merged into a neighbour┘
//! ```
//! `Unused` records sit in the page heap's record pool. Who may write what:
//! * `start`, `pages`, `state`, `class`, `object_size`, `div_mul`: written only under the
//!   page-heap lock; read lock-free (relaxed) by the free path's checks, which always confirm
//!   the record covers the pointer. The class's size and division magic are copied here so the
//!   free path's chain of dependent loads ends at the record (no class-table load after it).
//! * Invariant: `class` is below `NUM_CLASSES` exactly when the span is Small, and is then its
//!   size class ([`NOT_SMALL`] or [`SAMPLED`] otherwise), so that one byte compare tells the
//!   free path a span is Small and of the expected class (`Span::set_state` keeps it).
//! * `bump`: written under `Central[class]`'s lock while Small; read relaxed by free checks.
//! * A Large span whose `class` is [`SAMPLED`] holds one allocation the heap profiler sampled
//!   (`profile`): its `div_mul` is the profile bucket (the bucket knows the bytes). The
//!   allocating thread writes it after the page heap hands it the span and before it returns
//!   the block; the thread that frees the block reads it, having received the pointer
//!   through whatever synchronised the hand-over.
//! * `owned` (lists, counts): guarded by the lock of the span's owner: the page heap's lock
//!   while Unused, Free or Large, `Central[class]`'s lock while Small. Ownership moves only
//!   while both locks are held (central → page heap, the lock order).

use crate::block::FreeBlock;
use crate::size_class::{CLASSES, PAGE_SHIFT};
use crate::sync::{AtomicU8, AtomicU32, AtomicUsize, Ordering};
use core::cell::UnsafeCell;
use core::ptr;

/// A span's life-cycle state (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum SpanState {
    Unused = 0,
    Free = 1,
    Small = 2,
    Large = 3,
    /// Pages out of the free index while the scavenger returns them to the OS.
    Releasing = 4,
}

/// `class` of a Large span holding a sampled allocation (module docs); no size class has it.
pub(crate) const SAMPLED: usize = 0xff;
/// `class` of every span that is not Small (and not sampled): no size class has it either.
pub(crate) const NOT_SMALL: usize = 0xfe;
const _: () = assert!(crate::size_class::NUM_CLASSES <= NOT_SMALL);

/// The record describing one run of pages.
#[repr(C, align(64))]
pub(crate) struct Span {
    start: AtomicUsize,
    pages: AtomicUsize,
    state: AtomicU8,
    class: AtomicU8,
    /// Small spans: objects carved so far; objects at index >= bump were never handed out.
    pub(crate) bump: AtomicU32,
    object_size: AtomicU32,
    div_mul: AtomicU32,
    owned: UnsafeCell<Owned>,
}

const _: () = assert!(size_of::<Span>() <= 64);

/// Fields guarded by the span's owner lock (module docs).
pub(crate) struct Owned {
    /// Small: free objects returned to this span.
    pub(crate) free: *mut FreeBlock,
    /// Small: objects handed out of the span (to caches or users) and not yet returned.
    pub(crate) allocated: u32,
    /// Free/Large: every byte is known to be zero (fresh from the OS, never written).
    pub(crate) zeroed: bool,
    pub(crate) next: *mut Span,
    pub(crate) prev: *mut Span,
}

impl Span {
    pub(crate) const fn new() -> Self {
        Self {
            start: AtomicUsize::new(0),
            pages: AtomicUsize::new(0),
            state: AtomicU8::new(SpanState::Unused as u8),
            class: AtomicU8::new(NOT_SMALL as u8),
            bump: AtomicU32::new(0),
            object_size: AtomicU32::new(0),
            div_mul: AtomicU32::new(0),
            owned: UnsafeCell::new(Owned {
                free: ptr::null_mut(),
                allocated: 0,
                zeroed: false,
                next: ptr::null_mut(),
                prev: ptr::null_mut(),
            }),
        }
    }

    #[inline]
    pub(crate) fn start(&self) -> usize {
        self.start.load(Ordering::Relaxed)
    }
    #[inline]
    pub(crate) fn pages(&self) -> usize {
        self.pages.load(Ordering::Relaxed)
    }
    #[inline]
    pub(crate) fn bytes(&self) -> usize {
        self.pages() << PAGE_SHIFT
    }
    #[inline]
    pub(crate) fn end(&self) -> usize {
        self.start() + self.bytes()
    }
    #[inline]
    pub(crate) fn state(&self) -> SpanState {
        match self.state.load(Ordering::Relaxed) {
            1 => SpanState::Free,
            2 => SpanState::Small,
            3 => SpanState::Large,
            4 => SpanState::Releasing,
            _ => SpanState::Unused,
        }
    }
    /// A Small span's size class; [`NOT_SMALL`] or [`SAMPLED`] for any other (module docs).
    #[inline]
    pub(crate) fn class(&self) -> usize {
        self.class.load(Ordering::Relaxed) as usize
    }

    /// Sets placement; page-heap lock held.
    pub(crate) fn set_range(&self, start: usize, pages: usize) {
        self.start.store(start, Ordering::Relaxed);
        self.pages.store(pages, Ordering::Relaxed);
    }

    /// Small spans: bytes per object, and `size_class::SizeClass::div_mul`.
    #[inline]
    pub(crate) fn object_size(&self) -> (usize, u64) {
        (
            self.object_size.load(Ordering::Relaxed) as usize,
            self.div_mul.load(Ordering::Relaxed) as u64,
        )
    }

    /// True when `addr` is an object boundary of this Small span below its bump mark: a block
    /// handed out at least once. No range test: `index * size == off` (a product of two 32-bit
    /// numbers, exact in 64 bits) and `index < bump <= objects` give `off < objects * size`,
    /// whatever the multiply-shift made of an `off` out of range (`api`'s module docs).
    #[inline(always)]
    pub(crate) fn holds_handed_out(&self, addr: usize) -> bool {
        let (size, div_mul) = self.object_size();
        let off = addr.wrapping_sub(self.start());
        let index = ((off as u64).wrapping_mul(div_mul) >> 32) as usize;
        index * size == off && index < self.bump.load(Ordering::Relaxed) as usize
    }

    /// Sets state and class (`class` is read for a Small span, and for a Large one holding a
    /// sampled allocation, [`SAMPLED`]; any other span gets [`NOT_SMALL`]); page-heap lock held.
    pub(crate) fn set_state(&self, state: SpanState, class: usize) {
        let (size, div_mul, class) = match state {
            SpanState::Small => (CLASSES[class].size, CLASSES[class].div_mul, class),
            SpanState::Large if class == SAMPLED => (0, 0, SAMPLED),
            _ => (0, 0, NOT_SMALL),
        };
        self.object_size.store(size, Ordering::Relaxed);
        self.div_mul.store(div_mul, Ordering::Relaxed);
        self.class.store(class as u8, Ordering::Relaxed);
        self.state.store(state as u8, Ordering::Relaxed);
    }

    /// Records the profile bucket of the sampled allocation this Large span (made with class
    /// [`SAMPLED`]) holds. Called by its owner before the block is handed out.
    pub(crate) fn set_sample(&self, bucket: u32) {
        debug_assert!(self.state() == SpanState::Large && self.class() == SAMPLED);
        self.div_mul.store(bucket, Ordering::Relaxed);
    }

    /// The profile bucket of the sampled allocation this span holds, if it is a Large span
    /// holding one (module docs). Racy unless the caller owns the span.
    pub(crate) fn sample(&self) -> Option<u32> {
        (self.state() == SpanState::Large && self.class() == SAMPLED)
            .then(|| self.div_mul.load(Ordering::Relaxed))
    }

    /// The owner-guarded fields.
    ///
    /// # Safety
    /// The caller holds the lock of the span's current owner (module docs) and no other
    /// reference from `owned` is live.
    #[allow(clippy::mut_from_ref)]
    #[inline]
    pub(crate) unsafe fn owned(&self) -> &mut Owned {
        // SAFETY: exclusive access is the caller's obligation (owner lock held).
        unsafe { &mut *self.owned.get() }
    }
}

/// An intrusive doubly-linked list of spans, through `Owned::{next, prev}`. The list's owner
/// lock guards both the list and the links of its members.
pub(crate) struct SpanList {
    head: *mut Span,
}

// SAFETY: a SpanList is only reached through its owner's lock (page heap or central).
unsafe impl Send for SpanList {}

impl SpanList {
    pub(crate) const fn new() -> Self {
        Self {
            head: ptr::null_mut(),
        }
    }

    pub(crate) fn head(&self) -> *mut Span {
        self.head
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    /// # Safety
    /// `s` is a valid record not on any list, owned by this list's lock holder (the caller).
    pub(crate) unsafe fn push(&mut self, s: *mut Span) {
        // SAFETY: caller owns `s` and the list's members under the same lock.
        unsafe {
            let o = (*s).owned();
            o.prev = ptr::null_mut();
            o.next = self.head;
            if !self.head.is_null() {
                (*self.head).owned().prev = s;
            }
        }
        self.head = s;
    }

    /// Inserts `s` before `at` (or at the tail when `at` is null; `tail` is then the last
    /// member or null).
    ///
    /// # Safety
    /// As for [`SpanList::push`]; `at` and `tail` are members of this list or null.
    pub(crate) unsafe fn insert_before(&mut self, s: *mut Span, at: *mut Span, tail: *mut Span) {
        // SAFETY: all records are members (or `s`, about to be) under the caller's lock.
        unsafe {
            let o = (*s).owned();
            if at.is_null() {
                o.next = ptr::null_mut();
                o.prev = tail;
                if tail.is_null() {
                    self.head = s;
                } else {
                    (*tail).owned().next = s;
                }
                return;
            }
            let prev = (*at).owned().prev;
            o.next = at;
            o.prev = prev;
            (*at).owned().prev = s;
            if prev.is_null() {
                self.head = s;
            } else {
                (*prev).owned().next = s;
            }
        }
    }

    /// # Safety
    /// `s` is a member of this list; caller holds the list's lock.
    pub(crate) unsafe fn remove(&mut self, s: *mut Span) {
        // SAFETY: `s` and its neighbours are members under the caller's lock.
        unsafe {
            let o = (*s).owned();
            if o.prev.is_null() {
                debug_assert_eq!(self.head, s);
                self.head = o.next;
            } else {
                (*o.prev).owned().next = o.next;
            }
            if !o.next.is_null() {
                (*o.next).owned().prev = o.prev;
            }
            o.next = ptr::null_mut();
            o.prev = ptr::null_mut();
        }
    }
}
