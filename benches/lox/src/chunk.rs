//! Bytecode: a chunk of instructions with its constants and line numbers (clox's `chunk.c`).

use crate::value::Value;

/// The instructions (one byte each, operands following).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Op {
    /// Pushes constant `k` (operand: one byte `k`).
    Constant,
    /// Pushes `nil`.
    Nil,
    /// Pushes `true`.
    True,
    /// Pushes `false`.
    False,
    /// Pops the top value.
    Pop,
    /// Pushes local slot `i` of the running frame (operand: one byte `i`).
    GetLocal,
    /// Stores the top value, left on the stack, in local slot `i` (operand: one byte `i`).
    SetLocal,
    /// Pushes the global named by constant `k` (operand: one byte `k`); an error if undefined.
    GetGlobal,
    /// Pops the top value into a new global named by constant `k` (operand: one byte `k`).
    DefineGlobal,
    /// Stores the top value, left on the stack, in the existing global named by constant `k`
    /// (operand: one byte `k`); an error if undefined.
    SetGlobal,
    /// Replaces the top two values with whether they are equal.
    Equal,
    /// Replaces the top two numbers `a`, `b` with `a > b`.
    Greater,
    /// Replaces the top two numbers `a`, `b` with `a < b`.
    Less,
    /// Replaces the top two values with their sum (numbers) or concatenation (strings).
    Add,
    /// Replaces the top two numbers `a`, `b` with `a - b`.
    Subtract,
    /// Replaces the top two numbers `a`, `b` with `a * b`.
    Multiply,
    /// Replaces the top two numbers `a`, `b` with `a / b`.
    Divide,
    /// Replaces the top value with whether it is falsey.
    Not,
    /// Replaces the top number with its negation.
    Negate,
    /// Pops the top value and prints it on a line.
    Print,
    /// Jumps forward `off` bytes (operand: `off`, two bytes big-endian).
    Jump,
    /// Jumps forward `off` bytes when the top value, left on the stack, is falsey (operand:
    /// `off`, two bytes big-endian).
    JumpIfFalse,
    /// Jumps back `off` bytes, at a safepoint (operand: `off`, two bytes big-endian).
    Loop,
    /// Calls the value below the top `argc` arguments (operand: one byte `argc`).
    Call,
    /// Pushes a closure of the function in constant `k` (operand: one byte `k`, then per
    /// upvalue two bytes: 1 to capture local slot `i` or 0 to share the enclosing upvalue `i`,
    /// then `i`).
    Closure,
    /// Pushes the running closure's upvalue `i` (operand: one byte `i`).
    GetUpvalue,
    /// Stores the top value, left on the stack, in the running closure's upvalue `i` (operand:
    /// one byte `i`).
    SetUpvalue,
    /// Closes the upvalue over the top stack slot, then pops it.
    CloseUpvalue,
    /// Returns the top value from the running frame.
    Return,
    /// Pushes a new class named by constant `k` (operand: one byte `k`).
    Class,
    /// Replaces the instance on top with its field, or its class's method bound to it, named
    /// by constant `k` (operand: one byte `k`).
    GetProperty,
    /// Sets the field named by constant `k` of the instance below the top to the top value,
    /// and leaves that value in their place (operand: one byte `k`).
    SetProperty,
    /// Adds the closure on top to the class below it as the method named by constant `k`, and
    /// pops the closure (operand: one byte `k`).
    Method,
    /// Calls the method named by constant `k` on the instance below the top `argc` arguments
    /// (operands: one byte `k`, one byte `argc`).
    Invoke,
    /// Copies the methods of the superclass below the top into the subclass on top, and pops
    /// the subclass.
    Inherit,
    /// Pops the superclass on top and replaces the instance below it with the superclass's
    /// method named by constant `k`, bound to it (operand: one byte `k`).
    GetSuper,
    /// Pops the superclass on top and calls its method named by constant `k` on the instance
    /// below the top `argc` arguments (operands: one byte `k`, one byte `argc`).
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
