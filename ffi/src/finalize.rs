//! Finalizers' and cleanups' C functions: a translation of `tricolor_gc`'s (Go's
//! `runtime.SetFinalizer` and `runtime.AddCleanup`; the rules are in `gc/src/finalize.rs`).

// The C names are the public contract (tricolor.h).
#![allow(non_camel_case_types)]

use crate::gc::{mutator, tc_mutator};
use core::ffi::c_void;
use tricolor_gc::MutatorState;

/// A finalizer: called once on the heap's finalizer thread (its mutator `m`) with the object,
/// after the object became unreachable.
pub type tc_finalizer_fn = Option<unsafe extern "C" fn(m: *mut tc_mutator, obj: *mut c_void)>;

/// A cleanup: called once on the heap's finalizer thread with its argument, after its object
/// became unreachable.
pub type tc_cleanup_fn = Option<unsafe extern "C" fn(arg: *mut c_void)>;

struct SendPtr(*mut c_void);
// SAFETY: the C caller promises the argument may be used on the finalizer thread (the header
// says so).
unsafe impl Send for SendPtr {}

/// Sets `obj`'s finalizer (Go's runtime.SetFinalizer), or clears it when `fn` is NULL. Once
/// `obj` is unreachable, `fn(m, obj)` runs once on the heap's finalizer thread, which keeps
/// `obj` and what it reaches alive until then; `obj` is freed by a later collection unless
/// `fn` stored it somewhere reachable. If A points at B and both have finalizers, A's runs
/// first and B's only after A is freed; an object with a finalizer in a cycle (or pointing to
/// itself) is never finalized or freed. Weak handles to `obj` are cleared before `fn` runs.
/// Aborts with a message if `obj` is not an object's start on `m`'s heap, or already has a
/// finalizer.
#[unsafe(no_mangle)]
pub extern "C" fn tc_set_finalizer(m: *mut tc_mutator, obj: *mut c_void, r#fn: tc_finalizer_fn) {
    let m = mutator(m, "tc_set_finalizer");
    let fun = r#fn.map(|f| {
        Box::new(move |fm: &MutatorState, p: *mut u8| {
            // SAFETY: the C finalizer's contract.
            unsafe { f(fm as *const MutatorState as *mut tc_mutator, p.cast()) }
        }) as tricolor_gc::raw::FinalizerFn
    });
    m.set_finalizer(obj.cast(), fun);
}

/// Adds a cleanup to `obj` (Go's runtime.AddCleanup): once `obj` is unreachable, `fn(arg)`
/// runs once on the heap's finalizer thread. It does not keep `obj` alive, and `arg` must not
/// be or reach `obj` (then it never runs). An object may have many cleanups. Returns a handle
/// for tc_cleanup_cancel. Aborts with a message if `obj` is not an object's start on `m`'s
/// heap, or `fn` is NULL.
#[unsafe(no_mangle)]
pub extern "C" fn tc_add_cleanup(
    m: *mut tc_mutator,
    obj: *mut c_void,
    r#fn: tc_cleanup_fn,
    arg: *mut c_void,
) -> u64 {
    let m = mutator(m, "tc_add_cleanup");
    let Some(f) = r#fn else {
        crate::gc::null_abort("cleanup function", "tc_add_cleanup");
    };
    let arg = SendPtr(arg);
    m.add_cleanup(
        obj.cast(),
        Box::new(move || {
            let arg = arg;
            // SAFETY: the C cleanup's contract.
            unsafe { f(arg.0) }
        }),
    )
}

/// Cancels cleanup `cleanup` of `m`'s heap: 1 if it had not been queued to run (it never
/// will), 0 if it ran, is queued, or was cancelled already.
#[unsafe(no_mangle)]
pub extern "C" fn tc_cleanup_cancel(m: *mut tc_mutator, cleanup: u64) -> core::ffi::c_int {
    mutator(m, "tc_cleanup_cancel").cancel_cleanup(cleanup) as core::ffi::c_int
}

/// Finishes the last collection's sweep (which queues the finalizers and cleanups of what it
/// found unreachable) and waits until every finalizer and cleanup queued so far has run.
/// `m` counts as in native code meanwhile.
#[unsafe(no_mangle)]
pub extern "C" fn tc_wait_finalizers(m: *mut tc_mutator) {
    mutator(m, "tc_wait_finalizers").wait_finalizers();
}
