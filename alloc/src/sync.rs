//! Synchronisation: every atomic and lock the allocator uses comes through this module, so a
//! model checker (`loom`, arriving with the lock-free per-CPU caches) can be switched in at one
//! place.
//!
//! [`Mutex`] is a three-state futex lock (Drepper, "Futexes are tricky"): 0 unlocked, 1 locked,
//! 2 locked with possible sleepers. It never allocates, is `const`-constructible (so it can live
//! in the allocator's statics), spins briefly before sleeping, and exposes raw lock/unlock so
//! that a `fork` handler can hold every lock across the fork.

pub(crate) use core::sync::atomic::{
    AtomicIsize, AtomicPtr, AtomicU8, AtomicU32, AtomicUsize, Ordering,
};

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
    pub(crate) const fn new(value: T) -> Self {
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
        for _ in 0..100 {
            if self.state.load(Ordering::Relaxed) == UNLOCKED
                && self
                    .state
                    .compare_exchange(UNLOCKED, LOCKED, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
            core::hint::spin_loop();
        }
        // Announce a sleeper by moving to CONTENDED; whoever unlocks from CONTENDED wakes one.
        while self.state.swap(CONTENDED, Ordering::Acquire) != UNLOCKED {
            os::futex_wait(&self.state, CONTENDED);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

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
