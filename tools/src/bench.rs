//! `tricolor bench`: every allocator workload on every allocator, one child process per cell.
//!
//! Why children: peak memory is a per-process figure (`VmHWM`), and an allocator's cached
//! memory would otherwise leak into the next cell's measurement. Each child runs one workload
//! on one allocator once untimed and once timed, and reports the time, the peak RSS above its
//! own baseline, and the workload's checksum; the parent checks that the checksums agree
//! (every allocator must have returned the same contents) and prints the table with ratios
//! to Tricolor.
//!
//! Why rounds, and the fastest: this shared machine's noise comes in bursts of tens to
//! hundreds of milliseconds that slow whatever runs by up to 2x (the same pair loop, started
//! again and again, takes 4.8 ns or 8-9 ns for every allocator alike: `tricolor bench --pairs`).
//! A child timing its runs back to back lets one burst own a cell, and the median of such runs
//! reports the burst (`churn` at 55 ms where it takes 27). So each cell takes `rounds` rounds, every
//! allocator's child in turn in each round, and reports the fastest round's time, since
//! noise only adds time, and the highest round's peak.

use crate::goals::{self, Standing};
use std::process::{Command, ExitCode};
use std::time::Instant;
use tricolor_benches::workloads::{self, Workload};
use tricolor_benches::{AllocFn, Rival};

/// The hidden sub-command a child runs.
pub const CHILD: &str = "__bench-cell";

/// Whether a table runs with the others, alone, or not at all.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    With,
    Only,
    Without,
}

struct Options {
    scale: usize,
    runs: usize,
    programs: bool,
    /// `--lox`: only the Lox table.
    lox: bool,
    runs_given: bool,
    spike: Part,
    spike_seconds: f64,
    /// The pair table (`pairs`).
    pairs: Part,
    /// The `+profile` row: Tricolor with heap profiling on (`--no-profile` drops it).
    sampled: bool,
    /// The collector table: with the rest, alone (`--gc`), or not (`--no-gc`).
    gc: Part,
    depth: u32,
    only_programs: Vec<String>,
    workloads: Vec<Workload>,
    rivals: Vec<Rival>,
    /// `--svg DIR`: the tables also as charts there.
    svg: Option<std::path::PathBuf>,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        scale: 1,
        runs: 5,
        programs: false,
        lox: false,
        runs_given: false,
        spike: Part::With,
        spike_seconds: 10.0,
        pairs: Part::With,
        sampled: true,
        gc: Part::With,
        depth: 18,
        only_programs: Vec::new(),
        workloads: Vec::new(),
        rivals: Vec::new(),
        svg: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--long" => {
                o.scale = 10;
                o.runs = 7;
                o.runs_given = true;
            }
            "--spike" => o.spike = Part::Only,
            "--no-spike" => o.spike = Part::Without,
            "--pairs" => o.pairs = Part::Only,
            "--no-pairs" => o.pairs = Part::Without,
            "--no-profile" => o.sampled = false,
            "--gc" => o.gc = Part::Only,
            "--lox" => o.lox = true,
            "--no-gc" => o.gc = Part::Without,
            "--depth" => {
                o.depth = value("--depth")?
                    .parse()
                    .ok()
                    .filter(|d| (4..=24).contains(d))
                    .ok_or("--depth takes a depth from 4 to 24")?;
            }
            "--scale" => {
                o.scale = value("--scale")?
                    .parse()
                    .map_err(|_| "--scale takes a positive integer")?
            }
            "--runs" => {
                o.runs = value("--runs")?
                    .parse()
                    .map_err(|_| "--runs takes a positive integer")?;
                o.runs_given = true;
            }
            "--svg" => o.svg = Some(value("--svg")?.into()),
            "--programs" => o.programs = true,
            "--program" => {
                o.programs = true;
                o.only_programs.push(value("--program")?);
            }
            "--workload" => {
                let v = value("--workload")?;
                o.workloads
                    .push(workloads::find(&v).ok_or_else(|| format!("unknown workload '{v}'"))?);
            }
            "--allocator" => {
                let v = value("--allocator")?;
                o.rivals
                    .push(Rival::parse(&v).ok_or_else(|| format!("unknown allocator '{v}'"))?);
            }
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    if o.scale == 0 || o.runs == 0 {
        return Err("--scale and --runs must be at least 1".into());
    }
    if o.workloads.is_empty() {
        o.workloads = workloads::ALL.to_vec();
    } else {
        if o.spike == Part::With {
            o.spike = Part::Without;
        }
        if o.gc == Part::With {
            o.gc = Part::Without;
        }
        if o.pairs == Part::With {
            o.pairs = Part::Without;
        }
    }
    // A table asked for alone (`--spike`, `--pairs`) runs without the others.
    if o.spike == Part::Only || o.pairs == Part::Only {
        for t in [&mut o.spike, &mut o.pairs, &mut o.gc] {
            if *t == Part::With {
                *t = Part::Without;
            }
        }
    }
    if o.rivals.is_empty() {
        o.rivals = Rival::ALL.to_vec();
    }
    // A rival that cannot be loaded here (TCMalloc's library missing) is skipped with a note.
    o.rivals.retain(|r| {
        r.available() || {
            println!("{}", r.missing_note());
            false
        }
    });
    Ok(o)
}

