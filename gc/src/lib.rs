//! # Tricolor's garbage collector
//!
//! A precise, non-moving, concurrent mark-sweep collector in the design of Go's runtime, over
//! the same page heap as Tricolor's allocator (GC spans are page runs from `tricolor_alloc`,
//! so one `GOMEMLIMIT` and one set of statistics cover both). Marking runs on the heap's
//! collector thread while the mutators run, behind Go's hybrid write barrier; the world stops
//! twice per cycle, briefly (`collect`; `docs/design.md`).
//!
//! ## Layers
//! Bottom to top, one layer a line: a module imports only modules of its own layer or below
//! (`tests/tests/layers.rs` reads this list and checks every `use crate::`/`super::` path of
//! the crate against it; `cargo test -p tricolor-tests --test layers -- --nocapture` prints
//! the import circles).
//!
//! ```text
//! sync: sync
//! protocols: handshake world sweepgen
//! leaves: knobs pacer misuse stats object control roots ephemeron::index mutator::stack mark::state
//! spans: span spanmap central mutator::cache
//! core: heap mutator pool finalize
//! allocation: mutator::alloc
//! mark: mark mark::scan mark::work mark::verify mark::assist mark::worker
//! barrier: barrier
//! sweep: sweep
//! features: weak ephemeron
//! cycle: collect
//! metrics: metrics
//! raw: raw
//! typed: typed
//! ```
//!
//! `sync` is the atomics and locks (loom's under `--cfg loom`); `handshake`, `world` and
//! `sweepgen` the stack-scan claim, the stop and flush handshakes and the sweep claim
//! (protocol only, loom-modelled). The leaves hold state and arithmetic that know nothing of
//! a heap: types (`object`), the pacer's pure functions, cycle control (`control`), the global
//! roots' registry and the visitor root callbacks report to (`roots`), the ephemeron index,
//! the statistics, their time counters and the gctrace line (`stats`), misuse messages, a
//! mutator's shadow stack (`mutator::stack`), marking's shared state (`mark::state`), the
//! pacer's live figures (`pacer::Pacing`). `central` is the span lists, `mutator::cache` a mutator's allocation
//! caches over them. The allocation paths (`mutator::alloc`) sit above the core they use.
//! The core is one circle of four files: the heap (`Heap`, whose fields hold every layer's
//! state) and its mutators name each other (the registry holds mutator records; a record
//! holds its heap), and the two features whose state those records hold, pools (a mutator's
//! shards, the heap's pool registry) and finalizers (the heap's registrations, whose
//! functions take the finalizer thread's mutator), name both. Behaviour above the core is
//! written as `impl Heap` and `impl MutatorState` blocks in the module that owns it (marking
//! in `mark`, the barrier in `barrier`, sweeping in `sweep`, the cycle in `collect`, a forced
//! collection in `collect`). A lower module calling such a method calls above its layer: the
//! test resolves method calls by name, and the calls the design needs are the exceptions
//! below, each with its reason.
//!
//! ### Exceptions
//! ```text
//! central -> sweep: a refill sweeps the span it takes and one more, lazily and proportionally (Go's sweeping)
//! mutator::alloc -> mark::assist: allocation while marking pays with marking work (assists)
//! mutator::alloc -> collect: allocation at the trigger asks for a cycle, and at the goal waits for it
//! pool -> barrier: get and put shade what they move while marking (pool rule 2)
//! finalize -> barrier: a registration while marking shades the object (finalize rule 2)
//! finalize -> sweep: reading a registration settles the sweep that may have found its object dead
//! mark -> ephemeron: marking a key marks its values (ephemeron rule 2)
//! sweep -> weak: the sweep that finds an object dead clears its weak handles (weak rule 1)
//! sweep -> ephemeron: the sweep that finds a key dead drops its entries (ephemeron rule 4)
//! ```
//!
//! ## Object model (`object`, `span`)
//! * A type is registered at run time with a size and the byte offsets of its pointer slots.
//!   Arrays are `len` copies of a type; raw byte objects are pointer-free. Every object is
//!   zeroed.
//! * Objects of at most 32 KiB live in GC spans of one *kind* (one type, or pointer-free, in
//!   one of the allocator's 67 size classes), so the span gives every object's pointer map
//!   without a header. Pointer-free kinds (Go's noscan span classes) are never scanned.
//!   Larger objects get a span each.
//! * Each span has alloc bits and mark bits. Slot `i` is allocated iff `i < free_index` or its
//!   alloc bit is set; sweeping makes the mark bits the new alloc bits (Go's swap), so a dead
//!   object costs nothing to free.
//! * An interior pointer keeps its whole object alive.
//!
//! ## Allocation (`mutator::alloc`)
//! 1. Read the mutator's `poll` word: non-zero means a collection is waiting (park) or the
//!    mutator was detached (abort). This makes every allocation a safepoint.
//! 2. Take the next free slot from the kind's cached 64-slot window of free bits (count
//!    trailing zeros, clear the lowest bit) and zero it: no lock, no atomic.
//! 3. When the span is used up, give it back and get another under the heap's central lock:
//!    a swept span with room, else an unswept one swept now (lazy sweeping), else a new span
//!    from the page heap. Each refill also sweeps one more span anywhere (proportional
//!    sweeping), and counts the span's free slots as allocated (Go's `heapLive`).
//! 4. While marking, pay for the refill with marking work (a mark assist in proportion to what
//!    is allocated, Go's assist ratio). If allocation has reached the trigger (7/8 of the way
//!    to the heap goal), ask the collector thread for a cycle; if it has reached the goal
//!    while the cycle is still marking, assist until no work is left, then wait for the cycle
//!    to end (as if in native code). If the page heap cannot grow, run a
//!    full cycle and retry once; then return null. While marking, what a refill hands out is
//!    allocated black (`collect`, rule 5).
//!
//! ## Collection (`collect`, `mark`, `barrier`, `pacer`)
//! 1. Finish the previous cycle's sweeping (world running).
//! 2. Stop the world by handshake (mutators in native code count as stopped): flush every
//!    cache, request every stack scan, switch the barrier on. Restart.
//! 3. Mark concurrently: the collector thread scans global handles and the stacks of mutators
//!    in native code; the others scan their own at their next safepoint; the barrier shades
//!    the old and new value of every pointer store; everything reaches the collector through
//!    one queue. Mutators that reach the goal mark too (assists), sharing grey objects with
//!    the collector through a work list; mark bits are set atomically.
//! 4. Flush waves until one delivers no work; then stop the world again: flush what is left,
//!    call the root callbacks, verify (verification mode), switch the barrier off, flip the
//!    sweep generation. Restart.
//! 5. Queue the spans for lazy and proportional sweeping, free dead large objects, and set the
//!    next goal, Go's `marked + (marked + roots) × GOGC/100` capped by `GOMEMLIMIT` under a
//!    CPU limiter, and the trigger.
//!
//! With `Config::mark_in_pause`, steps 2 to 4 happen in one pause: the world stays stopped
//! from step 2 to the end of step 4, the collector scans every mutator's stack itself and
//! marks with the mark workers, and no running mutator ever sees the barrier on. So pointer
//! stores need no barrier (a runtime written for Boehm GC), at the price of a pause as long as
//! marking (`tests/mark_in_pause.rs`).
//!
//! ## Roots
//! Per-mutator shadow stacks of slot addresses (`push_root`/`pop_roots`), the typed layer's
//! handle arena, per-mutator stack scanners (`add_stack_scanner`: a language runtime's own
//! stack and globals, scanned with the shadow stack, concurrently), global handles,
//! registered root callbacks (scanned in the mark-termination pause), and what the pools hold (`pool`:
//! a pool's contents become its victim cache at each cycle's start and are dropped at the
//! next, Go's `sync.Pool`), what objects with finalizers point to, and objects queued for
//! their finalizer (`finalize`, Go's `SetFinalizer` and `AddCleanup`). Weak handles (`weak`,
//! Go's `weak.Pointer`) are not roots: the sweep that finds their object dead clears them
//! (before it queues the object's finalizer or cleanups), and a read settles that sweep first.
//! Ephemeron tables (`ephemeron`, JavaScript's `WeakMap`) are not roots either: marking a key
//! marks its values, and the sweep that finds a key dead drops its entries.
//!
//! ## Checks
//! Always on: a pointer stored through `write` that is not this heap's object, a slot outside
//! the written object, popping more roots than pushed, using a detached mutator, allocating
//! an unregistered type: each aborts with a message (`misuse`). Verification mode (cargo
//! feature `verify` or `TRICOLOR_GC_VERIFY=1`) adds the heap-wide marking check, dangling
//! pointer detection and poisoning of freed objects.
//!
//! ## Threads
//! Any number of mutators on any number of heaps; each heap has one collector thread
//! (`tricolor-gc`), started at its first cycle. A mutator is its thread's (`Mutator` is not
//! `Send`); it must detach (drop) before its thread exits, reach a safepoint (an allocation or
//! `safepoint()`) regularly, and block only in native code (`enter_native`/`leave_native`):
//! a mutator that does neither holds up the handshakes.
//!
//! ## What embedders must do (the barrier's rules)
//! 1. Store heap pointers into heap objects only through `write` (`tc_write`).
//! 2. A pushed shadow-stack slot is written only by its owning thread.
//! 3. Root callbacks are called with the world stopped, once per cycle, at mark termination:
//!    their slots need no barrier, and their cost, with marking what only they reach, is part
//!    of that pause. A runtime with a large root set uses a stack scanner instead (scanned
//!    once per cycle with its mutator's stack, concurrently; the barrier makes that enough).
//! 4. Global handles are changed only through the handle functions (they shade).

