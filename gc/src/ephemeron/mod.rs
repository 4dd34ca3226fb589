//! Ephemeron tables (beyond Go; JavaScript's `WeakMap`, Lua's weak-keyed tables): a table
//! maps keys to values, and an entry keeps its value alive only while its key is reachable by
//! other paths. A value that points back to its key does not keep the key (or itself) alive.
//!
//! Entries live in one index per heap (`Heap::ephemerons`, by key address: `index`), not in
//! objects, and are not roots. Instead of a fixpoint over every entry at mark termination (a pause as long
//! as the tables), marking is incremental: when a marker marks an object, and that object's
//! span holds keys, it marks the object's values too. So when marking ends every entry with a
//! marked key has a marked value, and the pause does no ephemeron work.
//!
//! # Rules
//! 1. A span's `has_keys` is set (before the entry is visible in the index) when one of its
//!    objects becomes a key, and cleared only when the span's record is reused.
//! 2. A marker that newly marks an object in a span with `has_keys` marks every value of that
//!    key (`Marker::mark`), taking the index lock only to copy them out.
//! 3. While marking, `get` shades the value it returns, through the barrier buffer: a value
//!    taken and its entry then removed before its key is marked would otherwise be seen by no
//!    scan. `set` shades its key and value too, which the hybrid barrier's snapshot already
//!    covers (anything a mutator can hand to `set` while marking was reachable at the cycle's
//!    start, or is new and black): a defence, which no test can make fail.
//! 4. The sweep that finds a key unmarked removes its entries, before it resurrects anything
//!    for a finalizer (`sweep::sweep_claimed`, `Central::queue_sweep`): an entry never outlives
//!    its key's death, and its value, unmarked, is freed by the same sweep unless reachable
//!    otherwise.
//! 5. Lock order: `ephemerons` is a leaf (taken after `central`, `roots`, `pools` and
//!    `finals`); nothing is marked while it is held.

pub(crate) mod index;

use index::EphemeronIndex;

use crate::heap::Heap;
use crate::misuse;
use crate::mutator::MutatorState;
use crate::span::GcSpan;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, MutexGuard};

/// An ephemeron table (the C `tc_ephemeron_table`).
pub struct EphemeronTable {
    heap: &'static Heap,
    id: u64,
    len: Arc<AtomicUsize>,
    live: AtomicBool,
}

static NEXT_TABLE: AtomicU64 = AtomicU64::new(1);

impl Heap {
    fn eph_lock(&self) -> MutexGuard<'_, EphemeronIndex> {
        self.ephemerons.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rule 2: the values of key `obj` (just marked), for the marker to mark.
    pub(crate) fn ephemeron_values(&self, obj: usize, out: &mut Vec<usize>) {
        if let Some(entries) = self.eph_lock().by_key.get(&obj) {
            out.extend(entries.iter().map(|&(_, v)| v));
        }
    }

    /// Rule 4, in the sweep of span `r` (its mark bits still this cycle's).
    pub(crate) fn sweep_ephemerons(&self, r: &GcSpan) {
        if !r.has_keys.load(Ordering::Acquire) {
            return;
        }
        let mut idx = self.eph_lock();
        let end = r.start + r.nelems as usize * r.size;
        let dead: Vec<usize> = idx
            .by_key
            .range(r.start..end)
            .filter(|&(&k, _)| r.index_of(k).is_some_and(|i| !r.is_marked(i)))
            .map(|(&k, _)| k)
            .collect();
        idx.remove_keys(dead);
    }
}

impl EphemeronTable {
    /// An empty table on `heap`, until [`EphemeronTable::free`].
    pub fn new(heap: &'static Heap) -> Arc<EphemeronTable> {
        let t = Arc::new(EphemeronTable {
            heap,
            id: NEXT_TABLE.fetch_add(1, Ordering::Relaxed),
            len: Arc::new(AtomicUsize::new(0)),
            live: AtomicBool::new(true),
        });
        heap.eph_lock().add_table(t.id, t.len.clone());
        t
    }

    /// Removes every entry: the table keeps nothing alive any more; later use aborts.
    pub fn free(&self) {
        self.live.store(false, Ordering::Relaxed);
        self.heap.eph_lock().remove_table(self.id);
    }

    /// Entries now (those whose key died are gone once the sweep has reached them).
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// True when the table has no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn check(&self, m: &MutatorState, op: &str) {
        m.check_attached(op);
        if !std::ptr::eq(m.heap, self.heap) {
            misuse::abort(format_args!(
                "{op}(): table {self:p} belongs to another heap than mutator {m:p}"
            ));
        }
        if !self.live.load(Ordering::Relaxed) {
            misuse::abort(format_args!("{op}(): table {self:p} was freed"));
        }
    }

    /// Maps `key` to `value` (null removes the entry). Aborts if either is not an object of
    /// this heap.
    pub fn set(&self, m: &MutatorState, key: *mut u8, value: *mut u8) {
        self.check(m, "ephemeron_set");
        if value.is_null() {
            self.remove(m, key);
            return;
        }
        let r = self
            .heap
            .object_start(key, "ephemeron_set", "key ", "this heap");
        if !m.is_object(value) {
            misuse::abort(format_args!(
                "ephemeron_set(): value {value:p} is not an object of this heap"
            ));
        }
        if self.heap.mark.marking.load(Ordering::Relaxed) {
            m.shade_one(key as usize);
            m.shade_one(value as usize);
        }
        r.has_keys.store(true, Ordering::Release);
        let mut idx = self.heap.eph_lock();
        let entries = idx.by_key.entry(key as usize).or_default();
        match entries.iter_mut().find(|(t, _)| *t == self.id) {
            Some(e) => e.1 = value as usize,
            None => {
                entries.push((self.id, value as usize));
                self.len.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The value of `key`, or null.
    pub fn get(&self, m: &MutatorState, key: *mut u8) -> *mut u8 {
        self.check(m, "ephemeron_get");
        let v = {
            let idx = self.heap.eph_lock();
            idx.by_key
                .get(&(key as usize))
                .and_then(|es| es.iter().find(|(t, _)| *t == self.id))
                .map_or(0, |&(_, v)| v)
        };
        if v != 0 && self.heap.mark.marking.load(Ordering::Relaxed) {
            m.shade_one(v);
        }
        v as *mut u8
    }

    /// Removes `key`'s entry; true if there was one.
    pub fn remove(&self, m: &MutatorState, key: *mut u8) -> bool {
        self.check(m, "ephemeron_remove");
        let mut idx = self.heap.eph_lock();
        let Some(es) = idx.by_key.get_mut(&(key as usize)) else {
            return false;
        };
        let before = es.len();
        es.retain(|(t, _)| *t != self.id);
        let removed = es.len() != before;
        if es.is_empty() {
            idx.by_key.remove(&(key as usize));
        }
        if removed {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }
}
