//! The cycle, Go's phases, run by the heap's collector thread (`tricolor-gc`, started at the
//! first request). Mutators never run a cycle: they request one when allocation reaches the
//! trigger, and wait (as if in native code) only when they must (`Mutator::collect`, the hard
//! goal, an exhausted page heap).
//!
//! 1. **Sweep termination**, world running: finish the previous cycle's sweeping.
//! 2. **Start (stop the world)**: every cache goes back (so every span a mutator takes from
//!    here on is allocated black, rule 5), every mutator gets a stack-scan request, every
//!    pool's contents become its victim cache (`pool` rule 3), the barrier is switched on
//!    (`MarkState::marking`). O(mutators × (their caches + the pools they used)).
//! 3. **Concurrent mark**, world running: the collector scans the global handles, the pools
//!    (`get` and `put` shade what they move meanwhile, `pool` rule 2), what finalizable
//!    objects point to and the finalizer queue (`finalize` rule 2), scans the
//!    shadow stacks of mutators in native code (the others scan their own at their next
//!    safepoint), and drains the grey work that barriers, stack scans and retired allocation
//!    windows send it through `MarkState::queue`.
//! 4. **Completion**, world running: a flush wave asks every running mutator to hand over its
//!    barrier buffer at its next safepoint; a wave that delivers nothing, with no stack scan
//!    pending and the queue empty, ends marking (Go's `gcMarkDone` termination, golang/go#26903).
//! 5. **Mark termination (stop the world)**: flush the buffers and caches once more and mark
//!    what they hold (normally nothing new), call the root callbacks and mark from them,
//!    verify (verification mode), switch the barrier off, flip the sweep generation.
//! 6. **Restart**, then outside the pause: queue every small span for sweeping, free dead
//!    large objects, compute the next goal and trigger, record statistics.
//! 7. **Background sweeping** until every span is swept or the next cycle is asked for,
//!    beside the lazy and proportional sweeping of refills.
//!
//! # Rules of the concurrent protocol
//! 1. `MarkState::marking` changes only while the world is stopped (steps 2 and 5), so every
//!    running mutator sees one value for a whole phase (the stop and restart synchronise).
//! 2. While marking, `write` shades the old and the new value of the slot (Yuasa deletion +
//!    Dijkstra insertion, Go's hybrid barrier) by appending both to the mutator's buffer
//!    before the store, with no safepoint in between. A full buffer goes to `MarkState::queue`.
//! 3. A mutator's shadow stack and handle arena are scanned once per cycle: by the owner at
//!    its first safepoint after step 2 (`SCAN` in `poll`), or by the collector while the
//!    owner is in native code, never both and never while the owner runs: `handshake` (its
//!    own numbered rules, checked by loom) decides who holds the scan. A mutator attached
//!    during marking starts `DONE` (its empty stack is black).
//! 4. A mutator entering native code, detaching, or answering a flush (`FLUSH`) first hands
//!    its barrier buffer to the queue; so a native mutator's buffer is always empty.
//! 5. Allocate-black: a cache loaded while marking remembers where its window started; when
//!    the span leaves the cache (refill, detach, step 5) the slots it handed out since are
//!    sent to the collector, which marks them without scanning (every pointer stored into
//!    them went through rule 2). A large object allocated while marking is sent at once.
//! 6. Global handles are scanned at step 3 under the roots lock; while marking, creating,
//!    setting and freeing a handle shades the old and new values, so they are never rescanned.
//! 7. Root callbacks run only at step 5, with the world stopped: their slots need no barrier,
//!    and their cost (plus marking what only they reach) is in that pause.
//! 8. Mark bits are set only by markers, with `fetch_or`, and no span is swept or freed while
//!    marking (sweeping finished at step 1; the flip is at step 5), so a span found by a marker
//!    stays valid for the whole phase.
//! 9. Termination: after a flush wave in which no mutator delivered work (`MarkState::flushed`
//!    stayed false), with every scan `DONE` and the queue and grey stack empty, every
//!    reachable object is marked: each was reachable from a scanned stack, a handle or a
//!    marked object, and by rules 2–6 no path to it can be hidden without its being shaded.
//!    Step 5 still flushes and marks whatever is left (values written after the wave, black
//!    ranges, the callbacks' roots, a scan somehow pending), so a wave that ends too early
//!    costs pause time, never an object: the waves exist to keep that pause short.
//! 10. Assists: a mutator that allocates while marking pays with marking work, in
//!     proportion (Go's assist ratio, `MutatorState::pay_for`), and one whose allocation
//!     reaches the goal marks until no work is left before it waits. An assist
//!     (`MutatorState::assist`) counts itself in `MarkState::helpers`, takes work from the queue
//!     and from `MarkState::work` (where a busy marker spills half its grey objects when another
//!     wants work), and before it stops, or parks for a stop of the world, puts every grey
//!     object it holds back into `MarkState::work` and adds what it marked to
//!     `MarkState::helper_marked`. Marking is not done while an assist runs; step 5 takes what
//!     parked assists left.
//! 11. Mark workers: `Config::extra_mark_workers` threads (a quarter of `GOMAXPROCS`, less
//!     the collector thread) mark beside the collector during every cycle, taking work as
//!     assists do. Each counts itself in `MarkState::helpers` before taking work and stops
//!     counting only with nothing in hand. Workers are not mutators: a stop of the world does
//!     not stop them, so step 5 marks until no helper holds work before it flips.

