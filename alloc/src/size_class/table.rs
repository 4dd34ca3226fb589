//! The size-class table, *computed* at compile time by a rule (the unit tests in
//! `size_class` prove its bounds for every class and every request size), and the constants
//! every layer sizes itself by: the page, the arena, the largest small request, the
//! longest batch. A leaf: it imports nothing of the crate, so every layer can build on it.
//!
//! # The rule
//! Candidate sizes step by 8 up to 16, by 16 up to 128, then by 1/8 of the power of two at or
//! below the size (16 from 128, 32 from 256, ..., 4096 from 32 KiB), so consecutive classes are
//! at most 12.5% apart. Every class size above 8 is a multiple of 16, which gives C's
//! `max_align_t` alignment for free. Each class gets the fewest 8 KiB pages whose tail (the
//! bytes left over after the last whole object) is at most 1/8 of the span. Two neighbouring
//! candidates with the same page count and object count are merged into the larger, and a
//! class is then widened to the largest size that fits the same number of objects, *only* when
//! the rounding bound below still holds; powers of two are never merged or widened, so every
//! power-of-two alignment up to 8 KiB has a class that is a multiple of it.
//!
//! # The bounds (asserted by the tests)
//! * rounding: a request of `n` bytes gets a block of `size(class(n))` bytes with
//!   `size - n <= max(size / 8, 15)`: at most 12.5% waste, or less than one 16-byte alignment
//!   unit for the smallest classes (Go's table has the same floor: 9 bytes cost 16 there too);
//! * tail: `span_bytes % size <= span_bytes / 8` for every class.
//!
//! This differs from Go's `mksizeclasses.go` in one respect: Go merges candidates even when that
//! breaks the rounding bound (its 4864-byte class wastes 15.8% on a 4097-byte request); we keep
//! the bound and pay with a few more classes.

/// log2 of the page size.
pub const PAGE_SHIFT: u32 = 13;
/// Tricolor's page: the unit of the page heap (8 KiB, as Go's and TCMalloc's).
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;
/// Requests above this size are page runs ("large objects").
pub const MAX_SMALL_SIZE: usize = 32 * 1024;
/// Bits of a user address on x86-64 and aarch64 Linux (47): what the pagemap, and the
/// collector's span map, cover; no object can be as large as the address space.
pub const ADDRESS_BITS: u32 = 47;
/// log2 of the arena size: the unit in which address space is normally reserved (64 MiB, as
/// Go's), and of the dirty-page records.
pub(crate) const ARENA_SHIFT: u32 = 26;
/// Most blocks in a batch: `SizeClass::batch` is at most this.
pub(crate) const MAX_BATCH: usize = 32;

/// One size class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeClass {
    /// Bytes per object.
    pub size: u32,
    /// Pages per span of this class.
    pub pages: u32,
    /// Objects per span.
    pub objects: u32,
    /// Objects moved at once between a front cache and the central list.
    pub batch: u32,
    /// `offset * div_mul >> 32 == offset / size` for every offset inside a span (exact; the
    /// tests prove it), so object-boundary checks need no division.
    pub div_mul: u32,
}

const MAX_CLASSES: usize = 128;

const fn is_pow2(x: u32) -> bool {
    x & (x.wrapping_sub(1)) == 0
}

/// The largest request that `size` serves with `lower` the next smaller class keeps the
/// rounding bound.
const fn rounding_ok(lower: u32, size: u32) -> bool {
    let worst = size - lower - 1;
    let allowed = if size / 8 > 15 { size / 8 } else { 15 };
    worst <= allowed
}

const fn pages_for(size: u32) -> u32 {
    let page = PAGE_SIZE as u32;
    let mut span = page;
    while span % size > span / 8 {
        span += page;
    }
    span / page
}

