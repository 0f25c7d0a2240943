//! The platform's catalogue of stock plugins as use cases: a platform admin
//! publishes a component (checked and compiled like an upload, its name,
//! version and hooks taken from what it describes, with a description and a
//! settings example), every tenant lists the catalogue, and a tenant admin
//! installs a stock plugin as a release of one of its installations without
//! uploading anything: the component is copied into the tenant's own plugin
//! versions, so its releases, quotas and runs stay the tenant's own.

use serde_json::json;

use super::plugins::{CompileError, compile};
use super::{Error, Result};
use crate::state::AppState;
use crate::storage::{CatalogueEntry, NewCatalogueEntry, NewPluginVersion, PluginAbout};
use crate::tenancy::TenantId;

/// Largest description of a stock plugin, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 2_000;

/// Publishes `bytes` as a stock plugin, as `actor` (the entry keeps who
/// published it and when).
pub async fn publish(
    app: &AppState,
    actor: &str,
    bytes: Vec<u8>,
    description: &str,
    settings_example: &serde_json::Value,
) -> std::result::Result<CatalogueEntry, CompileError> {
    if description.len() > MAX_DESCRIPTION_BYTES || description.chars().any(char::is_control) {
        return Err(CompileError::App(Error::Invalid(format!(
            "the description must be at most {MAX_DESCRIPTION_BYTES} bytes without control characters"
        ))));
    }
    if !settings_example.is_object() {
        return Err(CompileError::App(Error::InvalidSettings(
            "the settings example must be a JSON object".into(),
        )));
    }
    let plugin = compile(app, None, bytes.clone()).await?;
    let info = plugin.info();
    // A 0.2.0 plugin's example must keep its own schema: tenants start from it.
    super::plugins::check_settings(info, settings_example).map_err(CompileError::App)?;
    let hooks: Vec<String> = info.hooks.iter().map(|h| h.as_str().to_owned()).collect();
    let example = settings_example.to_string();
    let stored = app
        .storage
        .platform()
        .publish_catalogue(&NewCatalogueEntry {
            name: &info.name,
            version: &info.version,
            sha256: &info.sha256,
            description,
            settings_example: &example,
            hooks: &hooks,
            binary: &bytes,
            published_by: actor,
            wit_version: info.wit_version.as_str(),
            settings_schema: info.settings_schema.as_deref(),
        })
        .await
        .map_err(|err| CompileError::App(err.into()))?;
    // The audit log is per tenant and this belongs to none: the publish is
    // logged (the entry itself names who published it and when).
    tracing::info!(actor, name = %stored.name, version = %stored.version, sha256 = %stored.sha256, "published a stock plugin");
    Ok(stored)
}

/// Copies a stock plugin into `tenant`'s plugin versions (once: the same
/// bytes are stored once); returns its sha256.
pub async fn copy_to_tenant(
    app: &AppState,
    tenant: &TenantId,
    actor: &str,
    name: &str,
    version: Option<&str>,
) -> Result<String> {
    let db = app.storage.tenant(tenant);
    let (entry, binary) = db.catalogue_entry(name, version).await?.ok_or_else(|| {
        Error::NotFound(format!(
            "the catalogue has no plugin `{}`{}; GET /v1/catalogue lists them",
            name.chars().take(80).collect::<String>(),
            version
                .map(|v| format!(" at version {}", v.chars().take(40).collect::<String>()))
                .unwrap_or_default()
        ))
    })?;
    if db.plugin_version(&entry.sha256).await?.is_none() {
        db.put_plugin_version(&NewPluginVersion {
            sha256: &entry.sha256,
            name: &entry.name,
            version: &entry.version,
            hooks: &entry.hooks,
            size_bytes: entry.size_bytes,
            binary: &binary,
            uploaded_by: actor,
            about: PluginAbout {
                wit_version: &entry.wit_version,
                description: &entry.description,
                settings_schema: entry.settings_schema.as_deref(),
            },
        })
        .await?;
        let after = json!({ "catalogue": entry.name, "version": entry.version }).to_string();
        db.audit(
            actor,
            "plugin.install",
            Some(&entry.sha256),
            None,
            Some(&after),
        )
        .await?;
    }
    Ok(entry.sha256)
}
