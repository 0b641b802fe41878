//! The clip archive's web side over a real listener, with the router `clips::feature`
//! builds, a real PostgreSQL and Redis, and discord-sim as Discord (its OAuth2, its
//! guild lists, its CDN): the install flow (happy path, expiry, a foreign user, an
//! unknown state, the purge job), who may see and change what, CSRF, scans requested
//! and cancelled from the page, the danger zone's confirmation, and the library's
//! filters, search, paging, refreshed URLs and query plans.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use base::Clock as _;
use chrono::{DateTime, TimeDelta, Utc};
use clips::domain::{ChannelId, GuildId, MessageId, ScanStatus, UserId};
use clips::repo::clips::NewClip;
use clips::repo::library::{LibraryCursor, LibraryFilter, SearchText};
use clips::repo::{ChannelInfo, GuildInfo, Repo};
use clips::scan::Scanner;
use clips::{ClipsConfig, jobs};
use discord_sim::{AttachmentSpec, ChannelKind, Snowflake};
use reqwest::header::{COOKIE, LOCATION};
use testkit::World;

mod common;

/// The clips feature's routes on a port of their own.
struct Site {
    world: World,
    ctx: feature::Context,
    base: String,
    http: reqwest::Client,
    repo: Repo,
    feature_jobs: Vec<feature::Job>,
}

/// A signed-in browser: its cookie and CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
}

async fn site() -> Site {
    let world = World::with_postgres().await;
    let testkit::Listening {
        listener,
        base,
        ctx,
    } = world.listen().await;
    world.sim.register_redirect_uri(
        clips::web::install_callback_url(&ctx.public_url)
            .unwrap()
            .as_str(),
    );
    let mut feature = clips::feature(&ctx, ClipsConfig::default());
    world.migrate(std::slice::from_ref(&feature)).await;
    let router = feature
        .routes
        .take()
        .expect("the clips feature serves pages");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Site {
        repo: Repo::new(&world.postgres),
        ctx,
        base,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        feature_jobs: std::mem::take(&mut feature.jobs),
        world,
    }
}

fn location(response: &reqwest::Response) -> String {
    response.headers()[LOCATION].to_str().unwrap().to_owned()
}

fn query_param(url: &str, key: &str) -> Option<String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

fn guild_id(s: Snowflake) -> GuildId {
    GuildId::new(u64::from(s))
}
fn channel_id(s: Snowflake) -> ChannelId {
    ChannelId::new(u64::from(s))
}
fn user_id(s: Snowflake) -> UserId {
    UserId::new(u64::from(s))
}

/// How many clip tiles a page shows, and their attachment ids in order.
fn tiles(html: &str) -> Vec<u64> {
    testkit::attribute_values(html, "data-attachment-id")
        .iter()
        .map(|id| id.parse().unwrap())
        .collect()
}

/// The "Older clips" link of a library page.
fn next_link(html: &str) -> Option<String> {
    let at = html.find("data-next-page")?;
    let rest = &html[at..];
    let href = rest.find("href=\"")? + 6;
    let end = rest[href..].find('"')?;
    Some(rest[href..href + end].replace("&amp;", "&"))
}

impl Site {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A Discord user who is a member of `guild`, managing it when `manager`.
    fn user_in(&self, guild: Snowflake, name: &str, manager: bool) -> Snowflake {
        common::guild_member(&self.world.sim, guild, name, manager)
    }

    /// A new member of the demo guild (managing it when `manager`), signed in.
    async fn demo_browser(&self, name: &str, manager: bool) -> Browser {
        self.sign_in(self.user_in(self.world.demo.guild, name, manager))
            .await
    }

    /// Logs `user` in as the web login does (see [`testkit::discord_session`]).
    async fn sign_in(&self, user: Snowflake) -> Browser {
        let profile = web::session::SessionUser {
            id: user_id(user),
            username: format!("user{user}"),
            global_name: None,
            avatar: None,
        };
        let session = testkit::discord_session(&self.ctx, user, profile).await;
        Browser {
            cookie: format!(
                "{}={}",
                self.ctx.sessions.config().cookie_name(),
                session.id().expose()
            ),
            csrf: session.csrf_token().to_owned(),
        }
    }

    async fn get(&self, path: &str, who: Option<&Browser>) -> reqwest::Response {
        let mut request = self.http.get(self.url(path)).header("accept", "text/html");
        if let Some(who) = who {
            request = request.header(COOKIE, &who.cookie);
        }
        request.send().await.unwrap()
    }

    /// A GET under `/api/` as `who` (JSON, no `accept: text/html`).
    async fn get_json(&self, path: &str, who: &Browser) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .header(COOKIE, &who.cookie)
            .send()
            .await
            .unwrap()
    }

    async fn page(&self, path: &str, who: &Browser) -> String {
        let response = self.get(path, Some(who)).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.text().await.unwrap()
    }

    /// A form POST with the browser's CSRF token.
    async fn post(&self, path: &str, who: &Browser, form: &[(&str, &str)]) -> reqwest::Response {
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        fields.push(("csrf_token", &who.csrf));
        self.http
            .post(self.url(path))
            .header(COOKIE, &who.cookie)
            .form(&fields)
            .send()
            .await
            .unwrap()
    }

    /// The demo guild known to Tavern with its channel `general` being read.
    async fn known_demo_guild(&self) -> (GuildId, ChannelId) {
        let demo = &self.world.demo;
        let guild = guild_id(demo.guild);
        self.repo
            .upsert_guild(&GuildInfo {
                id: guild,
                name: "Tavern demo".into(),
                icon: None,
                owner: None,
            })
            .await
            .unwrap();
        let channel = self.add_channel(guild, demo.general, "general").await;
        (guild, channel)
    }

    /// The danger zone's purge of `target` (a channel's or a guild's path), confirmed
    /// by typing `confirm`.
    async fn purge(&self, target: &str, who: &Browser, confirm: &str) -> reqwest::Response {
        self.post(&format!("{target}/purge"), who, &[("confirm", confirm)])
            .await
    }

    /// How many clips Tavern holds for `channel`.
    async fn clips_in(&self, channel: ChannelId) -> i64 {
        self.repo.clips_in_channel(channel).await.unwrap()
    }

    /// Whether Tavern reads `channel` now.
    async fn is_reading(&self, channel: ChannelId) -> bool {
        self.repo
            .channel(channel)
            .await
            .unwrap()
            .unwrap()
            .is_reading
    }

    async fn add_channel(&self, guild: GuildId, id: Snowflake, name: &str) -> ChannelId {
        let channel = channel_id(id);
        self.repo
            .upsert_channel(&ChannelInfo {
                id: channel,
                guild,
                name: Some(name.into()),
                kind: Some("text".into()),
                is_nsfw: false,
            })
            .await
            .unwrap();
        self.repo.set_reading(channel, true).await.unwrap();
        channel
    }
}

/// A clip posted at `at` (attachment id `id`, one message per clip).
fn clip(id: u64, author: u64, at: DateTime<Utc>, filename: &str, text: &str) -> NewClip {
    NewClip {
        attachment_id: id,
        message_id: MessageId::new(id + 1_000_000),
        author_id: UserId::new(author),
        author_name: format!("author{author}").into(),
        posted_at: at,
        filename: filename.into(),
        content_type: Some("video/mp4".into()),
        size_bytes: 1_000_000 + id,
        width: Some(1280),
        height: Some(720),
        duration_secs: Some(12.5),
        url: format!("https://cdn.example/{id}/{filename}").into(),
        proxy_url: None,
        url_expires_at: None,
        message_text: text.into(),
    }
}

async fn index(repo: &Repo, channel: ChannelId, clip: &NewClip) {
    let (reading, added) = repo
        .index_live_message(
            channel,
            clip.message_id,
            clip.posted_at,
            std::slice::from_ref(clip),
        )
        .await
        .unwrap();
    assert!(reading && added == 1, "clip {} indexed", clip.attachment_id);
}

// ---------------------------------------------------------------------------------------
// The install flow

