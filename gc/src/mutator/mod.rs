//! Mutators: a thread's context on a heap (allocation caches, shadow-stack roots, the
//! barrier buffer) and the handshakes with the collector.
//!
//! # States
//! ```text
//!   RUNNING ──safepoint sees STOP──▶ PARKED ──collection restarts the world──▶ RUNNING
//!   RUNNING ──enter_native──▶ NATIVE ──leave_native (no STOP, no scan held)──▶ RUNNING
//!   (any, at detach) ──▶ poll has DETACHED: every later use aborts
//! ```
//! The collector stops the world by setting `STOP` in every mutator's `poll` word and waiting
//! until none is `RUNNING`; `PARKED` and `NATIVE` mutators count as stopped, so a thread
//! blocked in native code never holds up a collection. While marking, `poll` also carries
//! `SCAN` (scan your shadow stack) and `FLUSH` (hand over your barrier buffer). The
//! handshakes are `world`'s (rules 1–5, loom-checked) and `handshake`'s (the stack scan's
//! claim); `collect` states the marking protocol.
//!
//! # Rules
//! 1. `poll`, `status` and `scan` ([`Signals`]) change only as `world` and `handshake` say.
//! 2. `local` (caches, shadow stack, handle slots, barrier buffer) is touched by the owning
//!    thread while it is `RUNNING`, and by the collector only while the owner is stopped
//!    (parked or native) and the collector holds `Heap::world`, or holds the owner's stack
//!    scan (`collect` rule 3: it then reads only the shadow stack and handle arena). The owner
//!    never holds a reference into `local` across a call that can park.
//! 3. Every allocation is a safepoint: its fast path reads `poll` (one load) and takes the
//!    slow path when it is non-zero.

// The allocation paths (`alloc`), the caches they take from (`cache`) and the roots a mutator
// holds (`stack`); this file is the record, its states and its handshakes.
mod alloc;
pub(crate) mod cache;
pub(crate) mod stack;

pub use stack::StackScanner;

use crate::handshake;
use crate::heap::Heap;
use crate::misuse;
use crate::object::TypeId;
use crate::world::Signals;
use cache::{AllocCache, Caches};
use stack::ShadowStack;
use std::cell::UnsafeCell;
use std::sync::MutexGuard;
use std::sync::atomic::Ordering;

pub(crate) use crate::handshake::{DONE, NATIVE, PENDING, RUNNING};
pub(crate) use crate::world::{DETACHED, FLUSH, SCAN, STOP};

/// Barrier-buffer entries (old and new values) before it goes to the collector: 256 writes,
/// Go 1.21's 512 pointers.
pub(crate) const WBUF: usize = 512;

/// A mutator's thread-owned context (rule 2).
pub(crate) struct Local {
    /// Allocation caches (`cache`).
    pub(crate) caches: Caches,
    /// Roots: the shadow stack, the typed layer's handle arena, stack scanners (`stack`).
    pub(crate) stack: ShadowStack,
    /// The typed layer's cache of Rust type → type id.
    pub(crate) rust_types: Vec<(std::any::TypeId, TypeId)>,
    /// The barrier buffer: old and new values of slots written while marking.
    pub(crate) wbuf: Vec<usize>,
    /// Marking work (bytes) this mutator owes for what it allocated while marking.
    pub(crate) assist_debt: usize,
    /// This mutator's shard of each pool it has used, by pool index (`pool`).
    pub(crate) pools: Vec<Option<std::sync::Arc<crate::pool::Shard>>>,
    /// Bytes this mutator may allocate before its next heap-profile sample
    /// (`tricolor_alloc::profile`); about 2^62 while sampling is off, so the fast path's
    /// subtraction never reaches zero then.
    pub(crate) sample_left: i64,
    /// The profiler's epoch `sample_left` was drawn in; a new one restarts the countdown.
    pub(crate) sample_epoch: u64,
}

/// `Local::sample_left` while sampling is off.
const NO_SAMPLE: i64 = i64::MAX / 2;

/// A mutator's shared record: the C `tc_mutator`.
pub struct MutatorState {
    /// `poll`, `status` and the stack scan's state (`world`, `handshake`).
    pub(crate) sig: Signals,
    pub(crate) heap: &'static Heap,
    pub(crate) local: UnsafeCell<Local>,
}

// SAFETY: the record is shared with collectors under the protocol in the module docs.
unsafe impl Sync for MutatorState {}

impl MutatorState {
    fn new(heap: &'static Heap) -> Self {
        Self {
            sig: Signals::new(),
            heap,
            local: UnsafeCell::new(Local {
                caches: Caches::default(),
                stack: ShadowStack::new(),
                rust_types: Vec::new(),
                wbuf: Vec::new(),
                assist_debt: 0,
                pools: Vec::new(),
                sample_left: NO_SAMPLE,
                sample_epoch: 0,
            }),
        }
    }

    /// The owner's view of `local`.
    ///
    /// # Safety
    /// Rule 2: the calling thread owns this running mutator, and drops the reference before
    /// anything that can park or collect.
    #[allow(clippy::mut_from_ref)]
    #[inline(always)]
    pub(crate) unsafe fn local(&self) -> &mut Local {
        // SAFETY: the caller's contract.
        unsafe { &mut *self.local.get() }
    }

