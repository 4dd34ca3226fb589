//! Reading an object's pointer slots: whole small objects, large ones an oblet at a time.

use crate::span::GcSpan;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Starts loading the cache line at `addr`.
#[inline(always)]
pub(super) fn prefetch(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it never faults, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(addr as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

/// Bytes of a large object scanned as one unit of grey work (Go's 128 KiB oblets): a large
/// pointer array becomes many entries, so several markers share it and an assist's budget
/// bounds how long it scans.
pub(super) const OBLET: usize = 128 * 1024;

/// Copies of the type scanned as one unit in span `r`: all of a small object's, an oblet's
/// worth of a large one's.
#[inline]
pub(super) fn oblet_reps(r: &GcSpan) -> usize {
    (OBLET / r.ty.size).max(1)
}

/// Calls `f` with every pointer-slot value of copies `reps` of the type at object `obj` in
/// span `r`, last slot first: the grey stack is LIFO, so the first slot's object is then
/// scanned first, and a structure built depth-first (parent, then its first child's subtree)
/// is marked in allocation order, walking memory forwards.
#[inline]
fn scan_reps(r: &GcSpan, obj: usize, reps: std::ops::Range<usize>, mut f: impl FnMut(usize)) {
    let ty = r.ty;
    for rep in reps.rev() {
        let base = obj + rep * ty.size;
        for &w in ty.words.iter().rev() {
            // SAFETY: `obj` is an object slot of `r`; the type's pointer words lie within
            // each of its `reps` copies (checked at registration), all inside the slot, 8-byte
            // aligned; mutators store to them only atomically (`write`).
            let cell = unsafe { AtomicUsize::from_ptr((base + w as usize * 8) as *mut usize) };
            f(cell.load(Ordering::Relaxed));
        }
    }
}

/// Scans a whole object.
#[inline]
pub(super) fn scan(r: &GcSpan, obj: usize, f: impl FnMut(usize)) {
    scan_reps(r, obj, 0..r.reps, f)
}

/// Scans one grey entry: a small object, or the oblet of a large one that starts at `at`.
#[inline]
pub(super) fn scan_entry(r: &GcSpan, at: usize, f: impl FnMut(usize)) {
    if r.nelems == 1 && r.reps > oblet_reps(r) {
        let first = (at - r.start) / r.ty.size;
        scan_reps(r, r.start, first..(first + oblet_reps(r)).min(r.reps), f)
    } else {
        scan(r, at, f)
    }
}
