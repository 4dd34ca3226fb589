//! Linux implementation of the OS layer (see `os/mod.rs`).
//!
//! Memory model: an arena is *reserved* with `mmap(PROT_NONE)`: address space only, no commit
//! charge, no RSS. The page heap *commits* the part it hands out with
//! `mprotect(PROT_READ | PROT_WRITE)`, which the kernel charges against its overcommit limit
//! (the reservation deliberately has no `MAP_NORESERVE`), so an impossible request fails there
//! with ENOMEM instead of being promised and killed later; pages cost RSS once touched.
//! Metadata is mapped read-write directly (sparse tables with `MAP_NORESERVE`), never through
//! the allocator it describes.
//!
//! No function here changes `errno` (each keeps an [`ErrnoGuard`]): `free` must preserve it
//! (POSIX; glibc does), and a contended lock's futex wait can fail with `EAGAIN`. The C layer
//! sets `errno` itself when an allocation fails.

use core::ffi::c_void;
use core::ptr::{self, NonNull};
use core::sync::atomic::AtomicU32;

/// Restores the calling thread's `errno` when dropped.
struct ErrnoGuard(i32);

impl ErrnoGuard {
    fn new() -> Self {
        // SAFETY: __errno_location returns the calling thread's errno slot.
        Self(unsafe { *libc::__errno_location() })
    }
}

impl Drop for ErrnoGuard {
    fn drop(&mut self) {
        // SAFETY: as in `new`.
        unsafe { *libc::__errno_location() = self.0 };
    }
}

/// The smallest page size the kernel may use; our 8 KiB pages must be a multiple of it.
pub(crate) fn system_page_size() -> usize {
    // SAFETY: sysconf has no preconditions; it only reads a constant.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n <= 0 { 4096 } else { n as usize }
}

/// Reserves `len` bytes of address space aligned to `align` (a power of two), preferably at
/// `hint`. Nothing is committed: the range is `PROT_NONE` until [`commit`].
pub(crate) fn reserve(len: usize, align: usize, hint: usize) -> Option<NonNull<u8>> {
    let _errno = ErrnoGuard::new();
    debug_assert!(align.is_power_of_two() && len % system_page_size() == 0);
    if hint != 0 && hint % align == 0 {
        let p = map(hint as *mut c_void, len, libc::PROT_NONE, 0)?;
        if p.as_ptr() as usize == hint {
            return Some(p);
        }
        // SAFETY: the mapping just made, not handed out.
        unsafe { unmap(p.as_ptr(), len) };
    }
    // Over-reserve and trim both ends so the result is aligned.
    let total = len.checked_add(align)?;
    let raw = map(ptr::null_mut(), total, libc::PROT_NONE, 0)?.as_ptr() as usize;
    let start = (raw + align - 1) & !(align - 1);
    if start > raw {
        // SAFETY: the unaligned head of the mapping just made, not handed out.
        unsafe { unmap(raw as *mut u8, start - raw) };
    }
    let tail = raw + total - (start + len);
    if tail > 0 {
        // SAFETY: the tail past the aligned range of the mapping just made, not handed out.
        unsafe { unmap((start + len) as *mut u8, tail) };
    }
    NonNull::new(start as *mut u8)
}

/// Gives back a reservation made by [`reserve`] (or a whole-page part of one) that nothing
/// uses: committed or not, its address space and memory return to the OS.
///
/// # Safety
/// `[addr, addr + len)` is a whole-page part of a reservation of ours that nothing uses or
/// will use: after the call, touching it faults, and the kernel may map it to anyone.
pub(crate) unsafe fn unreserve(addr: usize, len: usize) {
    let _errno = ErrnoGuard::new();
    // SAFETY: the caller's contract.
    unsafe { unmap(addr as *mut u8, len) };
}

/// Makes `[ptr, ptr + len)`, inside a reservation, readable and writable. Returns false when
/// the kernel refuses (commit limit reached): the caller reports out-of-memory.
///
/// # Safety
/// `[ptr, ptr + len)` lies inside a reservation made by [`reserve`]: on anything else (say, a
/// read-only or executable mapping of the program) it would change protections under code
/// that relies on them.
pub(crate) unsafe fn commit(ptr: NonNull<u8>, len: usize) -> bool {
    let _errno = ErrnoGuard::new();
    // SAFETY: the range lies inside a reservation made by `reserve` (the caller's contract),
    // and changing the protection of our own mapping cannot affect any other object.
    unsafe { libc::mprotect(ptr.as_ptr().cast(), len, libc::PROT_READ | libc::PROT_WRITE) == 0 }
}

/// Maps `len` bytes of zero-filled read-write memory for allocator metadata. With
/// `MAP_NORESERVE` and Linux's lazy zero pages, a large sparse table (the pagemap root) costs
/// RSS only where it is written.
pub(crate) fn map_zeroed(len: usize) -> Option<NonNull<u8>> {
    let _errno = ErrnoGuard::new();
    map(
        ptr::null_mut(),
        len,
        libc::PROT_READ | libc::PROT_WRITE,
        libc::MAP_NORESERVE,
    )
}

