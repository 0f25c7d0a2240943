//! A whole instance's database into another, empty one (`veneer db copy`):
//! the embedded SQLite default into PostgreSQL, back, or between two of the
//! same kind. Every table the schema has goes across, parents first, in pages
//! of [`COPY_PAGE`] rows (keyset paging on the primary key), with every id kept; then each generated id's counter
//! (a PostgreSQL sequence, SQLite's `sqlite_sequence`) is set past the highest
//! id copied and past the source's own counter, so no id the source ever gave
//! is given again.
//!
//! Both sides are opened as the URL's user, like migrations, never as the
//! pooled `veneer_app` role: the application role may not write every table
//! (the audit trail is append-only for it), and only the owner may move a
//! sequence. Row-level security still applies to an owner (`FORCE`), so each
//! transaction runs in the platform scope. The source is only read, in one
//! snapshot, and never migrated; the target is migrated to this release's
//! schema first, must then hold no row at all, and is written in one
//! transaction: a copy that fails leaves it empty, and is simply run again.
//!
//! It must not interpret rows: it moves cells (`tables`) and leaves meaning,
//! secrets included, to the layers above.

use std::collections::BTreeSet;

use serde::Serialize;
use sqlx::{AnyConnection, AssertSqlSafe, Connection};

use super::tables::{self, Insert, TableSchema, quote_ident};
use super::{Backend, Storage, StorageError, StorageOptions, backend_of, migrate};

/// Rows read and written at a time, so memory stays bounded whatever the
/// table's size.
pub const COPY_PAGE: u32 = 500;

/// One table's rows on both sides, counted after the copy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableCount {
    pub table: String,
    /// Rows in the source's snapshot.
    pub source: u64,
    /// Rows in the target once the copy committed.
    pub target: u64,
}

/// What a copy did.
#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    /// `sqlite` or `postgres`.
    pub source: &'static str,
    pub target: &'static str,
    /// The schema both have: the last migration's description.
    pub schema: String,
    /// Every table, parents first.
    pub tables: Vec<TableCount>,
}

impl CopyReport {
    /// Whether every table holds as many rows on both sides.
    pub fn counts_match(&self) -> bool {
        self.tables.iter().all(|t| t.source == t.target)
    }

    /// Rows copied in all.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.target).sum()
    }
}

/// Copies the instance at `from` into the database at `to` (migrated here
/// first, then required empty), then counts every table on both sides.
/// Invalid when the two schemas differ or `from` is not a Veneer database of
/// this release; Conflict when `to` holds any row. Nothing is written to
/// `to` then, nor when the copy fails part way.
pub async fn copy_instance(
    from: &str,
    to: &str,
    options: &StorageOptions,
) -> Result<CopyReport, StorageError> {
    sqlx::any::install_default_drivers();
    let (source_backend, target_backend) = (backend_of(from)?, backend_of(to)?);
    if from == to {
        return Err(StorageError::Invalid(
            "--from and --to name the same database: copy into a new, empty one".into(),
        ));
    }
    let mut source = owner(from, options)
        .await
        .map_err(|err| context("the source database", err))?;
    let schema = check_migrations(&mut source, source_backend, "the source").await?;
    // Migrates the target (and creates a SQLite file); the copy itself then
    // works on an owner connection of its own.
    Storage::connect(to, options)
        .await
        .map_err(|err| context("the target database", err))?
        .close()
        .await;
    let mut target = owner(to, options)
        .await
        .map_err(|err| context("the target database", err))?;
    check_migrations(&mut target, target_backend, "the target").await?;

    let mut read = match source_backend {
        Backend::Sqlite => source.begin().await?,
        Backend::Postgres => {
            let mut tx = source
                .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await?;
            platform_scope(&mut tx).await?;
            tx
        }
    };
    let mut write = match target_backend {
        Backend::Sqlite => target.begin_with("BEGIN IMMEDIATE").await?,
        Backend::Postgres => {
            let mut tx = target.begin().await?;
            platform_scope(&mut tx).await?;
            tx
        }
    };
    let from_tables = tables::schema(&mut read, source_backend).await?;
    let to_tables = tables::schema(&mut write, target_backend).await?;
    same_tables(&from_tables, &to_tables)?;
    refuse_rows(&mut write, &to_tables).await?;

    let mut counts = Vec::with_capacity(from_tables.len());
    for table in &from_tables {
        let Some(into) = to_tables.iter().find(|t| t.name == table.name) else {
            continue;
        };
        copy_table(&mut read, table, &mut write, into, target_backend).await?;
        if into.generated_id {
            let given = if table.generated_id {
                id_counter(&mut read, source_backend, &table.name).await?
            } else {
                0
            };
            advance_counter(&mut write, target_backend, &into.name, given).await?;
        }
        counts.push((table.name.clone(), count(&mut read, &table.name).await?));
    }
    write.commit().await?;
    read.rollback().await?;
    let mut report = CopyReport {
        source: name_of(source_backend),
        target: name_of(target_backend),
        schema,
        tables: Vec::with_capacity(counts.len()),
    };
    let mut check = target.begin().await?;
    if target_backend == Backend::Postgres {
        platform_scope(&mut check).await?;
    }
    for (table, rows) in counts {
        report.tables.push(TableCount {
            target: count(&mut check, &table).await?,
            source: rows,
            table,
        });
    }
    check.commit().await?;
    source.close().await?;
    target.close().await?;
    Ok(report)
}

