//! Marking: tri-colour with an explicit grey stack, run by the collector thread (`collect`).
//!
//! White objects have a clear mark bit; grey ones are marked and on the stack; black ones are
//! marked and scanned. The stack is a heap-allocated vector, so a million-node list is marked
//! in constant native stack. Only the collector thread sets mark bits (`collect` rule 8).
//!
//! While the world runs, objects are read with relaxed atomic loads (mutators store into them
//! through `write`), and a value found in a slot is followed if it points into an object slot
//! of this heap: whether the slot is allocated is not known then (the owning cache keeps that
//! to itself), and a reachable slot never holds a freed object's address. With the world
//! stopped (mark termination) a value into a free slot is skipped, and reported in
//! verification mode, which then checks that no black object points to a white one.

use crate::heap::{Central, Heap};
use crate::misuse;
use crate::mutator::MutatorState;
use crate::span::{GcSpan, IN_USE};
use crate::spanmap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Grey objects moved to or from `Heap::work` at a time.
const BATCH: usize = 256;

/// One marker's state for one cycle: the collector thread's, or an assisting mutator's.
pub(crate) struct Marker {
    heap: usize,
    /// The heap whose `work` list this marker shares (concurrent markers); `None` for
    /// verification's private marker.
    share: Option<&'static Heap>,
    stack: Vec<(*const GcSpan, usize)>,
    /// The span of the last object marked: pointers often lead to a neighbour, which then
    /// needs no span-map lookup.
    last: Option<&'static GcSpan>,
    /// Bytes of objects marked.
    pub(crate) marked_bytes: usize,
    /// Of `marked_bytes`, those already added to `Heap::mark_progress`.
    published: usize,
    /// Bytes of root slots scanned.
    pub(crate) root_bytes: usize,
    verify: bool,
    /// Mutators run while this marks (module docs).
    concurrent: bool,
}

impl Marker {
    pub(crate) fn new(heap: usize, verify: bool, concurrent: bool) -> Self {
        Self {
            heap,
            share: None,
            stack: Vec::with_capacity(1024),
            last: None,
            marked_bytes: 0,
            published: 0,
            root_bytes: 0,
            verify,
            concurrent,
        }
    }

    /// A marker of `heap` that shares work with the others through `Heap::work`.
    pub(crate) fn shared(heap: &'static Heap) -> Self {
        let mut m = Self::new(heap.addr(), heap.config.verify, true);
        m.share = Some(heap);
        m
    }

    /// Adds what this marker marked since last time to `Heap::mark_progress`.
    fn publish(&mut self, heap: &Heap) {
        heap.mark_progress
            .fetch_add(self.marked_bytes - self.published, Ordering::Relaxed);
        self.published = self.marked_bytes;
    }

    /// The bytes marked since the last call (published first), for a long-lived marker that
    /// reports as it goes.
    pub(crate) fn take_marked(&mut self) -> usize {
        if let Some(heap) = self.share {
            self.publish(heap);
        }
        self.published = 0;
        std::mem::take(&mut self.marked_bytes)
    }

    /// True when this marker holds no grey object.
    pub(crate) fn idle(&self) -> bool {
        self.stack.is_empty()
    }

    /// Takes a batch of grey objects from `Heap::work`; false if there is none (and asks the
    /// other markers to spill some).
    pub(crate) fn steal(&mut self) -> bool {
        let Some(heap) = self.share else { return false };
        match heap.work_lock().pop() {
            Some(batch) => {
                self.stack
                    .extend(batch.into_iter().map(|(s, o)| (s as *const GcSpan, o)));
                true
            }
            None => {
                heap.work_wanted.store(true, Ordering::Relaxed);
                false
            }
        }
    }

    /// Moves every grey object this marker holds to `Heap::work` (an assist that stops, or
    /// parks for a stop of the world, leaves its work to the others).
    pub(crate) fn spill_all(&mut self) {
        if let Some(heap) = self.share {
            self.give(heap, self.stack.len());
        }
    }

    /// Gives half of this marker's grey objects to `Heap::work` when another marker wants
    /// work (checked every few dozen objects by `drain`).
    #[cold]
    fn share_half(&mut self, heap: &Heap) {
        heap.work_wanted.store(false, Ordering::Relaxed);
        self.give(heap, (self.stack.len() / 2).min(4 * BATCH));
    }

    /// Moves the `n` oldest grey objects to `Heap::work`, in batches. The bottom of the stack
    /// holds siblings high in the graph, with the largest subgraphs below them, so a taker
    /// gets the most work per batch.
    fn give(&mut self, heap: &Heap, n: usize) {
        if n == 0 {
            return;
        }
        let mut w = heap.work_lock();
        for chunk in self.stack[..n].chunks(BATCH) {
            w.push(chunk.iter().map(|&(s, o)| (s as usize, o)).collect());
        }
        drop(w);
        self.stack.drain(..n);
    }

    /// The world has stopped (mark termination): allocation state is exact from here on.
    pub(crate) fn stop_the_world(&mut self) {
        self.concurrent = false;
    }

