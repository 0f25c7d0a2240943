//! The state of one store (one call): the tenant's data the imports read, the
//! memory limiter, the host-call byte budget and the captured log. The host
//! functions here take no tenant id: the store was made for one tenant's data.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::capture::LogSink;
use super::outcome::LogSource;
use super::quota::{MAX_INSTANCES, MAX_MEMORIES, MAX_TABLES, Quota};

/// Read access to one tenant's data, as a plugin's imports see it. The runtime
/// is handed one per call; it never sees a tenant id.
pub trait TenantData: Send + Sync {
    /// The plugin's settings as JSON text (`{}` when none are set).
    fn settings_json(&self) -> &str;
    /// The value under `key`.
    fn kv_get(&self, key: &str) -> Option<String>;
    /// Keys starting with `prefix`, sorted, at most `limit`.
    fn kv_keys(&self, prefix: &str, limit: usize) -> Vec<String>;
}

/// Tenant data held in memory: settings plus a key-value map.
#[derive(Debug, Clone, Default)]
pub struct StaticTenantData {
    /// Settings JSON.
    pub settings: String,
    /// Key-value data.
    pub kv: BTreeMap<String, String>,
}

impl StaticTenantData {
    /// Data with these settings and no key-value entries.
    pub fn with_settings(settings: impl Into<String>) -> Self {
        Self {
            settings: settings.into(),
            kv: BTreeMap::new(),
        }
    }
}

impl TenantData for StaticTenantData {
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

/// Memory, table and instance limits of one store, with the figures the run
/// report needs. Memory is capped across all of the call's memories together.
pub(crate) struct Limiter {
    memory_cap: usize,
    table_cap: usize,
    instances: usize,
    memory_total: usize,
    table_total: usize,
    pub(crate) peak_memory: usize,
    /// Set when a limit refused a request: the trap that follows is "out of memory".
    pub(crate) refused: Option<String>,
}

impl Limiter {
    fn new(quota: &Quota) -> Self {
        Self {
            memory_cap: usize::try_from(quota.memory_bytes).unwrap_or(usize::MAX),
            table_cap: usize::try_from(quota.table_elements).unwrap_or(usize::MAX),
            // A quota stored before the cap existed may ask for more: the
            // pool's slot is the real bound, so the limiter never exceeds it.
            instances: usize::try_from(quota.instances.min(MAX_INSTANCES)).unwrap_or(1),
            memory_total: 0,
            table_total: 0,
            peak_memory: 0,
            refused: None,
        }
    }
}

/// Raised (as a trap) when a limit refuses; classification keys off `refused`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct LimitExceeded(pub(crate) String);

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.memory_total - current.min(self.memory_total) + desired;
        if total > self.memory_cap {
            let detail = format!(
                "the plugin asked for {total} bytes of linear memory; its quota allows {}",
                self.memory_cap
            );
            self.refused = Some(detail.clone());
            // Trap instead of letting `memory.grow` return -1: a guest that
            // ignores the failure would otherwise spin on it until its fuel ends.
            return Err(LimitExceeded(detail).into());
        }
        self.memory_total = total;
        self.peak_memory = self.peak_memory.max(total);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.table_total - current.min(self.table_total) + desired;
        if total > self.table_cap {
            let detail = format!(
                "the plugin asked for {total} table elements; its quota allows {}",
                self.table_cap
            );
            self.refused = Some(detail.clone());
            return Err(LimitExceeded(detail).into());
        }
        self.table_total = total;
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.instances
    }

    fn tables(&self) -> usize {
        MAX_TABLES as usize
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES as usize
    }
}

/// Raised when the plugin moves more bytes through host calls than its quota.
#[derive(Debug, thiserror::Error)]
#[error("the plugin moved more than {0} bytes through host calls (quota host_call_bytes)")]
pub(crate) struct HostCallCapExceeded(pub(crate) u64);

