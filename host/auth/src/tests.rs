//! Authentication tested from the attacker's side against a real JWKS server
//! (axum on 127.0.0.1:0) that serves keys made from the committed fixtures in
//! `tests/fixtures/keys/` and counts its hits.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::task::{JoinHandle, JoinSet};

use super::*;

macro_rules! fixture {
    ($name:literal) => {
        include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/keys/",
            $name
        ))
    };
}

const RSA_PRIVATE: &str = fixture!("rsa-private.pem");
const RSA_PUBLIC: &str = fixture!("rsa-public.pem");
const EC_PRIVATE: &str = fixture!("ec-private.pem");
const EC_PUBLIC: &str = fixture!("ec-public.pem");
const ATTACKER_PRIVATE: &str = fixture!("attacker-rsa-private.pem");
const ATTACKER_PUBLIC: &str = fixture!("attacker-rsa-public.pem");
const DEV_PRIVATE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/dev-keys/dev-private.pem"
));

const ISSUER: &str = "https://clerk.veneer.test";
const APP: &str = "https://app.veneer.test";
const RSA_KID: &str = "ins_rsa_1";
const EC_KID: &str = "ins_ec_1";

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/keys"
    ))
    .join(name)
}

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

// ---------------------------------------------------------------- JWKS server

fn jwk(public_pem: &str, alg: Algorithm, kid: &str) -> Value {
    let key = match alg {
        Algorithm::ES256 => DecodingKey::from_ec_pem(public_pem.as_bytes()).unwrap(),
        _ => DecodingKey::from_rsa_pem(public_pem.as_bytes()).unwrap(),
    };
    let mut jwk = Jwk::from_decoding_key(&key, Some(alg)).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    serde_json::to_value(jwk).unwrap()
}

fn rsa_jwk() -> Value {
    jwk(RSA_PUBLIC, Algorithm::RS256, RSA_KID)
}

fn ec_jwk() -> Value {
    jwk(EC_PUBLIC, Algorithm::ES256, EC_KID)
}

#[derive(Clone, Default)]
struct Served {
    keys: Arc<Mutex<Vec<Value>>>,
    hits: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
}

struct JwksServer {
    url: String,
    served: Served,
    task: JoinHandle<()>,
}

async fn serve_jwks(State(served): State<Served>) -> Response {
    served.hits.fetch_add(1, Ordering::SeqCst);
    if served.failing.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let keys = served.keys.lock().unwrap().clone();
    Json(json!({ "keys": keys })).into_response()
}

