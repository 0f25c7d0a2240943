//! The server's settings: command-line flags with environment fallbacks
//! (`VENEER_*`), validated at start. Owns nothing else.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::base;
pub use crate::limits::RateLimitMode;

/// Settings of `veneer serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Address to listen on.
    #[arg(long, env = "VENEER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Database URL: `sqlite://FILE` (created if missing) or `postgres://...`.
    #[arg(
        long,
        env = "VENEER_DATABASE_URL",
        default_value = "sqlite://veneer.db"
    )]
    pub database_url: String,

    /// Connections in the database pool.
    #[arg(long, env = "VENEER_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,

    /// How long a request waits for a database connection before answering 503.
    #[arg(long, env = "VENEER_DB_ACQUIRE_TIMEOUT_MS", default_value_t = 2_000)]
    pub db_acquire_timeout_ms: u64,

    /// Per-tenant request rate: `local` (each node allows the tenant's whole
    /// rate) or `global` (the nodes share it through the database; see
    /// docs/deployment.md).
    #[arg(long, env = "VENEER_RATE_LIMIT_MODE", value_enum, default_value_t = RateLimitMode::Local)]
    pub rate_limit_mode: RateLimitMode,

    /// Tenants are served at `<tenant>.<base-domain>` (plus custom domains).
    #[arg(long, env = "VENEER_BASE_DOMAIN", default_value = "localhost")]
    pub base_domain: String,

    /// The base-config directory.
    #[arg(long, env = "VENEER_BASE_CONFIG", default_value_os_t = base::default_dir())]
    pub base_config: PathBuf,

    /// Where compiled plugin artifacts are cached (empty: no disk cache).
    #[arg(long, env = "VENEER_ARTIFACT_DIR", default_value = ".veneer-artifacts")]
    pub artifact_dir: PathBuf,

    /// Development mode: trusts the built-in development signing key (see
    /// `veneer dev-token`) and seeds the demo tenants into an empty database.
    /// Never use it in production.
    #[arg(long, env = "VENEER_DEV")]
    pub dev: bool,

    /// Expected `iss` of tokens (your Clerk instance's issuer URL).
    #[arg(long, env = "VENEER_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// JWKS URL to fetch signing keys from.
    #[arg(long, env = "VENEER_JWKS_URL")]
    pub jwks_url: Option<String>,

    /// PEM file with a token-signing public key.
    #[arg(long, env = "VENEER_JWT_PEM")]
    pub jwt_pem: Option<PathBuf>,

    /// Allowed `azp` values (comma-separated); empty: not checked.
    #[arg(long, env = "VENEER_JWT_AUTHORIZED_PARTIES", value_delimiter = ',')]
    pub jwt_authorized_parties: Vec<String>,

    /// Claim (dotted path allowed) that marks a platform admin when `true`.
    #[arg(
        long,
        env = "VENEER_ADMIN_CLAIM",
        default_value = "veneer_platform_admin"
    )]
    pub admin_claim: String,

    /// Largest request body, in bytes (plugin uploads included).
    #[arg(long, env = "VENEER_MAX_BODY_BYTES", default_value_t = 16 << 20)]
    pub max_body_bytes: usize,

    /// Plugin compilations that may run at once.
    #[arg(long, env = "VENEER_COMPILE_CONCURRENCY", default_value_t = 2)]
    pub compile_concurrency: usize,

    /// Longest a plugin compilation may take, in seconds.
    #[arg(long, env = "VENEER_COMPILE_TIMEOUT_SECS", default_value_t = 60)]
    pub compile_timeout_secs: u64,

    /// Plugin calls that may run at once in this process (all tenants).
    #[arg(long, env = "VENEER_MAX_CONCURRENT_CALLS", default_value_t = 64)]
    pub max_concurrent_calls: u32,

    /// Plugin instances kept warm between commission calls (per tenant, plugin
    /// and data version; dropped after any failure). 0: a fresh store per call.
    #[arg(long, env = "VENEER_WARM_INSTANCES", default_value_t = 64)]
    pub warm_instances: u32,

    /// Key that encrypts credentials at rest, `<id>:<base64 of 32 bytes>`
    /// (make one with `openssl rand -base64 32`). Dev mode has an insecure default.
    #[arg(long, env = "VENEER_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<String>,

    /// Older keys still accepted for decryption during a rotation (comma-separated).
    #[arg(
        long,
        env = "VENEER_SECRET_OLD_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub secret_old_keys: Vec<String>,

    /// Background jobs this process runs at once (0: run no worker).
    #[arg(long, env = "VENEER_WORKER_CONCURRENCY", default_value_t = 4)]
    pub worker_concurrency: usize,

    /// First retry delay of a failed job, in milliseconds (doubles per attempt, with jitter).
    #[arg(long, env = "VENEER_JOB_BACKOFF_MS", default_value_t = 1_000)]
    pub job_backoff_ms: u64,

    /// Base URL for Shopify Admin API calls instead of https://<shop> (tests only).
    #[arg(long, env = "VENEER_SHOPIFY_API_BASE", hide = true)]
    pub shopify_api_base: Option<String>,

    /// The platform's SMTP relay host.
    #[arg(long, env = "VENEER_SMTP_HOST", default_value = "127.0.0.1")]
    pub smtp_host: String,

    /// The platform's SMTP relay port.
    #[arg(long, env = "VENEER_SMTP_PORT", default_value_t = 25)]
    pub smtp_port: u16,

    /// TLS towards the platform relay: none, starttls or tls.
    #[arg(long, env = "VENEER_SMTP_TLS", default_value = "none")]
    pub smtp_tls: String,

    /// Domain of the bounce (VERP) addresses: bounces come back to
    /// `bounce+<tenant>.<message>@<bounce-domain>`.
    #[arg(
        long,
        env = "VENEER_BOUNCE_DOMAIN",
        default_value = "bounces.veneer.localhost"
    )]
    pub bounce_domain: String,

    /// Shared token the bounce processor must send (header `X-Veneer-Bounce-Token`).
    #[arg(long, env = "VENEER_BOUNCE_TOKEN", hide_env_values = true)]
    pub bounce_token: Option<String>,

    /// Keys one tenant's key-value store may hold (writes past it: 409
    /// `kv_quota_exceeded`). Also how many entries a plugin can read.
    #[arg(long, env = "VENEER_KV_MAX_KEYS", default_value_t = 10_000)]
    pub kv_max_keys: u64,

    /// Bytes (keys plus values) one tenant's key-value store may hold (writes
    /// past it: 409 `kv_quota_exceeded`).
    #[arg(long, env = "VENEER_KV_MAX_BYTES", default_value_t = 16 << 20)]
    pub kv_max_bytes: u64,

    /// Memory the cached tenant states (key-value snapshots included) may take
    /// together, in MiB; the least used are dropped past it.
    #[arg(long, env = "VENEER_TENANT_CACHE_MIB", default_value_t = 256)]
    pub tenant_cache_mib: u64,

    /// Longest a request may take, in milliseconds, before it is answered 503
    /// `request_timeout` (plugin uploads get the compile timeout on top).
    #[arg(long, env = "VENEER_REQUEST_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout_ms: u64,

    /// Longest lifetime of a token, in seconds (`exp - iat`, or `exp - now` when
    /// it has no `iat`); a longer-lived one is refused (401 `token_lifetime_too_long`).
    /// 0: no maximum.
    #[arg(long, env = "VENEER_JWT_MAX_LIFETIME_SECS", default_value_t = 86_400)]
    pub jwt_max_lifetime_secs: u64,

    /// Benchmarks only: run the luxury-consignment plugin's commission hook
    /// natively instead of in the sandbox (docs/performance.md). Needs a build
    /// with `--features bench-native`; refused otherwise.
    #[arg(long, hide = true)]
    pub bench_native: bool,
}

