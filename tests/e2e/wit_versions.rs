//! Contract versions side by side in one runtime: every component of
//! [`WIT_FIXTURES`] loads as the version it was built for, says what that
//! version lets it say, and serves its hooks through the same calls, one
//! chain holding several versions; `product-category` (0.2.0) is checked
//! against the tree; a version the host does not serve is refused by name.

use std::sync::Arc;

use veneer::base::Product;
use veneer::resolve::{Budget, ChainStep, Resolver, Source};
use veneer::runtime::{Hook, Outcome, OutcomeKind, Quota, WarmKey, WitVersion, hook};
use veneer_plugin_artifacts as built_plugins;

use crate::util::{WIT_FIXTURES, base, fixture, load, runtime, sale, settings};

#[test]
fn each_component_loads_as_the_version_it_exports_and_says_what_it_may() {
    for fixture in WIT_FIXTURES {
        let plugin = load(fixture.path);
        let info = plugin.info();
        assert_eq!(info.wit_version, fixture.version, "{}", fixture.path);
        let ours: Vec<&String> = info
            .imports
            .iter()
            .filter(|i| i.starts_with("veneer:plugin/"))
            .collect();
        assert!(
            ours.iter()
                .all(|i| i.ends_with(&format!("@{}", fixture.version))),
            "{ours:?}"
        );
        match fixture.version {
            WitVersion::V0_1_0 => {
                assert_eq!(info.description, "", "0.1.0 cannot describe itself");
                assert_eq!(info.settings_schema, None, "nor declare a schema");
                assert!(!info.hooks.contains(&Hook::ProductCategory));
            }
            WitVersion::V0_2_0 => {
                assert!(info.hooks.contains(&Hook::Commission), "{info:?}");
            }
        }
        let json = serde_json::to_value(info).expect("serialises");
        assert_eq!(json["wit_version"], fixture.version.as_str(), "{json}");
    }

    let v2 = load(built_plugins::WIT_V2_FIXTURE);
    let info = v2.info();
    assert_eq!(info.name, "wit-v2-fixture");
    assert!(info.description.contains("commission rate per category"));
    assert!(info.hooks.contains(&Hook::ProductCategory));
    let schema: serde_json::Value =
        serde_json::from_str(info.settings_schema.as_deref().expect("a schema")).expect("json");
    assert_eq!(
        schema["properties"]["rates"]["items"]["properties"]["bps"]["maximum"],
        10_000
    );
}

#[test]
fn one_chain_serves_every_version_in_order() {
    // This crate's 0.2.0 fixture last, whatever rows come after it: its rate
    // is the answer checked below.
    let mut fixtures = WIT_FIXTURES.to_vec();
    fixtures.sort_by_key(|f| f.path == built_plugins::WIT_V2_FIXTURE);
    let plugins: Vec<_> = fixtures.iter().map(|f| load(f.path)).collect();
    let names: Vec<String> = (0..fixtures.len()).map(|i| format!("step-{i}")).collect();
    let policies = [];
    let warm = WarmKey::new("wit-versions", 1);
    let steps: Vec<ChainStep<'_>> = fixtures
        .iter()
        .zip(&plugins)
        .zip(&names)
        .enumerate()
        .map(|(i, ((fixture, plugin), name))| ChainStep {
            installation: name,
            release: i as i64 + 1,
            plugin: Some(plugin),
            warm: Some(&warm),
            data: settings(fixture.settings),
            quota: Quota::default(),
            policies: &policies,
        })
        .collect();
    let resolver = Resolver::new(runtime(), base());
    // Twice: the second time on warm instances of each version.
    for _ in 0..2 {
        let resolved = resolver
            .commission_chain(&steps, &mut Budget::unlimited(), &sale("bags", 250_000))
            .expect("a valid sale");
        assert_eq!(resolved.source, Source::Plugin);
        assert_eq!(
            resolved.runs.len(),
            WIT_FIXTURES.len(),
            "{:?}",
            resolved.runs
        );
        assert!(
            resolved.runs.iter().all(|r| r.outcome == OutcomeKind::Ok),
            "{:?}",
            resolved.runs
        );
        // The last step is the 0.2.0 fixture: 9 % of the line, over luxury's answer.
        assert_eq!(resolved.value.rule_id, "wit-v2:bags");
        assert_eq!(resolved.value.rate_bps, 900);
        assert_eq!(resolved.value.fee, 22_500);
    }
}

