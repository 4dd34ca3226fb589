//! Verification mode's heap-wide check after marking.

use super::Marker;
use super::scan::scan;
use crate::central::Central;
use crate::misuse;
use crate::span::IN_USE;
use std::sync::atomic::Ordering;

/// Verification: no marked (black) object points to a white one, across every span.
pub(crate) fn verify(heap: usize, c: &Central) {
    let mut m = Marker::new(heap, true, false);
    for &s in c.all.iter().chain(c.large.iter()) {
        // SAFETY: listed records are valid; the world is stopped.
        let r = unsafe { &*s };
        if r.state.load(Ordering::Relaxed) != IN_USE || r.reps == 0 {
            continue;
        }
        for i in 0..r.nelems {
            if !r.is_marked(i) {
                continue;
            }
            scan(r, r.slot(i), |v| {
                let before = m.marked_bytes;
                m.mark(v);
                if m.marked_bytes != before {
                    misuse::abort(format_args!(
                        "verify: black object {:#x} ({}) points to white object {v:#x}",
                        r.slot(i),
                        r.ty.name
                    ));
                }
            });
        }
    }
}
