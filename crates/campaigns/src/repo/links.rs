//! Meetup ↔ Discord user links (`meetup_user:{}:discord_user`,
//! `discord_user:{}:meetup_user`, `meetup_users`, `discord_users`) and the linked
//! users' own OAuth2 tokens.

use chrono::{DateTime, Utc};
use discord::model::UserId;
use meetup::{AccessToken, RefreshToken};
use store::Writes;

use super::{
    Repo, RepoError, Tokens, get, meetup_user_id, refuse, rfc3339, time, user_id, watch_more,
};
use crate::domain::MeetupUserId;
use crate::schema;

/// A linked Meetup user's own tokens and when they were last refreshed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserTokens {
    pub tokens: Tokens,
    pub last_refresh: Option<DateTime<Utc>>,
}

/// What [`Repo::link`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkOutcome {
    Linked,
    /// The two were already linked to each other (their keys were rewritten, which also
    /// repairs a missing set membership).
    AlreadyLinked,
}

impl Repo {
    /// Links a Meetup user and a Discord user: both 1:1 keys and both sets (and the
    /// user's own tokens, when they gave the extra consent) in one transaction.
    ///
    /// Refused when either is linked to somebody else: silently moving a link would hand
    /// one person's game access to another, so the old link must be removed on purpose
    /// first ([`Repo::unlink_discord_user`]).
    pub async fn link(
        &self,
        meetup: MeetupUserId,
        discord: UserId,
        tokens: Option<&UserTokens>,
    ) -> Result<LinkOutcome, RepoError> {
        let meetup_key = schema::meetup_user_discord_user(meetup);
        let discord_key = schema::discord_user_meetup_user(discord);
        let keys = [meetup_key.clone(), discord_key.clone()];
        let (meetup_key, discord_key) = (&meetup_key, &discord_key);
        self.transact(&keys, move |mut conn| async move {
            let linked_discord = get(&mut conn, meetup_key).await?;
            let linked_meetup = get(&mut conn, discord_key).await?;
            let linked_discord = match user_id(meetup_key, linked_discord) {
                Ok(v) => v,
                Err(e) => return refuse(e),
            };
            let linked_meetup = match meetup_user_id(discord_key, linked_meetup) {
                Ok(v) => v,
                Err(e) => return refuse(e),
            };
            if let Some(other) = linked_discord.filter(|d| *d != discord) {
                return refuse(RepoError::MeetupUserLinkedElsewhere {
                    meetup,
                    discord: other,
                });
            }
            if let Some(other) = linked_meetup.filter(|m| *m != meetup) {
                return refuse(RepoError::DiscordUserLinkedElsewhere {
                    discord,
                    meetup: other,
                });
            }
            let outcome = if linked_discord.is_some() && linked_meetup.is_some() {
                LinkOutcome::AlreadyLinked
            } else {
                LinkOutcome::Linked
            };
            let mut writes = Writes::new();
            writes
                .set(meetup_key, discord.get())
                .set(discord_key, meetup.get())
                .sadd(schema::MEETUP_USERS, meetup.get())
                .sadd(schema::DISCORD_USERS, discord.get());
            if let Some(tokens) = tokens {
                user_token_writes(&mut writes, meetup, tokens);
            }
            Ok((writes, Ok(outcome)))
        })
        .await
        .inspect(|outcome| tracing::info!(%meetup, %discord, ?outcome, "linked Meetup user"))
    }

    /// Removes the link of a Discord user, both directions, and the Meetup user's own
    /// tokens (they were given for this link). Returns the Meetup user it was linked to.
    pub async fn unlink_discord_user(
        &self,
        discord: UserId,
    ) -> Result<Option<MeetupUserId>, RepoError> {
        let discord_key = schema::discord_user_meetup_user(discord);
        let keys = [discord_key.clone()];
        let discord_key = &discord_key;
        let unlinked = self
            .transact(&keys, move |mut conn| async move {
                let raw = get(&mut conn, discord_key).await?;
                let meetup = match meetup_user_id(discord_key, raw) {
                    Ok(Some(m)) => m,
                    Ok(None) => {
                        let mut writes = Writes::new();
                        writes.srem(schema::DISCORD_USERS, discord.get());
                        return Ok((writes, Ok(None)));
                    }
                    Err(e) => return refuse(e),
                };
                let meetup_key = schema::meetup_user_discord_user(meetup);
                watch_more(&mut conn, &[&meetup_key]).await?;
                let back = user_id(&meetup_key, get(&mut conn, &meetup_key).await?);
                let points_back = matches!(back, Ok(Some(d)) if d == discord);
                Ok((
                    unlink_writes(meetup, discord, true, points_back),
                    Ok(Some(meetup)),
                ))
            })
            .await?;
        tracing::info!(%discord, meetup = unlinked.map(tracing::field::display), "unlinked Discord user");
        Ok(unlinked)
    }

