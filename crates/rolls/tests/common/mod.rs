//! What the rolls tests share.

#![allow(dead_code)] // each test binary uses some of it

use std::sync::Arc;

use discord::{Action, Actor, InteractionId, Invocation, Options};
use rolls::DicePool;
use rolls::domain::{Authenticated, ChannelId, UserId};
use rolls::ops::Controller;
use rolls::repo::Repo;
use testkit::World;

/// `user` as Discord delivers them: the actor of an interaction, authenticated.
pub fn me(user: UserId) -> Authenticated {
    Authenticated::by_discord(&Invocation {
        id: InteractionId::new(1),
        action: Action::Command {
            name: "roll".into(),
            options: Options::default(),
        },
        actor: Actor {
            id: user,
            name: format!("user {user}"),
        },
        guild_id: None,
        channel_id: ChannelId::new(1),
        member_permissions: None,
    })
}

/// A controller over the world's Redis and clock, with a small dice pool.
pub fn controller(world: &World) -> Controller {
    Controller::new(
        Repo::new(world.redis.clone()),
        DicePool::new(2, 1),
        Arc::clone(&world.ctx.clock),
    )
}

/// Everything logged while [`Logs::capture`]'s guard lives, on this thread (the
/// tests run on one).
#[derive(Clone, Default)]
pub struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}

impl Logs {
    pub fn capture(&self) -> tracing::subscriber::DefaultGuard {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(self.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    /// The lines at WARN that contain `needle`.
    pub fn warnings(&self, needle: &str) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().expect("log buffer"))
            .lines()
            .filter(|l| l.contains(" WARN ") && l.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}

/// `n` users written straight into Redis as the controller would have: each in
/// `user_set` with a `user_{id}` document, stamped at `at` (Unix millis), and
/// `c_roll` counting one roll each.
pub async fn seed_users(redis: &store::Redis, n: u64, at: i64) {
    let mut conn = redis.conn();
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut pipe = redis::pipe();
        for i in chunk {
            let id = 1_000_000 + i;
            pipe.sadd("user_set", id.to_string()).ignore();
            pipe.set(
                format!("user_{id}"),
                format!(r#"{{"characters":{{"Hero{i}":{{"initiative_modifier":1}}}}}}"#),
            )
            .ignore();
            pipe.set(format!("user_{id}:updated_time"), at.to_string())
                .ignore();
        }
        let () = pipe.query_async(&mut conn).await.expect("seed users");
    }
    let mut pipe = redis::pipe();
    pipe.set("user_set:updated_time", at.to_string()).ignore();
    pipe.incr("c_roll", n).ignore();
    pipe.set("c_:updated_time", at.to_string()).ignore();
    let () = pipe.query_async(&mut conn).await.expect("seed counters");
}
