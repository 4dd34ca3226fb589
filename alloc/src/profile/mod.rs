//! Heap profiles: sampled allocations with their call stacks, written in pprof's format.
//!
//! # Sampling (TCMalloc's and Go's way)
//! On average one allocation per `rate` bytes allocated is sampled (Go's `MemProfileRate`,
//! default 512 KiB), each block of `s` bytes with probability `1 - e^(-s/rate)` whatever came
//! before it, and the profile divides by that probability to estimate the totals without bias
//! (Go's `scaleHeapSample`). Two ways, with the same law:
//! * Small allocations from the per-CPU lists: each list (a class on a CPU) lets `k`
//!   allocations through before the next sample, `k` being an exponential gap of mean `rate`
//!   bytes divided by the class's size (`percpu::counter_for`), so `k` is geometric and each
//!   allocation is sampled independently with the probability above. The gap is kept in the
//!   list's allocation counter, which the allocating sequence already increments: the counter
//!   is set `k` below the value at which the increment carries, and the carry makes the
//!   sequence fail into the sampling path (`percpu::counters`).
//! * Everything else (large allocations, and all allocations with per-thread caches) counts
//!   its bytes down out of line, per CPU (in its slab) or per thread (`sampler::take`), to a
//!   gap drawn the same way.
//!
//! # What it costs
//! While off: one branch on the carry in the allocating sequence, never taken (a counter left
//! alone carries once per 2^32 allocations of its list and is set far off again). While on,
//! the per-CPU fast path is the same instructions; only the sampled allocations cost more
//! (their stack, a page run, the bucket). Frees are unchanged. The figures are in the README.
//! Arming the counters of other CPUs needs `membarrier`'s rseq command (Linux 5.10); where it
//! is refused, a rate in force when the first allocation builds the slabs (the environment's)
//! arms them as they are built, and a rate set later makes small allocations take the
//! out-of-line countdown (`percpu::SAMPLING`), much slower ([`sampled_by_counters`] says which).
//!
//! # A sampled allocation is a page run of its own
//! As TCMalloc does, the sampled request is served from the page heap as a Large span marked
//! `span::SAMPLED`, whose record carries the sample's bucket. Freeing it takes the large-block
//! path, which already reads the span: the profile learns of the free at no cost to other
//! frees. A sampled small block costs a page (8 KiB) while it lives: at the default rate, at
//! most 8 KiB per 512 KiB allocated (1.6%), and only while sampling. `malloc_usable_size`
//! reports the page run's size for it, and the statistics count it as a large allocation.
//!
//! # Stacks
//! Unwound by the eh_frame tables every x86-64 object carries, so programs built without
//! frame pointers (Debian's, Rust's release builds) give whole stacks: by a caching unwinder
//! that keeps each call site's rule once libgcc has found its FDE (`cfi`), or by libgcc's
//! `_Unwind_Backtrace` for a stack with a frame it does not follow; by frame pointers with
//! `TRICOLOR_PROFILE_FP=1` (`stack`). Up to `buckets::MAX_FRAMES` return addresses; measured
//! cost in the README. Symbolizing waits for
//! the profile to be written (`pprof`). While a thread samples or writes a profile, its own
//! allocations are not sampled (the unwinder may allocate; the writer does).
//!
//! # Buckets
//! Samples with the same stack and size share a bucket (Go's `bucket`) counting allocations
//! and frees; buckets are never freed, and at most `buckets::MAX_BUCKETS` exist (a sample with
//! a new stack beyond that is not taken).
//!
//! # Writing
//! [`dump`] (C `tc_profile_dump`), `TRICOLOR_PROFILE=path` at exit (`%p` in it becomes the
//! process id; a `.fini_array` entry, so nothing is registered from inside the first
//! `malloc`), and with `TRICOLOR_PROFILE_SIGNAL=1` on each `SIGUSR2` to `path.N` (written by
//! a thread of the profiler's own, woken through a pipe: a signal handler cannot allocate;
//! handler and thread are installed at the first sample, outside every lock; a child after
//! `fork` gets a pipe of its own, and its own thread at its next sample). Files are
//! written under a temporary name and renamed. The file is
//! pprof's `profile.proto` with Go's heap-profile sample types.

