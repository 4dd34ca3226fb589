//! Dedicated mark workers (`collect` rule 11): `Config::extra_mark_workers` threads
//! (`tricolor-mark`) that mark beside the collector thread in every cycle, taking work as
//! assists do, and sleep between cycles.

use super::Marker;
use crate::heap::Heap;
use crate::stats::thread_cpu_ns;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// A dedicated mark worker (rule 11): marks beside the collector thread in every cycle.
pub(crate) fn mark_worker(heap: &'static Heap) {
    let mut seen = 0;
    loop {
        seen = heap.cycles.wait_started_after(seen);
        // Marking starts after sweep termination and the first pause.
        while !heap.mark.marking.load(Ordering::Acquire) {
            if heap.cycles.completed() >= seen {
                break;
            }
            std::thread::sleep(Duration::from_micros(20));
        }
        let mut m = Marker::shared(heap);
        let mut idle = 0u32;
        let cpu0 = thread_cpu_ns();
        while heap.mark.marking.load(Ordering::Acquire) {
            // Counted before taking work, so the collector never sees the work gone and the
            // count zero while this worker still holds it (rule 11).
            heap.mark.helpers.fetch_add(1, Ordering::SeqCst);
            let got = m.take_queue(heap) | m.steal();
            m.drain();
            heap.mark
                .helper_marked
                .fetch_add(m.take_marked(), Ordering::Relaxed);
            heap.mark.helpers.fetch_sub(1, Ordering::SeqCst);
            if got {
                idle = 0;
            } else {
                idle += 1;
                if idle > 16 {
                    std::thread::sleep(Duration::from_micros(50));
                } else {
                    std::thread::yield_now();
                }
            }
        }
        let cpu = thread_cpu_ns().saturating_sub(cpu0);
        heap.times.gc_cpu_ns.fetch_add(cpu, Ordering::Relaxed);
        heap.times.worker_cpu_ns.fetch_add(cpu, Ordering::Relaxed);
    }
}
