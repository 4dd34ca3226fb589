//! `tricolor plot TRACE -o gc.svg`: a `GODEBUG=gctrace=1` trace (Tricolor's or Go's: the same
//! line format) as a picture of the collector over time.
//!
//! Top panel: for each cycle, at its start time, the heap when the cycle started, the heap
//! at mark termination, the live heap it marked, and the goal for the next cycle (MB), with
//! the memory limit as a line when given (`--limit`, in `GOMEMLIMIT`'s forms: the trace
//! does not carry it). Bottom panel: each stop-the-world pause (two per cycle: Go's first and
//! third clock figures), milliseconds on a log scale. Lines that are not trace lines (the
//! program's own output, Go's `scvg` lines) are skipped.

use crate::charts;
use std::process::ExitCode;

/// One `gc N @Ts P%: a+b+c ms clock, ..., X->Y->Z MB, G MB goal, ...` line.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Cycle {
    pub(crate) n: u64,
    /// Seconds since the program (Go) or the heap (Tricolor) started.
    pub(crate) at: f64,
    /// The two pauses, ms: sweep termination / start, and mark termination.
    pub(crate) pauses_ms: [f64; 2],
    pub(crate) heap_start_mb: f64,
    pub(crate) heap_end_mb: f64,
    pub(crate) live_mb: f64,
    pub(crate) goal_mb: f64,
}

/// Parses one trace line; `None` for anything else.
pub(crate) fn parse_line(line: &str) -> Option<Cycle> {
    let rest = line.trim().strip_prefix("gc ")?;
    let (head, rest) = rest.split_once(": ")?;
    let mut h = head.split_whitespace();
    let n = h.next()?.parse().ok()?;
    let at = h
        .next()?
        .strip_prefix('@')?
        .strip_suffix('s')?
        .parse()
        .ok()?;
    let mut parts = rest.split(", ");
    let c = three(parts.next()?.strip_suffix(" ms clock")?, "+")?;
    let _cpu = parts.next()?;
    let hs = three(parts.next()?.strip_suffix(" MB")?, "->")?;
    let goal = parts.next()?.strip_suffix(" MB goal")?.parse().ok()?;
    Some(Cycle {
        n,
        at,
        pauses_ms: [c[0], c[2]],
        heap_start_mb: hs[0],
        heap_end_mb: hs[1],
        live_mb: hs[2],
        goal_mb: goal,
    })
}

/// Exactly three numbers separated by `sep` (`a+b+c`, `x->y->z`).
fn three(s: &str, sep: &str) -> Option<[f64; 3]> {
    let v: Vec<f64> = s
        .split(sep)
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    v.try_into().ok()
}

/// `GOMEMLIMIT`'s byte count forms, for `--limit`.
fn parse_limit(s: &str) -> Option<f64> {
    tricolor_alloc::parse_memory_limit(s.as_bytes())
        .filter(|&b| b != tricolor_alloc::NO_LIMIT)
        .map(|b| b as f64 / (1u64 << 20) as f64)
}

pub(crate) fn main(args: &[String]) -> ExitCode {
    let mut input = None;
    let mut output = None;
    let mut limit = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-o" => output = it.next().cloned(),
            "--limit" => match it.next().and_then(|v| parse_limit(v)) {
                Some(l) => limit = Some(l),
                None => {
                    eprintln!("tricolor plot: --limit takes GOMEMLIMIT's forms, e.g. 512MiB");
                    return ExitCode::from(2);
                }
            },
            other if input.is_none() && !other.starts_with('-') => input = Some(other.to_owned()),
            other => {
                eprintln!("tricolor plot: unexpected '{other}'");
                return ExitCode::from(2);
            }
        }
    }
    let (Some(input), Some(output)) = (input, output) else {
        eprintln!("usage: tricolor plot TRACE -o OUT.svg [--limit 512MiB]");
        return ExitCode::from(2);
    };
    let text = match std::fs::read_to_string(&input) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tricolor plot: {input}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cycles: Vec<Cycle> = text.lines().filter_map(parse_line).collect();
    if cycles.is_empty() {
        eprintln!("tricolor plot: {input} has no gctrace lines (run with GODEBUG=gctrace=1)");
        return ExitCode::FAILURE;
    }
    match charts::gc_trace(&output, &cycles, limit) {
        Ok(()) => {
            println!("{output}: {} cycles", cycles.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("tricolor plot: {output}: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tricolors_and_gos_lines() {
        let ours = "gc 3 @0.020s 31%: 0.012+3.03+0.001 ms clock, 0.012+0.5/1.2/0+0.001 ms cpu, 17->17->9 MB, 19 MB goal, 0 MB stacks, 0 MB globals, 4 P";
        let go = "gc 12 @1.204s 2%: 0.019+1.5+0.003 ms clock, 0.038+0.21/1.4/2.9+0.006 ms cpu, 4->4->0 MB, 5 MB goal, 0 MB stacks, 0 MB globals, 2 P (forced)";
        assert_eq!(
            parse_line(ours),
            Some(Cycle {
                n: 3,
                at: 0.020,
                pauses_ms: [0.012, 0.001],
                heap_start_mb: 17.0,
                heap_end_mb: 17.0,
                live_mb: 9.0,
                goal_mb: 19.0,
            })
        );
        let g = parse_line(go).unwrap();
        assert_eq!((g.n, g.goal_mb, g.pauses_ms), (12, 5.0, [0.019, 0.003]));
        for junk in [
            "",
            "gc",
            "hello",
            "scvg: 0 MB released",
            "gc 1 @x: nonsense",
        ] {
            assert_eq!(parse_line(junk), None, "{junk}");
        }
        assert_eq!(parse_limit("512MiB"), Some(512.0));
        assert_eq!(parse_limit("off"), None);
    }
}
