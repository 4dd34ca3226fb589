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

use crate::slab::Layout;
use core::sync::atomic::AtomicUsize;

#[repr(C)]
pub(crate) struct Fast {
    /// The front end's mode and slabs (`slab`, written by `percpu`).
    pub(crate) layout: Layout,
    /// The double-free canary's key (`block`).
    pub(crate) key: AtomicUsize,
    /// The size class of each small request size, by `(n + 7) / 8` (`size_class`).
    pub(crate) classes: [u8; crate::size_class::table::LUT_LEN],
}

pub(crate) static FAST: Fast = Fast {
    layout: Layout::new(),
    key: AtomicUsize::new(0),
    classes: crate::size_class::table::build_lut(),
};
