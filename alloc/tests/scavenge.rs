//! Returning memory to the OS, measured from outside: RSS from `/proc/self/statm` after a
//! spike of a few hundred MiB of mixed small and large objects, with `release_memory()` and
//! with the background scavenger alone; the statistics' partition against RSS; and the contents
//! of memory reused after it was released (zero where promised, the program's data intact).
//!
//! Each test that reads RSS runs in its own child process (the helper tests below, selected by
//! an environment variable), so the other tests of this file cannot disturb its figures.
//!
//! Not built with `expensive-checks`: its validator walks every free page after every
//! page-heap operation, and these tests make hundreds of MiB of free pages.
#![cfg(not(feature = "expensive-checks"))]

use std::process::Command;
use std::time::{Duration, Instant};
use tricolor_alloc::{alloc, alloc_zeroed, free, release_memory, stats};

const MIB: usize = 1 << 20;

fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize
}

/// Sizes of a mixed heap: mostly small objects of several classes, and large ones from 40 KiB
/// to 2 MiB, about half the bytes each.
fn spike_sizes(total: usize) -> Vec<usize> {
    let small = [24, 48, 100, 256, 700, 1024, 3000, 4096, 9000, 16384, 30000];
    let large = [40_000, 100_000, 300_000, 1 << 20, 2 << 20];
    let mut sizes = Vec::new();
    let (mut s, mut l) = (0, 0);
    let mut i = 0;
    while s + l < total {
        if s <= l {
            let n = small[i % small.len()];
            sizes.push(n);
            s += n;
        } else {
            let n = large[i % large.len()];
            sizes.push(n);
            l += n;
        }
        i += 1;
    }
    sizes
}

/// Allocates the spike, touching every page, and returns the blocks.
fn allocate(sizes: &[usize]) -> Vec<(*mut u8, usize)> {
    sizes
        .iter()
        .map(|&n| {
            let p = alloc(n, 8);
            assert!(!p.is_null());
            // SAFETY: a fresh block of `n` bytes.
            unsafe { p.write_bytes(0x5C, n) };
            (p, n)
        })
        .collect()
}

fn free_all(blocks: Vec<(*mut u8, usize)>) {
    for (p, _) in blocks {
        // SAFETY: each block is ours and unused from here.
        unsafe { free(p) };
    }
}

/// Runs the `#[ignore]`d helper `name` in a child process with `env` set; asserts it passed.
fn run_child(name: &str, env: &[(&str, &str)]) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        name,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("TRICOLOR_SCAVENGE_CHILD", "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    println!("{text}");
    assert!(out.status.success(), "{name} failed in its child process");
    assert!(text.contains("1 passed"), "{name} did not run: {text}");
}

fn in_child() -> bool {
    std::env::var_os("TRICOLOR_SCAVENGE_CHILD").is_some()
}

const SPIKE: usize = 384 * MIB;
/// What may stay resident after a release: metadata (span records, pagemap leaves, per-CPU
/// slabs) and blocks in the caches of CPUs that other threads of the test harness used.
const SLACK: usize = 24 * MIB;

#[test]
#[ignore = "helper: run in a child process by rss_returns_after_a_spike"]
fn spike_then_release() {
    if !in_child() {
        return;
    }
    let base = rss();
    let sizes = spike_sizes(SPIKE);
    let blocks = allocate(&sizes);
    let peak = rss();
    assert!(
        peak >= base + SPIKE * 9 / 10,
        "spike not resident: {peak} vs {base}"
    );
    free_all(blocks);
    let released = release_memory();
    let after = rss();
    println!(
        "release_memory: base {} MiB, peak {} MiB, after {} MiB, released {} MiB",
        base / MIB,
        peak / MIB,
        after / MIB,
        released / MIB
    );
    assert!(
        after <= base + SLACK,
        "RSS {after} stayed above {base} + slack after release_memory"
    );

    // Again, and now the program does nothing: the background scavenger alone returns it.
    let blocks = allocate(&sizes);
    let peak = rss();
    free_all(blocks);
    let t0 = Instant::now();
    while rss() > base + SLACK && t0.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let after = rss();
    let s = stats();
    println!(
        "scavenger: peak {} MiB, after {} MiB in {:.1} s; scavenger released {} MiB using {:.1} ms CPU",
        peak / MIB,
        after / MIB,
        t0.elapsed().as_secs_f64(),
        s.scavenger_released / MIB as u64,
        s.scavenger_cpu_ns as f64 / 1e6
    );
    assert!(
        after <= base + SLACK,
        "the scavenger left RSS at {after} (base {base})"
    );
    assert!(s.scavenger_released >= (SPIKE / 2) as u64, "{s:?}");
}

