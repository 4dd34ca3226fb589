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
//! Four sequences, inlined where they are used, operate on the calling CPU's slab (see
//! `percpu` for the layout): `pop` (an allocation), `pop_uncounted` (a slow path taking
//! blocks back), `push`, and `rearm` (the heap profiler setting a tripped counter back,
//! `percpu::counters`). Each reads `cpu_id` inside the sequence, checks it against the number
//! of slabs, and ends with a single committing store of the list's `current` index; everything
//! before that store is either a read or a write above `current` (invisible to every other
//! sequence), so an abort at any point leaves the slab exactly as it was, and the abort
//! handler simply starts over. No atomic instruction and no lock.
//!
//! `pop` commits `current` and the list's allocation counter (the header's next 32 bits)
//! with one 8-byte store: it adds `2^32 - 1` to the pair, which decrements `current` (at
//! least 1 there, so no borrow crosses into the counter) and increments the counter. Counting
//! allocations thus costs the fast path no instruction beyond the add it already made. When
//! the counter is at `2^32 - 1`, the add carries out of the word: `pop` then fails before its
//! commit and returns [`TRIPPED`](crate::os::rseq::TRIPPED). That carry is the heap profiler's
//! trigger: to sample after `k` more allocations from a list, it sets the counter to
//! `2^32 - 1 - k` (`percpu::counters`), so sampling costs the fast path one `jc` that is never
//! taken while it is off (a counter left alone trips once per 2^32 allocations of its list).
//! The other sequences load and store the same 8 bytes (`pop_uncounted` and `push` leaving the
//! counter as it was):
//! measured, a 4-byte commit followed by the next `pop`'s 8-byte load of the same word
//! defeats store forwarding and makes an allocation-free pair 2.3 times slower (16.5 ns
//! against 7.2; `cargo run --release -p tricolor-tools -- bench --pairs`).

use core::ffi::c_void;

// Each sequence is inline assembly, so it inlines into the allocation fast path. Every copy the
// compiler emits carries its own descriptor (in `.data.rel.ro.tricolor_rseq_cs`) and its own
// abort handler (in `.text.tricolor_rseq_abort`, preceded by the signature), tied together by
// numeric local labels, which the assembler resolves in source order across sections:
//   2: restart — point rseq_cs at this copy's descriptor;
//   3: start of the sequence; 4: just after the committing store (post-commit);
//   5: abort handler, which jumps back to 2; 7: failure exit; 8: common exit.
// The failure exits live out of line (in `.text.tricolor_rseq_exit`), so a sequence that
// succeeds falls straight through its commit into the code after it, with no jump. `push`
// leaves through an `asm goto` label instead of a flag: its caller's full-list branch is the
// sequence's own (a pop cannot, as its block is an output, and outputs with labels are not
// stable Rust).
// Header of a class in a slab: { current: u32, allocs: u32, end: u32, begin: u32 }, where
// `current`, `end` and `begin` are word offsets from the slab's start (`percpu`), so the
// class's items are `slab[begin..current]`.
// `pop` fails when current <= begin, `push` when current >= end; each reads its gate
// (begin, end) *before* `current`, so that a header being unlocked by another CPU
// (`percpu::resize`) is seen whole: x86-64 does not reorder loads with loads, and the unlocking
// thread stores the gates last.

/// The shared head of both sequences: this copy's descriptor and signed abort handler, the
/// restart point (2) that registers the descriptor, the start of the sequence (3), and the
/// address of the current CPU's slab in `{cpu}` (or a jump to the failure exit 7).
macro_rules! sequence_start {
    () => {
        concat!(
            ".pushsection .data.rel.ro.tricolor_rseq_cs,\"aw\",@progbits\n",
            ".balign 32\n",
            "66:\n",
            ".long 0, 0\n",
            ".quad 3f, (4f - 3f), 5f\n",
            ".popsection\n",
            ".pushsection .text.tricolor_rseq_abort,\"ax\",@progbits\n",
            ".long 0x53053053\n",
            "5:\n",
            "jmp 2f\n",
            ".popsection\n",
            "2:\n",
            "lea {cpu}, [rip + 66b]\n",
            "mov qword ptr fs:[{area} + 8], {cpu}\n",
            "3:\n",
            "mov {cpu:e}, dword ptr fs:[{area} + 4]\n",
            "cmp {cpu}, {n}\n",
            "jae 7f\n",
            "shl {cpu}, {shift}\n",
            "add {cpu}, {base}\n",
        )
    };
}

