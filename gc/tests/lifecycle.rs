//! Pools, weak handles, finalizers, cleanups and ephemeron tables together, on several
//! mutators, while another thread forces collections, with verification on: nothing reachable
//! is freed (verification poisons freed objects, so every content check would fail on one),
//! no finalizer or cleanup runs twice, and no weak handle or table ever yields a freed object.
//! `TRICOLOR_STRESS_ROUNDS` runs it longer.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use tricolor_gc::{EphemeronTable, Member, Mutator, Pool, object};

object! {
    struct Thing {
        next: Member<Thing>,
        id: AtomicU64,
    }
}

fn thing(id: u64) -> Thing {
    Thing {
        next: Member::null(),
        id: AtomicU64::new(id),
    }
}

/// Pooled objects carry this id while pooled.
const POOLED: u64 = u64::MAX - 1;

#[test]
fn everything_at_once_under_concurrent_collections() {
    let rounds: u64 = common::stress_rounds(2_000, 200) as u64;
    let h = common::verified_heap();
    let pool = Arc::new(Pool::with_new(h, || thing(POOLED)));
    let table = Arc::new(EphemeronTable::<Thing, Thing>::new(h));
    let finalized = Arc::new(Mutex::new(HashMap::<u64, u32>::new()));
    let cleaned = Arc::new(Mutex::new(HashMap::<u64, u32>::new()));
    let start = Arc::new(Barrier::new(4));
    let collections = common::Collections::start(h, start.clone());
    let workers: Vec<_> = (0..3u64)
        .map(|t| {
            let (pool, table, fin, cl, start) = (
                pool.clone(),
                table.clone(),
                finalized.clone(),
                cleaned.clone(),
                start.clone(),
            );
            std::thread::spawn(move || {
                let m = Mutator::attach(h);
                start.wait();
                for round in 0..rounds {
                    m.scope(|s| {
                        let base = (t << 40) | (round << 8);
                        let mut weak = Vec::new();
                        let mut keys = Vec::new();
                        for i in 0..16u64 {
                            let id = base | i;
                            // From the pool: it must come back as it was put.
                            let p = pool.get(s).unwrap();
                            assert_eq!(p.id.load(Ordering::Relaxed), POOLED, "pooled object freed");
                            let o = s.alloc(thing(id));
                            let child = s.alloc(thing(!id));
                            s.set(&o, |x| &x.next, Some(&child));
                            weak.push((id, s.weak(&o)));
                            let f = fin.clone();
                            s.set_finalizer(&o, move |u, o| {
                                let id = o.id.load(Ordering::Relaxed);
                                let c = u.get(&o, |x| &x.next).expect("kept for the finalizer");
                                assert_eq!(c.id.load(Ordering::Relaxed), !id);
                                *f.lock().unwrap().entry(id).or_default() += 1;
                            });
                            let c = cl.clone();
                            s.add_cleanup(&child, move || {
                                *c.lock().unwrap().entry(id).or_default() += 1;
                            });
                            // An ephemeron entry from every other object to a fresh value.
                            if i % 2 == 0 {
                                s.scope(|u| {
                                    let v = u.alloc(thing(id ^ 0x5555));
                                    table.set(u, &o, &v);
                                });
                                keys.push((id, o));
                            }
                            pool.put(s, &p);
                        }
                        for _ in 0..3 {
                            for (id, w) in &weak {
                                s.scope(|u| {
                                    if let Some(o) = u.upgrade(w) {
                                        assert_eq!(
                                            o.id.load(Ordering::Relaxed),
                                            *id,
                                            "weak yielded a freed object"
                                        );
                                    }
                                    u.alloc(thing(0));
                                });
                            }
                            for (id, k) in &keys {
                                s.scope(|u| {
                                    let v = table.get(u, k).expect("a live key keeps its value");
                                    assert_eq!(
                                        v.id.load(Ordering::Relaxed),
                                        id ^ 0x5555,
                                        "value freed"
                                    );
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
    let total = 3 * rounds * 16;
    for _ in 0..20 {
        if finalized.lock().unwrap().len() as u64 == total
            && cleaned.lock().unwrap().len() as u64 == total
        {
            break;
        }
        m.collect();
        m.wait_finalizers();
    }
    let (fin, cl) = (finalized.lock().unwrap(), cleaned.lock().unwrap());
    assert_eq!(fin.len() as u64, total, "every finalizer ran");
    assert!(fin.values().all(|&n| n == 1), "a finalizer ran twice");
    assert_eq!(cl.len() as u64, total, "every cleanup ran");
    assert!(cl.values().all(|&n| n == 1), "a cleanup ran twice");
    assert!(table.is_empty(), "dead keys' entries go: {}", table.len());
}
