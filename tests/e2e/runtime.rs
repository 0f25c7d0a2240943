//! The runtime's lifecycle: describe, hook selection, artifact cache, quotas.

use std::collections::BTreeSet;

use veneer::resolve::{Resolver, Source};
use veneer::runtime::hook;
use veneer::runtime::{Hook, OutcomeKind, Quota, Runtime, RuntimeConfig};
use veneer_plugin_artifacts as built_plugins;

use crate::util::{base, load, read, runtime, sale, settings};

#[test]
fn describe_reports_the_hooks_each_plugin_implements() {
    let luxury = load(built_plugins::LUXURY_CONSIGNMENT);
    let info = luxury.info();
    assert_eq!(info.name, "plugin-luxury-consignment");
    assert_eq!(
        info.hooks,
        BTreeSet::from([Hook::Categories, Hook::Commission])
    );
    assert_eq!(
        info.sha256,
        Runtime::hash(&read(built_plugins::LUXURY_CONSIGNMENT))
    );
    assert!(
        info.imports
            .iter()
            .all(|i| !i.starts_with("wasi:filesystem")),
        "{:?}",
        info.imports
    );

    // The 0.2.0 build implements every hook, product-category included; its
    // frozen 0.1.0 build the four 0.1.0 has.
    let hostile = load(built_plugins::HOSTILE);
    assert_eq!(hostile.info().hooks.len(), 5);
    assert!(hostile.info().hooks.contains(&Hook::ProductCategory));
    let hostile_v1 = load(built_plugins::v0_1_0::HOSTILE);
    assert_eq!(hostile_v1.info().hooks.len(), 4);
}

#[test]
fn a_hook_the_plugin_does_not_implement_is_never_called() {
    let luxury = load(built_plugins::LUXURY_CONSIGNMENT);
    let resolved = Resolver::new(runtime(), base()).resolve::<hook::SizeCharts>(
        Some(&luxury),
        None,
        settings("{}"),
        &Quota::default(),
        &base().size_charts,
        &base().categories,
    );
    assert_eq!(resolved.source, Source::Base);
    assert!(resolved.runs.is_empty(), "no run, no cost");
    assert_eq!(resolved.value, base().size_charts);
}

#[test]
fn loading_the_same_bytes_twice_is_a_lookup() {
    let a = load(built_plugins::SNEAKER_STORE);
    let b = load(built_plugins::SNEAKER_STORE);
    assert!(std::sync::Arc::ptr_eq(&a, &b));
}

#[test]
fn compiled_artifacts_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = RuntimeConfig {
        artifact_dir: Some(dir.path().to_owned()),
        artifact_key: Some([9; 32]),
        max_concurrent_calls: 4,
        ..RuntimeConfig::default()
    };
    let bytes = read(built_plugins::EMAIL_REBRAND);

    let first = Runtime::new(config.clone()).expect("runtime starts");
    let plugin = first.load(&bytes).expect("loads");
    assert!(!plugin.from_artifact_cache(), "first load compiles");
    let files: Vec<_> = std::fs::read_dir(dir.path()).expect("dir").collect();
    assert_eq!(files.len(), 1, "one artifact written");
    drop(first);

    let second = Runtime::new(config).expect("runtime restarts");
    let plugin = second.load(&bytes).expect("loads again");
    assert!(
        plugin.from_artifact_cache(),
        "restart loads the artifact instead of compiling"
    );
    let run = second.run::<hook::Email>(
        &plugin,
        None,
        settings(
            r##"{"brand_name": "Acme", "primary_color": "#112233", "accent_color": "#445566"}"##,
        ),
        &Quota::default(),
        (
            &base().emails["welcome"].template,
            &base().emails["welcome"].sample,
        ),
    );
    assert_eq!(
        run.outcome.kind(),
        OutcomeKind::Ok,
        "{:?}",
        run.outcome.message()
    );
}

#[test]
fn a_corrupt_artifact_is_discarded_and_recompiled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = RuntimeConfig {
        artifact_dir: Some(dir.path().to_owned()),
        artifact_key: Some([9; 32]),
        max_concurrent_calls: 4,
        ..RuntimeConfig::default()
    };
    let bytes = read(built_plugins::LUXURY_CONSIGNMENT);
    Runtime::new(config.clone())
        .expect("starts")
        .load(&bytes)
        .expect("loads");
    for entry in std::fs::read_dir(dir.path()).expect("dir") {
        std::fs::write(entry.expect("entry").path(), b"not an artifact").expect("corrupt it");
    }
    let plugin = Runtime::new(config)
        .expect("starts")
        .load(&bytes)
        .expect("recompiles");
    assert!(!plugin.from_artifact_cache());
}

#[test]
fn artifacts_written_under_another_key_are_not_trusted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = |key| RuntimeConfig {
        artifact_dir: Some(dir.path().to_owned()),
        artifact_key: Some(key),
        max_concurrent_calls: 4,
        ..RuntimeConfig::default()
    };
    let bytes = read(built_plugins::LUXURY_CONSIGNMENT);
    Runtime::new(config([1; 32]))
        .expect("starts")
        .load(&bytes)
        .expect("loads");
    let plugin = Runtime::new(config([2; 32]))
        .expect("starts")
        .load(&bytes)
        .expect("recompiles");
    assert!(
        !plugin.from_artifact_cache(),
        "native code signed with another key is recompiled, never run"
    );
}

