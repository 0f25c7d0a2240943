//! Shopify end to end: a fake Shopify (tests/e2e/fake_shopify.rs) speaks the
//! Admin GraphQL shape with its cost throttle and sends correctly signed
//! webhooks; the production client, webhook route, queue and handlers are the
//! code under test, against SQLite and PostgreSQL.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::harness::{Db, Server, admin, member};
use crate::fake_shopify::{FakeOutcome, FakeShopify, FakeWebhook};
use veneer::both_backends;

const ACME_SHOP: &str = "acme-shop.myshopify.com";
const GLOBEX_SHOP: &str = "globex-shop.myshopify.com";
const ACME_TOKEN: &str = "shpat_acme_0123456789abcdef";
const GLOBEX_TOKEN: &str = "shpat_globex_x";
const ACME_SECRET: &str = "acme-app-secret-4f1c";
const GLOBEX_SECRET: &str = "globex-app-secret-99aa";

fn order(id: u64, lines: Value) -> Value {
    json!({ "id": id, "name": format!("#{id}"), "currency": "EUR", "line_items": lines })
}

fn line(id: u64, product_id: u64, price: &str, product_type: Option<&str>) -> Value {
    let mut line = json!({ "id": id, "product_id": product_id, "variant_id": product_id * 10, "sku": format!("SKU-{product_id}"),
                           "title": "Item", "quantity": 1, "price": price, "vendor": "consignor-1" });
    if let Some(product_type) = product_type {
        line["product_type"] = json!(product_type);
    }
    line
}

async fn jobs(server: &Server, tenant: &str) -> Vec<Value> {
    let (status, body) = server
        .get(tenant, "/v1/jobs?limit=500", &admin(tenant))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["jobs"].as_array().cloned().unwrap_or_default()
}

