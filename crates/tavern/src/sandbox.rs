//! The sandbox's campaigns: with no Discord token (and no Meetup configured),
//! `tavern serve` also starts a fake Meetup in process, seeded with a demo group
//! ([`meetup::fake::demo`]: a campaign, a one-shot, an online series, a few members,
//! the demo player's own Meetup account), and points the campaigns at it and at the
//! demo guild of the in-process fake Discord.
//!
//! What the demo guild gets for the campaigns: a "Campaigns" and a "One-shots"
//! category, an "Organisers" role and a "Campaign admins" role (both given to the demo
//! player, so every command can be tried), an "organisers" alerts channel, the free
//! spots in the demo's "campaigns" channel and `/topic` on its "Table" voice channel.
//! The demo organiser's tokens are stored as if they had authorised Tavern, so the
//! first sync (right after start-up) fills Redis and the console shows the game
//! channels and roles appear; the demo game master's Meetup account is linked to the
//! demo guild's Alice, who so hosts the campaign and the online series. The demo player links their Meetup account through the
//! real web flow: `/link-meetup` in the console, then the link (the fake Meetup has
//! the demo player signed in).

use anyhow::Context as _;
use campaigns::config::{CampaignsConfig, DiscordSettings};
use discord::model::{ChannelId, GuildId, RoleId};
use discord_sim::{ChannelKind, ChannelSpec, Demo, RoleSpec, Sim};
use feature::Clock as _;
use meetup::fake::FakeMeetup;
use store::Redis;

/// The running fake Meetup and what was seeded in it.
#[derive(Debug)]
pub struct SandboxMeetup {
    pub fake: FakeMeetup,
    pub demo: meetup::fake::demo::Demo,
}

/// Starts the fake Meetup, seeds it, prepares the demo guild and returns the
/// campaigns' configuration pointing at both.
pub async fn start_meetup(
    sim: &Sim,
    demo: &Demo,
    public_url: &url::Url,
) -> anyhow::Result<(SandboxMeetup, CampaignsConfig)> {
    let fake = FakeMeetup::start()
        .await
        .context("starting the sandbox's fake Meetup")?;
    let callback = campaigns::web::callback_url(public_url).context("the Meetup callback URL")?;
    let seeded = meetup::fake::demo::seed(&fake, feature::SystemClock.now(), &callback)
        .map_err(|e| anyhow::anyhow!("seeding the sandbox's fake Meetup: {e}"))?;

    let guild = demo.guild;
    let sim_error =
        |what: &'static str| move |e: discord_sim::SimError| anyhow::anyhow!("{what}: {e}");
    let category = |name: &str| {
        sim.create_channel(guild, name, ChannelKind::Category)
            .map_err(sim_error("a sandbox category"))
    };
    let campaigns_category = category("Campaigns")?;
    let one_shots = category("One-shots")?;
    let alerts = sim
        .create_channel_with(
            guild,
            ChannelSpec::new("organisers", ChannelKind::Text).parent(demo.category),
        )
        .map_err(sim_error("the organisers' channel"))?;
    let organisers = sim
        .create_role(guild, RoleSpec::new("Organisers", 0))
        .map_err(sim_error("the organisers' role"))?;
    let admins = sim
        .create_role(guild, RoleSpec::new("Campaign admins", 0))
        .map_err(sim_error("the admins' role"))?;
    for role in [organisers, admins] {
        sim.add_member_role(guild, demo.demo_player, role)
            .map_err(sim_error("the demo player's roles"))?;
    }

    let mut settings = DiscordSettings::new(GuildId::new(u64::from(guild)));
    settings.categories = vec![ChannelId::new(u64::from(campaigns_category))];
    settings.one_shot_categories = vec![ChannelId::new(u64::from(one_shots))];
    settings.organiser_role = Some(RoleId::new(u64::from(organisers)));
    settings.admin_role = Some(RoleId::new(u64::from(admins)));
    settings.alerts_channel = Some(ChannelId::new(u64::from(alerts)));
    settings.free_spots_channel = Some(ChannelId::new(u64::from(demo.campaigns)));
    settings.topic_voice_channel = Some(ChannelId::new(u64::from(demo.voice)));

    let mut config = CampaignsConfig::new(
        seeded.client_id.clone(),
        seeded.client_secret.clone(),
        fake.endpoints(),
        vec![seeded.group.clone()],
    );
    config.discord = Some(settings);
    tracing::info!(
        meetup = %fake.url(),
        group = %seeded.group,
        "sandbox mode: campaigns sync a fake Meetup with a demo group"
    );
    Ok((SandboxMeetup { fake, demo: seeded }, config))
}

/// Stores the demo organiser's tokens, as if they had authorised Tavern on the web,
/// and links the demo game master's Meetup account to the demo guild's Alice, so
/// acting as Alice in the console tries the hosts' commands. Every start of the
/// sandbox has a new fake Meetup, so the tokens are always replaced (its member ids
/// are the same each time, so the link holds).
pub async fn authorise_organiser(
    redis: &Redis,
    meetup: &SandboxMeetup,
    demo: &Demo,
) -> anyhow::Result<()> {
    let tokens = &meetup.demo.organiser_tokens;
    let repo = campaigns::Repo::new(redis.clone());
    if let Ok(game_master) = campaigns::MeetupUserId::parse(meetup.demo.game_master.as_str()) {
        let alice = discord::model::UserId::new(u64::from(demo.alice));
        if let Err(error) = repo.link(game_master, alice, None).await {
            tracing::warn!(%error, "sandbox: could not link the demo game master to Alice");
        }
    }
    tracing::info!(
        organiser = %meetup.demo.organiser,
        game_master = %meetup.demo.game_master,
        player = %meetup.demo.player,
        "sandbox: the demo Meetup's members (the game master is linked to Alice)"
    );
    repo.set_organizer_tokens(
        &campaigns::repo::Tokens {
            access: tokens.access_token.clone(),
            refresh: tokens.refresh_token.clone(),
        },
        feature::SystemClock.now() + campaigns::web::organiser::REFRESH_EVERY,
    )
    .await
    .context("storing the sandbox organiser's Meetup tokens")
}
