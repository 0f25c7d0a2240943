//! Installations and releases as use cases. A tenant composes named
//! installations, run in its order; each installation's live release is one
//! immutable plugin + settings + quota. Creating a release checks it (the
//! plugin runs each of its hooks once on the base with those settings, under
//! the release's quota, and must neither refuse them nor break a section's
//! invariants)
//! and changes nothing that is served;
//! activating, rolling back and deactivating change what is served at once on
//! every node (the tenant's caches are invalidated), each audited. The quota
//! of a new release is the platform's for the installation (its own, else the
//! tenant's, else the host's default); when the platform changes an
//! installation's quota, a release with the new quota is made live.
//!
//! Storage keeps the rows and the history; the runtime and the resolver run
//! and check the plugin.

use std::sync::Arc;

use serde_json::json;

use super::plugins::{fresh_steps, load, load_steps};
use super::slots::with_slot;
use super::{Error, Result};
use crate::base::{BaseConfig, Product, Sale};
use crate::config_diff::BlastRadius;
use crate::resolve::{Budget, ResolveHook, Resolver};
use crate::runtime::hook;
use crate::runtime::{Hook, LoadedPlugin, Outcome, Quota, Runtime, TenantData};
use crate::state::AppState;
use crate::storage::{
    InstallationRecord, MAX_RELEASE_SETTINGS_BYTES, NewRelease, ReleaseEvent, ReleaseRecord,
};
use crate::tenancy::TenantId;

/// Where a release's plugin comes from.
#[derive(Debug, Clone)]
pub enum PluginSource {
    /// A version the tenant uploaded, by sha256.
    Uploaded(String),
    /// A stock plugin of the platform's catalogue: `name`, at `version` or
    /// the newest. It is copied into the tenant's plugin versions.
    Catalogue {
        /// The published name.
        name: String,
        /// The version; the newest when `None`.
        version: Option<String>,
    },
}

/// A draft release as a tenant admin asks for it.
#[derive(Debug, Clone)]
pub struct ReleaseRequest {
    /// The plugin it runs.
    pub plugin: PluginSource,
    /// Its settings: a JSON object.
    pub settings: serde_json::Value,
    /// A note for the history.
    pub note: Option<String>,
}

/// Creates an empty installation at the end of the tenant's chain.
pub async fn create_installation(
    app: &AppState,
    tenant: &TenantId,
    actor: &str,
    name: &str,
) -> Result<InstallationRecord> {
    let db = app.storage.tenant(tenant);
    let record = db.create_installation(name, actor).await?;
    let after = json!({ "installation": name }).to_string();
    db.audit(actor, "installation.create", None, None, Some(&after))
        .await?;
    Ok(record)
}

/// Deletes an installation with its releases and history; what it served
/// stops at once.
pub async fn delete_installation(
    app: &AppState,
    tenant: &TenantId,
    actor: &str,
    name: &str,
) -> Result<()> {
    let db = app.storage.tenant(tenant);
    if !db.delete_installation(name).await? {
        return Err(no_installation(name));
    }
    app.invalidate(tenant);
    let before = json!({ "installation": name }).to_string();
    db.audit(actor, "installation.delete", None, Some(&before), None)
        .await?;
    Ok(())
}

/// Sets the order of the tenant's chain (every installation, once).
pub async fn reorder(
    app: &AppState,
    tenant: &TenantId,
    actor: &str,
    order: &[String],
) -> Result<Vec<InstallationRecord>> {
    let db = app.storage.tenant(tenant);
    let before: Vec<String> = db
        .installations()
        .await?
        .into_iter()
        .map(|i| i.name)
        .collect();
    let after = db.reorder_installations(order).await?;
    app.invalidate(tenant);
    db.audit(
        actor,
        "installation.order",
        None,
        Some(&json!({ "order": before }).to_string()),
        Some(&json!({ "order": order }).to_string()),
    )
    .await?;
    Ok(after)
}

/// The platform's quota for `installation` of `tenant`: its own, else the
/// tenant's, else the host's default.
pub async fn ceiling(app: &AppState, tenant: &TenantId, installation: &str) -> Result<Quota> {
    let db = app.storage.tenant(tenant);
    let json = match db.installation_quota(installation).await? {
        Some(json) => Some(json),
        None => db.quota().await?,
    };
    Ok(json
        .and_then(|json| serde_json::from_str(&json).ok())
        .unwrap_or_default())
}

