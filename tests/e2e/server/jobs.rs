//! Background jobs are bounded and fair, end to end: a tenant whose jobs are
//! slow (its Shopify orders need an Admin API call per line, and Shopify
//! answers slowly) holds at most its share of the workers, each attempt runs
//! under a time budget, an order with too many lines is refused, and a
//! suspended tenant's queued mail waits until it is resumed. Another tenant's
//! mail goes out on time throughout.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::harness::{Db, Server, admin, member, platform_admin};
use crate::fake_shopify::FakeShopify;
use crate::smtp_server::SmtpServer;
use veneer::both_backends;

const GLOBEX_SHOP: &str = "globex-shop.myshopify.com";
const GLOBEX_TOKEN: &str = "shpat_globex_5e1f";
const GLOBEX_SECRET: &str = "globex-app-secret-77b2";
/// Seconds to wait for something the worker does.
const WAIT: u64 = 60;

async fn configure_mail(server: &Server, tenant: &str) {
    let settings = json!({
        "sending_domain": format!("{tenant}.example"),
        "from_name": tenant,
        "from_address": format!("orders@{tenant}.example"),
        "relay": "platform",
    });
    server.configure_email(tenant, settings).await;
}

/// Queues a welcome mail from `tenant` to `to`; returns (message id, job id).
async fn send_mail(server: &Server, tenant: &str, to: &str) -> (String, i64) {
    let (status, body) = server
        .call(
            Method::POST,
            tenant,
            "/v1/email/send",
            Some(&admin(tenant)),
            Some(json!({ "template": "welcome", "to": to, "context": { "customer_name": "Ada" } })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{tenant} sends: {body}");
    (
        body["message_id"].as_str().expect("message id").to_owned(),
        body["job"].as_i64().expect("job id"),
    )
}

async fn message_state(server: &Server, tenant: &str, id: &str) -> Value {
    let (status, body) = server
        .get(tenant, &format!("/v1/email/messages/{id}"), &member(tenant))
        .await;
    assert_eq!(status, StatusCode::OK, "{tenant} message {id}: {body}");
    body["message"]["state"].clone()
}

async fn jobs(server: &Server, tenant: &str, query: &str) -> Vec<Value> {
    let (status, body) = server
        .get(
            tenant,
            &format!("/v1/jobs?limit=500{query}"),
            &admin(tenant),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tenant} jobs: {body}");
    body["jobs"].as_array().cloned().unwrap_or_default()
}

async fn job(server: &Server, tenant: &str, id: i64) -> Value {
    let (status, body) = server
        .get(tenant, &format!("/v1/jobs/{id}"), &member(tenant))
        .await;
    assert_eq!(status, StatusCode::OK, "{tenant} job {id}: {body}");
    body["job"].clone()
}

async fn set_status(server: &Server, tenant: &str, status: &str) {
    let (code, body) = server
        .call(
            Method::PATCH,
            "",
            &format!("/v1/admin/tenants/{tenant}"),
            Some(&platform_admin()),
            Some(json!({ "status": status })),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{tenant} {status}: {body}");
}

/// An order of `lines` lines, each of a product the host has not seen and
/// without a product type: every line costs an Admin API call.
fn order(id: u64, lines: u64) -> Value {
    let lines: Vec<Value> = (1..=lines)
        .map(|n| {
            let product = id * 1_000 + n;
            json!({ "id": product, "product_id": product, "variant_id": product * 10,
                    "sku": format!("SKU-{product}"), "title": "Item", "quantity": 1,
                    "price": "10.00", "vendor": "consignor-1" })
        })
        .collect();
    json!({ "id": id, "name": format!("#{id}"), "currency": "EUR", "line_items": lines })
}

async fn commissions(server: &Server, tenant: &str, order_id: u64) -> usize {
    let (status, body) = server
        .get(
            tenant,
            &format!("/v1/shopify/commissions?order_id={order_id}&limit=1000"),
            &member(tenant),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["commissions"].as_array().map_or(0, Vec::len)
}

async fn slow_tenant(db: Db) {
    const LINES: u64 = 12;
    const ORDERS: u64 = 4;
    let smtp = SmtpServer::start().await;
    let fake = FakeShopify::start().await;
    fake.add_shop(GLOBEX_SHOP, GLOBEX_TOKEN);
    let (smtp_port, shopify) = (smtp.port(), fake.base_url());
    let server = Server::start_with(db, |config| {
        config.smtp_host = "127.0.0.1".into();
        config.smtp_port = smtp_port;
        config.smtp_tls = "none".into();
        config.shopify_api_base = Some(shopify);
        config.job_backoff_ms = 50;
        // As many workers as the slow tenant has orders: without a cap its
        // jobs would take every one of them.
        config.worker_concurrency = ORDERS as usize;
        config.jobs_per_tenant = 2;
        config.shopify_job_budget_secs = 2;
        config.max_order_lines = 20;
    })
    .await;
    configure_mail(&server, "acme").await;
    let (status, body) = server
        .call(
            Method::PUT,
            "globex",
            "/v1/shopify",
            Some(&admin("globex")),
            Some(
                json!({ "shop_domain": GLOBEX_SHOP, "access_token": GLOBEX_TOKEN,
                         "app_secret": GLOBEX_SECRET }),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "globex connects: {body}");

    // Shopify answers globex's product lookups slowly: an order takes about
    // LINES × 0.4 s, more than its 2 s budget.
    fake.respond_with(|_| json!({ "product": { "productType": "Watches" } }));
    fake.set_delay(Duration::from_millis(400));
    let url = server.url("/v1/shopify/webhooks");
    for n in 0..ORDERS {
        let response = fake
            .send_webhook(
                &url,
                "globex.veneer.test",
                "orders/create",
                GLOBEX_SHOP,
                &format!("wh-slow-{n}"),
                GLOBEX_SECRET,
                &order(5_000 + n, LINES),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    server
        .eventually(WAIT, async |s| {
            (jobs(s, "globex", "&state=running").await.len() == 2).then_some(())
        })
        .await
        .expect("globex's orders are being worked on");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let running = jobs(&server, "globex", "&state=running").await.len();
    assert_eq!(running, 2, "globex runs at most its cap of jobs at once");

    // Acme's mail goes out on time: a free worker takes it at once.
    let ready = Instant::now();
    let (message, _) = send_mail(&server, "acme", "ada@example.com").await;
    server
        .eventually(WAIT, async |s| {
            (message_state(s, "acme", &message).await == "sent").then_some(())
        })
        .await
        .expect("acme's mail is sent");
    let took = ready.elapsed();
    eprintln!("{db:?}: acme's mail was sent {took:?} after it was queued, behind a slow tenant");
    assert!(
        took < Duration::from_secs(3),
        "acme's mail waited {took:?} behind globex's jobs"
    );
    assert_eq!(smtp.messages().len(), 1);

    // Globex's orders ran out of time and came back for the lines they had
    // not recorded: every line ends with exactly one commission.
    for n in 0..ORDERS {
        let order_id = 5_000 + n;
        server
            .eventually(WAIT * 2, async |s| {
                (commissions(s, "globex", order_id).await == LINES as usize).then_some(())
            })
            .await
            .unwrap_or_else(|| panic!("order {order_id} is completed"));
    }
    let done = server
        .eventually(WAIT, async |s| {
            let all = jobs(s, "globex", "").await;
            all.iter().all(|j| j["state"] == "done").then_some(all)
        })
        .await
        .expect("globex's jobs end done");
    let over_budget: Vec<&Value> = done
        .iter()
        .filter(|j| {
            j["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("time budget of 2 s"))
        })
        .collect();
    assert!(
        !over_budget.is_empty()
            && over_budget
                .iter()
                .all(|j| j["attempts"].as_u64() >= Some(2)),
        "an attempt past its budget failed and was retried: {done:?}"
    );

    // An order over the line cap is refused at once, with the reason, and
    // not retried.
    fake.set_delay(Duration::ZERO);
    let response = fake
        .send_webhook(
            &url,
            "globex.veneer.test",
            "orders/create",
            GLOBEX_SHOP,
            "wh-huge",
            GLOBEX_SECRET,
            &order(6_000, 21),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let job_id = response.json::<Value>().await.expect("json")["job"]
        .as_i64()
        .expect("job id");
    let dead = server
        .eventually(WAIT, async |s| {
            let j = job(s, "globex", job_id).await;
            (j["state"] == "dead").then_some(j)
        })
        .await
        .expect("the oversized order is dead-lettered");
    assert_eq!(dead["attempts"], 1, "{dead}");
    let error = dead["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("21 line items") && error.contains("at most 20"),
        "{error}"
    );
    assert_eq!(commissions(&server, "globex", 6_000).await, 0);

    // And acme is still served at once.
    let (again, _) = send_mail(&server, "acme", "bob@example.com").await;
    server
        .eventually(10, async |s| {
            (message_state(s, "acme", &again).await == "sent").then_some(())
        })
        .await
        .expect("acme's next mail is sent");
}
both_backends!(
    a_slow_tenants_jobs_leave_another_tenants_mail_on_time,
    slow_tenant
);

async fn suspended_tenant(db: Db) {
    let smtp = SmtpServer::start().await;
    let smtp_port = smtp.port();
    let server = Server::start_with(db, |config| {
        config.smtp_host = "127.0.0.1".into();
        config.smtp_port = smtp_port;
        config.smtp_tls = "none".into();
        config.job_backoff_ms = 300;
    })
    .await;
    configure_mail(&server, "acme").await;
    configure_mail(&server, "globex").await;

    // Acme's mail is queued, waiting for a retry: the relay is down.
    smtp.stop().await;
    let (message, job_id) = send_mail(&server, "acme", "held@example.com").await;
    let waiting = server
        .eventually(WAIT, async |s| {
            let j = job(s, "acme", job_id).await;
            (!j["last_error"].is_null()).then_some(j)
        })
        .await
        .expect("the send is tried and fails while the relay is down");
    assert_ne!(waiting["state"], "dead", "{waiting}");

    // Acme is suspended, then the relay comes back.
    set_status(&server, "acme", "suspended").await;
    let (status, _) = server
        .get("acme", &format!("/v1/jobs/{job_id}"), &member("acme"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "acme is suspended");
    tokio::time::sleep(Duration::from_millis(300)).await;
    smtp.restart()
        .await
        .expect("the relay restarts on its port");

    // Another tenant's mail goes out; acme's does not, long past its retries.
    let (theirs, _) = send_mail(&server, "globex", "other@example.com").await;
    server
        .eventually(WAIT, async |s| {
            (message_state(s, "globex", &theirs).await == "sent").then_some(())
        })
        .await
        .expect("globex's mail is sent");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let recipients: Vec<Vec<String>> = smtp.messages().into_iter().map(|m| m.to).collect();
    assert_eq!(
        recipients,
        [["other@example.com".to_owned()]],
        "nothing of the suspended tenant was sent"
    );

    // Resumed: its mail goes out.
    set_status(&server, "acme", "active").await;
    server
        .eventually(WAIT, async |s| {
            (message_state(s, "acme", &message).await == "sent").then_some(())
        })
        .await
        .expect("acme's held mail is sent after it is resumed");
    assert_eq!(smtp.messages().len(), 2);
    // The message is marked sent inside the job; the job is done right after.
    server
        .eventually(WAIT, async |s| {
            (job(s, "acme", job_id).await["state"] == "done").then_some(())
        })
        .await
        .expect("the job that sent it is done");
}
both_backends!(
    a_suspended_tenants_mail_is_held_until_it_is_resumed,
    suspended_tenant
);
