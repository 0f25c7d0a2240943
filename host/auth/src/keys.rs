//! The trusted verification keys and which one a token's `kid` selects: the
//! PEM-file key, the development key (dev mode only) and the JWKS keys. Every
//! key carries the one algorithm it may verify and the issuer it vouches for,
//! so a key can never be used with another algorithm family (the HS256-with-
//! the-public-key confusion) and the dev key can never vouch for the real
//! issuer. Fetching the JWKS is `jwks`'s job.

use std::sync::Arc;

use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};

use super::dev::DEV_KID;
use super::error::{AuthError, shown};
use super::jwks::JwksSource;

/// RSA keys below this are refused wherever they come from.
const MIN_RSA_BITS: usize = 2048;

/// Where a key came from; decides which claim checks apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyOrigin {
    Jwks,
    Pem,
    Dev,
}

/// One trusted key, bound to a single algorithm and issuer.
pub(super) struct VerifyKey {
    pub(super) key: DecodingKey,
    pub(super) alg: Algorithm,
    pub(super) issuer: Arc<str>,
    pub(super) origin: KeyOrigin,
}

/// The configured PEM key and the `kid` it answers to, if one was configured.
pub(super) struct PemKey {
    pub(super) kid: Option<String>,
    pub(super) key: Arc<VerifyKey>,
}

/// All trusted keys of one authenticator.
pub(super) struct KeyStore {
    pub(super) pem: Option<PemKey>,
    pub(super) dev: Option<Arc<VerifyKey>>,
    pub(super) jwks: Option<JwksSource>,
}

impl KeyStore {
    /// The key for a token's `kid`.
    ///
    /// - `veneer-dev` is reserved: the dev key in dev mode, refused otherwise
    ///   (without asking the JWKS, so dev tokens cannot be used to make us fetch).
    /// - The PEM key answers to its configured `kid`; with none configured, to
    ///   tokens without a `kid`, and, when there is no JWKS to ask, to any `kid`
    ///   (Clerk's PEM key verifies tokens whose `kid` is the instance's key id).
    /// - Anything else is looked up in the JWKS.
    pub(super) async fn select(&self, kid: Option<&str>) -> Result<Arc<VerifyKey>, AuthError> {
        if kid == Some(DEV_KID) {
            return self.dev.clone().ok_or(AuthError::UnknownKey {
                kid: Some(DEV_KID.to_owned()),
            });
        }
        if let Some(pem) = &self.pem {
            let matches = match (&pem.kid, kid) {
                (Some(want), Some(got)) => want == got,
                (Some(_), None) => false,
                (None, None) => true,
                (None, Some(_)) => self.jwks.is_none(),
            };
            if matches {
                return Ok(pem.key.clone());
            }
        }
        match (kid, &self.jwks) {
            (Some(kid), Some(jwks)) => jwks.key_for(kid).await,
            (kid, _) => Err(AuthError::UnknownKey {
                kid: kid.map(shown),
            }),
        }
    }
}

