//! Finalizers and cleanups: Go's `runtime.SetFinalizer` and `runtime.AddCleanup`.
//!
//! A *finalizer* runs once, on the heap's finalizer thread (`tricolor-final`, a mutator),
//! with its object, after the collector finds the object unreachable: the object, and what it
//! reaches, is kept for that, and freed by a later cycle unless the finalizer made it
//! reachable again. A *cleanup* is a function run (on the same thread) after its object is
//! unreachable, without the object: it does not keep the object, and an object may have any
//! number of them; each can be cancelled until it is queued.
//!
//! # Ordering and caveats (as Go documents them)
//! * If A points at B and both have finalizers and are otherwise unreachable, only A's runs
//!   in that cycle; once A is freed, B's can run. Finalizers run in dependency order.
//! * An object with a finalizer that is part of a cycle (including pointing at itself) is
//!   never finalized and never freed: the cycle keeps it reachable from its own finalizer.
//! * A cleanup's function and argument must not reach its object, or it never runs. An
//!   object with both a finalizer and cleanups keeps its cleanups until it has been
//!   finalized and then found unreachable again.
//! * Weak handles to an object are cleared (by the same sweep) before its finalizer or
//!   cleanups are queued.
//! * There is one finalizer thread per heap: a long finalizer delays the others.
//!
//! # Rules
//! 1. Registrations live in `Heap::finals` by object address (a sorted map, so a sweep finds
//!    its span's objects by range). A finalizer's object is registered once.
//! 2. While marking, the collector marks what every object with a finalizer points to (not
//!    the object itself), and everything in the run queue (`collect` step 3): so an
//!    unreachable finalizable object still has all it reaches when its finalizer runs.
//! 3. The sweep that finds a registered object unmarked (`sweep::sweep_claimed`, after the weak
//!    handles are cleared, before the mark bits become the alloc bits): with a finalizer, it
//!    sets the object's mark bit again (so it survives this sweep) and queues the finalizer
//!    with the object, leaving the cleanups registered; without one, it queues the cleanups.
//!    Either way the queued registrations are removed: each runs at most once.
//! 4. The finalizer thread takes a job under the `finals` lock and, with no safepoint in
//!    between, roots the object on its shadow stack and shades it if marking (a job taken
//!    after the queue was scanned would otherwise be seen by neither scan).
//! 5. Lock order: `finals` is taken after `central` (by sweeps under the central lock) and
//!    before `queue`; nothing that can park is called under it.

use crate::heap::Heap;
use crate::misuse;
use crate::mutator::MutatorState;
use crate::span::GcSpan;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::MutexGuard;
use std::sync::atomic::Ordering;

/// A finalizer: called on the finalizer thread's mutator with the object.
pub type FinalizerFn = Box<dyn FnOnce(&MutatorState, *mut u8) + Send>;
/// A cleanup: called on the finalizer thread after its object is unreachable.
pub type CleanupFn = Box<dyn FnOnce() + Send>;

enum Special {
    Finalizer(FinalizerFn),
    Cleanup(u64, CleanupFn),
    /// A heap-profile sample (`tricolor_alloc::profile`): its bucket learns of the object's
    /// death when the sweep finds it dead (after any finalizer has let it go).
    Profile(u32),
}

enum Job {
    Finalize(usize, FinalizerFn),
    Cleanup(CleanupFn),
}

/// Guarded by `Heap::finals`.
#[derive(Default)]
pub(crate) struct Finals {
    specials: BTreeMap<usize, Vec<Special>>,
    /// Cleanup id → its object.
    cleanups: HashMap<u64, usize>,
    next_id: u64,
    queue: VecDeque<Job>,
    /// The finalizer thread has been started, and has attached its mutator.
    thread: bool,
    attached: bool,
    /// Jobs taken and not yet finished (for `Heap::wait_finalizers`).
    running: usize,
}

impl Heap {
    fn finals_lock(&self) -> MutexGuard<'_, Finals> {
        self.finals.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ensure_finalizer_thread(&'static self, f: &mut Finals) {
        if f.thread {
            return;
        }
        f.thread = true;
        std::thread::Builder::new()
            .name("tricolor-final".into())
            .spawn(move || finalizer_thread(self))
            .expect("tricolor: cannot start the finalizer thread");
    }

    /// Whether the finalizer thread's mutator is attached.
    pub(crate) fn finalizer_attached(&self) -> bool {
        self.finals_lock().attached
    }

