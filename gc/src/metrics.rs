//! Metrics by Go's `runtime/metrics` names: [`read`] (C `tc_metrics_read`) fills samples
//! named like `/gc/heap/goal:bytes`, the unit after the colon, so tools written for Go's
//! metrics read Tricolor's. [`all`] describes every name (`tricolor metrics` prints them).
//!
//! # What the names mean here
//! * Go's names are used where Go's concept exists in Tricolor, with Go's meaning and unit;
//!   Tricolor's own figures are under `/tricolor/`. A Go name whose concept Tricolor lacks
//!   (goroutine stacks, `mcache` records) is not offered: reading it gives [`Value::Bad`], as
//!   Go gives `KindBad` for a name it does not know.
//! * `/memory/classes/...` partition every byte the allocator maps read-write, as Go's do:
//!   the leaves add up to `/memory/classes/total:bytes` (exactly when nothing allocates
//!   meanwhile). The allocator serves both `malloc` and the collector (a collector's spans
//!   are page runs of the allocator), so a GC heap's spans count as heap objects there; the
//!   collector's own view is under `/gc/`.
//! * `/gc/...` describe one collected heap: [`read`] takes the process's default heap
//!   (`Heap::default_heap`, C `tc_heap_default`) and reports [`Value::Bad`] for them if no
//!   one has made it (a metrics read never starts a collector); [`Heap::read_metrics`] reads
//!   a given heap. `/gc/gomemlimit:bytes` is the process's limit, so it is always there.
//! * `/gc/pauses:seconds` is a histogram of every stop of the world since the heap was made
//!   (two per cycle), like Go's; its buckets are [`PAUSE_BUCKETS`] ranges, four per doubling
//!   from 256 ns to 2^36 ns, plus one below and one above.
//!
//! Reading costs one pass over the allocator's statistics (`tricolor_alloc::stats`) and one
//! lock of the heap's statistics; it allocates only the histograms' vectors.

use crate::heap::Heap;
pub use crate::stats::PAUSE_BUCKETS;
use crate::stats::{GcStats, pause_boundaries};
use std::sync::atomic::Ordering;
use tricolor_alloc::AllocStats;

/// What kind of value a metric has (Go's `metrics.ValueKind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An unsigned count or size.
    Uint64,
    /// A float (seconds, fractions).
    Float64,
    /// A histogram of float64 observations.
    Float64Histogram,
}

/// One metric's description (Go's `metrics.Description`).
#[derive(Clone, Copy, Debug)]
pub struct Description {
    /// The name: a path, a colon, the unit.
    pub name: &'static str,
    /// What it measures.
    pub description: &'static str,
    /// Its value's kind.
    pub kind: Kind,
    /// True when it only ever grows (a total since the process or heap started).
    pub cumulative: bool,
}

/// A histogram: `counts[i]` observations fell in `[buckets[i], buckets[i + 1])`, so
/// `buckets` has one more element than `counts` (Go's `metrics.Float64Histogram`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Float64Histogram {
    /// Observations per bucket.
    pub counts: Vec<u64>,
    /// Bucket boundaries, ascending; the last is `+Inf`.
    pub buckets: Vec<f64>,
}

/// A metric's value (Go's `metrics.Value`).
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Value {
    /// The name is unknown, or what it describes does not exist (no default heap).
    #[default]
    Bad,
    /// An unsigned integer.
    Uint64(u64),
    /// A float.
    Float64(f64),
    /// A histogram.
    Float64Histogram(Float64Histogram),
}

/// A name to read and, after [`read`], its value (Go's `metrics.Sample`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    /// The metric's name.
    pub name: String,
    /// Its value, filled by [`read`].
    pub value: Value,
}

impl Sample {
    /// A sample for `name`, value not yet read.
    pub fn new(name: &str) -> Sample {
        Sample {
            name: name.to_owned(),
            value: Value::Bad,
        }
    }
}

/// `/gc/pauses:seconds` (under either name).
fn pause_histogram(g: &GcSnapshot) -> Value {
    Value::Float64Histogram(Float64Histogram {
        counts: g.pause_histogram.to_vec(),
        buckets: pause_boundaries(),
    })
}

/// What one read sees: taken once, so every sample of a read agrees.
struct Snapshot {
    alloc: AllocStats,
    gc: Option<GcSnapshot>,
}

struct GcSnapshot {
    stats: GcStats,
    pause_histogram: [u64; PAUSE_BUCKETS],
    procs: usize,
}

enum Reader {
    Alloc(fn(&AllocStats) -> Value),
    Gc(fn(&GcSnapshot) -> Value),
}

struct Metric {
    desc: Description,
    read: Reader,
}

