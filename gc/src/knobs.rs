//! The collector's settings from the environment, read once when the default heap is made, as
//! Go reads them.
//!
//! | variable | accepted values | default |
//! |---|---|---|
//! | `GOGC` | `off`, or a decimal integer (optionally negative, meaning off) in 32 bits | 100 |
//! | `GODEBUG` | comma-separated `name=value`; `gctrace=N` (N ≥ 1: one line per cycle on stderr); other names ignored | `gctrace=0` |
//! | `TRICOLOR_GC_VERIFY` | `1` (verification mode: check marking, poison swept memory), `0` | `0` (`1` with the `verify` feature) |
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
}

impl Default for Config {
    fn default() -> Self {
        Self {
            gc_percent: 100,
            trace: false,
            verify: cfg!(feature = "verify"),
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
    fn gctrace_is_found_in_a_godebug_list() {
        assert_eq!(parse_gctrace("gctrace=1"), Ok(Some(1)));
        assert_eq!(parse_gctrace("madvdontneed=1,gctrace=2"), Ok(Some(2)));
        assert_eq!(parse_gctrace("gctrace=1,gctrace=0"), Ok(Some(0)));
        assert_eq!(parse_gctrace("madvdontneed=1"), Ok(None));
        assert_eq!(parse_gctrace("gctrace=yes"), Err("yes".into()));
    }
}
