//! Message ids and VERP bounce addresses.
//!
//! Every message gets a fresh id of 128 random bits (32 lowercase hex digits).
//! Its Message-ID is `<id@sending_domain>`, and its envelope sender (the
//! address bounces go to, later the Return-Path) is
//! `bounce+<tenant>.<id>@<platform bounce domain>`: the bounce names its tenant
//! and message by the address it comes back to. `.` separates the two because
//! neither a tenant id (`[a-z0-9-]`) nor a message id (hex) can contain it.
//!
//! The id doubles as a capability: knowing a message's id (its recipient does)
//! is what it takes to forge a bounce for it, and nobody else's.
//!
//! The local part is 7 + tenant + 1 + 32 characters: over RFC 5321's 64 for
//! tenant ids longer than 24 characters. RFC 5321 asks servers not to enforce
//! that limit, and the common MTAs do not.

use crate::storage::is_email_message_id;
use crate::tenancy::TenantId;

const PREFIX: &str = "bounce+";

/// A fresh message id: 32 lowercase hex digits from the OS-seeded CSPRNG.
pub fn new_message_id() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// The Message-ID header for message `id` sent from `sending_domain`.
pub fn message_id_header(id: &str, sending_domain: &str) -> String {
    format!("<{id}@{}>", sending_domain.to_ascii_lowercase())
}

/// Our message id inside a Message-ID header value (`<id@domain>`, brackets
/// optional), if it is one of ours by shape.
pub fn message_id_from_header(header: &str) -> Option<String> {
    let value = header.trim();
    let value = value
        .strip_prefix('<')
        .and_then(|v| v.strip_suffix('>'))
        .unwrap_or(value);
    let (id, domain) = value.split_once('@')?;
    let id = id.to_ascii_lowercase();
    (is_email_message_id(&id) && !domain.is_empty() && !domain.contains(['<', '>', '@']))
        .then_some(id)
}

/// The envelope sender for `tenant`'s message `message_id`:
/// `bounce+<tenant>.<message_id>@<bounce_domain>`.
pub fn bounce_address(bounce_domain: &str, tenant: &TenantId, message_id: &str) -> String {
    format!(
        "{PREFIX}{tenant}.{message_id}@{}",
        bounce_domain.to_ascii_lowercase()
    )
}

/// The tenant and message id a bounce address names, or None for anything
/// that is not exactly a VERP address of ours. Angle brackets and case are
/// tolerated (MTAs add the one and some change the other); the bounce domain
/// is not checked, since only mail for it reaches the bounce processor.
pub fn parse_bounce_address(address: &str) -> Option<(TenantId, String)> {
    let address = address.trim();
    let address = address
        .strip_prefix('<')
        .and_then(|a| a.strip_suffix('>'))
        .unwrap_or(address)
        .to_ascii_lowercase();
    let (local, domain) = address.split_once('@')?;
    if domain.is_empty()
        || domain.contains('@')
        || veneer_core::email_check::check_domain(domain).is_err()
    {
        return None;
    }
    let (tenant, id) = local.strip_prefix(PREFIX)?.split_once('.')?;
    let tenant = TenantId::new(tenant).ok()?;
    is_email_message_id(id).then(|| (tenant, id.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tid(id: &str) -> TenantId {
        TenantId::new(id).unwrap()
    }

    #[test]
    fn ids_are_fresh_hex() {
        let a = new_message_id();
        assert!(is_email_message_id(&a), "{a}");
        assert_ne!(a, new_message_id());
        assert_eq!(
            message_id_header(&a, "Acme.Example"),
            format!("<{a}@acme.example>")
        );
        assert_eq!(
            message_id_from_header(&format!("<{a}@acme.example>")),
            Some(a.clone())
        );
        assert_eq!(
            message_id_from_header(&format!(" {a}@acme.example ")),
            Some(a)
        );
        assert_eq!(message_id_from_header("<abc@acme.example>"), None);
        assert_eq!(message_id_from_header("<CAF=xyz@mail.gmail.com>"), None);
    }

    #[test]
    fn bounce_addresses_round_trip() {
        let id = new_message_id();
        for tenant in ["a", "acme", "acme-2", "0", "a-b-c-d", &"x".repeat(63)] {
            let address = bounce_address("Bounces.Veneer.example", &tid(tenant), &id);
            assert!(address.ends_with("@bounces.veneer.example"), "{address}");
            assert_eq!(
                parse_bounce_address(&address),
                Some((tid(tenant), id.clone())),
                "{address}"
            );
            assert_eq!(
                parse_bounce_address(&format!("<{}>", address.to_uppercase())),
                Some((tid(tenant), id.clone()))
            );
        }
        assert_eq!(
            bounce_address(
                "b.example",
                &tid("acme"),
                "0123456789abcdef0123456789abcdef"
            ),
            "bounce+acme.0123456789abcdef0123456789abcdef@b.example"
        );
    }

    #[test]
    fn hostile_bounce_addresses_are_refused() {
        let id = "0123456789abcdef0123456789abcdef";
        for bad in [
            String::new(),
            "bounce+".into(),
            format!("bounce+acme.{id}"),
            format!("bounce+acme.{id}@"),
            format!("bounce+acme{id}@b.example"),
            format!("bounce+.{id}@b.example"),
            "bounce+acme.@b.example".into(),
            format!("bounce+acme.{}@b.example", &id[1..]),
            format!("bounce+acme.{id}0@b.example"),
            format!("bounce+acme.{id}.{id}@b.example"),
            format!("bounce+ac.me.{id}@b.example"),
            format!("bounce+-acme.{id}@b.example"),
            format!("bounce+acme_x.{id}@b.example"),
            format!("bounce+acme.{}@b.example", id.replace('a', "g")),
            format!("bounce+acme.{id}@b@c.example"),
            format!("bounce+acme.{id}@b.example\r\nBcc: x@y.example"),
            format!("bounce+acme+b.{id}@b.example"),
            format!("xbounce+acme.{id}@b.example"),
            format!("bounce-acme.{id}@b.example"),
            format!("bounce+acme.{id}@-b.example"),
            format!("bounce+ACME\u{0130}.{id}@b.example"),
            format!("bounce+{}.{id}@b.example", "x".repeat(64)),
            format!("<bounce+acme.{id}@b.example"),
        ] {
            assert_eq!(parse_bounce_address(&bad), None, "{bad:?}");
        }
    }
}
