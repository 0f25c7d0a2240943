//! The web console (`/console`) in a real browser (headless Chromium over
//! WebDriver) against a listening server: signing in, uploading a plugin
//! through the page, creating, activating and rolling back releases, a
//! refused settings value shown in place, a platform admin setting a quota,
//! and the screenshots of `docs/console/`. The CSRF refusals, a tenant's
//! session on another tenant's host (403, nothing of it shown) and the
//! headers are plain HTTP, as an attacker's page would send them.

use std::path::PathBuf;

use reqwest::{Method, StatusCode};
use veneer::test_support::browser::Browser;
use veneer_plugin_artifacts as built_plugins;

use super::harness::{BASE, Db, Server, admin, sale};

fn shot(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../docs/console")
        .join(format!("{name}.png"))
}

/// `http://<tenant>.<base>:<port><path>` (the platform's host for `""`).
fn page_url(server: &Server, tenant: &str, path: &str) -> String {
    let port = server.running().addr.port();
    if tenant.is_empty() {
        format!("http://{BASE}:{port}{path}")
    } else {
        format!("http://{tenant}.{BASE}:{port}{path}")
    }
}

async fn open(browser: &Browser, url: &str) {
    browser.client.goto(url).await.expect("navigate");
}

async fn sign_in_as_tenant_admin(browser: &Browser, server: &Server, tenant: &str) {
    open(browser, &page_url(server, tenant, "/console")).await;
    // No session yet: the console sends the browser to its sign-in page.
    assert!(
        browser
            .client
            .current_url()
            .await
            .expect("url")
            .path()
            .ends_with("/console/sign-in"),
        "redirected to sign in"
    );
    browser.click("#role option[value=admin]").await;
    browser.submit("#sign-in").await;
    assert_eq!(browser.text("h1").await, "Overview");
}

/// The value of the hidden CSRF field of a console page's first form.
fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    html[at..at + 64].to_owned()
}

#[tokio::test]
async fn a_tenant_admin_uploads_releases_activates_and_rolls_back_in_the_browser() {
    let server = Server::start(Db::Sqlite).await;
    // Some traffic for the overview's charts and the run log.
    let token = admin("acme");
    for price in [10_000, 250_000, 40_000] {
        server.quote("acme", &token, sale("bags", price)).await;
    }
    let browser = Browser::start(BASE).await;
    sign_in_as_tenant_admin(&browser, &server, "acme").await;
    browser.screenshot(&shot("overview")).await;
    let overview = browser.source().await;
    assert!(
        overview.contains("commission"),
        "the live installation is listed"
    );
    assert!(overview.contains("<svg"), "charts are drawn");
    assert!(
        !overview.contains(&token) && !overview.contains("eyJ"),
        "no token in the HTML"
    );

    // Upload a component through the page; the check's result is shown.
    open(
        &browser,
        &page_url(&server, "acme", "/console/installations"),
    )
    .await;
    browser.fill("#name", "brand-emails").await;
    browser.submit("#create-installation").await;
    assert_eq!(browser.text("h1").await, "brand-emails");
    open(
        &browser,
        &page_url(&server, "acme", "/console/installations"),
    )
    .await;
    let wasm = std::fs::canonicalize(built_plugins::EMAIL_REBRAND).expect("plugin path");
    browser
        .client
        .find(fantoccini::Locator::Css("#plugin-file"))
        .await
        .expect("file input")
        .send_keys(&wasm.display().to_string())
        .await
        .expect("choose file");
    browser.submit("#upload").await;
    assert_eq!(browser.text("h1").await, "Plugin checked");
    let sha = browser.text("#sha256").await;
    assert_eq!(sha.len(), 64, "{sha}");
    assert!(
        browser.text("#check").await.contains("email"),
        "its hooks are shown"
    );
    browser.screenshot(&shot("plugin-check")).await;

    // A settings value the plugin refuses: the reason is shown in place and
    // nothing is created.
    open(
        &browser,
        &page_url(&server, "acme", "/console/installations/brand-emails"),
    )
    .await;
    browser
        .click(&format!("#plugin option[value='{sha}']"))
        .await;
    browser
        .fill(
            "#settings",
            r##"{"brand_name": "Acme", "primary_color": "red", "accent_color": "#000000"}"##,
        )
        .await;
    browser.submit("#create-release").await;
    let error = browser.text("#settings-error").await;
    assert!(error.contains("primary_color"), "{error}");
    assert!(error.contains("settings_schema_violation"), "{error}");
    browser.screenshot(&shot("settings-error")).await;
    let (status, releases) = server
        .get("acme", "/v1/installations/brand-emails/releases", &token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        releases["releases"].as_array().map(Vec::len),
        Some(0),
        "{releases}"
    );

    // Two good releases, activated one after the other, then rolled back.
    let mut ids = Vec::new();
    for colour in ["#1a1a2e", "#2f5bd3"] {
        browser
            .click(&format!("#plugin option[value='{sha}']"))
            .await;
        browser
            .fill(
                "#settings",
                &format!(r##"{{"brand_name": "Acme", "primary_color": "{colour}", "accent_color": "#000000"}}"##),
            )
            .await;
        browser.submit("#create-release").await;
        let main = browser.text("main").await;
        assert!(main.contains("Release created as a draft"), "{main}");
        let (_, releases) = server
            .get("acme", "/v1/installations/brand-emails/releases", &token)
            .await;
        let id = releases["releases"]
            .as_array()
            .and_then(|r| r.iter().map(|r| r["id"].as_i64().unwrap_or(0)).max())
            .expect("a release");
        browser
            .submit(&format!("#release-{id} button.activate"))
            .await;
        assert!(browser.text(".notice").await.contains("activated"));
        assert_eq!(browser.text("#live-release").await, format!("#{id}"));
        ids.push(id);
    }
    browser.screenshot(&shot("installation")).await;
    // A notice is one of the console's own texts: a link cannot make it say anything.
    open(
        &browser,
        &page_url(
            &server,
            "acme",
            "/console/installations/brand-emails?notice=Send+your+password",
        ),
    )
    .await;
    assert!(!browser.source().await.contains("Send your password"));
    browser.submit("#rollback").await;
    assert!(browser.text(".notice").await.contains("Rolled back"));
    assert_eq!(browser.text("#live-release").await, format!("#{}", ids[0]));
    let (status, detail) = server
        .get("acme", "/v1/installations/brand-emails", &token)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["installation"]["active_release"], ids[0], "{detail}");

    // The other pages render for the same session.
    for (path, title, name) in [
        (
            "/console/config",
            "Effective configuration",
            "configuration",
        ),
        ("/console/runs", "Runs", "runs"),
        ("/console/emails", "Email templates", "emails"),
        ("/console/data", "Key-value data", "data"),
        ("/console/jobs", "Jobs", "jobs"),
        ("/console/audit", "Audit log", "audit"),
    ] {
        open(&browser, &page_url(&server, "acme", path)).await;
        assert_eq!(browser.text("h1").await, title, "{path}");
        browser.screenshot(&shot(name)).await;
    }
    let config = browser.source().await;
    assert!(
        config.contains("brand-emails") || config.contains("base"),
        "sources are shown"
    );

    // (Another tenant's session on this host is the plain-HTTP test below:
    // WebDriver's add-cookie is refused for these mapped test hosts.)
    browser.close().await;
}

