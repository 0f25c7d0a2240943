//! The demo: in development mode an empty database gets demo tenants, each with a
//! different example plugin active, and the server prints the commands that show
//! their effective configurations differ.

use crate::app::plugins::CompileError;
use crate::auth::{OrgRole, dev_token};
use crate::state::AppState;
use crate::storage::{NewPluginVersion, NewRelease, NewTenant};
use crate::tenancy::TenantId;

/// One demo tenant: id, name, plugin bytes (`None` in a binary built without the
/// `demo-plugins` feature), settings.
struct DemoTenant {
    id: &'static str,
    name: &'static str,
    /// The installation its plugin is installed as.
    installation: &'static str,
    plugin: Option<&'static [u8]>,
    settings: &'static str,
}

/// The example plugins' bytes, when this binary carries them.
#[cfg(feature = "demo-plugins")]
mod bytes {
    pub const LUXURY_CONSIGNMENT: Option<&[u8]> =
        Some(veneer_plugin_artifacts::bytes::LUXURY_CONSIGNMENT);
    pub const SNEAKER_STORE: Option<&[u8]> = Some(veneer_plugin_artifacts::bytes::SNEAKER_STORE);
    pub const DECLARATIVE_OVERRIDES: Option<&[u8]> =
        Some(veneer_plugin_artifacts::bytes::DECLARATIVE_OVERRIDES);
    pub const EMAIL_REBRAND: Option<&[u8]> = Some(veneer_plugin_artifacts::bytes::EMAIL_REBRAND);
}

#[cfg(not(feature = "demo-plugins"))]
mod bytes {
    pub const LUXURY_CONSIGNMENT: Option<&[u8]> = None;
    pub const SNEAKER_STORE: Option<&[u8]> = None;
    pub const DECLARATIVE_OVERRIDES: Option<&[u8]> = None;
    pub const EMAIL_REBRAND: Option<&[u8]> = None;
}

/// The example plugins the demo publishes in the platform's catalogue:
/// bytes, description, settings example.
const CATALOGUE: &[(Option<&[u8]>, &str, &str)] = &[
    (
        bytes::LUXURY_CONSIGNMENT,
        "Tiered consignment commission with a cap and a surcharge for unauthenticated items.",
        r#"{"cap": 120000, "unauthenticated_surcharge_bps": 500, "tiers": [{"from": 0, "rate_bps": 2500}, {"from": 100000, "rate_bps": 1800}]}"#,
    ),
    (
        bytes::SNEAKER_STORE,
        "Sneaker categories and EU/US shoe size charts.",
        r#"{"charts": ["shoes-men", "shoes-women"], "subcategories": true}"#,
    ),
    (
        bytes::EMAIL_REBRAND,
        "Brands every transactional email: colours, name, reply-to and footer.",
        r##"{"brand_name": "Your Shop", "primary_color": "#0a0a0a", "accent_color": "#c9a227"}"##,
    ),
    (
        bytes::DECLARATIVE_OVERRIDES,
        "No-code overrides: JSON patches for categories, size charts, emails and commission rules.",
        r#"{"categories": [{"op": "replace", "path": "/0/name", "value": "Ready to wear"}]}"#,
    ),
];

/// Whether this binary carries the demo tenants' plugins (feature `demo-plugins`).
pub const HAS_PLUGINS: bool = cfg!(feature = "demo-plugins");

const TENANTS: &[DemoTenant] = &[
    DemoTenant {
        id: "acme",
        name: "Acme Luxury Consignment",
        installation: "commission",
        plugin: bytes::LUXURY_CONSIGNMENT,
        settings: r#"{"cap": 120000, "unauthenticated_surcharge_bps": 500, "tiers": [{"from": 0, "rate_bps": 2500}, {"from": 100000, "rate_bps": 1800}, {"from": 500000, "rate_bps": 1200}]}"#,
    },
    DemoTenant {
        id: "globex",
        name: "Globex Sneakers",
        installation: "catalog",
        plugin: bytes::SNEAKER_STORE,
        settings: r#"{"charts": ["shoes-men", "shoes-women"], "subcategories": true}"#,
    },
    DemoTenant {
        id: "initech",
        name: "Initech Outlet",
        installation: "overrides",
        plugin: bytes::DECLARATIVE_OVERRIDES,
        settings: r#"{"categories": [{"op": "add", "path": "/-", "value": {"id": "outlet", "parent": null, "name": "Outlet", "slug": "outlet", "position": 99, "attributes": []}}], "commission": [{"when": {"min_gross": 0}, "patch": [{"op": "replace", "path": "/rate_bps", "value": 900}]}]}"#,
    },
];

