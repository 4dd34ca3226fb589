//! A Lox bytecode VM (the language of *Crafting Interpreters*, after its C implementation,
//! clox) whose heap is Tricolor's collector: every string lives on a Tricolor heap, the VM's
//! stack, constants and globals are roots reported by a root callback, and strings are
//! interned in a weak table.
//!
//! This slice runs the book's chapters 14–25: expressions, strings, `print`, global and local
//! variables, blocks, `if`, `while`, `for`, `and`, `or`, functions, calls, `return`, closures
//! with upvalues, the native `clock()`. Classes are not built yet (issue 15 stays open).

pub mod chunk;
pub mod compiler;
pub mod object;
pub mod scanner;
pub mod value;
pub mod vm;

pub use vm::{Outcome, Vm};
