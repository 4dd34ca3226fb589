//! The single-pass compiler: a Pratt parser that emits bytecode as it parses (clox's
//! `compiler.c`): expressions, `print`, global and local variables, blocks, `if`, `while`,
//! `for`, `and`, `or`, functions, calls, `return` and closures. Each function being compiled
//! has a chunk in the VM's roots (`Vm::begin_function`); finishing it makes a `Function`
//! object on the heap.

use crate::chunk::Op;
use crate::object::Obj;
use crate::scanner::{Kind, Scanner, Token};
use crate::value::Value;
use crate::vm::Vm;

#[derive(Clone, Copy, PartialEq, PartialOrd)]
enum Prec {
    None,
    Assignment,
    Or,
    And,
    Equality,
    Comparison,
    Term,
    Factor,
    Unary,
    Call,
    Primary,
}

impl Prec {
    fn next(self) -> Prec {
        match self {
            Prec::None => Prec::Assignment,
            Prec::Assignment => Prec::Or,
            Prec::Or => Prec::And,
            Prec::And => Prec::Equality,
            Prec::Equality => Prec::Comparison,
            Prec::Comparison => Prec::Term,
            Prec::Term => Prec::Factor,
            Prec::Factor => Prec::Unary,
            Prec::Unary => Prec::Call,
            Prec::Call | Prec::Primary => Prec::Primary,
        }
    }
}

struct Local<'a> {
    name: &'a str,
    /// -1 while its initializer is compiled.
    depth: i32,
    /// A closure captures it: leaving its scope closes the upvalue.
    captured: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum FnKind {
    Script,
    Function,
    Method,
    Initializer,
}

/// A class being compiled (clox's `ClassCompiler`).
struct ClassFrame {
    has_super: bool,
}

/// One function being compiled (clox's `Compiler`).
struct Frame<'a> {
    kind: FnKind,
    locals: Vec<Local<'a>>,
    /// (index, is a local of the enclosing function).
    upvalues: Vec<(u8, bool)>,
    depth: i32,
    arity: usize,
}

impl<'a> Frame<'a> {
    fn new(kind: FnKind) -> Self {
        Frame {
            kind,
            // Slot 0 holds the function being called, or `this` in a method.
            locals: vec![Local {
                name: if kind == FnKind::Function || kind == FnKind::Script {
                    ""
                } else {
                    "this"
                },
                depth: 0,
                captured: false,
            }],
            upvalues: Vec::new(),
            depth: 0,
            arity: 0,
        }
    }
}

/// Compiles `source` into the top-level script function; `None` after a compile error
/// (reported on stderr) or if the heap cannot grow.
pub fn compile(vm: &mut Vm, source: &str) -> Option<Obj> {
    vm.begin_function(None);
    let mut c = Compiler {
        vm,
        scanner: Scanner::new(source),
        current: Token {
            kind: Kind::Eof,
            text: "",
            line: 1,
        },
        previous: Token {
            kind: Kind::Eof,
            text: "",
            line: 1,
        },
        had_error: false,
        panic_mode: false,
        frames: vec![Frame::new(FnKind::Script)],
        classes: Vec::new(),
    };
    c.advance();
    while !c.matches(Kind::Eof) {
        c.declaration();
    }
    c.emit_return();
    let had_error = c.had_error;
    let f = vm.end_function(0, 0);
    if had_error { None } else { f }
}

struct Compiler<'v, 'a> {
    vm: &'v mut Vm,
    scanner: Scanner<'a>,
    current: Token<'a>,
    previous: Token<'a>,
    had_error: bool,
    panic_mode: bool,
    /// The functions being compiled, innermost last.
    frames: Vec<Frame<'a>>,
    /// The classes being compiled, innermost last.
    classes: Vec<ClassFrame>,
}

