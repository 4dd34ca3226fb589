//! Cycle control: requests for collections, and the counts of cycles started and completed
//! that the collector thread, the mark workers and waiting mutators synchronise on (Go's
//! `work.cycles` with `gcStart`'s trigger test and `gcWaitOnMark`). A leaf: it knows nothing
//! of what a cycle does (`collect` runs them; `mark::worker` follows them).
//!
//! # States
//! `requested`, `started` and `completed` only grow, and `completed <= started <= requested`
//! (one cycle runs at a time, and only when asked for); `requested` may run ahead of `started`
//! by any amount, and a cycle runs while `completed < requested`. All three change under `Cycles::state`, and every change
//! is announced on `Cycles::changed`.

use std::sync::{Condvar, Mutex, MutexGuard};

/// Guarded by `Cycles::state`: cycle requests and completions.
#[derive(Default)]
pub(crate) struct Counts {
    /// Cycles asked for, counted from the first: a cycle runs while `completed < requested`.
    pub(crate) requested: u64,
    /// Cycles started.
    pub(crate) started: u64,
    /// Cycles completed.
    pub(crate) completed: u64,
    /// The collector thread has been started.
    pub(crate) thread: bool,
}

/// A heap's cycle control (`Heap::cycles`).
#[derive(Default)]
pub(crate) struct Cycles {
    state: Mutex<Counts>,
    /// Signalled when a cycle is requested, started or completed.
    changed: Condvar,
}

/// What a request asks of its caller: start the collector thread (the first request of the
/// heap's life). The claim is made under the lock, so exactly one caller starts it; the
/// caller spawns it after the lock is released.
#[must_use]
pub(crate) struct StartThread(pub(crate) bool);

impl Cycles {
    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, g: MutexGuard<'a, Counts>) -> MutexGuard<'a, Counts> {
        self.changed.wait(g).unwrap_or_else(|e| e.into_inner())
    }

    /// Marks the thread started if it was not; true if the caller must start it.
    fn claim_thread(c: &mut Counts) -> StartThread {
        StartThread(!std::mem::replace(&mut c.thread, true))
    }

    /// Asks for a cycle if none is running or asked for.
    pub(crate) fn request(&self) -> StartThread {
        let mut c = self.lock();
        if c.requested > c.completed {
            return StartThread(false);
        }
        c.requested = c.completed + 1;
        let start = Self::claim_thread(&mut c);
        self.changed.notify_all();
        start
    }

    /// Asks for a cycle that starts after this call; returns its number (wait for it with
    /// [`Cycles::wait_completed`]).
    pub(crate) fn request_full(&self) -> (u64, StartThread) {
        let mut c = self.lock();
        let target = c.started + 1;
        c.requested = c.requested.max(target);
        let start = Self::claim_thread(&mut c);
        self.changed.notify_all();
        (target, start)
    }

    /// The number of the cycle running or asked for, if any.
    pub(crate) fn pending(&self) -> Option<u64> {
        let c = self.lock();
        (c.requested > c.completed).then_some(c.completed + 1)
    }

    /// Waits until cycle `n` has completed. The caller must not hold up a cycle meanwhile (it
    /// is in native code, or not a mutator).
    pub(crate) fn wait_completed(&self, n: u64) {
        let mut c = self.lock();
        while c.completed < n {
            c = self.wait(c);
        }
    }

    /// The collector thread: waits for a request and counts the cycle started.
    pub(crate) fn start_next(&self) {
        let mut c = self.lock();
        while c.requested <= c.completed {
            c = self.wait(c);
        }
        c.started += 1;
        self.changed.notify_all();
    }

    /// The collector thread: counts the cycle completed.
    pub(crate) fn complete(&self) {
        let mut c = self.lock();
        c.completed += 1;
        self.changed.notify_all();
    }

    /// A mark worker: waits until a cycle later than `seen` has started; returns its number.
    pub(crate) fn wait_started_after(&self, seen: u64) -> u64 {
        let mut c = self.lock();
        while c.started == seen {
            c = self.wait(c);
        }
        c.started
    }

    /// Cycles completed.
    pub(crate) fn completed(&self) -> u64 {
        self.lock().completed
    }
}
