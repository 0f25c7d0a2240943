//! The API of one test on a fresh database, in process or listening, and the
//! calls the tests make on it (the databases, tokens, polling and transports
//! come from `veneer::test_support`).

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use veneer::config::ServeConfig;
use veneer::server::{Running, start};
use veneer::state::AppState;
use veneer::test_support::api::{Api, ApiRequest};
use veneer::test_support::{self, eventually};
pub use veneer::test_support::{Db, TestDb, admin, member, platform_admin};

/// The API with two demo tenants, `acme` and `globex`: in process
/// ([`Server::in_process`]) or a listening server ([`Server::start`]).
pub struct Server {
    /// Where requests go.
    pub api: Api,
    /// The listening server (TCP only).
    running: Option<Running>,
    /// The application state (both transports).
    pub state: AppState,
    pub client: reqwest::Client,
    /// The database; dropped after the server.
    pub db: TestDb,
    /// The DNS server the host proves domains with ([`Server::start_with_dns`]).
    pub dns: Option<veneer::test_support::dns_server::DnsServer>,
}

pub const BASE: &str = "veneer.test";
/// The installation the helpers install into when the tenant has none (a
/// demo tenant's own is used instead: installing replaces what it serves).
pub const MAIN: &str = "main";

impl Server {
    /// A listening server (with its job workers) on a fresh database, seeded
    /// with the demo tenants: for what needs a socket or the workers.
    pub async fn start(kind: Db) -> Self {
        Self::start_with(kind, |_| {}).await
    }

    /// Like [`Server::start`], with the configuration adjusted first.
    pub async fn start_with(kind: Db, adjust: impl FnOnce(&mut ServeConfig)) -> Self {
        let (db, config) = Self::config(kind, adjust).await;
        Self::serve(db, config).await
    }

    /// A listening server on `db` as it is (a database with tenants is not
    /// seeded with the demo's).
    pub async fn start_on(db: TestDb) -> Self {
        let config = Self::config_on(&db, |_| {});
        Self::serve(db, config).await
    }

    async fn serve(db: TestDb, config: ServeConfig) -> Self {
        let running = start(config).await.expect("server starts");
        let client = client();
        Self {
            api: Api::Tcp {
                client: client.clone(),
                base: format!("http://{}", running.addr),
            },
            state: running.state.clone(),
            running: Some(running),
            client,
            db,
            dns: None,
        }
    }

    /// Like [`Server::start_with`], with a DNS server of its own on loopback
    /// that the host proves domains with (see [`Server::verify_domain`]).
    pub async fn start_with_dns(kind: Db, adjust: impl FnOnce(&mut ServeConfig)) -> Self {
        let dns = veneer::test_support::dns_server::DnsServer::start().await;
        let addr = dns.addr;
        let mut server = Self::start_with(kind, |config| {
            config.dns_server = Some(addr);
            config.job_backoff_ms = config.job_backoff_ms.min(50);
            adjust(config);
        })
        .await;
        server.dns = Some(dns);
        server
    }

