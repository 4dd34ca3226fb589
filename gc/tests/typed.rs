//! The safe typed layer: objects, fields through the barrier, scopes as roots, globals.

use tricolor_gc::{Config, Heap, Local, Member, Mutator, Scope, object};

object! {
    struct Pair {
        first: Member<Pair>,
        second: Member<Leaf>,
        id: u64,
    }
}

object! {
    struct Leaf {
        bytes: [u8; 40],
        n: u32,
    }
}

fn chain<'s>(s: &Scope<'s>, len: u64) -> Local<'s, Pair> {
    let head = s.alloc(Pair {
        first: Member::null(),
        second: Member::null(),
        id: 0,
    });
    let mut tail = head;
    for i in 1..len {
        let p = s.alloc(Pair {
            first: Member::null(),
            second: Member::null(),
            id: i,
        });
        let leaf = s.alloc(Leaf {
            bytes: [i as u8; 40],
            n: i as u32,
        });
        s.set(&p, |p| &p.second, Some(&leaf));
        s.set(&tail, |t| &t.first, Some(&p));
        tail = p;
    }
    head
}

#[test]
fn typed_objects_survive_while_scoped_and_die_after() {
    let h = Heap::new(Config {
        verify: true,
        ..Config::default()
    });
    let m = Mutator::attach(h);
    m.scope(|s| {
        let head = chain(s, 10_000);
        for _ in 0..20 {
            s.scope(|inner| {
                chain(inner, 5_000);
            });
        }
        s.collect();
        // Pair: 24 bytes (32-byte class); Leaf: 44 bytes (48-byte class).
        assert_eq!(h.stats().live_bytes, 10_000 * 32 + 9_999 * 48);
        let mut p = head;
        for i in 0..10_000u64 {
            assert_eq!(p.id, i);
            if i > 0 {
                let leaf = s.get(&p, |p| &p.second).expect("leaf");
                assert_eq!(leaf.n, i as u32);
                assert!(leaf.bytes.iter().all(|&b| b == i as u8));
            }
            match s.get(&p, |p| &p.first) {
                Some(next) => p = next,
                None => assert_eq!(i, 9_999),
            }
        }
        // Cut the chain after its head: the rest dies at the next collection.
        s.set(&head, |h| &h.first, None);
        assert!(head.first.is_null());
    });
    m.collect();
    assert_eq!(
        h.stats().live_bytes,
        0,
        "the scope's end unrooted everything"
    );
}

/// `Pair` holds `Member`s and plain data, so it is `Sync` and its `Global` may cross threads.
#[test]
fn globals_keep_objects_across_scopes_and_threads() {
    let h = Heap::new(Config {
        verify: true,
        ..Config::default()
    });
    let m = Mutator::attach(h);
    let g = m.scope(|s| s.global(&chain(s, 100)));
    m.collect();
    assert_eq!(h.stats().live_bytes, 100 * 32 + 99 * 48);
    // The joining thread waits in native mode: a mutator blocked outside the heap must not
    // hold up the other thread's collection.
    m.enter_native();
    let g = std::thread::spawn(move || {
        let other = Mutator::attach(h);
        other.scope(|s| {
            let head = s.local(&g);
            let second = s.get(&head, |p| &p.first).unwrap();
            assert_eq!(second.id, 1);
        });
        other.collect();
        g
    })
    .join()
    .unwrap();
    m.leave_native();
    assert_eq!(h.stats().live_bytes, 100 * 32 + 99 * 48);
    drop(g);
    m.collect();
    assert_eq!(h.stats().live_bytes, 0);
}
