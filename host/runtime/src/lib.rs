//! The plugin sandbox (crate `veneer-runtime`), the only crate that depends on wasmtime.
//!
//! One [`Runtime`] per process owns the `Engine` (pooling allocator, fuel, epoch
//! interruption, a bounded wasm stack), the `Linker` with the Veneer world and a
//! locked-down WASI subset, the epoch ticker, and the loaded plugins: each
//! component is checked, compiled once per content hash (or loaded from the
//! on-disk artifact cache) and kept pre-instantiated. Every call gets a fresh
//! `Store` made for one tenant's data and quota, and ends in exactly one
//! classified [`Outcome`]. It knows nothing of tenants beyond the data it is
//! handed, nor of HTTP or storage. Every hook is called through
//! [`Runtime::run`] or [`Session::run`] with its one definition in [`hook`]
//! ([`HookCall`]); what is served when a call fails is the resolver's.
//!
//! **Contract versions.** Every released version of the WIT contract is
//! served side by side, Zed's extension-host pattern: one module per version
//! under `bindings/` (`v0_1_0`, `v0_2_0`), each with its own `bindgen!`, its
//! imports and its conversions to the host's types, frozen once released; and
//! one dispatch, an enum over the versions ([`WitVersion`]) chosen once when
//! a component is loaded, by the `veneer:plugin/hooks@x.y.z` instance it
//! exports (a component exporting none this host serves is refused, naming
//! the versions it does). A hook call is one `match` on that enum; the quote
//! path's commission call lowers borrowed views into a typed function cached
//! in the store, the same for every version. [`PluginInfo`] says which
//! version a plugin speaks and what it says about itself (0.2.0 adds a
//! description and a settings JSON Schema, checked here to be valid; 0.1.0
//! plugins have neither). A hook a version lacks (`product-category` in
//! 0.1.0) is simply one its plugins never implement. A new version is one more
//! module and one more variant; nothing above this crate changes but what uses
//! the new hooks.

mod artifacts;
mod bindings;
mod capture;
mod check;
pub mod hook;
mod outcome;
mod quota;
mod state;
mod warm;
mod wasi;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};

use artifacts::ArtifactCache;
use bindings::{Bindings as PluginBindings, PluginPre};
use state::{HostCallCapExceeded, HostState, LimitExceeded};
use warm::{Warm, WarmPool};

pub use bindings::{OutputSize, WitVersion};
pub use check::CheckError;
pub use hook::{Hook, HookCall, UnknownHook};
pub use outcome::{LogLine, LogSource, Outcome, OutcomeKind, Run, RunStats};
pub use quota::{
    MAX_DEADLINE_MS, MAX_INSTANCES, MAX_MEMORIES, MAX_MEMORY_BYTES, MAX_TABLES, Quota, QuotaError,
};
pub use state::{StaticTenantData, TenantData};
pub use warm::WarmKey;

/// How often the epoch advances; deadlines are rounded up to whole ticks.
const EPOCH_TICK: Duration = Duration::from_millis(1);
/// Native stack a call's wasm may use. Engine-wide: wasmtime does not vary it per store.
pub const MAX_WASM_STACK: usize = 512 << 10;
/// Largest component accepted by default.
pub const DEFAULT_MAX_COMPONENT_BYTES: usize = 16 << 20;
/// Compiled code kept loaded by default.
pub const DEFAULT_LOADED_BYTES: u64 = 1 << 30;
/// How long an unused plugin stays loaded by default.
pub const DEFAULT_LOADED_IDLE: Duration = Duration::from_secs(3600);

/// Settings of the runtime that are fixed for the process.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where compiled artifacts are cached (an absolute path); `None`
    /// disables the disk cache.
    pub artifact_dir: Option<PathBuf>,
    /// The key artifacts are signed with (HMAC-SHA256) and checked against
    /// before they are loaded. Give the same key to every process that should
    /// trust another's artifacts; `None` draws a random key, so only this
    /// process's own artifacts are trusted.
    pub artifact_key: Option<[u8; 32]>,
    /// Largest component accepted, in bytes.
    pub max_component_bytes: usize,
    /// Calls that may run at once (sizes the instance pool).
    pub max_concurrent_calls: u32,
    /// Instances kept warm between per-sale calls (see [`WarmKey`]); 0 gives
    /// every call a fresh store. Each holds a slot of the instance pool.
    pub warm_instances: u32,
    /// How long a warm instance may stay unused before it is dropped (and its
    /// pool slot and memory returned).
    pub warm_idle: Duration,
    /// Bytes of compiled code kept loaded (all plugins together); past it the
    /// least recently used plugins are released and reloaded from the artifact
    /// cache (or recompiled) when next needed.
    pub loaded_bytes: u64,
    /// How long a loaded plugin may go unused before it is released: versions
    /// superseded by an activation age out this way.
    pub loaded_idle: Duration,
    /// Which limits on running time the engine enforces. Production keeps the
    /// default (both on); turning one off is for benchmarks only (see
    /// [`Metering`]).
    pub metering: Metering,
}

