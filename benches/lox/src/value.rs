//! Values: nil, booleans, numbers, and references to objects on the Tricolor heap, and their
//! printing in clox's format.

use crate::object::{
    BoundMethod, Class, Closure, Function, Instance, Kind, Obj, kind, string_bytes,
};

/// A Lox value. Objects are addresses of Tricolor objects (`object`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    /// `nil`.
    Nil,
    /// `true` or `false`.
    Bool(bool),
    /// A double.
    Number(f64),
    /// A heap object.
    Obj(Obj),
}

impl Value {
    /// Lox truthiness: `nil` and `false` are false, everything else true.
    pub fn is_falsey(self) -> bool {
        matches!(self, Value::Nil | Value::Bool(false))
    }

    /// Lox equality: numbers by value (NaN is not equal to itself), objects by identity
    /// (strings are interned, so equal strings are one object).
    pub fn equals(self, other: Value) -> bool {
        match (self, other) {
            (Value::Nil, Value::Nil) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Number(a), Value::Number(b)) => a == b,
            (Value::Obj(a), Value::Obj(b)) => a == b,
            _ => false,
        }
    }

    /// The object's address, or 0 (for the root callback).
    pub fn obj_addr(self) -> usize {
        match self {
            Value::Obj(o) => o.0 as usize,
            _ => 0,
        }
    }
}

/// Formats a number as C's `printf("%g")` does (clox prints numbers so).
pub fn fmt_number(n: f64) -> String {
    if n.is_nan() {
        return if n.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if n.is_infinite() {
        return if n < 0.0 { "-inf" } else { "inf" }.into();
    }
    if n == 0.0 {
        return if n.is_sign_negative() { "-0" } else { "0" }.into();
    }
    // %g: precision 6; scientific if the exponent is below -4 or at least 6.
    let sci = format!("{n:.5e}");
    let (mant, exp) = sci.split_once('e').unwrap();
    let exp: i32 = exp.parse().unwrap();
    if !(-4..6).contains(&exp) {
        let mant = strip_zeros(mant);
        format!("{mant}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
    } else {
        let decimals = (5 - exp).max(0) as usize;
        strip_zeros(&format!("{n:.decimals$}")).to_string()
    }
}

fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// Prints `v` as clox's `printValue`.
pub fn format_value(v: Value) -> String {
    match v {
        Value::Nil => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => fmt_number(n),
        Value::Obj(o) => format_object(o),
    }
}

fn format_object(o: Obj) -> String {
    // SAFETY: a printed value is live (on the stack); the layouts are `object`'s.
    unsafe {
        match kind(o) {
            Kind::String => String::from_utf8_lossy(string_bytes(o)).into_owned(),
            Kind::Function => {
                let name = (*(o.0 as *const Function)).name;
                if name.is_null() {
                    "<script>".into()
                } else {
                    format!("<fn {}>", String::from_utf8_lossy(string_bytes(Obj(name))))
                }
            }
            Kind::Closure => format_object(Obj((*(o.0 as *const Closure)).function)),
            Kind::Upvalue => "upvalue".into(),
            Kind::Native => "<native fn>".into(),
            Kind::Class => {
                String::from_utf8_lossy(string_bytes(Obj((*(o.0 as *const Class)).name)))
                    .into_owned()
            }
            Kind::Instance => {
                let class = (*(o.0 as *const Instance)).class as *const Class;
                format!(
                    "{} instance",
                    String::from_utf8_lossy(string_bytes(Obj((*class).name)))
                )
            }
            Kind::BoundMethod => format_object(Obj((*(o.0 as *const BoundMethod)).method)),
            Kind::Globals => "globals".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fmt_number;

    #[test]
    fn numbers_print_as_c_percent_g() {
        for (n, s) in [
            (1.0, "1"),
            (-3.5, "-3.5"),
            (0.1, "0.1"),
            (1.0 / 3.0, "0.333333"),
            (123456.0, "123456"),
            (1234567.0, "1.23457e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e100, "1e+100"),
            (2.5e-7, "2.5e-07"),
            (100.0, "100"),
            (999999.5, "1e+06"),
        ] {
            assert_eq!(fmt_number(n), s, "{n}");
        }
    }
}
