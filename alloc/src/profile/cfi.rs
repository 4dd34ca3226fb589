//! A caching unwinder for sampled stacks: the eh_frame tables' rule for each return address,
//! computed once and kept, so that a stack costs a table lookup and two loads a frame.
//!
//! libgcc's `_Unwind_Backtrace` finds and interprets the call frame information (CFI) of every
//! frame of every stack it walks; that is most of a sample's cost when libgcc walks (about
//! 2.4 µs of a stack 15 frames deep). Sampled stacks repeat the same few hundred call sites, so this module asks
//! libgcc only where a site's FDE is (`_Unwind_Find_FDE`), runs the FDE's CFI program itself up
//! to the site, and keeps the outcome in a table keyed by the address.
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
//! 3. The CFI interpreter reads only inside the lengths the FDE and its CIE declare, and
//!    gives up (unsupported) on anything malformed.
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

use crate::write_once::WriteOnce;
use core::cell::Cell;
use core::ffi::c_void;

/// DWARF register numbers on x86-64.
const RBP: u64 = 6;
const RSP: u64 = 7;
const RA: u64 = 16;

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
    // and `fde_rule` reads only the FDE it returned (rule 3).
    let bits = encode(unsafe { find(pc) });
    TABLE.put(pc as u64, bits);
    bits
}

/// Frames of the previous walk whose findings a thread keeps.
const MEMO_FRAMES: usize = 32;

std::thread_local! {
    /// The previous walk's `(address, finding)` at each depth: a stack sampled again from the
    /// same call path finds its findings here, in a few consecutive cache lines, instead of
    /// one table slot per frame, each read only once the frame below is unwound (a sample
    /// after the program has evicted the table paid a cache miss per frame in turn). Only
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
    unsafe { fde_rule(fde, bases.func as usize, pc) }
}

/// A cursor over `[p, end)`, readable memory (its constructor's contract).
struct Reader {
    p: *const u8,
    end: *const u8,
}

