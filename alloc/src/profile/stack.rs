//! Call stacks of sampled allocations: return addresses from libgcc's unwinder.
//!
//! `_Unwind_Backtrace` walks the stack by the eh_frame unwind tables, which every x86-64
//! object has (they are needed for C++ exceptions and Rust panics), so it works for code
//! built without frame pointers. Rust's standard library links libgcc_s already; the C
//! libraries list it among their link dependencies. It allocates nothing on glibc (its table
//! lookups go through `dl_iterate_phdr`); the caller is quiet anyway (`sampler`).

use core::ffi::{c_int, c_void};

/// `_URC_NO_REASON`: go on.
const CONTINUE: c_int = 0;
/// `_URC_END_OF_STACK`: stop.
const STOP: c_int = 5;

unsafe extern "C" {
    fn _Unwind_Backtrace(
        trace: extern "C" fn(*mut c_void, *mut c_void) -> c_int,
        arg: *mut c_void,
    ) -> c_int;
    fn _Unwind_GetIP(ctx: *mut c_void) -> usize;
}

struct Walk<'a> {
    frames: &'a mut [usize],
    n: usize,
}

extern "C" fn step(ctx: *mut c_void, arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `Walk` that `capture` passed, alive for the whole walk and reached
    // only from this callback.
    let w = unsafe { &mut *arg.cast::<Walk>() };
    // SAFETY: `ctx` is the unwinder's context for the frame being visited.
    let ip = unsafe { _Unwind_GetIP(ctx) };
    if ip == 0 || w.n == w.frames.len() {
        return STOP;
    }
    w.frames[w.n] = ip;
    w.n += 1;
    CONTINUE
}

/// Fills `frames` with the calling thread's return addresses, innermost first (this function
/// and the allocator's own frames included: the profile writer trims them); returns how many.
#[inline(never)]
pub(crate) fn capture(frames: &mut [usize]) -> usize {
    let mut w = Walk { frames, n: 0 };
    // SAFETY: `step` matches the unwinder's callback type and only touches `w`, which outlives
    // the call.
    unsafe { _Unwind_Backtrace(step, (&mut w as *mut Walk).cast()) };
    w.n
}

#[cfg(test)]
mod tests {
    #[inline(never)]
    fn deep(n: u32, out: &mut [usize]) -> usize {
        if n == 0 {
            super::capture(out)
        } else {
            let d = deep(n - 1, out);
            std::hint::black_box(d)
        }
    }

    #[test]
    fn captures_every_frame_of_a_deep_call() {
        let mut f = [0usize; 64];
        let shallow = deep(0, &mut f);
        let d = deep(20, &mut f);
        assert!(shallow > 2, "{shallow}");
        assert_eq!(d, (shallow + 20).min(64), "each call adds one frame");
        assert!(f[..d].iter().all(|&a| a != 0));
    }
}
