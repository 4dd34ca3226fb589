//! Ephemeron tables' C functions (`tc_ephemeron_table`): a translation of `tricolor_gc`'s
//! (JavaScript's `WeakMap`; the rules are in `gc/src/ephemeron/mod.rs`).

// The C names are the public contract (tricolor.h).
#![allow(non_camel_case_types)]

use crate::gc::{heap_ref, mutator, null_abort, tc_heap, tc_mutator};
use core::ffi::{c_int, c_void};
use std::sync::Arc;
use tricolor_gc::raw::EphemeronTable;

/// A weak-keyed table: an entry keeps its value alive only while its key is reachable by
/// other paths (see tc_ephemeron_new).
pub struct tc_ephemeron_table {
    _opaque: [u8; 0],
}

fn table<'a>(t: *mut tc_ephemeron_table, op: &str) -> &'a EphemeronTable {
    if t.is_null() {
        null_abort("ephemeron table", op);
    }
    // SAFETY: non-null tables come from tc_ephemeron_new (an `Arc` leaked until freed).
    unsafe { &*t.cast::<EphemeronTable>() }
}

/// A new ephemeron table on `heap` (JavaScript's WeakMap): tc_ephemeron_set maps a key
/// object to a value object; the entry keeps the value alive only while the key is reachable
/// by other paths (a value pointing back to its key keeps neither), and disappears when the
/// key is collected. Entries are never roots.
#[unsafe(no_mangle)]
pub extern "C" fn tc_ephemeron_new(heap: *mut tc_heap) -> *mut tc_ephemeron_table {
    let h = heap_ref(heap, "tc_ephemeron_new");
    // SAFETY: heaps are 'static (they live until the process exits).
    let h: &'static tricolor_gc::Heap = unsafe { &*(h as *const tricolor_gc::Heap) };
    Arc::into_raw(EphemeronTable::new(h)).cast_mut().cast()
}

/// Maps `key` to `value` (NULL removes the entry). Aborts with a message if `key` is not an
/// object's start or `value` not an object of `m`'s heap.
#[unsafe(no_mangle)]
pub extern "C" fn tc_ephemeron_set(
    m: *mut tc_mutator,
    t: *mut tc_ephemeron_table,
    key: *mut c_void,
    value: *mut c_void,
) {
    let m = mutator(m, "tc_ephemeron_set");
    table(t, "tc_ephemeron_set").set(m, key.cast(), value.cast());
}

/// The value of `key`, or NULL.
#[unsafe(no_mangle)]
pub extern "C" fn tc_ephemeron_get(
    m: *mut tc_mutator,
    t: *mut tc_ephemeron_table,
    key: *mut c_void,
) -> *mut c_void {
    let m = mutator(m, "tc_ephemeron_get");
    table(t, "tc_ephemeron_get").get(m, key.cast()).cast()
}

/// Removes `key`'s entry: 1 if there was one.
#[unsafe(no_mangle)]
pub extern "C" fn tc_ephemeron_remove(
    m: *mut tc_mutator,
    t: *mut tc_ephemeron_table,
    key: *mut c_void,
) -> c_int {
    let m = mutator(m, "tc_ephemeron_remove");
    table(t, "tc_ephemeron_remove").remove(m, key.cast()) as c_int
}

/// Entries in the table (those of collected keys are gone once the sweep has reached them).
#[unsafe(no_mangle)]
pub extern "C" fn tc_ephemeron_len(t: *mut tc_ephemeron_table) -> usize {
    table(t, "tc_ephemeron_len").len()
}

/// Frees a table: its entries keep nothing alive any more.
///
/// # Safety
/// `t` came from tc_ephemeron_new and is not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tc_ephemeron_free(t: *mut tc_ephemeron_table) {
    table(t, "tc_ephemeron_free").free();
    // SAFETY: the caller's contract: the `Arc` tc_ephemeron_new leaked, released once.
    drop(unsafe { Arc::from_raw(t.cast_const().cast::<EphemeronTable>()) });
}