fn name_of(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

/// Says which side could not be opened.
fn context(which: &str, err: StorageError) -> StorageError {
    match err {
        StorageError::Database(err) => {
            StorageError::Unavailable(format!("cannot open {which}: {err}"))
        }
        StorageError::Unavailable(why) => {
            StorageError::Unavailable(format!("cannot open {which}: {why}"))
        }
        other => other,
    }
}

/// A connection as the URL's user (on PostgreSQL, without the application
/// role), within the acquire timeout. On PostgreSQL it lifts the statement
/// timeout a role may carry as a backstop (counting or paging a large table
/// can take longer than a request may) and gives a transaction a minute idle
/// (the read waits while a page is written, the write while one is read).
async fn owner(url: &str, options: &StorageOptions) -> Result<AnyConnection, StorageError> {
    let mut conn = tokio::time::timeout(options.acquire_timeout, AnyConnection::connect(url))
        .await
        .map_err(|_| {
            StorageError::Unavailable(format!(
                "no answer from the database within {:?}: check that it is running and reachable",
                options.acquire_timeout
            ))
        })??;
    if backend_of(url)? == Backend::Postgres {
        sqlx::query(
            "SELECT set_config('statement_timeout', '0', false), \
                    set_config('idle_in_transaction_session_timeout', '60000', false)",
        )
        .execute(&mut conn)
        .await?;
    }
    Ok(conn)
}

async fn platform_scope(conn: &mut AnyConnection) -> Result<(), StorageError> {
    sqlx::query("SELECT set_config('app.platform', 'on', true)")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The migrations applied must be exactly this release's (the two backends
/// number theirs apart, so each is held to its own list); the schema's name
/// is the last one's description.
async fn check_migrations(
    conn: &mut AnyConnection,
    backend: Backend,
    which: &str,
) -> Result<String, StorageError> {
    let applied: Vec<(i64, String)> = sqlx::query_as(
        "SELECT version, description FROM _sqlx_migrations WHERE success ORDER BY version",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|_| {
        StorageError::Invalid(format!(
            "{which} is not a Veneer database (it has no migrations table)"
        ))
    })?;
    let migrator = match backend {
        Backend::Sqlite => migrate::sqlite(),
        Backend::Postgres => migrate::postgres(),
    };
    let known: Vec<(i64, String)> = migrator
        .iter()
        .map(|m| (m.version, m.description.to_string()))
        .collect();
    let name = |list: &[(i64, String)]| {
        list.last().map_or_else(
            || "none".to_owned(),
            |(v, d)| format!("migration {v} `{d}`"),
        )
    };
    if applied != known {
        let what = if applied.len() < known.len() && known.starts_with(&applied) {
            "older: start this release's `veneer serve` on it once (it migrates), stop it, \
             then copy"
        } else {
            "of another release: copy with the release that serves it"
        };
        return Err(StorageError::Invalid(format!(
            "{which}'s schema (at {}) is not this release's (at {}); it is {what}",
            name(&applied),
            name(&known)
        )));
    }
    Ok(name(&known))
}

/// The same tables with the same columns (types may differ between the
/// backends: each value is bound as the target's).
fn same_tables(from: &[TableSchema], to: &[TableSchema]) -> Result<(), StorageError> {
    let names = |schema: &[TableSchema]| -> BTreeSet<String> {
        schema.iter().map(|t| t.name.clone()).collect()
    };
    let (a, b) = (names(from), names(to));
    let mut differences: Vec<String> = a
        .difference(&b)
        .map(|t| format!("table `{t}` only in the source"))
        .chain(
            b.difference(&a)
                .map(|t| format!("table `{t}` only in the target")),
        )
        .collect();
    for table in from {
        let Some(other) = to.iter().find(|t| t.name == table.name) else {
            continue;
        };
        let columns = |t: &TableSchema| -> BTreeSet<String> {
            t.columns.iter().map(|(c, _)| c.clone()).collect()
        };
        let (a, b) = (columns(table), columns(other));
        differences.extend(
            a.difference(&b)
                .map(|c| format!("column `{}.{c}` only in the source", table.name))
                .chain(
                    b.difference(&a)
                        .map(|c| format!("column `{}.{c}` only in the target", table.name)),
                ),
        );
    }
    if differences.is_empty() {
        return Ok(());
    }
    Err(StorageError::Invalid(format!(
        "the two schemas differ ({}): copy between databases of one Veneer release",
        differences.join(", ")
    )))
}

/// Conflict when any table of the target holds a row.
async fn refuse_rows(conn: &mut AnyConnection, schema: &[TableSchema]) -> Result<(), StorageError> {
    let mut taken = Vec::new();
    for table in schema {
        let any: Option<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT 1 FROM {} LIMIT 1",
            quote_ident(&table.name)
        )))
        .fetch_optional(&mut *conn)
        .await?;
        if any.is_some() {
            taken.push(table.name.as_str());
        }
    }
    if taken.is_empty() {
        return Ok(());
    }
    Err(StorageError::Conflict(format!(
        "the target database already holds rows (in {}): copy into a new, empty database, \
         or drop and create this one again; nothing was written",
        taken.join(", ")
    )))
}

