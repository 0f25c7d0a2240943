//! In-process caches (moka). Every key that holds tenant data is a type that
//! cannot be built without a `TenantId`. Effective configurations are keyed by
//! everything they depend on (base version, plugin hash, settings version, quota
//! version), so a change makes a new key; the tenant's state entry is what
//! writes invalidate, here and — through the invalidation bus — on other nodes.
//!
//! What each cache bounds:
//! - **hosts** (custom domain → tenant) and **records** (tenant rows, for routing,
//!   status and limits before the caller is authenticated): small entries; a
//!   miss (no such domain or tenant) is cached too but only for [`MISS_TTL`], and
//!   dropped by any host invalidation (a tenant or domain created), so a scan of
//!   random names does not reach the database each time.
//! - **tenants** (full states, key-value snapshot included): weighed in
//!   approximate bytes, with a total capacity.
//! - **members** (a tenant's user → the time before which their tokens are
//!   revoked, or none): small entries, one per user seen, misses included —
//!   revocations are rare and every one is an explicit invalidation on every
//!   node, so a miss lives as long as a found entry.
//! - **kv snapshots**: weak references by data version, so a reload of a tenant
//!   whose key-value data did not change shares the snapshot still in memory
//!   instead of reading a second copy; it keeps nothing alive by itself.
//!
//! [`LoadCounts`] counts what reached the database, for tests and operators.

mod flight;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::sync::Cache;

pub use flight::Flights;

use crate::storage::TenantRecord;
use crate::tenancy::{KvSnapshot, KvSnapshots, TenantId, TenantState};

/// How long an unknown host or tenant is remembered as unknown.
pub const MISS_TTL: Duration = Duration::from_secs(5);
/// How long a known host's tenant is remembered.
const HOST_TTL: Duration = Duration::from_secs(30);
/// How long a tenant row or state is kept without an invalidation.
const TENANT_TTL: Duration = Duration::from_secs(300);
/// Default capacity of the tenant-state cache, in bytes.
pub const DEFAULT_TENANT_CACHE_BYTES: u64 = 256 << 20;

/// The key of one tenant's effective configuration.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EffectiveKey {
    tenant: TenantId,
    base_version: Arc<str>,
    /// The tenant's live releases, their quotas and its key-value data
    /// (`TenantState::data_version`).
    data_version: u64,
}

impl EffectiveKey {
    /// The key for `tenant` at these versions.
    pub fn new(tenant: &TenantId, base_version: &str, data_version: u64) -> Self {
        Self {
            tenant: tenant.clone(),
            base_version: Arc::from(base_version),
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
        crate::digest::Digest::new()
            .str(self.tenant.as_str())
            .str(&self.base_version)
            .u64(self.data_version)
            .to_short_hex()
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

/// The key of one member's revocation: a user of a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemberKey {
    tenant: TenantId,
    user: Arc<str>,
}

impl MemberKey {
    /// The key of `user` (a Clerk user id) in `tenant`.
    pub fn new(tenant: &TenantId, user: &str) -> Self {
        Self {
            tenant: tenant.clone(),
            user: Arc::from(user),
        }
    }

    /// The tenant.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The user.
    pub fn user(&self) -> &str {
        &self.user
    }
}

/// Found entries live `found`, misses (`None`) [`MISS_TTL`].
struct MissesExpireSooner {
    found: Duration,
}

impl<K, V> Expiry<K, Option<V>> for MissesExpireSooner {
    fn expire_after_create(&self, _: &K, value: &Option<V>, _: Instant) -> Option<Duration> {
        Some(if value.is_some() {
            self.found
        } else {
            MISS_TTL
        })
    }

    fn expire_after_update(
        &self,
        _: &K,
        value: &Option<V>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(if value.is_some() {
            self.found
        } else {
            MISS_TTL
        })
    }
}

/// How many loads reached the database since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadCounts {
    /// Custom-domain lookups.
    pub host_lookups: u64,
    /// Tenant-row lookups (the cheap part, before authentication).
    pub record_loads: u64,
    /// Full tenant-state loads (after authentication, or for jobs).
    pub state_loads: u64,
    /// Key-value snapshots read (the heavy part of a state load; a load that
    /// shares a snapshot still in memory reads none).
    pub kv_reads: u64,
}

#[derive(Debug, Default)]
struct Counters {
    host_lookups: AtomicU64,
    record_loads: AtomicU64,
    state_loads: AtomicU64,
    kv_reads: AtomicU64,
}

/// The caches of one process.
#[derive(Clone)]
pub struct Caches {
    hosts: Cache<HostKey, Option<TenantId>>,
    records: Cache<TenantId, Option<Arc<TenantRecord>>>,
    members: Cache<MemberKey, Option<i64>>,
    tenants: Cache<TenantId, Arc<TenantState>>,
    tenant_capacity: u64,
    kv: Cache<TenantId, (i64, Weak<KvSnapshot>)>,
    effective: Cache<EffectiveKey, Arc<crate::resolve::EffectiveConfig>>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches")
            .field("hosts", &self.hosts.entry_count())
            .field("records", &self.records.entry_count())
            .field("tenants", &self.tenants.entry_count())
            .field("tenant_bytes", &self.tenants.weighted_size())
            .field("effective", &self.effective.entry_count())
            .finish()
    }
}