use crate::control::StartThread;
use crate::handshake;
use crate::heap::{Heap, World};
use crate::mark::Marker;
use crate::mutator::{DONE, FLUSH, MutatorState, PENDING, SCAN};
use crate::roots::RootVisitor;
use crate::stats::thread_cpu_ns;
use std::sync::MutexGuard;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

impl Heap {
    /// Asks for a cycle if none is running or asked for (allocation reached the trigger).
    pub(crate) fn request_cycle(&'static self) {
        let start = self.cycles.request();
        self.start_collector(start);
    }

    /// Asks for a cycle that starts after this call and returns its number: wait for it with
    /// `cycles.wait_completed` (as if in native code: the caller must not hold up a cycle).
    pub(crate) fn request_full_cycle(&'static self) -> u64 {
        let (target, start) = self.cycles.request_full();
        self.start_collector(start);
        target
    }

    /// Starts the collector thread and the mark workers when a request says to (once).
    fn start_collector(&'static self, start: StartThread) {
        if !start.0 {
            return;
        }
        std::thread::Builder::new()
            .name("tricolor-gc".into())
            .spawn(move || collector(self))
            .expect("tricolor: cannot start the collector thread");
        for _ in 0..self.config.extra_mark_workers() {
            // A worker that cannot start leaves its share to the others.
            let _ = std::thread::Builder::new()
                .name("tricolor-mark".into())
                .spawn(move || crate::mark::worker::mark_worker(self));
        }
    }
}

/// The collector thread: one cycle per request, for the rest of the process.
fn collector(heap: &'static Heap) {
    loop {
        heap.cycles.start_next();
        cycle(heap);
        heap.cycles.complete();
        if heap.config.background_sweep {
            sweep_in_background(heap);
        }
    }
}

/// Step 7: the background sweeper. Sweeps the spans the cycle left unswept, a batch at a
/// time outside the central lock (`Heap::sweep_batch`), until none is left or the next cycle
/// is asked for (whose step 1 then finishes the rest). Allocation keeps sweeping lazily and
/// proportionally meanwhile; whoever claims a span first sweeps it (`sweepgen`).
fn sweep_in_background(heap: &Heap) {
    while heap.sweep_batch(SWEEP_BATCH) {
        if heap.cycles.pending().is_some() {
            return;
        }
    }
}

