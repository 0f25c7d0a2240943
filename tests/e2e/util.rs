//! The shared harness: one runtime per test binary (as in the server, many calls
//! share one engine), the repository's base configuration, fixtures and helpers.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use veneer::base::{Attribute, BaseConfig, Sale};
use veneer::runtime::{
    LoadedPlugin, Runtime, RuntimeConfig, StaticTenantData, TenantData, WitVersion,
};
use veneer_plugin_artifacts as built_plugins;

pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new(RuntimeConfig::default()).expect("runtime starts"))
}

pub fn base() -> &'static BaseConfig {
    static BASE: OnceLock<BaseConfig> = OnceLock::new();
    BASE.get_or_init(|| BaseConfig::load(&veneer::base::default_dir()).expect("base-config loads"))
}

pub fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|err| panic!("cannot read {path}: {err}"))
}

pub fn load(path: &str) -> Arc<LoadedPlugin> {
    runtime()
        .load(&read(path))
        .unwrap_or_else(|err| panic!("{path} should load: {err}"))
}

pub fn hostile() -> Arc<LoadedPlugin> {
    load(built_plugins::HOSTILE)
}

pub fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

/// A fixture's bytes; `.wat` fixtures are assembled from their text.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixture_path(name);
    let bytes =
        std::fs::read(&path).unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    if name.ends_with(".wat") {
        wat::parse_bytes(&bytes)
            .expect("fixture assembles")
            .into_owned()
    } else {
        bytes
    }
}

pub fn settings(json: &str) -> Arc<dyn TenantData> {
    Arc::new(StaticTenantData::with_settings(json))
}

pub fn tenant(json: &str, kv: &[(&str, &str)]) -> Arc<dyn TenantData> {
    Arc::new(StaticTenantData {
        settings: json.to_owned(),
        kv: kv
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
    })
}

pub fn sale(category_id: &str, unit_price: u64) -> Sale {
    Sale {
        order_id: "order-1".into(),
        sku: "SKU-1".into(),
        category_id: category_id.into(),
        unit_price,
        quantity: 1,
        currency: base().commission.currency.clone(),
        seller_id: Some("seller-1".into()),
        attributes: vec![Attribute {
            key: "authenticated".into(),
            value: "true".into(),
        }],
    }
}

/// A component built for one contract version, with settings it serves well
/// and a sale category its commission hook changes.
#[derive(Debug, Clone, Copy)]
pub struct WitFixture {
    /// The component's path.
    pub path: &'static str,
    /// The version it must load as.
    pub version: WitVersion,
    /// Settings it takes (a JSON object).
    pub settings: &'static str,
}

/// Components of every contract version the host serves: the tests of the
/// versions (`wit_versions`, `server::wit_versions`) run over each row, so a
/// plugin's frozen 0.1.0 build and its 0.2.0 rebuild are one row each.
pub const WIT_FIXTURES: &[WitFixture] = &[
    // The luxury example's frozen 0.1.0 build and its SDK v2 (0.2.0) rebuild.
    WitFixture {
        path: built_plugins::v0_1_0::LUXURY_CONSIGNMENT,
        version: WitVersion::V0_1_0,
        settings: r#"{"cap": 120000, "tiers": [{"from": 0, "rate_bps": 2500}]}"#,
    },
    WitFixture {
        path: built_plugins::LUXURY_CONSIGNMENT,
        version: WitVersion::V0_2_0,
        settings: r#"{"cap": 120000, "tiers": [{"from": 0, "rate_bps": 2500}]}"#,
    },
    WitFixture {
        path: built_plugins::WIT_V2_FIXTURE,
        version: WitVersion::V0_2_0,
        settings: r#"{"rates": [{"category": "bags", "bps": 900}], "keywords": [{"keyword": "jordan", "category": "sneakers-basketball"}, {"keyword": "mystery", "category": "no-such-category"}]}"#,
    },
];
