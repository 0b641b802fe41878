//! One pass from text to rendered roll for the everyday shapes.
//!
//! Most rolls people type are a sum of plain pools and numbers: `1d20+5`,
//! `2d20kh1+3`, `4d6kh3`, `1d8+1d6+2`, `3d6*2`. For those, [`crate::roll_plain`]
//! reads the input once, rolls each pool as it meets it and writes the text
//! straight into the caller's buffer: no syntax tree, no allocation. Anything
//! else (spaces, brackets, other modifiers, aliases, flags, errors) goes
//! through [`crate::parse`] and [`crate::Program::roll_plain`].
//!
//! The contract is exact equivalence with that general path: the same
//! random numbers drawn in the same order, byte for byte the same text, the
//! same [`Summary`]. The shape is checked completely, and every limit and
//! every possible overflow ruled out, *before* the first die is rolled, so
//! the fast path never has to give up half way. `tests/fast_path.rs` holds
//! it to that on generated inputs.

use crate::limits::{MAX_DICE, MAX_INPUT_LEN, MAX_ROLLS, MAX_SIDES};
use crate::num::Num;
use crate::render::push_int;
use crate::rng::Rng;
use crate::stream::Summary;

/// Most terms (numbers and pools) the fast path takes in one input.
const MAX_TERMS: usize = 8;
/// Most dice in a pool with keep (kept in a stack buffer).
const MAX_KEEP_POOL: usize = 64;
/// Most digits in a literal the fast path takes (so reading one cannot
/// overflow); longer numbers go to the parser and its errors.
const MAX_DIGITS: usize = 9;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    All,
    Highest(usize),
    Lowest(usize),
}

