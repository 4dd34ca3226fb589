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

/// The whole-heap names (NUL-terminated, for C's `tc_stat_name`), each with what it reads
/// (module docs).
pub const NAMES: &[(&CStr, &str)] = &[
    (
        c"mapped",
        "bytes mapped read-write: the sum of the parts below",
    ),
    (
        c"in_use",
        "bytes the program holds: in_use.small + in_use.large",
    ),
    (
        c"in_use.small",
        "small objects the program holds, at their class size",
    ),
    (
        c"in_use.large",
        "large objects the program holds (whole pages)",
    ),
    (
        c"cached",
        "free blocks held for reuse: cached.front + cached.transfer + cached.central",
    ),
    (
        c"cached.front",
        "free blocks in the per-CPU or per-thread caches",
    ),
    (c"cached.transfer", "free blocks in the transfer caches"),
    (c"cached.central", "free object slots in small spans"),
    (
        c"span_waste",
        "tails of small spans too short for one more object",
    ),
    (c"free_dirty", "free pages still holding memory"),
    (
        c"released",
        "free pages holding no memory (returned to the OS or never touched)",
    ),
    (
        c"metadata",
        "span records, pagemap leaves, per-CPU slabs, thread caches",
    ),
    (c"released_total", "bytes ever returned to the OS"),
    (c"small.allocs", "small allocations ever made"),
    (
        c"small.frees",
        "small allocations ever freed (allocations minus objects in use)",
    ),
    (
        c"scavenger.released",
        "bytes the background scavenger returned",
    ),
    (c"scavenger.cpu_ns", "CPU time of the scavenger thread (ns)"),
    (c"large.allocs", "large allocations ever made"),
    (c"large.frees", "large allocations ever freed"),
    (
        c"large.bytes_allocated",
        "bytes large allocations ever took (whole pages)",
    ),
    (
        c"memory_limit",
        "the memory limit in bytes (9223372036854775807: none)",
    ),
    (c"front_end", "0: per-CPU caches, 1: per-thread caches"),
    (c"madv_free", "1 when pages are released with MADV_FREE"),
];

/// The class figure names, `class.N.` followed by one of these.
pub const CLASS_FIELDS: &[&str] = &[
    "size",
    "spans",
    "span_bytes",
    "in_use",
    "cached_front",
    "cached_transfer",
    "free_slots",
    "allocs",
    "frees",
];

fn whole(s: &AllocStats, name: &str) -> Option<u64> {
    Some(match name {
        "mapped" => s.mapped,
        "in_use" => s.in_use_small + s.in_use_large,
        "in_use.small" => s.in_use_small,
        "in_use.large" => s.in_use_large,
        "cached" => s.cached_front + s.cached_transfer + s.cached_central,
        "cached.front" => s.cached_front,
        "cached.transfer" => s.cached_transfer,
        "cached.central" => s.cached_central,
        "span_waste" => s.span_waste,
        "free_dirty" => s.free_dirty,
        "released" => s.released,
        "metadata" => s.metadata,
        "released_total" => s.released_total,
        "small.allocs" => s.small_allocs,
        "small.frees" => s.small_frees,
        "scavenger.released" => s.scavenger_released,
        "scavenger.cpu_ns" => s.scavenger_cpu_ns,
        "large.allocs" => s.large_allocs,
        "large.frees" => s.large_frees,
        "large.bytes_allocated" => s.large_bytes_allocated,
        "memory_limit" => s.memory_limit.max(0) as u64,
        "front_end" => s.front_end as u64,
        "madv_free" => s.madv_free as u64,
        _ => return None,
    })
}

fn class_field(c: &ClassStats, field: &str) -> Option<u64> {
    Some(match field {
        "size" => c.size,
        "spans" => c.spans,
        "span_bytes" => c.span_bytes,
        "in_use" => c.in_use,
        "cached_front" => c.cached_front,
        "cached_transfer" => c.cached_transfer,
        "free_slots" => c.free_slots,
        "allocs" => c.allocs,
        "frees" => c.frees,
        _ => return None,
    })
}

/// The statistic named `name` (module docs), or `None` for a name that is not one.
pub fn stat(name: &str) -> Option<u64> {
    if let Some(rest) = name.strip_prefix("class.") {
        let (n, field) = rest.split_once('.')?;
        // Digits only: "+1" or " 1" are not class numbers.
        if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let class: usize = n.parse().ok().filter(|&c| c < NUM_CLASSES)?;
        if !CLASS_FIELDS.contains(&field) {
            return None;
        }
        return class_field(&class_stats(class)?, field);
    }
    if !NAMES.iter().any(|(n, _)| n.to_bytes() == name.as_bytes()) {
        return None;
    }
    whole(&stats(), name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_name_reads_and_others_do_not() {
        for (name, _) in NAMES {
            let name = name.to_str().unwrap();
            assert!(stat(name).is_some(), "{name}");
        }
        for f in CLASS_FIELDS {
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
