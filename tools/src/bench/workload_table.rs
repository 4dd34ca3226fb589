//! The workload table of `tricolor bench`: every allocator workload on every allocator, one
//! child process per cell and round (`cell`), with Tricolor again under heap profiling
//! (`+profile`); under it, the speed goal's verdict per workload, the sampling goal's line and,
//! with `--svg`, the ratios as charts (`summary`), and what each workload does.
//!
//! Why rounds, and the fastest: this shared machine's noise comes in bursts of tens to hundreds of
//! milliseconds that slow whatever runs by up to 2x (the same pair loop, started again and again,
//! takes 4.8 ns or 8-9 ns for every allocator alike: `tricolor bench --pairs`). A child timing its
//! runs back to back lets one burst own a cell, and the median of such runs reports the burst
//! (`churn` at 55 ms where it takes 27). So each cell takes `rounds` rounds, every allocator's
//! child in turn in each round, and reports the fastest round's time, since noise only adds time,
//! and the highest round's peak.

use super::cell::{self, Cell, SAMPLED_RATE};
use super::options::Options;
use super::summary::Summary;
use std::path::Path;
use tricolor_benches::Rival;
use tricolor_benches::workloads::Workload;

/// Runs the table of `o.workloads` on `o.rivals`, `rounds` rounds per cell, and prints it with
/// the lines under it; false if Tricolor failed, checksums disagree or a chart could not be
/// written.
pub(super) fn table(o: &Options, rounds: usize) -> bool {
    let exe = std::env::current_exe().expect("own path");
    print_header(o.scale, rounds);
    let mut ok = true;
    let mut summary = Summary::new(&o.rivals);
    for w in &o.workloads {
        let mut rows = Rows::measure(&exe, w, o, rounds);
        rows.print_cells(w.name);
        if let Some(cost) = rows.print_sampled(w.name) {
            summary.sampling_costs.push((w.name, cost));
        }
        rows.print_crashed();
        summary.add(w.name, &rows.cells);
        rows.check_allocators_agree(w.name);
        ok &= rows.ok;
    }
    if let Some(dir) = &o.svg {
        ok &= summary.draw_charts(dir, &o.workloads);
    }
    summary.print(&o.rivals);
    println!("\nworkloads:");
    for w in &o.workloads {
        println!("  {:<9} {}", w.name, w.what);
    }
    ok
}

fn print_header(scale: usize, rounds: usize) {
    println!(
        "tricolor bench: scale {scale}, wall time the fastest of {rounds} rounds (allocators taking turns), peak RSS\n\
         the highest; peak = RSS high-water mark above the process's baseline"
    );
    println!("ratios are allocator / tricolor: above 1.00 means Tricolor is faster or smaller\n");
    println!(
        "{:<9} {:<9} {:>10} {:>8} {:>10} {:>8}",
        "workload", "allocator", "ms", "time x", "peak MiB", "peak x"
    );
}

/// One workload's rows: what its rounds measured.
struct Rows {
    /// The allocators that passed every round, in table order, each with its merged cell.
    cells: Vec<(Rival, Cell)>,
    /// Tricolor under heap profiling (`+profile`), when asked for and it passed every round.
    sampled: Option<Cell>,
    /// Rivals whose child failed a round, with the exit status.
    crashed: Vec<(Rival, String)>,
    /// False if Tricolor failed or a checksum disagreed (each already reported).
    ok: bool,
}

impl Rows {
    /// Runs `w`'s rounds: in each, every allocator's child in turn, then Tricolor's again
    /// with sampling on (module docs). An allocator that fails a round leaves the table.
    fn measure(exe: &Path, w: &Workload, o: &Options, rounds: usize) -> Rows {
        let mut rows = Rows {
            cells: Vec::new(),
            sampled: None,
            crashed: Vec::new(),
            ok: true,
        };
        let mut live = o.rivals.clone();
        for _ in 0..rounds {
            live.retain(|&r| rows.take_round(exe, w, r, o.scale));
            // Tricolor again with heap profiling at Go's default rate, in the same round
            // (the cost the sampling goal bounds, `goals::sampling_summary`).
            if o.sampled && live.contains(&Rival::Tricolor) {
                rows.take_sampled_round(exe, w, o.scale);
            }
        }
        // A rival that failed a round is reported as failed, not with its earlier rounds.
        rows.cells.retain(|(r, _)| live.contains(r));
        rows
    }

