//! Deterministic dice for tests and benchmarks of the drinking game. (Time comes from
//! the [`feature::Context`]'s clock: tests hand in a [`base::ManualClock`].)

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::domain::{DiceSource, Die, RandomDice, UserId};

/// Dice scripted per player: each player's rolls come from their own queue, so the
/// result does not depend on the order in which racing presses are handled. A player
/// whose queue is empty rolls `fallback` (or fair dice when it is `None`). The themed
/// lines are picked by a generator seeded with [`ScriptedDice::seed`] (0 unless set),
/// so a test sees the same lines on every run.
#[derive(Debug)]
pub struct ScriptedDice {
    queues: Mutex<HashMap<UserId, VecDeque<Die>>>,
    fallback: Option<Die>,
    lines: Mutex<StdRng>,
}

impl Default for ScriptedDice {
    fn default() -> ScriptedDice {
        ScriptedDice::new(None)
    }
}

impl ScriptedDice {
    pub fn new(fallback: Option<Die>) -> ScriptedDice {
        ScriptedDice {
            queues: Mutex::new(HashMap::new()),
            fallback,
            lines: Mutex::new(StdRng::seed_from_u64(0)),
        }
    }

    /// The same dice with the lines picked from `seed`.
    pub fn seed(self, seed: u64) -> ScriptedDice {
        ScriptedDice {
            lines: Mutex::new(StdRng::seed_from_u64(seed)),
            ..self
        }
    }

    /// Queues `rolls` (die faces, 1 to 100; others are ignored) for `player`.
    pub fn script(&self, player: UserId, rolls: &[u8]) {
        if let Ok(mut queues) = self.queues.lock() {
            queues
                .entry(player)
                .or_default()
                .extend(rolls.iter().filter_map(|v| Die::new(*v).ok()));
        }
    }
}

impl DiceSource for ScriptedDice {
    fn roll(&self, player: UserId, sides: u8) -> Die {
        let scripted = self
            .queues
            .lock()
            .ok()
            .and_then(|mut q| q.get_mut(&player).and_then(VecDeque::pop_front));
        scripted
            .or(self.fallback)
            .unwrap_or_else(|| RandomDice.roll(player, sides))
    }

    fn pick(&self, choices: usize) -> usize {
        match self.lines.lock() {
            Ok(mut rng) => rng.random_range(0..choices.max(1)),
            Err(_) => 0,
        }
    }
}
