//! Concurrent marking under mutation: four mutators keep rewiring chains of nodes while the
//! collector marks (GOGC 25, so cycles follow each other), in verification mode, which
//! poisons what sweeping frees and checks after marking that no black object points to a
//! white one. Every operation that a wrong barrier or a wrong allocate-black would break is
//! exercised:
//! * moving a chain's only reference from the heap to the shadow stack and back (the
//!   deletion half of the barrier: the stack may have been scanned already);
//! * building new chains while marking (allocate-black, and the insertion half);
//! * handing chains between threads through a shared table behind a lock;
//! * global handles set and freed while marking;
//! * entering and leaving native code while stops of the world come and go.
//!
//! Each node carries its chain's tag and its position, so a node freed while reachable shows
//! as a wrong value (poison) or a broken chain. Bounded by iterations (about 2 s here); raise
//! `TRICOLOR_STRESS_ROUNDS` to run longer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tricolor_gc::{Config, Heap, Mutator, MutatorState, TypeId, raw};

/// `struct node { node *next; u64 tag; u64 pos; }` in the 32-byte class.
fn node_type(h: &Heap) -> TypeId {
    h.register_type("node", 24, &[0]).unwrap()
}

unsafe fn next(obj: *mut u8) -> *mut *mut u8 {
    obj.cast()
}

unsafe fn tag(obj: *mut u8) -> *mut u64 {
    // SAFETY: the caller's node.
    unsafe { obj.add(8).cast() }
}

unsafe fn pos(obj: *mut u8) -> *mut u64 {
    // SAFETY: the caller's node.
    unsafe { obj.add(16).cast() }
}

unsafe fn slot(arr: *mut u8, i: usize) -> *mut *mut u8 {
    // SAFETY: the caller's array has slot `i`.
    unsafe { arr.cast::<*mut u8>().add(i) }
}

/// Builds a chain of `len` nodes with `t` as tag; returns its head. Every node is reachable
/// from the head, which the caller roots through `keep` (pushed) while it builds.
fn build(m: &MutatorState, ty: TypeId, t: u64, len: u64, keep: &mut *mut u8) -> *mut u8 {
    *keep = std::ptr::null_mut();
    for p in (0..len).rev() {
        let n = m.alloc(ty);
        assert!(!n.is_null());
        // SAFETY: a fresh node; `keep` is rooted by the caller, so the chain built so far
        // survives this allocation.
        unsafe {
            *tag(n) = t;
            *pos(n) = p;
            m.write(n, next(n), *keep);
        }
        *keep = n;
    }
    *keep
}

/// Checks the chain at `head` (null is fine): one tag, consecutive positions.
fn check(head: *mut u8, what: &str) {
    let mut n = head;
    let mut want: Option<(u64, u64)> = None;
    // SAFETY: a reachable chain's nodes are live.
    unsafe {
        while !n.is_null() {
            if let Some((t, p)) = want {
                assert_eq!(
                    *tag(n),
                    t,
                    "{what}: node {n:p} tag (freed while reachable?)"
                );
                assert_eq!(*pos(n), p, "{what}: node {n:p} position");
            }
            want = Some((*tag(n), *pos(n) + 1));
            n = *next(n);
        }
    }
}

/// The node `k` links after `head` (or the last one).
fn walk(head: *mut u8, k: u64) -> *mut u8 {
    let mut n = head;
    // SAFETY: a reachable chain's nodes are live.
    unsafe {
        for _ in 0..k {
            let nx = *next(n);
            if nx.is_null() {
                break;
            }
            n = nx;
        }
    }
    n
}

/// A heap in verification mode with `GOGC` and `GOMAXPROCS` as given, and its node and
/// pointer-slot types.
fn verified_heap(gc_percent: i32, procs: usize) -> (&'static Heap, TypeId, TypeId) {
    verified_heap_with(Config {
        gc_percent,
        verify: true,
        procs,
        ..Config::default()
    })
}

fn verified_heap_with(config: Config) -> (&'static Heap, TypeId, TypeId) {
    let h = Heap::new(config);
    let refs = h.register_type("ref", 8, &[0]).unwrap();
    (h, node_type(h), refs)
}

const BAG: usize = 64;
const SHARED: usize = 32;

#[test]
fn chains_survive_rewiring_while_the_collector_marks() {
    rewire(0, Store::Checked);
}

