//! The no-code path: overrides written as RFC 6902 JSON patches in the settings,
//! so a tenant customises the configuration without writing a plugin. Each hook
//! turns its input into JSON (field names as in the SDK types: `rate_bps`,
//! `category_ids`, `from_name`, ...), applies the section's patch and reads the
//! result back. A patch that does not apply, or whose result is no longer the
//! right shape, fails the hook with code `patch-failed`, naming the operation and
//! the reason; the host then serves the base for that section.
//!
//! Settings, every section optional:
//!
//! ```json
//! {
//!   "categories": [{"op": "replace", "path": "/0/name", "value": "Ready to wear"}],
//!   "size_charts": [{"op": "add", "path": "/0/rows/-", "value": {"label": "XXL", "values": ["124", "110"]}}],
//!   "email": {"welcome": [{"op": "replace", "path": "/subject", "value": "Welcome to {{ shop_name }}"}]},
//!   "commission": [
//!     {"when": {"category_id": "watches", "min_gross": 500000},
//!      "patch": [{"op": "replace", "path": "/rate_bps", "value": 900}]}
//!   ]
//! }
//! ```
//!
//! `email` is keyed by template id. `commission` rules are tried in order and the
//! first whose `when` matches the sale applies (`when` may test `category_id`,
//! `seller_id`, and the line's gross amount against `min_gross` and `max_gross`,
//! both inclusive, in minor units; an empty `when` matches every sale). When a
//! commission patch changes `rate_bps`, `min_fee` or `max_fee` but leaves `fee`
//! alone, the fee is recomputed from the new terms.
//!
//! This format is the plugin's settings schema (`describe`): the host checks
//! a release's settings against it (operation names, paths, conditions)
//! before anything runs, and the console renders it.

use std::collections::BTreeMap;

use json_patch::{Patch, PatchOperation};
use veneer_sdk::serde::Serialize;
use veneer_sdk::serde::de::DeserializeOwned;
use veneer_sdk::{
    Category, CommissionDecision, Context, EmailTemplate, Plugin, PluginError, RenderContext, Sale,
    SizeChart, serde_json,
};

/// The plugin type registered with the host: its settings, checked once per instance.
#[derive(Debug)]
pub struct DeclarativeOverrides {
    settings: Settings,
}

/// The tenant's settings: one patch per section.
#[veneer_sdk::settings]
#[derive(Debug, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Applied to the list of categories.
    pub categories: Patch,
    /// Applied to the list of size charts.
    pub size_charts: Patch,
    /// Applied to one email template, by template id.
    pub email: BTreeMap<String, Patch>,
    /// Commission rules, first match wins.
    pub commission: Vec<CommissionRule>,
}

/// A commission patch and the sales it applies to.
#[veneer_sdk::settings]
#[derive(Debug)]
#[serde(deny_unknown_fields)]
pub struct CommissionRule {
    /// Which sales; every condition given must hold.
    #[serde(default)]
    pub when: When,
    /// Applied to the base decision.
    pub patch: Patch,
}

/// Conditions on a sale line; absent ones always hold.
#[veneer_sdk::settings]
#[derive(Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct When {
    /// The sale's category id.
    pub category_id: Option<String>,
    /// Smallest gross amount, inclusive, in minor units.
    pub min_gross: Option<u64>,
    /// Largest gross amount, inclusive, in minor units.
    pub max_gross: Option<u64>,
    /// The sale's seller id; a sale without a seller never matches.
    pub seller_id: Option<String>,
}

impl When {
    /// Whether `sale` meets every condition.
    pub fn matches(&self, sale: &Sale) -> bool {
        let gross = sale.gross();
        self.category_id
            .as_ref()
            .is_none_or(|id| *id == sale.category_id)
            && self.min_gross.is_none_or(|min| gross >= min)
            && self.max_gross.is_none_or(|max| gross <= max)
            && self
                .seller_id
                .as_ref()
                .is_none_or(|id| sale.seller_id.as_ref() == Some(id))
    }
}

