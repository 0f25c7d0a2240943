//! Storage: the only crate that runs SQL (and the only one depending on sqlx). It owns the schema (embedded migrations
//! for SQLite and PostgreSQL, from `host/storage/migrations/`), the connection pool and the
//! two ways in: [`TenantDb`], a handle bound to one tenant by type and the only way
//! to reach tenant data, and [`PlatformDb`], for admin operations and host lookups.
//! It must not know about HTTP, plugins' contents, caching or auth: callers get
//! plain records and [`StorageError`]s, and decide what they mean.
//!
//! Design choices:
//! - **One code path over `sqlx::AnyPool`** rather than an enum of pools. Every
//!   statement is written once: both backends accept `$N` placeholders,
//!   `ON CONFLICT .. DO UPDATE` and `RETURNING`, and we only store what `Any`
//!   carries losslessly (i64 times in unix milliseconds, TEXT JSON, BLOB/BYTEA
//!   binaries). The few places where the dialects differ (how a transaction
//!   starts, tenant context, locks) choose between two static statements on
//!   [`Backend`]. The price is a copy of each row into an `AnyRow`, small next to
//!   a round trip; an enum of pools would have doubled every query, or needed
//!   generic code drowning in trait bounds.
//! - **Migrations are embedded** with `include_str!` and handed to
//!   `Migrator::with_migrations`, so the binary carries its schema and still works
//!   when moved away from the source tree (`sqlx::migrate!` needs the `macros`
//!   feature, which we do not build).
//! - **PostgreSQL runs as a non-owner role.** The URL's user owns the tables and
//!   applies migrations on a connection of its own; every pooled connection then
//!   does `SET ROLE veneer_app` (no ownership, no BYPASSRLS: checked at start-up)
//!   and sets `statement_timeout` and `idle_in_transaction_session_timeout`.
//!   Each operation runs in a transaction that first sets `app.tenant_id` (or
//!   `app.platform`) with `set_config(.., true)`, so the setting dies with the
//!   transaction and never leaks to the next user of the connection. Queries
//!   also filter by tenant themselves: RLS is the second wall, not the only one.
//! - **SQLite** is a single file created if missing, in WAL mode (readers never
//!   block the writer) with foreign keys on. Write transactions start with
//!   `BEGIN IMMEDIATE`, so they queue on the busy timeout instead of failing when
//!   a read lock cannot be upgraded.

mod archive;
mod catalogue;
mod clerk;
mod copy;
mod domains;
mod email;
mod error;
mod hook_records;
mod installations;
mod jobs;
mod kv;
mod lifecycle;
mod migrate;
mod notify;
mod platform;
mod plugins;
mod policies;
mod rate;
mod records;
mod rows;
mod runs;
mod sending_domains;
mod session;
mod shadows;
mod shopify;
mod shopify_install;
mod shopify_privacy;
mod tables;
mod tenant;
mod time;
mod tls;

#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;

use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool, Connection};

use veneer_core::tenancy_id::TenantId;

pub use archive::{IMPORT_ACTION, ImportOutcome, TenantTable, tenant_column};
pub use clerk::CLERK_DELIVERY_RETENTION;
pub use copy::{COPY_PAGE, CopyReport, TableCount, copy_instance};
pub use domains::{DomainRecord, DomainStatus};
pub use email::*;
pub use error::StorageError;
pub use hook_records::{HookRecord, MAX_RECORDS, NewHookRecord};
pub use installations::{MAX_INSTALLATIONS, MAX_RELEASE_SETTINGS_BYTES, check_installation_name};
pub use jobs::*;
pub use kv::{KvLimits, KvSnapshotRead, KvUsage};
pub use lifecycle::{PURGE_BATCH, PurgeReport};
pub use notify::NotificationListener;
pub use platform::PlatformDb;
pub use plugins::{PluginStoreLimits, VersionDeletion};
pub use records::{
    AuditEntry, AuditRecord, CatalogueEntry, InstallationRecord, InvalidTenantStatus, LiveRelease,
    NewCatalogueEntry, NewPluginVersion, NewRelease, NewRun, NewTenant, PluginAbout, PluginVersion,
    ReleaseEvent, ReleaseRecord, RunRecord, TenantPatch, TenantRecord, TenantStatus, UsageRecord,
};
pub use runs::UsageDelta;
pub use sending_domains::{
    DkimKeyRecord, DkimKeyState, NewDkimKey, SendingDomainCheck, SendingDomainRecord,
    SendingDomainStatus,
};
pub use shadows::{MAX_SHADOW_RUNS, ShadowRecord, ShadowRun};
pub use shopify::*;
pub use shopify_install::{MAX_PENDING_INSTALLS, ShopifyAppRecord};
pub use shopify_privacy::{CustomerRedaction, DataRequestRecord, REDACTED, ShopRedaction};
pub use tables::{Cell, ColumnKind, TableSchema};
pub use tenant::TenantDb;
pub use tls::{CertificateRecord, CertificateStatus, IssuedCertificate, ServedCertificate};

/// Which database engine a [`Storage`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded file: zero set-up, one node.
    Sqlite,
    /// A shared server: production, several nodes.
    Postgres,
}

