//! The process heap: the one page heap and the central lists every front cache draws from,
//! and their one-time initialisation.
//!
//! Initialisation happens on the first slow-path call from any thread. It draws the canary key
//! (`getrandom`), creates the thread-exit key (`pthread_key_create`) and registers the fork
//! handlers (`pthread_atfork`). glibc may allocate while registering a fork handler; that call
//! comes back into the allocator on a thread whose cache is being created, which takes blocks
//! straight from the central lists and needs nothing initialised beyond the canary key, drawn
//! first.

use crate::block::{self, Batch, BatchArray};
use crate::central::Central;
use crate::os;
use crate::page_heap::PageHeap;
use crate::size_class::PAGE_SIZE;
use crate::size_class::{CLASSES, NUM_CLASSES};
use crate::sync::{AtomicU8, AtomicU32, Mutex, Ordering};
use crate::transfer::{self, TransferCache};
use core::ffi::c_void;

/// The page heap, central lists and transfer caches of the process.
pub(crate) struct Heap {
    pub(crate) pages: PageHeap,
    pub(crate) central: Central,
    pub(crate) transfer: [TransferCache; NUM_CLASSES],
}

/// The process heap.
pub(crate) static HEAP: Heap = Heap {
    pages: PageHeap::new(),
    central: Central::new(),
    transfer: [const { TransferCache::new() }; NUM_CLASSES],
};

impl Heap {
    /// Takes up to `want` free blocks of `class` for a front cache: a parked batch when `want`
    /// is a whole batch and one is parked, otherwise from the central list. Fewer (possibly
    /// none) only when memory is exhausted.
    pub(crate) fn remove_batch(&self, class: usize, want: usize) -> Batch {
        if want == CLASSES[class].batch as usize
            && let Some(b) = self.transfer[class].remove()
        {
            // SAFETY: parked blocks are free blocks of `class` (transfer invariant 1), now ours.
            return unsafe { b.into_list() };
        }
        self.central.remove_batch(&self.pages, class, want)
    }

    /// A whole batch of `class` as an array, for a per-CPU refill: a parked one, taken without
    /// touching its blocks, or one from the central list (whose blocks it has just written, so
    /// walking them costs no miss). Fewer blocks (possibly none) only when memory is exhausted.
    pub(crate) fn remove_array(&self, class: usize) -> BatchArray {
        if let Some(b) = self.transfer[class].remove() {
            return b;
        }
        let list = self
            .central
            .remove_batch(&self.pages, class, CLASSES[class].batch as usize);
        // SAFETY: the central list's blocks are ours now; a class's batch is at most
        // MAX_BATCH long (`size_class`).
        unsafe { BatchArray::from_list(&list) }
    }

    /// Takes back free blocks of `class` from a front cache: a whole batch is parked in the
    /// transfer cache when there is room, anything else goes to the central list.
    ///
    /// # Safety
    /// As for `Central::insert_batch`: every block is a free block of `class`, carrying its
    /// canary, that the caller owns and nobody uses.
    pub(crate) unsafe fn insert_batch(&self, class: usize, batch: Batch) {
        if batch.count == CLASSES[class].batch as usize {
            // SAFETY: the caller's contract; a whole batch fits the array.
            let mut arr = unsafe { BatchArray::from_list(&batch) };
            if self.park(class, &mut arr) {
                return;
            }
        }
        // SAFETY: the caller's contract; a batch the transfer cache refused is still linked.
        unsafe { self.central.insert_batch(&self.pages, class, batch) };
    }

    /// Parks `batch` in `class`'s transfer cache when it is a whole batch and there is room;
    /// true when parked (`batch` is then left empty).
    fn park(&self, class: usize, batch: &mut BatchArray) -> bool {
        let sc = &CLASSES[class];
        batch.count == sc.batch as usize
            && self.transfer[class].insert(
                batch,
                transfer::limit_for(sc.size as usize, sc.batch as usize),
            )
    }

