//! Heap profiles from C: the sampling rate and writing the profile (`tricolor_alloc::profile`
//! has the design). `TRICOLOR_PROFILE=path` needs no call at all.

use crate::cmalloc;
use core::ffi::{c_char, c_int};
use std::ffi::CStr;

/// Sets the heap profile's sampling rate, on average one sample per `bytes` allocated (Go's
/// `MemProfileRate`; 0 stops sampling, 1 samples every allocation), and returns the previous
/// rate. Sampling is off unless this or `TRICOLOR_PROFILE`/`TRICOLOR_PROFILE_RATE` turns it on.
#[unsafe(no_mangle)]
pub extern "C" fn tc_profile_set_rate(bytes: u64) -> u64 {
    tricolor_alloc::profile::set_rate(bytes)
}

/// Writes the heap profile to `path` in pprof's format (`go tool pprof path` reads it):
/// every allocation sampled so far and those still live, symbolized. Returns 0, or -1 with
/// `errno` set (`EINVAL` for a NULL or non-UTF-8 path, else the failing write's).
///
/// # Safety
/// `path` is NULL or a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tc_profile_dump(path: *const c_char) -> c_int {
    if path.is_null() {
        cmalloc::set_errno(libc::EINVAL);
        return -1;
    }
    // SAFETY: the caller's contract: a NUL-terminated string.
    let Ok(p) = unsafe { CStr::from_ptr(path) }.to_str() else {
        cmalloc::set_errno(libc::EINVAL);
        return -1;
    };
    match tricolor_alloc::profile::dump(p) {
        Ok(()) => 0,
        Err(e) => {
            cmalloc::set_errno(e.raw_os_error().unwrap_or(libc::EIO));
            -1
        }
    }
}
