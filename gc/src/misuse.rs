//! Misuse that would corrupt the heap aborts with a message naming what was wrong (lib.rs,
//! "Checks"), as glibc's `free(): invalid pointer` does.

/// Writes `tricolor: <message>` to standard error and aborts the process. The write's error
/// is ignored (`eprintln!` would panic on a broken standard error, and misuse reached from
/// the C ABI must not end in a Rust panic; the abort follows either way).
#[cold]
#[inline(never)]
pub fn abort(msg: std::fmt::Arguments<'_>) -> ! {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "tricolor: {msg}");
    std::process::abort()
}

/// A detached mutator was used.
#[cold]
#[inline(never)]
pub(crate) fn detached(op: &str, m: *const ()) -> ! {
    abort(format_args!(
        "{op}(): mutator {m:p} is detached (use after tc_mutator_detach)"
    ))
}