/// The engine's time limits: fuel (an instruction budget, deterministic) and the
/// epoch deadline (wall clock). The server always runs with both, as the design
/// requires; the switch exists so the benchmarks can measure what each costs on
/// a compute-heavy plugin (`benches/runtime.rs`, docs/performance.md). With one
/// off, a plugin that loops is stopped only by the other; with both off, by
/// nothing — never build a serving runtime that way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metering {
    /// Count fuel and trap when the quota's `fuel` runs out.
    pub fuel: bool,
    /// Trap when the quota's `deadline_ms` has passed (an epoch ticker thread runs).
    pub epoch: bool,
}

impl Default for Metering {
    fn default() -> Self {
        Self {
            fuel: true,
            epoch: true,
        }
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            artifact_dir: None,
            artifact_key: None,
            max_component_bytes: DEFAULT_MAX_COMPONENT_BYTES,
            max_concurrent_calls: 64,
            warm_instances: 64,
            warm_idle: warm::IDLE,
            loaded_bytes: DEFAULT_LOADED_BYTES,
            loaded_idle: DEFAULT_LOADED_IDLE,
            metering: Metering::default(),
        }
    }
}

/// What a plugin says about itself, plus what the host learned checking it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginInfo {
    /// Hex sha256 of the component's bytes.
    pub sha256: String,
    /// Size of the component in bytes.
    pub size_bytes: usize,
    /// The plugin's own name.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// The version of the WIT contract it was built for (by the
    /// `veneer:plugin/hooks` it exports).
    pub wit_version: WitVersion,
    /// What the plugin says it does (empty for 0.1.0 plugins, which cannot say).
    pub description: String,
    /// The JSON Schema of its settings, as JSON text, checked to be a valid
    /// schema when loaded; `None` when it declares none (always for 0.1.0).
    pub settings_schema: Option<String>,
    /// The hooks it implements; the host calls no others.
    pub hooks: BTreeSet<Hook>,
    /// The interfaces it imports.
    pub imports: Vec<String>,
}

/// A checked, compiled, pre-instantiated plugin.
pub struct LoadedPlugin {
    info: PluginInfo,
    /// What keeping it loaded costs, in bytes: its compiled code plus the
    /// component's size (its type information and metadata).
    weight: u64,
    /// `info.sha256`, shared with the warm instances made of it.
    shared_sha256: Arc<str>,
    pre: PluginPre,
    from_artifact_cache: bool,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl LoadedPlugin {
    /// What the plugin is and implements.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    /// Whether the compiled code came from the on-disk artifact cache.
    pub fn from_artifact_cache(&self) -> bool {
        self.from_artifact_cache
    }

    /// Whether the plugin implements `hook`.
    pub fn implements(&self, hook: Hook) -> bool {
        self.info.hooks.contains(&hook)
    }
}

/// The process's plugin engine. See the module docs.
pub struct Runtime {
    engine: Engine,
    linker: Linker<HostState>,
    config: RuntimeConfig,
    artifacts: Option<ArtifactCache>,
    /// Loaded plugins by sha256, bounded by weight (`RuntimeConfig::loaded_bytes`).
    loaded: moka::sync::Cache<String, Arc<LoadedPlugin>>,
    warm: Arc<WarmPool>,
    ticker_stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
        self.warm.clear();
    }
}

/// Fuel for `describe` at load time: generous but finite.
const DESCRIBE_QUOTA: Quota = Quota {
    fuel: 50_000_000,
    memory_bytes: 64 << 20,
    deadline_ms: 2_000,
    output_bytes: 64 << 10,
    host_call_bytes: 1 << 20,
    log_bytes: 16 << 10,
    table_elements: 20_000,
    instances: MAX_INSTANCES,
};

