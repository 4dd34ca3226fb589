//! # `libtricolor_malloc.so`: Tricolor under unchanged programs
//!
//! `LD_PRELOAD=target/release/libtricolor_malloc.so program` makes every `malloc` of the
//! program (and of glibc, libstdc++ and every library it loads) Tricolor's. Exported:
//! `malloc free calloc realloc reallocarray posix_memalign aligned_alloc memalign valloc pvalloc
//! malloc_usable_size`, the C++ `operator new`/`delete` family (plain, array, sized, aligned,
//! nothrow), glibc's introspection `mallinfo2 mallinfo malloc_stats malloc_info` with
//! Tricolor's figures (`introspect`), and the `tc_*` names of `libtricolor`.
//!
//! C semantics are those of `tricolor::cmalloc` (documented there). Safety in a host we do
//! not control:
//! * initialisation happens on the first call from any thread, including calls from the
//!   dynamic loader before `main` and from inside `dlopen`; it never allocates through us;
//! * `fork` is safe (the allocator's `pthread_atfork` handlers), and thread exit flushes the
//!   thread's cache;
//! * a pointer we did not allocate aborts with `tricolor: free(): invalid pointer 0x...`.
//!
//! The operators are exported with their Itanium-ABI mangled names. Out of memory, `operator
//! new` calls the installed new-handler and throws `std::bad_alloc` (see `cxx`), so those
//! wrappers use the `C-unwind` ABI. The library does not link the C++ runtime: C programs pay
//! nothing for it (linking libstdc++ costs every process 0.5 ms and 1.6 MiB at start-up).

#![allow(clippy::missing_safety_doc)] // The C standard is their documentation; see cmalloc.

mod cxx;
mod introspect;

use core::ffi::{c_int, c_void};
use tricolor::cmalloc;

// The `tc_*` names of libtricolor come along: `#[no_mangle]` functions of a linked rlib are
// exported from a cdylib (the `header`-adjacent test `preload_exports` checks this).

/// `malloc`.
#[unsafe(no_mangle)]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    cmalloc::malloc(size)
}

/// `free`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free(p: *mut c_void) {
    // SAFETY: C's contract for free.
    unsafe { cmalloc::free(p) }
}

/// `calloc`.
#[unsafe(no_mangle)]
pub extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    cmalloc::calloc(n, size)
}

/// `realloc`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: C's contract for realloc.
    unsafe { cmalloc::realloc(p, size) }
}

/// `reallocarray`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    // SAFETY: C's contract for reallocarray.
    unsafe { cmalloc::reallocarray(p, n, size) }
}

/// `posix_memalign`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn posix_memalign(
    memptr: *mut *mut c_void,
    align: usize,
    size: usize,
) -> c_int {
    // SAFETY: C's contract for posix_memalign.
    unsafe { cmalloc::posix_memalign(memptr, align, size) }
}

/// `aligned_alloc`.
#[unsafe(no_mangle)]
pub extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    cmalloc::aligned_alloc(align, size)
}

/// `memalign`.
#[unsafe(no_mangle)]
pub extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    cmalloc::memalign(align, size)
}

/// `valloc`.
#[unsafe(no_mangle)]
pub extern "C" fn valloc(size: usize) -> *mut c_void {
    cmalloc::valloc(size)
}

/// `pvalloc`.
#[unsafe(no_mangle)]
pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
    cmalloc::pvalloc(size)
}

/// `malloc_usable_size`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc_usable_size(p: *mut c_void) -> usize {
    // SAFETY: C's contract for malloc_usable_size.
    unsafe { cmalloc::malloc_usable_size(p) }
}

/// `malloc_trim`: glibc's way for a program to give free memory back. Tricolor returns every
/// free page and empties the caches it can reach (`tc_release_memory`), whatever `pad` says;
/// returns 1 when memory was released, 0 otherwise (glibc's convention).
#[unsafe(no_mangle)]
pub extern "C" fn malloc_trim(_pad: usize) -> i32 {
    i32::from(tricolor_alloc::release_memory() > 0)
}

// C++ operators. `n` is the size; `a` an alignment (std::align_val_t, a size_t); the nothrow_t
// reference is unused.

macro_rules! operator_new {
    ($($name:ident)*) => {$(
        /// `operator new` / `operator new[]`: throws std::bad_alloc when out of memory.
        #[unsafe(no_mangle)]
        pub extern "C-unwind" fn $name(n: usize) -> *mut c_void {
            cxx::new(n, 1)
        }
    )*};
}
operator_new!(_Znwm _Znam);

macro_rules! operator_new_aligned {
    ($($name:ident)*) => {$(
        /// Aligned `operator new` / `operator new[]`: throws std::bad_alloc (also for an
        /// alignment that is not a power of two).
        #[unsafe(no_mangle)]
        pub extern "C-unwind" fn $name(n: usize, a: usize) -> *mut c_void {
            cxx::new_aligned(n, a)
        }
    )*};
}
operator_new_aligned!(_ZnwmSt11align_val_t _ZnamSt11align_val_t);

macro_rules! operator_new_nothrow {
    ($($name:ident)*) => {$(
        /// `operator new(size, nothrow)`: NULL when out of memory.
        #[unsafe(no_mangle)]
        pub extern "C" fn $name(n: usize, _nothrow: *const c_void) -> *mut c_void {
            cxx::new_nothrow(n, 1)
        }
    )*};
}
operator_new_nothrow!(_ZnwmRKSt9nothrow_t _ZnamRKSt9nothrow_t);

macro_rules! operator_new_aligned_nothrow {
    ($($name:ident)*) => {$(
        /// Aligned `operator new(size, align, nothrow)`: NULL when out of memory or for an
        /// alignment that is not a power of two.
        #[unsafe(no_mangle)]
        pub extern "C" fn $name(n: usize, a: usize, _nothrow: *const c_void) -> *mut c_void {
            cxx::new_aligned_nothrow(n, a)
        }
    )*};
}
operator_new_aligned_nothrow!(_ZnwmSt11align_val_tRKSt9nothrow_t _ZnamSt11align_val_tRKSt9nothrow_t);

macro_rules! operator_delete {
    ($($name:ident($($extra:ident: $t:ty),*))*) => {$(
        /// `operator delete` variant: frees `p` (the size and alignment are not needed: the
        /// block's own record has them, and is checked).
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name(p: *mut c_void $(, $extra: $t)*) {
            $(let _ = $extra;)*
            // SAFETY: C++'s contract: `p` is null or from the matching operator new.
            unsafe { cmalloc::free(p) }
        }
    )*};
}
operator_delete! {
    _ZdlPv() _ZdaPv()
    _ZdlPvm(_size: usize) _ZdaPvm(_size: usize)
    _ZdlPvSt11align_val_t(_align: usize) _ZdaPvSt11align_val_t(_align: usize)
    _ZdlPvmSt11align_val_t(_size: usize, _align: usize) _ZdaPvmSt11align_val_t(_size: usize, _align: usize)
    _ZdlPvRKSt9nothrow_t(_nothrow: *const c_void) _ZdaPvRKSt9nothrow_t(_nothrow: *const c_void)
    _ZdlPvSt11align_val_tRKSt9nothrow_t(_align: usize, _nothrow: *const c_void)
    _ZdaPvSt11align_val_tRKSt9nothrow_t(_align: usize, _nothrow: *const c_void)
}
