//! A tenant's plugin slots (its concurrency limit, from `limits`) and the
//! blocking threads plugin calls run on: every use case that runs a plugin
//! goes through here, so a tenant never runs more calls at once than its
//! limit. Owns no state of its own; touches no storage.

use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;

use super::{Error, Result};
use crate::state::AppState;
use crate::tenancy::TenantState;

/// How long a caller waits for one of its tenant's plugin slots.
const SLOT_WAIT: Duration = Duration::from_secs(5);

/// Runs `f` on a blocking thread while holding one of the tenant's plugin
/// slots — when it runs a plugin. Without one (none active, or paused)
/// `f` only computes base answers: it runs right here, with no slot and no
/// thread hop, so a paused tenant's traffic stays cheap for everyone else.
pub async fn with_slot<T: Send + 'static>(
    app: &AppState,
    tenant: &TenantState,
    runs_plugin: bool,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    if !runs_plugin {
        return Ok(f());
    }
    let permit = slot(app, tenant).await?;
    on_blocking_thread(permit, f).await
}

/// One of the tenant's plugin slots, waiting up to [`SLOT_WAIT`].
pub(crate) async fn slot(app: &AppState, tenant: &TenantState) -> Result<OwnedSemaphorePermit> {
    let slots = app.limits.calls(&tenant.record);
    tokio::time::timeout(SLOT_WAIT, slots.acquire_owned())
        .await
        .map_err(|_| Error::TenantBusy)?
        .map_err(|_| Error::internal("tenant slots closed"))
}

/// Runs `f` on a blocking thread, holding `permit` until it ends.
pub(crate) async fn on_blocking_thread<T: Send + 'static>(
    permit: OwnedSemaphorePermit,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    // The blocking thread stays inside the caller's span (the request's).
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let _span = span.entered();
        f()
    })
    .await
    .map_err(|err| Error::internal(format!("plugin task failed: {err}")))
}
