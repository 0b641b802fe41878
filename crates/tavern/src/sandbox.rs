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
//! the demo player signed in). A restart on a kept Redis starts the games, the links
//! and the web logins afresh ([`forget_an_earlier_fake_discord`]): the fake Discord is
//! new at every start.
//!
//! The clip archive's demo ([`seed_clips`]): a `#clips` channel in the demo guild
//! with a few hundred messages of history (chatter, a few screenshots, and game
//! highlights as real tiny WebM videos that play inline in the library), and a
//! "Moderators" role with Manage Server given to the demo player, so a newcomer can
//! `/clips enable` the channel, `/clips scan` it and browse the library at once.
//!
//! The meetings' demo ([`DemoMeeting`]): one meeting, "Sandbox demo meeting", open to
//! guests, its code kept in `{data_dir}/sandbox-demo-meeting` so every start finds the
//! same one; the console links to `/meet/{code}`, so a newcomer opens it in two tabs
//! and sees themselves twice. A second one, "Sandbox recordable meeting" (code in
//! `{data_dir}/sandbox-recordable-meeting`), is hosted by the demo player and allows
//! recording, so the demo player, signed in, records it from its page. A meeting ends
//! when its last participant leaves; the next time the console is drawn a new one is
//! made (and its code kept instead).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use anyhow::Context as _;
use campaigns::config::{CampaignsConfig, DiscordSettings};
use discord::model::{ChannelId, GuildId, RoleId};
use discord_sim::{
    AttachmentSpec, ChannelKind, ChannelSpec, Demo, RoleSpec, SeedMessage, Sim, Snowflake,
};
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
    // The voice channel's own name is its name when nobody set a topic: otherwise the
    // topic job would take "Table" for a topic someone set and rename it once it aged.
    if let Some(voice) = sim.channel(demo.voice) {
        settings.topic_default_name = voice.name;
    }

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

/// What Redis kept about an earlier start's fake Discord, forgotten before the jobs
/// start. The fake Discord is new at every start (other ids, none of the bot's
/// channels or roles), but the Redis may be kept (`scripts/run.sh` keeps it), and then
/// the kept state points at nothing: the demo game master stayed linked to an earlier
/// Alice, the demo player's Meetup account to an earlier demo player (so `/link-meetup`
/// was refused), a browser stayed signed in as an earlier demo player, and each game's
/// channel was one the sync refuses to replace (it "no longer exists on Discord").
///
/// So, on a Redis that is the sandbox's own (marked `sandbox`, see [`crate::instance`];
/// the sandbox refuses to start on another's):
/// - a demo Meetup member linked to a Discord user of an earlier start is unlinked
///   (those users cannot come back);
/// - a web session of such a user is ended (the Log in link signs the demo player in
///   again);
/// - what was kept about the topic voice channel (when a topic was set) is forgotten;
/// - every tracked series with a channel is forgotten, its events with it (nothing of
///   this start has been made yet). The fake Meetup still has them: when anything was
///   forgotten the sync's job lock is released, so the first sync runs at once, stores
///   them again and makes new channels and roles.
pub async fn forget_an_earlier_fake_discord(
    redis: &Redis,
    meetup: &SandboxMeetup,
    demo: &Demo,
) -> anyhow::Result<()> {
    let repo = campaigns::Repo::new(redis.clone());
    let members_now: Vec<discord::model::UserId> =
        [demo.demo_player, demo.alice, demo.bob, demo.carol]
            .into_iter()
            .map(|id| discord::model::UserId::new(u64::from(id)))
            .collect();
    let demo_members = [
        &meetup.demo.organiser,
        &meetup.demo.game_master,
        &meetup.demo.player,
    ];
    let mut unlinked = 0;
    for member in demo_members {
        let Ok(member) = campaigns::MeetupUserId::parse(member.as_str()) else {
            continue;
        };
        if let Some(discord) = repo.discord_user_of(member).await?
            && !members_now.contains(&discord)
        {
            repo.unlink_meetup_user(member).await?;
            unlinked += 1;
        }
    }
    let signed_out =
        web::session::Sessions::end_sessions_of(redis, |user| !members_now.contains(&user.id))
            .await
            .context("ending the web sessions of an earlier start's users")?;
    if signed_out > 0 {
        tracing::info!(
            signed_out,
            "sandbox: ended the web sessions of an earlier start's fake Discord users; log in again"
        );
    }
    // The topic voice channel is new too: a topic set on the earlier one must not hold
    // `/topic` back for ten minutes.
    repo.forget_topic().await?;
    let mut forgotten = 0;
    for series in repo.tracked_series().await? {
        let channel = repo.series_channel(&series).await?;
        let voice = repo.series_voice_channel(&series).await?;
        if channel.is_some() || voice.is_some() {
            repo.remove_series(&series).await?;
            forgotten += 1;
        }
    }
    if unlinked + forgotten > 0 {
        // Its running lock and the marks of the periods an earlier start ran it in
        // would make this start wait for the next period.
        feature::forget_job_runs(redis, campaigns::jobs::SYNC_JOB)
            .await
            .context("releasing the campaigns sync's job lock")?;
        tracing::info!(
            unlinked,
            forgotten,
            "sandbox: forgot what the campaigns kept of an earlier start's fake Discord; the first sync makes the games' channels again"
        );
    }
    Ok(())
}

