//! The write barrier's entry point: every pointer store into a heap object goes through
//! [`MutatorState::write`].
//!
//! With the collector stopping the world for the whole cycle, no store can happen while
//! marking, so the barrier only checks and stores. The concurrent collector adds the hybrid
//! barrier's shading (old and new value, Yuasa + Dijkstra) here, behind one load of the
//! heap's phase, without changing any caller: that is why every store must come through here
//! already.
//!
//! Always-on checks: `obj` is an object of this mutator's heap, `slot` is one of the pointer
//! slots its type declared (for an array, of one of its elements), and `value` is null or
//! points into an object of the same heap (one span-map lookup for `obj`, one bit of the
//! type's pointer bitmap, and one lookup for `value` unless it lies in `obj`'s span, as a node
//! built next to its parent does). Storing anything else would leave a pointer the marker
//! cannot follow: a store past the type's size (into the rounding tail of its size class) or
//! into a data field is never scanned, so its target would be freed while reachable.

use crate::misuse;
use crate::mutator::MutatorState;
use crate::object::TypeInfo;
use crate::spanmap;

impl MutatorState {
    /// Stores `value` into pointer slot `slot` of object `obj` (the barriered store).
    ///
    /// # Safety
    /// `obj` is a live object (the checks catch a pointer that is not inside an object slot of
    /// this heap, and a `slot` that is not a declared pointer slot of it, but not an object
    /// that was already collected).
    #[inline]
    pub unsafe fn write(&self, obj: *mut u8, slot: *mut *mut u8, value: *mut u8) {
        self.check_attached("write");
        let Some(r) = spanmap::in_use(obj as usize, self.heap.addr()) else {
            bad_target(obj, slot)
        };
        let Some(i) = r.index_of(obj as usize) else {
            bad_target(obj, slot)
        };
        let off = (slot as usize).wrapping_sub(r.slot(i));
        if off >= r.size {
            bad_target(obj, slot);
        }
        // The marker scans `reps` copies of the type from the slot's start, and in each only
        // the declared pointer words (`mark::scan`). Only arrays need the division.
        let ty = r.ty;
        let within = if off < ty.size { off } else { off % ty.size };
        if off >= r.reps * ty.size || !ty.is_pointer_slot(within) {
            not_a_pointer_slot(obj, slot, off, ty);
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
fn not_a_pointer_slot(obj: *mut u8, slot: *mut *mut u8, off: usize, ty: &TypeInfo) -> ! {
    misuse::abort(format_args!(
        "write(): slot {slot:p} (offset {off} of heap object {obj:p}, type \"{}\" of {} bytes) is not a pointer slot of its type",
        ty.name, ty.size
    ))
}

#[cold]
#[inline(never)]
fn bad_value(obj: *mut u8, value: *mut u8) -> ! {
    misuse::abort(format_args!(
        "write(): storing {value:p} into object {obj:p}, but {value:p} is not an object of this heap"
    ))
}
