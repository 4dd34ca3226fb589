//! Writing the heap profile: [`dump`] and [`encode`] on demand, and the automatic writes
//! `TRICOLOR_PROFILE` asks for (at exit, and on `SIGUSR2` when `TRICOLOR_PROFILE_SIGNAL=1`).
//! Nothing here registers with libc from inside an allocation: the write at exit is a
//! `.fini_array` entry, and the signal's thread starts after a sample, on a quiet thread
//! holding no allocator lock ([`after_sample`]).

use super::{pprof, sampler};
use crate::os;
use crate::sync::{AtomicBool, AtomicI32, AtomicPtr, AtomicUsize, Ordering};
use core::ffi::c_void;
use std::io;
use std::path::Path;

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
    pprof::encode(sampler::rate())
}

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
pub(crate) fn arm(path: &[u8], signal: bool) {
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
pub(crate) fn after_sample() {
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
