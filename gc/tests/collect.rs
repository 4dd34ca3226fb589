//! Collection through the raw API: what is reachable survives with its contents, what is not
//! is freed and its memory reused. Each test makes its own heap (heaps are independent).

use std::ptr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tricolor_gc::{Config, Heap, Mutator, TypeId};

fn heap() -> &'static Heap {
    Heap::new(Config {
        verify: true,
        ..Config::default()
    })
}

/// Bytes a node occupies: its 24 bytes round up to the 32-byte size class.
const NODE: u64 = 32;

/// `struct node { node *left, *right; u64 value; }`
fn node_type(h: &Heap) -> TypeId {
    h.register_type("node", 24, &[0, 8]).unwrap()
}

unsafe fn field(obj: *mut u8, i: usize) -> *mut *mut u8 {
    // SAFETY: the caller's object has word `i`.
    unsafe { obj.cast::<*mut u8>().add(i) }
}

unsafe fn value(obj: *mut u8) -> &'static mut u64 {
    // SAFETY: the caller's node object.
    unsafe { &mut *obj.add(16).cast::<u64>() }
}

/// A tree of depth `d` built bottom-up; node values are their in-order positions' hashes.
fn tree(m: &Mutator, ty: TypeId, d: u32, next: &mut u64) -> *mut u8 {
    let mut n = m.alloc(ty);
    // SAFETY: `n` lives on this frame until popped.
    unsafe { m.push_root(&mut n) };
    if d > 0 {
        let l = tree(m, ty, d - 1, next);
        // SAFETY: `n` is a node; slot 0 is a pointer slot.
        unsafe { m.write(n, field(n, 0), l) };
        let r = tree(m, ty, d - 1, next);
        // SAFETY: as above.
        unsafe { m.write(n, field(n, 1), r) };
    }
    *next += 1;
    // SAFETY: `n` is a live node.
    unsafe { *value(n) = *next * 2654435761 };
    m.pop_roots(1);
    n
}

fn check_tree(n: *mut u8, d: u32, next: &mut u64) {
    // SAFETY: reachable nodes are live.
    unsafe {
        if d > 0 {
            check_tree(*field(n, 0), d - 1, next);
            check_tree(*field(n, 1), d - 1, next);
        } else {
            assert!((*field(n, 0)).is_null() && (*field(n, 1)).is_null());
        }
        *next += 1;
        assert_eq!(*value(n), *next * 2654435761, "node content");
    }
}

#[test]
fn trees_survive_with_contents_and_die_when_dropped() {
    let h = heap();
    let ty = node_type(h);
    let m = Mutator::attach(h);
    let mut root = tree(&m, ty, 14, &mut 0);
    // SAFETY: `root` outlives the root slot.
    unsafe { m.push_root(&mut root) };
    // Garbage trees in between, so collections happen while `root` is live.
    for _ in 0..20 {
        tree(&m, ty, 12, &mut 0);
    }
    m.collect();
    let nodes = (1 << 15) - 1;
    assert_eq!(h.stats().live_bytes, nodes * NODE);
    check_tree(root, 14, &mut 0);
    assert!(
        h.stats().cycles >= 2,
        "the garbage trees triggered collections"
    );
    root = ptr::null_mut();
    m.collect();
    assert_eq!(h.stats().live_bytes, 0);
    m.pop_roots(1);
    let _ = root;
}