#[test]
fn rss_returns_after_a_spike() {
    run_child("spike_then_release", &[]);
}

#[test]
fn rss_returns_after_a_spike_with_per_thread_caches() {
    run_child("spike_then_release", &[("TRICOLOR_PERCPU", "0")]);
}

#[test]
fn rss_returns_after_a_spike_without_the_thread_when_the_program_allocates() {
    run_child("spike_then_inline_release", &[("TRICOLOR_SCAVENGER", "0")]);
}

#[test]
#[ignore = "helper: run in a child process"]
fn spike_then_inline_release() {
    if !in_child() {
        return;
    }
    let base = rss();
    free_all(allocate(&spike_sizes(SPIKE)));
    // No thread: the checks run from the slow paths of a program that keeps allocating.
    let t0 = Instant::now();
    while rss() > base + SLACK && t0.elapsed() < Duration::from_secs(30) {
        let p = alloc(64 << 10, 8);
        // SAFETY: ours.
        unsafe { free(p) };
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        rss() <= base + SLACK,
        "RSS stayed at {} (base {base})",
        rss()
    );
}

#[test]
#[ignore = "helper: run in a child process by statistics_partition_mapped_and_track_rss"]
fn statistics_reconcile() {
    if !in_child() {
        return;
    }
    let check = |what: &str| {
        let s = stats();
        assert_eq!(s.parts(), s.mapped, "{what}: parts do not add up: {s:?}");
        s
    };
    let s0 = check("start");
    let rss0 = rss();
    // Exact accounting of small objects of one class: 10 000 blocks of 96 bytes.
    let class96 = tricolor_alloc::size_class::class_for(96, 8).unwrap();
    let counts = || tricolor_alloc::class_stats(class96).unwrap();
    let c0 = counts();
    let small: Vec<_> = (0..10_000).map(|_| alloc(96, 8)).collect();
    let s1 = check("small");
    assert_eq!(s1.in_use_small - s0.in_use_small, 10_000 * 96, "{s1:?}");
    // Counted exactly, in both front ends (the per-CPU count rides in the committing store):
    // nothing else here allocates 96-byte blocks.
    let c1 = counts();
    assert_eq!(c1.allocs - c0.allocs, 10_000, "{c0:?} {c1:?}");
    assert_eq!(c1.frees, c0.frees, "{c0:?} {c1:?}");
    assert!(s1.small_allocs - s0.small_allocs >= 10_000, "{s0:?} {s1:?}");
    // A class's counts survive its blocks moving through the slow paths: free them all,
    // flush the caches, and allocate them again.
    for &p in &small {
        // SAFETY: ours, freed once (reallocated below).
        unsafe { free(p) };
    }
    let c2 = counts();
    assert_eq!(c2.allocs, c1.allocs, "{c2:?}");
    assert_eq!(c2.frees - c1.frees, 10_000, "{c1:?} {c2:?}");
    release_memory();
    let small: Vec<_> = (0..10_000).map(|_| alloc(96, 8)).collect();
    let c3 = counts();
    assert_eq!(c3.allocs - c2.allocs, 10_000, "{c2:?} {c3:?}");
    assert_eq!(c3.frees, c2.frees, "{c2:?} {c3:?}");
    let blocks = allocate(&spike_sizes(200 * MIB));
    let s2 = check("spike");
    let rss2 = rss();
    let in_use = (s2.in_use_small + s2.in_use_large) - (s1.in_use_small + s1.in_use_large);
    assert!(in_use >= 200 * MIB as u64, "{s2:?}");
    // Held heap memory (mapped minus released minus metadata) grew as RSS did: all of it was
    // touched. Metadata is resident only where written, so it bounds the difference.
    let held = |s: &tricolor_alloc::AllocStats| (s.mapped - s.released - s.metadata) as i64;
    let held_delta = held(&s2) - held(&s0);
    let rss_delta = rss2 as i64 - rss0 as i64;
    let meta_delta = (s2.metadata - s0.metadata) as i64;
    let tol = 4 * MIB as i64 + held_delta / 50;
    println!("held +{held_delta}, rss +{rss_delta}, metadata +{meta_delta}");
    assert!(
        held_delta <= rss_delta + tol,
        "statistics claim more than RSS shows"
    );
    assert!(
        rss_delta <= held_delta + meta_delta + tol,
        "RSS grew beyond what stats show"
    );
    free_all(blocks);
    for p in small {
        // SAFETY: ours.
        unsafe { free(p) };
    }
    let s3 = check("freed");
    assert!(s3.in_use_large == 0, "{s3:?}");
    release_memory();
    let s4 = check("released");
    assert_eq!(s4.free_dirty, 0, "{s4:?}");
    assert_eq!(s4.cached_front, 0, "{s4:?}");
    assert_eq!(s4.cached_transfer, 0, "{s4:?}");
    assert!(s4.released_total >= 200 * MIB as u64, "{s4:?}");
    let rss4 = rss();
    println!(
        "after release: rss {} MiB, released {} MiB",
        rss4 / MIB,
        s4.released / MIB as u64
    );
    assert!(rss4 <= rss0 + SLACK);
}