fn map(hint: *mut c_void, len: usize, prot: i32, flags: i32) -> Option<NonNull<u8>> {
    // SAFETY: an anonymous private mapping without MAP_FIXED never replaces an existing
    // mapping; the kernel picks free address space (using `hint` only if it is free).
    let p = unsafe {
        libc::mmap(
            hint,
            len,
            prot,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | flags,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        None
    } else {
        NonNull::new(p.cast())
    }
}

/// # Safety
/// `[p, p + len)` is a whole-page part of a mapping this module created that nothing uses or
/// will use.
unsafe fn unmap(p: *mut u8, len: usize) {
    // SAFETY: the caller's contract (never handed out, or given back by `unreserve`'s caller).
    unsafe { libc::munmap(p.cast(), len) };
}

/// Sleeps while `*word == expected` (futex wait). Spurious wake-ups are allowed.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32) {
    let _errno = ErrnoGuard::new();
    // SAFETY: `word` is a live, aligned u32 for the whole call; FUTEX_WAIT only reads it.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            ptr::null::<libc::timespec>(),
        );
    }
}

/// Wakes one thread sleeping in [`futex_wait`] on `word`.
pub(crate) fn futex_wake_one(word: &AtomicU32) {
    let _errno = ErrnoGuard::new();
    // SAFETY: `word` is a live, aligned u32; FUTEX_WAKE does not access it.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            1,
        );
    }
}

/// `membarrier(2)` commands and flag (linux/membarrier.h); not all are in the libc crate.
const MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ: libc::c_long = 1 << 7;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ: libc::c_long = 1 << 8;
const MEMBARRIER_CMD_FLAG_CPU: libc::c_long = 1 << 0;

/// Registers the process for [`rseq_fence`] (Linux ≥ 5.10). False when the kernel refuses
/// (too old, or forbidden by a seccomp filter).
pub(crate) fn register_rseq_fence() -> bool {
    let _errno = ErrnoGuard::new();
    // SAFETY: a membarrier registration command takes no pointers.
    unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_RSEQ,
            0,
            0,
        ) == 0
    }
}

/// Restarts every restartable sequence of this process now running on `cpu`, and makes the
/// calling thread's earlier stores visible to whatever runs there next (`membarrier` with
/// `MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ` and `MEMBARRIER_CMD_FLAG_CPU`). False on failure.
pub(crate) fn rseq_fence(cpu: usize) -> bool {
    let _errno = ErrnoGuard::new();
    // SAFETY: a membarrier command with a CPU number takes no pointers.
    unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ,
            MEMBARRIER_CMD_FLAG_CPU,
            cpu as libc::c_int,
        ) == 0
    }
}

/// A monotonic clock in nanoseconds with a few milliseconds' resolution
/// (`CLOCK_MONOTONIC_COARSE`: a vDSO read, no system call), for rate limits.
pub(crate) fn coarse_now_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC_COARSE)
}

/// A thread-exit hook: `destructor(value)` runs when a thread that called [`ThreadExitKey::set`]
/// with a non-null value exits (a `pthread_key_create` destructor; Rust's `thread_local!` with
/// `Drop` would itself allocate when it registers).
pub(crate) struct ThreadExitKey(libc::pthread_key_t);

impl ThreadExitKey {
    /// Creates the key. Returns `None` when the process is out of keys.
    pub(crate) fn create(destructor: unsafe extern "C" fn(*mut c_void)) -> Option<Self> {
        let _errno = ErrnoGuard::new();
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: `key` is a valid out-pointer; the destructor is an `extern "C"` fn that lives
        // for the whole program.
        let rc = unsafe { libc::pthread_key_create(&mut key, Some(destructor)) };
        (rc == 0).then_some(Self(key))
    }

    /// Sets the calling thread's value. May allocate (glibc's second-level key table), so
    /// callers guard against re-entry.
    ///
    /// # Safety
    /// `value` is null or what the key's destructor accepts: it will be called with it when
    /// the thread exits.
    pub(crate) unsafe fn set(&self, value: *mut c_void) {
        let _errno = ErrnoGuard::new();
        // SAFETY: the key was created by `create` and is never deleted; the value is the
        // caller's.
        unsafe { libc::pthread_setspecific(self.0, value) };
    }

    /// The raw key, for storing in a static.
    pub(crate) fn raw(&self) -> u32 {
        self.0
    }

    /// Rebuilds a key from [`ThreadExitKey::raw`].
    pub(crate) fn from_raw(raw: u32) -> Self {
        Self(raw)
    }
}

/// Registers `fork` handlers (`pthread_atfork`). Returns false if the C library refused.
pub(crate) fn register_atfork(
    prepare: unsafe extern "C" fn(),
    parent: unsafe extern "C" fn(),
    child: unsafe extern "C" fn(),
) -> bool {
    let _errno = ErrnoGuard::new();
    // SAFETY: the handlers are `extern "C"` functions that live for the whole program.
    unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) == 0 }
}

