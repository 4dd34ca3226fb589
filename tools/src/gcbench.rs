//! The collector table of `tricolor bench`: binary-trees and GCBench
//! (`benches/gc/gcbench.c`, `benches/gc/gcbench.go`) on Tricolor's collector, Boehm GC and
//! Go, in one run.
//!
//! The C source is compiled twice with the system C compiler: against `libtricolor.a` (built
//! here by cargo when run through `cargo run`) and against Boehm's `-lgc`; the Go source with
//! `go build`. A rival whose toolchain or library is missing is skipped with a message. The
//! programs: binary-trees, GCBench, and the message buffer (1 KiB messages, and messages of 8
//! linked nodes). Each cell is `runs` runs of one program: median wall time, median peak RSS
//! (`ru_maxrss` from `wait4`), and the collections and pause p50/max the program reports for
//! itself (Tricolor: `tc_gc_stats`, each stop of the world; Boehm: its stop/start-world events;
//! Go: `MemStats.PauseNs`), medians over the runs. "wait max" is Tricolor's longest wait of an
//! allocating thread for marking to finish at the heap goal (`wait_max_ns`): not a pause, but
//! that thread's latency (Go's analogue, mark assists, is not reported per event). The
//! checksums must agree.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use crate::programs::median;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

struct Runtime {
    name: &'static str,
    exe: PathBuf,
}

/// Builds `libtricolor.a` (through cargo, when run by cargo) and returns its path.
fn tricolor_lib() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let lib = exe.parent()?.join("libtricolor.a");
    crate::programs::cargo_build("tricolor-ffi", &lib).then_some(lib)
}

