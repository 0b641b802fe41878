//! The closed set of REST routes the sim serves, parsed from method and path.
//!
//! Parsing into an enum first (rather than registering one axum handler per route)
//! keeps authentication, fault injection, rate-limit headers and the request log in
//! one place, and makes "which routes exist" readable in one match.

use axum::http::Method;

use crate::Snowflake;
use crate::error::ApiError;

type S = Snowflake;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    GetGateway,
    GetGatewayBot,
    GetCurrentUser,
    GetUser(S),
    GetCurrentUserGuilds,
    CreateDm,
    GetCurrentApplication,
    OAuthToken,
    OAuthRevoke,
    GetCommands {
        app: S,
        guild: Option<S>,
    },
    SetCommands {
        app: S,
        guild: Option<S>,
    },
    CreateCommand {
        app: S,
        guild: Option<S>,
    },
    GetCommand {
        app: S,
        guild: Option<S>,
        command: S,
    },
    EditCommand {
        app: S,
        guild: Option<S>,
        command: S,
    },
    DeleteCommand {
        app: S,
        guild: Option<S>,
        command: S,
    },
    InteractionCallback {
        id: S,
        token: String,
    },
    GetOriginal {
        app: S,
        token: String,
    },
    EditOriginal {
        app: S,
        token: String,
    },
    DeleteOriginal {
        app: S,
        token: String,
    },
    CreateFollowup {
        app: S,
        token: String,
    },
    GetFollowup {
        app: S,
        token: String,
        message: S,
    },
    EditFollowup {
        app: S,
        token: String,
        message: S,
    },
    DeleteFollowup {
        app: S,
        token: String,
        message: S,
    },
    GetChannel(S),
    EditChannel(S),
    DeleteChannel(S),
    GetMessages(S),
    CreateMessage(S),
    GetMessage(S, S),
    EditMessage(S, S),
    DeleteMessage(S, S),
    BulkDeleteMessages(S),
    RefreshAttachmentUrls,
    SetPermission(S, S),
    DeletePermission(S, S),
    Typing(S),
    GetGuild(S),
    GetGuildChannels(S),
    CreateGuildChannel(S),
    GetRoles(S),
    CreateRole(S),
    EditRole(S, S),
    DeleteRole(S, S),
    ListMembers(S),
    GetMember(S, S),
    EditMember(S, S),
    RemoveMember(S, S),
    AddMemberRole(S, S, S),
    RemoveMemberRole(S, S, S),
}

fn id(segment: &str) -> Option<S> {
    segment.parse::<u64>().ok().map(Snowflake::new)
}

impl Route {
    /// Parses a path relative to `/api/v10`. Unknown paths are 404 and known paths
    /// with the wrong method 405, with Discord's bodies.
    pub fn parse(method: &Method, path: &str) -> Result<Route, ApiError> {
        if let Some(route) = Self::parse_exact(method.as_str(), path) {
            return Ok(route);
        }
        let other_method = ["GET", "POST", "PUT", "PATCH", "DELETE"]
            .iter()
            .any(|m| Self::parse_exact(m, path).is_some());
        Err(if other_method {
            ApiError::method_not_allowed()
        } else {
            ApiError::not_found()
        })
    }

