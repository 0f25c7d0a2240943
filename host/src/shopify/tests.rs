//! The Admin client against the fake Shopify of `test_support` (the one the
//! end-to-end suite uses, so the fake is itself exercised here), and webhook
//! authentication and key rotation against a real SQLite storage.

use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::json;

use super::*;
use crate::secrets::SecretBox;
use crate::storage::{Storage, StorageOptions};
use crate::tenancy::TenantId;

use crate::test_support::fake_shopify::{self, FakeOutcome, FakeShopify, sign};

const SHOP: &str = "acme.myshopify.com";
const TOKEN: &str = "shpat_acme_token";

fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(200),
        max_throttle_wait: Duration::from_secs(5),
        default_query_cost: 1.0,
        request_timeout: Duration::from_secs(5),
    }
}

async fn fake() -> FakeShopify {
    let fake = FakeShopify::start().await;
    fake.add_shop(SHOP, TOKEN);
    fake
}

fn client(fake: &FakeShopify, token: &str) -> AdminClient {
    AdminClient::new(reqwest::Client::new(), SHOP, token, "2025-07")
        .unwrap()
        .with_base_url(&fake.base_url())
        .with_retry_policy(fast_policy())
}

const QUERY: &str = "{ shop { name myshopifyDomain } }";

#[tokio::test]
async fn a_query_returns_data_and_reports_its_cost() {
    let fake = fake().await;
    let client = client(&fake, TOKEN);
    let data = client.graphql(QUERY, json!({"first": 5})).await.unwrap();
    assert_eq!(
        data,
        json!({"shop": {"name": SHOP, "myshopifyDomain": SHOP}})
    );
    let cost = client.last_cost().unwrap();
    assert_eq!((cost.requested, cost.actual), (10.0, Some(10.0)));
    assert_eq!(cost.throttle.maximum_available, 2000.0);
    assert_eq!(cost.throttle.currently_available, 1990.0);

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].api_version, "2025-07");
    assert_eq!(requests[0].query, QUERY);
    assert_eq!(requests[0].variables, json!({"first": 5}));
}

#[tokio::test]
async fn only_the_given_access_token_is_sent() {
    let fake = fake().await;
    fake.add_shop("beta.myshopify.com", "shpat_beta_token");
    let acme = client(&fake, TOKEN);
    let beta = AdminClient::new(
        reqwest::Client::new(),
        "beta.myshopify.com",
        "shpat_beta_token",
        "2025-07",
    )
    .unwrap()
    .with_base_url(&fake.base_url())
    .with_retry_policy(fast_policy());
    for _ in 0..3 {
        acme.graphql(QUERY, json!({})).await.unwrap();
    }
    let data = beta.graphql(QUERY, json!({})).await.unwrap();
    assert_eq!(data["shop"]["myshopifyDomain"], "beta.myshopify.com");
    let tokens: Vec<_> = fake
        .requests()
        .into_iter()
        .map(|r| r.access_token.unwrap())
        .collect();
    assert_eq!(
        tokens,
        [TOKEN, TOKEN, TOKEN, "shpat_beta_token"],
        "each client sends its own token and nothing else"
    );
}

#[tokio::test]
async fn throttled_waits_the_computed_time_then_succeeds() {
    let fake = fake().await;
    // 10 points, 20 restored per second; each query costs 10.
    fake.set_bucket(10.0, 20.0);
    fake.set_query_cost(10.0);
    fake.set_available(0.0);
    // A fresh client knows nothing of the bucket: it is throttled first.
    let client = client(&fake, TOKEN);
    let started = Instant::now();
    client.graphql(QUERY, json!({})).await.unwrap();
    let elapsed = started.elapsed();

    let requests = fake.requests();
    let FakeOutcome::Throttled {
        requested,
        available,
    } = requests[0].outcome
    else {
        panic!(
            "expected a throttled first answer, got {:?}",
            requests[0].outcome
        );
    };
    let computed = Duration::from_secs_f64((requested - available) / 20.0);
    assert!(computed >= Duration::from_millis(400), "{computed:?}");
    assert!(
        elapsed >= computed,
        "waited {elapsed:?}, less than (requested - available) / restoreRate = {computed:?}"
    );
    assert!(elapsed < computed + Duration::from_secs(2), "{elapsed:?}");
    assert!(matches!(
        requests.last().unwrap().outcome,
        FakeOutcome::Answered { .. }
    ));
    let retry_gap = requests[1].received_at - requests[0].received_at;
    assert!(retry_gap >= computed, "retried after {retry_gap:?}");
}

