//! A tenant's loaded state (settings, key-value data, active plugin) for a use
//! case: from the cache, or loaded once for every concurrent caller (see
//! [`AppState::tenant_state`]). Does not authenticate: callers have done that.

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
