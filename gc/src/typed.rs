//! The safe typed layer over the raw one (`MutatorState`'s operations and the `raw` module,
//! whose rules are the crate docs' "What embedders must do").
//!
//! * A Rust type becomes a GC type with the [`object!`](crate::object!) macro, which defines
//!   the struct and derives its pointer map: fields of type [`Member<T>`] are pointer slots,
//!   every other field must be [`Data`] (pointer-free). Objects are never dropped (the
//!   collector frees memory, it runs no destructors), so types that need `Drop` are refused
//!   at compile time.
//! * Objects are reached through [`Local`]s, which exist only inside a [`Scope`]
//!   (`Mutator::scope`): each `Local` is rooted in the mutator's handle arena until its
//!   scope ends, and its lifetime is the scope's, so it cannot be kept past the point where
//!   it stops being a root. [`Global`] keeps an object alive across scopes and threads.
//! * Pointer fields are read with [`Scope::get`] (which roots the result) and written with
//!   [`Scope::set`] (which goes through the write barrier); a `Member` cannot be read or
//!   written any other way.
//! * `Mutator` is not `Send`: it is the calling thread's.
//!
//! Misuse the types forbid (each a doc test that must fail to compile):
//!
//! A `Local` cannot escape its scope:
//! ```compile_fail
//! use tricolor_gc::{Heap, Mutator, Config, object};
//! object! { struct Leaf { v: u64 } }
//! let m = Mutator::attach(Heap::new(Config::default()));
//! let escaped = m.scope(|s| s.alloc(Leaf { v: 1 }));
//! ```
//! A `Mutator` cannot move to another thread:
//! ```compile_fail
//! use tricolor_gc::{Heap, Mutator, Config};
//! let m = Mutator::attach(Heap::new(Config::default()));
//! std::thread::spawn(move || m.collect());
//! ```
//! A field holding a GC pointer must be a `Member` (a raw pointer is not `Data`):
//! ```compile_fail
//! use tricolor_gc::object;
//! object! { struct Bad { p: *mut u8 } }
//! ```
//! A `Global` of an object with a `Cell` field cannot cross threads (two threads would hold
//! `&T` and race on the cell):
//! ```compile_fail
//! use tricolor_gc::{Heap, Mutator, Config, object};
//! use std::cell::Cell;
//! object! { struct Counter { n: Cell<u64> } }
//! let heap = Heap::new(Config::default());
//! let m = Mutator::attach(heap);
//! let g = m.scope(|s| { let c = s.alloc(Counter { n: Cell::new(0) }); s.global(&c) });
//! std::thread::spawn(move || drop(g));
//! ```
//! Types with destructors are refused:
//! ```compile_fail
//! use tricolor_gc::{Heap, Mutator, Config, object, Data};
//! struct Noisy(u64);
//! impl Drop for Noisy { fn drop(&mut self) {} }
//! unsafe impl Data for Noisy {}
//! object! { struct Holder { n: Noisy } }
//! let m = Mutator::attach(Heap::new(Config::default()));
//! m.scope(|s| { s.alloc(Holder { n: Noisy(1) }); });
//! ```

use crate::heap::Heap;
use crate::mutator::MutatorState;
use crate::object::TypeId;
use crate::roots::HandleSlot;
use std::marker::PhantomData;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, Ordering};

/// A thread's attachment to a heap: allocate, root, write, collect. Not `Send`; detaches
/// when dropped. Its raw operations are those of [`MutatorState`] (through `Deref`); the
/// safe typed layer is [`Mutator::scope`].
pub struct Mutator {
    m: NonNull<MutatorState>,
    _not_send: PhantomData<*mut ()>,
}

impl Mutator {
    /// Attaches the calling thread to `heap`.
    pub fn attach(heap: &'static Heap) -> Mutator {
        Mutator {
            m: NonNull::new(crate::mutator::attach(heap)).expect("attach gives a record"),
            _not_send: PhantomData,
        }
    }
}

impl std::ops::Deref for Mutator {
    type Target = MutatorState;
    fn deref(&self) -> &MutatorState {
        // SAFETY: attached until drop; records are never freed.
        unsafe { self.m.as_ref() }
    }
}

