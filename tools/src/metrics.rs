//! `tricolor metrics`: every metric name `tricolor_gc::metrics::read` and C's
//! `tc_metrics_read` accept, with its kind and meaning, as the Markdown table the README
//! carries (a test keeps the two the same).

use std::process::ExitCode;
use tricolor_gc::metrics::{self, Kind};

/// The table: one row per metric.
pub(crate) fn table() -> String {
    let mut out = String::from("| name | kind | meaning |\n|---|---|---|\n");
    for d in metrics::all() {
        let kind = match d.kind {
            Kind::Uint64 => "uint64",
            Kind::Float64 => "float64",
            Kind::Float64Histogram => "histogram",
        };
        let total = if d.cumulative { ", cumulative" } else { "" };
        out += &format!("| `{}` | {kind}{total} | {} |\n", d.name, d.description);
    }
    out
}

pub(crate) fn main(args: &[String]) -> ExitCode {
    if !args.is_empty() {
        eprintln!("tricolor metrics: takes no options");
        return ExitCode::from(2);
    }
    print!("{}", table());
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_allocator_guide_lists_every_metric_as_the_tool_does() {
        let guide = include_str!("../../docs/allocator.md");
        assert!(
            guide.contains(&super::table()),
            "docs/allocator.md's metrics table is stale: paste `cargo run -p tricolor-tools -- metrics`"
        );
    }
}
