//! Runtime micro-benchmarks, every figure against a baseline measured in the same
//! run:
//!
//! - each hook through the sandbox with a fresh store (instantiate + one call);
//! - the commission hook on a fresh store, on an already-instantiated plugin,
//!   and the same logic compiled natively (`plugin-luxury-consignment` as a rlib);
//! - the cheapest host-to-guest call (`describe` on a live instance);
//! - instantiation alone (fresh store + instantiate, no call);
//! - fuel vs epoch vs both vs neither on a compute-heavy plugin (the hostile
//!   plugin's `slow-ok` mode), each on an engine built with that
//!   [`Metering`] — the switch exists for this bench only;
//! - an effective-configuration lookup that hits the cache (key + moka get),
//!   against computing it.
//!
//! Every path's outcome is checked once before anything is timed, so a failing
//! call cannot pass for a fast one.
//!
//! `env -u RUST_BACKTRACE CARGO_TARGET_DIR=/var/tmp/veneer-bench cargo bench -p veneer --bench runtime`
//! — the summary at the end prints medians and ratios. Results and the date go in
//! docs/performance.md.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use plugin_luxury_consignment::LuxuryConsignment;
use veneer::base::{self, BaseConfig};
use veneer::cache::{Caches, EffectiveKey};
use veneer::resolve::{Budget, ChainStep, Resolver};
use veneer::runtime::hook;
use veneer::runtime::{
    LoadedPlugin, Metering, Outcome, OutcomeKind, Quota, Runtime, RuntimeConfig, Session,
    StaticTenantData, TenantData, WarmKey,
};
use veneer::tenancy::TenantId;
use veneer_plugin_artifacts as built_plugins;
use veneer_sdk::Plugin as _;

/// Rounds of the hostile plugin's `slow-ok` loop per call: long enough that the
/// loop, not instantiation, dominates (about a millisecond).
const SLOW_COUNT: u64 = 300_000;

struct Fixture {
    base: BaseConfig,
    runtime: Runtime,
    luxury: Arc<LoadedPlugin>,
    sneakers: Arc<LoadedPlugin>,
    email: Arc<LoadedPlugin>,
    data: Arc<dyn TenantData>,
    email_data: Arc<dyn TenantData>,
    quota: Quota,
    sale: base::Sale,
    decision: base::CommissionDecision,
    sdk_sale: veneer_sdk::Sale,
    sdk_decision: veneer_sdk::CommissionDecision,
}

fn load(runtime: &Runtime, path: &str) -> Arc<LoadedPlugin> {
    let bytes = std::fs::read(path).expect("plugin built");
    runtime.load(&bytes).expect("plugin loads")
}

fn fixture() -> Fixture {
    let runtime = Runtime::new(RuntimeConfig {
        max_concurrent_calls: 4,
        ..RuntimeConfig::default()
    })
    .expect("runtime starts");
    let base = BaseConfig::load(&base::default_dir()).expect("base loads");
    let luxury = load(&runtime, built_plugins::LUXURY_CONSIGNMENT);
    let sneakers = load(&runtime, built_plugins::SNEAKER_STORE);
    let email = load(&runtime, built_plugins::EMAIL_REBRAND);
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
        base,
        runtime,
        luxury,
        sneakers,
        email,
        data: Arc::new(StaticTenantData::with_settings("{}")),
        email_data: Arc::new(StaticTenantData::with_settings(
            r##"{"brand_name": "Acme", "primary_color": "#112233", "accent_color": "#445566"}"##,
        )),
        quota: Quota::default(),
        sale,
        decision,
        sdk_sale,
        sdk_decision,
    }
}

fn ok<T>(what: &str, outcome: Outcome<T>) -> T {
    match outcome {
        Outcome::Ok(value) => value,
        other => panic!("{what}: {} {:?}", other.kind(), other.message()),
    }
}

fn fresh_commission(f: &Fixture) -> Outcome<base::CommissionDecision> {
    f.runtime
        .run::<hook::Commission>(
            &f.luxury,
            None,
            f.data.clone(),
            &f.quota,
            (&f.sale, &f.decision),
        )
        .outcome
}

