//! The allocator workloads of `tricolor bench`. Each takes a `scale` (1 = the default, about
//! 0.1–0.5 s per run on our 2-core machines) and returns a checksum of the contents it read
//! back, which must be the same for every allocator.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::mpsc::sync_channel;

/// A workload: its name, what it stresses, and its entry point.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// Command-line and table name.
    pub name: &'static str,
    /// One line for the table.
    pub what: &'static str,
    /// Threads it runs at once.
    pub threads: usize,
}

/// Every workload, in table order.
pub const ALL: [Workload; 11] = [
    Workload {
        name: "churn",
        what: "1 thread: replace random blocks of 8-512 B in 10k slots",
        threads: 1,
    },
    Workload {
        name: "realloc",
        what: "1 thread: mixed 8 B-256 KiB sizes, 40% realloc",
        threads: 1,
    },
    Workload {
        name: "prodcons",
        what: "1 producer allocates 16-1024 B, 1 consumer frees",
        threads: 2,
    },
    Workload {
        name: "prodcons2",
        what: "2 producer/consumer pairs, the same blocks split between them",
        threads: 4,
    },
    Workload {
        name: "prodcons8",
        what: "8 producer/consumer pairs, the same blocks split between them",
        threads: 16,
    },
    Workload {
        name: "threads",
        what: "256 short-lived threads, 4 at a time, each 4000 blocks; 1/4 freed by main",
        threads: 4,
    },
    Workload {
        name: "larson",
        what: "larson: 4 threads replace random 8-1000 B blocks, each hands its set to a successor thread",
        threads: 4,
    },
    Workload {
        name: "xmalloc",
        what: "xmalloc-test: 4 threads allocate 1-64 B batches to a shared list, free whichever they take",
        threads: 4,
    },
    Workload {
        name: "scratch",
        what: "cache-scratch: 4 threads free a neighbour-line 8 B object, then write their own 8 B objects",
        threads: 4,
    },
    Workload {
        name: "mstress",
        what: "mstress: 4 threads, power-of-two 32 B-512 KiB blocks, 1/8 migrate through a shared array",
        threads: 4,
    },
    Workload {
        name: "rptest",
        what: "rptest: 4 threads, batches of 16 B-16 KiB, 1/8 of each freed by the next thread",
        threads: 4,
    },
];

/// Finds a workload by name.
pub fn find(name: &str) -> Option<Workload> {
    ALL.into_iter().find(|w| w.name == name)
}

/// Runs workload `w` at `scale` on allocator `a`; returns its checksum.
pub fn run<A: GlobalAlloc + Sync + 'static>(w: Workload, a: &'static A, scale: usize) -> u64 {
    match w.name {
        "churn" => churn(a, scale),
        "realloc" => realloc(a, scale),
        "prodcons" => prodcons(a, scale, 1),
        "prodcons2" => prodcons(a, scale, 2),
        "prodcons8" => prodcons(a, scale, 8),
        "threads" => threads(a, scale),
        "larson" => crate::stress::larson(a, scale),
        "xmalloc" => crate::stress::xmalloc(a, scale),
        "scratch" => crate::stress::cache_scratch(a, scale),
        "mstress" => crate::stress::mstress(a, scale),
        "rptest" => crate::stress::rptest(a, scale),
        other => panic!("unknown workload {other}"),
    }
}

/// xorshift64: seeded, cheap, the same stream for every allocator.
pub struct Rng(pub u64);
impl Rng {
    /// Next value.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[inline]
pub(crate) fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).expect("valid layout")
}

/// Writes a stamp into the first and last byte of a fresh block.
#[inline]
pub(crate) fn stamp(p: *mut u8, size: usize, v: u8) {
    assert!(!p.is_null(), "allocation failed");
    // SAFETY: `p` is a live block of `size >= 1` bytes.
    unsafe {
        *p = v;
        *p.add(size - 1) = v;
    }
}

/// Reads a block's stamp back (panicking on a mismatch) and returns it.
#[inline]
pub(crate) fn unstamp(p: *mut u8, size: usize) -> u64 {
    // SAFETY: `p` is a live block of `size >= 1` bytes.
    let (a, b) = unsafe { (*p, *p.add(size - 1)) };
    assert_eq!(a, b, "block {p:p} of {size} bytes corrupted");
    a as u64
}

/// Checks a stamped block, frees it, and returns its stamp.
#[inline]
pub(crate) fn release<A: GlobalAlloc>(a: &A, p: usize, size: usize) -> u64 {
    let v = unstamp(p as *mut u8, size);
    // SAFETY: `p` is a live block of `size` bytes from `a`, freed once here.
    unsafe { a.dealloc(p as *mut u8, layout(size)) };
    v
}

/// Releases every occupied slot; returns the sum of their stamps.
pub(crate) fn release_all<A: GlobalAlloc>(a: &A, slots: &[(usize, usize)]) -> u64 {
    slots
        .iter()
        .filter(|s| s.0 != 0)
        .fold(0u64, |sum, &(p, n)| sum.wrapping_add(release(a, p, n)))
}

