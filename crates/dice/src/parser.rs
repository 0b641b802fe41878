//! Hand-written recursive-descent parser.
//!
//! Why by hand: the union grammar is context-sensitive in ways a generated
//! parser handles badly. `d` is "dice" after a number but "drop lowest"
//! directly after a dice term; `t` is "success target" on a pool but "then"
//! after a comparison; `>` attached to a dice pool counts successes but
//! compares totals elsewhere; a word after a space may be a Dice Maiden
//! modifier (`4d6 k3`) or a free-text comment (`1d20 to hit`). The rules are
//! listed in GRAMMAR.md; each is a small local decision here.
//!
//! The parser works on bytes (all syntax is ASCII) and only decodes UTF-8 to
//! report an unexpected character or to copy labels and comments. Typographic
//! operators (`−`, `–`, `—`, `×`) before an operand are read as ASCII ones
//! first ([`read_typography`]); labels and comments are copied from the input
//! as typed. Every index goes through `get`, so no input can make it panic.

use crate::ast::{
    BinaryOp, CompareOp, Cond, Count, DiceSpec, Explode, ExplodeMode, Expr, ExprKind, Flags, Func,
    GroupSpec, Mods, Reroll, RerollMode, Rewrite, RollSpec, SelectStep, Selector, SetSpec,
    SidesSpec, SortOrder, Span, System, UnaryOp,
};
use crate::error::{DiceError, ErrorKind};
use crate::limits::{MAX_DEPTH, MAX_DICE, MAX_INPUT_LEN, MAX_PARTS, MAX_REPEAT, MAX_SIDES};
use crate::num::Num;
use crate::systems;
use std::sync::Arc;

type PResult<T> = Result<T, DiceError>;

const EXPECT_ATOM: &str = "a number, dice like `1d20`, or `(`";

/// What a modifier chain is attached to; sets and groups accept fewer
/// modifiers than dice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PoolKind {
    Dice,
    Set,
    Group,
}

/// A single lexed modifier, before it is merged into [`Mods`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Modifier {
    Keep(Selector),
    Drop(Selector),
    Reroll(RerollMode, Cond),
    Explode(ExplodeMode, Cond),
    Implode(Cond),
    Min(i64),
    Max(i64),
    Sort(SortOrder),
    Success(Cond),
    Double(Cond),
    Failure(Cond),
    Botch(Cond),
}

impl Modifier {
    fn family(self) -> u8 {
        match self {
            Modifier::Keep(_) => 1,
            Modifier::Drop(_) => 2,
            _ => 0,
        }
    }
}

/// Result of the whole parse: everything [`crate::Program`] needs.
pub(crate) struct Parsed {
    pub flags: Flags,
    pub rolls: Vec<RollSpec>,
    /// The input as read, when typographic operators were read as ASCII ones
    /// ([`ascii_operator`]); offsets in `rolls` and errors are into it.
    pub read: Option<String>,
}

/// The ASCII operator a typographic one is read as: the minus sign `−`
/// (U+2212), the en dash `–` and the em dash `—` as `-`, the multiplication
/// sign `×` as `*`. Word processors and character sheets (D&D Beyond prints
/// `−2`) write them; one after a space would otherwise start a comment.
pub(crate) fn ascii_operator(c: char) -> Option<char> {
    match c {
        '\u{2212}' | '\u{2013}' | '\u{2014}' => Some('-'),
        '\u{00D7}' => Some('*'),
        _ => None,
    }
}

/// Whether an operand starts in `rest`, after any whitespace: a number, a
/// bracket, or dice (`d20`). A typographic dash before anything else (`1d20 —
/// fire`) is text, as a dash in a comment is.
fn operand_follows(rest: &str) -> bool {
    let rest = rest.trim_start_matches([' ', '\t', '\n', '\r']);
    let mut chars = rest.chars();
    match chars.next() {
        Some(c) if c.is_ascii_digit() || matches!(c, '.' | '(' | '{') => true,
        Some('d' | 'D') => chars
            .next()
            .is_some_and(|c| c.is_ascii_digit() || matches!(c, '%' | 'f' | 'F' | '(')),
        _ => false,
    }
}

/// `src` with its typographic operators that come before an operand replaced by
/// ASCII ones, and for each byte of that text (and its end) the offset of the
/// byte of `src` it was read from; `None` when there is nothing to replace. One
/// character stays one character, so columns are the same in both.
fn read_typography(src: &str) -> Option<(String, Vec<usize>)> {
    if !src.chars().any(|c| ascii_operator(c).is_some()) {
        return None;
    }
    let mut text = String::with_capacity(src.len());
    let mut from = Vec::with_capacity(src.len() + 1);
    for (i, c) in src.char_indices() {
        let after = src.get(i + c.len_utf8()..).unwrap_or_default();
        match ascii_operator(c).filter(|_| operand_follows(after)) {
            Some(ascii) => {
                text.push(ascii);
                from.push(i);
            }
            None => {
                text.push(c);
                from.extend(i..i + c.len_utf8());
            }
        }
    }
    from.push(src.len());
    Some((text, from))
}

pub(crate) fn parse_program(src: &str) -> PResult<Parsed> {
    if src.len() > MAX_INPUT_LEN {
        return Err(DiceError::new(
            ErrorKind::InputTooLong {
                length: src.len(),
                max: MAX_INPUT_LEN,
            },
            src,
            MAX_INPUT_LEN,
        ));
    }
    let typography = read_typography(src);
    let (read, from) = match &typography {
        Some((read, from)) => (read.as_str(), Some(from.as_slice())),
        None => (src, None),
    };
    let mut p = Parser::new(read, src, from);
    let flags = p.parse_flags();
    let mut rolls = Vec::new();
    loop {
        p.skip_ws();
        match p.peek() {
            None => break,
            Some(b';') => {
                p.pos += 1;
                continue;
            }
            Some(_) => {}
        }
        if rolls.len() >= MAX_PARTS {
            return Err(p.error(ErrorKind::TooManyParts { max: MAX_PARTS }, p.pos));
        }
        rolls.push(p.parse_roll()?);
    }
    if rolls.is_empty() {
        return Err(p.error(ErrorKind::Empty, read.len()));
    }
    Ok(Parsed {
        flags,
        rolls,
        read: typography.map(|(read, _)| read),
    })
}

struct Parser<'a> {
    /// The input as read ([`read_typography`]).
    src: &'a str,
    /// The input as typed: labels, comments and the text of each roll are
    /// copied from it.
    typed: &'a str,
    /// For each byte of `src`, the byte of `typed` it was read from (`None`:
    /// the same).
    from: Option<&'a [usize]>,
    b: &'a [u8],
    pos: usize,
    /// Exclusive end; lower than `src.len()` when re-parsing a bracketed
    /// label candidate.
    end: usize,
    depth: usize,
    /// Where the current roll's expression starts (for `+d20` / `-d20`).
    expr_start: usize,
    /// The target a Cypher difficulty (`cs4`) set for the current roll, and
    /// where the difficulty was written.
    cypher_target: Option<(i64, Span)>,
    /// The `adv` / `dis` / `eadv` words read between an operand and its operator
    /// (`1d20 dis +5`): which, where the word is, and the text it takes up with
    /// the space before it.
    mode_words: Vec<(Mode, usize, Span)>,
    /// The `1d20` that `adv + 4` rolls: the first operand of the roll.
    implied: Option<Expr>,
}

fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r')
}

fn lower(c: Option<u8>) -> Option<u8> {
    c.map(|c| c.to_ascii_lowercase())
}

impl<'a> Parser<'a> {
    fn new(src: &'a str, typed: &'a str, from: Option<&'a [usize]>) -> Self {
        Parser {
            src,
            typed,
            from,
            b: src.as_bytes(),
            pos: 0,
            end: src.len(),
            depth: 0,
            expr_start: 0,
            cypher_target: None,
            mode_words: Vec::new(),
            implied: None,
        }
    }

    // ---- low-level helpers -------------------------------------------------

    fn peek(&self) -> Option<u8> {
        self.peek_at(0)
    }

    fn peek_at(&self, k: usize) -> Option<u8> {
        let i = self.pos.checked_add(k)?;
        if i < self.end {
            self.b.get(i).copied()
        } else {
            None
        }
    }

    fn peek_lower(&self, k: usize) -> Option<u8> {
        lower(self.peek_at(k))
    }

    fn is_digit_at(&self, k: usize) -> bool {
        self.peek_at(k).is_some_and(|c| c.is_ascii_digit())
    }

    fn is_letter_at(&self, k: usize) -> bool {
        self.peek_at(k).is_some_and(|c| c.is_ascii_alphabetic())
    }