/// Spans per background-sweeping batch: the central lock is held only to take the batch and
/// to file it.
const SWEEP_BATCH: usize = 32;

/// Stops every mutator (`world` rule 1); returns with `world` held. No mutator attaches
/// meanwhile (`World::collecting`).
fn stop_the_world(heap: &Heap) -> MutexGuard<'_, World> {
    let mut w = heap.world_lock();
    w.collecting = true;
    heap.world.stop(w)
}

/// Restarts the world and wakes the parked mutators.
fn start_the_world(heap: &Heap, mut w: MutexGuard<'_, World>) {
    w.collecting = false;
    heap.world.start(w);
}

/// Steps 1–6.
fn cycle(heap: &'static Heap) {
    let mut t = Timeline::start(heap);
    sweep_termination(heap);
    let (mutators, stopped) = start_marking(heap, &mut t);
    let mut marker = Marker::shared(heap);
    let global_roots = mark_global_roots(heap, &mut marker);
    let (dead_candidates, callback_roots, limited) = match stopped {
        None => {
            mark_concurrently(heap, &mut marker);
            t.marked = Instant::now();
            t.cpu_marked = thread_cpu_ns();
            terminate_marking(heap, &mut marker, &mut t)
        }
        Some(w) => mark_in_pause(heap, &mut marker, &mut t, w),
    };
    // Step 6.
    heap.central_lock().queue_sweep(dead_candidates);
    heap.large_pending.store(false, Ordering::Release);
    let marked = marker.marked_bytes + heap.mark.helper_marked.swap(0, Ordering::Relaxed);
    heap.pacing.live.store(marked, Ordering::Relaxed);
    // Roots: what the collector scanned (handles, native mutators' stacks, callbacks) and
    // the stacks the mutators scanned themselves.
    let own_stacks = heap.mark.stack_scan_bytes.load(Ordering::Relaxed);
    let goal = heap.update_goal(marked, marker.root_bytes + own_stacks, limited);
    heap.times
        .gc_cpu_ns
        .fetch_add(thread_cpu_ns().saturating_sub(t.cpu0), Ordering::Relaxed);
    let ns = |d: Duration| d.as_nanos() as u64;
    let (stw_ns, mark_ns, term_ns) = if heap.config.mark_in_pause {
        // One pause holds the whole of marking: it is the cycle's first, and it has no second.
        (ns(t.restart - t.stop), 0, 0)
    } else {
        (
            ns(t.marking - t.stop),
            ns(t.marked - t.marking),
            ns(t.restart - t.term),
        )
    };
    record(
        heap,
        crate::stats::Cycle {
            start: t.t0,
            stw_ns,
            mark_ns,
            background_cpu_ns: t.cpu_marked.saturating_sub(t.cpu_marking)
                + heap.times.worker_cpu_ns.swap(0, Ordering::Relaxed),
            assist_ns: heap.times.assist_ns.load(Ordering::Relaxed) - t.assist_before,
            term_ns,
            heap_before: t.heap_before,
            marked,
            goal,
            stack_roots: marker.root_bytes - global_roots - callback_roots + own_stacks,
            global_roots: global_roots + callback_roots,
            mutators,
            limited,
        },
    );
}

/// When each step of a cycle began, and the figures taken at its start, for its statistics.
struct Timeline {
    t0: Instant,
    cpu0: u64,
    heap_before: usize,
    assist_before: u64,
    /// Step 2's stop of the world began (the time to stop is part of the pause).
    stop: Instant,
    /// Marking began: the world restarted after step 2.
    marking: Instant,
    cpu_marking: u64,
    /// Concurrent marking ended (steps 3 and 4).
    marked: Instant,
    cpu_marked: u64,
    /// Step 5's stop of the world began.
    term: Instant,
    /// The world restarted after step 5.
    restart: Instant,
}

