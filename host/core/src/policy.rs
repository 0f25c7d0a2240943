//! Output policies: limits the platform puts on what a tenant's plugins may
//! return, declared as data (for all tenants, or for one). Where validation
//! (`validate`) keeps a section well-formed, a policy keeps it within what the
//! platform allows: a commission rate within a range, a fee under a share of
//! the price or an absolute cap, no base category removed, at most so many
//! categories, text every email must keep (a legal footer, a link). A result
//! that breaks a policy is not served: the previous step's output is.
//!
//! ```json
//! {
//!   "commission": {"min_rate_bps": 0, "max_rate_bps": 3000, "max_fee_share_bps": 5000, "max_fee": 100000},
//!   "categories": {"keep_base": true, "max_count": 500},
//!   "emails": {"must_contain": ["Acme Marketplace Ltd, 1 Main St"]}
//! }
//! ```

use serde::{Deserialize, Serialize};

use crate::base::{Category, CommissionDecision, EmailTemplate, Sale};

/// Largest number of texts an email policy may require.
pub const MAX_REQUIRED_TEXTS: usize = 20;
/// Longest required text, in bytes.
pub const MAX_REQUIRED_TEXT_BYTES: usize = 500;

/// What a plugin's output must keep to be served.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// Limits on commission decisions.
    pub commission: CommissionPolicy,
    /// Limits on the category tree.
    pub categories: CategoriesPolicy,
    /// What every email template must keep.
    pub emails: EmailsPolicy,
}

/// Limits on a commission decision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CommissionPolicy {
    /// Lowest rate, in basis points.
    pub min_rate_bps: Option<u32>,
    /// Highest rate, in basis points (3,000 is 30 %).
    pub max_rate_bps: Option<u32>,
    /// Highest fee as a share of the line's gross, in basis points.
    pub max_fee_share_bps: Option<u32>,
    /// Highest fee, in minor units of the sale's currency.
    pub max_fee: Option<u64>,
}

/// Limits on the category tree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CategoriesPolicy {
    /// Every base category must still be there (by id).
    pub keep_base: bool,
    /// At most this many categories.
    pub max_count: Option<usize>,
}

/// What every email template must keep.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EmailsPolicy {
    /// Texts that must appear in both the HTML and the text body.
    pub must_contain: Vec<String>,
}

impl Policy {
    /// Checks the policy itself: ranges that can hold, bounded texts.
    pub fn validate(&self) -> Result<(), String> {
        let c = &self.commission;
        for (field, value) in [
            ("min_rate_bps", c.min_rate_bps),
            ("max_rate_bps", c.max_rate_bps),
            ("max_fee_share_bps", c.max_fee_share_bps),
        ] {
            if value.is_some_and(|v| v > 10_000) {
                return Err(format!(
                    "commission.{field} is over 10000 (100 %); give basis points"
                ));
            }
        }
        if let (Some(min), Some(max)) = (c.min_rate_bps, c.max_rate_bps)
            && min > max
        {
            return Err(format!(
                "commission.min_rate_bps {min} is above max_rate_bps {max}: no rate could pass"
            ));
        }
        if self.categories.max_count == Some(0) {
            return Err("categories.max_count must be at least 1".into());
        }
        let texts = &self.emails.must_contain;
        if texts.len() > MAX_REQUIRED_TEXTS {
            return Err(format!(
                "emails.must_contain holds {} texts; at most {MAX_REQUIRED_TEXTS}",
                texts.len()
            ));
        }
        if let Some(text) = texts
            .iter()
            .find(|t| t.is_empty() || t.len() > MAX_REQUIRED_TEXT_BYTES)
        {
            return Err(format!(
                "emails.must_contain: `{}` must be 1 to {MAX_REQUIRED_TEXT_BYTES} bytes",
                text.chars().take(40).collect::<String>()
            ));
        }
        Ok(())
    }

    /// A commission decision for `sale` within the limits, or what it breaks.
    pub fn check_commission(
        &self,
        sale: &Sale,
        decision: &CommissionDecision,
    ) -> Result<(), String> {
        let c = &self.commission;
        if let Some(min) = c.min_rate_bps
            && decision.rate_bps < min
        {
            return Err(format!(
                "the rate {} bp is below the platform's minimum of {min} bp",
                decision.rate_bps
            ));
        }
        if let Some(max) = c.max_rate_bps
            && decision.rate_bps > max
        {
            return Err(format!(
                "the rate {} bp is above the platform's maximum of {max} bp",
                decision.rate_bps
            ));
        }
        if let Some(max) = c.max_fee
            && decision.fee > max
        {
            return Err(format!(
                "the fee {} is above the platform's cap of {max}",
                decision.fee
            ));
        }
        if let Some(share) = c.max_fee_share_bps {
            let gross = u128::from(sale.gross());
            let cap = gross * u128::from(share) / 10_000;
            if u128::from(decision.fee) > cap {
                return Err(format!(
                    "the fee {} is more than {share} bp of the line's gross {gross} (at most {cap})",
                    decision.fee
                ));
            }
        }
        Ok(())
    }

