//! `tricolor bench`: the allocator tables (the workload table, `workload_table`, with what it
//! adds up to, `summary`; the pair table, `crate::pairs`; the spike table, `crate::spike`) and
//! the collector table (`crate::gcbench`); or one table alone, or `--programs` or `--lox`
//! instead (`options`). The allocator tables measure in child processes of this binary
//! (`cell` says why).

mod cell;
mod options;
mod summary;
mod workload_table;

pub use cell::{CHILD, child};

use options::{Options, Part};
use std::process::ExitCode;
use std::time::Instant;

/// `tricolor bench`.
pub fn main(args: &[String]) -> ExitCode {
    let o = match options::parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("tricolor bench: {e} (see `tricolor help`)");
            return ExitCode::from(2);
        }
    };
    if let Some(done) = run_instead(&o) {
        return done;
    }
    let started = Instant::now();
    let mut ok = true;
    if o.workload_table() {
        ok &= workload_table::table(&o, o.rounds());
    }
    ok &= other_tables(&o);
    println!("total {:.1} s", started.elapsed().as_secs_f64());
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Runs what `o` asks for in place of the tables (`--programs`, `--gc` alone, `--lox`), and
/// makes `--svg`'s directory; `None` when the tables are to run.
fn run_instead(o: &Options) -> Option<ExitCode> {
    if o.programs {
        return Some(crate::programs::main(o.rounds(), &o.only_programs));
    }
    if let Some(dir) = &o.svg {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("tricolor bench: --svg {}: {e}", dir.display());
            return Some(ExitCode::from(2));
        }
    }
    if o.gc == Part::Only {
        return Some(crate::gcbench::main(o.runs, o.depth, o.svg.as_deref()));
    }
    if o.lox {
        return Some(crate::lox::main(o.rounds()));
    }
    None
}

/// The tables after the workload table that `o` keeps: pairs, spike, collector; false if one
/// failed.
fn other_tables(o: &Options) -> bool {
    let mut ok = true;
    if o.pairs != Part::Without {
        ok &= crate::pairs::table(&o.rivals, o.scale, o.rounds());
    }
    if o.spike != Part::Without {
        ok &= crate::spike::table(&o.rivals, o.spike_seconds);
    }
    if o.gc == Part::With {
        ok &= crate::gcbench::table(o.runs, o.depth, o.svg.as_deref());
    }
    ok
}
