//! The fake's world: groups, members, events, RSVPs, OAuth clients and tokens, the
//! request log and pending faults. All behind one mutex in [`super::FakeMeetup`].

use std::collections::{BTreeMap, HashMap, VecDeque};

use chrono::{DateTime, FixedOffset, TimeDelta};

use crate::model::{
    EventId, EventStatus, EventType, GroupId, GroupRole, GroupUrlname, MemberId, RsvpId, RsvpStatus,
};

use super::{FakeFault, GraphQlRequest, TokenRequest};

#[derive(Debug, Clone)]
pub(crate) struct GroupRecord {
    pub id: GroupId,
    pub urlname: GroupUrlname,
    pub name: String,
    /// IANA name; `None` answers null, as for a group that never set one.
    pub timezone: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct MemberRecord {
    pub id: MemberId,
    pub name: String,
}

#[derive(Debug, Clone)]
pub(crate) struct EventRecord {
    pub id: EventId,
    pub group: GroupUrlname,
    pub title: String,
    pub description: String,
    pub starts_at: DateTime<FixedOffset>,
    pub duration: Option<TimeDelta>,
    pub status: EventStatus,
    pub event_type: EventType,
    pub max_tickets: Option<u32>,
    pub hosts: Vec<MemberId>,
}

#[derive(Debug, Clone)]
pub(crate) struct RsvpRecord {
    pub id: RsvpId,
    pub event: EventId,
    pub member: MemberId,
    pub status: RsvpStatus,
    pub guests: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct ClientRecord {
    pub secret: String,
    pub redirect_uri: String,
}

#[derive(Debug, Clone)]
pub(crate) struct CodeRecord {
    pub client_id: String,
    pub member: MemberId,
    pub redirect_uri: String,
    /// Set on first exchange; a second exchange is refused and revokes these tokens.
    pub issued: Option<(String, String)>,
}

#[derive(Debug, Clone)]
pub(crate) struct RefreshRecord {
    pub member: MemberId,
    pub client_id: String,
    pub access_token: String,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    next_id: u64,
    pub groups: BTreeMap<GroupUrlname, GroupRecord>,
    pub members: BTreeMap<MemberId, MemberRecord>,
    /// Members' roles in groups (`Group.membershipMetadata.role`); no entry: not a
    /// member of that group.
    pub roles: BTreeMap<(GroupUrlname, MemberId), GroupRole>,
    /// In creation order.
    pub events: Vec<EventRecord>,
    /// In creation order (the default RSVP order, like Meetup's `RSVP_ID`).
    pub rsvps: Vec<RsvpRecord>,
    pub clients: HashMap<String, ClientRecord>,
    pub signed_in: Option<MemberId>,
    pub codes: HashMap<String, CodeRecord>,
    pub access_tokens: HashMap<String, MemberId>,
    pub refresh_tokens: HashMap<String, RefreshRecord>,
    pub faults: VecDeque<FakeFault>,
    /// Faults for one operation only (by `operationName`), taken before [`State::faults`].
    pub operation_faults: HashMap<String, VecDeque<FakeFault>>,
    /// At most this many entries in any RSVP list ([`super::FakeMeetup::cut_rsvp_lists`]).
    pub rsvp_list_limit: Option<usize>,
    pub graphql_log: Vec<GraphQlRequest>,
    pub token_log: Vec<TokenRequest>,
}

impl State {
    /// A fresh number; ids of every kind come from one counter so they never collide.
    pub fn next_number(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// A fresh opaque secret. Not cryptographic: the fake only needs uniqueness.
    pub fn next_secret(&mut self, kind: &str) -> String {
        let n = self.next_number();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        format!("fake-{kind}-{n}-{nanos:08x}")
    }

    pub fn event(&self, id: &str) -> Option<&EventRecord> {
        self.events.iter().find(|e| e.id.as_str() == id)
    }

    pub fn event_mut(&mut self, id: &EventId) -> Option<&mut EventRecord> {
        self.events.iter_mut().find(|e| &e.id == id)
    }

    pub fn group_by_id(&self, id: &str) -> Option<&GroupRecord> {
        self.groups.values().find(|g| g.id.as_str() == id)
    }

    pub fn member(&self, id: &MemberId) -> Option<&MemberRecord> {
        self.members.get(id)
    }

    /// Issues a new access/refresh pair for `member` through `client_id`.
    pub fn issue_tokens(&mut self, member: &MemberId, client_id: &str) -> (String, String) {
        let access = self.next_secret("access");
        let refresh = self.next_secret("refresh");
        self.access_tokens.insert(access.clone(), member.clone());
        self.refresh_tokens.insert(
            refresh.clone(),
            RefreshRecord {
                member: member.clone(),
                client_id: client_id.to_owned(),
                access_token: access.clone(),
            },
        );
        (access, refresh)
    }
}
