//! The API layer: what `GlobalAlloc` and the C ABI call. It picks a size class or a
//! page run, checks every pointer it is given back, and implements `realloc`.
//!
//! # The always-on pointer check
//! Every `free`, `dealloc`, `realloc` and `usable_size` looks the pointer up in the pagemap
//! and confirms, before touching any list, that it is a live block of ours:
//! 1. its page is in memory we map, and its span is in use;
//! 2. for a small span, the offset is on an object boundary (multiply-shift, no division) and
//!    below the span's bump mark (the block was handed out at least once), and the block does
//!    not carry its free canary (see `block`): otherwise it is a double free;
//! 3. for a large span, the pointer is the span's start (re-checked under the page-heap lock
//!    when the span is freed, so two racing frees of one large block cannot both succeed).
//!
//! A failure aborts with `tricolor: <op>: invalid pointer 0x…` (or `double free detected`).
//! This costs two dependent loads and a few compares per free; the sized `dealloc` path uses
//! the layout's class and verifies it against the span (a mismatched layout aborts too).
//!
//! The check is split in two. [`live_small`], inlined into every free, confirms the common
//! case (a live block of a small span, of the expected class when the layout gives one) with
//! the fewest instructions. Everything else (a large run, a sampled block, any misuse, a
//! double free among it) goes to one cold function, entered by a tail call, that runs the
//! full [`check`] and names the fault, so the hot path carries no error reporting and makes
//! no call that returns to it: it saves no register. Rule 2's range test
//! `off < span bytes` is implied, not tested (`Span::holds_handed_out`, which both checks use):
//! `index * size == off` (a product of two 32-bit numbers, exact in 64 bits) and
//! `index < bump <= objects` give `off < objects * size <= bytes`, whatever the multiply-shift
//! made of an `off` out of range.
//! For the same reason rule 1's lookup needs no bound on the address: an address beyond the
//! 47-bit address space, looked up modulo 2^47, finds a record it is more than 2^47 bytes away
//! from (or below), so `off` cannot be a product below `objects * size`.
//! Not detected: two threads freeing the same small block at the same instant (that needs an
//! atomic per free). Every block has room for its canary: malloc's smallest class is 16 B.

use crate::block::Canary;
use crate::heap::HEAP;
use crate::misuse::{self, Misuse};
use crate::percpu;
use crate::size_class::{
    ALIGNED_BY_EVERY_CLASS, CLASSES, MAX_SMALL_SIZE, NUM_CLASSES, PAGE_SHIFT, PAGE_SIZE, class_for,
};
use crate::slab;
use crate::span::{Span, SpanState};
use crate::thread_cache;

/// One block of `class` (serving a request of `size` bytes aligned to `align`) from the
/// front end in use. The two plain modes are compared exactly, so everything else (the first
/// allocation, sampling through the out-of-line countdown) is one cold call away and costs the
/// fast path nothing. (The per-CPU lists sample without leaving the first arm: their counters
/// trip the samples, `percpu::counters`.)
///
/// # Safety
/// `class < NUM_CLASSES` (it comes from `class_for(size, align)`).
#[inline(always)]
unsafe fn front_alloc(class: usize, size: usize, align: usize, zero: bool) -> *mut u8 {
    match percpu::mode() {
        // SAFETY: per-CPU mode is on (just read); the caller's `class`.
        slab::PER_CPU => unsafe { percpu::alloc(class) },
        slab::PER_THREAD => {
            // Kept inline but placed after the per-CPU path, the one modern glibc gives
            // every thread (laid out first, it would make that path a taken jump).
            cold();
            // SAFETY: the caller's `class`.
            unsafe { thread_cache::alloc(class) }
        }
        // SAFETY: the caller's `class`.
        m => unsafe { front_alloc_other(m, class, size, align, zero) },
    }
}

