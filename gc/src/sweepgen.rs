//! The sweep claim (`sweep`; Go's `mspan.sweepgen`): who may sweep a span, without the
//! central lock.
//!
//! The heap's generation `h` (`Central::sweepgen`) grows by 2 at each mark termination's
//! flip; a span's word, relative to it:
//! * `h - 2`: unswept this cycle (every span right after the flip);
//! * `h - 1`: being swept by whoever claimed it;
//! * `h`: swept (and, if a cache holds it, cached: only swept spans are cached).
//!
//! # Rules
//! 1. A span is swept only by the thread whose compare-and-swap moved its word `h - 2 → h - 1`
//!    (acquire); that thread is the holder of its alloc bits and `free_index` until it stores
//!    `h` (release) when done. So each span is swept at most once per cycle, by one sweeper,
//!    and whoever sees `h` (acquire) sees the swept bits.
//! 2. Nothing else touches an unswept or claimed span's holder fields: lazy sweeping under the
//!    central lock claims like the background sweeper, and a cache takes only swept spans.
//! 3. `h` changes only with the world stopped and nothing sweeping (the flip); a sweeper reads
//!    it under the central lock, before the claims it makes with it.
//! 4. A claimed span's record is never freed or reused under its sweeper: records are freed
//!    only by the span's own sweeper and reused only at sweep termination or the flip, which
//!    the collector thread (the background sweeper) runs itself.
//!
//! `loom` checks rules 1 and 2 (`tests`: `RUSTFLAGS="--cfg loom" cargo test -p tricolor-gc
//! --lib --release sweepgen`).

use crate::sync::{AtomicU32, Ordering};

/// A span's sweep generation word.
pub(crate) struct SweepGen(AtomicU32);

impl SweepGen {
    /// A word for a span born swept in generation `h`.
    pub(crate) fn new(h: u32) -> Self {
        Self(AtomicU32::new(h))
    }

    /// Rule 1: claims the sweep of an unswept span; true if the caller now holds it.
    pub(crate) fn claim(&self, h: u32) -> bool {
        self.0
            .compare_exchange(
                h.wrapping_sub(2),
                h.wrapping_sub(1),
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Rule 1: the claimed sweep is done.
    pub(crate) fn finish(&self, h: u32) {
        self.0.store(h, Ordering::Release);
    }

    /// Swept in generation `h` (its holder fields are then the holder's to read: rule 1).
    pub(crate) fn is_swept(&self, h: u32) -> bool {
        self.0.load(Ordering::Acquire) == h
    }

    /// Sets the word of a record no one else can see (a new span; a test).
    pub(crate) fn reset(&self, h: u32) {
        self.0.store(h, Ordering::Relaxed);
    }
}

#[cfg(all(test, loom))]
mod tests {
    use super::*;
    use crate::sync::{Mutex, lock};
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;

    struct Span {
        sweepgen: SweepGen,
        /// The holder fields: alloc bits after sweeping.
        bits: UnsafeCell<u64>,
        sweeps: AtomicU32,
    }

    const MARKS: u64 = 0b1010;

    impl Span {
        fn sweep_if_unswept(&self, h: u32) -> bool {
            if !self.sweepgen.claim(h) {
                return false;
            }
            // SAFETY (model): rule 1, the claim makes us the holder.
            self.bits.with_mut(|b| unsafe { *b = MARKS });
            self.sweeps.fetch_add(1, Ordering::Relaxed);
            self.sweepgen.finish(h);
            true
        }
    }

    /// The background sweeper (no lock) and a refill (under the central lock: lazy sweeping,
    /// then caching only a swept span) race for the same unswept span: it is swept once, and
    /// the refill reads its bits only after the sweep, whoever did it.
    #[test]
    fn a_span_is_swept_once_and_cached_only_swept() {
        loom::model(|| {
            let h = 4;
            let span = Arc::new(Span {
                sweepgen: SweepGen::new(h - 2),
                bits: UnsafeCell::new(0b1111),
                sweeps: AtomicU32::new(0),
            });
            let central = Arc::new(Mutex::new(()));
            let s = span.clone();
            let background = loom::thread::spawn(move || {
                s.sweep_if_unswept(h);
            });
            let refill = {
                let (s, c) = (span.clone(), central.clone());
                loom::thread::spawn(move || {
                    let _c = lock(&c);
                    s.sweep_if_unswept(h);
                    if s.sweepgen.is_swept(h) {
                        // SAFETY (model): rule 2: a swept span's fields are the holder's.
                        s.bits.with(|b| assert_eq!(unsafe { *b }, MARKS));
                    }
                })
            };
            background.join().unwrap();
            refill.join().unwrap();
            assert_eq!(span.sweeps.load(Ordering::Relaxed), 1, "swept exactly once");
            assert!(span.sweepgen.is_swept(h));
        });
    }
}
