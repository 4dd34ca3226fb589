//! Global roots: the registry of global handles and of root callbacks, and the visitor a
//! callback reports its roots to (`collect` rules 6 and 7).
//!
//! A leaf below the heap: it keeps the lists, and the heap (`Heap::handle_new`,
//! `Heap::add_root_callback`, ...) adds what the marking protocol asks of each change: a
//! handle's old and new values are shaded while marking. The visitor hands each root to
//! whatever marks, through [`MarkRoots`], so this module knows nothing of the marker.
//!
//! Invariant: `GlobalRoots::handles[i].index == i` for every listed handle, and a handle is
//! listed from its creation until it is freed; a slot that is not listed at its index is not
//! live (`remove_handle` refuses it).

use std::sync::atomic::AtomicUsize;

/// Guarded by `Heap::roots`.
pub(crate) struct GlobalRoots {
    pub(crate) handles: Vec<*mut HandleSlot>,
    pub(crate) callbacks: Vec<(u64, RootCallback)>,
    next_callback: u64,
}

// SAFETY: handle slots are heap allocations owned by the registry until freed.
unsafe impl Send for GlobalRoots {}

/// A global handle's slot: the object it keeps alive, and its index in the registry.
pub struct HandleSlot {
    pub(crate) obj: AtomicUsize,
    pub(crate) index: usize,
    /// The address of the heap whose registry lists it (a `&'static Heap`).
    pub(crate) heap: usize,
}

/// A root callback: reports a runtime's own roots, once per cycle, at mark termination with
/// every mutator stopped (`collect` rule 7), on the collector thread. It must not allocate,
/// store through `write`, create, set or free handles, or take a lock that a stopped mutator
/// may hold; its cost is part of that pause.
pub type RootCallback = Box<dyn Fn(&mut RootVisitor<'_>) + Send + Sync>;

/// The identity of a registered root callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallbackId(u64);

impl CallbackId {
    /// The id as a number (for the C ABI).
    pub fn get(self) -> u64 {
        self.0
    }

    /// An id from [`CallbackId::get`].
    pub fn from_raw(id: u64) -> Self {
        Self(id)
    }
}

impl GlobalRoots {
    /// No handles and no callbacks; callback ids count from 1 (the C API's 0 is no callback).
    pub(crate) fn new() -> Self {
        GlobalRoots {
            handles: Vec::new(),
            callbacks: Vec::new(),
            next_callback: 1,
        }
    }

    /// Lists a new handle holding `obj` for the heap at `heap`.
    pub(crate) fn add_handle(&mut self, obj: usize, heap: usize) -> *mut HandleSlot {
        let slot = Box::into_raw(Box::new(HandleSlot {
            obj: AtomicUsize::new(obj),
            index: self.handles.len(),
            heap,
        }));
        self.handles.push(slot);
        slot
    }

    /// True if `slot` is a listed (live) handle.
    ///
    /// # Safety
    /// `slot` points to a readable `HandleSlot` (`Heap::handle_free`'s contract: a handle
    /// that was made and, if freed, not yet reused).
    pub(crate) unsafe fn is_listed(&self, slot: *mut HandleSlot) -> bool {
        // SAFETY: the caller's contract.
        let index = unsafe { (*slot).index };
        self.handles.get(index) == Some(&slot)
    }

    /// Unlists and frees `slot`, a listed handle (checked by the caller with
    /// [`GlobalRoots::is_listed`]).
    ///
    /// # Safety
    /// `slot` is listed, and nobody uses it afterwards.
    pub(crate) unsafe fn remove_handle(&mut self, slot: *mut HandleSlot) {
        // SAFETY: the caller's contract: listed, so live.
        let index = unsafe { (*slot).index };
        self.handles.swap_remove(index);
        if let Some(&moved) = self.handles.get(index) {
            // SAFETY: every listed handle is live.
            unsafe { (*moved).index = index };
        }
        // SAFETY: unlisted now; the caller gives it up.
        drop(unsafe { Box::from_raw(slot) });
    }

    /// Lists a root callback.
    pub(crate) fn add_callback(&mut self, f: RootCallback) -> CallbackId {
        let id = self.next_callback;
        self.next_callback += 1;
        self.callbacks.push((id, f));
        CallbackId(id)
    }

    /// Unlists a root callback; false if it was not listed.
    pub(crate) fn remove_callback(&mut self, id: CallbackId) -> bool {
        let before = self.callbacks.len();
        self.callbacks.retain(|(i, _)| *i != id.0);
        self.callbacks.len() != before
    }
}

/// What a [`RootVisitor`] reports to: the marker.
pub(crate) trait MarkRoots {
    /// A root slot: the object it holds (if any) stays alive.
    ///
    /// # Safety
    /// `slot` is readable.
    unsafe fn root(&mut self, slot: *const usize);
    /// A root value: the object it points into (if any) stays alive.
    fn root_value(&mut self, v: usize);
}

/// Reports roots to the marker: handed to root callbacks.
pub struct RootVisitor<'a> {
    pub(crate) marker: &'a mut dyn MarkRoots,
}

impl RootVisitor<'_> {
    /// Reports a root slot: the object it holds (if any) stays alive.
    ///
    /// # Safety
    /// `slot` is readable.
    pub unsafe fn visit(&mut self, slot: *const *mut u8) {
        // SAFETY: the caller's contract.
        unsafe { self.marker.root(slot.cast()) };
    }

    /// Reports a root value: the object it points into (if any) stays alive.
    pub fn visit_value(&mut self, obj: *const u8) {
        self.marker.root_value(obj as usize);
    }
}
