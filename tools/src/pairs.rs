//! `tricolor bench`'s pair table: nanoseconds per allocation-and-free pair at each size from
//! 16 B to 32 KiB (`tricolor_benches::pairs`), per allocator, each allocator in its own child
//! process (as the workload cells, `bench`), with issue 16's verdict per size (`goals`).

use crate::goals::{self, Standing};
use std::process::{Command, ExitCode};
use tricolor_benches::pairs::{self, SIZES};
use tricolor_benches::{AllocFn, Rival};

/// The hidden sub-command a child runs.
pub const CHILD: &str = "__pairs-cell";

/// Timed chunks per size in each child (`tricolor_benches::pairs::ns_per_pair`).
const CHUNKS: usize = 10;

struct Run {
    scale: usize,
    chunks: usize,
}

impl AllocFn<Vec<f64>> for Run {
    fn call<A: std::alloc::GlobalAlloc + Sync + 'static>(self, a: &'static A) -> Vec<f64> {
        SIZES
            .iter()
            .map(|&size| pairs::ns_per_pair(a, size, self.scale, self.chunks))
            .collect()
    }
}

/// Runs every size on every allocator in `rivals` and prints the table; false if Tricolor's
/// child failed. The table takes `runs` rounds; each round starts one child per allocator in
/// turn, which times every size once (its fastest chunk, `tricolor_benches::pairs`), and each
/// cell is the fastest of its rounds: a burst of machine noise lands on one round of one
/// allocator, and one child per allocator timing back to back let a burst own a cell.
pub fn table(rivals: &[Rival], scale: usize, runs: usize) -> bool {
    let exe = std::env::current_exe().expect("own path");
    println!(
        "\npairs: one allocation and its free, back to back, at each size (the cache-hit paths):\n\
         ns per pair, the fastest of {runs} rounds x {} chunks of {} pairs (noise only adds time),\n\
         allocators taking turns",
        CHUNKS,
        pairs::PAIRS * scale / CHUNKS
    );
    let mut ok = true;
    // Per allocator still in the table: each round's figures, by size.
    let mut rounds: Vec<(Rival, Vec<Vec<f64>>)> = rivals.iter().map(|&r| (r, Vec::new())).collect();
    for _ in 0..runs {
        rounds.retain_mut(|(r, got)| {
            let out = Command::new(&exe)
                .args([CHILD, r.name(), &scale.to_string(), &CHUNKS.to_string()])
                .output()
                .expect("spawn pairs child");
            let stdout = String::from_utf8_lossy(&out.stdout);
            let parsed = stdout
                .lines()
                .find_map(|l| l.strip_prefix("PAIRS "))
                .and_then(|l| {
                    l.split_whitespace()
                        .map(|v| v.parse().ok())
                        .collect::<Option<Vec<f64>>>()
                })
                .filter(|v| v.len() == SIZES.len() && out.status.success());
            match parsed {
                Some(v) => {
                    got.push(v);
                    return true;
                }
                // A rival that fails leaves the table with a note, as in the workload table.
                None if *r != Rival::Tricolor => println!("{} failed ({})", r.name(), out.status),
                None => {
                    ok = false;
                    eprintln!(
                        "tricolor bench: pairs on tricolor failed ({}):\n{}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
            false
        });
    }
    // Each allocator's fastest round per size.
    let columns: Vec<(Rival, Vec<f64>)> = rounds
        .into_iter()
        .map(|(r, got)| {
            let fastest = (0..SIZES.len())
                .map(|i| {
                    got.iter()
                        .map(|round| round[i])
                        .fold(f64::INFINITY, f64::min)
                })
                .collect();
            (r, fastest)
        })
        .collect();
    print!("{:<8}", "size");
    for (r, _) in &columns {
        print!(" {:>9}", r.name());
    }
    println!(" {:>9} {:>7}  verdict", "best", "x best");
    let mut standings = Vec::new();
    for (i, size) in SIZES.iter().enumerate() {
        print!("{:<8}", size_name(*size));
        for (_, v) in &columns {
            print!(" {:>9.2}", v[i]);
        }
        let times: Vec<(Rival, f64)> = columns.iter().map(|(r, v)| (*r, v[i])).collect();
        let ours = times.iter().find(|(r, _)| *r == Rival::Tricolor);
        match ours.and_then(|&(_, t)| Standing::of(t, &times)) {
            Some(s) => {
                println!(" {:>9} {:>7.2}  {}", s.best.name(), s.ratio, s.verdict());
                standings.push(s);
            }
            None => println!(),
        }
    }
    if !standings.is_empty() {
        println!("{}", goals::summary("sizes", &standings, rivals));
    }
    ok
}

fn size_name(size: usize) -> String {
    if size >= 1024 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

/// The child: `__pairs-cell <allocator> <scale> <chunks>`; prints `PAIRS <ns per pair>...`, one
/// figure per size of `SIZES`.
pub fn child(args: &[String]) -> ExitCode {
    let (r, scale, chunks) = match crate::cell::args(CHILD, args) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let ns = r.with(Run { scale, chunks });
    let ns: Vec<String> = ns.iter().map(|v| format!("{v:.3}")).collect();
    println!("PAIRS {}", ns.join(" "));
    ExitCode::SUCCESS
}