/// Seeds the demo tenants when there are no tenants yet. Returns whether it did.
/// A binary built without the `demo-plugins` feature seeds them without
/// plugins (they serve the base configuration) and says so.
pub async fn seed_if_empty(app: &AppState) -> anyhow::Result<bool> {
    let platform = app.storage.platform();
    if !platform.list_tenants().await?.is_empty() {
        return Ok(false);
    }
    if !HAS_PLUGINS {
        tracing::warn!(
            "this binary was built without the demo plugins (feature `demo-plugins`): the demo \
             tenants serve the base configuration until a plugin is uploaded; \
             `cargo run --release -p veneer --features demo-plugins -- serve --dev` seeds them with the examples"
        );
    }
    for demo in TENANTS {
        let id = TenantId::new(demo.id)?;
        platform
            .create_tenant(&NewTenant {
                id: id.clone(),
                org_id: format!("org_{}", demo.id),
                name: demo.name.to_owned(),
                rate_limit_per_sec: 500,
                rate_limit_burst: 1_000,
                max_concurrency: 4,
            })
            .await?;
        let Some(bytes) = demo.plugin else {
            continue;
        };
        let plugin = match crate::app::plugins::compile(app, None, bytes.to_vec()).await {
            Ok(plugin) => plugin,
            Err(CompileError::Check(err)) => {
                anyhow::bail!("demo plugin for {} is refused: {err}", demo.id)
            }
            Err(CompileError::App(err)) => anyhow::bail!(
                "demo plugin for {} did not compile: {}",
                demo.id,
                err.code()
            ),
        };
        let info = plugin.info();
        let hooks: Vec<String> = info.hooks.iter().map(|h| h.as_str().to_owned()).collect();
        let db = app.storage.tenant(&id);
        db.put_plugin_version(&NewPluginVersion {
            sha256: &info.sha256,
            name: &info.name,
            version: &info.version,
            hooks: &hooks,
            size_bytes: info.size_bytes as u64,
            binary: bytes,
            uploaded_by: "demo",
            about: crate::app::plugins::about(info),
        })
        .await?;
        db.create_installation(demo.installation, "demo").await?;
        let release = db
            .create_release(&NewRelease {
                installation: demo.installation,
                sha256: &info.sha256,
                settings: demo.settings,
                quota: &serde_json::to_string(&crate::runtime::Quota::default())?,
                note: Some("demo"),
                created_by: "demo",
            })
            .await?;
        db.activate_release(demo.installation, release.id, "activate", "demo")
            .await?;
        db.audit("demo", "demo.seed", Some(&info.sha256), None, None)
            .await?;
    }
    for (bytes, description, example) in CATALOGUE {
        let Some(bytes) = bytes else {
            continue;
        };
        let example: serde_json::Value = serde_json::from_str(example)?;
        if let Err(err) =
            crate::app::catalogue::publish(app, "demo", bytes.to_vec(), description, &example).await
        {
            anyhow::bail!("publishing a demo plugin in the catalogue failed: {err}");
        }
    }
    Ok(true)
}

/// The commands that show the demo, for the server's start-up message.
pub fn instructions(base_domain: &str, port: u16) -> String {
    let mut out = String::from("\nDemo tenants (development mode; tokens valid for 24 h):\n\n");
    for demo in TENANTS {
        let token = dev_token(
            &format!("org_{}", demo.id),
            OrgRole::Admin,
            &format!("user_{}_admin", demo.id),
            false,
            std::time::Duration::from_secs(24 * 3600),
        );
        let var = format!("{}_TOKEN", demo.id.to_uppercase());
        out.push_str(&format!("  export {var}={token}\n"));
    }
    out.push('\n');
    for demo in TENANTS {
        let var = format!("{}_TOKEN", demo.id.to_uppercase());
        out.push_str(&format!(
            "  curl -s -H \"Authorization: Bearer ${var}\" http://{}.{base_domain}:{port}/v1/config/categories\n",
            demo.id
        ));
    }
    out.push_str(&format!(
        "\n  curl -s -H \"Authorization: Bearer $ACME_TOKEN\" -H 'Content-Type: application/json' \\\n    -d '{{\"order_id\":\"o-1\",\"sku\":\"bag-1\",\"category_id\":\"bags\",\"unit_price\":250000,\"quantity\":1,\"currency\":\"EUR\"}}' \\\n    http://acme.{base_domain}:{port}/v1/commission/quote\n"
    ));
    out.push_str(&format!(
        "  (same quote for globex: http://globex.{base_domain}:{port}/v1/commission/quote with $GLOBEX_TOKEN)\n\n  A platform-admin token: veneer dev-token --platform-admin; admin API at http://{base_domain}:{port}/v1/admin/tenants\n"
    ));
    out
}