const fn metric(
    name: &'static str,
    kind: Kind,
    cumulative: bool,
    description: &'static str,
    read: Reader,
) -> Metric {
    Metric {
        desc: Description {
            name,
            description,
            kind,
            cumulative,
        },
        read,
    }
}

fn seconds(ns: u64) -> Value {
    Value::Float64(ns as f64 * 1e-9)
}

use Kind::{Float64, Float64Histogram as Histogram, Uint64};
use Reader::{Alloc, Gc};

/// Every metric. Order: Go's names, then Tricolor's; the memory classes first.
static METRICS: &[Metric] = &[
    metric(
        "/memory/classes/heap/objects:bytes",
        Uint64,
        false,
        "Memory occupied by live objects: small blocks at their size class's size, large \
         blocks and GC heaps' spans as whole pages.",
        Alloc(|s| Value::Uint64(s.in_use_small + s.in_use_large)),
    ),
    metric(
        "/memory/classes/heap/unused:bytes",
        Uint64,
        false,
        "Memory reserved for small objects but holding none: free blocks in the front, \
         transfer and central caches, and span tails too short for one more object.",
        Alloc(|s| {
            Value::Uint64(s.cached_front + s.cached_transfer + s.cached_central + s.span_waste)
        }),
    ),
    metric(
        "/memory/classes/heap/free:bytes",
        Uint64,
        false,
        "Free pages still backed by physical memory, which the scavenger may return.",
        Alloc(|s| Value::Uint64(s.free_dirty)),
    ),
    metric(
        "/memory/classes/heap/released:bytes",
        Uint64,
        false,
        "Free pages returned to the OS (or never touched): mapped, but backed by nothing.",
        Alloc(|s| Value::Uint64(s.released)),
    ),
    metric(
        "/memory/classes/metadata/other:bytes",
        Uint64,
        false,
        "The allocator's own records: span records, pagemap leaves, per-CPU slabs, thread \
         caches, profiling records.",
        Alloc(|s| Value::Uint64(s.metadata)),
    ),
    metric(
        "/memory/classes/total:bytes",
        Uint64,
        false,
        "All memory the allocator maps read-write: the sum of the /memory/classes leaves.",
        Alloc(|s| Value::Uint64(s.mapped)),
    ),
    metric(
        "/gc/gomemlimit:bytes",
        Uint64,
        false,
        "The soft memory limit (GOMEMLIMIT, tc_set_memory_limit); 2^63-1 when off.",
        Alloc(|s| Value::Uint64(s.memory_limit.max(0) as u64)),
    ),
    metric(
        "/cpu/classes/scavenge/background:cpu-seconds",
        Float64,
        true,
        "CPU time the background scavenger has spent returning memory to the OS.",
        Alloc(|s| seconds(s.scavenger_cpu_ns)),
    ),
    metric(
        "/gc/cycles/total:gc-cycles",
        Uint64,
        true,
        "Collections the heap has completed.",
        Gc(|g| Value::Uint64(g.stats.cycles)),
    ),
    metric(
        "/gc/heap/goal:bytes",
        Uint64,
        false,
        "The heap size at which the next collection starts (GOGC and GOMEMLIMIT's pacing).",
        Gc(|g| Value::Uint64(g.stats.heap_goal)),
    ),
    metric(
        "/gc/heap/live:bytes",
        Uint64,
        false,
        "Bytes of objects the last collection marked live.",
        Gc(|g| Value::Uint64(g.stats.live_bytes)),
    ),
    metric(
        "/gc/gogc:percent",
        Uint64,
        false,
        "GOGC now (Heap::set_gc_percent, tc_set_gc_percent); 0 when collection is off \
         (GOGC=off).",
        Gc(|g| Value::Uint64(g.stats.gc_percent.max(0) as u64)),
    ),
    metric(
        "/gc/pauses:seconds",
        Histogram,
        true,
        "Every stop-the-world pause since the heap was made (two per cycle): a histogram.",
        Gc(pause_histogram),
    ),
    metric(
        "/sched/pauses/total/gc:seconds",
        Histogram,
        true,
        "The same histogram under Go 1.22's name.",
        Gc(pause_histogram),
    ),
    metric(
        "/cpu/classes/gc/total:cpu-seconds",
        Float64,
        true,
        "CPU time spent collecting: the collector thread in cycles, mark workers, mark \
         assists (not background sweeping).",
        Gc(|g| seconds(g.stats.gc_cpu_ns)),
    ),
    metric(
        "/cpu/classes/gc/mark/assist:cpu-seconds",
        Float64,
        true,
        "CPU time allocating mutators spent marking (mark assists).",
        Gc(|g| seconds(g.stats.assist_ns)),
    ),
    metric(
        "/cpu/classes/gc/pause:cpu-seconds",
        Float64,
        true,
        "Pause time times the CPUs the collector plans for (GOMAXPROCS), as Go estimates \
         the CPU a pause costs.",
        Gc(|g| seconds(g.stats.pause_total_ns.saturating_mul(g.procs as u64))),
    ),
    metric(
        "/sched/gomaxprocs:threads",
        Uint64,
        false,
        "The CPUs the collector plans for (GOMAXPROCS, else the CPUs available).",
        Gc(|g| Value::Uint64(g.procs as u64)),
    ),
    metric(
        "/tricolor/memory/heap/unused/front-cache:bytes",
        Uint64,
        false,
        "Of heap/unused: free blocks in the per-CPU (or per-thread) caches.",
        Alloc(|s| Value::Uint64(s.cached_front)),
    ),
    metric(
        "/tricolor/memory/heap/unused/transfer-cache:bytes",
        Uint64,
        false,
        "Of heap/unused: free blocks parked in the transfer caches.",
        Alloc(|s| Value::Uint64(s.cached_transfer)),
    ),
    metric(
        "/tricolor/memory/heap/unused/central:bytes",
        Uint64,
        false,
        "Of heap/unused: free object slots in small spans.",
        Alloc(|s| Value::Uint64(s.cached_central)),
    ),
    metric(
        "/tricolor/memory/heap/unused/span-tails:bytes",
        Uint64,
        false,
        "Of heap/unused: the ends of small spans too short for one more object.",
        Alloc(|s| Value::Uint64(s.span_waste)),
    ),
    metric(
        "/tricolor/malloc/small/allocs:objects",
        Uint64,
        true,
        "Small allocations made (malloc and Rust's alloc, 32 KiB and below).",
        Alloc(|s| Value::Uint64(s.small_allocs)),
    ),
    metric(
        "/tricolor/malloc/small/frees:objects",
        Uint64,
        true,
        "Small allocations freed.",
        Alloc(|s| Value::Uint64(s.small_frees)),
    ),
    metric(
        "/tricolor/malloc/large/allocs:objects",
        Uint64,
        true,
        "Large allocations made (page runs, including GC heaps' spans).",
        Alloc(|s| Value::Uint64(s.large_allocs)),
    ),
    metric(
        "/tricolor/malloc/large/frees:objects",
        Uint64,
        true,
        "Large allocations freed.",
        Alloc(|s| Value::Uint64(s.large_frees)),
    ),
    metric(
        "/tricolor/malloc/large/allocs:bytes",
        Uint64,
        true,
        "Bytes the large allocations took, in whole pages.",
        Alloc(|s| Value::Uint64(s.large_bytes_allocated)),
    ),
    metric(
        "/tricolor/memory/released/total:bytes",
        Uint64,
        true,
        "Bytes ever returned to the OS (scavenger, memory limit, tc_release_memory).",
        Alloc(|s| Value::Uint64(s.released_total)),
    ),
    metric(
        "/tricolor/scavenger/released:bytes",
        Uint64,
        true,
        "Of those, bytes the background scavenger returned.",
        Alloc(|s| Value::Uint64(s.scavenger_released)),
    ),
    metric(
        "/tricolor/gc/heap/allocated:bytes",
        Uint64,
        false,
        "The collector's heap size now: the last live bytes plus everything allocated since \
         (whole cached spans count), what the goal is compared with.",
        Gc(|g| Value::Uint64(g.stats.heap_bytes)),
    ),
    metric(
        "/tricolor/gc/heap/spans:bytes",
        Uint64,
        false,
        "Pages the collector's spans hold (objects, free slots, span tails).",
        Gc(|g| Value::Uint64(g.stats.span_bytes)),
    ),
    metric(
        "/tricolor/gc/pauses/max:seconds",
        Float64,
        false,
        "The longest pause since the heap was made.",
        Gc(|g| seconds(g.stats.pause_max_ns)),
    ),
    metric(
        "/tricolor/gc/pauses/total:seconds",
        Float64,
        true,
        "All pauses' time added up.",
        Gc(|g| seconds(g.stats.pause_total_ns)),
    ),
    metric(
        "/tricolor/gc/mark/background:seconds",
        Float64,
        true,
        "Wall time the collector spent in concurrent marking.",
        Gc(|g| seconds(g.stats.mark_ns)),
    ),
    metric(
        "/tricolor/gc/wait/total:seconds",
        Float64,
        true,
        "Time allocating mutators waited for marking to finish (assists included): latency \
         for that mutator, not a pause.",
        Gc(|g| seconds(g.stats.wait_total_ns)),
    ),
    metric(
        "/tricolor/gc/mutators:threads",
        Uint64,
        false,
        "Threads attached to the heap as mutators.",
        Gc(|g| Value::Uint64(u64::from(g.stats.mutators))),
    ),
    metric(
        "/tricolor/gc/cpu-limited:bool",
        Uint64,
        false,
        "1 when the CPU limiter let the heap exceed the memory limit at the last cycle.",
        Gc(|g| Value::Uint64(u64::from(g.stats.cpu_limited))),
    ),
];

