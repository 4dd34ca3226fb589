//! C++ `operator new` without linking the C++ runtime.
//!
//! The success path is `tricolor_alloc::alloc`. Only when it fails do we need C++: the loop
//! "call the new-handler, retry; with no handler, throw `std::bad_alloc`". A program that calls
//! `operator new` has its C++ runtime loaded, so the pieces are found by name with `dlsym`
//! (Itanium C++ ABI names, shared by libstdc++ and libc++):
//! * `std::get_new_handler()` — `_ZSt15get_new_handlerv`;
//! * `__cxa_allocate_exception`, `__cxa_throw`;
//! * `std::bad_alloc`'s typeinfo `_ZTISt9bad_alloc`, vtable `_ZTVSt9bad_alloc` (the object's
//!   vtable pointer is the vtable symbol + 2 words: offset-to-top and typeinfo come first)
//!   and destructor `_ZNSt9bad_allocD1Ev`.
//!
//! The exception unwinds through our frames, which are `C-unwind` and own nothing to drop.
//! If no C++ runtime can be found, the process aborts with a message instead.
//!
//! Decision: the `nothrow` forms return NULL without calling the new-handler. A handler may
//! throw, and Rust cannot catch a foreign exception to turn it into NULL; calling no handler
//! is the conservative reading (glibc-free C++ runtimes do the same under `-fno-exceptions`).

use core::ffi::{CStr, c_void};

type Handler = unsafe extern "C-unwind" fn();
type GetNewHandler = unsafe extern "C" fn() -> Option<Handler>;
type AllocateException = unsafe extern "C" fn(usize) -> *mut c_void;
type Throw = unsafe extern "C-unwind" fn(
    *mut c_void,
    *mut c_void,
    Option<unsafe extern "C" fn(*mut c_void)>,
) -> !;

fn sym(name: &CStr) -> *mut c_void {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name has no other precondition.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) }
}

#[inline]
fn try_alloc(size: usize, align: usize) -> *mut c_void {
    tricolor_alloc::alloc(size, align).cast()
}

/// `operator new` (aligned when `align > 1`): never returns NULL.
#[inline]
pub(crate) fn new(size: usize, align: usize) -> *mut c_void {
    let p = try_alloc(size, align);
    if !p.is_null() {
        return p;
    }
    new_failed(size, align)
}

/// `operator new(..., nothrow)`: NULL when out of memory.
#[inline]
pub(crate) fn new_nothrow(size: usize, align: usize) -> *mut c_void {
    try_alloc(size, align)
}

/// Aligned `operator new`: an alignment that is not a power of two (undefined behaviour in
/// C++, which the allocator's page heap must never see) throws `std::bad_alloc` without
/// calling the new-handler, as libstdc++'s own aligned `operator new` does.
#[inline]
pub(crate) fn new_aligned(size: usize, align: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        throw_bad_alloc()
    }
    new(size, align)
}

/// Aligned `operator new(..., nothrow)`: NULL for an alignment that is not a power of two
/// (libstdc++'s answer, through its throwing form), or when out of memory.
#[inline]
pub(crate) fn new_aligned_nothrow(size: usize, align: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        return core::ptr::null_mut();
    }
    new_nothrow(size, align)
}

#[cold]
#[inline(never)]
fn new_failed(size: usize, align: usize) -> *mut c_void {
    loop {
        let get = sym(c"_ZSt15get_new_handlerv");
        let handler = if get.is_null() {
            None
        } else {
            // SAFETY: the symbol is `std::new_handler std::get_new_handler() noexcept`.
            unsafe { core::mem::transmute::<*mut c_void, GetNewHandler>(get)() }
        };
        let Some(handler) = handler else {
            throw_bad_alloc()
        };
        // SAFETY: calling the program's new-handler, as operator new must; it may throw,
        // which the C-unwind ABI lets through.
        unsafe { handler() };
        let p = try_alloc(size, align);
        if !p.is_null() {
            return p;
        }
    }
}

fn throw_bad_alloc() -> ! {
    let allocate = sym(c"__cxa_allocate_exception");
    let throw = sym(c"__cxa_throw");
    let typeinfo = sym(c"_ZTISt9bad_alloc");
    let vtable = sym(c"_ZTVSt9bad_alloc");
    let dtor = sym(c"_ZNSt9bad_allocD1Ev");
    if [allocate, throw, typeinfo, vtable, dtor]
        .iter()
        .any(|p| p.is_null())
    {
        let msg =
            b"tricolor: operator new: out of memory, and no C++ runtime to throw std::bad_alloc\n";
        // SAFETY: writing a static buffer to stderr, then aborting.
        unsafe {
            libc::write(2, msg.as_ptr().cast(), msg.len());
            libc::abort();
        }
    }
    // SAFETY: the symbols are the Itanium C++ ABI functions and std::bad_alloc's metadata;
    // a bad_alloc object is one vtable pointer, initialised as its constructor would.
    unsafe {
        let allocate = core::mem::transmute::<*mut c_void, AllocateException>(allocate);
        let throw = core::mem::transmute::<*mut c_void, Throw>(throw);
        let dtor = core::mem::transmute::<*mut c_void, unsafe extern "C" fn(*mut c_void)>(dtor);
        let obj = allocate(size_of::<*const c_void>());
        obj.cast::<*const c_void>()
            .write(vtable.cast::<*const c_void>().add(2).cast());
        throw(obj, typeinfo, Some(dtor));
    }
}
