//! Named statistics: one figure by a stable name, for tools and scripts (in the spirit of
//! jemalloc's `mallctl("stats.allocated", ...)`): `tricolor_alloc::stat("in_use")` from Rust,
//! `tc_stat_get("in_use", &value)` from C.
//!
//! # The names
//! The whole-heap figures are the fields of [`AllocStats`] (`stats`' partition, documented
//! there) under the names of [`NAMES`], plus the sums `in_use` and `cached`. Each size class
//! `N` (0 to `NUM_CLASSES - 1`) has `class.N.size`, `class.N.spans`, `class.N.span_bytes`,
//! `class.N.in_use`, `class.N.cached_front`, `class.N.cached_transfer`, `class.N.free_slots`,
//! `class.N.allocs` and `class.N.frees` ([`ClassStats`]). A name once published keeps its meaning; new ones
//! may be added. `memory_limit` reads `i64::MAX` as "none", as Go does.
//!
//! # Cost
//! A read computes the statistics it names (`stats()` for a whole-heap name, one class's
//! figures for a class name): microseconds, never a stop of other threads' allocations
//! beyond a lock hold.

use crate::size_class::NUM_CLASSES;
use crate::stats::{AllocStats, ClassStats, class_stats, stats};
use core::ffi::CStr;

/// A whole-heap statistic: its name (NUL-terminated, for C's `tc_stat_name`), what it reads
/// (module docs), and how.
pub struct Stat {
    /// The stable name.
    pub name: &'static CStr,
    /// What it reads.
    pub what: &'static str,
    read: fn(&AllocStats) -> u64,
}

/// The whole-heap statistics.
pub const NAMES: &[Stat] = &[
    Stat {
        name: c"mapped",
        what: "bytes mapped read-write: the sum of the parts below",
        read: |s| s.mapped,
    },
    Stat {
        name: c"in_use",
        what: "bytes the program holds: in_use.small + in_use.large",
        read: |s| s.in_use_small + s.in_use_large,
    },
    Stat {
        name: c"in_use.small",
        what: "small objects the program holds, at their class size",
        read: |s| s.in_use_small,
    },
    Stat {
        name: c"in_use.large",
        what: "page runs in use (whole pages): big, over-aligned and sampled blocks, GC spans",
        read: |s| s.in_use_large,
    },
    Stat {
        name: c"cached",
        what: "free blocks held for reuse: cached.front + cached.transfer + cached.central",
        read: |s| s.cached_front + s.cached_transfer + s.cached_central,
    },
    Stat {
        name: c"cached.front",
        what: "free blocks in the per-CPU or per-thread caches",
        read: |s| s.cached_front,
    },
    Stat {
        name: c"cached.transfer",
        what: "free blocks in the transfer caches",
        read: |s| s.cached_transfer,
    },
    Stat {
        name: c"cached.central",
        what: "free object slots in small spans",
        read: |s| s.cached_central,
    },
    Stat {
        name: c"span_waste",
        what: "tails of small spans too short for one more object",
        read: |s| s.span_waste,
    },
    Stat {
        name: c"free_dirty",
        what: "free pages still holding memory",
        read: |s| s.free_dirty,
    },
    Stat {
        name: c"released",
        what: "free pages holding no memory (returned to the OS or never touched)",
        read: |s| s.released,
    },
    Stat {
        name: c"metadata",
        what: "span records, pagemap leaves, per-CPU slabs, thread caches",
        read: |s| s.metadata,
    },
    Stat {
        name: c"released_total",
        what: "bytes ever returned to the OS",
        read: |s| s.released_total,
    },
    Stat {
        name: c"small.allocs",
        what: "small allocations ever made",
        read: |s| s.small_allocs,
    },
    Stat {
        name: c"small.frees",
        what: "small allocations ever freed (allocations minus objects in use)",
        read: |s| s.small_frees,
    },
    Stat {
        name: c"scavenger.released",
        what: "bytes the background scavenger returned",
        read: |s| s.scavenger_released,
    },
    Stat {
        name: c"scavenger.cpu_ns",
        what: "CPU time of the scavenger thread (ns)",
        read: |s| s.scavenger_cpu_ns,
    },
    Stat {
        name: c"large.allocs",
        what: "page runs ever handed out (large and sampled blocks, GC spans)",
        read: |s| s.large_allocs,
    },
    Stat {
        name: c"large.frees",
        what: "page runs ever given back",
        read: |s| s.large_frees,
    },
    Stat {
        name: c"large.bytes_allocated",
        what: "bytes page runs ever took (whole pages)",
        read: |s| s.large_bytes_allocated,
    },
    Stat {
        name: c"large.peak_bytes",
        what: "the most bytes page runs in use held at once (whole pages)",
        read: |s| s.large_peak_bytes,
    },
    Stat {
        name: c"large.peak_count",
        what: "the most page runs in use at once",
        read: |s| s.large_peak_count,
    },
    Stat {
        name: c"memory_limit",
        what: "the memory limit in bytes (9223372036854775807: none)",
        read: |s| s.memory_limit.max(0) as u64,
    },
    Stat {
        name: c"front_end",
        what: "0: per-CPU caches, 1: per-thread caches",
        read: |s| s.front_end as u64,
    },
    Stat {
        name: c"madv_free",
        what: "1 when pages are released with MADV_FREE",
        read: |s| s.madv_free as u64,
    },
];

