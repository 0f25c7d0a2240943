//! The development identity: a committed RSA key pair (`host/auth/dev-keys/`), its
//! issuer and key id, and [`dev_token`] to mint tokens with it for local work
//! and tests. The private key is public knowledge by design, so the dev key is
//! trusted only by an authenticator whose configuration says dev mode, and only
//! for the dev issuer.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use super::claims::OrgRole;
use super::error::AuthSetupError;
use super::keys::{KeyOrigin, VerifyKey, key_from_pem};
use super::{DEFAULT_ADMIN_CLAIM, ensure_crypto_provider};

/// The issuer (`iss`) of development tokens. `.invalid` cannot resolve, so it
/// can never be a real identity provider.
pub const DEV_ISSUER: &str = "https://dev.veneer.invalid";

/// The key id (`kid`) of development tokens; reserved, see `keys::KeyStore::select`.
pub const DEV_KID: &str = "veneer-dev";

const DEV_PRIVATE_KEY_PEM: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/dev-keys/dev-private.pem"
));
const DEV_PUBLIC_KEY_PEM: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/dev-keys/dev-public.pem"
));

static DEV_SIGNING_KEY: LazyLock<Result<EncodingKey, jsonwebtoken::errors::Error>> =
    LazyLock::new(|| EncodingKey::from_rsa_pem(DEV_PRIVATE_KEY_PEM.as_bytes()));

/// Signs a development token (RS256, `kid` `veneer-dev`, issuer [`DEV_ISSUER`])
/// in Clerk's v2 layout: `"o": {"id": org_id, "rol": "admin"|"member"}`, and the
/// platform-admin flag as `veneer_platform_admin`. An empty `org_id` leaves the
/// organisation out (a token for a platform admin, or a user in no org).
///
/// Only an [`Authenticator`](super::Authenticator) in dev mode accepts it.
pub fn dev_token(
    org_id: &str,
    role: OrgRole,
    subject: &str,
    platform_admin: bool,
    ttl: Duration,
) -> String {
    ensure_crypto_provider();
    let now = jsonwebtoken::get_current_timestamp();
    let mut claims = json!({
        "iss": DEV_ISSUER,
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now.saturating_add(ttl.as_secs()),
        "v": 2,
    });
    claims[DEFAULT_ADMIN_CLAIM] = json!(platform_admin);
    if !org_id.is_empty() {
        claims["o"] = json!({ "id": org_id, "rol": role.as_str() });
    }
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(DEV_KID.to_owned());
    header.typ = Some("JWT".to_owned());
    // The key is compiled in and the tests sign and verify with it, so a
    // failure here is a broken build, not a condition to handle at run time.
    let key = DEV_SIGNING_KEY
        .as_ref()
        .expect("the embedded development private key is a valid RSA PEM");
    jsonwebtoken::encode(&header, &claims, key).expect("RS256 signing with the dev key succeeds")
}

/// The dev public key as a trusted key for the dev issuer.
pub(super) fn dev_verify_key() -> Result<Arc<VerifyKey>, AuthSetupError> {
    let (key, alg) = key_from_pem(DEV_PUBLIC_KEY_PEM).map_err(|_| AuthSetupError::DevKey)?;
    Ok(Arc::new(VerifyKey {
        key,
        alg,
        issuer: Arc::from(DEV_ISSUER),
        origin: KeyOrigin::Dev,
    }))
}