#[test]
fn unreachable_cycles_are_freed_reachable_ones_kept() {
    let h = heap();
    let ty = node_type(h);
    let m = Mutator::attach(h);
    let ring = |len: usize| {
        let mut first = m.alloc(ty);
        // SAFETY: `first` outlives the root.
        unsafe { m.push_root(&mut first) };
        let mut prev = first;
        for _ in 1..len {
            let n = m.alloc(ty);
            // SAFETY: `prev` is reachable from `first`; `n` is fresh.
            unsafe { m.write(prev, field(prev, 0), n) };
            prev = n;
        }
        // SAFETY: as above.
        unsafe { m.write(prev, field(prev, 0), first) };
        m.pop_roots(1);
        first
    };
    let mut kept = ring(1000);
    // SAFETY: `kept` outlives the root.
    unsafe { m.push_root(&mut kept) };
    ring(5000);
    m.collect();
    assert_eq!(h.stats().live_bytes, 1000 * NODE);
    let mut p = kept;
    for _ in 0..1000 {
        // SAFETY: ring nodes are live.
        p = unsafe { *field(p, 0) };
    }
    assert_eq!(p, kept, "the ring is intact");
    m.pop_roots(1);
    m.collect();
    assert_eq!(h.stats().live_bytes, 0);
}

#[test]
fn arrays_of_pointers_and_interior_pointers() {
    let h = heap();
    let ty = node_type(h);
    let slot = h.register_type("ref", 8, &[0]).unwrap();
    let m = Mutator::attach(h);
    for len in [3usize, 1000, 20_000] {
        let mut arr = m.alloc_array(slot, len);
        // SAFETY: `arr` outlives the root.
        unsafe { m.push_root(&mut arr) };
        for i in 0..len {
            let n = m.alloc(ty);
            // SAFETY: a live node; `arr` has `len` pointer slots.
            unsafe {
                *value(n) = i as u64;
                m.write(arr, field(arr, i), n);
            }
        }
        m.collect();
        let arr_bytes = h.stats().live_bytes - len as u64 * NODE;
        assert!(arr_bytes >= (len * 8) as u64, "{len}: array counted");
        // Drop every other element.
        for i in (0..len).step_by(2) {
            // SAFETY: as above.
            unsafe { m.write(arr, field(arr, i), ptr::null_mut()) };
        }
        // Root the array only through an interior pointer into its last element.
        let mut interior = arr.wrapping_add((len - 1) * 8);
        m.pop_roots(1);
        // SAFETY: `interior` outlives the root.
        unsafe { m.push_root(&mut interior) };
        m.collect();
        assert_eq!(h.stats().live_bytes, arr_bytes + (len / 2) as u64 * NODE);
        for i in (1..len).step_by(2) {
            // SAFETY: odd elements are alive.
            assert_eq!(unsafe { *value(*field(arr, i)) }, i as u64);
        }
        m.pop_roots(1);
        m.collect();
        assert_eq!(h.stats().live_bytes, 0);
    }
}

#[test]
fn large_objects_are_zeroed_kept_and_freed() {
    let h = heap();
    let m = Mutator::attach(h);
    let before = h.stats().span_bytes;
    let mut big = m.alloc_bytes(3 << 20);
    // SAFETY: `big` outlives the root.
    unsafe { m.push_root(&mut big) };
    // SAFETY: a fresh 3 MiB object.
    let bytes = unsafe { std::slice::from_raw_parts_mut(big, 3 << 20) };
    assert!(bytes.iter().all(|&b| b == 0), "zeroed");
    bytes.fill(0x5a);
    for _ in 0..10 {
        m.alloc_bytes(1 << 20);
    }
    m.collect();
    assert_eq!(h.stats().live_bytes, 3 << 20);
    assert!(bytes.iter().all(|&b| b == 0x5a));
    // Freed large objects give their pages back at once.
    assert!(h.stats().span_bytes - before < 4 << 20);
    m.pop_roots(1);
    m.collect();
    assert_eq!(h.stats().live_bytes, 0);
    assert_eq!(h.stats().span_bytes, before);
    // A reused large object is zeroed again.
    let again = m.alloc_bytes(3 << 20);
    // SAFETY: a fresh object.
    let again = unsafe { std::slice::from_raw_parts(again, 3 << 20) };
    assert!(again.iter().all(|&b| b == 0));
}

