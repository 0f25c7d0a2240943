//! A fake Shopify for tests. It serves the Admin GraphQL endpoint
//! (`POST /admin/api/{version}/graphql.json`) the way Shopify does: the
//! `X-Shopify-Access-Token` header picks the shop (an unknown token is a 401),
//! a query for `shop { … }` is always answered with that token's shop (its
//! `myshopifyDomain` is how the host proves who owns a store), every answer
//! carries `extensions.cost`, and a leaky bucket per fake
//! (`maximumAvailable` points, `restoreRate` per second) answers `THROTTLED`
//! when a query costs more than what is left. It can be told to fail the next
//! requests with any status (5xx, 429 with `Retry-After`) or answer slowly,
//! records every request (to assert which token was sent), and sends webhooks
//! signed as
//! Shopify signs them (HMAC-SHA256 of the raw body, base64).
//!
//! It also plays the OAuth side of an app install: `GET /admin/oauth/authorize`
//! answers as a merchant who approves at once (a redirect to the app's
//! `redirect_uri` with a code, the shop, the state, a timestamp and Shopify's
//! `hmac`: hex HMAC-SHA256 with the app's client secret over the other
//! parameters, sorted), and `POST /admin/oauth/access_token` exchanges a code
//! (once) for a new token that then works on the Admin API, with the granted
//! scopes. Apps are registered with [`FakeShopify::add_app`].
//!
//! Self-contained on purpose: it uses no code of the host (it only lives in
//! the crate, in [`crate::test_support`]), so a bug in the host's signing or
//! parsing cannot hide in both. The host's unit tests
//! (`host/src/shopify/tests.rs`) exercise it; the e2e suite uses the same copy.

#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// Computes a query's answer: `data` for the request.
pub type Responder = Arc<dyn Fn(&FakeRequest) -> Value + Send + Sync>;

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct FakeRequest {
    /// The `{version}` in the path.
    pub api_version: String,
    /// The `X-Shopify-Access-Token` header as sent.
    pub access_token: Option<String>,
    /// The shop the token belongs to, if it is known.
    pub shop_domain: Option<String>,
    pub query: String,
    pub variables: Value,
    pub received_at: Instant,
    pub outcome: FakeOutcome,
}

/// What the fake answered.
#[derive(Debug, Clone, PartialEq)]
pub enum FakeOutcome {
    /// Ran: `data` and the cost, `available_after` points left.
    Answered { cost: f64, available_after: f64 },
    /// `THROTTLED`: the query needed `requested`, only `available` were left.
    Throttled { requested: f64, available: f64 },
    /// `MAX_COST_EXCEEDED`: the query costs more than the whole bucket.
    CostExceeded { requested: f64 },
    /// An injected failure with this status.
    Failed(u16),
    /// 401: no token, or one no shop has.
    Unauthorized,
    /// 400: the body is not `{"query": ..., "variables": ...}`.
    BadRequest,
    /// 200 with a GraphQL error (as for a misspelt field), cost charged.
    Rejected(String),
}

struct Bucket {
    maximum: f64,
    restore_rate: f64,
    available: f64,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant) {
        let restored = self.restore_rate * now.saturating_duration_since(self.at).as_secs_f64();
        self.available = (self.available + restored).min(self.maximum);
        self.at = now;
    }
}

struct Failure {
    status: u16,
    retry_after: Option<String>,
}

/// An app the fake's merchant installs.
struct FakeApp {
    secret: String,
    shop: String,
    /// Granted instead of what is asked, when set (a merchant who unticks).
    grant: Option<String>,
}

/// A code issued and not exchanged yet.
struct Grant {
    client_id: String,
    shop: String,
    scope: String,
}

struct Inner {
    shops_by_token: HashMap<String, String>,
    apps: HashMap<String, FakeApp>,
    codes: HashMap<String, Grant>,
    /// Per shop: (id, topic, uri).
    subscriptions: HashMap<String, Vec<(String, String, String)>>,
    next_subscription: u64,
    bucket: Bucket,
    query_cost: f64,
    failures: VecDeque<Failure>,
    rejections: VecDeque<String>,
    responder: Responder,
    requests: Vec<FakeRequest>,
    delay: Duration,
}

