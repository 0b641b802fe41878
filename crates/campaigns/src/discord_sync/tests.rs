//! The planner, without I/O.

use super::*;
use crate::domain::EventSeriesId;
use crate::repo::EventState;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

const NOW: &str = "2026-01-01T12:00:00Z";

fn settings() -> DiscordSettings {
    let mut s = DiscordSettings::new(GuildId::new(1));
    s.organiser_role = Some(RoleId::new(2));
    s
}

fn event(id: &str, time: &str, users: &[u64], hosts: &[u64]) -> EventState {
    EventState {
        id: MeetupEventId::parse(id).unwrap(),
        name: format!("Tomb of {id}"),
        time: t(time),
        link: format!("https://meetup.example/{id}"),
        users: users
            .iter()
            .map(|u| MeetupUserId::new(*u).unwrap())
            .collect(),
        hosts: hosts
            .iter()
            .map(|u| MeetupUserId::new(*u).unwrap())
            .collect(),
    }
}

fn series(events: Vec<EventState>) -> SeriesState {
    SeriesState {
        series_type: Some(SeriesType::Adventure),
        ..SeriesState::bare(EventSeriesId::parse("s1").unwrap(), events)
    }
}

/// Roles that grant nothing, as the guild's role list gives them.
fn plain_roles<const N: usize>(ids: [u64; N]) -> impl Iterator<Item = (RoleId, GuildRole)> {
    ids.into_iter().map(|id| {
        let id = RoleId::new(id);
        (
            id,
            GuildRole {
                id,
                permissions: 0,
                managed: false,
                position: 1,
            },
        )
    })
}

fn discord() -> DiscordState {
    DiscordState::new(
        GuildId::new(1),
        UserId::new(99),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        // The bot owns the guild, as in discord-sim's demo: no role hierarchy binds it.
        Some(UserId::new(99)),
    )
}

fn links(pairs: &[(u64, u64)]) -> BTreeMap<MeetupUserId, UserId> {
    pairs
        .iter()
        .map(|(m, d)| (MeetupUserId::new(*m).unwrap(), UserId::new(*d)))
        .collect()
}

/// Channels 7 and 8 are managed (`/manage-channel`); no game role is known.
fn plan(
    s: &SeriesState,
    settings: &DiscordSettings,
    discord: &DiscordState,
    links: &BTreeMap<MeetupUserId, UserId>,
    extras: &BTreeMap<MeetupEventId, EventExtras>,
) -> Option<Step> {
    let managed = BTreeSet::from([ChannelId::new(7), ChannelId::new(8)]);
    plan_with(
        s,
        settings,
        discord,
        links,
        extras,
        &managed,
        &BTreeSet::new(),
    )
}

fn input<'a>(
    settings: &'a DiscordSettings,
    discord: &'a DiscordState,
    links: &'a BTreeMap<MeetupUserId, UserId>,
    extras: &'a BTreeMap<MeetupEventId, EventExtras>,
    managed: &'a BTreeSet<ChannelId>,
    game_roles: &'a BTreeSet<RoleId>,
) -> PlanInput<'a> {
    PlanInput {
        settings,
        discord,
        links,
        extras,
        managed,
        game_roles,
        now: t(NOW),
    }
}

fn plan_with(
    s: &SeriesState,
    settings: &DiscordSettings,
    discord: &DiscordState,
    links: &BTreeMap<MeetupUserId, UserId>,
    extras: &BTreeMap<MeetupEventId, EventExtras>,
    managed: &BTreeSet<ChannelId>,
    game_roles: &BTreeSet<RoleId>,
) -> Option<Step> {
    let mut categories = Categories::new(settings, discord);
    plan_series(
        s,
        input(settings, discord, links, extras, managed, game_roles),
        &mut categories,
    )
}

/// A series set up with channel 10, guest role 20 and host role 21, as the planner
/// would leave it (topic and overwrites in line).
fn set_up(s: &mut SeriesState, d: &mut DiscordState, settings: &DiscordSettings) {
    s.channel = Some(ChannelId::new(10));
    s.guest_role = Some(RoleId::new(20));
    s.host_role = Some(RoleId::new(21));
    let next = s
        .events
        .iter()
        .find(|e| e.time >= t(NOW))
        .or(s.events.last())
        .unwrap();
    d.channels.insert(
        ChannelId::new(10),
        GuildChannel {
            id: ChannelId::new(10),
            name: "tomb".into(),
            kind: Some(ChannelKind::Text),
            parent_id: None,
            topic: Some(topic(next.time, &next.link)),
            overwrites: overwrites(
                settings,
                d.bot,
                Some(RoleId::new(20)),
                Some(RoleId::new(21)),
                ChannelKind::Text,
            ),
        },
    );
    d.roles.extend(plain_roles([20, 21]));
}

