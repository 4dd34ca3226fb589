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
use crate::spanmap;

impl MutatorState {
    /// Stores `value` into pointer slot `slot` of object `obj` (the barriered store).
    ///
    /// # Safety
    /// `slot` is a pointer slot of `obj` (an offset its type declared); the checks catch a
    /// slot outside `obj` but not a non-pointer field inside it.
    #[inline]
    pub unsafe fn write(&self, obj: *mut u8, slot: *mut *mut u8, value: *mut u8) {
        self.check_attached("write");
        let Some(r) = spanmap::in_use(obj as usize, self.heap.addr()) else {
            bad_target(obj, slot)
        };
        let Some(i) = r.index_of(obj as usize) else {
            bad_target(obj, slot)
        };
        if (slot as usize).wrapping_sub(r.slot(i)) >= r.size || (slot as usize) % 8 != 0 {
            bad_target(obj, slot);
        }
        // A value in the same span (a node built next to its parent) needs no second lookup.
        if !value.is_null() && !r.covers(value as usize) && !self.is_object(value) {
            bad_value(obj, value);
        }
        // SAFETY: `slot` is inside a live object of this heap (checked) and 8-aligned.
        unsafe { slot.write(value) };
    }

    /// True when `p` points into an object of this mutator's heap.
    #[inline]
    pub fn is_object(&self, p: *const u8) -> bool {
        spanmap::in_use(p as usize, self.heap.addr()).is_some_and(|r| r.covers(p as usize))
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
