//! The virtual machine: a stack machine over the chunk the compiler fills (clox's `vm.c`).
//!
//! # Roots
//! The value stack, the chunk's constants and the globals (keys and values) live in `Roots`,
//! reported to the collector by a root callback, which runs at mark termination with this
//! thread stopped at a safepoint. Rule: no reference into `Roots` is held across an
//! allocation (every allocation is a safepoint, where the callback may read `Roots`), and a
//! new object is put where the callback sees it (the stack, the constants) before the next
//! allocation: the book's discipline, checked by the stress mode.

use crate::chunk::{Chunk, Op};
use crate::object::{Obj, Strings, string_bytes};
use crate::value::{Value, format_value};
use std::cell::UnsafeCell;
use std::collections::HashMap;
use std::io::Write;
use tricolor_gc::{CallbackId, Config, Heap, Mutator};

/// What the collector scans for the VM (module docs).
#[derive(Default)]
pub struct Roots {
    stack: Vec<Value>,
    chunk: Chunk,
    globals: HashMap<Obj, Value>,
}

/// The outcome of `interpret`.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Ran to the end.
    Ok,
    /// A compile error (exit code 65).
    CompileError,
    /// A runtime error (exit code 70).
    RuntimeError,
}

/// A Lox VM on its own Tricolor heap.
pub struct Vm {
    m: Mutator,
    strings: Strings,
    roots: Box<UnsafeCell<Roots>>,
    callback: CallbackId,
    /// `TRICOLOR_LOX_STRESS_GC=1`: a full collection before every allocation.
    stress: bool,
}

struct RootsPtr(*const UnsafeCell<Roots>);
// SAFETY: the callback reads `Roots` only at mark termination, while the VM thread is stopped
// at a safepoint holding no reference into it (module rule); the box outlives the callback
// (removed in `Drop` before the box is freed).
unsafe impl Send for RootsPtr {}
// SAFETY: as above.
unsafe impl Sync for RootsPtr {}

impl Vm {
    /// A VM on a new heap configured from the environment (`GOGC`, `GOMEMLIMIT`,
    /// `GODEBUG=gctrace=1`, `TRICOLOR_GC_VERIFY`); the stress mode turns verification on.
    pub fn new() -> Vm {
        let stress = std::env::var("TRICOLOR_LOX_STRESS_GC").is_ok_and(|v| v == "1");
        let mut config = Config::from_env();
        config.verify |= stress;
        let heap = Heap::new(config);
        let roots: Box<UnsafeCell<Roots>> = Box::default();
        let ptr = RootsPtr(&*roots as *const UnsafeCell<Roots>);
        let callback = heap.add_root_callback(Box::new(move |v| {
            let p = &ptr;
            // SAFETY: `RootsPtr`'s argument: the VM thread is stopped, holding no reference.
            let r = unsafe { &*(*p.0).get() };
            let values = r.stack.iter().chain(&r.chunk.constants);
            let globals = r.globals.iter().flat_map(|(k, v)| [Value::Obj(*k), *v]);
            for val in values.copied().chain(globals) {
                let a = val.obj_addr();
                if a != 0 {
                    v.visit_value(a as *const u8);
                }
            }
        }));
        Vm {
            m: Mutator::attach(heap),
            strings: Strings::default(),
            roots,
            callback,
            stress,
        }
    }

    /// The roots, for a moment: the reference must end before the next allocation.
    #[allow(clippy::mut_from_ref)]
    fn roots(&self) -> &mut Roots {
        // SAFETY: only this thread (the VM's) touches `Roots` while it runs, and callers drop
        // the reference before anything that allocates (module rule), so no two are live.
        unsafe { &mut *self.roots.get() }
    }

    /// The chunk being compiled or run.
    pub(crate) fn chunk_mut(&mut self) -> &mut Chunk {
        &mut self.roots.get_mut().chunk
    }

    /// The interned string with `bytes` (the caller roots it before allocating again).
    pub(crate) fn intern(&mut self, bytes: &[u8]) -> Option<Obj> {
        if self.stress {
            self.m.collect();
        }
        self.strings.intern(&self.m, bytes)
    }

    /// Compiles and runs `source`; output goes to `out`, errors to stderr.
    pub fn interpret(&mut self, source: &str, out: &mut dyn Write) -> Outcome {
        *self.chunk_mut() = Chunk::default();
        if !crate::compiler::compile(self, source) {
            return Outcome::CompileError;
        }
        let r = self.run(out);
        self.roots().stack.clear();
        r
    }

    fn runtime_error(&mut self, ip: usize, msg: &str) -> Outcome {
        eprintln!("{msg}");
        let line = self.roots().chunk.lines[ip.saturating_sub(1)];
        eprintln!("[line {line}] in script");
        self.roots().stack.clear();
        Outcome::RuntimeError
    }

