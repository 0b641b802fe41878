//! Discord's permission rules for the bot's REST calls.
//!
//! Checked before a route runs, with the permissions `State::permissions` computes
//! (owner and Administrator: every bit; else `@everyone`, the member's roles, then
//! the channel's overwrites). What is checked, as Discord does it:
//! - in a guild channel, no VIEW_CHANNEL is 403 50001 Missing Access, whatever the
//!   route; every other missing permission is 403 50013 Missing Permissions;
//! - channels: create needs MANAGE_CHANNELS (in the parent category if one is
//!   given), edit and delete need it in the channel;
//! - permission overwrites (on create, edit, or one at a time) need MANAGE_ROLES
//!   there, and every bit an overwrite newly allows or denies must be one the bot
//!   holds (what an overwrite already held, or loses, is not looked at). Held is
//!   measured outside the channel: in its parent category (with the category's
//!   overwrites) when it has one, else in the guild; so an overwrite of the bot's
//!   own in the channel gives it nothing to grant, unless one of the channel's
//!   overwrites that apply to the bot (its member overwrite, or one of its roles',
//!   `@everyone`'s included) allows MANAGE_ROLES: then what it holds in the channel
//!   counts;
//! - roles: MANAGE_ROLES; a role the bot creates or edits may not gain permissions
//!   the bot lacks; it edits, deletes, gives and takes only roles below its highest
//!   role, and never deletes, gives or takes a managed role (an integration's);
//! - members: roles as above, `nick` MANAGE_NICKNAMES (CHANGE_NICKNAME for its own),
//!   `channel_id` MOVE_MEMBERS, `mute` / `deaf` MUTE_MEMBERS / DEAFEN_MEMBERS, a
//!   timeout MODERATE_MEMBERS, a kick KICK_MEMBERS; nobody above the bot, nor the
//!   owner, may be changed;
//! - messages: sending needs SEND_MESSAGES (ATTACH_FILES for files,
//!   READ_MESSAGE_HISTORY for a reply), deleting another's MANAGE_MESSAGES, reading
//!   one READ_MESSAGE_HISTORY; listing history without it answers an empty list.
//!
//! The owner skips every permission check and the hierarchy; Administrator skips the
//! permission checks but not the hierarchy (it still cannot touch roles above its
//! own), as on Discord. Interaction callbacks and webhook follow-ups are not checked:
//! Discord does not check them either. Unknown ids are left to the route, which
//! answers 404.

use serde_json::Value;

use super::channels::{parse_overwrites, parse_permissions};
use super::{Call, Caller, Reply, Route};
use crate::Snowflake;
use crate::error::ApiError;
use crate::model::{OverwriteKind, PermissionOverwrite, permissions as p};
use crate::state::{Ctx, State};

/// 403 50013, Discord's answer to an action the bot's permissions do not allow.
pub(crate) fn missing_permissions() -> ApiError {
    ApiError::new(403, 50013, "Missing Permissions")
}