/// Stores the demo organiser's tokens, as if they had authorised Tavern on the web,
/// and links the demo game master's Meetup account to the demo guild's Alice, so
/// acting as Alice in the console tries the hosts' commands. Every start of the
/// sandbox has a new fake Meetup, so the tokens are always replaced (its member ids
/// are the same each time; a link to an earlier start's Alice was removed by
/// [`forget_an_earlier_fake_discord`]).
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

/// The demo highlights: 2-second, 160x90 VP8 WebM clips (about 12 KB each), made once
/// with ffmpeg's test sources and kept in `assets/sandbox/`.
const DEMO_VIDEOS: [(&str, &[u8]); 3] = [
    (
        "dragon-fight",
        include_bytes!("../assets/sandbox/dragon-fight.webm"),
    ),
    (
        "critical-hit",
        include_bytes!("../assets/sandbox/critical-hit.webm"),
    ),
    (
        "table-setup",
        include_bytes!("../assets/sandbox/table-setup.webm"),
    ),
];
/// A screenshot (a PNG, never a clip).
const DEMO_IMAGE: &[u8] = include_bytes!("../assets/sandbox/dungeon-map.png");

/// Messages in the demo `#clips` channel.
pub const CLIPS_MESSAGES: usize = 300;
/// Every this many messages one carries a video.
const VIDEO_EVERY: usize = 15;
/// Every this many messages (when not a video) one carries a screenshot.
const IMAGE_EVERY: usize = 11;

/// What the demo community says between highlights.
const CHATTER: [&str; 12] = [
    "who's in for Friday's session?",
    "I'll bring the snacks",
    "did anyone write down the innkeeper's name?",
    "my bard is definitely not trustworthy",
    "rolling for initiative in my dreams now",
    "the new map tiles arrived!",
    "can we start 30 minutes later this week?",
    "that puzzle door took us an hour",
    "gg everyone, great session",
    "who has the party's gold?",
    "I still think the lich is the butler",
    "recap is up in #campaigns",
];

/// What a highlight's message says.
const HIGHLIGHTS: [&str; 5] = [
    "the dragon fight, from the table cam",
    "NAT 20. on the last hit.",
    "setting up the table for the campaign finale",
    "clip of the goblin ambush, it went so wrong",
    "when the rogue tried to pickpocket the king",
];

