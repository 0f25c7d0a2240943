//! Tenancy: who a request is for. Owns the tenant id type, the mapping from a
//! request's host (`<slug>.<base-domain>` or a custom domain) to a tenant, and the
//! tenant's cached state (status, limits, active plugin, settings, quota and a
//! key-value snapshot shared per data version). Runs no SQL itself: loads go
//! through `storage`.

mod host;
mod state;

pub use host::{HostTarget, classify, strip_port};
pub use state::{KvSnapshot, KvSnapshots, Shadow, Step, TenantState};
pub use veneer_core::tenancy_id::{InvalidTenantId, TenantId};
