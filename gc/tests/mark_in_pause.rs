//! `Config::mark_in_pause`: with marking in one pause, pointer stores need no barrier. Each
//! worker keeps two rooted arrays of nodes allocated before the collections start, and swaps
//! nodes between them with plain stores, which hide a node from a concurrent marker (taken
//! from the array not yet scanned, put into the one already scanned) while a thread collects
//! back to back; every node's value is checked whenever it is swapped, and at the end (freed
//! objects are poisoned in verification mode). Run with concurrent marking instead
//! (`mark_in_pause: false`), the same swaps lose nodes: the verifier aborts with "black
//! object ... (array) points to white object".

mod common;

use common::{Collections, stress_rounds};
use std::sync::{Arc, Barrier};
use tricolor_gc::{Config, Heap, Mutator};

const SLOTS: usize = 4096;
const WORKERS: usize = 2;
/// Collections the swaps must run beside.
const CYCLES: u64 = 50;

fn heap() -> &'static Heap {
    Heap::new(Config {
        verify: true,
        mark_in_pause: true,
        ..Config::default()
    })
}

/// A node: one data word holding `value`, checked whenever the node is moved.
fn node(m: &Mutator, ty: tricolor_gc::TypeId, value: u64) -> *mut u8 {
    let p = m.alloc(ty);
    assert!(!p.is_null());
    // SAFETY: a fresh node of 8 data bytes.
    unsafe { p.cast::<u64>().write(value) };
    p
}

/// The value a node holds.
///
/// # Safety
/// `p` is a node.
unsafe fn value(p: *mut u8) -> u64 {
    // SAFETY: the caller's contract.
    unsafe { p.cast::<u64>().read() }
}

#[test]
fn plain_stores_lose_nothing_when_marking_is_in_the_pause() {
    let h = heap();
    let data = h.register_type("node", 8, &[]).unwrap();
    let ptrs: Vec<usize> = (0..SLOTS).map(|i| i * 8).collect();
    let arr = h.register_type("array", SLOTS * 8, &ptrs).unwrap();
    let rounds = stress_rounds(200_000, 20);
    let start = Arc::new(Barrier::new(WORKERS + 1));
    let gc = Collections::start(h, start.clone());
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let start = start.clone();
            std::thread::spawn(move || {
                let m = Mutator::attach(h);
                let mut a = m.alloc(arr);
                let mut b = m.alloc(arr);
                // SAFETY: `a` and `b` live on this frame until the roots are popped.
                unsafe {
                    m.push_root(&mut a);
                    m.push_root(&mut b);
                }
                let (sa, sb) = (a.cast::<*mut u8>(), b.cast::<*mut u8>());
                // What each slot of `a` (row 0) and `b` (row 1) holds: node values.
                let mut expect: [Vec<u64>; 2] = [
                    (0..SLOTS).map(|i| (w * 1_000_000 + i) as u64).collect(),
                    (0..SLOTS)
                        .map(|i| (w * 1_000_000 + 500_000 + i) as u64)
                        .collect(),
                ];
                for (i, (&va, &vb)) in expect[0].iter().zip(&expect[1]).enumerate() {
                    // SAFETY: slot `i` of each array; plain stores (no barrier), which this
                    // mode allows.
                    unsafe {
                        sa.add(i).write(node(&m, data, va));
                        sb.add(i).write(node(&m, data, vb));
                    }
                }
                start.wait();
                let mut x = 0x9e37_79b9u64 + w as u64;
                // At least `rounds` swaps, and on until the collector has run `CYCLES` cycles
                // since the start (a swap is a few nanoseconds; a cycle a millisecond or more).
                for r in 0.. {
                    if r >= rounds && r % 4096 == 0 && h.stats().cycles >= CYCLES {
                        break;
                    }
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let (i, j) = (
                        (x % SLOTS as u64) as usize,
                        ((x >> 8) % SLOTS as u64) as usize,
                    );
                    // Swap a[i] and b[j] with plain stores: b's node is now reachable only
                    // from a, and a's only from b. No node is new (so none is allocated black).
                    // SAFETY: slots of the rooted arrays; every listed node is live (checked).
                    unsafe {
                        let from_b = sb.add(j).read();
                        let from_a = sa.add(i).read();
                        assert_eq!(value(from_b), expect[1][j], "round {r}: a node was lost");
                        assert_eq!(value(from_a), expect[0][i], "round {r}: a node was lost");
                        sa.add(i).write(from_b);
                        sb.add(j).write(from_a);
                        let v = expect[0][i];
                        expect[0][i] = expect[1][j];
                        expect[1][j] = v;
                    }
                    // No allocation here: the collector's stops wait for a safepoint.
                    m.safepoint();
                }
                for (i, (&va, &vb)) in expect[0].iter().zip(&expect[1]).enumerate() {
                    // SAFETY: as above.
                    unsafe {
                        assert_eq!(value(sa.add(i).read()), va);
                        assert_eq!(value(sb.add(i).read()), vb);
                    }
                }
                m.pop_roots(2);
            })
        })
        .collect();
    for t in workers {
        t.join().unwrap();
    }
    let cycles = gc.stop();
    assert!(
        cycles >= CYCLES,
        "only {cycles} collections ran during the swaps"
    );
    let s = h.stats();
    assert_eq!(s.pauses, s.cycles, "one pause per cycle");
}
