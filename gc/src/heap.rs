//! The heap: its types, its spans (central lists per kind, large objects), its mutators and
//! the world lock that stops them, its global roots, and its pacing state.
//!
//! # Locks (order: `cycles` → `world` → `central` → `roots`; `stats` and `queue` are leaves)
//! * `cycles`: cycle requests and completions (`control::Cycles`).
//! * `world`: the mutator registry and the `collecting` flag (`world::Gate`). The collector
//!   holds it while the world is stopped, except while waiting for mutators to stop.
//! * `central`: every span list and record pool (`Central`).
//! * `roots`: global handles and root callbacks.
//! * `queue`: grey values and black ranges on their way to the collector (`collect`, rules
//!   2–6).
//! * `work`: batches of grey objects shared between markers (`mark`); a leaf.
//!
//! # Kinds
//! Small spans are grouped by *kind*: one type (or pointer-free bytes) in one size class.
//! A kind's spans hold objects of one type, so the marker finds an object's pointer map from
//! its span, with no per-object header (decision: costs a partly used span per kind per
//! mutator, and saves a header word on every object; binary-trees' 16-byte nodes would be
//! 24 bytes with one).

use crate::central::Central;
use crate::control::Cycles;
use crate::ephemeron::index::EphemeronIndex;
use crate::knobs::Config;
use crate::mark::state::{MarkQueue, MarkState};
use crate::mutator::MutatorState;
use crate::object::{BYTES, Registry, TypeError, TypeId, TypeInfo};
use crate::pacer::{self, Limiter, Pacing};
use crate::roots::{CallbackId, GlobalRoots, HandleSlot, RootCallback};
use crate::span::GcSpan;
use crate::spanmap;
use crate::stats::{StatsState, Times};
use crate::world::{Gate, Mutators, Signals};
use std::collections::{HashMap, VecDeque};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Instant;
use tricolor_alloc::size_class::{MAX_SMALL_SIZE, PAGE_SIZE, object_class_of};

/// The kind of objects of type `ty` in size class `class` (pointer-free types share kind
/// `BYTES`).
pub(crate) fn kind(ty: &TypeInfo, class: usize) -> u64 {
    let t = if ty.noscan() { BYTES } else { ty.id };
    (t as u64) << 8 | class as u64
}

/// A garbage-collected heap. Heaps live for the rest of the process (`Heap::new` leaks it),
/// as Go's does: a mutator or handle can never outlive its heap.
pub struct Heap {
    pub(crate) types: Registry,
    /// The world lock and its handshakes (`world`).
    pub(crate) world: Gate<World>,
    pub(crate) central: Mutex<Central>,
    pub(crate) roots: Mutex<GlobalRoots>,
    /// A mirror of `Central::sweepgen` for lock-free reads (`weak` rule 2's fast path),
    /// written with the world stopped, after the flip.
    pub(crate) sweep_h: AtomicU32,
    /// Set at the flip, cleared once `Central::queue_sweep` has freed the dead large objects
    /// (`weak` rule 2; `Heap::sweep_to_end`).
    pub(crate) large_pending: AtomicBool,
    /// The registered pools (`pool`).
    pub(crate) pools: Mutex<crate::pool::Pools>,
    /// Ephemeron entries by key, and the live tables' entry counts (`ephemeron::index`).
    pub(crate) ephemerons: Mutex<EphemeronIndex>,
    /// Finalizers, cleanups and their run queue (`finalize`); signalled when jobs are queued.
    pub(crate) finals: Mutex<crate::finalize::Finals>,
    pub(crate) finals_cv: Condvar,
    /// Registered finalizers and cleanups: lets sweeps and marking skip the registry when
    /// there are none. Relaxed (a registration's object is alive until the next stop).
    pub(crate) finals_count: AtomicUsize,
    /// Objects carrying a heap-profile sample (`finalize`'s `Special::Profile`): with
    /// `finals_count`, lets sweeps skip the registry. Relaxed, as that count.
    pub(crate) profiled_count: AtomicUsize,
    /// Marking's shared state (`mark::state`).
    pub(crate) mark: MarkState,
    /// The pacer's live figures: heap size, goal, trigger, GOGC (`pacer::Pacing`).
    pub(crate) pacing: Pacing,
    /// Time spent collecting and waiting, for the statistics (`stats::Times`).
    pub(crate) times: Times,
    /// Cycle requests and completions (`control`).
    pub(crate) cycles: Cycles,
    pub(crate) config: Config,
    pub(crate) stats: Mutex<StatsState>,
    pub(crate) epoch: Instant,
    /// Rust types registered by the typed layer.
    pub(crate) rust_types: Mutex<HashMap<std::any::TypeId, TypeId>>,
}

