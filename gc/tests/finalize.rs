//! Finalizers and cleanups (Go's `runtime.SetFinalizer` and `runtime.AddCleanup`): the
//! behaviour Go documents, and a stress test with verification on.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use tricolor_gc::{Global, Member, Mutator, object};

object! {
    struct Res {
        next: Member<Res>,
        id: AtomicU64,
    }
}

fn res(id: u64) -> Res {
    Res {
        next: Member::null(),
        id: AtomicU64::new(id),
    }
}

/// Collections until `done` holds or 20 have run (finalizers run on their own thread).
fn collect_until(m: &Mutator, done: impl Fn() -> bool) {
    for _ in 0..20 {
        if done() {
            return;
        }
        m.collect();
        m.wait_finalizers();
    }
}

#[test]
fn a_finalizer_runs_once_with_its_object_and_what_it_reaches() {
    let h = common::verified_heap();
    let m = Mutator::attach(h);
    let seen = Arc::new(Mutex::new(Vec::new()));
    m.scope(|s| {
        let s2 = seen.clone();
        s.scope(|t| {
            let a = t.alloc(res(1));
            let b = t.alloc(res(2));
            t.set(&a, |x| &x.next, Some(&b));
            t.set_finalizer(&a, move |u, a| {
                let b = u.get(&a, |x| &x.next).expect("what it reaches is kept");
                s2.lock()
                    .unwrap()
                    .push((a.id.load(Ordering::Relaxed), b.id.load(Ordering::Relaxed)));
            });
        });
    });
    collect_until(&m, || !seen.lock().unwrap().is_empty());
    for _ in 0..3 {
        m.collect();
        m.wait_finalizers();
    }
    assert_eq!(
        *seen.lock().unwrap(),
        vec![(1, 2)],
        "once, with its object intact"
    );
    assert!(
        h.stats().live_bytes < 64,
        "freed after: {}",
        h.stats().live_bytes
    );
}

#[test]
fn a_reachable_object_is_not_finalized_and_a_cleared_finalizer_never_runs() {
    let h = common::verified_heap();
    let m = Mutator::attach(h);
    let ran = Arc::new(AtomicUsize::new(0));
    m.scope(|s| {
        let keep = s.alloc(res(1));
        let r = ran.clone();
        s.set_finalizer(&keep, move |_, _| {
            r.fetch_add(1, Ordering::SeqCst);
        });
        let r = ran.clone();
        s.scope(|t| {
            let gone = t.alloc(res(2));
            t.set_finalizer(&gone, move |_, _| {
                r.fetch_add(100, Ordering::SeqCst);
            });
            t.clear_finalizer(&gone);
        });
        for _ in 0..3 {
            s.collect();
            m.wait_finalizers();
        }
        assert_eq!(ran.load(Ordering::SeqCst), 0);
    });
    collect_until(&m, || ran.load(Ordering::SeqCst) != 0);
    assert_eq!(
        ran.load(Ordering::SeqCst),
        1,
        "the kept one, once it was dropped"
    );
}

