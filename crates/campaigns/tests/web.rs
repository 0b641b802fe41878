//! The campaigns' web flows over a real listener: organiser authorisation, linking's
//! CSRF checks, the organiser token's refresh job and the schedule-next-session form,
//! against FakeMeetup, discord-sim and a real Redis.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::time::Duration;

use base::Clock as _;
use campaigns::config::DiscordSettings;
use campaigns::repo::{EventUpsert, MeetupEvent, Tokens};
use campaigns::web::organiser::{
    REFRESH_EVERY, RETRY_AFTER, RefreshOutcome, next_token_refresh, refresh_if_due,
};
use campaigns::{CampaignsConfig, EventSeriesId, MeetupEventId, MeetupUserId, Repo};
use chrono::TimeDelta;
use discord::model::{ChannelId, RoleId, UserId};
use meetup::fake::{FakeFault, FakeMeetup, NewEvent};
use meetup::{
    ClientId, ClientSecret, EventType, GroupRole, GroupUrlname, MeetupClient, MemberId,
    RefreshToken,
};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use testkit::World;

/// The campaigns' web flows served on a port of their own, with a fake Meetup.
struct Site {
    world: World,
    ctx: feature::Context,
    fake: FakeMeetup,
    base: String,
    groups: Vec<GroupUrlname>,
    config: CampaignsConfig,
    repo: Repo,
    http: reqwest::Client,
    admin_role: RoleId,
}

async fn site(groups: &[&str]) -> Site {
    let world = World::new().await;
    // The sessions check the origin of state-changing requests against the public URL.
    let testkit::Listening {
        listener,
        base,
        ctx,
    } = world.listen().await;
    let fake = FakeMeetup::start().await.unwrap();
    let groups: Vec<GroupUrlname> = groups
        .iter()
        .map(|g| GroupUrlname::parse(g).unwrap())
        .collect();
    for group in &groups {
        fake.add_group(group, group.as_str()).unwrap();
    }
    let client_id = ClientId::new("tavern-tests");
    let secret = ClientSecret::from("tavern-tests-secret");
    fake.add_oauth_client(
        &client_id,
        &secret,
        &campaigns::web::callback_url(&ctx.public_url).unwrap(),
    );
    let admin_role = RoleId::new(u64::from(
        world
            .sim
            .create_role(
                world.demo.guild,
                discord_sim::RoleSpec::new("Campaign admins", 0),
            )
            .unwrap(),
    ));
    let mut config = CampaignsConfig::new(client_id, secret, fake.endpoints(), groups.clone());
    let mut settings =
        DiscordSettings::new(discord::model::GuildId::new(u64::from(world.demo.guild)));
    settings.admin_role = Some(admin_role);
    config.discord = Some(settings);
    let feature = campaigns::web::add(feature::Feature::new("campaigns"), &ctx, &config);
    let router = feature.routes.expect("the web flows have routes");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Site {
        repo: Repo::new(world.redis.clone()),
        world,
        ctx,
        fake,
        base,
        groups,
        config,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        admin_role,
    }
}

fn location(response: &reqwest::Response) -> String {
    response.headers()[LOCATION].to_str().unwrap().to_owned()
}

