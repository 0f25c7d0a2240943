//! The server's settings: command-line flags with environment fallbacks
//! (`VENEER_*`), validated at start. Owns nothing else.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

pub use crate::limits::RateLimitMode;
pub use backups::BackupConfig;
pub use clerk::ClerkConfig;
pub use otlp::OtlpConfig;
pub use tls::TlsConfig;

mod backups;
mod clerk;
mod otlp;
mod tls;

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

    /// A base-config directory to serve instead of the one built into the binary.
    #[arg(long, env = "VENEER_BASE_CONFIG")]
    pub base_config: Option<PathBuf>,

    /// Where compiled plugin artifacts (native code) are cached, made owner-only
    /// and each signed with a key derived from VENEER_SECRET_KEY (empty: no
    /// disk cache). A relative path is taken from the working directory at start.
    #[arg(long, env = "VENEER_ARTIFACT_DIR", default_value_os_t = default_artifact_dir())]
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

    /// Fuel one request may spend across a tenant's whole chain of
    /// installations (every section of an effective configuration together);
    /// each installation's own quota still applies within it.
    #[arg(long, env = "VENEER_CHAIN_MAX_FUEL", default_value_t = 100_000_000)]
    pub chain_max_fuel: u64,

    /// Wall time one request's plugin calls may take across the chain, in
    /// milliseconds.
    #[arg(long, env = "VENEER_CHAIN_MAX_MS", default_value_t = 1_000)]
    pub chain_max_ms: u64,

    /// A quote's plugins first run in place on the request's worker thread,
    /// each step capped at this many milliseconds (and 1 M fuel); a step that
    /// needs more runs again on a blocking thread with its whole quota. Raise
    /// it on a machine whose threads are often preempted for longer.
    #[arg(long, env = "VENEER_INLINE_MS", default_value_t = 2)]
    pub inline_ms: u64,

    /// Automatic rollback: a release that fails (any outcome but `ok`) this
    /// many times within its first `--rollback-calls` calls or
    /// `--rollback-secs` seconds after it went live, on one node, is rolled
    /// back to the release live before it. 0 turns it off.
    #[arg(long, env = "VENEER_ROLLBACK_FAILURES", default_value_t = 5)]
    pub rollback_failures: u32,

    /// The calls a new release is watched for (see `--rollback-failures`).
    #[arg(long, env = "VENEER_ROLLBACK_CALLS", default_value_t = 100)]
    pub rollback_calls: u32,

    /// The seconds a new release is watched for (see `--rollback-failures`).
    #[arg(long, env = "VENEER_ROLLBACK_SECS", default_value_t = 600)]
    pub rollback_secs: u64,

    /// Shadow runs (a draft release run beside the live one, off the request
    /// path) that may run at once in this process, all tenants together; a
    /// sampled call that finds none free is not shadowed. They have their
    /// own instance slots: live calls never wait for them.
    #[arg(long, env = "VENEER_SHADOW_CONCURRENCY", default_value_t = 1)]
    pub shadow_concurrency: u32,

    /// Shadow runs this process starts per second at most, all tenants
    /// together (sampled calls past it are not shadowed): what shadowing may
    /// take from live traffic is this many fresh-store chain runs and writes.
    #[arg(long, env = "VENEER_SHADOW_MAX_PER_SEC", default_value_t = 20)]
    pub shadow_max_per_sec: u32,

    /// Fuel one shadow run may spend across the chain it runs in.
    #[arg(long, env = "VENEER_SHADOW_MAX_FUEL", default_value_t = 10_000_000)]
    pub shadow_max_fuel: u64,

    /// Wall time one shadow run may take across the chain, in milliseconds.
    #[arg(long, env = "VENEER_SHADOW_MAX_MS", default_value_t = 250)]
    pub shadow_max_ms: u64,

    /// Clean shadow calls every tenant's new commission release needs before
    /// it may be activated (a tenant may require more); 0: no platform gate.
    #[arg(long, env = "VENEER_SHADOW_GATE", default_value_t = 0)]
    pub shadow_gate: u32,

    /// Highest share of hook calls a tenant may have recorded for replay.
    #[arg(long, env = "VENEER_RECORD_MAX_RATE", default_value_t = 0.1)]
    pub record_max_rate: f64,

    /// Longest a tenant may keep recorded hook calls, in days.
    #[arg(long, env = "VENEER_RECORD_MAX_DAYS", default_value_t = 30)]
    pub record_max_days: u32,

    /// Reports the bounce endpoint takes per second, from anyone (burst: ten
    /// times as many); past it, 429.
    #[arg(long, env = "VENEER_BOUNCE_RATE_PER_SEC", default_value_t = 50)]
    pub bounce_rate_per_sec: u32,

    /// One log line per request (target `veneer::access`: method, host,
    /// tenant, path, status, latency, request id).
    #[arg(long, env = "VENEER_ACCESS_LOG", default_value_t = true, action = clap::ArgAction::Set)]
    pub access_log: bool,

    /// Address of the metrics listener, serving Prometheus metrics at
    /// `GET /metrics` and nothing else (off when unset). Bind it to a private
    /// address: the metrics name tenants and are not authenticated.
    #[arg(long, env = "VENEER_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// Tenants given a `tenant` label of their own in the metrics; later ones
    /// are counted under `tenant="_other"` (this bounds the series count:
    /// docs/operations.md, "Metrics").
    #[arg(long, env = "VENEER_METRICS_MAX_TENANTS", default_value_t = crate::metrics::DEFAULT_MAX_TENANTS)]
    pub metrics_max_tenants: usize,

    /// The DNS server custom domains are proven with (`host:port`); the
    /// system's (`/etc/resolv.conf`) when unset.
    #[arg(long, env = "VENEER_DNS_SERVER")]
    pub dns_server: Option<std::net::SocketAddr>,

    /// How long a deleted tenant can still be restored, in seconds; its rows
    /// are purged after (docs/operations.md, "Tenant lifecycle").
    #[arg(long, env = "VENEER_TENANT_PURGE_GRACE_SECS", default_value_t = 7 * 86_400)]
    pub tenant_purge_grace_secs: u64,

    /// How often each node looks for deleted tenants whose purge is due, in
    /// seconds (0: never; purge with `POST /v1/admin/tenants/{id}/purge`).
    #[arg(long, env = "VENEER_TENANT_PURGE_INTERVAL_SECS", default_value_t = 300)]
    pub tenant_purge_interval_secs: u64,

    /// How often a verified custom domain's DNS proof is checked again, in
    /// seconds.
    #[arg(long, env = "VENEER_DOMAIN_RECHECK_SECS", default_value_t = 3_600)]
    pub domain_recheck_secs: u64,

    /// How long a verified domain whose proof went missing is still served
    /// before it is disabled, in seconds.
    #[arg(long, env = "VENEER_DOMAIN_GRACE_SECS", default_value_t = 86_400)]
    pub domain_grace_secs: u64,

    /// Plugin calls that may run at once in this process (all tenants).
    #[arg(long, env = "VENEER_MAX_CONCURRENT_CALLS", default_value_t = 64)]
    pub max_concurrent_calls: u32,

    /// Plugin instances kept warm between commission calls (per tenant, plugin
    /// and data version; dropped after any failure). 0: a fresh store per call.
    #[arg(long, env = "VENEER_WARM_INSTANCES", default_value_t = 64)]
    pub warm_instances: u32,

    /// Compiled plugins kept loaded, in MiB of code and components (all plugins
    /// together); past it the least recently used are released and reloaded
    /// from the artifact cache when next needed.
    #[arg(long, env = "VENEER_LOADED_PLUGINS_MIB", default_value_t = 1024)]
    pub loaded_plugins_mib: u64,

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

    /// Jobs of one tenant running at once, across every node (0: no cap).
    #[arg(long, env = "VENEER_JOBS_PER_TENANT", default_value_t = 2)]
    pub jobs_per_tenant: u32,

    /// Wall-clock budget of one attempt of a Shopify webhook job, in seconds.
    #[arg(long, env = "VENEER_SHOPIFY_JOB_BUDGET_SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub shopify_job_budget_secs: u64,

    /// Wall-clock budget of one attempt of an email send job, in seconds.
    #[arg(long, env = "VENEER_EMAIL_JOB_BUDGET_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub email_job_budget_secs: u64,

    /// Line items an `orders/create` webhook may carry; a larger order is
    /// dead-lettered without any commission recorded.
    #[arg(long, env = "VENEER_MAX_ORDER_LINES", default_value_t = 500,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub max_order_lines: u64,

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

    /// Ports a tenant's own SMTP relay may use (comma-separated).
    #[arg(
        long,
        env = "VENEER_SMTP_RELAY_PORTS",
        value_delimiter = ',',
        default_value = "25,465,587,2525"
    )]
    pub smtp_relay_ports: Vec<u16>,

    /// Internal addresses a tenant's own SMTP relay may use all the same
    /// (comma-separated `IP`, `IP/PREFIX`, `IP:PORT` or `[IPv6]:PORT`; a port
    /// given is allowed on that address even if not in --smtp-relay-ports).
    /// Empty by default: tenants' relays must be public.
    #[arg(long, env = "VENEER_SMTP_RELAY_ALLOW", value_delimiter = ',')]
    pub smtp_relay_allow: Vec<crate::outbound::AllowedTarget>,

    /// Domain of the bounce (VERP) addresses: bounces come back to
    /// `bounce+<tenant>.<message>@<bounce-domain>`.
    #[arg(
        long,
        env = "VENEER_BOUNCE_DOMAIN",
        default_value = "bounces.veneer.localhost"
    )]
    pub bounce_domain: String,

    /// The SPF record tenants are told to include in their sending domain's
    /// (`v=spf1 include:<this> ~all`): the platform relay's sending hosts.
    /// Empty: `_spf.<bounce-domain>`.
    #[arg(long, env = "VENEER_SPF_INCLUDE", default_value = "")]
    pub spf_include: String,

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

    /// Plugin versions one tenant may store (uploads past it: 409
    /// `plugin_store_full`; versions no release uses can be deleted).
    #[arg(long, env = "VENEER_MAX_PLUGIN_VERSIONS", default_value_t = 50)]
    pub max_plugin_versions: u32,

    /// MiB of plugin components one tenant may store (409 `plugin_store_full`).
    #[arg(long, env = "VENEER_MAX_PLUGIN_MIB", default_value_t = 256)]
    pub max_plugin_mib: u64,

    /// Emails one tenant may queue per UTC day (past it: 429
    /// `email_quota_exceeded` until midnight UTC).
    #[arg(long, env = "VENEER_MAX_EMAILS_PER_DAY", default_value_t = 10_000)]
    pub max_emails_per_day: u64,

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

    /// HTTPS (`--tls` and its settings).
    #[command(flatten)]
    pub tls: TlsConfig,

    /// Trace export (`--otlp-endpoint` and its settings).
    #[command(flatten)]
    pub otlp: OtlpConfig,

    /// Scheduled tenant backups (`--backup-dir` and its settings).
    #[command(flatten)]
    pub backups: BackupConfig,

    /// Clerk organisation webhooks (`--clerk-webhook-secret` and its settings).
    #[command(flatten)]
    pub clerk: ClerkConfig,

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
            base_config: None,
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
            chain_max_fuel: 100_000_000,
            chain_max_ms: 1_000,
            inline_ms: 2,
            shadow_concurrency: 1,
            shadow_max_per_sec: 20,
            shadow_max_fuel: 10_000_000,
            shadow_max_ms: 250,
            shadow_gate: 0,
            record_max_rate: 0.1,
            record_max_days: 30,
            dns_server: None,
            access_log: true,
            metrics_listen: None,
            metrics_max_tenants: crate::metrics::DEFAULT_MAX_TENANTS,
            bounce_rate_per_sec: 50,
            tenant_purge_grace_secs: 7 * 86_400,
            // No sweep: the tests' servers share one artifact directory
            // across their databases, and the sweep removes the artifacts its
            // own database does not know (a test that wants it sets it).
            tenant_purge_interval_secs: 0,
            domain_recheck_secs: 3_600,
            domain_grace_secs: 86_400,
            rollback_failures: 5,
            rollback_calls: 100,
            rollback_secs: 600,
            max_concurrent_calls: 32,
            warm_instances: 16,
            loaded_plugins_mib: 1024,
            secret_key: None,
            secret_old_keys: Vec::new(),
            worker_concurrency: 4,
            job_backoff_ms: 1_000,
            jobs_per_tenant: 2,
            shopify_job_budget_secs: 300,
            email_job_budget_secs: 60,
            max_order_lines: 500,
            shopify_api_base: None,
            smtp_host: "127.0.0.1".into(),
            smtp_port: 25,
            smtp_tls: "none".into(),
            smtp_relay_ports: crate::outbound::SUBMISSION_PORTS.to_vec(),
            smtp_relay_allow: Vec::new(),
            bounce_domain: "bounces.veneer.test".into(),
            spf_include: String::new(),
            bounce_token: Some("test-bounce-token".into()),
            kv_max_keys: 10_000,
            kv_max_bytes: 16 << 20,
            max_plugin_versions: 50,
            max_plugin_mib: 256,
            max_emails_per_day: 10_000,
            tenant_cache_mib: 256,
            request_timeout_ms: 30_000,
            jwt_max_lifetime_secs: 86_400,
            tls: TlsConfig::default(),
            otlp: OtlpConfig::default(),
            backups: BackupConfig::default(),
            clerk: ClerkConfig::default(),
            bench_native: false,
        }
    }

    /// Where tenants' own SMTP relays may connect.
    pub fn relay_policy(&self) -> crate::outbound::OutboundPolicy {
        crate::outbound::OutboundPolicy {
            ports: self.smtp_relay_ports.clone(),
            allow: self.smtp_relay_allow.clone(),
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

/// The artifact cache's default place: `$XDG_CACHE_HOME/veneer/artifacts`, else
/// `$HOME/.cache/veneer/artifacts`, else under the system's temporary directory.
pub fn default_artifact_dir() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .filter(|dir| dir.is_absolute())
                .map(|home| home.join(".cache"))
        })
        .unwrap_or_else(std::env::temp_dir);
    cache.join("veneer").join("artifacts")
}