impl Runtime {
    /// Builds the engine, the linker and the epoch ticker.
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Self> {
        let engine = Engine::new(&engine_config(&config))?;
        let mut linker = Linker::new(&engine);
        add_wasi_subset(&mut linker)?;
        PluginBindings::add_to_linker(&mut linker)?;

        let artifacts = match &config.artifact_dir {
            Some(dir) => {
                let key = config.artifact_key.unwrap_or_else(|| {
                    let mut key = [0; 32];
                    rand::RngCore::fill_bytes(&mut rand::rng(), &mut key);
                    key
                });
                Some(ArtifactCache::new(dir, &engine, key)?)
            }
            None => None,
        };

        if config.metering != Metering::default() {
            tracing::warn!(
                metering = ?config.metering,
                "plugin runtime started with a limit switched off; for benchmarks only"
            );
        }
        let ticker_stop = Arc::new(AtomicBool::new(false));
        let warm = Arc::new(WarmPool::new(
            usize::try_from(config.warm_instances).unwrap_or(0),
            config.warm_idle,
        ));
        {
            // One ticker thread: the epoch (every EPOCH_TICK, when epoch
            // deadlines are on) and the sweep of idle warm instances.
            let epoch = config.metering.epoch;
            let engine = engine.weak();
            let pool = Arc::downgrade(&warm);
            let stop = ticker_stop.clone();
            let sweep_every = config.warm_idle.clamp(EPOCH_TICK, Duration::from_secs(1));
            let tick = if epoch { EPOCH_TICK } else { sweep_every };
            std::thread::Builder::new()
                .name("veneer-epoch".into())
                .spawn(move || {
                    let mut last_sweep = Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(tick);
                        if epoch {
                            match engine.upgrade() {
                                Some(engine) => engine.increment_epoch(),
                                None => break,
                            }
                        }
                        if last_sweep.elapsed() >= sweep_every {
                            last_sweep = Instant::now();
                            match pool.upgrade() {
                                Some(pool) => pool.sweep(),
                                None => break,
                            }
                        }
                    }
                })?;
        }

