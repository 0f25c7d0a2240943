//! What the tests share, in one copy: a fresh database per test on either
//! backend ([`TestDb`], [`both_backends!`](crate::both_backends)), dev tokens,
//! polling until something holds ([`eventually`], [`wait_for`]), a fake
//! Shopify ([`fake_shopify`]), a real SMTP server on loopback
//! ([`smtp_server`]), a clock tests move by hand ([`ManualClock`]) and the API
//! driven in process or over TCP alike ([`api`]).
//!
//! Compiled for the crate's own unit tests (`cfg(test)`) and, with the
//! `test-support` feature, for the integration suites (`tests/e2e`,
//! `tests/multinode`): the crate enables that feature on itself as a
//! dev-dependency, so a production build never contains this module.
//!
//! It only ever creates and drops databases of its own on the machine's
//! PostgreSQL; it never stops, restarts or reconfigures the cluster (tests that
//! need the database to go away start a private cluster of their own).

pub mod api;
pub mod fake_shopify;
pub mod smtp_server;

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::auth::{OrgRole, dev_token};

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// The superuser URL of the PostgreSQL the tests use (trust auth):
/// `VENEER_TEST_POSTGRES_URL`, by default the machine's cluster on
/// 127.0.0.1:5432.
pub fn postgres_admin_url() -> String {
    std::env::var("VENEER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Starts the machine's cluster when it is down, as `.ci/run` does. It never
/// stops or restarts it.
pub fn ensure_postgres() {
    if std::net::TcpStream::connect_timeout(
        &"127.0.0.1:5432".parse().expect("addr"),
        Duration::from_secs(1),
    )
    .is_ok()
    {
        return;
    }
    let version = std::fs::read_dir("/etc/postgresql")
        .ok()
        .and_then(|mut dir| dir.next())
        .and_then(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned());
    if let Some(version) = version {
        let _ = std::process::Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", &version, "main", "start"])
            .status();
    }
}

/// A superuser connection to `url`, retried for up to 20 s (the database may
/// be coming back from a restart).
pub async fn superuser(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match sqlx::PgConnection::connect(url).await {
            Ok(conn) => return conn,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => panic!(
                "PostgreSQL must be reachable at {url} for the PostgreSQL tests: {err}; \
                 start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
            ),
        }
    }
}

/// A fresh database of one test: a SQLite file in a temporary directory, or a
/// PostgreSQL database of its own, dropped (with force) when the guard is
/// dropped, also when the test panics.
pub struct TestDb {
    /// The URL to hand to `Storage::connect` or `--database-url`.
    pub url: String,
    pub kind: Db,
    /// PostgreSQL only: the admin URL and the database's name.
    postgres: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    /// A fresh database of `kind` (PostgreSQL: on the machine's cluster).
    pub async fn new(kind: Db) -> Self {
        match kind {
            Db::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}", dir.path().join("veneer.db").display());
                Self {
                    url,
                    kind,
                    postgres: None,
                    _dir: Some(dir),
                }
            }
            Db::Postgres => {
                ensure_postgres();
                Self::on_postgres(&postgres_admin_url()).await
            }
        }
    }

    /// A fresh database on the PostgreSQL cluster whose superuser URL is
    /// `admin` (e.g. a test's private cluster).
    pub async fn on_postgres(admin: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        // Only digits and underscores: safe to splice into SQL.
        let name = format!(
            "veneer_t_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = superuser(admin).await;
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .expect("create the test database");
        }
        let (server, _) = admin.rsplit_once('/').expect("a database in the URL");
        Self {
            url: format!("{server}/{name}"),
            kind: Db::Postgres,
            postgres: Some((admin.to_owned(), name)),
            _dir: None,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.postgres.take() else {
            return;
        };
        // Drop cannot await (and may run inside a runtime): a thread with its
        // own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("rt");
            rt.block_on(async move {
                let mut conn = superuser(&admin).await;
                let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await;
            });
        })
        .join();
    }
}

/// Defines tests running a body once on SQLite and once on PostgreSQL, each
/// in a module of its own with a `sqlite` and a `postgres` test:
///
/// - `both_backends!(name, body)`: `body` is an `async fn(Db)`;
/// - `both_backends!(via runner; a, b, …)`: for each named function `f`,
///   `runner(Db, f)` (a runner that builds what `f` takes from a [`TestDb`]).
#[macro_export]
macro_rules! both_backends {
    (via $runner:path; $($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $runner($crate::test_support::Db::Sqlite, super::$name).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $runner($crate::test_support::Db::Postgres, super::$name).await
            }
        }
    )*};
    ($name:ident, $body:path) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $body($crate::test_support::Db::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $body($crate::test_support::Db::Postgres).await;
            }
        }
    };
}

/// A dev token (an hour long) of `tenant`'s organisation (`org_<tenant>`,
/// user `user_<tenant>`) with `role`.
pub fn token(tenant: &str, role: OrgRole) -> String {
    dev_token(
        &format!("org_{tenant}"),
        role,
        &format!("user_{tenant}"),
        false,
        Duration::from_secs(3600),
    )
}

/// An organisation admin's token for `tenant`.
pub fn admin(tenant: &str) -> String {
    token(tenant, OrgRole::Admin)
}

/// An organisation member's token for `tenant`.
pub fn member(tenant: &str) -> String {
    token(tenant, OrgRole::Member)
}

/// A platform admin's dev token.
pub fn platform_admin() -> String {
    dev_token(
        "",
        OrgRole::Member,
        "user_platform",
        true,
        Duration::from_secs(3600),
    )
}

/// A clock a test moves by hand: [`ManualClock::as_clock`] hands it to code
/// that takes a [`crate::limits::BreakerClock`], so a test sees a pause end without
/// sleeping through it.
#[derive(Debug, Clone)]
pub struct ManualClock {
    start: Instant,
    offset: std::sync::Arc<std::sync::Mutex<Duration>>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock standing at the current instant.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            offset: std::sync::Arc::default(),
        }
    }

    /// The time it shows.
    pub fn now(&self) -> Instant {
        self.start + *self.offset.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves it forward by `by`.
    pub fn advance(&self, by: Duration) {
        *self.offset.lock().unwrap_or_else(|p| p.into_inner()) += by;
    }

    /// This clock as a time source.
    pub fn as_clock(&self) -> crate::limits::BreakerClock {
        let clock = self.clone();
        std::sync::Arc::new(move || clock.now())
    }
}

/// Polls `check` every 20 ms until it returns `Some`, for up to `limit`;
/// `None` when it never did.
pub async fn eventually<T>(
    limit: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `check` until it holds, failing the test (naming `what`) after
/// `limit`.
pub async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let held = eventually(limit, async || check().await.then_some(())).await;
    assert!(
        held.is_some(),
        "timed out after {limit:?} waiting for {what}"
    );
}