#[test]
fn fuel_use_is_reported_and_deterministic() {
    let luxury = load(built_plugins::LUXURY_CONSIGNMENT);
    let sale = sale("bags", 250_000);
    let decision = base().decide_commission(&sale);
    let run = |_| {
        runtime().run::<hook::Commission>(
            &luxury,
            None,
            settings("{}"),
            &Quota::default(),
            (&sale, &decision),
        )
    };
    let (a, b) = (run(()), run(()));
    assert_eq!(a.outcome.kind(), OutcomeKind::Ok);
    assert!(a.stats.fuel_used > 0);
    assert_eq!(
        a.stats.fuel_used, b.stats.fuel_used,
        "same input, same fuel"
    );
    assert!(
        a.stats.peak_memory_bytes >= 1 << 20,
        "a Rust component starts with its stack"
    );
}

#[test]
fn quotas_outside_what_the_engine_enforces_are_refused() {
    let quota = Quota {
        memory_bytes: 8 << 30,
        ..Quota::default()
    };
    let err = quota
        .validate()
        .expect_err("8 GiB is over the pool's slot size");
    assert_eq!(err.field, "memory_bytes");
}

#[test]
fn a_session_runs_several_calls_on_one_instance() {
    let luxury = load(built_plugins::LUXURY_CONSIGNMENT);
    let sale = sale("bags", 250_000);
    let decision = base().decide_commission(&sale);
    let mut session = runtime()
        .session(&luxury, settings("{}"), &Quota::default())
        .expect("instantiates");
    for _ in 0..3 {
        match session.run::<hook::Commission>((&sale, &decision)) {
            veneer::runtime::Outcome::Ok(d) => assert!(d.rule_id.starts_with("luxury-tier")),
            other => panic!("session call failed: {other:?}"),
        }
        assert!(session.last_fuel_used() > 0);
    }
    match session.describe() {
        veneer::runtime::Outcome::Ok(hooks) => assert_eq!(hooks.len(), 2),
        other => panic!("describe failed: {other:?}"),
    }
}

#[test]
fn loaded_plugins_are_bounded_by_weight_and_reload_on_demand() {
    let probe = Runtime::new(RuntimeConfig::default()).expect("runtime starts");
    probe
        .load(&read(built_plugins::LUXURY_CONSIGNMENT))
        .expect("loads");
    let one = probe.loaded_bytes();
    assert!(one > 0);

    // Room for about one plugin: loading others releases the least recently used.
    let rt = Runtime::new(RuntimeConfig {
        loaded_bytes: one + one / 2,
        ..RuntimeConfig::default()
    })
    .expect("runtime starts");
    let plugins = [
        built_plugins::LUXURY_CONSIGNMENT,
        built_plugins::SNEAKER_STORE,
        built_plugins::EMAIL_REBRAND,
        built_plugins::DECLARATIVE_OVERRIDES,
    ];
    for path in plugins {
        rt.load(&read(path)).expect("loads");
        assert!(
            rt.loaded_bytes() <= one + one / 2 + one,
            "held {} bytes",
            rt.loaded_bytes()
        );
    }
    assert!(rt.loaded_count() < plugins.len(), "{}", rt.loaded_count());
    // A released plugin is loaded again when needed, and runs.
    let luxury = rt
        .load(&read(built_plugins::LUXURY_CONSIGNMENT))
        .expect("reloads");
    let s = sale("bags", 250_000);
    let run = rt.run::<hook::Commission>(
        &luxury,
        None,
        settings("{}"),
        &Quota::default(),
        (&s, &base().decide_commission(&s)),
    );
    assert_eq!(run.outcome.kind(), OutcomeKind::Ok);
}

/// WIT 0.1.0 stays served: each example's frozen 0.1.0 build and its 0.2.0
/// rebuild (SDK v2) give the same answers, side by side in one runtime.
#[test]
fn a_plugins_0_1_0_build_and_its_0_2_0_build_agree() {
    let pairs = [
        (
            built_plugins::v0_1_0::LUXURY_CONSIGNMENT,
            built_plugins::LUXURY_CONSIGNMENT,
        ),
        (
            built_plugins::v0_1_0::SNEAKER_STORE,
            built_plugins::SNEAKER_STORE,
        ),
    ];
    let resolver = Resolver::new(runtime(), base());
    for (old, new) in pairs {
        let (old, new) = (load(old), load(new));
        assert_ne!(old.info().sha256, new.info().sha256);
        for (category, price) in [("bags", 250_000), ("sneakers", 18_000), ("watches", 900)] {
            let sale = sale(category, price);
            let decision = base().decide_commission(&sale);
            let answer = |plugin| {
                resolver
                    .resolve::<hook::Commission>(
                        Some(plugin),
                        None,
                        settings("{}"),
                        &Quota::default(),
                        (&sale, &decision),
                        (),
                    )
                    .value
            };
            assert_eq!(answer(&old), answer(&new), "{category} {price}");
        }
        let categories = |plugin| {
            resolver
                .resolve::<hook::Categories>(
                    Some(plugin),
                    None,
                    settings("{}"),
                    &Quota::default(),
                    &base().categories,
                    (),
                )
                .value
        };
        assert_eq!(categories(&old), categories(&new));
    }
}
