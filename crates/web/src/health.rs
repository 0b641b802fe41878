//! What the operator reads about readiness and outages: each change, once.
//!
//! A load balancer or an orchestrator polls `/readyz` every few seconds. While a store
//! is down each poll is a 503, which is no failure of the request: the trace layer
//! does not log it ([`Failures`]), and [`LoggedReadiness`] logs the component going
//! down (WARN, with why) and coming back (INFO), once each.
//!
//! Requests answered 503 because a store is down are no failures of theirs either:
//! whoever saw the outage says when it begins and ends (once each, through a
//! [`base::FailureStreak`]) and marks its answer with [`Outage`], which the trace layer
//! then logs at debug like any answer, not as a failed request. Any other 5xx stays a
//! WARN.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::http::{Request, Response};
use tower_http::classify::{
    ClassifiedResponse, ClassifyResponse, MakeClassifier, NeverClassifyEos, ServerErrorsAsFailures,
    ServerErrorsFailureClass,
};

use crate::{Component, Readiness};

/// A [`Readiness`] that logs when a component stops being ready (WARN, with its
/// detail) and when it is ready again (INFO); a component not ready at its first check
/// (still connecting at start-up) is logged at INFO. Polls in between log nothing.
pub struct LoggedReadiness<R> {
    inner: R,
    /// Each component's readiness at the last check.
    last: Arc<Mutex<HashMap<&'static str, bool>>>,
}

impl<R> std::fmt::Debug for LoggedReadiness<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggedReadiness").finish_non_exhaustive()
    }
}

impl<R> LoggedReadiness<R> {
    pub fn new(inner: R) -> LoggedReadiness<R> {
        LoggedReadiness {
            inner,
            last: Arc::default(),
        }
    }
}

impl<R: Readiness> Readiness for LoggedReadiness<R> {
    fn check(&self) -> discord::BoxFuture<'static, Vec<Component>> {
        let checking = self.inner.check();
        let last = Arc::clone(&self.last);
        Box::pin(async move {
            let components = checking.await;
            let mut last = last.lock().unwrap_or_else(PoisonError::into_inner);
            for c in &components {
                let detail = c.detail.as_deref().unwrap_or("");
                match (last.insert(c.name, c.ready), c.ready) {
                    (Some(true), false) => {
                        tracing::warn!(component = c.name, detail, "not ready");
                    }
                    (None, false) => {
                        tracing::info!(component = c.name, detail, "not ready yet");
                    }
                    (Some(false), true) => tracing::info!(component = c.name, "ready again"),
                    _ => {}
                }
            }
            components
        })
    }
}

/// Marks a 503 answered because a store cannot be reached (a response extension), so
/// that the trace layer logs it at debug rather than as a failed request: the outage
/// is told once, when it begins, by whoever saw it (see the module docs). Code that
/// answers such a 503 says so with [`Outage::mark`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outage;

impl Outage {
    /// Marks `response` as a known outage's answer.
    pub fn mark<B>(response: &mut axum::http::Response<B>) {
        response.extensions_mut().insert(Outage);
    }

    /// Whether `response` is a 503 marked as a known outage's answer.
    pub fn marks<B>(response: &axum::http::Response<B>) -> bool {
        response.status() == axum::http::StatusCode::SERVICE_UNAVAILABLE
            && response.extensions().get::<Outage>().is_some()
    }
}

/// The trace layer's failures: a 5xx answer, except `/readyz`'s (a store being down
/// is said by [`LoggedReadiness`], once) and a known outage's ([`Outage`]).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Failures;

impl MakeClassifier for Failures {
    type Classifier = Classify;
    type FailureClass = ServerErrorsFailureClass;
    type ClassifyEos = NeverClassifyEos<ServerErrorsFailureClass>;

    fn make_classifier<B>(&self, request: &Request<B>) -> Classify {
        Classify {
            readiness: request.uri().path() == "/readyz",
        }
    }
}

/// [`Failures`] for one request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Classify {
    readiness: bool,
}

impl ClassifyResponse for Classify {
    type FailureClass = ServerErrorsFailureClass;
    type ClassifyEos = NeverClassifyEos<ServerErrorsFailureClass>;

    fn classify_response<B>(
        self,
        response: &Response<B>,
    ) -> ClassifiedResponse<Self::FailureClass, Self::ClassifyEos> {
        if self.readiness || Outage::marks(response) {
            ClassifiedResponse::Ready(Ok(()))
        } else {
            ServerErrorsAsFailures::new().classify_response(response)
        }
    }

    fn classify_error<E: std::fmt::Display + 'static>(self, error: &E) -> Self::FailureClass {
        ServerErrorsAsFailures::new().classify_error(error)
    }
}