/// A guild `owner` owns that Tavern is not in yet, with one text channel.
fn user_guild(site: &Site, owner: Snowflake) -> (Snowflake, Snowflake) {
    let sim = &site.world.sim;
    let guild = sim.create_user_guild("Dragons", owner).unwrap();
    let channel = sim
        .create_channel(guild, "highlights", ChannelKind::Text)
        .unwrap();
    (guild, channel)
}

/// A user signed in who owns a guild Tavern is not in yet (see [`user_guild`]).
async fn owner_signed_in(site: &Site) -> (Snowflake, Browser, (Snowflake, Snowflake)) {
    let owner = site.world.sim.create_user("Owner");
    let guild = user_guild(site, owner);
    (owner, site.sign_in(owner).await, guild)
}

/// `POST /clips/install` for `guild`: the authorize URL Tavern sends the browser to.
async fn start_install(site: &Site, who: &Browser, guild: Snowflake) -> String {
    let response = site
        .post("/clips/install", who, &[("guild_id", &guild.to_string())])
        .await;
    assert_eq!(response.status(), 303, "{}", response.text().await.unwrap());
    location(&response)
}

/// Discord's authorize page, approved by `user`: the callback URL it sends back to.
async fn discord_approves(site: &Site, authorize: &str, user: Snowflake) -> String {
    let mut url = url::Url::parse(authorize).unwrap();
    url.query_pairs_mut()
        .append_pair("sim_user_id", &user.to_string());
    let back = site.http.get(url).send().await.unwrap();
    assert!(
        back.status().is_redirection(),
        "{}",
        back.text().await.unwrap()
    );
    location(&back)
}

/// The callback, with the path and query Discord sent back.
async fn callback(site: &Site, who: &Browser, back: &str) -> reqwest::Response {
    let url = url::Url::parse(back).unwrap();
    let path = format!("{}?{}", url.path(), url.query().unwrap_or_default());
    site.get(&path, Some(who)).await
}

#[tokio::test]
async fn adding_tavern_records_the_guild_its_owner_and_channels() {
    let site = site().await;
    let (owner, browser, (guild, channel)) = owner_signed_in(&site).await;

    // The guild list offers "Add Tavern" for the guild the owner manages.
    let list = site.page("/clips", &browser).await;
    assert!(list.contains("Add Tavern"), "{list}");
    assert!(list.contains(&format!("value=\"{guild}\"")), "{list}");

    // The bot is asked for what every running feature needs, not only the archive.
    {
        use discord::model::permissions::{MANAGE_CHANNELS, MANAGE_ROLES};
        site.ctx.catalogue.fill(&[
            clips::feature(&site.ctx, ClipsConfig::default()),
            feature::Feature::new("games").bot_permissions(MANAGE_CHANNELS | MANAGE_ROLES),
        ]);
    }
    let authorize = start_install(&site, &browser, guild).await;
    assert_eq!(
        query_param(&authorize, "scope").as_deref(),
        Some("bot applications.commands")
    );
    {
        use discord::model::permissions::*;
        let everything =
            VIEW_CHANNEL | SEND_MESSAGES | READ_MESSAGE_HISTORY | MANAGE_CHANNELS | MANAGE_ROLES;
        assert_eq!(
            query_param(&authorize, "permissions"),
            Some(everything.to_string())
        );
    }
    assert_eq!(query_param(&authorize, "guild_id"), Some(guild.to_string()));
    assert_eq!(
        query_param(&authorize, "disable_guild_select").as_deref(),
        Some("true")
    );
    assert_eq!(
        query_param(&authorize, "redirect_uri"),
        Some(site.url("/clips/install/callback"))
    );
    let state = query_param(&authorize, "state").unwrap();
    assert_eq!(state.len(), 43);

    let back = discord_approves(&site, &authorize, owner).await;
    let done = callback(&site, &browser, &back).await;
    assert_eq!(done.status(), 303, "{}", done.text().await.unwrap());
    assert_eq!(location(&done), format!("/clips/guilds/{guild}"));

    let stored = site.repo.guild(guild_id(guild)).await.unwrap().unwrap();
    assert_eq!(stored.info.name, "Dragons");
    assert_eq!(stored.info.owner, Some(user_id(owner)));
    let channel = site
        .repo
        .channel(channel_id(channel))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(channel.info.name.as_deref(), Some("highlights"));
    assert!(
        !channel.is_reading,
        "a new channel is not read until a manager says so"
    );

    // The guild page now lists the channel; the list shows the guild as shared.
    let page = site.page(&format!("/clips/guilds/{guild}"), &browser).await;
    assert!(page.contains("#highlights"), "{page}");
    let list = site.page("/clips", &browser).await;
    assert!(
        list.contains(&format!("href=\"/clips/guilds/{guild}\"")),
        "{list}"
    );

    // The same answer again (a reload): the state was consumed, 400.
    let again = callback(&site, &browser, &back).await;
    assert_eq!(again.status(), 400);
}

#[tokio::test]
async fn the_callback_refuses_unknown_expired_and_foreign_states_and_the_job_purges() {
    let site = site().await;
    let (owner, browser, (guild, _)) = owner_signed_in(&site).await;

    // An unknown state, and one that cannot be ours.
    let unknown = site
        .get(
            &format!("/clips/install/callback?code=x&state={}", "A".repeat(43)),
            Some(&browser),
        )
        .await;
    assert_eq!(unknown.status(), 400);
    assert!(unknown.text().await.unwrap().contains("Unknown install"));
    let garbage = site
        .get("/clips/install/callback?state=%3Cscript%3E", Some(&browser))
        .await;
    assert_eq!(garbage.status(), 400);

    // Another signed-in user presenting the owner's state: 403, and it stays for
    // the owner, who then finishes.
    let authorize = start_install(&site, &browser, guild).await;
    let back = discord_approves(&site, &authorize, owner).await;
    let stranger = site.world.sim.create_user("Stranger");
    let stranger = site.sign_in(stranger).await;
    let foreign = callback(&site, &stranger, &back).await;
    assert_eq!(foreign.status(), 403);
    assert!(foreign.text().await.unwrap().contains("Another user"));
    assert!(site.repo.guild(guild_id(guild)).await.unwrap().is_none());
    let done = callback(&site, &browser, &back).await;
    assert_eq!(done.status(), 303);

    // Expired: started, then 11 minutes pass before Discord sends the browser back.
    let authorize = start_install(&site, &browser, guild).await;
    let back = discord_approves(&site, &authorize, owner).await;
    site.world.clock.advance(Duration::from_secs(11 * 60));
    let expired = callback(&site, &browser, &back).await;
    assert_eq!(expired.status(), 400);
    assert!(expired.text().await.unwrap().contains("expired"));

    // The purge job: within the grace the expired intent stays ("expired", not
    // "unknown"); after it, the job deletes it and the state is unknown.
    let job = site
        .feature_jobs
        .iter()
        .find(|j| j.name() == jobs::PURGE_INSTALL_INTENTS)
        .expect("the purge job");
    job.run_now().await.unwrap();
    let still = callback(&site, &browser, &back).await;
    assert!(still.text().await.unwrap().contains("expired"));
    site.world.clock.advance(Duration::from_secs(5 * 60));
    job.run_now().await.unwrap();
    let gone = callback(&site, &browser, &back).await;
    assert_eq!(gone.status(), 400);
    assert!(gone.text().await.unwrap().contains("Unknown install"));
    let purged = jobs::purge_install_intents(&site.repo, site.world.clock.now(), TimeDelta::zero())
        .await
        .unwrap();
    assert_eq!(purged, 0, "nothing left to purge");
}

#[tokio::test]
async fn a_cancelled_install_records_nothing() {
    let site = site().await;
    let (owner, browser, (guild, _)) = owner_signed_in(&site).await;
    let authorize = start_install(&site, &browser, guild).await;
    let mut denied = url::Url::parse(&authorize).unwrap();
    denied.query_pairs_mut().append_pair("sim_decision", "deny");
    let back = discord_approves(&site, denied.as_str(), owner).await;
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("access_denied")
    );
    let answer = callback(&site, &browser, &back).await;
    assert_eq!(answer.status(), 403);
    assert!(answer.text().await.unwrap().contains("was not added"));
    assert!(site.repo.guild(guild_id(guild)).await.unwrap().is_none());
    // The intent was used up: the same answer again is unknown.
    assert_eq!(callback(&site, &browser, &back).await.status(), 400);
}

