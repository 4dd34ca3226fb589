//! A Lox bytecode VM (the language of *Crafting Interpreters*, after its C implementation,
//! clox) whose heap is Tricolor's collector: every string lives on a Tricolor heap, the VM's
//! stack, constants and globals are roots reported by a stack scanner, and strings are
//! interned in a weak table.
//!
//! The whole language as the book's chapters 14–29 build it: expressions, strings, `print`,
//! global and local variables, blocks, `if`, `while`, `for`, `and`, `or`, functions, calls,
//! `return`, closures with upvalues, classes, instances, fields, methods, `this`,
//! initializers, inheritance, `super`, and the native `clock()`. Globals, fields and methods
//! live in hash tables on the heap (`table`).

pub mod chunk;
pub mod compiler;
pub mod object;
pub mod scanner;
pub mod stack;
pub mod table;
pub mod value;
pub mod vm;

pub use vm::{Outcome, Vm};