#[derive(Debug, Clone, Copy)]
enum Term {
    Num(i64),
    /// Dice; `notation` is the byte range of the term in the input.
    Dice {
        count: usize,
        sides: i64,
        keep: Keep,
        start: usize,
        end: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Sub,
    Mul,
}

/// A checked shape: an optional leading minus, then terms joined by ops.
struct Shape {
    negate: bool,
    terms: [Term; MAX_TERMS],
    /// `ops[i]` joins `terms[i]` and `terms[i + 1]`.
    ops: [Op; MAX_TERMS],
    len: usize,
}

fn digits(b: &[u8], mut i: usize) -> Option<(i64, usize)> {
    let start = i;
    let mut n: i64 = 0;
    while let Some(&c) = b.get(i) {
        if !c.is_ascii_digit() {
            break;
        }
        if i - start >= MAX_DIGITS {
            return None;
        }
        n = n * 10 + i64::from(c - b'0');
        i += 1;
    }
    (i > start).then_some((n, i))
}

impl Shape {
    fn new() -> Self {
        Shape {
            negate: false,
            terms: [Term::Num(0); MAX_TERMS],
            ops: [Op::Add; MAX_TERMS],
            len: 0,
        }
    }
}

#[cfg(test)]
fn shape(src: &str) -> Option<Shape> {
    let mut s = Shape::new();
    read_shape(src, &mut s).map(|()| s)
}

/// Reads the whole input as a fast shape into `s`, or says no. Pure:
/// nothing is rolled here.
fn read_shape(src: &str, s: &mut Shape) -> Option<()> {
    let b = src.as_bytes();
    if b.is_empty() || b.len() > MAX_INPUT_LEN {
        return None;
    }
    let mut i = 0;
    if b.first() == Some(&b'-') {
        // `-d6` at the start is disadvantage; only `-<digit>` is a sign here.
        if !b.get(1).is_some_and(u8::is_ascii_digit) {
            return None;
        }
        s.negate = true;
        i = 1;
    }
    let mut dice_total: usize = 0;
    loop {
        let start = i;
        let (count, after) = match digits(b, i) {
            Some((n, j)) => (Some(n), j),
            None => (None, i),
        };
        i = after;
        let term = if b.get(i) == Some(&b'd') {
            i += 1;
            let (sides, j) = digits(b, i)?;
            i = j;
            let count = count.unwrap_or(1);
            if !(1..=MAX_DICE).contains(&count) || !(2..=MAX_SIDES).contains(&sides) {
                return None;
            }
            let count = usize::try_from(count).ok()?;
            let mut keep = Keep::All;
            if b.get(i) == Some(&b'k') {
                let (high, j) = match b.get(i + 1) {
                    Some(b'h') => (true, i + 2),
                    Some(b'l') => (false, i + 2),
                    _ => (true, i + 1),
                };
                let (n, j) = digits(b, j)?;
                let n = usize::try_from(n).ok()?;
                if n == 0 || n > count || count > MAX_KEEP_POOL {
                    return None;
                }
                keep = if high {
                    Keep::Highest(n)
                } else {
                    Keep::Lowest(n)
                };
                i = j;
            }
            dice_total += count;
            Term::Dice {
                count,
                sides,
                keep,
                start,
                end: i,
            }
        } else {
            Term::Num(count?)
        };
        let slot = s.terms.get_mut(s.len)?;
        *slot = term;
        s.len += 1;
        match b.get(i) {
            None => break,
            Some(&c) => {
                let op = match c {
                    b'+' => Op::Add,
                    b'-' => Op::Sub,
                    b'*' if b.get(i + 1) != Some(&b'*') => Op::Mul,
                    _ => return None,
                };
                *s.ops.get_mut(s.len - 1)? = op;
                i += 1;
                // The next term must start with a digit or `d<digit>`.
                match b.get(i) {
                    Some(c) if c.is_ascii_digit() => {}
                    Some(b'd') if b.get(i + 1).is_some_and(u8::is_ascii_digit) => {}
                    _ => return None,
                }
            }
        }
    }
    if dice_total > MAX_ROLLS || !fits(s) {
        return None;
    }
    Some(())
}

/// Whether no intermediate value can leave `i64`: bounds every term by its
/// largest absolute value and evaluates the bounds like the expression.
fn fits(s: &Shape) -> bool {
    let bound = |t: &Term| -> u128 {
        match *t {
            Term::Num(n) => u128::from(n.unsigned_abs()),
            Term::Dice { count, sides, .. } => {
                (count as u128).saturating_mul(u128::from(sides.unsigned_abs()))
            }
        }
    };
    let limit = i64::MAX as u128;
    let mut sum: u128 = 0;
    let mut product: u128 = 0;
    for (k, t) in s.terms.iter().take(s.len).enumerate() {
        let v = bound(t);
        let joined_by_mul = k > 0 && s.ops.get(k - 1) == Some(&Op::Mul);
        if joined_by_mul {
            product = product.saturating_mul(v);
        } else {
            sum = sum.saturating_add(product);
            product = v;
        }
        if product > limit || sum > limit {
            return false;
        }
    }
    sum.saturating_add(product) <= limit
}

/// Rolls a checked shape, writing what `Program::roll_plain` writes.
fn roll(src: &str, s: &Shape, rng: &mut Rng, out: &mut String) -> Summary {
    // Crit die: the first d20 pool's first kept die; without one, the first
    // pool that keeps a single die (see `eval::Scan`).
    let mut natural: Option<i64> = None;
    let mut single: Option<(i64, i64)> = None;
    let mut sum: i64 = 0;
    let mut product: i64 = 0;
    if s.negate {
        out.push('-');
    }
    for (k, term) in s.terms.iter().take(s.len).enumerate() {
        let op = if k == 0 {
            None
        } else {
            s.ops.get(k - 1).copied()
        };
        match op {
            None => {}
            Some(Op::Add) => out.push_str(" + "),
            Some(Op::Sub) => out.push_str(" - "),
            Some(Op::Mul) => out.push_str(" * "),
        }
        let value = match *term {
            Term::Num(n) => {
                push_int(out, n);
                n
            }
            Term::Dice {
                count,
                sides,
                keep,
                start,
                end,
            } => {
                out.push_str(src.get(start..end).unwrap_or_default());
                out.push_str(" (");
                let (value, first_kept, kept) = roll_pool(count, sides, keep, rng, out);
                out.push(')');
                if single.is_none() && kept == 1 {
                    single = Some((first_kept, sides));
                }
                if natural.is_none() && sides == 20 {
                    natural = Some(first_kept);
                }
                value
            }
        };
        let value = if k == 0 && s.negate { -value } else { value };
        // `fits` ruled out overflow; wrapping keeps this panic-free anyway.
        match op {
            Some(Op::Mul) => product = product.wrapping_mul(value),
            Some(Op::Sub) => {
                sum = sum.wrapping_add(product);
                product = value.wrapping_neg();
            }
            None | Some(Op::Add) => {
                sum = sum.wrapping_add(product);
                product = value;
            }
        }
    }
    let total = sum.wrapping_add(product);
    out.push_str(" = ");
    push_int(out, total);
    let (critical, fumble) = match natural {
        Some(face) => (face == 20, face == 1),
        None => single.map_or((false, false), |(face, max)| (face == max, face == 1)),
    };
    if critical {
        out.push_str(" (critical)");
    } else if fumble {
        out.push_str(" (fumble)");
    }
    Summary {
        total: Num::Int(total),
        check: None,
        critical,
        fumble,
        results: 1,
        totals: Vec::new(),
        flags: Vec::new(),
        grand_total: None,
    }
}

/// Rolls one pool and writes its dice; returns the kept sum, the first
/// kept die and how many are kept.
fn roll_pool(
    count: usize,
    sides: i64,
    keep: Keep,
    rng: &mut Rng,
    out: &mut String,
) -> (i64, i64, usize) {
    if keep == Keep::All {
        let mut sum = 0;
        let mut first = 0;
        for i in 0..count {
            let face = rng.range_inclusive(1, sides);
            if i == 0 {
                first = face;
            } else {
                out.push_str(", ");
            }
            push_int(out, face);
            sum += face;
        }
        return (sum, first, count);
    }
    let mut faces = [0i64; MAX_KEEP_POOL];
    let rolled = faces.get_mut(..count).unwrap_or_default();
    for f in rolled.iter_mut() {
        *f = rng.range_inclusive(1, sides);
    }
    // Keep the n highest (lowest); among equal faces the earlier die first.
    let (n, highest) = match keep {
        Keep::Highest(n) => (n, true),
        Keep::Lowest(n) => (n, false),
        Keep::All => (count, true),
    };
    let mut kept = [false; MAX_KEEP_POOL];
    for _ in 0..n {
        let mut best: Option<usize> = None;
        for (i, &f) in rolled.iter().enumerate() {
            if kept.get(i).copied().unwrap_or(true) {
                continue;
            }
            let better = match best.and_then(|b| rolled.get(b)) {
                None => true,
                Some(&bf) => {
                    if highest {
                        f > bf
                    } else {
                        f < bf
                    }
                }
            };
            if better {
                best = Some(i);
            }
        }
        if let Some(slot) = best.and_then(|b| kept.get_mut(b)) {
            *slot = true;
        }
    }
    let mut sum = 0;
    let mut first = None;
    for (i, &f) in rolled.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        if kept.get(i).copied().unwrap_or(false) {
            push_int(out, f);
            sum += f;
            first.get_or_insert(f);
        } else {
            out.push('~');
            push_int(out, f);
            out.push('~');
        }
    }
    (sum, first.unwrap_or(0), n)
}