    /// Rule 2, during concurrent marking: calls `referents` with every object that has a
    /// finalizer, and `root` with every queued finalizer's object.
    pub(crate) fn each_finalizable(
        &self,
        mut referents: impl FnMut(usize),
        mut root: impl FnMut(usize),
    ) {
        // Once a cycle: no shortcut on `finals_count`, which queued jobs do not count.
        let f = self.finals_lock();
        for (&obj, specials) in &f.specials {
            if specials.iter().any(|s| matches!(s, Special::Finalizer(_))) {
                referents(obj);
            }
        }
        for job in &f.queue {
            if let Job::Finalize(obj, _) = job {
                root(*obj);
            }
        }
    }

    /// Rule 3, in the sweep of span `r` (its mark bits still this cycle's): queues what its
    /// unmarked registered objects have, resurrecting those with a finalizer.
    pub(crate) fn sweep_specials(&self, r: &GcSpan) {
        if self.finals_count.load(Ordering::Relaxed) == 0
            && self.profiled_count.load(Ordering::Relaxed) == 0
        {
            return;
        }
        let mut f = self.finals_lock();
        let end = r.start + r.nelems as usize * r.size;
        let dead: Vec<usize> = f
            .specials
            .range(r.start..end)
            .filter(|&(&obj, _)| r.index_of(obj).is_some_and(|i| !r.is_marked(i)))
            .map(|(&obj, _)| obj)
            .collect();
        if dead.is_empty() {
            return;
        }
        for obj in dead {
            let specials = f.specials.remove(&obj).unwrap_or_default();
            let (fin, cleanups): (Vec<_>, Vec<_>) = specials
                .into_iter()
                .partition(|s| matches!(s, Special::Finalizer(_)));
            if let Some(Special::Finalizer(fun)) = fin.into_iter().next() {
                if let Some(i) = r.index_of(obj) {
                    r.set_mark(i);
                }
                f.queue.push_back(Job::Finalize(obj, fun));
                self.finals_count.fetch_sub(1, Ordering::Relaxed);
                if !cleanups.is_empty() {
                    f.specials.insert(obj, cleanups);
                }
            } else {
                for s in cleanups {
                    match s {
                        Special::Cleanup(id, fun) => {
                            f.cleanups.remove(&id);
                            f.queue.push_back(Job::Cleanup(fun));
                            self.finals_count.fetch_sub(1, Ordering::Relaxed);
                        }
                        Special::Profile(bucket) => {
                            tricolor_alloc::profile::object_freed(bucket);
                            self.profiled_count.fetch_sub(1, Ordering::Relaxed);
                        }
                        Special::Finalizer(_) => {}
                    }
                }
            }
        }
        self.finals_cv.notify_all();
    }

    /// Rule 3 for a large object the sweep found dead: true if a finalizer resurrects it.
    pub(crate) fn sweep_large_specials(&self, r: &GcSpan) -> bool {
        if self.finals_count.load(Ordering::Relaxed) == 0
            && self.profiled_count.load(Ordering::Relaxed) == 0
        {
            return false;
        }
        // Its mark bit was cleared by the caller: `sweep_specials` sees it dead and sets the
        // bit again if it has a finalizer.
        self.sweep_specials(r);
        r.bits[0].mark.swap(0, Ordering::Relaxed) & 1 != 0
    }

    /// Marks `obj` (just allocated) as a heap-profile sample of `bucket`.
    pub(crate) fn add_profile_special(&self, obj: *mut u8, bucket: u32) {
        let mut f = self.finals_lock();
        f.specials
            .entry(obj as usize)
            .or_default()
            .push(Special::Profile(bucket));
        self.profiled_count.fetch_add(1, Ordering::Relaxed);
    }

    /// Finishes the last cycle's sweep, so that what it found dead is queued (tests).
    pub fn wait_finalizers_queued(&self) {
        self.sweep_to_end();
    }

    /// Finishes the last cycle's sweep (which queues the finalizers and cleanups of what it
    /// found dead), then waits until every finalizer and cleanup queued so far has run. Call
    /// it outside a mutator, or from one in native code: finalizers may need a collection.
    pub fn wait_finalizers(&self) {
        self.sweep_to_end();
        loop {
            {
                let f = self.finals_lock();
                if f.queue.is_empty() && f.running == 0 {
                    return;
                }
            }
            std::thread::sleep(std::time::Duration::from_micros(100));
        }
    }
}

impl MutatorState {
    /// [`Heap::wait_finalizers`] as if in native code, so that collections the finalizers
    /// cause do not wait for this mutator.
    pub fn wait_finalizers(&self) {
        self.check_attached("wait_finalizers");
        self.wait_outside(|| self.heap.wait_finalizers());
    }