fn cc(out: &Path, args: &[&str]) -> bool {
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let src = format!("{ROOT}/benches/gc/gcbench.c");
    Command::new(cc)
        .args(["-O2", "-o"])
        .arg(out)
        .arg(&src)
        .args(args)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn build(scratch: &Path) -> Vec<Runtime> {
    let mut v = Vec::new();
    match tricolor_lib() {
        Some(lib) => {
            let exe = scratch.join("gcbench-tricolor");
            let inc = format!("-I{ROOT}/ffi/include");
            let lib = lib.to_string_lossy().into_owned();
            let args = ["-DTRICOLOR", &inc, &lib, "-lpthread", "-ldl", "-lm"];
            if cc(&exe, &args) {
                v.push(Runtime {
                    name: "tricolor",
                    exe,
                });
            } else {
                eprintln!("tricolor bench: could not compile gcbench.c against libtricolor.a");
            }
        }
        None => eprintln!(
            "tricolor bench: libtricolor.a is missing: cargo build --release -p tricolor-ffi"
        ),
    }
    let exe = scratch.join("gcbench-boehm");
    if cc(&exe, &["-DBOEHM", "-lgc"]) {
        v.push(Runtime { name: "boehm", exe });
    } else {
        println!(
            "note: Boehm GC skipped (gcbench.c does not build with -lgc; apt-get install libgc-dev)"
        );
    }
    let exe = scratch.join("gcbench-go");
    let go = Command::new("go")
        .args(["build", "-o"])
        .arg(&exe)
        .arg(format!("{ROOT}/benches/gc/gcbench.go"))
        .env("GOCACHE", scratch.join("gocache"))
        .env("GO111MODULE", "off")
        .stderr(Stdio::null())
        .status();
    if go.is_ok_and(|s| s.success()) {
        v.push(Runtime { name: "go", exe });
    } else {
        println!("note: Go skipped (no `go` that builds gcbench.go; apt-get install golang-go)");
    }
    v
}

#[derive(Default, Clone, Copy)]
struct Sample {
    secs: f64,
    peak_kib: u64,
    checksum: u64,
    gcs: u64,
    p50_ns: u64,
    max_ns: u64,
    /// Tricolor only: the longest wait of the allocating thread for marking at the goal.
    wait_max_ns: Option<u64>,
    /// Message buffers only: the slowest push and the 99.9th percentile push.
    push_max_ns: Option<u64>,
    push_p999_ns: Option<u64>,
    /// The runtime's own GC CPU share (Go's `GCCPUFraction`, Tricolor's `gc_cpu_fraction`),
    /// per mille; Boehm GC reports none.
    gc_cpu_pm: Option<u64>,
    /// The pool benchmark: a get+put pair and a plain allocation, picoseconds each.
    pool_pair_ps: Option<u64>,
    alloc_ps: Option<u64>,
    /// The weak benchmark: a weak handle read, and a full collection without and with the
    /// weak handles and finalizers.
    weak_read_ps: Option<u64>,
    cycle_base_us: Option<u64>,
    cycle_us: Option<u64>,
}

/// The number after `key=` in a `key=value ...` line.
pub(crate) fn field(line: &str, key: &str) -> Option<u64> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

fn run_once(exe: &Path, args: &[String]) -> Result<Sample, String> {
    let crate::programs::Measured {
        secs,
        peak_kib,
        stdout: out,
        ..
    } = crate::programs::run_measured(
        Command::new(exe)
            .args(args)
            .env_remove("GOGC")
            .env_remove("GODEBUG")
            .env_remove("GOMEMLIMIT")
            .env_remove("TRICOLOR_GC_VERIFY"),
    )?;
    let line = out
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .ok_or_else(|| format!("no RESULT line in:\n{out}"))?;
    let get = |k| field(line, k).ok_or_else(|| format!("no {k} in {line}"));
    Ok(Sample {
        secs,
        peak_kib,
        checksum: get("checksum")?,
        gcs: get("gcs")?,
        p50_ns: get("p50_ns")?,
        max_ns: get("max_ns")?,
        wait_max_ns: field(line, "wait_max_ns"),
        push_max_ns: field(line, "push_max_ns"),
        push_p999_ns: field(line, "push_p999_ns"),
        gc_cpu_pm: field(line, "gc_cpu_pm"),
        pool_pair_ps: field(line, "pool_pair_ps"),
        alloc_ps: field(line, "alloc_ps"),
        weak_read_ps: field(line, "weak_read_ps"),
        cycle_base_us: field(line, "cycle_base_us"),
        cycle_us: field(line, "cycle_us"),
    })
}

/// The median of an optional figure that every run of a program reports or none does.
fn optional_median(samples: &[Sample], get: impl Fn(&Sample) -> Option<u64>) -> Option<u64> {
    get(&samples[0]).map(|_| median(samples.iter().filter_map(&get).collect()))
}

/// An optional figure in ms, or "-".
fn opt_ms(ns: Option<u64>) -> String {
    ns.map_or("-".into(), |n| format!("{} ms", ms(n)))
}

fn ms(ns: u64) -> String {
    let ms = ns as f64 / 1e6;
    if ms < 1.0 {
        format!("{ms:.3}")
    } else {
        format!("{ms:.1}")
    }
}

/// Prints the collector table; false if a program failed or checksums differ.
pub fn table(runs: usize, depth: u32, svg: Option<&Path>) -> bool {
    let scratch = std::env::temp_dir().join(format!("tricolor-gcbench-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&scratch);
    let runtimes = build(&scratch);
    let mut ok = !runtimes.is_empty();
    println!(
        "\ncollectors: {runs} runs per cell, medians; peak = ru_maxrss; pauses as each runtime reports its stop-the-world pauses; GC CPU = the runtime's own share of the CPU time available (wall x GOMAXPROCS) spent collecting (Go's GCCPUFraction)"
    );
    println!("ratios are runtime / tricolor: above 1.00 means Tricolor is faster or smaller\n");
    println!(
        "{:<18} {:<9} {:>9} {:>6} {:>9} {:>6} {:>5} {:>10} {:>10} {:>9} {:>9} {:>10} {:>6}",
        "benchmark",
        "runtime",
        "wall ms",
        "ratio",
        "peak MiB",
        "ratio",
        "GCs",
        "pause p50",
        "pause max",
        "wait max",
        "push max",
        "push p99.9",
        "GC CPU"
    );
    let benches = [
        (
            format!("binary-trees {depth}"),
            vec!["binary-trees".to_string(), depth.to_string()],
        ),
        ("gcbench".to_string(), vec!["gcbench".to_string()]),
        ("msgbuf".to_string(), vec!["msgbuf".to_string()]),
        ("msgbuf-ptr".to_string(), vec!["msgbuf-ptr".to_string()]),
    ];
    // (benchmark, runtime, pause p50 ms, pause max ms) for `--svg`.
    let mut pause_rows: Vec<(String, String, f64, f64)> = Vec::new();
    for (title, args) in &benches {
        let mut base: Option<Sample> = None;
        let mut checksum = None;
        for (i, rt) in runtimes.iter().enumerate() {
            let mut samples = Vec::new();
            for _ in 0..runs {
                match run_once(&rt.exe, args) {
                    Ok(s) => samples.push(s),
                    Err(e) => {
                        eprintln!("tricolor bench: {title} on {}: {e}", rt.name);
                        ok = false;
                        break;
                    }
                }
            }
            if samples.len() != runs {
                continue;
            }
            let m = Sample {
                secs: median(samples.iter().map(|s| s.secs).collect()),
                peak_kib: median(samples.iter().map(|s| s.peak_kib).collect()),
                checksum: samples[0].checksum,
                gcs: median(samples.iter().map(|s| s.gcs).collect()),
                p50_ns: median(samples.iter().map(|s| s.p50_ns).collect()),
                max_ns: median(samples.iter().map(|s| s.max_ns).collect()),
                wait_max_ns: optional_median(&samples, |s| s.wait_max_ns),
                push_max_ns: optional_median(&samples, |s| s.push_max_ns),
                push_p999_ns: optional_median(&samples, |s| s.push_p999_ns),
                gc_cpu_pm: optional_median(&samples, |s| s.gc_cpu_pm),
                pool_pair_ps: None,
                alloc_ps: None,
                weak_read_ps: None,
                cycle_base_us: None,
                cycle_us: None,
            };
            if *checksum.get_or_insert(m.checksum) != m.checksum {
                eprintln!(
                    "tricolor bench: {title}: {} computed a different checksum",
                    rt.name
                );
                ok = false;
            }
            pause_rows.push((
                title.clone(),
                rt.name.to_string(),
                m.p50_ns as f64 / 1e6,
                m.max_ns as f64 / 1e6,
            ));
            let b = *base.get_or_insert(m);
            println!(
                "{:<18} {:<9} {:>9.1} {:>6.2} {:>9.1} {:>6.2} {:>5} {:>7} ms {:>7} ms {:>9} {:>9} {:>10} {:>6}",
                if i == 0 { title.as_str() } else { "" },
                rt.name,
                m.secs * 1e3,
                m.secs / b.secs,
                m.peak_kib as f64 / 1024.0,
                m.peak_kib as f64 / b.peak_kib.max(1) as f64,
                m.gcs,
                ms(m.p50_ns),
                ms(m.max_ns),
                opt_ms(m.wait_max_ns),
                opt_ms(m.push_max_ns),
                opt_ms(m.push_p999_ns),
                m.gc_cpu_pm
                    .map_or("-".into(), |pm| format!("{:.1}%", pm as f64 / 10.0)),
            );
        }
    }
    if let Some(dir) = svg {
        let path = dir.join("gc-pauses.svg");
        if let Err(e) = crate::charts::pauses(&path.to_string_lossy(), &pause_rows) {
            eprintln!("tricolor bench: {}: {e}", path.display());
            ok = false;
        }
    }
    ok &= pool_table(&runtimes, runs);
    ok &= weak_table(&runtimes, runs);
    println!(
        "\nbenchmarks (benches/gc/): binary-trees N: the Benchmarks Game program; gcbench: Boehm's GCBench (stretch 18, long-lived 16, depths 4..16); msgbuf: the GC latency experiment (window of 200,000 messages of 1 KiB, 1,000,000 pushes, each timed: push max / p99.9 is the mutator's latency); msgbuf-ptr: each message a list of 8 nodes of 128 B"
    );
    let _ = std::fs::remove_dir_all(&scratch);
    ok
}

/// The pool table: a get+put pair of a 32-byte object against allocating one, medians of
/// `runs` runs of 20,000,000 each; false if a run failed or checksums differ.
fn pool_table(runtimes: &[Runtime], runs: usize) -> bool {
    println!(
        "\npool: 20,000,000 get+put pairs of a 32-byte object (Tricolor's tc_pool, Go's sync.Pool; Boehm has none), then as many plain allocations; ns per operation, medians"
    );
    println!(
        "{:<9} {:>11} {:>9} {:>12} {:>14}",
        "runtime", "get+put ns", "alloc ns", "pair/alloc", "pair/tricolor"
    );
    let (ok, all) = runs_of(runtimes, runs, "pool");
    let mut base = None;
    for (name, samples) in all {
        let pair = optional_median(&samples, |s| s.pool_pair_ps);
        let alloc = optional_median(&samples, |s| s.alloc_ps);
        let ns = |ps: Option<u64>| ps.map_or("-".into(), |p| format!("{:.2}", p as f64 / 1e3));
        let b = *base.get_or_insert(pair);
        let ratio = |a: Option<u64>, b: Option<u64>| match (a, b) {
            (Some(a), Some(b)) if b > 0 => format!("{:.2}", a as f64 / b as f64),
            _ => "-".into(),
        };
        println!(
            "{:<9} {:>11} {:>9} {:>12} {:>14}",
            name,
            ns(pair),
            ns(alloc),
            ratio(pair, alloc),
            ratio(pair, b)
        );
    }
    ok
}

/// The runs of `mode` on every runtime, `runs` each (a runtime whose runs fail is left out);
/// false if a run failed or checksums differ.
fn runs_of(
    runtimes: &[Runtime],
    runs: usize,
    mode: &str,
) -> (bool, Vec<(&'static str, Vec<Sample>)>) {
    let (mut ok, mut checksum, mut out) = (true, None, Vec::new());
    for rt in runtimes {
        let samples: Vec<Sample> = (0..runs)
            .filter_map(|_| match run_once(&rt.exe, &[mode.to_string()]) {
                Ok(s) => Some(s),
                Err(e) => {
                    eprintln!("tricolor bench: {mode} on {}: {e}", rt.name);
                    None
                }
            })
            .collect();
        if samples.len() != runs {
            ok = false;
            continue;
        }
        if *checksum.get_or_insert(samples[0].checksum) != samples[0].checksum {
            eprintln!(
                "tricolor bench: {mode}: {} computed a different checksum",
                rt.name
            );
            ok = false;
        }
        out.push((rt.name, samples));
    }
    (ok, out)
}

/// The weak-handle and finalizer table: a weak handle read, and what 100,000 weak handles
/// and 10,000 finalizers on live objects add to a full collection of 100,000 objects.
fn weak_table(runtimes: &[Runtime], runs: usize) -> bool {
    println!(
        "\nweak handles and finalizers: a weak handle read (Boehm: a disappearing link read under its lock; Go 1.19 has no weak pointers); a full collection of 100,000 live 32-byte objects (median of 5), then with 100,000 weak handles and 10,000 finalizers on them; medians"
    );
    println!(
        "{:<9} {:>12} {:>12} {:>16} {:>10}",
        "runtime", "weak read ns", "full GC ms", "with them ms", "added ms"
    );
    let (ok, all) = runs_of(runtimes, runs, "weak");
    for (name, samples) in all {
        let get = |f: fn(&Sample) -> Option<u64>| optional_median(&samples, f);
        let (read, base, with) = (
            get(|s| s.weak_read_ps),
            get(|s| s.cycle_base_us),
            get(|s| s.cycle_us),
        );
        let ms = |us: Option<u64>| us.map_or("-".into(), |u| format!("{:.2}", u as f64 / 1e3));
        let added = match (base, with) {
            (Some(b), Some(w)) => format!("{:.2}", (w as f64 - b as f64) / 1e3),
            _ => "-".into(),
        };
        println!(
            "{:<9} {:>12} {:>12} {:>16} {:>10}",
            name,
            read.map_or("-".into(), |p| format!("{:.2}", p as f64 / 1e3)),
            ms(base),
            ms(with),
            added
        );
    }
    ok
}

/// `tricolor bench --gc` alone.
pub fn main(runs: usize, depth: u32, svg: Option<&Path>) -> ExitCode {
    if table(runs, depth, svg) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
