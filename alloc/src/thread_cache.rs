//! Per-thread front caches: the allocation fast path of this stage.
//!
//! Each thread owns one cache: per size class, a singly linked list of free blocks. `alloc`
//! pops, `free` pushes; a miss fetches a batch from the central list and an overflow returns
//! one. The per-CPU restartable-sequence caches replace this as the fast path in a later
//! stage; this cache remains as their fallback where rseq is unavailable.
//!
//! # Bounds
//! A class's list holds at most two batches (`2 * SizeClass::batch` objects); when the
//! thread's cached bytes pass [`MAX_THREAD_BYTES`], every list gives back half.
//!
//! # Thread exit and re-entry
//! The cache pointer lives in a `thread_local!` `Cell` with a `const` initialiser and no
//! destructor, which compiles to a plain TLS slot: no lazy registration, no allocation. A
//! `pthread_key_create` destructor flushes the cache at thread exit. The slot also encodes
//! two states in which the thread does not cache, and every call goes to the central list:
//! * `CREATING`: while the cache is being set up (registering the key may itself call
//!   `malloc`, which must not recurse into cache creation);
//! * `EXITED`: after the exit flush (later TLS destructors may still allocate and free).
//!
//! Rule 1: a cache is touched only by its owning thread (the exit destructor runs on it).

use crate::block::{self, FreeBlock};
use crate::central::Batch;
use crate::heap::{self, HEAP};
use crate::size_class::{CLASSES, NUM_CLASSES};
use crate::sync::Mutex;
use core::cell::Cell;
use core::ffi::c_void;
use core::ptr;

/// Most bytes one thread keeps cached before every list gives back half.
const MAX_THREAD_BYTES: usize = 2 << 20;

const CREATING: *mut ThreadCache = ptr::without_provenance_mut(1);
const EXITED: *mut ThreadCache = ptr::without_provenance_mut(2);

std::thread_local! {
    static CURRENT: Cell<*mut ThreadCache> = const { Cell::new(ptr::null_mut()) };
}

struct List {
    head: *mut FreeBlock,
    len: u32,
}

/// One thread's cache.
pub(crate) struct ThreadCache {
    lists: [List; NUM_CLASSES],
    bytes: usize,
    /// Link in the pool of caches of exited threads (guarded by `POOL`).
    next: *mut ThreadCache,
}

/// Caches of exited threads, reused by new threads. The pointer is guarded by the mutex.
struct Pool(*mut ThreadCache);
// SAFETY: pooled caches belong to no thread; the mutex guards the list.
unsafe impl Send for Pool {}
static POOL: Mutex<Pool> = Mutex::new(Pool(ptr::null_mut()));

/// The calling thread's cache, or null/CREATING/EXITED.
#[inline]
fn current() -> *mut ThreadCache {
    CURRENT.with(Cell::get)
}

#[inline]
fn usable(tc: *mut ThreadCache) -> bool {
    tc as usize > EXITED as usize
}

/// Allocates one block of `class`, or null when memory is exhausted.
#[inline]
pub(crate) fn alloc(class: usize) -> *mut u8 {
    let tc = current();
    if usable(tc) {
        // SAFETY: rule 1: this thread owns `tc`.
        let c = unsafe { &mut *tc };
        let list = &mut c.lists[class];
        let b = list.head;
        if !b.is_null() {
            // SAFETY: blocks on our list are free blocks of this class owned by the cache.
            unsafe {
                list.head = (*b).next;
                list.len -= 1;
                c.bytes -= CLASSES[class].size as usize;
                if class != 0 {
                    block::clear_canary(b.cast());
                }
            }
            return b.cast();
        }
    }
    alloc_slow(tc, class)
}

#[cold]
#[inline(never)]
fn alloc_slow(mut tc: *mut ThreadCache, class: usize) -> *mut u8 {
    if tc.is_null() {
        tc = create();
    }
    if !usable(tc) {
        return alloc_uncached(class);
    }
    let batch = HEAP
        .central
        .remove_batch(&HEAP.pages, class, CLASSES[class].batch as usize);
    if batch.count == 0 {
        return ptr::null_mut();
    }
    // Keep all but the first block.
    let b = batch.head;
    // SAFETY: rule 1; batch blocks are free blocks of `class` now owned by this cache.
    unsafe {
        let c = &mut *tc;
        let list = &mut c.lists[class];
        let mut tail = b;
        for _ in 1..batch.count {
            tail = (*tail).next;
        }
        (*tail).next = list.head;
        list.head = (*b).next;
        list.len += batch.count as u32 - 1;
        c.bytes += (batch.count - 1) * CLASSES[class].size as usize;
        if class != 0 {
            block::clear_canary(b.cast());
        }
    }
    b.cast()
}

fn alloc_uncached(class: usize) -> *mut u8 {
    let batch = HEAP.central.remove_batch(&HEAP.pages, class, 1);
    if batch.count == 0 {
        return ptr::null_mut();
    }
    if class != 0 {
        // SAFETY: the block is ours, at least 16 bytes.
        unsafe { block::clear_canary(batch.head.cast()) };
    }
    batch.head.cast()
}

