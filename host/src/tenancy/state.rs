//! A tenant's state as the request path needs it, loaded once and cached: the
//! tenant row, its chain (each installation's live release: plugin, settings,
//! quota within the platform's ceiling) and key-value snapshot. The
//! snapshot is the heavy part (up to the tenant's key-value cap): it is one
//! [`KvSnapshot`] per data version, shared through an `Arc` by every state and
//! plugin call of that version, never copied per request; loads ask
//! [`KvSnapshots`] for one already in memory before reading the database.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, Weak};

use crate::policy::Policy;
use crate::runtime::{Quota, TenantData, WarmKey};
use crate::storage::{Storage, StorageError, TenantRecord};

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

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<String> {
        self.entries.get(key).cloned()
    }

    /// Up to `limit` keys starting with `prefix`, in order.
    pub fn keys(&self, prefix: &str, limit: usize) -> Vec<String> {
        self.entries
            .range(prefix.to_owned()..)
            .take_while(|(key, _)| key.starts_with(prefix))
            .take(limit)
            .map(|(key, _)| key.clone())
            .collect()
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
    /// What runs, in chain order: each installation with a live release.
    pub chain: Vec<Step>,
    /// The platform's quota for this tenant's installations that have none of
    /// their own (admin-set, else the host's default).
    pub default_quota: Quota,
    /// The platform's output policies for this tenant (the one for every
    /// tenant, then its own): each step's result must keep them.
    pub policies: Arc<[Policy]>,
    /// A version of everything a plugin's output may depend on besides the
    /// base: the live releases, their quotas and the key-value data. For cache
    /// keys.
    pub data_version: u64,
    /// Draft releases in shadow: live calls of their installation also run
    /// them, off the request path, at their sample rate.
    pub shadows: Vec<Shadow>,
    /// The tenant's own rollout settings (shadow gate, rollback thresholds,
    /// recording), validated when set.
    pub rollout: crate::rollout_settings::RolloutSettings,
    kv: Arc<KvSnapshot>,
    weight: usize,
    /// The cached effective configuration of exactly this state (the base is
    /// fixed for the process, and any change to the tenant loads a new state),
    /// so a request finds it without building a cache key or a cache lookup.
    /// Weak: the effective-config cache owns it and bounds how many are held;
    /// once the cache has let it go, requests look it up (or compute it) again.
    effective: OnceLock<Weak<crate::resolve::EffectiveConfig>>,
}

/// One live installation of a tenant's chain: its release's plugin, settings
/// and quota.
#[derive(Debug, Clone)]
pub struct Step {
    /// The installation's name.
    pub installation: String,
    /// The live release.
    pub release: i64,
    /// The release's plugin.
    pub sha256: String,
    /// When the release was made live (unix milliseconds).
    pub live_since: i64,
    /// The release's quota within the platform's current ceiling for the
    /// installation (a rollback never escapes a lowered quota).
    pub quota: Quota,
    data: Arc<SnapshotData>,
    warm_key: WarmKey,
}

impl Step {
    /// A step running `release` under `quota` over the key-value data `kv`
    /// (for a chain that is not the live one: a draft's diff). Its warm key
    /// is one no live step shares.
    pub fn draft(
        owner: &TenantId,
        release: crate::storage::ReleaseRecord,
        quota: Quota,
        kv: Arc<KvSnapshot>,
    ) -> Self {
        Self {
            warm_key: WarmKey::new(owner.as_str(), rand::random()),
            data: Arc::new(SnapshotData {
                settings: release.settings,
                kv,
            }),
            installation: release.installation,
            release: release.id,
            sha256: release.sha256,
            live_since: 0,
            quota,
        }
    }

    /// What this step's plugin may read: its release's settings and the
    /// tenant's key-value data.
    pub fn data(&self) -> Arc<dyn TenantData> {
        self.data.clone()
    }

    /// The key of this step's warm instances: never shared with another
    /// release, quota or data version.
    pub fn warm_key(&self) -> &WarmKey {
        &self.warm_key
    }

    /// The release's settings document.
    pub fn settings_json(&self) -> &str {
        self.data.settings_json()
    }
}

/// A draft release in shadow for one installation.
#[derive(Debug, Clone)]
pub struct Shadow {
    /// The release, as a step that would take its installation's place.
    pub step: Step,
    /// Where it goes in the chain: the index of its installation's live step
    /// (replaced), or where the installation would sit (inserted).
    pub index: usize,
    /// Whether it replaces a live step (else it is inserted at `index`).
    pub replaces: bool,
    /// The share of live calls that also run it, 0 to 1.
    pub rate: f64,
}

