//! The collector's settings from the environment, read once when the default heap is made, as
//! Go reads them.
//!
//! | variable | accepted values | default |
//! |---|---|---|
//! | `GOGC` | `off`, or a decimal integer (optionally negative, meaning off) in 32 bits | 100 |
//! | `GODEBUG` | comma-separated `name=value`; `gctrace=N` (N ≥ 1: one line per cycle on stderr); other names ignored | `gctrace=0` |
//! | `TRICOLOR_GC_VERIFY` | `1` (verification mode: check marking, poison swept memory), `0` | `0` (`1` with the `verify` feature) |
//! | `GOMAXPROCS` | a decimal integer > 0 (Go's `atoi32`): the CPUs the collector plans for | the CPUs this process may use (affinity mask and cgroup quota, as Go 1.25 reads them) |
//!
//! `GOMEMLIMIT` is the allocator's (`tricolor_alloc::memory_limit`): one limit covers both.
//! A malformed value is reported once on standard error (variable, value, accepted forms) and
//! the default is kept; Go silently uses 100 for a malformed `GOGC`.

use std::sync::Once;

/// Settings for a heap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// `GOGC`: heap growth percent before the next collection; negative is off.
    pub gc_percent: i32,
    /// `GODEBUG=gctrace=1`.
    pub trace: bool,
    /// Verification mode.
    pub verify: bool,
    /// `GOMAXPROCS`: the CPUs the collector plans for (mark workers are a quarter of them);
    /// 0 means the CPUs this process may use (resolved when a heap is made: its `config()`
    /// shows the number).
    pub procs: usize,
    /// Sweep in the background between cycles (default). Off, sweeping is left to allocation
    /// (lazy and proportional) and to the next cycle's sweep termination: for tests and
    /// diagnosis, not an environment setting.
    pub background_sweep: bool,
    /// Mark with the world stopped: one pause per cycle holds the scan of every root and all of
    /// marking (the collector thread with the mark workers), and no running mutator ever sees
    /// the barrier on, so pointer stores need none. For runtimes whose stores do not go
    /// through `write` (Boehm GC's clients). Off (default): concurrent marking behind the
    /// hybrid barrier, with two short pauses. The `mark-in-pause` feature turns it on in every
    /// heap (a test mode); not an environment setting.
    pub mark_in_pause: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            gc_percent: 100,
            trace: false,
            verify: cfg!(feature = "verify"),
            procs: 0,
            background_sweep: true,
            mark_in_pause: cfg!(feature = "mark-in-pause"),
        }
    }
}

impl Config {
    /// The settings from the environment (reporting malformed values once per process).
    pub fn from_env() -> Self {
        let mut c = Self::default();
        let var = |name: &str| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned());
        let mut bad: Vec<(&str, String, &str, &str)> = Vec::new();
        if let Some(v) = var("GOGC") {
            match parse_gogc(&v) {
                Some(p) => c.gc_percent = p,
                None if v.is_empty() => {}
                None => bad.push(("GOGC", v, "off, or an integer percent", "100")),
            }
        }
        if let Some(v) = var("GODEBUG") {
            match parse_gctrace(&v) {
                Ok(Some(n)) => c.trace = n > 0,
                Ok(None) => {}
                Err(value) => bad.push((
                    "GODEBUG",
                    format!("gctrace={value}"),
                    "gctrace=N with N an integer",
                    "gctrace=0",
                )),
            }
        }
        if let Some(v) = var("GOMAXPROCS") {
            match parse_gomaxprocs(&v) {
                Some(n) => c.procs = n,
                None if v.is_empty() => {}
                None => bad.push((
                    "GOMAXPROCS",
                    v,
                    "an integer above 0",
                    "the CPUs this process may use",
                )),
            }
        }
        if let Some(v) = var("TRICOLOR_GC_VERIFY") {
            match v.as_str() {
                "1" => c.verify = true,
                "0" => c.verify = false,
                _ => bad.push(("TRICOLOR_GC_VERIFY", v, "1, 0", "0")),
            }
        }
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            for (name, value, accepted, default) in &bad {
                tricolor_alloc::report_malformed(name, value, accepted, default);
            }
        });
        c
    }
}

/// Go's runtime `atoi32`: optional `-`, decimal digits, within 32 bits. (Go accepts a lone
/// `-` as 0; so does this, to read exactly what Go reads.)
fn atoi32(s: &str) -> Option<i32> {
    if s.is_empty() {
        return None;
    }
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let mut n: i64 = 0;
    for c in digits.bytes() {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add((c - b'0') as i64)?;
        if n > i32::MAX as i64 + 1 {
            return None;
        }
    }
    let n = if neg { -n } else { n };
    i32::try_from(n).ok()
}

/// `GOGC` as Go's `readGOGC` reads it; `None` for a malformed (or empty) value.
pub(crate) fn parse_gogc(s: &str) -> Option<i32> {
    if s == "off" {
        return Some(-1);
    }
    atoi32(s)
}

/// `GOMAXPROCS` as Go's `schedinit` reads it: `atoi32` and above 0; `None` otherwise.
pub(crate) fn parse_gomaxprocs(s: &str) -> Option<usize> {
    atoi32(s).filter(|&n| n > 0).map(|n| n as usize)
}

