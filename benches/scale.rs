//! Scale on one node (docs/performance.md):
//!
//! 1. **10,000 tenants sharing 10 plugins**: seeds a fresh SQLite database
//!    through the storage API (the same calls the admin and plugin APIs make),
//!    then, in a fresh process, builds the server state and makes every tenant
//!    ready (tenant state loaded and cached, its plugin loaded, one commission
//!    quote resolved): start-up time, time until every tenant is served, RSS.
//! 2. **1,000 distinct plugins stored**: loads them into a fresh runtime with an
//!    empty artifact cache (cold: every one compiled) and, in a fresh process,
//!    with the cache filled (warm: every one deserialized): time and RSS. Then
//!    the same through the server: 1,000 tenants, each with its own plugin,
//!    seeded on a filled artifact cache; a restart builds the state and serves
//!    every tenant one quote (each plugin read from the database, loaded from
//!    the artifact cache, run).
//!
//! Distinct plugins are the luxury-consignment component with a custom section
//! naming its index appended: a different sha256, so a different plugin to the
//! host, the same code. Compiling 1,000 of them on 2 cores takes long, so the
//! cold figure is measured on `SCALE_COLD_PLUGINS` (default 40) and given per
//! plugin; the warm cache for the other plugins is filled by copying the
//! artifact of an identical-code variant under their hashes (what compiling
//! each would have written, byte for byte apart from nothing the loader reads).
//!
//! 3. **Churn**: 5,000 loads cycling through the distinct plugins on a runtime
//!    whose loaded-plugin cache holds far fewer (`SCALE_CHURN_LOADED_MIB`,
//!    default 128), so every load releases another: resident memory after each
//!    500 loads, which must stay flat after warm-up. `SCALE_ONLY=churn` runs
//!    this part alone.
//!
//! `env -u RUST_BACKTRACE CARGO_TARGET_DIR=/var/tmp/veneer-bench cargo bench -p veneer --bench scale`
//! (env: SCALE_TENANTS=10000 SCALE_SHARED_PLUGINS=10 SCALE_PLUGINS=1000
//! SCALE_CHURN_LOADS=5000).
//! Each measured phase runs in its own process, so RSS is that phase's alone.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use veneer::base::{self, BaseConfig};
use veneer::config::ServeConfig;
use veneer::resolve::{Resolver, Source};
use veneer::runtime::{Runtime, RuntimeConfig};
use veneer::state::AppState;
use veneer::storage::{NewPluginVersion, NewRelease, NewTenant};
use veneer::tenancy::TenantId;
use veneer_plugin_artifacts as built_plugins;

