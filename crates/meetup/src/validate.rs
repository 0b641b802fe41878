//! Checks a GraphQL operation document against a [`Schema`], the way a GraphQL server
//! does before it executes anything.
//!
//! Why our own validator: the client's queries must fail the *build* when they name a
//! field Meetup does not have (see `build.rs`), and the fake server must refuse exactly
//! what Meetup refuses, so a wrong field shows up in our tests and not in production. A
//! full GraphQL framework would do it with a dependency tree ten times this crate's size;
//! the rules we need fit in one module over `graphql-parser`'s AST.
//!
//! Rules checked (named as in the GraphQL specification, section 5):
//! - documents: only executable definitions, unique operation and fragment names, a lone
//!   anonymous operation, every fragment used, no fragment cycles;
//! - fields: selected fields exist on their parent (objects and interfaces; only
//!   `__typename` directly on a union), leaf fields have no selection set and composite
//!   fields have one, fields sharing a response name side by side in one selection set
//!   are the same field with the same arguments (conflicts that only arise through
//!   fragments are not detected);
//! - arguments: each exists, appears once and has a value of a compatible type, and every
//!   non-null argument without a default is given; input-object fields likewise; enum
//!   literals are members of their enum;
//! - fragments: type conditions name existing composite types that can overlap the
//!   parent type; spreads name defined fragments;
//! - variables: unique, of input types, defined before use, all used, and used only where
//!   their type fits (a nullable variable in a non-null position only with a default);
//! - directives: only `@include(if:)` and `@skip(if:)`.
//!
//! Every error carries the 1-based line and column of the node it is about (for an
//! argument or value, the field or directive that holds it: the parser keeps no
//! positions for values). Introspection fields other than `__typename` are not
//! supported and are reported as unknown fields.
//!
//! Like `schema`, this module depends only on `std` and `graphql-parser`: `build.rs`
//! includes it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use graphql_parser::Pos;
use graphql_parser::query as q;

use crate::schema::{Schema, TypeDef, TypeKind, TypeRef};

/// A parsed executable document whose strings are owned.
pub type Document = q::Document<'static, String>;
/// One selection set of a [`Document`].
pub type SelectionSet = q::SelectionSet<'static, String>;
/// One value literal of a [`Document`].
pub type Value = q::Value<'static, String>;
/// One variable definition of a [`Document`].
pub type VariableDefinition = q::VariableDefinition<'static, String>;
/// One directive of a [`Document`].
pub type Directive = q::Directive<'static, String>;

/// One reason a document is invalid, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ValidationError {
    /// 1-based line of the node the error is about.
    pub line: usize,
    /// 1-based column of the node the error is about.
    pub column: usize,
    /// What is wrong, naming the field, argument, variable or fragment.
    pub message: String,
}

impl ValidationError {
    fn at(pos: Pos, message: String) -> ValidationError {
        ValidationError {
            line: pos.line,
            column: pos.column,
            message,
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

/// Which root an operation starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperationKind {
    /// `query` or a bare selection set.
    Query,
    /// `mutation`.
    Mutation,
    /// `subscription`.
    Subscription,
}

/// A uniform view of the four shapes `graphql-parser` gives an operation.
#[derive(Debug, Clone, Copy)]
pub struct Operation<'d> {
    /// Query, mutation or subscription.
    pub kind: OperationKind,
    /// The operation's name, if any.
    pub name: Option<&'d str>,
    /// Where it starts.
    pub position: Pos,
    /// Its variable definitions.
    pub variables: &'d [VariableDefinition],
    /// Its directives.
    pub directives: &'d [Directive],
    /// Its top-level selection set.
    pub selection_set: &'d SelectionSet,
}

impl<'d> Operation<'d> {
    fn of(def: &'d q::OperationDefinition<'static, String>) -> Operation<'d> {
        match def {
            q::OperationDefinition::SelectionSet(set) => Operation {
                kind: OperationKind::Query,
                name: None,
                position: set.span.0,
                variables: &[],
                directives: &[],
                selection_set: set,
            },
            q::OperationDefinition::Query(op) => Operation {
                kind: OperationKind::Query,
                name: op.name.as_deref(),
                position: op.position,
                variables: &op.variable_definitions,
                directives: &op.directives,
                selection_set: &op.selection_set,
            },
            q::OperationDefinition::Mutation(op) => Operation {
                kind: OperationKind::Mutation,
                name: op.name.as_deref(),
                position: op.position,
                variables: &op.variable_definitions,
                directives: &op.directives,
                selection_set: &op.selection_set,
            },
            q::OperationDefinition::Subscription(op) => Operation {
                kind: OperationKind::Subscription,
                name: op.name.as_deref(),
                position: op.position,
                variables: &op.variable_definitions,
                directives: &op.directives,
                selection_set: &op.selection_set,
            },
        }
    }

