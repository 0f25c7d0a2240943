//! The server's shared state, built once at start: storage, the plugin runtime,
//! the base configuration, the authenticator, caches, limits and the recorder.
//! Also the few operations every handler needs on it: the cached tenant row
//! (cheap: routing, status and limits before the caller is authenticated) and
//! tenant state (heavy: settings and key-value data, loaded after), each load
//! coalesced so concurrent requests for one cold tenant read the database once;
//! and invalidation after a write (on every node: see [`crate::invalidation`]).
//! Its errors are the application layer's ([`crate::app::Error`]); the use cases
//! themselves live in [`crate::app`], and this module imports no adapter
//! (`http`, `workers`).

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::Semaphore;

use crate::app::Error;
use crate::auth::{AuthConfig, Authenticator};
use crate::base::BaseConfig;
use crate::cache::{Caches, Flights, HostKey};
use crate::config::ServeConfig;
use crate::invalidation::Invalidation;
use crate::limits::Limits;
use crate::runtime::{Runtime, RuntimeConfig};
use crate::secrets::SecretBox;
use crate::storage::{KvLimits, Storage, StorageError, StorageOptions, TenantRecord};
use crate::tenancy::{TenantId, TenantState};
use crate::usage::Recorder;

/// Recorded calls written at once, all tenants together.
const RECORD_SLOTS: usize = 2;

/// Everything handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The parts of [`AppState`].
pub struct Inner {
    /// The settings it was started with.
    pub config: ServeConfig,
    /// The database.
    pub storage: Storage,
    /// The plugin sandbox.
    pub runtime: Arc<Runtime>,
    /// The base configuration now served (swapped whole by a live reload:
    /// read it with [`AppState::base`]).
    pub base_config: arc_swap::ArcSwap<BaseConfig>,
    /// Token verification.
    pub auth: Authenticator,
    /// In-process caches.
    pub caches: Caches,
    /// Invalidation of the caches here and on the other nodes.
    pub invalidation: Invalidation,
    /// Per-tenant rate and concurrency limits.
    pub limits: Limits,
    /// Run and usage recording.
    pub recorder: Recorder,
    /// Releases on probation after going live (automatic rollback).
    pub probation: crate::app::rollout::Probation,
    /// Bounds concurrent plugin compilations.
    pub compile_slots: Arc<Semaphore>,
    /// The DNS resolver custom domains are proven with.
    pub dns: crate::dns::Dns,
    /// Shadow runs that may run at once (`--shadow-concurrency`).
    pub shadow_slots: Arc<Semaphore>,
    /// The bounce endpoint's rate (`--bounce-rate-per-sec`).
    pub bounce_rate: governor::DefaultDirectRateLimiter,
    /// The Clerk webhook endpoint's signing secret (`--clerk-webhook-secret`);
    /// none: the endpoint is off.
    pub clerk_webhook_secret: Option<crate::clerk::WebhookSecret>,
    /// The Clerk webhook endpoint's rate (`--clerk-webhook-rate-per-sec`).
    pub clerk_rate: governor::DefaultDirectRateLimiter,
    /// The pace of shadow runs (`--shadow-max-per-sec`).
    pub shadow_pace: crate::app::shadow::Pace,
    /// Recorded calls being written at once (a sampled call finding none
    /// free is not recorded).
    pub record_slots: Arc<Semaphore>,
    /// Each tenant's running compilations, held to its share of the slots.
    pub compile_shares: CompileShares,
    /// Encryption of credentials at rest.
    pub secrets: Arc<SecretBox>,
    /// The outbound HTTP client (Shopify's Admin API).
    pub http: reqwest::Client,
    /// Prometheus metrics.
    pub metrics: crate::metrics::Metrics,
    /// Tenant-row loads in progress.
    record_loads: Flights<TenantId, Result<Option<Arc<TenantRecord>>, Error>>,
    /// Tenant-state loads in progress.
    state_loads: Flights<TenantId, Result<Option<Arc<TenantState>>, Error>>,
    /// Custom-domain lookups in progress.
    host_lookups: Flights<HostKey, Result<Option<TenantId>, Error>>,
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// The base configuration now served. A request takes it once and keeps
    /// it: a reload meanwhile changes the next request's, never half of one.
    pub fn base(&self) -> Arc<BaseConfig> {
        self.base_config.load_full()
    }