        let loaded = moka::sync::Cache::builder()
            .max_capacity(config.loaded_bytes)
            .weigher(|_, plugin: &Arc<LoadedPlugin>| {
                u32::try_from(plugin.weight).unwrap_or(u32::MAX)
            })
            .time_to_idle(config.loaded_idle)
            .build();
        Ok(Self {
            engine,
            linker,
            config,
            artifacts,
            loaded,
            warm,
            ticker_stop,
        })
    }

    /// The runtime's fixed settings.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// The hex sha256 that identifies a component's bytes.
    pub fn hash(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    /// Removes the compiled artifacts on disk (`--artifact-dir`) of every
    /// component whose sha256 `keep` refuses. Returns how many files went (0
    /// without an artifact directory). Compiled components in memory are left
    /// to their cache's eviction.
    pub fn remove_unused_artifacts(&self, keep: &dyn Fn(&str) -> bool) -> usize {
        self.artifacts
            .as_ref()
            .map_or(0, |cache| cache.retain(keep))
    }

    /// Checks, compiles (or loads the cached artifact) and describes a component.
    /// The result is kept by hash: loading the same bytes again is a lookup.
    pub fn load(&self, bytes: &[u8]) -> Result<Arc<LoadedPlugin>, CheckError> {
        check::header(bytes, self.config.max_component_bytes)?;
        let sha256 = Self::hash(bytes);
        if let Some(plugin) = self.loaded.get(&sha256) {
            return Ok(plugin);
        }

        let cached = self
            .artifacts
            .as_ref()
            .and_then(|cache| cache.load(&self.engine, &sha256));
        let (component, fresh) = match cached {
            Some(component) => (component, false),
            None => {
                check::code_size(bytes)?;
                let component = Component::new(&self.engine, bytes)
                    .map_err(|err| CheckError::Invalid(format!("{err:#}")))?;
                (component, true)
            }
        };
        let (imports, wit_version) = check::interface(&self.engine, &component)?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|err| CheckError::WrongWorld(format!("{err:#}")))?;
        let pre = PluginPre::new(wit_version, instance_pre)
            .map_err(|err| CheckError::WrongWorld(format!("{err:#}")))?;

        let code = component.image_range();
        let code_bytes = code.end.addr().saturating_sub(code.start.addr());
        let mut plugin = LoadedPlugin {
            weight: u64::try_from(code_bytes.saturating_add(bytes.len())).unwrap_or(u64::MAX),
            shared_sha256: Arc::from(sha256.as_str()),
            info: PluginInfo {
                sha256: sha256.clone(),
                size_bytes: bytes.len(),
                name: String::new(),
                version: String::new(),
                wit_version,
                description: String::new(),
                settings_schema: None,
                hooks: BTreeSet::new(),
                imports,
            },
            pre,
            from_artifact_cache: !fresh,
        };
        let described = self.call(
            &plugin,
            None,
            Arc::new(StaticTenantData::default()),
            &DESCRIBE_QUOTA,
            |store, bindings| Ok(Ok(bindings.describe(store)?)),
        );
        match described.outcome {
            Outcome::Ok(info) => {
                check::described(&info)?;
                plugin.info.name = info.name;
                plugin.info.version = info.version;
                plugin.info.hooks = info.hooks.into_iter().collect();
                plugin.info.description = info.description;
                plugin.info.settings_schema = info.settings_schema;
            }
            other => {
                let reason = format!("{}: {}", other.kind(), other.message().unwrap_or_default());
                return Err(CheckError::DescribeFailed(reason));
            }
        }

        if fresh && let Some(cache) = &self.artifacts {
            cache.store(&sha256, &component);
        }
        let plugin = Arc::new(plugin);
        self.loaded.insert(sha256, plugin.clone());
        Ok(plugin)
    }

    /// How many plugins are loaded.
    pub fn loaded_count(&self) -> usize {
        self.loaded.run_pending_tasks();
        usize::try_from(self.loaded.entry_count()).unwrap_or(usize::MAX)
    }

    /// Bytes the loaded plugins weigh together (compiled code and components).
    pub fn loaded_bytes(&self) -> u64 {
        self.loaded.run_pending_tasks();
        self.loaded.weighted_size()
    }

    /// A plugin already loaded under `sha256`.
    pub fn get(&self, sha256: &str) -> Option<Arc<LoadedPlugin>> {
        self.loaded.get(sha256)
    }

    /// Forgets a loaded plugin (its artifact stays on disk).
    pub fn unload(&self, sha256: &str) {
        self.loaded.invalidate(sha256);
        self.warm.clear();
    }

    /// Runs hook `H` with `input` on a fresh store, or with `warm` on a warm
    /// instance of that key's when the pool has one (kept afterwards if the
    /// call ends well; `data` must be the data `warm`'s version names). The
    /// result is held to the quota's output cap.
    pub fn run<H: HookCall>(
        &self,
        plugin: &LoadedPlugin,
        warm: Option<&WarmKey>,
        data: Arc<dyn TenantData>,
        quota: &Quota,
        input: H::Input<'_>,
    ) -> Run<H::Output> {
        self.call_capped(plugin, warm, data, quota, |store, bindings| {
            H::call(Instance { store, bindings }, input)
        })
    }

    /// A call whose result is held to the quota's output cap.
    fn call_capped<T: OutputSize>(
        &self,
        plugin: &LoadedPlugin,
        warm: Option<&WarmKey>,
        data: Arc<dyn TenantData>,
        quota: &Quota,
        f: impl FnOnce(
            &mut Store<HostState>,
            &PluginBindings,
        ) -> wasmtime::Result<Result<T, (String, String)>>,
    ) -> Run<T> {
        let mut run = self.call(plugin, warm, data, quota, f);
        if let Outcome::Ok(value) = &run.outcome {
            run.stats.output_bytes = u64::try_from(value.output_size()).unwrap_or(u64::MAX);
            if let Some(over) = over_cap(run.stats.output_bytes, quota) {
                run.outcome = over;
            }
        }
        run
    }

    /// One sandboxed call: a fresh store for `data` under `quota` (or, with
    /// `warm`, a warm instance of that key's when the pool has one), instantiate,
    /// run `f`, classify how it ended; the instance is kept afterwards when
    /// `warm` is given and the call ended well (see `runtime/warm.rs`).
    fn call<T>(
        &self,
        plugin: &LoadedPlugin,
        warm: Option<&WarmKey>,
        data: Arc<dyn TenantData>,
        quota: &Quota,
        f: impl FnOnce(
            &mut Store<HostState>,
            &PluginBindings,
        ) -> wasmtime::Result<Result<T, (String, String)>>,
    ) -> Run<T> {
        let started = Instant::now();
        let sha = plugin.info.sha256.as_str();
        let reused = warm.and_then(|key| self.warm.take(key, sha, quota));
        let (mut store, bindings, calls) = match reused {
            Some(mut w) => {
                w.store.data_mut().begin_call();
                self.arm(&mut w.store, quota);
                (w.store, Ok(w.bindings), w.calls)
            }
            None => {
                let mut store = self.store(quota, data);
                let bindings = guarded(|| plugin.pre.instantiate(&mut store));
                (store, bindings, 0)
            }
        };
        let (result, bindings) = match bindings {
            Ok(bindings) => (guarded(|| f(&mut store, &bindings)), Some(bindings)),
            Err(err) => (Err(err), None),
        };

        let fuel_used = if self.config.metering.fuel {
            quota.fuel.saturating_sub(store.get_fuel().unwrap_or(0))
        } else {
            0
        };
        let wall_time = started.elapsed();
        let state = store.data();
        let outcome = outcome_of(result, state);
        let (logs, logs_truncated) = state.log.finish();
        let peak_memory = state.limiter.peak_memory;
        let keep = matches!(outcome, Outcome::Ok(_))
            && calls + 1 < warm::MAX_CALLS
            && u64::try_from(state.memory_in_use()).unwrap_or(u64::MAX) <= quota.memory_bytes / 2;
        if let (Some(key), Some(bindings), true) = (warm, bindings, keep) {
            let plugin = plugin.shared_sha256.clone();
            self.warm.put(
                key.clone(),
                Warm::new(plugin, store, bindings, *quota, calls + 1),
            );
        }
        Run {
            outcome,
            stats: RunStats {
                fuel_used,
                peak_memory_bytes: u64::try_from(peak_memory).unwrap_or(u64::MAX),
                wall_time,
                output_bytes: 0,
                logs,
                logs_truncated,
            },
        }
    }

    /// Warm instances held now.
    pub fn warm_instances(&self) -> usize {
        self.warm.len()
    }
}