#[test]
fn global_handles_and_root_callbacks_are_roots() {
    let h = heap();
    let ty = node_type(h);
    let m = Mutator::attach(h);
    let a = m.alloc(ty);
    // SAFETY: a live node.
    unsafe { *value(a) = 7 };
    let handle = tricolor_gc::raw::handle_new(&m, a);
    // A runtime's own root table, reported through a callback.
    let table = Arc::new([const { AtomicUsize::new(0) }; 4]);
    let t2 = table.clone();
    let id = h.add_root_callback(Box::new(move |v| {
        for s in t2.iter() {
            v.visit_value(s.load(Ordering::Relaxed) as *const u8);
        }
    }));
    let b = m.alloc(ty);
    // SAFETY: a live node.
    unsafe { *value(b) = 9 };
    table[2].store(b as usize, Ordering::Relaxed);
    m.collect();
    assert_eq!(h.stats().live_bytes, 2 * NODE);
    // SAFETY: both are roots, so alive.
    unsafe {
        assert_eq!(*value(tricolor_gc::raw::handle_get(handle)), 7);
        assert_eq!(*value(b), 9);
    }
    assert!(h.remove_root_callback(id));
    assert!(!h.remove_root_callback(id));
    m.collect();
    assert_eq!(h.stats().live_bytes, NODE);
    // SAFETY: a live handle, freed once.
    unsafe {
        tricolor_gc::raw::handle_set(&m, handle, ptr::null_mut());
        m.collect();
        assert_eq!(h.stats().live_bytes, 0);
        tricolor_gc::raw::handle_free(handle);
    }
}

/// A steady workload (a fixed live set, constant garbage) stays near the GOGC goal: memory
/// is reused, not grown.
#[test]
fn steady_workload_stays_bounded_near_the_goal() {
    let h = Heap::new(Config::default());
    let ty = node_type(h);
    let slot = h.register_type("ref", 8, &[0]).unwrap();
    let m = Mutator::attach(h);
    let live = 100_000;
    let mut arr = m.alloc_array(slot, live);
    // SAFETY: `arr` outlives the root.
    unsafe { m.push_root(&mut arr) };
    // The most span bytes, against the largest goal any cycle set: the goal moves with what
    // each cycle marks, and when it falls the spans follow only as sweeping frees them.
    let (mut max_spans, mut max_goal) = (0, 1);
    for round in 0..3_000_000usize {
        let n = m.alloc(ty);
        if round % 5 == 0 {
            // SAFETY: `arr` has `live` slots; `n` is fresh.
            unsafe { m.write(arr, field(arr, (round / 5) % live), n) };
        }
        if round % 10_000 == 0 {
            let st = h.stats();
            max_spans = max_spans.max(st.span_bytes);
            max_goal = max_goal.max(st.heap_goal);
        }
    }
    let s = h.stats();
    // Live: 100k nodes (3.2 MB) + the 800 KB array; goal about twice that. Objects allocated
    // while marking are black and count as marked (floating garbage until the next cycle):
    // at most the last eighth of the runway, which the trigger leaves for marking.
    assert!(s.cycles >= 10, "{} cycles", s.cycles);
    assert!(
        s.live_bytes >= 4_000_000 && s.live_bytes < 4_100_000 + s.heap_goal / 8,
        "{} (goal {})",
        s.live_bytes,
        s.heap_goal
    );
    // Marking allocates from the free slots sweeping left (1.00-1.01 × the largest goal
    // here); when sweep termination dropped them, each cycle's marking took new spans
    // (1.17-1.18 ×).
    assert!(
        max_spans < max_goal * 110 / 100,
        "spans {max_spans} against goal {max_goal}"
    );
    m.pop_roots(1);
}

