//! Authentication (request flow, step 3): turns a Clerk-style session token
//! into a [`Principal`] — who the caller is, which organisation the token is
//! for and with what role, and whether it carries the platform-admin flag.
//!
//! It owns JWT verification (the RS256/ES256 allow-list, the trusted keys from a
//! JWKS URL, a PEM file and, in dev mode only, the committed development key),
//! the claim checks (`exp`, `nbf`, `iss`, `azp`, `sub`), the normalisation of
//! Clerk's two organisation-claim layouts, and [`dev_token`]. It must not touch
//! tenants, the database or HTTP routing: it never decides what a principal may
//! do. Comparing `org_id` with the tenant from the host name, and mapping
//! [`AuthError`] to a response (401, or 503 when [`AuthError::is_unavailable`]),
//! are the HTTP layer's job. Its only network access is the JWKS fetch.
//!
//! Claims:
//! - `exp` required, `nbf` honoured, both with `leeway_secs` (0..=5, default 5);
//! - lifetime at most `max_lifetime_secs` (default 24 h; `None`: no maximum):
//!   `exp` minus `iat`, or minus now when there is no `iat` or it is in the
//!   future, so a token signed to live until the year 3000 is refused;
//! - `iss` must be a string equal to the configured issuer (the dev issuer for
//!   the dev key, which vouches for nothing else);
//! - `sub` required, a non-empty string;
//! - `azp` must be in `authorized_parties` when that list is non-empty (a token
//!   without `azp` is then refused); dev tokens are exempt;
//! - `aud` is not checked: Clerk session tokens carry none, `azp` plays its role;
//! - the organisation: see the table in `claims` — v1 `org_id`/`org_role`
//!   (`org:admin`/`admin` → Admin; `org:member`/`member`/`basic_member` →
//!   Member), v2 `o.id`/`o.rol` (`admin` → Admin; `member`/`basic_member` →
//!   Member); any other role → no role (not `Member`), so custom roles grant
//!   nothing until they are mapped on purpose;
//! - platform admin: the claim named by `admin_claim` (a dotted path walks into
//!   objects) must be the JSON boolean `true`; dev tokens always use
//!   `veneer_platform_admin`.

mod claims;
mod dev;
mod error;
mod jwks;
mod keys;
mod token;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::{Arc, Once};

use jsonwebtoken::Validation;

/// Bytes of verified tokens remembered, at most (each entry weighs its token's
/// length plus [`VERIFIED_ENTRY_OVERHEAD`]).
const VERIFIED_CACHE_BYTES: u64 = 64 << 20;
/// What an entry weighs besides its token, in bytes.
const VERIFIED_ENTRY_OVERHEAD: usize = 256;
/// How long a verified token is remembered before it is verified again.
const VERIFIED_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(60);
use jsonwebtoken::errors::ErrorKind;
use serde_json::{Map, Value};

pub use claims::{OrgRole, ParseOrgRoleError};
pub use dev::{DEV_ISSUER, DEV_KID, dev_token};
pub use error::{AuthError, AuthSetupError};

use error::shown;
use jwks::{JwksSource, RefetchPolicy};
use keys::{KeyOrigin, KeyStore, PemKey, VerifyKey};

/// The default name of the platform-admin claim.
pub const DEFAULT_ADMIN_CLAIM: &str = "veneer_platform_admin";

/// The default longest token lifetime: a day (Clerk session tokens live a
/// minute, other providers' access tokens an hour or a day).
pub const DEFAULT_MAX_LIFETIME_SECS: u64 = 24 * 3600;

/// The largest clock-skew allowance accepted for `exp` and `nbf`, in seconds.
pub const MAX_LEEWAY_SECS: u64 = 5;

/// A PEM file larger than this is not a public key.
const MAX_PEM_BYTES: u64 = 64 * 1024;

