//! Collector statistics (`Heap::stats`, C `tc_gc_stats`) and the `GODEBUG=gctrace=1` line.
//!
//! Pauses are kept in a circular buffer of the last 256, like Go's `MemStats.PauseNs`, but
//! each stop of the world on its own (two per cycle: start and mark termination), the most
//! recent at `(pauses + 255) % 256`. `StatsState` is guarded by `Heap::stats`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Pauses remembered.
pub const PAUSES: usize = 256;
const _: () = assert!(PAUSES == 256, "the C struct spells the length out");

/// A snapshot of a heap's collector figures (the C `tc_gc_stats_t`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct GcStats {
    /// Completed collections.
    pub cycles: u64,
    /// Bytes of objects marked (alive) by the last collection.
    pub live_bytes: u64,
    /// Bytes allocated now: the last live bytes plus everything allocated since (whole
    /// cached spans count as allocated, as Go's `heapLive`).
    pub heap_bytes: u64,
    /// The heap size at which the next collection starts.
    pub heap_goal: u64,
    /// Bytes of pages the heap's spans hold (objects, free slots, span tails).
    pub span_bytes: u64,
    /// Total stop-the-world pause time, ns.
    pub pause_total_ns: u64,
    /// Longest pause, ns.
    pub pause_max_ns: u64,
    /// The last 256 pauses (each stop of the world: two per cycle), ns: the most recent at
    /// `(pauses + 255) % 256`.
    pub pause_ns: [u64; 256],
    /// `GOGC` now (negative: off).
    pub gc_percent: i64,
    /// The memory limit (`GOMEMLIMIT`), `i64::MAX` for none.
    pub memory_limit: i64,
    /// 1 when the CPU limiter let the heap exceed the memory limit at the last cycle.
    pub cpu_limited: u32,
    /// Mutators attached now.
    pub mutators: u32,
    /// Pauses recorded (two per completed cycle).
    pub pauses: u64,
    /// Time allocating mutators spent waiting for marking to finish because allocation
    /// reached the heap goal before it did, ns, in total and the longest wait. Not a pause
    /// (other mutators run), but latency for that mutator: what Go's mark assists cost.
    pub wait_total_ns: u64,
    /// The longest such wait, ns.
    pub wait_max_ns: u64,
    /// Of that waiting, the time mutators spent marking themselves (mark assists), ns.
    pub assist_ns: u64,
    /// Time the collector thread spent in concurrent marking (background), ns.
    pub mark_ns: u64,
    /// CPU time spent collecting, ns: the collector thread's CPU time in cycles (sweep
    /// termination, both pauses, marking), the mark workers' CPU time, and the mark assists'
    /// time. Background sweeping between cycles is not counted (nor is it by Go).
    pub gc_cpu_ns: u64,
    /// Go's `MemStats.GCCPUFraction`: `gc_cpu_ns` over the CPU time available since the heap
    /// was made (wall time × the CPUs the collector plans for, `GOMAXPROCS`).
    pub gc_cpu_fraction: f64,
}

/// One cycle's figures, for the statistics and the trace.
pub(crate) struct Cycle {
    pub(crate) start: Instant,
    /// The first pause: stopping the world and starting marking (Go's first gctrace figure).
    pub(crate) stw_ns: u64,
    pub(crate) mark_ns: u64,
    /// CPU time of the collector thread and the mark workers while marking.
    pub(crate) background_cpu_ns: u64,
    /// Time mutators spent in mark assists during this cycle.
    pub(crate) assist_ns: u64,
    pub(crate) term_ns: u64,
    pub(crate) heap_before: usize,
    pub(crate) marked: usize,
    pub(crate) goal: usize,
    pub(crate) stack_roots: usize,
    pub(crate) global_roots: usize,
    pub(crate) mutators: usize,
    pub(crate) limited: bool,
}

/// Guarded by `Heap::stats`.
pub(crate) struct StatsState {
    pub(crate) cycles: u64,
    pub(crate) npauses: u64,
    pub(crate) mark_total: u64,
    pub(crate) pause_total: u64,
    pub(crate) pause_max: u64,
    pub(crate) pauses: [u64; PAUSES],
    /// Every pause since the heap was made, counted in [`PAUSE_BUCKETS`] buckets (the
    /// ring above forgets; Go's `/gc/pauses:seconds` does not).
    pub(crate) pause_histogram: [u64; PAUSE_BUCKETS],
    pub(crate) last: Option<Cycle>,
}

impl Default for StatsState {
    fn default() -> Self {
        Self {
            cycles: 0,
            npauses: 0,
            mark_total: 0,
            pause_total: 0,
            pause_max: 0,
            pauses: [0; PAUSES],
            pause_histogram: [0; PAUSE_BUCKETS],
            last: None,
        }
    }
}

impl StatsState {
    pub(crate) fn record(&mut self, c: Cycle) {
        // A cycle that marks in one pause (`Config::mark_in_pause`) has no second: 0.
        for ns in [c.stw_ns, c.term_ns].into_iter().filter(|&ns| ns > 0) {
            self.pauses[self.npauses as usize % PAUSES] = ns;
            self.npauses += 1;
            self.pause_total += ns;
            self.pause_max = self.pause_max.max(ns);
            self.pause_histogram[pause_bucket(ns)] += 1;
        }
        self.cycles += 1;
        self.mark_total += c.mark_ns;
        self.last = Some(c);
    }

    /// Bytes the last cycle marked (0 before the first).
    pub(crate) fn marked(&self) -> usize {
        self.last.as_ref().map_or(0, |c| c.marked)
    }

