//! What the tests share, in one copy: a fresh database per test on either
//! backend ([`TestDb`], [`both_backends!`](crate::both_backends), from
//! `veneer_storage::testing`), dev tokens,
//! polling until something holds ([`eventually`], [`wait_for`]), a fake
//! Shopify ([`fake_shopify`]), a sender of Svix-signed Clerk webhooks
//! ([`svix_sender`]), a real SMTP server on loopback
//! ([`smtp_server`]), a real DNS server on loopback ([`dns_server`]), an ACME
//! test CA ([`pebble`]), a real Prometheus scraping a server ([`prometheus`]), an
//! OpenTelemetry collector's trace endpoint ([`otlp_receiver`]), a
//! clock tests move by hand ([`ManualClock`]) and the API
//! driven in process or over TCP alike ([`api`]), every answer checked
//! against the OpenAPI document ([`contract`]).
//!
//! Compiled for the crate's own unit tests (`cfg(test)`) and, with the
//! `test-support` feature, for the integration suites (`tests/e2e`,
//! `tests/multinode`): the crate enables that feature on itself as a
//! dev-dependency, so a production build never contains this module.
//!
//! It only ever creates and drops databases of its own on the machine's
//! PostgreSQL; it never stops, restarts or reconfigures the cluster (tests that
//! need the database to go away start a private cluster of their own).

pub mod api;
pub mod browser;
pub mod contract;
pub mod dns_server;
pub mod fake_shopify;
pub mod otlp_receiver;
pub mod pebble;
pub mod prometheus;
pub mod smtp_server;
pub mod svix_sender;

use std::future::Future;
use std::time::{Duration, Instant};

use crate::auth::{OrgRole, dev_token};

/// The database part lives with the storage crate (the only one running SQL).
pub use veneer_storage::testing::{
    Db, RawSql, TestDb, ensure_postgres, postgres_admin_url, superuser,
};

/// A dev token (an hour long) of `tenant`'s organisation (`org_<tenant>`,
/// user `user_<tenant>`) with `role`.
pub fn token(tenant: &str, role: OrgRole) -> String {
    dev_token(
        &format!("org_{tenant}"),
        role,
        &format!("user_{tenant}"),
        false,
        Duration::from_secs(3600),
    )
}

/// An organisation admin's token for `tenant`.
pub fn admin(tenant: &str) -> String {
    token(tenant, OrgRole::Admin)
}

/// An organisation member's token for `tenant`.
pub fn member(tenant: &str) -> String {
    token(tenant, OrgRole::Member)
}

/// A platform admin's dev token.
pub fn platform_admin() -> String {
    dev_token(
        "",
        OrgRole::Member,
        "user_platform",
        true,
        Duration::from_secs(3600),
    )
}

/// A clock a test moves by hand: [`ManualClock::as_clock`] hands it to code
/// that takes a [`crate::limits::BreakerClock`], so a test sees a pause end without
/// sleeping through it.
#[derive(Debug, Clone)]
pub struct ManualClock {
    start: Instant,
    offset: std::sync::Arc<std::sync::Mutex<Duration>>,
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock standing at the current instant.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            offset: std::sync::Arc::default(),
        }
    }

    /// The time it shows.
    pub fn now(&self) -> Instant {
        self.start + *self.offset.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves it forward by `by`.
    pub fn advance(&self, by: Duration) {
        *self.offset.lock().unwrap_or_else(|p| p.into_inner()) += by;
    }

    /// This clock as a time source.
    pub fn as_clock(&self) -> crate::limits::BreakerClock {
        let clock = self.clone();
        std::sync::Arc::new(move || clock.now())
    }
}

/// Polls `check` every 20 ms until it returns `Some`, for up to `limit`;
/// `None` when it never did.
pub async fn eventually<T>(
    limit: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `check` until it holds, failing the test (naming `what`) after
/// `limit`.
pub async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let held = eventually(limit, async || check().await.then_some(())).await;
    assert!(
        held.is_some(),
        "timed out after {limit:?} waiting for {what}"
    );
}
