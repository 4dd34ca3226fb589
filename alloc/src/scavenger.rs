//! Giving memory back: the background scavenger, and `release_memory` (`release_all`).
//!
//! # Goal (Go's)
//! The heap *retains* the pages it holds memory in: spans in use plus dirty free pages. The
//! scavenger keeps that within [`RETAIN_PERCENT`]% of what the heap needs (the pages of spans
//! in use), and, under a memory limit (`GOMEMLIMIT`), keeps what the process holds (retained
//! heap plus metadata) within [`LIMIT_PERCENT`]% of the limit. Above either, it releases dirty
//! pages, highest address first (`PageHeap::release_step`), one chunk of at most 1 MiB at a
//! time.
//!
//! A spike is released only once the heap has been over its goal at two checks in a row (one
//! second apart): a program that frees and soon re-allocates the same memory does not pay for
//! releasing it and faulting it in again.
//!
//! # Cost (Go's pacing, while the program runs)
//! After each chunk, the scavenger sleeps 99 times as long as the chunk took, so it uses about
//! 1% of one CPU while it works; it sleeps a second between checks when the heap is within its
//! goal. [`Scavenger::cpu_ns`] accounts its CPU time (statistics report it).
//!
//! # An idle program (a freed spike must not linger)
//! The pacing exists to leave the CPU to running mutators. When no thread has taken a slow
//! path (a refill, a flush, a large allocation or free: [`ACTIVITY`]) for [`IDLE_NS`], there is
//! none to protect: the scavenger releases in [`IDLE_RELEASE_CHUNK`] steps (64 MiB) without
//! sleeping, and so gives back a freed 800 MiB spike within the second after it starts,
//! instead of over most of a minute. The CPU this costs is the same (the kernel's work per
//! page does not change); it is spent at once, while nobody needs it. The first slow path
//! seen mid-release puts it back to 1 MiB steps and the 99× pacing.
//!
//! # The thread
//! Started lazily, from a slow path holding no lock, once some page has been freed to the page
//! heap (never from the process's first allocation), so a program that never frees never gets
//! a thread; until then, the checks run inline. Detached, all signals blocked, a
//! 256 KiB stack, named `tricolor-scav`. It also empties idle front caches once a second
//! (`percpu::reclaim_idle`, which empties idle transfer caches too), so a CPU that stopped
//! allocating gives its cached blocks back. Not inherited by a forked child: the child starts
//! its own when it needs one. With `TRICOLOR_SCAVENGER=0`, or if the thread cannot be
//! created, the same check runs from the allocating threads' slow paths instead, at most once a
//! second, releasing at most [`INLINE_BUDGET`] at a time.
//!
//! Invariant: one scavenging pass runs at a time ([`PASS`]); the fork handlers hold it, so no
//! run is out of the page heap's index (`Releasing`) across a fork.

use crate::heap::HEAP;
use crate::knobs::{self, NO_LIMIT};
use crate::os;
use crate::page_heap::{IDLE_RELEASE_CHUNK, PageHeapStats, RELEASE_CHUNK};
use crate::percpu;
use crate::size_class::PAGE_SHIFT;
use crate::sync::{AtomicU8, AtomicU64, Mutex, Ordering};
use crate::thread_cache;
use core::ffi::c_void;

/// Retained heap may exceed what spans in use need by this much (Go's `retainExtraPercent`).
pub(crate) const RETAIN_PERCENT: usize = 110;
/// Under a memory limit, what the process holds is kept within this share of it (Go's
/// `reduceExtraPercent`).
pub(crate) const LIMIT_PERCENT: usize = 95;
/// How often the goal is checked and idle caches are emptied.
const CHECK_NS: u64 = 1_000_000_000;
/// Most bytes one inline check releases (`TRICOLOR_SCAVENGER=0`).
const INLINE_BUDGET: usize = 64 << 20;

