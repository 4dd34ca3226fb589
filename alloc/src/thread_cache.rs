//! Per-thread front caches: the fallback front end where rseq is unavailable (the per-CPU
//! restartable-sequence caches, `percpu`, are the fast path elsewhere).
//!
//! Each thread owns one cache: per size class, a singly linked list of free blocks. `alloc`
//! pops, `free` pushes; a miss fetches a batch from the central list and an overflow returns
//! one.
//!
//! # Bounds (TCMalloc's slow start)
//! Each list has a limit, starting at zero. A refill fetches as many blocks as the limit
//! allows, at least one and at most a batch (`SizeClass::batch`); an allocation that finds the
//! list empty raises the limit by one, and by a batch once it has reached a batch; a free that
//! pushes the list past its limit returns up to a batch to the central list and raises the
//! limit the same way. So a thread that repeatedly frees or
//! allocates runs of objects soon keeps them all, while one that touches a class rarely holds
//! at most a batch. A limit never exceeds [`MAX_LIST_BYTES`] (or 8192 objects). On overflow the
//! cache also totals its bytes (67 multiply-adds, once per batch, off the fast path); past
//! [`MAX_THREAD_BYTES`], every list gives back half and halves its limit. The fast paths touch
//! only the list: pop or push, a length update, one compare, and on a pop the list's
//! allocation count (one add: this front end pays for its counters, where the per-CPU one
//! carries them in its committing store; exited threads' counts move to [`GONE`]).
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
//! Rule 1: a cache is touched only by its owning thread (the exit destructor runs on it), or,
//! in the child of a `fork`, by the one thread that exists there, which only resets it (see
//! [`abandon_orphans`]).
//!
//! # The registry
//! Every cache is on one of two lists under [`CACHES`]: `live` (owned by a running thread) or
//! `pool` (flushed, waiting for a new thread). The registry is what lets a forked child find
//! the caches of threads that do not exist in it and reuse their records (their blocks are
//! left behind: [`abandon_orphans`] says why).

use crate::block::{self, Batch, FreeBlock};
use crate::heap::{self, HEAP};
use crate::size_class::{CLASSES, NUM_CLASSES};
use crate::sync::{AtomicU32, AtomicU64, Mutex, Ordering};
use core::cell::Cell;
use core::ffi::c_void;
use core::ptr;

/// Most bytes one thread keeps cached before every list gives back half.
const MAX_THREAD_BYTES: usize = 4 << 20;
/// The highest limit a list may reach, in bytes.
const MAX_LIST_BYTES: usize = 1 << 20;
/// The highest limit a list may reach, in objects.
const MAX_LIST_LEN: u32 = 8192;

const CREATING: *mut ThreadCache = ptr::without_provenance_mut(1);
const EXITED: *mut ThreadCache = ptr::without_provenance_mut(2);

std::thread_local! {
    static CURRENT: Cell<*mut ThreadCache> = const { Cell::new(ptr::null_mut()) };
}

struct List {
    head: *mut FreeBlock,
    /// Blocks on the list. Written only by the owner (rule 1) with plain-width relaxed loads
    /// and stores (no atomic read-modify-write); read racily by the statistics.
    len: AtomicU32,
    /// Allocations this list served, written like `len`; zero again when the thread exits
    /// (moved to [`GONE`]).
    allocs: AtomicU64,
    /// Slow-start limit (module docs); 0 in a fresh cache means "one batch".
    max: u32,
}

impl List {
    #[inline(always)]
    fn len(&self) -> u32 {
        self.len.load(Ordering::Relaxed)
    }
    #[inline(always)]
    fn set_len(&self, n: u32) {
        self.len.store(n, Ordering::Relaxed);
    }
    /// Counts an allocation (owner only: a load and a store, no read-modify-write).
    #[inline(always)]
    fn count_alloc(&self) {
        let n = self.allocs.load(Ordering::Relaxed);
        self.allocs.store(n + 1, Ordering::Relaxed);
    }
    /// Moves the list's count to [`GONE`] (registry lock held: readers sum both under it).
    fn retire_count(&self, class: usize) {
        let n = self.allocs.swap(0, Ordering::Relaxed);
        GONE[class].fetch_add(n, Ordering::Relaxed);
    }
}

/// Allocations counted by caches whose threads exited, and served without a cache, per class
/// (written under the registry lock, except the uncached ones).
static GONE: [AtomicU64; NUM_CLASSES] = [const { AtomicU64::new(0) }; NUM_CLASSES];

