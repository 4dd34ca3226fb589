//! Growing the heap: committing from the frontier or a new region (`grow`, `publish`,
//! `reserve_region`), and the pool of span records the index takes its records from
//! (`stock_records`).

use super::{GROW_CHUNK, Inner, PageHeap, RECORD_BATCH};
use crate::dirty::ArenaPages;
use crate::knobs;
use crate::os;
use crate::pagemap::ARENA_SIZE;
use crate::size_class::{PAGE_SHIFT, PAGE_SIZE};
use crate::span::{Span, SpanState};
use core::ptr::{self, NonNull};

impl Inner {
    /// Makes sure the record pool holds at least three records: a grow may take one and a
    /// carve two more.
    pub(super) fn stock_records(&mut self, heap: &PageHeap) -> bool {
        let mut have = 0;
        let mut s = self.pool;
        while have < 3 && !s.is_null() {
            // SAFETY: pool records are Unused and owned by the page heap; lock held.
            s = unsafe { (*s).owned().next };
            have += 1;
        }
        if have == 3 {
            return true;
        }
        let Some(mem) = heap
            .meta
            .alloc(RECORD_BATCH * size_of::<Span>(), align_of::<Span>())
        else {
            return false;
        };
        let base = mem.as_ptr().cast::<Span>();
        for i in 0..RECORD_BATCH {
            // SAFETY: `mem` is fresh metadata with room for RECORD_BATCH records, aligned.
            unsafe {
                let s = base.add(i);
                s.write(Span::new());
                self.drop_record(s);
            }
        }
        true
    }

    /// # Safety
    /// The pool is non-empty (after `stock_records`).
    pub(super) unsafe fn take_record(&mut self) -> *mut Span {
        let s = self.pool;
        debug_assert!(!s.is_null());
        // SAFETY: pool records are Unused, owned by the page heap.
        self.pool = unsafe { (*s).owned().next };
        s
    }

    /// # Safety
    /// `s` is a record no list and no pagemap slot refers to as live (its pages now map to
    /// another record, or it was never used).
    pub(super) unsafe fn drop_record(&mut self, s: *mut Span) {
        // SAFETY: the page heap owns `s` now (caller's contract); lock held.
        unsafe {
            (*s).set_state(SpanState::Unused, 0);
            (*s).set_range(0, 0);
            (*s).owned().next = self.pool;
        }
        self.pool = s;
    }

    /// Adds fresh committed memory to the index, holding `pages` pages that start on a multiple
    /// of `align_pages` pages, and returns that start. Under a memory limit, first releases
    /// dirty pages so that what the process holds stays within it. `None`, with nothing
    /// reserved or committed, when the OS refuses.
    ///
    /// The new run may merge with a free run before it; the first aligned start in the merged
    /// run is then at or before the returned one, with at least `pages` pages after it, so
    /// `carve` on the merged run still fits.
    pub(super) fn grow(
        &mut self,
        heap: &PageHeap,
        pages: usize,
        align_pages: usize,
    ) -> Option<usize> {
        let need = pages.checked_mul(PAGE_SIZE)?;
        let align = align_pages.checked_mul(PAGE_SIZE)?;
        let limit = knobs::memory_limit();
        if limit != knobs::NO_LIMIT {
            let held = self.committed - ((self.free_pages - self.dirty_pages) << PAGE_SHIFT)
                + heap.meta.mapped();
            let over = (held + need.max(GROW_CHUNK)).saturating_sub(limit as usize);
            if over > 0 {
                self.release_locked(heap, over.div_ceil(PAGE_SIZE));
            }
        }
        if align > ARENA_SIZE {
            // A huge alignment gets a reservation of its own, aligned by the OS layer, which
            // trims the slack: only `need` bytes of address space stay reserved, and only they
            // are committed. The frontier is left as it was.
            let base = os::reserve(need, align, 0)?.as_ptr() as usize;
            // SAFETY: the reservation just made, of `need` bytes, untouched.
            if !unsafe { self.publish(heap, base, need) } {
                // SAFETY: the reservation just made, which publishing failed to hand out.
                unsafe { os::unreserve(base, need) };
                return None;
            }
            return Some(base);
        }
        let want = need.checked_add(align - PAGE_SIZE)?;
        // A new region is given back if the memory it was reserved for cannot be committed, so
        // a refused request leaves no reservation behind.
        let mut undo = None;
        if self.region_end - self.region_cur < want {
            let (base, len) = reserve_region(want, self.region_end)?;
            undo = Some((base, len, self.region_cur, self.region_end));
            if base == self.region_end && self.region_end != 0 {
                self.region_end += len;
            } else {
                self.region_cur = base;
                self.region_end = base + len;
            }
        }
        let len = want.max(GROW_CHUNK).min(self.region_end - self.region_cur);
        let base = self.region_cur;
        // SAFETY: `[base, base + len)` is the frontier of the current region: reserved, never
        // committed (`region_cur` only advances past published ranges).
        if len < want || !unsafe { self.publish(heap, base, len) } {
            if let Some((region, region_len, cur, end)) = undo {
                // SAFETY: the region reserved above, which nothing was handed out of.
                unsafe { os::unreserve(region, region_len) };
                (self.region_cur, self.region_end) = (cur, end);
            }
            return None;
        }
        if let Some((region, _, cur, end)) = undo
            && region != end
            && cur != end
        {
            // The old frontier was replaced by a region elsewhere: its rest, reserved and
            // never committed, goes back to the OS (under `ulimit -v` it is address space the
            // program may need).
            // SAFETY: the old frontier's rest: reserved, never committed or handed out.
            unsafe { os::unreserve(cur, end - cur) };
        }
        self.region_cur += len;
        Some(base.next_multiple_of(align))
    }

