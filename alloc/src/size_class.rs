//! Size classes: the table is *computed* at compile time by a rule, and the unit tests below
//! prove its bounds for every class and every request size.
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
        assert!(CLASS_TABLE[c].batch as usize <= crate::block::MAX_BATCH);
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

/// The table: a field of `fast::FAST` (where the fast paths find it with the other statics
/// they read), or a static of its own in the loom build, which has no `fast`.
#[cfg(not(loom))]
#[inline(always)]
fn lut() -> &'static [u8; LUT_LEN] {
    &crate::fast::FAST.classes
}
#[cfg(loom)]
fn lut() -> &'static [u8; LUT_LEN] {
    static LUT: [u8; LUT_LEN] = build_lut();
    &LUT
}

/// The class serving a request of `n <= MAX_SMALL_SIZE` bytes with alignment at most 8.
///
/// Never class 0: a malloc block needs 16 bytes, its link and its double-free canary (`block`),
/// so requests of up to 8 bytes get a 16-byte block (glibc's smallest is 24 usable bytes). The
/// 8-byte class serves GC objects, which are never freed by pointer ([`object_class_of`]).
///
/// # Panics
/// If `n > MAX_SMALL_SIZE` (callers have checked, so the bounds check folds away).
#[inline]
pub fn class_of(n: usize) -> usize {
    lut()[n.wrapping_add(7) >> 3] as usize
}

/// The class of a GC object of `n <= MAX_SMALL_SIZE` bytes: as [`class_of`], but objects of up
/// to 8 bytes use the 8-byte class (the collector's spans keep alloc bits, not free lists).
#[inline]
pub fn object_class_of(n: usize) -> usize {
    if n <= 8 { 0 } else { class_of(n) }
}

/// The class serving `size` bytes aligned to `align` (a power of two), or `None` when the
/// request must be a page run. Alignments up to 8 KiB are served by a class whose size is a
/// multiple of the alignment: spans start on a page boundary, so every object in them is
/// aligned. Deterministic, so a sized free computes the same class as the allocation did.
#[inline]
pub fn class_for(size: usize, align: usize) -> Option<usize> {
    // Up to 16: every class `class_of` returns is a multiple of 16 (the table's test), so its
    // blocks are 16-aligned, and `aligned_class` would pick the same class.
    if align <= ALIGNED_BY_EVERY_CLASS {
        return (size <= MAX_SMALL_SIZE).then(|| class_of(size));
    }
    aligned_class(size, align)
}

#[cold]
fn aligned_class(size: usize, align: usize) -> Option<usize> {
    let need = size.max(align);
    if need > MAX_SMALL_SIZE || align > PAGE_SIZE {
        return None;
    }
    (class_of(need)..NUM_CLASSES).find(|&c| CLASSES[c].size as usize % align == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exhaustive loops step by this under Miri (which interprets every iteration); natively,
    /// every value is checked.
    const STRIDE: usize = if cfg!(miri) { 127 } else { 1 };

    /// `class_info` is safe and public, so an index out of range must panic, not read past
    /// the table.
    #[test]
    fn class_info_checks_its_index() {
        assert_eq!(
            class_info(NUM_CLASSES - 1).size,
            CLASSES[NUM_CLASSES - 1].size
        );
        assert!(std::panic::catch_unwind(|| class_info(NUM_CLASSES)).is_err());
        assert!(std::panic::catch_unwind(|| class_info(usize::MAX)).is_err());
    }

    #[test]
    fn malloc_never_uses_the_8_byte_class() {
        for n in (0..=MAX_SMALL_SIZE).step_by(STRIDE) {
            let c = class_of(n);
            assert!(
                c >= 1 && CLASSES[c].size as usize >= n.max(16),
                "{n} -> class {c}"
            );
        }
        assert_eq!(object_class_of(8), 0);
        assert_eq!(object_class_of(9), class_of(9));
    }

    #[test]
    fn table_shape() {
        assert!((60..=90).contains(&NUM_CLASSES), "{NUM_CLASSES} classes");
        assert_eq!(CLASSES[0].size, 8);
        assert_eq!(CLASSES[NUM_CLASSES - 1].size as usize, MAX_SMALL_SIZE);
        for w in CLASSES.windows(2) {
            assert!(w[0].size < w[1].size, "{:?}", w);
        }
        for c in &CLASSES[1..] {
            assert_eq!(c.size % 16, 0, "class {} breaks 16-byte alignment", c.size);
            if c.size > 1024 {
                assert_eq!(
                    c.size % 128,
                    0,
                    "class {} breaks the 128-byte lookup",
                    c.size
                );
            }
        }
        for p in 3..=13 {
            let a = 1u32 << p;
            assert!(
                CLASSES.iter().any(|c| c.size == a),
                "power of two {a} has no class"
            );
        }
    }

    #[test]
    fn every_request_gets_the_smallest_fitting_class_within_the_rounding_bound() {
        for n in (1..=MAX_SMALL_SIZE).step_by(STRIDE) {
            let c = class_of(n);
            let size = CLASSES[c].size as usize;
            assert!(size >= n, "request {n} got class {size}");
            assert!(
                c == 1 || (CLASSES[c - 1].size as usize) < n,
                "request {n}: not smallest"
            );
            let waste = size - n;
            assert!(
                waste <= (size / 8).max(15),
                "request {n} -> {size}: waste {waste}"
            );
        }
    }

    #[test]
    fn every_class_keeps_tail_waste_within_an_eighth() {
        for c in &CLASSES {
            let span = c.pages as usize * PAGE_SIZE;
            assert_eq!(c.objects as usize, span / c.size as usize);
            assert!(span % c.size as usize <= span / 8, "{c:?}");
            assert!(c.pages <= 8, "{c:?} spans too many pages");
            assert!((2..=32).contains(&c.batch));
        }
    }

    #[test]
    fn division_by_multiplication_is_exact_inside_a_span() {
        for c in &CLASSES {
            let span = c.pages as u64 * PAGE_SIZE as u64;
            for off in (0..span).step_by(STRIDE) {
                let fast = (off * c.div_mul as u64) >> 32;
                assert_eq!(fast, off / c.size as u64, "class {} offset {off}", c.size);
            }
        }
    }

    #[test]
    fn aligned_requests_get_aligned_classes() {
        for p in 0..=13 {
            let align = 1usize << p;
            for size in [1, 7, 8, 9, 100, 1000, 4097, 8192, 30000] {
                match class_for(size, align) {
                    Some(c) => {
                        let s = CLASSES[c].size as usize;
                        assert!(s >= size, "size {size} align {align} got {s}");
                        assert_eq!(s % align, 0, "size {size} align {align} got {s}");
                    }
                    None => assert!(size.max(align) > MAX_SMALL_SIZE || align > PAGE_SIZE),
                }
            }
        }
        assert_eq!(class_for(1, 16).map(|c| CLASSES[c].size), Some(16));
        assert_eq!(class_for(1, 4096).map(|c| CLASSES[c].size), Some(4096));
        assert_eq!(class_for(1, 16384), None);
    }

    /// The plain lookup serves alignments up to `ALIGNED_BY_EVERY_CLASS`: it must pick what
    /// the aligned search picks, or a sized free would compute another class than its
    /// allocation did.
    #[test]
    fn the_plain_lookup_agrees_with_the_aligned_search_up_to_16() {
        for size in (1..=MAX_SMALL_SIZE + 1).step_by(STRIDE) {
            assert_eq!(
                class_for(size, ALIGNED_BY_EVERY_CLASS),
                aligned_class(size, ALIGNED_BY_EVERY_CLASS),
                "size {size}"
            );
        }
    }
}
