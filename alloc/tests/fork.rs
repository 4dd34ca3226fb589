//! `fork` from a multi-threaded program: while other threads allocate (and hold allocator
//! locks at random instants), the main thread forks; each child must allocate freely (no lock
//! left held by a thread that does not exist in it), and must have abandoned the other
//! threads' caches without walking them. A deadlocked child is killed by `alarm` and fails the
//! test.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tricolor_alloc::{Tricolor, testing};

#[global_allocator]
static GLOBAL: Tricolor = Tricolor;

fn churn(stop: &AtomicBool, seed: usize, max_size: usize) {
    let mut kept: Vec<(*mut u8, Layout)> = Vec::new();
    let mut i = seed;
    while !stop.load(Ordering::Relaxed) {
        i = i
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let size = 8 + (i >> 33) % max_size;
        let l = Layout::from_size_align(size, 8).unwrap();
        // SAFETY: valid layout; blocks freed below with their layouts.
        let p = unsafe { GLOBAL.alloc(l) };
        assert!(!p.is_null());
        kept.push((p, l));
        if kept.len() > 200 {
            for (p, l) in kept.drain(..150) {
                // SAFETY: live blocks.
                unsafe { GLOBAL.dealloc(p, l) };
            }
        }
    }
    for (p, l) in kept {
        // SAFETY: live blocks.
        unsafe { GLOBAL.dealloc(p, l) };
    }
}

/// The child's work: runs after fork in a single-threaded copy of the process.
fn child_body() -> i32 {
    // Per-thread caches: only this thread's survives (the others were abandoned). Per-CPU
    // caches: no thread has one, and the slabs are consistent (single committing stores).
    let expected = match tricolor_alloc::front_end() {
        tricolor_alloc::FrontEnd::PerThread => 1,
        tricolor_alloc::FrontEnd::PerCpu => 0,
    };
    if testing::live_thread_caches() != expected {
        return 10;
    }
    let mut v: Vec<Vec<u64>> = Vec::new();
    for i in 0..2000u64 {
        v.push((0..(i % 300)).collect());
    }
    let sum: u64 = v.iter().map(|x| x.iter().sum::<u64>()).sum();
    let big = vec![7u8; 3 << 20];
    if big.iter().map(|&b| b as u64).sum::<u64>() != 7 * (3 << 20) || sum == 0 {
        return 11;
    }
    drop(v);
    drop(big);
    testing::validate_page_heap();
    0
}

/// Forks `rounds` times while `threads` threads churn blocks of up to `max_size` bytes; every
/// child must run `child_body` to a clean exit.
fn fork_while_churning(threads: usize, rounds: usize, max_size: usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..threads)
        .map(|t| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || churn(&stop, t * 7919 + 1, max_size))
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(20));
    for round in 0..rounds {
        // SAFETY: fork in a multi-threaded process: the child only runs `child_body`, which
        // uses the allocator (the thing under test) and std collections, then `_exit`s.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // SAFETY: alarm and _exit are async-signal-safe; a hang ends with SIGALRM.
            unsafe {
                libc::alarm(10);
                let code = std::panic::catch_unwind(child_body).unwrap_or(12);
                libc::_exit(code);
            }
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(waited, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "round {round}: child failed (status {status:#x}: exit {} / signal {})",
            libc::WEXITSTATUS(status),
            libc::WTERMSIG(status)
        );
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn forked_children_allocate_while_threads_hold_locks() {
    fork_while_churning(3, 20, 70_000);
}

/// With per-thread caches (CI runs this file with glibc's rseq disabled), a child must not walk
/// the lists of threads that do not exist in it: a fork catches them mid-update, and a child
/// walking them dies of SIGSEGV (a few of 200 forks). Small blocks keep the threads inside
/// their caches' fast paths, where the fork catches them.
#[test]
fn fork_storm_with_small_block_churn() {
    fork_while_churning(4, 200, 600);
}

/// The heap profiler's locks (its bucket index, taken while sampling; its slot set-up) are
/// held across `fork` too: with a sample every 4 KiB on average the churning threads are
/// often inside them when the main thread forks, and the children sample as well.
#[test]
fn fork_while_sampling() {
    tricolor_alloc::profile::set_rate(4096);
    fork_while_churning(3, 100, 4000);
}
