//! Storage errors, classified so callers can answer without looking at SQL:
//! missing (404), taken or stale (409), down or overloaded (503), bad input (400),
//! a tenant's key-value store full (409), or a genuine database fault (500).

use sqlx::error::{DatabaseError, ErrorKind};
use sqlx::migrate::MigrateError;
use sqlx::postgres::PgDatabaseError;
use sqlx::sqlite::SqliteError;

use veneer_core::tenancy_id::TenantId;

/// What went wrong in storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The thing asked for does not exist (or belongs to another tenant).
    #[error("not found: {0}")]
    NotFound(String),
    /// The change clashes with existing data or with a concurrent change.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot serve now (unreachable, pool exhausted, timed out,
    /// busy): retry later; the HTTP layer answers 503.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The input cannot be stored as given.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// The write would take the tenant's key-value store over its caps
    /// (the message says which, and how to make room).
    #[error("key-value quota exceeded: {0}")]
    KvQuotaExceeded(String),
    /// Storing another plugin version would take the tenant past its caps
    /// (the message says which, and how to make room).
    #[error("plugin storage full: {0}")]
    PluginStoreFull(String),
    /// The schema could not be brought up to date.
    #[error("database migration failed: {0}")]
    Migration(#[source] MigrateError),
    /// Any other database failure: a bug or a broken database, not the caller's fault.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StorageError {
    fn from(err: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match err {
            E::PoolTimedOut => StorageError::Unavailable(
                "timed out waiting for a database connection: the database is down, \
                 unreachable or overloaded"
                    .into(),
            ),
            E::PoolClosed => {
                StorageError::Unavailable("the connection pool is closed (shutting down)".into())
            }
            E::Io(e) => StorageError::Unavailable(format!("cannot reach the database: {e}")),
            E::Tls(e) => StorageError::Unavailable(format!("TLS to the database failed: {e}")),
            E::WorkerCrashed => {
                StorageError::Unavailable("the SQLite worker thread crashed".into())
            }
            E::Configuration(e) => {
                StorageError::Invalid(format!("bad database configuration: {e}"))
            }
            E::RowNotFound => StorageError::NotFound("no such row".into()),
            E::Database(db) => from_database_error(db),
            other => StorageError::Database(other),
        }
    }
}

impl From<MigrateError> for StorageError {
    fn from(err: MigrateError) -> Self {
        match err {
            MigrateError::Execute(e) => match StorageError::from(e) {
                StorageError::Database(e) => StorageError::Migration(MigrateError::Execute(e)),
                // Unreachable or busy stays retryable.
                other => other,
            },
            other => StorageError::Migration(other),
        }
    }
}

fn from_database_error(db: Box<dyn DatabaseError>) -> StorageError {
    if let Some(pg) = db.try_downcast_ref::<PgDatabaseError>() {
        let code = pg.code();
        // 08: connection exception; 53: insufficient resources; 57: operator
        // intervention (57014 is also statement_timeout); 40001/40P01:
        // serialization failure and deadlock, retryable; 55P03: lock timeout;
        // 25P03: idle-in-transaction timeout.
        if code.starts_with("08")
            || code.starts_with("53")
            || code.starts_with("57")
            || matches!(code, "40001" | "40P01" | "55P03" | "25P03")
        {
            return StorageError::Unavailable(format!("PostgreSQL: {} ({code})", pg.message()));
        }
        // 22: data exception (e.g. a NUL byte in text, a value out of range).
        if code.starts_with("22") {
            return StorageError::Invalid(pg.message().to_owned());
        }
    }
    if let Some(lite) = db.try_downcast_ref::<SqliteError>() {
        let primary = lite
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .map(|c| c & 0xff);
        // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN.
        if matches!(primary, Some(5 | 6 | 10 | 13 | 14)) {
            return StorageError::Unavailable(format!("SQLite: {}", lite.message()));
        }
    }
    match db.kind() {
        ErrorKind::UniqueViolation => StorageError::Conflict(db.message().to_owned()),
        ErrorKind::ForeignKeyViolation => {
            StorageError::NotFound(format!("a referenced row does not exist: {}", db.message()))
        }
        ErrorKind::CheckViolation | ErrorKind::NotNullViolation => {
            StorageError::Invalid(db.message().to_owned())
        }
        _ => StorageError::Database(sqlx::Error::Database(db)),
    }
}

/// Whether `err` is a unique violation on the named column or constraint.
/// PostgreSQL names the constraint, SQLite names `table.column` in its message.
pub(super) fn is_unique_on(err: &sqlx::Error, pg_constraint: &str, sqlite_column: &str) -> bool {
    match err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            db.constraint() == Some(pg_constraint) || db.message().contains(sqlite_column)
        }
        _ => false,
    }
}

/// Maps a foreign-key failure on a tenant-scoped write to "this tenant does not
/// exist", which is what it means there.
pub(super) fn tenant_fk(tenant: &TenantId) -> impl Fn(sqlx::Error) -> StorageError + '_ {
    move |err| match &err {
        sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
            StorageError::NotFound(format!("tenant `{tenant}` does not exist"))
        }
        _ => StorageError::from(err),
    }
}

/// Checks that `text` is JSON; the database only stores it.
pub(super) fn check_json(what: &str, text: &str) -> Result<(), StorageError> {
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map(|_| ())
        .map_err(|e| StorageError::Invalid(format!("{what} is not valid JSON: {e}")))
}

/// Converts an unsigned count for a BIGINT column.
pub(super) fn to_i64(what: &str, value: u64) -> Result<i64, StorageError> {
    i64::try_from(value)
        .map_err(|_| StorageError::Invalid(format!("{what} = {value} is too large to store")))
}
