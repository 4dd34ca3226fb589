//! The garbage collector's C functions (`tc_heap`, `tc_mutator`, ...): a translation of
//! `tricolor_gc`'s raw layer. Opaque C types are the Rust records behind casts; a NULL heap or
//! mutator aborts with a message naming the function.

// The C names are the public contract (tricolor.h).
#![allow(non_camel_case_types)]

use core::ffi::{CStr, c_char, c_int, c_void};
use std::ptr;
use tricolor_gc::{HandleSlot, Heap, MutatorState, RootVisitor};

/// A garbage-collected heap. Heaps live until the process exits.
pub struct tc_heap {
    _opaque: [u8; 0],
}

/// A thread's attachment to a heap (see tc_mutator_attach).
pub struct tc_mutator {
    _opaque: [u8; 0],
}

/// A global root: keeps one object alive until freed.
pub struct tc_handle {
    _opaque: [u8; 0],
}

/// Passed to root callbacks; report each root with tc_visit_root.
pub struct tc_root_visitor {
    _opaque: [u8; 0],
}

/// A registered object type (0 is reserved for raw bytes).
pub type tc_type = u32;

/// The collector's figures (tc_gc_stats). pause_ns holds the last 256 pauses (each stop of
/// the world: two per cycle), the most recent at (pauses + 255) % 256.
pub type tc_gc_stats_t = tricolor_gc::GcStats;

/// A root callback: reports the runtime's own roots with tc_visit_root, once per cycle, at
/// mark termination with every mutator stopped (so its slots need no barrier). It runs on the
/// collector thread and must not allocate, call tc_write, use tc_handle_* or take a lock a
/// stopped mutator may hold; its cost is part of that pause.
pub type tc_root_fn =
    Option<unsafe extern "C" fn(visitor: *mut tc_root_visitor, data: *mut c_void)>;

/// Misuse of the C ABI: the collector's report (`tricolor: <message>` on standard error, then
/// abort; a broken standard error does not turn it into a panic).
pub(crate) use tricolor_gc::raw::misuse_abort;

#[cold]
pub(crate) fn null_abort(what: &str, op: &str) -> ! {
    misuse_abort(format_args!("{op}(): NULL {what}"))
}

pub(crate) fn heap_ref<'a>(h: *mut tc_heap, op: &str) -> &'a Heap {
    if h.is_null() {
        null_abort("heap", op);
    }
    // SAFETY: non-null heaps come from tc_heap_default/tc_heap_new and live forever.
    unsafe { &*h.cast::<Heap>() }
}

fn handle(h: *const tc_handle, op: &str) -> *mut HandleSlot {
    if h.is_null() {
        null_abort("handle", op);
    }
    h.cast_mut().cast()
}

#[inline(always)]
pub(crate) fn mutator<'a>(m: *mut tc_mutator, op: &str) -> &'a MutatorState {
    if m.is_null() {
        null_abort("mutator", op);
    }
    // SAFETY: mutator records are never freed (detached ones are caught by their poll word).
    unsafe { &*m.cast::<MutatorState>() }
}

/// The process-wide heap, configured from GOGC, GODEBUG=gctrace=1, GOMEMLIMIT and
/// TRICOLOR_GC_VERIFY on first use.
#[unsafe(no_mangle)]
pub extern "C" fn tc_heap_default() -> *mut tc_heap {
    Heap::default_heap() as *const Heap as *mut tc_heap
}

/// A new, independent heap configured from the environment like the default one.
#[unsafe(no_mangle)]
pub extern "C" fn tc_heap_new() -> *mut tc_heap {
    Heap::new(tricolor_gc::Config::from_env()) as *const Heap as *mut tc_heap
}

/// Attaches the calling thread to `heap`. Detach (tc_mutator_detach) before the thread exits.
/// While attached and not in native code (tc_enter_native), the thread must reach a
/// safepoint (any allocation, or tc_safepoint) regularly, or collections wait for it.
#[unsafe(no_mangle)]
pub extern "C" fn tc_mutator_attach(heap: *mut tc_heap) -> *mut tc_mutator {
    let h = heap_ref(heap, "tc_mutator_attach");
    // SAFETY: heaps are 'static (they live until the process exits).
    let h: &'static Heap = unsafe { &*(h as *const Heap) };
    tricolor_gc::raw::attach(h).cast()
}

