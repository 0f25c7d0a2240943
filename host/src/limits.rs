//! Per-tenant limits: a request rate (governor's GCRA; the HTTP layer answers
//! 429 with Retry-After) and a cap on concurrent plugin executions, so one
//! tenant cannot starve the others. Knows nothing of HTTP: it says how long to
//! wait and hands out slots.
//! The concurrency cap is per node (it protects this node's CPU). The rate is
//! per node in [`RateLimitMode::Local`]; in [`RateLimitMode::Global`] the nodes
//! also share it through a per-tenant counter per one-second window in the
//! database, which each node takes in blocks (see [`Limits::check_rate`] and
//! docs/deployment.md).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, Quota as RateQuota, RateLimiter};
use moka::sync::Cache;
use tokio::sync::{Mutex, Semaphore};
use tokio::time::Instant;

use crate::storage::{PlatformDb, TenantRecord};
use crate::tenancy::TenantId;

/// Where a tenant's request rate is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum RateLimitMode {
    /// On each node alone: N nodes let a tenant through at up to N times its rate.
    #[default]
    Local,
    /// On each node, and shared by all nodes through the database.
    Global,
}

/// Length of a shared counting window.
const WINDOW_MS: i64 = 1_000;
/// Longest a request waits for the shared counter before it is let through.
const GLOBAL_WAIT: Duration = Duration::from_millis(500);
/// After the shared counter failed, how long the nodes count locally only.
const FAIL_OPEN_FOR: Duration = Duration::from_secs(1);
/// Shared windows older than this are deleted (now and then).
const KEEP_WINDOWS_MS: i64 = 10_000;

/// This node's share of the tenant's current shared window.
#[derive(Debug, Default)]
struct Window {
    start_ms: i64,
    /// Requests taken from the shared counter and not yet used.
    tokens: i64,
    /// The shared counter is at the limit: refuse until the window ends.
    exhausted: bool,
}

struct TenantLimiter {
    params: (u32, u32, u32),
    rate: DefaultDirectRateLimiter,
    calls: Arc<Semaphore>,
    window: Mutex<Window>,
    /// One breaker per installation of the tenant: one plugin that keeps
    /// hitting its limits is paused without pausing the others.
    breakers: std::sync::Mutex<std::collections::HashMap<String, Breaker>>,
}

/// Consecutive runs ending at a limit (out of fuel, deadline) that pause a
/// tenant's plugin.
pub const BREAKER_THRESHOLD: u32 = 3;
/// First pause; it doubles on each trip without a success in between.
pub const BREAKER_PAUSE: std::time::Duration = std::time::Duration::from_secs(5);
/// Longest pause.
pub const BREAKER_MAX_PAUSE: std::time::Duration = std::time::Duration::from_secs(60);

/// A plugin that keeps running into its limits burns its quota of CPU on every
/// call; paused, its tenant is served the base and the node's cores go to the
/// other tenants. Per node.
#[derive(Debug, Default)]
struct Breaker {
    consecutive: u32,
    trips: u32,
    open_until: Option<std::time::Instant>,
}

/// Where the breaker reads the time: the monotonic clock in production; a
/// test hands in one it moves itself ([`Limits::with_clock`]), so a pause can
/// be seen to end without waiting for it.
pub type BreakerClock = Arc<dyn Fn() -> std::time::Instant + Send + Sync>;

/// The limiters of every tenant seen by this node.
#[derive(Clone)]
pub struct Limits {
    tenants: Cache<TenantId, Arc<TenantLimiter>>,
    mode: RateLimitMode,
    platform: PlatformDb,
    /// While set and in the future, the shared counter is not asked.
    shared_down_until: Arc<std::sync::Mutex<Option<Instant>>>,
    /// The breaker's clock.
    now: BreakerClock,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("tenants", &self.tenants.entry_count())
            .finish()
    }
}

