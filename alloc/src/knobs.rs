//! Settings read from the environment, once, at the first allocation, in Go's style.
//!
//! | variable | accepted values | default |
//! |---|---|---|
//! | `GOMEMLIMIT` | `off`, or a byte count with an optional unit `B`, `KiB`, `MiB`, `GiB`, `TiB` (Go's exact forms: `512MiB`, `1073741824`) | off |
//! | `TRICOLOR_MADV` | `dontneed`, `free` | `dontneed` |
//! | `TRICOLOR_SCAVENGER` | `1` (background thread), `0` (release from the allocating threads' slow paths instead) | `1` |
//! | `TRICOLOR_PERCPU` | `1`, `0` (per-thread caches even where rseq works) | `1` |
//! | `TRICOLOR_PROFILE` | a file path (`%p`: the process id): sample allocations and write a heap profile there at exit (`profile`) | none |
//! | `TRICOLOR_PROFILE_RATE` | a byte count (Go's `MemProfileRate`): one sample per that many bytes on average; `0` samples nothing | `524288` when `TRICOLOR_PROFILE` is set, else `0` |
//! | `TRICOLOR_PROFILE_SIGNAL` | `1` (also write `PATH.N` on each `SIGUSR2`, if the program leaves the signal at its default), `0` | `0` |
//! | `TRICOLOR_PROFILE_FP` | `1` (take sampled stacks by following frame pointers: for programs built with them, e.g. `RUSTFLAGS=-Cforce-frame-pointers=yes`; `profile::stack`), `0` (unwind with the eh_frame tables) | `0` |
//!
//! A malformed value is reported once on standard error, naming the variable, the value and
//! the accepted forms, and the default is kept (Go dies on a malformed `GOMEMLIMIT`; an
//! allocator that takes a program down for a typo in its environment is worse).
//!
//! Invariant: after [`get`] first returns, the values never change, except the memory limit,
//! which [`set_memory_limit`] may change at any time (it is one atomic word).

use crate::os;
use crate::sync::{AtomicBool, AtomicI64, AtomicU8, Mutex, Ordering};

/// The memory limit meaning "none" (Go's `math.MaxInt64`).
pub const NO_LIMIT: i64 = i64::MAX;

/// The settings other modules read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Knobs {
    /// Release pages with `MADV_FREE` instead of `MADV_DONTNEED`.
    pub(crate) madv_free: bool,
    /// Run the background scavenger thread.
    pub(crate) scavenger: bool,
    /// Use per-CPU caches where rseq works.
    pub(crate) percpu: bool,
}

/// The profiling settings (`profile`), read with the rest.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ProfileKnobs {
    /// `TRICOLOR_PROFILE`: where to write the profile at exit.
    pub(crate) path: Option<&'static [u8]>,
    /// Bytes per sample; 0 when sampling is off.
    pub(crate) rate: u64,
    /// `TRICOLOR_PROFILE_SIGNAL=1`.
    pub(crate) signal: bool,
    /// `TRICOLOR_PROFILE_FP=1`.
    pub(crate) frame_pointers: bool,
}

/// Go's `MemProfileRate` default: one sample per 512 KiB allocated.
pub(crate) const DEFAULT_PROFILE_RATE: u64 = 512 * 1024;

const UNREAD: u8 = 0;
const READ: u8 = 1;
static STATE: AtomicU8 = AtomicU8::new(UNREAD);
static LOCK: Mutex<()> = Mutex::new(());
static MADV_FREE: AtomicBool = AtomicBool::new(false);
static SCAVENGER: AtomicBool = AtomicBool::new(true);
static PERCPU: AtomicBool = AtomicBool::new(true);
static LIMIT: AtomicI64 = AtomicI64::new(NO_LIMIT);
static PROFILE_PATH: crate::sync::AtomicPtr<u8> =
    crate::sync::AtomicPtr::new(core::ptr::null_mut());
static PROFILE_PATH_LEN: crate::sync::AtomicUsize = crate::sync::AtomicUsize::new(0);
static PROFILE_RATE: crate::sync::AtomicU64 = crate::sync::AtomicU64::new(0);
static PROFILE_SIGNAL: AtomicBool = AtomicBool::new(false);
static PROFILE_FP: AtomicBool = AtomicBool::new(false);

