//! Secrets: encryption at rest for credentials the host must be able to read
//! back (a tenant's Shopify access token and app secret). Owns the master keys
//! and the stored format; knows nothing of SQL, HTTP or which column a value
//! lives in: callers pass the associated data that binds a ciphertext to its
//! place.
//!
//! Stored values look like `v1:<key_id>:<base64(nonce || ciphertext || tag)>`:
//! AES-256-GCM with a fresh random 96-bit nonce per encryption. The AAD given by
//! the caller (the tenant id and the field, e.g. `acme/shopify/access_token`) is
//! authenticated together with the version and key id, so a value copied to
//! another tenant's row, or to another column, fails to decrypt instead of being
//! silently used. Random nonces stay safe for far more encryptions under one
//! key (about 2^32) than a credentials table will ever see.
//!
//! Key rotation:
//! 1. generate a key: `openssl rand -base64 32`;
//! 2. start the host with the new key as current and the old one kept readable:
//!    `VENEER_SECRET_KEY=k2:<new>` and `VENEER_SECRET_OLD_KEYS=k1:<old>`;
//! 3. re-encrypt what is stored under old keys (`shopify::rotate_credentials`,
//!    which walks the rows and rewrites each value [`SecretBox::needs_rotation`]
//!    flags);
//! 4. once nothing is left under `k1`, drop it from the old keys.

use std::fmt;

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// The environment variable conventionally holding the current key.
pub const KEY_ENV: &str = "VENEER_SECRET_KEY";
/// The environment variable conventionally holding older keys, comma-separated.
pub const OLD_KEYS_ENV: &str = "VENEER_SECRET_OLD_KEYS";
/// The key id of the fixed development key: whatever it encrypts is readable by
/// anyone with this source code.
pub const INSECURE_DEV_KEY_ID: &str = "dev-insecure";

const VERSION: &str = "v1";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const MAX_KEY_ID_LEN: usize = 32;

/// Why a key could not be set up or a value could not be decrypted. Messages say
/// what to change; none of them contains key material or plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    /// No master key outside dev mode.
    #[error(
        "no secret key configured: set {KEY_ENV}=<id>:<key>, e.g. \
         {KEY_ENV}=k1:$(openssl rand -base64 32) (keep it out of the repository; losing it \
         makes stored credentials unreadable)"
    )]
    MissingKey,
    /// A configured key is malformed.
    #[error(
        "secret key `{key_id}` is malformed: {reason}; give it as <id>:<base64 of 32 bytes>, \
         e.g. k1:$(openssl rand -base64 32)"
    )]
    BadKey { key_id: String, reason: String },
    /// Two configured keys share an id, so a stored value could not say which it used.
    #[error("secret key id `{0}` is configured twice: give every key its own id")]
    DuplicateKeyId(String),
    /// The stored value is not in the `v1:<key_id>:<base64>` format.
    #[error("stored secret is not in the v1:<key_id>:<data> format: {0}")]
    Malformed(String),
    /// The stored value names a key this host does not have.
    #[error(
        "stored secret was encrypted with key `{0}`, which is not configured: add it to \
         {OLD_KEYS_ENV} as {0}:<key> (or re-enter the credential)"
    )]
    UnknownKey(String),
    /// Authentication failed: wrong key, value moved to another row or field,
    /// or tampered with.
    #[error(
        "stored secret failed authentication under key `{0}`: it was altered, copied from \
         another tenant or field, or the key with this id changed; re-enter the credential"
    )]
    Decrypt(String),
}

struct Key {
    id: String,
    cipher: Aes256Gcm,
}

