//! Tavern in a server that added it through its install link, with exactly the
//! permissions that link asks for (every feature's, `Catalogue::bot_permissions`):
//! discord-sim makes the bot an ordinary member with a managed role just above
//! `@everyone` and holds every REST call to Discord's permission rules. The dice and
//! the drinking game work there; where the server took a permission away, the player
//! gets Tavern's explanation instead of "Something went wrong".
#![allow(clippy::unwrap_used, clippy::expect_used)]

use discord::model::GuildId;
use discord::oauth::{BotInstall, ClientSecret, OAuthApp, OAuthEndpoints, Scope};
use discord_sim::{ChannelKind, ChannelSpec, InteractionReply, OverwriteKind, PermissionOverwrite};
use discord_sim::{Snowflake, model::permissions};
use serde_json::{Value, json};
use testkit::{TestBot, WAIT, World, eventually};

/// Where the install link sends the browser back to (registered with discord-sim).
const CALLBACK: &str = "http://127.0.0.1:9/clips/install/callback";

/// What the install link asks for: every feature Tavern runs, as the binary builds
/// them from a default configuration.
fn install_link_permissions(world: &World) -> u64 {
    let config = tavern::Config::from_sources(None, None, &std::collections::BTreeMap::new())
        .expect("the default configuration");
    tavern::app::features(&world.ctx, &config, &discord::GatewayStatus::default());
    world.ctx.catalogue.bot_permissions()
}

/// A server of its own owner with the demo players in it, `#tavern` and `#quiet`
/// (where the server denies Tavern's role Send Messages), into which the owner adds
/// Tavern through the install link.
struct Server {
    tavern: Snowflake,
    quiet: Snowflake,
}

async fn installed(world: &World) -> Server {
    let sim = &world.sim;
    let permissions = install_link_permissions(world);
    let owner = sim.create_user("Olivia Owner");
    let guild = sim.create_user_guild("Dragons and Dice", owner).unwrap();
    for user in [world.demo.alice, world.demo.bob] {
        sim.add_member(guild, user).unwrap();
    }
    let tavern = sim
        .create_channel(guild, "tavern", ChannelKind::Text)
        .unwrap();
    sim.register_redirect_uri(CALLBACK);
    let app = OAuthApp::new(
        sim.application_id().to_string(),
        ClientSecret::from(sim.client_secret()),
        CALLBACK.parse().unwrap(),
        OAuthEndpoints::at(&sim.http_url()).unwrap(),
    );
    let mut link = app.authorize_url(
        "install",
        &[Scope::Bot, Scope::ApplicationsCommands],
        Some(BotInstall {
            guild: GuildId::new(guild.get()),
            permissions,
        }),
    );
    link.query_pairs_mut()
        .append_pair("sim_user_id", &owner.to_string());
    let approved = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(link)
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status().as_u16(), 302, "the owner added Tavern");
    let bot = sim.member(guild, sim.bot_user_id()).expect("Tavern joined");
    let role = *bot.roles.first().expect("Tavern's managed role");
    assert_eq!(
        sim.permissions(guild, sim.bot_user_id(), None) & permissions,
        permissions,
        "Tavern holds what the link asked for"
    );
    let quiet = sim
        .create_channel_with(
            guild,
            ChannelSpec::new("quiet", ChannelKind::Text).overwrite(PermissionOverwrite {
                id: role,
                kind: OverwriteKind::Role,
                allow: 0,
                deny: permissions::SEND_MESSAGES,
            }),
        )
        .unwrap();
    Server { tavern, quiet }
}

async fn spawn(world: &World, dir: &std::path::Path) -> TestBot {
    let features = vec![
        rolls::feature(&world.ctx, rolls::RollsConfig::new(dir)),
        drinking::feature(&world.ctx, drinking::DrinkingConfig::default()),
    ];
    TestBot::spawn(world, features).await
}

async fn run(
    world: &World,
    user: Snowflake,
    channel: Snowflake,
    name: &str,
    options: Value,
) -> InteractionReply {
    world
        .sim
        .run_command(user, channel, name, options)
        .expect("the command runs")
        .final_response(WAIT)
        .await
        .expect("an answer")
}

fn content(reply: &InteractionReply) -> &str {
    reply.content.as_deref().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dice_and_the_drinking_game_work_with_what_the_install_link_asks_for() {
    let world = World::new().await;
    let server = installed(&world).await;
    let dir = tempfile::tempdir().unwrap();
    let _bot = spawn(&world, dir.path()).await;
    let (alice, bob) = (world.demo.alice, world.demo.bob);

    let roll = run(
        &world,
        alice,
        server.tavern,
        "roll",
        json!([{"name": "expression", "value": "1d20"}]),
    )
    .await;
    assert!(content(&roll).contains("1d20"), "{roll:?}");

    // The initiative tracker is a message Tavern posts itself.
    let tracker = run(
        &world,
        alice,
        server.tavern,
        "init",
        json!([{"name": "add", "options": [{"name": "name", "value": "goblin init:12"}]}]),
    )
    .await;
    assert_ne!(
        content(&tracker),
        discord::MISSING_PERMISSION,
        "{tracker:?}"
    );
    let bot = world.sim.bot_user_id();
    assert!(
        world
            .sim
            .messages(server.tavern)
            .iter()
            .any(|m| m.author_id == bot && m.content.contains("goblin")),
        "the tracker was posted"
    );

    // The drinking game: its public message is edited as players join and begin.
    let start = run(
        &world,
        alice,
        server.tavern,
        "ronnied",
        json!([{"name": "start", "type": 1, "options": []}]),
    )
    .await;
    let message = start.message_id.expect("the game message");
    let id = |label: &str| {
        start
            .components
            .iter()
            .find(|c| c.label.as_deref() == Some(label))
            .and_then(|c| c.custom_id.clone())
            .unwrap()
    };
    let (join, begin) = (id("Join"), id("Begin"));
    let joined = world
        .sim
        .click_button(bob, server.tavern, message, &join)
        .unwrap()
        .response(WAIT)
        .await
        .unwrap();
    assert!(content(&joined).contains("You're in"), "{joined:?}");
    world
        .sim
        .click_button(alice, server.tavern, message, &begin)
        .unwrap()
        .response(WAIT)
        .await
        .unwrap();
    eventually("the game message offers Roll", || {
        let offered = world.sim.message(server.tavern, message).is_some_and(|m| {
            m.component_summaries()
                .iter()
                .any(|c| c.label.as_deref() == Some("Roll"))
        });
        async move { offered.then_some(()) }
    })
    .await;
    let refused: Vec<_> = world
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.status == 403)
        .collect();
    assert!(refused.is_empty(), "Discord refused: {refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_where_the_server_took_a_permission_away_gets_tavern_s_explanation() {
    let world = World::new().await;
    let server = installed(&world).await;
    let dir = tempfile::tempdir().unwrap();
    let _bot = spawn(&world, dir.path()).await;

    let refused = run(
        &world,
        world.demo.alice,
        server.quiet,
        "init",
        json!([{"name": "add", "options": [{"name": "name", "value": "goblin init:12"}]}]),
    )
    .await;
    assert_eq!(content(&refused), discord::MISSING_PERMISSION);
    assert!(refused.ephemeral, "{refused:?}");
    assert!(
        world.sim.requests().iter().any(|r| r
            .path
            .ends_with(&format!("/channels/{}/messages", server.quiet))
            && r.status == 403),
        "Discord refused the post itself"
    );
}
