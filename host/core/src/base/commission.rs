//! The base commission decision and the rules' own consistency checks.

use std::collections::HashMap;

use super::types::{
    BaseConfig, Category, CommissionDecision, CommissionRule, CommissionRules, Sale, Tier,
};
use crate::validate::{self, Violation};

/// Rates are in basis points: 10 000 bps is 100 % of the gross.
const FULL_RATE_BPS: u32 = 10_000;

impl BaseConfig {
    /// The base decision for a sale: the rule of the sale's category or of its nearest ancestor
    /// that has one, else the default rule; within it the tier with the highest `from` not above
    /// the line gross. The fee is the gross times the rate, rounded half up, clamped to the
    /// rule's `[min_fee, max_fee]`, and never more than the gross itself.
    pub fn decide_commission(&self, sale: &Sale) -> CommissionDecision {
        let rules = &self.commission;
        let rule = rule_for(rules, &self.categories, &sale.category_id);
        let gross = sale.gross();
        let rate_bps = rate_for(&rule.tiers, gross);
        let raw = percent_of(gross, rate_bps);
        let fee = raw.max(rule.min_fee).min(rule.max_fee).min(gross);

        let mut note = format!(
            "rule {}: {} of {} {}, min {}, max {}",
            rule.id,
            format_bps(rate_bps),
            format_minor(gross),
            sale.currency,
            format_minor(rule.min_fee),
            format_minor(rule.max_fee),
        );
        if fee == gross && fee < raw.max(rule.min_fee) {
            note.push_str("; limited to the line gross");
        } else if fee > raw {
            note.push_str("; raised to the minimum fee");
        } else if fee < raw {
            note.push_str("; capped at the maximum fee");
        }
        if sale.currency != rules.currency {
            // The fee bounds are in the rules' currency; saying so beats silently mixing units.
            note.push_str(&format!(
                "; the sale is in {} but the rules are in {}",
                sale.currency, rules.currency
            ));
        }

        CommissionDecision {
            rule_id: rule.id.clone(),
            rate_bps,
            min_fee: rule.min_fee,
            max_fee: rule.max_fee,
            fee,
            note,
        }
    }
}

/// The rule of `category_id` or of its nearest ancestor with one. A linear walk: the base has
/// tens of categories and a handful of rules, so an index would cost more to keep than it saves.
fn rule_for<'a>(
    rules: &'a CommissionRules,
    categories: &[Category],
    category_id: &str,
) -> &'a CommissionRule {
    let mut current = Some(category_id);
    // Bounded by the number of categories so that a cyclic tree (which validation rejects, but
    // this is also reachable with a hand-built `BaseConfig`) cannot loop forever.
    for _ in 0..=categories.len() {
        let Some(id) = current else { break };
        if let Some(rule) = rules.rules.iter().find(|r| r.category == id) {
            return rule;
        }
        current = categories
            .iter()
            .find(|c| c.id == id)
            .and_then(|c| c.parent.as_deref());
    }
    &rules.default_rule
}

/// The rate of the tier with the highest `from` not above `gross`; not relying on the tiers'
/// order keeps a hand-built, unsorted rule safe.
fn rate_for(tiers: &[Tier], gross: u64) -> u32 {
    tiers
        .iter()
        .filter(|t| t.from <= gross)
        .max_by_key(|t| t.from)
        .map_or(0, |t| t.rate_bps)
}

/// `amount * bps / 10000`, rounded half up, computed in 128 bits so no amount overflows.
fn percent_of(amount: u64, bps: u32) -> u64 {
    let scaled = u128::from(amount) * u128::from(bps) + u128::from(FULL_RATE_BPS / 2);
    u64::try_from(scaled / u128::from(FULL_RATE_BPS)).unwrap_or(u64::MAX)
}

/// Minor units as a decimal amount with two places: `123456` is `1234.56`.
fn format_minor(amount: u64) -> String {
    format!("{}.{:02}", amount / 100, amount % 100)
}

/// Basis points as a percentage: `850` is `8.50 %`.
fn format_bps(bps: u32) -> String {
    format!("{}.{:02} %", bps / 100, bps % 100)
}

