//! A tenant's state as the request path needs it, loaded once and cached: the
//! tenant row, its active plugin, settings, quota and key-value snapshot. The
//! snapshot is the heavy part (up to the tenant's key-value cap): it is one
//! [`KvSnapshot`] per data version, shared through an `Arc` by every state and
//! plugin call of that version, never copied per request; loads ask
//! [`KvSnapshots`] for one already in memory before reading the database.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, Weak};

use crate::runtime::{Quota, TenantData, WarmKey};
use crate::storage::{SettingsRecord, Storage, StorageError, TenantRecord};

use super::TenantId;

/// What one key-value entry costs in memory besides its bytes (two `String`s
/// and a share of a B-tree node), for weighing states.
const KV_ENTRY_OVERHEAD: usize = 96;

/// A tenant's key-value data at one version, immutable.
#[derive(Debug, Default)]
pub struct KvSnapshot {
    entries: BTreeMap<String, String>,
    bytes: usize,
}

impl KvSnapshot {
    /// A snapshot of these entries.
    pub fn new(entries: BTreeMap<String, String>) -> Self {
        let bytes = entries.iter().map(|(k, v)| k.len() + v.len()).sum();
        Self { entries, bytes }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Approximate bytes of memory it takes.
    pub fn weight(&self) -> usize {
        self.bytes + self.entries.len() * KV_ENTRY_OVERHEAD
    }
}

/// Key-value snapshots already in memory, for loads to share.
pub trait KvSnapshots {
    /// The snapshot of `tenant`'s data at `version`, if one is still held.
    fn shared(&self, tenant: &TenantId, version: i64) -> Option<Arc<KvSnapshot>>;
    /// A snapshot was just read from the database; `version` is `None` when it
    /// is not exactly any version's data (it changed during the read).
    fn read(&self, tenant: &TenantId, version: Option<i64>, snapshot: &Arc<KvSnapshot>);
}

/// Everything about a tenant that resolution depends on.
#[derive(Debug, Clone)]
pub struct TenantState {
    /// The tenant row.
    pub record: TenantRecord,
    /// The active plugin's sha256.
    pub active_plugin: Option<String>,
    /// The plugin settings and their version.
    pub settings: SettingsRecord,
    /// The plugin's quota (admin-set, else the default).
    pub quota: Quota,
    /// A version of the quota and the key-value data, for cache keys.
    pub data_version: u64,
    data: Arc<SnapshotData>,
    warm_key: WarmKey,
    weight: usize,
    /// The cached effective configuration of exactly this state (the base is
    /// fixed for the process, and any change to the tenant loads a new state),
    /// so a request finds it without building a cache key or a cache lookup.
    /// Weak: the effective-config cache owns it and bounds how many are held;
    /// once the cache has let it go, requests look it up (or compute it) again.
    effective: OnceLock<Weak<crate::resolve::EffectiveConfig>>,
}

impl TenantState {
    /// Loads a tenant's state; `None` when the tenant does not exist. At most
    /// `kv_limit` key-value entries are read, and only when `snapshots` holds
    /// none of the current version.
    pub async fn load(
        storage: &Storage,
        id: &TenantId,
        kv_limit: u32,
        snapshots: &(dyn KvSnapshots + Sync),
    ) -> Result<Option<Self>, StorageError> {
        let Some(record) = storage.platform().tenant(id).await? else {
            return Ok(None);
        };
        let db = storage.tenant(id);
        let active_plugin = db.active_plugin().await?;
        let settings = db.settings().await?;
        let quota_json = db.quota().await?;
        let quota = match &quota_json {
            Some(json) => serde_json::from_str(json).unwrap_or_else(|err| {
                tracing::error!(tenant = %id, error = %err, "stored quota is unreadable; using the default");
                Quota::default()
            }),
            None => Quota::default(),
        };
        let usage = db.kv_usage().await?;
        let (kv, kv_version) = match snapshots.shared(id, usage.version) {
            Some(kv) => (kv, usage.version),
            None => {
                let read = db.kv_snapshot(kv_limit).await?;
                let kv = Arc::new(KvSnapshot::new(read.entries));
                snapshots.read(id, read.version, &kv);
                // Data that changed while it was read is nobody's version: give
                // it a fresh one, so no cache entry made from it is ever reused.
                (kv, read.version.unwrap_or_else(rand::random))
            }
        };
        // Everything besides the plugin and settings that a plugin's output can
        // depend on: its quota and the key-value data it reads.
        let data_version = crate::digest::Digest::new()
            .opt_str(quota_json.as_deref())
            .i64(kv_version)
            .to_u64();
        let weight = std::mem::size_of::<Self>()
            + std::mem::size_of::<SnapshotData>()
            + record.name.len()
            + 2 * settings.json.len()
            + kv.weight();
        let data = Arc::new(SnapshotData {
            settings: settings.json.clone(),
            kv,
        });
        let warm_key = WarmKey::new(
            record.id.as_str(),
            crate::digest::Digest::new()
                .i64(settings.version)
                .u64(data_version)
                .to_u64(),
        );
        Ok(Some(Self {
            record,
            active_plugin,
            settings,
            quota,
            data_version,
            data,
            warm_key,
            weight,
            effective: OnceLock::new(),
        }))
    }

    /// Approximate bytes of memory the state takes (its key-value snapshot
    /// included, though other states of the same data version share that).
    pub fn weight(&self) -> usize {
        self.weight
    }

    /// The key-value snapshot this state reads.
    pub fn kv(&self) -> &Arc<KvSnapshot> {
        &self.data.kv
    }

    /// What the tenant's plugin may read.
    pub fn data(&self) -> Arc<dyn TenantData> {
        self.data.clone()
    }

    /// The key of this tenant's warm plugin instances at its current settings,
    /// quota and data: an instance made with older data is never reused.
    pub fn warm_key(&self) -> &WarmKey {
        &self.warm_key
    }

    /// This state's cached effective configuration, while the cache holds it.
    pub fn effective(&self) -> Option<Arc<crate::resolve::EffectiveConfig>> {
        self.effective.get().and_then(Weak::upgrade)
    }

    /// Remembers `config`, which the effective-config cache now holds, as this
    /// state's (the first stays: every one computed for the same state is equal).
    pub fn keep_effective(&self, config: &Arc<crate::resolve::EffectiveConfig>) {
        let _ = self.effective.set(Arc::downgrade(config));
    }
}

/// The tenant's data as a plugin sees it during a call: an immutable snapshot,
/// so a call never waits on the database.
#[derive(Debug)]
struct SnapshotData {
    settings: String,
    kv: Arc<KvSnapshot>,
}

impl TenantData for SnapshotData {
    fn settings_json(&self) -> &str {
        if self.settings.is_empty() {
            "{}"
        } else {
            &self.settings
        }
    }

    fn kv_get(&self, key: &str) -> Option<String> {
        self.kv.entries.get(key).cloned()
    }

    fn kv_keys(&self, prefix: &str, limit: usize) -> Vec<String> {
        self.kv
            .entries
            .range(prefix.to_owned()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .take(limit)
            .map(|(key, _)| key.clone())
            .collect()
    }
}
