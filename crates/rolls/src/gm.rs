//! GMs, and the rolls only they see.
//!
//! A channel's GM is whoever ran `/gm set` there (`gm_{channel_id}`); a server may also
//! name a GM role (`/gm role role:@GM`, Manage Server only; `gm_role_{guild_id}`),
//! whose members are the GMs of every channel that has no GM of its own (the first
//! [`MAX_ROLE_GMS`] of them). `/gm set` takes the channel over only from nobody, from
//! oneself or, for a member with Manage Server, from anyone; `/gm clear` is for the GM
//! or Manage Server. `/gm` works in a server only: in a direct message with the bot
//! there is nobody to roll for a GM, and every `/gm` there is refused.
//!
//! `/roll expression mode:gm` shows the result privately to the roller (an ephemeral
//! reply) and sends it to the GM by direct message; `mode:blind` sends it only to the
//! GM, and the roller reads "rolled, sent to the GM". The channel sees a message
//! saying who rolled for the GM (never what). Without a GM the roll is refused before
//! any dice are rolled.

use chrono::{DateTime, SecondsFormat, Utc};
use discord::Discord;
use discord::model::{GuildId, RoleId};
use serde::{Deserialize, Serialize};
use store::{Writes, updated_time};

use crate::RollsError;
use crate::domain::{ChannelId, UserId};
use crate::ops::{Env, Operation, Plan};
use crate::schema;

/// Most members of a GM role who receive a GM roll.
pub const MAX_ROLE_GMS: usize = 5;

/// `gm_{channel_id}`: the channel's GM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GmDoc {
    pub user: UserId,
    /// When they became GM (RFC 3339).
    pub since: String,
}

/// `gm_role_{guild_id}`: the server's GM role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GmRoleDoc {
    pub role: RoleId,
}

/// Reads a role as typed: a mention (`<@&123>`) or an id.
pub fn parse_role(text: &str) -> Result<RoleId, RollsError> {
    let text = text.trim();
    let digits = text
        .strip_prefix("<@&")
        .and_then(|t| t.strip_suffix('>'))
        .unwrap_or(text);
    discord::model::parse_id("role", digits).map_err(|_| {
        RollsError::refused(format!(
            "`{text}` is not a role: mention it (`@GM`) or give its id."
        ))
    })
}

/// `/gm set|clear|show|role`.
#[derive(Debug, Clone)]
pub enum GmOp {
    Show {
        channel: ChannelId,
        guild: Option<GuildId>,
    },
    Set {
        channel: ChannelId,
        user: UserId,
        can_manage: bool,
    },
    Clear {
        channel: ChannelId,
        user: UserId,
        can_manage: bool,
    },
    /// Sets (`Some`) or clears the server's GM role; the caller checked Manage Server.
    Role {
        guild: GuildId,
        role: Option<RoleId>,
    },
}

/// The GM set-up of a channel.
#[derive(Debug, Clone, Serialize)]
pub struct GmModel {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gm: Option<UserId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<RoleId>,
    pub message: String,
}

fn describe(gm: Option<UserId>, role: Option<RoleId>) -> String {
    match (gm, role) {
        (Some(gm), _) => format!("<@{gm}> is this channel's GM."),
        (None, Some(role)) => {
            format!("This channel has no GM of its own; members of <@&{role}> are its GMs.")
        }
        (None, None) => "This channel has no GM: run `/gm set` to become it.".to_owned(),
    }
}

impl Operation for GmOp {
    type Model = GmModel;
    const COMMAND: &'static str = "gm";

