//! Webhook authentication and headers. Shopify signs the exact bytes it sends:
//! the signature is checked over the raw body, before any parsing, with the
//! app's client secret, and compared in constant time.

use std::fmt;

use axum::http::HeaderMap;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::time::parse_timestamp_ms;

type HmacSha256 = Hmac<Sha256>;

/// The longest header value kept; Shopify's are far shorter.
const MAX_HEADER_LEN: usize = 255;

/// Whether `hmac_header_b64` is the base64 HMAC-SHA256 of `raw_body` under
/// `secret`. Constant time in the signature; anything malformed is false.
pub fn verify_webhook(secret: &[u8], raw_body: &[u8], hmac_header_b64: &str) -> bool {
    let Ok(expected) = B64.decode(hmac_header_b64.trim()) else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
        return false;
    };
    mac.update(raw_body);
    mac.verify_slice(&expected).is_ok()
}

/// The `X-Shopify-Hmac-Sha256` value Shopify would send for `raw_body`.
pub fn sign_webhook(secret: &[u8], raw_body: &[u8]) -> String {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(raw_body);
    B64.encode(mac.finalize().into_bytes())
}

/// The topics the host acts on; anything else is kept as sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WebhookTopic {
    OrdersCreate,
    ProductsCreate,
    ProductsUpdate,
    ProductsDelete,
    AppUninstalled,
    Other(String),
}

impl WebhookTopic {
    /// Parses Shopify's `resource/event` spelling.
    pub fn parse(topic: &str) -> WebhookTopic {
        match topic {
            "orders/create" => WebhookTopic::OrdersCreate,
            "products/create" => WebhookTopic::ProductsCreate,
            "products/update" => WebhookTopic::ProductsUpdate,
            "products/delete" => WebhookTopic::ProductsDelete,
            "app/uninstalled" => WebhookTopic::AppUninstalled,
            other => WebhookTopic::Other(other.to_owned()),
        }
    }

    /// Shopify's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            WebhookTopic::OrdersCreate => "orders/create",
            WebhookTopic::ProductsCreate => "products/create",
            WebhookTopic::ProductsUpdate => "products/update",
            WebhookTopic::ProductsDelete => "products/delete",
            WebhookTopic::AppUninstalled => "app/uninstalled",
            WebhookTopic::Other(topic) => topic,
        }
    }
}

impl fmt::Display for WebhookTopic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The headers Shopify sends with every webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookHeaders {
    /// `X-Shopify-Topic`.
    pub topic: WebhookTopic,
    /// `X-Shopify-Hmac-Sha256`: base64 of the body's HMAC-SHA256.
    pub hmac_b64: String,
    /// `X-Shopify-Shop-Domain`: the `<shop>.myshopify.com` domain, lower case.
    pub shop_domain: String,
    /// `X-Shopify-Webhook-Id`: the same on every retry of one delivery.
    pub webhook_id: String,
    /// `X-Shopify-Api-Version`: the version the payload is shaped by.
    pub api_version: String,
    /// `X-Shopify-Triggered-At`, unix milliseconds.
    pub triggered_at_ms: i64,
}

/// Why a webhook is refused. The HTTP layer answers header problems with 400
/// and every authentication failure with the same 401 body, so an unknown shop
/// and a bad signature look alike from outside.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// A required header is absent.
    #[error(
        "the webhook has no `{0}` header: Shopify always sends it, so the request did not come \
         from Shopify or a proxy dropped the header"
    )]
    MissingHeader(&'static str),
    /// A header is present but unusable.
    #[error("the webhook's `{name}` header is invalid: {reason}")]
    InvalidHeader { name: &'static str, reason: String },
    /// No tenant has this shop connected.
    #[error("webhook from a shop that is not connected to any tenant")]
    UnknownShop,
    /// The tenant's store has no app secret (disconnected).
    #[error("webhook for a store that is disconnected: reconnect it to receive webhooks")]
    NotConnected,
    /// The signature does not match the body under the tenant's app secret.
    #[error(
        "webhook signature does not verify: the body was altered, or the store's app secret \
         in Veneer is not the app's current client secret"
    )]
    BadSignature,
    /// The stored app secret cannot be opened.
    #[error("the store's app secret cannot be opened: {0}")]
    Credentials(#[from] crate::secrets::SecretsError),
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
}

