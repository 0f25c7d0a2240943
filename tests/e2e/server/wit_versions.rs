//! Contract versions over HTTP, on both backends: a component of every
//! version of [`WIT_FIXTURES`] uploaded, shown with what it says about
//! itself (version, description, settings schema) and serving side by side in
//! one tenant's chain; release settings refused against a 0.2.0 plugin's
//! schema with each error's JSON path (a 0.1.0 plugin's untouched); a stock
//! plugin's schema in the catalogue; the Shopify products webhook asking the
//! chain's `product-category` and refusing an id outside the tree.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use veneer::runtime::WitVersion;
use veneer_plugin_artifacts as built_plugins;

use super::harness::{Db, Server, admin, member, platform_admin, sale};
use crate::fake_shopify::FakeShopify;
use crate::util::{WIT_FIXTURES, WitFixture, read};
use veneer::both_backends;

fn settings(fixture: &WitFixture) -> Value {
    serde_json::from_str(fixture.settings).expect("fixture settings are JSON")
}

/// The plain wit-bindgen 0.2.0 fixture (commission and product-category).
fn v2() -> &'static WitFixture {
    WIT_FIXTURES
        .iter()
        .find(|f| f.path == veneer_plugin_artifacts::WIT_V2_FIXTURE)
        .expect("the 0.2.0 fixture")
}

