use std::sync::Arc;

use discord::{CommandSpec, DuplicateRoute, EventHandler, Handler, Router};
use store::FeatureMigrations;

use crate::{Check, Job, Service, Startup};

pub use web::page::NavLink;

/// Everything a feature contributes. Built with [`Feature::new`] and the builder
/// methods; the binary reads the fields.
#[derive(Default)]
pub struct Feature {
    pub name: &'static str,
    pub commands: Vec<(CommandSpec, Arc<dyn Handler>)>,
    /// `(prefix, handler)`: components whose `custom_id` starts with `prefix:`.
    pub components: Option<(&'static str, Arc<dyn Handler>)>,
    pub events: Option<Arc<dyn EventHandler>>,
    /// HTTP routes (pages and APIs). Wrap them with `ctx.sessions.protect(..)` where a
    /// handler needs the signed-in user or changes state.
    pub routes: Option<axum::Router>,
    /// Pages linked from the site's navigation.
    pub nav: Vec<NavLink>,
    pub jobs: Vec<Job>,
    pub services: Vec<Service>,
    pub startup: Vec<Startup>,
    pub migrations: Option<FeatureMigrations>,
    pub checks: Vec<Check>,
}

impl std::fmt::Debug for Feature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feature")
            .field("name", &self.name)
            .field(
                "commands",
                &self
                    .commands
                    .iter()
                    .map(|(c, _)| &c.name)
                    .collect::<Vec<_>>(),
            )
            .field("components", &self.components.as_ref().map(|(p, _)| p))
            .field("nav", &self.nav)
            .field("jobs", &self.jobs)
            .field("services", &self.services)
            .field("startup", &self.startup)
            .field("migrations", &self.migrations.map(|m| m.schema))
            .field("checks", &self.checks)
            .finish_non_exhaustive()
    }
}

impl Feature {
    pub fn new(name: &'static str) -> Feature {
        Feature {
            name,
            ..Feature::default()
        }
    }

    /// A slash command and its handler.
    pub fn command(mut self, spec: CommandSpec, handler: Arc<dyn Handler>) -> Feature {
        self.commands.push((spec, handler));
        self
    }

    /// The handler of every component whose `custom_id` starts with `prefix:`.
    pub fn components(mut self, prefix: &'static str, handler: Arc<dyn Handler>) -> Feature {
        self.components = Some((prefix, handler));
        self
    }

    /// The gateway event handler.
    pub fn events(mut self, handler: Arc<dyn EventHandler>) -> Feature {
        self.events = Some(handler);
        self
    }

    /// HTTP routes, merged with any given before.
    pub fn routes(mut self, routes: axum::Router) -> Feature {
        self.routes = Some(match self.routes.take() {
            Some(existing) => existing.merge(routes),
            None => routes,
        });
        self
    }

    /// A page in the site's navigation.
    pub fn nav(mut self, title: &'static str, path: &'static str) -> Feature {
        self.nav.push(NavLink::new(title, path));
        self
    }

    pub fn job(mut self, job: Job) -> Feature {
        self.jobs.push(job);
        self
    }

    pub fn service(mut self, service: Service) -> Feature {
        self.services.push(service);
        self
    }

    pub fn startup(mut self, startup: Startup) -> Feature {
        self.startup.push(startup);
        self
    }

    pub fn migrations(mut self, migrations: FeatureMigrations) -> Feature {
        self.migrations = Some(migrations);
        self
    }

    pub fn check(mut self, check: Check) -> Feature {
        self.checks.push(check);
        self
    }
}

/// Routes every feature's commands and components through one [`Router`], and collects
/// their event handlers. A command name or component prefix used twice is an error.
pub fn route(
    discord: discord::Discord,
    features: &mut [Feature],
) -> Result<(Router, Vec<Arc<dyn EventHandler>>), DuplicateRoute> {
    let mut router = Router::new(discord);
    let mut events = Vec::new();
    for feature in features.iter_mut() {
        for (spec, handler) in std::mem::take(&mut feature.commands) {
            router.command(spec, handler)?;
        }
        if let Some((prefix, handler)) = feature.components.take() {
            router.components(prefix, handler)?;
        }
        if let Some(handler) = feature.events.take() {
            events.push(handler);
        }
    }
    Ok((router, events))
}

/// The bot that serves `features`: their commands and components routed through one
/// [`Router`], their event handlers subscribed. Takes the commands, components and
/// event handlers out of `features`.
pub fn bot(
    config: discord::BotConfig,
    discord: discord::Discord,
    features: &mut [Feature],
) -> Result<discord::Bot, DuplicateRoute> {
    let (router, events) = route(discord, features)?;
    Ok(discord::Bot::new(config, router, events))
}
