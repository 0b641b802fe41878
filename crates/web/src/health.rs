//! What the operator reads about readiness: each component's changes, once.
//!
//! A load balancer or an orchestrator polls `/readyz` every few seconds. While a store
//! is down each poll is a 503, which is no failure of the request: the trace layer
//! does not log it ([`Failures`]), and [`LoggedReadiness`] logs the component going
//! down (WARN, with why) and coming back (INFO), once each.

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

/// The trace layer's failures: a 5xx answer, except `/readyz`'s (a store being down
/// is said by [`LoggedReadiness`], once).
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
        if self.readiness {
            ClassifiedResponse::Ready(Ok(()))
        } else {
            ServerErrorsAsFailures::new().classify_response(response)
        }
    }

    fn classify_error<E: std::fmt::Display + 'static>(self, error: &E) -> Self::FailureClass {
        ServerErrorsAsFailures::new().classify_error(error)
    }
}