/// A finalizer that stores its object in a global resurrects it: it stays, and its finalizer
/// does not run again (Go: it must be set again).
#[test]
fn a_finalizer_can_resurrect_its_object() {
    let h = common::verified_heap();
    let m = Mutator::attach(h);
    let saved: Arc<Mutex<Option<Global<Res>>>> = Arc::new(Mutex::new(None));
    let runs = Arc::new(AtomicUsize::new(0));
    m.scope(|s| {
        let (sv, r) = (saved.clone(), runs.clone());
        s.scope(|t| {
            let a = t.alloc(res(9));
            t.set_finalizer(&a, move |u, a| {
                r.fetch_add(1, Ordering::SeqCst);
                *sv.lock().unwrap() = Some(u.global(&a));
            });
        });
    });
    collect_until(&m, || saved.lock().unwrap().is_some());
    for _ in 0..3 {
        m.collect();
        m.wait_finalizers();
    }
    m.scope(|s| {
        let g = saved.lock().unwrap();
        let a = s.local(g.as_ref().unwrap());
        assert_eq!(a.id.load(Ordering::Relaxed), 9, "resurrected intact");
    });
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// Go: "If A points at B, both have finalizers, and they are otherwise unreachable, only the
/// finalizer for A runs; once A is freed, the finalizer for B can run."
#[test]
fn finalizers_run_in_dependency_order() {
    let h = common::verified_heap();
    let m = Mutator::attach(h);
    let order = Arc::new(Mutex::new(Vec::new()));
    m.scope(|s| {
        s.scope(|t| {
            let a = t.alloc(res(1));
            let b = t.alloc(res(2));
            t.set(&a, |x| &x.next, Some(&b));
            for o in [&a, &b] {
                let ord = order.clone();
                t.set_finalizer(o, move |_, o| {
                    ord.lock().unwrap().push(o.id.load(Ordering::Relaxed))
                });
            }
        });
    });
    collect_until(&m, || order.lock().unwrap().len() == 2);
    assert_eq!(*order.lock().unwrap(), vec![1, 2]);
}

/// Weak handles to an object are cleared before its finalizer runs.
#[test]
fn weak_handles_are_cleared_before_the_finalizer_runs() {
    let h = common::verified_heap();
    let m = Mutator::attach(h);
    let cleared = Arc::new(Mutex::new(None));
    m.scope(|s| {
        let c = cleared.clone();
        s.scope(|t| {
            let a = t.alloc(res(1));
            let w = Arc::new(t.weak(&a));
            t.set_finalizer(&a, move |u, _| {
                *c.lock().unwrap() = Some(u.upgrade(&w).is_none());
            });
        });
    });
    collect_until(&m, || cleared.lock().unwrap().is_some());
    assert_eq!(*cleared.lock().unwrap(), Some(true));
}

#[test]
fn cleanups_run_after_the_object_is_unreachable_without_keeping_it() {
    let h = common::verified_heap();
    let m = Mutator::attach(h);
    let ran = Arc::new(AtomicUsize::new(0));
    let (w, cancelled) = m.scope(|s| {
        s.scope(|t| {
            let a = t.alloc(res(1));
            for k in [1, 10, 100] {
                let r = ran.clone();
                t.add_cleanup(&a, move || {
                    r.fetch_add(k, Ordering::SeqCst);
                });
            }
            let r = ran.clone();
            let c = t.add_cleanup(&a, move || {
                r.fetch_add(1000, Ordering::SeqCst);
            });
            let w = t.weak(&a);
            (w, t.cancel_cleanup(c))
        })
    });
    assert!(cancelled);
    m.collect();
    m.wait_finalizers();
    assert_eq!(
        ran.load(Ordering::SeqCst),
        111,
        "every cleanup but the cancelled one"
    );
    m.scope(|s| assert!(s.upgrade(&w).is_none(), "not resurrected"));
    assert!(
        h.stats().live_bytes < 32,
        "freed in that cycle: {}",
        h.stats().live_bytes
    );
}

#[test]
fn a_cleanup_cannot_be_cancelled_once_it_ran() {
    let h = common::verified_heap();
    let m = Mutator::attach(h);
    let c = m.scope(|s| s.scope(|t| t.add_cleanup(&t.alloc(res(1)), || ())));
    m.collect();
    m.wait_finalizers();
    assert!(!m.scope(|s| s.cancel_cleanup(c)));
}

/// Mutators give objects finalizers and cleanups, keep some reachable through globals and
/// drop the others, while another thread forces collections. Every dropped object's
/// finalizer runs exactly once with its contents intact (verification poisons freed
/// objects), no kept object is finalized, and every cleanup runs once.
#[test]
fn finalizers_under_concurrent_collections_run_once_each() {
    let rounds: u64 = common::stress_rounds(300, 1000) as u64;
    let h = common::verified_heap();
    let finalized = Arc::new(Mutex::new(std::collections::HashMap::<u64, u32>::new()));
    let cleaned = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(4));
    let collections = common::Collections::start(h, start.clone());
    let workers: Vec<_> = (0..3u64)
        .map(|t| {
            let (fin, cl, start) = (finalized.clone(), cleaned.clone(), start.clone());
            std::thread::spawn(move || {
                let m = Mutator::attach(h);
                start.wait();
                let mut kept = Vec::new();
                for round in 0..rounds {
                    m.scope(|s| {
                        for i in 0..32u64 {
                            let id = (t << 40) | (round << 8) | i;
                            let o = s.alloc(res(id));
                            let child = s.alloc(res(!id));
                            s.set(&o, |x| &x.next, Some(&child));
                            let f = fin.clone();
                            s.set_finalizer(&o, move |u, o| {
                                let id = o.id.load(Ordering::Relaxed);
                                let c = u.get(&o, |x| &x.next).expect("child kept");
                                assert_eq!(c.id.load(Ordering::Relaxed), !id, "child intact");
                                *f.lock().unwrap().entry(id).or_default() += 1;
                            });
                            let c2 = cl.clone();
                            s.add_cleanup(&child, move || {
                                c2.fetch_add(1, Ordering::Relaxed);
                            });
                            if i % 8 == 0 {
                                kept.push((id, s.global(&o)));
                            }
                        }
                    });
                }
                // While their globals hold them, none of the kept ones was finalized.
                let f = fin.lock().unwrap();
                assert!(
                    kept.iter().all(|(id, _)| !f.contains_key(id)),
                    "a reachable object was finalized"
                );
                drop(f);
                kept.into_iter().map(|(id, _)| id).collect::<Vec<_>>()
            })
        })
        .collect();
    let kept: Vec<u64> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap())
        .collect();
    collections.stop();
    let m = Mutator::attach(h);
    let total = 3 * rounds * 32;
    // The kept ones' globals were dropped with their threads: all can now be finalized.
    collect_until(&m, || finalized.lock().unwrap().len() as u64 == total);
    collect_until(&m, || cleaned.load(Ordering::Relaxed) == total);
    let fin = finalized.lock().unwrap();
    assert_eq!(fin.len() as u64, total);
    assert!(fin.values().all(|&n| n == 1), "a finalizer ran twice");
    assert!(kept.iter().all(|id| fin.contains_key(id)));
    assert_eq!(cleaned.load(Ordering::Relaxed), total, "each cleanup once");
}