/// The rules' own consistency: ids, categories and tiers. Paths name the rule by id, as in
/// `rule[watches].tiers[1].rate_bps`.
pub(super) fn check_rules(
    rules: &CommissionRules,
    categories: &[Category],
) -> Result<(), Violation> {
    let currency = &rules.currency;
    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(violation(
            "currency",
            format!("`{currency}` is not an ISO 4217 code; use three capital letters such as EUR"),
        ));
    }

    check_rule(&rules.default_rule, "default")?;
    if !rules.default_rule.category.is_empty() {
        return Err(violation(
            "default.category",
            "the default rule applies wherever no other rule does; remove `category` from it, or \
             turn it into a [[rule]]",
        ));
    }

    let mut ids = HashMap::from([(rules.default_rule.id.as_str(), "default".to_owned())]);
    let mut by_category: HashMap<&str, &str> = HashMap::new();
    for (i, rule) in rules.rules.iter().enumerate() {
        let at = if validate::is_valid_id(&rule.id) {
            format!("rule[{}]", rule.id)
        } else {
            format!("rule[{i}]")
        };
        if !validate::is_valid_id(&rule.id) {
            return Err(violation(
                format!("{at}.id"),
                format!(
                    "`{}` is not a valid rule id; use 1 to 64 characters from a-z, 0-9 and '-', \
                     starting with a letter or digit",
                    rule.id.escape_debug()
                ),
            ));
        }
        if let Some(other) = ids.insert(&rule.id, at.clone()) {
            return Err(violation(
                format!("{at}.id"),
                format!(
                    "`{}` is also the id of {other}; rule ids must be unique, rename one",
                    rule.id
                ),
            ));
        }
        if !categories.iter().any(|c| c.id == rule.category) {
            return Err(violation(
                format!("{at}.category"),
                format!(
                    "category `{}` is not in categories.toml; use an existing category id",
                    rule.category.escape_debug()
                ),
            ));
        }
        if let Some(other) = by_category.insert(&rule.category, &rule.id) {
            return Err(violation(
                format!("{at}.category"),
                format!(
                    "category `{}` already has rule `{other}`; a category takes at most one \
                     rule, merge the two",
                    rule.category
                ),
            ));
        }
        check_rule(rule, &at)?;
    }
    Ok(())
}

/// Fees and tiers of one rule, at path `at`.
fn check_rule(rule: &CommissionRule, at: &str) -> Result<(), Violation> {
    if rule.id.trim().is_empty() {
        return Err(violation(
            format!("{at}.id"),
            "is empty; give the rule an id",
        ));
    }
    if rule.min_fee > rule.max_fee {
        return Err(violation(
            format!("{at}.min_fee"),
            format!(
                "{} is above max_fee {}; lower min_fee or raise max_fee",
                rule.min_fee, rule.max_fee
            ),
        ));
    }
    let Some(first) = rule.tiers.first() else {
        return Err(violation(
            format!("{at}.tiers"),
            "is empty; add at least `{ from = 0, rate_bps = ... }`",
        ));
    };
    if first.from != 0 {
        return Err(violation(
            format!("{at}.tiers[0].from"),
            format!(
                "is {}, but the first tier must start at 0 so every amount has a rate; set it \
                 to 0",
                first.from
            ),
        ));
    }
    for (i, tier) in rule.tiers.iter().enumerate() {
        if tier.rate_bps > FULL_RATE_BPS {
            return Err(violation(
                format!("{at}.tiers[{i}].rate_bps"),
                format!(
                    "{} is above 10000 (100 %); rates are basis points, 1500 is 15 %",
                    tier.rate_bps
                ),
            ));
        }
        if let Some(prev) = i.checked_sub(1).and_then(|p| rule.tiers.get(p))
            && tier.from <= prev.from
        {
            return Err(violation(
                format!("{at}.tiers[{i}].from"),
                format!(
                    "{} does not follow the previous tier's {}; list tiers by strictly \
                     increasing `from`",
                    tier.from, prev.from
                ),
            ));
        }
    }
    Ok(())
}

