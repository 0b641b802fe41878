//! The numeric type of dice results.
//!
//! Dice only ever produce whole numbers, and players expect `7/2` to be `3`
//! (Feyre floors division), so integers stay exact `i64` values. Decimals
//! exist only because Avrae's grammar has them (`1.5`, `2 * 0.5`); as soon as
//! a decimal takes part in an operation the result is an `f64`. Every
//! operation is checked: overflow, division by zero and non-real results are
//! errors, never panics, wraps or NaNs.

use serde::Serialize;
use std::cmp::Ordering;
use std::fmt;

/// A dice result: an exact integer, or a decimal once decimals are involved.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Num {
    /// Whole number (all dice, counts, integer arithmetic).
    Int(i64),
    /// Decimal (appears only when the expression contains a decimal).
    Dec(f64),
}

/// Why an operation failed; the caller attaches the position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NumError {
    Overflow,
    DivisionByZero,
    NotReal,
}

type NumResult = Result<Num, NumError>;

impl Num {
    /// The value as a float (exact for integers up to 2^53).
    #[allow(clippy::cast_precision_loss)]
    pub fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Dec(d) => d,
        }
    }

    /// The value as an integer, if it is one (decimals like `3.0` count).
    pub fn as_int(self) -> Option<i64> {
        match self {
            Num::Int(i) => Some(i),
            Num::Dec(d) => float_to_int(d).ok().filter(|&i| {
                #[allow(clippy::cast_precision_loss)]
                let back = i as f64;
                back == d
            }),
        }
    }

    /// Whether the value counts as "true" for `then`: strictly positive.
    pub fn is_positive(self) -> bool {
        match self {
            Num::Int(i) => i > 0,
            Num::Dec(d) => d > 0.0,
        }
    }

    /// Total order used by comparisons and keep/drop on sets.
    pub fn compare(self, other: Num) -> Ordering {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => a.cmp(&b),
            (a, b) => a.as_f64().total_cmp(&b.as_f64()),
        }
    }

    pub(crate) fn add(self, rhs: Num) -> NumResult {
        match (self, rhs) {
            (Num::Int(a), Num::Int(b)) => a.checked_add(b).map(Num::Int).ok_or(NumError::Overflow),
            (a, b) => dec(a.as_f64() + b.as_f64()),
        }
    }

    pub(crate) fn sub(self, rhs: Num) -> NumResult {
        match (self, rhs) {
            (Num::Int(a), Num::Int(b)) => a.checked_sub(b).map(Num::Int).ok_or(NumError::Overflow),
            (a, b) => dec(a.as_f64() - b.as_f64()),
        }
    }

    pub(crate) fn mul(self, rhs: Num) -> NumResult {
        match (self, rhs) {
            (Num::Int(a), Num::Int(b)) => a.checked_mul(b).map(Num::Int).ok_or(NumError::Overflow),
            (a, b) => dec(a.as_f64() * b.as_f64()),
        }
    }

    /// `/`: floor division for integers (Feyre), true division once a
    /// decimal is involved.
    pub(crate) fn div(self, rhs: Num) -> NumResult {
        match (self, rhs) {
            (Num::Int(a), Num::Int(b)) => floor_div(a, b).map(Num::Int),
            (a, b) => {
                let d = b.as_f64();
                if d == 0.0 {
                    return Err(NumError::DivisionByZero);
                }
                dec(a.as_f64() / d)
            }
        }
    }

    /// `//`: always floors.
    pub(crate) fn floor_div(self, rhs: Num) -> NumResult {
        match (self, rhs) {
            (Num::Int(a), Num::Int(b)) => floor_div(a, b).map(Num::Int),
            (a, b) => {
                let d = b.as_f64();
                if d == 0.0 {
                    return Err(NumError::DivisionByZero);
                }
                dec((a.as_f64() / d).floor())
            }
        }
    }

    /// `%`: the remainder takes the sign of the divisor (like Python), so
    /// `-1 % 6 == 5`, which is what a player means by "wrap around".
    pub(crate) fn rem(self, rhs: Num) -> NumResult {
        match (self, rhs) {
            (Num::Int(a), Num::Int(b)) => floor_rem(a, b).map(Num::Int),
            (a, b) => {
                let (x, y) = (a.as_f64(), b.as_f64());
                if y == 0.0 {
                    return Err(NumError::DivisionByZero);
                }
                dec(x - y * (x / y).floor())
            }
        }
    }

    /// `**`: integer powers stay integers; negative or decimal exponents give
    /// decimals.
    pub(crate) fn pow(self, rhs: Num) -> NumResult {
        match (self, rhs) {
            (Num::Int(base), Num::Int(exp)) if exp >= 0 => int_pow(base, exp).map(Num::Int),
            (base, exp) => {
                let (b, e) = (base.as_f64(), exp.as_f64());
                if b == 0.0 && e < 0.0 {
                    return Err(NumError::DivisionByZero);
                }
                dec(b.powf(e))
            }
        }
    }

    pub(crate) fn neg(self) -> NumResult {
        match self {
            Num::Int(a) => a.checked_neg().map(Num::Int).ok_or(NumError::Overflow),
            Num::Dec(d) => dec(-d),
        }
    }

    pub(crate) fn abs(self) -> NumResult {
        match self {
            Num::Int(a) => a.checked_abs().map(Num::Int).ok_or(NumError::Overflow),
            Num::Dec(d) => dec(d.abs()),
        }
    }

    pub(crate) fn floor(self) -> NumResult {
        self.rounded(f64::floor)
    }

    pub(crate) fn ceil(self) -> NumResult {
        self.rounded(f64::ceil)
    }

    /// Rounds half away from zero (2.5 -> 3, -2.5 -> -3).
    pub(crate) fn round(self) -> NumResult {
        self.rounded(f64::round)
    }

    fn rounded(self, f: fn(f64) -> f64) -> NumResult {
        match self {
            Num::Int(a) => Ok(Num::Int(a)),
            Num::Dec(d) => float_to_int(f(d)).map(Num::Int),
        }
    }
}

