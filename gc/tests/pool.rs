//! The pool cleared each cycle (Go's `sync.Pool` with its victim cache): what Go documents
//! and the Go 1.13 victim behaviour, through the typed layer and the raw one, and a stress
//! test of several mutators sharing pools while collections run, with verification on.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use tricolor_gc::{Member, Mutator, Pool, object};

object! {
    struct Buf {
        next: Member<Buf>,
        magic: AtomicU64,
        data: [u64; 6],
    }
}

const MAGIC: u64 = 0x5eed_f00d_cafe_b0b0;

fn fresh() -> Buf {
    Buf {
        next: Member::null(),
        magic: AtomicU64::new(MAGIC),
        data: [0; 6],
    }
}

#[test]
fn get_returns_what_was_put_else_a_new_object_else_none() {
    let h = common::verified_heap();
    let m = Mutator::attach(h);
    let empty: Pool<Buf> = Pool::new(h);
    let pool = Pool::with_new(h, fresh);
    m.scope(|s| {
        assert!(empty.get(s).is_none(), "no constructor, nothing pooled");
        let a = pool.get(s).expect("the constructor makes one");
        assert_eq!(a.magic.load(Ordering::Relaxed), MAGIC);
        a.magic.store(1, Ordering::Relaxed);
        pool.put(s, &a);
        let b = pool.get(s).unwrap();
        assert!(b.ptr_eq(&a), "the pooled object comes back");
        assert_eq!(b.magic.load(Ordering::Relaxed), 1, "as it was put");
        empty.put(s, &b);
        assert!(empty.get(s).unwrap().ptr_eq(&a));
        assert!(empty.get(s).is_none());
    });
    let st = pool.stats();
    assert_eq!((st.hits, st.misses, st.pooled), (1, 1, 0));
}

/// Go 1.13: a pool in steady use keeps hitting across collections (what the cycle's start
/// moves to the victim cache is still handed out), while an idle pool is empty after two
/// cycles and its objects are freed.
#[test]
fn steady_use_hits_across_cycles_and_an_idle_pool_empties_in_two() {
    let h = common::verified_heap();
    let m = Mutator::attach(h);
    let pool = Pool::with_new(h, fresh);
    m.scope(|s| {
        for i in 0..10_000 {
            let b = pool.get(s).unwrap();
            assert_eq!(b.magic.load(Ordering::Relaxed), MAGIC);
            pool.put(s, &b);
            if i % 1000 == 999 {
                s.collect();
            }
        }
    });
    let st = pool.stats();
    assert_eq!(
        (st.hits, st.misses),
        (9_999, 1),
        "one construction, then hits"
    );
    // Fill the pool with 1,000 objects (about 80 KB), then leave it idle.
    m.scope(|s| {
        let held: Vec<_> = (0..1000).map(|_| pool.get(s).unwrap()).collect();
        for b in &held {
            pool.put(s, b);
        }
    });
    assert_eq!(pool.stats().pooled, 1000);
    m.collect();
    assert_eq!(
        pool.stats().pooled,
        1000,
        "one cycle: the victim cache holds them"
    );
    let with_victims = h.stats().live_bytes;
    assert!(with_victims >= 1000 * 64, "{with_victims}");
    m.collect();
    assert_eq!(pool.stats().pooled, 0, "two cycles: empty");
    assert!(
        h.stats().live_bytes + 1000 * 64 <= with_victims,
        "freed: {} then {}",
        with_victims,
        h.stats().live_bytes
    );
}

/// Another mutator takes what one put: it steals from the shared part, then the victims.
#[test]
fn other_mutators_steal_from_a_pool() {
    let h = common::verified_heap();
    let pool = Arc::new(Pool::with_new(h, fresh));
    let m = Mutator::attach(h);
    m.scope(|s| {
        let held: Vec<_> = (0..100).map(|_| pool.get(s).unwrap()).collect();
        for (i, b) in held.iter().enumerate() {
            b.data.iter().for_each(|_| ());
            b.magic.store(i as u64, Ordering::Relaxed);
            pool.put(s, b);
        }
    });
    m.collect(); // half of them could be in the victim cache: all must still be found
    let p = pool.clone();
    let taken = std::thread::spawn(move || {
        let m = Mutator::attach(h);
        m.scope(|s| {
            let mut seen: Vec<u64> = (0..100)
                .map(|_| p.get(s).unwrap().magic.load(Ordering::Relaxed))
                .collect();
            seen.sort_unstable();
            seen
        })
    })
    .join()
    .unwrap();
    assert_eq!(taken, (0..100).collect::<Vec<_>>());
    assert_eq!(
        pool.stats().misses,
        100,
        "only the first 100 gets constructed"
    );
}

/// Dropping a pool drops what it holds.
#[test]
fn a_dropped_pool_holds_nothing() {
    let h = common::verified_heap();
    let m = Mutator::attach(h);
    let pool = Pool::with_new(h, fresh);
    m.scope(|s| {
        let held: Vec<_> = (0..1000).map(|_| pool.get(s).unwrap()).collect();
        held.iter().for_each(|b| pool.put(s, b));
    });
    m.collect();
    let before = h.stats().live_bytes;
    drop(pool);
    m.collect();
    assert!(h.stats().live_bytes + 1000 * 64 <= before);
}