impl JwksServer {
    async fn start(keys: Vec<Value>) -> Self {
        let served = Served::default();
        *served.keys.lock().unwrap() = keys;
        let app = Router::new()
            .route("/.well-known/jwks.json", get(serve_jwks))
            .with_state(served.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        JwksServer {
            url: format!("http://{addr}/.well-known/jwks.json"),
            served,
            task,
        }
    }

    fn hits(&self) -> usize {
        self.served.hits.load(Ordering::SeqCst)
    }

    fn set_keys(&self, keys: Vec<Value>) {
        *self.served.keys.lock().unwrap() = keys;
    }

    fn set_failing(&self, failing: bool) {
        self.served.failing.store(failing, Ordering::SeqCst);
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A loopback URL where nothing listens: connections are refused at once.
async fn dead_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/.well-known/jwks.json")
}

// --------------------------------------------------------------- token makers

fn claims_v2(org: &str, rol: &str) -> Value {
    let now = now();
    json!({
        "iss": ISSUER, "sub": "user_2abc", "azp": APP,
        "iat": now, "nbf": now - 1, "exp": now + 300,
        "sid": "sess_1", "v": 2,
        "o": { "id": org, "rol": rol, "slg": "acme" },
    })
}

fn claims_v1(org: &str, role: &str) -> Value {
    let now = now();
    json!({
        "iss": ISSUER, "sub": "user_2abc", "azp": APP,
        "iat": now, "nbf": now - 1, "exp": now + 300,
        "sid": "sess_1",
        "org_id": org, "org_role": role, "org_slug": "acme",
    })
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

fn sign(alg: Algorithm, private_pem: &str, kid: Option<&str>, claims: &Value) -> String {
    let key = match alg {
        Algorithm::ES256 => EncodingKey::from_ec_pem(private_pem.as_bytes()).unwrap(),
        _ => EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap(),
    };
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

fn rs256(claims: &Value) -> String {
    sign(Algorithm::RS256, RSA_PRIVATE, Some(RSA_KID), claims)
}

fn es256(claims: &Value) -> String {
    sign(Algorithm::ES256, EC_PRIVATE, Some(EC_KID), claims)
}

fn hand_built(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

// ------------------------------------------------------------- authenticators

fn jwks_config(url: &str) -> AuthConfig {
    AuthConfig {
        issuer: Some(ISSUER.to_owned()),
        jwks_url: Some(url.to_owned()),
        ..AuthConfig::default()
    }
}

async fn jwks_auth(server: &JwksServer) -> Authenticator {
    Authenticator::new(jwks_config(&server.url)).await.unwrap()
}

fn pem_config(file: &str) -> AuthConfig {
    AuthConfig {
        issuer: Some(ISSUER.to_owned()),
        pem_file: Some(fixture_path(file)),
        ..AuthConfig::default()
    }
}

async fn code_of(auth: &Authenticator, token: &str) -> &'static str {
    match auth.verify(token).await {
        Ok(principal) => panic!("token was accepted: {principal:?}"),
        Err(error) => {
            // Every refusal must explain itself without echoing key material.
            let message = error.to_string();
            assert!(!message.is_empty());
            assert!(
                !message.contains("BEGIN") && !message.contains("MII"),
                "{message}"
            );
            error.code()
        }
    }
}

// ---------------------------------------------------------------------- tests

#[tokio::test]
async fn rs256_token_with_v2_claims_gives_a_principal() {
    let server = JwksServer::start(vec![rsa_jwk(), ec_jwk()]).await;
    let auth = jwks_auth(&server).await;
    let principal = auth
        .verify(&rs256(&claims_v2("org_acme", "admin")))
        .await
        .unwrap();
    assert_eq!(
        *principal,
        Principal {
            subject: "user_2abc".into(),
            org_id: Some("org_acme".into()),
            org_role: Some(OrgRole::Admin),
            platform_admin: false,
            issuer: ISSUER.into(),
            issued_at: principal.issued_at,
        }
    );
    assert!(principal.issued_at.is_some_and(|iat| iat + 60 > now()));
    assert_eq!(server.hits(), 1);
    // A second token is answered from the cache.
    auth.verify(&rs256(&claims_v2("org_acme", "member")))
        .await
        .unwrap();
    assert_eq!(server.hits(), 1);
    assert_eq!(
        serde_json::to_value(&*principal).unwrap()["org_role"],
        json!("admin")
    );
}

#[tokio::test]
async fn es256_token_with_v1_claims_gives_a_principal() {
    let server = JwksServer::start(vec![rsa_jwk(), ec_jwk()]).await;
    let auth = jwks_auth(&server).await;
    let principal = auth
        .verify(&es256(&claims_v1("org_acme", "org:admin")))
        .await
        .unwrap();
    assert_eq!(principal.org_id.as_deref(), Some("org_acme"));
    assert_eq!(principal.org_role, Some(OrgRole::Admin));
    assert_eq!(principal.subject, "user_2abc");
}

#[tokio::test]
async fn roles_map_for_both_layouts() {
    let server = JwksServer::start(vec![rsa_jwk(), ec_jwk()]).await;
    let auth = jwks_auth(&server).await;
    let cases = [
        (claims_v1("org_a", "org:admin"), Some(OrgRole::Admin)),
        (claims_v1("org_a", "admin"), Some(OrgRole::Admin)),
        (claims_v1("org_a", "org:member"), Some(OrgRole::Member)),
        (claims_v1("org_a", "basic_member"), Some(OrgRole::Member)),
        (claims_v1("org_a", "org:billing_manager"), None),
        (claims_v2("org_a", "admin"), Some(OrgRole::Admin)),
        (claims_v2("org_a", "member"), Some(OrgRole::Member)),
        (claims_v2("org_a", "support"), None),
    ];
    for (claims, want) in cases {
        for token in [rs256(&claims), es256(&claims)] {
            let principal = auth.verify(&token).await.unwrap();
            assert_eq!(principal.org_role, want, "{claims}");
            assert_eq!(principal.org_id.as_deref(), Some("org_a"));
        }
    }
    // No organisation at all: a signed-in user outside any org.
    let claims = without(claims_v2("org_a", "admin"), "o");
    let principal = auth.verify(&rs256(&claims)).await.unwrap();
    assert_eq!(
        (principal.org_id.as_deref(), principal.org_role),
        (None, None)
    );
    // Two layouts naming two organisations: refused, not guessed.
    let claims = with(claims_v2("org_a", "admin"), "org_id", json!("org_b"));
    assert_eq!(code_of(&auth, &rs256(&claims)).await, "malformed_token");
}

#[tokio::test]
async fn expiry_is_enforced_with_a_small_leeway() {
    let server = JwksServer::start(vec![rsa_jwk()]).await;
    let auth = jwks_auth(&server).await; // default leeway: 5 s
    let expired = with(claims_v2("org_a", "admin"), "exp", json!(now() - 60));
    assert_eq!(code_of(&auth, &rs256(&expired)).await, "expired");
    let just_expired = with(claims_v2("org_a", "admin"), "exp", json!(now() - 3));
    auth.verify(&rs256(&just_expired)).await.unwrap();

    let strict = Authenticator::new(AuthConfig {
        leeway_secs: 0,
        ..jwks_config(&server.url)
    })
    .await
    .unwrap();
    let expired = with(claims_v2("org_a", "admin"), "exp", json!(now() - 2));
    assert_eq!(code_of(&strict, &rs256(&expired)).await, "expired");
}

#[tokio::test]
async fn tokens_meant_to_live_too_long_are_refused() {
    let server = JwksServer::start(vec![rsa_jwk()]).await;
    let auth = jwks_auth(&server).await; // default maximum: 24 h
    let year_3000 = 32_503_680_000u64;
    let forever = with(claims_v2("org_a", "admin"), "exp", json!(year_3000));
    assert_eq!(
        code_of(&auth, &rs256(&forever)).await,
        "token_lifetime_too_long"
    );
    let message = auth.verify(&rs256(&forever)).await.unwrap_err().to_string();
    assert!(message.contains("86400 s"), "{message}");
    // Without `iat`, the lifetime counts from now.
    let no_iat = without(forever.clone(), "iat");
    assert_eq!(
        code_of(&auth, &rs256(&no_iat)).await,
        "token_lifetime_too_long"
    );
    // An `iat` claimed in the future does not shorten it either.
    let future_iat = with(forever.clone(), "iat", json!(year_3000 - 60));
    assert_eq!(
        code_of(&auth, &rs256(&future_iat)).await,
        "token_lifetime_too_long"
    );
    // Issued two days ago, still valid for a minute: a two-day token.
    let old = with(
        with(
            claims_v2("org_a", "admin"),
            "iat",
            json!(now() - 2 * 86_400),
        ),
        "exp",
        json!(now() + 60),
    );
    assert_eq!(
        code_of(&auth, &rs256(&old)).await,
        "token_lifetime_too_long"
    );
    let not_a_time = with(claims_v2("org_a", "admin"), "iat", json!("yesterday"));
    assert_eq!(code_of(&auth, &rs256(&not_a_time)).await, "malformed_token");
    // A day is the limit (the dev token's default), within the leeway.
    let day = with(claims_v2("org_a", "admin"), "exp", json!(now() + 86_400));
    auth.verify(&rs256(&day)).await.unwrap();
    let day_and_a_minute = with(claims_v2("org_a", "admin"), "exp", json!(now() + 86_460));
    assert_eq!(
        code_of(&auth, &rs256(&day_and_a_minute)).await,
        "token_lifetime_too_long"
    );

    let strict = Authenticator::new(AuthConfig {
        max_lifetime_secs: Some(60),
        ..jwks_config(&server.url)
    })
    .await
    .unwrap();
    assert_eq!(
        code_of(&strict, &rs256(&claims_v2("org_a", "admin"))).await,
        "token_lifetime_too_long",
        "a five-minute token over a one-minute maximum"
    );
    let off = Authenticator::new(AuthConfig {
        max_lifetime_secs: None,
        ..jwks_config(&server.url)
    })
    .await
    .unwrap();
    off.verify(&rs256(&forever)).await.unwrap();
}

#[tokio::test]
async fn not_before_is_honoured() {
    let server = JwksServer::start(vec![rsa_jwk()]).await;
    let auth = jwks_auth(&server).await;
    let future = with(claims_v2("org_a", "admin"), "nbf", json!(now() + 120));
    assert_eq!(code_of(&auth, &rs256(&future)).await, "not_yet_valid");
    let skewed = with(claims_v2("org_a", "admin"), "nbf", json!(now() + 3));
    auth.verify(&rs256(&skewed)).await.unwrap();
}

#[tokio::test]
async fn required_claims_must_be_present_and_typed() {
    let server = JwksServer::start(vec![rsa_jwk()]).await;
    let auth = jwks_auth(&server).await;
    let base = claims_v2("org_a", "admin");
    for claim in ["exp", "sub", "iss"] {
        let token = rs256(&without(base.clone(), claim));
        assert_eq!(code_of(&auth, &token).await, "missing_claim", "{claim}");
        let AuthError::MissingClaim { claim: named } = auth.verify(&token).await.unwrap_err()
        else {
            panic!("wrong error");
        };
        assert_eq!(named, claim);
    }
    let empty_sub = with(base.clone(), "sub", json!(""));
    assert_eq!(code_of(&auth, &rs256(&empty_sub)).await, "missing_claim");
    let numeric_sub = with(base.clone(), "sub", json!(42));
    assert_eq!(code_of(&auth, &rs256(&numeric_sub)).await, "missing_claim");
    let text_exp = with(base, "exp", json!("tomorrow"));
    assert_eq!(code_of(&auth, &rs256(&text_exp)).await, "missing_claim");
}

#[tokio::test]
async fn wrong_issuer_is_refused() {
    let server = JwksServer::start(vec![rsa_jwk()]).await;
    let auth = jwks_auth(&server).await;
    let claims = with(
        claims_v2("org_a", "admin"),
        "iss",
        json!("https://evil.example"),
    );
    let error = auth.verify(&rs256(&claims)).await.unwrap_err();
    assert_eq!(error.code(), "wrong_issuer");
    assert!(error.to_string().contains(ISSUER), "{error}");
    // An array that contains the right issuer is still not "equal".
    let claims = with(
        claims_v2("org_a", "admin"),
        "iss",
        json!([ISSUER, "https://evil.example"]),
    );
    assert_eq!(code_of(&auth, &rs256(&claims)).await, "wrong_issuer");
    // A trailing slash is a different issuer.
    let claims = with(
        claims_v2("org_a", "admin"),
        "iss",
        json!(format!("{ISSUER}/")),
    );
    assert_eq!(code_of(&auth, &rs256(&claims)).await, "wrong_issuer");
}

#[tokio::test]
async fn azp_is_checked_against_the_allow_list() {
    let server = JwksServer::start(vec![rsa_jwk()]).await;
    let auth = Authenticator::new(AuthConfig {
        authorized_parties: vec![APP.to_owned(), "http://localhost:3000".to_owned()],
        ..jwks_config(&server.url)
    })
    .await
    .unwrap();
    auth.verify(&rs256(&claims_v2("org_a", "admin")))
        .await
        .unwrap();
    let other = with(
        claims_v2("org_a", "admin"),
        "azp",
        json!("https://phish.example"),
    );
    let error = auth.verify(&rs256(&other)).await.unwrap_err();
    assert_eq!(error.code(), "unauthorized_party");
    assert!(error.to_string().contains("https://phish.example"));
    let missing = without(claims_v2("org_a", "admin"), "azp");
    assert_eq!(code_of(&auth, &rs256(&missing)).await, "unauthorized_party");

    // An empty list does not check azp at all.
    let open = jwks_auth(&server).await;
    open.verify(&rs256(&other)).await.unwrap();
    open.verify(&rs256(&missing)).await.unwrap();
}

#[tokio::test]
async fn alg_none_is_refused_before_any_key_is_used() {
    let server = JwksServer::start(vec![rsa_jwk()]).await;
    let auth = jwks_auth(&server).await;
    let claims = claims_v2("org_a", "admin");
    for alg in ["none", "None", "NONE"] {
        let header = json!({ "alg": alg, "typ": "JWT", "kid": RSA_KID });
        let unsigned = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        assert_eq!(code_of(&auth, &unsigned).await, "algorithm_not_allowed");
        let with_junk_signature = hand_built(&header, &claims, b"whatever");
        assert_eq!(
            code_of(&auth, &with_junk_signature).await,
            "algorithm_not_allowed"
        );
    }
    assert_eq!(
        server.hits(),
        0,
        "no key may be fetched for a refused algorithm"
    );
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    let claims = claims_v2("org_a", "admin");
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(RSA_KID.to_owned());
    let forged = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
    )
    .unwrap();

    let server = JwksServer::start(vec![rsa_jwk()]).await;
    let auth = jwks_auth(&server).await;
    assert_eq!(code_of(&auth, &forged).await, "algorithm_not_allowed");
    assert_eq!(server.hits(), 0);

    // The classic target is a server holding the PEM public key.
    let pem_auth = Authenticator::new(pem_config("rsa-public.pem"))
        .await
        .unwrap();
    assert_eq!(code_of(&pem_auth, &forged).await, "algorithm_not_allowed");
    header.kid = None;
    let forged = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
    )
    .unwrap();
    assert_eq!(code_of(&pem_auth, &forged).await, "algorithm_not_allowed");
}

#[tokio::test]
async fn other_algorithms_and_mismatched_keys_are_refused() {
    let server = JwksServer::start(vec![rsa_jwk(), ec_jwk()]).await;
    let auth = jwks_auth(&server).await;
    let claims = claims_v2("org_a", "admin");
    for alg in [Algorithm::RS384, Algorithm::RS512, Algorithm::PS256] {
        let token = sign(alg, RSA_PRIVATE, Some(RSA_KID), &claims);
        assert_eq!(
            code_of(&auth, &token).await,
            "algorithm_not_allowed",
            "{alg:?}"
        );
    }
    assert_eq!(server.hits(), 0);
    // ES256 header naming the RSA key, and RS256 naming the EC key.
    let token = sign(Algorithm::ES256, EC_PRIVATE, Some(RSA_KID), &claims);
    assert_eq!(code_of(&auth, &token).await, "algorithm_not_allowed");
    let token = sign(Algorithm::RS256, RSA_PRIVATE, Some(EC_KID), &claims);
    assert_eq!(code_of(&auth, &token).await, "algorithm_not_allowed");
}

#[tokio::test]
async fn a_signature_by_another_key_with_a_known_kid_is_refused() {
    let server = JwksServer::start(vec![rsa_jwk()]).await;
    let auth = jwks_auth(&server).await;
    let forged = sign(
        Algorithm::RS256,
        ATTACKER_PRIVATE,
        Some(RSA_KID),
        &claims_v2("org_victim", "admin"),
    );
    assert_eq!(code_of(&auth, &forged).await, "bad_signature");

    // Same with a tampered payload on a genuine token.
    let genuine = rs256(&claims_v2("org_a", "member"));
    let mut parts: Vec<&str> = genuine.split('.').collect();
    let tampered_claims = URL_SAFE_NO_PAD.encode(claims_v2("org_a", "admin").to_string());
    parts[1] = &tampered_claims;
    assert_eq!(code_of(&auth, &parts.join(".")).await, "bad_signature");
}

#[tokio::test]
async fn a_flood_of_unknown_kids_refetches_at_most_once_a_minute() {
    let server = JwksServer::start(vec![rsa_jwk()]).await;
    let auth = jwks_auth(&server).await;
    auth.verify(&rs256(&claims_v2("org_a", "admin")))
        .await
        .unwrap();
    assert_eq!(server.hits(), 1);

    let claims = claims_v2("org_a", "admin");
    let mut flood = JoinSet::new();
    for i in 0..50 {
        let auth = auth.clone();
        let token = sign(
            Algorithm::RS256,
            ATTACKER_PRIVATE,
            Some(&format!("made-up-{i}")),
            &claims,
        );
        flood.spawn(async move { auth.verify(&token).await });
    }
    while let Some(result) = flood.join_next().await {
        assert_eq!(result.unwrap().unwrap_err().code(), "unknown_key");
    }
    assert_eq!(server.hits(), 2, "50 concurrent unknown kids: one refetch");

    for i in 50..100 {
        let token = sign(
            Algorithm::RS256,
            ATTACKER_PRIVATE,
            Some(&format!("made-up-{i}")),
            &claims,
        );
        assert_eq!(code_of(&auth, &token).await, "unknown_key");
    }
    assert_eq!(server.hits(), 2, "and none more within the minute");
    // Known keys keep working meanwhile, from the cache.
    auth.verify(&rs256(&claims)).await.unwrap();
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn concurrent_first_requests_share_one_fetch() {
    let server = JwksServer::start(vec![rsa_jwk(), ec_jwk()]).await;
    let auth = jwks_auth(&server).await;
    let mut burst = JoinSet::new();
    for i in 0..20 {
        let auth = auth.clone();
        let claims = claims_v2("org_a", "admin");
        let token = if i % 2 == 0 {
            rs256(&claims)
        } else {
            es256(&claims)
        };
        burst.spawn(async move { auth.verify(&token).await });
    }
    while let Some(result) = burst.join_next().await {
        result.unwrap().unwrap();
    }
    assert_eq!(server.hits(), 1);
}

#[tokio::test]
async fn a_rotated_key_is_picked_up_by_its_first_token() {
    let server = JwksServer::start(vec![rsa_jwk()]).await;
    let auth = jwks_auth(&server).await;
    auth.verify(&rs256(&claims_v2("org_a", "admin")))
        .await
        .unwrap();
    assert_eq!(server.hits(), 1);

    // The provider publishes a new key and starts signing with it.
    server.set_keys(vec![
        rsa_jwk(),
        jwk(EC_PUBLIC, Algorithm::ES256, "ins_rotated"),
    ]);
    let token = sign(
        Algorithm::ES256,
        EC_PRIVATE,
        Some("ins_rotated"),
        &claims_v1("org_a", "org:member"),
    );
    let principal = auth.verify(&token).await.unwrap();
    assert_eq!(principal.org_role, Some(OrgRole::Member));
    assert_eq!(server.hits(), 2);
    auth.verify(&token).await.unwrap();
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn a_removed_key_stops_working_once_the_cache_is_stale() {
    let server = JwksServer::start(vec![rsa_jwk(), ec_jwk()]).await;
    let policy = RefetchPolicy {
        max_age: Duration::from_millis(100),
        ..RefetchPolicy::default()
    };
    let auth =
        Authenticator::build(jwks_config(&server.url), policy, Arc::new(SystemClock)).unwrap();
    auth.verify(&rs256(&claims_v2("org_a", "admin")))
        .await
        .unwrap();
    server.set_keys(vec![ec_jwk()]);
    // Still fresh: the cached key answers.
    auth.verify(&rs256(&claims_v2("org_a", "admin")))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        code_of(&auth, &rs256(&claims_v2("org_a", "admin"))).await,
        "unknown_key"
    );
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn a_stale_key_outlives_a_jwks_outage() {
    let server = JwksServer::start(vec![rsa_jwk()]).await;
    let policy = RefetchPolicy {
        max_age: Duration::from_millis(100),
        ..RefetchPolicy::default()
    };
    let auth =
        Authenticator::build(jwks_config(&server.url), policy, Arc::new(SystemClock)).unwrap();
    auth.verify(&rs256(&claims_v2("org_a", "admin")))
        .await
        .unwrap();
    server.set_failing(true);
    tokio::time::sleep(Duration::from_millis(150)).await;
    auth.verify(&rs256(&claims_v2("org_a", "admin")))
        .await
        .unwrap();
    assert_eq!(server.hits(), 2);
    // Unknown kids during the outage are "try later", not "forged".
    let token = sign(
        Algorithm::RS256,
        RSA_PRIVATE,
        Some("ins_new"),
        &claims_v2("org_a", "admin"),
    );
    assert_eq!(code_of(&auth, &token).await, "keys_unavailable");
    assert_eq!(
        server.hits(),
        2,
        "within the failure backoff: no new request"
    );
}

#[tokio::test]
async fn jwks_server_down_means_keys_unavailable() {
    let auth = Authenticator::new(jwks_config(&dead_url().await))
        .await
        .unwrap();
    let error = auth
        .verify(&rs256(&claims_v2("org_a", "admin")))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "keys_unavailable");
    assert!(error.is_unavailable());
    assert!(!AuthError::BadSignature.is_unavailable());
}

#[tokio::test]
async fn a_failing_jwks_server_is_not_hammered_and_recovers() {
    let server = JwksServer::start(vec![rsa_jwk()]).await;
    server.set_failing(true);
    let policy = RefetchPolicy {
        failure_backoff: Duration::from_millis(200),
        ..RefetchPolicy::default()
    };
    let auth =
        Authenticator::build(jwks_config(&server.url), policy, Arc::new(SystemClock)).unwrap();
    let token = rs256(&claims_v2("org_a", "admin"));
    for _ in 0..20 {
        assert_eq!(code_of(&auth, &token).await, "keys_unavailable");
    }
    assert_eq!(server.hits(), 1);
    server.set_failing(false);
    tokio::time::sleep(Duration::from_millis(250)).await;
    auth.verify(&token).await.unwrap();
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn the_jwks_need_not_be_reachable_at_start() {
    let url = dead_url().await;
    assert!(Authenticator::new(jwks_config(&url)).await.is_ok());
}

#[tokio::test]
async fn odd_jwks_entries_are_skipped_not_fatal() {
    let weak_or_odd = vec![
        json!({ "kty": "oct", "kid": "hmac", "k": URL_SAFE_NO_PAD.encode(RSA_PUBLIC) }),
        json!({ "kty": "RSA", "kid": "enc", "use": "enc", "n": rsa_jwk()["n"], "e": "AQAB" }),
        json!({ "kty": "RSA", "kid": "rs512", "alg": "RS512", "n": rsa_jwk()["n"], "e": "AQAB" }),
        json!({ "kty": "RSA", "kid": "tiny", "n": URL_SAFE_NO_PAD.encode([0xC5u8; 64]), "e": "AQAB" }),
        json!({ "kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" }),
        json!({ "kty": "RSA", "kid": "broken", "n": 12 }),
        json!("not even an object"),
    ];
    let mut keys = weak_or_odd;
    keys.push(rsa_jwk());
    let server = JwksServer::start(keys).await;
    let auth = jwks_auth(&server).await;
    auth.verify(&rs256(&claims_v2("org_a", "admin")))
        .await
        .unwrap();

    // The HMAC entry holds our public key as its secret: still no HS256.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("hmac".to_owned());
    let forged = jsonwebtoken::encode(
        &header,
        &claims_v2("org_a", "admin"),
        &EncodingKey::from_secret(RSA_PUBLIC.as_bytes()),
    )
    .unwrap();
    assert_eq!(code_of(&auth, &forged).await, "algorithm_not_allowed");
    for kid in ["hmac", "enc", "rs512", "tiny", "ed"] {
        let token = sign(
            Algorithm::RS256,
            RSA_PRIVATE,
            Some(kid),
            &claims_v2("org_a", "admin"),
        );
        assert_eq!(code_of(&auth, &token).await, "unknown_key", "{kid}");
    }
}

#[tokio::test]
async fn duplicate_kids_in_the_jwks_are_not_trusted() {
    // A JWKS that somehow lists a second key under the real kid.
    let attacker = jwk(ATTACKER_PUBLIC, Algorithm::RS256, RSA_KID);
    let server = JwksServer::start(vec![rsa_jwk(), attacker]).await;
    let auth = jwks_auth(&server).await;
    assert_eq!(
        code_of(&auth, &rs256(&claims_v2("org_a", "admin"))).await,
        "unknown_key"
    );
}

#[tokio::test]
async fn pem_file_keys_verify_tokens() {
    // RSA PEM alone: tokens with or without a kid.
    let auth = Authenticator::new(pem_config("rsa-public.pem"))
        .await
        .unwrap();
    let claims = claims_v1("org_a", "org:admin");
    for kid in [None, Some("ins_clerk_instance")] {
        let principal = auth
            .verify(&sign(Algorithm::RS256, RSA_PRIVATE, kid, &claims))
            .await
            .unwrap();
        assert_eq!(principal.org_role, Some(OrgRole::Admin));
    }
    let forged = sign(Algorithm::RS256, ATTACKER_PRIVATE, None, &claims);
    assert_eq!(code_of(&auth, &forged).await, "bad_signature");
    let wrong_alg = sign(Algorithm::ES256, EC_PRIVATE, None, &claims);
    assert_eq!(code_of(&auth, &wrong_alg).await, "algorithm_not_allowed");

    // EC P-256 PEM.
    let auth = Authenticator::new(pem_config("ec-public.pem"))
        .await
        .unwrap();
    auth.verify(&sign(Algorithm::ES256, EC_PRIVATE, None, &claims))
        .await
        .unwrap();

    // A PEM key bound to a kid answers to that kid only.
    let auth = Authenticator::new(AuthConfig {
        pem_kid: Some("pem-1".to_owned()),
        ..pem_config("rsa-public.pem")
    })
    .await
    .unwrap();
    auth.verify(&sign(Algorithm::RS256, RSA_PRIVATE, Some("pem-1"), &claims))
        .await
        .unwrap();
    for kid in [None, Some("pem-2")] {
        let token = sign(Algorithm::RS256, RSA_PRIVATE, kid, &claims);
        assert_eq!(code_of(&auth, &token).await, "unknown_key");
    }
}

#[tokio::test]
async fn pem_and_jwks_together() {
    let server = JwksServer::start(vec![rsa_jwk()]).await;
    let auth = Authenticator::new(AuthConfig {
        pem_file: Some(fixture_path("ec-public.pem")),
        ..jwks_config(&server.url)
    })
    .await
    .unwrap();
    let claims = claims_v2("org_a", "admin");
    // No kid: the PEM key, without asking the JWKS.
    auth.verify(&sign(Algorithm::ES256, EC_PRIVATE, None, &claims))
        .await
        .unwrap();
    assert_eq!(server.hits(), 0);
    auth.verify(&rs256(&claims)).await.unwrap();
    assert_eq!(server.hits(), 1);
    // With a JWKS present, an unknown kid is not handed to the PEM key.
    let token = sign(Algorithm::ES256, EC_PRIVATE, Some("elsewhere"), &claims);
    assert_eq!(code_of(&auth, &token).await, "unknown_key");
}

#[tokio::test]
async fn unusable_pem_files_are_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let cert = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ==\n-----END CERTIFICATE-----\n";
    let cases = [
        (write("private.pem", RSA_PRIVATE), "private key"),
        (write("cert.pem", cert), "certificate"),
        (write("garbage.pem", "hello"), "no PEM block"),
        (
            write(
                "broken.pem",
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            ),
            "neither",
        ),
    ];
    for (path, want) in cases {
        let error = Authenticator::new(AuthConfig {
            issuer: Some(ISSUER.to_owned()),
            pem_file: Some(path),
            ..AuthConfig::default()
        })
        .await
        .unwrap_err();
        let message = error.to_string();
        assert!(
            matches!(error, AuthSetupError::InvalidPem { .. }),
            "{message}"
        );
        assert!(message.contains(want), "{message}");
        assert!(!message.contains("MII"), "key material leaked: {message}");
    }
    let error = Authenticator::new(AuthConfig {
        issuer: Some(ISSUER.to_owned()),
        pem_file: Some(dir.path().join("absent.pem")),
        ..AuthConfig::default()
    })
    .await
    .unwrap_err();
    assert!(matches!(error, AuthSetupError::ReadPem { .. }), "{error}");
}

#[tokio::test]
async fn dev_tokens_are_accepted_only_in_dev_mode() {
    let token = dev_token(
        "org_dev",
        OrgRole::Admin,
        "user_dev",
        true,
        Duration::from_secs(600),
    );

    let dev = Authenticator::new(AuthConfig {
        dev_mode: true,
        ..AuthConfig::default()
    })
    .await
    .unwrap();
    let principal = dev.verify(&token).await.unwrap();
    assert_eq!(
        *principal,
        Principal {
            subject: "user_dev".into(),
            org_id: Some("org_dev".into()),
            org_role: Some(OrgRole::Admin),
            platform_admin: true,
            issuer: DEV_ISSUER.into(),
            issued_at: principal.issued_at,
        }
    );
    assert!(principal.issued_at.is_some(), "dev tokens carry `iat`");
    let member = dev_token(
        "org_dev",
        OrgRole::Member,
        "user_m",
        false,
        Duration::from_secs(60),
    );
    let principal = dev.verify(&member).await.unwrap();
    assert_eq!(
        (principal.org_role, principal.platform_admin),
        (Some(OrgRole::Member), false)
    );
    let no_org = dev_token(
        "",
        OrgRole::Member,
        "user_admin",
        true,
        Duration::from_secs(60),
    );
    let principal = dev.verify(&no_org).await.unwrap();
    assert_eq!(
        (principal.org_id.as_deref(), principal.org_role),
        (None, None)
    );
    assert!(principal.platform_admin);

    // Production configurations refuse it, without a JWKS request.
    let server = JwksServer::start(vec![rsa_jwk()]).await;
    let prod = jwks_auth(&server).await;
    let error = prod.verify(&token).await.unwrap_err();
    assert_eq!(error.code(), "unknown_key");
    assert!(error.to_string().contains("not in dev mode"), "{error}");
    assert_eq!(server.hits(), 0);
    let pem_only = Authenticator::new(pem_config("rsa-public.pem"))
        .await
        .unwrap();
    assert_eq!(code_of(&pem_only, &token).await, "unknown_key");
}

#[tokio::test]
async fn the_dev_key_vouches_only_for_the_dev_issuer() {
    let server = JwksServer::start(vec![rsa_jwk()]).await;
    let auth = Authenticator::new(AuthConfig {
        dev_mode: true,
        authorized_parties: vec![APP.to_owned()],
        ..jwks_config(&server.url)
    })
    .await
    .unwrap();
    // Both sources work side by side; dev tokens skip the azp list.
    auth.verify(&dev_token(
        "org_a",
        OrgRole::Admin,
        "u",
        false,
        Duration::from_secs(60),
    ))
    .await
    .unwrap();
    auth.verify(&rs256(&claims_v2("org_a", "admin")))
        .await
        .unwrap();
    // The dev key claiming the real issuer, and a real key claiming the dev issuer.
    let dev_as_real = sign(
        Algorithm::RS256,
        DEV_PRIVATE,
        Some(DEV_KID),
        &claims_v2("org_a", "admin"),
    );
    assert_eq!(code_of(&auth, &dev_as_real).await, "wrong_issuer");
    let real_as_dev = with(claims_v2("org_a", "admin"), "iss", json!(DEV_ISSUER));
    assert_eq!(code_of(&auth, &rs256(&real_as_dev)).await, "wrong_issuer");
}

#[tokio::test]
async fn platform_admin_claim_flat_and_dotted() {
    let server = JwksServer::start(vec![rsa_jwk()]).await;
    let flat = jwks_auth(&server).await;
    let base = claims_v2("org_a", "member");
    let admin = with(base.clone(), DEFAULT_ADMIN_CLAIM, json!(true));
    assert!(flat.verify(&rs256(&admin)).await.unwrap().platform_admin);
    assert!(!flat.verify(&rs256(&base)).await.unwrap().platform_admin);
    for not_true in [json!("true"), json!(1), json!(false), json!({"yes": true})] {
        let claims = with(base.clone(), DEFAULT_ADMIN_CLAIM, not_true);
        assert!(!flat.verify(&rs256(&claims)).await.unwrap().platform_admin);
    }

    let dotted = Authenticator::new(AuthConfig {
        admin_claim: "public_metadata.platform_admin".to_owned(),
        ..jwks_config(&server.url)
    })
    .await
    .unwrap();
    let nested = with(
        base.clone(),
        "public_metadata",
        json!({ "platform_admin": true }),
    );
    assert!(dotted.verify(&rs256(&nested)).await.unwrap().platform_admin);
    assert!(!dotted.verify(&rs256(&admin)).await.unwrap().platform_admin);
    let nested_false = with(base, "public_metadata", json!({ "platform_admin": "yes" }));
    assert!(
        !dotted
            .verify(&rs256(&nested_false))
            .await
            .unwrap()
            .platform_admin
    );
}

#[tokio::test]
async fn malformed_tokens_are_refused_without_fetching_keys() {
    let server = JwksServer::start(vec![rsa_jwk()]).await;
    let auth = jwks_auth(&server).await;
    let genuine = rs256(&claims_v2("org_a", "admin"));
    let parts: Vec<&str> = genuine.split('.').collect();
    let cases = [
        "garbage".to_owned(),
        format!("{}.{}", parts[0], parts[1]),
        format!("{}.{}.{}.{}", parts[0], parts[1], parts[2], parts[2]),
        format!("{}.{}.{}", "%%%not-base64%%%", parts[1], parts[2]),
        format!("{}.{}.{}", parts[0], "%%%", parts[2]),
        format!("{}.{}.{}", parts[0], parts[1], "%%%"),
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode("{not json"),
            parts[1],
            parts[2]
        ),
        format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode("\"a string\""),
            parts[2]
        ),
        "..".to_owned(),
        "a".repeat(20_000),
    ];
    for token in cases {
        assert_eq!(
            code_of(&auth, &token).await,
            "malformed_token",
            "{token:.40}"
        );
    }
    assert_eq!(code_of(&auth, "").await, "missing_token");
    assert_eq!(server.hits(), 0);
}

#[tokio::test]
async fn configuration_is_checked_at_start() {
    let url = dead_url().await;
    let setup = |config: AuthConfig| async move { Authenticator::new(config).await.unwrap_err() };

    let error = setup(AuthConfig {
        leeway_secs: 6,
        ..jwks_config(&url)
    })
    .await;
    assert!(
        matches!(error, AuthSetupError::LeewayTooLarge { got: 6 }),
        "{error}"
    );
    assert!(
        Authenticator::new(AuthConfig {
            leeway_secs: 5,
            ..jwks_config(&url)
        })
        .await
        .is_ok()
    );

    let error = setup(AuthConfig {
        issuer: None,
        ..jwks_config(&url)
    })
    .await;
    assert!(matches!(error, AuthSetupError::MissingIssuer), "{error}");
    let error = setup(AuthConfig {
        issuer: Some("  ".to_owned()),
        dev_mode: true,
        ..jwks_config(&url)
    })
    .await;
    assert!(matches!(error, AuthSetupError::MissingIssuer), "{error}");

    let error = setup(AuthConfig {
        issuer: Some(ISSUER.to_owned()),
        jwks_url: Some(String::new()),
        ..AuthConfig::default()
    })
    .await;
    assert!(matches!(error, AuthSetupError::NoKeySource), "{error}");
    assert!(matches!(
        setup(AuthConfig::default()).await,
        AuthSetupError::NoKeySource
    ));

    for bad in [
        "http://clerk.example.com/jwks.json",
        "ftp://127.0.0.1/jwks",
        "not a url",
    ] {
        let error = setup(jwks_config(bad)).await;
        assert!(
            matches!(error, AuthSetupError::InvalidJwksUrl { .. }),
            "{bad}: {error}"
        );
    }
    assert!(
        Authenticator::new(jwks_config(
            "https://clerk.example.com/.well-known/jwks.json"
        ))
        .await
        .is_ok()
    );
    assert!(
        Authenticator::new(jwks_config("http://localhost:1/jwks.json"))
            .await
            .is_ok()
    );
    assert!(
        Authenticator::new(jwks_config("http://[::1]:1/jwks.json"))
            .await
            .is_ok()
    );

    for bad in ["", "a..b", ".x", "x."] {
        let error = setup(AuthConfig {
            admin_claim: bad.to_owned(),
            ..jwks_config(&url)
        })
        .await;
        assert!(
            matches!(error, AuthSetupError::InvalidAdminClaim { .. }),
            "{bad:?}: {error}"
        );
    }

    // Dev mode alone needs neither issuer nor key source.
    let dev = Authenticator::new(AuthConfig {
        dev_mode: true,
        ..AuthConfig::default()
    })
    .await
    .unwrap();
    assert!(format!("{dev:?}").contains("dev_mode: true"));
}

#[test]
fn bearer_header_parsing() {
    assert_eq!(bearer("Bearer abc.def.ghi").unwrap(), "abc.def.ghi");
    assert_eq!(bearer("bearer abc").unwrap(), "abc");
    assert_eq!(bearer("  BEARER   abc  ").unwrap(), "abc");
    assert_eq!(bearer("Bearer\tabc").unwrap(), "abc");
    for missing in [
        "",
        "   ",
        "Bearer",
        "Bearer   ",
        "Basic dXNlcjpwYXNz",
        "abc.def.ghi",
        "Token abc",
    ] {
        assert_eq!(
            bearer(missing).unwrap_err().code(),
            "missing_token",
            "{missing:?}"
        );
    }
    assert_eq!(
        bearer("Bearer abc def").unwrap_err().code(),
        "malformed_token"
    );
}

#[test]
fn error_codes_are_stable_and_messages_say_what_to_do() {
    let cases = [
        (AuthError::MissingToken, "missing_token"),
        (AuthError::malformed("x"), "malformed_token"),
        (
            AuthError::AlgorithmNotAllowed {
                alg: "HS256".into(),
            },
            "algorithm_not_allowed",
        ),
        (
            AuthError::UnknownKey {
                kid: Some("k".into()),
            },
            "unknown_key",
        ),
        (AuthError::UnknownKey { kid: None }, "unknown_key"),
        (AuthError::BadSignature, "bad_signature"),
        (AuthError::Expired, "expired"),
        (AuthError::NotYetValid, "not_yet_valid"),
        (
            AuthError::WrongIssuer {
                expected: ISSUER.into(),
                found: "x".into(),
            },
            "wrong_issuer",
        ),
        (
            AuthError::UnauthorizedParty { azp: None },
            "unauthorized_party",
        ),
        (
            AuthError::UnauthorizedParty {
                azp: Some("x".into()),
            },
            "unauthorized_party",
        ),
        (
            AuthError::MissingClaim {
                claim: "sub".into(),
            },
            "missing_claim",
        ),
        (AuthError::KeysUnavailable, "keys_unavailable"),
    ];
    for (error, code) in cases {
        assert_eq!(error.code(), code);
        let message = error.to_string();
        assert!(message.len() > 30, "{code}: {message}");
    }
}

#[test]
fn the_dev_key_pair_matches_and_signs() {
    ensure_crypto_provider();
    let key = dev::dev_verify_key().unwrap();
    assert_eq!(key.alg, Algorithm::RS256);
    let token = dev_token("org", OrgRole::Admin, "u", false, Duration::from_secs(60));
    let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
    validation.set_issuer(&[DEV_ISSUER]);
    let data = jsonwebtoken::decode::<Value>(&token, &key.key, &validation).unwrap();
    assert_eq!(data.header.kid.as_deref(), Some(DEV_KID));
    assert_eq!(data.claims["o"], json!({ "id": "org", "rol": "admin" }));
    assert_eq!(data.claims["v"], json!(2));
}

#[tokio::test]
async fn authenticator_is_shareable_across_tasks() {
    fn send_sync<T: Send + Sync + Clone + 'static>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let auth = Authenticator::new(AuthConfig {
        dev_mode: true,
        ..AuthConfig::default()
    })
    .await
    .unwrap();
    send_sync(&auth);
    // axum handlers need the verification future to be Send.
    send(&auth.verify("a.b.c"));
}