    /// The root type this operation selects from, if the schema has it.
    pub fn root_type<'s>(&self, schema: &'s Schema) -> Option<&'s TypeDef> {
        let name = match self.kind {
            OperationKind::Query => Some(schema.query_type()),
            OperationKind::Mutation => schema.mutation_type(),
            OperationKind::Subscription => schema.subscription_type(),
        }?;
        schema.get(name)
    }
}

/// All operations of a document, in order.
pub fn operations(doc: &Document) -> Vec<Operation<'_>> {
    doc.definitions
        .iter()
        .filter_map(|d| match d {
            q::Definition::Operation(op) => Some(Operation::of(op)),
            q::Definition::Fragment(_) => None,
        })
        .collect()
}

/// The fragment definitions of a document by name (the first of duplicates).
pub fn fragments(doc: &Document) -> HashMap<&str, &q::FragmentDefinition<'static, String>> {
    let mut out = HashMap::new();
    for def in &doc.definitions {
        if let q::Definition::Fragment(f) = def {
            out.entry(f.name.as_str()).or_insert(f);
        }
    }
    out
}

/// Picks the operation to run: the one named `name`, or the only one.
pub fn select_operation<'d>(
    doc: &'d Document,
    name: Option<&str>,
) -> Result<Operation<'d>, String> {
    let ops = operations(doc);
    match name {
        Some(name) => ops
            .into_iter()
            .find(|op| op.name == Some(name))
            .ok_or_else(|| format!("unknown operation named `{name}`")),
        None if ops.len() == 1 => Ok(ops[0]),
        None => Err("the document has several operations; give operationName".to_owned()),
    }
}

/// Parses `source` and validates it against `schema`; the document if it is valid.
pub fn parse_and_validate(schema: &Schema, source: &str) -> Result<Document, Vec<ValidationError>> {
    let doc = parse(source).map_err(|e| vec![e])?;
    let errors = validate(schema, &doc);
    if errors.is_empty() {
        Ok(doc)
    } else {
        Err(errors)
    }
}

/// Parses an executable document, reporting a syntax error with its position.
pub fn parse(source: &str) -> Result<Document, ValidationError> {
    match q::parse_query::<String>(source) {
        Ok(doc) => Ok(doc.into_static()),
        Err(e) => {
            let text = e.to_string();
            let pos = parse_error_position(&text).unwrap_or(Pos { line: 1, column: 1 });
            let message = text
                .lines()
                .skip(1)
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            let message = if message.is_empty() {
                text.trim().to_owned()
            } else {
                message
            };
            Err(ValidationError::at(pos, format!("syntax error: {message}")))
        }
    }
}

/// `graphql-parser` puts the position in its message as "... at LINE:COLUMN".
fn parse_error_position(text: &str) -> Option<Pos> {
    let first = text.lines().next()?;
    let (_, tail) = first.rsplit_once(" at ")?;
    let (line, column) = tail.trim().split_once(':')?;
    Some(Pos {
        line: line.trim().parse().ok()?,
        column: column.trim().parse().ok()?,
    })
}

/// Validates a parsed document; empty when it is valid. Errors are sorted by position.
pub fn validate(schema: &Schema, doc: &Document) -> Vec<ValidationError> {
    let mut v = Validator {
        schema,
        fragments: HashMap::new(),
        errors: Vec::new(),
        variables: HashMap::new(),
        used_variables: HashSet::new(),
        used_fragments: HashSet::new(),
        fragment_stack: Vec::new(),
    };
    v.document(doc);
    let mut errors = v.errors;
    errors.sort();
    errors.dedup();
    errors
}

struct VariableInfo {
    ty: TypeRef,
    has_default: bool,
}