    /// Skips whitespace; returns whether any was skipped.
    fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(is_ws) {
            self.pos += 1;
        }
        self.pos > start
    }

    /// Whether the text at the cursor starts with `word` (ASCII, any case).
    fn starts_with_ci(&self, word: &str) -> bool {
        word.bytes()
            .enumerate()
            .all(|(k, w)| self.peek_lower(k) == Some(w))
    }

    /// `word` at the cursor, not followed by another letter.
    fn word_ci(&self, word: &str) -> bool {
        self.starts_with_ci(word) && !self.is_letter_at(word.len())
    }

    /// `adv` / `advantage`, `dis` / `disadvantage` or `eadv` at the cursor,
    /// with its length.
    fn mode_word_at(&self) -> Option<(Mode, usize)> {
        ["advantage", "adv", "disadvantage", "dis", "eadv"]
            .into_iter()
            .find(|w| self.word_ci(w))
            .and_then(|w| Some((Mode::of_word(w)?, w.len())))
    }

    /// Whether a binary operator, a comparison or `then` is at the cursor.
    fn starts_operator(&self) -> bool {
        match self.peek() {
            Some(b'+' | b'-' | b'*' | b'/' | b'%' | b'<' | b'>' | b'=') => true,
            Some(b'!') => self.peek_at(1) == Some(b'='),
            _ => {
                self.word_ci("plus")
                    || self.word_ci("minus")
                    || self.word_ci("times")
                    || self.then_op().is_some()
            }
        }
    }

    /// Skips whitespace before a possible operator, and with it an `adv` /
    /// `dis` written between the operand and the operator (`1d20 dis +5`,
    /// `1d20+5 adv >= 15`), outside brackets: the word applies to the whole
    /// roll, and the expression goes on.
    fn skip_ws_to_operator(&mut self) {
        let before = self.pos;
        if !self.skip_ws() || self.depth > 0 {
            return;
        }
        let Some((mode, len)) = self.mode_word_at() else {
            return;
        };
        let at = self.pos;
        self.pos += len;
        self.skip_ws();
        if self.starts_operator() {
            // Once, should this stretch be read again.
            if !self.mode_words.iter().any(|&(_, seen, _)| seen == at) {
                self.mode_words
                    .push((mode, at, Span::new(before, at + len)));
            }
        } else {
            self.pos = at;
        }
    }

    /// The run of ASCII letters at the cursor, lowercased.
    fn letters(&self) -> String {
        let mut s = String::new();
        let mut k = 0;
        while let Some(c) = self.peek_at(k) {
            if !c.is_ascii_alphabetic() || s.len() >= 24 {
                break;
            }
            s.push(char::from(c.to_ascii_lowercase()));
            k += 1;
        }
        s
    }

    /// The text between two offsets, as typed.
    fn slice(&self, start: usize, end: usize) -> &'a str {
        match self.from {
            None => self.src.get(start..end).unwrap_or(""),
            Some(from) => match (from.get(start), from.get(end)) {
                (Some(&start), Some(&end)) => self.typed.get(start..end).unwrap_or(""),
                _ => "",
            },
        }
    }

    fn error(&self, kind: ErrorKind, offset: usize) -> DiceError {
        DiceError::new(kind, self.src, offset)
    }

    /// "unexpected X" at the cursor, or "ends too early" at the end.
    fn unexpected(&self, expected: &'static str) -> DiceError {
        let Some(c) = self.peek() else {
            return self.error(ErrorKind::UnexpectedEnd { expected }, self.pos);
        };
        let found = if c.is_ascii_alphabetic() {
            let word: String = self
                .src
                .get(self.pos..self.end)
                .unwrap_or("")
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .take(16)
                .collect();
            word
        } else {
            self.src
                .get(self.pos..)
                .and_then(|s| s.chars().next())
                .map_or_else(|| "?".to_owned(), String::from)
        };
        self.error(ErrorKind::Unexpected { found, expected }, self.pos)
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(ErrorKind::TooDeep { max: MAX_DEPTH }, self.pos));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    /// Unsigned integer literal, if there is one at the cursor.
    fn uint(&mut self) -> PResult<Option<i64>> {
        let start = self.pos;
        let mut value: i64 = 0;
        while let Some(c) = self.peek().filter(u8::is_ascii_digit) {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(i64::from(c - b'0')))
                .ok_or_else(|| self.error(ErrorKind::NumberTooLarge, start))?;
            self.pos += 1;
        }
        Ok((self.pos > start).then_some(value))
    }

    /// Integer with an optional minus sign (for compare points on Fate dice).
    fn signed_int(&mut self) -> PResult<Option<i64>> {
        if self.peek() == Some(b'-') && self.is_digit_at(1) {
            self.pos += 1;
            let v = self.uint()?.unwrap_or(0);
            return Ok(Some(-v));
        }
        self.uint()
    }

    // ---- top level -----------------------------------------------------------

    /// Dice Maiden's leading flags: `p`, `s`, `nr`, `ul`, each followed by a
    /// space.
    fn parse_flags(&mut self) -> Flags {
        let mut flags = Flags::default();
        loop {
            self.skip_ws();
            let word = self.letters();
            let after = self.peek_at(word.len());
            if !after.is_some_and(is_ws) {
                break;
            }
            match word.as_str() {
                "p" => flags.private = true,
                "s" => flags.simple = true,
                "nr" => flags.no_results = true,
                "ul" => flags.unsorted = true,
                _ => break,
            }
            self.pos += word.len();
        }
        flags
    }

    fn parse_roll(&mut self) -> PResult<RollSpec> {
        let start = self.pos;
        let mut repeat: Option<(i64, usize)> = None;

        // Dice Maiden repeat: `6 4d6` (a number, a space, then a roll).
        if self.is_digit_at(0) {
            let save = self.pos;
            let n = self.uint()?;
            if let Some(n) = n
                && self.skip_ws()
                && self.starts_atom()
            {
                repeat = Some((n, save));
            } else {
                self.pos = save;
            }
        }

        let label = self.try_label()?;

        // Leading words: `adv`, `dis`, `eadv`, `wng`.
        let mut modes = Modes::default();
        let mut wng: Option<usize> = None;
        loop {
            self.skip_ws();
            let word = self.letters();
            if !self.peek_at(word.len()).is_some_and(is_ws) {
                break;
            }
            match Mode::of_word(&word) {
                Some(mode) => modes.add(mode, self.pos),
                None if word == "wng" => wng = Some(self.pos),
                None => break,
            }
            self.pos += word.len();
        }

        self.skip_ws();
        self.expr_start = self.pos;
        self.cypher_target = None;
        self.mode_words.clear();
        let mut expr = self.parse_then()?;
        // `adv + 4`: after `adv` / `dis`, a roll that starts with a sign and
        // has no d20 of its own is rolled on 1d20, as `adv 1d20 + 4`.
        let expr_at = self.expr_start;
        let mut implied_at = None;
        if modes.any()
            && matches!(self.b.get(expr_at), Some(b'+' | b'-'))
            && apply_advantage(&mut expr.clone(), 2, true).is_none()
        {
            self.pos = expr_at;
            self.cypher_target = None;
            self.mode_words.clear();
            let d20 = plain_dice(1, 20, "1d20");
            let at = Span::new(expr_at, expr_at);
            self.implied = Some(Expr::new(ExprKind::Dice(Box::new(d20)), at));
            implied_at = Some(expr_at);
            expr = self.parse_then()?;
        }
        let mut rewrites = Vec::new();
        for (mode, at, span) in std::mem::take(&mut self.mode_words) {
            modes.add(mode, at);
            rewrites.push(Rewrite {
                span,
                text: Arc::from(""),
                check_only: false,
            });
        }
        // A Cypher difficulty: its digits, the target and where the check ends.
        let mut cypher = None;
        if let Some((target, digits)) = self.cypher_target.take() {
            let at = digits.start;
            if matches!(expr.kind, ExprKind::Compare(..) | ExprKind::Then(..)) {
                return Err(self.error(
                    ErrorKind::AliasNeedsDice {
                        alias: "cs",
                        needs: "no comparison of its own: the difficulty sets the target",
                    },
                    at,
                ));
            }
            let span = Span::new(expr.span.start, expr.span.end.max(self.pos));
            cypher = Some((target, digits, span.end));
            let target = Expr::new(ExprKind::Num(Num::Int(target)), Span::new(at, at));
            expr = Expr::new(
                ExprKind::Compare(CompareOp::Ge, at, Box::new(expr), Box::new(target)),
                span,
            );
        }

        // What may follow a complete expression.
        let mut comment = None;
        loop {
            let had_ws = self.skip_ws();
            let Some(c) = self.peek() else { break };
            if c == b';' {
                break;
            }
            let at = self.pos;
            if (c == b'c' || c == b'C') && self.is_digit_at(1) {
                let save = self.pos;
                self.pos += 1;
                let n = self.uint()?.unwrap_or(0);
                if self.peek().is_none_or(|c| is_ws(c) || c == b';') {
                    if repeat.is_some() {
                        return Err(self.error(ErrorKind::RepeatTwice, at));
                    }
                    repeat = Some((n, at));
                    continue;
                }
                self.pos = save;
            }
            if had_ws {
                let word = self.letters();
                let boundary = !self.is_letter_at(word.len());
                if boundary && let Some(mode) = Mode::of_word(&word) {
                    modes.add(mode, at);
                    self.pos += word.len();
                    self.no_operator_after_word()?;
                    continue;
                }
            }
            if had_ws {
                // Free-text comment (Avrae), or `! comment` (Dice Maiden).
                let mut text_start = self.pos;
                if c == b'!' || c == b'#' {
                    text_start += 1;
                }
                let mut end = text_start;
                while end < self.end && self.b.get(end) != Some(&b';') {
                    end += 1;
                }
                let text = self.slice(text_start, end).trim();
                if !text.is_empty() {
                    comment = Some(text.to_owned());
                }
                self.pos = end;
                break;
            }
            return Err(self.unexpected("an operator like `+`, or a space before a comment"));
        }

        if let Some(at) = modes.cancelled() {
            // Both: they cancel out (as the game's rules and Avrae have it), and the
            // d20 is rolled once; the roll must still have one.
            if apply_advantage(&mut expr.clone(), 2, true).is_none() {
                return Err(self.error(ErrorKind::NoD20ForAdvantage, at));
            }
            if let Some(at) = implied_at {
                rewrites.push(Rewrite {
                    span: Span::new(at, at),
                    text: Arc::from("1d20 "),
                    check_only: false,
                });
            }
        } else if let Some((count, high, at)) = modes.one() {
            let Some(done) = apply_advantage(&mut expr, count, high) else {
                return Err(self.error(ErrorKind::NoD20ForAdvantage, at));
            };
            if implied_at == Some(done.start) {
                rewrites.push(Rewrite {
                    span: Span::new(done.start, done.start),
                    text: Arc::from(format!("{} ", done.now)),
                    check_only: false,
                });
            } else if let Some(rewrite) = done.in_source(self.src) {
                rewrites.push(rewrite);
            } else {
                // An alias (`cs`): its word reads as the dice; a difficulty's
                // digits become the check's target (`adv cs3` reads
                // `2d20kh1 >= 9`, its statistics `2d20kh1`).
                rewrites.push(Rewrite {
                    span: done.span,
                    text: Arc::clone(&done.now),
                    check_only: false,
                });
                if let Some((target, digits, end)) = cypher {
                    rewrites.push(Rewrite {
                        span: digits,
                        text: Arc::from(""),
                        check_only: false,
                    });
                    rewrites.push(Rewrite {
                        span: Span::new(end, end),
                        text: Arc::from(format!(" >= {target}")),
                        check_only: true,
                    });
                }
            }
        }
        if let Some(at) = wng {
            let Some(done) = apply_wrath(&mut expr) else {
                return Err(self.error(
                    ErrorKind::AliasNeedsDice {
                        alias: "wng",
                        needs: "a pool of d6, like `wng 4d6`",
                    },
                    at,
                ));
            };
            rewrites.extend(done.in_source(self.src));
        }
        rewrites.sort_by_key(|r: &Rewrite| r.span.start);
        let repeat = match repeat {
            None => 1,
            Some((n, at)) => {
                if !(1..=i64::from(MAX_REPEAT)).contains(&n) {
                    return Err(self.error(
                        ErrorKind::BadRepeat {
                            count: n,
                            max: MAX_REPEAT,
                        },
                        at,
                    ));
                }
                u32::try_from(n).unwrap_or(1)
            }
        };
        Ok(RollSpec {
            span: Span::new(start, self.pos),
            text: Arc::from(self.slice(start, self.pos).trim()),
            expr,
            label,
            comment,
            repeat,
            rewrites,
        })
    }

    /// After an `adv` / `dis` that follows the expression: an operator here
    /// would have nothing to apply to (`1d20 > 5 then 1d6 adv + 2`), so it is
    /// an error rather than the start of a comment that drops it.
    fn no_operator_after_word(&mut self) -> PResult<()> {
        let save = self.pos;
        self.skip_ws();
        if self.starts_operator() {
            return Err(self.unexpected(
                "the end of the roll or a comment after `adv` / `dis` here; \
                 write the word first, like `adv 1d20+5`",
            ));
        }
        self.pos = save;
        Ok(())
    }

    /// Whether an expression can start at the cursor (used to recognise the
    /// Dice Maiden repeat count `6 4d6`).
    fn starts_atom(&self) -> bool {
        match self.peek() {
            Some(c) if c.is_ascii_digit() => true,
            Some(b'(' | b'{') => true,
            Some(b'.') => self.is_digit_at(1),
            Some(b'd' | b'D') => {
                matches!(self.peek_lower(1), Some(b'0'..=b'9' | b'%' | b'f' | b'('))
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let w = self.letters();
                matches!(
                    w.as_str(),
                    "floor"
                        | "ceil"
                        | "round"
                        | "abs"
                        | "cpr"
                        | "age"
                        | "cs"
                        | "cypher"
                        | "gen"
                        | "genesys"
                        | "swrpg"
                        | "adv"
                        | "advantage"
                        | "dis"
                        | "disadvantage"
                        | "eadv"
                        | "wng"
                ) || (matches!(w.as_str(), "ex" | "fitd" | "sw" | "sr")
                    && self.is_digit_at(w.len()))
            }
            _ => false,
        }
    }

    /// `(Attack roll) 1d20+5`: a bracketed text before the roll that does not
    /// itself parse as an expression is a label.
    fn try_label(&mut self) -> PResult<Option<String>> {
        self.skip_ws();
        if self.peek() != Some(b'(') {
            return Ok(None);
        }
        let open = self.pos;
        let mut depth = 0usize;
        let mut close = None;
        let mut i = open;
        while i < self.end {
            match self.b.get(i) {
                Some(b'(') => depth += 1,
                Some(b')') => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        close = Some(i);
                        break;
                    }
                }
                Some(b';') => break,
                _ => {}
            }
            i += 1;
        }
        let Some(close) = close else { return Ok(None) };
        let content = self.slice(open + 1, close);
        if !content
            .trim_start()
            .starts_with(|c: char| c.is_ascii_alphabetic())
        {
            return Ok(None);
        }
        // Something must follow the label.
        let mut after = close + 1;
        if !self.b.get(after).copied().is_some_and(is_ws) {
            return Ok(None);
        }
        while after < self.end && self.b.get(after).copied().is_some_and(is_ws) {
            after += 1;
        }
        if after >= self.end || self.b.get(after) == Some(&b';') {
            return Ok(None);
        }
        let mut sub = Parser {
            src: self.src,
            typed: self.typed,
            from: self.from,
            b: self.b,
            pos: open + 1,
            end: close,
            depth: self.depth,
            expr_start: open + 1,
            cypher_target: None,
            mode_words: Vec::new(),
            implied: None,
        };
        let parses = sub.parse_then().is_ok() && {
            sub.skip_ws();
            sub.peek().is_none()
        };
        if parses {
            return Ok(None);
        }
        self.pos = after;
        Ok(Some(content.trim().to_owned()))
    }

    // ---- expressions -----------------------------------------------------------

    fn parse_then(&mut self) -> PResult<Expr> {
        let left = self.parse_cmp()?;
        let save = self.pos;
        self.skip_ws_to_operator();
        if let Some(len) = self.then_op() {
            let at = self.pos;
            self.enter()?;
            self.pos += len;
            self.skip_ws();
            let right = self.parse_then()?;
            self.leave();
            let span = Span::new(left.span.start, right.span.end);
            return Ok(Expr::new(
                ExprKind::Then(at, Box::new(left), Box::new(right)),
                span,
            ));
        }
        self.pos = save;
        Ok(left)
    }

    /// Length of a "then" operator at the cursor: the word `then`, or `t`
    /// followed by something that starts an expression (so `to hit` stays a
    /// comment).
    fn then_op(&self) -> Option<usize> {
        if self.word_ci("then") {
            return Some(4);
        }
        if self.peek_lower(0) != Some(b't') {
            return None;
        }
        match self.peek_at(1) {
            Some(c) if c.is_ascii_digit() || is_ws(c) => Some(1),
            Some(b'(' | b'{' | b'-' | b'+' | b'.') => Some(1),
            Some(b'd' | b'D') => {
                matches!(self.peek_lower(2), Some(b'0'..=b'9' | b'%' | b'f' | b'(')).then_some(1)
            }
            _ => None,
        }
    }

    fn compare_op(&self) -> Option<(CompareOp, usize)> {
        match (self.peek(), self.peek_at(1)) {
            (Some(b'='), Some(b'=')) => Some((CompareOp::Eq, 2)),
            (Some(b'='), _) => Some((CompareOp::Eq, 1)),
            (Some(b'!'), Some(b'=')) => Some((CompareOp::Ne, 2)),
            (Some(b'>'), Some(b'=')) => Some((CompareOp::Ge, 2)),
            (Some(b'<'), Some(b'=')) => Some((CompareOp::Le, 2)),
            (Some(b'>'), _) => Some((CompareOp::Gt, 1)),
            (Some(b'<'), _) => Some((CompareOp::Lt, 1)),
            _ => None,
        }
    }

    fn parse_cmp(&mut self) -> PResult<Expr> {
        let left = self.parse_add()?;
        let save = self.pos;
        self.skip_ws_to_operator();
        let Some((op, len)) = self.compare_op() else {
            self.pos = save;
            return Ok(left);
        };
        let at = self.pos;
        self.pos += len;
        self.skip_ws();
        let right = self.parse_add()?;
        let save = self.pos;
        self.skip_ws();
        if self.compare_op().is_some() {
            return Err(self.error(ErrorKind::ChainedComparison, self.pos));
        }
        self.pos = save;
        let span = Span::new(left.span.start, right.span.end);
        Ok(Expr::new(
            ExprKind::Compare(op, at, Box::new(left), Box::new(right)),
            span,
        ))
    }

    fn parse_add(&mut self) -> PResult<Expr> {
        let mut left = self.parse_mul()?;
        loop {
            let save = self.pos;
            self.skip_ws_to_operator();
            let (op, len) = match self.peek() {
                Some(b'+') => (BinaryOp::Add, 1),
                Some(b'-') => (BinaryOp::Sub, 1),
                _ if self.word_ci("plus") => (BinaryOp::Add, 4),
                _ if self.word_ci("minus") => (BinaryOp::Sub, 5),
                _ => {
                    self.pos = save;
                    return Ok(left);
                }
            };
            left = self.binary_rest(left, op, len, Self::parse_mul)?;
        }
    }

    fn parse_mul(&mut self) -> PResult<Expr> {
        let mut left = self.parse_unary()?;
        loop {
            let save = self.pos;
            self.skip_ws_to_operator();
            let (op, len) = match (self.peek(), self.peek_at(1)) {
                (Some(b'*'), Some(b'*')) => {
                    self.pos = save;
                    return Ok(left);
                }
                (Some(b'*'), _) => (BinaryOp::Mul, 1),
                (Some(b'/'), Some(b'/')) => (BinaryOp::FloorDiv, 2),
                (Some(b'/'), _) => (BinaryOp::Div, 1),
                (Some(b'%'), _) => (BinaryOp::Rem, 1),
                _ if self.word_ci("times") => (BinaryOp::Mul, 5),
                _ => {
                    self.pos = save;
                    return Ok(left);
                }
            };
            left = self.binary_rest(left, op, len, Self::parse_unary)?;
        }
    }

    fn binary_rest(
        &mut self,
        left: Expr,
        op: BinaryOp,
        len: usize,
        next: fn(&mut Self) -> PResult<Expr>,
    ) -> PResult<Expr> {
        let at = self.pos;
        self.pos += len;
        self.skip_ws();
        let right = next(self)?;
        let span = Span::new(left.span.start, right.span.end);
        Ok(Expr::new(
            ExprKind::Binary(op, at, Box::new(left), Box::new(right)),
            span,
        ))
    }

    fn parse_unary(&mut self) -> PResult<Expr> {
        if let Some(implied) = self.implied.take() {
            return Ok(implied);
        }
        self.skip_ws();
        let start = self.pos;
        let op = match self.peek() {
            Some(b'-') => UnaryOp::Neg,
            Some(b'+') => UnaryOp::Pos,
            _ => return self.parse_pow(),
        };
        if start == self.expr_start
            && let Some(alias) = self.advantage_alias(op)
        {
            return self.parse_postfix_of(alias);
        }
        self.enter()?;
        self.pos += 1;
        let operand = self.parse_unary()?;
        self.leave();
        let span = Span::new(start, operand.span.end);
        Ok(Expr::new(ExprKind::Unary(op, Box::new(operand)), span))
    }

    /// Dice Maiden's `+d20` / `-d20` at the start of a roll, for every die
    /// size (`+d6`, `-d12`): roll two, keep the higher / lower. Anywhere
    /// else, or followed by more dice syntax, they are a sign and a die.
    fn advantage_alias(&mut self, op: UnaryOp) -> Option<Expr> {
        if self.peek_lower(1) != Some(b'd') || !self.is_digit_at(2) {
            return None;
        }
        let mut end = 2;
        let mut sides: i64 = 0;
        while let Some(c) = self.peek_at(end).filter(u8::is_ascii_digit) {
            sides = sides.checked_mul(10)?.checked_add(i64::from(c - b'0'))?;
            end += 1;
        }
        if !(1..=MAX_SIDES).contains(&sides)
            || self
                .peek_at(end)
                .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'%' | b'!'))
        {
            return None;
        }
        let start = self.pos;
        self.pos += end;
        let high = op == UnaryOp::Pos;
        Some(Expr::new(
            ExprKind::Dice(Box::new(advantage_dice(high, sides))),
            Span::new(start, self.pos),
        ))
    }

    fn parse_pow(&mut self) -> PResult<Expr> {
        let base = self.parse_postfix()?;
        let save = self.pos;
        self.skip_ws();
        if self.peek() == Some(b'*') && self.peek_at(1) == Some(b'*') {
            let at = self.pos;
            self.enter()?;
            self.pos += 2;
            let exp = self.parse_unary()?;
            self.leave();
            let span = Span::new(base.span.start, exp.span.end);
            return Ok(Expr::new(
                ExprKind::Binary(BinaryOp::Pow, at, Box::new(base), Box::new(exp)),
                span,
            ));
        }
        self.pos = save;
        Ok(base)
    }

    fn parse_postfix(&mut self) -> PResult<Expr> {
        let atom = self.parse_atom()?;
        self.parse_postfix_of(atom)
    }

    /// Computed dice counts `(1d4+1)d6` and annotations `[fire]`.
    fn parse_postfix_of(&mut self, mut e: Expr) -> PResult<Expr> {
        if matches!(e.kind, ExprKind::Paren(_) | ExprKind::Call(..))
            && matches!(self.peek(), Some(b'd' | b'D'))
        {
            let start = e.span.start;
            e = self.parse_dice_rest(Count::Expr(Box::new(e)), start)?;
        }
        loop {
            let save = self.pos;
            self.skip_ws();
            if self.peek() != Some(b'[') {
                self.pos = save;
                return Ok(e);
            }
            let open = self.pos;
            let mut i = open + 1;
            while i < self.end && self.b.get(i) != Some(&b']') {
                i += 1;
            }
            if i >= self.end {
                return Err(self.error(ErrorKind::Unclosed { delimiter: '[' }, open));
            }
            e.annotations
                .push(self.slice(open + 1, i).trim().to_owned());
            self.pos = i + 1;
            e.span.end = self.pos;
        }
    }

    fn parse_atom(&mut self) -> PResult<Expr> {
        self.skip_ws();
        let start = self.pos;
        let Some(c) = self.peek() else {
            return Err(self.unexpected(EXPECT_ATOM));
        };
        match c {
            b'0'..=b'9' | b'.' => self.parse_number(),
            b'(' => self.parse_paren(),
            b'{' => self.parse_brace(),
            b'd' | b'D' if matches!(self.peek_lower(1), Some(b'0'..=b'9' | b'%' | b'f' | b'(')) => {
                let count = if self.peek_lower(1) == Some(b'f') {
                    // Fate is played with four dice: `dF` means `4dF`.
                    4
                } else {
                    1
                };
                self.parse_dice_rest(Count::Lit(count), start)
            }
            c if c.is_ascii_alphabetic() => self.parse_word_atom(),
            _ => Err(self.unexpected(EXPECT_ATOM)),
        }
    }

    fn parse_number(&mut self) -> PResult<Expr> {
        let start = self.pos;
        let int = self.uint()?;
        if self.peek() == Some(b'.') && self.is_digit_at(1) {
            self.pos += 1;
            while self.is_digit_at(0) {
                self.pos += 1;
            }
            let text = self.slice(start, self.pos);
            let value: f64 = text
                .parse()
                .map_err(|_| self.error(ErrorKind::NumberTooLarge, start))?;
            if !value.is_finite() {
                return Err(self.error(ErrorKind::NumberTooLarge, start));
            }
            if matches!(self.peek(), Some(b'd' | b'D')) {
                return Err(self.error(
                    ErrorKind::NotWhole {
                        what: "the number of dice",
                    },
                    start,
                ));
            }
            return Ok(Expr::new(
                ExprKind::Num(Num::Dec(value)),
                Span::new(start, self.pos),
            ));
        }
        let Some(n) = int else {
            return Err(self.unexpected(EXPECT_ATOM));
        };
        match self.peek_lower(0) {
            Some(b'd') => {
                if n > MAX_DICE {
                    return Err(self.error(
                        ErrorKind::TooManyDice {
                            count: n,
                            max: MAX_DICE,
                        },
                        start,
                    ));
                }
                self.parse_dice_rest(Count::Lit(n), start)
            }
            Some(b'c') if self.starts_with_ci("cod") => self.parse_cod(n, start),
            Some(b'w') if self.starts_with_ci("wod") => self.parse_wod(n, start),
            _ => Ok(Expr::new(
                ExprKind::Num(Num::Int(n)),
                Span::new(start, self.pos),
            )),
        }
    }

    fn parse_paren(&mut self) -> PResult<Expr> {
        let open = self.pos;
        self.enter()?;
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(b')') {
            self.pos += 1;
            self.leave();
            return self.finish_set(Vec::new(), false, open);
        }
        let first = self.parse_then()?;
        self.skip_ws();
        match self.peek() {
            Some(b',') => {
                let items = self.set_items(first, b')', open)?;
                self.leave();
                self.finish_set(items, false, open)
            }
            Some(b')') => {
                self.pos += 1;
                self.leave();
                Ok(Expr::new(
                    ExprKind::Paren(Box::new(first)),
                    Span::new(open, self.pos),
                ))
            }
            None => Err(self.error(ErrorKind::Unclosed { delimiter: '(' }, open)),
            Some(_) => Err(self.unexpected("`)` or an operator like `+`")),
        }
    }

    fn parse_brace(&mut self) -> PResult<Expr> {
        let open = self.pos;
        self.enter()?;
        self.pos += 1;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.leave();
            return self.finish_set(Vec::new(), true, open);
        }
        let first = self.parse_then()?;
        self.skip_ws();
        match self.peek() {
            Some(b',') => {
                let items = self.set_items(first, b'}', open)?;
                self.leave();
                self.finish_set(items, true, open)
            }
            Some(b'}') => {
                self.pos += 1;
                self.leave();
                let suffix_start = self.pos;
                let mods = self.parse_mods(PoolKind::Group, true)?;
                let suffix = Arc::from(self.slice(suffix_start, self.pos));
                Ok(Expr::new(
                    ExprKind::Group(Box::new(GroupSpec {
                        inner: first,
                        mods,
                        suffix,
                    })),
                    Span::new(open, self.pos),
                ))
            }
            None => Err(self.error(ErrorKind::Unclosed { delimiter: '{' }, open)),
            Some(_) => Err(self.unexpected("`}` or an operator like `+`")),
        }
    }

    /// Items after the first comma of a set, through the closing bracket.
    fn set_items(&mut self, first: Expr, close: u8, open: usize) -> PResult<Vec<Expr>> {
        let mut items = vec![first];
        loop {
            // At a comma.
            self.pos += 1;
            self.skip_ws();
            if self.peek() == Some(close) {
                break;
            }
            items.push(self.parse_then()?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => {}
                Some(c) if c == close => break,
                None => {
                    let delimiter = if close == b')' { '(' } else { '{' };
                    return Err(self.error(ErrorKind::Unclosed { delimiter }, open));
                }
                Some(_) => return Err(self.unexpected("`,` or a closing bracket")),
            }
        }
        self.pos += 1;
        Ok(items)
    }

    fn finish_set(&mut self, items: Vec<Expr>, brace: bool, open: usize) -> PResult<Expr> {
        let suffix_start = self.pos;
        let mods = self.parse_mods(PoolKind::Set, true)?;
        let suffix = Arc::from(self.slice(suffix_start, self.pos));
        Ok(Expr::new(
            ExprKind::Set(Box::new(SetSpec {
                items,
                mods,
                brace,
                suffix,
            })),
            Span::new(open, self.pos),
        ))
    }

    /// Words in atom position: functions and game-system aliases.
    fn parse_word_atom(&mut self) -> PResult<Expr> {
        let start = self.pos;
        let word = self.letters();
        let after = word.len();
        let func = match word.as_str() {
            "floor" => Some(Func::Floor),
            "ceil" => Some(Func::Ceil),
            "round" => Some(Func::Round),
            "abs" => Some(Func::Abs),
            _ => None,
        };
        if let Some(func) = func {
            if self.peek_at(after) != Some(b'(') {
                self.pos += after;
                return Err(self.unexpected("`(` after the function name"));
            }
            let open = self.pos + after;
            self.pos = open;
            self.enter()?;
            self.pos = open + 1;
            self.skip_ws();
            let arg = self.parse_then()?;
            self.skip_ws();
            match self.peek() {
                Some(b')') => self.pos += 1,
                None => return Err(self.error(ErrorKind::Unclosed { delimiter: '(' }, open)),
                Some(_) => return Err(self.unexpected("`)` or an operator like `+`")),
            }
            self.leave();
            return Ok(Expr::new(
                ExprKind::Call(func, Box::new(arg)),
                Span::new(start, self.pos),
            ));
        }
        match word.as_str() {
            "cpr" => {
                self.pos += after;
                Ok(self.alias_dice(cpr_dice(), start))
            }
            "age" => {
                self.pos += after;
                let mut spec = plain_dice(3, 6, "age");
                spec.system = Some(System::Age);
                Ok(self.alias_dice(spec, start))
            }
            "cs" | "cypher" => {
                self.pos += after;
                self.parse_cypher(start)
            }
            "gen" | "genesys" | "swrpg" => {
                self.pos += after;
                self.parse_narrative()
            }
            "ex" | "fitd" | "sw" | "sr" if self.is_digit_at(after) => {
                self.pos += after;
                let n_at = self.pos;
                let n = self.uint()?.unwrap_or(0);
                if self.is_letter_at(0) {
                    return Err(self.unexpected("an operator like `+`"));
                }
                let spec = match word.as_str() {
                    "ex" => counted_alias(n, 10, "t7ds10", |m| {
                        m.counting.success.push(Cond::Cmp(CompareOp::Ge, 7));
                        m.counting.double.push(Cond::Cmp(CompareOp::Ge, 10));
                    }),
                    "sr" => counted_alias(n, 6, "t5", |m| {
                        m.counting.success.push(Cond::Cmp(CompareOp::Ge, 5));
                    }),
                    "fitd" => fitd_dice(n),
                    _ => {
                        if !(2..=MAX_SIDES).contains(&n) {
                            return Err(self.error(
                                ErrorKind::AliasNeedsDice {
                                    alias: "sw",
                                    needs: "a trait die size of at least 2, like `sw8`",
                                },
                                n_at,
                            ));
                        }
                        return Ok(savage_worlds(n, Span::new(start, self.pos)));
                    }
                };
                self.check_alias_count(&spec, n_at)?;
                Ok(self.alias_dice(spec, start))
            }
            _ => Err(self.unexpected(EXPECT_ATOM)),
        }
    }

    /// `cs` / `cypherN` (the keyword is already read): a d20 with the
    /// Cypher System's effects; with a difficulty N (0 to 10) the whole roll
    /// (`cs4+1` is `1d20+1 >= 12`) is checked against the target 3 x N.
    fn parse_cypher(&mut self, start: usize) -> PResult<Expr> {
        let n_at = self.pos;
        let level = self.uint()?;
        if self.is_letter_at(0) {
            return Err(self.unexpected("an operator like `+`"));
        }
        let mut spec = plain_dice(1, 20, "1d20");
        spec.system = Some(System::Cypher);
        let die_end = if level.is_some() { n_at } else { self.pos };
        let die = Expr::new(ExprKind::Dice(Box::new(spec)), Span::new(start, die_end));
        let Some(level) = level else {
            return Ok(die);
        };
        if !(0..=10).contains(&level) {
            return Err(self.error(
                ErrorKind::AliasNeedsDice {
                    alias: "cs",
                    needs: "a difficulty from 0 to 10, like `cs4`",
                },
                n_at,
            ));
        }
        if self.cypher_target.is_some() {
            return Err(self.unexpected("one Cypher difficulty per roll"));
        }
        self.cypher_target = Some((level * 3, Span::new(n_at, self.pos)));
        Ok(die)
    }

    /// `gen 2a1p 2d1c` (the keyword is already read): Genesys / Star Wars
    /// narrative dice, a count and a letter per kind, attached or spaced.
    /// Each kind is a pool; their sum is the net successes.
    fn parse_narrative(&mut self) -> PResult<Expr> {
        let mut expr: Option<Expr> = None;
        loop {
            let save = self.pos;
            self.skip_ws();
            let at = self.pos;
            let Some(n) = self.uint()? else {
                self.pos = save;
                break;
            };
            let kind = self.peek().and_then(systems::narrative_kind);
            let Some(kind) = kind.filter(|_| {
                !self
                    .peek_at(1)
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == b'.')
            }) else {
                self.pos = save;
                break;
            };
            self.pos += 1;
            if n > MAX_DICE {
                return Err(self.error(
                    ErrorKind::TooManyDice {
                        count: n,
                        max: MAX_DICE,
                    },
                    at,
                ));
            }
            let sides = systems::narrative_sides(kind);
            let mut spec = plain_dice(n, sides, format!("{n}{}", systems::narrative_letter(kind)));
            spec.system = Some(System::Narrative(kind));
            let pool = Expr::new(ExprKind::Dice(Box::new(spec)), Span::new(at, self.pos));
            expr = Some(match expr {
                None => pool,
                Some(left) => {
                    let span = Span::new(left.span.start, pool.span.end);
                    Expr::new(
                        ExprKind::Binary(BinaryOp::Add, at, Box::new(left), Box::new(pool)),
                        span,
                    )
                }
            });
        }
        match expr {
            Some(e) => Ok(e),
            None => Err(self.error(
                ErrorKind::AliasNeedsDice {
                    alias: "gen",
                    needs: "narrative dice like `gen 2a1p 1d` (a ability, p proficiency, b boost, d difficulty, c challenge, s setback, f force)",
                },
                self.pos,
            )),
        }
    }

    fn check_alias_count(&self, spec: &DiceSpec, at: usize) -> PResult<()> {
        if let Count::Lit(n) = spec.count
            && n > MAX_DICE
        {
            return Err(self.error(
                ErrorKind::TooManyDice {
                    count: n,
                    max: MAX_DICE,
                },
                at,
            ));
        }
        Ok(())
    }

    fn alias_dice(&self, spec: DiceSpec, start: usize) -> Expr {
        Expr::new(ExprKind::Dice(Box::new(spec)), Span::new(start, self.pos))
    }

    /// `4cod`, `4cod9`, `4cod8`, `4codr`: Chronicles of Darkness.
    fn parse_cod(&mut self, n: i64, start: usize) -> PResult<Expr> {
        self.pos += 3;
        let mut again = 10;
        let mut rote = false;
        match self.peek_lower(0) {
            Some(b'8') if !self.is_digit_at(1) => {
                again = 8;
                self.pos += 1;
            }
            Some(b'9') if !self.is_digit_at(1) => {
                again = 9;
                self.pos += 1;
            }
            Some(b'r') if !self.is_letter_at(1) => {
                rote = true;
                self.pos += 1;
            }
            _ => {}
        }
        if self.peek().is_some_and(|c| c.is_ascii_alphanumeric()) {
            return Err(self.unexpected("an operator like `+`"));
        }
        let suffix = if rote {
            format!("t8ie{again}r7")
        } else {
            format!("t8ie{again}")
        };
        let spec = counted_alias(n, 10, &suffix, |m| {
            m.counting.success.push(Cond::Cmp(CompareOp::Ge, 8));
            m.explode = Some(Explode {
                mode: ExplodeMode::Chain,
                conds: vec![Cond::Cmp(CompareOp::Ge, again)],
            });
            if rote {
                m.rerolls.push(Reroll {
                    mode: RerollMode::Once,
                    cond: Cond::Cmp(CompareOp::Le, 7),
                });
            }
        });
        self.check_alias_count(&spec, start)?;
        Ok(self.alias_dice(spec, start))
    }

    /// `4wod8`: World of Darkness, difficulty 8, ones cancel successes.
    fn parse_wod(&mut self, n: i64, start: usize) -> PResult<Expr> {
        self.pos += 3;
        let Some(difficulty) = self.uint()? else {
            return Err(self.unexpected("a difficulty after `wod`, like `4wod8`"));
        };
        if self.peek().is_some_and(|c| c.is_ascii_alphanumeric()) {
            return Err(self.unexpected("an operator like `+`"));
        }
        let spec = counted_alias(n, 10, &format!("f1t{difficulty}"), |m| {
            m.counting
                .success
                .push(Cond::Cmp(CompareOp::Ge, difficulty));
            m.counting.failure.push(Cond::Cmp(CompareOp::Le, 1));
        });
        self.check_alias_count(&spec, start)?;
        Ok(self.alias_dice(spec, start))
    }

    // ---- dice ------------------------------------------------------------------

    /// After the count, at the `d`.
    fn parse_dice_rest(&mut self, count: Count, start: usize) -> PResult<Expr> {
        self.pos += 1; // the `d`
        let sides_at = self.pos;
        let sides = match self.peek_lower(0) {
            Some(b'0'..=b'9') => {
                let n = self.uint()?.unwrap_or(0);
                if n < 1 {
                    return Err(self.error(ErrorKind::ZeroSides, sides_at));
                }
                if n > MAX_SIDES {
                    return Err(self.error(
                        ErrorKind::TooManySides {
                            sides: n,
                            max: MAX_SIDES,
                        },
                        sides_at,
                    ));
                }
                SidesSpec::Lit(n)
            }
            Some(b'%') => {
                self.pos += 1;
                SidesSpec::Lit(100)
            }
            Some(b'f') => {
                self.pos += 1;
                SidesSpec::Fate
            }
            Some(b'(') => {
                let e = self.parse_paren()?;
                if !matches!(e.kind, ExprKind::Paren(_)) {
                    return Err(self.error(
                        ErrorKind::InvalidModifier {
                            modifier: "d(…)".to_owned(),
                            reason: "needs a single number of sides, not a set",
                        },
                        sides_at,
                    ));
                }
                SidesSpec::Expr(Box::new(e))
            }
            _ => return Err(self.unexpected("the number of sides after `d`, like `d20`")),
        };
        let mods = self.parse_mods(PoolKind::Dice, true)?;
        let notation = Arc::from(self.slice(start, self.pos));
        Ok(Expr::new(
            ExprKind::Dice(Box::new(DiceSpec {
                count,
                sides,
                mods,
                notation,
                wrath: false,
                system: None,
            })),
            Span::new(start, self.pos),
        ))
    }

    /// The modifier chain after a pool. Attached modifiers (`4d6kh3!`) are
    /// read greedily; after a space only a *whole word* that is exactly one
    /// modifier with its number (`4d6 k3`, Dice Maiden style) or a word alias
    /// (`keep highest 3`) continues the chain, so `1d20 fire damage` stays a
    /// comment.
    fn parse_mods(&mut self, kind: PoolKind, allow_spaced: bool) -> PResult<Mods> {
        let mut mods = Mods::default();
        let mut last_family = 0u8;
        loop {
            let save = self.pos;
            if self.skip_ws() {
                if !(allow_spaced && kind == PoolKind::Dice) {
                    self.pos = save;
                    break;
                }
                let word_start = self.pos;
                let spaced = match self.word_modifier(&mods) {
                    Some(m) => Some(m),
                    None => {
                        self.pos = word_start;
                        self.spaced_modifier(&mods)
                    }
                };
                match spaced {
                    Some(m) => {
                        self.apply(&mut mods, m, kind, word_start, &mut last_family)?;
                        continue;
                    }
                    None => {
                        self.pos = save;
                        break;
                    }
                }
            }
            let at = self.pos;
            match self.lex_modifier(&mods)? {
                Some((m, _)) => self.apply(&mut mods, m, kind, at, &mut last_family)?,
                None => break,
            }
        }
        Ok(mods)
    }

    /// One Dice Maiden style modifier word after a space; `None` (cursor
    /// unspecified) if the word is not exactly that.
    fn spaced_modifier(&mut self, mods: &Mods) -> Option<Modifier> {
        let c = self.peek()?;
        if !c.is_ascii_alphabetic() || matches!(c, b's' | b'S') {
            return None;
        }
        let (m, has_arg) = self.lex_modifier(mods).ok()??;
        let bare_ok = matches!(m, Modifier::Explode(ExplodeMode::Chain, _));
        if (has_arg || bare_ok) && self.at_word_boundary() {
            Some(m)
        } else {
            None
        }
    }

    fn at_word_boundary(&self) -> bool {
        match self.peek() {
            None => true,
            Some(c) => {
                is_ws(c)
                    || matches!(
                        c,
                        b';' | b'+'
                            | b'-'
                            | b'*'
                            | b'/'
                            | b'%'
                            | b')'
                            | b','
                            | b'}'
                            | b'['
                            | b'<'
                            | b'>'
                            | b'='
                            | b'!'
                    )
            }
        }
    }

    /// Word aliases: `keep [highest|lowest] N`, `drop [highest|lowest] N`,
    /// `explode [N]`, `reroll N`.
    fn word_modifier(&mut self, _mods: &Mods) -> Option<Modifier> {
        let word = self.letters();
        let is_keep = match word.as_str() {
            "keep" => true,
            "drop" => false,
            "explode" => {
                self.pos += word.len();
                let save = self.pos;
                if self.skip_ws()
                    && let Ok(Some(n)) = self.uint()
                    && self.at_word_boundary()
                {
                    return Some(Modifier::Explode(
                        ExplodeMode::Chain,
                        Cond::Cmp(CompareOp::Ge, n),
                    ));
                }
                self.pos = save;
                return self
                    .at_word_boundary()
                    .then_some(Modifier::Explode(ExplodeMode::Chain, Cond::IsMax));
            }
            "reroll" => {
                self.pos += word.len();
                if self.skip_ws()
                    && let Ok(Some(n)) = self.uint()
                    && self.at_word_boundary()
                {
                    return Some(Modifier::Reroll(
                        RerollMode::Once,
                        Cond::Cmp(CompareOp::Le, n),
                    ));
                }
                return None;
            }
            _ => return None,
        };
        self.pos += word.len();
        if !self.skip_ws() {
            return None;
        }
        let qualifier = self.letters();
        let highest = match qualifier.as_str() {
            "highest" | "high" => Some(true),
            "lowest" | "low" => Some(false),
            _ => None,
        };
        if highest.is_some() {
            self.pos += qualifier.len();
            if !self.skip_ws() {
                return None;
            }
        }
        let n = self.uint().ok()??;
        if !self.at_word_boundary() {
            return None;
        }
        let n = u64::try_from(n).ok()?;
        // keep -> highest by default; drop -> lowest by default.
        let high = highest.unwrap_or(is_keep);
        let sel = if high {
            Selector::Highest(n)
        } else {
            Selector::Lowest(n)
        };
        Some(if is_keep {
            Modifier::Keep(sel)
        } else {
            Modifier::Drop(sel)
        })
    }

    /// `>=5`, `<3`, `=6`, `!=1` ... followed by an integer.
    fn lex_cond(&mut self) -> PResult<Option<Cond>> {
        let op = match (self.peek(), self.peek_at(1)) {
            (Some(b'>'), Some(b'=')) => Some((CompareOp::Ge, 2)),
            (Some(b'<'), Some(b'=')) => Some((CompareOp::Le, 2)),
            (Some(b'='), Some(b'=')) => Some((CompareOp::Eq, 2)),
            (Some(b'!'), Some(b'=')) => Some((CompareOp::Ne, 2)),
            (Some(b'>'), _) => Some((CompareOp::Gt, 1)),
            (Some(b'<'), _) => Some((CompareOp::Lt, 1)),
            (Some(b'='), _) => Some((CompareOp::Eq, 1)),
            _ => None,
        };
        let Some((op, len)) = op else { return Ok(None) };
        self.pos += len;
        match self.signed_int()? {
            Some(n) => Ok(Some(Cond::Cmp(op, n))),
            None => Err(self.unexpected("a number")),
        }
    }

    /// Condition argument: a compare point, or a bare number interpreted by
    /// `bare`, or nothing. Returns the condition and whether one was written.
    fn lex_arg(&mut self, bare: fn(i64) -> Cond, default: Cond) -> PResult<(Cond, bool)> {
        if let Some(c) = self.lex_cond()? {
            return Ok((c, true));
        }
        match self.uint()? {
            Some(n) => Ok((bare(n), true)),
            None => Ok((default, false)),
        }
    }

    /// Keep/drop selector: `hN`, `lN`, `mN` (keep only), a compare point, or
    /// a bare count (highest for keep, lowest for drop).
    fn lex_selector(&mut self, keep: bool) -> PResult<(Selector, bool)> {
        let count = |p: &mut Self| -> PResult<(u64, bool)> {
            match p.uint()? {
                Some(n) => Ok((u64::try_from(n).unwrap_or(0), true)),
                None => Ok((1, false)),
            }
        };
        match self.peek_lower(0) {
            Some(b'h') => {
                self.pos += 1;
                let (n, w) = count(self)?;
                Ok((Selector::Highest(n), w))
            }
            Some(b'l') => {
                self.pos += 1;
                let (n, w) = count(self)?;
                Ok((Selector::Lowest(n), w))
            }
            Some(b'm') if keep => {
                self.pos += 1;
                let (n, w) = count(self)?;
                Ok((Selector::Middle(n), w))
            }
            _ => {
                if let Some(c) = self.lex_cond()? {
                    return Ok((Selector::Match(c), true));
                }
                let (n, w) = count(self)?;
                Ok((
                    if keep {
                        Selector::Highest(n)
                    } else {
                        Selector::Lowest(n)
                    },
                    w,
                ))
            }
        }
    }

    /// One attached modifier at the cursor, or `None` (cursor unchanged).
    /// The bool says whether an argument was written.
    fn lex_modifier(&mut self, mods: &Mods) -> PResult<Option<(Modifier, bool)>> {
        use CompareOp::{Eq, Ge, Le};
        let ge = |n| Cond::Cmp(Ge, n);
        let le = |n| Cond::Cmp(Le, n);
        let eq = |n| Cond::Cmp(Eq, n);
        let start = self.pos;
        let counting = mods.counting.has_target();
        let Some(c) = self.peek_lower(0) else {
            return Ok(None);
        };
        let c1 = self.peek_lower(1);
        let out = match c {
            b'k' => {
                self.pos += 1;
                let (s, w) = self.lex_selector(true)?;
                (Modifier::Keep(s), w)
            }
            b'p' => {
                self.pos += 1;
                let (s, w) = self.lex_selector(false)?;
                (Modifier::Drop(s), w)
            }
            b'd' if c1 == Some(b's') => {
                self.pos += 2;
                let (cond, w) = self.lex_arg(ge, Cond::IsMax)?;
                (Modifier::Double(cond), w)
            }
            b'd' => {
                self.pos += 1;
                let (s, w) = self.lex_selector(false)?;
                (Modifier::Drop(s), w)
            }
            b'r' => {
                let (mode, bare, len): (RerollMode, fn(i64) -> Cond, usize) = match c1 {
                    Some(b'r') => (RerollMode::Indefinite, eq, 2),
                    Some(b'o') => (RerollMode::Once, eq, 2),
                    Some(b'a') => (RerollMode::Add, eq, 2),
                    Some(b'g') => (RerollMode::Once, ge, 2),
                    _ => (RerollMode::Once, le, 1),
                };
                self.pos += len;
                let default = if c1 == Some(b'g') {
                    Cond::IsMax
                } else {
                    Cond::IsMin
                };
                let (cond, w) = self.lex_arg(bare, default)?;
                (Modifier::Reroll(mode, cond), w)
            }
            b'i' => match c1 {
                Some(b'r') => {
                    let high = self.peek_lower(2) == Some(b'g');
                    self.pos += if high { 3 } else { 2 };
                    let (cond, w) = if high {
                        self.lex_arg(ge, Cond::IsMax)?
                    } else {
                        self.lex_arg(le, Cond::IsMin)?
                    };
                    (Modifier::Reroll(RerollMode::Indefinite, cond), w)
                }
                Some(b'e') => {
                    self.pos += 2;
                    let (cond, w) = self.lex_arg(ge, Cond::IsMax)?;
                    (Modifier::Explode(ExplodeMode::Chain, cond), w)
                }
                _ => {
                    self.pos += 1;
                    let (cond, w) = self.lex_arg(le, Cond::IsMin)?;
                    (Modifier::Implode(cond), w)
                }
            },
            b'e' => {
                if c1 == Some(b'o') {
                    self.pos += 2;
                    let (cond, w) = self.lex_arg(eq, Cond::IsMax)?;
                    (Modifier::Explode(ExplodeMode::Once, cond), w)
                } else {
                    self.pos += 1;
                    let (cond, w) = self.lex_arg(ge, Cond::IsMax)?;
                    (Modifier::Explode(ExplodeMode::Chain, cond), w)
                }
            }
            b'!' => {
                let (mode, len) = match c1 {
                    Some(b'!') => (ExplodeMode::Compound, 2),
                    Some(b'p') => (ExplodeMode::Penetrate, 2),
                    _ => (ExplodeMode::Chain, 1),
                };
                self.pos += len;
                let (cond, w) = self.lex_arg(ge, Cond::IsMax)?;
                (Modifier::Explode(mode, cond), w)
            }
            b'm' if matches!(c1, Some(b'i' | b'a')) => {
                self.pos += 2;
                let Some(n) = self.signed_int()? else {
                    return Err(self.unexpected("a number"));
                };
                if c1 == Some(b'i') {
                    (Modifier::Min(n), true)
                } else {
                    (Modifier::Max(n), true)
                }
            }
            b's' => {
                let (order, len) = match c1 {
                    Some(b'd') => (SortOrder::Descending, 2),
                    Some(b'a') => (SortOrder::Ascending, 2),
                    _ => (SortOrder::Ascending, 1),
                };
                self.pos += len;
                (Modifier::Sort(order), false)
            }
            b't' if !counting => {
                if c1 == Some(b'l') {
                    self.pos += 2;
                    let (cond, w) = self.lex_arg(le, Cond::IsMin)?;
                    if !w {
                        self.pos = start;
                        return Ok(None);
                    }
                    (Modifier::Success(cond), w)
                } else {
                    let save = self.pos;
                    self.pos += 1;
                    let (cond, w) = self.lex_arg(ge, Cond::IsMax)?;
                    if !w {
                        // A bare `t` is "then", not a target.
                        self.pos = save;
                        return Ok(None);
                    }
                    (Modifier::Success(cond), w)
                }
            }
            b'f' => {
                self.pos += 1;
                let (cond, w) = self.lex_arg(le, Cond::IsMin)?;
                (Modifier::Failure(cond), w)
            }
            b'b' => {
                self.pos += 1;
                let (cond, w) = self.lex_arg(le, Cond::IsMin)?;
                (Modifier::Botch(cond), w)
            }
            b'>' | b'<' | b'=' if !counting => match self.lex_cond()? {
                Some(cond) => (Modifier::Success(cond), true),
                None => return Ok(None),
            },
            _ => return Ok(None),
        };
        Ok(Some(out))
    }

    /// Merges one modifier into the pool, checking that it makes sense there.
    fn apply(
        &self,
        mods: &mut Mods,
        m: Modifier,
        kind: PoolKind,
        at: usize,
        last_family: &mut u8,
    ) -> PResult<()> {
        let dice_only = !matches!(
            m,
            Modifier::Keep(_)
                | Modifier::Drop(_)
                | Modifier::Success(_)
                | Modifier::Double(_)
                | Modifier::Failure(_)
                | Modifier::Botch(_)
        );
        if dice_only && kind != PoolKind::Dice {
            let modifier = self.slice(at, self.pos).to_owned();
            return Err(self.error(
                ErrorKind::InvalidModifier {
                    modifier,
                    reason: "works only on dice, not on a set or group",
                },
                at,
            ));
        }
        if kind == PoolKind::Set
            && matches!(
                m,
                Modifier::Success(Cond::IsMax | Cond::IsMin)
                    | Modifier::Double(Cond::IsMax | Cond::IsMin)
                    | Modifier::Failure(Cond::IsMax | Cond::IsMin)
                    | Modifier::Botch(Cond::IsMax | Cond::IsMin)
            )
        {
            let modifier = self.slice(at, self.pos).to_owned();
            return Err(self.error(
                ErrorKind::InvalidModifier {
                    modifier,
                    reason: "needs a number when used on a set",
                },
                at,
            ));
        }
        let family = m.family();
        match m {
            Modifier::Keep(sel) | Modifier::Drop(sel) => {
                let keep = matches!(m, Modifier::Keep(_));
                match mods.select.last_mut() {
                    Some(step) if *last_family == family && step.keep == keep => {
                        step.selectors.push(sel);
                    }
                    _ => mods.select.push(SelectStep {
                        keep,
                        selectors: vec![sel],
                    }),
                }
            }
            Modifier::Reroll(mode, cond) => mods.rerolls.push(Reroll { mode, cond }),
            Modifier::Explode(mode, cond) => match &mut mods.explode {
                Some(e) if e.mode == mode => e.conds.push(cond),
                Some(_) => {
                    let modifier = self.slice(at, self.pos).to_owned();
                    return Err(self.error(
                        ErrorKind::InvalidModifier {
                            modifier,
                            reason: "cannot be combined with a different kind of explosion",
                        },
                        at,
                    ));
                }
                None => {
                    mods.explode = Some(Explode {
                        mode,
                        conds: vec![cond],
                    });
                }
            },
            Modifier::Implode(cond) => mods.implode.push(cond),
            Modifier::Min(n) => mods.min = Some(n),
            Modifier::Max(n) => mods.max = Some(n),
            Modifier::Sort(order) => mods.sort = Some(order),
            Modifier::Success(cond) => mods.counting.success.push(cond),
            Modifier::Double(cond) => mods.counting.double.push(cond),
            Modifier::Failure(cond) => mods.counting.failure.push(cond),
            Modifier::Botch(cond) => mods.counting.botch.push(cond),
        }
        *last_family = family;
        Ok(())
    }
}

