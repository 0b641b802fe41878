//! The one place that knows the seed's tables, its Redis keys and every SQL statement
//! (`dark-tower-database-schema.md`). It depends on [`crate::domain`] (the ids a key is
//! made of), never the reverse.
//!
//! - PostgreSQL: [`MIGRATIONS`], the seed's three migration steps, run inside the schema
//!   [`SCHEMA`]; the tables named through `table!`, which yields the schema-qualified
//!   name as a literal; every statement, with the rows it returns, in `sql`.
//! - Redis (`keys`): one function per key pattern, the field names of the hashes and
//!   the TTLs, as named constants.
//!
//! No other module formats a key, spells a table or writes SQL.

mod keys;
mod sql;

pub use keys::*;
pub(crate) use sql::*;

use crate::domain::Month;

/// The PostgreSQL schema of this feature (the seeds of two features define `users`).
pub const SCHEMA: &str = "meet";

/// The seed's migration strategy, step for step: `001_initial_schema` (every `CREATE
/// TABLE`), `002_add_indexes` (every `CREATE INDEX`), `003_add_triggers` (the `updated_at`
/// triggers and the audit partition function).
pub const MIGRATIONS: store::FeatureMigrations = store::FeatureMigrations {
    schema: SCHEMA,
    steps: &[
        (
            1,
            "initial_schema",
            include_str!("../../migrations/001_initial_schema.sql"),
        ),
        (
            2,
            "add_indexes",
            include_str!("../../migrations/002_add_indexes.sql"),
        ),
        (
            3,
            "add_triggers",
            include_str!("../../migrations/003_add_triggers.sql"),
        ),
    ],
};

/// The schema-qualified name of one of the seed's tables, as a string literal usable in
/// `concat!` (pooled connections do not have `meet` on their search path).
macro_rules! table {
    (users) => {
        "meet.users"
    };
    (oauth_providers) => {
        "meet.oauth_providers"
    };
    (meetings) => {
        "meet.meetings"
    };
    (meeting_participants) => {
        "meet.meeting_participants"
    };
    (recordings) => {
        "meet.recordings"
    };
    (meeting_controllers) => {
        "meet.meeting_controllers"
    };
    (media_handlers) => {
        "meet.media_handlers"
    };
    (audit_logs) => {
        "meet.audit_logs"
    };
    (audit_logs_default) => {
        "meet.audit_logs_default"
    };
    (api_keys) => {
        "meet.api_keys"
    };
    (audit_logs_ensure_partition) => {
        "meet.audit_logs_ensure_partition"
    };
}
pub(crate) use table;

/// Every table of the seed, unqualified, in the seed's order (for checks and tests).
pub const TABLES: [&str; 9] = [
    "users",
    "oauth_providers",
    "meetings",
    "meeting_participants",
    "recordings",
    "meeting_controllers",
    "media_handlers",
    "audit_logs",
    "api_keys",
];

/// The `audit_logs` partition of `month`: `audit_logs_y2025m01` as in the seed.
pub fn audit_partition_name(month: Month) -> String {
    format!("audit_logs_y{:04}m{:02}", month.year(), month.month())
}

/// The month of an `audit_logs` partition name, or `None` for any other table (the
/// default partition, say).
pub fn audit_partition_month(name: &str) -> Option<Month> {
    let rest = name.strip_prefix("audit_logs_y")?;
    let (year, month) = rest.split_once('m')?;
    if year.len() != 4 || month.len() != 2 {
        return None;
    }
    if !year
        .bytes()
        .chain(month.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Month::new(year.parse().ok()?, month.parse().ok()?)
}

/// The schema-qualified partition name for DDL; built from a [`Month`], never from raw
/// text, so it is always a plain identifier.
pub(crate) fn qualified_audit_partition(month: Month) -> String {
    format!("{SCHEMA}.{}", audit_partition_name(month))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn audit_partition_names_round_trip_and_other_tables_are_not_months() {
        let jan = Month::new(2025, 1).unwrap();
        assert_eq!(audit_partition_name(jan), "audit_logs_y2025m01");
        assert_eq!(audit_partition_month("audit_logs_y2025m01"), Some(jan));
        assert_eq!(qualified_audit_partition(jan), "meet.audit_logs_y2025m01");
        for other in [
            "audit_logs_default",
            "audit_logs_y2025m13",
            "audit_logs_y25m01",
            "audit_logs_y2025m1x",
        ] {
            assert_eq!(audit_partition_month(other), None, "{other}");
        }
    }

    #[test]
    fn qualified_table_names_live_in_the_migrated_schema() {
        let prefix = format!("{SCHEMA}.");
        for name in [
            table!(users),
            table!(meetings),
            table!(audit_logs),
            table!(api_keys),
        ] {
            assert!(name.starts_with(&prefix), "{name}");
            assert!(TABLES.contains(&&name[prefix.len()..]), "{name}");
        }
        let steps: Vec<(i64, &str)> = MIGRATIONS.steps.iter().map(|(v, d, _)| (*v, *d)).collect();
        assert_eq!(
            steps,
            [
                (1, "initial_schema"),
                (2, "add_indexes"),
                (3, "add_triggers")
            ]
        );
    }
}
