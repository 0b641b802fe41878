use std::future::Future;
use std::pin::Pin;

use crate::model::{Event, EventKind, Invocation, Response};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a handler could not answer.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The user asked for something we refuse (bad expression, not your game, ...). The
    /// message is shown to them privately as is.
    #[error("{0}")]
    User(String),
    /// Something broke on our side. Logged with the interaction id; the user sees a short
    /// apology that names the id so an operator can find the log line.
    #[error("internal error: {0}")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Something the handler needs (its storage) is down: the message is shown to the
    /// user privately as is, like [`HandlerError::User`], but the interaction counts as
    /// `outcome="unavailable"` in `tavern_interactions_total`, not as answered well.
    #[error("{0}")]
    Unavailable(String),
}

impl HandlerError {
    pub fn user(message: impl Into<String>) -> HandlerError {
        HandlerError::User(message.into())
    }
    pub fn unavailable(message: impl Into<String>) -> HandlerError {
        HandlerError::Unavailable(message.into())
    }
    pub fn internal(error: impl std::error::Error + Send + Sync + 'static) -> HandlerError {
        HandlerError::Internal(Box::new(error))
    }
}

/// Answers interactions: slash commands by name, components by `custom_id` prefix.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, invocation: Invocation) -> BoxFuture<'static, Result<Response, HandlerError>>;
}

impl<F, Fut> Handler for F
where
    F: Fn(Invocation) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Response, HandlerError>> + Send + 'static,
{
    fn handle(&self, invocation: Invocation) -> BoxFuture<'static, Result<Response, HandlerError>> {
        Box::pin(self(invocation))
    }
}

/// Reacts to gateway events (messages, guilds, members).
pub trait EventHandler: Send + Sync + 'static {
    fn on_event(&self, event: Event) -> BoxFuture<'static, ()>;

    /// The kinds of event this handler receives. The gateway decodes only the kinds some
    /// handler wants, so narrowing this saves work on every message in every guild.
    fn kinds(&self) -> &[EventKind] {
        &EventKind::ALL
    }
}