/// Checks and stores a draft release; nothing served changes.
pub async fn create_release(
    app: &AppState,
    tenant: &TenantId,
    actor: &str,
    installation: &str,
    request: ReleaseRequest,
) -> Result<ReleaseRecord> {
    if !request.settings.is_object() {
        return Err(Error::InvalidSettings(
            "settings must be a JSON object (the plugin's own settings document)".into(),
        ));
    }
    let settings = request.settings.to_string();
    if settings.len() > MAX_RELEASE_SETTINGS_BYTES {
        return Err(Error::SettingsTooLarge(format!(
            "settings are {} bytes; at most {MAX_RELEASE_SETTINGS_BYTES} are allowed",
            settings.len()
        )));
    }
    let db = app.storage.tenant(tenant);
    if db.installation(installation).await?.is_none() {
        return Err(no_installation(installation));
    }
    let sha256 = match &request.plugin {
        PluginSource::Uploaded(sha256) => {
            if db.plugin_version(sha256).await?.is_none() {
                return Err(Error::NotFound(
                    "this tenant has no plugin with that sha256: upload it first (POST /v1/plugins)"
                        .into(),
                ));
            }
            sha256.clone()
        }
        PluginSource::Catalogue { name, version } => {
            super::catalogue::copy_to_tenant(app, tenant, actor, name, version.as_deref()).await?
        }
    };
    let quota = ceiling(app, tenant, installation).await?;
    let plugin = load(app, tenant, &sha256).await?;
    super::plugins::check_settings(plugin.info(), &request.settings)?;
    check_release(app, tenant, plugin, settings.clone(), quota).await?;
    let quota_json = serde_json::to_string(&quota).map_err(Error::internal)?;
    let release = db
        .create_release(&NewRelease {
            installation,
            sha256: &sha256,
            settings: &settings,
            quota: &quota_json,
            note: request.note.as_deref(),
            created_by: actor,
        })
        .await?;
    let after = json!({
        "installation": installation,
        "release": release.id,
        "settings": request.settings,
        "quota": quota,
    })
    .to_string();
    db.audit(
        actor,
        "release.create",
        Some(&release.sha256),
        None,
        Some(&after),
    )
    .await?;
    Ok(release)
}

/// What changes an installation's live release.
#[derive(Debug, Clone)]
pub enum Change {
    /// Make this release live (past the shadow gate if it is open, or forced).
    Activate {
        /// The release.
        release: i64,
        /// Forcing past a closed shadow gate (platform admins, with a reason).
        force: Option<super::shadow::Force>,
    },
    /// Make live again this release, or the one live before the current one.
    Rollback(Option<i64>),
    /// Take the installation out of the chain.
    Deactivate,
}

/// Changes what an installation serves, at once on every node; the new
/// release's plugin is loaded now, so the first request after it does not
/// compile.
pub async fn change(
    app: &AppState,
    tenant: &TenantId,
    actor: &str,
    installation: &str,
    change: Change,
) -> Result<ReleaseEvent> {
    let db = app.storage.tenant(tenant);
    let before = db
        .installation(installation)
        .await?
        .ok_or_else(|| no_installation(installation))?
        .active_release;
    let mut forced = None;
    if let Change::Activate { release, force } = &change {
        let state = super::tenants::state(app, tenant).await?;
        forced =
            super::shadow::check_gate(app, &state, installation, *release, force.as_ref()).await?;
    }
    let (event, action) = match change {
        Change::Activate { release: id, .. } => {
            let event = db
                .activate_release(installation, id, "activate", actor)
                .await?;
            // Live now: no longer a draft to shadow.
            if db
                .shadows()
                .await?
                .iter()
                .any(|s| s.installation == installation && s.release_id == id)
            {
                db.remove_shadow(installation).await?;
            }
            (event, "release.activate")
        }
        Change::Rollback(to) => (
            db.rollback_release(installation, to, actor).await?,
            "release.rollback",
        ),
        Change::Deactivate => (
            db.deactivate_installation(installation, actor).await?,
            "release.deactivate",
        ),
    };
    app.invalidate(tenant);
    let mut sha = None;
    if let Some(id) = event.release_id
        && let Some(release) = db.release(installation, id).await?
    {
        load(app, tenant, &release.sha256).await?;
        sha = Some(release.sha256);
    }
    let mut after = json!({ "installation": installation, "release": event.release_id });
    if let Some(forced) = forced {
        after["forced"] = json!(forced);
    }
    db.audit(
        actor,
        action,
        sha.as_deref(),
        Some(&json!({ "installation": installation, "release": before }).to_string()),
        Some(&after.to_string()),
    )
    .await?;
    Ok(event)
}

