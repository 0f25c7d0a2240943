//! Shopify's compliance webhooks end to end, signed by the fake Shopify as
//! Shopify signs them: a data request gives the tenant admin an export of what
//! Veneer holds about the customer; a customer redaction leaves neither their
//! address nor their name in anything the tenant owns (searched in the
//! tenant's whole archive) while another tenant's mail to the same address
//! stays; a shop redaction after the uninstall removes the store's data.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use veneer::test_support::fake_shopify::FakeShopify;

use super::email::settings;
use super::harness::{Db, Server, admin};
use veneer::both_backends;

const ACME_SHOP: &str = "acme-privacy.myshopify.com";
const ACME_TOKEN: &str = "shpat_acme_privacy_01";
const ACME_SECRET: &str = "acme-privacy-secret-7d2e";
const JANE: &str = "jane.doe@example.com";
const JANE_NAME: &str = "Jane Doe";

async fn webhook(server: &Server, fake: &FakeShopify, topic: &str, id: &str, body: Value) {
    let response = fake
        .send_webhook(
            &server.url("/v1/shopify/webhooks"),
            "acme.veneer.test",
            topic,
            ACME_SHOP,
            id,
            ACME_SECRET,
            &body,
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK, "{topic}");
}

async fn mail_to_jane(server: &Server, tenant: &str) {
    let (status, body) = server
        .call(
            Method::POST,
            tenant,
            "/v1/email/send",
            Some(&admin(tenant)),
            Some(json!({ "template": "welcome", "to": JANE,
                         "context": { "customer_name": JANE_NAME } })),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
}

async fn messages(server: &Server, tenant: &str) -> String {
    let (status, body) = server
        .get(tenant, "/v1/email/messages", &admin(tenant))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.to_string()
}

async fn compliance(db: Db) {
    let fake = FakeShopify::start().await;
    let base = fake.base_url();
    let server = Server::start_with(db, |config| {
        config.shopify_api_base = Some(base);
        config.job_backoff_ms = 20;
    })
    .await;
    fake.add_shop(ACME_SHOP, ACME_TOKEN);
    let (status, body) = server
        .call(
            Method::PUT,
            "acme",
            "/v1/shopify",
            Some(&admin("acme")),
            Some(
                json!({ "shop_domain": ACME_SHOP, "access_token": ACME_TOKEN,
                         "app_secret": ACME_SECRET }),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for tenant in ["acme", "globex"] {
        server
            .configure_email(
                tenant,
                settings(&format!("{tenant}.example"), "Shop", "help@example.com"),
            )
            .await;
        mail_to_jane(&server, tenant).await;
    }
    assert!(messages(&server, "acme").await.contains(JANE_NAME));
    // Jane's order: its commission is recorded.
    let order = json!({ "id": 5001, "name": "#5001", "currency": "EUR",
        "email": JANE,
        "customer": { "id": 42, "email": JANE, "first_name": "Jane", "last_name": "Doe" },
        "line_items": [{ "id": 1, "product_id": 7, "variant_id": 70, "sku": "SKU-7",
                         "title": "Bag", "quantity": 1, "price": "2500.00",
                         "vendor": "consignor-1", "product_type": "Bags" }] });
    webhook(&server, &fake, "orders/create", "wh-order-5001", order).await;
    let commission = server
        .eventually(30, async |s| {
            let (_, body) = s
                .get(
                    "acme",
                    "/v1/shopify/commissions?order_id=5001",
                    &admin("acme"),
                )
                .await;
            body["commissions"]
                .as_array()
                .filter(|c| !c.is_empty())
                .cloned()
        })
        .await;
    assert!(commission.is_some(), "the order's commission is recorded");

    // The data request: an export for the tenant admin.
    webhook(
        &server,
        &fake,
        "customers/data_request",
        "wh-dr-9001",
        json!({ "shop_id": 1, "shop_domain": ACME_SHOP, "orders_requested": [5001],
                "customer": { "id": 42, "email": JANE, "phone": null },
                "data_request": { "id": 9001 } }),
    )
    .await;
    let export = server
        .eventually(30, async |s| {
            let (status, body) = s
                .get("acme", "/v1/shopify/data-requests/9001", &admin("acme"))
                .await;
            (status == StatusCode::OK).then_some(body)
        })
        .await
        .expect("the export is kept");
    assert_eq!(export["customer_id"], "42", "{export}");
    assert!(
        export["export"]["emails_sent"][0]["subject"]
            .as_str()
            .is_some_and(|s| s.contains(JANE_NAME)),
        "{export}"
    );
    assert_eq!(
        export["export"]["commissions"][0]["order_id"], "5001",
        "{export}"
    );
    let (status, list) = server
        .get("acme", "/v1/shopify/data-requests", &admin("acme"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data_requests"][0]["request_id"], "9001", "{list}");
    let (status, _) = server
        .get("globex", "/v1/shopify/data-requests/9001", &admin("globex"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another tenant's request");

    // The order's job is kept (done), its body sealed.
    let (_, jobs) = server
        .get("acme", "/v1/jobs?limit=500", &admin("acme"))
        .await;
    assert!(jobs.to_string().contains("wh-order-5001"), "{jobs}");
    assert!(!jobs.to_string().contains(JANE), "sealed");

    // The redaction: nothing of Jane left in anything acme owns.
    webhook(
        &server,
        &fake,
        "customers/redact",
        "wh-redact-42",
        json!({ "shop_id": 1, "shop_domain": ACME_SHOP,
                "customer": { "id": 42, "email": JANE, "phone": null },
                "orders_to_redact": [5001] }),
    )
    .await;
    let redacted = server
        .eventually(30, async |s| {
            let (_, list) = s
                .get("acme", "/v1/shopify/data-requests", &admin("acme"))
                .await;
            let gone = list["data_requests"].as_array().is_some_and(Vec::is_empty);
            let text = messages(s, "acme").await;
            (gone && !text.contains(JANE)).then_some(text)
        })
        .await
        .expect("redacted");
    assert!(!redacted.contains(JANE_NAME), "{redacted}");
    let acme = veneer::tenancy::TenantId::new("acme").expect("id");
    let archive = veneer::app::archives::export(
        &server.state.storage,
        &server.state.secrets,
        &acme,
        veneer::app::archives::ExportOptions {
            secrets_key: None,
            history: true,
        },
    )
    .await
    .expect("export");
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive.bytes.as_slice()));
    for entry in tar.entries().expect("tar") {
        let mut entry = entry.expect("entry");
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut entry, &mut text);
        let name = entry.path().expect("path").display().to_string();
        assert!(!text.contains(JANE), "{name} holds the address");
        assert!(!text.contains(JANE_NAME), "{name} holds the name");
    }
    // The finished job that carried the order (sealed) is gone too.
    let (_, jobs) = server
        .get("acme", "/v1/jobs?limit=500", &admin("acme"))
        .await;
    let carrying: Vec<&Value> = jobs["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .filter(|j| j["payload"].to_string().contains("wh-order-5001"))
        .collect();
    assert!(carrying.is_empty(), "{carrying:?}");
    // globex's mail to the same address is globex's.
    assert!(messages(&server, "globex").await.contains(JANE));

    // Shop redaction follows the uninstall.
    webhook(
        &server,
        &fake,
        "app/uninstalled",
        "wh-uninstall",
        json!({ "id": 1 }),
    )
    .await;
    server
        .eventually(30, async |s| {
            let (_, store) = s.get("acme", "/v1/shopify", &admin("acme")).await;
            (store["enabled"] == false).then_some(())
        })
        .await
        .expect("uninstalled");
    webhook(
        &server,
        &fake,
        "shop/redact",
        "wh-shop-redact",
        json!({ "shop_id": 1, "shop_domain": ACME_SHOP }),
    )
    .await;
    server
        .eventually(30, async |s| {
            let (_, store) = s.get("acme", "/v1/shopify", &admin("acme")).await;
            store["shop_domain"].is_null().then_some(())
        })
        .await
        .expect("the store's data is gone");
    let (_, commissions) = server
        .get("acme", "/v1/shopify/commissions", &admin("acme"))
        .await;
    assert_eq!(commissions["commissions"], json!([]), "{commissions}");
}

both_backends!(compliance_webhooks_export_and_redact, compliance);
