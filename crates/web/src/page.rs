//! Web pages: one layout, one stylesheet, small scripts, every asset embedded in the
//! binary.
//!
//! A feature serves a page with the [`Page`] extractor and a [`maud`] template (checked
//! when it compiles, escaping everything it interpolates):
//!
//! ```ignore
//! use web::page::{Markup, Page, html};
//!
//! async fn library(page: Page) -> Markup {
//!     page.render("Clips", html! { h1 { "Clips" } p { "Every video of the guild." } })
//! }
//!
//! // In the feature's `feature(ctx, config)`:
//! let routes = ctx.sessions.protect(Router::new().route("/clips", get(library)));
//! Feature::new("clips").routes(routes).nav("Clips", "/clips", "Every video posted…")
//! ```
//!
//! - [`Page`] knows the signed-in user (from the session [`Sessions::protect`] loaded,
//!   so a page route must be protected like any route that reads the session) and the
//!   site's navigation (from the [`Site`] the binary installs over the whole app).
//! - [`Page::render`] wraps the page's `main` in the one layout: a header with the
//!   site's name, the navigation between the features' pages, and the account (the
//!   user's name and a "Log out" form carrying the CSRF token, or "Log in with
//!   Discord" coming back to this page); the viewport is set for phones; the theme
//!   follows the system's light or dark preference, and a button in the header
//!   switches it (remembered in the browser).
//! - [`Problem`] is a page that says what went wrong, in words.
//! - [`Asset`]s are files compiled into the binary (`include_bytes!`) and served under
//!   `/assets/...` by [`assets`]; their URLs carry a hash of their content, so browsers
//!   keep them for a year and fetch them again the moment they change. There is one
//!   stylesheet, [`STYLESHEET`], for every page; a page that needs a script adds its
//!   own with [`Page::script`].

use std::sync::{Arc, OnceLock, RwLock};

use axum::Router;
use axum::extract::{FromRequestParts, OriginalUri, RawQuery};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
pub use maud::{DOCTYPE, Markup, PreEscaped, html};

use crate::session::{AuthRejection, Session, SessionUser, Sessions};

/// The site's stylesheet: the layout, the themes and every page's styles.
pub static STYLESHEET: Asset = Asset::new(
    "site.css",
    "text/css; charset=utf-8",
    include_bytes!("../assets/site.css"),
);

/// The script every page loads: the theme switch and revealing spoilers.
pub static SCRIPT: Asset = Asset::new(
    "site.js",
    "text/javascript; charset=utf-8",
    include_bytes!("../assets/site.js"),
);

/// The site's icon.
pub static ICON: Asset = Asset::new(
    "icon.svg",
    "image/svg+xml",
    include_bytes!("../assets/icon.svg"),
);

/// A page in the site's navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NavLink {
    pub title: &'static str,
    pub path: &'static str,
    /// One sentence under the title on the home page's card.
    pub about: &'static str,
}

impl NavLink {
    pub const fn new(title: &'static str, path: &'static str, about: &'static str) -> NavLink {
        NavLink { title, path, about }
    }
}

/// What every page shares: the navigation and whether logging in is offered. The
/// binary makes one and installs it over the whole app (see [`crate::router`]);
/// cheap to clone, and the navigation can be set once the features exist.
#[derive(Debug, Clone)]
pub struct Site(Arc<SiteInner>);

#[derive(Debug)]
struct SiteInner {
    nav: RwLock<Arc<[NavLink]>>,
    login: bool,
}

impl Default for Site {
    fn default() -> Site {
        Site::new(Vec::new())
    }
}

impl Site {
    /// A site with this navigation, offering "Log in with Discord".
    pub fn new(nav: impl IntoIterator<Item = NavLink>) -> Site {
        Site(Arc::new(SiteInner {
            nav: RwLock::new(nav.into_iter().collect()),
            login: true,
        }))
    }

    /// The same navigation, with or without the login link (off when Tavern has no
    /// Discord login configured).
    pub fn with_login(self, login: bool) -> Site {
        Site(Arc::new(SiteInner {
            nav: RwLock::new(self.nav()),
            login,
        }))
    }

