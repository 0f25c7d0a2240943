//! Plugins as use cases see them: the plugins of the tenant's chain ready to
//! run (none for an installation its breaker has paused), a stored plugin
//! loaded by hash, compiling an upload — off the request path, bounded by the
//! host's compile slots, the tenant's share of them and the compile timeout —
//! and storing it, audited. What runs where is `installations`'.
//! Checking and compiling are the runtime's; bytes and history are storage's.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::{Error, Result};
use crate::resolve::{Budget, ChainStep, ReleaseRef};
use crate::runtime::{CheckError, LoadedPlugin, PluginInfo};
use crate::state::AppState;
use crate::storage::{NewPluginVersion, PluginAbout, PluginVersion, StorageError};
use crate::tenancy::{TenantId, TenantState};
use veneer_core::settings_schema::SettingsSchema;

/// Why a compilation did not produce a plugin.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The component was refused (the uploader's to fix).
    #[error(transparent)]
    Check(CheckError),
    /// The host could not compile it now.
    #[error(transparent)]
    App(Error),
}

/// The plugins of the tenant's chain, ready to run, one per step of
/// `tenant.chain` (in its order): `None` for a step whose breaker has it
/// paused (its input passes on meanwhile).
pub async fn chain(app: &AppState, tenant: &TenantState) -> Result<Chain> {
    let mut plugins = Vec::with_capacity(tenant.chain.len());
    for step in &tenant.chain {
        if app
            .limits
            .plugin_paused(&tenant.record, &step.installation)
            .is_some()
        {
            plugins.push(None);
        } else {
            plugins.push(Some(load(app, &tenant.record.id, &step.sha256).await?));
        }
    }
    Ok(Chain { plugins })
}

/// The loaded plugins of a tenant's chain (see [`chain`]).
#[derive(Debug, Clone, Default)]
pub struct Chain {
    plugins: Vec<Option<Arc<LoadedPlugin>>>,
}

impl Chain {
    /// Whether any step will run a plugin.
    pub fn runs_plugin(&self) -> bool {
        self.plugins.iter().any(Option::is_some)
    }

    /// Whether a step is paused (what is computed is then not the chain's).
    pub fn any_paused(&self) -> bool {
        self.plugins.iter().any(Option::is_none)
    }

    /// The steps as the resolver runs them; `warm` uses each step's warm
    /// instances (per-sale calls).
    pub fn steps<'a>(&'a self, tenant: &'a TenantState, warm: bool) -> Vec<ChainStep<'a>> {
        tenant
            .chain
            .iter()
            .zip(&self.plugins)
            .map(|(step, plugin)| ChainStep {
                installation: &step.installation,
                release: step.release,
                plugin: plugin.as_deref(),
                warm: warm.then(|| step.warm_key()),
                data: step.data(),
                quota: step.quota,
                policies: &tenant.policies,
            })
            .collect()
    }

    /// The live releases, as named in what they produce.
    pub fn releases(tenant: &TenantState) -> Vec<ReleaseRef> {
        tenant
            .chain
            .iter()
            .map(|step| ReleaseRef {
                installation: step.installation.clone(),
                release: step.release,
                plugin: step.sha256.clone(),
            })
            .collect()
    }
}

/// The plugins of `steps` (a chain that is not the live one, or the live one
/// run off the request path), loaded by hash, in order.
pub async fn load_steps(
    app: &AppState,
    tenant: &TenantId,
    steps: &[crate::tenancy::Step],
) -> Result<Vec<Arc<LoadedPlugin>>> {
    let mut plugins = Vec::with_capacity(steps.len());
    for step in steps {
        plugins.push(load(app, tenant, &step.sha256).await?);
    }
    Ok(plugins)
}

/// `steps` with their `plugins` (from [`load_steps`]) as the resolver runs
/// them, each on a fresh store and none paused: a draft's diff, a shadow run.
pub fn fresh_steps<'a>(
    steps: &'a [crate::tenancy::Step],
    plugins: &'a [Arc<LoadedPlugin>],
    policies: &'a [crate::policy::Policy],
) -> Vec<ChainStep<'a>> {
    steps
        .iter()
        .zip(plugins)
        .map(|(step, plugin)| ChainStep {
            installation: &step.installation,
            release: step.release,
            plugin: Some(plugin),
            warm: None,
            data: step.data(),
            quota: step.quota,
            policies,
        })
        .collect()
}