const NOT_STARTED: u8 = 0;
const STARTING: u8 = 1;
const RUNNING: u8 = 2;
/// Disabled by `TRICOLOR_SCAVENGER=0`, or the thread could not be created.
const INLINE: u8 = 3;

static THREAD: AtomicU8 = AtomicU8::new(NOT_STARTED);
/// When the slow paths next check (coarse clock).
static NEXT_CHECK: AtomicU64 = AtomicU64::new(0);
/// Over goal at the previous check.
static WAS_OVER: AtomicU8 = AtomicU8::new(0);
/// Set by every slow path ([`tick`]) and cleared by the scavenger when it looks: the sign
/// that the program runs. Set only when clear (a load, and a store once per look), so busy
/// slow paths on several CPUs share the line read-only instead of bouncing it with a
/// read-modify-write each.
static ACTIVITY: AtomicU8 = AtomicU8::new(0);
/// No slow path for this long and the program counts as idle (module docs).
const IDLE_NS: u64 = 1_000_000_000;
/// Serialises scavenging passes; held across `fork` (module docs).
pub(crate) static PASS: Mutex<()> = Mutex::new(());

/// The scavenger's figures for the statistics.
pub(crate) struct Scavenger {
    /// CPU time of the scavenger thread (ns), and bytes it released.
    pub(crate) cpu_ns: AtomicU64,
    pub(crate) released: AtomicU64,
}

pub(crate) static SCAVENGER: Scavenger = Scavenger {
    cpu_ns: AtomicU64::new(0),
    released: AtomicU64::new(0),
};

/// Bytes the heap should release now to meet its goal (module docs), from its figures and the
/// metadata mapped.
pub(crate) fn over_goal(ps: &PageHeapStats, meta: usize, limit: i64) -> usize {
    let in_use = ps.committed - ps.free_bytes - ps.releasing_bytes;
    let retained = in_use + ps.dirty_bytes + ps.releasing_bytes;
    let mut over = retained.saturating_sub(in_use / 100 * RETAIN_PERCENT);
    if limit != NO_LIMIT {
        let target = (limit.max(0) as usize) / 100 * LIMIT_PERCENT;
        over = over.max((retained + meta).saturating_sub(target));
    }
    over.min(ps.dirty_bytes)
}

/// Watches [`ACTIVITY`] for the background scavenger: idle once no slow path has set it for
/// [`IDLE_NS`].
struct Idle {
    since: u64,
}

impl Idle {
    fn new() -> Idle {
        Idle {
            since: os::now_ns(),
        }
    }

    fn idle(&mut self) -> bool {
        let now = os::now_ns();
        if ACTIVITY.swap(0, Ordering::Relaxed) != 0 {
            self.since = now;
        }
        now - self.since >= IDLE_NS
    }
}

/// One check: empties idle caches, then releases what is over the goal if it was already over
/// at the previous check, at most `budget` bytes. With `paced` (the background thread), each
/// 1 MiB chunk is followed by a sleep 99 times as long, unless the program is idle, when
/// chunks are 64 MiB and there is no sleep (module docs); without, 1 MiB chunks back to back.
/// Returns the bytes released.
fn check(budget: usize, mut paced: Option<&mut Idle>) -> usize {
    // Empties idle per-CPU lists, then idle transfer caches (in either front-end mode).
    percpu::reclaim_idle();
    let mut done = 0;
    let over = over_goal(
        &HEAP.pages.stats(),
        HEAP.pages.meta.mapped(),
        knobs::memory_limit(),
    );
    let was_over = WAS_OVER.swap(u8::from(over > 0), Ordering::Relaxed) != 0;
    if !was_over {
        return 0;
    }
    while done < budget {
        let over = over_goal(
            &HEAP.pages.stats(),
            HEAP.pages.meta.mapped(),
            knobs::memory_limit(),
        );
        if over == 0 {
            break;
        }
        let idle = paced.as_mut().is_some_and(|i| i.idle());
        let chunk = if idle {
            IDLE_RELEASE_CHUNK
        } else {
            RELEASE_CHUNK
        };
        let t0 = os::now_ns();
        let pages = {
            let _pass = PASS.lock();
            HEAP.pages
                .release_step(over.div_ceil(1 << PAGE_SHIFT).min(chunk))
        };
        if pages == 0 {
            break;
        }
        done += pages << PAGE_SHIFT;
        SCAVENGER
            .released
            .fetch_add((pages << PAGE_SHIFT) as u64, Ordering::Relaxed);
        if paced.is_some() {
            SCAVENGER
                .cpu_ns
                .store(os::thread_cpu_ns(), Ordering::Relaxed);
            if !idle {
                let took = os::now_ns() - t0;
                os::sleep_ns((took * 99).clamp(10_000, 100_000_000));
            }
        }
    }
    done
}

