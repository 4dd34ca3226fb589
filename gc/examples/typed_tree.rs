//! The safe typed layer: a GC'd binary tree in Rust, with no `unsafe`.
//!
//! `cargo run --release -p tricolor-gc --example typed_tree`

use std::cell::Cell;
use tricolor_gc::{Heap, Local, Member, Mutator, Scope, object};

object! {
    /// A binary tree node: two pointer fields and a value.
    struct Node {
        left: Member<Node>,
        right: Member<Node>,
        value: Cell<i64>,
    }
}

fn build<'s>(s: &Scope<'s>, depth: u32, value: i64) -> Local<'s, Node> {
    let n = s.alloc(Node {
        left: Member::null(),
        right: Member::null(),
        value: Cell::new(value),
    });
    if depth > 0 {
        let l = build(s, depth - 1, 2 * value);
        s.set(&n, |n| &n.left, Some(&l));
        let r = build(s, depth - 1, 2 * value + 1);
        s.set(&n, |n| &n.right, Some(&r));
    }
    n
}

fn sum(s: &Scope<'_>, n: &Local<'_, Node>) -> i64 {
    // The children read here are rooted in a nested scope, popped when it returns.
    s.scope(|inner| {
        let children = [inner.get(n, |n| &n.left), inner.get(n, |n| &n.right)];
        n.value.get()
            + children
                .iter()
                .flatten()
                .map(|c| sum(inner, c))
                .sum::<i64>()
    })
}

fn main() {
    let heap = Heap::default_heap();
    let m = Mutator::attach(heap);
    let kept = m.scope(|s| {
        let long_lived = build(s, 16, 1);
        // Garbage: trees dropped as soon as they are built.
        for _ in 0..50 {
            s.scope(|inner| {
                build(inner, 12, 1);
            });
        }
        s.collect();
        let total = sum(s, &long_lived);
        println!("long-lived tree of depth 16 sums to {total}");
        s.global(&long_lived)
    });
    let st = heap.stats();
    println!(
        "{} collections, {} KiB live, {} KiB goal, max pause {:.3} ms",
        st.cycles,
        st.live_bytes >> 10,
        st.heap_goal >> 10,
        st.pause_max_ns as f64 / 1e6
    );
    m.scope(|s| {
        println!(
            "still reachable through a global: root value {}",
            s.local(&kept).value.get()
        )
    });
}
