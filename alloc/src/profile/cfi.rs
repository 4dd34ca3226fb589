//! A caching unwinder for sampled stacks: the eh_frame tables' rule for each return address,
//! computed once and kept, so that a stack costs a table lookup and two loads a frame.
//!
//! libgcc's `_Unwind_Backtrace` finds and interprets the call frame information (CFI) of every
//! frame of every stack it walks; that is most of a sample's cost when libgcc walks (about 2.4 µs
//! of a stack 15 frames deep). Sampled stacks repeat the same few hundred call sites, so this
//! module asks libgcc only where a site's FDE is (`_Unwind_Find_FDE`), runs the FDE's CFI program
//! itself up to the site (`program`, the interpreter), and keeps the outcome in a table keyed by
//! the address. This module is the unwinder around it: the table, the memo and the walk.
//!
//! # What a rule says
//! For one address: the canonical frame address (CFA) is `rsp + k` or `rbp + k`; the return
//! address is saved at `CFA + r`; the caller's `rbp` is saved at `CFA + b`, or is this frame's
//! own. That covers what compilers emit for x86-64 call sites (rsp-based frames, and
//! rbp-based ones for frame pointers, dynamic realignment and variable-sized frames). Anything
//! else (a CFA or a saved register given by a DWARF expression or another register, a signal
//! frame, an augmentation we do not know) makes the address *unsupported*, and the whole stack
//! is then taken by libgcc: the stacks are the same either way. An address with no FDE, or
//! whose return address is undefined (the outermost frame: `_start`, `clone3`), ends the stack,
//! as it ends libgcc's.
//!
//! # Rules of the walk (as for the frame-pointer walk, `stack`)
//! 1. Every word read lies inside `[sp, top)`, the walker's live stack, and the walk starts
//!    only when `sp` is inside the thread's stack (`stack`'s rule 1); a wrong rule yields
//!    wrong frames, never a fault.
//! 2. Each frame's CFA is strictly above the previous frame's stack pointer, so the walk ends.
//! 3. The CFI interpreter (`program`) reads only inside the lengths the FDE and its CIE
//!    declare, and gives up (unsupported) on anything malformed.
//!
//! # The table
//! A `write_once::WriteOnce` of 8192 slots keyed by address: lock-free, each rule written
//! once and never changed, so a reader finds a whole rule or none (its rules and loom model
//! are there). When the probe finds no room, the rule is computed and not kept. Rules are
//! never dropped: were a library unloaded (`dlclose`) and other code loaded at its
//! addresses, stacks through that code could come out wrong (never a fault: rule 1).
//!
//! # The memo
//! Each thread keeps the previous walk's findings by depth (`MEMO`, 32 frames, 512 bytes of
//! thread-local storage): a frame whose address is the one at its depth last time takes that
//! finding without the table. An address's finding never changes (above), so the memo is a
//! cache of the table and can only be as wrong as the table. It matters when the program
//! evicts the table between samples: the table's slots are scattered and each is read only
//! once the frame below is unwound, a cache miss per frame in turn, where the memo's entries
//! are a few consecutive lines (`realloc` at a 16 KiB rate: 0.28 µs a sample, 0.45 without).

mod program;

use crate::write_once::WriteOnce;
use core::cell::Cell;
use core::ffi::c_void;

/// What the CFI says of one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Found {
    /// How to find the caller's frame.
    Rule(Rule),
    /// The stack ends here: no FDE covers the address, or its return address is undefined.
    End,
    /// A rule this walker does not follow (module docs).
    Unsupported,
}

/// How to find the caller's frame from this one's `rsp` and `rbp` (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Rule {
    /// The CFA is `rbp + cfa_off` (else `rsp + cfa_off`).
    cfa_rbp: bool,
    cfa_off: i32,
    /// The return address is at `CFA + ra_off`.
    ra_off: i32,
    /// The caller's `rbp` is at `CFA + off`; `None`: it is this frame's.
    rbp_off: Option<i32>,
}

unsafe extern "C" {
    /// libgcc's FDE lookup: the FDE covering `pc`, or null; fills `bases` (its third field is
    /// the start of the FDE's code).
    fn _Unwind_Find_FDE(pc: *mut c_void, bases: *mut Bases) -> *const u8;
}

