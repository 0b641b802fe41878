//! Discord's permission rules for a bot that neither owns the guild nor is an
//! Administrator: the managed role the install gives it, what each REST route needs,
//! the role hierarchy, and what is not checked (interaction callbacks).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Rest;
use discord_sim::model::permissions::*;
use discord_sim::{
    ChannelKind, ChannelSpec, OverwriteKind, PermissionOverwrite, RoleSpec, Sim, Snowflake,
};
use serde_json::{Value, json};

fn missing_permissions() -> Value {
    json!({"message": "Missing Permissions", "code": 50013})
}

fn missing_access() -> Value {
    json!({"message": "Missing Access", "code": 50001})
}

/// A guild owned by someone else where the bot's only role is the managed one of an
/// install with `permissions`, with a text channel `#general`.
struct Setup {
    sim: Sim,
    rest: Rest,
    guild: Snowflake,
    owner: Snowflake,
    bot_role: Snowflake,
    general: Snowflake,
}

fn setup(permissions: u64) -> Setup {
    let sim = common::start();
    let installed = sim
        .create_guild_with_bot_role("Players' Guild", permissions)
        .unwrap();
    let general = sim
        .create_channel(installed.guild, "general", ChannelKind::Text)
        .unwrap();
    Setup {
        rest: Rest::new(&sim),
        guild: installed.guild,
        owner: installed.owner,
        bot_role: installed.bot_role.expect("the install made a role"),
        general,
        sim,
    }
}

impl Setup {
    /// A text channel whose overwrites are `overwrites`.
    fn channel(
        &self,
        name: &str,
        overwrites: &[(Snowflake, OverwriteKind, u64, u64)],
    ) -> Snowflake {
        let mut spec = ChannelSpec::new(name, ChannelKind::Text);
        for (id, kind, allow, deny) in overwrites {
            spec = spec.overwrite(PermissionOverwrite {
                id: *id,
                kind: *kind,
                allow: *allow,
                deny: *deny,
            });
        }
        self.sim.create_channel_with(self.guild, spec).unwrap()
    }

    /// A text channel where the bot's role is denied `deny`.
    fn channel_denying(&self, name: &str, deny: u64) -> Snowflake {
        self.channel(name, &[(self.bot_role, OverwriteKind::Role, 0, deny)])
    }

    /// A text channel `@everyone` may not see (nor, then, the bot).
    fn hidden_channel(&self, name: &str) -> Snowflake {
        self.channel(name, &[(self.guild, OverwriteKind::Role, 0, VIEW_CHANNEL)])
    }

    fn member_with_role(&self, name: &str, role: Snowflake) -> Snowflake {
        let user = self.sim.create_user(name);
        self.sim.add_member(self.guild, user).unwrap();
        self.sim.add_member_role(self.guild, user, role).unwrap();
        user
    }
}

#[tokio::test]
async fn the_install_gives_the_bot_a_managed_role_just_above_everyone() {
    let sim = common::start();
    let owner = sim.create_user("Owner");
    let guild = sim.create_user_guild("Players' Guild", owner).unwrap();
    let moderators = sim
        .create_role(guild, RoleSpec::new("Moderators", MANAGE_ROLES))
        .unwrap();
    let players = sim.create_role(guild, RoleSpec::new("Players", 0)).unwrap();

    let role = sim
        .install_bot(guild, VIEW_CHANNEL | SEND_MESSAGES)
        .unwrap()
        .expect("a role for the bot");

    let rest = Rest::new(&sim);
    let (status, roles) = rest.get(&format!("/guilds/{guild}/roles")).await;
    assert_eq!(status, 200, "{roles}");
    let roles: Vec<twilight_model::guild::Role> = common::twilight("roles", &roles);
    let position = |id: Snowflake| {
        roles
            .iter()
            .find(|r| r.id.get() == id.get())
            .map(|r| r.position)
            .unwrap()
    };
    let bot_role = roles.iter().find(|r| r.id.get() == role.get()).unwrap();
    assert_eq!(bot_role.name, sim.config().bot_name);
    assert!(bot_role.managed);
    assert_eq!(
        bot_role
            .tags
            .as_ref()
            .and_then(|t| t.bot_id)
            .map(|b| b.get()),
        Some(sim.bot_user_id().get())
    );
    assert_eq!(bot_role.permissions.bits(), VIEW_CHANNEL | SEND_MESSAGES);
    // Below every role the guild had, just above @everyone.
    assert_eq!(position(guild), 0);
    assert_eq!(position(role), 1);
    assert!(position(players) > 1 && position(moderators) > 1);
    let member = sim.member(guild, sim.bot_user_id()).unwrap();
    assert_eq!(member.roles, vec![role]);
    assert_eq!(
        sim.permissions(guild, sim.bot_user_id(), None),
        EVERYONE_DEFAULT | VIEW_CHANNEL | SEND_MESSAGES
    );

    // An install without permissions makes no role.
    let other = sim.create_user_guild("Quiet Guild", owner).unwrap();
    assert_eq!(sim.install_bot(other, 0).unwrap(), None);
    assert!(
        sim.member(other, sim.bot_user_id())
            .unwrap()
            .roles
            .is_empty()
    );
}