    /// Replaces the navigation (every clone sees it): for the binary once it has built
    /// the features, after the server started listening.
    pub fn set_nav(&self, nav: impl IntoIterator<Item = NavLink>) {
        let nav: Arc<[NavLink]> = nav.into_iter().collect();
        match self.0.nav.write() {
            Ok(mut slot) => *slot = nav,
            Err(poisoned) => *poisoned.into_inner() = nav,
        }
    }

    pub fn nav(&self) -> Arc<[NavLink]> {
        match self.0.nav.read() {
            Ok(nav) => Arc::clone(&nav),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    pub fn offers_login(&self) -> bool {
        self.0.login
    }
}

/// The request's page context: who is signed in, the navigation, where we are. See
/// the module docs; rejected with 500 on a route without [`Sessions::protect`].
#[derive(Debug, Clone)]
pub struct Page {
    site: Site,
    session: Option<Session>,
    /// The path, for marking the current navigation entry.
    path: String,
    /// Path and query, for coming back here after logging in.
    here: String,
    scripts: Vec<&'static Asset>,
    class: Option<&'static str>,
}

impl<S: Send + Sync> FromRequestParts<S> for Page {
    type Rejection = AuthRejection;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Page, AuthRejection> {
        let session = crate::session::loaded(parts)?;
        let site = parts.extensions.get::<Site>().cloned().unwrap_or_else(|| {
            tracing::warn!("a page was rendered without the Site layer: no navigation");
            Site::default()
        });
        let uri = parts
            .extensions
            .get::<OriginalUri>()
            .map_or(&parts.uri, |o| &o.0);
        Ok(Page {
            site,
            session,
            path: uri.path().to_owned(),
            here: uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
            scripts: Vec::new(),
            class: None,
        })
    }
}

/// What the header's account corner shows.
enum Account<'a> {
    Hidden,
    SignedOut { login: String },
    SignedIn { name: &'a str, csrf: &'a str },
}

/// Everything around a page's `main`.
struct Chrome<'a> {
    title: &'a str,
    nav: &'a [NavLink],
    current: &'a str,
    account: Account<'a>,
    csrf: Option<&'a str>,
    scripts: &'a [&'static Asset],
    class: Option<&'static str>,
}

/// The name a user is shown by.
pub fn display_name(user: &SessionUser) -> &str {
    user.global_name.as_deref().unwrap_or(&user.username)
}

fn is_current(link: &NavLink, path: &str) -> bool {
    path == link.path
        || (link.path != "/"
            && path
                .strip_prefix(link.path)
                .is_some_and(|rest| rest.starts_with('/')))
}

fn layout(chrome: &Chrome<'_>, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                @if let Some(token) = chrome.csrf {
                    meta name="csrf-token" content=(token);
                }
                title {
                    @if chrome.title.is_empty() || chrome.title == "Tavern" { "Tavern" }
                    @else { (chrome.title) " · Tavern" }
                }
                link rel="icon" type="image/svg+xml" href=(ICON.url());
                link rel="stylesheet" href=(STYLESHEET.url());
                // Not deferred: it sets the saved theme before the page is painted.
                script src=(SCRIPT.url()) {}
                @for script in chrome.scripts {
                    script src=(script.url()) defer {}
                }
            }
            body {
                a.skip href="#main" { "Skip to the content" }
                header.site-header {
                    a.brand href="/" {
                        img src=(ICON.url()) alt="" width="24" height="24";
                        span.brand-name { "Tavern" }
                    }
                    @if !chrome.nav.is_empty() {
                        nav.site-nav aria-label="Pages" {
                            ul {
                                @for link in chrome.nav {
                                    li {
                                        a href=(link.path)
                                          aria-current=[is_current(link, chrome.current).then_some("page")] {
                                            (link.title)
                                        }
                                    }
                                }
                            }
                        }
                    }
                    div.account {
                        @match &chrome.account {
                            Account::SignedIn { name, csrf } => {
                                span.who { "Signed in as " strong { (name) } }
                                form.logout method="post" action="/logout" {
                                    input type="hidden" name=(crate::session::CSRF_FIELD) value=(csrf);
                                    button type="submit" { "Log out" }
                                }
                            }
                            Account::SignedOut { login } => {
                                a.button href=(login) { "Log in" span.login-with { " with Discord" } }
                            }
                            Account::Hidden => {}
                        }
                        button.theme-toggle type="button" data-theme-toggle
                            title="Switch between light and dark"
                            aria-label="Switch between light and dark" { "◐" }
                    }
                }
                main #main class=[chrome.class] { (main) }
            }
        }
    }
}