fn churn<A: GlobalAlloc>(a: &A, scale: usize) -> u64 {
    const SLOTS: usize = 10_000;
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut slots: Vec<(usize, usize)> = vec![(0, 0); SLOTS];
    let mut sum = 0u64;
    for i in 0..2_000_000 * scale {
        let r = rng.next_u64();
        let slot = (r as usize >> 8) % SLOTS;
        let (p, n) = slots[slot];
        if p != 0 {
            sum = sum.wrapping_add(unstamp(p as *mut u8, n));
            // SAFETY: live block with this layout.
            unsafe { a.dealloc(p as *mut u8, layout(n)) };
        }
        // Mostly small: 8..64 B three times in four, up to 512 B otherwise.
        let size = if r & 3 != 0 {
            8 + (r >> 40) as usize % 57
        } else {
            8 + (r >> 40) as usize % 505
        };
        // SAFETY: non-zero layout.
        let q = unsafe { a.alloc(layout(size)) };
        stamp(q, size, i as u8);
        slots[slot] = (q as usize, size);
    }
    sum.wrapping_add(release_all(a, &slots))
}

fn realloc<A: GlobalAlloc>(a: &A, scale: usize) -> u64 {
    const SLOTS: usize = 2_000;
    let mut rng = Rng(0xfeed_face_cafe_beef);
    let mut slots: Vec<(usize, usize)> = vec![(0, 0); SLOTS];
    let mut sum = 0u64;
    // Log-uniform sizes from 8 B to 256 KiB.
    let size_of = |r: u64| -> usize {
        let bits = 3 + (r % 16) as u32;
        (1usize << bits) + (r >> 20) as usize % (1usize << bits)
    };
    for i in 0..400_000 * scale {
        let r = rng.next_u64();
        let slot = (r as usize >> 8) % SLOTS;
        let (p, n) = slots[slot];
        match (r >> 4) % 10 {
            0..=3 if p != 0 => {
                // Realloc to between half and twice the size; the kept prefix keeps its stamp.
                let m = (n / 2 + (r >> 24) as usize % (n * 3 / 2 + 1)).max(1);
                // SAFETY: live block with layout(n); non-zero new size.
                let q = unsafe { a.realloc(p as *mut u8, layout(n), m) };
                assert!(!q.is_null());
                // SAFETY: q is live with at least min(n, m) >= 1 bytes.
                let first = unsafe { *q };
                sum = sum.wrapping_add(first as u64);
                stamp(q, m, first);
                slots[slot] = (q as usize, m);
            }
            8..=9 if p != 0 => {
                sum = sum.wrapping_add(release(a, p, n));
                slots[slot] = (0, 0);
            }
            _ => {
                if p != 0 {
                    sum = sum.wrapping_add(release(a, p, n));
                }
                let size = size_of(r >> 32);
                // SAFETY: non-zero layout.
                let q = unsafe { a.alloc(layout(size)) };
                stamp(q, size, i as u8);
                slots[slot] = (q as usize, size);
            }
        }
    }
    sum.wrapping_add(release_all(a, &slots))
}

/// `pairs` producers each allocate their share of a million blocks (per `scale`) and send
/// them to their own consumer thread, which reads and frees them: every free is cross-thread.
fn prodcons<A: GlobalAlloc + Sync + 'static>(a: &'static A, scale: usize, pairs: usize) -> u64 {
    const CHUNK: usize = 64;
    let total = 1_000_000 * scale / pairs;
    let consumers: Vec<_> = (0..pairs)
        .map(|k| {
            // Blocks travel in fixed-size arrays: the channel allocates nothing per message.
            let (tx, rx) = sync_channel::<[(usize, usize); CHUNK]>(64);
            let producer = std::thread::spawn(move || {
                let mut rng = Rng(0xabad_1dea_0000_0001 ^ ((k as u64) << 32));
                let mut chunk = [(0usize, 0usize); CHUNK];
                for i in 0..total {
                    let size = 16 + (rng.next_u64() >> 20) as usize % 1009;
                    // SAFETY: non-zero layout.
                    let p = unsafe { a.alloc(layout(size)) };
                    stamp(p, size, i as u8);
                    chunk[i % CHUNK] = (p as usize, size);
                    if i % CHUNK == CHUNK - 1 {
                        tx.send(chunk).expect("consumer alive");
                    }
                }
            });
            let consumer = std::thread::spawn(move || {
                let mut sum = 0u64;
                for chunk in rx {
                    // Blocks from the producer, now ours.
                    sum = sum.wrapping_add(release_all(a, &chunk));
                }
                sum
            });
            (producer, consumer)
        })
        .collect();
    let mut sum = 0u64;
    for (p, c) in consumers {
        p.join().expect("producer");
        sum = sum.wrapping_add(c.join().expect("consumer"));
    }
    sum
}

fn threads<A: GlobalAlloc + Sync + 'static>(a: &'static A, scale: usize) -> u64 {
    let mut sum = 0u64;
    for wave in 0..64 * scale {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut rng = Rng(0x5eed_0000_0000_0001 ^ (((wave * 4 + t) as u64 + 1) << 8));
                    let mut kept = Vec::with_capacity(4000);
                    let mut sum = 0u64;
                    for i in 0..4000 {
                        let size = 16 + (rng.next_u64() >> 20) as usize % 2033;
                        // SAFETY: non-zero layout.
                        let p = unsafe { a.alloc(layout(size)) };
                        stamp(p, size, i as u8);
                        kept.push((p as usize, size));
                    }
                    // Free three quarters here; the rest outlives the thread.
                    let handed = kept.split_off(3000);
                    sum = sum.wrapping_add(release_all(a, &kept));
                    (sum, handed)
                })
            })
            .collect();
        for h in handles {
            let (s, handed) = h.join().expect("worker");
            sum = sum.wrapping_add(s);
            // Blocks handed over by an exited thread.
            sum = sum.wrapping_add(release_all(a, &handed));
        }
    }
    sum
}
