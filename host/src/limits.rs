//! Per-tenant limits: a request rate (governor's GCRA, 429 with Retry-After) and
//! a cap on concurrent plugin executions, so one tenant cannot starve the others.
//! Both are per node; see docs/deployment.md for running several nodes.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota as RateQuota, RateLimiter};
use moka::sync::Cache;
use tokio::sync::Semaphore;

use crate::storage::TenantRecord;
use crate::tenancy::TenantId;

struct TenantLimiter {
    params: (u32, u32, u32),
    rate: DefaultDirectRateLimiter,
    calls: Arc<Semaphore>,
}

/// The limiters of every tenant seen by this node.
#[derive(Clone)]
pub struct Limits {
    tenants: Cache<TenantId, Arc<TenantLimiter>>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("tenants", &self.tenants.entry_count())
            .finish()
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::new()
    }
}

impl Limits {
    /// No limiters yet; they are made on a tenant's first request.
    pub fn new() -> Self {
        Self {
            tenants: Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(3_600))
                .build(),
        }
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
        });
        self.tenants.insert(tenant.id.clone(), limiter.clone());
        limiter
    }

    /// Takes one request from the tenant's rate; `Err` holds how long to wait.
    pub fn check_rate(&self, tenant: &TenantRecord) -> Result<(), Duration> {
        let limiter = self.limiter(tenant);
        limiter
            .rate
            .check()
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }

    /// The semaphore bounding the tenant's concurrent plugin executions.
    pub fn calls(&self, tenant: &TenantRecord) -> Arc<Semaphore> {
        self.limiter(tenant).calls.clone()
    }
}
