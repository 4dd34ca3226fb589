//! Restartable sequences (Linux `rseq`, registered for every thread by glibc ≥ 2.35).
//!
//! # The ABI we use, and only it
//! glibc publishes where each thread's `struct rseq` lives: `__rseq_offset` from the thread
//! pointer, and `__rseq_size` (0 when registration is disabled, e.g. by
//! `GLIBC_TUNABLES=glibc.pthread.rseq=0`, or failed). Both are looked up with `dlsym`, so an
//! older glibc still loads us and simply gets the per-thread fallback. (`__rseq_size` is 20,
//! the original ABI's size, on current glibc; 32 on some releases; we need the first 16 bytes.)
//! From `struct rseq` we
//! read `cpu_id` (offset 4) and write `rseq_cs` (offset 8): a pointer to a 32-byte-aligned
//! `struct rseq_cs { version, flags, start_ip, post_commit_offset, abort_ip }`. If the thread
//! is preempted, migrated or signalled while its instruction pointer is inside
//! `[start_ip, start_ip + post_commit_offset)`, the kernel moves it to `abort_ip`, whose
//! preceding 4 bytes must be the signature glibc registered (`RSEQ_SIG`, 0x53053053 on
//! x86-64). We never write `cpu_id_start` and never rely on the kernel rewriting it.
//!
//! # The sequences
//! Two out-of-line functions operate on the calling CPU's slab (see `percpu.rs` for the
//! layout): `pop` and `push`. Each reads `cpu_id` inside the sequence, checks it against the
//! number of slabs, and ends with a single committing store of the list's `current` index;
//! everything before that store is either a read or a write above `current` (invisible to every
//! other sequence), so an abort at any point leaves the slab exactly as it was, and the abort
//! handler simply starts over. No atomic instruction and no lock.

use core::ffi::c_void;
use core::sync::atomic::{AtomicIsize, AtomicU8, Ordering};

/// `RSEQ_SIG` as glibc registers it on x86-64.
const RSEQ_SIG: u32 = 0x5305_3053;
const _: () = assert!(RSEQ_SIG == 0x5305_3053);

// Arguments (System V): rdi = struct rseq *, rsi = slabs base, rdx = slab stride,
// rcx = offset of the class header in a slab, r8 = number of slabs, r9 = item (push).
// Header: { current: u32, capacity: u32, items_offset: u32, _: u32 }.
core::arch::global_asm!(
    ".pushsection .text.tricolor_rseq,\"ax\",@progbits",
    ".p2align 4",
    ".globl tricolor_rseq_pop",
    ".hidden tricolor_rseq_pop",
    ".type tricolor_rseq_pop,@function",
    "tricolor_rseq_pop:",
    "    lea rax, [rip + .Ltricolor_pop_cs]",
    "    mov qword ptr [rdi + 8], rax",
    ".Ltricolor_pop_start:",
    "    mov eax, dword ptr [rdi + 4]",
    "    cmp rax, r8",
    "    jae .Ltricolor_pop_fail",
    "    imul rax, rdx",
    "    add rax, rsi",
    "    mov r10d, dword ptr [rax + rcx]",
    "    test r10d, r10d",
    "    jz .Ltricolor_pop_fail",
    "    mov r11d, dword ptr [rax + rcx + 8]",
    "    add r11, rax",
    "    mov r11, qword ptr [r11 + r10 * 8 - 8]",
    "    dec r10d",
    "    mov dword ptr [rax + rcx], r10d",
    ".Ltricolor_pop_commit:",
    "    mov rax, r11",
    "    ret",
    ".Ltricolor_pop_fail:",
    "    xor eax, eax",
    "    ret",
    "    .long 0x53053053",
    ".Ltricolor_pop_abort:",
    "    jmp tricolor_rseq_pop",
    ".size tricolor_rseq_pop, . - tricolor_rseq_pop",
    "",
    ".p2align 4",
    ".globl tricolor_rseq_push",
    ".hidden tricolor_rseq_push",
    ".type tricolor_rseq_push,@function",
    "tricolor_rseq_push:",
    "    lea rax, [rip + .Ltricolor_push_cs]",
    "    mov qword ptr [rdi + 8], rax",
    ".Ltricolor_push_start:",
    "    mov eax, dword ptr [rdi + 4]",
    "    cmp rax, r8",
    "    jae .Ltricolor_push_fail",
    "    imul rax, rdx",
    "    add rax, rsi",
    "    mov r10d, dword ptr [rax + rcx]",
    "    cmp r10d, dword ptr [rax + rcx + 4]",
    "    jae .Ltricolor_push_fail",
    "    mov r11d, dword ptr [rax + rcx + 8]",
    "    add r11, rax",
    "    mov qword ptr [r11 + r10 * 8], r9",
    "    inc r10d",
    "    mov dword ptr [rax + rcx], r10d",
    ".Ltricolor_push_commit:",
    "    mov eax, 1",
    "    ret",
    ".Ltricolor_push_fail:",
    "    xor eax, eax",
    "    ret",
    "    .long 0x53053053",
    ".Ltricolor_push_abort:",
    "    jmp tricolor_rseq_push",
    ".size tricolor_rseq_push, . - tricolor_rseq_push",
    ".popsection",
    "",
    ".pushsection .data.rel.ro.tricolor_rseq_cs,\"aw\",@progbits",
    ".balign 32",
    ".Ltricolor_pop_cs:",
    "    .long 0, 0",
    "    .quad .Ltricolor_pop_start",
    "    .quad .Ltricolor_pop_commit - .Ltricolor_pop_start",
    "    .quad .Ltricolor_pop_abort",
    ".balign 32",
    ".Ltricolor_push_cs:",
    "    .long 0, 0",
    "    .quad .Ltricolor_push_start",
    "    .quad .Ltricolor_push_commit - .Ltricolor_push_start",
    "    .quad .Ltricolor_push_abort",
    ".popsection",
);

