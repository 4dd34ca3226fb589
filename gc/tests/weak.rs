//! Weak handles (Go 1.24's `weak.Pointer`): what Go documents, small and large objects, and a
//! stress test of readers racing concurrent collections with verification on.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use tricolor_gc::{Config, Heap, Member, Mutator, object};

object! {
    struct Item {
        next: Member<Item>,
        tag: AtomicU64,
    }
}

object! {
    struct Big {
        tag: AtomicU64,
        fill: [u64; 8000],
    }
}

fn item(tag: u64) -> Item {
    Item {
        next: Member::null(),
        tag: AtomicU64::new(tag),
    }
}

#[test]
fn a_weak_handle_yields_its_object_while_reachable_and_none_after() {
    let h = common::verified_heap();
    let m = Mutator::attach(h);
    m.scope(|s| {
        let (w1, w2, g) = s.scope(|t| {
            let a = t.alloc(item(7));
            (t.weak(&a), t.weak(&a), t.global(&a))
        });
        // Held by the global handle: reachable across collections.
        for _ in 0..3 {
            s.collect();
            s.scope(|t| {
                let a = t.upgrade(&w1).expect("reachable through the global");
                assert_eq!(a.tag.load(Ordering::Relaxed), 7);
            });
        }
        drop(g);
        s.collect();
        assert!(s.upgrade(&w1).is_none(), "unreachable: cleared");
        assert!(s.upgrade(&w2).is_none(), "every handle to it at once");
    });
}

#[test]
fn an_upgraded_handle_keeps_its_object_for_the_scope() {
    let h = common::verified_heap();
    let m = Mutator::attach(h);
    m.scope(|s| {
        let w = s.scope(|t| t.weak(&t.alloc(item(3))));
        // Not collected yet: still there, and the upgrade roots it for this scope.
        let a = s.upgrade(&w).expect("nothing collected yet");
        s.collect();
        s.collect();
        assert_eq!(a.tag.load(Ordering::Relaxed), 3);
        assert!(s.upgrade(&w).is_some());
    });
    m.scope(|s| {
        let w = s.scope(|t| t.weak(&t.alloc(item(4))));
        s.collect();
        assert!(s.upgrade(&w).is_none());
    });
}

#[test]
fn large_objects_weak_handles_clear_too() {
    let h = common::verified_heap();
    let m = Mutator::attach(h);
    m.scope(|s| {
        let (w, kept) = s.scope(|t| {
            let b = t.alloc(Big {
                tag: AtomicU64::new(11),
                fill: [0; 8000],
            });
            let k = t.alloc(Big {
                tag: AtomicU64::new(12),
                fill: [0; 8000],
            });
            (t.weak(&b), (t.weak(&k), t.global(&k)))
        });
        s.collect();
        assert!(
            s.upgrade(&w).is_none(),
            "a dead large object's handle clears"
        );
        let k = s.upgrade(&kept.0).expect("a live one stays");
        assert_eq!(k.tag.load(Ordering::Relaxed), 12);
    });
}

/// Once the collector has found an object unreachable, no read yields it, even before the
/// sweep that frees it has reached its span (`weak` rule 2: the read sweeps the span first).
/// With background sweeping off and nothing allocated after the cycle, the span is unswept
/// when the handle is read.
#[test]
fn an_object_found_dead_is_not_yielded_before_its_span_is_swept() {
    let h = Heap::new(Config {
        verify: true,
        background_sweep: false,
        ..Config::default()
    });
    let m = Mutator::attach(h);
    m.scope(|s| {
        let w = s.scope(|t| t.weak(&t.alloc(item(5))));
        s.collect();
        assert!(s.upgrade(&w).is_none());
    });
    m.scope(|s| {
        let w = s.scope(|t| {
            let b = t.alloc(Big {
                tag: AtomicU64::new(6),
                fill: [0; 8000],
            });
            t.weak(&b)
        });
        s.collect();
        assert!(s.upgrade(&w).is_none());
    });
}

/// A cache of weak handles does not keep its objects: they are freed.
#[test]
fn weak_handles_do_not_keep_objects_alive() {
    let h = common::verified_heap();
    let m = Mutator::attach(h);
    m.scope(|s| {
        let cache: Vec<_> = s.scope(|t| (0..10_000).map(|i| t.weak(&t.alloc(item(i)))).collect());
        s.collect();
        assert!(cache.iter().all(|w| s.upgrade(w).is_none()));
        assert!(
            h.stats().live_bytes < 10_000 * 24,
            "{}",
            h.stats().live_bytes
        );
    });
}

/// Mutators keep some objects reachable and drop others, reading weak handles to all of them
/// while another thread forces collections. A handle never yields a freed object (verification
/// poisons freed ones: the tag check fails), never yields a different object, and once it
/// yields none it never yields one again; handles to objects kept reachable never clear.
#[test]
fn readers_racing_collections_never_see_a_freed_object() {
    let rounds: usize = common::stress_rounds(20_000, 20);
    let h = common::verified_heap();
    let start = Arc::new(Barrier::new(4));
    let collections = common::Collections::start(h, start.clone());
    let workers: Vec<_> = (0..3u64)
        .map(|t| {
            let start = start.clone();
            std::thread::spawn(move || {
                let m = Mutator::attach(h);
                start.wait();
                for round in 0..rounds as u64 {
                    m.scope(|s| {
                        // 64 objects: the even ones kept in a chain from a global, the odd
                        // ones dropped at once.
                        let base = (t << 48) | (round << 8);
                        let head = s.alloc(item(u64::MAX));
                        let keep = s.global(&head);
                        let mut weak = Vec::new();
                        let mut tail = head;
                        s.scope(|u| {
                            for i in 0..64 {
                                let o = u.alloc(item(base | i));
                                weak.push(u.weak(&o));
                                if i % 2 == 0 {
                                    u.set(&tail, |x| &x.next, Some(&o));
                                    // The chain's tail, rooted in the outer scope.
                                    tail = s.upgrade(weak.last().unwrap()).unwrap();
                                }
                            }
                        });
                        let mut gone = [false; 64];
                        // What the reads yield stays held (rooted in `s`) and is checked again
                        // at the end: an object a read revived must not be freed meanwhile.
                        let mut held = Vec::new();
                        for pass in 0..4 {
                            for (i, w) in weak.iter().enumerate() {
                                match s.upgrade(w) {
                                    Some(o) => {
                                        assert!(!gone[i], "a cleared handle yielded again");
                                        assert_eq!(o.tag.load(Ordering::Relaxed), base | i as u64);
                                        if pass == 0 {
                                            held.push((o, base | i as u64));
                                        }
                                    }
                                    None => {
                                        assert!(i % 2 == 1, "a reachable object's handle cleared");
                                        gone[i] = true;
                                    }
                                }
                                s.scope(|u| {
                                    u.alloc(item(0));
                                });
                            }
                        }
                        for (o, tag) in &held {
                            assert_eq!(
                                o.tag.load(Ordering::Relaxed),
                                *tag,
                                "a held object was freed"
                            );
                        }
                        drop(keep);
                    });
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    collections.stop();
}