/// One restartable sequence: the shared head ([`sequence_start`]), then `body`, with the
/// operands every sequence uses bound here once: `{area}` (this thread's `struct rseq`, as
/// glibc's offset from the thread pointer: the sequence addresses it as `fs:[{area} + k]`,
/// because the `fs` segment's base is the thread pointer, so finding the area costs no load of
/// `fs:[0]` on the path to `cpu_id`; measured, 3% off a malloc/free pair and 4-8% off a run
/// of 100, `cargo run --release -p tricolor-tools -- bench --pairs`),
/// `{base}`, `{shift}` (the slab size's log2, a constant), `{n}`, `{hdr}` (the class header's
/// offset), and the scratch registers `{cpu}` and `{cur}`. `extra` adds the sequence's own
/// operands.
macro_rules! sequence {
    ($slabs:expr, $list:expr, [$($body:expr),* $(,)?], $($extra:tt)*) => {
        core::arch::asm!(
            sequence_start!(),
            $($body,)*
            $($extra)*
            area = in(reg) $slabs.rseq_offset,
            base = in(reg) $slabs.base,
            n = in(reg) $slabs.n,
            hdr = in(reg) $list.header,
            shift = const crate::slab::SLAB_SHIFT,
            cpu = out(reg) _,
            cur = out(reg) _,
            options(nostack),
        )
    };
}

/// The popping body both popping sequences share: the `begin` gate, then `current` (and the
/// counter with it, by adding `{k}`, followed by `$after_add`, which may test the add's
/// carry), the item, and the one committing 8-byte store; jumps to the failure exit 7 when
/// the list is empty.
macro_rules! pop_body {
    ($after_add:expr) => {
        concat!(
            "mov {out:e}, dword ptr [{cpu} + {hdr} + 12]\n",
            "mov {cur}, qword ptr [{cpu} + {hdr}]\n",
            "cmp {cur:e}, {out:e}\n",
            "jbe 7f\n",
            "add {cur}, {k}\n",
            $after_add,
            "mov {out:e}, {cur:e}\n",
            "mov {out}, qword ptr [{cpu} + {out} * 8]\n",
            "mov qword ptr [{cpu} + {hdr}], {cur}\n",
        )
    };
}

/// Where a class's list is in every slab: its header's offset in bytes. The header's indices
/// are absolute word offsets in the slab (`percpu`), so a sequence addresses an item as
/// `slab + i * 8` and needs no item-array offset.
#[derive(Clone, Copy)]
pub(crate) struct List {
    pub(crate) header: usize,
}

/// Added to the header word `{current, allocs}` by [`pop`]: `current - 1`, `allocs + 1`.
const COUNTED: u64 = 0xFFFF_FFFF;
/// Added by [`pop_uncounted`]: `current - 1` (minus one; `current >= 1` there, so no borrow
/// reaches `allocs`).
const UNCOUNTED: u64 = u64::MAX;

/// Pops the top item of `list` in the calling CPU's slab and counts an allocation (module
/// docs); 0 when the list is empty (or the CPU has no slab), [`TRIPPED`] when the list's
/// counter is at `2^32 - 1` (nothing popped, nothing counted).
///
/// # Safety
/// `slabs.rseq_offset` came from [`detect`]; `slabs` describes live, initialised slabs, and
/// `list` one of their lists.
#[inline(always)]
pub(crate) unsafe fn pop(slabs: Slabs, list: List) -> usize {
    let out: usize;
    // SAFETY: the sequence reads this thread's struct rseq and the current CPU's slab, and
    // commits with one 8-byte store of `current` and the counter; an abort restarts it from
    // scratch (module docs). A carry out of the counter leaves before the commit.
    unsafe {
        sequence!(
            slabs,
            list,
            [
                pop_body!("jc 6f\n"),
                "4:",
                ".pushsection .text.tricolor_rseq_exit,\"ax\",@progbits",
                "6:",
                "mov {out:e}, {tripped}",
                "jmp 8f",
                "7:",
                "xor {out:e}, {out:e}",
                "jmp 8f",
                ".popsection",
                "8:",
            ],
            k = in(reg) COUNTED,
            tripped = const TRIPPED,
            out = out(reg) out,
        );
    }
    out
}

/// What [`pop`] returns when the list's counter tripped (never a block address).
pub(crate) const TRIPPED: usize = 1;

/// [`pop`] without counting an allocation: a slow path taking blocks back from the slab.
///
/// # Safety
/// As for [`pop`].
#[inline(always)]
pub(crate) unsafe fn pop_uncounted(slabs: Slabs, list: List) -> usize {
    let out: usize;
    // SAFETY: as for `pop`. Adding 2^64 - 1 carries whenever the word is nonzero, so the
    // carry is not tested here.
    unsafe {
        sequence!(
            slabs,
            list,
            [
                pop_body!(""),
                "4:",
                ".pushsection .text.tricolor_rseq_exit,\"ax\",@progbits",
                "7:",
                "xor {out:e}, {out:e}",
                "jmp 8f",
                ".popsection",
                "8:",
            ],
            k = in(reg) UNCOUNTED,
            out = out(reg) out,
        );
    }
    out
}