async fn commissions(server: &Server, tenant: &str, order_id: u64) -> Vec<Value> {
    let (status, body) = server
        .get(
            tenant,
            &format!("/v1/shopify/commissions?order_id={order_id}"),
            &member(tenant),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["commissions"].as_array().cloned().unwrap_or_default()
}

async fn shopify(db: Db) {
    let fake = FakeShopify::start().await;
    let base = fake.base_url();
    let server = Server::start_with(db, |config| {
        config.shopify_api_base = Some(base);
        config.job_backoff_ms = 20;
    })
    .await;
    fake.add_shop(ACME_SHOP, ACME_TOKEN);
    fake.add_shop(GLOBEX_SHOP, GLOBEX_TOKEN);
    for (tenant, shop, token, secret) in [
        ("acme", ACME_SHOP, ACME_TOKEN, ACME_SECRET),
        ("globex", GLOBEX_SHOP, GLOBEX_TOKEN, GLOBEX_SECRET),
    ] {
        let (status, body) = server
            .call(
                Method::PUT,
                tenant,
                "/v1/shopify",
                Some(&admin(tenant)),
                Some(json!({ "shop_domain": shop, "access_token": token, "app_secret": secret })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{tenant} connects: {body}");
    }
    let (status, body) = server
        .call(
            Method::PUT,
            "globex",
            "/v1/shopify",
            Some(&admin("globex")),
            Some(json!({ "shop_domain": ACME_SHOP, "access_token": "x", "app_secret": "y" })),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a shop is connected only with a token Shopify accepts for it: {body}"
    );
    let text = body.to_string();
    assert!(
        !text.contains("`acme`") && !text.contains("org_acme") && !text.contains("another"),
        "the refusal says nothing of the owner: {body}"
    );
    // From here on, only the jobs call Shopify.
    fake.clear_requests();
    let (status, status_body) = server.get("acme", "/v1/shopify", &member("acme")).await;
    assert_eq!(status, StatusCode::OK, "{status_body}");
    assert!(
        !status_body.to_string().contains(ACME_TOKEN)
            && !status_body.to_string().contains(ACME_SECRET)
    );

    let url = server.url("/v1/shopify/webhooks");
    let acme_host = "acme.veneer.test";
    let body = order(1001, json!([line(1, 111, "1250.00", Some("Handbags"))]));

    // Bad HMAC: 401, nothing enqueued.
    let mut forged = FakeWebhook::new(
        "orders/create",
        ACME_SHOP,
        "wh-forged",
        b"not-the-secret",
        serde_json::to_vec(&body).expect("json"),
    );
    assert_eq!(
        fake.send_raw_webhook(&url, acme_host, &forged)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    forged.secret = ACME_SECRET.as_bytes().to_vec();
    forged.hmac_override = Some("AAAA".into());
    assert_eq!(
        fake.send_raw_webhook(&url, acme_host, &forged)
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    // A's shop, correctly signed, sent to B's host: rejected; B's secret on A's shop too.
    let cross = fake
        .send_webhook(
            &url,
            "globex.veneer.test",
            "orders/create",
            ACME_SHOP,
            "wh-cross",
            ACME_SECRET,
            &body,
        )
        .await;
    assert_eq!(cross.status(), StatusCode::UNAUTHORIZED);
    let cross = fake
        .send_webhook(
            &url,
            "globex.veneer.test",
            "orders/create",
            ACME_SHOP,
            "wh-cross-2",
            GLOBEX_SECRET,
            &body,
        )
        .await;
    assert_eq!(cross.status(), StatusCode::UNAUTHORIZED);
    assert!(
        jobs(&server, "acme").await.is_empty(),
        "nothing enqueued for acme"
    );
    assert!(
        jobs(&server, "globex").await.is_empty(),
        "nothing enqueued for globex"
    );

    // A product, then an order whose second line has no product type: the type is
    // fetched through the Admin API with acme's token, under a throttle.
    let product = json!({ "id": 111, "title": "Kelly 28", "product_type": "Handbags", "tags": "" });
    let response = fake
        .send_webhook(
            &url,
            acme_host,
            "products/create",
            ACME_SHOP,
            "wh-p1",
            ACME_SECRET,
            &product,
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    server
        .eventually(20, async |s| {
            let (status, body) = s.get("acme", "/v1/shopify/products", &member("acme")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            (body["products"].as_array().map(Vec::len) == Some(1)).then_some(())
        })
        .await
        .expect("the product webhook is processed");
    fake.respond_with(|_| json!({ "product": { "productType": "Watches" } }));
    fake.set_bucket(100.0, 200.0);
    fake.set_available(0.0);
    let body = order(
        1002,
        json!([line(1, 111, "1250.00", None), line(2, 222, "8000.00", None)]),
    );
    let first = fake
        .send_webhook(
            &url,
            acme_host,
            "orders/create",
            ACME_SHOP,
            "wh-o1002",
            ACME_SECRET,
            &body,
        )
        .await;
    assert_eq!(first.status(), StatusCode::OK);
    let again = fake
        .send_webhook(
            &url,
            acme_host,
            "orders/create",
            ACME_SHOP,
            "wh-o1002",
            ACME_SECRET,
            &body,
        )
        .await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(
        again.json::<Value>().await.expect("json")["status"],
        "duplicate"
    );

    let rows = server
        .eventually(20, async |s| {
            let rows = commissions(s, "acme", 1002).await;
            (rows.len() == 2).then_some(rows)
        })
        .await
        .expect("both lines get a commission");
    assert!(
        rows.iter().all(|r| r["source"] == "plugin"),
        "computed through acme's plugin: {rows:?}"
    );
    let (status, products) = server
        .get("acme", "/v1/shopify/products", &member("acme"))
        .await;
    assert_eq!(status, StatusCode::OK, "{products}");
    let mapped: Vec<(String, Option<String>)> = products["products"]
        .as_array()
        .expect("products")
        .iter()
        .map(|p| {
            (
                p["product_id"].as_str().unwrap_or_default().to_owned(),
                p["category_id"].as_str().map(str::to_owned),
            )
        })
        .collect();
    assert!(
        mapped.contains(&("111".into(), Some("bags-handbags".into()))),
        "{mapped:?}"
    );
    assert!(
        mapped.contains(&("222".into(), Some("watches".into()))),
        "{mapped:?}"
    );
    let requests = fake.requests();
    assert!(!requests.is_empty());
    assert!(
        requests
            .iter()
            .all(|r| r.access_token.as_deref() == Some(ACME_TOKEN)),
        "only acme's token is used"
    );
    assert!(
        requests
            .iter()
            .any(|r| matches!(r.outcome, FakeOutcome::Answered { .. }))
    );
    let done = jobs(&server, "acme").await;
    let order_jobs: Vec<_> = done
        .iter()
        .filter(|j| j["payload"]["webhook_id"] == "wh-o1002")
        .collect();
    assert_eq!(
        order_jobs.len(),
        1,
        "the duplicate delivery was processed once"
    );

    // A job that fails every time goes to the dead letter with its error; once
    // Shopify answers again, a retry through the API succeeds.
    fake.revoke_token(ACME_TOKEN);
    let body = order(1003, json!([line(1, 333, "99.00", None)]));
    fake.send_webhook(
        &url,
        acme_host,
        "orders/create",
        ACME_SHOP,
        "wh-o1003",
        ACME_SECRET,
        &body,
    )
    .await;
    let dead = server
        .eventually(60, async |s| {
            jobs(s, "acme")
                .await
                .into_iter()
                .find(|j| j["payload"]["webhook_id"] == "wh-o1003" && j["state"] == "dead")
        })
        .await
        .expect("the failing job is dead-lettered");
    assert!(
        dead["last_error"].as_str().unwrap_or_default().len() > 10,
        "{dead}"
    );
    assert!(commissions(&server, "acme", 1003).await.is_empty());
    fake.add_shop(ACME_SHOP, ACME_TOKEN);
    let id = dead["id"].as_i64().expect("id");
    let (status, body) = server
        .call(
            Method::POST,
            "acme",
            &format!("/v1/jobs/{id}/retry"),
            Some(&admin("acme")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = server
        .call(
            Method::POST,
            "globex",
            &format!("/v1/jobs/{id}/retry"),
            Some(&admin("globex")),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "globex cannot touch acme's job"
    );
    server
        .eventually(20, async |s| {
            (commissions(s, "acme", 1003).await.len() == 1).then_some(())
        })
        .await
        .expect("the retried job succeeds");

    // The metrics count every delivery by its tenant and result, and the jobs'
    // outcomes: the dead-lettered one, and the three done.
    let webhooks = |tenant, result| {
        super::metrics::counter(
            &server,
            "veneer_webhooks_total",
            &[("tenant", tenant), ("result", result)],
        )
    };
    assert_eq!(
        [
            webhooks("acme", "accepted"),
            webhooks("acme", "duplicate"),
            webhooks("acme", "rejected"),
            webhooks("globex", "accepted"),
            webhooks("globex", "rejected"),
        ],
        [3.0, 1.0, 2.0, 0.0, 2.0]
    );
    let acme_jobs = |outcome| {
        [
            ("tenant", "acme"),
            ("kind", "shopify.webhook"),
            ("outcome", outcome),
        ]
    };
    super::metrics::wait_for_counter(&server, "veneer_jobs_total", &acme_jobs("done"), 3.0).await;
    assert_eq!(
        super::metrics::counter(&server, "veneer_jobs_total", &acme_jobs("dead")),
        1.0
    );

    // Credentials are not in the database in plain text.
    assert_no_plaintext(&server, &[ACME_TOKEN, ACME_SECRET, GLOBEX_SECRET]).await;

    // app/uninstalled disables the integration and wipes the access token.
    let uninstall = json!({ "id": 1, "domain": ACME_SHOP, "myshopify_domain": ACME_SHOP });
    fake.send_webhook(
        &url,
        acme_host,
        "app/uninstalled",
        ACME_SHOP,
        "wh-u1",
        ACME_SECRET,
        &uninstall,
    )
    .await;
    server
        .eventually(20, async |s| {
            let (status, body) = s.get("acme", "/v1/shopify", &member("acme")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            (body["enabled"] == false && body["connected"] == false).then_some(())
        })
        .await
        .expect("the store is disabled and its token wiped");
}
both_backends!(webhooks_queue_and_admin_api, shopify);

async fn assert_no_plaintext(server: &Server, secrets: &[&str]) {
    let dump = server.stored_text("shopify_stores").await;
    assert!(!dump.is_empty());
    for secret in secrets {
        assert!(!dump.contains(secret), "`{secret}` is stored in plain text");
    }
}

const FREE_SHOP: &str = "free-shop.myshopify.com";
const FREE_TOKEN: &str = "shpat_free_77aa01";

async fn connect(
    server: &Server,
    tenant: &str,
    shop: &str,
    token: &str,
    secret: &str,
) -> (StatusCode, Value) {
    server
        .call(
            Method::PUT,
            tenant,
            "/v1/shopify",
            Some(&admin(tenant)),
            Some(json!({ "shop_domain": shop, "access_token": token, "app_secret": secret })),
        )
        .await
}

async fn store(server: &Server, tenant: &str) -> Value {
    let (status, body) = server.get(tenant, "/v1/shopify", &member(tenant)).await;
    assert_eq!(status, StatusCode::OK, "{tenant}: {body}");
    body
}

/// Asserts an answer names neither acme nor says that someone holds the shop.
fn reveals_nothing(body: &Value) {
    let text = body.to_string();
    for leak in [
        "`acme`",
        "org_acme",
        "another Veneer tenant",
        "connected to",
    ] {
        assert!(!text.contains(leak), "`{leak}` in {body}");
    }
}

async fn webhook_status(
    server: &Server,
    fake: &FakeShopify,
    host: &str,
    id: &str,
    secret: &str,
) -> StatusCode {
    let product = json!({ "id": 42, "title": "Kelly 28", "product_type": "Handbags", "tags": "" });
    fake.send_webhook(
        &server.url("/v1/shopify/webhooks"),
        &format!("{host}.veneer.test"),
        "products/create",
        ACME_SHOP,
        id,
        secret,
        &product,
    )
    .await
    .status()
}

async fn ownership(db: Db) {
    let fake = FakeShopify::start().await;
    fake.add_shop(ACME_SHOP, ACME_TOKEN);
    fake.add_shop(GLOBEX_SHOP, GLOBEX_TOKEN);
    fake.add_shop(FREE_SHOP, FREE_TOKEN);
    let base = fake.base_url();
    let server = Server::start_with(db, |config| {
        config.shopify_api_base = Some(base);
        config.job_backoff_ms = 20;
    })
    .await;
    let (status, body) = connect(&server, "acme", ACME_SHOP, ACME_TOKEN, ACME_SECRET).await;
    assert_eq!(status, StatusCode::OK, "acme connects its shop: {body}");

    // Squatting with a made-up token: refused before anything is looked up,
    // with the very answer a shop nobody holds gets.
    let (held_status, held) = connect(&server, "globex", ACME_SHOP, "shpat_guess", "s").await;
    let (free_status, free) = connect(&server, "globex", FREE_SHOP, "shpat_guess", "s").await;
    assert_eq!(held_status, StatusCode::UNPROCESSABLE_ENTITY, "{held}");
    assert_eq!(free_status, StatusCode::UNPROCESSABLE_ENTITY, "{free}");
    assert_eq!(held["error"]["code"], "shop_ownership_not_proven", "{held}");
    assert_eq!(
        held.to_string().replace(ACME_SHOP, "<shop>"),
        free.to_string().replace(FREE_SHOP, "<shop>"),
        "a bound and a free shop answer alike"
    );
    reveals_nothing(&held);
    // A working token, but for globex's own shop: refused the same way.
    let (status, body) = connect(&server, "globex", ACME_SHOP, GLOBEX_TOKEN, "s").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "shop_ownership_not_proven", "{body}");
    reveals_nothing(&body);
    assert_eq!(store(&server, "globex").await["connected"], false);
    // A bad domain is a 400 that says what to give, and costs Shopify nothing.
    fake.clear_requests();
    let (status, body) = connect(&server, "globex", "evil.example.com", GLOBEX_TOKEN, "s").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(fake.requests().is_empty());
    // After each: the good call by another tenant succeeds.
    let (status, body) = connect(&server, "globex", GLOBEX_SHOP, GLOBEX_TOKEN, GLOBEX_SECRET).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "globex connects its own shop: {body}"
    );
    let acme = store(&server, "acme").await;
    assert_eq!(
        (acme["connected"].clone(), acme["shop_domain"].clone()),
        (json!(true), json!(ACME_SHOP))
    );

    // Proven but bound elsewhere (globex got hold of acme's token): a
    // conflict that does not say who holds the shop.
    let (status, body) = connect(&server, "globex", ACME_SHOP, ACME_TOKEN, GLOBEX_SECRET).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    for leak in ["`acme`", "org_acme", "Acme"] {
        assert!(!body.to_string().contains(leak), "`{leak}` in {body}");
    }
    assert_eq!(store(&server, "globex").await["shop_domain"], GLOBEX_SHOP);
    assert_eq!(
        webhook_status(&server, &fake, "acme", "wh-a1", ACME_SECRET).await,
        StatusCode::OK,
        "acme's shop still reaches acme"
    );

    // Disconnecting releases the shop: another tenant who proves it may take it.
    let (status, body) = server
        .call(
            Method::DELETE,
            "acme",
            "/v1/shopify",
            Some(&admin("acme")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = connect(&server, "globex", ACME_SHOP, ACME_TOKEN, GLOBEX_SECRET).await;
    assert_eq!(status, StatusCode::OK, "the released shop is taken: {body}");
    assert_eq!(
        webhook_status(&server, &fake, "acme", "wh-a2", ACME_SECRET).await,
        StatusCode::UNAUTHORIZED,
        "acme let the shop go"
    );
    assert_eq!(
        webhook_status(&server, &fake, "globex", "wh-g1", GLOBEX_SECRET).await,
        StatusCode::OK,
        "the shop's webhooks reach its new tenant"
    );
    let acme = store(&server, "acme").await;
    assert_eq!(
        (acme["connected"].clone(), acme["enabled"].clone()),
        (json!(false), json!(false))
    );

    // The app uninstalled from the shop releases it too.
    let uninstall = json!({ "id": 1, "domain": ACME_SHOP, "myshopify_domain": ACME_SHOP });
    let response = fake
        .send_webhook(
            &server.url("/v1/shopify/webhooks"),
            "globex.veneer.test",
            "app/uninstalled",
            ACME_SHOP,
            "wh-g-uninstall",
            GLOBEX_SECRET,
            &uninstall,
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    server
        .eventually(20, async |s| {
            (store(s, "globex").await["enabled"] == false).then_some(())
        })
        .await
        .expect("the uninstall is processed");
    let (status, body) = connect(&server, "acme", ACME_SHOP, ACME_TOKEN, ACME_SECRET).await;
    assert_eq!(status, StatusCode::OK, "acme takes its shop back: {body}");
    assert_eq!(
        webhook_status(&server, &fake, "acme", "wh-a3", ACME_SECRET).await,
        StatusCode::OK
    );
    assert_eq!(store(&server, "acme").await["connected"], true);
}
both_backends!(a_shop_is_connected_only_by_who_proves_it, ownership);
