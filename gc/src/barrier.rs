//! The write barrier: every pointer store into a heap object goes through
//! [`MutatorState::write`].
//!
//! Go's hybrid barrier (`collect`, rule 2): while the heap is marking, the old and the new
//! value of the slot are appended to the mutator's barrier buffer before the store (Yuasa's
//! deletion half keeps an object from being hidden by moving its only reference into an
//! already-scanned stack; Dijkstra's insertion half keeps a black object from gaining a white
//! child), unconditionally, without testing any colour: a colour test would race with the
//! marker. When not marking, the barrier costs one load and a predictable branch. The slot is
//! read and written with relaxed atomic accesses, because the marker reads it concurrently.
//!
//! Always-on checks: `obj` is an object of this mutator's heap, `slot` is one of the pointer
//! slots its type declared (for an array, of one of its elements), and `value` is null or
//! points into an object of the same heap (one span-map lookup for `obj`, one bit of the
//! type's pointer bitmap, and one lookup for `value` unless it lies in `obj`'s span, as a node
//! built next to its parent does). Storing anything else would leave a pointer the marker
//! cannot follow: a store past the type's size (into the rounding tail of its size class) or
//! into a data field is never scanned, so its target would be freed while reachable.
//!
//! [`MutatorState::write_unchecked`] is the same barrier without those checks, for a language
//! runtime's interpreter loop, whose slots come from its own object layouts. Measured on the
//! Lox VM (`benches/lox`), the checks are 14% of the instructions of its method-call
//! benchmark (`perf stat -e instructions` on
//! `target/release/tricolor-lox benches/lox/bench/method_call.lox`, against a build whose
//! stores use `write`). With heap verification on (`Config::verify`, `TRICOLOR_GC_VERIFY=1`,
//! which a runtime's stress mode turns on) it makes every check, so the runtime's tests still
//! prove each unchecked store right.

use crate::misuse;
use crate::mutator::{MutatorState, WBUF};
use crate::object::TypeInfo;
use crate::spanmap;
use std::sync::atomic::{AtomicPtr, Ordering};

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
        // SAFETY: `slot` is a pointer slot inside a live object of this heap (checked), so
        // 8-aligned and valid for atomic access; the marker only reads it atomically.
        let cell = unsafe { AtomicPtr::from_ptr(slot) };
        if self.heap.mark.marking.load(Ordering::Relaxed) {
            self.shade_pair(cell.load(Ordering::Relaxed), value);
        }
        cell.store(value, Ordering::Relaxed);
    }

    /// [`write`](Self::write) without its checks, unless heap verification is on (module
    /// docs): the barrier alone, a load and a predictable branch when not marking.
    ///
    /// # Safety
    /// The mutator is attached; `obj` is a live object of this mutator's heap, `slot` one of
    /// the pointer slots its type declared (for an array, of one of its elements), and
    /// `value` null or a pointer into a live object of this heap: what `write` checks. A
    /// store that breaks this is not reported; its target may be freed while reachable.
    #[inline]
    pub unsafe fn write_unchecked(&self, obj: *mut u8, slot: *mut *mut u8, value: *mut u8) {
        if self.heap.config.verify {
            // SAFETY: the caller's contract, which `write` checks.
            return unsafe { self.write(obj, slot, value) };
        }
        // SAFETY: the caller's contract: `slot` is a pointer slot inside a live object of this
        // heap, so 8-aligned and valid for atomic access; the marker only reads it atomically.
        let cell = unsafe { AtomicPtr::from_ptr(slot) };
        if self.heap.mark.marking.load(Ordering::Relaxed) {
            self.shade_pair(cell.load(Ordering::Relaxed), value);
        }
        cell.store(value, Ordering::Relaxed);
    }

    /// Appends a slot's old and new values to the barrier buffer, handing a full buffer to the
    /// collector. No safepoint: the store follows at once (rule 2).
    #[inline]
    fn shade_pair(&self, old: *mut u8, new: *mut u8) {
        // SAFETY: rule 2 of `mutator`: the owner, running; the reference ends here.
        let wbuf = &mut unsafe { self.local() }.wbuf;
        wbuf.push(old as usize);
        wbuf.push(new as usize);
        if wbuf.len() >= WBUF {
            self.flush_barrier();
        }
    }

    /// Shades one object moved between roots while marking (a pool's `get` and `put`, `pool`
    /// rule 2), through the barrier buffer.
    pub(crate) fn shade_one(&self, obj: usize) {
        // SAFETY: rule 2 of `mutator`: the owner, running; the reference ends here.
        let wbuf = &mut unsafe { self.local() }.wbuf;
        wbuf.push(obj);
        if wbuf.len() >= WBUF {
            self.flush_barrier();
        }
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
