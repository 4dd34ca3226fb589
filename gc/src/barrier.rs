//! The write barrier's entry point: every pointer store into a heap object goes through
//! [`MutatorState::write`].
//!
//! With the collector stopping the world for the whole cycle, no store can happen while
//! marking, so the barrier only checks and stores. The concurrent collector adds the hybrid
//! barrier's shading (old and new value, Yuasa + Dijkstra) here, behind one load of the
//! heap's phase, without changing any caller: that is why every store must come through here
//! already.
//!
//! Always-on checks: `obj` is an object of this mutator's heap, `slot` lies inside it, and
//! `value` is null or points into an object of the same heap (one span-map lookup for `obj`,
//! and one for `value` unless it lies in `obj`'s span, as a node built next to its parent
//! does).
//! Storing anything else would leave a pointer the marker cannot follow.

use crate::misuse;
use crate::mutator::MutatorState;
use crate::span::IN_USE;
use crate::spanmap;
use std::sync::atomic::Ordering;

impl MutatorState {
    /// Stores `value` into pointer slot `slot` of object `obj` (the barriered store).
    ///
    /// # Safety
    /// `slot` is a pointer slot of `obj` (an offset its type declared); the checks catch a
    /// slot outside `obj` but not a non-pointer field inside it.
    #[inline]
    pub unsafe fn write(&self, obj: *mut u8, slot: *mut *mut u8, value: *mut u8) {
        self.check_attached("write");
        let heap = self.heap as *const crate::Heap as usize;
        let s = spanmap::lookup(obj as usize);
        if s.is_null() {
            bad_target(obj, slot);
        }
        // SAFETY: records are never freed (`spanmap` invariant).
        let r = unsafe { &*s };
        let Some(i) = r.index_of(obj as usize) else {
            bad_target(obj, slot)
        };
        let first = r.slot(i);
        let in_obj = (slot as usize).wrapping_sub(first) < r.size && (slot as usize) % 8 == 0;
        if r.heap != heap || r.state.load(Ordering::Relaxed) != IN_USE || !in_obj {
            bad_target(obj, slot);
        }
        // A value in the same span (a node built next to its parent) needs no second lookup:
        // it is inside the span's objects.
        let off = (value as usize).wrapping_sub(r.start);
        let same_span = off < r.nelems as usize * r.size;
        if !value.is_null() && !same_span && !self.is_object(value) {
            bad_value(obj, value);
        }
        // SAFETY: `slot` is inside a live object of this heap (checked) and 8-aligned.
        unsafe { slot.write(value) };
    }

    /// True when `p` points into an object of this mutator's heap.
    #[inline]
    pub fn is_object(&self, p: *const u8) -> bool {
        let s = spanmap::lookup(p as usize);
        if s.is_null() {
            return false;
        }
        // SAFETY: records are never freed (`spanmap` invariant).
        let r = unsafe { &*s };
        r.heap == self.heap as *const crate::Heap as usize
            && r.state.load(Ordering::Relaxed) == IN_USE
            && r.index_of(p as usize).is_some()
    }
}

#[cold]
#[inline(never)]
fn bad_target(obj: *mut u8, slot: *mut *mut u8) -> ! {
    misuse::abort(format_args!(
        "write(): slot {slot:p} is not inside heap object {obj:p} of this mutator's heap"
    ))
}

#[cold]
#[inline(never)]
fn bad_value(obj: *mut u8, value: *mut u8) -> ! {
    misuse::abort(format_args!(
        "write(): storing {value:p} into object {obj:p}, but {value:p} is not an object of this heap"
    ))
}