/// Raises list `class`'s limit by a batch, up to its ceiling.
fn raise_limit(list: &mut List, class: usize) {
    let sc = &CLASSES[class];
    let ceiling = ((MAX_LIST_BYTES / sc.size as usize) as u32).clamp(sc.batch, MAX_LIST_LEN);
    list.max = if list.max < sc.batch {
        list.max + 1
    } else {
        (list.max + sc.batch).min(ceiling)
    };
}

/// How many blocks a refill of list `class` fetches: the limit, up to a batch, so a class a
/// thread uses once costs one block of memory, not a batch (64 KiB for large classes).
fn refill_count(list: &List, class: usize) -> usize {
    list.max.clamp(1, CLASSES[class].batch) as usize
}

/// One thread's cache.
pub(crate) struct ThreadCache {
    lists: [List; NUM_CLASSES],
    /// Links on the registry's `live` (doubly linked) or `pool` (through `next`) list; guarded
    /// by `CACHES`.
    next: *mut ThreadCache,
    prev: *mut ThreadCache,
}

impl ThreadCache {
    /// Bytes held in this cache.
    fn bytes(&self) -> usize {
        self.lists
            .iter()
            .zip(CLASSES.iter())
            .map(|(l, c)| l.len() as usize * c.size as usize)
            .sum()
    }
}

/// The list of `class`, without a bounds check. A private function: every class index in this
/// crate comes from `class_of` or `class_for`, or from a span record whose class was set from
/// one of them, so it is below `NUM_CLASSES`.
#[inline(always)]
fn list_of(lists: &mut [List; NUM_CLASSES], class: usize) -> &mut List {
    debug_assert!(class < NUM_CLASSES);
    // SAFETY: the class-index invariant above: `class < NUM_CLASSES`.
    unsafe { lists.get_unchecked_mut(class) }
}

/// The registry of caches (module docs). Lock order: before every central and page-heap lock.
pub(crate) struct Caches {
    live: *mut ThreadCache,
    pool: *mut ThreadCache,
}
// SAFETY: the lists are only followed under the CACHES mutex.
unsafe impl Send for Caches {}
pub(crate) static CACHES: Mutex<Caches> = Mutex::new(Caches {
    live: ptr::null_mut(),
    pool: ptr::null_mut(),
});

impl Caches {
    /// # Safety
    /// `tc` is on no list; lock held (through `self`).
    unsafe fn push_live(&mut self, tc: *mut ThreadCache) {
        // SAFETY: registry links are guarded by the lock the caller holds.
        unsafe {
            (*tc).prev = ptr::null_mut();
            (*tc).next = self.live;
            if !self.live.is_null() {
                (*self.live).prev = tc;
            }
        }
        self.live = tc;
    }

    /// # Safety
    /// `tc` is on `live`; lock held.
    unsafe fn unlink_live(&mut self, tc: *mut ThreadCache) {
        // SAFETY: as above.
        unsafe {
            let (prev, next) = ((*tc).prev, (*tc).next);
            if prev.is_null() {
                self.live = next;
            } else {
                (*prev).next = next;
            }
            if !next.is_null() {
                (*next).prev = prev;
            }
        }
    }

    /// # Safety
    /// `tc` is empty and on no list; lock held.
    unsafe fn push_pool(&mut self, tc: *mut ThreadCache) {
        // SAFETY: as above.
        unsafe { (*tc).next = self.pool };
        self.pool = tc;
    }
}

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
///
/// # Safety
/// `class < NUM_CLASSES` (`list_of` indexes without a check).
#[inline]
pub(crate) unsafe fn alloc(class: usize) -> *mut u8 {
    let tc = current();
    if usable(tc) {
        // SAFETY: rule 1: this thread owns `tc`.
        let c = unsafe { &mut *tc };
        let list = list_of(&mut c.lists, class);
        let b = list.head;
        if !b.is_null() {
            // SAFETY: blocks on our list are free blocks of this class owned by the cache.
            unsafe {
                list.head = (*b).next;
                list.set_len(list.len() - 1);
                block::clear_canary(b.cast());
            }
            list.count_alloc();
            return b.cast();
        }
    }
    // SAFETY: `tc` is `current()`'s; the caller's `class`.
    unsafe { alloc_slow(tc, class) }
}