unsafe extern "C" {
    fn tricolor_rseq_pop(
        area: *mut c_void,
        slabs: *mut u8,
        stride: usize,
        header: usize,
        slabs_n: usize,
    ) -> usize;
    fn tricolor_rseq_push(
        area: *mut c_void,
        slabs: *mut u8,
        stride: usize,
        header: usize,
        slabs_n: usize,
        item: usize,
    ) -> usize;
}

/// Where the per-CPU slabs are: `n` slabs of `stride` bytes from `base`.
#[derive(Clone, Copy)]
pub(crate) struct Slabs {
    pub(crate) base: *mut u8,
    pub(crate) stride: usize,
    pub(crate) n: usize,
}

const UNKNOWN: u8 = 0;
const AVAILABLE: u8 = 1;
const UNAVAILABLE: u8 = 2;
static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);
/// `__rseq_offset`, valid once STATE is AVAILABLE (Release/Acquire through STATE).
static OFFSET: AtomicIsize = AtomicIsize::new(0);

/// Whether glibc registered rseq for this process's threads. Decided once.
pub(crate) fn available() -> bool {
    match STATE.load(Ordering::Acquire) {
        AVAILABLE => true,
        UNAVAILABLE => false,
        _ => detect(),
    }
}

#[cold]
fn detect() -> bool {
    // SAFETY: dlsym with RTLD_DEFAULT and NUL-terminated names; the symbols, when present, are
    // glibc's `const ptrdiff_t __rseq_offset` and `const unsigned int __rseq_size`.
    let ok = unsafe {
        let off = libc::dlsym(libc::RTLD_DEFAULT, c"__rseq_offset".as_ptr()).cast::<isize>();
        let size = libc::dlsym(libc::RTLD_DEFAULT, c"__rseq_size".as_ptr()).cast::<u32>();
        if off.is_null() || size.is_null() || *size < 20 {
            false
        } else {
            OFFSET.store(*off, Ordering::Relaxed);
            true
        }
    };
    let ok = ok && cpu_of(area()) >= 0;
    STATE.store(if ok { AVAILABLE } else { UNAVAILABLE }, Ordering::Release);
    ok
}

/// The calling thread's `struct rseq`. Only meaningful when [`available`].
#[inline(always)]
pub(crate) fn area() -> *mut c_void {
    let tp: usize;
    // SAFETY: on x86-64 Linux, fs:[0] holds the thread pointer (the TCB's self pointer).
    unsafe {
        core::arch::asm!("mov {}, qword ptr fs:[0]", out(reg) tp, options(nostack, readonly, preserves_flags))
    };
    (tp as isize + OFFSET.load(Ordering::Relaxed)) as *mut c_void
}

/// The CPU the kernel last recorded for this thread (-1 before registration).
pub(crate) fn cpu_of(area: *mut c_void) -> i32 {
    // SAFETY: `area` is this thread's registered struct rseq; cpu_id is at offset 4.
    unsafe { core::ptr::read_volatile(area.cast::<i32>().add(1)) }
}

/// Pops the top item of the list at `header` in the calling CPU's slab; 0 when it is empty.
///
/// # Safety
/// [`available`] returned true; `slabs` describes live slabs whose headers are valid.
#[inline]
pub(crate) unsafe fn pop(slabs: Slabs, header: usize) -> usize {
    // SAFETY: the caller's contract; the sequence only touches the current CPU's slab.
    unsafe { tricolor_rseq_pop(area(), slabs.base, slabs.stride, header, slabs.n) }
}

/// Pushes `item` on the list at `header` in the calling CPU's slab; false when it is full.
///
/// # Safety
/// As for [`pop`].
#[inline]
pub(crate) unsafe fn push(slabs: Slabs, header: usize, item: usize) -> bool {
    // SAFETY: the caller's contract.
    unsafe { tricolor_rseq_push(area(), slabs.base, slabs.stride, header, slabs.n, item) != 0 }
}

/// Number of CPUs the kernel may report (`_SC_NPROCESSORS_CONF`; CPU ids are below it on
/// Linux, and the sequences check anyway).
pub(crate) fn cpu_count() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) };
    if n > 0 { n as usize } else { 1 }
}

/// Moves the calling thread to `cpu` (tests and draining by migration). False if refused.
#[cfg(any(test, feature = "testing"))]
pub(crate) fn pin_to(cpu: usize) -> bool {
    set_affinity(cpu..cpu + 1)
}

/// Lets the calling thread run on every CPU again.
#[cfg(any(test, feature = "testing"))]
pub(crate) fn unpin() {
    set_affinity(0..cpu_count());
}

#[cfg(any(test, feature = "testing"))]
fn set_affinity(cpus: core::ops::Range<usize>) -> bool {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET and sched_setaffinity on our own thread.
    unsafe {
        let mut set: libc::cpu_set_t = core::mem::zeroed();
        for cpu in cpus {
            libc::CPU_SET(cpu, &mut set);
        }
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) == 0
    }
}
