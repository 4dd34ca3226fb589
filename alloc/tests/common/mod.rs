//! Helpers shared by the allocator's integration tests.
#![allow(dead_code)] // each test binary uses its own subset

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
