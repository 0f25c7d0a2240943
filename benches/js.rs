//! A JavaScript plugin against the Rust build of the same logic, measured in
//! one run: `plugins/luxury-consignment` (Rust) and
//! `plugins/js-luxury-consignment` (TypeScript, componentize-js), each through
//! the same runtime with the same quota, sale and settings:
//!
//! - component size and compile time (load with no artifact cache);
//! - fresh instantiation alone, and instantiation plus one commission call;
//! - a warm call (one live instance, as the quote path's warm pool serves);
//! - fuel and peak linear memory of a fresh call, and fuel of a warm call.
//!
//! Each path's outcome is checked (and the two plugins' decisions compared)
//! before anything is timed.
//!
//! `env -u RUST_BACKTRACE CARGO_TARGET_DIR=/var/tmp/veneer-bench cargo bench -p veneer --bench js`
//! — prints a table with the JS/Rust ratio of each figure; docs/plugins-js.md
//! keeps one run's figures.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use veneer::base::{self, BaseConfig};
use veneer::runtime::hook;
use veneer::runtime::{
    LoadedPlugin, Outcome, Quota, Runtime, RuntimeConfig, StaticTenantData, TenantData,
};
use veneer_plugin_artifacts as built_plugins;

/// Median time per call over `rounds` rounds of `batch` calls.
fn median(rounds: usize, batch: u32, mut f: impl FnMut()) -> Duration {
    let mut samples: Vec<Duration> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..batch {
                f();
            }
            started.elapsed() / batch
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

fn ok<T>(what: &str, outcome: Outcome<T>) -> T {
    match outcome {
        Outcome::Ok(value) => value,
        other => panic!("{what}: {} {:?}", other.kind(), other.message()),
    }
}

/// One plugin's figures.
struct Figures {
    size: usize,
    compile: Duration,
    instantiate: Duration,
    fresh_call: Duration,
    warm_call: Duration,
    fresh_fuel: u64,
    warm_fuel: u64,
    peak_memory: u64,
}

struct Case {
    data: Arc<dyn TenantData>,
    quota: Quota,
    sale: base::Sale,
    decision: base::CommissionDecision,
}

fn measure(
    name: &str,
    path: &str,
    case: &Case,
    expected: Option<&base::CommissionDecision>,
) -> (Figures, base::CommissionDecision) {
    let bytes = std::fs::read(path).expect("plugin built");
    // A runtime of its own, without the artifact cache: load compiles.
    let runtime = Runtime::new(RuntimeConfig {
        max_concurrent_calls: 4,
        warm_instances: 0,
        ..RuntimeConfig::default()
    })
    .expect("runtime starts");
    let started = Instant::now();
    let plugin: Arc<LoadedPlugin> = runtime.load(&bytes).expect("plugin loads");
    let compile = started.elapsed();
    let input = (&case.sale, &case.decision);

    let fresh =
        runtime.run::<hook::Commission>(&plugin, None, case.data.clone(), &case.quota, input);
    let (fresh_fuel, peak_memory) = (fresh.stats.fuel_used, fresh.stats.peak_memory_bytes);
    let decided = ok(name, fresh.outcome);
    if let Some(expected) = expected {
        assert_eq!(&decided, expected, "{name} decides as the Rust plugin does");
    }
    let mut session = runtime
        .session(&plugin, case.data.clone(), &case.quota)
        .expect("instantiates");
    for _ in 0..3 {
        assert_eq!(ok(name, session.run::<hook::Commission>(input)), decided);
    }
    let warm_fuel = session.last_fuel_used();

    let instantiate = median(15, 20, || {
        black_box(
            runtime
                .session(&plugin, case.data.clone(), &case.quota)
                .expect("instantiates"),
        );
    });
    let fresh_call = median(15, 20, || {
        black_box(
            runtime
                .run::<hook::Commission>(&plugin, None, case.data.clone(), &case.quota, input)
                .outcome,
        );
    });
    let warm_call = median(15, 200, || {
        black_box(ok(name, session.run::<hook::Commission>(input)));
    });
    let figures = Figures {
        size: bytes.len(),
        compile,
        instantiate,
        fresh_call,
        warm_call,
        fresh_fuel,
        warm_fuel,
        peak_memory,
    };
    (figures, decided)
}

fn main() {
    let base = BaseConfig::load(&base::default_dir()).expect("base loads");
    let sale = base::Sale {
        order_id: "order-1".into(),
        sku: "SKU-1".into(),
        category_id: "bags".into(),
        unit_price: 250_000,
        quantity: 1,
        currency: base.commission.currency.clone(),
        seller_id: Some("consignor-7".into()),
        attributes: vec![base::Attribute {
            key: "authenticated".into(),
            value: "true".into(),
        }],
    };
    let decision = base.decide_commission(&sale);
    let case = Case {
        data: Arc::new(StaticTenantData::with_settings(
            r#"{"cap": 120000, "tiers": [{"from": 0, "rate_bps": 2500}, {"from": 100000, "rate_bps": 1800}]}"#,
        )),
        // The default quota: what an installation gets unless an admin sets one.
        quota: Quota::default(),
        sale,
        decision,
    };

    let (rust, expected) = measure("rust", built_plugins::LUXURY_CONSIGNMENT, &case, None);
    let (js, _) = measure(
        "js",
        built_plugins::JS_LUXURY_CONSIGNMENT,
        &case,
        Some(&expected),
    );

    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    let secs = |d: Duration| d.as_secs_f64();
    println!(
        "\nluxury-consignment commission, Rust vs JavaScript (componentize-js), default quota"
    );
    println!("| figure | Rust | JS | JS/Rust |");
    println!("|---|---|---|---|");
    let rows: [(&str, String, String, f64); 8] = [
        (
            "component size",
            format!("{} KiB", rust.size / 1024),
            format!("{} KiB", js.size / 1024),
            ratio(js.size as f64, rust.size as f64),
        ),
        (
            "compile (load, no artifact cache)",
            format!("{:.0} ms", secs(rust.compile) * 1e3),
            format!("{:.0} ms", secs(js.compile) * 1e3),
            ratio(secs(js.compile), secs(rust.compile)),
        ),
        (
            "fresh instantiation",
            format!("{:.1} µs", secs(rust.instantiate) * 1e6),
            format!("{:.1} µs", secs(js.instantiate) * 1e6),
            ratio(secs(js.instantiate), secs(rust.instantiate)),
        ),
        (
            "fresh instantiation + call",
            format!("{:.1} µs", secs(rust.fresh_call) * 1e6),
            format!("{:.1} µs", secs(js.fresh_call) * 1e6),
            ratio(secs(js.fresh_call), secs(rust.fresh_call)),
        ),
        (
            "warm call",
            format!("{:.2} µs", secs(rust.warm_call) * 1e6),
            format!("{:.2} µs", secs(js.warm_call) * 1e6),
            ratio(secs(js.warm_call), secs(rust.warm_call)),
        ),
        (
            "fuel, fresh call",
            rust.fresh_fuel.to_string(),
            js.fresh_fuel.to_string(),
            ratio(js.fresh_fuel as f64, rust.fresh_fuel as f64),
        ),
        (
            "fuel, warm call",
            rust.warm_fuel.to_string(),
            js.warm_fuel.to_string(),
            ratio(js.warm_fuel as f64, rust.warm_fuel as f64),
        ),
        (
            "peak linear memory",
            format!("{} KiB", rust.peak_memory / 1024),
            format!("{} KiB", js.peak_memory / 1024),
            ratio(js.peak_memory as f64, rust.peak_memory as f64),
        ),
    ];
    for (figure, r, j, x) in rows {
        println!("| {figure} | {r} | {j} | {x:.1}× |");
    }
}