impl Drop for Mutator {
    fn drop(&mut self) {
        // SAFETY: attached and owned by this thread (not `Send`).
        unsafe { crate::mutator::detach(self.m.as_ptr()) };
    }
}

/// A GC pointer field inside a GC object: null or an object of the same heap. Read it with
/// [`Scope::get`], write it with [`Scope::set`]. The word is atomic (the collector reads it
/// while mutators run, and `write` stores it atomically), so a `Member` is `Sync`: whether an
/// object may be shared between threads is decided by its data fields.
#[repr(transparent)]
pub struct Member<T> {
    ptr: AtomicPtr<T>,
}

impl<T> Member<T> {
    /// A null pointer field (the only way to make one).
    pub const fn null() -> Self {
        Self {
            ptr: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// True when the field holds no object.
    pub fn is_null(&self) -> bool {
        self.ptr.load(Ordering::Relaxed).is_null()
    }
}

impl<T> Default for Member<T> {
    fn default() -> Self {
        Self::null()
    }
}

/// Pointer-free data allowed in GC objects.
///
/// # Safety
/// Values of the type contain no pointer to a GC object (they would not be traced) and need
/// no destructor.
pub unsafe trait Data {}

/// A field of a GC object: `Member` (a pointer slot) or `Data`.
///
/// # Safety
/// `IS_POINTER` is true exactly for [`Member`].
pub unsafe trait Field {
    /// True for pointer slots.
    const IS_POINTER: bool;
}

// SAFETY: a Member is exactly one pointer slot.
unsafe impl<T> Field for Member<T> {
    const IS_POINTER: bool = true;
}

// SAFETY: data is never a pointer slot.
unsafe impl<T: Data> Field for T {
    const IS_POINTER: bool = false;
}

macro_rules! data {
    ($($t:ty),*) => {$(
        // SAFETY: a primitive holds no pointer.
        unsafe impl Data for $t {}
    )*};
}
data!(
    u8,
    u16,
    u32,
    u64,
    u128,
    usize,
    i8,
    i16,
    i32,
    i64,
    i128,
    isize,
    f32,
    f64,
    bool,
    char,
    ()
);

// Atomics of data are data, and let an object be shared between threads (`Sync`).
data!(
    std::sync::atomic::AtomicBool,
    std::sync::atomic::AtomicU8,
    std::sync::atomic::AtomicU16,
    std::sync::atomic::AtomicU32,
    std::sync::atomic::AtomicU64,
    std::sync::atomic::AtomicUsize,
    std::sync::atomic::AtomicI8,
    std::sync::atomic::AtomicI16,
    std::sync::atomic::AtomicI32,
    std::sync::atomic::AtomicI64,
    std::sync::atomic::AtomicIsize
);

// SAFETY: a cell of data is data.
unsafe impl<T: Data> Data for std::cell::Cell<T> {}
// SAFETY: an array of data is data.
unsafe impl<T: Data, const N: usize> Data for [T; N] {}

/// A GC object type: its pointer slots. Implemented by [`object!`](crate::object!).
///
/// # Safety
/// `pointer_offsets` lists the byte offset of every `Member` field and nothing else.
pub unsafe trait Trace: Sized + 'static {
    /// Byte offsets of the pointer slots.
    fn pointer_offsets() -> Vec<usize>;
}

/// Defines a GC object type: a `#[repr(C)]` struct whose `Member<_>` fields are its pointer
/// slots and whose other fields are [`Data`].
///
/// ```
/// use std::cell::Cell;
/// use tricolor_gc::{Member, object};
/// object! {
///     /// A binary tree node.
///     pub struct Node {
///         pub left: Member<Node>,
///         pub right: Member<Node>,
///         pub value: Cell<i64>,
///     }
/// }
/// ```
#[macro_export]
macro_rules! object {
    ($(#[$m:meta])* $vis:vis struct $name:ident {
        $($(#[$fm:meta])* $fvis:vis $field:ident : $ty:ty),* $(,)?
    }) => {
        $(#[$m])*
        #[repr(C)]
        $vis struct $name { $($(#[$fm])* $fvis $field: $ty),* }

        // SAFETY: every field is a `Field`, and the pointer offsets are exactly those of the
        // fields whose `IS_POINTER` is true (the `Member`s).
        unsafe impl $crate::Trace for $name {
            fn pointer_offsets() -> ::std::vec::Vec<usize> {
                let mut v = ::std::vec::Vec::new();
                $(
                    if <$ty as $crate::Field>::IS_POINTER {
                        v.push(::core::mem::offset_of!($name, $field));
                    }
                )*
                v
            }
        }
    };
}

/// A rooted reference to a GC object, valid for its scope `'s`.
pub struct Local<'s, T> {
    ptr: NonNull<T>,
    _scope: PhantomData<(&'s T, *mut ())>,
}

impl<T> Clone for Local<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Local<'_, T> {}

impl<T> std::ops::Deref for Local<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the object is rooted (its arena slot lives as long as `'s`), and the
        // collector never moves objects; fields are only mutated through `Cell`s or the
        // barrier, both compatible with a shared reference.
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> Local<'_, T> {
    /// The object's address.
    pub fn as_ptr(&self) -> *mut T {
        self.ptr.as_ptr()
    }

    /// True when both refer to the same object.
    pub fn ptr_eq(&self, other: &Local<'_, T>) -> bool {
        self.ptr == other.ptr
    }
}

/// A region of rooted [`Local`]s on a mutator (a V8-style handle scope).
pub struct Scope<'s> {
    m: &'s MutatorState,
}

impl Mutator {
    /// Runs `f` with a scope whose locals are roots until it returns.
    pub fn scope<R>(&self, f: impl for<'s> FnOnce(&Scope<'s>) -> R) -> R {
        Scope { m: self }.scope(f)
    }
}

impl<'s> Scope<'s> {
    /// Roots `p` in the arena for this scope.
    fn root<T>(&self, p: NonNull<T>) -> Local<'s, T> {
        // SAFETY: rule 2 of `mutator`.
        unsafe { self.m.local() }
            .stack
            .slots
            .push(p.as_ptr() as usize);
        Local {
            ptr: p,
            _scope: PhantomData,
        }
    }

    fn type_id<T: Trace>(&self) -> TypeId {
        let key = std::any::TypeId::of::<T>();
        // SAFETY: rule 2 of `mutator`.
        let local = unsafe { self.m.local() };
        if let Some(&(_, id)) = local.rust_types.iter().find(|(k, _)| *k == key) {
            return id;
        }
        let id = self.m.heap.rust_type::<T>();
        // SAFETY: as above (no call in between can park).
        unsafe { self.m.local() }.rust_types.push((key, id));
        id
    }

    /// Moves `value` into a new GC object. Panics if the heap cannot grow.
    pub fn alloc<T: Trace>(&self, value: T) -> Local<'s, T> {
        const {
            assert!(
                !std::mem::needs_drop::<T>(),
                "GC objects run no destructors"
            );
            assert!(align_of::<T>() <= 8, "GC objects are 8-byte aligned");
        }
        let ty = self.type_id::<T>();
        let p = self.m.alloc(ty).cast::<T>();
        let Some(p) = NonNull::new(p) else {
            panic!("tricolor-gc: the heap cannot grow");
        };
        // SAFETY: a fresh zeroed object of `size_of::<T>()` bytes, 8-aligned; `value`'s
        // `Member`s are null (a `Member` can only be made null), so no barrier is needed.
        unsafe { p.as_ptr().write(value) };
        self.root(p)
    }

    /// Reads pointer field `field` of `obj`, rooting the object it holds.
    pub fn get<T, U>(
        &self,
        obj: &Local<'_, T>,
        field: impl FnOnce(&T) -> &Member<U>,
    ) -> Option<Local<'s, U>> {
        NonNull::new(field(obj).ptr.load(Ordering::Relaxed)).map(|p| self.root(p))
    }

    /// Writes pointer field `field` of `obj` through the write barrier.
    pub fn set<T, U>(
        &self,
        obj: &Local<'_, T>,
        field: impl FnOnce(&T) -> &Member<U>,
        value: Option<&Local<'_, U>>,
    ) {
        let slot = field(obj).ptr.as_ptr().cast::<*mut u8>();
        let v = value.map_or(ptr::null_mut(), |l| l.as_ptr().cast());
        // SAFETY: `slot` is a `Member` field of `obj`, a pointer slot its type declared.
        unsafe { self.m.write(obj.as_ptr().cast(), slot, v) };
    }

    /// A global handle keeping `obj` alive until the handle is dropped.
    pub fn global<T>(&self, obj: &Local<'_, T>) -> Global<T> {
        Global {
            slot: self.m.heap.handle_new(obj.as_ptr() as usize),
            _t: PhantomData,
        }
    }

    /// The object a global handle holds, rooted in this scope.
    pub fn local<T>(&self, g: &Global<T>) -> Local<'s, T> {
        // SAFETY: a live handle; its object is alive while the handle is.
        let p = unsafe { (*g.slot).obj.load(Ordering::Relaxed) } as *mut T;
        self.root(NonNull::new(p).expect("global handles hold objects"))
    }