/// Encrypts and decrypts stored secrets with the current key; older keys only
/// decrypt. Cheap to share behind an `Arc`; holds no plaintext.
pub struct SecretBox {
    current: Key,
    older: Vec<Key>,
    /// The root of keys derived for other purposes ([`SecretBox::derive_key`]).
    derive_root: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretBox")
            .field("current", &self.current.id)
            .field(
                "older",
                &self.older.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl SecretBox {
    /// A box encrypting with `current` and still decrypting values made with
    /// any of `older`. Key ids are 1 to 32 of `[A-Za-z0-9_-]`, all distinct.
    pub fn new(
        current: (String, [u8; 32]),
        older: Vec<(String, [u8; 32])>,
    ) -> Result<SecretBox, SecretsError> {
        let derive_root = Zeroizing::new(hmac_sha256(&current.1, b"veneer:derive:v1"));
        let current = make_key(current.0, Zeroizing::new(current.1))?;
        let mut seen = vec![current.id.clone()];
        let mut keys = Vec::with_capacity(older.len());
        for (id, bytes) in older {
            let key = make_key(id, Zeroizing::new(bytes))?;
            if seen.contains(&key.id) {
                return Err(SecretsError::DuplicateKeyId(key.id));
            }
            seen.push(key.id.clone());
            keys.push(key);
        }
        Ok(SecretBox {
            current,
            older: keys,
            derive_root,
        })
    }

    /// The box the host's configuration asks for: `master_key` and `old_keys`
    /// as `<id>:<base64 of 32 bytes>`. Without a master key, dev mode gets the
    /// fixed [`INSECURE_DEV_KEY_ID`] key (with a warning) and anything else is
    /// [`SecretsError::MissingKey`].
    pub fn from_env_or_dev(
        master_key: Option<&str>,
        old_keys: &[String],
        dev_mode: bool,
    ) -> Result<SecretBox, SecretsError> {
        let current = match master_key.map(str::trim).filter(|k| !k.is_empty()) {
            Some(spec) => parse_key_spec(spec)?,
            None if dev_mode => {
                tracing::warn!(
                    key_id = INSECURE_DEV_KEY_ID,
                    "no {KEY_ENV} set: encrypting secrets with the fixed, public development \
                     key; never use dev mode with real credentials"
                );
                (INSECURE_DEV_KEY_ID.to_owned(), insecure_dev_key())
            }
            None => return Err(SecretsError::MissingKey),
        };
        let older = old_keys
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .map(parse_key_spec)
            .collect::<Result<Vec<_>, _>>()?;
        SecretBox::new(current, older)
    }

    /// A 32-byte key for `purpose`, derived from the current master key
    /// (HMAC-SHA256): the same on every node sharing that key, unrelated to
    /// the encryption key itself. Rotating the master key changes it.
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        hmac_sha256(&*self.derive_root, purpose.as_bytes())
    }

    /// The id of the key new values are encrypted with.
    pub fn current_key_id(&self) -> &str {
        &self.current.id
    }

    /// Whether new values are encrypted with the public development key.
    pub fn is_insecure_dev_key(&self) -> bool {
        self.current.id == INSECURE_DEV_KEY_ID
    }

    /// Encrypts `plaintext` under the current key, bound to `aad`.
    pub fn encrypt(&self, plaintext: &[u8], aad: &str) -> String {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let aad = full_aad(&self.current.id, aad);
        let sealed = self
            .current
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .expect("AES-GCM encrypts any input under 64 GiB");
        let mut data = Vec::with_capacity(NONCE_LEN + sealed.len());
        data.extend_from_slice(&nonce);
        data.extend_from_slice(&sealed);
        format!("{VERSION}:{}:{}", self.current.id, B64.encode(data))
    }

    /// Decrypts a value made by [`encrypt`](Self::encrypt) with the same `aad`,
    /// under whichever configured key it names. The plaintext is wiped on drop.
    pub fn decrypt(&self, stored: &str, aad: &str) -> Result<Zeroizing<Vec<u8>>, SecretsError> {
        let (key_id, data) = split_stored(stored)?;
        let key = self
            .keys()
            .find(|k| k.id == key_id)
            .ok_or_else(|| SecretsError::UnknownKey(key_id.to_owned()))?;
        let data = B64
            .decode(data)
            .map_err(|e| SecretsError::Malformed(format!("the data is not base64 ({e})")))?;
        if data.len() < NONCE_LEN + TAG_LEN {
            return Err(SecretsError::Malformed(
                "the data is too short to hold a nonce and a tag".into(),
            ));
        }
        let (nonce, sealed) = data.split_at(NONCE_LEN);
        let aad = full_aad(key_id, aad);
        key.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SecretsError::Decrypt(key_id.to_owned()))
    }

