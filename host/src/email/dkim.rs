//! DKIM (RFC 6376) for tenants' sending domains: making a key pair, the TXT
//! record that publishes its public half, reading such a record back from DNS,
//! and signing a built message. RSA 2048 with SHA-256 (`rsa-sha256`), which
//! every receiver verifies (Ed25519, RFC 8463, is not yet verified widely).
//! Headers and body are signed with `relaxed/relaxed` canonicalization, which
//! survives the header rewrapping and trailing-space changes relays make.
//!
//! Owns no storage and no policy: which key signs, and whether a domain may
//! be sent as, are the application's. The private key arrives and leaves as
//! PKCS#1 PEM; the secrets module encrypts it at rest with [`key_aad`] binding
//! the ciphertext to its tenant, domain and selector.

use base64::Engine;
use lettre::Message;
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::HeaderName;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::pkcs8::EncodePublicKey;
use zeroize::Zeroizing;

use crate::tenancy::TenantId;

/// Bits of a new key: 2048, what receivers expect (1024 is weak, 4096 does
/// not fit one DNS answer comfortably).
pub const KEY_BITS: usize = 2048;

/// The headers signed, when present, in this order: what a receiver shows
/// and what a replay would change.
const SIGNED_HEADERS: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "MIME-Version",
];

/// A new key pair.
pub struct GeneratedKey {
    /// PKCS#1 PEM of the private key (to be encrypted before it is stored).
    pub private_pem: Zeroizing<String>,
    /// Base64 of the public key's SubjectPublicKeyInfo: the record's `p=`.
    pub public_key: String,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

/// Why DKIM could not be done.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DkimError {
    /// The key could not be made or encoded.
    #[error("cannot make a DKIM key: {0}")]
    Generate(String),
    /// The stored private key is not a PKCS#1 RSA key.
    #[error("the stored DKIM key is unusable: {0}")]
    BadKey(String),
}

/// Makes a new RSA key pair. CPU-bound (tens to hundreds of milliseconds):
/// call it off the async threads.
pub fn generate() -> Result<GeneratedKey, DkimError> {
    let mut rng = rsa::rand_core::OsRng;
    let private = rsa::RsaPrivateKey::new(&mut rng, KEY_BITS)
        .map_err(|err| DkimError::Generate(err.to_string()))?;
    let public_der = private
        .to_public_key()
        .to_public_key_der()
        .map_err(|err| DkimError::Generate(err.to_string()))?;
    let pem = private
        .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
        .map_err(|err| DkimError::Generate(err.to_string()))?;
    Ok(GeneratedKey {
        private_pem: Zeroizing::new(pem.as_str().to_owned()),
        public_key: base64::engine::general_purpose::STANDARD.encode(public_der.as_bytes()),
    })
}

/// A new selector: `veneer-` and 8 random hex digits, so two tenants that
/// share a domain (or two keys of one) never publish at the same name.
pub fn new_selector() -> String {
    format!("veneer-{:08x}", rand::random::<u32>())
}

/// The name a key of `selector` is published at.
pub fn record_name(selector: &str, domain: &str) -> String {
    format!("{selector}._domainkey.{domain}")
}

/// The TXT value that publishes `public_key`.
pub fn record_value(public_key: &str) -> String {
    format!("v=DKIM1; k=rsa; p={public_key}")
}

/// The public key (`p=`, whitespace removed) a DKIM TXT record publishes, if
/// it is one: tags are `name=value` separated by `;` (RFC 6376 3.6.1).
pub fn published_key(txt: &str) -> Option<String> {
    let mut key = None;
    for tag in txt.split(';') {
        let Some((name, value)) = tag.split_once('=') else {
            continue;
        };
        let value: String = value.chars().filter(|c| !c.is_whitespace()).collect();
        match name.trim() {
            "v" if value != "DKIM1" => return None,
            "k" if value != "rsa" => return None,
            "p" => key = Some(value),
            _ => {}
        }
    }
    key.filter(|k| !k.is_empty())
}

/// Signs `message` for `domain` with `selector`'s key (PKCS#1 PEM): adds the
/// DKIM-Signature header.
pub fn sign(
    message: &mut Message,
    domain: &str,
    selector: &str,
    private_pem: &str,
) -> Result<(), DkimError> {
    let key = DkimSigningKey::new(private_pem, DkimSigningAlgorithm::Rsa)
        .map_err(|err| DkimError::BadKey(err.to_string()))?;
    let headers = SIGNED_HEADERS
        .iter()
        .filter(|name| message.headers().get_raw(name).is_some())
        .map(|name| HeaderName::new_from_ascii_str(name))
        .collect();
    let config = DkimConfig::new(
        selector.to_owned(),
        domain.to_owned(),
        key,
        headers,
        DkimCanonicalization {
            header: DkimCanonicalizationType::Relaxed,
            body: DkimCanonicalizationType::Relaxed,
        },
    );
    message.sign(&config);
    Ok(())
}

/// The associated data a DKIM private key of `tenant` is encrypted with: a
/// ciphertext moved to another tenant, domain or selector does not decrypt.
pub fn key_aad(tenant: &TenantId, domain: &str, selector: &str) -> String {
    format!("dkim:{tenant}:{domain}:{selector}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_record_is_read_back() {
        let value = record_value("MIIBIjAN");
        assert_eq!(published_key(&value).as_deref(), Some("MIIBIjAN"));
        // Whitespace inside the key (long records are split) is ignored.
        assert_eq!(
            published_key("v=DKIM1; k=rsa; p=MIIB IjAN ").as_deref(),
            Some("MIIBIjAN")
        );
        assert_eq!(published_key("p=abc").as_deref(), Some("abc"));
        // Revoked (empty), another version or key type: not a usable key.
        assert_eq!(published_key("v=DKIM1; p="), None);
        assert_eq!(published_key("v=DKIM2; p=abc"), None);
        assert_eq!(published_key("v=DKIM1; k=ed25519; p=abc"), None);
        assert_eq!(published_key("v=spf1 -all"), None);
    }

    #[test]
    fn selectors_are_one_dns_label() {
        let s = new_selector();
        assert!(s.starts_with("veneer-") && s.len() == 15, "{s}");
        assert_ne!(new_selector(), s);
        assert_eq!(
            record_name(&s, "shop.example"),
            format!("{s}._domainkey.shop.example")
        );
    }

    #[test]
    fn the_key_aad_names_tenant_domain_and_selector() {
        let t = TenantId::new("acme").unwrap();
        assert_eq!(
            key_aad(&t, "acme.example", "s1"),
            "dkim:acme:acme.example:s1"
        );
    }
}
