//! What the workload table adds up to: the speed goal's verdict per workload and its line,
//! the sampling goal's line (`goals`), and with `--svg` each rival's ratios to Tricolor as
//! charts (`allocators-time.svg`, `allocators-peak.svg`).

use super::cell::Cell;
use crate::goals::{self, Standing};
use std::path::Path;
use tricolor_benches::Rival;
use tricolor_benches::workloads::Workload;

/// Per rival other than Tricolor: (time ratio, peak ratio) per workload, for `--svg`.
type Ratios = Vec<Option<(f64, f64)>>;

/// What the lines under the table, and the charts, take from every workload's rows.
pub(super) struct Summary {
    /// The speed goal's verdict per workload (`goals`).
    standings: Vec<(&'static str, Standing)>,
    /// Tricolor sampled over Tricolor, per workload (the sampling goal, `goals`).
    pub(super) sampling_costs: Vec<(&'static str, f64)>,
    /// Each rival but Tricolor, with its ratios to Tricolor.
    chart_rows: Vec<(Rival, Ratios)>,
}

impl Summary {
    pub(super) fn new(rivals: &[Rival]) -> Summary {
        Summary {
            standings: Vec::new(),
            sampling_costs: Vec::new(),
            chart_rows: rivals
                .iter()
                .filter(|r| **r != Rival::Tricolor)
                .map(|&r| (r, Vec::new()))
                .collect(),
        }
    }

    /// Takes in workload `name`'s cells: its standing, and each rival's ratios.
    pub(super) fn add(&mut self, name: &'static str, cells: &[(Rival, Cell)]) {
        let times: Vec<(Rival, f64)> = cells.iter().map(|(r, c)| (*r, c.time_ns as f64)).collect();
        if let Some(s) = Standing::of(&times) {
            self.standings.push((name, s));
        }
        let base = cells
            .iter()
            .find(|(r, _)| *r == Rival::Tricolor)
            .map(|(_, c)| (c.time_ns, c.peak_kib));
        for (rival, row) in &mut self.chart_rows {
            let cell = cells.iter().find(|(r, _)| r == rival).map(|(_, c)| c);
            row.push(cell.zip(base).map(|(c, (t, m))| {
                (
                    c.time_ns as f64 / t.max(1) as f64,
                    c.peak_kib as f64 / m.max(1) as f64,
                )
            }));
        }
    }

    /// `allocators-time.svg` and `allocators-peak.svg` in `dir`; false if one could not be
    /// written.
    pub(super) fn draw_charts(&self, dir: &Path, workloads: &[Workload]) -> bool {
        let mut ok = true;
        let names: Vec<&str> = workloads.iter().map(|w| w.name).collect();
        for (file, title, pick) in [
            (
                "allocators-time.svg",
                "allocator workloads: fastest round's time, rival / tricolor (above 1: Tricolor faster)",
                0,
            ),
            (
                "allocators-peak.svg",
                "allocator workloads: peak RSS, rival / tricolor (above 1: Tricolor smaller)",
                1,
            ),
        ] {
            let series: Vec<(&str, Vec<Option<f64>>)> = self
                .chart_rows
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
                ok = false;
            }
        }
        ok
    }

    /// The speed goal's table (each workload's best rival and Tricolor's verdict) and line,
    /// against the goal's rivals among `rivals`; then the sampling goal's line.
    pub(super) fn print(&self, rivals: &[Rival]) {
        if !self.standings.is_empty() {
            println!(
                "\n{:<9} {:<9} {:>10} {:>11} {:>7}  verdict",
                "workload", "best", "its ms", "tricolor ms", "x best"
            );
            for (name, s) in &self.standings {
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
            let all: Vec<Standing> = self.standings.iter().map(|(_, s)| *s).collect();
            println!("{}", goals::summary("workloads", &all, rivals));
        }
        if !self.sampling_costs.is_empty() {
            println!("{}", goals::sampling_summary(&self.sampling_costs));
        }
    }
}
