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

use crate::handshake;
use crate::heap::{Heap, kind, small_class};
use crate::misuse;
use crate::object::{BYTES, TypeId, TypeInfo};
use crate::span::GcSpan;
use crate::world::Signals;
use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::ptr;
use std::sync::MutexGuard;
use std::sync::atomic::Ordering;

pub(crate) use crate::handshake::{DONE, NATIVE, PENDING, RUNNING};
pub(crate) use crate::world::{DETACHED, FLUSH, SCAN, STOP};

/// Barrier-buffer entries (old and new values) before it goes to the collector: 256 writes,
/// Go 1.21's 512 pointers.
pub(crate) const WBUF: usize = 512;

/// `AllocCache::black_from` when the cache was loaded while not marking.
const NOT_BLACK: u32 = u32::MAX;

/// One kind's allocation cache: a span and a 64-slot window of its free bits.
pub(crate) struct AllocCache {
    span: *mut GcSpan,
    /// Free slots (1 bits) in the window starting at slot `base`.
    bits: u64,
    base: u32,
    nelems: u32,
    size: usize,
    start: usize,
    needzero: bool,
    /// Loaded while marking: the slots handed out from here on are new objects, to be marked
    /// black when the span leaves the cache (`collect` rule 5); else `NOT_BLACK`.
    black_from: u32,
}

impl AllocCache {
    const EMPTY: AllocCache = AllocCache {
        span: ptr::null_mut(),
        bits: 0,
        base: 0,
        nelems: 0,
        size: 0,
        start: 0,
        needzero: false,
        black_from: NOT_BLACK,
    };

    /// The next free slot, zeroed; `None` when the span is used up. The fast path: a
    /// count-trailing-zeros and a clear-lowest-bit.
    #[inline(always)]
    fn take(&mut self) -> Option<*mut u8> {
        if self.bits == 0 && !self.next_window() {
            return None;
        }
        let i = self.base + self.bits.trailing_zeros();
        self.bits &= self.bits - 1;
        let p = (self.start + i as usize * self.size) as *mut u8;
        if self.needzero {
            zero(p, self.size);
        }
        Some(p)
    }

    /// Moves the window to the next 64 slots that have a free one.
    #[inline(never)]
    fn next_window(&mut self) -> bool {
        if self.span.is_null() {
            return false;
        }
        loop {
            self.base += 64;
            if self.base >= self.nelems {
                return false;
            }
            // SAFETY: this cache holds the span (rule 2; `span.rs` holder rule).
            let taken = unsafe { (*self.span).alloc_word(self.base as usize / 64) };
            self.bits = !taken & valid(self.base, self.nelems);
            if self.bits != 0 {
                return true;
            }
        }
    }

    /// Loads span `s` (swept, held by this cache); `marking` says whether what it hands out
    /// is allocated black.
    fn load(&mut self, s: *mut GcSpan, marking: bool) {
        // SAFETY: the cache holds `s`.
        let r = unsafe { &*s };
        // SAFETY: as above.
        let o = unsafe { r.owned() };
        let fi = o.free_index;
        let base = fi & !63;
        self.span = s;
        self.base = base;
        self.nelems = r.nelems;
        self.size = r.size;
        self.start = r.start;
        self.needzero = o.needzero;
        self.black_from = if marking { fi } else { NOT_BLACK };
        let below = if fi % 64 == 0 {
            0
        } else {
            (1u64 << (fi % 64)) - 1
        };
        // SAFETY: as above.
        let taken = unsafe { r.alloc_word(base as usize / 64) };
        self.bits = !taken & valid(base, r.nelems) & !below;
    }

    /// The span's allocation position: every slot below it is allocated or was just
    /// handed out (consumed in index order).
    fn free_index(&self) -> u32 {
        if self.bits != 0 {
            self.base + self.bits.trailing_zeros()
        } else {
            (self.base + 64).min(self.nelems)
        }
    }

    /// Gives the span back to the heap.
    fn release(&mut self, heap: &Heap, keep_partial: bool) {
        if self.span.is_null() {
            return;
        }
        let fi = self.free_index();
        if self.black_from != NOT_BLACK && fi > self.black_from {
            heap.send_black(self.span, self.black_from, fi);
        }
        // SAFETY: this cache held the span; it lets go of it here.
        unsafe { heap.uncache_span(self.span, fi, keep_partial) };
        *self = AllocCache::EMPTY;
    }
}

/// Slots of the window at `base` that exist.
#[inline]
fn valid(base: u32, nelems: u32) -> u64 {
    let n = nelems - base;
    if n >= 64 { !0 } else { (1u64 << n) - 1 }
}