/// Adds the clip archive's demo to the demo guild: a "Moderators" role with Manage
/// Server for the demo player, and `#clips` with [`CLIPS_MESSAGES`] messages of
/// history by the demo members (nothing announced: they were posted before Tavern
/// looked). Returns the channel. Every message is the same at each start.
pub fn seed_clips(sim: &Sim, demo: &Demo) -> anyhow::Result<Snowflake> {
    let guild = demo.guild;
    let sim_error =
        |what: &'static str| move |e: discord_sim::SimError| anyhow::anyhow!("{what}: {e}");
    let moderators = sim
        .create_role(
            guild,
            RoleSpec::new("Moderators", discord::model::permissions::MANAGE_GUILD),
        )
        .map_err(sim_error("the moderators' role"))?;
    sim.add_member_role(guild, demo.demo_player, moderators)
        .map_err(sim_error("the demo player's moderator role"))?;
    let channel = sim
        .create_channel_with(
            guild,
            ChannelSpec::new("clips", ChannelKind::Text)
                .parent(demo.category)
                .topic("Game highlights: /clips enable, then /clips scan, then the library"),
        )
        .map_err(sim_error("the clips channel"))?;
    let authors = [demo.alice, demo.bob, demo.carol, demo.demo_player];
    let messages: Vec<SeedMessage> = (0..CLIPS_MESSAGES)
        .map(|i| {
            let author = authors[i % authors.len()];
            if i % VIDEO_EVERY == VIDEO_EVERY - 1 {
                let n = i / VIDEO_EVERY;
                let (name, data) = DEMO_VIDEOS[n % DEMO_VIDEOS.len()];
                let mut video = AttachmentSpec::new(
                    format!("{name}-{}.webm", n + 1),
                    "video/webm",
                    data.to_vec(),
                );
                video.width = Some(160);
                video.height = Some(90);
                video.duration_secs = Some(2.0);
                SeedMessage::new(author, HIGHLIGHTS[n % HIGHLIGHTS.len()]).attachment(video)
            } else if i % IMAGE_EVERY == IMAGE_EVERY - 1 {
                let mut image = AttachmentSpec::new(
                    format!("map-{}.png", i + 1),
                    "image/png",
                    DEMO_IMAGE.to_vec(),
                );
                image.width = Some(160);
                image.height = Some(90);
                SeedMessage::new(author, "tonight's dungeon map").attachment(image)
            } else {
                SeedMessage::new(author, CHATTER[i % CHATTER.len()])
            }
        })
        .collect();
    sim.seed_history(channel, messages)
        .map_err(sim_error("the clips channel's history"))?;
    tracing::info!(%channel, messages = CLIPS_MESSAGES, "sandbox: #clips seeded with a history of game highlights");
    Ok(channel)
}

/// The videos in the demo `#clips` history.
pub const fn clips_videos() -> usize {
    CLIPS_MESSAGES / VIDEO_EVERY
}

/// The file in the data dir holding the demo meeting's code.
pub const DEMO_MEETING_FILE: &str = "sandbox-demo-meeting";
/// The demo meeting's name.
pub const DEMO_MEETING_NAME: &str = "Sandbox demo meeting";
/// The file in the data dir holding the code of the meeting the demo player hosts.
pub const RECORDABLE_MEETING_FILE: &str = "sandbox-recordable-meeting";
/// The name of the meeting the demo player hosts.
pub const RECORDABLE_MEETING_NAME: &str = "Sandbox recordable meeting";

/// Which of the sandbox's demo meetings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// End-to-end encrypted, open to guests, made by the operator.
    Encrypted,
    /// Recordable (so not end-to-end encrypted), open to guests, hosted by the demo
    /// player.
    Recordable,
}

/// The sandbox's demo meetings: found again by the codes kept in the data dir, made
/// when there are none (or they have ended). Cheap to share; the console asks for the
/// links each time it is drawn ([`DemoMeeting::link`]), and they are `None` until the
/// stores are up ([`DemoMeeting::connect`]).
#[derive(Debug)]
pub struct DemoMeeting {
    data_dir: PathBuf,
    /// The demo player's Discord id and name: the host of the recordable meeting.
    host: Option<(String, String)>,
    /// The host's meetings account, once found or made (not asked for at every drawing).
    host_account: OnceLock<meetings::domain::UserId>,
    repo: OnceLock<meetings::Repo>,
    /// One look-up (and so at most one new meeting) at a time.
    busy: tokio::sync::Mutex<()>,
    /// Whether finding or making each meeting fails, so an outage is logged once and
    /// not at every drawing of the console.
    failing: feature::FailureStreak,
    failing_recordable: feature::FailureStreak,
}