/// Guarded by `Heap::world`.
pub(crate) struct World {
    pub(crate) mutators: Vec<*mut MutatorState>,
    /// Detached records, reused only after `QUARANTINE` later detaches, so that using a
    /// detached mutator is caught (it reads `DETACHED`) rather than acting on another's.
    pub(crate) detached: VecDeque<*mut MutatorState>,
    pub(crate) collecting: bool,
    pub(crate) limiter: Limiter,
    /// When the previous cycle ended (for the limiter and gctrace).
    pub(crate) last_end: Instant,
}

impl World {
    /// The registered mutators.
    pub(crate) fn each(&self) -> impl Iterator<Item = &MutatorState> + '_ {
        // SAFETY: a registered record is valid while registered, and it leaves the registry
        // only under `world`, which the caller holds through `&self` (records are never freed).
        self.mutators.iter().map(|&m| unsafe { &*m })
    }
}

impl Mutators for World {
    fn each_signals(&self, f: &mut dyn FnMut(&Signals)) {
        for m in self.each() {
            f(&m.sig);
        }
    }
}

pub(crate) const QUARANTINE: usize = 64;

// SAFETY: the raw pointers are records owned by the heap, only dereferenced under the
// protocol in `mutator` (rule 2); the registry itself moves between threads only inside the mutex.
unsafe impl Send for World {}

static DEFAULT: OnceLock<&'static Heap> = OnceLock::new();

