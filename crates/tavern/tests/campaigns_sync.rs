//! `tavern campaigns sync --once` as an operator runs it: the binary against a real
//! Redis, the fake Meetup and discord-sim (REST only), configured through `TAVERN_*`.
//! Multi-threaded: the test blocks one worker on the child process while the fakes
//! answer it on the other.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use campaigns::repo::Tokens;
use feature::Clock as _;
use meetup::fake::{FakeMeetup, NewEvent};
use meetup::{ClientId, ClientSecret, GroupUrlname, RsvpStatus};

struct Setup {
    world: testkit::World,
    fake: FakeMeetup,
    redis_url: String,
}

async fn setup(authorised: bool) -> Setup {
    let mut world = testkit::World::new().await;
    let redis_url = world.redis_server().url();
    let fake = FakeMeetup::start().await.unwrap();
    let group = GroupUrlname::parse("dragons").unwrap();
    fake.add_group(&group, "Dragons and Dice").unwrap();
    let organiser = fake.add_member("Olivia Organiser");
    fake.add_oauth_client(
        &ClientId::new("tavern"),
        &ClientSecret::from("tavern-secret"),
        &"http://127.0.0.1/organiser/callback".parse().unwrap(),
    );
    let player = fake.add_member("Alice");
    let starts = feature::SystemClock.now().fixed_offset() + Duration::from_secs(3 * 86_400);
    let mut event = NewEvent::new(&group, "Tomb of Horrors", starts);
    event.description = "A deadly one-shot. [new adventure]".into();
    let event = fake.add_event(event).unwrap();
    fake.add_rsvp(&event, &player, RsvpStatus::Yes, 0).unwrap();
    let repo = campaigns::Repo::new(world.redis.clone());
    repo.link(
        campaigns::MeetupUserId::parse(player.as_str()).unwrap(),
        discord::model::UserId::new(world.demo.alice.get()),
        None,
    )
    .await
    .unwrap();
    if authorised {
        let tokens = fake.issue_tokens(&organiser).unwrap();
        repo.set_organizer_tokens(
            &Tokens {
                access: tokens.access_token,
                refresh: tokens.refresh_token,
            },
            feature::SystemClock.now() + Duration::from_secs(86_400),
        )
        .await
        .unwrap();
    }
    Setup {
        world,
        fake,
        redis_url,
    }
}

fn sync_once(s: &Setup) -> (Option<i32>, String, String) {
    sync_once_with(s, &[])
}

/// [`sync_once`] with more settings (`TAVERN_*` variables and their values).
fn sync_once_with(s: &Setup, more: &[(&str, String)]) -> (Option<i32>, String, String) {
    let endpoints = s.fake.endpoints();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tavern"))
        .args(["campaigns", "sync", "--once"])
        .envs(more.iter().map(|(k, v)| (*k, v.as_str())))
        .env("TAVERN_REDIS_URL", &s.redis_url)
        .env("TAVERN_LOG", "error")
        .env("TAVERN_DISCORD_TOKEN", s.world.sim.token())
        .env("TAVERN_DISCORD_API", s.world.sim.addr().to_string())
        .env("TAVERN_MEETUP_GROUPS", "dragons")
        .env("TAVERN_MEETUP_CLIENT_ID", "tavern")
        .env("TAVERN_MEETUP_CLIENT_SECRET", "tavern-secret")
        .env("TAVERN_MEETUP_GRAPHQL_URL", endpoints.graphql.as_str())
        .env("TAVERN_MEETUP_AUTHORIZE_URL", endpoints.authorize.as_str())
        .env("TAVERN_MEETUP_TOKEN_URL", endpoints.token.as_str())
        .env("TAVERN_CAMPAIGNS_GUILD_ID", s.world.demo.guild.to_string())
        .env(
            "TAVERN_CAMPAIGNS_FREE_SPOTS_CHANNEL",
            s.world.demo.campaigns.to_string(),
        )
        .output()
        .expect("run tavern campaigns sync --once");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sync_makes_the_channel_and_prints_what_it_did_and_a_second_changes_nothing() {
    let s = setup(true).await;
    let (code, stdout, stderr) = sync_once(&s);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("1 stored"), "{stdout}");
    assert!(stdout.contains("created: series"), "{stdout}");
    assert!(stdout.contains("changed: series"), "{stdout}");
    let channel = s
        .world
        .sim
        .channel_by_name(s.world.demo.guild, "tomb-of-horrors")
        .expect("the game channel exists");
    assert_eq!(
        s.world.sim.messages(channel.id).len(),
        1,
        "the announcement"
    );

    let (code, stdout, stderr) = sync_once(&s);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("1 series, 0 created, 0 changed, 0 deleted"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_organiser_token_it_fails_and_says_why() {
    let s = setup(false).await;
    let (code, stdout, stderr) = sync_once(&s);
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("no organiser token"), "{stderr}");
    assert!(
        s.world
            .sim
            .channel_by_name(s.world.demo.guild, "tomb-of-horrors")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_authorisation_is_told_to_the_organisers_with_a_link_to_the_organiser_page() {
    let s = setup(false).await;
    // Meetup knows neither token: the refresh is refused.
    campaigns::Repo::new(s.world.redis.clone())
        .set_organizer_tokens(
            &Tokens {
                access: "dead-access".into(),
                refresh: "dead-refresh".into(),
            },
            feature::SystemClock.now(),
        )
        .await
        .unwrap();
    let alerts = s
        .world
        .sim
        .create_channel(
            s.world.demo.guild,
            "organisers",
            discord_sim::ChannelKind::Text,
        )
        .unwrap();

    let (code, stdout, stderr) = sync_once_with(
        &s,
        &[
            ("TAVERN_PUBLIC_URL", "https://tavern.example".to_owned()),
            ("TAVERN_CAMPAIGNS_ALERTS_CHANNEL", alerts.to_string()),
        ],
    );
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    let told: Vec<String> = s
        .world
        .sim
        .messages(alerts)
        .into_iter()
        .map(|m| m.content)
        .collect();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        told[0].contains("Meetup refused Tavern's authorisation")
            && told[0].contains("https://tavern.example/campaigns/organiser"),
        "{told:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_guild_is_a_configuration_error() {
    let s = setup(true).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tavern"))
        .args(["campaigns", "sync", "--once"])
        .env("TAVERN_REDIS_URL", &s.redis_url)
        .env("TAVERN_MEETUP_GROUPS", "dragons")
        .env("TAVERN_MEETUP_CLIENT_ID", "tavern")
        .env("TAVERN_MEETUP_CLIENT_SECRET", "tavern-secret")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("TAVERN_CAMPAIGNS_GUILD_ID: is required when TAVERN_MEETUP_GROUPS is set"),
        "{stderr}"
    );
}
