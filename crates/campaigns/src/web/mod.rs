//! The campaigns' web flows, on Tavern's sessions, CSRF protection and page layout
//! (`web::access`, `web::page`):
//!
//! - [`organiser`]: an organiser authorises Tavern on Meetup (OAuth2). The token's
//!   owner must organise every configured group, or nothing is stored; the tokens go
//!   to the seed's `meetup_access_token` / `meetup_refresh_token` with the next
//!   refresh time, and [`organiser::token_refresh`] (a [`feature::Job`]) refreshes
//!   them a quarter of an hour before the access token expires (two days at most),
//!   an hour later again after a failure, and not at all while Meetup's refusal of
//!   the stored pair stands.
//! - [`linking`]: a Discord user links their Meetup account with the one-time id of
//!   the `/link-meetup` command (`/link-meetup/{linking id}`), through Meetup's OAuth2.
//! - [`games`]: the community's games (`/campaigns`), with the visitor's part in each.
//! - [`schedule`]: the schedule-next-session form of a game channel
//!   (`/campaigns/schedule/{channel id}`), for the series' hosts and the admins.
//!
//! | method | path                                | who                          |
//! |--------|-------------------------------------|------------------------------|
//! | GET    | `/link-meetup/{linking id}`         | anyone holding the id        |
//! | GET    | `/link-meetup/{linking id}/start`   | anyone holding the id        |
//! | GET    | `/campaigns/meetup/callback`        | the browser that started it  |
//! | GET    | `/campaigns`                        | signed-in user               |
//! | GET    | `/campaigns/organiser`              | signed-in user               |
//! | POST   | `/campaigns/organiser`              | signed-in user (+ CSRF)      |
//! | GET    | `/campaigns/schedule/{channel id}`  | signed-in host or admin      |
//! | POST   | `/campaigns/schedule/{channel id}`  | signed-in host or admin (+ CSRF) |
//!
//! # The browser's side of an OAuth2 round trip
//! Both Meetup flows share one callback ([`CALLBACK_PATH`], the one redirect URI an
//! OAuth client registers). Starting a flow mints a transient browser id
//! ([`TransientUserId`]) and a random CSRF token, stores the token under the seed's
//! `csrf:{transient id}` (1 hour), sets the flow cookie (`HttpOnly`, `SameSite=Lax`,
//! `Secure` and `__Host-` on https) holding the transient id and, for linking, the
//! linking id, and sends the browser to Meetup with the token as OAuth2 `state`. The
//! callback compares `state` with the stored token in constant time and only then
//! takes it (a compare-and-delete: one answer per token): a missing cookie, an
//! expired or used token, or a `state` that does not match is refused with 403
//! before anything is exchanged or written (a forged `state` leaves even the genuine
//! token in place). The linking id, and so the Discord user, comes from the cookie, never
//! from the request Meetup redirects.
//!
//! Every page is in the one layout; every failure is a page that says what went wrong
//! in words, with the status it deserves.

pub mod games;
pub mod linking;
pub mod organiser;
pub mod schedule;

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use base::{Clock, Secret};
use discord::Discord;
use feature::access::{Access, Routes};
use meetup::{MeetupClient, MeetupEndpoints, OAuthApp};
use url::Url;
use web::page::{Problem, see_other};

use crate::config::CampaignsConfig;
use crate::domain::{LinkingId, TransientUserId};
use crate::repo::{CsrfCheck, Repo, RepoError};

/// Where Meetup sends the browser back, for both flows (relative to the public URL).
pub const CALLBACK_PATH: &str = "/campaigns/meetup/callback";
/// The linking page; `{linking_id}` is the one-time id.
pub const LINK_PATH: &str = "/link-meetup/{linking_id}";
/// The organiser's page.
pub const ORGANISER_PATH: &str = "/campaigns/organiser";
/// The schedule-next-session form of a game channel.
pub const SCHEDULE_PATH: &str = "/campaigns/schedule/{channel}";
/// The flow cookie on plain http.
pub const FLOW_COOKIE: &str = "tavern_meetup_flow";
/// The flow cookie on https (`__Host-`: only with `Secure`, `Path=/`, no `Domain`).
pub const SECURE_FLOW_COOKIE: &str = "__Host-tavern_meetup_flow";
/// Length of the CSRF token (letters and digits, about 256 bits).
const CSRF_TOKEN_LEN: usize = 43;