    /// One round of `w` on `r`, merged into its cell; false if the child failed.
    fn take_round(&mut self, exe: &Path, w: &Workload, r: Rival, scale: usize) -> bool {
        let (out, cell) = cell::run_cell(exe, w, r, scale, None);
        match cell {
            Some(c) if out.status.success() => {
                match self.cells.iter_mut().find(|(q, _)| *q == r) {
                    Some((_, kept)) => {
                        self.ok &= merged(kept, c, &format!("{} on {}", w.name, r.name()));
                    }
                    None => self.cells.push((r, c)),
                }
                return true;
            }
            // Tricolor failing fails the bench; a rival crashing is reported in the
            // table (TCMalloc crashes in prodcons8 unless kept off `sbrk`:
            // `tricolor_benches::tcmalloc`).
            _ if r != Rival::Tricolor => self.crashed.push((r, out.status.to_string())),
            _ => self.ok = failed(&format!("{} on {}", w.name, r.name()), &out),
        }
        false
    }

    /// One round of `w` on Tricolor with sampling at [`SAMPLED_RATE`], merged into `sampled`.
    fn take_sampled_round(&mut self, exe: &Path, w: &Workload, scale: usize) {
        let (out, cell) = cell::run_cell(exe, w, Rival::Tricolor, scale, Some(SAMPLED_RATE));
        match (cell, &mut self.sampled) {
            (Some(c), Some(kept)) if out.status.success() => {
                self.ok &= merged(kept, c, &format!("{} on tricolor with sampling", w.name));
            }
            (Some(c), None) if out.status.success() => self.sampled = Some(c),
            _ => self.ok = failed(&format!("{} on tricolor with sampling", w.name), &out),
        }
    }

    /// Tricolor's cell: the base of the ratios.
    fn ours(&self) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|(r, _)| *r == Rival::Tricolor)
            .map(|(_, c)| c)
    }

    /// A line per allocator, `name` on the first: time and peak, with ratios to Tricolor's.
    fn print_cells(&self, name: &str) {
        let base = self.ours().map(|c| (c.time_ns, c.peak_kib));
        for (i, (r, c)) in self.cells.iter().enumerate() {
            let (t_ratio, m_ratio) = match base {
                Some((t, m)) => (
                    format!("{:.2}", c.time_ns as f64 / t.max(1) as f64),
                    format!("{:.2}", c.peak_kib as f64 / m.max(1) as f64),
                ),
                None => ("-".into(), "-".into()),
            };
            println!(
                "{:<9} {:<9} {:>10.1} {:>8} {:>10.1} {:>8}",
                if i == 0 { name } else { "" },
                r.name(),
                c.time_ns as f64 / 1e6,
                t_ratio,
                c.peak_kib as f64 / 1024.0,
                m_ratio
            );
        }
    }

    /// The `+profile` line, when there is one and a plain Tricolor cell to compare it with:
    /// its time over the plain cell's, which it returns (the sampling cost). Sampling must not
    /// change the checksum.
    fn print_sampled(&mut self, name: &str) -> Option<f64> {
        let (c, ours) = (self.sampled.as_ref()?, self.ours()?);
        let (t, m) = (ours.time_ns, ours.peak_kib);
        let changed = c.checksum != ours.checksum;
        if changed {
            eprintln!("tricolor bench: {name}: sampling changed the contents");
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
        self.ok &= !changed;
        Some(ratio)
    }

    /// A line per rival that failed a round.
    fn print_crashed(&self) {
        for (r, why) in &self.crashed {
            println!("{:<9} {:<9} failed ({why})", "", r.name());
        }
    }

    /// Every allocator must have returned the same contents.
    fn check_allocators_agree(&mut self, name: &str) {
        if let Some((_, first)) = self.cells.first() {
            if self.cells.iter().any(|(_, c)| c.checksum != first.checksum) {
                self.ok = false;
                eprintln!(
                    "tricolor bench: {name}: checksums differ between allocators (a block's contents changed)"
                );
            }
        }
    }
}

/// Merges a round's cell into the cell kept for `what`; false (reported) when its checksum
/// differs from the earlier rounds'.
fn merged(kept: &mut Cell, c: Cell, what: &str) -> bool {
    let same = kept.merge(c);
    if !same {
        eprintln!("tricolor bench: {what}: checksums differ between rounds");
    }
    same
}

/// Reports a child that failed; false, for the table's verdict.
fn failed(what: &str, out: &std::process::Output) -> bool {
    eprintln!(
        "tricolor bench: {what} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    false
}