const TOPIC: &str = "X-Shopify-Topic";
const HMAC: &str = "X-Shopify-Hmac-Sha256";
const SHOP: &str = "X-Shopify-Shop-Domain";
const WEBHOOK_ID: &str = "X-Shopify-Webhook-Id";
const API_VERSION: &str = "X-Shopify-Api-Version";
const TRIGGERED_AT: &str = "X-Shopify-Triggered-At";

/// Reads the six Shopify webhook headers (names are case-insensitive), each
/// required; the first missing or malformed one is the error.
pub fn parse_webhook_headers(headers: &HeaderMap) -> Result<WebhookHeaders, WebhookError> {
    let topic = header(headers, TOPIC)?;
    if !topic.contains('/') {
        return Err(WebhookError::InvalidHeader {
            name: TOPIC,
            reason: format!("`{topic}` is not a `resource/event` topic"),
        });
    }
    let hmac_b64 = header(headers, HMAC)?;
    if B64.decode(&hmac_b64).map(|mac| mac.len()) != Ok(32) {
        return Err(WebhookError::InvalidHeader {
            name: HMAC,
            reason: "not the base64 of a 32-byte HMAC-SHA256".into(),
        });
    }
    let shop_domain = header(headers, SHOP)?.to_ascii_lowercase();
    let webhook_id = header(headers, WEBHOOK_ID)?;
    let api_version = header(headers, API_VERSION)?;
    let triggered_at = header(headers, TRIGGERED_AT)?;
    let triggered_at_ms =
        parse_timestamp_ms(&triggered_at).ok_or_else(|| WebhookError::InvalidHeader {
            name: TRIGGERED_AT,
            reason: format!("`{triggered_at}` is not an ISO 8601 timestamp"),
        })?;
    Ok(WebhookHeaders {
        topic: WebhookTopic::parse(&topic),
        hmac_b64,
        shop_domain,
        webhook_id,
        api_version,
        triggered_at_ms,
    })
}

