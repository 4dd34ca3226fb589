//! The standard allocator stress workloads, written here from their published descriptions
//! (no code of theirs): larson, xmalloc-test, cache-scratch, mstress and rptest, as the
//! allocator papers and mimalloc-bench run them. Each keeps `workloads`' rules: seeded and
//! deterministic in what it allocates, every block stamped when allocated and checked when
//! freed, and a checksum (the sum of the stamps, which does not depend on which thread frees
//! what, or in what order) that must agree across allocators.

use crate::workloads::{Rng, layout, release, release_all, stamp};
use std::alloc::GlobalAlloc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Threads each workload runs at once (the machines are 2-core; four keeps both busy and
/// makes threads share CPUs, as on a loaded server).
pub const THREADS: usize = 4;

/// Allocates a stamped block of `size` bytes.
fn fresh<A: GlobalAlloc>(a: &A, size: usize, v: u8) -> usize {
    // SAFETY: a non-zero layout.
    let p = unsafe { a.alloc(layout(size)) };
    stamp(p, size, v);
    p as usize
}

/// larson (Larson and Krishnan, "Memory allocation for long-running server applications",
/// 1998): each thread owns an array of blocks of 8–1000 bytes and replaces random ones; when
/// its rounds are done it starts a successor thread, hands it the array and exits, so every
/// block outlives the thread that allocated it and is freed by another (a server's worker
/// threads coming and going).
pub fn larson<A: GlobalAlloc + Sync + 'static>(a: &'static A, scale: usize) -> u64 {
    const SLOTS: usize = 1000;
    const REPLACE: usize = 100 * SLOTS;
    let generations = 8 * scale;
    fn step<A: GlobalAlloc + Sync + 'static>(
        a: &'static A,
        t: usize,
        g: usize,
        last: usize,
        mut slots: Vec<(usize, usize)>,
    ) -> (u64, Option<Link>) {
        let mut rng = Rng(0x1a25_0000_0000_0001 ^ ((t as u64) << 40) ^ ((g as u64) << 8));
        let mut sum = 0u64;
        if slots.is_empty() {
            slots = (0..SLOTS)
                .map(|i| {
                    let size = 8 + (rng.next_u64() >> 20) as usize % 993;
                    (fresh(a, size, i as u8), size)
                })
                .collect();
        }
        for i in 0..REPLACE {
            let r = rng.next_u64();
            let k = (r >> 8) as usize % SLOTS;
            let (p, n) = slots[k];
            sum = sum.wrapping_add(release(a, p, n));
            let size = 8 + (r >> 32) as usize % 993;
            slots[k] = (fresh(a, size, (i ^ g) as u8), size);
        }
        if g == last {
            return (sum.wrapping_add(release_all(a, &slots)), None);
        }
        // The successor takes the blocks; this thread exits without freeing them.
        let next = std::thread::spawn(move || step(a, t, g + 1, last, slots));
        (sum, Some(Link(next)))
    }
    let chains: Vec<Link> = (0..THREADS)
        .map(|t| {
            Link(std::thread::spawn(move || {
                step(a, t, 0, generations - 1, Vec::new())
            }))
        })
        .collect();
    let mut sum = 0u64;
    for mut h in chains {
        loop {
            let (s, next) = h.0.join().expect("larson thread");
            sum = sum.wrapping_add(s);
            match next {
                Some(n) => h = n,
                None => break,
            }
        }
    }
    sum
}

/// A larson thread's handle: its sum, and the handle of the successor it started.
struct Link(JoinHandle<(u64, Option<Link>)>);

/// xmalloc-test (Lever and Boreham, "malloc() performance in a multithreaded Linux
/// environment", 2000): every thread allocates batches of small blocks (1–64 bytes) onto a
/// shared list and frees whichever batch it takes off it, so most blocks are freed by a
/// thread other than their allocator, at the rate they are made.
pub fn xmalloc<A: GlobalAlloc + Sync + 'static>(a: &'static A, scale: usize) -> u64 {
    const BATCH: usize = 64;
    let rounds = 30_000 * scale;
    type Batch = Box<[(usize, usize); BATCH]>;
    let shared: Arc<Mutex<Vec<Batch>>> = Arc::default();
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let shared = shared.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(0x0a11_0c00_0000_0001 ^ ((t as u64) << 32));
                let mut sum = 0u64;
                for i in 0..rounds {
                    let mut batch = Box::new([(0usize, 0usize); BATCH]);
                    for (k, b) in batch.iter_mut().enumerate() {
                        let size = 1 + (rng.next_u64() >> 20) as usize % 64;
                        *b = (fresh(a, size, (i + k) as u8), size);
                    }
                    let taken = {
                        let mut s = shared.lock().unwrap();
                        s.push(batch);
                        // Take one from the middle: often another thread's.
                        let k = s.len() / 2;
                        s.swap_remove(k)
                    };
                    sum = sum.wrapping_add(release_all(a, &taken[..]));
                }
                sum
            })
        })
        .collect();
    let mut sum = workers.into_iter().fold(0u64, |s, w| {
        s.wrapping_add(w.join().expect("xmalloc thread"))
    });
    for b in shared.lock().unwrap().drain(..) {
        sum = sum.wrapping_add(release_all(a, &b[..]));
    }
    sum
}