    fn parse_exact(method: &str, path: &str) -> Option<Route> {
        let path = path.trim_matches('/');
        let segments: Vec<&str> = path.split('/').collect();
        use Route::*;
        Some(match (method, segments.as_slice()) {
            ("GET", ["gateway"]) => GetGateway,
            ("GET", ["gateway", "bot"]) => GetGatewayBot,
            ("GET", ["users", "@me"]) => GetCurrentUser,
            ("GET", ["users", "@me", "guilds"]) => GetCurrentUserGuilds,
            ("POST", ["users", "@me", "channels"]) => CreateDm,
            ("GET", ["users", user]) => GetUser(id(user)?),
            ("POST", ["oauth2", "token"]) => OAuthToken,
            ("POST", ["oauth2", "token", "revoke"]) => OAuthRevoke,
            ("GET", ["applications", "@me"] | ["oauth2", "applications", "@me"]) => {
                GetCurrentApplication
            }
            (m, ["applications", app, "commands"]) => {
                let (app, guild) = (id(app)?, None);
                match m {
                    "GET" => GetCommands { app, guild },
                    "PUT" => SetCommands { app, guild },
                    "POST" => CreateCommand { app, guild },
                    _ => return None,
                }
            }
            (m, ["applications", app, "commands", command]) => {
                let (app, guild, command) = (id(app)?, None, id(command)?);
                match m {
                    "GET" => GetCommand {
                        app,
                        guild,
                        command,
                    },
                    "PATCH" => EditCommand {
                        app,
                        guild,
                        command,
                    },
                    "DELETE" => DeleteCommand {
                        app,
                        guild,
                        command,
                    },
                    _ => return None,
                }
            }
            (m, ["applications", app, "guilds", guild, "commands"]) => {
                let (app, guild) = (id(app)?, Some(id(guild)?));
                match m {
                    "GET" => GetCommands { app, guild },
                    "PUT" => SetCommands { app, guild },
                    "POST" => CreateCommand { app, guild },
                    _ => return None,
                }
            }
            (m, ["applications", app, "guilds", guild, "commands", command]) => {
                let (app, guild, command) = (id(app)?, Some(id(guild)?), id(command)?);
                match m {
                    "GET" => GetCommand {
                        app,
                        guild,
                        command,
                    },
                    "PATCH" => EditCommand {
                        app,
                        guild,
                        command,
                    },
                    "DELETE" => DeleteCommand {
                        app,
                        guild,
                        command,
                    },
                    _ => return None,
                }
            }
            ("POST", ["interactions", interaction, token, "callback"]) => InteractionCallback {
                id: id(interaction)?,
                token: (*token).to_owned(),
            },
            ("POST", ["webhooks", app, token]) => CreateFollowup {
                app: id(app)?,
                token: (*token).to_owned(),
            },
            (m, ["webhooks", app, token, "messages", "@original"]) => {
                let (app, token) = (id(app)?, (*token).to_owned());
                match m {
                    "GET" => GetOriginal { app, token },
                    "PATCH" => EditOriginal { app, token },
                    "DELETE" => DeleteOriginal { app, token },
                    _ => return None,
                }
            }
            (m, ["webhooks", app, token, "messages", message]) => {
                let (app, token, message) = (id(app)?, (*token).to_owned(), id(message)?);
                match m {
                    "GET" => GetFollowup {
                        app,
                        token,
                        message,
                    },
                    "PATCH" => EditFollowup {
                        app,
                        token,
                        message,
                    },
                    "DELETE" => DeleteFollowup {
                        app,
                        token,
                        message,
                    },
                    _ => return None,
                }
            }
            (m, ["channels", channel]) => {
                let channel = id(channel)?;
                match m {
                    "GET" => GetChannel(channel),
                    "PATCH" => EditChannel(channel),
                    "DELETE" => DeleteChannel(channel),
                    _ => return None,
                }
            }
            (m, ["channels", channel, "messages"]) => {
                let channel = id(channel)?;
                match m {
                    "GET" => GetMessages(channel),
                    "POST" => CreateMessage(channel),
                    _ => return None,
                }
            }
            ("POST", ["channels", channel, "messages", "bulk-delete"]) => {
                BulkDeleteMessages(id(channel)?)
            }
            ("POST", ["attachments", "refresh-urls"]) => RefreshAttachmentUrls,
            (m, ["channels", channel, "messages", message]) => {
                let (channel, message) = (id(channel)?, id(message)?);
                match m {
                    "GET" => GetMessage(channel, message),
                    "PATCH" => EditMessage(channel, message),
                    "DELETE" => DeleteMessage(channel, message),
                    _ => return None,
                }
            }
            (m, ["channels", channel, "permissions", overwrite]) => {
                let (channel, overwrite) = (id(channel)?, id(overwrite)?);
                match m {
                    "PUT" => SetPermission(channel, overwrite),
                    "DELETE" => DeletePermission(channel, overwrite),
                    _ => return None,
                }
            }
            ("POST", ["channels", channel, "typing"]) => Typing(id(channel)?),
            ("GET", ["guilds", guild]) => GetGuild(id(guild)?),
            (m, ["guilds", guild, "channels"]) => {
                let guild = id(guild)?;
                match m {
                    "GET" => GetGuildChannels(guild),
                    "POST" => CreateGuildChannel(guild),
                    _ => return None,
                }
            }
            (m, ["guilds", guild, "roles"]) => {
                let guild = id(guild)?;
                match m {
                    "GET" => GetRoles(guild),
                    "POST" => CreateRole(guild),
                    _ => return None,
                }
            }
            (m, ["guilds", guild, "roles", role]) => {
                let (guild, role) = (id(guild)?, id(role)?);
                match m {
                    "PATCH" => EditRole(guild, role),
                    "DELETE" => DeleteRole(guild, role),
                    _ => return None,
                }
            }
            ("GET", ["guilds", guild, "members"]) => ListMembers(id(guild)?),
            (m, ["guilds", guild, "members", user]) => {
                let (guild, user) = (id(guild)?, id(user)?);
                match m {
                    "GET" => GetMember(guild, user),
                    "PATCH" => EditMember(guild, user),
                    "DELETE" => RemoveMember(guild, user),
                    _ => return None,
                }
            }
            (m, ["guilds", guild, "members", user, "roles", role]) => {
                let (guild, user, role) = (id(guild)?, id(user)?, id(role)?);
                match m {
                    "PUT" => AddMemberRole(guild, user, role),
                    "DELETE" => RemoveMemberRole(guild, user, role),
                    _ => return None,
                }
            }
            _ => return None,
        })
    }