/// libgcc's `struct dwarf_eh_bases`.
#[repr(C)]
struct Bases {
    tbase: *mut c_void,
    dbase: *mut c_void,
    func: *mut c_void,
}

/// Rules kept, keyed by address (`write_once`'s rules; 16 bytes each).
const SLOTS: usize = 8192;

static TABLE: WriteOnce<SLOTS> = WriteOnce::new();

const KIND_RULE: u64 = 1 << 49;
const KIND_END: u64 = 2 << 49;
const KIND_UNSUPPORTED: u64 = 3 << 49;
const KIND_MASK: u64 = 3 << 49;

/// Packs a finding into 51 bits: the CFA offset (32), the CFA register (1), the return
/// address's and the saved `rbp`'s offsets in words (8 each, 0 for an `rbp` not saved), the
/// kind (2). A rule whose offsets do not fit is unsupported.
fn encode(f: Found) -> u64 {
    let words = |off: i32| (off % 8 == 0 && (-128 * 8..=127 * 8).contains(&off)).then_some(off / 8);
    match f {
        Found::End => KIND_END,
        Found::Unsupported => KIND_UNSUPPORTED,
        Found::Rule(r) => {
            let ra = words(r.ra_off).filter(|&w| w != 0);
            let rbp = match r.rbp_off {
                None => Some(0),
                Some(off) => words(off).filter(|&w| w != 0),
            };
            match (ra, rbp) {
                (Some(ra), Some(rbp)) => {
                    u64::from(r.cfa_off as u32)
                        | u64::from(r.cfa_rbp) << 32
                        | u64::from(ra as i8 as u8) << 33
                        | u64::from(rbp as i8 as u8) << 41
                        | KIND_RULE
                }
                _ => KIND_UNSUPPORTED,
            }
        }
    }
}

fn decode(bits: u64) -> Found {
    match bits & KIND_MASK {
        KIND_RULE => {
            let rbp = i32::from((bits >> 41) as u8 as i8) * 8;
            Found::Rule(Rule {
                cfa_rbp: bits >> 32 & 1 == 1,
                cfa_off: bits as u32 as i32,
                ra_off: i32::from((bits >> 33) as u8 as i8) * 8,
                rbp_off: (rbp != 0).then_some(rbp),
            })
        }
        KIND_END => Found::End,
        _ => Found::Unsupported,
    }
}

/// The finding for `pc` (a code address; for a caller's frame, its return address minus one),
/// from the table or computed and kept.
#[inline]
fn lookup(pc: usize) -> Found {
    decode(lookup_bits(pc))
}

/// [`lookup`]'s finding, encoded.
#[inline]
fn lookup_bits(pc: usize) -> u64 {
    match TABLE.get(pc as u64) {
        Some(bits) => bits,
        None => compute(pc),
    }
}

/// [`lookup`] for an address the table does not hold: computed, and kept when there is room.
#[cold]
#[inline(never)]
fn compute(pc: usize) -> u64 {
    // SAFETY: `pc` is any address: `_Unwind_Find_FDE` answers null for one no object covers,
    // and `program::fde_rule` reads only the FDE it returned (rule 3).
    let bits = encode(unsafe { find(pc) });
    TABLE.put(pc as u64, bits);
    bits
}

/// Frames of the previous walk whose findings a thread keeps.
const MEMO_FRAMES: usize = 32;

std::thread_local! {
    /// The previous walk's `(address, finding)` at each depth: a stack sampled again from the
    /// same call path finds its findings here, in a few consecutive cache lines, instead of
    /// one table slot per frame, each read only once the frame below is unwound (without it,
    /// a sample after the program has evicted the table pays a cache miss per frame in turn). Only
    /// this thread's walks use it, one at a time (a sampling thread is quiet).
    static MEMO: [Cell<(usize, u64)>; MEMO_FRAMES] =
        const { [const { Cell::new((0, 0)) }; MEMO_FRAMES] };
}

/// [`lookup`] for the frame at `depth`, through the thread's memo of the previous walk.
#[inline]
fn lookup_memo(memo: &[Cell<(usize, u64)>; MEMO_FRAMES], depth: usize, pc: usize) -> Found {
    let Some(m) = memo.get(depth) else {
        return lookup(pc);
    };
    let (at, bits) = m.get();
    if at == pc && pc != 0 {
        return decode(bits);
    }
    let bits = lookup_bits(pc);
    m.set((pc, bits));
    decode(bits)
}

