//! Linking a Meetup account in headless Chromium (driven through ChromeDriver): a
//! person opens the one-time link, goes to Meetup and comes back linked; a forged or
//! missing CSRF token on the way back is refused with 403 and writes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use campaigns::{CampaignsConfig, MeetupUserId, Repo, TransientUserId};
use discord::model::UserId;
use meetup::fake::FakeMeetup;
use meetup::{ClientId, ClientSecret, GroupUrlname};
use testkit::World;
use testkit::browser::Browser;

/// The campaigns' web flows on a port of their own, against a fake Meetup whose
/// signed-in member approves every authorization.
struct Site {
    world: World,
    fake: FakeMeetup,
    base: String,
    repo: Repo,
    client_id: ClientId,
    callback: url::Url,
}

async fn site() -> Site {
    let world = World::new().await;
    let testkit::Listening {
        listener,
        base,
        ctx,
    } = world.listen().await;
    let fake = FakeMeetup::start().await.unwrap();
    let group = GroupUrlname::parse("dragons").unwrap();
    fake.add_group(&group, "Dragons").unwrap();
    let client_id = ClientId::new("tavern-browser");
    let secret = ClientSecret::from("tavern-browser-secret");
    let callback = campaigns::web::callback_url(&ctx.public_url).unwrap();
    fake.add_oauth_client(&client_id, &secret, &callback);
    let config = CampaignsConfig::new(client_id.clone(), secret, fake.endpoints(), vec![group]);
    let feature = campaigns::web::add(feature::Feature::new("campaigns"), &ctx, &config);
    let router = feature.routes.expect("routes");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Site {
        repo: Repo::new(world.redis.clone()),
        world,
        fake,
        base,
        client_id,
        callback,
    }
}

impl Site {
    fn discord_user(&self, name: &str) -> UserId {
        let user = self.world.sim.create_user(name);
        UserId::new(u64::from(user))
    }

    /// A genuine authorization code from Meetup (as the signed-in member).
    async fn code(&self) -> String {
        let mut authorize = self.fake.endpoints().authorize;
        authorize
            .query_pairs_mut()
            .append_pair("client_id", self.client_id.as_str())
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", self.callback.as_str())
            .append_pair("state", "whatever");
        let answer = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(authorize)
            .send()
            .await
            .unwrap();
        let back = url::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
        back.query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .expect("a code")
    }

    async fn linked_users(&self) -> Vec<String> {
        let mut users: Vec<String> = redis::cmd("SMEMBERS")
            .arg(campaigns::schema::MEETUP_USERS)
            .query_async(&mut self.world.redis.conn())
            .await
            .unwrap();
        users.sort();
        users
    }
}

#[tokio::test]
async fn a_person_links_their_meetup_account_in_the_browser_and_a_forged_token_is_refused() {
    let site = site().await;
    let browser = Browser::start().await;
    let member = site.fake.add_member("Pat");
    site.fake.sign_in(&member).unwrap();

    // The genuine flow: the link, the button, Meetup, and back, linked.
    let pat = site.discord_user("Pat");
    let id = site.repo.create_linking_id(pat).await.unwrap();
    browser
        .open(&format!("{}/link-meetup/{}", site.base, id.expose()))
        .await;
    let text = browser.page_titled("Link your Meetup account").await;
    assert!(text.contains(&pat.to_string()), "{text}");
    // The page's section is laid out as a page, not as Discord text (kept line breaks).
    assert_eq!(
        browser
            .script(
                "return getComputedStyle(document.querySelector('main section.content')).whiteSpace"
            )
            .await,
        "normal"
    );
    let button = browser.find("main a.button").await;
    browser.click(&button).await;
    let text = browser.page_titled("Linked").await;
    assert!(text.contains("Pat"), "{text}");
    assert_eq!(browser.status().await, 200);
    let meetup_user = MeetupUserId::parse(member.as_str()).unwrap();
    assert_eq!(
        site.repo.meetup_user_of(pat).await.unwrap(),
        Some(meetup_user)
    );
    assert_eq!(site.linked_users().await, vec![meetup_user.to_string()]);

    // A forged token: the browser holds a genuine flow cookie for another person's
    // linking id, and comes back from "Meetup" with a real code but a `state` that is
    // not its token. 403, nothing linked, the linking id still usable.
    let sam = site.discord_user("Sam");
    let id = site.repo.create_linking_id(sam).await.unwrap();
    browser
        .open(&format!("{}/link-meetup/{}", site.base, id.expose()))
        .await;
    browser.page_titled("Link your Meetup account").await;
    let transient = TransientUserId::random();
    site.repo
        .set_csrf(&transient, &"genuinetoken1234".into())
        .await
        .unwrap();
    browser
        .add_cookie(
            campaigns::web::FLOW_COOKIE,
            &format!("{}.{}", transient.expose(), id.expose()),
        )
        .await;
    let code = site.code().await;
    browser
        .open(&format!(
            "{}?code={code}&state=forgedtoken5678",
            site.callback
        ))
        .await;
    let text = browser.page_titled("Refused").await;
    assert!(text.contains("does not match"), "{text}");
    assert_eq!(browser.status().await, 403);
    assert_eq!(site.repo.meetup_user_of(sam).await.unwrap(), None);
    assert_eq!(site.linked_users().await, vec![meetup_user.to_string()]);
    assert!(site.repo.open_linking_id(&id).await.unwrap().is_some());
    let stored: Option<String> = redis::cmd("GET")
        .arg(campaigns::schema::csrf(&transient))
        .query_async(&mut site.world.redis.conn())
        .await
        .unwrap();
    assert_eq!(
        stored.as_deref(),
        Some("genuinetoken1234"),
        "the forgery wrote nothing"
    );

    // A missing token: no flow cookie at all. 403, nothing written.
    browser.delete_cookies().await;
    let code = site.code().await;
    browser
        .open(&format!(
            "{}?code={code}&state=genuinetoken1234",
            site.callback
        ))
        .await;
    let text = browser.page_titled("Refused").await;
    assert!(text.contains("cookie is missing"), "{text}");
    assert_eq!(browser.status().await, 403);
    assert_eq!(site.repo.meetup_user_of(sam).await.unwrap(), None);
    assert_eq!(site.linked_users().await, vec![meetup_user.to_string()]);
}