/// Called from the front ends' slow paths and from large frees, holding no lock: starts the
/// thread once pages are dirty, or (until then, or in inline mode) runs a check here at most
/// once a second.
#[inline]
pub(crate) fn tick() {
    if ACTIVITY.load(Ordering::Relaxed) == 0 {
        ACTIVITY.store(1, Ordering::Relaxed);
    }
    if THREAD.load(Ordering::Relaxed) == RUNNING {
        return;
    }
    tick_slow();
}

#[cold]
#[inline(never)]
fn tick_slow() {
    let now = os::coarse_now_ns();
    let next = NEXT_CHECK.load(Ordering::Relaxed);
    if next == 0 {
        // The first tick only starts the clock: no thread is started from the process's
        // first allocation, which may come while the C library initialises.
        let _ =
            NEXT_CHECK.compare_exchange(0, now + CHECK_NS, Ordering::Relaxed, Ordering::Relaxed);
        return;
    }
    if THREAD.load(Ordering::Relaxed) == NOT_STARTED
        && HEAP.pages.ever_dirty()
        && knobs::get().scavenger
        && THREAD
            .compare_exchange(NOT_STARTED, STARTING, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        let ok = os::spawn_detached(run, c"tricolor-scav", 256 * 1024);
        THREAD.store(if ok { RUNNING } else { INLINE }, Ordering::Relaxed);
        if ok {
            return;
        }
    }
    if now < next
        || NEXT_CHECK
            .compare_exchange(next, now + CHECK_NS, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    if matches!(THREAD.load(Ordering::Relaxed), NOT_STARTED | INLINE) {
        // An allocating thread pays for this check: no pacing, but a bounded amount. Before
        // the thread starts, this only empties idle caches (nothing is dirty yet). The
        // compare-exchange above lets one caller a second through, so checks do not overlap.
        check(INLINE_BUDGET, None);
    }
}

extern "C" fn run(_: *mut c_void) -> *mut c_void {
    let mut idle = Idle::new();
    loop {
        check(usize::MAX, Some(&mut idle));
        SCAVENGER
            .cpu_ns
            .store(os::thread_cpu_ns(), Ordering::Relaxed);
        os::sleep_ns(CHECK_NS);
    }
}

/// In a forked child: the thread did not come along.
pub(crate) fn after_fork_child() {
    if THREAD.load(Ordering::Relaxed) == RUNNING {
        THREAD.store(NOT_STARTED, Ordering::Relaxed);
    }
}

/// Empties every cache the calling thread can reach: its own per-thread cache, every CPU's
/// lists, then every transfer cache (in either front-end mode). Returns the bytes moved from
/// slabs and transfer caches.
pub(crate) fn empty_caches() -> usize {
    thread_cache::flush_current();
    percpu::drain_all()
}

/// `release_memory`'s work, with the front end decided (`api::release_memory`).
pub(crate) fn release_all() -> usize {
    empty_caches();
    let _pass = PASS.lock();
    let mut pages = 0;
    loop {
        let n = HEAP.pages.release_step(RELEASE_CHUNK);
        if n == 0 {
            break;
        }
        pages += n;
    }
    pages << PAGE_SHIFT
}
