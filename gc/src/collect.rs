//! One collection cycle (lib.rs, "Collection"), run by whichever attached thread triggers it.
//!
//! 1. **Stop**: take `Heap::world`, set `STOP` in every other mutator, wait until none runs.
//! 2. **Sweep termination**: finish sweeping the previous cycle's spans; flush every
//!    mutator's caches, so the collector holds every span.
//! 3. **Mark**: shade the roots (shadow stacks, typed handle slots, global handles, root
//!    callbacks), then drain the grey stack. Verification mode then checks that no black
//!    object points to a white one.
//! 4. **Mark termination**: flip the sweep generation (every small span becomes unswept:
//!    swept lazily by allocation and proportionally by refills), free dead large objects,
//!    set `live` to the marked bytes and compute the next goal.
//! 5. **Start**: clear `STOP`, wake everyone.
//!
//! This version does all of it with the world stopped; the concurrent collector keeps the
//! same steps and moves 3 out of the pause behind the write barrier.

use crate::heap::{Heap, World};
use crate::mark::{Marker, RootVisitor};
use crate::mutator::{MutatorState, RUNNING, STOP};
use std::sync::MutexGuard;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Collects on behalf of attached, running mutator `m`. With `forced` false (a trigger) the
/// cycle is skipped when another thread's cycle has already brought the heap under its goal.
pub(crate) fn collect(m: &MutatorState, forced: bool) {
    let heap = m.heap;
    let mut w = heap.world_lock();
    if m.poll.load(Ordering::Acquire) & STOP != 0 {
        // Another collection is waiting for us: serve it first. `park` returns with `world`
        // held and our STOP clear, so no collection is in progress then (a collector holds
        // `world` throughout, except while it waits with every mutator's STOP set).
        w = m.park(w);
        if !forced && !heap.over_goal() {
            return;
        }
    }
    debug_assert!(!w.collecting);
    let t0 = Instant::now();
    w.collecting = true;
    let me = m as *const MutatorState as *mut MutatorState;
    for &o in &w.mutators {
        if o != me {
            // SAFETY: registered records are valid while registered (under `world`).
            unsafe { (*o).poll.fetch_or(STOP, Ordering::SeqCst) };
        }
    }
    loop {
        // SAFETY: as above.
        let running = w
            .mutators
            .iter()
            .any(|&o| o != me && unsafe { (*o).status.load(Ordering::SeqCst) } == RUNNING);
        if !running {
            break;
        }
        w = heap.parked.wait(w).unwrap_or_else(|e| e.into_inner());
    }
    cycle(heap, &mut w, t0);
    for &o in &w.mutators {
        // SAFETY: as above.
        unsafe { (*o).poll.fetch_and(!STOP, Ordering::SeqCst) };
    }
    w.collecting = false;
    heap.resumed.notify_all();
}

/// Steps 2–4, with the world stopped and `world` held.
fn cycle(heap: &'static Heap, w: &mut MutexGuard<'_, World>, t0: Instant) {
    let poison = heap.config.verify;
    let heap_before = heap.live.load(Ordering::Relaxed);
    // Step 2.
    heap.central_lock().finish_sweep(poison);
    for &o in &w.mutators {
        // SAFETY: rule 2 of `mutator`: every other mutator is stopped and we hold `world`;
        // the collecting mutator holds no reference into its own `local` here.
        unsafe { (*o).release_caches(false) };
    }
    let t_marking = Instant::now();
    // Step 3.
    let mut marker = Marker::new(heap.addr(), heap.config.verify);
    for &o in &w.mutators {
        // SAFETY: as above.
        let local = unsafe { (*o).local() };
        for &slot in &local.roots {
            // SAFETY: `push_root`'s contract: the slot is valid until popped.
            unsafe { marker.root(slot) };
        }
        for v in &local.slots {
            // SAFETY: a slot of the mutator's own arena.
            unsafe { marker.root(v) };
        }
        marker.drain();
    }
    let stack_roots = marker.root_bytes;
    {
        let roots = heap.roots_lock();
        for &h in &roots.handles {
            // SAFETY: listed handles are live.
            marker.root_value(unsafe { (*h).obj.load(Ordering::Relaxed) });
        }
        marker.drain();
        for (_, f) in &roots.callbacks {
            f(&mut RootVisitor {
                marker: &mut marker,
            });
            marker.drain();
        }
    }
    let mut c = heap.central_lock();
    if heap.config.verify {
        crate::mark::verify(heap.addr(), &c);
    }
    let t_marked = Instant::now();
    // Step 4.
    c.start_sweep();
    drop(c);
    let marked = marker.marked_bytes;
    heap.live.store(marked, Ordering::Relaxed);
    let t_end = Instant::now();
    let gc_ns = (t_end - t0).as_nanos() as u64;
    let mutator_ns = (t0 - w.last_end).as_nanos() as u64;
    let limited = w.limiter.update(gc_ns, mutator_ns);
    let goal = heap.update_goal(marked, marker.root_bytes, limited);
    w.last_end = t_end;
    let mut st = heap.stats_lock();
    st.record(crate::stats::Cycle {
        start: t0,
        stw_ns: (t_marking - t0).as_nanos() as u64,
        mark_ns: (t_marked - t_marking).as_nanos() as u64,
        term_ns: (t_end - t_marked).as_nanos() as u64,
        heap_before,
        marked,
        goal,
        stack_roots,
        global_roots: marker.root_bytes - stack_roots,
        pause_ns: gc_ns,
        mutators: w.mutators.len(),
        limited,
    });
    if heap.config.trace {
        eprintln!("{}", crate::stats::trace_line(heap, &st));
    }
}
