//! A mutator's allocation caches: per kind, one span it holds and a 64-slot window of that
//! span's free bits (`AllocCache`), found by type id for single objects and by kind for
//! arrays and byte objects (`Caches`). The allocation fast path is `AllocCache::take`: a
//! count-trailing-zeros and a clear-lowest-bit, no lock, no atomic.
//!
//! Invariant (the holder rule of `span.rs`): a cache that holds a span is the only one
//! allocating from it, and only its owner's thread touches it (`mutator` rule 2); what it
//! hands back when retired (`Retired`) is what the heap needs to take the span back and to
//! mark the slots handed out while marking black (`collect` rule 5).

use crate::span::GcSpan;
use std::collections::HashMap;
use std::ptr;

/// `AllocCache::black_from` when the cache was loaded while not marking.
const NOT_BLACK: u32 = u32::MAX;

/// One kind's allocation cache: a span and a 64-slot window of its free bits.
pub(crate) struct AllocCache {
    span: *mut GcSpan,
    /// Free slots (1 bits) in the window starting at slot `base`.
    bits: u64,
    base: u32,
    nelems: u32,
    pub(crate) size: usize,
    start: usize,
    needzero: bool,
    /// Loaded while marking: the slots handed out from here on are new objects, to be marked
    /// black when the span leaves the cache (`collect` rule 5); else `NOT_BLACK`.
    black_from: u32,
}

impl AllocCache {
    pub(crate) const EMPTY: AllocCache = AllocCache {
        span: ptr::null_mut(),
        bits: 0,
        base: 0,
        nelems: 0,
        size: 0,
        start: 0,
        needzero: false,
        black_from: NOT_BLACK,
    };

    /// The next free slot, zeroed; `None` when the span is used up. The fast path: a
    /// count-trailing-zeros and a clear-lowest-bit.
    #[inline(always)]
    pub(crate) fn take(&mut self) -> Option<*mut u8> {
        if self.bits == 0 && !self.next_window() {
            return None;
        }
        let i = self.base + self.bits.trailing_zeros();
        self.bits &= self.bits - 1;
        let p = (self.start + i as usize * self.size) as *mut u8;
        if self.needzero {
            zero(p, self.size);
        }
        Some(p)
    }

    /// Moves the window to the next 64 slots that have a free one.
    #[inline(never)]
    fn next_window(&mut self) -> bool {
        if self.span.is_null() {
            return false;
        }
        loop {
            self.base += 64;
            if self.base >= self.nelems {
                return false;
            }
            // SAFETY: this cache holds the span (rule 2; `span.rs` holder rule).
            let taken = unsafe { (*self.span).alloc_word(self.base as usize / 64) };
            self.bits = !taken & valid(self.base, self.nelems);
            if self.bits != 0 {
                return true;
            }
        }
    }

    /// Loads span `s` (swept, held by this cache); `marking` says whether what it hands out
    /// is allocated black.
    pub(crate) fn load(&mut self, s: *mut GcSpan, marking: bool) {
        // SAFETY: the cache holds `s`.
        let r = unsafe { &*s };
        // SAFETY: as above.
        let o = unsafe { r.owned() };
        let fi = o.free_index;
        let base = fi & !63;
        self.span = s;
        self.base = base;
        self.nelems = r.nelems;
        self.size = r.size;
        self.start = r.start;
        self.needzero = o.needzero;
        self.black_from = if marking { fi } else { NOT_BLACK };
        let below = if fi % 64 == 0 {
            0
        } else {
            (1u64 << (fi % 64)) - 1
        };
        // SAFETY: as above.
        let taken = unsafe { r.alloc_word(base as usize / 64) };
        self.bits = !taken & valid(base, r.nelems) & !below;
    }

    /// The span's allocation position: every slot below it is allocated or was just
    /// handed out (consumed in index order).
    fn free_index(&self) -> u32 {
        if self.bits != 0 {
            self.base + self.bits.trailing_zeros()
        } else {
            (self.base + 64).min(self.nelems)
        }
    }