#[test]
fn statistics_partition_mapped_and_track_rss() {
    run_child("statistics_reconcile", &[]);
    run_child("statistics_reconcile", &[("TRICOLOR_PERCPU", "0")]);
}

/// Fills blocks with a pattern derived from their address and index.
fn stamp(p: *mut u8, n: usize, seed: u64) {
    let words = n / 8;
    for i in 0..words {
        // SAFETY: `p` is an 8-aligned block of `n` bytes.
        unsafe {
            p.cast::<u64>()
                .add(i)
                .write(seed ^ (i as u64).wrapping_mul(0x9E37_79B9))
        };
    }
}

fn intact(p: *mut u8, n: usize, seed: u64) -> bool {
    // SAFETY: as in `stamp`.
    (0..n / 8).all(
        |i| unsafe { p.cast::<u64>().add(i).read() } == seed ^ (i as u64).wrapping_mul(0x9E37_79B9),
    )
}

#[test]
#[ignore = "helper: run in a child process by released_memory_is_zero_or_rewritten_on_reuse"]
fn reuse_after_release() {
    if !in_child() {
        return;
    }
    for round in 0..3 {
        let sizes = spike_sizes(64 * MIB);
        let blocks: Vec<_> = allocate(&sizes);
        // Keep every third block alive across the release: its contents must survive.
        let mut kept = Vec::new();
        for (i, (p, n)) in blocks.into_iter().enumerate() {
            if i % 3 == 0 {
                stamp(p, n, p as u64 ^ round);
                kept.push((p, n));
            } else {
                // SAFETY: ours.
                unsafe { free(p) };
            }
        }
        release_memory();
        for &(p, n) in &kept {
            assert!(
                intact(p, n, p as u64 ^ round),
                "a live block changed across a release"
            );
        }
        // Reuse the released memory: zeroed requests read zero, the others take our data.
        let again: Vec<_> = sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let p = if i % 2 == 0 {
                    alloc_zeroed(n, 8)
                } else {
                    alloc(n, 8)
                };
                assert!(!p.is_null());
                if i % 2 == 0 {
                    // SAFETY: a fresh block of `n` bytes.
                    let s = unsafe { std::slice::from_raw_parts(p, n) };
                    assert!(s.iter().all(|&b| b == 0), "alloc_zeroed gave dirty memory");
                }
                stamp(p, n, p as u64 ^ 0xA5A5);
                (p, n)
            })
            .collect();
        for &(p, n) in kept.iter() {
            assert!(intact(p, n, p as u64 ^ round));
        }
        for (p, n) in again {
            assert!(
                intact(p, n, p as u64 ^ 0xA5A5),
                "reused memory lost its new contents"
            );
            // SAFETY: ours.
            unsafe { free(p) };
        }
        for (p, _) in kept {
            // SAFETY: ours.
            unsafe { free(p) };
        }
    }
}

#[test]
fn released_memory_is_zero_or_rewritten_on_reuse() {
    run_child("reuse_after_release", &[]);
    run_child("reuse_after_release", &[("TRICOLOR_MADV", "free")]);
}

