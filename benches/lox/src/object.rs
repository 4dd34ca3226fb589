//! Lox objects on the Tricolor heap.
//!
//! Every object starts with a word whose low byte is its [`Kind`] (clox's `Obj` header). A
//! string is a pointer-free byte object: the kind word (with the length in its high half), the
//! FNV-1a hash, then the bytes. The others are typed objects whose pointer slots the collector
//! scans: a value inside an object is two words, the number or tag bits and a pointer slot that
//! is null unless the value is an object ([`HeapValue`]), so the marker never reads a double as
//! a pointer. Every pointer store into an object goes through the write barrier.
//!
//! Layout rule (what `MutatorState::write_unchecked` relies on): every pointer field of the
//! structs here, and the pointer word of every [`HeapValue`], is a pointer slot that
//! [`Types::register`] declares for its type, and the VM stores into it only null or a live
//! object of its own heap. The interpreter's stores use `write_unchecked` (the checked
//! `write` costs 14% of the method-call benchmark's instructions); the compiler's one-off
//! stores use `write`. The stress mode turns heap verification on, under which
//! `write_unchecked` makes every check `write` makes, so the corpus run under it checks
//! each of these stores.
//!
//! Strings are interned in a weak table (clox's `vm.strings`, weak as the book's): equal
//! strings are one object, so equality is identity, and an unreachable string leaves the
//! table when the collector clears its weak handle.

use crate::table::TableHeader;
use crate::value::Value;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use tricolor_gc::{Heap, MutatorState, TypeId, WeakSlot};

/// A reference to a heap object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Obj(pub *mut u8);

/// What an object is (its first word's low byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// A string.
    String = 1,
    /// A compiled function.
    Function = 2,
    /// A function with its captured variables.
    Closure = 3,
    /// A captured variable.
    Upvalue = 4,
    /// A function written in Rust.
    Native = 5,
    /// A class.
    Class = 6,
    /// An instance of a class.
    Instance = 7,
    /// A method bound to its receiver.
    BoundMethod = 8,
    /// The globals' table.
    Globals = 9,
}

const STRING_HEADER: usize = 16;

/// The registered object types of a VM's heap.
#[derive(Clone, Copy)]
pub struct Types {
    /// A [`HeapValue`] (arrays of them hold constants).
    pub value: TypeId,
    /// One pointer slot (arrays of them hold a closure's upvalues).
    pub reference: TypeId,
    /// [`Function`].
    pub function: TypeId,
    /// [`Closure`].
    pub closure: TypeId,
    /// [`Upvalue`].
    pub upvalue: TypeId,
    /// [`Native`].
    pub native: TypeId,
    /// A table entry (`table::Entry`; arrays of them are tables' storage).
    pub entry: TypeId,
    /// [`Class`].
    pub class: TypeId,
    /// [`Instance`].
    pub instance: TypeId,
    /// [`BoundMethod`].
    pub bound: TypeId,
    /// [`Globals`].
    pub globals: TypeId,
}

impl Types {
    /// Registers the types on `heap`.
    pub fn register(heap: &Heap) -> Types {
        let t = |name: &str, size: usize, ptrs: &[usize]| {
            heap.register_type(name, size, ptrs)
                .expect("the layouts are valid")
        };
        Types {
            value: t("lox value", 16, &[8]),
            reference: t("lox ref", 8, &[0]),
            function: t("lox function", 56, &[8, 16, 24, 32]),
            closure: t("lox closure", 32, &[8, 16]),
            upvalue: t("lox upvalue", 40, &[16, 24]),
            native: t("lox native", 16, &[]),
            entry: t("lox entry", 24, &[0, 16]),
            class: t("lox class", 40, &[8, 24, 32]),
            instance: t("lox instance", 32, &[8, 24]),
            bound: t("lox bound method", 32, &[16, 24]),
            globals: t("lox globals", 24, &[16]),
        }
    }
}

