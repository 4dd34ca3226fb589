//! The pool cleared each cycle: Go's `sync.Pool` with its victim cache (Go 1.13).
//!
//! `get` returns a pooled object, or a new one from the pool's constructor, or null; `put`
//! gives one back. Each (pool, mutator) pair has a *shard*: a private slot only its owner
//! uses, a shared deque its owner pushes and pops at the back and other mutators steal from
//! at the front, and the victim cache (what the shard held at the last cycle's start). `get`
//! tries the private slot, the own shared deque, the other shards' shared deques, the own
//! victim, then the other victims. No lock is global to the pool on `get` or `put`: a shard's
//! own locks, and a reader's share of the shard list's lock when stealing.
//!
//! # Rules
//! 1. Everything in a registered pool's shards (private slots, shared and victim deques) is a
//!    root: the collector scans every shard during concurrent marking (`collect` step 3).
//! 2. While marking, `get` and `put` shade the object they move, through the mutator's barrier
//!    buffer (`barrier`): the shard may already have been scanned and the mutator's stack not
//!    yet, or the other way round, and an object moving between the two would otherwise be
//!    seen by neither. So a pooled object is never freed while pooled, and nothing `get` hands
//!    out is freed under the caller (who roots it as any new object).
//! 3. At each cycle's first pause, with the world stopped, every shard's primary contents
//!    (private slot and shared deque) become its victim cache and the old victim is dropped:
//!    O(shards), no work per object (deques are moved, not copied). An object put once and
//!    never taken again is a root for the cycle that moves it to the victim cache and garbage
//!    in the next: an idle pool is empty two cycles later.
//! 4. Lock order: `Heap::pools` → `Pool::shards` → a shard's `shared` → its `victim`. A
//!    mutator holds at most one shard lock at a time, never with another lock of the heap,
//!    and does not park while holding it (the constructor runs with no lock held).
//! 5. A shard outlives its owner's detach: the private object moves to the shared deque for
//!    others to steal, and the shard is dropped at a cycle's start once it is empty.
//! 6. The private slot and the hit and miss counters are written only by the shard's owner
//!    while it runs, and by the collector with the world stopped (rule 3); others only read
//!    them. So the owner updates them with plain atomic loads and stores (no locked
//!    instruction on the fast path).

use crate::heap::Heap;
use crate::misuse;
use crate::mutator::MutatorState;
use crate::object::TypeId;
use crate::sync::lock;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// A pool's constructor: returns a new object of the pool's type (or null).
pub type NewFn = Box<dyn Fn(&MutatorState) -> *mut u8 + Send + Sync>;

/// A pool of objects of one type (the C `tc_pool`).
pub struct Pool {
    heap: &'static Heap,
    ty: TypeId,
    new_fn: Option<NewFn>,
    /// This pool's entry in every mutator's shard table (never reused).
    index: usize,
    shards: RwLock<Vec<Arc<Shard>>>,
    /// Registered in `Heap::pools` (rule 1); false once freed.
    live: AtomicBool,
    /// Hits and misses of the shards dropped so far (rule 5).
    retired_hits: AtomicU64,
    retired_misses: AtomicU64,
}

/// One mutator's part of a pool (module docs).
pub(crate) struct Shard {
    private: AtomicUsize,
    /// The object `get` last handed out here, checked then: a `put` of it skips the check
    /// (the get/put pair's fast path; owner only, rule 6).
    last: AtomicUsize,
    shared: Mutex<VecDeque<usize>>,
    victim: Mutex<Victim>,
    owner_gone: AtomicBool,
    /// `get`s served from the pool, and served by the constructor or not at all.
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Default)]
struct Victim {
    private: usize,
    objects: VecDeque<usize>,
}

/// Adds one to a counter only its owner writes (rule 6).
fn bump(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

/// Counts of a pool's activity (`Pool::stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// `get`s served from the pool (primary or victim).
    pub hits: u64,
    /// `get`s that found the pool empty.
    pub misses: u64,
    /// Objects pooled now, primary and victim.
    pub pooled: u64,
}

/// The heap's registered pools (rule 1), and the next shard-table index.
#[derive(Default)]
pub(crate) struct Pools {
    pools: Vec<Arc<Pool>>,
    next_index: usize,
}