    /// Bytes of roots the last cycle scanned.
    pub(crate) fn roots(&self) -> usize {
        self.last
            .as_ref()
            .map_or(0, |c| c.stack_roots + c.global_roots)
    }

    /// Whether the CPU limiter was engaged at the last cycle.
    pub(crate) fn limited(&self) -> bool {
        self.last.as_ref().is_some_and(|c| c.limited)
    }
}

/// Pause histogram buckets: one below 256 ns, four per doubling up to 2^36 ns (about 69 s),
/// one above.
pub const PAUSE_BUCKETS: usize = 2 + 4 * (PAUSE_TOP_SHIFT - PAUSE_LOW_SHIFT) as usize;
const PAUSE_LOW_SHIFT: u32 = 8;
const PAUSE_TOP_SHIFT: u32 = 36;

/// The bucket a pause of `ns` falls in.
pub(crate) fn pause_bucket(ns: u64) -> usize {
    if ns < 1 << PAUSE_LOW_SHIFT {
        return 0;
    }
    let k = 63 - ns.leading_zeros();
    if k >= PAUSE_TOP_SHIFT {
        return PAUSE_BUCKETS - 1;
    }
    let quarter = ((ns >> (k - 2)) & 3) as usize;
    1 + 4 * (k - PAUSE_LOW_SHIFT) as usize + quarter
}

/// The boundaries of the pause buckets, in seconds (`PAUSE_BUCKETS + 1` of them).
pub(crate) fn pause_boundaries() -> Vec<f64> {
    let mut b = Vec::with_capacity(PAUSE_BUCKETS + 1);
    b.push(0.0);
    for k in PAUSE_LOW_SHIFT..PAUSE_TOP_SHIFT {
        for q in 0..4u64 {
            b.push(((1u64 << k) + q * (1u64 << (k - 2))) as f64 * 1e-9);
        }
    }
    b.push((1u64 << PAUSE_TOP_SHIFT) as f64 * 1e-9);
    b.push(f64::INFINITY);
    b
}

/// A heap's running time counters (`Heap::times`), in ns; relaxed atomics, statistics only.
#[derive(Default)]
pub(crate) struct Times {
    /// Time mutators waited for marking at the goal (`GcStats::wait_total_ns`); relaxed.
    pub(crate) wait_total_ns: AtomicU64,
    pub(crate) wait_max_ns: AtomicU64,
    /// Time mutators spent assisting, ns (statistics).
    pub(crate) assist_ns: AtomicU64,
    /// CPU time spent collecting, ns (`GcStats::gc_cpu_ns`); relaxed.
    pub(crate) gc_cpu_ns: AtomicU64,
    /// The mark workers' CPU time not yet reported in a cycle's statistics; relaxed.
    pub(crate) worker_cpu_ns: AtomicU64,
}

impl Times {
    /// `GcStats::gc_cpu_fraction`: the share of the CPU time available since `epoch` (wall
    /// time times `procs`) spent collecting.
    pub(crate) fn gc_cpu_fraction(&self, epoch: Instant, procs: usize) -> f64 {
        let available = epoch.elapsed().as_nanos().max(1) as f64 * procs as f64;
        self.gc_cpu_ns.load(Ordering::Relaxed) as f64 / available
    }
}

/// The calling thread's CPU time, ns (`CLOCK_THREAD_CPUTIME_ID`).
pub(crate) fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; the clock id is a constant the kernel knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Go's `fmtNSAsMS`: whole milliseconds from 10 ms, else three significant digits.
fn ms(ns: u64) -> String {
    let ms = ns as f64 / 1e6;
    if ms >= 10.0 {
        format!("{}", ns / 1_000_000)
    } else if ms >= 1.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.3}")
    }
}

/// The `gctrace` line for the cycle just recorded, in Go's format:
/// `gc N @T.TTTs P%: stop+mark+term ms clock, stop+0/mark/0+term ms cpu,
/// before->after->live MB, goal MB goal, S MB stacks, G MB globals, M P`.
/// Here the "P" count is the number of attached mutators; the clock figures are the first
/// pause, concurrent marking and the second pause; the CPU figures split marking into mark
/// assists (mutators) and background (the CPU time of the collector thread and the mark
/// workers); there are no idle workers.
pub(crate) fn trace_line(st: &StatsState, epoch: Instant, cpu_fraction: f64) -> String {
    let Some(c) = &st.last else {
        return String::new();
    };
    let since = (c.start - epoch).as_secs_f64();
    // Go's figure: the share of the CPU time available since the heap was made (wall time ×
    // GOMAXPROCS) spent on collection (`GcStats::gc_cpu_fraction`).
    let pct = (cpu_fraction * 100.0) as u64;
    let mb = |b: usize| b >> 20;
    format!(
        "gc {} @{since:.3}s {pct}%: {}+{}+{} ms clock, {}+{}/{}/0+{} ms cpu, {}->{}->{} MB, {} MB goal, {} MB stacks, {} MB globals, {} P{}",
        st.cycles,
        ms(c.stw_ns),
        ms(c.mark_ns),
        ms(c.term_ns),
        ms(c.stw_ns),
        ms(c.assist_ns),
        ms(c.background_cpu_ns),
        ms(c.term_ns),
        mb(c.heap_before),
        mb(c.heap_before),
        mb(c.marked),
        mb(c.goal.min(usize::MAX >> 1)),
        mb(c.stack_roots),
        mb(c.global_roots),
        c.mutators,
        if c.limited { " (CPU limited)" } else { "" },
    )
}
