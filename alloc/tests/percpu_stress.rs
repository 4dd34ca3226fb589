//! Restartable sequences under fire: many more threads than CPUs, threads re-pinning
//! themselves to random CPUs, and a signaller interrupting every worker every few microseconds,
//! so pushes and pops are preempted, migrated and signalled mid-sequence. Every block is
//! stamped over its whole size by its owner and checked before it is freed: a block handed out
//! twice, or an item lost or duplicated by a half-applied sequence, fails the check. Runs in
//! whichever front end is active (CI runs it in both).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tricolor_alloc::Tricolor;

mod common;
use common::pin;

#[global_allocator]
static GLOBAL: Tricolor = Tricolor;

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALS.fetch_add(1, Ordering::Relaxed);
}
static SIGNALS: AtomicUsize = AtomicUsize::new(0);

#[test]
fn sequences_survive_preemption_migration_and_signals() {
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    // SAFETY: installing a handler that only bumps an atomic (async-signal-safe); SA_RESTART so
    // the workers' own syscalls are not disturbed.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut());
    }
    let ops = if cfg!(debug_assertions) {
        40_000
    } else {
        300_000
    };
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..12)
        .map(|t| {
            std::thread::spawn(move || {
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ ((t as u64 + 1) << 20);
                let mut live = common::Live::default();
                for op in 0..ops {
                    common::next(&mut x);
                    if op % 256 == 0 {
                        let c = (x >> 40) as usize % cpus;
                        if x & 1 == 0 {
                            pin(&[c])
                        } else {
                            pin(&(0..cpus).collect::<Vec<_>>())
                        }
                    }
                    if live.len() > 64 || (x & 3 == 0 && live.len() > 0) {
                        live.free_one((x >> 8) as usize);
                    } else {
                        live.alloc(8 + (x >> 24) as usize % 2048, x ^ ((t as u64) << 56));
                    }
                }
            })
        })
        .collect();
    let threads: Vec<libc::pthread_t> = workers
        .iter()
        .map(|h| {
            use std::os::unix::thread::JoinHandleExt;
            h.as_pthread_t()
        })
        .collect();
    let signaller = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for &t in &threads {
                    // SAFETY: the workers are alive until `stop` is set after they are joined.
                    unsafe { libc::pthread_kill(t, libc::SIGUSR1) };
                }
                std::thread::sleep(std::time::Duration::from_micros(20));
            }
        })
    };
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    signaller.join().unwrap();
    assert!(
        SIGNALS.load(Ordering::Relaxed) > 1000,
        "too few signals to mean anything"
    );
    tricolor_alloc::testing::validate_page_heap();
}