/// The same with `GOMAXPROCS=16`: three mark workers beside the collector thread share the
/// marking (parallel marking, `collect` rule 11).
#[test]
fn chains_survive_rewiring_with_parallel_mark_workers() {
    rewire(16, Store::Checked);
}

/// The same through `write_unchecked` on a heap without verification (where it skips the
/// checks): the barrier itself, as an interpreter's hot path uses it. Without poisoning, a
/// node freed while reachable shows as a wrong tag once its slot is reused.
#[test]
fn chains_survive_rewiring_through_the_unchecked_barrier() {
    rewire(0, Store::Unchecked);
}

#[derive(Clone, Copy, PartialEq)]
enum Store {
    /// `write`, on a verified heap.
    Checked,
    /// `write_unchecked`, on a heap without verification.
    Unchecked,
}

fn rewire(procs: usize, store: Store) {
    let rounds: u64 = std::env::var("TRICOLOR_STRESS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400_000);
    let (h, ty, refs) = if store == Store::Checked {
        verified_heap(25, procs)
    } else {
        let h = Heap::new(Config {
            gc_percent: 25,
            ..Config::default()
        });
        (h, node_type(h), h.register_type("ref", 8, &[0]).unwrap())
    };
    let write: unsafe fn(&MutatorState, *mut u8, *mut *mut u8, *mut u8) = match store {
        Store::Checked => MutatorState::write,
        Store::Unchecked => MutatorState::write_unchecked,
    };
    let main = Mutator::attach(h);
    let shared = main.alloc_array(refs, SHARED);
    let shared_handle = raw::handle_new(&main, shared) as usize;
    let lock = Arc::new(Mutex::new(()));
    let next_tag = Arc::new(AtomicU64::new(1));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let lock = lock.clone();
            let next_tag = next_tag.clone();
            std::thread::spawn(move || {
                let m = Mutator::attach(h);
                let mut seed = (t + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
                let mut rnd = move || {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed
                };
                let mut bag = m.alloc_array(refs, BAG);
                let mut held: *mut u8 = std::ptr::null_mut();
                let mut building: *mut u8 = std::ptr::null_mut();
                // SAFETY: the locals outlive their roots (popped at the end).
                unsafe {
                    m.push_root(&mut bag);
                    m.push_root(&mut held);
                    m.push_root(&mut building);
                }
                let mut handles: Vec<usize> = Vec::new();
                for _ in 0..rounds {
                    if rnd() % 4 == 0 {
                        // In and out of native code, often while a stop of the world is
                        // pending: leaving must wait for the world to restart.
                        m.enter_native();
                        std::hint::spin_loop();
                        m.leave_native();
                    }
                    let i = rnd() as usize % BAG;
                    match rnd() % 8 {
                        0..=2 => {
                            // Cut a chain's tail and hold it only on the stack while other
                            // work (and marking) goes on, then link it back or elsewhere: a
                            // marker that has not reached the tail yet must still find it
                            // (the deletion half of the barrier; the stack may have been
                            // scanned already).
                            // SAFETY: `bag` has BAG slots; reachable nodes are live.
                            unsafe {
                                let head = *slot(bag, i);
                                if head.is_null() {
                                    continue;
                                }
                                let prev = walk(head, rnd() % 64);
                                held = *next(prev);
                                write(&m, prev, next(prev), std::ptr::null_mut());
                                for _ in 0..(rnd() % 40) {
                                    m.alloc(ty);
                                }
                                check(held, "held on the stack");
                                if rnd() % 2 == 0 {
                                    write(&m, prev, next(prev), held);
                                } else {
                                    let j = rnd() as usize % BAG;
                                    check(*slot(bag, j), "replaced");
                                    write(&m, bag, slot(bag, j), held);
                                }
                            }
                            // The collector reads `held` through its root slot: a volatile store,
                            // so the compiler keeps it.
                            // SAFETY: `held` is a live local.
                            unsafe { std::ptr::write_volatile(&mut held, std::ptr::null_mut()) };
                        }
                        3..=4 => {
                            let tg = next_tag.fetch_add(1, Ordering::Relaxed);
                            let head = build(&m, ty, tg, 1 + rnd() % 64, &mut building);
                            // SAFETY: as above.
                            unsafe { write(&m, bag, slot(bag, i), head) };
                            building = std::ptr::null_mut();
                        }
                        5 => {
                            // Swap with the shared table, under a lock taken in native mode.
                            m.enter_native();
                            let g = lock.lock().unwrap();
                            m.leave_native();
                            // SAFETY: the handle lives until the end of the test.
                            let table = unsafe { raw::handle_get(shared_handle as *const _) };
                            let k = rnd() as usize % SHARED;
                            // SAFETY: `table` has SHARED slots, `bag` BAG.
                            unsafe {
                                let theirs = *slot(table, k);
                                let mine = *slot(bag, i);
                                check(theirs, "shared");
                                write(&m, table, slot(table, k), mine);
                                write(&m, bag, slot(bag, i), theirs);
                            }
                            drop(g);
                        }
                        6 => {
                            // A handle created, moved and freed while marking may run.
                            // SAFETY: `bag` has BAG slots.
                            let c = unsafe { *slot(bag, i) };
                            let hd = raw::handle_new(&m, c);
                            // SAFETY: as above.
                            unsafe { write(&m, bag, slot(bag, i), std::ptr::null_mut()) };
                            handles.push(hd as usize);
                            if handles.len() > 8 {
                                let old = handles.remove(0) as *mut tricolor_gc::HandleSlot;
                                // SAFETY: a live handle of ours, freed once.
                                unsafe {
                                    let o = raw::handle_get(old);
                                    check(o, "in a handle");
                                    let j = rnd() as usize % BAG;
                                    write(&m, bag, slot(bag, j), o);
                                    raw::handle_free(old);
                                }
                            }
                        }
                        _ => {
                            // SAFETY: as above.
                            check(unsafe { *slot(bag, i) }, "in the bag");
                        }
                    }
                }
                for hd in handles {
                    // SAFETY: live handles, freed once.
                    unsafe {
                        check(raw::handle_get(hd as *const _), "in a handle at the end");
                        raw::handle_free(hd as *mut _);
                    }
                }
                for k in 0..BAG {
                    // SAFETY: as above.
                    check(unsafe { *slot(bag, k) }, "in the bag at the end");
                }
                m.pop_roots(3);
            })
        })
        .collect();
    for th in threads {
        main.enter_native();
        th.join().unwrap();
        main.leave_native();
    }
    let s = h.stats();
    assert!(s.cycles >= 10, "only {} cycles ran", s.cycles);
    // SAFETY: the live handle; its table's chains are checked, then the handle freed.
    unsafe {
        let table = raw::handle_get(shared_handle as *const _);
        for k in 0..SHARED {
            check(*slot(table, k), "shared at the end");
        }
        raw::handle_free(shared_handle as *mut _);
    }
    main.collect();
    assert_eq!(h.stats().live_bytes, 0, "everything is unreachable now");
}