/// Detaches `m`: its roots stop being roots; any later use of `m` aborts.
///
/// # Safety
/// `m` is attached on the calling thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tc_mutator_detach(m: *mut tc_mutator) {
    mutator(m, "tc_mutator_detach");
    // SAFETY: the caller's contract.
    unsafe { tricolor_gc::raw::detach(m.cast()) }
}

/// The most pointer slots a type can have: one per word up to the largest offset a pointer map
/// numbers; more offsets than that hold a duplicate or a bad one.
const MAX_POINTERS: usize = tricolor_gc::raw::MAX_POINTER_OFFSET / 8 + 1;

/// Registers a type of `size` bytes whose pointer slots are at the byte offsets
/// `ptr_offsets[0..n_ptrs]` (each a multiple of 8, inside the object). Aborts with a message
/// naming the type on an invalid layout: size 0 or one no object can have (2^47 bytes or
/// more, the user address space the heap maps), an offset not 8-aligned or past the end or
/// given twice, NULL `ptr_offsets` with `n_ptrs` not 0.
///
/// # Safety
/// `name` is NULL or a C string; `ptr_offsets` points to `n_ptrs` values (or `n_ptrs` is 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tc_type_new(
    heap: *mut tc_heap,
    name: *const c_char,
    size: usize,
    ptr_offsets: *const usize,
    n_ptrs: usize,
) -> tc_type {
    let h = heap_ref(heap, "tc_type_new");
    let name = if name.is_null() {
        "(unnamed)".into()
    } else {
        // SAFETY: the caller's contract.
        unsafe { CStr::from_ptr(name) }.to_string_lossy()
    };
    let offsets = if n_ptrs == 0 {
        &[][..]
    } else if ptr_offsets.is_null() {
        type_abort(
            &name,
            format_args!("ptr_offsets is NULL but n_ptrs is {n_ptrs}"),
        )
    } else if n_ptrs > MAX_POINTERS {
        // Also keeps the slice below isize::MAX bytes, as `from_raw_parts` requires.
        type_abort(
            &name,
            format_args!("{n_ptrs} pointer offsets, more than a type can have ({MAX_POINTERS})"),
        )
    } else {
        // SAFETY: the caller's contract; non-null, and at most 2^35 bytes (above).
        unsafe { std::slice::from_raw_parts(ptr_offsets, n_ptrs) }
    };
    match h.register_type(&name, size, offsets) {
        Ok(t) => t,
        Err(e) => type_abort(&name, format_args!("{e}")),
    }
}

#[cold]
fn type_abort(name: &str, why: std::fmt::Arguments<'_>) -> ! {
    misuse_abort(format_args!("tc_type_new(): type \"{name}\": {why}"))
}

#[inline(always)]
fn oom(p: *mut u8) -> *mut c_void {
    if p.is_null() {
        crate::cmalloc::set_errno(libc::ENOMEM);
    }
    p.cast()
}