// ---- aliases -------------------------------------------------------------------

fn plain_dice(count: i64, sides: i64, notation: impl Into<Arc<str>>) -> DiceSpec {
    DiceSpec {
        count: Count::Lit(count),
        sides: SidesSpec::Lit(sides),
        mods: Mods::default(),
        notation: notation.into(),
        wrath: false,
        system: None,
    }
}

fn counted_alias(n: i64, sides: i64, suffix: &str, f: impl FnOnce(&mut Mods)) -> DiceSpec {
    let mut spec = plain_dice(n, sides, format!("{n}d{sides}{suffix}"));
    f(&mut spec.mods);
    spec
}

fn keep_one(spec: &mut DiceSpec, high: bool) {
    spec.mods.select.push(SelectStep {
        keep: true,
        selectors: vec![if high {
            Selector::Highest(1)
        } else {
            Selector::Lowest(1)
        }],
    });
}

/// `+dN` -> `2dNkh1`; `-dN` -> `2dNkl1`.
fn advantage_dice(high: bool, sides: i64) -> DiceSpec {
    let keep = if high { "kh1" } else { "kl1" };
    let mut spec = plain_dice(2, sides, format!("2d{sides}{keep}"));
    keep_one(&mut spec, high);
    spec
}

/// `fitdN`: Blades in the Dark; keep the best of N d6, or the worst of two
/// when the pool is empty.
fn fitd_dice(n: i64) -> DiceSpec {
    if n == 0 {
        let mut spec = plain_dice(2, 6, "2d6kl1".to_owned());
        keep_one(&mut spec, false);
        spec
    } else {
        let mut spec = plain_dice(n, 6, format!("{n}d6kh1"));
        keep_one(&mut spec, true);
        spec
    }
}

