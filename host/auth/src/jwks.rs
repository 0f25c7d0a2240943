//! The JWKS source: fetching the identity provider's key set over HTTP, caching
//! it, and deciding when a refetch is allowed. It owns the only network access
//! of `auth`, and must stay cheap for the JWKS server whatever tokens arrive.
//!
//! Refetch policy:
//! - A known, fresh `kid` is answered from memory, with no lock taken.
//! - An unknown `kid` (or a cached set older than `max_age`) asks for a fetch.
//!   Fetches are serialised by one async mutex, and whoever gets the lock
//!   re-checks the cache first, so concurrent requests coalesce into one fetch.
//! - After a fetch that did not find the wanted `kid` ("fruitless"), no fetch
//!   happens for `min_interval` (60 s): a flood of made-up `kid`s costs the
//!   JWKS server at most one request a minute. A fetch that does find the kid
//!   (a key rotated in) does not start that clock, which is why a rotated key
//!   is picked up by its first token.
//! - After a failed fetch (network, status, size, JSON), none for
//!   `failure_backoff` (10 s), so a down JWKS server is not hammered either,
//!   yet a start-up race with the network heals quickly.
//! - A stale set is refreshed on use (so removed keys stop working within
//!   `max_age`); if that refresh fails, the stale key keeps working rather than
//!   turning an identity-provider blip into an outage.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::Jwk;
use tokio::sync::Mutex;

use super::error::{AuthError, AuthSetupError, shown};
use super::keys::{KeyOrigin, VerifyKey, key_from_jwk};

/// A JWKS larger than this is refused: Clerk's holds one or two keys (~1 KiB).
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Whole-request timeout: a verification waits on this at worst.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the JWKS may be fetched. See the module doc.
#[derive(Debug, Clone, Copy)]
pub(super) struct RefetchPolicy {
    pub(super) min_interval: Duration,
    pub(super) failure_backoff: Duration,
    pub(super) max_age: Duration,
}

impl Default for RefetchPolicy {
    fn default() -> Self {
        RefetchPolicy {
            min_interval: Duration::from_secs(60),
            failure_backoff: Duration::from_secs(10),
            max_age: Duration::from_secs(10 * 60),
        }
    }
}

#[derive(Default)]
struct KeySet {
    keys: HashMap<String, Arc<VerifyKey>>,
    fetched_at: Option<Instant>,
}

#[derive(Default)]
struct RefreshState {
    last_fruitless: Option<Instant>,
    last_failure: Option<Instant>,
}

enum Blocked {
    AfterFailure,
    AfterFruitless,
}