struct Validator<'s, 'd> {
    schema: &'s Schema,
    fragments: HashMap<&'d str, &'d q::FragmentDefinition<'static, String>>,
    errors: Vec<ValidationError>,
    variables: HashMap<&'d str, VariableInfo>,
    used_variables: HashSet<&'d str>,
    used_fragments: HashSet<&'d str>,
    fragment_stack: Vec<&'d str>,
}

impl<'s, 'd> Validator<'s, 'd> {
    fn error(&mut self, pos: Pos, message: String) {
        self.errors.push(ValidationError::at(pos, message));
    }

    fn document(&mut self, doc: &'d Document) {
        for def in &doc.definitions {
            if let q::Definition::Fragment(f) = def
                && self.fragments.insert(f.name.as_str(), f).is_some()
            {
                self.error(
                    f.position,
                    format!("fragment `{}` is defined more than once", f.name),
                );
            }
        }
        let ops = operations(doc);
        if ops.is_empty() {
            self.error(
                Pos { line: 1, column: 1 },
                "the document has no operation".to_owned(),
            );
        }
        let mut names = HashSet::new();
        for op in &ops {
            match op.name {
                None if ops.len() > 1 => self.error(
                    op.position,
                    "an anonymous operation must be the only operation in the document".to_owned(),
                ),
                Some(name) if !names.insert(name) => self.error(
                    op.position,
                    format!("operation `{name}` is defined more than once"),
                ),
                _ => {}
            }
        }
        for op in ops {
            self.operation(op);
        }
        let mut unused: Vec<_> = self
            .fragments
            .values()
            .filter(|f| !self.used_fragments.contains(f.name.as_str()))
            .map(|f| (f.position, f.name.clone()))
            .collect();
        unused.sort_by_key(|(pos, _)| (pos.line, pos.column));
        for (pos, name) in unused {
            self.error(pos, format!("fragment `{name}` is never used"));
        }
    }

    fn operation(&mut self, op: Operation<'d>) {
        self.variables.clear();
        self.used_variables.clear();
        for def in op.variables {
            let ty = TypeRef::from_ast(&def.var_type);
            match self.schema.get(ty.named()) {
                Some(t) if t.kind.is_input() => {}
                Some(_) => self.error(
                    def.position,
                    format!(
                        "variable `${}` has type `{ty}`, which is not an input type",
                        def.name
                    ),
                ),
                None => self.error(
                    def.position,
                    format!("variable `${}` has unknown type `{}`", def.name, ty.named()),
                ),
            }
            if let Some(default) = &def.default_value {
                let place = format!("the default value of variable `${}`", def.name);
                self.value(default, &ty, &place, def.position, true, false);
            }
            let info = VariableInfo {
                ty,
                has_default: def.default_value.is_some(),
            };
            if self.variables.insert(def.name.as_str(), info).is_some() {
                self.error(
                    def.position,
                    format!("variable `${}` is defined more than once", def.name),
                );
            }
        }
        for d in op.directives {
            self.error(
                d.position,
                format!("directive `@{}` is not allowed on an operation", d.name),
            );
        }
        let what = match op.kind {
            OperationKind::Query => "queries",
            OperationKind::Mutation => "mutations",
            OperationKind::Subscription => "subscriptions",
        };
        match op.root_type(self.schema) {
            Some(root) => self.selection_set(root, op.selection_set),
            None => self.error(op.position, format!("the schema does not support {what}")),
        }
        for def in op.variables {
            if !self.used_variables.contains(def.name.as_str()) {
                self.error(
                    def.position,
                    format!("variable `${}` is never used", def.name),
                );
            }
        }
    }