struct Cell {
    time_ns: u128,
    peak_kib: u64,
    checksum: u64,
}

impl Cell {
    /// Takes in another round of the same cell: the fastest time, the highest peak. False
    /// when the round's checksum differs (its contents changed between rounds).
    fn merge(&mut self, round: Cell) -> bool {
        self.time_ns = self.time_ns.min(round.time_ns);
        self.peak_kib = self.peak_kib.max(round.peak_kib);
        self.checksum == round.checksum
    }
}

/// `tricolor bench`.
pub fn main(args: &[String]) -> ExitCode {
    let o = match parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("tricolor bench: {e} (see `tricolor help`)");
            return ExitCode::from(2);
        }
    };
    if o.programs {
        return crate::programs::main(if o.runs_given { o.runs } else { 3 }, &o.only_programs);
    }
    if let Some(dir) = &o.svg {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("tricolor bench: --svg {}: {e}", dir.display());
            return ExitCode::from(2);
        }
    }
    if o.gc == Part::Only {
        return crate::gcbench::main(o.runs, o.depth, o.svg.as_deref());
    }
    if o.lox {
        return crate::lox::main(if o.runs_given { o.runs } else { 3 });
    }
    let exe = std::env::current_exe().expect("own path");
    let started = Instant::now();
    let mut failed = false;
    let workloads: &[Workload] = if o.spike == Part::Only || o.pairs == Part::Only {
        &[]
    } else {
        &o.workloads
    };
    // The allocator tables' rounds: `--runs`, else 3 (each round is a warm-up run and a timed
    // one: 3 rounds are 6 runs of each cell).
    let rounds = if o.runs_given { o.runs } else { 3 };
    if !workloads.is_empty() {
        println!(
            "tricolor bench: scale {}, wall time the fastest of {rounds} rounds (allocators taking turns), peak RSS\n\
             the highest; peak = RSS high-water mark above the process's baseline",
            o.scale
        );
        println!(
            "ratios are allocator / tricolor: above 1.00 means Tricolor is faster or smaller\n"
        );
        println!(
            "{:<9} {:<9} {:>10} {:>8} {:>10} {:>8}",
            "workload", "allocator", "ms", "time x", "peak MiB", "peak x"
        );
    }
    // Per rival other than Tricolor: (time ratio, peak ratio) per workload, for `--svg`.
    type Ratios = Vec<Option<(f64, f64)>>;
    let mut chart_rows: Vec<(Rival, Ratios)> = o
        .rivals
        .iter()
        .filter(|r| **r != Rival::Tricolor)
        .map(|&r| (r, Vec::new()))
        .collect();
    // The speed goal's verdict per workload (`goals`).
    let mut standings: Vec<(&str, Standing)> = Vec::new();
    // Tricolor sampled over Tricolor, per workload (the sampling goal, `goals`).
    let mut sampling_costs: Vec<(&str, f64)> = Vec::new();
    for w in workloads {
        let mut cells: Vec<(Rival, Cell)> = Vec::new();
        let mut crashed: Vec<(Rival, String)> = Vec::new();
        // Rounds, allocators taking turns (module docs); an allocator that fails a round
        // leaves the table.
        let mut live = o.rivals.clone();
        let mut sampled: Option<Cell> = None;
        for _ in 0..rounds {
            live.retain(|&r| {
                let (out, cell) = run_cell(&exe, w, r, o.scale, None);
                match cell {
                    Some(c) if out.status.success() => {
                        match cells.iter_mut().find(|(q, _)| *q == r) {
                            Some((_, kept)) => {
                                if !kept.merge(c) {
                                    failed = true;
                                    eprintln!(
                                        "tricolor bench: {} on {}: checksums differ between rounds",
                                        w.name,
                                        r.name()
                                    );
                                }
                            }
                            None => cells.push((r, c)),
                        }
                        return true;
                    }
                    // Tricolor failing fails the bench; a rival crashing is reported in the
                    // table (TCMalloc crashes in prodcons8 unless kept off `sbrk`:
                    // `tricolor_benches::tcmalloc`).
                    _ if r != Rival::Tricolor => crashed.push((r, out.status.to_string())),
                    _ => {
                        failed = true;
                        eprintln!(
                            "tricolor bench: {} on {} failed ({}):\n{}",
                            w.name,
                            r.name(),
                            out.status,
                            String::from_utf8_lossy(&out.stderr)
                        );
                    }
                }
                false
            });
            // Tricolor again with heap profiling at Go's default rate, in the same round
            // (the cost the sampling goal bounds, `goals::sampling_summary`).
            if o.sampled && live.contains(&Rival::Tricolor) {
                let (out, cell) = run_cell(&exe, w, Rival::Tricolor, o.scale, Some(SAMPLED_RATE));
                match (cell, &mut sampled) {
                    (Some(c), Some(kept)) if out.status.success() => {
                        if !kept.merge(c) {
                            failed = true;
                            eprintln!(
                                "tricolor bench: {} on tricolor with sampling: checksums differ between rounds",
                                w.name
                            );
                        }
                    }
                    (Some(c), None) if out.status.success() => sampled = Some(c),
                    _ => {
                        failed = true;
                        eprintln!(
                            "tricolor bench: {} on tricolor with sampling failed ({}):\n{}",
                            w.name,
                            out.status,
                            String::from_utf8_lossy(&out.stderr)
                        );
                    }
                }
            }
        }
        // A rival that failed a round is reported as failed, not with its earlier rounds.
        cells.retain(|(r, _)| live.contains(r));
        let ours = cells
            .iter()
            .find(|(r, _)| *r == Rival::Tricolor)
            .map(|(_, c)| c);
        let base = ours.map(|c| (c.time_ns, c.peak_kib));
        for (i, (r, c)) in cells.iter().enumerate() {
            let (t_ratio, m_ratio) = match base {
                Some((t, m)) => (
                    format!("{:.2}", c.time_ns as f64 / t.max(1) as f64),
                    format!("{:.2}", c.peak_kib as f64 / m.max(1) as f64),
                ),
                None => ("-".into(), "-".into()),
            };
            println!(
                "{:<9} {:<9} {:>10.1} {:>8} {:>10.1} {:>8}",
                if i == 0 { w.name } else { "" },
                r.name(),
                c.time_ns as f64 / 1e6,
                t_ratio,
                c.peak_kib as f64 / 1024.0,
                m_ratio
            );
        }
        if let (Some(c), Some(ours)) = (&sampled, ours) {
            let (t, m) = (ours.time_ns, ours.peak_kib);
            if c.checksum != ours.checksum {
                failed = true;
                eprintln!("tricolor bench: {}: sampling changed the contents", w.name);
            }
            let ratio = c.time_ns as f64 / t.max(1) as f64;
            println!(
                "{:<9} {:<9} {:>10.1} {:>8.2} {:>10.1} {:>8.2}",
                "",
                "+profile",
                c.time_ns as f64 / 1e6,
                ratio,
                c.peak_kib as f64 / 1024.0,
                c.peak_kib as f64 / m.max(1) as f64
            );
            sampling_costs.push((w.name, ratio));
        }
        for (r, why) in &crashed {
            println!("{:<9} {:<9} failed ({why})", "", r.name());
        }
        let times: Vec<(Rival, f64)> = cells.iter().map(|(r, c)| (*r, c.time_ns as f64)).collect();
        if let Some(s) = Standing::of(&times) {
            standings.push((w.name, s));
        }
        for (rival, row) in &mut chart_rows {
            let cell = cells.iter().find(|(r, _)| r == rival).map(|(_, c)| c);
            row.push(cell.zip(base).map(|(c, (t, m))| {
                (
                    c.time_ns as f64 / t.max(1) as f64,
                    c.peak_kib as f64 / m.max(1) as f64,
                )
            }));
        }
        if let Some((_, first)) = cells.first() {
            if cells.iter().any(|(_, c)| c.checksum != first.checksum) {
                failed = true;
                eprintln!(
                    "tricolor bench: {}: checksums differ between allocators (a block's contents changed)",
                    w.name
                );
            }
        }
    }
    if let (Some(dir), false) = (&o.svg, workloads.is_empty()) {
        let names: Vec<&str> = workloads.iter().map(|w| w.name).collect();
        for (file, title, pick) in [
            (
                "allocators-time.svg",
                "allocator workloads: median time, rival / tricolor (above 1: Tricolor faster)",
                0,
            ),
            (
                "allocators-peak.svg",
                "allocator workloads: peak RSS, rival / tricolor (above 1: Tricolor smaller)",
                1,
            ),
        ] {
            let series: Vec<(&str, Vec<Option<f64>>)> = chart_rows
                .iter()
                .map(|(r, row)| {
                    let v = row
                        .iter()
                        .map(|c| c.map(|(t, m)| if pick == 0 { t } else { m }));
                    (r.name(), v.collect())
                })
                .collect();
            let path = dir.join(file);
            if let Err(e) = crate::charts::ratios(&path.to_string_lossy(), title, &names, &series) {
                eprintln!("tricolor bench: {}: {e}", path.display());
                failed = true;
            }
        }
    }
    if !standings.is_empty() {
        println!(
            "\n{:<9} {:<9} {:>10} {:>11} {:>7}  verdict",
            "workload", "best", "its ms", "tricolor ms", "x best"
        );
        for (name, s) in &standings {
            println!(
                "{:<9} {:<9} {:>10.1} {:>11.1} {:>7.2}  {}",
                name,
                s.best.name(),
                s.best_time / 1e6,
                s.ratio * s.best_time / 1e6,
                s.ratio,
                s.verdict()
            );
        }
        let all: Vec<Standing> = standings.iter().map(|(_, s)| *s).collect();
        println!("{}", goals::summary("workloads", &all, &o.rivals));
    }
    if !sampling_costs.is_empty() {
        println!("{}", goals::sampling_summary(&sampling_costs));
    }
    if !workloads.is_empty() {
        println!("\nworkloads:");
        for w in workloads {
            println!("  {:<9} {}", w.name, w.what);
        }
    }
    if o.pairs != Part::Without && !crate::pairs::table(&o.rivals, o.scale, rounds) {
        failed = true;
    }
    if o.spike != Part::Without && !crate::spike::table(&o.rivals, o.spike_seconds) {
        failed = true;
    }
    if o.gc == Part::With && !crate::gcbench::table(o.runs, o.depth, o.svg.as_deref()) {
        failed = true;
    }
    println!("total {:.1} s", started.elapsed().as_secs_f64());
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The heap profiler's sampling rate for the `+profile` row: Go's default (512 KiB).
const SAMPLED_RATE: &str = "524288";

/// Runs one child: `w` on `r`, one untimed run and one timed, with `TRICOLOR_PROFILE_RATE`
/// set to `rate` when given (and unset otherwise, so the caller's environment cannot turn
/// sampling on for the plain rows). The child's output, and its cell if it printed one.
fn run_cell(
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
