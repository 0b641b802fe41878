//! Validates the client's GraphQL documents against Meetup's schema at build time, with
//! the same code the fake server uses at run time, so a field Meetup does not have fails
//! the build (naming the field and its line:column) instead of a sync in production.

#[allow(dead_code)]
#[path = "src/schema.rs"]
mod schema;

#[allow(dead_code)]
#[path = "src/validate.rs"]
mod validate;

#[allow(dead_code)]
#[path = "src/queries.rs"]
mod queries;

use std::process::ExitCode;

fn main() -> ExitCode {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=schema/meetup.graphql");
    println!("cargo::rerun-if-changed=src/schema.rs");
    println!("cargo::rerun-if-changed=src/validate.rs");
    println!("cargo::rerun-if-changed=src/queries.rs");
    let schema = match schema::Schema::parse(schema::MEETUP_SCHEMA_SDL) {
        Ok(schema) => schema,
        Err(e) => {
            eprintln!("schema/meetup.graphql: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut failed = false;
    for (name, document) in queries::ALL {
        match validate::parse_and_validate(&schema, document) {
            Ok(doc) => {
                let named = validate::operations(&doc)
                    .iter()
                    .any(|op| op.name == Some(name));
                if !named {
                    eprintln!("query {name}: the document has no operation named `{name}`");
                    failed = true;
                }
            }
            Err(errors) => {
                for error in errors {
                    eprintln!("query {name} is invalid against the Meetup schema: {error}");
                }
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