impl Timeline {
    fn start(heap: &Heap) -> Timeline {
        let now = Instant::now();
        Timeline {
            t0: now,
            cpu0: thread_cpu_ns(),
            heap_before: heap.pacing.live.load(Ordering::Relaxed),
            assist_before: heap.times.assist_ns.load(Ordering::Relaxed),
            stop: now,
            marking: now,
            cpu_marking: 0,
            marked: now,
            cpu_marked: 0,
            term: now,
            restart: now,
        }
    }
}

/// Step 1: what the background sweeper left, in batches outside the lock, then the
/// bookkeeping.
fn sweep_termination(heap: &Heap) {
    while heap.sweep_batch(SWEEP_BATCH) {}
    heap.central_lock().finish_sweep(heap.config.verify);
}

/// Step 2, with the world stopped: every cache goes back, every mutator is asked to scan its
/// stack, the pools rotate, the marking state is reset and the barrier switched on. Returns
/// the number of mutators, and with `Config::mark_in_pause` the world still stopped (its
/// guard): no mutator is asked to scan, the collector scans every stack itself.
fn start_marking<'a>(heap: &'a Heap, t: &mut Timeline) -> (usize, Option<MutexGuard<'a, World>>) {
    let w = stop_the_world(heap);
    t.stop = Instant::now();
    let in_pause = heap.config.mark_in_pause;
    for m in w.each() {
        // SAFETY: rule 2 of `mutator`: every mutator is stopped and we hold `world`. The spans
        // go back on their partial lists (swept in step 1), for marking to allocate from.
        unsafe {
            m.release_caches(true);
            m.reset_assist_debt();
        }
        if !in_pause {
            m.sig.scan.store(PENDING, Ordering::SeqCst);
            m.sig.poll.fetch_or(SCAN, Ordering::SeqCst);
        }
    }
    heap.rotate_pools();
    heap.queue_lock().clear();
    heap.work_lock().clear();
    heap.mark.work_wanted.store(false, Ordering::Relaxed);
    heap.mark.helper_marked.store(0, Ordering::Relaxed);
    heap.mark.mark_progress.store(0, Ordering::Relaxed);
    heap.mark.stack_scan_bytes.store(0, Ordering::Relaxed);
    heap.mark
        .scan_expected
        .store(heap.stats_lock().marked(), Ordering::Relaxed);
    // Marking: the barrier is on for mutators that run, and the mark workers join in. In the
    // pause mode no mutator runs before it is off again.
    heap.mark.marking.store(true, Ordering::SeqCst);
    let mutators = w.mutators.len();
    if in_pause {
        t.marking = t.stop;
        t.cpu_marking = thread_cpu_ns();
        return (mutators, Some(w));
    }
    start_the_world(heap, w);
    t.marking = Instant::now();
    t.cpu_marking = thread_cpu_ns();
    (mutators, None)
}

/// Step 3's roots the collector scans itself: the global handles, the pools, what finalizable
/// objects reach and the finalizer queue's objects. Returns the bytes of roots scanned.
fn mark_global_roots(heap: &Heap, marker: &mut Marker) -> usize {
    {
        let roots = heap.roots_lock();
        for &h in &roots.handles {
            // SAFETY: listed handles are live while the roots lock is held.
            marker.root_value(unsafe { (*h).obj.load(Ordering::Relaxed) });
        }
    }
    // Pooled objects (`pool` rule 1; `get` and `put` shade what they move meanwhile).
    heap.each_pooled(|v| {
        if v != 0 {
            marker.root_value(v);
        }
    });
    // What finalizable objects reach, and queued finalizers' objects (`finalize` rule 2).
    let mut referents = Vec::new();
    heap.each_finalizable(|obj| referents.push(obj), |obj| marker.root_value(obj));
    for obj in referents {
        marker.mark_referents(obj);
    }
    marker.root_bytes
}