/// Computes the finding for `pc` from its FDE.
///
/// # Safety
/// None beyond libgcc's: `_Unwind_Find_FDE` takes any address.
unsafe fn find(pc: usize) -> Found {
    let mut bases = Bases {
        tbase: core::ptr::null_mut(),
        dbase: core::ptr::null_mut(),
        func: core::ptr::null_mut(),
    };
    // SAFETY: `bases` is a valid out-parameter; libgcc answers null for an unknown address.
    let fde = unsafe { _Unwind_Find_FDE(pc as *mut c_void, &mut bases) };
    if fde.is_null() {
        return Found::End;
    }
    // SAFETY: `fde` is an FDE of a loaded object's eh_frame, whose declared lengths lie in it.
    unsafe { program::fde_rule(fde, bases.func as usize, pc) }
}

/// Fills `frames` with the return addresses of the calling thread's stack (`[bottom, top)` as
/// `stack` found it), innermost first, starting from the caller of this function; `None` when
/// a frame's rule is unsupported or the thread runs on another stack (the caller then unwinds
/// with libgcc).
#[inline(never)]
pub(super) fn capture(frames: &mut [usize], bounds: (usize, usize)) -> Option<usize> {
    let (pc, sp, fp): (usize, usize, usize);
    // SAFETY: reads the instruction pointer and two registers.
    unsafe {
        core::arch::asm!("lea {}, [rip]", "mov {}, rsp", "mov {}, rbp",
            out(reg) pc, out(reg) sp, out(reg) fp, options(nomem, nostack, preserves_flags))
    };
    let (sp, top) = super::stack::live_stack(sp, bounds)?;
    MEMO.with(|memo| {
        let depth = Cell::new(0);
        let rule = |at| {
            let n = depth.get();
            depth.set(n + 1);
            lookup_memo(memo, n, at)
        };
        // SAFETY: `[sp, top)` is the live part of this thread's stack (rule 1).
        unsafe { walk(pc, sp, fp, top, frames, rule) }
    })
}