impl Reader {
    /// # Safety
    /// `[p, p + len)` is readable for as long as the reader is used.
    unsafe fn new(p: *const u8, len: usize) -> Reader {
        Reader {
            p,
            end: p.wrapping_add(len),
        }
    }
    fn left(&self) -> usize {
        (self.end as usize).saturating_sub(self.p as usize)
    }
    fn bytes<const N: usize>(&mut self) -> Option<[u8; N]> {
        if self.left() < N {
            return None;
        }
        let mut out = [0u8; N];
        // SAFETY: `N` bytes at `p` are inside `[p, end)` (just checked), readable by the
        // constructor's contract.
        unsafe { core::ptr::copy_nonoverlapping(self.p, out.as_mut_ptr(), N) };
        self.p = self.p.wrapping_add(N);
        Some(out)
    }
    fn u8(&mut self) -> Option<u8> {
        self.bytes::<1>().map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.bytes().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.bytes().map(u32::from_le_bytes)
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        if self.left() < n {
            return None;
        }
        self.p = self.p.wrapping_add(n);
        Some(())
    }
    fn uleb(&mut self) -> Option<u64> {
        let (mut v, mut shift) = (0u64, 0u32);
        loop {
            let b = self.u8()?;
            if shift < 64 {
                v |= u64::from(b & 0x7f) << shift;
            }
            shift += 7;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
    }
    fn sleb(&mut self) -> Option<i64> {
        let (mut v, mut shift) = (0i64, 0u32);
        loop {
            let b = self.u8()?;
            if shift < 64 {
                v |= i64::from(b & 0x7f) << shift;
            }
            shift += 7;
            if b & 0x80 == 0 {
                if shift < 64 && b & 0x40 != 0 {
                    v |= -1i64 << shift;
                }
                return Some(v);
            }
        }
    }
    /// Skips a pointer in eh_frame encoding `enc` (its size is all that matters here).
    fn skip_pointer(&mut self, enc: u8) -> Option<()> {
        match enc & 0x0f {
            0x00 | 0x04 | 0x0c => self.skip(8),
            0x02 | 0x0a => self.skip(2),
            0x03 | 0x0b => self.skip(4),
            0x01 => self.uleb().map(drop),
            0x09 => self.sleb().map(drop),
            _ => None,
        }
    }
}

/// A register's rule while the CFI program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reg {
    Same,
    Undefined,
    At(i64),
    /// A rule the walker does not follow.
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct State {
    /// `(register, offset)`; `None` when given by an expression.
    cfa: Option<(u64, i64)>,
    ra: Reg,
    rbp: Reg,
}

const INITIAL: State = State {
    cfa: None,
    ra: Reg::Undefined,
    rbp: Reg::Same,
};

/// What the CIE says once parsed.
struct Cie {
    code_align: u64,
    data_align: i64,
    /// The FDE's pointer encoding ('R'), absolute pointers without it.
    fde_enc: u8,
    /// The FDE has an augmentation-data length ('z').
    z: bool,
    /// The CIE's initial instructions.
    program: Reader,
}

/// Parses the CIE at `cie` (rule 3). `None` for anything this walker does not follow.
///
/// # Safety
/// `cie` is a CIE of a loaded object's eh_frame (its declared length lies in it).
unsafe fn parse_cie(cie: *const u8) -> Option<Cie> {
    // SAFETY: the length word is part of the CIE.
    let len = unsafe { Reader::new(cie, 4) }.u32()?;
    if len == 0 || len == u32::MAX {
        return None;
    }
    // SAFETY: the CIE declares `len` bytes after its length word.
    let mut r = unsafe { Reader::new(cie.wrapping_add(4), len as usize) };
    if r.u32()? != 0 {
        return None;
    }
    let version = r.u8()?;
    let mut aug = [0u8; 8];
    let mut n = 0;
    loop {
        let c = r.u8()?;
        if c == 0 {
            break;
        }
        *aug.get_mut(n)? = c;
        n += 1;
    }
    let aug = &aug[..n];
    let code_align = r.uleb()?;
    let data_align = r.sleb()?;
    let ra = if version == 1 {
        u64::from(r.u8()?)
    } else {
        r.uleb()?
    };
    if ra != RA {
        return None;
    }
    let mut fde_enc = 0;
    let z = aug.first() == Some(&b'z');
    if z {
        let data_len = r.uleb()? as usize;
        let after = r.p.wrapping_add(data_len);
        for &c in &aug[1..] {
            match c {
                b'R' => fde_enc = r.u8()?,
                b'P' => {
                    let enc = r.u8()?;
                    r.skip_pointer(enc)?;
                }
                b'L' => {
                    r.u8()?;
                }
                // 'S' (a signal frame) and anything unknown.
                _ => return None,
            }
        }
        if r.p != after {
            return None;
        }
    } else if !aug.is_empty() {
        return None;
    }
    Some(Cie {
        code_align,
        data_align,
        fde_enc,
        z,
        program: r,
    })
}

/// The rule at `pc` from the FDE at `fde`, whose code starts at `func` (rule 3).
///
/// # Safety
/// `fde` is an FDE of a loaded object's eh_frame (its declared length and its CIE's lie in it).
unsafe fn fde_rule(fde: *const u8, func: usize, pc: usize) -> Found {
    // SAFETY: the caller's contract.
    unsafe { try_fde_rule(fde, func, pc) }.unwrap_or(Found::Unsupported)
}

/// # Safety
/// As for [`fde_rule`].
unsafe fn try_fde_rule(fde: *const u8, func: usize, pc: usize) -> Option<Found> {
    // SAFETY: the length word is part of the FDE.
    let len = unsafe { Reader::new(fde, 4) }.u32()?;
    if len == 0 || len == u32::MAX {
        return None;
    }
    // SAFETY: the FDE declares `len` bytes after its length word.
    let mut r = unsafe { Reader::new(fde.wrapping_add(4), len as usize) };
    let cie_field = r.p;
    let back = r.u32()? as usize;
    // SAFETY: the CIE pointer is the distance back from its own field to the FDE's CIE.
    let cie = unsafe { parse_cie(cie_field.wrapping_sub(back)) }?;
    r.skip_pointer(cie.fde_enc)?;
    r.skip_pointer(cie.fde_enc & 0x0f)?;
    if cie.z {
        let n = r.uleb()? as usize;
        r.skip(n)?;
    }
    let Cie {
        code_align,
        data_align,
        mut program,
        ..
    } = cie;
    let mut state = INITIAL;
    let mut loc = func;
    // The CIE's initial instructions set the state `restore` returns to.
    run(
        &mut program,
        code_align,
        data_align,
        &mut loc,
        pc,
        &mut state,
        &INITIAL,
    )?;
    let initial = state;
    run(
        &mut r, code_align, data_align, &mut loc, pc, &mut state, &initial,
    )?;
    Some(finish(state))
}

/// Runs CFI instructions from `r` while the location stays at or below `pc`. `None` for an
/// instruction this walker cannot run (rule 3).
fn run(
    r: &mut Reader,
    code_align: u64,
    data_align: i64,
    loc: &mut usize,
    pc: usize,
    state: &mut State,
    initial: &State,
) -> Option<()> {
    let mut saved = [INITIAL; 8];
    let mut depth = 0;
    let set = |state: &mut State, reg: u64, rule: Reg| match reg {
        RA => state.ra = rule,
        RBP => state.rbp = rule,
        _ => {}
    };
    let restore = |state: &mut State, reg: u64| match reg {
        RA => state.ra = initial.ra,
        RBP => state.rbp = initial.rbp,
        _ => {}
    };
    while r.left() > 0 {
        let op = r.u8()?;
        let advance = match op >> 6 {
            1 => Some(u64::from(op & 0x3f)),
            2 => {
                let off = r.uleb()? as i64 * data_align;
                set(state, u64::from(op & 0x3f), Reg::At(off));
                None
            }
            3 => {
                restore(state, u64::from(op & 0x3f));
                None
            }
            _ => match op {
                0x00 => None,
                0x02 => Some(u64::from(r.u8()?)),
                0x03 => Some(u64::from(r.u16()?)),
                0x04 => Some(u64::from(r.u32()?)),
                0x05 => {
                    let reg = r.uleb()?;
                    let off = r.uleb()? as i64 * data_align;
                    set(state, reg, Reg::At(off));
                    None
                }
                0x06 => {
                    restore(state, r.uleb()?);
                    None
                }
                0x07 => {
                    set(state, r.uleb()?, Reg::Undefined);
                    None
                }
                0x08 => {
                    set(state, r.uleb()?, Reg::Same);
                    None
                }
                0x09 => {
                    let reg = r.uleb()?;
                    r.uleb()?;
                    set(state, reg, Reg::Other);
                    None
                }
                0x0a => {
                    *saved.get_mut(depth)? = *state;
                    depth += 1;
                    None
                }
                0x0b => {
                    depth = depth.checked_sub(1)?;
                    // The CFA is restored with the registers (DWARF 5, and libgcc).
                    *state = saved[depth];
                    None
                }
                0x0c => {
                    let reg = r.uleb()?;
                    state.cfa = Some((reg, r.uleb()? as i64));
                    None
                }
                0x0d => {
                    let reg = r.uleb()?;
                    state.cfa = Some((reg, state.cfa?.1));
                    None
                }
                0x0e => {
                    let off = r.uleb()? as i64;
                    state.cfa = Some((state.cfa?.0, off));
                    None
                }
                0x0f => {
                    let n = r.uleb()? as usize;
                    r.skip(n)?;
                    state.cfa = None;
                    None
                }
                0x10 | 0x16 => {
                    let reg = r.uleb()?;
                    let n = r.uleb()? as usize;
                    r.skip(n)?;
                    set(state, reg, Reg::Other);
                    None
                }
                0x11 => {
                    let reg = r.uleb()?;
                    let off = r.sleb()? * data_align;
                    set(state, reg, Reg::At(off));
                    None
                }
                0x12 => {
                    let reg = r.uleb()?;
                    state.cfa = Some((reg, r.sleb()? * data_align));
                    None
                }
                0x13 => {
                    let off = r.sleb()? * data_align;
                    state.cfa = Some((state.cfa?.0, off));
                    None
                }
                0x14 | 0x15 => {
                    let reg = r.uleb()?;
                    if op == 0x14 {
                        r.uleb()?;
                    } else {
                        r.sleb()?;
                    }
                    set(state, reg, Reg::Other);
                    None
                }
                0x2e => {
                    r.uleb()?;
                    None
                }
                0x2f => {
                    let reg = r.uleb()?;
                    let off = -(r.uleb()? as i64) * data_align;
                    set(state, reg, Reg::At(off));
                    None
                }
                // DW_CFA_set_loc and anything unknown.
                _ => return None,
            },
        };
        if let Some(delta) = advance {
            let next = loc.checked_add(usize::try_from(delta.checked_mul(code_align)?).ok()?)?;
            if next > pc {
                break;
            }
            *loc = next;
        }
    }
    Some(())
}

/// The finding for a final state.
fn finish(s: State) -> Found {
    if s.ra == Reg::Undefined {
        return Found::End;
    }
    let (cfa_rbp, cfa_off) = match s.cfa {
        Some((RSP, off)) => (false, off),
        Some((RBP, off)) => (true, off),
        _ => return Found::Unsupported,
    };
    let (Reg::At(ra_off), Ok(cfa_off)) = (s.ra, i32::try_from(cfa_off)) else {
        return Found::Unsupported;
    };
    let rbp_off = match s.rbp {
        Reg::Same | Reg::Undefined => None,
        Reg::At(off) => Some(off),
        Reg::Other => return Found::Unsupported,
    };
    let (Ok(ra_off), Ok(rbp_off)) = (
        i32::try_from(ra_off),
        rbp_off.map(i32::try_from).transpose(),
    ) else {
        return Found::Unsupported;
    };
    // What the table cannot hold is not followed either (`encode`).
    decode(encode(Found::Rule(Rule {
        cfa_rbp,
        cfa_off,
        ra_off,
        rbp_off,
    })))
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

    /// A CIE ("zR", code alignment 1, data alignment -8, return address in 16, pointers
    /// pc-relative 4 bytes; CFA = rsp + 8, return address at CFA - 8) followed by an FDE with
    /// `program`, in one buffer; returns it and the FDE's offset.
    fn cie_and_fde(aug: &[u8], program: &[u8]) -> (Vec<u8>, usize) {
        let mut cie = vec![0, 0, 0, 0, 1];
        cie.extend_from_slice(aug);
        cie.extend_from_slice(&[0, 1, 0x78, 16, 1, 0x1b, 0x0c, 7, 8, 0x90, 1]);
        let mut buf = (cie.len() as u32).to_le_bytes().to_vec();
        buf.extend_from_slice(&cie);
        let fde_at = buf.len();
        let mut fde = ((fde_at + 4) as u32).to_le_bytes().to_vec();
        fde.extend_from_slice(&[0; 8]);
        fde.push(0);
        fde.extend_from_slice(program);
        buf.extend_from_slice(&(fde.len() as u32).to_le_bytes());
        buf.extend_from_slice(&fde);
        (buf, fde_at)
    }

    fn rule_at(buf: &[u8], fde_at: usize, offset: usize) -> Found {
        const FUNC: usize = 0x1000;
        // SAFETY: `buf` holds a CIE and an FDE whose lengths lie inside it.
        unsafe { fde_rule(buf.as_ptr().add(fde_at), FUNC, FUNC + offset) }
    }

    fn rsp(cfa_off: i32, rbp_off: Option<i32>) -> Found {
        Found::Rule(Rule {
            cfa_rbp: false,
            cfa_off,
            ra_off: -8,
            rbp_off,
        })
    }

    #[test]
    fn the_program_runs_up_to_the_address() {
        // push rbp; mov rbp, rsp; ...; leave (CFA back on rsp + 8, rbp restored).
        let program = [
            0x41, 0x0e, 16, 0x86, 2, // +1: CFA = rsp + 16, rbp at CFA - 16
            0x43, 0x0d, 6, // +4: CFA = rbp + 16
            0x02, 20, 0x0c, 7, 8, 0xc6, // +24: CFA = rsp + 8, rbp restored
        ];
        let (buf, fde) = cie_and_fde(b"zR", &program);
        assert_eq!(rule_at(&buf, fde, 0), rsp(8, None));
        assert_eq!(rule_at(&buf, fde, 1), rsp(16, Some(-16)));
        assert_eq!(rule_at(&buf, fde, 3), rsp(16, Some(-16)));
        let framed = Found::Rule(Rule {
            cfa_rbp: true,
            cfa_off: 16,
            ra_off: -8,
            rbp_off: Some(-16),
        });
        assert_eq!(rule_at(&buf, fde, 4), framed);
        assert_eq!(rule_at(&buf, fde, 23), framed);
        assert_eq!(rule_at(&buf, fde, 24), rsp(8, None));
    }

    #[test]
    fn remembered_states_come_back_whole() {
        // +1: CFA = rsp + 32, remember; +2: CFA = rsp + 8 (an early return); +3: restore.
        let program = [0x41, 0x0e, 32, 0x0a, 0x41, 0x0e, 8, 0x41, 0x0b];
        let (buf, fde) = cie_and_fde(b"zR", &program);
        assert_eq!(rule_at(&buf, fde, 2), rsp(8, None));
        assert_eq!(rule_at(&buf, fde, 3), rsp(32, None));
        // A restore with nothing remembered is malformed.
        let (buf, fde) = cie_and_fde(b"zR", &[0x41, 0x0b]);
        assert_eq!(rule_at(&buf, fde, 1), Found::Unsupported);
    }

    #[test]
    fn what_it_cannot_follow_is_unsupported_and_undefined_ends() {
        // A CFA by expression, from +1 on.
        let (buf, fde) = cie_and_fde(b"zR", &[0x41, 0x0f, 2, 0x77, 0x08]);
        assert_eq!(rule_at(&buf, fde, 0), rsp(8, None));
        assert_eq!(rule_at(&buf, fde, 1), Found::Unsupported);
        // The return address in another register.
        let (buf, fde) = cie_and_fde(b"zR", &[0x09, 16, 3]);
        assert_eq!(rule_at(&buf, fde, 0), Found::Unsupported);
        // A signal frame.
        let (buf, fde) = cie_and_fde(b"zRS", &[]);
        assert_eq!(rule_at(&buf, fde, 0), Found::Unsupported);
        // A program cut short (an offset with no operand).
        let (buf, fde) = cie_and_fde(b"zR", &[0x86]);
        assert_eq!(rule_at(&buf, fde, 0), Found::Unsupported);
        // The outermost frame: its return address is undefined.
        let (buf, fde) = cie_and_fde(b"zR", &[0x07, 16]);
        assert_eq!(rule_at(&buf, fde, 0), Found::End);
        // A frame too large for the table's byte-sized offsets is not followed either.
        let (buf, fde) = cie_and_fde(b"zR", &[0x90, 0x81, 0x01]);
        assert_eq!(rule_at(&buf, fde, 0), Found::Unsupported);
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