/// Checks `route` for the bot. `Ok(Some(reply))` answers instead of the route
/// (history the bot may not read is an empty list).
pub(super) fn check(route: &Route, call: &Call<'_>) -> Result<Option<Reply>, ApiError> {
    if !matches!(call.req.caller, Caller::Bot) {
        return Ok(None);
    }
    let bot = Bot {
        state: call.state,
        ctx: call.ctx,
    };
    let body = &call.req.body;
    match route {
        Route::GetChannel(channel) => {
            bot.in_channel(*channel, 0)?;
        }
        Route::Typing(channel) => {
            bot.in_channel(*channel, p::SEND_MESSAGES)?;
        }
        Route::EditChannel(channel) => {
            bot.in_channel(*channel, p::MANAGE_CHANNELS)?;
            if let Some(list) = body.get("permission_overwrites")
                && let Ok(wanted) = parse_overwrites(list)
                && let Some(c) = bot.state.channels.get(channel)
            {
                let current = c.channel.permission_overwrites.clone();
                bot.in_channel(*channel, p::MANAGE_ROLES)?;
                // The parent the channel has once edited: a move and new overwrites
                // in one call are measured in the category it moves to.
                let parent = match body.get("parent_id") {
                    Some(Value::Null) => None,
                    Some(v) => serde_json::from_value::<Snowflake>(v.clone())
                        .ok()
                        .or(c.channel.parent_id),
                    None => c.channel.parent_id,
                };
                let held = bot.grantable(*channel, parent);
                bot.may_change_overwrites(&current, &wanted, held)?;
            }
            if let Some(parent) = body
                .get("parent_id")
                .and_then(|v| serde_json::from_value::<Snowflake>(v.clone()).ok())
            {
                bot.in_channel(parent, p::MANAGE_CHANNELS)?;
            }
        }
        Route::DeleteChannel(channel) => {
            bot.in_channel(*channel, p::MANAGE_CHANNELS)?;
        }
        Route::SetPermission(channel, target) => {
            bot.in_channel(*channel, p::MANAGE_ROLES)?;
            let Some(c) = bot.state.channels.get(channel) else {
                return Ok(None);
            };
            let current = c.channel.permission_overwrites.clone();
            let mut wanted: Vec<PermissionOverwrite> = current
                .iter()
                .filter(|o| o.id != *target)
                .cloned()
                .collect();
            if let (Ok(allow), Ok(deny)) = (
                parse_permissions(body.get("allow"), "allow"),
                parse_permissions(body.get("deny"), "deny"),
            ) {
                wanted.push(PermissionOverwrite {
                    id: *target,
                    kind: OverwriteKind::Role,
                    allow,
                    deny,
                });
            }
            let held = bot.grantable(*channel, c.channel.parent_id);
            bot.may_change_overwrites(&current, &wanted, held)?;
        }
        Route::DeletePermission(channel, target) => {
            bot.in_channel(*channel, p::MANAGE_ROLES)?;
            let Some(c) = bot.state.channels.get(channel) else {
                return Ok(None);
            };
            let current = c.channel.permission_overwrites.clone();
            let wanted: Vec<PermissionOverwrite> = current
                .iter()
                .filter(|o| o.id != *target)
                .cloned()
                .collect();
            let held = bot.grantable(*channel, c.channel.parent_id);
            bot.may_change_overwrites(&current, &wanted, held)?;
        }
        Route::GetMessages(channel) => {
            if let Some(held) = bot.in_channel(*channel, 0)?
                && held & p::READ_MESSAGE_HISTORY == 0
            {
                return Ok(Some(Reply::ok(Value::Array(Vec::new()))));
            }
        }
        Route::GetMessage(channel, _) => {
            bot.in_channel(*channel, p::READ_MESSAGE_HISTORY)?;
        }
        Route::CreateMessage(channel) => {
            let mut needed = p::SEND_MESSAGES;
            if !call.req.files.is_empty() {
                needed |= p::ATTACH_FILES;
            }
            if body.get("message_reference").is_some_and(|r| !r.is_null()) {
                needed |= p::READ_MESSAGE_HISTORY;
            }
            bot.in_channel(*channel, needed)?;
        }
        Route::EditMessage(channel, _) => {
            bot.in_channel(*channel, 0)?;
        }
        Route::DeleteMessage(channel, message) => {
            let own = bot
                .state
                .message(*channel, *message)
                .is_ok_and(|m| m.author_id == bot.ctx.bot_id);
            bot.in_channel(*channel, if own { 0 } else { p::MANAGE_MESSAGES })?;
        }
        Route::BulkDeleteMessages(channel) => {
            bot.in_channel(*channel, p::MANAGE_MESSAGES)?;
        }
        Route::CreateGuildChannel(guild) => {
            let parent = body
                .get("parent_id")
                .and_then(|v| serde_json::from_value::<Snowflake>(v.clone()).ok())
                .filter(|parent| bot.state.channels.contains_key(parent));
            match parent {
                Some(parent) => {
                    bot.in_channel(parent, p::MANAGE_CHANNELS)?;
                }
                None => {
                    bot.in_guild(*guild, p::MANAGE_CHANNELS)?;
                }
            }
            let held = bot.outside(*guild, parent);
            if let Some(list) = body.get("permission_overwrites").filter(|v| !v.is_null())
                && let Ok(wanted) = parse_overwrites(list)
                && !wanted.is_empty()
            {
                if held & p::MANAGE_ROLES == 0 {
                    return Err(missing_permissions());
                }
                bot.may_change_overwrites(&[], &wanted, held)?;
            }
        }
        Route::CreateRole(guild) => {
            bot.in_guild(*guild, p::MANAGE_ROLES)?;
            if let Some(value) = body.get("permissions").filter(|v| !v.is_null())
                && let Ok(wanted) = parse_permissions(Some(value), "permissions")
            {
                bot.holds(*guild, wanted)?;
            }
        }
        Route::EditRole(guild, role) => {
            bot.in_guild(*guild, p::MANAGE_ROLES)?;
            bot.outranks_role(*guild, *role)?;
            if let Some(value) = body.get("permissions").filter(|v| !v.is_null())
                && let Ok(wanted) = parse_permissions(Some(value), "permissions")
                && let Some(current) = bot.role(*guild, *role).map(|r| r.permissions)
            {
                bot.holds(*guild, (wanted & p::ALL) ^ current)?;
            }
        }
        Route::DeleteRole(guild, role) => {
            bot.in_guild(*guild, p::MANAGE_ROLES)?;
            bot.manages_role(*guild, *role)?;
        }
        Route::AddMemberRole(guild, _, role) | Route::RemoveMemberRole(guild, _, role) => {
            bot.in_guild(*guild, p::MANAGE_ROLES)?;
            bot.manages_role(*guild, *role)?;
        }
        Route::EditMember(guild, user) => bot.may_edit_member(*guild, *user, body)?,
        Route::RemoveMember(guild, user) => {
            bot.in_guild(*guild, p::KICK_MEMBERS)?;
            bot.outranks(*guild, *user)?;
        }
        _ => {}
    }
    Ok(None)
}