impl ServeConfig {
    /// A configuration for tests and embedding: dev mode, SQLite at `database_url`,
    /// listening on an ephemeral loopback port.
    pub fn for_tests(database_url: impl Into<String>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: database_url.into(),
            db_max_connections: 8,
            db_acquire_timeout_ms: 2_000,
            rate_limit_mode: RateLimitMode::Local,
            base_domain: "veneer.test".into(),
            base_config: base::default_dir(),
            artifact_dir: PathBuf::new(),
            dev: true,
            jwt_issuer: None,
            jwks_url: None,
            jwt_pem: None,
            jwt_authorized_parties: Vec::new(),
            admin_claim: "veneer_platform_admin".into(),
            max_body_bytes: 16 << 20,
            compile_concurrency: 2,
            compile_timeout_secs: 60,
            max_concurrent_calls: 32,
            warm_instances: 16,
            secret_key: None,
            secret_old_keys: Vec::new(),
            worker_concurrency: 4,
            job_backoff_ms: 1_000,
            shopify_api_base: None,
            smtp_host: "127.0.0.1".into(),
            smtp_port: 25,
            smtp_tls: "none".into(),
            bounce_domain: "bounces.veneer.test".into(),
            bounce_token: Some("test-bounce-token".into()),
            kv_max_keys: 10_000,
            kv_max_bytes: 16 << 20,
            tenant_cache_mib: 256,
            request_timeout_ms: 30_000,
            jwt_max_lifetime_secs: 86_400,
            bench_native: false,
        }
    }

    /// The request timeout as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms.max(1))
    }

    /// The acquire timeout as a duration.
    pub fn db_acquire_timeout(&self) -> Duration {
        Duration::from_millis(self.db_acquire_timeout_ms)
    }
}