    /// Removes the link of a Meetup user (an admin unlinking by Meetup id); the mirror
    /// of [`Repo::unlink_discord_user`].
    pub async fn unlink_meetup_user(
        &self,
        meetup: MeetupUserId,
    ) -> Result<Option<UserId>, RepoError> {
        let meetup_key = schema::meetup_user_discord_user(meetup);
        let keys = [meetup_key.clone()];
        let meetup_key = &meetup_key;
        let unlinked = self
            .transact(&keys, move |mut conn| async move {
                let raw = get(&mut conn, meetup_key).await?;
                let discord = match user_id(meetup_key, raw) {
                    Ok(Some(d)) => d,
                    Ok(None) => {
                        let mut writes = Writes::new();
                        writes.srem(schema::MEETUP_USERS, meetup.get());
                        return Ok((writes, Ok(None)));
                    }
                    Err(e) => return refuse(e),
                };
                let discord_key = schema::discord_user_meetup_user(discord);
                watch_more(&mut conn, &[&discord_key]).await?;
                let back = meetup_user_id(&discord_key, get(&mut conn, &discord_key).await?);
                let points_back = matches!(back, Ok(Some(m)) if m == meetup);
                Ok((
                    unlink_writes(meetup, discord, points_back, true),
                    Ok(Some(discord)),
                ))
            })
            .await?;
        tracing::info!(%meetup, discord = unlinked.map(tracing::field::display), "unlinked Meetup user");
        Ok(unlinked)
    }

    /// The Meetup user a Discord user is linked to.
    pub async fn meetup_user_of(&self, discord: UserId) -> Result<Option<MeetupUserId>, RepoError> {
        let key = schema::discord_user_meetup_user(discord);
        meetup_user_id(&key, self.read(&key).await?)
    }

    /// The Discord user a Meetup user is linked to.
    pub async fn discord_user_of(&self, meetup: MeetupUserId) -> Result<Option<UserId>, RepoError> {
        let key = schema::meetup_user_discord_user(meetup);
        user_id(&key, self.read(&key).await?)
    }

    /// Stores a linked user's refreshed tokens (hash and refresh time in one step).
    pub async fn set_user_tokens(
        &self,
        meetup: MeetupUserId,
        tokens: &UserTokens,
    ) -> Result<(), RepoError> {
        let mut writes = Writes::new();
        user_token_writes(&mut writes, meetup, tokens);
        self.apply(&writes).await
    }

    /// A Meetup user's own tokens, if they gave them.
    pub async fn user_tokens(&self, meetup: MeetupUserId) -> Result<Option<UserTokens>, RepoError> {
        let key = schema::meetup_user_oauth2_tokens(meetup);
        let time_key = schema::meetup_user_oauth2_tokens_last_refresh_time(meetup);
        let mut conn = self.redis.conn();
        let (access, refresh): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(&key)
            .arg(schema::OAUTH2_ACCESS_TOKEN)
            .arg(schema::OAUTH2_REFRESH_TOKEN)
            .query_async(&mut conn)
            .await?;
        let (Some(access), Some(refresh)) = (access, refresh) else {
            return Ok(None);
        };
        let last_refresh = time(&time_key, get(&mut conn, &time_key).await?)?;
        Ok(Some(UserTokens {
            tokens: Tokens {
                access: AccessToken::from(access),
                refresh: RefreshToken::from(refresh),
            },
            last_refresh,
        }))
    }
}

fn user_token_writes(writes: &mut Writes, meetup: MeetupUserId, tokens: &UserTokens) {
    let key = schema::meetup_user_oauth2_tokens(meetup);
    let time_key = schema::meetup_user_oauth2_tokens_last_refresh_time(meetup);
    writes
        .command("HSET")
        .arg(&key)
        .arg(schema::OAUTH2_ACCESS_TOKEN)
        .arg(tokens.tokens.access.expose_str())
        .arg(schema::OAUTH2_REFRESH_TOKEN)
        .arg(tokens.tokens.refresh.expose_str());
    match tokens.last_refresh {
        Some(t) => writes.set(&time_key, rfc3339(t)),
        None => writes.del(&time_key),
    };
}

/// The writes that unlink a pair, each side only when it belongs to this link (a side
/// that points at somebody else belongs to another link and stays). The Meetup side
/// takes the user's own tokens with it.
fn unlink_writes(
    meetup: MeetupUserId,
    discord: UserId,
    discord_side: bool,
    meetup_side: bool,
) -> Writes {
    let mut writes = Writes::new();
    if discord_side {
        writes
            .del(&schema::discord_user_meetup_user(discord))
            .srem(schema::DISCORD_USERS, discord.get());
    }
    if meetup_side {
        writes
            .del(&schema::meetup_user_discord_user(meetup))
            .srem(schema::MEETUP_USERS, meetup.get())
            .del(&schema::meetup_user_oauth2_tokens(meetup))
            .del(&schema::meetup_user_oauth2_tokens_last_refresh_time(meetup));
    }
    writes
}