impl Heap {
    /// A new heap with `config`. It lives for the rest of the process.
    pub fn new(mut config: Config) -> &'static Heap {
        // Resolved once: finding the usable CPUs reads the affinity mask and cgroup files,
        // too slow for `stats()`.
        config.procs = config.effective_procs();
        let now = Instant::now();
        let heap: &'static Heap = Box::leak(Box::new(Heap {
            types: Registry::new(),
            world: Gate::new(World {
                mutators: Vec::new(),
                detached: VecDeque::new(),
                collecting: false,
                limiter: Limiter::default(),
                last_end: now,
            }),
            central: Mutex::new(Central {
                kinds: HashMap::new(),
                all: Vec::new(),
                large: Vec::new(),
                records: Vec::new(),
                retired: Vec::new(),
                sweepgen: 2,
                cursor: 0,
                span_bytes: 0,
            }),
            sweep_h: AtomicU32::new(2),
            large_pending: AtomicBool::new(false),
            pools: Mutex::new(crate::pool::Pools::default()),
            ephemerons: Mutex::new(EphemeronIndex::default()),
            finals: Mutex::new(crate::finalize::Finals::default()),
            finals_cv: Condvar::new(),
            finals_count: AtomicUsize::new(0),
            profiled_count: AtomicUsize::new(0),
            roots: Mutex::new(GlobalRoots::new()),
            cycles: Cycles::default(),
            mark: MarkState::default(),
            pacing: Pacing::new(config.gc_percent),
            times: Times::default(),
            config,
            stats: Mutex::new(StatsState::default()),
            epoch: now,
            rust_types: Mutex::new(HashMap::new()),
        }));
        heap.update_goal(0, 0, false);
        heap
    }

    /// The process-wide heap, configured from the environment (`knobs`) on first use.
    pub fn default_heap() -> &'static Heap {
        DEFAULT.get_or_init(|| Heap::new(Config::from_env()))
    }

    /// The process-wide heap if something has made it (never makes it).
    pub(crate) fn default_heap_if_made() -> Option<&'static Heap> {
        DEFAULT.get().copied()
    }

    /// The heap's address: the identity span records carry.
    #[inline]
    pub(crate) fn addr(&self) -> usize {
        self as *const Heap as usize
    }

    /// The settings this heap was made with.
    pub fn config(&self) -> Config {
        self.config
    }

    /// Registers a type of `size` bytes with pointer slots at byte `offsets`.
    pub fn register_type(
        &self,
        name: &str,
        size: usize,
        offsets: &[usize],
    ) -> Result<TypeId, TypeError> {
        self.types.register(name, size, offsets).map(|t| t.id)
    }

    /// The registered type `id`.
    pub fn type_info(&self, id: TypeId) -> Option<&'static TypeInfo> {
        self.types.get(id)
    }

    /// Sets `GOGC` (Go's `debug.SetGCPercent`): returns the previous value; negative is off.
    pub fn set_gc_percent(&self, percent: i32) -> i32 {
        let old = self.pacing.gc_percent.swap(percent, Ordering::Relaxed);
        // The last cycle's other inputs stand until the next cycle.
        let (marked, roots, limited) = {
            let st = self.stats_lock();
            (st.marked(), st.roots(), st.limited())
        };
        self.update_goal(marked, roots, limited);
        old
    }

    /// `GcStats::gc_cpu_fraction` now (`stats::Times::gc_cpu_fraction`).
    pub(crate) fn gc_cpu_fraction(&self) -> f64 {
        self.times
            .gc_cpu_fraction(self.epoch, self.config.effective_procs())
    }

    pub(crate) fn stats_lock(&self) -> MutexGuard<'_, StatsState> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn world_lock(&self) -> MutexGuard<'_, World> {
        self.world.lock()
    }

    pub(crate) fn queue_lock(&self) -> MutexGuard<'_, MarkQueue> {
        self.mark.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn work_lock(&self) -> MutexGuard<'_, Vec<Vec<(usize, usize)>>> {
        self.mark.work.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands grey values to the collector (non-null ones; a flush, a stack scan or a handle
    /// change while marking).
    pub(crate) fn shade(&self, values: &[usize]) {
        let mut q = self.queue_lock();
        let before = q.grey.len();
        q.grey.extend(values.iter().copied().filter(|&v| v != 0));
        if q.grey.len() != before {
            self.mark.flushed.store(true, Ordering::SeqCst);
            self.mark.queue_cv.notify_one();
        }
    }

    /// Hands the collector slots `from..to` of span `s`, handed out while marking (rule 5).
    pub(crate) fn send_black(&self, s: *mut GcSpan, from: u32, to: u32) {
        self.queue_lock().black.push((s as usize, from, to));
    }

    pub(crate) fn central_lock(&self) -> MutexGuard<'_, Central> {
        self.central.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn roots_lock(&self) -> MutexGuard<'_, GlobalRoots> {
        self.roots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Recomputes the goal after a cycle that marked `marked` bytes with `roots` bytes of roots.
    pub(crate) fn update_goal(&self, marked: usize, roots: usize, limited: bool) -> usize {
        let limit = tricolor_alloc::memory_limit();
        let non_heap = if limit == pacer::NO_LIMIT {
            0
        } else {
            let mapped = tricolor_alloc::stats().mapped as usize;
            mapped.saturating_sub(self.central_lock().span_bytes)
        };
        let goal = pacer::heap_goal(pacer::Inputs {
            marked,
            roots,
            gc_percent: self.pacing.gc_percent.load(Ordering::Relaxed),
            limit,
            non_heap,
            limited,
        });
        self.pacing.goal.store(goal, Ordering::Relaxed);
        self.pacing
            .trigger
            .store(pacer::trigger(marked, goal), Ordering::Relaxed);
        goal
    }

    /// The span of the object that starts at `obj` on this heap; aborts naming `op` when `obj`
    /// is not an object's start here (`what` names the role, as "key ", and `of` the heap,
    /// as "this heap"). For the APIs that take an object by its address: weak handles,
    /// finalizers, cleanups, pools, ephemeron keys.
    pub(crate) fn object_start(
        &self,
        obj: *mut u8,
        op: &str,
        what: &str,
        of: &str,
    ) -> &'static GcSpan {
        let a = obj as usize;
        let Some(r) = spanmap::in_use(a, self.addr()).filter(|r| r.covers(a)) else {
            crate::misuse::abort(format_args!(
                "{op}(): {what}{obj:p} is not an object of {of}"
            ));
        };
        if r.index_of(a).map(|i| r.slot(i)) != Some(a) {
            crate::misuse::abort(format_args!(
                "{op}(): {what}{obj:p} points inside an object, not at its start"
            ));
        }
        r
    }

    /// True when allocation has reached the trigger: a cycle should start.
    #[inline]
    pub(crate) fn over_trigger(&self) -> bool {
        self.pacing.live.load(Ordering::Relaxed) >= self.pacing.trigger.load(Ordering::Relaxed)
    }

    /// True when allocation has reached the goal.
    #[inline]
    pub(crate) fn over_goal(&self) -> bool {
        self.pacing.live.load(Ordering::Relaxed) >= self.pacing.goal.load(Ordering::Relaxed)
    }

    /// A global handle keeping `obj` (null or an object of this heap) alive until freed.
    pub(crate) fn handle_new(&'static self, obj: usize) -> *mut HandleSlot {
        let mut roots = self.roots_lock();
        // Under the roots lock, like the collector's scan of the handles (rule 6).
        if self.mark.marking.load(Ordering::Relaxed) {
            self.shade(&[obj]);
        }
        roots.add_handle(obj, self.addr())
    }

    /// Frees a handle.
    ///
    /// # Safety
    /// `slot` came from `handle_new` on this heap and is not used afterwards.
    pub(crate) unsafe fn handle_free(&self, slot: *mut HandleSlot) {
        let mut roots = self.roots_lock();
        // SAFETY: the caller's contract: a handle of this heap, readable.
        if !unsafe { roots.is_listed(slot) } {
            crate::misuse::abort(format_args!(
                "tc_handle_free(): {slot:p} is not a live handle"
            ));
        }
        if self.mark.marking.load(Ordering::Relaxed) {
            // Rule 6: the value may live on only in a stack already scanned.
            // SAFETY: a live handle (checked above).
            self.shade(&[unsafe { (*slot).obj.load(Ordering::Relaxed) }]);
        }
        // SAFETY: listed (checked above); the caller gives it up.
        unsafe { roots.remove_handle(slot) };
    }

    /// Registers a root callback, called once per cycle at mark termination (see
    /// [`RootCallback`]).
    pub fn add_root_callback(&self, f: RootCallback) -> CallbackId {
        self.roots_lock().add_callback(f)
    }

    /// Removes a root callback; false if it was not registered.
    pub fn remove_root_callback(&self, id: CallbackId) -> bool {
        self.roots_lock().remove_callback(id)
    }
}

