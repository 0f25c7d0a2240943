//! Webhook payloads, as much of them as the host uses. Unknown fields are
//! ignored (Shopify adds fields in every API version) and fields Shopify may
//! send as `null` are optional. Money stays a decimal string until
//! [`money_to_minor`] turns it into integer minor units: never a float.

use serde::{Deserialize, Deserializer};

/// `orders/create`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OrderCreated {
    pub id: u64,
    /// The order's display name, e.g. `#1001`.
    #[serde(default)]
    pub name: String,
    /// ISO 4217 code of the shop's currency, in which `price`s are given.
    pub currency: String,
    #[serde(default)]
    pub line_items: Vec<LineItem>,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LineItem {
    pub id: u64,
    /// `None` for a custom line or a deleted product.
    #[serde(default)]
    pub product_id: Option<u64>,
    #[serde(default)]
    pub variant_id: Option<u64>,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub sku: Option<String>,
    #[serde(default)]
    pub title: String,
    pub quantity: u32,
    /// Unit price, a decimal string in the order's currency.
    pub price: String,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub vendor: Option<String>,
    /// Not in every API version's line items: look the product up when absent.
    #[serde(default, deserialize_with = "empty_as_none")]
    pub product_type: Option<String>,
}

/// `products/create` and `products/update`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ProductEvent {
    pub id: u64,
    #[serde(default)]
    pub title: String,
    /// Free text set by the merchant; may be empty.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub product_type: String,
    #[serde(default, deserialize_with = "empty_as_none")]
    pub vendor: Option<String>,
    /// Shopify sends tags as one comma-separated string; a list is accepted too.
    #[serde(default, deserialize_with = "tags")]
    pub tags: Vec<String>,
    /// When the product last changed at Shopify (orders late deliveries).
    #[serde(default)]
    pub updated_at: Option<String>,
}

impl ProductEvent {
    /// `updated_at` in unix milliseconds, if present and well formed.
    pub fn updated_at_ms(&self) -> Option<i64> {
        self.updated_at
            .as_deref()
            .and_then(super::time::parse_timestamp_ms)
    }
}

/// `app/uninstalled`: the shop the app was removed from.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AppUninstalled {
    #[serde(default)]
    pub id: Option<u64>,
    /// The shop's primary (possibly custom) domain.
    #[serde(default)]
    pub domain: Option<String>,
    /// The `<shop>.myshopify.com` domain: the one to match stores by.
    #[serde(default)]
    pub myshopify_domain: Option<String>,
}

fn empty_as_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = Option::<String>::deserialize(d)?;
    Ok(value.filter(|s| !s.trim().is_empty()))
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

fn tags<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Tags {
        Text(String),
        List(Vec<String>),
    }
    let tags = match Option::<Tags>::deserialize(d)? {
        None => Vec::new(),
        Some(Tags::Text(text)) => text.split(',').map(str::to_owned).collect(),
        Some(Tags::List(list)) => list,
    };
    Ok(tags
        .into_iter()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect())
}

/// An amount that cannot be turned into minor units.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read `{amount}` as an amount in {currency}: {reason}")]
pub struct InvalidMoney {
    pub amount: String,
    pub currency: String,
    pub reason: String,
}

/// How many decimals a currency's minor unit has (ISO 4217): 0 for JPY, KRW
/// and the like, 3 for BHD, IQD, JOD, KWD, LYD, OMR and TND, 2 for every
/// other well-formed code. `None` if `currency` is not three ASCII letters.
pub fn currency_exponent(currency: &str) -> Option<u32> {
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let code = currency.to_ascii_uppercase();
    Some(match code.as_str() {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    })
}

/// The most decimals an amount may carry, whatever its currency.
const MAX_DECIMALS: usize = 3;

