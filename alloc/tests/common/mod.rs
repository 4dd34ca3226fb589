//! Helpers shared by the allocator's integration tests.
#![allow(dead_code)] // each test binary uses its own subset

/// Says on standard error that `what` was not tested, and why: written to the file itself,
/// past the test harness's capture, so a test that could test nothing here is seen in every
/// run's output instead of passing silently.
pub fn skipped(what: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "skipped: {what} ({why})");
}

/// Restricts the calling thread to `cpus`.
pub fn pin(cpus: &[usize]) {
    // SAFETY: a zeroed cpu_set_t is valid; setting our own thread's affinity.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Fills the block `p` of `size` bytes with a pattern derived from `v`.
pub fn stamp(p: *mut u8, size: usize, v: u64) {
    for i in 0..size / 8 {
        // SAFETY: inside the block we own.
        unsafe { p.cast::<u64>().add(i).write(v ^ i as u64) };
    }
}

/// Checks the pattern [`stamp`] wrote; a block handed out twice or corrupted fails it.
pub fn check(p: *mut u8, size: usize, v: u64) {
    for i in 0..size / 8 {
        // SAFETY: inside the block we own.
        let w = unsafe { p.cast::<u64>().add(i).read() };
        assert_eq!(
            w,
            v ^ i as u64,
            "block {p:p} ({size} B) word {i}: handed out twice or corrupted"
        );
    }
}

/// xorshift64: a fast, reproducible random stream for workloads.
pub fn next(x: &mut u64) -> u64 {
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// Blocks a test thread owns, each stamped with its own pattern, allocated and freed through
/// the binary's global allocator. Dropping it checks and frees whatever is left.
#[derive(Default)]
pub struct Live(Vec<(usize, usize, u64)>);

impl Live {
    /// Blocks held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Allocates `size` bytes and stamps them with `v`.
    pub fn alloc(&mut self, size: usize, v: u64) {
        let layout = std::alloc::Layout::from_size_align(size, 8).unwrap();
        // SAFETY: a valid, non-zero layout.
        let p = unsafe { std::alloc::alloc(layout) };
        assert!(!p.is_null());
        stamp(p, size, v);
        self.0.push((p as usize, size, v));
    }

    /// Checks and frees the block at `pick % len()` (there must be one).
    pub fn free_one(&mut self, pick: usize) {
        let (p, n, v) = self.0.swap_remove(pick % self.0.len());
        check(p as *mut u8, n, v);
        // SAFETY: a live block allocated by `alloc` with this layout.
        unsafe {
            std::alloc::dealloc(
                p as *mut u8,
                std::alloc::Layout::from_size_align(n, 8).unwrap(),
            )
        };
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        while !self.0.is_empty() {
            self.free_one(0);
        }
    }
}