    /// A weak handle to `obj`: it yields the object while the object is reachable otherwise
    /// (Go's `weak.Make`).
    pub fn weak<T>(&self, obj: &Local<'_, T>) -> Weak<T> {
        Weak {
            slot: self.m.weak_new(obj.as_ptr().cast()),
            _t: PhantomData,
        }
    }

    /// The object of a weak handle, rooted in this scope, or `None` once the collector has
    /// found it unreachable (Go's `weak.Pointer.Value`).
    pub fn upgrade<T>(&self, w: &Weak<T>) -> Option<Local<'s, T>> {
        // SAFETY: the handle is live while `w` is; `weak_get` aborts if it is another heap's.
        let p = unsafe { self.m.weak_get(w.slot) };
        NonNull::new(p.cast::<T>()).map(|p| self.root(p))
    }

    /// Sets `obj`'s finalizer (Go's `runtime.SetFinalizer`; the rules and caveats are
    /// `finalize`'s): once `obj` is unreachable, `f` runs once on the heap's finalizer thread
    /// with it, and it is freed by a later cycle unless `f` made it reachable again. Panics if
    /// `obj` already has one.
    pub fn set_finalizer<T: 'static>(
        &self,
        obj: &Local<'_, T>,
        f: impl for<'t> FnOnce(&Scope<'t>, Local<'t, T>) + Send + 'static,
    ) {
        let fun: crate::finalize::FinalizerFn = Box::new(move |m: &MutatorState, p: *mut u8| {
            Scope { m }.scope(|s| {
                let l = s.root(NonNull::new(p.cast::<T>()).expect("finalized objects exist"));
                f(s, l)
            })
        });
        self.m.set_finalizer(obj.as_ptr().cast(), Some(fun));
    }

    /// Clears `obj`'s finalizer, if any.
    pub fn clear_finalizer<T>(&self, obj: &Local<'_, T>) {
        self.m.set_finalizer(obj.as_ptr().cast(), None);
    }

    /// Adds a cleanup to `obj` (Go's `runtime.AddCleanup`): `f` runs on the finalizer thread
    /// after `obj` is unreachable, without it (it must not hold `obj`: then it never runs).
    pub fn add_cleanup<T>(&self, obj: &Local<'_, T>, f: impl FnOnce() + Send + 'static) -> Cleanup {
        Cleanup {
            heap: self.m.heap,
            id: self.m.add_cleanup(obj.as_ptr().cast(), Box::new(f)),
        }
    }

    /// Cancels a cleanup: true if it had not been queued to run (it never will).
    pub fn cancel_cleanup(&self, c: Cleanup) -> bool {
        if !std::ptr::eq(c.heap, self.m.heap) {
            crate::misuse::abort(format_args!(
                "cancel_cleanup(): cleanup {} belongs to another heap",
                c.id
            ));
        }
        self.m.cancel_cleanup(c.id)
    }

    /// Runs `f` in a nested scope: its locals stop being roots when it returns.
    pub fn scope<R>(&self, f: impl for<'t> FnOnce(&Scope<'t>) -> R) -> R {
        // SAFETY: rule 2 of `mutator`: the owner, running.
        let base = unsafe { self.m.local() }.stack.slots.len();
        let r = f(&Scope { m: self.m });
        // SAFETY: as above.
        unsafe { self.m.local() }.stack.slots.truncate(base);
        r
    }

    /// Collects now.
    pub fn collect(&self) {
        self.m.collect();
    }

    /// A safepoint (for long loops that do not allocate).
    pub fn safepoint(&self) {
        self.m.safepoint();
    }
}