/// A quote through a chain of `keys.len()` installations of the luxury plugin,
/// each with its own warm instances, as the server runs a tenant's chain.
fn chain_commission(f: &Fixture, keys: &[WarmKey]) -> base::CommissionDecision {
    let names: Vec<String> = (0..keys.len()).map(|i| format!("i{i}")).collect();
    let steps: Vec<ChainStep<'_>> = keys
        .iter()
        .zip(&names)
        .enumerate()
        .map(|(i, (key, name))| ChainStep {
            installation: name,
            release: i as i64 + 1,
            plugin: Some(&f.luxury),
            warm: Some(key),
            data: f.data.clone(),
            quota: f.quota,
            policies: &[],
        })
        .collect();
    let resolved = Resolver::new(&f.runtime, &f.base)
        .commission_chain(&steps, &mut Budget::unlimited(), &f.sale)
        .expect("a valid sale");
    assert!(resolved.runs.iter().all(|r| r.outcome == OutcomeKind::Ok));
    resolved.value
}

/// The server's quote path: `run::<hook::Commission>` with the tenant's warm key, so
/// the call takes a warm instance from the runtime's pool and puts it back.
fn pooled_commission(f: &Fixture, key: &WarmKey) -> Outcome<base::CommissionDecision> {
    f.runtime
        .run::<hook::Commission>(
            &f.luxury,
            Some(key),
            f.data.clone(),
            &f.quota,
            (&f.sale, &f.decision),
        )
        .outcome
}

fn fresh_categories(f: &Fixture) -> Outcome<Vec<base::Category>> {
    f.runtime
        .run::<hook::Categories>(
            &f.luxury,
            None,
            f.data.clone(),
            &f.quota,
            &f.base.categories,
        )
        .outcome
}

fn fresh_size_charts(f: &Fixture) -> Outcome<Vec<base::SizeChart>> {
    f.runtime
        .run::<hook::SizeCharts>(
            &f.sneakers,
            None,
            f.data.clone(),
            &f.quota,
            &f.base.size_charts,
        )
        .outcome
}

fn fresh_email(f: &Fixture) -> Outcome<base::EmailTemplate> {
    let def = &f.base.emails["welcome"];
    f.runtime
        .run::<hook::Email>(
            &f.email,
            None,
            f.email_data.clone(),
            &f.quota,
            (&def.template, &def.sample),
        )
        .outcome
}

fn native(f: &Fixture) -> veneer_sdk::CommissionDecision {
    // The same work a fresh guest instance does: the plugin is built from
    // its settings, then asked.
    let ctx = veneer_sdk::Context::testing();
    let plugin: LuxuryConsignment = veneer_sdk::instantiate("{}", &ctx).expect("settings");
    plugin
        .commission(&ctx, &f.sdk_sale, f.sdk_decision.clone())
        .expect("native commission")
}

/// Calls on one live instance. A session shares its host-call byte budget
/// (quota `host_call_bytes`, 4 MiB) across its calls, and every commission call
/// reads the settings through a host call: after about two million calls the
/// session is rightly stopped. So a new session replaces it every
/// `WARM_CALLS_PER_SESSION` calls (its instantiation, ~6 µs, adds well under
/// 1 ns per call), and every outcome is checked — a failed call returns at once
/// and would otherwise pass for a fast one.
struct Warm<'a> {
    f: &'a Fixture,
    session: Session,
    calls: u32,
}

const WARM_CALLS_PER_SESSION: u32 = 10_000;

impl<'a> Warm<'a> {
    fn new(f: &'a Fixture) -> Self {
        let session = f
            .runtime
            .session(&f.luxury, f.data.clone(), &f.quota)
            .expect("instantiates");
        Self {
            f,
            session,
            calls: 0,
        }
    }

    fn session(&mut self) -> &mut Session {
        self.calls += 1;
        if self.calls > WARM_CALLS_PER_SESSION {
            *self = Self::new(self.f);
            self.calls = 1;
        }
        &mut self.session
    }

    fn commission(&mut self) -> base::CommissionDecision {
        let (sale, decision) = (&self.f.sale, &self.f.decision);
        ok(
            "warm commission",
            self.session().run::<hook::Commission>((sale, decision)),
        )
    }

