//! Sandbox mode's campaigns: without a Discord token, `tavern serve` runs a fake Meetup
//! with a demo group, configured against the demo guild; the first sync fills Redis,
//! and the demo player links their Meetup account through the web flow.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use campaigns::{MeetupEventId, MeetupUserId, Repo};
use discord::model::UserId;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

fn location(response: &reqwest::Response) -> String {
    response.headers()[LOCATION].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_sandbox_syncs_a_demo_meetup_and_links_the_demo_player_on_the_web() {
    let app = common::spawn_app().await;
    let meetup = app
        .running
        .meetup
        .clone()
        .expect("sandbox mode has a fake Meetup");
    let demo = &meetup.demo;

    // Configured: the organiser's tokens are stored, the demo guild is set up.
    let redis = app.redis.connect().await;
    let repo = Repo::new(redis.clone());
    let tokens = repo
        .organizer_tokens()
        .await
        .unwrap()
        .expect("organiser tokens");
    assert!(meetup.fake.is_access_token_valid(&tokens.tokens.access));
    let alice = UserId::new(u64::from(app.demo().alice));
    assert_eq!(
        repo.meetup_user_of(alice).await.unwrap(),
        Some(MeetupUserId::parse(demo.game_master.as_str()).unwrap()),
        "the demo game master is Alice, who so hosts two games"
    );
    let roles: Vec<String> = app
        .sim()
        .roles(app.demo().guild)
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert!(roles.iter().any(|r| r == "Campaign admins"), "{roles:?}");

    // The sync right after start-up fills Redis with the demo's events and series.
    let mut expected: Vec<MeetupEventId> = demo
        .campaign
        .iter()
        .chain([&demo.one_shot, &demo.online])
        .map(|e| MeetupEventId::parse(e.as_str()).unwrap())
        .collect();
    expected.sort();
    testkit::eventually("the first sync stores the demo events", || {
        let repo = repo.clone();
        let expected = expected.clone();
        async move {
            let mut tracked = repo.tracked_events().await.ok()?;
            tracked.sort();
            (tracked == expected).then_some(())
        }
    })
    .await;
    let series = repo.tracked_series().await.unwrap();
    assert_eq!(series.len(), 3, "{series:?}");
    let campaign = campaigns::EventSeriesId::started_by(&expected_first(demo));
    assert_eq!(repo.series_events(&campaign).await.unwrap().len(), 2);
    assert_eq!(
        repo.series_type(&campaign).await.unwrap(),
        Some(campaigns::SeriesType::Campaign)
    );
    let online =
        campaigns::EventSeriesId::started_by(&MeetupEventId::parse(demo.online.as_str()).unwrap());
    assert!(repo.series_is_online(&online).await.unwrap());

    // The Discord side of the same sync: a game channel per series in the sandbox's
    // categories (the campaigns in "Campaigns", the one-shot in "One-shots"), which
    // the console shows.
    let sim = app.sim();
    let guild = app.demo().guild;
    let category = |name: &str| {
        sim.channels(guild)
            .into_iter()
            .find(|c| c.kind == discord_sim::ChannelKind::Category && c.name == name)
            .map(|c| c.id)
            .expect("the sandbox's category")
    };
    let (campaigns_category, one_shots) = (category("Campaigns"), category("One-shots"));
    testkit::eventually("the sync makes the game channels", || async move {
        let channels = sim.channels(guild);
        let under = |parent| {
            channels
                .iter()
                .filter(|c| c.kind == discord_sim::ChannelKind::Text && c.parent_id == Some(parent))
                .count()
        };
        (under(campaigns_category) == 2 && under(one_shots) == 1).then_some(())
    })
    .await;
    // Each channel is recorded in Redis right after Discord made it.
    testkit::eventually("the game channels are recorded", || {
        let repo = repo.clone();
        async move { (repo.game_channels().await.ok()?.len() == 3).then_some(()) }
    })
    .await;

    // The demo player links their Meetup account through the web flow, with the
    // one-time link `/link-meetup` hands out.
    let player = UserId::new(u64::from(app.demo().demo_player));
    let id = repo.create_linking_id(player).await.unwrap();
    let http = common::no_redirects();
    let page = http
        .get(app.url(&format!("/link-meetup/{}", id.expose())))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let started = http
        .get(app.url(&format!("/link-meetup/{}/start", id.expose())))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 303);
    let cookie = started.headers()[SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let approved = http.get(location(&started)).send().await.unwrap();
    assert_eq!(approved.status(), 302);
    let done = http
        .get(location(&approved))
        .header(COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    assert_eq!(
        repo.meetup_user_of(player).await.unwrap(),
        Some(MeetupUserId::parse(demo.player.as_str()).unwrap())
    );

    // The demo group has a time zone: the campaign's schedule form reads the date and
    // time there, and suggests the latest session's hour a week later.
    let channel = repo
        .series_channel(&campaign)
        .await
        .unwrap()
        .expect("the campaign's channel");
    let session = app.log_in(&http).await;
    let form = http
        .get(app.url(&format!("/campaigns/schedule/{channel}")))
        .header(COOKIE, session)
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 200);
    let form = form.text().await.unwrap();
    let latest = meetup
        .fake
        .events()
        .into_iter()
        .find(|(id, _)| *id == demo.campaign[1])
        .map(|(_, event)| event.starts_at)
        .unwrap();
    let suggested = latest
        .with_timezone(&meetup::fake::demo::TIMEZONE)
        .naive_local()
        + chrono::TimeDelta::days(7);
    assert!(form.contains("Time (Europe/Zurich)"), "{form}");
    assert!(
        form.contains(&format!(r#"value="{}""#, suggested.format("%Y-%m-%d"))),
        "{form}"
    );
    assert!(form.contains(r#"value="18:00""#), "{form}");
}

fn expected_first(demo: &meetup::fake::demo::Demo) -> MeetupEventId {
    MeetupEventId::parse(demo.campaign[0].as_str()).unwrap()
}

/// A restart keeps the Redis but gets a new fake Discord (new ids, none of the bot's
/// channels): what was kept of the earlier one is forgotten, so the new Alice is the
/// demo game master again, the demo player's Meetup account (linked to the earlier
/// demo player) can be linked again, the earlier demo player's web session is over,
/// and the first sync runs at once and makes every game's channel in the new guild.
#[tokio::test]
async fn after_a_restart_on_the_same_redis_what_pointed_at_the_earlier_fake_discord_starts_afresh()
{
    let first = common::spawn_app().await;
    let meetup = first.running.meetup.clone().expect("a fake Meetup");
    let player_account = MeetupUserId::parse(meetup.demo.player.as_str()).unwrap();
    let game_master = MeetupUserId::parse(meetup.demo.game_master.as_str()).unwrap();
    let repo = Repo::new(first.redis.connect().await);
    testkit::eventually("the first start's sync makes the game channels", || {
        let repo = repo.clone();
        async move { (repo.game_channels().await.ok()?.len() == 3).then_some(()) }
    })
    .await;
    let earlier_player = UserId::new(u64::from(first.demo().demo_player));
    let earlier_alice = UserId::new(u64::from(first.demo().alice));
    repo.link(player_account, earlier_player, None)
        .await
        .unwrap();
    let web = common::no_redirects();
    let cookie = first.log_in(&web).await;
    let me = |app_url: String, cookie: String| {
        let web = web.clone();
        async move {
            web.get(app_url)
                .header(COOKIE, cookie)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(me(first.url("/api/me"), cookie.clone()).await, 200);
    // A topic set on the first start's topic voice channel a moment ago.
    let claim = repo.read_topic_claim().await.unwrap();
    assert!(repo.claim_topic(&claim, chrono::Utc::now()).await.unwrap());

    let common::TestApp {
        running,
        redis,
        postgres,
        http,
    } = first;
    running.shutdown();
    running.wait().await.unwrap();
    let config = common::config(&[
        ("TAVERN_REDIS_URL", redis.url()),
        ("TAVERN_DATABASE_URL", postgres.url()),
    ]);
    let second = common::TestApp {
        running: tavern::start(config).await.expect("tavern starts again"),
        redis,
        postgres,
        http,
    };
    second.wait_ready().await;

    let alice = UserId::new(u64::from(second.demo().alice));
    let player = UserId::new(u64::from(second.demo().demo_player));
    assert_ne!(alice, earlier_alice, "the new fake Discord has new ids");
    assert_eq!(
        repo.discord_user_of(game_master).await.unwrap(),
        Some(alice)
    );
    assert_eq!(repo.meetup_user_of(earlier_alice).await.unwrap(), None);
    assert_eq!(repo.meetup_user_of(earlier_player).await.unwrap(), None);
    // The new topic voice channel is not held back by the earlier one's topic.
    assert_eq!(repo.read_topic_claim().await.unwrap().set_at, None);
    // The earlier demo player's web session is over: the Log in link signs in this one.
    assert_eq!(me(second.url("/api/me"), cookie).await, 401);
    let cookie = second.log_in(&web).await;
    assert_eq!(me(second.url("/api/me"), cookie).await, 200);
    repo.link(player_account, player, None)
        .await
        .expect("the demo player links their Meetup account again");

    let sim = second.sim();
    let guild = second.demo().guild;
    let repo = &repo;
    testkit::eventually(
        "the sync runs at once and makes the games' channels again",
        || async move {
            let recorded = repo.game_channels().await.ok()?;
            let existing: Vec<u64> = sim.channels(guild).iter().map(|c| c.id.get()).collect();
            (recorded.len() == 3 && recorded.iter().all(|c| existing.contains(&c.get())))
                .then_some(())
        },
    )
    .await;
    assert_eq!(repo.tracked_series().await.unwrap().len(), 3);
}

/// A start on the sandbox's own Redis forgets what pointed at another start's fake
/// Discord (on another's Redis the sandbox refuses to start: see `sandbox_guard.rs`).
#[tokio::test]
async fn a_start_on_its_own_redis_forgets_another_starts_alice() {
    let app = common::spawn_app().await;
    let meetup = app.running.meetup.clone().expect("a fake Meetup");
    let game_master = MeetupUserId::parse(meetup.demo.game_master.as_str()).unwrap();
    let redis = app.redis.connect().await;
    let repo = Repo::new(redis.clone());
    testkit::eventually("the sync makes the game channels", || {
        let repo = repo.clone();
        async move { (repo.game_channels().await.ok()?.len() == 3).then_some(()) }
    })
    .await;
    assert!(repo.discord_user_of(game_master).await.unwrap().is_some());
    // As seen by a start whose fake Discord has another Alice.
    let another = discord_sim::Demo {
        alice: discord_sim::Snowflake::new(42),
        ..app.demo().clone()
    };

    tavern::sandbox::forget_an_earlier_fake_discord(&redis, &meetup, &another)
        .await
        .unwrap();
    assert_eq!(repo.discord_user_of(game_master).await.unwrap(), None);
    assert_eq!(repo.tracked_series().await.unwrap(), Vec::new());
}
