//! Central free lists: for each size class, the spans that still have free objects.
//!
//! Front caches move objects in batches (`SizeClass::batch`): `remove_batch` hands out a
//! linked list of objects, taken first from spans' free lists and then by bumping through
//! never-used objects; `insert_batch` gives objects back to their spans, and a span whose last
//! object comes back returns its pages to the page heap at once (`scavenger` decides when
//! those pages go back to the OS).
//!
//! Invariants (under `Central::lists[class]`'s lock):
//! 1. A Small span of this class is on `partial` iff it has a free object (free list non-empty
//!    or `bump < objects`).
//! 2. `owned().allocated` counts the span's objects that are outside its free list and below
//!    `bump` (in caches or in use); it reaches zero only when every one came back.
//! 3. Every object on a span's free list carries its canary (see `block`), so freeing it again
//!    is detected.
//! 4. A span returned to the page heap carries no canary: its free blocks' canaries are cleared
//!    first. Otherwise a stale canary could surface in a block carved later from those pages,
//!    travel with the user's data (a `realloc` copies it) and land in a block at its original
//!    address, which would then look already free.
//! 5. Every object `remove_batch` hands out carries its canary (free-list objects by invariant
//!    3, never-used ones get it as they are carved), so front caches can hold batches as they
//!    come and a double free of a cached block is detected.
//!
//! Lock order: this lock, then the page heap's.

use crate::block::{self, Batch, FreeBlock};
use crate::misuse::{self, Misuse};
use crate::page_heap::PageHeap;
use crate::size_class::{CLASSES, NUM_CLASSES};
use crate::span::{Span, SpanList, SpanState};
use crate::sync::{Mutex, Ordering};
use core::ptr;

/// All central free lists.
pub(crate) struct Central {
    lists: [Mutex<CentralList>; NUM_CLASSES],
}

struct CentralList {
    partial: SpanList,
    /// Small spans of this class (full or partial), and the sum of their `allocated`.
    spans: usize,
    allocated: usize,
}

/// One class's central figures, read under its lock.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct CentralStats {
    /// Small spans of the class.
    pub(crate) spans: usize,
    /// Objects out of those spans: in front caches, transfer caches, or the program's hands.
    pub(crate) allocated: usize,
}

impl Central {
    pub(crate) const fn new() -> Self {
        Self {
            lists: [const {
                Mutex::new(CentralList {
                    partial: SpanList::new(),
                    spans: 0,
                    allocated: 0,
                })
            }; NUM_CLASSES],
        }
    }

    /// The figures of `class`.
    pub(crate) fn stats(&self, class: usize) -> CentralStats {
        let l = self.lists[class].lock();
        CentralStats {
            spans: l.spans,
            allocated: l.allocated,
        }
    }

    /// Takes every class's lock, in class order (fork prepare).
    pub(crate) fn lock_all_for_fork(&self) {
        for l in &self.lists {
            l.lock_for_fork();
        }
    }

    /// Releases what [`Central::lock_all_for_fork`] took.
    ///
    /// # Safety
    /// As for `Mutex::unlock_after_fork`, for every class lock.
    pub(crate) unsafe fn unlock_all_after_fork(&self) {
        for l in self.lists.iter().rev() {
            // SAFETY: the caller's contract.
            unsafe { l.unlock_after_fork() };
        }
    }

    /// Takes up to `want` objects of `class`. Returns fewer (possibly none) only when the page
    /// heap cannot grow.
    pub(crate) fn remove_batch(&self, pages: &PageHeap, class: usize, want: usize) -> Batch {
        let sc = &CLASSES[class];
        let mut out = Batch {
            head: ptr::null_mut(),
            count: 0,
        };
        let mut list = self.lists[class].lock();
        while out.count < want {
            let mut span = list.partial.head();
            if span.is_null() {
                let Some(run) = pages.alloc(sc.pages as usize, 1, SpanState::Small, class) else {
                    break;
                };
                span = run.span.as_ptr();
                // SAFETY: the new span is ours (Small, this class) under our lock; invariant 1.
                unsafe {
                    let o = (*span).owned();
                    o.free = ptr::null_mut();
                    o.allocated = 0;
                    (*span).bump.store(0, Ordering::Relaxed);
                    list.partial.push(span);
                    list.spans += 1;
                }
            }
            // SAFETY: `span` is on our partial list, so we own its fields (lock held).
            unsafe {
                let o = (*span).owned();
                while out.count < want && !o.free.is_null() {
                    let b = o.free;
                    o.free = (*b).next;
                    (*b).next = out.head;
                    out.head = b;
                    out.count += 1;
                    o.allocated += 1;
                }
                let mut bump = (*span).bump.load(Ordering::Relaxed);
                let base = (*span).start();
                while out.count < want && bump < sc.objects {
                    let b = (base + bump as usize * sc.size as usize) as *mut FreeBlock;
                    // Invariant 5: carved blocks leave with their canary, like the others.
                    block::set_canary(b.cast());
                    (*b).next = out.head;
                    out.head = b;
                    out.count += 1;
                    o.allocated += 1;
                    bump += 1;
                }
                (*span).bump.store(bump, Ordering::Relaxed);
                if o.free.is_null() && bump == sc.objects {
                    list.partial.remove(span);
                }
            }
        }
        list.allocated += out.count;
        out
    }