/// Several calls against one live instance for one tenant, for example every
/// line of one order. Fuel and the deadline are reset before each call; memory
/// and the host-call budget are shared by the whole session. After any failure
/// the session is poisoned: its instance may be in a broken state.
pub struct Session {
    store: Store<HostState>,
    bindings: PluginBindings,
    quota: Quota,
    metering: Metering,
    poisoned: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("quota", &self.quota)
            .finish_non_exhaustive()
    }
}

impl Runtime {
    /// A fresh store for one tenant's `data` under `quota`, with every limit set
    /// before instantiation: start functions count against the quota.
    fn store(&self, quota: &Quota, data: Arc<dyn TenantData>) -> Store<HostState> {
        let mut store = Store::new(&self.engine, HostState::new(quota, data));
        store.limiter(|state| &mut state.limiter);
        if self.config.metering.epoch {
            store.epoch_deadline_trap();
        }
        self.arm(&mut store, quota);
        store
    }

    /// Gives a store the whole of `quota`'s fuel and deadline, from now.
    fn arm(&self, store: &mut Store<HostState>, quota: &Quota) {
        arm(store, quota, self.config.metering);
    }

    /// Instantiates `plugin` once for `data` under `quota`.
    pub fn session(
        &self,
        plugin: &LoadedPlugin,
        data: Arc<dyn TenantData>,
        quota: &Quota,
    ) -> Result<Session, Outcome<()>> {
        let mut store = self.store(quota, data);
        match guarded(|| plugin.pre.instantiate(&mut store)) {
            Ok(bindings) => Ok(Session {
                store,
                bindings,
                quota: *quota,
                metering: self.config.metering,
                poisoned: false,
            }),
            Err(err) => Err(classify(&err, store.data())),
        }
    }
}