/// cache-scratch (Berger et al., Hoard, 2000): passive false sharing. The main thread
/// allocates one 8-byte object per thread, back to back (so they share cache lines), and
/// hands them out; each thread frees its object, then repeatedly allocates an 8-byte object,
/// writes it many times and frees it. An allocator that hands a thread the block another
/// thread's object shares a line with makes every write a cache-line transfer.
pub fn cache_scratch<A: GlobalAlloc + Sync + 'static>(a: &'static A, scale: usize) -> u64 {
    const ROUNDS: usize = 1000;
    const WRITES: usize = 50_000;
    let given: Vec<usize> = (0..THREADS).map(|t| fresh(a, 8, t as u8)).collect();
    let workers: Vec<_> = given
        .into_iter()
        .enumerate()
        .map(|(t, first)| {
            std::thread::spawn(move || {
                let mut sum = release(a, first, 8);
                for r in 0..ROUNDS * scale {
                    let p = fresh(a, 8, 0) as *mut u8;
                    for w in 0..WRITES {
                        // SAFETY: `p` is a live 8-byte block; volatile, so every write
                        // reaches memory (and its cache line).
                        unsafe { p.add(w & 7).write_volatile((w ^ r ^ t) as u8) };
                    }
                    // SAFETY: as above.
                    unsafe {
                        p.write_volatile((r ^ t) as u8);
                        p.add(7).write_volatile((r ^ t) as u8);
                    }
                    sum = sum.wrapping_add(release(a, p as usize, 8));
                }
                sum
            })
        })
        .collect();
    workers.into_iter().fold(0u64, |s, w| {
        s.wrapping_add(w.join().expect("scratch thread"))
    })
}

/// A size for mstress: a power of two from 32 bytes, each doubling half as likely, up to
/// 512 KiB (so about one block in 2^14 is that large).
fn mstress_size(r: u64) -> usize {
    let k = (r | 1 << 14).trailing_zeros();
    32 << k
}

/// mstress (mimalloc-bench's description: "a server-like allocation pattern: power-of-two
/// sizes, objects that migrate between threads, some with long lifetimes"): each thread
/// keeps a working set it replaces at random, and now and then swaps one of its blocks with
/// a slot of a shared transfer array, taking over (and later freeing) whatever another
/// thread left there. A block carries its size in its second word.
pub fn mstress<A: GlobalAlloc + Sync + 'static>(a: &'static A, scale: usize) -> u64 {
    const LOCAL: usize = 500;
    const TRANSFER: usize = 1000;
    let steps = 1_000_000 * scale;
    let transfer: Arc<Vec<AtomicUsize>> = Arc::new((0..TRANSFER).map(|_| 0.into()).collect());
    /// A stamped block whose first word holds its size.
    fn block<A: GlobalAlloc>(a: &A, size: usize, v: u8) -> usize {
        let p = fresh(a, size, v);
        // SAFETY: a live block of at least 32 bytes; the stamp is in its first and last byte,
        // so the size goes into bytes 8..16.
        unsafe { (p as *mut usize).add(1).write(size) };
        p
    }
    fn drop_block<A: GlobalAlloc>(a: &A, p: usize) -> u64 {
        // SAFETY: a live block made by `block`.
        let size = unsafe { (p as *const usize).add(1).read() };
        release(a, p, size)
    }
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let transfer = transfer.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(0x3579_0000_0000_0001 ^ ((t as u64) << 24));
                let mut local = vec![0usize; LOCAL];
                let mut sum = 0u64;
                for i in 0..steps {
                    let r = rng.next_u64();
                    let k = (r >> 8) as usize % LOCAL;
                    if r & 7 == 0 {
                        // Migrate: leave ours in a transfer slot, take what was there.
                        let slot = (r >> 32) as usize % TRANSFER;
                        local[k] = transfer[slot].swap(local[k], Ordering::AcqRel);
                        continue;
                    }
                    if local[k] != 0 {
                        sum = sum.wrapping_add(drop_block(a, local[k]));
                    }
                    local[k] = block(a, mstress_size(r >> 40), i as u8);
                }
                local
                    .into_iter()
                    .filter(|&p| p != 0)
                    .fold(sum, |s, p| s.wrapping_add(drop_block(a, p)))
            })
        })
        .collect();
    let mut sum = workers.into_iter().fold(0u64, |s, w| {
        s.wrapping_add(w.join().expect("mstress thread"))
    });
    for slot in transfer.iter() {
        let p = slot.swap(0, Ordering::AcqRel);
        if p != 0 {
            sum = sum.wrapping_add(drop_block(a, p));
        }
    }
    sum
}

