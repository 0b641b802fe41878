//! The Meetup GraphQL schema as data: types, their fields, arguments and enum values.
//!
//! Parsed once from the SDL in `schema/meetup.graphql` (printed from a real introspection
//! response). Both the validator and the fake server read it, so the client's queries, the
//! fake's answers and the real API all agree on one authority.
//!
//! This module depends only on `std` and `graphql-parser` because `build.rs` includes it
//! (with `#[path]`) to validate the client's queries at build time.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::OnceLock;

use graphql_parser::schema as ast;

/// The SDL of Meetup's `/gql-ext` endpoint, the one authority for field names and types.
pub const MEETUP_SCHEMA_SDL: &str = include_str!("../schema/meetup.graphql");

/// A constant GraphQL value from the schema (an argument's or input field's default).
pub type ConstValue = graphql_parser::query::Value<'static, String>;

/// A reference to a type, with its list and non-null wrappers (`[Event!]!`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeRef {
    /// A named type (`Event`).
    Named(String),
    /// A list of the inner type (`[Event]`).
    List(Box<TypeRef>),
    /// The inner type, never null (`Event!`).
    NonNull(Box<TypeRef>),
}

impl TypeRef {
    /// The named type under all wrappers.
    pub fn named(&self) -> &str {
        match self {
            TypeRef::Named(name) => name,
            TypeRef::List(inner) | TypeRef::NonNull(inner) => inner.named(),
        }
    }

    /// True for `T!`.
    pub fn is_non_null(&self) -> bool {
        matches!(self, TypeRef::NonNull(_))
    }

    /// The type without its outermost non-null wrapper.
    pub fn nullable(&self) -> &TypeRef {
        match self {
            TypeRef::NonNull(inner) => inner,
            other => other,
        }
    }

    /// Converts a parser type (schema or query side; both use the same AST type).
    pub fn from_ast<'a, T: graphql_parser::query::Text<'a>>(ty: &ast::Type<'a, T>) -> TypeRef {
        match ty {
            ast::Type::NamedType(name) => TypeRef::Named(name.as_ref().to_owned()),
            ast::Type::ListType(inner) => TypeRef::List(Box::new(TypeRef::from_ast(inner))),
            ast::Type::NonNullType(inner) => TypeRef::NonNull(Box::new(TypeRef::from_ast(inner))),
        }
    }
}

impl fmt::Display for TypeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TypeRef::Named(name) => f.write_str(name),
            TypeRef::List(inner) => write!(f, "[{inner}]"),
            TypeRef::NonNull(inner) => write!(f, "{inner}!"),
        }
    }
}

/// What kind of type a named type is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeKind {
    /// A leaf with a custom or built-in representation (`String`, `DateTime`).
    Scalar,
    /// An object with fields.
    Object,
    /// An abstract type whose fields its implementors share.
    Interface,
    /// An abstract type that is one of several objects.
    Union,
    /// A leaf that is one of a closed set of names.
    Enum,
    /// An argument value with fields.
    InputObject,
}

impl TypeKind {
    /// Scalars and enums: selected without a selection set.
    pub fn is_leaf(self) -> bool {
        matches!(self, TypeKind::Scalar | TypeKind::Enum)
    }

    /// Objects, interfaces and unions: selected with a selection set.
    pub fn is_composite(self) -> bool {
        matches!(
            self,
            TypeKind::Object | TypeKind::Interface | TypeKind::Union
        )
    }

    /// Types that may appear as arguments or variables.
    pub fn is_input(self) -> bool {
        matches!(
            self,
            TypeKind::Scalar | TypeKind::Enum | TypeKind::InputObject
        )
    }
}

/// An argument of a field, or a field of an input object.
#[derive(Debug, Clone)]
pub struct InputValueDef {
    /// Its name.
    pub name: String,
    /// Its type.
    pub ty: TypeRef,
    /// The value used when it is not given.
    pub default: Option<ConstValue>,
}

impl InputValueDef {
    /// A non-null input without a default must be given.
    pub fn is_required(&self) -> bool {
        self.ty.is_non_null() && self.default.is_none()
    }
}

/// A field of an object or interface.
#[derive(Debug, Clone)]
pub struct FieldDef {
    /// Its name.
    pub name: String,
    /// Its arguments by name.
    pub args: BTreeMap<String, InputValueDef>,
    /// The type of its value.
    pub ty: TypeRef,
}

/// A named type.
#[derive(Debug, Clone)]
pub struct TypeDef {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: TypeKind,
    /// Fields (objects, interfaces).
    pub fields: BTreeMap<String, FieldDef>,
    /// Fields (input objects).
    pub input_fields: BTreeMap<String, InputValueDef>,
    /// Members (enums).
    pub enum_values: BTreeSet<String>,
    /// Objects a value of this type can be: itself for an object, members for a union,
    /// implementors for an interface.
    pub possible_types: BTreeSet<String>,
}