/// A global root: keeps its object alive until dropped. May be sent to other threads and
/// read there through a scope of a mutator on the same heap, when the object's type is
/// `Sync`: two threads then hold `&T` to one object, so a type with a `Cell` field (not
/// `Sync`) stays on its thread.
pub struct Global<T> {
    slot: *mut HandleSlot,
    _t: PhantomData<*const T>,
}

// SAFETY: the slot's object word is atomic and the registry is behind the heap's lock; the
// object itself is reached from another thread only as `&T`, which `T: Sync` makes sound.
unsafe impl<T: Sync> Send for Global<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for Global<T> {}

/// An ephemeron table (JavaScript's `WeakMap`; the rules are `ephemeron`'s): maps `K` objects
/// to `V` objects, and an entry keeps its value alive only while its key is reachable by other
/// paths (a value pointing back to its key does not keep either). Dropping the table drops its
/// entries. Like a [`Global`], it crosses threads only for `Sync` keys and values.
pub struct EphemeronTable<K, V> {
    inner: std::sync::Arc<crate::ephemeron::EphemeronTable>,
    _t: PhantomData<(*const K, *const V)>,
}

// SAFETY: the raw table is thread-safe (`ephemeron` rules); objects reach other threads only
// as `&K`/`&V` through a scope there.
unsafe impl<K: Sync, V: Sync> Send for EphemeronTable<K, V> {}
// SAFETY: as above.
unsafe impl<K: Sync, V: Sync> Sync for EphemeronTable<K, V> {}

