//! Spawns `veneer serve --dev` processes on one fresh PostgreSQL database and
//! talks to them over HTTP.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;
pub use veneer::test_support::{RawSql, TestDb, platform_admin, token};

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

/// The installed PostgreSQL's major version (`/usr/lib/postgresql/<version>`).
fn server_version() -> String {
    std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .and_then(|dir| {
            dir.filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .max_by_key(|v| v.parse::<u32>().unwrap_or(0))
        })
        .expect("PostgreSQL server binaries under /usr/lib/postgresql")
}

/// A PostgreSQL cluster of the test's own, in a temporary directory on a free
/// port, for tests that stop or restart the database: the machine's cluster is
/// never touched. Stopped and removed when dropped, whatever the test did.
pub struct PrivateCluster {
    dir: tempfile::TempDir,
    port: u16,
    bin: std::path::PathBuf,
}

impl PrivateCluster {
    /// `initdb` (trust auth, superuser `postgres`) and start.
    pub fn start() -> Self {
        let bin = std::path::Path::new("/usr/lib/postgresql")
            .join(server_version())
            .join("bin");
        let dir = tempfile::Builder::new()
            .prefix("veneer-pg-")
            .tempdir()
            .expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cluster = Self { dir, port, bin };
        // PostgreSQL refuses to run as root: as root, the cluster belongs to
        // the `postgres` user.
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(cluster.dir.path())
                .status()
                .expect("chown runs");
            assert!(status.success(), "chown the private cluster's dir");
        }
        let data = cluster.data().display().to_string();
        cluster.run(
            "initdb",
            &["-D", &data, "-U", "postgres", "--auth=trust", "--no-sync"],
        );
        cluster.control("start");
        cluster
    }

    fn data(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// The superuser URL of this cluster's `postgres` database.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the cluster (fast shutdown), waiting until it is down.
    pub fn stop(&self) {
        self.control("stop");
    }

    /// Restarts the cluster, waiting until it accepts connections again.
    pub fn restart(&self) {
        self.control("restart");
    }

    /// Starts the stopped cluster again.
    pub fn resume(&self) {
        self.control("start");
    }

    /// `pg_ctl <action>` on this cluster, waiting until it is done.
    fn control(&self, action: &str) {
        let data = self.data().display().to_string();
        let log = self.dir.path().join("postgres.log").display().to_string();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let mut args = vec!["-D", &data, "-l", &log, "-w", "-t", "60"];
        if action != "stop" {
            args.extend(["-o", &options]);
        }
        if action != "start" {
            args.extend(["-m", "fast"]);
        }
        args.insert(0, action);
        self.run("pg_ctl", &args);
    }

    fn run(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let mut cmd = if is_root() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(&program);
            cmd
        } else {
            Command::new(&program)
        };
        let output = cmd
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("PostgreSQL's tools run");
        assert!(
            output.status.success(),
            "{} {args:?}: {}\n{}",
            program.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let data = self.data().display().to_string();
        let program = self.bin.join("pg_ctl");
        let mut cmd = if is_root() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(&program);
            cmd
        } else {
            Command::new(&program)
        };
        let _ = cmd
            .args(["stop", "-D", &data, "-m", "immediate", "-w"])
            .output();
        // The temporary directory goes with `dir`.
    }
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
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
    /// Sends the node's process a signal (`kill -<signal> <pid>`).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} {}", self.name);
    }

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
