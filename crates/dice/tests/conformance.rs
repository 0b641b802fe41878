//! The conformance table: one row per behaviour of the grammar in
//! GRAMMAR.md. Rows are exact: a total, a pass/fail, an error kind with its
//! column, or the full rendered text for a fixed seed (every die is visible
//! in the text, so each golden row was checked by hand against the rules).
//!
//! All failures are collected and reported together.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use dice::{ErrorKind, Num, Rng};

enum Expect {
    /// Integer total of the first result (dice here are deterministic, e.g. d1).
    Total(i64),
    /// Decimal total of the first result.
    Decimal(f64),
    /// Pass/fail of the first result.
    Check(Option<bool>),
    /// Number of results over all rolls (repeats and `;`).
    Results(usize),
    /// Plain rendering with the given seed.
    Plain(u64, &'static str),
    /// Markdown rendering with the given seed.
    Markdown(u64, &'static str),
    /// Error kind and 1-based column.
    Error(fn(&ErrorKind) -> bool, usize),
}

struct Row {
    input: String,
    expect: Expect,
}

fn t(input: &str, total: i64) -> Row {
    Row {
        input: input.to_owned(),
        expect: Expect::Total(total),
    }
}
fn d(input: &str, total: f64) -> Row {
    Row {
        input: input.to_owned(),
        expect: Expect::Decimal(total),
    }
}
fn c(input: &str, check: Option<bool>) -> Row {
    Row {
        input: input.to_owned(),
        expect: Expect::Check(check),
    }
}
fn n(input: &str, results: usize) -> Row {
    Row {
        input: input.to_owned(),
        expect: Expect::Results(results),
    }
}
fn g(input: &str, seed: u64, text: &'static str) -> Row {
    Row {
        input: input.to_owned(),
        expect: Expect::Plain(seed, text),
    }
}
fn m(input: &str, seed: u64, text: &'static str) -> Row {
    Row {
        input: input.to_owned(),
        expect: Expect::Markdown(seed, text),
    }
}
fn e(input: &str, column: usize, kind: fn(&ErrorKind) -> bool) -> Row {
    Row {
        input: input.to_owned(),
        expect: Expect::Error(kind, column),
    }
}

macro_rules! kind {
    ($p:pat) => {
        |k: &ErrorKind| matches!(k, $p)
    };
}

fn rows() -> Vec<Row> {
    use ErrorKind as K;
    let deep_parens = format!("{}1{}", "(".repeat(40), ")".repeat(40));
    let deep_signs = format!("{}1", "-".repeat(40));
    let many_parts = vec!["1"; 21].join(";");
    let too_long = "1".repeat(1001);
    vec![
        // ---- arithmetic and precedence ------------------------------------
        t("1+2*3", 7),
        t("(1+2)*3", 9),
        t("10-2-3", 5),
        t("100/10/5", 2),
        t("2*3%4", 2),
        t("2**3**2", 512),
        t("-2**2", -4),
        t("(-2)**2", 4),
        d("2**-1", 0.5),
        t("7/2", 3),
        t("-7/2", -4),
        t("7/-2", -4),
        t("7//2", 3),
        d("7/2.0", 3.5),
        // A decimal operand is shown as written, so it does not read as an integer.
        g("7/2.0", 1, "7 / 2.0 = 3.5"),
        g("7 / .50 [half]", 1, "7 / .50 [half] = 14"),
        m("1.0 + 1d6", 1, "1.0 + 1d6 (5) = `6`"),
        d("7.0//2", 3.0),
        t("7%3", 1),
        t("-1%6", 5),
        t("1+-1", 0),
        t("--1", 1),
        t("+5", 5),
        d("1.5*3", 4.5),
        d(".5+.5", 1.0),
        t("floor(7/2)", 3),
        t("floor(3.7)", 3),
        t("ceil(3.2)", 4),
        t("round(2.5)", 3),
        t("round(-2.5)", -3),
        t("abs(-4)", 4),
        t("abs(1d1-5)", 4),
        t("1 plus 2 times 3", 7),
        t("3 minus 1", 2),
        t("  2  *  ( 3 + 4 )  ", 14),
        // ---- comparisons: strict and inclusive, value 1/0 -------------------
        t("2>1", 1),
        t("1>1", 0),
        t("1>=1", 1),
        t("1<1", 0),
        t("1<=1", 1),
        t("1=1", 1),
        t("1==1", 1),
        t("1!=1", 0),
        t("1+1>1", 1),
        t("(1>0)+(2>0)", 2),
        t("1d1 > 1", 0),
        t("1d1 >= 1", 1),
        c("2 > 1", Some(true)),
        c("1d1 > 1", Some(false)),
        c("(2>1)", Some(true)),
        c("1+1", None),
        c("1d1>0", None),
        // ---- then ------------------------------------------------------------
        t("1>0 t 5", 5),
        t("1>2 t 5", 0),
        t("1>0t5", 5),
        t("0 then 5", 0),
        t("1 then 5", 5),
        t("-1 then 5", 0),
        t("1>0t1>0t7", 7),
        t("1>0 then 1>2 then 7", 0),
        c("1>0 then 3", Some(true)),
        c("1>2 then 3", Some(false)),
        // ---- dice pools with deterministic dice ------------------------------
        t("4d1", 4),
        t("0d6", 0),
        t("d1", 1),
        t("1d1+1d1", 2),
        t("10d1k3", 3),
        t("10d1kh3", 3),
        t("10d1kl2", 2),
        t("10d1km4", 4),
        t("10d1d3", 7),
        t("10d1dl3", 7),
        t("10d1dh3", 7),
        t("10d1p3", 7),
        t("10d1k=1", 10),
        t("10d1k>1", 0),
        t("10d1p=1", 0),
        t("10d1k20", 10),
        t("1d1e", 101),
        t("1d1!", 101),
        t("1d1ie", 101),
        t("1d1!!", 101),
        t("1d1!p", 1),
        t("1d1eo1", 2),
        t("1d1eo", 2),
        t("1d1e2", 1),
        t("1d1i", 0),
        t("4d1ra1", 8),
        t("4d1rr1", 4),
        t("1d1mi3", 3),
        t("3d1ma0", 0),
        t("5d1t1", 5),
        t("5d1tl0", 0),
        t("5d1>=1f1", 0),
        t("5d1ds1", 10),
        t("5d1t1ds1", 10),
        t("5d1b1", 5),
        t("5d1>0", 5),
        t("5d1<1", 0),
        t("(1d1+1)d1", 2),
        t("floor(3.5)d1", 3),
        t("1d(1+1-1)", 1),
        t("2d1*3", 6),
        // ---- sets and groups ---------------------------------------------------
        t("(1,2,3)", 6),
        t("(1,2,3)kh2", 5),
        t("(1,2,3)k2", 5),
        t("(1,2,3)kl1", 1),
        t("(1,2,3)p1", 5),
        t("(1,2,3)d1", 5),
        t("(1,2,3)ph1", 3),
        t("(5,1,3)>2", 2),
        t("(5,1,3)k>2", 8),
        t("(5,1,3)t3f1", 1),
        d("(1.5, 2)", 3.5),
        t("()", 0),
        t("(3,)", 3),
        t("(1,2,)", 3),
        t("{1,2,3}kh1", 3),
        t("{4d1+3d1}k4", 4),
        t("{3d1}>0", 3),
        t("{2d1+5}k1", 6),
        // ---- repeats, several rolls, labels, comments, annotations --------------
        n("3 1d1", 3),
        n("1d1c4", 4),
        n("1d1 c4", 4),
        n("1; 2; 3", 3),
        n("2 1; 3 1", 5),
        n("1;;2;", 2),
        t("1d1[fire]", 1),
        t("1d1 [fire] [magic] + 1", 2),
        t("5 kobolds attack", 5),
        t("(Hit) 1d1", 1),
        t("(Hit roll) 4d1 + 1 to hit", 5),
        t("p 1d1", 1),
        t("s nr 1d1", 1),
        // ---- typographic operators: − – — as `-`, × as `*`, before an operand --
        t("1d1 \u{2212}2", -1),
        t("1d1 \u{2212} 2", -1),
        t("1d1\u{2013}1", 0),
        t("1d1 \u{2014}1", 0),
        t("\u{2212}1d1 + 3", 2),
        t("10 \u{00D7} 2", 20),
        t("3\u{00D7}(1d1+1)", 6),
        t("4d1kh3 \u{2212}1", 2),
        c("1d1 > \u{2212}1", Some(true)),
        t("(Hit \u{2212}2) 1d1", 1),
        g(
            "1d20 \u{2212}2 to hit \u{2014} nice",
            1,
            "1d20 (15) - 2 = 13 # to hit \u{2014} nice",
        ),
        g(
            "1d20 \u{2014} to hit",
            1,
            "1d20 (15) = 15 # \u{2014} to hit",
        ),
        g("(Hit \u{2212}2) 1d20", 1, "Hit \u{2212}2: 1d20 (15) = 15"),
        e(
            "1d20 \u{2212}2 + x",
            11,
            kind!(ErrorKind::Unexpected { .. }),
        ),
        // ---- golden plain renders (seeded) ----------------------------------
        g("1d20", 1, "1d20 (15) = 15"),
        g("d20", 1, "d20 (15) = 15"),
        g("1d20+5", 1, "1d20 (15) + 5 = 20"),
        g("4d6kh3", 1, "4d6kh3 (5, 4, 4, ~3~) = 13"),
        g("4d6k3", 1, "4d6k3 (5, 4, 4, ~3~) = 13"),
        g("4d6kl1", 1, "4d6kl1 (~5~, ~4~, ~4~, 3) = 3"),
        g("4d6km2", 1, "4d6km2 (~5~, 4, 4, ~3~) = 8"),
        g("4d6d1", 1, "4d6d1 (5, 4, 4, ~3~) = 13"),
        g("4d6dl1", 1, "4d6dl1 (5, 4, 4, ~3~) = 13"),
        g("4d6dh1", 1, "4d6dh1 (~5~, 4, 4, 3) = 11"),
        g("4d6ph1", 1, "4d6ph1 (~5~, 4, 4, 3) = 11"),
        g("4d6pl1", 1, "4d6pl1 (5, 4, 4, ~3~) = 13"),
        g("4d6p1", 1, "4d6p1 (5, 4, 4, ~3~) = 13"),
        g("4d6k1k2", 1, "4d6k1k2 (5, 4, ~4~, ~3~) = 9"),
        g("4d6kh1kl1", 1, "4d6kh1kl1 (5, ~4~, ~4~, 3) = 8"),
        g("4d6k>3", 1, "4d6k>3 (5, 4, 4, ~3~) = 13"),
        g("4d6p=1", 2, "4d6p=1 (~1~, 5, 2, 5) = 12"),
        g("2d20kh1", 1, "2d20kh1 (15, ~11~) = 15"),
        g("2d20kl1+3", 1, "2d20kl1 (~15~, 11) + 3 = 14"),
        g("3d6!", 1, "3d6! (5, 4, 4) = 13"),
        g("3d6!5", 1, "3d6!5 (5!, 3, 4, 4) = 16"),
        g("3d6!>4", 1, "3d6!>4 (5!, 3, 4, 4) = 16"),
        g("3d6!!", 1, "3d6!! (5, 4, 4) = 13"),
        g("3d6!p", 1, "3d6!p (5, 4, 4) = 13"),
        g("3d6e", 4, "3d6e (2, 6!, 6!, 2, 3) = 19"),
        g("3d6e5", 1, "3d6e5 (5!, 3, 4, 4) = 16"),
        g("3d6ie", 4, "3d6ie (2, 6!, 6!, 2, 3) = 19"),
        g("3d6eo6", 4, "3d6eo6 (2, 6!, 6, 3) = 17"),
        g("3d6eo>4", 1, "3d6eo>4 (5!, 3, 4, 4) = 16"),
        e("1d6!!!", 6, kind!(K::InvalidModifier { .. })),
        g("4d6r2", 2, "4d6r2 (1 -> 5, 5, 2 -> 2, 5) = 17"),
        g("4d6ir2", 2, "4d6ir2 (1 -> 5, 5, 2 -> 2 -> 4, 5) = 19"),
        g("4d6rg5", 1, "4d6rg5 (5 -> 5, 4, 4, 3) = 16"),
        g("4d6irg5", 1, "4d6irg5 (5 -> 5 -> 1, 4, 4, 3) = 12"),
        g("4d6rr1", 2, "4d6rr1 (1 -> 5, 5, 2, 5) = 17"),
        g("4d6ro1", 2, "4d6ro1 (1 -> 5, 5, 2, 5) = 17"),
        g("4d6r<3", 2, "4d6r<3 (1 -> 5, 5, 2 -> 2, 5) = 17"),
        g("4d6ra6", 4, "4d6ra6 (2, 6, 2+, 3, 6, 4+) = 23"),
        g("4d6mi3", 2, "4d6mi3 (1 -> 3, 5, 2 -> 3, 5) = 16"),
        g("4d6ma4", 1, "4d6ma4 (5 -> 4, 4, 4, 3) = 15"),
        g("4d6i", 2, "4d6i (1, -5, 5, 2, 5) = 8"),
        g("4d6i2", 2, "4d6i2 (1, -5, 5, 2, -2, 5) = 6"),
        g("4d6s", 1, "4d6s (3, 4, 4, 5) = 16"),
        g("4d6sa", 1, "4d6sa (3, 4, 4, 5) = 16"),
        g("4d6sd", 1, "4d6sd (5, 4, 4, 3) = 16"),
        g(
            "10d10t7",
            1,
            "10d10t7 (8, 6, 6, 4, 7, 2, 1, 4, 9, 6) = 3 (3 successes)",
        ),
        g(
            "10d10tl3",
            1,
            "10d10tl3 (8, 6, 6, 4, 7, 2, 1, 4, 9, 6) = 2 (2 successes)",
        ),
        g(
            "10d10>=7f1",
            1,
            "10d10>=7f1 (8, 6, 6, 4, 7, 2, 1, 4, 9, 6) = 2 (3 successes, 1 failure)",
        ),
        g(
            "10d10>7",
            1,
            "10d10>7 (8, 6, 6, 4, 7, 2, 1, 4, 9, 6) = 2 (2 successes)",
        ),
        g(
            "10d10<3",
            1,
            "10d10<3 (8, 6, 6, 4, 7, 2, 1, 4, 9, 6) = 2 (2 successes)",
        ),
        g(
            "10d10=10",
            3,
            "10d10=10 (7, 7, 3, 6, 5, 4, 3, 8, 10, 2) = 1 (1 success)",
        ),
        g(
            "6d10t7ds10",
            1,
            "6d10t7ds10 (8, 6, 6, 4, 7, 2) = 2 (2 successes)",
        ),
        g(
            "5d10t8b1",
            9,
            "5d10t8b1 (1, 3, 2, 8, 10) = 2 (2 successes, 1 botch)",
        ),
        g("4dF", 1, "4dF (+, 0, 0, 0) = 1"),
        g("dF", 1, "dF (+, 0, 0, 0) = 1"),
        g("df", 1, "df (+, 0, 0, 0) = 1"),
        g("2dF+1", 1, "2dF (+, 0) + 1 = 2"),
        g("d%", 1, "d% (71) = 71"),
        g("1d%", 1, "1d% (71) = 71"),
        g("(1d4+1)*2", 1, "(1d4 (3) + 1) * 2 = 8"),
        g("(1d4+1)d6", 1, "(1d4+1)d6 (4, 4, 3, 5) = 16"),
        g("1d(2*3)", 1, "1d(2*3) (5) = 5"),
        g(
            "{4d6+3d8}k4",
            1,
            "{4d6 (5, 4, 4, ~3~) + 3d8 (6, ~2~, ~1~)}k4 = 19",
        ),
        g(
            "{3d6, 3d6}kh1",
            1,
            "{3d6 (5, 4, 4), ~3d6 (3, 5, 1)~}kh1 = 13",
        ),
        g("(1d20, 1d20)kh1", 1, "(1d20 (15), ~1d20 (11)~)kh1 = 15"),
        g("(3d6,)", 1, "(3d6 (5, 4, 4),) = 13"),
        g("()", 1, "() = 0"),
        g("(1,2,3)", 1, "(1, 2, 3) = 6"),
        g(
            "(1d6,1d6,1d6)>3",
            1,
            "(1d6 (5), 1d6 (4), 1d6 (4))>3 = 3 (3 successes)",
        ),
        g("{2d6}>3", 1, "{2d6 (5, 4)}>3 = 2 (2 successes)"),
        g(
            "2d6 + 1d4[fire] + 3 [bonus]",
            1,
            "2d6 (5, 4) + 1d4 (3) [fire] + 3 [bonus] = 15",
        ),
        g(
            "1d20+5 to hit the goblin",
            1,
            "1d20 (15) + 5 = 20 # to hit the goblin",
        ),
        g("1d20 ! attack", 1, "1d20 (15) = 15 # attack"),
        g("1d20 # attack", 1, "1d20 (15) = 15 # attack"),
        g(
            "(Fireball) 8d6",
            1,
            "Fireball: 8d6 (5, 4, 4, 3, 5, 1, 1, 3) = 26",
        ),
        g(
            "(Attack roll) 1d20+5 vs AC",
            1,
            "Attack roll: 1d20 (15) + 5 = 20 # vs AC",
        ),
        g(
            "3 4d6k3",
            1,
            "#1: 4d6k3 (5, 4, 4, ~3~) = 13\n#2: 4d6k3 (5, 1, ~1~, 3) = 9\n#3: 4d6k3 (6, ~4~, 6, 6) = 18\nTotal: 40",
        ),
        g(
            "4d6k3c2",
            1,
            "#1: 4d6k3 (5, 4, 4, ~3~) = 13\n#2: 4d6k3 (5, 1, ~1~, 3) = 9\nTotal: 22",
        ),
        g("1d20; 2d6", 1, "1d20 (15) = 15\n2d6 (4, 4) = 8\nTotal: 23"),
        g("+d20+5", 1, "2d20kh1 (15, ~11~) + 5 = 20"),
        g("-d20", 1, "2d20kl1 (~15~, 11) = 11"),
        g("adv 1d20+5", 1, "2d20kh1 (15, ~11~) + 5 = 20"),
        g("1d20+5 adv", 1, "2d20kh1 (15, ~11~) + 5 = 20"),
        g("advantage 1d20", 1, "2d20kh1 (15, ~11~) = 15"),
        g("dis 1d20", 1, "2d20kl1 (~15~, 11) = 11"),
        g("1d20 dis", 1, "2d20kl1 (~15~, 11) = 11"),
        // Between an operand and its operator the word applies to the roll and
        // the expression goes on; after a sign-first roll, the sign is for 1d20.
        g("1d20 dis +5", 1, "2d20kl1 (~15~, 11) + 5 = 16"),
        g(
            "1d20+5 adv >= 15",
            1,
            "2d20kh1 (15, ~11~) + 5 >= 15 -> 20 pass",
        ),
        g("1d20 adv + 1d20", 1, "2d20kh1 (15, ~11~) + 1d20 (12) = 27"),
        g(
            "1d20 ADV plus 2 fire",
            1,
            "2d20kh1 (15, ~11~) + 2 = 17 # fire",
        ),
        g("adv + 4", 1, "2d20kh1 (15, ~11~) + 4 = 19"),
        g("dis -1", 1, "2d20kl1 (~15~, 11) - 1 = 10"),
        g("adv + 1d4 + 5", 1, "2d20kh1 (15, ~11~) + 1d4 (3) + 5 = 23"),
        g("adv +5 >= 15", 1, "2d20kh1 (15, ~11~) + 5 >= 15 -> 20 pass"),
        g("adv -1d20", 1, "-2d20kh1 (15, ~11~) = -15"),
        g("1d20 adv # attack", 1, "2d20kh1 (15, ~11~) = 15 # attack"),
        g("1d20 adv to hit", 1, "2d20kh1 (15, ~11~) = 15 # to hit"),
        g("1d20 disarm +2", 1, "1d20 (15) = 15 # disarm +2"),
        g(
            "1d20+5>15t2d6+4",
            1,
            "1d20 (15) + 5 > 15 (20) -> pass => 2d6 (4, 4) + 4 = 12",
        ),
        g("1d20+5>15t2d6+4", 2, "1d20 (3) + 5 > 15 (8) -> fail = 0"),
        g(
            "1d20+5>15 then 2d6+4",
            1,
            "1d20 (15) + 5 > 15 (20) -> pass => 2d6 (4, 4) + 4 = 12",
        ),
        g(
            "1d20>15t2d6",
            6,
            "1d20>15 (16) (1) -> pass => 2d6 (6, 6) = 12 (1 success)",
        ),
        // A `then` shows the total it checked, once: a single die already shows it.
        g("1d20 then 1d6", 1, "1d20 (15) -> pass => 1d6 (4) = 4"),
        m("1d20 then 1d6", 1, "1d20 (15) → **pass** ⇒ 1d6 (4) = `4`"),
        g("2d6 then 1d6", 1, "2d6 (5, 4) (9) -> pass => 1d6 (4) = 4"),
        g(
            "1d20+1 then 1d6",
            1,
            "1d20 (15) + 1 (16) -> pass => 1d6 (4) = 4",
        ),
        g("1 then 1d6", 1, "1 -> pass => 1d6 (5) = 5"),
        g("s 1d20 then 1d6", 1, "1d20 (15) -> pass => 1d6 = 4"),
        g("1d20+5 >= 15", 1, "1d20 (15) + 5 >= 15 -> 20 pass"),
        g("1d20+5 >= 15", 2, "1d20 (3) + 5 >= 15 -> 8 fail"),
        g("1d20 >= 1d20", 1, "1d20 (15) >= 1d20 (11) -> 15 vs 11 pass"),
        g("4d6 k3", 1, "4d6 k3 (5, 4, 4, ~3~) = 13"),
        g("4d6 keep 3", 1, "4d6 keep 3 (5, 4, 4, ~3~) = 13"),
        g(
            "4d6 keep highest 3",
            1,
            "4d6 keep highest 3 (5, 4, 4, ~3~) = 13",
        ),
        g(
            "4d6 keep lowest 1",
            1,
            "4d6 keep lowest 1 (~5~, ~4~, ~4~, 3) = 3",
        ),
        g("4d6 drop 1", 1, "4d6 drop 1 (5, 4, 4, ~3~) = 13"),
        g(
            "4d6 drop highest 1",
            1,
            "4d6 drop highest 1 (~5~, 4, 4, 3) = 11",
        ),
        g("3d6 explode", 4, "3d6 explode (2, 6!, 6!, 2, 3) = 19"),
        g("3d6 explode 5", 1, "3d6 explode 5 (5!, 3, 4, 4) = 16"),
        g("4d6 reroll 1", 2, "4d6 reroll 1 (1 -> 5, 5, 2, 5) = 17"),
        g(
            "5d10 t8 f1",
            1,
            "5d10 t8 f1 (8, 6, 6, 4, 7) = 1 (1 success)",
        ),
        g("3d6 e6", 4, "3d6 e6 (2, 6!, 6!, 2, 3) = 19"),
        g("1d20 plus 5", 1, "1d20 (15) + 5 = 20"),
        g("1d20 minus 1", 1, "1d20 (15) - 1 = 14"),
        g("2 times 1d6", 1, "2 * 1d6 (5) = 10"),
        g(
            "wng 4d6",
            1,
            "4d6t4ds6 (5, 4, 4, 3) = 3 (3 successes) [Wrath die: 5]",
        ),
        g(
            "4cod",
            4,
            "4d10t8ie10 (3, 10!, 3, 5, 10!, 7) = 2 (2 successes)",
        ),
        g("4cod8", 1, "4d10t8ie8 (8!, 7, 6, 6, 4) = 1 (1 success)"),
        g("4cod9", 1, "4d10t8ie9 (8, 6, 6, 4) = 1 (1 success)"),
        g(
            "4codr",
            1,
            "4d10t8ie10r7 (8, 6 -> 7, 6 -> 2, 4 -> 1) = 1 (1 success)",
        ),
        g("4wod8", 1, "4d10f1t8 (8, 6, 6, 4) = 1 (1 success)"),
        g("ex5", 1, "5d10t7ds10 (8, 6, 6, 4, 7) = 2 (2 successes)"),
        g("fitd2", 1, "2d6kh1 (5, ~4~) = 5"),
        g("fitd0", 1, "2d6kl1 (~5~, 4) = 4"),
        g("sw8", 1, "{1d8e (6), ~1d6e (4)~}kh1 = 6"),
        g("sr6", 1, "6d6t5 (5, 4, 4, 3, 5, 1) = 2 (2 successes)"),
        g("cpr", 10, "1d10eo10i1 (10!, 5) = 15 (critical)"),
        g("cpr", 9, "1d10eo10i1 (1, -3) = -2 (fumble)"),
        g("p 1d20", 1, "1d20 (15) = 15"),
        g("s 4d6k3", 1, "4d6k3 = 13"),
        g("nr 4d6k3", 1, "13"),
        g("ul 4d6", 1, "4d6 (5, 4, 4, 3) = 16"),
        // Issue 15: totals, flags, `+dN`/`-dN` and more game systems.
        g("+d6", 1, "2d6kh1 (5, ~4~) = 5"),
        g("-d12+2", 1, "2d12kl1 (~9~, 7) + 2 = 9"),
        g("+d8 + 1", 1, "2d8kh1 (6, ~5~) + 1 = 7"),
        g("1+d6", 1, "1 + d6 (5) = 6"),
        g("-1d6", 1, "-1d6 (5) = -5"),
        g("4d6s", 1, "4d6s (3, 4, 4, 5) = 16"),
        g("ul 4d6s", 1, "4d6s (5, 4, 4, 3) = 16"),
        g(
            "ul 4d6sd + 2d6sa",
            1,
            "4d6sd (5, 4, 4, 3) + 2d6sa (5, 1) = 22",
        ),
        g("1d8+5", 2, "1d8 (1) + 5 = 6 (fumble)"),
        g("4d6", 1, "4d6 (5, 4, 4, 3) = 16"),
        g("4d6eo>=5", 1, "4d6eo>=5 (5!, 5, 4, 4, 3) = 21"),
        g("4d6e5", 1, "4d6e5 (5!, 5!, 1, 4, 4, 3) = 22"),
        g(
            "6 4d6",
            1,
            "#1: 4d6 (5, 4, 4, 3) = 16\n#2: 4d6 (5, 1, 1, 3) = 10\n#3: 4d6 (6, 4, 6, 6) = 22\n#4: 4d6 (6, 5, 4, 6) = 21\n#5: 4d6 (1, 3, 1, 1) = 6\n#6: 4d6 (3, 3, 4, 3) = 13\nTotal: 88",
        ),
        g(
            "3 1d20+5",
            10,
            "#1: 1d20 (20) + 5 = 25 (critical)\n#2: 1d20 (9) + 5 = 14\n#3: 1d20 (3) + 5 = 8\nTotal: 47",
        ),
        g(
            "1d20+5; 2d6+3",
            1,
            "1d20 (15) + 5 = 20\n2d6 (4, 4) + 3 = 11\nTotal: 31",
        ),
        m(
            "1d20+5; 2d6+3",
            1,
            "1d20 (15) + 5 = `20`\n2d6 (4, 4) + 3 = `11`\n**Total:** `31`",
        ),
        g("cs4", 1, "1d20 (15) >= 12 -> 15 pass"),
        g("cs4", 2, "1d20 (3) >= 12 -> 3 fail"),
        g("cypher2+1", 3, "1d20 (14) + 1 >= 6 -> 15 pass"),
        g(
            "cs",
            10,
            "1d20 (20) = 20 (critical) [natural 20: major effect (or +4 damage on an attack)]",
        ),
        g("cs", 9, "1d20 (1) = 1 (fumble) [natural 1: GM intrusion]"),
        e("cs11", 3, kind!(K::AliasNeedsDice { alias: "cs", .. })),
        e("cs4 > 3", 3, kind!(K::AliasNeedsDice { alias: "cs", .. })),
        g(
            "age",
            1,
            "age (5, 4, 4) = 13 [doubles: 4 stunt points (drama die 4)]",
        ),
        g(
            "age+3",
            2,
            "age (1, 5, 2) + 3 = 11 [drama die 2, no doubles]",
        ),
        g(
            "age",
            6,
            "age (5, 6, 6) = 17 [doubles: 6 stunt points (drama die 6)]",
        ),
        g(
            "gen 2a1p 2d1c",
            1,
            "2a (A, A) + 1p (SA) + 2d (Th, Th) + 1c (F) = 0 [failure: no net success, 1 advantage]",
        ),
        g(
            "genesys 3a2d",
            4,
            "3a (S, AA, SS) + 2d (FTh, F) = 1 [success: 1 net success, 1 advantage]",
        ),
        g(
            "swrpg 1p1c",
            5,
            "1p (SS) + 1c (FTh) = 1 [success: 1 net success, 1 threat]",
        ),
        m(
            "gen 2a 1p 2d 1c 1b 1s",
            2,
            "2a (\\_, A) + 1p (S) + 2d (Th, Th) + 1c (F) + 1b (SA) + 1s (\\_) = `1`\n-# success: 1 net success",
        ),
        g("gen 1f", 1, "1f (L) = 0 [force: 1 light, 0 dark]"),
        e("gen 2x", 4, kind!(K::AliasNeedsDice { alias: "gen", .. })),
        e("gen", 4, kind!(K::AliasNeedsDice { alias: "gen", .. })),
        n("6 4d6", 6),
        n("1d20+5; 2d6+3", 2),
        c("cs0", Some(true)),
        g("1d20", 10, "1d20 (20) = 20 (critical)"),
        g("1d20", 9, "1d20 (1) = 1 (fumble)"),
        g("2d20kh1", 10, "2d20kh1 (20, ~9~) = 20 (critical)"),
        g("1d6!=3", 1, "1d6!=3 (5) = 5"),
        g("4d6kh3 [str]", 1, "4d6kh3 (5, 4, 4, ~3~) [str] = 13"),
        g("1d20 [to hit] + 5", 1, "1d20 (15) [to hit] + 5 = 20"),
        g("floor(1d6/2)", 1, "floor(1d6 (5) / 2) = 2"),
        g("1d20*2+1d4", 1, "1d20 (15) * 2 + 1d4 (3) = 33"),
        g("-(1d6)", 1, "-(1d6 (5)) = -5"),
        g("1d6**2", 1, "1d6 (5) ** 2 = 25"),
        g("1d20 % 7", 1, "1d20 (15) % 7 = 1"),
        g("1d20 // 3", 1, "1d20 (15) // 3 = 5"),
        g("3 - 1d4 - 1", 1, "3 - 1d4 (3) - 1 = -1"),
        g("1d4 - -1", 1, "1d4 (3) - -1 = 4"),
        g(
            "2d6>7",
            1,
            "2d6>7 (5, 4) = 0 (0 successes) [no d6 can meet the target of 2d6>7, so it counts 0 successes; to compare the total, write 2d6 > 7 or (2d6)>7]",
        ),
        g(
            "4d6t7",
            1,
            "4d6t7 (5, 4, 4, 3) = 0 (0 successes) [no d6 can meet the target of 4d6t7, so it counts 0 successes]",
        ),
        g(
            "4dF>=2",
            1,
            "4dF>=2 (+, 0, 0, 0) = 0 (0 successes) [no Fate die can meet the target of 4dF>=2, so it counts 0 successes; to compare the total, write 4dF >= 2 or (4dF)>=2]",
        ),
        g("3d6>=6", 1, "3d6>=6 (5, 4, 4) = 0 (0 successes)"),
        g("(2d6)>7", 1, "(2d6 (5, 4)) > 7 -> 9 pass"),
        g("2d6 > 7", 1, "2d6 (5, 4) > 7 -> 9 pass"),
        g("4D6KH3", 1, "4D6KH3 (5, 4, 4, ~3~) = 13"),
        g("3D6!", 1, "3D6! (5, 4, 4) = 13"),
        g(
            "10d6t5t6",
            1,
            "10d6t5 (5, 4, 4, 3, 5, 1, 1, 3, 6, 4) (3) -> pass => 6 = 6 (3 successes)",
        ),
        g(
            "1d1!",
            1,
            "1d1! (1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!, 1!) = 101 [explosions stopped at the cap of 100 per die]",
        ),
        // ---- golden Markdown renders (seeded) -------------------------------
        m("4d6kh3", 1, "4d6kh3 (5, 4, 4, ~~3~~) = `13`"),
        m("3d6e", 4, "3d6e (2, **6**!, **6**!, 2, 3) = `19`"),
        m("1d20+5", 10, "1d20 (**20**) + 5 = `25` **(critical)**"),
        m("1d20", 9, "1d20 (**1**) = `1` **(fumble)**"),
        m("4d6r2", 2, "4d6r2 (1 -> 5, 5, 2 -> 2, 5) = `17`"),
        m("4dF", 1, "4dF (+, 0, 0, 0) = `1`"),
        m(
            "(Sneak *attack*) 1d20+5 with _style_",
            1,
            "**Sneak \\*attack\\***: 1d20 (15) + 5 = `20` — *with \\_style\\_*",
        ),
        m(
            "1d20+5>15t2d6+4",
            1,
            "1d20 (15) + 5 > 15 (20) → **pass** ⇒ 2d6 (4, 4) + 4 = `12`",
        ),
        m("1d20+5 >= 15", 2, "1d20 (3) + 5 >= 15 → `8` **fail**"),
        m(
            "10d10>=7f1",
            1,
            "10d10>=7f1 (8, 6, 6, 4, 7, 2, **1**, 4, 9, 6) = `2` (3 successes, 1 failure)",
        ),
        m("s 4d6k3", 1, "4d6k3 = `13`"),
        m("nr 1d20 > 10", 1, "`1` **pass**"),
        m(
            "2d6;1d4",
            1,
            "2d6 (5, 4) = `9`\n1d4 (3) = `3`\n**Total:** `12`",
        ),
        m(
            "2 4d6",
            1,
            "#1: 4d6 (5, 4, 4, 3) = `16`\n#2: 4d6 (5, **1**, **1**, 3) = `10`\n**Total:** `26`",
        ),
        m(
            "wng 4d6",
            1,
            "4d6t4ds6 (5, 4, 4, 3) = `3` (3 successes)\n-# Wrath die: 5",
        ),
        m(
            "1d1!",
            1,
            "1d1! (**1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, **1**!, … +61 more) = `101`\n-# explosions stopped at the cap of 100 per die",
        ),
        m("(1d20, 1d20)kh1", 1, "(1d20 (15), ~~1d20 (11)~~)kh1 = `15`"),
        m("1d6*2**2", 1, "1d6 (5) \\* 2 \\*\\* 2 = `20`"),
        // ---- errors with their column ----------------------------------------
        e("", 1, kind!(K::Empty)),
        e("   ", 4, kind!(K::Empty)),
        e(";", 2, kind!(K::Empty)),
        e("p ", 3, kind!(K::Empty)),
        e("1d20 + x", 8, kind!(K::Unexpected { .. })),
        e("1d20x", 5, kind!(K::Unexpected { .. })),
        e("1d6kx", 5, kind!(K::Unexpected { .. })),
        e("d", 1, kind!(K::Unexpected { .. })),
        e("abc", 1, kind!(K::Unexpected { .. })),
        e("[x]", 1, kind!(K::Unexpected { .. })),
        e("1d20+é", 6, kind!(K::Unexpected { .. })),
        e("é 1d20", 1, kind!(K::Unexpected { .. })),
        e("floor 3", 6, kind!(K::Unexpected { .. })),
        e("1d20)", 5, kind!(K::Unexpected { .. })),
        e("4wod", 5, kind!(K::UnexpectedEnd { .. })),
        e("1d20 +", 7, kind!(K::UnexpectedEnd { .. })),
        e("-", 2, kind!(K::UnexpectedEnd { .. })),
        e("1d20; 1d", 9, kind!(K::UnexpectedEnd { .. })),
        e("4d6mi", 6, kind!(K::UnexpectedEnd { .. })),
        e("4d6t>", 6, kind!(K::UnexpectedEnd { .. })),
        e("(1d20", 1, kind!(K::Unclosed { delimiter: '(' })),
        e("{1d20", 1, kind!(K::Unclosed { delimiter: '{' })),
        e("(1, 2", 1, kind!(K::Unclosed { delimiter: '(' })),
        e("floor(2", 6, kind!(K::Unclosed { delimiter: '(' })),
        e("1d20 [fire", 6, kind!(K::Unclosed { delimiter: '[' })),
        e(
            &too_long,
            1001,
            kind!(K::InputTooLong {
                length: 1001,
                max: 1000
            }),
        ),
        e("99999999999999999999", 1, kind!(K::NumberTooLarge)),
        e("1d0", 3, kind!(K::ZeroSides)),
        e("d0", 2, kind!(K::ZeroSides)),
        e("1d(0)", 3, kind!(K::ZeroSides)),
        e("1d(1d6-7)", 3, kind!(K::ZeroSides)),
        e("10001d6", 1, kind!(K::TooManyDice { count: 10001, .. })),
        e("(10000+1)d6", 1, kind!(K::TooManyDice { count: 10001, .. })),
        e(
            "1d1000001",
            3,
            kind!(K::TooManySides {
                sides: 1_000_001,
                ..
            }),
        ),
        e("(0-1)d6", 1, kind!(K::NegativeDiceCount { count: -1 })),
        e("1.5d6", 1, kind!(K::NotWhole { .. })),
        e("(1.5)d6", 1, kind!(K::NotWhole { .. })),
        e("1d(2.5)", 3, kind!(K::NotWhole { .. })),
        e("10000d6e1", 1, kind!(K::TooManyRolls { max: 20_000 })),
        e("3 10000d6", 3, kind!(K::TooManyRolls { .. })),
        e(&deep_parens, 33, kind!(K::TooDeep { max: 32 })),
        e(&deep_signs, 33, kind!(K::TooDeep { max: 32 })),
        e("0 1d20", 1, kind!(K::BadRepeat { count: 0, .. })),
        e("101 1d20", 1, kind!(K::BadRepeat { count: 101, .. })),
        e("1d20c0", 5, kind!(K::BadRepeat { .. })),
        e("1d20c101", 5, kind!(K::BadRepeat { .. })),
        e("6 1d20c3", 7, kind!(K::RepeatTwice)),
        e(&many_parts, 41, kind!(K::TooManyParts { max: 20 })),
        e("1/0", 2, kind!(K::DivisionByZero)),
        e("5 % 0", 3, kind!(K::DivisionByZero)),
        e("1 // 0", 3, kind!(K::DivisionByZero)),
        e("1d20/(1d1-1)", 5, kind!(K::DivisionByZero)),
        e("1.5/0", 4, kind!(K::DivisionByZero)),
        e("0**-1", 2, kind!(K::DivisionByZero)),
        e("2**64", 2, kind!(K::Overflow)),
        e("9223372036854775807+1", 20, kind!(K::Overflow)),
        e("(-8)**0.5", 5, kind!(K::NotReal)),
        e("1 < 2 < 3", 7, kind!(K::ChainedComparison)),
        e("(1,2)e", 6, kind!(K::InvalidModifier { .. })),
        e("(1,2)f", 6, kind!(K::InvalidModifier { .. })),
        e("{1d6}r1", 6, kind!(K::InvalidModifier { .. })),
        e("4d6!!e", 6, kind!(K::InvalidModifier { .. })),
        e("adv 2d6", 1, kind!(K::NoD20ForAdvantage)),
        e("2d6 dis", 5, kind!(K::NoD20ForAdvantage)),
        e("1d20 adv ** 2", 10, kind!(K::Unexpected { .. })),
        e(
            "1d20 >= 5 then 1d6 adv + 2",
            24,
            kind!(K::Unexpected { .. }),
        ),
        e("wng 2d8", 1, kind!(K::AliasNeedsDice { alias: "wng", .. })),
        e("sw1", 3, kind!(K::AliasNeedsDice { alias: "sw", .. })),
    ]
}

fn check(row: &Row) -> Result<(), String> {
    let input = row.input.as_str();
    let outcome = |seed: u64| dice::roll(input, &mut Rng::seeded(seed));
    match &row.expect {
        Expect::Error(kind, column) => {
            match dice::parse(input).and_then(|p| p.roll(&mut Rng::seeded(1))) {
                Ok(o) => Err(format!("expected an error, got {}", o.render_plain())),
                Err(err) if kind(err.kind()) && err.column() == *column => Ok(()),
                Err(err) => Err(format!("wrong error: {err} ({:?})", err.kind())),
            }
        }
        expect => {
            let o = outcome(1).map_err(|err| format!("unexpected error: {err}"))?;
            match expect {
                Expect::Total(v) => (o.total() == Num::Int(*v))
                    .then_some(())
                    .ok_or_else(|| format!("total {:?}, expected {v}", o.total())),
                Expect::Decimal(v) => match o.total() {
                    Num::Dec(x) if (x - v).abs() < 1e-9 => Ok(()),
                    other => Err(format!("total {other:?}, expected decimal {v}")),
                },
                Expect::Check(v) => (o.check() == *v)
                    .then_some(())
                    .ok_or_else(|| format!("check {:?}, expected {v:?}", o.check())),
                Expect::Results(k) => (o.results().count() == *k)
                    .then_some(())
                    .ok_or_else(|| format!("{} results, expected {k}", o.results().count())),
                Expect::Plain(seed, text) => {
                    let got = outcome(*seed)
                        .map_err(|err| err.to_string())?
                        .render_plain();
                    (got == *text)
                        .then_some(())
                        .ok_or_else(|| format!("got {got:?}"))
                }
                Expect::Markdown(seed, text) => {
                    let got = outcome(*seed)
                        .map_err(|err| err.to_string())?
                        .render_markdown();
                    (got == *text)
                        .then_some(())
                        .ok_or_else(|| format!("got {got:?}"))
                }
                Expect::Error(..) => Ok(()),
            }
        }
    }
}

#[test]
fn conformance_table() {
    let rows = rows();
    let failures: Vec<String> = rows
        .iter()
        .filter_map(|row| {
            check(row)
                .err()
                .map(|why| format!("{:?}: {why}", row.input))
        })
        .collect();
    assert!(rows.len() >= 300, "the table shrank to {} rows", rows.len());
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

/// Golden rows for errors go through `parse` alone where they are parse
/// errors, so positions do not depend on rolling.
#[test]
fn parse_errors_need_no_roll() {
    for input in ["1d20 + x", "(1d20", "10001d6", "1 < 2 < 3", "adv 2d6"] {
        assert!(dice::parse(input).is_err(), "{input}");
    }
    for input in ["1/0", "10000d6e1", "(0-1)d6"] {
        assert!(
            dice::parse(input).is_ok(),
            "{input} should fail only when rolled"
        );
    }
}

#[test]
fn error_messages_read_well() {
    let msg = |s: &str| {
        dice::roll(s, &mut Rng::seeded(1))
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    assert_eq!(
        msg("1d20 + x"),
        "unexpected `x` at column 8: expected a number, dice like `1d20`, or `(`"
    );
    assert_eq!(msg("1/0"), "division by zero at column 2");
    assert_eq!(msg("1d0"), "dice need at least one side at column 3");
    assert_eq!(msg("(1d20"), "`(` is never closed at column 1");
    assert_eq!(
        msg("floor 3"),
        "unexpected space at column 6: expected `(` after the function name"
    );
    assert_eq!(
        msg("1d20 +"),
        "the roll ends too early at column 7: expected a number, dice like `1d20`, or `(`"
    );
    assert_eq!(
        msg("20000d6"),
        "too many dice (20000); at most 10000 dice in one term at column 1"
    );
    assert_eq!(
        msg("10000d6e1"),
        "this roll needs more than 20000 dice (rerolls and explosions count), the budget of one roll; try fewer dice at column 1"
    );
}

#[test]
fn odds_errors_have_positions() {
    let err = dice::odds("1d20; 1d6").unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::OddsOfSeveralRolls));
    assert_eq!(err.column(), 7);
    let err = dice::odds("1d6/(1d2-1)").unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::DivisionByZero));
    assert_eq!(err.column(), 4);
}

