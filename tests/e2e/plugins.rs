//! The example plugins, run as components through the resolver exactly as the
//! server runs them: the effective configuration changes as each one promises.

use veneer::resolve::{Resolver, Source};
use veneer::runtime::hook;
use veneer::runtime::{OutcomeKind, Quota};
use veneer_plugin_artifacts as built_plugins;

use crate::util::{base, load, runtime, sale, settings};

fn resolver() -> Resolver<'static> {
    Resolver::new(runtime(), base())
}

#[test]
fn luxury_consignment_adds_categories_and_caps_commission() {
    let plugin = load(built_plugins::LUXURY_CONSIGNMENT);
    let cats = resolver().resolve::<hook::Categories>(
        Some(&plugin),
        None,
        settings("{}"),
        &Quota::default(),
        &base().categories,
        (),
    );
    assert_eq!(cats.source, Source::Plugin, "{:?}", cats.runs);
    assert!(cats.value.iter().any(|c| c.id == "bags-vintage"));
    assert!(cats.value.len() > base().categories.len());

    let expensive = sale("watches", 5_000_000);
    let quote = resolver()
        .commission(
            Some(&plugin),
            None,
            settings(r#"{"cap": 90000}"#),
            &Quota::default(),
            &expensive,
        )
        .expect("valid sale");
    assert_eq!(quote.source, Source::Plugin, "{:?}", quote.runs);
    assert_eq!(quote.value.fee, 90_000);
    assert_ne!(quote.value, base().decide_commission(&expensive));
}

#[test]
fn bad_settings_fall_back_with_the_plugins_own_message() {
    let plugin = load(built_plugins::LUXURY_CONSIGNMENT);
    let quote = resolver()
        .commission(
            Some(&plugin),
            None,
            settings(r#"{"cap": "a lot"}"#),
            &Quota::default(),
            &sale("bags", 10_000),
        )
        .expect("valid sale");
    assert_eq!(quote.source, Source::Base);
    let run = quote.last_run().cloned().expect("ran");
    assert_eq!(run.outcome, OutcomeKind::PluginError);
    assert!(run.message.unwrap_or_default().starts_with("bad-settings"));
}

#[test]
fn sneaker_store_adds_half_sizes_that_still_validate() {
    let plugin = load(built_plugins::SNEAKER_STORE);
    let cats = resolver().resolve::<hook::Categories>(
        Some(&plugin),
        None,
        settings("{}"),
        &Quota::default(),
        &base().categories,
        (),
    );
    let charts = resolver().resolve::<hook::SizeCharts>(
        Some(&plugin),
        None,
        settings("{}"),
        &Quota::default(),
        &base().size_charts,
        &cats.value,
    );
    assert_eq!(charts.source, Source::Plugin, "{:?}", charts.runs);
    let men = charts
        .value
        .iter()
        .find(|c| c.id == "shoes-men")
        .expect("men's chart");
    let base_men = base()
        .size_charts
        .iter()
        .find(|c| c.id == "shoes-men")
        .expect("base chart");
    assert!(men.rows.len() > base_men.rows.len(), "half sizes added");
    assert!(men.columns.iter().any(|c| c == "JP"));
}

#[test]
fn email_rebrand_changes_the_look_and_keeps_required_parts() {
    let plugin = load(built_plugins::EMAIL_REBRAND);
    let tenant = settings(
        r##"{"brand_name": "Acme <Luxe>", "primary_color": "#0a0a0a", "accent_color": "#c9a227",
            "reply_to": "care@acme.example", "from_name": "Acme Care", "footer_text": "Acme Ltd, 1 High St"}"##,
    );
    let email = resolver()
        .email(
            Some(&plugin),
            tenant,
            &Quota::default(),
            "order-confirmation",
            None,
        )
        .expect("known template");
    assert_eq!(email.source, Source::Plugin, "{:?}", email.runs);
    assert_eq!(email.value.reply_to.as_deref(), Some("care@acme.example"));
    assert!(email.value.html.contains("#0a0a0a"));
    assert!(
        email.value.html.contains("Acme &lt;Luxe&gt;"),
        "brand name is escaped"
    );
    assert!(email.value.html.contains("unsubscribe_url"));
}

#[test]
fn email_rebrand_refuses_css_injection_in_colours() {
    let plugin = load(built_plugins::EMAIL_REBRAND);
    let tenant = settings(
        r##"{"brand_name": "X", "primary_color": "red;background:url(x)", "accent_color": "#000000"}"##,
    );
    let email = resolver()
        .email(Some(&plugin), tenant, &Quota::default(), "welcome", None)
        .expect("known template");
    assert_eq!(email.source, Source::Base);
    assert_eq!(
        email.last_run().cloned().expect("ran").outcome,
        OutcomeKind::PluginError
    );
}

#[test]
fn declarative_overrides_apply_json_patches_without_code() {
    let plugin = load(built_plugins::DECLARATIVE_OVERRIDES);
    let tenant = settings(
        r#"{
            "categories": [{"op": "add", "path": "/-", "value": {"id": "bags-eco", "parent": "bags", "name": "Eco Bags", "slug": "eco", "position": 99, "attributes": []}}],
            "commission": [{"when": {"category_id": "bags"}, "patch": [{"op": "replace", "path": "/rate_bps", "value": 500}]}]
        }"#,
    );
    let cats = resolver().resolve::<hook::Categories>(
        Some(&plugin),
        None,
        tenant.clone(),
        &Quota::default(),
        &base().categories,
        (),
    );
    assert_eq!(cats.source, Source::Plugin, "{:?}", cats.runs);
    assert!(cats.value.iter().any(|c| c.id == "bags-eco"));

    let quote = resolver()
        .commission(
            Some(&plugin),
            None,
            tenant,
            &Quota::default(),
            &sale("bags", 100_000),
        )
        .expect("valid sale");
    assert_eq!(quote.source, Source::Plugin, "{:?}", quote.runs);
    assert_eq!(quote.value.rate_bps, 500);
}

#[test]
fn a_failing_patch_falls_back_and_says_which_op() {
    let plugin = load(built_plugins::DECLARATIVE_OVERRIDES);
    let tenant = settings(r#"{"categories": [{"op": "remove", "path": "/9999"}]}"#);
    let cats = resolver().resolve::<hook::Categories>(
        Some(&plugin),
        None,
        tenant,
        &Quota::default(),
        &base().categories,
        (),
    );
    assert_eq!(cats.source, Source::Base);
    let run = cats.last_run().cloned().expect("ran");
    assert_eq!(run.outcome, OutcomeKind::PluginError);
    assert!(run.message.unwrap_or_default().contains("patch-failed"));
}
