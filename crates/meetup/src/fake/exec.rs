//! Executes a validated GraphQL query over the fake's [`State`], producing the response
//! a GraphQL server would: the selection's shape (aliases, fragments, `@skip` /
//! `@include`, `__typename`), variables coerced against their declared types, field
//! errors with `path` and `locations`, and nulls that propagate to the nearest nullable
//! parent when a non-null field has no value.
//!
//! Resolution is per schema type: the fields the fake has data for resolve from the
//! state, any other nullable field is null, and any other non-null field is a field
//! error naming it (never an invented value).

use std::collections::HashMap;

use graphql_parser::query as q;
use serde_json::{Map, Value, json};

use crate::model::{
    self, EventId, EventStatus, EventType, GroupRole, GroupUrlname, MemberId, RsvpStatus,
};
use crate::schema::{Schema, TypeDef, TypeKind, TypeRef};
use crate::validate::{self, Document, Operation, OperationKind, SelectionSet};

use super::state::{EventRecord, GroupRecord, MemberRecord, RsvpRecord, State};

/// Page size when a query gives no `first` (Meetup documents 20 for RSVPs).
const DEFAULT_FIRST: usize = 20;

type Field = q::Field<'static, String>;

/// Runs `operation_name` (or the only operation) of a validated `doc`. Returns the
/// whole response body (`data` and, if any, `errors`).
pub(crate) fn execute(
    schema: &Schema,
    state: &mut State,
    viewer: &MemberId,
    doc: &Document,
    operation_name: Option<&str>,
    variables: &Map<String, Value>,
) -> Value {
    let operation = match validate::select_operation(doc, operation_name) {
        Ok(op) => op,
        Err(message) => return json!({ "errors": [{ "message": message }] }),
    };
    let variables = match coerce_variables(schema, &operation, variables) {
        Ok(vars) => vars,
        Err(messages) => {
            let errors: Vec<Value> = messages
                .into_iter()
                .map(|message| json!({ "message": message }))
                .collect();
            return json!({ "errors": errors });
        }
    };
    let root_node = match operation.kind {
        OperationKind::Query => Node::Query,
        OperationKind::Mutation => match mutate(state, viewer, &operation, &variables) {
            Ok(outcome) => Node::Mutation(outcome),
            Err(message) => {
                return json!({
                    "data": null,
                    "errors": [{
                        "message": message,
                        "locations": [location(operation.position)],
                    }],
                });
            }
        },
        OperationKind::Subscription => {
            return json!({
                "data": null,
                "errors": [{
                    "message": "the fake Meetup server does not execute subscriptions",
                    "locations": [location(operation.position)],
                }],
            });
        }
    };
    let state: &State = state;
    let Some(root) = operation.root_type(schema) else {
        return json!({ "errors": [{ "message": "the schema has no root type for this operation" }] });
    };
    let mut exec = Executor {
        schema,
        state,
        viewer,
        variables,
        fragments: validate::fragments(doc),
        errors: Vec::new(),
    };
    let mut path = Vec::new();
    let data = exec
        .selection_set(&root_node, root, &[operation.selection_set], &mut path)
        .map(Value::Object)
        .unwrap_or(Value::Null);
    let mut response = Map::new();
    response.insert("data".into(), data);
    if !exec.errors.is_empty() {
        response.insert("errors".into(), Value::Array(exec.errors));
    }
    Value::Object(response)
}

fn location(pos: graphql_parser::Pos) -> Value {
    json!({ "line": pos.line, "column": pos.column })
}

/// One error of a mutation's payload (`PayloadError`).
#[derive(Clone, Debug)]
struct PayloadError {
    code: &'static str,
    field: Option<&'static str>,
    message: String,
}

impl PayloadError {
    fn new(code: &'static str, field: Option<&'static str>, message: String) -> PayloadError {
        PayloadError {
            code,
            field,
            message,
        }
    }
}

/// What `createEvent` did: the new event's id, or the payload errors.
type Created = Result<EventId, Vec<PayloadError>>;

/// Runs the side effect of a mutation document: its one `createEvent` field. Anything
/// else is an error message for the whole request.
fn mutate(
    state: &mut State,
    viewer: &MemberId,
    operation: &Operation<'_>,
    variables: &Map<String, Value>,
) -> Result<Created, String> {
    let mut fields = operation
        .selection_set
        .items
        .iter()
        .filter_map(|s| match s {
            q::Selection::Field(field) if field.name != "__typename" => Some(field),
            _ => None,
        });
    let Some(field) = fields.next() else {
        return Err("the fake Meetup server executes a mutation's fields only when they are written out (no fragments at the root)".to_owned());
    };
    if fields.next().is_some() {
        return Err("the fake Meetup server executes one mutation field per document".to_owned());
    }
    if field.name != "createEvent" {
        return Err(format!(
            "the fake Meetup server validates `Mutation.{}` but does not execute it",
            field.name
        ));
    }
    let input = field
        .arguments
        .iter()
        .find(|(name, _)| name == "input")
        .and_then(|(_, v)| value_to_json(v, variables))
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default();
    Ok(create_event(state, viewer, &input))
}

