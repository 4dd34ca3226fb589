//! `tricolor bench --lox`: the Lox programs of `benches/lox/bench/` on `tricolor-lox` (the
//! Lox VM whose heap is Tricolor's collector), and on loxcraft beside it: median wall time,
//! peak RSS, collections, the longest pause and the GC CPU share, from `runs` runs of each,
//! the two VMs run by run in turn.
//!
//! The rival: the natural one is clox (the book's C VM, NaN-boxed values, a stop-the-world
//! mark-sweep collector). No package ships clox, and its source cannot be fetched into this
//! project, so the table measures against loxcraft (crates.io, `cargo install loxcraft
//! --locked`): a Rust bytecode VM for the same language with its own stop-the-world
//! mark-sweep collector, which its author benchmarks against clox. It is found as
//! `$TRICOLOR_LOXCRAFT`, on `PATH`, or in cargo's `bin` directory, and skipped with a note
//! when missing. It reports no collections or pauses, so those cells are `-`. It prints
//! numbers in Rust's format rather than C's `%g`, so outputs are compared number by number
//! to `%g`'s six significant digits. A rival that crashes is reported in its row, not as a
//! failure of the bench.

use crate::gcbench::field;
use crate::programs::median;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

struct Run {
    secs: f64,
    peak_kib: u64,
    /// The collector's figures: tricolor-lox only.
    gc: Option<Gc>,
    output: String,
}

struct Gc {
    cycles: u64,
    pause_max_ns: u64,
    gc_cpu_pm: u64,
}

#[derive(Clone, Copy, PartialEq)]
enum Vm {
    Tricolor,
    Loxcraft,
}

fn run_once(vm: Vm, exe: &Path, program: &Path) -> Result<Run, String> {
    let mut cmd = Command::new(exe);
    match vm {
        Vm::Tricolor => cmd
            .arg(program)
            .env("TRICOLOR_LOX_STATS", "1")
            .env_remove("TRICOLOR_LOX_STRESS_GC")
            .env_remove("GODEBUG"),
        Vm::Loxcraft => cmd.arg("run").arg(program),
    };
    let m = crate::programs::run_measured(&mut cmd)?;
    let gc = match vm {
        Vm::Loxcraft => None,
        Vm::Tricolor => {
            let line = m
                .stderr
                .lines()
                .find(|l| l.starts_with("gcstats "))
                .ok_or_else(|| format!("no gcstats line in:\n{}", m.stderr))?;
            let get = |k| field(line, k).ok_or_else(|| format!("no {k} in {line}"));
            Some(Gc {
                cycles: get("cycles")?,
                pause_max_ns: get("pause_max_ns")?,
                gc_cpu_pm: get("gc_cpu_pm")?,
            })
        }
    };
    Ok(Run {
        secs: m.secs,
        peak_kib: m.peak_kib,
        gc,
        output: m.stdout,
    })
}

/// True when two outputs print the same values: equal lines, or numbers equal to `%g`'s six
/// significant digits (loxcraft prints `90005400000` where clox prints `9.00054e+10`).
fn same_output(a: &str, b: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    a.len() == b.len()
        && a.iter().zip(&b).all(|(x, y)| {
            x == y
                || match (x.parse::<f64>(), y.parse::<f64>()) {
                    (Ok(p), Ok(q)) => format!("{p:.5e}") == format!("{q:.5e}"),
                    _ => false,
                }
        })
}

/// loxcraft's executable, if installed (module docs).
fn loxcraft() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TRICOLOR_LOXCRAFT") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo")))
        .map(|c| c.join("bin"));
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .chain(cargo_bin)
        .map(|d| d.join("loxcraft"))
        .find(|p| p.is_file())
}

