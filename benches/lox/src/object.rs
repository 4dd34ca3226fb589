//! Lox objects on the Tricolor heap. This slice has strings: a pointer-free byte object
//! (`Mutator::alloc_bytes`) laid out as a 4-byte length, a 4-byte FNV-1a hash, then the bytes.
//! Strings are interned in a weak table (clox's `vm.strings`, weak as the book's): equal
//! strings are one object, so equality is identity, and an unreachable string leaves the
//! table when the collector clears its weak handle.

use std::collections::HashMap;
use tricolor_gc::{MutatorState, WeakSlot};

/// A reference to a heap object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Obj(pub *mut u8);

const HEADER: usize = 8;

/// FNV-1a, as clox hashes strings.
pub fn hash(bytes: &[u8]) -> u32 {
    let mut h: u32 = 2_166_136_261;
    for &b in bytes {
        h ^= b as u32;
        h = h.wrapping_mul(16_777_619);
    }
    h
}

/// The bytes of string `o`.
///
/// # Safety
/// `o` is a live string object, and stays so while the slice is used.
pub unsafe fn string_bytes<'a>(o: Obj) -> &'a [u8] {
    // SAFETY: the caller's contract; the layout is the module's.
    unsafe {
        let len = (o.0 as *const u32).read() as usize;
        std::slice::from_raw_parts(o.0.add(HEADER), len)
    }
}

/// The interned strings: hash → weak handles to the strings with that hash.
#[derive(Default)]
pub struct Strings {
    table: HashMap<u32, Vec<*mut WeakSlot>>,
}

impl Strings {
    /// The interned string with `bytes`, allocated if there is none. Null if the heap cannot
    /// grow. The result is not rooted: the caller roots it before its next allocation.
    pub fn intern(&mut self, m: &MutatorState, bytes: &[u8]) -> Option<Obj> {
        let h = hash(bytes);
        if let Some(slots) = self.table.get_mut(&h) {
            let mut found = None;
            slots.retain(|&w| {
                // SAFETY: the table's handles are live until freed here.
                let p = unsafe { m.weak_get(w) };
                if p.is_null() {
                    // SAFETY: cleared: the string is gone; the handle is this table's.
                    unsafe { tricolor_gc::raw::weak_free(w) };
                    return false;
                }
                // SAFETY: `p` is a live string (just read through its weak handle, which also
                // keeps it through a marking in progress).
                if found.is_none() && unsafe { string_bytes(Obj(p)) } == bytes {
                    found = Some(Obj(p));
                }
                true
            });
            if found.is_some() {
                return found;
            }
        }
        let len = u32::try_from(bytes.len()).ok()?;
        let p = m.alloc_bytes(HEADER + bytes.len());
        if p.is_null() {
            return None;
        }
        // SAFETY: a fresh object of `HEADER + len` bytes, 8-aligned.
        unsafe {
            (p as *mut u32).write(len);
            (p as *mut u32).add(1).write(h);
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), p.add(HEADER), bytes.len());
        }
        self.table.entry(h).or_default().push(m.weak_new(p));
        Some(Obj(p))
    }

    /// Strings in the table, counting those whose handle the collector has cleared but no
    /// lookup has dropped yet.
    pub fn len(&self) -> usize {
        self.table.values().map(Vec::len).sum()
    }

    /// True when no string is interned.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
