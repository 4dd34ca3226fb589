//! A lock-free table of write-once entries: nonzero `u64` keys to `u64` values below 2^63,
//! in a fixed number of slots probed from a hash of the key (the caching unwinder's rules,
//! `profile::cfi`). Entries are never changed or removed, so a reader needs no lock and
//! a writer only a compare-and-swap.
//!
//! Rules:
//! 1. A slot's key goes from 0 to a key once, by a compare-and-swap, and never changes again:
//!    the thread whose swap succeeded owns the slot's value.
//! 2. Only that thread stores the value, once, after winning the key, with the [`READY`] bit
//!    (Release).
//! 3. A reader uses a slot's value only after loading the slot's key equal to its own
//!    (Acquire) and then the value with the ready bit set (Acquire); otherwise it finds
//!    nothing (a value still being written reads as absent).
//!
//! So a reader finds, for its key, the value put for that key, or nothing. The `loom` model
//! below checks it: two writers racing for one slot with different keys, a reader of both
//! keys.

use crate::sync::{AtomicU64, Ordering};

/// Set in a stored value: the slot's value is written.
const READY: u64 = 1 << 63;
/// Slots probed from a key's hash before giving up.
const PROBES: usize = 8;

struct Slot {
    key: AtomicU64,
    value: AtomicU64,
}

/// Up to `N` entries.
pub(crate) struct WriteOnce<const N: usize> {
    slots: [Slot; N],
}

impl<const N: usize> WriteOnce<N> {
    /// An empty table.
    #[cfg(not(loom))]
    pub(crate) const fn new() -> Self {
        Self {
            slots: [const {
                Slot {
                    key: AtomicU64::new(0),
                    value: AtomicU64::new(0),
                }
            }; N],
        }
    }

    /// An empty table (loom's atomics are not `const`).
    #[cfg(loom)]
    pub(crate) fn new() -> Self {
        Self {
            slots: core::array::from_fn(|_| Slot {
                key: AtomicU64::new(0),
                value: AtomicU64::new(0),
            }),
        }
    }

    /// The slots to probe for `key`.
    fn probe(&self, key: u64) -> impl Iterator<Item = &Slot> {
        let start = (key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize;
        (0..PROBES.min(N)).map(move |i| &self.slots[(start + i) % N])
    }

    /// The value put for `key` (nonzero), if any (rule 3).
    #[inline]
    pub(crate) fn get(&self, key: u64) -> Option<u64> {
        for slot in self.probe(key) {
            match slot.key.load(Ordering::Acquire) {
                0 => return None,
                k if k == key => {
                    let v = slot.value.load(Ordering::Acquire);
                    return (v & READY != 0).then_some(v & !READY);
                }
                _ => {}
            }
        }
        None
    }

    /// Puts `value` (below 2^63) for `key` (nonzero), unless the key has a slot already or no
    /// probed slot is free (rules 1 and 2). True when this call stored it.
    pub(crate) fn put(&self, key: u64, value: u64) -> bool {
        debug_assert!(key != 0 && value & READY == 0);
        for slot in self.probe(key) {
            match slot
                .key
                .compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    slot.value.store(value | READY, Ordering::Release);
                    return true;
                }
                Err(k) if k == key => return false,
                Err(_) => {}
            }
        }
        false
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_their_first_value_and_full_probes_give_up() {
        let t = WriteOnce::<4>::new();
        assert_eq!(t.get(7), None);
        assert!(t.put(7, 70));
        assert!(!t.put(7, 71), "a key is written once");
        assert_eq!(t.get(7), Some(70));
        // Four slots: three more keys fit, a fifth does not.
        for k in 8..11 {
            assert!(t.put(k, k * 10));
        }
        assert!(!t.put(11, 110));
        assert_eq!(t.get(11), None);
        for k in 7..11 {
            assert_eq!(t.get(k), Some(if k == 7 { 70 } else { k * 10 }));
        }
    }
}

#[cfg(all(test, loom))]
mod tests {
    use super::*;
    use loom::sync::Arc;

    /// Two writers race for a table of one slot with different keys; a reader looks both
    /// keys up meanwhile. Whatever the interleaving, the reader finds a key's own value or
    /// nothing, and exactly one writer wins.
    #[test]
    fn readers_find_their_own_keys_value_or_nothing() {
        static FOUND: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        loom::model(|| {
            let t = Arc::new(WriteOnce::<1>::new());
            let writers: Vec<_> = [(1u64, 10u64), (2, 20)]
                .into_iter()
                .map(|(k, v)| {
                    let t = t.clone();
                    loom::thread::spawn(move || t.put(k, v))
                })
                .collect();
            let reader = {
                let t = t.clone();
                loom::thread::spawn(move || {
                    for (k, v) in [(1u64, 10u64), (2, 20)] {
                        match t.get(k) {
                            None => {}
                            Some(got) => {
                                assert_eq!(got, v, "key {k} read another key's value");
                                FOUND.store(true, std::sync::atomic::Ordering::Relaxed);
                            }
                        }
                    }
                })
            };
            reader.join().unwrap();
            let won: usize = writers
                .into_iter()
                .map(|w| w.join().unwrap() as usize)
                .sum();
            assert_eq!(won, 1, "one slot, one winner");
        });
        // Some interleaving must have found a value, or the model proved nothing.
        assert!(FOUND.load(std::sync::atomic::Ordering::Relaxed));
    }
}