    /// Empties the cache: what it held, for the heap to take back (`MutatorState::give_back`),
    /// or `None` when it held no span.
    pub(crate) fn retire(&mut self) -> Option<Retired> {
        if self.span.is_null() {
            return None;
        }
        let free_index = self.free_index();
        let black = (self.black_from != NOT_BLACK && free_index > self.black_from)
            .then_some(self.black_from);
        let r = Retired {
            span: self.span,
            free_index,
            black,
        };
        *self = AllocCache::EMPTY;
        Some(r)
    }
}

/// Slots of the window at `base` that exist.
#[inline]
fn valid(base: u32, nelems: u32) -> u64 {
    let n = nelems - base;
    if n >= 64 { !0 } else { (1u64 << n) - 1 }
}

/// Zeroes a small object: inline stores for the commonest sizes (a loop would be turned
/// into a `memset` call), `memset` beyond.
#[inline(always)]
fn zero(p: *mut u8, size: usize) {
    let w = p.cast::<[u64; 2]>();
    // SAFETY: `p` is a slot of `size` bytes, 8-aligned (16 B pairs are written only where the
    // size holds them).
    unsafe {
        match size {
            8 => p.cast::<u64>().write(0),
            16 => w.write([0; 2]),
            32 => {
                w.write([0; 2]);
                w.add(1).write([0; 2]);
            }
            48 => {
                w.write([0; 2]);
                w.add(1).write([0; 2]);
                w.add(2).write([0; 2]);
            }
            _ => ptr::write_bytes(p, 0, size),
        }
    }
}

/// What a retired cache held: its span, the allocation position, and where the slots handed
/// out while marking start (`None` when none were).
pub(crate) struct Retired {
    pub(crate) span: *mut GcSpan,
    pub(crate) free_index: u32,
    pub(crate) black: Option<u32>,
}

/// A mutator's caches.
#[derive(Default)]
pub(crate) struct Caches {
    /// Single objects, by type id.
    pub(crate) single: Vec<AllocCache>,
    /// Arrays and byte objects, by kind.
    pub(crate) others: HashMap<u64, AllocCache, KindHash>,
}

impl Caches {
    /// The cache for single objects of type `ty`, made empty if new.
    pub(crate) fn for_type(&mut self, ty: usize) -> &mut AllocCache {
        if self.single.len() <= ty {
            self.single.resize_with(ty + 1, || AllocCache::EMPTY);
        }
        &mut self.single[ty]
    }

    /// The cache for arrays and byte objects of `kind`, made empty if new.
    pub(crate) fn for_kind(&mut self, kind: u64) -> &mut AllocCache {
        self.others.entry(kind).or_insert(AllocCache::EMPTY)
    }

    /// Every cache.
    pub(crate) fn each(&mut self) -> impl Iterator<Item = &mut AllocCache> {
        self.single.iter_mut().chain(self.others.values_mut())
    }

    /// Forgets every cache (each retired first).
    pub(crate) fn clear(&mut self) {
        self.single.clear();
        self.others.clear();
    }
}

/// The hasher of `Caches::others`: a kind is two small integers (type id, size class), and
/// the default SipHash shows as 2% of a profile of the Lox VM's binary trees (whose hash
/// tables are arrays; measured with `perf record` on
/// `tricolor-lox benches/lox/bench/binary_trees.lox`, SipHash in its place); a
/// multiplicative hash suffices.
#[derive(Default, Clone, Copy)]
pub(crate) struct KindHash;

impl std::hash::BuildHasher for KindHash {
    type Hasher = KindHasher;
    fn build_hasher(&self) -> KindHasher {
        KindHasher(0)
    }
}

/// See [`KindHash`].
#[derive(Default)]
pub(crate) struct KindHasher(u64);

impl std::hash::Hasher for KindHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0 ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
}