/// The profiling settings, reading the environment on first call.
pub(crate) fn profile() -> ProfileKnobs {
    if STATE.load(Ordering::Acquire) != READ {
        read_environment();
    }
    let p = PROFILE_PATH.load(Ordering::Relaxed);
    ProfileKnobs {
        // SAFETY: set once, before STATE became READ, to a slice of the environment block
        // (getenv's string, which lives until the program changes that variable: it is
        // copied by `profile` before any other code of ours reads it again).
        path: (!p.is_null()).then(|| unsafe {
            core::slice::from_raw_parts(p, PROFILE_PATH_LEN.load(Ordering::Relaxed))
        }),
        rate: PROFILE_RATE.load(Ordering::Relaxed),
        signal: PROFILE_SIGNAL.load(Ordering::Relaxed),
        frame_pointers: PROFILE_FP.load(Ordering::Relaxed),
    }
}

/// The settings, reading the environment on first call.
#[inline]
pub(crate) fn get() -> Knobs {
    if STATE.load(Ordering::Acquire) != READ {
        read_environment();
    }
    Knobs {
        madv_free: MADV_FREE.load(Ordering::Relaxed),
        scavenger: SCAVENGER.load(Ordering::Relaxed),
        percpu: PERCPU.load(Ordering::Relaxed),
    }
}

/// The memory limit in bytes ([`NO_LIMIT`] when off).
#[inline]
pub(crate) fn memory_limit() -> i64 {
    if STATE.load(Ordering::Acquire) != READ {
        read_environment();
    }
    LIMIT.load(Ordering::Relaxed)
}

/// Sets the memory limit and returns the previous one; a negative `limit` only reads it
/// (Go's `debug.SetMemoryLimit`).
pub(crate) fn set_memory_limit(limit: i64) -> i64 {
    let old = memory_limit();
    if limit < 0 {
        return old;
    }
    LIMIT.swap(limit, Ordering::Relaxed)
}

#[cold]
#[inline(never)]
fn read_environment() {
    let _g = LOCK.lock();
    if STATE.load(Ordering::Acquire) == READ {
        return;
    }
    if let Some(v) = os::getenv(c"GOMEMLIMIT") {
        match parse_memory_limit(v) {
            Some(n) => LIMIT.store(n, Ordering::Relaxed),
            None => complain(
                b"GOMEMLIMIT",
                v,
                b"\"off\" or a byte count with an optional unit B, KiB, MiB, GiB or TiB \
                  (e.g. 512MiB)",
                b"no limit",
            ),
        }
    }
    if let Some(v) = os::getenv(c"TRICOLOR_MADV") {
        match v {
            b"dontneed" => MADV_FREE.store(false, Ordering::Relaxed),
            b"free" => MADV_FREE.store(true, Ordering::Relaxed),
            _ => complain(b"TRICOLOR_MADV", v, b"dontneed or free", b"dontneed"),
        }
    }
    if let Some(v) = os::getenv(c"TRICOLOR_PROFILE").filter(|v| !v.is_empty()) {
        PROFILE_PATH.store(v.as_ptr().cast_mut(), Ordering::Relaxed);
        PROFILE_PATH_LEN.store(v.len(), Ordering::Relaxed);
        PROFILE_RATE.store(DEFAULT_PROFILE_RATE, Ordering::Relaxed);
    }
    if let Some(v) = os::getenv(c"TRICOLOR_PROFILE_RATE") {
        match parse_count(v) {
            Some(n) => PROFILE_RATE.store(n, Ordering::Relaxed),
            None => complain(
                b"TRICOLOR_PROFILE_RATE",
                v,
                b"a byte count: digits only (0 samples nothing)",
                b"524288 with TRICOLOR_PROFILE, else 0",
            ),
        }
    }
    for (name, flag, label, default) in [
        (
            c"TRICOLOR_SCAVENGER",
            &SCAVENGER,
            &b"TRICOLOR_SCAVENGER"[..],
            &b"1"[..],
        ),
        (
            c"TRICOLOR_PERCPU",
            &PERCPU,
            &b"TRICOLOR_PERCPU"[..],
            &b"1"[..],
        ),
        (
            c"TRICOLOR_PROFILE_SIGNAL",
            &PROFILE_SIGNAL,
            &b"TRICOLOR_PROFILE_SIGNAL"[..],
            &b"0"[..],
        ),
        (
            c"TRICOLOR_PROFILE_FP",
            &PROFILE_FP,
            &b"TRICOLOR_PROFILE_FP"[..],
            &b"0"[..],
        ),
    ] {
        if let Some(v) = os::getenv(name) {
            match v {
                b"1" => flag.store(true, Ordering::Relaxed),
                b"0" => flag.store(false, Ordering::Relaxed),
                _ => complain(label, v, b"1 or 0", default),
            }
        }
    }
    STATE.store(READ, Ordering::Release);
}

