//! The Shopify install flow over real HTTP redirects: a tenant admin starts
//! it on the tenant's host, the browser goes to the (fake) shop's authorize
//! page and comes back with Shopify's signed callback, carrying the install
//! cookie the host set (a small cookie jar here plays the browser's). Every
//! part of the callback is checked: a replayed, tampered, cookie-less or
//! other-host callback is refused with nothing connected, and a grant short of
//! the app's scopes connects nothing.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use veneer::test_support::fake_shopify::FakeShopify;

use super::harness::{Db, Server, admin, member};
use veneer::both_backends;

const ACME_SHOP: &str = "acme-store.myshopify.com";
const ACME_SECRET: &str = "acme-app-secret-5c1e";
const GLOBEX_SHOP: &str = "globex-store.myshopify.com";
const GLOBEX_SECRET: &str = "globex-app-secret-9a0b";

/// What the browser does: follows no redirect by itself, keeps cookies.
struct Browser {
    http: reqwest::Client,
    /// (name, value, path) of cookies set.
    jar: Vec<(String, String, String)>,
}

impl Browser {
    fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            jar: Vec::new(),
        }
    }

    /// Sends a GET to `server` as host `host` (the tenant's), with the cookies
    /// whose path the request is under, and keeps the cookies it sets.
    async fn get(
        &mut self,
        server: &Server,
        host: &str,
        path_and_query: &str,
        token: Option<&str>,
    ) -> reqwest::Response {
        let path = path_and_query.split('?').next().unwrap_or_default();
        let cookies: Vec<String> = self
            .jar
            .iter()
            .filter(|(_, _, p)| path.starts_with(p.as_str()))
            .map(|(n, v, _)| format!("{n}={v}"))
            .collect();
        let mut request = self
            .http
            .get(server.url(path_and_query))
            .header("host", host);
        if !cookies.is_empty() {
            request = request.header("cookie", cookies.join("; "));
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the host answers");
        for set in response.headers().get_all("set-cookie") {
            let set = set.to_str().expect("ascii");
            let mut parts = set.split(';').map(str::trim);
            let (name, value) = parts
                .next()
                .and_then(|p| p.split_once('='))
                .expect("name=value");
            let path = parts
                .find_map(|p| p.strip_prefix("Path="))
                .unwrap_or("/")
                .to_owned();
            self.jar.retain(|(n, _, _)| n != name);
            if !value.is_empty() {
                self.jar.push((name.to_owned(), value.to_owned(), path));
            }
        }
        response
    }

    /// Starts an install of `tenant`'s app on `shop` and goes through the
    /// shop's authorize page: the callback's path and query, and the cookie
    /// header the host set.
    async fn install_until_callback(
        &mut self,
        server: &Server,
        tenant: &str,
        shop: &str,
    ) -> String {
        let started = self
            .get(
                server,
                &format!("{tenant}.veneer.test"),
                &format!("/v1/shopify/install?shop={shop}"),
                Some(&admin(tenant)),
            )
            .await;
        assert_eq!(started.status(), StatusCode::FOUND);
        let set = started.headers()["set-cookie"].to_str().expect("ascii");
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Lax"),
            "{set}"
        );
        let authorize = started.headers()["location"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(
            authorize.contains("/admin/oauth/authorize?client_id="),
            "{authorize}"
        );
        let approved = self
            .http
            .get(&authorize)
            .send()
            .await
            .expect("the fake answers");
        assert_eq!(approved.status(), StatusCode::FOUND);
        let back = reqwest::Url::parse(approved.headers()["location"].to_str().expect("ascii"))
            .expect("a URL");
        assert_eq!(
            back.host_str(),
            Some(format!("{tenant}.veneer.test").as_str())
        );
        assert_eq!(back.path(), "/v1/shopify/callback");
        format!("{}?{}", back.path(), back.query().unwrap_or_default())
    }
}

/// A callback's query with `name` set to `value` (the rest as sent).
fn with_param(path_and_query: &str, name: &str, value: &str) -> String {
    let url = reqwest::Url::parse(&format!("http://x{path_and_query}")).expect("url");
    let mut out = url.clone();
    out.query_pairs_mut()
        .clear()
        .extend_pairs(url.query_pairs().map(|(k, v)| {
            (
                k.to_string(),
                if k == name {
                    value.to_owned()
                } else {
                    v.to_string()
                },
            )
        }));
    format!("{}?{}", out.path(), out.query().unwrap_or_default())
}