/// The organiser page's address: the configured one, else under `public_url`.
pub fn organiser_page(config: &CampaignsConfig, public_url: &Url) -> String {
    config
        .organiser_page
        .clone()
        .or_else(|| public_url.join(ORGANISER_PATH).ok())
        .map_or_else(|| ORGANISER_PATH.to_owned(), String::from)
}

/// The redirect URI to register with Meetup for a site at `public_url`.
pub fn callback_url(public_url: &Url) -> Result<Url, url::ParseError> {
    public_url.join(CALLBACK_PATH)
}

/// The URL of the linking page for `id` (what `/link-meetup` hands a user).
pub fn linking_url(public_url: &Url, id: &LinkingId) -> Result<Url, url::ParseError> {
    public_url.join(&format!("/link-meetup/{}", id.expose()))
}

/// The schedule-next-session form of `channel`.
pub fn schedule_url(
    public_url: &Url,
    channel: discord::model::ChannelId,
) -> Result<Url, url::ParseError> {
    public_url.join(&format!("/campaigns/schedule/{channel}"))
}

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct WebState {
    pub(crate) repo: Repo,
    pub(crate) meetup: MeetupClient,
    pub(crate) config: Arc<CampaignsConfig>,
    pub(crate) app: Arc<OAuthApp>,
    pub(crate) discord: Discord,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) secure_cookie: bool,
}

impl std::fmt::Debug for WebState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebState")
            .field("config", &self.config)
            .field("secure_cookie", &self.secure_cookie)
            .finish_non_exhaustive()
    }
}

/// Why the web flows could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum WebSetupError {
    #[error("the Meetup callback URL: {0}")]
    Callback(#[from] url::ParseError),
    #[error(transparent)]
    Meetup(#[from] meetup::MeetupError),
}

impl WebState {
    /// The state for a site at `ctx.public_url` talking to the Meetup of `config`.
    pub fn new(ctx: &feature::Context, config: CampaignsConfig) -> Result<Self, WebSetupError> {
        let redirect_uri = callback_url(&ctx.public_url)?;
        let meetup = MeetupClient::new(config.endpoints.clone())?;
        Ok(WebState {
            repo: Repo::new(ctx.redis.clone()),
            meetup,
            app: Arc::new(OAuthApp {
                client_id: config.client_id.clone(),
                client_secret: config.client_secret.clone(),
                redirect_uri,
            }),
            config: Arc::new(config),
            discord: ctx.discord.clone(),
            clock: ctx.clock.clone(),
            secure_cookie: ctx.public_url.scheme() == "https",
        })
    }

    fn endpoints(&self) -> &MeetupEndpoints {
        &self.config.endpoints
    }

    fn cookie_name(&self) -> &'static str {
        if self.secure_cookie {
            SECURE_FLOW_COOKIE
        } else {
            FLOW_COOKIE
        }
    }
}

/// Adds the web flows to the feature: the routes, the organiser's page in the
/// navigation, and the organiser token's refresh job. A Meetup client that cannot be
/// built (a TLS set-up failure) leaves them out, logged, rather than failing start-up.
pub fn add(
    feature: feature::Feature,
    ctx: &feature::Context,
    config: &CampaignsConfig,
) -> feature::Feature {
    let state = match WebState::new(ctx, config.clone()) {
        Ok(state) => state,
        Err(error) => {
            tracing::error!(%error, "the campaigns' web flows are off");
            return feature;
        }
    };
    let alerts = config
        .discord
        .clone()
        .map(|settings| organiser::RefusalAlerts {
            discord: ctx.discord.clone(),
            settings,
            organiser_page: organiser_page(config, &ctx.public_url),
        });
    let job = organiser::token_refresh(
        state.repo.clone(),
        state.meetup.clone(),
        config.client_id.clone(),
        config.client_secret.clone(),
        state.clock.clone(),
        alerts,
    );
    feature
        .web(routes(ctx, state))
        .nav(
            "Campaigns",
            games::CAMPAIGNS_PATH,
            "The community's games on Meetup, their next sessions and how many play.",
        )
        .job(job)
}

