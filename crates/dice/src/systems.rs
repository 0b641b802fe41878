//! Game systems whose dice mean more than their sum: Cypher System, AGE
//! stunt dice and Genesys / Star Wars narrative dice.
//!
//! Each is a dice pool with a [`System`] tag. The evaluator rolls the pool
//! as usual and asks this module what the faces mean: the notes for the
//! player, the stunt points, or (narrative dice) the symbols on each face
//! and the die's value, its net successes. The tables are the published
//! face layouts of each die.

use crate::outcome::{NarrativeDie, Symbols};

/// Number of sides of each narrative die.
pub(crate) fn narrative_sides(kind: NarrativeDie) -> i64 {
    match kind {
        NarrativeDie::Boost | NarrativeDie::Setback => 6,
        NarrativeDie::Ability | NarrativeDie::Difficulty => 8,
        NarrativeDie::Proficiency | NarrativeDie::Challenge | NarrativeDie::Force => 12,
    }
}

/// The letter used to write the die in a pool (`2a1p`).
pub(crate) fn narrative_letter(kind: NarrativeDie) -> char {
    match kind {
        NarrativeDie::Ability => 'a',
        NarrativeDie::Proficiency => 'p',
        NarrativeDie::Boost => 'b',
        NarrativeDie::Difficulty => 'd',
        NarrativeDie::Challenge => 'c',
        NarrativeDie::Setback => 's',
        NarrativeDie::Force => 'f',
    }
}

/// The die written with `letter`, if any.
pub(crate) fn narrative_kind(letter: u8) -> Option<NarrativeDie> {
    Some(match letter.to_ascii_lowercase() {
        b'a' => NarrativeDie::Ability,
        b'p' => NarrativeDie::Proficiency,
        b'b' => NarrativeDie::Boost,
        b'd' => NarrativeDie::Difficulty,
        b'c' => NarrativeDie::Challenge,
        b's' => NarrativeDie::Setback,
        b'f' => NarrativeDie::Force,
        _ => return None,
    })
}

/// Face text, as printed on the die: `S` success, `A` advantage, `Tr`
/// triumph, `F` failure, `Th` threat, `De` despair, `L` light side, `D`
/// dark side, `_` blank.
fn faces(kind: NarrativeDie) -> &'static [&'static str] {
    match kind {
        NarrativeDie::Boost => &["_", "_", "S", "SA", "AA", "A"],
        NarrativeDie::Setback => &["_", "_", "F", "F", "Th", "Th"],
        NarrativeDie::Ability => &["_", "S", "S", "SS", "A", "A", "SA", "AA"],
        NarrativeDie::Difficulty => &["_", "F", "FF", "Th", "Th", "Th", "ThTh", "FTh"],
        NarrativeDie::Proficiency => &[
            "_", "S", "S", "SS", "SS", "A", "SA", "SA", "SA", "AA", "AA", "Tr",
        ],
        NarrativeDie::Challenge => &[
            "_", "F", "F", "FF", "FF", "Th", "Th", "FTh", "FTh", "ThTh", "ThTh", "De",
        ],
        NarrativeDie::Force => &[
            "D", "D", "D", "D", "D", "D", "DD", "L", "L", "LL", "LL", "LL",
        ],
    }
}

/// What the die shows on `face` (1-based), as text.
pub(crate) fn face_text(kind: NarrativeDie, face: i64) -> &'static str {
    usize::try_from(face - 1)
        .ok()
        .and_then(|i| faces(kind).get(i))
        .copied()
        .unwrap_or("?")
}

/// The symbols on `face` (1-based).
pub(crate) fn face_symbols(kind: NarrativeDie, face: i64) -> Symbols {
    let mut s = Symbols::default();
    let text = face_text(kind, face).as_bytes();
    let mut i = 0;
    while let Some(&c) = text.get(i) {
        let next = text.get(i + 1).copied();
        match (c, next) {
            (b'T', Some(b'r')) => {
                s.triumphs += 1;
                i += 1;
            }
            (b'T', Some(b'h')) => {
                s.threats += 1;
                i += 1;
            }
            (b'D', Some(b'e')) => {
                s.despairs += 1;
                i += 1;
            }
            (b'S', _) => s.successes += 1,
            (b'A', _) => s.advantages += 1,
            (b'F', _) => s.failures += 1,
            (b'L', _) => s.light += 1,
            (b'D', _) => s.dark += 1,
            _ => {}
        }
        i += 1;
    }
    s
}