    /// Connects, migrates, loads the base and starts the background parts.
    pub async fn build(config: ServeConfig) -> anyhow::Result<Self> {
        let base =
            BaseConfig::load_or_built_in(config.base_config.as_deref()).with_context(|| {
                match &config.base_config {
                    Some(dir) => format!("loading the base configuration from {}", dir.display()),
                    None => "loading the built-in base configuration".to_owned(),
                }
            })?;
        let storage = Storage::connect(
            &config.database_url,
            &StorageOptions {
                max_connections: config.db_max_connections,
                acquire_timeout: config.db_acquire_timeout(),
                kv_limits: KvLimits {
                    max_keys: config.kv_max_keys,
                    max_bytes: config.kv_max_bytes,
                },
                plugin_limits: crate::storage::PluginStoreLimits {
                    max_versions: config.max_plugin_versions,
                    max_bytes: config.max_plugin_mib.saturating_mul(1 << 20),
                },
                ..StorageOptions::default()
            },
        )
        .await
        .with_context(|| {
            format!(
                "connecting to the database {}",
                redact(&config.database_url)
            )
        })?;
        let artifact_dir = if config.artifact_dir.as_os_str().is_empty() {
            None
        } else {
            Some(std::path::absolute(&config.artifact_dir).with_context(|| {
                format!(
                    "resolving the artifact directory {}",
                    config.artifact_dir.display()
                )
            })?)
        };
        let secrets = SecretBox::from_env_or_dev(
            config.secret_key.as_deref(),
            &config.secret_old_keys,
            config.dev,
        )
        .context("loading the secrets key (VENEER_SECRET_KEY)")?;
        let runtime = Runtime::new(RuntimeConfig {
            artifact_dir,
            artifact_key: Some(secrets.derive_key("veneer:artifacts:v1")),
            // Shadow runs have slots of their own beside the live calls'.
            max_concurrent_calls: config
                .max_concurrent_calls
                .saturating_add(config.shadow_concurrency),
            warm_instances: config.warm_instances,
            loaded_bytes: config.loaded_plugins_mib.saturating_mul(1 << 20),
            ..RuntimeConfig::default()
        })
        .context("starting the plugin runtime")?;
        let auth = Authenticator::new(AuthConfig {
            issuer: config.jwt_issuer.clone(),
            jwks_url: config.jwks_url.clone(),
            pem_file: config.jwt_pem.clone(),
            authorized_parties: config.jwt_authorized_parties.clone(),
            admin_claim: config.admin_claim.clone(),
            dev_mode: config.dev,
            max_lifetime_secs: (config.jwt_max_lifetime_secs > 0)
                .then_some(config.jwt_max_lifetime_secs),
            ..AuthConfig::default()
        })
        .await
        .context("configuring token verification")?;
        if secrets.is_insecure_dev_key() {
            tracing::warn!(
                "credentials are encrypted with the insecure development key; set VENEER_SECRET_KEY in production"
            );
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .context("building the HTTP client")?;
        let recorder = Recorder::start(storage.clone());
        let caches = Caches::with_tenant_capacity(config.tenant_cache_mib.saturating_mul(1 << 20));
        let invalidation = Invalidation::start(caches.clone(), &storage, &config.database_url);
        let limits = Limits::new(config.rate_limit_mode, storage.platform());
        let compile_slots = Arc::new(Semaphore::new(config.compile_concurrency.max(1)));
        let shadow_slots = Arc::new(Semaphore::new(
            usize::try_from(config.shadow_concurrency).unwrap_or(0),
        ));
        let compile_shares = CompileShares::new(config.compile_concurrency.max(1));
        let probation = crate::app::rollout::Probation::new(
            config.rollback_failures,
            config.rollback_calls,
            Duration::from_secs(config.rollback_secs),
        );
        let shadow_pace = crate::app::shadow::Pace::new(config.shadow_max_per_sec);
        let bounce_rate = direct_rate(config.bounce_rate_per_sec);
        let clerk_webhook_secret = config
            .clerk
            .clerk_webhook_secret
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .map(crate::clerk::WebhookSecret::parse)
            .transpose()
            .map_err(|err| anyhow::anyhow!("{err} (--clerk-webhook-secret)"))?;
        let clerk_rate = direct_rate(config.clerk.clerk_webhook_rate_per_sec);
        let dns =
            crate::dns::Dns::new(config.dns_server).context("configuring the DNS resolver")?;
        let config_max_tenants = config.metrics_max_tenants;
        Ok(Self(Arc::new(Inner {
            config,
            storage,
            runtime: Arc::new(runtime),
            base_config: arc_swap::ArcSwap::from_pointee(base),
            auth,
            caches,
            invalidation,
            limits,
            recorder,
            probation,
            compile_slots,
            shadow_slots,
            shadow_pace,
            bounce_rate,
            clerk_webhook_secret,
            clerk_rate,
            dns,
            record_slots: Arc::new(Semaphore::new(RECORD_SLOTS)),
            compile_shares,
            secrets: Arc::new(secrets),
            http,
            metrics: crate::metrics::Metrics::new(config_max_tenants),
            record_loads: Flights::default(),
            state_loads: Flights::default(),
            host_lookups: Flights::default(),
        })))
    }

    /// The tenant a custom domain is mapped to, from the cache or the database
    /// (an unknown domain is remembered as such for [`crate::cache::MISS_TTL`]).
    pub async fn tenant_for_domain(&self, domain: &str) -> Result<Option<TenantId>, Error> {
        let key = HostKey::new(domain);
        if let Some(id) = self.caches.host(&key) {
            return Ok(id);
        }
        self.host_lookups
            .run(&key, || async {
                if let Some(id) = self.caches.host(&key) {
                    return Ok(id);
                }
                let epoch = self.invalidation.epoch();
                self.caches.count_host_lookup();
                let id = self
                    .storage
                    .platform()
                    .tenant_by_domain(domain)
                    .await?
                    .map(|record| record.id);
                self.invalidation
                    .loaded_host(epoch, key.clone(), id.clone());
                Ok(id)
            })
            .await
    }

    /// A tenant's row (status, organisation, limits): what a request needs
    /// before its caller is authenticated. Cheap: a small cached row, never the
    /// tenant's settings or key-value data. A tenant that does not exist is
    /// remembered as such for [`crate::cache::MISS_TTL`].
    pub async fn tenant_record(&self, id: &TenantId) -> Result<Option<Arc<TenantRecord>>, Error> {
        if let Some(record) = self.caches.record(id) {
            return Ok(record);
        }
        if let Some(state) = self.caches.tenant(id) {
            return Ok(Some(Arc::new(state.record.clone())));
        }
        self.record_loads
            .run(id, || async {
                if let Some(record) = self.caches.record(id) {
                    return Ok(record);
                }
                let epoch = self.invalidation.epoch();
                self.caches.count_record_load();
                match self.storage.platform().tenant(id).await {
                    Ok(record) => {
                        let record = record.map(Arc::new);
                        self.invalidation
                            .loaded_record(epoch, id.clone(), record.clone());
                        Ok(record)
                    }
                    Err(StorageError::Unavailable(detail)) => {
                        match self.invalidation.last_known_record(id) {
                            Some(record) => {
                                tracing::warn!(tenant = %id, %detail, "database unavailable; routing with the tenant's last known row");
                                Ok(Some(Arc::new(record)))
                            }
                            None => Err(StorageError::Unavailable(detail).into()),
                        }
                    }
                    Err(err) => Err(err.into()),
                }
            })
            .await
    }

    /// A tenant's state, from the cache or the database; when the database
    /// cannot be reached, the last state known (see [`crate::invalidation`]).
    /// Heavy (settings and key-value data): load it only for an authenticated
    /// caller of this tenant, or for the tenant's own jobs. Concurrent loads of
    /// one tenant share one read, and a key-value snapshot of the same data
    /// version still in memory is shared rather than read again.
    pub async fn tenant_state(&self, id: &TenantId) -> Result<Option<Arc<TenantState>>, Error> {
        if let Some(state) = self.caches.tenant(id) {
            self.metrics.cache(id, "state", true);
            return Ok(Some(state));
        }
        self.metrics.cache(id, "state", false);
        self.state_loads
            .run(id, || self.load_tenant_state(id))
            .await
    }

    async fn load_tenant_state(&self, id: &TenantId) -> Result<Option<Arc<TenantState>>, Error> {
        // A caller that joined just after the previous flight ended.
        if let Some(state) = self.caches.tenant(id) {
            return Ok(Some(state));
        }
        let epoch = self.invalidation.epoch();
        self.caches.count_state_load();
        let kv_limit = u32::try_from(self.config.kv_max_keys).unwrap_or(u32::MAX);
        match TenantState::load(&self.storage, id, kv_limit, &self.caches).await {
            Ok(Some(state)) => {
                let state = Arc::new(state);
                self.invalidation.loaded(epoch, state.clone());
                Ok(Some(state))
            }
            Ok(None) => Ok(None),
            Err(StorageError::Unavailable(detail)) => {
                match self.invalidation.last_known(epoch, id) {
                    Some(state) => {
                        tracing::warn!(tenant = %id, %detail, "database unavailable; serving the tenant's last known state");
                        Ok(Some(state))
                    }
                    None => Err(StorageError::Unavailable(detail).into()),
                }
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Forgets what is cached about a tenant, after a write: here at once, on
    /// the other nodes as soon as they hear of it.
    pub fn invalidate(&self, id: &TenantId) {
        self.invalidation.tenant(id);
    }

    /// Forgets every host-to-tenant mapping (after a domain or tenant change),
    /// here and on the other nodes.
    pub fn invalidate_hosts(&self) {
        self.invalidation.hosts();
    }
}

/// How many compiles each tenant has running, so one tenant's uploads use at
/// most its share of the host's compile slots (half of them, at least one).
#[derive(Debug, Clone)]
pub struct CompileShares {
    per_tenant: usize,
    running: Arc<std::sync::Mutex<std::collections::HashMap<TenantId, usize>>>,
}

/// One running compile of a tenant's; dropping it ends its share.
#[derive(Debug)]
pub struct CompileShare {
    tenant: TenantId,
    running: Arc<std::sync::Mutex<std::collections::HashMap<TenantId, usize>>>,
}

impl CompileShares {
    /// Shares of `slots` compile slots.
    pub fn new(slots: usize) -> Self {
        Self {
            per_tenant: slots.div_ceil(2).max(1),
            running: Arc::default(),
        }
    }

    /// A share for `tenant`, or `None` when it already runs its whole share.
    pub fn take(&self, tenant: &TenantId) -> Option<CompileShare> {
        let mut running = self
            .running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = running.entry(tenant.clone()).or_insert(0);
        if *count >= self.per_tenant {
            return None;
        }
        *count += 1;
        Some(CompileShare {
            tenant: tenant.clone(),
            running: self.running.clone(),
        })
    }
}

impl Drop for CompileShare {
    fn drop(&mut self) {
        let mut running = self
            .running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = running.get_mut(&self.tenant) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                running.remove(&self.tenant);
            }
        }
    }
}

/// A limiter of `per_sec` a second (at least 1), with ten seconds' burst.
fn direct_rate(per_sec: u32) -> governor::DefaultDirectRateLimiter {
    let per_sec = std::num::NonZeroU32::new(per_sec.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
    governor::RateLimiter::direct(governor::Quota::per_second(per_sec).allow_burst(
        per_sec.saturating_mul(std::num::NonZeroU32::new(10).unwrap_or(std::num::NonZeroU32::MIN)),
    ))
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