/// [`front_alloc`] in the other modes: undecided (decide, then allocate) or sampling through
/// the out-of-line countdown (count down to the next sample; a sampled request becomes its
/// own page run, see `profile`). A
/// sampled block is zeroed here when `zero` asks (the caller's clearing then covers it again
/// only up to `size`).
///
/// # Safety
/// As for [`front_alloc`].
#[cold]
#[inline(never)]
unsafe fn front_alloc_other(m: u8, class: usize, size: usize, align: usize, zero: bool) -> *mut u8 {
    if m & slab::SAMPLING != 0 && crate::profile::take(CLASSES[class].size as usize) {
        if let Some(p) = crate::profile::alloc_sampled(size, align, Some(class), zero) {
            return p;
        }
    }
    if crate::init::per_cpu() {
        // SAFETY: per-CPU mode is on (just decided); the caller's `class`.
        unsafe { percpu::alloc(class) }
    } else {
        // SAFETY: the caller's `class`.
        unsafe { thread_cache::alloc(class) }
    }
}

/// Gives a checked block of `class` to the front end in use. One bit of the mode says which:
/// a block exists, so the front end was decided before it was allocated, and the decision
/// happens-before this free through whatever handed `p` to this thread.
///
/// # Safety
/// `p` is a live block of `class` (checked) that nobody uses any more; `canary` is
/// `Canary::of(p)`.
#[inline(always)]
unsafe fn front_free(p: *mut u8, class: usize, canary: Canary) {
    // SAFETY: the caller's contract.
    unsafe {
        if percpu::per_cpu() {
            percpu::free(p, class, canary)
        } else {
            // As in `front_alloc`.
            cold();
            thread_cache::free(p, class, canary)
        }
    }
}

use core::ptr;

/// Marks the branch that calls it unlikely, for the code layout (`core::hint::cold_path`, which
/// is newer than our minimum Rust): a call to a cold function makes its block cold, and the
/// empty body inlines away.
#[cold]
#[inline(always)]
fn cold() {}

/// What a checked pointer turned out to be.
#[derive(Clone, Copy)]
enum Block {
    Small { class: usize },
    Large { span: *mut Span },
}

impl Block {
    fn usable_size(self) -> usize {
        match self {
            Block::Small { class } => CLASSES[class].size as usize,
            // SAFETY: records are type-stable; the span was just checked to be ours and live.
            Block::Large { span } => unsafe { (*span).bytes() },
        }
    }
}

/// Allocates `size` bytes aligned to `align` (a power of two). Null when out of memory.
///
/// The common request (alignment at most 16, a small size) is served inline; every other
/// one leaves through a single call in tail position (`alloc_other`), so the inlined path
/// makes no call that returns to it and saves no register.
#[inline]
pub fn alloc(size: usize, align: usize) -> *mut u8 {
    if align <= ALIGNED_BY_EVERY_CLASS && size <= MAX_SMALL_SIZE {
        // SAFETY: `class_of` returns classes below NUM_CLASSES.
        return unsafe { alloc_small(crate::size_class::class_of(size), size, align) };
    }
    alloc_other(size, align)
}

/// [`alloc`] of a request aligned beyond 16 bytes or above the small sizes.
#[cold]
#[inline(never)]
fn alloc_other(size: usize, align: usize) -> *mut u8 {
    match class_for(size, align) {
        // SAFETY: `class_for` returns classes below NUM_CLASSES.
        Some(class) => unsafe { alloc_small(class, size, align) },
        None => alloc_large(size, align, false),
    }
}

/// A block of `class` for a request of `size` bytes aligned to `align` (null when memory is
/// exhausted): [`alloc`]'s small case, wherever the class came from.
///
/// # Safety
/// `class < NUM_CLASSES`, and it serves `size` and `align` (`class_for`).
#[inline(always)]
unsafe fn alloc_small(class: usize, size: usize, align: usize) -> *mut u8 {
    // SAFETY: the caller's `class`.
    let p = unsafe { front_alloc(class, size, align, false) };
    // SAFETY: `p` is null or the fresh block of at least `size` bytes just made.
    unsafe { debug_fill_fresh(p, size) };
    p
}