fn plural(out: &mut String, n: i64, one: &str, many: &str) {
    out.push_str(&n.to_string());
    out.push(' ');
    out.push_str(if n == 1 { one } else { many });
}

/// The netted reading of a narrative pool, e.g. `success: 2 successes,
/// 1 threat, 1 triumph`.
pub(crate) fn narrative_note(s: &Symbols) -> String {
    let net = s.net_successes();
    let adv = s.net_advantages();
    let has_check = s.is_check();
    let mut out = String::new();
    if has_check {
        if net > 0 {
            out.push_str("success: ");
            plural(&mut out, net, "net success", "net successes");
        } else if net == 0 {
            out.push_str("failure: no net success");
        } else {
            out.push_str("failure: ");
            plural(&mut out, -net, "net failure", "net failures");
        }
        if adv != 0 {
            out.push_str(", ");
            if adv > 0 {
                plural(&mut out, adv, "advantage", "advantages");
            } else {
                plural(&mut out, -adv, "threat", "threats");
            }
        }
        if s.triumphs > 0 {
            out.push_str(", ");
            plural(&mut out, s.triumphs, "triumph", "triumphs");
        }
        if s.despairs > 0 {
            out.push_str(", ");
            plural(&mut out, s.despairs, "despair", "despairs");
        }
    }
    if s.light + s.dark > 0 {
        if has_check {
            out.push_str("; ");
        }
        out.push_str("force: ");
        out.push_str(&s.light.to_string());
        out.push_str(" light, ");
        out.push_str(&s.dark.to_string());
        out.push_str(" dark");
    }
    out
}

/// Cypher System: what a natural face on the d20 adds.
pub(crate) fn cypher_note(face: i64) -> Option<&'static str> {
    Some(match face {
        1 => "natural 1: GM intrusion",
        17 => "natural 17: +1 damage on an attack",
        18 => "natural 18: +2 damage on an attack",
        19 => "natural 19: minor effect (or +3 damage on an attack)",
        20 => "natural 20: major effect (or +4 damage on an attack)",
        _ => return None,
    })
}

/// AGE: stunt points when any two of the three dice match; the drama die
/// is the last one.
pub(crate) fn age_stunt_points(faces: &[i64]) -> Option<i64> {
    let [a, b, drama] = faces else { return None };
    (a == b || a == drama || b == drama).then_some(*drama)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_face_table_has_the_die_size() {
        for kind in [
            NarrativeDie::Ability,
            NarrativeDie::Proficiency,
            NarrativeDie::Boost,
            NarrativeDie::Difficulty,
            NarrativeDie::Challenge,
            NarrativeDie::Setback,
            NarrativeDie::Force,
        ] {
            assert_eq!(
                i64::try_from(faces(kind).len()).ok(),
                Some(narrative_sides(kind))
            );
            assert_eq!(
                narrative_kind(narrative_letter(kind) as u8),
                Some(kind),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn faces_read_as_symbols() {
        let tr = face_symbols(NarrativeDie::Proficiency, 12);
        assert_eq!((tr.triumphs, tr.successes), (1, 0));
        assert_eq!(tr.net_successes(), 1);
        let de = face_symbols(NarrativeDie::Challenge, 12);
        assert_eq!(de.net_successes(), -1);
        let fth = face_symbols(NarrativeDie::Difficulty, 8);
        assert_eq!((fth.failures, fth.threats), (1, 1));
        let dd = face_symbols(NarrativeDie::Force, 7);
        assert_eq!((dd.dark, dd.light), (2, 0));
        let sa = face_symbols(NarrativeDie::Boost, 4);
        assert_eq!((sa.successes, sa.advantages), (1, 1));
    }

    #[test]
    fn age_doubles_grant_the_drama_die() {
        assert_eq!(age_stunt_points(&[3, 3, 5]), Some(5));
        assert_eq!(age_stunt_points(&[2, 6, 6]), Some(6));
        assert_eq!(age_stunt_points(&[1, 2, 3]), None);
    }

    #[test]
    fn narrative_notes_net_the_symbols() {
        let s = Symbols {
            successes: 3,
            failures: 1,
            advantages: 1,
            threats: 2,
            triumphs: 1,
            ..Symbols::default()
        };
        assert_eq!(
            narrative_note(&s),
            "success: 3 net successes, 1 threat, 1 triumph"
        );
        let f = Symbols {
            light: 2,
            dark: 1,
            ..Symbols::default()
        };
        assert_eq!(narrative_note(&f), "force: 2 light, 1 dark");
    }
}
