//! The world's handshakes (`collect` steps 2, 4 and 5): stopping every mutator, and flush
//! waves, between the collector and mutators that stop only at safepoints or by going into
//! native code. The stack-scan claim is `handshake`'s; this module is the rest of what
//! `poll` and `status` carry.
//!
//! Each mutator has three words ([`Signals`]): `poll` (requests to it: `STOP`, `SCAN`, `FLUSH`,
//! and `DETACHED`), `status` (`RUNNING`, `NATIVE`, `PARKED`) and `scan` (`handshake`). The
//! [`Gate`] is the world lock (guarding the mutator registry) with two condition variables:
//! `parked` (a mutator stopped or answered; the collector waits on it) and `resumed` (the world
//! restarted; parked mutators wait on it).
//!
//! # Rules
//! 1. Stopping: the collector, holding the lock, sets `STOP` in every registered mutator's
//!    `poll`, then waits on `parked` until none is `RUNNING`. It holds the lock from then until
//!    it clears every `STOP` and signals `resumed` (restart). A mutator registers only under the
//!    lock and never while a stop is in progress (`World::collecting`).
//! 2. A mutator sees `STOP` at a safepoint, takes the lock, stores `PARKED`, signals `parked`,
//!    and waits on `resumed` until its `STOP` is clear, then stores `RUNNING`, all under the
//!    lock; so the collector, holding the lock from rule 1 to restart, never sees it running.
//! 3. Entering native code: the mutator stores `NATIVE` (after handing over its barrier
//!    buffer, `collect` rule 4), a sequentially consistent fence, then reads `poll`; if a stop
//!    or flush is pending it signals `parked` under the lock (so the signal cannot fall between
//!    the collector's check and its wait). Dekker with rule 1: either the collector sees
//!    `NATIVE` or the mutator sees `STOP` and wakes it.
//! 4. Leaving native code: the mutator stores `RUNNING`, a fence, waits out a stack scan held
//!    by the collector (`handshake` rule 2), then reads `poll`. If `STOP` is set it goes back to
//!    `NATIVE`, signals `parked` under the lock, waits on `resumed` until `STOP` is clear, and
//!    tries again. Dekker with rule 1: a collector that already counted it stopped is seen.
//! 5. A flush wave: the collector sets `FLUSH` in every mutator, then waits on `parked` until
//!    each has cleared it or is not `RUNNING`, then clears what is left. A mutator answers at a
//!    safepoint: it hands over its buffer, then clears `FLUSH` and signals `parked` under the
//!    lock. So every value a running mutator buffered before the wave began has been handed
//!    over when the wave ends (a native one's buffer is empty, rule 3).
//!
//! The collector touches a mutator's private state only between rule 1's wait and the restart;
//! `loom` checks that it never overlaps the owner's use, that nothing deadlocks, and that a
//! wave loses no buffered value (`tests` below: `RUSTFLAGS="--cfg loom" cargo test -p
//! tricolor-gc --lib --release world`).

use crate::handshake::{self, NATIVE, PARKED, RUNNING};
use crate::sync::{AtomicU8, AtomicU32, Condvar, Mutex, MutexGuard, Ordering, fence, lock, wait};

/// `poll`: stop at your next safepoint (rule 1).
pub(crate) const STOP: u32 = 1;
/// `poll`: the mutator was detached; every later use aborts.
pub(crate) const DETACHED: u32 = 2;
/// `poll`: scan your shadow stack (`collect` rule 3).
pub(crate) const SCAN: u32 = 4;
/// `poll`: hand your barrier buffer to the collector (rule 5).
pub(crate) const FLUSH: u32 = 8;

/// A mutator's handshake words.
pub(crate) struct Signals {
    pub(crate) poll: AtomicU32,
    pub(crate) status: AtomicU8,
    /// The stack scan's state this cycle (`handshake`).
    pub(crate) scan: AtomicU8,
}

impl Signals {
    pub(crate) fn new() -> Self {
        Self {
            poll: AtomicU32::new(0),
            status: AtomicU8::new(RUNNING),
            scan: AtomicU8::new(handshake::DONE),
        }
    }
}

/// Visits the [`Signals`] of every mutator registered in `W`.
pub(crate) trait Mutators {
    fn each_signals(&self, f: &mut dyn FnMut(&Signals));
}

/// The world lock and its two condition variables.
pub(crate) struct Gate<W> {
    world: Mutex<W>,
    /// Signalled when a mutator parks, goes native or answers a flush.
    pub(crate) parked: Condvar,
    /// Signalled when the world restarts.
    pub(crate) resumed: Condvar,
}