    fn run(&mut self, out: &mut dyn Write) -> Outcome {
        let mut ip = 0usize;
        macro_rules! byte {
            () => {{
                let b = self.roots().chunk.code[ip];
                ip += 1;
                b
            }};
        }
        macro_rules! short {
            () => {{
                let hi = byte!() as usize;
                (hi << 8) | byte!() as usize
            }};
        }
        macro_rules! pop {
            () => {
                self.roots()
                    .stack
                    .pop()
                    .expect("the compiler balances the stack")
            };
        }
        macro_rules! push {
            ($v:expr) => {{
                let v = $v;
                self.roots().stack.push(v)
            }};
        }
        macro_rules! peek {
            ($d:expr) => {{
                let s = &self.roots().stack;
                s[s.len() - 1 - $d]
            }};
        }
        macro_rules! numbers {
            ($op:tt, $wrap:expr) => {{
                match (peek!(1), peek!(0)) {
                    (Value::Number(a), Value::Number(b)) => {
                        pop!();
                        pop!();
                        push!($wrap(a $op b));
                    }
                    _ => return self.runtime_error(ip, "Operands must be numbers."),
                }
            }};
        }
        loop {
            match Op::from_byte(byte!()) {
                Op::Constant => {
                    let i = byte!() as usize;
                    push!(self.roots().chunk.constants[i]);
                }
                Op::Nil => push!(Value::Nil),
                Op::True => push!(Value::Bool(true)),
                Op::False => push!(Value::Bool(false)),
                Op::Pop => {
                    pop!();
                }
                Op::GetLocal => {
                    let i = byte!() as usize;
                    push!(self.roots().stack[i]);
                }
                Op::SetLocal => {
                    let i = byte!() as usize;
                    let v = peek!(0);
                    self.roots().stack[i] = v;
                }
                Op::GetGlobal => {
                    let name = self.constant_obj(byte!());
                    match self.roots().globals.get(&name).copied() {
                        Some(v) => push!(v),
                        None => {
                            let msg = format!("Undefined variable '{}'.", self.name(name));
                            return self.runtime_error(ip, &msg);
                        }
                    }
                }
                Op::DefineGlobal => {
                    let name = self.constant_obj(byte!());
                    let v = peek!(0);
                    self.roots().globals.insert(name, v);
                    pop!();
                }
                Op::SetGlobal => {
                    let name = self.constant_obj(byte!());
                    let v = peek!(0);
                    match self.roots().globals.get_mut(&name) {
                        Some(slot) => *slot = v,
                        None => {
                            let msg = format!("Undefined variable '{}'.", self.name(name));
                            return self.runtime_error(ip, &msg);
                        }
                    }
                }
                Op::Equal => {
                    let (b, a) = (pop!(), pop!());
                    push!(Value::Bool(a.equals(b)));
                }
                Op::Greater => numbers!(>, Value::Bool),
                Op::Less => numbers!(<, Value::Bool),
                Op::Add => match (peek!(1), peek!(0)) {
                    (Value::Number(a), Value::Number(b)) => {
                        pop!();
                        pop!();
                        push!(Value::Number(a + b));
                    }
                    (Value::Obj(a), Value::Obj(b)) => {
                        // Both stay on the stack (rooted) while the result is allocated.
                        // SAFETY: stack values are live strings (this slice has no others).
                        let mut s = unsafe { string_bytes(a) }.to_vec();
                        // SAFETY: as above.
                        s.extend_from_slice(unsafe { string_bytes(b) });
                        let Some(r) = self.intern(&s) else {
                            return self.runtime_error(ip, "Out of memory.");
                        };
                        pop!();
                        pop!();
                        push!(Value::Obj(r));
                    }
                    _ => {
                        return self
                            .runtime_error(ip, "Operands must be two numbers or two strings.");
                    }
                },
                Op::Subtract => numbers!(-, Value::Number),
                Op::Multiply => numbers!(*, Value::Number),
                Op::Divide => numbers!(/, Value::Number),
                Op::Not => {
                    let v = pop!();
                    push!(Value::Bool(v.is_falsey()));
                }
                Op::Negate => match peek!(0) {
                    Value::Number(n) => {
                        pop!();
                        push!(Value::Number(-n));
                    }
                    _ => return self.runtime_error(ip, "Operand must be a number."),
                },
                Op::Print => {
                    let v = pop!();
                    let _ = writeln!(out, "{}", format_value(v));
                }
                Op::Jump => {
                    let off = short!();
                    ip += off;
                }
                Op::JumpIfFalse => {
                    let off = short!();
                    if peek!(0).is_falsey() {
                        ip += off;
                    }
                }
                Op::Loop => {
                    let off = short!();
                    ip -= off;
                    // A loop that allocates nothing still reaches safepoints.
                    self.m.safepoint();
                }
                Op::Return => return Outcome::Ok,
            }
        }
    }

    fn constant_obj(&self, i: u8) -> Obj {
        match self.roots().chunk.constants[i as usize] {
            Value::Obj(o) => o,
            _ => unreachable!("name operands are string constants"),
        }
    }

    fn name(&self, o: Obj) -> String {
        // SAFETY: a constant: rooted and live.
        String::from_utf8_lossy(unsafe { string_bytes(o) }).into_owned()
    }

    /// Interned strings (live or not yet dropped from the table).
    pub fn interned(&self) -> usize {
        self.strings.len()
    }
}

impl Default for Vm {
    fn default() -> Self {
        Vm::new()
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.m.heap().remove_root_callback(self.callback);
    }
}