/// How tokens are verified. Empty strings count as unset, so values straight
/// from environment variables can be passed through.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The `iss` every token must carry, e.g. `https://clerk.example.com`
    /// (compared exactly). Required unless dev mode is the only key source.
    pub issuer: Option<String>,
    /// The identity provider's JWKS, e.g. `https://clerk.example.com/.well-known/jwks.json`.
    /// https, or http on localhost. Not fetched at start-up.
    pub jwks_url: Option<String>,
    /// A PEM public key (RSA, or EC P-256) to verify with, e.g. Clerk's
    /// "JWT public key" for networkless verification.
    pub pem_file: Option<PathBuf>,
    /// The `kid` the PEM key answers to. Unset: tokens without a `kid`, and any
    /// `kid` when no JWKS URL is configured.
    pub pem_kid: Option<String>,
    /// Allowed `azp` values (front-end origins). Empty: `azp` is not checked.
    pub authorized_parties: Vec<String>,
    /// The platform-admin claim name or dotted path.
    pub admin_claim: String,
    /// Clock-skew allowance for `exp`/`nbf`, at most [`MAX_LEEWAY_SECS`].
    pub leeway_secs: u64,
    /// The longest lifetime a token may have, in seconds; `None`: no maximum.
    pub max_lifetime_secs: Option<u64>,
    /// Trust the committed development key (issuer [`DEV_ISSUER`]). Never in
    /// production: its private key is in the repository.
    pub dev_mode: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            issuer: None,
            jwks_url: None,
            pem_file: None,
            pem_kid: None,
            authorized_parties: Vec::new(),
            admin_claim: DEFAULT_ADMIN_CLAIM.to_owned(),
            leeway_secs: MAX_LEEWAY_SECS,
            max_lifetime_secs: Some(DEFAULT_MAX_LIFETIME_SECS),
            dev_mode: false,
        }
    }
}

/// Who a verified token says the caller is. Nothing here is checked against a
/// tenant yet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Principal {
    /// The user id (`sub`).
    pub subject: String,
    /// The organisation (Clerk org id) the token is for, if any.
    pub org_id: Option<String>,
    /// The caller's role in `org_id`; `None` for no org or a role Veneer does not map.
    pub org_role: Option<OrgRole>,
    /// The platform-admin claim was `true`.
    pub platform_admin: bool,
    /// The token's issuer.
    pub issuer: String,
    /// When the token was issued (`iat`, Unix seconds), if it says: a
    /// membership or role change revokes the tokens issued before it.
    pub issued_at: Option<u64>,
}

/// Verifies bearer tokens. Cheap to clone; share one per process so the JWKS
/// cache and its refetch limit are shared too.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    keys: KeyStore,
    /// Tokens already verified, keyed by the whole token (an exact match: no
    /// digest to compute, no collision to worry about), with their `exp`.
    /// RS256 verification dominates an authenticated request's CPU; a token is
    /// re-verified at most once a minute (so a key removed from the JWKS stops
    /// being honoured within a minute) and never past its own expiry. Only
    /// tokens that verified are ever inserted.
    verified: moka::sync::Cache<Arc<str>, (Arc<Principal>, u64)>,
    authorized_parties: Vec<String>,
    admin_claim: Vec<String>,
    dev_admin_claim: Vec<String>,
    leeway_secs: u64,
    max_lifetime_secs: Option<u64>,
    /// Where `exp`, `nbf` and lifetimes are measured from (the system clock;
    /// tests move a manual one).
    clock: Arc<dyn WallClock>,
}

