//! The Admin GraphQL client. Shopify rate-limits GraphQL by query cost with a
//! leaky bucket per app and shop: each answer reports, under
//! `extensions.cost`, what the query cost and how full the bucket is
//! (`throttleStatus`: `maximumAvailable`, `currentlyAvailable`, `restoreRate`
//! points per second). The client keeps the last report and, before a query,
//! estimates how many points have been restored since; if fewer than the
//! query is expected to cost (what the same query cost last time), it waits
//! first instead of being throttled. It reserves the expected cost in its
//! estimate, so tasks sharing a client queue behind each other.
//!
//! When Shopify answers `THROTTLED` anyway, the client waits
//! `(requested - available) / restoreRate` seconds (capped) and retries; HTTP
//! 429 waits `Retry-After`; 5xx and network failures back off exponentially
//! with jitter; all within a bounded number of attempts. 401/403 are never
//! retried: the token is wrong or revoked, and retrying cannot fix it.

use std::collections::HashMap;
use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use reqwest::StatusCode;
use serde_json::Value;
use zeroize::Zeroizing;

use super::ShopifyError;

/// Retry and waiting limits. The defaults suit production; tests shrink them.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// First backoff after a 5xx or network failure; doubles each time.
    pub base_backoff: Duration,
    /// Longest backoff, and longest `Retry-After` honoured.
    pub max_backoff: Duration,
    /// Longest single wait for the cost bucket to refill.
    pub max_throttle_wait: Duration,
    /// Expected cost of a query never run before (Shopify's typical small query).
    pub default_query_cost: f64,
    /// Time limit on one HTTP request.
    pub request_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 6,
            base_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_throttle_wait: Duration::from_secs(60),
            default_query_cost: 50.0,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// The cost bucket as Shopify last reported it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottleStatus {
    pub maximum_available: f64,
    pub currently_available: f64,
    /// Points restored per second.
    pub restore_rate: f64,
}

/// `extensions.cost` of one answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueryCost {
    pub requested: f64,
    /// Absent when the query was throttled (it did not run).
    pub actual: Option<f64>,
    pub throttle: ThrottleStatus,
}

#[derive(Default)]
struct BucketState {
    /// The last report, when it was received, and what has been reserved
    /// against it since by queries in flight.
    last: Option<(ThrottleStatus, Instant)>,
    last_cost: Option<QueryCost>,
    /// Requested cost of each query text seen, by hash.
    costs: HashMap<u64, f64>,
}

impl BucketState {
    /// Points available now by the leaky-bucket model.
    fn estimate(&self, now: Instant) -> Option<(f64, ThrottleStatus)> {
        let (status, at) = self.last?;
        let restored = status.restore_rate * now.saturating_duration_since(at).as_secs_f64();
        Some((
            (status.currently_available + restored).min(status.maximum_available),
            status,
        ))
    }

    /// How long to wait before spending `cost`, and reserves it.
    fn reserve(&mut self, cost: f64, now: Instant) -> Duration {
        let Some((available, status)) = self.estimate(now) else {
            return Duration::ZERO;
        };
        let wait = refill_time(
            cost.min(status.maximum_available) - available,
            status.restore_rate,
        );
        self.last = Some((
            ThrottleStatus {
                currently_available: available - cost,
                ..status
            },
            now,
        ));
        wait
    }
}

/// Time to restore `missing` points at `rate` per second, rounded up to the
/// millisecond so the bucket is really there when we come back.
fn refill_time(missing: f64, rate: f64) -> Duration {
    if missing <= 0.0 || rate <= 0.0 || !missing.is_finite() {
        return Duration::ZERO;
    }
    let millis = (missing / rate * 1000.0).ceil() + 1.0;
    Duration::from_millis(millis.min(u64::MAX as f64) as u64)
}

/// A client for one shop's Admin GraphQL API. Cheap to clone; clones share the
/// throttle state, so keep one per shop.
#[derive(Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    shop_domain: String,
    api_version: String,
    endpoint: String,
    access_token: Arc<Zeroizing<String>>,
    policy: RetryPolicy,
    state: Arc<Mutex<BucketState>>,
}