#[tokio::test]
async fn only_managers_may_start_an_install() {
    let site = site().await;
    let owner = site.world.sim.create_user("Owner");
    let (guild, _) = user_guild(&site, owner);
    let member = site.user_in(guild, "Member", false);
    let browser = site.sign_in(member).await;
    let list = site.page("/clips", &browser).await;
    assert!(!list.contains("Add Tavern"), "{list}");
    let refused = site
        .post(
            "/clips/install",
            &browser,
            &[("guild_id", &guild.to_string())],
        )
        .await;
    assert_eq!(refused.status(), 403);
    let bad = site
        .post("/clips/install", &browser, &[("guild_id", "nope")])
        .await;
    assert_eq!(bad.status(), 400);
}

// ---------------------------------------------------------------------------------------
// Who may do what; CSRF; scans; the danger zone

#[tokio::test]
async fn members_read_managers_change_strangers_and_anonymous_are_refused() {
    let site = site().await;
    let (guild, channel) = site.known_demo_guild().await;
    let manager = site.demo_browser("Manager", true).await;
    let member = site.demo_browser("Member", false).await;
    let stranger = site.sign_in(site.world.sim.create_user("Stranger")).await;
    let guild_page = format!("/clips/guilds/{guild}");
    let library = format!("/clips/guilds/{guild}/library");
    let api = format!("/api/clips/channels/{channel}/scan");
    let reading = format!("/clips/channels/{channel}/reading");

    // Nobody signed in: pages send to the login, the API says 401, POSTs are refused.
    let anonymous = site.get(&guild_page, None).await;
    assert_eq!(anonymous.status(), 303);
    assert!(location(&anonymous).starts_with("/login/discord?next="));
    let anonymous = site.http.get(site.url(&api)).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let anonymous = site
        .http
        .post(site.url(&reading))
        .form(&[("reading", "0")])
        .send()
        .await
        .unwrap();
    assert!(matches!(anonymous.status().as_u16(), 401 | 403));

    // A stranger: 403 everywhere.
    assert_eq!(site.get(&guild_page, Some(&stranger)).await.status(), 403);
    assert_eq!(site.get(&library, Some(&stranger)).await.status(), 403);
    let json = site.get_json(&api, &stranger).await;
    assert_eq!(json.status(), 403);

    // A member: reads the page, the library and the progress; changes nothing.
    let page = site.page(&guild_page, &member).await;
    assert!(page.contains("#general"), "{page}");
    assert!(!page.contains("Deep scan"), "{page}");
    assert!(!page.contains("Danger zone"), "{page}");
    // Nothing indexed yet: the library says so (and where to start), and a filter that
    // finds nothing says that instead.
    let empty = site.page(&library, &member).await;
    assert!(empty.contains("No clips yet."), "{empty}");
    let unmatched = site.page(&format!("{library}?q=boss"), &member).await;
    assert!(unmatched.contains("No clips match."), "{unmatched}");
    assert!(!unmatched.contains("No clips yet."), "{unmatched}");
    let json = site.get_json(&api, &member).await;
    assert_eq!(json.status(), 200);
    for (path, form) in [
        (reading.clone(), vec![("reading", "0")]),
        (format!("/clips/channels/{channel}/scans"), vec![]),
        (format!("/clips/channels/{channel}/scans/cancel"), vec![]),
        (
            format!("/clips/channels/{channel}/purge"),
            vec![("confirm", "general")],
        ),
        (
            format!("/clips/guilds/{guild}/purge"),
            vec![("confirm", "Tavern demo")],
        ),
    ] {
        let refused = site.post(&path, &member, &form).await;
        assert_eq!(refused.status(), 403, "member POST {path}");
    }
    assert!(site.is_reading(channel).await);
    assert!(site.repo.runs(channel, 1).await.unwrap().is_empty());

    // A manager: sees the controls and toggles reading.
    let page = site.page(&guild_page, &manager).await;
    assert!(
        page.contains("Deep scan") && page.contains("Danger zone"),
        "{page}"
    );
    let toggled = site.post(&reading, &manager, &[("reading", "0")]).await;
    assert_eq!(toggled.status(), 303);
    assert_eq!(
        location(&toggled),
        format!("/clips/guilds/{guild}#channel-{channel}")
    );
    assert!(!site.is_reading(channel).await);
    let bad = site.post(&reading, &manager, &[("reading", "maybe")]).await;
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn a_users_guild_list_is_cached_for_a_minute() {
    let site = site().await;
    let (guild, _) = site.known_demo_guild().await;
    let demo_guild = site.world.demo.guild;
    let user = site.user_in(demo_guild, "Member", false);
    let member = site.sign_in(user).await;
    let guild_page = format!("/clips/guilds/{guild}");
    site.page(&guild_page, &member).await;
    let key = clips::schema::library::user_guilds_key(user_id(user));
    let ttl = store::harness::ttl(&site.world.redis, &key).await;
    assert!((1..=60).contains(&ttl), "cached for a minute, not {ttl}");

    // Discord's answer is not asked again while cached: leaving the guild shows once
    // the cached list is gone.
    site.world.sim.remove_member(demo_guild, user).unwrap();
    site.page(&guild_page, &member).await;
    store::redis::cmd("DEL")
        .arg(&key)
        .exec_async(&mut site.world.redis.conn())
        .await
        .unwrap();
    assert_eq!(site.get(&guild_page, Some(&member)).await.status(), 403);
}

#[tokio::test]
async fn a_post_without_the_csrf_token_changes_nothing() {
    let site = site().await;
    let (_, channel) = site.known_demo_guild().await;
    let manager = site.demo_browser("Manager", true).await;
    let reading = format!("/clips/channels/{channel}/reading");
    let missing = site
        .http
        .post(site.url(&reading))
        .header(COOKIE, &manager.cookie)
        .form(&[("reading", "0")])
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 403);
    let wrong = site
        .http
        .post(site.url(&reading))
        .header(COOKIE, &manager.cookie)
        .form(&[("reading", "0"), ("csrf_token", "0".repeat(64).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    assert!(site.is_reading(channel).await);
}

#[tokio::test]
async fn scans_are_queued_reported_and_cancelled_from_the_page() {
    let site = site().await;
    let (guild, channel) = site.known_demo_guild().await;
    let manager = site.demo_browser("Manager", true).await;
    let api = format!("/api/clips/channels/{channel}/scan");
    let status = |who: &Browser| {
        let request = site
            .http
            .get(site.url(&api))
            .header(COOKIE, who.cookie.clone());
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response
                .json::<clips::web::guilds::ScanStatusBody>()
                .await
                .unwrap()
        }
    };
    let before = status(&manager).await;
    assert_eq!(before.status, "none");
    assert!(!before.live);

    let queued = site
        .post(
            &format!("/clips/channels/{channel}/scans"),
            &manager,
            &[("deep", "1")],
        )
        .await;
    assert_eq!(queued.status(), 303);
    let scanner = Scanner::new(
        site.repo.clone(),
        site.ctx.discord.clone(),
        site.ctx.clock.clone(),
    );
    let run = scanner.latest(channel).await.unwrap().expect("a run");
    assert_eq!(run.status, ScanStatus::Queued);
    assert_eq!(
        run.window.after(),
        None,
        "a deep scan walks back from the newest"
    );
    let body = status(&manager).await;
    assert_eq!(body.run_id, Some(run.id.to_string()));
    assert_eq!(body.status, "queued");
    assert!(body.live);
    let page = site.page(&format!("/clips/guilds/{guild}"), &manager).await;
    assert!(page.contains("data-live-active=\"true\""), "{page}");

    // A second request while it is unfinished keeps the one run.
    site.post(&format!("/clips/channels/{channel}/scans"), &manager, &[])
        .await;
    assert_eq!(site.repo.runs(channel, 10).await.unwrap().len(), 1);

    // A purge is refused while the scan is unfinished.
    let refused = site
        .purge(&format!("/clips/channels/{channel}"), &manager, "general")
        .await;
    assert_eq!(refused.status(), 409);

    let cancelled = site
        .post(
            &format!("/clips/channels/{channel}/scans/cancel"),
            &manager,
            &[],
        )
        .await;
    assert_eq!(cancelled.status(), 303);
    let body = status(&manager).await;
    assert_eq!(body.status, "canceled");
    assert!(!body.live);
}

#[tokio::test]
async fn the_page_scans_only_channels_it_reads_and_stop_reading_cancels_the_scan() {
    let site = site().await;
    let (guild, channel) = site.known_demo_guild().await;
    let manager = site.demo_browser("Manager", true).await;
    let scanner = Scanner::new(
        site.repo.clone(),
        site.ctx.discord.clone(),
        site.ctx.clock.clone(),
    );
    let scans = format!("/clips/channels/{channel}/scans");
    let reading = format!("/clips/channels/{channel}/reading");

    // "Stop reading" cancels the channel's unfinished scan, as `/clips disable` does.
    site.post(&scans, &manager, &[("deep", "1")]).await;
    let run = scanner.latest(channel).await.unwrap().expect("a run");
    assert_eq!(run.status, ScanStatus::Queued);
    let stopped = site.post(&reading, &manager, &[("reading", "0")]).await;
    assert_eq!(stopped.status(), 303);
    assert!(!site.is_reading(channel).await);
    assert_eq!(
        site.repo.run(run.id).await.unwrap().unwrap().status,
        ScanStatus::Canceled
    );

    // A channel not read offers no scan, and a scan asked for anyway is refused.
    let page = site.page(&format!("/clips/guilds/{guild}"), &manager).await;
    assert!(!page.contains("data-action=\"quick-scan\""), "{page}");
    assert!(!page.contains("data-action=\"deep-scan\""), "{page}");
    assert!(
        page.contains("Read the channel to scan its history"),
        "{page}"
    );
    for form in [vec![], vec![("deep", "1")]] {
        let refused = site.post(&scans, &manager, &form).await;
        assert_eq!(refused.status(), 409);
        assert!(refused.text().await.unwrap().contains("Nothing was queued"));
    }
    assert_eq!(
        site.repo.runs(channel, 10).await.unwrap().len(),
        1,
        "none queued"
    );

    // Read again: the scans come back.
    site.post(&reading, &manager, &[("reading", "1")]).await;
    let page = site.page(&format!("/clips/guilds/{guild}"), &manager).await;
    assert!(page.contains("data-action=\"quick-scan\""), "{page}");
    assert_eq!(site.post(&scans, &manager, &[]).await.status(), 303);
    assert_eq!(
        scanner.latest(channel).await.unwrap().unwrap().status,
        ScanStatus::Queued
    );
}

#[tokio::test]
async fn purges_need_the_name_typed_and_reset_the_scan_position() {
    let site = site().await;
    let (guild, general) = site.known_demo_guild().await;
    let dice = site.add_channel(guild, site.world.demo.dice, "dice").await;
    let manager = site.demo_browser("Manager", true).await;
    let at = testkit::epoch();
    for n in 1..=3 {
        index(&site.repo, general, &clip(n, 7, at, "a.mp4", "")).await;
        index(&site.repo, dice, &clip(10 + n, 7, at, "b.mp4", "")).await;
    }
    let stored = site.repo.channel(general).await.unwrap().unwrap();
    assert!(stored.last_message_id.is_some() && stored.message_count > 0);

    let wrong = site
        .purge(&format!("/clips/channels/{general}"), &manager, "General")
        .await;
    assert_eq!(wrong.status(), 400);
    let said = wrong.text().await.unwrap();
    assert!(said.contains("Nothing was purged"), "{said}");
    assert!(
        said.contains(&format!(
            "href=\"/clips/guilds/{guild}\">Back to the server"
        )),
        "a way back to the form: {said}"
    );
    assert_eq!(site.clips_in(general).await, 3);

    let purged = site
        .purge(&format!("/clips/channels/{general}"), &manager, "general")
        .await;
    assert_eq!(purged.status(), 200);
    assert_eq!(site.clips_in(general).await, 0);
    assert_eq!(site.clips_in(dice).await, 3);
    let stored = site.repo.channel(general).await.unwrap().unwrap();
    assert_eq!(stored.last_message_id, None);
    assert_eq!(stored.message_count, 0);
    assert_eq!(stored.last_scanned_at, None);

    let wrong = site
        .purge(&format!("/clips/guilds/{guild}"), &manager, "tavern")
        .await;
    assert_eq!(wrong.status(), 400);
    assert_eq!(site.clips_in(dice).await, 3);
    let purged = site
        .purge(&format!("/clips/guilds/{guild}"), &manager, "Tavern demo")
        .await;
    assert_eq!(purged.status(), 200);
    assert!(purged.text().await.unwrap().contains("3 clips"));
    assert_eq!(site.clips_in(dice).await, 0);
    assert_eq!(
        site.repo
            .channel(dice)
            .await
            .unwrap()
            .unwrap()
            .last_message_id,
        None
    );
}

// ---------------------------------------------------------------------------------------
// The library

/// 300 clips in two channels by three authors over 30 days; every tenth mentions a
/// boss in its file name, every seventh "dragon" in its message. Returns them.
async fn library_fixture(
    site: &Site,
    guild: GuildId,
    general: ChannelId,
) -> (ChannelId, Vec<NewClip>) {
    let dice = site.add_channel(guild, site.world.demo.dice, "dice").await;
    let start = testkit::epoch() - TimeDelta::days(30);
    let mut all = Vec::new();
    for n in 1..=300u64 {
        // Some share a time with their neighbour, so the cursor's tie-break matters.
        let at = start + TimeDelta::minutes(i64::try_from(n / 2 * 144).unwrap());
        let name = if n.is_multiple_of(10) {
            format!("boss_fight_{n}.mp4")
        } else {
            format!("clip_{n}.mp4")
        };
        let text = if n.is_multiple_of(7) {
            "the DRAGON falls"
        } else {
            "gg"
        };
        let c = clip(1000 + n, 1 + n % 3, at, &name, text);
        index(
            &site.repo,
            if n.is_multiple_of(2) { general } else { dice },
            &c,
        )
        .await;
        all.push(c);
    }
    // Newest first, ties by attachment id, descending.
    all.sort_by_key(|c| std::cmp::Reverse((c.posted_at, c.attachment_id)));
    (dice, all)
}

#[tokio::test]
async fn the_library_pages_filters_and_searches() {
    let site = site().await;
    let (guild, general) = site.known_demo_guild().await;
    let (dice, all) = library_fixture(&site, guild, general).await;
    let member = site.demo_browser("Member", false).await;

    // Every clip once, newest first, page by page through "Older clips".
    let mut seen = Vec::new();
    let mut path = Some(format!("/clips/guilds/{guild}/library"));
    let mut pages = 0;
    while let Some(p) = path {
        let html = site.page(&p, &member).await;
        let ids = tiles(&html);
        assert!(ids.len() <= 24);
        seen.extend(ids);
        path = next_link(&html);
        pages += 1;
    }
    assert_eq!(pages, 13);
    let expected: Vec<u64> = all.iter().map(|c| c.attachment_id).collect();
    assert_eq!(seen, expected);

    // The tile: the video plays inline, the link goes back to the message.
    let html = site
        .page(&format!("/clips/guilds/{guild}/library"), &member)
        .await;
    let newest = &all[0];
    assert!(html.contains("preload=\"metadata\""), "{html}");
    assert!(html.contains(&format!("https://discord.com/channels/{guild}/",)));
    assert!(
        html.contains(&format!("/{}\"", newest.message_id)),
        "{html}"
    );

    // Filters, through the repository (the page uses the same call) and the page.
    let filter = |f: LibraryFilter| {
        let repo = site.repo.clone();
        async move {
            let mut ids = Vec::new();
            let mut cursor: Option<LibraryCursor> = None;
            loop {
                let page = repo.library_page(&f, cursor, 50).await.unwrap();
                ids.extend(page.clips.iter().map(|c| c.attachment));
                match page.next {
                    Some(next) => cursor = Some(next),
                    None => return ids,
                }
            }
        }
    };
    let in_dice = filter(LibraryFilter {
        channel: Some(dice),
        ..LibraryFilter::guild(guild)
    })
    .await;
    assert_eq!(in_dice.len(), 150);
    assert!(in_dice.iter().all(|id| (id - 1000) % 2 == 1));
    let by_author = filter(LibraryFilter {
        author: Some(UserId::new(1)),
        ..LibraryFilter::guild(guild)
    })
    .await;
    assert_eq!(by_author.len(), 100);
    assert!(by_author.iter().all(|id| (id - 1000).is_multiple_of(3)));
    let from = testkit::epoch() - TimeDelta::days(10);
    let recent = filter(LibraryFilter {
        from: Some(from),
        ..LibraryFilter::guild(guild)
    })
    .await;
    let expected_recent = all.iter().filter(|c| c.posted_at >= from).count();
    assert_eq!(recent.len(), expected_recent);
    let bosses = filter(LibraryFilter {
        search: Some(SearchText::parse("BOSS_fight").unwrap()),
        ..LibraryFilter::guild(guild)
    })
    .await;
    assert_eq!(bosses.len(), 30);
    let dragons = filter(LibraryFilter {
        search: Some(SearchText::parse("dragon").unwrap()),
        channel: Some(general),
        ..LibraryFilter::guild(guild)
    })
    .await;
    assert_eq!(dragons.len(), 21, "multiples of 14 up to 300");
    let literal = filter(LibraryFilter {
        search: Some(SearchText::parse("clip%1").unwrap()),
        ..LibraryFilter::guild(guild)
    })
    .await;
    assert!(literal.is_empty(), "`%` is taken literally");

    // The same filters on the page.
    let html = site
        .page(
            &format!("/clips/guilds/{guild}/library?q=boss&channel={general}"),
            &member,
        )
        .await;
    let ids = tiles(&html);
    assert_eq!(
        ids.len(),
        24,
        "30 boss fights, all in #general: a full page"
    );
    assert!(ids.iter().all(|id| (id - 1000).is_multiple_of(10)));
    let rest = site.page(&next_link(&html).unwrap(), &member).await;
    assert_eq!(tiles(&rest).len(), 6);
    assert!(next_link(&rest).is_none());
    let day = (testkit::epoch() - TimeDelta::days(20))
        .format("%Y-%m-%d")
        .to_string();
    let html = site
        .page(
            &format!("/clips/guilds/{guild}/library?from={day}&to={day}&author=2"),
            &member,
        )
        .await;
    let on_day: Vec<u64> = all
        .iter()
        .filter(|c| {
            c.posted_at.format("%Y-%m-%d").to_string() == day && c.author_id == UserId::new(2)
        })
        .map(|c| c.attachment_id)
        .collect();
    assert!(!on_day.is_empty());
    assert_eq!(tiles(&html), on_day);

    // Bad filters: 400 naming the field as the form labels it, with a way back.
    for (query, field) in [
        ("from=yesterday", "“From”"),
        ("channel=abc", "“Channel”"),
        ("before=12", "page link"),
    ] {
        let response = site
            .get(
                &format!("/clips/guilds/{guild}/library?{query}"),
                Some(&member),
            )
            .await;
        assert_eq!(response.status(), 400, "{query}");
        let page = response.text().await.unwrap();
        assert!(page.contains(field), "{page}");
        assert!(!page.contains('`'), "no Markdown on a page: {page}");
        assert!(
            page.contains(&format!(
                "<a href=\"/clips/guilds/{guild}/library\">Show the whole library</a>"
            )),
            "{page}"
        );
    }
    // A search with a character it cannot hold (PostgreSQL's text takes no NUL): 400
    // saying so, never a storage error.
    for query in ["q=%00", "q=boss%00fight", "q=a%07b"] {
        let response = site
            .get(
                &format!("/clips/guilds/{guild}/library?{query}"),
                Some(&member),
            )
            .await;
        assert_eq!(response.status(), 400, "{query}");
        let page = response.text().await.unwrap();
        assert!(page.contains("<h1>Check the filters</h1>"), "{page}");
        assert!(
            page.contains("the search has a character it cannot contain"),
            "{page}"
        );
    }
}

#[tokio::test]
async fn expired_cdn_urls_are_refreshed_before_the_page_shows_them() {
    let site = site().await;
    let (guild, general) = site.known_demo_guild().await;
    let sim = &site.world.sim;
    let poster = site.world.demo.alice;
    let message = sim
        .post_user_message(
            site.world.demo.general,
            poster,
            "look",
            vec![AttachmentSpec::new(
                "win.mp4",
                "video/mp4",
                b"not really a video".to_vec(),
            )],
        )
        .unwrap();
    let stored = sim.message(site.world.demo.general, message).unwrap();
    let attachment = &stored.attachments[0];
    let old_url = attachment.url.clone();
    let mut c = clip(
        u64::from(attachment.id),
        u64::from(poster),
        testkit::epoch(),
        "win.mp4",
        "look",
    );
    c.message_id = MessageId::new(u64::from(message));
    c.url = old_url.clone().into();
    // Tavern believes it expired an hour ago; Discord agrees once its URLs are expired.
    c.url_expires_at = Some(site.world.clock.now() - TimeDelta::hours(1));
    index(&site.repo, general, &c).await;
    sim.expire_attachment_urls();
    assert_eq!(site.http.get(&old_url).send().await.unwrap().status(), 404);

    let member = site.demo_browser("Member", false).await;
    let html = site
        .page(&format!("/clips/guilds/{guild}/library"), &member)
        .await;
    let page = site
        .repo
        .library_page(&LibraryFilter::guild(guild), None, 10)
        .await
        .unwrap();
    let fresh = &page.clips[0].url;
    assert_ne!(fresh, &old_url);
    assert!(html.contains(&fresh.replace('&', "&amp;")), "{html}");
    assert!(
        page.clips[0]
            .url_expires_at
            .is_some_and(|t| t > site.world.clock.now())
    );
    let video = site.http.get(fresh).send().await.unwrap();
    assert_eq!(video.status(), 200);
}

#[tokio::test]
async fn the_library_queries_use_the_indexes_at_100_000_clips() {
    let site = site().await;
    let (guild, general) = site.known_demo_guild().await;
    let dice = site.add_channel(guild, site.world.demo.dice, "dice").await;
    // 100,000 clips in one statement (the repository writes a message at a time).
    sqlx::query(
        "INSERT INTO clips.clips (attachment_id, message_id, channel_id, guild_id, author_id,
             author_name, posted_at, filename, content_type, size_bytes, url, message_text)
         SELECT (10000000 + n)::text, (20000000 + n)::text,
                CASE WHEN n % 2 = 0 THEN $1 ELSE $2 END, $3, (n % 50 + 1)::text, 'someone',
                $4::timestamptz - make_interval(secs => n * 37),
                'clip_' || n || CASE WHEN n % 1000 = 0 THEN '_ace' ELSE '' END || '.mp4',
                'video/mp4', 1000, 'https://cdn.example/' || n, 'gg wp'
         FROM generate_series(1, 100000) AS n",
    )
    .bind(general.to_string())
    .bind(dice.to_string())
    .bind(guild.to_string())
    .bind(testkit::epoch())
    .execute(site.world.postgres.pool())
    .await
    .unwrap();
    sqlx::query("ANALYZE clips.clips")
        .execute(site.world.postgres.pool())
        .await
        .unwrap();

    let guild_only = LibraryFilter::guild(guild);
    let cursor = Some(LibraryCursor {
        posted_at: testkit::epoch() - TimeDelta::days(3),
        attachment: 10_050_000,
    });
    for (what, filter, cursor, index) in [
        (
            "first page",
            guild_only.clone(),
            None,
            "idx_clips_guild_posted",
        ),
        (
            "a later page",
            guild_only.clone(),
            cursor,
            "idx_clips_guild_posted",
        ),
        (
            "a channel",
            LibraryFilter {
                channel: Some(dice),
                ..guild_only.clone()
            },
            cursor,
            // Half the guild's clips: walking the guild's index and skipping the other
            // channel's is as cheap, and PostgreSQL may take either.
            "idx_clips_",
        ),
        (
            "an author",
            LibraryFilter {
                author: Some(UserId::new(7)),
                ..guild_only.clone()
            },
            None,
            "idx_clips_author_posted",
        ),
        (
            "a member's channels",
            LibraryFilter {
                channels: Some(vec![general, dice]),
                ..guild_only.clone()
            },
            cursor,
            "idx_clips_guild_posted",
        ),
        (
            "a rare word",
            LibraryFilter {
                search: Some(SearchText::parse("ace").unwrap()),
                ..guild_only.clone()
            },
            None,
            "idx_clips_",
        ),
    ] {
        let plan = site
            .repo
            .explain_library_page(&filter, cursor, 24)
            .await
            .unwrap();
        assert!(plan.contains(index), "{what}: {plan}");
        assert!(!plan.contains("Seq Scan"), "{what}: {plan}");
        if filter.search.is_none() {
            assert!(
                !plan.contains("Sort"),
                "{what}: the index gives the order: {plan}"
            );
        }
        let page = site.repo.library_page(&filter, cursor, 24).await.unwrap();
        assert!(!page.clips.is_empty(), "{what}");
    }
}

// ---------------------------------------------------------------------------------------
// Who sees which channel

/// Discord's View Channel bit.
const VIEW_CHANNEL: u64 = 1 << 10;

/// What a page or an answer shows of a channel, its clip and its author.
fn shows(html: &str, needles: &[&str]) -> Vec<String> {
    needles
        .iter()
        .filter(|n| html.contains(**n))
        .map(|n| (*n).to_owned())
        .collect()
}

#[tokio::test]
async fn a_member_sees_only_the_channels_discord_shows_them() {
    let site = site().await;
    let sim = &site.world.sim;
    let demo = &site.world.demo;
    let (guild, general) = site.known_demo_guild().await;
    // #mod-room: @everyone may not view it; the Moderators role may.
    let moderators = sim
        .create_role(demo.guild, discord_sim::RoleSpec::new("Moderators", 0))
        .unwrap();
    let mut spec = discord_sim::ChannelSpec::new("mod-room", ChannelKind::Text);
    spec.permission_overwrites = vec![
        discord_sim::PermissionOverwrite {
            id: demo.guild,
            kind: discord_sim::OverwriteKind::Role,
            allow: 0,
            deny: VIEW_CHANNEL,
        },
        discord_sim::PermissionOverwrite {
            id: moderators,
            kind: discord_sim::OverwriteKind::Role,
            allow: VIEW_CHANNEL,
            deny: 0,
        },
    ];
    let mod_room_id = sim.create_channel_with(demo.guild, spec).unwrap();
    let mod_room = site.add_channel(guild, mod_room_id, "mod-room").await;
    // A thread Tavern stored (discord-sim has no threads; Discord's channel list never
    // holds one): shown only to those who see every thread of its parent.
    let thread = ChannelId::new(990_000_000_000_000_001);
    site.repo
        .upsert_channel(&ChannelInfo {
            id: thread,
            guild,
            name: Some("mods-thread".into()),
            kind: Some("thread".into()),
            is_nsfw: false,
        })
        .await
        .unwrap();
    site.repo.set_reading(thread, true).await.unwrap();
    let at = testkit::epoch() - TimeDelta::days(1);
    index(&site.repo, general, &clip(1, 5, at, "open_play.mp4", "gg")).await;
    let secret = clip(2, 77, at, "secret_plan.mp4", "the mods only plan");
    index(&site.repo, mod_room, &secret).await;
    let threaded = clip(3, 88, at, "thread_talk.mp4", "inside the thread");
    index(&site.repo, thread, &threaded).await;

    let member_id = site.user_in(demo.guild, "Member", false);
    let member = site.sign_in(member_id).await;
    let moderator_id = site.user_in(demo.guild, "Moderator", false);
    sim.add_member_role(demo.guild, moderator_id, moderators)
        .unwrap();
    let moderator = site.sign_in(moderator_id).await;
    let manager = site.demo_browser("Manager", true).await;

    let library = format!("/clips/guilds/{guild}/library");
    let guild_page = format!("/clips/guilds/{guild}");
    let hidden = [
        "mod-room",
        "secret_plan",
        "the mods only plan",
        "author77",
        "mods-thread",
        "thread_talk",
        "author88",
    ];

    // A plain member: neither channel's name, clips, text nor author, anywhere.
    let html = site.page(&library, &member).await;
    assert_eq!(tiles(&html), vec![1]);
    assert!(html.contains("#general"), "{html}");
    assert_eq!(shows(&html, &hidden), Vec::<String>::new(), "library");
    let html = site.page(&format!("{library}?q=plan"), &member).await;
    assert!(tiles(&html).is_empty() && html.contains("No clips match."));
    let html = site.page(&format!("{library}?author=77"), &member).await;
    assert!(tiles(&html).is_empty(), "{html}");
    let html = site.page(&guild_page, &member).await;
    assert!(html.contains("#general"), "{html}");
    assert_eq!(shows(&html, &hidden), Vec::<String>::new(), "guild page");
    // A direct channel= URL and the scan status answer as for an unknown channel.
    for channel in [mod_room, thread] {
        let asked = site
            .get(&format!("{library}?channel={channel}"), Some(&member))
            .await;
        assert_eq!(asked.status(), 404, "library channel={channel}");
        let body = asked.text().await.unwrap();
        assert_eq!(shows(&body, &hidden), Vec::<String>::new(), "{body}");
        let api = site
            .get_json(&format!("/api/clips/channels/{channel}/scan"), &member)
            .await;
        assert_eq!(api.status(), 404, "scan status of {channel}");
        let body = api.text().await.unwrap();
        assert_eq!(shows(&body, &hidden), Vec::<String>::new(), "{body}");
        let toggle = site
            .post(
                &format!("/clips/channels/{channel}/reading"),
                &member,
                &[("reading", "0")],
            )
            .await;
        assert_eq!(
            toggle.status(),
            404,
            "a member's POST names no hidden channel"
        );
    }
    let unknown = site
        .get(
            &format!("{library}?channel=12345678901234567"),
            Some(&member),
        )
        .await;
    assert_eq!(unknown.status(), 404, "an unknown channel answers the same");
    let api = site
        .get_json(&format!("/api/clips/channels/{general}/scan"), &member)
        .await;
    assert_eq!(api.status(), 200);
    // The member's channels are cached a minute under Tavern's key.
    let key = clips::schema::library::visible_channels_key(guild, user_id(member_id));
    let ttl = store::harness::ttl(&site.world.redis, &key).await;
    assert!((1..=60).contains(&ttl), "cached for a minute, not {ttl}");

    // A member with the role the overwrite allows: the channel, not the thread (no
    // Manage Threads there).
    let html = site.page(&library, &moderator).await;
    assert_eq!(tiles(&html), vec![2, 1]);
    assert_eq!(
        shows(&html, &hidden),
        vec!["mod-room", "secret_plan", "the mods only plan", "author77"]
    );
    let html = site
        .page(&format!("{library}?channel={mod_room}"), &moderator)
        .await;
    assert_eq!(tiles(&html), vec![2]);
    let html = site.page(&guild_page, &moderator).await;
    assert!(
        html.contains("#mod-room") && !html.contains("mods-thread"),
        "{html}"
    );
    let api = site
        .get_json(&format!("/api/clips/channels/{mod_room}/scan"), &moderator)
        .await;
    assert_eq!(api.status(), 200);
    let body: clips::web::guilds::ScanStatusBody = api.json().await.unwrap();
    assert_eq!(body.clips_in_channel, 1);
    let thread_status = site
        .get_json(&format!("/api/clips/channels/{thread}/scan"), &moderator)
        .await;
    assert_eq!(thread_status.status(), 404);

    // A manager: everything, the thread included.
    let html = site.page(&library, &manager).await;
    assert_eq!(tiles(&html), vec![3, 2, 1]);
    assert_eq!(shows(&html, &hidden), hidden.to_vec());
    let html = site.page(&guild_page, &manager).await;
    assert!(
        html.contains("#mod-room") && html.contains("#mods-thread"),
        "{html}"
    );
    for channel in [mod_room, thread] {
        let api = site
            .get_json(&format!("/api/clips/channels/{channel}/scan"), &manager)
            .await;
        assert_eq!(api.status(), 200);
    }
}

/// Each clip has a page of its own, linked from its tile: the video, its details and
/// whole message, links to the message, its channel's clips and the library. A member
/// who does not see the clip's channel, a clip the guild does not have and an id that
/// is not one get the same 404, naming nothing of the hidden clip; a stranger gets 403
/// and nobody signed in is sent to log in.
#[tokio::test]
async fn each_clip_has_a_page_for_those_who_see_its_channel() {
    let site = site().await;
    let sim = &site.world.sim;
    let demo = &site.world.demo;
    let (guild, general) = site.known_demo_guild().await;
    let mut spec = discord_sim::ChannelSpec::new("mod-room", ChannelKind::Text);
    spec.permission_overwrites = vec![discord_sim::PermissionOverwrite {
        id: demo.guild,
        kind: discord_sim::OverwriteKind::Role,
        allow: 0,
        deny: VIEW_CHANNEL,
    }];
    let mod_room_id = sim.create_channel_with(demo.guild, spec).unwrap();
    let mod_room = site.add_channel(guild, mod_room_id, "mod-room").await;
    let at = testkit::epoch() - TimeDelta::days(1);
    let mut open = clip(1, 5, at, "open_play.mp4", "the DRAGON falls\nsecond line");
    open.duration_secs = Some(75.0);
    index(&site.repo, general, &open).await;
    index(
        &site.repo,
        mod_room,
        &clip(2, 77, at, "secret_plan.mp4", "the mods only plan"),
    )
    .await;
    let member = site.demo_browser("Member", false).await;
    let manager = site.demo_browser("Manager", true).await;

    // The tile links to the page; its Discord link is named for the clip; one page of
    // clips has no pager.
    let page_of = |id: &str| format!("/clips/guilds/{guild}/clips/{id}");
    let library = site
        .page(&format!("/clips/guilds/{guild}/library"), &member)
        .await;
    assert!(
        library.contains(&format!("href=\"{}\"", page_of("1"))),
        "{library}"
    );
    assert!(
        library.contains("aria-label=\"Open open_play.mp4 in Discord\""),
        "{library}"
    );
    assert!(!library.contains("class=\"pager\""), "{library}");

    let html = site.page(&page_of("1"), &member).await;
    assert!(html.contains("<title>open_play.mp4"), "{html}");
    assert!(html.contains("data-attachment-id=\"1\""), "{html}");
    assert!(html.contains("<video"), "{html}");
    assert!(html.contains("the DRAGON falls\nsecond line"), "{html}");
    assert!(html.contains("1:15"), "{html}");
    assert!(html.contains("in #general"), "{html}");
    assert!(
        html.contains(&format!("https://discord.com/channels/{guild}/{general}/")),
        "{html}"
    );
    assert!(
        html.contains(&format!(
            "href=\"/clips/guilds/{guild}/library?channel={general}\""
        )),
        "{html}"
    );

    // Hidden, absent and malformed: the same 404, nothing of the hidden clip.
    let mut sentences = Vec::new();
    for id in ["2", "999", "not-a-clip"] {
        let response = site.get(&page_of(id), Some(&member)).await;
        assert_eq!(response.status(), 404, "{id}");
        let body = response.text().await.unwrap();
        for hidden in ["secret_plan", "mod-room", "the mods only plan", "author77"] {
            assert!(!body.contains(hidden), "{id}: {body}");
        }
        assert!(body.contains("that you can see"), "{id}: {body}");
        let problem = body
            .split("<section class=\"problem\">")
            .nth(1)
            .and_then(|rest| rest.split("</section>").next())
            .unwrap_or_default()
            .replace(&format!("“{id}”"), "“…”");
        sentences.push(problem);
    }
    assert_eq!(
        sentences[0], sentences[1],
        "a hidden clip reads as an absent one"
    );
    // A manager sees every channel's clips.
    let html = site.page(&page_of("2"), &manager).await;
    assert!(
        html.contains("secret_plan.mp4") && html.contains("in #mod-room"),
        "{html}"
    );

    // A stranger: 403; nobody signed in: the login.
    let stranger = site.sign_in(sim.create_user("Stranger")).await;
    assert_eq!(site.get(&page_of("1"), Some(&stranger)).await.status(), 403);
    let anonymous = site.get(&page_of("1"), None).await;
    assert_eq!(anonymous.status(), 303);
    assert!(location(&anonymous).starts_with("/login/discord?next="));
}

#[tokio::test]
async fn a_member_sees_no_channel_while_discord_cannot_say_which() {
    let site = site().await;
    let (guild, general) = site.known_demo_guild().await;
    let at = testkit::epoch() - TimeDelta::days(1);
    index(&site.repo, general, &clip(1, 5, at, "open_play.mp4", "gg")).await;
    let member = site.demo_browser("Member", false).await;
    site.world.sim.inject_fault(
        discord_sim::RouteMatch::new("GET", format!("/guilds/{}/channels", site.world.demo.guild)),
        discord_sim::Fault::Status(403),
        1,
    );

    let refused = site
        .get(&format!("/clips/guilds/{guild}/library"), Some(&member))
        .await;
    assert_eq!(refused.status(), 502);
    let html = refused.text().await.unwrap();
    assert!(tiles(&html).is_empty(), "{html}");
    assert!(html.contains("could not ask Discord"), "{html}");
    assert!(!html.contains("open_play"), "{html}");

    // Once Discord answers, the page shows what it allows.
    let html = site
        .page(&format!("/clips/guilds/{guild}/library"), &member)
        .await;
    assert_eq!(tiles(&html), vec![1]);
}

/// The `<li>` of `channel`'s row on a guild page.
fn channel_row(html: &str, channel: Snowflake) -> &str {
    let start = html
        .find(&format!("id=\"channel-{channel}\""))
        .unwrap_or_else(|| panic!("no row for channel {channel}: {html}"));
    let end = html[start..]
        .find("</li>")
        .map_or(html.len(), |e| start + e);
    &html[start..end]
}

#[tokio::test]
async fn the_guild_page_marks_a_channel_tavern_cannot_read_and_will_not_read_it() {
    let site = site().await;
    let (installed, guild, open, closed) = players_guild(&site).await;
    let owner = site.sign_in(installed.owner).await;

    let page = site.page(&format!("/clips/guilds/{guild}"), &owner).await;
    let row = channel_row(&page, closed);
    assert!(row.contains("Tavern cannot read it"), "{row}");
    assert!(row.contains("Read Message History"), "{row}");
    assert!(!row.contains("View Channel"), "only what is missing: {row}");
    let row = channel_row(&page, open);
    assert!(!row.contains("cannot read"), "{row}");

    // "Read this channel" is refused with what to grant; the readable one is read.
    let refused = start_reading(&site, &owner, closed).await;
    assert_eq!(refused.status(), 409);
    let text = refused.text().await.unwrap();
    assert!(text.contains("Read Message History"), "{text}");
    assert!(!site.is_reading(channel_id(closed)).await);
    let read = start_reading(&site, &owner, open).await;
    assert_eq!(read.status(), 303);
    assert!(site.is_reading(channel_id(open)).await);
}

/// `who` asks, on the guild page, that Tavern read `channel` ("Read this channel").
async fn start_reading(site: &Site, who: &Browser, channel: Snowflake) -> reqwest::Response {
    site.post(
        &format!("/clips/channels/{channel}/reading"),
        who,
        &[("reading", "1")],
    )
    .await
}

/// A server that added Tavern through its link (Tavern neither owns it nor is an
/// Administrator) with `#open` and `#closed`, where an admin denied Tavern's role Read
/// Message History, both stored: the server, its guild id and the two channels.
async fn players_guild(
    site: &Site,
) -> (discord_sim::InstalledGuild, GuildId, Snowflake, Snowflake) {
    use discord_sim::model::permissions::{READ_MESSAGE_HISTORY, SEND_MESSAGES, VIEW_CHANNEL};
    let sim = &site.world.sim;
    let installed = sim
        .create_guild_with_bot_role(
            "Players' Guild",
            VIEW_CHANNEL | SEND_MESSAGES | READ_MESSAGE_HISTORY,
        )
        .unwrap();
    let open = sim
        .create_channel(installed.guild, "open", ChannelKind::Text)
        .unwrap();
    let closed = sim
        .create_channel(installed.guild, "closed", ChannelKind::Text)
        .unwrap();
    deny_tavern(site, &installed, closed, READ_MESSAGE_HISTORY);
    let guild = guild_id(installed.guild);
    site.repo
        .upsert_guild(&GuildInfo {
            id: guild,
            name: "Players' Guild".into(),
            icon: None,
            owner: None,
        })
        .await
        .unwrap();
    for (id, name) in [(open, "open"), (closed, "closed")] {
        site.repo
            .upsert_channel(&ChannelInfo {
                id: channel_id(id),
                guild,
                name: Some(name.into()),
                kind: Some("text".into()),
                is_nsfw: false,
            })
            .await
            .unwrap();
    }
    (installed, guild, open, closed)
}

/// An admin denies (or, with `deny` 0, stops denying) Tavern's role `deny` in `channel`.
fn deny_tavern(
    site: &Site,
    installed: &discord_sim::InstalledGuild,
    channel: Snowflake,
    deny: u64,
) {
    let overwrites = if deny == 0 {
        vec![]
    } else {
        vec![discord_sim::PermissionOverwrite {
            id: installed.bot_role.expect("the install made a role"),
            kind: discord_sim::OverwriteKind::Role,
            allow: 0,
            deny,
        }]
    };
    site.world
        .sim
        .set_channel_overwrites(channel, overwrites)
        .unwrap();
}

/// The requests the bot made about `guild`, and who it is, since the last clear.
fn bot_sight_requests(site: &Site, guild: GuildId) -> Vec<String> {
    site.world
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.path.contains(&format!("/guilds/{guild}")) || r.path.ends_with("/users/@me"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

#[tokio::test]
async fn a_second_guild_page_load_does_not_ask_discord_again_what_tavern_may_read() {
    let site = site().await;
    let (installed, guild, open, closed) = players_guild(&site).await;
    let owner = site.sign_in(installed.owner).await;
    let path = format!("/clips/guilds/{guild}");

    let page = site.page(&path, &owner).await;
    assert!(channel_row(&page, closed).contains("Tavern cannot read it"));
    assert!(
        !bot_sight_requests(&site, guild).is_empty(),
        "the first load asks"
    );

    site.world.sim.clear_requests();
    let page = site.page(&path, &owner).await;
    assert!(channel_row(&page, closed).contains("Tavern cannot read it"));
    assert!(!channel_row(&page, open).contains("cannot read"));
    assert_eq!(
        bot_sight_requests(&site, guild),
        Vec::<String>::new(),
        "the second load uses what the first learnt"
    );

    // The admin gives #closed back: a manager reading it is not refused on the kept
    // answer, and the page it leads back to no longer marks it.
    deny_tavern(&site, &installed, closed, 0);
    let read = start_reading(&site, &owner, closed).await;
    assert_eq!(read.status(), 303);
    assert!(site.is_reading(channel_id(closed)).await);
    let page = site.page(&path, &owner).await;
    assert!(
        !channel_row(&page, closed).contains("cannot read"),
        "{page}"
    );
}

#[tokio::test]
async fn a_scan_asked_for_right_after_a_permission_change_sees_it_though_the_page_kept_the_old_one()
{
    use clips::repo::ScanRun;
    use discord_sim::model::permissions::READ_MESSAGE_HISTORY;
    let site = site().await;
    let (installed, guild, open, _) = players_guild(&site).await;
    let owner = site.sign_in(installed.owner).await;
    site.world
        .sim
        .post_user_message(
            open,
            installed.owner,
            "the ambush",
            vec![AttachmentSpec::new("ambush.mp4", "video/mp4", vec![1; 32])],
        )
        .unwrap();
    let reading = start_reading(&site, &owner, open).await;
    assert_eq!(reading.status(), 303);
    // The page keeps "Tavern reads #open".
    let page = site.page(&format!("/clips/guilds/{guild}"), &owner).await;
    assert!(!channel_row(&page, open).contains("cannot read"));
    // The scan worker's engine, with the same kept answers.
    let scanner = Scanner::new(
        site.repo.clone(),
        site.ctx.discord.clone(),
        site.ctx.clock.clone(),
    )
    .with_sight_cache(site.ctx.redis.clone());
    let run_latest = || async {
        let run = scanner
            .latest(channel_id(open))
            .await
            .unwrap()
            .expect("a run was queued");
        scanner
            .run(
                run.id,
                &|_: &ScanRun| {},
                tokio_util::sync::CancellationToken::new(),
            )
            .await
            .unwrap()
    };

    // An admin closes its history to Tavern; the manager asks for a scan at once.
    deny_tavern(&site, &installed, open, READ_MESSAGE_HISTORY);
    let queued = site
        .post(
            &format!("/clips/channels/{open}/scans"),
            &owner,
            &[("deep", "1")],
        )
        .await;
    assert_eq!(queued.status(), 303);
    let run = run_latest().await;
    assert_eq!(run.status, ScanStatus::Failed, "{run:?}");
    let reason = run.error_message.clone().unwrap_or_default();
    assert!(reason.contains("Read Message History"), "{reason}");

    // Given back, a run nobody asked for (a catch-up) is not refused on the kept
    // "cannot read" either: it reads the video.
    deny_tavern(&site, &installed, open, 0);
    scanner
        .request(channel_id(open), clips::scan::ScanMode::CatchUp)
        .await
        .unwrap();
    let run = run_latest().await;
    assert_eq!(run.status, ScanStatus::Succeeded, "{run:?}");
    assert_eq!(
        site.repo.clips_in_channel(channel_id(open)).await.unwrap(),
        1
    );
}

#[tokio::test]
async fn a_channel_changed_on_discord_drops_what_tavern_kept_of_its_permissions() {
    let site = site().await;
    let (installed, guild, open, _) = players_guild(&site).await;
    let owner = site.sign_in(installed.owner).await;
    let key = clips::schema::library::bot_sight_key(guild);
    let kept = || async {
        let value: Option<String> = store::redis::cmd("GET")
            .arg(&key)
            .query_async(&mut site.ctx.redis.conn())
            .await
            .unwrap();
        value
    };
    site.page(&format!("/clips/guilds/{guild}"), &owner).await;
    assert!(kept().await.is_some(), "the page keeps what it asked");

    let scanner = Scanner::new(
        site.repo.clone(),
        site.ctx.discord.clone(),
        site.ctx.clock.clone(),
    )
    .with_sight_cache(site.ctx.redis.clone());
    let events =
        clips::events::ClipsEvents::new(site.repo.clone(), site.ctx.discord.clone(), scanner);
    events
        .apply(discord::model::Event::ChannelUpdate(
            discord::model::ChannelInfo {
                id: channel_id(open),
                guild_id: Some(guild),
                name: "open".into(),
                kind: discord::model::ChannelType::Text,
                nsfw: false,
                parent_id: None,
            },
        ))
        .await
        .unwrap();
    assert_eq!(kept().await, None, "the next question asks Discord");
}
