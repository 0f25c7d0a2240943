//! For tests of this crate and of the crates above it: a fresh database per
//! test on either backend ([`TestDb`], [`both_backends!`](crate::both_backends)),
//! and raw SQL for tests that must look past the handles ([`RawSql`]: counting
//! rows a worker left behind, reading a column as it is stored).
//!
//! Compiled for this crate's own tests and, with the `testing` feature, for the
//! test suites of `veneer` (through `veneer::test_support`); production builds
//! never contain it. It only ever creates and drops databases of its own on the
//! machine's PostgreSQL; it never stops, restarts or reconfigures the cluster
//! (tests that need the database to go away start a private cluster of their
//! own).

pub mod harness;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sqlx::{Connection, Row};

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
                $runner($crate::testing::Db::Sqlite, super::$name).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $runner($crate::testing::Db::Postgres, super::$name).await
            }
        }
    )*};
    ($name:ident, $body:path) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $body($crate::testing::Db::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $body($crate::testing::Db::Postgres).await;
            }
        }
    };
}

/// A superuser connection for tests that look past the handles: it sees every
/// tenant's rows (no row-level security), so it is for checking what was
/// stored, never for the code under test.
pub struct RawSql(sqlx::PgConnection);

impl std::fmt::Debug for RawSql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawSql")
    }
}

impl RawSql {
    /// Connects as the superuser of `url` (retried like [`superuser`]).
    pub async fn connect(url: &str) -> Self {
        Self(superuser(url).await)
    }

    /// The single `bigint` a query such as `SELECT count(*) …` returns.
    pub async fn scalar(&mut self, sql: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&mut self.0)
            .await
            .unwrap_or_else(|err| panic!("`{sql}`: {err}"))
    }

    /// Every row of `sql` as a JSON object (column name → value), in order.
    pub async fn rows(&mut self, sql: &str) -> Vec<serde_json::Value> {
        let wrapped = format!("SELECT row_to_json(r)::text AS j FROM ({sql}) r");
        sqlx::query(sqlx::AssertSqlSafe(wrapped))
            .fetch_all(&mut self.0)
            .await
            .unwrap_or_else(|err| panic!("`{sql}`: {err}"))
            .iter()
            .map(|row| {
                let text: String = row.get("j");
                serde_json::from_str(&text).expect("row_to_json gives JSON")
            })
            .collect()
    }

    /// Runs a statement; the number of rows it affected.
    pub async fn execute(&mut self, sql: &str) -> u64 {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut self.0)
            .await
            .unwrap_or_else(|err| panic!("`{sql}`: {err}"))
            .rows_affected()
    }

    /// Closes the connection.
    pub async fn close(self) {
        let _ = self.0.close().await;
    }
}