/// Deletes a draft release.
pub async fn delete_release(
    app: &AppState,
    tenant: &TenantId,
    actor: &str,
    installation: &str,
    id: i64,
) -> Result<()> {
    let db = app.storage.tenant(tenant);
    db.delete_release(installation, id).await?;
    let before = json!({ "installation": installation, "release": id }).to_string();
    db.audit(actor, "release.delete", None, Some(&before), None)
        .await?;
    Ok(())
}

/// Sets the platform's quota (already validated) for one installation of a
/// tenant, audited as `actor`'s. When the installation has a live release, a
/// release with the same plugin and settings and the new quota is made live
/// (history action `quota`), so the change applies at once and stays in the
/// history.
pub async fn set_installation_quota(
    app: &AppState,
    actor: &str,
    tenant: &TenantId,
    installation: &str,
    quota: &Quota,
) -> Result<Option<ReleaseRecord>> {
    let db = app.storage.tenant(tenant);
    let Some(current) = db.installation(installation).await? else {
        return Err(no_installation(installation));
    };
    let json = serde_json::to_string(quota).map_err(Error::internal)?;
    let before = db.installation_quota(installation).await?;
    app.storage
        .platform()
        .set_installation_quota(tenant, installation, &json)
        .await?;
    let mut made = None;
    if let Some(live) = current.active_release
        && let Some(release) = db.release(installation, live).await?
    {
        let note = "the platform changed the installation's quota";
        let new = db
            .create_release(&NewRelease {
                installation,
                sha256: &release.sha256,
                settings: &release.settings,
                quota: &json,
                note: Some(note),
                created_by: actor,
            })
            .await?;
        db.activate_release(installation, new.id, "quota", actor)
            .await?;
        made = Some(new);
    }
    app.invalidate(tenant);
    db.audit(
        actor,
        "quota.installation",
        None,
        before.as_deref(),
        Some(&json!({ "installation": installation, "quota": quota }).to_string()),
    )
    .await?;
    Ok(made)
}

fn no_installation(name: &str) -> Error {
    Error::NotFound(format!(
        "this tenant has no installation `{}`; create it first (POST /v1/installations)",
        name.chars().take(60).collect::<String>()
    ))
}

/// Runs each hook the plugin implements once on the base with `settings`
/// (and the tenant's key-value data), under `quota`, on a blocking thread
/// holding one of the tenant's plugin slots; the first hook that does not
/// succeed refuses the release with the plugin's own words.
async fn check_release(
    app: &AppState,
    tenant: &TenantId,
    plugin: Arc<LoadedPlugin>,
    settings: String,
    quota: Quota,
) -> Result<()> {
    let state = super::tenants::state(app, tenant).await?;
    let data: Arc<dyn TenantData> = Arc::new(CheckData {
        settings,
        kv: state.kv().clone(),
    });
    let (runtime, base) = (app.runtime.clone(), app.base());
    let refusal = with_slot(app, &state, true, move || {
        first_refusal(&runtime, &base, &plugin, data, &quota)
    })
    .await?;
    match refusal {
        None => Ok(()),
        Some(message) => Err(Error::ReleaseRejected(message)),
    }
}

