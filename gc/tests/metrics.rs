//! Metrics by Go's names: the memory classes partition the mapped total, the `/gc/` figures
//! agree with the heap's statistics, and names without a value read as `Bad`. One test per
//! binary would not be needed for the GC figures, but the partition is exact only while
//! nothing else allocates, so this file holds a single test.

use tricolor_gc::metrics::{self, Kind, Sample, Value};
use tricolor_gc::{Config, Heap, Mutator};

fn read_all(heap: Option<&Heap>) -> Vec<Sample> {
    let mut s: Vec<Sample> = metrics::all().map(|d| Sample::new(d.name)).collect();
    match heap {
        Some(h) => h.read_metrics(&mut s),
        None => metrics::read(&mut s),
    }
    s
}

fn u64_of(s: &[Sample], name: &str) -> u64 {
    match s.iter().find(|x| x.name == name).map(|x| &x.value) {
        Some(Value::Uint64(v)) => *v,
        other => panic!("{name}: {other:?}"),
    }
}

const LEAVES: [&str; 5] = [
    "/memory/classes/heap/objects:bytes",
    "/memory/classes/heap/unused:bytes",
    "/memory/classes/heap/free:bytes",
    "/memory/classes/heap/released:bytes",
    "/memory/classes/metadata/other:bytes",
];

fn assert_partition(s: &[Sample]) {
    let sum: u64 = LEAVES.iter().map(|n| u64_of(s, n)).sum();
    assert_eq!(sum, u64_of(s, "/memory/classes/total:bytes"), "{s:?}");
}

#[test]
fn metrics_by_go_names() {
    // Every memory class leaf is offered, and only the leaves and the total are under
    // /memory/classes/ (so the partition test covers them all).
    let under: Vec<_> = metrics::all()
        .map(|d| d.name)
        .filter(|n| n.starts_with("/memory/classes/"))
        .collect();
    assert_eq!(under.len(), LEAVES.len() + 1, "{under:?}");

    // Small and large blocks held, some freed: every class has something in it.
    let mut held = Vec::new();
    for i in 0..20_000 {
        let size = [16, 48, 200, 1000, 40_000][i % 5];
        let p = tricolor_alloc::alloc(size, 8);
        assert!(!p.is_null());
        held.push((p, size));
    }
    for (p, size) in held.drain(..).step_by(2) {
        // SAFETY: allocated just above with this size and alignment, freed once.
        unsafe { tricolor_alloc::dealloc(p, size, 8) };
    }
    tricolor_alloc::release_memory();
    let before = read_all(None);
    assert_partition(&before);
    assert!(u64_of(&before, "/memory/classes/heap/objects:bytes") > 1 << 20);
    assert!(u64_of(&before, "/tricolor/malloc/small/allocs:objects") >= 16_000);
    assert!(u64_of(&before, "/tricolor/malloc/large/frees:objects") >= 1_000);
    // No default heap has been made: the /gc/ figures have no heap to describe, and reading
    // them did not make one.
    let cycles = before
        .iter()
        .find(|x| x.name == "/gc/cycles/total:gc-cycles");
    assert_eq!(cycles.unwrap().value, Value::Bad);
    assert_eq!(
        u64_of(&before, "/gc/gomemlimit:bytes"),
        tricolor_alloc::memory_limit() as u64
    );
    let mut unknown = [
        Sample::new("/gc/heap/stacks:bytes"),
        Sample::new("nonsense"),
    ];
    metrics::read(&mut unknown);
    assert!(unknown.iter().all(|s| s.value == Value::Bad));

    // A collected heap: the figures are its statistics', the histogram holds every pause.
    let h = Heap::new(Config::default());
    let ty = h.register_type("pair", 16, &[0]).unwrap();
    let m = Mutator::attach(h);
    for _ in 0..5 {
        for _ in 0..10_000 {
            m.alloc(ty);
        }
        m.collect();
    }
    let s = read_all(Some(h));
    let st = h.stats();
    assert_eq!(u64_of(&s, "/gc/cycles/total:gc-cycles"), st.cycles);
    assert!(st.cycles >= 5);
    assert_eq!(u64_of(&s, "/gc/heap/goal:bytes"), st.heap_goal);
    assert_eq!(u64_of(&s, "/gc/heap/live:bytes"), st.live_bytes);
    assert_eq!(u64_of(&s, "/gc/gogc:percent"), 100);
    for name in ["/gc/pauses:seconds", "/sched/pauses/total/gc:seconds"] {
        assert_eq!(
            metrics::describe(name).unwrap().kind,
            Kind::Float64Histogram
        );
        let Some(Value::Float64Histogram(hist)) =
            s.iter().find(|x| x.name == name).map(|x| x.value.clone())
        else {
            panic!("{name} is not a histogram");
        };
        assert_eq!(hist.buckets.len(), hist.counts.len() + 1);
        assert_eq!(hist.counts.iter().sum::<u64>(), st.pauses);
        // The longest pause is in a bucket no lower than the one holding it.
        let max = st.pause_max_ns as f64 * 1e-9;
        let top = hist.counts.iter().rposition(|&c| c > 0).unwrap();
        assert!(hist.buckets[top] <= max && max < hist.buckets[top + 1]);
    }
    drop(m);
    assert_partition(&read_all(Some(h)));
}