/// Queued finalizers' objects are roots until their finalizer runs (`finalize` rule 2): the
/// first finalizer holds the finalizer thread (at safepoints) while cycles run, and the
/// objects queued behind it must survive them intact.
#[test]
fn queued_objects_survive_cycles_until_their_finalizer_runs() {
    let h = common::verified_heap();
    let m = Mutator::attach(h);
    let release = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::new()));
    m.scope(|s| {
        s.scope(|t| {
            let first = t.alloc(res(0));
            let (rel, st) = (release.clone(), started.clone());
            t.set_finalizer(&first, move |u, _| {
                st.store(true, Ordering::SeqCst);
                while !rel.load(Ordering::SeqCst) {
                    u.safepoint();
                    std::thread::yield_now();
                }
            });
        });
    });
    for _ in 0..20 {
        if started.load(Ordering::SeqCst) {
            break;
        }
        m.collect();
        h.wait_finalizers_queued();
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(started.load(Ordering::SeqCst));
    // The finalizer thread is busy: these are queued behind it.
    m.scope(|s| {
        s.scope(|t| {
            for i in 1..=50u64 {
                let o = t.alloc(res(i));
                let child = t.alloc(res(1000 + i));
                t.set(&o, |x| &x.next, Some(&child));
                let sn = seen.clone();
                t.set_finalizer(&o, move |u, o| {
                    let c = u.get(&o, |x| &x.next).map(|c| c.id.load(Ordering::Relaxed));
                    sn.lock().unwrap().push((o.id.load(Ordering::Relaxed), c));
                });
            }
        });
    });
    m.collect();
    h.wait_finalizers_queued();
    for _ in 0..3 {
        m.collect();
        // Garbage between cycles reuses what a wrongly freed object left.
        m.scope(|s| {
            for _ in 0..10_000 {
                s.alloc(res(u64::MAX));
            }
        });
    }
    release.store(true, Ordering::SeqCst);
    m.wait_finalizers();
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_unstable();
    let want: Vec<_> = (1..=50u64).map(|i| (i, Some(1000 + i))).collect();
    assert_eq!(seen, want);
}