impl Session {
    fn call<T>(
        &mut self,
        f: impl FnOnce(
            &mut Store<HostState>,
            &PluginBindings,
        ) -> wasmtime::Result<Result<T, (String, String)>>,
    ) -> Outcome<T> {
        if self.poisoned {
            return Outcome::Trap {
                message: "the session's instance failed earlier; start a new session".into(),
                backtrace: None,
            };
        }
        arm(&mut self.store, &self.quota, self.metering);
        let result = guarded(|| f(&mut self.store, &self.bindings));
        let outcome = outcome_of(result, self.store.data());
        if !matches!(outcome, Outcome::Ok(_) | Outcome::PluginError { .. }) {
            self.poisoned = true;
        }
        outcome
    }

    /// Calls `describe`: the cheapest host-to-guest round trip.
    pub fn describe(&mut self) -> Outcome<Vec<Hook>> {
        self.call(|store, b| Ok(Ok(b.describe(store)?.hooks)))
    }

    /// Runs hook `H` on the live instance, held to the output cap as
    /// [`Runtime::run`] is (the caller validates as the resolver does).
    pub fn run<H: HookCall>(&mut self, input: H::Input<'_>) -> Outcome<H::Output> {
        let quota = self.quota;
        match self.call(|store, bindings| H::call(Instance { store, bindings }, input)) {
            Outcome::Ok(value) => over_cap(
                u64::try_from(value.output_size()).unwrap_or(u64::MAX),
                &quota,
            )
            .unwrap_or(Outcome::Ok(value)),
            other => other,
        }
    }

    /// Fuel the last call used.
    pub fn last_fuel_used(&self) -> u64 {
        if !self.metering.fuel {
            return 0;
        }
        self.quota
            .fuel
            .saturating_sub(self.store.get_fuel().unwrap_or(0))
    }
}

/// The outcome of a call whose output of `size` bytes is over `quota`'s cap.
fn over_cap<T>(size: u64, quota: &Quota) -> Option<Outcome<T>> {
    (size > quota.output_bytes).then(|| Outcome::InvalidOutput {
        reason: format!(
            "the plugin returned {size} bytes, over its output cap of {} bytes (quota output_bytes)",
            quota.output_bytes
        ),
    })
}

/// A live instance as a hook's call ([`HookCall`]) sees it: the store and
/// the instance's bindings.
pub struct Instance<'s> {
    store: &'s mut Store<HostState>,
    bindings: &'s PluginBindings,
}

impl std::fmt::Debug for Instance<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance").finish_non_exhaustive()
    }
}

/// Gives a store the whole of `quota`'s fuel and deadline, from now. The
/// deadline bounds host calls too: no WASI call waits past it (`runtime/wasi.rs`),
/// whether or not epoch interruption is on.
fn arm(store: &mut Store<HostState>, quota: &Quota, metering: Metering) {
    if metering.fuel {
        // Cannot fail: the engine consumes fuel.
        let _ = store.set_fuel(quota.fuel);
    }
    if metering.epoch {
        store.set_epoch_deadline(deadline_ticks(quota.deadline_ms));
    }
    store.data_mut().deadline =
        Instant::now().checked_add(Duration::from_millis(quota.deadline_ms));
}

/// Runs one step of a call (instantiation or the export), turning a panic
/// anywhere under it (a host function's bug, a library's) into an error: a
/// plugin can make a call fail, never the host thread that made it. The store
/// is not reused after a panic (the call's outcome is not `ok`).
fn guarded<T>(f: impl FnOnce() -> wasmtime::Result<T>) -> wasmtime::Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(panic) => {
            let detail = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic with no message".into());
            tracing::error!(%detail, "a host function panicked during a plugin call");
            Err(wasmtime::Error::msg(format!(
                "the host failed while serving this plugin call ({detail}); the call was stopped"
            )))
        }
    }
}

fn deadline_ticks(deadline_ms: u64) -> u64 {
    let tick_ms = u64::try_from(EPOCH_TICK.as_millis()).unwrap_or(1).max(1);
    // +1: the current tick may be about to end.
    deadline_ms.div_ceil(tick_ms) + 1
}

/// How a call ended: its value, the plugin's own error, or the classified
/// failure. The one place the runtime and sessions turn a result into an outcome.
fn outcome_of<T>(
    result: wasmtime::Result<Result<T, (String, String)>>,
    state: &HostState,
) -> Outcome<T> {
    match result {
        Ok(Ok(value)) => Outcome::Ok(value),
        Ok(Err((code, message))) => Outcome::PluginError { code, message },
        Err(err) => classify(&err, state),
    }
}