#[tokio::test]
async fn a_known_cost_waits_before_sending_instead_of_being_throttled() {
    let fake = fake().await;
    fake.set_bucket(10.0, 20.0);
    fake.set_query_cost(10.0);
    let client = client(&fake, TOKEN);
    client.graphql(QUERY, json!({})).await.unwrap();
    // The bucket is empty now and the client knows this query costs 10: it
    // waits about 0.5 s on its own.
    let started = Instant::now();
    client.graphql(QUERY, json!({})).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    let outcomes: Vec<_> = fake.requests().into_iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes.len(), 2, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, FakeOutcome::Answered { .. })),
        "never throttled: {outcomes:?}"
    );
}

#[tokio::test]
async fn clients_sharing_state_queue_behind_each_other() {
    let fake = fake().await;
    fake.set_bucket(20.0, 40.0);
    fake.set_query_cost(10.0);
    let client = client(&fake, TOKEN);
    client.graphql(QUERY, json!({})).await.unwrap(); // learns the cost; 10 left
    let started = Instant::now();
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.graphql(QUERY, json!({})).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().unwrap();
    }
    // 30 points needed, 10 there, 40/s: at least 0.5 s, and no throttling.
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    let throttled = fake
        .requests()
        .iter()
        .filter(|r| matches!(r.outcome, FakeOutcome::Throttled { .. }))
        .count();
    assert_eq!(throttled, 0);
}

#[tokio::test]
async fn server_errors_and_429_are_retried_then_succeed() {
    let fake = fake().await;
    fake.fail_next(2, 503, None);
    fake.fail_next(1, 500, None);
    let client = client(&fake, TOKEN);
    client.graphql(QUERY, json!({})).await.unwrap();
    let outcomes: Vec<_> = fake.requests().into_iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes.len(), 4);
    assert_eq!(
        &outcomes[..3],
        [
            FakeOutcome::Failed(503),
            FakeOutcome::Failed(503),
            FakeOutcome::Failed(500)
        ]
    );

    fake.clear_requests();
    fake.fail_next(2, 429, Some("0.2"));
    let started = Instant::now();
    client.graphql(QUERY, json!({})).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "Retry-After is honoured: {:?}",
        started.elapsed()
    );
    assert_eq!(fake.requests().len(), 3);
}

#[tokio::test]
async fn retries_are_bounded() {
    let fake = fake().await;
    fake.fail_next(10, 502, None);
    let client = client(&fake, TOKEN);
    match client.graphql(QUERY, json!({})).await {
        Err(ShopifyError::GaveUp { attempts, last }) => {
            assert_eq!(attempts, 5);
            assert!(
                matches!(*last, ShopifyError::Http { status: 502, .. }),
                "{last}"
            );
        }
        other => panic!("expected to give up, got {other:?}"),
    }
    assert_eq!(fake.requests().len(), 5);
}

#[tokio::test]
async fn unauthorized_is_not_retried_and_says_what_to_do() {
    let fake = fake().await;
    let client = client(&fake, "shpat_revoked");
    match client.graphql(QUERY, json!({})).await {
        Err(e @ ShopifyError::Unauthorized { status: 401, .. }) => {
            let message = e.to_string();
            assert!(message.contains("reconnect the store"), "{message}");
            assert!(message.contains("Invalid API key"), "{message}");
            assert!(!message.contains("shpat_revoked"), "{message}");
        }
        other => panic!("expected unauthorized, got {other:?}"),
    }
    assert_eq!(fake.requests().len(), 1, "no retry");

    fake.clear_requests();
    fake.fail_next(1, 403, None);
    let client = self::client(&fake, TOKEN);
    assert!(matches!(
        client.graphql(QUERY, json!({})).await,
        Err(ShopifyError::Unauthorized { status: 403, .. })
    ));
    fake.fail_next(1, 402, None);
    assert!(matches!(
        client.graphql(QUERY, json!({})).await,
        Err(ShopifyError::ShopUnavailable { status: 402, .. })
    ));
    fake.fail_next(1, 404, None);
    assert!(matches!(
        client.graphql(QUERY, json!({})).await,
        Err(ShopifyError::NotFound { .. })
    ));
    assert_eq!(fake.requests().len(), 3, "none of them retried");
}

