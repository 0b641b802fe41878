use std::collections::{HashMap, HashSet, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::task::TaskTracker;
use tracing::Instrument as _;
use twilight_model::application::interaction::Interaction;

use crate::handler::{Handler, HandlerError};
use crate::model::{Action, CommandSpec, Invocation, Reply, Response};
use crate::rest::Discord;
use crate::wire;

/// A handler slower than this gets a deferral ("thinking...") first, well inside
/// Discord's 3 s deadline for the first callback; its answer then edits the original.
pub const DEFER_AFTER: Duration = Duration::from_secs(1);

/// How long an autocomplete handler may take: suggestions cannot be deferred, so what
/// is not ready well inside Discord's 3 s is answered with none.
pub const AUTOCOMPLETE_WITHIN: Duration = Duration::from_millis(2000);

/// How many recent interaction ids are remembered to drop a duplicate delivery.
const DEDUPE_WINDOW: usize = 4096;

/// The answer when Discord refused the bot something in the channel (a handler's
/// error caused by [`crate::RestError::is_missing_permission`]).
pub const MISSING_PERMISSION: &str = "⚠️ Discord did not let Tavern do that: it lacks a \
     permission here, or the role it would give sits above its own. A server admin can give \
     Tavern's role View Channel, Send Messages (and Send Messages in Threads) in this \
     channel, and, for the campaigns, Manage Channels and Manage Roles with Tavern's role \
     above the game roles.";

/// Whether `error` or one of its causes is Discord refusing the bot a permission.
fn refused_permission(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(error);
    while let Some(error) = next {
        if error
            .downcast_ref::<crate::RestError>()
            .is_some_and(crate::RestError::is_missing_permission)
        {
            return true;
        }
        next = error.source();
    }
    false
}

#[derive(Default)]
struct Dedupe {
    order: VecDeque<u64>,
    seen: HashSet<u64>,
}

impl Dedupe {
    /// True the first time `id` is offered.
    fn first(&mut self, id: u64) -> bool {
        if !self.seen.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > DEDUPE_WINDOW
            && let Some(old) = self.order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }
}

/// Routes interactions to feature handlers: slash commands by name, components by the
/// part of their `custom_id` before the first `:` (each feature owns one prefix).
pub struct Router {
    discord: Discord,
    specs: Vec<CommandSpec>,
    commands: HashMap<String, Arc<dyn Handler>>,
    /// Commands whose answers are all private ([`CommandSpec::private`]).
    private: HashSet<String>,
    prefixes: HashMap<String, Arc<dyn Handler>>,
    in_flight: TaskTracker,
    dedupe: Mutex<Dedupe>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("commands", &self.commands.keys().collect::<Vec<_>>())
            .field("prefixes", &self.prefixes.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A command or prefix registered twice.
#[derive(Debug, thiserror::Error)]
#[error("{what} `{name}` is registered twice")]
pub struct DuplicateRoute {
    pub what: &'static str,
    pub name: String,
}

impl Router {
    pub fn new(discord: Discord) -> Router {
        Router {
            discord,
            specs: Vec::new(),
            commands: HashMap::new(),
            private: HashSet::new(),
            prefixes: HashMap::new(),
            in_flight: TaskTracker::new(),
            dedupe: Mutex::new(Dedupe::default()),
        }
    }

    /// Routes the slash command `spec.name` to `handler` and registers it at start.
    pub fn command(
        &mut self,
        spec: CommandSpec,
        handler: Arc<dyn Handler>,
    ) -> Result<&mut Self, DuplicateRoute> {
        if self.commands.contains_key(&spec.name) {
            return Err(DuplicateRoute {
                what: "command",
                name: spec.name,
            });
        }
        self.commands.insert(spec.name.clone(), handler);
        if spec.private {
            self.private.insert(spec.name.clone());
        }
        self.specs.push(spec);
        Ok(self)
    }

    /// Routes every component whose `custom_id` starts with `prefix:` to `handler`.
    pub fn components(
        &mut self,
        prefix: &str,
        handler: Arc<dyn Handler>,
    ) -> Result<&mut Self, DuplicateRoute> {
        if self.prefixes.insert(prefix.to_owned(), handler).is_some() {
            return Err(DuplicateRoute {
                what: "component prefix",
                name: prefix.to_owned(),
            });
        }
        Ok(self)
    }

    pub fn specs(&self) -> &[CommandSpec] {
        &self.specs
    }

    pub fn discord(&self) -> &Discord {
        &self.discord
    }

    /// Handles `interaction` on a tracked task (see [`Router::wait_in_flight`]).
    pub(crate) fn dispatch(self: &Arc<Self>, interaction: Interaction) {
        let fresh = self
            .dedupe
            .lock()
            .map(|mut d| d.first(interaction.id.get()))
            .unwrap_or(true);
        if !fresh {
            tracing::warn!(interaction = %interaction.id, "duplicate interaction delivery dropped");
            return;
        }
        let router = Arc::clone(self);
        self.in_flight
            .spawn(async move { router.handle(interaction).await });
    }

    /// Waits until every interaction already dispatched has been answered, or `limit`.
    pub async fn wait_in_flight(&self, limit: Duration) -> bool {
        self.in_flight.close();
        tokio::time::timeout(limit, self.in_flight.wait())
            .await
            .is_ok()
    }

    fn handler_for(&self, invocation: &Invocation) -> Option<&Arc<dyn Handler>> {
        match &invocation.action {
            Action::Command { name, .. } | Action::Autocomplete { name, .. } => {
                self.commands.get(name)
            }
            Action::Component { custom_id, .. } => {
                let prefix = custom_id.split(':').next().unwrap_or_default();
                self.prefixes.get(prefix)
            }
        }
    }

    async fn handle(&self, interaction: Interaction) {
        let received = Instant::now();
        let Some(invocation) = wire::invocation(&interaction) else {
            tracing::debug!(interaction = %interaction.id, kind = ?interaction.kind, "interaction not handled");
            return;
        };
        let (kind, route) = match &invocation.action {
            Action::Command { name, .. } => ("command", name.clone()),
            Action::Autocomplete { name, .. } => ("autocomplete", name.clone()),
            Action::Component { custom_id, .. } => (
                "component",
                custom_id.split(':').next().unwrap_or_default().to_owned(),
            ),
        };
        let span = tracing::info_span!("interaction", id = %invocation.id, kind, route = %route, user = %invocation.actor.id);
        self.answer_invocation(invocation, interaction.token, kind, received)
            .instrument(span)
            .await;
    }

    /// Runs the handler and answers, inside the interaction's span: everything the
    /// handler logs (and every task it spawns with `in_current_span`) carries the
    /// interaction id, the route and the user.
    async fn answer_invocation(
        &self,
        invocation: Invocation,
        token: String,
        kind: &'static str,
        received: Instant,
    ) {
        let is_component = matches!(invocation.action, Action::Component { .. });
        let is_autocomplete = matches!(invocation.action, Action::Autocomplete { .. });
        let private = invocation.wants_private()
            || matches!(&invocation.action, Action::Command { name, .. } if self.private.contains(name));
        let id = invocation.id;

        // Set when the handler answered that what it needs is down.
        let unavailable = std::sync::atomic::AtomicBool::new(false);
        let outcome = match self.handler_for(&invocation) {
            None => {
                tracing::warn!("no handler for interaction");
                self.answer(
                    id,
                    &token,
                    Ok(Response::Message(Reply::private(
                        "This command is not available right now.",
                    ))),
                )
                .await
            }
            // Suggestions are answered within Discord's deadline or not at all: no
            // deferral exists for them, so a slow or failing handler suggests nothing.
            Some(handler) if is_autocomplete => {
                let choices = match tokio::time::timeout(
                    AUTOCOMPLETE_WITHIN,
                    unwinding(handler, invocation),
                )
                .await
                {
                    Ok(Ok(response @ Response::Choices(_))) => response,
                    Ok(Ok(_)) => {
                        tracing::warn!(
                            "an autocomplete handler answered something else than choices"
                        );
                        Response::Choices(Vec::new())
                    }
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "autocomplete handler failed; suggesting nothing");
                        Response::Choices(Vec::new())
                    }
                    Err(_) => {
                        tracing::warn!("autocomplete handler too slow; suggesting nothing");
                        Response::Choices(Vec::new())
                    }
                };
                self.answer(id, &token, Ok(choices)).await
            }
            Some(handler) => {
                let work = async {
                    let result = unwinding(handler, invocation).await;
                    if matches!(result, Err(HandlerError::Unavailable(_))) {
                        unavailable.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                    result
                };
                tokio::pin!(work);
                tokio::select! {
                    result = &mut work => self.answer(id, &token, result).await,
                    () = tokio::time::sleep(DEFER_AFTER) => {
                        tracing::debug!("handler is slow; deferring");
                        let deferred = self.discord.respond(id, &token, &wire::deferral(is_component, private)).await;
                        let result = work.await;
                        match deferred {
                            Ok(()) => {
                                self.finish_deferred(id, &token, result, is_component, private)
                                    .await
                            }
                            Err(e) => Err(e),
                        }
                    }
                }
            }
        };
        let elapsed = received.elapsed();
        let label = match &outcome {
            Err(_) => "failed",
            Ok(()) if unavailable.load(std::sync::atomic::Ordering::Relaxed) => "unavailable",
            Ok(()) => "ok",
        };
        metrics::counter!("tavern_interactions_total", "kind" => kind, "outcome" => label)
            .increment(1);
        metrics::histogram!("tavern_interaction_seconds", "kind" => kind)
            .record(elapsed.as_secs_f64());
        match outcome {
            Ok(()) => {
                tracing::info!(ms = %format_args!("{:.3}", elapsed.as_secs_f64() * 1000.0), "interaction answered")
            }
            Err(error) => tracing::error!(%error, "could not answer interaction"),
        }
    }

    fn error_reply(id: crate::InteractionId, error: HandlerError) -> Response {
        match error {
            HandlerError::User(message) | HandlerError::Unavailable(message) => {
                Response::Message(Reply::private(format!("⚠️ {message}")))
            }
            HandlerError::Internal(source) if refused_permission(source.as_ref()) => {
                tracing::warn!(interaction = %id, error = %source, "Discord refused the bot a permission in this channel");
                Response::Message(Reply::private(MISSING_PERMISSION.to_owned()))
            }
            HandlerError::Internal(source) => {
                tracing::error!(interaction = %id, error = %source, "handler failed");
                Response::Message(Reply::private(format!(
                    "Something went wrong on our side. Reference: `{id}`."
                )))
            }
        }
    }

    async fn answer(
        &self,
        id: crate::InteractionId,
        token: &str,
        result: Result<Response, HandlerError>,
    ) -> Result<(), crate::RestError> {
        let response = result.unwrap_or_else(|e| Self::error_reply(id, e));
        let wire = wire::interaction_response(&response)
            .map_err(|e| crate::RestError::Build(e.to_string()))?;
        self.discord.respond(id, token, &wire).await
    }

    async fn finish_deferred(
        &self,
        id: crate::InteractionId,
        token: &str,
        result: Result<Response, HandlerError>,
        is_component: bool,
        deferred_privately: bool,
    ) -> Result<(), crate::RestError> {
        let response = result.unwrap_or_else(|e| Self::error_reply(id, e));
        match response {
            Response::Choices(_) => {
                tracing::warn!("choices are no answer to a command or a component");
                Ok(())
            }
            Response::Update(reply) => self.discord.edit_original(token, &reply).await,
            // A component's deferral (a deferred update) made no message of its own:
            // its original is the clicked message, which a new message (a refusal, a
            // private note) must not replace.
            Response::Message(reply) if is_component => {
                self.discord.follow_up(token, &reply).await.map(|_| ())
            }
            // A private answer (a refusal, a one-time link) after a public deferral:
            // Discord cannot make the public placeholder private, so it is deleted and
            // the answer goes out as a private follow-up.
            Response::Message(reply) if reply.ephemeral && !deferred_privately => {
                if let Err(error) = self.discord.delete_original(token).await {
                    tracing::warn!(%error, "could not delete the public placeholder of a private answer");
                }
                self.discord.follow_up(token, &reply).await.map(|_| ())
            }
            Response::Message(reply) => self.discord.edit_original(token, &reply).await,
        }
    }
}

/// Runs `handler` on `invocation`, a panic in it (while building its work or doing it)
/// becoming an internal error: logged at ERROR, answered with the internal-error reply
/// rather than leaving the user with "did not respond".
async fn unwinding(
    handler: &Arc<dyn Handler>,
    invocation: Invocation,
) -> Result<Response, HandlerError> {
    use futures_util::FutureExt as _;
    let work = match std::panic::catch_unwind(AssertUnwindSafe(|| handler.handle(invocation))) {
        Ok(work) => work,
        Err(panic) => return Err(panicked(&*panic)),
    };
    match AssertUnwindSafe(work).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => Err(panicked(&*panic)),
    }
}

fn panicked(panic: &(dyn std::any::Any + Send)) -> HandlerError {
    let text = panic
        .downcast_ref::<&str>()
        .map(|t| (*t).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_owned());
    tracing::error!(panic = %text, "interaction handler panicked");
    HandlerError::Internal(format!("the handler panicked: {text}").into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedupe_accepts_each_id_once_and_forgets_old_ones() {
        let mut d = Dedupe::default();
        assert!(d.first(1));
        assert!(!d.first(1));
        for id in 2..(DEDUPE_WINDOW as u64 + 2) {
            assert!(d.first(id));
        }
        assert!(d.first(1), "id 1 fell out of the window");
    }
}
