//! A tenant's state for the use cases: loading it (from the cache, or once for
//! every concurrent caller: see [`AppState::tenant_state`]) and the tenant's own
//! writes to it (key-value data; settings belong to releases), each followed by the
//! invalidation of its caches on every node. Does not authenticate or check
//! input shapes: callers have done that.

use std::sync::Arc;

use super::{Error, Result};
use crate::state::AppState;
use crate::tenancy::{TenantId, TenantState};

/// The state of a tenant that must exist.
pub async fn state(app: &AppState, id: &TenantId) -> Result<Arc<TenantState>> {
    app.tenant_state(id)
        .await?
        .ok_or_else(|| Error::NotFound("this tenant no longer exists".into()))
}

/// Stores a key-value entry plugins can read; the tenant's caches are
/// invalidated on every node.
pub async fn put_kv(app: &AppState, tenant: &TenantId, key: &str, value: &str) -> Result<()> {
    app.storage.tenant(tenant).kv_put(key, value).await?;
    app.invalidate(tenant);
    Ok(())
}

/// Deletes a key-value entry; `false` when there was none (nothing is
/// invalidated then).
pub async fn delete_kv(app: &AppState, tenant: &TenantId, key: &str) -> Result<bool> {
    let deleted = app.storage.tenant(tenant).kv_delete(key).await?;
    if deleted {
        app.invalidate(tenant);
    }
    Ok(deleted)
}