/// Steps 3 and 4, world running: drain grey work from every source until a flush wave
/// delivers nothing (rule 9).
fn mark_concurrently(heap: &Heap, marker: &mut Marker) {
    loop {
        marker.drain();
        if marker.take_queue(heap) || marker.steal() || scan_native_mutators(heap, marker) {
            continue;
        }
        if heap.mark.helpers.load(Ordering::SeqCst) != 0 {
            // An assist is marking: our failed `steal` asked it to share (it does within 64
            // objects); stay on the core and take the work as soon as it is there.
            std::thread::yield_now();
            continue;
        }
        if scans_pending(heap) {
            // Running mutators scan their own stacks at their next safepoint and wake us.
            let q = heap.queue_lock();
            if q.is_empty() {
                let _ = heap
                    .mark
                    .queue_cv
                    .wait_timeout(q, Duration::from_millis(1))
                    .unwrap_or_else(|e| e.into_inner());
            }
            continue;
        }
        // Step 4.
        if flush_wave(heap) {
            continue;
        }
        break;
    }
}

/// Step 5, with the world stopped: flush and mark what is left, run the root callbacks,
/// verify, flip the sweep generation, switch the barrier off, update the CPU limiter.
/// Returns the large objects to check for death (for step 6), the bytes of callback roots,
/// and whether the limiter is engaged.
fn terminate_marking(
    heap: &Heap,
    marker: &mut Marker,
    t: &mut Timeline,
) -> (Vec<*mut crate::span::GcSpan>, usize, bool) {
    let w = stop_the_world(heap);
    t.term = Instant::now();
    marker.stop_the_world();
    for m in w.each() {
        m.flush_barrier();
        // SAFETY: as in step 2; a scan still pending (none should be: the loop above ended
        // with every scan done, and later arrivals start done) is done here.
        unsafe {
            m.release_caches(false);
            if m.sig.scan.swap(DONE, Ordering::SeqCst) != DONE {
                marker.mutator_roots(m);
            }
        }
        m.sig.poll.fetch_and(!(SCAN | FLUSH), Ordering::SeqCst);
    }
    finish_marking(heap, marker, t, w)
}

/// Steps 3 to 5 in one pause (`Config::mark_in_pause`, the world stopped since step 2): every
/// mutator's stack, then everything reachable, with the mark workers, then as step 5. The
/// barrier was never on for a running mutator, so stores need none.
fn mark_in_pause(
    heap: &Heap,
    marker: &mut Marker,
    t: &mut Timeline,
    w: MutexGuard<'_, World>,
) -> (Vec<*mut crate::span::GcSpan>, usize, bool) {
    marker.stop_the_world();
    for m in w.each() {
        // SAFETY: every mutator is stopped and we hold `world` (`mark::Marker::mutator_roots`).
        unsafe { marker.mutator_roots(m) };
    }
    mark_to_completion(heap, marker);
    t.marked = Instant::now();
    t.cpu_marked = thread_cpu_ns();
    t.term = t.marked;
    finish_marking(heap, marker, t, w)
}

