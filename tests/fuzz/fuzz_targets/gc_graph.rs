//! Fuzzing the collector: random object graphs built and mutated through the raw API (the
//! layer under the C ABI), with verification mode on and collections forced at random.
//!
//! The model is the same graph with objects as indexes. Roots are shadow-stack slots. After
//! every forced collection and at the end, every object reachable from the roots is compared
//! with the model: its identity word (or, for byte objects, its bytes), and each of its pointer
//! slots against the model's edge, with one heap object per model object. Verification mode
//! checks after marking that no marked object points to an unmarked one, and poisons what it
//! sweeps, so an object freed while reachable shows as a wrong identity. At the end every root
//! is dropped and a collection must leave nothing live.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::sync::OnceLock;
use tricolor_gc::{Config, Heap, MutatorState, TypeId, raw};

/// Pointer slots of a node; word `NODE_SLOTS` is its identity.
const NODE_SLOTS: usize = 3;
const ROOTS: usize = 8;

#[derive(Arbitrary, Debug)]
enum Op {
    Node {
        root: u8,
    },
    Array {
        root: u8,
        len: u8,
    },
    Bytes {
        root: u8,
        len: u16,
    },
    /// Stores root `to` (or null when `to` is out of range) into slot `slot` of root `from`.
    Link {
        from: u8,
        slot: u8,
        to: u8,
    },
    /// Loads slot `slot` of root `from` into root `dst`.
    Follow {
        from: u8,
        slot: u8,
        dst: u8,
    },
    Drop {
        root: u8,
    },
    Collect,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Node,
    Array(usize),
    Bytes(usize),
}

struct Obj {
    kind: Kind,
    id: u64,
    edges: Vec<Option<usize>>,
}

struct Types {
    node: TypeId,
    slot: TypeId,
}