/// Everything a store carries.
pub(crate) struct HostState {
    pub(crate) limiter: Limiter,
    pub(crate) log: LogSink,
    data: Arc<dyn TenantData>,
    host_bytes_left: u64,
    host_bytes_cap: u64,
    pub(crate) host_cap_hit: bool,
    /// Built on the first WASI call, not per store: most hook calls never touch
    /// WASI, and building a context seeds two random generators and allocates
    /// its streams (about a microsecond, twice over, since the builder makes a
    /// spare one). The context built is the same locked-down one either way.
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    /// The commission export typed for the host's borrowed views, checked on
    /// this instance's first commission call and kept for the rest.
    pub(crate) commission: Option<super::bindings::CommissionFunc>,
    /// When the current call's time is up: no host call waits past it
    /// (`runtime/wasi.rs`). Set whenever the store is armed for a call.
    pub(crate) deadline: Option<Instant>,
}

/// The plugin's WASI context: stdout and stderr into its bounded log, nothing else.
fn locked_down_wasi(log: &LogSink) -> WasiCtx {
    // No preopens, no env, no args, no network: the builder's defaults give
    // none of those, and the linker doesn't even link filesystem or sockets.
    WasiCtx::builder()
        .stdout(log.stream(LogSource::Stdout))
        .stderr(log.stream(LogSource::Stderr))
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build()
}

impl HostState {
    pub(crate) fn new(quota: &Quota, data: Arc<dyn TenantData>) -> Self {
        let log = LogSink::new(quota.log_bytes);
        Self {
            limiter: Limiter::new(quota),
            log,
            data,
            host_bytes_left: quota.host_call_bytes,
            host_bytes_cap: quota.host_call_bytes,
            host_cap_hit: false,
            wasi: None,
            table: ResourceTable::new(),
            commission: None,
            deadline: None,
        }
    }

    /// Gets a warm instance's state ready for its next call: the host-call
    /// budget and the log start over, and the call's peak memory starts at what
    /// the instance already holds.
    pub(crate) fn begin_call(&mut self) {
        self.host_bytes_left = self.host_bytes_cap;
        self.host_cap_hit = false;
        self.limiter.refused = None;
        self.limiter.peak_memory = self.limiter.memory_total;
        self.log.reset();
    }

    /// Linear memory the instance holds now, in bytes.
    pub(crate) fn memory_in_use(&self) -> usize {
        self.limiter.memory_total
    }

    /// The store's resource table (WASI streams and pollables).
    pub(super) fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }

    /// Takes `bytes` from the call's host-call budget, or traps.
    pub(super) fn charge(&mut self, bytes: usize) -> wasmtime::Result<()> {
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        match self.host_bytes_left.checked_sub(bytes) {
            Some(left) => {
                self.host_bytes_left = left;
                Ok(())
            }
            None => {
                self.host_bytes_left = 0;
                self.host_cap_hit = true;
                Err(HostCallCapExceeded(self.host_bytes_cap).into())
            }
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let log = &self.log;
        WasiCtxView {
            ctx: self.wasi.get_or_insert_with(|| locked_down_wasi(log)),
            table: &mut self.table,
        }
    }
}

/// The imports' work, shared by every contract version's bindings
/// (`runtime/bindings.rs`): each version's `settings`, `kv` and `log` call these.
impl HostState {
    pub(crate) fn settings_get(&mut self) -> wasmtime::Result<String> {
        let _span = tracing::trace_span!("host_call", function = "settings.get").entered();
        let json = self.data.settings_json().to_owned();
        self.charge(json.len())?;
        Ok(json)
    }

    pub(crate) fn kv_get(&mut self, key: &str) -> wasmtime::Result<Option<String>> {
        let _span = tracing::trace_span!("host_call", function = "kv.get").entered();
        self.charge(key.len())?;
        let value = self.data.kv_get(key);
        self.charge(value.as_ref().map_or(0, String::len))?;
        Ok(value)
    }

    pub(crate) fn kv_list_keys(
        &mut self,
        prefix: &str,
        limit: u32,
    ) -> wasmtime::Result<Vec<String>> {
        let _span = tracing::trace_span!("host_call", function = "kv.list-keys").entered();
        self.charge(prefix.len())?;
        let limit = usize::try_from(limit.min(10_000)).unwrap_or(10_000);
        let keys = self.data.kv_keys(prefix, limit);
        self.charge(keys.iter().map(String::len).sum())?;
        Ok(keys)
    }

    pub(crate) fn log_write(&mut self, source: LogSource, message: &str) -> wasmtime::Result<()> {
        let _span = tracing::trace_span!("host_call", function = "log.write").entered();
        self.charge(message.len())?;
        self.log.line(source, message);
        Ok(())
    }
}