impl Page {
    /// The whole page: `main` inside the layout, titled `title`.
    pub fn render(&self, title: &str, main: Markup) -> Markup {
        let nav = self.site.nav();
        let user = self.session.as_ref().and_then(Session::user);
        let account = match (&self.session, user) {
            (Some(session), Some(user)) => Account::SignedIn {
                name: display_name(user),
                csrf: session.csrf_token(),
            },
            _ if self.site.offers_login() => Account::SignedOut {
                login: login_link(&self.here),
            },
            _ => Account::Hidden,
        };
        let chrome = Chrome {
            title,
            nav: &nav,
            current: &self.path,
            account,
            csrf: self.session.as_ref().map(Session::csrf_token),
            scripts: &self.scripts,
            class: self.class,
        };
        layout(&chrome, main)
    }

    /// `problem` inside the layout, with its status.
    pub fn problem(&self, problem: Problem) -> Response {
        let body = problem.body();
        let mut response = (problem.status, self.render(&problem.title, body)).into_response();
        problem.mark(&mut response);
        response
    }

    /// Loads `script` (an [`Asset`] the page's routes also serve, see [`assets`]) after
    /// the page is parsed.
    pub fn script(mut self, script: &'static Asset) -> Page {
        self.scripts.push(script);
        self
    }

    /// A class on the page's `main` (e.g. a full-width app instead of a column of text).
    pub fn class(mut self, class: &'static str) -> Page {
        self.class = Some(class);
        self
    }

    /// The signed-in user, `None` before login.
    pub fn user(&self) -> Option<&SessionUser> {
        self.session.as_ref().and_then(Session::user)
    }

    /// The browser's session, signed in or not.
    pub fn session(&self) -> Option<&Session> {
        self.session.as_ref()
    }

    /// The hidden field a `<form method="post">` must carry (empty without a session;
    /// such a POST is refused anyway). Scripts read the token from
    /// `<meta name="csrf-token">` and send it as `X-CSRF-Token`.
    pub fn csrf_field(&self) -> Markup {
        html! {
            @if let Some(session) = &self.session {
                input type="hidden" name=(crate::session::CSRF_FIELD) value=(session.csrf_token());
            }
        }
    }

    /// The login URL that comes back to this page.
    pub fn login_link(&self) -> String {
        login_link(&self.here)
    }
}

fn login_link(next: &str) -> String {
    let next: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
    format!("/login/discord?next={next}")
}

/// The most of a visitor's value [`quoted`] shows back.
pub const QUOTED_CHARS: usize = 40;

/// What a visitor typed or put in the address, cut to [`QUOTED_CHARS`] characters
/// (an ellipsis says it was cut), for quoting it back in a sentence: a page never
/// echoes a value of any length whole.
pub fn quoted(raw: &str) -> String {
    let mut chars = raw.chars();
    let shown: String = chars.by_ref().take(QUOTED_CHARS).collect();
    if chars.next().is_some() {
        format!("{shown}…")
    } else {
        shown
    }
}

/// 303 See Other to `location` (after a form's POST, the page to show next); a
/// location that is not a valid header value (it never comes from a user) is a
/// [`Problem`] page rather than a panic.
pub fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (StatusCode::SEE_OTHER, [(header::LOCATION, value)]).into_response(),
        Err(_) => Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong",
            "Tavern could not build the address to send you to.",
        )
        .into_response(),
    }
}

/// A page that says what went wrong, in words, with the right status; optionally a
/// link onwards ("Log in again", "Back to the library").
///
/// As a response on its own it knows nothing of the request, so the site shows it
/// with the navigation and the account once it leaves the route (see
/// [`crate::assemble`]); [`Page::problem`] shows it with them at once.
#[derive(Debug, Clone)]
pub struct Problem {
    pub status: StatusCode,
    pub title: String,
    pub sentence: String,
    pub link: Option<(String, String)>,
    /// Answered because a store cannot be reached for now ([`Problem::outage`]).
    outage: bool,
}

