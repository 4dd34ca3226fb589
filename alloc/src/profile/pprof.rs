//! The heap profile in pprof's `profile.proto` (github.com/google/pprof, proto/profile.proto),
//! shaped as Go's `writeHeapProto` shapes it, so `go tool pprof` reads it as a Go heap
//! profile:
//! * sample types `alloc_objects`/count, `alloc_space`/bytes, `inuse_objects`/count,
//!   `inuse_space`/bytes (pprof shows the last, `inuse_space`, unless told otherwise);
//!   period type `space`/bytes, period the sampling rate;
//! * each bucket's counts scaled by `1 / (1 - e^(-size/rate))` (Go's `scaleHeapSample`);
//! * a numeric label `bytes`: the size of each allocation in the bucket, as Go's; and for a
//!   collector's objects a string label `type`, the registered type name (`go tool pprof
//!   -tagfocus type=node`, `-tags`).
//!
//! Locations are symbolized here (the `backtrace` crate: DWARF line tables where present,
//! else the ELF symbol tables, then `dladdr`), with inlined frames as extra lines, so the
//! file needs no binary to be read. Mappings come from `/proc/self/maps`. The allocator's own
//! frames at the top of each stack (the sampler, `malloc`, Rust's `__rust_alloc` shims) are
//! dropped, as Go drops the runtime's.

use super::buckets;
use super::proto::{Function, Label, Line, Location, Mapping, Profile, Sample, ValueType};
use prost::Message;
use std::collections::HashMap;

/// Go's `scaleHeapSample`: the estimated (objects, bytes) behind `count` samples of `size`
/// bytes each at `rate`.
pub(crate) fn scale(count: u64, size: u64, rate: u64) -> (i64, i64) {
    if count == 0 || size == 0 {
        return (0, 0);
    }
    if rate <= 1 {
        return (count as i64, (count * size) as i64);
    }
    let s = 1.0 / (1.0 - (-(size as f64) / rate as f64).exp());
    (
        (count as f64 * s) as i64,
        ((count * size) as f64 * s) as i64,
    )
}

/// Strings, deduplicated; index 0 is "" as the format requires.
struct Strings {
    table: Vec<String>,
    index: HashMap<String, i64>,
}

impl Strings {
    fn new() -> Self {
        let mut s = Strings {
            table: Vec::new(),
            index: HashMap::new(),
        };
        s.id("");
        s
    }

    fn id(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(s.to_owned());
        self.index.insert(s.to_owned(), i);
        i
    }
}

/// One symbolized frame: function name, file, line (innermost inlined frame first). An
/// address nothing names has none.
type Frame = (String, String, i64);

/// The frames at `addr` (a return address: the call is the byte before it).
fn symbolize(addr: usize) -> Vec<Frame> {
    let mut out = Vec::new();
    let pc = addr.saturating_sub(1) as *mut core::ffi::c_void;
    backtrace::resolve(pc, |sym| {
        let name = sym
            .name()
            .map(|n| format!("{n:#}"))
            .unwrap_or_else(|| format!("{addr:#x}"));
        let file = sym
            .filename()
            .map(|f| f.display().to_string())
            .unwrap_or_default();
        out.push((name, file, i64::from(sym.lineno().unwrap_or(0))));
    });
    if out.is_empty() {
        // No name at all (a stripped object's internal function): no lines, so that pprof
        // may symbolize the address itself from a binary with symbols (its mapping says it
        // has no functions).
        if let Some(name) = dladdr_name(addr) {
            out.push((name, String::new(), 0));
        }
    }
    out
}

/// The dynamic symbol covering `addr`, if any.
fn dladdr_name(addr: usize) -> Option<String> {
    // SAFETY: dladdr fills `info` for any address; the name it gives is NUL-terminated and
    // lives as long as the object is loaded (we copy it at once).
    unsafe {
        let mut info: libc::Dl_info = core::mem::zeroed();
        if libc::dladdr((addr - 1) as *const _, &mut info) == 0 || info.dli_sname.is_null() {
            return None;
        }
        Some(
            std::ffi::CStr::from_ptr(info.dli_sname)
                .to_string_lossy()
                .into_owned(),
        )
    }
}