impl Pool {
    /// A pool of objects of type `ty` on `heap`, with an optional constructor; registered
    /// until [`Pool::free`].
    pub fn new(heap: &'static Heap, ty: TypeId, new_fn: Option<NewFn>) -> Arc<Pool> {
        let mut reg = lock(&heap.pools);
        let pool = Arc::new(Pool {
            heap,
            ty,
            new_fn,
            index: reg.next_index,
            shards: RwLock::new(Vec::new()),
            live: AtomicBool::new(true),
            retired_hits: AtomicU64::new(0),
            retired_misses: AtomicU64::new(0),
        });
        reg.next_index += 1;
        reg.pools.push(pool.clone());
        pool
    }

    /// Unregisters the pool: its objects stop being roots. `get` and `put` abort afterwards.
    pub fn free(&self) {
        self.live.store(false, Ordering::Relaxed);
        lock(&self.heap.pools)
            .pools
            .retain(|p| !std::ptr::eq(Arc::as_ptr(p), self));
    }

    /// The type of the pool's objects.
    pub fn type_id(&self) -> TypeId {
        self.ty
    }

    #[inline(always)]
    fn check(&self, m: &MutatorState, op: &str) {
        m.check_attached(op);
        if !std::ptr::eq(m.heap, self.heap) {
            misuse::abort(format_args!(
                "{op}(): pool {self:p} belongs to another heap than mutator {m:p}"
            ));
        }
        if !self.live.load(Ordering::Relaxed) {
            misuse::abort(format_args!("{op}(): pool {self:p} was freed"));
        }
    }

    /// The calling mutator's shard, made on first use.
    #[inline(always)]
    fn shard<'m>(&self, m: &'m MutatorState) -> &'m Shard {
        // SAFETY: `mutator` rule 2: the owner, running; no call below parks.
        if let Some(Some(s)) = unsafe { m.local() }.pools.get(self.index) {
            // SAFETY: as below.
            return unsafe { &*Arc::as_ptr(s) };
        }
        self.new_shard(m)
    }

    #[cold]
    #[inline(never)]
    fn new_shard<'m>(&self, m: &'m MutatorState) -> &'m Shard {
        // SAFETY: `mutator` rule 2: the owner, running; no call below parks.
        let local = unsafe { m.local() };
        if local.pools.len() <= self.index {
            local.pools.resize_with(self.index + 1, || None);
        }
        let slot = &mut local.pools[self.index];
        let shard = slot.get_or_insert_with(|| {
            let s = Arc::new(Shard {
                private: AtomicUsize::new(0),
                last: AtomicUsize::new(0),
                shared: Mutex::new(VecDeque::new()),
                victim: Mutex::new(Victim::default()),
                owner_gone: AtomicBool::new(false),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
            });
            self.shards
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .push(s.clone());
            s
        });
        // SAFETY: the table's `Arc` keeps the shard alive until the mutator detaches, which
        // only its owner does, and not while it holds this reference.
        unsafe { &*Arc::as_ptr(shard) }
    }

    /// A pooled object, else a new one from the constructor, else null (Go's `Pool.Get`).
    pub fn get(&self, m: &MutatorState) -> *mut u8 {
        self.check(m, "pool_get");
        let shard = self.shard(m);
        // Rule 6: the owner is the private slot's and the counters' only writer while it runs:
        // plain loads and stores, no read-modify-write.
        let mut obj = shard.private.load(Ordering::Relaxed);
        if obj != 0 {
            shard.private.store(0, Ordering::Relaxed);
        } else {
            obj = lock(&shard.shared).pop_back().unwrap_or(0);
        }
        if obj == 0 {
            obj = self.get_slow(shard);
        }
        if obj != 0 {
            bump(&shard.hits);
            if self.heap.mark.marking.load(Ordering::Relaxed) {
                m.shade_one(obj);
            }
            shard.last.store(obj, Ordering::Relaxed);
            return obj as *mut u8;
        }
        bump(&shard.misses);
        let Some(f) = &self.new_fn else {
            return std::ptr::null_mut();
        };
        let obj = f(m);
        if !obj.is_null() {
            self.check_object(obj, "pool_get (the constructor's object)");
            // The constructor may have made this mutator's first use of another pool.
            self.shard(m).last.store(obj as usize, Ordering::Relaxed);
        }
        obj
    }

    /// Steals from the other shards' shared deques, then takes from the victims: own first.
    #[cold]
    fn get_slow(&self, own: &Shard) -> usize {
        let shards = self.shards.read().unwrap_or_else(|e| e.into_inner());
        for s in shards.iter() {
            if let Some(v) = lock(&s.shared).pop_front() {
                return v;
            }
        }
        let own_first = std::iter::once(own).chain(shards.iter().map(|s| &**s));
        for s in own_first {
            let mut v = lock(&s.victim);
            if v.private != 0 {
                return std::mem::take(&mut v.private);
            }
            if let Some(o) = v.objects.pop_back() {
                return o;
            }
        }
        0
    }

    /// Gives `obj` back to the pool (Go's `Pool.Put`). Aborts if `obj` is not an object of
    /// the pool's type on this heap.
    ///
    /// # Safety
    /// `obj` is a live object (null is ignored, as Go ignores nil).
    pub unsafe fn put(&self, m: &MutatorState, obj: *mut u8) {
        self.check(m, "pool_put");
        if obj.is_null() {
            return;
        }
        let shard = self.shard(m);
        // What `get` just handed out was checked then (only a use after free, which no check
        // here catches, could make it another object since).
        if shard.last.load(Ordering::Relaxed) != obj as usize {
            self.check_object(obj, "pool_put");
        }
        if self.heap.mark.marking.load(Ordering::Relaxed) {
            m.shade_one(obj as usize);
        }
        if shard.private.load(Ordering::Relaxed) == 0 {
            shard.private.store(obj as usize, Ordering::Relaxed);
        } else {
            lock(&shard.shared).push_back(obj as usize);
        }
    }

    #[cold]
    fn check_object(&self, obj: *mut u8, op: &str) {
        let r = self.heap.object_start(obj, op, "", "the pool's heap");
        if r.ty.id != self.ty {
            let want = self
                .heap
                .type_info(self.ty)
                .map_or("?", |t| t.name.as_str());
            misuse::abort(format_args!(
                "{op}(): {obj:p} is an object of type \"{}\"; the pool holds \"{want}\"",
                r.ty.name
            ));
        }
    }

    /// Hits, misses and the objects pooled now.
    pub fn stats(&self) -> PoolStats {
        let shards = self.shards.read().unwrap_or_else(|e| e.into_inner());
        let mut st = PoolStats {
            hits: self.retired_hits.load(Ordering::Relaxed),
            misses: self.retired_misses.load(Ordering::Relaxed),
            pooled: 0,
        };
        for s in shards.iter() {
            st.hits += s.hits.load(Ordering::Relaxed);
            st.misses += s.misses.load(Ordering::Relaxed);
            st.pooled +=
                (s.private.load(Ordering::Relaxed) != 0) as u64 + lock(&s.shared).len() as u64;
            let v = lock(&s.victim);
            st.pooled += (v.private != 0) as u64 + v.objects.len() as u64;
        }
        st
    }
}