impl Problem {
    pub fn new(
        status: StatusCode,
        title: impl Into<String>,
        sentence: impl Into<String>,
    ) -> Problem {
        Problem {
            status,
            title: title.into(),
            sentence: sentence.into(),
            link: None,
            outage: false,
        }
    }

    /// Says that this 503 is answered because a store cannot be reached for now (an
    /// outage, told once where it was seen): its answer is marked [`crate::Outage`],
    /// so that it is not logged as a failed request each time, and carries
    /// `Retry-After`. A problem of another status is answered as it is.
    pub fn outage(mut self) -> Problem {
        self.outage = true;
        self
    }

    fn mark(&self, response: &mut Response) {
        if self.outage && self.status == StatusCode::SERVICE_UNAVAILABLE {
            crate::Outage::mark(response);
            response.headers_mut().insert(
                header::RETRY_AFTER,
                axum::http::HeaderValue::from(crate::session::UNAVAILABLE_RETRY_AFTER_SECS),
            );
        }
    }

    /// "There is no such page": 404.
    pub fn not_found(sentence: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "Not found", sentence)
    }

    /// A link under the sentence.
    pub fn link(mut self, text: impl Into<String>, href: impl Into<String>) -> Problem {
        self.link = Some((text.into(), href.into()));
        self
    }

    fn body(&self) -> Markup {
        html! {
            section.problem {
                h1 { (self.title) }
                p { (self.sentence) }
                @if let Some((text, href)) = &self.link {
                    p { a href=(href) { (text) } }
                }
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let chrome = Chrome {
            title: &self.title,
            nav: &[],
            current: "",
            account: Account::Hidden,
            csrf: None,
            scripts: &[],
            class: None,
        };
        let mut response = (self.status, layout(&chrome, self.body())).into_response();
        self.mark(&mut response);
        response.extensions_mut().insert(Bare(self));
        response
    }
}

/// A [`Problem`] answered on its own, without the navigation and the account, for
/// [`dress_problems`] to show with them.
#[derive(Debug, Clone)]
struct Bare(Problem);

/// The session a route loaded, handed back on its response so that [`dress_problems`]
/// need not load it again.
#[derive(Clone)]
pub(crate) struct LoadedFor(pub(crate) Option<Session>);

/// Shows every [`Problem`] answered on its own (the 404 of an address nobody serves,
/// the refusals of sessions, CSRF and the login, the framework's refusals) like any
/// other page: with the site's navigation and the signed-in user. The user is the one
/// the route loaded; else, with `sessions`, the one the request's cookie names (one
/// read of the store, only for such a page); with neither, the page offers the login.
pub(crate) async fn dress_problems(
    sessions: Option<Sessions>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let site = request.extensions().get::<Site>().cloned();
    let uri = request.uri().clone();
    let cookie = sessions
        .as_ref()
        .and_then(|sessions| sessions.cookie_of(request.headers()));
    let mut response = next.run(request).await;
    let Some(Bare(problem)) = response.extensions_mut().remove::<Bare>() else {
        return response;
    };
    let Some(site) = site else {
        return response;
    };
    let session = match response.extensions_mut().remove::<LoadedFor>() {
        Some(LoadedFor(session)) => session,
        None => match (&sessions, cookie) {
            (Some(sessions), Some(id)) => match sessions.load(&id).await {
                Ok(session) => session,
                Err(error) => {
                    tracing::debug!(%error, "a problem page is shown without its user");
                    None
                }
            },
            _ => None,
        },
    };
    let signed_in = session.is_some();
    let page = Page {
        site,
        session,
        path: uri.path().to_owned(),
        here: uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
        scripts: Vec::new(),
        class: None,
    };
    let (mut parts, _) = response.into_parts();
    let (dressed, body) = page.problem(problem).into_parts();
    parts.status = dressed.status;
    parts.headers.remove(header::CONTENT_LENGTH);
    for (name, value) in &dressed.headers {
        parts.headers.insert(name, value.clone());
    }
    let mut response = Response::from_parts(parts, body);
    if signed_in {
        crate::session::mark_private(&mut response);
    }
    response
}

/// A file compiled into the binary and served at `/assets/{path}`.
#[derive(Debug)]
pub struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    version: OnceLock<String>,
}