impl Limits {
    /// No limiters yet; they are made on a tenant's first request. `platform`
    /// holds the shared counters of the global mode.
    pub fn new(mode: RateLimitMode, platform: PlatformDb) -> Self {
        Self {
            tenants: Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(3_600))
                .build(),
            mode,
            platform,
            shared_down_until: Arc::new(std::sync::Mutex::new(None)),
            now: Arc::new(std::time::Instant::now),
        }
    }

    /// The same limits with the breaker reading the time from `now` (tests).
    pub fn with_clock(mut self, now: BreakerClock) -> Self {
        self.now = now;
        self
    }

    /// Where the rate is counted.
    pub fn mode(&self) -> RateLimitMode {
        self.mode
    }

    fn limiter(&self, tenant: &TenantRecord) -> Arc<TenantLimiter> {
        let params = (
            tenant.rate_limit_per_sec.max(1),
            tenant.rate_limit_burst.max(1),
            tenant.max_concurrency.max(1),
        );
        if let Some(existing) = self.tenants.get(&tenant.id)
            && existing.params == params
        {
            return existing;
        }
        let per_sec = NonZeroU32::new(params.0).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(params.1).unwrap_or(NonZeroU32::MIN);
        let limiter = Arc::new(TenantLimiter {
            params,
            rate: RateLimiter::direct(RateQuota::per_second(per_sec).allow_burst(burst)),
            calls: Arc::new(Semaphore::new(params.2 as usize)),
            window: Mutex::new(Window::default()),
            breakers: std::sync::Mutex::new(std::collections::HashMap::new()),
        });
        self.tenants.insert(tenant.id.clone(), limiter.clone());
        limiter
    }

    /// Takes one request from the tenant's rate; `Err` holds how long to wait.
    ///
    /// Always charged to this node's GCRA limiter (rate and burst). In global
    /// mode also to the shared counter of the current one-second window, whose
    /// limit is the tenant's rate per second: the node takes
    /// [`block_size`] requests at a time with one upsert and spends them
    /// locally, so the database sees about 16 writes per second per busy
    /// tenant and node, not one per request. A node may hold up to a block it
    /// does not use, so the nodes together admit between `rate - N × block`
    /// and `rate` requests per window. If the counter cannot be reached within
    /// [`GLOBAL_WAIT`], requests are let through on the local limit alone for
    /// [`FAIL_OPEN_FOR`]: a database outage must not turn into 429s.
    pub async fn check_rate(&self, tenant: &TenantRecord) -> Result<(), Duration> {
        let limiter = self.limiter(tenant);
        limiter
            .rate
            .check()
            // The limiter's own clock: `DefaultClock::default()` builds a quanta
            // clock, which runs CPUID — a VM exit costing tens of µs — on every
            // refused request (it made a 429 cost twice a plugin quote).
            .map_err(|not_until| not_until.wait_time_from(limiter.rate.clock().now()))?;
        if self.mode == RateLimitMode::Local {
            return Ok(());
        }
        let now_ms = unix_ms();
        let start = now_ms - now_ms.rem_euclid(WINDOW_MS);
        let until_next =
            Duration::from_millis(u64::try_from(start + WINDOW_MS - now_ms).unwrap_or(0));
        let mut window = limiter.window.lock().await;
        if window.start_ms != start {
            *window = Window {
                start_ms: start,
                ..Window::default()
            };
            if (start / WINDOW_MS) % 60 == 0 {
                self.prune(&tenant.id, start - KEEP_WINDOWS_MS);
            }
        }
        if window.tokens > 0 {
            window.tokens -= 1;
            return Ok(());
        }
        if window.exhausted {
            return Err(until_next);
        }
        if self.shared_down() {
            return Ok(());
        }
        let limit = i64::from(tenant.rate_limit_per_sec.max(1));
        let block = block_size(tenant.rate_limit_per_sec);
        let taken = tokio::time::timeout(
            GLOBAL_WAIT,
            self.platform.take_rate(&tenant.id, start, block),
        )
        .await;
        match taken {
            Ok(Ok((before, _after))) => {
                let granted = (limit - before).clamp(0, block);
                if granted == 0 {
                    window.exhausted = true;
                    Err(until_next)
                } else {
                    window.tokens = granted - 1;
                    Ok(())
                }
            }
            Ok(Err(err)) => {
                self.fail_open(&err.to_string());
                Ok(())
            }
            Err(_) => {
                self.fail_open("no answer in time");
                Ok(())
            }
        }
    }

    fn shared_down(&self) -> bool {
        let mut down = self
            .shared_down_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match *down {
            Some(until) if until > Instant::now() => true,
            Some(_) => {
                *down = None;
                false
            }
            None => false,
        }
    }

    fn fail_open(&self, why: &str) {
        let mut down = self
            .shared_down_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if down.is_none() {
            tracing::warn!(
                error = why,
                "the shared rate counter is unreachable; limiting on this node only for now"
            );
        }
        *down = Some(Instant::now() + FAIL_OPEN_FOR);
    }

    fn prune(&self, tenant: &TenantId, before_ms: i64) {
        let (platform, tenant) = (self.platform.clone(), tenant.clone());
        tokio::spawn(async move {
            if let Err(err) = platform.prune_rate_windows(&tenant, before_ms).await {
                tracing::debug!(%tenant, %err, "could not prune old rate windows");
            }
        });
    }

    /// How much longer the plugin of the tenant's `installation` stays
    /// paused, if it is.
    pub fn plugin_paused(
        &self,
        tenant: &TenantRecord,
        installation: &str,
    ) -> Option<std::time::Duration> {
        let limiter = self.limiter(tenant);
        let breakers = limiter.breakers.lock().unwrap_or_else(|p| p.into_inner());
        breakers
            .get(installation)?
            .open_until
            .and_then(|until| until.checked_duration_since((self.now)()))
            .filter(|left| !left.is_zero())
    }

    /// Feeds one plugin run's outcome to the tenant's breaker: repeated runs
    /// into the fuel or time limit pause the plugin; any other ending resets it.
    /// True when this run paused the plugin.
    pub fn record_outcome(
        &self,
        tenant: &TenantRecord,
        installation: &str,
        outcome: crate::runtime::OutcomeKind,
    ) -> bool {
        use crate::runtime::OutcomeKind;
        let limiter = self.limiter(tenant);
        let mut breakers = limiter.breakers.lock().unwrap_or_else(|p| p.into_inner());
        if !breakers.contains_key(installation) {
            if matches!(outcome, OutcomeKind::OutOfFuel | OutcomeKind::Deadline) {
                // Bounded: a tenant has at most MAX_INSTALLATIONS at a time;
                // names of deleted ones go once their breaker is closed.
                if breakers.len() >= 2 * crate::storage::MAX_INSTALLATIONS {
                    let now = (self.now)();
                    breakers.retain(|_, b| b.open_until.is_some_and(|until| until > now));
                }
                breakers.insert(installation.to_owned(), Breaker::default());
            } else {
                return false;
            }
        }
        let Some(breaker) = breakers.get_mut(installation) else {
            return false;
        };
        match outcome {
            OutcomeKind::OutOfFuel | OutcomeKind::Deadline => {
                breaker.consecutive += 1;
                if breaker.consecutive >= BREAKER_THRESHOLD {
                    let pause = BREAKER_PAUSE
                        .saturating_mul(1 << breaker.trips.min(4))
                        .min(BREAKER_MAX_PAUSE);
                    breaker.open_until = Some((self.now)() + pause);
                    breaker.trips += 1;
                    breaker.consecutive = 0;
                    tracing::warn!(tenant = %tenant.id, installation, pause_secs = pause.as_secs(), "pausing a plugin that keeps hitting its limits");
                    return true;
                }
                false
            }
            _ => {
                breaker.consecutive = 0;
                breaker.trips = 0;
                false
            }
        }
    }

    /// The semaphore bounding the tenant's concurrent plugin executions.
    pub fn calls(&self, tenant: &TenantRecord) -> Arc<Semaphore> {
        self.limiter(tenant).calls.clone()
    }
}

