//! `tricolor bench --lox`: the Lox programs of `benches/lox/bench/` on `tricolor-lox` (the
//! Lox VM whose heap is Tricolor's collector): median wall time, peak RSS, collections, the
//! longest pause and the GC CPU share, from `runs` runs of each.

use crate::gcbench::field;
use crate::programs::median;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

struct Run {
    secs: f64,
    peak_kib: u64,
    cycles: u64,
    pause_max_ns: u64,
    gc_cpu_pm: u64,
    output: String,
}

fn run_once(exe: &Path, program: &Path) -> Result<Run, String> {
    let m = crate::programs::run_measured(
        Command::new(exe)
            .arg(program)
            .env("TRICOLOR_LOX_STATS", "1")
            .env_remove("TRICOLOR_LOX_STRESS_GC")
            .env_remove("GODEBUG"),
    )?;
    let line = m
        .stderr
        .lines()
        .find(|l| l.starts_with("gcstats "))
        .ok_or_else(|| format!("no gcstats line in:\n{}", m.stderr))?;
    let get = |k| field(line, k).ok_or_else(|| format!("no {k} in {line}"));
    Ok(Run {
        secs: m.secs,
        peak_kib: m.peak_kib,
        cycles: get("cycles")?,
        pause_max_ns: get("pause_max_ns")?,
        gc_cpu_pm: get("gc_cpu_pm")?,
        output: m.stdout,
    })
}

/// Prints the Lox table; false if a program failed or its output changed between runs.
pub fn table(runs: usize) -> bool {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|e| Some(e.parent()?.join("tricolor-lox")))
        .unwrap_or_else(|| PathBuf::from("tricolor-lox"));
    if !crate::programs::cargo_build("tricolor-lox", &exe) {
        eprintln!("tricolor bench: could not build tricolor-lox");
        return false;
    }
    let dir = Path::new(ROOT).join("benches/lox/bench");
    let mut programs: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(d) => d
            .filter_map(|e| Some(e.ok()?.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "lox"))
            .collect(),
        Err(e) => {
            eprintln!("tricolor bench: {}: {e}", dir.display());
            return false;
        }
    };
    programs.sort();
    println!(
        "\nlox: benches/lox/bench/*.lox on tricolor-lox, {runs} runs each, medians; pause max = longest stop of the world; GC CPU = the heap's gc_cpu_fraction"
    );
    println!(
        "{:<18} {:>9} {:>9} {:>6} {:>10} {:>7}",
        "program", "wall ms", "peak MiB", "GCs", "pause max", "GC CPU"
    );
    let mut ok = true;
    for p in &programs {
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        let mut samples = Vec::new();
        for _ in 0..runs {
            match run_once(&exe, p) {
                Ok(r) => samples.push(r),
                Err(e) => {
                    eprintln!("tricolor bench: {name}: {e}");
                    ok = false;
                    break;
                }
            }
        }
        if samples.len() != runs {
            continue;
        }
        if samples.iter().any(|s| s.output != samples[0].output) {
            eprintln!("tricolor bench: {name}: the output differs between runs");
            ok = false;
        }
        println!(
            "{:<18} {:>9.1} {:>9.1} {:>6} {:>7.3} ms {:>6.1}%",
            name,
            median(samples.iter().map(|s| s.secs).collect()) * 1e3,
            median(samples.iter().map(|s| s.peak_kib).collect()) as f64 / 1024.0,
            median(samples.iter().map(|s| s.cycles).collect()),
            median(samples.iter().map(|s| s.pause_max_ns).collect()) as f64 / 1e6,
            median(samples.iter().map(|s| s.gc_cpu_pm).collect()) as f64 / 10.0,
        );
    }
    ok
}

/// `tricolor bench --lox`.
pub fn main(runs: usize) -> ExitCode {
    if table(runs) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