#[tokio::test]
async fn a_role_is_created_at_the_bottom_and_can_be_moved() {
    let s = setup(MANAGE_ROLES);
    let (status, created) = s
        .rest
        .post(
            &format!("/guilds/{}/roles", s.guild),
            json!({"name": "Guests"}),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["position"], 1);
    let guests = Snowflake::new(created["id"].as_str().unwrap().parse().unwrap());
    let position = |id: Snowflake| {
        s.sim
            .roles(s.guild)
            .into_iter()
            .find(|r| r.id == id)
            .unwrap()
            .position
    };
    assert_eq!(position(s.bot_role), 2, "the bot's role moved up one");

    s.sim.set_role_position(s.guild, guests, 2).unwrap();
    assert_eq!((position(guests), position(s.bot_role)), (2, 1));
}

#[tokio::test]
async fn sending_needs_view_channel_then_send_messages() {
    let s = setup(VIEW_CHANNEL | SEND_MESSAGES);
    let hidden = s.hidden_channel("hidden");
    let muted = s.channel_denying("muted", SEND_MESSAGES);
    let send = |channel: Snowflake| {
        let rest = &s.rest;
        async move {
            rest.post(
                &format!("/channels/{channel}/messages"),
                json!({"content": "hi"}),
            )
            .await
        }
    };

    assert_eq!(send(hidden).await, (403, missing_access()));
    assert_eq!(send(muted).await, (403, missing_permissions()));
    let (status, body) = send(s.general).await;
    assert_eq!(status, 200, "{body}");
    assert!(s.sim.messages(hidden).is_empty() && s.sim.messages(muted).is_empty());

    // Reading a channel the bot cannot see is refused too.
    assert_eq!(
        s.rest.get(&format!("/channels/{hidden}")).await,
        (403, missing_access())
    );
}

#[tokio::test]
async fn history_without_read_message_history_is_empty() {
    let s = setup(VIEW_CHANNEL | SEND_MESSAGES | READ_MESSAGE_HISTORY);
    let forgetful = s.channel_denying("forgetful", READ_MESSAGE_HISTORY);
    let user = s.sim.create_user("Dana");
    s.sim.add_member(s.guild, user).unwrap();
    let seen = s
        .sim
        .post_user_message(s.general, user, "hello", Vec::new())
        .unwrap();
    let unseen = s
        .sim
        .post_user_message(forgetful, user, "hello", Vec::new())
        .unwrap();

    let (status, list) = s
        .rest
        .get(&format!("/channels/{}/messages", s.general))
        .await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["id"], seen.to_string());
    assert_eq!(
        s.rest.get(&format!("/channels/{forgetful}/messages")).await,
        (200, json!([]))
    );
    assert_eq!(
        s.rest
            .get(&format!("/channels/{forgetful}/messages/{unseen}"))
            .await,
        (403, missing_permissions())
    );
    let hidden = s.hidden_channel("hidden");
    assert_eq!(
        s.rest.get(&format!("/channels/{hidden}/messages")).await,
        (403, missing_access())
    );
}

