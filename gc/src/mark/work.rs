//! Sharing grey work between markers (`collect` rules 10 and 11): `MarkState::work` holds batches
//! of grey objects; a marker with none steals a batch and raises `MarkState::work_wanted`, and a
//! busy marker gives half of its stack when it sees the flag (checked every 64 objects by
//! `drain`). Also the mutators' queue (`MarkState::queue`: barrier values, stack scans, black
//! allocation ranges) and the marked-bytes accounting that paces assists.

use super::Marker;
use crate::heap::Heap;
use crate::span::GcSpan;
use std::sync::atomic::Ordering;

/// Grey objects moved to or from `MarkState::work` at a time.
const BATCH: usize = 256;

impl Marker {
    /// A marker of `heap` that shares work with the others through `MarkState::work`.
    pub(crate) fn shared(heap: &'static Heap) -> Self {
        let mut m = Self::new(heap.addr(), heap.config.verify, true);
        m.share = Some(heap);
        m
    }

    /// Adds what this marker marked since last time to `MarkState::mark_progress`.
    pub(super) fn publish(&mut self, heap: &Heap) {
        heap.mark
            .mark_progress
            .fetch_add(self.marked_bytes - self.published, Ordering::Relaxed);
        self.published = self.marked_bytes;
    }

    /// The bytes marked since the last call (published first), for a long-lived marker that
    /// reports as it goes.
    pub(crate) fn take_marked(&mut self) -> usize {
        if let Some(heap) = self.share {
            self.publish(heap);
        }
        self.published = 0;
        std::mem::take(&mut self.marked_bytes)
    }

    /// True when this marker holds no grey object.
    pub(crate) fn idle(&self) -> bool {
        self.stack.is_empty()
    }

    /// Takes a batch of grey objects from `MarkState::work`; false if there is none (and asks the
    /// other markers to spill some).
    pub(crate) fn steal(&mut self) -> bool {
        let Some(heap) = self.share else { return false };
        match heap.work_lock().pop() {
            Some(batch) => {
                self.stack
                    .extend(batch.into_iter().map(|(s, o)| (s as *const GcSpan, o)));
                true
            }
            None => {
                heap.mark.work_wanted.store(true, Ordering::Relaxed);
                false
            }
        }
    }

    /// Moves every grey object this marker holds to `MarkState::work` (an assist that stops, or
    /// parks for a stop of the world, leaves its work to the others).
    pub(crate) fn spill_all(&mut self) {
        if let Some(heap) = self.share {
            self.give(heap, self.stack.len());
        }
    }

    /// Gives half of this marker's grey objects to `MarkState::work` when another marker wants
    /// work (checked every few dozen objects by `drain`).
    #[cold]
    pub(super) fn share_half(&mut self, heap: &Heap) {
        heap.mark.work_wanted.store(false, Ordering::Relaxed);
        self.give(heap, (self.stack.len() / 2).min(4 * BATCH));
    }

    /// Moves the `n` oldest grey objects to `MarkState::work`, in batches. The bottom of the stack
    /// holds siblings high in the graph, with the largest subgraphs below them, so a taker
    /// gets the most work per batch.
    pub(super) fn give(&mut self, heap: &Heap, n: usize) {
        if n == 0 {
            return;
        }
        let mut w = heap.work_lock();
        for chunk in self.stack[..n].chunks(BATCH) {
            w.push(chunk.iter().map(|&(s, o)| (s as usize, o)).collect());
        }
        drop(w);
        self.stack.drain(..n);
    }

    /// Takes the mutators' work from the queue: grey values are shaded, black ranges marked
    /// without scanning (`collect` rule 5). True if there was any.
    pub(crate) fn take_queue(&mut self, heap: &Heap) -> bool {
        let (grey, black) = {
            let mut q = heap.queue_lock();
            (std::mem::take(&mut q.grey), std::mem::take(&mut q.black))
        };
        for &(s, from, to) in &black {
            // SAFETY: the span was in use when its slots were handed out, and no span is
            // freed while marking (rule 8).
            let r = unsafe { &*(s as *const GcSpan) };
            for i in from..to {
                // Slots whose alloc bit is set held objects before the cache took the span;
                // the cache handed out only the others.
                // SAFETY: alloc bits do not change while marking (nothing sweeps).
                let old = unsafe { r.alloc_word(i as usize / 64) } & (1 << (i % 64)) != 0;
                if !old && r.set_mark(i) {
                    self.marked_bytes += r.size;
                }
            }
        }
        for &v in &grey {
            self.mark(v);
        }
        !grey.is_empty() || !black.is_empty()
    }
}
