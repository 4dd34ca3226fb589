//! TCMalloc (gperftools' `libtcmalloc_minimal.so.4`, Debian's `libtcmalloc-minimal4`) as a
//! `GlobalAlloc`, for the comparison tables only.
//!
//! No crate wraps gperftools' TCMalloc, and linking it would replace `malloc` for the whole
//! benchmark process, so it is loaded with `dlopen` (`RTLD_LOCAL | RTLD_DEEPBIND`: its
//! symbols stay out of the process's scope and its own references bind to itself) and called
//! through its prefixed entry points `tc_memalign`, `tc_free`, `tc_realloc` and `tc_calloc`,
//! which only ever see its own blocks. Not `tc_free_sized`: gperftools trusts its size to
//! find the block's class, and `tc_realloc` shrinks in place (keeping the old class), so
//! the size Rust passes after a shrinking `realloc` names the wrong class (measured: with
//! `tc_free_sized`, the realloc workload crashes; a test here repeats that shrink and free).
//!
//! # `TCMALLOC_SKIP_SBRK=true` is required
//! By default TCMalloc takes memory with `sbrk`, as glibc's malloc (the benchmark process's
//! own allocator) does, each under its own lock: `sbrk` is not atomic, so two threads growing
//! the break at once can both be handed the same range. Measured: without the
//! variable, 13 of 40 runs of `prodcons8` on TCMalloc hang (a channel's buffer, from glibc,
//! overwritten) or crash; with it, 0 of 40 (`tricolor bench --workload prodcons8 --allocator
//! tcmalloc` runs with it set). The variable must be in the environment before the
//! library loads, and setting it is only sound before the process has threads, so the
//! processes that load TCMalloc set it first thing in `main` (`set_skip_sbrk`), and `load`
//! refuses to load the library without it. `TCMALLOC_SKIP_SBRK` is not needed: its
//! `sbrk` use coexists with glibc's, which treats a foreign break as non-contiguous.
//!
//! Invariant: [`TcMalloc`]'s methods run only after [`TcMalloc::get`] returned it, so the
//! function pointers are loaded; a missing library makes `get` return `None` and the rival
//! is skipped.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::{CStr, c_void};
use std::sync::OnceLock;

type TwoSizes = unsafe extern "C" fn(usize, usize) -> *mut c_void;
type Resize = unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void;
type Free = unsafe extern "C" fn(*mut c_void);

struct Fns {
    memalign: TwoSizes,
    calloc: TwoSizes,
    realloc: Resize,
    free: Free,
}

/// TCMalloc, loaded (module docs).
pub struct TcMalloc {
    fns: Fns,
}

/// The library's name, as Debian installs it.
pub const LIBRARY: &CStr = c"libtcmalloc_minimal.so.4";

/// The variable that keeps TCMalloc off `sbrk` (module docs).
pub const SKIP_SBRK: &str = "TCMALLOC_SKIP_SBRK";

/// Sets [`SKIP_SBRK`] for this process and its children.
///
/// # Safety
/// No other thread exists (call it first thing in `main`): setting the environment races
/// with any thread reading it.
pub unsafe fn set_skip_sbrk() {
    // SAFETY: the caller's contract: this is the only thread.
    unsafe { std::env::set_var(SKIP_SBRK, "true") };
}

static LOADED: OnceLock<Option<TcMalloc>> = OnceLock::new();

/// Looks `name` up in `handle`; null if absent.
fn symbol(handle: *mut c_void, name: &CStr) -> *mut c_void {
    // SAFETY: a handle from dlopen and a NUL-terminated name.
    unsafe { libc::dlsym(handle, name.as_ptr()) }
}

fn load() -> Option<TcMalloc> {
    if std::env::var(SKIP_SBRK).as_deref() != Ok("true") {
        eprintln!("{SKIP_SBRK}=true is not set: TCMalloc is not loaded (tcmalloc module docs)");
        return None;
    }
    // SAFETY: a NUL-terminated name; the flags are valid. The handle is never closed (the
    // allocator it holds lives as long as the process).
    let h = unsafe {
        libc::dlopen(
            LIBRARY.as_ptr(),
            libc::RTLD_NOW | libc::RTLD_LOCAL | libc::RTLD_DEEPBIND,
        )
    };
    if h.is_null() {
        return None;
    }
    let syms = [
        symbol(h, c"tc_memalign"),
        symbol(h, c"tc_calloc"),
        symbol(h, c"tc_realloc"),
        symbol(h, c"tc_free"),
    ];
    if syms.iter().any(|p| p.is_null()) {
        return None;
    }
    // SAFETY: gperftools' documented prototypes (gperftools/tcmalloc.h): `void
    // *tc_memalign(size_t, size_t)`, `void *tc_calloc(size_t, size_t)`, `void
    // *tc_realloc(void *, size_t)`, `void tc_free(void *)`.
    unsafe {
        Some(TcMalloc {
            fns: Fns {
                memalign: std::mem::transmute::<*mut c_void, TwoSizes>(syms[0]),
                calloc: std::mem::transmute::<*mut c_void, TwoSizes>(syms[1]),
                realloc: std::mem::transmute::<*mut c_void, Resize>(syms[2]),
                free: std::mem::transmute::<*mut c_void, Free>(syms[3]),
            },
        })
    }
}

