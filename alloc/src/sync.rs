//! Synchronisation: every atomic and lock the allocator uses comes through this module, so the
//! `loom` model checker is switched in at one place (`--cfg loom`: then only this module, the
//! OS layer, `block`, `transfer`, `publish` and `write_once` are built, with loom's atomics;
//! see their models).
//!
//! [`Mutex`] is a three-state futex lock (Drepper, "Futexes are tricky"): 0 unlocked, 1 locked,
//! 2 locked with possible sleepers. It never allocates, is `const`-constructible (so it can live
//! in the allocator's statics), spins briefly before sleeping, and exposes raw lock/unlock so
//! that a `fork` handler can hold every lock across the fork.

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{
    AtomicBool, AtomicI32, AtomicI64, AtomicIsize, AtomicPtr, AtomicU8, AtomicU32, AtomicU64,
    AtomicUsize, Ordering,
};
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};

#[cfg(not(loom))]
use crate::os;
use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};

const UNLOCKED: u32 = 0;
const LOCKED: u32 = 1;
const CONTENDED: u32 = 2;

/// A mutual-exclusion lock around `T` that never allocates.
pub(crate) struct Mutex<T> {
    state: AtomicU32,
    data: UnsafeCell<T>,
}

// SAFETY: the lock gives exclusive access to `data` to one thread at a time (rule: `data` is
// touched only through a `MutexGuard`, which exists only while `state != UNLOCKED` and was
// created by the thread that moved `state` away from UNLOCKED).
unsafe impl<T: Send> Sync for Mutex<T> {}
// SAFETY: moving the mutex moves `T`; fine when `T: Send`.
unsafe impl<T: Send> Send for Mutex<T> {}

impl<T> Mutex<T> {
    #[cfg(not(loom))]
    pub(crate) const fn new(value: T) -> Self {
        Self {
            state: AtomicU32::new(UNLOCKED),
            data: UnsafeCell::new(value),
        }
    }

    /// Under loom (whose atomics are not `const`).
    #[cfg(loom)]
    pub(crate) fn new(value: T) -> Self {
        Self {
            state: AtomicU32::new(UNLOCKED),
            data: UnsafeCell::new(value),
        }
    }

    /// Takes the lock; the guard releases it when dropped.
    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        if self
            .state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            self.lock_contended();
        }
        MutexGuard { mutex: self }
    }

    #[cold]
    #[inline(never)]
    fn lock_contended(&self) {
        // Spin a little first: critical sections here are short (a list splice), and a futex
        // round trip costs microseconds.
        // (Under loom, one try: its scheduler explores the interleavings.)
        for _ in 0..if cfg!(loom) { 1 } else { 100 } {
            if self.state.load(Ordering::Relaxed) == UNLOCKED
                && self
                    .state
                    .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
            #[cfg(not(loom))]
            core::hint::spin_loop();
            #[cfg(loom)]
            loom::thread::yield_now();
        }
        // Announce a sleeper by moving to CONTENDED; whoever unlocks from CONTENDED wakes one.
        while self.state.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
            #[cfg(not(loom))]
            os::futex_wait(&self.state, CONTENDED);
            // loom has no futex: yielding lets it schedule the holder.
            #[cfg(loom)]
            loom::thread::yield_now();
        }
    }

    /// Takes the lock if it is free.
    #[inline]
    pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        // The guard must not exist unless the lock was taken: dropping one unlocks (so no
        // `then_some`, which would build and drop a guard on failure).
        let taken = self
            .state
            .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok();
        if taken {
            Some(MutexGuard { mutex: self })
        } else {
            None
        }
    }

    /// Takes the lock without a guard, for a `fork` prepare handler that must hold it across
    /// `fork()`. Pair with [`Mutex::unlock_after_fork`].
    pub(crate) fn lock_for_fork(&self) {
        core::mem::forget(self.lock());
    }

    /// Releases a lock taken by [`Mutex::lock_for_fork`], in the parent or in the child (where
    /// the forking thread, the only one left, is its holder).
    ///
    /// # Safety
    /// The calling thread took the lock with `lock_for_fork` (in the child: the thread that
    /// forked did), and no guard for it exists.
    pub(crate) unsafe fn unlock_after_fork(&self) {
        self.unlock();
    }

    fn unlock(&self) {
        if self.state.swap(UNLOCKED, Ordering::Release) == CONTENDED {
            #[cfg(not(loom))]
            os::futex_wake_one(&self.state);
        }
    }
}

/// Exclusive access to a [`Mutex`]'s value; unlocks on drop.
pub(crate) struct MutexGuard<'a, T> {
    mutex: &'a Mutex<T>,
}

impl<T> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard's existence means this thread holds the lock (see `Sync` impl).
        unsafe { &*self.mutex.data.get() }
    }
}

impl<T> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`; `&mut self` makes this the only borrow through the guard.
        unsafe { &mut *self.mutex.data.get() }
    }
}

impl<T> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.mutex.unlock();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_failed_try_lock_leaves_the_holder_holding() {
        let m = Mutex::new(());
        let held = m.lock();
        assert!(m.try_lock().is_none());
        assert!(
            m.try_lock().is_none(),
            "a failed try_lock released the holder's lock"
        );
        drop(held);
        assert!(m.try_lock().is_some());
    }

    #[test]
    fn mutex_excludes_under_contention() {
        // Four threads on two cores force the spin-then-sleep path; a lost update shows up as
        // a wrong total.
        let m = Arc::new(Mutex::new(0u64));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let m = Arc::clone(&m);
                std::thread::spawn(move || {
                    for _ in 0..50_000 {
                        let mut g = m.lock();
                        let v = *g;
                        std::hint::black_box(&v);
                        *g = v + 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*m.lock(), 200_000);
    }
}