    /// The guild a route touches, directly or through its channel, for the check
    /// that the bot is a member (Discord answers 403 Missing Access otherwise).
    pub fn guild_scope(&self, channel_guild: impl Fn(S) -> Option<S>) -> Option<S> {
        use Route::*;
        match self {
            GetGuild(g)
            | GetGuildChannels(g)
            | CreateGuildChannel(g)
            | GetRoles(g)
            | CreateRole(g)
            | EditRole(g, _)
            | DeleteRole(g, _)
            | ListMembers(g)
            | GetMember(g, _)
            | EditMember(g, _)
            | RemoveMember(g, _)
            | AddMemberRole(g, _, _)
            | RemoveMemberRole(g, _, _) => Some(*g),
            GetChannel(c)
            | EditChannel(c)
            | DeleteChannel(c)
            | GetMessages(c)
            | CreateMessage(c)
            | GetMessage(c, _)
            | EditMessage(c, _)
            | DeleteMessage(c, _)
            | BulkDeleteMessages(c)
            | SetPermission(c, _)
            | DeletePermission(c, _)
            | Typing(c) => channel_guild(*c),
            _ => None,
        }
    }

    /// Whether the bot token's global rate limit counts this route: interaction
    /// callbacks and the interaction webhooks are exempt, as on Discord.
    pub fn counts_globally(&self) -> bool {
        self.needs_bot_token()
    }

    /// Routes a user's OAuth2 bearer token may call (as well as the bot).
    pub fn accepts_bearer(&self) -> bool {
        matches!(self, Route::GetCurrentUser | Route::GetCurrentUserGuilds)
    }

    /// Routes authenticated by the interaction token in the path, by the OAuth2
    /// client credentials, or not at all, rather than by the bot token.
    pub fn needs_bot_token(&self) -> bool {
        !matches!(
            self,
            Route::GetGateway
                | Route::OAuthToken
                | Route::OAuthRevoke
                | Route::InteractionCallback { .. }
                | Route::GetOriginal { .. }
                | Route::EditOriginal { .. }
                | Route::DeleteOriginal { .. }
                | Route::CreateFollowup { .. }
                | Route::GetFollowup { .. }
                | Route::EditFollowup { .. }
                | Route::DeleteFollowup { .. }
        )
    }