/// Mark assists (`collect` rule 10): a large live graph (slow to mark), GOGC 10 (little
/// runway) and a mutator that allocates garbage as fast as it can, so allocation reaches the
/// goal while marking and the mutator marks beside the collector (`GOMAXPROCS=2`: no mark
/// worker), the two handing grey work to each other. The graph keeps changing meanwhile; it must survive whole.
#[test]
fn assists_mark_beside_the_collector_and_lose_nothing() {
    // Assists exist only while marking runs beside the mutators: concurrent marking, also
    // when the suite runs with the `mark-in-pause` feature.
    let (h, ty, refs) = verified_heap_with(Config {
        gc_percent: 10,
        verify: true,
        procs: 2,
        mark_in_pause: false,
        ..Config::default()
    });
    let m = Mutator::attach(h);
    const CHAINS: usize = 2000;
    let mut bag = m.alloc_array(refs, CHAINS);
    let mut building: *mut u8 = std::ptr::null_mut();
    // SAFETY: the locals outlive their roots.
    unsafe {
        m.push_root(&mut bag);
        m.push_root(&mut building);
    }
    for i in 0..CHAINS {
        let head = build(&m, ty, i as u64, 100, &mut building);
        // SAFETY: `bag` has CHAINS slots.
        unsafe { m.write(bag, slot(bag, i), head) };
    }
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    // Allocation outruns marking here by about ten times in a release build (runway 640 KB,
    // 6.4 MB to mark), so assists run within the first round; on a loaded machine, or in a
    // debug build whose allocation path is slow, more rounds may be needed, up to ten.
    for _ in 0..10 {
        for round in 0..300_000u64 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            m.alloc(ty);
            if round % 50 == 0 {
                // Rebuild one chain: the old one becomes garbage, the new one is black.
                let i = seed as usize % CHAINS;
                let head = build(&m, ty, i as u64, 100, &mut building);
                // SAFETY: as above.
                unsafe { m.write(bag, slot(bag, i), head) };
            }
        }
        if h.stats().assist_ns > 0 {
            break;
        }
    }
    let s = h.stats();
    if !cfg!(debug_assertions) {
        assert!(s.assist_ns > 0, "no assist ran ({} cycles)", s.cycles);
    }
    for i in 0..CHAINS {
        // SAFETY: as above.
        let head = unsafe { *slot(bag, i) };
        check(head, "a chain after assists");
        // SAFETY: a live chain of 100 nodes.
        assert_eq!(unsafe { *tag(head) }, i as u64);
        assert_eq!(walk(head, 200), walk(head, 99), "chain {i} has 100 nodes");
    }
    m.pop_roots(2);
}