impl<K, V> EphemeronTable<K, V> {
    /// An empty table on `heap`.
    pub fn new(heap: &'static Heap) -> Self {
        Self {
            inner: crate::ephemeron::EphemeronTable::new(heap),
            _t: PhantomData,
        }
    }

    /// Maps `key` to `value`.
    pub fn set(&self, s: &Scope<'_>, key: &Local<'_, K>, value: &Local<'_, V>) {
        self.inner
            .set(s.m, key.as_ptr().cast(), value.as_ptr().cast());
    }

    /// The value of `key`, rooted in scope `s`.
    pub fn get<'s>(&self, s: &Scope<'s>, key: &Local<'_, K>) -> Option<Local<'s, V>> {
        let v = self.inner.get(s.m, key.as_ptr().cast());
        NonNull::new(v.cast::<V>()).map(|p| s.root(p))
    }

    /// Removes `key`'s entry; true if there was one.
    pub fn remove(&self, s: &Scope<'_>, key: &Local<'_, K>) -> bool {
        self.inner.remove(s.m, key.as_ptr().cast())
    }

    /// Entries now (those of dead keys are gone once the sweep has reached them).
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    /// True when the table has no entry.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

impl<K, V> Drop for EphemeronTable<K, V> {
    fn drop(&mut self) {
        self.inner.free();
    }
}

/// A cleanup added by [`Scope::add_cleanup`], for [`Scope::cancel_cleanup`].
pub struct Cleanup {
    heap: &'static Heap,
    id: u64,
}

/// A weak handle (Go 1.24's `weak.Pointer`, the rules are `weak`'s): made by [`Scope::weak`],
/// read by [`Scope::upgrade`], which yields the object while it is reachable otherwise and
/// `None` from the moment the collector finds it unreachable. Not a root. Like a [`Global`],
/// it crosses threads only for `Sync` objects.
pub struct Weak<T> {
    slot: *mut crate::weak::WeakSlot,
    _t: PhantomData<*const T>,
}

// SAFETY: the handle's word is atomic and its registration is under its span's lock; the
// object is reached from another thread only as `&T` through a scope there.
unsafe impl<T: Sync> Send for Weak<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for Weak<T> {}

impl<T> Drop for Weak<T> {
    fn drop(&mut self) {
        // SAFETY: the handle is live until this drop, and owned by this `Weak`.
        unsafe { crate::weak::weak_free(self.slot) }
    }
}

impl<T> Drop for Global<T> {
    fn drop(&mut self) {
        // SAFETY: the handle is live until this drop, and owned by this `Global`.
        unsafe { crate::raw::handle_free(self.slot) }
    }
}

/// A pool of `T` objects cleared each cycle (Go's `sync.Pool` with its victim cache; the
/// rules are `pool`'s): [`Pool::get`] returns a pooled object, else a new one from the
/// constructor given to [`Pool::with_new`], else `None`; [`Pool::put`] gives one back. An
/// object stays valid while pooled; an idle pool's objects become garbage within two cycles,
/// while a pool in steady use keeps hitting across collections. Like a [`Global`], a pool
/// crosses threads only for `Sync` objects. Dropping the pool drops what it holds.
pub struct Pool<T> {
    inner: std::sync::Arc<crate::pool::Pool>,
    _t: PhantomData<*const T>,
}

// SAFETY: the raw pool is thread-safe (`pool` rules); objects reach other threads only as
// `&T` through a scope there, which `T: Sync` makes sound.
unsafe impl<T: Sync> Send for Pool<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for Pool<T> {}

impl<T: Trace> Pool<T> {
    /// An empty pool on `heap` without a constructor.
    pub fn new(heap: &'static Heap) -> Self {
        Self {
            inner: crate::pool::Pool::new(heap, heap.rust_type::<T>(), None),
            _t: PhantomData,
        }
    }