/// A Rust name as pprof can show it: `<T as Trait>::f` becomes `T::f` (pprof drops whatever
/// is between angle brackets, which would leave `::f`). The full name stays the function's
/// `system_name`.
fn readable(name: &str) -> String {
    let Some(rest) = name.strip_prefix('<') else {
        return name.to_owned();
    };
    let mut depth = 1;
    let mut as_at = None;
    for (i, c) in rest.char_indices() {
        match c {
            '<' => depth += 1,
            '>' => {
                depth -= 1;
                if depth == 0 {
                    let inner = &rest[..as_at.unwrap_or(i)];
                    return format!("{inner}{}", &rest[i + 1..]);
                }
            }
            ' ' if depth == 1 && as_at.is_none() && rest[i..].starts_with(" as ") => {
                as_at = Some(i)
            }
            _ => {}
        }
    }
    name.to_owned()
}

/// True for a source file of the allocator, the collector or their C layers: their crates'
/// source directories, as this crate was built (release builds' line tables name inlined
/// functions without their paths, so names alone cannot tell `alloc_sampled` is ours). Not
/// their tests: a test's functions are a program's own.
fn is_allocator_file(file: &str) -> bool {
    // Rust's own allocation shims (`alloc::alloc::alloc`, `Global::allocate`), named without
    // paths in release builds' line tables.
    if file.ends_with("/library/alloc/src/alloc.rs")
        || file.ends_with("/library/std/src/alloc.rs")
        || file.contains("/library/core/src/alloc/")
    {
        return true;
    }
    let alloc = env!("CARGO_MANIFEST_DIR");
    let root = std::path::Path::new(alloc).parent();
    let f = std::path::Path::new(file);
    f.starts_with(std::path::Path::new(alloc).join("src"))
        || root.is_some_and(|r| {
            ["ffi/src", "ffi/preload/src", "gc/src"]
                .iter()
                .any(|d| f.starts_with(r.join(d)))
        })
}

/// A frame of Rust's standard library (by its path, or by its source file: release builds'
/// line tables name inlined functions without their paths).
fn is_library_frame((name, file, _): &Frame) -> bool {
    [
        "core::", "<core::", "alloc::", "<alloc::", "std::", "<std::",
    ]
    .iter()
    .any(|p| name.starts_with(p))
        || ["/library/core/", "/library/alloc/", "/library/std/"]
            .iter()
            .any(|d| file.contains(d))
}

/// Frames of the allocator itself, dropped from the top of every stack.
fn is_allocator_frame(name: &str) -> bool {
    const PREFIXES: [&str; 13] = [
        "tricolor_alloc::",
        "tricolor_gc::",
        "<tricolor_gc::",
        "__rustc::",
        "<alloc::alloc::Global as core::alloc::Allocator>::",
        "<tricolor_alloc::",
        "tricolor_ffi::",
        "tricolor_preload::",
        "__rust_",
        "__rdl_",
        "__rg_",
        "alloc::alloc::",
        "std::alloc::",
    ];
    const EXACT: [&str; 9] = [
        "malloc",
        "calloc",
        "realloc",
        "reallocarray",
        "posix_memalign",
        "aligned_alloc",
        "memalign",
        "valloc",
        "pvalloc",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p))
        || EXACT.contains(&name)
        || name.starts_with("tc_")
        || name.starts_with("operator new")
        || name.starts_with("_Znw")
        || name.starts_with("_Zna")
        || name.starts_with("_Unwind_")
}

/// An executable mapping of `/proc/self/maps`.
struct Map {
    start: u64,
    end: u64,
    offset: u64,
    path: String,
}

fn executable_maps() -> Vec<Map> {
    let Ok(text) = std::fs::read_to_string("/proc/self/maps") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let range = f.next()?;
            let perms = f.next()?;
            let offset = u64::from_str_radix(f.next()?, 16).ok()?;
            let path = f.nth(2).unwrap_or("").to_owned();
            let (a, b) = range.split_once('-')?;
            (perms.contains('x')).then_some(Map {
                start: u64::from_str_radix(a, 16).ok()?,
                end: u64::from_str_radix(b, 16).ok()?,
                offset,
                path,
            })
        })
        .collect()
}