#[test]
fn a_new_series_gets_a_channel_and_roles_and_a_past_one_nothing() {
    let s = series(vec![event("e1", "2026-01-05T18:00:00Z", &[], &[])]);
    let step = plan(&s, &settings(), &discord(), &links(&[]), &BTreeMap::new());
    assert_eq!(
        step,
        Some(Step::Create(Creation {
            text: Some(NewChannel {
                name: "tomb-of-e1".into(),
                parent: None
            }),
            reuse: None,
            roles: Some(("Tomb of e1".into(), "Tomb of e1 (host)".into())),
            voice: None,
        }))
    );
    let past = series(vec![event("e1", "2025-12-05T18:00:00Z", &[], &[])]);
    assert_eq!(
        plan(
            &past,
            &settings(),
            &discord(),
            &links(&[]),
            &BTreeMap::new()
        ),
        None
    );
}

#[test]
fn online_series_get_a_voice_channel_and_channel_shortcodes_are_reused() {
    let mut s = series(vec![event("e1", "2026-01-05T18:00:00Z", &[], &[])]);
    s.is_online = true;
    let mut d = discord();
    d.channels.insert(
        ChannelId::new(7),
        GuildChannel {
            id: ChannelId::new(7),
            name: "old".into(),
            kind: Some(ChannelKind::Text),
            parent_id: Some(ChannelId::new(3)),
            topic: None,
            overwrites: Vec::new(),
        },
    );
    let extras = BTreeMap::from([(
        MeetupEventId::parse("e1").unwrap(),
        EventExtras {
            channel: Some(ChannelId::new(7)),
            ..EventExtras::default()
        },
    )]);
    let Some(Step::Create(c)) = plan(&s, &settings(), &d, &links(&[]), &extras) else {
        panic!("expected a creation");
    };
    assert_eq!(c.reuse, Some(ChannelId::new(7)));
    assert_eq!(c.text, None);
    assert_eq!(
        c.voice,
        Some(NewChannel {
            name: "Tomb of e1".into(),
            parent: Some(ChannelId::new(3))
        })
    );
    // A shortcode naming a managed channel that is not in the guild is a skip.
    let gone = BTreeMap::from([(
        MeetupEventId::parse("e1").unwrap(),
        EventExtras {
            channel: Some(ChannelId::new(8)),
            ..EventExtras::default()
        },
    )]);
    assert!(matches!(
        plan(&s, &settings(), &d, &links(&[]), &gone),
        Some(Step::Skip(_))
    ));
}

#[test]
fn roles_go_to_linked_rsvps_and_hosts_except_removed_and_withdrawn_lose_theirs() {
    let settings = settings();
    let mut d = discord();
    // Meetup 1..=4 linked to Discord 101..=104; 5 is not linked.
    let l = links(&[(1, 101), (2, 102), (3, 103), (4, 104)]);
    let mut s = series(vec![event(
        "e1",
        "2026-01-05T18:00:00Z",
        &[1, 2, 3, 5],
        &[4],
    )]);
    set_up(&mut s, &mut d, &settings);
    s.removed_users.insert(UserId::new(103));
    for u in [101, 102, 103, 104, 105, 106] {
        d.members.insert(UserId::new(u), BTreeSet::new());
    }
    // 102 already has the role; 105 has it without being linked (added by hand); 106
    // is linked... no: 106 is not linked either. 104 (the host) holds the guest role.
    d.members
        .get_mut(&UserId::new(102))
        .unwrap()
        .insert(RoleId::new(20));
    d.members
        .get_mut(&UserId::new(105))
        .unwrap()
        .insert(RoleId::new(20));
    d.members
        .get_mut(&UserId::new(104))
        .unwrap()
        .insert(RoleId::new(20));
    // 107 is linked (Meetup 7), got the role from the sync and withdrew; 108 is
    // linked too and holds the role without an RSVP, but a host added them by hand.
    let mut l = l;
    l.insert(MeetupUserId::new(7).unwrap(), UserId::new(107));
    l.insert(MeetupUserId::new(8).unwrap(), UserId::new(108));
    s.synced_guests.insert(UserId::new(107));
    d.members
        .insert(UserId::new(107), BTreeSet::from([RoleId::new(20)]));
    d.members
        .insert(UserId::new(108), BTreeSet::from([RoleId::new(20)]));
    let Some(Step::Update(changes)) = plan(&s, &settings, &d, &l, &BTreeMap::new()) else {
        panic!("expected an update");
    };
    assert_eq!(changes.edits, Vec::new());
    assert_eq!(
        changes.grants,
        vec![
            (UserId::new(101), RoleId::new(20)),
            (UserId::new(104), RoleId::new(21))
        ]
    );
    assert_eq!(changes.revokes, vec![(UserId::new(107), RoleId::new(20))]);
    let announce = changes.announce.unwrap();
    assert_eq!(
        announce.mentions.users,
        vec![UserId::new(101), UserId::new(104)]
    );
    assert!(announce.content.contains("<@101>") && announce.content.contains("<@104>"));
}

