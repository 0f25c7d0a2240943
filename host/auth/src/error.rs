//! The two error types of authentication: [`AuthError`] for a request whose
//! token is refused, [`AuthSetupError`] for a configuration the server cannot
//! start with. Messages say what to fix; none ever contains key material, and
//! values copied from a token are shortened and stripped of control characters
//! first, because the token is attacker-controlled and the message may be logged
//! or sent back.

use std::path::PathBuf;

use super::dev::DEV_KID;

/// Why a bearer token was refused. Every variant but [`AuthError::KeysUnavailable`]
/// is the caller's problem (HTTP 401); `KeysUnavailable` is ours (HTTP 503, retry).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization: Bearer` token at all.
    #[error("no bearer token: send the session token as `Authorization: Bearer <token>`")]
    MissingToken,
    /// Not a compact JWS: wrong number of parts, bad base64url, bad JSON, ...
    #[error(
        "the bearer token is not a well-formed JWT ({reason}); send the session token exactly as the identity provider issued it"
    )]
    MalformedToken {
        /// What is wrong with it, in words.
        reason: String,
    },
    /// The header's `alg` is not RS256 or ES256, or does not fit the key it names.
    #[error(
        "token algorithm `{alg}` is not accepted here: only RS256 (with an RSA key) and ES256 (with a P-256 key) session tokens are"
    )]
    AlgorithmNotAllowed {
        /// The algorithm the token asked for (shortened).
        alg: String,
    },
    /// No trusted key has the token's `kid`.
    #[error("{}", unknown_key_message(.kid.as_deref()))]
    UnknownKey {
        /// The token's key id, if it had one (shortened).
        kid: Option<String>,
    },
    /// The signature does not verify with the key the token names.
    #[error(
        "token signature does not verify: it was altered or not issued by the trusted identity provider; sign in again"
    )]
    BadSignature,
    /// `exp` is in the past by more than the configured leeway.
    #[error("token has expired; get a fresh session token from the identity provider")]
    Expired,
    /// The token is meant to live longer than the server allows.
    #[error(
        "token is valid for {lifetime} s (from its `iat` to its `exp`), longer than this server's maximum of {max} s; use a session token with a shorter lifetime"
    )]
    LifetimeTooLong {
        /// The token's lifetime, in seconds.
        lifetime: u64,
        /// The configured maximum, in seconds.
        max: u64,
    },
    /// `nbf` is in the future by more than the configured leeway.
    #[error("token is not valid yet (its `nbf` is in the future); check the client's clock")]
    NotYetValid,
    /// `iss` is not the issuer this server trusts for the signing key.
    #[error(
        "token issuer `{found}` is not the trusted issuer `{expected}`; use a token from `{expected}`"
    )]
    WrongIssuer {
        /// The issuer the server trusts for this key.
        expected: String,
        /// The token's issuer (shortened; empty if it was not a string).
        found: String,
    },
    /// `azp` missing or not in the configured allow-list.
    #[error("{}", unauthorized_party_message(.azp.as_deref()))]
    UnauthorizedParty {
        /// The token's authorized party, if any (shortened).
        azp: Option<String>,
    },
    /// A required claim (`exp`, `iss`, `sub`) is absent or of the wrong type.
    #[error(
        "token lacks a usable `{claim}` claim (it is missing or of the wrong type); use a session token from the identity provider"
    )]
    MissingClaim {
        /// The missing claim's name.
        claim: String,
    },
    /// The JWKS could not be fetched, so the token cannot be checked now.
    #[error(
        "the identity provider's signing keys could not be fetched, so the token cannot be checked now; retry shortly"
    )]
    KeysUnavailable,
}