impl RefreshState {
    fn blocked(&self, now: Instant, policy: &RefetchPolicy) -> Option<Blocked> {
        let within = |at: Option<Instant>, window: Duration| {
            at.is_some_and(|at| now.saturating_duration_since(at) < window)
        };
        if within(self.last_failure, policy.failure_backoff) {
            Some(Blocked::AfterFailure)
        } else if within(self.last_fruitless, policy.min_interval) {
            Some(Blocked::AfterFruitless)
        } else {
            None
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("answered HTTP {0}")]
    Status(u16),
    #[error("answer is larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("answer is not a JWKS (`{{\"keys\": [...]}}`): {0}")]
    NotJwks(#[from] serde_json::Error),
}

#[derive(serde::Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

pub(super) struct JwksSource {
    url: reqwest::Url,
    issuer: Arc<str>,
    client: reqwest::Client,
    policy: RefetchPolicy,
    cache: RwLock<Arc<KeySet>>,
    refresh: Mutex<RefreshState>,
}

impl JwksSource {
    pub(super) fn new(
        url: &str,
        issuer: Arc<str>,
        policy: RefetchPolicy,
    ) -> Result<Self, AuthSetupError> {
        let invalid = |reason: &str| AuthSetupError::InvalidJwksUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| invalid(&e.to_string()))?;
        match parsed.scheme() {
            "https" => {}
            // Plain HTTP lets anyone on the path swap the keys, so it is only
            // for a JWKS on this machine (tests, a local mock provider).
            "http" if is_loopback(&parsed) => {}
            "http" => {
                return Err(invalid(
                    "plain http is only allowed for localhost; use the https URL",
                ));
            }
            _ => return Err(invalid("use an https URL")),
        }
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            // A redirect could leave https or the provider; the configured URL
            // must be the JWKS itself.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("veneer/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(AuthSetupError::HttpClient)?;
        Ok(JwksSource {
            url: parsed,
            issuer,
            client,
            policy,
            cache: RwLock::new(Arc::new(KeySet::default())),
            refresh: Mutex::new(RefreshState::default()),
        })
    }

    pub(super) fn url(&self) -> &str {
        self.url.as_str()
    }

    fn snapshot(&self) -> Arc<KeySet> {
        // Poisoning cannot leave a half-written set: the lock only guards an
        // `Arc` swap.
        self.cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn is_fresh(&self, set: &KeySet) -> bool {
        set.fetched_at
            .is_some_and(|at| at.elapsed() < self.policy.max_age)
    }

    pub(super) async fn key_for(&self, kid: &str) -> Result<Arc<VerifyKey>, AuthError> {
        let set = self.snapshot();
        if let Some(key) = set.keys.get(kid)
            && self.is_fresh(&set)
        {
            return Ok(key.clone());
        }

        let mut state = self.refresh.lock().await;
        // Whoever held the lock before us may just have fetched what we need.
        let set = self.snapshot();
        let cached = set.keys.get(kid).cloned();
        if let Some(key) = &cached
            && self.is_fresh(&set)
        {
            return Ok(key.clone());
        }
        let unknown = || AuthError::UnknownKey {
            kid: Some(shown(kid)),
        };
        if let Some(blocked) = state.blocked(Instant::now(), &self.policy) {
            return match (cached, blocked) {
                // A stale key beats no answer while we may not refetch.
                (Some(key), _) => Ok(key),
                // After a failure we cannot tell "rotated" from "made up".
                (None, Blocked::AfterFailure) => Err(AuthError::KeysUnavailable),
                (None, Blocked::AfterFruitless) => Err(unknown()),
            };
        }

        match self.fetch().await {
            Ok(keys) => {
                let found = keys.get(kid).cloned();
                tracing::debug!(url = %self.url, keys = keys.len(), "fetched JWKS");
                *self.cache.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(KeySet {
                    keys,
                    fetched_at: Some(Instant::now()),
                });
                state.last_failure = None;
                match found {
                    Some(key) => Ok(key),
                    None => {
                        state.last_fruitless = Some(Instant::now());
                        Err(unknown())
                    }
                }
            }
            Err(error) => {
                tracing::warn!(url = %self.url, %error, "could not fetch the JWKS");
                state.last_failure = Some(Instant::now());
                cached.ok_or(AuthError::KeysUnavailable)
            }
        }
    }

    async fn fetch(&self) -> Result<HashMap<String, Arc<VerifyKey>>, FetchError> {
        let mut response = self
            .client
            .get(self.url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|len| len > MAX_JWKS_BYTES as u64)
        {
            return Err(FetchError::TooLarge);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        let raw: RawJwks = serde_json::from_slice(&body)?;

        let mut keys = HashMap::new();
        for value in raw.keys {
            // One odd entry must not cost us the others, so each is parsed alone.
            let parsed = serde_json::from_value::<Jwk>(value)
                .map_err(|e| format!("it is not a JWK: {e}"))
                .and_then(|jwk| key_from_jwk(&jwk));
            match parsed {
                Ok((kid, key, alg)) => match keys.entry(kid) {
                    Entry::Occupied(mut twice) => {
                        // Two keys under one id: refusing both beats guessing.
                        tracing::warn!(url = %self.url, kid = %shown(twice.key()), "JWKS has a duplicate kid; ignoring it");
                        twice.insert(None);
                    }
                    Entry::Vacant(slot) => {
                        slot.insert(Some(Arc::new(VerifyKey {
                            key,
                            alg,
                            issuer: self.issuer.clone(),
                            origin: KeyOrigin::Jwks,
                        })));
                    }
                },
                Err(reason) => {
                    tracing::debug!(url = %self.url, %reason, "skipping a JWKS entry");
                }
            }
        }
        let keys: HashMap<_, _> = keys
            .into_iter()
            .filter_map(|(kid, key)| key.map(|key| (kid, key)))
            .collect();
        if keys.is_empty() {
            tracing::warn!(url = %self.url, "JWKS has no usable RS256 or ES256 signing key");
        }
        Ok(keys)
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    // IPv6 hosts come bracketed, as in `http://[::1]:8080/`.
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}
