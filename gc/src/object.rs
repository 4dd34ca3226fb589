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
    /// `words` is sorted. The bitmap reaches the last pointer word only (a lookup past it finds
    /// no slot): its size follows the pointer offsets, which the caller's own array bounds, not
    /// the type's size, which may be far larger than any allocation of ours can be. `None`
    /// when there is no memory for it or the name's copy.
    fn new(id: TypeId, name: &str, size: usize, words: Box<[u32]>) -> Option<Self> {
        let len = words.last().map_or(0, |&w| w as usize / 64 + 1);
        let mut pointer_bits = Vec::new();
        pointer_bits.try_reserve_exact(len).ok()?;
        pointer_bits.resize(len, 0u64);
        for &w in words.iter() {
            pointer_bits[w as usize / 64] |= 1 << (w % 64);
        }
        let mut owned_name = String::new();
        owned_name.try_reserve_exact(name.len()).ok()?;
        owned_name.push_str(name);
        Some(Self {
            id,
            name: owned_name,
            size,
            words,
            pointer_bits: pointer_bits.into_boxed_slice(),
        })
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
    /// A size above `MAX_TYPE_SIZE`: no object of it, or array of one, can be allocated.
    TooLarge(usize),
    /// An offset that is not a multiple of 8 or does not leave room for a pointer.
    BadOffset(usize),
    /// The same offset twice.
    Duplicate(usize),
    /// An offset beyond `MAX_POINTER_OFFSET`.
    OffsetTooLarge(usize),
    /// More than `u32::MAX` types.
    TooMany,
    /// No memory for the type's record (its pointer map, its name).
    NoMemory,
}

/// The largest size a type may have, one byte below 2^47. The page heap maps objects into the
/// 47-bit user address space of x86-64 and aarch64 Linux (the allocator's pagemap and the
/// collector's span map cover no more), which also holds the program itself, so no object of
/// 2^47 bytes or more, nor an array of one such element, can ever be allocated. Refusing such
/// a size when the type is registered names the type in the message, and keeps the size
/// arithmetic far from overflow: `size * len` of an array is checked, and a size below 2^47
/// rounds up to whole pages without overflowing.
pub const MAX_TYPE_SIZE: usize = (1 << tricolor_alloc::size_class::ADDRESS_BITS) - 1;

/// The largest pointer offset a type may have: pointer maps number words with `u32`.
pub const MAX_POINTER_OFFSET: usize = u32::MAX as usize * 8;

impl std::fmt::Display for TypeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ZeroSize => write!(f, "size 0"),
            Self::TooLarge(n) => write!(
                f,
                "size {n} is larger than any object can be (at most {MAX_TYPE_SIZE} bytes: \
                 the heap maps the 47-bit user address space)"
            ),
            Self::BadOffset(o) => write!(
                f,
                "pointer offset {o} is not 8-aligned or runs past the object's end"
            ),
            Self::Duplicate(o) => write!(f, "pointer offset {o} given twice"),
            Self::OffsetTooLarge(o) => write!(
                f,
                "pointer offset {o} is beyond the largest a pointer map holds \
                 ({MAX_POINTER_OFFSET})"
            ),
            Self::TooMany => write!(f, "too many types"),
            Self::NoMemory => write!(f, "out of memory for its record (pointer map, name)"),
        }
    }
}

/// A heap's types, indexed by id. Guarded by its mutex; entries are leaked (module docs).
pub(crate) struct Registry {
    types: Mutex<Vec<&'static TypeInfo>>,
}

impl Registry {
    pub(crate) fn new() -> Self {
        // No pointer words: no bitmap to allocate, so `new` cannot fail.
        let bytes = TypeInfo::new(BYTES, "bytes", 1, Box::new([])).expect("an empty pointer map");
        let bytes: &'static TypeInfo = Box::leak(Box::new(bytes));
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
        types.try_reserve(1).map_err(|_| TypeError::NoMemory)?;
        let info = TypeInfo::new(id, name, size, words).ok_or(TypeError::NoMemory)?;
        let info: &'static TypeInfo = Box::leak(Box::new(info));
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
    if size > MAX_TYPE_SIZE {
        return Err(TypeError::TooLarge(size));
    }
    let mut words = Vec::new();
    words
        .try_reserve_exact(offsets.len())
        .map_err(|_| TypeError::NoMemory)?;
    for &o in offsets {
        if o % 8 != 0 || o.checked_add(8).is_none_or(|end| end > size) {
            return Err(TypeError::BadOffset(o));
        }
        if o > MAX_POINTER_OFFSET {
            return Err(TypeError::OffsetTooLarge(o));
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
