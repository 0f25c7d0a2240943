//! Svix's webhook signatures, as Svix publishes the scheme
//! (<https://docs.svix.com/receiving/verifying-payloads/how-manual>):
//!
//! - the endpoint secret is `whsec_<base64>`; the HMAC key is the decoded
//!   base64 part;
//! - the signed content is `{svix-id}.{svix-timestamp}.{raw body}`, the body
//!   exactly as received (before any parsing);
//! - `svix-signature` is a space-separated list of `<version>,<base64>`;
//!   a `v1` entry is the HMAC-SHA256 of the signed content, and any one
//!   matching passes (Svix sends several while a secret is being rotated);
//!   other versions are skipped;
//! - `svix-timestamp` (Unix seconds) must be within [`TOLERANCE`] of now, so
//!   a captured delivery cannot be replayed later; replays within the window
//!   are the caller's to refuse by `svix-id`.
//!
//! Comparisons are constant-time (`hmac`'s `verify_slice`).

use std::time::Duration;

use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// How far a delivery's timestamp may be from the server's clock, either way.
pub const TOLERANCE: Duration = Duration::from_secs(5 * 60);

/// The longest `svix-id` accepted (Svix's are about 30 characters).
const MAX_ID_LEN: usize = 256;

/// Signatures looked at in one `svix-signature` header, at most.
const MAX_SIGNATURES: usize = 16;

/// The endpoint's signing secret (`whsec_…`), decoded.
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(<redacted>)")
    }
}

impl WebhookSecret {
    /// Reads a secret as Clerk's dashboard shows it: `whsec_` and base64 (a
    /// bare base64 string is taken too). An error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let encoded = text.strip_prefix("whsec_").unwrap_or(text);
        let key = B64
            .decode(encoded)
            .map_err(|_| "the Clerk webhook secret is not `whsec_` followed by base64; copy the endpoint's signing secret from Clerk's dashboard".to_owned())?;
        if key.len() < 16 {
            return Err(
                "the Clerk webhook secret is shorter than 16 bytes; copy the endpoint's signing secret from Clerk's dashboard"
                    .to_owned(),
            );
        }
        Ok(Self(key))
    }
}

/// Why a delivery is refused. Each says what was wrong; all are "not
/// authenticated" to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SvixError {
    /// A required header is missing.
    #[error("the delivery has no {0} header")]
    MissingHeader(&'static str),
    /// A header is not what Svix sends.
    #[error("the {name} header is invalid: {reason}")]
    InvalidHeader {
        /// The header.
        name: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The timestamp is too far in the past (a replay, or a clock off).
    #[error(
        "the delivery's timestamp is {0} s old, more than 5 minutes: refused as a possible replay"
    )]
    TooOld(u64),
    /// The timestamp is too far in the future.
    #[error(
        "the delivery's timestamp is {0} s in the future, more than 5 minutes: check the server's clock"
    )]
    TooNew(u64),
    /// No `v1` signature matches.
    #[error("no signature matches the endpoint secret")]
    BadSignature,
}

/// A delivery whose signature and timestamp checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The message id (`svix-id`): the same on every retry of one message.
    pub id: String,
    /// When this attempt was signed (`svix-timestamp`, Unix seconds).
    pub timestamp: i64,
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, SvixError> {
    let mut values = headers.get_all(name).iter();
    let value = values.next().ok_or(SvixError::MissingHeader(name))?;
    if values.next().is_some() {
        return Err(SvixError::InvalidHeader {
            name,
            reason: "it is sent more than once",
        });
    }
    value.to_str().map_err(|_| SvixError::InvalidHeader {
        name,
        reason: "it is not ASCII text",
    })
}