/// Every metric's description, in a stable order.
pub fn all() -> impl ExactSizeIterator<Item = &'static Description> {
    METRICS.iter().map(|m| &m.desc)
}

/// The description of `name`, if it is a metric.
pub fn describe(name: &str) -> Option<&'static Description> {
    all().find(|d| d.name == name)
}

/// Fills each sample's value: the allocator's figures and the default heap's (module docs).
/// Unknown names, and `/gc/` names when there is no default heap, read [`Value::Bad`].
pub fn read(samples: &mut [Sample]) {
    read_from(Heap::default_heap_if_made(), samples);
}

impl Heap {
    /// As [`read`], with the `/gc/` figures taken from this heap.
    pub fn read_metrics(&self, samples: &mut [Sample]) {
        read_from(Some(self), samples);
    }
}

fn read_from(heap: Option<&Heap>, samples: &mut [Sample]) {
    let metric = |name: &str| METRICS.iter().find(|m| m.desc.name == name);
    let wants = |alloc: bool| {
        samples
            .iter()
            .any(|s| metric(&s.name).is_some_and(|m| matches!(m.read, Alloc(_)) == alloc))
    };
    let snap = Snapshot {
        alloc: if wants(true) {
            tricolor_alloc::stats()
        } else {
            AllocStats::default()
        },
        gc: heap.filter(|_| wants(false)).map(|h| {
            let stats = h.stats();
            let pause_histogram = h.stats_lock().pause_histogram;
            GcSnapshot {
                stats,
                pause_histogram,
                procs: h.config().effective_procs(),
            }
        }),
    };
    for s in samples.iter_mut() {
        s.value = match metric(&s.name).map(|m| &m.read) {
            Some(Alloc(f)) => f(&snap.alloc),
            Some(Gc(f)) => snap.gc.as_ref().map_or(Value::Bad, f),
            None => Value::Bad,
        };
    }
}

