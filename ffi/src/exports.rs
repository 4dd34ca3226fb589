//! The exported C functions of `tricolor.h`. Each is documented for C users (cbindgen copies
//! these comments into the header).

use crate::cmalloc;
use core::ffi::{CStr, c_char, c_int, c_void};

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

/// Tricolor's memory, partitioned: `mapped` is the sum of the nine parts from `in_use_small`
/// to `metadata` (exactly, when no other thread allocates during the call), plus counters.
/// The same struct as Rust's `tricolor_alloc::AllocStats`; fields are only ever added at the
/// end.
#[allow(non_camel_case_types)]
pub type tc_alloc_stats_t = tricolor_alloc::AllocStats;

/// One size class's figures (Rust's `tricolor_alloc::ClassStats`).
#[allow(non_camel_case_types)]
pub type tc_class_stats_t = tricolor_alloc::ClassStats;

/// The number of size classes: `tc_class_stats` accepts 0 to `TC_NUM_CLASSES - 1`.
pub const TC_NUM_CLASSES: i32 = 67;
const _: () = assert!(TC_NUM_CLASSES as usize == tricolor_alloc::size_class::NUM_CLASSES);

/// The memory limit meaning "none" (Go's `math.MaxInt64`).
pub const TC_NO_LIMIT: i64 = i64::MAX;

/// Fills `*out` with the statistics. Returns 0, or -1 with `errno = EINVAL` when `out` is
/// NULL. Never stops other threads' allocations for more than a short lock hold.
///
/// # Safety
/// `out` is NULL or points to writable memory for one `tc_alloc_stats_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tc_alloc_stats(out: *mut tc_alloc_stats_t) -> i32 {
    if out.is_null() {
        cmalloc::set_errno(libc::EINVAL);
        return -1;
    }
    // SAFETY: the caller's contract: `out` is writable.
    unsafe { out.write(tricolor_alloc::stats()) };
    0
}

/// Fills `*out` with the figures of size class `size_class` (0 ≤ size_class <
/// `TC_NUM_CLASSES`). Returns 0, or -1 with `errno = EINVAL` for a bad class or NULL `out`.
///
/// # Safety
/// `out` is NULL or points to writable memory for one `tc_class_stats_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tc_class_stats(size_class: i32, out: *mut tc_class_stats_t) -> i32 {
    let figures = usize::try_from(size_class)
        .ok()
        .and_then(tricolor_alloc::class_stats);
    match figures {
        Some(c) if !out.is_null() => {
            // SAFETY: the caller's contract: `out` is writable.
            unsafe { out.write(c) };
            0
        }
        _ => {
            cmalloc::set_errno(libc::EINVAL);
            -1
        }
    }
}

/// Reads the statistic named `name` into `*value`: a whole-heap figure (`"mapped"`,
/// `"in_use"`, `"in_use.small"`, `"cached"`, `"free_dirty"`, `"released"`, `"metadata"`, ...;
/// `tc_stat_name` lists them) or a size class's (`"class.N.in_use"` and the other fields of
/// `tc_class_stats_t`). Names are stable (jemalloc's `mallctl` in spirit). Returns 0, or -1
/// with `errno = ENOENT` for a name that is not one and `EINVAL` for a NULL argument.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `value` is NULL or points to a writable
/// `uint64_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tc_stat_get(name: *const c_char, value: *mut u64) -> i32 {
    if name.is_null() || value.is_null() {
        cmalloc::set_errno(libc::EINVAL);
        return -1;
    }
    // SAFETY: the caller's contract: a NUL-terminated string.
    let name = unsafe { CStr::from_ptr(name) };
    match name.to_str().ok().and_then(tricolor_alloc::stat) {
        Some(v) => {
            // SAFETY: the caller's contract: `value` is writable.
            unsafe { value.write(v) };
            0
        }
        None => {
            cmalloc::set_errno(libc::ENOENT);
            -1
        }
    }
}

/// The `i`-th whole-heap statistic name for `tc_stat_get` (0, 1, ... until NULL), so a tool
/// can list them; the per-class names are `class.N.` followed by a field of
/// `tc_class_stats_t`. The strings are static.
#[unsafe(no_mangle)]
pub extern "C" fn tc_stat_name(i: i32) -> *const c_char {
    usize::try_from(i)
        .ok()
        .and_then(|i| tricolor_alloc::stat::NAMES.get(i))
        .map_or(core::ptr::null(), |st| st.name.as_ptr())
}

/// Returns every free page to the OS and empties every cache it can reach (Go's
/// `debug.FreeOSMemory`); returns the bytes released.
#[unsafe(no_mangle)]
pub extern "C" fn tc_release_memory() -> usize {
    tricolor_alloc::release_memory()
}

/// Sets the soft memory limit in bytes and returns the previous one; a negative `limit` only
/// reads it; `TC_NO_LIMIT` turns it off (Go's `debug.SetMemoryLimit`; `GOMEMLIMIT` sets it
/// at start).
#[unsafe(no_mangle)]
pub extern "C" fn tc_set_memory_limit(limit: i64) -> i64 {
    tricolor_alloc::set_memory_limit(limit)
}
