//! Benchmarks only (cargo feature `bench-native`): the luxury-consignment
//! plugin's commission hook compiled into the host, so the load benchmark can
//! put the Wasm path beside the same logic run natively (docs/performance.md).
//! A server started with `--bench-native` uses it for tenants whose active
//! plugin names itself `plugin-luxury-consignment`; inputs, settings, output
//! validation and fallback are those of the Wasm path (the resolver runs both).
//! It has no sandbox at all: never enable it outside a benchmark.

use std::time::Instant;

use plugin_luxury_consignment::LuxuryConsignment;
use veneer_sdk::Plugin as _;

use crate::base::{CommissionDecision, Sale};
use crate::runtime::{LoadedPlugin, Outcome, Run, RunStats, TenantData};

/// The plugin name the native path stands in for.
pub const PLUGIN_NAME: &str = "plugin-luxury-consignment";

/// Whether `plugin` is the one compiled in.
pub fn applies(plugin: &LoadedPlugin) -> bool {
    plugin.info().name == PLUGIN_NAME
}

/// Runs the commission hook natively, with the tenant's settings.
pub fn commission(
    data: &dyn TenantData,
    sale: &Sale,
    base: &CommissionDecision,
) -> Run<CommissionDecision> {
    let started = Instant::now();
    let ctx = veneer_sdk::Context::testing();
    // Built per call from the tenant's settings, as a fresh instance is.
    let plugin = match veneer_sdk::instantiate::<LuxuryConsignment>(data.settings_json(), &ctx) {
        Ok(plugin) => plugin,
        Err(err) => {
            return Run {
                outcome: Outcome::PluginError {
                    code: err.code,
                    message: err.message,
                },
                stats: stats(started),
            };
        }
    };
    let sdk_sale = veneer_sdk::Sale {
        order_id: sale.order_id.clone(),
        sku: sale.sku.clone(),
        category_id: sale.category_id.clone(),
        unit_price: sale.unit_price,
        quantity: sale.quantity,
        currency: sale.currency.clone(),
        seller_id: sale.seller_id.clone(),
        attributes: sale
            .attributes
            .iter()
            .map(|a| veneer_sdk::Attribute::new(a.key.clone(), a.value.clone()))
            .collect(),
    };
    let sdk_base = veneer_sdk::CommissionDecision {
        rule_id: base.rule_id.clone(),
        rate_bps: base.rate_bps,
        min_fee: base.min_fee,
        max_fee: base.max_fee,
        fee: base.fee,
        note: base.note.clone(),
    };
    let outcome = match plugin.commission(&ctx, &sdk_sale, sdk_base) {
        Ok(d) => Outcome::Ok(CommissionDecision {
            rule_id: d.rule_id,
            rate_bps: d.rate_bps,
            min_fee: d.min_fee,
            max_fee: d.max_fee,
            fee: d.fee,
            note: d.note,
        }),
        Err(err) => Outcome::PluginError {
            code: err.code,
            message: err.message,
        },
    };
    Run {
        outcome,
        stats: stats(started),
    }
}

/// A native run's statistics: only its wall time is measured.
fn stats(started: Instant) -> RunStats {
    RunStats {
        fuel_used: 0,
        peak_memory_bytes: 0,
        wall_time: started.elapsed(),
        output_bytes: 0,
        logs: Vec::new(),
        logs_truncated: false,
    }
}