fn header(headers: &HeaderMap, name: &'static str) -> Result<String, WebhookError> {
    let value = headers.get(name).ok_or(WebhookError::MissingHeader(name))?;
    let text = value
        .to_str()
        .map_err(|_| WebhookError::InvalidHeader {
            name,
            reason: "not visible ASCII".into(),
        })?
        .trim();
    if text.is_empty() {
        return Err(WebhookError::InvalidHeader {
            name,
            reason: "empty".into(),
        });
    }
    if text.len() > MAX_HEADER_LEN {
        return Err(WebhookError::InvalidHeader {
            name,
            reason: format!("longer than {MAX_HEADER_LEN} bytes"),
        });
    }
    Ok(text.to_owned())
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderName, HeaderValue};

    use super::*;

    const SECRET: &[u8] = b"shpss_app_secret";
    const BODY: &[u8] = br#"{"id":820982911946154508,"email":"jon@example.com"}"#;

    #[test]
    fn a_signature_verifies_only_for_its_body_and_secret() {
        let good = sign_webhook(SECRET, BODY);
        assert!(verify_webhook(SECRET, BODY, &good));
        assert!(verify_webhook(SECRET, BODY, &format!(" {good}\n")));
        // Tampered body: one byte changed, one added, one removed.
        let mut changed = BODY.to_vec();
        changed[7] ^= 1;
        assert!(!verify_webhook(SECRET, &changed, &good));
        assert!(!verify_webhook(SECRET, &[BODY, b" "].concat(), &good));
        assert!(!verify_webhook(SECRET, &BODY[..BODY.len() - 1], &good));
        // Re-serialised JSON is another body: only the raw bytes count.
        let reparsed: serde_json::Value = serde_json::from_slice(BODY).unwrap();
        let reserialised = serde_json::to_vec_pretty(&reparsed).unwrap();
        assert!(!verify_webhook(SECRET, &reserialised, &good));
        // Wrong secret, and another tenant's secret.
        assert!(!verify_webhook(b"shpss_other_app", BODY, &good));
        assert!(!verify_webhook(b"", BODY, &good));
        // Malformed or truncated signatures.
        for bad in ["", "not base64!", &good[..good.len() - 4], "AAAA"] {
            assert!(!verify_webhook(SECRET, BODY, bad), "{bad}");
        }
        let mut raw = B64.decode(&good).unwrap();
        raw[0] ^= 0x80;
        assert!(!verify_webhook(SECRET, BODY, &B64.encode(&raw)));
        // Hex of the right MAC is not the base64 Shopify sends.
        let hex_mac = hex::encode(B64.decode(&good).unwrap());
        assert!(!verify_webhook(SECRET, BODY, &hex_mac));
    }

    #[test]
    fn a_known_vector() {
        // HMAC-SHA256(key = "key", "The quick brown fox jumps over the lazy dog").
        let mac = sign_webhook(b"key", b"The quick brown fox jumps over the lazy dog");
        assert_eq!(
            hex::encode(B64.decode(&mac).unwrap()),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    fn shopify_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("x-shopify-topic", "orders/create"),
            ("X-Shopify-Hmac-Sha256", &sign_webhook(SECRET, BODY)),
            ("X-Shopify-Shop-Domain", "Acme.myshopify.com"),
            (
                "X-Shopify-Webhook-Id",
                "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
            ),
            ("X-Shopify-API-Version", "2025-07"),
            ("X-Shopify-Triggered-At", "2023-03-29T18:00:27.877041743Z"),
            ("X-Shopify-Event-Id", "98880550-7158-44d4-b7cd-2c97c8a091b5"),
        ] {
            headers.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn headers_parse_whatever_their_case() {
        let parsed = parse_webhook_headers(&shopify_headers()).unwrap();
        assert_eq!(parsed.topic, WebhookTopic::OrdersCreate);
        assert_eq!(parsed.shop_domain, "acme.myshopify.com");
        assert_eq!(parsed.webhook_id, "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043");
        assert_eq!(parsed.api_version, "2025-07");
        assert_eq!(parsed.triggered_at_ms, 1_680_112_827_877);
        assert!(verify_webhook(SECRET, BODY, &parsed.hmac_b64));
        assert_eq!(
            WebhookTopic::parse("app/uninstalled").as_str(),
            "app/uninstalled"
        );
        assert_eq!(
            WebhookTopic::parse("customers/redact"),
            WebhookTopic::Other("customers/redact".into())
        );
    }

    #[test]
    fn each_missing_header_is_named() {
        for name in [TOPIC, HMAC, SHOP, WEBHOOK_ID, API_VERSION, TRIGGERED_AT] {
            let mut headers = shopify_headers();
            headers.remove(name);
            match parse_webhook_headers(&headers) {
                Err(WebhookError::MissingHeader(missing)) => {
                    assert_eq!(missing, name);
                    let message = WebhookError::MissingHeader(missing).to_string();
                    assert!(message.contains(name), "{message}");
                }
                other => panic!("{name}: expected it missing, got {other:?}"),
            }
        }
    }

    #[test]
    fn malformed_headers_are_refused_with_the_reason() {
        for (name, value, reason) in [
            (TOPIC, "orders", "resource/event"),
            (HMAC, "not base64!", "32-byte"),
            (HMAC, "AAAA", "32-byte"),
            (TRIGGERED_AT, "yesterday", "ISO 8601"),
            (WEBHOOK_ID, " ", "empty"),
            (WEBHOOK_ID, &"x".repeat(300), "longer than"),
        ] {
            let mut headers = shopify_headers();
            headers.insert(name, HeaderValue::from_str(value).unwrap());
            match parse_webhook_headers(&headers) {
                Err(e @ WebhookError::InvalidHeader { .. }) => {
                    let message = e.to_string();
                    assert!(
                        message.contains(name) && message.contains(reason),
                        "{message}"
                    );
                }
                other => panic!("{name}={value}: expected a refusal, got {other:?}"),
            }
        }
        let mut headers = shopify_headers();
        headers.insert(WEBHOOK_ID, HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap());
        assert!(matches!(
            parse_webhook_headers(&headers),
            Err(WebhookError::InvalidHeader {
                name: WEBHOOK_ID,
                ..
            })
        ));
    }
}
