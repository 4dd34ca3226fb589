//! What the collector's stress tests share: a verified heap, the length knob, and a thread
//! that forces collections until told to stop.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use tricolor_gc::{Config, Heap, Mutator};

/// A new heap in verification mode (freed objects poisoned, marking checked).
pub fn verified_heap() -> &'static Heap {
    Heap::new(Config {
        verify: true,
        ..Config::default()
    })
}

/// A stress test's rounds: `default`, or `TRICOLOR_STRESS_ROUNDS / per` (the README's way to
/// run every stress test about ten times longer).
pub fn stress_rounds(default: usize, per: usize) -> usize {
    std::env::var("TRICOLOR_STRESS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(default, |r: usize| r / per)
}

/// A thread with its own mutator that runs full collections back to back, from when
/// `start` releases it until [`Collections::stop`].
pub struct Collections {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<u64>,
}

impl Collections {
    /// Starts the thread; it waits on `start` (shared with the test's workers) first.
    pub fn start(h: &'static Heap, start: Arc<Barrier>) -> Collections {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let m = Mutator::attach(h);
            start.wait();
            let mut n = 0;
            while !s.load(Ordering::Relaxed) {
                m.collect();
                n += 1;
            }
            n
        });
        Collections { stop, thread }
    }

    /// Stops the thread; the collections it ran.
    pub fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}