impl TypeDef {
    fn new(name: &str, kind: TypeKind) -> TypeDef {
        TypeDef {
            name: name.to_owned(),
            kind,
            fields: BTreeMap::new(),
            input_fields: BTreeMap::new(),
            enum_values: BTreeSet::new(),
            possible_types: BTreeSet::new(),
        }
    }
}

/// Why an SDL document is not a usable schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError(pub String);

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid GraphQL schema: {}", self.0)
    }
}

impl std::error::Error for SchemaError {}

/// A parsed, self-consistent schema.
#[derive(Debug, Clone)]
pub struct Schema {
    types: BTreeMap<String, TypeDef>,
    query: String,
    mutation: Option<String>,
    subscription: Option<String>,
}

const BUILT_IN_SCALARS: [&str; 5] = ["Int", "Float", "String", "Boolean", "ID"];

impl Schema {
    /// The Meetup schema, parsed once per process.
    ///
    /// `build.rs` parses the same text, so this cannot fail in a built crate; the
    /// `Result` exists only because the crate never panics.
    pub fn meetup() -> Result<&'static Schema, SchemaError> {
        static MEETUP: OnceLock<Result<Schema, SchemaError>> = OnceLock::new();
        MEETUP
            .get_or_init(|| Schema::parse(MEETUP_SCHEMA_SDL))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Parses SDL and checks that every referenced type exists and has the right kind.
    pub fn parse(sdl: &str) -> Result<Schema, SchemaError> {
        let doc = ast::parse_schema::<String>(sdl).map_err(|e| SchemaError(e.to_string()))?;
        let mut types: BTreeMap<String, TypeDef> = BUILT_IN_SCALARS
            .iter()
            .map(|name| ((*name).to_owned(), TypeDef::new(name, TypeKind::Scalar)))
            .collect();
        let mut roots: (Option<String>, Option<String>, Option<String>) = (None, None, None);
        let mut implements: Vec<(String, String)> = Vec::new();
        for definition in &doc.definitions {
            match definition {
                ast::Definition::SchemaDefinition(def) => {
                    roots = (
                        def.query.clone(),
                        def.mutation.clone(),
                        def.subscription.clone(),
                    );
                }
                ast::Definition::TypeDefinition(def) => {
                    let ty = convert_type(def, &mut implements);
                    if types.insert(ty.name.clone(), ty).is_some()
                        && !BUILT_IN_SCALARS.contains(&type_name(def))
                    {
                        return Err(SchemaError(format!(
                            "type `{}` is defined twice",
                            type_name(def)
                        )));
                    }
                }
                ast::Definition::TypeExtension(_) => {
                    return Err(SchemaError("type extensions are not supported".into()));
                }
                ast::Definition::DirectiveDefinition(_) => {}
            }
        }
        for (object, interface) in implements {
            match types.get_mut(&interface) {
                Some(def) if def.kind == TypeKind::Interface => {
                    def.possible_types.insert(object);
                }
                _ => {
                    return Err(SchemaError(format!(
                        "`{object}` implements `{interface}`, which is not an interface"
                    )));
                }
            }
        }
        let schema = Schema {
            query: roots.0.unwrap_or_else(|| "Query".to_owned()),
            mutation: roots.1.or_else(|| {
                types
                    .contains_key("Mutation")
                    .then(|| "Mutation".to_owned())
            }),
            subscription: roots.2.or_else(|| {
                types
                    .contains_key("Subscription")
                    .then(|| "Subscription".to_owned())
            }),
            types,
        };
        schema.check()?;
        Ok(schema)
    }

    /// Every reference resolves, outputs are output types and inputs are input types.
    fn check(&self) -> Result<(), SchemaError> {
        for root in [
            Some(&self.query),
            self.mutation.as_ref(),
            self.subscription.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            if self.get(root).map(|t| t.kind) != Some(TypeKind::Object) {
                return Err(SchemaError(format!("root type `{root}` is not an object")));
            }
        }
        for ty in self.types.values() {
            for field in ty.fields.values() {
                match self.get(field.ty.named()) {
                    Some(t) if !matches!(t.kind, TypeKind::InputObject) => {}
                    _ => {
                        return Err(SchemaError(format!(
                            "field `{}.{}` has unknown or input type `{}`",
                            ty.name, field.name, field.ty
                        )));
                    }
                }
                for arg in field.args.values() {
                    self.check_input(&format!("{}.{}({})", ty.name, field.name, arg.name), arg)?;
                }
            }
            for input in ty.input_fields.values() {
                self.check_input(&format!("{}.{}", ty.name, input.name), input)?;
            }
            for member in &ty.possible_types {
                if self.get(member).map(|t| t.kind) != Some(TypeKind::Object) {
                    return Err(SchemaError(format!(
                        "`{member}`, a possible type of `{}`, is not an object",
                        ty.name
                    )));
                }
            }
        }
        Ok(())
    }

    fn check_input(&self, place: &str, input: &InputValueDef) -> Result<(), SchemaError> {
        match self.get(input.ty.named()) {
            Some(t) if t.kind.is_input() => Ok(()),
            _ => Err(SchemaError(format!(
                "`{place}` has unknown or non-input type `{}`",
                input.ty
            ))),
        }
    }