/// Turns a failed call into its outcome. Limits set flags on the state before
/// they trap, so those are checked first; then wasmtime's trap codes.
fn classify<T>(err: &wasmtime::Error, state: &HostState) -> Outcome<T> {
    if let Some(detail) = &state.limiter.refused {
        return Outcome::OutOfMemory {
            detail: detail.clone(),
        };
    }
    if err.downcast_ref::<LimitExceeded>().is_some() {
        return Outcome::OutOfMemory {
            detail: format!("{err}"),
        };
    }
    let backtrace = err
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .map(|bt| bt.to_string())
        .filter(|bt| !bt.trim().is_empty());
    if state.host_cap_hit || err.downcast_ref::<HostCallCapExceeded>().is_some() {
        return Outcome::Trap {
            message: err
                .downcast_ref::<HostCallCapExceeded>()
                .map_or_else(|| format!("{err}"), |e| e.to_string()),
            backtrace,
        };
    }
    if err.downcast_ref::<wasi::DeadlinePassed>().is_some() {
        return Outcome::Deadline;
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Outcome::OutOfFuel,
        Some(Trap::Interrupt) => Outcome::Deadline,
        Some(trap) => Outcome::Trap {
            message: trap_message(*trap),
            backtrace,
        },
        None => {
            if err
                .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
                .is_some()
            {
                return Outcome::Trap {
                    message: "the host is at its limit of concurrent plugin calls; retry shortly"
                        .into(),
                    backtrace: None,
                };
            }
            Outcome::Trap {
                message: format!("{err:#}"),
                backtrace,
            }
        }
    }
}

fn trap_message(trap: Trap) -> String {
    match trap {
        Trap::StackOverflow => "the plugin overflowed its stack (unbounded recursion?)".into(),
        Trap::UnreachableCodeReached => {
            "the plugin executed `unreachable` (a Rust panic ends this way; see its stderr)".into()
        }
        Trap::IntegerDivisionByZero => "the plugin divided an integer by zero".into(),
        Trap::MemoryOutOfBounds => {
            "the plugin accessed memory out of bounds (a Rust plugin does this when deep recursion exhausts its stack in linear memory)".into()
        }
        other => format!("the plugin trapped: {other}"),
    }
}

fn engine_config(config: &RuntimeConfig) -> Config {
    let mut cfg = Config::new();
    cfg.wasm_component_model(true)
        .consume_fuel(config.metering.fuel)
        .epoch_interruption(config.metering.epoch)
        .max_wasm_stack(MAX_WASM_STACK);

    // Warm instances keep their slots between calls.
    let slots = config
        .max_concurrent_calls
        .max(1)
        .saturating_add(config.warm_instances);
    // Per component, what one slot holds; the store's limiter allows the same
    // (`runtime/state.rs`), so one component cannot take more than its share
    // of the pool's memories, tables or instances.
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(slots)
        .max_core_instances_per_component(MAX_INSTANCES)
        .max_memories_per_component(MAX_MEMORIES)
        .max_tables_per_component(MAX_TABLES)
        .total_core_instances(slots.saturating_mul(MAX_INSTANCES))
        .total_memories(slots.saturating_mul(MAX_MEMORIES))
        .total_tables(slots.saturating_mul(MAX_TABLES))
        .total_stacks(slots)
        .max_memory_size(usize::try_from(MAX_MEMORY_BYTES).unwrap_or(usize::MAX))
        // Keep the first MiB of each slot resident between calls: instantiation
        // then resets it with memset instead of page faults (see docs/performance.md).
        .linear_memory_keep_resident(1 << 20)
        .table_keep_resident(64 << 10)
        // With PAGEMAP_SCAN (Linux 6.7+) only the pages a call dirtied are reset,
        // instead of memset over the whole resident MiB.
        .pagemap_scan(wasmtime::Enabled::Auto);
    cfg.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    cfg
}