/// `createEvent(input: CreateEventInput!)` over the fake's state.
fn create_event(state: &mut State, viewer: &MemberId, input: &Map<String, Value>) -> Created {
    let text = |name: &str| input.get(name).and_then(Value::as_str);
    let fail = |code, field, message: String| Err(vec![PayloadError::new(code, field, message)]);
    let Some(group) = text("groupUrlname").and_then(|g| GroupUrlname::parse(g).ok()) else {
        return fail(
            "INVALID_ARGUMENT",
            Some("groupUrlname"),
            "not a group urlname".to_owned(),
        );
    };
    if !state.groups.contains_key(&group) {
        return fail(
            "GROUP_NOT_FOUND",
            Some("groupUrlname"),
            format!("no group `{group}`"),
        );
    }
    let may_create = state
        .roles
        .get(&(group.clone(), viewer.clone()))
        .is_some_and(|r| r.organises() || *r == GroupRole::EventOrganizer);
    if !may_create {
        return fail(
            "FORBIDDEN",
            None,
            format!("member {viewer} may not create events in `{group}`"),
        );
    }
    let title = text("title").unwrap_or_default();
    let title_len = title.chars().count();
    if title_len == 0 || title_len > 80 {
        return fail(
            "INVALID_ARGUMENT",
            Some("title"),
            format!("the title must be 1 to 80 characters, not {title_len}"),
        );
    }
    let description = text("description").unwrap_or_default();
    if description.chars().count() > 50_000 {
        return fail(
            "INVALID_ARGUMENT",
            Some("description"),
            "the description is longer than 50000 characters".to_owned(),
        );
    }
    let Some(starts_at) = text("startDateTime").and_then(model::parse_date_time) else {
        return fail(
            "INVALID_ARGUMENT",
            Some("startDateTime"),
            "not a date and time".to_owned(),
        );
    };
    let duration = match text("duration") {
        None => Some(chrono::TimeDelta::hours(3)),
        Some(raw) => match model::parse_duration(raw) {
            Some(d) => Some(d),
            None => {
                return fail(
                    "INVALID_ARGUMENT",
                    Some("duration"),
                    format!("`{raw}` is not an ISO 8601 duration"),
                );
            }
        },
    };
    let mut hosts: Vec<MemberId> = Vec::new();
    if input.get("selfRsvp").and_then(Value::as_bool) != Some(false) {
        hosts.push(viewer.clone());
    }
    for host in input
        .get("eventHosts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let id = host
            .as_i64()
            .and_then(|n| MemberId::parse(&n.to_string()).ok());
        match id {
            Some(id) if state.members.contains_key(&id) => {
                if !hosts.contains(&id) {
                    hosts.push(id);
                }
            }
            _ => {
                return fail(
                    "INVALID_ARGUMENT",
                    Some("eventHosts"),
                    format!("{host} is not a member"),
                );
            }
        }
    }
    let event_type = if text("venueId") == Some("online") {
        EventType::Online
    } else {
        EventType::Physical
    };
    let status = if text("publishStatus") == Some("DRAFT") {
        EventStatus::Draft
    } else {
        EventStatus::Active
    };
    let max_tickets = input
        .get("rsvpSettings")
        .and_then(|r| r.get("rsvpLimit"))
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok());
    let id = EventId::from_number(100_000_000 + state.next_number());
    state.events.push(EventRecord {
        id: id.clone(),
        group,
        title: title.to_owned(),
        description: description.to_owned(),
        starts_at,
        duration,
        status,
        event_type,
        max_tickets,
        hosts,
    });
    Ok(id)
}

/// A null that must propagate to the parent (a non-null field had no value).
struct Bubble;

/// Why a field has no value.
enum Missing {
    /// The fake keeps no data for this field: null if the schema allows it.
    NoData,
    /// A field error with this message.
    Error(String),
}