#[test]
fn a_session_runs_each_version() {
    for fixture in WIT_FIXTURES {
        let plugin = load(fixture.path);
        let mut session = runtime()
            .session(&plugin, settings(fixture.settings), &Quota::default())
            .expect("instantiates");
        let Outcome::Ok(hooks) = session.describe() else {
            panic!("{} describes itself", fixture.path);
        };
        assert!(hooks.contains(&Hook::Commission), "{hooks:?}");
        let sale = sale("bags", 100_000);
        let decision = base().decide_commission(&sale);
        for _ in 0..3 {
            let Outcome::Ok(out) = session.run::<hook::Commission>((&sale, &decision)) else {
                panic!("{} decides", fixture.path);
            };
            assert!(out.fee > 0, "{out:?}");
        }
    }
}

fn product(title: &str, product_type: &str) -> Product {
    Product {
        title: title.into(),
        vendor: "Nike".into(),
        product_type: product_type.into(),
        tags: vec![],
    }
}

#[test]
fn product_category_is_served_when_it_names_a_category_of_the_tree() {
    let fixture = v2();
    let plugin = load(fixture.path);
    let resolver = Resolver::new(runtime(), base());
    let resolve = |product: &Product, choice: Option<&str>| {
        resolver.resolve::<hook::ProductCategory>(
            Some(&plugin),
            None,
            settings(fixture.settings),
            &Quota::default(),
            (product, choice),
            &base().categories,
        )
    };

    let jordan = product("Air Jordan 1 Retro", "Sneakers");
    let chosen = resolve(&jordan, Some("sneakers"));
    assert_eq!(chosen.value.as_deref(), Some("sneakers-basketball"));
    assert_eq!(chosen.source, Source::Plugin);

    let plain = product("Plain tote", "Bags");
    let kept = resolve(&plain, Some("bags"));
    assert_eq!(kept.value.as_deref(), Some("bags"), "no keyword: the base");
    assert_eq!(kept.runs[0].outcome, OutcomeKind::Ok);

    // An id the tree does not have is invalid output: the base passes on.
    let mystery = product("Mystery box", "Bags");
    let refused = resolve(&mystery, Some("bags"));
    assert_eq!(refused.value.as_deref(), Some("bags"));
    assert_eq!(refused.source, Source::Base);
    assert_eq!(refused.runs[0].outcome, OutcomeKind::InvalidOutput);
    assert!(
        refused.runs[0]
            .message
            .as_deref()
            .is_some_and(|m| m.contains("no-such-category")),
        "{:?}",
        refused.runs[0]
    );
}

#[test]
fn a_plugin_of_an_older_version_is_never_asked_for_a_product_category() {
    let fixture = WIT_FIXTURES
        .iter()
        .find(|f| f.version == WitVersion::V0_1_0)
        .expect("a 0.1.0 fixture");
    let plugin = load(fixture.path);
    assert!(!plugin.implements(Hook::ProductCategory));
    let resolved = Resolver::new(runtime(), base()).resolve::<hook::ProductCategory>(
        Some(&plugin),
        None,
        settings(fixture.settings),
        &Quota::default(),
        (&product("Air Jordan 1", "Sneakers"), Some("sneakers")),
        &base().categories,
    );
    assert_eq!(resolved.value.as_deref(), Some("sneakers"));
    assert!(resolved.runs.is_empty(), "not run, not recorded");
}

#[test]
fn a_version_the_host_does_not_serve_is_refused_naming_those_it_does() {
    let err = runtime()
        .load(&fixture("hooks-0.3.0.wat"))
        .expect_err("0.3.0 is not served");
    assert_eq!(err.code(), "wrong_world", "{err}");
    let message = err.to_string();
    for named in [
        "veneer:plugin/hooks@0.1.0",
        "veneer:plugin/hooks@0.2.0",
        "veneer:plugin/hooks@0.3.0",
    ] {
        assert!(message.contains(named), "{message}");
    }
}