#[tokio::test]
async fn graphql_errors_and_oversized_queries_are_not_retried() {
    let fake = fake().await;
    fake.set_query_cost(5000.0);
    let client = client(&fake, TOKEN);
    match client.graphql(QUERY, json!({})).await {
        Err(e @ ShopifyError::CostExceedsBucket { .. }) => {
            assert!(e.to_string().contains("first:"), "{e}");
        }
        other => panic!("expected the cost refusal, got {other:?}"),
    }
    assert_eq!(fake.requests().len(), 1);

    fake.set_query_cost(1.0);
    fake.clear_requests();
    fake.reject_next_query("Field 'nmae' doesn't exist on type 'Shop'");
    match client.graphql("{ shop { nmae } }", json!({})).await {
        Err(e @ ShopifyError::GraphQl { .. }) => {
            assert!(e.to_string().contains("Field 'nmae' doesn't exist"), "{e}");
        }
        other => panic!("expected the GraphQL error, got {other:?}"),
    }
    assert_eq!(fake.requests().len(), 1, "not retried");

    fake.respond_with(|request| json!({ "echo": request.variables.clone() }));
    let echo = "query echo($id: ID!) { node(id: $id) { id } }";
    let data = client.graphql(echo, json!({"id": 7})).await.unwrap();
    assert_eq!(data, json!({"echo": {"id": 7}}));
    // The shop query is the token's shop's, whatever else the fake answers.
    let data = client.graphql(QUERY, json!({})).await.unwrap();
    assert_eq!(data["shop"]["myshopifyDomain"], SHOP);
}

#[tokio::test]
async fn an_unreachable_shop_is_retried_then_reported() {
    // A port nothing listens on.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let client = AdminClient::new(reqwest::Client::new(), SHOP, TOKEN, "2025-07")
        .unwrap()
        .with_base_url(&url)
        .with_retry_policy(RetryPolicy {
            max_attempts: 2,
            ..fast_policy()
        });
    match client.graphql(QUERY, json!({})).await {
        Err(ShopifyError::GaveUp { attempts: 2, last }) => {
            assert!(matches!(*last, ShopifyError::Transport(_)), "{last}");
        }
        other => panic!("expected to give up, got {other:?}"),
    }
}

// --- Webhooks and credentials over real storage --------------------------------

struct World {
    _dir: tempfile::TempDir,
    storage: Storage,
    secrets: SecretBox,
}

async fn world() -> World {
    let dir = tempfile::TempDir::new().unwrap();
    let url = format!("sqlite://{}", dir.path().join("veneer.db").display());
    let storage = Storage::connect(&url, &StorageOptions::default())
        .await
        .unwrap();
    let secrets = SecretBox::new(("k1".into(), [1; 32]), Vec::new()).unwrap();
    World {
        _dir: dir,
        storage,
        secrets,
    }
}

