//! Per-connection and per-transaction set-up: the application role and timeouts
//! on PostgreSQL, pragmas on SQLite, and the transaction that carries the tenant
//! (or platform) context every query runs in.

use sqlx::AnyConnection;
use sqlx::{Any, AnyPool, Row, Transaction};

use super::{Backend, StorageError, StorageOptions};
use veneer_core::tenancy_id::TenantId;

/// The role pooled PostgreSQL connections act as (created by migration 0002).
pub(super) const APP_ROLE: &str = "veneer_app";

/// Session settings applied to every pooled PostgreSQL connection.
#[derive(Debug, Clone)]
pub(super) struct PgSessionSettings {
    statement_timeout_ms: String,
    idle_in_transaction_timeout_ms: String,
}

impl PgSessionSettings {
    pub(super) fn new(options: &StorageOptions) -> Self {
        Self {
            statement_timeout_ms: options.statement_timeout.as_millis().to_string(),
            idle_in_transaction_timeout_ms: options
                .idle_in_transaction_timeout
                .as_millis()
                .to_string(),
        }
    }
}

/// Drops the owner's rights for the application role and sets the timeouts.
/// `set_config` rather than `SET` so the values are bound, not spliced in.
pub(super) async fn prepare_postgres(
    conn: &mut AnyConnection,
    settings: &PgSessionSettings,
) -> Result<(), sqlx::Error> {
    sqlx::query("SET ROLE veneer_app")
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "SELECT set_config('statement_timeout', $1, false), \
                set_config('idle_in_transaction_session_timeout', $2, false)",
    )
    .bind(settings.statement_timeout_ms.as_str())
    .bind(settings.idle_in_transaction_timeout_ms.as_str())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Refuses to start when the application role could see through row-level
/// security: then RLS would silently protect nothing.
pub(super) async fn check_app_role(conn: &mut AnyConnection) -> Result<(), StorageError> {
    let row = sqlx::query(
        "SELECT current_user::text AS who, r.rolsuper AS superuser, r.rolbypassrls AS bypass, \
                (SELECT count(*) FROM pg_tables \
                  WHERE tableowner = current_user AND tablename = 'tenants') AS owned \
           FROM pg_roles r WHERE r.rolname = current_user",
    )
    .fetch_one(&mut *conn)
    .await?;
    let who: String = row.try_get("who")?;
    let superuser: bool = row.try_get("superuser")?;
    let bypass: bool = row.try_get("bypass")?;
    let owned: i64 = row.try_get("owned")?;
    if who != APP_ROLE || superuser || bypass || owned != 0 {
        return Err(StorageError::Invalid(format!(
            "role `{APP_ROLE}` must not be a superuser, bypass row-level security or own \
             the tables (current_user = `{who}`, superuser = {superuser}, bypassrls = {bypass}, \
             owns tables = {}): run `ALTER ROLE {APP_ROLE} NOSUPERUSER NOBYPASSRLS` and give \
             the tables to the migrating user",
            owned != 0
        )));
    }
    Ok(())
}

/// Per-connection SQLite pragmas. sqlx already turns foreign keys on and sets a
/// busy timeout; `synchronous = NORMAL` is the usual WAL companion: a power cut
/// may lose the last commits but never corrupts the file, and commits stop
/// paying an fsync each.
pub(super) async fn prepare_sqlite(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    sqlx::query("PRAGMA synchronous = NORMAL")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Whose rows a transaction may touch.
#[derive(Debug, Clone, Copy)]
pub(super) enum Scope<'a> {
    Tenant(&'a TenantId),
    Platform,
}

/// Whether a transaction will write: on SQLite a writer takes the write lock up
/// front (`BEGIN IMMEDIATE`), so it waits its turn on the busy timeout instead of
/// failing with SQLITE_BUSY when it later tries to upgrade a read lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    Read,
    Write,
    /// A read that sees one moment throughout (PostgreSQL's default isolation
    /// gives each statement its own); SQLite's read transactions already do.
    Snapshot,
}

/// Starts a transaction with the scope's context set. On PostgreSQL the setting
/// is transaction-local (`set_config(.., true)`), so it cannot outlive this
/// transaction on the pooled connection.
pub(super) async fn begin(
    pool: &AnyPool,
    backend: Backend,
    scope: Scope<'_>,
    access: Access,
) -> Result<Transaction<'static, Any>, StorageError> {
    let mut tx = match (backend, access) {
        (Backend::Sqlite, Access::Write) => pool.begin_with("BEGIN IMMEDIATE").await?,
        (Backend::Postgres, Access::Snapshot) => {
            pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .await?
        }
        _ => pool.begin().await?,
    };
    if backend == Backend::Postgres {
        match scope {
            Scope::Tenant(tenant) => {
                sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
                    .bind(tenant.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            Scope::Platform => {
                sqlx::query("SELECT set_config('app.platform', 'on', true)")
                    .execute(&mut *tx)
                    .await?;
            }
        }
    }
    Ok(tx)
}
