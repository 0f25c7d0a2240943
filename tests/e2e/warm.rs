//! Warm instances (runtime/warm.rs): reused only for the same owner, data
//! version, plugin and quota; dropped after any failure; every call gets its
//! whole quota; the pool keeps to its cap. The hostile plugin's `count-calls`
//! mode makes reuse visible: it counts calls in its instance's memory.

use std::sync::Arc;

use veneer::runtime::hook;
use veneer::runtime::{
    LoadedPlugin, Outcome, OutcomeKind, Quota, Run, Runtime, RuntimeConfig, TenantData, WarmKey,
};

use crate::util::{base, read, sale, settings};

fn runtime_with(warm_instances: u32) -> Runtime {
    Runtime::new(RuntimeConfig {
        warm_instances,
        ..RuntimeConfig::default()
    })
    .expect("runtime starts")
}

fn hostile_on(rt: &Runtime) -> Arc<LoadedPlugin> {
    rt.load(&read(veneer_plugin_artifacts::HOSTILE))
        .expect("hostile loads")
}

fn quote(
    rt: &Runtime,
    plugin: &LoadedPlugin,
    key: Option<&WarmKey>,
    data: Arc<dyn TenantData>,
    quota: &Quota,
) -> Run<veneer::base::CommissionDecision> {
    let sale = sale("bags", 10_000);
    let decision = base().decide_commission(&sale);
    rt.run::<hook::Commission>(plugin, key, data, quota, (&sale, &decision))
}

/// The `count-calls` note of one call: which call of its instance it was.
fn call_number(
    rt: &Runtime,
    plugin: &LoadedPlugin,
    key: Option<&WarmKey>,
    data: &Arc<dyn TenantData>,
) -> String {
    match quote(rt, plugin, key, data.clone(), &Quota::default()).outcome {
        Outcome::Ok(decision) => decision.note,
        other => panic!("count-calls should succeed: {other:?}"),
    }
}

