//! Size classes: from a request's size and alignment to the class serving it. The table and
//! the rule that computes it are in `table` (re-exported here); the lookups read the table of
//! `fast::FAST`, where the fast paths find it beside the other statics they read. The unit
//! tests below prove the table's bounds for every class and every request size.

pub(crate) mod table;

#[cfg(loom)]
use table::build_lut;
pub use table::{
    ADDRESS_BITS, ALIGNED_BY_EVERY_CLASS, CLASSES, MAX_SMALL_SIZE, NUM_CLASSES, PAGE_SHIFT,
    PAGE_SIZE, SizeClass, class_info,
};
pub(crate) use table::{ARENA_SHIFT, LUT_LEN, MAX_BATCH};

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