    /// Aborts if the mutator was detached, names `op`.
    #[inline(always)]
    pub(crate) fn check_attached(&self, op: &str) {
        if self.sig.poll.load(Ordering::Relaxed) & DETACHED != 0 {
            misuse::detached(op, (self as *const Self).cast());
        }
    }

    /// Serves a pending stop (or reports use after detach). Called when `poll` is non-zero.
    #[cold]
    #[inline(never)]
    pub(crate) fn poll_slow(&self, op: &str) {
        let p = self.sig.poll.load(Ordering::Acquire);
        if p & DETACHED != 0 {
            misuse::detached(op, (self as *const Self).cast());
        }
        if p & STOP != 0 {
            drop(self.park(self.heap.world_lock()));
        }
        if p & SCAN != 0 {
            self.scan_own_stack();
        }
        if p & FLUSH != 0 {
            self.flush_barrier();
            self.heap.world.answer_flush(&self.sig);
        }
    }

    /// Answers `SCAN`: shades everything the shadow stack and handle arena hold, once per
    /// cycle (`collect` rule 3).
    #[cold]
    fn scan_own_stack(&self) {
        if !handshake::owner_claim(&self.sig.scan) {
            self.sig.poll.fetch_and(!SCAN, Ordering::SeqCst);
            return;
        }
        {
            // SAFETY: rule 2: the owner, running; no call below parks.
            let local = unsafe { self.local() };
            let stack = &local.stack;
            let mut values = Vec::with_capacity(stack.roots.len() + stack.slots.len());
            stack.each_root(|v| values.push(v));
            self.heap
                .mark
                .stack_scan_bytes
                .fetch_add(values.len() * 8, Ordering::Relaxed);
            self.heap.shade(&values);
        }
        handshake::finish(&self.sig.scan);
        self.sig.poll.fetch_and(!SCAN, Ordering::SeqCst);
        let _q = self.heap.queue_lock();
        self.heap.mark.queue_cv.notify_one();
    }

    /// Hands the barrier buffer to the collector (`collect` rule 4).
    ///
    /// Rule 2: called by the owner, or by the collector while the owner is stopped.
    pub(crate) fn flush_barrier(&self) {
        // SAFETY: rule 2 (the caller's situation); no call below parks.
        let local = unsafe { self.local() };
        if !local.wbuf.is_empty() {
            self.heap.shade(&local.wbuf);
            local.wbuf.clear();
        }
    }

    /// Runs `f` as if in native code: the collector neither waits for this mutator nor needs
    /// it to answer (it scans its stack itself). For waits on the collector.
    pub(crate) fn wait_outside(&self, f: impl FnOnce()) {
        self.enter_native();
        f();
        self.leave_native();
    }