/// Checks a delivery of `body` with its headers against `secret`, at
/// `now_secs` (Unix seconds).
pub fn verify(
    secret: &WebhookSecret,
    headers: &HeaderMap,
    body: &[u8],
    now_secs: i64,
) -> Result<Delivery, SvixError> {
    let id = header(headers, "svix-id")?.trim();
    if id.is_empty() || id.len() > MAX_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(SvixError::InvalidHeader {
            name: "svix-id",
            reason: "it must be 1 to 256 printable ASCII characters",
        });
    }
    let timestamp_text = header(headers, "svix-timestamp")?.trim();
    let timestamp: i64 = if !timestamp_text.is_empty()
        && timestamp_text.len() <= 12
        && timestamp_text.bytes().all(|b| b.is_ascii_digit())
    {
        timestamp_text
            .parse()
            .map_err(|_| SvixError::InvalidHeader {
                name: "svix-timestamp",
                reason: "it is not Unix seconds",
            })?
    } else {
        return Err(SvixError::InvalidHeader {
            name: "svix-timestamp",
            reason: "it is not Unix seconds",
        });
    };
    let signatures = header(headers, "svix-signature")?;

    // The signature first: a forger learns nothing about our clock.
    let mut mac = HmacSha256::new_from_slice(&secret.0).map_err(|_| SvixError::BadSignature)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp_text.as_bytes());
    mac.update(b".");
    mac.update(body);
    let matched = signatures
        .split(' ')
        .filter(|entry| !entry.is_empty())
        .take(MAX_SIGNATURES)
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, signature)| B64.decode(signature).ok())
        // Every candidate is checked (no early exit on a match).
        .fold(false, |found, signature| {
            found | mac.clone().verify_slice(&signature).is_ok()
        });
    if !matched {
        return Err(SvixError::BadSignature);
    }

    let tolerance = TOLERANCE.as_secs() as i64;
    let age = now_secs.saturating_sub(timestamp);
    if age > tolerance {
        return Err(SvixError::TooOld(age.unsigned_abs()));
    }
    if age < -tolerance {
        return Err(SvixError::TooNew(age.unsigned_abs()));
    }
    Ok(Delivery {
        id: id.to_owned(),
        timestamp,
    })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;
    use crate::test_support::svix_sender::SvixSender;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const NOW: i64 = 1_700_000_000;
    const BODY: &[u8] = br#"{"type":"organization.deleted","data":{"id":"org_1"}}"#;

    fn secret() -> WebhookSecret {
        WebhookSecret::parse(SECRET).unwrap()
    }

    fn signed(body: &[u8], at: i64) -> HeaderMap {
        SvixSender::new(SECRET).headers("msg_1", at, body)
    }

    #[test]
    fn svix_published_example_verifies() {
        // The example of Svix's manual-verification guide.
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(
            "svix-id",
            HeaderValue::from_static("msg_p5jXN8AQM9LWM0D4loKWxJek"),
        );
        headers.insert("svix-timestamp", HeaderValue::from_static("1614265330"));
        headers.insert(
            "svix-signature",
            HeaderValue::from_static("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
        );
        let body = br#"{"test": 2432232314}"#;
        let delivery = verify(&secret, &headers, body, 1_614_265_330).unwrap();
        assert_eq!(delivery.id, "msg_p5jXN8AQM9LWM0D4loKWxJek");
        assert_eq!(delivery.timestamp, 1_614_265_330);
    }

    #[test]
    fn a_signed_delivery_verifies_and_a_tampered_body_does_not() {
        let headers = signed(BODY, NOW);
        assert_eq!(
            verify(&secret(), &headers, BODY, NOW).unwrap(),
            Delivery {
                id: "msg_1".into(),
                timestamp: NOW
            }
        );
        let tampered = br#"{"type":"organization.deleted","data":{"id":"org_2"}}"#;
        assert_eq!(
            verify(&secret(), &headers, tampered, NOW),
            Err(SvixError::BadSignature)
        );
        // The id and timestamp are signed too.
        let mut other_id = headers.clone();
        other_id.insert("svix-id", HeaderValue::from_static("msg_2"));
        assert_eq!(
            verify(&secret(), &other_id, BODY, NOW),
            Err(SvixError::BadSignature)
        );
        let mut other_time = headers.clone();
        other_time.insert("svix-timestamp", HeaderValue::from(NOW + 1));
        assert_eq!(
            verify(&secret(), &other_time, BODY, NOW),
            Err(SvixError::BadSignature)
        );
    }

    #[test]
    fn another_secret_does_not_verify() {
        let headers = SvixSender::new("whsec_dGhpcyBpcyBhbm90aGVyIHNlY3JldCBrZXk=")
            .headers("msg_1", NOW, BODY);
        assert_eq!(
            verify(&secret(), &headers, BODY, NOW),
            Err(SvixError::BadSignature)
        );
    }

    #[test]
    fn old_and_future_timestamps_are_refused_within_five_minutes_either_way() {
        for at in [NOW - 300, NOW + 300, NOW] {
            assert!(
                verify(&secret(), &signed(BODY, at), BODY, NOW).is_ok(),
                "{at}"
            );
        }
        assert_eq!(
            verify(&secret(), &signed(BODY, NOW - 301), BODY, NOW),
            Err(SvixError::TooOld(301))
        );
        assert_eq!(
            verify(&secret(), &signed(BODY, NOW + 301), BODY, NOW),
            Err(SvixError::TooNew(301))
        );
    }

    #[test]
    fn any_matching_v1_signature_passes_and_other_versions_are_skipped() {
        let good = signed(BODY, NOW)["svix-signature"]
            .to_str()
            .unwrap()
            .to_owned();
        let good_b64 = good.strip_prefix("v1,").unwrap();
        let wrong = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        for list in [
            format!("{wrong} {good}"),
            format!("{good} {wrong}"),
            format!("v1a,{good_b64} {good}"),
            format!("v2,xyz  {good}"),
        ] {
            let mut headers = signed(BODY, NOW);
            headers.insert("svix-signature", HeaderValue::from_str(&list).unwrap());
            assert!(verify(&secret(), &headers, BODY, NOW).is_ok(), "{list}");
        }
        for list in [
            wrong.to_owned(),
            format!("v1a,{good_b64}"),
            format!("v2,{good_b64}"),
            good_b64.to_owned(),
            "v1,not base64!".to_owned(),
            String::new(),
        ] {
            let mut headers = signed(BODY, NOW);
            headers.insert("svix-signature", HeaderValue::from_str(&list).unwrap());
            assert_eq!(
                verify(&secret(), &headers, BODY, NOW),
                Err(SvixError::BadSignature),
                "{list}"
            );
        }
    }

    #[test]
    fn malformed_or_missing_headers_are_refused() {
        for name in ["svix-id", "svix-timestamp", "svix-signature"] {
            let mut headers = signed(BODY, NOW);
            headers.remove(name);
            assert!(
                matches!(
                    verify(&secret(), &headers, BODY, NOW),
                    Err(SvixError::MissingHeader(n)) if n == name
                ),
                "{name}"
            );
        }
        for (name, value) in [
            ("svix-timestamp", "soon"),
            ("svix-timestamp", "-1"),
            ("svix-timestamp", "1700000000.5"),
            ("svix-timestamp", "99999999999999999999"),
            ("svix-id", ""),
            ("svix-id", "msg 1"),
        ] {
            let mut headers = signed(BODY, NOW);
            headers.insert(name, HeaderValue::from_static(value));
            assert!(
                matches!(
                    verify(&secret(), &headers, BODY, NOW),
                    Err(SvixError::InvalidHeader { name: n, .. }) if n == name
                ),
                "{name}: {value}"
            );
        }
        let mut twice = signed(BODY, NOW);
        twice.append("svix-id", HeaderValue::from_static("msg_2"));
        assert!(matches!(
            verify(&secret(), &twice, BODY, NOW),
            Err(SvixError::InvalidHeader {
                name: "svix-id",
                ..
            })
        ));
    }

    #[test]
    fn secrets_are_whsec_base64_and_long_enough() {
        assert!(WebhookSecret::parse(SECRET).is_ok());
        assert!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_ok());
        assert!(WebhookSecret::parse("whsec_not base64").is_err());
        assert!(WebhookSecret::parse("whsec_c2hvcnQ=").is_err());
        assert!(!format!("{:?}", secret()).contains("MfKQ"));
    }
}
