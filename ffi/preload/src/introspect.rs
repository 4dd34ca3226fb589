//! glibc's malloc introspection, answered with Tricolor's figures: `mallinfo2`, `mallinfo`,
//! `malloc_stats` and `malloc_info`, for the programs (and monitoring libraries) that call
//! them under `LD_PRELOAD`.
//!
//! # The mapping (glibc's fields → Tricolor's partition, `tricolor_alloc::stats`)
//! | glibc | Tricolor |
//! |---|---|
//! | `arena` (heap bytes from the OS) | small spans and dirty free pages: `uordblks + fordblks` |
//! | `ordblks` (free chunks) | free small blocks: front caches, transfer caches, span slots |
//! | `smblks` (fastbin chunks) | free blocks in the front caches |
//! | `hblks` (mmapped chunks) | live large allocations |
//! | `hblkhd` (bytes in them) | `in_use_large` |
//! | `usmblks` | 0 (glibc's is 0 too) |
//! | `fsmblks` (bytes in fastbins) | `cached_front` |
//! | `uordblks` (bytes in use) | `in_use_small` |
//! | `fordblks` (free bytes) | cached blocks, span tails and dirty free pages |
//! | `keepcost` (releasable top) | `free_dirty` |
//!
//! As in glibc, `arena == uordblks + fordblks`. Released pages and metadata are in none of
//! them (glibc's `arena` holds no released memory either). `mallinfo` saturates each field
//! at `INT_MAX` where glibc wraps. `malloc_stats`' "max mmap" lines are the high-water marks
//! of live large allocations (`large_peak_count`, `large_peak_bytes`), as glibc's are of its
//! mmapped chunks. `malloc_info` writes glibc's XML shape, with one
//! `<size>` line per size class holding free blocks; options other than 0 are `EINVAL`, as in
//! glibc.
//!
//! Nothing here allocates: text is formatted into a stack buffer and written with `write(2)`
//! or `fwrite`.

use core::ffi::{c_int, c_void};
use core::fmt::Write;
use tricolor_alloc::size_class::NUM_CLASSES;

/// glibc's `struct mallinfo2` (`<malloc.h>`, glibc 2.33).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Mallinfo2 {
    arena: usize,
    ordblks: usize,
    smblks: usize,
    hblks: usize,
    hblkhd: usize,
    usmblks: usize,
    fsmblks: usize,
    uordblks: usize,
    fordblks: usize,
    keepcost: usize,
}

/// glibc's `struct mallinfo` (`int` fields).
#[repr(C)]
pub struct Mallinfo {
    arena: c_int,
    ordblks: c_int,
    smblks: c_int,
    hblks: c_int,
    hblkhd: c_int,
    usmblks: c_int,
    fsmblks: c_int,
    uordblks: c_int,
    fordblks: c_int,
    keepcost: c_int,
}

/// Free blocks per class: (class size, front-cache blocks, other free blocks).
fn free_blocks() -> [(u64, u64, u64); NUM_CLASSES] {
    tricolor_alloc::all_class_stats()
        .map(|c| (c.size, c.cached_front, c.cached_transfer + c.free_slots))
}

fn info() -> Mallinfo2 {
    info_of(&tricolor_alloc::stats())
}

/// [`info`] from figures already read. The sums and products here and in `malloc_info` count
/// bytes and blocks that exist in memory at once, so none comes near 2^64 (no overflow).
fn info_of(s: &tricolor_alloc::AllocStats) -> Mallinfo2 {
    let (mut front, mut rest) = (0, 0);
    for (_, f, r) in free_blocks() {
        front += f;
        rest += r;
    }
    let fordblks =
        s.cached_front + s.cached_transfer + s.cached_central + s.span_waste + s.free_dirty;
    Mallinfo2 {
        arena: (s.in_use_small + fordblks) as usize,
        ordblks: (front + rest) as usize,
        smblks: front as usize,
        hblks: s.large_allocs.saturating_sub(s.large_frees) as usize,
        hblkhd: s.in_use_large as usize,
        usmblks: 0,
        fsmblks: s.cached_front as usize,
        uordblks: s.in_use_small as usize,
        fordblks: fordblks as usize,
        keepcost: s.free_dirty as usize,
    }
}

/// `mallinfo2`.
#[unsafe(no_mangle)]
pub extern "C" fn mallinfo2() -> Mallinfo2 {
    info()
}

