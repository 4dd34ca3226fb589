//! Fork safety (`pthread_atfork` handlers, registered by `init`).
//!
//! `fork()` copies only the calling thread. A lock held by another thread at that instant would
//! stay locked in the child forever, so `prepare` takes every allocator lock, in the global
//! lock order, before the fork:
//! the profiler's bucket index and slot set-up → `init` → thread-cache registry → per-CPU resize → the per-CPU counters' arming → transfer caches → `Central[0..N]` →
//! scavenging pass → page heap → metadata.
//! `parent` releases them in reverse. `child` releases them too (the forking thread, the only
//! one in the child, holds them all), then abandons the caches of the threads that did not
//! survive (`thread_cache::abandon_orphans` says why their blocks cannot be taken back).

use crate::heap::{self, HEAP};
use crate::percpu;
use crate::profile::{sampler, writer};
use crate::scavenger;
use crate::thread_cache::{self, CACHES};

/// Before `fork`: take every lock.
pub(crate) unsafe extern "C" fn prepare() {
    sampler::lock_for_fork();
    heap::init_lock().lock_for_fork();
    CACHES.lock_for_fork();
    percpu::RESIZE.lock_for_fork();
    percpu::ARM.lock_for_fork();
    for t in &HEAP.transfer {
        t.lock_for_fork();
    }
    HEAP.central.lock_all_for_fork();
    scavenger::PASS.lock_for_fork();
    HEAP.pages.lock_for_fork();
}

/// Releases what `prepare` took.
///
/// # Safety
/// Called by the thread that ran `prepare`, after the fork (parent or child side).
unsafe fn release_all() {
    // SAFETY: `prepare` took these on this thread (caller's contract), in this order.
    unsafe {
        HEAP.pages.unlock_after_fork();
        scavenger::PASS.unlock_after_fork();
        HEAP.central.unlock_all_after_fork();
        for t in HEAP.transfer.iter().rev() {
            t.unlock_after_fork();
        }
        percpu::ARM.unlock_after_fork();
        percpu::RESIZE.unlock_after_fork();
        CACHES.unlock_after_fork();
        heap::init_lock().unlock_after_fork();
        sampler::unlock_after_fork();
    }
}

/// After `fork`, in the parent.
pub(crate) unsafe extern "C" fn parent() {
    // SAFETY: pthread_atfork runs this on the thread that ran `prepare`.
    unsafe { release_all() };
}

/// After `fork`, in the child.
pub(crate) unsafe extern "C" fn child() {
    // SAFETY: the child's only thread is the one that ran `prepare` in the parent.
    unsafe { release_all() };
    scavenger::after_fork_child();
    writer::after_fork_child();
    thread_cache::abandon_orphans();
}