/// A large pointer array (2.4 MB: its marking is split into 128 KiB oblets that the collector
/// and three mark workers share) whose slots keep being replaced while marking runs.
#[test]
fn a_large_array_is_marked_in_shared_oblets() {
    let (h, ty, refs) = verified_heap(25, 16);
    let m = Mutator::attach(h);
    const SLOTS: usize = 300_000;
    let mut big = m.alloc_array(refs, SLOTS);
    let mut building: *mut u8 = std::ptr::null_mut();
    // SAFETY: the locals outlive their roots.
    unsafe {
        m.push_root(&mut big);
        m.push_root(&mut building);
    }
    let mut tags = vec![0u64; SLOTS];
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for round in 0..400_000u64 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let i = seed as usize % SLOTS;
        let head = build(&m, ty, round + 1, 2, &mut building);
        // SAFETY: `big` has SLOTS slots.
        unsafe { m.write(big, slot(big, i), head) };
        tags[i] = round + 1;
    }
    m.collect();
    assert!(h.stats().cycles >= 5);
    for (i, &t) in tags.iter().enumerate() {
        // SAFETY: as above.
        let head = unsafe { *slot(big, i) };
        if t == 0 {
            assert!(head.is_null());
        } else {
            check(head, "in the large array");
            // SAFETY: a live chain.
            assert_eq!(unsafe { *tag(head) }, t, "slot {i}");
        }
    }
    m.pop_roots(2);
}

/// A mutator leaving native code while the world is stopped must wait for the restart (the
/// collector is touching its caches and stack). A root callback, which runs with the world
/// stopped, tells a native mutator to leave and watches for 50 ms that it has not come back.
#[test]
fn leave_native_waits_while_the_world_is_stopped() {
    use std::sync::atomic::AtomicBool;
    let h = Heap::new(Config::default());
    let go = Arc::new(AtomicBool::new(false));
    let left = Arc::new(AtomicBool::new(false));
    let early = Arc::new(AtomicBool::new(false));
    let armed = Arc::new(AtomicBool::new(false));
    let (g, l, e, a) = (go.clone(), left.clone(), early.clone(), armed.clone());
    let id = h.add_root_callback(Box::new(move |_| {
        if a.swap(false, Ordering::SeqCst) {
            g.store(true, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(50));
            if l.load(Ordering::SeqCst) {
                e.store(true, Ordering::SeqCst);
            }
        }
    }));
    let (g, l) = (go.clone(), left.clone());
    let native = std::thread::spawn(move || {
        let m = Mutator::attach(h);
        m.enter_native();
        while !g.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        m.leave_native();
        l.store(true, Ordering::SeqCst);
    });
    let main = Mutator::attach(h);
    while h.stats().mutators < 2 {
        std::thread::yield_now();
    }
    armed.store(true, Ordering::SeqCst);
    main.collect();
    main.enter_native();
    native.join().unwrap();
    main.leave_native();
    assert!(go.load(Ordering::SeqCst), "the callback ran");
    assert!(left.load(Ordering::SeqCst));
    assert!(
        !early.load(Ordering::SeqCst),
        "leave_native returned while the world was stopped"
    );
    assert!(h.remove_root_callback(id));
}