/// The current time in unix seconds, for the time claims. The system clock in
/// production; tests pass a clock they move by hand instead of sleeping.
pub trait WallClock: Send + Sync + 'static {
    /// Seconds since the unix epoch.
    fn now_secs(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl WallClock for SystemClock {
    fn now_secs(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = &self.inner.keys;
        f.debug_struct("Authenticator")
            .field("jwks_url", &keys.jwks.as_ref().map(JwksSource::url))
            .field("pem_key", &keys.pem.is_some())
            .field("dev_mode", &keys.dev.is_some())
            .field("authorized_parties", &self.inner.authorized_parties)
            .field("leeway_secs", &self.inner.leeway_secs)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Checks the configuration and loads the PEM and dev keys. The JWKS is
    /// fetched on the first token that needs it, so the server starts even when
    /// the identity provider is unreachable.
    pub async fn new(config: AuthConfig) -> Result<Self, AuthSetupError> {
        Self::build(config, RefetchPolicy::default(), Arc::new(SystemClock))
    }

    /// Like [`Authenticator::new`], measuring token times with `clock`.
    pub async fn with_clock(
        config: AuthConfig,
        clock: Arc<dyn WallClock>,
    ) -> Result<Self, AuthSetupError> {
        Self::build(config, RefetchPolicy::default(), clock)
    }

    fn build(
        config: AuthConfig,
        policy: RefetchPolicy,
        clock: Arc<dyn WallClock>,
    ) -> Result<Self, AuthSetupError> {
        // A token is never trusted longer than the key set it was checked against.
        let verified_ttl = VERIFIED_CACHE_TTL.min(policy.max_age);
        ensure_crypto_provider();
        if config.leeway_secs > MAX_LEEWAY_SECS {
            return Err(AuthSetupError::LeewayTooLarge {
                got: config.leeway_secs,
            });
        }
        let admin_claim = claims::claim_path(&config.admin_claim).ok_or_else(|| {
            AuthSetupError::InvalidAdminClaim {
                claim: config.admin_claim.clone(),
            }
        })?;
        let dev_admin_claim = vec![DEFAULT_ADMIN_CLAIM.to_owned()];

        let set = |s: Option<String>| s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        let issuer = set(config.issuer);
        let jwks_url = set(config.jwks_url);
        let pem_kid = set(config.pem_kid);
        let pem_file = config.pem_file.filter(|p| !p.as_os_str().is_empty());

        let external = jwks_url.is_some() || pem_file.is_some();
        if !external && !config.dev_mode {
            return Err(AuthSetupError::NoKeySource);
        }
        // The issuer is what ties a JWKS or PEM key to one identity provider;
        // without it any token signed by those keys for any audience would pass.
        let issuer: Option<Arc<str>> = match issuer {
            Some(issuer) => Some(Arc::from(issuer)),
            None if external => return Err(AuthSetupError::MissingIssuer),
            None => None,
        };

        let mut keys = KeyStore {
            pem: None,
            dev: None,
            jwks: None,
        };
        if let (Some(path), Some(issuer)) = (pem_file, &issuer) {
            keys.pem = Some(PemKey {
                kid: pem_kid,
                key: load_pem(path, issuer.clone())?,
            });
        }
        if let (Some(url), Some(issuer)) = (jwks_url, &issuer) {
            keys.jwks = Some(JwksSource::new(&url, issuer.clone(), policy)?);
        }
        if config.dev_mode {
            tracing::warn!(
                "auth dev mode: tokens signed with the committed development key are trusted"
            );
            keys.dev = Some(dev::dev_verify_key()?);
        }

        Ok(Authenticator {
            inner: Arc::new(Inner {
                keys,
                verified: moka::sync::Cache::builder()
                    .weigher(|token: &Arc<str>, _| {
                        u32::try_from(token.len() + VERIFIED_ENTRY_OVERHEAD).unwrap_or(u32::MAX)
                    })
                    .max_capacity(VERIFIED_CACHE_BYTES)
                    .time_to_live(verified_ttl)
                    .build(),
                authorized_parties: config
                    .authorized_parties
                    .into_iter()
                    .map(|p| p.trim().to_owned())
                    .filter(|p| !p.is_empty())
                    .collect(),
                admin_claim,
                dev_admin_claim,
                leeway_secs: config.leeway_secs,
                max_lifetime_secs: config.max_lifetime_secs,
                clock,
            }),
        })
    }

    /// Verifies a token (without the `Bearer ` prefix; see [`bearer`]).
    pub async fn verify(&self, token: &str) -> Result<Arc<Principal>, AuthError> {
        let now = self.inner.clock.now_secs();
        if let Some((principal, exp)) = self.inner.verified.get(token)
            && exp > now
        {
            return Ok(principal);
        }
        let (principal, exp) = self.verify_uncached(token).await?;
        let principal = Arc::new(principal);
        if let Some(exp) = exp {
            self.inner
                .verified
                .insert(Arc::from(token), (principal.clone(), exp));
        }
        Ok(principal)
    }

    async fn verify_uncached(&self, token: &str) -> Result<(Principal, Option<u64>), AuthError> {
        // Shape and algorithm are settled before any key is chosen or fetched.
        let inspected = token::inspect(token)?;
        let key = self.inner.keys.select(inspected.kid.as_deref()).await?;
        if key.alg != inspected.alg {
            // e.g. an ES256 header naming an RSA key: never let the token pick
            // how a key is used.
            return Err(AuthError::AlgorithmNotAllowed {
                alg: format!("{:?}", inspected.alg),
            });
        }
        let claims = self.verify_signature(token, &key)?;
        self.check_times(&claims)?;
        self.check_lifetime(&claims)?;
        let exp = claims.get("exp").and_then(Value::as_u64);
        Ok((self.principal(&key, &claims)?, exp))
    }

    /// The signature, the algorithm and the presence of `exp`, `iss` and
    /// `sub`; the times are [`Self::check_times`]'s, on our clock.
    fn verify_signature(
        &self,
        token: &str,
        key: &VerifyKey,
    ) -> Result<Map<String, Value>, AuthError> {
        let mut validation = Validation::new(key.alg);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        // Clerk session tokens have no `aud`; `azp` is checked below instead.
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation) {
            Ok(data) => Ok(data.claims),
            Err(error) => Err(match error.into_kind() {
                ErrorKind::InvalidSignature => AuthError::BadSignature,
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim { claim },
                ErrorKind::InvalidClaimFormat(claim) => {
                    AuthError::malformed(format!("its `{claim}` claim is not a number"))
                }
                ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
                    AuthError::AlgorithmNotAllowed {
                        alg: format!("{:?}", key.alg),
                    }
                }
                ErrorKind::InvalidToken
                | ErrorKind::Base64(_)
                | ErrorKind::Json(_)
                | ErrorKind::Utf8(_) => AuthError::malformed("it could not be decoded"),
                other => {
                    // A key that loaded but cannot verify: ours to fix, and
                    // the token is refused meanwhile.
                    tracing::error!(error = ?other, "token verification failed inside the JWT library");
                    AuthError::BadSignature
                }
            }),
        }
    }

    /// `exp` (required) must not have passed and `nbf` (optional) must have
    /// come, each with the clock-skew leeway: expired when `exp < now - leeway`,
    /// not yet valid when `nbf > now + leeway`.
    fn check_times(&self, claims: &Map<String, Value>) -> Result<(), AuthError> {
        let now = self.inner.clock.now_secs();
        let leeway = self.inner.leeway_secs;
        let time = |name: &str| -> Result<Option<u64>, AuthError> {
            match claims.get(name) {
                None => Ok(None),
                Some(value) => value.as_f64().map(|t| Some(t as u64)).ok_or_else(|| {
                    AuthError::malformed(format!("its `{name}` claim is not a number"))
                }),
            }
        };
        let Some(exp) = time("exp")? else {
            return Err(AuthError::MissingClaim {
                claim: "exp".to_owned(),
            });
        };
        if exp < now.saturating_sub(leeway) {
            return Err(AuthError::Expired);
        }
        if let Some(nbf) = time("nbf")?
            && nbf > now.saturating_add(leeway)
        {
            return Err(AuthError::NotYetValid);
        }
        Ok(())
    }

    /// Refuses a token meant to live longer than the configured maximum. From
    /// `iat` (or now, when it has none or claims a time still to come) to `exp`,
    /// with the clock-skew leeway.
    fn check_lifetime(&self, claims: &Map<String, Value>) -> Result<(), AuthError> {
        let Some(max) = self.inner.max_lifetime_secs else {
            return Ok(());
        };
        let time = |name: &str| -> Result<Option<u64>, AuthError> {
            match claims.get(name) {
                None => Ok(None),
                // Saturating: a negative or huge number is still a time, just absurd.
                Some(value) => value.as_f64().map(|t| Some(t as u64)).ok_or_else(|| {
                    AuthError::malformed(format!("its `{name}` claim is not a number"))
                }),
            }
        };
        let Some(exp) = time("exp")? else {
            return Err(AuthError::MissingClaim {
                claim: "exp".to_owned(),
            });
        };
        let now = self.inner.clock.now_secs();
        let from = time("iat")?.map_or(now, |iat| iat.min(now));
        let lifetime = exp.saturating_sub(from);
        if lifetime > max.saturating_add(self.inner.leeway_secs) {
            return Err(AuthError::LifetimeTooLong { lifetime, max });
        }
        Ok(())
    }

    fn principal(
        &self,
        key: &VerifyKey,
        claims: &Map<String, Value>,
    ) -> Result<Principal, AuthError> {
        let issuer = match claims.get("iss") {
            Some(Value::String(iss)) if *iss == *key.issuer => iss.clone(),
            other => {
                return Err(AuthError::WrongIssuer {
                    expected: key.issuer.to_string(),
                    found: match other {
                        Some(Value::String(iss)) => shown(iss),
                        _ => String::new(),
                    },
                });
            }
        };
        let subject = match claims.get("sub") {
            Some(Value::String(sub)) if !sub.is_empty() => sub.clone(),
            _ => {
                return Err(AuthError::MissingClaim {
                    claim: "sub".to_owned(),
                });
            }
        };
        // The dev key is only trusted in dev mode, where a front-end allow-list
        // would only get in the way of local tokens.
        if key.origin != KeyOrigin::Dev && !self.inner.authorized_parties.is_empty() {
            match claims.get("azp") {
                Some(Value::String(azp)) if self.inner.authorized_parties.contains(azp) => {}
                Some(Value::String(azp)) => {
                    return Err(AuthError::UnauthorizedParty {
                        azp: Some(shown(azp)),
                    });
                }
                _ => return Err(AuthError::UnauthorizedParty { azp: None }),
            }
        }
        let org = claims::org_claims(claims)?;
        let admin_path = match key.origin {
            KeyOrigin::Dev => &self.inner.dev_admin_claim,
            KeyOrigin::Jwks | KeyOrigin::Pem => &self.inner.admin_claim,
        };
        Ok(Principal {
            subject,
            org_id: org.org_id,
            org_role: org.org_role,
            platform_admin: claims::flag_at_path(claims, admin_path),
            issuer,
            issued_at: claims
                .get("iat")
                .and_then(Value::as_f64)
                .filter(|t| *t >= 0.0)
                .map(|t| t as u64),
        })
    }
}