fn op_name(op: &PatchOperation) -> &'static str {
    match op {
        PatchOperation::Add(_) => "add",
        PatchOperation::Remove(_) => "remove",
        PatchOperation::Replace(_) => "replace",
        PatchOperation::Move(_) => "move",
        PatchOperation::Copy(_) => "copy",
        PatchOperation::Test(_) => "test",
    }
}

fn patch_failed(section: &str, message: impl std::fmt::Display) -> PluginError {
    PluginError::new(
        "patch-failed",
        format!("the {section} patch in the plugin's settings failed: {message}"),
    )
}

/// Applies `patch` to `value` through its JSON form. `section` names the patch
/// in error messages.
fn apply<T: Serialize + DeserializeOwned>(
    section: &str,
    value: T,
    patch: &[PatchOperation],
) -> Result<T, PluginError> {
    if patch.is_empty() {
        return Ok(value);
    }
    let mut doc = serde_json::to_value(&value).map_err(|err| patch_failed(section, err))?;
    json_patch::patch(&mut doc, patch).map_err(|err| {
        let op = patch.get(err.operation).map_or("?", op_name);
        patch_failed(
            section,
            format_args!(
                "operation {} ({op} {:?}) failed: {}",
                err.operation,
                err.path.as_str(),
                err.kind
            ),
        )
    })?;
    serde_json::from_value(doc).map_err(|err| {
        patch_failed(
            section,
            format_args!("the patched result does not have the expected fields and types: {err}"),
        )
    })
}

#[veneer_sdk::plugin]
impl Plugin for DeclarativeOverrides {
    type Settings = Settings;

    fn new(settings: Settings, _ctx: &Context) -> Result<Self, PluginError> {
        for (index, rule) in settings.commission.iter().enumerate() {
            if let (Some(min), Some(max)) = (rule.when.min_gross, rule.when.max_gross)
                && min > max
            {
                return Err(PluginError::bad_settings(
                    &format!("/commission/{index}/when"),
                    format_args!(
                        "min_gross {min} is above max_gross {max}, so the rule never matches; swap them"
                    ),
                ));
            }
        }
        Ok(Self { settings })
    }

    fn categories(
        &self,
        _ctx: &Context,
        base: Vec<Category>,
    ) -> Result<Vec<Category>, PluginError> {
        apply("categories", base, &self.settings.categories)
    }

    fn size_charts(
        &self,
        _ctx: &Context,
        base: Vec<SizeChart>,
    ) -> Result<Vec<SizeChart>, PluginError> {
        apply("size_charts", base, &self.settings.size_charts)
    }

    fn commission(
        &self,
        _ctx: &Context,
        sale: &Sale,
        base: CommissionDecision,
    ) -> Result<CommissionDecision, PluginError> {
        let Some((index, rule)) = self
            .settings
            .commission
            .iter()
            .enumerate()
            .find(|(_, rule)| rule.when.matches(sale))
        else {
            return Ok(base);
        };
        let section = format!("commission rule {index}");
        let mut decision = apply(&section, base.clone(), &rule.patch)?;
        let terms_changed = (decision.rate_bps, decision.min_fee, decision.max_fee)
            != (base.rate_bps, base.min_fee, base.max_fee);
        // A patch that writes /fee means it, even when the value happens not to change.
        let fee_set =
            decision.fee != base.fee || rule.patch.iter().any(|op| op.path().as_str() == "/fee");
        if terms_changed && !fee_set {
            decision.refee(sale.gross());
        }
        Ok(decision)
    }