/// The running fake. Stops when dropped.
pub struct FakeShopify {
    addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    http: reqwest::Client,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeShopify {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeShopify {
    /// Starts a fake on 127.0.0.1 (a free port) on the current tokio runtime:
    /// no shops, a 2000-point bucket restoring 100 per second (Shopify's
    /// standard plan), each query costing 10.
    pub async fn start() -> FakeShopify {
        let inner = Arc::new(Mutex::new(Inner {
            shops_by_token: HashMap::new(),
            apps: HashMap::new(),
            codes: HashMap::new(),
            subscriptions: HashMap::new(),
            next_subscription: 1,
            bucket: Bucket {
                maximum: 2000.0,
                restore_rate: 100.0,
                available: 2000.0,
                at: Instant::now(),
            },
            query_cost: 10.0,
            failures: VecDeque::new(),
            rejections: VecDeque::new(),
            responder: Arc::new(default_data),
            requests: Vec::new(),
            delay: Duration::ZERO,
        }));
        let app = Router::new()
            .route("/admin/api/{version}/graphql.json", post(graphql))
            .route("/admin/oauth/authorize", axum::routing::get(authorize))
            .route("/admin/oauth/access_token", post(access_token))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Shopify");
        let addr = listener.local_addr().expect("the fake's address");
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("fake Shopify server");
        });
        FakeShopify {
            addr,
            inner,
            http: reqwest::Client::new(),
            server,
        }
    }

    /// `http://127.0.0.1:<port>`: give it to `AdminClient::with_base_url`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Lets `access_token` call the Admin API as `shop_domain`.
    pub fn add_shop(&self, shop_domain: &str, access_token: &str) {
        self.lock()
            .shops_by_token
            .insert(access_token.to_owned(), shop_domain.to_owned());
    }

    /// Registers an app (`client_id`, `secret`) whose installs are approved by
    /// `shop`'s merchant, granting what is asked, or `grant` when given.
    pub fn add_app(&self, client_id: &str, secret: &str, shop: &str, grant: Option<&str>) {
        self.lock().apps.insert(
            client_id.to_owned(),
            FakeApp {
                secret: secret.to_owned(),
                shop: shop.to_owned(),
                grant: grant.map(str::to_owned),
            },
        );
    }

