//! Reporting misuse: a bad pointer given to `free`/`dealloc`/`realloc`, a double free, a
//! layout that does not match the allocation. The process aborts with a message naming the
//! pointer, as glibc does (`free(): invalid pointer`), instead of corrupting the heap.
//!
//! The message is formatted on the stack: the heap may be the thing that is broken.

use crate::os;

/// What went wrong, for the message.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Misuse {
    /// Not an address Tricolor handed out (foreign, interior, stale or never allocated).
    InvalidPointer,
    /// The block is already free.
    DoubleFree,
    /// The size or alignment given to a sized free does not match the allocation.
    SizeMismatch,
}

/// Writes `tricolor: <op>: <what> 0x<ptr>` to stderr and aborts.
#[cold]
#[inline(never)]
pub(crate) fn report(op: &str, what: Misuse, ptr: *const u8) -> ! {
    let mut buf = [0u8; 160];
    let mut n = 0;
    let mut put = |s: &[u8]| {
        let k = s.len().min(buf.len() - n);
        buf[n..n + k].copy_from_slice(&s[..k]);
        n += k;
    };
    put(b"tricolor: ");
    put(op.as_bytes());
    put(match what {
        Misuse::InvalidPointer => b": invalid pointer 0x",
        Misuse::DoubleFree => b": double free detected 0x",
        Misuse::SizeMismatch => b": size or alignment does not match the allocation 0x",
    });
    let mut hex = [0u8; 16];
    let mut v = ptr as usize;
    let mut digits = 0;
    loop {
        hex[15 - digits] = b"0123456789abcdef"[v & 15];
        v >>= 4;
        digits += 1;
        if v == 0 {
            break;
        }
    }
    put(&hex[16 - digits..]);
    put(b"\n");
    os::write_stderr(&buf[..n]);
    os::abort()
}