    /// A named type.
    pub fn get(&self, name: &str) -> Option<&TypeDef> {
        self.types.get(name)
    }

    /// The query root type's name.
    pub fn query_type(&self) -> &str {
        &self.query
    }

    /// The mutation root type's name, if the schema has mutations.
    pub fn mutation_type(&self) -> Option<&str> {
        self.mutation.as_deref()
    }

    /// The subscription root type's name, if the schema has subscriptions.
    pub fn subscription_type(&self) -> Option<&str> {
        self.subscription.as_deref()
    }

    /// A field of an object or interface type.
    pub fn field(&self, type_name: &str, field: &str) -> Option<&FieldDef> {
        self.get(type_name)?.fields.get(field)
    }

    /// Number of named types (built-in scalars included).
    pub fn type_count(&self) -> usize {
        self.types.len()
    }
}

fn type_name<'b>(def: &'b ast::TypeDefinition<'_, String>) -> &'b str {
    match def {
        ast::TypeDefinition::Scalar(t) => &t.name,
        ast::TypeDefinition::Object(t) => &t.name,
        ast::TypeDefinition::Interface(t) => &t.name,
        ast::TypeDefinition::Union(t) => &t.name,
        ast::TypeDefinition::Enum(t) => &t.name,
        ast::TypeDefinition::InputObject(t) => &t.name,
    }
}

fn convert_type(
    def: &ast::TypeDefinition<'_, String>,
    implements: &mut Vec<(String, String)>,
) -> TypeDef {
    match def {
        ast::TypeDefinition::Scalar(t) => TypeDef::new(&t.name, TypeKind::Scalar),
        ast::TypeDefinition::Object(t) => {
            let mut ty = TypeDef::new(&t.name, TypeKind::Object);
            ty.fields = convert_fields(&t.fields);
            ty.possible_types.insert(t.name.clone());
            for interface in &t.implements_interfaces {
                implements.push((t.name.clone(), interface.clone()));
            }
            ty
        }
        ast::TypeDefinition::Interface(t) => {
            let mut ty = TypeDef::new(&t.name, TypeKind::Interface);
            ty.fields = convert_fields(&t.fields);
            ty
        }
        ast::TypeDefinition::Union(t) => {
            let mut ty = TypeDef::new(&t.name, TypeKind::Union);
            ty.possible_types = t.types.iter().cloned().collect();
            ty
        }
        ast::TypeDefinition::Enum(t) => {
            let mut ty = TypeDef::new(&t.name, TypeKind::Enum);
            ty.enum_values = t.values.iter().map(|v| v.name.clone()).collect();
            ty
        }
        ast::TypeDefinition::InputObject(t) => {
            let mut ty = TypeDef::new(&t.name, TypeKind::InputObject);
            ty.input_fields = convert_inputs(&t.fields);
            ty
        }
    }
}

fn convert_fields(fields: &[ast::Field<'_, String>]) -> BTreeMap<String, FieldDef> {
    fields
        .iter()
        .map(|f| {
            (
                f.name.clone(),
                FieldDef {
                    name: f.name.clone(),
                    args: convert_inputs(&f.arguments),
                    ty: TypeRef::from_ast(&f.field_type),
                },
            )
        })
        .collect()
}

fn convert_inputs(inputs: &[ast::InputValue<'_, String>]) -> BTreeMap<String, InputValueDef> {
    inputs
        .iter()
        .map(|i| {
            (
                i.name.clone(),
                InputValueDef {
                    name: i.name.clone(),
                    ty: TypeRef::from_ast(&i.value_type),
                    default: i.default_value.as_ref().map(|v| v.into_static()),
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meetup_schema_parses_with_the_types_we_use() {
        let schema = Schema::meetup().unwrap();
        assert!(schema.type_count() > 200);
        assert_eq!(schema.query_type(), "Query");
        assert_eq!(schema.mutation_type(), Some("Mutation"));
        assert_eq!(schema.subscription_type(), None);
        let events = schema.field("Group", "events").unwrap();
        assert_eq!(events.ty.to_string(), "GroupEventConnection!");
        assert_eq!(events.args["filter"].ty.to_string(), "GroupEventFilter");
        let urlname = &schema.field("Query", "groupByUrlname").unwrap().args["urlname"];
        assert!(urlname.is_required());
        let status = schema.get("RsvpStatus").unwrap();
        assert!(status.enum_values.contains("YES"));
        assert_eq!(status.kind, TypeKind::Enum);
    }

    #[test]
    fn unknown_types_are_rejected() {
        let err = Schema::parse("type Query { a: Missing }").unwrap_err();
        assert!(err.0.contains("Missing"), "{err}");
        let err = Schema::parse("input I { a: Int } type Query { a: I }").unwrap_err();
        assert!(err.0.contains("Query.a"), "{err}");
    }
}