/// The profile of every bucket, scaled at `rate` (0: sampling was stopped; the profile is
/// then scaled as if at the default rate, having been sampled at some rate before).
pub(crate) fn encode(rate: u64) -> Vec<u8> {
    let rate = if rate == 0 {
        crate::knobs::DEFAULT_PROFILE_RATE
    } else {
        rate
    };
    let mut strings = Strings::new();
    let count = strings.id("count");
    let bytes_unit = strings.id("bytes");
    let vt = |s: &mut Strings, t: &str, u: i64| ValueType {
        r#type: s.id(t),
        unit: u,
    };
    let sample_type = vec![
        vt(&mut strings, "alloc_objects", count),
        vt(&mut strings, "alloc_space", bytes_unit),
        vt(&mut strings, "inuse_objects", count),
        vt(&mut strings, "inuse_space", bytes_unit),
    ];
    let period_type = Some(vt(&mut strings, "space", bytes_unit));
    let bytes_key = strings.id("bytes");
    let type_key = strings.id("type");

    let maps = executable_maps();
    let mapping: Vec<Mapping> = maps
        .iter()
        .enumerate()
        .map(|(i, m)| Mapping {
            id: i as u64 + 1,
            memory_start: m.start,
            memory_limit: m.end,
            file_offset: m.offset,
            filename: strings.id(&m.path),
            build_id: 0,
            has_functions: true,
            has_filenames: true,
            has_line_numbers: true,
            has_inline_frames: true,
        })
        .collect();

    let mut locations: Vec<Location> = Vec::new();
    let mut functions: Vec<Function> = Vec::new();
    let mut symbols: HashMap<usize, Vec<Frame>> = HashMap::new();
    // A location per (address, leading inlined frames trimmed): the allocator's own frames
    // are dropped from the top of a stack even when inlined into a caller's location.
    let mut location_of: HashMap<(usize, usize), u64> = HashMap::new();
    let mut function_of: HashMap<(String, String), u64> = HashMap::new();
    let mut samples = Vec::new();
    for b in buckets::all() {
        // Frees first: a free is counted after its allocation (buckets invariant 3).
        let frees = b.frees.load(std::sync::atomic::Ordering::Relaxed);
        let allocs = b.allocs.load(std::sync::atomic::Ordering::Relaxed);
        if allocs == 0 {
            continue;
        }
        let mut ids = Vec::new();
        let ours = |f: &Frame| is_allocator_frame(&f.0) || is_allocator_file(&f.1);
        // The allocator's own locations go whole from the top: each one whose function (its
        // outermost frame) is the allocator's, with what was inlined into it, and any
        // standard-library function called out of line among them (`Option::and_then` in a
        // debug build, say). The first location after them loses the allocator's frames
        // inlined at its top.
        let mut dropped = 0;
        for (i, &addr) in b.frames().iter().enumerate() {
            let frames = symbols.entry(addr).or_insert_with(|| symbolize(addr));
            if frames.last().is_some_and(ours) {
                dropped = i + 1;
            } else if frames.is_empty() || !frames.iter().all(is_library_frame) {
                break;
            }
        }
        for (i, &addr) in b.frames().iter().enumerate().skip(dropped) {
            let frames = symbols.entry(addr).or_insert_with(|| symbolize(addr));
            let skip = if i == dropped {
                frames.iter().take_while(|f| ours(f)).count()
            } else {
                0
            };
            let id = *location_of.entry((addr, skip)).or_insert_with(|| {
                let line = frames[skip..]
                    .iter()
                    .map(|(name, file, line)| {
                        let next = functions.len() as u64 + 1;
                        let key = (name.clone(), file.clone());
                        let function_id = *function_of.entry(key).or_insert_with(|| {
                            functions.push(Function {
                                id: next,
                                name: strings.id(&readable(name)),
                                system_name: strings.id(name),
                                filename: strings.id(file),
                            });
                            next
                        });
                        Line {
                            function_id,
                            line: *line,
                        }
                    })
                    .collect();
                let id = locations.len() as u64 + 1;
                let mapping_id = maps
                    .iter()
                    .position(|m| (m.start..m.end).contains(&(addr as u64)))
                    .map_or(0, |i| i as u64 + 1);
                locations.push(Location {
                    id,
                    mapping_id,
                    address: addr as u64,
                    line,
                });
                id
            });
            ids.push(id);
        }
        let (ao, ab) = scale(allocs, b.bytes, rate);
        let (io, ib) = scale(allocs.saturating_sub(frees), b.bytes, rate);
        samples.push(Sample {
            location_id: ids,
            value: vec![ao, ab, io, ib],
            label: {
                let mut l = vec![Label {
                    key: bytes_key,
                    str: 0,
                    num: b.bytes as i64,
                    num_unit: 0,
                }];
                if !b.label.is_empty() {
                    l.push(Label {
                        key: type_key,
                        str: strings.id(b.label),
                        num: 0,
                        num_unit: 0,
                    });
                }
                l
            },
        });
    }
    // A mapping with an address no symbol named is left for pprof to symbolize (from the
    // binary or its debug symbols, where the reader has them).
    let mut mapping = mapping;
    for l in locations
        .iter()
        .filter(|l| l.line.is_empty() && l.mapping_id > 0)
    {
        let m = &mut mapping[l.mapping_id as usize - 1];
        m.has_functions = false;
        m.has_filenames = false;
        m.has_line_numbers = false;
        m.has_inline_frames = false;
    }
    let comment = vec![strings.id(&format!(
        "tricolor heap profile: one sample per {rate} bytes allocated on average"
    ))];
    let time_nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64);
    Profile {
        sample_type,
        sample: samples,
        mapping,
        location: locations,
        function: functions,
        string_table: strings.table,
        time_nanos,
        period_type,
        period: rate as i64,
        comment,
    }
    .encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_is_gos() {
        // One sample of 512 KiB at rate 512 KiB: probability 1 - 1/e.
        let (o, b) = scale(1, 512 * 1024, 512 * 1024);
        assert_eq!(o, 1);
        assert_eq!(b, (512.0 * 1024.0 / (1.0 - (-1f64).exp())) as i64);
        // Small objects: about rate / size objects per sample.
        let (o, _) = scale(10, 64, 512 * 1024);
        assert!((81_900..=81_930).contains(&o), "{o}");
        assert_eq!(scale(0, 64, 1000), (0, 0));
        assert_eq!(scale(3, 64, 1), (3, 192));
    }

    #[test]
    fn rust_names_survive_pprofs_bracket_stripping() {
        assert_eq!(
            readable("<u8 as alloc::vec::spec_from_elem::SpecFromElem>::from_elem"),
            "u8::from_elem"
        );
        assert_eq!(
            readable("<alloc::vec::Vec<T, A> as core::ops::drop::Drop>::drop"),
            "alloc::vec::Vec<T, A>::drop"
        );
        assert_eq!(readable("<[T]>::to_vec"), "[T]::to_vec");
        assert_eq!(readable("main"), "main");
        assert_eq!(readable("<unbalanced"), "<unbalanced");
    }

    #[test]
    fn the_allocators_frames_are_recognised() {
        for n in [
            "tricolor_alloc::profile::stack::capture",
            "<tricolor_alloc::global::Tricolor as core::alloc::global::GlobalAlloc>::alloc",
            "__rust_alloc",
            "__rustc::__rust_alloc",
            "malloc",
            "operator new(unsigned long)",
            "alloc::alloc::exchange_malloc",
        ] {
            assert!(is_allocator_frame(n), "{n}");
        }
        for n in [
            "main",
            "PyList_New",
            "alloc::raw_vec::RawVec<T>::grow",
            "mallocx",
        ] {
            assert!(!is_allocator_frame(n), "{n}");
        }
    }
}
