//! Guild and channel lifecycle as a clip archive follows it: GUILD_CREATE's channels,
//! guild and channel updates and deletes, the bot leaving a guild and being added
//! back through the bot-install flow.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{RawGateway, Rest, twilight, twilight_event};
use discord_sim::{ChannelKind, ChannelSpec, intents};
use twilight_model::gateway::event::{DispatchEvent, GatewayEvent};

const ICON: &str = "a_0123456789abcdef0123456789abcdef";

#[tokio::test]
async fn guild_and_channel_changes_are_announced_in_discords_shape() {
    let sim = common::start();
    let demo = sim.seed_demo();
    let rest = Rest::new(&sim);
    let mut nsfw = ChannelSpec::new("late night", ChannelKind::Text).parent(demo.category);
    nsfw.nsfw = true;
    let late = sim.create_channel_with(demo.guild, nsfw).unwrap();
    sim.update_guild(demo.guild, None, Some(Some(ICON)))
        .unwrap();

    let mut gateway = RawGateway::connect(&sim).await;
    gateway.identify(&sim, intents::GUILDS, [0, 1]).await;
    let create = gateway.dispatch("GUILD_CREATE").await;
    let GatewayEvent::Dispatch(_, DispatchEvent::GuildCreate(parsed)) = twilight_event(&create)
    else {
        panic!("not a guild create: {create}");
    };
    let guild = &create["d"];
    assert_eq!(guild["icon"], ICON);
    assert_eq!(guild["owner_id"], sim.bot_user_id().to_string());
    assert!(matches!(
        *parsed,
        twilight_model::gateway::payload::incoming::GuildCreate::Available(_)
    ));
    let channels = guild["channels"].as_array().unwrap();
    let late_json = channels
        .iter()
        .find(|c| c["id"] == late.to_string())
        .unwrap();
    assert_eq!(late_json["name"], "late-night");
    assert_eq!(late_json["nsfw"], true);
    assert_eq!(late_json["type"], 0);
    assert_eq!(late_json["parent_id"], demo.category.to_string());
    let voice = channels
        .iter()
        .find(|c| c["id"] == demo.voice.to_string())
        .unwrap();
    assert_eq!(
        (voice["type"].as_u64(), voice["nsfw"].as_bool()),
        (Some(2), Some(false))
    );

    // REST agrees.
    let (_, channel) = rest.get(&format!("/channels/{late}")).await;
    twilight::<twilight_model::channel::Channel>("GET /channels/{id}", &channel);
    assert_eq!(channel["guild_id"], demo.guild.to_string());
    assert_eq!(channel["nsfw"], true);
    let (_, fetched) = rest.get(&format!("/guilds/{}", demo.guild)).await;
    twilight::<twilight_model::guild::Guild>("GET /guilds/{id}", &fetched);
    assert_eq!(fetched["icon"], ICON);
    assert_eq!(fetched["owner_id"], sim.bot_user_id().to_string());

    // GUILD_UPDATE.
    sim.update_guild(demo.guild, Some("Tavern Deluxe"), Some(None))
        .unwrap();
    let update = gateway.dispatch("GUILD_UPDATE").await;
    let GatewayEvent::Dispatch(_, DispatchEvent::GuildUpdate(parsed)) = twilight_event(&update)
    else {
        panic!("not a guild update: {update}");
    };
    assert_eq!(parsed.name, "Tavern Deluxe");
    assert!(parsed.icon.is_none());
    assert!(
        sim.update_guild(demo.guild, None, Some(Some("not-a-hash")))
            .is_err()
    );

    // CHANNEL_UPDATE and CHANNEL_DELETE.
    sim.update_channel(late, Some("after hours"), Some(false))
        .unwrap();
    let update = gateway.dispatch("CHANNEL_UPDATE").await;
    twilight_event(&update);
    assert_eq!(update["d"]["name"], "after-hours");
    assert_eq!(update["d"]["nsfw"], false);
    assert_eq!(update["d"]["guild_id"], demo.guild.to_string());
    sim.delete_channel(late).unwrap();
    let delete = gateway.dispatch("CHANNEL_DELETE").await;
    twilight_event(&delete);
    assert_eq!(delete["d"]["id"], late.to_string());
    assert!(sim.channel(late).is_none());
    let (status, body) = rest.get(&format!("/channels/{late}")).await;
    assert_eq!((status, body["code"].as_u64()), (404, Some(10003)));
}