mod buckets;
mod cfi;
mod pprof;
pub mod proto;
mod sampler;
mod stack;

pub(crate) use sampler::{alloc_sampled, sample_small, take};

use crate::knobs;
use crate::sync::{AtomicBool, AtomicU64, Ordering};
use std::io;
use std::path::Path;

/// Bytes per sample; 0 while sampling is off.
static RATE: AtomicU64 = AtomicU64::new(0);

/// The sampling rate: on average one sample per this many bytes allocated; 0 when off.
pub fn rate() -> u64 {
    RATE.load(Ordering::Relaxed)
}

/// Sets the sampling rate (Go's `runtime.MemProfileRate = n`) and returns the previous one:
/// `0` stops sampling (blocks already sampled stay in the profile until freed), `1` samples
/// every allocation. A profile written later scales every sample by the rate then in force,
/// as Go's does.
pub fn set_rate(bytes: u64) -> u64 {
    // Decide the front end first: the countdown slots depend on it.
    crate::percpu::per_cpu();
    let old = RATE.swap(bytes, Ordering::Relaxed);
    EPOCH.fetch_add(1, Ordering::AcqRel);
    sampler::init_slots();
    crate::percpu::set_sampling(bytes > 0);
    old
}

/// Puts the environment's rate in force while the front end is being built, before
/// [`set_rate`] starts sampling with it (`percpu::decide`: the per-CPU lists' counters are
/// armed as they are built).
pub(crate) fn preset_rate(bytes: u64) {
    RATE.store(bytes, Ordering::Relaxed);
}

/// True while small allocations are sampled by the per-CPU lists' counters, at no cost to
/// the fast path; false while sampling is off, with per-thread caches, or where the counters
/// cannot be armed (a kernel without `membarrier`'s rseq command, Linux before 5.10, when the
/// rate is set after the first allocation: small allocations then count down out of line).
/// For diagnostics and tests.
#[doc(hidden)]
pub fn sampled_by_counters() -> bool {
    crate::percpu::sampling_by_counters()
}

/// Bumped by every [`set_rate`]: a countdown kept outside the allocator (a collector's) starts
/// over when it sees a new epoch.
static EPOCH: AtomicU64 = AtomicU64::new(0);

/// The sampling epoch: changes whenever the rate is set.
pub fn epoch() -> u64 {
    EPOCH.load(Ordering::Acquire)
}

/// The bytes to allocate before the next sample, drawn as the allocator draws its own
/// (exponential, mean [`rate`]); `None` while sampling is off. For a layer above that
/// allocates from memory of its own (Tricolor's collector, from its spans) and keeps its
/// own countdown, per thread.
pub fn next_sample_gap() -> Option<u64> {
    sampler::next_gap()
}

/// Records a sampled object of `bytes` that a layer above allocated, with the calling
/// thread's stack and `label` (the collector passes the object's type name, which the
/// profile shows as the sample's `type` label). Returns the sample's bucket for
/// [`object_freed`], or `None` when it was not recorded. Labels are told apart by address,
/// so pass each name from one place: equal names at different addresses make separate
/// buckets (pprof readers add them together, so the profile reads the same; it only holds
/// more buckets).
pub fn record_object(bytes: usize, label: &'static str) -> Option<u32> {
    sampler::record_object(bytes, label)
}

/// A sampled object [`record_object`] returned `bucket` for is dead (the allocator's own
/// sampled blocks report their frees here too).
pub fn object_freed(bucket: u32) {
    buckets::free(bucket);
}

/// Writes the heap profile to `path` (pprof's protobuf format, uncompressed, which
/// `go tool pprof` and other pprof readers take directly). It holds every sampled allocation
/// since sampling began, and those still live, with Go's four sample types.
pub fn dump(path: impl AsRef<Path>) -> io::Result<()> {
    let bytes = encode();
    std::fs::write(path, bytes)
}

/// The heap profile, encoded as [`dump`] writes it.
pub fn encode() -> Vec<u8> {
    let _quiet = sampler::Quiet::enter();
    pprof::encode(rate())
}