fn tid(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

async fn tenant_with_store(world: &World, id: &str, shop: &str, token: &str, secret: &str) {
    world
        .storage
        .platform()
        .create_tenant(&crate::storage::NewTenant {
            id: tid(id),
            org_id: format!("org_{id}"),
            name: id.into(),
            rate_limit_per_sec: 10,
            rate_limit_burst: 10,
            max_concurrency: 4,
        })
        .await
        .unwrap();
    let (token_enc, secret_enc) = seal_credentials(&world.secrets, &tid(id), token, secret);
    world
        .storage
        .tenant(&tid(id))
        .connect_shopify(shop, &token_enc, &secret_enc, "2025-07")
        .await
        .unwrap();
}

fn webhook_headers(shop: &str, hmac: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("x-shopify-topic", "orders/create"),
        ("x-shopify-hmac-sha256", hmac),
        ("x-shopify-shop-domain", shop),
        ("x-shopify-webhook-id", "wh-1"),
        ("x-shopify-api-version", "2025-07"),
        ("x-shopify-triggered-at", "2025-01-01T00:00:00Z"),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    headers
}

#[tokio::test]
async fn a_webhook_verifies_only_with_its_own_tenants_secret() {
    let world = world().await;
    tenant_with_store(&world, "acme", SHOP, TOKEN, "acme-secret").await;
    tenant_with_store(&world, "evil", "evil.myshopify.com", "t", "evil-secret").await;
    let body = br#"{"id":1,"currency":"EUR","line_items":[]}"#;

    let good = webhook_headers(SHOP, &sign(b"acme-secret", body));
    let verified = authenticate_webhook(&world.storage, &world.secrets, &good, body)
        .await
        .unwrap();
    assert_eq!(verified.tenant, tid("acme"));
    assert_eq!(verified.headers.topic, WebhookTopic::OrdersCreate);
    assert!(verified.store_enabled);

    // Evil signs with its own secret a webhook claiming to be from acme's shop.
    let forged = webhook_headers(SHOP, &sign(b"evil-secret", body));
    assert!(matches!(
        authenticate_webhook(&world.storage, &world.secrets, &forged, body).await,
        Err(WebhookError::BadSignature)
    ));
    // A tampered body.
    let tampered = br#"{"id":2,"currency":"EUR","line_items":[]}"#;
    assert!(matches!(
        authenticate_webhook(&world.storage, &world.secrets, &good, tampered).await,
        Err(WebhookError::BadSignature)
    ));
    // A shop nobody connected.
    let stranger = webhook_headers("nobody.myshopify.com", &sign(b"acme-secret", body));
    assert!(matches!(
        authenticate_webhook(&world.storage, &world.secrets, &stranger, body).await,
        Err(WebhookError::UnknownShop)
    ));
    // A missing header.
    let mut missing = good.clone();
    missing.remove("x-shopify-webhook-id");
    assert!(matches!(
        authenticate_webhook(&world.storage, &world.secrets, &missing, body).await,
        Err(WebhookError::MissingHeader("X-Shopify-Webhook-Id"))
    ));

    // Uninstalled: the secret stays, so the webhook verifies, flagged disabled.
    let acme = world.storage.tenant(&tid("acme"));
    acme.mark_shopify_uninstalled().await.unwrap();
    let after_uninstall = authenticate_webhook(&world.storage, &world.secrets, &good, body)
        .await
        .unwrap();
    assert!(!after_uninstall.store_enabled);
    // Disconnected: nothing verifies any more.
    acme.disconnect_shopify().await.unwrap();
    assert!(matches!(
        authenticate_webhook(&world.storage, &world.secrets, &good, body).await,
        Err(WebhookError::NotConnected)
    ));
}

#[tokio::test]
async fn a_secret_copied_to_another_tenants_row_does_not_open() {
    let world = world().await;
    tenant_with_store(&world, "acme", SHOP, TOKEN, "acme-secret").await;
    tenant_with_store(&world, "evil", "evil.myshopify.com", "t", "evil-secret").await;
    let acme_store = world
        .storage
        .tenant(&tid("acme"))
        .shopify_store()
        .await
        .unwrap()
        .unwrap();
    // Evil's row gets acme's ciphertexts (as a database-level attacker could).
    let evil = world.storage.tenant(&tid("evil"));
    evil.connect_shopify(
        "evil.myshopify.com",
        acme_store.access_token_enc.as_deref().unwrap(),
        acme_store.app_secret_enc.as_deref().unwrap(),
        "2025-07",
    )
    .await
    .unwrap();
    let evil_store = evil.shopify_store().await.unwrap().unwrap();
    assert!(matches!(
        open_credentials(&world.secrets, &tid("evil"), &evil_store),
        Err(ShopifyError::Credentials(
            crate::secrets::SecretsError::Decrypt(_)
        ))
    ));
    let body = b"{}";
    let headers = webhook_headers("evil.myshopify.com", &sign(b"acme-secret", body));
    assert!(matches!(
        authenticate_webhook(&world.storage, &world.secrets, &headers, body).await,
        Err(WebhookError::Credentials(_))
    ));
    // Acme's own row still opens, to a client for its shop.
    let opened = open_credentials(&world.secrets, &tid("acme"), &acme_store).unwrap();
    assert_eq!(opened.access_token.as_str(), TOKEN);
    assert!(!format!("{opened:?}").contains(TOKEN));
    let client = opened.client(reqwest::Client::new()).unwrap();
    assert!(client.endpoint().starts_with("https://acme.myshopify.com/"));
}

#[tokio::test]
async fn the_admin_client_runs_on_opened_credentials() {
    let world = world().await;
    let fake = fake().await;
    tenant_with_store(&world, "acme", SHOP, TOKEN, "s").await;
    let store = world
        .storage
        .tenant(&tid("acme"))
        .shopify_store()
        .await
        .unwrap()
        .unwrap();
    let client = open_credentials(&world.secrets, &tid("acme"), &store)
        .unwrap()
        .client(reqwest::Client::new())
        .unwrap()
        .with_base_url(&fake.base_url());
    client.graphql(QUERY, json!({})).await.unwrap();
    assert_eq!(fake.requests()[0].access_token.as_deref(), Some(TOKEN));

    world
        .storage
        .tenant(&tid("acme"))
        .mark_shopify_uninstalled()
        .await
        .unwrap();
    let store = world
        .storage
        .tenant(&tid("acme"))
        .shopify_store()
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(
        open_credentials(&world.secrets, &tid("acme"), &store),
        Err(ShopifyError::NotConnected)
    ));
}

