//! The OS layer: the only module that talks to the kernel or to libc.
//!
//! Everything above this module sees memory as ranges it reserved, committed or released, a
//! futex to sleep on, one thread-exit hook, and a way to die with a message. One file per
//! platform; Linux is the platform we build and test on. Nothing here allocates through the
//! allocator (it runs underneath it), so nothing here may use `Vec`, `Box`, `String` or
//! `format!`.

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "linux")]
pub(crate) use linux::*;

/// Restartable sequences: x86-64 Linux only (aarch64 is not tested here: no machine). Not in
/// loom builds: only `percpu` uses them, and its slab layout (`slab::SLAB_SHIFT`) with them.
#[cfg(all(target_os = "linux", target_arch = "x86_64", not(loom)))]
pub(crate) mod rseq;

#[cfg(not(target_os = "linux"))]
compile_error!("tricolor-alloc supports Linux only for now (the OS layer has one platform file)");
