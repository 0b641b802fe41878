//! The validator against the real Meetup schema: documents that must pass and documents
//! that must fail, each failure checked for the name and position it reports.

use crate::queries;
use crate::schema::Schema;
use crate::validate::{ValidationError, parse_and_validate};

fn check(source: &str) -> Vec<ValidationError> {
    let schema = Schema::meetup().unwrap();
    match parse_and_validate(schema, source) {
        Ok(_) => Vec::new(),
        Err(errors) => errors,
    }
}

#[track_caller]
fn assert_valid(source: &str) {
    let errors = check(source);
    assert!(errors.is_empty(), "expected valid, got: {errors:#?}");
}

/// Asserts exactly one error, that it mentions every `needle`, and where it is.
#[track_caller]
fn assert_error(source: &str, needles: &[&str], line: usize, column: usize) {
    let errors = check(source);
    assert_eq!(errors.len(), 1, "expected one error, got: {errors:#?}");
    let error = &errors[0];
    for needle in needles {
        assert!(
            error.message.contains(needle),
            "{error} does not mention {needle}"
        );
    }
    assert_eq!((error.line, error.column), (line, column), "{error}");
}

#[test]
fn every_client_query_is_valid() {
    for (name, document) in queries::ALL {
        let errors = check(document);
        assert!(errors.is_empty(), "{name}: {errors:#?}");
    }
}

#[test]
fn aliases_fragments_directives_and_typename_are_valid() {
    assert_valid(
        r#"
query Q($u: String!, $withHosts: Boolean = true, $after: DateTime) {
  club: groupByUrlname(urlname: $u) {
    __typename
    name
    upcoming: events(first: 5, filter: { status: ACTIVE, afterDateTime: $after }, sort: DESC) {
      totalCount
      edges { cursor node { ...E ... on Event { title } } }
    }
    past: events(first: 5, status: PAST) { totalCount }
  }
}
fragment E on Event {
  id
  eventHosts @include(if: $withHosts) { name member { id } }
  rsvps(filter: { rsvpStatus: [YES, WAITLIST], onlyHosts: false }, sort: { sortField: NAME, sortOrder: ASC }) {
    yesCount waitlistCount
  }
}"#,
    );
}

#[test]
fn shorthand_queries_and_mutations_are_valid() {
    assert_valid("{ self { id name } }");
    assert_valid(
        r#"mutation Close { closeEventRsvps(input: { eventId: "123" }) { errors { code message } event { id } } }"#,
    );
    // A nullable variable with a default may fill a non-null argument.
    assert_valid(r#"query($u: String = "tavern") { groupByUrlname(urlname: $u) { id } }"#);
    // IDs take strings or integers.
    assert_valid("{ event(id: 312345678) { id } }");
}

#[test]
fn unknown_fields_are_named_with_their_position() {
    assert_error(
        "{\n  event(id: \"1\") {\n    id\n    tickets\n  }\n}",
        &["`tickets`", "`Event`"],
        4,
        5,
    );
    assert_error(
        "{ groupByUrlname(urlname: \"x\") { upcomingEvents { count } } }",
        &["`upcomingEvents`", "`Group`"],
        1,
        34,
    );
    assert_error("{ isOnline }", &["`isOnline`", "`Query`"], 1, 3);
}

#[test]
fn arguments_must_exist_be_given_and_fit() {
    assert_error(
        "{ groupByUrlname(urlname: \"x\") { events(limit: 3) { totalCount } } }",
        &["unknown argument `limit`", "`Group.events`"],
        1,
        34,
    );
    assert_error(
        "{ groupByUrlname { id } }",
        &["requires argument `urlname`", "String!"],
        1,
        3,
    );
    assert_error(
        "{ groupByUrlname(urlname: 5) { id } }",
        &["argument `urlname`", "expects `String`", "integer `5`"],
        1,
        3,
    );
    assert_error(
        "{ groupByUrlname(urlname: null) { id } }",
        &["argument `urlname`", "cannot be null"],
        1,
        3,
    );
    assert_error(
        "{ event(id: \"1\", id: \"2\") { id } }",
        &["`id` is given more than once"],
        1,
        3,
    );
}

#[test]
fn enum_literals_must_be_members() {
    assert_error(
        "{ groupByUrlname(urlname: \"x\") { events(filter: { status: [ACTIVE, LIVE] }) { totalCount } } }",
        &["`LIVE`", "`EventStatus`", "field `status`"],
        1,
        34,
    );
    assert_error(
        "{ groupByUrlname(urlname: \"x\") { events(sort: \"ASC\") { totalCount } } }",
        &["`SortOrder`", "string \"ASC\""],
        1,
        34,
    );
}

#[test]
fn input_objects_are_checked_field_by_field() {
    assert_error(
        "{ groupByUrlname(urlname: \"x\") { events(filter: { startsAfter: \"2026-01-01\" }) { totalCount } } }",
        &["`GroupEventFilter` has no field `startsAfter`"],
        1,
        34,
    );
    assert_error(
        "mutation { closeEventRsvps(input: {}) { errors { code } } }",
        &["misses required field `eventId`"],
        1,
        12,
    );
}

#[test]
fn leaves_and_composites_need_the_right_selection() {
    assert_error(
        "{ event(id: \"1\") { title { text } } }",
        &["`Event.title`", "leaf"],
        1,
        20,
    );
    assert_error(
        "{ event(id: \"1\") { group } }",
        &["`Event.group`", "must have a selection"],
        1,
        20,
    );
    assert_error("{ __typename { x } }", &["`__typename`", "leaf"], 1, 3);
}

#[test]
fn variables_are_declared_used_and_typed() {
    assert_error(
        "query { event(id: $id) { id } }",
        &["`$id` is not defined"],
        1,
        9,
    );
    assert_error(
        "query Q($id: ID!, $unused: Int) { event(id: $id) { id } }",
        &["`$unused` is never used"],
        1,
        19,
    );
    assert_error(
        "query Q($n: String) { groupByUrlname(urlname: \"x\") { events(first: $n) { totalCount } } }",
        &["`$n`", "`String`", "argument `first`", "`Int`"],
        1,
        54,
    );
    assert_error(
        "query Q($u: String) { groupByUrlname(urlname: $u) { id } }",
        &["`$u`", "expects `String!`"],
        1,
        23,
    );
    let errors = check("query Q($g: Group) { self { id } }");
    assert!(
        errors.iter().any(|e| e
            .message
            .contains("`$g` has type `Group`, which is not an input type")),
        "{errors:#?}"
    );
    assert_error(
        "query Q($s: [RsvpStatus]) { event(id: \"1\") { rsvps(filter: { rsvpStatus: $s, eventType: $s }) { totalCount } } }",
        &["`$s`", "field `eventType`", "[EventType]"],
        1,
        46,
    );
}

#[test]
fn fragments_must_exist_be_used_fit_and_not_cycle() {
    assert_error(
        "{ self { ...Missing } }",
        &["fragment `Missing` is not defined"],
        1,
        13,
    );
    assert_error(
        "{ self { id } }\nfragment Unused on Member { name }",
        &["fragment `Unused` is never used"],
        2,
        1,
    );
    assert_error(
        "{ event(id: \"1\") { ...M } }\nfragment M on Member { name }",
        &["`Member` can never apply to a value of type `Event`"],
        2,
        1,
    );
    let errors =
        check("{ self { ...A } }\nfragment A on Member { ...B }\nfragment B on Member { ...A }");
    assert!(
        errors.iter().any(|e| e.message.contains("spreads itself")),
        "{errors:#?}"
    );
    assert_error(
        "{ self { ... on Nope { id } } }",
        &["unknown type `Nope`"],
        1,
        14,
    );
}

#[test]
fn documents_are_checked_as_a_whole() {
    assert_error("{ self { a: id a: name } }", &["answer as `a`"], 1, 16);
    let errors = check("{ self { id } }\n{ self { name } }");
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors[0].message.contains("anonymous operation"));
    assert_error(
        "subscription { self { id } }",
        &["does not support subscriptions"],
        1,
        1,
    );
    assert_error(
        "{ self @live { id } }",
        &["unknown directive `@live`"],
        1,
        8,
    );
    assert_error("{ self @skip { id } }", &["requires argument `if`"], 1, 8);
}

