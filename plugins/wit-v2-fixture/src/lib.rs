//! The host's WIT 0.2.0 fixture: a component of `veneer:plugin@0.2.0` built
//! with wit-bindgen directly (not the SDK), so the host's tests of the 0.2.0
//! contract do not depend on how the SDK writes it. It describes itself with a
//! description and a settings JSON schema, and implements two hooks:
//!
//! - `commission`: the rate of the sale's category from `rates` (basis points),
//!   the fee recomputed and kept within the base's bounds; other categories
//!   keep the base decision.
//! - `product-category`: the category of the first `keywords` entry whose
//!   keyword appears in the product's title or tags (case-insensitive); else
//!   the base choice.
//!
//! Settings that do not parse are the plugin's own error (`bad-settings`); the
//! host refuses settings that break the schema before this ever runs.

// wit-bindgen's generated exports are `unsafe extern` functions; this crate
// writes no unsafe code of its own.
#![allow(unsafe_code)]

wit_bindgen::generate!({
    path: "../../wit/v0.2.0",
    world: "plugin",
});

use exports::veneer::plugin::hooks::Guest;
use veneer::plugin::types::{
    Category, CommissionDecision, ContextEntry, EmailTemplate, Hook, PluginError, PluginInfo,
    Product, Sale, SizeChart,
};

/// The settings JSON schema the fixture describes itself with.
const SETTINGS_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "rates": {
      "type": "array",
      "items": {
        "type": "object",
        "required": ["category", "bps"],
        "additionalProperties": false,
        "properties": {
          "category": { "type": "string", "minLength": 1 },
          "bps": { "type": "integer", "minimum": 0, "maximum": 10000 }
        }
      }
    },
    "keywords": {
      "type": "array",
      "items": {
        "type": "object",
        "required": ["keyword", "category"],
        "additionalProperties": false,
        "properties": {
          "keyword": { "type": "string", "minLength": 1 },
          "category": { "type": "string" }
        }
      }
    }
  }
}"#;

/// One category's commission rate.
#[derive(serde::Deserialize)]
struct Rate {
    category: String,
    bps: u32,
}

/// A keyword and the category it chooses.
#[derive(serde::Deserialize)]
struct Keyword {
    keyword: String,
    category: String,
}

/// The fixture's settings (see [`SETTINGS_SCHEMA`]).
#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct Settings {
    rates: Vec<Rate>,
    keywords: Vec<Keyword>,
}

fn settings() -> Result<Settings, PluginError> {
    serde_json::from_str(&veneer::plugin::settings::get()).map_err(|err| PluginError {
        code: "bad-settings".to_owned(),
        message: format!("the settings do not parse: {err}"),
    })
}

fn unimplemented_hook<T>() -> Result<T, PluginError> {
    Err(PluginError {
        code: "not-implemented".to_owned(),
        message: "this fixture implements commission and product-category only".to_owned(),
    })
}

struct Fixture;

impl Guest for Fixture {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "wit-v2-fixture".to_owned(),
            version: "2.0.0".to_owned(),
            hooks: vec![Hook::Commission, Hook::ProductCategory],
            description:
                "Sets a commission rate per category and chooses product categories by keyword."
                    .to_owned(),
            settings_schema: Some(SETTINGS_SCHEMA.to_owned()),
        }
    }

    fn categories(_base: Vec<Category>) -> Result<Vec<Category>, PluginError> {
        unimplemented_hook()
    }

    fn size_charts(_base: Vec<SizeChart>) -> Result<Vec<SizeChart>, PluginError> {
        unimplemented_hook()
    }

    fn commission(sale: Sale, base: CommissionDecision) -> Result<CommissionDecision, PluginError> {
        let settings = settings()?;
        let Some(rate) = settings
            .rates
            .iter()
            .find(|r| r.category == sale.category_id)
        else {
            return Ok(base);
        };
        let gross = u128::from(sale.unit_price) * u128::from(sale.quantity);
        let fee = u64::try_from(gross * u128::from(rate.bps) / 10_000).unwrap_or(u64::MAX);
        Ok(CommissionDecision {
            rule_id: format!("wit-v2:{}", rate.category),
            rate_bps: rate.bps,
            fee: fee.clamp(base.min_fee, base.max_fee.max(base.min_fee)),
            note: format!("{} bps for {}", rate.bps, rate.category),
            ..base
        })
    }

    fn email(
        _template: EmailTemplate,
        _context: Vec<ContextEntry>,
    ) -> Result<EmailTemplate, PluginError> {
        unimplemented_hook()
    }

    fn product_category(
        product: Product,
        base: Option<String>,
    ) -> Result<Option<String>, PluginError> {
        let settings = settings()?;
        let title = product.title.to_lowercase();
        let chosen = settings.keywords.iter().find(|k| {
            let keyword = k.keyword.to_lowercase();
            title.contains(&keyword) || product.tags.iter().any(|t| t.to_lowercase() == keyword)
        });
        Ok(chosen.map(|k| k.category.clone()).or(base))
    }
}

export!(Fixture);
