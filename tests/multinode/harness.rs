//! Spawns `veneer serve --dev` processes on one fresh PostgreSQL database and
//! talks to them over HTTP.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;
use veneer::auth::{OrgRole, dev_token};

/// Serialises the tests of this binary: they share (and bounce) the cluster.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A multi-threaded runtime for one test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime")
}

/// The superuser URL of the test cluster (trust auth).
pub fn postgres_admin_url() -> String {
    std::env::var("VENEER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// The cluster's major version (`/etc/postgresql/<version>`).
pub fn cluster_version() -> String {
    std::fs::read_dir("/etc/postgresql")
        .ok()
        .and_then(|mut dir| dir.next())
        .and_then(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .expect("a PostgreSQL cluster under /etc/postgresql")
}

/// `pg_ctlcluster <version> main <action>`; panics if it fails.
pub fn pg_ctl(action: &str) {
    let status = Command::new("pg_ctlcluster")
        .args([
            "--skip-systemctl-redirect",
            &cluster_version(),
            "main",
            action,
        ])
        .status()
        .expect("pg_ctlcluster runs");
    assert!(status.success(), "pg_ctlcluster {action}: {status}");
}

fn ensure_postgres() {
    if std::net::TcpStream::connect_timeout(
        &"127.0.0.1:5432".parse().expect("addr"),
        Duration::from_secs(1),
    )
    .is_err()
    {
        pg_ctl("start");
    }
}

/// A superuser connection to the test database, for assertions that look
/// under the API (it bypasses row-level security).
pub async fn superuser(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match sqlx::PgConnection::connect(url).await {
            Ok(conn) => return conn,
            Err(err) if Instant::now() < deadline => {
                let _ = err;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => panic!("PostgreSQL must be reachable at {url}: {err}"),
        }
    }
}

/// A fresh database, dropped (with force) at the end.
pub struct TestDb {
    pub url: String,
    name: String,
}

impl TestDb {
    pub async fn new(label: &str) -> Self {
        ensure_postgres();
        let name = format!("veneer_multinode_{label}_{}", std::process::id());
        let admin = postgres_admin_url();
        let mut conn = superuser(&admin).await;
        for sql in [
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            format!("CREATE DATABASE {name}"),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .expect("create the test database");
        }
        let (server, _) = admin.rsplit_once('/').expect("a database in the URL");
        Self {
            url: format!("{server}/{name}"),
            name,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = std::mem::take(&mut self.name);
        // Drop cannot await: a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("rt");
            rt.block_on(async move {
                let mut conn = superuser(&postgres_admin_url()).await;
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

/// One `veneer serve --dev` process. Killed (SIGKILL) when dropped.
pub struct Node {
    pub name: &'static str,
    child: Child,
    pub addr: String,
    client: reqwest::Client,
    dir: tempfile::TempDir,
}

impl Node {
    /// Starts a node on `db` with its own artifact directory and `extra` flags,
    /// and waits until it answers `/readyz`.
    pub async fn start(name: &'static str, db: &TestDb, extra: &[String]) -> Node {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = std::fs::File::create(dir.path().join("node.log")).expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_veneer"))
            .args([
                "serve",
                "--dev",
                "--listen",
                "127.0.0.1:0",
                "--database-url",
            ])
            .arg(&db.url)
            .arg("--artifact-dir")
            .arg(dir.path().join("artifacts"))
            .args(extra)
            .env("RUST_LOG", "veneer=info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("veneer serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the address, then keeps draining so the child never blocks on a
        // full pipe.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("veneer listening on http://")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                }
            }
        });
        let addr = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(60)))
            .await
            .expect("join");
        let Ok(addr) = addr else {
            let log = std::fs::read_to_string(dir.path().join("node.log")).unwrap_or_default();
            let _ = child.kill();
            panic!("{name} did not print its address; its log:\n{log}");
        };
        let node = Node {
            name,
            child,
            addr,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("client"),
            dir,
        };
        node.wait_ready(Duration::from_secs(30)).await;
        node
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            if let Ok((StatusCode::OK, _)) =
                self.try_call(Method::GET, "", "/readyz", None, None).await
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready in {within:?}; log:\n{}",
                self.name,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The node's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("node.log")).unwrap_or_default()
    }

    /// SIGKILL: no shutdown, no lease released.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// A request to `tenant` (empty: the platform host); `Err` when no HTTP
    /// answer came (connection refused or reset, timeout).
    pub async fn try_call(
        &self,
        method: Method,
        tenant: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), reqwest::Error> {
        let host = if tenant.is_empty() {
            "localhost".to_owned()
        } else {
            format!("{tenant}.localhost")
        };
        let mut req = self
            .client
            .request(method, format!("http://{}{path}", self.addr))
            .header("host", host);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let response = req.send().await?;
        let status = response.status();
        let text = response.text().await?;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, value))
    }

    /// Like [`try_call`](Self::try_call), panicking without an answer.
    pub async fn call(
        &self,
        method: Method,
        tenant: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        self.try_call(method, tenant, path, token, body)
            .await
            .unwrap_or_else(|err| panic!("{} {path}: no answer: {err}", self.name))
    }

    /// Uploads a plugin component; returns its sha256.
    pub async fn upload(&self, tenant: &str, token: &str, bytes: Vec<u8>) -> String {
        let response = self
            .client
            .post(format!("http://{}/v1/plugins", self.addr))
            .header("host", format!("{tenant}.localhost"))
            .header("content-type", "application/wasm")
            .bearer_auth(token)
            .body(bytes)
            .send()
            .await
            .expect("upload answered");
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "upload: {status} {body}");
        body["plugin"]["sha256"]
            .as_str()
            .expect("sha256")
            .to_owned()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A dev token of the tenant's organisation.
pub fn token(tenant: &str, role: OrgRole) -> String {
    dev_token(
        &format!("org_{tenant}"),
        role,
        &format!("user_{tenant}"),
        false,
        Duration::from_secs(3600),
    )
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

/// The flags pointing a node's platform relay at the test SMTP server, with
/// quick retries.
pub fn smtp_flags(port: u16) -> Vec<String> {
    [
        "--smtp-host",
        "127.0.0.1",
        "--smtp-port",
        &port.to_string(),
        "--smtp-tls",
        "none",
        "--job-backoff-ms",
        "50",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// The Message-ID header of a received message.
pub fn message_id(data: &str) -> Option<String> {
    data.lines()
        .take_while(|line| !line.is_empty())
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("message-id")
                .then(|| value.trim().to_owned())
        })
}