/// The bot, seen from one request.
struct Bot<'a> {
    state: &'a State,
    ctx: &'a Ctx,
}

impl Bot<'_> {
    fn guild_permissions(&self, guild: Snowflake) -> u64 {
        self.state.permissions(guild, self.ctx.bot_id, None)
    }

    fn channel_permissions(&self, channel: Snowflake) -> u64 {
        self.state
            .channels
            .get(&channel)
            .and_then(|c| c.channel.guild_id)
            .map_or(p::ALL, |guild| {
                self.state
                    .permissions(guild, self.ctx.bot_id, Some(channel))
            })
    }

    /// The bot's permissions where a channel in `guild` under `parent` sits: in the
    /// parent category (with its overwrites) if it has a known one, else in the guild.
    fn outside(&self, guild: Snowflake, parent: Option<Snowflake>) -> u64 {
        match parent.filter(|parent| self.state.channels.contains_key(parent)) {
            Some(parent) => self.channel_permissions(parent),
            None => self.guild_permissions(guild),
        }
    }

    /// What the bot may newly allow or deny in `channel`'s overwrites (the channel
    /// under `parent`), as Discord measures it: what it holds outside the channel
    /// (`outside`), unless one of the channel's overwrites that apply to the
    /// bot allows MANAGE_ROLES; then what it holds in the channel.
    fn grantable(&self, channel: Snowflake, parent: Option<Snowflake>) -> u64 {
        let Some(c) = self.state.channels.get(&channel) else {
            return 0;
        };
        let Some(guild) = c.channel.guild_id else {
            return p::ALL;
        };
        let roles = self
            .state
            .guilds
            .get(&guild)
            .and_then(|g| g.members.get(&self.ctx.bot_id))
            .map_or(&[][..], |m| m.roles.as_slice());
        let manages_here = c.channel.permission_overwrites.iter().any(|o| {
            o.allow & p::MANAGE_ROLES != 0
                && match o.kind {
                    OverwriteKind::Member => o.id == self.ctx.bot_id,
                    OverwriteKind::Role => o.id == guild || roles.contains(&o.id),
                }
        });
        if manages_here {
            self.channel_permissions(channel)
        } else {
            self.outside(guild, parent)
        }
    }

    fn is_owner(&self, guild: Snowflake) -> bool {
        self.state
            .guilds
            .get(&guild)
            .is_some_and(|g| g.guild.owner_id == self.ctx.bot_id)
    }

    fn role(&self, guild: Snowflake, role: Snowflake) -> Option<&crate::model::Role> {
        self.state.guilds.get(&guild)?.roles.get(&role)
    }

    /// The position of `user`'s highest role (0, `@everyone`'s, without roles).
    fn top_position(&self, guild: Snowflake, user: Snowflake) -> i64 {
        let Some(g) = self.state.guilds.get(&guild) else {
            return 0;
        };
        g.members.get(&user).map_or(0, |m| {
            m.roles
                .iter()
                .filter_map(|r| g.roles.get(r))
                .map(|r| r.position)
                .max()
                .unwrap_or(0)
        })
    }

    /// The bot's permissions in a guild channel if it may see it (`None`: not a
    /// guild channel, or unknown, left to the route); 50001 if it may not, 50013 if
    /// it lacks any of `needed`.
    fn in_channel(&self, channel: Snowflake, needed: u64) -> Result<Option<u64>, ApiError> {
        let Some(guild) = self
            .state
            .channels
            .get(&channel)
            .and_then(|c| c.channel.guild_id)
        else {
            return Ok(None);
        };
        let held = self
            .state
            .permissions(guild, self.ctx.bot_id, Some(channel));
        if held & p::VIEW_CHANNEL == 0 {
            return Err(ApiError::missing_access());
        }
        if held & needed != needed {
            return Err(missing_permissions());
        }
        Ok(Some(held))
    }

    fn in_guild(&self, guild: Snowflake, needed: u64) -> Result<(), ApiError> {
        if !self.state.guilds.contains_key(&guild) {
            return Ok(());
        }
        self.holds(guild, needed)
    }

    /// Whether the bot holds every bit of `bits` in the guild.
    fn holds(&self, guild: Snowflake, bits: u64) -> Result<(), ApiError> {
        if self.guild_permissions(guild) & bits == bits {
            Ok(())
        } else {
            Err(missing_permissions())
        }
    }

    /// The bot may delete, give and take `role`: below its highest role (the owner
    /// excepted) and not managed by an integration.
    fn manages_role(&self, guild: Snowflake, role: Snowflake) -> Result<(), ApiError> {
        if self.role(guild, role).is_some_and(|r| r.managed) {
            return Err(missing_permissions());
        }
        self.outranks_role(guild, role)
    }

    /// `role` is below the bot's highest role, or the bot owns the guild.
    fn outranks_role(&self, guild: Snowflake, role: Snowflake) -> Result<(), ApiError> {
        let Some(r) = self.role(guild, role) else {
            return Ok(());
        };
        if !self.is_owner(guild) && r.position >= self.top_position(guild, self.ctx.bot_id) {
            return Err(missing_permissions());
        }
        Ok(())
    }

    /// The bot may act on member `user`: not the owner, and (unless the bot owns the
    /// guild) whose highest role is below the bot's.
    fn outranks(&self, guild: Snowflake, user: Snowflake) -> Result<(), ApiError> {
        let Some(g) = self.state.guilds.get(&guild) else {
            return Ok(());
        };
        if g.guild.owner_id == self.ctx.bot_id {
            return Ok(());
        }
        if g.guild.owner_id == user
            || self.top_position(guild, user) >= self.top_position(guild, self.ctx.bot_id)
        {
            return Err(missing_permissions());
        }
        Ok(())
    }

    /// Every bit an overwrite newly allows or denies, of every target, must be one the
    /// bot holds (`held`): what an overwrite already held, and what is taken out of one
    /// (or a whole overwrite removed), is not looked at.
    fn may_change_overwrites(
        &self,
        current: &[PermissionOverwrite],
        wanted: &[PermissionOverwrite],
        held: u64,
    ) -> Result<(), ApiError> {
        let bits = |list: &[PermissionOverwrite], id: Snowflake| {
            list.iter()
                .find(|o| o.id == id)
                .map_or((0, 0), |o| (o.allow, o.deny))
        };
        let mut changed = 0;
        for id in current.iter().chain(wanted).map(|o| o.id) {
            let (old_allow, old_deny) = bits(current, id);
            let (new_allow, new_deny) = bits(wanted, id);
            changed |= (new_allow & !old_allow) | (new_deny & !old_deny);
        }
        if changed & !held != 0 {
            return Err(missing_permissions());
        }
        Ok(())
    }

    fn may_edit_member(
        &self,
        guild: Snowflake,
        user: Snowflake,
        body: &Value,
    ) -> Result<(), ApiError> {
        let Some(member) = self
            .state
            .guilds
            .get(&guild)
            .and_then(|g| g.members.get(&user))
        else {
            return Ok(());
        };
        if let Some(Ok(roles)) = body
            .get("roles")
            .filter(|v| !v.is_null())
            .map(|v| serde_json::from_value::<Vec<Snowflake>>(v.clone()))
        {
            let changed: Vec<Snowflake> = roles
                .iter()
                .filter(|r| !member.roles.contains(r))
                .chain(member.roles.iter().filter(|r| !roles.contains(r)))
                .copied()
                .collect();
            if !changed.is_empty() {
                self.in_guild(guild, p::MANAGE_ROLES)?;
                for role in changed {
                    self.manages_role(guild, role)?;
                }
            }
        }
        if body.get("nick").is_some() {
            if user == self.ctx.bot_id {
                self.in_guild(guild, p::CHANGE_NICKNAME)?;
            } else {
                self.in_guild(guild, p::MANAGE_NICKNAMES)?;
                self.outranks(guild, user)?;
            }
        }
        for (field, needed) in [
            ("channel_id", p::MOVE_MEMBERS),
            ("mute", p::MUTE_MEMBERS),
            ("deaf", p::DEAFEN_MEMBERS),
            ("communication_disabled_until", p::MODERATE_MEMBERS),
        ] {
            if body.get(field).is_some() {
                self.in_guild(guild, needed)?;
            }
        }
        if body.get("communication_disabled_until").is_some() {
            self.outranks(guild, user)?;
        }
        Ok(())
    }
}
