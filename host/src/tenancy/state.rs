//! A tenant's state as the request path needs it, loaded once and cached: the
//! tenant row, its active plugin, settings, quota and key-value snapshot.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, Weak};

use crate::runtime::{Quota, TenantData, WarmKey};
use crate::storage::{SettingsRecord, Storage, StorageError, TenantRecord};

use super::TenantId;

/// Key-value entries a plugin can read, at most (larger stores are cut).
pub const KV_SNAPSHOT_LIMIT: u32 = 10_000;

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
    /// The cached effective configuration of exactly this state (the base is
    /// fixed for the process, and any change to the tenant loads a new state),
    /// so a request finds it without building a cache key or a cache lookup.
    /// Weak: the effective-config cache owns it and bounds how many are held;
    /// once the cache has let it go, requests look it up (or compute it) again.
    effective: OnceLock<Weak<crate::resolve::EffectiveConfig>>,
}

impl TenantState {
    /// Loads a tenant's state; `None` when the tenant does not exist.
    pub async fn load(storage: &Storage, id: &TenantId) -> Result<Option<Self>, StorageError> {
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
        let kv = db.kv_all(KV_SNAPSHOT_LIMIT).await?;
        // Everything besides the plugin and settings that a plugin's output can
        // depend on: its quota and the key-value data it reads.
        let data_version = {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            quota_json.hash(&mut hasher);
            kv.hash(&mut hasher);
            hasher.finish()
        };
        let data = Arc::new(SnapshotData {
            settings: settings.json.clone(),
            kv,
        });
        let warm_key = {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            settings.version.hash(&mut hasher);
            data_version.hash(&mut hasher);
            WarmKey::new(record.id.as_str(), hasher.finish())
        };
        Ok(Some(Self {
            record,
            active_plugin,
            settings,
            quota,
            data_version,
            data,
            warm_key,
            effective: OnceLock::new(),
        }))
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
    kv: BTreeMap<String, String>,
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
        self.kv.get(key).cloned()
    }

    fn kv_keys(&self, prefix: &str, limit: usize) -> Vec<String> {
        self.kv
            .range(prefix.to_owned()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .take(limit)
            .map(|(key, _)| key.clone())
            .collect()
    }
}
