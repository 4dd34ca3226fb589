//! `tricolor`: Tricolor's command-line tool.
//!
//! * `tricolor bench [options]` runs the allocator workloads against glibc, jemalloc,
//!   mimalloc and TCMalloc and prints the fastest round's time and the highest peak memory, with
//!   ratios to Tricolor (see `bench.rs`),
//!   then how fast each returns a freed spike of memory (see `spike.rs`), then the collector
//!   against Boehm GC and Go on binary-trees and GCBench (see `gcbench.rs`);
//!   with `--programs`, real programs under `LD_PRELOAD` instead (see `programs.rs`).
//! * `tricolor metrics` lists the metric names (see `metrics.rs`).
//! * `tricolor plot` draws a gctrace (see `plot.rs`, `charts.rs`).

mod bench;
mod charts;
mod gcbench;
mod goals;
mod lox;
mod metrics;
mod pairs;
mod plot;
mod programs;
mod spike;

use std::process::ExitCode;

const USAGE: &str = "\
usage: tricolor <command> [options]

commands:
  bench            compare Tricolor with glibc, jemalloc, mimalloc and TCMalloc, and its collector
                   with Boehm GC and Go (default: ~2 minutes); each allocator table ends with the
                   speed goal (Tricolor at most 0.90x the best of jemalloc, mimalloc and
                   TCMalloc), met or missed by how much
      --long           10x the work and 7 runs or rounds per cell (several minutes)
      --scale N        work multiplier (default 1)
      --runs N         allocator tables: rounds per cell, allocators taking turns, the fastest
                       reported (default 3); collector table: runs per cell, the median
                       reported (default 5)
      --workload W     only this workload (repeatable): churn, realloc, prodcons, prodcons2,
                       prodcons8, threads, larson, xmalloc, scratch, mstress, rptest
      --allocator A    only this allocator (repeatable): tricolor, glibc, jemalloc, mimalloc,
                       tcmalloc (Debian's libtcmalloc-minimal4, loaded with dlopen)
      --no-profile     drop the +profile rows (Tricolor again with heap profiling at Go's
                       default rate, judged against the sampling goal: at most 2% per workload)
      --pairs          only the pair table: ns per allocation-and-free pair, 16 B-32 KiB
      --no-pairs       skip the pair table
      --spike          only the spike table: RSS after a freed 800 MiB spike while the
                       program sleeps, 0-10 s, and the idle CPU it costs
      --no-spike       skip the spike table
      --gc             only the collector table: binary-trees and GCBench on Tricolor's
                       collector, Boehm GC and Go 1.19 (each skipped when not installed)
      --no-gc          skip the collector table
      --depth N        binary-trees depth (default 18)
      --lox            instead: the Lox programs of benches/lox/bench on tricolor-lox (the
                       Lox VM on the collector) and on loxcraft if installed: wall time,
                       peak RSS, GCs, longest pause
      --programs       instead: real programs under LD_PRELOAD (python, sqlite, git, xz, sort)
                       against glibc and Debian's jemalloc, mimalloc, tcmalloc (3 runs each)
      --program P      only this program (repeatable; implies --programs)
      --svg DIR        also draw the tables as charts in DIR: allocators-time.svg and
                       allocators-peak.svg (ratios per workload and rival), gc-pauses.svg
                       (median and longest pause per collector and benchmark)
  plot TRACE -o OUT.svg [--limit 512MiB]
                   draw a GODEBUG=gctrace=1 trace (Tricolor's or Go's): heap before and
                   after each cycle, live heap, goal, memory limit; each pause (log scale)
  metrics          list every metric name (Go's runtime/metrics names and Tricolor's own)
                   with its kind and meaning, as a Markdown table
  help             this text
";

fn main() -> ExitCode {
    // SAFETY: the first statement of `main`: no other thread exists yet. The benchmark
    // children inherit it; `programs` removes it for the programs it preloads TCMalloc into.
    unsafe { tricolor_benches::tcmalloc::set_skip_sbrk() };
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("bench") => bench::main(&args[1..]),
        Some("metrics") => metrics::main(&args[1..]),
        Some("plot") => plot::main(&args[1..]),
        Some(bench::CHILD) => bench::child(&args[1..]),
        Some(spike::CHILD) => spike::child(&args[1..]),
        Some(pairs::CHILD) => pairs::child(&args[1..]),
        Some("help" | "--help" | "-h") => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("tricolor: unknown command '{other}'\n\n{USAGE}");
            ExitCode::from(2)
        }
        None => {
            eprint!("{USAGE}");
            ExitCode::from(2)
        }
    }
}