/// Requests a node takes from the shared counter at once: a sixteenth of the
/// rate, between 1 and 50.
pub fn block_size(rate_per_sec: u32) -> i64 {
    i64::from(rate_per_sec / 16).clamp(1, 50)
}

fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    //! The per-tenant breaker, on an injected clock: it opens after
    //! [`BREAKER_THRESHOLD`] runs in a row at a limit, stays open for its
    //! pause, doubles the pause on each trip up to [`BREAKER_MAX_PAUSE`],
    //! resets on any other ending, and never touches another tenant.

    use super::*;
    use crate::runtime::OutcomeKind;
    use crate::storage::{Storage, StorageOptions, TenantStatus};
    use crate::test_support::{Db, ManualClock, TestDb};

    fn tenant(id: &str) -> TenantRecord {
        TenantRecord {
            id: TenantId::new(id).expect("tenant id"),
            org_id: format!("org_{id}"),
            name: id.into(),
            status: TenantStatus::Active,
            rate_limit_per_sec: 50,
            rate_limit_burst: 100,
            max_concurrency: 4,
            created_at: 0,
            updated_at: 0,
            deleted_at: None,
            purge_after: None,
        }
    }

    async fn limits(clock: &ManualClock) -> (Limits, Storage, TestDb) {
        let db = TestDb::new(Db::Sqlite).await;
        let storage = Storage::connect(&db.url, &StorageOptions::default())
            .await
            .expect("storage");
        let limits =
            Limits::new(RateLimitMode::Local, storage.platform()).with_clock(clock.as_clock());
        (limits, storage, db)
    }

    fn trip(limits: &Limits, tenant: &TenantRecord, outcome: OutcomeKind) {
        for _ in 0..BREAKER_THRESHOLD {
            limits.record_outcome(tenant, "main", outcome);
        }
    }

    #[tokio::test]
    async fn runs_at_a_limit_pause_the_plugin_until_the_pause_ends() {
        let clock = ManualClock::new();
        let (limits, _storage, _db) = limits(&clock).await;
        let acme = tenant("acme");
        for _ in 1..BREAKER_THRESHOLD {
            assert!(!limits.record_outcome(&acme, "main", OutcomeKind::OutOfFuel));
        }
        assert_eq!(
            limits.plugin_paused(&acme, "main"),
            None,
            "one short of the threshold"
        );
        assert!(
            limits.record_outcome(&acme, "main", OutcomeKind::Deadline),
            "this run paused it (the metrics count the pause)"
        );
        assert_eq!(limits.plugin_paused(&acme, "main"), Some(BREAKER_PAUSE));

        clock.advance(BREAKER_PAUSE - Duration::from_millis(1));
        assert_eq!(
            limits.plugin_paused(&acme, "main"),
            Some(Duration::from_millis(1))
        );
        clock.advance(Duration::from_millis(1));
        assert_eq!(
            limits.plugin_paused(&acme, "main"),
            None,
            "the pause is over"
        );
    }

    #[tokio::test]
    async fn each_trip_without_a_success_doubles_the_pause_up_to_the_cap() {
        let clock = ManualClock::new();
        let (limits, _storage, _db) = limits(&clock).await;
        let acme = tenant("acme");
        let mut expected = BREAKER_PAUSE;
        for _ in 0..8 {
            trip(&limits, &acme, OutcomeKind::OutOfFuel);
            assert_eq!(limits.plugin_paused(&acme, "main"), Some(expected));
            clock.advance(expected);
            assert_eq!(limits.plugin_paused(&acme, "main"), None);
            expected = (expected * 2).min(BREAKER_MAX_PAUSE);
        }
        assert_eq!(expected, BREAKER_MAX_PAUSE);

        // A success resets the count and the doubling.
        limits.record_outcome(&acme, "main", OutcomeKind::Ok);
        trip(&limits, &acme, OutcomeKind::OutOfFuel);
        assert_eq!(limits.plugin_paused(&acme, "main"), Some(BREAKER_PAUSE));
    }

    #[tokio::test]
    async fn only_fuel_and_deadline_count_and_anything_else_resets() {
        let clock = ManualClock::new();
        let (limits, _storage, _db) = limits(&clock).await;
        let acme = tenant("acme");
        for other in [
            OutcomeKind::Ok,
            OutcomeKind::PluginError,
            OutcomeKind::OutOfMemory,
            OutcomeKind::Trap,
            OutcomeKind::InvalidOutput,
            OutcomeKind::Rejected,
        ] {
            for _ in 1..BREAKER_THRESHOLD {
                limits.record_outcome(&acme, "main", OutcomeKind::Deadline);
            }
            limits.record_outcome(&acme, "main", other);
            limits.record_outcome(&acme, "main", OutcomeKind::Deadline);
            assert_eq!(
                limits.plugin_paused(&acme, "main"),
                None,
                "{other} resets the count"
            );
            limits.record_outcome(&acme, "main", OutcomeKind::Ok);
        }
    }

    #[tokio::test]
    async fn one_tenants_breaker_leaves_the_others_alone() {
        let clock = ManualClock::new();
        let (limits, _storage, _db) = limits(&clock).await;
        let (acme, globex) = (tenant("acme"), tenant("globex"));
        trip(&limits, &acme, OutcomeKind::OutOfFuel);
        assert!(limits.plugin_paused(&acme, "main").is_some());
        assert_eq!(limits.plugin_paused(&globex, "main"), None);
        limits.record_outcome(&globex, "main", OutcomeKind::Ok);
        assert!(
            limits.plugin_paused(&acme, "main").is_some(),
            "globex's success is its own"
        );
    }

    #[tokio::test]
    async fn one_installations_breaker_leaves_the_tenants_others_alone() {
        let clock = ManualClock::new();
        let (limits, _storage, _db) = limits(&clock).await;
        let acme = tenant("acme");
        for _ in 0..BREAKER_THRESHOLD {
            limits.record_outcome(&acme, "runaway", OutcomeKind::OutOfFuel);
        }
        assert!(limits.plugin_paused(&acme, "runaway").is_some());
        assert_eq!(limits.plugin_paused(&acme, "commission"), None);
        limits.record_outcome(&acme, "commission", OutcomeKind::Ok);
        assert!(limits.plugin_paused(&acme, "runaway").is_some());
        // Many names come and go: the map stays bounded.
        for n in 0..1_000 {
            limits.record_outcome(&acme, &format!("i{n}"), OutcomeKind::Deadline);
        }
        let held = limits.limiter(&acme).breakers.lock().unwrap().len();
        assert!(held <= 2 * crate::storage::MAX_INSTALLATIONS + 1, "{held}");
    }
}
