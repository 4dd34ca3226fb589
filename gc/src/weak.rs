//! Weak handles (Go 1.24's `weak.Pointer`): a handle yields its object while the object is
//! reachable, and null from the moment the collector finds it unreachable, for every reader
//! at once.
//!
//! A handle is a heap-allocated word (`WeakSlot`) holding the object's address, registered
//! in its span's `weak` list. It is not a root. Clearing is the sweep's work, as in Go (where
//! sweeping processes the span's weak specials), so no pause does work per handle.
//!
//! # Rules
//! 1. The sweep of a small span clears, under the span's `weak` lock, every registered handle
//!    whose object it finds unmarked, before the span's sweep generation says swept
//!    (`span::GcSpan::sweep`). A large object's handles are cleared when the sweep after the
//!    restart frees it (`Central::queue_sweep`, under the central lock, while
//!    `Heap::large_pending` is set).
//! 2. `get` reads the handle, then makes sure the object's fate in the last cycle is settled:
//!    its span swept in the current generation (sweeping it now under the central lock, as
//!    lazy sweeping does, or waiting for the background sweeper that holds it), or for a
//!    large object, `large_pending` clear. Then it reads the handle again: what it returns
//!    was marked in the last cycle (or allocated since), so it is alive.
//! 3. While marking, `get` shades what it returns, through the barrier buffer: the object
//!    may be unreachable but not yet found so, and the reader now holds it (Go and MMTk's
//!    `load_weak_reference`). No object the collector already decided is dead is returned:
//!    that decision is made at mark termination, and rule 2 waits for its sweep.
//! 4. Creating a handle registers it under the span's `weak` lock; freeing it unregisters it
//!    there, after re-reading its word under that lock (a sweep may have cleared it).

use crate::heap::Heap;
use crate::misuse;
use crate::mutator::MutatorState;
use crate::span::{GcSpan, LARGE};
use crate::spanmap;
use std::sync::MutexGuard;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A weak handle (the C `tc_weak`).
pub struct WeakSlot {
    obj: AtomicUsize,
    heap: &'static Heap,
}

fn lock_weak(s: &GcSpan) -> MutexGuard<'_, Vec<usize>> {
    s.weak.lock().unwrap_or_else(|e| e.into_inner())
}

impl GcSpan {
    /// Rule 1: clears the handles to objects this span's marking left white.
    pub(crate) fn clear_dead_weak(&self) {
        // A handle registered after this load is to an object its creator holds: alive.
        if !self.has_weak.load(Ordering::Acquire) {
            return;
        }
        let mut list = lock_weak(self);
        if list.is_empty() {
            return;
        }
        list.retain(|&w| {
            // SAFETY: registered handles are live (rule 4 unregisters before freeing).
            let w = unsafe { &*(w as *const WeakSlot) };
            let obj = w.obj.load(Ordering::Relaxed);
            let alive = self.index_of(obj).is_some_and(|i| self.is_marked(i));
            if !alive {
                w.obj.store(0, Ordering::Release);
            }
            alive
        });
    }
}

impl MutatorState {
    /// A weak handle to `obj`, an object of this heap (aborts otherwise; null gives a handle
    /// that yields null).
    pub fn weak_new(&self, obj: *mut u8) -> *mut WeakSlot {
        self.check_attached("weak_new");
        let w = Box::into_raw(Box::new(WeakSlot {
            obj: AtomicUsize::new(obj as usize),
            heap: self.heap,
        }));
        if obj.is_null() {
            return w;
        }
        let r = self.heap.object_start(obj, "weak_new", "", "this heap");
        r.has_weak.store(true, Ordering::Release);
        lock_weak(r).push(w as usize);
        w
    }

    /// The object of weak handle `w` if it is still reachable, else null.
    ///
    /// # Safety
    /// `w` is a live handle of this mutator's heap.
    pub unsafe fn weak_get(&self, w: *const WeakSlot) -> *mut u8 {
        self.check_attached("weak_get");
        // SAFETY: the caller's contract.
        let w = unsafe { &*w };
        if !std::ptr::eq(w.heap, self.heap) {
            misuse::abort(format_args!(
                "weak_get(): handle {:p} belongs to another heap",
                w as *const WeakSlot
            ));
        }
        let obj = w.obj.load(Ordering::Acquire);
        if obj == 0 {
            return std::ptr::null_mut();
        }
        // The handle is registered, so its object's span is in use (rule 1 clears the handle
        // before the span can be freed).
        if let Some(r) = spanmap::in_use(obj, self.heap.addr()) {
            self.heap.settle(r);
        }
        let obj = w.obj.load(Ordering::Acquire);
        if obj != 0 && self.heap.mark.marking.load(Ordering::Relaxed) {
            self.shade_one(obj);
        }
        obj as *mut u8
    }
}

impl Heap {
    /// Rule 2: waits until span `r`'s objects' fate in the last cycle is applied.
    fn settle(&self, r: &GcSpan) {
        if r.kind == LARGE {
            // The collector thread frees the dead ones right after the restart: wait for it.
            while self.large_pending.load(Ordering::Acquire) {
                std::thread::yield_now();
            }
            return;
        }
        // The fast path: settled already (the mirror is written after the flip it announces).
        if r.sweepgen.is_swept(self.sweep_h.load(Ordering::Acquire)) {
            return;
        }
        let poison = self.config.verify;
        loop {
            let mut c = self.central_lock();
            if r.sweepgen.is_swept(c.sweepgen) {
                return;
            }
            let s = r as *const GcSpan as *mut GcSpan;
            if let Some(live) = c.sweep_one(s, poison) {
                c.file_swept(s, live);
                return;
            }
            // Claimed by the background sweeper, which is under way with it.
            drop(c);
            std::thread::yield_now();
        }
    }
}

/// Frees weak handle `w`.
///
/// # Safety
/// `w` came from `weak_new` and is not used afterwards.
pub unsafe fn weak_free(w: *mut WeakSlot) {
    // SAFETY: the caller's contract.
    let slot = unsafe { &*w };
    let obj = slot.obj.load(Ordering::Acquire);
    if obj != 0
        && let Some(r) = spanmap::in_use(obj, slot.heap.addr())
    {
        let mut list = lock_weak(r);
        // Rule 4: a sweep may have cleared and unregistered it meanwhile.
        if slot.obj.load(Ordering::Relaxed) != 0 {
            list.retain(|&x| x != w as usize);
        }
    }
    // SAFETY: unregistered, so no sweep reads it any more; the caller's contract.
    drop(unsafe { Box::from_raw(w) });
}