/// # Safety
/// `tc` is [`current`]'s answer on this thread, and `class < NUM_CLASSES`.
#[cold]
#[inline(never)]
unsafe fn alloc_slow(mut tc: *mut ThreadCache, class: usize) -> *mut u8 {
    if tc.is_null() {
        tc = create();
    }
    if !usable(tc) {
        return alloc_uncached(class);
    }
    // SAFETY: rule 1.
    let want = refill_count(unsafe { &(*tc).lists[class] }, class);
    let batch = HEAP.remove_batch(class, want);
    if batch.count == 0 {
        return ptr::null_mut();
    }
    // Keep all but the first block.
    let b = batch.head;
    // SAFETY: rule 1; batch blocks are free blocks of `class` now owned by this cache.
    unsafe {
        let c = &mut *tc;
        let list = &mut c.lists[class];
        raise_limit(list, class);
        let mut tail = b;
        for _ in 1..batch.count {
            tail = (*tail).next;
        }
        (*tail).next = list.head;
        list.head = (*b).next;
        list.set_len(list.len() + batch.count as u32 - 1);
        block::clear_canary(b.cast());
        list.count_alloc();
    }
    crate::scavenger::tick();
    b.cast()
}

fn alloc_uncached(class: usize) -> *mut u8 {
    let batch = HEAP.central.remove_batch(&HEAP.pages, class, 1);
    if batch.count == 0 {
        return ptr::null_mut();
    }
    // SAFETY: the block is ours, at least 16 bytes.
    unsafe { block::clear_canary(batch.head.cast()) };
    GONE[class].fetch_add(1, Ordering::Relaxed);
    batch.head.cast()
}

