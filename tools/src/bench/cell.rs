//! One cell of the workload table: one workload on one allocator, in a child process of its
//! own (this binary, run as [`CHILD`]).
//!
//! Why children: peak memory is a per-process figure (`VmHWM`), and an allocator's cached
//! memory would otherwise leak into the next cell's measurement. Each child runs one workload
//! on one allocator once untimed and once timed, and reports the time, the peak RSS above its
//! own baseline, and the workload's checksum; the parent checks that the checksums agree
//! (every allocator must have returned the same contents) and prints the table with ratios
//! to Tricolor.

use std::process::{Command, ExitCode};
use std::time::Instant;
use tricolor_benches::workloads::{self, Workload};
use tricolor_benches::{AllocFn, Rival};

/// The hidden sub-command a child runs.
pub const CHILD: &str = "__bench-cell";

/// What a cell measured: its fastest time, its highest peak RSS above the child's baseline,
/// and the workload's checksum.
pub(super) struct Cell {
    pub(super) time_ns: u128,
    pub(super) peak_kib: u64,
    pub(super) checksum: u64,
}

impl Cell {
    /// Takes in another round of the same cell: the fastest time, the highest peak. False
    /// when the round's checksum differs (its contents changed between rounds).
    pub(super) fn merge(&mut self, round: Cell) -> bool {
        self.time_ns = self.time_ns.min(round.time_ns);
        self.peak_kib = self.peak_kib.max(round.peak_kib);
        self.checksum == round.checksum
    }
}

/// The heap profiler's sampling rate for the `+profile` row: Go's default (512 KiB).
pub(super) const SAMPLED_RATE: &str = "524288";

/// Runs one child: `w` on `r`, one untimed run and one timed, with `TRICOLOR_PROFILE_RATE`
/// set to `rate` when given (and unset otherwise, so the caller's environment cannot turn
/// sampling on for the plain rows). The child's output, and its cell if it printed one.
pub(super) fn run_cell(
    exe: &std::path::Path,
    w: &Workload,
    r: Rival,
    scale: usize,
    rate: Option<&str>,
) -> (std::process::Output, Option<Cell>) {
    let mut cmd = Command::new(exe);
    cmd.args([CHILD, w.name, r.name(), &scale.to_string(), "1"]);
    match rate {
        Some(rate) => cmd.env("TRICOLOR_PROFILE_RATE", rate),
        None => cmd
            .env_remove("TRICOLOR_PROFILE_RATE")
            .env_remove("TRICOLOR_PROFILE"),
    };
    let out = cmd.output().expect("spawn benchmark child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let cell = stdout
        .lines()
        .find_map(|l| l.strip_prefix("CELL "))
        .and_then(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some(Cell {
                time_ns: f.first()?.parse().ok()?,
                peak_kib: f.get(1)?.parse().ok()?,
                checksum: f.get(2)?.parse().ok()?,
            })
        });
    (out, cell)
}

struct Timed {
    w: Workload,
    scale: usize,
    runs: usize,
}

impl AllocFn<(u128, u64)> for Timed {
    /// One untimed run (the heap's first pages faulted in, as in a program that has been
    /// running), then `runs` timed ones: the fastest, and the checksum.
    fn call<A: std::alloc::GlobalAlloc + Sync + 'static>(self, a: &'static A) -> (u128, u64) {
        let checksum = workloads::run(self.w, a, self.scale);
        let mut fastest = u128::MAX;
        for _ in 0..self.runs.max(1) {
            let t = Instant::now();
            let sum = workloads::run(self.w, a, self.scale);
            fastest = fastest.min(t.elapsed().as_nanos());
            assert_eq!(sum, checksum, "checksum changed between runs");
        }
        (fastest, checksum)
    }
}

/// The child: `__bench-cell <workload> <allocator> <scale> <runs>`; prints
/// `CELL <fastest ns> <peak KiB> <checksum>`.
pub fn child(args: &[String]) -> ExitCode {
    let (Some(w), Some(r), Some(scale), Some(runs)) = (
        args.first().and_then(|s| workloads::find(s)),
        args.get(1).and_then(|s| Rival::parse(s)),
        args.get(2).and_then(|s| s.parse().ok()),
        args.get(3).and_then(|s| s.parse().ok()),
    ) else {
        eprintln!("tricolor: bad {CHILD} arguments {args:?}");
        return ExitCode::from(2);
    };
    let baseline = status_kib("VmRSS:");
    let (time, checksum) = r.with(Timed { w, scale, runs });
    let peak = status_kib("VmHWM:").saturating_sub(baseline);
    println!("CELL {time} {peak} {checksum}");
    ExitCode::SUCCESS
}

/// A `kB` field of `/proc/self/status`.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}