impl AuthError {
    /// A stable, machine-readable code for API responses and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "missing_token",
            AuthError::MalformedToken { .. } => "malformed_token",
            AuthError::AlgorithmNotAllowed { .. } => "algorithm_not_allowed",
            AuthError::UnknownKey { .. } => "unknown_key",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::LifetimeTooLong { .. } => "token_lifetime_too_long",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::WrongIssuer { .. } => "wrong_issuer",
            AuthError::UnauthorizedParty { .. } => "unauthorized_party",
            AuthError::MissingClaim { .. } => "missing_claim",
            AuthError::KeysUnavailable => "keys_unavailable",
        }
    }

    /// True when the failure is on the server's side (the JWKS could not be
    /// fetched): answer 503 and let the client retry, rather than 401.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, AuthError::KeysUnavailable)
    }

    pub(super) fn malformed(reason: impl Into<String>) -> Self {
        AuthError::MalformedToken {
            reason: reason.into(),
        }
    }
}

fn unknown_key_message(kid: Option<&str>) -> String {
    match kid {
        // Reserved id: say plainly why a development token is refused, which is
        // the usual way to end up here with it.
        Some(DEV_KID) => "this is a Veneer development token (kid `veneer-dev`), and this server is not in dev mode; use a session token from the identity provider".to_owned(),
        Some(kid) => format!(
            "token was signed by a key this server does not know (kid `{kid}`); get a fresh session token from the configured identity provider"
        ),
        None => "token has no `kid` header and no configured key accepts tokens without one; use a session token from the configured identity provider".to_owned(),
    }
}

fn unauthorized_party_message(azp: Option<&str>) -> String {
    match azp {
        Some(azp) => format!(
            "token was issued to `{azp}` (its `azp`), which is not an allowed front end for this server; sign in through an allowed front end or add it to the authorized parties"
        ),
        None => "token has no `azp` claim, and this server only accepts tokens issued to its allowed front ends; sign in through one of them".to_owned(),
    }
}

/// Shortens a token-supplied value for an error message: at most 64 characters,
/// control characters replaced, so a hostile token cannot forge log lines or
/// blow up responses.
pub(super) fn shown(value: &str) -> String {
    const MAX_CHARS: usize = 64;
    let mut out: String = value
        .chars()
        .take(MAX_CHARS)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if value.chars().count() > MAX_CHARS {
        out.push('…');
    }
    out
}

/// Why an [`Authenticator`](super::Authenticator) could not be built from its
/// configuration. Raised at start-up, never per request.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    /// `leeway_secs` above the 5 s ceiling.
    #[error(
        "auth leeway is {got} s; at most 5 s is allowed (clock skew beyond that is a clock to fix)"
    )]
    LeewayTooLarge {
        /// The configured value.
        got: u64,
    },
    /// No issuer although one is needed.
    #[error(
        "no token issuer configured: set it to your identity provider's issuer URL (e.g. https://<app>.clerk.accounts.dev); it is required whenever a JWKS URL or PEM key is configured, and unless dev mode is on"
    )]
    MissingIssuer,
    /// Neither JWKS, PEM nor dev mode.
    #[error(
        "no token signing keys configured: set a JWKS URL or a PEM public key file, or turn on dev mode for local work"
    )]
    NoKeySource,
    /// The JWKS URL does not parse or uses a scheme we refuse.
    #[error("JWKS URL `{url}` is not usable: {reason}")]
    InvalidJwksUrl {
        /// The configured URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The PEM file could not be read.
    #[error("cannot read the PEM public key file {}: {source}", .path.display())]
    ReadPem {
        /// The configured path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The PEM file is not an RSA or P-256 public key.
    #[error("PEM file {} is not usable: {reason}", .path.display())]
    InvalidPem {
        /// The configured path.
        path: PathBuf,
        /// What is wrong with it (never the key itself).
        reason: String,
    },
    /// The platform-admin claim name is empty or has an empty path segment.
    #[error(
        "platform admin claim `{claim}` is not a claim name or dotted path (e.g. `veneer_platform_admin` or `public_metadata.platform_admin`)"
    )]
    InvalidAdminClaim {
        /// The configured name.
        claim: String,
    },
    /// The HTTP client for the JWKS could not be built.
    #[error("cannot build the HTTP client for the JWKS: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// The embedded development key did not load (a build defect).
    #[error("the embedded development key is unusable; rebuild from a clean checkout")]
    DevKey,
}