#[test]
fn syntax_errors_report_their_position() {
    let errors = check("{\n  self { id \n}");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].message.starts_with("syntax error"),
        "{}",
        errors[0]
    );
    assert!(errors[0].line >= 2, "{}", errors[0]);
    let errors = check("");
    assert_eq!(errors.len(), 1, "{errors:#?}");
}

/// The Meetup schema has no interfaces or unions; this small one does.
const ABSTRACT_SCHEMA: &str = r#"
interface Node { id: ID! }
type Dragon implements Node { id: ID! name: String! hoard: Int }
type Knight implements Node { id: ID! name: String! }
type Tavern { id: ID! }
union Creature = Dragon | Knight
type Query { node(id: ID!): Node creatures: [Creature!]! tavern: Tavern }
"#;

fn check_abstract(source: &str) -> Vec<ValidationError> {
    let schema = Schema::parse(ABSTRACT_SCHEMA).unwrap();
    parse_and_validate(&schema, source)
        .err()
        .unwrap_or_default()
}

#[test]
fn interfaces_and_unions_follow_their_possible_types() {
    let valid = check_abstract(
        "{ node(id: 1) { id __typename ... on Dragon { hoard } }
           creatures { __typename ... on Knight { name } ...D } }
         fragment D on Dragon { name hoard }",
    );
    assert!(valid.is_empty(), "{valid:#?}");

    let errors = check_abstract("{ creatures { name } }");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].message.contains("`name` on type `Creature`"));
    assert!(errors[0].message.contains("inline fragment"));

    let errors = check_abstract("{ node(id: 1) { hoard } }");
    assert!(
        errors[0].message.contains("`hoard` on type `Node`"),
        "{errors:#?}"
    );

    let errors = check_abstract("{ creatures { ... on Tavern { id } } }");
    assert!(
        errors[0]
            .message
            .contains("`Tavern` can never apply to a value of type `Creature`"),
        "{errors:#?}"
    );
}

#[test]
fn directives_are_checked_for_place_and_repetition() {
    let errors = check("{ self { id @skip(if: true) @skip(if: false) } }");
    assert!(
        errors.iter().any(|e| e.message.contains("more than once")),
        "{errors:#?}"
    );
    let errors = check("{ self { ...F } }\nfragment F on Member @skip(if: true) { id }");
    assert!(
        errors
            .iter()
            .any(|e| e.message.contains("not allowed on a fragment definition")),
        "{errors:#?}"
    );
    assert!(check("query Q($s: Boolean!) { self { id @skip(if: $s) } }").is_empty());
    let errors = check("query Q($s: Boolean) { self { id @skip(if: $s) } }");
    assert!(
        errors.iter().any(|e| e.message.contains("`Boolean!`")),
        "{errors:#?}"
    );
}
