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

#[allow(unused_imports)]
pub use testkit::Logs;

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