/// What a resolver hands back, before it is shaped by the field's type.
enum Out<'s> {
    Null,
    Leaf(Value),
    Node(Node<'s>),
    List(Vec<Out<'s>>),
}

#[derive(Clone)]
struct PageInfo {
    start: Option<String>,
    end: Option<String>,
    has_next: bool,
    has_previous: bool,
}

#[derive(Clone)]
struct Page<T> {
    items: Vec<(String, T)>,
    info: PageInfo,
    total: usize,
}

#[derive(Clone)]
struct RsvpCounts {
    yes: usize,
    no: usize,
    waitlist: usize,
    attended: usize,
    absent: usize,
    no_show: usize,
}

/// An object value of the schema type the field declares.
#[derive(Clone)]
enum Node<'s> {
    Query,
    /// The mutation root, with what its one `createEvent` did.
    Mutation(Created),
    CreateEventPayload(Created),
    PayloadError(PayloadError),
    Membership(&'s GroupRole),
    Group(&'s GroupRecord),
    Event(&'s EventRecord),
    Member(&'s MemberRecord),
    Host(&'s MemberRecord),
    Rsvp(&'s RsvpRecord),
    EventConnection(Page<&'s EventRecord>),
    EventEdge(String, &'s EventRecord),
    RsvpConnection(Page<&'s RsvpRecord>, RsvpCounts),
    RsvpEdge(String, &'s RsvpRecord),
    MemberConnection(Page<&'s MemberRecord>),
    MemberEdge(String, &'s MemberRecord),
    PageInfo(PageInfo),
}

struct Executor<'s, 'd> {
    schema: &'s Schema,
    state: &'s State,
    viewer: &'s MemberId,
    variables: Map<String, Value>,
    fragments: HashMap<&'d str, &'d q::FragmentDefinition<'static, String>>,
    errors: Vec<Value>,
}

impl<'s, 'd> Executor<'s, 'd> {
    fn field_error(&mut self, message: String, field: &Field, path: &[Value]) {
        self.errors.push(json!({
            "message": message,
            "locations": [location(field.position)],
            "path": path,
        }));
    }

    fn selection_set(
        &mut self,
        node: &Node<'s>,
        ty: &'s TypeDef,
        sets: &[&'d SelectionSet],
        path: &mut Vec<Value>,
    ) -> Result<Map<String, Value>, Bubble> {
        let mut grouped: Vec<(String, Vec<&'d Field>)> = Vec::new();
        self.collect_fields(ty, sets, &mut grouped);
        let mut out = Map::new();
        for (key, fields) in grouped {
            let field = fields[0];
            if field.name == "__typename" {
                out.insert(key, Value::String(ty.name.clone()));
                continue;
            }
            let Some(def) = ty.fields.get(field.name.as_str()) else {
                continue; // validated: cannot happen
            };
            let args = self.arguments(field, &def.args);
            path.push(Value::String(key.clone()));
            let value = match self.resolve(node, &ty.name, &field.name, &args) {
                Ok(resolved) => {
                    let sub: Vec<&'d SelectionSet> =
                        fields.iter().map(|f| &f.selection_set).collect();
                    self.complete(resolved, &def.ty, field, &sub, path)
                }
                Err(missing) => {
                    let message = match missing {
                        Missing::NoData if !def.ty.is_non_null() => None,
                        Missing::NoData => Some(format!(
                            "the fake Meetup server has no data for non-null field `{}.{}`",
                            ty.name, field.name
                        )),
                        Missing::Error(message) => Some(message),
                    };
                    if let Some(message) = message {
                        self.field_error(message, field, path);
                    }
                    if def.ty.is_non_null() {
                        Err(Bubble)
                    } else {
                        Ok(Value::Null)
                    }
                }
            };
            path.pop();
            out.insert(key, value?);
        }
        Ok(out)
    }

    fn complete(
        &mut self,
        out: Out<'s>,
        ty: &TypeRef,
        field: &Field,
        sets: &[&'d SelectionSet],
        path: &mut Vec<Value>,
    ) -> Result<Value, Bubble> {
        match ty {
            TypeRef::NonNull(inner) => {
                let value = self.complete_nullable(out, inner, field, sets, path)?;
                if value.is_null() {
                    self.field_error(
                        format!("cannot return null for non-null field `{}`", field.name),
                        field,
                        path,
                    );
                    return Err(Bubble);
                }
                Ok(value)
            }
            nullable => Ok(self
                .complete_nullable(out, nullable, field, sets, path)
                .unwrap_or(Value::Null)),
        }
    }

    fn complete_nullable(
        &mut self,
        out: Out<'s>,
        ty: &TypeRef,
        field: &Field,
        sets: &[&'d SelectionSet],
        path: &mut Vec<Value>,
    ) -> Result<Value, Bubble> {
        match (out, ty) {
            (Out::Null, _) => Ok(Value::Null),
            (Out::List(items), TypeRef::List(inner)) => {
                let mut values = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    path.push(Value::from(i));
                    let value = self.complete(item, inner, field, sets, path);
                    path.pop();
                    values.push(value?);
                }
                Ok(Value::Array(values))
            }
            (Out::Leaf(value), TypeRef::Named(_)) => Ok(value),
            (Out::Node(node), TypeRef::Named(name)) => {
                let Some(def) = self.schema.get(name) else {
                    return Ok(Value::Null);
                };
                self.selection_set(&node, def, sets, path)
                    .map(Value::Object)
            }
            _ => {
                self.field_error(
                    format!(
                        "the fake Meetup server resolved `{}` to the wrong shape",
                        field.name
                    ),
                    field,
                    path,
                );
                Ok(Value::Null)
            }
        }
    }

    fn collect_fields(
        &self,
        ty: &TypeDef,
        sets: &[&'d SelectionSet],
        out: &mut Vec<(String, Vec<&'d Field>)>,
    ) {
        for set in sets {
            for selection in &set.items {
                match selection {
                    q::Selection::Field(field) => {
                        if !self.included(&field.directives) {
                            continue;
                        }
                        let key = field.alias.as_deref().unwrap_or(&field.name);
                        match out.iter_mut().find(|(k, _)| k == key) {
                            Some((_, fields)) => fields.push(field),
                            None => out.push((key.to_owned(), vec![field])),
                        }
                    }
                    q::Selection::InlineFragment(fragment) => {
                        let applies = match &fragment.type_condition {
                            None => true,
                            Some(q::TypeCondition::On(on)) => self.applies(on, ty),
                        };
                        if applies && self.included(&fragment.directives) {
                            self.collect_fields(ty, &[&fragment.selection_set], out);
                        }
                    }
                    q::Selection::FragmentSpread(spread) => {
                        let Some(fragment) = self.fragments.get(spread.fragment_name.as_str())
                        else {
                            continue;
                        };
                        let q::TypeCondition::On(on) = &fragment.type_condition;
                        if self.applies(on, ty) && self.included(&spread.directives) {
                            self.collect_fields(ty, &[&fragment.selection_set], out);
                        }
                    }
                }
            }
        }
    }

    fn applies(&self, on: &str, ty: &TypeDef) -> bool {
        self.schema
            .get(on)
            .is_some_and(|t| t.possible_types.contains(&ty.name))
    }

    fn included(&self, directives: &[q::Directive<'static, String>]) -> bool {
        directives.iter().all(|d| {
            let condition = d
                .arguments
                .iter()
                .find(|(name, _)| name == "if")
                .and_then(|(_, v)| value_to_json(v, &self.variables))
                .and_then(|v| v.as_bool())
                .unwrap_or(true);
            match d.name.as_str() {
                "skip" => !condition,
                "include" => condition,
                _ => true,
            }
        })
    }

    /// The field's arguments as JSON: literals, variables substituted, defaults applied.
    fn arguments(
        &self,
        field: &Field,
        defs: &std::collections::BTreeMap<String, crate::schema::InputValueDef>,
    ) -> Map<String, Value> {
        let mut args = Map::new();
        for (name, value) in &field.arguments {
            if let Some(json) = value_to_json(value, &self.variables) {
                args.insert(name.clone(), json);
            }
        }
        for def in defs.values() {
            if !args.contains_key(&def.name)
                && let Some(json) = def
                    .default
                    .as_ref()
                    .and_then(|d| value_to_json(d, &Map::new()))
            {
                args.insert(def.name.clone(), json);
            }
        }
        args
    }

    fn resolve(
        &self,
        node: &Node<'s>,
        type_name: &str,
        field: &str,
        args: &Map<String, Value>,
    ) -> Result<Out<'s>, Missing> {
        let state = self.state;
        // `ID` arguments arrive as strings or integers.
        let id_arg = |name: &str| match args.get(name) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let str_arg = |name: &str| args.get(name).and_then(Value::as_str);
        match node {
            Node::Query => match field {
                "groupByUrlname" => Ok(str_arg("urlname")
                    .and_then(|u| state.groups.values().find(|g| g.urlname.as_str() == u))
                    .map_or(Out::Null, |g| Out::Node(Node::Group(g)))),
                "group" => Ok(id_arg("id")
                    .and_then(|id| state.group_by_id(&id))
                    .map_or(Out::Null, |g| Out::Node(Node::Group(g)))),
                "event" => Ok(id_arg("id")
                    .and_then(|id| state.event(&id))
                    .map_or(Out::Null, |e| Out::Node(Node::Event(e)))),
                "self" => Ok(state
                    .member(self.viewer)
                    .map_or(Out::Null, |m| Out::Node(Node::Member(m)))),
                other => Err(Missing::Error(format!(
                    "the fake Meetup server does not implement `{type_name}.{other}`"
                ))),
            },
            Node::Group(group) => match field {
                "id" => Ok(leaf(group.id.as_str())),
                "urlname" => Ok(leaf(group.urlname.as_str())),
                "name" => Ok(leaf(&group.name)),
                "link" => Ok(leaf(&format!("https://www.meetup.com/{}/", group.urlname))),
                "isPrivate" => Ok(Out::Leaf(Value::Bool(false))),
                "timezone" => Ok(group.timezone.as_deref().map_or(Out::Null, leaf)),
                "events" => self.group_events(group, args).map(Out::Node),
                "memberships" => self.group_memberships(group, args).map(Out::Node),
                "membershipMetadata" => Ok(state
                    .roles
                    .get(&(group.urlname.clone(), self.viewer.clone()))
                    .map_or(Out::Null, |role| Out::Node(Node::Membership(role)))),
                _ => Err(Missing::NoData),
            },
            Node::Membership(role) => match field {
                "role" => Ok(leaf(role.as_str())),
                "status" => Ok(leaf(
                    if role.organises() || **role == GroupRole::EventOrganizer {
                        "LEADER"
                    } else {
                        "ACTIVE"
                    },
                )),
                _ => Err(Missing::NoData),
            },
            Node::Mutation(created) => match field {
                "createEvent" => Ok(Out::Node(Node::CreateEventPayload(created.clone()))),
                other => Err(Missing::Error(format!(
                    "the fake Meetup server does not implement `{type_name}.{other}`"
                ))),
            },
            Node::CreateEventPayload(created) => match (field, created) {
                ("event", Ok(id)) => Ok(state
                    .event(id.as_str())
                    .map_or(Out::Null, |e| Out::Node(Node::Event(e)))),
                ("errors", Err(errors)) => Ok(Out::List(
                    errors
                        .iter()
                        .map(|e| Out::Node(Node::PayloadError(e.clone())))
                        .collect(),
                )),
                ("event" | "errors", _) => Ok(Out::Null),
                _ => Err(Missing::NoData),
            },
            Node::PayloadError(error) => match field {
                "code" => Ok(leaf(error.code)),
                "field" => Ok(error.field.map_or(Out::Null, leaf)),
                "message" => Ok(leaf(&error.message)),
                _ => Err(Missing::NoData),
            },
            Node::Event(event) => self.event_field(event, field, args),
            Node::Member(member) => match field {
                "id" => Ok(leaf(member.id.as_str())),
                "name" => Ok(leaf(&member.name)),
                "memberUrl" => Ok(leaf(&format!(
                    "https://www.meetup.com/members/{}/",
                    member.id
                ))),
                _ => Err(Missing::NoData),
            },
            Node::Host(member) => match field {
                "member" => Ok(Out::Node(Node::Member(member))),
                "memberId" => Ok(leaf(member.id.as_str())),
                "name" => Ok(leaf(&member.name)),
                _ => Err(Missing::NoData),
            },
            Node::Rsvp(rsvp) => match field {
                "id" => Ok(leaf(rsvp.id.as_str())),
                "member" => Ok(state
                    .member(&rsvp.member)
                    .map_or(Out::Null, |m| Out::Node(Node::Member(m)))),
                "event" => Ok(state
                    .event(rsvp.event.as_str())
                    .map_or(Out::Null, |e| Out::Node(Node::Event(e)))),
                "status" => Ok(leaf(rsvp.status.as_str())),
                "isHost" => Ok(Out::Leaf(Value::Bool(
                    state
                        .event(rsvp.event.as_str())
                        .is_some_and(|e| e.hosts.contains(&rsvp.member)),
                ))),
                "guestsCount" => Ok(Out::Leaf(Value::from(rsvp.guests))),
                _ => Err(Missing::NoData),
            },
            Node::EventConnection(page) => match field {
                "edges" => Ok(Out::List(
                    page.items
                        .iter()
                        .map(|(cursor, e)| Out::Node(Node::EventEdge(cursor.clone(), e)))
                        .collect(),
                )),
                "pageInfo" => Ok(Out::Node(Node::PageInfo(page.info.clone()))),
                "totalCount" => Ok(Out::Leaf(Value::from(page.total))),
                _ => Err(Missing::NoData),
            },
            Node::EventEdge(cursor, event) => match field {
                "cursor" => Ok(leaf(cursor)),
                "node" => Ok(Out::Node(Node::Event(event))),
                _ => Err(Missing::NoData),
            },
            Node::RsvpConnection(page, counts) => match field {
                "edges" => Ok(Out::List(
                    page.items
                        .iter()
                        .map(|(cursor, r)| Out::Node(Node::RsvpEdge(cursor.clone(), r)))
                        .collect(),
                )),
                "pageInfo" => Ok(Out::Node(Node::PageInfo(page.info.clone()))),
                "totalCount" => Ok(Out::Leaf(Value::from(page.total))),
                "yesCount" => Ok(Out::Leaf(Value::from(counts.yes))),
                "noCount" => Ok(Out::Leaf(Value::from(counts.no))),
                "waitlistCount" => Ok(Out::Leaf(Value::from(counts.waitlist))),
                "attendedCount" => Ok(Out::Leaf(Value::from(counts.attended))),
                "absentCount" => Ok(Out::Leaf(Value::from(counts.absent))),
                "noShowCount" => Ok(Out::Leaf(Value::from(counts.no_show))),
                _ => Err(Missing::NoData),
            },
            Node::RsvpEdge(cursor, rsvp) => match field {
                "cursor" => Ok(leaf(cursor)),
                "node" => Ok(Out::Node(Node::Rsvp(rsvp))),
                _ => Err(Missing::NoData),
            },
            Node::MemberConnection(page) => match field {
                "edges" => Ok(Out::List(
                    page.items
                        .iter()
                        .map(|(cursor, m)| Out::Node(Node::MemberEdge(cursor.clone(), m)))
                        .collect(),
                )),
                "pageInfo" => Ok(Out::Node(Node::PageInfo(page.info.clone()))),
                "totalCount" => Ok(Out::Leaf(Value::from(page.total))),
                _ => Err(Missing::NoData),
            },
            Node::MemberEdge(cursor, member) => match field {
                "cursor" => Ok(leaf(cursor)),
                "node" => Ok(Out::Node(Node::Member(member))),
                _ => Err(Missing::NoData),
            },
            Node::PageInfo(info) => match field {
                "startCursor" => Ok(info.start.as_deref().map_or(Out::Null, leaf)),
                "endCursor" => Ok(info.end.as_deref().map_or(Out::Null, leaf)),
                "hasNextPage" => Ok(Out::Leaf(Value::Bool(info.has_next))),
                "hasPreviousPage" => Ok(Out::Leaf(Value::Bool(info.has_previous))),
                _ => Err(Missing::NoData),
            },
        }
    }

    fn event_field(
        &self,
        event: &'s EventRecord,
        field: &str,
        args: &Map<String, Value>,
    ) -> Result<Out<'s>, Missing> {
        let state = self.state;
        let viewer_rsvp = || {
            state
                .rsvps
                .iter()
                .find(|r| r.event == event.id && &r.member == self.viewer)
        };
        match field {
            "id" | "token" => Ok(leaf(event.id.as_str())),
            "title" => Ok(leaf(&event.title)),
            "description" => Ok(leaf(&event.description)),
            "eventUrl" => Ok(leaf(&format!(
                "https://www.meetup.com/{}/events/{}/",
                event.group, event.id
            ))),
            "dateTime" => Ok(leaf(&model::format_date_time(&event.starts_at))),
            "endTime" => Ok(event.duration.map_or(Out::Null, |d| {
                leaf(&model::format_date_time(&(event.starts_at + d)))
            })),
            "duration" => Ok(event
                .duration
                .map_or(Out::Null, |d| leaf(&model::format_duration(&d)))),
            "status" => Ok(leaf(event.status.as_str())),
            "eventType" => Ok(leaf(event.event_type.as_str())),
            "maxTickets" => Ok(event
                .max_tickets
                .map_or(Out::Null, |n| Out::Leaf(Value::from(n)))),
            "group" => Ok(state
                .groups
                .get(&event.group)
                .map_or(Out::Null, |g| Out::Node(Node::Group(g)))),
            "eventHosts" => Ok(Out::List(
                event
                    .hosts
                    .iter()
                    .map(|id| {
                        state
                            .member(id)
                            .map_or(Out::Null, |m| Out::Node(Node::Host(m)))
                    })
                    .collect(),
            )),
            "rsvps" => self.event_rsvps(event, args).map(Out::Node),
            "rsvp" => Ok(viewer_rsvp().map_or(Out::Null, |r| Out::Node(Node::Rsvp(r)))),
            "isAttending" => Ok(Out::Leaf(Value::Bool(
                viewer_rsvp().is_some_and(|r| r.status == RsvpStatus::Yes),
            ))),
            "guestsAllowed" => Ok(Out::Leaf(Value::Bool(false))),
            "numberOfAllowedGuests" => Ok(Out::Leaf(Value::from(0))),
            "rsvpQuestions" => Ok(Out::List(Vec::new())),
            _ => Err(Missing::NoData),
        }
    }

    /// `Group.memberships(first, after, filter)`: the group's members (a role in it,
    /// a hosted event or an RSVP to one of its events: Meetup lets only members host
    /// and RSVP), ordered by id; `filter.memberIds`, `excludeMemberIds` and `name` (a
    /// part of the name, any case) narrow it. An id Meetup does not know matches
    /// nobody: an empty list, not an error.
    fn group_memberships(
        &self,
        group: &'s GroupRecord,
        args: &Map<String, Value>,
    ) -> Result<Node<'s>, Missing> {
        let filter = args.get("filter").and_then(Value::as_object);
        let ids = |name: &str| -> Option<Vec<String>> {
            match filter.and_then(|f| f.get(name)) {
                Some(Value::Array(items)) => Some(items.iter().map(Value::to_string).collect()),
                _ => None,
            }
        };
        let only = ids("memberIds");
        let except = ids("excludeMemberIds").unwrap_or_default();
        let name = filter
            .and_then(|f| f.get("name"))
            .and_then(Value::as_str)
            .map(str::to_lowercase);
        let state = self.state;
        let of_group = |e: &EventRecord| e.group == group.urlname;
        let members: Vec<&MemberRecord> = state
            .members
            .values()
            .filter(|m| {
                state
                    .roles
                    .contains_key(&(group.urlname.clone(), m.id.clone()))
                    || state
                        .events
                        .iter()
                        .any(|e| of_group(e) && e.hosts.contains(&m.id))
                    || state.rsvps.iter().any(|r| {
                        r.member == m.id && state.event(r.event.as_str()).is_some_and(of_group)
                    })
            })
            .filter(|m| {
                only.as_ref()
                    .is_none_or(|ids| ids.iter().any(|id| id == m.id.as_str()))
            })
            .filter(|m| !except.iter().any(|id| id == m.id.as_str()))
            .filter(|m| {
                name.as_deref()
                    .is_none_or(|n| m.name.to_lowercase().contains(n))
            })
            .collect();
        paginate(members, args).map(Node::MemberConnection)
    }

    /// `Group.events(first, after, filter, sort, status)`.
    fn group_events(
        &self,
        group: &'s GroupRecord,
        args: &Map<String, Value>,
    ) -> Result<Node<'s>, Missing> {
        let filter = args.get("filter").and_then(Value::as_object);
        let filter_str = |name: &str| filter.and_then(|f| f.get(name)).and_then(Value::as_str);
        let statuses = string_list(filter.and_then(|f| f.get("status")));
        let status = args.get("status").and_then(Value::as_str);
        let after = filter_str("afterDateTime").map(date_time_arg).transpose()?;
        let before = filter_str("beforeDateTime")
            .map(date_time_arg)
            .transpose()?;
        let host = filter_str("hostId");
        let title = filter_str("title").map(str::to_lowercase);
        let mut events: Vec<&EventRecord> = self
            .state
            .events
            .iter()
            .filter(|e| e.group == group.urlname)
            .filter(|e| statuses.is_empty() || statuses.contains(&e.status.as_str()))
            .filter(|e| status.is_none_or(|s| e.status.as_str() == s))
            .filter(|e| after.is_none_or(|t| e.starts_at >= t))
            .filter(|e| before.is_none_or(|t| e.starts_at < t))
            .filter(|e| host.is_none_or(|h| e.hosts.iter().any(|m| m.as_str() == h)))
            .filter(|e| {
                title
                    .as_deref()
                    .is_none_or(|t| e.title.to_lowercase().contains(t))
            })
            .collect();
        // Stable: events at the same time keep creation order.
        events.sort_by_key(|e| e.starts_at);
        if args.get("sort").and_then(Value::as_str) == Some("DESC") {
            events.reverse();
        }
        paginate(events, args).map(Node::EventConnection)
    }

    /// `Event.rsvps(first, after, filter, sort)`.
    fn event_rsvps(
        &self,
        event: &'s EventRecord,
        args: &Map<String, Value>,
    ) -> Result<Node<'s>, Missing> {
        let all: Vec<&RsvpRecord> = self
            .state
            .rsvps
            .iter()
            .filter(|r| r.event == event.id)
            .collect();
        let count = |status: RsvpStatus| all.iter().filter(|r| r.status == status).count();
        let counts = RsvpCounts {
            yes: count(RsvpStatus::Yes),
            no: count(RsvpStatus::No),
            waitlist: count(RsvpStatus::Waitlist),
            attended: count(RsvpStatus::Attended),
            absent: count(RsvpStatus::ExcusedAbsence),
            no_show: count(RsvpStatus::NoShow),
        };
        let filter = args.get("filter").and_then(Value::as_object);
        let flag = |name: &str| {
            filter
                .and_then(|f| f.get(name))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        // The schema: "defaults to YES and ATTENDED. A filter containing HAVENT will
        // only return HAVENT responses".
        let mut statuses = string_list(filter.and_then(|f| f.get("rsvpStatus")));
        if statuses.is_empty() {
            statuses = vec!["YES", "ATTENDED"];
        } else if statuses.contains(&"HAVENT") {
            statuses = vec!["HAVENT"];
        }
        let (only_hosts, only_with_guests) = (flag("onlyHosts"), flag("onlyWithGuests"));
        let mut rsvps: Vec<&RsvpRecord> = all
            .into_iter()
            .filter(|r| statuses.contains(&r.status.as_str()))
            .filter(|r| !only_hosts || event.hosts.contains(&r.member))
            .filter(|r| !only_with_guests || r.guests > 0)
            .collect();
        let sort = args.get("sort").and_then(Value::as_object);
        if sort
            .and_then(|s| s.get("sortField"))
            .and_then(Value::as_str)
            == Some("NAME")
        {
            rsvps.sort_by_key(|r| self.state.member(&r.member).map(|m| m.name.clone()));
        }
        if sort
            .and_then(|s| s.get("sortOrder"))
            .and_then(Value::as_str)
            == Some("DESC")
        {
            rsvps.reverse();
        }
        if sort
            .and_then(|s| s.get("hostsFirst"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            rsvps.sort_by_key(|r| !event.hosts.contains(&r.member));
        }
        let total = rsvps.len();
        if let Some(shown) = self.state.rsvp_list_limit {
            rsvps.truncate(shown);
        }
        paginate(rsvps, args).map(|mut page| {
            page.total = total;
            Node::RsvpConnection(page, counts)
        })
    }
}

fn leaf<'s>(text: &str) -> Out<'s> {
    Out::Leaf(Value::String(text.to_owned()))
}

fn string_list(value: Option<&Value>) -> Vec<&str> {
    match value {
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        Some(Value::String(single)) => vec![single.as_str()],
        _ => Vec::new(),
    }
}

fn date_time_arg(text: &str) -> Result<chrono::DateTime<chrono::FixedOffset>, Missing> {
    model::parse_date_time(text)
        .ok_or_else(|| Missing::Error(format!("invalid DateTime value {text:?}")))
}

/// Cursors are opaque to clients; here they are the item's offset in the filtered list.
fn cursor(offset: usize) -> String {
    format!("fake-cursor:{offset}")
}

fn paginate<T: Copy>(items: Vec<T>, args: &Map<String, Value>) -> Result<Page<T>, Missing> {
    let first = match args.get("first") {
        None | Some(Value::Null) => DEFAULT_FIRST,
        Some(value) => value
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                Missing::Error(format!(
                    "`first` must be a non-negative integer, got {value}"
                ))
            })?,
    };
    let start = match args.get("after").and_then(Value::as_str) {
        None => 0,
        Some(after) => after
            .strip_prefix("fake-cursor:")
            .and_then(|n| n.parse::<usize>().ok())
            .map(|n| n + 1)
            .ok_or_else(|| Missing::Error(format!("invalid cursor {after:?}")))?,
    };
    let total = items.len();
    let start = start.min(total);
    let end = start.saturating_add(first).min(total);
    let page: Vec<(String, T)> = items[start..end]
        .iter()
        .enumerate()
        .map(|(i, item)| (cursor(start + i), *item))
        .collect();
    let info = PageInfo {
        start: page.first().map(|(c, _)| c.clone()),
        end: page.last().map(|(c, _)| c.clone()),
        has_next: end < total,
        has_previous: start > 0,
    };
    Ok(Page {
        items: page,
        info,
        total,
    })
}

/// A literal or variable as JSON; `None` when it is an unset variable (absent).
fn value_to_json(value: &validate::Value, variables: &Map<String, Value>) -> Option<Value> {
    Some(match value {
        q::Value::Variable(name) => return variables.get(name.as_str()).cloned(),
        q::Value::Int(n) => n.as_i64().map_or(Value::Null, Value::from),
        q::Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        q::Value::String(s) => Value::String(s.clone()),
        q::Value::Boolean(b) => Value::Bool(*b),
        q::Value::Null => Value::Null,
        q::Value::Enum(e) => Value::String(e.clone()),
        q::Value::List(items) => Value::Array(
            items
                .iter()
                .map(|item| value_to_json(item, variables).unwrap_or(Value::Null))
                .collect(),
        ),
        q::Value::Object(fields) => Value::Object(
            fields
                .iter()
                .filter_map(|(k, v)| value_to_json(v, variables).map(|j| (k.clone(), j)))
                .collect(),
        ),
    })
}

/// Checks the request's variables against the operation's declarations (GraphQL's
/// "coerce variable values"): required ones present, every value of its type; defaults
/// filled in. Undeclared extra variables are ignored, as servers do.
pub(crate) fn coerce_variables(
    schema: &Schema,
    operation: &Operation<'_>,
    provided: &Map<String, Value>,
) -> Result<Map<String, Value>, Vec<String>> {
    let mut out = Map::new();
    let mut errors = Vec::new();
    for def in operation.variables {
        let ty = TypeRef::from_ast(&def.var_type);
        let name = def.name.as_str();
        match provided.get(name) {
            Some(value) => match check_json(schema, value, &ty) {
                Ok(()) => {
                    out.insert(name.to_owned(), value.clone());
                }
                Err(reason) => errors.push(format!(
                    "variable `${name}` of type `{ty}` got an invalid value: {reason}"
                )),
            },
            None => match &def.default_value {
                Some(default) => {
                    if let Some(json) = value_to_json(default, &Map::new()) {
                        out.insert(name.to_owned(), json);
                    }
                }
                None if ty.is_non_null() => {
                    errors.push(format!(
                        "variable `${name}` of type `{ty}` was not provided"
                    ));
                }
                None => {}
            },
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

fn check_json(schema: &Schema, value: &Value, ty: &TypeRef) -> Result<(), String> {
    match (ty, value) {
        (TypeRef::NonNull(_), Value::Null) => Err("null for a non-null type".to_owned()),
        (TypeRef::NonNull(inner), v) => check_json(schema, v, inner),
        (_, Value::Null) => Ok(()),
        (TypeRef::List(inner), Value::Array(items)) => {
            items.iter().enumerate().try_for_each(|(i, item)| {
                check_json(schema, item, inner).map_err(|e| format!("item {i}: {e}"))
            })
        }
        (TypeRef::List(inner), single) => check_json(schema, single, inner),
        (TypeRef::Named(name), v) => {
            let Some(def) = schema.get(name) else {
                return Err(format!("unknown type `{name}`"));
            };
            let ok = match def.kind {
                TypeKind::Scalar => match name.as_str() {
                    "Int" => v.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
                    "Float" => v.is_number(),
                    "String" => v.is_string(),
                    "Boolean" => v.is_boolean(),
                    "ID" => v.is_string() || v.is_i64() || v.is_u64(),
                    _ => v.is_string() || v.is_number() || v.is_boolean(),
                },
                TypeKind::Enum => v.as_str().is_some_and(|s| def.enum_values.contains(s)),
                TypeKind::InputObject => {
                    let Some(object) = v.as_object() else {
                        return Err(format!("expected an input object `{name}`, got {v}"));
                    };
                    for (key, field_value) in object {
                        let Some(field) = def.input_fields.get(key) else {
                            return Err(format!("`{name}` has no field `{key}`"));
                        };
                        check_json(schema, field_value, &field.ty)
                            .map_err(|e| format!("field `{key}`: {e}"))?;
                    }
                    if let Some(missing) = def
                        .input_fields
                        .values()
                        .find(|f| f.is_required() && !object.contains_key(&f.name))
                    {
                        return Err(format!("`{name}` misses required field `{}`", missing.name));
                    }
                    true
                }
                TypeKind::Object | TypeKind::Interface | TypeKind::Union => false,
            };
            if ok {
                Ok(())
            } else {
                Err(format!("expected `{name}`, got {v}"))
            }
        }
    }
}