    /// [`Heap::insert_batch`] for blocks held as an array (a per-CPU overflow): a whole batch
    /// is parked without touching its blocks.
    ///
    /// # Safety
    /// As for [`Heap::insert_batch`].
    pub(crate) unsafe fn insert_array(&self, class: usize, mut batch: BatchArray) {
        if self.park(class, &mut batch) {
            return;
        }
        // SAFETY: the caller's contract (the link writes are to its own free blocks).
        unsafe {
            let list = batch.into_list();
            self.central.insert_batch(&self.pages, class, list);
        }
    }

    /// Empties into the central lists every transfer cache that saw no traffic since the
    /// previous call (all of them with `force`). Returns the bytes moved.
    pub(crate) fn reclaim_transfer(&self, force: bool) -> usize {
        let mut bytes = 0;
        for (class, t) in self.transfer.iter().enumerate() {
            t.take_if_idle(force, |b| {
                bytes += b.count * CLASSES[class].size as usize;
                // SAFETY: parked batches are free blocks of `class` with canaries (transfer
                // invariant 1), now ours.
                unsafe {
                    let list = b.into_list();
                    self.central.insert_batch(&self.pages, class, list);
                }
            });
        }
        bytes
    }
}

const UNINIT: u8 = 0;
const READY: u8 = 2;

/// Init state. Acquire/Release: READY publishes the keys.
static STATE: AtomicU8 = AtomicU8::new(UNINIT);
/// Serialises initialisation; the fork handlers hold it across `fork`.
static INIT_LOCK: Mutex<()> = Mutex::new(());
/// The pthread key whose destructor flushes a thread's cache. Written once under INIT_LOCK.
static EXIT_KEY: AtomicU32 = AtomicU32::new(u32::MAX);

/// What the layers above register at initialisation.
pub(crate) struct Hooks {
    /// Flushes a thread's cache (the pthread-key destructor).
    pub(crate) on_thread_exit: unsafe extern "C" fn(*mut c_void),
    /// The `pthread_atfork` handlers.
    pub(crate) fork_prepare: unsafe extern "C" fn(),
    pub(crate) fork_parent: unsafe extern "C" fn(),
    pub(crate) fork_child: unsafe extern "C" fn(),
}

/// Makes sure the process heap is initialised.
#[inline]
pub(crate) fn ensure_init(hooks: &'static Hooks) {
    if STATE.load(Ordering::Acquire) != READY {
        init_slow(hooks);
    }
}

#[cold]
#[inline(never)]
fn init_slow(hooks: &'static Hooks) {
    let _g = INIT_LOCK.lock();
    if STATE.load(Ordering::Acquire) == READY {
        return;
    }
    if os::system_page_size() > PAGE_SIZE {
        os::write_stderr(b"tricolor: system pages are larger than 8 KiB; unsupported\n");
        os::abort();
    }
    block::init_key();
    // Read the environment now, so its lock is never taken again (nor held across a fork).
    crate::knobs::get();
    if let Some(key) = os::ThreadExitKey::create(hooks.on_thread_exit) {
        EXIT_KEY.store(key.raw(), Ordering::Relaxed);
    }
    // Without fork handlers a child could inherit a lock held by a thread that does not exist
    // in it; refusal is rare (libc out of memory), so we go on, saying so.
    if !os::register_atfork(hooks.fork_prepare, hooks.fork_parent, hooks.fork_child) {
        os::write_stderr(
            b"tricolor: pthread_atfork failed; fork() while threads allocate may deadlock\n",
        );
    }
    STATE.store(READY, Ordering::Release);
}

/// True once the process heap is initialised.
pub(crate) fn initialised() -> bool {
    STATE.load(Ordering::Acquire) == READY
}

/// The initialisation lock, for the fork handlers.
pub(crate) fn init_lock() -> &'static Mutex<()> {
    &INIT_LOCK
}

/// Registers `cache` to be flushed when the calling thread exits. False when no key could be
/// created (the process ran out of pthread keys): the caller then does not cache.
///
/// # Safety
/// `cache` is the calling thread's live thread cache (the exit hook flushes it).
pub(crate) unsafe fn register_thread_exit(cache: *mut c_void) -> bool {
    let raw = EXIT_KEY.load(Ordering::Relaxed);
    if raw == u32::MAX {
        return false;
    }
    // SAFETY: the exit hook's argument is a thread cache: the caller's.
    unsafe { os::ThreadExitKey::from_raw(raw).set(cache) };
    true
}
