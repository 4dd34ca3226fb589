//! The goals the allocator tables judge, on the figures of one `tricolor bench` run.
//!
//! The speed goal: on every workload and at every pair size, Tricolor's time at most 0.90 x the
//! best of jemalloc, mimalloc and TCMalloc in the same run. glibc is in the tables but not in the
//! goal, which is set against the three allocators built for speed. Each verdict says "met", or by
//! how much it is missed: how far Tricolor's time is above the goal's time (0.9 x the best
//! rival's), so "missed by 10%" means a tenth faster would meet it.
//!
//! The sampling goal: heap profiling at Go's default rate (one sample per 512 KiB)
//! costs at most 2% on each workload, Tricolor with sampling on against Tricolor without in
//! the same rounds ([`sampling_summary`]). This machine's noise is about as large as the
//! goal: the second of two identical rows differs by up to 2-3% from run to run.

use tricolor_benches::Rival;

/// The goal's bound on Tricolor's time over the best rival's.
pub const SPEED: f64 = 0.90;

/// The rivals the goal is measured against.
fn in_goal(r: Rival) -> bool {
    matches!(r, Rival::Jemalloc | Rival::Mimalloc | Rival::Tcmalloc)
}

/// Tricolor's standing on one row: the best rival of the goal and Tricolor over it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Standing {
    pub best: Rival,
    pub best_time: f64,
    pub ratio: f64,
}

impl Standing {
    /// Tricolor's time against the goal's rivals, all among `times` (any unit, the same for
    /// all); `None` when Tricolor or every rival of the goal is missing.
    pub fn of(times: &[(Rival, f64)]) -> Option<Standing> {
        let &(_, time) = times.iter().find(|(r, _)| *r == Rival::Tricolor)?;
        let (best, best_time) = times
            .iter()
            .copied()
            .filter(|&(r, t)| in_goal(r) && t > 0.0)
            .min_by(|a, b| a.1.total_cmp(&b.1))?;
        Some(Standing {
            best,
            best_time,
            ratio: time / best_time,
        })
    }

    pub fn met(&self) -> bool {
        self.ratio <= SPEED
    }

    /// "met", or "missed by N%" (module docs).
    pub fn verdict(&self) -> String {
        if self.met() {
            "met".into()
        } else {
            format!("missed by {:.0}%", (self.ratio / SPEED - 1.0) * 100.0)
        }
    }
}

/// The closing line of a table of standings: how many rows met the goal, against which of
/// the goal's rivals `rivals` held (a run may leave some out with `--allocator`).
pub fn summary(what: &str, standings: &[Standing], rivals: &[Rival]) -> String {
    let met = standings.iter().filter(|s| s.met()).count();
    let names: Vec<&str> = rivals
        .iter()
        .filter(|&&r| in_goal(r))
        .map(|r| r.name())
        .collect();
    format!(
        "goal: Tricolor at most {SPEED:.2} x the best of {}: met on {met} of {} {what}",
        names.join(", "),
        standings.len()
    )
}

/// The sampling goal's allowance for profiling at the default rate, in percent of each
/// workload's time.
pub const SAMPLING_PERCENT: f64 = 2.0;

/// The closing line for the `+profile` rows: the cost of sampling per workload (Tricolor
/// sampled over Tricolor), how many stay within [`SAMPLING_PERCENT`], and the geometric mean.
pub fn sampling_summary(costs: &[(&str, f64)]) -> String {
    let within = costs
        .iter()
        .filter(|(_, r)| (r - 1.0) * 100.0 <= SAMPLING_PERCENT)
        .count();
    let geomean =
        (costs.iter().map(|(_, r)| r.ln()).sum::<f64>() / costs.len().max(1) as f64).exp();
    let worst = costs
        .iter()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(w, r)| format!("; most: {w} {:+.1}%", (r - 1.0) * 100.0))
        .unwrap_or_default();
    format!(
        "goal: heap profiling at the default rate (+profile) at most +{SAMPLING_PERCENT}% on each workload: met on {within} of {}; geometric mean {:+.1}%{worst}",
        costs.len(),
        (geomean - 1.0) * 100.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_rival_is_the_fastest_of_the_three_named() {
        let times = [
            (Rival::Tricolor, 10.0),
            (Rival::Glibc, 5.0),
            (Rival::Jemalloc, 20.0),
            (Rival::Mimalloc, 12.0),
            (Rival::Tcmalloc, 0.0),
        ];
        let s = Standing::of(&times).unwrap();
        // glibc is faster but not in the goal; TCMalloc's 0 is a failed cell.
        assert_eq!((s.best, s.best_time), (Rival::Mimalloc, 12.0));
        assert!((s.ratio - 10.0 / 12.0).abs() < 1e-12);
        assert!(s.met());
        assert_eq!(s.verdict(), "met");
        assert_eq!(
            Standing::of(&[(Rival::Tricolor, 1.0), (Rival::Glibc, 2.0)]),
            None
        );
        assert_eq!(Standing::of(&[(Rival::Jemalloc, 2.0)]), None);
    }

    #[test]
    fn the_sampling_summary_counts_workloads_within_two_percent() {
        let costs = [("churn", 1.01), ("realloc", 1.04), ("larson", 0.99)];
        assert_eq!(
            sampling_summary(&costs),
            "goal: heap profiling at the default rate (+profile) at most +2% on each workload: met on 2 of 3; geometric mean +1.3%; most: realloc +4.0%"
        );
    }

    #[test]
    fn a_miss_says_how_far_above_the_goals_time() {
        let s = Standing::of(&[(Rival::Tricolor, 27.0), (Rival::Jemalloc, 25.0)]).unwrap();
        // The goal's time is 22.5: 27 is 20% above it.
        assert_eq!(s.verdict(), "missed by 20%");
        let at = Standing::of(&[(Rival::Tricolor, 9.0), (Rival::Jemalloc, 10.0)]).unwrap();
        assert!(at.met(), "exactly 0.9 x meets the goal");
        assert_eq!(
            summary("workloads", &[s, at], &Rival::ALL),
            "goal: Tricolor at most 0.90 x the best of jemalloc, mimalloc, tcmalloc: met on 1 of 2 workloads"
        );
    }
}
