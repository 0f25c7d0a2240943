//! Tenant status, rate limits, unknown hosts, custom domains.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::harness::{Db, Server, admin, member, platform_admin};
use veneer::both_backends;

async fn status_and_limits(db: Db) {
    let server = Server::start(db).await;
    let pa = platform_admin();
    let token = admin("acme");

    // Suspension: 403 with a clear code, and back.
    let (status, _) = server
        .call(
            Method::PATCH,
            "",
            "/v1/admin/tenants/acme",
            Some(&pa),
            Some(json!({ "status": "suspended" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = server.get("acme", "/v1/config", &token).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("tenant_suspended"))
    );
    let (status, _) = server.get("globex", "/v1/config", &admin("globex")).await;
    assert_eq!(status, StatusCode::OK, "other tenants are unaffected");
    server
        .call(
            Method::PATCH,
            "",
            "/v1/admin/tenants/acme",
            Some(&pa),
            Some(json!({ "status": "active" })),
        )
        .await;
    let (status, _) = server.get("acme", "/v1/config", &token).await;
    assert_eq!(status, StatusCode::OK);

    // Rate limit: 429 with Retry-After, only for that tenant.
    server
        .call(
            Method::PATCH,
            "",
            "/v1/admin/tenants/acme",
            Some(&pa),
            Some(json!({ "rate_limit_per_sec": 1, "rate_limit_burst": 3 })),
        )
        .await;
    let mut limited = None;
    for _ in 0..10 {
        let response = server
            .request(Method::GET, "acme", "/v1/quota")
            .bearer_auth(&token)
            .send()
            .await
            .expect("answered");
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(response);
            break;
        }
    }
    let limited = limited.expect("the tenant is rate limited");
    assert!(limited.headers().get("retry-after").is_some());
    let (status, _) = server.get("globex", "/v1/quota", &admin("globex")).await;
    assert_eq!(status, StatusCode::OK, "globex keeps its own rate");

    // A custom domain is claimed pending and not served until DNS proves it
    // (the whole flow: domains.rs).
    let (status, body) = server
        .call(
            Method::POST,
            "",
            "/v1/admin/tenants/globex/domains",
            Some(&pa),
            Some(json!({ "domain": "shop.globex.example" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["domain"]["status"], "pending", "{body}");
    let response = server
        .client
        .get(server.url("/v1/config/categories"))
        .header("host", "shop.globex.example")
        .bearer_auth(admin("globex"))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // Tenants: duplicate ids conflict; bad ids are refused.
    let (status, _) = server
        .call(
            Method::POST,
            "",
            "/v1/admin/tenants",
            Some(&pa),
            Some(json!({ "id": "acme", "name": "again" })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, body) = server
        .call(
            Method::POST,
            "",
            "/v1/admin/tenants",
            Some(&pa),
            Some(json!({ "id": "Bad Id", "name": "x" })),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_tenant_id"))
    );
    let (status, body) = server
        .call(
            Method::POST,
            "",
            "/v1/admin/tenants",
            Some(&pa),
            Some(json!({ "id": "umbrella", "name": "Umbrella" })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = server
        .get("umbrella", "/v1/config", &admin("umbrella"))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a new tenant is served the base: {body}"
    );
    assert_eq!(body["releases"], serde_json::json!([]));
}
both_backends!(suspension_rate_limits_and_domains, status_and_limits);

/// A plugin that keeps running into its limits is paused: its tenant is served
/// the base without running it, other tenants are untouched.
async fn breaker(db: Db) {
    let server = Server::in_process(db).await;
    let token = admin("acme");
    server
        .install_hostile("acme", json!({ "mode": "spin" }))
        .await;
    let sale = super::harness::sale("bags", 10_000);
    for attempt in 0..veneer::limits::BREAKER_THRESHOLD {
        let (status, quote) = server
            .call(
                Method::POST,
                "acme",
                "/v1/commission/quote",
                Some(&token),
                Some(sale.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{quote}");
        assert_eq!(
            quote["outcome"], "out_of_fuel",
            "attempt {attempt}: {quote}"
        );
        assert_eq!(quote["source"], "base");
    }
    let (status, quote) = server
        .call(
            Method::POST,
            "acme",
            "/v1/commission/quote",
            Some(&token),
            Some(sale.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(quote["source"], "base", "{quote}");
    assert!(
        quote["outcome"].is_null(),
        "the plugin did not run: {quote}"
    );
    assert!(
        quote["message"].as_str().unwrap_or("").contains("paused"),
        "{quote}"
    );
    let (status, other) = server
        .call(
            Method::POST,
            "globex",
            "/v1/commission/quote",
            Some(&admin("globex")),
            Some(sale),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{other}");
    assert!(
        other["outcome"].is_null() || other["outcome"] == "ok",
        "globex is unaffected: {other}"
    );
    // The metrics count the runs into the limit and the one pause, as acme's.
    let acme_runs = [
        ("tenant", "acme"),
        ("hook", "commission"),
        ("outcome", "out_of_fuel"),
    ];
    assert_eq!(
        super::metrics::counter(&server, "veneer_plugin_runs_total", &acme_runs),
        f64::from(veneer::limits::BREAKER_THRESHOLD)
    );
    assert_eq!(
        super::metrics::counter(
            &server,
            "veneer_plugin_breaker_pauses_total",
            &[("tenant", "acme")]
        ),
        1.0
    );
    assert_eq!(
        super::metrics::counter(
            &server,
            "veneer_plugin_breaker_pauses_total",
            &[("tenant", "globex")]
        ),
        0.0
    );
}
both_backends!(a_plugin_stuck_at_its_limits_is_paused, breaker);

/// The unauthenticated endpoints are rate limited: a flood at one tenant's
/// Shopify webhook endpoint is charged to that tenant's rate (429 for it,
/// nothing for another tenant), and the bounce endpoint has a rate of its own,
/// token or not.
async fn unauthenticated_floods(db: Db) {
    let server = Server::start_with(db, |config| {
        config.bounce_rate_per_sec = 1;
        config.bounce_token = Some("bounce-token".into());
    })
    .await;
    let (status, body) = server
        .call(
            Method::PATCH,
            "",
            "/v1/admin/tenants/acme",
            Some(&platform_admin()),
            Some(json!({ "rate_limit_per_sec": 1, "rate_limit_burst": 3 })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let webhook = |tenant: &'static str| {
        let server = &server;
        async move {
            server
                .request(Method::POST, tenant, "/v1/shopify/webhooks")
                .header("content-type", "application/json")
                .header("x-shopify-topic", "orders/create")
                .body(r#"{"id": 1}"#)
                .send()
                .await
                .expect("answered")
                .status()
        }
    };
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(webhook("acme").await);
    }
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "acme's flood is limited: {statuses:?}"
    );
    assert!(
        statuses[0] != StatusCode::TOO_MANY_REQUESTS,
        "within the burst first: {statuses:?}"
    );
    for _ in 0..3 {
        assert_ne!(
            webhook("globex").await,
            StatusCode::TOO_MANY_REQUESTS,
            "globex is not charged for acme's flood"
        );
    }

    // The bounce endpoint: a burst of ten, then 429, whatever the token.
    let mut statuses = Vec::new();
    for _ in 0..14 {
        let response = server
            .request(Method::POST, "", "/v1/email/bounces")
            .header("x-veneer-bounce-token", "wrong")
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .expect("answered");
        statuses.push(response.status());
    }
    assert_ne!(statuses[0], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "the flood is limited: {statuses:?}"
    );
}
both_backends!(
    unauthenticated_floods_are_rate_limited_per_tenant_and_endpoint,
    unauthenticated_floods
);

/// The audit log pages with a cursor past any page size: every entry once,
/// newest first, for the tenant and for the platform.
async fn audit_pages(db: Db) {
    let server = Server::in_process(db).await;
    server.create_tenant("pager").await;
    let token = admin("pager");
    for i in 0..7 {
        let (status, body) = server
            .call(
                Method::POST,
                "pager",
                "/v1/installations",
                Some(&token),
                Some(json!({ "name": format!("i-{i}") })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (_, all) = server.get("pager", "/v1/audit?limit=1000", &token).await;
    let all: Vec<i64> = all["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .map(|r| r["id"].as_i64().expect("id"))
        .collect();
    assert!(all.len() >= 7, "{all:?}");
    let mut paged = Vec::new();
    let mut path = "/v1/audit?limit=3".to_owned();
    loop {
        let (status, page) = server.get("pager", &path, &token).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let rows = page["audit"].as_array().expect("audit");
        assert!(rows.len() <= 3);
        paged.extend(rows.iter().map(|r| r["id"].as_i64().expect("id")));
        match page["next"].as_i64() {
            Some(next) => path = format!("/v1/audit?limit=3&before={next}"),
            None => break,
        }
    }
    assert_eq!(paged, all, "every entry once, newest first");
    let (status, page) = server
        .get(
            "",
            &format!("/v1/admin/audit?tenant=pager&limit=2&before={}", all[1]),
            &platform_admin(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let ids: Vec<i64> = page["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, all[2..4].to_vec());
}
both_backends!(the_audit_log_pages_with_a_cursor, audit_pages);

/// Storage caps: plugin versions past the tenant's cap are refused with 409
/// `plugin_store_full` (before anything compiles), unused versions can be
/// deleted to make room (one a release uses cannot), emails past the day's
/// cap are 429 `email_quota_exceeded`; key-value writes, sends, exports and
/// deletions are audited.
async fn storage_caps(db: Db) {
    use veneer_plugin_artifacts as built;
    let server = Server::in_process_with(db, |config| {
        config.max_plugin_versions = 2;
        config.max_emails_per_day = 2;
    })
    .await;
    server.create_tenant("shop").await;
    let token = admin("shop");
    let read = |path: &str| std::fs::read(path).expect("a built plugin");
    let (status, first) = server
        .upload("shop", &token, read(built::LUXURY_CONSIGNMENT))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, second) = server
        .upload("shop", &token, read(built::SNEAKER_STORE))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let (status, body) = server
        .upload("shop", &token, read(built::EMAIL_REBRAND))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "plugin_store_full", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("DELETE /v1/plugins/<sha256>"),
        "{body}"
    );
    // Uploading one it has is fine.
    let (status, body) = server
        .upload("shop", &token, read(built::SNEAKER_STORE))
        .await;
    assert!(status.is_success(), "{status} {body}");

    // A version a release uses stays; an unused one goes, and makes room.
    let used = first["plugin"]["sha256"].as_str().expect("sha").to_owned();
    let unused = second["plugin"]["sha256"].as_str().expect("sha").to_owned();
    server.ensure_installation("shop", &token, "main").await;
    let release = server
        .create_release("shop", &token, "main", &used, json!({}))
        .await;
    let (status, body) = server
        .call(
            Method::DELETE,
            "shop",
            &format!("/v1/plugins/{used}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains(&format!("main#{release}")),
        "{body}"
    );
    let (status, body) = server
        .call(
            Method::DELETE,
            "shop",
            &format!("/v1/plugins/{unused}"),
            Some(&member("shop")),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a member cannot delete: {body}"
    );
    let (status, body) = server
        .call(
            Method::DELETE,
            "shop",
            &format!("/v1/plugins/{unused}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = server
        .call(
            Method::DELETE,
            "shop",
            &format!("/v1/plugins/{unused}"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // Another tenant's version is not found from here.
    let (status, _) = server
        .call(
            Method::DELETE,
            "globex",
            &format!("/v1/plugins/{used}"),
            Some(&admin("globex")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = server
        .upload("shop", &token, read(built::EMAIL_REBRAND))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Emails: two a day.
    server
        .configure_email(
            "shop",
            json!({
                "sending_domain": "shop.example",
                "from_name": "Shop",
                "from_address": "orders@shop.example",
                "relay": "platform",
            }),
        )
        .await;
    let send = || {
        server.call(
            Method::POST,
            "shop",
            "/v1/email/send",
            Some(&token),
            Some(json!({ "template": "welcome", "to": "ann@example.com", "context": {} })),
        )
    };
    for _ in 0..2 {
        let (status, body) = send().await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    let (status, body) = send().await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "email_quota_exceeded", "{body}");

    // Key-value writes and a records export, then the audit log.
    let (status, body) = server
        .call(
            Method::PUT,
            "shop",
            "/v1/kv/promo",
            Some(&token),
            Some(json!({ "value": "secret-value" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server
        .call(Method::DELETE, "shop", "/v1/kv/promo", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _) = server.get("shop", "/v1/records?limit=10", &token).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = server.get("shop", "/v1/audit", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let entries = body["audit"].as_array().expect("audit");
    let count = |action: &str| entries.iter().filter(|e| e["action"] == action).count();
    assert_eq!(count("plugin.delete"), 1, "{body}");
    assert_eq!(count("email.send"), 2, "{body}");
    assert_eq!(count("kv.put"), 1, "{body}");
    assert_eq!(count("kv.delete"), 1, "{body}");
    assert_eq!(count("records.export"), 1, "{body}");
    let text = body.to_string();
    assert!(!text.contains("secret-value"), "no value in the audit log");
    assert!(
        !text.contains("ann@example.com"),
        "no recipient in the audit log"
    );
}
both_backends!(storage_caps_and_wider_audit, storage_caps);