/// Parses a PEM public key (RSA, or EC on P-256) into a verification key and
/// its algorithm. The error says what is wrong in words and never echoes the
/// key.
pub(super) fn key_from_pem(pem: &str) -> Result<(DecodingKey, Algorithm), String> {
    match pem_label(pem) {
        Some("PUBLIC KEY" | "RSA PUBLIC KEY") => {}
        Some(label) if label.contains("PRIVATE KEY") => {
            return Err("it holds a private key; configure the public key instead (`openssl pkey -in key.pem -pubout`), and keep the private key off this server".to_owned());
        }
        Some("CERTIFICATE") => {
            return Err("it holds a certificate; extract its public key with `openssl x509 -in cert.pem -pubkey -noout`".to_owned());
        }
        Some(label) => {
            return Err(format!(
                "it holds a `{}` block, not a `PUBLIC KEY`",
                shown(label)
            ));
        }
        None => {
            return Err("no PEM block found; expected `-----BEGIN PUBLIC KEY-----`".to_owned());
        }
    }
    let bytes = pem.as_bytes();
    if let Ok(key) = DecodingKey::from_rsa_pem(bytes) {
        let der = key
            .try_get_as_bytes()
            .map_err(|_| "the RSA public key does not parse".to_owned())?;
        let (n, _e) = (DEFAULT_PROVIDER
            .key_utils
            .rsa_pub_components_from_public_key)(der)
        .map_err(|_| "the RSA public key does not parse".to_owned())?;
        check_rsa_size(&n)?;
        return Ok((key, Algorithm::RS256));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(bytes) {
        let point_len = key.try_get_as_bytes().map(<[u8]>::len).unwrap_or(0);
        // An uncompressed P-256 point is 0x04 || x (32) || y (32).
        if point_len != 65 {
            return Err(
                "it is an EC key on another curve; only P-256 (ES256) keys are accepted".to_owned(),
            );
        }
        (DEFAULT_PROVIDER.verifier_factory)(&Algorithm::ES256, &key)
            .map_err(|_| "the EC public key is not a valid P-256 point".to_owned())?;
        return Ok((key, Algorithm::ES256));
    }
    Err(
        "it is neither an RSA nor an EC P-256 public key (only RS256 and ES256 are accepted)"
            .to_owned(),
    )
}

fn pem_label(pem: &str) -> Option<&str> {
    let line = pem
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("-----BEGIN "))?;
    line.strip_prefix("-----BEGIN ")?.strip_suffix("-----")
}

fn check_rsa_size(modulus: &[u8]) -> Result<(), String> {
    let significant = modulus.iter().skip_while(|b| **b == 0).count();
    let bits = significant * 8;
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "the RSA key has about {bits} bits; at least {MIN_RSA_BITS} are required"
        ));
    }
    Ok(())
}

/// Turns one JWKS entry into `(kid, key, alg)`, or says why it is skipped.
/// Skipped keys are not errors: a JWKS may legitimately hold keys for other
/// uses or algorithms, and tokens naming them are refused as unknown keys.
pub(super) fn key_from_jwk(jwk: &Jwk) -> Result<(String, DecodingKey, Algorithm), String> {
    let kid = jwk
        .common
        .key_id
        .clone()
        .ok_or_else(|| "it has no `kid`".to_owned())?;
    match &jwk.common.public_key_use {
        None | Some(PublicKeyUse::Signature) => {}
        Some(_) => return Err("it is not a signing key (`use` is not `sig`)".to_owned()),
    }
    let declared = jwk.common.key_algorithm;
    match &jwk.algorithm {
        AlgorithmParameters::RSA(params) => {
            if !matches!(declared, None | Some(KeyAlgorithm::RS256)) {
                return Err("it is an RSA key for an algorithm other than RS256".to_owned());
            }
            let key = DecodingKey::from_rsa_components(&params.n, &params.e)
                .map_err(|_| "its `n` or `e` is not base64url".to_owned())?;
            if let DecodingKeyKind::RsaModulusExponent { n, .. } = key.kind() {
                check_rsa_size(n)?;
            }
            Ok((kid, key, Algorithm::RS256))
        }
        AlgorithmParameters::EllipticCurve(params) => {
            if params.curve != EllipticCurve::P256 {
                return Err("it is an EC key on a curve other than P-256".to_owned());
            }
            if !matches!(declared, None | Some(KeyAlgorithm::ES256)) {
                return Err("it is a P-256 key for an algorithm other than ES256".to_owned());
            }
            let key = DecodingKey::from_ec_components(&params.x, &params.y)
                .map_err(|_| "its `x` or `y` is not base64url".to_owned())?;
            (DEFAULT_PROVIDER.verifier_factory)(&Algorithm::ES256, &key)
                .map_err(|_| "its point is not on P-256".to_owned())?;
            Ok((kid, key, Algorithm::ES256))
        }
        _ => Err("it is neither an RSA nor an EC P-256 key".to_owned()),
    }
}
