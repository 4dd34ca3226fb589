//! The RSS spike: how fast each allocator gives memory back to the OS when the program stops
//! needing it and then does nothing at all (an idle program whose RSS never comes down is the
//! failure this measures).
//!
//! One run, in its own process: allocate `mib` MiB of mixed objects (half small, 16 B to
//! 30 KB; half large, 40 KB to 1 MiB), touching every byte; free them all; then sleep, reading
//! RSS (`/proc/self/statm`) at fixed times after the last free, and the process's CPU time
//! over that idle window (any allocator thread working in the background shows there; the
//! program's own thread sleeps).

use std::alloc::{GlobalAlloc, Layout};
use std::time::{Duration, Instant};

/// When RSS is read, in seconds after the last free.
pub const SAMPLES: [f64; 5] = [0.0, 1.0, 2.0, 5.0, 10.0];

/// What one run measured (bytes, seconds).
#[derive(Clone, Debug, PartialEq)]
pub struct Spike {
    /// RSS before the spike.
    pub base: usize,
    /// RSS with the whole spike allocated.
    pub peak: usize,
    /// RSS at each of [`SAMPLES`] (as many as were taken).
    pub after: Vec<usize>,
    /// Process CPU time (user + system) during the idle window, in seconds.
    pub idle_cpu: f64,
    /// Checksum of the contents read back before freeing.
    pub checksum: u64,
}

/// Resident bytes of this process.
pub fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as usize
}

fn cpu_seconds() -> f64 {
    // SAFETY: `ru` is a valid out-pointer.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Sizes of the spike's objects, about half the bytes small and half large.
pub fn sizes(total: usize) -> Vec<usize> {
    const SMALL: [usize; 11] = [16, 48, 100, 256, 700, 1024, 3000, 4096, 9000, 16384, 30000];
    const LARGE: [usize; 5] = [40_000, 100_000, 300_000, 600_000, 1 << 20];
    let mut out = Vec::new();
    let (mut small, mut large, mut i) = (0, 0, 0);
    while small + large < total {
        let n = if small <= large {
            SMALL[i % SMALL.len()]
        } else {
            LARGE[i % LARGE.len()]
        };
        if small <= large {
            small += n;
        } else {
            large += n;
        }
        out.push(n);
        i += 1;
    }
    out
}

/// Runs the spike on allocator `a`, sampling up to `seconds` after the last free.
pub fn run<A: GlobalAlloc>(a: &A, mib: usize, seconds: f64) -> Spike {
    let base = rss();
    let sizes = sizes(mib << 20);
    let mut blocks = Vec::with_capacity(sizes.len());
    for (i, &n) in sizes.iter().enumerate() {
        let layout = Layout::from_size_align(n, 8).expect("layout");
        // SAFETY: a non-zero size.
        let p = unsafe { a.alloc(layout) };
        assert!(!p.is_null(), "out of memory in the spike");
        // SAFETY: a fresh block of `n` bytes.
        unsafe { p.write_bytes(i as u8, n) };
        blocks.push((p, layout));
    }
    let peak = rss();
    let mut checksum = 0u64;
    for (p, layout) in blocks {
        // SAFETY: ours; read one byte from each end, then free.
        unsafe {
            checksum = checksum
                .wrapping_mul(31)
                .wrapping_add(u64::from(*p) + u64::from(*p.add(layout.size() - 1)));
            a.dealloc(p, layout);
        }
    }
    let t0 = Instant::now();
    let cpu0 = cpu_seconds();
    let mut after = Vec::new();
    for &at in SAMPLES.iter().filter(|&&s| s <= seconds) {
        let wait = Duration::from_secs_f64(at).saturating_sub(t0.elapsed());
        std::thread::sleep(wait);
        after.push(rss());
    }
    Spike {
        base,
        peak,
        after,
        idle_cpu: cpu_seconds() - cpu0,
        checksum,
    }
}
