//! The cross-tenant attack matrix: every tenant endpoint on acme's host, attacked
//! with globex's token, with globex's resource ids, without a token, with expired,
//! wrong-issuer, `alg: none`, HS256-with-the-public-key, unknown-kid and
//! wrong-organisation tokens. Each answer is 401, 403 or 404, and no answer
//! contains any of globex's data.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use veneer::auth::{DEV_ISSUER, OrgRole, dev_token};

use super::harness::{Db, Server, admin, member, sale};
use veneer::both_backends;

const DEV_PRIVATE: &[u8] = include_bytes!("../../../host/auth/dev-keys/dev-private.pem");
const DEV_PUBLIC: &[u8] = include_bytes!("../../../host/auth/dev-keys/dev-public.pem");
const SECRET: &str = "globex-secret-value-7f3a";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn claims(org: &str, iss: &str, exp: u64) -> Value {
    json!({ "sub": "user_attacker", "iss": iss, "iat": now() - 60, "nbf": now() - 60, "exp": exp,
            "o": { "id": org, "rol": "admin" } })
}

fn rs256(claims: &Value, kid: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(DEV_PRIVATE).expect("dev key"),
    )
    .expect("sign")
}

fn forged_tokens() -> Vec<(&'static str, String, &'static [u16])> {
    let valid = claims("org_acme", DEV_ISSUER, now() + 3600);
    let unsigned = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(valid.to_string())
    );
    let mut hs_header = Header::new(Algorithm::HS256);
    hs_header.kid = Some("veneer-dev".into());
    let hs256 = encode(&hs_header, &valid, &EncodingKey::from_secret(DEV_PUBLIC)).expect("hs256");
    vec![
        (
            "expired",
            rs256(&claims("org_acme", DEV_ISSUER, now() - 600), "veneer-dev"),
            &[401],
        ),
        (
            "wrong issuer",
            rs256(
                &claims("org_acme", "https://evil.example", now() + 3600),
                "veneer-dev",
            ),
            &[401],
        ),
        ("alg none", unsigned, &[401]),
        ("hs256 with the public key", hs256, &[401]),
        ("unknown kid", rs256(&valid, "not-a-known-key"), &[401]),
        ("garbage", "not.a.token".into(), &[401]),
        ("globex's admin", admin("globex"), &[403]),
        (
            "unknown organisation",
            dev_token(
                "org_nobody",
                OrgRole::Admin,
                "user_x",
                false,
                std::time::Duration::from_secs(600),
            ),
            &[403],
        ),
    ]
}

struct Target {
    method: Method,
    path: String,
    body: Option<Value>,
    /// Names one of globex's resources (plugin hash, installation, release).
    foreign: bool,
}