#[test]
fn removed_hosts_get_no_host_role_and_no_announcement() {
    let settings = settings();
    let mut d = discord();
    // Meetup 4 and 9 host; 9 was removed from the hosts by hand (`/hosts remove`).
    let l = links(&[(1, 101), (4, 104), (9, 109)]);
    let mut s = series(vec![event("e1", "2026-01-05T18:00:00Z", &[1], &[4, 9])]);
    set_up(&mut s, &mut d, &settings);
    s.removed_hosts.insert(UserId::new(109));
    for u in [101, 104, 109] {
        d.members.insert(UserId::new(u), BTreeSet::new());
    }
    let Some(Step::Update(changes)) = plan(&s, &settings, &d, &l, &BTreeMap::new()) else {
        panic!("expected an update");
    };
    assert_eq!(
        changes.grants,
        vec![
            (UserId::new(101), RoleId::new(20)),
            (UserId::new(104), RoleId::new(21))
        ]
    );
    let announce = changes.announce.unwrap();
    assert_eq!(
        announce.mentions.users,
        vec![UserId::new(101), UserId::new(104)]
    );
    assert!(!announce.content.contains("<@109>"), "{}", announce.content);
}

/// Tavern's own account linked to a Meetup member (before `/link` refused it) that
/// RSVPs and hosts gets no role and no welcome.
#[test]
fn the_bot_linked_to_a_meetup_member_gets_no_role_and_no_welcome() {
    let settings = settings();
    let mut d = discord();
    let l = links(&[(1, 101), (9, 99)]);
    let mut s = series(vec![event("e1", "2026-01-05T18:00:00Z", &[1, 9], &[9])]);
    set_up(&mut s, &mut d, &settings);
    for u in [101, 99] {
        d.members.insert(UserId::new(u), BTreeSet::new());
    }
    let Some(Step::Update(changes)) = plan(&s, &settings, &d, &l, &BTreeMap::new()) else {
        panic!("expected an update");
    };
    assert_eq!(changes.grants, vec![(UserId::new(101), RoleId::new(20))]);
    let announce = changes.announce.unwrap();
    assert_eq!(announce.mentions.users, vec![UserId::new(101)]);
}

#[test]
fn a_new_host_is_told_they_host_and_players_are_welcomed_as_before() {
    let u = UserId::new;
    // Only players: the welcome players always had.
    let players = announcement(&[u(1), u(2)], &[], &[u(9)]).unwrap();
    assert_eq!(players.content, "Welcome to the table, <@1>, <@2>!");
    assert_eq!(players.mentions.users, vec![u(1), u(2)]);
    // A new host alone, with no one else hosting.
    let alone = announcement(&[], &[u(4)], &[]).unwrap();
    assert_eq!(alone.content, "<@4>, you host this game.");
    // A new host who also RSVP'd, beside a player, with two hosts already there.
    let both = announcement(&[u(1), u(4)], &[u(4)], &[u(7), u(8)]).unwrap();
    assert_eq!(
        both.content,
        "Welcome to the table, <@1>!\n<@4>, you host this game. Your co-hosts: <@7>, <@8>."
    );
    assert_eq!(
        both.mentions.users,
        vec![u(1), u(4)],
        "co-hosts are not pinged"
    );
    // Two new hosts together.
    let two = announcement(&[], &[u(4), u(5)], &[u(7)]).unwrap();
    assert_eq!(
        two.content,
        "<@4>, <@5>, you host this game together. Your co-host: <@7>."
    );
    assert!(announcement(&[], &[], &[u(7)]).is_none());
}

#[test]
fn someone_welcomed_before_gets_the_role_back_without_a_second_welcome() {
    let settings = settings();
    let mut d = discord();
    // 101 was welcomed as a player and lost the role (unlinked), 104 was welcomed as
    // a host; both are linked again. 102 is new.
    let l = links(&[(1, 101), (2, 102), (4, 104)]);
    let mut s = series(vec![event("e1", "2026-01-05T18:00:00Z", &[1, 2], &[4])]);
    set_up(&mut s, &mut d, &settings);
    s.welcomed.players.insert(UserId::new(101));
    s.welcomed.hosts.insert(UserId::new(104));
    for u in [101, 102, 104] {
        d.members.insert(UserId::new(u), BTreeSet::new());
    }
    let Some(Step::Update(changes)) = plan(&s, &settings, &d, &l, &BTreeMap::new()) else {
        panic!("expected an update");
    };
    assert_eq!(
        changes.grants,
        vec![
            (UserId::new(101), RoleId::new(20)),
            (UserId::new(102), RoleId::new(20)),
            (UserId::new(104), RoleId::new(21))
        ]
    );
    let announce = changes.announce.unwrap();
    assert_eq!(announce.content, "Welcome to the table, <@102>!");
    assert_eq!(announce.mentions.users, vec![UserId::new(102)]);

    // Without 102, nothing is announced at all.
    s.removed_users.insert(UserId::new(102));
    let Some(Step::Update(changes)) = plan(&s, &settings, &d, &l, &BTreeMap::new()) else {
        panic!("expected an update");
    };
    assert_eq!(changes.grants.len(), 2);
    assert_eq!(changes.announce, None);
}

