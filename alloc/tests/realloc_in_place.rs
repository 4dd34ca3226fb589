//! Large blocks grow and shrink where they are when the pages after them allow it, and keep
//! their contents. One test in its own binary: nothing else allocates between the steps.

use std::alloc::{GlobalAlloc, Layout};
use tricolor_alloc::Tricolor;

#[global_allocator]
static GLOBAL: Tricolor = Tricolor;

#[test]
fn large_realloc_grows_and_shrinks_in_place() {
    const MIB: usize = 1 << 20;
    let l = Layout::from_size_align(MIB, 8).unwrap();
    // SAFETY: every pointer is used within its current size and freed with its last layout.
    unsafe {
        let p = GLOBAL.alloc(l);
        assert!(!p.is_null());
        for i in (0..MIB).step_by(4096) {
            *p.add(i) = (i / 4096) as u8;
        }
        // The pages after a fresh block are free (or uncommitted reservation): grow in place.
        let q = GLOBAL.realloc(p, l, 3 * MIB);
        assert_eq!(q, p, "a 1 MiB block with free pages after it moved to grow");
        for i in (0..MIB).step_by(4096) {
            assert_eq!(*q.add(i), (i / 4096) as u8);
        }
        q.add(3 * MIB - 1).write(0xee);
        // Shrinking by more than a quarter gives the tail back but keeps the block.
        let r = GLOBAL.realloc(q, Layout::from_size_align(3 * MIB, 8).unwrap(), MIB + 100);
        assert_eq!(r, p, "shrinking moved the block");
        assert_eq!(tricolor_alloc::usable_size(r), MIB + 8192);
        // The tail is free again: the next large block fits right after the shrunk one.
        let s = GLOBAL.alloc(Layout::from_size_align(MIB, 8).unwrap());
        assert_eq!(s as usize, r as usize + MIB + 8192, "freed tail not reused");
        // Now the block cannot grow in place: it must move, contents intact.
        let t = GLOBAL.realloc(r, Layout::from_size_align(MIB + 100, 8).unwrap(), 2 * MIB);
        assert_ne!(t, r);
        for i in (0..MIB).step_by(4096) {
            assert_eq!(*t.add(i), (i / 4096) as u8);
        }
        GLOBAL.dealloc(t, Layout::from_size_align(2 * MIB, 8).unwrap());
        GLOBAL.dealloc(s, Layout::from_size_align(MIB, 8).unwrap());
    }
    tricolor_alloc::testing::validate_page_heap();
}