/// The request's plugin budget across the chain, as the platform sets it.
pub fn budget(app: &AppState) -> Budget {
    Budget::new(
        app.config.chain_max_fuel,
        Duration::from_millis(app.config.chain_max_ms),
    )
}

/// A tenant's plugin ready to run: loaded already, or fetched from the
/// database by hash and compiled (or loaded from the artifact cache).
pub async fn load(app: &AppState, tenant: &TenantId, sha256: &str) -> Result<Arc<LoadedPlugin>> {
    if let Some(plugin) = app.runtime.get(sha256) {
        return Ok(plugin);
    }
    let bytes = app
        .storage
        .tenant(tenant)
        .plugin_binary(sha256)
        .await?
        .ok_or_else(|| Error::NotFound("this tenant has no plugin with that sha256".into()))?;
    // Already checked at upload: a reload (after a restart, or on another
    // node) is the platform's work, bounded by the compile slots alone.
    compile(app, None, bytes).await.map_err(|err| match err {
        CompileError::Check(err) => Error::internal(format!(
            "stored plugin {sha256} of {tenant} no longer loads: {err}"
        )),
        CompileError::App(err) => err,
    })
}

/// Checks and compiles a component off the request path, bounded in
/// concurrency and time. `owner` is the tenant the work is for (`None`:
/// the platform's own, such as the demo seed): a tenant holds at most its
/// share of the compile slots at once ([`crate::state::CompileShares`]). The
/// slot and the share are held by the compiling thread until the work really
/// ends, so a compile that outlives its timeout still counts against both.
pub async fn compile(
    app: &AppState,
    owner: Option<&TenantId>,
    bytes: Vec<u8>,
) -> std::result::Result<Arc<LoadedPlugin>, CompileError> {
    let secs = app.config.compile_timeout_secs;
    let limit = Duration::from_secs(secs);
    let share = match owner {
        Some(tenant) => Some(
            app.compile_shares
                .take(tenant)
                .ok_or(CompileError::App(Error::TenantCompileBusy))?,
        ),
        None => None,
    };
    let permit = tokio::time::timeout(limit, app.compile_slots.clone().acquire_owned())
        .await
        .map_err(|_| CompileError::App(Error::HostCompileBusy))?
        .map_err(|_| CompileError::App(Error::internal("compile slots closed")))?;
    let runtime = app.runtime.clone();
    let job = tokio::task::spawn_blocking(move || {
        let _held = (permit, share);
        runtime.load(&bytes)
    });
    match tokio::time::timeout(limit, job).await {
        Ok(Ok(Ok(plugin))) => Ok(plugin),
        Ok(Ok(Err(check))) => Err(CompileError::Check(check)),
        Ok(Err(join)) => Err(CompileError::App(Error::internal(format!(
            "compile task failed: {join}"
        )))),
        Err(_) => Err(CompileError::App(Error::CompileTimeout { secs })),
    }
}

/// What a loaded plugin says about itself, as storage keeps it.
pub fn about(info: &PluginInfo) -> PluginAbout<'_> {
    PluginAbout {
        wit_version: info.wit_version.as_str(),
        description: &info.description,
        settings_schema: info.settings_schema.as_deref(),
    }
}

/// Validates settings against a plugin's settings JSON Schema, before
/// anything runs (a release's, a stock plugin's example): a plugin that
/// declares none (every 0.1.0 plugin) takes any object. The schema was checked
/// when the plugin was loaded, and both documents are size-capped (64 KiB,
/// 256 KiB), so the work is bounded.
pub fn check_settings(info: &PluginInfo, settings: &serde_json::Value) -> Result<()> {
    let Some(schema) = &info.settings_schema else {
        return Ok(());
    };
    let schema = SettingsSchema::compile(schema).map_err(|err| {
        Error::internal(format!(
            "plugin {}'s settings schema passed its load but does not compile: {err}",
            info.sha256
        ))
    })?;
    schema.validate(settings).map_err(Error::SettingsSchema)
}

