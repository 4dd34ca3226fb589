//! Call stacks of sampled allocations: return addresses by the eh_frame tables (the caching
//! unwinder of `cfi`, falling back to libgcc's), or from the frame-pointer chain when
//! `TRICOLOR_PROFILE_FP=1`.
//!
//! `_Unwind_Backtrace` walks the stack by the eh_frame unwind tables, which every x86-64
//! object has (they are needed for C++ exceptions and Rust panics), so it works for code
//! built without frame pointers. Rust's standard library links libgcc_s already; the C
//! libraries list it among their link dependencies. It allocates nothing on glibc (its table
//! lookups go through `dl_iterate_phdr` or `_dl_find_object`); the caller is quiet anyway
//! (`sampler`). It interprets every frame's unwind program on every walk, about 2.4 µs a
//! sample on `churn`; `cfi` keeps each call site's rule instead (its walk takes about 0.1 µs
//! of the 0.23 µs a sample costs when `churn` samples every allocation), and
//! hands a stack to libgcc only when a frame's rule is one it does not follow.
//!
//! # Frame pointers
//! A program built with frame pointers (`-Cforce-frame-pointers=yes`, `-fno-omit-frame-pointer`)
//! keeps in `rbp` the address of a record `{ caller's rbp, return address }`, so its stack is a
//! linked list that costs two loads a frame. Code built without them may use `rbp` for
//! anything, so the walk trusts nothing it reads. Rules:
//! 1. Every record read lies inside `[sp, top)`: from the walker's own stack pointer to the
//!    top of the thread's stack (`pthread_getattr_np`, once per thread, by a quiet caller, as
//!    glibc allocates there), and only when the stack pointer lies in that stack. That range
//!    is then this thread's live stack, mapped and readable, so a wrong `rbp` yields wrong
//!    frames, never a fault. On another stack (a signal handler's alternate stack, a
//!    coroutine's), libgcc unwinds instead.
//! 2. Each record is 8-aligned and strictly above the previous one, so the walk ends.
//! 3. A return address of 0 ends it (the outermost frame's).
//!
//! A frame built without frame pointers is skipped or ends the walk (as in perf's and Go's
//! frame-pointer unwinding); the stack is only as good as the program's build.

use core::cell::Cell;
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
/// Follows frame pointers with `TRICOLOR_PROFILE_FP=1` (module docs), else unwinds by the
/// eh_frame tables: with the caching unwinder (`cfi`), or libgcc's where it gives up.
pub(crate) fn capture(frames: &mut [usize]) -> usize {
    if crate::knobs::profile().frame_pointers {
        return capture_fp(frames);
    }
    if let Some(n) = stack_bounds().and_then(|b| super::cfi::capture(frames, b)) {
        return n;
    }
    capture_unwind(frames)
}

std::thread_local! {
    /// This thread's stack as `[bottom, top)`; `(0, 0)` until looked up, `(0, usize::MAX)`
    /// when the lookup failed.
    static STACK: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

/// The calling thread's stack, `[bottom, top)`, looked up once per thread (rule 1). The caller
/// is quiet: glibc's lookup allocates.
pub(super) fn stack_bounds() -> Option<(usize, usize)> {
    let cached = STACK.with(Cell::get);
    let bounds = if cached != (0, 0) {
        cached
    } else {
        // SAFETY: a zeroed pthread_attr_t is the documented input of pthread_getattr_np, which
        // initialises it; it is destroyed after the query.
        let bounds = unsafe {
            let mut attr: libc::pthread_attr_t = core::mem::zeroed();
            let mut bounds = (0, usize::MAX);
            if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) == 0 {
                let (mut addr, mut size) = (core::ptr::null_mut(), 0usize);
                if libc::pthread_attr_getstack(&attr, &mut addr, &mut size) == 0 {
                    bounds = (addr as usize, addr as usize + size);
                }
                libc::pthread_attr_destroy(&mut attr);
            }
            bounds
        };
        STACK.with(|t| t.set(bounds));
        bounds
    };
    (bounds.1 != usize::MAX).then_some(bounds)
}

/// The part of the thread's stack a walk from `sp` may read: `[sp, top)` when `sp` is inside
/// the thread's stack; `None` on another stack (a signal handler's alternate stack, a
/// coroutine's), where the range up to the thread's top could hold unmapped pages (rule 1).
pub(super) fn live_stack(sp: usize, (bottom, top): (usize, usize)) -> Option<(usize, usize)> {
    (bottom <= sp && sp < top).then_some((sp, top))
}