#[tokio::test]
async fn rotation_reencrypts_every_store_under_the_new_key() {
    let mut world = world().await;
    for i in 0..3 {
        let id = format!("t{i}");
        tenant_with_store(
            &world,
            &id,
            &format!("{id}.myshopify.com"),
            &format!("tok{i}"),
            &format!("sec{i}"),
        )
        .await;
    }
    world
        .storage
        .tenant(&tid("t1"))
        .disconnect_shopify()
        .await
        .unwrap();
    world
        .storage
        .tenant(&tid("t2"))
        .mark_shopify_uninstalled()
        .await
        .unwrap();

    world.secrets = SecretBox::new(("k2".into(), [2; 32]), vec![("k1".into(), [1; 32])]).unwrap();
    let platform = world.storage.platform();
    let report = rotate_credentials(&platform, &world.secrets).await.unwrap();
    assert_eq!(
        (report.rotated, report.unchanged, report.raced),
        (2, 1, 0),
        "{report:?}"
    );
    assert!(report.failed.is_empty());

    // Everything is under k2 and opens without k1.
    let only_new = SecretBox::new(("k2".into(), [2; 32]), Vec::new()).unwrap();
    for creds in platform
        .shopify_stores_for_rotation(None, 10)
        .await
        .unwrap()
    {
        for value in [&creds.access_token_enc, &creds.app_secret_enc]
            .into_iter()
            .flatten()
        {
            assert!(value.starts_with("v1:k2:"), "{value}");
        }
    }
    let t0 = world
        .storage
        .tenant(&tid("t0"))
        .shopify_store()
        .await
        .unwrap()
        .unwrap();
    let opened = open_credentials(&only_new, &tid("t0"), &t0).unwrap();
    assert_eq!(opened.access_token.as_str(), "tok0");
    let t2 = world
        .storage
        .tenant(&tid("t2"))
        .shopify_store()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        only_new
            .decrypt(
                t2.app_secret_enc.as_deref().unwrap(),
                &app_secret_aad(&tid("t2"))
            )
            .unwrap()
            .as_slice(),
        b"sec2"
    );

    // A second run has nothing to do.
    let again = rotate_credentials(&platform, &world.secrets).await.unwrap();
    assert_eq!((again.rotated, again.unchanged), (0, 3));

    // A value under a key nobody has is reported, not lost.
    let stray = SecretBox::new(("k9".into(), [9; 32]), Vec::new()).unwrap();
    let (token, secret) = seal_credentials(&stray, &tid("t1"), "x", "y");
    world
        .storage
        .tenant(&tid("t1"))
        .connect_shopify("t1.myshopify.com", &token, &secret, "2025-07")
        .await
        .unwrap();
    let report = rotate_credentials(&platform, &world.secrets).await.unwrap();
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, tid("t1"));
    assert!(report.failed[0].1.to_string().contains("k9"));
}