/// An impossible check reads 0.00%, never "-0.00%"; a pool whose target no face can
/// meet says so, and how to compare the total.
#[test]
fn odds_of_an_impossible_check_read_zero_and_an_unmeetable_target_is_explained() {
    let plain = dice::odds("1d20+5>=30").unwrap().render_plain();
    assert!(plain.starts_with("1d20+5>=30: 0.00%\n"), "{plain}");
    let odds = dice::odds("2d6>=8").unwrap();
    assert_eq!(odds.at_least_one_success, Some(0.0));
    let plain = odds.render_plain();
    assert!(
        plain.starts_with("at least one success: 0.00%\n"),
        "{plain}"
    );
    assert!(
        plain.contains(
            "no d6 can meet the target of 2d6>=8, so it counts 0 successes; \
             to compare the total, write 2d6 >= 8 or (2d6)>=8"
        ),
        "{plain}"
    );
    let meant = dice::odds("2d6 >= 8").unwrap();
    assert!((meant.check.unwrap().probability - 15.0 / 36.0).abs() < 1e-12);
    for reachable in ["2d6>=6", "10d10t7", "4dF>=1", "2d6>=8 + 1d10>=8"] {
        let odds = dice::odds(reachable).unwrap();
        assert!(
            odds.notes.iter().filter(|n| n.contains("can meet")).count()
                == usize::from(reachable.contains("2d6>=8")),
            "{reachable}: {:?}",
            odds.notes
        );
    }
}