    /// An empty pool on `heap` whose `get` makes a new object from `f()` when it has none.
    pub fn with_new(heap: &'static Heap, f: impl Fn() -> T + Send + Sync + 'static) -> Self {
        const {
            assert!(
                !std::mem::needs_drop::<T>(),
                "GC objects run no destructors"
            );
            assert!(align_of::<T>() <= 8, "GC objects are 8-byte aligned");
        }
        let ty = heap.rust_type::<T>();
        let new_fn: crate::pool::NewFn = Box::new(move |m: &MutatorState| {
            let value = f();
            let p = m.alloc(ty);
            if !p.is_null() {
                // SAFETY: a fresh zeroed object of type `T`, 8-aligned; `value`'s `Member`s
                // are null, so no barrier is needed.
                unsafe { p.cast::<T>().write(value) };
            }
            p
        });
        Self {
            inner: crate::pool::Pool::new(heap, ty, Some(new_fn)),
            _t: PhantomData,
        }
    }

    /// A pooled object, else a new one from the constructor, rooted in scope `s`; `None` when
    /// the pool is empty and has no constructor. Panics if the constructor's heap cannot grow.
    pub fn get<'s>(&self, s: &Scope<'s>) -> Option<Local<'s, T>> {
        let p = self.inner.get(s.m);
        NonNull::new(p.cast::<T>()).map(|p| s.root(p))
    }

    /// Gives `obj` back to the pool.
    pub fn put(&self, s: &Scope<'_>, obj: &Local<'_, T>) {
        // SAFETY: a `Local` is a live object of type `T` (of some heap: the raw pool aborts
        // if it is not this pool's).
        unsafe { self.inner.put(s.m, obj.as_ptr().cast()) };
    }

    /// Hits, misses and the objects pooled now.
    pub fn stats(&self) -> crate::pool::PoolStats {
        self.inner.stats()
    }
}

impl<T> Drop for Pool<T> {
    fn drop(&mut self) {
        self.inner.free();
    }
}

impl Heap {
    /// The type id of Rust type `T` in this heap, registering it on first use.
    pub(crate) fn rust_type<T: Trace>(&self) -> TypeId {
        let key = std::any::TypeId::of::<T>();
        let mut map = self.rust_types.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(&id) = map.get(&key) {
            return id;
        }
        let id = self
            .register_type(
                std::any::type_name::<T>(),
                size_of::<T>().max(1),
                &T::pointer_offsets(),
            )
            .expect("object! layouts are valid");
        map.insert(key, id);
        id
    }
}