    /// Claims `domain` for `tenant` as its admin, publishes the TXT record the
    /// claim asks for on this server's DNS server, and waits until it is
    /// verified.
    pub async fn verify_domain(&self, tenant: &str, domain: &str) {
        let dns = self
            .dns
            .as_ref()
            .expect("a server started with Server::start_with_dns");
        let (status, body) = self
            .call(
                Method::POST,
                tenant,
                "/v1/domains",
                Some(&admin(tenant)),
                Some(json!({ "domain": domain })),
            )
            .await;
        assert!(
            status == StatusCode::CREATED || status == StatusCode::OK,
            "{status} {body}"
        );
        let txt = &body["domain"]["records"][0];
        dns.set_txt(
            txt["name"].as_str().expect("record name"),
            &[txt["value"].as_str().expect("record value")],
        );
        let (status, body) = self
            .call(
                Method::POST,
                tenant,
                &format!("/v1/domains/{domain}/check"),
                Some(&admin(tenant)),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let verified = self
            .eventually(20, async |s| {
                let (_, body) = s
                    .get(tenant, &format!("/v1/domains/{domain}"), &admin(tenant))
                    .await;
                (body["domain"]["status"] == "verified").then_some(())
            })
            .await;
        assert!(verified.is_some(), "{domain} verified for {tenant}");
    }

    /// Publishes the DKIM record of `tenant`'s sending domain `domain` (named
    /// in its email settings) on this server's DNS server, and waits until the
    /// domain is verified; returns the selector of its signing key.
    pub async fn verify_sending_domain(&self, tenant: &str, domain: &str) -> String {
        let dns = self
            .dns
            .as_ref()
            .expect("a server started with Server::start_with_dns");
        let path = format!("/v1/email/domains/{domain}");
        let (status, body) = self.get(tenant, &path, &member(tenant)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let records = body["domain"]["records"].as_array().expect("records");
        let dkim = records
            .iter()
            .find(|r| r["purpose"] == "dkim")
            .expect("a DKIM record to publish");
        let name = dkim["name"].as_str().expect("record name");
        dns.set_txt(name, &[dkim["value"].as_str().expect("record value")]);
        let (status, body) = self
            .call(
                Method::POST,
                tenant,
                &format!("{path}/check"),
                Some(&admin(tenant)),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let verified = self
            .eventually(20, async |s| {
                let (_, body) = s.get(tenant, &path, &member(tenant)).await;
                (body["domain"]["sends_as_domain"] == true).then_some(())
            })
            .await;
        if verified.is_none() {
            let (_, view) = self.get(tenant, &path, &member(tenant)).await;
            let (_, jobs) = self.get(tenant, "/v1/jobs", &admin(tenant)).await;
            panic!("{domain} not verified for {tenant}'s mail: {view}; jobs: {jobs}");
        }
        name.split("._domainkey.")
            .next()
            .expect("selector")
            .to_owned()
    }

    /// The API in process (no socket, no job workers) on a fresh database,
    /// seeded with the demo tenants: for routing, extractors, error shapes,
    /// ETags and everything else a request alone decides.
    pub async fn in_process(kind: Db) -> Self {
        Self::in_process_with(kind, |_| {}).await
    }

    /// Like [`Server::in_process`], with the configuration adjusted first.
    pub async fn in_process_with(kind: Db, adjust: impl FnOnce(&mut ServeConfig)) -> Self {
        let (db, config) = Self::config(kind, adjust).await;
        let (state, api) = test_support::api::in_process(config).await;
        Self {
            api,
            state,
            running: None,
            client: client(),
            db,
            dns: None,
        }
    }

    async fn config(kind: Db, adjust: impl FnOnce(&mut ServeConfig)) -> (TestDb, ServeConfig) {
        let db = TestDb::new(kind).await;
        let config = Self::config_on(&db, adjust);
        (db, config)
    }

    fn config_on(db: &TestDb, adjust: impl FnOnce(&mut ServeConfig)) -> ServeConfig {
        let mut config = ServeConfig::for_tests(db.url.clone());
        config.base_domain = BASE.into();
        // One artifact directory for every server of the suite (and across
        // runs): each compiles a demo plugin once, then loads its native code
        // (keyed by sha256 and engine, HMAC-checked), as a second node would.
        config.artifact_dir =
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-artifacts");
        adjust(&mut config);
        config
    }

    /// The listening server; only a test started with [`Server::start`] has one.
    pub fn running(&self) -> &Running {
        self.running
            .as_ref()
            .expect("this test needs a socket: start it with Server::start")
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running().addr)
    }

    /// A request to `path` with the Host header of `tenant` (or the platform).
    pub fn request(&self, method: Method, host: &str, path: &str) -> ApiRequest {
        let host = if host.is_empty() {
            BASE.to_owned()
        } else {
            format!("{host}.{BASE}")
        };
        self.api.request(method, &host, path)
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
        let text = response.text().await.expect("a UTF-8 body");
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

    /// Uploads `bytes` as `tenant`'s plugin and makes it live with `settings`
    /// as installation `main` (created when missing), asserting each step;
    /// returns the plugin's sha256.
    pub async fn install(
        &self,
        tenant: &str,
        token: &str,
        bytes: Vec<u8>,
        settings: Value,
    ) -> String {
        let installation = self.first_installation(tenant, token).await;
        self.install_as(tenant, token, &installation, bytes, settings)
            .await
    }

    /// The name of `tenant`'s first installation, or [`MAIN`] when it has none.
    pub async fn first_installation(&self, tenant: &str, token: &str) -> String {
        let (status, body) = self
            .call(Method::GET, tenant, "/v1/installations", Some(token), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["installations"][0]["name"]
            .as_str()
            .unwrap_or(MAIN)
            .to_owned()
    }

    /// Like [`Self::install`], as installation `installation`.
    pub async fn install_as(
        &self,
        tenant: &str,
        token: &str,
        installation: &str,
        bytes: Vec<u8>,
        settings: Value,
    ) -> String {
        let (status, uploaded) = self.upload(tenant, token, bytes).await;
        assert_eq!(status, StatusCode::CREATED, "{uploaded}");
        let sha = uploaded["plugin"]["sha256"]
            .as_str()
            .expect("sha")
            .to_owned();
        self.ensure_installation(tenant, token, installation).await;
        let release = self
            .create_release(tenant, token, installation, &sha, settings)
            .await;
        self.activate_release(tenant, token, installation, release)
            .await;
        sha
    }

    /// Creates tenant `id` with room for a test's every request in its rate
    /// (100,000/s); asserts 201.
    pub async fn create_busy_tenant(&self, id: &str) {
        let (status, body) = self
            .call(
                Method::POST,
                "",
                "/v1/admin/tenants",
                Some(&platform_admin()),
                Some(json!({ "id": id, "name": format!("Tenant {id}"),
                             "rate_limit_per_sec": 100_000, "rate_limit_burst": 100_000 })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// Everything the database holds of `table`, as text to search: the whole
    /// SQLite file and its write-ahead log, or the table's rows read as the
    /// PostgreSQL owner (past the application and row-level security).
    pub async fn stored_text(&self, table: &str) -> String {
        match self.db.kind {
            Db::Sqlite => {
                let path = self.db.url.trim_start_matches("sqlite://").to_owned();
                let mut bytes = std::fs::read(&path).unwrap_or_default();
                bytes.extend(std::fs::read(format!("{path}-wal")).unwrap_or_default());
                String::from_utf8_lossy(&bytes).into_owned()
            }
            Db::Postgres => {
                let mut sql = veneer::test_support::RawSql::connect(&self.db.url).await;
                let rows = sql.rows(&format!("SELECT * FROM {table}")).await;
                sql.close().await;
                rows.iter()
                    .map(Value::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        }
    }

    /// Creates tenant `id` (no plugin: it is served the base) as a platform
    /// admin; asserts 201.
    pub async fn create_tenant(&self, id: &str) {
        let (status, body) = self
            .call(
                Method::POST,
                "",
                "/v1/admin/tenants",
                Some(&platform_admin()),
                Some(json!({ "id": id, "name": format!("Tenant {id}") })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// Creates installation `name` for `tenant` unless it exists.
    pub async fn ensure_installation(&self, tenant: &str, token: &str, name: &str) {
        let (status, body) = self
            .call(
                Method::POST,
                tenant,
                "/v1/installations",
                Some(token),
                Some(serde_json::json!({ "name": name })),
            )
            .await;
        assert!(
            status == StatusCode::CREATED || status == StatusCode::CONFLICT,
            "{status} {body}"
        );
    }

    /// Creates a draft release of `installation`; asserts 201 and returns its id.
    pub async fn create_release(
        &self,
        tenant: &str,
        token: &str,
        installation: &str,
        sha: &str,
        settings: Value,
    ) -> i64 {
        let (status, body) = self
            .call(
                Method::POST,
                tenant,
                &format!("/v1/installations/{installation}/releases"),
                Some(token),
                Some(serde_json::json!({ "plugin": sha, "settings": settings })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["release"]["state"], "draft", "{body}");
        body["release"]["id"].as_i64().expect("release id")
    }

    /// Makes release `id` of `installation` live; asserts 200.
    pub async fn activate_release(&self, tenant: &str, token: &str, installation: &str, id: i64) {
        let (status, body) = self
            .call(
                Method::POST,
                tenant,
                &format!("/v1/installations/{installation}/releases/{id}/activate"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["event"]["release_id"], id, "{body}");
    }

    /// Installs the hostile plugin for `tenant` (as its admin) with `settings`.
    pub async fn install_hostile(&self, tenant: &str, settings: Value) -> String {
        let bytes = crate::util::read(veneer_plugin_artifacts::HOSTILE);
        self.install(tenant, &admin(tenant), bytes, settings).await
    }

    /// Sets `tenant`'s plugin quota as a platform admin, asserting it was taken.
    pub async fn set_quota(&self, tenant: &str, quota: Value) {
        let (status, body) = self
            .call(
                Method::PUT,
                "",
                &format!("/v1/admin/tenants/{tenant}/quota"),
                Some(&platform_admin()),
                Some(quota),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// A commission quote for `sale` as `token`; asserts 200.
    pub async fn quote(&self, tenant: &str, token: &str, sale: Value) -> Value {
        let (status, quote) = self
            .call(
                Method::POST,
                tenant,
                "/v1/commission/quote",
                Some(token),
                Some(sale),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{quote}");
        quote
    }

    /// Sets `tenant`'s email settings as its admin, asserting they were taken.
    pub async fn configure_email(&self, tenant: &str, settings: Value) {
        let (status, body) = self
            .call(
                Method::PUT,
                tenant,
                "/v1/email/settings",
                Some(&admin(tenant)),
                Some(settings),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{tenant} email settings: {body}");
        assert_eq!(body["configured"], true, "{body}");
    }

    /// Makes live a release of the tenant's first installation with its live
    /// plugin and `settings` (a settings change is a new release), asserting
    /// each step.
    pub async fn set_settings(&self, tenant: &str, token: &str, settings: Value) {
        let installation = self.first_installation(tenant, token).await;
        let (status, body) = self
            .call(
                Method::GET,
                tenant,
                &format!("/v1/installations/{installation}"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let sha = body["installation"]["live"]["plugin"]
            .as_str()
            .expect("a live release to change the settings of")
            .to_owned();
        let release = self
            .create_release(tenant, token, &installation, &sha, settings)
            .await;
        self.activate_release(tenant, token, &installation, release)
            .await;
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

/// How a `veneer` command ended and what it printed.
#[derive(Debug)]
pub struct CliRun {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Server {
    /// Runs the `veneer` binary with `args` against this server's database
    /// (`VENEER_DATABASE_URL`), off the async threads. The caller's
    /// `VENEER_*` secrets, base and DNS settings are not inherited; `env` is
    /// set on top.
    pub async fn veneer(&self, args: &[&str], env: &[(&str, &str)]) -> CliRun {
        let url = self.db.url.clone();
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        tokio::task::spawn_blocking(move || {
            let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_veneer"));
            command.args(&args).env("VENEER_DATABASE_URL", &url);
            for name in [
                "VENEER_SECRET_KEY",
                "VENEER_SECRET_OLD_KEYS",
                "VENEER_BASE_CONFIG",
                "VENEER_DNS_SERVER",
            ] {
                command.env_remove(name);
            }
            command.envs(env);
            let out = command.output().expect("veneer runs");
            CliRun {
                code: out.status.code(),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        })
        .await
        .expect("the command ran")
    }
}

pub fn sale(category: &str, price: u64) -> Value {
    json!({ "order_id": "o-1", "sku": "SKU-1", "category_id": category, "unit_price": price, "quantity": 1, "currency": "EUR" })
}

impl Server {
    /// Polls `check` until it returns Some, for up to `secs` seconds.
    pub async fn eventually<T>(
        &self,
        secs: u64,
        mut check: impl AsyncFnMut(&Server) -> Option<T>,
    ) -> Option<T> {
        eventually(Duration::from_secs(secs), async || check(self).await).await
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}