    fn selection_set(&mut self, parent: &'s TypeDef, set: &'d SelectionSet) {
        // Response name -> (field name, printed arguments): the cheap half of the
        // spec's "field selection merging" rule, for fields written side by side.
        let mut seen: HashMap<&'d str, (&'d str, String)> = HashMap::new();
        for selection in &set.items {
            match selection {
                q::Selection::Field(field) => {
                    let response = field.alias.as_deref().unwrap_or(&field.name);
                    let args = format!("{:?}", sorted_args(&field.arguments));
                    match seen.get(response) {
                        Some((name, previous)) if *name != field.name || *previous != args => {
                            self.error(
                                field.position,
                                format!(
                                    "fields `{name}` and `{}` both answer as `{response}` but differ in name or arguments; use an alias",
                                    field.name
                                ),
                            );
                        }
                        Some(_) => {}
                        None => {
                            seen.insert(response, (&field.name, args));
                        }
                    }
                    self.field(parent, field);
                }
                q::Selection::InlineFragment(fragment) => {
                    self.directives(&fragment.directives, "inline fragment");
                    let target = match &fragment.type_condition {
                        None => Some(parent),
                        Some(q::TypeCondition::On(name)) => {
                            self.type_condition(parent, name, fragment.position)
                        }
                    };
                    if let Some(target) = target {
                        self.selection_set(target, &fragment.selection_set);
                    }
                }
                q::Selection::FragmentSpread(spread) => {
                    self.directives(&spread.directives, "fragment spread");
                    self.spread(parent, spread);
                }
            }
        }
    }

    fn spread(&mut self, parent: &'s TypeDef, spread: &'d q::FragmentSpread<'static, String>) {
        let name = spread.fragment_name.as_str();
        let Some(fragment) = self.fragments.get(name).copied() else {
            self.error(spread.position, format!("fragment `{name}` is not defined"));
            return;
        };
        self.used_fragments.insert(name);
        if self.fragment_stack.contains(&name) {
            self.error(
                spread.position,
                format!("fragment `{name}` spreads itself (a cycle)"),
            );
            return;
        }
        let q::TypeCondition::On(on) = &fragment.type_condition;
        let Some(target) = self.type_condition(parent, on, fragment.position) else {
            return;
        };
        for d in &fragment.directives {
            self.error(
                d.position,
                format!(
                    "directive `@{}` is not allowed on a fragment definition",
                    d.name
                ),
            );
        }
        self.fragment_stack.push(name);
        self.selection_set(target, &fragment.selection_set);
        self.fragment_stack.pop();
    }

    /// The type a fragment selects on, if it exists, is composite and can overlap `parent`.
    fn type_condition(&mut self, parent: &'s TypeDef, on: &str, pos: Pos) -> Option<&'s TypeDef> {
        let Some(target) = self.schema.get(on) else {
            self.error(
                pos,
                format!("fragment type condition names unknown type `{on}`"),
            );
            return None;
        };
        if !target.kind.is_composite() {
            self.error(
                pos,
                format!("fragment type condition `{on}` is not an object, interface or union"),
            );
            return None;
        }
        if target.possible_types.is_disjoint(&parent.possible_types) {
            self.error(
                pos,
                format!(
                    "a fragment on `{on}` can never apply to a value of type `{}`",
                    parent.name
                ),
            );
            return None;
        }
        Some(target)
    }

    fn field(&mut self, parent: &'s TypeDef, field: &'d q::Field<'static, String>) {
        self.directives(&field.directives, "field");
        if field.name == "__typename" {
            if let Some((arg, _)) = field.arguments.first() {
                self.error(
                    field.position,
                    format!("unknown argument `{arg}` on field `__typename`"),
                );
            }
            if !field.selection_set.items.is_empty() {
                self.error(
                    field.position,
                    "field `__typename` of type `String!` is a leaf and cannot have a selection set"
                        .to_owned(),
                );
            }
            return;
        }
        let Some(def) = parent.fields.get(field.name.as_str()) else {
            let hint = match parent.kind {
                TypeKind::Union => "; select it inside an inline fragment on a member type",
                _ => "",
            };
            self.error(
                field.position,
                format!(
                    "cannot query field `{}` on type `{}`{hint}",
                    field.name, parent.name
                ),
            );
            return;
        };
        let qualified = format!("{}.{}", parent.name, def.name);
        let mut given = HashSet::new();
        for (name, value) in &field.arguments {
            if !given.insert(name.as_str()) {
                self.error(
                    field.position,
                    format!("argument `{name}` is given more than once on field `{qualified}`"),
                );
                continue;
            }
            match def.args.get(name.as_str()) {
                Some(arg) => {
                    let place = format!("argument `{name}` of field `{qualified}`");
                    self.value(
                        value,
                        &arg.ty,
                        &place,
                        field.position,
                        false,
                        arg.default.is_some(),
                    );
                }
                None => self.error(
                    field.position,
                    format!("unknown argument `{name}` on field `{qualified}`"),
                ),
            }
        }
        for arg in def.args.values() {
            if arg.is_required() && !given.contains(arg.name.as_str()) {
                self.error(
                    field.position,
                    format!(
                        "field `{qualified}` requires argument `{}` of type `{}`",
                        arg.name, arg.ty
                    ),
                );
            }
        }
        let Some(ty) = self.schema.get(def.ty.named()) else {
            return; // Schema::parse guarantees it exists.
        };
        let has_selection = !field.selection_set.items.is_empty();
        if ty.kind.is_leaf() && has_selection {
            self.error(
                field.position,
                format!(
                    "field `{qualified}` of type `{}` is a leaf and cannot have a selection set",
                    def.ty
                ),
            );
        } else if ty.kind.is_composite() && !has_selection {
            self.error(
                field.position,
                format!(
                    "field `{qualified}` of type `{}` must have a selection of subfields",
                    def.ty
                ),
            );
        } else if ty.kind.is_composite() {
            self.selection_set(ty, &field.selection_set);
        }
    }

    fn directives(&mut self, directives: &'d [Directive], on: &str) {
        let mut seen = HashSet::new();
        for d in directives {
            if !seen.insert(d.name.as_str()) {
                self.error(
                    d.position,
                    format!("directive `@{}` is given more than once on a {on}", d.name),
                );
                continue;
            }
            if d.name != "include" && d.name != "skip" {
                self.error(
                    d.position,
                    format!("unknown directive `@{}` on a {on}", d.name),
                );
                continue;
            }
            let mut has_if = false;
            for (name, value) in &d.arguments {
                if name == "if" && !has_if {
                    has_if = true;
                    let ty = TypeRef::NonNull(Box::new(TypeRef::Named("Boolean".to_owned())));
                    let place = format!("argument `if` of directive `@{}`", d.name);
                    self.value(value, &ty, &place, d.position, false, false);
                } else {
                    self.error(
                        d.position,
                        format!(
                            "unknown or repeated argument `{name}` on directive `@{}`",
                            d.name
                        ),
                    );
                }
            }
            if !has_if {
                self.error(
                    d.position,
                    format!(
                        "directive `@{}` requires argument `if` of type `Boolean!`",
                        d.name
                    ),
                );
            }
        }
    }

    /// Checks a value literal against the type of the place it is given for.
    fn value(
        &mut self,
        value: &'d Value,
        ty: &TypeRef,
        place: &str,
        pos: Pos,
        const_only: bool,
        location_has_default: bool,
    ) {
        if let q::Value::Variable(name) = value {
            if const_only {
                self.error(pos, format!("variable `${name}` cannot be used in {place}"));
                return;
            }
            self.used_variables.insert(name.as_str());
            match self.variables.get(name.as_str()) {
                None => self.error(
                    pos,
                    format!("variable `${name}` is not defined (used in {place})"),
                ),
                Some(var) => {
                    if !variable_fits(&var.ty, var.has_default, ty, location_has_default) {
                        let var_ty = var.ty.clone();
                        self.error(
                            pos,
                            format!(
                                "variable `${name}` of type `{var_ty}` cannot be used for {place}, which expects `{ty}`"
                            ),
                        );
                    }
                }
            }
            return;
        }
        if let q::Value::Null = value {
            if ty.is_non_null() {
                self.error(pos, format!("{place} of type `{ty}` cannot be null"));
            }
            return;
        }
        match ty {
            TypeRef::NonNull(inner) => self.value(value, inner, place, pos, const_only, false),
            TypeRef::List(inner) => match value {
                q::Value::List(items) => {
                    for item in items {
                        self.value(item, inner, place, pos, const_only, false);
                    }
                }
                // Input coercion: a single value stands for a list of one.
                single => self.value(single, inner, place, pos, const_only, false),
            },
            TypeRef::Named(name) => {
                let Some(def) = self.schema.get(name) else {
                    return;
                };
                match def.kind {
                    TypeKind::Scalar => {
                        if !scalar_accepts(name, value) {
                            self.error(
                                pos,
                                format!("{place} expects `{name}`, found {}", describe(value)),
                            );
                        }
                    }
                    TypeKind::Enum => match value {
                        q::Value::Enum(member) if def.enum_values.contains(member.as_str()) => {}
                        q::Value::Enum(member) => self.error(
                            pos,
                            format!("`{member}` is not a member of enum `{name}` ({place})"),
                        ),
                        other => self.error(
                            pos,
                            format!(
                                "{place} expects a member of enum `{name}`, found {}",
                                describe(other)
                            ),
                        ),
                    },
                    TypeKind::InputObject => match value {
                        q::Value::Object(fields) => {
                            for (key, field_value) in fields {
                                match def.input_fields.get(key.as_str()) {
                                    Some(field) => {
                                        let place = format!("field `{key}` of {place}");
                                        self.value(
                                            field_value,
                                            &field.ty,
                                            &place,
                                            pos,
                                            const_only,
                                            field.default.is_some(),
                                        );
                                    }
                                    None => self.error(
                                        pos,
                                        format!(
                                            "input type `{name}` has no field `{key}` ({place})"
                                        ),
                                    ),
                                }
                            }
                            for field in def.input_fields.values() {
                                if field.is_required() && !fields.contains_key(&field.name) {
                                    self.error(
                                        pos,
                                        format!(
                                            "{place} misses required field `{}` of type `{}`",
                                            field.name, field.ty
                                        ),
                                    );
                                }
                            }
                        }
                        other => self.error(
                            pos,
                            format!(
                                "{place} expects input object `{name}`, found {}",
                                describe(other)
                            ),
                        ),
                    },
                    TypeKind::Object | TypeKind::Interface | TypeKind::Union => {}
                }
            }
        }
    }
}