impl Default for Caches {
    fn default() -> Self {
        Self::new()
    }
}

/// A state's weight for the tenant cache (moka weighs in `u32`).
pub fn state_weight(state: &TenantState) -> u32 {
    u32::try_from(state.weight()).unwrap_or(u32::MAX)
}

impl Caches {
    /// Caches with production sizes and lifetimes.
    pub fn new() -> Self {
        Self::with_tenant_capacity(DEFAULT_TENANT_CACHE_BYTES)
    }

    /// Caches whose tenant states take at most about `bytes` together.
    pub fn with_tenant_capacity(bytes: u64) -> Self {
        Self {
            hosts: Cache::builder()
                .max_capacity(100_000)
                .expire_after(MissesExpireSooner { found: HOST_TTL })
                .build(),
            records: Cache::builder()
                .max_capacity(100_000)
                .expire_after(MissesExpireSooner { found: TENANT_TTL })
                .build(),
            members: Cache::builder()
                .max_capacity(100_000)
                .time_to_live(TENANT_TTL)
                .build(),
            tenants: Cache::builder()
                .weigher(|_, state: &Arc<TenantState>| state_weight(state))
                .max_capacity(bytes)
                .time_to_live(TENANT_TTL)
                .build(),
            tenant_capacity: bytes,
            kv: Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(3_600))
                .build(),
            effective: Cache::builder()
                .max_capacity(20_000)
                .time_to_idle(Duration::from_secs(3_600))
                // `invalidate_tenant` drops a tenant's entries by predicate.
                .support_invalidation_closures()
                .build(),
            counters: Arc::default(),
        }
    }

    /// The tenant-state cache's capacity, in bytes.
    pub fn tenant_capacity(&self) -> u64 {
        self.tenant_capacity
    }

    /// How many loads reached the database since start.
    pub fn loads(&self) -> LoadCounts {
        let c = &self.counters;
        LoadCounts {
            host_lookups: c.host_lookups.load(Ordering::Relaxed),
            record_loads: c.record_loads.load(Ordering::Relaxed),
            state_loads: c.state_loads.load(Ordering::Relaxed),
            kv_reads: c.kv_reads.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn count_host_lookup(&self) {
        self.counters.host_lookups.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_record_load(&self) {
        self.counters.record_loads.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_state_load(&self) {
        self.counters.state_loads.fetch_add(1, Ordering::Relaxed);
    }

    /// The tenant a host maps to, if cached.
    pub fn host(&self, key: &HostKey) -> Option<Option<TenantId>> {
        self.hosts.get(key)
    }

    /// Remembers a host's tenant (or, briefly, that it has none).
    pub fn put_host(&self, key: HostKey, tenant: Option<TenantId>) {
        self.hosts.insert(key, tenant);
    }

    /// A tenant's cached row (`Some(None)`: cached as not existing).
    pub fn record(&self, id: &TenantId) -> Option<Option<Arc<TenantRecord>>> {
        self.records.get(id)
    }

    /// Remembers a tenant's row (or, briefly, that it does not exist).
    pub fn put_record(&self, id: TenantId, record: Option<Arc<TenantRecord>>) {
        self.records.insert(id, record);
    }

    /// A member's cached revocation time (`Some(None)`: cached as none).
    pub fn member(&self, key: &MemberKey) -> Option<Option<i64>> {
        self.members.get(key)
    }

    /// Remembers a member's revocation time (or that there is none).
    pub fn put_member(&self, key: MemberKey, revoked_before: Option<i64>) {
        self.members.insert(key, revoked_before);
    }

    /// Forgets a member's revocation time (after it changed).
    pub fn invalidate_member(&self, key: &MemberKey) {
        self.members.invalidate(key);
    }

    /// A tenant's cached state.
    pub fn tenant(&self, id: &TenantId) -> Option<Arc<TenantState>> {
        self.tenants.get(id)
    }

    /// Caches a tenant's state (and its row, which it carries).
    pub fn put_tenant(&self, state: Arc<TenantState>) {
        self.records.insert(
            state.record.id.clone(),
            Some(Arc::new(state.record.clone())),
        );
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
    /// Key-value snapshots stay: they are keyed by a version the write changed.
    pub fn invalidate_tenant(&self, id: &TenantId) {
        self.tenants.invalidate(id);
        self.records.invalidate(id);
        let id = id.clone();
        // Effective entries of older versions would never be hit again, but drop
        // them now rather than letting them idle out.
        let _ = self
            .effective
            .invalidate_entries_if(move |key, _| key.tenant() == &id);
    }

    /// Forgets every host mapping and tenant row (after a domain or tenant
    /// change: a host or tenant cached as unknown may exist now).
    pub fn invalidate_hosts(&self) {
        self.hosts.invalidate_all();
        self.records.invalidate_all();
    }

    /// Forgets everything (when invalidations may have been missed).
    pub fn invalidate_all(&self) {
        self.hosts.invalidate_all();
        self.records.invalidate_all();
        self.members.invalidate_all();
        self.tenants.invalidate_all();
        self.effective.invalidate_all();
    }

    /// Runs pending evictions now (tests and benchmarks read sizes after it).
    pub fn run_pending_tasks(&self) {
        self.tenants.run_pending_tasks();
    }

    /// Bytes the cached tenant states weigh together.
    pub fn tenant_bytes(&self) -> u64 {
        self.tenants.weighted_size()
    }
}

impl KvSnapshots for Caches {
    fn shared(&self, tenant: &TenantId, version: i64) -> Option<Arc<KvSnapshot>> {
        let (held, snapshot) = self.kv.get(tenant)?;
        if held == version {
            snapshot.upgrade()
        } else {
            None
        }
    }

    fn read(&self, tenant: &TenantId, version: Option<i64>, snapshot: &Arc<KvSnapshot>) {
        self.counters.kv_reads.fetch_add(1, Ordering::Relaxed);
        if let Some(version) = version {
            self.kv
                .insert(tenant.clone(), (version, Arc::downgrade(snapshot)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_hosts_are_remembered_briefly_and_forgotten_on_invalidation() {
        let caches = Caches::new();
        let key = HostKey::new("shop.nobody.example");
        caches.put_host(key.clone(), None);
        assert_eq!(caches.host(&key), Some(None));
        let id = TenantId::new("ghost").unwrap();
        caches.put_record(id.clone(), None);
        assert_eq!(caches.record(&id), Some(None));
        caches.invalidate_hosts();
        assert_eq!(caches.host(&key), None);
        assert_eq!(caches.record(&id), None);
    }

    #[test]
    fn kv_snapshots_are_shared_by_version_while_someone_holds_them() {
        let caches = Caches::new();
        let id = TenantId::new("acme").unwrap();
        let snapshot = Arc::new(KvSnapshot::default());
        caches.read(&id, Some(7), &snapshot);
        let shared = caches.shared(&id, 7).expect("held version is shared");
        assert!(Arc::ptr_eq(&shared, &snapshot));
        assert!(caches.shared(&id, 8).is_none(), "another version is not");
        drop((shared, snapshot));
        assert!(caches.shared(&id, 7).is_none(), "nothing is kept alive");
        // A read of data that changed meanwhile is counted, never shared.
        let torn = Arc::new(KvSnapshot::default());
        caches.read(&id, None, &torn);
        assert_eq!(caches.loads().kv_reads, 2);
    }
}
