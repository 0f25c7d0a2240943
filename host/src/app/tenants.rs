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

/// Stores a key-value entry plugins can read, audited as `actor`'s (the key
/// and the value's size, not the value); the tenant's caches are invalidated
/// on every node.
pub async fn put_kv(
    app: &AppState,
    tenant: &TenantId,
    actor: &str,
    key: &str,
    value: &str,
) -> Result<()> {
    let db = app.storage.tenant(tenant);
    db.kv_put(key, value).await?;
    app.invalidate(tenant);
    let after = serde_json::json!({ "key": key, "bytes": value.len() }).to_string();
    db.audit(actor, "kv.put", None, None, Some(&after)).await?;
    Ok(())
}

/// Deletes a key-value entry, audited as `actor`'s; `false` when there was
/// none (nothing is invalidated or audited then).
pub async fn delete_kv(app: &AppState, tenant: &TenantId, actor: &str, key: &str) -> Result<bool> {
    let db = app.storage.tenant(tenant);
    let deleted = db.kv_delete(key).await?;
    if deleted {
        app.invalidate(tenant);
        let before = serde_json::json!({ "key": key }).to_string();
        db.audit(actor, "kv.delete", None, Some(&before), None)
            .await?;
    }
    Ok(deleted)
}