    fn describe(&mut self) -> Vec<veneer::runtime::Hook> {
        ok("warm describe", self.session().describe())
    }
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

/// One engine per metering variant, each with the hostile plugin loaded and set
/// to do `SLOW_COUNT` rounds of arithmetic.
struct Metered {
    name: &'static str,
    runtime: Runtime,
    plugin: Arc<LoadedPlugin>,
}

fn metered(name: &'static str, fuel: bool, epoch: bool) -> Metered {
    let runtime = Runtime::new(RuntimeConfig {
        max_concurrent_calls: 2,
        metering: Metering { fuel, epoch },
        ..RuntimeConfig::default()
    })
    .expect("runtime starts");
    let plugin = load(&runtime, built_plugins::HOSTILE);
    Metered {
        name,
        runtime,
        plugin,
    }
}

fn slow_quota() -> Quota {
    Quota {
        fuel: 1_000_000_000,
        deadline_ms: 10_000,
        ..Quota::default()
    }
}

fn slow_data() -> Arc<dyn TenantData> {
    Arc::new(StaticTenantData::with_settings(format!(
        r#"{{"mode": "slow-ok", "count": {SLOW_COUNT}}}"#
    )))
}

fn slow_call(m: &Metered, f: &Fixture, data: &Arc<dyn TenantData>, quota: &Quota) -> u64 {
    let run = m.runtime.run::<hook::Commission>(
        &m.plugin,
        None,
        data.clone(),
        quota,
        (&f.sale, &f.decision),
    );
    assert!(matches!(run.outcome, Outcome::Ok(_)), "{}", m.name);
    run.stats.fuel_used
}

fn main() {
    let f = fixture();

    // Every path checked once, before any timing.
    let expected = ok("fresh commission", fresh_commission(&f));
    assert_eq!(
        expected.rule_id,
        native(&f).rule_id,
        "wasm and native agree"
    );
    assert_eq!(expected.fee, native(&f).fee, "wasm and native agree");
    ok("fresh categories", fresh_categories(&f));
    ok("fresh size charts", fresh_size_charts(&f));
    ok("fresh email", fresh_email(&f));
    let mut session = Warm::new(&f);
    for _ in 0..3 {
        assert_eq!(
            session.commission(),
            expected,
            "a warm call returns what a fresh one does"
        );
    }
    let warm_fuel = session.session.last_fuel_used();
    assert!(!session.describe().is_empty());
    assert_eq!(session.commission(), expected);

    let variants = [
        metered("fuel + epoch (production)", true, true),
        metered("fuel only", true, false),
        metered("epoch only", false, true),
        metered("neither", false, false),
    ];
    let (slow, quota) = (slow_data(), slow_quota());
    let slow_fuel = slow_call(&variants[0], &f, &slow, &quota);
    for m in &variants {
        slow_call(m, &f, &slow, &quota);
    }

    let tenant = TenantId::new("acme").expect("tenant id");
    let caches = Caches::new();
    // The data version stands for the live releases and the data.
    let key_for =
        |data_version: i64| EffectiveKey::new(&tenant, &f.base.version, data_version as u64);
    let compute = || {
        Resolver::new(&f.runtime, &f.base).effective(
            Some(&f.luxury),
            f.data.clone(),
            &f.quota,
            key_for(1).version(),
        )
    };
    let effective = Arc::new(compute());
    assert!(!effective.is_transient());
    caches.put_effective(key_for(1), effective);
    let cached = || caches.effective(&key_for(1)).expect("cache hit");
    cached();

    let warm_key = WarmKey::new("acme", 1);
    assert_eq!(ok("pooled", pooled_commission(&f, &warm_key)), expected);
    assert_eq!(ok("pooled", pooled_commission(&f, &warm_key)), expected);
    assert_eq!(f.runtime.warm_instances(), 1);

    let mut c = Criterion::default().configure_from_args();
    {
        let mut group = c.benchmark_group("commission");
        group.bench_function("wasm_fresh_store", |b| {
            b.iter(|| black_box(fresh_commission(&f)))
        });
        group.bench_function("wasm_warm_instance", |b| {
            b.iter(|| black_box(session.commission()))
        });
        group.bench_function("wasm_pooled_warm", |b| {
            b.iter(|| black_box(ok("pooled", pooled_commission(&f, &warm_key))))
        });
        group.bench_function("native", |b| b.iter(|| black_box(native(&f))));
        group.finish();
    }
    {
        let mut group = c.benchmark_group("fresh_store_hook");
        group.bench_function("categories", |b| b.iter(|| black_box(fresh_categories(&f))));
        group.bench_function("size_charts", |b| {
            b.iter(|| black_box(fresh_size_charts(&f)))
        });
        group.bench_function("commission", |b| b.iter(|| black_box(fresh_commission(&f))));
        group.bench_function("email", |b| b.iter(|| black_box(fresh_email(&f))));
        group.finish();
    }
    c.bench_function("instantiate_only", |b| {
        b.iter(|| black_box(f.runtime.session(&f.luxury, f.data.clone(), &f.quota)))
    });
    c.bench_function("noop_describe_warm", |b| {
        b.iter(|| black_box(session.describe()))
    });
    {
        let mut group = c.benchmark_group("metering_slow_ok");
        group.sample_size(30);
        for m in &variants {
            group.bench_function(m.name, |b| {
                b.iter(|| black_box(slow_call(m, &f, &slow, &quota)))
            });
        }
        group.finish();
    }
    {
        let mut group = c.benchmark_group("effective_config");
        group.bench_function("cache_hit", |b| b.iter(|| black_box(cached())));
        group.sample_size(20);
        group.bench_function("computed", |b| b.iter(|| black_box(compute())));
        group.finish();
    }
    c.final_summary();

    // Ratios from one interleaved measurement, so both sides see the same machine.
    let rounds = 41;
    let fresh_t = median(rounds, 200, || {
        black_box(fresh_commission(&f));
    });
    let native_t = median(rounds, 200, || {
        black_box(native(&f));
    });
    let warm_t = median(rounds, 200, || {
        black_box(session.commission());
    });
    let pooled_t = median(rounds, 200, || {
        ok("pooled", pooled_commission(&f, &warm_key));
    });
    let inst_t = median(rounds, 200, || {
        black_box(f.runtime.session(&f.luxury, f.data.clone(), &f.quota)).ok();
    });
    let noop_t = median(rounds, 1_000, || {
        black_box(session.describe());
    });
    let hit_t = median(rounds, 1_000, || {
        black_box(cached());
    });
    let computed_t = median(11, 5, || {
        black_box(compute());
    });
    let chain_keys: Vec<WarmKey> = (0..4).map(|i| WarmKey::new("chain", 100 + i)).collect();
    let chain_t: Vec<Duration> = [1, 2, 4]
        .iter()
        .map(|&n| {
            median(rounds, 200, || {
                black_box(chain_commission(&f, &chain_keys[..n]));
            })
        })
        .collect();
    let slow_t: Vec<Duration> = variants
        .iter()
        .map(|m| {
            median(11, 3, || {
                black_box(slow_call(m, &f, &slow, &quota));
            })
        })
        .collect();
    assert_eq!(session.commission(), expected);

    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!("\nsummary (median of {rounds} rounds, same run):");
    println!(
        "  fresh store + instantiate + commission  {:>10.2} µs",
        us(fresh_t)
    );
    println!(
        "  fresh store + instantiate (no call)     {:>10.2} µs",
        us(inst_t)
    );
    println!(
        "  warm instance commission                {:>10.2} µs",
        us(warm_t)
    );
    println!(
        "  pooled warm instance commission (server){:>10.2} µs",
        us(pooled_t)
    );
    println!(
        "  native commission                       {:>10.2} µs",
        us(native_t)
    );
    println!(
        "  no-op host->guest call (describe, warm) {:>10.2} µs",
        us(noop_t)
    );
    println!(
        "  ratio fresh/native  {:.1}x   warm/native  {:.2}x   pooled/native  {:.2}x",
        ratio(fresh_t, native_t),
        ratio(warm_t, native_t),
        ratio(pooled_t, native_t)
    );
    println!("  fuel per commission call (warm session, settings {{}}): {warm_fuel}");
    println!(
        "\n  compute-heavy plugin (slow-ok, {SLOW_COUNT} rounds, {slow_fuel} fuel), fresh store per call:"
    );
    let neither = slow_t[3];
    for (m, t) in variants.iter().zip(&slow_t) {
        println!(
            "    {:<28} {:>10.1} µs   vs neither {:+6.1} %",
            m.name,
            us(*t),
            (ratio(*t, neither) - 1.0) * 100.0
        );
    }
    println!("\n  quote through a chain of installations (pooled warm instances, as the server):");
    for (n, t) in [1, 2, 4].iter().zip(&chain_t) {
        println!(
            "    {n} installation(s)  {:>8.2} µs   vs 1: {:.2}x   vs native: {:.1}x",
            us(*t),
            ratio(*t, chain_t[0]),
            ratio(*t, native_t)
        );
    }
    println!(
        "\n  effective config, cache hit (key + get) {:>10.3} µs",
        us(hit_t)
    );
    println!(
        "  effective config, computed (all hooks)  {:>10.1} µs   ratio computed/hit {:.0}x",
        us(computed_t),
        ratio(computed_t, hit_t)
    );
}