/// `mallinfo`.
#[unsafe(no_mangle)]
pub extern "C" fn mallinfo() -> Mallinfo {
    let i = info();
    let int = |v: usize| c_int::try_from(v).unwrap_or(c_int::MAX);
    Mallinfo {
        arena: int(i.arena),
        ordblks: int(i.ordblks),
        smblks: int(i.smblks),
        hblks: int(i.hblks),
        hblkhd: int(i.hblkhd),
        usmblks: int(i.usmblks),
        fsmblks: int(i.fsmblks),
        uordblks: int(i.uordblks),
        fordblks: int(i.fordblks),
        keepcost: int(i.keepcost),
    }
}

/// A fixed buffer that `write!` fills; text past its end is dropped (lines here are short).
struct Buf {
    bytes: [u8; 512],
    len: usize,
}

impl Buf {
    fn new() -> Buf {
        Buf {
            bytes: [0; 512],
            len: 0,
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Write for Buf {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.bytes.len() - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// `malloc_stats`: glibc's report, on standard error.
#[unsafe(no_mangle)]
pub extern "C" fn malloc_stats() {
    let s = tricolor_alloc::stats();
    let i = info_of(&s);
    let mut b = Buf::new();
    let _ = write!(
        b,
        "Arena 0:\nsystem bytes     = {:>10}\nin use bytes     = {:>10}\nTotal (incl. mmap):\n\
         system bytes     = {:>10}\nin use bytes     = {:>10}\nmax mmap regions = {:>10}\n\
         max mmap bytes   = {:>10}\n",
        i.arena,
        i.uordblks,
        i.arena + i.hblkhd,
        i.uordblks + i.hblkhd,
        s.large_peak_count,
        s.large_peak_bytes
    );
    // SAFETY: a valid buffer of `len` bytes; a short or failed write to stderr is ignored,
    // as glibc's fprintf would be.
    unsafe { libc::write(2, b.as_bytes().as_ptr().cast(), b.len) };
}

/// `malloc_info`: glibc's XML, written to `stream`; 0, or -1 with `errno = EINVAL` when
/// `options` is not 0 (glibc's rule).
///
/// # Safety
/// `stream` is an open `FILE *` (glibc's contract).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn malloc_info(options: c_int, stream: *mut libc::FILE) -> c_int {
    if options != 0 {
        tricolor::cmalloc::set_errno(libc::EINVAL);
        return -1;
    }
    let put = |b: &Buf| {
        // SAFETY: the caller's contract: `stream` is an open FILE; the buffer is valid.
        unsafe { libc::fwrite(b.as_bytes().as_ptr().cast::<c_void>(), 1, b.len, stream) };
    };
    let i = info();
    let (mut fast, mut fast_bytes, mut rest, mut rest_bytes) = (0u64, 0u64, 0u64, 0u64);
    let mut b = Buf::new();
    let _ = write!(b, "<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n");
    put(&b);
    let mut from = 1;
    for (size, f, r) in free_blocks() {
        if f + r > 0 {
            let mut b = Buf::new();
            let _ = writeln!(
                b,
                "<size from=\"{from}\" to=\"{size}\" total=\"{}\" count=\"{}\"/>",
                (f + r) * size,
                f + r
            );
            put(&b);
        }
        (fast, fast_bytes) = (fast + f, fast_bytes + f * size);
        (rest, rest_bytes) = (rest + r, rest_bytes + r * size);
        from = size + 1;
    }
    let system = i.arena + i.hblkhd;
    let mut b = Buf::new();
    let _ = write!(
        b,
        "</sizes>\n<total type=\"fast\" count=\"{fast}\" size=\"{fast_bytes}\"/>\n\
         <total type=\"rest\" count=\"{rest}\" size=\"{rest_bytes}\"/>\n\
         <system type=\"current\" size=\"{a}\"/>\n<system type=\"max\" size=\"{a}\"/>\n\
         <aspace type=\"total\" size=\"{a}\"/>\n<aspace type=\"mprotect\" size=\"{a}\"/>\n</heap>\n",
        a = i.arena
    );
    put(&b);
    let mut b = Buf::new();
    let _ = write!(
        b,
        "<total type=\"fast\" count=\"{fast}\" size=\"{fast_bytes}\"/>\n\
         <total type=\"rest\" count=\"{rest}\" size=\"{rest_bytes}\"/>\n\
         <total type=\"mmap\" count=\"{}\" size=\"{}\"/>\n\
         <system type=\"current\" size=\"{system}\"/>\n<system type=\"max\" size=\"{system}\"/>\n\
         <aspace type=\"total\" size=\"{system}\"/>\n<aspace type=\"mprotect\" size=\"{system}\"/>\n</malloc>\n",
        i.hblks, i.hblkhd
    );
    put(&b);
    0
}
