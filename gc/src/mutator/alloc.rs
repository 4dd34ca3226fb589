//! Allocation: the fast path (`alloc`: a safepoint check, the type's cache, the heap
//! profile's countdown) and the slow paths that refill a cache from the heap, allocate large
//! objects and arrays, pay marking assists and wait at the goal (`lib.rs`, "Allocation").

use super::cache::AllocCache;
use super::{Local, MutatorState, NO_SAMPLE, give_back};
use crate::heap::{kind, small_class};
use crate::misuse;
use crate::object::{BYTES, TypeId, TypeInfo};
use std::ptr;
use std::sync::atomic::Ordering;

/// A fresh `Local::sample_left`: the profiler's next gap, or `NO_SAMPLE` while it is off.
fn countdown() -> i64 {
    tricolor_alloc::profile::next_sample_gap()
        .map_or(NO_SAMPLE, |g| g.min(NO_SAMPLE as u64 - 1) as i64)
}

/// The bytes a small object of `class` holds.
#[inline(always)]
fn class_size(class: usize) -> usize {
    tricolor_alloc::size_class::CLASSES[class].size as usize
}

/// The bytes a large object of `bytes` holds: whole pages.
fn large_held(bytes: usize) -> usize {
    bytes.next_multiple_of(tricolor_alloc::size_class::PAGE_SIZE)
}

impl MutatorState {
    /// Allocates a zeroed object of registered type `ty`; null only when the heap cannot
    /// grow. Aborts if `ty` is not registered in this heap.
    #[inline]
    pub fn alloc(&self, ty: TypeId) -> *mut u8 {
        if self.sig.poll.load(Ordering::Relaxed) == 0 {
            // SAFETY: rule 2; the reference ends before any slow path.
            let local = unsafe { self.local() };
            if let Some(c) = local.caches.single.get_mut(ty as usize)
                && let Some(p) = c.take()
            {
                // The heap profile's countdown: one subtraction from a field beside the
                // caches; reaches zero only while sampling (`Local::sample_left`).
                local.sample_left -= c.size as i64;
                if local.sample_left < 0 {
                    let size = c.size;
                    return self.sample_object(p, self.type_of(ty, "alloc"), size);
                }
                return p;
            }
        }
        self.alloc_slow(ty)
    }

    /// The countdown ran out: records `p`, an object of type `info` just allocated, in the
    /// heap profile when sampling is on, with its type name, and draws the next countdown.
    /// `held`: the bytes the heap holds for the object (its size class's size, or whole
    /// pages), which the countdown counted and the profile scales by.
    #[cold]
    #[inline(never)]
    fn sample_object(&self, p: *mut u8, info: &'static TypeInfo, held: usize) -> *mut u8 {
        // SAFETY: rule 2; no other reference to `Local` is live here.
        let local = unsafe { self.local() };
        local.sample_left = countdown();
        if local.sample_left == NO_SAMPLE || p.is_null() {
            return p;
        }
        if let Some(bucket) = tricolor_alloc::profile::record_object(held, &info.name) {
            self.heap.add_profile_special(p, bucket);
        }
        p
    }

    /// Counts an allocation the heap holds `held` bytes for down (`alloc`'s fast path counts
    /// its own), sampling when due.
    #[inline(always)]
    fn counted(&self, p: *mut u8, info: &'static TypeInfo, held: usize) -> *mut u8 {
        // SAFETY: rule 2; the reference ends before `sample_object`.
        let local = unsafe { self.local() };
        local.sample_left -= held as i64;
        if local.sample_left < 0 {
            return self.sample_object(p, info, held);
        }
        p
    }

    /// On a path that takes a new span or a large object: if the profiler's epoch changed
    /// (sampling turned on, off, or to a new rate), restarts this mutator's countdown.
    fn check_sample_epoch(&self) {
        // SAFETY: rule 2; no other reference to `Local` is live here.
        let local = unsafe { self.local() };
        let epoch = tricolor_alloc::profile::epoch();
        if local.sample_epoch != epoch {
            local.sample_epoch = epoch;
            local.sample_left = countdown();
        }
    }

    #[cold]
    #[inline(never)]
    fn alloc_slow(&self, ty: TypeId) -> *mut u8 {
        self.safepoint();
        let info = self.type_of(ty, "alloc");
        let (p, held) = match small_class(info.size) {
            None => (self.alloc_large(info, info.size), large_held(info.size)),
            Some(class) => {
                let kind = kind(info, class);
                let p = self.alloc_small(info, class, kind, |local| {
                    local.caches.for_type(ty as usize)
                });
                (p, class_size(class))
            }
        };
        self.counted(p, info, held)
    }