const fn generate() -> ([u32; MAX_CLASSES], [u32; MAX_CLASSES], usize) {
    let mut sizes = [0u32; MAX_CLASSES];
    let mut pages = [0u32; MAX_CLASSES];
    let mut n = 0usize;
    let mut size = 8u32;
    while size as usize <= MAX_SMALL_SIZE {
        let p = pages_for(size);
        let span = p * PAGE_SIZE as u32;
        let mergeable = n >= 2
            && pages[n - 1] == p
            && span / sizes[n - 1] == span / size
            && !is_pow2(sizes[n - 1])
            && rounding_ok(sizes[n - 2], size);
        if mergeable {
            sizes[n - 1] = size;
        } else {
            sizes[n] = size;
            pages[n] = p;
            n += 1;
        }
        let step = if size < 16 {
            8
        } else if size < 128 {
            16
        } else {
            (1u32 << (31 - size.leading_zeros())) / 8
        };
        size += step;
    }
    // Widen each class to the largest size holding the same number of objects (less tail
    // waste), keeping lookup granularity (16 B up to 1 KiB, 128 B above) and the bounds.
    let mut i = 1;
    while i < n {
        if !is_pow2(sizes[i]) {
            let span = pages[i] * PAGE_SIZE as u32;
            let objects = span / sizes[i];
            let gran = if sizes[i] <= 1024 { 16 } else { 128 };
            let wide = (span / objects) / gran * gran;
            let below_next = i + 1 == n || wide < sizes[i + 1];
            if wide > sizes[i] && below_next && rounding_ok(sizes[i - 1], wide) {
                sizes[i] = wide;
            }
        }
        i += 1;
    }
    (sizes, pages, n)
}

const GENERATED: ([u32; MAX_CLASSES], [u32; MAX_CLASSES], usize) = generate();

/// Number of size classes.
pub const NUM_CLASSES: usize = GENERATED.2;

const fn build_classes() -> [SizeClass; NUM_CLASSES] {
    let (sizes, pages, _) = GENERATED;
    let mut out = [SizeClass {
        size: 0,
        pages: 0,
        objects: 0,
        batch: 0,
        div_mul: 0,
    }; NUM_CLASSES];
    let mut i = 0;
    while i < NUM_CLASSES {
        let size = sizes[i];
        let batch = (64 * 1024) / size;
        out[i] = SizeClass {
            size,
            pages: pages[i],
            objects: pages[i] * PAGE_SIZE as u32 / size,
            batch: if batch < 2 {
                2
            } else if batch > 32 {
                32
            } else {
                batch
            },
            div_mul: (u32::MAX / size) + 1,
        };
        i += 1;
    }
    out
}

/// The size-class table as a constant, for layouts computed at compile time (`percpu`).
pub(crate) const CLASS_TABLE: [SizeClass; NUM_CLASSES] = build_classes();

const _: () = {
    let mut c = 0;
    while c < NUM_CLASSES {
        assert!(CLASS_TABLE[c].batch as usize <= MAX_BATCH);
        c += 1;
    }
};

/// The size-class table, smallest first.
pub static CLASSES: [SizeClass; NUM_CLASSES] = CLASS_TABLE;

/// The record of class `class`. Panics if `class >= NUM_CLASSES`.
///
/// A safe, public function, so the index is checked: a `get_unchecked` behind a
/// `debug_assert` would let safe code in another crate read out of bounds in a release
/// build. Its callers are the refill and flush paths and the per-thread fallback's free,
/// where one predictable compare is cheap beside the work around it.
#[inline(always)]
pub fn class_info(class: usize) -> &'static SizeClass {
    &CLASSES[class]
}

/// The alignment every class of malloc's gives its blocks (every class size above 8 is a
/// multiple of 16, and spans start on a page): requests aligned to at most this take the
/// plain lookup.
pub const ALIGNED_BY_EVERY_CLASS: usize = 16;

/// Lookup for every small request, indexed by `(n + 7) / 8` (4 KiB): one load, no branch.
/// Exact because every class boundary is a multiple of 8.
pub(crate) const LUT_LEN: usize = MAX_SMALL_SIZE / 8 + 1;

const fn smallest_class_for(n: u32) -> u8 {
    let (sizes, _, count) = GENERATED;
    let mut c = 0;
    while c < count && sizes[c] < n {
        c += 1;
    }
    c as u8
}

pub(crate) const fn build_lut() -> [u8; LUT_LEN] {
    let mut lut = [0u8; LUT_LEN];
    let mut i = 0;
    while i < LUT_LEN {
        // Malloc's smallest block is 16 B (`class_of`).
        let n = if i * 8 < 16 { 16 } else { i * 8 };
        lut[i] = smallest_class_for(n as u32);
        i += 1;
    }
    lut
}
