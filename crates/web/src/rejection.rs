//! The framework's own refusals in the site's words.
//!
//! axum answers a request its extractors cannot read (a form without a field, JSON
//! that does not parse or is not JSON, a query value of the wrong kind) with a bare
//! `text/plain` sentence, and a method a path does not take with an empty 405. Every
//! route of the site goes through [`site_errors`], which answers those instead as the
//! rest of the site does: JSON `{"error": "<what was wrong>", "code": "<kind>"}` for
//! the API and scripts, the site's problem page for a browser (a page it opened or a
//! form it sent). The status is kept, and so is the 405's `Allow` header.

use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::page::Problem;

/// The longest framework sentence read back (they are one line).
const MAX_SENTENCE_BYTES: usize = 4 * 1024;

/// Who asked, as far as the answer's format goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asker {
    /// A browser showing the answer as a page.
    Browser,
    /// The API, a script or a program: JSON.
    Program,
}

fn asker(method: &Method, path: &str, headers: &HeaderMap) -> Asker {
    let browser = !path.starts_with("/api/")
        && (crate::page::wants_page(method, headers) || crate::session::browser_form(headers));
    if browser {
        Asker::Browser
    } else {
        Asker::Program
    }
}

/// Whether `response` is one of the framework's bare refusals: a 405 without a body of
/// its own, or a plain-text 400, 411, 413, 415 or 422 (the site's own refusals are
/// JSON or pages).
fn is_bare_refusal(response: &Response) -> bool {
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    match response.status() {
        StatusCode::METHOD_NOT_ALLOWED => content_type.is_none_or(|t| t.starts_with("text/plain")),
        StatusCode::BAD_REQUEST
        | StatusCode::LENGTH_REQUIRED
        | StatusCode::PAYLOAD_TOO_LARGE
        | StatusCode::UNSUPPORTED_MEDIA_TYPE
        | StatusCode::UNPROCESSABLE_ENTITY => {
            content_type.is_some_and(|t| t.starts_with("text/plain"))
        }
        _ => false,
    }
}

/// The machine-readable kind of a refusal: its status's reason in snake case. The
/// site's refusals all say it this way ([`crate::access::Denied`] too).
pub(crate) fn code(status: StatusCode) -> String {
    status
        .canonical_reason()
        .unwrap_or("error")
        .to_ascii_lowercase()
        .replace([' ', '-'], "_")
}

/// Whether a refusal of this request is answered with the site's problem page (a
/// browser opening a page or sending a form, outside `/api/`) rather than JSON. The
/// site's other refusals (a session store that is down, ...) choose the same way.
pub(crate) fn asks_for_page(method: &Method, path: &str, headers: &HeaderMap) -> bool {
    asker(method, path, headers) == Asker::Browser
}

/// The largest request body the server takes, as [`crate::serve_with`] tells each
/// request it serves (its [`crate::ServerConfig::max_body_bytes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimit(pub(crate) usize);

impl BodyLimit {
    /// The limit `request` was served with: the default one when no server said.
    pub fn of(request: &Request) -> BodyLimit {
        BodyLimit::in_extensions(request.extensions())
    }

    /// The limit of the request whose extensions these are (see [`BodyLimit::of`]).
    pub fn in_extensions(extensions: &axum::http::Extensions) -> BodyLimit {
        extensions
            .get::<BodyLimit>()
            .copied()
            .unwrap_or(BodyLimit(crate::ServerConfig::default().max_body_bytes))
    }

    /// What a body over the limit is told: "the body is larger than 1 MiB".
    pub fn exceeded(self) -> String {
        format!("the body is larger than {}", self.shown())
    }

    /// The limit in words ("1 MiB", "64 KiB", "1000 bytes").
    fn shown(self) -> String {
        const KIB: usize = 1024;
        const MIB: usize = 1024 * 1024;
        match self.0 {
            0 => "0 bytes".to_owned(),
            n if n % MIB == 0 => format!("{} MiB", n / MIB),
            n if n % KIB == 0 => format!("{} KiB", n / KIB),
            n => format!("{n} bytes"),
        }
    }
}