    /// Signs callback parameters as Shopify does (for tests that forge or
    /// tamper with one): hex HMAC-SHA256 with `secret` over `k=v` pairs,
    /// sorted, joined by `&`.
    pub fn sign_query(secret: &str, params: &[(&str, &str)]) -> String {
        let mut pairs: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.sort();
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
        mac.update(pairs.join("&").as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The webhook subscriptions of `shop`, as (topic, uri), oldest first.
    pub fn subscriptions(&self, shop: &str) -> Vec<(String, String)> {
        self.lock()
            .subscriptions
            .get(shop)
            .map(|subs| {
                subs.iter()
                    .map(|(_, t, u)| (t.clone(), u.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Adds a subscription to `shop` (as a merchant's other app, or an old
    /// address, would have).
    pub fn add_subscription(&self, shop: &str, topic: &str, uri: &str) {
        let mut inner = self.lock();
        let id = format!(
            "gid://shopify/WebhookSubscription/{}",
            inner.next_subscription
        );
        inner.next_subscription += 1;
        inner
            .subscriptions
            .entry(shop.to_owned())
            .or_default()
            .push((id, topic.to_owned(), uri.to_owned()));
    }

    /// Removes `shop`'s subscription to `topic` (as a merchant might).
    pub fn remove_subscription(&self, shop: &str, topic: &str) {
        if let Some(subs) = self.lock().subscriptions.get_mut(shop) {
            subs.retain(|(_, t, _)| t != topic);
        }
    }

    /// Revokes a token (as an uninstall does): it now gets 401.
    pub fn revoke_token(&self, access_token: &str) {
        self.lock().shops_by_token.remove(access_token);
    }

    /// Replaces the bucket: `maximum` points, `restore_rate` per second, full now.
    pub fn set_bucket(&self, maximum: f64, restore_rate: f64) {
        self.lock().bucket = Bucket {
            maximum,
            restore_rate,
            available: maximum,
            at: Instant::now(),
        };
    }

    /// Sets the points left in the bucket now.
    pub fn set_available(&self, available: f64) {
        let mut inner = self.lock();
        inner.bucket.available = available;
        inner.bucket.at = Instant::now();
    }

    /// What every query costs from now on.
    pub fn set_query_cost(&self, cost: f64) {
        self.lock().query_cost = cost;
    }

    /// Fails the next `times` requests with `status` (and `Retry-After`, if
    /// given), before looking at their token or body.
    pub fn fail_next(&self, times: usize, status: u16, retry_after: Option<&str>) {
        let mut inner = self.lock();
        for _ in 0..times {
            inner.failures.push_back(Failure {
                status,
                retry_after: retry_after.map(str::to_owned),
            });
        }
    }

    /// Answers the next query that gets through with a GraphQL error
    /// carrying `message` instead of data.
    pub fn reject_next_query(&self, message: &str) {
        self.lock().rejections.push_back(message.to_owned());
    }

    /// Waits `delay` before answering each request from now on (a slow
    /// Shopify, or a slow network).
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// Answers every query but the shop query with `data`.
    pub fn set_data(&self, data: Value) {
        self.lock().responder = Arc::new(move |_| data.clone());
    }

    /// Answers each query but the shop query with what `responder` computes
    /// from it.
    pub fn respond_with(&self, responder: impl Fn(&FakeRequest) -> Value + Send + Sync + 'static) {
        self.lock().responder = Arc::new(responder);
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<FakeRequest> {
        self.lock().requests.clone()
    }

    /// Forgets the requests received so far.
    pub fn clear_requests(&self) {
        self.lock().requests.clear();
    }

    /// Sends `body` to `url` as Shopify would send a `topic` webhook from
    /// `shop_domain`, signed with `secret`, with `Host: host_header` (to reach
    /// a tenant's host name on a server listening on 127.0.0.1).
    #[allow(clippy::too_many_arguments)]
    pub async fn send_webhook(
        &self,
        url: &str,
        host_header: &str,
        topic: &str,
        shop_domain: &str,
        webhook_id: &str,
        secret: &str,
        body: &Value,
    ) -> reqwest::Response {
        let body = serde_json::to_vec(body).expect("serialise the webhook body");
        self.send_raw_webhook(
            url,
            host_header,
            &FakeWebhook::new(topic, shop_domain, webhook_id, secret.as_bytes(), body),
        )
        .await
    }

    /// Sends a webhook exactly as described, e.g. with a forged signature.
    pub async fn send_raw_webhook(
        &self,
        url: &str,
        host_header: &str,
        hook: &FakeWebhook,
    ) -> reqwest::Response {
        let hmac = hook
            .hmac_override
            .clone()
            .unwrap_or_else(|| sign(&hook.secret, &hook.body));
        self.http
            .post(url)
            .header("Host", host_header)
            .header("Content-Type", "application/json")
            .header("X-Shopify-Topic", &hook.topic)
            .header("X-Shopify-Hmac-Sha256", hmac)
            .header("X-Shopify-Shop-Domain", &hook.shop_domain)
            .header("X-Shopify-Webhook-Id", &hook.webhook_id)
            .header("X-Shopify-Event-Id", format!("event-{}", hook.webhook_id))
            .header("X-Shopify-API-Version", &hook.api_version)
            .header("X-Shopify-Triggered-At", rfc3339_now())
            .body(hook.body.clone())
            .send()
            .await
            .expect("deliver the webhook")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A webhook to send, field by field.
#[derive(Debug, Clone)]
pub struct FakeWebhook {
    pub topic: String,
    pub shop_domain: String,
    pub webhook_id: String,
    pub api_version: String,
    pub secret: Vec<u8>,
    /// Sent as is: the signature covers exactly these bytes.
    pub body: Vec<u8>,
    /// Sent instead of the correct signature.
    pub hmac_override: Option<String>,
}

impl FakeWebhook {
    pub fn new(
        topic: &str,
        shop_domain: &str,
        webhook_id: &str,
        secret: &[u8],
        body: Vec<u8>,
    ) -> FakeWebhook {
        FakeWebhook {
            topic: topic.to_owned(),
            shop_domain: shop_domain.to_owned(),
            webhook_id: webhook_id.to_owned(),
            api_version: "2025-07".to_owned(),
            secret: secret.to_vec(),
            body,
            hmac_override: None,
        }
    }
}

/// Shopify's `X-Shopify-Hmac-Sha256`: base64 of HMAC-SHA256(secret, body).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(body);
    B64.encode(mac.finalize().into_bytes())
}

fn default_data(request: &FakeRequest) -> Value {
    let shop = request.shop_domain.clone().unwrap_or_default();
    json!({ "shop": { "name": shop, "myshopifyDomain": shop } })
}

/// The webhook subscription calls, answered from the shop's own list as
/// Shopify does (HTTPS addresses only, one subscription per topic and
/// address); None for any other query.
fn subscription_data(inner: &mut Inner, request: &FakeRequest) -> Option<Value> {
    let shop = request.shop_domain.clone()?;
    let query = &request.query;
    let error = |field: &str, message: &str| json!([{ "field": [field], "message": message }]);
    if query.contains("webhookSubscriptionCreate") {
        let topic = request.variables.get("topic")?.as_str()?.to_owned();
        let uri = request
            .variables
            .as_object()?
            .values()
            .find_map(|v| v.get("uri").or_else(|| v.get("callbackUrl")))?
            .as_str()?
            .to_owned();
        let subs = inner.subscriptions.entry(shop).or_default();
        let errors = if !uri.starts_with("https://") {
            error("uri", "Address protocol is not supported: use https")
        } else if subs.iter().any(|(_, t, u)| *t == topic && *u == uri) {
            error("uri", "Address for this topic has already been taken")
        } else {
            json!([])
        };
        if errors.as_array().is_some_and(Vec::is_empty) {
            let id = format!(
                "gid://shopify/WebhookSubscription/{}",
                inner.next_subscription
            );
            inner.next_subscription += 1;
            inner
                .subscriptions
                .get_mut(&request.shop_domain.clone()?)?
                .push((id.clone(), topic, uri));
            return Some(json!({ "webhookSubscriptionCreate": {
                "webhookSubscription": { "id": id }, "userErrors": [] } }));
        }
        return Some(json!({ "webhookSubscriptionCreate": {
            "webhookSubscription": null, "userErrors": errors } }));
    }
    if query.contains("webhookSubscriptionDelete") {
        let id = request.variables.get("id")?.as_str()?.to_owned();
        let subs = inner.subscriptions.entry(shop).or_default();
        let before = subs.len();
        subs.retain(|(i, _, _)| *i != id);
        return Some(if subs.len() < before {
            json!({ "webhookSubscriptionDelete": {
                "deletedWebhookSubscriptionId": id, "userErrors": [] } })
        } else {
            json!({ "webhookSubscriptionDelete": {
                "deletedWebhookSubscriptionId": null,
                "userErrors": error("id", "Webhook subscription does not exist") } })
        });
    }
    if query.contains("webhookSubscriptions") {
        let edges: Vec<Value> = inner
            .subscriptions
            .get(&shop)
            .map(|subs| {
                subs.iter()
                    .map(|(id, topic, uri)| json!({ "node": { "id": id, "topic": topic, "uri": uri } }))
                    .collect()
            })
            .unwrap_or_default();
        return Some(json!({ "webhookSubscriptions": {
            "edges": edges, "pageInfo": { "hasNextPage": false } } }));
    }
    None
}

/// Whether a query selects the `shop` object (`{ shop { … } }`), which
/// Shopify answers for the shop the token belongs to, whatever else a test
/// has the fake answer.
fn asks_for_the_shop(query: &str) -> bool {
    let compact: String = query.chars().filter(|c| !c.is_whitespace()).collect();
    compact.contains("{shop{")
}

async fn graphql(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(api_version): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let delay = inner.lock().unwrap_or_else(|e| e.into_inner()).delay;
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let now = Instant::now();
    let access_token = headers
        .get("X-Shopify-Access-Token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let parsed: Option<(String, Value)> =
        serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
            let query = v.get("query")?.as_str()?.to_owned();
            let variables = v.get("variables").cloned().unwrap_or(Value::Null);
            Some((query, variables))
        });
    let mut inner = inner.lock().unwrap_or_else(|e| e.into_inner());
    let shop_domain = access_token
        .as_ref()
        .and_then(|t| inner.shops_by_token.get(t).cloned());
    let (query, variables) = parsed.clone().unwrap_or_default();
    let mut request = FakeRequest {
        api_version,
        access_token,
        shop_domain: shop_domain.clone(),
        query,
        variables,
        received_at: now,
        outcome: FakeOutcome::BadRequest,
    };

    let (outcome, response) = if let Some(failure) = inner.failures.pop_front() {
        let status = StatusCode::from_u16(failure.status).unwrap_or(StatusCode::BAD_GATEWAY);
        let mut response =
            (status, axum::Json(json!({ "errors": "injected failure" }))).into_response();
        if let Some(value) = failure
            .retry_after
            .and_then(|v| HeaderValue::from_str(&v).ok())
        {
            response.headers_mut().insert("Retry-After", value);
        }
        (FakeOutcome::Failed(failure.status), response)
    } else if shop_domain.is_none() {
        (
            FakeOutcome::Unauthorized,
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({
                    "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"
                })),
            )
                .into_response(),
        )
    } else if parsed.is_none() {
        (
            FakeOutcome::BadRequest,
            (
                StatusCode::BAD_REQUEST,
                axum::Json(
                    json!({ "errors": { "query": "Required parameter missing or invalid" } }),
                ),
            )
                .into_response(),
        )
    } else {
        let cost = inner.query_cost;
        inner.bucket.refill(now);
        let bucket = &inner.bucket;
        let status = |available: f64| {
            json!({
                "maximumAvailable": bucket.maximum,
                "currentlyAvailable": available,
                "restoreRate": bucket.restore_rate,
            })
        };
        if cost > bucket.maximum {
            let body = json!({
                "errors": [{
                    "message": format!("Query cost is {cost}, which exceeds the single query max cost limit ({}).", bucket.maximum),
                    "extensions": { "code": "MAX_COST_EXCEEDED", "cost": cost, "maxCost": bucket.maximum }
                }],
                "extensions": { "cost": {
                    "requestedQueryCost": cost, "actualQueryCost": null,
                    "throttleStatus": status(bucket.available)
                }}
            });
            (
                FakeOutcome::CostExceeded { requested: cost },
                axum::Json(body).into_response(),
            )
        } else if bucket.available < cost {
            let available = bucket.available;
            let body = json!({
                "errors": [{
                    "message": "Throttled",
                    "extensions": { "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits" }
                }],
                "extensions": { "cost": {
                    "requestedQueryCost": cost, "actualQueryCost": null,
                    "throttleStatus": status(available)
                }}
            });
            (
                FakeOutcome::Throttled {
                    requested: cost,
                    available,
                },
                axum::Json(body).into_response(),
            )
        } else {
            let available_after = bucket.available - cost;
            let throttle = status(available_after);
            inner.bucket.available = available_after;
            let cost_extension = json!({ "cost": {
                "requestedQueryCost": cost, "actualQueryCost": cost,
                "throttleStatus": throttle
            }});
            if let Some(message) = inner.rejections.pop_front() {
                let body = json!({
                    "errors": [{
                        "message": message,
                        "locations": [{ "line": 1, "column": 3 }],
                        "extensions": { "code": "undefinedField" }
                    }],
                    "extensions": cost_extension
                });
                request.outcome = FakeOutcome::Rejected(message);
                inner.requests.push(request);
                return axum::Json(body).into_response();
            }
            let data = if asks_for_the_shop(&request.query) {
                default_data(&request)
            } else if let Some(data) = subscription_data(&mut inner, &request) {
                data
            } else {
                (inner.responder)(&request)
            };
            let body = json!({ "data": data, "extensions": cost_extension });
            (
                FakeOutcome::Answered {
                    cost,
                    available_after,
                },
                axum::Json(body).into_response(),
            )
        }
    };
    request.outcome = outcome;
    inner.requests.push(request);
    response
}

/// Now as `YYYY-MM-DDTHH:MM:SS.mmmZ`, the way Shopify stamps webhooks.
fn rfc3339_now() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1_000 % 60,
        in_day % 1_000
    )
}

/// The merchant approves at once: back to the app with a code.
async fn authorize(
    State(inner): State<Arc<Mutex<Inner>>>,
    axum::extract::Query(query): axum::extract::Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| query.get(k).cloned().unwrap_or_default();
    let (client_id, scope, redirect_uri, state) = (
        get("client_id"),
        get("scope"),
        get("redirect_uri"),
        get("state"),
    );
    let mut inner = inner.lock().unwrap_or_else(|p| p.into_inner());
    let Some(app) = inner.apps.get(&client_id) else {
        return (StatusCode::NOT_FOUND, "no such app").into_response();
    };
    let (secret, shop) = (app.secret.clone(), app.shop.clone());
    let granted = app.grant.clone().unwrap_or(scope);
    let code = format!("code-{:016x}", rand::random::<u64>());
    inner.codes.insert(
        code.clone(),
        Grant {
            client_id,
            shop: shop.clone(),
            scope: granted,
        },
    );
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .to_string();
    let host = B64.encode(format!("admin.shopify.com/store/{shop}"));
    let params = [
        ("code", code.as_str()),
        ("host", host.as_str()),
        ("shop", shop.as_str()),
        ("state", state.as_str()),
        ("timestamp", timestamp.as_str()),
    ];
    let hmac = FakeShopify::sign_query(&secret, &params);
    let mut url = match reqwest::Url::parse(&redirect_uri) {
        Ok(url) => url,
        Err(_) => return (StatusCode::BAD_REQUEST, "bad redirect_uri").into_response(),
    };
    {
        let mut pairs = url.query_pairs_mut();
        for (k, v) in params {
            pairs.append_pair(k, v);
        }
        pairs.append_pair("hmac", &hmac);
    }
    (
        StatusCode::FOUND,
        [(axum::http::header::LOCATION, url.to_string())],
    )
        .into_response()
}

/// A code (once) and the app's credentials for a new token.
async fn access_token(State(inner): State<Arc<Mutex<Inner>>>, body: Bytes) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    let field = |k: &str| {
        body.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut inner = inner.lock().unwrap_or_else(|p| p.into_inner());
    let Some(grant) = inner.codes.remove(&field("code")) else {
        return (
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_request"}).to_string(),
        )
            .into_response();
    };
    let valid = grant.client_id == field("client_id")
        && inner
            .apps
            .get(&grant.client_id)
            .is_some_and(|app| app.secret == field("client_secret"));
    if !valid {
        return (
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_client"}).to_string(),
        )
            .into_response();
    }
    let token = format!("shpua_{:032x}", rand::random::<u128>());
    inner.shops_by_token.insert(token.clone(), grant.shop);
    Json(json!({ "access_token": token, "scope": grant.scope })).into_response()
}
