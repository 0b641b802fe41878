//! `tavern check` over the campaigns' data: clean data written by the repositories has no
//! findings, and each kind of broken relation, seeded by hand into a real Redis, is
//! reported with the key that holds the broken reference as its subject.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

/// Two links and one complete series, written through the repositories.
async fn clean_env() -> Env {
    clean(env().await).await
}

async fn clean(env: Env) -> Env {
    env.store.link(meetup(11), user(22), None).await.unwrap();
    env.store.link(meetup(12), user(23), None).await.unwrap();
    env.full_series("s1", "e1", 500, 501, 600, 601).await;
    env.store.upsert_event(&upsert("e2", "s1")).await.unwrap();
    env
}

async fn findings(env: &Env) -> Vec<(String, String)> {
    campaigns::check::check(&env.redis)
        .await
        .unwrap()
        .into_iter()
        .map(|f| (f.subject, f.problem))
        .collect()
}

fn subjects(findings: &[(String, String)]) -> Vec<&str> {
    findings.iter().map(|(s, _)| s.as_str()).collect()
}

#[tokio::test]
async fn data_written_by_the_repositories_is_clean() {
    let env = clean(world_env().await).await;
    // Redis alone: the channels written here are made up, so Discord (asked when the
    // context has a bot token) would not know them.
    let mut ctx = env.ctx().clone();
    ctx.discord = discord::Discord::without_token();
    let feature = campaigns::feature(&ctx, None);
    let check = &feature.checks[0];

    let found = check.run().await.unwrap();

    assert_eq!(check.name(), "campaigns");
    assert!(found.is_empty(), "{found:#?}");
    assert_eq!(feature.name, "campaigns");
    assert_eq!(feature.checks.len(), 1);
    assert!(feature.jobs.is_empty(), "no config, no sync job");
}

#[tokio::test]
async fn a_link_without_its_inverse_is_reported() {
    let env = clean_env().await;
    env.del("discord_user:22:meetup_user").await;

    let found = findings(&env).await;

    assert_eq!(
        subjects(&found),
        vec!["discord_users", "meetup_user:11:discord_user"],
        "{found:#?}"
    );
    assert!(found[0].1.contains("names 22") && found[0].1.contains("discord_user:22:meetup_user"));
    assert!(
        found[1]
            .1
            .contains("inverse `discord_user:22:meetup_user` is missing"),
        "{}",
        found[1].1
    );
}

#[tokio::test]
async fn a_link_whose_inverse_points_elsewhere_is_reported() {
    let env = clean_env().await;
    env.set("discord_user:22:meetup_user", "12").await;

    let found = findings(&env).await;

    assert_eq!(
        subjects(&found),
        vec!["discord_user:22:meetup_user", "meetup_user:11:discord_user"],
        "{found:#?}"
    );
    assert!(
        found[0]
            .1
            .contains("`meetup_user:12:discord_user` points at 23"),
        "{}",
        found[0].1
    );
    assert!(found[1].1.contains("points at 22") && found[1].1.contains("points at 12 instead"));
}

#[tokio::test]
async fn a_series_whose_channel_belongs_to_another_series_is_reported() {
    let env = clean_env().await;
    env.set("discord_channel:500:event_series", "s9").await;

    let found = findings(&env).await;

    assert_eq!(
        subjects(&found),
        vec![
            "discord_channel:500:event_series",
            "event_series:s1:discord_channel"
        ],
        "{found:#?}"
    );
    assert!(
        found[0]
            .1
            .contains("`event_series:s9:discord_channel` is missing")
    );
    assert!(found[1].1.contains("points at s9 instead"));
}

#[tokio::test]
async fn a_voice_channel_without_its_inverse_is_reported() {
    let env = clean_env().await;
    env.del("event_series:s1:discord_voice_channel").await;

    let found = findings(&env).await;

    assert_eq!(
        subjects(&found),
        vec!["discord_voice_channel:501:event_series"],
        "{found:#?}"
    );
    assert!(
        found[0]
            .1
            .contains("`event_series:s1:discord_voice_channel` is missing")
    );
}