    /// Parks until no stop is pending for this mutator; holds `world` on return (`world`
    /// rule 2).
    pub(crate) fn park<'a>(
        &self,
        w: MutexGuard<'a, crate::heap::World>,
    ) -> MutexGuard<'a, crate::heap::World> {
        self.heap.world.park(w, &self.sig)
    }

    /// A safepoint: parks if a collection is waiting for this mutator.
    #[inline]
    pub fn safepoint(&self) {
        if self.sig.poll.load(Ordering::Relaxed) != 0 {
            self.poll_slow("safepoint");
        }
    }

    /// Forgets the assist debt of a previous cycle (at a cycle's start).
    ///
    /// # Safety
    /// Rule 2: the caller is the owner, or the collector while the owner is stopped.
    pub(crate) unsafe fn reset_assist_debt(&self) {
        // SAFETY: the caller's contract.
        unsafe { self.local() }.assist_debt = 0;
    }

    /// Gives every cached span back (at a collection's start and at detach).
    ///
    /// # Safety
    /// Rule 2: the caller is the owner, or a collector while the owner is stopped.
    pub(crate) unsafe fn release_caches(&self, keep_partial: bool) {
        // SAFETY: the caller's contract.
        let local = unsafe { self.local() };
        for c in local.caches.each() {
            give_back(self.heap, c, keep_partial);
        }
    }

    /// Adds a stack scanner: `f` reports root values (object addresses; other words are
    /// ignored, so a scanner may report every word of a region) as part of this mutator's
    /// stack scan, once per cycle while marking, concurrently: by the owner at a safepoint, or
    /// by a marker while the owner is in native code (so `f` must be `Send`). For a language
    /// runtime's own stack, frames and globals: unlike a root callback, what it reaches is
    /// marked concurrently, not in the pause. Sound without a rescan because of the hybrid
    /// barrier: whatever the runtime holds after its scan was reachable when the cycle
    /// started, or is new and black (`collect` rules 2, 3 and 5). `f` must not allocate or
    /// write to the heap, and may read the runtime's structures only because the owner is not
    /// changing them then (it is at a safepoint or in native code). Returns an id for
    /// [`MutatorState::remove_stack_scanner`].
    pub fn add_stack_scanner(&self, f: StackScanner) -> u64 {
        self.check_attached("add_stack_scanner");
        // SAFETY: rule 2: the owner, running; no call below parks.
        unsafe { self.local() }.stack.add_scanner(f)
    }

    /// Removes a stack scanner; false if it was not registered.
    pub fn remove_stack_scanner(&self, id: u64) -> bool {
        self.check_attached("remove_stack_scanner");
        // SAFETY: rule 2.
        unsafe { self.local() }.stack.remove_scanner(id)
    }

    /// Pushes a root slot onto the shadow stack.
    ///
    /// # Safety
    /// `slot` stays valid (readable, holding null or an object of this heap) until popped.
    #[inline]
    pub unsafe fn push_root(&self, slot: *mut *mut u8) {
        self.check_attached("push_root");
        // SAFETY: rule 2.
        unsafe { self.local() }.stack.roots.push(slot.cast());
    }

    /// Pops `n` root slots; aborts if fewer are pushed.
    #[inline]
    pub fn pop_roots(&self, n: usize) {
        self.check_attached("pop_roots");
        // SAFETY: rule 2.
        let roots = &mut unsafe { self.local() }.stack.roots;
        match roots.len().checked_sub(n) {
            Some(keep) => roots.truncate(keep),
            None => misuse::abort(format_args!(
                "pop_roots(): popping {n} roots but only {} are pushed (mutator {:p})",
                roots.len(),
                self
            )),
        }
    }

    /// Roots on the shadow stack.
    pub fn roots_len(&self) -> usize {
        // SAFETY: rule 2.
        unsafe { self.local() }.stack.roots.len()
    }

    /// Enters native code: until `leave_native`, collections do not wait for this mutator,
    /// which must not touch the heap.
    pub fn enter_native(&self) {
        self.check_attached("enter_native");
        if self.heap.mark.marking.load(Ordering::Relaxed) {
            self.flush_barrier();
        }
        self.heap.world.enter_native(&self.sig);
    }

    /// Leaves native code, waiting for a running collection to end first.
    pub fn leave_native(&self) {
        if self.sig.status.load(Ordering::Relaxed) != NATIVE {
            misuse::abort(format_args!(
                "leave_native(): mutator {self:p} is not in native code"
            ));
        }
        if self.heap.world.leave_native(&self.sig) & DETACHED != 0 {
            misuse::detached("leave_native", (self as *const Self).cast());
        }
    }

    /// The heap this mutator allocates from.
    pub fn heap(&self) -> &'static Heap {
        self.heap
    }
}

/// Takes back what cache `c` held, if anything: marks black the slots it handed out while
/// marking (`collect` rule 5), and gives the span back to the heap.
pub(crate) fn give_back(heap: &Heap, c: &mut AllocCache, keep_partial: bool) {
    if let Some(r) = c.retire() {
        if let Some(from) = r.black {
            heap.send_black(r.span, from, r.free_index);
        }
        // SAFETY: the cache held the span and has let go of it (`retire`).
        unsafe { heap.uncache_span(r.span, r.free_index, keep_partial) };
    }
}

/// Attaches a new mutator for the calling thread.
pub(crate) fn attach(heap: &'static Heap) -> *mut MutatorState {
    let mut w = heap.world_lock();
    while w.collecting {
        w = crate::sync::wait(&heap.world.resumed, w);
    }
    let reuse = if w.detached.len() > crate::heap::QUARANTINE {
        w.detached.pop_front()
    } else {
        None
    };
    let m = match reuse {
        Some(m) => {
            // SAFETY: detached records are valid and unused (quarantined).
            unsafe {
                (*m).sig.poll.store(0, Ordering::Relaxed);
                (*m).sig.status.store(RUNNING, Ordering::Relaxed);
                (*m).sig.scan.store(DONE, Ordering::Relaxed);
            }
            m
        }
        None => Box::into_raw(Box::new(MutatorState::new(heap))),
    };
    w.mutators.push(m);
    m
}

/// Detaches `m`: its caches go back to the heap, its roots stop being roots.
///
/// # Safety
/// `m` is an attached mutator owned by the calling thread.
pub(crate) unsafe fn detach(m: *mut MutatorState) {
    // SAFETY: the caller's contract.
    let st = unsafe { &*m };
    st.check_attached("detach");
    if st.sig.status.load(Ordering::Relaxed) == NATIVE {
        st.leave_native();
    }
    let w = st.heap.world_lock();
    let mut w = st.park(w);
    // A detaching mutator's stack is gone: nothing to scan (`collect` rule 3); its buffer
    // and its black slots go to the collector.
    st.flush_barrier();
    st.sig.scan.store(DONE, Ordering::SeqCst);
    // SAFETY: rule 2: the owner, running, holding `world` so the world cannot be stopped.
    unsafe { st.release_caches(true) };
    {
        // SAFETY: as above.
        let local = unsafe { st.local() };
        local.stack.clear();
        local.caches.clear();
        local.wbuf.clear();
        crate::pool::orphan(&mut local.pools);
    }
    w.mutators.retain(|&x| x != m);
    st.heap.world.parked.notify_all();
    st.sig.poll.store(DETACHED, Ordering::Release);
    w.detached.push_back(m);
}
