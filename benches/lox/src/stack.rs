//! The VM's value stack: a fixed array of slots and a top index (clox's `stack` and
//! `stackTop`), allocated once, so a push is a compare and a store with no growth path and
//! the stack never moves under the frames that index it.
//!
//! Invariant: `top <= slots.len()`; the slots below `top` are the live values (the stack
//! scanner reports those, `as_slice`). Every access is bounds-checked by safe indexing: a
//! stack imbalance from a compiler bug panics; it cannot read or write outside the array.
//! The interpreter checks `is_full` before the pushes that grow the stack, so a Lox program
//! that runs out of slots gets clox's "Stack overflow." instead of that panic.

use crate::value::Value;

/// Slots: clox's `STACK_MAX` (64 frames of 256 slots) twice over, because a frame may hold
/// 256 locals and 255 arguments of a call at once, where clox would write past its array.
pub const STACK_MAX: usize = 64 * 256 * 2;

/// The value stack (module docs).
pub struct Stack {
    /// A fixed-size array, so every bounds check compares with a constant.
    slots: Box<[Value; STACK_MAX]>,
    top: usize,
}

impl Default for Stack {
    fn default() -> Self {
        Stack {
            slots: vec![Value::Nil; STACK_MAX]
                .into_boxed_slice()
                .try_into()
                .expect("STACK_MAX slots"),
            top: 0,
        }
    }
}

impl Stack {
    /// Values on the stack.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.top
    }

    /// True when nothing is on the stack.
    pub fn is_empty(&self) -> bool {
        self.top == 0
    }

    /// True when a push would not fit.
    #[inline(always)]
    pub fn is_full(&self) -> bool {
        self.top == STACK_MAX
    }

    /// Pushes `v` (panics if full: callers that can fill it check `is_full` first).
    #[inline(always)]
    pub fn push(&mut self, v: Value) {
        self.slots[self.top] = v;
        self.top += 1;
    }

    /// Pops the top value (panics if empty: the compiler balances the stack).
    #[inline(always)]
    pub fn pop(&mut self) -> Value {
        self.top -= 1;
        self.slots[self.top]
    }

    /// The value `d` below the top (0 is the top).
    #[inline(always)]
    pub fn peek(&self, d: usize) -> Value {
        self.slots[self.top - 1 - d]
    }

    /// Replaces the value `d` below the top.
    #[inline(always)]
    pub fn set_peek(&mut self, d: usize, v: Value) {
        self.slots[self.top - 1 - d] = v;
    }

    /// The value in slot `i`.
    #[inline(always)]
    pub fn get(&self, i: usize) -> Value {
        self.slots[..self.top][i]
    }

    /// Sets slot `i`, which is below the top.
    #[inline(always)]
    pub fn set(&mut self, i: usize, v: Value) {
        self.slots[..self.top][i] = v;
    }

    /// The two values on top, the lower first (a binary operator's operands).
    #[inline(always)]
    pub fn top2(&self) -> (Value, Value) {
        let t = self.top;
        (self.slots[t - 2], self.slots[t - 1])
    }

    /// Replaces the two values on top with `v` (a binary operator's result).
    #[inline(always)]
    pub fn replace2(&mut self, v: Value) {
        let t = self.top - 1;
        self.slots[t - 1] = v;
        self.top = t;
    }

    /// Replaces the value on top with `v`.
    #[inline(always)]
    pub fn replace_top(&mut self, v: Value) {
        self.slots[self.top - 1] = v;
    }

    /// Drops the values from slot `n` up.
    #[inline(always)]
    pub fn truncate(&mut self, n: usize) {
        self.top = self.top.min(n);
    }

    /// Drops every value.
    pub fn clear(&mut self) {
        self.top = 0;
    }

    /// The live values.
    pub fn as_slice(&self) -> &[Value] {
        &self.slots[..self.top]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushes_pops_and_indexes_like_a_vector() {
        let mut s = Stack::default();
        for i in 0..5 {
            s.push(Value::Number(i as f64));
        }
        assert_eq!(s.len(), 5);
        assert_eq!(s.peek(0), Value::Number(4.0));
        assert_eq!(s.get(1), Value::Number(1.0));
        s.set(1, Value::Nil);
        s.set_peek(1, Value::Bool(true));
        assert_eq!(s.as_slice()[1], Value::Nil);
        assert_eq!(s.get(3), Value::Bool(true));
        assert_eq!(s.top2(), (Value::Bool(true), Value::Number(4.0)));
        s.replace2(Value::Number(7.0));
        assert_eq!(s.len(), 4);
        assert_eq!(s.peek(0), Value::Number(7.0));
        s.replace_top(Value::Number(4.0));
        assert_eq!(s.pop(), Value::Number(4.0));
        s.truncate(2);
        assert_eq!(s.as_slice(), &[Value::Number(0.0), Value::Nil]);
        s.clear();
        assert!(s.is_empty());
    }

    #[test]
    fn is_full_at_stack_max_and_reads_above_the_top_panic() {
        let mut s = Stack::default();
        while !s.is_full() {
            s.push(Value::Nil);
        }
        assert_eq!(s.len(), STACK_MAX);
        assert!(std::panic::catch_unwind(move || s.push(Value::Nil)).is_err());
        let s = Stack::default();
        assert!(std::panic::catch_unwind(|| s.get(0)).is_err());
    }
}