/// Frees a block of `class` that the caller has checked is live and ours.
///
/// # Safety
/// `p` is a live block of `class` (checked by the API layer) that nobody uses any more;
/// `canary` is `Canary::of(p)`.
#[inline]
pub(crate) unsafe fn free(p: *mut u8, class: usize, canary: block::Canary) {
    // SAFETY: the caller's contract: `p` is a block of `class`, being freed.
    unsafe { block::debug_fill_freed(p, class) };
    // SAFETY: every malloc class has blocks of at least 16 bytes (`class_of`); the caller
    // computed `canary` for `p`.
    unsafe { canary.set(p) };
    let tc = current();
    if usable(tc) {
        // SAFETY: rule 1; `p` becomes a free block owned by this cache.
        let c = unsafe { &mut *tc };
        let list = list_of(&mut c.lists, class);
        let b = p.cast::<FreeBlock>();
        // SAFETY: `p` is ours and at least 8 bytes, aligned.
        unsafe { (*b).next = list.head };
        list.head = b;
        list.set_len(list.len() + 1);
        if list.len() > list.max {
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

#[cold]
#[inline(never)]
fn overflow(c: &mut ThreadCache, class: usize) {
    let list = &mut c.lists[class];
    // Past the limit: give back a batch (or everything, while the limit is still small)
    // and let the limit grow, so a thread that frees many blocks soon keeps them.
    let n = CLASSES[class].batch.min(list.len());
    raise_limit(list, class);
    release(c, class, n);
    if c.bytes() > MAX_THREAD_BYTES {
        for (k, sc) in CLASSES.iter().enumerate() {
            let half = c.lists[k].len().div_ceil(2);
            release(c, k, half);
            let l = &mut c.lists[k];
            l.max = (l.max / 2).max(sc.batch);
        }
    }
    crate::scavenger::tick();
}

/// Returns the first `n` blocks of list `class` to the central list.
fn release(c: &mut ThreadCache, class: usize, n: u32) {
    if n == 0 {
        return;
    }
    let list = &mut c.lists[class];
    debug_assert!(n <= list.len());
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
    list.set_len(list.len() - n);
    // SAFETY: the cut-off blocks are free blocks of `class` with canaries, owned by us.
    unsafe {
        HEAP.insert_batch(
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
    // Per-thread caches serve only once `init` has decided the front end, which initialises
    // the heap first (its thread-exit key, which `register_thread_exit` below needs).
    debug_assert!(heap::initialised());
    let mut tc = {
        let mut caches = CACHES.lock();
        let tc = caches.pool;
        if !tc.is_null() {
            // SAFETY: pooled caches are empty and owned by the registry (lock held).
            caches.pool = unsafe { (*tc).next };
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
    // SAFETY: `tc` is this thread's cache, made or taken from the pool above.
    if !unsafe { heap::register_thread_exit(tc.cast()) } {
        // SAFETY: the cache is empty and on no list.
        unsafe { CACHES.lock().push_pool(tc) };
        CURRENT.with(|s| s.set(EXITED));
        return EXITED;
    }
    // SAFETY: the cache is on no list.
    unsafe { CACHES.lock().push_live(tc) };
    CURRENT.with(|s| s.set(tc));
    tc
}

/// Empties a cache into the central lists and resets its limits (a pooled cache starts
/// afresh in its next thread).
fn flush(c: &mut ThreadCache) {
    for class in 0..NUM_CLASSES {
        let n = c.lists[class].len();
        release(c, class, n);
        c.lists[class].max = 0;
    }
    debug_assert_eq!(c.bytes(), 0);
}

/// The pthread-key destructor: runs on the exiting thread with its cache.
pub(crate) unsafe extern "C" fn on_thread_exit(p: *mut c_void) {
    let tc = p.cast::<ThreadCache>();
    // From here on this thread allocates without a cache (later destructors may allocate).
    CURRENT.with(|s| s.set(EXITED));
    // SAFETY: rule 1: we are the owning thread, in its exit path.
    flush(unsafe { &mut *tc });
    let mut caches = CACHES.lock();
    // SAFETY: the cache is on `live` and now empty; its counts move to `GONE` under the lock.
    unsafe {
        for (class, list) in (*tc).lists.iter().enumerate() {
            list.retire_count(class);
        }
        caches.unlink_live(tc);
        caches.push_pool(tc);
    }
}

/// In the child of a `fork`: abandons the caches of every thread but the calling one (they
/// did not survive the fork) and pools their records for new threads. Called once all locks
/// are usable again.
///
/// Their blocks are leaked, not flushed: `fork` copies memory while the other threads run,
/// page by page, so a dead thread's list in the child may be caught between a pop and the
/// length update, or show a block's link from before and the head from after a store. Walking
/// it crashes children (SIGSEGV in 2 to 14 of 200 forks with the lists flushed:
/// `cargo test -p tricolor-alloc --test fork fork_storm_with_small_block_churn`), and
/// salvaging it by validation could hand a block out twice. glibc, jemalloc and mimalloc also leave other threads' caches behind
/// in the child. The loss is bounded by [`MAX_THREAD_BYTES`] per thread that existed at the
/// fork; statistics count those blocks as in use (no list holds them).
pub(crate) fn abandon_orphans() {
    let me = current();
    let mut caches = CACHES.lock();
    let mut tc = caches.live;
    while !tc.is_null() {
        // SAFETY: rule 1, fork clause: this is the only thread; every other live cache's owner
        // is gone, the registry lock is held while its links change, and only the record's
        // own fields are written (never a block).
        unsafe {
            let next = (*tc).next;
            if tc != me {
                for (class, list) in (*tc).lists.iter_mut().enumerate() {
                    list.head = ptr::null_mut();
                    list.set_len(0);
                    list.max = 0;
                    list.retire_count(class);
                }
                caches.unlink_live(tc);
                caches.push_pool(tc);
            }
            tc = next;
        }
    }
}

/// Live caches (tests).
#[cfg(any(test, feature = "testing"))]
pub(crate) fn live_caches() -> usize {
    let caches = CACHES.lock();
    let mut n = 0;
    let mut tc = caches.live;
    while !tc.is_null() {
        n += 1;
        // SAFETY: registry links are guarded by the lock we hold.
        tc = unsafe { (*tc).next };
    }
    n
}

/// Blocks of each class held in every live thread's cache (read racily: statistics), added
/// to `out`. Holds the registry lock, which only thread creation and exit take.
pub(crate) fn cached_by_class(out: &mut [usize; NUM_CLASSES]) {
    let caches = CACHES.lock();
    let mut tc = caches.live;
    while !tc.is_null() {
        // SAFETY: live caches stay valid while the registry lock is held (a cache leaves
        // `live` only under it); `len` is an atomic, so reading another thread's is no race.
        unsafe {
            for (k, o) in out.iter_mut().enumerate() {
                *o += (*ptr::addr_of!((*tc).lists[k].len)).load(Ordering::Relaxed) as usize;
            }
            tc = (*tc).next;
        }
    }
}

/// Adds the per-thread front end's allocations of each class to `out`: live caches' counts
/// and [`GONE`], under the registry lock (which a count moving to `GONE` holds).
pub(crate) fn allocs_by_class(out: &mut [u64; NUM_CLASSES]) {
    let caches = CACHES.lock();
    for (o, g) in out.iter_mut().zip(&GONE) {
        *o += g.load(Ordering::Relaxed);
    }
    let mut tc = caches.live;
    while !tc.is_null() {
        // SAFETY: as in `cached_by_class`; `allocs` is an atomic.
        unsafe {
            for (k, o) in out.iter_mut().enumerate() {
                *o += (*ptr::addr_of!((*tc).lists[k].allocs)).load(Ordering::Relaxed);
            }
            tc = (*tc).next;
        }
    }
}

/// Empties the calling thread's cache (tests, and `release_memory`).
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
    unsafe { (*tc).bytes() }
}