/// Walks from a frame at `pc` with `sp` and `fp` (rules 1 and 2), finding rules with `rule`.
///
/// # Safety
/// Every byte of `[sp, hi)` is readable.
unsafe fn walk(
    pc: usize,
    mut sp: usize,
    mut fp: usize,
    hi: usize,
    frames: &mut [usize],
    rule: impl Fn(usize) -> Found,
) -> Option<usize> {
    let lo = sp;
    let read = |at: usize| {
        (at >= lo && at % 8 == 0 && at.checked_add(8).is_some_and(|e| e <= hi))
            // SAFETY: 8 aligned bytes inside `[lo, hi)`, readable by the caller's contract.
            .then(|| unsafe { *(at as *const usize) })
    };
    let mut n = 0;
    let mut at = pc;
    while n < frames.len() {
        let r = match rule(at) {
            Found::Rule(r) => r,
            Found::End => break,
            Found::Unsupported => return None,
        };
        let base = if r.cfa_rbp { fp } else { sp };
        let cfa = base.wrapping_add(r.cfa_off as isize as usize);
        if cfa <= sp || cfa > hi {
            break;
        }
        let Some(ret) = read(cfa.wrapping_add(r.ra_off as isize as usize)) else {
            break;
        };
        if let Some(off) = r.rbp_off {
            match read(cfa.wrapping_add(off as isize as usize)) {
                Some(v) => fp = v,
                None => break,
            }
        }
        if ret == 0 {
            break;
        }
        frames[n] = ret;
        n += 1;
        sp = cfa;
        // The call instruction, which the return address follows.
        at = ret - 1;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rule of an rsp-based frame, its return address at CFA - 8.
    pub(super) fn rsp(cfa_off: i32, rbp_off: Option<i32>) -> Found {
        Found::Rule(Rule {
            cfa_rbp: false,
            cfa_off,
            ra_off: -8,
            rbp_off,
        })
    }

    #[test]
    fn encoding_keeps_every_field() {
        for f in [
            rsp(8, None),
            rsp(-5, Some(-1024)),
            Found::Rule(Rule {
                cfa_rbp: true,
                cfa_off: i32::MAX,
                ra_off: 1016,
                rbp_off: Some(8),
            }),
            Found::End,
            Found::Unsupported,
        ] {
            assert_eq!(decode(encode(f)), f);
        }
    }

    /// A made-up stack of three frames, each `rsp + 32` with its return address at CFA - 8;
    /// the walk follows them and stops at the bounds.
    #[test]
    fn the_walk_stays_in_bounds() {
        let mut stack = [0usize; 16];
        let words = stack.as_mut_ptr();
        let base = words as usize;
        // SAFETY: `i` is below the buffer's 16 words.
        let set = |i: usize, v: usize| unsafe { words.add(i).write(v) };
        set(3, 0x1111);
        set(7, 0x2222);
        set(11, 0x3333);
        set(15, 0x4444);
        let rule = |_| rsp(32, None);
        let mut f = [0usize; 8];
        let hi = base + 8 * 16;
        // SAFETY: every byte of [base, hi) is the buffer.
        let n = unsafe { walk(0x10, base, 0, hi, &mut f, rule) }.unwrap();
        assert_eq!(&f[..n], &[0x1111, 0x2222, 0x3333, 0x4444]);
        // A frame whose CFA would not climb ends the walk; so does one past the top.
        // SAFETY: as above.
        let n = unsafe { walk(0x10, base, 0, hi, &mut f, |_| rsp(0, None)) }.unwrap();
        assert_eq!(n, 0);
        // SAFETY: as above.
        let n = unsafe { walk(0x10, base, 0, base + 8 * 6, &mut f, rule) }.unwrap();
        assert_eq!(&f[..n], &[0x1111]);
        // Unsupported anywhere: the caller unwinds with libgcc instead.
        // SAFETY: as above.
        let none = unsafe { walk(0x10, base, 0, hi, &mut f, |_| Found::Unsupported) };
        assert_eq!(none, None);
    }

    /// The stacks are libgcc's: from frames of several shapes (plain, a frame of 100 KiB, an
    /// over-aligned local that makes the compiler realign the stack on `rbp`, a call through
    /// a pointer, a deep recursion), on this thread and a new one, the caching unwinder returns
    /// the return addresses libgcc's `_Unwind_Backtrace` returns, twice (the second from the
    /// table).
    #[test]
    #[cfg_attr(miri, ignore = "calls libgcc")]
    fn stacks_match_libgcc() {
        #[inline(never)]
        fn both() -> (Vec<usize>, Vec<usize>) {
            let mut a = [0usize; 64];
            let mut b = [0usize; 64];
            let bounds = super::super::stack::stack_bounds().unwrap();
            let n = capture(&mut a, bounds).expect("a supported stack");
            let m = super::super::stack::capture_unwind(&mut b);
            // libgcc's first frame is in `capture_unwind`; ours starts at its caller (here).
            (a[..n].to_vec(), b[1..m].to_vec())
        }
        #[inline(never)]
        fn big() -> (Vec<usize>, Vec<usize>) {
            let mut buf = [0u8; 100_000];
            std::hint::black_box(&mut buf);
            let r = both();
            std::hint::black_box(&buf);
            r
        }
        #[repr(align(128))]
        struct Aligned([u8; 256]);
        #[inline(never)]
        fn aligned() -> (Vec<usize>, Vec<usize>) {
            let mut a = Aligned([1; 256]);
            std::hint::black_box(&mut a);
            let r = both();
            std::hint::black_box(&a.0);
            r
        }
        #[inline(never)]
        fn deep(n: u32) -> (Vec<usize>, Vec<usize>) {
            if n == 0 {
                both()
            } else {
                std::hint::black_box(deep(n - 1))
            }
        }
        let through: fn() -> (Vec<usize>, Vec<usize>) = std::hint::black_box(big);
        let check = move || {
            for f in [both, big, aligned, through, || deep(30)] {
                for _ in 0..2 {
                    let (ours, theirs) = f();
                    assert!(theirs.len() > 3, "{theirs:x?}");
                    // The first frame differs by where each capture was called from.
                    assert_eq!(ours[1..], theirs[1..], "{ours:x?} against {theirs:x?}");
                }
            }
        };
        check();
        std::thread::spawn(check).join().unwrap();
    }
}