    /// Commits `[base, base + len)` (reserved, never committed) and indexes it as a free run.
    ///
    /// # Safety
    /// `[base, base + len)` is inside a reservation of ours that was never committed or
    /// handed out.
    pub(super) unsafe fn publish(&mut self, heap: &PageHeap, base: usize, len: usize) -> bool {
        // SAFETY: `[base, base + len)` is inside a reservation of ours (the caller's
        // contract), so `base` is non-null.
        if !unsafe { os::commit(NonNull::new_unchecked(base as *mut u8), len) } {
            return false;
        }
        // Leaves exist only for committed memory, so they are made after the commit: a request
        // the kernel refuses (say, 64 TiB) costs no metadata. If metadata runs out here, the
        // range is decommitted again by the caller's `unreserve`, or stays committed outside
        // the heap at the frontier, and the next grow commits it again.
        let mut arenas = self.arenas;
        let owner = ptr::from_ref(heap) as usize;
        let ok = heap.pagemap.ensure(&heap.meta, owner, base, len, |new| {
            // SAFETY: `arenas` is this heap's list, and its lock is held (`grow`'s caller).
            arenas = unsafe { insert_arena(arenas, new) };
        });
        self.arenas = arenas;
        if !ok {
            return false;
        }
        self.committed += len;
        // SAFETY: stock_records ran before every grow; the new run is ours and unlisted.
        unsafe {
            let s = self.take_record();
            (*s).set_range(base, len >> PAGE_SHIFT);
            (*s).owned().zeroed = true;
            heap.pagemap.set_range(base, len >> PAGE_SHIFT, s);
            self.release(heap, s);
        }
        true
    }
}

/// Reserves a region for at least `want` bytes and returns it as (address, length).
///
/// Normally `want` rounded up to whole 64 MiB arenas, arena-aligned, at `hint` when the kernel
/// allows (so the heap grows as one range). When that is refused, which an address-space limit
/// (`ulimit -v`, `RLIMIT_AS`) does long before memory runs out, because the aligned reservation
/// costs twice its length while it is trimmed, smaller page-aligned reservations are tried,
/// halving down to `want` rounded up to [`GROW_CHUNK`]: a program under a 64 MiB limit can then
/// use its memory until its own use approaches the limit. Such regions share an arena with
/// their neighbours (the pagemap allows that within one heap).
fn reserve_region(want: usize, hint: usize) -> Option<(usize, usize)> {
    let len = want.checked_next_multiple_of(ARENA_SIZE)?;
    if let Some(p) = os::reserve(len, ARENA_SIZE, hint) {
        return Some((p.as_ptr() as usize, len));
    }
    let floor = want.checked_next_multiple_of(GROW_CHUNK)?;
    let mut len = (len / 2).max(floor);
    loop {
        if let Some(p) = os::reserve(len, PAGE_SIZE, hint) {
            return Some((p.as_ptr() as usize, len));
        }
        if len == floor {
            return None;
        }
        len = (len / 2).max(floor);
    }
}

/// Inserts `new` into the arena list headed by `head` (highest address first); returns the
/// new head.
///
/// # Safety
/// `head` is null or the head of a page heap's arena list, and the caller holds that page
/// heap's lock.
unsafe fn insert_arena(head: *mut ArenaPages, new: &'static ArenaPages) -> *mut ArenaPages {
    let new_ptr = ptr::from_ref(new).cast_mut();
    // SAFETY: the caller's contract; arena records live in never-freed leaves, and the list is
    // changed only under the page-heap lock, which our caller holds.
    let arena = |a: *mut ArenaPages| unsafe { &*a };
    if head.is_null() || arena(head).base() < new.base() {
        new.set_lower(head);
        return new_ptr;
    }
    let mut at = head;
    loop {
        let lower = arena(at).lower();
        if lower.is_null() || arena(lower).base() < new.base() {
            new.set_lower(lower);
            arena(at).set_lower(new_ptr);
            return head;
        }
        at = lower;
    }
}
