//! The catalogue of what the running features declare for others to read: every slash
//! command they register (what `/help` lists) and the Discord permissions the bot needs
//! for them (what the link that adds Tavern to a server asks for). The binary fills it
//! once every feature is built ([`Catalogue::fill`]); a feature keeps a clone of
//! [`crate::Context::catalogue`] and reads it when asked, so a feature built before the
//! others still sees them all.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use discord::{CommandSpec, OptionKind, OptionSpec};

use crate::Feature;

/// One registered command as `/help` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandEntry {
    pub name: String,
    pub description: String,
    /// `(name, description)` of each subcommand, in registration order.
    pub subcommands: Vec<(String, String)>,
    /// `(name, description, required)` of each option of the command itself.
    pub options: Vec<(String, String, bool)>,
    /// Offered in servers only, not in a direct message with the bot
    /// ([`CommandSpec::guild_only`]).
    pub guild_only: bool,
}

impl CommandEntry {
    /// The entry of a registered command.
    pub fn of(spec: &CommandSpec) -> CommandEntry {
        let (subs, options): (Vec<&OptionSpec>, Vec<&OptionSpec>) = spec
            .options
            .iter()
            .partition(|o| o.kind == OptionKind::SubCommand);
        CommandEntry {
            name: spec.name.clone(),
            description: spec.description.clone(),
            subcommands: subs
                .into_iter()
                .map(|o| (o.name.clone(), o.description.clone()))
                .collect(),
            options: options
                .into_iter()
                .map(|o| (o.name.clone(), o.description.clone(), o.required))
                .collect(),
            guild_only: spec.guild_only,
        }
    }
}

/// The commands of one feature, named as the feature names itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureCommands {
    pub feature: String,
    pub commands: Vec<CommandEntry>,
}

/// Every feature's commands and bot permissions, shared by clones. Empty until
/// [`Catalogue::fill`].
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    features: Arc<RwLock<Vec<FeatureCommands>>>,
    bot_permissions: Arc<AtomicU64>,
}

impl Catalogue {
    /// Records the commands of `features` (replacing what was there; features without
    /// commands are left out) and the permissions they need together.
    pub fn fill(&self, features: &[Feature]) {
        let permissions = features.iter().fold(0, |all, f| all | f.bot_permissions);
        self.bot_permissions.store(permissions, Ordering::Relaxed);
        let list: Vec<FeatureCommands> = features
            .iter()
            .filter(|f| !f.commands.is_empty())
            .map(|f| FeatureCommands {
                feature: f.name.to_owned(),
                commands: f
                    .commands
                    .iter()
                    .map(|(spec, _)| CommandEntry::of(spec))
                    .collect(),
            })
            .collect();
        let mut slot = match self.features.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *slot = list;
    }

    /// The recorded features and their commands, in the order the features were built.
    pub fn features(&self) -> Vec<FeatureCommands> {
        match self.features.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The entry of the command called `name`, and the feature it belongs to.
    pub fn find(&self, name: &str) -> Option<(String, CommandEntry)> {
        self.features().into_iter().find_map(|f| {
            let feature = f.feature;
            f.commands
                .into_iter()
                .find(|c| c.name == name)
                .map(|c| (feature, c))
        })
    }

    pub fn is_empty(&self) -> bool {
        self.features().is_empty()
    }

    /// The Discord permissions every recorded feature needs in a guild, together
    /// ([`Feature::bot_permissions`]).
    pub fn bot_permissions(&self) -> u64 {
        self.bot_permissions.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use discord::{HandlerError, Invocation, OptionSpec, Response};

    use super::*;

    fn handler() -> Arc<dyn discord::Handler> {
        Arc::new(|_: Invocation| async { Err::<Response, _>(HandlerError::user("unused")) })
    }

    #[test]
    fn the_catalogue_lists_every_feature_with_commands() {
        let catalogue = Catalogue::default();
        assert!(catalogue.is_empty());
        let dice = Feature::new("dice").command(
            CommandSpec::new("roll", "Roll dice")
                .option(OptionSpec::string("expression", "What to roll").required()),
            handler(),
        );
        let game = Feature::new("game").command(
            CommandSpec::new("game", "A game")
                .option(OptionSpec::subcommand("start", "Start one"))
                .option(OptionSpec::subcommand("stop", "Stop it")),
            handler(),
        );
        let quiet = Feature::new("quiet");
        let shared = catalogue.clone();
        catalogue.fill(&[dice, quiet, game]);
        let features = shared.features();
        let names: Vec<&str> = features.iter().map(|f| f.feature.as_str()).collect();
        assert_eq!(names, vec!["dice", "game"]);
        let (feature, game) = shared.find("game").expect("registered");
        assert_eq!(feature, "game");
        assert_eq!(
            game.subcommands,
            vec![
                ("start".to_owned(), "Start one".to_owned()),
                ("stop".to_owned(), "Stop it".to_owned())
            ]
        );
        let (_, roll) = shared.find("roll").expect("registered");
        assert_eq!(
            roll.options,
            vec![("expression".to_owned(), "What to roll".to_owned(), true)]
        );
        assert!(shared.find("dance").is_none());
    }

    #[test]
    fn the_bot_permissions_are_every_features_together_commands_or_not() {
        use discord::model::permissions::{
            MANAGE_ROLES, READ_MESSAGE_HISTORY, SEND_MESSAGES, VIEW_CHANNEL,
        };
        let catalogue = Catalogue::default();
        assert_eq!(catalogue.bot_permissions(), 0);
        let chat = Feature::new("chat")
            .bot_permissions(VIEW_CHANNEL)
            .bot_permissions(SEND_MESSAGES);
        let archive = Feature::new("archive").bot_permissions(VIEW_CHANNEL | READ_MESSAGE_HISTORY);
        let roles = Feature::new("roles").bot_permissions(MANAGE_ROLES);
        let shared = catalogue.clone();
        catalogue.fill(&[chat, archive, roles, Feature::new("quiet")]);
        assert_eq!(
            shared.bot_permissions(),
            VIEW_CHANNEL | SEND_MESSAGES | READ_MESSAGE_HISTORY | MANAGE_ROLES
        );
    }
}