/// Refill and large allocation: called by mutators with no lock held.
impl Heap {
    /// A swept span with free slots for `kind`, marked cached; counts its free slots as
    /// allocated. `None` when the page heap cannot grow.
    pub(crate) fn cache_span(
        &self,
        ty: &'static TypeInfo,
        class: usize,
        kind: u64,
    ) -> Option<*mut GcSpan> {
        let (s, free_bytes) =
            self.central_lock()
                .take_span(self.addr(), ty, class, kind, self.config.verify)?;
        self.pacing.live.fetch_add(free_bytes, Ordering::Relaxed);
        Some(s)
    }

    /// Gives a cached span back with its allocation position; the unused slots stop counting
    /// as allocated.
    ///
    /// # Safety
    /// The caller's cache held `s`, and stops holding it.
    pub(crate) unsafe fn uncache_span(&self, s: *mut GcSpan, free_index: u32, keep_partial: bool) {
        // SAFETY: the caller's contract.
        let free_bytes = unsafe { self.central_lock().return_span(s, free_index, keep_partial) };
        self.pacing.live.fetch_sub(free_bytes, Ordering::Relaxed);
    }

    /// A zeroed large object of `bytes` bytes of type `ty`; null when the heap cannot grow.
    pub(crate) fn alloc_large(&self, ty: &'static TypeInfo, bytes: usize) -> *mut u8 {
        let Some(pages) = bytes.checked_add(PAGE_SIZE - 1).map(|b| b / PAGE_SIZE) else {
            return ptr::null_mut();
        };
        let Some(s) = self.central_lock().new_large(self.addr(), pages, bytes, ty) else {
            return ptr::null_mut();
        };
        // SAFETY: a new span, not yet visible to any other mutator's allocation.
        let r = unsafe { &*s };
        // SAFETY: as above: we are its only holder.
        let o = unsafe { r.owned() };
        // The object counts as allocated from the start: slot 0 is below free_index.
        o.free_index = 1;
        if o.needzero {
            // SAFETY: the span's pages are ours and at least `bytes` long.
            unsafe { ptr::write_bytes(r.start as *mut u8, 0, bytes) };
        }
        self.pacing.live.fetch_add(bytes, Ordering::Relaxed);
        if self.mark.marking.load(Ordering::Relaxed) {
            self.send_black(s, 0, 1);
        }
        r.start as *mut u8
    }
}

/// The size class for a small object of `bytes` bytes, or `None` for a large one.
#[inline]
pub(crate) fn small_class(bytes: usize) -> Option<usize> {
    (bytes <= MAX_SMALL_SIZE).then(|| object_class_of(bytes.max(1)))
}