#[test]
fn an_unchanged_series_plans_nothing() {
    let settings = settings();
    let mut d = discord();
    let l = links(&[(1, 101), (4, 104)]);
    let mut s = series(vec![event("e1", "2026-01-05T18:00:00Z", &[1], &[4])]);
    set_up(&mut s, &mut d, &settings);
    d.members
        .insert(UserId::new(101), BTreeSet::from([RoleId::new(20)]));
    d.members
        .insert(UserId::new(104), BTreeSet::from([RoleId::new(21)]));
    let Some(Step::Update(changes)) = plan(&s, &settings, &d, &l, &BTreeMap::new()) else {
        panic!("expected an update");
    };
    assert!(changes.is_empty(), "{changes:?}");
}

#[test]
fn topic_and_permissions_are_corrected_only_when_they_differ() {
    let settings = settings();
    let mut d = discord();
    let mut s = series(vec![
        event("e1", "2025-12-20T18:00:00Z", &[], &[]),
        event("e2", "2026-01-05T18:00:00Z", &[], &[]),
    ]);
    set_up(&mut s, &mut d, &settings);
    let channel = d.channels.get_mut(&ChannelId::new(10)).unwrap();
    channel.topic = Some("old".into());
    channel.overwrites.reverse(); // the order does not matter
    let Some(Step::Update(changes)) = plan(&s, &settings, &d, &links(&[]), &BTreeMap::new()) else {
        panic!("expected an update");
    };
    assert_eq!(changes.edits.len(), 1);
    let (_, edit) = &changes.edits[0];
    assert_eq!(
        edit.topic.as_deref(),
        Some("Next session: Mon 5 Jan 2026, 18:00 UTC https://meetup.example/e2")
    );
    assert_eq!(edit.overwrites, None);
    assert_eq!(edit.parent_id, None);
}

#[test]
fn categories_fill_in_order_and_fall_back_at_fifty() {
    let mut settings = settings();
    let (full, spare) = (ChannelId::new(30), ChannelId::new(31));
    settings.categories = vec![full, spare];
    let mut d = discord();
    fill(&mut d, full, CATEGORY_LIMIT as u64);
    let s = series(vec![event("e1", "2026-01-05T18:00:00Z", &[], &[])]);
    let Some(Step::Create(c)) = plan(&s, &settings, &d, &links(&[]), &BTreeMap::new()) else {
        panic!("expected a creation");
    };
    assert_eq!(c.text.unwrap().parent, Some(spare));
    // One-shot categories win for adventures when set.
    settings.one_shot_categories = vec![ChannelId::new(40)];
    assert_eq!(
        categories_for(&settings, SeriesType::Adventure),
        &[ChannelId::new(40)]
    );
    assert_eq!(
        categories_for(&settings, SeriesType::Campaign),
        &[full, spare]
    );
    // Room is counted across series of one run.
    let mut categories = Categories::new(&settings, &d);
    assert_eq!(categories.take(&[full, spare]), Some(spare));
    for _ in 1..CATEGORY_LIMIT {
        assert_eq!(categories.take(&[full, spare]), Some(spare));
    }
    assert_eq!(categories.take(&[full, spare]), None);
}

#[test]
fn a_campaign_moves_out_of_the_one_shot_category() {
    let mut settings = settings();
    settings.categories = vec![ChannelId::new(30)];
    settings.one_shot_categories = vec![ChannelId::new(40)];
    let mut d = discord();
    let mut s = series(vec![event("e1", "2026-01-05T18:00:00Z", &[], &[])]);
    set_up(&mut s, &mut d, &settings);
    d.channels.get_mut(&ChannelId::new(10)).unwrap().parent_id = Some(ChannelId::new(40));
    let Some(Step::Update(c)) = plan(&s, &settings, &d, &links(&[]), &BTreeMap::new()) else {
        panic!("expected an update");
    };
    assert!(c.edits.is_empty(), "an adventure stays: {c:?}");
    s.series_type = Some(SeriesType::Campaign);
    let Some(Step::Update(c)) = plan(&s, &settings, &d, &links(&[]), &BTreeMap::new()) else {
        panic!("expected an update");
    };
    assert_eq!(c.edits[0].1.parent_id, Some(Some(ChannelId::new(30))));
}

