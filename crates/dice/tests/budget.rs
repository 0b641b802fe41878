//! The work budget of one expression (GRAMMAR.md, "Limits" and "Odds"): a roll
//! rolls at most `MAX_ROLLS` dice, the odds simulate at most
//! `SIMULATION_DICE_BUDGET` dice, and what is sure to go over is refused before
//! the work is done.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

use dice::limits::{MAX_ROLLS, SIMULATION_DICE_BUDGET, SIMULATION_MIN_SAMPLES};
use dice::{ErrorKind, Method, Rng};

fn over_budget(expression: &str) -> dice::DiceError {
    let err = dice::odds(expression).expect_err(expression);
    match err.kind() {
        ErrorKind::OddsOverBudget {
            budget,
            samples,
            dice_per_roll,
        } => {
            assert_eq!(*budget, SIMULATION_DICE_BUDGET, "{expression}");
            assert_eq!(*samples, SIMULATION_MIN_SAMPLES, "{expression}");
            assert!(
                dice_per_roll * (*samples as u64) > *budget as u64,
                "{expression}: {dice_per_roll} dice per roll would fit"
            );
        }
        other => panic!("{expression}: {other:?}"),
    }
    err
}

/// 5,001 dice a roll: 2,000 simulated rolls would be just over 10 million dice.
#[test]
fn odds_that_would_simulate_more_than_the_budget_are_refused_naming_it() {
    let err = over_budget("5001d6km1");
    let message = err.to_string();
    assert!(message.contains("10,000,000 dice"), "{message}");
    assert!(message.contains("odds budget"), "{message}");
    assert_eq!(err.column(), 1);
}

/// Explosions make the rolls bigger than their literal dice: 4,900 d6 that explode
/// roll about 5,900 dice each, so the simulation finds out on its way and stops.
#[test]
fn odds_whose_dice_grow_while_simulating_stop_at_the_budget() {
    over_budget("4900d6!km1");
}

#[test]
fn odds_within_the_budget_are_still_simulated() {
    let odds = dice::odds("4d6km1").expect("within budget");
    let Method::Simulated { samples, .. } = odds.method else {
        panic!("{:?}", odds.method)
    };
    assert!(samples * 4 <= SIMULATION_DICE_BUDGET, "{samples} samples");
    assert!(samples >= SIMULATION_MIN_SAMPLES);
}

/// `3 10000d6` is sure to need 30,000 dice: refused before a single die is rolled,
/// so the caller's generator has not moved.
#[test]
fn a_roll_sure_to_go_over_is_refused_before_rolling() {
    for expression in [
        "3 10000d6",
        "10000d6; 10000d6; 1d6",
        "10000d6 + 10000d6 + 1d20",
    ] {
        let mut rng = Rng::seeded(7);
        let untouched = rng.clone();
        let err = dice::roll(expression, &mut rng).expect_err(expression);
        assert!(
            matches!(err.kind(), ErrorKind::TooManyRolls { max } if *max == MAX_ROLLS),
            "{expression}: {err}"
        );
        assert!(err.to_string().contains("budget"), "{err}");
        assert_eq!(rng, untouched, "{expression}: dice were rolled");
        let mut text = String::new();
        let program = dice::parse(expression).expect("parse");
        let streamed = program
            .roll_plain(&mut rng, &mut text)
            .expect_err(expression);
        assert_eq!(streamed, err);
        assert_eq!(rng, untouched);
    }
}