fn first_refusal(
    runtime: &Runtime,
    base: &BaseConfig,
    plugin: &LoadedPlugin,
    data: Arc<dyn TenantData>,
    quota: &Quota,
) -> Option<String> {
    let resolver = Resolver::new(runtime, base);
    fn refused<H: ResolveHook>(
        checked: crate::resolve::Checked<H::Output>,
        what: &str,
    ) -> Option<String> {
        let hook = H::HOOK;
        if let Some(violation) = checked.violation {
            return Some(format!(
                "with these settings the plugin's {hook} output {what} is invalid: {violation}"
            ));
        }
        match checked.run.outcome {
            // The plugin's own refusal (bad settings, typically); invalid
            // output is the violation above. Running out of fuel, memory or
            // time, output over the quota and traps are left to the runtime's
            // bounds (recorded, and paused by the breaker): a check on one
            // sample cannot prove their absence anyway.
            other @ Outcome::PluginError { .. } => Some(format!(
                "with these settings the plugin's {hook} hook {what} ended `{}`: {}",
                other.kind(),
                other.message().unwrap_or_default()
            )),
            _ => None,
        }
    }
    // The tree the plugin's own product-category answer is checked against:
    // the one its categories hook makes of the base, when it has one (a
    // plugin may file products into categories it adds).
    let mut tree = None;
    if plugin.implements(Hook::Categories) {
        let checked = resolver.run_checked::<hook::Categories>(
            plugin,
            data.clone(),
            quota,
            &base.categories,
            (),
        );
        if checked.violation.is_none()
            && let Outcome::Ok(own) = &checked.run.outcome
        {
            tree = Some(own.clone());
        }
        if let Some(message) = refused::<hook::Categories>(checked, "on the base") {
            return Some(message);
        }
    }
    if plugin.implements(Hook::SizeCharts) {
        let checked = resolver.run_checked::<hook::SizeCharts>(
            plugin,
            data.clone(),
            quota,
            &base.size_charts,
            &base.categories,
        );
        if let Some(message) = refused::<hook::SizeCharts>(checked, "on the base") {
            return Some(message);
        }
    }
    if plugin.implements(Hook::Commission)
        && let Some(category) = base.categories.first()
    {
        let sale = Sale {
            order_id: "release-check".into(),
            sku: "release-check".into(),
            category_id: category.id.clone(),
            unit_price: 10_000,
            quantity: 1,
            currency: base.commission.currency.clone(),
            seller_id: None,
            attributes: Vec::new(),
        };
        let decision = base.decide_commission(&sale);
        let checked = resolver.run_checked::<hook::Commission>(
            plugin,
            data.clone(),
            quota,
            (&sale, &decision),
            (),
        );
        if let Some(message) = refused::<hook::Commission>(checked, "for a sample sale") {
            return Some(message);
        }
    }
    if plugin.implements(Hook::ProductCategory) {
        let product = Product {
            title: "release-check".into(),
            ..Product::default()
        };
        let checked = resolver.run_checked::<hook::ProductCategory>(
            plugin,
            data.clone(),
            quota,
            (&product, None),
            tree.as_ref().unwrap_or(&base.categories),
        );
        if let Some(message) = refused::<hook::ProductCategory>(checked, "for a sample product") {
            return Some(message);
        }
    }
    if plugin.implements(Hook::Email) {
        for (id, def) in &base.emails {
            let checked = resolver.run_checked::<hook::Email>(
                plugin,
                data.clone(),
                quota,
                (&def.template, &def.sample),
                def,
            );
            if let Some(message) = refused::<hook::Email>(checked, &format!("for `{id}`")) {
                return Some(message);
            }
        }
    }
    None
}

/// A release's data while it is checked: its settings and the tenant's
/// key-value data.
struct CheckData {
    settings: String,
    kv: Arc<crate::tenancy::KvSnapshot>,
}

impl TenantData for CheckData {
    fn settings_json(&self) -> &str {
        &self.settings
    }

    fn kv_get(&self, key: &str) -> Option<String> {
        self.kv.get(key)
    }

    fn kv_keys(&self, prefix: &str, limit: usize) -> Vec<String> {
        self.kv.keys(prefix, limit)
    }
}