/// As [`alloc`], with the bytes zeroed. Large runs fresh from the OS are not cleared again.
#[inline]
pub fn alloc_zeroed(size: usize, align: usize) -> *mut u8 {
    match class_for(size, align) {
        Some(class) => {
            // SAFETY: `class_for` returns classes below NUM_CLASSES.
            let p = unsafe { front_alloc(class, size, align, true) };
            if !p.is_null() {
                // SAFETY: `p` is a fresh block of at least `size` bytes.
                unsafe { ptr::write_bytes(p, 0, size) };
            }
            p
        }
        None => alloc_large(size, align, true),
    }
}

/// Debug builds fill fresh small blocks, so a read of uninitialised memory shows 0xa5.
///
/// # Safety
/// `_p` is null or a fresh block of at least `_size` bytes.
#[inline]
unsafe fn debug_fill_fresh(_p: *mut u8, _size: usize) {
    #[cfg(debug_assertions)]
    if !_p.is_null() {
        // SAFETY: the caller's contract.
        unsafe { ptr::write_bytes(_p, 0xa5, _size) };
    }
}

#[cold]
#[inline(never)]
fn alloc_large(size: usize, align: usize, zero: bool) -> *mut u8 {
    if size > isize::MAX as usize - PAGE_SIZE || align > isize::MAX as usize / 2 {
        return ptr::null_mut();
    }
    crate::init::ensure();
    let pages = size.div_ceil(PAGE_SIZE).max(1);
    if crate::profile::rate() != 0 && crate::profile::take(pages * PAGE_SIZE) {
        if let Some(p) = crate::profile::alloc_sampled(size, align, None, zero) {
            return p;
        }
    }
    let align_pages = (align >> PAGE_SHIFT).max(1);
    let Some(run) = HEAP.pages.alloc(pages, align_pages, SpanState::Large, 0) else {
        return ptr::null_mut();
    };
    // SAFETY: the run is a fresh Large span of `pages` pages, ours.
    let start = unsafe { run.span.as_ref() }.start() as *mut u8;
    if zero && !run.zeroed {
        // SAFETY: the run is committed and at least `size` bytes.
        unsafe { ptr::write_bytes(start, 0, size) };
    }
    start
}

/// A run of `pages` whole pages (page-aligned) straight from the page heap, as one Large
/// span: how another Tricolor layer (the collector's GC spans) gets memory from the one page
/// heap, so the memory limit and the statistics cover it. The flag says the run is known to
/// read as zero. Given back with [`free`]. `None` when the heap cannot grow.
pub fn alloc_pages(pages: usize) -> Option<(ptr::NonNull<u8>, bool)> {
    if pages == 0 || pages > (isize::MAX as usize >> PAGE_SHIFT) / 2 {
        return None;
    }
    crate::init::ensure();
    let run = HEAP.pages.alloc(pages, 1, SpanState::Large, 0)?;
    // SAFETY: the run is a fresh Large span, ours.
    let start = unsafe { run.span.as_ref() }.start() as *mut u8;
    ptr::NonNull::new(start).map(|p| (p, run.zeroed))
}

/// The free paths' fast check (module docs): `p`'s class and canary when `p` is a live block
/// of a small span (of class `expected`, when given); `None` for anything else, which the
/// caller hands to [`check`], a double free among it: `check` finds the canary again and
/// names the fault. Reporting it here would put a call in every free, and with it a stack
/// adjustment on the hit path (2 instructions, and 0.2 ns of a 4.1 ns pair;
/// `cargo run --release -p tricolor-tools -- bench --pairs`).
#[inline(always)]
fn live_small(p: *mut u8, expected: Option<usize>) -> Option<(usize, Canary)> {
    // Wrapping: an address beyond 2^47 fails `index * size == off` below (module docs).
    let span = HEAP.pages.pagemap.get_wrapping(p as usize);
    if span.is_null() {
        return None;
    }
    // SAFETY: records are type-stable (meta); every read below is of atomics, and the result
    // is trusted only once `p` is proved a block below the span's bump mark.
    let s = unsafe { &*span };
    // The class byte alone says "Small, of this class" (`span` invariant).
    let class = match expected {
        Some(c) if c != s.class() => return None,
        Some(c) => c,
        None if s.class() >= NUM_CLASSES => return None,
        None => s.class(),
    };
    if !s.holds_handed_out(p as usize) {
        return None;
    }
    let canary = Canary::of(p);
    // SAFETY: `p` is a block of at least 16 bytes (malloc never uses the 8-byte class, see
    // `size_class::class_of`) inside a span of ours.
    if unsafe { canary.is_on(p) } {
        return None;
    }
    Some((class, canary))
}