/// `cpr`: Cyberpunk Red; a 10 adds one more d10, a 1 subtracts one.
fn cpr_dice() -> DiceSpec {
    let mut spec = plain_dice(1, 10, "1d10eo10i1".to_owned());
    spec.mods.explode = Some(Explode {
        mode: ExplodeMode::Once,
        conds: vec![Cond::Cmp(CompareOp::Eq, 10)],
    });
    spec.mods.implode.push(Cond::Cmp(CompareOp::Le, 1));
    spec
}

/// `swN`: Savage Worlds; exploding trait die and exploding wild d6, keep the
/// better one.
fn savage_worlds(n: i64, span: Span) -> Expr {
    let exploding = |sides: i64| {
        let mut spec = plain_dice(1, sides, format!("1d{sides}e"));
        spec.mods.explode = Some(Explode {
            mode: ExplodeMode::Chain,
            conds: vec![Cond::IsMax],
        });
        Expr::new(ExprKind::Dice(Box::new(spec)), span)
    };
    let mut mods = Mods::default();
    mods.select.push(SelectStep {
        keep: true,
        selectors: vec![Selector::Highest(1)],
    });
    Expr::new(
        ExprKind::Set(Box::new(SetSpec {
            items: vec![exploding(n), exploding(6)],
            mods,
            brace: true,
            suffix: Arc::from("kh1"),
        })),
        span,
    )
}