/// Frees a block of `class` that the caller has checked is live and ours.
///
/// # Safety
/// `p` is a live block of `class` (checked by the API layer) that nobody uses any more.
#[inline]
pub(crate) unsafe fn free(p: *mut u8, class: usize) {
    let size = CLASSES[class].size as usize;
    debug_fill_freed(p, size);
    if class != 0 {
        // SAFETY: blocks of classes above 0 have at least 16 bytes.
        unsafe { block::set_canary(p) };
    }
    let tc = current();
    if usable(tc) {
        // SAFETY: rule 1; `p` becomes a free block owned by this cache.
        let c = unsafe { &mut *tc };
        let list = &mut c.lists[class];
        let b = p.cast::<FreeBlock>();
        // SAFETY: `p` is ours and at least 8 bytes, aligned.
        unsafe { (*b).next = list.head };
        list.head = b;
        list.len += 1;
        c.bytes += size;
        if list.len > 2 * CLASSES[class].batch || c.bytes > MAX_THREAD_BYTES {
            overflow(c, class);
        }
        return;
    }
    let b = p.cast::<FreeBlock>();
    // SAFETY: as above; a one-block batch goes straight to the central list.
    unsafe {
        (*b).next = ptr::null_mut();
        HEAP.central
            .insert_batch(&HEAP.pages, class, Batch { head: b, count: 1 });
    }
}

#[inline]
fn debug_fill_freed(_p: *mut u8, _size: usize) {
    // Debug builds poison freed memory past the link and canary words, so a use after free
    // reads 0xdf bytes instead of plausible data.
    #[cfg(debug_assertions)]
    if _size > 16 {
        // SAFETY: the block is ours and `_size` bytes long.
        unsafe { ptr::write_bytes(_p.add(16), 0xdf, _size - 16) };
    }
}

#[cold]
#[inline(never)]
fn overflow(c: &mut ThreadCache, class: usize) {
    let batch = CLASSES[class].batch;
    if c.lists[class].len > 2 * batch {
        release(c, class, batch);
    }
    if c.bytes > MAX_THREAD_BYTES {
        for k in 0..NUM_CLASSES {
            let half = c.lists[k].len.div_ceil(2);
            release(c, k, half);
        }
    }
}

/// Returns the first `n` blocks of list `class` to the central list.
fn release(c: &mut ThreadCache, class: usize, n: u32) {
    if n == 0 {
        return;
    }
    let list = &mut c.lists[class];
    debug_assert!(n <= list.len);
    let head = list.head;
    let mut last = head;
    // SAFETY: the list holds at least `n` blocks owned by this cache (rule 1).
    unsafe {
        for _ in 1..n {
            last = (*last).next;
        }
        list.head = (*last).next;
        (*last).next = ptr::null_mut();
    }
    list.len -= n;
    c.bytes -= n as usize * CLASSES[class].size as usize;
    // SAFETY: the cut-off blocks are free blocks of `class` with canaries, owned by us.
    unsafe {
        HEAP.central.insert_batch(
            &HEAP.pages,
            class,
            Batch {
                head,
                count: n as usize,
            },
        )
    };
}

#[cold]
fn create() -> *mut ThreadCache {
    CURRENT.with(|s| s.set(CREATING));
    heap::ensure_init(on_thread_exit);
    let mut tc = {
        let mut pool = POOL.lock();
        let tc = pool.0;
        if !tc.is_null() {
            // SAFETY: pooled caches are empty and owned by the pool (lock held).
            pool.0 = unsafe { (*tc).next };
        }
        tc
    };
    if tc.is_null() {
        // Zeroed metadata is an empty cache: null heads, zero counts.
        match HEAP
            .pages
            .meta
            .alloc(size_of::<ThreadCache>(), align_of::<ThreadCache>())
        {
            Some(p) => tc = p.as_ptr().cast(),
            None => {
                CURRENT.with(|s| s.set(ptr::null_mut()));
                return ptr::null_mut();
            }
        }
    }
    // Registration may call malloc (glibc's second-level key table); that call sees CREATING
    // and goes straight to the central list.
    if !heap::register_thread_exit(tc.cast()) {
        put_in_pool(tc);
        CURRENT.with(|s| s.set(EXITED));
        return EXITED;
    }
    CURRENT.with(|s| s.set(tc));
    tc
}

fn put_in_pool(tc: *mut ThreadCache) {
    let mut pool = POOL.lock();
    // SAFETY: the cache is empty and no thread owns it any more.
    unsafe { (*tc).next = pool.0 };
    pool.0 = tc;
}

/// Empties the calling thread's cache into the central lists.
fn flush(c: &mut ThreadCache) {
    for class in 0..NUM_CLASSES {
        let n = c.lists[class].len;
        release(c, class, n);
    }
    debug_assert_eq!(c.bytes, 0);
}

/// The pthread-key destructor: runs on the exiting thread with its cache.
unsafe extern "C" fn on_thread_exit(p: *mut c_void) {
    let tc = p.cast::<ThreadCache>();
    // From here on this thread allocates without a cache (later destructors may allocate).
    CURRENT.with(|s| s.set(EXITED));
    // SAFETY: rule 1: we are the owning thread, in its exit path.
    flush(unsafe { &mut *tc });
    put_in_pool(tc);
}

/// Empties the calling thread's cache (tests, and `release_memory` in a later stage).
#[cfg(any(test, feature = "testing"))]
pub(crate) fn flush_current() {
    let tc = current();
    if usable(tc) {
        // SAFETY: rule 1.
        flush(unsafe { &mut *tc });
    }
}

/// Bytes cached by the calling thread.
#[cfg(any(test, feature = "testing"))]
pub(crate) fn current_bytes() -> usize {
    let tc = current();
    if !usable(tc) {
        return 0;
    }
    // SAFETY: rule 1.
    unsafe { (*tc).bytes }
}