fn sorted_args(args: &[(String, Value)]) -> BTreeMap<&str, &Value> {
    args.iter().map(|(k, v)| (k.as_str(), v)).collect()
}

/// May a variable of type `var` (with or without a default) stand where `location` is
/// expected? The spec's "All Variable Usages Are Allowed" rule.
fn variable_fits(
    var: &TypeRef,
    var_has_default: bool,
    location: &TypeRef,
    location_has_default: bool,
) -> bool {
    if let TypeRef::NonNull(loc_inner) = location
        && !var.is_non_null()
    {
        return (var_has_default || location_has_default) && types_compatible(var, loc_inner);
    }
    types_compatible(var, location)
}

fn types_compatible(var: &TypeRef, location: &TypeRef) -> bool {
    match (var, location) {
        (TypeRef::NonNull(v), TypeRef::NonNull(l)) => types_compatible(v, l),
        (_, TypeRef::NonNull(_)) => false,
        (TypeRef::NonNull(v), l) => types_compatible(v, l),
        (TypeRef::List(v), TypeRef::List(l)) => types_compatible(v, l),
        (TypeRef::List(_), _) | (_, TypeRef::List(_)) => false,
        (TypeRef::Named(v), TypeRef::Named(l)) => v == l,
    }
}

/// Literal forms each scalar accepts. Custom scalars (`DateTime`, `Duration`, ...) are
/// strings or numbers on Meetup; lists, objects and enum names never are.
fn scalar_accepts(scalar: &str, value: &Value) -> bool {
    match (scalar, value) {
        ("Int", q::Value::Int(n)) => n.as_i64().is_some_and(|n| i32::try_from(n).is_ok()),
        ("Float", q::Value::Int(_) | q::Value::Float(_)) => true,
        ("String", q::Value::String(_)) => true,
        ("Boolean", q::Value::Boolean(_)) => true,
        ("ID", q::Value::String(_) | q::Value::Int(_)) => true,
        ("Int" | "Float" | "String" | "Boolean" | "ID", _) => false,
        (_, q::Value::String(_) | q::Value::Int(_) | q::Value::Float(_) | q::Value::Boolean(_)) => {
            true
        }
        _ => false,
    }
}

fn describe(value: &Value) -> String {
    match value {
        q::Value::Variable(name) => format!("variable `${name}`"),
        q::Value::Int(n) => format!("integer `{}`", n.as_i64().unwrap_or_default()),
        q::Value::Float(f) => format!("float `{f}`"),
        q::Value::String(s) => format!("string {s:?}"),
        q::Value::Boolean(b) => format!("boolean `{b}`"),
        q::Value::Null => "`null`".to_owned(),
        q::Value::Enum(e) => format!("enum value `{e}`"),
        q::Value::List(_) => "a list".to_owned(),
        q::Value::Object(_) => "an input object".to_owned(),
    }
}
