//! Starts a server for one test on a fresh database and talks to it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use veneer::auth::{OrgRole, dev_token};
use veneer::config::ServeConfig;
use veneer::server::{Running, start};

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// PostgreSQL server used by the tests (trust auth, user postgres).
pub fn postgres_admin_url() -> String {
    std::env::var("VENEER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn ensure_postgres() {
    use std::net::TcpStream;
    if TcpStream::connect_timeout(
        &"127.0.0.1:5432".parse().expect("addr"),
        Duration::from_secs(1),
    )
    .is_ok()
    {
        return;
    }
    // The machine's cluster may be stopped: start it, as .ci/run does.
    let versions = std::fs::read_dir("/etc/postgresql")
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok());
    if let Some(version) = versions {
        let _ = std::process::Command::new("pg_ctlcluster")
            .args([
                "--skip-systemctl-redirect",
                &version.file_name().to_string_lossy(),
                "main",
                "start",
            ])
            .status();
    }
}

/// A fresh database that is dropped with the guard.
pub struct TestDb {
    pub url: String,
    pub kind: Db,
    name: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(kind: Db) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        match kind {
            Db::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}", dir.path().join("veneer.db").display());
                Self {
                    url,
                    kind,
                    name: None,
                    _dir: Some(dir),
                }
            }
            Db::Postgres => {
                ensure_postgres();
                let name = format!(
                    "veneer_e2e_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::Relaxed)
                );
                let admin = postgres_admin_url();
                let mut conn = connect_admin(&admin).await;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await
                .expect("drop old test db");
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test db");
                let url = match admin.rsplit_once('/') {
                    Some((server, _)) => format!("{server}/{name}"),
                    None => panic!("bad postgres url"),
                };
                Self {
                    url,
                    kind,
                    name: Some(name),
                    _dir: None,
                }
            }
        }
    }
}

async fn connect_admin(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(url)
        .await
        .unwrap_or_else(|err| {
            panic!("PostgreSQL must be reachable at {url} for the PostgreSQL suites: {err}")
        })
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.name.take() {
            let admin = postgres_admin_url();
            // Drop on a separate thread with its own runtime: Drop cannot await.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("rt");
                rt.block_on(async move {
                    let mut conn = connect_admin(&admin).await;
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                });
            })
            .join();
        }
    }
}

/// A running server with two demo-like tenants, `acme` and `globex`.
pub struct Server {
    pub running: Running,
    pub client: reqwest::Client,
    /// The database; dropped after the server.
    pub db: TestDb,
}

pub const BASE: &str = "veneer.test";

impl Server {
    /// A server on a fresh database, seeded with the demo tenants.
    pub async fn start(kind: Db) -> Self {
        Self::start_with(kind, |_| {}).await
    }

    /// Like [`Server::start`], with the configuration adjusted first.
    pub async fn start_with(kind: Db, adjust: impl FnOnce(&mut ServeConfig)) -> Self {
        let db = TestDb::new(kind).await;
        let mut config = ServeConfig::for_tests(db.url.clone());
        config.base_domain = BASE.into();
        adjust(&mut config);
        let running = start(config).await.expect("server starts");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Self {
            running,
            client,
            db,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.addr)
    }

    /// A request to `path` with the Host header of `tenant` (or the platform).
    pub fn request(&self, method: Method, host: &str, path: &str) -> reqwest::RequestBuilder {
        let host = if host.is_empty() {
            BASE.to_owned()
        } else {
            format!("{host}.{BASE}")
        };
        self.client
            .request(method, self.url(path))
            .header("host", host)
    }

    pub async fn call(
        &self,
        method: Method,
        host: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.request(method, host, path);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().await.expect("request is answered");
        let status = response.status();
        let text = response.text().await.expect("body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    pub async fn get(&self, host: &str, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, host, path, Some(token), None).await
    }

    /// A conditional GET of `path` accepting gzip with validator `tag`:
    /// asserts the answer is 304 Not Modified carrying the same ETag.
    pub async fn revalidate(&self, host: &str, path: &str, token: &str, tag: &str) {
        let cached = self
            .request(Method::GET, host, path)
            .bearer_auth(token)
            .header("accept-encoding", "gzip")
            .header("if-none-match", tag)
            .send()
            .await
            .expect("answered");
        assert_eq!(cached.status(), StatusCode::NOT_MODIFIED, "{path} {tag}");
        assert_eq!(cached.headers()["etag"].to_str().expect("etag"), tag);
    }

    /// Uploads `bytes` as `tenant`'s plugin, sets `settings` and activates it,
    /// asserting each step; returns the plugin's sha256.
    pub async fn install(
        &self,
        tenant: &str,
        token: &str,
        bytes: Vec<u8>,
        settings: Value,
    ) -> String {
        let (status, uploaded) = self.upload(tenant, token, bytes).await;
        assert_eq!(status, StatusCode::CREATED, "{uploaded}");
        let sha = uploaded["plugin"]["sha256"]
            .as_str()
            .expect("sha")
            .to_owned();
        self.set_settings(tenant, token, settings).await;
        let (status, body) = self
            .call(
                Method::POST,
                tenant,
                &format!("/v1/plugins/{sha}/activate"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        sha
    }

    /// Sets `tenant`'s plugin settings, asserting they were taken.
    pub async fn set_settings(&self, tenant: &str, token: &str, settings: Value) {
        let (status, body) = self
            .call(
                Method::PUT,
                tenant,
                "/v1/settings",
                Some(token),
                Some(settings),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    pub async fn upload(&self, host: &str, token: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
        let response = self
            .request(Method::POST, host, "/v1/plugins")
            .bearer_auth(token)
            .header("content-type", "application/wasm")
            .body(bytes)
            .send()
            .await
            .expect("upload is answered");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

pub fn token(tenant: &str, role: OrgRole) -> String {
    dev_token(
        &format!("org_{tenant}"),
        role,
        &format!("user_{tenant}"),
        false,
        Duration::from_secs(3600),
    )
}

pub fn admin(tenant: &str) -> String {
    token(tenant, OrgRole::Admin)
}

pub fn member(tenant: &str) -> String {
    token(tenant, OrgRole::Member)
}

pub fn platform_admin() -> String {
    dev_token(
        "",
        OrgRole::Member,
        "user_platform",
        true,
        Duration::from_secs(3600),
    )
}

pub fn sale(category: &str, price: u64) -> Value {
    json!({ "order_id": "o-1", "sku": "SKU-1", "category_id": category, "unit_price": price, "quantity": 1, "currency": "EUR" })
}

/// Runs an async test body on both backends.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:path) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                $body($crate::server::harness::Db::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                $body($crate::server::harness::Db::Postgres).await;
            }
        }
    };
}

impl Server {
    /// Polls `check` until it returns Some, for up to `secs` seconds.
    pub async fn eventually<T>(
        &self,
        secs: u64,
        mut check: impl AsyncFnMut(&Server) -> Option<T>,
    ) -> Option<T> {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(value) = check(self).await {
                return Some(value);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
