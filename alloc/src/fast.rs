//! The statics every allocation and free reads, gathered in one.
//!
//! The fast paths are inlined into the caller's crate, and position-independent code reaches
//! each static of this crate from there through its own GOT entry: one more load, and one
//! more instruction, per static a path reads. The allocation path reads the size-class table
//! and the front end's layout; the sized free those two, the canary key and the pagemap's
//! root. As fields of one static they cost one GOT load per path between them. The pagemap's
//! root stays apart: it is 1 MiB of zeros that must stay in `.bss`, where this struct, holding
//! the class table, cannot be.
//!
//! Each field belongs to its module (`slab`'s layout, `block`'s key, `size_class`'s table),
//! which alone writes and documents it; this module only places them.
//!
//! # Placement within a page
//! The hit paths store to a slab's list header (`slab::HEADER` bytes at `class * HEADER` in
//! the first page of a CPU's slab) and then load this static's fields. A load whose address
//! shares bits 0-11 with a store still in flight waits for it (4 KiB aliasing), so the fields
//! must not sit at the page offsets of the headers. The static is page-aligned and its fields
//! start after the headers and the sampler's line (`slab::ITEMS_OFFSET`): the layout and the
//! key at an offset no header uses, the class table after them (its entries for requests
//! above about 22 KiB wrap round to the next page's start, so a few may share a header's
//! offset; the 32 KiB pair measures as every other size). Measured: with the
//! fields at the page offset of the 16 KiB class's header, a 16 KiB malloc/free pair took
//! 4.27 ns against 3.68 for every other size; with them at the start of the page (class 1's
//! header), a 16 B pair took 4.45 against 3.85
//! (`cargo run --release -p tricolor-tools -- bench --pairs --allocator tricolor`).

use crate::slab::{ITEMS_OFFSET, Layout};
use core::sync::atomic::AtomicUsize;

#[repr(C, align(4096))]
pub(crate) struct Fast {
    /// Keeps the fields below off the page offsets of the slab headers (module docs).
    _headers: [u8; ITEMS_OFFSET],
    /// The front end's mode and slabs (`slab`, written by `percpu`).
    pub(crate) layout: Layout,
    /// The double-free canary's key (`block`).
    pub(crate) key: AtomicUsize,
    /// The size class of each small request size, by `(n + 7) / 8` (`size_class`).
    pub(crate) classes: [u8; crate::size_class::table::LUT_LEN],
}

pub(crate) static FAST: Fast = Fast {
    _headers: [0; ITEMS_OFFSET],
    layout: Layout::new(),
    key: AtomicUsize::new(0),
    classes: crate::size_class::table::build_lut(),
};