/// Allocates a zeroed object of `type`. Returns NULL (errno = ENOMEM) only if the heap cannot
/// grow even after a collection. A safepoint.
#[unsafe(no_mangle)]
pub extern "C" fn tc_alloc(m: *mut tc_mutator, r#type: tc_type) -> *mut c_void {
    oom(mutator(m, "tc_alloc").alloc(r#type))
}

/// Allocates a zeroed array of `len` objects of `elem`; NULL (errno = ENOMEM) if it cannot.
#[unsafe(no_mangle)]
pub extern "C" fn tc_alloc_array(m: *mut tc_mutator, elem: tc_type, len: usize) -> *mut c_void {
    oom(mutator(m, "tc_alloc_array").alloc_array(elem, len))
}

/// Allocates `size` zeroed bytes that hold no pointers (never scanned); NULL (errno = ENOMEM)
/// if it cannot.
#[unsafe(no_mangle)]
pub extern "C" fn tc_alloc_bytes(m: *mut tc_mutator, size: usize) -> *mut c_void {
    oom(mutator(m, "tc_alloc_bytes").alloc_bytes(size))
}

/// Stores `value` (NULL or a heap object, interior pointers allowed) into pointer slot `slot`
/// of heap object `obj`: every pointer store into a heap object must come through here. Aborts
/// with a message if `obj` is not an object of `m`'s heap, if `slot` is not one of the pointer
/// slots its type declared (for an array, of one of its elements; a store past the type's size
/// or into a data field would never be scanned), or if `value` is not NULL or an object of the
/// same heap.
///
/// # Safety
/// `obj` is a live object (one already collected is not detected).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tc_write(
    m: *mut tc_mutator,
    obj: *mut c_void,
    slot: *mut *mut c_void,
    value: *mut c_void,
) {
    // SAFETY: the caller's contract.
    unsafe { mutator(m, "tc_write").write(obj.cast(), slot.cast(), value.cast()) }
}

/// `tc_write` without its checks, for an interpreter's hot stores (the checks cost a
/// language runtime's method calls 14% of their instructions): the write barrier alone. With
/// heap verification on (`TRICOLOR_GC_VERIFY=1`, or a heap made with `verify`) it makes every
/// check `tc_write` makes and aborts as it does, so a runtime's stress tests still check
/// these stores.
///
/// # Safety
/// `m` is attached; `obj` is a live object of `m`'s heap, `slot` one of the pointer slots its
/// type declared (for an array, of one of its elements), and `value` NULL or a pointer into a
/// live object of the same heap. A store that breaks this is not reported (without
/// verification), and its target may be freed while reachable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tc_write_unchecked(
    m: *mut tc_mutator,
    obj: *mut c_void,
    slot: *mut *mut c_void,
    value: *mut c_void,
) {
    // SAFETY: the caller's contract.
    unsafe {
        mutator(m, "tc_write_unchecked").write_unchecked(obj.cast(), slot.cast(), value.cast())
    }
}

/// Pushes the address of a local variable holding an object pointer (or NULL) onto the
/// mutator's shadow stack: the object stays alive, until the slot is popped. A NULL `slot`
/// aborts with a message (a collection would read through it).
///
/// # Safety
/// `slot` stays valid until popped.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tc_push_root(m: *mut tc_mutator, slot: *mut *mut c_void) {
    let m = mutator(m, "tc_push_root");
    if slot.is_null() {
        null_abort("root slot", "tc_push_root");
    }
    // SAFETY: the caller's contract; not NULL (above).
    unsafe { m.push_root(slot.cast()) }
}

/// Pops the last `n` root slots; aborts if fewer are pushed.
#[unsafe(no_mangle)]
pub extern "C" fn tc_pop_roots(m: *mut tc_mutator, n: usize) {
    mutator(m, "tc_pop_roots").pop_roots(n)
}

/// A safepoint, for long loops that do not allocate.
#[unsafe(no_mangle)]
pub extern "C" fn tc_safepoint(m: *mut tc_mutator) {
    // A detached mutator's poll word is non-zero, so the safepoint's slow path reports it.
    mutator(m, "tc_safepoint").safepoint()
}

/// Enters native code (before a blocking call): collections proceed without this thread,
/// which must not touch heap objects until tc_leave_native.
#[unsafe(no_mangle)]
pub extern "C" fn tc_enter_native(m: *mut tc_mutator) {
    mutator(m, "tc_enter_native").enter_native()
}

/// Leaves native code, waiting for a running collection to finish first.
#[unsafe(no_mangle)]
pub extern "C" fn tc_leave_native(m: *mut tc_mutator) {
    mutator(m, "tc_leave_native").leave_native()
}

/// Runs a full collection and returns when it is complete (Go's runtime.GC).
#[unsafe(no_mangle)]
pub extern "C" fn tc_collect(m: *mut tc_mutator) {
    mutator(m, "tc_collect").collect()
}

/// Sets the heap's GOGC percent; returns the previous one. Negative turns the proportional
/// trigger off (like GOGC=off).
#[unsafe(no_mangle)]
pub extern "C" fn tc_set_gc_percent(heap: *mut tc_heap, percent: c_int) -> c_int {
    heap_ref(heap, "tc_set_gc_percent").set_gc_percent(percent)
}

/// A global handle keeping `obj` (NULL or a heap object) alive until tc_handle_free.
#[unsafe(no_mangle)]
pub extern "C" fn tc_handle_new(m: *mut tc_mutator, obj: *mut c_void) -> *mut tc_handle {
    tricolor_gc::raw::handle_new(mutator(m, "tc_handle_new"), obj.cast()).cast()
}