/// A word that rolls the d20 more than once and keeps one: `adv` / `advantage`
/// (two, the higher), `dis` / `disadvantage` (two, the lower), `eadv` (Elven
/// Accuracy: three, the highest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Adv,
    Dis,
    Elven,
}

impl Mode {
    fn of_word(word: &str) -> Option<Mode> {
        match word.to_ascii_lowercase().as_str() {
            "adv" | "advantage" => Some(Mode::Adv),
            "dis" | "disadvantage" => Some(Mode::Dis),
            "eadv" => Some(Mode::Elven),
            _ => None,
        }
    }
}

/// The `adv` / `dis` / `eadv` words of one roll, wherever they stand: where the
/// first of each is.
#[derive(Debug, Default, Clone, Copy)]
struct Modes {
    adv: Option<usize>,
    dis: Option<usize>,
    elven: Option<usize>,
}

impl Modes {
    fn add(&mut self, mode: Mode, at: usize) {
        let slot = match mode {
            Mode::Adv => &mut self.adv,
            Mode::Dis => &mut self.dis,
            Mode::Elven => &mut self.elven,
        };
        slot.get_or_insert(at);
    }

    fn any(self) -> bool {
        self.adv.is_some() || self.dis.is_some() || self.elven.is_some()
    }

    /// The d20s to roll, whether the highest is kept, and where the word is, when
    /// the roll has an advantage (`eadv` over `adv`) or disadvantage, not both.
    fn one(self) -> Option<(i64, bool, usize)> {
        match (self.elven, self.adv, self.dis) {
            (Some(at), _, None) => Some((3, true, at)),
            (None, Some(at), None) => Some((2, true, at)),
            (None, None, Some(at)) => Some((2, false, at)),
            _ => None,
        }
    }