/// Threads churn content-checked blocks of all sizes while another releases memory as fast as
/// it can: a page in use must never be released.
#[test]
fn releasing_while_other_threads_allocate_loses_nothing() {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let releaser = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                release_memory();
                n += 1;
            }
            n
        })
    };
    let workers: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                let sizes = spike_sizes(8 * MIB);
                let mut live: Vec<(*mut u8, usize, u64)> = Vec::new();
                for round in 0..6u64 {
                    for (i, &n) in sizes.iter().enumerate() {
                        let p = alloc(n, 8);
                        assert!(!p.is_null());
                        let seed = (t as u64) << 56 ^ round << 40 ^ i as u64;
                        stamp(p, n, seed);
                        live.push((p, n, seed));
                        if live.len() > 200 {
                            let (q, m, s) = live.swap_remove((i * 7919) % live.len());
                            assert!(intact(q, m, s), "block changed while memory was released");
                            // SAFETY: ours.
                            unsafe { free(q) };
                        }
                    }
                }
                for (q, m, s) in live {
                    assert!(intact(q, m, s));
                    // SAFETY: ours.
                    unsafe { free(q) };
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(releaser.join().unwrap() > 0);
    let s = stats();
    assert_eq!(s.in_use_large, 0, "{s:?}");
}

#[test]
#[ignore = "helper: run in a child process by a_memory_limit_releases_before_growing"]
fn memory_limit_bound() {
    if !in_child() {
        return;
    }
    assert_eq!(
        tricolor_alloc::memory_limit(),
        96 * MIB as i64,
        "GOMEMLIMIT not read"
    );
    // 64 blocks of 1 MiB, every other one freed: 32 MiB of dirty 1 MiB holes.
    let blocks: Vec<_> = (0..64).map(|_| alloc(MIB, 8)).collect();
    for &p in &blocks {
        // SAFETY: a fresh block of 1 MiB.
        unsafe { p.write_bytes(1, MIB) };
    }
    for p in blocks.iter().step_by(2) {
        // SAFETY: ours.
        unsafe { free(*p) };
    }
    // 40 blocks of 1.5 MiB fit no hole: the heap must grow, and under the limit it first
    // releases the holes instead of holding 32 + 32 + 60 MiB.
    let more: Vec<_> = (0..40)
        .map(|_| {
            let p = alloc(3 * MIB / 2, 8);
            // SAFETY: fresh, 1.5 MiB.
            unsafe { p.write_bytes(2, 3 * MIB / 2) };
            p
        })
        .collect();
    let s = stats();
    let held = s.mapped - s.released;
    println!("held {} MiB under a 96 MiB limit; {s:?}", held / MIB as u64);
    assert!(held <= 100 * MIB as u64, "held {held} over the limit");
    assert!(s.released_total >= 16 * MIB as u64, "{s:?}");
    for p in blocks.iter().skip(1).step_by(2).chain(more.iter()) {
        // SAFETY: ours.
        unsafe { free(*p) };
    }
}

#[test]
fn a_memory_limit_releases_before_growing() {
    run_child(
        "memory_limit_bound",
        &[("GOMEMLIMIT", "96MiB"), ("TRICOLOR_SCAVENGER", "0")],
    );
}

#[test]
#[ignore = "helper: run in a child process by malformed_knobs_are_reported_once"]
fn malformed_knobs() {
    if !in_child() {
        return;
    }
    for _ in 0..100 {
        let p = alloc(100, 8);
        // SAFETY: ours.
        unsafe { free(p) };
    }
    assert_eq!(tricolor_alloc::memory_limit(), tricolor_alloc::NO_LIMIT);
    assert_eq!(stats().madv_free, 0);
}

#[test]
fn malformed_knobs_are_reported_once() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "malformed_knobs",
            "--exact",
            "--ignored",
            "--test-threads=1",
        ])
        .env("TRICOLOR_SCAVENGE_CHILD", "1")
        .env("GOMEMLIMIT", "12XB")
        .env("TRICOLOR_MADV", "lazy")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        err.matches("tricolor: GOMEMLIMIT=\"12XB\" is malformed")
            .count(),
        1,
        "{err}"
    );
    assert!(
        err.contains("512MiB") && err.contains("keeping the default (no limit)"),
        "{err}"
    );
    assert_eq!(err.matches("TRICOLOR_MADV=\"lazy\"").count(), 1, "{err}");
}
