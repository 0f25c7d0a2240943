//! A real Prometheus server (Debian's `prometheus` package, installed with
//! apt when missing) run as a child process for the metrics tests: its own
//! configuration, storage and free loopback port in a temporary directory,
//! scraping one target every second, optionally with rule files; killed when
//! dropped. The system's prometheus service is never started (the package's
//! install does not start services here: `policy-rc.d` forbids it) nor
//! touched. Also `promtool`, which ships in the same package.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running Prometheus; killed when dropped.
pub struct Prometheus {
    /// Its HTTP API's address.
    pub addr: SocketAddr,
    client: reqwest::Client,
    child: Child,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prometheus")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

static INSTALL: Mutex<()> = Mutex::new(());

/// The `prometheus` and `promtool` binaries, installing the package with
/// `apt-get install -y --no-install-recommends prometheus` if either is
/// missing (once per process: concurrent tests wait for the first).
pub fn ensure_installed() -> (PathBuf, PathBuf) {
    let _once = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    let binaries = || {
        let prometheus = PathBuf::from("/usr/bin/prometheus");
        let promtool = PathBuf::from("/usr/bin/promtool");
        (prometheus.exists() && promtool.exists()).then_some((prometheus, promtool))
    };
    if let Some(found) = binaries() {
        return found;
    }
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", "prometheus"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .expect("apt-get runs")
    };
    if !install().success() {
        // A stale package list: refresh it once and try again.
        let _ = Command::new("apt-get").arg("update").status();
        assert!(install().success(), "apt-get install -y prometheus failed");
    }
    binaries().expect("prometheus and promtool installed")
}

/// Runs `promtool check rules` on `file`; the tool's output on failure.
pub fn check_rules(file: &Path) -> Result<String, String> {
    let (_, promtool) = ensure_installed();
    let out = Command::new(promtool)
        .args(["check", "rules"])
        .arg(file)
        .output()
        .expect("promtool runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Prometheus {
    /// Starts Prometheus scraping `target` (`GET /metrics`) every second,
    /// evaluating `rule_files` every second, and waits until it is ready.
    pub async fn start(target: SocketAddr, rule_files: &[PathBuf]) -> Self {
        let (binary, _) = ensure_installed();
        let dir = tempfile::tempdir().expect("temp dir");
        let rules: String = rule_files
            .iter()
            .map(|f| format!("  - {}\n", serde_json::to_string(f).expect("path")))
            .collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n{rules}\
             scrape_configs:\n  - job_name: veneer\n    static_configs:\n      - targets: ['{target}']\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write config");
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log file");
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        let prometheus = Self {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("client"),
            child,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = prometheus
                .client
                .get(format!("http://{}/-/ready", prometheus.addr))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return prometheus;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready in 30 s: {}",
                prometheus.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// `GET /api/v1/<path>` with `query`; the `data` of a successful answer.
    pub async fn api(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, String> {
        let url =
            reqwest::Url::parse_with_params(&format!("http://{}/api/v1/{path}", self.addr), query)
                .map_err(|e| e.to_string())?;
        let response = self
            .client
            .get(url)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        if body["status"] == "success" {
            Ok(body["data"].clone())
        } else {
            Err(body.to_string())
        }
    }

    /// An instant query's vector: each result's labels and value.
    pub async fn query(&self, expr: &str) -> Result<Vec<(Value, f64)>, String> {
        let data = self.api("query", &[("query", expr)]).await?;
        let results = data["result"].as_array().cloned().unwrap_or_default();
        Ok(results
            .into_iter()
            .filter_map(|r| {
                let value = r["value"][1].as_str()?.parse().ok()?;
                Some((r["metric"].clone(), value))
            })
            .collect())
    }

    /// An instant query expected to give one value (`None`: no result).
    pub async fn scalar(&self, expr: &str) -> Result<Option<f64>, String> {
        let results = self.query(expr).await?;
        Ok(results.first().map(|(_, v)| *v))
    }
}