impl Asset {
    /// `path` is relative to `/assets/` (a feature prefixes its own: `clips/library.js`).
    pub const fn new(path: &'static str, content_type: &'static str, body: &'static [u8]) -> Asset {
        Asset {
            path,
            content_type,
            body,
            version: OnceLock::new(),
        }
    }

    /// The route it is served on: `/assets/{path}`.
    pub fn route(&self) -> String {
        format!("/assets/{}", self.path)
    }

    /// The URL pages link to: `/assets/{path}?v={hash of the content}`.
    pub fn url(&self) -> String {
        format!("/assets/{}?v={}", self.path, self.version())
    }

    /// 64-bit FNV-1a of the content, in hex: changes whenever the file does.
    pub fn version(&self) -> &str {
        self.version.get_or_init(|| {
            let hash = self.body.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
            });
            format!("{hash:016x}")
        })
    }

    /// The asset's answer to a request with `headers` and `query`: kept a year when the
    /// URL names this version, checked each time otherwise (ETag: the version). For a
    /// feature that serves an asset on a route of its own.
    pub fn respond(&self, headers: &HeaderMap, query: Option<&str>) -> Response {
        let etag = format!("\"{}\"", self.version());
        let versioned = query.is_some_and(|q| {
            url::form_urlencoded::parse(q.as_bytes()).any(|(k, v)| k == "v" && v == self.version())
        });
        // A URL with the content's hash never changes; any other is checked each time.
        let cache = if versioned {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        let fresh = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
        let mut response = if fresh {
            StatusCode::NOT_MODIFIED.into_response()
        } else {
            (
                [
                    (
                        header::CONTENT_TYPE,
                        HeaderValue::from_static(self.content_type),
                    ),
                    (
                        header::X_CONTENT_TYPE_OPTIONS,
                        HeaderValue::from_static("nosniff"),
                    ),
                ],
                self.body,
            )
                .into_response()
        };
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
        if let Ok(etag) = HeaderValue::from_str(&etag) {
            response.headers_mut().insert(header::ETAG, etag);
        }
        response
    }
}

/// Routes serving `list` under `/assets/`. Merge them outside
/// [`Sessions::protect`]: an asset needs no session.
pub fn assets(list: &[&'static Asset]) -> Router {
    with_assets(Router::new(), list)
}

/// `router` with `list` served under `/assets/`.
pub(crate) fn with_assets<S>(router: Router<S>, list: &[&'static Asset]) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    list.iter().fold(router, |router, &asset| {
        router.route(
            &format!("/assets/{}", asset.path),
            get(
                move |headers: HeaderMap, RawQuery(query): RawQuery| async move {
                    asset.respond(&headers, query.as_deref())
                },
            ),
        )
    })
}

/// The site's home page at `/`: a welcome and the features' pages.
pub fn home(sessions: &Sessions) -> Router {
    home_routes(sessions).into_parts().0
}

/// [`home`], declared (a public `GET /`) for the site's manifest.
pub fn home_routes(sessions: &Sessions) -> crate::access::Routes {
    crate::access::Routes::new(sessions).get("/", crate::access::Access::Public, home_page)
}