/// Checks that `p` (non-null) is a live block of ours (module docs); aborts naming `op`
/// otherwise. The slow paths' full check, naming every fault ([`live_small`] is the fast one).
#[inline]
fn check(p: *mut u8, op: &str) -> Block {
    let span = HEAP.pages.pagemap.get(p as usize);
    if span.is_null() {
        misuse::report(op, Misuse::InvalidPointer, p);
    }
    // SAFETY: records are type-stable (meta); every read below is of atomics, and the record
    // is confirmed to cover `p` before the result is trusted.
    let s = unsafe { &*span };
    let addr = p as usize;
    match s.state() {
        SpanState::Small => {
            let class = s.class();
            if !s.holds_handed_out(addr) {
                misuse::report(op, Misuse::InvalidPointer, p);
            }
            // SAFETY: `p` is a block of at least 16 bytes (malloc never uses the 8-byte
            // class, see `size_class::class_of`) inside a span of ours.
            if unsafe { crate::block::has_canary(p) } {
                misuse::report(op, Misuse::DoubleFree, p);
            }
            Block::Small { class }
        }
        SpanState::Large if addr == s.start() => Block::Large { span },
        _ => misuse::report(op, Misuse::InvalidPointer, p),
    }
}

/// # Safety
/// `check` found `span`, a Large span record starting at `p`.
#[cold]
#[inline(never)]
unsafe fn free_large(span: *mut Span, p: *mut u8, op: &str) {
    // Read before the span is freed (its record is reused after): whether it holds a sampled
    // block, and which. Only trusted once the free below proves the span was this live one.
    // SAFETY: records are type-stable.
    let sample = unsafe { (*span).sample() };
    // SAFETY: the caller's contract; `free_large` re-checks under the page-heap lock.
    if !unsafe { HEAP.pages.free_large(span, p as usize) } {
        misuse::report(op, Misuse::DoubleFree, p);
    }
    if let Some(bucket) = sample {
        crate::profile::object_freed(bucket);
    }
    crate::scavenger::tick();
}

/// Frees `p` (C `free`): null is a no-op.
///
/// # Safety
/// `p` is null or was returned by this allocator and is not used after this call. Misuse
/// that the checks catch aborts; misuse they cannot catch (module docs) is undefined.
#[inline]
pub unsafe fn free(p: *mut u8) {
    if p.is_null() {
        return;
    }
    match live_small(p, None) {
        // SAFETY: `live_small` proved `p` a live block of `class`; the caller gives it up.
        Some((class, canary)) => unsafe { front_free(p, class, canary) },
        // SAFETY: the caller's contract.
        None => unsafe { free_slow(p, "free()") },
    }
}

/// [`free`] of anything but a live small block: a large run, a sampled block, or misuse.
///
/// # Safety
/// As for [`free`], `p` non-null.
#[cold]
#[inline(never)]
unsafe fn free_slow(p: *mut u8, op: &str) {
    match check(p, op) {
        // SAFETY: `check` proved `p` a live block of `class`; the caller gives it up.
        Block::Small { class } => unsafe { front_free(p, class, Canary::of(p)) },
        // SAFETY: `check` found this Large span at `p`.
        Block::Large { span } => unsafe { free_large(span, p, op) },
    }
}