/// Several mutators get, use and put objects of two pools (linking some of them through
/// pointer fields while they hold them) while another thread forces collections: with
/// verification on, a pooled object that were freed would be poisoned and fail the magic
/// check, and a black object pointing to a white one aborts the test.
#[test]
fn pools_under_concurrent_collections_lose_nothing() {
    let rounds: usize = common::stress_rounds(200_000, 2);
    let h = common::verified_heap();
    // Objects the pool makes carry NEWLY and pooled ones POOLED; the filler allocations carry
    // MAGIC: a pooled object freed and its slot reused, or poisoned, shows at the next `get`.
    const NEWLY: u64 = 0x4e45_5759;
    const POOLED: u64 = 0x504f_4f4c;
    let made = || Buf {
        magic: AtomicU64::new(NEWLY),
        ..fresh()
    };
    let pools = Arc::new([Pool::with_new(h, made), Pool::with_new(h, made)]);
    let start = Arc::new(Barrier::new(4));
    let collections = common::Collections::start(h, start.clone());
    let workers: Vec<_> = (0..3u64)
        .map(|t| {
            let (pools, start) = (pools.clone(), start.clone());
            std::thread::spawn(move || {
                let m = Mutator::attach(h);
                start.wait();
                for i in 0..rounds {
                    m.scope(|s| {
                        let p = &pools[(i + t as usize) % 2];
                        let a = p.get(s).unwrap();
                        let b = p.get(s).unwrap();
                        for x in [&a, &b] {
                            let v = x.magic.load(Ordering::Relaxed);
                            assert!(
                                v == NEWLY || v == POOLED,
                                "a pooled object was freed: {v:#x}"
                            );
                        }
                        // Link them while held, unlink before giving them back.
                        s.set(&a, |x| &x.next, Some(&b));
                        for _ in 0..8 {
                            s.alloc(fresh());
                        }
                        let again = s.get(&a, |x| &x.next).unwrap();
                        assert!(again.ptr_eq(&b));
                        s.set(&a, |x| &x.next, None);
                        a.magic.store(POOLED, Ordering::Relaxed);
                        b.magic.store(POOLED, Ordering::Relaxed);
                        p.put(s, &b);
                        p.put(s, &a);
                    });
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let cycles = collections.stop();
    assert!(cycles > 0);
    let st = pools[0].stats();
    assert!(st.hits > st.misses, "{st:?}");
}

/// The case `get` and `put` shade for (`pool` rule 2): while the collector is still scanning
/// global handles (a million of them, so the window is wide), a mutator that has already
/// scanned its own stack takes a pooled object and puts it back after the collector has
/// scanned the pool. Neither scan saw it; only the shading keeps it alive. Without it the
/// object is freed while pooled, and verification's poison shows in the next `get`.
#[test]
fn an_object_moved_between_scanned_roots_during_marking_is_kept() {
    let h = common::verified_heap();
    let m = Mutator::attach(h);
    // The pool's constructor makes NEWLY objects (an idle pool may drop its object when a
    // wait at the goal outlasts two cycles: then `get` makes a new one).
    const NEWLY: u64 = 0x4e45_5759;
    let pool = Arc::new(Pool::with_new(h, || Buf {
        magic: AtomicU64::new(NEWLY),
        ..fresh()
    }));
    let handles: Vec<_> = m.scope(|s| {
        let keep = s.alloc(fresh());
        (0..1_000_000).map(|_| s.global(&keep)).collect()
    });
    // The pooled object is marked as such: were it freed while pooled, its slot would be
    // poisoned or reused by one of the fresh objects allocated below, which carry `MAGIC`.
    const POOLED: u64 = 0x9001;
    m.scope(|s| {
        let b = pool.get(s).unwrap();
        b.magic.store(POOLED, Ordering::Relaxed);
        pool.put(s, &b);
    });
    let stop = Arc::new(AtomicBool::new(false));
    let collector = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let m = Mutator::attach(h);
            for _ in 0..50 {
                m.collect();
            }
            stop.store(true, Ordering::Relaxed);
        })
    };
    while !stop.load(Ordering::Relaxed) {
        m.scope(|s| {
            let b = pool.get(s).unwrap();
            let v = b.magic.load(Ordering::Relaxed);
            assert!(
                v == POOLED || v == NEWLY,
                "the pooled object was freed: {v:#x}"
            );
            b.magic.store(POOLED, Ordering::Relaxed);
            // Hold it across safepoints: a cycle's stack scan happens at the first one after
            // its start, so it sees `b` only if the cycle started before the `get`.
            for _ in 0..2000 {
                s.scope(|t| {
                    t.alloc(fresh());
                });
            }
            pool.put(s, &b);
        });
        // And safepoints while it is pooled (its `Local` gone with the scope above): a stack
        // scan here does not see it.
        m.scope(|s| {
            for _ in 0..2000 {
                s.scope(|t| {
                    t.alloc(fresh());
                });
            }
        });
    }
    collector.join().unwrap();
    drop(handles);
}
