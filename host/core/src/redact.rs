//! Redaction of personal data from recorded hook inputs, before they are
//! stored: a recorded sale keeps what a plugin decides on (category, prices,
//! quantities, currency, seller) and loses what names a person. An attribute
//! is personal when its key names personal data (email, name, address,
//! street, phone, city, postcode, customer, birth date, …, or a key the
//! tenant marks personal) or its value looks like an email address or a
//! phone number; its value is replaced by [`REDACTED`]. Identifiers (order
//! id, SKU, seller id) are kept unless they hold an email address.

use crate::base::{Attribute, Sale};

/// What a redacted value reads.
pub const REDACTED: &str = "[redacted]";

/// Parts of attribute keys that name personal data (matched case-insensitively
/// on the key's words, split at `_`, `-`, `.` and spaces).
const PERSONAL_WORDS: &[&str] = &[
    "email",
    "mail",
    "name",
    "firstname",
    "lastname",
    "surname",
    "address",
    "street",
    "addr",
    "phone",
    "mobile",
    "tel",
    "city",
    "zip",
    "postcode",
    "postal",
    "customer",
    "buyer",
    "recipient",
    "birth",
    "birthday",
    "dob",
    "ip",
    "note",
    "message",
    "comment",
    "gift",
];

/// A copy of `sale` with personal data redacted; `personal_keys` are the
/// tenant's own attribute keys to treat as personal (exact, case-insensitive).
pub fn sale(sale: &Sale, personal_keys: &[String]) -> Sale {
    let keep = |id: &str| {
        if looks_like_email(id) {
            REDACTED.to_owned()
        } else {
            id.to_owned()
        }
    };
    Sale {
        order_id: keep(&sale.order_id),
        sku: keep(&sale.sku),
        category_id: sale.category_id.clone(),
        unit_price: sale.unit_price,
        quantity: sale.quantity,
        currency: sale.currency.clone(),
        seller_id: sale.seller_id.as_deref().map(keep),
        attributes: sale
            .attributes
            .iter()
            .map(|a| Attribute {
                key: a.key.clone(),
                value: if personal(&a.key, &a.value, personal_keys) {
                    REDACTED.to_owned()
                } else {
                    a.value.clone()
                },
            })
            .collect(),
    }
}

fn personal(key: &str, value: &str, personal_keys: &[String]) -> bool {
    let lower = key.to_lowercase();
    personal_keys.iter().any(|k| k.eq_ignore_ascii_case(key))
        || lower
            .split(|c: char| c == '_' || c == '-' || c == '.' || c.is_whitespace())
            .any(|word| PERSONAL_WORDS.contains(&word))
        || looks_like_email(value)
        || looks_like_phone(value)
}

/// `local@domain.tld` anywhere in the text.
fn looks_like_email(text: &str) -> bool {
    text.split(|c: char| c.is_whitespace() || c == '<' || c == '>' || c == ',')
        .any(|word| {
            word.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
            })
        })
}

/// Seven or more digits, with only phone punctuation besides.
fn looks_like_phone(text: &str) -> bool {
    let digits = text.chars().filter(char::is_ascii_digit).count();
    digits >= 7
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(key: &str, value: &str) -> Attribute {
        Attribute {
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn personal_attributes_and_identifiers_are_redacted_the_rest_kept() {
        let input = Sale {
            order_id: "o-1".into(),
            sku: "ann@example.com".into(),
            category_id: "bags".into(),
            unit_price: 12_000,
            quantity: 2,
            currency: "EUR".into(),
            seller_id: Some("seller-9".into()),
            attributes: vec![
                attr("customer_email", "ann@example.com"),
                attr("Shipping Name", "Ann Example"),
                attr("street", "1 Main St"),
                attr("contact", "+44 20 7946 0958"),
                attr("ref", "reach me at ann@example.com please"),
                attr("loyalty_tier", "Ann Example"),
                attr("color", "red"),
                attr("size", "42"),
            ],
        };
        let out = sale(&input, &["loyalty_tier".to_owned()]);
        assert_eq!(out.sku, REDACTED);
        assert_eq!(out.order_id, "o-1");
        assert_eq!(out.seller_id.as_deref(), Some("seller-9"));
        assert_eq!((out.unit_price, out.quantity), (12_000, 2));
        let values: Vec<&str> = out.attributes.iter().map(|a| a.value.as_str()).collect();
        assert_eq!(
            values,
            [
                REDACTED, REDACTED, REDACTED, REDACTED, REDACTED, REDACTED, "red", "42"
            ]
        );
        // Keys stay: a plugin reading `color` replays the same.
        assert_eq!(out.attributes[6].key, "color");
    }
}