/// `fork`'s prepare handler: the profiler's locks, before every other allocator lock.
pub(crate) fn lock_for_fork() {
    sampler::INIT.lock_for_fork();
    buckets::INDEX.lock_for_fork();
}

/// Releases what [`lock_for_fork`] took.
///
/// # Safety
/// The calling thread ran [`lock_for_fork`] (before the fork, parent or child side).
pub(crate) unsafe fn unlock_after_fork() {
    // SAFETY: the caller's contract: this thread holds both.
    unsafe {
        buckets::INDEX.unlock_after_fork();
        sampler::INIT.unlock_after_fork();
    }
}

/// Called once, when the front end is decided (the first allocation): starts sampling and
/// registers the writes `TRICOLOR_PROFILE` asks for.
pub(crate) fn start_from_environment() {
    let k = knobs::profile();
    if k.rate > 0 {
        set_rate(k.rate);
    }
    if let Some(path) = k.path {
        writer::arm(path, k.signal);
    }
}

/// The automatic writes: at exit, and on `SIGUSR2`.
pub(crate) mod writer {
    use super::*;
    use crate::os;
    use crate::sync::{AtomicI32, AtomicPtr, AtomicUsize};
    use core::ffi::c_void;

    /// `TRICOLOR_PROFILE`'s path, copied (the environment may change).
    static PATH: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());
    static PATH_LEN: AtomicUsize = AtomicUsize::new(0);
    static ARMED: AtomicBool = AtomicBool::new(false);
    /// `TRICOLOR_PROFILE_SIGNAL=1` asked for the handler; the first sample starts its thread.
    static SIGNAL_WANTED: AtomicBool = AtomicBool::new(false);
    static SIGNAL_ARMED: AtomicBool = AtomicBool::new(false);
    /// The pipe's write end, for the signal handler.
    static WAKE: AtomicI32 = AtomicI32::new(-1);
    static WAKE_READ: AtomicI32 = AtomicI32::new(-1);

    /// The path, with `%p` replaced by the process id (for programs that start others under
    /// the same environment, which would otherwise overwrite each other's profile).
    fn path() -> Option<String> {
        let p = PATH.load(Ordering::Acquire);
        if p.is_null() {
            return None;
        }
        // SAFETY: set once to a leaked copy of `PATH_LEN` bytes before being published.
        let bytes = unsafe { core::slice::from_raw_parts(p, PATH_LEN.load(Ordering::Relaxed)) };
        let path = String::from_utf8_lossy(bytes);
        Some(path.replace("%p", &std::process::id().to_string()))
    }

    /// Called when the front end is decided, inside the first allocation: only records what
    /// to do. Nothing is registered with libc here (an `atexit` from inside `malloc` can
    /// deadlock on libc's exit-handler lock when that `malloc` came from `atexit`); the
    /// write at exit is a `.fini_array` entry, and the signal handler waits for the first
    /// sample (`after_sample`).
    pub(super) fn arm(path: &[u8], signal: bool) {
        if ARMED.load(Ordering::Acquire) {
            return;
        }
        let copy = Box::leak(path.to_vec().into_boxed_slice());
        PATH_LEN.store(copy.len(), Ordering::Relaxed);
        PATH.store(copy.as_mut_ptr(), Ordering::Release);
        SIGNAL_WANTED.store(signal, Ordering::Relaxed);
        ARMED.store(true, Ordering::Release);
        if signal {
            arm_signal();
        }
    }

    /// After a sampled allocation, on a quiet thread holding no allocator lock: starts the
    /// thread that writes on `SIGUSR2` the first time, if the handler is installed
    /// (`pthread_create` may allocate and takes the loader's locks: not from inside the
    /// first `malloc`).
    pub(super) fn after_sample() {
        if SIGNAL_WANTED.load(Ordering::Relaxed)
            && WAKE.load(Ordering::Acquire) >= 0
            && !SIGNAL_ARMED.swap(true, Ordering::AcqRel)
            && !os::spawn_detached(signalled, c"tricolor-prof", 8 << 20)
        {
            os::write_stderr(b"tricolor: cannot start the heap profile's SIGUSR2 thread\n");
        }
    }

    /// Run by the C runtime at exit (after `atexit` handlers), for this object: the
    /// executable, or the shared library that links the allocator.
    #[used]
    #[unsafe(link_section = ".fini_array")]
    static WRITE_AT_EXIT: extern "C" fn() = at_exit;

    extern "C" fn at_exit() {
        if !ARMED.load(Ordering::Acquire) {
            return;
        }
        if let Some(p) = path() {
            write(&p);
        }
    }

    /// Writes to a temporary name beside `p`, then renames: a reader never sees half a file.
    fn write(p: &str) {
        let tmp = format!("{p}.tmp{}", std::process::id());
        let done = dump(&tmp).and_then(|()| std::fs::rename(&tmp, p));
        if let Err(e) = done {
            std::fs::remove_file(&tmp).ok();
            os::write_stderr(format!("tricolor: cannot write heap profile {p}: {e}\n").as_bytes());
        }
    }

    /// Installs the `SIGUSR2` handler if the program left the signal at its default: system
    /// calls only, safe inside the first allocation. The thread that writes `path.N` when the
    /// handler wakes it starts at the first sample (`after_sample`); signals before it wait
    /// in the pipe.
    fn arm_signal() {
        let mut fds = [0i32; 2];
        // SAFETY: `fds` has room for the two descriptors; every struct passed is initialised.
        unsafe {
            let mut old: libc::sigaction = core::mem::zeroed();
            if libc::sigaction(libc::SIGUSR2, core::ptr::null(), &mut old) != 0
                || old.sa_sigaction != libc::SIG_DFL
            {
                os::write_stderr(
                    b"tricolor: TRICOLOR_PROFILE_SIGNAL=1 ignored: the program handles SIGUSR2\n",
                );
                return;
            }
            if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
                return;
            }
            WAKE_READ.store(fds[0], Ordering::Relaxed);
            WAKE.store(fds[1], Ordering::Release);
            let mut act: libc::sigaction = core::mem::zeroed();
            act.sa_sigaction = on_signal as extern "C" fn(i32) as usize;
            act.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut act.sa_mask);
            libc::sigaction(libc::SIGUSR2, &act, core::ptr::null_mut());
        }
    }

    /// In a child after `fork`: the inherited pipe is the parent's, read by the parent's
    /// thread (the child has none), so a `SIGUSR2` sent to the child would make the parent
    /// write its profile. The child gets a pipe of its own, and its own thread at its next
    /// sample; signals before that wait in the new pipe. System calls only (the child's
    /// `fork` handler).
    pub(crate) fn after_fork_child() {
        let old = WAKE.swap(-1, Ordering::AcqRel);
        if old < 0 {
            return;
        }
        let old_read = WAKE_READ.swap(-1, Ordering::Relaxed);
        let mut fds = [0i32; 2];
        // SAFETY: closing the child's copies of the parent's pipe (the parent keeps its own);
        // `fds` has room for the two new descriptors.
        unsafe {
            libc::close(old);
            libc::close(old_read);
            if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
                return;
            }
        }
        WAKE_READ.store(fds[0], Ordering::Relaxed);
        SIGNAL_ARMED.store(false, Ordering::Release);
        WAKE.store(fds[1], Ordering::Release);
    }

    extern "C" fn on_signal(_: i32) {
        let fd = WAKE.load(Ordering::Acquire);
        if fd >= 0 {
            // SAFETY: write(2) is async-signal-safe; one byte from a valid buffer; errno is
            // this thread's and is put back as the interrupted code left it.
            unsafe {
                let saved = *libc::__errno_location();
                libc::write(fd, [1u8].as_ptr().cast(), 1);
                *libc::__errno_location() = saved;
            }
        }
    }

    extern "C" fn signalled(_: *mut c_void) -> *mut c_void {
        let fd = WAKE_READ.load(Ordering::Relaxed);
        let mut n = 0u32;
        loop {
            let mut b = 0u8;
            // SAFETY: a one-byte read into a local.
            let r = unsafe { libc::read(fd, (&mut b as *mut u8).cast(), 1) };
            if r == 1 {
                n += 1;
                if let Some(p) = path() {
                    write(&format!("{p}.{n}"));
                }
            } else if r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return core::ptr::null_mut();
            }
        }
    }
}
