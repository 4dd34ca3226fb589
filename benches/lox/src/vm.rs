//! The virtual machine: a stack machine with call frames and closures (clox's `vm.c`).
//!
//! # Roots
//! The value stack, the call frames' closures, the open upvalues, the globals object and the
//! chunks being compiled (their constants, and the function names) live in `Roots`, which a
//! stack scanner (`MutatorState::add_stack_scanner`) reports to the collector once per cycle,
//! concurrently: at this thread's first safepoint after the cycle starts, or by a marker while
//! it waits in native code. (A root callback would do it at mark termination, in the pause:
//! measured, that makes the pause as long as marking everything the globals reach, 23 ms on
//! `trees_live.lox` in the pause max column of `tricolor bench --lox` with a root callback in
//! the scanner's place.) Rules:
//! 1. No reference into `Roots` is held across an allocation (every allocation is a
//!    safepoint, where the scanner may read `Roots`).
//! 2. A new object is put where the callback or a scan sees it (the stack, a chunk's
//!    constants, a field of a reachable object through the barrier) before the next
//!    allocation: the book's discipline, which the stress mode checks.
//! 3. Pointer fields of objects are written only through the barrier (`MutatorState::write`,
//!    or `write_unchecked` under `object`'s layout rule, and `HeapValue::set`); data fields
//!    (numbers, lengths, kinds) directly.

use crate::chunk::{Chunk, Op};
use crate::object::{
    self, BoundMethod, Class, Closure, Function, Globals, HeapValue, Instance, Kind, Native, Obj,
    Strings, Types, Upvalue, string_bytes,
};
use crate::stack::Stack;
use crate::table::{self, TableHeader};
use crate::value::{Value, format_value};
use std::cell::UnsafeCell;
use std::io::Write;
use std::time::Instant;
use tricolor_gc::{Config, Heap, Mutator};

/// Call frames (clox's `FRAMES_MAX`).
const FRAMES_MAX: usize = 64;

struct CallFrame {
    closure: Obj,
    ip: usize,
    /// The stack slot of the called value (slot 0 of the frame).
    base: usize,
}

/// What the collector scans for the VM (module docs).
#[derive(Default)]
pub struct Roots {
    stack: Stack,
    frames: Vec<CallFrame>,
    /// The [`Globals`] object.
    globals: Option<Obj>,
    /// The interned `"init"`.
    init: Option<Obj>,
    /// The chunks being compiled, innermost last, with their function's name.
    compiling: Vec<(Chunk, Option<Obj>)>,
    /// The open upvalues, by stack slot, highest first (a list through `Upvalue::next`).
    open_upvalues: Option<Obj>,
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
    types: Types,
    strings: Strings,
    roots: Box<UnsafeCell<Roots>>,
    scanner: u64,
    /// `TRICOLOR_LOX_STRESS_GC=1`: a full collection before every allocation.
    stress: bool,
    /// Reused for the bytes of a concatenation before they are interned.
    scratch: Vec<u8>,
    start: Instant,
}

struct RootsPtr(*const UnsafeCell<Roots>);
// SAFETY: the scanner reads `Roots` only while the VM thread is at a safepoint (it runs the
// scan itself) or in native code (a marker runs it), holding no reference into it (rule 1);
// the box outlives the scanner (removed in `Drop` before the box is freed).
unsafe impl Send for RootsPtr {}
// SAFETY: as above.
unsafe impl Sync for RootsPtr {}

