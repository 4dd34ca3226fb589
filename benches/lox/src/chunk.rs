//! Bytecode: a chunk of instructions with its constants and line numbers (clox's `chunk.c`).

use crate::value::Value;

/// The instructions (one byte each, operands following).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum Op {
    Constant,
    Nil,
    True,
    False,
    Pop,
    GetLocal,
    SetLocal,
    GetGlobal,
    DefineGlobal,
    SetGlobal,
    Equal,
    Greater,
    Less,
    Add,
    Subtract,
    Multiply,
    Divide,
    Not,
    Negate,
    Print,
    Jump,
    JumpIfFalse,
    Loop,
    Call,
    Closure,
    GetUpvalue,
    SetUpvalue,
    CloseUpvalue,
    Return,
    Class,
    GetProperty,
    SetProperty,
    Method,
    Invoke,
    Inherit,
    GetSuper,
    SuperInvoke,
}

impl Op {
    /// The number of instructions (the opcodes are `0..COUNT`).
    pub const COUNT: u8 = Op::SuperInvoke as u8 + 1;

    /// The instruction with opcode `b`: one compare, so the interpreter's `match` indexes its
    /// jump table with the byte itself. Panics on a byte that is no opcode (a compiler bug).
    #[inline(always)]
    pub fn from_byte(b: u8) -> Op {
        assert!(b < Op::COUNT, "not an opcode: {b}");
        // SAFETY: `Op` is `repr(u8)` with the default discriminants, so its values are
        // exactly `0..COUNT` (`SuperInvoke` is the last variant: the test below checks each
        // round trip), and `b` is below `COUNT`.
        unsafe { std::mem::transmute::<u8, Op>(b) }
    }
}

/// A chunk being compiled: code, the line of each byte, constants (rooted through the VM's
/// `Roots` until the compiler turns it into a [`crate::object::Function`]).
#[derive(Default)]
pub struct Chunk {
    /// Instructions and operands.
    pub code: Vec<u8>,
    /// The source line of each byte of `code`.
    pub lines: Vec<u32>,
    /// Constants (their objects are roots while the chunk lives: `vm`).
    pub constants: Vec<Value>,
}

impl Chunk {
    /// Appends a byte from `line`.
    pub fn write(&mut self, byte: u8, line: u32) {
        self.code.push(byte);
        self.lines.push(line);
    }

    /// Adds a constant; its index.
    pub fn add_constant(&mut self, v: Value) -> usize {
        self.constants.push(v);
        self.constants.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::Op;

    /// `from_byte`'s argument: every variant's discriminant is below `COUNT` (the match is
    /// exhaustive, so a new variant fails to compile until it is listed here), and each
    /// opcode below `COUNT` is a distinct variant.
    #[test]
    fn the_opcodes_are_exactly_zero_to_count() {
        fn listed(op: Op) -> u8 {
            match op {
                Op::Constant
                | Op::Nil
                | Op::True
                | Op::False
                | Op::Pop
                | Op::GetLocal
                | Op::SetLocal
                | Op::GetGlobal
                | Op::DefineGlobal
                | Op::SetGlobal
                | Op::Equal
                | Op::Greater
                | Op::Less
                | Op::Add
                | Op::Subtract
                | Op::Multiply
                | Op::Divide
                | Op::Not
                | Op::Negate
                | Op::Print
                | Op::Jump
                | Op::JumpIfFalse
                | Op::Loop
                | Op::Call
                | Op::Closure
                | Op::GetUpvalue
                | Op::SetUpvalue
                | Op::CloseUpvalue
                | Op::Return
                | Op::Class
                | Op::GetProperty
                | Op::SetProperty
                | Op::Method
                | Op::Invoke
                | Op::Inherit
                | Op::GetSuper
                | Op::SuperInvoke => op as u8,
            }
        }
        let all: Vec<u8> = (0..Op::COUNT).map(|b| listed(Op::from_byte(b))).collect();
        assert_eq!(all, (0..Op::COUNT).collect::<Vec<_>>());
        assert_eq!(Op::COUNT as usize, 37);
    }
}