// Under loom only `sync` and the modelled protocols are built; the rest of the crate is what
// uses them.
#![cfg_attr(loom, allow(dead_code))]

#[cfg(not(loom))]
pub(crate) mod barrier;
#[cfg(not(loom))]
pub(crate) mod central;
#[cfg(not(loom))]
pub(crate) mod collect;
#[cfg(not(loom))]
pub(crate) mod control;
#[cfg(not(loom))]
pub(crate) mod ephemeron;
#[cfg(not(loom))]
pub(crate) mod finalize;
pub(crate) mod handshake;
#[cfg(not(loom))]
pub(crate) mod heap;
#[cfg(not(loom))]
pub(crate) mod knobs;
#[cfg(not(loom))]
pub(crate) mod mark;
#[cfg(not(loom))]
pub mod metrics;
#[cfg(not(loom))]
pub(crate) mod misuse;
#[cfg(not(loom))]
pub(crate) mod mutator;
#[cfg(not(loom))]
pub(crate) mod object;
#[cfg(not(loom))]
pub mod pacer;
#[cfg(not(loom))]
pub(crate) mod pool;
#[cfg(not(loom))]
pub mod raw;
#[cfg(not(loom))]
pub(crate) mod roots;
#[cfg(not(loom))]
pub(crate) mod span;
#[cfg(not(loom))]
pub(crate) mod spanmap;
#[cfg(not(loom))]
pub(crate) mod stats;
#[cfg(not(loom))]
pub(crate) mod sweep;
pub(crate) mod sweepgen;
pub(crate) mod sync;
#[cfg(not(loom))]
pub(crate) mod typed;
#[cfg(not(loom))]
pub(crate) mod weak;
pub(crate) mod world;

#[cfg(not(loom))]
pub use heap::Heap;
#[cfg(not(loom))]
pub use knobs::Config;
#[cfg(not(loom))]
pub use mutator::{MutatorState, StackScanner};
#[cfg(not(loom))]
pub use object::{BYTES, TypeError, TypeId, TypeInfo};
#[cfg(not(loom))]
pub use pool::PoolStats;
#[cfg(not(loom))]
pub use roots::{CallbackId, HandleSlot, RootCallback, RootVisitor};
#[cfg(not(loom))]
pub use stats::{GcStats, PAUSES};
#[cfg(not(loom))]
pub use typed::{
    Cleanup, Data, EphemeronTable, Field, Global, Local, Member, Mutator, Pool, Scope, Trace, Weak,
};
#[cfg(not(loom))]
pub use weak::WeakSlot;