/// Prints the Lox table; false if a program failed on tricolor-lox or its output changed
/// between runs or differed from the rival's.
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
    let mut vms = vec![(Vm::Tricolor, "tricolor", exe)];
    match loxcraft() {
        Some(p) => vms.push((Vm::Loxcraft, "loxcraft", p)),
        None => println!(
            "\nlox: loxcraft is not installed (cargo install loxcraft --locked, or set TRICOLOR_LOXCRAFT): no rival rows"
        ),
    }
    println!(
        "\nlox: benches/lox/bench/*.lox, {runs} runs each, medians, the VMs run by run in turn; x = loxcraft / tricolor (above 1.00: Tricolor faster or smaller); pause max = longest stop of the world; GC CPU = the heap's gc_cpu_fraction"
    );
    println!(
        "{:<16} {:<9} {:>9} {:>6} {:>9} {:>6} {:>5} {:>10} {:>7}",
        "program", "VM", "wall ms", "x", "peak MiB", "x", "GCs", "pause max", "GC CPU"
    );
    let mut ok = true;
    for p in &programs {
        let name = p.file_stem().unwrap().to_string_lossy().into_owned();
        let mut samples: Vec<Result<Vec<Run>, String>> =
            vms.iter().map(|_| Ok(Vec::new())).collect();
        for _ in 0..runs {
            for ((vm, _, exe), sample) in vms.iter().zip(&mut samples) {
                if let Ok(s) = sample {
                    match run_once(*vm, exe, p) {
                        Ok(r) => s.push(r),
                        Err(e) => *sample = Err(e),
                    }
                }
            }
        }
        let mut base: Option<(f64, f64, String)> = None;
        for (i, (vm, label, _)) in vms.iter().enumerate() {
            let first = if i == 0 { name.as_str() } else { "" };
            let s = match &samples[i] {
                Ok(s) => s,
                Err(e) => {
                    let why = e.lines().next().unwrap_or("");
                    println!("{first:<16} {label:<9} failed ({why})");
                    if *vm == Vm::Tricolor {
                        eprintln!("tricolor bench: {name}: {e}");
                        ok = false;
                    }
                    continue;
                }
            };
            if s.iter().any(|r| r.output != s[0].output) {
                eprintln!("tricolor bench: {name} on {label}: the output differs between runs");
                ok = false;
            }
            let ms = median(s.iter().map(|r| r.secs).collect()) * 1e3;
            let mib = median(s.iter().map(|r| r.peak_kib).collect()) as f64 / 1024.0;
            let ratios = match &base {
                None => {
                    base = Some((ms, mib, s[0].output.clone()));
                    (String::new(), String::new())
                }
                Some((bms, bmib, out)) => {
                    if !same_output(out, &s[0].output) {
                        eprintln!("tricolor bench: {name}: {label} printed other values");
                        ok = false;
                    }
                    (format!("{:.2}", ms / bms), format!("{:.2}", mib / bmib))
                }
            };
            let gc = match s.iter().map(|r| r.gc.as_ref()).collect::<Option<Vec<_>>>() {
                Some(g) => format!(
                    "{:>5} {:>7.3} ms {:>6.1}%",
                    median(g.iter().map(|g| g.cycles).collect()),
                    median(g.iter().map(|g| g.pause_max_ns).collect()) as f64 / 1e6,
                    median(g.iter().map(|g| g.gc_cpu_pm).collect()) as f64 / 10.0,
                ),
                None => format!("{:>5} {:>10} {:>7}", "-", "-", "-"),
            };
            println!(
                "{first:<16} {label:<9} {ms:>9.1} {:>6} {mib:>9.1} {:>6} {gc}",
                ratios.0, ratios.1
            );
        }
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

#[cfg(test)]
mod tests {
    use super::same_output;

    #[test]
    fn outputs_match_number_by_number_to_six_digits() {
        assert!(same_output("true\n9.00054e+10\n", "true\n90005400000\n"));
        assert!(same_output("6.3e+06\n", "6300000\n"));
        assert!(same_output("-1\n", "-1\n"));
        assert!(!same_output("9.00055e+10\n", "90005400000\n"));
        assert!(!same_output("1\n2\n", "1\n"));
        assert!(!same_output("nil\n", "false\n"));
    }
}