async fn copy_table(
    read: &mut AnyConnection,
    table: &TableSchema,
    write: &mut AnyConnection,
    into: &TableSchema,
    target: Backend,
) -> Result<(), StorageError> {
    let columns: Vec<&str> = table.columns.iter().map(|(c, _)| c.as_str()).collect();
    let how = Insert {
        returning: None,
        overriding_system_value: target == Backend::Postgres && into.generated_id,
    };
    let mut offset = 0u64;
    let mut after: Option<Vec<tables::Cell>> = None;
    loop {
        let rows = tables::read_after(read, table, after.as_deref(), COPY_PAGE, offset).await?;
        for row in &rows {
            tables::insert_row(write, into, &columns, row, how).await?;
        }
        if rows.len() < COPY_PAGE as usize {
            return Ok(());
        }
        offset += u64::from(COPY_PAGE);
        after = rows.last().map(|row| tables::key_of(table, row));
    }
}

/// The last id the source's counter gave for `table` (0 if none).
async fn id_counter(
    conn: &mut AnyConnection,
    backend: Backend,
    table: &str,
) -> Result<i64, StorageError> {
    let last: Option<Option<i64>> = match backend {
        Backend::Sqlite => {
            sqlx::query_scalar("SELECT seq FROM sqlite_sequence WHERE name = $1")
                .bind(table)
                .fetch_optional(&mut *conn)
                .await?
        }
        Backend::Postgres => {
            sqlx::query_scalar(
                "SELECT pg_sequence_last_value(pg_get_serial_sequence($1, 'id')::regclass)",
            )
            .bind(quote_ident(table))
            .fetch_optional(&mut *conn)
            .await?
        }
    };
    Ok(last.flatten().unwrap_or(0))
}

/// Sets the target's id counter of `table` past its highest id and past
/// `given` (the source's counter).
async fn advance_counter(
    conn: &mut AnyConnection,
    backend: Backend,
    table: &str,
    given: i64,
) -> Result<(), StorageError> {
    let highest: Option<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT max(id) FROM {}",
        quote_ident(table)
    )))
    .fetch_one(&mut *conn)
    .await?;
    let last = highest.unwrap_or(0).max(given);
    if last <= 0 {
        return Ok(());
    }
    match backend {
        Backend::Postgres => {
            sqlx::query("SELECT setval(pg_get_serial_sequence($1, 'id')::regclass, $2, true)")
                .bind(quote_ident(table))
                .bind(last)
                .execute(&mut *conn)
                .await?;
        }
        Backend::Sqlite => {
            // Inserting an id already moved it to the highest one; the
            // source's counter may be further still.
            sqlx::query("UPDATE sqlite_sequence SET seq = $2 WHERE name = $1 AND seq < $2")
                .bind(table)
                .bind(last)
                .execute(&mut *conn)
                .await?;
            sqlx::query(
                "INSERT INTO sqlite_sequence (name, seq) SELECT $1, $2 \
                  WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = $1)",
            )
            .bind(table)
            .bind(last)
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

async fn count(conn: &mut AnyConnection, table: &str) -> Result<u64, StorageError> {
    let n: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT count(*) FROM {}",
        quote_ident(table)
    )))
    .fetch_one(&mut *conn)
    .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}
