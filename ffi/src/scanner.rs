//! Stack scanners' C functions: a language runtime's own roots (its value stack, frames,
//! globals), reported with its mutator's stack scan, concurrently, once per cycle (the rules
//! are `MutatorState::add_stack_scanner`'s).

// The C names are the public contract (tricolor.h).
#![allow(non_camel_case_types)]

use crate::gc::{mutator, null_abort, tc_mutator};
use core::ffi::{c_int, c_void};

/// Reports one root to the collector: called by a stack scanner with the `ctx` it was given.
pub type tc_report_fn = unsafe extern "C" fn(ctx: *mut c_void, obj: *mut c_void);

/// A stack scanner: calls `report(ctx, obj)` for every root (an object address; any other
/// value is ignored, so a runtime may report every word of its stack).
pub type tc_stack_scan_fn =
    Option<unsafe extern "C" fn(report: tc_report_fn, ctx: *mut c_void, data: *mut c_void)>;

struct CScanner {
    f: unsafe extern "C" fn(tc_report_fn, *mut c_void, *mut c_void),
    data: *mut c_void,
}

// SAFETY: the C caller promises the scanner may run on a marker's thread while the mutator is
// in native code (the header says so); `data` is its own.
unsafe impl Send for CScanner {}

unsafe extern "C" fn report(ctx: *mut c_void, obj: *mut c_void) {
    // SAFETY: `ctx` is the `&mut dyn FnMut(usize)` the trampoline below passed, live for the
    // scanner's call.
    let f = unsafe { &mut *ctx.cast::<&mut dyn FnMut(usize)>() };
    f(obj as usize);
}

/// Adds a stack scanner to `m`: `fn(report, ctx, data)` reports the runtime's own roots with
/// `report(ctx, obj)` once per collection while it marks, concurrently: on `m`'s thread at a
/// safepoint, or on a marker's thread while `m` is in native code. What it reports is marked
/// then, not in a pause (unlike tc_add_root_callback); the write barrier makes one scan per
/// collection enough. It must not allocate or write to the heap, and reads the runtime's
/// structures while `m` is not changing them (at a safepoint, or in native code). Returns an
/// id for tc_remove_stack_scanner.
#[unsafe(no_mangle)]
pub extern "C" fn tc_add_stack_scanner(
    m: *mut tc_mutator,
    r#fn: tc_stack_scan_fn,
    data: *mut c_void,
) -> u64 {
    let m = mutator(m, "tc_add_stack_scanner");
    let Some(f) = r#fn else {
        null_abort("scanner", "tc_add_stack_scanner");
    };
    let s = CScanner { f, data };
    m.add_stack_scanner(Box::new(move |sink: &mut dyn FnMut(usize)| {
        let s = &s;
        let mut sink = sink;
        // SAFETY: the C scanner's contract; `sink` outlives the call.
        unsafe { (s.f)(report, (&raw mut sink).cast(), s.data) }
    }))
}

/// Removes a stack scanner of `m`: 1 if it was registered, 0 otherwise.
#[unsafe(no_mangle)]
pub extern "C" fn tc_remove_stack_scanner(m: *mut tc_mutator, id: u64) -> c_int {
    mutator(m, "tc_remove_stack_scanner").remove_stack_scanner(id) as c_int
}