/// A stored upload: its version row and what it imports.
#[derive(Debug)]
pub struct Uploaded {
    /// The stored version.
    pub version: PluginVersion,
    /// The interfaces the component imports.
    pub imports: Vec<String>,
}

/// Checks, compiles and stores an upload of `tenant`'s, audited as `actor`'s.
/// Compiling first means a component that does not load is never stored.
pub async fn upload(
    app: &AppState,
    tenant: &TenantId,
    actor: &str,
    bytes: Vec<u8>,
) -> std::result::Result<Uploaded, CompileError> {
    // A full store refuses before the compile spends anything (storage checks
    // again, exactly, when it stores).
    room_for(app, tenant, &bytes)
        .await
        .map_err(CompileError::App)?;
    let plugin = compile(app, Some(tenant), bytes.clone()).await?;
    let info = plugin.info();
    let hooks: Vec<String> = info.hooks.iter().map(|h| h.as_str().to_owned()).collect();
    let db = app.storage.tenant(tenant);
    let stored = async {
        let version = db
            .put_plugin_version(&NewPluginVersion {
                sha256: &info.sha256,
                name: &info.name,
                version: &info.version,
                hooks: &hooks,
                size_bytes: info.size_bytes as u64,
                binary: &bytes,
                uploaded_by: actor,
                about: about(info),
            })
            .await?;
        let after = json!({ "sha256": info.sha256, "name": info.name, "version": info.version, "hooks": hooks }).to_string();
        db.audit(
            actor,
            "plugin.upload",
            Some(&info.sha256),
            None,
            Some(&after),
        )
        .await?;
        Ok::<_, StorageError>(version)
    };
    let version = stored.await.map_err(|err| CompileError::App(err.into()))?;
    Ok(Uploaded {
        version,
        imports: info.imports.clone(),
    })
}

/// Whether the tenant's plugin store has room for `bytes` (a version it
/// already stores always has).
async fn room_for(app: &AppState, tenant: &TenantId, bytes: &[u8]) -> Result<()> {
    use sha2::Digest as _;
    let db = app.storage.tenant(tenant);
    let sha256 = hex::encode(sha2::Sha256::digest(bytes));
    let versions = db.plugin_versions().await?;
    if versions.iter().any(|v| v.sha256 == sha256) {
        return Ok(());
    }
    let limits = db.plugin_limits();
    let stored: u64 = versions.iter().map(|v| v.size_bytes).sum();
    if versions.len() as u64 >= u64::from(limits.max_versions)
        || stored.saturating_add(bytes.len() as u64) > limits.max_bytes
    {
        return Err(Error::PluginStoreFull(format!(
            "the tenant stores {} plugin versions ({} KiB); the caps are {} versions and {} KiB: \
             delete unused ones (DELETE /v1/plugins/<sha256>: versions no release uses)",
            versions.len(),
            stored / 1024,
            limits.max_versions,
            limits.max_bytes / 1024
        )));
    }
    Ok(())
}

/// Deletes a stored plugin version no release uses, audited as `actor`'s.
/// NotFound without it; Conflict, naming the releases, while any release
/// (live, old or draft) uses it: rollback needs its component.
pub async fn delete_version(
    app: &AppState,
    tenant: &TenantId,
    actor: &str,
    sha256: &str,
) -> Result<()> {
    let db = app.storage.tenant(tenant);
    match db.delete_plugin_version(sha256).await? {
        crate::storage::VersionDeletion::Deleted => {
            db.audit(actor, "plugin.delete", Some(sha256), None, None)
                .await?;
            Ok(())
        }
        // The message does not repeat the hash: a 404 reads the same for a
        // hash nobody has and for another tenant's.
        crate::storage::VersionDeletion::Missing => Err(Error::NotFound(
            "this tenant stores no such plugin version (GET /v1/plugins lists them)".into(),
        )),
        crate::storage::VersionDeletion::InUse(releases) => Err(Error::Conflict(format!(
            "releases use this version ({}); delete those drafts or the installation first \
             (a release that was live keeps its component for rollback)",
            releases.join(", ")
        ))),
    }
}