/// The value of environment variable `name`, if set. Reads the environment without allocating
/// (the allocator may be initialising); the bytes stay valid while nobody changes the
/// environment (callers read them at once, during initialisation).
pub(crate) fn getenv(name: &core::ffi::CStr) -> Option<&'static [u8]> {
    let _errno = ErrnoGuard::new();
    // SAFETY: getenv with a NUL-terminated name returns null or a NUL-terminated string in the
    // environment block.
    unsafe {
        let v = libc::getenv(name.as_ptr());
        (!v.is_null()).then(|| core::ffi::CStr::from_ptr(v).to_bytes())
    }
}

/// Returns the pages of `[addr, addr + len)` (inside a committed range of ours) to the OS:
/// `madvise(MADV_DONTNEED)`, after which they read as zero, or with `free`, `MADV_FREE`, which
/// lets the kernel take them lazily (they stay in RSS until it does) and may leave their old
/// bytes. Falls back to `MADV_DONTNEED` where `MADV_FREE` is refused (Linux < 4.5).
///
/// # Safety
/// The range is committed memory of ours that nothing uses until it is handed out again:
/// its contents are lost (read as zero, or anything under `MADV_FREE`).
pub(crate) unsafe fn release(addr: usize, len: usize, free: bool) {
    let _errno = ErrnoGuard::new();
    // SAFETY: the caller's contract: committed memory the page heap owns and nobody uses;
    // advising the kernel to drop its contents is what the caller wants.
    unsafe {
        if free && libc::madvise(addr as *mut c_void, len, libc::MADV_FREE) == 0 {
            return;
        }
        libc::madvise(addr as *mut c_void, len, libc::MADV_DONTNEED);
    }
}

/// Sleeps for `ns` nanoseconds (less if a signal interrupts; the scavenger blocks them all).
pub(crate) fn sleep_ns(ns: u64) {
    let _errno = ErrnoGuard::new();
    let ts = libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: `ts` is a valid relative time; no remainder is asked for.
    unsafe { libc::nanosleep(&ts, ptr::null_mut()) };
}

/// Nanoseconds of CPU time the calling thread has used.
pub(crate) fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// A precise monotonic clock, in nanoseconds.
pub(crate) fn now_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let _errno = ErrnoGuard::new();
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Starts a detached thread running `body` with every signal blocked (so the program's signal
/// handlers never run on it) and a stack of `stack` bytes, named `name` (at most 15 bytes). False when
/// the thread could not be created. `pthread_create` may allocate: callers hold no allocator
/// lock.
pub(crate) fn spawn_detached(
    body: extern "C" fn(*mut c_void) -> *mut c_void,
    name: &core::ffi::CStr,
    stack: usize,
) -> bool {
    let _errno = ErrnoGuard::new();
    // SAFETY: every pointer passed is a valid local out-pointer or the attr/sets initialised
    // just before; the old mask is restored before returning.
    unsafe {
        let mut attr: libc::pthread_attr_t = core::mem::zeroed();
        if libc::pthread_attr_init(&mut attr) != 0 {
            return false;
        }
        libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        libc::pthread_attr_setstacksize(&mut attr, stack);
        let mut all: libc::sigset_t = core::mem::zeroed();
        let mut old: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let mut t: libc::pthread_t = 0;
        let ok = libc::pthread_create(&mut t, &attr, body, ptr::null_mut()) == 0;
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, ptr::null_mut());
        libc::pthread_attr_destroy(&mut attr);
        if ok {
            libc::pthread_setname_np(t, name.as_ptr());
        }
        ok
    }
}

/// Writes all of `bytes` to standard error, ignoring failures (used right before aborting).
pub(crate) fn write_stderr(bytes: &[u8]) {
    let _errno = ErrnoGuard::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        // SAFETY: `rest` is a valid readable slice for the length given.
        let n = unsafe { libc::write(2, rest.as_ptr().cast(), rest.len()) };
        if n <= 0 {
            return;
        }
        rest = &rest[n as usize..];
    }
}

/// Ends the process with SIGABRT, like glibc's malloc checks do.
pub(crate) fn abort() -> ! {
    // SAFETY: abort has no preconditions and does not return.
    unsafe { libc::abort() }
}

/// 64 random bits from the kernel, or a mix of address-space and clock entropy when
/// `getrandom` is unavailable (early boot, seccomp). Used for the free-block canary key.
pub(crate) fn random_u64() -> u64 {
    let _errno = ErrnoGuard::new();
    let mut v: u64 = 0;
    // SAFETY: `v` is a valid 8-byte out-buffer.
    let n = unsafe { libc::getrandom((&raw mut v).cast(), 8, libc::GRND_NONBLOCK) };
    if n == 8 {
        return v;
    }
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    let stack = &raw const ts as u64;
    (ts.tv_nsec as u64) ^ ((ts.tv_sec as u64) << 32) ^ stack.rotate_left(17) ^ 0x9e37_79b9_7f4a_7c15
}
