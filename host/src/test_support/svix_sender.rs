//! A local sender of Clerk webhooks, signed as Svix signs them (Svix's
//! published scheme: HMAC-SHA256, keyed with the base64-decoded part of the
//! `whsec_…` endpoint secret, over `{svix-id}.{svix-timestamp}.{body}`, sent as
//! `svix-signature: v1,<base64>`), with Clerk's event envelope
//! (`{"data", "object": "event", "timestamp", "type"}`).
//!
//! Self-contained on purpose: it uses no code of the host (like
//! [`super::fake_shopify`]'s signer), so a bug in the host's verification
//! cannot hide in both. The host's unit tests (`clerk::svix`) and the e2e
//! suite use this one copy.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderValue};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// Signs deliveries with one endpoint secret.
#[derive(Debug, Clone)]
pub struct SvixSender {
    key: Vec<u8>,
}

impl SvixSender {
    /// A sender for the endpoint secret `whsec_<base64>`.
    pub fn new(secret: &str) -> Self {
        let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
        Self {
            key: B64.decode(encoded).expect("a whsec_ secret is base64"),
        }
    }

    /// The `v1,<base64>` signature of `body` sent as message `id` at `timestamp`.
    pub fn signature(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(format!("{id}.{timestamp}.").as_bytes());
        mac.update(body);
        format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
    }

    /// The three Svix headers of a delivery.
    pub fn headers(&self, id: &str, timestamp: i64, body: &[u8]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("svix-id", HeaderValue::from_str(id).expect("an ASCII id"));
        headers.insert("svix-timestamp", HeaderValue::from(timestamp));
        headers.insert(
            "svix-signature",
            HeaderValue::from_str(&self.signature(id, timestamp, body)).expect("ASCII"),
        );
        headers
    }
}

/// Now, in Unix seconds.
pub fn now_secs() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
    .unwrap_or(i64::MAX)
}

/// A Clerk event of `kind` with `data`, stamped now (milliseconds), as JSON bytes.
pub fn event(kind: &str, data: Value) -> Vec<u8> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    json!({
        "data": data,
        "instance_id": "ins_test",
        "object": "event",
        "timestamp": u64::try_from(now_ms).unwrap_or(u64::MAX),
        "type": kind,
    })
    .to_string()
    .into_bytes()
}

/// Clerk's `organization` object.
pub fn organization(id: &str, name: &str, slug: &str) -> Value {
    json!({
        "id": id,
        "name": name,
        "slug": slug,
        "object": "organization",
        "members_count": 1,
        "created_at": 1_700_000_000_000_u64,
        "updated_at": 1_700_000_000_000_u64,
    })
}

/// Clerk's `organization_membership` object of `user` in `org` with `role`
/// (e.g. `org:admin`, `org:member`).
pub fn membership(org: &str, user: &str, role: &str) -> Value {
    json!({
        "id": format!("orgmem_{user}"),
        "object": "organization_membership",
        "organization": { "id": org, "object": "organization", "name": org, "slug": org },
        "public_user_data": { "user_id": user, "identifier": format!("{user}@example.com") },
        "role": role,
        "created_at": 1_700_000_000_000_u64,
        "updated_at": 1_700_000_000_000_u64,
    })
}
