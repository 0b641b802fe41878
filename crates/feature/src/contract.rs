use std::sync::Arc;

use discord::{CommandSpec, DuplicateRoute, EventHandler, Handler, Router};
use store::FeatureMigrations;

use crate::{Check, Job, Service, Startup};

pub use web::access::{Access, Manifest, RouteSpec, Routes};
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
    /// HTTP routes (pages and APIs), declared with [`Feature::web`] so each says who
    /// may call it.
    pub routes: Option<axum::Router>,
    /// Every route [`Feature::web`] declared: method, path and [`Access`].
    pub manifest: Vec<RouteSpec>,
    /// Routes were added with [`Feature::routes`], without saying who may call them.
    pub undeclared_routes: bool,
    /// Pages linked from the site's navigation.
    pub nav: Vec<NavLink>,
    pub jobs: Vec<Job>,
    pub services: Vec<Service>,
    pub startup: Vec<Startup>,
    pub migrations: Option<FeatureMigrations>,
    pub checks: Vec<Check>,
    /// The Discord permissions the bot needs in a guild for this feature to work there
    /// (permission bits, [`discord::model::permissions`]); the link that adds Tavern to
    /// a server asks for every feature's ([`crate::Catalogue::bot_permissions`]).
    pub bot_permissions: u64,
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
            .field("manifest", &self.manifest)
            .field("nav", &self.nav)
            .field("jobs", &self.jobs)
            .field("services", &self.services)
            .field("startup", &self.startup)
            .field("migrations", &self.migrations.map(|m| m.schema))
            .field("checks", &self.checks)
            .field("bot_permissions", &self.bot_permissions)
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

    /// HTTP routes declared with their access (`web::access::Routes`), merged with
    /// any given before; their manifest goes to [`Feature::manifest`]. The way to add
    /// routes:
    ///
    /// ```ignore
    /// let routes = Routes::new(&ctx.sessions)
    ///     .get("/api/x", Access::user_or_token("x:read"), read)
    ///     .post("/api/x", Access::user_or_token("x:write"), write)
    ///     .with_state(state);
    /// Feature::new("x").web(routes)
    /// ```
    pub fn web(self, routes: Routes) -> Feature {
        let (router, manifest) = routes.into_parts();
        let mut feature = self.merge_router(router);
        feature.manifest.extend(manifest);
        feature
    }

    /// HTTP routes that do not say who may call them, merged with any given before.
    /// Prefer [`Feature::web`]: Tavern's route walk fails for a feature that uses this.
    pub fn routes(self, routes: axum::Router) -> Feature {
        let mut feature = self.merge_router(routes);
        feature.undeclared_routes = true;
        feature
    }

    fn merge_router(mut self, routes: axum::Router) -> Feature {
        self.routes = Some(match self.routes.take() {
            Some(existing) => existing.merge(routes),
            None => routes,
        });
        self
    }

    /// A page in the site's navigation, with the sentence its home page card shows.
    pub fn nav(mut self, title: &'static str, path: &'static str, about: &'static str) -> Feature {
        self.nav.push(NavLink::new(title, path, about));
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

    /// Discord permissions the bot needs in a guild for this feature, added to any
    /// given before.
    pub fn bot_permissions(mut self, permissions: u64) -> Feature {
        self.bot_permissions |= permissions;
        self
    }
}

/// The manifest of `features`' routes: every declared route, and the features that
/// added routes without declaring them.
pub fn manifest(features: &[Feature]) -> Manifest {
    let mut manifest = Manifest::default();
    for feature in features {
        manifest.extend(feature.manifest.iter().cloned());
        if feature.undeclared_routes {
            manifest.undeclared.push(feature.name.to_owned());
        }
    }
    manifest
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