/// A wall clock the test sets by hand.
struct ManualWallClock(AtomicU64);

impl WallClock for ManualWallClock {
    fn now_secs(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[tokio::test]
async fn a_remembered_token_is_not_accepted_past_its_expiry() {
    let server = JwksServer::start(vec![rsa_jwk()]).await;
    let clock = Arc::new(ManualWallClock(AtomicU64::new(now())));
    let auth = Authenticator::with_clock(
        AuthConfig {
            leeway_secs: 0,
            ..jwks_config(&server.url)
        },
        clock.clone(),
    )
    .await
    .unwrap();
    let mut claims = claims_v2("org_a", "admin");
    claims["exp"] = json!(now() + 2);
    let token = rs256(&claims);
    auth.verify(&token).await.unwrap();
    // Verified once, remembered: accepted again without a second verification.
    auth.verify(&token).await.unwrap();
    // At `exp` it still holds; one second past it, it does not.
    clock.0.store(now() + 2, Ordering::SeqCst);
    auth.verify(&token).await.unwrap();
    clock.0.store(now() + 3, Ordering::SeqCst);
    assert_eq!(code_of(&auth, &token).await, "expired");
    // A forged token with the same claims is still checked, never served from memory.
    let forged = sign(
        Algorithm::RS256,
        ATTACKER_PRIVATE,
        Some(RSA_KID),
        &claims_v2("org_a", "admin"),
    );
    assert_eq!(code_of(&auth, &forged).await, "bad_signature");
}