fn visit_roots(r: &Roots, mut f: impl FnMut(usize)) {
    for v in r.stack.as_slice() {
        f(v.obj_addr());
    }
    for fr in &r.frames {
        f(fr.closure.0 as usize);
    }
    f(r.globals.map_or(0, |o| o.0 as usize));
    f(r.init.map_or(0, |o| o.0 as usize));
    for (chunk, name) in &r.compiling {
        chunk.constants.iter().for_each(|v| f(v.obj_addr()));
        f(name.map_or(0, |o| o.0 as usize));
    }
    f(r.open_upvalues.map_or(0, |o| o.0 as usize));
}

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
        let m = Mutator::attach(heap);
        let scanner = m.add_stack_scanner(Box::new(move |report| {
            let p = &ptr;
            // SAFETY: `RootsPtr`'s argument: the VM thread is at a safepoint or in native
            // code, holding no reference.
            let r = unsafe { &*(*p.0).get() };
            visit_roots(r, |a| {
                if a != 0 {
                    report(a);
                }
            });
        }));
        let mut vm = Vm {
            m,
            types: Types::register(heap),
            strings: Strings::default(),
            roots,
            scanner,
            stress,
            scratch: Vec::new(),
            start: Instant::now(),
        };
        let globals = vm.alloc(vm.types.globals, Kind::Globals).expect("room");
        vm.roots().globals = Some(globals);
        let init = vm.intern(b"init").expect("room");
        vm.roots().init = Some(init);
        vm.define_native("clock", 0);
        vm
    }

    /// The roots, for a moment: the reference must end before the next allocation (rule 1).
    #[allow(clippy::mut_from_ref)]
    fn roots(&self) -> &mut Roots {
        // SAFETY: only this thread (the VM's) touches `Roots` while it runs, and callers drop
        // the reference before anything that allocates (rule 1), so no two are live.
        unsafe { &mut *self.roots.get() }
    }

    fn before_alloc(&self) {
        if self.stress {
            self.m.collect();
        }
    }

    /// The interned string with `bytes` (the caller roots it before allocating again).
    pub(crate) fn intern(&mut self, bytes: &[u8]) -> Option<Obj> {
        self.before_alloc();
        self.strings.intern(&self.m, bytes)
    }

    fn alloc(&self, ty: tricolor_gc::TypeId, k: Kind) -> Option<Obj> {
        self.before_alloc();
        object::alloc(&self.m, ty, k)
    }

    fn define_native(&mut self, name: &str, id: u64) {
        let name = self.intern(name.as_bytes()).expect("a new heap has room");
        self.roots().stack.push(Value::Obj(name));
        let n = self.alloc(self.types.native, Kind::Native).expect("room");
        // SAFETY: a fresh native object; `id` is a data field.
        unsafe { (*(n.0 as *mut Native)).id = id };
        self.roots().stack.push(Value::Obj(n));
        self.set_global(name, Value::Obj(n)).expect("room");
        let r = self.roots();
        r.stack.truncate(r.stack.len() - 2);
    }

    fn globals(&self) -> (Obj, *mut TableHeader) {
        let g = self.roots().globals.expect("made at start");
        // SAFETY: the globals object is live (a root); only its field's address is taken.
        (g, unsafe { &raw mut (*(g.0 as *mut Globals)).table })
    }

    fn get_global(&self, name: Obj) -> Option<Value> {
        let (_, t) = self.globals();
        // SAFETY: the globals object is live (a root).
        unsafe { (*t).get(name) }
    }

    /// Sets global `name` (rooted by the caller, as the value); `None` if out of memory.
    fn set_global(&self, name: Obj, v: Value) -> Option<bool> {
        let (g, t) = self.globals();
        // SAFETY: the globals' table header inside the live globals object.
        unsafe { self.table_set(g, t, name, v) }
    }

    /// `table::set` with this VM's entry type, after the stress mode's collection: `owner`,
    /// `key` and `v` are rooted by the caller (rule 2). `None` if out of memory.
    ///
    /// # Safety
    /// `t` is the header of a table inside the live object `owner`.
    unsafe fn table_set(
        &self,
        owner: Obj,
        t: *mut TableHeader,
        key: Obj,
        v: Value,
    ) -> Option<bool> {
        self.before_alloc();
        // SAFETY: the caller's contract.
        unsafe { table::set(&self.m, self.types.entry, owner, t, key, v) }
    }

    /// Starts compiling a function named `name` (none for the script).
    pub(crate) fn begin_function(&mut self, name: Option<Obj>) {
        self.roots().compiling.push((Chunk::default(), name));
    }

    /// The chunk being compiled.
    pub(crate) fn chunk_mut(&mut self) -> &mut Chunk {
        &mut self
            .roots
            .get_mut()
            .compiling
            .last_mut()
            .expect("compiling")
            .0
    }

    /// Finishes the innermost function being compiled: a `Function` on the heap holding its
    /// code, lines and constants. `None` if the heap cannot grow.
    pub(crate) fn end_function(&mut self, arity: u8, upvalues: usize) -> Option<Obj> {
        let f = self.alloc(self.types.function, Kind::Function);
        let r = f.and_then(|f| {
            // Rooted on the stack while its parts are allocated (rule 2).
            self.roots().stack.push(Value::Obj(f));
            let ok = self.fill_function(f, arity, upvalues);
            self.roots().stack.pop();
            ok.then_some(f)
        });
        self.roots().compiling.pop();
        r
    }

    fn fill_function(&mut self, f: Obj, arity: u8, upvalues: usize) -> bool {
        let m = &self.m;
        let fp = f.0 as *mut Function;
        let code_len = self.roots().compiling.last().unwrap().0.code.len();
        // Each part is written into `f` (rooted) before the next is allocated (rule 2).
        self.before_alloc();
        let code = m.alloc_bytes(code_len);
        if code.is_null() {
            return false;
        }
        // SAFETY: `f` is a live function (rooted); `code` is fresh, `code_len` bytes.
        unsafe {
            let chunk = &self.roots().compiling.last().unwrap().0;
            std::ptr::copy_nonoverlapping(chunk.code.as_ptr(), code, code_len);
            m.write(f.0, &raw mut (*fp).code, code);
        }
        self.before_alloc();
        let lines = m.alloc_bytes(code_len * 4);
        if lines.is_null() {
            return false;
        }
        // SAFETY: as above; `lines` holds a `u32` per byte of code.
        unsafe {
            let chunk = &self.roots().compiling.last().unwrap().0;
            let lp = lines as *mut u32;
            for (i, &l) in chunk.lines.iter().enumerate() {
                lp.add(i).write(l);
            }
            m.write(f.0, &raw mut (*fp).lines, lines);
        }
        let const_len = self.roots().compiling.last().unwrap().0.constants.len();
        self.before_alloc();
        let consts = m.alloc_array(self.types.value, const_len);
        if consts.is_null() {
            return false;
        }
        // SAFETY: `consts` is a fresh array of `const_len` values, rooted through `f` at once.
        unsafe { m.write(f.0, &raw mut (*fp).constants, consts) };
        for i in 0..const_len {
            let v = self.roots().compiling.last().unwrap().0.constants[i];
            // SAFETY: element `i` of the array `consts` (live through `f`).
            unsafe {
                HeapValue::set(m, Obj(consts), (consts as *mut HeapValue).add(i), v);
            }
        }
        let name = self.roots().compiling.last().unwrap().1;
        // SAFETY: `f` is live; `name` is a string or none; the counts are data fields.
        unsafe {
            m.write(
                f.0,
                &raw mut (*fp).name,
                name.map_or(std::ptr::null_mut(), |o| o.0),
            );
            (*fp).arity = arity as u32;
            (*fp).upvalue_count = upvalues as u32;
            (*fp).code_len = code_len as u32;
            (*fp).const_len = const_len as u32;
        }
        true
    }

    /// Compiles and runs `source`; output goes to `out`, errors to stderr.
    pub fn interpret(&mut self, source: &str, out: &mut dyn Write) -> Outcome {
        let Some(script) = crate::compiler::compile(self, source) else {
            self.roots().compiling.clear();
            return Outcome::CompileError;
        };
        self.roots().stack.push(Value::Obj(script));
        let Some(closure) = self.alloc(self.types.closure, Kind::Closure) else {
            return Outcome::RuntimeError;
        };
        // SAFETY: a fresh closure; `script` is a live function (on the stack).
        unsafe {
            self.m.write(
                closure.0,
                &raw mut (*(closure.0 as *mut Closure)).function,
                script.0,
            )
        };
        let r = self.roots();
        r.stack.pop();
        r.stack.push(Value::Obj(closure));
        r.frames.push(CallFrame {
            closure,
            ip: 0,
            base: 0,
        });
        let outcome = self.run(out);
        let r = self.roots();
        r.stack.clear();
        r.frames.clear();
        r.open_upvalues = None;
        outcome
    }

    fn runtime_error(&mut self, msg: &str) -> Outcome {
        eprintln!("{msg}");
        let r = self.roots();
        for fr in r.frames.iter().rev() {
            // SAFETY: a frame's closure and its function are live (roots).
            let f = unsafe { &*(function_of(fr.closure)) };
            // SAFETY: `lines` holds a `u32` per byte of code; `ip` is past an instruction.
            let line = unsafe { (f.lines as *const u32).add(fr.ip - 1).read() };
            if f.name.is_null() {
                eprintln!("[line {line}] in script");
            } else {
                // SAFETY: the name is a live string.
                let name = String::from_utf8_lossy(unsafe { string_bytes(Obj(f.name)) });
                eprintln!("[line {line}] in {name}()");
            }
        }
        r.stack.clear();
        r.frames.clear();
        r.open_upvalues = None;
        Outcome::RuntimeError
    }

    /// Calls `callee` with the `argc` values above it on the stack.
    fn call_value(&mut self, callee: Value, argc: usize) -> Result<(), String> {
        let Value::Obj(o) = callee else {
            return Err("Can only call functions and classes.".into());
        };
        match object::kind(o) {
            Kind::Closure => {
                // SAFETY: a live closure's function.
                let arity = unsafe { (*function_of(o)).arity } as usize;
                if argc != arity {
                    return Err(format!("Expected {arity} arguments but got {argc}."));
                }
                let r = self.roots();
                if r.frames.len() == FRAMES_MAX {
                    return Err("Stack overflow.".into());
                }
                let base = r.stack.len() - argc - 1;
                r.frames.push(CallFrame {
                    closure: o,
                    ip: 0,
                    base,
                });
                Ok(())
            }
            Kind::Class => {
                if !self.instantiate(o, argc) {
                    return Err("Out of memory.".into());
                }
                // SAFETY: the class is live (reachable from the instance on the stack).
                let init = unsafe { (*(o.0 as *const Class)).init };
                if !init.is_null() {
                    self.call_value(Value::Obj(Obj(init)), argc)
                } else if argc != 0 {
                    Err(format!("Expected 0 arguments but got {argc}."))
                } else {
                    Ok(())
                }
            }
            Kind::BoundMethod => {
                let b = o.0 as *const BoundMethod;
                // SAFETY: a live bound method (the callee, on the stack).
                let (receiver, method) = unsafe { ((*b).receiver.get(), (*b).method) };
                let r = self.roots();
                r.stack.set_peek(argc, receiver);
                self.call_value(Value::Obj(Obj(method)), argc)
            }
            Kind::Native => {
                // SAFETY: a live native.
                let id = unsafe { (*(o.0 as *const Native)).id };
                // The one native, `clock` (id 0): seconds since the VM started (clox's is the
                // process's CPU time; both serve to time a benchmark).
                debug_assert_eq!(id, 0);
                let result = Value::Number(self.start.elapsed().as_secs_f64());
                let r = self.roots();
                let len = r.stack.len();
                r.stack.truncate(len - argc - 1);
                r.stack.push(result);
                Ok(())
            }
            _ => Err("Can only call functions and classes.".into()),
        }
    }

    /// Puts a new instance of `class` (the callee, `argc` values below the top) in the
    /// callee's slot; false if the heap cannot grow.
    fn instantiate(&mut self, class: Obj, argc: usize) -> bool {
        let Some(inst) = self.alloc(self.types.instance, Kind::Instance) else {
            return false;
        };
        // SAFETY: a fresh instance; the class is live (the callee, on the stack); `class` is a
        // pointer slot (`object`'s layout rule).
        unsafe {
            let ip = inst.0 as *mut Instance;
            self.m
                .write_unchecked(inst.0, &raw mut (*ip).class, class.0)
        };
        self.roots().stack.set_peek(argc, Value::Obj(inst));
        true
    }

    /// Replaces the instance on top of the stack with its class's method `name`, bound to it.
    fn bind_method(&mut self, class: Obj, name: Obj) -> Result<(), String> {
        // SAFETY: the class is live (the instance or the superclass reaches it).
        let method = unsafe { (*(class.0 as *const Class)).methods.get(name) };
        let Some(Value::Obj(method)) = method else {
            return Err(format!("Undefined property '{}'.", name_of(name)));
        };
        let Some(b) = self.alloc(self.types.bound, Kind::BoundMethod) else {
            return Err("Out of memory.".into());
        };
        let bp = b.0 as *mut BoundMethod;
        let receiver = self.roots().stack.peek(0);
        // SAFETY: `b` is fresh, its fields pointer slots (`object`'s layout rule); the receiver
        // is on the stack and the method reachable from
        // the class.
        unsafe {
            HeapValue::set(&self.m, b, &raw mut (*bp).receiver, receiver);
            self.m.write_unchecked(b.0, &raw mut (*bp).method, method.0);
        }
        let r = self.roots();
        r.stack.pop();
        r.stack.push(Value::Obj(b));
        Ok(())
    }

    /// `receiver.name(args)` without a bound method (clox's `invoke`).
    fn invoke(&mut self, name: Obj, argc: usize) -> Result<(), String> {
        let receiver = self.roots().stack.peek(argc);
        let Some(inst) = instance(receiver) else {
            return Err("Only instances have methods.".into());
        };
        // SAFETY: the instance is on the stack.
        let field = unsafe { (*(inst.0 as *const Instance)).fields.get(name) };
        if let Some(v) = field {
            self.roots().stack.set_peek(argc, v);
            return self.call_value(v, argc);
        }
        // SAFETY: as above.
        let class = Obj(unsafe { (*(inst.0 as *const Instance)).class });
        self.invoke_from_class(class, name, argc)
    }

    fn invoke_from_class(&mut self, class: Obj, name: Obj, argc: usize) -> Result<(), String> {
        // SAFETY: the class is live (reachable from the receiver on the stack).
        match unsafe { (*(class.0 as *const Class)).methods.get(name) } {
            Some(m) => self.call_value(m, argc),
            None => Err(format!("Undefined property '{}'.", name_of(name))),
        }
    }

    /// The open upvalue for stack slot `slot`, made if there is none.
    fn capture_upvalue(&mut self, slot: usize) -> Option<Obj> {
        let mut prev: Option<Obj> = None;
        let mut cur = self.roots().open_upvalues;
        while let Some(u) = cur {
            // SAFETY: open upvalues are live (rooted through the list's head).
            let up = unsafe { &*(u.0 as *const Upvalue) };
            if (up.location as usize) < slot {
                break;
            }
            if up.location as usize == slot {
                return Some(u);
            }
            prev = cur;
            cur = (!up.next.is_null()).then_some(Obj(up.next));
        }
        let new = self.alloc(self.types.upvalue, Kind::Upvalue)?;
        let np = new.0 as *mut Upvalue;
        // SAFETY: `new` is fresh; `cur` and `prev` are live list members (the list is a root);
        // `next` is a pointer slot (`object`'s layout rule).
        unsafe {
            (*np).location = slot as i64;
            self.m.write_unchecked(
                new.0,
                &raw mut (*np).next,
                cur.map_or(std::ptr::null_mut(), |o| o.0),
            );
            match prev {
                None => self.roots().open_upvalues = Some(new),
                Some(p) => {
                    let pp = p.0 as *mut Upvalue;
                    self.m.write_unchecked(p.0, &raw mut (*pp).next, new.0);
                }
            }
        }
        Some(new)
    }

    /// Closes every open upvalue at stack slot `last` or above.
    fn close_upvalues(&mut self, last: usize) {
        while let Some(u) = self.roots().open_upvalues {
            let up = u.0 as *mut Upvalue;
            // SAFETY: a live open upvalue (rooted through the list's head).
            let loc = unsafe { (*up).location };
            if (loc as usize) < last {
                break;
            }
            let v = self.roots().stack.get(loc as usize);
            // SAFETY: as above; `closed` is a `HeapValue` field of it.
            unsafe {
                HeapValue::set(&self.m, u, &raw mut (*up).closed, v);
                (*up).location = -1;
                let next = (*up).next;
                self.roots().open_upvalues = (!next.is_null()).then_some(Obj(next));
            }
        }
    }

    fn run(&mut self, out: &mut dyn Write) -> Outcome {
        // The current frame's code and constants, reloaded at every call and return.
        let (mut code, mut consts, mut base, mut ip) = self.load_frame();
        // The stack, for the macros below: a raw pointer rather than `self.roots()` at each
        // use, so the hot operations do not reload the box. Each use is a momentary `&mut`
        // that ends within the macro, so it never overlaps another reference (rule 1).
        // SAFETY: `roots` is this VM's box, alive as long as `self`.
        let stack: *mut Stack = unsafe { &raw mut (*self.roots.get()).stack };
        macro_rules! byte {
            () => {{
                // SAFETY: the compiler ends every path with a return, so `ip` stays in the
                // frame's code, which its closure keeps alive.
                let b = unsafe { *code.add(ip) };
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
        macro_rules! constant {
            () => {{
                let i = byte!() as usize;
                // SAFETY: constant operands index the frame's constants (the compiler's).
                unsafe { (*consts.add(i)).get() }
            }};
        }
        macro_rules! pop {
            () => {
                // SAFETY: `stack` (above): no other reference is live.
                unsafe { (*stack).pop() }
            };
        }
        macro_rules! push {
            ($v:expr) => {{
                let v = $v;
                // SAFETY: `stack` (above): no other reference is live.
                if unsafe { (*stack).is_full() } {
                    fail!("Stack overflow.");
                }
                // SAFETY: as above.
                unsafe { (*stack).push(v) }
            }};
        }
        macro_rules! peek {
            ($d:expr) => {
                // SAFETY: `stack` (above): no other reference is live.
                unsafe { (*stack).peek($d) }
            };
        }
        macro_rules! fail {
            ($msg:expr) => {{
                self.save_ip(ip);
                return self.runtime_error($msg);
            }};
        }
        macro_rules! numbers {
            ($op:tt, $wrap:expr) => {{
                // SAFETY: `stack` (above): no other reference is live.
                match unsafe { (*stack).top2() } {
                    (Value::Number(a), Value::Number(b)) => {
                        // SAFETY: as above.
                        unsafe { (*stack).replace2($wrap(a $op b)) }
                    }
                    _ => fail!("Operands must be numbers."),
                }
            }};
        }
        // Calls closure `c` (the callee, `argc` values below the top) inline when its arity
        // matches and a frame is free, continuing the loop in it; otherwise falls through to
        // `call_value`, which reports the error.
        macro_rules! enter_closure {
            ($c:expr, $argc:expr) => {{
                let (c, argc): (Obj, usize) = ($c, $argc);
                let f = function_of(c);
                // SAFETY: a live closure's function (the callee, on the stack).
                let arity = unsafe { (*f).arity } as usize;
                let r = self.roots();
                if arity == argc && r.frames.len() < FRAMES_MAX {
                    base = r.stack.len() - argc - 1;
                    r.frames.push(CallFrame {
                        closure: c,
                        ip: 0,
                        base,
                    });
                    // SAFETY: as above.
                    let (c2, k2) = unsafe { ((*f).code, (*f).constants as *const HeapValue) };
                    (code, consts, ip) = (c2, k2, 0);
                    continue;
                }
            }};
        }
        loop {
            match Op::from_byte(byte!()) {
                Op::Constant => push!(constant!()),
                Op::Nil => push!(Value::Nil),
                Op::True => push!(Value::Bool(true)),
                Op::False => push!(Value::Bool(false)),
                Op::Pop => {
                    pop!();
                }
                Op::GetLocal => {
                    let i = byte!() as usize;
                    // SAFETY: `stack` (above): no other reference is live.
                    push!(unsafe { (*stack).get(base + i) });
                }
                Op::SetLocal => {
                    let i = byte!() as usize;
                    let v = peek!(0);
                    // SAFETY: as above.
                    unsafe { (*stack).set(base + i, v) };
                }
                Op::GetGlobal => {
                    let name = as_obj(constant!());
                    match self.get_global(name) {
                        Some(v) => push!(v),
                        None => fail!(&format!("Undefined variable '{}'.", name_of(name))),
                    }
                }
                Op::DefineGlobal => {
                    let name = as_obj(constant!());
                    let v = peek!(0);
                    if self.set_global(name, v).is_none() {
                        fail!("Out of memory.");
                    }
                    pop!();
                }
                Op::SetGlobal => {
                    let name = as_obj(constant!());
                    let v = peek!(0);
                    let (_, t) = self.globals();
                    // SAFETY: the globals' table inside the live globals object; `v` is on
                    // the stack.
                    if !unsafe { table::replace(&self.m, t, name, v) } {
                        fail!(&format!("Undefined variable '{}'.", name_of(name)));
                    }
                }
                Op::GetUpvalue => {
                    let i = byte!() as usize;
                    let u = self.upvalue(base, i);
                    // SAFETY: a live upvalue of the running closure.
                    let v = unsafe {
                        match (*u).location {
                            -1 => (*u).closed.get(),
                            loc => self.roots().stack.get(loc as usize),
                        }
                    };
                    push!(v);
                }
                Op::SetUpvalue => {
                    let i = byte!() as usize;
                    let u = self.upvalue(base, i);
                    let v = peek!(0);
                    // SAFETY: as above; `closed` is a `HeapValue` field of `u`.
                    unsafe {
                        match (*u).location {
                            -1 => {
                                HeapValue::set(&self.m, Obj(u as *mut u8), &raw mut (*u).closed, v)
                            }
                            loc => self.roots().stack.set(loc as usize, v),
                        }
                    }
                }
                Op::Equal => {
                    // SAFETY: `stack` (above): no other reference is live.
                    unsafe {
                        let (a, b) = (*stack).top2();
                        (*stack).replace2(Value::Bool(a.equals(b)));
                    }
                }
                Op::Greater => numbers!(>, Value::Bool),
                Op::Less => numbers!(<, Value::Bool),
                // SAFETY: `stack` (above): no other reference is live.
                Op::Add => match unsafe { (*stack).top2() } {
                    (Value::Number(a), Value::Number(b)) => {
                        // SAFETY: as above.
                        unsafe { (*stack).replace2(Value::Number(a + b)) }
                    }
                    (Value::Obj(a), Value::Obj(b))
                        if object::kind(a) == Kind::String && object::kind(b) == Kind::String =>
                    {
                        // Both stay on the stack (rooted) while the result is allocated.
                        let mut s = std::mem::take(&mut self.scratch);
                        s.clear();
                        // SAFETY: live strings (on the stack).
                        s.extend_from_slice(unsafe { string_bytes(a) });
                        // SAFETY: as above.
                        s.extend_from_slice(unsafe { string_bytes(b) });
                        let r = self.intern(&s);
                        self.scratch = s;
                        let Some(r) = r else {
                            fail!("Out of memory.");
                        };
                        pop!();
                        pop!();
                        push!(Value::Obj(r));
                    }
                    _ => fail!("Operands must be two numbers or two strings."),
                },
                Op::Subtract => numbers!(-, Value::Number),
                Op::Multiply => numbers!(*, Value::Number),
                Op::Divide => numbers!(/, Value::Number),
                Op::Not => {
                    let v = peek!(0);
                    // SAFETY: `stack` (above): no other reference is live.
                    unsafe { (*stack).replace_top(Value::Bool(v.is_falsey())) };
                }
                Op::Negate => match peek!(0) {
                    // SAFETY: `stack` (above): no other reference is live.
                    Value::Number(n) => unsafe { (*stack).replace_top(Value::Number(-n)) },
                    _ => fail!("Operand must be a number."),
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
                Op::Call => {
                    let argc = byte!() as usize;
                    self.save_ip(ip);
                    let callee = peek!(argc);
                    if let Value::Obj(o) = callee {
                        match object::kind(o) {
                            Kind::Closure => enter_closure!(o, argc),
                            Kind::Class => {
                                // The common case inline too: the instance, then its `init`
                                // entered here; `call_value` on `init` reports an arity
                                // mismatch or a full frame stack.
                                // SAFETY: a live class (the callee, on the stack).
                                let init = unsafe { (*(o.0 as *const Class)).init };
                                if !self.instantiate(o, argc) {
                                    fail!("Out of memory.");
                                }
                                if init.is_null() {
                                    if argc != 0 {
                                        fail!(&format!("Expected 0 arguments but got {argc}."));
                                    }
                                    continue;
                                }
                                enter_closure!(Obj(init), argc);
                                if let Err(msg) = self.call_value(Value::Obj(Obj(init)), argc) {
                                    return self.runtime_error(&msg);
                                }
                                (code, consts, base, ip) = self.load_frame();
                                continue;
                            }
                            _ => {}
                        }
                    }
                    if let Err(msg) = self.call_value(callee, argc) {
                        return self.runtime_error(&msg);
                    }
                    (code, consts, base, ip) = self.load_frame();
                }
                Op::Closure => {
                    let f = as_obj(constant!());
                    let Some(c) = self.alloc(self.types.closure, Kind::Closure) else {
                        fail!("Out of memory.");
                    };
                    let cp = c.0 as *mut Closure;
                    // SAFETY: `f` is a live function (a constant of the running one), `c` is
                    // fresh and pushed (rooted) before the next allocation; `function` is a
                    // pointer slot (`object`'s layout rule).
                    let count = unsafe {
                        self.m.write_unchecked(c.0, &raw mut (*cp).function, f.0);
                        (*function_of(c)).upvalue_count as usize
                    };
                    push!(Value::Obj(c));
                    if count > 0 {
                        self.before_alloc();
                        let arr = self.m.alloc_array(self.types.reference, count);
                        if arr.is_null() {
                            fail!("Out of memory.");
                        }
                        // SAFETY: `c` is live (on the stack); `arr` fresh, rooted through it; `upvalues` is a
                        // pointer slot (`object`'s layout rule).
                        unsafe {
                            self.m.write_unchecked(c.0, &raw mut (*cp).upvalues, arr);
                            (*cp).count = count as u64;
                        }
                        for i in 0..count {
                            let local = byte!();
                            let index = byte!() as usize;
                            let up = if local == 1 {
                                match self.capture_upvalue(base + index) {
                                    Some(u) => u.0,
                                    None => fail!("Out of memory."),
                                }
                            } else {
                                self.upvalue(base, index) as *mut u8
                            };
                            let slot = (arr as *mut *mut u8).wrapping_add(i);
                            // SAFETY: element `i` of `arr`, an array of pointer slots (`object`'s layout
                            // rule); `up` is live.
                            unsafe { self.m.write_unchecked(arr, slot, up) };
                        }
                    }
                }
                Op::CloseUpvalue => {
                    let top = self.roots().stack.len() - 1;
                    self.close_upvalues(top);
                    pop!();
                }
                Op::Class => {
                    let name = as_obj(constant!());
                    let Some(c) = self.alloc(self.types.class, Kind::Class) else {
                        fail!("Out of memory.");
                    };
                    // SAFETY: a fresh class; the name is a live constant.
                    unsafe {
                        self.m
                            .write(c.0, &raw mut (*(c.0 as *mut Class)).name, name.0)
                    };
                    push!(Value::Obj(c));
                }
                Op::Method => {
                    let name = as_obj(constant!());
                    let (method, class) = (peek!(0), peek!(1));
                    let c = as_obj(class);
                    // SAFETY: the class and the method are on the stack (rooted).
                    let ok = unsafe {
                        self.table_set(c, &raw mut (*(c.0 as *mut Class)).methods, name, method)
                    };
                    if ok.is_none() {
                        fail!("Out of memory.");
                    }
                    if Some(name) == self.roots().init {
                        // SAFETY: the class is live (on the stack), `init` a pointer slot
                        // (`object`'s layout rule), the method a live closure.
                        unsafe {
                            let cp = c.0 as *mut Class;
                            self.m
                                .write_unchecked(c.0, &raw mut (*cp).init, as_obj(method).0)
                        };
                    }
                    pop!();
                }
                Op::Inherit => {
                    let (sub, sup) = (peek!(0), peek!(1));
                    let Value::Obj(sup) = sup else {
                        fail!("Superclass must be a class.");
                    };
                    if object::kind(sup) != Kind::Class {
                        fail!("Superclass must be a class.");
                    }
                    let sub = as_obj(sub);
                    let mut methods = Vec::new();
                    // SAFETY: both classes are on the stack; `each` does not allocate.
                    unsafe {
                        (*(sup.0 as *const Class))
                            .methods
                            .each(|k, v| methods.push((k, v)))
                    };
                    for (k, v) in methods {
                        // SAFETY: as above; the methods stay reachable through `sup`.
                        let ok = unsafe {
                            self.table_set(sub, &raw mut (*(sub.0 as *mut Class)).methods, k, v)
                        };
                        if ok.is_none() {
                            fail!("Out of memory.");
                        }
                    }
                    // SAFETY: both classes are live (on the stack); `init` is a pointer slot
                    // (`object`'s layout rule) holding null or a live closure.
                    unsafe {
                        let init = (*(sup.0 as *const Class)).init;
                        let sp = sub.0 as *mut Class;
                        self.m.write_unchecked(sub.0, &raw mut (*sp).init, init);
                    }
                    pop!();
                }
                Op::GetProperty => {
                    let name = as_obj(constant!());
                    let Some(inst) = instance(peek!(0)) else {
                        fail!("Only instances have properties.");
                    };
                    // SAFETY: the instance is on the stack.
                    let field = unsafe { (*(inst.0 as *const Instance)).fields.get(name) };
                    if let Some(v) = field {
                        pop!();
                        push!(v);
                    } else {
                        // SAFETY: as above.
                        let class = Obj(unsafe { (*(inst.0 as *const Instance)).class });
                        if let Err(msg) = self.bind_method(class, name) {
                            fail!(&msg);
                        }
                    }
                }
                Op::SetProperty => {
                    let name = as_obj(constant!());
                    let Some(inst) = instance(peek!(1)) else {
                        fail!("Only instances have fields.");
                    };
                    let v = peek!(0);
                    // SAFETY: the instance and the value are on the stack.
                    let ok = unsafe {
                        self.table_set(inst, &raw mut (*(inst.0 as *mut Instance)).fields, name, v)
                    };
                    if ok.is_none() {
                        fail!("Out of memory.");
                    }
                    let v = pop!();
                    pop!();
                    push!(v);
                }
                Op::Invoke => {
                    let name = as_obj(constant!());
                    let argc = byte!() as usize;
                    self.save_ip(ip);
                    // The common case inline: a method (not a field) that is a closure.
                    if let Some(inst) = instance(peek!(argc)) {
                        let inst = inst.0 as *const Instance;
                        // SAFETY: the instance is on the stack; its class is live through it.
                        let method = unsafe {
                            match (*inst).fields.get(name) {
                                Some(_) => None,
                                None => (*((*inst).class as *const Class)).methods.get(name),
                            }
                        };
                        if let Some(Value::Obj(m)) = method
                            && object::kind(m) == Kind::Closure
                        {
                            enter_closure!(m, argc);
                        }
                    }
                    if let Err(msg) = self.invoke(name, argc) {
                        return self.runtime_error(&msg);
                    }
                    (code, consts, base, ip) = self.load_frame();
                }
                Op::GetSuper => {
                    let name = as_obj(constant!());
                    let sup = as_obj(pop!());
                    if let Err(msg) = self.bind_method(sup, name) {
                        fail!(&msg);
                    }
                }
                Op::SuperInvoke => {
                    let name = as_obj(constant!());
                    let argc = byte!() as usize;
                    self.save_ip(ip);
                    let sup = as_obj(pop!());
                    if let Err(msg) = self.invoke_from_class(sup, name, argc) {
                        return self.runtime_error(&msg);
                    }
                    (code, consts, base, ip) = self.load_frame();
                }
                Op::Return => {
                    let result = pop!();
                    self.close_upvalues(base);
                    let r = self.roots();
                    r.frames.pop();
                    if r.frames.is_empty() {
                        r.stack.pop();
                        return Outcome::Ok;
                    }
                    r.stack.truncate(base);
                    r.stack.push(result);
                    (code, consts, base, ip) = self.load_frame();
                }
            }
        }
    }

    /// The running frame's code, constants, base and saved `ip`.
    fn load_frame(&self) -> (*const u8, *const HeapValue, usize, usize) {
        let fr = self.roots().frames.last().expect("a frame runs");
        // SAFETY: the frame's closure and function are live (roots).
        let f = unsafe { &*function_of(fr.closure) };
        (f.code, f.constants as *const HeapValue, fr.base, fr.ip)
    }

    fn save_ip(&self, ip: usize) {
        if let Some(fr) = self.roots().frames.last_mut() {
            fr.ip = ip;
        }
    }

    /// Upvalue `i` of the running closure.
    fn upvalue(&self, _base: usize, i: usize) -> *mut Upvalue {
        let fr = self.roots().frames.last().expect("a frame runs");
        // SAFETY: the running closure is live; `i` is below its count (the compiler's).
        unsafe {
            let c = &*(fr.closure.0 as *const Closure);
            *(c.upvalues as *const *mut Upvalue).add(i)
        }
    }

    /// The collector's figures for this VM's heap.
    pub fn gc_stats(&self) -> tricolor_gc::GcStats {
        self.m.heap().stats()
    }

    /// Interned strings (live or not yet dropped from the table).
    pub fn interned(&self) -> usize {
        self.strings.len()
    }
}

/// The function of closure `c`.
fn function_of(c: Obj) -> *const Function {
    // SAFETY: `c` is a live closure (the callers').
    unsafe { (*(c.0 as *const Closure)).function as *const Function }
}

/// The instance `v` is, if it is one.
fn instance(v: Value) -> Option<Obj> {
    match v {
        Value::Obj(o) if object::kind(o) == Kind::Instance => Some(o),
        _ => None,
    }
}

fn as_obj(v: Value) -> Obj {
    match v {
        Value::Obj(o) => o,
        _ => unreachable!("name operands are string constants"),
    }
}

fn name_of(o: Obj) -> String {
    // SAFETY: a constant: rooted and live.
    String::from_utf8_lossy(unsafe { string_bytes(o) }).into_owned()
}

impl Default for Vm {
    fn default() -> Self {
        Vm::new()
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.m.remove_stack_scanner(self.scanner);
    }
}