/// Logs `result` (the look-up of the demo meeting called `what`) once per change: its
/// first failure as a warning, the next ones at debug, and its first success after them.
fn logged<T>(
    result: anyhow::Result<T>,
    streak: &feature::FailureStreak,
    what: &str,
) -> anyhow::Result<T> {
    match &result {
        Err(error) if streak.failed() => {
            tracing::warn!(error = format!("{error:#}"), "sandbox: no {what}")
        }
        Err(error) => tracing::debug!(error = format!("{error:#}"), "sandbox: still no {what}"),
        Ok(_) if streak.succeeded() => tracing::info!("sandbox: the {what} is back"),
        Ok(_) => {}
    }
    result
}

impl DemoMeeting {
    /// The demo meeting whose code is kept in `data_dir`, and no recordable one.
    pub fn new(data_dir: &Path) -> DemoMeeting {
        DemoMeeting {
            data_dir: data_dir.to_owned(),
            host: None,
            host_account: OnceLock::new(),
            repo: OnceLock::new(),
            busy: tokio::sync::Mutex::new(()),
            failing: feature::FailureStreak::new(),
            failing_recordable: feature::FailureStreak::new(),
        }
    }

    /// Also a recordable meeting hosted by Discord user `id` (`name`): the demo
    /// player, who records it from its page once signed in.
    pub fn hosted_by(mut self, id: impl ToString, name: &str) -> DemoMeeting {
        self.host = Some((id.to_string(), name.to_owned()));
        self
    }

    /// The stores are up (and the meetings' schema migrated): meetings can be read
    /// and made from now on. A second call changes nothing.
    pub fn connect(&self, repo: meetings::Repo) {
        let _ = self.repo.set(repo);
    }

    /// The demo meeting's code, made now when there is no joinable one; `None` before
    /// [`DemoMeeting::connect`].
    pub async fn code(&self) -> anyhow::Result<Option<meetings::domain::MeetingCode>> {
        let Some(repo) = self.repo.get() else {
            return Ok(None);
        };
        let _busy = self.busy.lock().await;
        let made = demo_meeting(repo, &self.data_dir, Kind::Encrypted, None).await;
        logged(made, &self.failing, "demo meeting").map(Some)
    }

    /// The recordable meeting's code, made now when there is no joinable one; `None`
    /// before [`DemoMeeting::connect`] or without a host.
    pub async fn recordable_code(&self) -> anyhow::Result<Option<meetings::domain::MeetingCode>> {
        let (Some(repo), Some((id, name))) = (self.repo.get(), &self.host) else {
            return Ok(None);
        };
        let _busy = self.busy.lock().await;
        let host = match self.host_account.get() {
            Some(host) => *host,
            None => {
                let name = meetings::auth::discord_display_name(id, &[name])
                    .map_err(|e| anyhow::anyhow!("the demo player's name: {}", e.reason))?;
                let (host, _) = repo
                    .discord_web_account(id, name)
                    .await
                    .context("the demo player's meetings account")?;
                *self.host_account.get_or_init(|| host)
            }
        };
        let made = demo_meeting(repo, &self.data_dir, Kind::Recordable, Some(host)).await;
        logged(made, &self.failing_recordable, "recordable demo meeting").map(Some)
    }

    /// The console's links to the meetings (`/meet/{code}`); a failure is logged and
    /// shows no link.
    pub fn link(self: &Arc<Self>) -> web::sandbox::DemoMeetingLink {
        let meeting = Arc::clone(self);
        Arc::new(move || {
            let meeting = Arc::clone(&meeting);
            Box::pin(async move {
                // A failure is logged where it happens, once per outage.
                let code = meeting.code().await.ok()??;
                let recordable = meeting.recordable_code().await.ok().flatten();
                Some(web::sandbox::DemoMeetings {
                    meeting: format!("/meet/{code}"),
                    recordable: recordable.map(|code| format!("/meet/{code}")),
                })
            })
        })
    }
}

