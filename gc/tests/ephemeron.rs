//! Ephemeron tables (JavaScript's `WeakMap`): what JavaScript documents, the key-value cycle
//! that weak-keyed tables with strong values leak, chains of ephemerons, and a stress test of
//! mutators using tables while collections run, with verification on.

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use tricolor_gc::{EphemeronTable, Member, Mutator, object};

object! {
    struct Obj {
        next: Member<Obj>,
        id: AtomicU64,
    }
}

fn obj(id: u64) -> Obj {
    Obj {
        next: Member::null(),
        id: AtomicU64::new(id),
    }
}

#[test]
fn a_value_lives_while_its_key_is_reachable_otherwise() {
    let h = common::verified_heap();
    let m = Mutator::attach(h);
    let t: EphemeronTable<Obj, Obj> = EphemeronTable::new(h);
    m.scope(|s| {
        let key = s.alloc(obj(1));
        let wv = s.scope(|u| {
            let v = u.alloc(obj(2));
            t.set(u, &key, &v);
            u.weak(&v)
        });
        for _ in 0..3 {
            s.collect();
            let v = s.scope(|u| t.get(u, &key).map(|v| v.id.load(Ordering::Relaxed)));
            assert_eq!(v, Some(2), "the key is reachable: the value stays");
        }
        assert!(s.scope(|u| u.upgrade(&wv).is_some()));
        assert_eq!(t.len(), 1);
        // Replacing the value lets the old one go.
        let v3 = s.alloc(obj(3));
        t.set(s, &key, &v3);
        s.collect();
        assert!(s.scope(|u| u.upgrade(&wv).is_none()));
        assert!(t.remove(s, &key));
        assert!(!t.remove(s, &key));
        assert!(t.get(s, &key).is_none());
    });
}

/// The point of ephemerons: a value that points to its key keeps neither alive (a weak-keyed
/// table with strong values would leak both).
#[test]
fn a_value_pointing_to_its_key_does_not_keep_it() {
    let h = common::verified_heap();
    let m = Mutator::attach(h);
    let t: EphemeronTable<Obj, Obj> = EphemeronTable::new(h);
    m.scope(|s| {
        let (wk, wv) = s.scope(|u| {
            let k = u.alloc(obj(1));
            let v = u.alloc(obj(2));
            u.set(&v, |x| &x.next, Some(&k));
            t.set(u, &k, &v);
            (u.weak(&k), u.weak(&v))
        });
        s.collect();
        s.collect();
        assert!(s.upgrade(&wk).is_none() && s.upgrade(&wv).is_none());
    });
    m.wait_finalizers(); // finishes the sweep, which drops the dead key's entry
    assert_eq!(t.len(), 0);
}

/// A chain through two tables: k1 → v1 (in t1), where v1 is k2's only path, and k2 → v2
/// (in t2). While k1 lives both values live (the fixpoint: v1 marks k2, which marks v2); once
/// k1 dies, everything goes.
#[test]
fn ephemerons_chain_through_tables() {
    let h = common::verified_heap();
    let m = Mutator::attach(h);
    let (t1, t2): (EphemeronTable<Obj, Obj>, EphemeronTable<Obj, Obj>) =
        (EphemeronTable::new(h), EphemeronTable::new(h));
    m.scope(|s| {
        let k1 = s.scope(|u| u.global(&u.alloc(obj(1))));
        let w2 = s.scope(|u| {
            let k1 = u.local(&k1);
            let v1 = u.alloc(obj(10));
            let k2 = u.alloc(obj(20));
            let v2 = u.alloc(obj(30));
            u.set(&v1, |x| &x.next, Some(&k2));
            t1.set(u, &k1, &v1);
            t2.set(u, &k2, &v2);
            u.weak(&v2)
        });
        for _ in 0..3 {
            s.collect();
            assert!(
                s.scope(|u| u.upgrade(&w2).is_some()),
                "reachable through the chain"
            );
        }
        drop(k1);
        s.collect();
        assert!(s.scope(|u| u.upgrade(&w2).is_none()));
    });
}

/// Mutators map keys to values in shared tables and drop some keys while another thread
/// forces collections: with verification on, a value of a live key is never freed (its id
/// checks), and the entries of dead keys go.
#[test]
fn tables_under_concurrent_collections_keep_live_keys_values() {
    let rounds: u64 = common::stress_rounds(2_000, 200) as u64;
    let h = common::verified_heap();
    let tables = Arc::new([EphemeronTable::<Obj, Obj>::new(h), EphemeronTable::new(h)]);
    let start = Arc::new(Barrier::new(4));
    let collections = common::Collections::start(h, start.clone());
    let workers: Vec<_> = (0..3u64)
        .map(|t| {
            let (tables, start) = (tables.clone(), start.clone());
            std::thread::spawn(move || {
                let m = Mutator::attach(h);
                start.wait();
                for round in 0..rounds {
                    m.scope(|s| {
                        let tab = &tables[(round + t) as usize % 2];
                        let keys: Vec<_> = (0..16u64)
                            .map(|i| {
                                let id = (t << 40) | (round << 8) | i;
                                let k = s.alloc(obj(id));
                                s.scope(|u| {
                                    let v = u.alloc(obj(!id));
                                    tab.set(u, &k, &v);
                                });
                                (id, k)
                            })
                            .collect();
                        for _ in 0..4 {
                            for (id, k) in &keys {
                                s.scope(|u| {
                                    let v = tab.get(u, k).expect("a live key keeps its value");
                                    assert_eq!(v.id.load(Ordering::Relaxed), !id, "value intact");
                                    u.alloc(obj(0));
                                });
                            }
                        }
                    });
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    collections.stop();
    let m = Mutator::attach(h);
    m.collect();
    m.wait_finalizers();
    assert_eq!(
        tables[0].len() + tables[1].len(),
        0,
        "dead keys' entries go"
    );
}