const LUXURY_SETTINGS: &str = r#"{"cap": 120000, "unauthenticated_surcharge_bps": 500, "tiers": [{"from": 0, "rate_bps": 2500}, {"from": 100000, "rate_bps": 1800}, {"from": 500000, "rate_bps": 1200}]}"#;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The component with a custom section appended: same code, another hash.
fn variant(bytes: &[u8], index: usize) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = u8::try_from(n & 0x7f).unwrap_or(0);
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"veneer-bench-variant";
    let payload = index.to_string().into_bytes();
    let mut body = Vec::new();
    leb(name.len(), &mut body);
    body.extend_from_slice(name);
    body.extend_from_slice(&payload);
    let mut out = bytes.to_vec();
    out.push(0);
    leb(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn luxury() -> Vec<u8> {
    std::fs::read(built_plugins::LUXURY_CONSIGNMENT).expect("plugin built")
}

fn config(dir: &Path) -> ServeConfig {
    let mut config =
        ServeConfig::for_tests(format!("sqlite://{}", dir.join("veneer.db").display()));
    config.artifact_dir = dir.join("artifacts");
    config.max_concurrent_calls = 64;
    config.worker_concurrency = 0;
    config
}

fn tenant_id(i: usize) -> TenantId {
    TenantId::new(format!("t{i:05}")).expect("tenant id")
}

fn sale() -> base::Sale {
    base::Sale {
        order_id: "o-1".into(),
        sku: "bag-1".into(),
        category_id: "bags".into(),
        unit_price: 250_000,
        quantity: 1,
        currency: "EUR".into(),
        seller_id: None,
        attributes: Vec::new(),
    }
}

async fn seed(dir: &Path, tenants: usize, plugins: usize) -> anyhow::Result<()> {
    let app = AppState::build(config(dir)).await?;
    let bytes = luxury();
    let mut loaded = Vec::new();
    for p in 0..plugins {
        let bytes = variant(&bytes, p);
        let plugin = match veneer::app::plugins::compile(&app, None, bytes.clone()).await {
            Ok(plugin) => plugin,
            Err(_) => anyhow::bail!("variant {p} does not load"),
        };
        loaded.push((bytes, plugin));
    }
    let platform = app.storage.platform();
    for i in 0..tenants {
        let id = tenant_id(i);
        platform
            .create_tenant(&NewTenant {
                id: id.clone(),
                org_id: format!("org_{id}"),
                name: format!("Tenant {i}"),
                rate_limit_per_sec: 500,
                rate_limit_burst: 1_000,
                max_concurrency: 4,
            })
            .await?;
        let (bytes, plugin) = &loaded[i % plugins];
        let info = plugin.info();
        let hooks: Vec<String> = info.hooks.iter().map(|h| h.as_str().to_owned()).collect();
        let db = app.storage.tenant(&id);
        db.put_plugin_version(&NewPluginVersion {
            sha256: &info.sha256,
            name: &info.name,
            version: &info.version,
            hooks: &hooks,
            size_bytes: bytes.len() as u64,
            binary: bytes,
            uploaded_by: "scale-bench",
            about: veneer::app::plugins::about(info),
        })
        .await?;
        db.create_installation("commission", "scale-bench").await?;
        let release = db
            .create_release(&NewRelease {
                installation: "commission",
                sha256: &info.sha256,
                settings: LUXURY_SETTINGS,
                quota: "{}",
                note: None,
                created_by: "scale-bench",
            })
            .await?;
        db.activate_release("commission", release.id, "activate", "scale-bench")
            .await?;
    }
    Ok(())
}

/// A restart: build the state, then make every tenant ready.
async fn start(dir: &Path, tenants: usize) -> anyhow::Result<()> {
    let mut from_cache = 0;
    let rss_before = rss_mib();
    let started = Instant::now();
    let app = AppState::build(config(dir)).await?;
    let built = started.elapsed();
    let rss_built = rss_mib();
    let sale = sale();
    for i in 0..tenants {
        let id = tenant_id(i);
        let tenant = app
            .tenant_state(&id)
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?
            .ok_or_else(|| anyhow::anyhow!("tenant {id} missing"))?;
        let step = tenant
            .chain
            .first()
            .ok_or_else(|| anyhow::anyhow!("tenant {id} has no plugin"))?;
        let plugin = veneer::app::plugins::load(&app, &id, &step.sha256)
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        from_cache += usize::from(plugin.from_artifact_cache());
        let base = app.base();
        let resolved = Resolver::new(&app.runtime, &base).commission(
            Some(&plugin),
            Some(step.warm_key()),
            step.data(),
            &step.quota,
            &sale,
        )?;
        anyhow::ensure!(
            resolved.source == Source::Plugin,
            "tenant {id}: {resolved:?}"
        );
    }
    let ready = started.elapsed();
    println!(
        "RESULT tenants={tenants} plugins_loaded={} from_artifact_cache={from_cache} state_built_ms={:.0} all_tenants_served_ms={:.0} rss_before_mib={rss_before:.0} rss_after_build_mib={rss_built:.0} rss_all_ready_mib={:.0}",
        app.runtime.loaded_count(),
        built.as_secs_f64() * 1e3,
        ready.as_secs_f64() * 1e3,
        rss_mib()
    );
    Ok(())
}

fn plugin_runtime(dir: &Path) -> Runtime {
    Runtime::new(RuntimeConfig {
        artifact_dir: Some(dir.join("plugin-artifacts")),
        artifact_key: Some([5; 32]),
        max_concurrent_calls: 8,
        ..RuntimeConfig::default()
    })
    .expect("runtime starts")
}

/// Loads `loads` plugins cycling through variants `0..count` on a runtime
/// holding `SCALE_CHURN_LOADED_MIB` of them; prints RSS every 500 loads.
fn churn(dir: &Path, count: usize, loads: usize) {
    let bytes = luxury();
    let variants: Vec<Vec<u8>> = (0..count).map(|i| variant(&bytes, i)).collect();
    let cap_mib = env_usize("SCALE_CHURN_LOADED_MIB", 128);
    let runtime = Runtime::new(RuntimeConfig {
        artifact_dir: Some(dir.join("plugin-artifacts")),
        artifact_key: Some([5; 32]),
        max_concurrent_calls: 8,
        loaded_bytes: u64::try_from(cap_mib).unwrap_or(128) << 20,
        ..RuntimeConfig::default()
    })
    .expect("runtime starts");
    let started = Instant::now();
    let mut rss = Vec::new();
    for i in 0..loads {
        runtime
            .load(&variants[i % count.max(1)])
            .expect("variant loads");
        if (i + 1) % 500 == 0 {
            rss.push(format!("{:.0}", rss_mib()));
        }
    }
    println!(
        "RESULT phase=churn loads={loads} distinct={count} loaded_cap_mib={cap_mib} loaded_now={} loaded_mib={:.0} per_load_ms={:.2} rss_mib_every_500=[{}]",
        runtime.loaded_count(),
        runtime.loaded_bytes() as f64 / f64::from(1 << 20),
        started.elapsed().as_secs_f64() * 1e3 / loads.max(1) as f64,
        rss.join(",")
    );
}

/// Loads variants `0..count` into a fresh runtime; prints time and RSS.
fn load_plugins(dir: &Path, phase: &str, count: usize) {
    let bytes = luxury();
    let variants: Vec<Vec<u8>> = (0..count).map(|i| variant(&bytes, i)).collect();
    let rss_before = rss_mib();
    let started = Instant::now();
    let runtime = plugin_runtime(dir);
    let mut cached = 0;
    let mut kept = Vec::with_capacity(count);
    for v in &variants {
        let plugin = runtime.load(v).expect("variant loads");
        cached += usize::from(plugin.from_artifact_cache());
        kept.push(plugin);
    }
    let elapsed = started.elapsed();
    println!(
        "RESULT phase={phase} plugins={count} from_artifact_cache={cached} total_ms={:.0} per_plugin_ms={:.2} rss_before_mib={rss_before:.0} rss_after_mib={:.0}",
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e3 / count.max(1) as f64,
        rss_mib()
    );
}

/// Fills the artifact cache `into` for variants `from..to` by copying variant
/// 0's artifact from `dir`'s runtime cache under their hashes (see the module docs).
fn fill_cache(dir: &Path, into: &Path, from: usize, to: usize) {
    let art = dir.join("plugin-artifacts");
    std::fs::create_dir_all(into).expect("artifact dir");
    let bytes = luxury();
    let first = Runtime::hash(&variant(&bytes, 0));
    let source: PathBuf = std::fs::read_dir(&art)
        .expect("artifact dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&first) && n.ends_with(".cwasm"))
        })
        .expect("variant 0 compiled");
    let name = source
        .file_name()
        .and_then(|n| n.to_str())
        .expect("utf-8 name")
        .to_owned();
    for i in from..to {
        let sha = Runtime::hash(&variant(&bytes, i));
        std::fs::copy(&source, into.join(name.replacen(&first, &sha, 1))).expect("copy artifact");
    }
}

