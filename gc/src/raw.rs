//! The raw layer for the C ABI: mutators and handles as pointers, with the checks the C
//! functions need (a handle or object of another heap aborts with a message).

pub use crate::ephemeron::EphemeronTable;
pub use crate::finalize::{CleanupFn, FinalizerFn};
use crate::heap::Heap;
use crate::misuse;
pub use crate::misuse::abort as misuse_abort;
use crate::mutator::{self, MutatorState};
pub use crate::object::{MAX_POINTER_OFFSET, MAX_TYPE_SIZE};
pub use crate::pool::{NewFn, Pool};
use crate::roots::HandleSlot;
pub use crate::weak::weak_free;

/// Attaches the calling thread to `heap`; the record is detached with [`detach`].
pub fn attach(heap: &'static Heap) -> *mut MutatorState {
    mutator::attach(heap)
}

/// Detaches `m` (aborts if already detached).
///
/// # Safety
/// `m` came from [`attach`] on this thread.
pub unsafe fn detach(m: *mut MutatorState) {
    // SAFETY: the caller's contract.
    unsafe { mutator::detach(m) }
}

/// A global handle holding `obj` (null or an object of `m`'s heap; aborts otherwise).
pub fn handle_new(m: &MutatorState, obj: *mut u8) -> *mut HandleSlot {
    m.check_attached("handle_new");
    check_object(m, obj, "handle_new");
    m.heap.handle_new(obj as usize)
}

/// The object a handle holds.
///
/// # Safety
/// `h` is a live handle.
pub unsafe fn handle_get(h: *const HandleSlot) -> *mut u8 {
    // SAFETY: the caller's contract.
    unsafe { (*h).obj.load(std::sync::atomic::Ordering::Relaxed) as *mut u8 }
}

/// Points a handle at `obj` (null or an object of `m`'s heap; aborts otherwise).
///
/// # Safety
/// `h` is a live handle of `m`'s heap.
pub unsafe fn handle_set(m: &MutatorState, h: *mut HandleSlot, obj: *mut u8) {
    m.check_attached("handle_set");
    check_object(m, obj, "handle_set");
    // SAFETY: the caller's contract.
    let old = unsafe {
        (*h).obj
            .swap(obj as usize, std::sync::atomic::Ordering::Relaxed)
    };
    if m.heap
        .mark
        .marking
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        // `collect` rule 6: handles are never rescanned.
        m.heap.shade(&[old, obj as usize]);
    }
}

/// Frees a handle (aborts if it is not live).
///
/// # Safety
/// `h` came from [`handle_new`] and was not freed (a second free is caught only while the
/// slot has not been reused).
pub unsafe fn handle_free(h: *mut HandleSlot) {
    // SAFETY: the caller's contract.
    unsafe {
        let heap = &*((*h).heap as *const Heap);
        heap.handle_free(h);
    }
}

fn check_object(m: &MutatorState, obj: *mut u8, op: &str) {
    if !obj.is_null() && !m.is_object(obj) {
        misuse::abort(format_args!(
            "{op}(): {obj:p} is not an object of this heap"
        ));
    }
}
