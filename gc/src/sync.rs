//! Synchronisation: the atomics, locks and condition variables of the collector's protocols
//! come through this module, so `--cfg loom` switches the model checker in at one place (as
//! `tricolor_alloc::sync` does). Under loom only this module and the modelled protocols
//! (`handshake`, `world`, `sweepgen`) are built; their models are in each module's
//! `tests`: `RUSTFLAGS="--cfg loom" cargo test -p tricolor-gc --lib --release`.
//!
//! Locks are taken poison-tolerant ([`lock`], [`wait`]): a panic on another thread (a test's
//! failed assertion, a root callback) must not turn every later collection into a second
//! panic; the data they guard is kept consistent at every unlock point.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU8, AtomicU32, Ordering, fence};
#[cfg(not(loom))]
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU8, AtomicU32, Ordering, fence};
#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};

/// Takes `m`, ignoring poisoning.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits on `cv`, ignoring poisoning.
pub(crate) fn wait<'a, T>(cv: &Condvar, g: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    cv.wait(g).unwrap_or_else(|e| e.into_inner())
}

/// A short back-off in a spin loop (a scheduling point under loom).
pub(crate) fn pause() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::thread::yield_now();
}