#[test]
fn outcome_serializes_to_a_walkable_json_tree() {
    let o = dice::roll("4d6kh3 + 2", &mut Rng::seeded(1)).unwrap();
    let v = serde_json::to_value(&o).unwrap();
    let result = &v["rolls"][0]["results"][0];
    assert_eq!(result["total"], 15);
    let tree = &result["tree"];
    assert_eq!(tree["type"], "binary");
    assert_eq!(tree["op"], "add");
    let dice = &tree["left"]["dice"];
    assert_eq!(tree["left"]["type"], "dice");
    assert_eq!(tree["left"]["notation"], "4d6kh3");
    assert_eq!(dice.as_array().map(Vec::len), Some(4));
    assert_eq!(dice[3]["value"], 3);
    assert_eq!(dice[3]["dropped"], true);
    assert!(dice[0].get("dropped").is_none());
    assert_eq!(tree["right"]["value"], 2);
    // Decimals stay decimals in JSON.
    let o = dice::roll("1.5*2", &mut Rng::seeded(1)).unwrap();
    assert_eq!(
        serde_json::to_value(o.total()).unwrap(),
        serde_json::json!(3.0)
    );
}

#[test]
fn critical_and_fumble_follow_the_leftmost_d20() {
    let o = |s: &str, seed| dice::roll(s, &mut Rng::seeded(seed)).unwrap();
    assert!(o("1d20", 10).is_critical());
    assert!(!o("1d20", 10).is_fumble());
    assert!(o("1d20", 9).is_fumble());
    // The d20 need not come first in the text, but it is the leftmost d20.
    assert!(o("1d6 + 1d20", 10).first().is_some());
    // No d20, no crit even on a max face.
    assert!(!o("1d1", 1).is_critical());
    // A maxed d6 is bold but does not make the roll critical.
    let r = o("1d1 + 1d6", 1);
    assert!(!r.is_critical());
    // The die they are read on: the leftmost d20, else a pool keeping one die.
    let sides = |s: &str| o(s, 3).deciding_die().map(|(_, sides)| sides);
    assert_eq!(sides("2d6 + 1d20"), Some(20));
    assert_eq!(sides("2d8kh1 + 3"), Some(8));
    assert_eq!(sides("4d6"), None);
    assert_eq!(sides("7"), None);
    let r = o("1d8", 3);
    let face = r.deciding_die().map(|(face, _)| face);
    assert_eq!(face.map(dice::Num::Int), Some(r.total()));
}