async fn refused(response: reqwest::Response) -> String {
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "shopify_install_refused", "{body}");
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn connected(server: &Server, tenant: &str) -> Value {
    let (status, body) = server.get(tenant, "/v1/shopify", &member(tenant)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn install_flow(db: Db) {
    let fake = FakeShopify::start().await;
    let base = fake.base_url();
    let server = Server::start_with(db, |config| config.shopify_api_base = Some(base)).await;
    fake.add_app("cid-acme", ACME_SECRET, ACME_SHOP, None);
    fake.add_app(
        "cid-globex",
        GLOBEX_SECRET,
        GLOBEX_SHOP,
        Some("read_products"),
    );
    let mut browser = Browser::new();

    // No app yet: nothing to install.
    let response = browser
        .get(
            &server,
            "acme.veneer.test",
            &format!("/v1/shopify/install?shop={ACME_SHOP}"),
            Some(&admin("acme")),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    for (tenant, client, secret) in [
        ("acme", "cid-acme", ACME_SECRET),
        ("globex", "cid-globex", GLOBEX_SECRET),
    ] {
        let (status, body) = server
            .call(
                Method::PUT,
                tenant,
                "/v1/shopify/app",
                Some(&admin(tenant)),
                Some(json!({ "client_id": client, "client_secret": secret,
                             "scopes": ["read_products", "read_orders"] })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(!body.to_string().contains(secret), "{body}");
    }
    // Members cannot start one; a shop that is not a myshopify name is refused.
    let response = browser
        .get(
            &server,
            "acme.veneer.test",
            &format!("/v1/shopify/install?shop={ACME_SHOP}"),
            Some(&member("acme")),
        )
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = browser
        .get(
            &server,
            "acme.veneer.test",
            "/v1/shopify/install?shop=internal.example",
            Some(&admin("acme")),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // Tampered callbacks, each from an install of its own: refused.
    let callback = browser
        .install_until_callback(&server, "acme", ACME_SHOP)
        .await;
    for (name, value) in [
        ("shop", "evil-store.myshopify.com"),
        ("code", "code-forged"),
        ("state", "0123.abcd"),
        ("hmac", "00"),
    ] {
        let message = refused(
            browser
                .get(
                    &server,
                    "acme.veneer.test",
                    &with_param(&callback, name, value),
                    None,
                )
                .await,
        )
        .await;
        assert!(!message.is_empty(), "{name}");
    }
    // The same callback at another tenant's host: not its app's signature.
    refused(
        browser
            .get(&server, "globex.veneer.test", &callback, None)
            .await,
    )
    .await;
    // Without the cookie of the browser that started it.
    let mut other_browser = Browser::new();
    let message = refused(
        other_browser
            .get(&server, "acme.veneer.test", &callback, None)
            .await,
    )
    .await;
    assert!(message.contains("browser"), "{message}");
    assert_eq!(connected(&server, "acme").await["connected"], false);

    // The real one: connected, with the granted scopes, the token sealed.
    let response = browser
        .get(&server, "acme.veneer.test", &callback, None)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["shop_domain"], ACME_SHOP, "{body}");
    assert_eq!(
        body["scopes"],
        json!(["read_products", "read_orders"]),
        "{body}"
    );
    assert!(browser.jar.is_empty(), "the install cookie is cleared");
    let status = connected(&server, "acme").await;
    assert_eq!(status["connected"], true, "{status}");
    assert_eq!(status["shop_domain"], ACME_SHOP, "{status}");
    // Once only.
    let message = refused(
        browser
            .get(&server, "acme.veneer.test", &callback, None)
            .await,
    )
    .await;
    assert!(!message.is_empty());
    // Webhooks signed with the app's secret are accepted for that shop.
    let hook = fake
        .send_webhook(
            &server.url("/v1/shopify/webhooks"),
            "acme.veneer.test",
            "products/update",
            ACME_SHOP,
            "wh-installed-1",
            ACME_SECRET,
            &json!({ "id": 1, "product_type": "Bags" }),
        )
        .await;
    assert_eq!(hook.status(), StatusCode::OK);
    for table in ["shopify_apps", "shopify_stores"] {
        let dump = server.stored_text(table).await;
        assert!(
            !dump.contains(ACME_SECRET),
            "{table} holds the secret in clear"
        );
    }

    // A merchant who grants less than the app asks for: nothing connected.
    let callback = browser
        .install_until_callback(&server, "globex", GLOBEX_SHOP)
        .await;
    let message = refused(
        browser
            .get(&server, "globex.veneer.test", &callback, None)
            .await,
    )
    .await;
    assert!(message.contains("read_orders"), "{message}");
    assert_eq!(connected(&server, "globex").await["connected"], false);

    // The app asks for more: the status says a new install is needed, and
    // the install grants it.
    let status = connected(&server, "acme").await;
    assert_eq!(status["reinstall_needed"], false, "{status}");
    assert_eq!(
        status["scopes"],
        json!(["read_products", "read_orders"]),
        "{status}"
    );
    let (status, body) = server
        .call(
            Method::PUT,
            "acme",
            "/v1/shopify/app",
            Some(&admin("acme")),
            Some(
                json!({ "client_id": "cid-acme", "client_secret": ACME_SECRET,
                         "scopes": ["read_products", "read_orders", "write_orders"] }),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(connected(&server, "acme").await["reinstall_needed"], true);
    // Re-install: a new token replaces the old.
    let callback = browser
        .install_until_callback(&server, "acme", ACME_SHOP)
        .await;
    let response = browser
        .get(&server, "acme.veneer.test", &callback, None)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let status = connected(&server, "acme").await;
    assert_eq!(status["reinstall_needed"], false, "{status}");
    assert_eq!(
        status["scopes"],
        json!(["read_products", "read_orders", "write_orders"]),
        "{status}"
    );
    // After the install, a job subscribed the shop to every topic Veneer
    // handles, at the tenant's address.
    let ours = "https://acme.veneer.test/v1/shopify/webhooks";
    let wanted: Vec<(String, String)> = [
        "ORDERS_CREATE",
        "PRODUCTS_CREATE",
        "PRODUCTS_UPDATE",
        "PRODUCTS_DELETE",
        "APP_UNINSTALLED",
    ]
    .iter()
    .map(|t| ((*t).to_owned(), ours.to_owned()))
    .collect();
    let sorted = |mut v: Vec<(String, String)>| {
        v.sort();
        v
    };
    let subscribed = server
        .eventually(30, async |_| {
            let now = sorted(fake.subscriptions(ACME_SHOP));
            (now == sorted(wanted.clone())).then_some(now)
        })
        .await;
    assert!(subscribed.is_some(), "{:?}", fake.subscriptions(ACME_SHOP));
    // Repaired on demand: a missing topic, a wrong address, a topic not ours.
    fake.remove_subscription(ACME_SHOP, "ORDERS_CREATE");
    fake.add_subscription(ACME_SHOP, "PRODUCTS_UPDATE", "https://old.example/hooks");
    fake.add_subscription(ACME_SHOP, "CUSTOMERS_CREATE", ours);
    let (status, body) = server
        .call(
            Method::POST,
            "acme",
            "/v1/shopify/subscriptions/sync",
            Some(&admin("acme")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["sync"]["created"], json!(["ORDERS_CREATE"]), "{body}");
    assert_eq!(
        body["sync"]["removed"].as_array().map(Vec::len),
        Some(2),
        "{body}"
    );
    assert_eq!(
        sorted(fake.subscriptions(ACME_SHOP)),
        sorted(wanted.clone())
    );
    let (status, body) = server
        .get("acme", "/v1/shopify/subscriptions", &admin("acme"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["address"], ours);
    assert_eq!(
        body["subscriptions"].as_array().map(Vec::len),
        Some(5),
        "{body}"
    );
    let (status, body) = server
        .get("acme", "/v1/shopify/subscriptions", &member("acme"))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");

    let (status, audit) = server.get("acme", "/v1/audit", &admin("acme")).await;
    assert_eq!(status, StatusCode::OK);
    let installs = audit["audit"]
        .as_array()
        .expect("audit")
        .iter()
        .filter(|e| e["action"] == "shopify.install")
        .count();
    assert_eq!(installs, 2, "{audit}");

    // Disconnecting removes the subscriptions at Veneer's address first; the
    // merchant's other ones stay.
    fake.add_subscription(ACME_SHOP, "ORDERS_PAID", "https://erp.example/hooks");
    let (status, body) = server
        .call(
            Method::DELETE,
            "acme",
            "/v1/shopify",
            Some(&admin("acme")),
            None,
        )
        .await;
    assert!(status.is_success(), "{body}");
    assert_eq!(
        fake.subscriptions(ACME_SHOP),
        vec![(
            "ORDERS_PAID".to_owned(),
            "https://erp.example/hooks".to_owned()
        )]
    );
}

both_backends!(the_shopify_app_is_installed_through_oauth, install_flow);