impl Heap {
    /// The collector's figures now.
    pub fn stats(&self) -> GcStats {
        // Lock order: `world` and `central` before the `stats` leaf.
        // The finalizer thread's mutator is the collector's own: not counted.
        let mutators = self.world_lock().mutators.len();
        let mutators = mutators.saturating_sub(self.finalizer_attached() as usize) as u32;
        let span_bytes = self.central_lock().span_bytes;
        let st = self.stats_lock();
        GcStats {
            cycles: st.cycles,
            live_bytes: st.marked() as u64,
            heap_bytes: self.pacing.live.load(Ordering::Relaxed) as u64,
            heap_goal: self
                .pacing
                .goal
                .load(Ordering::Relaxed)
                .min(i64::MAX as usize) as u64,
            span_bytes: span_bytes as u64,
            pause_total_ns: st.pause_total,
            pause_max_ns: st.pause_max,
            pause_ns: st.pauses,
            gc_percent: self.pacing.gc_percent.load(Ordering::Relaxed) as i64,
            memory_limit: tricolor_alloc::memory_limit(),
            cpu_limited: st.limited() as u32,
            mutators,
            pauses: st.npauses,
            wait_total_ns: self.times.wait_total_ns.load(Ordering::Relaxed),
            wait_max_ns: self.times.wait_max_ns.load(Ordering::Relaxed),
            assist_ns: self.times.assist_ns.load(Ordering::Relaxed),
            mark_ns: st.mark_total,
            gc_cpu_ns: self.times.gc_cpu_ns.load(Ordering::Relaxed),
            gc_cpu_fraction: self.gc_cpu_fraction(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::pause_bucket;

    #[test]
    fn pause_buckets_are_ordered_and_hold_their_pauses() {
        let b = pause_boundaries();
        assert_eq!(b.len(), PAUSE_BUCKETS + 1);
        assert!(b.windows(2).all(|w| w[0] < w[1]), "{b:?}");
        for ns in [
            0,
            1,
            255,
            256,
            300,
            319,
            320,
            511,
            512,
            1000,
            12_345,
            999_999,
            1 << 35,
            (1 << 36) - 1,
            1 << 36,
            u64::MAX,
        ] {
            let i = pause_bucket(ns);
            let s = ns as f64 * 1e-9;
            assert!(b[i] <= s && s < b[i + 1], "{ns} ns in bucket {i}");
        }
    }

    #[test]
    fn names_are_unique_and_carry_a_unit() {
        let names: Vec<_> = all().map(|d| d.name).collect();
        for (i, n) in names.iter().enumerate() {
            assert!(n.starts_with('/') && n.contains(':'), "{n}");
            assert!(!names[..i].contains(n), "{n} twice");
        }
    }
}