/// Every tenant route; `globex_sha` and `globex_release` are globex's plugin
/// and live release (of its installation `catalog`).
fn targets(globex_sha: &str, globex_release: i64) -> Vec<Target> {
    let t = |method: Method, path: &str, body: Option<Value>| Target {
        method,
        path: path.to_owned(),
        body,
        foreign: path.contains(globex_sha)
            || path.contains("/installations/catalog")
            || path.contains(&format!("/{globex_release}")),
    };
    vec![
        t(Method::GET, "/v1/config", None),
        t(Method::GET, "/v1/config/categories", None),
        t(
            Method::POST,
            "/v1/commission/quote",
            Some(sale("bags", 10_000)),
        ),
        t(
            Method::POST,
            "/v1/email/preview",
            Some(json!({ "template": "welcome" })),
        ),
        t(Method::GET, "/v1/plugins", None),
        t(Method::GET, &format!("/v1/plugins/{globex_sha}"), None),
        t(Method::DELETE, &format!("/v1/plugins/{globex_sha}"), None),
        t(Method::GET, "/v1/installations", None),
        t(Method::GET, "/v1/catalogue", None),
        t(
            Method::POST,
            "/v1/installations",
            Some(json!({ "name": "x" })),
        ),
        t(
            Method::PUT,
            "/v1/installation-order",
            Some(json!({ "order": ["commission"] })),
        ),
        // Globex's installation by name, its release by id under acme's own
        // installation, and globex's plugin in a release of acme's.
        t(Method::GET, "/v1/installations/catalog", None),
        t(Method::DELETE, "/v1/installations/catalog", None),
        t(Method::GET, "/v1/installations/catalog/releases", None),
        t(
            Method::POST,
            "/v1/installations/catalog/releases",
            Some(json!({ "plugin": globex_sha, "settings": {} })),
        ),
        t(
            Method::GET,
            &format!("/v1/installations/catalog/releases/{globex_release}"),
            None,
        ),
        t(
            Method::GET,
            &format!("/v1/installations/commission/releases/{globex_release}"),
            None,
        ),
        t(
            Method::POST,
            &format!("/v1/installations/commission/releases/{globex_release}/activate"),
            None,
        ),
        t(
            Method::GET,
            &format!("/v1/installations/commission/releases/{globex_release}/diff"),
            None,
        ),
        t(
            Method::DELETE,
            &format!("/v1/installations/commission/releases/{globex_release}"),
            None,
        ),
        t(
            Method::GET,
            &format!("/v1/installations/commission/releases/{globex_release}/shadow"),
            None,
        ),
        t(
            Method::PUT,
            "/v1/installations/commission/shadow",
            Some(json!({ "release": globex_release, "rate": 1.0 })),
        ),
        t(
            Method::PUT,
            "/v1/installations/catalog/shadow",
            Some(json!({ "release": globex_release, "rate": 1.0 })),
        ),
        t(Method::DELETE, "/v1/installations/catalog/shadow", None),
        t(Method::GET, "/v1/rollout", None),
        t(Method::GET, "/v1/records", None),
        t(Method::GET, "/v1/domains", None),
        t(
            Method::POST,
            "/v1/domains",
            Some(json!({ "domain": "shop.acme.example" })),
        ),
        t(Method::GET, "/v1/domains/shop.acme.example", None),
        t(Method::DELETE, "/v1/domains/shop.acme.example", None),
        t(Method::POST, "/v1/domains/shop.acme.example/check", None),
        t(
            Method::POST,
            "/v1/domains/shop.acme.example/certificate/retry",
            None,
        ),
        t(Method::GET, "/v1/email/domains", None),
        t(Method::GET, "/v1/email/domains/acme.example", None),
        t(Method::POST, "/v1/email/domains/acme.example/check", None),
        t(Method::POST, "/v1/email/domains/acme.example/rotate", None),
        t(Method::DELETE, "/v1/email/domains/acme.example", None),
        t(
            Method::PUT,
            "/v1/rollout",
            Some(json!({ "shadow_gate": 1 })),
        ),
        t(
            Method::POST,
            "/v1/installations/commission/rollback",
            Some(json!({ "to": globex_release })),
        ),
        t(
            Method::POST,
            "/v1/installations/commission/releases",
            Some(json!({ "plugin": globex_sha, "settings": {} })),
        ),
        t(Method::POST, "/v1/installations/catalog/rollback", None),
        t(Method::POST, "/v1/installations/catalog/deactivate", None),
        t(Method::GET, "/v1/installations/catalog/quota", None),
        t(Method::GET, "/v1/installations/catalog/headroom", None),
        t(Method::GET, "/v1/policy", None),
        t(Method::GET, "/v1/installations/commission", None),
        t(Method::GET, "/v1/installations/commission/quota", None),
        t(Method::GET, "/v1/kv", None),
        t(Method::GET, "/v1/kv/secret", None),
        t(
            Method::PUT,
            "/v1/kv/secret",
            Some(json!({ "value": "overwritten" })),
        ),
        t(Method::DELETE, "/v1/kv/secret", None),
        t(Method::GET, "/v1/runs", None),
        t(Method::GET, "/v1/usage", None),
        t(Method::GET, "/v1/quota", None),
        t(Method::GET, "/v1/audit", None),
        t(Method::GET, "/v1/jobs", None),
        t(Method::GET, "/v1/jobs/1", None),
        t(Method::POST, "/v1/jobs/1/retry", None),
        t(Method::GET, "/v1/shopify", None),
        t(
            Method::PUT,
            "/v1/shopify",
            Some(
                json!({ "shop_domain": "x.myshopify.com", "access_token": "t", "app_secret": "s" }),
            ),
        ),
        t(Method::DELETE, "/v1/shopify", None),
        t(Method::GET, "/v1/shopify/app", None),
        t(
            Method::PUT,
            "/v1/shopify/app",
            Some(json!({ "client_id": "c", "client_secret": "s", "scopes": ["read_products"] })),
        ),
        t(Method::DELETE, "/v1/shopify/app", None),
        t(Method::GET, "/v1/shopify/subscriptions", None),
        t(Method::GET, "/v1/shopify/data-requests", None),
        t(Method::GET, "/v1/shopify/data-requests/9001", None),
        t(Method::POST, "/v1/shopify/subscriptions/sync", None),
        t(
            Method::GET,
            "/v1/shopify/install?shop=x.myshopify.com",
            None,
        ),
        t(Method::GET, "/v1/shopify/commissions", None),
        t(Method::GET, "/v1/shopify/products", None),
        t(Method::GET, "/v1/email/settings", None),
        t(
            Method::PUT,
            "/v1/email/settings",
            Some(
                json!({ "sending_domain": "x.example", "from_name": "X", "from_address": "a@x.example" }),
            ),
        ),
        t(
            Method::POST,
            "/v1/email/send",
            Some(json!({ "template": "welcome", "to": "ann@example.com" })),
        ),
        t(Method::GET, "/v1/email/messages", None),
        t(Method::GET, "/v1/email/suppressions", None),
        t(
            Method::DELETE,
            "/v1/email/suppressions/ann@example.com",
            None,
        ),
    ]
}