impl<W: Mutators> Gate<W> {
    pub(crate) fn new(world: W) -> Self {
        Self {
            world: Mutex::new(world),
            parked: Condvar::new(),
            resumed: Condvar::new(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, W> {
        lock(&self.world)
    }

    /// Rule 1: stops every mutator registered in `w`; returns with the lock held.
    pub(crate) fn stop<'a>(&'a self, mut w: MutexGuard<'a, W>) -> MutexGuard<'a, W> {
        w.each_signals(&mut |s| {
            s.poll.fetch_or(STOP, Ordering::SeqCst);
        });
        // Rules 3 and 4's Dekker: the stores above before the loads below (loom finds the
        // stop deadlocking without it: it treats `SeqCst` accesses as acquire/release).
        fence(Ordering::SeqCst);
        loop {
            let mut running = false;
            w.each_signals(&mut |s| running |= s.status.load(Ordering::SeqCst) == RUNNING);
            if !running {
                return w;
            }
            w = wait(&self.parked, w);
        }
    }

    /// Restarts the world stopped by [`Gate::stop`].
    pub(crate) fn start(&self, w: MutexGuard<'_, W>) {
        w.each_signals(&mut |s| {
            s.poll.fetch_and(!STOP, Ordering::SeqCst);
        });
        self.resumed.notify_all();
    }

    /// Rule 2: parks `s` until no stop is pending for it; holds the lock on return.
    pub(crate) fn park<'a>(&'a self, w: MutexGuard<'a, W>, s: &Signals) -> MutexGuard<'a, W> {
        if s.poll.load(Ordering::Acquire) & STOP == 0 {
            return w;
        }
        s.status.store(PARKED, Ordering::SeqCst);
        self.parked.notify_all();
        let w = self.wait_restart(w, s);
        s.status.store(RUNNING, Ordering::SeqCst);
        w
    }

    fn wait_restart<'a>(&'a self, mut w: MutexGuard<'a, W>, s: &Signals) -> MutexGuard<'a, W> {
        while s.poll.load(Ordering::Acquire) & STOP != 0 {
            w = wait(&self.resumed, w);
        }
        w
    }

    /// Rule 3: `s` enters native code (its barrier buffer already handed over).
    pub(crate) fn enter_native(&self, s: &Signals) {
        handshake::enter_native(&s.status);
        if s.poll.load(Ordering::SeqCst) & (STOP | FLUSH) != 0 {
            let _w = self.lock();
            self.parked.notify_all();
        }
    }

    /// Rule 4: `s` leaves native code once no stop is pending and no scan is held. Returns
    /// the `poll` word it saw last (the caller reports `DETACHED`, with which it returns at
    /// once).
    pub(crate) fn leave_native(&self, s: &Signals) -> u32 {
        loop {
            handshake::leave_native(&s.status, &s.scan);
            let p = s.poll.load(Ordering::SeqCst);
            if p & STOP == 0 || p & DETACHED != 0 {
                return p;
            }
            s.status.store(NATIVE, Ordering::SeqCst);
            let w = self.lock();
            self.parked.notify_all();
            drop(self.wait_restart(w, s));
        }
    }

    /// Rule 5, the collector's side: one flush wave.
    pub(crate) fn flush_wave(&self) {
        let mut w = self.lock();
        w.each_signals(&mut |s| {
            s.poll.fetch_or(FLUSH, Ordering::SeqCst);
        });
        fence(Ordering::SeqCst);
        loop {
            let mut waiting = false;
            w.each_signals(&mut |s| {
                waiting |= s.poll.load(Ordering::SeqCst) & FLUSH != 0
                    && s.status.load(Ordering::SeqCst) == RUNNING;
            });
            if !waiting {
                break;
            }
            w = wait(&self.parked, w);
        }
        w.each_signals(&mut |s| {
            s.poll.fetch_and(!FLUSH, Ordering::SeqCst);
        });
    }

    /// Rule 5, the mutator's side: `s` has handed over its buffer.
    pub(crate) fn answer_flush(&self, s: &Signals) {
        let _w = self.lock();
        s.poll.fetch_and(!FLUSH, Ordering::SeqCst);
        self.parked.notify_all();
    }
}

#[cfg(all(test, loom))]
mod tests {
    use super::*;
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;

    /// One mutator: its words, its private state, its barrier buffer, and the collector's
    /// queue.
    struct One {
        sig: Signals,
        local: UnsafeCell<u32>,
        wbuf: UnsafeCell<Vec<u32>>,
        queue: Mutex<Vec<u32>>,
        /// Values buffered so far (counted after the push).
        buffered: AtomicU32,
    }

    /// The model's registry: the one mutator.
    struct World(Arc<One>);

    impl Mutators for World {
        fn each_signals(&self, f: &mut dyn FnMut(&Signals)) {
            f(&self.0.sig)
        }
    }

    fn setup() -> (Arc<One>, Arc<Gate<World>>) {
        let one = Arc::new(One {
            sig: Signals::new(),
            local: UnsafeCell::new(0),
            wbuf: UnsafeCell::new(Vec::new()),
            queue: Mutex::new(Vec::new()),
            buffered: AtomicU32::new(0),
        });
        let gate = Arc::new(Gate::new(World(one.clone())));
        (one, gate)
    }

    impl One {
        /// The owner's use of its private state (loom reports any overlap with the collector).
        fn run(&self) {
            self.local.with_mut(|p| {
                // SAFETY (model): rule 2 of `mutator`, what the model checks.
                unsafe { *p += 1 }
            });
        }

        /// A barrier: buffer value `v`.
        fn barrier(&self, v: u32) {
            // SAFETY (model): the owner, running.
            self.wbuf.with_mut(|b| unsafe { (*b).push(v) });
            self.buffered.fetch_add(1, Ordering::SeqCst);
        }

        /// Hands the buffer to the queue (the owner running, or the collector with it
        /// stopped).
        fn flush(&self) {
            // SAFETY (model): as the caller says.
            let vals: Vec<u32> = self.wbuf.with_mut(|b| unsafe { std::mem::take(&mut *b) });
            lock(&self.queue).extend(vals);
        }

        /// `MutatorState::poll_slow`.
        fn safepoint(&self, gate: &Gate<World>) {
            let p = self.sig.poll.load(Ordering::Acquire);
            if p & STOP != 0 {
                drop(gate.park(gate.lock(), &self.sig));
            }
            if p & FLUSH != 0 {
                self.flush();
                gate.answer_flush(&self.sig);
            }
        }

        /// `MutatorState::enter_native`.
        fn enter_native(&self, gate: &Gate<World>) {
            self.flush();
            gate.enter_native(&self.sig);
        }
    }

    /// A mutator runs, takes a safepoint, goes in and out of native code and runs again,
    /// then ends in native code (as a detached thread counts); the collector stops the world
    /// once and reads the mutator's state. Loom explores every interleaving, among them the
    /// stop arriving while the mutator is in native code and leaving it (rule 4).
    #[test]
    fn a_stopped_mutator_never_runs_until_the_restart() {
        loom::model(|| {
            let (one, gate) = setup();
            let (m, g) = (one.clone(), gate.clone());
            let mutator = loom::thread::spawn(move || {
                m.run();
                m.safepoint(&g);
                m.enter_native(&g);
                let p = g.leave_native(&m.sig);
                assert_eq!(p & STOP, 0, "left native code with a stop pending");
                m.run();
                m.safepoint(&g);
                m.run();
                m.enter_native(&g);
            });
            let w = gate.stop(gate.lock());
            // SAFETY (model): the world is stopped: what loom checks.
            let seen = one.local.with(|p| unsafe { *p });
            assert!(seen <= 3);
            gate.start(w);
            mutator.join().unwrap();
        });
    }

    /// A flush wave while the mutator buffers values around a native section: when the wave
    /// ends, every value buffered before it began is in the queue (rule 5: termination's
    /// premise), and a stop after it finds the rest in the buffer, none lost, none twice.
    #[test]
    fn a_flush_wave_loses_no_buffered_value() {
        loom::model(|| {
            let (one, gate) = setup();
            let (m, g) = (one.clone(), gate.clone());
            let mutator = loom::thread::spawn(move || {
                m.barrier(1);
                m.safepoint(&g);
                m.enter_native(&g);
                g.leave_native(&m.sig);
                m.barrier(2);
                m.safepoint(&g);
                m.enter_native(&g);
            });
            let before = one.buffered.load(Ordering::SeqCst);
            gate.flush_wave();
            {
                let q = lock(&one.queue);
                for v in 1..=before {
                    assert!(
                        q.contains(&v),
                        "value {v} buffered before the wave not delivered"
                    );
                }
            }
            let w = gate.stop(gate.lock());
            one.flush();
            let n = one.buffered.load(Ordering::SeqCst);
            let mut q = lock(&one.queue).clone();
            q.sort_unstable();
            assert_eq!(q, (1..=n).collect::<Vec<_>>(), "lost or doubled values");
            gate.start(w);
            mutator.join().unwrap();
        });
    }
}