/// A value inside an object: the bits (a number, or a tag) and a pointer slot.
#[repr(C)]
pub struct HeapValue {
    bits: u64,
    obj: *mut u8,
}

const NIL: u64 = 0x7ffc_0000_0000_0001;
const FALSE: u64 = 0x7ffc_0000_0000_0002;
const TRUE: u64 = 0x7ffc_0000_0000_0003;

impl HeapValue {
    /// Reads the value.
    pub fn get(&self) -> Value {
        if !self.obj.is_null() {
            return Value::Obj(Obj(self.obj));
        }
        match self.bits {
            NIL => Value::Nil,
            FALSE => Value::Bool(false),
            TRUE => Value::Bool(true),
            b => Value::Number(f64::from_bits(b)),
        }
    }

    /// Stores `v` into the `HeapValue` at `slot`, inside object `owner`, through the barrier.
    ///
    /// # Safety
    /// `slot` is a `HeapValue` field (or array element) of the live object `owner`.
    pub unsafe fn set(m: &MutatorState, owner: Obj, slot: *mut HeapValue, v: Value) {
        let (bits, obj) = match v {
            Value::Nil => (NIL, std::ptr::null_mut()),
            Value::Bool(false) => (FALSE, std::ptr::null_mut()),
            Value::Bool(true) => (TRUE, std::ptr::null_mut()),
            Value::Number(n) => (n.to_bits(), std::ptr::null_mut()),
            Value::Obj(o) => (0, o.0),
        };
        // SAFETY: the caller's contract: the slot is inside the live `owner`; its pointer word
        // is a declared pointer slot (the layout rule); `obj` is null or the value's live object.
        unsafe {
            (*slot).bits = bits;
            m.write_unchecked(owner.0, &raw mut (*slot).obj, obj);
        }
    }
}

/// A compiled function. `code`, `lines` and `constants` are set once, when the compiler
/// finishes the function.
#[repr(C)]
pub struct Function {
    kind: u64,
    /// Its name, a string; null for the top-level script.
    pub name: *mut u8,
    /// `const_len` [`HeapValue`]s.
    pub constants: *mut u8,
    /// `code_len` bytes of bytecode.
    pub code: *mut u8,
    /// A `u32` line per byte of code.
    pub lines: *mut u8,
    /// Parameters.
    pub arity: u32,
    /// Captured variables.
    pub upvalue_count: u32,
    /// Bytes of code.
    pub code_len: u32,
    /// Constants.
    pub const_len: u32,
}

/// A function and its captured variables.
#[repr(C)]
pub struct Closure {
    kind: u64,
    /// The [`Function`].
    pub function: *mut u8,
    /// An array of `count` references to [`Upvalue`]s.
    pub upvalues: *mut u8,
    /// Upvalues.
    pub count: u64,
}

/// A captured variable: open (`location` is a stack slot) or closed (its value is `closed`).
#[repr(C)]
pub struct Upvalue {
    kind: u64,
    /// The value, once closed.
    pub closed: HeapValue,
    /// The next open upvalue, by stack slot, downwards.
    pub next: *mut u8,
    /// The stack slot while open; -1 once closed.
    pub location: i64,
}

/// A native function: an index into the VM's natives.
#[repr(C)]
pub struct Native {
    kind: u64,
    /// Which native.
    pub id: u64,
}

/// A class: its name and methods.
#[repr(C)]
pub struct Class {
    kind: u64,
    /// Its name, a string.
    pub name: *mut u8,
    /// Method name → closure.
    pub methods: TableHeader,
    /// Its `init` method (a closure, also in `methods`), or null: a call of the class does
    /// not look it up by name (the book's "initializer" optimisation).
    pub init: *mut u8,
}

/// An instance: its class and fields.
#[repr(C)]
pub struct Instance {
    kind: u64,
    /// Its [`Class`].
    pub class: *mut u8,
    /// Field name → value.
    pub fields: TableHeader,
}

