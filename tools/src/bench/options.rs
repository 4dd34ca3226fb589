//! `tricolor bench`'s command line: which tables run (all, one alone, or some left out), on
//! which workloads and allocators, and how many rounds each cell takes.

use tricolor_benches::Rival;
use tricolor_benches::workloads::{self, Workload};

/// Whether a table runs with the others, alone, or not at all.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    With,
    Only,
    Without,
}

/// The parsed command line ([`parse`]).
pub(super) struct Options {
    /// `--scale`: the work multiplier (10 with `--long`).
    pub(super) scale: usize,
    /// `--runs`: the collector table's runs per cell (default 5); the other tables take
    /// [`Options::rounds`].
    pub(super) runs: usize,
    /// `--programs`: only the real programs' table.
    pub(super) programs: bool,
    /// `--lox`: only the Lox table.
    pub(super) lox: bool,
    /// Whether `--runs` (or `--long`) set `runs`.
    runs_given: bool,
    /// The spike table: with the rest, alone (`--spike`), or not (`--no-spike`).
    pub(super) spike: Part,
    /// How long the spike table watches RSS after the free.
    pub(super) spike_seconds: f64,
    /// The pair table (`pairs`).
    pub(super) pairs: Part,
    /// The `+profile` row: Tricolor with heap profiling on (`--no-profile` drops it).
    pub(super) sampled: bool,
    /// The collector table: with the rest, alone (`--gc`), or not (`--no-gc`).
    pub(super) gc: Part,
    /// `--depth`: binary-trees' depth.
    pub(super) depth: u32,
    /// `--program`: only these of `--programs`.
    pub(super) only_programs: Vec<String>,
    /// `--workload`, else all of them.
    pub(super) workloads: Vec<Workload>,
    /// `--allocator`, else all of them, less those that cannot be loaded here.
    pub(super) rivals: Vec<Rival>,
    /// `--svg DIR`: the tables also as charts there.
    pub(super) svg: Option<std::path::PathBuf>,
}

impl Options {
    /// `--runs`, else 3: the allocator tables' rounds per cell (each round is a warm-up run and
    /// a timed one: 3 rounds are 6 runs of each cell), and the runs of `--programs` and `--lox`.
    pub(super) fn rounds(&self) -> usize {
        if self.runs_given { self.runs } else { 3 }
    }

    /// Whether the workload table runs: not when the pair or spike table is asked for alone.
    pub(super) fn workload_table(&self) -> bool {
        self.spike != Part::Only && self.pairs != Part::Only
    }
}

/// Reads `tricolor bench`'s options (`tricolor help`); the message says what is wrong.
pub(super) fn parse(args: &[String]) -> Result<Options, String> {
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