/// Recorded sales a blast radius is computed over, at most (the newest).
pub const BLAST_RADIUS_SALES: u32 = 5_000;
/// Wall time the blast radius may take; past it, the lines computed so far
/// are reported (`truncated`).
const BLAST_RADIUS_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// What making release `id` of `installation` live would change in the
/// tenant's effective configuration, against what is served now, and — for
/// commission — over the tenant's recorded sales of the last `days` days (the
/// newest [`BLAST_RADIUS_SALES`]): each run through the live chain and the
/// chain with the draft.
pub async fn diff_release(
    app: &AppState,
    tenant: &Arc<crate::tenancy::TenantState>,
    installation: &str,
    id: i64,
    days: u32,
) -> Result<ReleaseDiff> {
    let db = app.storage.tenant(&tenant.record.id);
    let release = db.release(installation, id).await?.ok_or_else(|| {
        Error::NotFound(format!("installation `{installation}` has no release {id}"))
    })?;
    let ceiling = ceiling(app, &tenant.record.id, installation).await?;
    let quota = serde_json::from_str::<Quota>(&release.quota)
        .unwrap_or(ceiling)
        .within(&ceiling);
    let draft = crate::tenancy::Step::draft(&tenant.record.id, release, quota, tenant.kv().clone());
    // The chain as it would be: every live step, with the installation's own
    // (live or not) replaced by the draft, in the tenant's order.
    let mut steps = Vec::new();
    for record in db.installations().await? {
        if record.name == installation {
            steps.push(draft.clone());
        } else if let Some(live) = tenant.chain.iter().find(|s| s.installation == record.name) {
            steps.push(live.clone());
        }
    }
    let plugins = load_steps(app, &tenant.record.id, &steps).await?;
    let live = super::config::effective(app, tenant).await?;
    let live_plugins = load_steps(app, &tenant.record.id, &tenant.chain).await?;
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .saturating_sub(i64::from(days) * 86_400_000);
    let sales: Vec<Sale> = db
        .recent_hook_records(Hook::Commission.as_str(), since, BLAST_RADIUS_SALES)
        .await?
        .into_iter()
        .rev()
        .filter_map(|record| {
            let input: serde_json::Value = serde_json::from_str(&record.input).ok()?;
            serde_json::from_value(input.get("sale")?.clone()).ok()
        })
        .collect();
    let (runtime, base, policies, state) = (
        app.runtime.clone(),
        app.base(),
        tenant.policies.clone(),
        tenant.clone(),
    );
    let mut budget = super::plugins::budget(app);
    let per_sale = (
        app.config.chain_max_fuel,
        std::time::Duration::from_millis(app.config.chain_max_ms),
    );
    let (draft_config, radius) = with_slot(app, tenant, true, move || {
        let chain = fresh_steps(&steps, &plugins, &policies);
        let resolver = Resolver::new(&runtime, &base);
        let config = resolver.effective_chain(&chain, &mut budget, Vec::new(), String::new());
        let live_chain = fresh_steps(&state.chain, &live_plugins, &policies);
        let started = std::time::Instant::now();
        let mut radius = BlastRadius::default();
        let mut truncated = false;
        for sale in &sales {
            if started.elapsed() > BLAST_RADIUS_TIME {
                truncated = true;
                break;
            }
            let fee = |steps: &[crate::resolve::ChainStep<'_>]| {
                resolver
                    .commission_chain(steps, &mut Budget::new(per_sale.0, per_sale.1), sale)
                    .ok()
                    .map(|r| r.value.fee)
            };
            if let (Some(before), Some(after)) = (fee(&live_chain), fee(&chain)) {
                radius.add(sale, before, after);
            }
        }
        (
            config,
            Impact {
                days,
                sales: sales.len(),
                truncated,
                radius,
            },
        )
    })
    .await?;
    let sections = |config: &crate::resolve::EffectiveConfig| -> (
        Vec<_>,
        Vec<_>,
        std::collections::BTreeMap<String, crate::base::EmailTemplate>,
    ) {
        (
            config.categories.value.clone(),
            config.size_charts.value.clone(),
            config
                .emails
                .iter()
                .map(|(id, e)| (id.clone(), e.value.clone()))
                .collect(),
        )
    };
    let (before, after) = (sections(&live), sections(&draft_config));
    let diff = crate::config_diff::diff(
        crate::config_diff::Sections {
            categories: &before.0,
            size_charts: &before.1,
            emails: &before.2,
        },
        crate::config_diff::Sections {
            categories: &after.0,
            size_charts: &after.1,
            emails: &after.2,
        },
    );
    let failures = draft_config
        .runs()
        .filter(|r| {
            r.installation.as_deref() == Some(installation)
                && r.outcome != crate::runtime::OutcomeKind::Ok
        })
        .map(|r| {
            format!(
                "{}: {} {}",
                r.hook,
                r.outcome,
                r.message.as_deref().unwrap_or("")
            )
        })
        .collect();
    Ok(ReleaseDiff {
        installation: installation.to_owned(),
        release: id,
        against: tenant
            .chain
            .iter()
            .find(|s| s.installation == installation)
            .map(|s| s.release),
        diff,
        failures,
        commission: radius,
    })
}

/// A draft's effect on the commission of the tenant's recorded sales.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Impact {
    /// The window, in days.
    pub days: u32,
    /// Recorded sales in it (at most [`BLAST_RADIUS_SALES`], the newest).
    pub sales: usize,
    /// Whether the time limit stopped it before every sale was run.
    pub truncated: bool,
    /// Lines affected, totals before and after, largest changes, per category.
    pub radius: BlastRadius,
}

/// A draft release's effect on the effective configuration.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReleaseDiff {
    pub installation: String,
    pub release: i64,
    /// The live release it is compared with (`None`: the installation serves nothing now).
    pub against: Option<i64>,
    pub diff: crate::config_diff::ConfigDiff,
    /// Sections where the draft's run did not end `ok` (its input passed on).
    pub failures: Vec<String>,
    /// The commission over the tenant's recorded sales (recording must be on:
    /// `PUT /v1/rollout`).
    pub commission: Impact,
}