    /// Whether `stored` should be re-encrypted: it is not a v1 value under the
    /// current key (an old key, an unknown key, or malformed).
    pub fn needs_rotation(&self, stored: &str) -> bool {
        !matches!(split_stored(stored), Ok((id, _)) if id == self.current.id)
    }

    /// Decrypts with any configured key and encrypts again under the current
    /// one; `None` when `stored` is already under the current key.
    pub fn reencrypt(&self, stored: &str, aad: &str) -> Result<Option<String>, SecretsError> {
        if !self.needs_rotation(stored) {
            return Ok(None);
        }
        let plain = self.decrypt(stored, aad)?;
        Ok(Some(self.encrypt(&plain, aad)))
    }

    fn keys(&self) -> impl Iterator<Item = &Key> {
        std::iter::once(&self.current).chain(&self.older)
    }
}

/// The fixed development key: derived from a public label, so it is the same
/// on every machine and protects nothing.
fn insecure_dev_key() -> [u8; 32] {
    Sha256::digest(b"veneer INSECURE development secret key: never use in production").into()
}

/// The AAD actually authenticated: the format version and key id bound to the
/// caller's, with a separator that cannot occur in a key id.
fn full_aad(key_id: &str, aad: &str) -> Vec<u8> {
    format!("veneer-secret:{VERSION}:{key_id}\n{aad}").into_bytes()
}

fn split_stored(stored: &str) -> Result<(&str, &str), SecretsError> {
    let mut parts = stored.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(VERSION), Some(id), Some(data)) if valid_key_id(id) => Ok((id, data)),
        (Some(VERSION), Some(_), Some(_)) => Err(SecretsError::Malformed(
            "the key id is not 1 to 32 of [A-Za-z0-9_-]".into(),
        )),
        (Some(version), Some(_), Some(_)) => Err(SecretsError::Malformed(format!(
            "unknown format version `{}`",
            version.chars().take(8).collect::<String>()
        ))),
        _ => Err(SecretsError::Malformed(
            "expected three `:`-separated parts".into(),
        )),
    }
}

fn valid_key_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_KEY_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    // Cannot fail: HMAC takes keys of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn make_key(id: String, bytes: Zeroizing<[u8; 32]>) -> Result<Key, SecretsError> {
    if !valid_key_id(&id) {
        return Err(SecretsError::BadKey {
            key_id: id.chars().take(MAX_KEY_ID_LEN).collect(),
            reason: "the id must be 1 to 32 of [A-Za-z0-9_-]".into(),
        });
    }
    let cipher = Aes256Gcm::new_from_slice(bytes.as_slice()).map_err(|_| SecretsError::BadKey {
        key_id: id.clone(),
        reason: "the key must be 32 bytes".into(),
    })?;
    Ok(Key { id, cipher })
}

