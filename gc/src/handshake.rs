//! The stack-scan handshake (`collect`, rule 3): who may read a mutator's shadow stack while
//! the world runs.
//!
//! A mutator's stack is scanned once per cycle, by its owner at a safepoint or by the
//! collector while the owner is in native code. The owner's `status` (`RUNNING`, `NATIVE`,
//! `PARKED`) and the scan's state (`DONE`, `PENDING`, `SCANNING`) are two atomics; the rules:
//! 1. The collector scans only after moving the state `PENDING → SCANNING` and then seeing
//!    the owner `NATIVE`; if it sees the owner running it puts `PENDING` back.
//! 2. The owner, leaving native code, stores `RUNNING` and then waits while the state is
//!    `SCANNING`. Both sides write, then read the other's word, with a sequentially
//!    consistent fence in between (Dekker): either the collector sees `RUNNING` and backs
//!    off, or the owner sees `SCANNING` and waits. The fences are explicit, not left to
//!    `SeqCst` accesses alone: loom found the protocol racy without them (it models `SeqCst`
//!    accesses as acquire/release, which is what weaker hardware mappings give too).
//! 3. The owner scans its own stack only after moving the state `PENDING → SCANNING` itself;
//!    it spins while the collector holds it (the collector is backing off: rule 1).
//! 4. A scan ends with `DONE`, which nothing but the next cycle's start changes.
//!
//! So the owner never changes its stack while the collector reads it, and each stack is
//! scanned at most once per cycle. `loom` checks both (`tests` below: `RUSTFLAGS="--cfg
//! loom" cargo test -p tricolor-gc --lib --release handshake`).

use crate::sync::{AtomicU8, Ordering, fence, pause};

/// Mutator status: running Rust or C code that may touch the heap.
pub(crate) const RUNNING: u8 = 0;
/// Mutator status: in native code (`enter_native`): counts as stopped.
pub(crate) const NATIVE: u8 = 1;
/// Mutator status: parked at a safepoint while the world is stopped.
pub(crate) const PARKED: u8 = 2;

/// Scan state: scanned this cycle (or no cycle is marking).
pub(crate) const DONE: u8 = 0;
/// Scan state: requested, not started.
pub(crate) const PENDING: u8 = 1;
/// Scan state: the owner or the collector is scanning.
pub(crate) const SCANNING: u8 = 2;

/// The collector's claim on the scan of a mutator it found in native code (rule 1). True:
/// the caller may read the mutator's stack, and must then call [`finish`].
pub(crate) fn collector_claim(status: &AtomicU8, scan: &AtomicU8) -> bool {
    if status.load(Ordering::SeqCst) != NATIVE
        || scan
            .compare_exchange(PENDING, SCANNING, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
    {
        return false;
    }
    fence(Ordering::SeqCst);
    if status.load(Ordering::SeqCst) != NATIVE {
        scan.store(PENDING, Ordering::SeqCst);
        return false;
    }
    true
}

/// The owner's claim on its own scan at a safepoint (rule 3). True: the caller scans its
/// stack and then calls [`finish`]; false: it was done already.
pub(crate) fn owner_claim(scan: &AtomicU8) -> bool {
    loop {
        match scan.compare_exchange(PENDING, SCANNING, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => return true,
            Err(DONE) => return false,
            Err(_) => pause(),
        }
    }
}

/// Ends a claimed scan (rule 4).
pub(crate) fn finish(scan: &AtomicU8) {
    scan.store(DONE, Ordering::SeqCst);
}

/// The owner enters native code; the fence orders the store before the caller's next look at
/// its `poll` word (the stop handshake's Dekker, `world` rule 3).
pub(crate) fn enter_native(status: &AtomicU8) {
    status.store(NATIVE, Ordering::SeqCst);
    fence(Ordering::SeqCst);
}

/// The owner leaves native code (rule 2): on return no collector is reading its stack, and
/// none will start until it enters native code again.
pub(crate) fn leave_native(status: &AtomicU8, scan: &AtomicU8) {
    status.store(RUNNING, Ordering::SeqCst);
    fence(Ordering::SeqCst);
    while scan.load(Ordering::SeqCst) == SCANNING {
        pause();
    }
}

#[cfg(all(test, loom))]
mod tests {
    use super::*;
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicUsize;

    struct Mutator {
        status: AtomicU8,
        scan: AtomicU8,
        /// The shadow stack: written by the owner, read by whoever scans.
        stack: UnsafeCell<usize>,
        scans: AtomicUsize,
    }

    /// A mutator in native code leaves it and changes its stack, then reaches a safepoint,
    /// while the collector tries to scan it: loom reports any read of the stack concurrent
    /// with the owner's write, and the scan must happen exactly once.
    #[test]
    fn the_stack_is_never_read_while_its_owner_runs_and_is_scanned_once() {
        loom::model(|| {
            let m = Arc::new(Mutator {
                status: AtomicU8::new(NATIVE),
                scan: AtomicU8::new(PENDING),
                stack: UnsafeCell::new(1),
                scans: AtomicUsize::new(0),
            });
            let c = m.clone();
            let collector = loom::thread::spawn(move || {
                if collector_claim(&c.status, &c.scan) {
                    // SAFETY (model): the claim excludes the owner's writes.
                    c.stack.with(|p| unsafe { assert!(*p == 1 || *p == 2) });
                    c.scans.fetch_add(1, Ordering::SeqCst);
                    finish(&c.scan);
                }
            });
            leave_native(&m.status, &m.scan);
            // SAFETY (model): the owner runs; rule 2 says no scan is in progress.
            m.stack.with_mut(|p| unsafe { *p = 2 });
            if owner_claim(&m.scan) {
                m.stack.with(|p| unsafe { assert_eq!(*p, 2) });
                m.scans.fetch_add(1, Ordering::SeqCst);
                finish(&m.scan);
            }
            collector.join().unwrap();
            assert_eq!(m.scans.load(Ordering::SeqCst), 1, "scanned exactly once");
            assert_eq!(m.scan.load(Ordering::SeqCst), DONE);
        });
    }

    /// The owner goes in and out of native code twice while the collector keeps trying.
    #[test]
    fn repeated_native_sections_never_overlap_a_scan() {
        loom::model(|| {
            let m = Arc::new(Mutator {
                status: AtomicU8::new(RUNNING),
                scan: AtomicU8::new(PENDING),
                stack: UnsafeCell::new(0),
                scans: AtomicUsize::new(0),
            });
            let c = m.clone();
            let collector = loom::thread::spawn(move || {
                for _ in 0..2 {
                    if collector_claim(&c.status, &c.scan) {
                        c.stack.with(|_| ());
                        c.scans.fetch_add(1, Ordering::SeqCst);
                        finish(&c.scan);
                    }
                }
            });
            for v in 1..=2 {
                enter_native(&m.status);
                leave_native(&m.status, &m.scan);
                // SAFETY (model): as above.
                m.stack.with_mut(|p| unsafe { *p = v });
            }
            if owner_claim(&m.scan) {
                m.scans.fetch_add(1, Ordering::SeqCst);
                finish(&m.scan);
            }
            collector.join().unwrap();
            assert_eq!(m.scans.load(Ordering::SeqCst), 1, "scanned exactly once");
        });
    }
}