/// The routes, each with who may call it (see the module docs).
pub fn routes(ctx: &feature::Context, state: WebState) -> Routes {
    Routes::new(&ctx.sessions)
        .get(LINK_PATH, Access::Public, linking::page)
        .get(
            "/link-meetup/{linking_id}/start",
            Access::Public,
            linking::start,
        )
        .get(CALLBACK_PATH, Access::Public, callback)
        .get(games::CAMPAIGNS_PATH, Access::User, games::page)
        .get(ORGANISER_PATH, Access::User, organiser::page)
        .post(ORGANISER_PATH, Access::User, organiser::start)
        .get(SCHEDULE_PATH, Access::User, schedule::form)
        .post(SCHEDULE_PATH, Access::User, schedule::submit)
        .with_state(state)
}

/// Which flow a browser is in, as its flow cookie says.
#[derive(Debug)]
pub(crate) struct Flow {
    transient: TransientUserId,
    /// `Some` for linking (the one-time id), `None` for an organiser.
    linking: Option<LinkingId>,
}

impl Flow {
    fn cookie_value(&self) -> String {
        match &self.linking {
            Some(linking) => format!("{}.{}", self.transient.expose(), linking.expose()),
            None => self.transient.expose().to_owned(),
        }
    }

    fn parse(raw: &str) -> Option<Flow> {
        let (transient, linking) = match raw.split_once('.') {
            Some((t, l)) => (t, Some(l)),
            None => (raw, None),
        };
        Some(Flow {
            transient: TransientUserId::parse(transient).ok()?,
            linking: match linking {
                Some(l) => Some(LinkingId::parse(l).ok()?),
                None => None,
            },
        })
    }

    /// The flow the request's cookie names, if any.
    fn from_headers(state: &WebState, headers: &HeaderMap) -> Option<Flow> {
        web::session::cookie_values(headers, state.cookie_name())
            .next()
            .and_then(Flow::parse)
    }
}

/// Starts a Meetup round trip: stores a fresh CSRF token under `csrf:{transient id}`,
/// sets the flow cookie and sends the browser to Meetup's authorize page with the
/// token as `state`.
async fn leave_for_meetup(
    state: &WebState,
    linking: Option<LinkingId>,
) -> Result<Response, RepoError> {
    let flow = Flow {
        transient: TransientUserId::random(),
        linking,
    };
    let token = Secret::new(base::id::ALNUM.random(CSRF_TOKEN_LEN));
    state.repo.set_csrf(&flow.transient, &token).await?;
    let target = state
        .endpoints()
        .authorize_url(&state.app, token.expose_str(), None);
    let mut response = see_other(target.as_str());
    set_cookie(state, &mut response, Some(&flow));
    Ok(response)
}