impl fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminClient")
            .field("endpoint", &self.endpoint)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl AdminClient {
    /// A client for `https://{shop_domain}/admin/api/{api_version}/graphql.json`.
    /// The shop must be a `<name>.myshopify.com` domain (nothing else is
    /// called with a tenant's token) and the version `YYYY-MM` or `unstable`.
    pub fn new(
        http: reqwest::Client,
        shop_domain: &str,
        access_token: &str,
        api_version: &str,
    ) -> Result<AdminClient, ShopifyError> {
        let shop_domain = shop_domain.trim().to_ascii_lowercase();
        let name_ok = shop_domain
            .strip_suffix(".myshopify.com")
            .is_some_and(|name| {
                !name.is_empty()
                    && name.len() <= 63
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            });
        if !name_ok {
            return Err(ShopifyError::InvalidConfig(format!(
                "`{}` is not a `<name>.myshopify.com` shop domain",
                shop_domain.chars().take(80).collect::<String>()
            )));
        }
        let b = api_version.as_bytes();
        let version_ok = api_version == "unstable"
            || (b.len() == 7
                && b[4] == b'-'
                && b[..4].iter().chain(&b[5..]).all(u8::is_ascii_digit));
        if !version_ok {
            return Err(ShopifyError::InvalidConfig(format!(
                "`{}` is not an API version: use `YYYY-MM`, e.g. `2025-07`",
                api_version.chars().take(40).collect::<String>()
            )));
        }
        if access_token.is_empty()
            || !access_token.bytes().all(|b| b.is_ascii_graphic())
            || access_token.len() > 1024
        {
            return Err(ShopifyError::InvalidConfig(
                "the access token must be non-empty visible ASCII: paste the Admin API access \
                 token (shpat_...) as Shopify shows it"
                    .into(),
            ));
        }
        Ok(AdminClient {
            endpoint: endpoint(&format!("https://{shop_domain}"), api_version),
            http,
            shop_domain,
            api_version: api_version.to_owned(),
            access_token: Arc::new(Zeroizing::new(access_token.to_owned())),
            policy: RetryPolicy::default(),
            state: Arc::default(),
        })
    }

    /// Sends requests to `base_url` (scheme, host, port) instead of the shop:
    /// for tests against a fake Shopify.
    pub fn with_base_url(mut self, base_url: &str) -> AdminClient {
        self.endpoint = endpoint(base_url.trim_end_matches('/'), &self.api_version);
        self
    }

    /// Replaces the retry and waiting limits.
    pub fn with_retry_policy(mut self, policy: RetryPolicy) -> AdminClient {
        self.policy = policy;
        self
    }

    /// The URL queries are POSTed to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The shop this client calls, `<name>.myshopify.com`, lower case.
    pub fn shop_domain(&self) -> &str {
        &self.shop_domain
    }

    /// The cost report of the last answer, if any.
    pub fn last_cost(&self) -> Option<QueryCost> {
        self.lock().last_cost
    }

    /// Runs a GraphQL query or mutation and returns its `data`. Mutations'
    /// `userErrors` are part of `data`: the caller reads them.
    pub async fn graphql(&self, query: &str, variables: Value) -> Result<Value, ShopifyError> {
        let key = query_key(query);
        let body = serde_json::json!({ "query": query, "variables": variables });
        let mut last_error = None;
        for attempt in 1..=self.policy.max_attempts.max(1) {
            let expected = {
                let state = self.lock();
                state
                    .costs
                    .get(&key)
                    .copied()
                    .unwrap_or(self.policy.default_query_cost)
            };
            let wait = self.lock().reserve(expected, Instant::now());
            if !wait.is_zero() {
                let wait = wait.min(self.policy.max_throttle_wait);
                tracing::debug!(shop = %self.shop_domain, ?wait, expected, "waiting for the Shopify cost bucket");
                tokio::time::sleep(wait).await;
            }

            let response = self
                .http
                .post(&self.endpoint)
                .header("X-Shopify-Access-Token", self.access_token.as_str())
                .header(reqwest::header::ACCEPT, "application/json")
                .timeout(self.policy.request_timeout)
                .json(&body)
                .send()
                .await;
            let response = match response {
                Ok(response) => response,
                Err(e) => {
                    let error = ShopifyError::Transport(transport_message(e));
                    if attempt < self.policy.max_attempts {
                        self.sleep_backoff(attempt, None, &error).await;
                    }
                    last_error = Some(error);
                    continue;
                }
            };
            let status = response.status();
            if !status.is_success() {
                let retry_after = retry_after(response.headers());
                let text = response.text().await.unwrap_or_default();
                let error = self.http_error(status, &text);
                if !(status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()) {
                    return Err(error);
                }
                if attempt < self.policy.max_attempts {
                    self.sleep_backoff(attempt, retry_after, &error).await;
                }
                last_error = Some(error);
                continue;
            }
            let answer: Value = match response.json().await {
                Ok(answer) => answer,
                Err(e) => {
                    return Err(ShopifyError::InvalidResponse(format!(
                        "the body is not JSON ({e})"
                    )));
                }
            };
            let cost = parse_cost(&answer);
            if let Some(cost) = cost {
                let mut state = self.lock();
                state.last = Some((cost.throttle, Instant::now()));
                state.last_cost = Some(cost);
                state.costs.insert(key, cost.requested);
            }
            let Some(errors) = answer.get("errors") else {
                return Ok(answer.get("data").cloned().unwrap_or(Value::Null));
            };
            let codes = error_codes(errors);
            if codes.iter().any(|c| c == "MAX_COST_EXCEEDED")
                || cost.is_some_and(|c| c.requested > c.throttle.maximum_available)
            {
                return Err(ShopifyError::CostExceedsBucket {
                    requested: cost.map_or(0.0, |c| c.requested),
                    maximum: cost.map_or(0.0, |c| c.throttle.maximum_available),
                });
            }
            if codes.iter().any(|c| c == "THROTTLED") {
                let error = ShopifyError::Throttled(match cost {
                    Some(c) => format!(
                        "{} points needed, {} available, {} restored per second",
                        c.requested, c.throttle.currently_available, c.throttle.restore_rate
                    ),
                    None => "no cost reported".into(),
                });
                if attempt < self.policy.max_attempts {
                    match cost {
                        Some(c) => {
                            let wait = refill_time(
                                c.requested - c.throttle.currently_available,
                                c.throttle.restore_rate,
                            )
                            .min(self.policy.max_throttle_wait);
                            tracing::debug!(shop = %self.shop_domain, ?wait, "throttled by Shopify");
                            tokio::time::sleep(wait).await;
                        }
                        None => self.sleep_backoff(attempt, None, &error).await,
                    }
                }
                last_error = Some(error);
                continue;
            }
            return Err(ShopifyError::GraphQl {
                messages: error_messages(errors),
            });
        }
        Err(ShopifyError::GaveUp {
            attempts: self.policy.max_attempts.max(1),
            last: Box::new(
                last_error.unwrap_or_else(|| ShopifyError::Transport("no attempt was made".into())),
            ),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BucketState> {
        // The state is a cache of Shopify's reports: a panic elsewhere cannot
        // leave it inconsistent in a way that matters.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn sleep_backoff(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        error: &ShopifyError,
    ) {
        let wait = match retry_after {
            Some(wait) => wait.min(self.policy.max_backoff),
            None => {
                let exp = self
                    .policy
                    .base_backoff
                    .saturating_mul(1u32 << (attempt - 1).min(16))
                    .min(self.policy.max_backoff);
                let jitter = rand::rng().random_range(0.0..=0.5) * exp.as_secs_f64();
                exp + Duration::from_secs_f64(jitter)
            }
        };
        tracing::debug!(shop = %self.shop_domain, attempt, ?wait, %error, "retrying a Shopify call");
        tokio::time::sleep(wait).await;
    }

    fn http_error(&self, status: StatusCode, body: &str) -> ShopifyError {
        let shop = self.shop_domain.clone();
        match status.as_u16() {
            401 => ShopifyError::Unauthorized {
                shop,
                status: 401,
                hint: "the access token is wrong or was revoked (the app may have been \
                       uninstalled); reconnect the store with a current Admin API access token",
                message: excerpt(body),
            },
            403 => ShopifyError::Unauthorized {
                shop,
                status: 403,
                hint: "the token lacks an access scope this call needs; grant the scope to the \
                       app in Shopify and reconnect the store",
                message: excerpt(body),
            },
            402 => ShopifyError::ShopUnavailable {
                shop,
                status: 402,
                reason: "the shop is frozen for an unpaid bill",
            },
            423 => ShopifyError::ShopUnavailable {
                shop,
                status: 423,
                reason: "the shop is locked",
            },
            404 => ShopifyError::NotFound {
                shop,
                version: self.api_version.clone(),
            },
            code => ShopifyError::Http {
                status: code,
                body: excerpt(body),
            },
        }
    }
}

fn endpoint(base: &str, api_version: &str) -> String {
    format!("{base}/admin/api/{api_version}/graphql.json")
}

fn query_key(query: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    query.hash(&mut hasher);
    hasher.finish()
}

/// `Retry-After` in seconds (Shopify sends decimals, e.g. `2.0`).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let text = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let seconds: f64 = text.trim().parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds.min(3600.0)))
}

fn transport_message(e: reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    // Without the URL: it is harmless here, but errors travel far.
    format!("{kind}: {}", e.without_url())
}

fn excerpt(body: &str) -> String {
    let trimmed = body.trim();
    if trimmed.chars().count() > 300 {
        format!("{}...", trimmed.chars().take(300).collect::<String>())
    } else {
        trimmed.to_owned()
    }
}

fn parse_cost(answer: &Value) -> Option<QueryCost> {
    let cost = answer.get("extensions")?.get("cost")?;
    let throttle = cost.get("throttleStatus")?;
    let num = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64);
    Some(QueryCost {
        requested: num(cost, "requestedQueryCost")?,
        actual: num(cost, "actualQueryCost"),
        throttle: ThrottleStatus {
            maximum_available: num(throttle, "maximumAvailable")?,
            currently_available: num(throttle, "currentlyAvailable")?,
            restore_rate: num(throttle, "restoreRate")?,
        },
    })
}

/// `errors[].extensions.code`; `errors` may also be a plain string.
fn error_codes(errors: &Value) -> Vec<String> {
    errors
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|e| e.get("extensions")?.get("code")?.as_str())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn error_messages(errors: &Value) -> Vec<String> {
    match errors {
        Value::Array(list) => list
            .iter()
            .map(|e| {
                e.get("message")
                    .and_then(Value::as_str)
                    .map_or_else(|| excerpt(&e.to_string()), excerpt)
            })
            .collect(),
        Value::String(message) => vec![excerpt(message)],
        other => vec![excerpt(&other.to_string())],
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn the_bucket_estimate_restores_and_reserves() {
        let mut state = BucketState::default();
        let t0 = Instant::now();
        assert_eq!(
            state.reserve(100.0, t0),
            Duration::ZERO,
            "nothing known yet"
        );
        state.last = Some((
            ThrottleStatus {
                maximum_available: 1000.0,
                currently_available: 10.0,
                restore_rate: 50.0,
            },
            t0,
        ));
        // 110 needed, 10 there: 2 s at 50/s (rounded up a millisecond).
        assert_eq!(state.reserve(110.0, t0), Duration::from_millis(2001));
        // The reservation put the estimate 100 in debt: the next waits for it too.
        assert_eq!(state.reserve(10.0, t0), Duration::from_millis(2201));
        // A second later 50 points have come back.
        let (available, _) = state.estimate(t0 + Duration::from_secs(1)).unwrap();
        assert!((available - -60.0).abs() < 1e-6, "{available}");
        // The estimate never exceeds the bucket.
        let (full, _) = state.estimate(t0 + Duration::from_secs(3600)).unwrap();
        assert_eq!(full, 1000.0);
        // A query bigger than the bucket waits for a full bucket, not forever.
        let mut state = BucketState {
            last: Some((
                ThrottleStatus {
                    maximum_available: 100.0,
                    currently_available: 100.0,
                    restore_rate: 50.0,
                },
                t0,
            )),
            ..BucketState::default()
        };
        assert_eq!(state.reserve(500.0, t0), Duration::ZERO);
    }

    #[test]
    fn cost_and_errors_are_read_from_the_answer() {
        let answer = serde_json::json!({
            "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
            "extensions": {"cost": {
                "requestedQueryCost": 12,
                "actualQueryCost": null,
                "throttleStatus": {"maximumAvailable": 2000.0, "currentlyAvailable": 3, "restoreRate": 100.0}
            }}
        });
        let cost = parse_cost(&answer).unwrap();
        assert_eq!(cost.requested, 12.0);
        assert_eq!(cost.actual, None);
        assert_eq!(cost.throttle.currently_available, 3.0);
        assert_eq!(error_codes(&answer["errors"]), ["THROTTLED"]);
        assert_eq!(error_messages(&answer["errors"]), ["Throttled"]);
        assert_eq!(
            error_messages(&serde_json::json!("[API] Invalid API key")),
            ["[API] Invalid API key"]
        );
        assert_eq!(refill_time(0.0, 100.0), Duration::ZERO);
        assert_eq!(refill_time(9.0, 0.0), Duration::ZERO);
    }

    #[test]
    fn only_shop_domains_and_versions_are_accepted() {
        let http = reqwest::Client::new();
        let ok =
            AdminClient::new(http.clone(), "Acme.myshopify.com", "shpat_x", "2025-07").unwrap();
        assert_eq!(
            ok.endpoint(),
            "https://acme.myshopify.com/admin/api/2025-07/graphql.json"
        );
        assert_eq!(
            ok.clone().with_base_url("http://127.0.0.1:9/").endpoint(),
            "http://127.0.0.1:9/admin/api/2025-07/graphql.json"
        );
        assert!(!format!("{ok:?}").contains("shpat_x"));
        for (shop, token, version) in [
            ("169.254.169.254", "shpat_x", "2025-07"),
            ("acme.example.com", "shpat_x", "2025-07"),
            ("acme.myshopify.com@evil.example", "shpat_x", "2025-07"),
            ("acme.myshopify.com", "shpat_x", "2025-07/../../x"),
            ("acme.myshopify.com", "", "2025-07"),
            ("acme.myshopify.com", "shpat x", "2025-07"),
            ("acme.myshopify.com", "shpat\r\nX-Evil: 1", "2025-07"),
        ] {
            assert!(
                matches!(
                    AdminClient::new(http.clone(), shop, token, version),
                    Err(ShopifyError::InvalidConfig(_))
                ),
                "{shop} {token} {version}"
            );
        }
    }
}