/// Extracts the token from an `Authorization` header value: `Bearer <token>`,
/// the scheme in any case. Any other scheme, or no token, is `missing_token`.
pub fn bearer(header_value: &str) -> Result<&str, AuthError> {
    let value = header_value.trim();
    let Some((scheme, token)) = value.split_once(|c: char| c.is_ascii_whitespace()) else {
        return Err(AuthError::MissingToken);
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::MissingToken);
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::MissingToken);
    }
    // A fold instead of `any`: no early exit, so it vectorises (tokens are long).
    if token
        .bytes()
        .fold(false, |found, b| found | b.is_ascii_whitespace())
    {
        return Err(AuthError::malformed(
            "the Authorization header must be exactly `Bearer <token>`",
        ));
    }
    Ok(token)
}

fn load_pem(path: PathBuf, issuer: Arc<str>) -> Result<Arc<VerifyKey>, AuthSetupError> {
    // Start-up only and a few hundred bytes, so blocking I/O is fine here.
    let read = || -> std::io::Result<Vec<u8>> {
        let file = std::fs::File::open(&path)?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(file, MAX_PEM_BYTES + 1),
            &mut bytes,
        )?;
        Ok(bytes)
    };
    let bytes = read().map_err(|source| AuthSetupError::ReadPem {
        path: path.clone(),
        source,
    })?;
    let invalid = |reason: String| AuthSetupError::InvalidPem {
        path: path.clone(),
        reason,
    };
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(invalid(
            "it is larger than 64 KiB, so not a public key".to_owned(),
        ));
    }
    let text = String::from_utf8(bytes).map_err(|_| invalid("it is not text".to_owned()))?;
    let (key, alg) = keys::key_from_pem(&text).map_err(invalid)?;
    Ok(Arc::new(VerifyKey {
        key,
        alg,
        issuer,
        origin: KeyOrigin::Pem,
    }))
}

/// Selects jsonwebtoken's RustCrypto backend explicitly: if anything in the
/// build ever also enables its aws-lc feature, automatic selection gives up
/// and every verification would panic.
fn ensure_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err means a provider is already installed, which is just as good.
        let _ = jsonwebtoken::crypto::CryptoProvider::install_default(
            &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER,
        );
    });
}