impl Heap {
    /// Rule 3, in the first pause (world stopped): primary contents become the victim cache,
    /// the old victim is dropped; empty shards of detached mutators are dropped.
    pub(crate) fn rotate_pools(&self) {
        let reg = lock(&self.pools);
        for pool in &reg.pools {
            let mut shards = pool.shards.write().unwrap_or_else(|e| e.into_inner());
            for s in shards.iter() {
                let mut shared = lock(&s.shared);
                let mut v = lock(&s.victim);
                v.private = s.private.swap(0, Ordering::Relaxed);
                v.objects = std::mem::take(&mut *shared);
            }
            shards.retain(|s| {
                let keep = !s.owner_gone.load(Ordering::Relaxed) || {
                    let v = lock(&s.victim);
                    v.private != 0 || !v.objects.is_empty()
                };
                if !keep {
                    let (h, m) = (
                        s.hits.load(Ordering::Relaxed),
                        s.misses.load(Ordering::Relaxed),
                    );
                    pool.retired_hits.fetch_add(h, Ordering::Relaxed);
                    pool.retired_misses.fetch_add(m, Ordering::Relaxed);
                }
                keep
            });
        }
    }

    /// Rule 1, during concurrent marking: calls `f` with every pooled object.
    pub(crate) fn each_pooled(&self, mut f: impl FnMut(usize)) {
        let reg = lock(&self.pools);
        for pool in &reg.pools {
            let shards = pool.shards.read().unwrap_or_else(|e| e.into_inner());
            for s in shards.iter() {
                f(s.private.load(Ordering::Relaxed));
                lock(&s.shared).iter().for_each(|&o| f(o));
                let v = lock(&s.victim);
                f(v.private);
                v.objects.iter().for_each(|&o| f(o));
            }
        }
    }
}

/// Rule 5: a detaching mutator's shards. Called by the owner at detach.
pub(crate) fn orphan(shards: &mut Vec<Option<Arc<Shard>>>) {
    for s in shards.drain(..).flatten() {
        let p = s.private.swap(0, Ordering::Relaxed);
        if p != 0 {
            lock(&s.shared).push_back(p);
        }
        s.owner_gone.store(true, Ordering::Relaxed);
    }
}
