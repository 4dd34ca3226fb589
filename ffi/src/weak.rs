//! Weak handles' C functions (`tc_weak`): a translation of `tricolor_gc`'s weak handles (Go
//! 1.24's `weak.Pointer`; the rules are in `gc/src/weak.rs`).

// The C names are the public contract (tricolor.h).
#![allow(non_camel_case_types)]

use crate::gc::{mutator, null_abort, tc_mutator};
use core::ffi::c_void;

/// A weak handle: yields its object while the object is reachable (see tc_weak_new).
pub struct tc_weak {
    _opaque: [u8; 0],
}

fn weak(w: *mut tc_weak, op: &str) -> *mut tricolor_gc::WeakSlot {
    if w.is_null() {
        null_abort("weak handle", op);
    }
    w.cast()
}

/// A weak handle to `obj` (a heap object's start, or NULL; aborts with a message otherwise).
/// It is not a root: tc_weak_get yields the object while something else keeps it reachable,
/// and NULL from the moment the collector finds it unreachable, for every reader at once.
#[unsafe(no_mangle)]
pub extern "C" fn tc_weak_new(m: *mut tc_mutator, obj: *mut c_void) -> *mut tc_weak {
    mutator(m, "tc_weak_new").weak_new(obj.cast()).cast()
}

/// The object of weak handle `w`, or NULL once it was found unreachable. What it returns is
/// the caller's, to root like any object it holds (reading during a collection keeps the
/// object alive).
///
/// # Safety
/// `w` is a live handle of `m`'s heap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tc_weak_get(m: *mut tc_mutator, w: *mut tc_weak) -> *mut c_void {
    let m = mutator(m, "tc_weak_get");
    // SAFETY: the caller's contract.
    unsafe { m.weak_get(weak(w, "tc_weak_get")) }.cast()
}

/// Frees a weak handle.
///
/// # Safety
/// `w` came from tc_weak_new and is not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tc_weak_free(w: *mut tc_weak) {
    // SAFETY: the caller's contract.
    unsafe { tricolor_gc::raw::weak_free(weak(w, "tc_weak_free")) }
}
