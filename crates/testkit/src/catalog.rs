//! A PostgreSQL schema read back from the catalog, for the tests that hold a migrated
//! schema to its seed: one reader for every feature, so each test states only what
//! the seed says.

use sqlx::Row;
use store::Postgres;

/// One column: `name type [NOT NULL] [DEFAULT expr]` as [`Column::line`] prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub table: String,
    pub name: String,
    /// `format_type`, e.g. `character varying(255)`, `timestamp with time zone`.
    pub ty: String,
    pub not_null: bool,
    pub default: Option<String>,
}

impl Column {
    /// `name type [NOT NULL] [DEFAULT expr]`.
    pub fn line(&self) -> String {
        let mut line = format!("{} {}", self.name, self.ty);
        if self.not_null {
            line.push_str(" NOT NULL");
        }
        if let Some(default) = &self.default {
            line.push_str(" DEFAULT ");
            line.push_str(default);
        }
        line
    }
}

/// A constraint: its table, name, kind (`p`, `u`, `f`, `c`, ...) and definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    pub table: String,
    pub name: String,
    pub kind: String,
    pub definition: String,
}

/// An index: its table, name and `CREATE INDEX` definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    pub table: String,
    pub name: String,
    pub definition: String,
}

/// A user trigger: its table, name and `CREATE TRIGGER` definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trigger {
    pub table: String,
    pub name: String,
    pub definition: String,
}

/// Everything of one schema, without `_sqlx_migrations` and without partitions
/// (a partitioned table is read once, as its parent).
#[derive(Debug, Clone)]
pub struct Catalog {
    pub schema: String,
    /// In table order, then column order.
    pub columns: Vec<Column>,
    /// Sorted by table, then name.
    pub constraints: Vec<Constraint>,
    /// Sorted by name.
    pub indexes: Vec<Index>,
    /// Sorted by table, then name.
    pub triggers: Vec<Trigger>,
}

impl Catalog {
    /// Reads `schema`.
    pub async fn read(pg: &Postgres, schema: &str) -> Catalog {
        let columns = sqlx::query(
            "SELECT c.relname::text AS tbl, a.attname::text AS name, \
                    format_type(a.atttypid, a.atttypmod) AS ty, a.attnotnull AS not_null, \
                    pg_get_expr(d.adbin, d.adrelid) AS def \
             FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
               AND a.attnum > 0 AND NOT a.attisdropped AND c.relname <> '_sqlx_migrations' \
             ORDER BY c.relname, a.attnum",
        )
        .bind(schema)
        .fetch_all(pg.pool())
        .await
        .expect("reading columns from the catalog")
        .iter()
        .map(|r| Column {
            table: r.get("tbl"),
            name: r.get("name"),
            ty: r.get("ty"),
            not_null: r.get("not_null"),
            default: r.get("def"),
        })
        .collect();
        let constraints = sqlx::query(
            "SELECT c.relname::text AS tbl, k.conname::text AS name, k.contype::text AS kind, \
                    pg_get_constraintdef(k.oid) AS def \
             FROM pg_constraint k \
             JOIN pg_class c ON c.oid = k.conrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
               AND c.relname <> '_sqlx_migrations' \
             ORDER BY 1, 2",
        )
        .bind(schema)
        .fetch_all(pg.pool())
        .await
        .expect("reading constraints from the catalog")
        .iter()
        .map(|r| Constraint {
            table: r.get("tbl"),
            name: r.get("name"),
            kind: r.get("kind"),
            definition: r.get("def"),
        })
        .collect();
        let indexes = sqlx::query(
            "SELECT i.tablename::text AS tbl, i.indexname::text AS name, i.indexdef AS def \
             FROM pg_indexes i \
             JOIN pg_class c ON c.relname = i.tablename \
             JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = i.schemaname \
             WHERE i.schemaname = $1 AND i.tablename <> '_sqlx_migrations' \
               AND NOT c.relispartition \
             ORDER BY 2",
        )
        .bind(schema)
        .fetch_all(pg.pool())
        .await
        .expect("reading indexes from the catalog")
        .iter()
        .map(|r| Index {
            table: r.get("tbl"),
            name: r.get("name"),
            definition: r.get("def"),
        })
        .collect();
        let triggers = sqlx::query(
            "SELECT c.relname::text AS tbl, t.tgname::text AS name, \
                    pg_get_triggerdef(t.oid) AS def \
             FROM pg_trigger t \
             JOIN pg_class c ON c.oid = t.tgrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = $1 AND NOT t.tgisinternal AND NOT c.relispartition \
             ORDER BY 1, 2",
        )
        .bind(schema)
        .fetch_all(pg.pool())
        .await
        .expect("reading triggers from the catalog")
        .iter()
        .map(|r| Trigger {
            table: r.get("tbl"),
            name: r.get("name"),
            definition: r.get("def"),
        })
        .collect();
        Catalog {
            schema: schema.to_owned(),
            columns,
            constraints,
            indexes,
            triggers,
        }
    }

    /// The columns of `table`, one [`Column::line`] each, joined by newlines.
    pub fn column_lines(&self, table: &str) -> String {
        self.columns
            .iter()
            .filter(|c| c.table == table)
            .map(Column::line)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The tables, sorted.
    pub fn tables(&self) -> Vec<String> {
        let mut tables: Vec<String> = self.columns.iter().map(|c| c.table.clone()).collect();
        tables.dedup();
        tables
    }
}
