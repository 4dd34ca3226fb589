//! The CFI program interpreter: reads the CIE and FDE that `_Unwind_Find_FDE` returned from
//! an object's eh_frame, and runs their call frame instructions (DW_CFA_*) up to an address,
//! giving the [`Found`] there (the parent module's "What a rule says").
//!
//! It follows only what the parent's rules can express: the CFA as `rsp` or `rbp` plus an
//! offset, the return address and `rbp` saved at an offset from it (or `rbp` unchanged), and
//! the return address undefined in the outermost frame. It evaluates no DWARF expressions, it
//! skips them: a CFA given by one (DW_CFA_def_cfa_expression) or in another register, the
//! return address or `rbp` given by one (DW_CFA_expression, DW_CFA_val_expression) or kept in
//! another register, a signal frame ('S'), an augmentation it does not know, DW_CFA_set_loc or
//! any unknown instruction makes the address unsupported, and the stack goes to libgcc. Rules
//! for the other registers are read past: the walk restores none of them.
//!
//! Invariants it owns:
//! 1. Every byte it reads lies inside the length the FDE or its CIE declares: all reads go
//!    through [`Reader`], which checks each against its end (the parent's rule 3).
//! 2. Anything malformed or outside x86-64's conventions (a length of 0 or the 64-bit escape,
//!    a CIE id that is not 0, a return-address column other than 16, augmentation data of
//!    another length than declared, a truncated instruction, the remember/restore stack
//!    emptied or past its 8 states, a location that overflows) gives up: the address is
//!    unsupported, never guessed.
//! 3. A rule it returns fits the parent's table (`encode`): one whose offsets do not is
//!    unsupported, so what is followed and what is kept are the same.

use super::{Found, Rule, decode, encode};

/// DWARF register numbers on x86-64.
const RBP: u64 = 6;
const RSP: u64 = 7;
const RA: u64 = 16;

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
pub(super) unsafe fn fde_rule(fde: *const u8, func: usize, pc: usize) -> Found {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::cfi::tests::rsp;

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
}
