//! `tricolor bench`'s pair table: nanoseconds per allocation-and-free pair at each size from
//! 16 B to 32 KiB, every allocator in one child process taking turns chunk by chunk
//! (`tricolor_benches::pairs`, which says why), with the speed goal's verdict per size
//! (`goals`: at most 0.90 x the best of jemalloc, mimalloc and TCMalloc).

use crate::goals::{self, Standing};
use std::process::{Command, ExitCode};
use tricolor_benches::Rival;
use tricolor_benches::pairs::{self, SIZES};

/// The hidden sub-command the child runs.
pub const CHILD: &str = "__pairs-cell";

/// Timed chunks per allocator and size for each of `--runs`.
const CHUNKS_PER_RUN: usize = 10;

/// Runs the pair table for `rivals` and prints it; false if the child failed.
pub fn table(rivals: &[Rival], scale: usize, runs: usize) -> bool {
    let exe = std::env::current_exe().expect("own path");
    let rounds = runs * CHUNKS_PER_RUN;
    println!(
        "\npairs: one allocation and its free, back to back, at each size (the cache-hit paths):\n\
         ns per pair, the fastest of {rounds} chunks of {} pairs, every allocator in one process\n\
         taking turns chunk by chunk (noise only adds time, and then to all alike)",
        pairs::CHUNK * scale
    );
    let mut args = vec![CHILD.to_string(), scale.to_string(), rounds.to_string()];
    args.extend(rivals.iter().map(|r| r.name().to_string()));
    let out = Command::new(&exe)
        .args(&args)
        .output()
        .expect("spawn pairs child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let columns: Vec<(Rival, Vec<f64>)> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("PAIRS "))
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let r = Rival::parse(f.next()?)?;
            let v: Vec<f64> = f.map(|v| v.parse().ok()).collect::<Option<_>>()?;
            (v.len() == SIZES.len()).then_some((r, v))
        })
        .collect();
    if !out.status.success() || columns.len() != rivals.len() {
        eprintln!(
            "tricolor bench: the pair table's child failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        return false;
    }
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
        match Standing::of(&times) {
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
    true
}

fn size_name(size: usize) -> String {
    if size >= 1024 {
        format!("{} KiB", size / 1024)
    } else {
        format!("{size} B")
    }
}

/// The child: `__pairs-cell <scale> <rounds> <allocator>...`; prints one line
/// `PAIRS <allocator> <ns per pair>...` per allocator, one figure per size of `SIZES`.
pub fn child(args: &[String]) -> ExitCode {
    let scale = args.first().and_then(|s| s.parse().ok());
    let rounds = args.get(1).and_then(|s| s.parse().ok());
    let rivals: Option<Vec<Rival>> = args.iter().skip(2).map(|s| Rival::parse(s)).collect();
    let (Some(scale), Some(rounds), Some(rivals)) = (scale, rounds, rivals) else {
        eprintln!("tricolor: bad {CHILD} arguments {args:?}");
        return ExitCode::from(2);
    };
    for (r, ns) in rivals.iter().zip(pairs::table(&rivals, scale, rounds)) {
        let ns: Vec<String> = ns.iter().map(|v| format!("{v:.3}")).collect();
        println!("PAIRS {} {}", r.name(), ns.join(" "));
    }
    ExitCode::SUCCESS
}