#[tokio::test]
async fn deleting_anothers_message_needs_manage_messages() {
    let s = setup(VIEW_CHANNEL | SEND_MESSAGES | READ_MESSAGE_HISTORY);
    let user = s.sim.create_user("Dana");
    s.sim.add_member(s.guild, user).unwrap();
    let theirs = s
        .sim
        .post_user_message(s.general, user, "spam", Vec::new())
        .unwrap();
    let (_, mine) = s
        .rest
        .post(
            &format!("/channels/{}/messages", s.general),
            json!({"content": "mine"}),
        )
        .await;
    let mine = mine["id"].as_str().unwrap().to_owned();

    assert_eq!(
        s.rest
            .delete(&format!("/channels/{}/messages/{theirs}", s.general))
            .await,
        (403, missing_permissions())
    );
    assert_eq!(
        s.rest
            .delete(&format!("/channels/{}/messages/{mine}", s.general))
            .await
            .0,
        204,
        "its own message needs nothing more"
    );
    let moderated = s.channel(
        "moderated",
        &[(s.bot_role, OverwriteKind::Role, MANAGE_MESSAGES, 0)],
    );
    let spam = s
        .sim
        .post_user_message(moderated, user, "spam", Vec::new())
        .unwrap();
    assert_eq!(
        s.rest
            .delete(&format!("/channels/{moderated}/messages/{spam}"))
            .await
            .0,
        204
    );
    assert!(s.sim.message(s.general, theirs).is_some());
}