#[test]
fn a_channel_deleted_by_hand_is_skipped() {
    let settings = settings();
    let mut d = discord();
    let mut s = series(vec![event("e1", "2026-01-05T18:00:00Z", &[], &[])]);
    set_up(&mut s, &mut d, &settings);
    d.channels.clear();
    assert!(matches!(
        plan(&s, &settings, &d, &links(&[]), &BTreeMap::new()),
        Some(Step::Skip(_))
    ));
}

#[test]
fn the_bot_is_asked_for_every_permission_its_overwrites_grant() {
    for kind in [ChannelKind::Text, ChannelKind::Voice] {
        for o in overwrites(
            &settings(),
            UserId::new(99),
            Some(RoleId::new(20)),
            Some(RoleId::new(21)),
            kind,
        ) {
            assert_eq!(
                o.allow & !BOT_PERMISSIONS,
                0,
                "{kind:?}: {o:?} grants what the bot is not asked for"
            );
        }
    }
    assert_ne!(BOT_PERMISSIONS & permissions::MANAGE_ROLES, 0);
    assert_ne!(BOT_PERMISSIONS & permissions::MENTION_EVERYONE, 0);
}

#[test]
fn game_channels_are_private() {
    let o = overwrites(
        &settings(),
        UserId::new(99),
        Some(RoleId::new(20)),
        Some(RoleId::new(21)),
        ChannelKind::Text,
    );
    let everyone = o
        .iter()
        .find(|o| o.target == OverwriteTarget::Role(RoleId::new(1)))
        .unwrap();
    assert_eq!(
        everyone.deny & permissions::VIEW_CHANNEL,
        permissions::VIEW_CHANNEL
    );
    for target in [
        OverwriteTarget::Role(RoleId::new(20)),
        OverwriteTarget::Role(RoleId::new(21)),
        OverwriteTarget::Role(RoleId::new(2)),
        OverwriteTarget::Member(UserId::new(99)),
    ] {
        let o = o.iter().find(|o| o.target == target).unwrap();
        assert_ne!(o.allow & permissions::VIEW_CHANNEL, 0, "{target:?}");
    }
}

#[test]
fn names_topics_and_free_spots_read_well() {
    assert_eq!(channel_name("Tomb of Horrors!", "x"), "tomb-of-horrors");
    assert_eq!(channel_name("  ***  ", "game-s1"), "game-s1");
    assert_eq!(channel_name(&"a".repeat(300), "x").len(), 100);
    let mut s = series(vec![
        event("e1", "2026-01-05T18:00:00Z", &[1, 2], &[]),
        event("e2", "2026-01-06T18:00:00Z", &[1, 2], &[]),
        event("e3", "2025-12-06T18:00:00Z", &[], &[]),
        event("e4", "2026-01-07T18:00:00Z", &[], &[]),
    ]);
    s.events[0].name = "Open".into();
    let extras = BTreeMap::from([
        (
            MeetupEventId::parse("e1").unwrap(),
            EventExtras {
                max_tickets: Some(5),
                seats_taken: Some(2),
                ..EventExtras::default()
            },
        ),
        (
            MeetupEventId::parse("e2").unwrap(),
            EventExtras {
                max_tickets: Some(2),
                seats_taken: Some(2),
                ..EventExtras::default()
            },
        ),
        // Its RSVPs were not read: its free seats are unknown.
        (
            MeetupEventId::parse("e4").unwrap(),
            EventExtras {
                max_tickets: Some(4),
                ..EventExtras::default()
            },
        ),
    ]);
    let text = free_spots(&[s], &extras, t(NOW));
    assert_eq!(
        text,
        "**Free spots**\n- **Open** (Mon 5 Jan, 18:00 UTC): 3 of 5 seats free <https://meetup.example/e1>"
    );
    assert_eq!(
        free_spots(&[], &extras, t(NOW)),
        "**Free spots**\nNo open seats right now."
    );
}

