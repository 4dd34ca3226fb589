//! The C allocation functions with C's semantics, as Rust functions: `libtricolor`'s `tc_*`
//! exports and the `LD_PRELOAD` library's `malloc` family are thin wrappers over these.
//!
//! Decisions, each matching glibc unless a standard says otherwise:
//! * alignment: every block is aligned to 16 bytes (`max_align_t`); the smallest is 16 bytes,
//!   room for the double-free canary (`tricolor_alloc`'s `block` module);
//! * `malloc(0)` returns a unique minimal block; `free(NULL)` does nothing;
//! * `realloc(p, 0)` frees `p` and returns NULL (glibc's behaviour); `realloc(NULL, n)` is
//!   `malloc(n)`; a failed `realloc` leaves `p` valid;
//! * failures return NULL with `errno = ENOMEM`; `calloc`/`reallocarray` check their
//!   multiplication; `posix_memalign` returns `EINVAL` for an alignment that is not a power of
//!   two multiple of `sizeof(void *)` and leaves `*memptr` alone on error; `aligned_alloc`
//!   fails with `EINVAL` unless the alignment is a power of two; `memalign` rounds a
//!   non-power-of-two alignment up, as glibc does;
//! * `valloc` aligns to the system page; `pvalloc` also rounds the size up to whole pages.

use core::ffi::{c_int, c_void};
use core::ptr;

/// Sets the calling thread's `errno` (for the preload library's glibc-named functions too).
#[inline]
pub fn set_errno(e: i32) {
    // SAFETY: __errno_location returns the calling thread's errno slot.
    unsafe { *libc::__errno_location() = e };
}

#[inline]
fn or_enomem(p: *mut u8) -> *mut c_void {
    if p.is_null() {
        set_errno(libc::ENOMEM);
    }
    p.cast()
}

/// `malloc`. Always inlined, as [`free`]: each exported name (`malloc`, `operator new`, ...)
/// gets the hit path in its own body instead of a call to one shared copy.
#[inline(always)]
pub fn malloc(size: usize) -> *mut c_void {
    // Alignment 8: every class is a multiple of 16 bytes, so blocks are 16-aligned anyway.
    or_enomem(tricolor_alloc::alloc(size, 8))
}

/// `calloc`.
pub fn calloc(n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        Some(total) => or_enomem(tricolor_alloc::alloc_zeroed(total, 8)),
        None => or_enomem(ptr::null_mut()),
    }
}

/// `free`.
///
/// # Safety
/// `p` is null or a live block from this allocator, not used afterwards. Always inlined:
/// shared by `free` and every `operator delete`, one called copy would put a call, a frame
/// and a return around the hit path of every one of them.
#[inline(always)]
pub unsafe fn free(p: *mut c_void) {
    // SAFETY: the caller's contract; misuse the checks catch aborts with a message.
    unsafe { tricolor_alloc::free(p.cast()) }
}

/// C23 `free_sized`: `size` is the size passed to `malloc`/`calloc`/`realloc`.
///
/// # Safety
/// As for [`free`]; a size from another size class aborts.
#[inline]
pub unsafe fn free_sized(p: *mut c_void, size: usize) {
    if !p.is_null() {
        // SAFETY: the caller's contract.
        unsafe { tricolor_alloc::dealloc(p.cast(), size, 8) }
    }
}

/// `realloc`.
///
/// # Safety
/// `p` is null or a live block from this allocator; if the result is not null and differs
/// from `p`, `p` is not used afterwards.
pub unsafe fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        return malloc(size);
    }
    if size == 0 {
        // SAFETY: the caller's contract.
        unsafe { free(p) };
        return ptr::null_mut();
    }
    // SAFETY: the caller's contract; `None` takes the block's own size as the old size.
    or_enomem(unsafe { tricolor_alloc::realloc(p.cast(), None, 8, size) })
}

/// `reallocarray`.
///
/// # Safety
/// As for [`realloc`].
pub unsafe fn reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void {
    match n.checked_mul(size) {
        // SAFETY: the caller's contract.
        Some(total) => unsafe { realloc(p, total) },
        None => or_enomem(ptr::null_mut()),
    }
}

/// `aligned_alloc`: `align` must be a power of two (else NULL with `EINVAL`).
pub fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    if !align.is_power_of_two() {
        set_errno(libc::EINVAL);
        return ptr::null_mut();
    }
    or_enomem(tricolor_alloc::alloc(size, align))
}

/// `posix_memalign`: returns 0, `EINVAL` or `ENOMEM`; `*memptr` is set only on success.
///
/// # Safety
/// `memptr` is valid for a pointer write.
pub unsafe fn posix_memalign(memptr: *mut *mut c_void, align: usize, size: usize) -> c_int {
    if !align.is_power_of_two() || align % size_of::<*mut c_void>() != 0 {
        return libc::EINVAL;
    }
    let p = tricolor_alloc::alloc(size, align);
    if p.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: the caller's contract.
    unsafe { *memptr = p.cast() };
    0
}

/// `memalign` (obsolete): a non-power-of-two alignment is rounded up, as glibc does.
pub fn memalign(align: usize, size: usize) -> *mut c_void {
    match align.max(1).checked_next_power_of_two() {
        Some(a) => or_enomem(tricolor_alloc::alloc(size, a)),
        None => {
            set_errno(libc::EINVAL);
            ptr::null_mut()
        }
    }
}

fn system_page() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 { n as usize } else { 4096 }
}

/// `valloc` (obsolete): aligned to the system page.
pub fn valloc(size: usize) -> *mut c_void {
    or_enomem(tricolor_alloc::alloc(size, system_page()))
}

/// `pvalloc` (obsolete): page-aligned, size rounded up to whole pages (at least one).
pub fn pvalloc(size: usize) -> *mut c_void {
    let page = system_page();
    match size.max(1).checked_next_multiple_of(page) {
        Some(n) => or_enomem(tricolor_alloc::alloc(n, page)),
        None => or_enomem(ptr::null_mut()),
    }
}

/// `malloc_usable_size`: 0 for NULL.
///
/// # Safety
/// `p` is null or a live block from this allocator.
pub unsafe fn malloc_usable_size(p: *const c_void) -> usize {
    // SAFETY: the caller's contract.
    unsafe { tricolor_alloc::usable_size(p.cast()) }
}