/// The fast path, if the input has a fast shape.
pub(crate) fn try_roll_plain(src: &str, rng: &mut Rng, out: &mut String) -> Option<Summary> {
    let mut s = Shape::new();
    read_shape(src, &mut s)?;
    Some(roll(src, &s, rng, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everyday_shapes_take_the_fast_path() {
        for input in [
            "1d20+5",
            "d20",
            "2d20kh1+3",
            "2d20kl1",
            "4d6kh3",
            "4d6k3",
            "1d8+1d6+2",
            "3d6*2",
            "-1d4+7",
            "1d12+3d6",
            "10d10",
            "1d100+99999",
            "2*3-4*5",
            "-5",
        ] {
            assert!(shape(input).is_some(), "{input}");
        }
    }

    #[test]
    fn everything_else_is_parsed() {
        for input in [
            "",
            " 1d20",
            "1d20 ",
            "-d6",
            "+d6",
            "1D20",
            "1d20+",
            "1d20++5",
            "2d6kh0",
            "2d6kh3",
            "65d6kh1",
            "1d1",
            "0d6",
            "10001d6",
            "1d20e",
            "1d20!",
            "(1d4+1)*2",
            "1d6 [fire]",
            "1.5",
            "2**3",
            "1d20;1d4",
            "6 4d6",
            "1234567890",
            "1d1000001",
            "20001d2",
            "999999999*999999999*999999999",
        ] {
            assert!(shape(input).is_none(), "{input}");
        }
    }
}