fn child(phase: &str, dir: &Path) {
    let status = Command::new(std::env::current_exe().expect("own path"))
        .env("VENEER_SCALE_PHASE", phase)
        .env("VENEER_SCALE_DIR", dir)
        .status()
        .expect("runs the phase");
    assert!(status.success(), "phase {phase} failed");
}

fn main() -> anyhow::Result<()> {
    let tenants = env_usize("SCALE_TENANTS", 10_000);
    let shared = env_usize("SCALE_SHARED_PLUGINS", 10);
    let plugins = env_usize("SCALE_PLUGINS", 1_000);
    let cold = env_usize("SCALE_COLD_PLUGINS", 40).min(plugins);
    let phase = std::env::var("VENEER_SCALE_PHASE").ok();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let loads = env_usize("SCALE_CHURN_LOADS", 5_000);
    let Some(phase) = phase else {
        let _ = BaseConfig::load(&base::default_dir())?;
        let dir = tempfile::tempdir()?;
        if std::env::var("SCALE_ONLY").as_deref() == Ok("churn") {
            child("compile-one", dir.path());
            fill_cache(dir.path(), &dir.path().join("plugin-artifacts"), 1, plugins);
            child("churn", dir.path());
            return Ok(());
        }
        let started = Instant::now();
        child("seed", dir.path());
        println!(
            "RESULT phase=seed tenants={tenants} plugins={shared} seed_ms={:.0}",
            started.elapsed().as_secs_f64() * 1e3
        );
        child("start", dir.path());
        child("start", dir.path());
        child("cold", dir.path());
        fill_cache(
            dir.path(),
            &dir.path().join("plugin-artifacts"),
            cold,
            plugins,
        );
        child("warm", dir.path());
        child("churn", dir.path());
        // The same through a server: one tenant per distinct plugin, seeded on
        // a filled artifact cache, then restarted and every tenant served once.
        let distinct = dir.path().join("distinct");
        fill_cache(dir.path(), &distinct.join("artifacts"), 0, plugins);
        child("seed-distinct", &distinct);
        child("start-distinct", &distinct);
        return Ok(());
    };
    let dir = PathBuf::from(std::env::var("VENEER_SCALE_DIR")?);
    match phase.as_str() {
        "seed" => rt.block_on(seed(&dir, tenants, shared))?,
        "start" => rt.block_on(start(&dir, tenants))?,
        "cold" => load_plugins(&dir, "cold", cold),
        "warm" => load_plugins(&dir, "warm", plugins),
        "compile-one" => load_plugins(&dir, "cold", 1),
        "churn" => churn(&dir, plugins, loads),
        "seed-distinct" => rt.block_on(seed(&dir, plugins, plugins))?,
        "start-distinct" => rt.block_on(start(&dir, plugins))?,
        other => anyhow::bail!("unknown phase {other}"),
    }
    Ok(())
}
