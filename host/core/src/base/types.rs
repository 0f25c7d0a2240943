//! The domain types of the base configuration, shared with plugin input and output.
//!
//! Every type rejects unknown fields: a misspelt key in a base file or in a plugin's output is an
//! error rather than a silently ignored value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A free-form key/value pair attached to a category or a sale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Attribute {
    pub key: String,
    pub value: String,
}

/// One node of the category tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Category {
    pub id: String,
    #[serde(default)]
    pub parent: Option<String>,
    pub name: String,
    pub slug: String,
    #[serde(default)]
    pub position: u32,
    #[serde(default)]
    pub attributes: Vec<Attribute>,
}

/// One row of a size chart: a size and its value in every column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SizeRow {
    pub label: String,
    pub values: Vec<String>,
}

/// A size conversion table, linked to the categories it applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SizeChart {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub category_ids: Vec<String>,
    pub columns: Vec<String>,
    pub rows: Vec<SizeRow>,
}

/// One sold line, the input of a commission decision. Amounts are in minor units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Sale {
    pub order_id: String,
    pub sku: String,
    pub category_id: String,
    pub unit_price: u64,
    pub quantity: u32,
    pub currency: String,
    #[serde(default)]
    pub seller_id: Option<String>,
    #[serde(default)]
    pub attributes: Vec<Attribute>,
}

impl Sale {
    /// The line's gross amount, `unit_price * quantity`, saturating instead of wrapping so a
    /// hostile quantity cannot turn a huge sale into a tiny fee.
    pub fn gross(&self) -> u64 {
        self.unit_price.saturating_mul(u64::from(self.quantity))
    }
}

/// A product as the store describes it: the input of the `product-category`
/// hook (WIT 0.2.0), which chooses the product's category.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    pub title: String,
    #[serde(default)]
    pub vendor: String,
    #[serde(default)]
    pub product_type: String,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// The commission taken on one sale, as decided by the base rules or a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommissionDecision {
    pub rule_id: String,
    pub rate_bps: u32,
    pub min_fee: u64,
    pub max_fee: u64,
    pub fee: u64,
    #[serde(default)]
    pub note: String,
}

/// A renderable email: Jinja templates for the subject and both bodies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailTemplate {
    pub id: String,
    pub subject: String,
    pub html: String,
    pub text: String,
    #[serde(default)]
    pub from_name: Option<String>,
    #[serde(default)]
    pub reply_to: Option<String>,
}

/// A commission rate that applies from a line gross of `from` (minor units) upwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    pub from: u64,
    pub rate_bps: u32,
}

/// The commission rule for one category subtree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommissionRule {
    pub id: String,
    /// Empty only for the default rule, which applies where no category rule does.
    #[serde(default)]
    pub category: String,
    pub min_fee: u64,
    pub max_fee: u64,
    pub tiers: Vec<Tier>,
}

/// The whole of `commission.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommissionRules {
    pub currency: String,
    #[serde(rename = "default")]
    pub default_rule: CommissionRule,
    #[serde(rename = "rule", default)]
    pub rules: Vec<CommissionRule>,
}

/// An email template together with what is needed to check and preview it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmailDef {
    pub template: EmailTemplate,
    /// Variables the caller always supplies and the template must use.
    #[serde(default)]
    pub required: Vec<String>,
    /// Values for every variable the template uses, for previews.
    #[serde(default)]
    pub sample: BTreeMap<String, String>,
}

/// The loaded, validated base configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BaseConfig {
    /// Content version: the first 16 hex characters of a SHA-256 over every file's relative path
    /// and bytes, in sorted order. Changes whenever any file changes.
    pub version: String,
    pub categories: Vec<Category>,
    pub size_charts: Vec<SizeChart>,
    pub commission: CommissionRules,
    /// By template id.
    pub emails: BTreeMap<String, EmailDef>,
}

impl BaseConfig {
    /// The email definition with this template id.
    pub fn email(&self, id: &str) -> Option<&EmailDef> {
        self.emails.get(id)
    }
}