#[tokio::test]
async fn channels_need_manage_channels_where_they_are() {
    let s = setup(VIEW_CHANNEL | SEND_MESSAGES);
    let (status, body) = s
        .rest
        .post(
            &format!("/guilds/{}/channels", s.guild),
            json!({"name": "new"}),
        )
        .await;
    assert_eq!((status, body), (403, missing_permissions()));
    assert_eq!(
        s.rest
            .patch(&format!("/channels/{}", s.general), json!({"topic": "x"}))
            .await,
        (403, missing_permissions())
    );
    assert_eq!(
        s.rest.delete(&format!("/channels/{}", s.general)).await,
        (403, missing_permissions())
    );

    // MANAGE_CHANNELS granted in one channel covers that channel only.
    let managed = s.channel(
        "managed",
        &[(s.bot_role, OverwriteKind::Role, MANAGE_CHANNELS, 0)],
    );
    let (status, body) = s
        .rest
        .patch(&format!("/channels/{managed}"), json!({"topic": "ours"}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(s.rest.delete(&format!("/channels/{managed}")).await.0, 200);
    assert!(s.sim.channel(s.general).unwrap().topic.is_none());

    let s = setup(VIEW_CHANNEL | MANAGE_CHANNELS);
    let (status, body) = s
        .rest
        .post(
            &format!("/guilds/{}/channels", s.guild),
            json!({"name": "new"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn overwrites_need_manage_roles_and_grant_only_what_the_bot_holds() {
    let s = setup(VIEW_CHANNEL | SEND_MESSAGES | MANAGE_CHANNELS);
    let path = format!("/guilds/{}/channels", s.guild);
    let private = |allow: u64| {
        json!({"name": "private", "permission_overwrites": [
            {"id": s.guild.to_string(), "type": 0, "allow": "0", "deny": VIEW_CHANNEL.to_string()},
            {"id": s.bot_role.to_string(), "type": 0, "allow": allow.to_string(), "deny": "0"},
        ]})
    };
    assert_eq!(
        s.rest.post(&path, private(VIEW_CHANNEL)).await,
        (403, missing_permissions()),
        "overwrites need MANAGE_ROLES"
    );

    let s = setup(VIEW_CHANNEL | SEND_MESSAGES | MANAGE_CHANNELS | MANAGE_ROLES);
    let path = format!("/guilds/{}/channels", s.guild);
    let private = |allow: u64| {
        json!({"name": "private", "permission_overwrites": [
            {"id": s.guild.to_string(), "type": 0, "allow": "0", "deny": VIEW_CHANNEL.to_string()},
            {"id": s.bot_role.to_string(), "type": 0, "allow": allow.to_string(), "deny": "0"},
        ]})
    };
    assert_eq!(
        s.rest
            .post(&path, private(VIEW_CHANNEL | MANAGE_MESSAGES))
            .await,
        (403, missing_permissions()),
        "MANAGE_MESSAGES is not the bot's to give"
    );
    let (status, created) = s.rest.post(&path, private(VIEW_CHANNEL)).await;
    assert_eq!(status, 201, "{created}");
    let channel = created["id"].as_str().unwrap().to_owned();

    // One overwrite at a time: the same rule.
    let target = s
        .sim
        .create_role(s.guild, RoleSpec::new("Players", 0))
        .unwrap();
    let put = |allow: u64| {
        let rest = &s.rest;
        let path = format!("/channels/{channel}/permissions/{target}");
        async move {
            rest.put(
                &path,
                Some(json!({"type": 0, "allow": allow.to_string(), "deny": "0"})),
            )
            .await
        }
    };
    assert_eq!(put(MANAGE_MESSAGES).await, (403, missing_permissions()));
    assert_eq!(put(VIEW_CHANNEL | SEND_MESSAGES).await.0, 204);

    // An overwrite the bot does not touch may hold what the bot lacks.
    let owners = s.channel(
        "owners",
        &[(
            s.owner,
            OverwriteKind::Member,
            MANAGE_MESSAGES | VIEW_CHANNEL,
            0,
        )],
    );
    let keep = json!({"permission_overwrites": [
        {"id": s.owner.to_string(), "type": 1, "allow": (MANAGE_MESSAGES | VIEW_CHANNEL).to_string(), "deny": "0"},
        {"id": target.to_string(), "type": 0, "allow": SEND_MESSAGES.to_string(), "deny": "0"},
    ]});
    let (status, body) = s.rest.patch(&format!("/channels/{owners}"), keep).await;
    assert_eq!(status, 200, "{body}");
    let grant = json!({"permission_overwrites": [
        {"id": target.to_string(), "type": 0, "allow": MANAGE_MESSAGES.to_string(), "deny": "0"},
    ]});
    assert_eq!(
        s.rest.patch(&format!("/channels/{owners}"), grant).await,
        (403, missing_permissions())
    );
    // Taking an overwrite out, whatever it held, is not granting anything.
    let (status, body) = s
        .rest
        .patch(
            &format!("/channels/{owners}"),
            json!({"permission_overwrites": []}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// `PUT /channels/{channel}/permissions/{target}` allowing `allow` to a role.
async fn allow_role(
    rest: &Rest,
    channel: Snowflake,
    target: Snowflake,
    allow: u64,
) -> (u16, Value) {
    rest.put(
        &format!("/channels/{channel}/permissions/{target}"),
        Some(json!({"type": 0, "allow": allow.to_string(), "deny": "0"})),
    )
    .await
}

#[tokio::test]
async fn an_overwrite_of_the_bots_own_gives_it_nothing_to_grant() {
    let s = setup(VIEW_CHANNEL | SEND_MESSAGES | MANAGE_CHANNELS | MANAGE_ROLES);
    let players = s
        .sim
        .create_role(s.guild, RoleSpec::new("Players", 0))
        .unwrap();
    let bot = s.sim.bot_user_id();
    // The bot holds MANAGE_MESSAGES in these channels, through its role's overwrite
    // or its own, but not in the guild.
    let by_role = s.channel(
        "by-role",
        &[(s.bot_role, OverwriteKind::Role, MANAGE_MESSAGES, 0)],
    );
    let by_member = s.channel(
        "by-member",
        &[(bot, OverwriteKind::Member, MANAGE_MESSAGES, 0)],
    );
    for channel in [by_role, by_member] {
        assert_ne!(
            s.sim.permissions(s.guild, bot, Some(channel)) & MANAGE_MESSAGES,
            0
        );
        let before = s.sim.channel(channel).unwrap().permission_overwrites;
        assert_eq!(
            allow_role(&s.rest, channel, players, MANAGE_MESSAGES).await,
            (403, missing_permissions()),
            "one at a time"
        );
        let mut all: Vec<Value> = before
            .iter()
            .map(|o| json!({"id": o.id.to_string(), "type": u8::from(o.kind == OverwriteKind::Member), "allow": o.allow.to_string(), "deny": "0"}))
            .collect();
        all.push(json!({"id": players.to_string(), "type": 0, "allow": MANAGE_MESSAGES.to_string(), "deny": "0"}));
        assert_eq!(
            s.rest
                .patch(
                    &format!("/channels/{channel}"),
                    json!({"permission_overwrites": all}),
                )
                .await,
            (403, missing_permissions()),
            "all at once"
        );
        assert_eq!(
            s.sim.channel(channel).unwrap().permission_overwrites,
            before
        );
        // What it holds in the guild it still grants.
        let (status, body) = allow_role(&s.rest, channel, players, SEND_MESSAGES).await;
        assert_eq!(status, 204, "{body}");
    }
}

#[tokio::test]
async fn a_manage_roles_overwrite_for_the_bot_lets_it_grant_what_it_holds_in_the_channel() {
    let s = setup(VIEW_CHANNEL | SEND_MESSAGES | MANAGE_CHANNELS | MANAGE_ROLES);
    let players = s
        .sim
        .create_role(s.guild, RoleSpec::new("Players", 0))
        .unwrap();
    let bot = s.sim.bot_user_id();
    for (target, kind) in [
        (s.bot_role, OverwriteKind::Role),
        (bot, OverwriteKind::Member),
    ] {
        let channel = s.channel("delegated", &[(target, kind, MANAGE_MESSAGES, 0)]);
        assert_eq!(
            allow_role(&s.rest, channel, players, MANAGE_MESSAGES).await,
            (403, missing_permissions())
        );
        // An admin lets the bot manage this channel's permissions.
        s.sim
            .set_channel_overwrites(
                channel,
                vec![PermissionOverwrite {
                    id: target,
                    kind,
                    allow: MANAGE_MESSAGES | MANAGE_ROLES,
                    deny: 0,
                }],
            )
            .unwrap();
        let (status, body) = allow_role(&s.rest, channel, players, MANAGE_MESSAGES).await;
        assert_eq!(status, 204, "{body}");
        // Still nothing it lacks in the channel too.
        assert_eq!(
            allow_role(&s.rest, channel, players, MANAGE_MESSAGES | KICK_MEMBERS).await,
            (403, missing_permissions())
        );
    }

    // Without MANAGE_ROLES in the guild, the overwrite alone lets it manage them.
    let s = setup(VIEW_CHANNEL | SEND_MESSAGES | MANAGE_CHANNELS);
    let players = s
        .sim
        .create_role(s.guild, RoleSpec::new("Players", 0))
        .unwrap();
    let channel = s.channel(
        "delegated",
        &[(
            s.bot_role,
            OverwriteKind::Role,
            MANAGE_MESSAGES | MANAGE_ROLES,
            0,
        )],
    );
    let grant = json!({"permission_overwrites": [
        {"id": s.bot_role.to_string(), "type": 0, "allow": (MANAGE_MESSAGES | MANAGE_ROLES).to_string(), "deny": "0"},
        {"id": players.to_string(), "type": 0, "allow": MANAGE_MESSAGES.to_string(), "deny": "0"},
    ]});
    let (status, body) = s.rest.patch(&format!("/channels/{channel}"), grant).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        s.sim.channel(channel).unwrap().permission_overwrites.len(),
        2
    );
}

#[tokio::test]
async fn a_channel_in_a_category_grants_what_the_bot_holds_in_the_category() {
    let s = setup(VIEW_CHANNEL | SEND_MESSAGES | MANAGE_CHANNELS | MANAGE_ROLES);
    let players = s
        .sim
        .create_role(s.guild, RoleSpec::new("Players", 0))
        .unwrap();
    // In the category the bot may manage messages and may not mention everyone,
    // unlike in the guild.
    let mut spec = ChannelSpec::new("Campaigns", ChannelKind::Category);
    spec = spec.overwrite(PermissionOverwrite {
        id: s.bot_role,
        kind: OverwriteKind::Role,
        allow: MANAGE_MESSAGES,
        deny: MENTION_EVERYONE,
    });
    let category = s.sim.create_channel_with(s.guild, spec).unwrap();
    let session = s
        .sim
        .create_channel_with(
            s.guild,
            ChannelSpec::new("session-1", ChannelKind::Text).parent(category),
        )
        .unwrap();
    // The channel itself has no overwrites: in it the bot holds its guild permissions.
    assert_eq!(
        s.sim
            .permissions(s.guild, s.sim.bot_user_id(), Some(session)),
        s.sim.permissions(s.guild, s.sim.bot_user_id(), None)
    );

    let (status, body) = allow_role(&s.rest, session, players, MANAGE_MESSAGES).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(
        allow_role(
            &s.rest,
            session,
            players,
            MANAGE_MESSAGES | MENTION_EVERYONE
        )
        .await,
        (403, missing_permissions())
    );

    // A channel moved into the category with new overwrites in the same call is
    // measured in the category.
    let grant = |parent: Option<Snowflake>| {
        json!({"parent_id": parent.map(|p| p.to_string()), "permission_overwrites": [
            {"id": players.to_string(), "type": 0, "allow": MANAGE_MESSAGES.to_string(), "deny": "0"},
        ]})
    };
    assert_eq!(
        s.rest
            .patch(&format!("/channels/{}", s.general), grant(None))
            .await,
        (403, missing_permissions())
    );
    let (status, body) = s
        .rest
        .patch(&format!("/channels/{}", s.general), grant(Some(category)))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(s.sim.channel(s.general).unwrap().parent_id, Some(category));
}

#[tokio::test]
async fn roles_need_manage_roles_and_stay_below_the_bots_role() {
    let s = setup(VIEW_CHANNEL);
    let roles = format!("/guilds/{}/roles", s.guild);
    assert_eq!(
        s.rest.post(&roles, json!({"name": "Guests"})).await,
        (403, missing_permissions())
    );

    let s = setup(MANAGE_ROLES | SEND_MESSAGES);
    let roles = format!("/guilds/{}/roles", s.guild);
    assert_eq!(
        s.rest
            .post(
                &roles,
                json!({"name": "Mods", "permissions": MANAGE_MESSAGES.to_string()})
            )
            .await,
        (403, missing_permissions()),
        "a role may not get what the bot lacks"
    );
    let (status, guests) = s
        .rest
        .post(
            &roles,
            json!({"name": "Guests", "permissions": SEND_MESSAGES.to_string()}),
        )
        .await;
    assert_eq!(status, 200, "{guests}");
    let guests = guests["id"].as_str().unwrap().to_owned();
    assert_eq!(
        s.rest
            .patch(
                &format!("{roles}/{guests}"),
                json!({"permissions": MANAGE_MESSAGES.to_string()})
            )
            .await,
        (403, missing_permissions())
    );
    let (status, body) = s
        .rest
        .patch(&format!("{roles}/{guests}"), json!({"name": "Players"}))
        .await;
    assert_eq!(status, 200, "{body}");

    // The owner's role above the bot's: neither edited nor deleted.
    let admins = s
        .sim
        .create_role(s.guild, RoleSpec::new("Admins", 0))
        .unwrap();
    s.sim.set_role_position(s.guild, admins, 3).unwrap();
    assert_eq!(
        s.rest
            .patch(&format!("{roles}/{admins}"), json!({"name": "Mine"}))
            .await,
        (403, missing_permissions())
    );
    assert_eq!(
        s.rest.delete(&format!("{roles}/{admins}")).await,
        (403, missing_permissions())
    );
    assert_eq!(
        s.rest.delete(&format!("{roles}/{}", s.bot_role)).await,
        (403, missing_permissions()),
        "nor its own managed role"
    );
    assert_eq!(s.rest.delete(&format!("{roles}/{guests}")).await.0, 204);
}

#[tokio::test]
async fn member_roles_follow_the_hierarchy_even_with_manage_roles() {
    let s = setup(MANAGE_ROLES);
    let below = s
        .sim
        .create_role(s.guild, RoleSpec::new("Players", 0))
        .unwrap();
    let above = s
        .sim
        .create_role(s.guild, RoleSpec::new("Admins", 0))
        .unwrap();
    // Roles the sim makes land at the bottom: put "Admins" above the bot's role.
    s.sim.set_role_position(s.guild, above, 3).unwrap();
    let dana = s.sim.create_user("Dana");
    s.sim.add_member(s.guild, dana).unwrap();
    let path = |role: Snowflake| format!("/guilds/{}/members/{dana}/roles/{role}", s.guild);

    assert_eq!(
        s.rest.put(&path(above), None).await,
        (403, missing_permissions())
    );
    assert_eq!(
        s.rest.put(&path(s.bot_role), None).await,
        (403, missing_permissions()),
        "a managed role is nobody's to give"
    );
    assert_eq!(s.rest.put(&path(below), None).await.0, 204);
    assert_eq!(s.sim.member(s.guild, dana).unwrap().roles, vec![below]);

    // The same rules through a member edit.
    let edit = format!("/guilds/{}/members/{dana}", s.guild);
    assert_eq!(
        s.rest
            .patch(
                &edit,
                json!({"roles": [below.to_string(), above.to_string()]})
            )
            .await,
        (403, missing_permissions())
    );
    let (status, body) = s.rest.patch(&edit, json!({"roles": []})).await;
    assert_eq!(status, 200, "{body}");

    // Once an admin drags the bot's role above "Admins", it may give it.
    s.sim.set_role_position(s.guild, s.bot_role, 3).unwrap();
    assert_eq!(s.rest.put(&path(above), None).await.0, 204);
    assert_eq!(s.rest.delete(&path(above)).await.0, 204);

    // Without MANAGE_ROLES, not even a role below.
    let s = setup(VIEW_CHANNEL);
    let below = s
        .sim
        .create_role(s.guild, RoleSpec::new("Players", 0))
        .unwrap();
    let dana = s.member_with_role("Dana", below);
    assert_eq!(
        s.rest
            .delete(&format!("/guilds/{}/members/{dana}/roles/{below}", s.guild))
            .await,
        (403, missing_permissions())
    );
}

#[tokio::test]
async fn nicknames_need_manage_nicknames_and_a_lower_member() {
    let s = setup(CHANGE_NICKNAME);
    let dana = s.sim.create_user("Dana");
    s.sim.add_member(s.guild, dana).unwrap();
    let edit = |user: Snowflake| format!("/guilds/{}/members/{user}", s.guild);
    assert_eq!(
        s.rest.patch(&edit(dana), json!({"nick": "D"})).await,
        (403, missing_permissions())
    );
    let (status, body) = s
        .rest
        .patch(&edit(s.sim.bot_user_id()), json!({"nick": "Innkeeper"}))
        .await;
    assert_eq!(status, 200, "{body}");

    let s = setup(MANAGE_NICKNAMES);
    let dana = s.sim.create_user("Dana");
    s.sim.add_member(s.guild, dana).unwrap();
    let edit = |user: Snowflake| format!("/guilds/{}/members/{user}", s.guild);
    assert_eq!(s.rest.patch(&edit(dana), json!({"nick": "D"})).await.0, 200);
    assert_eq!(
        s.rest.patch(&edit(s.owner), json!({"nick": "Boss"})).await,
        (403, missing_permissions()),
        "the owner is above everyone"
    );
}

#[tokio::test]
async fn administrator_skips_permission_checks_but_not_the_hierarchy() {
    let s = setup(ADMINISTRATOR);
    let hidden = s.hidden_channel("hidden");
    let (status, body) = s
        .rest
        .post(
            &format!("/channels/{hidden}/messages"),
            json!({"content": "hi"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let above = s
        .sim
        .create_role(s.guild, RoleSpec::new("Admins", 0))
        .unwrap();
    s.sim.set_role_position(s.guild, above, 2).unwrap();
    assert_eq!(
        s.rest
            .delete(&format!("/guilds/{}/roles/{above}", s.guild))
            .await,
        (403, missing_permissions())
    );

    // The owner may do anything: the guilds `create_guild` makes.
    let sim = common::start();
    let guild = sim.create_guild("Bot's Own");
    let role = sim
        .create_role(guild, RoleSpec::new("Anyone", ALL))
        .unwrap();
    let dana = sim.create_user("Dana");
    sim.add_member(guild, dana).unwrap();
    let rest = Rest::new(&sim);
    assert_eq!(
        rest.put(
            &format!("/guilds/{guild}/members/{dana}/roles/{role}"),
            None
        )
        .await
        .0,
        204
    );
}

#[tokio::test]
async fn interactions_carry_the_bots_permissions_and_their_callbacks_are_not_checked() {
    let s = setup(VIEW_CHANNEL | SEND_MESSAGES);
    common::register_commands(&s.rest, &s.sim, s.guild).await;
    let muted = s.channel_denying("muted", SEND_MESSAGES);
    let dana = s.sim.create_user("Dana");
    s.sim.add_member(s.guild, dana).unwrap();
    let roll = s
        .sim
        .run_command(
            dana,
            muted,
            "roll",
            json!([{"name": "expression", "value": "1d20"}]),
        )
        .unwrap();
    let app_permissions: u64 = roll.payload()["app_permissions"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        app_permissions,
        s.sim.permissions(s.guild, s.sim.bot_user_id(), Some(muted))
    );
    assert_eq!(app_permissions & SEND_MESSAGES, 0);

    let (status, body) = s
        .rest
        .post(
            &format!("/interactions/{}/{}/callback", roll.id(), roll.token()),
            json!({"type": 4, "data": {"content": "17"}}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = s
        .rest
        .post(
            &format!("/webhooks/{}/{}", s.sim.application_id(), roll.token()),
            json!({"content": "and again"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn files_need_attach_files_replies_read_history_and_bulk_deletes_manage_messages() {
    // @everyone holds ATTACH_FILES and READ_MESSAGE_HISTORY; channels take them away.
    let s = setup(VIEW_CHANNEL | SEND_MESSAGES);
    let upload = |channel: Snowflake| {
        let body = "--B\r\nContent-Disposition: form-data; name=\"payload_json\"\r\nContent-Type: application/json\r\n\r\n{\"content\":\"the map\"}\r\n--B\r\nContent-Disposition: form-data; name=\"files[0]\"; filename=\"map.png\"\r\nContent-Type: image/png\r\n\r\nPNG\r\n--B--\r\n";
        s.rest
            .request(
                reqwest::Method::POST,
                &format!("/channels/{channel}/messages"),
            )
            .header("Content-Type", "multipart/form-data; boundary=B")
            .body(body)
            .send()
    };
    let no_files = s.channel_denying("no-files", ATTACH_FILES);
    let refused = upload(no_files).await.unwrap();
    assert_eq!(refused.status().as_u16(), 403);
    assert_eq!(
        refused.json::<Value>().await.unwrap(),
        missing_permissions()
    );
    assert_eq!(upload(s.general).await.unwrap().status().as_u16(), 200);

    // A reply needs READ_MESSAGE_HISTORY.
    let dana = s.sim.create_user("Dana");
    s.sim.add_member(s.guild, dana).unwrap();
    let forgetful = s.channel_denying("forgetful", READ_MESSAGE_HISTORY);
    for channel in [s.general, forgetful] {
        let asked = s
            .sim
            .post_user_message(channel, dana, "who rolls?", Vec::new())
            .unwrap();
        let (status, body) = s
            .rest
            .post(
                &format!("/channels/{channel}/messages"),
                json!({"content": "me", "message_reference": {"message_id": asked.to_string()}}),
            )
            .await;
        if channel == forgetful {
            assert_eq!((status, body), (403, missing_permissions()));
        } else {
            assert_eq!(status, 200, "{body}");
        }
    }

    let first = s
        .sim
        .post_user_message(s.general, dana, "a", Vec::new())
        .unwrap();
    let second = s
        .sim
        .post_user_message(s.general, dana, "b", Vec::new())
        .unwrap();
    let bulk = json!({"messages": [first.to_string(), second.to_string()]});
    assert_eq!(
        s.rest
            .post(
                &format!("/channels/{}/messages/bulk-delete", s.general),
                bulk.clone()
            )
            .await,
        (403, missing_permissions())
    );
    let s2 = setup(VIEW_CHANNEL | MANAGE_MESSAGES);
    let a = s2
        .sim
        .post_user_message(s2.general, s2.owner, "a", Vec::new())
        .unwrap();
    let b = s2
        .sim
        .post_user_message(s2.general, s2.owner, "b", Vec::new())
        .unwrap();
    let (status, body) = s2
        .rest
        .post(
            &format!("/channels/{}/messages/bulk-delete", s2.general),
            json!({"messages": [a.to_string(), b.to_string()]}),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    assert!(s.sim.message(s.general, first).is_some());
}

#[tokio::test]
async fn a_resolved_channel_carries_the_invoking_members_permissions() {
    let s = setup(VIEW_CHANNEL | SEND_MESSAGES);
    let (status, body) = s
        .rest
        .put(
            &format!(
                "/applications/{}/guilds/{}/commands",
                s.sim.application_id(),
                s.guild
            ),
            Some(json!([{
                "name": "where",
                "description": "Pick a channel",
                "type": 1,
                "options": [{"name": "channel", "description": "Which", "type": 7, "required": true}]
            }])),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let muted = s.channel_denying("muted", SEND_MESSAGES);
    let dana = s.sim.create_user("Dana");
    s.sim.add_member(s.guild, dana).unwrap();
    let asked = s
        .sim
        .run_command(
            dana,
            s.general,
            "where",
            json!([{"name": "channel", "value": muted.to_string()}]),
        )
        .unwrap();
    let resolved = &asked.payload()["data"]["resolved"]["channels"][muted.to_string()];
    assert_eq!(
        resolved["permissions"],
        s.sim.permissions(s.guild, dana, Some(muted)).to_string(),
        "Dana's, not the owner's ({}) nor the bot's",
        s.sim.permissions(s.guild, s.owner, Some(muted))
    );
    assert_ne!(
        resolved["permissions"],
        s.sim.permissions(s.guild, s.owner, Some(muted)).to_string()
    );
}

#[tokio::test]
async fn an_admin_closing_a_channel_to_the_bot_takes_effect_at_once() {
    let s = setup(VIEW_CHANNEL | SEND_MESSAGES);
    let path = format!("/channels/{}/messages", s.general);
    assert_eq!(s.rest.post(&path, json!({"content": "hi"})).await.0, 200);
    s.sim
        .set_channel_overwrites(
            s.general,
            vec![PermissionOverwrite {
                id: s.sim.bot_user_id(),
                kind: OverwriteKind::Member,
                allow: 0,
                deny: VIEW_CHANNEL,
            }],
        )
        .unwrap();
    assert_eq!(
        s.rest.post(&path, json!({"content": "hi"})).await,
        (403, missing_access())
    );
    assert_eq!(
        s.sim
            .channel(s.general)
            .unwrap()
            .permission_overwrites
            .len(),
        1
    );
}