#[test]
fn role_shortcodes_go_to_linked_rsvps_of_their_event_once() {
    let settings = settings();
    let mut d = discord();
    let l = links(&[(1, 101), (2, 102)]);
    let mut s = series(vec![event("e1", "2026-01-05T18:00:00Z", &[1, 2], &[])]);
    set_up(&mut s, &mut d, &settings);
    let extra_role = RoleId::new(50);
    d.roles.extend(plain_roles([50]));
    d.members.insert(
        UserId::new(101),
        BTreeSet::from([RoleId::new(20), extra_role]),
    );
    d.members
        .insert(UserId::new(102), BTreeSet::from([RoleId::new(20)]));
    let extras = BTreeMap::from([(
        MeetupEventId::parse("e1").unwrap(),
        EventExtras {
            roles: vec![extra_role, RoleId::new(51)], // 51 is not a role of the guild
            ..EventExtras::default()
        },
    )]);
    let Some(Step::Update(changes)) = plan(&s, &settings, &d, &l, &extras) else {
        panic!("expected an update");
    };
    assert_eq!(changes.grants, vec![(UserId::new(102), extra_role)]);
    assert_eq!(changes.announce, None, "a shortcode role is not a newcomer");
}

#[test]
fn a_voice_channel_goes_beside_its_text_channel_unless_that_category_is_full() {
    let mut settings = settings();
    let (almost_full, spare) = (ChannelId::new(30), ChannelId::new(31));
    settings.categories = vec![almost_full, spare];
    let mut d = discord();
    fill(&mut d, almost_full, CATEGORY_LIMIT as u64 - 1);
    let mut s = series(vec![event("e1", "2026-01-05T18:00:00Z", &[], &[])]);
    s.is_online = true;
    let Some(Step::Create(c)) = plan(&s, &settings, &d, &links(&[]), &BTreeMap::new()) else {
        panic!("expected a creation");
    };
    assert_eq!(c.text.unwrap().parent, Some(almost_full));
    assert_eq!(c.voice.unwrap().parent, Some(spare));
    // With room, both go together.
    d.channels.remove(&ChannelId::new(1000));
    let Some(Step::Create(c)) = plan(&s, &settings, &d, &links(&[]), &BTreeMap::new()) else {
        panic!("expected a creation");
    };
    assert_eq!(c.text.unwrap().parent, Some(almost_full));
    assert_eq!(c.voice.unwrap().parent, Some(almost_full));
}

/// `count` text channels in `category` of the guild view `d`.
fn fill(d: &mut DiscordState, category: ChannelId, count: u64) {
    for i in 0..count {
        d.channels.insert(
            ChannelId::new(1000 + i),
            GuildChannel {
                id: ChannelId::new(1000 + i),
                name: format!("c{i}"),
                kind: Some(ChannelKind::Text),
                parent_id: Some(category),
                topic: None,
                overwrites: Vec::new(),
            },
        );
    }
}

#[test]
fn a_running_session_keeps_its_players_until_it_is_over() {
    // Session N started at 11:45 (NOW is 12:00), session N+1 is already on Meetup;
    // Alice (Meetup 1, Discord 101) RSVP'd only to N and got the guest role from a sync.
    let settings = settings();
    let mut d = discord();
    let l = links(&[(1, 101), (2, 102)]);
    let mut s = series(vec![
        event("n", "2026-01-01T11:45:00Z", &[1], &[]),
        event("n1", "2026-01-08T11:45:00Z", &[2], &[]),
    ]);
    set_up(&mut s, &mut d, &settings);
    s.synced_guests.insert(UserId::new(101));
    d.members
        .insert(UserId::new(101), BTreeSet::from([RoleId::new(20)]));
    d.members
        .insert(UserId::new(102), BTreeSet::from([RoleId::new(20)]));
    let at = |now: &str| {
        let mut categories = Categories::new(&settings, &d);
        plan_series(
            &s,
            PlanInput {
                now: t(now),
                ..input(
                    &settings,
                    &d,
                    &l,
                    &BTreeMap::new(),
                    &BTreeSet::new(),
                    &BTreeSet::new(),
                )
            },
            &mut categories,
        )
    };
    let Some(Step::Update(during)) = at(NOW) else {
        panic!("expected an update");
    };
    assert_eq!(during.revokes, Vec::new(), "Alice keeps her seat mid-game");
    assert!(during.is_empty(), "{during:?}");
    // Once the session is over (start + SESSION_GRACE), the role goes.
    let Some(Step::Update(after)) = at("2026-01-01T23:45:00Z") else {
        panic!("expected an update");
    };
    assert_eq!(after.revokes, vec![(UserId::new(101), RoleId::new(20))]);

    // A series whose only session is running is still synced (its players keep
    // their role, its topic names that session) until the session is over.
    let mut only = series(vec![event("n", "2026-01-01T11:45:00Z", &[1], &[])]);
    let mut d2 = discord();
    set_up(&mut only, &mut d2, &settings);
    assert!(matches!(
        plan(&only, &settings, &d2, &l, &BTreeMap::new()),
        Some(Step::Update(_))
    ));
}