/// A method (a closure) bound to its receiver.
#[repr(C)]
pub struct BoundMethod {
    kind: u64,
    /// The instance it is bound to.
    pub receiver: HeapValue,
    /// The closure.
    pub method: *mut u8,
}

/// The global variables.
#[repr(C)]
pub struct Globals {
    kind: u64,
    /// Name → value.
    pub table: TableHeader,
}

/// The kind of object `o`.
pub fn kind(o: Obj) -> Kind {
    // SAFETY: every object begins with its kind word (module docs); `o` is live.
    match unsafe { (o.0 as *const u8).read() } {
        1 => Kind::String,
        2 => Kind::Function,
        3 => Kind::Closure,
        4 => Kind::Upvalue,
        5 => Kind::Native,
        6 => Kind::Class,
        7 => Kind::Instance,
        8 => Kind::BoundMethod,
        _ => Kind::Globals,
    }
}

/// Allocates a typed object of `ty` and writes its kind word; null if the heap cannot grow.
pub fn alloc(m: &MutatorState, ty: TypeId, k: Kind) -> Option<Obj> {
    let p = m.alloc(ty);
    if p.is_null() {
        return None;
    }
    // SAFETY: a fresh, zeroed object of at least one word.
    unsafe { (p as *mut u64).write(k as u64) };
    Some(Obj(p))
}

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
        let len = ((o.0 as *const u64).read() >> 32) as usize;
        std::slice::from_raw_parts(o.0.add(STRING_HEADER), len)
    }
}

/// The interned strings: hash → weak handles to the strings with that hash.
#[derive(Default)]
pub struct Strings {
    table: HashMap<u32, Vec<*mut WeakSlot>, BuildHasherDefault<StringHash>>,
}

/// The table's hasher: the key is already the string's FNV-1a hash, so it is used as it is
/// (with std's default SipHash in its place, hashing takes a fifth of the string-equality
/// benchmark's time: `string_equality` in `tricolor bench --lox`).
#[derive(Default)]
struct StringHash(u64);

impl Hasher for StringHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u32` is used (the key is a `u32`); fold anything else in all the same.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ b as u64;
        }
    }

    fn write_u32(&mut self, h: u32) {
        // Spread into the high bits too: hashbrown takes its 7-bit tags from the top.
        self.0 = (h as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

impl Strings {
    /// The interned string with `bytes`, allocated if there is none. `None` if the heap cannot
    /// grow. The result is not rooted: the caller roots it before its next allocation.
    pub fn intern(&mut self, m: &MutatorState, bytes: &[u8]) -> Option<Obj> {
        let h = hash(bytes);
        if let Some(slots) = self.table.get_mut(&h) {
            let mut i = 0;
            while i < slots.len() {
                let w = slots[i];
                // SAFETY: the table's handles are live until freed here.
                let p = unsafe { m.weak_get(w) };
                if p.is_null() {
                    // SAFETY: cleared: the string is gone; the handle is this table's.
                    unsafe { tricolor_gc::raw::weak_free(w) };
                    slots.swap_remove(i);
                    continue;
                }
                // SAFETY: `p` is a live string (just read through its weak handle, which also
                // keeps it through a marking in progress).
                if unsafe { string_bytes(Obj(p)) } == bytes {
                    return Some(Obj(p));
                }
                i += 1;
            }
        }
        let len = u32::try_from(bytes.len()).ok()?;
        let p = m.alloc_bytes(STRING_HEADER + bytes.len());
        if p.is_null() {
            return None;
        }
        // SAFETY: a fresh object of `STRING_HEADER + len` bytes, 8-aligned.
        unsafe {
            (p as *mut u64).write(Kind::String as u64 | (len as u64) << 32);
            (p as *mut u32).add(2).write(h);
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), p.add(STRING_HEADER), bytes.len());
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
