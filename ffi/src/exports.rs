//! The exported C functions of `tricolor.h`. Each is documented for C users (cbindgen copies
//! these comments into the header).

use crate::cmalloc;
use core::ffi::{c_int, c_void};

/// Allocates `size` bytes (aligned to 16, or to 8 for blocks of at most 8 bytes).
/// Returns NULL with errno = ENOMEM when memory is exhausted. tc_malloc(0) returns a unique
/// pointer.
#[unsafe(no_mangle)]
pub extern "C" fn tc_malloc(size: usize) -> *mut c_void {
    cmalloc::malloc(size)
}

/// Allocates `n * size` zeroed bytes; NULL with errno = ENOMEM on overflow or exhaustion.
#[unsafe(no_mangle)]
pub extern "C" fn tc_calloc(n: usize, size: usize) -> *mut c_void {
    cmalloc::calloc(n, size)
}

/// Resizes `ptr` to `size` bytes, keeping its contents; in place when possible. NULL `ptr`
/// allocates; size 0 frees `ptr` and returns NULL. On failure returns NULL with errno = ENOMEM
/// and `ptr` stays valid.
///
/// # Safety
/// `ptr` is NULL or a live block from Tricolor.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tc_realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: the caller's contract.
    unsafe { cmalloc::realloc(ptr, size) }
}

/// Frees `ptr` (NULL does nothing). A pointer that is not a live Tricolor block aborts the
/// process with "tricolor: free(): invalid pointer 0x..." or "double free detected".
///
/// # Safety
/// `ptr` is NULL or a live block from Tricolor, not used afterwards.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tc_free(ptr: *mut c_void) {
    // SAFETY: the caller's contract.
    unsafe { cmalloc::free(ptr) }
}

/// Frees `ptr`, allocated by tc_malloc/tc_calloc/tc_realloc with `size` bytes (C23
/// free_sized). A size of another size class aborts with a message.
///
/// # Safety
/// As for tc_free; `size` is the requested size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tc_free_sized(ptr: *mut c_void, size: usize) {
    // SAFETY: the caller's contract.
    unsafe { cmalloc::free_sized(ptr, size) }
}

/// Allocates `size` bytes aligned to `align`, which must be a power of two (else NULL with
/// errno = EINVAL). Any alignment is supported.
#[unsafe(no_mangle)]
pub extern "C" fn tc_aligned_alloc(align: usize, size: usize) -> *mut c_void {
    cmalloc::aligned_alloc(align, size)
}

/// Stores in `*memptr` a block of `size` bytes aligned to `align` (a power of two multiple of
/// sizeof(void *)). Returns 0, EINVAL or ENOMEM; `*memptr` is unchanged on error.
///
/// # Safety
/// `memptr` is valid for writing a pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tc_posix_memalign(
    memptr: *mut *mut c_void,
    align: usize,
    size: usize,
) -> c_int {
    // SAFETY: the caller's contract.
    unsafe { cmalloc::posix_memalign(memptr, align, size) }
}

/// The number of usable bytes in the block at `ptr` (at least the size requested); 0 for NULL.
///
/// # Safety
/// `ptr` is NULL or a live block from Tricolor.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tc_malloc_usable_size(ptr: *const c_void) -> usize {
    // SAFETY: the caller's contract.
    unsafe { cmalloc::malloc_usable_size(ptr) }
}
