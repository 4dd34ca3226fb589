//! `tc_metrics_read`: Go's `runtime/metrics` names from C (`tricolor_gc::metrics` has the
//! names, their meanings and units). Histograms are copied into buffers the caller owns, so
//! nothing is handed to C that C would have to free.

use crate::cmalloc;
use crate::gc::{heap_ref, tc_heap};
use core::ffi::{c_char, c_int};
use std::ffi::{CStr, CString};
use std::sync::OnceLock;
use tricolor_gc::metrics::{self, Sample, Value};

/// `kind` of a sample whose name is unknown, or has no value (a `/gc/` name with no heap).
pub const TC_METRIC_BAD: u32 = 0;
/// `kind` of a sample whose value is in `uint64`.
pub const TC_METRIC_UINT64: u32 = 1;
/// `kind` of a sample whose value is in `float64`.
pub const TC_METRIC_FLOAT64: u32 = 2;
/// `kind` of a histogram: `counts[i]` observations in `[buckets[i], buckets[i + 1])`.
pub const TC_METRIC_HISTOGRAM: u32 = 3;

/// One metric to read (Go's `metrics.Sample`). Set `name`, and for a histogram `counts`
/// and `buckets` with room for `histogram_len` counts and `histogram_len + 1` boundaries
/// (or NULL and 0 to learn the length first). `tc_metrics_read` sets `kind`, the value,
/// and `histogram_len` to the histogram's number of counts (copying at most the room given).
#[repr(C)]
#[derive(Debug)]
pub struct tc_metric_sample_t {
    /// In: the metric's name, e.g. "/gc/heap/goal:bytes".
    pub name: *const c_char,
    /// Out: one of `TC_METRIC_*`.
    pub kind: u32,
    /// Out: the value when `kind` is `TC_METRIC_UINT64`.
    pub uint64: u64,
    /// Out: the value when `kind` is `TC_METRIC_FLOAT64`.
    pub float64: f64,
    /// In: room for `histogram_len` counts, or NULL.
    pub counts: *mut u64,
    /// In: room for `histogram_len + 1` bucket boundaries (seconds for pauses), or NULL.
    pub buckets: *mut f64,
    /// In: the room in `counts`; out: the histogram's number of counts.
    pub histogram_len: usize,
}

/// Reads `n` samples: the allocator's figures, and the `/gc/` figures of `heap` (NULL: the
/// default heap if something has made it; without one they read `TC_METRIC_BAD`). Returns
/// 0, or -1 with `errno = EINVAL` when `samples` is NULL and `n` is not 0 or `n` is more
/// than any array holds, `ENOMEM` when there is no memory to read them. A NULL or non-UTF-8
/// name reads `TC_METRIC_BAD`.
///
/// # Safety
/// `samples` points to `n` samples whose names are NULL or NUL-terminated, and whose
/// `counts`/`buckets` are NULL or have the room `histogram_len` says; `heap` is NULL or a
/// heap from `tc_heap_default`/`tc_heap_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tc_metrics_read(
    heap: *mut tc_heap,
    samples: *mut tc_metric_sample_t,
    n: usize,
) -> c_int {
    if n == 0 {
        return 0;
    }
    // No array of more samples fits in the address space (and `from_raw_parts_mut` requires
    // less than isize::MAX bytes).
    if samples.is_null() || n > isize::MAX as usize / size_of::<tc_metric_sample_t>() {
        cmalloc::set_errno(libc::EINVAL);
        return -1;
    }
    // The one allocation sized by the caller: fallible. (Each sample's name is copied too, as
    // long as the caller's own string.)
    let mut read: Vec<Sample> = Vec::new();
    if read.try_reserve_exact(n).is_err() {
        cmalloc::set_errno(libc::ENOMEM);
        return -1;
    }
    // SAFETY: the caller's contract: `n` samples at `samples`.
    let out = unsafe { core::slice::from_raw_parts_mut(samples, n) };
    read.extend(out.iter().map(|s| {
        let name = if s.name.is_null() {
            None
        } else {
            // SAFETY: the caller's contract: a NUL-terminated name.
            unsafe { CStr::from_ptr(s.name) }.to_str().ok()
        };
        // An empty name is no metric's: it reads Bad, as a bad name does.
        Sample::new(name.unwrap_or(""))
    }));
    if heap.is_null() {
        metrics::read(&mut read);
    } else {
        heap_ref(heap, "tc_metrics_read").read_metrics(&mut read);
    }
    for (o, s) in out.iter_mut().zip(read) {
        match s.value {
            Value::Bad => o.kind = TC_METRIC_BAD,
            Value::Uint64(v) => {
                o.kind = TC_METRIC_UINT64;
                o.uint64 = v;
            }
            Value::Float64(v) => {
                o.kind = TC_METRIC_FLOAT64;
                o.float64 = v;
            }
            Value::Float64Histogram(h) => {
                o.kind = TC_METRIC_HISTOGRAM;
                let room = o.histogram_len.min(h.counts.len());
                if !o.counts.is_null() && !o.buckets.is_null() {
                    // SAFETY: the caller's contract: room for `histogram_len` counts and one
                    // more boundary; `room` is at most that, and a histogram has one boundary
                    // more than counts, so `room + 1` boundaries are there to copy.
                    unsafe {
                        core::ptr::copy_nonoverlapping(h.counts.as_ptr(), o.counts, room);
                        core::ptr::copy_nonoverlapping(h.buckets.as_ptr(), o.buckets, room + 1);
                    }
                }
                o.histogram_len = h.counts.len();
            }
        }
    }
    0
}

/// Names and descriptions as C strings, made on first use.
fn c_table() -> &'static [(CString, CString)] {
    static TABLE: OnceLock<Vec<(CString, CString)>> = OnceLock::new();
    TABLE.get_or_init(|| {
        metrics::all()
            .map(|d| {
                // Cannot fail: names and descriptions are the collector's string literals,
                // none with a NUL; `tests/c/gc.c` reads every one through this table.
                (
                    CString::new(d.name).expect("names have no NUL"),
                    CString::new(d.description).expect("descriptions have no NUL"),
                )
            })
            .collect()
    })
}

/// The `i`-th entry's string that `pick` chooses, or NULL past the last.
fn table_string(i: c_int, pick: fn(&(CString, CString)) -> &CString) -> *const c_char {
    usize::try_from(i)
        .ok()
        .and_then(|i| c_table().get(i))
        .map_or(core::ptr::null(), |e| pick(e).as_ptr())
}

/// The `i`-th metric's name (0, 1, ... until NULL), so a tool can list them. Static strings.
#[unsafe(no_mangle)]
pub extern "C" fn tc_metric_name(i: c_int) -> *const c_char {
    table_string(i, |e| &e.0)
}

/// The `i`-th metric's description, or NULL past the last. Static strings.
#[unsafe(no_mangle)]
pub extern "C" fn tc_metric_description(i: c_int) -> *const c_char {
    table_string(i, |e| &e.1)
}
