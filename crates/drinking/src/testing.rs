//! Deterministic dice for tests and benchmarks of the drinking game. (Time comes from
//! the [`feature::Context`]'s clock: tests hand in a [`base::ManualClock`].)

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::domain::{DiceSource, Die, RandomDice, UserId};

/// Dice scripted per player: each player's rolls come from their own queue, so the
/// result does not depend on the order in which racing presses are handled. A player
/// whose queue is empty rolls `fallback` (or fair dice when it is `None`).
#[derive(Debug, Default)]
pub struct ScriptedDice {
    queues: Mutex<HashMap<UserId, VecDeque<Die>>>,
    fallback: Option<Die>,
}

impl ScriptedDice {
    pub fn new(fallback: Option<Die>) -> ScriptedDice {
        ScriptedDice {
            queues: Mutex::new(HashMap::new()),
            fallback,
        }
    }

    /// Queues `rolls` (values 1 to 6; others are ignored) for `player`.
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
    fn d6(&self, player: UserId) -> Die {
        let scripted = self
            .queues
            .lock()
            .ok()
            .and_then(|mut q| q.get_mut(&player).and_then(VecDeque::pop_front));
        scripted
            .or(self.fallback)
            .unwrap_or_else(|| RandomDice.d6(player))
    }
}
