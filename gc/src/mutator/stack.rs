//! A mutator's roots: the shadow stack of slot addresses (`push_root`/`pop_roots`), the typed
//! layer's handle arena, and the stack scanners a language runtime registers
//! (`add_stack_scanner`). Scanned once per cycle, with the mutator's stack (`collect` rule
//! 3), by the owner at a safepoint or by a marker while the owner is in native code.
//!
//! Invariant (`mutator` rule 2): only the owning thread changes a shadow stack, while it is
//! running; a marker reads it only while holding the owner's stack scan.

/// A stack scanner (`MutatorState::add_stack_scanner`): reports root values.
pub type StackScanner = Box<dyn Fn(&mut dyn FnMut(usize)) + Send>;

/// The roots a mutator holds.
pub(crate) struct ShadowStack {
    /// Addresses of slots holding object pointers.
    pub(crate) roots: Vec<*mut usize>,
    /// The typed layer's handle arena: object pointers rooted by open scopes (a `Local`
    /// holds the object pointer itself, so the arena may move as it grows).
    pub(crate) slots: Vec<usize>,
    /// Stack scanners by id, called with the shadow stack (`add_stack_scanner`).
    scanners: Vec<(u64, StackScanner)>,
    /// The next scanner id.
    next_scanner: u64,
}

impl ShadowStack {
    /// An empty stack; scanner ids count from 1.
    pub(crate) fn new() -> Self {
        ShadowStack {
            roots: Vec::new(),
            slots: Vec::new(),
            scanners: Vec::new(),
            next_scanner: 1,
        }
    }

    /// Calls `f` with the value of every root: each pushed shadow-stack slot, each slot of
    /// the typed layer's handle arena, and what each stack scanner reports.
    pub(crate) fn each_root(&self, mut f: impl FnMut(usize)) {
        for &slot in &self.roots {
            // SAFETY: `push_root`'s contract: the slot is valid until popped. Volatile: the
            // owner writes it as a plain local the compiler must not assume unread.
            f(unsafe { slot.read_volatile() });
        }
        for &v in &self.slots {
            f(v);
        }
        for (_, scan) in &self.scanners {
            scan(&mut |v| f(v));
        }
    }

    /// Registers a scanner; returns its id.
    pub(crate) fn add_scanner(&mut self, f: StackScanner) -> u64 {
        let id = self.next_scanner;
        self.next_scanner += 1;
        self.scanners.push((id, f));
        id
    }

    /// Removes a scanner; false if it was not registered.
    pub(crate) fn remove_scanner(&mut self, id: u64) -> bool {
        let before = self.scanners.len();
        self.scanners.retain(|(i, _)| *i != id);
        self.scanners.len() != before
    }

    /// Forgets every root and scanner (at detach).
    pub(crate) fn clear(&mut self) {
        self.roots.clear();
        self.slots.clear();
        self.scanners.clear();
    }
}