fn heap() -> &'static (&'static Heap, Types) {
    static HEAP: OnceLock<(&'static Heap, Types)> = OnceLock::new();
    HEAP.get_or_init(|| {
        let h = Heap::new(Config {
            verify: true,
            ..Config::default()
        });
        let offs: Vec<usize> = (0..NODE_SLOTS).map(|i| i * 8).collect();
        let node = h
            .register_type("node", (NODE_SLOTS + 1) * 8, &offs)
            .unwrap();
        let slot = h.register_type("slot", 8, &[0]).unwrap();
        (h, Types { node, slot })
    })
}

struct World {
    m: *mut MutatorState,
    roots: Box<[*mut u8; ROOTS]>,
    model_roots: [Option<usize>; ROOTS],
    objs: Vec<Obj>,
    next_id: u64,
}

fn byte_of(id: u64, i: usize) -> u8 {
    (id as usize ^ i.wrapping_mul(131)) as u8
}

impl World {
    fn m(&self) -> &MutatorState {
        // SAFETY: attached for the world's lifetime, on this thread.
        unsafe { &*self.m }
    }

    /// The address of pointer slot `i` of root object `r`, if it has one.
    fn slot_addr(&self, r: usize, i: u8) -> Option<(*mut *mut u8, usize)> {
        let o = self.model_roots[r]?;
        let n = match self.objs[o].kind {
            Kind::Node => NODE_SLOTS,
            Kind::Array(len) => len,
            Kind::Bytes(_) => 0,
        };
        if n == 0 {
            return None;
        }
        let i = i as usize % n;
        Some(((self.roots[r] as *mut *mut u8).wrapping_add(i), i))
    }

    fn new_obj(&mut self, root: u8, kind: Kind) {
        let (_, t) = heap();
        let p = match kind {
            Kind::Node => self.m().alloc(t.node),
            Kind::Array(len) => self.m().alloc_array(t.slot, len),
            Kind::Bytes(len) => self.m().alloc_bytes(len),
        };
        assert!(!p.is_null(), "allocation failed");
        self.next_id += 1;
        let id = self.next_id;
        // SAFETY: a fresh, zeroed object of the kind's size.
        unsafe {
            match kind {
                Kind::Node => {
                    for i in 0..NODE_SLOTS {
                        assert!((*(p as *mut *mut u8).add(i)).is_null(), "not zeroed");
                    }
                    (p as *mut u64).add(NODE_SLOTS).write(id);
                }
                Kind::Array(len) => {
                    for i in 0..len {
                        assert!((*(p as *mut *mut u8).add(i)).is_null(), "not zeroed");
                    }
                }
                Kind::Bytes(len) => {
                    for i in 0..len {
                        assert_eq!(*p.add(i), 0, "not zeroed");
                        p.add(i).write(byte_of(id, i));
                    }
                }
            }
        }
        let edges = match kind {
            Kind::Node => vec![None; NODE_SLOTS],
            Kind::Array(len) => vec![None; len],
            Kind::Bytes(_) => Vec::new(),
        };
        self.objs.push(Obj { kind, id, edges });
        let r = root as usize % ROOTS;
        self.roots[r] = p;
        self.model_roots[r] = Some(self.objs.len() - 1);
    }

    fn apply(&mut self, op: &Op) {
        match *op {
            Op::Node { root } => self.new_obj(root, Kind::Node),
            Op::Array { root, len } => self.new_obj(root, Kind::Array(len as usize % 40)),
            Op::Bytes { root, len } => self.new_obj(root, Kind::Bytes(len as usize % 5000)),
            Op::Link { from, slot, to } => {
                let from = from as usize % ROOTS;
                let Some((addr, i)) = self.slot_addr(from, slot) else {
                    return;
                };
                let (value, target) = if (to as usize) < ROOTS {
                    (self.roots[to as usize], self.model_roots[to as usize])
                } else {
                    (std::ptr::null_mut(), None)
                };
                // SAFETY: `addr` is a declared pointer slot of the live object in root `from`.
                unsafe { self.m().write(self.roots[from], addr, value) };
                let o = self.model_roots[from].unwrap();
                self.objs[o].edges[i] = target;
            }
            Op::Follow { from, slot, dst } => {
                let from = from as usize % ROOTS;
                let Some((addr, i)) = self.slot_addr(from, slot) else {
                    return;
                };
                let dst = dst as usize % ROOTS;
                // SAFETY: a pointer slot of a live object.
                self.roots[dst] = unsafe { *addr };
                let o = self.model_roots[from].unwrap();
                self.model_roots[dst] = self.objs[o].edges[i];
            }
            Op::Drop { root } => {
                let r = root as usize % ROOTS;
                self.roots[r] = std::ptr::null_mut();
                self.model_roots[r] = None;
            }
            Op::Collect => {
                self.m().collect();
                self.verify();
            }
        }
    }

    /// Compares everything reachable from the roots with the model.
    fn verify(&self) {
        let mut seen: HashMap<usize, *mut u8> = HashMap::new();
        let mut stack: Vec<(*mut u8, usize)> = Vec::new();
        for r in 0..ROOTS {
            match self.model_roots[r] {
                None => assert!(self.roots[r].is_null(), "root {r}: expected null"),
                Some(o) => stack.push((self.roots[r], o)),
            }
        }
        while let Some((p, o)) = stack.pop() {
            assert!(!p.is_null(), "model object {o} reached as null");
            if let Some(&q) = seen.get(&o) {
                assert_eq!(q, p, "model object {o} at two addresses");
                continue;
            }
            seen.insert(o, p);
            let obj = &self.objs[o];
            // SAFETY: reachable objects are live; the reads stay inside their kind's size.
            unsafe {
                match obj.kind {
                    Kind::Node => {
                        let id = (p as *const u64).add(NODE_SLOTS).read();
                        assert_eq!(id, obj.id, "node {o}: identity (freed while reachable?)");
                    }
                    Kind::Bytes(len) => {
                        for i in 0..len {
                            assert_eq!(*p.add(i), byte_of(obj.id, i), "bytes {o}, byte {i}");
                        }
                    }
                    Kind::Array(_) => {}
                }
                for (i, e) in obj.edges.iter().enumerate() {
                    let v = *(p as *const *mut u8).add(i);
                    match e {
                        None => assert!(v.is_null(), "object {o} slot {i}: expected null"),
                        Some(t) => stack.push((v, *t)),
                    }
                }
            }
        }
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let (h, _) = heap();
    let m = raw::attach(h);
    let mut w = World {
        m,
        roots: Box::new([std::ptr::null_mut(); ROOTS]),
        model_roots: [None; ROOTS],
        objs: Vec::new(),
        next_id: 0,
    };
    for i in 0..ROOTS {
        // SAFETY: `m` is attached on this thread; the root array is boxed and outlives the
        // pushes (popped below).
        unsafe { (*m).push_root(&mut w.roots[i]) };
    }
    for op in ops.iter().take(2000) {
        w.apply(op);
    }
    w.verify();
    for r in w.roots.iter_mut() {
        *r = std::ptr::null_mut();
    }
    w.m().collect();
    w.m().pop_roots(ROOTS);
    assert_eq!(h.stats().live_bytes, 0, "unreachable objects survived");
    // SAFETY: attached above on this thread; no object of ours is used after.
    unsafe { raw::detach(m) };
});
