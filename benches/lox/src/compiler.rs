//! The single-pass compiler: a Pratt parser that emits bytecode as it parses (clox's
//! `compiler.c`). This slice compiles expressions, `print`, global and local variables,
//! blocks, `if`, `while`, `for`, `and` and `or`.

use crate::chunk::Op;
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
}

/// Compiles `source` into the VM's chunk; false after a compile error (reported on stderr).
pub fn compile(vm: &mut Vm, source: &str) -> bool {
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
        locals: Vec::new(),
        depth: 0,
    };
    c.advance();
    while !c.matches(Kind::Eof) {
        c.declaration();
    }
    c.emit_op(Op::Return);
    !c.had_error
}

struct Compiler<'v, 'a> {
    vm: &'v mut Vm,
    scanner: Scanner<'a>,
    current: Token<'a>,
    previous: Token<'a>,
    had_error: bool,
    panic_mode: bool,
    locals: Vec<Local<'a>>,
    depth: i32,
}

impl<'a> Compiler<'_, 'a> {
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
        if self.matches(Kind::Var) {
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
        if self.depth > 0 {
            return 0;
        }
        let name = self.previous.text;
        self.string_constant(name)
    }

    fn declare_variable(&mut self) {
        if self.depth == 0 {
            return;
        }
        let name = self.previous.text;
        let dup = self
            .locals
            .iter()
            .rev()
            .take_while(|l| l.depth == -1 || l.depth >= self.depth)
            .any(|l| l.name == name);
        if dup {
            self.error("Already a variable with this name in this scope.");
        }
        if self.locals.len() == 256 {
            self.error("Too many local variables in function.");
            return;
        }
        self.locals.push(Local { name, depth: -1 });
    }

    fn define_variable(&mut self, global: u8) {
        if self.depth > 0 {
            if let Some(l) = self.locals.last_mut() {
                l.depth = self.depth;
            }
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

    fn begin_scope(&mut self) {
        self.depth += 1;
    }

    fn end_scope(&mut self) {
        self.depth -= 1;
        while self.locals.last().is_some_and(|l| l.depth > self.depth) {
            self.emit_op(Op::Pop);
            self.locals.pop();
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
            self.infix(self.previous.kind);
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
            _ => return false,
        }
        true
    }

    fn infix(&mut self, kind: Kind) {
        match kind {
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
        let (get, set, arg) = match self.resolve_local(name) {
            Some(i) => (Op::GetLocal, Op::SetLocal, i),
            None => {
                let c = self.string_constant(name.text);
                (Op::GetGlobal, Op::SetGlobal, c)
            }
        };
        if can_assign && self.matches(Kind::Equal) {
            self.expression();
            self.emit_ops(set, arg);
        } else {
            self.emit_ops(get, arg);
        }
    }

    fn resolve_local(&mut self, name: Token<'a>) -> Option<u8> {
        let i = self.locals.iter().rposition(|l| l.name == name.text)?;
        if self.locals[i].depth == -1 {
            self.error("Can't read local variable in its own initializer.");
        }
        Some(i as u8)
    }
}

fn infix_prec(kind: Kind) -> Prec {
    match kind {
        Kind::Minus | Kind::Plus => Prec::Term,
        Kind::Slash | Kind::Star => Prec::Factor,
        Kind::BangEqual | Kind::EqualEqual => Prec::Equality,
        Kind::Greater | Kind::GreaterEqual | Kind::Less | Kind::LessEqual => Prec::Comparison,
        Kind::And => Prec::And,
        Kind::Or => Prec::Or,
        _ => Prec::None,
    }
}