/// Links the WASI subset plugins may use: io, clocks, random, and cli stdio and
/// environment (which are empty). No filesystem, sockets or HTTP are linked, so
/// even a component that slipped past the import check could not reach them.
/// Everything that can wait (poll, streams, the monotonic clock's timers) and
/// random (which allocates) is Veneer's own, bounded by the call's deadline and
/// host-call budget (`runtime/wasi.rs`); the rest never waits.
fn add_wasi_subset(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
    use wasmtime_wasi::p2::bindings::sync::io as sync_io;
    use wasmtime_wasi::p2::bindings::{cli, clocks, random};
    use wasmtime_wasi::{ResourceTable, WasiView};

    struct HasTable;
    impl wasmtime::component::HasData for HasTable {
        type Data<'a> = &'a mut ResourceTable;
    }

    let l = linker;
    wasmtime_wasi::p2::bindings::io::error::add_to_linker::<HostState, HasTable>(l, |t| {
        t.ctx().table
    })?;
    sync_io::poll::add_to_linker::<HostState, HasSelf<HostState>>(l, |s| s)?;
    sync_io::streams::add_to_linker::<HostState, HasSelf<HostState>>(l, |s| s)?;
    clocks::wall_clock::add_to_linker::<HostState, WasiClocks>(l, HostState::clocks)?;
    clocks::monotonic_clock::add_to_linker::<HostState, HasSelf<HostState>>(l, |s| s)?;
    random::random::add_to_linker::<HostState, HasSelf<HostState>>(l, |s| s)?;
    random::insecure::add_to_linker::<HostState, HasSelf<HostState>>(l, |s| s)?;
    random::insecure_seed::add_to_linker::<HostState, HasSelf<HostState>>(l, |s| s)?;
    cli::exit::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::environment::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::stdin::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::stdout::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::stderr::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::terminal_input::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::terminal_output::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::terminal_stdin::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::terminal_stdout::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    cli::terminal_stderr::add_to_linker::<HostState, WasiCli>(l, HostState::cli)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component of `count` core instances of a module with `memories`
    /// memories each.
    fn component_wat(count: usize, memory: bool) -> String {
        let module = if memory {
            "(core module $m (memory 1))"
        } else {
            "(core module $m)"
        };
        let instances = "(core instance (instantiate $m))".repeat(count);
        format!("(component {module} {instances})")
    }

    /// Compiles and instantiates `wat` the way plugins are: the server's engine
    /// configuration and a store with the quota's limiter.
    fn instantiate(wat: &str) -> wasmtime::Result<()> {
        let engine = Engine::new(&engine_config(&RuntimeConfig::default()))?;
        let component = Component::new(&engine, wat::parse_str(wat)?)?;
        let quota = Quota::default();
        let mut store = Store::new(
            &engine,
            HostState::new(&quota, Arc::new(StaticTenantData::default())),
        );
        store.limiter(|state| &mut state.limiter);
        Linker::<HostState>::new(&engine).instantiate(&mut store, &component)?;
        Ok(())
    }

    #[test]
    fn a_component_within_a_pool_slot_instantiates() {
        instantiate(&component_wat(MAX_MEMORIES as usize, true)).expect("fits a slot");
        instantiate(&component_wat(MAX_INSTANCES as usize, false)).expect("fits a slot");
    }

    #[test]
    fn more_memories_than_a_pool_slot_holds_are_refused() {
        let err = instantiate(&component_wat(MAX_MEMORIES as usize + 1, true))
            .expect_err("three memories do not fit a slot");
        assert!(format!("{err:#}").contains("memor"), "{err:#}");
    }

    #[test]
    fn more_core_instances_than_a_pool_slot_holds_are_refused() {
        instantiate(&component_wat(MAX_INSTANCES as usize + 1, false))
            .expect_err("nine core instances do not fit a slot");
    }

    #[test]
    fn random_bytes_are_charged_before_they_are_allocated() {
        let quota = Quota::default();
        let mut state = HostState::new(&quota, Arc::new(StaticTenantData::default()));
        // 2^40 bytes would abort the process if allocated; the budget refuses first.
        let err = wasmtime_wasi::p2::bindings::random::random::Host::get_random_bytes(
            &mut state,
            1 << 40,
        )
        .expect_err("over the host-call budget");
        assert!(err.downcast_ref::<HostCallCapExceeded>().is_some(), "{err}");
        assert!(state.host_cap_hit);
        let bytes = wasmtime_wasi::p2::bindings::random::random::Host::get_random_bytes(
            &mut HostState::new(&quota, Arc::new(StaticTenantData::default())),
            32,
        )
        .expect("within the budget");
        assert_eq!(bytes.len(), 32);
    }
}