#[tokio::test]
async fn a_platform_admin_sets_a_quota_in_the_browser() {
    let server = Server::start(Db::Sqlite).await;
    let browser = Browser::start(BASE).await;
    open(&browser, &page_url(&server, "", "/console/sign-in")).await;
    browser.submit("#sign-in-platform").await;
    assert_eq!(browser.text("h1").await, "Tenants");
    assert!(browser.text("#tenants").await.contains("globex"));
    browser.screenshot(&shot("admin-tenants")).await;

    open(
        &browser,
        &page_url(&server, "", "/console/admin/tenants/acme"),
    )
    .await;
    browser.fill("#tenant-quota-fuel", "lots").await;
    browser.submit("#tenant-quota button").await;
    assert!(
        browser
            .text("#tenant-quota-error")
            .await
            .contains("not a whole number")
    );
    browser.fill("#tenant-quota-fuel", "50000000").await;
    browser.fill("#tenant-quota-deadline_ms", "400").await;
    browser.submit("#tenant-quota button").await;
    assert_eq!(browser.text(".notice").await, "Quota saved.");
    browser.screenshot(&shot("admin-tenant")).await;
    let (status, quota) = server
        .get(
            "",
            "/v1/admin/tenants/acme/quota",
            &veneer::test_support::platform_admin(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{quota}");
    assert_eq!(quota["quota"]["fuel"], 50_000_000, "{quota}");
    assert_eq!(quota["quota"]["deadline_ms"], 400, "{quota}");

    // A per-installation quota: the demo's commission installation.
    browser.fill("#quota-commission-fuel", "30000000").await;
    browser.submit("#quota-commission button").await;
    assert_eq!(browser.text(".notice").await, "Quota saved.");
    let (status, quota) = server
        .get(
            "",
            "/v1/admin/tenants/acme/installations/commission/quota",
            &veneer::test_support::platform_admin(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{quota}");
    assert_eq!(quota["quota"]["fuel"], 30_000_000, "{quota}");

    open(&browser, &page_url(&server, "", "/console/admin/usage")).await;
    assert_eq!(browser.text("h1").await, "Usage, last 30 days");
    browser.screenshot(&shot("admin-usage")).await;
    open(&browser, &page_url(&server, "", "/console/admin/audit")).await;
    assert!(browser.text("#audit").await.contains("quota.update"));
    browser.close().await;
}

/// A console request as a browser would send it: the session cookie, and
/// the Origin given.
fn console_post(
    server: &Server,
    tenant: &str,
    path: &str,
    cookie: &str,
    origin: Option<&str>,
    form: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    let mut request = server
        .client
        .request(Method::POST, server.url(path))
        .header("host", format!("{tenant}.{BASE}"))
        .header("cookie", format!("__session={cookie}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(form).expect("a form"));
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    request
}

async fn installation_names(server: &Server) -> Vec<String> {
    let (status, body) = server
        .get("acme", "/v1/installations", &admin("acme"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["installations"]
        .as_array()
        .expect("installations")
        .iter()
        .filter_map(|i| i["name"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn a_cross_site_form_post_without_the_csrf_proof_changes_nothing() {
    let server = Server::start(Db::Sqlite).await;
    let session = admin("acme");
    let page = server
        .client
        .get(server.url("/console/installations"))
        .header("host", format!("acme.{BASE}"))
        .header("cookie", format!("__session={session}"))
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let html = page.text().await.expect("html");
    assert!(
        !html.contains(&session),
        "the session token is never in the HTML"
    );
    let token = csrf_of(&html);
    let origin = format!("http://acme.{BASE}");

    // From another site, with the right token even: refused by its origin.
    let response = console_post(
        &server,
        "acme",
        "/console/installations",
        &session,
        Some("https://evil.example"),
        &[("csrf", &token), ("name", "evil-a")],
    )
    .send()
    .await
    .expect("answered");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.text().await.unwrap().contains("csrf_refused"));
    // No Origin at all on a cookie session.
    let response = console_post(
        &server,
        "acme",
        "/console/installations",
        &session,
        None,
        &[("csrf", &token), ("name", "evil-b")],
    )
    .send()
    .await
    .expect("answered");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // Same origin, no token; and another session's token.
    let response = console_post(
        &server,
        "acme",
        "/console/installations",
        &session,
        Some(&origin),
        &[("name", "evil-c")],
    )
    .send()
    .await
    .expect("answered");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let other = server
        .client
        .get(server.url("/console/installations"))
        .header("host", format!("acme.{BASE}"))
        .header(
            "cookie",
            format!("__session={}", veneer::test_support::member("acme")),
        )
        .send()
        .await
        .expect("page");
    assert_eq!(other.status(), StatusCode::OK);
    let other_token = csrf_of(&other.text().await.expect("html"));
    assert_ne!(other_token, token);
    let response = console_post(
        &server,
        "acme",
        "/console/installations",
        &session,
        Some(&origin),
        &[("csrf", &other_token), ("name", "evil-d")],
    )
    .send()
    .await
    .expect("answered");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    // A forged session (signed by no trusted key) is not a session at all.
    let forged = format!("{}x", &session[..session.len() - 1]);
    let response = console_post(
        &server,
        "acme",
        "/console/installations",
        &forged,
        Some(&origin),
        &[("csrf", &token), ("name", "evil-e")],
    )
    .send()
    .await
    .expect("answered");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let names = installation_names(&server).await;
    assert!(names.iter().all(|n| !n.starts_with("evil")), "{names:?}");

    // The console's own form, from its own page: it goes through.
    let response = console_post(
        &server,
        "acme",
        "/console/installations",
        &session,
        Some(&origin),
        &[("csrf", &token), ("name", "made-here")],
    )
    .send()
    .await
    .expect("answered");
    // (The client follows the console's 303 to the new installation's page.)
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .url()
            .path()
            .ends_with("/console/installations/made-here"),
        "{}",
        response.url()
    );
    assert!(
        installation_names(&server)
            .await
            .contains(&"made-here".to_owned())
    );

    // A member's session sees the pages but may not change anything.
    let member = veneer::test_support::member("acme");
    let member_page = server
        .client
        .get(server.url("/console/installations"))
        .header("host", format!("acme.{BASE}"))
        .header("cookie", format!("__session={member}"))
        .send()
        .await
        .expect("page");
    let member_token = csrf_of(&member_page.text().await.expect("html"));
    let response = console_post(
        &server,
        "acme",
        "/console/installations",
        &member,
        Some(&origin),
        &[("csrf", &member_token), ("name", "by-member")],
    )
    .send()
    .await
    .expect("answered");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(
        !installation_names(&server)
            .await
            .contains(&"by-member".to_owned())
    );

    // Another tenant's session on acme's host sees a 403 page, by header too.
    let response = server
        .client
        .get(server.url("/console"))
        .header("host", format!("acme.{BASE}"))
        .bearer_auth(admin("globex"))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body = response.text().await.expect("html");
    assert!(
        body.contains("wrong_tenant") && !body.contains("commission"),
        "{body}"
    );
}
