//! An append-only table of records published by a count: writers (serialised by a lock of
//! their own) fill a record, then publish it; readers take no lock (the heap profile's
//! buckets, `profile::buckets`).
//!
//! Rules:
//! 1. Only a writer holding the owner's lock appends; it writes the record completely, stores
//!    its pointer in slot `n` (Relaxed), then stores the count `n + 1` (Release).
//! 2. A reader loads the count (Acquire) and may then read every slot below it, and every
//!    record's fields that rule 1 wrote before publishing, without a lock. Fields changed
//!    after publishing are atomics.
//! 3. Records are never freed or moved, and slots never change once published.
//!
//! The `loom` model below checks rules 1 and 2: a reader racing two appends sees, for every
//! published slot, the record whole.

use crate::sync::{AtomicPtr, AtomicUsize, Ordering};
use core::ptr;

/// Up to `N` published records of `T`.
pub(crate) struct Published<T, const N: usize> {
    slots: [AtomicPtr<T>; N],
    count: AtomicUsize,
}

impl<T, const N: usize> Published<T, N> {
    /// An empty table.
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        Self {
            slots: [const { AtomicPtr::new(ptr::null_mut()) }; N],
            count: AtomicUsize::new(0),
        }
    }

    /// An empty table (loom's atomics are not `const`).
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Self {
            slots: core::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            count: AtomicUsize::new(0),
        }
    }

    /// Records published so far (rule 2: an Acquire load).
    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Publishes `record` (rule 1) and returns its index; `None`, publishing nothing, when
    /// the table is full.
    ///
    /// # Safety
    /// The caller holds the lock that serialises this table's writers, and `record` is a
    /// fully written record that lives, unmoved, for as long as the table (rule 3).
    pub(crate) unsafe fn push(&self, record: *mut T) -> Option<usize> {
        let n = self.count.load(Ordering::Relaxed);
        if n == N {
            return None;
        }
        self.slots[n].store(record, Ordering::Relaxed);
        self.count.store(n + 1, Ordering::Release);
        Some(n)
    }

    /// Record `i`, published (`i` below a [`Published::len`] this thread read).
    pub(crate) fn get(&self, i: usize) -> &T {
        let p = self.slots[i].load(Ordering::Relaxed);
        // Rule 2 broken shows here first (the loom model relies on it to fail cleanly).
        assert!(
            !p.is_null(),
            "publish: slot {i} read before it was published"
        );
        // SAFETY: rule 2: slot `i` was published before the count this thread read passed it,
        // and (rule 3) the record lives as long as the table.
        unsafe { &*p }
    }
}

#[cfg(all(test, loom))]
mod tests {
    use super::*;
    use loom::cell::UnsafeCell;
    use loom::sync::{Arc, Mutex};

    struct Record {
        a: UnsafeCell<u64>,
        b: UnsafeCell<u64>,
    }

    #[test]
    fn readers_see_published_records_whole() {
        // Outside the model: some execution must have seen a published record, or the model
        // proved nothing.
        static SEEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        loom::model(|| {
            let t = Arc::new(Published::<Record, 4>::new());
            let lock = Arc::new(Mutex::new(()));
            let mut writers = Vec::new();
            for k in 1..=2u64 {
                let (t, lock) = (t.clone(), lock.clone());
                writers.push(loom::thread::spawn(move || {
                    let _g = lock.lock().unwrap();
                    let r = Box::into_raw(Box::new(Record {
                        a: UnsafeCell::new(0),
                        b: UnsafeCell::new(0),
                    }));
                    // SAFETY: a fresh record, not yet published: ours alone.
                    unsafe {
                        (*r).a.with_mut(|p| *p = k);
                        (*r).b.with_mut(|p| *p = k * 10);
                    }
                    // SAFETY: the writers' lock is held; the record is leaked (rule 3).
                    unsafe { t.push(r) }.unwrap();
                }));
            }
            let reader = {
                let t = t.clone();
                loom::thread::spawn(move || {
                    let n = t.len();
                    if n > 0 {
                        SEEN.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    for i in 0..n {
                        let r = t.get(i);
                        // SAFETY: rule 2: published, so its fields are written and unchanged.
                        let (a, b) = unsafe { (r.a.with(|p| *p), r.b.with(|p| *p)) };
                        assert!(a == 1 || a == 2, "record {i} seen half written");
                        assert_eq!(b, a * 10);
                    }
                })
            };
            reader.join().unwrap();
            for w in writers {
                w.join().unwrap();
            }
        });
        assert!(SEEN.load(std::sync::atomic::Ordering::Relaxed));
    }
}