/// GOGC through `set_gc_percent`: a bigger percent means fewer collections; off means none.
#[test]
fn gc_percent_paces_collections() {
    let run = |percent: i32| {
        let h = Heap::new(Config::default());
        assert_eq!(h.set_gc_percent(percent), 100);
        let ty = node_type(h);
        let m = Mutator::attach(h);
        for _ in 0..2_000_000 {
            m.alloc(ty);
        }
        h.stats()
    };
    let at100 = run(100);
    let at400 = run(400);
    let off = run(-1);
    assert!(at100.cycles >= 5, "{}", at100.cycles);
    assert!(
        at400.cycles * 2 < at100.cycles,
        "{} vs {}",
        at400.cycles,
        at100.cycles
    );
    assert_eq!(off.cycles, 0);
    assert_eq!(off.heap_goal, i64::MAX as u64);
}

/// Several mutators mutate one shared graph through `write` while collections are forced,
/// in verification mode (dead objects are poisoned, so a freed reachable object fails the
/// content check). Access to the shared table is serialised by a lock taken in native mode,
/// which also exercises the rule that a blocked native thread does not block a collection.
#[test]
fn mutators_share_a_graph_under_forced_collections() {
    let h = heap();
    let ty = node_type(h);
    let slot = h.register_type("ref", 8, &[0]).unwrap();
    const SLOTS: usize = 512;
    let main = Mutator::attach(h);
    let table = main.alloc_array(slot, SLOTS);
    let handle = tricolor_gc::raw::handle_new(&main, table);
    let handle_addr = handle as usize;
    let lock = Arc::new(std::sync::Mutex::new(()));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let lock = lock.clone();
            std::thread::spawn(move || {
                let m = Mutator::attach(h);
                let mut seed = t.wrapping_mul(0x9e37_79b9_7f4a_7c15) + 1;
                let mut rnd = move || {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed
                };
                for i in 0..30_000u64 {
                    // A short chain: node -> node, values tied to each other. `a` is
                    // rooted only by the shadow stack while collections may run.
                    let mut a = m.alloc(ty);
                    // SAFETY: `a` outlives the root.
                    unsafe { m.push_root(&mut a) };
                    let tag = (t << 32) | i;
                    // SAFETY: a live node.
                    unsafe { *value(a) = tag };
                    if rnd() % 300 == 0 {
                        m.collect();
                    }
                    let b = m.alloc(ty);
                    // SAFETY: live nodes (`a` is rooted).
                    unsafe {
                        assert_eq!(*value(a), tag, "a rooted node survives");
                        *value(b) = !tag;
                        m.write(a, field(a, 0), b);
                    }
                    m.enter_native();
                    let g = lock.lock().unwrap();
                    m.leave_native();
                    // SAFETY: the handle lives until the end of the test.
                    let table = unsafe { tricolor_gc::raw::handle_get(handle_addr as *const _) };
                    let k = rnd() as usize % SLOTS;
                    // SAFETY: `table` has SLOTS pointer slots; entries are chains as built.
                    unsafe {
                        let old = *field(table, k);
                        if !old.is_null() {
                            let v = *value(old);
                            let next = *field(old, 0);
                            assert!(!next.is_null(), "chain cut");
                            assert_eq!(*value(next), !v, "content of a reachable node");
                        }
                        m.write(table, field(table, k), a);
                    }
                    drop(g);
                    m.pop_roots(1);
                    if rnd() % 2000 == 0 {
                        m.collect();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        // Wait in native mode, so this mutator does not hold up the others' collections.
        main.enter_native();
        t.join().unwrap();
        main.leave_native();
    }
    let s = h.stats();
    assert!(s.cycles > 10, "{} cycles", s.cycles);
    // Everything unreachable is freed: only the table and its chains remain.
    main.collect();
    let live = h.stats().live_bytes;
    assert!(live <= SLOTS as u64 * (8 + 2 * NODE), "{live}");
    // SAFETY: the live handle, cleared and freed once.
    unsafe {
        tricolor_gc::raw::handle_set(&main, handle, ptr::null_mut());
        main.collect();
        assert_eq!(h.stats().live_bytes, 0);
        tricolor_gc::raw::handle_free(handle);
    }
}

/// Changing GOGC recomputes the goal from the last cycle's inputs, roots included: setting
/// the same percent again leaves the goal where the cycle put it.
#[test]
fn set_gc_percent_keeps_the_last_cycles_roots_in_the_goal() {
    let h = Heap::new(Config::default());
    let m = Mutator::attach(h);
    let mut nothing: *mut u8 = ptr::null_mut();
    // 5 MB of (null) root slots: the goal is roots-driven, above the 4 MiB minimum.
    for _ in 0..640_000 {
        // SAFETY: `nothing` outlives the roots.
        unsafe { m.push_root(&mut nothing) };
    }
    m.collect();
    let goal = h.stats().heap_goal;
    assert_eq!(goal, 640_000 * 8);
    assert_eq!(h.set_gc_percent(100), 100);
    assert_eq!(h.stats().heap_goal, goal);
    m.pop_roots(640_000);
}

/// Reused small slots come back zeroed: of 10,000 nodes filled with ones, every fourth stays
/// alive (so no span empties and goes back to the page heap), the others die; sweeping frees
/// their slots (and poisons them, in verification mode), and the next nodes land in those
/// slots and must read as zero, pointers and data alike.
#[test]
fn reused_slots_are_zeroed() {
    let h = heap();
    let ty = node_type(h);
    let slot = h.register_type("ref", 8, &[0]).unwrap();
    let m = Mutator::attach(h);
    let mut keep = m.alloc_array(slot, 2_500);
    // SAFETY: `keep` outlives the root.
    unsafe { m.push_root(&mut keep) };
    let mut dead = std::collections::HashSet::new();
    for i in 0..10_000 {
        let n = m.alloc(ty);
        if i % 4 == 0 {
            // SAFETY: `keep` has 2,500 slots; `n` is a fresh node; only its data word is set.
            unsafe {
                *value(n) = u64::MAX;
                m.write(keep, field(keep, i / 4), n);
            }
        } else {
            // SAFETY: a fresh node of 24 bytes that nothing references: raw bytes only.
            unsafe { std::ptr::write_bytes(n, 0xff, 24) };
            dead.insert(n as usize);
        }
    }
    m.collect();
    m.collect();
    let mut reused = 0;
    for _ in 0..7_500 {
        let n = m.alloc(ty);
        // SAFETY: a fresh node.
        let bytes = unsafe { std::slice::from_raw_parts(n, 24) };
        assert!(
            bytes.iter().all(|&b| b == 0),
            "slot {n:p} not zeroed: {bytes:?}"
        );
        reused += dead.contains(&(n as usize)) as usize;
    }
    assert!(
        reused > 3_750,
        "only {reused} of 7,500 new nodes reused a freed slot"
    );
    m.pop_roots(1);
}

/// The goal counts the shadow-stack roots a running mutator scanned itself: with a million
/// root slots (8 MB of roots) and only garbage allocated, Go's goal is `roots × GOGC/100`,
/// not the 4 MiB minimum.
#[test]
fn stack_roots_scanned_by_their_owner_count_in_the_goal() {
    let h = heap();
    let ty = node_type(h);
    let m = Mutator::attach(h);
    let mut slots: Vec<*mut u8> = vec![ptr::null_mut(); 1_000_000];
    for s in slots.iter_mut() {
        // SAFETY: `slots` is neither moved nor resized while the roots are pushed.
        unsafe { m.push_root(s) };
    }
    let start = h.stats().cycles;
    while h.stats().cycles < start + 3 {
        m.alloc(ty);
    }
    let goal = h.stats().heap_goal;
    assert!(
        goal >= 8_000_000,
        "goal {goal} leaves out the 8 MB of stack roots"
    );
    m.pop_roots(slots.len());
}

/// Proportional sweeping, with the background sweeper off so that nothing else sweeps: after
/// a cycle, each refill of one kind sweeps one more span of any kind, so the dead spans of a
/// kind nobody allocates any more go back to the page heap as fast as the other kind takes
/// new ones (Go's sweep credit). Without it the heap would hold both until the next cycle.
#[test]
fn each_refill_sweeps_one_more_span_of_any_kind() {
    const SPAN: u64 = 32 * 1024;
    const PER_SPAN: usize = 32 * 1024 / 16;
    let h = Heap::new(Config {
        gc_percent: -1,
        background_sweep: false,
        ..Config::default()
    });
    // Two kinds in the same 16-byte size class (a pointer slot each, at different offsets).
    let a = h.register_type("a", 16, &[0]).unwrap();
    let b = h.register_type("b", 16, &[8]).unwrap();
    let m = Mutator::attach(h);
    for _ in 0..20 * PER_SPAN {
        m.alloc(a);
    }
    m.collect();
    let s0 = h.stats().span_bytes;
    assert!(s0 >= 20 * SPAN, "the dead spans are not swept yet: {s0}");
    for _ in 0..10 * PER_SPAN {
        m.alloc(b);
    }
    let s1 = h.stats().span_bytes;
    // Ten new spans of `b`, ten dead spans of `a` freed by the refills that took them.
    assert!(
        s1 <= s0 + 2 * SPAN,
        "refills did not sweep: {s0} -> {s1} span bytes"
    );
    // Sweep termination (the next cycle's start) frees the rest.
    m.collect();
    assert!(
        h.stats().span_bytes <= 12 * SPAN,
        "{}",
        h.stats().span_bytes
    );
}

/// A root callback that reaches a large structure: everything it reaches is marked to the end
/// (a drain at mark termination may share grey objects through the work list, which must be
/// emptied again before the flip; if not, verification aborts on a black object pointing to a
/// white one, and without verification the objects are freed while reachable). A language
/// runtime's roots are such a callback (the Lox VM's). A tree, so that the grey stack holds
/// many objects to share.
#[test]
fn everything_a_root_callback_reaches_is_kept() {
    use std::sync::atomic::AtomicPtr;
    static ROOT: AtomicPtr<u8> = AtomicPtr::new(ptr::null_mut());
    let h = Heap::new(Config {
        verify: true,
        ..Config::default()
    });
    let ty = node_type(h);
    let m = Mutator::attach(h);
    let id = h.add_root_callback(Box::new(|v| {
        v.visit_value(ROOT.load(Ordering::Relaxed));
    }));
    ROOT.store(tree(&m, ty, 14, &mut 0), Ordering::Relaxed);
    for _ in 0..3 {
        m.collect();
    }
    check_tree(ROOT.load(Ordering::Relaxed), 14, &mut 0);
    assert!(h.remove_root_callback(id));
}

/// A stack scanner (a language runtime's own stack): what it reports is kept, marked during
/// concurrent marking rather than in the pause; removed, it keeps nothing.
#[test]
fn a_stack_scanner_reports_roots() {
    use std::sync::atomic::AtomicPtr;
    static TOP: AtomicPtr<u8> = AtomicPtr::new(ptr::null_mut());
    let h = Heap::new(Config {
        verify: true,
        ..Config::default()
    });
    let ty = node_type(h);
    let m = Mutator::attach(h);
    let id = m.add_stack_scanner(Box::new(|report| {
        report(TOP.load(Ordering::Relaxed) as usize);
        report(12345); // not an object: ignored
    }));
    TOP.store(tree(&m, ty, 12, &mut 0), Ordering::Relaxed);
    for _ in 0..3 {
        m.collect();
    }
    check_tree(TOP.load(Ordering::Relaxed), 12, &mut 0);
    assert!(
        h.stats().live_bytes >= 8191 * 24,
        "{}",
        h.stats().live_bytes
    );
    assert!(m.remove_stack_scanner(id));
    assert!(!m.remove_stack_scanner(id));
    m.collect();
    assert!(h.stats().live_bytes < 8191 * 24, "{}", h.stats().live_bytes);
}