    /// Allocates a zeroed array of `len` elements of type `elem`; null if the heap cannot
    /// grow or the size overflows.
    pub fn alloc_array(&self, elem: TypeId, len: usize) -> *mut u8 {
        self.safepoint();
        let info = self.type_of(elem, "alloc_array");
        let Some(bytes) = info.size.checked_mul(len) else {
            return ptr::null_mut();
        };
        self.alloc_sized(info, bytes.max(1))
    }

    /// Allocates `size` zeroed pointer-free bytes, never scanned.
    pub fn alloc_bytes(&self, size: usize) -> *mut u8 {
        self.safepoint();
        let info = self.type_of(BYTES, "alloc_bytes");
        self.alloc_sized(info, size.max(1))
    }

    fn alloc_sized(&self, info: &'static TypeInfo, bytes: usize) -> *mut u8 {
        if bytes > isize::MAX as usize / 2 {
            return ptr::null_mut();
        }
        let (p, held) = match small_class(bytes) {
            None => (self.alloc_large(info, bytes), large_held(bytes)),
            Some(class) => {
                let kind = kind(info, class);
                let p = self.alloc_small(info, class, kind, |local| local.caches.for_kind(kind));
                (p, class_size(class))
            }
        };
        self.counted(p, info, held)
    }

    /// Small allocation through the cache `pick` selects: refills it (collecting first when
    /// the heap has reached its goal) when it is used up.
    fn alloc_small(
        &self,
        info: &'static TypeInfo,
        class: usize,
        kind: u64,
        pick: impl Fn(&mut Local) -> &mut AllocCache,
    ) -> *mut u8 {
        loop {
            {
                // SAFETY: rule 2; dropped before `grow_with` below, which may collect.
                let c = pick(unsafe { self.local() });
                if let Some(p) = c.take() {
                    return p;
                }
                give_back(self.heap, c, false);
            }
            self.check_sample_epoch();
            let span_bytes = crate::span::span_pages(class) * tricolor_alloc::size_class::PAGE_SIZE;
            let Some(s) = self.grow_with(span_bytes, || self.heap.cache_span(info, class, kind))
            else {
                return ptr::null_mut();
            };
            let marking = self.heap.mark.marking.load(Ordering::Relaxed);
            // SAFETY: rule 2.
            pick(unsafe { self.local() }).load(s, marking);
        }
    }

    fn alloc_large(&self, info: &'static TypeInfo, bytes: usize) -> *mut u8 {
        self.check_sample_epoch();
        self.grow_with(bytes, || {
            ptr::NonNull::new(self.heap.alloc_large(info, bytes))
        })
        .map_or(ptr::null_mut(), |p| p.as_ptr())
    }

    /// `bytes` of memory from the heap through `get`. While marking, pays for them with
    /// marking work first (Go's assist ratio, `pay_for`). Asks for a cycle when allocation
    /// has reached the trigger; when it has reached the goal while marking, assists until no
    /// work is left and then waits for the cycle; runs a full cycle and retries once when the
    /// page heap cannot grow.
    fn grow_with<T>(&self, bytes: usize, get: impl Fn() -> Option<T>) -> Option<T> {
        let heap = self.heap;
        if heap.mark.marking.load(Ordering::Relaxed) {
            self.pay_for(bytes);
        }
        if heap.over_trigger() {
            heap.request_cycle();
            if heap.over_goal()
                && let Some(n) = heap.cycles.pending()
            {
                let t = std::time::Instant::now();
                if heap.mark.marking.load(Ordering::Relaxed) {
                    self.assist(usize::MAX);
                }
                if heap.over_goal() && heap.cycles.pending() == Some(n) {
                    self.wait_outside(|| heap.cycles.wait_completed(n));
                }
                let ns = t.elapsed().as_nanos() as u64;
                heap.times.wait_total_ns.fetch_add(ns, Ordering::Relaxed);
                heap.times.wait_max_ns.fetch_max(ns, Ordering::Relaxed);
            }
        }
        get().or_else(|| {
            self.collect_now();
            get()
        })
    }

    fn type_of(&self, ty: TypeId, op: &str) -> &'static TypeInfo {
        self.check_attached(op);
        match self.heap.types.get(ty) {
            Some(t) => t,
            None => misuse::abort(format_args!(
                "{op}(): type {ty} is not registered in this heap"
            )),
        }
    }
}