/// Parses `<id>:<base64 of 32 bytes>`.
fn parse_key_spec(spec: &str) -> Result<(String, [u8; 32]), SecretsError> {
    let Some((id, b64)) = spec.split_once(':') else {
        return Err(SecretsError::BadKey {
            key_id: "?".into(),
            reason: "it has no `<id>:` prefix".into(),
        });
    };
    let id = id.trim();
    if !valid_key_id(id) {
        return Err(SecretsError::BadKey {
            key_id: id.chars().take(MAX_KEY_ID_LEN).collect(),
            reason: "the id must be 1 to 32 of [A-Za-z0-9_-]".into(),
        });
    }
    let bytes = Zeroizing::new(B64.decode(b64.trim()).map_err(|e| SecretsError::BadKey {
        key_id: id.to_owned(),
        reason: format!("the key is not base64 ({e})"),
    })?);
    let key: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| SecretsError::BadKey {
            key_id: id.to_owned(),
            reason: format!("the key is {} bytes, not 32", bytes.len()),
        })?;
    Ok((id.to_owned(), key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boxed(current: (&str, u8), older: &[(&str, u8)]) -> SecretBox {
        SecretBox::new(
            (current.0.to_owned(), [current.1; 32]),
            older
                .iter()
                .map(|&(id, b)| (id.to_owned(), [b; 32]))
                .collect(),
        )
        .unwrap()
    }

    fn spec(id: &str, byte: u8) -> String {
        format!("{id}:{}", B64.encode([byte; 32]))
    }

    #[test]
    fn round_trip_and_format() {
        let secrets = boxed(("k1", 1), &[]);
        let stored = secrets.encrypt(b"shpat_secret", "acme/shopify/access_token");
        assert!(stored.starts_with("v1:k1:"), "{stored}");
        assert!(!stored.contains("shpat_secret"));
        let plain = secrets
            .decrypt(&stored, "acme/shopify/access_token")
            .unwrap();
        assert_eq!(plain.as_slice(), b"shpat_secret");
        // A fresh nonce each time: the same plaintext never encrypts the same.
        assert_ne!(
            stored,
            secrets.encrypt(b"shpat_secret", "acme/shopify/access_token")
        );
        let empty = secrets.encrypt(b"", "acme");
        assert_eq!(secrets.decrypt(&empty, "acme").unwrap().as_slice(), b"");
    }

    #[test]
    fn a_value_moved_to_another_tenant_or_field_fails() {
        let secrets = boxed(("k1", 1), &[]);
        let stored = secrets.encrypt(b"token", "acme/shopify/access_token");
        for aad in [
            "evil/shopify/access_token",
            "acme/shopify/app_secret",
            "acme",
            "",
        ] {
            assert_eq!(
                secrets.decrypt(&stored, aad),
                Err(SecretsError::Decrypt("k1".into())),
                "{aad}"
            );
        }
    }

    #[test]
    fn tampering_is_detected() {
        let secrets = boxed(("k1", 1), &[("k0", 0)]);
        let stored = secrets.encrypt(b"token", "acme");
        let data = B64.decode(stored.strip_prefix("v1:k1:").unwrap()).unwrap();
        for i in [0, NONCE_LEN, data.len() - 1] {
            let mut bad = data.clone();
            bad[i] ^= 1;
            let forged = format!("v1:k1:{}", B64.encode(&bad));
            assert_eq!(
                secrets.decrypt(&forged, "acme"),
                Err(SecretsError::Decrypt("k1".into())),
                "byte {i}"
            );
        }
        // Relabelled as another configured key: that key's tag check fails.
        let relabelled = stored.replacen("v1:k1:", "v1:k0:", 1);
        assert_eq!(
            secrets.decrypt(&relabelled, "acme"),
            Err(SecretsError::Decrypt("k0".into()))
        );
        let truncated = format!("v1:k1:{}", B64.encode(&data[..NONCE_LEN + TAG_LEN - 1]));
        assert!(matches!(
            secrets.decrypt(&truncated, "acme"),
            Err(SecretsError::Malformed(_))
        ));
        for garbage in [
            "",
            "token",
            "v1:k1",
            "v2:k1:AAAA",
            "v1:k 1:AAAA",
            "v1:k1:!!",
        ] {
            assert!(
                matches!(
                    secrets.decrypt(garbage, "acme"),
                    Err(SecretsError::Malformed(_))
                ),
                "{garbage}"
            );
        }
    }

    #[test]
    fn old_keys_decrypt_and_rotation_is_detected() {
        let old = boxed(("k1", 1), &[]);
        let stored = old.encrypt(b"token", "acme");
        let rotated = boxed(("k2", 2), &[("k1", 1)]);
        assert_eq!(
            rotated.decrypt(&stored, "acme").unwrap().as_slice(),
            b"token"
        );
        assert!(rotated.needs_rotation(&stored));
        assert!(!old.needs_rotation(&stored));
        assert!(rotated.needs_rotation("not a secret"));

        let fresh = rotated.reencrypt(&stored, "acme").unwrap().unwrap();
        assert!(fresh.starts_with("v1:k2:"));
        assert!(!rotated.needs_rotation(&fresh));
        assert_eq!(rotated.reencrypt(&fresh, "acme").unwrap(), None);
        assert_eq!(
            rotated.decrypt(&fresh, "acme").unwrap().as_slice(),
            b"token"
        );

        // Once the old key is dropped, its values say which key they need.
        let dropped = boxed(("k2", 2), &[]);
        assert_eq!(
            dropped.decrypt(&stored, "acme"),
            Err(SecretsError::UnknownKey("k1".into()))
        );
        assert!(dropped.decrypt(&fresh, "acme").is_ok());
        // A different key under a reused id does not decrypt either.
        let impostor = boxed(("k1", 9), &[]);
        assert_eq!(
            impostor.decrypt(&stored, "acme"),
            Err(SecretsError::Decrypt("k1".into()))
        );
    }

    #[test]
    fn configuration_from_the_environment() {
        let secrets =
            SecretBox::from_env_or_dev(Some(&spec("k2", 2)), &[spec("k1", 1)], false).unwrap();
        assert_eq!(secrets.current_key_id(), "k2");
        assert!(!secrets.is_insecure_dev_key());
        let old = boxed(("k1", 1), &[]).encrypt(b"x", "a");
        assert_eq!(secrets.decrypt(&old, "a").unwrap().as_slice(), b"x");

        let err = SecretBox::from_env_or_dev(None, &[], false).unwrap_err();
        assert_eq!(err, SecretsError::MissingKey);
        assert!(err.to_string().contains("openssl rand -base64 32"), "{err}");
        assert_eq!(
            SecretBox::from_env_or_dev(Some("  "), &[], false).unwrap_err(),
            SecretsError::MissingKey
        );

        let dev = SecretBox::from_env_or_dev(None, &[], true).unwrap();
        assert!(dev.is_insecure_dev_key());
        let again = SecretBox::from_env_or_dev(None, &[], true).unwrap();
        assert_eq!(
            again
                .decrypt(&dev.encrypt(b"dev", "a"), "a")
                .unwrap()
                .as_slice(),
            b"dev",
            "the dev key is the same on every start"
        );
        // A real key wins over the dev key in dev mode too.
        let dev_with_key = SecretBox::from_env_or_dev(Some(&spec("k1", 1)), &[], true).unwrap();
        assert_eq!(dev_with_key.current_key_id(), "k1");

        for (bad, what) in [
            (B64.encode([1u8; 32]), "no `<id>:` prefix"),
            ("k1:not base64!".to_owned(), "not base64"),
            (format!("k1:{}", B64.encode([1u8; 16])), "16 bytes, not 32"),
            (
                format!("bad id:{}", B64.encode([1u8; 32])),
                "the id must be",
            ),
        ] {
            let err = SecretBox::from_env_or_dev(Some(&bad), &[], false).unwrap_err();
            assert!(err.to_string().contains(what), "{err}");
            assert!(!err.to_string().contains(&B64.encode([1u8; 32])));
        }
        assert_eq!(
            SecretBox::from_env_or_dev(Some(&spec("k1", 1)), &[spec("k1", 2)], false).unwrap_err(),
            SecretsError::DuplicateKeyId("k1".into())
        );
    }

    #[test]
    fn debug_output_holds_no_key_material() {
        let secrets = boxed(("k2", 7), &[("k1", 1)]);
        let shown = format!("{secrets:?}");
        assert!(shown.contains("k2") && shown.contains("k1"), "{shown}");
        assert!(!shown.contains("7, 7"), "{shown}");
    }
}