fn violation(path: impl Into<String>, message: impl Into<String>) -> Violation {
    Violation {
        path: path.into(),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::default_dir;
    use super::*;

    fn base() -> BaseConfig {
        BaseConfig::load(&default_dir()).expect("base loads")
    }

    fn sale(category_id: &str, unit_price: u64, quantity: u32) -> Sale {
        Sale {
            order_id: "o-1".into(),
            sku: "sku-1".into(),
            category_id: category_id.into(),
            unit_price,
            quantity,
            currency: "EUR".into(),
            seller_id: None,
            attributes: Vec::new(),
        }
    }

    /// Every base decision must also pass the check applied to plugins.
    fn decide(base: &BaseConfig, sale: &Sale) -> CommissionDecision {
        let d = base.decide_commission(sale);
        validate::commission(sale, &d).expect("base decision is valid");
        d
    }

    #[test]
    fn tier_is_chosen_by_gross() {
        let base = base();
        // watches: 10 % from 0, 8 % from 1000.00, 6 % from 5000.00.
        let d = decide(&base, &sale("watches", 99_999, 1));
        assert_eq!(
            (d.rule_id.as_str(), d.rate_bps, d.fee),
            ("watches", 1000, 10_000)
        );
        let d = decide(&base, &sale("watches", 100_000, 1));
        assert_eq!((d.rate_bps, d.fee), (800, 8_000));
        let d = decide(&base, &sale("watches", 123_400, 1));
        assert_eq!(d.fee, 9_872);
        assert_eq!(
            d.note,
            "rule watches: 8.00 % of 1234.00 EUR, min 5.00, max 1500.00"
        );
        // Quantity counts towards the tier: 3 x 2000.00 = 6000.00 is in the 6 % tier.
        let d = decide(&base, &sale("watches", 200_000, 3));
        assert_eq!((d.rate_bps, d.fee), (600, 36_000));
    }

    #[test]
    fn fee_is_rounded_half_up() {
        let base = base();
        // The default rule's 15 % of 99.97 is 1499.55 cents, which rounds up to 15.00.
        let d = decide(&base, &sale("no-such-category", 9_997, 1));
        assert_eq!((d.rule_id.as_str(), d.fee), ("default", 1_500));
        // 15 % of 99.93 = 1498.95 -> 1499.
        assert_eq!(
            decide(&base, &sale("no-such-category", 9_993, 1)).fee,
            1_499
        );
        assert_eq!(percent_of(1, 5_000), 1); // 0.5 rounds up
        assert_eq!(percent_of(1, 4_999), 0);
        assert_eq!(percent_of(u64::MAX, 10_000), u64::MAX);
    }

    #[test]
    fn fee_is_clamped_to_min_and_max() {
        let base = base();
        // accessories: 20 % of 3.00 = 0.60, raised to the 1.00 minimum.
        let d = decide(&base, &sale("accessories-belts", 300, 1));
        assert_eq!((d.rule_id.as_str(), d.fee), ("accessories", 100));
        assert!(d.note.ends_with("raised to the minimum fee"), "{}", d.note);
        // watches: 6 % of 50 000.00 = 3000.00, capped at 1500.00.
        let d = decide(&base, &sale("watches-dive", 5_000_000, 1));
        assert_eq!((d.rule_id.as_str(), d.fee), ("watches", 150_000));
        assert!(d.note.ends_with("capped at the maximum fee"), "{}", d.note);
    }

    #[test]
    fn fee_never_exceeds_gross() {
        let base = base();
        // watches' minimum is 5.00; a 2.00 strap cannot cost more than itself.
        let d = decide(&base, &sale("watches", 200, 1));
        assert_eq!((d.fee, d.min_fee), (200, 500));
        assert!(d.note.ends_with("limited to the line gross"), "{}", d.note);
        assert_eq!(decide(&base, &sale("watches", 0, 1)).fee, 0);
        assert_eq!(decide(&base, &sale("watches", 1_000, 0)).fee, 0);
    }

    #[test]
    fn rules_are_inherited_from_the_nearest_ancestor() {
        let base = base();
        // sneakers-running has no rule; its parent sneakers has one (shoes has none).
        assert_eq!(
            decide(&base, &sale("sneakers-running", 10_000, 1)).rule_id,
            "sneakers"
        );
        // watches-dive -> watches-automatic -> watches.
        assert_eq!(
            decide(&base, &sale("watches-dive", 10_000, 1)).rule_id,
            "watches"
        );
        // A more specific rule wins over the ancestor's.
        assert_eq!(
            decide(&base, &sale("watches-smart", 10_000, 1)).rule_id,
            "watches-smart"
        );
        // No rule on the way up, or an unknown category: the default.
        assert_eq!(
            decide(&base, &sale("shoes-boots", 10_000, 1)).rule_id,
            "default"
        );
        assert_eq!(decide(&base, &sale("nope", 10_000, 1)).rule_id, "default");
    }

    #[test]
    fn huge_quantities_saturate() {
        let base = base();
        let s = sale("bags", u64::MAX / 2, u32::MAX);
        assert_eq!(s.gross(), u64::MAX);
        assert_eq!(decide(&base, &s).fee, 80_000);
    }

    #[test]
    fn other_currency_is_noted() {
        let base = base();
        let mut s = sale("bags", 10_000, 1);
        s.currency = "USD".into();
        assert!(
            base.decide_commission(&s)
                .note
                .contains("in USD but the rules are in EUR")
        );
    }

    #[test]
    fn cyclic_hand_built_tree_terminates() {
        let mut base = base();
        for c in &mut base.categories {
            if c.id == "shoes" {
                c.parent = Some("sneakers-running".into());
            }
        }
        base.commission.rules.retain(|r| r.id != "sneakers");
        assert_eq!(
            base.decide_commission(&sale("sneakers-running", 100, 1))
                .rule_id,
            "default"
        );
    }

    fn rules() -> (CommissionRules, Vec<Category>) {
        let base = base();
        (base.commission, base.categories)
    }

    fn check_err(edit: impl FnOnce(&mut CommissionRules)) -> Violation {
        let (mut r, cats) = rules();
        edit(&mut r);
        check_rules(&r, &cats).expect_err("edit should be rejected")
    }

    fn rule_mut<'a>(r: &'a mut CommissionRules, id: &str) -> &'a mut CommissionRule {
        r.rules
            .iter_mut()
            .find(|r| r.id == id)
            .expect("rule exists")
    }

    #[test]
    fn rule_checks() {
        let (r, cats) = rules();
        assert_eq!(check_rules(&r, &cats), Ok(()));

        let v = check_err(|r| r.currency = "eur".into());
        assert_eq!(v.path, "currency");
        let v = check_err(|r| rule_mut(r, "bags").category = "purses".into());
        assert_eq!(v.path, "rule[bags].category");
        assert!(v.message.contains("`purses`"), "{v}");
        // The later rule in file order is the one reported.
        let v = check_err(|r| rule_mut(r, "bags").category = "watches".into());
        assert_eq!(v.path, "rule[watches].category");
        assert!(v.message.contains("already has rule `bags`"), "{v}");
        let v = check_err(|r| rule_mut(r, "bags").id = "default".into());
        assert_eq!(v.path, "rule[default].id");
        let v = check_err(|r| rule_mut(r, "bags").id = "Bags!".into());
        assert_eq!(v.path, "rule[2].id");
        let v = check_err(|r| rule_mut(r, "bags").min_fee = 1_000_000);
        assert_eq!(v.path, "rule[bags].min_fee");
        let v = check_err(|r| rule_mut(r, "bags").tiers.clear());
        assert_eq!(v.path, "rule[bags].tiers");
        let v = check_err(|r| rule_mut(r, "bags").tiers[2].from = 100_000);
        assert_eq!(v.path, "rule[bags].tiers[2].from");
        let v = check_err(|r| r.default_rule.tiers[0].from = 1);
        assert_eq!(v.path, "default.tiers[0].from");
        let v = check_err(|r| r.default_rule.tiers[1].rate_bps = 20_000);
        assert_eq!(v.path, "default.tiers[1].rate_bps");
        let v = check_err(|r| r.default_rule.category = "bags".into());
        assert_eq!(v.path, "default.category");
    }
}