/// The joinable meeting of `kind` whose code is kept in `data_dir` and made by `host`,
/// or a new one (its code then kept there) made by `host`. A kept one made by someone
/// else (an earlier start's demo player) is ended.
async fn demo_meeting(
    repo: &meetings::Repo,
    data_dir: &Path,
    kind: Kind,
    host: Option<meetings::domain::UserId>,
) -> anyhow::Result<meetings::domain::MeetingCode> {
    use meetings::domain::MeetingCode;
    let (file, name) = match kind {
        Kind::Encrypted => (DEMO_MEETING_FILE, DEMO_MEETING_NAME),
        Kind::Recordable => (RECORDABLE_MEETING_FILE, RECORDABLE_MEETING_NAME),
    };
    let path = data_dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(text) => match MeetingCode::parse(text.trim()) {
            Ok(code) => match repo.meeting_by_code(&code).await {
                Ok(meeting)
                    if meeting.status.is_joinable() && meeting.created_by_user_id == host =>
                {
                    return Ok(code);
                }
                Ok(meeting) if meeting.status.is_joinable() => {
                    // The fake Discord's ids are new at each start, so after a restart
                    // the demo player is another user, who could not host this one.
                    tracing::info!(%code, name, "sandbox: a demo meeting was made for an earlier demo player; ending it and making another");
                    repo.end_meeting(meeting.meeting_id)
                        .await
                        .context("ending an earlier demo player's meeting")?;
                }
                Ok(_) => {
                    tracing::info!(%code, name, "sandbox: a demo meeting has ended; making another")
                }
                Err(meetings::MeetingsError::Storage(store::StorageError::NotFound { .. })) => {
                    tracing::info!(%code, name, "sandbox: a demo meeting is gone; making another");
                }
                Err(e) => return Err(e).context("reading a demo meeting"),
            },
            Err(_) => {
                tracing::warn!(path = %path.display(), "sandbox: a demo meeting's file holds no code; making another")
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).context("reading a demo meeting's file"),
    }
    let display_name = meetings::domain::DisplayName::parse(name)
        .map_err(|e| anyhow::anyhow!("the demo meeting's name: {}", e.reason))?;
    let settings = match kind {
        // The browser client encrypts every frame: the demo shows the badge and the
        // safety code two tabs agree on.
        Kind::Encrypted => meetings::repo::MeetingSettings {
            enable_e2e_encryption: true,
            require_auth: false,
            ..meetings::repo::MeetingSettings::default()
        },
        // Recordings are never offered for encrypted meetings: this one shows them.
        Kind::Recordable => meetings::repo::MeetingSettings {
            enable_e2e_encryption: false,
            require_auth: false,
            allow_recording: true,
            ..meetings::repo::MeetingSettings::default()
        },
    };
    let meeting = repo
        .create_meeting(&meetings::repo::NewMeeting {
            display_name,
            created_by: host,
            settings,
            scheduled_start_time: None,
        })
        .await
        .context("making a demo meeting")?;
    let code = meeting.meeting_code;
    std::fs::create_dir_all(data_dir).context("making the data dir")?;
    // Written whole, then renamed over the old one, so a reader never sees half a code.
    let partial = path.with_extension("partial");
    std::fs::write(&partial, format!("{code}\n")).context("writing a demo meeting's file")?;
    std::fs::rename(&partial, &path).context("keeping a demo meeting's file")?;
    tracing::info!(%code, name, "sandbox: made a demo meeting");
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The topic voice channel keeps its own name while nobody sets a topic: the topic
    /// job, which renames a channel whose topic has aged back to the default name,
    /// would otherwise take "Table" for a topic and rename it "Topic of your choice".
    #[tokio::test]
    async fn the_topic_voice_channels_own_name_is_its_default() {
        let sim = discord_sim::Sim::start(discord_sim::SimConfig::default()).unwrap();
        let demo = sim.seed_demo();
        let url = url::Url::parse("http://127.0.0.1:8080").unwrap();
        let (_meetup, config) = start_meetup(&sim, &demo, &url).await.unwrap();
        let settings = config.discord.expect("the demo guild's settings");
        assert_eq!(
            settings.topic_voice_channel,
            Some(ChannelId::new(u64::from(demo.voice)))
        );
        assert_eq!(settings.topic_default_name, "Table");
        assert_eq!(sim.channel(demo.voice).unwrap().name, "Table");
    }
}
