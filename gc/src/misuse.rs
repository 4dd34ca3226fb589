//! Misuse that would corrupt the heap aborts with a message naming what was wrong (lib.rs,
//! "Checks"), as glibc's `free(): invalid pointer` does.

/// Writes `tricolor: <message>` to standard error and aborts the process.
#[cold]
#[inline(never)]
pub(crate) fn abort(msg: std::fmt::Arguments<'_>) -> ! {
    eprintln!("tricolor: {msg}");
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