/// Frees `p` allocated with `size` and `align` (Rust's `dealloc`, C's `free_sized`).
///
/// # Safety
/// As for [`free`]; `size` and `align` are those of the allocation (or of its last
/// `realloc`). A mismatch that changes the size class aborts.
///
/// As in [`alloc`], the common layout is handled inline and every other leaves through one
/// call in tail position, so the inlined path saves no register.
#[inline]
pub unsafe fn dealloc(p: *mut u8, size: usize, align: usize) {
    if align <= ALIGNED_BY_EVERY_CLASS && size <= MAX_SMALL_SIZE {
        // SAFETY: the caller's contract; `class_of` is the layout's class.
        return unsafe { dealloc_small(p, crate::size_class::class_of(size)) };
    }
    // SAFETY: the caller's contract.
    unsafe { dealloc_other(p, size, align) }
}

/// [`dealloc`] with a layout aligned beyond 16 bytes or above the small sizes.
///
/// # Safety
/// As for [`dealloc`].
#[cold]
#[inline(never)]
unsafe fn dealloc_other(p: *mut u8, size: usize, align: usize) {
    match class_for(size, align) {
        // SAFETY: the caller's contract; `class_for` is the layout's class.
        Some(expected) => unsafe { dealloc_small(p, expected) },
        // SAFETY: the caller's contract.
        None => unsafe { dealloc_slow(p, None) },
    }
}

/// [`dealloc`] of a layout whose class is `expected`: the fast check, else the full one.
///
/// # Safety
/// As for [`dealloc`]; `expected` is `class_for` of the layout.
#[inline(always)]
unsafe fn dealloc_small(p: *mut u8, expected: usize) {
    if let Some((class, canary)) = live_small(p, Some(expected)) {
        // SAFETY: as in `free`; the layout's class is the span's.
        unsafe { front_free(p, class, canary) };
        return;
    }
    // SAFETY: the caller's contract.
    unsafe { dealloc_slow(p, Some(expected)) }
}

/// [`dealloc`] of anything but a live small block of the layout's class `expected`: a large
/// run, a sampled block, or misuse (a mismatched layout among it).
///
/// # Safety
/// As for [`dealloc`].
#[cold]
#[inline(never)]
unsafe fn dealloc_slow(p: *mut u8, expected: Option<usize>) {
    match (check(p, "dealloc()"), expected) {
        // SAFETY: as in `free`; the layout agrees with the span.
        (Block::Small { class }, Some(c)) if c == class => unsafe {
            front_free(p, class, Canary::of(p))
        },
        (Block::Large { span }, None) =>
        // SAFETY: `check` found this Large span at `p`.
        unsafe { free_large(span, p, "dealloc()") },
        // A small request the profiler sampled lives in a page run of its own.
        // SAFETY: records are type-stable; `check` found this Large span at `p`.
        (Block::Large { span }, Some(_)) if unsafe { (*span).sample() }.is_some() => unsafe {
            free_large(span, p, "dealloc()")
        },
        _ => misuse::report("dealloc()", Misuse::SizeMismatch, p),
    }
}

/// The usable size of live block `p` (C's `malloc_usable_size`); 0 for null.
///
/// # Safety
/// `p` is null or a live block of this allocator.
pub unsafe fn usable_size(p: *const u8) -> usize {
    if p.is_null() {
        return 0;
    }
    check(p.cast_mut(), "malloc_usable_size()").usable_size()
}