    fn email(
        &self,
        _ctx: &Context,
        template: EmailTemplate,
        _context: &RenderContext,
    ) -> Result<EmailTemplate, PluginError> {
        match self.settings.email.get(&template.id) {
            Some(patch) => {
                let section = format!("email {:?}", template.id);
                apply(&section, template, patch)
            }
            None => Ok(template),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use veneer_sdk::{Attribute, SizeRow};

    /// The plugin built from `settings` as the host builds an instance.
    fn plugin(settings: serde_json::Value) -> DeclarativeOverrides {
        veneer_sdk::instantiate(&settings.to_string(), &Context::testing()).unwrap()
    }

    fn categories() -> Vec<Category> {
        ["apparel", "shoes", "bags"]
            .iter()
            .enumerate()
            .map(|(position, id)| Category {
                id: (*id).into(),
                parent: None,
                name: id.to_uppercase(),
                slug: (*id).into(),
                position: u32::try_from(position).unwrap(),
                attributes: vec![],
            })
            .collect()
    }

    #[test]
    fn patches_the_category_tree() {
        let plugin = plugin(json!({"categories": [
            {"op": "replace", "path": "/0/name", "value": "Ready to wear"},
            {"op": "add", "path": "/-", "value": {
                "id": "bags-mini", "parent": "bags", "name": "Mini bags", "slug": "mini",
                "attributes": [{"key": "size", "value": "mini"}]
            }},
            {"op": "remove", "path": "/1"}
        ]}));
        let out = plugin
            .categories(&Context::testing(), categories())
            .unwrap();
        let ids: Vec<_> = out.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["apparel", "bags", "bags-mini"]);
        assert_eq!(out[0].name, "Ready to wear");
        assert_eq!(out[2].parent.as_deref(), Some("bags"));
        assert_eq!(out[2].position, 0, "omitted fields take their defaults");
        assert_eq!(out[2].attributes, [Attribute::new("size", "mini")]);
    }

    #[test]
    fn no_patch_returns_the_base() {
        let out = plugin(json!({}))
            .categories(&Context::testing(), categories())
            .unwrap();
        assert_eq!(out, categories());
    }

    #[test]
    fn a_failing_operation_is_named_with_its_index_and_reason() {
        let plugin = plugin(json!({"categories": [
            {"op": "replace", "path": "/0/name", "value": "fine"},
            {"op": "replace", "path": "/7/name", "value": "no such category"}
        ]}));
        let err = plugin
            .categories(&Context::testing(), categories())
            .unwrap_err();
        assert_eq!(err.code, "patch-failed");
        assert!(err.message.contains("categories patch"), "{}", err.message);
        assert!(
            err.message.contains("operation 1 (replace \"/7/name\")"),
            "{}",
            err.message
        );
        assert!(err.message.contains("path is invalid"), "{}", err.message);
    }

    #[test]
    fn a_failing_test_operation_fails_the_whole_patch() {
        let plugin = plugin(json!({"categories": [
            {"op": "test", "path": "/0/id", "value": "shoes"},
            {"op": "replace", "path": "/0/name", "value": "Shoes"}
        ]}));
        let err = plugin
            .categories(&Context::testing(), categories())
            .unwrap_err();
        assert!(
            err.message.contains("operation 0 (test \"/0/id\")"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("value did not match"),
            "{}",
            err.message
        );
    }

    #[test]
    fn a_result_of_the_wrong_shape_is_a_patch_failure() {
        let plugin = plugin(json!({"categories": [
            {"op": "replace", "path": "/0/position", "value": "first"}
        ]}));
        let err = plugin
            .categories(&Context::testing(), categories())
            .unwrap_err();
        assert_eq!(err.code, "patch-failed");
        assert!(
            err.message.contains("expected fields and types"),
            "{}",
            err.message
        );
    }

    #[test]
    fn patches_size_charts() {
        let base = vec![SizeChart {
            id: "apparel-men".into(),
            name: "Men".into(),
            category_ids: vec!["apparel".into()],
            columns: vec!["chest-cm".into(), "waist-cm".into()],
            rows: vec![SizeRow {
                label: "M".into(),
                values: vec!["96".into(), "82".into()],
            }],
        }];
        let plugin = plugin(json!({"size_charts": [
            {"op": "add", "path": "/0/rows/-", "value": {"label": "L", "values": ["102", "88"]}},
            {"op": "copy", "from": "/0/category_ids/0", "path": "/0/category_ids/-"},
            {"op": "replace", "path": "/0/category_ids/1", "value": "sportswear"}
        ]}));
        let out = plugin.size_charts(&Context::testing(), base).unwrap();
        assert_eq!(out[0].rows[1].label, "L");
        assert_eq!(out[0].category_ids, ["apparel", "sportswear"]);
    }

    fn template(id: &str) -> EmailTemplate {
        EmailTemplate {
            id: id.into(),
            subject: "Welcome".into(),
            html: "<p>Hi</p>{{ unsubscribe_url }} {{ postal_address }}".into(),
            text: "Hi {{ unsubscribe_url }} {{ postal_address }}".into(),
            from_name: None,
            reply_to: None,
        }
    }

    #[test]
    fn patches_only_the_named_email_template() {
        let plugin = plugin(json!({"email": {"welcome": [
            {"op": "replace", "path": "/subject", "value": "Welcome to {{ shop_name }}"},
            {"op": "replace", "path": "/reply_to", "value": "hello@example.com"}
        ]}}));
        let welcome = plugin
            .email(
                &Context::testing(),
                template("welcome"),
                &RenderContext::new(),
            )
            .unwrap();
        assert_eq!(welcome.subject, "Welcome to {{ shop_name }}");
        assert_eq!(welcome.reply_to.as_deref(), Some("hello@example.com"));
        let other = plugin
            .email(
                &Context::testing(),
                template("item-sold"),
                &RenderContext::new(),
            )
            .unwrap();
        assert_eq!(other, template("item-sold"));
    }

    #[test]
    fn a_failing_email_patch_names_the_template() {
        let plugin = plugin(json!({"email": {"welcome": [{"op": "remove", "path": "/footer"}]}}));
        let err = plugin
            .email(
                &Context::testing(),
                template("welcome"),
                &RenderContext::new(),
            )
            .unwrap_err();
        assert_eq!(err.code, "patch-failed");
        assert!(
            err.message.contains("email \"welcome\" patch"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("operation 0 (remove \"/footer\")"),
            "{}",
            err.message
        );
    }

    fn sale(category_id: &str, unit_price: u64, seller_id: Option<&str>) -> Sale {
        Sale {
            order_id: "o-1".into(),
            sku: "sku".into(),
            category_id: category_id.into(),
            unit_price,
            quantity: 2,
            currency: "EUR".into(),
            seller_id: seller_id.map(str::to_owned),
            attributes: vec![],
        }
    }

    fn decision(gross: u64) -> CommissionDecision {
        let mut decision = CommissionDecision {
            rule_id: "default".into(),
            rate_bps: 1_500,
            min_fee: 100,
            max_fee: 100_000,
            fee: 0,
            note: String::new(),
        };
        decision.refee(gross);
        decision
    }

    fn commission_rules() -> DeclarativeOverrides {
        plugin(json!({"commission": [
            {"when": {"seller_id": "vip-1"},
             "patch": [{"op": "replace", "path": "/rate_bps", "value": 500},
                       {"op": "replace", "path": "/note", "value": "VIP seller"}]},
            {"when": {"category_id": "watches", "min_gross": 500000},
             "patch": [{"op": "replace", "path": "/rate_bps", "value": 900},
                       {"op": "replace", "path": "/rule_id", "value": "watches-high"}]},
            {"when": {"max_gross": 1000},
             "patch": [{"op": "replace", "path": "/fee", "value": 0},
                       {"op": "replace", "path": "/min_fee", "value": 0}]},
            {"when": {"category_id": "bags"},
             "patch": [{"op": "replace", "path": "/max_fee", "value": 2000},
                       {"op": "replace", "path": "/fee", "value": 1800}]}
        ]}))
    }

    #[test]
    fn the_first_matching_rule_applies_and_the_fee_follows_the_new_rate() {
        let plugin = commission_rules();
        let vip = sale("watches", 300_000, Some("vip-1"));
        let out = plugin
            .commission(&Context::testing(), &vip, decision(vip.gross()))
            .unwrap();
        assert_eq!(
            (out.rate_bps, out.fee, out.note.as_str()),
            (500, 30_000, "VIP seller")
        );

        let watch = sale("watches", 300_000, Some("seller-2"));
        let out = plugin
            .commission(&Context::testing(), &watch, decision(watch.gross()))
            .unwrap();
        assert_eq!(
            (out.rule_id.as_str(), out.rate_bps, out.fee),
            ("watches-high", 900, 54_000)
        );
    }

    #[test]
    fn a_fee_the_patch_sets_is_kept() {
        let plugin = commission_rules();
        let tiny = sale("apparel", 400, None);
        let out = plugin
            .commission(&Context::testing(), &tiny, decision(tiny.gross()))
            .unwrap();
        assert_eq!((out.min_fee, out.fee), (0, 0));
        let bag = sale("bags", 50_000, None);
        let out = plugin
            .commission(&Context::testing(), &bag, decision(bag.gross()))
            .unwrap();
        assert_eq!((out.max_fee, out.fee), (2_000, 1_800));
    }

    #[test]
    fn gross_bounds_are_inclusive_and_unmatched_sales_keep_the_base() {
        let plugin = commission_rules();
        let edge = sale("watches", 250_000, None);
        assert_eq!(edge.gross(), 500_000);
        let out = plugin
            .commission(&Context::testing(), &edge, decision(edge.gross()))
            .unwrap();
        assert_eq!(out.rate_bps, 900);
        let below = sale("watches", 249_999, None);
        let out = plugin
            .commission(&Context::testing(), &below, decision(below.gross()))
            .unwrap();
        assert_eq!(out, decision(below.gross()));
    }

    #[test]
    fn a_failing_commission_patch_names_the_rule() {
        let plugin = plugin(json!({"commission": [
            {"when": {}, "patch": [{"op": "replace", "path": "/rate", "value": 1}]}
        ]}));
        let s = sale("bags", 1_000, None);
        let err = plugin
            .commission(&Context::testing(), &s, decision(s.gross()))
            .unwrap_err();
        assert_eq!(err.code, "patch-failed");
        assert!(
            err.message.contains("commission rule 0 patch"),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("operation 0 (replace \"/rate\")"),
            "{}",
            err.message
        );
    }

    #[test]
    fn malformed_settings_are_bad_settings() {
        for settings in [
            json!({"categorys": []}),
            json!({"categories": [{"op": "frobnicate", "path": "/0"}]}),
            json!({"categories": [{"op": "replace", "path": "/0/name"}]}),
            json!({"categories": [{"op": "replace", "path": "0/name", "value": 1}]}),
            json!({"commission": [{"when": {"category": "bags"}, "patch": []}]}),
            json!({"commission": [{"when": {"min_gross": 10, "max_gross": 5}, "patch": []}]}),
            json!({"email": {"welcome": {"op": "remove", "path": "/subject"}}}),
        ] {
            let err = veneer_sdk::instantiate::<DeclarativeOverrides>(
                &settings.to_string(),
                &Context::testing(),
            )
            .unwrap_err();
            assert_eq!(err.code, "bad-settings", "{settings}");
            assert!(err.message.starts_with("settings at /"), "{}", err.message);
        }
    }
}

#[cfg(test)]
mod schema_tests {
    use super::*;

    #[test]
    fn the_settings_schema_is_the_patch_format() {
        let info = veneer_sdk::describe::<DeclarativeOverrides>();
        assert_eq!(
            info.hooks,
            ["categories", "size-charts", "commission", "email"]
        );
        let schema: serde_json::Value =
            serde_json::from_str(&info.settings_schema.expect("a schema")).expect("JSON");
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(schema["properties"]["categories"]["$ref"], "#/$defs/Patch");
        let ops: Vec<&str> = schema["$defs"]["PatchOperation"]["oneOf"]
            .as_array()
            .expect("one schema per operation")
            .iter()
            .filter_map(|op| op["properties"]["op"]["const"].as_str())
            .collect();
        assert_eq!(ops, ["add", "remove", "replace", "move", "copy", "test"]);
        let when = &schema["$defs"]["When"]["properties"];
        assert!(
            when["min_gross"]["type"].to_string().contains("integer"),
            "{when}"
        );
        assert_eq!(
            schema["$defs"]["CommissionRule"]["required"],
            serde_json::json!(["patch"])
        );
    }
}
