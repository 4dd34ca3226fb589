//! Memory held in front caches is bounded by the number of CPUs, not of threads: 512 threads,
//! all alive at once, each allocate and free a few hundred blocks and then exit. Their
//! allocation phases run one at a time (a mutex), so live blocks never exceed one thread's
//! worth and what grows with the thread count is only what the front end keeps. Run in child
//! processes, once per front end; their peak RSS (VmHWM) is compared. The per-thread caches
//! hold every thread's blocks until it exits; the per-CPU caches hold at most their slabs.

use std::alloc::{GlobalAlloc, Layout};
use std::process::Command;
use std::sync::{Arc, Barrier, Mutex};
use tricolor_alloc::{FrontEnd, Tricolor, front_end};

mod common;

#[global_allocator]
static GLOBAL: Tricolor = Tricolor;

const THREADS: usize = 512;

fn vm_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| {
            l.strip_prefix(field)
                .map(|v| v.trim().trim_end_matches(" kB").parse().unwrap())
        })
        .unwrap()
}

#[test]
#[ignore = "helper run by the other test in a child process"]
fn churn_with_many_threads() {
    if std::env::var_os("TRICOLOR_THREAD_BOUND").is_none() {
        return;
    }
    let before = vm_kib("VmRSS:");
    let barrier = Arc::new(Barrier::new(THREADS));
    let one_at_a_time = Arc::new(Mutex::new(()));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let barrier = Arc::clone(&barrier);
            let one_at_a_time = Arc::clone(&one_at_a_time);
            std::thread::Builder::new()
                .stack_size(64 << 10)
                .spawn(move || {
                    let turn = one_at_a_time.lock().unwrap();
                    let mut blocks = Vec::with_capacity(400);
                    for i in 0..400 {
                        let l = Layout::from_size_align(16 + (i * 97 + t * 13) % 4000, 8).unwrap();
                        // SAFETY: valid layout; freed below with the same layout.
                        let p = unsafe { GLOBAL.alloc(l) };
                        assert!(!p.is_null());
                        // SAFETY: the block is ours; touch it so it costs RSS.
                        unsafe { p.write_bytes(1, l.size()) };
                        blocks.push((p, l));
                    }
                    for (p, l) in blocks {
                        // SAFETY: live blocks with their layouts.
                        unsafe { GLOBAL.dealloc(p, l) };
                    }
                    drop(turn);
                    // Every thread stays alive, with whatever its front end kept, until all
                    // have allocated: the moment per-thread caches are at their largest.
                    barrier.wait();
                })
                .unwrap()
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let growth = vm_kib("VmHWM:").saturating_sub(before);
    eprintln!("MODE {:?} GROWTH_KIB {growth}", front_end());
}

fn run(percpu: bool) -> (String, u64) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "churn_with_many_threads",
        "--exact",
        "--nocapture",
        "--ignored",
        "--test-threads=1",
    ])
    .env("TRICOLOR_THREAD_BOUND", "1");
    if !percpu {
        cmd.env("TRICOLOR_PERCPU", "0");
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed:\n{text}");
    let line = text
        .lines()
        .find(|l| l.starts_with("MODE "))
        .expect("child reported nothing");
    let mut f = line.split_whitespace();
    let mode = f.nth(1).unwrap().to_string();
    let growth = f.nth(1).unwrap().parse().unwrap();
    (mode, growth)
}

#[test]
fn per_cpu_caches_bound_memory_whatever_the_thread_count() {
    if front_end() != FrontEnd::PerCpu {
        // No rseq here (or TRICOLOR_PERCPU=0): only the per-thread mode exists to measure.
        let (mode, _) = run(false);
        assert_eq!(mode, "PerThread");
        common::skipped(
            "per_cpu_caches_bound_memory_whatever_the_thread_count: no per-CPU mode to compare",
            "front end is per-thread",
        );
        return;
    }
    let (cpu_mode, cpu_growth) = run(true);
    let (thread_mode, thread_growth) = run(false);
    assert_eq!(
        (cpu_mode.as_str(), thread_mode.as_str()),
        ("PerCpu", "PerThread")
    );
    println!(
        "peak RSS growth, {THREADS} threads: per-CPU {cpu_growth} KiB, per-thread {thread_growth} KiB"
    );
    // Thread stacks and glibc's per-thread structures cost the same in both; what differs is
    // what the front end keeps per thread. 64 KiB stacks x 512 touch a few MiB at most.
    assert!(
        cpu_growth < thread_growth,
        "per-CPU {cpu_growth} KiB >= per-thread {thread_growth} KiB"
    );
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    assert!(
        cpu_growth <= 24 * 1024 + cpus * 8 * 1024,
        "per-CPU caches let memory grow by {cpu_growth} KiB with {THREADS} threads"
    );
}