/// Holds a request's body to its [`BodyLimit`]: one that says it is longer is refused
/// at once (413), and one that turns out longer while a handler reads it fails there
/// (413 too). Both refusals are bare, so [`site_errors`], outside this, answers them in
/// the site's format.
pub(crate) async fn limit_body(request: Request, next: Next) -> Response {
    use tower::ServiceExt as _;
    let limit = BodyLimit::of(&request);
    let limited = tower_http::limit::RequestBodyLimit::new(
        tower::service_fn(move |request: axum::http::Request<_>| {
            let next = next.clone();
            async move {
                Ok::<_, std::convert::Infallible>(
                    next.run(request.map(axum::body::Body::new)).await,
                )
            }
        }),
        limit.0,
    );
    match limited.oneshot(request).await {
        Ok(response) => response.map(axum::body::Body::new),
        Err(never) => match never {},
    }
}

/// Answers axum's bare refusals in the site's format (see the module docs); every
/// other response passes as it is.
pub(crate) async fn site_errors(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let limit = BodyLimit::of(&request);
    // A cheap handle (shared bytes): the path is read again only for a refusal.
    let uri = request.uri().clone();
    let asker = asker(&method, uri.path(), request.headers());
    let response = next.run(request).await;
    if !is_bare_refusal(&response) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let said = match axum::body::to_bytes(body, MAX_SENTENCE_BYTES).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
        Err(_) => String::new(),
    };
    let status = parts.status;
    let allow = parts.headers.get(header::ALLOW).cloned();
    let sentence = if status == StatusCode::METHOD_NOT_ALLOWED {
        let allowed = allow
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .unwrap_or("other methods");
        format!(
            "{method} is not allowed on {}; it takes {allowed}",
            crate::page::quoted(uri.path())
        )
    } else if status == StatusCode::PAYLOAD_TOO_LARGE {
        // What the body limit says ("length limit exceeded") names no limit.
        limit.exceeded()
    } else if said.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("the request could not be read")
            .to_owned()
    } else {
        said
    };
    let mut answer = match asker {
        Asker::Program => (
            status,
            axum::Json(json!({ "error": sentence, "code": code(status) })),
        )
            .into_response(),
        Asker::Browser => page(status, &method, &sentence).into_response(),
    };
    if let Some(allow) = allow {
        answer.headers_mut().insert(header::ALLOW, allow);
    }
    // The session the route loaded, so that the page is dressed without reading it
    // again.
    if let Some(loaded) = parts.extensions.get::<crate::page::LoadedFor>().cloned() {
        answer.extensions_mut().insert(loaded);
    }
    answer
}

/// The problem page a browser is shown for a refusal.
fn page(status: StatusCode, method: &Method, sentence: &str) -> Problem {
    if status == StatusCode::METHOD_NOT_ALLOWED {
        let title = if *method == Method::GET || *method == Method::HEAD {
            "Not a page"
        } else {
            "Not sent here"
        };
        return Problem::new(
            status,
            title,
            format!(
                "This address is not one to open this way ({sentence}). It is used by the \
                 forms and buttons of Tavern's pages."
            ),
        )
        .link("Go to the home page", "/");
    }
    Problem::new(
        status,
        "Tavern could not read the request",
        format!("Nothing was done: {sentence}. Go back, check what you entered and try again."),
    )
    .link("Go to the home page", "/")
}

/// A bare refusal's body, for the tests of [`site_errors`].
#[cfg(test)]
fn bare(status: StatusCode, text: &'static str) -> Response {
    (status, text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_frameworks_plain_refusals_are_taken() {
        assert!(is_bare_refusal(&bare(
            StatusCode::UNPROCESSABLE_ENTITY,
            "x"
        )));
        assert!(is_bare_refusal(&bare(StatusCode::BAD_REQUEST, "x")));
        assert!(!is_bare_refusal(&bare(StatusCode::NOT_FOUND, "x")));
        let json = (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "x"}))).into_response();
        assert!(!is_bare_refusal(&json));
        let empty_405 = StatusCode::METHOD_NOT_ALLOWED.into_response();
        assert!(is_bare_refusal(&empty_405));
    }

    #[test]
    fn limits_are_shown_in_the_largest_whole_unit() {
        assert_eq!(BodyLimit(1024 * 1024).shown(), "1 MiB");
        assert_eq!(BodyLimit(64 * 1024).shown(), "64 KiB");
        assert_eq!(BodyLimit(1000).shown(), "1000 bytes");
    }

    #[test]
    fn codes_are_the_status_in_snake_case() {
        assert_eq!(code(StatusCode::METHOD_NOT_ALLOWED), "method_not_allowed");
        assert_eq!(
            code(StatusCode::UNPROCESSABLE_ENTITY),
            "unprocessable_entity"
        );
        assert_eq!(code(StatusCode::BAD_REQUEST), "bad_request");
    }
}