/// The object a handle holds (NULL if none).
///
/// # Safety
/// `h` is a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tc_handle_get(h: *const tc_handle) -> *mut c_void {
    // SAFETY: the caller's contract.
    unsafe { tricolor_gc::raw::handle_get(handle(h, "tc_handle_get")) }.cast()
}

/// Points a handle at `obj` (NULL or a heap object).
///
/// # Safety
/// `h` is a live handle of `m`'s heap.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tc_handle_set(m: *mut tc_mutator, h: *mut tc_handle, obj: *mut c_void) {
    // SAFETY: the caller's contract.
    unsafe {
        tricolor_gc::raw::handle_set(
            mutator(m, "tc_handle_set"),
            handle(h, "tc_handle_set"),
            obj.cast(),
        )
    }
}

/// Frees a handle; its object is no longer kept alive by it.
///
/// # Safety
/// `h` is a live handle, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tc_handle_free(h: *mut tc_handle) {
    // SAFETY: the caller's contract.
    unsafe { tricolor_gc::raw::handle_free(handle(h, "tc_handle_free")) }
}

struct CCallback {
    f: unsafe extern "C" fn(*mut tc_root_visitor, *mut c_void),
    data: *mut c_void,
}

// SAFETY: the C caller promises the callback may run on whichever thread collects (the
// header says so); `data` is its own.
unsafe impl Send for CCallback {}
// SAFETY: as above.
unsafe impl Sync for CCallback {}

/// Registers `fn(visitor, data)`, called once per collection (on the collector thread, at
/// mark termination, with every mutator stopped) to report the runtime's own roots with
/// tc_visit_root. Returns an id for tc_remove_root_callback.
#[unsafe(no_mangle)]
pub extern "C" fn tc_add_root_callback(
    heap: *mut tc_heap,
    f: tc_root_fn,
    data: *mut c_void,
) -> u64 {
    let h = heap_ref(heap, "tc_add_root_callback");
    let Some(f) = f else {
        null_abort("callback", "tc_add_root_callback");
    };
    let cb = CCallback { f, data };
    let id = h.add_root_callback(Box::new(move |v: &mut RootVisitor<'_>| {
        let cb = &cb;
        // SAFETY: the C callback's contract; the visitor lives for the call.
        unsafe { (cb.f)(ptr::from_mut(v).cast(), cb.data) }
    }));
    id.get()
}

/// Removes a root callback; returns 1 if it was registered, 0 otherwise.
#[unsafe(no_mangle)]
pub extern "C" fn tc_remove_root_callback(heap: *mut tc_heap, id: u64) -> c_int {
    heap_ref(heap, "tc_remove_root_callback")
        .remove_root_callback(tricolor_gc::CallbackId::from_raw(id)) as c_int
}

/// Reports one root slot (the address of a variable holding NULL or an object pointer) from
/// inside a root callback. A NULL `visitor` or `slot` aborts with a message.
///
/// # Safety
/// `visitor` is the one passed to the running callback; `slot` is readable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tc_visit_root(visitor: *mut tc_root_visitor, slot: *mut *mut c_void) {
    if visitor.is_null() {
        null_abort("visitor", "tc_visit_root");
    }
    if slot.is_null() {
        null_abort("root slot", "tc_visit_root");
    }
    // SAFETY: the caller's contract: the live visitor of the running callback.
    let v = unsafe { &mut *visitor.cast::<RootVisitor<'_>>() };
    // SAFETY: the caller's contract.
    unsafe { v.visit(slot.cast_const().cast()) }
}

/// Fills `*out` with the heap's collector figures: cycles, live bytes, heap goal, total and
/// maximum pause, and the last 256 pauses (Go's MemStats.PauseNs layout).
///
/// # Safety
/// `out` points to writable memory for a tc_gc_stats_t.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tc_gc_stats(heap: *mut tc_heap, out: *mut tc_gc_stats_t) {
    let s = heap_ref(heap, "tc_gc_stats").stats();
    if out.is_null() {
        null_abort("stats pointer", "tc_gc_stats");
    }
    // SAFETY: the caller's contract.
    unsafe { out.write(s) };
}
