//! Traffic endpoints: the demo tenants' effective configurations differ, quotes
//! run the plugin, previews render with escaping, bad input gets clear errors.

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::harness::{Db, Server, admin, member, sale};
use crate::both_backends;

async fn traffic(db: Db) {
    let server = Server::start(db).await;
    let (acme, globex) = (member("acme"), member("globex"));
    let (status, a) = server.get("acme", "/v1/config", &acme).await;
    assert_eq!(status, StatusCode::OK, "{a}");
    let (_, g) = server.get("globex", "/v1/config", &globex).await;
    assert_ne!(
        a["categories"], g["categories"],
        "acme and globex see different trees"
    );
    assert_ne!(a["size_charts"], g["size_charts"]);

    // ETag round trip.
    let version = a["version"].as_str().expect("version").to_owned();
    let cached = server
        .request(Method::GET, "acme", "/v1/config")
        .bearer_auth(&acme)
        .header("if-none-match", format!("\"{version}\""))
        .send()
        .await
        .expect("answered");
    assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);

    // Sections.
    let (status, section) = server
        .get("globex", "/v1/config/size-charts", &globex)
        .await;
    assert_eq!(
        (status, section["source"].as_str()),
        (StatusCode::OK, Some("plugin"))
    );
    let (status, body) = server.get("globex", "/v1/config/colours", &globex).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("categories")
    );

    // Quotes differ by plugin.
    let (_, qa) = server
        .call(
            Method::POST,
            "acme",
            "/v1/commission/quote",
            Some(&acme),
            Some(sale("bags", 250_000)),
        )
        .await;
    let (_, qg) = server
        .call(
            Method::POST,
            "globex",
            "/v1/commission/quote",
            Some(&globex),
            Some(sale("bags", 250_000)),
        )
        .await;
    assert_eq!(qa["source"], "plugin", "{qa}");
    assert_ne!(qa["decision"], qg["decision"]);

    // Bad input: clear errors, nothing else happens.
    let (status, body) = server
        .call(
            Method::POST,
            "acme",
            "/v1/commission/quote",
            Some(&acme),
            Some(json!({ "sku": 1 })),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_json"))
    );
    let mut wrong_currency = sale("bags", 100);
    wrong_currency["currency"] = json!("USD");
    let (status, body) = server
        .call(
            Method::POST,
            "acme",
            "/v1/commission/quote",
            Some(&acme),
            Some(wrong_currency),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_sale"))
    );
    let (status, _) = server
        .call(Method::GET, "acme", "/v1/nope", Some(&acme), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Preview renders with HTML escaping of user data.
    let (status, preview) = server
        .call(Method::POST, "acme", "/v1/email/preview", Some(&acme),
            Some(json!({ "template": "welcome", "context": { "customer_name": "<script>alert(1)</script>" } })))
        .await;
    assert_eq!(status, StatusCode::OK, "{preview}");
    let html = preview["rendered"]["html"].as_str().unwrap_or("");
    let text = preview["rendered"]["text"].as_str().unwrap_or("");
    if text.contains("<script>") {
        assert!(!html.contains("<script>alert"), "HTML part is escaped");
    }
    let (status, _) = server
        .call(
            Method::POST,
            "acme",
            "/v1/email/preview",
            Some(&acme),
            Some(json!({ "template": "nope" })),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Health and readiness, no auth.
    let (status, ready) = server.call(Method::GET, "", "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    let _ = admin("acme");
}
both_backends!(demo_tenants_differ_and_traffic_works, traffic);