    async fn plan(&self, env: Env<'_>, at: DateTime<Utc>) -> Result<Plan<GmModel>, RollsError> {
        let repo = env.repo;
        match self {
            GmOp::Show { channel, guild } => {
                let gm = repo.gm(*channel).await?.value.map(|d| d.user);
                let role = match guild {
                    Some(guild) => repo.gm_role(*guild).await?.value.map(|d| d.role),
                    None => None,
                };
                Ok(Plan::read_only(GmModel {
                    gm,
                    role,
                    message: describe(gm, role),
                }))
            }
            GmOp::Set {
                channel,
                user,
                can_manage,
            } => {
                let read = repo.gm(*channel).await?;
                if let Some(current) = &read.value
                    && current.user != *user
                    && !can_manage
                {
                    return Err(RollsError::refused(format!(
                        "<@{}> is this channel's GM; they (`/gm clear`) or someone with Manage Server can hand it over.",
                        current.user
                    )));
                }
                let doc = GmDoc {
                    user: *user,
                    since: at.to_rfc3339_opts(SecondsFormat::Millis, true),
                };
                let key = schema::gm_key(*channel);
                let json = json(&key, &doc)?;
                let mut writes = Writes::new();
                updated_time::set_with_time(&mut writes, &key, json, at);
                Ok(Plan {
                    guard: Some((key, read.raw)),
                    writes,
                    model: GmModel {
                        gm: Some(*user),
                        role: None,
                        message: format!(
                            "<@{user}> is now this channel's GM: `/roll … mode:gm` and `mode:blind` go to them."
                        ),
                    },
                })
            }
            GmOp::Clear {
                channel,
                user,
                can_manage,
            } => {
                let read = repo.gm(*channel).await?;
                let Some(current) = &read.value else {
                    return Err(RollsError::refused("This channel has no GM."));
                };
                if current.user != *user && !can_manage {
                    return Err(RollsError::refused(format!(
                        "Only <@{}> (the GM) or someone with Manage Server can clear the GM.",
                        current.user
                    )));
                }
                let key = schema::gm_key(*channel);
                let mut writes = Writes::new();
                writes.del(&key).del(&schema::updated_time_key(&key));
                Ok(Plan {
                    guard: Some((key, read.raw)),
                    writes,
                    model: GmModel {
                        gm: None,
                        role: None,
                        message: "This channel has no GM now.".to_owned(),
                    },
                })
            }
            GmOp::Role { guild, role } => {
                let read = repo.gm_role(*guild).await?;
                let key = schema::gm_role_key(*guild);
                let mut writes = Writes::new();
                let message = match role {
                    Some(role) => {
                        let json = json(&key, &GmRoleDoc { role: *role })?;
                        updated_time::set_with_time(&mut writes, &key, json, at);
                        format!(
                            "Members of <@&{role}> are now the GMs of every channel without a GM of its own."
                        )
                    }
                    None => {
                        writes.del(&key).del(&schema::updated_time_key(&key));
                        "This server has no GM role now.".to_owned()
                    }
                };
                Ok(Plan {
                    guard: Some((key, read.raw)),
                    writes,
                    model: GmModel {
                        gm: None,
                        role: *role,
                        message,
                    },
                })
            }
        }
    }
}

fn json<T: Serialize>(key: &str, value: &T) -> Result<String, RollsError> {
    serde_json::to_string(value).map_err(|e| {
        RollsError::Storage(store::StorageError::corrupt(
            key,
            format!("cannot be written as JSON: {e}"),
        ))
    })
}

/// Who receives a GM or blind roll in `channel`: its GM, else the first members of
/// the server's GM role. Refused (in words) when there is nobody.
pub async fn recipients(
    repo: &crate::repo::Repo,
    discord: &Discord,
    channel: ChannelId,
    guild: Option<GuildId>,
) -> Result<Vec<UserId>, RollsError> {
    if let Some(gm) = repo.gm(channel).await?.value {
        return Ok(vec![gm.user]);
    }
    let role = match guild {
        Some(guild) => repo.gm_role(guild).await?.value.map(|d| (guild, d.role)),
        None => None,
    };
    let Some((guild, role)) = role else {
        return Err(RollsError::refused(
            "This channel has no GM to send the roll to: the GM runs `/gm set` here first.",
        ));
    };
    let members = discord.guild_members(guild).await?;
    let gms: Vec<UserId> = members
        .into_iter()
        .filter(|m| m.roles.contains(&role))
        .map(|m| m.user)
        .take(MAX_ROLE_GMS)
        .collect();
    if gms.is_empty() {
        return Err(RollsError::refused(format!(
            "Nobody has the GM role <@&{role}> and this channel has no GM: the GM runs `/gm set` here first."
        )));
    }
    Ok(gms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_read_from_mentions_or_ids() {
        assert_eq!(parse_role("<@&42>").unwrap(), RoleId::new(42));
        assert_eq!(parse_role(" 42 ").unwrap(), RoleId::new(42));
        assert!(parse_role("@GM").is_err());
        assert!(parse_role("<@&0>").is_err());
    }
}