#[test]
fn shortcodes_hand_out_no_privileged_role_and_take_over_only_managed_channels() {
    let mut settings = settings(); // the organisers' role is 2
    settings.admin_role = Some(RoleId::new(3));
    let mut d = discord();
    let l = links(&[(1, 101)]);
    let mut s = series(vec![event("e1", "2026-01-05T18:00:00Z", &[1], &[])]);
    set_up(&mut s, &mut d, &settings);
    // 30 is another game's guest role, 50 an ordinary role, 1 is @everyone, 60 the
    // moderators' (Ban Members), 70 a bot's own role (an integration manages it).
    d.roles.extend(plain_roles([2, 3, 30, 1]));
    let role = |id: u64, permissions: u64, managed: bool| GuildRole {
        id: RoleId::new(id),
        permissions,
        managed,
        position: 1,
    };
    for r in [
        role(50, permissions::SEND_MESSAGES, false),
        role(
            60,
            permissions::SEND_MESSAGES | permissions::BAN_MEMBERS,
            false,
        ),
        role(70, permissions::SEND_MESSAGES, true),
    ] {
        d.roles.insert(r.id, r);
    }
    d.members
        .insert(UserId::new(101), BTreeSet::from([RoleId::new(20)]));
    let game_roles = BTreeSet::from([20, 21, 30].map(RoleId::new));
    let asked = [2, 3, 20, 21, 30, 1, 60, 70, 50].map(RoleId::new).to_vec();
    let extras = BTreeMap::from([(
        MeetupEventId::parse("e1").unwrap(),
        EventExtras {
            roles: asked,
            channel: Some(ChannelId::new(40)), // #general, not managed
            ..EventExtras::default()
        },
    )]);
    let managed = BTreeSet::new();
    let Some(Step::Update(changes)) =
        plan_with(&s, &settings, &d, &l, &extras, &managed, &game_roles)
    else {
        panic!("expected an update");
    };
    assert_eq!(changes.grants, vec![(UserId::new(101), RoleId::new(50))]);
    let refused = refused_shortcodes(&s, input(&settings, &d, &l, &extras, &managed, &game_roles));
    let codes: Vec<&str> = refused.iter().map(|r| r.shortcode.as_str()).collect();
    // The series has its channel already: its `[channel]` no longer matters.
    assert_eq!(
        codes,
        [
            "[role 2]",
            "[role 3]",
            "[role 20]",
            "[role 21]",
            "[role 30]",
            "[role 1]",
            "[role 60]",
            "[role 70]"
        ]
    );
    assert_eq!(refused[0].record(), "e1:role:2");
    assert!(refused[6].why.contains("moderator"), "{:?}", refused[6]);
    assert!(refused[7].why.contains("integration"), "{:?}", refused[7]);

    // A new series naming an unmanaged channel gets its own channel instead.
    let fresh = series(vec![event("e1", "2026-01-05T18:00:00Z", &[1], &[])]);
    let mut d = discord();
    d.channels.insert(
        ChannelId::new(40),
        GuildChannel {
            id: ChannelId::new(40),
            name: "general".into(),
            kind: Some(ChannelKind::Text),
            parent_id: None,
            topic: Some("Say hi".into()),
            overwrites: Vec::new(),
        },
    );
    let Some(Step::Create(c)) =
        plan_with(&fresh, &settings, &d, &l, &extras, &managed, &game_roles)
    else {
        panic!("expected a creation");
    };
    assert_eq!(c.reuse, None);
    assert!(c.text.is_some());
    let refused = refused_shortcodes(
        &fresh,
        input(&settings, &d, &l, &extras, &managed, &game_roles),
    );
    assert_eq!(refused[0].shortcode, "[channel 40]");
    assert_eq!(refused[0].record(), "e1:channel:40");
    // Marked with `/manage-channel`, it is taken over.
    let managed = BTreeSet::from([ChannelId::new(40)]);
    let Some(Step::Create(c)) =
        plan_with(&fresh, &settings, &d, &l, &extras, &managed, &game_roles)
    else {
        panic!("expected a creation");
    };
    assert_eq!(c.reuse, Some(ChannelId::new(40)));
    assert_eq!(c.text, None);
}