#[tokio::test]
async fn a_removed_bot_hears_nothing_until_it_is_installed_again() {
    let sim = common::start();
    let demo = sim.seed_demo();
    let rest = Rest::new(&sim);
    let redirect = "http://127.0.0.1:9/clips/install/callback";
    sim.register_redirect_uri(redirect);
    let mut gateway = RawGateway::connect(&sim).await;
    gateway.identify(&sim, common::ALL_INTENTS, [0, 1]).await;

    // A guild the bot is not in yet: invisible to the bot.
    let keep = sim.create_user_guild("Carol's Keep", demo.carol).unwrap();
    let hall = sim
        .create_channel(keep, "clips", ChannelKind::Text)
        .unwrap();
    let (status, body) = rest.get(&format!("/guilds/{keep}")).await;
    assert_eq!((status, body["code"].as_u64()), (403, Some(50001)));
    let (status, _) = rest.get(&format!("/channels/{hall}")).await;
    assert_eq!(status, 403);

    // Carol adds it: the redirect carries code, state, guild_id and permissions, and
    // the bot gets GUILD_CREATE with the channel.
    let (app, guild, carol) = (
        sim.application_id().to_string(),
        keep.to_string(),
        demo.carol.to_string(),
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = no_redirects
        .get(format!("{}/oauth2/authorize", sim.http_url()))
        .query(&[
            ("client_id", app.as_str()),
            ("response_type", "code"),
            ("scope", "bot applications.commands"),
            ("guild_id", guild.as_str()),
            ("permissions", "68608"),
            ("disable_guild_select", "true"),
            ("state", "intent-1"),
            ("redirect_uri", redirect),
            ("sim_user_id", carol.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let location = follow_redirect(response);
    for key in [
        "code=",
        "state=intent-1",
        &format!("guild_id={keep}"),
        "permissions=68608",
    ] {
        assert!(location.contains(key), "{location} lacks {key}");
    }
    let demo_guild = gateway.dispatch("GUILD_CREATE").await;
    assert_eq!(demo_guild["d"]["id"], demo.guild.to_string(), "with READY");
    let create = gateway.dispatch("GUILD_CREATE").await;
    twilight_event(&create);
    assert_eq!(create["d"]["id"], keep.to_string());
    assert_eq!(create["d"]["owner_id"], demo.carol.to_string());
    assert_eq!(create["d"]["channels"][0]["id"], hall.to_string());
    let (status, _) = rest.get(&format!("/channels/{hall}/messages")).await;
    assert_eq!(status, 200);

    // Kicked: GUILD_DELETE without `unavailable` (a removal, not an outage), then
    // silence and 403s.
    sim.remove_bot_from_guild(keep).unwrap();
    let delete = gateway.dispatch("GUILD_DELETE").await;
    let GatewayEvent::Dispatch(_, DispatchEvent::GuildDelete(parsed)) = twilight_event(&delete)
    else {
        panic!("not a guild delete: {delete}");
    };
    assert_eq!(parsed.id.get(), keep.get());
    assert_eq!(parsed.unavailable, None);
    assert!(sim.member(keep, sim.bot_user_id()).is_none());
    let (status, body) = rest.get(&format!("/channels/{hall}/messages")).await;
    assert_eq!((status, body["code"].as_u64()), (403, Some(50001)));
    sim.post_user_message(hall, demo.carol, "anyone?", Vec::new())
        .unwrap();
    sim.post_user_message(demo.general, demo.alice, "marker", Vec::new())
        .unwrap();
    let next = gateway.dispatch("MESSAGE_CREATE").await;
    assert_eq!(
        next["d"]["content"], "marker",
        "nothing from the guild it left"
    );
    assert!(
        sim.remove_bot_from_guild(keep).is_err(),
        "not a member any more"
    );

    // Added back directly (the install flow without the OAuth2 round trip).
    sim.add_bot_to_guild(keep).unwrap();
    let back = gateway.dispatch("GUILD_CREATE").await;
    assert_eq!(back["d"]["id"], keep.to_string());
    let (_, history) = rest.get(&format!("/channels/{hall}/messages")).await;
    assert_eq!(
        history[0]["content"], "anyone?",
        "the history is there again"
    );
}

fn follow_redirect(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 302, "authorize redirects");
    response.headers()["location"].to_str().unwrap().to_owned()
}