    /// Gives `batch` (objects of `class`, each already checked to be a live block of ours and
    /// carrying its canary) back to their spans.
    ///
    /// # Safety
    /// Every object in the batch is a block of `class` that the caller owns and nobody uses.
    pub(crate) unsafe fn insert_batch(&self, pages: &PageHeap, class: usize, batch: Batch) {
        let sc = &CLASSES[class];
        let mut list = self.lists[class].lock();
        let mut b = batch.head;
        for _ in 0..batch.count {
            // SAFETY: `b` is one of the caller's blocks; its span is Small of this class and
            // owned by our lock (checked below), records are type-stable.
            unsafe {
                let next = (*b).next;
                let span: *mut Span = pages.pagemap.get(b as usize);
                if span.is_null()
                    || (*span).state() != SpanState::Small
                    || (*span).class() != class
                    || (*span).owned().allocated == 0
                {
                    misuse::report("free()", Misuse::InvalidPointer, b.cast());
                }
                let o = (*span).owned();
                let was_full =
                    o.free.is_null() && (*span).bump.load(Ordering::Relaxed) == sc.objects;
                (*b).next = o.free;
                o.free = b;
                o.allocated -= 1;
                if o.allocated == 0 {
                    if !was_full {
                        list.partial.remove(span);
                    }
                    // Invariant 4: the pages leave with no canary in them.
                    let mut f = o.free;
                    while !f.is_null() {
                        block::clear_canary(f.cast());
                        f = (*f).next;
                    }
                    list.spans -= 1;
                    pages.free(span);
                } else if was_full {
                    list.partial.push(span);
                }
                b = next;
            }
        }
        list.allocated -= batch.count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block;
    use crate::size_class::class_of;
    use std::collections::HashSet;

    fn setup() -> (&'static PageHeap, &'static Central) {
        block::init_key();
        (
            Box::leak(Box::new(PageHeap::new())),
            Box::leak(Box::new(Central::new())),
        )
    }

    fn collect(b: &Batch) -> Vec<*mut FreeBlock> {
        let mut v = Vec::new();
        let mut p = b.head;
        for _ in 0..b.count {
            v.push(p);
            // SAFETY: batch members are valid blocks.
            p = unsafe { (*p).next };
        }
        v
    }

    fn give_back(pages: &PageHeap, c: &Central, class: usize, blocks: &[*mut FreeBlock]) {
        let mut head = ptr::null_mut();
        for &b in blocks {
            // SAFETY: each block is ours (from remove_batch) and unused.
            unsafe {
                if CLASSES[class].size >= 16 {
                    block::set_canary(b.cast());
                }
                (*b).next = head;
            }
            head = b;
        }
        // SAFETY: as above.
        unsafe {
            c.insert_batch(
                pages,
                class,
                Batch {
                    head,
                    count: blocks.len(),
                },
            )
        };
    }

    #[test]
    fn batches_are_distinct_aligned_blocks_of_the_class() {
        let (pages, c) = setup();
        for class in [class_of(8), class_of(48), class_of(1000), class_of(20000)] {
            let sc = CLASSES[class];
            let mut seen = HashSet::new();
            let mut all = Vec::new();
            for _ in 0..5 {
                let b = c.remove_batch(pages, class, sc.batch as usize);
                assert_eq!(b.count, sc.batch as usize);
                for p in collect(&b) {
                    assert!(seen.insert(p as usize), "block handed out twice");
                    let span = pages.pagemap.get(p as usize);
                    // SAFETY: records are valid.
                    let off = p as usize - unsafe { (*span).start() };
                    assert_eq!(off % sc.size as usize, 0);
                    all.push(p);
                }
            }
            give_back(pages, c, class, &all);
        }
        pages.validate();
        let st = pages.stats();
        assert_eq!(
            st.free_bytes, st.committed,
            "empty spans not returned to the page heap"
        );
    }

    #[test]
    fn partial_spans_are_reused_before_new_ones() {
        let (pages, c) = setup();
        let class = class_of(256);
        let objects = CLASSES[class].objects as usize;
        let b = c.remove_batch(pages, class, objects);
        let blocks = collect(&b);
        let span = pages.pagemap.get(blocks[0] as usize);
        // Give back three objects of a full span: it must be the next one handed out from.
        give_back(pages, c, class, &blocks[..3]);
        let again = c.remove_batch(pages, class, 3);
        for p in collect(&again) {
            assert_eq!(pages.pagemap.get(p as usize), span);
        }
        assert_eq!(c.lists[class].lock().partial.head(), ptr::null_mut());
    }

    #[test]
    fn concurrent_batches_never_share_a_block() {
        let (pages, c) = setup();
        let class = class_of(64);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut kept = Vec::new();
                    for round in 0..200 {
                        let b = c.remove_batch(pages, class, 16);
                        for p in collect(&b) {
                            // SAFETY: the block is ours: stamp it with our id.
                            unsafe { p.cast::<u64>().add(2).write(t * 1_000_000 + round) };
                            kept.push((p, t * 1_000_000 + round));
                        }
                        if round % 3 == 0 {
                            let give: Vec<_> = std::mem::take(&mut kept);
                            for &(p, v) in &give {
                                // SAFETY: still ours; nobody else may have written it.
                                assert_eq!(unsafe { p.cast::<u64>().add(2).read() }, v);
                            }
                            let ptrs: Vec<_> = give.iter().map(|x| x.0).collect();
                            give_back(pages, c, class, &ptrs);
                        }
                    }
                    let ptrs: Vec<_> = kept.iter().map(|x| x.0).collect();
                    give_back(pages, c, class, &ptrs);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        pages.validate();
        let st = pages.stats();
        assert_eq!(st.free_bytes, st.committed);
    }
}