#[test]
fn settings_reach_each_version_through_its_own_imports() {
    // The same host data, read through 0.1.0's and 0.2.0's `settings.get`.
    for fixture in WIT_FIXTURES {
        let plugin = load(fixture.path);
        let broken = runtime().run::<hook::Commission>(
            &plugin,
            None,
            Arc::new(veneer::runtime::StaticTenantData::with_settings("not json")),
            &Quota::default(),
            (
                &sale("bags", 1_000),
                &base().decide_commission(&sale("bags", 1_000)),
            ),
        );
        assert_eq!(
            broken.outcome.kind(),
            OutcomeKind::PluginError,
            "{}: {:?}",
            fixture.path,
            broken.outcome
        );
    }
}

/// `veneer plugin check FILE [--json]`.
fn check(path: &str, json: bool) -> std::process::Output {
    let mut args = vec!["plugin", "check", path];
    if json {
        args.push("--json");
    }
    std::process::Command::new(env!("CARGO_BIN_EXE_veneer"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the veneer binary runs")
}

#[test]
fn plugin_check_shows_what_each_version_says_about_itself() {
    for fixture in WIT_FIXTURES {
        let out = check(fixture.path, true);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        assert_eq!(report["outcome"], "ok", "{report}");
        let plugin = &report["plugin"];
        assert_eq!(plugin["wit_version"], fixture.version.as_str(), "{report}");
        assert_eq!(
            plugin["settings_schema"].is_string(),
            fixture.version == WitVersion::V0_2_0,
            "{report}"
        );

        let out = check(fixture.path, false);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("wit:     veneer:plugin@{}", fixture.version)),
            "{text}"
        );
        match fixture.version {
            WitVersion::V0_1_0 => assert!(text.contains("settings schema: none"), "{text}"),
            WitVersion::V0_2_0 => {
                assert!(text.contains("about:   "), "{text}");
                assert!(text.contains("(JSON Schema, valid)"), "{text}");
            }
        }
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hooks-0.3.0.wasm");
    std::fs::write(&path, fixture("hooks-0.3.0.wat")).expect("write");
    let out = check(path.to_str().expect("utf-8 path"), true);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(report["outcome"], "rejected", "{report}");
    assert_eq!(report["code"], "wrong_world", "{report}");
    assert!(
        report["message"]
            .as_str()
            .is_some_and(|m| m.contains("veneer:plugin/hooks@0.2.0")),
        "{report}"
    );
}

#[test]
fn plugin_run_runs_product_category_as_the_webhook_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = dir.path().join("settings.json");
    std::fs::write(&settings, v2().settings).expect("write settings");
    let settings = settings.to_str().expect("utf-8 path").to_owned();
    let input = dir.path().join("product.json");
    let input_arg = input.to_str().expect("utf-8 path").to_owned();
    let run = |product: Option<&str>| {
        let mut args = vec![
            "plugin",
            "run",
            built_plugins::WIT_V2_FIXTURE,
            "--hook",
            "product-category",
            "--settings",
            &settings,
            "--json",
        ];
        if let Some(text) = product {
            std::fs::write(&input, text).expect("write input");
            args.extend(["--input", &input_arg]);
        }
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_veneer"))
            .args(&args)
            .env_remove("RUST_LOG")
            .output()
            .expect("the veneer binary runs");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|err| panic!("{err}: {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code(), report)
    };

    // The sample product is a Jordan: the keyword's category.
    let (code, report) = run(None);
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["outcome"], "ok", "{report}");
    assert_eq!(report["output"], "sneakers-basketball", "{report}");

    // No keyword: the mapping of the product type is the answer.
    let (code, report) = run(Some(
        r#"{"title": "Kelly 28", "vendor": "", "product_type": "Handbags", "tags": []}"#,
    ));
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["output"], "bags-handbags", "{report}");

    // A category outside the tree is reported as invalid output.
    let (code, report) = run(Some(
        r#"{"product": {"title": "Mystery bag"}, "base": "bags"}"#,
    ));
    assert_ne!(code, Some(0), "{report}");
    assert_eq!(report["outcome"], "invalid_output", "{report}");
}

/// The plain wit-bindgen 0.2.0 fixture (commission and product-category).
fn v2() -> &'static crate::util::WitFixture {
    WIT_FIXTURES
        .iter()
        .find(|f| f.path == built_plugins::WIT_V2_FIXTURE)
        .expect("the 0.2.0 fixture")
}