/// Zeroes a small object: inline stores for the commonest sizes (a loop would be turned
/// into a `memset` call), `memset` beyond.
#[inline(always)]
fn zero(p: *mut u8, size: usize) {
    let w = p.cast::<[u64; 2]>();
    // SAFETY: `p` is a slot of `size` bytes, 8-aligned (16 B pairs are written only where the
    // size holds them).
    unsafe {
        match size {
            8 => p.cast::<u64>().write(0),
            16 => w.write([0; 2]),
            32 => {
                w.write([0; 2]);
                w.add(1).write([0; 2]);
            }
            48 => {
                w.write([0; 2]);
                w.add(1).write([0; 2]);
                w.add(2).write([0; 2]);
            }
            _ => ptr::write_bytes(p, 0, size),
        }
    }
}

/// A mutator's thread-owned context (rule 2).
pub(crate) struct Local {
    /// Single objects, by type id.
    single: Vec<AllocCache>,
    /// Arrays and byte objects, by kind.
    others: HashMap<u64, AllocCache, KindHash>,
    /// Shadow stack: addresses of slots holding object pointers.
    pub(crate) roots: Vec<*mut usize>,
    /// The typed layer's handle arena: object pointers rooted by open scopes (a `Local`
    /// holds the object pointer itself, so the arena may move as it grows).
    pub(crate) slots: Vec<usize>,
    /// The typed layer's cache of Rust type → type id.
    pub(crate) rust_types: Vec<(std::any::TypeId, TypeId)>,
    /// The barrier buffer: old and new values of slots written while marking.
    pub(crate) wbuf: Vec<usize>,
    /// Marking work (bytes) this mutator owes for what it allocated while marking.
    pub(crate) assist_debt: usize,
    /// Stack scanners by id, called with the shadow stack (`add_stack_scanner`).
    pub(crate) scanners: Vec<(u64, StackScanner)>,
    /// The next scanner id.
    pub(crate) next_scanner: u64,
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

impl Local {
    /// Calls `f` with the value of every root: each pushed shadow-stack slot and each slot of
    /// the typed layer's handle arena.
    pub(crate) fn each_root(&self, mut f: impl FnMut(usize)) {
        for &slot in &self.roots {
            // SAFETY: `push_root`'s contract: the slot is valid until popped. Volatile: the
            // owner writes it as a plain local the compiler must not assume unread.
            f(unsafe { slot.read_volatile() });
        }
        for &v in &self.slots {
            f(v);
        }
        for (_, scan) in &self.scanners {
            scan(&mut |v| f(v));
        }
    }
}

/// The hasher of `Local::others`: a kind is two small integers (type id, size class), and
/// the default SipHash shows as 2% of a profile of the Lox VM's binary trees (whose hash
/// tables are arrays; measured with `perf record` on
/// `tricolor-lox benches/lox/bench/binary_trees.lox`, SipHash in its place); a
/// multiplicative hash suffices.
#[derive(Default, Clone, Copy)]
pub(crate) struct KindHash;

impl std::hash::BuildHasher for KindHash {
    type Hasher = KindHasher;
    fn build_hasher(&self) -> KindHasher {
        KindHasher(0)
    }
}

/// See [`KindHash`].
#[derive(Default)]
pub(crate) struct KindHasher(u64);

impl std::hash::Hasher for KindHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
}

