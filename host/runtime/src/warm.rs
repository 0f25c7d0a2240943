//! Warm instances: a plugin instance kept after a call that ended well, for the
//! next per-sale call of the same owner (the HTTP layer: one tenant), the same
//! plugin and the same data version — so the commission hook on the request
//! path skips instantiation (8 µs → 2 µs, docs/performance.md).
//!
//! An instance is never shared: a call takes it out of the pool and puts it
//! back only when the call returned normally, its memory stayed under half the
//! quota and it has served fewer than [`MAX_CALLS`] calls. Anything else (trap,
//! fuel, deadline, memory, host-call cap, a plugin error) drops it, and the
//! next call starts from a fresh store. The pool holds at most `cap` instances
//! across all owners (least recently used dropped first); an instance idle
//! longer than the pool's idle time ([`IDLE`] by default) is never reused, and
//! the runtime's ticker thread drops it within a second or so of that, whether
//! or not the pool is used again. Fuel, the deadline, the host-call budget and the log are
//! reset before every call, so each call has its whole quota; only the guest's
//! own memory contents carry over, and only within one owner.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use wasmtime::Store;

use super::bindings::Bindings as PluginBindings;
use super::quota::Quota;
use super::state::HostState;

/// Calls one instance serves before it is dropped for a fresh one.
pub const MAX_CALLS: u32 = 10_000;
/// By default, an instance unused this long is dropped.
pub const IDLE: Duration = Duration::from_secs(30);

/// Whose warm instances these are: an owner (the caller's scope, for the server
/// a tenant id) and a version of the data the instance's store was made with.
/// Instances are only ever handed to a call with an equal key, plugin and quota.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WarmKey {
    owner: Arc<str>,
    version: u64,
}

impl WarmKey {
    /// The key for `owner` with its data at `version`.
    pub fn new(owner: &str, version: u64) -> Self {
        Self {
            owner: Arc::from(owner),
            version,
        }
    }
}

/// A live instance between calls.
pub(crate) struct Warm {
    /// The sha256 of the plugin it is an instance of.
    plugin: Arc<str>,
    pub(crate) store: Store<HostState>,
    pub(crate) bindings: PluginBindings,
    pub(crate) quota: Quota,
    pub(crate) calls: u32,
    last_used: Instant,
}

impl Warm {
    pub(crate) fn new(
        plugin: Arc<str>,
        store: Store<HostState>,
        bindings: PluginBindings,
        quota: Quota,
        calls: u32,
    ) -> Self {
        Self {
            plugin,
            store,
            bindings,
            quota,
            calls,
            last_used: Instant::now(),
        }
    }
}

/// The pool of warm instances of one runtime.
pub(crate) struct WarmPool {
    cap: usize,
    idle: Duration,
    inner: Mutex<Inner>,
}

struct Inner {
    by_key: HashMap<WarmKey, Vec<Warm>>,
    count: usize,
    last_sweep: Instant,
}

impl Default for Inner {
    fn default() -> Self {
        Self {
            by_key: HashMap::new(),
            count: 0,
            last_sweep: Instant::now(),
        }
    }
}

impl WarmPool {
    pub(crate) fn new(cap: usize, idle: Duration) -> Self {
        Self {
            cap,
            idle,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the pool keeps anything at all.
    pub(crate) fn enabled(&self) -> bool {
        self.cap > 0
    }

    /// Instances held now.
    pub(crate) fn len(&self) -> usize {
        self.lock().count
    }

    /// Takes the most recently used instance for `key`, `plugin` and `quota`.
    pub(crate) fn take(&self, key: &WarmKey, plugin: &str, quota: &Quota) -> Option<Warm> {
        if !self.enabled() {
            return None;
        }
        let mut dropped = Vec::new();
        let found = {
            let mut inner = self.lock();
            let mut found = None;
            if let Some(list) = inner.by_key.get_mut(key) {
                while let Some(warm) = list.pop() {
                    // Another plugin (activated since) or quota: never this call's.
                    if &*warm.plugin == plugin
                        && warm.quota == *quota
                        && warm.last_used.elapsed() < self.idle
                    {
                        found = Some(warm);
                        break;
                    }
                    dropped.push(warm);
                }
                if list.is_empty() {
                    inner.by_key.remove(key);
                }
            }
            inner.count -= dropped.len() + usize::from(found.is_some());
            found
        };
        // Dropping a store returns its slot to the allocator: outside the lock.
        drop(dropped);
        found
    }

    /// Keeps `warm` for the next call with `key` and `plugin`, dropping the
    /// least recently used instance (and any idle one) to stay within the cap.
    pub(crate) fn put(&self, key: WarmKey, mut warm: Warm) {
        if !self.enabled() {
            return;
        }
        warm.last_used = Instant::now();
        let mut dropped = Vec::new();
        {
            let mut inner = self.lock();
            let now = Instant::now();
            let full = inner.count >= self.cap;
            if full || now.duration_since(inner.last_sweep) >= self.idle {
                inner.last_sweep = now;
                evict(&mut inner, now, self.idle, &mut dropped, full);
            }
            inner.by_key.entry(key).or_default().push(warm);
            inner.count += 1;
        }
        drop(dropped);
    }

    /// Drops the instances idle longer than the pool's idle time (the runtime's
    /// ticker calls this, so idle instances go even if the pool is never used again).
    pub(crate) fn sweep(&self) {
        if !self.enabled() {
            return;
        }
        let mut dropped = Vec::new();
        {
            let mut inner = self.lock();
            if inner.count == 0 {
                return;
            }
            let now = Instant::now();
            inner.last_sweep = now;
            evict(&mut inner, now, self.idle, &mut dropped, false);
        }
        drop(dropped);
    }

    /// Drops every instance (a plugin unloaded, a runtime shutting down).
    pub(crate) fn clear(&self) {
        let all = std::mem::take(&mut *self.lock());
        drop(all);
    }
}

/// Removes idle instances and, when `make_room` and none were idle, the least
/// recently used one.
fn evict(
    inner: &mut Inner,
    now: Instant,
    idle: Duration,
    dropped: &mut Vec<Warm>,
    make_room: bool,
) {
    let before = dropped.len();
    for list in inner.by_key.values_mut() {
        let (keep, old): (Vec<_>, Vec<_>) = std::mem::take(list)
            .into_iter()
            .partition(|w| now.duration_since(w.last_used) < idle);
        *list = keep;
        dropped.extend(old);
    }
    if make_room && dropped.len() == before {
        // Each list is ordered oldest first: compare the heads.
        let oldest = inner
            .by_key
            .iter()
            .filter_map(|(k, list)| list.first().map(|w| (k.clone(), w.last_used)))
            .min_by_key(|(_, used)| *used)
            .map(|(k, _)| k);
        if let Some(k) = oldest
            && let Some(list) = inner.by_key.get_mut(&k)
        {
            dropped.push(list.remove(0));
        }
    }
    inner.by_key.retain(|_, list| !list.is_empty());
    inner.count -= dropped.len() - before;
}