fn dec(value: f64) -> NumResult {
    if value.is_nan() {
        Err(NumError::NotReal)
    } else if value.is_infinite() {
        Err(NumError::Overflow)
    } else {
        Ok(Num::Dec(value))
    }
}

#[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
fn float_to_int(value: f64) -> Result<i64, NumError> {
    // i64::MAX is not representable as f64; 2^63 is the first value out of range.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if value.is_nan() {
        Err(NumError::NotReal)
    } else if !(-LIMIT..LIMIT).contains(&value) {
        Err(NumError::Overflow)
    } else {
        Ok(value as i64)
    }
}

pub(crate) fn floor_div(a: i64, b: i64) -> Result<i64, NumError> {
    if b == 0 {
        return Err(NumError::DivisionByZero);
    }
    let q = a.checked_div(b).ok_or(NumError::Overflow)?;
    let r = a.checked_rem(b).ok_or(NumError::Overflow)?;
    if r != 0 && ((r < 0) != (b < 0)) {
        q.checked_sub(1).ok_or(NumError::Overflow)
    } else {
        Ok(q)
    }
}

pub(crate) fn floor_rem(a: i64, b: i64) -> Result<i64, NumError> {
    if b == 0 {
        return Err(NumError::DivisionByZero);
    }
    // i64::MIN % -1 overflows in hardware; the mathematical answer is 0.
    let r = a.checked_rem(b).unwrap_or(0);
    if r != 0 && ((r < 0) != (b < 0)) {
        r.checked_add(b).ok_or(NumError::Overflow)
    } else {
        Ok(r)
    }
}

pub(crate) fn int_pow(base: i64, exp: i64) -> Result<i64, NumError> {
    match base {
        0 => Ok(if exp == 0 { 1 } else { 0 }),
        1 => Ok(1),
        -1 => Ok(if exp % 2 == 0 { 1 } else { -1 }),
        _ => {
            let e = u32::try_from(exp).map_err(|_| NumError::Overflow)?;
            base.checked_pow(e).ok_or(NumError::Overflow)
        }
    }
}

impl fmt::Display for Num {
    /// Integers print as-is; decimals print with at most four decimal places
    /// and no trailing zeros, so `0.1 + 0.2` shows as `0.3`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Num::Int(i) => write!(f, "{i}"),
            Num::Dec(d) => {
                let s = format!("{d:.4}");
                let s = s.trim_end_matches('0').trim_end_matches('.');
                if s == "-0" {
                    f.write_str("0")
                } else {
                    f.write_str(s)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn division_floors_like_feyre() {
        assert_eq!(floor_div(7, 2), Ok(3));
        assert_eq!(floor_div(-7, 2), Ok(-4));
        assert_eq!(floor_div(7, -2), Ok(-4));
        assert_eq!(floor_div(-7, -2), Ok(3));
        assert_eq!(floor_div(1, 0), Err(NumError::DivisionByZero));
        assert_eq!(floor_div(i64::MIN, -1), Err(NumError::Overflow));
    }

    #[test]
    fn remainder_takes_the_divisor_sign() {
        assert_eq!(floor_rem(-1, 6), Ok(5));
        assert_eq!(floor_rem(7, -3), Ok(-2));
        assert_eq!(floor_rem(i64::MIN, -1), Ok(0));
        assert_eq!(floor_rem(3, 0), Err(NumError::DivisionByZero));
    }

    #[test]
    fn powers() {
        assert_eq!(int_pow(2, 10), Ok(1024));
        assert_eq!(int_pow(-1, 7), Ok(-1));
        assert_eq!(int_pow(2, 64), Err(NumError::Overflow));
        assert_eq!(int_pow(0, i64::MAX), Ok(0));
        assert_eq!(Num::Int(2).pow(Num::Int(-1)), Ok(Num::Dec(0.5)));
        assert_eq!(Num::Int(0).pow(Num::Int(-1)), Err(NumError::DivisionByZero));
        assert_eq!(Num::Int(-8).pow(Num::Dec(0.5)), Err(NumError::NotReal));
    }

    #[test]
    fn decimals_print_short() {
        assert_eq!(Num::Dec(0.1 + 0.2).to_string(), "0.3");
        assert_eq!(Num::Dec(2.5).to_string(), "2.5");
        assert_eq!(Num::Dec(3.0).to_string(), "3");
        assert_eq!(Num::Dec(-0.00001).to_string(), "0");
        assert_eq!(Num::Int(-4).to_string(), "-4");
    }

    #[test]
    fn rounding_to_integers() {
        assert_eq!(Num::Dec(2.5).round(), Ok(Num::Int(3)));
        assert_eq!(Num::Dec(-2.5).round(), Ok(Num::Int(-3)));
        assert_eq!(Num::Dec(2.1).ceil(), Ok(Num::Int(3)));
        assert_eq!(Num::Dec(-2.1).floor(), Ok(Num::Int(-3)));
        assert_eq!(Num::Dec(1e300).floor(), Err(NumError::Overflow));
        assert_eq!(Num::Dec(3.0).as_int(), Some(3));
        assert_eq!(Num::Dec(3.5).as_int(), None);
    }
}