    /// Where the first of the words is, when the roll has an advantage and a
    /// disadvantage: they cancel out.
    fn cancelled(self) -> Option<usize> {
        let dis = self.dis?;
        let adv = match (self.adv, self.elven) {
            (Some(a), Some(e)) => a.min(e),
            (a, e) => a.or(e)?,
        };
        Some(adv.min(dis))
    }
}

/// Rewrites the leftmost single d20 (`1d20` / `d20` without keep/drop) into
/// `{count}d20kh1` or `{count}d20kl1`. Returns what it rewrote, or `None` if
/// there is no such die.
fn apply_advantage(expr: &mut Expr, count: i64, high: bool) -> Option<Reworded> {
    let mut done = None;
    visit_dice_mut(expr, &mut |spec, span| {
        if done.is_some() {
            return;
        }
        if matches!(spec.count, Count::Lit(1))
            && matches!(spec.sides, SidesSpec::Lit(20))
            && spec.mods.select.is_empty()
        {
            spec.count = Count::Lit(count);
            keep_one(spec, high);
            let lower = spec.notation.to_ascii_lowercase();
            let rest = lower
                .find("d20")
                .and_then(|i| spec.notation.get(i + 3..))
                .unwrap_or("")
                .to_owned();
            let was = std::mem::replace(
                &mut spec.notation,
                Arc::from(format!(
                    "{count}d20{}{rest}",
                    if high { "kh1" } else { "kl1" }
                )),
            );
            done = Some(Reworded::new(span, was, &spec.notation));
        }
    });
    done
}