/// Step 5's end, with the world stopped: mark until no marker holds work, run the root
/// callbacks and mark what they reach, verify, flip the sweep generation, switch the barrier
/// off, update the CPU limiter, restart the world. Returns the large objects to check for
/// death (for step 6), the bytes of callback roots, and whether the limiter is engaged.
fn finish_marking(
    heap: &Heap,
    marker: &mut Marker,
    t: &mut Timeline,
    mut w: MutexGuard<'_, World>,
) -> (Vec<*mut crate::span::GcSpan>, usize, bool) {
    // Assists parked for this stop left their grey objects in `work` (rule 10); mark workers
    // may still be draining (rule 11): mark until nobody holds work.
    mark_to_completion(heap, marker);
    let before_callbacks = marker.root_bytes;
    {
        let roots = heap.roots_lock();
        for (_, f) in &roots.callbacks {
            f(&mut RootVisitor { marker });
        }
    }
    // What the callbacks reached, to the end: a drain may have shared grey objects through
    // `work` (a marker's failed steal above left `work_wanted` set), and workers may hold some.
    mark_to_completion(heap, marker);
    let callback_roots = marker.root_bytes - before_callbacks;
    let mut c = heap.central_lock();
    if heap.config.verify {
        crate::mark::verify(heap.addr(), &c);
    }
    let dead_candidates = c.flip();
    heap.sweep_h.store(c.sweepgen, Ordering::Release);
    heap.large_pending.store(true, Ordering::Release);
    drop(c);
    heap.mark.marking.store(false, Ordering::SeqCst);
    t.restart = Instant::now();
    let gc_ns = (t.restart - t.t0).as_nanos() as u64;
    let mutator_ns = (t.t0 - w.last_end).as_nanos() as u64;
    let limited = w.limiter.update(gc_ns, mutator_ns);
    w.last_end = t.restart;
    start_the_world(heap, w);
    (dead_candidates, callback_roots, limited)
}

/// Records the cycle's statistics, and prints its gctrace line when asked.
fn record(heap: &Heap, cycle: crate::stats::Cycle) {
    let mut st = heap.stats_lock();
    st.record(cycle);
    if heap.config.trace {
        eprintln!(
            "{}",
            crate::stats::trace_line(&st, heap.epoch, heap.gc_cpu_fraction())
        );
    }
}

/// Step 5's marking, with the world stopped: until no marker holds grey work and neither
/// the queue nor the shared work list has any (rules 10 and 11).
fn mark_to_completion(heap: &Heap, marker: &mut Marker) {
    loop {
        marker.take_queue(heap);
        marker.drain();
        if marker.steal() {
            continue;
        }
        if heap.mark.helpers.load(Ordering::SeqCst) == 0
            && heap.work_lock().is_empty()
            && heap.queue_lock().is_empty()
        {
            break;
        }
        std::thread::yield_now();
    }
}

/// True while some mutator's stack scan has not ended.
fn scans_pending(heap: &Heap) -> bool {
    heap.world_lock()
        .each()
        .any(|m| m.sig.scan.load(Ordering::SeqCst) != DONE)
}

/// Scans the stacks of mutators in native code whose scan is pending (rule 3). True if it
/// scanned any.
fn scan_native_mutators(heap: &Heap, marker: &mut Marker) -> bool {
    let w = heap.world_lock();
    let mut any = false;
    for m in w.each() {
        if !handshake::collector_claim(&m.sig.status, &m.sig.scan) {
            continue;
        }
        // SAFETY: rule 3 (`handshake`): the owner is in native code and cannot leave it while
        // we hold the scan; we read only its shadow stack and handle arena.
        unsafe { marker.mutator_roots(m) };
        handshake::finish(&m.sig.scan);
        any = true;
    }
    any
}

/// Step 4: asks every running mutator to flush its barrier buffer and waits until each has
/// (or is in native code, rule 4). True if any delivered work, or work is queued.
fn flush_wave(heap: &Heap) -> bool {
    heap.mark.flushed.store(false, Ordering::SeqCst);
    // `world` rule 5 (a native mutator's buffer is empty: rule 4).
    heap.world.flush_wave();
    heap.mark.flushed.load(Ordering::SeqCst)
        || !heap.queue_lock().is_empty()
        || !heap.work_lock().is_empty()
        || heap.mark.helpers.load(Ordering::SeqCst) != 0
}

impl MutatorState {
    /// Runs a full collection now (Go's `runtime.GC`).
    pub fn collect(&self) {
        self.check_attached("collect");
        self.collect_now();
    }

    /// Runs a full cycle and returns when it has completed, as if in native code meanwhile.
    pub(crate) fn collect_now(&self) {
        let n = self.heap.request_full_cycle();
        self.wait_outside(|| self.heap.cycles.wait_completed(n));
    }
}
