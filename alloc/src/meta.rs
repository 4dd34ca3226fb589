//! Metadata memory: span records, pagemap leaves and front-cache records live here, mapped
//! straight from the OS and never through the allocator they describe.
//!
//! Invariant: metadata is never returned to the OS. Span records are therefore type-stable: a
//! pointer to a `Span` read from the pagemap always points at a valid `Span`, even if that
//! record has since been recycled for another run of pages. The lock-free free-path checks
//! rely on this (they read the record, then confirm it still describes the pointer).

use crate::os;
use crate::sync::{AtomicUsize, Mutex, Ordering};
use core::ptr::NonNull;

/// Metadata is carved from chunks of this size (or larger, for a big request).
const CHUNK: usize = 1 << 20;

/// A bump allocator over OS-mapped chunks. Thread-safe; allocation is rare (a new span record,
/// a new pagemap leaf, a new thread's cache).
pub(crate) struct MetaArena {
    bump: Mutex<Bump>,
    /// Bytes mapped for metadata so far (statistics; written under `bump`'s lock).
    mapped: AtomicUsize,
}

struct Bump {
    cur: usize,
    end: usize,
}

impl MetaArena {
    pub(crate) const fn new() -> Self {
        Self {
            bump: Mutex::new(Bump { cur: 0, end: 0 }),
            mapped: AtomicUsize::new(0),
        }
    }

    /// Bytes mapped for metadata (never returned, so this only grows).
    pub(crate) fn mapped(&self) -> usize {
        self.mapped.load(Ordering::Relaxed)
    }

    /// Takes the lock (fork prepare).
    pub(crate) fn lock_for_fork(&self) {
        self.bump.lock_for_fork();
    }

    /// Releases what [`MetaArena::lock_for_fork`] took.
    ///
    /// # Safety
    /// As for `Mutex::unlock_after_fork`.
    pub(crate) unsafe fn unlock_after_fork(&self) {
        // SAFETY: the caller's contract.
        unsafe { self.bump.unlock_after_fork() };
    }

    /// Returns `size` zeroed bytes aligned to `align` (a power of two at most 4 KiB), or `None`
    /// when the OS refuses memory.
    pub(crate) fn alloc(&self, size: usize, align: usize) -> Option<NonNull<u8>> {
        debug_assert!(align.is_power_of_two() && align <= 4096);
        let mut b = self.bump.lock();
        let start = (b.cur + align - 1) & !(align - 1);
        if b.cur != 0 && start + size <= b.end {
            b.cur = start + size;
            return NonNull::new(start as *mut u8);
        }
        if size >= CHUNK / 4 {
            // A big request gets its own mapping, so the current chunk's tail is not wasted.
            let len = size.next_multiple_of(os::system_page_size());
            let p = os::map_zeroed(len)?;
            self.mapped.fetch_add(len, Ordering::Relaxed);
            return Some(p);
        }
        let p = os::map_zeroed(CHUNK)?;
        self.mapped.fetch_add(CHUNK, Ordering::Relaxed);
        b.cur = p.as_ptr() as usize + size;
        b.end = p.as_ptr() as usize + CHUNK;
        Some(p)
    }
}