/// The `name=value` of the flow cookie a response sets.
fn flow_cookie(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with(campaigns::web::FLOW_COOKIE))
        .expect("the flow cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

fn state_of(url: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .expect("a state")
}

impl Site {
    /// A channel for the organisers' alerts, set in the site's config: its id, and the
    /// Discord settings naming it.
    fn alerts_channel(&mut self) -> (discord_sim::Snowflake, DiscordSettings) {
        let alerts = self
            .world
            .sim
            .create_channel(
                self.world.demo.guild,
                "organisers",
                discord_sim::ChannelKind::Text,
            )
            .unwrap();
        let mut settings = self.config.discord.clone().unwrap();
        settings.alerts_channel = Some(ChannelId::new(alerts.get()));
        self.config.discord = Some(settings.clone());
        (alerts, settings)
    }

    /// The token refresh job over `client` with the site's credentials, alerting the
    /// organisers through `settings`.
    fn refresh_job(&self, client: &MeetupClient, settings: DiscordSettings) -> feature::Job {
        campaigns::web::organiser::token_refresh(
            self.repo.clone(),
            client.clone(),
            self.config.client_id.clone(),
            self.config.client_secret.clone(),
            self.world.clock.clone(),
            Some(campaigns::web::organiser::RefusalAlerts {
                discord: self.ctx.discord.clone(),
                settings,
                organiser_page: format!("{}/campaigns/organiser", self.base),
            }),
        )
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A Meetup member with `role` in every group.
    fn member(&self, name: &str, role: GroupRole) -> MemberId {
        let member = self.fake.add_member(name);
        for group in &self.groups {
            self.fake.set_role(group, &member, role.clone()).unwrap();
        }
        member
    }

    /// A Discord user in the demo guild.
    fn discord_user(&self, name: &str) -> UserId {
        let user = self.world.sim.create_user(name);
        self.world
            .sim
            .add_member(self.world.demo.guild, user)
            .unwrap();
        UserId::new(u64::from(user))
    }

    /// A signed-in session of `user`: its cookie and CSRF token.
    async fn session(&self, user: UserId) -> (String, String) {
        let sessions = &self.ctx.sessions;
        let session = sessions
            .log_in(
                None,
                web::session::SessionUser {
                    id: user,
                    username: format!("user{user}"),
                    global_name: None,
                    avatar: None,
                },
                &discord::oauth::TokenGrant {
                    access_token: "discord-access".into(),
                    refresh_token: None,
                    expires_in: Duration::from_secs(3600),
                    scopes: vec![],
                },
            )
            .await
            .unwrap();
        (
            format!(
                "{}={}",
                sessions.config().cookie_name(),
                session.id().expose()
            ),
            session.csrf_token().to_owned(),
        )
    }

    /// The schedule form at `path` sent by `session` (its cookie and CSRF token) with
    /// `date` and `time`.
    fn schedule(
        &self,
        path: &str,
        (session, csrf): (&str, &str),
        date: &str,
        time: &str,
    ) -> impl Future<Output = reqwest::Result<reqwest::Response>> + use<> {
        self.http
            .post(self.url(path))
            .header(COOKIE, session)
            .form(&[("csrf_token", csrf), ("date", date), ("time", time)])
            .send()
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(self.url(path));
        if let Some(cookie) = cookie {
            request = request.header(COOKIE, cookie);
        }
        request.send().await.unwrap()
    }

    /// Meetup's redirect back to the callback, in the browser holding the flow cookie.
    async fn callback(&self, callback: &str, flow: &str) -> reqwest::Response {
        self.http
            .get(callback)
            .header(COOKIE, flow)
            .send()
            .await
            .unwrap()
    }

    /// Meetup's authorize page approves (as the signed-in fake member) and points
    /// back at the callback.
    async fn meetup_approves(&self, authorize: &str) -> String {
        let answer = self.http.get(authorize).send().await.unwrap();
        assert_eq!(answer.status(), 302, "{}", answer.text().await.unwrap());
        let back = location(&answer);
        assert!(
            back.starts_with(&self.url("/campaigns/meetup/callback")),
            "{back}"
        );
        back
    }

    /// The organiser flow up to Meetup's answer: the callback URL and the flow cookie.
    async fn organiser_round_trip(&self, member: &MemberId) -> (String, String) {
        let user = self.discord_user("Olivia");
        let (session, csrf) = self.session(user).await;
        let page = self.get("/campaigns/organiser", Some(&session)).await;
        assert_eq!(page.status(), 200);
        let started = self
            .http
            .post(self.url("/campaigns/organiser"))
            .header(COOKIE, &session)
            .form(&[("csrf_token", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(started.status(), 303, "{}", started.text().await.unwrap());
        let flow = flow_cookie(&started);
        self.fake.sign_in(member).unwrap();
        let back = self.meetup_approves(&location(&started)).await;
        (back, flow)
    }

    async fn stored_access_token(&self) -> Option<String> {
        redis::cmd("GET")
            .arg(campaigns::schema::MEETUP_ACCESS_TOKEN)
            .query_async(&mut self.world.redis.conn())
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn an_organiser_of_every_group_authorises_tavern_and_the_tokens_are_stored() {
    let site = site(&["dragons", "goblins"]).await;
    let organiser = site.member("Olivia", GroupRole::Coorganizer);
    let (callback, flow) = site.organiser_round_trip(&organiser).await;

    let done = site.callback(&callback, &flow).await;
    assert_eq!(done.status(), 200);
    let page = done.text().await.unwrap();
    assert!(page.contains("Tavern is authorised"), "{page}");

    let stored = site.repo.organizer_tokens().await.unwrap().expect("tokens");
    assert!(site.fake.is_access_token_valid(&stored.tokens.access));
    assert!(site.fake.is_refresh_token_valid(&stored.tokens.refresh));
    // Meetup's access tokens (the fake's too) last an hour: refreshed before that.
    assert_eq!(
        stored.next_refresh,
        Some(site.world.clock.now() + TimeDelta::minutes(45))
    );
    // The CSRF token was used up with the answer.
    assert!(site.world.redis.scan("csrf:*").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_member_who_does_not_organise_every_group_is_refused_and_nothing_is_stored() {
    let site = site(&["dragons", "goblins"]).await;
    let member = site.fake.add_member("Eve");
    site.fake
        .set_role(&site.groups[0], &member, GroupRole::Organizer)
        .unwrap();
    site.fake
        .set_role(&site.groups[1], &member, GroupRole::Member)
        .unwrap();
    let (callback, flow) = site.organiser_round_trip(&member).await;

    let refused = site.callback(&callback, &flow).await;
    assert_eq!(refused.status(), 403);
    let page = refused.text().await.unwrap();
    assert!(
        page.contains(
            "This page is for the organisers; you signed in to Meetup as Eve, who is not an \
             organiser of every group Tavern syncs: goblins (Eve is a member, not an \
             organiser, there)."
        ),
        "{page}"
    );
    assert!(!page.contains("MEMBER"), "{page}");
    assert!(!page.contains("dragons ("), "{page}");
    assert_eq!(site.stored_access_token().await, None);
    assert!(site.repo.organizer_tokens().await.unwrap().is_none());
}

#[tokio::test]
async fn the_organiser_page_needs_a_signed_in_user_and_its_post_the_csrf_token() {
    let site = site(&["dragons"]).await;
    let anonymous = site.get("/campaigns/organiser", None).await;
    assert_eq!(anonymous.status(), 303);
    assert!(location(&anonymous).starts_with("/login/discord"));
    let user = site.discord_user("Mallory");
    let (session, _csrf) = site.session(user).await;
    let forged = site
        .http
        .post(site.url("/campaigns/organiser"))
        .header(COOKIE, &session)
        .form(&[("csrf_token", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    assert!(site.world.redis.scan("csrf:*").await.unwrap().is_empty());
}

#[tokio::test]
async fn the_linking_callback_refuses_a_forged_or_missing_csrf_token_and_writes_nothing() {
    let site = site(&["dragons"]).await;
    let player = site.member("Pat", GroupRole::Member);
    site.fake.sign_in(&player).unwrap();
    let discord = site.discord_user("Pat");
    let id = site.repo.create_linking_id(discord).await.unwrap();

    let page = site
        .get(&format!("/link-meetup/{}", id.expose()), None)
        .await;
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Continue to Meetup"));
    let started = site
        .get(&format!("/link-meetup/{}/start", id.expose()), None)
        .await;
    assert_eq!(started.status(), 303);
    let flow = flow_cookie(&started);
    let callback = site.meetup_approves(&location(&started)).await;

    // A forged state: 403, the link is not made, the linking id still works.
    let keys_before = site.world.redis.scan("*").await.unwrap();
    let forged = callback.replace(&state_of(&callback), "forgedstate123");
    let refused = site
        .http
        .get(&forged)
        .header(COOKIE, &flow)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    assert!(refused.text().await.unwrap().contains("does not match"));
    assert_eq!(site.repo.meetup_user_of(discord).await.unwrap(), None);
    assert!(site.repo.open_linking_id(&id).await.unwrap().is_some());

    // The forgery wrote nothing: the same keys, the browser's genuine token still there.
    assert_eq!(site.world.redis.scan("*").await.unwrap(), keys_before);
    assert_eq!(site.world.redis.scan("csrf:*").await.unwrap().len(), 1);

    // No cookie at all: 403.
    let no_cookie = site.http.get(&callback).send().await.unwrap();
    assert_eq!(no_cookie.status(), 403);
    assert!(
        no_cookie
            .text()
            .await
            .unwrap()
            .contains("cookie is missing")
    );
    assert_eq!(site.repo.meetup_user_of(discord).await.unwrap(), None);

    // And the genuine answer links both accounts and uses up the linking id.
    let linked = site.callback(&callback, &flow).await;
    assert_eq!(linked.status(), 200);
    assert!(linked.text().await.unwrap().contains("Linked"));
    let meetup_user = MeetupUserId::parse(player.as_str()).unwrap();
    assert_eq!(
        site.repo.meetup_user_of(discord).await.unwrap(),
        Some(meetup_user)
    );
    assert_eq!(
        site.repo.discord_user_of(meetup_user).await.unwrap(),
        Some(discord)
    );
    assert!(site.repo.open_linking_id(&id).await.unwrap().is_none());
    assert!(site.world.redis.scan("csrf:*").await.unwrap().is_empty());
    // Replayed: the token is used up.
    let replayed = site.callback(&callback, &flow).await;
    assert_eq!(replayed.status(), 403);
    assert!(replayed.text().await.unwrap().contains("already used"));
    let gone = site
        .get(&format!("/link-meetup/{}", id.expose()), None)
        .await;
    assert_eq!(gone.status(), 404);
}

#[tokio::test]
async fn the_linking_page_names_the_discord_account_and_warns_someone_signed_in_as_another() {
    let site = site(&["dragons"]).await;
    let carol = site.discord_user("Carol");
    let bob = site.discord_user("Bob");
    let id = site
        .repo
        .create_named_linking_id(carol, "carol")
        .await
        .unwrap();
    let path = format!("/link-meetup/{}", id.expose());

    // Opened signed out (as Carol would from Discord): her name, not her id, no warning.
    let page = site.get(&path, None).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("This links the Discord account <strong>carol</strong>"),
        "{html}"
    );
    assert!(!html.contains(&carol.to_string()), "{html}");
    assert!(!html.contains("signed in as"), "{html}");
    // A display name is anyone's to copy: a visitor signed out is told whose link to
    // trust.
    assert!(
        html.contains("Continue only if you asked for this link yourself"),
        "{html}"
    );

    // Bob, signed in, opens Carol's link: told plainly it is not his.
    let (session, _) = site.session(bob).await;
    let page = site.get(&path, Some(&session)).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains(&format!(
            "This link was made for carol's Discord account; you are signed in as user{bob}."
        )),
        "{html}"
    );
    assert!(html.contains("not yours"), "{html}");

    // Carol signed in: no warning.
    let (session, _) = site.session(carol).await;
    let html = site.get(&path, Some(&session)).await.text().await.unwrap();
    assert!(!html.contains("signed in as"), "{html}");
    assert!(!html.contains("Continue only if"), "{html}");

    // A link whose name Tavern does not know names the account by its id.
    let unnamed = site.repo.create_linking_id(bob).await.unwrap();
    let html = site
        .get(&format!("/link-meetup/{}", unnamed.expose()), None)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(&format!(
            "the Discord account with id <strong>{bob}</strong>"
        )),
        "{html}"
    );
}

/// Linking a Meetup account already linked to another Discord member, or a Discord
/// account already linked to another Meetup account, is refused naming the accounts
/// (no raw Discord ids) with advice the visitor can follow.
#[tokio::test]
async fn a_link_to_an_account_linked_elsewhere_names_it_and_says_what_to_do() {
    let site = site(&["dragons"]).await;
    let dora = site.member("Dora Player", GroupRole::Member);
    let dora_discord = site.discord_user("Dora");
    site.repo
        .link(
            MeetupUserId::parse(dora.as_str()).unwrap(),
            dora_discord,
            None,
        )
        .await
        .unwrap();
    let bob = site.discord_user("Bob");
    // Bob asks for a link, and Meetup signs him in as Dora.
    let round_trip = |linking: campaigns::LinkingId, member: MemberId| {
        let site = &site;
        async move {
            site.fake.sign_in(&member).unwrap();
            let started = site
                .get(&format!("/link-meetup/{}/start", linking.expose()), None)
                .await;
            assert_eq!(started.status(), 303);
            let flow = flow_cookie(&started);
            let callback = site.meetup_approves(&location(&started)).await;
            site.callback(&callback, &flow).await
        }
    };
    let linking = site.repo.create_named_linking_id(bob, "bob").await.unwrap();
    let refused = round_trip(linking, dora.clone()).await;
    assert_eq!(refused.status(), 409);
    let html = refused.text().await.unwrap();
    assert!(
        html.contains(
            "The Meetup account you signed in with (Dora Player) is already linked to \
             another Discord member, so nothing was changed. If that Discord account is \
             yours too, sign in to Discord with it and type /unlink-meetup"
        ),
        "{html}"
    );
    assert!(
        html.contains("ask an admin of the community's Discord server to unlink it with /unlink"),
        "{html}"
    );
    assert!(!html.contains(&dora_discord.to_string()), "{html}");
    assert_eq!(site.repo.meetup_user_of(bob).await.unwrap(), None);

    // Bob, already linked to his old Meetup account (named by the sync), signs in with
    // a new one.
    let old = site.member("Bob Old", GroupRole::Member);
    let old_id = MeetupUserId::parse(old.as_str()).unwrap();
    site.repo.link(old_id, bob, None).await.unwrap();
    site.repo
        .remember_meetup_names(&[(old_id, "Bob Old".to_owned())])
        .await
        .unwrap();
    let new = site.member("Bob New", GroupRole::Member);
    let linking = site.repo.create_named_linking_id(bob, "bob").await.unwrap();
    let refused = round_trip(linking, new).await;
    assert_eq!(refused.status(), 409);
    let html = refused.text().await.unwrap();
    assert!(
        html.contains(&format!(
            "The Discord account bob is already linked to another Meetup account, Bob Old \
             (Meetup member {old_id}), so the one you signed in with (Bob New) was not linked \
             and nothing was changed. To link it instead, type /unlink-meetup in Discord"
        )),
        "{html}"
    );
    assert!(!html.contains(&bob.to_string()), "{html}");
    assert_eq!(site.repo.meetup_user_of(bob).await.unwrap(), Some(old_id));
}

/// Stores `tokens` as the organiser's, next refreshed at `next`.
async fn store_tokens(
    site: &Site,
    access: &str,
    refresh: &str,
    next: chrono::DateTime<chrono::Utc>,
) {
    site.repo
        .set_organizer_tokens(
            &Tokens {
                access: access.into(),
                refresh: refresh.into(),
            },
            next,
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn the_refresh_job_refreshes_when_due_and_retries_an_hour_after_a_failure() {
    let site = site(&["dragons"]).await;
    let organiser = site.member("Olivia", GroupRole::Organizer);
    let issued = site.fake.issue_tokens(&organiser).unwrap();
    let clock = site.world.clock.clone();
    let start = clock.now();
    store_tokens(
        &site,
        issued.access_token.expose(),
        issued.refresh_token.expose(),
        start + TimeDelta::hours(1),
    )
    .await;
    let client = MeetupClient::new(site.fake.endpoints()).unwrap();
    let refresh = || {
        refresh_if_due(
            &site.repo,
            &client,
            &site.config.client_id,
            &site.config.client_secret,
            clock.now(),
        )
    };

    // Not due yet: nothing is asked of Meetup.
    assert_eq!(
        refresh().await.unwrap(),
        RefreshOutcome::NotDue(start + TimeDelta::hours(1))
    );
    assert!(site.fake.token_requests().is_empty());

    // Due: refreshed, rotated, stored, next before the new access token's hour ends.
    clock.advance(Duration::from_secs(3600));
    let now = clock.now();
    let lifetime = Duration::from_secs(meetup::fake::TOKEN_LIFETIME_SECS);
    assert_eq!(
        next_token_refresh(now, lifetime),
        now + TimeDelta::minutes(45)
    );
    assert_eq!(
        refresh().await.unwrap(),
        RefreshOutcome::Refreshed(next_token_refresh(now, lifetime))
    );
    let stored = site.repo.organizer_tokens().await.unwrap().unwrap();
    assert!(!site.fake.is_refresh_token_valid(&issued.refresh_token));
    assert!(site.fake.is_refresh_token_valid(&stored.tokens.refresh));
    assert_eq!(stored.next_refresh, Some(next_token_refresh(now, lifetime)));

    // The job itself, two days later, with a refresh token Meetup no longer knows:
    // it fails and moves the next try an hour on.
    let dead: RefreshToken = "dead-refresh-token".into();
    store_tokens(&site, "dead-access", dead.expose(), now + REFRESH_EVERY).await;
    clock.advance(Duration::from_secs(2 * 24 * 3600));
    let failed_at = clock.now();
    let job = campaigns::web::organiser::token_refresh(
        site.repo.clone(),
        client.clone(),
        site.config.client_id.clone(),
        site.config.client_secret.clone(),
        clock.clone(),
        None,
    );
    assert!(job.run_now().await.is_err());
    let stored = site.repo.organizer_tokens().await.unwrap().unwrap();
    assert_eq!(stored.next_refresh, Some(failed_at + RETRY_AFTER));
    let asked = site.fake.token_requests().len();

    // Half an hour later the job does not ask again; an hour later it does.
    clock.advance(Duration::from_secs(30 * 60));
    job.run_now().await.unwrap();
    assert_eq!(site.fake.token_requests().len(), asked);
    clock.advance(Duration::from_secs(30 * 60));
    // Meanwhile an organiser authorised again (a valid pair): the retry succeeds.
    let again = site.fake.issue_tokens(&organiser).unwrap();
    store_tokens(
        &site,
        again.access_token.expose(),
        again.refresh_token.expose(),
        failed_at + RETRY_AFTER,
    )
    .await;
    job.run_now().await.unwrap();
    assert_eq!(site.fake.token_requests().len(), asked + 1);
    let stored = site.repo.organizer_tokens().await.unwrap().unwrap();
    assert_eq!(
        stored.next_refresh,
        Some(next_token_refresh(clock.now(), lifetime))
    );
    assert!(site.fake.is_access_token_valid(&stored.tokens.access));
}

#[tokio::test]
async fn a_refused_authorisation_is_shown_alerted_once_and_cleared_by_authorising_again() {
    let mut site = site(&["dragons"]).await;
    let organiser = site.member("Olivia", GroupRole::Organizer);
    let (alerts, settings) = site.alerts_channel();
    let clock = site.world.clock.clone();
    let client = MeetupClient::new(site.fake.endpoints()).unwrap();
    let job = site.refresh_job(&client, settings);
    let told = || -> Vec<String> {
        site.world
            .sim
            .messages(alerts)
            .into_iter()
            .map(|m| m.content)
            .collect()
    };
    let user = site.discord_user("Olivia");
    let (session, _) = site.session(user).await;
    let organiser_page = || async {
        site.get("/campaigns/organiser", Some(&session))
            .await
            .text()
            .await
            .unwrap()
    };

    // A refresh token Meetup no longer knows: the refresh job is refused; an hour
    // later neither the job nor the sync (whose access token is refused too) spends
    // another request on the refused pair.
    store_tokens(&site, "dead-access", "dead-refresh", clock.now()).await;
    let refused_at = clock.now();
    assert!(job.run_now().await.is_err());
    clock.advance(Duration::from_secs(3600));
    job.run_now().await.unwrap();
    let sync = campaigns::jobs::sync_all(
        &site.repo,
        &client,
        &site.ctx.discord,
        &site.config,
        clock.now(),
    )
    .await;
    assert!(
        matches!(
            sync,
            Err(campaigns::jobs::FullSyncError::Meetup(
                campaigns::SyncError::StillRefused(at)
            )) if at == refused_at
        ),
        "{sync:?}"
    );
    assert_eq!(site.fake.token_requests().len(), 1);
    let said = told();
    assert_eq!(said.len(), 1, "one alert for one refusal: {said:?}");
    assert!(
        said[0].contains(&format!(
            "Meetup refused Tavern's authorisation on {}",
            refused_at.format("%Y-%m-%d %H:%M UTC")
        )),
        "{said:?}"
    );
    assert!(
        said[0].contains(&format!("{}/campaigns/organiser", site.base)),
        "{said:?}"
    );
    let page = organiser_page().await;
    assert!(page.contains("refused Tavern"), "{page}");
    assert!(page.contains("authorise again"), "{page}");

    // An organiser authorises again: the page no longer names the problem.
    let (callback, flow) = site.organiser_round_trip(&organiser).await;
    assert_eq!(site.callback(&callback, &flow).await.status(), 200);
    assert_eq!(site.repo.authorisation_refused().await.unwrap(), None);
    let page = organiser_page().await;
    assert!(!page.contains("refused Tavern"), "{page}");
    assert!(
        page.contains("An organiser has authorised Tavern"),
        "{page}"
    );

    // A later refusal is a new one: the organisers are told again, once.
    store_tokens(&site, "dead-access", "dead-again", clock.now()).await;
    assert!(job.run_now().await.is_err());
    assert_eq!(told().len(), 2, "{:?}", told());
}

/// Meetup refuses even the freshly refreshed token (the refresh grant works): the
/// first sync refreshes once and records the refusal; the next ones spend no refresh
/// token, keep its date and alert nobody again; a sync Meetup answers clears it.
#[tokio::test]
async fn a_refreshed_token_meetup_refuses_is_alerted_once_and_not_refreshed_every_run() {
    let mut site = site(&["dragons"]).await;
    let organiser = site.member("Olivia", GroupRole::Organizer);
    let (alerts, _) = site.alerts_channel();
    let clock = site.world.clock.clone();
    let client = MeetupClient::new(site.fake.endpoints()).unwrap();
    let issued = site.fake.issue_tokens(&organiser).unwrap();
    store_tokens(
        &site,
        issued.access_token.expose(),
        issued.refresh_token.expose(),
        clock.now() + TimeDelta::minutes(45),
    )
    .await;
    let sync = || {
        campaigns::jobs::sync_all(
            &site.repo,
            &client,
            &site.ctx.discord,
            &site.config,
            clock.now(),
        )
    };
    let told = || site.world.sim.messages(alerts).len();

    // Meetup refuses the stored token and the refreshed one.
    let refused_at = clock.now();
    site.fake.fail_next(2, FakeFault::Status(401));
    let first = sync().await;
    assert!(
        matches!(
            first,
            Err(campaigns::jobs::FullSyncError::Meetup(
                campaigns::SyncError::StillUnauthorized(_)
            ))
        ),
        "{first:?}"
    );
    assert_eq!(site.fake.token_requests().len(), 1);
    assert_eq!(told(), 1);

    // Later runs, Meetup still refusing the (refreshed) token.
    for _ in 0..3 {
        clock.advance(Duration::from_secs(15 * 60));
        site.fake.fail_next(1, FakeFault::Status(401));
        let again = sync().await;
        assert!(
            matches!(
                again,
                Err(campaigns::jobs::FullSyncError::Meetup(
                    campaigns::SyncError::StillRefused(at)
                )) if at == refused_at
            ),
            "{again:?}"
        );
    }
    assert_eq!(
        site.fake.token_requests().len(),
        1,
        "no refresh token is spent on a pair Meetup refused"
    );
    assert_eq!(told(), 1, "one alert for one refusal");
    assert_eq!(
        site.repo.authorisation_refused().await.unwrap(),
        Some(refused_at),
        "the refusal keeps its date"
    );

    // Meetup answers again: the refusal is gone.
    clock.advance(Duration::from_secs(15 * 60));
    sync().await.unwrap();
    assert_eq!(site.repo.authorisation_refused().await.unwrap(), None);
}

/// A refused refresh grant is not answered by a sync that still works with the access
/// token issued with it: the refusal stays, the next refresh is not tried, and the
/// organisers are not told a second time with a new date.
#[tokio::test]
async fn a_refused_refresh_grant_stays_through_a_sync_that_works_until_the_access_token_expires() {
    let mut site = site(&["dragons"]).await;
    let organiser = site.member("Olivia", GroupRole::Organizer);
    let (alerts, settings) = site.alerts_channel();
    let clock = site.world.clock.clone();
    let client = MeetupClient::new(site.fake.endpoints()).unwrap();
    let job = site.refresh_job(&client, settings);
    // The access token still works; Meetup no longer knows the refresh token.
    let issued = site.fake.issue_tokens(&organiser).unwrap();
    store_tokens(
        &site,
        issued.access_token.expose(),
        "dead-refresh",
        clock.now(),
    )
    .await;
    let refused_at = clock.now();
    assert!(job.run_now().await.is_err());
    assert_eq!(site.world.sim.messages(alerts).len(), 1);

    campaigns::jobs::sync_all(
        &site.repo,
        &client,
        &site.ctx.discord,
        &site.config,
        clock.now(),
    )
    .await
    .unwrap();
    assert_eq!(
        site.repo.authorisation_refused().await.unwrap(),
        Some(refused_at),
        "a sync that works does not answer a dead refresh token"
    );

    clock.advance(Duration::from_secs(3600));
    job.run_now().await.unwrap();
    assert_eq!(site.fake.token_requests().len(), 1, "not tried again");
    assert_eq!(site.world.sim.messages(alerts).len(), 1, "told once");
    assert_eq!(
        site.repo.authorisation_refused().await.unwrap(),
        Some(refused_at)
    );
}

/// An alert Discord refused is sent again at the next run: the refusal counts as told
/// only once the message went out, and then it is not sent again.
#[tokio::test]
async fn a_refusal_alert_discord_refused_is_sent_at_the_next_run_and_then_not_again() {
    let mut site = site(&["dragons"]).await;
    let (alerts, settings) = site.alerts_channel();
    let clock = site.world.clock.clone();
    let client = MeetupClient::new(site.fake.endpoints()).unwrap();
    let job = site.refresh_job(&client, settings);
    let told = || site.world.sim.messages(alerts).len();
    store_tokens(&site, "dead-access", "dead-refresh", clock.now()).await;
    // Discord refuses the first alert.
    site.world.sim.inject_fault(
        discord_sim::RouteMatch::new("POST", format!("/channels/{}/messages", alerts.get())),
        discord_sim::Fault::Status(403),
        1,
    );

    assert!(job.run_now().await.is_err());
    assert_eq!(told(), 0, "Discord refused it");
    assert!(site.repo.authorisation_refused().await.unwrap().is_some());

    clock.advance(Duration::from_secs(3600));
    job.run_now().await.unwrap();
    assert_eq!(told(), 1, "sent at the next run");
    clock.advance(Duration::from_secs(3600));
    job.run_now().await.unwrap();
    assert_eq!(told(), 1, "and not again");
    assert_eq!(
        site.world
            .sim
            .messages(alerts)
            .into_iter()
            .filter(|m| m.content.contains("Meetup refused Tavern's authorisation"))
            .count(),
        1
    );
}

/// Meetup refusing Tavern's own client secret (`invalid_client`) is a configuration
/// error: logged as an error naming the setting, and neither recorded nor alerted as
/// a refusal an organiser could answer by authorising again.
#[tokio::test]
async fn a_wrong_client_secret_is_a_configuration_error_not_a_refused_authorisation() {
    let mut site = site(&["dragons"]).await;
    let organiser = site.member("Olivia", GroupRole::Organizer);
    let (alerts, settings) = site.alerts_channel();
    site.config.client_secret = ClientSecret::from("not-tavern-secret");
    let clock = site.world.clock.clone();
    let client = MeetupClient::new(site.fake.endpoints()).unwrap();
    let issued = site.fake.issue_tokens(&organiser).unwrap();
    store_tokens(
        &site,
        issued.access_token.expose(),
        issued.refresh_token.expose(),
        clock.now(),
    )
    .await;
    let job = site.refresh_job(&client, settings);
    let logs = testkit::Logs::default();
    let guard = logs.capture();

    // The job's refresh, and the sync's after Meetup refused the access token.
    assert!(job.run_now().await.is_err());
    site.fake.revoke_access_token(&issued.access_token);
    let sync = campaigns::jobs::sync_all(
        &site.repo,
        &client,
        &site.ctx.discord,
        &site.config,
        clock.now(),
    )
    .await;
    drop(guard);

    assert!(
        matches!(
            sync,
            Err(campaigns::jobs::FullSyncError::Meetup(
                campaigns::SyncError::ClientRejected(_)
            ))
        ),
        "{sync:?}"
    );
    assert!(
        sync.unwrap_err()
            .to_string()
            .contains("check the meetup_client_id and meetup_client_secret settings")
    );
    let refused: Vec<_> = site
        .fake
        .token_requests()
        .into_iter()
        .map(|r| r.error)
        .collect();
    assert_eq!(
        refused,
        vec![Some("invalid_client".to_owned()); 2],
        "both refreshes were refused for the client"
    );
    assert_eq!(site.repo.authorisation_refused().await.unwrap(), None);
    assert!(
        site.world.sim.messages(alerts).is_empty(),
        "nobody is alerted"
    );
    let errors: Vec<String> = logs
        .lines()
        .into_iter()
        .filter(|l| l.contains(" ERROR ") && l.contains("meetup_client_secret"))
        .collect();
    assert_eq!(errors.len(), 2, "{}", logs.text());
}

/// A series on Meetup and in Redis with the demo guild's campaigns channel as its
/// game channel, hosted by `host` (linked to `host_discord`); the organiser authorised.
struct Game {
    channel: ChannelId,
    series: EventSeriesId,
    first: meetup::EventId,
}

/// Stores online session `id` of campaign `series` as the sync would, hosted by `host`.
async fn store_session(
    site: &Site,
    series: &EventSeriesId,
    id: &MeetupEventId,
    name: &str,
    time: chrono::DateTime<chrono::Utc>,
    host: MeetupUserId,
) {
    site.repo
        .upsert_event(&EventUpsert {
            event: MeetupEvent {
                id: id.clone(),
                name: name.to_owned(),
                time,
                link: format!("https://www.meetup.com/dragons/events/{id}/"),
                urlname: site.groups[0].to_string(),
                is_online: Some(true),
            },
            series: series.clone(),
            series_type: Some(campaigns::SeriesType::Campaign),
            series_online: true,
            hosts: vec![host],
            rsvps: Some(vec![]),
        })
        .await
        .unwrap();
}

async fn game(site: &Site, host: &MemberId, host_discord: UserId) -> Game {
    let organiser = site.member("Olivia", GroupRole::Organizer);
    let tokens = site.fake.issue_tokens(&organiser).unwrap();
    store_tokens(
        site,
        tokens.access_token.expose(),
        tokens.refresh_token.expose(),
        site.world.clock.now() + REFRESH_EVERY,
    )
    .await;
    let starts = (site.world.clock.now() + TimeDelta::days(3))
        .with_timezone(&chrono::FixedOffset::east_opt(3600).unwrap());
    let mut event = NewEvent::new(&site.groups[0], "Curse of Strahd - Session 1", starts);
    event.description = "[new campaign] [online] Gothic horror.".into();
    event.hosts = vec![host.clone()];
    event.event_type = EventType::Online;
    event.max_tickets = Some(5);
    let first = site.fake.add_event(event).unwrap();
    let id = MeetupEventId::parse(first.as_str()).unwrap();
    let series = EventSeriesId::started_by(&id);
    let host_id = MeetupUserId::parse(host.as_str()).unwrap();
    store_session(
        site,
        &series,
        &id,
        "Curse of Strahd - Session 1",
        starts.to_utc(),
        host_id,
    )
    .await;
    let channel = ChannelId::new(u64::from(site.world.demo.campaigns));
    site.repo.register_channel(&series, channel).await.unwrap();
    site.repo.link(host_id, host_discord, None).await.unwrap();
    Game {
        channel,
        series,
        first,
    }
}

#[tokio::test]
async fn a_host_schedules_the_next_session_which_is_created_on_meetup_unsnoozed_and_announced() {
    let site = site(&["dragons"]).await;
    let host = site.member("Gabriel", GroupRole::EventOrganizer);
    let host_discord = site.discord_user("Gabriel");
    let game = game(&site, &host, host_discord).await;
    site.repo
        .set_snooze(
            game.channel,
            Some(site.world.clock.now() + TimeDelta::days(30)),
        )
        .await
        .unwrap();
    let (session, csrf) = site.session(host_discord).await;
    let path = format!("/campaigns/schedule/{}", game.channel);

    let form = site.get(&path, Some(&session)).await;
    assert_eq!(form.status(), 200);
    let html = form.text().await.unwrap();
    assert!(html.contains("Curse of Strahd - Session 2"), "{html}");
    assert!(html.contains("UTC+01:00"), "{html}");

    let date = (site.world.clock.now() + TimeDelta::days(10))
        .format("%Y-%m-%d")
        .to_string();
    let done = site
        .schedule(&path, (&session, &csrf), date.as_str(), "19:30")
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    assert!(done.text().await.unwrap().contains("Scheduled"));

    // On Meetup: a copy with the next number, the series shortcode, the same hosts.
    let events = site.fake.events();
    assert_eq!(events.len(), 2);
    let (_, created) = &events[1];
    assert_eq!(created.title, "Curse of Strahd - Session 2");
    assert_eq!(
        created.description,
        format!("[campaign {}] [online] Gothic horror.", game.series)
    );
    assert!(created.hosts.contains(&host));
    assert_eq!(created.event_type, EventType::Online);
    assert_eq!(created.max_tickets, Some(5));
    assert_eq!(
        created.starts_at.to_rfc3339(),
        format!("{date}T19:30:00+01:00")
    );
    let parsed = campaigns::parse_shortcodes(&created.description).unwrap();
    assert_eq!(
        parsed.series,
        Some(campaigns::SeriesShortcode::Join(
            MeetupEventId::parse(game.first.as_str()).unwrap()
        ))
    );
    // The snooze is gone, and the channel heard of it.
    let lifecycle = site
        .repo
        .channel_lifecycle(game.channel)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lifecycle.snooze_until, None);
    let messages = site.world.sim.messages(site.world.demo.campaigns);
    assert!(
        messages
            .iter()
            .any(|m| m.content.contains("Curse of Strahd - Session 2")),
        "{messages:?}"
    );
}

#[tokio::test]
async fn the_form_reads_the_date_in_the_group_s_time_zone_with_that_day_s_offset() {
    let site = site(&["dragons"]).await;
    site.fake
        .set_group_timezone(&site.groups[0], "Europe/Zurich")
        .unwrap();
    let host = site.member("Gabriel", GroupRole::EventOrganizer);
    let host_discord = site.discord_user("Gabriel");
    let game = game(&site, &host, host_discord).await;
    let (session, csrf) = site.session(host_discord).await;
    let path = format!("/campaigns/schedule/{}", game.channel);

    let html = site.get(&path, Some(&session)).await.text().await.unwrap();
    assert!(html.contains("Time (Europe/Zurich)"), "{html}");
    let post = |date: &'static str, time: &'static str| {
        site.schedule(&path, (&session, &csrf), date, time)
    };

    // 02:30 on the day the clocks go forward: refused, nothing made.
    let skipped = post("2026-03-29", "02:30").await.unwrap();
    assert_eq!(skipped.status(), 400);
    let text = skipped.text().await.unwrap();
    assert!(
        text.contains("02:30 on 29 March 2026 does not exist in Europe/Zurich"),
        "{text}"
    );
    assert_eq!(site.fake.events().len(), 1, "nothing is created");

    // Each date in its own offset: a summer evening at +02:00, though Meetup gave the
    // latest session's start at +01:00, and a winter one at +01:00.
    let summer = post("2025-07-10", "19:30").await.unwrap();
    assert_eq!(summer.status(), 200);
    let winter = post("2025-12-04", "19:30").await.unwrap();
    assert_eq!(winter.status(), 200);
    let starts: Vec<String> = site
        .fake
        .events()
        .iter()
        .skip(1)
        .map(|(_, e)| e.starts_at.to_rfc3339())
        .collect();
    assert_eq!(
        starts,
        ["2025-07-10T19:30:00+02:00", "2025-12-04T19:30:00+01:00"]
    );
}

#[tokio::test]
async fn the_announcement_of_a_new_session_pings_the_game_s_players_and_nobody_else() {
    let site = site(&["dragons"]).await;
    let host = site.member("Gabriel", GroupRole::EventOrganizer);
    let host_discord = site.discord_user("Gabriel");
    let game = game(&site, &host, host_discord).await;
    let guild = site.world.demo.guild;
    let guest = site
        .world
        .sim
        .create_role(guild, discord_sim::RoleSpec::new("Curse of Strahd", 0))
        .unwrap();
    let host_role = site
        .world
        .sim
        .create_role(
            guild,
            discord_sim::RoleSpec::new("Curse of Strahd (host)", 0),
        )
        .unwrap();
    site.repo
        .register_roles(
            game.channel,
            RoleId::new(u64::from(guest)),
            RoleId::new(u64::from(host_role)),
        )
        .await
        .unwrap();
    let (session, csrf) = site.session(host_discord).await;
    let path = format!("/campaigns/schedule/{}", game.channel);
    let date = (site.world.clock.now() + TimeDelta::days(10))
        .format("%Y-%m-%d")
        .to_string();
    let done = site
        .schedule(&path, (&session, &csrf), date.as_str(), "19:30")
        .await
        .unwrap();
    assert_eq!(done.status(), 200);

    let messages = site.world.sim.messages(site.world.demo.campaigns);
    let announcement = messages
        .iter()
        .find(|m| m.content.contains("next session is scheduled"))
        .expect("the announcement");
    assert!(
        announcement
            .content
            .starts_with(&format!("<@&{guest}> 📅 The next session is scheduled")),
        "{announcement:?}"
    );
    assert_eq!(announcement.pings.roles, vec![guest], "{announcement:?}");
    assert!(
        announcement.pings.users.is_empty() && !announcement.pings.everyone,
        "{announcement:?}"
    );
}

#[tokio::test]
async fn an_expired_organiser_token_is_refreshed_once_by_the_schedule_form() {
    let site = site(&["dragons"]).await;
    let host = site.member("Gabriel", GroupRole::EventOrganizer);
    let host_discord = site.discord_user("Gabriel");
    let game = game(&site, &host, host_discord).await;
    let (session, csrf) = site.session(host_discord).await;
    let path = format!("/campaigns/schedule/{}", game.channel);
    let expired = site.repo.organizer_tokens().await.unwrap().unwrap().tokens;
    site.fake.revoke_access_token(&expired.access);

    // The form: Meetup refuses the access token, one refresh, the form shows.
    let form = site.get(&path, Some(&session)).await;
    assert_eq!(form.status(), 200);
    let html = form.text().await.unwrap();
    assert!(html.contains("Curse of Strahd - Session 2"), "{html}");
    let stored = site.repo.organizer_tokens().await.unwrap().unwrap().tokens;
    assert_ne!(stored.access, expired.access, "the new pair is stored");
    assert!(site.fake.is_access_token_valid(&stored.access));

    // Expired again before the form is sent: refreshed once more, and created.
    site.fake.revoke_access_token(&stored.access);
    let date = (site.world.clock.now() + TimeDelta::days(10))
        .format("%Y-%m-%d")
        .to_string();
    let done = site
        .schedule(&path, (&session, &csrf), date.as_str(), "19:30")
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let html = done.text().await.unwrap();
    assert!(html.contains("Scheduled"), "{html}");
    assert_eq!(site.fake.events().len(), 2);
    let grants: Vec<_> = site
        .fake
        .token_requests()
        .into_iter()
        .map(|r| (r.grant_type, r.status))
        .collect();
    assert_eq!(
        grants,
        vec![
            ("refresh_token".to_owned(), 200),
            ("refresh_token".to_owned(), 200)
        ]
    );
}

#[tokio::test]
async fn a_second_submit_of_the_same_session_creates_nothing_more() {
    let site = site(&["dragons"]).await;
    let host = site.member("Gabriel", GroupRole::EventOrganizer);
    let host_discord = site.discord_user("Gabriel");
    let game = game(&site, &host, host_discord).await;
    let (session, csrf) = site.session(host_discord).await;
    let path = format!("/campaigns/schedule/{}", game.channel);
    let date = (site.world.clock.now() + TimeDelta::days(10))
        .format("%Y-%m-%d")
        .to_string();
    let submit = || site.schedule(&path, (&session, &csrf), date.as_str(), "19:30");
    let first = submit().await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.text().await.unwrap().contains("Scheduled"));
    assert_eq!(site.fake.events().len(), 2);

    // The same form sent again (a double click, a reload): no second event, and the
    // page links the one already made.
    let again = submit().await.unwrap();
    assert_eq!(again.status(), 200);
    let html = again.text().await.unwrap();
    assert!(html.contains("already scheduled"), "{html}");
    let events = site.fake.events();
    assert_eq!(events.len(), 2, "one session on Meetup");
    let (id, _) = &events[1];
    assert!(html.contains(&format!("/events/{id}")), "{html}");

    // Another time is another session.
    let other = site
        .schedule(&path, (&session, &csrf), date.as_str(), "20:00")
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    assert_eq!(site.fake.events().len(), 3);
}

#[tokio::test]
async fn a_session_scheduled_through_the_form_counts_before_the_next_sync() {
    let site = site(&["dragons"]).await;
    let host = site.member("Gabriel", GroupRole::EventOrganizer);
    let host_discord = site.discord_user("Gabriel");
    let game = game(&site, &host, host_discord).await;
    let (session, csrf) = site.session(host_discord).await;
    let path = format!("/campaigns/schedule/{}", game.channel);
    let day = |days: i64| {
        (site.world.clock.now() + TimeDelta::days(days))
            .format("%Y-%m-%d")
            .to_string()
    };
    let submit = |date: String| site.schedule(&path, (&session, &csrf), date.as_str(), "19:30");
    let first = submit(day(10)).await.unwrap();
    assert_eq!(first.status(), 200);
    let (second, _) = site.fake.events()[1].clone();
    // A co-host added to the session just made on Meetup, so a copy of it shows.
    let cohost = site.member("Carla", GroupRole::EventOrganizer);
    site.fake
        .set_event_hosts(&second, vec![host.clone(), cohost.clone()])
        .unwrap();

    // Before any sync, the form offers the session after the one just made.
    let form = site.get(&path, Some(&session)).await;
    assert_eq!(form.status(), 200);
    let html = form.text().await.unwrap();
    assert!(html.contains("Curse of Strahd - Session 3"), "{html}");

    // Another date makes Session 3, a copy of Session 2; sent twice, it is made once.
    let again = submit(day(17)).await.unwrap();
    assert_eq!(again.status(), 200);
    let twice = submit(day(17)).await.unwrap();
    assert!(twice.text().await.unwrap().contains("already scheduled"));
    let events = site.fake.events();
    let titles: Vec<&str> = events.iter().map(|(_, e)| e.title.as_str()).collect();
    assert_eq!(
        titles,
        [
            "Curse of Strahd - Session 1",
            "Curse of Strahd - Session 2",
            "Curse of Strahd - Session 3"
        ]
    );
    assert!(events[2].1.hosts.contains(&cohost), "{:?}", events[2].1);
    let announced: Vec<String> = site
        .world
        .sim
        .messages(site.world.demo.campaigns)
        .into_iter()
        .map(|m| m.content)
        .filter(|c| c.contains("next session is scheduled"))
        .collect();
    assert_eq!(announced.len(), 2, "{announced:?}");
    assert!(announced[1].contains("Session 3"), "{announced:?}");

    // Once the sync has stored them, they are not counted twice.
    for (id, event) in &events[1..] {
        let id = MeetupEventId::parse(id.as_str()).unwrap();
        let host_id = MeetupUserId::parse(host.as_str()).unwrap();
        store_session(
            &site,
            &game.series,
            &id,
            &event.title,
            event.starts_at.to_utc(),
            host_id,
        )
        .await;
    }
    let html = site.get(&path, Some(&session)).await.text().await.unwrap();
    assert!(html.contains("Curse of Strahd - Session 4"), "{html}");
}

/// A date at or before the latest session's is refused on the form, naming that
/// session's date; nothing is created on Meetup and nothing announced.
#[tokio::test]
async fn a_date_before_the_latest_session_is_refused_naming_its_date() {
    let site = site(&["dragons"]).await;
    let host = site.member("Gabriel", GroupRole::EventOrganizer);
    let host_discord = site.discord_user("Gabriel");
    let game = game(&site, &host, host_discord).await;
    let (session, csrf) = site.session(host_discord).await;
    let path = format!("/campaigns/schedule/{}", game.channel);
    let offset = chrono::FixedOffset::east_opt(3600).unwrap();
    let at = |days: i64| (site.world.clock.now() + TimeDelta::days(days)).with_timezone(&offset);
    let submit = |date: String, time: &'static str| {
        site.schedule(&path, (&session, &csrf), date.as_str(), time)
    };
    let day = |days: i64| at(days).format("%Y-%m-%d").to_string();
    let announcements = || {
        site.world
            .sim
            .messages(site.world.demo.campaigns)
            .into_iter()
            .filter(|m| m.content.contains("next session is scheduled"))
            .count()
    };

    // Session 1 (tracked) is in three days: tomorrow is in the future, yet before it.
    let first = site
        .repo
        .event(&MeetupEventId::parse(game.first.as_str()).unwrap())
        .await
        .unwrap()
        .unwrap()
        .time
        .with_timezone(&offset);
    let refused = submit(day(1), "19:30").await.unwrap();
    assert_eq!(refused.status(), 400);
    let html = refused.text().await.unwrap();
    let expected = format!(
        "Session 1 is on {} at {} (UTC+01:00); the next session must come after it.",
        first.format("%A %-d %B %Y"),
        first.format("%H:%M")
    );
    assert!(html.contains(&expected), "{html}");
    assert_eq!(site.fake.events().len(), 1);

    // Session 2, made by the form in ten days, is the latest before any sync: a date
    // between the two sessions, and an earlier time on its own day, are refused.
    let made = submit(day(10), "19:30").await.unwrap();
    assert_eq!(made.status(), 200);
    for (date, time) in [(day(5), "19:30"), (day(10), "18:00")] {
        let refused = submit(date, time).await.unwrap();
        assert_eq!(refused.status(), 400);
        let html = refused.text().await.unwrap();
        let expected = format!(
            "Session 2 is on {} at 19:30 (UTC+01:00); the next session must come after it.",
            at(10).format("%A %-d %B %Y")
        );
        assert!(html.contains(&expected), "{html}");
        assert!(html.contains(&format!("href=\"{path}\"")), "{html}");
    }
    assert_eq!(site.fake.events().len(), 2, "nothing more on Meetup");
    assert_eq!(announcements(), 1, "only Session 2 was announced");

    // The form still offers Session 3, a copy of Session 2; after it, it is made.
    let html = site.get(&path, Some(&session)).await.text().await.unwrap();
    assert!(html.contains("Curse of Strahd - Session 3"), "{html}");
    let later = submit(day(10), "20:00").await.unwrap();
    assert_eq!(later.status(), 200);
    assert_eq!(site.fake.events()[2].1.title, "Curse of Strahd - Session 3");
}

/// Sessions made on Meetup out of date order are numbered by their session numbers:
/// after Session 2 in ten days (from the form) and Session 3 in five (made on Meetup
/// and stored by the sync), one in twenty days is Session 4.
#[tokio::test]
async fn the_next_session_number_follows_the_highest_not_the_latest_date() {
    let site = site(&["dragons"]).await;
    let host = site.member("Gabriel", GroupRole::EventOrganizer);
    let host_discord = site.discord_user("Gabriel");
    let game = game(&site, &host, host_discord).await;
    let (session, csrf) = site.session(host_discord).await;
    let path = format!("/campaigns/schedule/{}", game.channel);
    let day = |days: i64| {
        (site.world.clock.now() + TimeDelta::days(days))
            .format("%Y-%m-%d")
            .to_string()
    };
    let submit = |date: String| site.schedule(&path, (&session, &csrf), date.as_str(), "19:30");
    let sent = submit(day(10)).await.unwrap();
    assert_eq!(sent.status(), 200);
    let starts = (site.world.clock.now() + TimeDelta::days(5))
        .with_timezone(&chrono::FixedOffset::east_opt(3600).unwrap());
    let mut third = NewEvent::new(&site.groups[0], "Curse of Strahd - Session 3", starts);
    third.description = format!("[campaign {}]", game.series);
    third.hosts = vec![host.clone()];
    let third = site.fake.add_event(third).unwrap();
    let third = MeetupEventId::parse(third.as_str()).unwrap();
    store_session(
        &site,
        &game.series,
        &third,
        "Curse of Strahd - Session 3",
        starts.to_utc(),
        MeetupUserId::parse(host.as_str()).unwrap(),
    )
    .await;
    let html = site.get(&path, Some(&session)).await.text().await.unwrap();
    assert!(html.contains("Curse of Strahd - Session 4"), "{html}");
    let sent = submit(day(20)).await.unwrap();
    assert_eq!(sent.status(), 200);
    let titles: Vec<String> = site
        .fake
        .events()
        .into_iter()
        .map(|(_, e)| e.title)
        .collect();
    assert_eq!(
        titles,
        [
            "Curse of Strahd - Session 1",
            "Curse of Strahd - Session 2",
            "Curse of Strahd - Session 3",
            "Curse of Strahd - Session 4"
        ]
    );
}

#[tokio::test]
async fn a_creation_meetup_gave_no_clear_answer_to_is_held_and_not_sent_again() {
    let site = site(&["dragons"]).await;
    let host = site.member("Gabriel", GroupRole::EventOrganizer);
    let host_discord = site.discord_user("Gabriel");
    let game = game(&site, &host, host_discord).await;
    let (session, csrf) = site.session(host_discord).await;
    let path = format!("/campaigns/schedule/{}", game.channel);
    let date = (site.world.clock.now() + TimeDelta::days(10))
        .format("%Y-%m-%d")
        .to_string();
    let submit = |time: &'static str| site.schedule(&path, (&session, &csrf), date.as_str(), time);
    let creations = || {
        site.fake
            .graphql_requests()
            .iter()
            .filter(|r| r.operation_name.as_deref() == Some("CreateEvent"))
            .count()
    };

    // Meetup answers the creation with a 502: it may or may not have made the event.
    site.fake
        .fail_next_of("CreateEvent", 1, meetup::fake::FakeFault::Status(502));
    let unclear = submit("19:30").await.unwrap();
    assert_eq!(unclear.status(), 502);
    let html = unclear.text().await.unwrap();
    assert!(html.contains("Check Meetup before trying again"), "{html}");
    assert_eq!(creations(), 1);

    // A second click: nothing is sent to Meetup, the host is told to look first.
    let again = submit("19:30").await.unwrap();
    assert_eq!(again.status(), 502);
    let html = again.text().await.unwrap();
    assert!(html.contains("An earlier try"), "{html}");
    assert_eq!(creations(), 1, "not sent twice");
    // The hold lasts an hour, not the claim's day.
    let start = chrono::DateTime::parse_from_rfc3339(&format!("{date}T19:30:00+01:00"))
        .unwrap()
        .timestamp();
    let ttl: i64 = redis::cmd("TTL")
        .arg(campaigns::schema::scheduled_session(&game.series, start))
        .query_async(&mut site.world.redis.conn())
        .await
        .unwrap();
    assert!(
        0 < ttl && ttl <= campaigns::repo::UNKNOWN_KEPT_SECONDS as i64,
        "{ttl}"
    );

    // A refusal in words is certain: the claim is given back and the host may retry.
    site.fake
        .fail_next_of("CreateEvent", 1, meetup::fake::FakeFault::Status(400));
    let refused = submit("20:00").await.unwrap();
    assert_eq!(refused.status(), 502);
    let retried = submit("20:00").await.unwrap();
    assert_eq!(retried.status(), 200);
    assert!(retried.text().await.unwrap().contains("Scheduled"));
    assert_eq!(creations(), 3);
}

#[tokio::test]
async fn a_session_the_series_already_has_at_that_time_is_not_created_again() {
    let site = site(&["dragons"]).await;
    let host = site.member("Gabriel", GroupRole::EventOrganizer);
    let host_discord = site.discord_user("Gabriel");
    let game = game(&site, &host, host_discord).await;
    let (session, csrf) = site.session(host_discord).await;
    let path = format!("/campaigns/schedule/{}", game.channel);
    // The first session, in its own offset (UTC+01:00), as the form reads it.
    let first = site
        .repo
        .event(&MeetupEventId::parse(game.first.as_str()).unwrap())
        .await
        .unwrap()
        .unwrap()
        .time
        .with_timezone(&chrono::FixedOffset::east_opt(3600).unwrap());
    let date = first.format("%Y-%m-%d").to_string();
    let time = first.format("%H:%M:%S").to_string();
    let answer = site
        .schedule(&path, (&session, &csrf), date.as_str(), time.as_str())
        .await
        .unwrap();
    assert_eq!(answer.status(), 409);
    let html = answer.text().await.unwrap();
    assert!(html.contains("already has a session"), "{html}");
    assert_eq!(site.fake.events().len(), 1);
}

#[tokio::test]
async fn a_long_value_in_the_schedule_address_or_form_is_quoted_cut_to_forty_characters() {
    let site = site(&["dragons"]).await;
    let host = site.member("Gabriel", GroupRole::EventOrganizer);
    let host_discord = site.discord_user("Gabriel");
    let game = game(&site, &host, host_discord).await;
    let (session, csrf) = site.session(host_discord).await;
    let long = "7".repeat(3000);
    let shown = format!("`{}…`", "7".repeat(40));

    let page = site
        .get(&format!("/campaigns/schedule/{long}"), Some(&session))
        .await;
    assert_eq!(page.status(), 404);
    let html = page.text().await.unwrap();
    assert!(
        html.contains(&format!("{shown} is not a game channel")),
        "{html}"
    );
    assert!(
        !html.contains(&"7".repeat(41)),
        "the value is not echoed whole"
    );

    let sent = site
        .schedule(
            &format!("/campaigns/schedule/{}", game.channel),
            (&session, &csrf),
            long.as_str(),
            "19:30",
        )
        .await
        .unwrap();
    assert_eq!(sent.status(), 400);
    let html = sent.text().await.unwrap();
    assert!(html.contains(&format!("{shown} is not a date")), "{html}");
    assert!(
        html.contains(&format!(
            "href=\"/campaigns/schedule/{}\">Back to the form",
            game.channel
        )),
        "a way back to the form: {html}"
    );
    assert!(
        !html.contains(&"7".repeat(41)),
        "the value is not echoed whole"
    );
    assert_eq!(site.fake.events().len(), 1, "nothing created");

    // A date years away is a typo of the year, refused before Meetup is asked.
    let sent = site
        .schedule(
            &format!("/campaigns/schedule/{}", game.channel),
            (&session, &csrf),
            "9999-12-31",
            "19:30",
        )
        .await
        .unwrap();
    assert_eq!(sent.status(), 400);
    let html = sent.text().await.unwrap();
    assert!(html.contains("must start within 2 years"), "{html}");
    assert!(html.contains(">Back to the form</a>"), "{html}");
    assert_eq!(site.fake.events().len(), 1, "nothing created");
}

#[tokio::test]
async fn a_non_host_is_refused_and_nothing_is_created_while_an_admin_may_schedule() {
    let site = site(&["dragons"]).await;
    let host = site.member("Gabriel", GroupRole::EventOrganizer);
    let host_discord = site.discord_user("Gabriel");
    let game = game(&site, &host, host_discord).await;
    let path = format!("/campaigns/schedule/{}", game.channel);
    let snooze = site.world.clock.now() + TimeDelta::days(30);
    site.repo
        .set_snooze(game.channel, Some(snooze))
        .await
        .unwrap();

    // A linked player who does not host, and an unlinked user.
    let player = site.member("Pat", GroupRole::Member);
    let player_discord = site.discord_user("Pat");
    site.repo
        .link(
            MeetupUserId::parse(player.as_str()).unwrap(),
            player_discord,
            None,
        )
        .await
        .unwrap();
    for user in [player_discord, site.discord_user("Stranger")] {
        let (session, csrf) = site.session(user).await;
        let form = site.get(&path, Some(&session)).await;
        assert_eq!(form.status(), 403);
        assert!(form.text().await.unwrap().contains("Only a host"));
        let post = site
            .schedule(&path, (&session, &csrf), "2030-01-01", "19:00")
            .await
            .unwrap();
        assert_eq!(post.status(), 403);
    }
    assert_eq!(site.fake.events().len(), 1);
    let lifecycle = site
        .repo
        .channel_lifecycle(game.channel)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lifecycle.snooze_until, Some(snooze));
    assert!(
        site.world
            .sim
            .messages(site.world.demo.campaigns)
            .is_empty()
    );

    // Not a game channel: 404 in words.
    let (session, _) = site.session(host_discord).await;
    let other = site
        .get(
            &format!("/campaigns/schedule/{}", u64::from(site.world.demo.general)),
            Some(&session),
        )
        .await;
    assert_eq!(other.status(), 404);
    assert!(other.text().await.unwrap().contains("not a game channel"));

    // An admin (the configured role) gets the form.
    let admin = site.discord_user("Ada Admin");
    site.world
        .sim
        .add_member_role(site.world.demo.guild, admin.get(), site.admin_role.get())
        .unwrap();
    let (session, _) = site.session(admin).await;
    assert_eq!(site.get(&path, Some(&session)).await.status(), 200);
}

#[tokio::test]
async fn the_games_page_lists_the_games_and_marks_the_visitor_s_part() {
    let site = site(&["dragons"]).await;
    // Signed out: the way to log in.
    let anonymous = site.get("/campaigns", None).await;
    assert_eq!(anonymous.status(), 303);
    assert!(location(&anonymous).starts_with("/login/discord?next="));

    // No game yet.
    let (stranger, _) = site.session(site.discord_user("Stranger")).await;
    let empty = site.get("/campaigns", Some(&stranger)).await;
    assert_eq!(empty.status(), 200);
    let empty = empty.text().await.unwrap();
    assert!(empty.contains("No games yet"), "{empty}");
    assert!(empty.contains("not linked to Meetup"), "{empty}");

    let host = site.member("Gabriel", GroupRole::EventOrganizer);
    let host_discord = site.discord_user("Gabriel");
    let game = game(&site, &host, host_discord).await;
    let series = format!("data-series=\"{}\"", game.series);
    let card = |page: &str| -> String {
        let at = page.find(&series).expect("the game's card");
        page[at..at + page[at..].find("</li>").unwrap()].to_owned()
    };

    // The host: the game, online, its next session, marked as theirs, with the
    // schedule link; no "not linked" notice.
    let (session, _) = site.session(host_discord).await;
    let page = site.get("/campaigns", Some(&session)).await;
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    let hosted = card(&page);
    assert!(hosted.contains("Curse of Strahd - Session 1"), "{hosted}");
    // Each game's name is a heading right under the page's.
    assert!(hosted.contains("<h2><a href="), "{hosted}");
    assert!(
        hosted.contains(&format!(
            "href=\"https://www.meetup.com/dragons/events/{}/\"",
            game.first
        )),
        "{hosted}"
    );
    assert!(
        hosted.contains("Online") && hosted.contains("Campaign"),
        "{hosted}"
    );
    assert!(hosted.contains("Next session: "), "{hosted}");
    assert!(hosted.contains("0 players"), "{hosted}");
    assert!(hosted.contains("data-part=\"host\""), "{hosted}");
    assert!(
        hosted.contains(&format!("href=\"/campaigns/schedule/{}\"", game.channel)),
        "{hosted}"
    );
    assert!(!page.contains("not linked to Meetup"), "{page}");

    // A stranger sees the game, not as theirs, and no schedule link.
    let seen = site.get("/campaigns", Some(&stranger)).await;
    let seen = card(&seen.text().await.unwrap());
    assert!(seen.contains("Curse of Strahd - Session 1"), "{seen}");
    assert!(!seen.contains("data-part="), "{seen}");
    assert!(!seen.contains("/campaigns/schedule/"), "{seen}");
}
