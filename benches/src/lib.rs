//! Tricolor's comparison workloads: the same code, monomorphised for each allocator, so a
//! table compares allocators and nothing else.
//!
//! * [`Rival`] names an allocator and dispatches a generic function to it.
//! * [`workloads`] holds the allocator workloads `tricolor bench` runs; each is deterministic
//!   (seeded), checks the contents of every block before freeing it, and returns a checksum
//!   that must agree across allocators.
//! * [`stress`] holds the standard allocator stress workloads (larson, xmalloc-test,
//!   cache-scratch, mstress, rptest), which join `workloads`' table.
//! * [`pairs`] times one allocation and its free at each size, for the pair table.
//! * [`spike`] measures how fast each allocator returns a freed spike of memory to the OS.
//! * [`programs`] holds the real programs run under `LD_PRELOAD` by the tests and by
//!   `tricolor bench --programs`.

pub mod pairs;
pub mod programs;
pub mod spike;
pub mod stress;
pub mod tcmalloc;
pub mod workloads;

use std::alloc::{GlobalAlloc, System};

/// The allocators compared. Tricolor first: ratios are against it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rival {
    /// Tricolor's `GlobalAlloc`.
    Tricolor,
    /// The system allocator (glibc malloc on Debian).
    Glibc,
    /// jemalloc 5 through `tikv-jemallocator`.
    Jemalloc,
    /// mimalloc 2 through the `mimalloc` crate.
    Mimalloc,
    /// gperftools' TCMalloc, loaded from Debian's `libtcmalloc-minimal4` ([`tcmalloc`]).
    Tcmalloc,
}

impl Rival {
    /// Every allocator, in table order.
    pub const ALL: [Rival; 5] = [
        Rival::Tricolor,
        Rival::Glibc,
        Rival::Jemalloc,
        Rival::Mimalloc,
        Rival::Tcmalloc,
    ];

    /// The name used on the command line and in tables.
    pub fn name(self) -> &'static str {
        match self {
            Rival::Tricolor => "tricolor",
            Rival::Glibc => "glibc",
            Rival::Jemalloc => "jemalloc",
            Rival::Mimalloc => "mimalloc",
            Rival::Tcmalloc => "tcmalloc",
        }
    }

    /// False when the allocator cannot be loaded here (TCMalloc's library is missing); such a
    /// rival is skipped with [`Rival::missing_note`].
    pub fn available(self) -> bool {
        self != Rival::Tcmalloc || tcmalloc::TcMalloc::get().is_some()
    }

    /// What to install for an unavailable rival.
    pub fn missing_note(self) -> String {
        format!(
            "{} skipped: {} not found (apt-get install libtcmalloc-minimal4)",
            self.name(),
            tcmalloc::LIBRARY.to_string_lossy()
        )
    }

    /// Parses [`Rival::name`].
    pub fn parse(s: &str) -> Option<Rival> {
        Rival::ALL.into_iter().find(|r| r.name() == s)
    }

    /// Runs `f` with this allocator as its type parameter. Panics if it is not
    /// [`available`](Rival::available).
    pub fn with<R>(self, f: impl AllocFn<R>) -> R {
        static TRICOLOR: tricolor_alloc::Tricolor = tricolor_alloc::Tricolor;
        static JEMALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
        static MIMALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
        match self {
            Rival::Tricolor => f.call(&TRICOLOR),
            Rival::Glibc => f.call(&System),
            Rival::Jemalloc => f.call(&JEMALLOC),
            Rival::Mimalloc => f.call(&MIMALLOC),
            Rival::Tcmalloc => f.call(tcmalloc::TcMalloc::get().unwrap_or_else(|| {
                panic!("{}", self.missing_note());
            })),
        }
    }
}

/// A function generic over the allocator (a closure cannot be generic, so workloads
/// implement this).
pub trait AllocFn<R> {
    /// Runs with allocator `a`.
    fn call<A: GlobalAlloc + Sync + 'static>(self, a: &'static A) -> R;
}