/// A decimal string such as `"12.34"` in `currency`'s minor units (1234 for
/// EUR, 12 for `"12"` JPY, 12340 for KWD). Extra decimals are accepted only as
/// zeros (`"1500.00"` JPY is 1500); negatives, more than 3 decimals, exponents,
/// signs, spaces and overflow are refused.
pub fn money_to_minor(amount: &str, currency: &str) -> Result<u64, InvalidMoney> {
    let fail = |reason: &str| InvalidMoney {
        amount: amount.chars().take(40).collect(),
        currency: currency.chars().take(8).collect(),
        reason: reason.to_owned(),
    };
    let exponent = currency_exponent(currency)
        .ok_or_else(|| fail("the currency is not a three-letter ISO 4217 code"))?;
    if amount.starts_with('-') {
        return Err(fail("negative amounts are not prices"));
    }
    let (whole, fraction) = match amount.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (amount, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return Err(fail(
            "use digits with an optional `.` and decimals, e.g. 12.34",
        ));
    }
    if amount.contains('.') && fraction.is_empty() {
        return Err(fail("a `.` must be followed by decimals"));
    }
    if fraction.len() > MAX_DECIMALS {
        return Err(fail("more than 3 decimals"));
    }
    let exponent = exponent as usize;
    let (kept, extra) = fraction.split_at(fraction.len().min(exponent));
    if extra.bytes().any(|b| b != b'0') {
        return Err(fail(&format!(
            "the currency has {exponent} decimals, so `.{fraction}` is not a whole minor unit"
        )));
    }
    let digits = format!("{whole}{kept:0<exponent$}");
    digits
        .parse::<u64>()
        .map_err(|_| fail("the amount is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_in_minor_units() {
        for (amount, currency, minor) in [
            ("12.34", "EUR", 1234),
            ("12.3", "EUR", 1230),
            ("12", "EUR", 1200),
            ("0.01", "usd", 1),
            ("0", "EUR", 0),
            ("007.50", "EUR", 750),
            ("12.340", "EUR", 1234),
            ("1500", "JPY", 1500),
            ("1500.00", "JPY", 1500),
            ("1500.0", "KRW", 1500),
            ("1.234", "KWD", 1234),
            ("1.2", "BHD", 1200),
            ("5", "TND", 5000),
            ("184467440737095516.15", "EUR", u64::MAX),
        ] {
            assert_eq!(
                money_to_minor(amount, currency),
                Ok(minor),
                "{amount} {currency}"
            );
        }
    }

    #[test]
    fn bad_money_is_refused_with_the_reason() {
        for (amount, currency, reason) in [
            ("-1.00", "EUR", "negative"),
            ("1.2345", "KWD", "more than 3 decimals"),
            ("1.0001", "EUR", "more than 3 decimals"),
            ("12.345", "EUR", "not a whole minor unit"),
            ("1500.50", "JPY", "not a whole minor unit"),
            ("", "EUR", "digits"),
            (".5", "EUR", "digits"),
            ("5.", "EUR", "followed by decimals"),
            ("1,50", "EUR", "digits"),
            ("1e3", "EUR", "digits"),
            ("+1", "EUR", "digits"),
            (" 1", "EUR", "digits"),
            ("1.2.3", "EUR", "digits"),
            ("NaN", "EUR", "digits"),
            ("١٢", "EUR", "digits"),
            ("184467440737095516.16", "EUR", "too large"),
            ("1", "EURO", "ISO 4217"),
            ("1", "", "ISO 4217"),
            ("1", "E1R", "ISO 4217"),
        ] {
            let err = money_to_minor(amount, currency).unwrap_err();
            assert!(
                err.to_string().contains(reason),
                "{amount} {currency}: {err}"
            );
        }
    }

    #[test]
    fn an_order_payload_with_fields_we_do_not_know() {
        let order: OrderCreated = serde_json::from_value(serde_json::json!({
            "id": 820982911946154508u64,
            "admin_graphql_api_id": "gid://shopify/Order/820982911946154508",
            "name": "#9999",
            "currency": "EUR",
            "total_price": "403.00",
            "brand_new_field": {"nested": [1, 2, 3]},
            "line_items": [
                {
                    "id": 866550311766439020u64,
                    "product_id": 632910392,
                    "variant_id": 808950810,
                    "sku": "IPOD2008PINK",
                    "title": "IPod Nano - 8GB",
                    "quantity": 2,
                    "price": "199.00",
                    "vendor": null,
                    "properties": [],
                    "price_set": {"shop_money": {"amount": "199.00", "currency_code": "EUR"}}
                },
                {
                    "id": 141249953214522974u64,
                    "product_id": null,
                    "variant_id": null,
                    "sku": "",
                    "title": "Custom engraving",
                    "quantity": 1,
                    "price": "5.00",
                    "vendor": "Acme",
                    "product_type": "Service"
                }
            ]
        }))
        .unwrap();
        assert_eq!(
            (order.id, order.name.as_str()),
            (820982911946154508, "#9999")
        );
        let [first, custom] = order.line_items.as_slice() else {
            panic!("two lines expected");
        };
        assert_eq!(first.product_id, Some(632910392));
        assert_eq!(first.sku.as_deref(), Some("IPOD2008PINK"));
        assert_eq!(
            (first.vendor.as_ref(), first.product_type.as_ref()),
            (None, None)
        );
        assert_eq!(money_to_minor(&first.price, &order.currency), Ok(19_900));
        assert_eq!((custom.product_id, custom.sku.as_ref()), (None, None));
        assert_eq!(custom.product_type.as_deref(), Some("Service"));

        // A line without its required price is refused, naming the field.
        let err = serde_json::from_value::<OrderCreated>(serde_json::json!({
            "id": 1, "currency": "EUR", "line_items": [{"id": 2, "quantity": 1}]
        }))
        .unwrap_err();
        assert!(err.to_string().contains("price"), "{err}");
    }

    #[test]
    fn product_and_uninstall_payloads() {
        let product: ProductEvent = serde_json::from_value(serde_json::json!({
            "id": 788032119674292922u64,
            "title": "Example T-Shirt",
            "body_html": "An example T-Shirt",
            "vendor": "Acme",
            "product_type": "Shirts",
            "tags": "example, mens , t-shirt,",
            "updated_at": "2021-12-31T19:00:00-05:00",
            "variants": [{"id": 642667041472713922u64, "price": "19.99"}]
        }))
        .unwrap();
        assert_eq!(product.product_type, "Shirts");
        assert_eq!(product.tags, ["example", "mens", "t-shirt"]);
        assert_eq!(product.updated_at_ms(), Some(1_640_995_200_000));

        let bare: ProductEvent = serde_json::from_value(serde_json::json!({
            "id": 1, "product_type": null, "tags": ["a", " b "]
        }))
        .unwrap();
        assert_eq!((bare.product_type.as_str(), bare.tags.len()), ("", 2));
        assert_eq!(bare.updated_at_ms(), None);

        let gone: AppUninstalled = serde_json::from_value(serde_json::json!({
            "id": 548380009, "name": "Super Toys", "domain": "super.example",
            "myshopify_domain": "super-toys.myshopify.com", "plan_name": "basic"
        }))
        .unwrap();
        assert_eq!(
            gone.myshopify_domain.as_deref(),
            Some("super-toys.myshopify.com")
        );
    }
}