/// `wng 4d6`: the first d6 pool counts icons (4+ is one, 6 is two) and its
/// first die is the Wrath die. Returns what it rewrote, or `None` if there
/// is no d6 pool.
fn apply_wrath(expr: &mut Expr) -> Option<Reworded> {
    let mut done = None;
    visit_dice_mut(expr, &mut |spec, span| {
        if done.is_some() || !matches!(spec.sides, SidesSpec::Lit(6)) {
            return;
        }
        spec.mods.counting.success.push(Cond::Cmp(CompareOp::Ge, 4));
        spec.mods.counting.double.push(Cond::Cmp(CompareOp::Ge, 6));
        let now = Arc::from(format!("{}t4ds6", spec.notation));
        let was = std::mem::replace(&mut spec.notation, now);
        spec.wrath = true;
        done = Some(Reworded::new(span, was, &spec.notation));
    });
    done
}

/// A dice term a word of the roll rewrote: where it starts, its notation
/// before and after.
struct Reworded {
    start: usize,
    /// The term's whole span in the source.
    span: Span,
    was: Arc<str>,
    now: Arc<str>,
}

impl Reworded {
    fn new(span: Span, was: Arc<str>, now: &Arc<str>) -> Self {
        Reworded {
            start: span.start,
            span,
            was,
            now: Arc::clone(now),
        }
    }

