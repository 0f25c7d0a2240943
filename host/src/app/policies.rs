//! The platform's output policies as use cases: a platform admin sets (or
//! removes) the policy for every tenant or for one, checked first; the
//! affected tenants' caches are invalidated on every node so the next request
//! enforces it. Enforcement is the resolver's (`resolve`, per chain step).

use serde_json::json;

use super::{Error, Result};
use crate::policy::Policy;
use crate::state::AppState;
use crate::storage::AuditEntry;
use crate::tenancy::TenantId;

/// Sets the policy for `tenant`, or for every tenant when `None`, audited as
/// `actor`'s (in each affected tenant's log).
pub async fn set(
    app: &AppState,
    actor: &str,
    tenant: Option<&TenantId>,
    policy: &Policy,
) -> Result<()> {
    policy.validate().map_err(Error::InvalidPolicy)?;
    let platform = app.storage.platform();
    if let Some(id) = tenant
        && platform.tenant(id).await?.is_none()
    {
        return Err(Error::NotFound(format!("no tenant `{id}`")));
    }
    let text = serde_json::to_string(policy).map_err(Error::internal)?;
    platform.set_output_policy(tenant, &text, actor).await?;
    affected(app, actor, tenant, "policy.set", Some(&text)).await
}

/// Removes the policy for `tenant` (or for every tenant). Whether there was one.
pub async fn remove(app: &AppState, actor: &str, tenant: Option<&TenantId>) -> Result<bool> {
    let removed = app.storage.platform().remove_output_policy(tenant).await?;
    if removed {
        affected(app, actor, tenant, "policy.remove", None).await?;
    }
    Ok(removed)
}

/// Invalidates and audits every tenant the change applies to.
async fn affected(
    app: &AppState,
    actor: &str,
    tenant: Option<&TenantId>,
    action: &str,
    after: Option<&str>,
) -> Result<()> {
    let platform = app.storage.platform();
    let tenants: Vec<TenantId> = match tenant {
        Some(id) => vec![id.clone()],
        None => platform
            .list_tenants()
            .await?
            .into_iter()
            .map(|t| t.id)
            .collect(),
    };
    let scope = json!({ "scope": tenant.map_or("*", TenantId::as_str) }).to_string();
    for id in &tenants {
        app.invalidate(id);
        platform
            .audit(&AuditEntry {
                tenant: id,
                actor,
                action,
                plugin_sha256: None,
                before: Some(&scope),
                after,
            })
            .await?;
    }
    Ok(())
}