    /// Takes the mutators' work from the queue: grey values are shaded, black ranges marked
    /// without scanning (`collect` rule 5). True if there was any.
    pub(crate) fn take_queue(&mut self, heap: &Heap) -> bool {
        let (grey, black) = {
            let mut q = heap.queue_lock();
            (std::mem::take(&mut q.grey), std::mem::take(&mut q.black))
        };
        for &(s, from, to) in &black {
            // SAFETY: the span was in use when its slots were handed out, and no span is
            // freed while marking (rule 8).
            let r = unsafe { &*(s as *const GcSpan) };
            for i in from..to {
                // Slots whose alloc bit is set held objects before the cache took the span;
                // the cache handed out only the others.
                // SAFETY: alloc bits do not change while marking (nothing sweeps).
                let old = unsafe { r.alloc_word(i as usize / 64) } & (1 << (i % 64)) != 0;
                if !old && r.set_mark(i) {
                    self.marked_bytes += r.size;
                }
            }
        }
        for &v in &grey {
            self.mark(v);
        }
        !grey.is_empty() || !black.is_empty()
    }

    /// Shades everything mutator `m`'s shadow stack and handle arena hold.
    ///
    /// # Safety
    /// The collector holds `m`'s stack scan (`collect` rule 3), or the world is stopped.
    pub(crate) unsafe fn mutator_roots(&mut self, m: &MutatorState) {
        // SAFETY: the caller's contract: the owner does not touch `local` meanwhile.
        let local = unsafe { &*m.local.get() };
        local.each_root(|v| self.root_value(v));
    }

    /// Shades the object `v` points into, if it is one of this heap's.
    #[inline]
    pub(crate) fn mark(&mut self, v: usize) {
        if v < 4096 {
            return;
        }
        // No span is freed or reused while marking (rule 8): `last` stays valid.
        let r = match self.last {
            Some(r) if r.covers(v) => r,
            _ => {
                let Some(r) = spanmap::in_use(v, self.heap) else {
                    return;
                };
                self.last = Some(r);
                r
            }
        };
        let Some(i) = r.index_of(v) else { return };
        // SAFETY: with the world stopped and caches flushed the collector is the holder.
        if !self.concurrent && !unsafe { r.is_allocated(i) } {
            if self.verify {
                misuse::abort(format_args!(
                    "verify: a reachable slot holds {v:#x}, a pointer into a free {}-byte slot (dangling pointer)",
                    r.size
                ));
            }
            return;
        }
        if r.set_mark(i) {
            self.marked_bytes += r.size;
            if r.nelems == 1 && r.reps > oblet_reps(r) {
                // A large object: one entry per oblet, last first (LIFO: scanned in order).
                let step = oblet_reps(r) * r.ty.size;
                let n = r.reps.div_ceil(oblet_reps(r));
                for k in (0..n).rev() {
                    self.stack.push((r, r.start + k * step));
                }
            } else if r.reps != 0 {
                self.stack.push((r, r.slot(i)));
            }
        }
    }

    /// Scans grey objects until none is left.
    pub(crate) fn drain(&mut self) {
        self.drain_budget(usize::MAX);
    }

    /// Scans up to `budget` grey objects; true when none is left.
    ///
    /// Objects popped from the stack pass through a small FIFO whose entries are prefetched
    /// on entry, so an object's cache miss overlaps the scanning of the ones ahead of it
    /// (scanning is otherwise one dependent miss per object; Boehm prefetches the same way).
    /// Every 64 objects a shared marker checks whether another marker wants work.
    pub(crate) fn drain_budget(&mut self, budget: usize) -> bool {
        const AHEAD: usize = 8;
        let mut ring = [(std::ptr::null::<GcSpan>(), 0usize); AHEAD];
        let (mut head, mut len) = (0usize, 0usize);
        let mut done = 0usize;
        loop {
            if done % 64 == 63
                && let Some(heap) = self.share
            {
                self.publish(heap);
                if heap.work_wanted.load(Ordering::Relaxed) {
                    self.share_half(heap);
                }
            }
            while len < AHEAD {
                let Some(e) = self.stack.pop() else { break };
                prefetch(e.1);
                ring[(head + len) % AHEAD] = e;
                len += 1;
            }
            if len == 0 {
                if let Some(heap) = self.share {
                    self.publish(heap);
                }
                return true;
            }
            if done >= budget {
                if let Some(heap) = self.share {
                    self.publish(heap);
                }
                // Put the prefetched entries back for later.
                for k in 0..len {
                    self.stack.push(ring[(head + k) % AHEAD]);
                }
                return false;
            }
            let (s, obj) = ring[head];
            head = (head + 1) % AHEAD;
            len -= 1;
            done += 1;
            // SAFETY: pushed from an in-use span; none is freed while marking (rule 8).
            let r = unsafe { &*s };
            scan_entry(r, obj, |v| self.mark(v));
        }
    }

    /// Marks from one root slot.
    ///
    /// # Safety
    /// `slot` is readable.
    pub(crate) unsafe fn root(&mut self, slot: *const usize) {
        // SAFETY: the caller's contract.
        self.root_value(unsafe { slot.read_volatile() });
    }