/// The ceiling of an installation: its own quota, else the tenant's, else the
/// host's default. An unreadable stored quota is logged and replaced by the
/// next one down.
fn parse_quota(tenant: &TenantId, what: &str, json: Option<&str>, fallback: Quota) -> Quota {
    match json {
        Some(json) => serde_json::from_str(json).unwrap_or_else(|err| {
            tracing::error!(%tenant, what, error = %err, "stored quota is unreadable; using the next one down");
            fallback
        }),
        None => fallback,
    }
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
        let live = db.live_releases().await?;
        let default_quota =
            parse_quota(id, "tenant", db.quota().await?.as_deref(), Quota::default());
        let shadow_records = db.shadows().await?;
        let ceilings: BTreeMap<String, String> = if live.is_empty() && shadow_records.is_empty() {
            BTreeMap::new()
        } else {
            db.installation_quotas().await?.into_iter().collect()
        };
        let policy_texts = db.output_policies().await?;
        let policies: Arc<[Policy]> = policy_texts
            .iter()
            .filter_map(|json| match serde_json::from_str::<Policy>(json) {
                Ok(policy) => Some(policy),
                Err(err) => {
                    tracing::error!(tenant = %id, error = %err, "a stored output policy is unreadable; it is not applied");
                    None
                }
            })
            .collect();
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
        let mut version = crate::digest::Digest::new();
        version.i64(kv_version);
        for json in &policy_texts {
            version.str(json);
        }
        let mut weight = std::mem::size_of::<Self>() + record.name.len() + kv.weight();
        let mut chain = Vec::with_capacity(live.len());
        for live in live {
            let live_since = live.live_since;
            let release = live.release;
            let ceiling = parse_quota(
                id,
                &release.installation,
                ceilings.get(&release.installation).map(String::as_str),
                default_quota,
            );
            let quota = parse_quota(id, "release", Some(&release.quota), ceiling).within(&ceiling);
            let quota_json = serde_json::to_string(&quota).unwrap_or_default();
            version
                .str(&release.installation)
                .i64(release.id)
                .str(&quota_json);
            let step_version = crate::digest::Digest::new()
                .i64(release.id)
                .str(&quota_json)
                .i64(kv_version)
                .to_u64();
            weight += std::mem::size_of::<Step>()
                + std::mem::size_of::<SnapshotData>()
                + release.installation.len()
                + release.sha256.len()
                + release.settings.len();
            chain.push(Step {
                warm_key: WarmKey::new(record.id.as_str(), step_version),
                data: Arc::new(SnapshotData {
                    settings: release.settings,
                    kv: kv.clone(),
                }),
                installation: release.installation,
                release: release.id,
                sha256: release.sha256,
                live_since,
                quota,
            });
        }
        let mut shadows = Vec::with_capacity(shadow_records.len());
        let order = if shadow_records.is_empty() {
            Vec::new()
        } else {
            db.installations().await?
        };
        for shadow in shadow_records {
            let Some(release) = db.release(&shadow.installation, shadow.release_id).await? else {
                continue;
            };
            let ceiling = parse_quota(
                id,
                &release.installation,
                ceilings.get(&release.installation).map(String::as_str),
                default_quota,
            );
            let quota = parse_quota(id, "release", Some(&release.quota), ceiling).within(&ceiling);
            weight += std::mem::size_of::<Shadow>() + release.settings.len();
            // Live steps of installations before this one in the tenant's order.
            let before: Vec<&str> = order
                .iter()
                .take_while(|i| i.name != shadow.installation)
                .map(|i| i.name.as_str())
                .collect();
            let index = chain
                .iter()
                .filter(|s: &&Step| before.contains(&s.installation.as_str()))
                .count();
            let replaces = chain
                .get(index)
                .is_some_and(|s| s.installation == shadow.installation);
            shadows.push(Shadow {
                step: Step::draft(id, release, quota, kv.clone()),
                index,
                replaces,
                rate: shadow.rate,
            });
        }
        let rollout = match db.rollout_settings().await? {
            Some(json) => serde_json::from_str(&json).unwrap_or_else(|err| {
                tracing::error!(tenant = %id, error = %err, "stored rollout settings are unreadable; the platform's apply");
                Default::default()
            }),
            None => Default::default(),
        };
        Ok(Some(Self {
            record,
            chain,
            shadows,
            rollout,
            default_quota,
            policies,
            data_version: version.to_u64(),
            kv,
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
        &self.kv
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
        self.kv.get(key)
    }

    fn kv_keys(&self, prefix: &str, limit: usize) -> Vec<String> {
        self.kv.keys(prefix, limit)
    }
}
