//! In-process caches (moka). Every key that holds tenant data is a type that
//! cannot be built without a `TenantId`. Effective configurations are keyed by
//! everything they depend on (base version, plugin hash, settings version, quota
//! version), so a change makes a new key; the tenant's state entry is what
//! writes invalidate, here and — through the invalidation bus — on other nodes.

use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;

use crate::tenancy::{TenantId, TenantState};

/// The key of one tenant's effective configuration.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EffectiveKey {
    tenant: TenantId,
    base_version: Arc<str>,
    plugin: Option<Arc<str>>,
    settings_version: i64,
    data_version: u64,
}

impl EffectiveKey {
    /// The key for `tenant` at these versions.
    pub fn new(
        tenant: &TenantId,
        base_version: &str,
        plugin: Option<&str>,
        settings_version: i64,
        data_version: u64,
    ) -> Self {
        Self {
            tenant: tenant.clone(),
            base_version: Arc::from(base_version),
            plugin: plugin.map(Arc::from),
            settings_version,
            data_version,
        }
    }

    /// The tenant the key belongs to.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// A short content version of everything the configuration depends on, for
    /// ETags and the API's `version` field.
    pub fn version(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.hash(&mut hasher);
        format!("{:016x}", hasher.finish())
    }
}

/// The key of a host name's tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostKey(String);

impl HostKey {
    /// The normalised host (lowercase, no port).
    pub fn new(host: &str) -> Self {
        Self(host.to_ascii_lowercase())
    }
}

/// The caches of one process.
#[derive(Clone)]
pub struct Caches {
    hosts: Cache<HostKey, Option<TenantId>>,
    tenants: Cache<TenantId, Arc<TenantState>>,
    effective: Cache<EffectiveKey, Arc<crate::resolve::EffectiveConfig>>,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches")
            .field("hosts", &self.hosts.entry_count())
            .field("tenants", &self.tenants.entry_count())
            .field("effective", &self.effective.entry_count())
            .finish()
    }
}

impl Default for Caches {
    fn default() -> Self {
        Self::new()
    }
}

impl Caches {
    /// Caches with production sizes and lifetimes.
    pub fn new() -> Self {
        Self {
            // Unknown hosts are cached too (as None) so a scan of random names
            // does not reach the database each time; briefly, so a new tenant
            // becomes reachable soon.
            hosts: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(30))
                .build(),
            tenants: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(Duration::from_secs(300))
                .build(),
            effective: Cache::builder()
                .max_capacity(20_000)
                .time_to_idle(Duration::from_secs(3_600))
                // `invalidate_tenant` drops a tenant's entries by predicate.
                .support_invalidation_closures()
                .build(),
        }
    }

    /// The tenant a host maps to, if cached.
    pub fn host(&self, key: &HostKey) -> Option<Option<TenantId>> {
        self.hosts.get(key)
    }

    /// Remembers a host's tenant (or that it has none).
    pub fn put_host(&self, key: HostKey, tenant: Option<TenantId>) {
        self.hosts.insert(key, tenant);
    }

    /// A tenant's cached state.
    pub fn tenant(&self, id: &TenantId) -> Option<Arc<TenantState>> {
        self.tenants.get(id)
    }

    /// Caches a tenant's state.
    pub fn put_tenant(&self, state: Arc<TenantState>) {
        self.tenants.insert(state.record.id.clone(), state);
    }

    /// A cached effective configuration.
    pub fn effective(&self, key: &EffectiveKey) -> Option<Arc<crate::resolve::EffectiveConfig>> {
        self.effective.get(key)
    }

    /// Caches an effective configuration.
    pub fn put_effective(&self, key: EffectiveKey, value: Arc<crate::resolve::EffectiveConfig>) {
        self.effective.insert(key, value);
    }

    /// Forgets everything derived from a tenant's state (after a write to it).
    pub fn invalidate_tenant(&self, id: &TenantId) {
        self.tenants.invalidate(id);
        let id = id.clone();
        // Effective entries of older versions would never be hit again, but drop
        // them now rather than letting them idle out.
        let _ = self
            .effective
            .invalidate_entries_if(move |key, _| key.tenant() == &id);
    }

    /// Forgets every host mapping (after a domain or tenant change).
    pub fn invalidate_hosts(&self) {
        self.hosts.invalidate_all();
    }

    /// Forgets everything (when invalidations may have been missed).
    pub fn invalidate_all(&self) {
        self.hosts.invalidate_all();
        self.tenants.invalidate_all();
        self.effective.invalidate_all();
    }
}