    /// Marks from one root value.
    pub(crate) fn root_value(&mut self, v: usize) {
        self.root_bytes += 8;
        self.mark(v);
    }
}

/// Starts loading the cache line at `addr`.
#[inline(always)]
fn prefetch(addr: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint: it never faults, whatever the address.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(addr as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

/// Bytes of a large object scanned as one unit of grey work (Go's 128 KiB oblets): a large
/// pointer array becomes many entries, so several markers share it and an assist's budget
/// bounds how long it scans.
const OBLET: usize = 128 * 1024;

/// Copies of the type scanned as one unit in span `r`: all of a small object's, an oblet's
/// worth of a large one's.
#[inline]
fn oblet_reps(r: &GcSpan) -> usize {
    (OBLET / r.ty.size).max(1)
}

/// Calls `f` with every pointer-slot value of copies `reps` of the type at object `obj` in
/// span `r`, last slot first: the grey stack is LIFO, so the first slot's object is then
/// scanned first, and a structure built depth-first (parent, then its first child's subtree)
/// is marked in allocation order, walking memory forwards.
#[inline]
fn scan_reps(r: &GcSpan, obj: usize, reps: std::ops::Range<usize>, mut f: impl FnMut(usize)) {
    let ty = r.ty;
    for rep in reps.rev() {
        let base = obj + rep * ty.size;
        for &w in ty.words.iter().rev() {
            // SAFETY: `obj` is an object slot of `r`; the type's pointer words lie within
            // each of its `reps` copies (checked at registration), all inside the slot, 8-byte
            // aligned; mutators store to them only atomically (`write`).
            let cell = unsafe { AtomicUsize::from_ptr((base + w as usize * 8) as *mut usize) };
            f(cell.load(Ordering::Relaxed));
        }
    }
}

/// Scans a whole object.
#[inline]
fn scan(r: &GcSpan, obj: usize, f: impl FnMut(usize)) {
    scan_reps(r, obj, 0..r.reps, f)
}

/// Scans one grey entry: a small object, or the oblet of a large one that starts at `at`.
#[inline]
fn scan_entry(r: &GcSpan, at: usize, f: impl FnMut(usize)) {
    if r.nelems == 1 && r.reps > oblet_reps(r) {
        let first = (at - r.start) / r.ty.size;
        scan_reps(r, r.start, first..(first + oblet_reps(r)).min(r.reps), f)
    } else {
        scan(r, at, f)
    }
}

/// Reports roots to the marker: handed to root callbacks.
pub struct RootVisitor<'a> {
    pub(crate) marker: &'a mut Marker,
}

impl RootVisitor<'_> {
    /// Reports a root slot: the object it holds (if any) stays alive.
    ///
    /// # Safety
    /// `slot` is readable.
    pub unsafe fn visit(&mut self, slot: *const *mut u8) {
        // SAFETY: the caller's contract.
        unsafe { self.marker.root(slot.cast()) };
    }

    /// Reports a root value: the object it points into (if any) stays alive.
    pub fn visit_value(&mut self, obj: *const u8) {
        self.marker.root_value(obj as usize);
    }
}

/// Verification: no marked (black) object points to a white one, across every span.
pub(crate) fn verify(heap: usize, c: &Central) {
    let mut m = Marker::new(heap, true, false);
    for &s in c.all.iter().chain(c.large.iter()) {
        // SAFETY: listed records are valid; the world is stopped.
        let r = unsafe { &*s };
        if r.state.load(Ordering::Relaxed) != IN_USE || r.reps == 0 {
            continue;
        }
        for i in 0..r.nelems {
            if !r.is_marked(i) {
                continue;
            }
            scan(r, r.slot(i), |v| {
                let before = m.marked_bytes;
                m.mark(v);
                if m.marked_bytes != before {
                    misuse::abort(format_args!(
                        "verify: black object {:#x} ({}) points to white object {v:#x}",
                        r.slot(i),
                        r.ty.name
                    ));
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::{Config, Heap, Mutator};

    /// A million-node list is marked without recursion (a recursive marker overflows the
    /// test thread's 2 MiB stack long before).
    #[test]
    fn deep_list_marks_in_constant_stack() {
        let heap = Heap::new(Config::default());
        let node = heap.register_type("node", 16, &[0]).unwrap();
        let m = Mutator::attach(heap);
        let mut head: *mut u8 = std::ptr::null_mut();
        // SAFETY: `head` outlives the root.
        unsafe { m.push_root(&mut head) };
        for _ in 0..1_000_000 {
            let n = m.alloc(node);
            // SAFETY: `n` is a fresh object of `node`, whose slot 0 is a pointer.
            unsafe { m.write(n, n.cast(), head) };
            head = n;
        }
        m.collect();
        let s = heap.stats();
        assert_eq!(s.live_bytes, 16_000_000);
        let mut n = 0;
        let mut p = head;
        while !p.is_null() {
            n += 1;
            // SAFETY: live list nodes.
            p = unsafe { *p.cast::<*mut u8>() };
        }
        assert_eq!(n, 1_000_000);
        m.pop_roots(1);
    }
}