async fn home_page(page: Page) -> Markup {
    let nav = page.site.nav();
    let greeting = page.user().map(display_name).map(str::to_owned);
    page.render(
        "Tavern",
        html! {
            section.home {
                h1 {
                    @if let Some(name) = &greeting { "Welcome back, " (name) "!" }
                    @else { "Welcome to the Tavern" }
                }
                p.lead {
                    "Where a gaming community meets, plays and remembers: dice and \
                     initiative, the drinking game, campaigns and their sessions, clips, \
                     and video meetings."
                }
                @if nav.is_empty() {
                    p { "No pages yet." }
                } @else {
                    ul.cards {
                        @for link in nav.iter() {
                            li {
                                a href=(link.path) {
                                    (link.title)
                                    span.about { (link.about) }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// True when the request is a browser asking for a page (not a script or the API).
pub(crate) fn wants_page(method: &axum::http::Method, headers: &HeaderMap) -> bool {
    matches!(*method, axum::http::Method::GET | axum::http::Method::HEAD)
        && headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outages_problem_is_marked_and_asks_to_retry_and_no_other_is() {
        let down = || Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Down", "Try later.");
        let answer = down().outage().into_response();
        assert!(crate::Outage::marks(&answer));
        assert_eq!(answer.headers()[header::RETRY_AFTER], "60");
        let answer = down().into_response();
        assert!(!crate::Outage::marks(&answer), "not said to be an outage");
        let answer = Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "Broken", "Bug.")
            .outage()
            .into_response();
        assert!(!crate::Outage::marks(&answer), "a 500 is no outage");
        assert!(!answer.headers().contains_key(header::RETRY_AFTER));
    }

    #[test]
    fn current_link_matches_its_subpages_only() {
        let clips = NavLink::new("Clips", "/clips", "Videos");
        assert!(is_current(&clips, "/clips"));
        assert!(is_current(&clips, "/clips/42"));
        assert!(!is_current(&clips, "/clipsy"));
        assert!(!is_current(&NavLink::new("Home", "/", "Home"), "/clips"));
    }

    #[test]
    fn layout_escapes_and_shows_the_account() {
        let chrome = Chrome {
            title: "<Dice>",
            nav: &[NavLink::new("Sandbox", "/sandbox", "Try it")],
            current: "/sandbox",
            account: Account::SignedIn {
                name: "Vex <3",
                csrf: "tok\"en",
            },
            csrf: Some("tok\"en"),
            scripts: &[],
            class: Some("console"),
        };
        let page = layout(&chrome, html! { p { "<hi>" } }).into_string();
        assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
        assert!(
            page.contains("<title>&lt;Dice&gt; · Tavern</title>"),
            "{page}"
        );
        assert!(page.contains("name=\"viewport\""), "{page}");
        assert!(
            page.contains("Signed in as <strong>Vex &lt;3</strong>"),
            "{page}"
        );
        assert!(
            page.contains("<form class=\"logout\" method=\"post\" action=\"/logout\">"),
            "{page}"
        );
        assert!(
            page.contains("name=\"csrf_token\" value=\"tok&quot;en\""),
            "{page}"
        );
        assert!(
            page.contains("<a href=\"/sandbox\" aria-current=\"page\">Sandbox</a>"),
            "{page}"
        );
        assert!(
            page.contains("<main id=\"main\" class=\"console\"><p>&lt;hi&gt;</p></main>"),
            "{page}"
        );
        assert!(page.contains(&STYLESHEET.url()), "{page}");
    }

    #[test]
    fn quoted_values_are_cut_and_say_so() {
        assert_eq!(quoted("ABC-DEFG"), "ABC-DEFG");
        assert_eq!(quoted(&"x".repeat(QUOTED_CHARS)), "x".repeat(QUOTED_CHARS));
        assert_eq!(
            quoted(&"é".repeat(300)),
            format!("{}…", "é".repeat(QUOTED_CHARS))
        );
    }

    #[test]
    fn signed_out_pages_offer_the_login_back_here() {
        assert_eq!(
            login_link("/clips?tab=all"),
            "/login/discord?next=%2Fclips%3Ftab%3Dall"
        );
    }

    #[test]
    fn assets_are_versioned_by_content() {
        let a = Asset::new("a.css", "text/css", b"body{}");
        let b = Asset::new("b.css", "text/css", b"body{ }");
        assert_eq!(a.version().len(), 16);
        assert_ne!(a.version(), b.version());
        assert_eq!(a.url(), format!("/assets/a.css?v={}", a.version()));
        let versioned = a.respond(&HeaderMap::new(), Some(&format!("v={}", a.version())));
        assert_eq!(versioned.status(), StatusCode::OK);
        assert_eq!(
            versioned.headers()[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
        let plain = a.respond(&HeaderMap::new(), None);
        assert_eq!(plain.headers()[header::CACHE_CONTROL], "no-cache");
        let mut headers = HeaderMap::new();
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_str(&format!("\"{}\"", a.version()))
                .unwrap_or(HeaderValue::from_static("")),
        );
        assert_eq!(a.respond(&headers, None).status(), StatusCode::NOT_MODIFIED);
    }
}