/// Sets `list`'s counter in the calling CPU's slab from `2^32 - 1` (tripped) to `counter`,
/// leaving `current` as it is. Returns the address of the slab it changed, or null when the
/// counter was not tripped there (the thread moved since its `pop` tripped, or another thread
/// of this CPU set it already), the header is locked (`percpu::resize`), or the CPU has no
/// slab.
///
/// # Safety
/// As for [`pop`].
pub(crate) unsafe fn rearm(slabs: Slabs, list: List, counter: u32) -> *mut u8 {
    let out: usize;
    // SAFETY: as for `pop`: reads, then one committing 8-byte store of the header word with
    // `current` unchanged. The `begin` gate is read first, as `pop` reads it, so a header
    // being locked is seen whole (module docs).
    unsafe {
        sequence!(
            slabs,
            list,
            [
                "mov {out:e}, dword ptr [{cpu} + {hdr} + 12]",
                "cmp {out:e}, -1",
                "je 7f",
                "mov {cur}, qword ptr [{cpu} + {hdr}]",
                "mov {out}, {cur}",
                "shr {out}, 32",
                "cmp {out:e}, -1",
                "jne 7f",
                "mov {cur:e}, {cur:e}",
                "or {cur}, {new}",
                "mov {out}, {cpu}",
                "mov qword ptr [{cpu} + {hdr}], {cur}",
                "4:",
                ".pushsection .text.tricolor_rseq_exit,\"ax\",@progbits",
                "7:",
                "xor {out:e}, {out:e}",
                "jmp 8f",
                ".popsection",
                "8:",
            ],
            new = in(reg) u64::from(counter) << 32,
            out = out(reg) out,
        );
    }
    out as *mut u8
}

/// Pushes `item` on `list` in the calling CPU's slab; false when it is full (or the CPU has
/// no slab).
///
/// # Safety
/// As for [`pop`].
#[inline(always)]
pub(crate) unsafe fn push(slabs: Slabs, list: List, item: usize) -> bool {
    // SAFETY: as for `pop`; the item is written above `current`, invisible until the commit,
    // which stores the counter back unchanged.
    unsafe {
        sequence!(
            slabs,
            list,
            [
                "mov {at:e}, dword ptr [{cpu} + {hdr} + 8]",
                "mov {cur}, qword ptr [{cpu} + {hdr}]",
                "cmp {cur:e}, {at:e}",
                "jae {full}",
                "mov {at:e}, {cur:e}",
                "mov qword ptr [{cpu} + {at} * 8], {item}",
                "add {cur}, 1",
                "mov qword ptr [{cpu} + {hdr}], {cur}",
                "4:",
                ".pushsection .text.tricolor_rseq_exit,\"ax\",@progbits",
                "7:",
                "jmp {full}",
                ".popsection",
            ],
            item = in(reg) item,
            at = out(reg) _,
            full = label {
                return false;
            },
        );
    }
    true
}

/// Where the per-CPU slabs are: `n` slabs of `1 << slab::SLAB_SHIFT` bytes from `base`.
#[derive(Clone, Copy)]
pub(crate) struct Slabs {
    pub(crate) base: *mut u8,
    pub(crate) n: usize,
    /// [`detect`]'s offset, carried here so the fast path reads everything from one place.
    pub(crate) rseq_offset: isize,
}

/// glibc's `__rseq_offset` when it has registered rseq for the calling thread (and so, by
/// glibc's rule, for every thread); `None` otherwise. Called once, when the front end is chosen;
/// the caller keeps the answer.
pub(crate) fn detect() -> Option<isize> {
    // SAFETY: dlsym with RTLD_DEFAULT and NUL-terminated names; the symbols, when present, are
    // glibc's `const ptrdiff_t __rseq_offset` and `const unsigned int __rseq_size`.
    let offset = unsafe {
        let off = libc::dlsym(libc::RTLD_DEFAULT, c"__rseq_offset".as_ptr()).cast::<isize>();
        let size = libc::dlsym(libc::RTLD_DEFAULT, c"__rseq_size".as_ptr()).cast::<u32>();
        if off.is_null() || size.is_null() || *size < 20 {
            return None;
        }
        *off
    };
    // SAFETY: glibc's `__rseq_offset` locates the calling thread's registered area.
    (unsafe { cpu_of(area_at(offset)) } >= 0).then_some(offset)
}

/// The calling thread's `struct rseq`, given [`detect`]'s offset.
#[inline(always)]
fn area_at(offset: isize) -> *mut c_void {
    let tp: usize;
    // SAFETY: on x86-64 Linux, fs:[0] holds the thread pointer (the TCB's self pointer).
    unsafe {
        core::arch::asm!("mov {}, qword ptr fs:[0]", out(reg) tp, options(nostack, readonly, preserves_flags))
    };
    (tp as isize + offset) as *mut c_void
}

/// The CPU the calling thread is running on (it may move at any moment: a hint), given
/// [`detect`]'s offset.
///
/// # Safety
/// `offset` is [`detect`]'s answer (another would read an arbitrary address).
pub(crate) unsafe fn current_cpu(offset: isize) -> usize {
    // SAFETY: the caller's contract: `offset` locates this thread's struct rseq.
    unsafe { cpu_of(area_at(offset)) }.max(0) as usize
}

/// The CPU the kernel last recorded for this thread (negative before registration).
///
/// # Safety
/// `area` is the calling thread's `struct rseq` (glibc's, at `__rseq_offset`).
unsafe fn cpu_of(area: *mut c_void) -> i32 {
    // SAFETY: the caller's contract: `area` is this thread's registered struct rseq; cpu_id
    // is at offset 4.
    unsafe { core::ptr::read_volatile(area.cast::<i32>().add(1)) }
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
