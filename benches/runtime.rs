//! Runtime micro-benchmarks: the commission hook of the luxury-consignment plugin
//! through the sandbox (fresh store per call, and a warm instance) against the
//! same logic compiled natively, plus the cheapest host-to-guest call.
//!
//! `cargo bench -p veneer --bench runtime` — then a summary prints the ratios
//! measured in this same run. Unset RUST_BACKTRACE first (it makes every error
//! capture a backtrace). Results and the date go in docs/performance.md.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use plugin_luxury_consignment::LuxuryConsignment;
use veneer::base::{self, BaseConfig};
use veneer::built_plugins;
use veneer::runtime::{Outcome, Quota, Runtime, RuntimeConfig, StaticTenantData, TenantData};
use veneer_sdk::Plugin as _;

struct Fixture {
    runtime: Runtime,
    plugin: Arc<veneer::runtime::LoadedPlugin>,
    data: Arc<dyn TenantData>,
    quota: Quota,
    sale: base::Sale,
    decision: base::CommissionDecision,
    sdk_sale: veneer_sdk::Sale,
    sdk_decision: veneer_sdk::CommissionDecision,
}

fn fixture() -> Fixture {
    let runtime = Runtime::new(RuntimeConfig::default()).expect("runtime starts");
    let base = BaseConfig::load(&base::default_dir()).expect("base loads");
    let bytes = std::fs::read(built_plugins::LUXURY_CONSIGNMENT).expect("plugin built");
    let plugin = runtime.load(&bytes).expect("plugin loads");
    let sale = base::Sale {
        order_id: "order-1".into(),
        sku: "SKU-1".into(),
        category_id: "bags".into(),
        unit_price: 250_000,
        quantity: 1,
        currency: base.commission.currency.clone(),
        seller_id: Some("seller-1".into()),
        attributes: vec![base::Attribute {
            key: "authenticated".into(),
            value: "true".into(),
        }],
    };
    let decision = base.decide_commission(&sale);
    let sdk_sale = veneer_sdk::Sale {
        order_id: sale.order_id.clone(),
        sku: sale.sku.clone(),
        category_id: sale.category_id.clone(),
        unit_price: sale.unit_price,
        quantity: sale.quantity,
        currency: sale.currency.clone(),
        seller_id: sale.seller_id.clone(),
        attributes: vec![veneer_sdk::Attribute::new("authenticated", "true")],
    };
    let sdk_decision = veneer_sdk::CommissionDecision {
        rule_id: decision.rule_id.clone(),
        rate_bps: decision.rate_bps,
        min_fee: decision.min_fee,
        max_fee: decision.max_fee,
        fee: decision.fee,
        note: decision.note.clone(),
    };
    Fixture {
        runtime,
        plugin,
        data: Arc::new(StaticTenantData::with_settings("{}")),
        quota: Quota::default(),
        sale,
        decision,
        sdk_sale,
        sdk_decision,
    }
}

fn fresh(f: &Fixture) {
    let run = f
        .runtime
        .commission(&f.plugin, f.data.clone(), &f.quota, &f.sale, &f.decision);
    assert!(matches!(run.outcome, Outcome::Ok(_)));
    black_box(run);
}

fn native(f: &Fixture) {
    // The same work the guest does: settings come from the context and are parsed.
    let ctx = veneer_sdk::Context::testing().with_settings("{}");
    let out = LuxuryConsignment::commission(&ctx, &f.sdk_sale, f.sdk_decision.clone());
    black_box(out.expect("native commission"));
}

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

fn main() {
    let f = fixture();
    let mut session = f
        .runtime
        .session(&f.plugin, f.data.clone(), &f.quota)
        .expect("instantiates");

    let mut c = Criterion::default().configure_from_args();
    {
        let mut group = c.benchmark_group("commission");
        group.bench_function("wasm_fresh_store", |b| b.iter(|| fresh(&f)));
        group.bench_function("wasm_warm_instance", |b| {
            b.iter(|| black_box(session.commission(&f.sale, &f.decision)))
        });
        group.bench_function("native", |b| b.iter(|| native(&f)));
        group.finish();
    }
    c.bench_function("noop_describe_warm", |b| {
        b.iter(|| black_box(session.describe()))
    });
    c.final_summary();

    // Ratios from one interleaved measurement, so both sides see the same machine.
    let rounds = 41;
    let fresh_t = median(rounds, 200, || fresh(&f));
    let native_t = median(rounds, 200, || native(&f));
    let warm_t = median(rounds, 200, || {
        black_box(session.commission(&f.sale, &f.decision));
    });
    println!("\nsummary (median of {rounds} rounds, same run):");
    println!("  fresh store + instantiate + commission  {fresh_t:>10.2?}");
    println!("  warm instance commission                {warm_t:>10.2?}");
    println!("  native commission                       {native_t:>10.2?}");
    println!(
        "  ratio fresh/native  {:.1}x   warm/native  {:.1}x",
        fresh_t.as_secs_f64() / native_t.as_secs_f64(),
        warm_t.as_secs_f64() / native_t.as_secs_f64()
    );
    println!("  fuel per commission call: {}", session.last_fuel_used());
}