/// [`capture`] by the frame-pointer chain (module docs), starting at this function's own
/// record when it has one; unwinds instead if the stack's bounds are unknown or the thread
/// runs on another stack.
#[inline(never)]
fn capture_fp(frames: &mut [usize]) -> usize {
    let (fp, sp): (usize, usize);
    // SAFETY: reads two registers.
    unsafe {
        core::arch::asm!("mov {}, rbp", "mov {}, rsp", out(reg) fp, out(reg) sp,
            options(nomem, nostack, preserves_flags))
    };
    let Some((lo, hi)) = stack_bounds().and_then(|b| live_stack(sp, b)) else {
        return capture_unwind(frames);
    };
    // SAFETY: `[lo, hi)` is the live part of this thread's stack (rule 1).
    unsafe { walk(fp, lo, hi, frames) }
}

/// Follows the chain of `{ saved rbp, return address }` records from `fp`, reading only
/// records inside `[lo, hi)`, 8-aligned, each strictly above the last (rules 1-3); fills
/// `frames` with the return addresses and returns how many.
///
/// # Safety
/// Every byte of `[lo, hi)` is readable.
unsafe fn walk(mut fp: usize, lo: usize, hi: usize, frames: &mut [usize]) -> usize {
    let mut n = 0;
    while n < frames.len() && fp >= lo && fp % 8 == 0 && fp.checked_add(16).is_some_and(|e| e <= hi)
    {
        // SAFETY: the record's 16 bytes are inside `[lo, hi)` (just checked), readable by the
        // caller's contract.
        let (next, ret) = unsafe { (*(fp as *const usize), *((fp + 8) as *const usize)) };
        if ret == 0 {
            break;
        }
        frames[n] = ret;
        n += 1;
        if next <= fp {
            break;
        }
        fp = next;
    }
    n
}

/// [`capture`] by libgcc's unwinder.
#[inline(never)]
pub(super) fn capture_unwind(frames: &mut [usize]) -> usize {
    let mut w = Walk { frames, n: 0 };
    // SAFETY: `step` matches the unwinder's callback type and only touches `w`, which outlives
    // the call.
    unsafe { _Unwind_Backtrace(step, (&mut w as *mut Walk).cast()) };
    w.n
}

#[cfg(test)]
mod tests {
    /// A made-up stack of `{ next, return address }` records in a buffer: the walk follows the
    /// chain, and stops at a record outside the bounds, a misaligned one, one that does not
    /// climb, and a zero return address.
    #[test]
    fn the_frame_pointer_walk_stays_in_bounds_and_ends() {
        let mut stack = [0usize; 32];
        // Every access goes through this one pointer: the walk reads what `set` writes.
        let words = stack.as_mut_ptr();
        let base = words as usize;
        let at = |i: usize| base + 8 * i;
        // SAFETY: `i` is below the buffer's 32 words.
        let set = |i: usize, v: usize| unsafe { words.add(i).write(v) };
        let (lo, hi) = (base, base + 8 * 32);
        // Records at words 2, 6, 10; the last points past the buffer.
        set(2, at(6));
        set(3, 0x1111);
        set(6, at(10));
        set(7, 0x2222);
        set(10, hi + 64);
        set(11, 0x3333);
        let mut f = [0usize; 8];
        // SAFETY: every byte of [lo, hi) is the buffer.
        let n = unsafe { super::walk(at(2), lo, hi, &mut f) };
        assert_eq!(&f[..n], &[0x1111, 0x2222, 0x3333]);
        // A loop (a record pointing back) ends after one visit of each record.
        set(10, at(2));
        // SAFETY: as above.
        let n = unsafe { super::walk(at(2), lo, hi, &mut f) };
        assert_eq!(&f[..n], &[0x1111, 0x2222, 0x3333]);
        // Misaligned, below `lo`, straddling `hi`: nothing is read.
        for fp in [at(2) + 1, lo - 16, hi - 8] {
            // SAFETY: as above; the walk must not read these.
            assert_eq!(unsafe { super::walk(fp, lo, hi, &mut f) }, 0);
        }
        // A zero return address ends the walk; a full output ends it too.
        set(7, 0);
        // SAFETY: as above.
        assert_eq!(unsafe { super::walk(at(2), lo, hi, &mut f) }, 1);
        // SAFETY: as above.
        assert_eq!(unsafe { super::walk(at(2), lo, hi, &mut f[..0]) }, 0);
    }

    #[test]
    fn the_frame_pointer_capture_finds_the_stack_and_returns_addresses() {
        let mut f = [0usize; 64];
        // This crate may be built without frame pointers: the walk may find few frames, but it
        // must return only nonzero addresses and never fault.
        let n = super::capture_fp(&mut f);
        assert!(f[..n].iter().all(|&a| a != 0));
        let sp = f.as_ptr() as usize;
        let bounds = super::stack_bounds().unwrap();
        assert_eq!(super::live_stack(sp, bounds), Some((sp, bounds.1)));
        // A stack pointer outside the thread's stack is not walked.
        assert_eq!(super::live_stack(bounds.1, bounds), None);
        assert_eq!(super::live_stack(bounds.0 - 8, bounds), None);
    }

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