#[tokio::test]
async fn roles_without_their_inverse_are_reported() {
    let env = clean_env().await;
    env.del("discord_role:600:discord_channel").await;
    env.set("discord_host_role:601:discord_channel", "777")
        .await;

    let found = findings(&env).await;

    assert_eq!(
        subjects(&found),
        vec![
            "discord_channel:500:discord_host_role",
            "discord_channel:500:discord_role",
            "discord_host_role:601:discord_channel",
            "discord_roles",
        ],
        "{found:#?}"
    );
    assert!(found[0].1.contains("points at 777 instead"));
    assert!(
        found[1]
            .1
            .contains("`discord_role:600:discord_channel` is missing")
    );
    assert!(
        found[2]
            .1
            .contains("`discord_channel:777:discord_host_role` is missing")
    );
    assert!(found[3].1.contains("names 600"));
}

#[tokio::test]
async fn a_tracked_event_without_its_hash_or_series_is_reported() {
    let env = clean_env().await;
    env.sadd("meetup_events", "e3").await;
    env.del("meetup_event:e2").await;

    let found = findings(&env).await;

    assert_eq!(
        subjects(&found),
        vec!["meetup_events", "meetup_events", "meetup_events"],
        "{found:#?}"
    );
    let problems: Vec<&str> = found.iter().map(|(_, p)| p.as_str()).collect();
    assert!(problems.contains(&"names event e2, but its hash `meetup_event:e2` is missing"));
    assert!(problems.contains(&"names event e3, but its hash `meetup_event:e3` is missing"));
    assert!(problems.contains(&"names e3, but `meetup_event:e3:event_series` is missing"));
}

#[tokio::test]
async fn the_event_series_relation_is_checked_both_ways() {
    let env = clean_env().await;
    // e2 leaves its series' listing; the listing names an event that points elsewhere.
    env.srem("event_series:s1:meetup_events", "e2").await;
    env.sadd("event_series:s1:meetup_events", "e9").await;
    env.set("meetup_event:e9:event_series", "s2").await;
    env.sadd("meetup_events", "e9").await;
    env.sadd("event_series", "s2").await;
    env.sadd("event_series:s2:meetup_events", "e9").await;
    // Keys of a series nobody tracks.
    env.sadd("event_series:gone:meetup_events", "e1").await;

    let found = findings(&env).await;

    assert_eq!(
        subjects(&found),
        vec![
            "event_series:gone:meetup_events",
            "event_series:gone:meetup_events",
            "event_series:s1:meetup_events",
            "meetup_event:e2:event_series",
            "meetup_events",
        ],
        "{found:#?}"
    );
    let text = format!("{found:?}");
    assert!(text.contains("belongs to series gone, which is not in `event_series`"));
    assert!(
        text.contains("lists event e1, but `meetup_event:e1:event_series` points at series s1")
    );
    assert!(
        text.contains("lists event e9, but `meetup_event:e9:event_series` points at series s2")
    );
    assert!(text.contains("`event_series:s1:meetup_events` does not list event e2"));
    assert!(text.contains("meetup_event:e9` is missing"));
}

#[tokio::test]
async fn values_that_are_no_ids_and_keys_outside_their_set_are_reported() {
    let env = clean_env().await;
    env.set("discord_user:30:meetup_user", "abc").await;
    env.set("orphaned_discord_roles", "oops").await;

    let found = findings(&env).await;

    assert_eq!(
        subjects(&found),
        vec![
            "discord_user:30:meetup_user",
            "discord_user:30:meetup_user",
            "orphaned_discord_roles"
        ],
        "{found:#?}"
    );
    let text = format!("{found:?}");
    assert!(text.contains("holds `abc`, which is not a valid id"));
    assert!(text.contains("exists, but `discord_users` does not name 30"));
    assert!(text.contains("is a string, not a set"));
}