#[tokio::test]
async fn webhooks_sent_by_the_fake_authenticate_with_their_host_header() {
    use std::sync::Arc;

    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::StatusCode;

    let world = Arc::new(world().await);
    tenant_with_store(&world, "acme", SHOP, TOKEN, "acme-secret").await;
    type Seen = Arc<std::sync::Mutex<Vec<String>>>;
    let seen: Seen = Arc::default();

    // The shape of the host's route: authenticate, deduplicate, acknowledge.
    async fn receive(
        State((world, seen)): State<(Arc<World>, Seen)>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        let host = headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        seen.lock().unwrap().push(host);
        match authenticate_webhook(&world.storage, &world.secrets, &headers, &body).await {
            Ok(hook) => {
                let db = world.storage.tenant(&hook.tenant);
                match db
                    .record_shopify_webhook(&hook.headers.webhook_id, hook.headers.topic.as_str())
                    .await
                {
                    Ok(true) => StatusCode::OK,
                    Ok(false) => StatusCode::ACCEPTED,
                    Err(_) => StatusCode::SERVICE_UNAVAILABLE,
                }
            }
            Err(WebhookError::MissingHeader(_) | WebhookError::InvalidHeader { .. }) => {
                StatusCode::BAD_REQUEST
            }
            Err(_) => StatusCode::UNAUTHORIZED,
        }
    }
    let app = axum::Router::new()
        .route("/shopify/webhooks", axum::routing::post(receive))
        .with_state((world.clone(), seen.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/shopify/webhooks", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let fake = fake().await;
    let order = json!({"id": 1, "currency": "EUR", "line_items": []});
    let send = |id: &'static str, secret: &'static str| {
        let (fake, url, order) = (&fake, url.clone(), order.clone());
        async move {
            fake.send_webhook(
                &url,
                "acme.veneer.test",
                "orders/create",
                SHOP,
                id,
                secret,
                &order,
            )
            .await
            .status()
        }
    };
    assert_eq!(send("wh-1", "acme-secret").await, StatusCode::OK);
    assert_eq!(
        send("wh-1", "acme-secret").await,
        StatusCode::ACCEPTED,
        "a redelivery"
    );
    assert_eq!(send("wh-2", "wrong-secret").await, StatusCode::UNAUTHORIZED);

    let mut forged = fake_shopify::FakeWebhook::new(
        "orders/create",
        SHOP,
        "wh-3",
        b"acme-secret",
        serde_json::to_vec(&order).unwrap(),
    );
    forged.hmac_override = Some(sign(b"acme-secret", b"another body"));
    let status = fake
        .send_raw_webhook(&url, "acme.veneer.test", &forged)
        .await
        .status();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    forged.hmac_override = Some("not base64".into());
    let status = fake
        .send_raw_webhook(&url, "acme.veneer.test", &forged)
        .await
        .status();
    assert_eq!(status, StatusCode::BAD_REQUEST);

    assert!(
        seen.lock()
            .unwrap()
            .iter()
            .all(|host| host == "acme.veneer.test"),
        "{:?}",
        seen.lock().unwrap()
    );
    server.abort();
}

// --- Ownership of a store ------------------------------------------------------

#[tokio::test]
async fn ownership_is_proven_only_by_a_token_shopify_answers_for_that_shop() {
    let fake = fake().await;
    fake.add_shop("other.myshopify.com", "shpat_other_token");
    // The shop's own token: Shopify names the shop.
    prove_ownership(&client(&fake, TOKEN)).await.unwrap();
    assert_eq!(fake.requests()[0].query, SHOP_OWNER_QUERY);

    // Any other string: 401, not retried.
    fake.clear_requests();
    match prove_ownership(&client(&fake, "shpat_guessed")).await {
        Err(ShopifyError::Unauthorized { status: 401, .. }) => {}
        other => panic!("expected a 401, got {other:?}"),
    }
    assert_eq!(fake.requests().len(), 1);

    // A working token of another shop, offered for this one: refused, and the
    // message does not say which shop the token is for.
    match prove_ownership(&client(&fake, "shpat_other_token")).await {
        Err(e @ ShopifyError::ShopMismatch { .. }) => {
            let message = e.to_string();
            assert!(message.contains(SHOP), "{message}");
            assert!(!message.contains("other.myshopify.com"), "{message}");
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }

    // Shopify failing: not a proof either way, reported as such.
    fake.fail_next(10, 503, None);
    let failing = client(&fake, TOKEN).with_retry_policy(RetryPolicy {
        max_attempts: 2,
        ..fast_policy()
    });
    assert!(matches!(
        prove_ownership(&failing).await,
        Err(ShopifyError::GaveUp { attempts: 2, .. })
    ));
    // The proof's own limits are those of a request someone waits on.
    let policy = ownership_policy();
    assert!(policy.max_attempts <= 3 && policy.request_timeout <= Duration::from_secs(10));
}

#[tokio::test]
async fn a_webhook_to_a_tenants_host_is_checked_against_that_tenants_store_only() {
    let world = world().await;
    tenant_with_store(&world, "acme", SHOP, TOKEN, "acme-secret").await;
    tenant_with_store(&world, "evil", "evil.myshopify.com", "t", "evil-secret").await;
    let body = br#"{"id":1,"currency":"EUR","line_items":[]}"#;
    let (acme, evil) = (tid("acme"), tid("evil"));
    let signed_by = |secret: &[u8]| webhook_headers(SHOP, &sign(secret, body));

    let verified = authenticate_webhook_for(
        &world.storage,
        &world.secrets,
        &acme,
        &signed_by(b"acme-secret"),
        body,
    )
    .await
    .unwrap();
    assert_eq!(verified.tenant, acme);
    // Acme's shop to evil's host: evil has another shop, whatever the secret.
    for secret in [&b"acme-secret"[..], b"evil-secret"] {
        assert!(matches!(
            authenticate_webhook_for(
                &world.storage,
                &world.secrets,
                &evil,
                &signed_by(secret),
                body
            )
            .await,
            Err(WebhookError::UnknownShop)
        ));
    }

    // Acme uninstalls (its secret stays); the shop moves to evil.
    world
        .storage
        .tenant(&acme)
        .mark_shopify_uninstalled()
        .await
        .unwrap();
    let (token_enc, secret_enc) = seal_credentials(&world.secrets, &evil, "t2", "evil-secret-2");
    world
        .storage
        .tenant(&evil)
        .connect_shopify(SHOP, &token_enc, &secret_enc, "2025-07")
        .await
        .unwrap();
    // Shopify's late privacy webhook to acme still verifies, as acme's, disabled.
    let late = authenticate_webhook_for(
        &world.storage,
        &world.secrets,
        &acme,
        &signed_by(b"acme-secret"),
        body,
    )
    .await
    .unwrap();
    assert_eq!((late.tenant, late.store_enabled), (acme.clone(), false));
    // The shop's webhooks now belong to evil, with evil's new secret only.
    let now = authenticate_webhook_for(
        &world.storage,
        &world.secrets,
        &evil,
        &signed_by(b"evil-secret-2"),
        body,
    )
    .await
    .unwrap();
    assert_eq!((now.tenant, now.store_enabled), (evil.clone(), true));
    assert!(matches!(
        authenticate_webhook_for(
            &world.storage,
            &world.secrets,
            &evil,
            &signed_by(b"acme-secret"),
            body
        )
        .await,
        Err(WebhookError::BadSignature)
    ));
    let looked_up = authenticate_webhook(
        &world.storage,
        &world.secrets,
        &signed_by(b"evil-secret-2"),
        body,
    )
    .await
    .unwrap();
    assert_eq!(looked_up.tenant, evil);
}