    /// A category tree within the limits (`base`: the platform's own tree).
    pub fn check_categories(&self, base: &[Category], out: &[Category]) -> Result<(), String> {
        if let Some(max) = self.categories.max_count
            && out.len() > max
        {
            return Err(format!(
                "{} categories, more than the platform's {max}",
                out.len()
            ));
        }
        if self.categories.keep_base
            && let Some(missing) = base.iter().find(|b| !out.iter().any(|c| c.id == b.id))
        {
            return Err(format!(
                "the base category `{}` was removed; the platform requires every base category",
                missing.id
            ));
        }
        Ok(())
    }

    /// An email template that keeps every required text.
    pub fn check_email(&self, out: &EmailTemplate) -> Result<(), String> {
        for text in &self.emails.must_contain {
            for (part, body) in [("html", &out.html), ("text", &out.text)] {
                if !body.contains(text.as_str()) {
                    return Err(format!(
                        "the {part} body of `{}` lacks the required text `{}`",
                        out.id,
                        text.chars().take(60).collect::<String>()
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sale(gross: u64) -> Sale {
        Sale {
            order_id: "o".into(),
            sku: "s".into(),
            category_id: "bags".into(),
            unit_price: gross,
            quantity: 1,
            currency: "EUR".into(),
            seller_id: None,
            attributes: Vec::new(),
        }
    }

    fn decision(rate_bps: u32, fee: u64) -> CommissionDecision {
        CommissionDecision {
            rule_id: "r".into(),
            rate_bps,
            min_fee: 0,
            max_fee: u64::MAX,
            fee,
            note: String::new(),
        }
    }

    fn category(id: &str) -> Category {
        Category {
            id: id.into(),
            parent: None,
            name: id.into(),
            slug: id.into(),
            position: 0,
            attributes: Vec::new(),
        }
    }

    #[test]
    fn commission_limits_hold_and_say_which() {
        let policy: Policy = serde_json::from_str(
            r#"{"commission": {"max_rate_bps": 3000, "max_fee_share_bps": 2000, "max_fee": 50000}}"#,
        )
        .unwrap();
        policy.validate().unwrap();
        assert!(
            policy
                .check_commission(&sale(100_000), &decision(2500, 20_000))
                .is_ok()
        );
        let err = policy
            .check_commission(&sale(100_000), &decision(9000, 9000))
            .unwrap_err();
        assert!(
            err.contains("above the platform's maximum of 3000"),
            "{err}"
        );
        let err = policy
            .check_commission(&sale(100_000), &decision(1000, 20_001))
            .unwrap_err();
        assert!(err.contains("2000 bp"), "{err}");
        let err = policy
            .check_commission(&sale(1_000_000), &decision(1000, 60_000))
            .unwrap_err();
        assert!(err.contains("cap of 50000"), "{err}");
        assert!(
            Policy::default()
                .check_commission(&sale(1), &decision(10_000, 1))
                .is_ok()
        );
    }

    #[test]
    fn categories_keep_the_base_and_a_count() {
        let base = [category("a"), category("b")];
        let policy: Policy =
            serde_json::from_str(r#"{"categories": {"keep_base": true, "max_count": 3}}"#).unwrap();
        assert!(
            policy
                .check_categories(&base, &[category("b"), category("a")])
                .is_ok()
        );
        let err = policy
            .check_categories(&base, &[category("a")])
            .unwrap_err();
        assert!(err.contains("`b` was removed"), "{err}");
        let four = [category("a"), category("b"), category("c"), category("d")];
        assert!(
            policy
                .check_categories(&base, &four)
                .unwrap_err()
                .contains("more than")
        );
    }

    #[test]
    fn emails_keep_required_text_in_both_bodies() {
        let policy: Policy =
            serde_json::from_str(r#"{"emails": {"must_contain": ["Legal Ltd"]}}"#).unwrap();
        let mut template = EmailTemplate {
            id: "welcome".into(),
            subject: "Hi".into(),
            html: "<p>Hi</p><small>Legal Ltd</small>".into(),
            text: "Hi\n-- Legal Ltd".into(),
            from_name: None,
            reply_to: None,
        };
        assert!(policy.check_email(&template).is_ok());
        template.text = "Hi".into();
        assert!(
            policy
                .check_email(&template)
                .unwrap_err()
                .contains("text body")
        );
    }

    #[test]
    fn policies_that_cannot_hold_are_refused() {
        for bad in [
            r#"{"commission": {"min_rate_bps": 5000, "max_rate_bps": 100}}"#,
            r#"{"commission": {"max_rate_bps": 20000}}"#,
            r#"{"categories": {"max_count": 0}}"#,
            r#"{"emails": {"must_contain": [""]}}"#,
        ] {
            let policy: Policy = serde_json::from_str(bad).unwrap();
            assert!(policy.validate().is_err(), "{bad}");
        }
        assert!(serde_json::from_str::<Policy>(r#"{"commision": {}}"#).is_err());
    }
}