impl Config {
    /// The CPUs to plan for: `procs`, or what the process may use.
    pub fn effective_procs(&self) -> usize {
        if self.procs > 0 {
            self.procs
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }

    /// Go's plan for background marking (`gcControllerState.startCycle`): 25% of the CPUs,
    /// as `dedicated` workers marking full time, rounded, unless rounding is more than 30%
    /// off; then one fewer dedicated worker and the rest, `fractional` CPUs, marked by a
    /// worker that runs only that share of the time (1, 2 or 3 CPUs: no dedicated worker and
    /// 0.25, 0.5 or 0.75 of a CPU; 6 CPUs: one and 0.5).
    pub fn mark_plan(&self) -> (usize, f64) {
        let goal = self.effective_procs() as f64 * 0.25;
        let mut dedicated = (goal + 0.5) as usize;
        if (dedicated as f64 / goal - 1.0).abs() > 0.3 {
            if dedicated as f64 > goal {
                dedicated -= 1;
            }
            (dedicated, goal - dedicated as f64)
        } else {
            (dedicated, 0.0)
        }
    }

    /// Mark workers beside the collector thread: the dedicated ones of [`Config::mark_plan`]
    /// but one, the collector thread being one of them. The collector thread marks full time
    /// whenever a cycle does, also where Go's plan has only a fractional worker (fewer than 4
    /// CPUs): on 2 CPUs that is 1 CPU where Go's plan gives 0.5.
    ///
    /// Decision, measured (2 CPUs, three runs of each benchmark,
    /// `cargo run --release -p tricolor-tools -- bench --gc`): the collector thread run as
    /// Go's fractional worker (marking in slices of 2048 objects, sleeping while its CPU time
    /// since marking began exceeds half the wall time, its grey objects left to assists
    /// meanwhile) lengthens marking so that mutators reach the goal and wait: binary-trees 18
    /// takes 1.61-1.68 s against 1.39-1.45 s for a GC CPU share of 35-37% against 37-39%, and
    /// the message buffer with pointers' worst push rises from 2.3-4.0 ms to 5.8-9.3 ms (Go:
    /// about 8). So it marks full time.
    pub fn extra_mark_workers(&self) -> usize {
        self.mark_plan().0.saturating_sub(1)
    }
}

/// The `gctrace` setting in a `GODEBUG` list: `Ok(None)` if absent, `Err(value)` if its value
/// is not an integer. The last occurrence wins, as in Go.
pub(crate) fn parse_gctrace(s: &str) -> Result<Option<i32>, String> {
    let mut out = Ok(None);
    for field in s.split(',') {
        if let Some(value) = field.strip_prefix("gctrace=") {
            out = atoi32(value).map(Some).ok_or_else(|| value.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gogc_accepts_exactly_gos_forms() {
        assert_eq!(parse_gogc("off"), Some(-1));
        assert_eq!(parse_gogc("100"), Some(100));
        assert_eq!(parse_gogc("0"), Some(0));
        assert_eq!(parse_gogc("-1"), Some(-1));
        assert_eq!(parse_gogc("-"), Some(0));
        assert_eq!(parse_gogc("2147483647"), Some(i32::MAX));
        assert_eq!(parse_gogc("-2147483648"), Some(i32::MIN));
        for bad in ["", "2147483648", "OFF", "50%", " 100", "1e3", "+5", "0x10"] {
            assert_eq!(parse_gogc(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn gomaxprocs_accepts_positive_integers_and_plans_a_quarter() {
        assert_eq!(parse_gomaxprocs("8"), Some(8));
        for bad in ["0", "-2", "", "four", "8 "] {
            assert_eq!(parse_gomaxprocs(bad), None, "{bad:?}");
        }
        let c = |procs| Config {
            procs,
            ..Config::default()
        };
        assert_eq!(c(1).extra_mark_workers(), 0);
        assert_eq!(c(2).extra_mark_workers(), 0);
        assert_eq!(c(8).extra_mark_workers(), 1);
        assert_eq!(c(64).extra_mark_workers(), 15);
        // Go's fractional worker where rounding is more than 30% off.
        assert_eq!(c(1).mark_plan(), (0, 0.25));
        assert_eq!(c(2).mark_plan(), (0, 0.5));
        assert_eq!(c(3).mark_plan(), (0, 0.75));
        assert_eq!(c(4).mark_plan(), (1, 0.0));
        assert_eq!(c(6).mark_plan(), (1, 0.5));
    }

    #[test]
    fn gctrace_is_found_in_a_godebug_list() {
        assert_eq!(parse_gctrace("gctrace=1"), Ok(Some(1)));
        assert_eq!(parse_gctrace("madvdontneed=1,gctrace=2"), Ok(Some(2)));
        assert_eq!(parse_gctrace("gctrace=1,gctrace=0"), Ok(Some(0)));
        assert_eq!(parse_gctrace("madvdontneed=1"), Ok(None));
        assert_eq!(parse_gctrace("gctrace=yes"), Err("yes".into()));
    }
}