fn leaks(body: &Value, globex_sha: &str) -> Option<&'static str> {
    let text = body.to_string();
    [
        (SECRET, "globex's kv value"),
        (globex_sha, "globex's plugin hash"),
        ("org_globex", "globex's organisation"),
        ("Globex", "globex's name"),
        ("shoes-men-extra-marker", "globex's settings"),
    ]
    .into_iter()
    .find(|(needle, _)| text.contains(needle))
    .map(|(_, what)| what)
}

async fn attack_matrix(db: Db) {
    let server = Server::in_process(db).await;
    let globex = admin("globex");
    let (status, _) = server
        .call(
            Method::PUT,
            "globex",
            "/v1/kv/secret",
            Some(&globex),
            Some(json!({ "value": SECRET })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Globex's live release carries a marker (in its note) to look for.
    let (status, live) = server.get("globex", "/v1/installations", &globex).await;
    assert_eq!(status, StatusCode::OK, "{live}");
    assert_eq!(live["installations"][0]["name"], "catalog", "{live}");
    let globex_sha = live["installations"][0]["live"]["plugin"]
        .as_str()
        .expect("globex has a live plugin")
        .to_owned();
    let (status, body) = server
        .call(
            Method::POST,
            "globex",
            "/v1/installations/catalog/releases",
            Some(&globex),
            Some(json!({
                "plugin": globex_sha,
                "settings": { "charts": ["shoes-men"] },
                "note": "shoes-men-extra-marker",
            })),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let globex_release = body["release"]["id"].as_i64().expect("release id");
    server
        .activate_release("globex", &globex, "catalog", globex_release)
        .await;
    let (status, live) = server.get("globex", "/v1/installations", &globex).await;
    assert_eq!(status, StatusCode::OK, "{live}");

    let mut checked = 0;
    for target in targets(&globex_sha, globex_release) {
        // A's own admin token, B's resource ids under A's host: 404, never B's data.
        if target.foreign {
            let (status, body) = server
                .call(
                    target.method.clone(),
                    "acme",
                    &target.path,
                    Some(&admin("acme")),
                    target.body.clone(),
                )
                .await;
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "{} {} with acme's token: {body}",
                target.method,
                target.path
            );
            assert_eq!(
                leaks(&body, &globex_sha),
                None,
                "{} {}",
                target.method,
                target.path
            );
            checked += 1;
        }
        // No token at all.
        let (status, body) = server
            .call(
                target.method.clone(),
                "acme",
                &target.path,
                None,
                target.body.clone(),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{} {} without a token: {body}",
            target.method,
            target.path
        );
        assert_eq!(body["error"]["code"], "missing_token");
        for (name, token, allowed) in forged_tokens() {
            let (status, body) = server
                .call(
                    target.method.clone(),
                    "acme",
                    &target.path,
                    Some(&token),
                    target.body.clone(),
                )
                .await;
            assert!(
                allowed.contains(&status.as_u16()),
                "{} {} with the {name} token answered {status}: {body}",
                target.method,
                target.path
            );
            assert!(
                body["error"]["code"].is_string(),
                "{name}: an error body with a code: {body}"
            );
            assert_eq!(
                leaks(&body, &globex_sha),
                None,
                "{name} on {} {}",
                target.method,
                target.path
            );
            checked += 1;
        }
        // An unknown host is a 404 before anything else, even with a valid token.
        let (status, body) = server
            .call(
                target.method.clone(),
                "nosuchtenant",
                &target.path,
                Some(&admin("acme")),
                target.body.clone(),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "unknown_host");
    }
    assert!(checked > 150, "the matrix ran ({checked} cases)");

    // Globex's data is intact after the attacks.
    let (status, body) = server.get("globex", "/v1/kv/secret", &globex).await;
    assert_eq!(
        (status, body["value"].as_str()),
        (StatusCode::OK, Some(SECRET))
    );
    let (status, after) = server.get("globex", "/v1/installations", &globex).await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after, live, "globex's installations are untouched");
    let (status, acme_live) = server
        .get("acme", "/v1/installations", &admin("acme"))
        .await;
    assert_eq!(status, StatusCode::OK, "{acme_live}");
    assert_eq!(
        leaks(&acme_live, &globex_sha),
        None,
        "acme did not get globex's plugin or settings"
    );
}
both_backends!(cross_tenant_attack_matrix, attack_matrix);

async fn roles(db: Db) {
    let server = Server::in_process(db).await;
    let m = member("acme");
    let (status, _) = server.get("acme", "/v1/config", &m).await;
    assert_eq!(status, StatusCode::OK, "members read");
    for (method, path, body) in [
        (
            Method::POST,
            "/v1/installations",
            Some(json!({ "name": "x" })),
        ),
        (
            Method::POST,
            "/v1/installations/commission/releases",
            Some(json!({ "plugin": "a".repeat(64), "settings": {} })),
        ),
        (Method::POST, "/v1/installations/commission/rollback", None),
        (
            Method::POST,
            "/v1/installations/commission/deactivate",
            None,
        ),
        (Method::DELETE, "/v1/installations/commission", None),
        (
            Method::PUT,
            "/v1/installation-order",
            Some(json!({ "order": ["commission"] })),
        ),
        (Method::PUT, "/v1/kv/x", Some(json!({ "value": "y" }))),
        (Method::GET, "/v1/audit", None),
    ] {
        let (status, body) = server
            .call(method.clone(), "acme", path, Some(&m), body)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "insufficient_role");
    }
    // Tenant tokens are not platform admins; admin routes live on the platform host.
    let (status, _) = server.get("", "/v1/admin/tenants", &admin("acme")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A tenant admin cannot raise its own installation's quota.
    for (method, body) in [
        (Method::GET, None),
        (Method::PUT, Some(json!({ "fuel": 9_000_000_000u64 }))),
    ] {
        let (status, body) = server
            .call(
                method.clone(),
                "",
                "/v1/admin/tenants/acme/installations/commission/quota",
                Some(&admin("acme")),
                body,
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method}: {body}");
    }
    // Nor relink its tenant to another organisation (or rename it).
    let (status, body) = server
        .call(
            Method::PATCH,
            "",
            "/v1/admin/tenants/acme",
            Some(&admin("acme")),
            Some(json!({ "org_id": "org_attacker" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // Nor export a tenant's archive (its own or another's), nor import one.
    for path in [
        "/v1/admin/tenants/acme/export",
        "/v1/admin/tenants/globex/export",
        "/v1/admin/tenants/import",
    ] {
        let (status, body) = server
            .call(
                Method::POST,
                "",
                path,
                Some(&admin("acme")),
                Some(json!({})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
    }
    let (status, _) = server
        .get(
            "acme",
            "/v1/admin/tenants",
            &super::harness::platform_admin(),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "admin routes are not served on tenant hosts"
    );
}
both_backends!(roles_are_enforced, roles);