impl<'a> Compiler<'_, 'a> {
    fn frame(&mut self) -> &mut Frame<'a> {
        self.frames
            .last_mut()
            .expect("a function is being compiled")
    }

    fn error_at(&mut self, tok: Token<'a>, msg: &str) {
        if self.panic_mode {
            return;
        }
        self.panic_mode = true;
        let at = match tok.kind {
            Kind::Eof => " at end".to_string(),
            Kind::Error => String::new(),
            _ => format!(" at '{}'", tok.text),
        };
        eprintln!("[line {}] Error{at}: {msg}", tok.line);
        self.had_error = true;
    }

    fn error(&mut self, msg: &str) {
        self.error_at(self.previous, msg);
    }

    fn advance(&mut self) {
        self.previous = self.current;
        loop {
            self.current = self.scanner.next_token();
            if self.current.kind != Kind::Error {
                break;
            }
            let (tok, msg) = (self.current, self.current.text);
            self.error_at(tok, msg);
        }
    }

    fn consume(&mut self, kind: Kind, msg: &str) {
        if self.current.kind == kind {
            self.advance();
        } else {
            self.error_at(self.current, msg);
        }
    }

    fn check(&self, kind: Kind) -> bool {
        self.current.kind == kind
    }

    fn matches(&mut self, kind: Kind) -> bool {
        if !self.check(kind) {
            return false;
        }
        self.advance();
        true
    }

    fn emit(&mut self, b: u8) {
        let line = self.previous.line;
        self.vm.chunk_mut().write(b, line);
    }

    fn emit_return(&mut self) {
        if self.frame().kind == FnKind::Initializer {
            self.emit_ops(Op::GetLocal, 0);
        } else {
            self.emit_op(Op::Nil);
        }
        self.emit_op(Op::Return);
    }

    fn emit_op(&mut self, op: Op) {
        self.emit(op as u8);
    }

    fn emit_ops(&mut self, a: Op, b: u8) {
        self.emit_op(a);
        self.emit(b);
    }

    fn make_constant(&mut self, v: Value) -> u8 {
        let i = self.vm.chunk_mut().add_constant(v);
        if i > u8::MAX as usize {
            self.error("Too many constants in one chunk.");
            return 0;
        }
        i as u8
    }

    fn emit_constant(&mut self, v: Value) {
        let c = self.make_constant(v);
        self.emit_ops(Op::Constant, c);
    }

    fn emit_jump(&mut self, op: Op) -> usize {
        self.emit_op(op);
        self.emit(0xff);
        self.emit(0xff);
        self.vm.chunk_mut().code.len() - 2
    }

    fn patch_jump(&mut self, at: usize) {
        let jump = self.vm.chunk_mut().code.len() - at - 2;
        if jump > u16::MAX as usize {
            self.error("Too much code to jump over.");
        }
        let code = &mut self.vm.chunk_mut().code;
        code[at] = (jump >> 8) as u8;
        code[at + 1] = jump as u8;
    }

    fn emit_loop(&mut self, start: usize) {
        self.emit_op(Op::Loop);
        let offset = self.vm.chunk_mut().code.len() - start + 2;
        if offset > u16::MAX as usize {
            self.error("Loop body too large.");
        }
        self.emit((offset >> 8) as u8);
        self.emit(offset as u8);
    }

    /// A string constant: interned, and in the chunk's constants (a root) before the next
    /// allocation.
    fn string_constant(&mut self, s: &str) -> u8 {
        match self.vm.intern(s.as_bytes()) {
            Some(o) => self.make_constant(Value::Obj(o)),
            None => {
                self.error("Out of memory.");
                0
            }
        }
    }

    // ---- declarations and statements ----

    fn declaration(&mut self) {
        if self.matches(Kind::Class) {
            self.class_declaration();
        } else if self.matches(Kind::Fun) {
            self.fun_declaration();
        } else if self.matches(Kind::Var) {
            self.var_declaration();
        } else {
            self.statement();
        }
        if self.panic_mode {
            self.synchronize();
        }
    }

    fn synchronize(&mut self) {
        self.panic_mode = false;
        while self.current.kind != Kind::Eof {
            if self.previous.kind == Kind::Semicolon {
                return;
            }
            match self.current.kind {
                Kind::Class
                | Kind::Fun
                | Kind::Var
                | Kind::For
                | Kind::If
                | Kind::While
                | Kind::Print
                | Kind::Return => return,
                _ => self.advance(),
            }
        }
    }

    fn class_declaration(&mut self) {
        self.consume(Kind::Identifier, "Expect class name.");
        let class_name = self.previous;
        let name = self.string_constant(class_name.text);
        self.declare_variable();
        self.emit_ops(Op::Class, name);
        self.define_variable(name);
        self.classes.push(ClassFrame { has_super: false });
        if self.matches(Kind::Less) {
            self.consume(Kind::Identifier, "Expect superclass name.");
            self.named_variable(self.previous, false);
            if class_name.text == self.previous.text {
                self.error("A class can't inherit from itself.");
            }
            self.begin_scope();
            self.frame().locals.push(Local {
                name: "super",
                depth: 0,
                captured: false,
            });
            self.define_variable(0);
            self.named_variable(class_name, false);
            self.emit_op(Op::Inherit);
            if let Some(c) = self.classes.last_mut() {
                c.has_super = true;
            }
        }
        self.named_variable(class_name, false);
        self.consume(Kind::LeftBrace, "Expect '{' before class body.");
        while !self.check(Kind::RightBrace) && !self.check(Kind::Eof) {
            self.method();
        }
        self.consume(Kind::RightBrace, "Expect '}' after class body.");
        self.emit_op(Op::Pop);
        if self.classes.pop().is_some_and(|c| c.has_super) {
            self.end_scope();
        }
    }

    fn method(&mut self) {
        self.consume(Kind::Identifier, "Expect method name.");
        let name = self.previous.text;
        let c = self.string_constant(name);
        let kind = if name == "init" {
            FnKind::Initializer
        } else {
            FnKind::Method
        };
        self.function(kind);
        self.emit_ops(Op::Method, c);
    }

    fn fun_declaration(&mut self) {
        let global = self.parse_variable("Expect function name.");
        self.mark_initialized();
        self.function(FnKind::Function);
        self.define_variable(global);
    }

    fn function(&mut self, kind: FnKind) {
        let name = self.previous.text;
        let Some(name) = self.vm.intern(name.as_bytes()) else {
            self.error("Out of memory.");
            return;
        };
        // The name is rooted with the new chunk.
        self.vm.begin_function(Some(name));
        self.frames.push(Frame::new(kind));
        self.begin_scope();
        self.consume(Kind::LeftParen, "Expect '(' after function name.");
        if !self.check(Kind::RightParen) {
            loop {
                self.frame().arity += 1;
                if self.frame().arity > 255 {
                    self.error_at(self.current, "Can't have more than 255 parameters.");
                }
                let c = self.parse_variable("Expect parameter name.");
                self.define_variable(c);
                if !self.matches(Kind::Comma) {
                    break;
                }
            }
        }
        self.consume(Kind::RightParen, "Expect ')' after parameters.");
        self.consume(Kind::LeftBrace, "Expect '{' before function body.");
        self.block();
        self.emit_return();
        let frame = self.frames.pop().expect("pushed above");
        let f = self
            .vm
            .end_function(frame.arity.min(255) as u8, frame.upvalues.len());
        let Some(f) = f else {
            self.error("Out of memory.");
            return;
        };
        let c = self.make_constant(Value::Obj(f));
        self.emit_ops(Op::Closure, c);
        for (index, local) in frame.upvalues {
            self.emit(local as u8);
            self.emit(index);
        }
    }

    fn var_declaration(&mut self) {
        let global = self.parse_variable("Expect variable name.");
        if self.matches(Kind::Equal) {
            self.expression();
        } else {
            self.emit_op(Op::Nil);
        }
        self.consume(Kind::Semicolon, "Expect ';' after variable declaration.");
        self.define_variable(global);
    }

    fn parse_variable(&mut self, msg: &str) -> u8 {
        self.consume(Kind::Identifier, msg);
        self.declare_variable();
        if self.frame().depth > 0 {
            return 0;
        }
        let name = self.previous.text;
        self.string_constant(name)
    }

    fn declare_variable(&mut self) {
        let depth = self.frame().depth;
        if depth == 0 {
            return;
        }
        let name = self.previous.text;
        let dup = self
            .frame()
            .locals
            .iter()
            .rev()
            .take_while(|l| l.depth == -1 || l.depth >= depth)
            .any(|l| l.name == name);
        if dup {
            self.error("Already a variable with this name in this scope.");
        }
        if self.frame().locals.len() == 256 {
            self.error("Too many local variables in function.");
            return;
        }
        self.frame().locals.push(Local {
            name,
            depth: -1,
            captured: false,
        });
    }

    fn mark_initialized(&mut self) {
        let f = self.frame();
        if f.depth == 0 {
            return;
        }
        let depth = f.depth;
        if let Some(l) = f.locals.last_mut() {
            l.depth = depth;
        }
    }

    fn define_variable(&mut self, global: u8) {
        if self.frame().depth > 0 {
            self.mark_initialized();
            return;
        }
        self.emit_ops(Op::DefineGlobal, global);
    }

    fn statement(&mut self) {
        if self.matches(Kind::Print) {
            self.expression();
            self.consume(Kind::Semicolon, "Expect ';' after value.");
            self.emit_op(Op::Print);
        } else if self.matches(Kind::If) {
            self.if_statement();
        } else if self.matches(Kind::Return) {
            self.return_statement();
        } else if self.matches(Kind::While) {
            self.while_statement();
        } else if self.matches(Kind::For) {
            self.for_statement();
        } else if self.matches(Kind::LeftBrace) {
            self.begin_scope();
            self.block();
            self.end_scope();
        } else {
            self.expression();
            self.consume(Kind::Semicolon, "Expect ';' after expression.");
            self.emit_op(Op::Pop);
        }
    }

    fn block(&mut self) {
        while !self.check(Kind::RightBrace) && !self.check(Kind::Eof) {
            self.declaration();
        }
        self.consume(Kind::RightBrace, "Expect '}' after block.");
    }

    fn return_statement(&mut self) {
        if self.frame().kind == FnKind::Script {
            self.error("Can't return from top-level code.");
        }
        if self.matches(Kind::Semicolon) {
            self.emit_return();
        } else {
            if self.frame().kind == FnKind::Initializer {
                self.error("Can't return a value from an initializer.");
            }
            self.expression();
            self.consume(Kind::Semicolon, "Expect ';' after return value.");
            self.emit_op(Op::Return);
        }
    }

    fn begin_scope(&mut self) {
        self.frame().depth += 1;
    }

    fn end_scope(&mut self) {
        self.frame().depth -= 1;
        loop {
            let f = self.frame();
            let depth = f.depth;
            let Some(l) = f.locals.last() else { break };
            if l.depth <= depth {
                break;
            }
            let captured = l.captured;
            f.locals.pop();
            self.emit_op(if captured { Op::CloseUpvalue } else { Op::Pop });
        }
    }

    fn if_statement(&mut self) {
        self.consume(Kind::LeftParen, "Expect '(' after 'if'.");
        self.expression();
        self.consume(Kind::RightParen, "Expect ')' after condition.");
        let then_jump = self.emit_jump(Op::JumpIfFalse);
        self.emit_op(Op::Pop);
        self.statement();
        let else_jump = self.emit_jump(Op::Jump);
        self.patch_jump(then_jump);
        self.emit_op(Op::Pop);
        if self.matches(Kind::Else) {
            self.statement();
        }
        self.patch_jump(else_jump);
    }

    fn while_statement(&mut self) {
        let start = self.vm.chunk_mut().code.len();
        self.consume(Kind::LeftParen, "Expect '(' after 'while'.");
        self.expression();
        self.consume(Kind::RightParen, "Expect ')' after condition.");
        let exit = self.emit_jump(Op::JumpIfFalse);
        self.emit_op(Op::Pop);
        self.statement();
        self.emit_loop(start);
        self.patch_jump(exit);
        self.emit_op(Op::Pop);
    }

    fn for_statement(&mut self) {
        self.begin_scope();
        self.consume(Kind::LeftParen, "Expect '(' after 'for'.");
        if self.matches(Kind::Semicolon) {
        } else if self.matches(Kind::Var) {
            self.var_declaration();
        } else {
            self.expression();
            self.consume(Kind::Semicolon, "Expect ';' after expression.");
            self.emit_op(Op::Pop);
        }
        let mut start = self.vm.chunk_mut().code.len();
        let mut exit = None;
        if !self.matches(Kind::Semicolon) {
            self.expression();
            self.consume(Kind::Semicolon, "Expect ';' after loop condition.");
            exit = Some(self.emit_jump(Op::JumpIfFalse));
            self.emit_op(Op::Pop);
        }
        if !self.matches(Kind::RightParen) {
            let body = self.emit_jump(Op::Jump);
            let increment = self.vm.chunk_mut().code.len();
            self.expression();
            self.emit_op(Op::Pop);
            self.consume(Kind::RightParen, "Expect ')' after for clauses.");
            self.emit_loop(start);
            start = increment;
            self.patch_jump(body);
        }
        self.statement();
        self.emit_loop(start);
        if let Some(exit) = exit {
            self.patch_jump(exit);
            self.emit_op(Op::Pop);
        }
        self.end_scope();
    }

    // ---- expressions ----

    fn expression(&mut self) {
        self.parse_precedence(Prec::Assignment);
    }

    fn parse_precedence(&mut self, prec: Prec) {
        self.advance();
        let can_assign = prec <= Prec::Assignment;
        if !self.prefix(self.previous.kind, can_assign) {
            self.error("Expect expression.");
            return;
        }
        while prec <= infix_prec(self.current.kind) {
            self.advance();
            self.infix(self.previous.kind, can_assign);
        }
        if can_assign && self.matches(Kind::Equal) {
            self.error("Invalid assignment target.");
        }
    }

    fn prefix(&mut self, kind: Kind, can_assign: bool) -> bool {
        match kind {
            Kind::LeftParen => {
                self.expression();
                self.consume(Kind::RightParen, "Expect ')' after expression.");
            }
            Kind::Minus | Kind::Bang => {
                self.parse_precedence(Prec::Unary);
                self.emit_op(if kind == Kind::Minus {
                    Op::Negate
                } else {
                    Op::Not
                });
            }
            Kind::Number => {
                let n: f64 = self.previous.text.parse().unwrap_or(0.0);
                self.emit_constant(Value::Number(n));
            }
            Kind::String => {
                let t = self.previous.text;
                let c = self.string_constant(&t[1..t.len() - 1]);
                self.emit_ops(Op::Constant, c);
            }
            Kind::Nil => self.emit_op(Op::Nil),
            Kind::True => self.emit_op(Op::True),
            Kind::False => self.emit_op(Op::False),
            Kind::Identifier => self.named_variable(self.previous, can_assign),
            Kind::This => {
                if self.classes.is_empty() {
                    self.error("Can't use 'this' outside of a class.");
                } else {
                    self.named_variable(self.synthetic("this"), false);
                }
            }
            Kind::Super => self.super_(),
            _ => return false,
        }
        true
    }

    fn synthetic(&self, text: &'static str) -> Token<'a> {
        Token {
            kind: Kind::Identifier,
            text,
            line: self.previous.line,
        }
    }

    fn argument_list(&mut self) -> u8 {
        let mut argc = 0usize;
        if !self.check(Kind::RightParen) {
            loop {
                self.expression();
                if argc == 255 {
                    self.error("Can't have more than 255 arguments.");
                }
                argc += 1;
                if !self.matches(Kind::Comma) {
                    break;
                }
            }
        }
        self.consume(Kind::RightParen, "Expect ')' after arguments.");
        argc.min(255) as u8
    }

    fn super_(&mut self) {
        match self.classes.last() {
            None => self.error("Can't use 'super' outside of a class."),
            Some(c) if !c.has_super => {
                self.error("Can't use 'super' in a class with no superclass.")
            }
            Some(_) => {}
        }
        self.consume(Kind::Dot, "Expect '.' after 'super'.");
        self.consume(Kind::Identifier, "Expect superclass method name.");
        let name = self.string_constant(self.previous.text);
        self.named_variable(self.synthetic("this"), false);
        if self.matches(Kind::LeftParen) {
            let argc = self.argument_list();
            self.named_variable(self.synthetic("super"), false);
            self.emit_ops(Op::SuperInvoke, name);
            self.emit(argc);
        } else {
            self.named_variable(self.synthetic("super"), false);
            self.emit_ops(Op::GetSuper, name);
        }
    }

    fn infix(&mut self, kind: Kind, can_assign: bool) {
        match kind {
            Kind::LeftParen => {
                let argc = self.argument_list();
                self.emit_ops(Op::Call, argc);
            }
            Kind::Dot => {
                self.consume(Kind::Identifier, "Expect property name after '.'.");
                let name = self.string_constant(self.previous.text);
                if can_assign && self.matches(Kind::Equal) {
                    self.expression();
                    self.emit_ops(Op::SetProperty, name);
                } else if self.matches(Kind::LeftParen) {
                    let argc = self.argument_list();
                    self.emit_ops(Op::Invoke, name);
                    self.emit(argc);
                } else {
                    self.emit_ops(Op::GetProperty, name);
                }
            }
            Kind::And => {
                let end = self.emit_jump(Op::JumpIfFalse);
                self.emit_op(Op::Pop);
                self.parse_precedence(Prec::And);
                self.patch_jump(end);
            }
            Kind::Or => {
                let else_jump = self.emit_jump(Op::JumpIfFalse);
                let end = self.emit_jump(Op::Jump);
                self.patch_jump(else_jump);
                self.emit_op(Op::Pop);
                self.parse_precedence(Prec::Or);
                self.patch_jump(end);
            }
            _ => {
                self.parse_precedence(infix_prec(kind).next());
                match kind {
                    Kind::BangEqual => {
                        self.emit_op(Op::Equal);
                        self.emit_op(Op::Not);
                    }
                    Kind::EqualEqual => self.emit_op(Op::Equal),
                    Kind::Greater => self.emit_op(Op::Greater),
                    Kind::GreaterEqual => {
                        self.emit_op(Op::Less);
                        self.emit_op(Op::Not);
                    }
                    Kind::Less => self.emit_op(Op::Less),
                    Kind::LessEqual => {
                        self.emit_op(Op::Greater);
                        self.emit_op(Op::Not);
                    }
                    Kind::Plus => self.emit_op(Op::Add),
                    Kind::Minus => self.emit_op(Op::Subtract),
                    Kind::Star => self.emit_op(Op::Multiply),
                    Kind::Slash => self.emit_op(Op::Divide),
                    _ => unreachable!("only tokens with an infix precedence get here"),
                }
            }
        }
    }

    fn named_variable(&mut self, name: Token<'a>, can_assign: bool) {
        let top = self.frames.len() - 1;
        let (get, set, arg) = if let Some(i) = self.resolve_local(top, name) {
            (Op::GetLocal, Op::SetLocal, i)
        } else if let Some(i) = self.resolve_upvalue(top, name) {
            (Op::GetUpvalue, Op::SetUpvalue, i)
        } else {
            let c = self.string_constant(name.text);
            (Op::GetGlobal, Op::SetGlobal, c)
        };
        if can_assign && self.matches(Kind::Equal) {
            self.expression();
            self.emit_ops(set, arg);
        } else {
            self.emit_ops(get, arg);
        }
    }

    fn resolve_local(&mut self, frame: usize, name: Token<'a>) -> Option<u8> {
        let f = &self.frames[frame];
        let i = f.locals.iter().rposition(|l| l.name == name.text)?;
        if f.locals[i].depth == -1 {
            self.error("Can't read local variable in its own initializer.");
        }
        Some(i as u8)
    }

    fn resolve_upvalue(&mut self, frame: usize, name: Token<'a>) -> Option<u8> {
        if frame == 0 {
            return None;
        }
        if let Some(local) = self.resolve_local(frame - 1, name) {
            self.frames[frame - 1].locals[local as usize].captured = true;
            return Some(self.add_upvalue(frame, local, true));
        }
        let up = self.resolve_upvalue(frame - 1, name)?;
        Some(self.add_upvalue(frame, up, false))
    }

    fn add_upvalue(&mut self, frame: usize, index: u8, local: bool) -> u8 {
        let ups = &mut self.frames[frame].upvalues;
        if let Some(i) = ups.iter().position(|&u| u == (index, local)) {
            return i as u8;
        }
        if ups.len() == 256 {
            self.error("Too many closure variables in function.");
            return 0;
        }
        ups.push((index, local));
        (ups.len() - 1) as u8
    }
}

fn infix_prec(kind: Kind) -> Prec {
    match kind {
        Kind::LeftParen | Kind::Dot => Prec::Call,
        Kind::Minus | Kind::Plus => Prec::Term,
        Kind::Slash | Kind::Star => Prec::Factor,
        Kind::BangEqual | Kind::EqualEqual => Prec::Equality,
        Kind::Greater | Kind::GreaterEqual | Kind::Less | Kind::LessEqual => Prec::Comparison,
        Kind::And => Prec::And,
        Kind::Or => Prec::Or,
        _ => Prec::None,
    }
}
