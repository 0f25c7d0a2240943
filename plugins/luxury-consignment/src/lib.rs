//! A luxury consignment store. It adds categories for authenticated pre-owned
//! goods and charges consignors a tiered commission: a higher rate on cheap items,
//! a lower one on expensive items, capped per line.

use serde::Deserialize;
use veneer_sdk::{Attribute, Category, CommissionDecision, Context, Plugin, PluginError, Sale};

/// The plugin type registered with the host.
pub struct LuxuryConsignment;

/// One commission tier: lines whose gross is at least `from` pay `rate_bps`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Lower bound of the tier, in minor units.
    pub from: u64,
    /// Rate in basis points.
    pub rate_bps: u32,
}

/// The tenant's settings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Tiers, any order; the highest `from` not above the gross applies.
    pub tiers: Vec<Tier>,
    /// Largest fee per line, in minor units.
    pub cap: u64,
    /// Extra rate for items not yet authenticated, in basis points.
    pub unauthenticated_surcharge_bps: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            tiers: vec![
                Tier {
                    from: 0,
                    rate_bps: 2_500,
                },
                Tier {
                    from: 100_000,
                    rate_bps: 1_800,
                },
                Tier {
                    from: 500_000,
                    rate_bps: 1_200,
                },
            ],
            cap: 150_000,
            unauthenticated_surcharge_bps: 300,
        }
    }
}

fn category(id: &str, parent: &str, name: &str, position: u32) -> Category {
    Category {
        id: id.to_owned(),
        parent: Some(parent.to_owned()),
        name: name.to_owned(),
        slug: id.rsplit('-').next().unwrap_or(id).to_owned(),
        position,
        attributes: vec![Attribute::new("authentication", "required")],
    }
}

#[veneer_sdk::plugin]
impl Plugin for LuxuryConsignment {
    fn categories(_ctx: &Context, mut base: Vec<Category>) -> Result<Vec<Category>, PluginError> {
        let has = |id: &str| base.iter().any(|c| c.id == id);
        let mut extra = Vec::new();
        if has("bags") {
            extra.push(category("bags-vintage", "bags", "Vintage Bags", 90));
        }
        if has("watches") {
            extra.push(category(
                "watches-pre-owned",
                "watches",
                "Pre-owned Watches",
                90,
            ));
        }
        if has("accessories") {
            extra.push(category(
                "accessories-fine-jewelry",
                "accessories",
                "Fine Jewelry",
                90,
            ));
        }
        base.retain(|c| !extra.iter().any(|e| e.id == c.id));
        base.extend(extra);
        Ok(base)
    }

    fn commission(
        ctx: &Context,
        sale: &Sale,
        mut base: CommissionDecision,
    ) -> Result<CommissionDecision, PluginError> {
        // Parsed once per instance: quotes call this hook many times.
        let settings = ctx.settings_shared::<Settings>()?;
        let gross = sale.gross();
        let tier = settings
            .tiers
            .iter()
            .filter(|tier| tier.from <= gross)
            .max_by_key(|tier| tier.from)
            .ok_or_else(|| {
                PluginError::new(
                    "bad-settings",
                    "no tier starts at 0; add one with \"from\": 0",
                )
            })?;
        let mut rate = tier.rate_bps;
        if sale.attribute("authenticated") != Some("true") {
            rate = rate.saturating_add(settings.unauthenticated_surcharge_bps);
        }
        base.rule_id = format!("luxury-tier-{}", tier.from);
        base.rate_bps = rate.min(10_000);
        base.max_fee = settings.cap.max(base.min_fee);
        base.refee(gross);
        base.note = format!(
            "consignment tier from {} at {} bp, capped at {}",
            tier.from, base.rate_bps, settings.cap
        );
        Ok(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sale(unit_price: u64, authenticated: bool) -> Sale {
        Sale {
            order_id: "o-1".into(),
            sku: "sku".into(),
            category_id: "bags".into(),
            unit_price,
            quantity: 1,
            currency: "EUR".into(),
            seller_id: Some("consignor-7".into()),
            attributes: vec![Attribute::new("authenticated", authenticated.to_string())],
        }
    }

    fn base() -> CommissionDecision {
        CommissionDecision {
            rule_id: "bags".into(),
            rate_bps: 1_500,
            min_fee: 500,
            max_fee: 100_000,
            fee: 0,
            note: String::new(),
        }
    }

    #[test]
    fn tiers_pick_the_highest_applicable_rate() {
        let ctx = Context::testing();
        let cheap = LuxuryConsignment::commission(&ctx, &sale(50_000, true), base()).unwrap();
        assert_eq!((cheap.rate_bps, cheap.fee), (2_500, 12_500));
        let mid = LuxuryConsignment::commission(&ctx, &sale(200_000, true), base()).unwrap();
        assert_eq!((mid.rate_bps, mid.fee), (1_800, 36_000));
    }

    #[test]
    fn the_cap_bounds_the_fee() {
        let ctx = Context::testing();
        let dear = LuxuryConsignment::commission(&ctx, &sale(5_000_000, true), base()).unwrap();
        assert_eq!(dear.fee, 150_000);
        assert_eq!(dear.max_fee, 150_000);
    }

    #[test]
    fn unauthenticated_items_pay_a_surcharge() {
        let ctx = Context::testing();
        let d = LuxuryConsignment::commission(&ctx, &sale(50_000, false), base()).unwrap();
        assert_eq!(d.rate_bps, 2_800);
    }

    #[test]
    fn bad_settings_are_a_plugin_error() {
        let ctx = Context::testing().with_settings(r#"{"cap": "lots"}"#);
        let err = LuxuryConsignment::commission(&ctx, &sale(50_000, true), base()).unwrap_err();
        assert_eq!(err.code, "bad-settings");
    }

    #[test]
    fn adds_categories_under_existing_parents_only() {
        let root = |id: &str| Category {
            id: id.into(),
            parent: None,
            name: id.into(),
            slug: id.into(),
            position: 0,
            attributes: vec![],
        };
        let out = LuxuryConsignment::categories(&Context::testing(), vec![root("bags")]).unwrap();
        let ids: Vec<_> = out.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["bags", "bags-vintage"]);
    }
}
