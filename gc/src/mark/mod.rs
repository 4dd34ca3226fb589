//! Marking: tri-colour with explicit grey stacks, by several markers at once (`collect`):
//! the collector thread, the mark workers (`worker`) and assisting mutators (`assist`).
//!
//! White objects have a clear mark bit; grey ones are marked and on some marker's stack or in
//! the shared work list (`work`); black ones are marked and scanned (`scan`). The stacks are
//! heap-allocated vectors, so a million-node list is marked in constant native stack. Mark
//! bits are set only by markers, atomically (`collect` rule 8): of two markers reaching an
//! object, exactly one greys it.
//!
//! While the world runs, objects are read with relaxed atomic loads (mutators store into them
//! through `write`), and a value found in a slot is followed if it points into an object slot
//! of this heap: whether the slot is allocated is not known then (the owning cache keeps that
//! to itself), and a reachable slot never holds a freed object's address. With the world
//! stopped (mark termination) a value into a free slot is skipped, and reported in
//! verification mode (`verify`), which then checks that no black object points to a white one.
//!
//! Files: this one (a marker: shading, draining), `work` (sharing grey objects between
//! markers, the mutators' queue), `scan` (reading an object's pointer slots, oblets),
//! `worker` (dedicated mark workers), `assist` (mark assists and their pacing), `verify`.

mod assist;
mod scan;
pub(crate) mod state;
mod verify;
mod work;
pub(crate) mod worker;

pub(crate) use verify::verify;

use crate::heap::Heap;
use crate::misuse;
use crate::mutator::MutatorState;
use crate::roots::MarkRoots;
use crate::span::GcSpan;
use crate::spanmap;
use scan::{oblet_reps, prefetch, scan_entry};
use std::sync::atomic::Ordering;

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
    /// Of `marked_bytes`, those already added to `MarkState::mark_progress`.
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

    /// The world has stopped (mark termination): allocation state is exact from here on.
    pub(crate) fn stop_the_world(&mut self) {
        self.concurrent = false;
    }

    /// Shades everything mutator `m`'s shadow stack and handle arena hold.
    ///
    /// # Safety
    /// The collector holds `m`'s stack scan (`collect` rule 3), or the world is stopped.
    pub(crate) unsafe fn mutator_roots(&mut self, m: &MutatorState) {
        // SAFETY: the caller's contract: the owner does not touch `local` meanwhile.
        let local = unsafe { &*m.local.get() };
        local.stack.each_root(|v| self.root_value(v));
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
            if r.has_keys.load(Ordering::Acquire) {
                self.mark_values_of(r.slot(i));
            }
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
                if heap.mark.work_wanted.load(Ordering::Relaxed) {
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

    /// `ephemeron` rule 2: marks the values of key `key`, just marked.
    #[cold]
    fn mark_values_of(&mut self, key: usize) {
        // SAFETY: a marker's `heap` is its heap's address, and heaps are never freed.
        let heap = unsafe { &*(self.heap as *const Heap) };
        let mut values = Vec::new();
        heap.ephemeron_values(key, &mut values);
        for v in values {
            self.mark(v);
        }
    }

    /// Shades what object `obj` points to, without marking `obj` (a finalizable object's
    /// referents, `finalize` rule 2).
    pub(crate) fn mark_referents(&mut self, obj: usize) {
        let Some(r) = spanmap::in_use(obj, self.heap) else {
            return;
        };
        if r.reps == 0 {
            return;
        }
        let mut values = Vec::new();
        scan::scan(r, obj, |v| values.push(v));
        for v in values {
            self.root_value(v);
        }
    }
}

impl MarkRoots for Marker {
    unsafe fn root(&mut self, slot: *const usize) {
        // SAFETY: the caller's contract.
        unsafe { Marker::root(self, slot) }
    }

    fn root_value(&mut self, v: usize) {
        Marker::root_value(self, v)
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