#[test]
fn a_managed_channel_taken_over_keeps_its_topic_category_and_overwrites() {
    let mut settings = settings();
    settings.categories = vec![ChannelId::new(60)];
    let mut d = discord();
    let l = links(&[]);
    let mut s = series(vec![event("e1", "2026-01-05T18:00:00Z", &[], &[])]);
    s.series_type = Some(SeriesType::Campaign);
    s.channel = Some(ChannelId::new(7));
    s.guest_role = Some(RoleId::new(20));
    s.host_role = Some(RoleId::new(21));
    d.roles.extend(plain_roles([20, 21]));
    let everyone_may_read = Overwrite {
        target: OverwriteTarget::Role(RoleId::new(1)),
        allow: permissions::VIEW_CHANNEL,
        deny: 0,
    };
    d.channels.insert(
        ChannelId::new(7),
        GuildChannel {
            id: ChannelId::new(7),
            name: "west-marches".into(),
            kind: Some(ChannelKind::Text),
            parent_id: Some(ChannelId::new(3)),
            topic: Some("Our open table".into()),
            overwrites: vec![everyone_may_read.clone()],
        },
    );
    let managed = BTreeSet::from([ChannelId::new(7)]);
    let extras = BTreeMap::new();
    let Some(Step::Update(changes)) =
        plan_with(&s, &settings, &d, &l, &extras, &managed, &BTreeSet::new())
    else {
        panic!("expected an update");
    };
    let [(channel, edit)] = changes.edits.as_slice() else {
        panic!("expected one edit: {changes:?}");
    };
    assert_eq!(*channel, ChannelId::new(7));
    assert_eq!(edit.topic, None, "the organisers' topic stays");
    assert_eq!(edit.parent_id, None, "it stays in its category");
    let wanted = edit.overwrites.clone().unwrap();
    assert!(wanted.contains(&everyone_may_read), "{wanted:?}");
    for target in [
        OverwriteTarget::Role(RoleId::new(20)),
        OverwriteTarget::Role(RoleId::new(21)),
        OverwriteTarget::Member(UserId::new(99)),
    ] {
        assert!(wanted.iter().any(|o| o.target == target), "{target:?}");
    }
    assert_eq!(wanted.len(), 4, "{wanted:?}");
}

#[test]
fn a_role_shortcode_not_below_the_bots_own_role_is_refused_unless_the_bot_owns_the_guild() {
    let settings = DiscordSettings::new(GuildId::new(1));
    let game_roles = BTreeSet::new();
    let mut d = discord();
    d.owner = Some(UserId::new(5));
    let role = |id: u64, position: i64| GuildRole {
        id: RoleId::new(id),
        permissions: permissions::SEND_MESSAGES,
        managed: false,
        position,
    };
    // The bot's managed role at 2 (an install puts it at the bottom), "Veterans" at 3
    // and "Newcomers" at 1.
    d.roles.insert(
        RoleId::new(40),
        GuildRole {
            managed: true,
            ..role(40, 2)
        },
    );
    for r in [role(50, 3), role(51, 1), role(52, 2)] {
        d.roles.insert(r.id, r);
    }
    d.members
        .insert(UserId::new(99), BTreeSet::from([RoleId::new(40)]));
    let refused =
        |d: &DiscordState, id: u64| refused_role(RoleId::new(id), &settings, &game_roles, d);

    assert!(refused(&d, 50).is_some_and(|why| why.contains("drag Tavern's role above it")));
    assert!(
        refused(&d, 52).is_some(),
        "level with the bot's role is not below it"
    );
    assert_eq!(refused(&d, 51), None);

    // Dragged above "Veterans", the bot may give it.
    if let Some(r) = d.roles.get_mut(&RoleId::new(40)) {
        r.position = 4;
    }
    assert_eq!(refused(&d, 50), None);

    // A bot that owns the guild is not bound by the hierarchy, with no role at all.
    let mut owned = discord();
    owned.roles.insert(RoleId::new(50), role(50, 3));
    assert_eq!(refused(&owned, 50), None);
}

#[test]
fn refused_shortcodes_that_no_longer_apply_are_forgotten_and_those_that_may_are_kept() {
    let now = t(NOW);
    let series = [series(vec![
        // Started: Meetup no longer lists it.
        event("started", "2026-01-01T10:00:00Z", &[], &[]),
        // Upcoming, described by Meetup this run.
        event("described", "2026-01-05T18:00:00Z", &[], &[]),
        // Upcoming, but its group failed: Meetup did not describe it.
        event("unread", "2026-01-06T18:00:00Z", &[], &[]),
    ])];
    let extras = BTreeMap::from([(
        MeetupEventId::parse("described").unwrap(),
        EventExtras::default(),
    )]);
    let told: BTreeSet<String> = [
        "started:role:5",
        "described:role:5",
        "described:role:6",
        "unread:role:5",
        "untracked:role:5",
    ]
    .map(str::to_owned)
    .into();
    let refused_now = BTreeSet::from(["described:role:6".to_owned()]);

    let stale = stale_refusals(&told, &refused_now, &series, &extras, true, now);
    assert_eq!(
        stale,
        ["described:role:5", "started:role:5", "untracked:role:5"]
    );
    // A series left out unread may own the untracked event: its record stays.
    let stale = stale_refusals(&told, &refused_now, &series, &extras, false, now);
    assert_eq!(stale, ["described:role:5", "started:role:5"]);
}