    /// Rate-limit bucket: the route template and its major parameter, as Discord
    /// keys buckets.
    pub fn bucket(&self) -> (&'static str, String) {
        use Route::*;
        match self {
            GetGateway => ("GET /gateway", String::new()),
            GetGatewayBot => ("GET /gateway/bot", String::new()),
            GetCurrentUser => ("GET /users/@me", String::new()),
            GetUser(_) => ("GET /users/{id}", String::new()),
            GetCurrentUserGuilds => ("GET /users/@me/guilds", String::new()),
            CreateDm => ("POST /users/@me/channels", String::new()),
            GetCurrentApplication => ("GET /applications/@me", String::new()),
            OAuthToken => ("POST /oauth2/token", String::new()),
            OAuthRevoke => ("POST /oauth2/token/revoke", String::new()),
            GetCommands { app, .. } => ("GET /applications/{id}/commands", app.to_string()),
            SetCommands { app, .. } => ("PUT /applications/{id}/commands", app.to_string()),
            CreateCommand { app, .. } => ("POST /applications/{id}/commands", app.to_string()),
            GetCommand { app, .. } => ("GET /applications/{id}/commands/{id}", app.to_string()),
            EditCommand { app, .. } => ("PATCH /applications/{id}/commands/{id}", app.to_string()),
            DeleteCommand { app, .. } => {
                ("DELETE /applications/{id}/commands/{id}", app.to_string())
            }
            InteractionCallback { id, .. } => {
                ("POST /interactions/{id}/{token}/callback", id.to_string())
            }
            GetOriginal { token, .. } => (
                "GET /webhooks/{id}/{token}/messages/@original",
                token.clone(),
            ),
            EditOriginal { token, .. } => (
                "PATCH /webhooks/{id}/{token}/messages/@original",
                token.clone(),
            ),
            DeleteOriginal { token, .. } => (
                "DELETE /webhooks/{id}/{token}/messages/@original",
                token.clone(),
            ),
            CreateFollowup { token, .. } => ("POST /webhooks/{id}/{token}", token.clone()),
            GetFollowup { token, .. } => {
                ("GET /webhooks/{id}/{token}/messages/{id}", token.clone())
            }
            EditFollowup { token, .. } => {
                ("PATCH /webhooks/{id}/{token}/messages/{id}", token.clone())
            }
            DeleteFollowup { token, .. } => {
                ("DELETE /webhooks/{id}/{token}/messages/{id}", token.clone())
            }
            GetChannel(c) => ("GET /channels/{id}", c.to_string()),
            EditChannel(c) => ("PATCH /channels/{id}", c.to_string()),
            DeleteChannel(c) => ("DELETE /channels/{id}", c.to_string()),
            GetMessages(c) => ("GET /channels/{id}/messages", c.to_string()),
            CreateMessage(c) => ("POST /channels/{id}/messages", c.to_string()),
            GetMessage(c, _) => ("GET /channels/{id}/messages/{id}", c.to_string()),
            EditMessage(c, _) => ("PATCH /channels/{id}/messages/{id}", c.to_string()),
            DeleteMessage(c, _) => ("DELETE /channels/{id}/messages/{id}", c.to_string()),
            BulkDeleteMessages(c) => ("POST /channels/{id}/messages/bulk-delete", c.to_string()),
            RefreshAttachmentUrls => ("POST /attachments/refresh-urls", String::new()),
            SetPermission(c, _) => ("PUT /channels/{id}/permissions/{id}", c.to_string()),
            DeletePermission(c, _) => ("DELETE /channels/{id}/permissions/{id}", c.to_string()),
            Typing(c) => ("POST /channels/{id}/typing", c.to_string()),
            GetGuild(g) => ("GET /guilds/{id}", g.to_string()),
            GetGuildChannels(g) => ("GET /guilds/{id}/channels", g.to_string()),
            CreateGuildChannel(g) => ("POST /guilds/{id}/channels", g.to_string()),
            GetRoles(g) => ("GET /guilds/{id}/roles", g.to_string()),
            CreateRole(g) => ("POST /guilds/{id}/roles", g.to_string()),
            EditRole(g, _) => ("PATCH /guilds/{id}/roles/{id}", g.to_string()),
            DeleteRole(g, _) => ("DELETE /guilds/{id}/roles/{id}", g.to_string()),
            ListMembers(g) => ("GET /guilds/{id}/members", g.to_string()),
            GetMember(g, _) => ("GET /guilds/{id}/members/{id}", g.to_string()),
            EditMember(g, _) => ("PATCH /guilds/{id}/members/{id}", g.to_string()),
            RemoveMember(g, _) => ("DELETE /guilds/{id}/members/{id}", g.to_string()),
            AddMemberRole(g, _, _) => ("PUT /guilds/{id}/members/{id}/roles/{id}", g.to_string()),
            RemoveMemberRole(g, _, _) => {
                ("DELETE /guilds/{id}/members/{id}/roles/{id}", g.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_routes() {
        assert_eq!(
            Route::parse(&Method::POST, "/channels/12/messages"),
            Ok(Route::CreateMessage(Snowflake::new(12)))
        );
        assert_eq!(
            Route::parse(&Method::PATCH, "/webhooks/1/tok/messages/@original"),
            Ok(Route::EditOriginal {
                app: Snowflake::new(1),
                token: "tok".into()
            })
        );
        assert_eq!(
            Route::parse(&Method::PUT, "/guilds/1/members/2/roles/3"),
            Ok(Route::AddMemberRole(
                Snowflake::new(1),
                Snowflake::new(2),
                Snowflake::new(3)
            ))
        );
    }

    #[test]
    fn bulk_delete_and_refresh_urls() {
        assert_eq!(
            Route::parse(&Method::POST, "/channels/12/messages/bulk-delete"),
            Ok(Route::BulkDeleteMessages(Snowflake::new(12)))
        );
        assert_eq!(
            Route::parse(&Method::POST, "/attachments/refresh-urls"),
            Ok(Route::RefreshAttachmentUrls)
        );
        assert_eq!(
            Route::parse(&Method::GET, "/channels/12/messages/bulk-delete").map_err(|e| e.status),
            Err(405)
        );
    }

    #[test]
    fn unknown_and_wrong_method() {
        assert_eq!(
            Route::parse(&Method::GET, "/nope").map_err(|e| e.status),
            Err(404)
        );
        assert_eq!(
            Route::parse(&Method::PUT, "/channels/1/messages").map_err(|e| e.status),
            Err(405)
        );
        assert_eq!(
            Route::parse(&Method::GET, "/channels/abc").map_err(|e| e.status),
            Err(404)
        );
    }
}