/// `Set-Cookie` for the flow cookie; `None` clears it.
fn set_cookie(state: &WebState, response: &mut Response, flow: Option<&Flow>) {
    let secure = if state.secure_cookie { "; Secure" } else { "" };
    let (value, max_age) = match flow {
        Some(flow) => (flow.cookie_value(), crate::repo::CSRF_TTL_SECS),
        None => (String::new(), 0),
    };
    let cookie = format!(
        "{}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
        state.cookie_name()
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// A storage failure as a page, in the kit's words: `feature::reply` logs it (an outage
/// once, when it begins; broken data every time), and an outage's page is marked as one
/// (`Retry-After`, not a failed request each).
fn storage_problem(error: &RepoError) -> Problem {
    let (status, outage) = match error {
        RepoError::Storage(storage) => (
            feature::reply::status(storage),
            feature::reply::is_outage(storage),
        ),
        _ => (StatusCode::CONFLICT, false),
    };
    let problem = Problem::new(status, "Something went wrong", error.user_message());
    if outage { problem.outage() } else { problem }
}

/// A Meetup failure as a page (502: Meetup, not the visitor, failed).
fn meetup_problem(what: &str, error: &meetup::MeetupError) -> Problem {
    tracing::warn!(%error, what, "campaigns web flow: Meetup failed");
    Problem::new(
        StatusCode::BAD_GATEWAY,
        "Meetup did not answer as expected",
        format!("{what}: {error}. Nothing was changed; please try again in a moment."),
    )
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /campaigns/meetup/callback`: Meetup sends the browser back here, for either
/// flow. The CSRF check comes first (see the module docs); then the code is exchanged
/// and the flow finished by [`linking::finish`] or [`organiser::finish`]. The flow
/// cookie is cleared whatever happens.
async fn callback(
    axum::extract::State(state): axum::extract::State<WebState>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<CallbackQuery>,
    page: web::page::Page,
) -> Response {
    let mut response = match checked_callback(&state, &headers, &query).await {
        Ok((flow, tokens, member)) => match flow.linking {
            Some(linking) => linking::finish(&state, &page, linking, member).await,
            None => organiser::finish(&state, &page, tokens, member).await,
        },
        Err(problem) => page.problem(problem),
    };
    set_cookie(&state, &mut response, None);
    response
}

/// The CSRF check, Meetup's answer and the code exchange: the flow, the tokens and
/// the member they belong to, or the page that says why not.
async fn checked_callback(
    state: &WebState,
    headers: &HeaderMap,
    query: &CallbackQuery,
) -> Result<(Flow, meetup::Tokens, meetup::Member), Problem> {
    let refused = |sentence: &str| {
        Problem::new(
            StatusCode::FORBIDDEN,
            "Refused",
            format!("{sentence} Nothing was linked or stored."),
        )
    };
    let Some(flow) = Flow::from_headers(state, headers) else {
        return Err(refused(
            "This answer from Meetup does not belong to a sign-in started in this browser \
             (its cookie is missing or was changed). Start again from the link Tavern gave you.",
        ));
    };
    let Some(presented) = query.state.as_deref().filter(|s| !s.is_empty()) else {
        return Err(refused(
            "This answer from Meetup carries no security token (`state`).",
        ));
    };
    let check = state
        .repo
        .take_csrf_if_matches(&flow.transient, presented)
        .await
        .map_err(|e| storage_problem(&e))?;
    match check {
        CsrfCheck::Taken => {}
        CsrfCheck::Missing => {
            return Err(refused(
                "The security token of this sign-in has expired (it lives one hour) or was \
                 already used. Start again from the link Tavern gave you.",
            ));
        }
        CsrfCheck::Mismatch => {
            tracing::warn!("Meetup callback with a CSRF token that does not match the browser's");
            return Err(refused(
                "The security token in this answer from Meetup does not match the one this \
                 browser was given.",
            ));
        }
    }
    if let Some(error) = query.error.as_deref() {
        let sentence = if error == "access_denied" {
            "You did not allow Tavern on Meetup.".to_owned()
        } else {
            "Meetup reported an error instead of signing you in.".to_owned()
        };
        tracing::info!(
            error = if error == "access_denied" {
                "access_denied"
            } else {
                "other"
            },
            "Meetup sign-in not granted"
        );
        return Err(refused(&sentence));
    }
    let Some(code) = query.code.as_deref().filter(|c| !c.is_empty()) else {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "Incomplete answer",
            "Meetup's answer carries no authorization code. Nothing was linked or stored.",
        ));
    };
    let tokens = state
        .meetup
        .exchange_code(&state.app, &meetup::AuthorizationCode::from(code))
        .await
        .map_err(|e| meetup_problem("Exchanging Meetup's code for tokens failed", &e))?;
    let member = state
        .meetup
        .self_member(&tokens.access_token)
        .await
        .map_err(|e| meetup_problem("Asking Meetup who you are failed", &e))?;
    Ok((flow, tokens, member))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_storage_outage_is_an_outage_s_page_and_broken_data_is_not() {
        use axum::response::IntoResponse as _;
        let down = RepoError::Storage(feature::StorageError::from(store::StoreError::Timeout(
            std::time::Duration::from_secs(5),
        )));
        let response = storage_problem(&down).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            web::Outage::marks(&response),
            "not a failed request each time"
        );
        assert!(response.headers().contains_key("retry-after"));
        let broken = RepoError::Storage(feature::StorageError::corrupt("x", "not JSON"));
        let response = storage_problem(&broken).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!web::Outage::marks(&response));
        assert!(!response.headers().contains_key("retry-after"));
    }

    #[test]
    fn flow_cookie_round_trips_and_refuses_garbage() {
        let linking = LinkingId::random();
        let flow = Flow {
            transient: TransientUserId::random(),
            linking: Some(linking.clone()),
        };
        let parsed = Flow::parse(&flow.cookie_value()).unwrap();
        assert!(parsed.transient.matches(flow.transient.expose()));
        assert!(parsed.linking.unwrap().matches(linking.expose()));
        let organiser = Flow {
            transient: TransientUserId::random(),
            linking: None,
        };
        assert!(
            Flow::parse(&organiser.cookie_value())
                .unwrap()
                .linking
                .is_none()
        );
        assert!(Flow::parse("").is_none());
        assert!(Flow::parse("a:b").is_none());
        assert!(Flow::parse("abc.def:ghi").is_none());
    }
}
