//! The heap's ephemeron index (`Heap::ephemerons`): every table's entries by key address, and
//! each live table's entry count. A data structure below the heap; the marking and sweeping
//! protocol around it is `ephemeron`'s (its rules).
//!
//! Invariant: a table's count equals its entries in `by_key`, give or take the entries a
//! caller is adding or removing under the same lock; a table listed in `tables` is live, and
//! a freed table has no entry left.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Guarded by `Heap::ephemerons`.
#[derive(Default)]
pub(crate) struct EphemeronIndex {
    /// Key → (table id, value) pairs.
    pub(crate) by_key: BTreeMap<usize, Vec<(u64, usize)>>,
    /// Live table id → its entry count (shared with the table, which reads it unlocked).
    tables: HashMap<u64, Arc<AtomicUsize>>,
}

impl EphemeronIndex {
    /// Lists a new table `id` whose entries `len` counts.
    pub(crate) fn add_table(&mut self, id: u64, len: Arc<AtomicUsize>) {
        self.tables.insert(id, len);
    }

    /// Drops table `id` and every entry it has.
    pub(crate) fn remove_table(&mut self, id: u64) {
        self.by_key.retain(|_, es| {
            es.retain(|&(t, _)| t != id);
            !es.is_empty()
        });
        self.tables.remove(&id);
    }

    /// Drops every entry of the keys `dead`, counting each table's loss.
    pub(crate) fn remove_keys(&mut self, dead: impl IntoIterator<Item = usize>) {
        for k in dead {
            for (t, _) in self.by_key.remove(&k).unwrap_or_default() {
                if let Some(len) = self.tables.get(&t) {
                    len.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
    }
}