/// Pool and session limits.
#[derive(Debug, Clone)]
pub struct StorageOptions {
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// How long an operation waits for a connection before failing with
    /// [`StorageError::Unavailable`].
    pub acquire_timeout: Duration,
    /// PostgreSQL `statement_timeout`: a longer statement is cancelled.
    pub statement_timeout: Duration,
    /// PostgreSQL `idle_in_transaction_session_timeout`: a transaction left idle
    /// longer is ended by the server, so a stuck task cannot hold locks forever.
    pub idle_in_transaction_timeout: Duration,
    /// Per-tenant caps on the key-value store, checked by every write.
    pub kv_limits: KvLimits,
    /// Per-tenant caps on stored plugin versions, checked by every upload.
    pub plugin_limits: PluginStoreLimits,
}

impl Default for StorageOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
            statement_timeout: Duration::from_secs(5),
            idle_in_transaction_timeout: Duration::from_secs(10),
            kv_limits: KvLimits::default(),
            plugin_limits: PluginStoreLimits::default(),
        }
    }
}

/// The database: a pool plus the backend it speaks. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Storage {
    pool: AnyPool,
    backend: Backend,
    kv_limits: KvLimits,
    plugin_limits: PluginStoreLimits,
}

impl Storage {
    /// Connects to `url` (`sqlite://path/to/file.db` or `postgres://...`), creates
    /// the SQLite file if missing, and applies pending migrations.
    pub async fn connect(url: &str, options: &StorageOptions) -> Result<Storage, StorageError> {
        sqlx::any::install_default_drivers();
        let backend = backend_of(url)?;
        let storage = match backend {
            Backend::Sqlite => connect_sqlite(url, options).await?,
            Backend::Postgres => connect_postgres(url, options).await?,
        };
        tracing::info!(backend = ?backend, "storage ready");
        Ok(storage)
    }

    /// The engine behind this storage.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A handle on one tenant's data: the only way to reach tenant tables.
    pub fn tenant(&self, id: &TenantId) -> TenantDb {
        TenantDb::new(
            self.pool.clone(),
            self.backend,
            id.clone(),
            self.kv_limits,
            self.plugin_limits,
        )
    }

    /// A handle for admin operations and host lookups, across tenants.
    pub fn platform(&self) -> PlatformDb {
        PlatformDb::new(self.pool.clone(), self.backend)
    }

    /// Checks that a connection can be had and answers.
    pub async fn ping(&self) -> Result<(), StorageError> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query("SELECT 1").execute(&mut *conn).await?;
        Ok(())
    }

    /// Closes the pool, waiting for connections in use to come back.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn backend_of(url: &str) -> Result<Backend, StorageError> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else {
        Err(StorageError::Invalid(
            "unsupported database URL: use `sqlite://<file>` or `postgres://<user>@<host>/<db>`"
                .into(),
        ))
    }
}

/// Adds `mode=rwc` unless the URL chooses a mode, so a fresh install gets its file.
fn sqlite_url_creating_file(url: &str) -> String {
    if url.contains(":memory:") || url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

async fn connect_sqlite(url: &str, options: &StorageOptions) -> Result<Storage, StorageError> {
    let pool = AnyPoolOptions::new()
        .max_connections(options.max_connections)
        .acquire_timeout(options.acquire_timeout)
        .after_connect(|conn, _meta| Box::pin(session::prepare_sqlite(conn)))
        .connect(&sqlite_url_creating_file(url))
        .await?;
    // WAL is a property of the file, set once; it cannot change inside the
    // migrations' transaction.
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode = WAL")
        .fetch_one(&pool)
        .await?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(%mode, "SQLite refused WAL mode; writers will block readers");
    }
    let mut conn = pool.acquire().await?;
    migrate::sqlite()
        .run_direct(None, &mut *conn, false)
        .await?;
    drop(conn);
    Ok(Storage {
        pool,
        backend: Backend::Sqlite,
        kv_limits: options.kv_limits,
        plugin_limits: options.plugin_limits,
    })
}

async fn connect_postgres(url: &str, options: &StorageOptions) -> Result<Storage, StorageError> {
    // Migrations need the owner, so they run on a connection that never takes
    // the application role. An unreachable server fails here, within the
    // acquire timeout.
    let mut owner = tokio::time::timeout(options.acquire_timeout, AnyConnection::connect(url))
        .await
        .map_err(|_| {
            StorageError::Unavailable(format!(
                "no answer from PostgreSQL within {:?}: check that it is running and reachable",
                options.acquire_timeout
            ))
        })??;
    migrate::postgres()
        .run_direct(None, &mut owner, false)
        .await?;
    // Same set-up as the pool's, once, so a broken role shows its own error here
    // instead of the pool retrying it into a timeout.
    let settings = session::PgSessionSettings::new(options);
    session::prepare_postgres(&mut owner, &settings).await?;
    session::check_app_role(&mut owner).await?;
    owner.close().await?;

    let pool = AnyPoolOptions::new()
        .max_connections(options.max_connections)
        .acquire_timeout(options.acquire_timeout)
        .after_connect(move |conn, _meta| {
            let settings = settings.clone();
            Box::pin(async move { session::prepare_postgres(conn, &settings).await })
        })
        .connect(url)
        .await?;
    Ok(Storage {
        pool,
        backend: Backend::Postgres,
        kv_limits: options.kv_limits,
        plugin_limits: options.plugin_limits,
    })
}
