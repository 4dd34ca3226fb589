//! Collector objects in the heap profile: sampled at the allocator's rate with their type
//! name as the `type` label, estimated without bias, and seen dead once the sweep frees them.
//! One test: the sampling rate is process-wide.

use tricolor_alloc::profile::{self, proto::Profile};
use tricolor_gc::{Config, Heap, Mutator};

const KEPT: usize = 100_000;
const GARBAGE: usize = 500_000;
const NODE: usize = 24;
/// What the heap holds for one: its size class, 32 bytes.
const HELD: usize = 32;

/// (alloc bytes, inuse bytes) over the samples labelled `type=ty`, and whether every such
/// sample's stack names `func`.
fn by_type(p: &Profile, ty: &str, func: &str) -> (i64, i64, bool) {
    let mut t = (0, 0, true);
    for s in p.sample.iter().filter(|s| p.label(s, "type") == Some(ty)) {
        t.0 += s.value[1];
        t.1 += s.value[3];
        t.2 &= p.stack(s).iter().any(|n| n.contains(func));
    }
    t
}

fn near(got: i64, want: usize, what: &str) {
    let r = got as f64 / want as f64;
    assert!(
        (0.8..1.25).contains(&r),
        "{what}: estimated {got}, true {want} ({r:.3}x)"
    );
}

#[inline(never)]
fn keep_a_list(m: &Mutator, node: tricolor_gc::TypeId, head: &mut *mut u8) {
    for _ in 0..KEPT {
        let n = m.alloc(node);
        // SAFETY: `n` is a fresh node whose word 0 is its pointer slot; `head` is rooted.
        unsafe { m.write(n, n.cast::<*mut u8>(), *head) };
        *head = n;
    }
}

#[inline(never)]
fn make_garbage(m: &Mutator, junk: tricolor_gc::TypeId) {
    for _ in 0..GARBAGE {
        std::hint::black_box(m.alloc(junk));
    }
}

#[test]
fn collector_objects_are_sampled_with_their_type() {
    // 8 KiB: about 390 samples of the kept list and 1,950 of the garbage.
    profile::set_rate(8 * 1024);
    let h = Heap::new(Config::default());
    let node = h.register_type("node", NODE, &[0]).unwrap();
    let junk = h.register_type("junk", NODE, &[]).unwrap();
    let m = Mutator::attach(h);
    let mut head: *mut u8 = std::ptr::null_mut();
    // SAFETY: `head` outlives its root slot (popped below).
    unsafe { m.push_root(&mut head) };
    keep_a_list(&m, node, &mut head);
    make_garbage(&m, junk);
    m.collect();
    m.collect();
    h.wait_finalizers_queued();

    let p = Profile::read(&profile::encode()).unwrap();
    let (alloc, inuse, named) = by_type(&p, "node", "keep_a_list");
    near(alloc, KEPT * HELD, "kept nodes, allocated");
    near(inuse, KEPT * HELD, "kept nodes, live");
    assert!(named, "the nodes' samples name keep_a_list");
    let (alloc, inuse, named) = by_type(&p, "junk", "make_garbage");
    near(alloc, GARBAGE * HELD, "garbage, allocated");
    assert_eq!(inuse, 0, "the sweep saw every sampled garbage object die");
    assert!(named, "the garbage's samples name make_garbage");

    // Dropping the list: its samples die at the next collection.
    head = std::ptr::null_mut();
    m.collect();
    h.wait_finalizers_queued();
    let p = Profile::read(&profile::encode()).unwrap();
    assert_eq!(by_type(&p, "node", "keep_a_list").1, 0);
    m.pop_roots(1);
    let _ = head;
    profile::set_rate(0);
}