/// rptest (rpmalloc's benchmark, as its README describes it: threads allocating and freeing
/// blocks of 16 B–16 KiB, weighted to small ones, with a share of the frees made by other
/// threads): each round a thread allocates a batch, frees its previous batch but for an
/// eighth it passes to the next thread, and frees what the previous thread passed to it.
pub fn rptest<A: GlobalAlloc + Sync + 'static>(a: &'static A, scale: usize) -> u64 {
    const BATCH: usize = 256;
    let rounds = 2_000 * scale;
    type Inbox = Mutex<Vec<(usize, usize)>>;
    let inboxes: Arc<Vec<Inbox>> = Arc::new((0..THREADS).map(|_| Mutex::default()).collect());
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let inboxes = inboxes.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(0x4e57_0000_0000_0001 ^ ((t as u64) << 16));
                let mut prev: Vec<(usize, usize)> = Vec::new();
                let mut passed = Vec::new();
                let mut sum = 0u64;
                for i in 0..rounds {
                    let batch: Vec<(usize, usize)> = (0..BATCH)
                        .map(|k| {
                            let r = rng.next_u64();
                            // Log-uniform over 16 B..16 KiB: small blocks dominate.
                            let bits = 4 + (r % 10) as u32;
                            let size = (1usize << bits) + (r >> 20) as usize % (1usize << bits);
                            (fresh(a, size.min(16_000), (i + k) as u8), size.min(16_000))
                        })
                        .collect();
                    passed.clear();
                    for (k, &b) in prev.iter().enumerate() {
                        if k % 8 == 0 {
                            passed.push(b);
                        } else {
                            sum = sum.wrapping_add(release(a, b.0, b.1));
                        }
                    }
                    inboxes[(t + 1) % THREADS]
                        .lock()
                        .unwrap()
                        .extend_from_slice(&passed);
                    let mine = std::mem::take(&mut *inboxes[t].lock().unwrap());
                    sum = sum.wrapping_add(release_all(a, &mine));
                    prev = batch;
                }
                sum.wrapping_add(release_all(a, &prev))
            })
        })
        .collect();
    let mut sum = workers.into_iter().fold(0u64, |s, w| {
        s.wrapping_add(w.join().expect("rptest thread"))
    });
    for inbox in inboxes.iter() {
        sum = sum.wrapping_add(release_all(a, &inbox.lock().unwrap()));
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;

    /// Each workload's checksum is the same on every run (the blocks it makes do not depend
    /// on the threads' interleaving), and different workloads differ.
    #[test]
    fn the_stress_workloads_are_deterministic() {
        static A: System = System;
        type W = fn(&'static System, usize) -> u64;
        let all: [(&str, W); 5] = [
            ("larson", larson),
            ("xmalloc", xmalloc),
            ("cache-scratch", cache_scratch),
            ("mstress", mstress),
            ("rptest", rptest),
        ];
        for (name, w) in all {
            assert_eq!(w(&A, 1), w(&A, 1), "{name}");
        }
    }

    #[test]
    fn mstress_sizes_are_powers_of_two_halving_in_frequency() {
        let mut rng = Rng(7);
        let mut counts = [0usize; 15];
        for _ in 0..1 << 16 {
            let s = mstress_size(rng.next_u64());
            assert!(s.is_power_of_two() && (32..=512 << 10).contains(&s));
            counts[(s / 32).trailing_zeros() as usize] += 1;
        }
        assert!(counts[0] > counts[1] && counts[1] > counts[2] && counts[2] > counts[4]);
    }
}
