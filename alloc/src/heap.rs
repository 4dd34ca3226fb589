//! The process heap: the one page heap and the central lists every front cache draws from,
//! and their one-time initialisation.
//!
//! Initialisation happens on the first slow-path call from any thread; it allocates nothing
//! through the allocator (the canary key comes from `getrandom`, the thread-exit key from
//! `pthread_key_create`, which does not allocate in glibc).

use crate::block;
use crate::central::Central;
use crate::os;
use crate::page_heap::PageHeap;
use crate::size_class::PAGE_SIZE;
use crate::sync::{AtomicU8, AtomicU32, Mutex, Ordering};
use core::ffi::c_void;

/// The page heap and central lists of the process.
pub(crate) struct Heap {
    pub(crate) pages: PageHeap,
    pub(crate) central: Central,
}

/// The process heap.
pub(crate) static HEAP: Heap = Heap {
    pages: PageHeap::new(),
    central: Central::new(),
};

const UNINIT: u8 = 0;
const READY: u8 = 2;

/// Init state. Acquire/Release: READY publishes the key and the canary key.
static STATE: AtomicU8 = AtomicU8::new(UNINIT);
static INIT_LOCK: Mutex<()> = Mutex::new(());
/// The pthread key whose destructor flushes a thread's cache. Written once under INIT_LOCK.
static EXIT_KEY: AtomicU32 = AtomicU32::new(u32::MAX);

/// Makes sure the process heap is initialised; `on_thread_exit` is the cache layer's flush.
#[inline]
pub(crate) fn ensure_init(on_thread_exit: unsafe extern "C" fn(*mut c_void)) {
    if STATE.load(Ordering::Acquire) != READY {
        init_slow(on_thread_exit);
    }
}

#[cold]
#[inline(never)]
fn init_slow(on_thread_exit: unsafe extern "C" fn(*mut c_void)) {
    let _g = INIT_LOCK.lock();
    if STATE.load(Ordering::Acquire) == READY {
        return;
    }
    assert!(
        os::system_page_size() <= PAGE_SIZE,
        "system pages larger than 8 KiB"
    );
    block::init_key();
    if let Some(key) = os::ThreadExitKey::create(on_thread_exit) {
        EXIT_KEY.store(key.raw(), Ordering::Relaxed);
    }
    STATE.store(READY, Ordering::Release);
}

/// Registers `cache` to be flushed when the calling thread exits. False when no key could be
/// created (the process ran out of pthread keys): the caller then does not cache.
pub(crate) fn register_thread_exit(cache: *mut c_void) -> bool {
    let raw = EXIT_KEY.load(Ordering::Relaxed);
    if raw == u32::MAX {
        return false;
    }
    os::ThreadExitKey::from_raw(raw).set(cache);
    true
}