fn counting() -> Arc<dyn TenantData> {
    settings(r#"{"mode": "count-calls"}"#)
}

#[test]
fn instances_are_reused_within_one_owner_and_version_only() {
    let rt = runtime_with(8);
    let plugin = hostile_on(&rt);
    let data = counting();
    let acme = WarmKey::new("acme", 1);
    let globex = WarmKey::new("globex", 1);
    let acme_v2 = WarmKey::new("acme", 2);

    assert_eq!(call_number(&rt, &plugin, Some(&acme), &data), "call 1");
    assert_eq!(call_number(&rt, &plugin, Some(&acme), &data), "call 2");
    assert_eq!(rt.warm_instances(), 1);
    // Another owner never gets acme's instance, even with identical data.
    assert_eq!(call_number(&rt, &plugin, Some(&globex), &data), "call 1");
    // Nor does acme at another data version.
    assert_eq!(call_number(&rt, &plugin, Some(&acme_v2), &data), "call 1");
    // Without a key every call is fresh.
    assert_eq!(call_number(&rt, &plugin, None, &data), "call 1");
    assert_eq!(call_number(&rt, &plugin, Some(&acme), &data), "call 3");
    assert_eq!(rt.warm_instances(), 3);
}

#[test]
fn another_quota_gets_a_fresh_instance() {
    let rt = runtime_with(8);
    let plugin = hostile_on(&rt);
    let data = counting();
    let key = WarmKey::new("acme", 1);
    assert_eq!(call_number(&rt, &plugin, Some(&key), &data), "call 1");
    let lower = Quota {
        fuel: Quota::default().fuel / 2,
        ..Quota::default()
    };
    let run = quote(&rt, &plugin, Some(&key), data.clone(), &lower);
    match run.outcome {
        Outcome::Ok(d) => assert_eq!(d.note, "call 1", "a new quota, a new instance"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn any_failure_drops_the_instance() {
    let rt = runtime_with(8);
    let plugin = hostile_on(&rt);
    let key = WarmKey::new("acme", 1);
    for (mode, kind) in [
        ("spin", OutcomeKind::OutOfFuel),
        ("panic", OutcomeKind::Trap),
        ("error", OutcomeKind::PluginError),
    ] {
        let data = settings(&format!(r#"{{"mode": "{mode}"}}"#));
        let run = quote(&rt, &plugin, Some(&key), data, &Quota::default());
        assert_eq!(run.outcome.kind(), kind, "{mode}");
        assert_eq!(rt.warm_instances(), 0, "{mode} left an instance behind");
    }
    // Well-behaved again: a fresh instance, kept.
    let data = counting();
    assert_eq!(call_number(&rt, &plugin, Some(&key), &data), "call 1");
    assert_eq!(rt.warm_instances(), 1);
}

#[test]
fn an_instance_holding_over_half_its_memory_quota_is_not_kept() {
    let rt = runtime_with(8);
    let plugin = hostile_on(&rt);
    let key = WarmKey::new("acme", 1);
    let quota = Quota {
        memory_bytes: 16 << 20,
        output_bytes: 16 << 20,
        ..Quota::default()
    };
    let big = settings(r#"{"mode": "big-output", "bytes": 9437184}"#);
    let run = quote(&rt, &plugin, Some(&key), big, &quota);
    assert_eq!(run.outcome.kind(), OutcomeKind::Ok, "{:?}", run.outcome);
    assert!(run.stats.peak_memory_bytes > 8 << 20);
    assert_eq!(rt.warm_instances(), 0);
    let small = settings(r#"{"mode": "ok"}"#);
    let run = quote(&rt, &plugin, Some(&WarmKey::new("acme", 2)), small, &quota);
    assert_eq!(run.outcome.kind(), OutcomeKind::Ok);
    assert_eq!(rt.warm_instances(), 1);
}

#[test]
fn every_warm_call_gets_its_whole_quota() {
    let rt = runtime_with(8);
    let plugin = hostile_on(&rt);
    let key = WarmKey::new("acme", 1);

    // Fuel: each call needs about 60 % of the budget; five in a row succeed.
    let slow = settings(r#"{"mode": "slow-ok", "count": 300000}"#);
    let first = quote(&rt, &plugin, None, slow.clone(), &Quota::default());
    let per_call = first.stats.fuel_used;
    let quota = Quota {
        fuel: per_call * 5 / 3,
        ..Quota::default()
    };
    for call in 0..5 {
        let run = quote(&rt, &plugin, Some(&key), slow.clone(), &quota);
        assert_eq!(run.outcome.kind(), OutcomeKind::Ok, "call {call}");
        assert!(run.stats.fuel_used <= per_call, "call {call}: {run:?}");
    }
    assert_eq!(rt.warm_instances(), 1);

    // The log: each call has its own three lines, not the sum so far.
    let key = WarmKey::new("acme", 2);
    let logging = settings(r#"{"mode": "log-flood", "count": 3, "bytes": 10}"#);
    for call in 0..4 {
        let run = quote(&rt, &plugin, Some(&key), logging.clone(), &Quota::default());
        assert_eq!(run.outcome.kind(), OutcomeKind::Ok, "call {call}");
        assert_eq!(run.stats.logs.len(), 3, "call {call}: {:?}", run.stats.logs);
    }

    // The host-call budget: room for one settings read per call, fifty calls.
    let key = WarmKey::new("acme", 3);
    let data = counting();
    let tight = Quota {
        host_call_bytes: u64::try_from(data.settings_json().len()).unwrap() + 8,
        ..Quota::default()
    };
    for call in 1..=50 {
        let run = quote(&rt, &plugin, Some(&key), data.clone(), &tight);
        match run.outcome {
            Outcome::Ok(d) => assert_eq!(d.note, format!("call {call}")),
            other => panic!("call {call}: {other:?}"),
        }
    }
}

#[test]
fn the_pool_keeps_to_its_cap_dropping_the_least_recently_used() {
    let rt = runtime_with(2);
    let plugin = hostile_on(&rt);
    let data = counting();
    let keys: Vec<_> = ["a", "b", "c"].iter().map(|o| WarmKey::new(o, 1)).collect();
    for key in &keys {
        assert_eq!(call_number(&rt, &plugin, Some(key), &data), "call 1");
    }
    assert_eq!(rt.warm_instances(), 2);
    // "a" was the least recently used: gone. "c" is still warm.
    assert_eq!(call_number(&rt, &plugin, Some(&keys[2]), &data), "call 2");
    assert_eq!(call_number(&rt, &plugin, Some(&keys[0]), &data), "call 1");
}

#[test]
fn idle_instances_are_dropped_without_further_use_of_the_pool() {
    let rt = Runtime::new(RuntimeConfig {
        warm_instances: 8,
        warm_idle: std::time::Duration::from_millis(200),
        ..RuntimeConfig::default()
    })
    .expect("runtime starts");
    let plugin = hostile_on(&rt);
    let data = counting();
    let key = WarmKey::new("acme", 1);
    assert_eq!(call_number(&rt, &plugin, Some(&key), &data), "call 1");
    assert_eq!(call_number(&rt, &plugin, Some(&key), &data), "call 2");
    assert_eq!(rt.warm_instances(), 1);
    // No call touches the pool from here: the runtime's ticker drops it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while rt.warm_instances() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "an idle instance was still held 10 s after its 200 ms idle time"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // The next call starts from a fresh instance.
    assert_eq!(call_number(&rt, &plugin, Some(&key), &data), "call 1");
}

#[test]
fn no_pool_means_a_fresh_store_per_call() {
    let rt = runtime_with(0);
    let plugin = hostile_on(&rt);
    let data = counting();
    let key = WarmKey::new("acme", 1);
    for _ in 0..3 {
        assert_eq!(call_number(&rt, &plugin, Some(&key), &data), "call 1");
    }
    assert_eq!(rt.warm_instances(), 0);
}

#[test]
fn concurrent_calls_never_share_an_instance() {
    let rt = Arc::new(runtime_with(8));
    let plugin = hostile_on(&rt);
    let key = WarmKey::new("acme", 1);
    let data = counting();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (rt, plugin, key, data) = (rt.clone(), plugin.clone(), key.clone(), data.clone());
            std::thread::spawn(move || {
                (0..50)
                    .map(|_| call_number(&rt, &plugin, Some(&key), &data))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut notes: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("thread"))
        .map(|note| note.trim_start_matches("call ").parse().expect("a count"))
        .collect();
    notes.sort_unstable();
    // 200 calls over at most 4 instances: each instance's counts run 1, 2, 3, …
    // without gaps or repeats, which is only so if no two calls shared one.
    let instances = notes.iter().filter(|&&n| n == 1).count();
    assert!((1..=4).contains(&instances), "{instances} instances");
    let mut counts = std::collections::HashMap::<u64, u64>::new();
    for n in &notes {
        *counts.entry(*n).or_default() += 1;
    }
    for n in 1..=*notes.last().unwrap() {
        let c = counts.get(&n).copied().unwrap_or(0);
        assert!(c >= 1 && c <= instances as u64, "count {n} seen {c} times");
    }
    assert_eq!(notes.len(), 200);
    // Counts never increase across instances: occurrences are non-increasing in n.
    for n in 2..=*notes.last().unwrap() {
        assert!(counts[&n] <= counts[&(n - 1)], "count {n}");
    }
}

#[test]
fn every_sale_and_decision_field_reaches_the_plugin_fresh_and_warm() {
    let rt = runtime_with(8);
    let plugin = hostile_on(&rt);
    let data = settings(r#"{"mode": "echo"}"#);
    let sale = veneer::base::Sale {
        order_id: "o-7 ünïcode".into(),
        sku: "SKU-9".into(),
        category_id: "bags".into(),
        unit_price: 123_456,
        quantity: 3,
        currency: "EUR".into(),
        seller_id: Some("seller-42".into()),
        attributes: vec![
            veneer::base::Attribute {
                key: "authenticated".into(),
                value: "true".into(),
            },
            veneer::base::Attribute {
                key: "colour".into(),
                value: "".into(),
            },
        ],
    };
    let decision = veneer::base::CommissionDecision {
        rule_id: "bags".into(),
        rate_bps: 1_200,
        min_fee: 100,
        max_fee: 50_000,
        fee: 44_444,
        note: "base note".into(),
    };
    let expected = "sale o-7 ünïcode|SKU-9|bags|123456|3|EUR|Some(\"seller-42\")|authenticated=true,colour=; \
                    base bags|1200|100|50000|44444|base note";
    let key = WarmKey::new("acme", 1);
    // Fresh, then twice on the kept instance, then with no seller and no attributes.
    for _ in 0..3 {
        match rt
            .run::<hook::Commission>(
                &plugin,
                Some(&key),
                data.clone(),
                &Quota::default(),
                (&sale, &decision),
            )
            .outcome
        {
            Outcome::Ok(out) => assert_eq!(out.note, expected),
            other => panic!("echo should succeed: {other:?}"),
        }
        // Kept after every call: the later ones ran on the warm instance.
        assert_eq!(rt.warm_instances(), 1);
    }
    let bare = veneer::base::Sale {
        seller_id: None,
        attributes: Vec::new(),
        ..sale
    };
    match rt
        .run::<hook::Commission>(
            &plugin,
            Some(&key),
            data,
            &Quota::default(),
            (&bare, &decision),
        )
        .outcome
    {
        Outcome::Ok(out) => assert!(
            out.note
                .ends_with("|EUR|None|; base bags|1200|100|50000|44444|base note"),
            "{}",
            out.note
        ),
        other => panic!("echo should succeed: {other:?}"),
    }
}
