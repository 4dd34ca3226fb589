//! The object model: types registered at run time (lib.rs, "Object model").
//!
//! A type is a size and the byte offsets of its pointer slots. Type 0 is reserved for raw
//! pointer-free bytes; every type without pointer slots is allocated like bytes (noscan). An
//! array of a type is `len` copies laid end to end, so one pointer map serves single objects
//! and arrays: the marker scans `slot_size / type_size` copies, and the rounding tail of a
//! slot is zero (objects are zeroed whole), so scanning it finds only nulls.
//!
//! Invariant: a `TypeInfo` is never freed or changed once registered (registries leak their
//! entries with the heap, which lives for the process), so spans and caches hold
//! `&'static TypeInfo`.

use std::sync::Mutex;

/// A registered type's number (the C `tc_type`). 0 is raw bytes.
pub type TypeId = u32;

/// The reserved type of pointer-free byte objects.
pub const BYTES: TypeId = 0;

/// What the marker needs to know about a type.
#[derive(Debug)]
pub struct TypeInfo {
    /// Its number in its heap's registry.
    pub id: TypeId,
    /// The name given at registration, for messages.
    pub name: String,
    /// Bytes per object (per element of an array).
    pub size: usize,
    /// Word indexes of the pointer slots, ascending.
    pub(crate) words: Box<[u32]>,
    /// The same slots as a bitmap, bit `w` for word `w`: `write` checks a store with one bit.
    pointer_bits: Box<[u64]>,
}

impl TypeInfo {
    fn new(id: TypeId, name: &str, size: usize, words: Box<[u32]>) -> Self {
        let mut pointer_bits = vec![0u64; size.div_ceil(8).div_ceil(64)];
        for &w in words.iter() {
            pointer_bits[w as usize / 64] |= 1 << (w % 64);
        }
        Self {
            id,
            name: name.into(),
            size,
            words,
            pointer_bits: pointer_bits.into_boxed_slice(),
        }
    }

    /// True when byte `offset` of an object of this type (below `size`) is a pointer slot.
    #[inline]
    pub(crate) fn is_pointer_slot(&self, offset: usize) -> bool {
        let w = offset / 8;
        offset % 8 == 0
            && self
                .pointer_bits
                .get(w / 64)
                .is_some_and(|bits| bits & (1 << (w % 64)) != 0)
    }

    /// True when objects of this type hold no pointers and are never scanned.
    pub fn noscan(&self) -> bool {
        self.words.is_empty()
    }
}

/// Why a type cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeError {
    /// Size zero.
    ZeroSize,
    /// An offset that is not a multiple of 8 or does not leave room for a pointer.
    BadOffset(usize),
    /// The same offset twice.
    Duplicate(usize),
    /// More than `u32::MAX` types.
    TooMany,
}

impl std::fmt::Display for TypeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ZeroSize => write!(f, "size 0"),
            Self::BadOffset(o) => write!(
                f,
                "pointer offset {o} is not 8-aligned or runs past the object's end"
            ),
            Self::Duplicate(o) => write!(f, "pointer offset {o} given twice"),
            Self::TooMany => write!(f, "too many types"),
        }
    }
}

/// A heap's types, indexed by id. Guarded by its mutex; entries are leaked (module docs).
pub(crate) struct Registry {
    types: Mutex<Vec<&'static TypeInfo>>,
}

impl Registry {
    pub(crate) fn new() -> Self {
        let bytes: &'static TypeInfo =
            Box::leak(Box::new(TypeInfo::new(BYTES, "bytes", 1, Box::new([]))));
        Self {
            types: Mutex::new(vec![bytes]),
        }
    }

    /// Registers a type: `size` bytes with pointer slots at byte `offsets`.
    pub(crate) fn register(
        &self,
        name: &str,
        size: usize,
        offsets: &[usize],
    ) -> Result<&'static TypeInfo, TypeError> {
        let words = check_layout(size, offsets)?;
        let mut types = self.types.lock().unwrap_or_else(|e| e.into_inner());
        let id = TypeId::try_from(types.len()).map_err(|_| TypeError::TooMany)?;
        let info: &'static TypeInfo = Box::leak(Box::new(TypeInfo::new(id, name, size, words)));
        types.push(info);
        Ok(info)
    }

    /// The type numbered `id`, if registered.
    pub(crate) fn get(&self, id: TypeId) -> Option<&'static TypeInfo> {
        let types = self.types.lock().unwrap_or_else(|e| e.into_inner());
        types.get(id as usize).copied()
    }
}

/// Validates a layout and returns its pointer words, sorted.
fn check_layout(size: usize, offsets: &[usize]) -> Result<Box<[u32]>, TypeError> {
    if size == 0 {
        return Err(TypeError::ZeroSize);
    }
    let mut words = Vec::with_capacity(offsets.len());
    for &o in offsets {
        if o % 8 != 0 || o.checked_add(8).is_none_or(|end| end > size) || o / 8 > u32::MAX as usize
        {
            return Err(TypeError::BadOffset(o));
        }
        words.push((o / 8) as u32);
    }
    words.sort_unstable();
    if let Some(w) = words.windows(2).find(|w| w[0] == w[1]) {
        return Err(TypeError::Duplicate(w[0] as usize * 8));
    }
    Ok(words.into_boxed_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointer_slots_are_exactly_the_declared_offsets() {
        let r = Registry::new();
        let t = r.register("t", 24 + 64 * 8, &[0, 16, 24 + 63 * 8]).unwrap();
        let slots: Vec<usize> = (0..t.size).filter(|&o| t.is_pointer_slot(o)).collect();
        assert_eq!(slots, [0, 16, 24 + 63 * 8]);
        assert!(!t.is_pointer_slot(t.size), "past the end");
        let bytes = r.get(BYTES).unwrap();
        assert!(!bytes.is_pointer_slot(0));
    }

    #[test]
    fn layouts_are_checked() {
        let r = Registry::new();
        assert_eq!(r.register("z", 0, &[]).unwrap_err(), TypeError::ZeroSize);
        assert_eq!(
            r.register("a", 16, &[4]).unwrap_err(),
            TypeError::BadOffset(4)
        );
        assert_eq!(
            r.register("b", 16, &[16]).unwrap_err(),
            TypeError::BadOffset(16)
        );
        assert_eq!(
            r.register("c", 12, &[8]).unwrap_err(),
            TypeError::BadOffset(8)
        );
        assert_eq!(
            r.register("d", 24, &[8, 0, 8]).unwrap_err(),
            TypeError::Duplicate(8)
        );
        let t = r.register("node", 24, &[16, 0]).unwrap();
        assert_eq!(t.id, 1);
        assert_eq!(&*t.words, &[0, 2]);
        assert!(!t.noscan());
        let leaf = r.register("leaf", 5, &[]).unwrap();
        assert!(leaf.noscan());
        assert_eq!(r.get(2).unwrap().name, "leaf");
        assert!(r.get(3).is_none());
        assert!(r.get(BYTES).unwrap().noscan());
    }
}