    /// Sets `obj`'s finalizer (Go's `runtime.SetFinalizer`), or clears it with `None`.
    /// Aborts if `obj` is not an object's start on this heap, or already has a finalizer.
    pub fn set_finalizer(&self, obj: *mut u8, f: Option<FinalizerFn>) {
        self.check_attached("set_finalizer");
        let heap = self.heap;
        heap.object_start(obj, "set_finalizer", "", "this heap");
        let mut fin = heap.finals_lock();
        let list = fin.specials.entry(obj as usize).or_default();
        let had = list.iter().position(|s| matches!(s, Special::Finalizer(_)));
        match (f, had) {
            (Some(_), Some(_)) => {
                drop(fin);
                misuse::abort(format_args!(
                    "set_finalizer(): {obj:p} already has a finalizer (clear it first)"
                ));
            }
            (Some(f), None) => {
                list.push(Special::Finalizer(f));
                heap.finals_count.fetch_add(1, Ordering::Relaxed);
                heap.ensure_finalizer_thread(&mut fin);
            }
            (None, Some(i)) => {
                list.remove(i);
                if list.is_empty() {
                    fin.specials.remove(&(obj as usize));
                }
                heap.finals_count.fetch_sub(1, Ordering::Relaxed);
            }
            (None, None) => {
                if list.is_empty() {
                    fin.specials.remove(&(obj as usize));
                }
            }
        }
    }

    /// Adds a cleanup to `obj` (Go's `runtime.AddCleanup`): `f` runs after `obj` is
    /// unreachable. Returns its id for [`MutatorState::cancel_cleanup`].
    pub fn add_cleanup(&self, obj: *mut u8, f: CleanupFn) -> u64 {
        self.check_attached("add_cleanup");
        let heap = self.heap;
        heap.object_start(obj, "add_cleanup", "", "this heap");
        let mut fin = heap.finals_lock();
        fin.next_id += 1;
        let id = fin.next_id;
        fin.specials
            .entry(obj as usize)
            .or_default()
            .push(Special::Cleanup(id, f));
        fin.cleanups.insert(id, obj as usize);
        heap.finals_count.fetch_add(1, Ordering::Relaxed);
        heap.ensure_finalizer_thread(&mut fin);
        id
    }

    /// Cancels cleanup `id`: true if it had not been queued to run (it never will).
    pub fn cancel_cleanup(&self, id: u64) -> bool {
        self.check_attached("cancel_cleanup");
        let heap = self.heap;
        let mut fin = heap.finals_lock();
        let Some(obj) = fin.cleanups.remove(&id) else {
            return false;
        };
        if let Some(list) = fin.specials.get_mut(&obj) {
            list.retain(|s| !matches!(s, Special::Cleanup(i, _) if *i == id));
            if list.is_empty() {
                fin.specials.remove(&obj);
            }
        }
        heap.finals_count.fetch_sub(1, Ordering::Relaxed);
        true
    }
}

/// The finalizer thread: runs queued finalizers and cleanups, one at a time, for the rest of
/// the process.
fn finalizer_thread(heap: &'static Heap) {
    // Attached for the rest of the process: the thread never ends, so the record is never
    // detached.
    // SAFETY: `attach` returns a registered record, never freed.
    let m = unsafe { &*crate::mutator::attach(heap) };
    heap.finals_lock().attached = true;
    loop {
        // Waiting counts as native code: collections do not wait for this thread.
        m.wait_outside(|| {
            let mut f = heap.finals_lock();
            while f.queue.is_empty() {
                f = heap.finals_cv.wait(f).unwrap_or_else(|e| e.into_inner());
            }
        });
        let job = {
            let mut f = heap.finals_lock();
            let job = f.queue.pop_front();
            f.running += job.is_some() as usize;
            job
        };
        let Some(job) = job else { continue };
        match job {
            Job::Finalize(obj, fun) => {
                // Rule 4: no safepoint since the pop.
                let mut slot = obj as *mut u8;
                if heap.mark.marking.load(Ordering::Relaxed) {
                    m.shade_one(obj);
                }
                // SAFETY: `slot` outlives the root (popped below).
                unsafe { m.push_root(&mut slot) };
                run_guarded(|| fun(m, obj as *mut u8));
                m.pop_roots(1);
            }
            Job::Cleanup(fun) => run_guarded(fun),
        }
        heap.finals_lock().running -= 1;
    }
}

/// Runs a finalizer or cleanup; a panic is reported and the thread goes on.
fn run_guarded(f: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).is_err() {
        eprintln!("tricolor: a finalizer or cleanup panicked; the finalizer thread goes on");
    }
}
