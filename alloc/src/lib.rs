//! Tricolor allocator (temporary).
#![allow(missing_docs, dead_code)]
pub(crate) mod block;
pub(crate) mod meta;
pub(crate) mod os;
pub(crate) mod page_heap;
pub(crate) mod pagemap;
pub mod size_class;
pub(crate) mod span;
pub(crate) mod sync;