/// Resizes `p` to `new_size` bytes aligned to `align`, in place when the size class does not
/// change or a large run can grow or shrink where it is; otherwise allocates, copies and
/// frees. Returns null (leaving `p` valid) when out of memory. `old_size` is the caller's
/// size (Rust's layout) or `None` for the block's usable size (C's `realloc`).
///
/// # Safety
/// `p` is a live block of this allocator allocated with `align`, `old_size` (when given) its
/// size, and it is not used through the old pointer if the result differs.
pub unsafe fn realloc(
    p: *mut u8,
    old_size: Option<usize>,
    align: usize,
    new_size: usize,
) -> *mut u8 {
    let block = check(p, "realloc()");
    if let Some(old) = old_size {
        let agrees = match block {
            Block::Small { class } => class_for(old, align) == Some(class),
            // A sampled small request lives in a page run (`profile`).
            Block::Large { span } => {
                // SAFETY: records are type-stable; `check` found this Large span at `p`.
                let sampled = unsafe { (*span).sample() }.is_some();
                class_for(old, align).is_none() || sampled
            }
        };
        if !agrees {
            misuse::report("realloc()", Misuse::SizeMismatch, p);
        }
    }
    let new_class = class_for(new_size, align);
    match block {
        Block::Small { class } if new_class == Some(class) => return p,
        // A sampled block staying small keeps its page run as a large block would
        // (`keeps_pages`; a one-page run always): an unsampled
        // block in the same class stays where it is too, and moving a sample would cost
        // `realloc` a copy and two page-heap trips each time (part of the heap profiler's cost
        // there).
        // The run is page-aligned, which serves every alignment a class does.
        // SAFETY: records are type-stable; `check` found this Large span at `p`.
        Block::Large { span } if new_class.is_some() && unsafe { (*span).sample() }.is_some() => {
            // SAFETY: as above.
            let pages = unsafe { (*span).pages() };
            if keeps_pages(new_size.div_ceil(PAGE_SIZE).max(1), pages) {
                return p;
            }
        }
        Block::Large { span } if new_class.is_none() && new_size > MAX_SMALL_SIZE => {
            // SAFETY: `span` is our live Large span starting at `p` (checked).
            let resized = unsafe { resize_large(span, new_size) };
            if resized {
                return p;
            }
        }
        _ => {}
    }
    let q = alloc(new_size, align);
    if q.is_null() {
        return q;
    }
    let keep = old_size
        .unwrap_or_else(|| block.usable_size())
        .min(new_size);
    // SAFETY: both blocks are live, distinct, and at least `keep` bytes.
    unsafe { ptr::copy_nonoverlapping(p, q, keep) };
    match block {
        // SAFETY: `p` was checked live; its contents were copied.
        Block::Small { class } => unsafe { front_free(p, class, Canary::of(p)) },
        Block::Large { span } =>
        // SAFETY: `check` found this Large span at `p`.
        unsafe { free_large(span, p, "realloc()") },
    }
    q
}

/// Whether a run of `pages` pages stays where it is for a block now needing `need` pages:
/// when it fits and shrinks by less than a quarter. A realloc that shrinks a little and grows
/// again should not pay for two page-heap trips.
fn keeps_pages(need: usize, pages: usize) -> bool {
    need <= pages && need * 4 >= pages * 3
}

/// Grows or shrinks a large run in place; false when it cannot.
///
/// # Safety
/// `span` is a live Large span of the process heap owned by the caller.
unsafe fn resize_large(span: *mut Span, new_size: usize) -> bool {
    if new_size > isize::MAX as usize - PAGE_SIZE {
        return false;
    }
    let new_pages = new_size.div_ceil(PAGE_SIZE);
    // SAFETY: caller's contract.
    let pages = unsafe { (*span).pages() };
    match new_pages.cmp(&pages) {
        core::cmp::Ordering::Equal => true,
        core::cmp::Ordering::Less if keeps_pages(new_pages, pages) => true,
        // SAFETY: caller's contract; 0 < new_pages < pages.
        core::cmp::Ordering::Less => unsafe { HEAP.pages.shrink_in_place(span, new_pages) },
        // SAFETY: caller's contract.
        core::cmp::Ordering::Greater => unsafe { HEAP.pages.grow_in_place(span, new_pages) },
    }
}

/// Returns every free page to the OS and empties every cache it can reach now (Go's
/// `debug.FreeOSMemory`): the calling thread's cache, every CPU's lists, every transfer cache.
/// Other threads' per-thread caches (the fallback front end) are theirs to empty; each gives
/// back half of every list when a list overflows with more than 4 MiB cached in the thread, so
/// it holds about that much (more between two overflows). Returns the bytes released.
pub fn release_memory() -> usize {
    crate::init::ensure();
    crate::scavenger::release_all()
}