/// A stack scanner (`MutatorState::add_stack_scanner`): reports root values.
pub type StackScanner = Box<dyn Fn(&mut dyn FnMut(usize)) + Send>;

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
                single: Vec::new(),
                others: HashMap::default(),
                roots: Vec::new(),
                slots: Vec::new(),
                rust_types: Vec::new(),
                scanners: Vec::new(),
                next_scanner: 1,
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
            misuse::detached(op, self);
        }
    }

    /// Serves a pending stop (or reports use after detach). Called when `poll` is non-zero.
    #[cold]
    #[inline(never)]
    pub(crate) fn poll_slow(&self, op: &str) {
        let p = self.sig.poll.load(Ordering::Acquire);
        if p & DETACHED != 0 {
            misuse::detached(op, self);
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
            let mut values = Vec::with_capacity(local.roots.len() + local.slots.len());
            local.each_root(|v| values.push(v));
            self.heap
                .stack_scan_bytes
                .fetch_add(values.len() * 8, Ordering::Relaxed);
            self.heap.shade(&values);
        }
        handshake::finish(&self.sig.scan);
        self.sig.poll.fetch_and(!SCAN, Ordering::SeqCst);
        let _q = self.heap.queue_lock();
        self.heap.queue_cv.notify_one();
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

    /// Allocates a zeroed object of registered type `ty`; null only when the heap cannot
    /// grow. Aborts if `ty` is not registered in this heap.
    #[inline]
    pub fn alloc(&self, ty: TypeId) -> *mut u8 {
        if self.sig.poll.load(Ordering::Relaxed) == 0 {
            // SAFETY: rule 2; the reference ends before any slow path.
            let local = unsafe { self.local() };
            if let Some(c) = local.single.get_mut(ty as usize)
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
                    if local.single.len() <= ty as usize {
                        local
                            .single
                            .resize_with(ty as usize + 1, || AllocCache::EMPTY);
                    }
                    &mut local.single[ty as usize]
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
                let p = self.alloc_small(info, class, kind, |local| {
                    local.others.entry(kind).or_insert(AllocCache::EMPTY)
                });
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
                c.release(self.heap, false);
            }
            self.check_sample_epoch();
            let span_bytes = crate::span::span_pages(class) * tricolor_alloc::size_class::PAGE_SIZE;
            let Some(s) = self.grow_with(span_bytes, || self.heap.cache_span(info, class, kind))
            else {
                return ptr::null_mut();
            };
            let marking = self.heap.marking.load(Ordering::Relaxed);
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
        if heap.marking.load(Ordering::Relaxed) {
            self.pay_for(bytes);
        }
        if heap.over_trigger() {
            heap.request_cycle();
            if heap.over_goal()
                && let Some(n) = heap.pending_cycle()
            {
                let t = std::time::Instant::now();
                if heap.marking.load(Ordering::Relaxed) {
                    self.assist(usize::MAX);
                }
                if heap.over_goal() && heap.pending_cycle() == Some(n) {
                    self.wait_outside(|| heap.wait_cycle(n));
                }
                let ns = t.elapsed().as_nanos() as u64;
                heap.wait_total_ns.fetch_add(ns, Ordering::Relaxed);
                heap.wait_max_ns.fetch_max(ns, Ordering::Relaxed);
            }
        }
        get().or_else(|| {
            crate::collect::collect(self);
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
        for c in &mut local.single {
            c.release(self.heap, keep_partial);
        }
        for c in local.others.values_mut() {
            c.release(self.heap, keep_partial);
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
        let local = unsafe { self.local() };
        let id = local.next_scanner;
        local.next_scanner += 1;
        local.scanners.push((id, f));
        id
    }

    /// Removes a stack scanner; false if it was not registered.
    pub fn remove_stack_scanner(&self, id: u64) -> bool {
        self.check_attached("remove_stack_scanner");
        // SAFETY: rule 2.
        let local = unsafe { self.local() };
        let before = local.scanners.len();
        local.scanners.retain(|(i, _)| *i != id);
        local.scanners.len() != before
    }

    /// Pushes a root slot onto the shadow stack.
    ///
    /// # Safety
    /// `slot` stays valid (readable, holding null or an object of this heap) until popped.
    #[inline]
    pub unsafe fn push_root(&self, slot: *mut *mut u8) {
        self.check_attached("push_root");
        // SAFETY: rule 2.
        unsafe { self.local() }.roots.push(slot.cast());
    }

    /// Pops `n` root slots; aborts if fewer are pushed.
    #[inline]
    pub fn pop_roots(&self, n: usize) {
        self.check_attached("pop_roots");
        // SAFETY: rule 2.
        let roots = &mut unsafe { self.local() }.roots;
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
        unsafe { self.local() }.roots.len()
    }

    /// Enters native code: until `leave_native`, collections do not wait for this mutator,
    /// which must not touch the heap.
    pub fn enter_native(&self) {
        self.check_attached("enter_native");
        if self.heap.marking.load(Ordering::Relaxed) {
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
            misuse::detached("leave_native", self);
        }
    }

    /// Runs a full collection now (Go's `runtime.GC`).
    pub fn collect(&self) {
        self.check_attached("collect");
        crate::collect::collect(self);
    }

    /// The heap this mutator allocates from.
    pub fn heap(&self) -> &'static Heap {
        self.heap
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
        local.roots.clear();
        local.slots.clear();
        local.single.clear();
        local.scanners.clear();
        local.others.clear();
        local.wbuf.clear();
        crate::pool::orphan(&mut local.pools);
    }
    w.mutators.retain(|&x| x != m);
    st.heap.world.parked.notify_all();
    st.sig.poll.store(DETACHED, Ordering::Release);
    w.detached.push_back(m);
}