/// How a class figure is read.
pub type ClassField = fn(&ClassStats) -> u64;

/// The class figures, `class.N.` followed by one of these names, and how each is read.
pub const CLASS_FIELDS: &[(&str, ClassField)] = &[
    ("size", |c| c.size),
    ("spans", |c| c.spans),
    ("span_bytes", |c| c.span_bytes),
    ("in_use", |c| c.in_use),
    ("cached_front", |c| c.cached_front),
    ("cached_transfer", |c| c.cached_transfer),
    ("free_slots", |c| c.free_slots),
    ("allocs", |c| c.allocs),
    ("frees", |c| c.frees),
];

/// The statistic named `name` (module docs), or `None` for a name that is not one.
pub fn stat(name: &str) -> Option<u64> {
    if let Some(rest) = name.strip_prefix("class.") {
        let (n, field) = rest.split_once('.')?;
        // Digits only: "+1" or " 1" are not class numbers.
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let class: usize = n.parse().ok().filter(|&c| c < NUM_CLASSES)?;
        let (_, read) = CLASS_FIELDS.iter().find(|(f, _)| *f == field)?;
        return Some(read(&class_stats(class)?));
    }
    let st = NAMES
        .iter()
        .find(|st| st.name.to_bytes() == name.as_bytes())?;
    Some((st.read)(&stats()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(s: &AllocStats, name: &str) -> Option<u64> {
        NAMES
            .iter()
            .find(|st| st.name.to_bytes() == name.as_bytes())
            .map(|st| (st.read)(s))
    }

    #[test]
    fn every_listed_name_reads_and_others_do_not() {
        for st in NAMES {
            let name = st.name.to_str().unwrap();
            assert!(stat(name).is_some(), "{name}");
        }
        for (f, _) in CLASS_FIELDS {
            assert!(stat(&format!("class.0.{f}")).is_some(), "class.0.{f}");
            assert!(stat(&format!("class.{}.{f}", NUM_CLASSES - 1)).is_some());
        }
        for bad in [
            "",
            "Mapped",
            "mapped ",
            "class.",
            "class.0",
            "class.0.",
            "class.0.bogus",
            "class.+1.size",
            "class.01x.size",
            &format!("class.{NUM_CLASSES}.size"),
            "class.99999999999999999999999.size",
        ] {
            assert_eq!(stat(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn names_agree_with_the_struct() {
        let s = stats();
        assert_eq!(whole(&s, "mapped"), Some(s.mapped));
        assert_eq!(whole(&s, "in_use"), Some(s.in_use_small + s.in_use_large));
        assert_eq!(stat("class.3.size"), Some(class_stats(3).unwrap().size));
        assert_eq!(
            stat("memory_limit"),
            Some(crate::stats::memory_limit() as u64)
        );
    }
}