impl TcMalloc {
    /// TCMalloc, loaded on first use; `None` when the library is not installed.
    pub fn get() -> Option<&'static TcMalloc> {
        LOADED.get_or_init(load).as_ref()
    }
}

// SAFETY: TCMalloc's entry points are thread-safe; each returns a block of at least the size
// asked, aligned as asked (`tc_memalign` with the layout's alignment, which is a power of
// two), or null; a block is freed or resized only by TCMalloc (module invariant).
unsafe impl GlobalAlloc for TcMalloc {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: see the impl.
        unsafe { (self.fns.memalign)(l.align(), l.size()).cast() }
    }

    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if l.align() <= 16 {
            // SAFETY: see the impl; TCMalloc aligns every block to 16 bytes at least.
            unsafe { (self.fns.calloc)(1, l.size()).cast() }
        } else {
            // SAFETY: see the impl; `p` has `l.size()` bytes.
            unsafe {
                let p = self.alloc(l);
                if !p.is_null() {
                    std::ptr::write_bytes(p, 0, l.size());
                }
                p
            }
        }
    }

    unsafe fn dealloc(&self, p: *mut u8, _: Layout) {
        // SAFETY: the caller's: `p` is a live TCMalloc block.
        unsafe { (self.fns.free)(p.cast()) }
    }

    unsafe fn realloc(&self, p: *mut u8, l: Layout, new_size: usize) -> *mut u8 {
        if l.align() <= 16 {
            // SAFETY: the caller's: `p` is a live TCMalloc block.
            unsafe { (self.fns.realloc)(p.cast(), new_size).cast() }
        } else {
            // SAFETY: the caller's; the default copy for alignments `realloc` does not keep.
            unsafe {
                let n = self.alloc(Layout::from_size_align_unchecked(new_size, l.align()));
                if !n.is_null() {
                    std::ptr::copy_nonoverlapping(p, n, l.size().min(new_size));
                    self.dealloc(p, l);
                }
                n
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs [`serves_blocks`] in a child process with [`SKIP_SBRK`] set (this process has
    /// other test threads, so it cannot set it here).
    #[test]
    fn tcmalloc_serves_aligned_zeroed_and_resized_blocks() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["tcmalloc::tests::serves_blocks", "--exact", "--ignored"])
            .args(["--nocapture", "--test-threads=1"])
            .env(SKIP_SBRK, "true")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && text.contains("1 passed"), "{text}");
    }

    /// When the library is installed, blocks come back aligned, zeroed, resized with their
    /// contents, and freed (a bad free would crash the test).
    #[test]
    #[ignore = "helper: run in a child process by tcmalloc_serves_aligned_zeroed_and_resized_blocks"]
    fn serves_blocks() {
        let Some(t) = TcMalloc::get() else {
            eprintln!("libtcmalloc_minimal.so.4 not installed: nothing to check");
            return;
        };
        // SAFETY: every block is used within its size and freed once with its layout.
        unsafe {
            for align in [8, 16, 64, 4096] {
                let l = Layout::from_size_align(100, align).unwrap();
                let p = t.alloc_zeroed(l);
                assert!(!p.is_null() && p as usize % align == 0);
                assert!((0..100).all(|i| *p.add(i) == 0));
                p.write_bytes(7, 100);
                let q = t.realloc(p, l, 5000);
                assert!(!q.is_null() && q as usize % align == 0);
                assert!((0..100).all(|i| *q.add(i) == 7));
                t.dealloc(q, Layout::from_size_align(5000, align).unwrap());
            }
            // A shrink in place, then a free with the new size (the case `tc_free_sized` crashes on).
            for _ in 0..1000 {
                let l = Layout::from_size_align(4096, 8).unwrap();
                let p = t.alloc(l);
                let q = t.realloc(p, l, 2100);
                t.dealloc(q, Layout::from_size_align(2100, 8).unwrap());
            }
        }
    }
}
