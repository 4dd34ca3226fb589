//! `Tricolor` as Rust's global allocator.

use crate::api;
use core::alloc::{GlobalAlloc, Layout};

/// Tricolor's allocator, for `#[global_allocator]`:
///
/// ```
/// use tricolor_alloc::Tricolor;
///
/// #[global_allocator]
/// static GLOBAL: Tricolor = Tricolor;
///
/// let v: Vec<u64> = (0..1000).collect();
/// assert_eq!(v.iter().sum::<u64>(), 499_500);
/// ```
///
/// Out of memory returns null, so Rust calls `handle_alloc_error`. Any alignment is honoured
/// (up to 8 KiB from size classes, beyond that as aligned page runs).
#[derive(Clone, Copy, Debug, Default)]
pub struct Tricolor;

// SAFETY: `api` returns blocks of at least `layout.size()` bytes aligned to `layout.align()`,
// or null; blocks stay valid until freed; `dealloc`/`realloc` take the layout they were given.
unsafe impl GlobalAlloc for Tricolor {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        api::alloc(layout.size(), layout.align())
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: GlobalAlloc's contract: `ptr` came from this allocator with `layout`.
        unsafe { api::dealloc(ptr, layout.size(), layout.align()) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        api::alloc_zeroed(layout.size(), layout.align())
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: GlobalAlloc's contract: `ptr` is live with `layout`; `new_size` fits isize.
        unsafe { api::realloc(ptr, Some(layout.size()), layout.align(), new_size) }
    }
}
