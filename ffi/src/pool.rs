//! The pool's C functions (`tc_pool`): a translation of `tricolor_gc::raw::Pool` (Go's
//! `sync.Pool` with its victim cache; the rules are in `gc/src/pool.rs`).

// The C names are the public contract (tricolor.h).
#![allow(non_camel_case_types)]

use crate::gc::{heap_ref, mutator, null_abort, tc_heap, tc_mutator, tc_type};
use core::ffi::c_void;
use std::sync::Arc;
use tricolor_gc::MutatorState;
use tricolor_gc::raw::Pool;

/// A pool of objects of one type, cleared each cycle (see tc_pool_new).
pub struct tc_pool {
    _opaque: [u8; 0],
}

/// A pool's constructor: returns a new object of the pool's type (tc_alloc), or NULL.
pub type tc_pool_new_fn =
    Option<unsafe extern "C" fn(m: *mut tc_mutator, ctx: *mut c_void) -> *mut c_void>;

struct CNew {
    f: unsafe extern "C" fn(*mut tc_mutator, *mut c_void) -> *mut c_void,
    ctx: *mut c_void,
}

// SAFETY: the C caller promises the constructor may run on any thread that uses the pool
// (the header says so); `ctx` is its own.
unsafe impl Send for CNew {}
// SAFETY: as above.
unsafe impl Sync for CNew {}

fn pool<'a>(p: *mut tc_pool, op: &str) -> &'a Pool {
    if p.is_null() {
        null_abort("pool", op);
    }
    // SAFETY: non-null pools come from tc_pool_new (an `Arc` leaked until tc_pool_free).
    unsafe { &*p.cast::<Pool>() }
}

/// A pool of objects of `type` on `heap` (Go's sync.Pool): tc_pool_get returns a pooled
/// object, else `new_fn(m, ctx)` (which must return a new object of `type`, or NULL), else
/// NULL if `new_fn` is NULL; tc_pool_put gives one back. A pooled object stays alive; what
/// tc_pool_get returns is the caller's, to root like any new object. At each collection's
/// start the pool's contents become its victim cache and the previous victims are dropped,
/// so a pool in steady use keeps hitting while an idle pool empties within two collections.
/// `new_fn` runs on the thread calling tc_pool_get, any thread using the pool.
#[unsafe(no_mangle)]
pub extern "C" fn tc_pool_new(
    heap: *mut tc_heap,
    r#type: tc_type,
    new_fn: tc_pool_new_fn,
    ctx: *mut c_void,
) -> *mut tc_pool {
    let h = heap_ref(heap, "tc_pool_new");
    if h.type_info(r#type).is_none() {
        crate::gc::misuse_abort(format_args!(
            "tc_pool_new(): type {} is not registered on this heap",
            r#type
        ));
    }
    // SAFETY: heaps are 'static (they live until the process exits).
    let h: &'static tricolor_gc::Heap = unsafe { &*(h as *const tricolor_gc::Heap) };
    let new_fn = new_fn.map(|f| {
        let c = CNew { f, ctx };
        Box::new(move |m: &MutatorState| {
            let c = &c;
            // SAFETY: the C constructor's contract (above).
            unsafe { (c.f)(m as *const MutatorState as *mut tc_mutator, c.ctx) }.cast()
        }) as tricolor_gc::raw::NewFn
    });
    Arc::into_raw(Pool::new(h, r#type, new_fn))
        .cast_mut()
        .cast()
}

/// A pooled object, else a new one from the pool's constructor, else NULL. Aborts with a
/// message on a NULL pool, or a pool of another heap than `m`'s.
#[unsafe(no_mangle)]
pub extern "C" fn tc_pool_get(m: *mut tc_mutator, p: *mut tc_pool) -> *mut c_void {
    let m = mutator(m, "tc_pool_get");
    pool(p, "tc_pool_get").get(m).cast()
}

/// Gives `obj` (NULL is ignored) back to the pool. Aborts with a message if `obj` is not an
/// object of the pool's type on its heap, or on a NULL pool.
///
/// # Safety
/// `obj` is NULL or a live object.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tc_pool_put(m: *mut tc_mutator, p: *mut tc_pool, obj: *mut c_void) {
    let m = mutator(m, "tc_pool_put");
    // SAFETY: the caller's contract.
    unsafe { pool(p, "tc_pool_put").put(m, obj.cast()) }
}

/// Frees a pool: what it holds is no longer kept alive by it.
///
/// # Safety
/// `p` came from tc_pool_new and is not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tc_pool_free(p: *mut tc_pool) {
    pool(p, "tc_pool_free").free();
    // SAFETY: the caller's contract: the `Arc` tc_pool_new leaked, released once.
    drop(unsafe { Arc::from_raw(p.cast_const().cast::<Pool>()) });
}