    /// The rewrite of the source, when the term was written there as its old
    /// notation; `None` for an alias such as `cs`, written as a word.
    fn in_source(&self, src: &str) -> Option<Rewrite> {
        let span = Span::new(self.start, self.start + self.was.len());
        (src.get(span.start..span.end) == Some(&*self.was)).then(|| Rewrite {
            span,
            text: Arc::clone(&self.now),
            check_only: false,
        })
    }
}

/// Visits dice terms left to right.
fn visit_dice_mut(expr: &mut Expr, f: &mut dyn FnMut(&mut DiceSpec, Span)) {
    let span = expr.span;
    match &mut expr.kind {
        ExprKind::Num(_) => {}
        ExprKind::Dice(spec) => {
            if let Count::Expr(e) = &mut spec.count {
                visit_dice_mut(e, f);
            }
            f(spec, span);
        }
        ExprKind::Set(set) => {
            for item in &mut set.items {
                visit_dice_mut(item, f);
            }
        }
        ExprKind::Group(g) => visit_dice_mut(&mut g.inner, f),
        ExprKind::Paren(e) | ExprKind::Unary(_, e) | ExprKind::Call(_, e) => visit_dice_mut(e, f),
        ExprKind::Binary(_, _, l, r) | ExprKind::Compare(_, _, l, r) | ExprKind::Then(_, l, r) => {
            visit_dice_mut(l, f);
            visit_dice_mut(r, f);
        }
    }
}