#[test]
fn adv_and_dis_before_an_operator_keep_the_rest_of_the_roll_in_the_odds() {
    let odds = dice::odds("1d20+5 dis >= 15").unwrap();
    let check = odds.check.as_ref().expect("the comparison is kept");
    assert_eq!(check.description, "2d20kl1+5 >= 15");
    assert!((check.probability - 0.3025).abs() < 1e-12);
    assert_eq!(odds.subject, "2d20kl1+5");
    let odds = dice::odds("adv + 4").unwrap();
    assert_eq!(odds.subject, "2d20kh1 + 4");
    assert!((odds.mean - 17.825).abs() < 1e-9);
    let odds = dice::odds("1d20 adv + 1d20").unwrap();
    assert_eq!(odds.subject, "2d20kh1 + 1d20");
    assert!((odds.mean - 24.325).abs() < 1e-9);
    // The comment is only what follows the roll.
    let program = dice::parse("1d20 dis +5 sneaky").unwrap();
    assert_eq!(program.comments().collect::<Vec<_>>(), [Some("sneaky")]);
}

/// Advantage and disadvantage on one roll cancel out, as the game's rules (and Avrae)
/// have it: the d20 is rolled once, wherever the words stand and in whichever order.
/// `eadv` (Elven Accuracy) keeps the highest of three.
#[test]
fn advantage_and_disadvantage_on_one_roll_cancel_out() {
    for input in [
        "1d20+5 adv dis",
        "dis 1d20+5 adv",
        "adv dis 1d20+5",
        "1d20 dis +5 adv",
        "adv 1d20 dis +5",
        "adv dis +5",
        "1d20 adv +5 dis",
    ] {
        let odds = dice::odds(input).unwrap();
        // (Where a word stood between the d20 and `+5`, its space stays.)
        assert_eq!(odds.subject.replace(' ', ""), "1d20+5", "{input}");
        assert!((odds.mean - 15.5).abs() < 1e-9, "{input}: {}", odds.mean);
        let outcome = dice::roll(input, &mut Rng::seeded(7)).unwrap();
        let text = outcome.render_plain();
        assert!(text.starts_with("1d20"), "{input}: {text}");
        assert!(!text.contains("2d20"), "{input}: {text}");
    }
    // Two words between operands and operators count, both.
    let odds = dice::odds("1d20 adv + 2 dis + 3").unwrap();
    assert_eq!(odds.subject.replace(' ', ""), "1d20+2+3");
    // With a comparison, on the odds of a check too.
    let odds = dice::odds("adv 1d20+5 >= 15 dis").unwrap();
    let check = odds.check.as_ref().expect("the comparison is kept");
    assert_eq!(check.description, "1d20+5 >= 15");
    assert!((check.probability - 0.55).abs() < 1e-12);
    // One word twice is still that one.
    assert_eq!(dice::odds("adv adv 1d20").unwrap().subject, "2d20kh1");
    assert_eq!(dice::odds("1d20 dis dis").unwrap().subject, "2d20kl1");
    // Elven Accuracy (`eadv`) is advantage on three d20s, over a plain `adv`, and
    // cancels out with disadvantage too.
    for input in [
        "eadv 1d20+5",
        "1d20+5 eadv",
        "1d20 eadv +5",
        "adv 1d20+5 eadv",
    ] {
        let odds = dice::odds(input).unwrap();
        assert_eq!(odds.subject.replace(' ', ""), "3d20kh1+5", "{input}");
        // The highest of three d20s averages 20 - (19 * 20 / 2)^2 / 20^3 = 15.4875.
        assert!((odds.mean - 20.4875).abs() < 1e-9, "{input}: {}", odds.mean);
        let text = dice::roll(input, &mut Rng::seeded(7))
            .unwrap()
            .render_plain();
        assert!(text.starts_with("3d20kh1 ("), "{input}: {text}");
        assert_eq!(text.matches(", ").count(), 2, "three dice shown: {text}");
    }
    assert_eq!(dice::odds("eadv + 2").unwrap().subject, "3d20kh1 + 2");
    assert_eq!(
        dice::odds("eadv 1d20+5 dis")
            .unwrap()
            .subject
            .replace(' ', ""),
        "1d20+5"
    );
    // Both still need a d20 to apply to, and the error points at the first word.
    let error = dice::parse("3d6 adv dis").unwrap_err();
    assert!(
        matches!(error.kind(), ErrorKind::NoD20ForAdvantage),
        "{error:?}"
    );
    assert_eq!(error.column(), 5, "{error:?}");
}
