//! A real browser for the console's tests: Debian's headless Chromium driven
//! over WebDriver (its `chromedriver`, on a free loopback port) with
//! fantoccini. Both are installed with apt when missing (`chromium`,
//! `chromium-driver`). Each browser gets a fresh profile directory, and the
//! host names under the test's base domain resolve to loopback inside the
//! browser only (`--host-resolver-rules`), so `http://acme.veneer.test:PORT`
//! reaches the test's server with that `Host`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

static INSTALL: Mutex<()> = Mutex::new(());

fn which(name: &str) -> Option<PathBuf> {
    Command::new("which")
        .arg(name)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
}

/// Chromium and chromedriver, installed with
/// `apt-get install -y chromium chromium-driver` if either is missing.
pub fn ensure_installed() -> (PathBuf, PathBuf) {
    let _once = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    if let (Some(chromium), Some(driver)) = (which("chromium"), which("chromedriver")) {
        return (chromium, driver);
    }
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "chromium", "chromium-driver"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .expect("apt-get runs")
    };
    if !install().success() {
        // A machine that never read the package lists: read them once.
        let updated = Command::new("apt-get")
            .arg("update")
            .status()
            .expect("apt-get runs");
        assert!(updated.success(), "apt-get update failed");
        assert!(
            install().success(),
            "apt-get install -y chromium chromium-driver failed"
        );
    }
    (
        which("chromium").expect("chromium installed"),
        which("chromedriver").expect("chromedriver installed"),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A headless Chromium session; the driver (and so the browser) is killed
/// when dropped, if [`Browser::close`] was not called.
pub struct Browser {
    /// The WebDriver session.
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl std::fmt::Debug for Browser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Browser").finish_non_exhaustive()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium in which `base_domain`
    /// and its subdomains resolve to 127.0.0.1.
    pub async fn start(base_domain: &str) -> Self {
        let (chromium, driver_path) = ensure_installed();
        let port = free_port();
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().expect("profile dir");
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            let ready = http
                .get(format!("{url}/status"))
                .send()
                .await
                .ok()
                .filter(|r| r.status().is_success());
            if ready.is_some() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not answer on {url}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--no-proxy-server".to_owned(),
            "--disable-features=HttpsUpgrades,HttpsFirstBalancedModeAutoEnable".to_owned(),
            "--window-size=1280,900".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
            format!(
                "--host-resolver-rules=MAP *.{base_domain} 127.0.0.1, MAP {base_domain} 127.0.0.1"
            ),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".to_owned(),
            serde_json::json!({ "binary": chromium, "args": args }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&url)
            .await
            .expect("a WebDriver session with headless Chromium");
        Self {
            client,
            driver,
            _profile: profile,
        }
    }

    /// The text of the first element `css` selects, once the page has one
    /// (retried for up to 10 s while a navigation replaces the page).
    pub async fn text(&self, css: &str) -> String {
        let started = Instant::now();
        loop {
            let found = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.text().await,
                Err(err) => Err(err),
            };
            match found {
                Ok(text) => return text,
                Err(err) if started.elapsed() > Duration::from_secs(10) => {
                    panic!("no `{css}` on the page: {err}")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Clicks the button `css` selects and waits until the page it leads to
    /// replaced this one (a form's post and its redirect).
    pub async fn submit(&self, css: &str) {
        let page = self
            .client
            .find(Locator::Css("html"))
            .await
            .expect("a page");
        self.click(css).await;
        let started = Instant::now();
        while page.tag_name().await.is_ok() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "clicking `{css}` led to no new page"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Clicks the first element `css` selects.
    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|err| panic!("no `{css}` on the page: {err}"))
            .click()
            .await
            .expect("click");
    }

    /// Replaces the value of the field `css` selects with `text`.
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|err| panic!("no `{css}` on the page: {err}"));
        field.clear().await.expect("clear");
        field.send_keys(text).await.expect("type");
    }

    /// The page's source.
    pub async fn source(&self) -> String {
        self.client.source().await.expect("page source")
    }

    /// Saves a PNG screenshot of the viewport to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.expect("screenshot");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot dir");
        }
        std::fs::write(path, png).expect("write screenshot");
    }

    /// Ends the WebDriver session (closing the browser), then the driver.
    pub async fn close(mut self) {
        let client = self.client.clone();
        let _ = client.close().await;
        let _ = self.driver.kill();
    }
}
