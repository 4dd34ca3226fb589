//! Hash tables on the Tricolor heap (clox's `table.c`): string keys (interned, so compared by
//! address) to values, open addressing with linear probing, growing at 75% load. A table's
//! header (count, capacity, entries) is embedded in its owner (an instance's fields, a class's
//! methods, the globals object); the entries are an array of [`Entry`] objects whose key and
//! value pointer words are pointer slots, written through the barrier. Lox never deletes
//! from these tables, so there are no tombstones.

use crate::object::{HeapValue, Obj};
use crate::value::Value;
use tricolor_gc::{MutatorState, TypeId};

/// One slot of a table's entry array.
#[repr(C)]
pub struct Entry {
    key: *mut u8,
    value: HeapValue,
}

/// A table's header, inside its owner object.
#[repr(C)]
pub struct TableHeader {
    count: u32,
    capacity: u32,
    entries: *mut u8,
}

/// The hash a string stores (`object`'s layout: at byte 8).
fn hash_of(key: Obj) -> u32 {
    // SAFETY: keys are live strings (the callers').
    unsafe { (key.0 as *const u32).add(2).read() }
}

/// The entry for `key` in `entries` of `capacity` (a power of two, not full): its own, or
/// the empty one where it would go.
///
/// # Safety
/// `entries` holds `capacity` entries.
unsafe fn find(entries: *mut Entry, capacity: u32, key: Obj) -> *mut Entry {
    let mask = capacity - 1;
    let mut i = hash_of(key) & mask;
    loop {
        // SAFETY: `i < capacity`.
        let e = unsafe { entries.add(i as usize) };
        // SAFETY: as above.
        let k = unsafe { (*e).key };
        if k == key.0 || k.is_null() {
            return e;
        }
        i = (i + 1) & mask;
    }
}

impl TableHeader {
    /// The value of `key`, if present.
    ///
    /// # Safety
    /// The header is inside a live object.
    pub unsafe fn get(&self, key: Obj) -> Option<Value> {
        if self.count == 0 {
            return None;
        }
        // SAFETY: the header's array holds `capacity` entries.
        let e = unsafe { &*find(self.entries as *mut Entry, self.capacity, key) };
        (!e.key.is_null()).then(|| e.value.get())
    }

    /// Entries in use.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// True when the table is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Calls `f` with every (key, value).
    ///
    /// # Safety
    /// The header is inside a live object; `f` does not allocate.
    pub unsafe fn each(&self, mut f: impl FnMut(Obj, Value)) {
        for i in 0..self.capacity as usize {
            // SAFETY: `i < capacity`.
            let e = unsafe { &*(self.entries as *const Entry).add(i) };
            if !e.key.is_null() {
                f(Obj(e.key), e.value.get());
            }
        }
    }
}

/// Sets the value of `key`, if present, in the table whose header is at `t`, without
/// allocating: Lox's assignment to a global, one lookup. False if `key` is absent.
///
/// # Safety
/// `t` is the header of a table inside a live object; `v`'s object, if any, is live.
pub unsafe fn replace(m: &MutatorState, t: *mut TableHeader, key: Obj, v: Value) -> bool {
    // SAFETY: the caller's contract for every access to `*t` below.
    unsafe {
        if (*t).count == 0 {
            return false;
        }
        let arr = (*t).entries;
        let e = find(arr as *mut Entry, (*t).capacity, key);
        if (*e).key.is_null() {
            return false;
        }
        HeapValue::set(m, Obj(arr), &raw mut (*e).value, v);
        true
    }
}

/// Sets `key` to `v` in the table whose header is at `t` inside object `owner`; true if the
/// key is new. Grows the entry array first when needed (an allocation: `owner`, `key` and `v`
/// must be rooted by the caller). `None` if the heap cannot grow.
///
/// # Safety
/// `t` is the header of a table inside the live object `owner`; `entry_ty` is the entry type.
pub unsafe fn set(
    m: &MutatorState,
    entry_ty: TypeId,
    owner: Obj,
    t: *mut TableHeader,
    key: Obj,
    v: Value,
) -> Option<bool> {
    // SAFETY: the caller's contract for every access to `*t` below.
    unsafe {
        if ((*t).count + 1) as usize * 4 > (*t).capacity as usize * 3 {
            grow(m, entry_ty, owner, t)?;
        }
        let arr = (*t).entries;
        let e = find(arr as *mut Entry, (*t).capacity, key);
        let new = (*e).key.is_null();
        if new {
            (*t).count += 1;
            // `key` is an entry's pointer slot (`object`'s layout rule); the key is live.
            m.write_unchecked(arr, &raw mut (*e).key, key.0);
        }
        HeapValue::set(m, Obj(arr), &raw mut (*e).value, v);
        Some(new)
    }
}

/// Doubles the entry array (at least 8), rehashing into the new one.
///
/// # Safety
/// As for [`set`].
unsafe fn grow(m: &MutatorState, entry_ty: TypeId, owner: Obj, t: *mut TableHeader) -> Option<()> {
    // SAFETY: the caller's contract.
    let old_cap = unsafe { (*t).capacity };
    let cap = (old_cap * 2).max(8);
    let new = m.alloc_array(entry_ty, cap as usize);
    if new.is_null() {
        return None;
    }
    // SAFETY: `new` is a fresh array of `cap` zeroed entries; the old one is still reachable
    // through the owner until replaced below, and nothing here allocates.
    unsafe {
        let old = (*t).entries as *const Entry;
        for i in 0..old_cap as usize {
            let e = &*old.add(i);
            if e.key.is_null() {
                continue;
            }
            let d = find(new as *mut Entry, cap, Obj(e.key));
            m.write(new, &raw mut (*d).key, e.key);
            HeapValue::set(m, Obj(new), &raw mut (*d).value, e.value.get());
        }
        (*t).capacity = cap;
        m.write(owner.0, &raw mut (*t).entries, new);
    }
    Some(())
}
