//! The scanner: source text to tokens, on demand (clox's `scanner.c`).

/// Token kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `(`
    LeftParen,
    /// `)`
    RightParen,
    /// `{`
    LeftBrace,
    /// `}`
    RightBrace,
    /// `,`
    Comma,
    /// `.`
    Dot,
    /// `-`
    Minus,
    /// `+`
    Plus,
    /// `;`
    Semicolon,
    /// `/`
    Slash,
    /// `*`
    Star,
    /// `!`
    Bang,
    /// `!=`
    BangEqual,
    /// `=`
    Equal,
    /// `==`
    EqualEqual,
    /// `>`
    Greater,
    /// `>=`
    GreaterEqual,
    /// `<`
    Less,
    /// `<=`
    LessEqual,
    /// A name that is not a keyword.
    Identifier,
    /// A string literal, quotes included.
    String,
    /// A number literal.
    Number,
    /// The keyword `and`.
    And,
    /// The keyword `class`.
    Class,
    /// The keyword `else`.
    Else,
    /// The keyword `false`.
    False,
    /// The keyword `for`.
    For,
    /// The keyword `fun`.
    Fun,
    /// The keyword `if`.
    If,
    /// The keyword `nil`.
    Nil,
    /// The keyword `or`.
    Or,
    /// The keyword `print`.
    Print,
    /// The keyword `return`.
    Return,
    /// The keyword `super`.
    Super,
    /// The keyword `this`.
    This,
    /// The keyword `true`.
    True,
    /// The keyword `var`.
    Var,
    /// The keyword `while`.
    While,
    /// A scanning error; the token's text is the message.
    Error,
    /// The end of the source.
    Eof,
}

/// A token: its kind, its text (for `Error`, the message), its line.
#[derive(Clone, Copy, Debug)]
pub struct Token<'a> {
    /// What it is.
    pub kind: Kind,
    /// Its source text, or an error message.
    pub text: &'a str,
    /// The line it starts on.
    pub line: u32,
}

/// Scans `source` one token at a time.
pub struct Scanner<'a> {
    src: &'a str,
    start: usize,
    cur: usize,
    line: u32,
}

impl<'a> Scanner<'a> {
    /// A scanner at the start of `src`.
    pub fn new(src: &'a str) -> Self {
        Self {
            src,
            start: 0,
            cur: 0,
            line: 1,
        }
    }

    fn peek(&self) -> u8 {
        *self.src.as_bytes().get(self.cur).unwrap_or(&0)
    }

    fn peek_next(&self) -> u8 {
        *self.src.as_bytes().get(self.cur + 1).unwrap_or(&0)
    }

    fn at_end(&self) -> bool {
        self.cur >= self.src.len()
    }

    fn advance(&mut self) -> u8 {
        let c = self.peek();
        self.cur += 1;
        c
    }

    fn matches(&mut self, c: u8) -> bool {
        if self.at_end() || self.peek() != c {
            return false;
        }
        self.cur += 1;
        true
    }

    fn make(&self, kind: Kind) -> Token<'a> {
        Token {
            kind,
            text: &self.src[self.start..self.cur],
            line: self.line,
        }
    }

    fn error(&self, msg: &'static str) -> Token<'a> {
        Token {
            kind: Kind::Error,
            text: msg,
            line: self.line,
        }
    }

    fn skip_space(&mut self) {
        loop {
            match self.peek() {
                b' ' | b'\r' | b'\t' => {
                    self.cur += 1;
                }
                b'\n' => {
                    self.line += 1;
                    self.cur += 1;
                }
                b'/' if self.peek_next() == b'/' => {
                    while self.peek() != b'\n' && !self.at_end() {
                        self.cur += 1;
                    }
                }
                _ => return,
            }
        }
    }

    /// The next token (`Eof` at the end, forever).
    pub fn next_token(&mut self) -> Token<'a> {
        self.skip_space();
        self.start = self.cur;
        if self.at_end() {
            return self.make(Kind::Eof);
        }
        let c = self.advance();
        if c.is_ascii_alphabetic() || c == b'_' {
            while self.peek().is_ascii_alphanumeric() || self.peek() == b'_' {
                self.cur += 1;
            }
            return self.make(keyword(&self.src[self.start..self.cur]));
        }
        if c.is_ascii_digit() {
            while self.peek().is_ascii_digit() {
                self.cur += 1;
            }
            if self.peek() == b'.' && self.peek_next().is_ascii_digit() {
                self.cur += 1;
                while self.peek().is_ascii_digit() {
                    self.cur += 1;
                }
            }
            return self.make(Kind::Number);
        }
        let kind = match c {
            b'(' => Kind::LeftParen,
            b')' => Kind::RightParen,
            b'{' => Kind::LeftBrace,
            b'}' => Kind::RightBrace,
            b';' => Kind::Semicolon,
            b',' => Kind::Comma,
            b'.' => Kind::Dot,
            b'-' => Kind::Minus,
            b'+' => Kind::Plus,
            b'/' => Kind::Slash,
            b'*' => Kind::Star,
            b'!' if self.matches(b'=') => Kind::BangEqual,
            b'!' => Kind::Bang,
            b'=' if self.matches(b'=') => Kind::EqualEqual,
            b'=' => Kind::Equal,
            b'<' if self.matches(b'=') => Kind::LessEqual,
            b'<' => Kind::Less,
            b'>' if self.matches(b'=') => Kind::GreaterEqual,
            b'>' => Kind::Greater,
            b'"' => {
                while self.peek() != b'"' && !self.at_end() {
                    if self.peek() == b'\n' {
                        self.line += 1;
                    }
                    self.cur += 1;
                }
                if self.at_end() {
                    return self.error("Unterminated string.");
                }
                self.cur += 1;
                Kind::String
            }
            _ => return self.error("Unexpected character."),
        };
        self.make(kind)
    }
}

fn keyword(s: &str) -> Kind {
    match s {
        "and" => Kind::And,
        "class" => Kind::Class,
        "else" => Kind::Else,
        "false" => Kind::False,
        "for" => Kind::For,
        "fun" => Kind::Fun,
        "if" => Kind::If,
        "nil" => Kind::Nil,
        "or" => Kind::Or,
        "print" => Kind::Print,
        "return" => Kind::Return,
        "super" => Kind::Super,
        "this" => Kind::This,
        "true" => Kind::True,
        "var" => Kind::Var,
        "while" => Kind::While,
        _ => Kind::Identifier,
    }
}