/// Digits only, at most `i64::MAX` (a profile rate).
pub(crate) fn parse_count(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = s.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
    (n <= i64::MAX as u64).then_some(n)
}

/// Go's `GOMEMLIMIT` syntax (`runtime.parseByteCount`, plus `off`): digits, optionally
/// followed by `B` or by `KiB`, `MiB`, `GiB`, `TiB`; at most `i64::MAX` bytes; not negative
/// (a leading `-` is read, as Go reads it, and then refused unless the number is zero).
pub fn parse_memory_limit(s: &[u8]) -> Option<i64> {
    if s == b"off" {
        return Some(NO_LIMIT);
    }
    let (digits, shift) = match s {
        [.., b'K', b'i', b'B'] => (&s[..s.len() - 3], 10),
        [.., b'M', b'i', b'B'] => (&s[..s.len() - 3], 20),
        [.., b'G', b'i', b'B'] => (&s[..s.len() - 3], 30),
        [.., b'T', b'i', b'B'] => (&s[..s.len() - 3], 40),
        [.., d, b'B'] if d.is_ascii_digit() => (&s[..s.len() - 1], 0),
        [.., d] if d.is_ascii_digit() => (s, 0),
        _ => return None,
    };
    let (neg, digits) = match digits {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, digits),
    };
    if digits.is_empty() && !neg {
        return None;
    }
    let mut n: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    if neg && n != 0 {
        return None;
    }
    let bytes = n.checked_mul(1u64 << shift)?;
    i64::try_from(bytes).ok()
}

/// Writes `tricolor: VAR="value" is malformed (accepted: …); keeping the default (…)`: the
/// one format every Tricolor setting reports a malformed value in (the collector's too, so
/// the caller reports once). Allocates nothing.
pub fn report_malformed(var: &str, value: &str, accepted: &str, default: &str) {
    complain(
        var.as_bytes(),
        value.as_bytes(),
        accepted.as_bytes(),
        default.as_bytes(),
    );
}

fn complain(var: &[u8], value: &[u8], accepted: &[u8], default: &[u8]) {
    let mut buf = [0u8; 512];
    let mut len = 0;
    let value = &value[..value.len().min(128)];
    for part in [
        &b"tricolor: "[..],
        var,
        b"=\"",
        value,
        b"\" is malformed (accepted: ",
        accepted,
        b"); keeping the default (",
        default,
        b")\n",
    ] {
        let n = part.len().min(buf.len() - len);
        buf[len..len + n].copy_from_slice(&part[..n]);
        len += n;
    }
    os::write_stderr(&buf[..len]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_limit_accepts_exactly_gos_forms() {
        let ok: &[(&[u8], i64)] = &[
            (b"off", NO_LIMIT),
            (b"0", 0),
            (b"-0", 0),
            (b"1", 1),
            (b"1B", 1),
            (b"1KiB", 1024),
            (b"2MiB", 2 << 20),
            (b"3GiB", 3 << 30),
            (b"4TiB", 4 << 40),
            (b"9223372036854775807", i64::MAX),
            (b"8388607TiB", 8_388_607 << 40),
        ];
        for &(s, want) in ok {
            assert_eq!(
                parse_memory_limit(s),
                Some(want),
                "{}",
                String::from_utf8_lossy(s)
            );
        }
        let bad: &[&[u8]] = &[
            b"",
            b"B",
            b"KiB",
            b"-",
            b"-1",
            b"1KB",
            b"1kiB",
            b"1Ki",
            b"1XiB",
            b"1 MiB",
            b" 1",
            b"1.5GiB",
            b"+1",
            b"OFF",
            b"9223372036854775808",
            b"8388608TiB",
            b"99999999999999999999999",
        ];
        for &s in bad {
            assert_eq!(
                parse_memory_limit(s),
                None,
                "{}",
                String::from_utf8_lossy(s)
            );
        }
    }
}
