//! # Tricolor's C ABI
//!
//! This crate only translates: C calling conventions, `errno`, and C's argument rules on one
//! side; `tricolor_alloc` and `tricolor_gc` on the other. It builds `libtricolor.so`
//! and `libtricolor.a`; `ffi/include/tricolor.h` is generated from it by cbindgen and checked
//! in (the `header` test fails when it is stale). The `LD_PRELOAD` library
//! (`ffi/preload`, `libtricolor_malloc.so`) reuses [`cmalloc`] for the standard names.
//!
//! The names exported here are a public contract: they are never renamed.
//!
//! No Rust panic ends a C call. Bad input returns the documented error (NULL with `errno`,
//! -1) or aborts with a `tricolor: <function>(): ...` message naming what was wrong; every
//! allocation sized by a count or size the caller passes is fallible; what remains cannot
//! panic, and says why where that is not plain. There is no panic hook or `catch_unwind` at the boundary: a
//! hook is process-wide state a library must not take from its host, `catch_unwind` would not
//! keep the panic's message and backtrace from printing, and an `extern "C"` function already
//! aborts rather than unwind.

pub mod cmalloc;
mod ephemeron;
mod exports;
mod finalize;
mod gc;
mod metrics;
mod pool;
mod profile;
mod scanner;
mod weak;

pub use ephemeron::*;
pub use exports::*;
pub use finalize::*;
pub use gc::*;
pub use metrics::*;
pub use pool::*;
pub use profile::*;
pub use scanner::*;
pub use weak::*;
