//! A luxury consignment store. It adds categories for authenticated pre-owned
//! goods and charges consignors a tiered commission: a higher rate on cheap items,
//! a lower one on expensive items, capped per line.

use veneer_sdk::{Attribute, Category, CommissionDecision, Context, Plugin, PluginError, Sale};

/// The plugin type registered with the host: its settings, checked once per
/// instance, with the tiers sorted by their lower bound.
#[derive(Debug)]
pub struct LuxuryConsignment {
    settings: Settings,
}

/// One commission tier: lines whose gross is at least `from` pay `rate_bps`.
#[veneer_sdk::settings]
#[derive(Debug)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Lower bound of the tier, in minor units.
    pub from: u64,
    /// Rate in basis points (at most 10000).
    #[schemars(range(max = 10_000))]
    pub rate_bps: u32,
}

/// The tenant's settings.
#[veneer_sdk::settings]
#[derive(Debug)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Tiers, any order; the highest `from` not above the gross applies.
    pub tiers: Vec<Tier>,
    /// Largest fee per line, in minor units.
    pub cap: u64,
    /// Extra rate for items not yet authenticated, in basis points.
    #[schemars(range(max = 10_000))]
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
    type Settings = Settings;

    fn new(mut settings: Settings, _ctx: &Context) -> Result<Self, PluginError> {
        if !settings.tiers.iter().any(|tier| tier.from == 0) {
            return Err(PluginError::bad_settings(
                "/tiers",
                "no tier starts at 0, so cheap lines would have no rate; add one with \"from\": 0",
            ));
        }
        // Highest lower bound first: a line's tier is the first it reaches.
        // Of tiers with equal lower bounds the last listed wins (as in 0.1.0):
        // reversed first, the stable sort keeps it ahead of the others.
        settings.tiers.reverse();
        settings
            .tiers
            .sort_by_key(|tier| std::cmp::Reverse(tier.from));
        Ok(Self { settings })
    }

    fn categories(
        &self,
        _ctx: &Context,
        mut base: Vec<Category>,
    ) -> Result<Vec<Category>, PluginError> {
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
        &self,
        _ctx: &Context,
        sale: &Sale,
        mut base: CommissionDecision,
    ) -> Result<CommissionDecision, PluginError> {
        let settings = &self.settings;
        let gross = sale.gross();
        // `new` made sure a tier starts at 0, so one always applies.
        let Some(tier) = settings.tiers.iter().find(|tier| tier.from <= gross) else {
            return Ok(base);
        };
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

    /// The plugin built from `settings` as the host builds an instance.
    fn plugin(settings: &str) -> LuxuryConsignment {
        veneer_sdk::instantiate(settings, &Context::testing()).unwrap()
    }

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
        let cheap = plugin("{}")
            .commission(&ctx, &sale(50_000, true), base())
            .unwrap();
        assert_eq!((cheap.rate_bps, cheap.fee), (2_500, 12_500));
        let mid = plugin("{}")
            .commission(&ctx, &sale(200_000, true), base())
            .unwrap();
        assert_eq!((mid.rate_bps, mid.fee), (1_800, 36_000));
    }

    #[test]
    fn the_cap_bounds_the_fee() {
        let ctx = Context::testing();
        let dear = plugin("{}")
            .commission(&ctx, &sale(5_000_000, true), base())
            .unwrap();
        assert_eq!(dear.fee, 150_000);
        assert_eq!(dear.max_fee, 150_000);
    }

    #[test]
    fn unauthenticated_items_pay_a_surcharge() {
        let ctx = Context::testing();
        let d = plugin("{}")
            .commission(&ctx, &sale(50_000, false), base())
            .unwrap();
        assert_eq!(d.rate_bps, 2_800);
    }

    #[test]
    fn bad_settings_are_a_plugin_error_naming_the_path() {
        let ctx = Context::testing();
        for (settings, start) in [
            (r#"{"cap": "lots"}"#, "settings at /cap: "),
            (
                r#"{"tiers": [{"from": 0, "rate_bps": 1}, {"from": 5, "rate": 2}]}"#,
                "settings at /tiers/1",
            ),
            (
                r#"{"tiers": [{"from": 10, "rate_bps": 1}]}"#,
                "settings at /tiers: no tier starts at 0",
            ),
        ] {
            let err = veneer_sdk::instantiate::<LuxuryConsignment>(settings, &ctx).unwrap_err();
            assert_eq!(err.code, "bad-settings");
            assert!(
                err.message.starts_with(start),
                "{settings}: {}",
                err.message
            );
        }
    }

    #[test]
    fn tiers_in_any_order_pick_the_highest_reached() {
        let plugin = plugin(
            r#"{"tiers": [{"from": 100000, "rate_bps": 1000}, {"from": 0, "rate_bps": 2000}]}"#,
        );
        let ctx = Context::testing();
        let d = plugin
            .commission(&ctx, &sale(150_000, true), base())
            .unwrap();
        assert_eq!(
            (d.rule_id.as_str(), d.rate_bps),
            ("luxury-tier-100000", 1_000)
        );
        let d = plugin
            .commission(&ctx, &sale(50_000, true), base())
            .unwrap();
        assert_eq!((d.rule_id.as_str(), d.rate_bps), ("luxury-tier-0", 2_000));
    }

    #[test]
    fn of_equal_tier_starts_the_last_listed_wins() {
        let plugin =
            plugin(r#"{"tiers": [{"from": 0, "rate_bps": 100}, {"from": 0, "rate_bps": 700}]}"#);
        let d = plugin
            .commission(&Context::testing(), &sale(50_000, true), base())
            .unwrap();
        assert_eq!(d.rate_bps, 700);
    }

    #[test]
    fn describe_reports_two_hooks_and_a_schema_with_bounds() {
        let info = veneer_sdk::describe::<LuxuryConsignment>();
        assert_eq!(info.hooks, ["categories", "commission"]);
        assert_eq!(info.name, "plugin-luxury-consignment");
        let schema: veneer_sdk::serde_json::Value =
            veneer_sdk::serde_json::from_str(&info.settings_schema.unwrap()).unwrap();
        assert_eq!(schema["properties"]["cap"]["type"], "integer");
        assert_eq!(
            schema["$defs"]["Tier"]["properties"]["rate_bps"]["maximum"],
            10_000
        );
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
        let out = plugin("{}")
            .categories(&Context::testing(), vec![root("bags")])
            .unwrap();
        let ids: Vec<_> = out.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["bags", "bags-vintage"]);
    }
}
