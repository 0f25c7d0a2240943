//! The values that flow through the hooks. They mirror the records of the WIT
//! package `veneer:plugin@0.2.0` and are plain Rust structs with serde support,
//! so plugin logic can be written and tested without any WebAssembly.

use serde::{Deserialize, Serialize};

/// A free-form key/value pair attached to a category or a sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute {
    /// Attribute name, for example `vat-class`.
    pub key: String,
    /// Attribute value.
    pub value: String,
}

impl Attribute {
    /// Makes an attribute from anything string-like.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// One node of the category tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    /// Stable id, unique in the tree (lowercase, digits and `-`).
    pub id: String,
    /// Id of the parent category; `None` for a root.
    #[serde(default)]
    pub parent: Option<String>,
    /// Display name.
    pub name: String,
    /// URL slug, unique among siblings.
    pub slug: String,
    /// Display order among siblings (lower first).
    #[serde(default)]
    pub position: u32,
    /// Extra attributes the storefront may use.
    #[serde(default)]
    pub attributes: Vec<Attribute>,
}

/// One row of a size chart: a size label and its value in every column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeRow {
    /// The size as shown to shoppers, for example `M` or `EU 42`.
    pub label: String,
    /// One value per column of the chart, in column order.
    pub values: Vec<String>,
}

/// A size chart: columns (size systems or measurements) and rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SizeChart {
    /// Stable id, unique among charts.
    pub id: String,
    /// Display name.
    pub name: String,
    /// The categories this chart applies to.
    #[serde(default)]
    pub category_ids: Vec<String>,
    /// Column names, for example `EU`, `US`, `UK`, `JP` or `chest-cm`.
    pub columns: Vec<String>,
    /// Rows, smallest size first.
    pub rows: Vec<SizeRow>,
}

/// One line of a sale for which a commission is computed. Money is in minor units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sale {
    /// The order this line belongs to.
    pub order_id: String,
    /// The item's stock-keeping unit.
    pub sku: String,
    /// The item's category id.
    pub category_id: String,
    /// Unit price in minor units.
    pub unit_price: u64,
    /// Number of units sold (at least 1).
    pub quantity: u32,
    /// ISO 4217 currency code, for example `EUR`.
    pub currency: String,
    /// The selling party (consignor, merchant) if known.
    #[serde(default)]
    pub seller_id: Option<String>,
    /// Extra attributes, for example `condition=pre-owned`.
    #[serde(default)]
    pub attributes: Vec<Attribute>,
}

impl Sale {
    /// The line's gross amount (unit price times quantity), saturating.
    pub fn gross(&self) -> u64 {
        self.unit_price.saturating_mul(u64::from(self.quantity))
    }

    /// The value of the attribute named `key`, if present.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|attribute| attribute.key == key)
            .map(|attribute| attribute.value.as_str())
    }
}

/// A commission decision for one sale line. Money is in minor units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommissionDecision {
    /// Id of the rule that produced the decision.
    pub rule_id: String,
    /// Commission rate in basis points (0 to 10000).
    pub rate_bps: u32,
    /// Smallest fee the rule allows.
    pub min_fee: u64,
    /// Largest fee the rule allows.
    pub max_fee: u64,
    /// The fee charged: within `min_fee..=max_fee` and never above the gross amount.
    pub fee: u64,
    /// A human-readable explanation shown to merchants.
    #[serde(default)]
    pub note: String,
}

impl CommissionDecision {
    /// Recomputes `fee` as `gross × rate`, rounded half up, clamped into
    /// `min_fee..=max_fee` and never above `gross`. This is how the host computes
    /// base decisions; plugins that change the rate or bounds usually call it.
    pub fn refee(&mut self, gross: u64) {
        let raw = (u128::from(gross) * u128::from(self.rate_bps) + 5_000) / 10_000;
        let raw = u64::try_from(raw).unwrap_or(u64::MAX);
        self.fee = raw
            .clamp(self.min_fee, self.max_fee.max(self.min_fee))
            .min(gross);
    }
}

/// An email template. Bodies and subject use Jinja syntax (`{{ name }}`); the host
/// renders them later with HTML auto-escaping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailTemplate {
    /// Template id, for example `order-confirmation`.
    pub id: String,
    /// Subject line template (one line).
    pub subject: String,
    /// HTML body template.
    pub html: String,
    /// Plain-text body template.
    pub text: String,
    /// Display name of the sender; `None` keeps the platform's default.
    #[serde(default)]
    pub from_name: Option<String>,
    /// Reply-To address; `None` keeps the platform's default.
    #[serde(default)]
    pub reply_to: Option<String>,
}

/// A product as the store describes it, for choosing its category
/// ([`crate::Plugin::product_category`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Product {
    /// The product's title, for example `Air Jordan 1 Retro High`.
    pub title: String,
    /// The brand or vendor, for example `Nike`; empty when unknown.
    #[serde(default)]
    pub vendor: String,
    /// The store's own product type, for example `Sneakers`; empty when unknown.
    #[serde(default)]
    pub product_type: String,
    /// The product's tags, as the store keeps them.
    #[serde(default)]
    pub tags: Vec<String>,
}

impl Product {
    /// Whether the product carries `tag`, compared without regard to ASCII case
    /// (stores write tags by hand).
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t.trim().eq_ignore_ascii_case(tag))
    }
}

/// A failure the plugin reports on purpose. The host falls back to the base result
/// and records the code and message in the tenant's run log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginError {
    /// A stable machine-readable code, for example `bad-settings`.
    pub code: String,
    /// What went wrong and what the tenant can do about it.
    pub message: String,
}

impl PluginError {
    /// Makes an error with a code and a message.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }

    /// A `bad-settings` error about the setting at `path`, a JSON Pointer
    /// into the settings document (`/tiers/0/rate_bps`; `""` for the whole
    /// document), as the SDK reports a setting that does not parse. Return it
    /// from [`crate::Plugin::new`] for settings that parse but make no sense.
    pub fn bad_settings(path: &str, message: impl std::fmt::Display) -> Self {
        let path = if path.is_empty() { "/" } else { path };
        Self::new("bad-settings", format!("settings at {path}: {message}"))
    }
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for PluginError {}