/// Asserts a plugin as the API shows it says what its version lets it say.
fn says_what_its_version_may(plugin: &Value, fixture: &WitFixture) {
    assert_eq!(plugin["wit_version"], fixture.version.as_str(), "{plugin}");
    match fixture.version {
        WitVersion::V0_1_0 => {
            assert_eq!(plugin["description"], "", "{plugin}");
            assert!(plugin["settings_schema"].is_null(), "{plugin}");
        }
        WitVersion::V0_2_0 => {
            assert!(
                plugin["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{plugin}"
            );
            let schema: Value = serde_json::from_str(
                plugin["settings_schema"]
                    .as_str()
                    .expect("the schema, as JSON text"),
            )
            .expect("JSON");
            assert_eq!(schema["type"], "object", "{plugin}");
        }
    }
}

async fn side_by_side(db: Db) {
    let server = Server::in_process(db).await;
    let token = admin("acme");
    let mut names = Vec::new();
    // This crate's 0.2.0 fixture last, whatever rows come after it: its rate
    // is the answer checked below.
    let mut fixtures = WIT_FIXTURES.to_vec();
    fixtures.sort_by_key(|f| f.path == built_plugins::WIT_V2_FIXTURE);
    for (i, fixture) in fixtures.iter().enumerate() {
        let (status, uploaded) = server.upload("acme", &token, read(fixture.path)).await;
        assert_eq!(status, StatusCode::CREATED, "{uploaded}");
        says_what_its_version_may(&uploaded["plugin"], fixture);
        let sha = uploaded["plugin"]["sha256"].as_str().expect("sha256");
        let (status, shown) = server
            .get("acme", &format!("/v1/plugins/{sha}"), &member("acme"))
            .await;
        assert_eq!(status, StatusCode::OK, "{shown}");
        says_what_its_version_may(&shown["plugin"], fixture);

        let name = format!("wit-{i}");
        server
            .install_as("acme", &token, &name, read(fixture.path), settings(fixture))
            .await;
        names.push(name);
    }
    let (status, listed) = server.get("acme", "/v1/plugins", &member("acme")).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let versions: Vec<&str> = listed["plugins"]
        .as_array()
        .expect("plugins")
        .iter()
        .filter_map(|p| p["wit_version"].as_str())
        .collect();
    for fixture in WIT_FIXTURES {
        assert!(versions.contains(&fixture.version.as_str()), "{versions:?}");
    }

    // One quote runs every version's installation, in the tenant's order.
    let quote = server.quote("acme", &token, sale("bags", 250_000)).await;
    let steps = quote["steps"].as_array().expect("steps");
    for name in &names {
        let step = steps
            .iter()
            .find(|s| s["installation"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} ran: {quote}"));
        assert_eq!(step["outcome"], "ok", "{quote}");
    }
    assert_eq!(quote["source"], "plugin", "{quote}");
    assert_eq!(quote["decision"]["rule_id"], "wit-v2:bags", "{quote}");
    assert_eq!(quote["decision"]["fee"], 22_500, "{quote}");
}

both_backends!(
    every_wit_version_serves_side_by_side_in_one_chain,
    side_by_side
);

async fn create_release(
    server: &Server,
    installation: &str,
    sha: &str,
    settings: Value,
) -> (StatusCode, Value) {
    server
        .call(
            Method::POST,
            "acme",
            &format!("/v1/installations/{installation}/releases"),
            Some(&admin("acme")),
            Some(json!({ "plugin": sha, "settings": settings })),
        )
        .await
}

async fn schema(db: Db) {
    let server = Server::in_process(db).await;
    let token = admin("acme");
    let (status, uploaded) = server.upload("acme", &token, read(v2().path)).await;
    assert_eq!(status, StatusCode::CREATED, "{uploaded}");
    let sha = uploaded["plugin"]["sha256"]
        .as_str()
        .expect("sha256")
        .to_owned();
    server.ensure_installation("acme", &token, "v2").await;

    let (status, body) = create_release(
        &server,
        "v2",
        &sha,
        json!({ "rates": [{ "category": "bags", "bps": 500 }, { "category": "shoes", "bps": 12000 }] }),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "settings_schema_violation", "{body}");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(
        message.contains("/rates/1/bps: 12000 is greater than the maximum of 10000"),
        "{message}"
    );
    assert_eq!(
        body["error"]["details"],
        json!([{ "path": "/rates/1/bps", "message": "12000 is greater than the maximum of 10000" }]),
        "{body}"
    );

    // Every error is listed with its path; the whole document's own is `""`.
    let (status, body) = create_release(
        &server,
        "v2",
        &sha,
        json!({ "colour": "red", "keywords": [{ "keyword": "" , "category": "bags" }] }),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let paths: Vec<&str> = body["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|d| d["path"].as_str())
        .collect();
    assert!(paths.contains(&""), "{body}");
    assert!(paths.contains(&"/keywords/0/keyword"), "{body}");

    // Nothing was stored: the installation has no release.
    let (status, releases) = server
        .get("acme", "/v1/installations/v2/releases", &token)
        .await;
    assert_eq!(status, StatusCode::OK, "{releases}");
    assert_eq!(releases["releases"], json!([]), "{releases}");

    // Valid settings pass the schema and the plugin's own run.
    let (status, body) = create_release(&server, "v2", &sha, settings(v2())).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // The release names its plugin with what a console needs for a form.
    let about = &body["release"]["plugin_about"];
    assert_eq!(about["wit_version"], "0.2.0", "{body}");
    assert_eq!(about["name"], "wit-v2-fixture", "{body}");
    assert!(about["settings_schema"].is_string(), "{body}");
    let (status, shown) = server
        .get("acme", "/v1/installations/v2", &member("acme"))
        .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["releases"][0]["plugin_about"], *about, "{shown}");

    // A 0.1.0 plugin declares no schema: its settings go on to its own check only.
    for fixture in WIT_FIXTURES
        .iter()
        .filter(|f| f.version == WitVersion::V0_1_0)
    {
        let (status, uploaded) = server.upload("acme", &token, read(fixture.path)).await;
        assert_eq!(status, StatusCode::CREATED, "{uploaded}");
        let sha = uploaded["plugin"]["sha256"].as_str().expect("sha256");
        let (status, body) = create_release(&server, "commission", sha, settings(fixture)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let about = &body["release"]["plugin_about"];
        assert_eq!(about["wit_version"], "0.1.0", "{body}");
        assert!(about["settings_schema"].is_null(), "{body}");
    }
}

both_backends!(
    release_settings_are_validated_against_the_plugins_schema,
    schema
);

async fn catalogue(db: Db) {
    use base64::Engine as _;
    let server = Server::in_process(db).await;
    let wasm = base64::engine::general_purpose::STANDARD.encode(read(v2().path));
    let (status, body) = server
        .call(
            Method::POST,
            "",
            "/v1/admin/catalogue",
            Some(&platform_admin()),
            Some(
                json!({ "wasm_base64": wasm, "description": "per-category rates",
                         "settings_example": { "rates": [{ "category": "bags" }] } }),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "settings_schema_violation", "{body}");
    assert_eq!(body["error"]["details"][0]["path"], "/rates/0", "{body}");

    let (status, body) = server
        .call(
            Method::POST,
            "",
            "/v1/admin/catalogue",
            Some(&platform_admin()),
            Some(
                json!({ "wasm_base64": wasm, "description": "per-category rates",
                         "settings_example": settings(v2()) }),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, listed) = server.get("acme", "/v1/catalogue", &member("acme")).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let entry = listed["catalogue"]
        .as_array()
        .expect("plugins")
        .iter()
        .find(|p| p["name"] == "wit-v2-fixture")
        .cloned()
        .unwrap_or_else(|| panic!("listed: {listed}"));
    assert_eq!(entry["wit_version"], "0.2.0", "{entry}");
    assert!(entry["settings_schema"].is_string(), "{entry}");

    // Installed from the catalogue, the tenant's copy keeps the schema, and
    // its releases are held to it.
    server
        .ensure_installation("acme", &admin("acme"), "stock")
        .await;
    let (status, body) = server
        .call(
            Method::POST,
            "acme",
            "/v1/installations/stock/releases",
            Some(&admin("acme")),
            Some(json!({ "catalogue": "wit-v2-fixture", "settings": { "rates": 3 } })),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["details"][0]["path"], "/rates", "{body}");
    let (status, plugins) = server.get("acme", "/v1/plugins", &member("acme")).await;
    assert_eq!(status, StatusCode::OK, "{plugins}");
    assert!(
        plugins["plugins"]
            .as_array()
            .expect("plugins")
            .iter()
            .any(|p| p["name"] == "wit-v2-fixture" && p["settings_schema"].is_string()),
        "{plugins}"
    );
}

both_backends!(a_stock_plugin_shows_its_schema_and_keeps_it, catalogue);

const ACME_SHOP: &str = "acme-shop.myshopify.com";
const ACME_TOKEN: &str = "shpat_acme_0123456789abcdef";
const ACME_SECRET: &str = "acme-app-secret-4f1c";

async fn products(db: Db) {
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
            Some(json!({ "shop_domain": ACME_SHOP, "access_token": ACME_TOKEN, "app_secret": ACME_SECRET })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server
        .install_as(
            "acme",
            &admin("acme"),
            "categorise",
            read(built_plugins::WIT_V2_FIXTURE),
            settings(v2()),
        )
        .await;

    let url = server.url("/v1/shopify/webhooks");
    let sent = [
        // The plugin's choice, inside the tree: served over the mapping's `sneakers`.
        (1, "Air Jordan 1 Retro High", "Sneakers"),
        // No keyword: the mapping's answer passes through.
        (2, "Kelly 28", "Handbags"),
        // The plugin names a category the tree lacks: refused, the mapping's kept.
        (3, "Mystery bag", "Handbags"),
    ];
    for (id, title, product_type) in sent {
        let product = json!({ "id": id, "title": title, "product_type": product_type, "tags": "", "vendor": "Acme" });
        let response = fake
            .send_webhook(
                &url,
                "acme.veneer.test",
                "products/create",
                ACME_SHOP,
                &format!("wh-p{id}"),
                ACME_SECRET,
                &product,
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
    }
    let products = server
        .eventually(20, async |s| {
            let (status, body) = s.get("acme", "/v1/shopify/products", &member("acme")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            (body["products"].as_array().map(Vec::len) == Some(3)).then_some(body)
        })
        .await
        .expect("the product webhooks are processed");
    let category = |id: &str| {
        products["products"]
            .as_array()
            .expect("products")
            .iter()
            .find(|p| p["product_id"] == id)
            .and_then(|p| p["category_id"].as_str())
            .map(str::to_owned)
    };
    assert_eq!(
        category("1").as_deref(),
        Some("sneakers-basketball"),
        "{products}"
    );
    assert_eq!(
        category("2").as_deref(),
        Some("bags-handbags"),
        "{products}"
    );
    assert_eq!(
        category("3").as_deref(),
        Some("bags-handbags"),
        "{products}"
    );

    // Each product's step is recorded like any hook's; the refusal says why.
    let runs = server
        .eventually(20, async |s| {
            let (status, body) = s.get("acme", "/v1/runs?limit=500", &member("acme")).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let runs: Vec<Value> = body["runs"]
                .as_array()
                .expect("runs")
                .iter()
                .filter(|r| r["hook"] == "product-category")
                .cloned()
                .collect();
            (runs.len() == 3).then_some(runs)
        })
        .await
        .expect("three product-category runs are recorded");
    assert!(
        runs.iter().all(|r| r["installation"] == "categorise"),
        "{runs:?}"
    );
    let refused: Vec<&Value> = runs
        .iter()
        .filter(|r| r["outcome"] == "invalid_output")
        .collect();
    assert_eq!(refused.len(), 1, "{runs:?}");
    assert!(
        refused[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no-such-category")),
        "{runs:?}"
    );
}

both_backends!(
    the_products_webhook_asks_the_chain_for_the_category,
    products
);
