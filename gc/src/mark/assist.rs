//! Mark assists (`collect` rule 10): a mutator that allocates while marking pays for it with
//! marking work, in proportion (Go's assist ratio), at cache refills only; one whose
//! allocation reaches the goal marks until no work is left before it waits.

use super::Marker;
use crate::mutator::{MutatorState, STOP};
use std::sync::atomic::Ordering;

impl MutatorState {
    /// Go's assist ratio: allocating `bytes` while marking costs `bytes × (work left / runway
    /// left)` bytes of marking, the work left being what the last cycle marked less what this
    /// one has marked so far, and the runway what is left to the goal. The debt is paid in
    /// assists of at least 64 KiB of marking (Go's `gcOverAssistWork`), so a refill pays
    /// rarely and a little, and allocation reaches the goal only when marking cannot keep up
    /// even so. Called on refills only: the allocation fast path never pays.
    ///
    /// Go first pays the debt from the background workers' credit (`bgScanCredit`: what they
    /// marked beyond what was asked of the assists). Measured with that credit (2 CPUs, three
    /// runs each, `cargo run --release -p tricolor-tools -- bench --gc`): binary-trees and
    /// GCBench are unchanged within noise, and the message buffer with pointers' worst push
    /// rises from 3.6-3.9 ms to 5.1-9.1 ms (Go: about 8), because mutators that skip small
    /// proportional payments reach the goal and wait. The ratio already counts background
    /// progress (`left` shrinks as the collector marks), so the debt is paid by marking.
    pub(crate) fn pay_for(&self, bytes: usize) {
        const MIN_ASSIST: usize = 64 * 1024;
        const MAX_ASSIST: usize = 1 << 20;
        let heap = self.heap;
        let left = heap
            .mark
            .scan_expected
            .load(Ordering::Relaxed)
            .saturating_sub(heap.mark.mark_progress.load(Ordering::Relaxed));
        if left == 0 {
            return;
        }
        let runway = heap
            .pacing
            .goal
            .load(Ordering::Relaxed)
            .saturating_sub(heap.pacing.live.load(Ordering::Relaxed))
            .max(1);
        let owed = (bytes as u128 * left as u128 / runway as u128).min(usize::MAX as u128) as usize;
        let debt = {
            // SAFETY: rule 2: the owner, running; the reference ends here.
            let local = unsafe { self.local() };
            local.assist_debt = local.assist_debt.saturating_add(owed);
            local.assist_debt
        };
        if debt < MIN_ASSIST {
            return;
        }
        // One payment is bounded, so one allocation never marks for long: near the goal the
        // ratio grows without bound, and the rest of the debt waits for the next refill.
        let paid = self.assist(debt.min(MAX_ASSIST));
        // SAFETY: as above.
        let local = unsafe { self.local() };
        // Marking that ran out of work for us forgives the rest: there is nothing to help with.
        local.assist_debt = if paid == 0 {
            0
        } else {
            local.assist_debt.saturating_sub(paid)
        };
    }

    /// Marks until it has marked `budget` bytes, marking has no work left for it, the world is
    /// to stop, or marking ends (`collect` rule 10); returns the bytes it marked. Not inside
    /// any lock of ours.
    #[cold]
    pub(crate) fn assist(&self, budget: usize) -> usize {
        let heap = self.heap;
        let t = std::time::Instant::now();
        heap.mark.helpers.fetch_add(1, Ordering::SeqCst);
        let mut m = Marker::shared(heap);
        let mut idle = 0;
        while heap.mark.marking.load(Ordering::Relaxed)
            && self.sig.poll.load(Ordering::Relaxed) & STOP == 0
            && m.marked_bytes < budget
        {
            if m.idle() && !m.take_queue(heap) && !m.steal() {
                idle += 1;
                if idle > 3 {
                    break;
                }
                std::thread::yield_now();
                continue;
            }
            idle = 0;
            m.drain_budget(4096);
        }
        m.spill_all();
        let marked = m.take_marked();
        heap.mark.helper_marked.fetch_add(marked, Ordering::Relaxed);
        heap.mark.helpers.fetch_sub(1, Ordering::SeqCst);
        {
            let _q = heap.queue_lock();
            heap.mark.queue_cv.notify_one();
        }
        let ns = t.elapsed().as_nanos() as u64;
        heap.times.assist_ns.fetch_add(ns, Ordering::Relaxed);
        heap.times.gc_cpu_ns.fetch_add(ns, Ordering::Relaxed);
        marked
    }
}
